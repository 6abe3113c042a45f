#!/usr/bin/env bash
# Plays the mission's two stories through the knoop CLI against a seeded local testnet
# (testnet/local.sh up 7), checking each answer; exits non-zero at the first thing that is not as
# the story says. Every step prints the command it runs, so it doubles as a walkthrough.
#
#   Story 1: Anna (BSN 999900109) is discharged from Ziekenhuis Leiden to Kerkrade. Before her
#            consent nothing flows; she consents at her GP; the GP gets the discharge summary
#            from the hospital's system, the home-care nurse the diagnoses and care plan, the
#            pharmacist the discharge medication.
#   Story 2: Pieter (BSN 999900171) has a TIA on the Veluwe. The emergency department gets his
#            medication and his contrast allergy from his GP, pharmacy and hospital in Zwolle at
#            once. Ingrid, who never consented, gets nothing shared (opt-in).
#
# Env as local.sh (KNOOP_TESTNET_DIR, KNOOP_BIN).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
dir="${KNOOP_TESTNET_DIR:-$here/.run}"
bin="${KNOOP_BIN:-$root/target/debug/knoop}"
world="$dir/world"
[ -f "$world/world.env" ] || { echo "no seeded testnet in $dir (testnet/local.sh up 7)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$world/world.env"
if [ -z "${ZWOLLE_HOSPITAL:-}" ] || [ -z "${VELUWE_ED:-}" ]; then
  echo "the stories need 7 nodes" >&2
  exit 1
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

say() { printf '\n== %s\n' "$*"; }
run() { echo "\$ knoop ${*//--rpc http:\/\/127.0.0.1:/--rpc :}" | sed "s#$world/##g" >&2; "$bin" "$@"; }

# fetch FILE RPC CREDS BSN SCOPE PURPOSE [REASON] -- CATEGORIES...: one data fetch, summary to FILE
fetch() {
  local file=$1 rpc=$2 requester=$3 creds=$4 bsn=$5 scope=$6 purpose=$7 reason=${8:-}
  shift 8
  local cats=()
  for c in "$@"; do cats+=(--category "$c"); done
  local extra=()
  [ -n "$reason" ] && extra=(--reason "$reason")
  # shellcheck disable=SC2086
  echo "$bsn" | run data fetch --rpc "$rpc" --requester "$requester" $creds --bsn - \
    --scope "$scope" --purpose "$purpose" "${extra[@]}" "${cats[@]}" --summary > "$file"
}

# check FILE PYTHON-EXPRESSION: the expression over s (the summary) must hold.
check() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
def n(rtype, source):
    return s["resources"].get(rtype, {}).get(source, 0)
def status(node_did):
    return next((x["status"] for x in s["sources"] if x["node"] == node_did), "absent")
def statuses():
    return {x["node"]: x["status"] for x in s["sources"]}
ok = eval(sys.argv[2])
if not ok:
    print("NOT AS EXPECTED:", sys.argv[2], "\n", json.dumps(s, indent=1), file=sys.stderr)
    sys.exit(1)
EOF
}

# until FILE WHAT EXPRESSION -- FETCH-ARGS...: fetch again until the expression holds (the
# network carries registrations and consents first), at most 60 s.
until_ok() {
  local file=$1 what=$2 expr=$3
  shift 3
  for i in $(seq 1 120); do
    if [ "$i" = 1 ]; then fetch "$file" "$@"; else fetch "$file" "$@" 2>/dev/null; fi
    if check "$file" "$expr" 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "never happened: $what" >&2
  check "$file" "$expr"
}

node_did() { curl -fsS "$1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["did"])'; }
H_NODE=$(node_did "$LEIDEN_HOSPITAL_RPC")

say "Story 1: Anna is discharged from Ziekenhuis Leiden to Kerkrade"
say "Before her consent (opt-in) the GP finds the hospital, and nothing is shared"
until_ok "$out/1a" "the hospital is found" "status('$H_NODE') != 'absent'" \
  "$KERKRADE_GP_RPC" "$KERKRADE_GP" "$KERKRADE_GP_CREDS" "$ANNA" discharge-summary regular-care "" \
  summary problems care-plan
check "$out/1a" "status('$H_NODE') == 'no_permitted_data' and s['total'] == 0"
echo "hospital: $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print([x["status"] for x in s["sources"] if x["node"]==sys.argv[2]][0])' "$out/1a" "$H_NODE")"

say "She consents at her GP: her carers may share everything for regular care"
echo "$ANNA" | run consent register --rpc "$KERKRADE_GP_RPC" --issuer "$KERKRADE_GP" --bsn - \
  --decision permit --purpose regular-care --category '*' --requester-type gp \
  --requester-type homecare --requester-type pharmacy --requester-type hospital --method verbal >/dev/null

say "The GP pulls the discharge summary, diagnoses and care plan from the hospital's system"
until_ok "$out/1b" "the GP gets the discharge summary" "status('$H_NODE') == 'ok'" \
  "$KERKRADE_GP_RPC" "$KERKRADE_GP" "$KERKRADE_GP_CREDS" "$ANNA" discharge-summary regular-care "" \
  summary problems care-plan
check "$out/1b" "n('Composition', '$LEIDEN_HOSPITAL') == 1 and n('Condition', '$LEIDEN_HOSPITAL') == 3 and n('CarePlan', '$LEIDEN_HOSPITAL') == 1"
# Only what was asked (summary, problems, care plan; specs/data-sets.md §2): no medication, no
# lab, no encounters.
check "$out/1b" "set(s['resources']) <= {'Composition', 'Coverage', 'Flag', 'DocumentReference', 'Observation', 'Condition', 'CarePlan', 'Consent', 'NutritionOrder', 'ServiceRequest', 'DeviceRequest', 'DeviceUseStatement', 'Appointment'}"
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["resources"], indent=1))' "$out/1b"

