#!/usr/bin/env bash
# Stops k8s/kind-up.sh's port-forwards and deletes the kind cluster with everything in it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .kind-port-forwards.pids ]; then
  # shellcheck disable=SC2046
  kill $(cat .kind-port-forwards.pids) 2>/dev/null || true
  rm -f .kind-port-forwards.pids
fi
kind delete cluster --name microcosm
