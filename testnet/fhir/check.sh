#!/usr/bin/env bash
# End-to-end check of testnet/fhir: starts `serve` on a free port, runs the FHIR searches knoop
# relies on against the story datasets, checks totals, patient scoping, error handling and a clean
# SIGTERM shutdown. Exits non-zero on any failure.
#
#   testnet/fhir/check.sh            (uses jq when installed, else node, to read JSON)
#   KNOOP_FHIR_CHECK_NO_JQ=1 testnet/fhir/check.sh    (force the node path)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

use_jq=""
if command -v jq >/dev/null 2>&1 && [ -z "${KNOOP_FHIR_CHECK_NO_JQ:-}" ]; then use_jq=1; fi

# jsonq FILE JQ_FILTER JS_EXPRESSION: one value per line. The JS expression sees the parsed
# document as `d` and the environment as `process.env`; both forms must mean the same.
jsonq() {
  if [ -n "$use_jq" ]; then
    jq -r "$2" "$1"
  else
    node -e '
      const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const v = (0, eval)("(d) => (" + process.argv[2] + ")")(d);
      for (const x of [].concat(v)) console.log(x === undefined || x === null ? "null" : String(x));
    ' "$1" "$3"
  fi
}

passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
expect_eq() { # what got want
  if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', want '$3'"; fi
}

# ------------------------------------------------------------------------------- data files

# every Patient BSN in the datasets is 9 digits and passes the 11-test
bsn_report="$(node -e '
  const fs = require("fs"), path = require("path");
  const dir = process.argv[1];
  const eleven = (s) => /^\d{9}$/.test(s) && [...s].reduce((a, d, i) => a + Number(d) * (i < 8 ? 9 - i : -1), 0) % 11 === 0;
  let n = 0;
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    for (const e of JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")).entry ?? []) {
      for (const id of e.resource.resourceType === "Patient" ? e.resource.identifier ?? [] : []) {
        if (id.system !== "http://fhir.nl/fhir/NamingSystem/bsn") continue;
        n++;
        if (!eleven(id.value)) console.log(`bad BSN ${id.value} in ${f} Patient/${e.resource.id}`);
      }
    }
  }
  console.log(`${n} BSNs checked`);
' "$here/data")"
case "$bsn_report" in
  *"bad BSN"*) echo "FAIL: $bsn_report" >&2; exit 1 ;;
esac
echo "$bsn_report"

# ------------------------------------------------------------------------------------ start

"$here/serve" --port 0 >"$tmp/stdout" 2>"$tmp/stderr" &
pid=$!
line=""
for _ in $(seq 1 300); do
  line="$(head -n 1 "$tmp/stdout" 2>/dev/null || true)"
  case "$line" in "knoop-fhir listening on http://"*) break ;; esac
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$tmp/stderr" >&2
    echo "FAIL: server exited before it was ready" >&2
    exit 1
  fi
  sleep 0.2
done
case "$line" in
  "knoop-fhir listening on http://127.0.0.1:"[0-9]*) ;;
  *) cat "$tmp/stderr" >&2; echo "FAIL: no ready line (got '$line')" >&2; exit 1 ;;
esac
base="${line#knoop-fhir listening on }"
export BASE="$base"
echo "server ready at $base"
expect_eq "stdout has exactly one line" "$(wc -l <"$tmp/stdout" | tr -d ' ')" 1

# ------------------------------------------------------------------------------------ helpers

body="$tmp/body"
# request METHOD PATH [curl args...]: sets $status and $ctype, body in $body
request() {
  local method="$1" path="$2"
  shift 2
  local res
  res="$(curl -sS -X "$method" -o "$body" -w '%{http_code} %{content_type}' "$@" "$base/$path")" || res="000 none"
  status="${res%% *}"
  ctype="${res#* }"
}

