//! Per-tenant API credentials (`specs/rpc-clients.md`) over a real node process: a vendor's
//! node hosts two organisations, each with its own EHR credential. An EHR acts as its own
//! organisation and as no other on every tenant route (JSON RPC, NVI, FHIR Consent, Mitz
//! subscriptions, Administration Directory, the Nuts node's token API), reaches no admin-only
//! route, reads the open ones, and every refusal is in the hash-chained audit log.

use std::time::{Duration, Instant};

use knoop_e2e::care::{create_did, issue, trust};
use knoop_e2e::{privacy_env, Node};
use reqwest::Method;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "the-vendors-admin-token-0001";
const EHR_A_TOKEN: &str = "token-of-the-ehr-of-hospital-a";
const EHR_B_TOKEN: &str = "token-of-the-ehr-of-pharmacy-b";
const TOOL_TOKEN: &str = "token-of-the-vendors-admin-tool";
const URA: &str = "http://fhir.nl/fhir/NamingSystem/ura";
const URA_A: &str = "99990011";
const URA_B: &str = "99990044";

/// A FHIR call: method, path, body and headers.
type FhirCase<'a> = (Method, String, Option<Value>, Vec<(&'a str, &'a str)>);

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// One call with `token` (or none): the status, the body as JSON (Null if none) and the
/// content type.
async fn call(
    node: &Node,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value, String) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, format!("{}{path}", node.rpc));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        let fhir = headers.iter().any(|(k, _)| *k == "X-Tenant-ID")
            || path.starts_with("/mitz")
            || path.starts_with("/admin-directory");
        let ct = if fhir {
            "application/fhir+json"
        } else {
            "application/json"
        };
        req = req.header("content-type", ct).body(b.to_string());
    }
    let r = req.send().await.expect("the RPC answers");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        ct,
    )
}

