#!/usr/bin/env python3
"""An outside mCSD administration client against a knoop Administration Directory: SMART on
FHIR's fhirclient (4.4, strict R4 models) posts the transaction Bundle read from stdin to the
FHIR base, as its own `Bundle.create` does, then reads every created resource back with its
`read` and checks them with the strict models.

    python3 tests/mcsd_admin_client.py <Administration Directory base> < bundle.json

Prints {"statuses": [...], "created": {"<type>": ["<id>", ...]}, "names": {"<id>": name}};
fails on the first non-conformance.
"""
import importlib
import json
import sys

from fhirclient import server as fhir_server
from fhirclient.models.bundle import Bundle

base = sys.argv[1]
smart = fhir_server.FHIRServer(None, base_uri=base + "/")
bundle = Bundle(json.load(sys.stdin), strict=True)
answer = Bundle(bundle.create(smart), strict=True)
assert answer.type == "transaction-response", answer.type

out = {"statuses": [], "created": {}, "names": {}}
for e in answer.entry:
    out["statuses"].append(e.response.status)
    # location is [type]/[id]/_history/[vid]
    assert e.response.location, f"no location: {answer.as_json()}"
    type_, id_ = e.response.location.split("/")[:2]
    out["created"].setdefault(type_, []).append(id_)
    model = getattr(importlib.import_module("fhirclient.models." + type_.lower()), type_)
    read = model.read(id_, smart)
    assert read.meta.versionId == e.response.etag.split('"')[1], (read.meta.versionId, e.response.etag)
    out["names"][id_] = getattr(read, "name", None) or getattr(read, "address", None)
print(json.dumps(out))
