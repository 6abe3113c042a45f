#!/usr/bin/env bash
# Local knoop testnet: N node processes on loopback, all bootstrapped from node 0.
#
#   testnet/local.sh up [N]     start N nodes (default 7) and seed the stories' care network
#                               (testnet/seed.sh; KNOOP_TESTNET_SEED=0 skips it)
#   testnet/local.sh status     one line per node: peers, transactions, digest
#   testnet/local.sh down       stop them (SIGTERM, clean shutdown)
#
# Env: KNOOP_BIN (default: target/debug/knoop, built if missing), KNOOP_TESTNET_DIR (default:
# testnet/.run), KNOOP_TESTNET_BASE_PORT (default 7400: node i uses RPC base+2i, p2p base+2i+1,
# public API base+50+i; the FHIR source server base+99).
#
# The FHIR source (testnet/fhir: Medplum's R4 engine with synthetic patients) starts first;
# node i fronts dataset i (mod 7) of it as its organisations' source system. All nodes share a
# testnet-only localisation pepper (never use it elsewhere) and run consent opt-in.
#
# The network is members-only (specs/admission.md): each node is set up first (knoop init),
# then gets a membership credential from the testnet's issuer, whose key is
# testnet/membership-issuer.key (testnet-only: never trust it elsewhere).
# KNOOP_TESTNET_OPEN=1 runs an open network instead.
#
# Node 0 is also the testnet's patient service (specs/patient-view.md): patients log in at
# http://127.0.0.1:<base+50>/patient/ through the testnet's OpenID Connect provider
# (testnet/idp, port base+98) as anna, pieter, ingrid or jeroen (any password), and every node
# trusts it as the PatientService.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
dir="${KNOOP_TESTNET_DIR:-$here/.run}"
base="${KNOOP_TESTNET_BASE_PORT:-7400}"
bin="${KNOOP_BIN:-$root/target/debug/knoop}"

ensure_bin() {
  if [ ! -x "$bin" ]; then
    echo "building knoop..." >&2
    (cd "$root" && cargo build -p knoop-node --bin knoop >&2)
  fi
}

