//! The mCSD Administration and Query Directories over node processes (spec: `specs/mcsd.md`),
//! with no central directory: the hospital's administration client (an outside FHIR library,
//! `tests/mcsd_admin_client.py`) writes its organisation, a location, a service and an
//! endpoint to the hospital's node as one transaction; a third node's Query Directory finds
//! them with `_include`, follows the hospital's update and delete through `_history?_since`
//! and keeps that history across a restart; the authority rules hold against another
//! organisation; bad input gets an `OperationOutcome` and writes nothing.

use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use knoop_e2e::Node;
use serde_json::{json, Value};

const URA: &str = "http://fhir.nl/fhir/NamingSystem/ura";
const AUTHOR: &str = "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
/// The hospital's top-level Organization id, chosen by its administration client.
const ORG_ID: &str = "4cb35b96-f021-4e15-bf71-d67a6d4bebec";
const ENDPOINT_ID: &str = "59654248-477c-4694-b156-e0042f0765a6";

const PHARMACY: OrgSpec = OrgSpec {
    dataset: "kerkrade-gp",
    name: "Apotheek De Vaart",
    city: "Leiden",
    kind: "pharmacy",
    ura: "99990033",
    professional: "Apotheker J. de Vries",
    role: "17.000",
};

/// An author-assigned identifier (nl-gf profiles) of the organisation with URA `ura`.
fn assigned(ura: &str, value: &str) -> Value {
    json!([{"system": "https://hospital.example/ids", "value": value,
            "assigner": {"identifier": {"system": URA, "value": ura,
                "type": {"coding": [{"system": AUTHOR, "code": "author"}]}}}}])
}

fn organization(ura: &str) -> Value {
    json!({"resourceType": "Organization", "id": ORG_ID,
        "identifier": [{"system": URA, "value": ura}, assigned(ura, "org")[0].clone()],
        "name": "ZL", "active": true,
        "type": [{"coding": [{"system": "http://nictiz.nl/fhir/NamingSystem/organization-type",
                              "code": "V4", "display": "Ziekenhuis"}]}],
        "endpoint": [{"reference": format!("Endpoint/{ENDPOINT_ID}")}]})
}

fn location(ura: &str, name: &str, org: &str) -> Value {
    json!({"resourceType": "Location", "identifier": assigned(ura, name), "name": name,
        "status": "active",
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                              "code": "HOSP"}]}],
        "address": {"city": "Leiden"},
        "managingOrganization": {"reference": org}})
}

fn service(ura: &str, name: &str, location: &str) -> Value {
    json!({"resourceType": "HealthcareService", "identifier": assigned(ura, name),
        "active": true, "name": name,
        "type": [{"coding": [{"system": "urn:oid:2.16.840.1.113883.2.4.3.11.22.472",
                              "code": "0320", "display": "Orthopedie"}]}],
        "providedBy": {"reference": format!("Organization/{ORG_ID}")},
        "location": [{"reference": location}],
        "endpoint": [{"reference": format!("Endpoint/{ENDPOINT_ID}")}]})
}

fn endpoint() -> Value {
    json!({"resourceType": "Endpoint", "id": ENDPOINT_ID, "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                           "code": "hl7-fhir-rest"},
        "payloadType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                                     "code": "any"}]}],
        "payloadMimeType": ["application/fhir+json"],
        "managingOrganization": {"reference": format!("Organization/{ORG_ID}")},
        "address": "https://hospital.example/fhir/orthopedie"})
}

async fn fhir(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    node.fhir(method, path, body, headers).await
}

async fn get(node: &Node, path: &str) -> (u16, Value) {
    fhir(node, reqwest::Method::GET, path, None, &[]).await
}

/// Polls `path` on `node` until `pred` holds (30 s at most).
async fn until(node: &Node, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (_, v) = get(node, path).await;
        if pred(&v) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{path} never matched; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn entries<'a>(b: &'a Value, mode: &str) -> Vec<&'a Value> {
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| &e["resource"])
        .collect()
}

