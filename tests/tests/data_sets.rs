//! The national data sets (spec: `specs/data-sets.md`) over real node processes and the FHIR
//! source servers of `testnet/fhir`: a GP's node fetches Anna's BgZ from the hospital and the
//! pharmacy in one call; an EHR with a `bgz` token makes the BgZ's queries itself, and nothing
//! else; the patient's objection to sharing medication takes the medication out of the BgZ.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use serde_json::{json, Value};

/// Anna Maria Hendriks-Smeets (`testnet/fhir/data/README.md`).
const ANNA: &str = "999900109";

/// The hospital (0) and the pharmacy (2) hold Anna's data; the GP (1) asks. Opt-out: no
/// consent is needed until she objects.
async fn anna() -> World {
    let w = world(
        "opt-out",
        &[LEIDEN_HOSPITAL, KERKRADE_GP, KERKRADE_PHARMACY],
        &[],
    )
    .await;
    let (_, local) = w
        .register(
            0,
            ANNA,
            &[
                "summary",
                "problems",
                "care-plan",
                "medication",
                "lab",
                "vital-signs",
                "encounters",
                "imaging",
            ],
        )
        .await;
    assert_eq!(local, "zl-104872");
    w.register(2, ANNA, &["medication"]).await;
    w
}

/// The GP's data fetch with `scope` and no categories (every category the scope and the
/// holders allow), until `done` holds.
async fn fetch_until(w: &World, scope: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    w.fetch_until(what, 1, ANNA, scope, &[], "regular-care", None, done)
        .await
}

