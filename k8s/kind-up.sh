#!/usr/bin/env bash
# Creates a kind cluster, builds Microcosm's images, loads them into the cluster,
# applies k8s/overlays/kind, waits for every rollout, port-forwards the services and
# Jaeger to localhost, and places a smoke order that must end CONFIRMED.
#
# Needs: docker (with an engine), kind, kubectl; and a built `microcosm` CLI
# (cargo build --bins), or it builds one. Run k8s/kind-down.sh to remove it all.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=microcosm
NAMESPACE=microcosm
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-up: $tool is not installed" >&2; exit 1; }
done

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "==> creating the kind cluster $CLUSTER"
  kind create cluster --config k8s/kind-cluster.yaml
fi

echo "==> building the images"
for target in order inventory billing; do
  docker build --target "$target" --tag "microcosm/$target:dev" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" .
done
echo "==> loading them into the cluster"
kind load docker-image --name "$CLUSTER" microcosm/order:dev microcosm/inventory:dev microcosm/billing:dev

echo "==> applying k8s/overlays/kind"
kubectl apply -k k8s/overlays/kind
for workload in statefulset/order-db statefulset/inventory-db statefulset/billing-db \
                statefulset/nats deployment/jaeger deployment/prometheus \
                deployment/otel-collector deployment/grafana \
                deployment/inventory deployment/billing deployment/order; do
  kubectl --namespace "$NAMESPACE" rollout status "$workload" --timeout=300s
done

echo "==> port-forwarding (order 50051, inventory 50052, billing 50053, Jaeger UI 16686, Grafana 3000)"
pids=()
for forward in "svc/order 50051" "svc/inventory 50052" "svc/billing 50053" "svc/jaeger 16686" \
               "svc/grafana 3000" "svc/prometheus 9090"; do
  # shellcheck disable=SC2086
  kubectl --namespace "$NAMESPACE" port-forward $forward >/dev/null 2>&1 &
  pids+=($!)
done
echo "${pids[*]}" > .kind-port-forwards.pids
sleep 3

microcosm=target/debug/microcosm
[ -x "$microcosm" ] || cargo build --bin microcosm
echo "==> smoke order"
order=$("$microcosm" --json order place --customer alice --item KB-01:1 --wait)
echo "$order"
if ! grep -q '"status": *"CONFIRMED"' <<<"$order"; then
  echo "kind-up: the smoke order did not confirm" >&2
  exit 1
fi
cat <<MSG

Microcosm runs on kind. Port-forwards (pids in .kind-port-forwards.pids):
  order 127.0.0.1:50051, inventory :50052, billing :50053, Jaeger UI http://127.0.0.1:16686,
  Grafana (the Microcosm dashboard) http://127.0.0.1:3000, Prometheus http://127.0.0.1:9090
Try:
  $microcosm order list
  kubectl --namespace $NAMESPACE delete pod -l app.kubernetes.io/name=billing   # a replica dies; orders go on
  $microcosm trace ORDER_ID --jaeger http://127.0.0.1:16686
Remove everything with k8s/kind-down.sh.
MSG
