#!/usr/bin/env bash
# End to end on a real (kind) cluster, for machines with Docker and kind: builds the image,
# loads it into a fresh kind cluster, runs the fake Coordinator and fake Pivot in the cluster
# from the test servers' image (the Dockerfile's `testing` target: the operator's image has no
# test servers), installs the chart configured against them, runs the e2e suite for real
# clusters (kind/), uninstalls the chart and deletes the cluster.
# It cannot run where there is no Docker engine (CI here): `make test` covers the same
# lifecycle on a local kube-apiserver instead.
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-druid-access-operator:dev}"
TESTING_IMAGE="${TESTING_IMAGE:-druid-access-testing:dev}"
HELM="${HELM:-helm}"
CLUSTER="${KIND_CLUSTER:-druid-access-e2e}"
NS=druid-access
APP_NS=analytics
ADMIN_PW="kind-admin-$RANDOM$RANDOM"
TOKEN="kind-token-$RANDOM$RANDOM"

for tool in docker kind kubectl; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required for make kind-e2e" >&2; exit 1; }
done

cleanup() { kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

docker build -t "$IMAGE" .
docker build --target testing -t "$TESTING_IMAGE" .
kind create cluster --name "$CLUSTER" --wait 120s
kind load docker-image "$IMAGE" "$TESTING_IMAGE" --name "$CLUSTER"
kubectl create namespace "$NS"
kubectl create namespace "$APP_NS"

# The fakes (druid-access-testing fake-coordinator|fake-pivot, the entry point of $TESTING_IMAGE):
# run them as in-cluster services.
for fake in coordinator pivot; do
    if [[ $fake == coordinator ]]; then args="[fake-coordinator, --host, 0.0.0.0, --port, '8081', --admin-password, $ADMIN_PW]"; port=8081
    else args="[fake-pivot, --host, 0.0.0.0, --port, '9095', --token, $TOKEN]"; port=9095; fi
    kubectl apply -n "$NS" -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: fake-$fake}
spec:
  selector: {matchLabels: {app: fake-$fake}}
  template:
    metadata: {labels: {app: fake-$fake}}
    spec:
      containers:
        - name: fake
          image: $TESTING_IMAGE
          imagePullPolicy: Never
          args: $args
          ports: [{containerPort: $port}]
---
apiVersion: v1
kind: Service
metadata: {name: fake-$fake}
spec:
  selector: {app: fake-$fake}
  ports: [{port: $port, targetPort: $port}]
YAML
done
kubectl -n "$NS" rollout status deploy/fake-coordinator --timeout=120s
kubectl -n "$NS" rollout status deploy/fake-pivot --timeout=120s

kubectl -n "$NS" create secret generic druid-admin --from-literal=username=admin --from-literal=password="$ADMIN_PW"
kubectl -n "$NS" create secret generic pivot-token --from-literal=token="$TOKEN"
"$HELM" install druid-access-operator helm/druid-access-operator -n "$NS" --wait --timeout 180s \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
    --set clusters.default.coordinatorUrl="http://fake-coordinator.$NS:8081" \
    --set clusters.default.adminSecret.name=druid-admin \
    --set clusters.default.resyncSeconds=10 \
    --set pivots.default.url="http://fake-pivot.$NS:9095" \
    --set pivots.default.tokenSecret.name=pivot-token

# The e2e suite for a real cluster (kind/test_kind_e2e.py): samples Ready, Druid's side checked
# through a port-forward, drift corrected, password rotation, no secret in the logs, deletion.
KIND_OPERATOR_NAMESPACE="$NS" KIND_APP_NAMESPACE="$APP_NS" KIND_ADMIN_PASSWORD="$ADMIN_PW" \
    .venv/bin/python -m pytest kind -v -p no:cacheprovider
"$HELM" uninstall druid-access-operator -n "$NS" --wait
echo "kind e2e passed"
