#!/usr/bin/env bash
# Offline checks of the deployment artifacts:
#   - cfn-lint (PyPI; bundles the CloudFormation resource schemas) on infrastructure/*.yaml
#   - action-validator (npm @action-validator/cli; bundles the GitHub Actions schemas) on
#     every workflow in .github/workflows
# Installs either tool if missing (cfn-lint with pip, or into .tools/venv; action-validator
# into .tools/npm), runs every check, and exits non-zero if any failed.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CFN_LINT_VERSION="${CFN_LINT_VERSION:-1.51.0}"
ACTION_VALIDATOR_VERSION="${ACTION_VALIDATOR_VERSION:-0.6.0}"
NPM_PREFIX="$ROOT/.tools/npm"

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# --- tools ---
CFN_LINT=(cfn-lint)
if ! command -v cfn-lint > /dev/null 2>&1; then
  if python3 -m cfnlint --version > /dev/null 2>&1; then
    CFN_LINT=(python3 -m cfnlint)
  else
    echo "installing cfn-lint ${CFN_LINT_VERSION} from PyPI" >&2
    if python3 -m pip install --quiet --disable-pip-version-check "cfn-lint==${CFN_LINT_VERSION}"; then
      if command -v cfn-lint > /dev/null 2>&1; then CFN_LINT=(cfn-lint); else CFN_LINT=(python3 -m cfnlint); fi
    else
      # an "externally managed" system Python (PEP 668) refuses pip install: use a venv
      python3 -m venv "$ROOT/.tools/venv" \
        && "$ROOT/.tools/venv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==${CFN_LINT_VERSION}" \
        || { echo "cannot install cfn-lint" >&2; exit 1; }
      CFN_LINT=("$ROOT/.tools/venv/bin/cfn-lint")
    fi
  fi
fi

ACTION_VALIDATOR="$NPM_PREFIX/node_modules/.bin/action-validator"
if [ ! -x "$ACTION_VALIDATOR" ]; then
  if command -v action-validator > /dev/null 2>&1; then
    ACTION_VALIDATOR=$(command -v action-validator)
  else
    echo "installing @action-validator/cli ${ACTION_VALIDATOR_VERSION} into ${NPM_PREFIX}" >&2
    mkdir -p "$NPM_PREFIX"
    npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error \
      "@action-validator/cli@${ACTION_VALIDATOR_VERSION}" "@action-validator/core@${ACTION_VALIDATOR_VERSION}" \
      || { echo "cannot install @action-validator/cli" >&2; exit 1; }
  fi
fi

# --- CloudFormation ---
shopt -s nullglob
templates=(infrastructure/*.yaml infrastructure/*.yml)
[ ${#templates[@]} -gt 0 ] || fail "no CloudFormation template in infrastructure/"
for t in "${templates[@]}"; do
  echo "cfn-lint $t"
  "${CFN_LINT[@]}" -- "$t" || fail "cfn-lint $t"
  # the Rust code reads the template with serde-saphyr: no short-form (!Sub, !Ref...) tags
  if grep -nE '^[^#]*:[[:space:]]+!(Sub|Ref|GetAtt|If|Equals|Join|Select|Split|ImportValue|FindInMap|Base64|Cidr|GetAZs|Not|And|Or|Condition)\b' "$t"; then
    fail "$t uses short-form intrinsic tags; use Fn::Sub / Ref / Fn::GetAtt"
  fi
done

# --- GitHub Actions workflows ---
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[ ${#workflows[@]} -gt 0 ] || fail "no workflow in .github/workflows"
for w in "${workflows[@]}"; do
  echo "action-validator $w"
  "$ACTION_VALIDATOR" "$w" || fail "action-validator $w"
done

if [ "$failures" -gt 0 ]; then
  echo "lint-artifacts: ${failures} check(s) failed" >&2
  exit 1
fi
echo "lint-artifacts: all checks passed"
