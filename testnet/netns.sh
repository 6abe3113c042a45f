#!/usr/bin/env bash
# knoop testnet in Linux network namespaces: each node is its own host (no loopback between nodes).
#
#   testnet/netns.sh available      exit 0 if network namespaces can be created here (root / CAP_NET_ADMIN)
#   testnet/netns.sh up [N]         start N nodes (default 3), each in namespace <prefix>h<i>
#   testnet/netns.sh status         one line per node: peers, transactions, digest
#   testnet/netns.sh check [COUNT] [I]  publish COUNT txs (default 200) via node I (default 0);
#                                   all nodes must converge
#   testnet/netns.sh publish I COUNT    publish COUNT txs via node I, without waiting for the others
#   testnet/netns.sh faults I SPEC  a faulty link for node I, both ways: SPEC is comma-separated
#                                   loss=<0..1> (packets dropped at random, iptables statistic),
#                                   dup=<0..1> (packets sent twice, iptables TEE), rate=<tc rate>
#                                   (a bandwidth cap whose queue delays, tc tbf), or "off"
#   testnet/netns.sh partition I... cut nodes I... off from the rest (they still reach each other)
#   testnet/netns.sh heal           join every node to one network again
#   testnet/netns.sh down           stop the nodes, delete the namespaces (idempotent)
#
# (tc netem, which would also delay and reorder, is not in every kernel: this one has none, so
# loss and duplication use netfilter and delay comes from a bandwidth cap. TCP retransmission
# of lost packets reorders what arrives.)
#
# Env: KNOOP_BIN (default: target/debug/knoop, built if missing), KNOOP_NETNS_DIR (default:
# testnet/.netns; node i keeps its data and node.log in <dir>/n<i>), KNOOP_NETNS_PREFIX (default
# knoop-: namespaces <prefix>br and <prefix>h0..), KNOOP_NETNS_SUBNET (default 10.77.0: a /24,
# node i is <subnet>.<i+1>), KNOOP_NETNS_TIMEOUT (default 60: seconds check waits to converge).
#
# The namespace <prefix>br holds a bridge; node i's namespace is linked to it by a veth pair (eth0
# inside the node's namespace), so the host's network is untouched. Inside its namespace node i has
# its RPC on 127.0.0.1:7474 and public API on 127.0.0.1:7476 (its own loopback) and p2p on
# /ip4/<subnet>.<i+1>/tcp/7475; node 0 is the bootstrap peer of the others.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
dir="${KNOOP_NETNS_DIR:-$here/.netns}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
bin="${KNOOP_BIN:-$root/target/debug/knoop}"
prefix="${KNOOP_NETNS_PREFIX:-knoop-}"
subnet="${KNOOP_NETNS_SUBNET:-10.77.0}"
timeout_s="${KNOOP_NETNS_TIMEOUT:-60}"
brns="${prefix}br"
rpc="http://127.0.0.1:7474"

die() { echo "netns.sh: $*" >&2; exit 1; }
hostns() { echo "${prefix}h$1"; }
ip_of() { echo "$subnet.$(($1 + 1))"; }

# Namespaces of this prefix that exist now (bridge last), whether or not the state dir does.
our_namespaces() {
  local name rest hosts=() br=()
  while read -r name _; do
    [ -n "$name" ] || continue
    case "$name" in "$prefix"*) ;; *) continue ;; esac
    rest="${name#"$prefix"}"
    if [ "$rest" = br ]; then br+=("$name")
    elif [[ "$rest" =~ ^h[0-9]+$ ]]; then hosts+=("$name"); fi
  done < <(ip netns list 2>/dev/null)
  if [ "${#hosts[@]}" -gt 0 ]; then printf '%s\n' "${hosts[@]}"; fi
  if [ "${#br[@]}" -gt 0 ]; then printf '%s\n' "${br[@]}"; fi
  return 0
}

nodes() { # number of nodes of the running testnet
  [ -s "$dir/nodes" ] || die "no netns testnet in $dir (run '$0 up' first)"
  cat "$dir/nodes"
}

# GET a node's RPC path from inside its namespace.
node_get() { # i path
  ip netns exec "$(hostns "$1")" curl -fsS --max-time 5 "$rpc$2"
}

ensure_bin() {
  if [ ! -x "$bin" ]; then
    echo "building knoop..." >&2
    (cd "$root" && cargo build -p knoop-node --bin knoop >&2)
  fi
}

need_tools() {
  local t
  for t in ip curl python3; do
    command -v "$t" >/dev/null 2>&1 || die "$t is required"
  done
}

