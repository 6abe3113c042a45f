//! The policy decision point over a node process (spec: `specs/pdp.md`): knooppunt's policies
//! loaded unchanged from `tests/fixtures/knooppunt-pdp`, asked at knooppunt's endpoint with
//! knooppunt's request shape; the closed question answered from the network's consents, with no
//! Mitz behind the node: an objection registered at another organisation's node turns the
//! answer.

use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use serde_json::{json, Value};

const ANNA: &str = "999900109";
const AUTHZ: &str = "/pdp/v1/data/knooppunt/authz";

fn bgz_request(bsn: Option<&str>, holder_ura: &str) -> Value {
    let mut context = json!({"data_holder_organization_id": holder_ura,
                             "data_holder_facility_type": "Z3",
                             "connection_type_code": "hl7-fhir-rest"});
    if let Some(b) = bsn {
        context["patient_bsn"] = json!(b);
    }
    json!({"input": {
        "subject": {"user_id": "000095254", "user_role": "01.015", "organization_ura": "99990022",
                    "organization_facility_type": "Z3", "scope": "bgz"},
        "request": {"method": "GET", "protocol": "HTTP/1.0", "path": "/Patient",
                    "query_params": {"_include": ["Patient:general-practitioner"]}},
        "context": context,
    }})
}

