#!/usr/bin/env python3
"""An OTLP/HTTP trace receiver for tests/tests/ops.rs: it accepts `POST /v1/traces` with an
`ExportTraceServiceRequest` in protobuf (the OpenTelemetry Protocol's HTTP binding), decodes it
with the official OpenTelemetry protobuf definitions (PyPI `opentelemetry-proto`), and appends one
JSON line per span to FILE: {service, name, trace_id, span_id, parent_span_id, attributes}.
Anything else is refused (415 for another content type, 400 for a body that does not decode).

    otlp_collector.py FILE      -> prints "listening <port>" on stdout, serves until killed
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from google.protobuf.message import DecodeError


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Receiver(BaseHTTPRequestHandler):
    out = None

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", ctype="application/x-protobuf"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            return self.answer(404, b"not found", "text/plain")
        if self.headers.get("Content-Type", "").split(";")[0] != "application/x-protobuf":
            return self.answer(415, b"protobuf only", "text/plain")
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as e:
            return self.answer(400, str(e).encode(), "text/plain")
        lines = []
        for rs in request.resource_spans:
            resource = {a.key: value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    lines.append(json.dumps({
                        "service": resource.get("service.name"),
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "attributes": {a.key: value(a.value) for a in span.attributes},
                    }))
        with open(Receiver.out, "a", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        self.answer(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())


def main():
    Receiver.out = sys.argv[1]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