available() {
  need_tools
  local probe="${prefix}probe-$$" ok=0
  if ip netns add "$probe" 2>/dev/null; then
    if ip -n "$probe" link add pa type veth peer name pb 2>/dev/null \
      && ip -n "$probe" link set lo up 2>/dev/null \
      && ip netns exec "$probe" true 2>/dev/null; then
      ok=1
    fi
    ip netns del "$probe" 2>/dev/null || true
  fi
  if [ "$ok" = 1 ]; then
    echo "network namespaces available"
    return 0
  fi
  echo "network namespaces not available here (needs root / CAP_NET_ADMIN, iproute2 and veth support)" >&2
  return 1
}

log_tail() { # i
  echo "---- last lines of $dir/n$1/node.log ----" >&2
  tail -n 30 "$dir/n$1/node.log" >&2 2>/dev/null || true
  echo "----" >&2
}

# Wait until node i answers /health inside its namespace (and its process is alive).
wait_node() { # i pid
  for _ in $(seq 1 150); do
    if ! kill -0 "$2" 2>/dev/null; then
      echo "node $1 exited during startup" >&2
      log_tail "$1"
      return 1
    fi
    ip netns exec "$(hostns "$1")" curl -fsS --max-time 2 "$rpc/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "node $1 did not answer $rpc/health in $(hostns "$1") within 30s" >&2
  log_tail "$1"
  return 1
}

up() {
  local n="${1:-3}"
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 250 ]; then die "N must be 1..250, got '$n'"; fi
  need_tools
  ensure_bin
  down >/dev/null # leftovers of an earlier run (processes and namespaces)
  mkdir -p "$dir"
  rm -rf "$dir"/n[0-9]* "$dir/pids" "$dir/nodes"
  : > "$dir/pids"

  trap 'echo "netns.sh: up failed; removing what it set up" >&2; down >/dev/null' ERR
  # The wiring: a bridge in its own namespace, one veth pair per node, nothing in the host's.
  ip netns add "$brns"
  ip -n "$brns" link set lo up
  ip -n "$brns" link add br0 type bridge
  ip -n "$brns" link set br0 up
  local i ns
  for i in $(seq 0 $((n - 1))); do
    ns="$(hostns "$i")"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$brns" link add "v$i" type veth peer name eth0 netns "$ns"
    ip -n "$brns" link set "v$i" master br0
    ip -n "$brns" link set "v$i" up
    ip -n "$ns" addr add "$(ip_of "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
  echo "$n" > "$dir/nodes"

  export KNOOP_NETWORK__ID=knoop-netns-testnet
  export KNOOP_LOCALISATION__PEPPER=746573746e65742d6f6e6c792d7065707065722d646f2d6e6f742d7573652121
  export KNOOP_PUBLIC__LISTEN=127.0.0.1:7476
  export NO_COLOR=1 # plain node.log
  local boot="" pid peer_id args
  for i in $(seq 0 $((n - 1))); do
    ns="$(hostns "$i")"
    mkdir -p "$dir/n$i"
    args=(run --data-dir "$dir/n$i" --rpc-listen 127.0.0.1:7474 --p2p-listen "/ip4/$(ip_of "$i")/tcp/7475")
    if [ -n "$boot" ]; then args+=(--bootstrap "$boot"); fi
    # `ip netns exec` execs the command, so $! is the node's own pid.
    ip netns exec "$ns" "$bin" "${args[@]}" >>"$dir/n$i/node.log" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" >> "$dir/pids"
    if ! wait_node "$i" "$pid"; then
      down >/dev/null
      die "testnet did not come up (data and logs kept in $dir)"
    fi
    if [ -z "$boot" ]; then
      peer_id=$(node_get 0 /status | python3 -c 'import json,sys; print(json.load(sys.stdin)["peer_id"])')
      boot="/ip4/$(ip_of 0)/tcp/7475/p2p/$peer_id"
    fi
  done

  # Ready means: every node has a peer.
  local waiting=""
  for _ in $(seq 1 150); do
    waiting=""
    for i in $(seq 0 $((n - 1))); do
      local p
      p=$(node_get "$i" /status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["peers"])' 2>/dev/null || echo 0)
      [ "$p" -ge 1 ] || waiting+=" $i"
    done
    [ -z "$waiting" ] && break
    sleep 0.2
  done
  if [ -n "$waiting" ]; then
    for i in $waiting; do echo "node $i has no peers after 30s" >&2; log_tail "$i"; done
    die "testnet is up but not connected (run '$0 down' to stop it)"
  fi
  trap - ERR
  echo "netns testnet of $n nodes is up (namespaces $(hostns 0)..$(hostns $((n - 1))), bridge in $brns)"
  echo "bootstrap peer: $boot"
  echo "RPC of node i: ip netns exec ${prefix}h<i> curl $rpc/status"
}

