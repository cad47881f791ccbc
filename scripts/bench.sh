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
#      RSS via wait4, DynamoDB calls by operation through benches/dynamo_count.py, a counting
#      proxy in front of DynamoDB Local), the same at DYNAMO_SIZES with the binary of
#      AUDIT_BEFORE_REV, and the kubectl-per-workload baseline of the old service;
#   4. benches/regimes.py: py-kube-downscaler (../shared/peers, in the venv .tools/pkd, made
#      here when missing) beside our binary, same fixture, in two regimes: the stand-in with the
#      injected latency, and a real control plane (scripts/control-plane.sh: kube-apiserver
#      v1.32 + etcd + kube-controller-manager, with an audit log to count each tool's requests);
#      there also a no-op's etcd reads from the apiserver's metrics, before (BEFORE_REV) and now.
#      Without ../shared/peers or the control-plane binaries, that part is skipped with one line;
#   4b. benches/fleet.py: DynamoDB calls per run with the fleet's windows table (a no-op, a run
#      granting requests, `up`) at FLEET_SIZE namespaces, beside the binary of FLEET_BEFORE_REV;
#   5. scripts/bench-check.sh: start-up of `check` as a whole process next to /bin/true;
#   6. benches/report.py: writes BENCHMARKS.md (the fault-campaign section is kept as it is, or
#      replaced by a fresh campaign's output when FAULT_ROUNDS is set).
#
# Environment (defaults in brackets):
#   BENCH_SIZES [20,200,2000]   namespaces × (5 Deployments + 1 StatefulSet + 1 CronJob)
#   BASELINE_SIZES [20]         kubectl baseline sizes (0: none); BENCH_FULL=1 makes it 20,200 (≈ 1 h)
#   PHASE_SIZES [200,2000]      sizes also run with the time split into start-up / Kubernetes / audit
#   LATENCY_MS [5]              injected per-request latency of the stand-in
#   SCALE_CONCURRENCY [16]      parallel writes of our binary
#   CHECK_RUNS [30]             runs per command in the start-up benchmark
#   FAULT_ROUNDS                also run the fault campaign with this many rounds and record it
#   FAULT_LOG                   or record the output of a campaign run before (cargo test … -- --nocapture)
#   PEER_SIZES [BENCH_SIZES]    stand-in sizes for the side by side with py-kube-downscaler (0: none)
#   REAL_SIZES [20,200]         real control plane sizes (0: none)
#   BEFORE_REV [8659095^]       commit whose binary shows the no-op's etcd reads before (empty: none)
#   AUDIT_BEFORE_REV [f876c11]  commit whose binary shows the DynamoDB calls before the write-ahead
#                               audit, at DYNAMO_SIZES [200] (empty: none)
#   FLEET_BEFORE_REV [5e2e87f]  commit whose binary shows the DynamoDB calls before the windows
#                               table was wired in (empty: none); FLEET_SIZE [200]
#   NO_BUILD=1                  use the binaries already in $CARGO_TARGET_DIR/release
#   REPORT_ONLY=1               measure nothing: rewrite BENCHMARKS.md from the last run's figures in
#                               target/bench (after editing its analysis, or to record FAULT_LOG)
#   CARGO_TARGET_DIR [target]   where cargo builds (a separate one keeps the shared target free)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench
mkdir -p "$OUT"

SIZES=${BENCH_SIZES:-20,200,2000}
if [[ -n ${BENCH_FULL:-} ]]; then BASELINE=${BASELINE_SIZES:-20,200}; else BASELINE=${BASELINE_SIZES:-20}; fi
LATENCY=${LATENCY_MS:-5}
CONC=${SCALE_CONCURRENCY:-16}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/namespace-scheduler
STANDIN=$TARGET/release/kube-standin
BEFORE_REV=${BEFORE_REV-8659095^}
FLEET_BEFORE_REV=${FLEET_BEFORE_REV-5e2e87f}
AUDIT_BEFORE_REV=${AUDIT_BEFORE_REV-f876c11}
PEER_DIR=$ROOT/../shared/peers/py-kube-downscaler

