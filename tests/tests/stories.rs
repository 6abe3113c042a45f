//! The two acceptance stories of the mission, end to end over real node processes, real
//! HTTPS between nodes (a throw-away CA), and a real FHIR server (`testnet/fhir`, Medplum's
//! R4 engine) as each organisation's own source system (spec: `specs/data-fetch.md`), and the
//! refusals around them.

use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use knoop_e2e::Node;
use serde_json::{json, Value};

/// Anna Maria Hendriks-Smeets (story 1) and Pieter de Groot (story 2), and an unrelated
/// patient of the Zwolle GP (`testnet/fhir/data/README.md`).
const ANNA: &str = "999900109";
const INGRID: &str = "999900456";

/// Story 1: Anna (Kerkrade) is discharged from a hospital in Leiden. Her home-care nurse, GP
/// and pharmacist each pull the hospital's diagnoses and care plan from the hospital's own
/// system, and the hospital pulls her GP's medication list, all under her consent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_1_discharge_leiden_to_kerkrade() {
    let w = world(
        "opt-in",
        &[
            LEIDEN_HOSPITAL,
            KERKRADE_GP,
            KERKRADE_HOMECARE,
            KERKRADE_PHARMACY,
        ],
        &[],
    )
    .await;
    let (hospital, gp, homecare, pharmacy) = (0, 1, 2, 3);
    let (p_hospital, local_hospital) = w
        .register(
            hospital,
            ANNA,
            &[
                "summary",
                "problems",
                "care-plan",
                "medication",
                "lab",
                "encounters",
            ],
        )
        .await;
    assert_eq!(local_hospital, "zl-104872");
    let (p_gp, local_gp) = w
        .register(gp, ANNA, &["medication", "allergies", "problems"])
        .await;
    assert_eq!(local_gp, "gp-0391");
    assert_eq!(
        p_gp, p_hospital,
        "one pseudonym per patient across the network"
    );
    w.register(pharmacy, ANNA, &["medication"]).await;

    // Opt-in: before her consent, nothing flows.
    let hospital_did = w.orgs[hospital].did.clone();
    let hospital_node = node_did(w.node(hospital)).await;
    let v = w
        .fetch_until(
            "the hospital is found",
            gp,
            ANNA,
            "discharge-summary",
            &["summary", "problems", "care-plan"],
            "regular-care",
            None,
            |v| status_of(v, &hospital_node) != "absent",
        )
        .await;
    assert_eq!(status_of(&v, &hospital_node), "no_permitted_data", "{v}");
    assert!(resources(&v).is_empty(), "{v}");

    // She consents at her GP: her carers in Kerkrade and the hospital may share everything
    // for regular care.
    let (code, c) = w
        .node(gp)
        .post(
            "/v1/consent",
            &json!({"issuer": w.orgs[gp].did, "patient": {"value": ANNA}, "decision": "permit",
                    "purpose": ["regular-care"], "dataCategories": ["*"],
                    "requesters": {"organizationTypes": ["gp", "homecare", "pharmacy", "hospital"]},
                    "method": "verbal", "registrar": "assistant 3"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{c}");

    // The GP pulls the discharge summary, diagnoses and care plan from the hospital's system.
    let v = w
        .fetch_until(
            "the GP gets the discharge summary",
            gp,
            ANNA,
            "discharge-summary",
            &["summary", "problems", "care-plan"],
            "regular-care",
            None,
            |v| status_of(v, &hospital_node) == "ok",
        )
        .await;
    assert_eq!(count(&v, "Composition", &hospital_did), 1, "{v}");
    assert_eq!(count(&v, "Condition", &hospital_did), 3, "{v}");
    assert_eq!(count(&v, "CarePlan", &hospital_did), 1, "{v}");
    assert_eq!(count(&v, "Coverage", &hospital_did), 1, "{v}");
    assert_eq!(count(&v, "Consent", &hospital_did), 3, "{v}");
    // Only what was asked (summary, problems, care plan): no lab, no vital signs, no medication,
    // no encounters, no other patient (specs/data-sets.md §2).
    let asked = [
        "Composition",
        "Coverage",
        "Flag",
        "DocumentReference",
        "Observation",
        "Condition",
        "CarePlan",
        "Consent",
        "NutritionOrder",
        "ServiceRequest",
        "DeviceRequest",
        "DeviceUseStatement",
        "Appointment",
    ];
    for r in resources(&v) {
        let t = r["resourceType"].as_str().unwrap_or_default();
        assert!(asked.contains(&t), "{t} was not asked for: {r}");
        let codes = category_codes(&r);
        assert!(
            !["laboratory", "275711006", "vital-signs"]
                .iter()
                .any(|c| codes.iter().any(|x| x == c)),
            "a lab result or vital sign in the summary: {r}"
        );
    }
    assert!(
        resources(&v)
            .iter()
            .any(|r| r["resourceType"] == "Observation"),
        "the summary's social history: {v}"
    );
    all_about(
        &v,
        &[
            (hospital_did.as_str(), "zl-104872"),
            (w.orgs[gp].did.as_str(), "gp-0391"),
        ],
    );
    let composition = resources(&v)
        .into_iter()
        .find(|r| r["resourceType"] == "Composition")
        .unwrap();
    assert_eq!(
        composition["type"]["coding"][0]["code"], "18842-5",
        "{composition}"
    );

    // The home-care nurse pulls the diagnoses and the care plan.
    let v = w
        .fetch(
            homecare,
            ANNA,
            "discharge-summary",
            &["problems", "care-plan"],
            "regular-care",
            None,
        )
        .await;
    assert_eq!(status_of(&v, &hospital_node), "ok", "{v}");
    assert_eq!(count(&v, "Condition", &hospital_did), 3, "{v}");
    assert_eq!(count(&v, "CarePlan", &hospital_did), 1, "{v}");
    // The GP's problem list comes along from the GP's own system.
    assert_eq!(count(&v, "Condition", &w.orgs[gp].did), 4, "{v}");

    // The pharmacist pulls the discharge medication.
    let v = w
        .fetch(
            pharmacy,
            ANNA,
            "medication-overview",
            &["medication"],
            "regular-care",
            None,
        )
        .await;
    assert_eq!(count(&v, "MedicationRequest", &hospital_did), 5, "{v}");
    assert_eq!(count(&v, "MedicationStatement", &w.orgs[gp].did), 4, "{v}");

    // The hospital pulls the GP's medication list and allergies from the GP's system.
    let v = w
        .fetch(
            hospital,
            ANNA,
            "medication-overview",
            &["medication", "allergies"],
            "regular-care",
            None,
        )
        .await;
    let gp_node = node_did(w.node(gp)).await;
    assert_eq!(status_of(&v, &gp_node), "ok", "{v}");
    assert_eq!(count(&v, "MedicationStatement", &w.orgs[gp].did), 4, "{v}");
    assert_eq!(count(&v, "AllergyIntolerance", &w.orgs[gp].did), 1, "{v}");
    all_about(
        &v,
        &[
            (hospital_did.as_str(), "zl-104872"),
            (w.orgs[gp].did.as_str(), "gp-0391"),
            (w.orgs[pharmacy].did.as_str(), "ph-20714"),
        ],
    );

    // The hospital's audit log holds the grants and the data served to the GP, the chain
    // verifies, and no BSN is in it.
    let (_, audit) = w.node(hospital).get("/v1/audit?limit=1000").await.unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["kind"] == "token"
            && e["requester"] == w.orgs[gp].did.as_str()
            && e["outcome"] == "granted"
            && e["scope"] == "discharge-summary"),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["kind"] == "data"
            && e["requester"] == w.orgs[gp].did.as_str()
            && e["outcome"] == "served 1 Composition"
            && e["patient"] == p_hospital.as_str()),
        "{audit}"
    );
    assert!(!audit.to_string().contains(ANNA));
    let (_, verdict) = w.node(hospital).get("/v1/audit/verify").await.unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
    // The requester's node audits its own fetches too.
    let (_, audit) = w.node(gp).get("/v1/audit?limit=1000").await.unwrap();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "fetch"),
        "{audit}"
    );
}