status() {
  local n i
  n="$(nodes)"
  for i in $(seq 0 $((n - 1))); do
    node_get "$i" /status 2>/dev/null | python3 -c '
import json,sys
s=json.load(sys.stdin)
p, t, q, d = s["peers"], s["transactions"], s["pending"], s["digest"][:24]
print(f"{sys.argv[1]:<16} peers={p:<3} transactions={t:<8} pending={q:<5} digest={d}")' "$(hostns "$i")" 2>/dev/null \
      || echo "$(hostns "$i")  down"
  done
}

# Judge a snapshot of all nodes' /status (one JSON object per line on stdin): prints "ok <summary>"
# when converged, else "wait <reason>" or "fail <reason>" (fail: a condition that waiting won't fix).
judge() { # count subnet
  python3 -c '
import json, sys
count, subnet = int(sys.argv[1]), sys.argv[2]
pre = "/ip4/" + subnet + "."
rows = [json.loads(l) if l.strip() not in ("", "down") else None for l in sys.stdin]
for i, s in enumerate(rows):
    if s is None:
        print(f"fail node {i} does not answer its RPC"); sys.exit()
for i, s in enumerate(rows):
    listen = s["listen_addrs"]
    if not listen or any(not a.startswith(pre) for a in listen):
        print(f"fail node {i} listens on {listen}, expected only {pre}x addresses"); sys.exit()
    if s["peers"] < 1:
        print(f"wait node {i} has no peers"); sys.exit()
    bad = [p["address"] for p in s["peer_list"] if not p["address"].startswith(pre)]
    if bad:
        print(f"fail node {i} has peers at {bad}, expected only {pre}x addresses"); sys.exit()
counts = [s["transactions"] for s in rows]
digests = {s["digest"] for s in rows}
if min(counts) < count or len(set(counts)) > 1 or len(digests) > 1:
    print(f"wait transactions={counts} digests={len(digests)}"); sys.exit()
peers = [s["peers"] for s in rows]
digest = rows[0]["digest"][:24]
print(f"ok {len(rows)} nodes agree: transactions={counts[0]} digest={digest} peers={peers}")
' "$1" "$2"
}

publish() { # i count
  local i="$1" count="$2"
  if ! ip netns exec "$(hostns "$i")" "$bin" load --rpc "$rpc" --count "$count" --rate 200 > "$dir/load.out" 2> "$dir/load.err"; then
    cat "$dir/load.out" "$dir/load.err" >&2
    die "knoop load through node $i failed"
  fi
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
n, acc, took = int(sys.argv[2]), r["accepted"], r["elapsed_s"]
if acc != n:
    sys.exit(f"knoop load: only {acc} of {n} transactions accepted")
print(f"published {acc} transactions through node {sys.argv[3]} in {took:.1f}s")
' "$dir/load.out" "$count" "$i"
}

faults() { # i spec
  local i="$1" spec="$2" ns item key value j
  ns="$(hostns "$i")"
  command -v iptables >/dev/null 2>&1 || die "iptables is required for faults"
  # Start from a clean link: no rules, no queue discipline of ours.
  ip netns exec "$ns" iptables -F
  ip netns exec "$ns" iptables -t mangle -F
  ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
  ip netns exec "$brns" tc qdisc del dev "v$i" root 2>/dev/null || true
  [ "$spec" = off ] && { echo "node $i: link faults off"; return 0; }
  IFS=, read -r -a items <<< "$spec"
  for item in "${items[@]}"; do
    key="${item%%=*}"; value="${item#*=}"
    case "$key" in
      loss)
        ip netns exec "$ns" iptables -A OUTPUT -o eth0 -m statistic --mode random --probability "$value" -j DROP
        ip netns exec "$ns" iptables -A INPUT -i eth0 -m statistic --mode random --probability "$value" -j DROP ;;
      dup)
        # TEE sends a copy of the packet to the gateway: the destination node itself.
        for j in $(seq 0 $(($(nodes) - 1))); do
          [ "$j" = "$i" ] && continue
          ip netns exec "$ns" iptables -t mangle -A POSTROUTING -o eth0 -d "$(ip_of "$j")" \
            -m statistic --mode random --probability "$value" -j TEE --gateway "$(ip_of "$j")"
        done ;;
      rate)
        ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "$value" burst 16kb latency 500ms
        ip netns exec "$brns" tc qdisc replace dev "v$i" root tbf rate "$value" burst 16kb latency 500ms ;;
      *) die "faults: unknown '$key' (loss, dup, rate or off)" ;;
    esac
  done
  echo "node $i: link faults $spec"
}

