//! knooppunt's NVI interface over node processes (spec: `specs/nvi.md`), with no central NVI:
//! the hospital's EHR registers `List`s at its own node, the GP's EHR finds them at the GP's
//! node through the network's localisation index, the hospital deletes them; bad requests get
//! an `OperationOutcome`. The search answer is read by an outside FHIR library
//! (`tests/fhir_check.py`: fhirclient's strict R4 models).

use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use knoop_e2e::Node;
use serde_json::{json, Value};

const ANNA: &str = "999900109";
const BSN: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
const URA: &str = "http://fhir.nl/fhir/NamingSystem/ura";
const CATEGORIES: &str =
    "http://minvws.github.io/generiekefuncties-docs/CodeSystem/nl-gf-data-categories-cs";

fn list(ura: &str, code: &str) -> Value {
    json!({"resourceType": "List", "status": "current", "mode": "working",
        "extension": [{"url": "http://minvws.github.io/generiekefuncties-docs/StructureDefinition/nl-gf-localization-custodian",
                       "valueReference": {"identifier": {"system": URA, "value": ura}}}],
        "subject": {"identifier": {"system": BSN, "value": ANNA}},
        "code": {"coding": [{"system": CATEGORIES, "code": code, "display": code}]}})
}

/// A request to the node's NVI interface as the organisation with URA `ura`.
async fn nvi(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    ura: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let tenant = ura.map(|u| format!("{URA}|{u}"));
    let headers: Vec<(&str, &str)> = tenant.iter().map(|t| ("X-Tenant-ID", t.as_str())).collect();
    node.fhir(method, path, body, &headers).await
}

