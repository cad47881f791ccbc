#!/usr/bin/env bash
# A real, loopback-only Kubernetes control plane for the tests: etcd + kube-apiserver
# (+ kube-controller-manager when its binary is at hand), the envtest pattern. No kubelet, no
# nodes, no containers.
#
#   scripts/control-plane.sh find             print where the binaries come from; exit 1 if none
#   scripts/control-plane.sh start DIR        start (or reuse) a control plane kept in DIR
#   scripts/control-plane.sh stop DIR         stop only the processes recorded in DIR/*.pid
#
# Binaries, in order: $KUBEBUILDER_ASSETS (what `setup-envtest use 1.32.x -p path` prints:
# kube-apiserver, etcd, kubectl; kube-controller-manager is used when present), else the
# xz-compressed kube-apiserver and kube-controller-manager v1.32 of $K8S_BINARIES (default
# ../shared/k8s-v1.32 next to the clone: 1.32 is the oldest Kubernetes EKS still supports) with
# etcd from PATH (Debian: apt-get install etcd-server, which `start` does itself when it may).
# DIR gets bin/, pki/, etcd-data/, logs/, *.pid, ports and DIR/kubeconfig (cluster admin, CA
# embedded). Ports are picked free on 127.0.0.1. A DIR whose bin/ came from another source is
# refilled and its etcd data dropped (bin/.source names it), so an old DIR never runs an old apiserver.
# ValidatingAdmissionPolicy is GA from 1.30 (admissionregistration.k8s.io/v1, what manifests/
# ships). The HPAScaleToZero feature gate is on where the version has it, as on the clusters
# that enable it, so an HPA may have minReplicas: 0 (docs/reference.md §4).
# KUBE_APISERVER_FLAGS="..." is appended to kube-apiserver's command line.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_BINARIES=${K8S_BINARIES:-$ROOT/../shared/k8s-v1.32}
cmd=${1:-}
log() { echo "[control-plane] $*" >&2; }

# Where kube-apiserver comes from, or nothing.
source_of() {
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]; then echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  elif [ -f "$K8S_BINARIES/kube-apiserver.xz" ]; then echo "$(cd "$K8S_BINARIES" && pwd)"
  fi
}
if [ "$cmd" = find ]; then
  s=$(source_of); [ -n "$s" ] || { echo "no kube-apiserver: neither KUBEBUILDER_ASSETS nor $K8S_BINARIES/kube-apiserver.xz"; exit 1; }
  echo "$s"; exit 0
fi
D=${2:-}
[ -n "$cmd" ] && [ -n "$D" ] || { sed -n '2,18p' "$0" >&2; exit 2; }
mkdir -p "$D"; D=$(cd "$D" && pwd)
BIN=$D/bin P=$D/pki LOGS=$D/logs
# One start or stop of DIR at a time (a test binary's watchdog may still be stopping it while the
# next test binary starts it). The processes launched below do not inherit the lock.
if command -v flock > /dev/null; then exec 9> "$D/.lock"; flock 9; fi

# No pipe here: under pipefail, `tr | grep -q` fails when grep exits before tr's last write.
alive() { local f=$D/$1.pid pid cmd; [ -s "$f" ] || return 1; pid=$(cat "$f"); [ -d /proc/$pid ] || return 1
  cmd=$(tr '\0' ' ' < /proc/$pid/cmdline 2> /dev/null) || return 1; [[ $cmd == *"$2"* ]]; }
stop_one() { local f=$D/$1.pid pid
  if alive "$1" "$2"; then pid=$(cat "$f"); kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 1 100); do [ -d /proc/$pid ] || break; sleep 0.1; done
    [ -d /proc/$pid ] && kill -KILL "$pid" 2> /dev/null || true; fi
  rm -f "$f"; }

if [ "$cmd" = stop ]; then
  stop_one kube-controller-manager "$BIN/kube-controller-manager"
  stop_one kube-apiserver "$BIN/kube-apiserver"
  stop_one etcd etcd
  exit 0
fi
[ "$cmd" = start ] || { log "unknown command $cmd"; exit 2; }

SOURCE=$(source_of)
[ -n "$SOURCE" ] || { log "no kube-apiserver: set KUBEBUILDER_ASSETS or provide $K8S_BINARIES"; exit 1; }
mkdir -p "$BIN" "$LOGS"
if [ "$(cat "$BIN/.source" 2> /dev/null)" != "$SOURCE" ]; then
  { alive kube-apiserver "$BIN/kube-apiserver" || alive etcd etcd; } && { log "$D runs binaries of another source: stop it first"; exit 1; }
  # Another version's binaries and its etcd data (written by that apiserver) go together.
  rm -rf "$BIN/kube-apiserver" "$BIN/kube-controller-manager" "$BIN/etcd" "$D/etcd-data"
fi
for b in kube-apiserver kube-controller-manager etcd; do
  [ -x "$BIN/$b" ] && continue
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$b" ]; then cp "$KUBEBUILDER_ASSETS/$b" "$BIN/$b"
  elif [ "$b" != etcd ] && [ -f "$K8S_BINARIES/$b.xz" ]; then
    xz -dc "$K8S_BINARIES/$b.xz" > "$BIN/$b.tmp" && chmod +x "$BIN/$b.tmp" && mv "$BIN/$b.tmp" "$BIN/$b"
  fi
