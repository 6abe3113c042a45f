//! Credential issuance over OpenID4VCI 1.0 (the national guide's GFI-002; spec:
//! `specs/oid4vci.md`), end to end over node processes, HTTPS with a throw-away CA and the real
//! FHIR source: a registry authority on one node offers credentials; an organisation's wallet on
//! another node receives them and presents them in a data fetch; a wallet outside knoop (the
//! OpenWallet Foundation's oid4vc-ts, `tests/oid4vc/wallet.mjs`) receives one for its did:jwk.

use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use knoop_e2e::care::*;
use serde_json::{json, Value};

const ANNA: &str = "999900109";

fn jwt_payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&BASE64_URL_SAFE_NO_PAD.decode(part).expect("base64url"))
        .expect("JSON claims")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_offered_received_and_presented_over_openid4vci() {
    let w = world("opt-out", &[LEIDEN_HOSPITAL, KERKRADE_GP], &[]).await;
    let (hospital, gp) = (0, 1);
    let ra = w.orgs[hospital].credential["issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ra_node, gp_node) = (w.node(hospital), w.node(gp));
    let gp_did = w.orgs[gp].did.clone();
    let hospital_node = node_did(ra_node).await;
    w.register(hospital, ANNA, &["medication", "allergies"])
        .await;

    // The GP's professional alone, without the organisation credential, gets nothing; nor does
    // its empty wallet help.
    let fetch = |wallet: bool| {
        let body = json!({"requester": gp_did, "credentials": [w.orgs[gp].professional],
            "wallet": wallet, "patient": {"value": ANNA}, "scope": "medication-overview",
            "categories": ["medication"], "purpose": "regular-care"});
        async move {
            let (code, v) = gp_node.post("/v1/data/fetch", &body).await.unwrap();
            assert_eq!(code, 200, "{v}");
            v
        }
    };
    let before = loop {
        let v = fetch(true).await;
        if status_of(&v, &hospital_node) != "absent" {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(status_of(&before, &hospital_node), "refused", "{before}");

    // The registry authority offers the GP its organisation credential (a VC 1.1 JWT, the
    // guide's catalog format), guarded by a transaction code.
    let claims = json!({"legalName": "Huisartsenpraktijk Kerkrade-West", "city": "Kerkrade",
                        "organizationType": "gp", "ura": "99990022"});
    let (code, offer) = ra_node
        .post(
            "/v1/credential-offers",
            &json!({"issuer": ra, "type": "CareOrganizationCredential", "subject": claims}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{offer}");
    let tx_code = offer["tx_code"].as_str().unwrap().to_owned();
    assert_eq!(tx_code.len(), 6, "{offer}");
    let by_reference = offer["offer_uri_url"].as_str().unwrap().to_owned();
    let by_value = offer["offer_url"].as_str().unwrap().to_owned();
    assert!(
        by_reference.starts_with("openid-credential-offer://?credential_offer_uri=https"),
        "{offer}"
    );
    assert_eq!(
        offer["credential_offer"]["credential_configuration_ids"],
        json!(["CareOrganizationCredential_jwt_vc_json"]),
        "{offer}"
    );

    let accept = |offer: &str, tx: Option<&str>| {
        let mut body = json!({"holder": gp_did, "offer": offer});
        if let Some(t) = tx {
            body["tx_code"] = json!(t);
        }
        async move { gp_node.post("/v1/wallet/offers", &body).await.unwrap() }
    };
    // Without the code, and with a wrong one, nothing.
    let (code, v) = accept(&by_reference, None).await;
    assert_eq!(
        (code, v["error"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    let wrong = if tx_code == "000000" {
        "000001"
    } else {
        "000000"
    };
    let (code, v) = accept(&by_reference, Some(wrong)).await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("invalid_grant"),
        "{v}"
    );

    let (code, held) = accept(&by_reference, Some(&tx_code)).await;
    assert_eq!(code, 201, "{held}");
    let jwt = held["credential"]
        .as_str()
        .expect("a jwt_vc_json credential");
    let payload = jwt_payload(jwt);
    assert_eq!(payload["iss"], ra.as_str(), "{payload}");
    assert_eq!(
        payload["sub"],
        gp_did.as_str(),
        "bound to the wallet's DID: {payload}"
    );
    assert_eq!(
        payload["vc"]["credentialSubject"]["legalName"],
        "Huisartsenpraktijk Kerkrade-West"
    );
    assert_eq!(
        payload["vc"]["credentialStatus"]["type"], "BitstringStatusListEntry",
        "{payload}"
    );
    assert!(
        held["via"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/oid4vci/{}", &ra["did:knoop:".len()..])),
        "{held}"
    );

    // The offer is used up: by reference it is gone, by value its code is refused.
    let (code, v) = accept(&by_reference, Some(&tx_code)).await;
    assert_eq!((code, v["error"].as_str()), (502, Some("upstream")), "{v}");
    let (code, v) = accept(&by_value, Some(&tx_code)).await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("invalid_grant"),
        "{v}"
    );

    let (code, list) = gp_node
        .get(&format!("/v1/wallet/credentials?holder={gp_did}"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        list["credentials"][0]["types"],
        json!(["VerifiableCredential", "CareOrganizationCredential"]),
        "{list}"
    );

    // The wallet's credential now stands beside the professional's: the hospital shares.
    let after = fetch(true).await;
    assert_eq!(status_of(&after, &hospital_node), "ok", "{after}");
    assert!(
        count(&after, "MedicationRequest", &w.orgs[hospital].did) == 5,
        "{after}"
    );
    let without = fetch(false).await;
    assert_eq!(status_of(&without, &hospital_node), "refused", "{without}");

    // An offer bound to another DID is refused to this wallet (and names why).
    let (code, bound) = ra_node
        .post(
            "/v1/credential-offers",
            &json!({"issuer": ra, "type": "CareOrganizationCredential", "format": "ldp_vc",
                    "tx_code": false,
                    "subject": {"id": w.orgs[hospital].did, "legalName": "Ziekenhuis Leiden",
                                "city": "Leiden", "organizationType": "hospital", "ura": "99990011"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{bound}");
    assert!(bound["tx_code"].is_null(), "{bound}");
    let (code, v) = accept(bound["offer_url"].as_str().unwrap(), None).await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("credential_request_denied"),
        "{v}"
    );
    // Claims outside the type's schema are refused when offered, not when redeemed.
    let (code, v) = ra_node
        .post(
            "/v1/credential-offers",
            &json!({"issuer": ra, "type": "CareOrganizationCredential", "subject": {"city": "X"}}),
        )
        .await
        .unwrap();
    assert_eq!((code, v["error"].as_str()), (400, Some("schema")), "{v}");

    // A wallet outside knoop receives one for its did:jwk, with the offer by reference and the
    // transaction code, and any knoop node verifies it.
    let (code, offer) = ra_node
        .post(
            "/v1/credential-offers",
            &json!({"issuer": ra, "type": "CareOrganizationCredential",
                    "subject": {"legalName": "Thuiszorg Buiten", "city": "Venlo",
                                "organizationType": "homecare", "ura": "99990099"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{offer}");
    let outside = knoop_e2e::run_outside(
        std::process::Command::new("node")
            .arg(knoop_e2e::repo_root().join("tests/oid4vc/wallet.mjs"))
            .arg(offer["offer_uri_url"].as_str().unwrap())
            .arg(offer["tx_code"].as_str().unwrap())
            .env("NODE_EXTRA_CA_CERTS", w.ca.ca_pem_path()),
    );
    assert_eq!(
        outside["version"], "V1",
        "read as OpenID4VCI 1.0: {outside}"
    );
    assert_eq!(outside["format"], "jwt_vc_json", "{outside}");
    let credential = outside["credential"].as_str().unwrap();
    assert_eq!(
        jwt_payload(credential)["sub"],
        outside["did"],
        "bound to the outside wallet's did:jwk"
    );
    for n in [ra_node, gp_node] {
        let (_, v) = n
            .post("/v1/credentials/verify", &json!({"credential": credential}))
            .await
            .unwrap();
        assert_eq!(v["valid"], true, "{v}");
    }

    // The issuer's endpoints, as a plain HTTPS client sees them.
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(w.ca.ca_pem_path()).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let issuer = offer["credential_offer"]["credential_issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = issuer.split("/oid4vci/").next().unwrap().to_owned();
    let path = &issuer[origin.len()..];
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (code, after_host) = get(format!(
        "{origin}/.well-known/openid-credential-issuer{path}"
    ))
    .await;
    assert_eq!(code, 200, "{after_host}");
    let (_, after_path) = get(format!("{issuer}/.well-known/openid-credential-issuer")).await;
    assert_eq!(after_host, after_path);
    assert_eq!(after_host["credential_issuer"], issuer.as_str());
    assert_eq!(
        after_host["credential_configurations_supported"]
            .as_object()
            .map(|c| c.len()),
        Some(4),
        "{after_host}"
    );
    let (code, server) = get(format!(
        "{origin}/.well-known/oauth-authorization-server{path}"
    ))
    .await;
    assert_eq!(code, 200, "{server}");
    assert_eq!(
        server["pre-authorized_grant_anonymous_access_supported"],
        true
    );
    let (code, _) = get(format!(
        "{origin}/.well-known/openid-credential-issuer/oid4vci/4Pd4h9CoNrCCu5QPupW7pEyPzh3AuxrR5mR1LDGiAhz8"
    ))
    .await;
    assert_eq!(code, 404);
    let post_form = |body: &'static str| {
        let (http, url) = (http.clone(), format!("{issuer}/token"));
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            let no_store = r
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                r.status().as_u16(),
                no_store,
                r.json::<Value>().await.unwrap(),
            )
        }
    };
    for (body, error) in [
        ("grant_type=authorization_code&code=x", "unsupported_grant_type"),
        ("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Apre-authorized_code", "invalid_request"),
        ("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Apre-authorized_code&pre-authorized_code=nope", "invalid_grant"),
    ] {
        let (code, no_store, v) = post_form(body).await;
        assert_eq!((code, v["error"].as_str()), (400, Some(error)), "{body}: {v}");
        assert_eq!(no_store.as_deref(), Some("no-store"), "{body}");
    }
    let r = http.post(format!("{issuer}/nonce")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.json::<Value>().await.unwrap()["c_nonce"].is_string());
    let r = http
        .post(format!("{issuer}/credential"))
        .json(&json!({"credential_configuration_id": "CareOrganizationCredential_jwt_vc_json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = http
        .post(format!("{issuer}/credential"))
        .bearer_auth("not-a-token")
        .json(&json!({"credential_configuration_id": "CareOrganizationCredential_jwt_vc_json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");

    // Removal.
    let id = list["credentials"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/wallet/credentials?holder={gp_did}&id={id}");
    let client = reqwest::Client::new();
    let url = format!("{}{path}", gp_node.rpc);
    let r = client.delete(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = client.delete(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

/// A wallet on a knoop node receives a credential from an issuer outside knoop (oid4vc-ts,
/// `tests/oid4vc/issuer.mjs`) that binds credentials to did:web holders only: the wallet proves
/// possession as its organisation's did:web id, which the outside issuer resolves from the
/// node's public API, and keeps the VC 1.1 JWT signed by the issuer's did:jwk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_receives_from_an_issuer_outside_knoop() {
    use std::io::BufRead;

    let ca = knoop_e2e::https::TestCa::new().unwrap();
    let (port, env) = ca.public_env_on_localhost().unwrap();
    let file = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let (cert, key) = (
        file("KNOOP_PUBLIC__TLS_CERT"),
        file("KNOOP_PUBLIC__TLS_KEY"),
    );
    let net = knoop_e2e::Network::start_each(vec![env]).await.unwrap();
    let node = &net.nodes[0];
    let holder = create_did(node).await;
    let web = format!(
        "did:web:localhost%3A{port}:knoop:{}",
        &holder["did:knoop:".len()..]
    );

    let mut issuer = std::process::Command::new("node")
        .arg(knoop_e2e::repo_root().join("tests/oid4vc/issuer.mjs"))
        .arg(&cert)
        .arg(&key)
        .arg(r#"{"type": "CareOrganization", "legalName": "Apotheek Buiten", "city": "Venlo", "organizationType": "pharmacy", "ura": "99990077"}"#)
        .env("NODE_EXTRA_CA_CERTS", ca.ca_pem_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node (.ci/run installs it and tests/oid4vc's packages)");
    let mut first = String::new();
    std::io::BufReader::new(issuer.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let started: Value = match serde_json::from_str(&first) {
        Ok(v) => v,
        Err(e) => {
            let _ = issuer.kill();
            let out = issuer.wait_with_output().unwrap();
            panic!("{e}: {}", String::from_utf8_lossy(&out.stderr))
        }
    };
    let accept = |tx: &str| {
        let body = json!({"holder": holder, "offer": started["offer"], "tx_code": tx});
        async move { node.post("/v1/wallet/offers", &body).await.unwrap() }
    };
    let tx = started["tx_code"].as_str().unwrap();
    let wrong = if tx == "000000" { "000001" } else { "000000" };
    let (code, refused) = accept(wrong).await;
    let (code2, held) = accept(tx).await;
    let _ = issuer.kill();
    let out = issuer.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, 403, "{refused} {log}");
    assert_eq!(code2, 201, "{held} {log}");
    let payload = jwt_payload(held["credential"].as_str().unwrap());
    assert_eq!(
        payload["sub"],
        web.as_str(),
        "bound to the did:web id: {payload}"
    );
    assert_eq!(payload["iss"], started["did"], "{payload}");
    assert_eq!(held["issuer"], started["did"], "{held}");
    assert!(log.contains(&format!("issued to {web}")), "{log}");

    let (_, list) = node
        .get(&format!("/v1/wallet/credentials?holder={holder}"))
        .await
        .unwrap();
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["credentials"][0]["via"], started["issuer"], "{list}");
    // The same from the command line.
    let cli = knoop_e2e::run_outside(
        std::process::Command::new(knoop_e2e::knoop_bin())
            .args(["vc", "held", &holder, "--rpc", &node.rpc]),
    );
    assert_eq!(cli["credentials"], list["credentials"], "{cli}");
}
