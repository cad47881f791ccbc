#!/usr/bin/env bash
# Start-up benchmark: times `namespace-scheduler check` as a whole process (exec, config
# validation, logging set-up, the decision, output) over several runs, next to baselines
# (`/bin/true`, `python3 -c pass`) and prints min / median and the ratio to the baseline.
#
#   scripts/bench-check.sh [RUNS]      (default 50; builds nothing: run `cargo build --release` first)
# Environment: BIN=path to the binary (default target/release/namespace-scheduler).
# Uses hyperfine when installed, else a loop timed with bash's $EPOCHREALTIME (no extra process
# per measurement; falls back to `date +%s%N` on bash < 5).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-50}
BIN=${BIN:-target/release/namespace-scheduler}
[[ -x $BIN ]] || { echo "no $BIN: run cargo build --release first" >&2; exit 2; }

# A controlled environment: no AWS, no kubeconfig, default Colombian calendar.
export LOG_FORMAT=text LOG_LEVEL=WARNING POD_NAMESPACE=task-scheduler
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_PROFILE KUBECONFIG || true

CHECK="$BIN check --at 2026-12-24T17:30:00-05:00"
CHECK_JSON="$BIN --output json check"
CAL="$BIN calendar --year 2026"

if command -v hyperfine > /dev/null; then
  hyperfine -N --warmup 3 --runs "$RUNS" "$CHECK" "$CHECK_JSON" "$CAL" /bin/true "python3 -c pass"
  exit 0
fi

# times_us CMD...: prints RUNS wall-clock durations in microseconds, one per line. The clock is
# read without starting a process when bash has $EPOCHREALTIME.
if [[ -n ${EPOCHREALTIME:-} ]]; then CLOCK='bash $EPOCHREALTIME'; else CLOCK='date +%s%N'; fi
times_us() {
  local i start end
  for ((i = 0; i < 3; i++)); do "$@" > /dev/null 2>&1 || true; done
  for ((i = 0; i < RUNS; i++)); do
    if [[ -n ${EPOCHREALTIME:-} ]]; then
      start=${EPOCHREALTIME/[.,]/}
      "$@" > /dev/null 2>&1 || true
      end=${EPOCHREALTIME/[.,]/}
    else
      start=$(($(date +%s%N) / 1000))
      "$@" > /dev/null 2>&1 || true
      end=$(($(date +%s%N) / 1000))
    fi
    echo $((10#$end - 10#$start))
  done
}

# stats: "min median" in microseconds from durations on stdin.
stats() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print a[1], m }'; }

ROWS=()
measure() {
  local label=$1 min med
  shift
  read -r min med < <(times_us "$@" | stats)
  ROWS+=("$label|$min|$med")
}

measure "/bin/true" /bin/true
# shellcheck disable=SC2086 # word splitting of the command lines is intended
measure "check" $CHECK
# shellcheck disable=SC2086
measure "check (json, now)" $CHECK_JSON
# shellcheck disable=SC2086
measure "calendar" $CAL
if command -v python3 > /dev/null; then measure "python3 -c pass" python3 -c pass; fi

BASE=${ROWS[0]##*|}
echo "whole-process wall time, $RUNS runs each after 3 warm-up runs (clock: $CLOCK)"
printf '%-20s %9s %12s %16s\n' command "min ms" "median ms" "median/true"
for row in "${ROWS[@]}"; do
  IFS='|' read -r label min med <<< "$row"
  awk -v n="$label" -v mi="$min" -v me="$med" -v base="$BASE" \
    'BEGIN { printf "%-20s %9.2f %12.2f %15.1fx\n", n, mi / 1000, me / 1000, me / base }'
done
