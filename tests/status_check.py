#!/usr/bin/env python3
"""A verifier outside knoop that only reads a Bitstring Status List (W3C; the national guide's
GFI-003), for tests/tests/vc.rs. It fetches the list credential as a vc+jwt, checks its signature
with joserfc against the issuer's key from the issuer's did:web document (the did:knoop issuer's
alsoKnownAs), decodes the list (multibase base64url, GZIP) and reads the credential's bit.

  status_check.py CREDENTIAL_FILE DID_WEB_DOCUMENT_URL CA_FILE
Prints {"status": 0|1, "issuer", "kid", "purpose"}; exits non-zero if anything does not check.
"""
import base64
import gzip
import json
import sys

import requests
from joserfc import jws
from joserfc.jwk import OKPKey


def main():
    cred_file, doc_url, ca = sys.argv[1:4]
    with open(cred_file, encoding="utf-8") as f:
        credential = json.load(f)
    entry = credential["credentialStatus"]
    assert entry["type"] == "BitstringStatusListEntry", entry
    r = requests.get(
        entry["statusListCredential"], headers={"Accept": "application/vc+jwt"}, verify=ca, timeout=10
    )
    r.raise_for_status()
    assert r.headers["Content-Type"].startswith("application/vc+jwt"), r.headers
    token = r.text.strip()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    doc = requests.get(doc_url, verify=ca, timeout=10).json()
    assert credential["issuer"] in doc.get("alsoKnownAs", []), doc
    fragment = header["kid"].split("#", 1)[1]
    method = next(m for m in doc["verificationMethod"] if m["id"].endswith("#" + fragment))
    mb = method["publicKeyMultibase"]
    raw = base58(mb[1:])
    assert raw[:2] == b"\xed\x01", "an Ed25519 Multikey"
    key = OKPKey.import_key(
        {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw[2:]).rstrip(b"=").decode()}
    )
    list_vc = json.loads(jws.deserialize_compact(token, key, algorithms=["EdDSA"]).payload)
    assert list_vc["issuer"] == credential["issuer"], list_vc
    subject = list_vc["credentialSubject"]
    encoded = subject["encodedList"]
    assert encoded.startswith("u")
    bits = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    index = int(entry["statusListIndex"])
    status = (bits[index // 8] >> (7 - index % 8)) & 1
    print(json.dumps({"status": status, "issuer": list_vc["issuer"], "kid": header["kid"],
                      "purpose": subject["statusPurpose"], "entries": len(bits) * 8}))


def base58(s):
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = 0
    for c in s:
        n = n * 58 + alphabet.index(c)
    out = n.to_bytes((n.bit_length() + 7) // 8, "big")
    pad = len(s) - len(s.lstrip("1"))
    return b"\x00" * pad + out


if __name__ == "__main__":
    main()
