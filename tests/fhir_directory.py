#!/usr/bin/env python3
"""An outside FHIR client against knoop's mCSD Query Directory: SMART on FHIR's fhirclient
(4.4, R4 models, strict: an unknown, missing or mistyped element raises), plus the FHIR JSON
rules the models do not check (no empty arrays, objects or strings; application/fhir+json), as
`fhir_check.py` checks them.

    python3 tests/fhir_directory.py <FHIR base> <name prefix>

Prints a JSON summary of what it found; fails on the first non-conformance.
"""
import json
import sys
import urllib.parse

from fhir_check import fetch
from fhirclient import server as fhir_server
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.endpoint import Endpoint
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.organization import Organization

base, prefix = sys.argv[1], sys.argv[2]


def get(url, model):
    status, body = fetch(url if url.startswith("http") else base + url)
    model(body, strict=True)
    return status, body


out = {}
status, cs = get("/metadata", CapabilityStatement)
assert status == 200 and cs["fhirVersion"] == "4.0.1", cs

# The client's own search and read, as an EHR would use it.
smart = fhir_server.FHIRServer(None, base_uri=base + "/")
found = Organization.where(struct={"name": prefix}).perform_resources(smart)
out["found"] = sorted(o.name for o in found)
first = found[0]
out["read"] = Organization.read(first.id, smart).name
eps = Endpoint.where(struct={"organization": f"Organization/{first.id}"}).perform_resources(smart)
out["endpoints"] = [e.address for e in eps]

# Every search answer is a strict Bundle; paging by the next links covers the total.
status, page = get("/Organization?_count=1", Bundle)
out["total"] = page["total"]
ids = []
while True:
    ids += [e["resource"]["id"] for e in page.get("entry", [])]
    for e in page.get("entry", []):
        assert e["fullUrl"].endswith("/Organization/" + e["resource"]["id"]), e["fullUrl"]
    nxt = [l["url"] for l in page["link"] if l["relation"] == "next"]
    if not nxt:
        break
    status, page = get(nxt[0], Bundle)
out["paged"] = len(ids)
assert len(set(ids)) == len(ids), "a page repeated an entry"

# String modifiers, and accents.
for q, key in [("name:exact=" + urllib.parse.quote(out["found"][0]), "exact"),
               ("name:contains=ZORG", "contains"), ("name=zela", "accent")]:
    status, b = get("/Organization?" + q, Bundle)
    out[key] = sorted(e["resource"]["name"] for e in b.get("entry", []))

# What cannot be answered is an OperationOutcome.
status, _ = get("/Organization/0000", OperationOutcome)
out["not_found"] = status
status, _ = get("/Organization?nmae=x", OperationOutcome)
out["unknown_parameter"] = status
print(json.dumps(out))
