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

/// A VC 1.1 presentation JWT by `holder` (on `node`) of `credentials` for `audience` (the
/// assertion of an RFC 7523 token request).
async fn presentation_jwt(
    node: &Node,
    holder: &str,
    credentials: &[Value],
    audience: &str,
) -> String {
    let (code, vp) = node
        .post(
            "/v1/presentations",
            &json!({"holder": holder, "credentials": credentials, "domain": audience,
                    "format": "jwt", "ttl_s": 120}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{vp}");
    let jwt = vp["presentation"]
        .as_str()
        .expect("a compact JWS")
        .to_owned();
    // Signed with the holder's P-256 key: ES256, as the national guide's catalog asks.
    use base64::Engine;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256", "{header}");
    assert_eq!(header["kid"], format!("{holder}#es256-1"), "{header}");
    jwt
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
    at.introspect("/oauth2/introspect", token).await
}

/// Runs `script` (relative to the repository) with python3 and `args`; its stdout, which must
/// be a success.
fn python(script: &str, args: &[&str]) -> Vec<u8> {
    let run = python_run(script, args);
    assert!(
        run.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    run.stdout
}

fn python_run(script: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("python3")
        .arg(knoop_e2e::repo_root().join(script))
        .args(args)
        .output()
        .expect("python3 runs (with authlib, joserfc, requests: .ci/run installs them)")
}

/// The public API base URL of `node`.
async fn public_url(node: &Node) -> String {
    node.status().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs the client `script` (`BASE_URL PRESENTATION_FILE PATIENT`) with a fresh presentation JWT
/// of `holder`'s `credentials` until the consent has reached the holder node (until then the
/// client fails with `access_denied`); its JSON output.
async fn client_after_consent(
    script: &str,
    node: &Node,
    holder: &str,
    credentials: &[Value],
    public: &str,
    patient: &str,
) -> Value {
    let t0 = Instant::now();
    loop {
        let vp = presentation_jwt(node, holder, credentials, public).await;
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), vp).unwrap();
        let path = file.path().display().to_string();
        let run = python_run(script, &[public, &path, patient]);
        if run.status.success() {
            return serde_json::from_slice(&run.stdout).unwrap();
        }
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            err.contains("access_denied") && t0.elapsed() < Duration::from_secs(45),
            "{script} failed: {err}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A Dezi stand-in (`tests/dezi.py`): an RSA key set served over HTTPS by a test server, and
/// `DeziUserCredential`s made with it, issued as `did:web:abonnee.dezi.example`.
struct DeziStandIn {
    web: knoop_e2e::https::TestHttps,
    key_file: String,
    jku: String,
    _dir: tempfile::TempDir,
}

const DEZI: &str = "did:web:abonnee.dezi.example";

impl DeziStandIn {
    fn start() -> DeziStandIn {
        let web = knoop_e2e::https::TestHttps::start(Vec::new()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("dezi.json").display().to_string();
        web.set(
            "/jwks.json".into(),
            python("tests/dezi.py", &["keyset", &key_file]),
        );
        let jku = format!("https://localhost:{}/jwks.json", web.port());
        DeziStandIn {
            web,
            key_file,
            jku,
            _dir: dir,
        }
    }

    /// Node environment: trust the test server's CA and this key set.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "KNOOP_DID__WEB_CA_FILE".into(),
                self.web.ca_pem_path().display().to_string(),
            ),
            (
                "KNOOP_TRUST__DEZI_KEY_SETS".into(),
                format!("[\"{}\"]", self.jku),
            ),
        ]
    }

    /// A credential for organisation `ura` (about `subject`), its attestation naming `jku`.
    fn credential_at(&self, jku: &str, ura: &str, subject: &str) -> Value {
        let out = python(
            "tests/dezi.py",
            &["credential", &self.key_file, jku, DEZI, ura, subject],
        );
        serde_json::from_slice(&out).unwrap()
    }

    fn credential(&self, ura: &str, subject: &str) -> Value {
        self.credential_at(&self.jku, ura, subject)
    }

    /// Trusts the stand-in as an issuer of `DeziUserCredential` on `node`.
    async fn trust_on(&self, node: &Node) {
        let (code, body) = node
            .put(&format!("/v1/trust/DeziUserCredential/{DEZI}"), &json!({}))
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
}

/// `POST /v1/access-tokens` on `node`: `requester` asks the own authorization server of
/// `holder` for a medication-overview token for the test patient, presenting `credentials`.
async fn ask_holder(
    node: &Node,
    requester: &str,
    holder: &str,
    credentials: &Value,
) -> (u16, Value) {
    let body = json!({"requester": requester, "credentials": credentials, "holder": holder,
                      "scope": "medication-overview", "patient": {"value": BSN},
                      "purpose": "regular-care"});
    node.post("/v1/access-tokens", &body).await.unwrap()
}

/// [`ask_holder`] until the consent has reached the holder's node (refused with
/// `access_denied` until then); the token answer.
async fn token_after_consent(
    node: &Node,
    requester: &str,
    holder: &str,
    credentials: &Value,
) -> Value {
    let t0 = Instant::now();
    loop {
        let (code, body) = ask_holder(node, requester, holder, credentials).await;
        if code == 200 {
            return body;
        }
        assert!(
            body.to_string().contains("access_denied") && t0.elapsed() < Duration::from_secs(45),
            "{code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The patient consents, registered by the GP: medication, regular care, requesters that are
/// GPs.
async fn consent_to_gps(gp_node: &Node, gp: &str) {
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
}

/// Two nodes: the GP's (with the registry authority, the GP and its doctor, each credentialed)
/// and the hospital's; both organisations in every directory; the patient registered at the
/// hospital for medication and lab.
struct Care {
    net: Network,
    /// The registry authority (on the GP's node), trusted for organisation credentials.
    ra: String,
    gp: String,
    doctor: String,
    hospital: String,
    gp_cred: Value,
    doctor_cred: Value,
    patient: String,
}

async fn care() -> Care {
    care_with(Vec::new()).await
}

/// [`care`] with extra node environment.
async fn care_with(extra_env: Vec<(String, String)>) -> Care {
    care_each(extra_env.clone(), extra_env).await
}

/// [`care`] with extra environment for the GP's node and for the hospital's.
async fn care_each(gp_env: Vec<(String, String)>, hospital_env: Vec<(String, String)>) -> Care {
    let envs = [gp_env, hospital_env].map(|extra| {
        let mut env = knoop_e2e::privacy_env("opt-in");
        env.extend(extra);
        env
    });
    let net = Network::start_each(envs.into()).await.unwrap();
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
    Care {
        net,
        ra,
        gp,
        doctor,
        hospital,
        gp_cred,
        doctor_cred,
        patient,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_follow_consent_and_bind_requester_scope_and_patient() {
    let Care {
        net,
        gp,
        doctor,
        hospital,
        gp_cred,
        doctor_cred,
        patient,
        ..
    } = care().await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
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
    consent_to_gps(gp_node, &gp).await;
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
    // The national guide's introspection (GFI-006): iss the authorization server's DID, aud
    // the custodians', and the presented claims grouped by subject.
    let (_, node) = hospital_node.get("/v1/node").await.unwrap();
    assert_eq!(info["iss"], node["did"], "{info}");
    assert_eq!(info["aud"], json!([hospital]), "{info}");
    assert_eq!(info["token_type"], "Bearer");
    assert!(
        info["jti"]
            .as_str()
            .is_some_and(|j| j.starts_with("urn:uuid:")),
        "{info}"
    );
    assert!(info["iat"].as_u64().unwrap() < info["exp"].as_u64().unwrap());
    let org_claims = &info["assertions"][gp.as_str()];
    assert_eq!(
        org_claims["legalName"][0]["value"], "Huisarts Leiden",
        "{info}"
    );
    assert_eq!(org_claims["ura"][0]["value"], "70000001", "{info}");
    // And flat, as knooppunt's Nuts access policies name them for a policy enforcement point.
    for (claim, value) in [
        ("organization_ura", "70000001"),
        ("organization_name", "Huisarts Leiden"),
        ("user_id", "19012345601"),
        ("user_role", "01.015"),
        ("user_name", "Dr. A. Jansen"),
    ] {
        assert_eq!(info[claim], value, "{claim}: {info}");
    }
    let user_claims = &info["assertions"][doctor.as_str()];
    assert_eq!(user_claims["roleCode"][0]["value"], "01.015", "{info}");
    assert_eq!(user_claims["roleCode"][0]["iss"], gp.as_str(), "{info}");
    assert!(user_claims.get("id").is_none(), "{info}");
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

/// A standard OAuth2 client library (authlib, `tests/oauth_client.py`) gets a token from the
/// public API without workarounds, with the RFC 7523 grant (a presentation JWT for the
/// server's issuer URL): it finds the endpoint in the RFC 8414 metadata, its extra
/// parameters are ignored, errors carry RFC 6749 codes, answers are not cacheable, and the data
/// proxy takes a lower-case scheme and answers RFC 6750 challenges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_oauth_client_gets_a_token_without_workarounds() {
    let Care {
        net,
        gp,
        gp_cred,
        doctor_cred,
        patient,
        ..
    } = care().await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    let creds = [gp_cred, doctor_cred];
    consent_to_gps(gp_node, &gp).await;
    let public = public_url(hospital_node).await;
    let http = reqwest::Client::new();

    // Refusals with RFC 6749 codes, never cacheable.
    let refused = |form: Vec<(&'static str, String)>| {
        let req = http.post(format!("{public}/oauth2/token")).form(&form);
        async move {
            let resp = req.send().await.unwrap();
            let (code, cache) = (
                resp.status().as_u16(),
                resp.headers()
                    .get("cache-control")
                    .map(|v| v.to_str().unwrap().to_owned()),
            );
            let body: Value = resp.json().await.unwrap();
            (code, body["error"].as_str().unwrap_or("").to_owned(), cache)
        }
    };
    assert_eq!(
        refused(vec![("grant_type", "client_credentials".into())]).await,
        (
            400,
            "unsupported_grant_type".into(),
            Some("no-store".into())
        )
    );
    assert_eq!(
        refused(vec![(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:vp_token-bearer".into()
        )])
        .await
        .1,
        "invalid_request"
    );
    let resp = http
        .post(format!("{public}/oauth2/token"))
        .json(&json!({"grant_type": "urn:ietf:params:oauth:grant-type:vp_token-bearer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        400,
        "a JSON body is not a token request"
    );

    // The consent reaches the hospital's node: then authlib asks.
    let out = client_after_consent(
        "tests/oauth_client.py",
        gp_node,
        &gp,
        &creds,
        &public,
        &patient,
    )
    .await;
    assert_eq!(out["metadata"]["status"], 200, "{out}");
    assert_eq!(out["metadata"]["body"]["issuer"], public.as_str(), "{out}");
    assert_eq!(out["token"]["token_type"], "Bearer", "{out}");
    assert_eq!(out["token"]["scope"], "medication-overview", "{out}");
    assert_eq!(out["replay"], "invalid_grant", "{out}");
    assert_eq!(out["client_credentials"], "unsupported_grant_type", "{out}");
    // A lower-case scheme is a bearer token all the same (the source is not configured here,
    // so the Bundle holds the holder's OperationOutcome).
    assert_eq!(out["medication"]["status"], 200, "{out}");
    assert_eq!(out["medication"]["type"], "Bundle", "{out}");
    assert_eq!(out["condition"]["status"], 403, "{out}");
    assert!(
        out["condition"]["www_authenticate"]
            .as_str()
            .is_some_and(|h| h.contains("error=\"insufficient_scope\"")),
        "{out}"
    );
    assert_eq!(out["no_token"]["status"], 401, "{out}");
    assert!(
        out["no_token"]["www_authenticate"]
            .as_str()
            .is_some_and(|h| h.starts_with("Bearer") && !h.contains("error=")),
        "{out}"
    );
}

/// DPoP (RFC 9449) with a client made of outside libraries (`tests/dpop_client.py`: joserfc
/// proofs, authlib's token request): the server asks for its nonce, binds the token to the
/// client's key (`cnf.jkt` is joserfc's thumbprint of it), and the data proxy serves only a
/// fresh proof by that key for that request with that token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_binds_tokens_to_the_clients_key() {
    let Care {
        net,
        gp,
        gp_cred,
        doctor_cred,
        patient,
        ..
    } = care().await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    let creds = [gp_cred, doctor_cred];
    consent_to_gps(gp_node, &gp).await;
    let public = public_url(hospital_node).await;
    let out = client_after_consent(
        "tests/dpop_client.py",
        gp_node,
        &gp,
        &creds,
        &public,
        &patient,
    )
    .await;
    assert_eq!(out["without_nonce"]["status"], 400, "{out}");
    assert_eq!(out["without_nonce"]["error"], "use_dpop_nonce", "{out}");
    assert_eq!(out["without_nonce"]["nonce"], true, "{out}");
    assert_eq!(out["token"]["token_type"], "DPoP", "{out}");
    let token = out["token"]["access_token"].as_str().unwrap();
    let seen = introspect(hospital_node, token).await;
    assert_eq!(seen["token_type"], "DPoP", "{seen}");
    assert_eq!(seen["cnf"]["jkt"], out["jkt"], "{seen}");

    assert_eq!(out["good"]["status"], 200, "{out}");
    assert_eq!(out["good"]["type"], "Bundle", "{out}");
    assert_eq!(out["again"]["status"], 200, "a second fresh proof: {out}");
    let refused = |case: &str, code: &str| {
        let a = &out[case];
        assert_eq!(a["status"], 401, "{case}: {out}");
        assert_eq!(a["type"], "OperationOutcome", "{case}: {out}");
        let h = a["www_authenticate"].as_str().unwrap_or_default();
        assert!(
            h.contains(&format!("error=\"{code}\"")),
            "{case}: want {code}: {out}"
        );
    };
    refused("replayed", "invalid_dpop_proof");
    refused("as_bearer", "invalid_token");
    refused("no_proof", "invalid_dpop_proof");
    refused("other_url", "invalid_dpop_proof");
    refused("other_method", "invalid_dpop_proof");
    refused("other_key", "invalid_token");
    refused("no_ath", "invalid_dpop_proof");
    refused("alg_none", "invalid_dpop_proof");
    refused("stale_nonce", "use_dpop_nonce");
}

/// RFC 7523 (the national guide's GFI-004): the assertion is a presentation JWT for this
/// server, used once; a client assertion authenticates the software that asks (here the GP's
/// EHR vendor, a DID of its own) and shows in introspection as `client_id`. Each refusal has its
/// RFC 6749 code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_7523_assertions_and_client_assertions() {
    let Care {
        net,
        gp,
        doctor,
        hospital,
        gp_cred,
        doctor_cred,
        patient,
        ..
    } = care().await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    let creds = [gp_cred, doctor_cred];
    consent_to_gps(gp_node, &gp).await;
    let vendor = create_did(gp_node).await;
    let public = public_url(hospital_node).await;
    let token_url = format!("{public}/oauth2/token");
    let http = reqwest::Client::new();
    let ask = |assertion: String, client: Option<(String, &'static str)>| {
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion),
            ("scope", "medication-overview".to_owned()),
            ("patient", patient.clone()),
            ("purpose", "regular-care".to_owned()),
        ];
        if let Some((jwt, kind)) = client {
            form.push(("client_assertion", jwt));
            form.push(("client_assertion_type", kind.to_owned()));
        }
        let req = http.post(&token_url).form(&form);
        async move {
            let resp = req.send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap())
        }
    };
    const CLIENT_JWT: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    // Wait for the consent to reach the hospital's node.
    let t0 = Instant::now();
    let (vp, granted) = loop {
        let vp = presentation_jwt(gp_node, &gp, &creds, &public).await;
        let client = presentation_jwt(gp_node, &vendor, &[], &token_url).await;
        let (code, body) = ask(vp.clone(), Some((client, CLIENT_JWT))).await;
        if code == 200 {
            break (vp, body);
        }
        assert!(
            body["error"] == "access_denied" && t0.elapsed() < Duration::from_secs(45),
            "{code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let seen = introspect(hospital_node, granted["access_token"].as_str().unwrap()).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["client_id"], vendor.as_str(), "{seen}");
    assert_eq!(seen["sub"], doctor.as_str(), "{seen}");
    assert!(seen["assertions"][&gp].is_object(), "{seen}");
    assert!(seen["client_assertions"].is_object(), "{seen}");

    // Introspection on the public API (GFI-006), for resource servers outside the node: the
    // custodian (the hospital, a holder of the grant) authenticates with a client assertion.
    let access = granted["access_token"].as_str().unwrap().to_owned();
    let introspect_url = format!("{public}/oauth2/introspect");
    let outside = |assertion: Option<String>| {
        let mut form = vec![("token", access.clone())];
        if let Some(a) = assertion {
            form.push(("client_assertion", a));
            form.push(("client_assertion_type", CLIENT_JWT.to_owned()));
        }
        let req = http.post(&introspect_url).form(&form);
        async move {
            let resp = req.send().await.unwrap();
            let code = resp.status().as_u16();
            let cache = resp.headers().get("cache-control").cloned();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(cache.unwrap(), "no-store", "{body}");
            (code, body)
        }
    };
    let custodian = presentation_jwt(hospital_node, &hospital, &[], &introspect_url).await;
    let (code, by_custodian) = outside(Some(custodian.clone())).await;
    assert_eq!(code, 200, "{by_custodian}");
    assert_eq!(by_custodian["active"], true, "{by_custodian}");
    assert_eq!(by_custodian["aud"], json!([hospital]), "{by_custodian}");
    assert_eq!(by_custodian["iss"], seen["iss"], "{by_custodian}");
    assert_eq!(by_custodian["client_id"], vendor.as_str(), "{by_custodian}");
    assert_eq!(
        by_custodian["assertions"], seen["assertions"],
        "{by_custodian}"
    );
    // Someone else's resource server learns nothing about it.
    let stranger = presentation_jwt(gp_node, &vendor, &[], &introspect_url).await;
    let (code, by_stranger) = outside(Some(stranger)).await;
    assert_eq!((code, by_stranger.clone()), (200, json!({"active": false})));
    let (code, body) = outside(None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let (code, body) = outside(Some(custodian)).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid_client")),
        "replayed: {body}"
    );

    // Refusals.
    let (code, body) = ask(vp, None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "replay: {body}"
    );
    let other_aud = presentation_jwt(gp_node, &gp, &creds, "https://elsewhere.example").await;
    let (code, body) = ask(other_aud, None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("audience_mismatch"),
        "{body}"
    );
    let fresh = || presentation_jwt(gp_node, &gp, &creds, &public);
    let client = presentation_jwt(gp_node, &vendor, &[], &token_url).await;
    let (code, body) = ask(fresh().await, Some((client, "urn:example:other"))).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let client_elsewhere =
        presentation_jwt(gp_node, &vendor, &[], "https://elsewhere.example").await;
    let (code, body) = ask(fresh().await, Some((client_elsewhere, CLIENT_JWT))).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let (code, body) = ask("not.a.jwt".into(), None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // The hospital's own authorization server (GFI-004: one per organisation), found through
    // RFC 8414 §3.1 metadata: its tokens cover the hospital's data only.
    let id = &hospital["did:knoop:".len()..];
    let meta: Value = http
        .get(format!(
            "{public}/.well-known/oauth-authorization-server/oauth2/{id}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant_issuer = format!("{public}/oauth2/{id}");
    assert_eq!(meta["issuer"], tenant_issuer.as_str(), "{meta}");
    let tenant_token = meta["token_endpoint"].as_str().unwrap().to_owned();
    assert_eq!(tenant_token, format!("{tenant_issuer}/token"));
    let ask_at = |url: String, assertion: String| {
        let form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion),
            ("scope", "medication-overview".to_owned()),
            ("patient", patient.clone()),
            ("purpose", "regular-care".to_owned()),
        ];
        let req = http.post(url).form(&form);
        async move {
            let resp = req.send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap())
        }
    };
    let for_tenant = presentation_jwt(gp_node, &gp, &creds, &tenant_issuer).await;
    let (code, body) = ask_at(tenant_token.clone(), for_tenant).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["holdings"],
        json!([[hospital, ["medication"]]]),
        "{body}"
    );
    // An assertion for the organisation's server is not one for the node's, and no other
    // organisation has a server here.
    let for_tenant = presentation_jwt(gp_node, &gp, &creds, &tenant_issuer).await;
    let (code, body) = ask(for_tenant, None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    for other in [&gp["did:knoop:".len()..], "nope", "x/../y"] {
        let (code, body) = ask_at(format!("{public}/oauth2/{other}/token"), fresh().await).await;
        assert_eq!(code, 404, "{other}: {body}");
    }

    // A JSON presentation is not an RFC 7523 assertion.
    let json_vp = presentation(gp_node, hospital_node, &gp, &creds).await;
    let (code, body) = ask(json_vp.to_string(), None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

/// An EHR outside knoop (`tests/outside_ehr.py`): its organisation is a did:web on a test HTTPS
/// server with its own P-256 key, its organisation credential comes from the network's registry
/// authority, and it issues its professional's credential itself as an ES256 `vc+jwt`. With only
/// the standards (RFC 7523, RFC 9449) it gets a DPoP-bound token from the hospital's node and
/// fetches data; the token without its proof is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ehr_outside_knoop_gets_a_dpop_token_with_its_did_web() {
    let web = knoop_e2e::https::TestHttps::start(Vec::new()).unwrap();
    let Care {
        net,
        ra,
        gp,
        patient,
        ..
    } = care_with(vec![(
        "KNOOP_DID__WEB_CA_FILE".into(),
        web.ca_pem_path().display().to_string(),
    )])
    .await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.json");
    let did = format!("did:web:localhost%3A{}:ehr", web.port());
    let key_file = key_file.display().to_string();
    web.set(
        "/ehr/did.json".into(),
        python("tests/outside_ehr.py", &["keygen", &key_file, &did]),
    );

    let org_cred = issue(gp_node, json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
        "subject": {"id": did, "legalName": "Huisartsenpost Buiten", "city": "Zwolle", "organizationType": "gp", "ura": "70000099"}})).await;
    let org_file = dir.path().join("org.json");
    std::fs::write(&org_file, org_cred.to_string()).unwrap();
    consent_to_gps(gp_node, &gp).await;
    let public = public_url(hospital_node).await;
    let t0 = Instant::now();
    let out = loop {
        let org_file = org_file.display().to_string();
        let out: Value = serde_json::from_slice(&python(
            "tests/outside_ehr.py",
            &["fetch", &public, &key_file, &did, &org_file, &patient],
        ))
        .unwrap();
        if out["token"]["status"] == 200 {
            break out;
        }
        // Until the organisation credential and the consent reach the hospital's node.
        assert!(t0.elapsed() < Duration::from_secs(45), "{out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(out["token"]["body"]["token_type"], "DPoP", "{out}");
    assert_eq!(out["data"]["status"], 200, "{out}");
    assert_eq!(out["data"]["type"], "Bundle", "{out}");
    assert_eq!(out["stolen"]["status"], 401, "{out}");
    assert!(
        out["stolen"]["www_authenticate"]
            .as_str()
            .is_some_and(|h| h.starts_with("DPoP") && h.contains("invalid_token")),
        "{out}"
    );
    let seen = introspect(
        hospital_node,
        out["token"]["body"]["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(seen["client_id"], did.as_str(), "{seen}");
    assert_eq!(seen["sub"], out["doctor"], "{seen}");
    assert!(seen["cnf"]["jkt"].is_string(), "{seen}");
    assert!(seen["assertions"][&did]["ura"].is_array(), "{seen}");
}

/// The EHR side (`POST /v1/access-tokens`, `POST /v1/dpop-proofs`): the GP's node asks the
/// hospital's own authorization server (found from the hospital's DID) for a DPoP-bound token
/// with RFC 7523, keeps the key, and makes the proofs the EHR sends with each data call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ehr_gets_tokens_and_proofs_through_its_node() {
    let Care {
        net,
        gp,
        hospital,
        gp_cred,
        doctor_cred,
        ..
    } = care().await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    let creds = json!([gp_cred, doctor_cred]);
    consent_to_gps(gp_node, &gp).await;
    let public = public_url(hospital_node).await;
    let ask = |extra: Value| {
        let mut body = json!({"requester": gp, "credentials": creds, "scope": "medication-overview",
                              "patient": {"value": BSN}, "purpose": "regular-care"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        async move { gp_node.post("/v1/access-tokens", &body).await.unwrap() }
    };
    let t0 = Instant::now();
    let token = loop {
        let (code, body) = ask(json!({"holder": hospital})).await;
        if code == 200 {
            break body;
        }
        assert!(
            code == 403
                && body.to_string().contains("access_denied")
                && t0.elapsed() < Duration::from_secs(45),
            "{code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let id = &hospital["did:knoop:".len()..];
    assert_eq!(token["issuer"], format!("{public}/oauth2/{id}"), "{token}");
    assert_eq!(token["token_type"], "DPoP", "{token}");
    assert_eq!(
        token["response"]["holdings"],
        json!([[hospital, ["medication"]]]),
        "{token}"
    );
    let kid = token["dpop_kid"].as_str().unwrap();
    let access = token["access_token"].as_str().unwrap();
    let url = format!("{public}/fhir/MedicationStatement");
    let proof = |kid: &str| {
        let body = json!({"dpop_kid": kid, "method": "get", "url": url, "access_token": access});
        async move { gp_node.post("/v1/dpop-proofs", &body).await.unwrap() }
    };
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let (code, p) = proof(kid).await;
        assert_eq!(code, 200, "{p}");
        let r = http
            .get(&url)
            .header("Authorization", format!("DPoP {access}"))
            .header("DPoP", p["dpop"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["resourceType"], "Bundle");
    }
    let (code, _) = proof("no-such-key").await;
    assert_eq!(code, 404);

    // The node's own server (the issuer given as a URL) works as well.
    let (code, body) = ask(json!({"issuer": public})).await;
    assert_eq!(code, 200, "{body}");
    // Refusals of the server come back with its RFC 6749 error; bad requests are 400; a server
    // that cannot be reached is a 502.
    let (code, body) = ask(json!({"holder": hospital, "scope": "nope"})).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.to_string().contains("invalid_scope"), "{body}");
    for bad in [
        json!({"holder": hospital, "issuer": public}),
        json!({}),
        json!({"issuer": public, "params": {"grant_type": "client_credentials"}}),
        json!({"holder": "did:knoop:NotHere"}),
    ] {
        let (code, body) = ask(bad.clone()).await;
        assert_eq!(code, 400, "{bad}: {body}");
    }
    let (code, body) = ask(json!({"issuer": "https://127.0.0.1:1"})).await;
    assert_eq!(code, 502, "{body}");
}

/// The professional's identity from Dezi (the national login for care professionals): a
/// `DeziUserCredential` wrapping an RS256 attestation (`tests/dezi.py`, joserfc) whose key set is
/// served over HTTPS and trusted by config, bound to the organisation by its URA. The hospital's
/// node grants a token to the GP's organisation for that professional; an attestation for
/// another URA, or from a key set the node does not trust, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dezi_attestation_identifies_the_professional() {
    let dezi = DeziStandIn::start();
    let Care {
        net,
        gp,
        hospital,
        gp_cred,
        ..
    } = care_with(dezi.env()).await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    dezi.trust_on(hospital_node).await;
    consent_to_gps(gp_node, &gp).await;
    let good = dezi.credential("70000001", &gp);
    let token = token_after_consent(gp_node, &gp, &hospital, &json!([gp_cred, good])).await;
    let seen = introspect(hospital_node, token["access_token"].as_str().unwrap()).await;
    assert_eq!(
        seen["sub"], "urn:oid:2.16.528.1.1007.3.1:900000009",
        "{seen}"
    );
    assert_eq!(
        seen["assertions"][&gp]["employee"][0]["value"]["surname"], "Jansen",
        "{seen}"
    );
    // knooppunt's call of the Nuts node API with the user's Dezi ID token (the attestation
    // JWT itself), for a workflow scope (the Nuts API names no patient): the node wraps it in
    // a DeziUserCredential, and the professional is the attestation's.
    let issuer = format!(
        "{}/oauth2/{}",
        public_url(hospital_node).await,
        hospital.strip_prefix("did:knoop:").unwrap()
    );
    let (code, t) = gp_node
        .post(
            &format!("/nuts/auth/v2/{gp}/request-service-access-token"),
            &json!({"authorization_server": issuer, "scope": "eOverdracht-sender",
                    "credentials": [gp_cred], "id_token": good["proof"]["jwt"]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{t}");
    let nuts = hospital_node
        .introspect(
            "/nuts/auth/v2/accesstoken/introspect",
            t["access_token"].as_str().unwrap(),
        )
        .await;
    for (claim, value) in [
        ("organization_ura", "70000001"),
        ("user_id", "900000009"),
        ("user_role", "01.015"),
        ("user_surname", "Jansen"),
        ("sub", "urn:oid:2.16.528.1.1007.3.1:900000009"),
    ] {
        assert_eq!(nuts[claim], value, "{claim}: {nuts}");
    }
    // Another organisation's attestation, and one signed under a key set nobody trusts.
    for (what, cred) in [
        ("other URA", dezi.credential("70000002", &gp)),
        (
            "untrusted key set",
            dezi.credential_at("https://localhost:1/jwks.json", "70000001", &gp),
        ),
    ] {
        let (code, body) = ask_holder(gp_node, &gp, &hospital, &json!([gp_cred, cred])).await;
        assert_eq!(code, 403, "{what}: {body}");
        assert!(body.to_string().contains("invalid_grant"), "{what}: {body}");
    }
}

/// The national guide's identities end to end: the organisation proves itself with an
/// `X509Credential` (issued by a `did:x509` of its UZI-shaped server certificate, chain in
/// `x5c`, the URA in the certificate's `otherName`) and the professional with a Dezi attestation
/// for that URA. The hospital's node, trusting the certificate's CA and the Dezi key set, grants
/// the token; a certificate of a CA it does not trust is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x509_organisation_and_a_dezi_professional_get_a_token() {
    use base64::Engine;
    use p256::pkcs8::EncodePrivateKey;
    use sha2::Digest;
    let dezi = DeziStandIn::start();
    let Care {
        net, gp, hospital, ..
    } = care_with(dezi.env()).await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    const UZI: &str = "2.16.528.1.1007.99.2110-1-900000001-S-70000001-00.000-00000000";

    // A UZI-shaped chain and the X509Credential its leaf issues to the GP's organisation.
    let x509_credential = |gp: &str| {
        let root_key = rcgen::KeyPair::generate().unwrap();
        let mut root = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        root.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        root.distinguished_name
            .push(rcgen::DnType::CommonName, "Test UZI root CA");
        let root = root.self_signed(&root_key).unwrap();
        let leaf_secret = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let pkcs8 = leaf_secret.to_pkcs8_der().unwrap();
        let leaf_key = rcgen::KeyPair::try_from(pkcs8.as_bytes()).unwrap();
        let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Huisarts Leiden");
        leaf.distinguished_name
            .push(rcgen::DnType::LocalityName, "Leiden");
        leaf.subject_alt_names
            .push(rcgen::SanType::OtherName((vec![2, 5, 5, 5], UZI.into())));
        let leaf = leaf.signed_by(&leaf_key, &root, &root_key).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let fp = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(root.der()));
        let did = format!(
            "did:x509:0:sha256:{fp}::san:otherName:{UZI}::subject:O:Huisarts%20Leiden:L:Leiden"
        );
        let mut header = serde_json::Map::new();
        header.insert("kid".into(), format!("{did}#0").into());
        header.insert("typ".into(), "JWT".into());
        header.insert(
            "x5c".into(),
            json!([b64.encode(leaf.der()), b64.encode(root.der())]),
        );
        let now = (knoop_gossip::tx::now_ms() / 1000) as i64 - 60;
        let claims = json!({
            "iss": did, "sub": gp, "jti": "urn:uuid:6c2b5c55-0000-4000-8000-000000000001",
            "nbf": now, "iat": now,
            "vc": {
                "@context": ["https://www.w3.org/2018/credentials/v1", "https://nuts.nl/credentials/v1"],
                "type": ["VerifiableCredential", "X509Credential"],
                "credentialSubject": {"id": gp, "subject": {"O": "Huisarts Leiden", "L": "Leiden"},
                                      "san": {"otherName": UZI}},
            },
        });
        let jwt = knoop_vc::jws::SigningKey::P256(leaf_secret)
            .sign_compact(header, claims.to_string().as_bytes());
        (format!("did:x509:0:sha256:{fp}"), Value::String(jwt))
    };
    let (ca, org_vc) = x509_credential(&gp);
    for (t, issuer) in [
        ("X509Credential", ca.as_str()),
        ("DeziUserCredential", DEZI),
    ] {
        let (code, body) = hospital_node
            .put(&format!("/v1/trust/{t}/{issuer}"), &json!({}))
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    consent_to_gps(gp_node, &gp).await;
    let dezi_cred = dezi.credential("70000001", &gp);
    let token = token_after_consent(gp_node, &gp, &hospital, &json!([org_vc, dezi_cred])).await;
    let seen = introspect(hospital_node, token["access_token"].as_str().unwrap()).await;
    assert_eq!(seen["client_id"], gp.as_str(), "{seen}");
    assert_eq!(
        seen["sub"], "urn:oid:2.16.528.1.1007.3.1:900000009",
        "{seen}"
    );
    assert_eq!(
        seen["assertions"][&gp]["san"][0]["value"]["otherName"], UZI,
        "{seen}"
    );
    assert_eq!(
        seen["assertions"][&gp]["san"][0]["iss"],
        org_vc_issuer(&org_vc),
        "{seen}"
    );
    // Flat claims from the certificate's subject and the Dezi attestation.
    for (claim, value) in [
        ("organization_ura", "70000001"),
        ("organization_name", "Huisarts Leiden"),
        ("organization_city", "Leiden"),
        ("user_id", "900000009"),
        ("user_role", "01.015"),
        ("user_initials", "B.B."),
        ("user_surname_prefix", "van der"),
        ("user_surname", "Jansen"),
    ] {
        assert_eq!(seen[claim], value, "{claim}: {seen}");
    }
    // A certificate of another CA is not trusted.
    let (_, other_vc) = x509_credential(&gp);
    let (code, body) = ask_holder(gp_node, &gp, &hospital, &json!([other_vc, dezi_cred])).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.to_string().contains("untrusted_issuer"), "{body}");
}

/// The `iss` of a JWT credential.
fn org_vc_issuer(jwt: &Value) -> String {
    use base64::Engine;
    let payload = jwt.as_str().unwrap().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["iss"].as_str().unwrap().to_owned()
}

/// Nuts RFC021 (`tests/rfc021_client.py`, a client outside knoop): the organisation is a did:web
/// with its own key, holding an organisation credential from the network's registry authority
/// and a Dezi credential, both about itself; it reads the scope's presentation definition, answers
/// it with a presentation submission, and gets a token with `vp_token-bearer`. A replayed
/// assertion and a submission that maps the wrong credentials are `invalid_request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nuts_rfc021_client_gets_a_token() {
    let dezi = DeziStandIn::start();
    let web = &dezi.web;
    let dir = tempfile::tempdir().unwrap();
    let py = python;
    let org_key = dir.path().join("org.json").display().to_string();
    let did = format!("did:web:localhost%3A{}:ehr", web.port());
    web.set(
        "/ehr/did.json".into(),
        py("tests/outside_ehr.py", &["keygen", &org_key, &did]),
    );
    let Care {
        net,
        ra,
        gp,
        patient,
        ..
    } = care_with(dezi.env()).await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    dezi.trust_on(hospital_node).await;
    let org_cred = issue(gp_node, json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
        "subject": {"id": did, "legalName": "Huisartsenpost Buiten", "city": "Zwolle", "organizationType": "gp", "ura": "70000099"}})).await;
    let org_file = dir.path().join("org-cred.json");
    std::fs::write(&org_file, org_cred.to_string()).unwrap();
    let dezi_file = dir.path().join("dezi-cred.json");
    std::fs::write(&dezi_file, dezi.credential("70000099", &did).to_string()).unwrap();
    consent_to_gps(gp_node, &gp).await;
    let public = public_url(hospital_node).await;
    let t0 = Instant::now();
    let out = loop {
        let out: Value = serde_json::from_slice(&py(
            "tests/rfc021_client.py",
            &[
                &public,
                &org_key,
                &did,
                &org_file.display().to_string(),
                &dezi_file.display().to_string(),
                &patient,
            ],
        ))
        .unwrap();
        if out["token"]["status"] == 200 {
            break out;
        }
        assert!(t0.elapsed() < Duration::from_secs(45), "{out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(out["definition_id"], "medication-overview", "{out}");
    assert_eq!(
        out["descriptors"],
        json!(["organization", "professional"]),
        "{out}"
    );
    let seen = introspect(
        hospital_node,
        out["token"]["body"]["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(seen["client_id"], did.as_str(), "{seen}");
    assert_eq!(
        seen["sub"], "urn:oid:2.16.528.1.1007.3.1:900000009",
        "{seen}"
    );
    for case in ["replay", "swapped"] {
        assert_eq!(out[case]["status"], 400, "{case}: {out}");
        assert_eq!(
            out[case]["body"]["error"], "invalid_request",
            "{case}: {out}"
        );
    }
}

/// `tokens.require_dpop`: a node that issues no bearer tokens refuses a request without a DPoP
/// proof (`invalid_dpop_proof`) and grants one with a proof (the EHR's node always sends one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_requires_dpop_issues_no_bearer_tokens() {
    let Care {
        net,
        gp,
        hospital,
        gp_cred,
        doctor_cred,
        patient,
        ..
    } = care_with(vec![("KNOOP_TOKENS__REQUIRE_DPOP".into(), "true".into())]).await;
    let (gp_node, hospital_node) = (&net.nodes[0], &net.nodes[1]);
    let creds = [gp_cred, doctor_cred];
    consent_to_gps(gp_node, &gp).await;
    let public = public_url(hospital_node).await;
    let vp = presentation_jwt(gp_node, &gp, &creds, &public).await;
    let resp = reqwest::Client::new()
        .post(format!("{public}/oauth2/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", vp.as_str()),
            ("scope", "medication-overview"),
            ("patient", patient.as_str()),
            ("purpose", "regular-care"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    let token = token_after_consent(gp_node, &gp, &hospital, &json!(creds)).await;
    assert_eq!(token["token_type"], "DPoP", "{token}");
}

/// The hospital's node runs as two replicas on one PostgreSQL database (`specs/storage.md`
/// §9.6). A token the leader gave out is honoured by the standby once it has taken over from the
/// killed leader (no client sees its token as unknown), and a replay of a DPoP proof the leader
/// saw is refused by the standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_given_out_before_a_failover_is_honoured_after_it() {
    let db = knoop_e2e::postgres::fresh_database();
    let replica_env: Vec<(String, String)> = [
        ("KNOOP_STORE__POSTGRES", db.clone()),
        ("KNOOP_KEYS__MASTER_KEY", "5e".repeat(32)),
        ("KNOOP_STORE__LEASE", "2s".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let Care {
        mut net,
        gp,
        hospital,
        gp_cred,
        doctor_cred,
        ..
    } = care_each(Vec::new(), replica_env).await;
    consent_to_gps(&net.nodes[0], &gp).await;
    let public = public_url(&net.nodes[1]).await;
    let mut leader = net.nodes.remove(1);
    let body = json!({"requester": gp, "credentials": [gp_cred, doctor_cred],
        "scope": "medication-overview", "patient": {"value": BSN}, "purpose": "regular-care",
        "holder": hospital});
    let t0 = Instant::now();
    let token = loop {
        let (code, v) = net.nodes[0].post("/v1/access-tokens", &body).await.unwrap();
        if code == 200 {
            break v;
        }
        assert!(
            code == 403 && t0.elapsed() < Duration::from_secs(45),
            "{code} {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let kid = token["dpop_kid"].as_str().unwrap().to_owned();
    let access = token["access_token"].as_str().unwrap().to_owned();
    let url = format!("{public}/fhir/MedicationStatement");
    let http = reqwest::Client::new();
    let proof = || {
        let (gp_node, url, access, kid) = (&net.nodes[0], &url, &access, &kid);
        async move {
            let req = json!({"dpop_kid": kid, "method": "get", "url": url, "access_token": access});
            let (code, p) = gp_node.post("/v1/dpop-proofs", &req).await.unwrap();
            assert_eq!(code, 200, "{p}");
            p["dpop"].as_str().unwrap().to_owned()
        }
    };
    let read = |proof: String| {
        let (url, access, http) = (&url, &access, &http);
        async move {
            let r = http
                .get(url)
                .header("Authorization", format!("DPoP {access}"))
                .header("DPoP", proof)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let used = proof().await;
    let (code, before) = read(used.clone()).await;
    assert_eq!(code, 200, "{before}");
    assert_eq!(before["resourceType"], "Bundle");

    // A standby replica of the hospital's node, with the same settings (the same public
    // address: behind one URL, as behind a vendor's load balancer).
    let leader_env = leader.env.clone();
    let dir = net.root.path().join("hospital-standby");
    let mut standby =
        Node::spawn_with_env("hospital-standby", &dir, &net.bootstrap(), leader_env).unwrap();
    let t0 = Instant::now();
    while !standby.log_text().contains("standing by") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{}",
            standby.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    leader.kill9().unwrap();
    standby.wait_up(Duration::from_secs(60)).await.unwrap();

    // The token works on the standby; the proof the leader saw does not work twice.
    let (code, replayed) = read(used).await;
    assert_eq!(code, 401, "a replayed DPoP proof was accepted: {replayed}");
    let (code, after) = read(proof().await).await;
    assert_eq!(
        code, 200,
        "the token the leader gave out is unknown after the failover: {after}"
    );
    assert_eq!(after["resourceType"], "Bundle");
    assert_eq!(after["total"], before["total"], "{after}");
}
