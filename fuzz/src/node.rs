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

/// A `/knoop/patient/1` frame (`specs/patient-view.md` §3): a request (with its statement) as a
/// holder reads it, and an answer as a patient service reads it; an answer that parses encodes
/// to one that parses the same.
pub fn patient_frames(data: &[u8]) {
    use knoop_node::care::patient_access::{
        parse_response, PatientRequest, PatientResponse, Statement,
    };
    if let Ok(req) = cbor4ii::serde::from_slice::<PatientRequest>(data) {
        if let Ok(c) = knoop_vc::jws::Compact::parse(&req.statement) {
            if let Ok(claims) = c.claims() {
                let _ = serde_json::from_value::<Statement>(serde_json::Value::Object(claims));
            }
        }
    }
    if let Ok(view) = parse_response(data) {
        let again = cbor4ii::serde::to_vec(Vec::new(), &PatientResponse::View(view.clone()))
            .expect("a parsed answer encodes");
        let back = parse_response(&again).expect("an encoded answer parses");
        assert_eq!(
            serde_json::to_value(&back).ok(),
            serde_json::to_value(&view).ok(),
            "an answer changed on its way through CBOR"
        );
    }
}

/// An ID token from the patients' OpenID Connect provider, checked against a fixed key set
/// (`specs/patient-view.md` §2). Structure-aware: a JSON object is first signed with the key
/// set's key as the token's claims, so the claim checks after the signature are reached; other
/// input is a token as received.
pub fn id_token(data: &[u8]) {
    use knoop_node::care::patient_service::oidc::{verify_id_token, Expected, ProviderKey};
    let Some(token) = super::text(data) else {
        return;
    };
    let key = knoop_vc::jws::SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let keys = [ProviderKey {
        kid: Some("k1".into()),
        key: key.public_jwk(),
    }];
    let expect = Expected {
        issuer: "https://login.example.nl",
        client_id: "knoop-patient-service",
        nonce: "n-1",
        bsn_claim: "bsn",
    };
    let token = match serde_json::from_str::<serde_json::Value>(token) {
        Ok(serde_json::Value::Object(claims)) => {
            let mut header = serde_json::Map::new();
            header.insert("kid".into(), "k1".into());
            key.sign_compact(
                header,
                serde_json::Value::Object(claims).to_string().as_bytes(),
            )
        }
        _ => token.trim().to_owned(),
    };
    let _ = verify_id_token(&token, &keys, &expect, 1_800_000_000);
}
