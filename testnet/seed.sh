#!/usr/bin/env bash
# Seeds a running local testnet (testnet/local.sh up 7) with the care network of the two stories,
# through the knoop CLI only:
#
#   - a registry authority (on node 0) that every node trusts for CareOrganizationCredential;
#   - one care organisation per node (node i fronts FHIR dataset i), plus the emergency
#     department on the Veluwe as a second tenant of node 0; each with an organisation
#     credential from the registry and one professional with a HealthcareProfessionalCredential;
#   - the patients registered at the organisations whose source systems hold them (each node
#     links its own local Patient id by BSN): Anna (story 1) in Leiden and Kerkrade, Pieter
#     (story 2) in Zwolle, Ingrid in Zwolle, Jeroen in Leiden;
#   - Pieter's consent, given earlier at his GP: medication and allergies for hospitals and GPs,
#     for regular care and emergencies. (Anna consents during story 1: testnet/stories.sh.)
#
# Writes what the stories need to $KNOOP_TESTNET_DIR/world/ (DIDs, credentials, world.env).
# local.sh up runs this itself (KNOOP_TESTNET_SEED=0 skips it). Env as local.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
dir="${KNOOP_TESTNET_DIR:-$here/.run}"
bin="${KNOOP_BIN:-$root/target/debug/knoop}"
world="$dir/world"

mapfile -t rpc < "$dir/rpc"
n=${#rpc[@]}
if [ "$n" -lt 7 ]; then
  echo "seed: the stories need 7 nodes (this testnet has $n); seeding the first $n organisations" >&2
fi
mkdir -p "$world"

json() { python3 -c 'import json,sys; v=json.load(sys.stdin); print(eval("v"+sys.argv[1]))' "$1"; }
k() { "$bin" "$@"; }

# name | city | type | URA | professional | role code   (index = node; 7 = node 0's second tenant)
orgs=(
  "Ziekenhuis Leiden|Leiden|hospital|99990011|Dr. M. Verbeek (geriatrics)|01.010"
  "Huisartsenpraktijk Kerkrade-West|Kerkrade|gp|99990022|Dr. L. Crombach|01.015"
  "Wijkverpleging Kerkrade|Kerkrade|homecare|99990033|E. Schmeitz, wijkverpleegkundige|30.000"
  "Apotheek Kerkrade Noord|Kerkrade|pharmacy|99990044|J. Brouns, apotheker|17.000"
  "Huisartsenpraktijk Assendorp|Zwolle|gp|99990055|Dr. H. Visser|01.015"
  "Apotheek Zwolle-Zuid|Zwolle|pharmacy|99990066|K. Smit, apotheker|17.000"
  "Ziekenhuis Zwolle|Zwolle|hospital|99990077|Dr. R. Jansen|01.010"
  "Ziekenhuis Veluwe SEH|Apeldoorn|hospital|99990088|Dr. S. Bos (SEH-arts)|01.010"
)
vars=(LEIDEN_HOSPITAL KERKRADE_GP KERKRADE_HOMECARE KERKRADE_PHARMACY ZWOLLE_GP ZWOLLE_PHARMACY ZWOLLE_HOSPITAL VELUWE_ED)

echo "seed: registry authority on node 0"
ra=$(k did create --rpc "${rpc[0]}" | json '["did"]')
echo "$ra" > "$world/ra.did"
for url in "${rpc[@]}"; do
  k vc trust --rpc "$url" --type CareOrganizationCredential "$ra" >/dev/null
done

: > "$world/world.env"
echo "RA=$ra" >> "$world/world.env"
seeded=0
for i in "${!orgs[@]}"; do
  node=$i; [ "$i" = 7 ] && node=0
  [ "$node" -lt "$n" ] || continue
  IFS='|' read -r name city type ura pro role <<< "${orgs[$i]}"
  url="${rpc[$node]}"
  did=$(k did create --rpc "$url" | json '["did"]')
  k vc issue --rpc "${rpc[0]}" --issuer "$ra" --type CareOrganizationCredential --publish \
    --subject "{\"id\":\"$did\",\"legalName\":\"$name\",\"city\":\"$city\",\"organizationType\":\"$type\",\"ura\":\"$ura\"}" \
    > "$world/org$i.vc.json"
  person=$(k did create --rpc "$url" | json '["did"]')
  k vc issue --rpc "$url" --issuer "$did" --type HealthcareProfessionalCredential \
    --subject "{\"id\":\"$person\",\"name\":\"$pro\",\"roleCode\":\"$role\",\"registerId\":\"19000000001\",\"employer\":\"$did\"}" \
    > "$world/pro$i.vc.json"
  echo "$did" > "$world/org$i.did"
  {
    echo "${vars[$i]}=$did"
    echo "${vars[$i]}_RPC=$url"
    echo "${vars[$i]}_CREDS=\"--credential $world/org$i.vc.json --credential $world/pro$i.vc.json\""
  } >> "$world/world.env"
  seeded=$((seeded + 1))
  echo "seed: $name ($type, $city) on node $node: $did"
done

# The directory must reach every node before anyone presents these credentials there.
for url in "${rpc[@]}"; do
  for _ in $(seq 1 300); do
    c=$(curl -fsS "$url/v1/directory" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["organizations"]))')
    [ "$c" -ge "$seeded" ] && break
    sleep 0.2
  done
  [ "$c" -ge "$seeded" ] || { echo "seed: $url lists $c of $seeded organisations" >&2; exit 1; }
done

register() { # org index, BSN, categories...
  local i=$1 bsn=$2; shift 2
  local node=$i; [ "$i" = 7 ] && node=0
  [ "$node" -lt "$n" ] || return 0
  local cats=()
  for c in "$@"; do cats+=(--category "$c"); done
  local out
  out=$(echo "$bsn" | k loc register --rpc "${rpc[$node]}" --holder "$(cat "$world/org$i.did")" --bsn - "${cats[@]}")
  echo "seed: registered at ${vars[$i]}: $(echo "$out" | json '.get("source_patient")') ($*)"
}
ANNA=999900109 PIETER=999900171 INGRID=999900456 JEROEN=999900249
register 0 $ANNA summary problems care-plan medication lab encounters
register 1 $ANNA medication allergies problems
register 2 $ANNA care-plan encounters
register 3 $ANNA medication allergies
register 4 $PIETER medication allergies problems
register 5 $PIETER medication allergies
register 6 $PIETER allergies problems imaging
register 4 $INGRID medication problems
register 6 $INGRID encounters
register 0 $JEROEN problems medication lab encounters

if [ "$n" -gt 4 ]; then
  echo "$PIETER" | k consent register --rpc "${rpc[4]}" --issuer "$(cat "$world/org4.did")" --bsn - \
    --decision permit --purpose emergency --purpose regular-care \
    --category medication --category allergies \
    --requester-type hospital --requester-type gp --method written >/dev/null
  echo "seed: Pieter's consent at his GP (medication, allergies; hospitals and GPs; also in emergencies)"
fi
{
  echo "ANNA=$ANNA"; echo "PIETER=$PIETER"; echo "INGRID=$INGRID"; echo "JEROEN=$JEROEN"
} >> "$world/world.env"
echo "seed: done; DIDs, credentials and world.env in $world"
