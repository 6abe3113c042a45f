#!/usr/bin/env python3
"""A Nuts RFC021 client (vp_token-bearer with a DIF Presentation Exchange submission), for
tests/tests/tokens.rs. Its organisation is a did:web with its own P-256 key (joserfc), holding
an organisation credential and a Dezi credential, both about itself. It reads the server's RFC
8414 metadata and the presentation definition of the scope, answers it, and asks for a token;
then replays the assertion and tries a submission that maps the wrong credentials.

  rfc021_client.py BASE KEY_FILE DID ORG_CREDENTIAL_FILE DEZI_CREDENTIAL_FILE PATIENT
Prints one JSON object with what happened.
"""
import json
import sys
import time
import uuid

import requests
from joserfc import jws
from joserfc.jwk import ECKey


def main():
    base, key_file, did, org_file, dezi_file, patient = sys.argv[1:7]
    with open(key_file, encoding="utf-8") as f:
        key = ECKey.import_key(json.load(f))
    creds = []
    for path in (org_file, dezi_file):
        with open(path, encoding="utf-8") as f:
            creds.append(json.load(f))
    meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    scope = "medication-overview"
    pd = requests.get(meta["presentation_definition_endpoint"], params={"scope": scope}, timeout=10).json()
    by_type = {"organization": 0, "professional": 1}

    def submission(mapping):
        return json.dumps({
            "id": str(uuid.uuid4()), "definition_id": pd["id"],
            "descriptor_map": [
                {"id": d["id"], "format": "ldp_vc", "path": f"$.verifiableCredential[{mapping[d['id']]}]"}
                for d in pd["input_descriptors"]
            ],
        })

    def assertion():
        now = int(time.time())
        claims = {
            "iss": did, "sub": did, "aud": meta["issuer"], "jti": str(uuid.uuid4()),
            "nonce": str(uuid.uuid4()), "nbf": now, "iat": now, "exp": now + 5,
            "vp": {"@context": ["https://www.w3.org/2018/credentials/v1"],
                   "type": ["VerifiablePresentation"], "verifiableCredential": creds},
        }
        return jws.serialize_compact(
            {"alg": "ES256", "kid": f"{did}#key-1", "typ": "JWT"}, json.dumps(claims).encode(), key,
            algorithms=["ES256"],
        )

    def ask(vp, sub):
        r = requests.post(meta["token_endpoint"], data={
            "grant_type": "urn:ietf:params:oauth:grant-type:vp_token-bearer",
            "assertion": vp, "presentation_submission": sub, "scope": scope,
            "patient": patient, "purpose": "regular-care",
        }, timeout=30)
        return {"status": r.status_code, "body": r.json()}

    out = {"definition_id": pd["id"], "descriptors": [d["id"] for d in pd["input_descriptors"]]}
    vp = assertion()
    out["token"] = ask(vp, submission(by_type))
    out["replay"] = ask(vp, submission(by_type))
    out["swapped"] = ask(assertion(), submission({"organization": 1, "professional": 0}))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
