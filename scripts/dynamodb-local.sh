#!/usr/bin/env bash
# Starts or stops DynamoDB Local (in memory) in the background for the demo and manual tests.
#
#   scripts/dynamodb-local.sh start [PORT]   # default 8000; waits until it answers
#   scripts/dynamodb-local.sh stop  [PORT]
#   scripts/dynamodb-local.sh status [PORT]
#
# -sharedDb: one database whatever access key and region a client signs with.
# Then: export DYNAMODB_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
# Installs DynamoDB Local first if needed (scripts/install-dynamodb-local.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DIR="$ROOT/.tools/dynamodb-local"
CMD="${1:-}"
PORT="${2:-8000}"
PIDFILE="$DIR/dynamodb-local-$PORT.pid"
LOG="$DIR/dynamodb-local-$PORT.log"

running() {
  [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2> /dev/null
}

answers() {
  # Any HTTP answer (DynamoDB Local returns 400 to a bare request) means it is up.
  curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/" 2> /dev/null \
    || (exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2> /dev/null
}

case "$CMD" in
  start)
    [[ -f "$DIR/DynamoDBLocal.jar" ]] || "$ROOT/scripts/install-dynamodb-local.sh"
    if running; then
      echo "DynamoDB Local already running on port $PORT (pid $(cat "$PIDFILE"))"
      exit 0
    fi
    cd "$DIR"
    nohup java -Djava.library.path=DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -sharedDb -port "$PORT" \
      > "$LOG" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 100); do
      if answers; then
        echo "DynamoDB Local listening on http://127.0.0.1:$PORT (pid $(cat "$PIDFILE"), log $LOG)"
        exit 0
      fi
      if ! running; then
        echo "DynamoDB Local exited; log:" >&2
        cat "$LOG" >&2
        rm -f "$PIDFILE"
        exit 1
      fi
      sleep 0.2
    done
    echo "DynamoDB Local did not answer on port $PORT within 20 s; log: $LOG" >&2
    exit 1
    ;;
  stop)
    if running; then
      PID=$(cat "$PIDFILE")
      kill "$PID"
      for _ in $(seq 1 50); do kill -0 "$PID" 2> /dev/null || break; sleep 0.1; done
      kill -0 "$PID" 2> /dev/null && kill -9 "$PID"
      echo "DynamoDB Local on port $PORT stopped"
    else
      echo "DynamoDB Local is not running on port $PORT"
    fi
    rm -f "$PIDFILE"
    ;;
  status)
    if running && answers; then
      echo "running on port $PORT (pid $(cat "$PIDFILE"))"
    else
      echo "not running on port $PORT"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|status [PORT]" >&2
    exit 2
    ;;
esac