say "The home-care nurse pulls the diagnoses and the care plan"
fetch "$out/1c" "$KERKRADE_HOMECARE_RPC" "$KERKRADE_HOMECARE" "$KERKRADE_HOMECARE_CREDS" "$ANNA" \
  discharge-summary regular-care "" problems care-plan
check "$out/1c" "n('Condition', '$LEIDEN_HOSPITAL') == 3 and n('CarePlan', '$LEIDEN_HOSPITAL') == 1 and n('Condition', '$KERKRADE_GP') == 4"

say "The pharmacist pulls the discharge medication and the GP's medication list"
fetch "$out/1d" "$KERKRADE_PHARMACY_RPC" "$KERKRADE_PHARMACY" "$KERKRADE_PHARMACY_CREDS" "$ANNA" \
  medication-overview regular-care "" medication
check "$out/1d" "n('MedicationRequest', '$LEIDEN_HOSPITAL') == 5 and n('MedicationStatement', '$KERKRADE_GP') == 4"

say "The hospital's audit log holds every decision, and its hash chain verifies"
run audit list --rpc "$LEIDEN_HOSPITAL_RPC" > "$out/1e"
run audit verify --rpc "$LEIDEN_HOSPITAL_RPC" > "$out/1f"
python3 - "$out/1e" "$out/1f" "$KERKRADE_GP" <<'EOF'
import json, sys
entries = json.load(open(sys.argv[1]))["entries"]
verdict = json.load(open(sys.argv[2]))
gp = sys.argv[3]
grants = [e for e in entries if e["kind"] == "token" and e["requester"] == gp and e["outcome"].startswith("granted")]
served = [e for e in entries if e["kind"] == "data" and e["outcome"].startswith("served") and "Composition" in e["outcome"]]
refused = [e for e in entries if e["requester"] == gp and e["outcome"] == "no_permitted_data"]
assert grants and served and refused, json.dumps(entries, indent=1)
assert verdict.get("valid") is True, verdict
assert all("999900109" not in json.dumps(e) for e in entries), "a BSN in the audit log"
print(f"audit: {len(entries)} entries; the GP's grant, the served Composition and the earlier refusal are there; no BSN; chain valid")
EOF

say "Story 2: Pieter has a TIA on the Veluwe; the emergency department needs his medication and allergies"
until_ok "$out/2a" "all three holders answer" "len([x for x in s['sources'] if x['status'] == 'ok']) == 3" \
  "$VELUWE_ED_RPC" "$VELUWE_ED" "$VELUWE_ED_CREDS" "$PIETER" medication-overview emergency \
  "unresponsive after a TIA, CT angiography with contrast planned" medication allergies
check "$out/2a" "n('MedicationStatement', '$ZWOLLE_GP') == 3 and n('MedicationDispense', '$ZWOLLE_PHARMACY') == 7"
check "$out/2a" "all(n('AllergyIntolerance', d) == 1 for d in ['$ZWOLLE_GP', '$ZWOLLE_PHARMACY', '$ZWOLLE_HOSPITAL'])"
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["resources"], indent=1))' "$out/2a"

say "Ingrid never consented (opt-in): the emergency department finds her holders, nothing is shared"
until_ok "$out/2b" "Ingrid's holders are found" "len(s['sources']) >= 2" \
  "$VELUWE_ED_RPC" "$VELUWE_ED" "$VELUWE_ED_CREDS" "$INGRID" medication-overview regular-care "" \
  medication allergies
check "$out/2b" "s['total'] == 0 and all(x['status'] in ('no_permitted_data', 'refused') for x in s['sources'])"

say "both stories played as told"
