//! eOverdracht's Notified Pull (spec: `specs/data-sets.md` §8) over real node processes and the
//! FHIR source servers of `testnet/fhir`, as knooppunt's `eoverdracht-sd.puml` draws it and
//! with nothing central: home care registers its notification endpoint in its Administration
//! Directory; the hospital's EHR finds it in its own node's Query Directory, gets a notification
//! token from home care's authorization server and posts the notification `Task`, which reaches
//! home care's EHR; home care's EHR gets a workflow token from the hospital's server, reads the
//! workflow `Task` and the `Composition` the hospital's implied consent names (an outside R4
//! library reads them strictly), and accepts the `Task`. Every refusal on the way is checked.

use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use knoop_e2e::Node;
use reqwest::Method;
use serde_json::{json, Value};

const URA: &str = "http://fhir.nl/fhir/NamingSystem/ura";
const CAPABILITIES: &str =
    "http://nuts-foundation.github.io/nl-generic-functions-ig/CodeSystem/nl-gf-data-exchange-capabilities";
const CONSENT_SCOPES: &str =
    "http://nuts-foundation.github.io/nl-generic-functions-ig/CodeSystem/nl-gf-consent-scope";
/// Home care's top-level Organization and its notification Endpoint in its directory.
const ORG_ID: &str = "9d1c7a52-4a8e-4bb0-9a43-3f0f5e3b7a10";
const ENDPOINT_ID: &str = "c3e0b7f4-1f65-4e0b-8a0a-5d2e8f6a9b21";

fn ura(value: &str) -> Value {
    json!({"identifier": {"system": URA, "value": value}})
}

/// An EHR's token from another organisation's authorization server, asked through its own node
/// (`POST /v1/access-tokens`), and its requests with a DPoP proof from the node for each.
struct Access<'a> {
    node: &'a Node,
    http: reqwest::Client,
    token: String,
    kid: Option<String>,
}

impl<'a> Access<'a> {
    /// The token for `body`, asked until the credentials have reached the other node.
    async fn ask(w: &'a World, org: usize, body: Value) -> Access<'a> {
        let node = w.node(org);
        let t0 = Instant::now();
        let token = loop {
            let (code, t) = node.post("/v1/access-tokens", &body).await.unwrap();
            if code == 200 {
                break t;
            }
            assert!(t0.elapsed() < Duration::from_secs(45), "{code} {t}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        Access {
            node,
            http: client(w),
            token: token["access_token"].as_str().unwrap().to_owned(),
            kid: token["dpop_kid"].as_str().map(str::to_owned),
        }
    }

    /// `method url` with the token (and its DPoP proof), and `body` as FHIR JSON.
    async fn send(&self, method: Method, url: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.http.request(method.clone(), url);
        for (k, v) in self.headers(method.as_str(), url).await {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/fhir+json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ctype.starts_with("application/fhir+json"), "{url}: {ctype}");
        (status, r.json().await.unwrap())
    }

    /// `Authorization` (and `DPoP`) for one request.
    async fn headers(&self, method: &str, url: &str) -> Vec<(&'static str, String)> {
        let Some(kid) = &self.kid else {
            return vec![("authorization", format!("Bearer {}", self.token))];
        };
        let (code, p) = self
            .node
            .post(
                "/v1/dpop-proofs",
                &json!({"dpop_kid": kid, "method": method, "url": url,
                        "access_token": self.token}),
            )
            .await
            .unwrap();
        assert_eq!(code, 200, "{p}");
        vec![
            ("authorization", format!("DPoP {}", self.token)),
            ("dpop", p["dpop"].as_str().unwrap().to_owned()),
        ]
    }
}

fn client(w: &World) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(w.ca.ca_pem_path()).unwrap()).unwrap(),
        )
        .build()
        .unwrap()
}

