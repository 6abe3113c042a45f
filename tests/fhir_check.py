#!/usr/bin/env python3
"""Checks what a FHIR endpoint answers with an outside FHIR library: SMART on FHIR's fhirclient
(4.4, R4 models, strict), plus the FHIR JSON rules the models do not check (no empty arrays,
objects or strings) and the media type (application/fhir+json).

    python3 tests/fhir_check.py <URL> [<header>: <value>]...
    python3 tests/fhir_check.py - < resource.json

With FHIR_CHECK_CERT and FHIR_CHECK_KEY (PEM files) it presents that client certificate.

Prints {"resourceType", "total", "types": [entry resource types, "(deleted)" for a history
entry without one]}; fails on the first non-conformance.
"""
import json
import os
import sys

import requests
from fhirclient.models.fhirelementfactory import FHIRElementFactory


def no_empties(v, where="$"):
    if v in ([], {}, ""):
        raise AssertionError(f"empty value at {where} (FHIR JSON forbids it)")
    if isinstance(v, dict):
        for k, x in v.items():
            no_empties(x, f"{where}.{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            no_empties(x, f"{where}[{i}]")


def fetch(url, headers=None):
    """GET url: the status and the FHIR JSON body, checked for the media type and for empty
    elements."""
    # A client certificate for mutual TLS, when the environment names one.
    cert = None
    if os.environ.get("FHIR_CHECK_CERT"):
        cert = (os.environ["FHIR_CHECK_CERT"], os.environ["FHIR_CHECK_KEY"])
    r = requests.get(url, headers={"Accept": "application/fhir+json", **(headers or {})},
                     timeout=10, cert=cert)
    ctype = r.headers.get("content-type", "")
    assert ctype.startswith("application/fhir+json"), f"{url}: content-type {ctype}"
    body = r.json()
    no_empties(body)
    return r.status_code, body


if __name__ == "__main__":
    extra = {}
    for h in sys.argv[2:]:
        name, value = h.split(":", 1)
        extra[name.strip()] = value.strip()
    if sys.argv[1] == "-":  # a resource on stdin (an answer the caller got another way)
        body = json.load(sys.stdin)
        no_empties(body)
    else:
        _, body = fetch(sys.argv[1], extra)
    FHIRElementFactory.instantiate(body["resourceType"], body)  # strict by default: raises
    print(json.dumps({
        "resourceType": body["resourceType"],
        "total": body.get("total"),
        "types": [e.get("resource", {}).get("resourceType", "(deleted)")
                  for e in body.get("entry", [])],
    }))