fn check_outside(url: &str) -> Value {
    knoop_e2e::run_outside(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg(url),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administration_directory_feeds_every_query_directory() {
    // Outside update clients authenticate with a client certificate (mutual TLS, as the guide
    // requires of an Administration Directory): the hospital's node trusts their CA.
    let (client_ca, client_cert, client_key) =
        knoop_e2e::https::client_identity("outside update client").unwrap();
    let identity = tempfile::tempdir().unwrap();
    let pem = |name: &str, text: &str| {
        let p = identity.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let client_ca_path = pem("client-ca.pem", &client_ca);
    let (cert_path, key_path) = (
        pem("client.pem", &client_cert),
        pem("client.key", &client_key),
    );
    let mut w = world(
        "opt-out",
        &[LEIDEN_HOSPITAL, KERKRADE_GP, PHARMACY],
        &[(
            0,
            (
                "KNOOP_PUBLIC__CLIENT_CA_FILE",
                client_ca_path.display().to_string(),
            ),
        )],
    )
    .await;
    let (hospital, gp) = (w.node(0), w.node(1));
    let ura = LEIDEN_HOSPITAL.ura;
    let admin = format!("/admin-directory/{ura}");

    // The hospital's administration client writes its directory entries as one transaction:
    // its organisation and endpoint under its own ids, a location and a service created with
    // ids the directory assigns (the service refers to the location by its urn:uuid).
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": organization(ura), "request": {"method": "PUT", "url": format!("Organization/{ORG_ID}")}},
        {"resource": endpoint(), "request": {"method": "PUT", "url": format!("Endpoint/{ENDPOINT_ID}")}},
        {"fullUrl": "urn:uuid:0b6a2a53-5f8a-4d43-8a0e-0c5c0b1e9d01",
         "resource": location(ura, "Polikliniek Orthopedie", &format!("Organization/{ORG_ID}")),
         "request": {"method": "POST", "url": "Location"}},
        {"resource": service(ura, "Orthopedie", "urn:uuid:0b6a2a53-5f8a-4d43-8a0e-0c5c0b1e9d01"),
         "request": {"method": "POST", "url": "HealthcareService"}}]});
    let v = knoop_e2e::run_outside_with(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/mcsd_admin_client.py"))
            .arg(format!("{}{admin}", hospital.rpc)),
        Some(tx.to_string().as_bytes()),
    );
    assert_eq!(
        v["statuses"],
        json!(["201 Created", "201 Created", "201 Created", "201 Created"]),
        "{v}"
    );
    let location_id = v["created"]["Location"][0].as_str().unwrap().to_owned();
    let service_id = v["created"]["HealthcareService"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(location_id, "0b6a2a53-5f8a-4d43-8a0e-0c5c0b1e9d01");
    // The credential decides the name; the client's name stays as an alias.
    assert_eq!(v["names"][ORG_ID], "Ziekenhuis Leiden", "{v}");
    let (_, svc) = get(hospital, &format!("{admin}/HealthcareService/{service_id}")).await;
    assert_eq!(
        svc["location"][0]["reference"],
        format!("Location/{location_id}"),
        "urn:uuid rewritten: {svc}"
    );

    // A third node's Query Directory has them within seconds: the service by type, with its
    // organisation and location included, and the organisation with its locations.
    let third = w.node(2);
    let q = "/fhir/HealthcareService?service-type=urn:oid:2.16.840.1.113883.2.4.3.11.22.472%7C0320\
             &_include=HealthcareService:organization&_include=HealthcareService:location";
    let b = until(third, q, |b| b["total"] == 1).await;
    assert_eq!(entries(&b, "match")[0]["id"], service_id.as_str());
    let included: Vec<(String, String)> = entries(&b, "include")
        .iter()
        .map(|r| {
            (
                r["resourceType"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        included.contains(&("Organization".into(), ORG_ID.into())),
        "{b}"
    );
    assert!(
        included.contains(&("Location".into(), location_id.clone())),
        "{b}"
    );
    let org = entries(&b, "include")
        .into_iter()
        .find(|r| r["id"] == ORG_ID)
        .unwrap()
        .clone();
    assert_eq!(org["name"], "Ziekenhuis Leiden");
    assert_eq!(org["alias"], json!(["ZL"]));
    assert!(
        org["identifier"]
            .as_array()
            .unwrap()
            .contains(&json!({"system": "urn:ietf:rfc:3986", "value": w.orgs[0].did})),
        "{org}"
    );
    let (_, orgs) = get(
        third,
        &format!("/fhir/Organization?identifier={URA}%7C{ura}&_revinclude=Location:organization"),
    )
    .await;
    assert_eq!(orgs["total"], 1, "one Organization per URA: {orgs}");
    assert_eq!(entries(&orgs, "include").len(), 1, "{orgs}");
    // The published endpoint is the organisation's.
    let (_, eps) = get(
        third,
        &format!("/fhir/Endpoint?organization=Organization/{ORG_ID}"),
    )
    .await;
    assert!(
        eps["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["resource"]["id"] == ENDPOINT_ID),
        "{eps}"
    );
    for url in [
        format!("{}{q}", third.rpc),
        format!(
            "{}/fhir/Organization?_revinclude=Location:organization",
            third.rpc
        ),
        format!("{}{admin}/metadata", hospital.rpc),
    ] {
        check_outside(&url);
    }

    // The hospital renames its service, with optimistic locking; a stale version is refused.
    let mut renamed = svc.clone();
    renamed["name"] = json!("Orthopedie en Traumatologie");
    let since = knoop_did_time();
    let path = format!("{admin}/HealthcareService/{service_id}");
    let (code, body) = fhir(
        hospital,
        reqwest::Method::PUT,
        &path,
        Some(&renamed),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["meta"]["versionId"], "2");
    let (code, body) = fhir(
        hospital,
        reqwest::Method::PUT,
        &path,
        Some(&renamed),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_eq!(
        (code, body["issue"][0]["code"].as_str()),
        (412, Some("conflict")),
        "{body}"
    );

    // And deletes a location it no longer uses.
    let (code, extra) = fhir(
        hospital,
        reqwest::Method::POST,
        &format!("{admin}/Location"),
        Some(&location(
            ura,
            "Dependance Oegstgeest",
            &format!("Organization/{ORG_ID}"),
        )),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{extra}");
    let extra_id = extra["id"].as_str().unwrap().to_owned();
    until(third, &format!("/fhir/Location/{extra_id}"), |r| {
        r["id"] == extra_id.as_str()
    })
    .await;
    let (code, _) = fhir(
        hospital,
        reqwest::Method::DELETE,
        &format!("{admin}/Location/{extra_id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 204);

    // The third node's history since before the rename has the rename and the delete.
    let hist = format!(
        "/fhir/HealthcareService/_history?_since={}",
        since.replace('+', "%2B")
    );
    let h = until(third, &hist, |h| h["total"] == 1).await;
    assert_eq!(
        h["entry"][0]["resource"]["name"], "Orthopedie en Traumatologie",
        "{h}"
    );
    assert_eq!(h["entry"][0]["request"]["method"], "PUT");
    let (code, gone) = get(
        until_gone(third, &extra_id).await,
        &format!("/fhir/Location/{extra_id}"),
    )
    .await;
    assert_eq!(
        (code, gone["issue"][0]["code"].as_str()),
        (410, Some("deleted"))
    );
    let loc_hist = format!(
        "/fhir/Location/_history?_since={}",
        since.replace('+', "%2B")
    );
    let (_, lh) = get(third, &loc_hist).await;
    let methods: Vec<&str> = lh["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, vec!["DELETE", "POST"], "{lh}");
    check_outside(&format!("{}{loc_hist}", third.rpc));

    // Outside update clients read the hospital's Administration Directory on its node's public
    // API (HTTPS): its own resources only, with their history.
    let public = hospital.status().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let outside = knoop_e2e::run_outside(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg(format!("{public}{admin}/HealthcareService/_history"))
            .env("REQUESTS_CA_BUNDLE", w.ca.ca_pem_path())
            .env("FHIR_CHECK_CERT", &cert_path)
            .env("FHIR_CHECK_KEY", &key_path),
    );
    assert_eq!(outside["resourceType"], "Bundle", "{outside}");
    assert_eq!(outside["total"], 2, "create and rename: {outside}");
    let server_ca =
        reqwest::Certificate::from_pem(&std::fs::read(w.ca.ca_pem_path()).unwrap()).unwrap();
    let anonymous = reqwest::Client::builder()
        .add_root_certificate(server_ca.clone())
        .build()
        .unwrap();
    let r = anonymous
        .get(format!("{public}{admin}/HealthcareService/_history"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "no client certificate");
    let refused: Value = r.json().await.unwrap();
    assert_eq!(refused["resourceType"], "OperationOutcome", "{refused}");
    assert_eq!(refused["issue"][0]["code"], "security", "{refused}");
    // The rest of the public API serves clients without a certificate.
    let r = anonymous
        .get(format!("{public}/oauth2/nonce"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A certificate of another CA ends the handshake.
    let (_, stranger_cert, stranger_key) = knoop_e2e::https::client_identity("stranger").unwrap();
    let stranger = reqwest::Client::builder()
        .add_root_certificate(server_ca.clone())
        .identity(
            reqwest::Identity::from_pem(format!("{stranger_cert}\n{stranger_key}").as_bytes())
                .unwrap(),
        )
        .build()
        .unwrap()
        .get(format!("{public}{admin}/HealthcareService/_history"))
        .send()
        .await;
    assert!(
        stranger.is_err(),
        "a certificate of an unknown CA: {stranger:?}"
    );
    let authenticated = reqwest::Client::builder()
        .add_root_certificate(server_ca)
        .identity(
            reqwest::Identity::from_pem(format!("{client_cert}\n{client_key}").as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let r = authenticated
        .get(format!(
            "{public}/admin-directory/{}/Location",
            KERKRADE_GP.ura
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "the GP is not hosted on the hospital's node"
    );
    let r = authenticated
        .put(format!("{public}{admin}/Location/{location_id}"))
        .header("content-type", "application/fhir+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405, "no writes on the public API");

    // The authority rules: the GP can neither take over nor link to the hospital's resources.
    let gp_admin = format!("/admin-directory/{}", KERKRADE_GP.ura);
    let mut taken = endpoint();
    taken["managingOrganization"] =
        json!({"identifier": {"system": URA, "value": KERKRADE_GP.ura}});
    until(gp, &format!("/fhir/Endpoint/{ENDPOINT_ID}"), |r| {
        r["id"] == ENDPOINT_ID
    })
    .await;
    let (code, body) = fhir(
        gp,
        reqwest::Method::PUT,
        &format!("{gp_admin}/Endpoint/{ENDPOINT_ID}"),
        Some(&taken),
        &[],
    )
    .await;
    assert_eq!(
        (code, body["issue"][0]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let linked = location(
        KERKRADE_GP.ura,
        "Buitenpost",
        &format!("Organization/{ORG_ID}"),
    );
    let (code, body) = fhir(
        gp,
        reqwest::Method::POST,
        &format!("{gp_admin}/Location"),
        Some(&linked),
        &[],
    )
    .await;
    assert_eq!(
        (code, body["issue"][0]["code"].as_str()),
        (422, Some("business-rule")),
        "{body}"
    );
    let foreign = location(ura, "Buitenpost", "Organization/x");
    let (code, body) = fhir(
        gp,
        reqwest::Method::POST,
        &format!("{gp_admin}/Location"),
        Some(&foreign),
        &[],
    )
    .await;
    assert_eq!(code, 422, "the assigner must be the GP itself: {body}");

    // Bad input: an OperationOutcome with a 4xx, and nothing written.
    let (_, before) = get(hospital, &format!("{admin}/_history")).await;
    let mut no_status = location(ura, "Zonder status", &format!("Organization/{ORG_ID}"));
    no_status.as_object_mut().unwrap().remove("status");
    let half = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": location(ura, "Goed", &format!("Organization/{ORG_ID}")), "request": {"method": "POST", "url": "Location"}},
        {"resource": no_status, "request": {"method": "POST", "url": "Location"}}]});
    let too_many = json!({"resourceType": "Bundle", "type": "transaction",
        "entry": (0..101).map(|i| json!({"resource": location(ura, &format!("L{i}"), &format!("Organization/{ORG_ID}")),
                                          "request": {"method": "POST", "url": "Location"}})).collect::<Vec<_>>()});
    let post = reqwest::Method::POST;
    let mut second_top = organization(ura);
    second_top["id"] = json!("second-top");
    for (method, path, body, want) in [
        (
            reqwest::Method::PUT,
            format!("{admin}/Organization/second-top"),
            second_top,
            422,
        ),
        (post.clone(), admin.clone(), half, 422),
        (post.clone(), admin.clone(), too_many, 413),
        (
            post.clone(),
            format!("{admin}/Location"),
            json!({"resourceType": "Patient"}),
            400,
        ),
        (
            post.clone(),
            format!("{admin}/Patient"),
            json!({"resourceType": "Patient"}),
            404,
        ),
        (
            post.clone(),
            format!("{admin}/Practitioner"),
            json!({"resourceType": "Practitioner"}),
            404,
        ),
        (
            post.clone(),
            "/admin-directory/12345678/Location".to_owned(),
            location(ura, "X", "Organization/x"),
            404,
        ),
        (
            post.clone(),
            admin.clone(),
            json!({"resourceType": "Bundle", "type": "batch"}),
            400,
        ),
    ] {
        let (code, outcome) = fhir(hospital, method, &path, Some(&body), &[]).await;
        assert_eq!(
            (code, outcome["resourceType"].as_str()),
            (want, Some("OperationOutcome")),
            "{path}: {outcome}"
        );
    }
    let r = reqwest::Client::new()
        .post(format!("{}{admin}/Location", hospital.rpc))
        .header("content-type", "application/fhir+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    for (path, want) in [
        ("/fhir/Location?nmae=x", 400),
        ("/fhir/Location?_include=Organization:endpoint", 400),
        ("/fhir/Patient", 404),
        ("/fhir/Location/_history?_since=yesterday", 400),
    ] {
        let (code, outcome) = get(third, path).await;
        assert_eq!(
            (code, outcome["resourceType"].as_str()),
            (want, Some("OperationOutcome")),
            "{path}"
        );
    }
    let (_, after) = get(hospital, &format!("{admin}/_history")).await;
    assert_eq!(
        before["total"], after["total"],
        "a refused request wrote nothing"
    );

    // The history is kept across a restart: an update client loses no delete.
    let third_net = &mut w.net.nodes[2];
    third_net.restart_offline(false).await.unwrap();
    let (_, lh2) = get(&w.net.nodes[2], &loc_hist).await;
    assert_eq!(lh2["total"], lh["total"], "{lh2}");
}

/// Now, as an RFC 3339 instant with a `+00:00` offset (as update clients send `_since`).
fn knoop_did_time() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let z = knoop_did::knoop::time::to_rfc3339_ms(ms);
    format!("{}+00:00", z.trim_end_matches('Z'))
}

async fn until_gone<'a>(node: &'a Node, id: &str) -> &'a Node {
    until(node, "/fhir/Location/_history?_count=1000", |h| {
        h["entry"].as_array().into_iter().flatten().any(|e| {
            e["request"]["method"] == "DELETE"
                && e["fullUrl"].as_str().is_some_and(|u| u.ends_with(id))
        })
    })
    .await;
    node
}

/// A fixture of knooppunt's recorded directory answers (`tests/fixtures/knooppunt-mcsd`), with
/// the org1 directory's placeholder base replaced.
fn fixture(name: &str, org1: &str) -> Vec<u8> {
    let path = knoop_e2e::repo_root().join(format!("tests/fixtures/knooppunt-mcsd/{name}.json"));
    std::fs::read_to_string(path)
        .unwrap()
        .replace("{{ORG1_DIR_BASEURL}}", org1)
        .into_bytes()
}

fn history(entries: Value) -> Vec<u8> {
    json!({"resourceType": "Bundle", "type": "history",
           "meta": {"lastUpdated": "2025-09-01T00:00:00.000+00:00"}, "entry": entries})
    .to_string()
    .into_bytes()
}

/// The update client reads a test LRZa and the administration directory of organisation 111 it
/// lists, over HTTPS (knooppunt's recorded answers), under the guide's authority rules; the
/// directories that cannot be reached or are not https are reported, not followed; a second
/// round reads only the changes; an organisation on the network itself is served from the
/// network, not from the LRZa.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_client_reads_the_lrza_and_the_directories_it_lists() {
    // The directories require mutual TLS, as the national guide asks: the node presents its
    // client certificate.
    let (client_ca, client_cert, client_key) =
        knoop_e2e::https::client_identity("knoop update client").unwrap();
    let identity = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (
        identity.path().join("client.pem"),
        identity.path().join("client.key"),
    );
    std::fs::write(&cert_path, &client_cert).unwrap();
    std::fs::write(&key_path, &client_key).unwrap();
    let https = knoop_e2e::https::TestHttps::start_with(Vec::new(), Some(&client_ca)).unwrap();
    let lrza = https.url("/lrza");
    let org1 = https.url("/org1");
    for (path, name) in [
        (
            "/lrza/Organization/_history",
            "root_dir_organization_history_response",
        ),
        (
            "/lrza/Endpoint/_history",
            "root_dir_endpoint_history_response",
        ),
        (
            "/org1/Organization/_history",
            "org1_dir_organization_history_response-page1",
        ),
        (
            "/org1/Organization/_history_page2",
            "org1_dir_organization_history_response-page2",
        ),
        (
            "/org1/Endpoint/_history",
            "org1_dir_endpoint_history_response-page1",
        ),
        (
            "/org1/Endpoint/_history_page2",
            "org1_dir_endpoint_history_response-page2",
        ),
        ("/org1/Location/_history", "empty_bundle_response"),
        ("/org1/HealthcareService/_history", "empty_bundle_response"),
        ("/org1/PractitionerRole/_history", "empty_bundle_response"),
    ] {
        https.set(path.to_owned(), fixture(name, &org1));
    }
    let env = vec![
        ("KNOOP_MCSD__ROOTS".to_owned(), format!("[\"{lrza}\"]")),
        ("KNOOP_MCSD__INTERVAL".to_owned(), "0s".to_owned()),
        ("KNOOP_MCSD__BRIDGE".to_owned(), "true".to_owned()),
        (
            "KNOOP_MCSD__TLS_CERT".to_owned(),
            cert_path.display().to_string(),
        ),
        (
            "KNOOP_MCSD__TLS_KEY".to_owned(),
            key_path.display().to_string(),
        ),
        (
            "KNOOP_MCSD__CA_FILE".to_owned(),
            https.ca_pem_path().display().to_string(),
        ),
    ];
    let loc = |method: &str| {
        json!({"request": {"method": method, "url": "Location/loc-1"},
               "resource": {"resourceType": "Location", "id": "loc-1", "name": "Locatie Een",
                            "status": "active",
                            "meta": {"lastUpdated": "2025-08-20T00:00:00.000+00:00"},
                            "managingOrganization": {"reference": "Organization/org-1"}}})
    };
    https.set(
        "/org1/Location/_history".to_owned(),
        history(json!([loc("POST")])),
    );
    let net = knoop_e2e::Network::start_with_env(1, env).await.unwrap();
    let n = &net.nodes[0];

    let without_certificate = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(https.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap()
        .get(format!("{lrza}/Organization/_history"))
        .send()
        .await;
    assert!(
        without_certificate.is_err(),
        "the directory requires a client certificate"
    );
    let with_certificate = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(https.ca_pem().as_bytes()).unwrap())
        .identity(
            reqwest::Identity::from_pem(format!("{client_cert}\n{client_key}").as_bytes()).unwrap(),
        )
        .build()
        .unwrap()
        .get(format!("{lrza}/Organization/_history"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_certificate.status().as_u16(),
        200,
        "and serves one that has it"
    );

    let (code, report) = n.post("/mcsd/update", &json!({})).await.unwrap();
    assert_eq!(code, 200, "{report}");
    let root = &report[lrza.as_str()];
    assert_eq!(
        root["created"], 3,
        "organisations 2, 3 and 4 (1 comes from its own directory): {report}"
    );
    let warnings = root["warnings"].to_string();
    for w in [
        "Something-else",
        "file:///etc/passwd",
        "Endpoint.connectionType is required",
    ] {
        assert!(warnings.contains(w), "{w}: {warnings}");
    }
    let own = &report[format!("{org1}|111").as_str()];
    assert_eq!(
        (&own["created"], own["errors"].as_array().map(Vec::len)),
        (&json!(2), Some(0)),
        "organisation 1 and its location, read over two pages: {report}"
    );
    assert!(
        own["warnings"]
            .to_string()
            .contains("Endpoint.payloadType is required"),
        "knooppunt's recorded endpoints are not valid R4: {report}"
    );
    for unreachable in [
        "https://directory1.example.org|222",
        "https://directory2.example.org|444",
    ] {
        assert_eq!(
            report[unreachable]["errors"].as_array().map(Vec::len),
            Some(1),
            "{report}"
        );
    }

    // One Organization per URA: the LRZa's name, the rest from the organisation's directory,
    // marked unverified; its location with it.
    let q = format!("/fhir/Organization?identifier={URA}%7C111&_revinclude=Location:organization");
    let (_, b) = get(n, &q).await;
    assert_eq!(b["total"], 1, "{b}");
    let org = entries(&b, "match")[0].clone();
    assert_eq!(
        org["name"], "Organization 1",
        "the LRZa decides the name: {org}"
    );
    assert_eq!(org["alias"], json!(["Organization 1 Updated"]), "{org}");
    assert_eq!(org["meta"]["tag"][0]["code"], "unverified");
    assert_eq!(org["meta"]["source"], format!("{org1}/Organization/org-1"));
    let locations = entries(&b, "include");
    assert_eq!(locations.len(), 1, "{b}");
    assert_eq!(locations[0]["name"], "Locatie Een");
    let loc_id = locations[0]["id"].as_str().unwrap().to_owned();
    let (_, two) = get(n, &format!("/fhir/Organization?identifier={URA}%7C222")).await;
    assert_eq!(entries(&two, "match")[0]["name"], "Organization 2", "{two}");
    check_outside(&format!(
        "{}/fhir/Organization?_revinclude=Location:organization",
        n.rpc
    ));

    // The node is a bridge: it published what it learned, signed, once. A node that trusts it
    // as a bridge serves the same, without reading any directory itself.
    let bridge_did = node_did(n).await;
    let sent = &report[format!("bridge:{bridge_did}").as_str()];
    assert_eq!(
        (&sent["created"], sent["errors"].as_array().map(Vec::len)),
        (&json!(5), Some(0)),
        "organisations 1 to 4 and the location: {report}"
    );
    let far_dir = tempfile::tempdir().unwrap();
    let far = Node::start_with_env(
        "far",
        far_dir.path(),
        std::slice::from_ref(&n.p2p),
        vec![(
            "KNOOP_MCSD__TRUSTED_BRIDGES".to_owned(),
            format!("[\"{bridge_did}\"]"),
        )],
    )
    .await
    .unwrap();
    let b = until(&far, &q, |b| b["total"] == 1).await;
    assert_eq!(entries(&b, "match")[0]["name"], "Organization 1", "{b}");
    assert_eq!(
        entries(&b, "match")[0]["meta"]["tag"][0]["code"],
        "unverified"
    );
    assert_eq!(entries(&b, "include").len(), 1, "its location: {b}");
    let (_, status) = far.post("/mcsd/update", &json!({})).await.unwrap();
    assert_eq!(status, json!({}), "the far node reads no directory itself");

    // Round two reads the changes only: organisation 1 renamed with a new endpoint, its
    // location deleted, and an organisation of another URA this directory may not speak for.
    https.set(
        "/org1/Organization/_history".to_owned(),
        history(json!([
            {"resource": {"resourceType": "Organization", "id": "org-1",
                "meta": {"versionId": "4", "lastUpdated": "2025-09-01T00:00:00.000+00:00"},
                "identifier": [{"system": URA, "value": "111"}], "active": true,
                "name": "Organisatie Een", "endpoint": [{"reference": "Endpoint/ep-3"}]},
             "request": {"method": "PUT", "url": "Organization/org-1"}},
            {"resource": {"resourceType": "Organization", "id": "imposter",
                "identifier": [{"system": URA, "value": "222"}], "name": "Not Organization 2"},
             "request": {"method": "POST", "url": "Organization/imposter"}}])),
    );
    https.set(
        "/org1/Endpoint/_history".to_owned(),
        history(json!([{"request": {"method": "POST", "url": "Endpoint/ep-3"},
            "resource": {"resourceType": "Endpoint", "id": "ep-3", "status": "active", "name": "FHIR-3",
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                                   "code": "hl7-fhir-rest"},
                "payloadType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                                             "code": "any"}]}],
                "address": "https://org1.example/fhir"}}])),
    );
    https.set(
        "/org1/Location/_history".to_owned(),
        history(
            json!([{"request": {"method": "DELETE", "url": "Location/loc-1"},
                        "response": {"status": "204 No Content"}}]),
        ),
    );
    let (_, report) = n.post("/mcsd/update", &json!({})).await.unwrap();
    let own = &report[format!("{org1}|111").as_str()];
    assert_eq!(
        (&own["created"], &own["updated"], &own["deleted"]),
        (&json!(1), &json!(1), &json!(1)),
        "{report}"
    );
    assert!(own["warnings"].to_string().contains("URA 222"), "{report}");
    let (_, two) = get(n, &format!("/fhir/Organization?identifier={URA}%7C222")).await;
    assert_eq!(two["total"], 1, "the imposter is not served: {two}");
    let (code, _) = get(n, &format!("/fhir/Location/{loc_id}")).await;
    assert_eq!(code, 410, "the deleted location is gone");
    assert_eq!(
        report[format!("bridge:{bridge_did}").as_str()]["deleted"],
        1,
        "{report}"
    );
    until(&far, "/fhir/Location/_history?_count=1000", |h| {
        h["entry"][0]["request"]["method"] == "DELETE"
    })
    .await;
    let (code, _) = get(&far, &format!("/fhir/Location/{loc_id}")).await;
    assert_eq!(code, 410, "the bridge carried the delete");
    let (_, one) = get(
        n,
        &format!("/fhir/Organization?identifier={URA}%7C111&_include=Organization:endpoint"),
    )
    .await;
    assert_eq!(
        entries(&one, "match")[0]["alias"],
        json!(["Organisatie Een"])
    );
    assert_eq!(entries(&one, "include")[0]["name"], "FHIR-3", "{one}");
    check_outside(&format!("{}/fhir/Endpoint", n.rpc));

    // Organisation 444 joins the network with a trusted credential: from then on the network
    // serves it, verified, and the LRZa's entry stands back.
    let (_, ra) = n.post("/v1/dids", &json!({})).await.unwrap();
    let ra = ra["did"].as_str().unwrap().to_owned();
    let (code, _) = n
        .put(
            &format!("/v1/trust/CareOrganizationCredential/{ra}"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    let (_, did) = n.post("/v1/dids", &json!({})).await.unwrap();
    let did = did["did"].as_str().unwrap().to_owned();
    let (code, issued) = n
        .post(
            "/v1/credentials",
            &json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
                    "subject": {"id": did, "legalName": "Organisatie Vier", "city": "Utrecht",
                                "organizationType": "hospital", "ura": "444"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{issued}");
    let four = until(
        n,
        &format!("/fhir/Organization?identifier={URA}%7C444"),
        |b| b["entry"][0]["resource"]["name"] == "Organisatie Vier",
    )
    .await;
    assert_eq!(four["total"], 1, "{four}");
    assert!(
        four["entry"][0]["resource"]["meta"].get("tag").is_none(),
        "{four}"
    );

    // What was learned survives a restart, without a new round.
    let mut net = net;
    net.nodes[0].restart_offline(false).await.unwrap();
    let n = &net.nodes[0];
    let b = until(
        n,
        &format!("/fhir/Organization?identifier={URA}%7C111"),
        |b| b["total"] == 1,
    )
    .await;
    assert_eq!(entries(&b, "match")[0]["name"], "Organization 1");
}