fn codes(bundle: &Value) -> Vec<String> {
    let mut c: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["resource"]["resourceType"] == "List")
        .map(|e| {
            e["resource"]["code"]["coding"][0]["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    c.sort();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_registered_at_one_node_are_found_at_another() {
    let w = world("opt-out", &[LEIDEN_HOSPITAL, KERKRADE_GP], &[]).await;
    let (hospital, gp) = (w.node(0), w.node(1));
    let get = reqwest::Method::GET;
    let search = format!("/nvi/List?patient:identifier={BSN}%7C{ANNA}");

    // The hospital's EHR registers medication as a plain List, problems in a Bundle.
    let (code, created) = nvi(
        hospital,
        reqwest::Method::POST,
        "/nvi/List",
        Some("99990011"),
        Some(&list("99990011", "MedicationRequest")),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert!(created["id"].is_string(), "{created}");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "List"}, "resource": list("99990011", "Condition")}]});
    let (code, response) = nvi(
        hospital,
        reqwest::Method::POST,
        "/nvi",
        Some("99990011"),
        Some(&bundle),
    )
    .await;
    assert_eq!(code, 200, "{response}");
    assert_eq!(response["type"], "transaction-response");
    assert_eq!(response["entry"][0]["response"]["status"], "201 Created");

    // The GP's EHR finds them at its own node: the hospital's URA as custodian, a List per
    // data category code of what the hospital holds (medication: six resource types,
    // specs/data-sets.md §2).
    let t0 = Instant::now();
    let found = loop {
        let (code, b) = nvi(gp, get.clone(), &search, Some("99990022"), None).await;
        assert_eq!(code, 200, "{b}");
        if b["total"].as_u64().unwrap_or(0) >= 4 {
            break b;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never found: {b}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        codes(&found),
        vec![
            "Condition",
            "Immunization",
            "ImmunizationRecommendation",
            "MedicationAdministration",
            "MedicationDispense",
            "MedicationRequest",
            "MedicationStatement"
        ],
        "{found}"
    );
    let custodian = &found["entry"][0]["resource"]["extension"][0]["valueReference"]["identifier"];
    assert_eq!(custodian["value"], "99990011", "{found}");
    let (_, only) = nvi(
        gp,
        get.clone(),
        &format!("{search}&code={CATEGORIES}%7CCondition"),
        Some("99990022"),
        None,
    )
    .await;
    assert_eq!(codes(&only), vec!["Condition"], "{only}");
    // The same search as a form, and as an outside FHIR library reads the answer.
    let r = reqwest::Client::new()
        .post(format!("{}/nvi/List/_search", gp.rpc))
        .header("X-Tenant-ID", format!("{URA}|99990022"))
        .form(&[("patient:identifier", format!("{BSN}|{ANNA}"))])
        .send()
        .await
        .unwrap();
    assert_eq!(codes(&r.json::<Value>().await.unwrap()).len(), 7);
    let checked = knoop_e2e::run_outside(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg(format!("{}{search}", gp.rpc))
            .arg(format!("X-Tenant-ID: {URA}|99990022")),
    );
    assert_eq!(
        checked["types"].as_array().map(|t| t.len()),
        Some(7),
        "{checked}"
    );

    // The hospital deletes its medication registration; the GP then finds the problems only.
    let (code, v) = nvi(
        hospital,
        reqwest::Method::DELETE,
        &format!("{search}&code={CATEGORIES}%7CMedicationRequest"),
        Some("99990011"),
        None,
    )
    .await;
    assert_eq!(code, 204, "{v}");
    let t0 = Instant::now();
    loop {
        let (_, b) = nvi(gp, get.clone(), &search, Some("99990022"), None).await;
        if codes(&b) == ["Condition"] {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never withdrawn: {b}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Bad requests: an OperationOutcome with a 4xx, nothing registered.
    let post = reqwest::Method::POST;
    for (ura, body, status) in [
        (None, list("99990011", "Condition"), 400),
        (Some("12345678"), list("12345678", "Condition"), 403),
        (Some("99990011"), list("99990022", "Condition"), 400),
        (Some("99990011"), list("99990011", "Basic"), 400),
        (Some("99990011"), json!({"resourceType": "Patient"}), 400),
    ] {
        let (code, v) = nvi(hospital, post.clone(), "/nvi/List", ura, Some(&body)).await;
        assert_eq!(
            (code, v["resourceType"].as_str()),
            (status, Some("OperationOutcome")),
            "{body}: {v}"
        );
    }
    let (code, v) = nvi(
        hospital,
        post.clone(),
        "/nvi/List",
        Some("99990011"),
        Some(&json!("x")),
    )
    .await;
    assert_eq!(
        (code, v["resourceType"].as_str()),
        (400, Some("OperationOutcome")),
        "{v}"
    );
    for path in [
        "/nvi/List".to_owned(),
        format!("/nvi/List?patient:identifier={ANNA}"),
        format!("{search}&name=x"),
    ] {
        let (code, v) = nvi(gp, get.clone(), &path, Some("99990022"), None).await;
        assert_eq!(
            (code, v["resourceType"].as_str()),
            (400, Some("OperationOutcome")),
            "{path}: {v}"
        );
    }
    let (code, v) = nvi(gp, get.clone(), "/nvi/List/abc", Some("99990022"), None).await;
    assert_eq!(
        (code, v["issue"][0]["code"].as_str()),
        (404, Some("not-found")),
        "{v}"
    );
    // A Bundle with one bad entry registers none of them.
    let mixed = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "List"}, "resource": list("99990011", "ImagingStudy")},
        {"request": {"method": "POST", "url": "List"}, "resource": list("99990011", "Basic")}]});
    let (code, _) = nvi(hospital, post, "/nvi", Some("99990011"), Some(&mixed)).await;
    assert_eq!(code, 400);
    let (_, b) = nvi(gp, get, &search, Some("99990022"), None).await;
    assert_eq!(
        codes(&b),
        vec!["Condition"],
        "nothing of the bad Bundle: {b}"
    );
}