step() { printf '\n==> %s\n' "$*" >&2; }

if [[ -n ${REPORT_ONLY:-} ]]; then
  FAULT_ARGS=()
  [[ -n ${FAULT_LOG:-} ]] && FAULT_ARGS=(--fault-campaign "$FAULT_LOG")
  python3 benches/report.py --scale "$OUT/scale.json" --regimes "$OUT/regimes.json" --check "$OUT/check.txt" \
    --fleet "$OUT/fleet.json" --out BENCHMARKS.md --machine "$(cat "$OUT/machine.txt")" "${FAULT_ARGS[@]}"
  exit 0
fi
# The release binary of an older commit, built from its own source tree into $OUT/$2 (kept
# across runs with NO_BUILD=1): $1 the commit, $3 what it is measured for. In a target directory
# of its own: cargo's fingerprint of a path package does not depend on where its source is, so in
# the shared one this build and a later `cargo build` of the worktree would each look fresh to the
# other and hand out the other's binary. Sources are touched after extraction (git archive stamps
# them with the commit's time) so that one old commit's build is never taken for another's.
build_rev() {
  local bin=$OUT/$2
  if [[ -z ${NO_BUILD:-} || ! -x $bin ]]; then
    step "cargo build --release of $1 ($3)"
    rm -rf "$OUT/before-src" && mkdir -p "$OUT/before-src"
    git archive "$1" | tar -x -C "$OUT/before-src"
    find "$OUT/before-src" -type f -exec touch {} +
    (cd "$OUT/before-src" && CARGO_TARGET_DIR=$OUT/before-target cargo build --release -p namespace-scheduler --bin namespace-scheduler)
    cp "$OUT/before-target/release/namespace-scheduler" "$bin"
  fi
}
BEFORE_BIN=
if [[ -n $BEFORE_REV ]]; then
  BEFORE_BIN=$OUT/namespace-scheduler-before
  build_rev "$BEFORE_REV" namespace-scheduler-before "the no-op's etcd reads before"
fi
AUDIT_BEFORE_BIN=
if [[ -n $AUDIT_BEFORE_REV ]]; then
  AUDIT_BEFORE_BIN=$OUT/namespace-scheduler-audit-before
  build_rev "$AUDIT_BEFORE_REV" namespace-scheduler-audit-before "DynamoDB calls before the write-ahead audit"
fi
FLEET_BEFORE_BIN=
if [[ -n $FLEET_BEFORE_REV ]]; then
  FLEET_BEFORE_BIN=$OUT/namespace-scheduler-fleet-before
  build_rev "$FLEET_BEFORE_REV" namespace-scheduler-fleet-before "DynamoDB calls before the fleet's windows"
fi
if [[ -z ${NO_BUILD:-} ]]; then
  step "cargo build --release (namespace-scheduler, kube-standin)"
  CARGO_TARGET_DIR=$TARGET cargo build --release -p namespace-scheduler -p standin --bins
  BUILT="binary built from commit $(git rev-parse --short HEAD 2> /dev/null || echo '?')"
  git diff --quiet HEAD -- src standin/src Cargo.toml 2> /dev/null || BUILT="$BUILT plus uncommitted changes"
else
  BUILT="binary from $TARGET/release as of $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC') (NO_BUILD)"
fi
[[ -x $BIN && -x $STANDIN ]] || { echo "missing $BIN or $STANDIN (build without NO_BUILD)" >&2; exit 2; }
if [[ -n $BEFORE_BIN ]] && cmp -s "$BIN" "$BEFORE_BIN"; then
  echo "$BIN is the binary of $BEFORE_REV: rebuild (cargo build --release) before benchmarking" >&2; exit 2