/// Asserts that `method path` with `token` is refused with `403` and the RPC error `code`.
async fn refused_as(
    node: &Node,
    token: &str,
    method: &Method,
    path: &str,
    body: Option<&Value>,
    code: &str,
) {
    let (status, v, _) = call(node, Some(token), method.clone(), path, body, &[]).await;
    assert_eq!(status, 403, "{method} {path}: {v}");
    assert_eq!(v["error"], code, "{method} {path}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ehr_acts_only_as_its_own_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = privacy_env("opt-in");
    env.push(("KNOOP_RPC__TOKEN".into(), ADMIN_TOKEN.into()));
    env.push(("KNOOP_P2P__ENABLED".into(), "false".into()));
    let mut node = Node::start_with_env("vendor", &dir.path().join("n"), &[], env)
        .await
        .unwrap();

    // The vendor (admin token) sets up a registry authority and two organisations with URAs.
    let ra = create_did(&node).await;
    trust(&node, "CareOrganizationCredential", &ra).await;
    let a = create_did(&node).await;
    let b = create_did(&node).await;
    for (did, name, ura) in [(&a, "Ziekenhuis A", URA_A), (&b, "Apotheek B", URA_B)] {
        issue(&node, json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
            "subject": {"id": did, "legalName": name, "city": "Leiden", "organizationType": "hospital", "ura": ura}}))
            .await;
    }
    let t0 = Instant::now();
    while node.get("/v1/directory").await.unwrap().1["organizations"]
        .as_array()
        .map_or(0, Vec::len)
        < 2
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "directory never complete"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each EHR gets a credential for its organisation; the vendor's tool an admin one.
    let config = dir.path().join("knoop.toml");
    let client = |name: &str, token: &str, tenants: &[&str], admin: bool| {
        format!(
            "[[rpc.clients]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\ntenants = {tenants:?}\nadmin = {admin}\n",
            sha256_hex(token)
        )
    };
    std::fs::write(
        &config,
        [
            client("ehr-a", EHR_A_TOKEN, &[&a], false),
            client("ehr-b", EHR_B_TOKEN, &[&b], false),
            client("tool", TOOL_TOKEN, &[], true),
        ]
        .concat(),
    )
    .unwrap();
    node.stop().await.unwrap();
    node.env
        .push(("KNOOP_CONFIG".into(), config.to_string_lossy().into_owned()));
    node.restart().await.unwrap();

    // No credential, or an unknown one: 401 with the RFC 6750 challenge.
    for token in [None, Some("not-a-token-of-this-node")] {
        let (code, body, _) = call(&node, token, Method::GET, "/v1/status", None, &[]).await;
        assert_eq!(code, 401, "{token:?}: {body}");
        assert_eq!(body["error"], "unauthorized");
    }

    // Open routes serve any credential.
    for path in [
        "/v1/status".to_owned(),
        format!("/v1/dids/{b}"),
        "/v1/directory".to_owned(),
        "/fhir/Organization".to_owned(),
    ] {
        let (code, body, _) = call(&node, Some(EHR_A_TOKEN), Method::GET, &path, None, &[]).await;
        assert_eq!(code, 200, "{path}: {body}");
    }

    // Admin-only routes refuse a tenant's credential, and serve the admin ones.
    let admin_only: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/v1/dids".into(), Some(json!({}))),
        (
            Method::PUT,
            format!("/v1/trust/CareOrganizationCredential/{a}"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/admin/backup".into(),
            Some(json!({"name": "b1"})),
        ),
        (Method::GET, "/v1/audit".into(), None),
        (Method::GET, "/fhir/AuditEvent".into(), None),
        (Method::GET, "/v1/private".into(), None),
        (
            Method::POST,
            "/v1/consent/list".into(),
            Some(
                json!({"patient": {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999911120"}}),
            ),
        ),
        (Method::GET, "/metrics".into(), None),
        (Method::GET, "/console/".into(), None),
        (Method::POST, "/mcsd/update".into(), None),
    ];
    for (m, path, body) in &admin_only {
        refused_as(&node, EHR_A_TOKEN, m, path, body.as_ref(), "admin_only").await;
    }
    for token in [ADMIN_TOKEN, TOOL_TOKEN] {
        let (code, v, _) = call(&node, Some(token), Method::GET, "/v1/audit", None, &[]).await;
        assert_eq!(code, 200, "{v}");
    }
    let (code, v, _) = call(
        &node,
        Some(TOOL_TOKEN),
        Method::POST,
        "/v1/dids",
        Some(&json!({})),
        &[],
    )
    .await;
    assert_eq!(code, 201, "the admin tool creates a DID: {v}");

    // Every tenant route, acting as the other organisation: 403 in the route's own format.
    let bsn = json!({"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999911120"});
    let tenant_b = format!("{URA}|{URA_B}");
    let json_cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, format!("/v1/dids/{b}/keys"), Some(json!({}))),
        (Method::DELETE, format!("/v1/dids/{b}/keys/key-1"), None),
        (
            Method::POST,
            format!("/v1/dids/{b}/keys/key-1/rotate"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/dids/{b}/services/ehr"),
            Some(json!({"type": "X", "serviceEndpoint": "https://x.example"})),
        ),
        (Method::DELETE, format!("/v1/dids/{b}/services/ehr"), None),
        (
            Method::PUT,
            format!("/v1/dids/{b}/controllers"),
            Some(json!({"controllers": [a]})),
        ),
        (Method::POST, format!("/v1/dids/{b}/deactivate"), None),
        (
            Method::POST,
            "/v1/credentials".into(),
            Some(
                json!({"issuer": b, "type": "HealthcareProfessionalCredential", "subject": {"id": a}}),
            ),
        ),
        (
            Method::POST,
            "/v1/credentials/publish".into(),
            Some(json!({"credential": {"id": "urn:x"}, "signer": b})),
        ),
        (
            Method::POST,
            "/v1/credentials/publish".into(),
            Some(json!({"credential": {"id": "urn:x"}})),
        ),
        (
            Method::POST,
            "/v1/credentials/revoke".into(),
            Some(json!({"issuer": b, "credential": "urn:x"})),
        ),
        (
            Method::POST,
            "/v1/presentations".into(),
            Some(json!({"holder": b, "credentials": [], "domain": "x"})),
        ),
        (
            Method::POST,
            "/v1/private".into(),
            Some(json!({"author": b, "to": [a], "body": {}})),
        ),
        (
            Method::POST,
            "/v1/localisation/register".into(),
            Some(json!({"holder": b, "patient": bsn, "categories": ["medication"]})),
        ),
        (
            Method::POST,
            "/v1/localisation/withdraw".into(),
            Some(json!({"holder": b, "patient": bsn})),
        ),
        (
            Method::POST,
            "/v1/localisation/lookup".into(),
            Some(json!({"requester": b, "patient": bsn, "purpose": "treatment"})),
        ),
        (
            Method::POST,
            "/v1/data/fetch".into(),
            Some(json!({"requester": b, "patient": bsn, "scope": "x", "purpose": "treatment"})),
        ),
        (
            Method::POST,
            "/v1/consent".into(),
            Some(
                json!({"issuer": b, "patient": bsn, "decision": "deny", "purpose": ["treatment"], "dataCategories": ["medication"], "method": "verbal"}),
            ),
        ),
        (
            Method::POST,
            "/v1/consent/revoke".into(),
            Some(json!({"issuer": b, "patient": bsn, "credential": "urn:x"})),
        ),
        (
            Method::POST,
            "/v1/access-tokens".into(),
            Some(json!({"requester": b, "scope": "x", "issuer": "https://as.example"})),
        ),
        (
            Method::POST,
            "/v1/access-tokens".into(),
            Some(
                json!({"requester": a, "client": b, "scope": "x", "issuer": "https://as.example"}),
            ),
        ),
        (
            Method::POST,
            "/v1/credential-offers".into(),
            Some(json!({"issuer": b, "type": "X", "subject": {}})),
        ),
        (
            Method::POST,
            "/v1/wallet/offers".into(),
            Some(json!({"holder": b, "offer": {}})),
        ),
        (
            Method::POST,
            "/v1/wallet/credentials".into(),
            Some(json!({"holder": b, "credential": {}})),
        ),
        (
            Method::GET,
            format!("/v1/wallet/credentials?holder={}", enc(&b)),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/wallet/credentials?holder={}&id=x", enc(&b)),
            None,
        ),
    ];
    let (_, b_before) = node.get(&format!("/v1/dids/{b}")).await.unwrap();
    let mut refusals = 0;
    for (m, path, body) in &json_cases {
        refused_as(
            &node,
            EHR_A_TOKEN,
            m,
            path,
            body.as_ref(),
            "forbidden_tenant",
        )
        .await;
        refusals += 1;
    }
    // The Nuts node's token API answers problem+json.
    for (path, body) in [
        (
            format!("/internal/auth/v2/{}/request-service-access-token", enc(&b)),
            json!({"authorization_server": "https://as.example", "scope": "x"}),
        ),
        (
            format!("/nuts/auth/v2/{}/request-service-access-token", enc(&a)),
            json!({"authorization_server": "https://as.example", "scope": "x", "service_provider_subject_id": b}),
        ),
    ] {
        let (code, v, ct) = call(
            &node,
            Some(EHR_A_TOKEN),
            Method::POST,
            &path,
            Some(&body),
            &[],
        )
        .await;
        assert_eq!(
            (code, ct.as_str()),
            (403, "application/problem+json"),
            "{path}: {v}"
        );
        refusals += 1;
    }
    // The FHIR interfaces name the organisation in X-Tenant-ID or the path: an
    // OperationOutcome.
    let org = json!({"resourceType": "Organization", "name": "Afdeling",
        "identifier": [{"system": URA, "value": URA_B}]});
    let list = json!({"resourceType": "List", "status": "current", "mode": "working"});
    let sub = json!({"resourceType": "Subscription", "status": "requested", "reason": "OTV",
        "criteria": format!("Consent?_query=otv&patientid=999911120&providerid={URA_B}&providertype=Z3"),
        "channel": {"type": "rest-hook", "endpoint": "https://ehr.example/hook", "payload": "application/fhir+json"}});
    let fhir_cases: Vec<FhirCase> = vec![
        (
            Method::POST,
            "/nvi/List".into(),
            Some(list.clone()),
            vec![("X-Tenant-ID", &tenant_b)],
        ),
        (
            Method::GET,
            "/nvi/List".into(),
            None,
            vec![("X-Tenant-ID", &tenant_b)],
        ),
        (
            Method::DELETE,
            "/nvi/List/x".into(),
            None,
            vec![("X-Tenant-ID", &tenant_b)],
        ),
        (
            Method::GET,
            "/fhir/Consent".into(),
            None,
            vec![("X-Tenant-ID", &tenant_b)],
        ),
        (Method::POST, "/mitz/Subscription".into(), Some(sub), vec![]),
        (
            Method::GET,
            "/mitz/Subscription/x".into(),
            None,
            vec![("X-Tenant-ID", &tenant_b)],
        ),
        (
            Method::POST,
            format!("/admin-directory/{URA_B}/Organization"),
            Some(org.clone()),
            vec![],
        ),
        (
            Method::DELETE,
            format!("/admin-directory/{URA_B}/Organization/x"),
            None,
            vec![],
        ),
    ];
    for (m, path, body, headers) in &fhir_cases {
        let (code, v, _) = call(
            &node,
            Some(EHR_A_TOKEN),
            m.clone(),
            path,
            body.as_ref(),
            headers,
        )
        .await;
        assert_eq!(code, 403, "{m} {path}: {v}");
        assert_eq!(v["resourceType"], "OperationOutcome", "{m} {path}: {v}");
        let said = v["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(said.contains("ehr-a"), "{m} {path}: {v}");
        refusals += 1;
    }

    // Nothing refused changed B.
    let (_, b_after) = node.get(&format!("/v1/dids/{b}")).await.unwrap();
    assert_eq!(b_before["didDocument"], b_after["didDocument"]);
    assert!(b_after["didDocument"].is_object(), "{b_after}");

    // As its own organisation, the same EHR is served.
    let (code, v, _) = call(
        &node,
        Some(EHR_A_TOKEN),
        Method::POST,
        format!("/v1/dids/{a}/keys").as_str(),
        Some(&json!({})),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let (code, v, _) = call(&node, Some(EHR_A_TOKEN), Method::POST, "/v1/localisation/register",
        Some(&json!({"holder": a, "patient": bsn, "categories": ["medication"], "source_patient": "p1"})), &[]).await;
    assert_eq!(code, 201, "{v}");
    let (code, v, _) = call(
        &node,
        Some(EHR_A_TOKEN),
        Method::GET,
        &format!("/v1/wallet/credentials?holder={}", enc(&a)),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let tenant_a = format!("{URA}|{URA_A}");
    let (code, v, _) = call(
        &node,
        Some(EHR_A_TOKEN),
        Method::GET,
        "/nvi/List?patient:identifier=http://fhir.nl/fhir/NamingSystem/bsn%7C999911120",
        None,
        &[("X-Tenant-ID", &tenant_a)],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let org_a = json!({"resourceType": "Organization", "name": "Ziekenhuis A", "active": true,
        "identifier": [{"system": URA, "value": URA_A},
            {"system": "https://hospital-a.example/ids", "value": "org",
             "assigner": {"identifier": {"system": URA, "value": URA_A,
                 "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                      "code": "author"}]}}}}],
        "type": [{"coding": [{"system": "http://nictiz.nl/fhir/NamingSystem/organization-type",
                              "code": "V4", "display": "Ziekenhuis"}]}]});
    let (code, v, _) = call(
        &node,
        Some(EHR_A_TOKEN),
        Method::POST,
        &format!("/admin-directory/{URA_A}/Organization"),
        Some(&org_a),
        &[],
    )
    .await;
    assert!(code == 201 || code == 202, "{code} {v}");
    // And the other EHR as its own: B's key added by B's credential.
    let (code, v, _) = call(
        &node,
        Some(EHR_B_TOKEN),
        Method::POST,
        format!("/v1/dids/{b}/keys").as_str(),
        Some(&json!({})),
        &[],
    )
    .await;
    assert_eq!(code, 201, "{v}");

    // Every act-as refusal is in the audit log, naming the client, the route and the
    // organisation, and the chain verifies.
    let (_, audit, _) = call(
        &node,
        Some(ADMIN_TOKEN),
        Method::GET,
        "/v1/audit",
        None,
        &[],
    )
    .await;
    let refused: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "api" && e["outcome"] == "forbidden_tenant")
        .collect();
    // Every admin-only refusal too, naming the route.
    let admin_refusals: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "api" && e["outcome"] == "admin_only")
        .collect();
    assert_eq!(admin_refusals.len(), admin_only.len(), "{audit}");
    assert!(
        admin_refusals
            .iter()
            .all(|e| e["who"] == "rpc client ehr-a"),
        "{audit}"
    );
    assert!(
        admin_refusals
            .iter()
            .any(|e| e["purpose"] == "POST /v1/admin/backup"),
        "{audit}"
    );
    assert_eq!(refused.len(), refusals, "{audit}");
    // B everywhere, but the node itself for a publish without a signer (signed as the node).
    let (_, node_id) = node.get("/v1/node").await.unwrap();
    for e in &refused {
        assert_eq!(e["outcome"], "forbidden_tenant", "{e}");
        assert_eq!(e["who"], "rpc client ehr-a", "{e}");
        assert!(
            e["requester"] == json!(b) || e["requester"] == node_id["did"],
            "{e}"
        );
    }
    assert_eq!(
        refused
            .iter()
            .filter(|e| e["requester"] == node_id["did"])
            .count(),
        1,
        "{audit}"
    );
    assert!(
        refused
            .iter()
            .any(|e| e["purpose"] == "POST /v1/data/fetch"),
        "{audit}"
    );
    let (_, verdict, _) = call(
        &node,
        Some(ADMIN_TOKEN),
        Method::GET,
        "/v1/audit/verify",
        None,
        &[],
    )
    .await;
    assert_eq!(verdict["valid"], true, "{verdict}");
    node.stop().await.unwrap();
}

/// A DID in a query or path segment (did:knoop ids are letters, digits and colons).
fn enc(s: &str) -> String {
    s.replace(':', "%3A")
}
