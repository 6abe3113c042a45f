//! Consent over real node processes (spec: `specs/consent-localisation.md` §3–§5): a consent
//! registered at the GP's node reaches the hospital's node as a private transaction and opens
//! the hospital's answer to exactly what it permits; revoking it closes it again. The network
//! runs opt-in, so without consent nothing is shared (the opt-out counterpart, with an
//! objection, is in `localisation.rs`).

use std::time::{Duration, Instant};

use knoop_e2e::{Network, Node};
use serde_json::{json, Value};

const BSN: &str = "123456782";

async fn create_did(node: &Node) -> String {
    let (code, body) = node.post("/v1/dids", &json!({})).await.unwrap();
    assert_eq!(code, 201, "{body}");
    body["did"].as_str().unwrap().to_owned()
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> Option<Value>) -> Value {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(45), "never: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The hospital's answer to `requester`'s lookup: (status, categories).
async fn hospital_answer(node: &Node, requester: &str) -> (String, Vec<String>) {
    let (code, v) = node
        .post(
            "/v1/localisation/lookup",
            &json!({"requester": requester, "patient": {"value": BSN}, "purpose": "regular-care"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{v}");
    let Some(h) = v["holders"].as_array().and_then(|a| a.first()) else {
        return ("none".into(), Vec::new());
    };
    let cats = h["organizations"]
        .as_array()
        .and_then(|o| o.first())
        .and_then(|o| o["categories"].as_array())
        .map(|c| c.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    (h["status"].as_str().unwrap().to_owned(), cats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_reaches_the_holder_and_revocation_takes_effect() {
    let net = Network::start_with_env(3, knoop_e2e::privacy_env("opt-in"))
        .await
        .unwrap();
    let n = &net.nodes;
    let (gp_node, hospital_node, pharmacy_node) = (&n[0], &n[1], &n[2]);
    let ra = create_did(pharmacy_node).await;
    let gp = create_did(gp_node).await;
    let hospital = create_did(hospital_node).await;
    let pharmacy = create_did(pharmacy_node).await;
    for node in n {
        let (code, body) = node
            .put(
                &format!("/v1/trust/CareOrganizationCredential/{ra}"),
                &json!({}),
            )
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    for (i, (did, name, kind)) in [
        (&gp, "Huisarts Leiden", "gp"),
        (&hospital, "Zuyderland MC", "hospital"),
        (&pharmacy, "Apotheek Kerkrade", "pharmacy"),
    ]
    .into_iter()
    .enumerate()
    {
        let (code, body) = pharmacy_node
            .post(
                "/v1/credentials",
                &json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
                        "subject": {"id": did, "legalName": name, "city": "Kerkrade",
                                    "organizationType": kind, "ura": format!("8000000{i}")}}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
    }
    for node in n {
        eventually("every node has the directory", async || {
            let (_, v) = node.get("/v1/directory?city=Kerkrade").await.unwrap();
            (v["organizations"].as_array()?.len() == 3).then_some(v)
        })
        .await;
    }
    let (code, body) = hospital_node
        .post(
            "/v1/localisation/register",
            &json!({"holder": hospital, "patient": {"value": BSN}, "categories": ["medication", "lab"]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");

    // Opt-in, no consent yet: the hospital shares nothing.
    let before = eventually("the GP finds the hospital's node", async || {
        let a = hospital_answer(gp_node, &gp).await;
        (a.0 != "none").then_some(json!(a))
    })
    .await;
    assert_eq!(before, json!(["no_permitted_data", []]));

    // The patient consents at the GP: medication, for regular care, to GPs.
    let (code, reg) = gp_node
        .post(
            "/v1/consent",
            &json!({"issuer": gp, "patient": {"value": BSN}, "decision": "permit",
                    "purpose": ["regular-care"], "dataCategories": ["medication"],
                    "requesters": {"organizationTypes": ["gp"]}, "method": "verbal",
                    "registrar": "assistant 17"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{reg}");
    let credential = reg["credential"]["id"].as_str().unwrap().to_owned();
    assert!(!reg.to_string().contains(BSN), "{reg}");
    let hospital_node_id = hospital_node_did(hospital_node).await;
    assert!(
        reg["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| *r == hospital_node_id.as_str()),
        "{reg}"
    );

    // It reaches the hospital's node, which now shares medication (not lab) with the GP only.
    eventually("the consent reaches the hospital's node", async || {
        let (_, v) = hospital_node
            .post("/v1/consent/list", &json!({"patient": {"value": BSN}}))
            .await
            .unwrap();
        v["consents"]
            .as_array()?
            .iter()
            .any(|c| c["id"] == credential.as_str() && c["status"] == "active")
            .then_some(v)
    })
    .await;
    assert_eq!(
        hospital_answer(gp_node, &gp).await,
        ("ok".into(), vec!["medication".to_owned()])
    );
    assert_eq!(
        hospital_answer(pharmacy_node, &pharmacy).await.0,
        "no_permitted_data"
    );

    // The pharmacy starts holding data on the patient after the consent was registered: it
    // finds the consent through its pointer in the patient's slots.
    let (code, body) = pharmacy_node
        .post(
            "/v1/localisation/register",
            &json!({"holder": pharmacy, "patient": {"value": BSN}, "categories": ["medication"]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    eventually(
        "the pharmacy's node finds the earlier consent",
        async || {
            let (_, v) = pharmacy_node
                .post("/v1/consent/list", &json!({"patient": {"value": BSN}}))
                .await
                .unwrap();
            v["consents"]
                .as_array()?
                .iter()
                .any(|c| c["id"] == credential.as_str() && c["status"] == "active")
                .then_some(v)
        },
    )
    .await;

    // Revoked at the GP: the hospital stops sharing.
    let (code, body) = gp_node
        .post(
            "/v1/consent/revoke",
            &json!({"issuer": gp, "patient": {"value": BSN}, "credential": credential,
                    "reason": "patient withdrew"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    for node in [hospital_node, pharmacy_node] {
        eventually("the revocation reaches the holders' nodes", async || {
            let (_, v) = node
                .post("/v1/consent/list", &json!({"patient": {"value": BSN}}))
                .await
                .unwrap();
            v["consents"]
                .as_array()?
                .iter()
                .any(|c| c["id"] == credential.as_str() && c["status"] == "revoked")
                .then_some(v)
        })
        .await;
    }
    assert_eq!(
        hospital_answer(gp_node, &gp).await,
        ("no_permitted_data".into(), Vec::new())
    );

    // The CLI reads the identifier from stdin (out of shell history) and lists the same.
    let listed = cli(&hospital_node.rpc, &["consent", "list", "--bsn", "-"], BSN);
    assert_eq!(listed["consents"][0]["status"], "revoked", "{listed}");
    let lookup = cli(
        &gp_node.rpc,
        &[
            "loc",
            "lookup",
            "--requester",
            &gp,
            "--bsn",
            "-",
            "--who",
            "cli",
        ],
        BSN,
    );
    assert_eq!(
        lookup["holders"][0]["status"], "no_permitted_data",
        "{lookup}"
    );
}

/// Runs the `knoop` CLI against `rpc` with `stdin`; returns its JSON output.
fn cli(rpc: &str, args: &[&str], stdin: &str) -> Value {
    use std::io::Write;
    let mut child = std::process::Command::new(knoop_e2e::knoop_bin())
        .args(args)
        .args(["--rpc", rpc])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "knoop {args:?} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn hospital_node_did(node: &Node) -> String {
    let (_, v) = node.get("/v1/node").await.unwrap();
    v["did"].as_str().unwrap().to_owned()
}