partition() { # i...
  local i
  if ! ip -n "$brns" link show br1 >/dev/null 2>&1; then
    ip -n "$brns" link add br1 type bridge
    ip -n "$brns" link set br1 up
  fi
  for i in "$@"; do ip -n "$brns" link set "v$i" master br1; done
  echo "partitioned: nodes $* apart from the rest"
}

heal() {
  local i
  for i in $(seq 0 $(($(nodes) - 1))); do ip -n "$brns" link set "v$i" master br0; done
  echo "healed: every node on one network"
}

check() {
  local count="${1:-200}" via="${2:-0}" n i verdict="" start now base loaded
  if ! [[ "$count" =~ ^[0-9]+$ ]] || [ "$count" -lt 1 ]; then die "COUNT must be a positive number, got '$count'"; fi
  n="$(nodes)"
  for i in $(seq 0 $((n - 1))); do
    node_get "$i" /health >/dev/null 2>&1 || { log_tail "$i"; die "node $i ($(hostns "$i")) does not answer"; }
  done
  # The converged set must hold everything any node had before plus the new transactions.
  base=0
  for i in $(seq 0 $((n - 1))); do
    local t
    t=$(node_get "$i" /status | python3 -c 'import json,sys; print(json.load(sys.stdin)["transactions"])')
    [ "$t" -gt "$base" ] && base=$t
  done
  echo "publishing $count transactions through node $via ($(hostns "$via")); before: up to $base per node"
  if ! ip netns exec "$(hostns "$via")" "$bin" load --rpc "$rpc" --count "$count" --rate 200 > "$dir/load.out" 2> "$dir/load.err"; then
    cat "$dir/load.out" "$dir/load.err" >&2
    die "knoop load failed"
  fi
  loaded=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
n, acc, took = int(sys.argv[2]), r["accepted"], r["elapsed_s"]
if acc != n:
    sys.exit(f"knoop load: only {acc} of {n} transactions accepted")
print(f"{acc} accepted in {took:.1f}s")
' "$dir/load.out" "$count" 2>&1) || { cat "$dir/load.out" "$dir/load.err" >&2; die "$loaded"; }
  echo "load: $loaded"
  start=$(date +%s.%N)
  while :; do
    verdict=$(for i in $(seq 0 $((n - 1))); do node_get "$i" /status 2>/dev/null || echo down; echo; done \
      | sed '/^$/d' | judge $((base + count)) "$subnet")
    case "$verdict" in
      ok*) break ;;
      fail*) die "check failed: ${verdict#fail }" ;;
    esac
    now=$(date +%s.%N)
    if python3 -c 'import sys; sys.exit(float(sys.argv[1]) - float(sys.argv[2]) < float(sys.argv[3]))' "$now" "$start" "$timeout_s"; then
      status >&2
      die "check failed: no convergence within ${timeout_s}s of the load (want >= $((base + count)) transactions on every node): ${verdict#wait }"
    fi
    sleep 0.5
  done
  now=$(date +%s.%N)
  echo "check ok: ${verdict#ok } (converged $(python3 -c 'import sys; print(f"{float(sys.argv[1]) - float(sys.argv[2]):.1f}")' "$now" "$start")s after the load)"
}

running() { # pid: alive and not a zombie
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

down() {
  local ns pid pids=() alive
  # The nodes: those recorded (if still this testnet's nodes: a pid may have been reused), and
  # anything still running in our namespaces.
  if [ -f "$dir/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "--data-dir $dir/n" \
        && pids+=("$pid")
    done < "$dir/pids"
  fi
  while read -r ns; do
    [ -n "$ns" ] || continue
    while read -r pid; do [ -n "$pid" ] && pids+=("$pid"); done < <(ip netns pids "$ns" 2>/dev/null || true)
  done < <(our_namespaces)
  if [ "${#pids[@]}" -gt 0 ]; then
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      alive=0
      for pid in "${pids[@]}"; do running "$pid" && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.2
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  # Deleting a namespace deletes the veth ends in it (and so their peers) and the bridge.
  while read -r ns; do
    [ -n "$ns" ] || continue
    ip netns del "$ns" 2>/dev/null || echo "could not delete namespace $ns" >&2
  done < <(our_namespaces)
  if [ -d "$dir" ]; then rm -f "$dir/pids" "$dir/nodes"; fi
  echo "netns testnet stopped (data kept in $dir)"
}

case "${1:-}" in
  available) available ;;
  up) up "${2:-3}" ;;
  status) status ;;
  check) check "${2:-200}" "${3:-0}" ;;
  publish) publish "${2:?node}" "${3:?count}" ;;
  faults) faults "${2:?node}" "${3:?spec}" ;;
  partition) shift; partition "$@" ;;
  heal) heal ;;
  down) down ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