async fn public_url(node: &Node) -> String {
    node.status().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The audit entries of `node` of `kind`.
async fn audited(node: &Node, kind: &str) -> Vec<Value> {
    let (_, audit) = node.get("/v1/audit?limit=10000").await.unwrap();
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hospital_hands_over_care_to_home_care_by_notified_pull() {
    // The hospital adds a rule of its own under the scope's name, beside knoop's built-in
    // policy: no access to a cancelled workflow, decided on the resource's content, which the
    // policy information point reads from its source.
    let policies = tempfile::tempdir().unwrap();
    let own = policies.path().join("eoverdracht_sender");
    std::fs::create_dir(&own).unwrap();
    std::fs::write(
        own.join("policy.rego"),
        "package eoverdracht_sender\n\nimport rego.v1\n\ndefault allow := false\n\n\
         allow if {\n\tsome c in input.resource.consents\n\tc.scope == \"eoverdracht\"\n\
         \tinput.resource.content.status != \"cancelled\"\n}\n",
    )
    .unwrap();
    let w = world(
        "opt-out",
        &[LEIDEN_HOSPITAL, KERKRADE_HOMECARE],
        &[
            (
                0,
                ("KNOOP_PDP__POLICIES", policies.path().display().to_string()),
            ),
            (0, ("KNOOP_PDP__RESOURCE_CONTENT", "true".to_owned())),
        ],
    )
    .await;
    let (hospital, homecare) = (&w.orgs[0], &w.orgs[1]);
    let (hospital_node, homecare_node) = (w.node(0), w.node(1));
    let hospital_public = public_url(hospital_node).await;
    let homecare_public = public_url(homecare_node).await;
    let homecare_id = homecare.did.strip_prefix("did:knoop:").unwrap();

    // Step 0: home care registers its notification endpoint in its Administration Directory.
    let notification_endpoint = format!("{homecare_public}/notified-pull/{homecare_id}");
    let assigned = json!([{"system": "https://homecare.example/ids", "value": "org",
        "assigner": {"identifier": {"system": URA, "value": KERKRADE_HOMECARE.ura,
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                 "code": "author"}]}}}}]);
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Organization", "id": ORG_ID,
            "identifier": [{"system": URA, "value": KERKRADE_HOMECARE.ura}, assigned[0]],
            "name": KERKRADE_HOMECARE.name, "active": true,
            "type": [{"coding": [{"system": "http://nictiz.nl/fhir/NamingSystem/organization-type",
                                  "code": "T2", "display": "Thuiszorg"}]}],
            "endpoint": [{"reference": format!("Endpoint/{ENDPOINT_ID}")}]},
         "request": {"method": "PUT", "url": format!("Organization/{ORG_ID}")}},
        {"resource": {"resourceType": "Endpoint", "id": ENDPOINT_ID, "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                               "code": "hl7-fhir-rest"},
            "payloadType": [{"coding": [{"system": CAPABILITIES, "code": "Twiin-TA-notification"}]}],
            "payloadMimeType": ["application/fhir+json"],
            "managingOrganization": {"reference": format!("Organization/{ORG_ID}")},
            "address": notification_endpoint},
         "request": {"method": "PUT", "url": format!("Endpoint/{ENDPOINT_ID}")}}]});
    let (code, v) = homecare_node
        .fhir(
            Method::POST,
            &format!("/admin-directory/{}", KERKRADE_HOMECARE.ura),
            Some(&tx),
            &[],
        )
        .await;
    assert_eq!(code, 200, "{v}");

    // Step 2: the hospital's EHR finds it in its own node's Query Directory.
    let query = format!(
        "/fhir/Organization?identifier={URA}%7C{}&_include=Organization:endpoint",
        KERKRADE_HOMECARE.ura
    );
    let t0 = Instant::now();
    let address = loop {
        let (_, b) = hospital_node.fhir(Method::GET, &query, None, &[]).await;
        let found = b["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["resource"])
            .find(|r| {
                r["resourceType"] == "Endpoint"
                    && r["payloadType"][0]["coding"][0]["code"] == "Twiin-TA-notification"
            })
            .and_then(|r| r["address"].as_str().map(str::to_owned));
        if let Some(a) = found {
            break a;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(address, notification_endpoint);

    // Step 1: the hospital's EHR records the handover in its own FHIR system: the workflow Task,
    // the transfer document, and the implied consent that lets home care read both.
    let composition = w
        .fhir
        .create(
            "leiden-hospital",
            json!({"resourceType": "Composition", "status": "final",
            "type": {"coding": [{"system": "http://loinc.org", "code": "34745-0",
                                 "display": "Nurse Discharge summary"}]},
            "subject": {"reference": "Patient/zl-104872"}, "date": "2026-12-07T10:00:00+01:00",
            "author": [{"reference": "Practitioner/prac-zl-visser"}],
            "title": "Overdracht wijkverpleging"}),
        )
        .await;
    let task = w.fhir.create("leiden-hospital",
        json!({"resourceType": "Task", "status": "requested", "intent": "order",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "308292007",
                                 "display": "Overdracht van zorg"}]},
            "for": {"reference": "Patient/zl-104872"},
            "requester": ura(LEIDEN_HOSPITAL.ura), "owner": ura(KERKRADE_HOMECARE.ura),
            "input": [{"type": {"coding": [{"system": "http://snomed.info/sct", "code": "371535009"}]},
                       "valueReference": {"reference": format!("Composition/{composition}")}}]}),
    )
    .await;
    let cancelled = w
        .fhir
        .create(
            "leiden-hospital",
            json!({"resourceType": "Task", "status": "cancelled", "intent": "order",
            "for": {"reference": "Patient/zl-104872"},
            "requester": ura(LEIDEN_HOSPITAL.ura), "owner": ura(KERKRADE_HOMECARE.ura)}),
        )
        .await;
    w.fhir.create("leiden-hospital",
        json!({"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": CONSENT_SCOPES, "code": "eoverdracht"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "organization": [ura(LEIDEN_HOSPITAL.ura)],
            "provision": {"type": "permit",
                "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                        "code": "access"}]}],
                "actor": [{"role": {"text": "receiver"}, "reference": ura(KERKRADE_HOMECARE.ura)}],
                "data": [{"meaning": "instance", "reference": {"reference": format!("Task/{task}")}},
                         {"meaning": "instance", "reference": {"reference": format!("Task/{cancelled}")}},
                         {"meaning": "instance",
                          "reference": {"reference": format!("Composition/{composition}")}}]}}),
    )
    .await;

    // Step 3: a notification token from home care's server, with the hospital's organisation
    // credential alone, and the notification Task posted with it.
    let notify = Access::ask(
        &w,
        0,
        json!({"requester": hospital.did, "credentials": [hospital.credential],
               "holder": homecare.did, "scope": "eOverdracht-receiver"}),
    )
    .await;
    let notification = |requester: &str, owner: &str| {
        json!({"resourceType": "Task", "status": "requested", "intent": "proposal",
            "code": {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskCode",
                                 "code": "pull-notification"}]},
            "basedOn": [{"reference": format!("Task/{task}")}],
            "for": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/bsn",
                                   "value": "999900109"}},
            "requester": ura(requester), "owner": ura(owner),
            "input": [{"type": {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskParameter",
                                            "code": "get-workflow-task"}]},
                       "valueBoolean": true}]})
    };
    let url = format!("{address}/Task");
    let (code, created) = notify
        .send(
            Method::POST,
            &url,
            Some(&notification(LEIDEN_HOSPITAL.ura, KERKRADE_HOMECARE.ura)),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let notified = created["id"].as_str().unwrap().to_owned();
    // It reached home care's EHR.
    let at_ehr = w
        .fhir
        .read("kerkrade-homecare", &format!("Task/{notified}"))
        .await;
    assert_eq!(at_ehr["basedOn"][0]["reference"], format!("Task/{task}"));
    assert_eq!(
        at_ehr["requester"]["identifier"]["value"],
        LEIDEN_HOSPITAL.ura
    );

    // Refused notifications: each an OperationOutcome, nothing reaches the EHR.
    for (body, want, what) in [
        (
            notification(LEIDEN_HOSPITAL.ura, "99990044"),
            403,
            "for another organisation",
        ),
        (
            notification("99990022", KERKRADE_HOMECARE.ura),
            403,
            "on behalf of another organisation",
        ),
        (
            json!({"resourceType": "Patient", "id": "x"}),
            400,
            "not a Task",
        ),
        (
            {
                let mut t = notification(LEIDEN_HOSPITAL.ura, KERKRADE_HOMECARE.ura);
                t["code"]["coding"][0]["code"] = json!("other");
                t
            },
            403,
            "not a pull notification",
        ),
    ] {
        let (code, v) = notify.send(Method::POST, &url, Some(&body)).await;
        assert_eq!(code, want, "{what}: {v}");
        assert_eq!(v["resourceType"], "OperationOutcome", "{what}: {v}");
    }
    let anonymous = client(&w)
        .post(&url)
        .header("content-type", "application/fhir+json")
        .body(notification(LEIDEN_HOSPITAL.ura, KERKRADE_HOMECARE.ura).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let (code, v) = notify
        .send(
            Method::POST,
            &format!("{homecare_public}/notified-pull/nosuchorganisation/Task"),
            Some(&notification(LEIDEN_HOSPITAL.ura, KERKRADE_HOMECARE.ura)),
        )
        .await;
    assert_eq!(code, 404, "{v}");
    let mut huge = notification(LEIDEN_HOSPITAL.ura, KERKRADE_HOMECARE.ura);
    huge["note"] = json!([{"text": "x".repeat(300 * 1024)}]);
    let (code, v) = notify.send(Method::POST, &url, Some(&huge)).await;
    assert_eq!(code, 413, "{v}");
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    let bundle = w
        .fhir
        .read("kerkrade-homecare", "Task?code=pull-notification")
        .await;
    assert_eq!(bundle["total"], 1, "only the one notification: {bundle}");

    // A workflow token is granted only by an organisation's own server and names no patient.
    let (code, v) = homecare_node
        .post(
            "/v1/access-tokens",
            &json!({"requester": homecare.did, "credentials": [homecare.credential],
                    "issuer": hospital_public, "scope": "eOverdracht-sender"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 403, "{v}");
    assert!(v.to_string().contains("invalid_request"), "{v}");
    let (code, v) = homecare_node
        .post(
            "/v1/access-tokens",
            &json!({"requester": homecare.did, "credentials": [homecare.credential],
                    "holder": hospital.did, "scope": "eOverdracht-sender",
                    "patient": {"value": "999900109"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 403, "{v}");
    assert!(v.to_string().contains("not about a patient"), "{v}");
    let (code, v) = homecare_node
        .post(
            "/v1/access-tokens",
            &json!({"requester": homecare.did,
                    "credentials": [homecare.credential, homecare.professional],
                    "holder": hospital.did, "scope": "bgz", "purpose": "regular-care"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 403, "{v}");
    assert!(v.to_string().contains("patient is required"), "{v}");

    // Steps 5 and 6: home care's EHR pulls the workflow Task and the Composition the
    // notification points at, with a workflow token from the hospital's server.
    let pull = Access::ask(
        &w,
        1,
        json!({"requester": homecare.did, "credentials": [homecare.credential],
               "holder": hospital.did, "scope": "eOverdracht-sender"}),
    )
    .await;
    // The hospital's node shows the grant as knooppunt's PEP reads it: the organisation, no
    // patient, no professional.
    let seen = hospital_node
        .introspect("/oauth2/introspect", &pull.token)
        .await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["scope"], "eOverdracht-sender", "{seen}");
    assert_eq!(seen["organization_ura"], KERKRADE_HOMECARE.ura, "{seen}");
    assert_eq!(seen["organization_name"], KERKRADE_HOMECARE.name, "{seen}");
    assert_eq!(seen["implied_consent"], "eoverdracht", "{seen}");
    assert!(seen.get("patient").is_none(), "{seen}");
    assert!(seen.get("user_id").is_none(), "{seen}");
    let fhir = |path: &str| format!("{hospital_public}/fhir/{path}");
    let (code, t) = pull
        .send(Method::GET, &fhir(&format!("Task/{task}")), None)
        .await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["id"], task.as_str());
    let document = t["input"][0]["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(document, format!("Composition/{composition}"));
    // The Composition, as an outside FHIR library reads it (strict R4 models).
    let url = fhir(&document);
    let headers: Vec<String> = pull
        .headers("GET", &url)
        .await
        .into_iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let outside = knoop_e2e::run_outside(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg(&url)
            .args(&headers)
            .env("REQUESTS_CA_BUNDLE", w.ca.ca_pem_path()),
    );
    assert_eq!(outside["resourceType"], "Composition", "{outside}");

    // Nothing else: a resource no implied consent names, a search, an update of the document.
    let (code, v) = pull
        .send(Method::GET, &fhir("Observation/zl-obs-hb-20261118"), None)
        .await;
    assert_eq!(code, 403, "{v}");
    assert!(v.to_string().contains("eoverdracht"), "{v}");
    let (code, v) = pull
        .send(Method::GET, &fhir("Task?status=requested"), None)
        .await;
    assert_eq!(code, 403, "{v}");
    // The hospital's own policy, on the content: the cancelled workflow is not served.
    let (code, v) = pull
        .send(Method::GET, &fhir(&format!("Task/{cancelled}")), None)
        .await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v.to_string().contains("denied by eoverdracht_sender"),
        "{v}"
    );
    let mut c = w.fhir.read("leiden-hospital", &document).await;
    c["title"] = json!("changed by the receiver");
    let (code, v) = pull.send(Method::PUT, &fhir(&document), Some(&c)).await;
    assert_eq!(code, 403, "{v}");
    assert_eq!(
        w.fhir.read("leiden-hospital", &document).await["title"],
        "Overdracht wijkverpleging"
    );

    // The same pull by an EHR written against the Nuts node's API (as knooppunt exposes it):
    // only its base URL changes.
    let hospital_id = hospital.did.strip_prefix("did:knoop:").unwrap();
    let nuts_token = |token_type: &str| {
        json!({"authorization_server": format!("{hospital_public}/oauth2/{hospital_id}"),
               "scope": "eOverdracht-sender", "credentials": [homecare.credential],
               "token_type": token_type})
    };
    let (code, nuts) = homecare_node
        .post(
            &format!("/nuts/auth/v2/{homecare_id}/request-service-access-token"),
            &nuts_token("DPoP"),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{nuts}");
    assert_eq!(nuts["token_type"], "DPoP", "{nuts}");
    assert_eq!(nuts["scope"], "eOverdracht-sender", "{nuts}");
    assert!(nuts["expires_at"].as_u64().unwrap() > 0, "{nuts}");
    let (nuts_access, nuts_kid) = (
        nuts["access_token"].as_str().unwrap(),
        nuts["dpop_kid"].as_str().unwrap(),
    );
    let task_url = fhir(&format!("Task/{task}"));
    let (code, proof) = homecare_node
        .post(
            &format!("/internal/auth/v2/dpop/{nuts_kid}"),
            &json!({"htm": "GET", "htu": task_url, "token": nuts_access}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{proof}");
    let r = client(&w)
        .get(&task_url)
        .header("authorization", format!("DPoP {nuts_access}"))
        .header("dpop", proof["dpop"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let seen = hospital_node
        .introspect("/internal/auth/v2/accesstoken/introspect", nuts_access)
        .await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["organization_ura"], KERKRADE_HOMECARE.ura, "{seen}");
    assert!(seen["cnf"]["jkt"].is_string(), "{seen}");
    // A bearer token when the EHR asks for one; an unknown subject and bad input are problems.
    let (code, nuts) = homecare_node
        .post(
            &format!(
                "/internal/auth/v2/{}/request-service-access-token",
                homecare.did
            ),
            &nuts_token("Bearer"),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{nuts}");
    assert_eq!(nuts["token_type"], "Bearer", "{nuts}");
    assert!(nuts.get("dpop_kid").is_none(), "{nuts}");
    let r = client(&w)
        .get(&task_url)
        .header(
            "authorization",
            format!("Bearer {}", nuts["access_token"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for (path, body, want) in [
        (
            "/nuts/auth/v2/nosuchsubject/request-service-access-token".to_owned(),
            nuts_token("DPoP"),
            404,
        ),
        (
            format!("/nuts/auth/v2/{homecare_id}/request-service-access-token"),
            nuts_token("MAC"),
            400,
        ),
        (
            format!("/nuts/auth/v2/{homecare_id}/request-service-access-token"),
            json!({"authorization_server": "not a url", "scope": "x"}),
            400,
        ),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", homecare_node.rpc))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{path} {body}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }

    // Home care accepts the handover: the workflow Task's update through the proxy.
    let mut accepted = t.clone();
    accepted["status"] = json!("accepted");
    if let Some(m) = accepted.as_object_mut() {
        m.remove("meta");
    }
    let mut wrong_id = accepted.clone();
    wrong_id["id"] = json!("another");
    let (code, v) = pull
        .send(Method::PUT, &fhir(&format!("Task/{task}")), Some(&wrong_id))
        .await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = pull
        .send(Method::PUT, &fhir(&format!("Task/{task}")), Some(&accepted))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "accepted");
    assert_eq!(
        w.fhir
            .read("leiden-hospital", &format!("Task/{task}"))
            .await["status"],
        "accepted"
    );

    // The notification token reads nothing at the hospital, and the workflow token notifies
    // nobody.
    let (code, v) = pull
        .send(
            Method::POST,
            &format!("{address}/Task"),
            Some(&notification(LEIDEN_HOSPITAL.ura, KERKRADE_HOMECARE.ura)),
        )
        .await;
    assert_eq!(code, 401, "another node's token: {v}");

    // Both sides audited what happened, with no patient.
    let notifications = audited(homecare_node, "notification").await;
    assert!(
        notifications
            .iter()
            .any(|e| e["requester"] == hospital.did.as_str()
                && e["outcome"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("delivered to the EHR: 201 Task/{notified}"))),
        "{notifications:?}"
    );
    assert!(
        notifications
            .iter()
            .filter(|e| e["outcome"].as_str().unwrap().starts_with("forbidden"))
            .count()
            >= 3,
        "{notifications:?}"
    );
    let reads = audited(hospital_node, "data").await;
    for outcome in [
        format!("read Task/{task}"),
        format!("read {document}"),
        format!("updated Task/{task}: 200"),
    ] {
        assert!(
            reads.iter().any(|e| e["outcome"] == outcome.as_str()
                && e["requester"] == homecare.did.as_str()
                && e["patient"] == ""),
            "{outcome}: {reads:?}"
        );
    }
}
