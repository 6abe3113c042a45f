//! Presentation Exchange over a definition like the ones knoop publishes per scope.

use super::*;
use serde_json::json;

fn definition() -> Value {
    json!({
        "id": "medication-overview",
        "input_descriptors": [
            {"id": "organization", "constraints": {"fields": [
                {"path": ["$.type"], "filter": {"type": "array", "contains": {"enum": ["CareOrganizationCredential", "X509Credential"]}}},
                {"path": ["$.credentialSubject.ura", "$.credentialSubject.san.otherName"], "filter": {"type": "string"}},
                {"path": ["$.credentialSubject.city"], "optional": true}
            ]}},
            {"id": "professional", "constraints": {"fields": [
                {"path": ["$.type"], "filter": {"type": "array", "contains": {"enum": ["HealthcareProfessionalCredential", "DeziUserCredential"]}}}
            ]}}
        ]
    })
}

fn credentials() -> Vec<Value> {
    vec![
        json!({"type": ["VerifiableCredential", "CareOrganizationCredential"],
               "credentialSubject": {"id": "did:example:org", "ura": "70000001"}}),
        json!({"type": ["VerifiableCredential", "HealthcareProfessionalCredential"],
               "credentialSubject": {"id": "did:example:dr"}}),
    ]
}

fn presentation() -> Value {
    json!({"type": ["VerifiablePresentation"], "verifiableCredential": ["jwt-0", "jwt-1"]})
}

fn submission(org: &str, pro: &str) -> Value {
    json!({"id": "s1", "definition_id": "medication-overview", "descriptor_map": [
        {"id": "organization", "format": "jwt_vc", "path": org},
        {"id": "professional", "format": "jwt_vc", "path": pro},
    ]})
}

#[test]
fn a_matching_submission_is_accepted() {
    let got = evaluate(
        &definition(),
        &submission("$.verifiableCredential[0]", "$.verifiableCredential[1]"),
        &presentation(),
        &credentials(),
    )
    .unwrap();
    assert_eq!(
        got,
        vec![("organization".into(), 0), ("professional".into(), 1)]
    );
}

#[test]
fn each_mismatch_is_refused() {
    let d = definition();
    let p = presentation();
    let c = credentials();
    // Swapped: the organisation descriptor points at the professional's credential.
    let swapped = submission("$.verifiableCredential[1]", "$.verifiableCredential[0]");
    assert!(matches!(
        evaluate(&d, &swapped, &p, &c),
        Err(PeError::Unsatisfied(..))
    ));
    // Another definition, a missing entry, a path to nothing or to more than one credential.
    let mut other = submission("$.verifiableCredential[0]", "$.verifiableCredential[1]");
    other["definition_id"] = "discharge-summary".into();
    assert!(matches!(
        evaluate(&d, &other, &p, &c),
        Err(PeError::Submission(_))
    ));
    let mut missing = other.clone();
    missing["definition_id"] = "medication-overview".into();
    missing["descriptor_map"].as_array_mut().unwrap().pop();
    assert!(matches!(
        evaluate(&d, &missing, &p, &c),
        Err(PeError::Unsatisfied(..))
    ));
    for bad in [
        "$.verifiableCredential[5]",
        "$.verifiableCredential[*]",
        "$.type",
        "not a path",
    ] {
        let s = submission(bad, "$.verifiableCredential[1]");
        assert!(
            matches!(evaluate(&d, &s, &p, &c), Err(PeError::Submission(_))),
            "{bad}"
        );
    }
    // A required field that is absent.
    let mut no_ura = c.clone();
    no_ura[0]["credentialSubject"] = json!({"id": "did:example:org"});
    let s = submission("$.verifiableCredential[0]", "$.verifiableCredential[1]");
    assert!(matches!(
        evaluate(&d, &s, &p, &no_ura),
        Err(PeError::Unsatisfied(..))
    ));
}

#[test]
fn unsupported_definitions_are_refused() {
    let mut with_requirements = definition();
    with_requirements["submission_requirements"] = json!([{"rule": "all", "from": "A"}]);
    let mut required_ld = definition();
    required_ld["input_descriptors"][0]["constraints"]["limit_disclosure"] = "required".into();
    let mut predicate = definition();
    predicate["input_descriptors"][1]["constraints"]["fields"][0]["predicate"] = "required".into();
    let mut remote = definition();
    remote["input_descriptors"][1]["constraints"]["fields"][0]["filter"] =
        json!({"$ref": "https://evil.example/schema.json"});
    let mut bad_path = definition();
    bad_path["input_descriptors"][1]["constraints"]["fields"][0]["path"] = json!(["$$"]);
    for (name, d) in [
        ("submission_requirements", with_requirements),
        ("limit_disclosure required", required_ld),
        ("predicate", predicate),
        ("remote $ref", remote),
        ("bad path", bad_path),
        ("no id", json!({"input_descriptors": []})),
    ] {
        assert!(check_definition(&d).is_err(), "{name}");
    }
    check_definition(&definition()).unwrap();
}
