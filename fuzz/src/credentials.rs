//! Verifiable credentials and presentations, JSON-LD (Data Integrity) and JOSE (`specs/
//! credentials.md`, `specs/jose.md`), and Bitstring Status Lists.

use knoop_vc::jws::{Compact, PublicJwk};
use knoop_vc::presentation::{verify_presentation, verify_presentation_jwt, HolderEnv};
use knoop_vc::status::{entries, StatusList};
use knoop_vc::types::Claims;
use knoop_vc::verify::{verify_credential, StatusLookup, VerifierEnv};
use knoop_vc::{Contexts, Strictness};

/// An environment that knows no DID: verification runs as far as it goes without a key.
struct Unknown;

impl VerifierEnv for Unknown {
    fn issuer_key_at(&self, vm: &str, _: i64) -> Result<PublicJwk, String> {
        Err(format!("{vm}: unknown"))
    }
    fn revoked(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn status_list(&self, url: &str) -> StatusLookup {
        StatusLookup::Unavailable(format!("{url}: not fetched"))
    }
    fn trusted(&self, _: &str, _: &Claims) -> Result<(), String> {
        Ok(())
    }
    fn now_ms(&self) -> i64 {
        1_767_225_600_000
    }
}

impl HolderEnv for Unknown {
    fn holder_key_at(&self, vm: &str, _: i64) -> Result<PublicJwk, String> {
        Err(format!("{vm}: unknown"))
    }
}

/// A compact JWS (a vc+jwt, a DPoP proof, a client assertion): its header, claims, and its
/// signature by the key in its own `jwk` header, if it has one.
pub fn jws_compact(data: &[u8]) {
    let Some(s) = super::text(data) else {
        return;
    };
    if let Ok(jws) = Compact::parse(s) {
        let _ = jws.claims();
        if let Some(jwk) = jws.header.get("jwk") {
            if let Ok(key) = PublicJwk::from_json(jwk) {
                let _ = jws.verify(&key);
            }
        }
    }
}

/// A credential as JSON (Data Integrity, or an enveloped JWS) or as a vc+jwt string.
pub fn credential(data: &[u8]) {
    let input = super::json(data).or_else(|| super::text(data).map(|s| s.trim().into()));
    let Some(input) = input else {
        return;
    };
    let _ = knoop_vc::model::check_credential(&input, Strictness::Issued);
    let _ = verify_credential(&input, &Unknown, &Contexts::bundled(), true);
}

/// A presentation as JSON or as a vp+jwt string.
pub fn presentation(data: &[u8]) {
    let contexts = Contexts::bundled();
    if let Some(vp) = super::json(data) {
        let _ = verify_presentation(&vp, &Unknown, &contexts, "challenge", "domain");
    } else if let Some(jwt) = super::text(data) {
        let _ = verify_presentation_jwt(jwt.trim(), &Unknown, &contexts, &["aud"], 1_767_225_600);
    }
}

/// A credential's status entries, and a status list credential's list.
pub fn status_list(data: &[u8]) {
    let Some(v) = super::json(data) else {
        return;
    };
    let found = entries(&v).unwrap_or_default();
    if let Ok(list) = StatusList::from_credential(&v) {
        for e in &found {
            let _ = list.status(e);
        }
    }
}
