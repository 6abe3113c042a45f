#!/usr/bin/env python3
"""An EHR that is not a knoop tenant, for tests/tests/tokens.rs: its organisation is a did:web
served by a test HTTPS server, its key is its own (P-256, made here with joserfc), it issues its
professional's credential itself as a vc+jwt, and it asks a knoop node for a DPoP-bound token with
RFC 7523 (a VC 1.1 presentation JWT) and fetches data with it. Only the national guide, the RFCs
and knoop's specs are used: no knoop code.

  outside_ehr.py keygen KEY_FILE DID          -> prints the DID document; writes the private JWK
  outside_ehr.py fetch BASE KEY_FILE DID ORG_CREDENTIAL_FILE PATIENT
                                              -> prints one JSON object with what happened
"""
import base64
import hashlib
import json
import sys
import time
import uuid

import requests
from joserfc import jws
from joserfc.jwk import ECKey

KNOOP_CONTEXT = "https://w3id.org/knoop/credentials/v1"


def keygen(key_file, did):
    key = ECKey.generate_key("P-256")
    with open(key_file, "w", encoding="utf-8") as f:
        json.dump(key.as_dict(private=True), f)
    kid = f"{did}#key-1"
    doc = {
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1"],
        "id": did,
        "verificationMethod": [
            {"id": kid, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": key.as_dict(private=False)}
        ],
        "authentication": [kid],
        "assertionMethod": [kid],
    }
    print(json.dumps(doc))


def sign(key, header, claims):
    header = dict(header, alg="ES256")
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])


def dpop(key, htm, htu, nonce=None, token=None):
    claims = {"jti": str(uuid.uuid4()), "htm": htm, "htu": htu, "iat": int(time.time())}
    if nonce:
        claims["nonce"] = nonce
    if token:
        digest = hashlib.sha256(token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return sign(key, {"typ": "dpop+jwt", "jwk": key.as_dict(private=False)}, claims)


def fetch(base, key_file, did, org_credential_file, patient):
    with open(key_file, encoding="utf-8") as f:
        key = ECKey.import_key(json.load(f))
    with open(org_credential_file, encoding="utf-8") as f:
        org_credential = json.load(f)
    kid = f"{did}#key-1"
    now = int(time.time())
    doctor = f"{did}:staff:1"
    # The professional's credential, issued by the organisation itself (VC 2.0, vc+jwt).
    professional = sign(
        key,
        {"kid": kid, "typ": "vc+jwt", "cty": "vc"},
        {
            "@context": ["https://www.w3.org/ns/credentials/v2", KNOOP_CONTEXT],
            "id": f"urn:uuid:{uuid.uuid4()}",
            "type": ["VerifiableCredential", "HealthcareProfessionalCredential"],
            "issuer": did,
            "validFrom": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
            "credentialSubject": {
                "id": doctor,
                "type": "HealthcareProfessional",
                "name": "Dr. E. Buiten",
                "roleCode": "01.015",
                "registerId": "19099999901",
                "employer": did,
            },
            "iat": now - 60,
        },
    )
    # The RFC 7523 assertion: a VC 1.1 presentation JWT for the server's issuer URL.
    meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    assertion = sign(
        key,
        {"kid": kid, "typ": "JWT"},
        {
            "iss": did,
            "aud": meta["issuer"],
            "jti": f"urn:uuid:{uuid.uuid4()}",
            "iat": now,
            "exp": now + 60,
            "vp": {
                "@context": ["https://www.w3.org/2018/credentials/v1"],
                "type": ["VerifiablePresentation"],
                "verifiableCredential": [org_credential, professional],
            },
        },
    )
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": assertion,
        "scope": "medication-overview",
        "patient": patient,
        "purpose": "regular-care",
    }
    token_url = meta["token_endpoint"]
    out = {"doctor": doctor}
    r = requests.post(token_url, data=form, headers={"DPoP": dpop(key, "POST", token_url)}, timeout=30)
    if r.status_code == 400 and r.json().get("error") == "use_dpop_nonce":
        nonce = r.headers["DPoP-Nonce"]
        r = requests.post(
            token_url, data=form, headers={"DPoP": dpop(key, "POST", token_url, nonce=nonce)}, timeout=30
        )
    out["token"] = {"status": r.status_code, "body": r.json()}
    if r.status_code != 200:
        print(json.dumps(out))
        return
    access = r.json()["access_token"]
    url = f"{base}/fhir/MedicationStatement"
    r = requests.get(
        url,
        headers={"Authorization": f"DPoP {access}", "DPoP": dpop(key, "GET", url, token=access)},
        timeout=30,
    )
    out["data"] = {"status": r.status_code, "type": r.json().get("resourceType")}
    # The token without its proof is worth nothing.
    r = requests.get(url, headers={"Authorization": f"Bearer {access}"}, timeout=30)
    out["stolen"] = {"status": r.status_code, "www_authenticate": r.headers.get("WWW-Authenticate")}
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "keygen":
        keygen(*sys.argv[2:4])
    else:
        fetch(*sys.argv[2:7])
