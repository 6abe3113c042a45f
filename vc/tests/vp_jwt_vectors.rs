//! The RFC 7523 assertion vectors of `specs/vectors/jose.json` (made with joserfc): a
//! presentation JWT and a client assertion of did:jwk holders verify at their time and for
//! their audience, and not after, nor for another audience.

use knoop_vc::jws::PublicJwk;
use knoop_vc::presentation::{verify_presentation_jwt, HolderEnv};
use knoop_vc::types::{knoop_contexts, Claims};
use knoop_vc::verify::{StatusLookup, VerifierEnv};
use serde_json::Value;

/// Keys from did:jwk only; the vectors' clock.
struct DidJwk(i64);

fn key_of(vm: &str, rel: &str) -> Result<PublicJwk, String> {
    let did = vm.split('#').next().unwrap_or_default();
    let doc = knoop_did::external::resolve_did_jwk(did).map_err(|e| e.to_string())?;
    if !doc[rel]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r == vm))
    {
        return Err(format!("{vm} is not an {rel} key"));
    }
    PublicJwk::from_json(&doc["verificationMethod"][0]["publicKeyJwk"]).map_err(|e| e.to_string())
}

impl VerifierEnv for DidJwk {
    fn issuer_key_at(&self, vm: &str, _: i64) -> Result<PublicJwk, String> {
        key_of(vm, "assertionMethod")
    }
    fn revoked(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn status_list(&self, _: &str) -> StatusLookup {
        StatusLookup::NotChecked
    }
    fn trusted(&self, _: &str, _: &Claims) -> Result<(), String> {
        Ok(())
    }
    fn now_ms(&self) -> i64 {
        self.0 * 1000
    }
}

impl HolderEnv for DidJwk {
    fn holder_key_at(&self, vm: &str, _: i64) -> Result<PublicJwk, String> {
        key_of(vm, "authentication")
    }
}

#[test]
fn the_assertion_vectors_verify_for_their_audience_and_time() {
    let v: Value =
        serde_json::from_str(include_str!("../../specs/vectors/jose.json")).expect("vectors");
    for name in ["vp_jwt", "client_assertion"] {
        let case = &v[name];
        let jwt = case["jwt"].as_str().unwrap();
        let at = case["claims"]["iat"].as_i64().unwrap() + 100;
        let ok = verify_presentation_jwt(
            jwt,
            &DidJwk(at),
            &knoop_contexts(),
            &["https://node.example"],
            at,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ok.presentation.holder, case["holder"], "{name}");
        assert_eq!(ok.jti, case["claims"]["jti"], "{name}");
        let code = |aud: &str, now: i64| {
            verify_presentation_jwt(jwt, &DidJwk(now), &knoop_contexts(), &[aud], now)
                .err()
                .map(|e| e.code())
        };
        assert_eq!(
            code("https://elsewhere.example", at),
            Some("audience_mismatch"),
            "{name}"
        );
        assert_eq!(
            code("https://node.example", at + 3600),
            Some("presentation_expired"),
            "{name}"
        );
    }
}
