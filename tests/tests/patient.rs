//! The patient's own view (spec: `specs/patient-view.md`) over real processes: story 2's
//! network (the emergency department on the Veluwe and Mr De Groot's GP, pharmacy and
//! hospital, opt-in, his GP holding his consent for regular care only), a fifth node that is
//! the patient service, a real OpenID Connect provider (panva's oidc-provider from npm,
//! `testnet/idp/idp.mjs`) that gives the BSN as a claim, and Debian's headless Chromium
//! driven by Playwright through the patient page (`tests/patient/drive.mjs`).
//!
//! The emergency department breaks the glass for his medication and allergies. Mr De Groot
//! logs in on a phone-sized page and sees the three holders, the break-the-glass access with
//! its reason, and his consent with who registered it; he objects from the page; the next
//! emergency fetch gets nothing and his next view shows that refusal. Someone logged in as
//! another patient sees none of it; an ID token expired to the patient service (its clock runs
//! ahead), a made-up login callback, a guessed session and an outsider's forged request to a
//! holder are refused; no BSN is in any node's files afterwards.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use knoop_e2e::rogue::RoguePeer;
use knoop_e2e::Node;
use serde_json::{json, Value};

const CLIENT_ID: &str = "knoop-patient-service";
const CLIENT_SECRET: &str = "patient-service-test-secret-0123456789";
/// Another patient, known to the identity provider, holding nothing anywhere.
const OTHER_BSN: &str = "999911120";
const REASON: &str = "TIA, aphasic; CT angiography with contrast planned";
/// Debian's libfaketime (package `libfaketime`, installed by `.ci/run`).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The identity provider, stopped when dropped.
struct Idp(Child);

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_idp(port: u16, redirect_uri: &str) -> Idp {
    let accounts = json!({"degroot": PIETER, "jansen": OTHER_BSN}).to_string();
    let mut child = Command::new("node")
        .arg(knoop_e2e::repo_root().join("testnet/idp/idp.mjs"))
        .args([
            &port.to_string(),
            CLIENT_ID,
            CLIENT_SECRET,
            redirect_uri,
            &accounts,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs testnet/idp/idp.mjs (.ci/run installs it)");
    let stdout = child.stdout.take().expect("idp stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| l.trim() == "ready"));
    assert!(ready, "the identity provider did not start");
    Idp(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Logs in as `login` in the browser and reads the page (`mode`: `view` or `object`).
fn drive(page: &str, login: &str, mode: &str) -> Value {
    let shots = knoop_e2e::repo_root().join("target/patient-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let v = knoop_e2e::run_outside(
        Command::new("node")
            .arg(knoop_e2e::repo_root().join("tests/patient/drive.mjs"))
            .args([page, login, "any-password", mode])
            .arg(&shots),
    );
    assert!(v["failure"].is_null(), "the browser failed: {v:#}");
    v
}

fn public_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_sees_who_holds_and_who_looked_and_objects() {
    let mut w = world("opt-in", &VELUWE, &[]).await;
    let (ed, gp, pharmacy, hospital) = (0, 1, 2, 3);
    register_story_2_holders(&w).await;
    // At his GP he consented to sharing for regular care only: not in an emergency.
    let (code, c) = w
        .node(gp)
        .post(
            "/v1/consent",
            &json!({"issuer": w.orgs[gp].did, "patient": {"value": PIETER}, "decision": "permit",
                    "purpose": ["regular-care"], "dataCategories": ["medication", "allergies"],
                    "requesters": {"organizationTypes": ["gp"]},
                    "method": "written", "registrar": "dr. Visser"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{c}");
    let gp_consent = c["credential"]["id"].as_str().unwrap().to_owned();

    // The patient service: a fifth node with the provider's settings.
    let idp_port = free_port();
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let mut env = knoop_e2e::privacy_env("opt-in");
    env.extend(w.ca.public_env());
    env.extend([
        ("KNOOP_PATIENT_SERVICE__ISSUER".to_owned(), issuer.clone()),
        (
            "KNOOP_PATIENT_SERVICE__CLIENT_SECRET".to_owned(),
            CLIENT_SECRET.to_owned(),
        ),
    ]);
    let service_node = Node::start_with_env(
        "patients",
        &w.net.root.path().join("patients"),
        &w.net.bootstrap(),
        env,
    )
    .await
    .unwrap();
    let status = service_node.status().await.unwrap();
    let service = status["patient_service"].as_str().unwrap().to_owned();
    let public = status["public_url"].as_str().unwrap().to_owned();
    // The network's governance trusts it as a patient service, on every node; it trusts the
    // registry authority as every node does.
    for node in w.net.nodes.iter().chain([&service_node]) {
        trust(node, "PatientService", &service).await;
    }
    let registry = w.orgs[gp].credential["issuer"].as_str().unwrap().to_owned();
    trust(&service_node, "CareOrganizationCredential", &registry).await;
    // A second patient service whose clock runs seven minutes ahead (libfaketime; alone, off
    // the network): to it, every ID token the provider makes (valid five minutes) has expired.
    let mut late_env = knoop_e2e::privacy_env("opt-in");
    late_env.extend(w.ca.public_env());
    late_env.extend([
        ("KNOOP_PATIENT_SERVICE__ISSUER".to_owned(), issuer.clone()),
        (
            "KNOOP_PATIENT_SERVICE__CLIENT_SECRET".to_owned(),
            CLIENT_SECRET.to_owned(),
        ),
        ("LD_PRELOAD".to_owned(), FAKETIME.to_owned()),
        ("FAKETIME".to_owned(), "+420s".to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
    ]);
    let late_node = Node::start_with_env(
        "patients-late",
        &w.net.root.path().join("patients-late"),
        &[],
        late_env,
    )
    .await
    .unwrap();
    let late_public = late_node.status().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let _idp = start_idp(
        idp_port,
        &format!("{public}/patient/callback,{late_public}/patient/callback"),
    );
    let page = format!("{public}/patient/");

    // The emergency department breaks the glass for his medication and allergies.
    let v = w
        .fetch_until(
            "the glass broken at all three holders",
            ed,
            PIETER,
            "medication-overview",
            &["medication", "allergies"],
            "emergency",
            Some(REASON),
            |v| all_ok(v, 3),
        )
        .await;
    assert!(!resources(&v).is_empty(), "{v}");
    // The service knows the holders' DIDs before the patient looks (gossip).
    let holder_dids: Vec<String> = [gp, pharmacy, hospital]
        .iter()
        .map(|&o| w.orgs[o].did.clone())
        .collect();
    let t0 = Instant::now();
    loop {
        let (code, _) = service_node
            .get(&format!("/v1/dids/{}", holder_dids[2]))
            .await
            .unwrap();
        if code == 200 || t0.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // An expired ID token starts no session.
    let expired = drive(&format!("{late_public}/patient/"), "degroot", "view");
    assert_eq!(expired["error"], "login_failed", "{expired:#}");
    assert!(expired["view"].is_null() && expired["cookie"].is_null());
    let log = std::fs::read_to_string(late_node.dir.join("node.log")).unwrap();
    assert!(
        log.contains("the ID token is refused: expired"),
        "refused for its expiry: {log}"
    );

    // Without a session: the login section, and the view refused.
    let http = public_client();
    let r = http
        .get(format!("{public}/patient/api/view"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .get(format!("{public}/patient/api/view"))
        .header(
            "cookie",
            "knoop_patient=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "a guessed session");

    // Mr De Groot logs in and objects.
    let seen = drive(&page, "degroot", "object");
    assert_eq!(seen["before_login"]["login_visible"], true, "{seen:#}");
    assert_eq!(seen["provider_origin"], issuer.as_str());
    assert!(seen["error"].is_null(), "{seen:#}");
    let p = &seen["page"];
    // The three holders, by name.
    let orgs: Vec<&str> = p["holders"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["org"].as_str())
        .collect();
    for did in &holder_dids {
        assert!(orgs.contains(&did.as_str()), "{did} missing: {p:#}");
    }
    assert_eq!(orgs.len(), 3, "{p:#}");
    let texts = p["holders"].to_string();
    for name in [
        "Huisartsenpraktijk Assendorp",
        "Apotheek Zwolle-Zuid",
        "Ziekenhuis Zwolle",
    ] {
        assert!(texts.contains(name), "{name}: {texts}");
    }
    // The emergency department's break-the-glass access, with its reason, at every holder.
    let view = &seen["view"];
    let btg: Vec<&Value> = view["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["breakTheGlass"] == true)
        .collect();
    let btg_nodes: std::collections::BTreeSet<&str> = btg
        .iter()
        .filter_map(|a| a["holderNode"].as_str())
        .collect();
    assert_eq!(btg_nodes.len(), 3, "{view:#}");
    for a in &btg {
        assert_eq!(a["requester"]["did"], w.orgs[ed].did.as_str());
        assert_eq!(a["requester"]["name"], "Ziekenhuis Veluwe SEH");
        assert_eq!(a["reason"], REASON);
        assert_eq!(a["role"], "01.010");
        assert_eq!(a["purpose"], "emergency");
        assert_eq!(a["result"], "shared");
    }
    assert!(
        p["accesses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["btg"] == true && a["text"].as_str().unwrap().contains(REASON)),
        "the page shows the reason: {p:#}"
    );
    // What the professional's name was is not shown to the patient.
    assert!(!view.to_string().contains("Dr. S. Bos"), "{view:#}");
    // His consent, with who registered it.
    let consent = view["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == gp_consent.as_str())
        .unwrap_or_else(|| panic!("his GP's consent: {view:#}"));
    assert_eq!(consent["issuer"]["name"], "Huisartsenpraktijk Assendorp");
    assert_eq!(consent["decision"], "permit");
    assert_eq!(consent["registrar"], "dr. Visser");
    assert_eq!(consent["status"], "active");
    // The objection he registered on the page: issued by the service, method portal.
    let objection = seen["after_objection"]["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["decision"] == "deny")
        .cloned()
        .unwrap_or_else(|| panic!("{seen:#}"));
    assert_eq!(objection["issuer"], service.as_str());
    assert_eq!(objection["status"], "active");
    // The session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS, out of the script's reach.
    assert_eq!(
        seen["cookie"],
        json!({"httpOnly": true, "sameSite": "Lax", "secure": true, "path": "/patient"})
    );
    assert_eq!(seen["script_sees_cookie"], false);
    assert_eq!(seen["english_title"], "My data in the care network");
    assert_eq!(seen["english_html_lang"], "en");
    assert_eq!(seen["after_logout_status"], 401);
    // The accesses as FHIR: an outside library reads the Bundle with strict R4 models.
    assert_eq!(seen["fhir"]["type"], "application/fhir+json");
    let bundle = &seen["fhir"]["body"];
    assert_eq!(bundle["resourceType"], "Bundle");
    let checked = knoop_e2e::run_outside_with(
        Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
            .arg("-"),
        Some(bundle.to_string().as_bytes()),
    );
    assert!(
        checked["types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "AuditEvent"),
        "{checked}"
    );

    // The objection reaches the holders: the next emergency fetch gets nothing, glass or not.
    let v = w
        .fetch_until(
            "the objection holds",
            ed,
            PIETER,
            "medication-overview",
            &["medication", "allergies"],
            "emergency",
            Some(REASON),
            |v| resources(v).is_empty(),
        )
        .await;
    assert!(resources(&v).is_empty(), "{v}");
    // The pharmacy's node goes down. His next view shows the refusal, and the pharmacy as not
    // answering; he withdraws his objection.
    let pharmacy_node = node_did(w.node(pharmacy)).await;
    w.net.nodes[pharmacy].stop().await.unwrap();
    let again = drive(&page, "degroot", "withdraw");
    let down: Vec<&Value> = again["view"]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "unreachable")
        .collect();
    assert_eq!(down.len(), 1, "{:#}", again["view"]);
    assert_eq!(down[0]["node"], pharmacy_node.as_str());
    assert!(again["page"]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["status"] == "unreachable" && h["node"] == pharmacy_node.as_str()));
    assert!(again["fhir"]["body"]["entry"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["resource"]["resourceType"] == "OperationOutcome"
            && e["resource"]["issue"][0]["diagnostics"]
                .as_str()
                .is_some_and(|d| d.starts_with(pharmacy_node.as_str()))));
    assert!(again["after_withdrawal"]["consents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["decision"] == "deny" && c["status"] == "revoked"));
    let refused: Vec<&Value> = again["view"]["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["kind"] == "token"
                && a["result"] == "refused"
                && a["requester"]["did"] == w.orgs[ed].did.as_str()
        })
        .collect();
    assert!(!refused.is_empty(), "{:#}", again["view"]);
    // And his own earlier view, as each holder logged it.
    assert!(
        again["view"]["accesses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "patient" && a["byThisService"] == true),
        "{:#}",
        again["view"]
    );

    // Withdrawn: the emergency department may break the glass again (at the two holders up).
    let gp_node_did = node_did(w.node(gp)).await;
    let v = w
        .fetch_until(
            "the objection withdrawn",
            ed,
            PIETER,
            "medication-overview",
            &["medication", "allergies"],
            "emergency",
            Some(REASON),
            |v| status_of(v, &gp_node_did) == "ok" && !resources(v).is_empty(),
        )
        .await;
    assert!(!resources(&v).is_empty(), "{v}");

    // Another patient sees none of it.
    let other = drive(&page, "jansen", "view");
    assert_eq!(other["view"]["holders"], json!([]), "{other:#}");
    assert_eq!(other["view"]["accesses"], json!([]), "{other:#}");
    assert_eq!(other["view"]["consents"], json!([]), "{other:#}");
    assert_ne!(other["view"]["patient"], seen["view"]["patient"]);

    // A made-up callback starts no session; nor does a real login's state from a browser that
    // did not start that login (login CSRF), nor from the one that did with a code the provider
    // never gave, nor that once more (a state is used once).
    let sets_session = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap_or_default().starts_with("knoop_patient="))
    };
    let r = http
        .get(format!(
            "{public}/patient/callback?code=forged&state=forged"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(!sets_session(&r));
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        "/patient/?error=login_failed"
    );
    let r = http
        .get(format!("{public}/patient/login"))
        .send()
        .await
        .unwrap();
    let login_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        login_cookie.starts_with("knoop_patient_login=") && login_cookie.contains("HttpOnly"),
        "{login_cookie}"
    );
    let login_cookie = login_cookie.split(';').next().unwrap().to_owned();
    let to = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(to.as_str().starts_with(&issuer), "{to}");
    let state = to
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(to
        .query_pairs()
        .any(|(k, v)| k == "code_challenge_method" && v == "S256"));
    for browser_cookie in [None, Some(&login_cookie), Some(&login_cookie)] {
        let mut req = http.get(format!(
            "{public}/patient/callback?code=forged&state={state}"
        ));
        if let Some(c) = browser_cookie {
            req = req.header("cookie", c.as_str());
        }
        let r = req.send().await.unwrap();
        assert!(!sets_session(&r));
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            "/patient/?error=login_failed"
        );
    }
    // A change from another site is refused before anything else.
    let r = http
        .post(format!("{public}/patient/api/consents"))
        .header("origin", "https://evil.example")
        .json(&json!({"decision": "permit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // An outsider's forged request to a holder, naming the trusted service: refused, and
    // audited at the holder.
    let gp_node = w.node(gp);
    let mut rogue = RoguePeer::dial(&gp_node.p2p, "/knoop/id/1.0.0").unwrap();
    rogue.run_for(Duration::from_secs(2)).await;
    let forged_claims = json!({"iss": service, "aud": node_did(gp_node).await,
        "sub": seen["view"]["patient"], "iat": 1, "exp": 2, "jti": "x"});
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::prelude::BASE64_URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let statement = format!(
        "{}.{}.AAAA",
        b64(
            &json!({"alg": "EdDSA", "typ": "knoop-patient-request+jwt", "kid": format!("{service}#key-1")})
        ),
        b64(&forged_claims)
    );
    let request = cbor4ii::serde::to_vec(Vec::new(), &json!({"s": statement})).unwrap();
    assert!(rogue.ask_patient(request));
    let t0 = Instant::now();
    while rogue.patient_answers.is_empty() && t0.elapsed() < Duration::from_secs(15) {
        rogue.run_for(Duration::from_millis(300)).await;
    }
    let answer: Value =
        cbor4ii::serde::from_slice(rogue.patient_answers.first().expect("the holder answers"))
            .unwrap();
    assert_eq!(
        answer,
        json!({"x": "service_not_hosted_by_the_asking_node"}),
        "refused"
    );
    let (_, audit) = gp_node.get("/v1/audit?limit=10000").await.unwrap();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "patient"
                && e["outcome"] == "service_not_hosted_by_the_asking_node"
                && e["requester"] == service.as_str()),
        "the holder audits the refusal"
    );

    // No BSN in any node's files.
    for node in w.net.nodes.iter().chain([&service_node, &late_node]) {
        for bsn in [PIETER, OTHER_BSN] {
            let hits = knoop_e2e::files_containing(&node.dir, bsn.as_bytes());
            assert!(hits.is_empty(), "{bsn} found in {hits:?}");
        }
    }
}
