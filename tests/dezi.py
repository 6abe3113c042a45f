#!/usr/bin/env python3
"""A Dezi stand-in for tests/tests/tokens.rs, made with joserfc: an RSA key set (as Dezi publishes
one at its jku) and DeziUserCredentials wrapping an RS256 attestation JWT, shaped as the national
guide's credential-DeziUserCredential page and the Dezi 0.7 vendor specification describe.

  dezi.py keyset KEY_FILE                       -> prints the public JWK Set; writes the private key
  dezi.py credential KEY_FILE JKU ISSUER URA SUBJECT_DID -> prints the DeziUserCredential
"""
import json
import sys
import time
import uuid

from joserfc import jwt
from joserfc.jwk import RSAKey

KID = "dezi-test-1"


def keyset(key_file):
    key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig"})
    with open(key_file, "w", encoding="utf-8") as f:
        json.dump(key.as_dict(private=True), f)
    print(json.dumps({"keys": [key.as_dict(private=False)]}))


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def credential(key_file, jku, issuer, ura, subject):
    with open(key_file, encoding="utf-8") as f:
        key = RSAKey.import_key(json.load(f))
    now = int(time.time())
    nbf, exp = now - 60, now + 3600
    iss = issuer.removeprefix("did:web:")
    claims = {
        "jti": str(uuid.uuid4()), "iss": iss, "nbf": nbf, "exp": exp,
        "json_schema": "https://www.dezi.nl/json_schemas/v1/verklaring.json",
        "loa_dezi": "http://eidas.europe.eu/LoA/high",
        "verklaring_id": str(uuid.uuid4()),
        "dezi_nummer": "900000009", "voorletters": "B.B.", "voorvoegsel": "van der",
        "achternaam": "Jansen", "abonnee_nummer": ura, "abonnee_naam": "Huisarts Leiden",
        "rol_code": "01.015", "rol_naam": "Huisarts", "rol_code_bron": "http://www.dezi.nl/rol_bron/big",
    }
    token = jwt.encode({"alg": "RS256", "kid": KID, "jku": jku, "typ": "JWT"}, claims, key)
    vc = {
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://example.org/contexts/dezi/v1"],
        "type": ["VerifiableCredential", "DeziUserCredential"],
        "issuer": issuer,
        "validFrom": iso(nbf),
        "validUntil": iso(exp),
        "credentialSubject": {
            "id": subject, "identifier": ura, "name": "Huisarts Leiden",
            "employee": {
                "identifier": "900000009", "initials": "B.B.", "surnamePrefix": "van der",
                "surname": "Jansen", "role": "01.015", "role_name": "Huisarts",
                "role_registry": "http://www.dezi.nl/rol_bron/big",
            },
        },
        "proof": {"type": "DeziIDJWT07", "jwt": token},
    }
    print(json.dumps(vc))


if __name__ == "__main__":
    if sys.argv[1] == "keyset":
        keyset(sys.argv[2])
    else:
        credential(*sys.argv[2:7])