done
echo "$SOURCE" > "$BIN/.source"
ETCD=$BIN/etcd
if [ ! -x "$ETCD" ]; then
  if ! command -v etcd > /dev/null && command -v apt-get > /dev/null && [ "$(id -u)" = 0 ]; then
    log "installing etcd-server from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server > "$LOGS/apt.log" 2>&1 ||
      { apt-get update -qq > /dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server > "$LOGS/apt.log" 2>&1; } || true
  fi
  ETCD=$(command -v etcd) || { log "etcd not found (apt-get install etcd-server, or KUBEBUILDER_ASSETS)"; exit 1; }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [ ! -s "$D/ports" ]; then
  echo "ETCD_PORT=$(free_port) ETCD_PEER_PORT=$(free_port) API_PORT=$(free_port) KCM_PORT=$(free_port)" > "$D/ports"
fi
# shellcheck disable=SC1091
. "$D/ports"

# --- PKI: a CA, the serving cert, an admin client cert, the service-account keys ---
mkdir -p "$P"; chmod 700 "$P"
( cd "$P"
  [ -s ca.crt ] || { openssl genrsa -out ca.key 2048 2> /dev/null
    openssl req -x509 -new -nodes -key ca.key -sha256 -days 3650 -subj "/CN=test-ca" -out ca.crt; }
  issue() { [ -s "$1.crt" ] && return 0; openssl genrsa -out "$1.key" 2048 2> /dev/null
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"; printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 -extfile "$1.ext" -out "$1.crt" 2> /dev/null
    rm -f "$1.csr" "$1.ext"; }
  issue apiserver "/CN=kube-apiserver" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
  issue admin "/O=system:masters/CN=admin" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  [ -s sa.key ] || { openssl genrsa -out sa.key 2048 2> /dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2> /dev/null; }
  chmod 600 ./*.key )
cat > "$D/kubeconfig" << KC
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority-data: $(base64 -w0 "$P/ca.crt")}}]
users: [{name: admin, user: {client-certificate-data: $(base64 -w0 "$P/admin.crt"), client-key-data: $(base64 -w0 "$P/admin.key")}}]
contexts: [{name: admin@test, context: {cluster: test, user: admin}}]
current-context: admin@test
KC
chmod 600 "$D/kubeconfig"

launch() { local name=$1; shift; setsid nohup "$@" > "$LOGS/$name.log" 2>&1 < /dev/null 9>&- & echo $! > "$D/$name.pid"; }
# A process is declared dead only when two looks 0.5 s apart both miss it (not mid-exec). Ready
# means answering *and* alive: an orphan of an earlier start on the same port answers too.
wait_for() { for _ in $(seq 1 600); do eval "$2" && alive "$1" "$3" && return 0
    alive "$1" "$3" || { sleep 0.5; alive "$1" "$3"; } || { log "$1 died:"; tail -20 "$LOGS/$1.log" >&2; exit 1; }
    sleep 0.2; done
  log "timeout waiting for $1"; tail -20 "$LOGS/$1.log" >&2; exit 1; }

if ! alive etcd etcd; then
  launch etcd "$ETCD" --name test --data-dir "$D/etcd-data" --log-level warn \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "test=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync
fi
wait_for etcd "curl -sf --max-time 2 http://127.0.0.1:$ETCD_PORT/health | grep -q true" etcd

if ! alive kube-apiserver "$BIN/kube-apiserver"; then
  # HPAScaleToZero while this version still has the gate (a version that no longer lists it
  # would refuse to start with it).
  GATES=""
  help=$("$BIN/kube-apiserver" --help 2> /dev/null || true)
  [[ $help == *HPAScaleToZero=* ]] && GATES="--feature-gates=HPAScaleToZero=true"
  # shellcheck disable=SC2086
  launch kube-apiserver "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --authorization-mode=RBAC --client-ca-file="$P/ca.crt" \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.0.0.0/24 \
    --endpoint-reconciler-type=none --profiling=false --v=0 \
    $GATES \
    ${KUBE_APISERVER_FLAGS:-}
fi
wait_for kube-apiserver "[ \"\$(curl -s --max-time 3 --cacert $P/ca.crt https://127.0.0.1:$API_PORT/readyz)\" = ok ]" "$BIN/kube-apiserver"

if [ -x "$BIN/kube-controller-manager" ]; then
  if ! alive kube-controller-manager "$BIN/kube-controller-manager"; then
    launch kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$D/kubeconfig" \
      --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
      --use-service-account-credentials=false --service-account-private-key-file="$P/sa.key" \
      --root-ca-file="$P/ca.crt" --controllers='*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route' \
      --profiling=false --v=0
    wait_for kube-controller-manager "[ \"\$(curl -sk --max-time 3 https://127.0.0.1:$KCM_PORT/healthz)\" = ok ]" "$BIN/kube-controller-manager"
  fi
else
  log "no kube-controller-manager binary: Deployments are not reconciled and deleted namespaces stay Terminating"
fi
log "ready ($SOURCE): KUBECONFIG=$D/kubeconfig"
