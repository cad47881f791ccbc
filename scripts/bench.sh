#!/usr/bin/env bash
# Benchmarks: regenerates BENCHMARKS.md and prints its tables. No timed assertions anywhere.
#
#   scripts/bench.sh
#
# What it does:
#   1. builds the release binaries (namespace-scheduler, kube-standin) unless NO_BUILD=1;
#   2. starts DynamoDB Local (scripts/dynamodb-local.sh) with fresh tables, so every run below
#      includes the audit write path;
#   3. benches/scale.py: against a kube-standin process with an injected per-request latency,
#      our binary's down / up / no-op `run` at each size (wall time, API requests by verb, peak
#      RSS via wait4), and the kubectl-per-workload baseline of the old service;
#   4. scripts/bench-check.sh: start-up of `check` as a whole process next to /bin/true;
#   5. benches/report.py: writes BENCHMARKS.md (the fault-campaign section is kept as it is, or
#      replaced by a fresh campaign's output when FAULT_ROUNDS is set).
#
# Environment (defaults in brackets):
#   BENCH_SIZES [20,200,2000]   namespaces × (5 Deployments + 1 StatefulSet + 1 CronJob)
#   BASELINE_SIZES [20]         kubectl baseline sizes (0: none); BENCH_FULL=1 makes it 20,200 (≈ 1 h)
#   PHASE_SIZES [200]           sizes also run with the time split into start-up / Kubernetes / audit
#   LATENCY_MS [5]              injected per-request latency of the stand-in
#   SCALE_CONCURRENCY [16]      parallel writes of our binary
#   CHECK_RUNS [30]             runs per command in the start-up benchmark
#   FAULT_ROUNDS                also run the fault campaign with this many rounds and record it
#   FAULT_LOG                   or record the output of a campaign run before (cargo test … -- --nocapture)
#   NO_BUILD=1                  use the binaries already in target/release
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench
mkdir -p "$OUT"

SIZES=${BENCH_SIZES:-20,200,2000}
if [[ -n ${BENCH_FULL:-} ]]; then BASELINE=${BASELINE_SIZES:-20,200}; else BASELINE=${BASELINE_SIZES:-20}; fi
LATENCY=${LATENCY_MS:-5}
CONC=${SCALE_CONCURRENCY:-16}
BIN=$ROOT/target/release/namespace-scheduler
STANDIN=$ROOT/target/release/kube-standin

step() { printf '\n==> %s\n' "$*" >&2; }

if [[ -z ${NO_BUILD:-} ]]; then
  step "cargo build --release (namespace-scheduler, kube-standin)"
  cargo build --release -p namespace-scheduler -p standin --bins
  BUILT="binary built from commit $(git rev-parse --short HEAD 2> /dev/null || echo '?')"
  git diff --quiet HEAD -- src standin/src Cargo.toml 2> /dev/null || BUILT="$BUILT plus uncommitted changes"
else
  BUILT="binary from target/release as of $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC') (NO_BUILD)"
fi
[[ -x $BIN && -x $STANDIN ]] || { echo "missing $BIN or $STANDIN (build without NO_BUILD)" >&2; exit 2; }
command -v kubectl > /dev/null || { echo "kubectl is required for the baseline" >&2; exit 2; }

# Private copies: the shared target directory may be rebuilt while this runs.
cp "$BIN" "$OUT/namespace-scheduler"
cp "$STANDIN" "$OUT/kube-standin"
BIN=$OUT/namespace-scheduler
STANDIN=$OUT/kube-standin

step "DynamoDB Local"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scripts/dynamodb-local.sh start "$PORT" >&2
trap 'scripts/dynamodb-local.sh stop "$PORT" > /dev/null 2>&1 || true' EXIT
export DYNAMODB_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export DYNAMODB_TABLE_NAME="bench-audit-$$" PERMISSIONS_TABLE_NAME="bench-permissions-$$"
unset NAMESPACE_SELECTOR PROTECTED_NAMESPACES RUST_LOG || true
"$BIN" local-tables >&2

step "scale benchmark (sizes $SIZES, baseline $BASELINE, ${LATENCY} ms per request, SCALE_CONCURRENCY=$CONC)"
python3 benches/scale.py --bin "$BIN" --standin "$STANDIN" --sizes "$SIZES" --baseline-sizes "$BASELINE" \
  --latency-ms "$LATENCY" --concurrency "$CONC" --phase-sizes "${PHASE_SIZES:-200}" > "$OUT/scale.json"

step "start-up benchmark (scripts/bench-check.sh)"
BIN=$BIN scripts/bench-check.sh "${CHECK_RUNS:-30}" | tee "$OUT/check.txt" >&2

FAULT_ARGS=()
if [[ -n ${FAULT_ROUNDS:-} ]]; then
  step "fault campaign ($FAULT_ROUNDS rounds, against the release binary)"
  FAULT_BIN=$BIN FAULT_ROUNDS=$FAULT_ROUNDS cargo test --test fault_campaign -- --nocapture \
    2>&1 | tee "$OUT/fault_campaign.txt" >&2 || true
  FAULT_ARGS=(--fault-campaign "$OUT/fault_campaign.txt")
elif [[ -n ${FAULT_LOG:-} ]]; then
  FAULT_ARGS=(--fault-campaign "$FAULT_LOG")
fi

step "BENCHMARKS.md"
python3 benches/report.py --scale "$OUT/scale.json" --check "$OUT/check.txt" --out BENCHMARKS.md \
  --machine "$(nproc) cores, $(uname -sr), $BUILT" \
  "${FAULT_ARGS[@]}"
