#!/usr/bin/env bash
# Build (or reuse) helm from the Go module proxy into a cache outside the checkout, keyed by
# version: ${DRUID_ACCESS_CACHE:-$HOME/.cache/druid-access}/helm-<version>/bin/helm.
# `go install` leaves helm's version unstamped ("v3.19") and its default Kubernetes version at
# 1.20 (which fails any chart with a kubeVersion); -X sets both as helm's own release builds do
# (the Kubernetes version is that of the client-go helm is built with).
set -euo pipefail

version="${HELM_VERSION:-v3.19.0}"
k8s_minor="${HELM_K8S_MINOR:-34}"  # helm v3.19.0 requires k8s.io/client-go v0.34
cache="${DRUID_ACCESS_CACHE:-$HOME/.cache/druid-access}/helm-${version}"
bin="$cache/bin/helm"

if [[ -x "$bin" ]] && "$bin" version --short 2>/dev/null | grep -q "^${version}" \
    && [[ -f "$cache/k8s-minor-${k8s_minor}" ]]; then
    echo "reusing $bin ($("$bin" version --short))"
    exit 0
fi

command -v go >/dev/null || { echo "error: go is not on PATH" >&2; exit 1; }
tmp="$(mktemp -d "${cache}.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false go install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${version} \
        -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${k8s_minor} \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${k8s_minor}" \
    "helm.sh/helm/v3/cmd/helm@${version}"
touch "$tmp/k8s-minor-${k8s_minor}"
rm -rf "$cache"
mv "$tmp" "$cache"
trap - EXIT
echo "built $bin in $(( $(date +%s) - start ))s, $(du -h "$bin" | cut -f1): $("$bin" version --short)"