/// The GP's search until its List codes are `want`.
async fn codes_until(gp: &Node, want: &[&str]) {
    let search = format!("/nvi/List?patient:identifier={BSN}%7C{ANNA}");
    let t0 = Instant::now();
    loop {
        let (_, b) = nvi(gp, reqwest::Method::GET, &search, Some("99990022"), None).await;
        if codes(&b) == want {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never {want:?}: {b}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A registration is read and deleted by its id, and found and deleted by the device that
/// registered it (`source:identifier`), as knooppunt's NVI interface offers; only by the
/// organisation that made it; the List names the patient by the network pseudonym (no BSN is
/// kept), and is strict R4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_read_and_deleted_by_id_and_by_source() {
    let w = world("opt-out", &[LEIDEN_HOSPITAL, KERKRADE_GP], &[]).await;
    let (hospital, gp) = (w.node(0), w.node(1));
    let (get, post, delete) = (
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    );
    let device = "urn:oid:2.16.528.1.1007.3.3";
    let mut medication = list("99990011", "MedicationRequest");
    medication["source"] = json!({"identifier": {"system": device, "value": "ehr-leiden-1"}});
    let (code, m) = nvi(
        hospital,
        post.clone(),
        "/nvi/List",
        Some("99990011"),
        Some(&medication),
    )
    .await;
    assert_eq!(code, 201, "{m}");
    let (code, c) = nvi(
        hospital,
        post,
        "/nvi/List",
        Some("99990011"),
        Some(&list("99990011", "Condition")),
    )
    .await;
    assert_eq!(code, 201, "{c}");
    let (m_id, c_id) = (m["id"].as_str().unwrap(), c["id"].as_str().unwrap());

    // Read by id, as the organisation that registered it.
    let (code, read) = nvi(
        hospital,
        get.clone(),
        &format!("/nvi/List/{m_id}"),
        Some("99990011"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{read}");
    assert_eq!(read["id"], m_id);
    assert_eq!(
        read["code"]["coding"][0]["code"], "MedicationRequest",
        "{read}"
    );
    assert_eq!(read["source"], medication["source"], "{read}");
    assert_eq!(read["subject"]["identifier"]["system"], "urn:ietf:rfc:3986");
    assert!(
        read["subject"]["identifier"]["value"]
            .as_str()
            .is_some_and(|v| v.starts_with("urn:knoop:patient:")),
        "{read}"
    );
    assert!(!read.to_string().contains(ANNA), "no BSN is kept: {read}");
    let checked = knoop_e2e::run_outside_with(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg("-"),
        Some(read.to_string().as_bytes()),
    );
    assert_eq!(checked["resourceType"], "List", "{checked}");
    // Another organisation cannot read it.
    let (code, v) = nvi(
        gp,
        get.clone(),
        &format!("/nvi/List/{m_id}"),
        Some("99990022"),
        None,
    )
    .await;
    assert_eq!(
        (code, v["issue"][0]["code"].as_str()),
        (404, Some("not-found")),
        "{v}"
    );

    // Found by the device that registered it.
    let by_device = format!("/nvi/List?source:identifier={device}%7Cehr-leiden-1");
    let (code, found) = nvi(hospital, get.clone(), &by_device, Some("99990011"), None).await;
    assert_eq!(
        (code, codes(&found)),
        (200, vec!["MedicationRequest".to_owned()]),
        "{found}"
    );
    assert_eq!(found["entry"][0]["resource"]["id"], m_id, "{found}");

    // The GP sees both categories; the hospital deletes the problems List by id.
    let medication_codes = [
        "Immunization",
        "ImmunizationRecommendation",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationRequest",
        "MedicationStatement",
    ];
    let mut both = medication_codes.to_vec();
    both.insert(0, "Condition");
    codes_until(gp, &both).await;
    let (code, v) = nvi(
        hospital,
        delete.clone(),
        &format!("/nvi/List/{c_id}"),
        Some("99990011"),
        None,
    )
    .await;
    assert_eq!(code, 204, "{v}");
    let (code, _) = nvi(
        hospital,
        get.clone(),
        &format!("/nvi/List/{c_id}"),
        Some("99990011"),
        None,
    )
    .await;
    assert_eq!(code, 404);
    codes_until(gp, &medication_codes).await;

    // Deleting by the device withdraws the rest.
    let (code, v) = nvi(hospital, delete, &by_device, Some("99990011"), None).await;
    assert_eq!(code, 204, "{v}");
    let (_, found) = nvi(hospital, get, &by_device, Some("99990011"), None).await;
    assert_eq!(found["total"], 0, "{found}");
    codes_until(gp, &[]).await;
}
