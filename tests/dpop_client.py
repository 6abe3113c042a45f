#!/usr/bin/env python3
"""A DPoP client (RFC 9449) against a knoop node's public API, for tests/tests/tokens.rs.

The proofs are made with joserfc (the JOSE library of authlib), the token is fetched with
authlib's OAuth2 client, so nothing of knoop's own code is on the client side. First the server
asks for its nonce (use_dpop_nonce), then the token is bound to the client's P-256 key, and the
data proxy is called with a good proof and then with every kind of bad one. Usage:
dpop_client.py BASE_URL PRESENTATION_FILE PATIENT. Prints one JSON object; the Rust test checks it.
"""
import base64
import hashlib
import json
import sys
import time
import uuid

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jws
from joserfc.jwk import ECKey

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def proof(key, htm, htu, nonce=None, token=None, alg="ES256"):
    claims = {"jti": str(uuid.uuid4()), "htm": htm, "htu": htu, "iat": int(time.time())}
    if nonce:
        claims["nonce"] = nonce
    if token:
        digest = hashlib.sha256(token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False)}
    payload = json.dumps(claims).encode()
    return jws.serialize_compact(header, payload, key, algorithms=[alg])


def unsigned(key, htm, htu):
    """A proof with alg none (RFC 8725 §3.1: never accepted)."""
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": key.as_dict(private=False)}
    claims = {"jti": str(uuid.uuid4()), "htm": htm, "htu": htu, "iat": int(time.time())}
    return f"{enc(json.dumps(header).encode())}.{enc(json.dumps(claims).encode())}."


def answer(r):
    return {
        "status": r.status_code,
        "www_authenticate": r.headers.get("WWW-Authenticate"),
        "type": r.json().get("resourceType") if r.content else None,
    }


def main():
    base, vp_file, patient = sys.argv[1:4]
    with open(vp_file, encoding="utf-8") as f:
        vp = f.read()
    key, other = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    token_url = f"{base}/oauth2/token"
    form = {
        "grant_type": GRANT,
        "assertion": vp,
        "scope": "medication-overview",
        "patient": patient,
        "purpose": "regular-care",
    }
    out = {"jkt": key.thumbprint()}
    # Without the server's nonce: use_dpop_nonce, and the nonce in DPoP-Nonce (RFC 9449 §8).
    r = requests.post(token_url, data=form, headers={"DPoP": proof(key, "POST", token_url)}, timeout=30)
    nonce = r.headers.get("DPoP-Nonce")
    out["without_nonce"] = {"status": r.status_code, "error": r.json().get("error"), "nonce": bool(nonce)}
    # With it, through authlib.
    client = OAuth2Session(client_id="ehr-of-the-gp", token_endpoint_auth_method="none")
    token = client.fetch_token(
        token_url, headers={"DPoP": proof(key, "POST", token_url, nonce=nonce)}, **form
    )
    out["token"] = dict(token)
    access = token["access_token"]
    url = f"{base}/fhir/MedicationStatement"

    def get(auth, dpop=None):
        headers = {"Authorization": auth}
        if dpop:
            headers["DPoP"] = dpop
        return answer(requests.get(url, headers=headers, timeout=30))

    good = proof(key, "GET", url, token=access)
    out["good"] = get(f"DPoP {access}", good)
    out["replayed"] = get(f"DPoP {access}", good)
    out["as_bearer"] = get(f"Bearer {access}")
    out["no_proof"] = get(f"DPoP {access}")
    out["other_url"] = get(f"DPoP {access}", proof(key, "GET", f"{base}/fhir/Condition", token=access))
    out["other_method"] = get(f"DPoP {access}", proof(key, "POST", url, token=access))
    out["other_key"] = get(f"DPoP {access}", proof(other, "GET", url, token=access))
    out["no_ath"] = get(f"DPoP {access}", proof(key, "GET", url))
    out["alg_none"] = get(f"DPoP {access}", unsigned(key, "GET", url))
    out["stale_nonce"] = get(f"DPoP {access}", proof(key, "GET", url, nonce="stale", token=access))
    out["again"] = get(f"dpop {access}", proof(key, "GET", url, token=access))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
