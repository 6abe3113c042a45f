//! knoop's fuzz targets: one per parser that takes bytes from the network, the disk or a user
//! (spec: `fuzz/README.md`). Each target is a plain function of the input bytes that must
//! return, never panic, whatever the bytes; some also check a property of what they parsed
//! (what encodes decodes to itself; what was signed right verifies).
//!
//! [`TARGETS`] names them. `fuzz/run.sh` runs them under libFuzzer (the `knoop-fuzz` binary,
//! coverage-instrumented); `tests/corpus.rs` replays each target's committed corpus and every
//! crash found so far (`fuzz/regressions/<target>/`) in the ordinary test suite.

mod credentials;
mod did;
mod node;
mod privacy;
mod wire;

/// A fuzz target: the bytes of one input.
pub type Target = fn(&[u8]);

/// Every target, by name (the name is also its corpus directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("tx_envelope", wire::tx_envelope),
    ("tx_signed", wire::tx_signed),
    ("wire_tx", wire::wire_tx),
    ("sync_request", wire::sync_request),
    ("sync_response", wire::sync_response),
    ("reconcile_respond", wire::reconcile_respond),
    ("reconcile_step", wire::reconcile_step),
    ("ask_frames", wire::ask_frames),
    ("did_url", did::did_url),
    ("did_op", did::did_op),
    ("did_key_jwk", did::did_key_jwk),
    ("did_x509", did::did_x509),
    ("node_binding", did::node_binding),
    ("jws_compact", credentials::jws_compact),
    ("credential", credentials::credential),
    ("presentation", credentials::presentation),
    ("status_list", credentials::status_list),
    ("private_descriptor", privacy::private_descriptor),
    ("private_inner", privacy::private_inner),
    ("localisation_entries", privacy::localisation_entries),
    ("patient_reference", privacy::patient_reference),
    ("config_file", node::config_file),
    ("fhir_query", node::fhir_query),
    ("fhir_consent", node::fhir_consent),
    ("fhir_resource", node::fhir_resource),
    ("dpop_proof", node::dpop_proof),
    ("patient_frames", node::patient_frames),
    ("id_token", node::id_token),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The input as text, when it is UTF-8.
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The input as JSON, when it is.
fn json(data: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(data).ok()
}

/// The input split at its first newline: (first line, rest).
fn split_line(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}