# search DATASET QUERY WANT_TOTAL [PATIENT_REF]: a searchset Bundle with that total, fullUrls on
# this server, and (when PATIENT_REF is given) every entry about that patient only.
search() {
  local ds="$1" query="$2" want="$3" patient="${4:-}"
  local what="GET $ds/$query"
  request GET "$ds/$query"
  if [ "$status" != 200 ]; then bad "$what: status $status"; return; fi
  expect_eq "$what content type" "$ctype" "application/fhir+json; charset=utf-8"
  local got
  mapfile -t got < <(DS="$ds" jsonq "$body" \
    '(.resourceType + "/" + .type), .total,
     ([.entry[]?.fullUrl | startswith(env.BASE + "/" + env.DS + "/")] | all),
     ([.entry[]?.resource | (.subject // .patient).reference] | unique | join(","))' \
    '[d.resourceType + "/" + d.type, d.total,
      (d.entry || []).every((e) => e.fullUrl.startsWith(process.env.BASE + "/" + process.env.DS + "/")),
      [...new Set((d.entry || []).map((e) => (e.resource.subject || e.resource.patient || {}).reference))].sort().join(",")]')
  expect_eq "$what kind" "${got[0]}" "Bundle/searchset"
  expect_eq "$what total" "${got[1]}" "$want"
  expect_eq "$what fullUrls" "${got[2]}" true
  if [ -n "$patient" ]; then
    expect_eq "$what only $patient" "${got[3]}" "$patient"
  fi
}

# included: the search.mode include entries of the last search, as sorted Type/id joined by commas
included() {
  jsonq "$body" \
    '[.entry[]? | select(.search.mode == "include") | .resource.resourceType + "/" + .resource.id] | sort | join(",")' \
    '(d.entry || []).filter((e) => (e.search || {}).mode === "include").map((e) => e.resource.resourceType + "/" + e.resource.id).sort().join(",")'
}

# outcome METHOD PATH WANT_STATUS [curl args...]: an OperationOutcome with that status
outcome() {
  local method="$1" path="$2" want="$3"
  shift 3
  request "$method" "$path" "$@"
  expect_eq "$method $path status" "$status" "$want"
  expect_eq "$method $path content type" "$ctype" "application/fhir+json; charset=utf-8"
  expect_eq "$method $path body" "$(jsonq "$body" '.resourceType' 'd.resourceType')" OperationOutcome
}

BSN='http://fhir.nl/fhir/NamingSystem/bsn'

# --------------------------------------------------------- story 1: discharge Leiden -> Kerkrade

# Anna Maria Hendriks-Smeets, BSN 999900109
A=Patient/zl-104872
search leiden-hospital "Patient?identifier=$BSN|999900109" 1
expect_eq "BSN search finds her local id" "$(jsonq "$body" '.entry[0].resource.id' 'd.entry[0].resource.id')" zl-104872
request GET "leiden-hospital/$A"
expect_eq "read $A" "$status $(jsonq "$body" '.id + " " + .identifier[0].value' 'd.id + " " + d.identifier[0].value')" "200 zl-104872 999900109"
search leiden-hospital "MedicationRequest?patient=$A" 5 "$A"
search leiden-hospital "MedicationRequest?patient=zl-104872" 5 "$A"
search leiden-hospital "MedicationRequest?subject=$A" 5 "$A"
search leiden-hospital "Condition?patient=zl-104872" 3 "$A"
search leiden-hospital "Condition?subject=$A" 3 "$A"
search leiden-hospital "CarePlan?patient=$A" 1 "$A"
search leiden-hospital "CarePlan?subject=$A" 1 "$A"
search leiden-hospital "Composition?patient=$A" 1 "$A"
search leiden-hospital "Composition?subject=$A" 1 "$A"
expect_eq "discharge summary type" "$(jsonq "$body" '.entry[0].resource.type.coding[0].code' 'd.entry[0].resource.type.coding[0].code')" 18842-5
search leiden-hospital "Composition?type=http://loinc.org|18842-5" 1 "$A"
search leiden-hospital "Encounter?patient=zl-104872" 1 "$A"
search leiden-hospital "Encounter?subject=$A" 1 "$A"
search leiden-hospital "Observation?patient=$A&category=laboratory" 4 "$A"
search leiden-hospital "Observation?patient=zl-104872&category=vital-signs" 3 "$A"
search leiden-hospital "Observation?patient=$A&category=social-history" 4 "$A"
search leiden-hospital "Observation?subject=$A" 12 "$A"
search leiden-hospital "ImagingStudy?patient=zl-104872" 1 "$A"
search leiden-hospital "ImagingStudy?subject=$A" 1 "$A"
search leiden-hospital "Procedure?patient=$A" 1 "$A"
# _count pages: total stays 12, 2 entries, a next link
search leiden-hospital "Observation?patient=$A&_count=2" 12 "$A"
expect_eq "_count=2 entries" "$(jsonq "$body" '.entry | length' 'd.entry.length')" 2
expect_eq "_count=2 next link" "$(jsonq "$body" '[.link[] | select(.relation == "next")] | length' 'd.link.filter((l) => l.relation === "next").length')" 1
# the other patients are there, and not in her results
search leiden-hospital "Observation?category=laboratory" 5
search leiden-hospital "Condition" 5
search leiden-hospital "Encounter" 3
search leiden-hospital "Condition?patient=Patient/zl-104873" 1 Patient/zl-104873
search leiden-hospital "Observation?patient=zl-104901" 1 Patient/zl-104901

# Her BgZ (MedMij BgZ 2017 query list on R4), Medicatieoverdracht and PZP (advance care planning)
# queries each find her data; _include brings the referenced resources as search.mode include.
SCT=http://snomed.info/sct
ACT=http://terminology.hl7.org/CodeSystem/v3-ActCode
search leiden-hospital "Patient?_id=zl-104872&_include=Patient:general-practitioner" 1
expect_eq "her GP included" "$(included)" "Organization/org-zl-hap-kerkrade-west,Practitioner/prac-zl-hermans"
search leiden-hospital "Coverage?patient=$A&_include=Coverage:payor:Patient&_include=Coverage:payor:Organization" 1
expect_eq "her insurer included" "$(included)" Organization/org-zl-zvz
expect_eq "insurer UZOVI" "$(jsonq "$body" '.entry[] | select(.search.mode == "include") | .resource.identifier[0].value' \
  'd.entry.filter((e) => e.search.mode === "include").map((e) => e.resource.identifier[0].value)')" 9999
search leiden-hospital "Consent?patient=$A&category=$SCT|11291000146105" 1 "$A"
search leiden-hospital "Consent?patient=$A&category=$SCT|11341000146107" 1 "$A"
search leiden-hospital "Consent?patient=$A&scope=http://terminology.hl7.org/CodeSystem/consentscope|treatment&category=$SCT|129125009" 1 "$A"
search leiden-hospital "Consent?patient=$A&scope=http://terminology.hl7.org/CodeSystem/consentscope|treatment" 3 "$A"
search leiden-hospital "Observation?patient=$A&category=$SCT|118228005,$SCT|384821006" 1 "$A"
for code in 365508006 228366006 228273003 365980008; do
  search leiden-hospital "Observation?patient=$A&code=$SCT|$code&category=social-history" 1 "$A"
done
search leiden-hospital "NutritionOrder?patient=$A" 1 "$A"
search leiden-hospital "Flag?patient=$A" 1 "$A"
search leiden-hospital "DeviceUseStatement?patient=$A&_include=DeviceUseStatement:device" 1 "$A"
expect_eq "the device in use included" "$(included)" Device/zl-dev-rollator
search leiden-hospital "Immunization?patient=$A&status=completed" 1 "$A"
search leiden-hospital "ImmunizationRecommendation?patient=$A" 1 "$A"
search leiden-hospital "Procedure?patient=$A&category=$SCT|387713003" 1 "$A"
search leiden-hospital "Encounter?patient=$A&class=$ACT|IMP,$ACT|ACUTE,$ACT|NONAC" 1 "$A"
search leiden-hospital "ServiceRequest?patient=$A&status=active" 1 "$A"
search leiden-hospital "DeviceRequest?patient=$A&status=active&_include=DeviceRequest:device" 1 "$A"
expect_eq "the requested device included" "$(included)" Device/zl-dev-commode
# an Appointment names its patient as a participant, not in subject or patient
search leiden-hospital "Appointment?patient=$A&status=booked,pending,proposed" 1
search leiden-hospital "DocumentReference?patient=$A&status=current" 1 "$A"
expect_eq "discharge letter attachment" \
  "$(jsonq "$body" '.entry[0].resource.content[0].attachment.contentType' 'd.entry[0].resource.content[0].attachment.contentType')" application/pdf
search leiden-hospital "MedicationRequest?patient=$A&category=$SCT|16076005&_include=MedicationRequest:medication" 5
expect_eq "the prescribed Medication included" "$(included)" Medication/zl-med-apixaban-5mg
search leiden-hospital "Observation?patient=$A&category=$SCT|275711006&_include=Observation:specimen" 4 "$A"
search leiden-hospital "Observation?patient=$A&code=http://loinc.org|85354-9" 1 "$A"
search leiden-hospital "Observation?patient=$A&code=http://loinc.org|8302-2,http://loinc.org|8306-3,http://loinc.org|8308-9&_sort=-date" 1 "$A"

G=Patient/gp-0391
search kerkrade-gp "Patient?identifier=$BSN|999900109" 1
expect_eq "GP id for BSN 999900109" "$(jsonq "$body" '.entry[0].resource.id' 'd.entry[0].resource.id')" gp-0391
search kerkrade-gp "MedicationStatement?patient=$G" 4 "$G"
search kerkrade-gp "MedicationStatement?patient=gp-0391" 4 "$G"
search kerkrade-gp "MedicationStatement?subject=$G" 4 "$G"
search kerkrade-gp "AllergyIntolerance?patient=gp-0391" 1 "$G"
search kerkrade-gp "Condition?patient=$G" 4 "$G"
search kerkrade-gp "MedicationStatement" 6
# Medicatieoverdracht / BgZ medication use (category 6): hers, not Harrie's
search kerkrade-gp "MedicationStatement?patient=$G&category=urn:oid:2.16.840.1.113883.2.4.3.11.60.20.77.5.3|6&_include=MedicationStatement:medication" 4 "$G"
search kerkrade-gp "MedicationStatement?category=urn:oid:2.16.840.1.113883.2.4.3.11.60.20.77.5.3|6" 4 "$G"

search kerkrade-pharmacy "Patient?identifier=$BSN|999900109" 1
search kerkrade-pharmacy "MedicationDispense?patient=ph-20714" 8 Patient/ph-20714
search kerkrade-pharmacy "MedicationDispense?patient=Patient/ph-20714" 8 Patient/ph-20714
search kerkrade-pharmacy "MedicationDispense?subject=Patient/ph-20714" 8 Patient/ph-20714
# R4 has no MedicationDispense category search parameter; the Dutch profiles add one, and so does
# server.js
expect_eq "dispense category" "$(jsonq "$body" '[.entry[].resource.category.coding[] | .system + "|" + .code] | unique | join(",")' \
  '[...new Set(d.entry.flatMap((e) => e.resource.category.coding.map((c) => c.system + "|" + c.code)))].join(",")')" \
  "http://snomed.info/sct|422037009"
search kerkrade-pharmacy "MedicationDispense?patient=Patient/ph-20714&category=http://snomed.info/sct|422037009" 8 Patient/ph-20714
search kerkrade-pharmacy "MedicationDispense?patient=Patient/ph-20714&category=http://snomed.info/sct|373784005" 0

search kerkrade-homecare "Patient?identifier=$BSN|999900109" 1
search kerkrade-homecare "CarePlan?patient=hc-5520" 1 Patient/hc-5520
search kerkrade-homecare "Encounter?patient=Patient/hc-5520" 1 Patient/hc-5520

# ------------------------------------------------------------ story 2: emergency on the Veluwe

# Pieter de Groot, BSN 999900171
search zwolle-gp "Patient?identifier=$BSN|999900171" 1
expect_eq "GP id for BSN 999900171" "$(jsonq "$body" '.entry[0].resource.id' 'd.entry[0].resource.id')" gp-1188
search zwolle-gp "MedicationStatement?patient=Patient/gp-1188" 3 Patient/gp-1188
search zwolle-gp "Condition?patient=gp-1188" 3 Patient/gp-1188
search zwolle-gp "AllergyIntolerance?patient=Patient/gp-1188" 1 Patient/gp-1188
expect_eq "contrast allergy" \
  "$(jsonq "$body" '.entry[0].resource | .code.coding[0].code + " " + .criticality' 'd.entry[0].resource.code.coding[0].code + " " + d.entry[0].resource.criticality')" \
  "293637006 high"
search zwolle-gp "AllergyIntolerance?code=http://snomed.info/sct|293637006&criticality=high" 1 Patient/gp-1188

search zwolle-pharmacy "Patient?identifier=$BSN|999900171" 1
search zwolle-pharmacy "MedicationDispense?patient=ph-31007" 7 Patient/ph-31007
search zwolle-pharmacy "AllergyIntolerance?patient=ph-31007" 1 Patient/ph-31007

search zwolle-hospital "Patient?identifier=$BSN|999900171" 1
search zwolle-hospital "AllergyIntolerance?patient=isl-2245190" 1 Patient/isl-2245190
search zwolle-hospital "Encounter?patient=isl-2245190" 1 Patient/isl-2245190
search zwolle-hospital "Condition?subject=Patient/isl-2245190" 1 Patient/isl-2245190
search zwolle-hospital "ImagingStudy?patient=Patient/isl-2245190" 1 Patient/isl-2245190
search zwolle-hospital "Patient" 2

# ---------------------------------------------------------------------- errors and writes

request GET leiden-hospital/metadata
expect_eq "metadata" "$status $(jsonq "$body" '.resourceType + " " + .fhirVersion' 'd.resourceType + " " + d.fhirVersion')" "200 CapabilityStatement 4.0.1"
outcome GET "no-such-dataset/Patient" 404
outcome GET "leiden-hospital/Patient/no-such-id" 404
outcome GET "leiden-hospital/NoSuchType" 404
outcome GET "leiden-hospital/Patient/zl-104872/_history" 404
outcome GET "" 404
outcome GET "leiden-hospital/Patient?no-such-param=1" 400
outcome GET "leiden-hospital/Patient?_count=many" 400
outcome DELETE "leiden-hospital/Patient/zl-104872" 405
outcome POST "leiden-hospital/Observation" 400 -H 'Content-Type: application/fhir+json' --data '{"resourceType": "Observation", '
expect_eq "malformed body issue" "$(jsonq "$body" '.issue[0].code' 'd.issue[0].code')" invalid
outcome POST "leiden-hospital/Observation" 400 -H 'Content-Type: application/fhir+json' --data '{"resourceType": "Observation", "status": "no-such-field-set", "bogus": 1}'
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$tmp/big"
outcome POST "leiden-hospital/Observation" 413 -H 'Content-Type: application/fhir+json' --data-binary "@$tmp/big"
request GET leiden-hospital/metadata
expect_eq "server still up after bad input" "$status" 200

# create and update, then find them
obs='{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"59260-0"}]},"subject":{"reference":"Patient/zl-104872"},"valueQuantity":{"value":7.0,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}}'
request POST leiden-hospital/Observation -H 'Content-Type: application/fhir+json' --data "$obs"
expect_eq "POST create status" "$status" 201
search leiden-hospital "Observation?patient=$A&category=laboratory" 5 "$A"
request PUT leiden-hospital/Patient/check-sh-1 -H 'Content-Type: application/fhir+json' \
  --data '{"resourceType":"Patient","id":"check-sh-1","identifier":[{"system":"http://fhir.nl/fhir/NamingSystem/bsn","value":"999900523"}],"gender":"other"}'
expect_eq "PUT create status" "$status" 201
request PUT leiden-hospital/Patient/check-sh-1 -H 'Content-Type: application/fhir+json' \
  --data '{"resourceType":"Patient","id":"check-sh-1","identifier":[{"system":"http://fhir.nl/fhir/NamingSystem/bsn","value":"999900523"}],"gender":"female"}'
expect_eq "PUT update status" "$status" 200
search leiden-hospital "Patient?identifier=$BSN|999900523&gender=female" 1
search kerkrade-gp "Patient?identifier=$BSN|999900523" 0

# --------------------------------------------------------------------------------- shutdown

grep -q ' GET /leiden-hospital/metadata 200 ' "$tmp/stderr" && ok || bad "request log line missing on stderr"
kill -TERM "$pid"
( sleep 10; kill -KILL "$pid" 2>/dev/null ) &
watchdog=$!
code=0
wait "$pid" || code=$?
kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
expect_eq "exit status after SIGTERM" "$code" 0
pid=""

echo "check.sh: $passed passed, $failed failed ($([ -n "$use_jq" ] && echo jq || echo node) for JSON)"
[ "$failed" = 0 ]