/// `(type, id)` of the entries in `mode` (`match`, `include`) from `source`.
fn entries(v: &Value, mode: &str, source: &str) -> Vec<(String, String)> {
    v["bundle"]["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode && e["resource"]["meta"]["source"] == source)
        .map(|e| {
            let r = &e["resource"];
            (
                r["resourceType"].as_str().unwrap_or_default().to_owned(),
                r["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn per_type(entries: &[(String, String)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (t, _) in entries {
        *out.entry(t.clone()).or_default() += 1;
    }
    out
}

/// The BgZ in one data fetch: every query of the list at each holder, merged, with the
/// includes (the medication, the general practitioner, the insurer, the devices) once each,
/// `$lastn` keeping the latest laboratory result per test, nothing outside the list (no
/// imaging, no care plan, no PZP agreement), all about Anna, and FHIR R4 an outside library
/// reads strictly. Then the BgZ after her objection to sharing medication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gp_fetches_the_bgz_and_the_objection_takes_out_the_medication() {
    let w = anna().await;
    let (hospital, pharmacy) = (w.orgs[0].did.clone(), w.orgs[2].did.clone());
    let hospital_node = node_did(w.node(0)).await;
    let pharmacy_node = node_did(w.node(2)).await;
    let v = fetch_until(&w, "bgz", "both holders answer the BgZ", |v| {
        status_of(v, &hospital_node) == "ok" && status_of(v, &pharmacy_node) == "ok"
    })
    .await;

    let matches = per_type(&entries(&v, "match", &hospital));
    let expected: BTreeMap<String, usize> = [
        ("Patient", 1),
        ("Coverage", 1),
        // The treatment directive and the advance directive; not the PZP agreement.
        ("Consent", 2),
        // Functional status, living situation, drug, alcohol and tobacco use, the latest
        // blood pressure, body height, and the latest of each of 3 laboratory tests.
        ("Observation", 10),
        ("Condition", 3),
        ("NutritionOrder", 1),
        ("Flag", 1),
        ("MedicationRequest", 5),
        ("DeviceUseStatement", 1),
        ("Immunization", 1),
        ("Procedure", 1),
        ("Encounter", 1),
        ("ServiceRequest", 1),
        ("ImmunizationRecommendation", 1),
        ("DeviceRequest", 1),
        ("Appointment", 1),
        ("DocumentReference", 1),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_owned(), n))
    .collect();
    assert_eq!(matches, expected, "{v}");
    let hospital_matches = entries(&v, "match", &hospital);
    let has = |t: &str, id: &str| hospital_matches.contains(&(t.to_owned(), id.to_owned()));
    assert!(has("Observation", "zl-obs-hb-20261121"), "{v}");
    assert!(!has("Observation", "zl-obs-hb-20261118"), "$lastn: {v}");
    assert!(!has("Consent", "zl-consent-pzp-ic"), "{v}");
    let mut included = entries(&v, "include", &hospital);
    included.sort();
    assert_eq!(
        included,
        [
            ("Device", "zl-dev-commode"),
            ("Device", "zl-dev-rollator"),
            ("Medication", "zl-med-apixaban-5mg"),
            ("Organization", "org-zl-hap-kerkrade-west"),
            ("Organization", "org-zl-zvz"),
            ("Practitioner", "prac-zl-hermans"),
        ]
        .map(|(t, id)| (t.to_owned(), id.to_owned())),
        "{v}"
    );
    assert_eq!(
        per_type(&entries(&v, "match", &pharmacy)),
        [("MedicationDispense", 8), ("Patient", 1)]
            .into_iter()
            .map(|(t, n)| (t.to_owned(), n))
            .collect(),
        "{v}"
    );
    all_about(
        &v,
        &[
            (hospital.as_str(), "zl-104872"),
            (pharmacy.as_str(), "ph-20714"),
        ],
    );
    let checked = knoop_e2e::run_outside_with(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg("-"),
        Some(v["bundle"].to_string().as_bytes()),
    );
    assert_eq!(checked["resourceType"], "Bundle", "{checked}");

    // Anna objects to sharing her medication with anyone; the BgZ then has none, and the rest
    // stays.
    let (code, c) = w
        .node(0)
        .post(
            "/v1/consent",
            &json!({"issuer": hospital, "patient": {"value": ANNA}, "decision": "deny",
                    "purpose": ["regular-care", "emergency"], "dataCategories": ["medication"],
                    "method": "verbal", "registrar": "desk 2"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{c}");
    let v = fetch_until(&w, "bgz", "the objection reaches every holder", |v| {
        resources(v).iter().all(|r| {
            !r["resourceType"]
                .as_str()
                .is_some_and(|t| t.starts_with("Medication"))
        }) && status_of(v, &hospital_node) == "ok"
    })
    .await;
    let matches = per_type(&entries(&v, "match", &hospital));
    assert_eq!(matches.get("Condition"), Some(&3), "{v}");
    assert_eq!(matches.get("Immunization"), None, "{v}");
    assert!(
        !entries(&v, "include", &hospital)
            .iter()
            .any(|(t, _)| t == "Medication"),
        "{v}"
    );
    assert!(entries(&v, "match", &pharmacy).is_empty(), "{v}");
}

/// An EHR with a `bgz` token from the hospital's authorization server (through the GP's node,
/// `POST /v1/access-tokens`) makes the BgZ's queries at the hospital's data proxy as the list
/// writes them: allowed, with the includes; `$lastn` with `max`; a query outside the list, a
/// parameter the proxy does not take, and another patient are refused with an
/// `OperationOutcome`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ehr_makes_the_bgz_queries_itself_and_no_others() {
    let w = anna().await;
    let (gp, hospital) = (&w.orgs[1], w.orgs[0].did.clone());
    let gp_node = w.node(1);
    let public = w.node(0).status().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"requester": gp.did, "credentials": [gp.credential, gp.professional],
                      "holder": hospital, "scope": "bgz", "patient": {"value": ANNA},
                      "purpose": "regular-care"});
    let t0 = Instant::now();
    let token = loop {
        let (code, t) = gp_node.post("/v1/access-tokens", &body).await.unwrap();
        if code == 200 {
            break t;
        }
        assert!(t0.elapsed() < Duration::from_secs(45), "{code} {t}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let access = token["access_token"].as_str().unwrap().to_owned();
    let kid = token["dpop_kid"].as_str().unwrap().to_owned();
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(w.ca.ca_pem_path()).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let get = |path: &str| {
        let url = format!("{public}/fhir/{path}");
        let path = path.to_owned();
        let (http, access, kid) = (&http, &access, &kid);
        async move {
            let htu = url.split('?').next().unwrap().to_owned();
            let (code, p) = gp_node
                .post(
                    "/v1/dpop-proofs",
                    &json!({"dpop_kid": kid, "method": "GET", "url": htu, "access_token": access}),
                )
                .await
                .unwrap();
            assert_eq!(code, 200, "{p}");
            let r = http
                .get(&url)
                .header("Authorization", format!("DPoP {access}"))
                .header("DPoP", p["dpop"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let ctype = r
                .headers()
                .get("content-type")
                .and_then(|c| c.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let v: Value = r.json().await.unwrap();
            assert_eq!(ctype, "application/fhir+json", "{path}: {v}");
            (status, v)
        }
    };
    let modes = |v: &Value| -> Vec<(String, String)> {
        v["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["search"]["mode"].as_str().unwrap_or_default().to_owned(),
                    e["resource"]["resourceType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    };

    // Query 15 of the list, parameters in another order than written.
    let (code, v) = get("MedicationRequest?_include=MedicationRequest:medication\
         &category=http%3A%2F%2Fsnomed.info%2Fsct%7C16076005")
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["total"], 5, "{v}");
    assert!(
        modes(&v).contains(&("include".into(), "Medication".into())),
        "{v}"
    );
    // The patient with the general practitioner; the patient parameter may name her.
    let (code, v) = get("Patient?_include=Patient:general-practitioner").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["entry"][0]["resource"]["id"], "zl-104872", "{v}");
    // $lastn: the latest per code, or the two latest with max.
    let lab = "Observation/$lastn?category=http%3A%2F%2Fsnomed.info%2Fsct%7C275711006\
               &_include=Observation:has-member&_include=Observation:specimen";
    let (code, v) = get(lab).await;
    assert_eq!((code, v["total"].as_u64()), (200, Some(3)), "{v}");
    let (code, v) = get(&format!("{lab}&max=2&patient=Patient/zl-104872")).await;
    assert_eq!((code, v["total"].as_u64()), (200, Some(4)), "{v}");
    // A read of a type the BgZ is about resolves a fullUrl.
    let (code, v) = get("DocumentReference/zl-docref-discharge").await;
    assert_eq!(
        (code, v["resourceType"].as_str()),
        (200, Some("DocumentReference")),
        "{v}"
    );

    // Refusals, each an OperationOutcome.
    for (path, status, code) in [
        // Not a BgZ query: the categories allow Observation, the data set does not.
        ("Observation?category=laboratory", 403, "forbidden"),
        // A BgZ query without its include.
        (
            "MedicationRequest?category=http%3A%2F%2Fsnomed.info%2Fsct%7C16076005",
            403,
            "forbidden",
        ),
        // STU3's query: no R4 type.
        ("ProcedureRequest?status=active", 404, "not-supported"),
        (
            "Condition?_revinclude=Provenance:target",
            400,
            "not-supported",
        ),
        ("Condition?patient=Patient/zl-104873", 403, "forbidden"),
        ("Observation/$everything", 404, "not-supported"),
        ("ImagingStudy/zl-img-hip-20261116", 403, "forbidden"),
    ] {
        let (got, v) = get(path).await;
        assert_eq!(
            (
                got,
                v["resourceType"].as_str(),
                v["issue"][0]["code"].as_str()
            ),
            (status, Some("OperationOutcome"), Some(code)),
            "{path}: {v}"
        );
    }
}