fn reasons(v: &Value, policy: &str) -> String {
    v["policies"][policy]["reasons"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knooppunts_policies_decide_with_the_networks_consents() {
    let policies = knoop_e2e::repo_root().join("tests/fixtures/knooppunt-pdp");
    let w = world(
        "opt-out",
        &[LEIDEN_HOSPITAL, KERKRADE_GP],
        &[(0, ("KNOOP_PDP__POLICIES", policies.display().to_string()))],
    )
    .await;
    let (hospital, gp) = (0, 1);
    let pdp = w.node(hospital);
    w.register(hospital, ANNA, &["medication", "problems"])
        .await;

    // knooppunt's documented example: no patient in the request, so no consent, so no.
    let (code, v) = pdp
        .post(AUTHZ, &bgz_request(None, "99990011"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["allow"], false, "{v}");
    assert_eq!(v["policies"]["bgz"]["allow"], false, "{v}");
    assert!(reasons(&v, "bgz").contains("not_allowed"), "{v}");

    // With the patient: opt-out and no objection anywhere, so the closed question says yes and
    // the BgZ query is allowed (the CapabilityStatement admits it).
    let (code, v) = pdp
        .post(AUTHZ, &bgz_request(Some(ANNA), "99990011"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["allow"], true, "{v}");
    assert!(reasons(&v, "bgz").contains("opt-out mode): yes"), "{v}");

    // Named by its id at the hospital only: the BSN comes from the hospital's source system
    // (the policy information point), then the same answer.
    let mut by_id = bgz_request(None, "99990011");
    by_id["input"]["request"]["query_params"] =
        json!({"_id": ["zl-104872"], "_include": ["Patient:general-practitioner"]});
    let (_, v) = pdp.post(AUTHZ, &by_id).await.unwrap();
    assert_eq!(v["allow"], true, "{v}");

    // A query outside the BgZ set is refused by the CapabilityStatement check.
    let mut other = bgz_request(Some(ANNA), "99990011");
    other["input"]["request"]["query_params"] = json!({"name": ["Hendriks"]});
    let (_, v) = pdp.post(AUTHZ, &other).await.unwrap();
    assert_eq!(v["allow"], false, "{v}");
    assert!(
        reasons(&v, "bgz").contains("search parameters not allowed: name"),
        "{v}"
    );

    // The patient objects, registered at the GP's node; the objection reaches the hospital's
    // node and the same question is now answered no.
    let (code, reg) = w
        .node(gp)
        .post(
            "/v1/consent",
            &json!({"issuer": w.orgs[gp].did, "patient": {"value": ANNA}, "decision": "deny",
                    "purpose": ["regular-care"], "dataCategories": ["*"], "method": "written"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{reg}");
    let t0 = Instant::now();
    let v = loop {
        let (_, v) = pdp
            .post(AUTHZ, &bgz_request(Some(ANNA), "99990011"))
            .await
            .unwrap();
        if v["allow"] == false {
            break v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the objection never arrived: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(reasons(&v, "bgz").contains("opt-out mode): no"), "{v}");

    // eOverdracht: the implied consent for one Task lives in the hospital's own FHIR API as a
    // Consent resource (the guide's consent scope), read through the policy information point.
    let create = |resource: Value| w.fhir.create("leiden-hospital", resource);
    let task = create(
        json!({"resourceType": "Task", "status": "requested", "intent": "order",
                             "for": {"reference": "Patient/zl-104872"}}),
    )
    .await;
    let other_task = create(json!({"resourceType": "Task", "status": "requested",
                                   "intent": "order"}))
    .await;
    let ura = |v: &str| json!({"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": v});
    create(json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://nuts-foundation.github.io/nl-generic-functions-ig/CodeSystem/nl-gf-consent-scope",
                              "code": "eoverdracht"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "organization": [{"identifier": ura("99990011")}],
        "provision": {"type": "permit",
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
            "actor": [{"role": {"text": "receiver"}, "reference": {"identifier": ura("99990022")}}],
            "data": [{"meaning": "instance", "reference": {"reference": format!("Task/{task}")}}]}}))
    .await;
    let eoverdracht = |id: &str| {
        json!({"input": {"subject": {"organization_ura": "99990022", "scope": "eoverdracht-sender"},
                         "request": {"method": "GET", "path": format!("/Task/{id}")},
                         "context": {"connection_type_code": "hl7-fhir-rest",
                                     "data_holder_organization_id": "99990011"}}})
    };
    let (_, v) = pdp.post(AUTHZ, &eoverdracht(&task)).await.unwrap();
    assert_eq!(v["allow"], true, "{v}");
    let (_, v) = pdp.post(AUTHZ, &eoverdracht(&other_task)).await.unwrap();
    assert_eq!(v["allow"], false, "no consent for this Task: {v}");

    // mcsd_query: a directory query the CapabilityStatement lists, and one it does not.
    let mcsd = |path: &str, query: Value| {
        json!({"input": {"subject": {"organization_ura": "99990022", "scope": "mcsd_query"},
                         "request": {"method": "GET", "path": path, "query_params": query},
                         "context": {"connection_type_code": "hl7-fhir-rest"}}})
    };
    let (_, v) = pdp
        .post(AUTHZ, &mcsd("/Organization", json!({"name": ["Leiden"]})))
        .await
        .unwrap();
    assert_eq!(v["allow"], true, "{v}");
    let (_, v) = pdp
        .post(AUTHZ, &mcsd("/Organization/o1", json!({})))
        .await
        .unwrap();
    assert_eq!(v["allow"], true, "a read: {v}");
    let (_, v) = pdp.post(AUTHZ, &mcsd("/Patient", json!({}))).await.unwrap();
    assert_eq!(v["allow"], false, "{v}");

    // Several scopes, in name order until one allows: an unknown one says so, then the next
    // allows.
    let mut both = mcsd("/Organization", json!({}));
    both["input"]["subject"]["scope"] = json!("mcsd_query Aa-Unknown");
    let (_, v) = pdp.post("/pdp", &both).await.unwrap();
    assert_eq!(v["allow"], true, "{v}");
    assert_eq!(v["policies"]["mcsd_query"]["allow"], true, "{v}");
    assert_eq!(v["policies"]["aa_unknown"]["allow"], false, "{v}");
    assert!(reasons(&v, "aa_unknown").contains("not_implemented"), "{v}");

    // Bad input: clear answers, never a 5xx.
    for (body, status) in [
        (json!({"input": {"subject": {"scope": "system"}}}), 400),
        (json!({"input": {"subject": {"scope": "test_stu3"}}}), 400),
        (json!({"not input": {}}), 400),
        (json!({"input": {"subject": {}}}), 200),
    ] {
        let (code, v) = pdp.post(AUTHZ, &body).await.unwrap();
        assert_eq!(code, status, "{body}: {v}");
        assert_eq!(v["allow"], false, "{v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let (code, _) = pdp.post_raw(AUTHZ, b"{not json".to_vec()).await.unwrap();
    assert_eq!(code, 400);
    let (code, _) = pdp
        .post("/pdp/v1/data/other/authz", &bgz_request(None, "1"))
        .await
        .unwrap();
    assert_eq!(code, 400);
    let (_, v) = pdp
        .post(AUTHZ, &bgz_request(Some(ANNA), "12345678"))
        .await
        .unwrap();
    assert_eq!(v["allow"], false, "{v}");
    assert!(
        reasons(&v, "bgz").contains("is hosted on this node"),
        "a holder not hosted here: {v}"
    );
    let mut bad_path = bgz_request(None, "99990011");
    bad_path["input"]["request"]["path"] = json!("/NoSuchType");
    let (code, v) = pdp.post(AUTHZ, &bad_path).await.unwrap();
    assert_eq!((code, v["allow"].clone()), (200, json!(false)), "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("invalid request"),
        "{v}"
    );
}

/// `knoop pdp test` runs a policy directory's Rego tests from the command line.
#[test]
fn the_cli_runs_policy_tests() {
    let v = knoop_e2e::run_outside(
        std::process::Command::new(knoop_e2e::knoop_bin())
            .args(["pdp", "test"])
            .arg(knoop_e2e::repo_root().join("tests/fixtures/knooppunt-pdp")),
    );
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(116), Some(0))
    );
}

/// One decision path: the data proxy decides every request through the PDP. A policy a holder
/// configures under the name of a scope (`discharge_summary`) is evaluated beside the built-in
/// one: this hospital keeps its care plans out of discharge summaries, and a GP's fetch gets
/// everything else, with the refusal named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_policy_decides_the_data_proxys_requests_too() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("discharge_summary");
    std::fs::create_dir_all(&policy).unwrap();
    std::fs::write(
        policy.join("policy.rego"),
        "package discharge_summary\n\nimport rego.v1\n\ndefault allow := false\n\n\
         # Discharge summaries from this hospital, without care plans.\n\
         allow if input.resource.type != \"CarePlan\"\n",
    )
    .unwrap();
    let w = world(
        "opt-out",
        &[LEIDEN_HOSPITAL, KERKRADE_GP],
        &[(0, ("KNOOP_PDP__POLICIES", dir.path().display().to_string()))],
    )
    .await;
    let (hospital, gp) = (0, 1);
    w.register(hospital, ANNA, &["summary", "problems", "care-plan"])
        .await;
    let hospital_node = node_did(w.node(hospital)).await;
    let v = w
        .fetch_until(
            "the hospital answers",
            gp,
            ANNA,
            "discharge-summary",
            &["summary", "problems", "care-plan"],
            "regular-care",
            None,
            |v| status_of(v, &hospital_node) != "absent",
        )
        .await;
    assert_eq!(status_of(&v, &hospital_node), "partial", "{v}");
    let h = &w.orgs[hospital].did;
    assert_eq!(count(&v, "CarePlan", h), 0, "{v}");
    assert!(count(&v, "Condition", h) > 0, "{v}");
    assert!(count(&v, "Composition", h) > 0, "{v}");
    let error = v["sources"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("CarePlan") && error.contains("denied by discharge_summary"),
        "{v}"
    );
}
