//! Consent over FHIR and Mitz-style subscriptions over node processes (spec:
//! `specs/fhir-consent.md`), with no Mitz: the hospital's EHR subscribes at its own node to
//! consent changes about its patient; the patient objects at the GP, whose EHR records a FHIR
//! `Consent` at the GP's node; the objection reaches the hospital's node, turns the closed
//! question of the policy decision point, and the hospital's EHR is notified; the GP revokes it
//! over FHIR and everything turns back. Bad input gets an `OperationOutcome`.

use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use knoop_e2e::hooks::HookReceiver;
use serde_json::{json, Value};

const ANNA: &str = "999900109";
const BSN: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
const URA: &str = "http://fhir.nl/fhir/NamingSystem/ura";
const AUTHZ: &str = "/pdp/v1/data/knooppunt/authz";

fn objection() -> Value {
    json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": BSN, "value": ANNA}},
        "organization": [{"identifier": {"system": URA, "value": KERKRADE_GP.ura}}],
        "provision": {"type": "deny",
                      "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                   "code": "TREAT"}]}})
}

fn closed_question() -> Value {
    json!({"input": {
        "subject": {"user_id": "000095254", "user_role": "01.015", "organization_ura": KERKRADE_GP.ura,
                    "organization_facility_type": "Z3", "scope": "bgz"},
        "request": {"method": "GET", "protocol": "HTTP/1.0", "path": "/Patient",
                    "query_params": {"_include": ["Patient:general-practitioner"]}},
        "context": {"data_holder_organization_id": LEIDEN_HOSPITAL.ura,
                    "data_holder_facility_type": "Z3", "connection_type_code": "hl7-fhir-rest",
                    "patient_bsn": ANNA},
    }})
}

/// Asks the hospital node's PDP until it answers `want` (60 s at most).
async fn pdp_until(node: &knoop_e2e::Node, want: bool) {
    let t0 = Instant::now();
    loop {
        let (_, v) = node.post(AUTHZ, &closed_question()).await.unwrap();
        if v["allow"] == want {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never {want}: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn tenant(ura: &str) -> String {
    format!("{URA}|{ura}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fhir_consent_turns_the_closed_question_and_notifies_subscribers() {
    let policies = knoop_e2e::repo_root().join("tests/fixtures/knooppunt-pdp");
    let w = world(
        "opt-out",
        &[LEIDEN_HOSPITAL, KERKRADE_GP],
        &[(0, ("KNOOP_PDP__POLICIES", policies.display().to_string()))],
    )
    .await;
    let (hospital, gp) = (w.node(0), w.node(1));
    w.register(0, ANNA, &["medication", "problems"]).await;
    let post = reqwest::Method::POST;

    // The hospital's EHR subscribes at its node, as it would at knooppunt (no Mitz behind it).
    let hook = HookReceiver::start().await.unwrap();
    let sub = json!({"resourceType": "Subscription", "status": "requested", "reason": "OTV",
        "criteria": format!("Consent?_query=otv&patientid={ANNA}&providerid={}&providertype=Z3",
                            LEIDEN_HOSPITAL.ura),
        "channel": {"type": "rest-hook", "endpoint": hook.url, "payload": "application/fhir+json",
                    "header": ["Authorization: Bearer hospital-ehr"]}});
    let (code, created) = hospital
        .fhir(post.clone(), "/mitz/Subscription", Some(&sub), &[])
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"], "active");
    let sub_id = created["id"].as_str().unwrap().to_owned();
    pdp_until(hospital, true).await;

    // The GP's EHR records the patient's objection as a FHIR Consent at the GP's node.
    let gp_tenant = tenant(KERKRADE_GP.ura);
    let (code, consent) = gp
        .fhir(
            post.clone(),
            "/fhir/Consent",
            Some(&objection()),
            &[("X-Tenant-ID", &gp_tenant)],
        )
        .await;
    assert_eq!(code, 201, "{consent}");
    assert_eq!(
        (
            consent["status"].as_str(),
            consent["provision"]["type"].as_str()
        ),
        (Some("active"), Some("deny")),
        "{consent}"
    );
    let consent_id = consent["id"].as_str().unwrap().to_owned();

    // It reaches the hospital's node: the closed question turns, and the EHR is notified.
    pdp_until(hospital, false).await;
    let note = hook
        .next(Duration::from_secs(60))
        .await
        .expect("a notification");
    assert!(note.head.starts_with("post /notify"), "{}", note.head);
    assert!(
        note.head.contains("authorization: bearer hospital-ehr"),
        "{}",
        note.head
    );
    assert!(
        note.head.contains("content-type: application/fhir+json"),
        "{}",
        note.head
    );
    let b = &note.body;
    assert_eq!(b["type"], "history", "{b}");
    let status = &b["entry"][0]["resource"];
    assert_eq!(status["resourceType"], "Parameters", "{b}");
    assert!(
        status
            .to_string()
            .contains(&format!("Subscription/{sub_id}")),
        "{status}"
    );
    let notified = &b["entry"][1]["resource"];
    assert_eq!(
        (
            notified["id"].as_str(),
            notified["provision"]["type"].as_str()
        ),
        (Some(consent_id.as_str()), Some("deny")),
        "{b}"
    );
    assert!(
        notified.get("patient").is_none(),
        "no BSN leaves the node: {notified}"
    );
    // The notification is FHIR R4 an outside library reads with its strict models.
    let checked = knoop_e2e::run_outside_with(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg("-"),
        Some(b.to_string().as_bytes()),
    );
    assert_eq!(
        checked["types"],
        json!(["Parameters", "Consent"]),
        "{checked}"
    );

    // The GP finds it by patient (with the BSN it asked with) and reads it by id.
    let search = format!("/fhir/Consent?patient:identifier={BSN}%7C{ANNA}");
    let (code, found) = gp
        .fhir(
            reqwest::Method::GET,
            &search,
            None,
            &[("X-Tenant-ID", &gp_tenant)],
        )
        .await;
    assert_eq!((code, found["total"].as_u64()), (200, Some(1)), "{found}");
    assert_eq!(
        found["entry"][0]["resource"]["patient"]["identifier"]["value"],
        ANNA
    );
    let checked = knoop_e2e::run_outside(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg(format!("{}{search}", gp.rpc))
            .arg(format!("X-Tenant-ID: {gp_tenant}")),
    );
    assert_eq!(checked["types"], json!(["Consent"]), "{checked}");
    let (code, read) = gp
        .fhir(
            reqwest::Method::GET,
            &format!("/fhir/Consent/{consent_id}"),
            None,
            &[("X-Tenant-ID", &gp_tenant)],
        )
        .await;
    assert_eq!(
        (code, read["id"].as_str()),
        (200, Some(consent_id.as_str()))
    );

    // Only the recording organisation revokes it.
    let mut revoke = consent.clone();
    revoke["status"] = json!("inactive");
    let hospital_tenant = tenant(LEIDEN_HOSPITAL.ura);
    let path = format!("/fhir/Consent/{consent_id}");
    let (code, refused) = hospital
        .fhir(
            reqwest::Method::PUT,
            &path,
            Some(&revoke),
            &[("X-Tenant-ID", &hospital_tenant)],
        )
        .await;
    assert_eq!(code, 403, "{refused}");
    let (code, revoked) = gp
        .fhir(
            reqwest::Method::PUT,
            &path,
            Some(&revoke),
            &[("X-Tenant-ID", &gp_tenant)],
        )
        .await;
    assert_eq!(
        (code, revoked["status"].as_str()),
        (200, Some("inactive")),
        "{revoked}"
    );
    pdp_until(hospital, true).await;
    let note = hook
        .next(Duration::from_secs(60))
        .await
        .expect("a second notification");
    assert_eq!(
        note.body["entry"][1]["resource"]["status"], "inactive",
        "{}",
        note.body
    );

    // Bad input: an OperationOutcome with a 4xx.
    let mut proposed = objection();
    proposed["status"] = json!("proposed");
    let mut other_purpose = objection();
    other_purpose["provision"]["purpose"][0]["code"] = json!("HMARKT");
    let mut wrong_recorder = objection();
    wrong_recorder["organization"][0]["identifier"]["value"] = json!(LEIDEN_HOSPITAL.ura);
    let unknown_tenant = tenant("12345678");
    for (body, headers, want) in [
        (proposed, vec![("X-Tenant-ID", gp_tenant.as_str())], 422),
        (
            other_purpose,
            vec![("X-Tenant-ID", gp_tenant.as_str())],
            422,
        ),
        (
            wrong_recorder,
            vec![("X-Tenant-ID", gp_tenant.as_str())],
            422,
        ),
        (objection(), vec![], 400),
        (
            objection(),
            vec![("X-Tenant-ID", unknown_tenant.as_str())],
            403,
        ),
        (
            json!({"resourceType": "Patient"}),
            vec![("X-Tenant-ID", gp_tenant.as_str())],
            400,
        ),
    ] {
        let (code, o) = gp
            .fhir(post.clone(), "/fhir/Consent", Some(&body), &headers)
            .await;
        assert_eq!(
            (code, o["resourceType"].as_str()),
            (want, Some("OperationOutcome")),
            "{o}"
        );
    }
    let mut bad_sub = sub.clone();
    bad_sub["reason"] = json!("other");
    let (code, _) = hospital
        .fhir(post.clone(), "/mitz/Subscription", Some(&bad_sub), &[])
        .await;
    assert_eq!(code, 400);
    let mut off_loopback = sub.clone();
    off_loopback["channel"]["endpoint"] = json!("http://ehr.example/notify");
    let (code, _) = hospital
        .fhir(post.clone(), "/mitz/Subscription", Some(&off_loopback), &[])
        .await;
    assert_eq!(code, 400, "plain http only on loopback");
    let (code, _) = gp
        .fhir(
            reqwest::Method::DELETE,
            &format!("/mitz/Subscription/{sub_id}"),
            None,
            &[("X-Tenant-ID", &gp_tenant)],
        )
        .await;
    assert_eq!(code, 404, "not the GP's subscription");
    let (code, read) = hospital
        .fhir(
            reqwest::Method::GET,
            &format!("/mitz/Subscription/{sub_id}"),
            None,
            &[("X-Tenant-ID", &hospital_tenant)],
        )
        .await;
    assert_eq!(
        (code, read["status"].as_str()),
        (200, Some("active")),
        "{read}"
    );
    assert!(!read.to_string().contains(ANNA), "no BSN kept: {read}");
    let (code, _) = gp
        .fhir(
            reqwest::Method::GET,
            &format!("/mitz/Subscription/{sub_id}"),
            None,
            &[("X-Tenant-ID", &gp_tenant)],
        )
        .await;
    assert_eq!(code, 404, "not the GP's subscription");
    let (code, _) = hospital
        .fhir(
            reqwest::Method::DELETE,
            &format!("/mitz/Subscription/{sub_id}"),
            None,
            &[("X-Tenant-ID", &hospital_tenant)],
        )
        .await;
    assert_eq!(code, 204);
}
