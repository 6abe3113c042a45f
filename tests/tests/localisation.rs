//! Localisation over real node processes (spec: `specs/consent-localisation.md`): a patient with
//! data at three organisations on three nodes is found from a fourth node, organisations and
//! categories included; a wrong identifier finds nothing; holders log every locate request and
//! rate-limit each requester; no node's files contain the identifier.

use std::time::{Duration, Instant};

use knoop_e2e::{Network, Node};
use serde_json::{json, Value};

const BSN: &str = "123456782";
const OTHER_BSN: &str = "111222333";

async fn create_did(node: &Node) -> String {
    let (code, body) = node.post("/v1/dids", &json!({})).await.unwrap();
    assert_eq!(code, 201, "{body}");
    body["did"].as_str().unwrap().to_owned()
}

async fn wait_for(node: &Node, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (_, v) = node.get(path).await.unwrap();
        if pred(&v) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "{}: {path} never matched; last: {v}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn lookup(node: &Node, requester: &str, bsn: &str) -> (u16, Value) {
    node.post(
        "/v1/localisation/lookup",
        &json!({"requester": requester, "patient": {"value": bsn}, "purpose": "emergency",
                "who": "dr. J. de Wit (SEH)"}),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_is_found_at_three_holders_from_a_fourth_node() {
    let net = Network::start_with_env(4, knoop_e2e::privacy_env("opt-out"))
        .await
        .unwrap();
    let n = &net.nodes;
    let ra = create_did(&n[3]).await;
    let holders = [
        (
            create_did(&n[0]).await,
            "Zuyderland MC",
            vec!["medication", "allergies"],
        ),
        (
            create_did(&n[1]).await,
            "Apotheek Kerkrade",
            vec!["medication"],
        ),
        (
            create_did(&n[2]).await,
            "Huisarts Heerlen",
            vec!["problems", "lab"],
        ),
    ];
    let gp = create_did(&n[3]).await;
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
    let orgs: Vec<(&str, &str)> = holders
        .iter()
        .map(|(d, name, _)| (d.as_str(), *name))
        .chain([(gp.as_str(), "Huisartsenpost Leiden")])
        .collect();
    for (i, (did, name)) in orgs.iter().enumerate() {
        let (code, body) = n[3]
            .post(
                "/v1/credentials",
                &json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
                        "subject": {"id": did, "legalName": name, "city": "Heerlen",
                                    "organizationType": "hospital", "ura": format!("9000000{i}")}}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
    }
    for node in n {
        wait_for(node, "/v1/directory?city=Heerlen", |v| {
            v["organizations"].as_array().is_some_and(|a| a.len() == 4)
        })
        .await;
    }

    // Each holder's node registers that it holds data about the patient.
    for (i, (did, _, cats)) in holders.iter().enumerate() {
        let (code, body) = n[i]
            .post(
                "/v1/localisation/register",
                &json!({"holder": did, "patient": {"value": BSN}, "categories": cats}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
        assert!(body["patient"]
            .as_str()
            .unwrap()
            .starts_with("urn:knoop:patient:"));
    }

    // From the fourth node the GP finds all three, with their categories.
    let t0 = Instant::now();
    let found = loop {
        let (code, v) = lookup(&n[3], &gp, BSN).await;
        assert_eq!(code, 200, "{v}");
        let ok = v["holders"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["status"] == "ok")
            .count();
        if ok == 3 {
            break v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "not all holders found: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let mut got: Vec<(String, Vec<String>)> = found["holders"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["organizations"].as_array().unwrap().clone())
        .map(|o| {
            let cats = o["categories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            (o["legalName"].as_str().unwrap().to_owned(), cats)
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, Vec<String>)> = holders
        .iter()
        .map(|(_, name, cats)| {
            (
                name.to_string(),
                cats.iter().map(|c| c.to_string()).collect(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);

    // Another (valid) identifier finds nothing; an invalid one is refused.
    let (code, v) = lookup(&n[3], &gp, OTHER_BSN).await;
    assert_eq!(code, 200);
    assert_eq!(v["holders"], json!([]), "{v}");
    let (code, v) = lookup(&n[3], &gp, "123456783").await;
    assert_eq!(
        (code, v["error"].as_str()),
        (400, Some("invalid_identifier")),
        "{v}"
    );

    // Each holder logged the request: who asked, for what, and the outcome.
    for node in &n[..3] {
        let (_, audit) = node.get("/v1/audit").await.unwrap();
        let entries = audit["entries"].as_array().unwrap();
        assert!(
            entries.iter().any(|e| e["requester"] == gp.as_str()
                && e["outcome"] == "answered"
                && e["purpose"] == "emergency"
                && e["who"] == "dr. J. de Wit (SEH)"),
            "{}: {audit}",
            node.name
        );
        assert!(!audit.to_string().contains(BSN));
        let (_, verdict) = node.get("/v1/audit/verify").await.unwrap();
        assert_eq!(verdict["valid"], true, "{verdict}");
        let (_, bundle) = node.get("/fhir/AuditEvent").await.unwrap();
        assert_eq!(bundle["entry"][0]["resource"]["resourceType"], "AuditEvent");
        // As an outside FHIR library reads it (strict R4 models, FHIR JSON rules).
        let checked = knoop_e2e::run_outside(
            std::process::Command::new("python3")
                .arg(knoop_e2e::repo_root().join("tests/fhir_check.py"))
                .arg(format!("{}/fhir/AuditEvent", node.rpc)),
        );
        assert_eq!(checked["resourceType"], "Bundle", "{checked}");
        assert!(
            checked["types"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t == "AuditEvent"),
            "{checked}"
        );
    }

    // The pharmacy no longer holds data on the patient: its node withdraws its entry, and the
    // lookup no longer finds that node.
    let (code, body) = n[1]
        .post(
            "/v1/localisation/withdraw",
            &json!({"holder": holders[1].0, "patient": {"value": BSN}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body["withdrawn"].is_string(), "{body}");
    let t0 = Instant::now();
    loop {
        let (_, v) = lookup(&n[3], &gp, BSN).await;
        let names: Vec<String> = v["holders"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|h| h["organizations"].as_array().unwrap().clone())
            .map(|o| o["legalName"].as_str().unwrap_or_default().to_owned())
            .collect();
        if v["holders"].as_array().unwrap().len() == 2 {
            assert!(!names.contains(&"Apotheek Kerkrade".to_owned()), "{v}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "withdrawal not seen: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Opt-out: the patient objects (at the GP) and the holders stop sharing.
    let (code, body) = n[3]
        .post(
            "/v1/consent",
            &json!({"issuer": gp, "patient": {"value": BSN}, "decision": "deny",
                    "purpose": ["regular-care", "emergency"], "dataCategories": ["*"],
                    "method": "written"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["recipients"].as_array().unwrap().len(), 3, "{body}");
    let t0 = Instant::now();
    loop {
        let (_, v) = lookup(&n[3], &gp, BSN).await;
        let statuses: Vec<&str> = v["holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        if statuses == ["no_permitted_data"; 2] {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "objection not applied: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A requester asking too fast is refused by the holders.
    let mut limited = false;
    for _ in 0..40 {
        let (_, v) = lookup(&n[3], &gp, BSN).await;
        if v["holders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["status"] == "rate_limited")
        {
            limited = true;
            break;
        }
    }
    assert!(limited, "no holder rate-limited 40 rapid lookups");

    // The identifier is nowhere in any node's files: store (WAL included), keys, logs.
    for node in n {
        for needle in [BSN.to_owned(), format!("bsn|{BSN}")] {
            let hits = knoop_e2e::files_containing(&node.dir, needle.as_bytes());
            assert!(hits.is_empty(), "{}: {needle} found in {hits:?}", node.name);
        }
    }
}

/// Entry batching (spec: `specs/consent-localisation.md` §6.2) with the default interval of
/// 2 s: forty registrations for forty patients at once go out in a handful of transactions,
/// each acknowledged once its batch is stored, and every one of them reaches the other node's
/// index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_at_once_share_batches() {
    let mut env = knoop_e2e::privacy_env("opt-out");
    env.push(("KNOOP_LOCALISATION__BATCH_INTERVAL".into(), "2s".into()));
    let net = Network::start_with_env(2, env).await.unwrap();
    let n = &net.nodes;
    let holder = create_did(&n[0]).await;
    let bsns = knoop_e2e::valid_bsns(100_000_000, 40);
    let bodies: Vec<Value> = bsns
        .iter()
        .map(|bsn| json!({"holder": holder, "patient": {"value": bsn}, "categories": ["lab"]}))
        .collect();
    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|b| n[0].post("/v1/localisation/register", b)),
    )
    .await;
    let mut txs = std::collections::BTreeSet::new();
    for a in answers {
        let (code, body) = a.unwrap();
        assert_eq!(code, 201, "{body}");
        txs.insert(body["published"].as_str().unwrap().to_owned());
    }
    // Forty entries, a handful of transactions (one per 2 s window, at most 1024 each).
    assert!(txs.len() <= 4, "{} transactions for 40 entries", txs.len());
    // The other node holds the batches, whose entries add up to the forty.
    // Besides DID operations, the batches are all the two nodes hold.
    net.wait_converged(&[0, 1], txs.len() as u64, Duration::from_secs(30))
        .await
        .unwrap();
    #[derive(serde::Deserialize)]
    struct Content {
        v: u8,
        e: serde_bytes::ByteBuf,
    }
    let mut entries = 0;
    for tx in &txs {
        let (code, t) = n[1].get(&format!("/v1/transactions/{tx}")).await.unwrap();
        assert_eq!(code, 200, "{t}");
        assert_eq!(t["header"]["cty"], "application/knoop-loc+cbor", "{t}");
        let payload = t["payload"].as_str().unwrap();
        let bytes = {
            use base64::Engine;
            base64::prelude::BASE64_STANDARD
                .decode(payload)
                .or_else(|_| base64::prelude::BASE64_URL_SAFE_NO_PAD.decode(payload))
                .unwrap()
        };
        let c: Content = cbor4ii::serde::from_slice(&bytes).unwrap();
        assert_eq!(c.v, 1);
        assert_eq!(c.e.len() % 104, 0);
        entries += c.e.len() / 104;
    }
    assert_eq!(entries, 40);
}