fi
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
  --latency-ms "$LATENCY" --concurrency "$CONC" --phase-sizes "${PHASE_SIZES:-200,2000}" \
  --dynamo-pid "$(cat ".tools/dynamodb-local/dynamodb-local-$PORT.pid" 2> /dev/null || echo 0)" \
  ${BEFORE_BIN:+--before-bin "$BEFORE_BIN"} \
  ${AUDIT_BEFORE_BIN:+--audit-before-bin "$AUDIT_BEFORE_BIN" --dynamo-sizes "${DYNAMO_SIZES:-200}"} > "$OUT/scale.json"

REGIME_ARGS=(--bin "$BIN" --standin "$STANDIN" --latency-ms "$LATENCY" --concurrency "$CONC"
  --standin-sizes "${PEER_SIZES:-$SIZES}" --real-sizes "${REAL_SIZES:-20,200}")
[[ -n $BEFORE_BIN ]] && REGIME_ARGS+=(--before-bin "$BEFORE_BIN")
if [[ -d $PEER_DIR ]]; then
  if [[ ! -x .tools/pkd/bin/python ]]; then
    step "py-kube-downscaler's venv (.tools/pkd: new-pykube==26.3.0 pytz requests pyyaml)"
    python3 -m venv .tools/pkd && .tools/pkd/bin/pip install -q new-pykube==26.3.0 pytz requests pyyaml
  fi
  REGIME_ARGS+=(--peer-dir "$(cd "$PEER_DIR" && pwd)" --peer-python "$ROOT/.tools/pkd/bin/python")
else
  echo "SKIP py-kube-downscaler side by side: $PEER_DIR not found (it comes with ../shared/peers)" >&2
fi
CP=$OUT/cp
if [[ ${REAL_SIZES:-20,200} != 0 ]] && scripts/control-plane.sh find > /dev/null 2>&1; then
  step "real control plane (scripts/control-plane.sh, audit log on)"
  scripts/control-plane.sh stop "$CP" > /dev/null 2>&1 || true
  rm -rf "$CP" && mkdir -p "$CP"
  printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: ["RequestReceived"]\nrules:\n- level: Metadata\n' > "$CP/audit-policy.yaml"
  KUBE_APISERVER_FLAGS="--audit-policy-file=$CP/audit-policy.yaml --audit-log-path=$CP/audit.log --audit-log-format=json" \
    scripts/control-plane.sh start "$CP" >&2
  trap 'scripts/control-plane.sh stop "$CP" > /dev/null 2>&1 || true; scripts/dynamodb-local.sh stop "$PORT" > /dev/null 2>&1 || true' EXIT
  REGIME_ARGS+=(--kubeconfig "$CP/kubeconfig" --audit-log "$CP/audit.log")
else
  echo "SKIP the real control plane regime: REAL_SIZES=0 or no kube-apiserver (scripts/control-plane.sh find)" >&2
fi
step "side by side with py-kube-downscaler, and the no-op's etcd reads (benches/regimes.py)"
python3 benches/regimes.py "${REGIME_ARGS[@]}" > "$OUT/regimes.json"
[[ -d $CP ]] && scripts/control-plane.sh stop "$CP" > /dev/null 2>&1 || true

step "DynamoDB calls with the fleet's windows (benches/fleet.py, ${FLEET_SIZE:-200} namespaces)"
python3 benches/fleet.py --bin "$BIN" --standin "$STANDIN" --namespaces "${FLEET_SIZE:-200}" \
  ${FLEET_BEFORE_BIN:+--before-bin "$FLEET_BEFORE_BIN"} > "$OUT/fleet.json"

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
echo "$(nproc) cores, $(uname -sr), $BUILT" > "$OUT/machine.txt"
python3 benches/report.py --scale "$OUT/scale.json" --regimes "$OUT/regimes.json" --check "$OUT/check.txt" --out BENCHMARKS.md \
  --fleet "$OUT/fleet.json" \
  --machine "$(nproc) cores, $(uname -sr), $BUILT" \
  "${FAULT_ARGS[@]}"