/// Story 2: Mr De Groot has a TIA on holiday and cannot speak. The emergency physician's
/// system finds his three holders, checks the consent he registered earlier, and fetches his
/// medication and his contrast-agent allergy from all three at once. A holder node that is
/// down does not fail the answer; a patient who objected gets nothing shared, even in an
/// emergency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_2_emergency_on_the_veluwe() {
    let mut w = world("opt-out", &VELUWE, &[]).await;
    let (ed, gp, pharmacy, hospital) = (0, 1, 2, 3);
    prepare_story_2(&w).await;

    let holders: Vec<String> = [gp, pharmacy, hospital]
        .iter()
        .map(|&o| w.orgs[o].did.clone())
        .collect();
    let reason = Some("TIA, aphasic; CT angiography with contrast planned");
    let v = w
        .fetch_until(
            "all three holders answer",
            ed,
            PIETER,
            "medication-overview",
            &["medication", "allergies"],
            "emergency",
            reason,
            |v| all_ok(v, 3),
        )
        .await;
    // His medication from the GP and the pharmacy, the contrast allergy from all three.
    assert_eq!(count(&v, "MedicationStatement", &holders[0]), 3, "{v}");
    assert_eq!(count(&v, "MedicationDispense", &holders[1]), 7, "{v}");
    for h in &holders {
        let allergy = resources(&v)
            .into_iter()
            .find(|r| {
                r["resourceType"] == "AllergyIntolerance" && r["meta"]["source"] == h.as_str()
            })
            .unwrap_or_else(|| panic!("no allergy from {h}: {v}"));
        assert!(
            allergy.to_string().to_lowercase().contains("contrast"),
            "{allergy}"
        );
    }
    // Imaging and problems were not asked for; the hospital shares nothing else.
    assert!(
        kinds(&v).iter().all(|(t, _)| [
            "MedicationStatement",
            "MedicationDispense",
            "MedicationRequest",
            "AllergyIntolerance"
        ]
        .contains(&t.as_str())),
        "{v}"
    );
    all_about(
        &v,
        &[
            (holders[0].as_str(), "gp-1188"),
            (holders[1].as_str(), "ph-31007"),
            (holders[2].as_str(), "isl-2245190"),
        ],
    );

    // As FHIR (Accept: application/fhir+json): the Bundle alone stands on its own. Every holder
    // has its OperationOutcome; the patient each holder's resources refer to is in it, with the
    // BSN the caller gave; an outside FHIR library reads it with strict R4 models.
    let o = &w.orgs[ed];
    let bundle: Value = reqwest::Client::new()
        .post(format!("{}/v1/data/fetch", w.node(ed).rpc))
        .header("accept", "application/fhir+json")
        .json(
            &json!({"requester": o.did, "credentials": [o.credential, o.professional],
            "patient": {"value": PIETER}, "scope": "medication-overview",
            "categories": ["medication", "allergies"], "purpose": "emergency", "reason": reason}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    let entries = bundle["entry"].as_array().unwrap();
    let outcomes: Vec<&Value> = entries
        .iter()
        .filter(|e| e["search"]["mode"] == "outcome")
        .collect();
    assert_eq!(outcomes.len(), 3, "one per holder node: {bundle}");
    assert!(outcomes
        .iter()
        .all(|e| e["resource"]["issue"][0]["severity"] == "information"));
    let patients: Vec<&Value> = entries
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .collect();
    assert_eq!(patients.len(), 3, "the patient at each holder: {bundle}");
    for p in &patients {
        assert_eq!(p["resource"]["identifier"][0]["value"], PIETER);
        let url = p["fullUrl"].as_str().unwrap();
        assert!(
            entries.iter().any(|e| {
                let full = e["fullUrl"].as_str().unwrap_or_default();
                let base = full.rsplitn(3, '/').nth(2).unwrap_or_default();
                let r = &e["resource"];
                let reference = r["subject"]["reference"]
                    .as_str()
                    .or(r["patient"]["reference"].as_str());
                reference.is_some_and(|x| format!("{base}/{x}") == url)
            }),
            "{url} is what a resource's reference resolves to"
        );
    }
    knoop_e2e::run_outside_with(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg("-"),
        Some(bundle.to_string().as_bytes()),
    );

    // The pharmacy's node goes down: the answer still comes, with the two others, and says so.
    let pharmacy_node = node_did(w.node(pharmacy)).await;
    w.net.nodes[pharmacy].stop().await.unwrap();
    let v = w
        .fetch(
            ed,
            PIETER,
            "medication-overview",
            &["medication", "allergies"],
            "emergency",
            reason,
        )
        .await;
    assert_eq!(status_of(&v, &pharmacy_node), "unreachable", "{v}");
    assert_eq!(count(&v, "MedicationStatement", &holders[0]), 3, "{v}");
    assert_eq!(count(&v, "AllergyIntolerance", &holders[2]), 1, "{v}");
    assert!(
        v["bundle"]["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["search"]["mode"] == "outcome"
                && e["resource"]["issue"][0]["severity"] == "error"
                && e["resource"]["issue"][0]["details"]["coding"][0]["code"] == "unreachable"
                && e["resource"]["issue"][0]["diagnostics"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(pharmacy_node.as_str()))),
        "the unreachable pharmacy has its OperationOutcome: {v}"
    );

    // Another patient of the GP objects: nothing of hers is shared, not even in an emergency.
    w.register(gp, INGRID, &["medication", "problems"]).await;
    let gp_node = node_did(w.node(gp)).await;
    let v = w
        .fetch_until(
            "opt-out shares before the objection",
            ed,
            INGRID,
            "medication-overview",
            &["medication"],
            "regular-care",
            None,
            |v| status_of(v, &gp_node) == "ok",
        )
        .await;
    assert_eq!(count(&v, "MedicationStatement", &w.orgs[gp].did), 1, "{v}");
    let (code, c) = w
        .node(gp)
        .post(
            "/v1/consent",
            &json!({"issuer": w.orgs[gp].did, "patient": {"value": INGRID}, "decision": "deny",
                    "purpose": ["emergency", "regular-care"], "dataCategories": ["*"],
                    "method": "written", "registrar": "dr. Visser"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{c}");
    let v = w
        .fetch_until(
            "the objection holds",
            ed,
            INGRID,
            "medication-overview",
            &["medication"],
            "emergency",
            Some("unconscious"),
            |v| resources(v).is_empty() && status_of(v, &gp_node) != "ok",
        )
        .await;
    assert!(resources(&v).is_empty(), "{v}");
    let (_, audit) = w.node(gp).get("/v1/audit?limit=1000").await.unwrap();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "token"
                && e["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("access_denied")),
        "{audit}"
    );
}

/// A token at the hospital's public API for `org`'s professional, straight through the OAuth2
/// endpoints: `(status, body)`.
async fn token(
    w: &World,
    org: usize,
    at: &Node,
    scope: &str,
    patient: &str,
    purpose: &str,
) -> (u16, Value) {
    let o = &w.orgs[org];
    let credentials = [o.credential.clone(), o.professional.clone()];
    token_as(
        w,
        w.node(org),
        &o.did,
        &credentials,
        at,
        scope,
        patient,
        purpose,
    )
    .await
}

/// Like [`token`], presented by `holder` (hosted on `presenter`) with `credentials`.
#[allow(clippy::too_many_arguments)]
async fn token_as(
    w: &World,
    presenter: &Node,
    holder: &str,
    credentials: &[Value],
    at: &Node,
    scope: &str,
    patient: &str,
    purpose: &str,
) -> (u16, Value) {
    let public = at.status().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = public_client(w);
    let n: Value = http
        .get(format!("{public}/oauth2/nonce"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (code, vp) = presenter
        .post(
            "/v1/presentations",
            &json!({"holder": holder, "credentials": credentials,
                    "challenge": n["nonce"], "domain": n["audience"]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{vp}");
    let resp = http
        .post(format!("{public}/oauth2/token"))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:vp_token-bearer",
            ),
            ("assertion", &vp["presentation"].to_string()),
            ("scope", scope),
            ("patient", patient),
            ("purpose", purpose),
        ])
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

fn public_client(w: &World) -> reqwest::Client {
    let pem = std::fs::read(w.ca.ca_pem_path()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// The id of the first Condition the token is served.
async fn b_condition_id(w: &World, at: &Node, token: &str) -> String {
    let (_, b) = data(w, at, token, "/fhir/Condition").await;
    b["entry"][0]["resource"]["id"].as_str().unwrap().to_owned()
}

async fn data(w: &World, at: &Node, token: &str, path: &str) -> (u16, Value) {
    let public = at.status().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = public_client(w)
        .get(format!("{public}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

/// The refusals: no consent, a role the policy does not allow, an untrusted organisation, a
/// token used for another patient or another type, an expired token, revoked consent. Each
/// is refused with a clear error and logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_and_logged() {
    // The hospital allows discharge summaries to GPs (role 01.015) only, and its tokens
    // live 5 seconds.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
[tokens]
lifetime = "5s"

[[policy]]
scope = "discharge-summary"
categories = ["summary", "problems", "care-plan"]
roles = ["01.015"]
purposes = ["regular-care"]

[[policy]]
scope = "medication-overview"
categories = ["medication", "allergies"]
purposes = ["regular-care", "emergency"]
break_the_glass = true
"#,
    )
    .unwrap();
    let w = world(
        "opt-in",
        &[
            OrgSpec {
                dataset: "leiden-hospital",
                name: "Ziekenhuis Leiden",
                city: "Leiden",
                kind: "hospital",
                ura: "99990011",
                professional: "Dr. M. Verbeek",
                role: "01.010",
            },
            OrgSpec {
                dataset: "kerkrade-gp",
                name: "Huisartsenpraktijk Kerkrade-West",
                city: "Kerkrade",
                kind: "gp",
                ura: "99990022",
                professional: "Dr. L. Crombach",
                role: "01.015",
            },
            OrgSpec {
                dataset: "kerkrade-homecare",
                name: "Wijkverpleging Kerkrade",
                city: "Kerkrade",
                kind: "gp",
                ura: "99990033",
                professional: "E. Schmeitz, verpleegkundige",
                role: "30.000",
            },
        ],
        &[(0, ("KNOOP_CONFIG", policy.display().to_string()))],
    )
    .await;
    let (hospital, gp, nurse_org) = (0, 1, 2);
    let hospital_node = node_did(w.node(hospital)).await;
    let (patient, _) = w
        .register(
            hospital,
            ANNA,
            &["summary", "problems", "care-plan", "medication", "lab"],
        )
        .await;

    // No consent (opt-in): the token endpoint refuses, and the fetch reports it.
    let (code, t) = token(
        &w,
        gp,
        w.node(hospital),
        "discharge-summary",
        &patient,
        "regular-care",
    )
    .await;
    assert_eq!(
        (code, t["error"].as_str()),
        (403, Some("access_denied")),
        "{t}"
    );
    let v = w
        .fetch_until(
            "the hospital is found",
            gp,
            ANNA,
            "discharge-summary",
            &["problems"],
            "regular-care",
            None,
            |v| status_of(v, &hospital_node) != "absent",
        )
        .await;
    assert_eq!(status_of(&v, &hospital_node), "no_permitted_data", "{v}");

    // Consent for GPs (organisation type gp: both requesters here are typed gp).
    let (code, c) = w
        .node(gp)
        .post(
            "/v1/consent",
            &json!({"issuer": w.orgs[gp].did, "patient": {"value": ANNA}, "decision": "permit",
                    "purpose": ["regular-care"], "dataCategories": ["*"],
                    "requesters": {"organizationTypes": ["gp"]}, "method": "verbal", "registrar": "desk"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{c}");
    let consent = c["credential"]["id"].as_str().unwrap().to_owned();
    w.fetch_until(
        "consent reaches the hospital",
        gp,
        ANNA,
        "discharge-summary",
        &["problems"],
        "regular-care",
        None,
        |v| status_of(v, &hospital_node) == "ok",
    )
    .await;

    // A professional whose role the scope does not allow.
    let (code, t) = token(
        &w,
        nurse_org,
        w.node(hospital),
        "discharge-summary",
        &patient,
        "regular-care",
    )
    .await;
    assert_eq!(
        (code, t["error"].as_str()),
        (403, Some("access_denied")),
        "{t}"
    );
    assert!(
        t["error_description"]
            .as_str()
            .unwrap()
            .contains("role 30.000"),
        "{t}"
    );
    let v = w
        .fetch(
            nurse_org,
            ANNA,
            "discharge-summary",
            &["problems"],
            "regular-care",
            None,
        )
        .await;
    assert_eq!(status_of(&v, &hospital_node), "refused", "{v}");
    assert!(resources(&v).is_empty(), "{v}");

    // An organisation whose credential comes from an issuer nobody trusts.
    let rogue_ra = create_did(w.node(gp)).await;
    let rogue = create_did(w.node(gp)).await;
    let rogue_cred = issue(w.node(gp), json!({"issuer": rogue_ra, "type": "CareOrganizationCredential",
        "subject": {"id": rogue, "legalName": "Kliniek Nergens", "city": "Nergens", "organizationType": "gp", "ura": "99999999"}})).await;
    let rogue_person = create_did(w.node(gp)).await;
    let rogue_pro = issue(w.node(gp), json!({"issuer": rogue, "type": "HealthcareProfessionalCredential",
        "subject": {"id": rogue_person, "name": "Dr. Niemand", "roleCode": "01.015", "registerId": "1", "employer": rogue}})).await;
    let (code, t) = token_as(
        &w,
        w.node(gp),
        &rogue,
        &[rogue_cred, rogue_pro],
        w.node(hospital),
        "discharge-summary",
        &patient,
        "regular-care",
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(t["error"], "invalid_grant", "{t}");
    assert!(
        t["error_description"]
            .as_str()
            .unwrap()
            .contains("untrusted_issuer"),
        "{t}"
    );

    // A token for Anna cannot reach another patient, nor types outside its scope.
    let (code, t) = token(
        &w,
        gp,
        w.node(hospital),
        "discharge-summary",
        &patient,
        "regular-care",
    )
    .await;
    assert_eq!(code, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let (code, b) = data(&w, w.node(hospital), &access, "/fhir/Condition").await;
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["total"], 3, "{b}");
    for e in b["entry"].as_array().unwrap() {
        assert_eq!(
            e["resource"]["subject"]["reference"], "Patient/zl-104872",
            "{e}"
        );
    }
    // Another patient, named or reached through a chain or a wildcard, is refused
    // (specs/data-sets.md §5.1).
    for (path, status) in [
        ("/fhir/Condition?patient=Patient/zl-104873", 403),
        ("/fhir/Condition?subject=Patient/zl-104873", 403),
        ("/fhir/Condition?_include=*", 400),
        ("/fhir/Condition?_revinclude=Condition:subject", 400),
        ("/fhir/Condition?patient.identifier=999900249", 400),
    ] {
        let (code, b) = data(&w, w.node(hospital), &access, path).await;
        assert_eq!(code, status, "{path}: {b}");
        assert_eq!(b["resourceType"], "OperationOutcome", "{b}");
    }
    // The token's own patient may be named, and included.
    let (code, b) = data(
        &w,
        w.node(hospital),
        &access,
        "/fhir/Condition?patient=Patient/zl-104872&_include=Condition:subject",
    )
    .await;
    assert_eq!((code, b["total"].as_u64()), (200, Some(3)), "{b}");
    let included: Vec<&Value> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| &e["resource"])
        .collect();
    assert_eq!(included.len(), 1, "{b}");
    assert_eq!(
        (
            included[0]["resourceType"].as_str(),
            included[0]["id"].as_str()
        ),
        (Some("Patient"), Some("zl-104872")),
        "{b}"
    );
    // What the proxy serves is strict FHIR R4, for an outside library.
    let public = w.node(hospital).status().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let checked = knoop_e2e::run_outside(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg(format!("{public}/fhir/Condition"))
            .arg(format!("Authorization: Bearer {access}"))
            .env("REQUESTS_CA_BUNDLE", w.ca.ca_pem_path()),
    );
    assert_eq!(
        checked["types"],
        json!(["Condition", "Condition", "Condition"]),
        "{checked}"
    );

    // A reference in what was served resolves through the proxy (FHIR read), within the grant.
    let first = b_condition_id(&w, w.node(hospital), &access).await;
    let (code, r) = data(
        &w,
        w.node(hospital),
        &access,
        &format!("/fhir/Condition/{first}"),
    )
    .await;
    assert_eq!((code, r["id"].as_str()), (200, Some(first.as_str())), "{r}");
    let (code, r) = data(&w, w.node(hospital), &access, "/fhir/Condition/no-such-id").await;
    assert_eq!(
        (code, r["resourceType"].as_str()),
        (404, Some("OperationOutcome")),
        "{r}"
    );
    let (code, r) = data(&w, w.node(hospital), &access, "/fhir/MedicationRequest/x").await;
    assert_eq!(code, 403, "outside the grant: {r}");
    let (code, b) = data(&w, w.node(hospital), &access, "/fhir/MedicationRequest").await;
    assert_eq!(code, 403, "{b}");
    let (code, _) = data(&w, w.node(hospital), "not-a-token", "/fhir/Condition").await;
    assert_eq!(code, 401);
    // The token expires (5 s here).
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let (code, b) = data(&w, w.node(hospital), &access, "/fhir/Condition").await;
    assert_eq!(code, 401, "{b}");

    // The consent is revoked: no more tokens.
    let (code, body) = w
        .node(gp)
        .post(
            "/v1/consent/revoke",
            &json!({"issuer": w.orgs[gp].did, "patient": {"value": ANNA},
            "credential": consent, "reason": "patient withdrew"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let t0 = Instant::now();
    loop {
        let (code, t) = token(
            &w,
            gp,
            w.node(hospital),
            "discharge-summary",
            &patient,
            "regular-care",
        )
        .await;
        if code == 403 {
            assert_eq!(t["error"], "access_denied", "{t}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "revocation never reached the hospital: {t}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Every refusal is in the hospital's audit log, and the chain holds.
    let (_, audit) = w.node(hospital).get("/v1/audit?limit=1000").await.unwrap();
    let outcomes: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or("")
            )
        })
        .collect();
    for want in [
        "token access_denied: no data",
        "token access_denied: role 30.000",
        "token invalid_grant: untrusted_issuer",
        "data not-supported: search parameter patient",
        "data forbidden:",
        "data expired:",
        "data served 3 Condition",
    ] {
        assert!(
            outcomes.iter().any(|o| o.starts_with(want)),
            "no {want:?} in {outcomes:#?}"
        );
    }
    let (_, verdict) = w.node(hospital).get("/v1/audit/verify").await.unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
}

/// A holder whose public API is over its per-client rate (`public.rate_limit`) is reported as
/// `rate_limited`, naming the wait it asked for, in an answer that still comes (200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_over_its_rate_limit_is_reported_as_such() {
    let (ed, gp) = (0, 1);
    let w = world(
        "opt-out",
        &VELUWE[..2],
        &[
            (gp, ("KNOOP_PUBLIC__RATE_LIMIT", "1".into())),
            (gp, ("KNOOP_PUBLIC__RATE_BURST", "1".into())),
        ],
    )
    .await;
    w.register(gp, PIETER, &["medication", "allergies"]).await;
    let gp_node = node_did(w.node(gp)).await;
    // One request (the nonce) fits the bucket; the token request is over it.
    let v = w
        .fetch_until(
            "the GP is found",
            ed,
            PIETER,
            "medication-overview",
            &["medication", "allergies"],
            "regular-care",
            None,
            |v| status_of(v, &gp_node) != "absent",
        )
        .await;
    assert_eq!(status_of(&v, &gp_node), "rate_limited", "{v}");
    let error = v["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["node"] == gp_node.as_str()))
        .map(|s| s["error"].to_string())
        .unwrap_or_default();
    assert!(error.contains("retry after"), "{error}");
    assert!(resources(&v).is_empty(), "{v}");
    let text = w.node(gp).metrics().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("knoop_public_rate_limited_total ") && !l.ends_with(" 0")),
        "{text}"
    );
}