wait_rpc() { # url
  for _ in $(seq 1 150); do
    curl -fsS "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "node at $1 did not come up; see $dir/*/node.log" >&2
  return 1
}

up() {
  local n="${1:-7}"
  ensure_bin
  mkdir -p "$dir"
  if [ -f "$dir/pids" ] && [ -s "$dir/pids" ]; then
    echo "a testnet is already running here ($dir/pids); run '$0 down' first" >&2
    exit 1
  fi
  : > "$dir/pids"; : > "$dir/rpc"
  local fhir_port=$((base + 99))
  "$here/fhir/install.sh"
  "$here/fhir/serve" --port "$fhir_port" >"$dir/fhir.out" 2>"$dir/fhir.log" &
  echo $! >> "$dir/pids"
  for _ in $(seq 1 150); do
    grep -q "listening" "$dir/fhir.out" 2>/dev/null && break
    sleep 0.2
  done
  grep -q "listening" "$dir/fhir.out" || { echo "the FHIR server did not start; see $dir/fhir.log" >&2; exit 1; }
  # The patients' identity provider (testnet-only client secret).
  local idp_port=$((base + 98)) idp_secret="testnet-only-patient-service-secret"
  "$here/idp/install.sh"
  node "$here/idp/idp.mjs" "$idp_port" knoop-patient-service "$idp_secret" \
    "http://127.0.0.1:$((base + 50))/patient/callback" \
    '{"anna": "999900109", "pieter": "999900171", "ingrid": "999900456", "jeroen": "999900249"}' \
    >"$dir/idp.out" 2>"$dir/idp.log" &
  echo $! >> "$dir/pids"
  local datasets=(leiden-hospital kerkrade-gp kerkrade-homecare kerkrade-pharmacy zwolle-gp zwolle-pharmacy zwolle-hospital)
  export KNOOP_NETWORK__ID=knoop-local-testnet
  export KNOOP_LOCALISATION__PEPPER=746573746e65742d6f6e6c792d7065707065722d646f2d6e6f742d7573652121
  export KNOOP_CONSENT__MODE=opt-in
  local members=1 issuer=""
  [ "${KNOOP_TESTNET_OPEN:-0}" = 1 ] && members=0
  if [ "$members" = 1 ]; then
    issuer=$("$bin" membership-credential --issuer-key "$here/membership-issuer.key" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuer"])')
  fi
  local boot=""
  for i in $(seq 0 $((n - 1))); do
    local rpc_port=$((base + 2 * i)) p2p_port=$((base + 2 * i + 1))
    mkdir -p "$dir/n$i"
    local member_env=()
    if [ "$members" = 1 ]; then
      local setup did peer
      setup=$("$bin" init --data-dir "$dir/n$i" --config "$dir/n$i/knoop.toml" 2>>"$dir/n$i/node.log")
      did=$(echo "$setup" | python3 -c 'import json,sys; print(json.load(sys.stdin)["did"])')
      peer=$(echo "$setup" | python3 -c 'import json,sys; print(json.load(sys.stdin)["peer_id"])')
      "$bin" membership-credential --issuer-key "$here/membership-issuer.key" --subject "$did" \
        --peer-id "$peer" --network "$KNOOP_NETWORK__ID" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"])' > "$dir/n$i/membership.jwt"
      member_env=("KNOOP_P2P__MEMBERSHIP_ISSUERS=[\"$issuer\"]"
        "KNOOP_P2P__MEMBERSHIP_NETWORK=$KNOOP_NETWORK__ID"
        "KNOOP_P2P__MEMBERSHIP_CREDENTIAL=$dir/n$i/membership.jwt")
    fi
    local args=(run --data-dir "$dir/n$i" --rpc-listen "127.0.0.1:$rpc_port" --p2p-listen "/ip4/127.0.0.1/tcp/$p2p_port")
    if [ -n "$boot" ]; then args+=(--bootstrap "$boot"); fi
    if [ "$i" = 0 ]; then
      member_env+=("KNOOP_PATIENT_SERVICE__ISSUER=http://127.0.0.1:$idp_port"
        "KNOOP_PATIENT_SERVICE__CLIENT_SECRET=$idp_secret")
    fi
    env "${member_env[@]}" \
    KNOOP_PUBLIC__LISTEN="127.0.0.1:$((base + 50 + i))" \
    KNOOP_SOURCE__FHIR="http://127.0.0.1:$fhir_port/${datasets[$((i % 7))]}" \
      "$bin" "${args[@]}" >>"$dir/n$i/node.log" 2>&1 &
    echo $! >> "$dir/pids"
    echo "http://127.0.0.1:$rpc_port" >> "$dir/rpc"
    wait_rpc "http://127.0.0.1:$rpc_port"
    if [ -z "$boot" ]; then
      local pid
      pid=$(curl -fsS "http://127.0.0.1:$rpc_port/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["peer_id"])')
      boot="/ip4/127.0.0.1/tcp/$p2p_port/p2p/$pid"
    fi
  done
  # Every node trusts node 0's patient service.
  local service
  service=$(curl -fsS "http://127.0.0.1:$base/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["patient_service"])')
  while read -r url; do
    "$bin" vc trust --rpc "$url" --type PatientService "$service" >/dev/null
  done < "$dir/rpc"
  echo "FHIR source: http://127.0.0.1:$fhir_port/<dataset> (testnet/fhir/data/README.md)"
  echo "patients: http://127.0.0.1:$((base + 50))/patient/ (log in as anna, pieter, ingrid or jeroen; any password)"
  echo "testnet of $n nodes is up; bootstrap peer: $boot"
  echo "RPC URLs (also in $dir/rpc):"
  cat "$dir/rpc"
  echo "try: $bin load --rpc $(paste -sd, "$dir/rpc") --count 1000 --rate 500"
  if [ "${KNOOP_TESTNET_SEED:-1}" != 0 ]; then
    KNOOP_TESTNET_DIR="$dir" KNOOP_BIN="$bin" "$here/seed.sh"
    echo "seeded: play the stories with testnet/stories.sh (the walkthrough: testnet/README.md)"
  fi
}

status() {
  [ -f "$dir/rpc" ] || { echo "no testnet in $dir" >&2; exit 1; }
  while read -r url; do
    curl -fsS "$url/status" 2>/dev/null | python3 -c '
import json,sys
s=json.load(sys.stdin)
p, t, q, d = s["peers"], s["transactions"], s["pending"], s["digest"][:24]
print(f"{sys.argv[1]}  peers={p:<3} transactions={t:<8} pending={q:<5} digest={d}")' "$url" \
      || echo "$url  down"
  done < "$dir/rpc"
}

down() {
  [ -f "$dir/pids" ] || { echo "no testnet in $dir"; return 0; }
  while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done < "$dir/pids"
  for _ in $(seq 1 100); do
    local alive=0
    while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$dir/pids"
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$dir/pids"
  : > "$dir/pids"
  echo "testnet stopped (data kept in $dir; remove it for a fresh start)"
}

case "${1:-}" in
  up) up "${2:-7}" ;;
  status) status ;;
  down) down ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
