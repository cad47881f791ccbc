#!/usr/bin/env bash
# The embedded-default demo: a local DynamoDB plus a local Kubernetes control plane, no cloud
# account. The cluster is a real kube-apiserver v1.32 + etcd + kube-controller-manager on
# loopback (scripts/control-plane.sh, from KUBEBUILDER_ASSETS or ../shared/k8s-v1.32) when its
# binaries are at hand, else the API stand-in (crate standin); the demo says which. DEMO_CLUSTER=standin
# forces the stand-in. Seeds sample namespaces, then shows a night (scale down), an off-hours activation
# with `up`, a morning (scale back up to the exact replica counts), a pretend week of nights
# (audited with the instants its runs decided for) and that week's savings report.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
  [[ -n "${DDB_PORT:-}" ]] && scripts/dynamodb-local.sh stop "$DDB_PORT" > /dev/null 2>&1 || true
  [[ -d "$WORK/cp" ]] && scripts/control-plane.sh stop "$WORK/cp" > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m### %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "build"
cargo build --quiet --bin namespace-scheduler && cargo build --quiet -p standin --bin kube-standin
BIN="$ROOT/target/debug/namespace-scheduler"

say "start DynamoDB Local and a local Kubernetes cluster"
DDB_PORT=$(free_port)
scripts/dynamodb-local.sh start "$DDB_PORT" > /dev/null
if [[ "${DEMO_CLUSTER:-}" != standin ]] && found=$(scripts/control-plane.sh find); then
  scripts/control-plane.sh start "$WORK/cp" 2> "$WORK/cp.log" || { cat "$WORK/cp.log"; exit 1; }
  cp "$WORK/cp/kubeconfig" "$WORK/kubeconfig"
  # The same sample namespaces and workloads as the stand-in's demo seed, applied for real.
  "$ROOT/target/debug/kube-standin" --print-seed demo | kubectl --kubeconfig "$WORK/kubeconfig" apply -f - 2>&1 |
    grep -v -e 'configured$' -e 'created$' -e 'last-applied-configuration' || true
  echo "cluster: a real kube-apiserver v1.32 + etcd + kube-controller-manager on loopback (binaries: $found)"
else
  "$ROOT/target/debug/kube-standin" --listen 127.0.0.1:0 --seed demo --kubeconfig-out "$WORK/kubeconfig" > "$WORK/standin.out" 2> "$WORK/standin.err" &
  PIDS+=($!)
  for _ in $(seq 1 100); do [[ -s "$WORK/standin.out" ]] && break; sleep 0.1; done
  echo "cluster: the API stand-in at $(head -n 1 "$WORK/standin.out") (${found:-DEMO_CLUSTER=standin})"
fi

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

say "the Events the run left on each namespace it changed (kubectl get events)"
kubectl get events -A --field-selector involvedObject.kind=Namespace -o custom-columns='NAMESPACE:.metadata.namespace,TYPE:.type,REASON:.reason,MESSAGE:.message' | cut -c1-150

say "21:00: the payments team needs dev-payments for two hours"
"$BIN" up --namespace dev-payments --cost-center IT-DEVELOPMENT --requested-by ana@example.com --for 2h --at 2026-11-25T21:00:00-05:00

say "21:00: a contractor asks too (rejected, exit 4)"
"$BIN" up --namespace dev-orders --cost-center EXTERNAL-CONTRACTOR --at 2026-11-25T21:00:00-05:00 || echo "exit code $?"

say "22:00: the safety run leaves dev-payments up (window until 23:00)"
"$BIN" run --at 2026-11-25T22:00:00-05:00

say "Thursday 08:00: business hours, everything back to its exact replica count"
"$BIN" run --at 2026-11-26T08:00:00-05:00
workloads

say "this week's report (these records carry the wall clock: the demo's runs took seconds, so its hours and savings are tiny)"
"$BIN" report --week "$(TZ=America/Bogota date +%G-W%V)"

say "the audit trail of dev-payments, every cluster sharing the tables (history reads by key or index, never a scan)"
"$BIN" history --namespace dev-payments

# A pretend week, through the same binary and code paths: every weekday of last ISO week the
# 18:00 run scales down and the next morning's 08:00 run scales back up (Friday's down lasts the
# weekend). NS_SCHEDULER_AUDIT_CLOCK=decision makes each audit record carry the instant its run
# decided for (--at) instead of the wall clock; nothing else differs from a real week.
read -r LAST_WEEK MONDAY < <(python3 -c 'import datetime as d; t=d.datetime.now(d.timezone(d.timedelta(hours=-5))).date(); m=t-d.timedelta(days=t.weekday()+7); y,w,_=m.isocalendar(); print(f"{y}-W{w:02d}", m.isoformat())')
say "a pretend week ($LAST_WEEK): runs at 18:00 and 08:00 each weekday, audited with the instants they decided for (NS_SCHEDULER_AUDIT_CLOCK=decision), not the wall clock"
for day in 0 1 2 3 4; do
  evening=$(date -d "$MONDAY + $day days" +%F)T18:00:00-05:00
  next=$((day == 4 ? 7 : day + 1))
  morning=$(date -d "$MONDAY + $next days" +%F)T08:00:00-05:00
  NS_SCHEDULER_AUDIT_CLOCK=decision "$BIN" --output json run --at "$evening" > "$WORK/down-$day.json"
  NS_SCHEDULER_AUDIT_CLOCK=decision "$BIN" --output json run --at "$morning" > "$WORK/up-$day.json"
  python3 - "$WORK/down-$day.json" "$WORK/up-$day.json" "$evening" << 'PY'
import json, sys
down, up = (json.load(open(f)) for f in sys.argv[1:3])
print(f"  {sys.argv[3]}: down freed {down['freed']['vcpu']:.2f} vCPU / {down['freed']['gib']:.2f} GiB;"
      f" the next morning's run restored {up['restored']['vcpu']:.2f} vCPU / {up['restored']['gib']:.2f} GiB")
PY
done

say "what that week saved, per namespace and cost center (report --week $LAST_WEEK)"
"$BIN" report --week "$LAST_WEEK"

say "one CloudWatch Embedded Metric Format line per run (METRICS_FORMAT=emf), for dashboards without an agent"
METRICS_FORMAT=emf "$BIN" --output json run --at 2026-11-25T22:30:00-05:00 | tail -n 1
