//! What a node reads from its users: the config file, FHIR queries and resources of the
//! public API, and DPoP proofs (RFC 9449).

use knoop_node::care::dpop::{check, Expect};
use knoop_node::config::Config;

/// A config file, as `knoop run --config` reads it.
pub fn config_file(data: &[u8]) {
    if let Some(text) = super::text(data) {
        let _ = Config::from_toml(text);
    }
}

/// A FHIR search of the data proxy: `<type>[/$<operation>]?<query>` (`specs/data-fetch.md`).
pub fn fhir_query(data: &[u8]) {
    let Some(s) = super::text(data) else {
        return;
    };
    let (path, query) = match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    };
    let (resource_type, operation) = match path.split_once("/$") {
        Some((t, o)) => (t, Some(o)),
        None => (path, None),
    };
    let _ = knoop_node::care::data_proxy::query::parse(resource_type, operation, query);
}

/// A FHIR `Consent` an EHR records (`specs/fhir-consent.md` §2).
pub fn fhir_consent(data: &[u8]) {
    if let Some(c) = super::json(data) {
        let _ = knoop_node::care::fhir_consent::read(&c, "did:knoop:issuer", "00000001", |ura| {
            (ura == "00000002").then(|| "did:knoop:other".to_owned())
        });
    }
}

/// A FHIR resource written to the administration directory: the R4 checks of its type.
pub fn fhir_resource(data: &[u8]) {
    let Some(mut r) = super::json(data) else {
        return;
    };
    let type_ = r["resourceType"]
        .as_str()
        .unwrap_or("Organization")
        .to_owned();
    let _ = knoop_node::directory::r4::r4_required(&type_, &r);
    knoop_node::directory::r4::visit_references(&r, &mut |_| {});
    knoop_node::directory::r4::drop_empty(&mut r);
}

/// A DPoP proof for a token request.
pub fn dpop_proof(data: &[u8]) {
    let Some(proof) = super::text(data) else {
        return;
    };
    let expect = Expect {
        method: "POST",
        url: "https://node.example/oauth2/token",
        access_token: None,
    };
    let _ = check(proof.trim(), &expect, 1_767_225_600);
}
