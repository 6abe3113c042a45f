//! Access tokens over real node processes (spec: `specs/tokens.md`): a GP's organisation asks
//! the hospital's node for a token with a presentation of its organisation credential and its
//! professional's credential; the hospital's node grants it only as consent allows, binds it to
//! requester, professional, scope and patient, refuses replays and foreign audiences, breaks the
//! glass only with a reason, and audits every decision.

use std::time::{Duration, Instant};

use knoop_e2e::{Network, Node};
use serde_json::{json, Value};

const BSN: &str = "123456782";

async fn create_did(node: &Node) -> String {
    let (code, body) = node.post("/v1/dids", &json!({})).await.unwrap();
    assert_eq!(code, 201, "{body}");
    body["did"].as_str().unwrap().to_owned()
}

async fn issue(node: &Node, body: Value) -> Value {
    let (code, v) = node.post("/v1/credentials", &body).await.unwrap();
    assert_eq!(code, 201, "{v}");
    v["credential"].clone()
}

/// A presentation by `holder` (on `node`) of `credentials`, for `audience` with a fresh nonce
/// from `holder_node`.
async fn presentation(node: &Node, at: &Node, holder: &str, credentials: &[Value]) -> Value {
    let (_, n) = at.get("/oauth2/nonce").await.unwrap();
    let (code, vp) = node
        .post(
            "/v1/presentations",
            &json!({"holder": holder, "credentials": credentials,
                    "challenge": n["nonce"], "domain": n["audience"]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{vp}");
    vp["presentation"].clone()
}

async fn token(at: &Node, vp: &Value, patient: &str, purpose: &str, reason: &str) -> (u16, Value) {
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:vp_token-bearer".to_owned(),
        ),
        ("assertion", vp.to_string()),
        ("scope", "medication-overview".to_owned()),
        ("patient", patient.to_owned()),
        ("purpose", purpose.to_owned()),
    ];
    if !reason.is_empty() {
        form.push(("reason", reason.to_owned()));
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth2/token", at.rpc))
        .form(&form)
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

async fn introspect(at: &Node, token: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/oauth2/introspect", at.rpc))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_follow_consent_and_bind_requester_scope_and_patient() {
    let net = Network::start_with_env(2, knoop_e2e::privacy_env("opt-in"))
        .await
        .unwrap();
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    let ra = create_did(gp_node).await;
    let gp = create_did(gp_node).await;
    let doctor = create_did(gp_node).await;
    let hospital = create_did(hospital_node).await;
    for node in &net.nodes {
        let (code, body) = node
            .put(
                &format!("/v1/trust/CareOrganizationCredential/{ra}"),
                &json!({}),
            )
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    let gp_cred = issue(gp_node, json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
        "subject": {"id": gp, "legalName": "Huisarts Leiden", "city": "Leiden", "organizationType": "gp", "ura": "70000001"}})).await;
    issue(gp_node, json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
        "subject": {"id": hospital, "legalName": "Zuyderland MC", "city": "Heerlen", "organizationType": "hospital", "ura": "70000002"}})).await;
    let t0 = Instant::now();
    while hospital_node.get("/v1/directory").await.unwrap().1["organizations"]
        .as_array()
        .map_or(0, |a| a.len())
        < 2
    {
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "directory never complete"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let doctor_cred = issue(gp_node, json!({"issuer": gp, "type": "HealthcareProfessionalCredential",
        "subject": {"id": doctor, "name": "Dr. A. Jansen", "roleCode": "01.015", "registerId": "19012345601", "employer": gp}})).await;
    let (code, reg) = hospital_node
        .post(
            "/v1/localisation/register",
            &json!({"holder": hospital, "patient": {"value": BSN}, "categories": ["medication", "lab"]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{reg}");
    let patient = reg["patient"].as_str().unwrap().to_owned();
    let creds = [gp_cred.clone(), doctor_cred.clone()];

    // Opt-in and no consent: refused.
    let vp = presentation(gp_node, hospital_node, &gp, &creds).await;
    let (code, v) = token(hospital_node, &vp, &patient, "regular-care", "").await;
    assert_eq!(
        (code, v["error"].as_str()),
        (403, Some("access_denied")),
        "{v}"
    );

    // The patient consents (medication, regular care, GPs): granted, bound to what was asked.
    let (code, c) = gp_node
        .post(
            "/v1/consent",
            &json!({"issuer": gp, "patient": {"value": BSN}, "decision": "permit",
                    "purpose": ["regular-care"], "dataCategories": ["medication"],
                    "requesters": {"organizationTypes": ["gp"]}, "method": "written"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{c}");
    let t0 = Instant::now();
    let (granted_vp, granted) = loop {
        let vp = presentation(gp_node, hospital_node, &gp, &creds).await;
        let (code, v) = token(hospital_node, &vp, &patient, "regular-care", "").await;
        if code == 200 {
            break (vp, v);
        }
        assert!(t0.elapsed() < Duration::from_secs(45), "never granted: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(granted["token_type"], "Bearer");
    let info = introspect(hospital_node, granted["access_token"].as_str().unwrap()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], gp.as_str());
    assert_eq!(info["sub"], doctor.as_str());
    assert_eq!(info["patient"], patient.as_str());
    assert_eq!(
        info["holdings"],
        json!([[hospital, ["medication"]]]),
        "{info}"
    );
    assert_eq!(
        introspect(hospital_node, "not-a-token").await["active"],
        false
    );

    // The same presentation again (its nonce is spent): refused.
    let (code, v) = token(hospital_node, &granted_vp, &patient, "regular-care", "").await;
    assert_eq!(
        (code, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    // A presentation made for another audience: refused.
    let (_, n) = hospital_node.get("/oauth2/nonce").await.unwrap();
    let (_, foreign) = gp_node
        .post(
            "/v1/presentations",
            &json!({"holder": gp, "credentials": creds, "challenge": n["nonce"],
                    "domain": "did:knoop:someone-else"}),
        )
        .await
        .unwrap();
    let (code, v) = token(
        hospital_node,
        &foreign["presentation"],
        &patient,
        "regular-care",
        "",
    )
    .await;
    assert_eq!(
        (code, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    // Without the professional's credential: refused.
    let vp = presentation(gp_node, hospital_node, &gp, std::slice::from_ref(&gp_cred)).await;
    let (code, v) = token(hospital_node, &vp, &patient, "regular-care", "").await;
    assert_eq!(
        (code, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );

    // Emergency: no consent covers it; the glass breaks only with a reason, and it shows.
    let vp = presentation(gp_node, hospital_node, &gp, &creds).await;
    let (code, v) = token(hospital_node, &vp, &patient, "emergency", "").await;
    assert_eq!(
        (code, v["error"].as_str()),
        (403, Some("access_denied")),
        "{v}"
    );
    let vp = presentation(gp_node, hospital_node, &gp, &creds).await;
    let (code, v) = token(
        hospital_node,
        &vp,
        &patient,
        "emergency",
        "unconscious patient at the ED",
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let info = introspect(hospital_node, v["access_token"].as_str().unwrap()).await;
    assert_eq!(info["break_the_glass"], true, "{info}");

    // Every decision is in the hospital's audit log, and the chain holds.
    let (_, audit) = hospital_node.get("/v1/audit").await.unwrap();
    let outcomes: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "token")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.iter().any(|o| o.starts_with("access_denied")),
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&"granted"), "{outcomes:?}");
    assert!(
        outcomes.contains(&"granted_break_the_glass"),
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|o| o.starts_with("invalid_grant")),
        "{outcomes:?}"
    );
    let (_, verdict) = hospital_node.get("/v1/audit/verify").await.unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
}
