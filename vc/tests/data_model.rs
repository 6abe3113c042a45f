//! Runs every input of the W3C VC Data Model 2.0 test suite
//! (vc/tests/fixtures/w3c-vc-data-model-2.0/tests/input, recursively): `-ok` files must be
//! accepted, `-fail` (and `-fail-or-inject`: we never inject) files rejected, by the
//! structural checks plus the JSON-LD checks. The inputs are what the suite hands an issuer,
//! so credentials are checked as [`Strictness::IssuerInput`] (no `issuer` yet).
//! A file whose name gives no verdict must be listed in `NO_VERDICT`, so nothing is skipped
//! silently.

use std::path::{Path, PathBuf};

use knoop_vc::model::{check_credential, check_presentation, check_semantics, ModelError};
use knoop_vc::{Contexts, Strictness};
use serde_json::Value;

/// Files whose names carry no `-ok`/`-fail` verdict: in the W3C suite they test how a
/// verifier treats an unproven ("self-asserted") credential inside a presentation, which
/// depends on proofs, not on the data model. Structurally they are all valid and must be
/// accepted by the structural checks; the holder/issuer comparison is a later slice.
const NO_VERDICT: &[&str] = &[
    "presentation-self-asserted-vc-holder-mismatch.json",
    "presentation-self-asserted-vc-issuer-mismatch.json",
    "presentation-self-asserted-vc-no-holder.json",
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

fn check(doc: &Value, contexts: &Contexts) -> Result<(), ModelError> {
    let is_presentation = doc["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "VerifiablePresentation"))
        || doc["type"] == "VerifiablePresentation";
    if is_presentation {
        check_presentation(doc)?;
    } else {
        check_credential(doc, Strictness::IssuerInput)?;
    }
    check_semantics(doc, contexts)
}

#[test]
fn w3c_vc_data_model_2_inputs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/w3c-vc-data-model-2.0/tests/input");
    let mut all = Vec::new();
    files(&dir, &mut all);
    all.sort();
    let contexts = Contexts::bundled();
    let (mut accepted, mut rejected, mut no_verdict) = (0, 0, 0);
    let mut wrong = Vec::new();
    for path in &all {
        let name = path.file_name().unwrap().to_str().unwrap();
        // The suite's harness fills in these two placeholders before use; so do we.
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("\"PAST DATE\"", "\"2020-01-01T00:00:00Z\"")
            .replace("\"FUTURE DATE\"", "\"2120-01-01T00:00:00Z\"");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let result = check(&doc, &contexts);
        if name.ends_with("-ok.json") {
            match result {
                Ok(()) => accepted += 1,
                Err(e) => wrong.push(format!("{name}: rejected: {e}")),
            }
        } else if name.ends_with("-fail.json") || name.ends_with("-fail-or-inject.json") {
            match result {
                Err(e) => {
                    println!("{name}: rejected: {e}");
                    rejected += 1
                }
                Ok(()) => wrong.push(format!("{name}: accepted")),
            }
        } else if NO_VERDICT.contains(&name) {
            match result {
                Ok(()) => no_verdict += 1,
                Err(e) => wrong.push(format!("{name}: rejected: {e}")),
            }
        } else {
            wrong.push(format!(
                "{name}: no verdict in its name and not in NO_VERDICT"
            ));
        }
    }
    println!(
        "{} files: {accepted} -ok accepted, {rejected} -fail rejected, {no_verdict} without verdict",
        all.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(no_verdict, NO_VERDICT.len());
}

#[test]
fn issued_credentials_need_an_issuer() {
    let vc = serde_json::json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "credentialSubject": {"id": "did:example:subject"}
    });
    assert!(check_credential(&vc, Strictness::IssuerInput).is_ok());
    let e = check_credential(&vc, Strictness::Issued).unwrap_err();
    assert_eq!(e.path, "issuer");
    let mut vc = vc;
    vc["issuer"] = serde_json::json!({"name": "Praktijk"});
    assert_eq!(
        check_credential(&vc, Strictness::Issued).unwrap_err().path,
        "issuer.id"
    );
    vc["issuer"] = "did:knoop:abc".into();
    assert!(check_credential(&vc, Strictness::Issued).is_ok());
    // v1.1 credentials are accepted, with their own date fields.
    let v1 = serde_json::json!({
        "@context": ["https://www.w3.org/2018/credentials/v1"],
        "type": ["VerifiableCredential"],
        "issuer": "did:example:issuer",
        "issuanceDate": "2010-01-01T19:23:24Z",
        "credentialSubject": {"id": "did:example:subject"}
    });
    assert!(check_credential(&v1, Strictness::Issued).is_ok());
    assert!(check_semantics(&v1, &Contexts::bundled()).is_ok());
}
