#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target (fuzz/corpus/<target>/) from the spec vectors
(specs/vectors/), the W3C test fixtures (vc/tests/fixtures/) and the testnet's files. Run it
after a vector changes; the corpus is committed. Seeds are named by the SHA-1 of their bytes
(as libFuzzer names what it adds), so rerunning adds nothing twice."""
import base64
import hashlib
import json
import pathlib
import struct

root = pathlib.Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"


def vec(name):
    return json.loads((root / "specs" / "vectors" / name).read_text())


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# Transactions: envelope, newline, content.
for t in vec("transactions.json"):
    if not t.get("envelope"):
        continue
    payload = bytes.fromhex(t["payload"]) if t.get("payload") else None
    put("tx_envelope", t["envelope"].encode() + (b"\n" + payload if payload is not None else b""))
    put("tx_signed", (t.get("cty") or "text/plain").encode() + b"\n" + (payload or b""))
for step in vec("did.json")["scenario"]["steps"]:
    payload = b64url(step["payload"]) if step.get("payload") else b""
    put("tx_envelope", step["envelope"].encode() + b"\n" + payload)
    put("tx_signed", b"application/knoop-did-op+json\n" + payload)
    if payload:
        put("did_op", payload)

# Wire frames.
for w in vec("wire.json"):
    data = bytes.fromhex(w["cbor"])
    target = {"WireTx": "wire_tx", "SyncRequest": "sync_request", "SyncResponse": "sync_response"}[w["type"]]
    put(target, data)
    if w["name"] == "request_reconcile":
        put("reconcile_respond", bytes.fromhex(w["value"]["r"]))
    if w["name"] == "response_reconcile":
        put("reconcile_step", bytes.fromhex(w["value"]["r"]))
        put("reconcile_respond", bytes.fromhex(w["query"]))
priv = vec("private.json")
put("ask_frames", bytes.fromhex(priv["miss"]))
put("private_descriptor", bytes.fromhex(priv["five_recipients_descriptor"]))
for k, v in priv["private"].items():
    if isinstance(v, str) and k in ("inner", "inner_cbor", "signed_inner"):
        put("private_inner", bytes.fromhex(v))
    if isinstance(v, str) and k == "descriptor":
        put("private_descriptor", bytes.fromhex(v))

# DIDs.
ids = vec("did.json")["identifiers"]
for i in ids:
    put("did_url", i["did"])
    put("did_url", i["did"] + "#key-1")
    put("did_url", i["did"] + "?versionId=1")
    put("did_url", i["public_key_multibase"])
    put("did_key_jwk", "did:key:" + i["public_key_multibase"])
put("did_url", "did:web:example.com%3A8443:orgs:leiden")
jose = vec("jose.json")
for s in jose["signatures"]:
    jwk = json.dumps(s["jwk"], separators=(",", ":")).encode()
    put("did_key_jwk", "did:jwk:" + base64.urlsafe_b64encode(jwk).decode().rstrip("="))
x = vec("did-x509.json")
chain = b"".join(struct.pack(">H", len(c)) + c for c in (base64.b64decode(c) for c in x["chain"]))
for d in x["resolves"]:
    put("did_x509", d.encode() + b"\n" + chain)
    put("did_url", d)
for f in x["fails"]:
    put("did_x509", f["did"].encode() + b"\n" + chain)
put("node_binding", {"peerId": "12D3KooWBsPzQRtjsWDdymerxnyZPLRuQ25J89pvVBH2hEhJgMYf",
                     "proof": "A" * 86, "addresses": ["/ip4/127.0.0.1/tcp/7402"]})

# JOSE, credentials, presentations, status lists.
for s in jose["signatures"]:
    for k in ("jws", "compact", "token"):
        if isinstance(s.get(k), str):
            put("jws_compact", s[k])
for k in ("dpop", "vp_jwt", "client_assertion"):
    for field in ("proof", "jwt"):
        if isinstance(jose[k].get(field), str):
            put("jws_compact", jose[k][field])
            put("dpop_proof" if k == "dpop" else "presentation", jose[k][field])
fixtures = root / "vc" / "tests" / "fixtures"
for f in sorted((fixtures / "w3c-vc-data-model-2.0" / "tests" / "input").glob("*.json")):
    put("presentation" if f.name.startswith("presentation") else "credential", f.read_bytes())
for f in sorted((fixtures / "w3c-vc-di-eddsa" / "TestVectors").rglob("*.json")):
    put("credential", f.read_bytes())
sl = vec("status-list.json")
for lst in sl["lists"]:
    put("status_list", {"@context": ["https://www.w3.org/ns/credentials/v2"],
                        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
                        "credentialSubject": {"type": "BitstringStatusList", "statusPurpose": "revocation",
                                              "encodedList": lst["encodedList"]},
                        "credentialStatus": [e["entry"] for e in sl["entries"]]})

# Localisation and patients.
loc = vec("localisation.json")
put("localisation_entries", bytes.fromhex(loc["entries"]["content"]))
put("patient_reference", "urn:knoop:patient:" + base64.urlsafe_b64encode(bytes(32)).decode().rstrip("="))
for bad in loc["invalid_identifiers"]:
    put("patient_reference", bad)

# What a node reads from its users.
put("config_file", (root / "testnet" / "knoop-testnet.toml").read_bytes())
put("config_file", b'[p2p]\nmax_peers = 12\n[rpc]\nlisten = "127.0.0.1:7474"\n[[policy]]\nscope = "bgz"\ncategories = ["lab"]\n')
for q in ["Observation?category=laboratory&_include=Observation:related-member&patient=Patient/1",
          "Observation/$lastn?category=vital-signs&max=3",
          "MedicationRequest?category=16076005&_include=MedicationRequest:medication",
          "Patient?_revinclude=Provenance:target", "Condition?patient:Patient.name=x"]:
    put("fhir_query", q)
for case in vec("mcsd.json")["valid"]:
    for e in case["content"].get("entry", []):
        if "resource" in e:
            put("fhir_resource", e["resource"])
put("fhir_consent", {"resourceType": "Consent", "status": "active",
                     "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                           "code": "patient-privacy"}]},
                     "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                     "patient": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/bsn",
                                                "value": "999911120"}},
                     "organization": [{"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/ura",
                                                      "value": "00000001"}}],
                     "provision": {"type": "deny", "purpose": [
                         {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}})
# The patient view: /knoop/patient/1 frames, and ID tokens (claims the target signs, and tokens).
pv = vec("patient-view.json")
for k in ("request", "response", "refused"):
    put("patient_frames", bytes.fromhex(pv[k]))
put("id_token", {"iss": "https://login.example.nl", "aud": "knoop-patient-service", "sub": "degroot",
                 "iat": 1800000000, "exp": 1800000300, "nonce": "n-1", "bsn": "999911120",
                 "acr": "urn:digid:substantieel", "auth_time": 1800000000})
put("id_token", {"iss": "https://login.example.nl", "aud": ["knoop-patient-service", "other"],
                 "azp": "knoop-patient-service", "iat": 1800000000, "exp": 1800000300, "nonce": "n-1",
                 "bsn": 999911120})
put("id_token", pv["statement"])
print("corpus:", {d.name: len(list(d.iterdir())) for d in sorted(corpus.iterdir())})
