#!/usr/bin/env bash
# Build (or reuse) kube-apiserver, etcd and kube-controller-manager for the local test control plane,
# from the Go module in controlplane/, into a cache outside the checkout:
#   ${DRUID_ACCESS_CACHE:-$HOME/.cache/druid-access}/controlplane/<key>/bin/{kube-apiserver,etcd,kube-controller-manager[,kubectl]}
# <key> = Kubernetes version + a hash of go.mod, go.sum, the cmd/ sources and the link flags, so a change
# of pins rebuilds while an unchanged checkout reuses. Builds go to a dot-prefixed temp dir that is
# renamed into place only when complete (the Python side ignores dot-prefixed dirs), so an interrupted
# build never leaves a half cache. kubectl is built too when the one on PATH is missing or more than one
# minor version away from the apiserver. Go's build and module caches stay in their default places.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
module_dir="$repo_root/controlplane"
cache_root="${DRUID_ACCESS_CACHE:-$HOME/.cache/druid-access}/controlplane"

if ! command -v go >/dev/null 2>&1; then
    echo "error: go is not on PATH; install Go >= 1.24 (https://go.dev/dl/) and re-run" >&2
    exit 1
fi

cd "$module_dir"

k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ { print $2; exit }' go.mod)
if [[ ! $k8s_version =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
    echo "error: cannot read the k8s.io/kubernetes version from $module_dir/go.mod" >&2
    exit 1
fi
k8s_major=${BASH_REMATCH[1]}
k8s_minor=${BASH_REMATCH[2]}

# Stamp the version the way upstream's hack/lib/version.sh does, so /version and `kubectl version`
# report it (an unstamped build says v0.0.0-master). Only the link step sees these flags, so Go's
# build cache of compiled packages is shared with plain `go build` runs.
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
done

hash=$(
    {
        cat go.mod go.sum
        while IFS= read -r file; do
            printf '== %s\n' "$file"
            cat "$file"
        done < <(find cmd -type f -name '*.go' | LC_ALL=C sort)
        printf 'ldflags=%s\n' "$ldflags"
    } | sha256sum | cut -c1-12
)
key="k8s-$k8s_version-$hash"
dest="$cache_root/$key"

# kubectl is needed from us only if PATH lacks one within the supported skew (+-1 minor).
kubectl_needed() {
    command -v kubectl >/dev/null 2>&1 || return 0
    local minor
    minor=$(kubectl version --client -o json 2>/dev/null |
        sed -n 's/^ *"minor": *"\([0-9][0-9]*\).*/\1/p' | head -n1)
    [[ -n $minor ]] || return 0
    local skew=$((minor - k8s_minor))
    ((skew < -1 || skew > 1))
}

build() { # build OUT_DIR PACKAGE...
    local out=$1
    shift
    local started=$SECONDS
    mkdir -p "$out"
    echo "building ${*##*/} ($k8s_version) with $(go env GOVERSION); a cold build takes a while..."
    go build -buildvcs=false -ldflags="$ldflags" -o "$out/" "$@"
    echo "built in $((SECONDS - started)) s"
}

report() {
    echo "binaries in $dest/bin:"
    (cd "$dest/bin" && for f in *; do printf '  %-24s %6s MiB\n' "$f" "$(($(stat -c %s "$f") / 1048576))"; done)
}

tmp=""
cleanup() { [[ -z $tmp ]] || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT # turn signals into a normal exit so the EXIT trap removes the temp dir
trap 'exit 143' TERM

if [[ -x $dest/bin/kube-apiserver && -x $dest/bin/etcd && -x $dest/bin/kube-controller-manager ]]; then
    echo "reusing $dest (key $key)"
    if kubectl_needed && [[ ! -x $dest/bin/kubectl ]]; then
        echo "kubectl on PATH is missing or outside the +-1 minor skew of $k8s_version"
        tmp=$(mktemp -d "$cache_root/.tmp-kubectl-$key.XXXXXX")
        build "$tmp" ./cmd/kubectl
        mv -f "$tmp/kubectl" "$dest/bin/kubectl" # a rename: atomic within the same file system
    fi
    report
    exit 0
fi

mkdir -p "$cache_root"
# Temp dirs left by a killed build (EXIT traps do not run on SIGKILL).
find "$cache_root" -mindepth 1 -maxdepth 1 -name '.tmp-*' -mmin +1440 -exec rm -rf {} +

packages=(./cmd/kube-apiserver ./cmd/etcd ./cmd/kube-controller-manager)
if kubectl_needed; then
    echo "kubectl on PATH is missing or outside the +-1 minor skew of $k8s_version; building it too"
    packages+=(./cmd/kubectl)
fi

tmp=$(mktemp -d "$cache_root/.tmp-$key.XXXXXX")
build "$tmp/bin" "${packages[@]}"
chmod 755 "$tmp"
# rename(2) of a directory fails if $dest appeared meanwhile (a concurrent build): use that one.
if mv -T "$tmp" "$dest" 2>/dev/null; then
    tmp=""
else
    echo "another build finished first; using $dest"
fi
report
