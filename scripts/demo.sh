#!/usr/bin/env bash
# The embedded-default demo: a local DynamoDB plus the local Kubernetes API stand-in, no cloud
# account. Seeds sample namespaces, then shows a night (scale down), an off-hours activation
# with `up`, a morning (scale back up to the exact replica counts) and the weekly report.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
  [[ -n "${DDB_PORT:-}" ]] && scripts/dynamodb-local.sh stop "$DDB_PORT" > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m### %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "build"
cargo build --quiet --bin namespace-scheduler && cargo build --quiet -p standin --bin kube-standin
BIN="$ROOT/target/debug/namespace-scheduler"

say "start DynamoDB Local and the Kubernetes API stand-in"
DDB_PORT=$(free_port)
scripts/dynamodb-local.sh start "$DDB_PORT" > /dev/null
"$ROOT/target/debug/kube-standin" --listen 127.0.0.1:0 --seed demo --kubeconfig-out "$WORK/kubeconfig" > "$WORK/standin.out" 2> "$WORK/standin.err" &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -s "$WORK/standin.out" ]] && break; sleep 0.1; done
echo "API stand-in: $(head -n 1 "$WORK/standin.out")"

export KUBECONFIG="$WORK/kubeconfig"
export DYNAMODB_ENDPOINT_URL="http://127.0.0.1:$DDB_PORT" AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export EKS_CLUSTER_NAME=demo LOG_FORMAT=text LOG_LEVEL=WARNING POD_NAMESPACE=task-scheduler
"$BIN" local-tables

workloads() { kubectl get deploy,sts,cronjob -A -o custom-columns='NAMESPACE:.metadata.namespace,KIND:.kind,NAME:.metadata.name,REPLICAS:.spec.replicas,SUSPEND:.spec.suspend,ORIGINAL:.metadata.annotations.namespace-scheduler/original-replicas' | grep -vE '^(kube-system|task-scheduler) '; }

say "seed the cost-center permissions table"
"$BIN" populate

say "business-hours decision for Wednesday 2026-11-25 20:00 Bogotá, and this year's holidays"
"$BIN" check --at 2026-11-25T20:00:00-05:00
"$BIN" calendar --year 2026 | head -n 5; echo "…"

say "the cluster before"
workloads

say "20:00: what run would do (--dry-run)"
"$BIN" --dry-run run --at 2026-11-25T20:00:00-05:00

say "20:00: run scales every managed namespace down"
"$BIN" run --at 2026-11-25T20:00:00-05:00
workloads

say "21:00: the payments team needs dev-payments for two hours"
"$BIN" up --namespace dev-payments --cost-center IT-DEVELOPMENT --requested-by ana@example.com --for 2h --at 2026-11-25T21:00:00-05:00

say "21:00: a contractor asks too (rejected, exit 4)"
"$BIN" up --namespace dev-orders --cost-center EXTERNAL-CONTRACTOR --at 2026-11-25T21:00:00-05:00 || echo "exit code $?"

say "22:00: the safety run leaves dev-payments up (window until 23:00)"
"$BIN" run --at 2026-11-25T22:00:00-05:00

say "Thursday 08:00: business hours, everything back to its exact replica count"
"$BIN" run --at 2026-11-26T08:00:00-05:00
workloads

say "this week's report from the audit table (records carry the real clock, so the hours are the demo's seconds)"
"$BIN" report --week "$(TZ=America/Bogota date +%G-W%V)"
