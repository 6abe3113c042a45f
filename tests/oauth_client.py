#!/usr/bin/env python3
"""A standard OAuth 2.0 client against a knoop node's public API, for tests/tests/tokens.rs.

authlib (the OAuth library of the Python world) discovers the token endpoint from the RFC 8414
metadata, asks for a token with the first grant the metadata lists (RFC 7523 jwt-bearer, the
assertion a presentation JWT; adding what client libraries add: client_id, resource), asks again
with the same assertion (a replay), then the data proxy is called with a lower-case bearer scheme and for a resource type
outside the grant. Usage: oauth_client.py BASE_URL PRESENTATION_FILE PATIENT. Prints one JSON
object with what happened; the Rust test checks it.
"""
import json
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.integrations.base_client.errors import OAuthError


def main():
    base, vp_file, patient = sys.argv[1:4]
    out = {}
    meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10)
    out["metadata"] = {"status": meta.status_code, "body": meta.json()}
    meta = meta.json()
    with open(vp_file, encoding="utf-8") as f:
        vp = f.read()
    client = OAuth2Session(client_id="ehr-of-the-gp", token_endpoint_auth_method="none")
    token = client.fetch_token(
        meta["token_endpoint"],
        grant_type=meta["grant_types_supported"][0],
        assertion=vp,
        scope="medication-overview",
        patient=patient,
        purpose="regular-care",
        resource=base,
    )
    out["token"] = dict(token)
    # The same assertion again (its jti is used up), seen through authlib's error handling.
    try:
        client.fetch_token(
            meta["token_endpoint"],
            grant_type=meta["grant_types_supported"][0],
            assertion=vp,
            scope="medication-overview",
            patient=patient,
            purpose="regular-care",
        )
        out["replay"] = "granted"
    except (OAuthError, OAuth2Error) as e:
        out["replay"] = e.error
    try:
        client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        out["client_credentials"] = "granted"
    except (OAuthError, OAuth2Error) as e:
        out["client_credentials"] = e.error
    access = token["access_token"]
    r = requests.get(
        f"{base}/fhir/MedicationStatement",
        headers={"authorization": "bearer " + access},
        timeout=30,
    )
    out["medication"] = {"status": r.status_code, "type": r.json().get("resourceType")}
    r = requests.get(
        f"{base}/fhir/Condition", headers={"Authorization": "Bearer " + access}, timeout=30
    )
    out["condition"] = {
        "status": r.status_code,
        "www_authenticate": r.headers.get("WWW-Authenticate"),
    }
    r = requests.get(f"{base}/fhir/Condition", timeout=30)
    out["no_token"] = {
        "status": r.status_code,
        "www_authenticate": r.headers.get("WWW-Authenticate"),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
