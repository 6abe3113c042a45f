//! The operator console (spec: `specs/console.md`) in a real browser: Debian's headless
//! Chromium, driven by Playwright (`tests/console/drive.mjs`), against a real 3-node network
//! whose first node requires an RPC token. Without credentials there is no page; with the
//! token as the Basic password the Network page shows the peers and the digest `/status` gives,
//! the throughput chart rises when another node publishes, a DID created from the Tenants page
//! resolves on another node with the endpoint published from the page, the Audit page counts
//! and lists a token refusal made here and its chain verifies. Screenshots of each page go to `target/console-screenshots/` (not committed).

use std::process::Command;
use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use serde_json::Value;

const TOKEN: &str = "console-test-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_and_acts_through_the_console() {
    let w = world(
        "opt-out",
        &[LEIDEN_HOSPITAL, KERKRADE_GP, KERKRADE_PHARMACY],
        &[(0, ("KNOOP_RPC__TOKEN", TOKEN.to_owned()))],
    )
    .await;
    let (node, other) = (w.node(0), w.node(2));

    // The RPC itself refuses a request without the token, and one from another site that
    // carries the console's credentials.
    let anonymous = reqwest::Client::new();
    let r = anonymous
        .get(format!("{}/v1/dids", node.rpc))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let challenges: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic ")),
        "{challenges:?}"
    );
    let r = anonymous
        .post(format!("{}/v1/dids", node.rpc))
        .basic_auth("operator", Some(TOKEN))
        .header("origin", "https://elsewhere.example")
        .header("sec-fetch-site", "cross-site")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "a cross-site request");

    // A token refusal for the audit page to list (a patient that is no pseudonym reference).
    let r = anonymous
        .post(format!("{}/oauth2/token", node.rpc))
        .bearer_auth(TOKEN)
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", "not-a-presentation"),
            ("scope", "medication-overview"),
            ("patient", "urn:knoop:patient:x"),
            ("purpose", "regular-care"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // The network is quiet and converged: the digest the page shows is /status's.
    let t0 = Instant::now();
    let digest = loop {
        let mut digests = Vec::new();
        for n in &w.net.nodes {
            digests.push(n.status().await.unwrap()["digest"].clone());
        }
        // ... and the console's node has reconciled with both peers since, finding nothing.
        let peers = node.status().await.unwrap()["peer_list"].clone();
        let reconciled = peers.as_array().is_some_and(|p| {
            p.len() == 2
                && p.iter()
                    .all(|p| p["last_sync_differences"] == 0 && p["last_sync_ms"].is_u64())
        });
        if digests.windows(2).all(|d| d[0] == d[1]) && reconciled {
            break digests[0].as_str().unwrap().to_owned();
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{digests:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    let shots = knoop_e2e::repo_root().join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let args = [
        knoop_e2e::repo_root()
            .join("tests/console/drive.mjs")
            .display()
            .to_string(),
        node.rpc.clone(),
        TOKEN.to_owned(),
        other.rpc.clone(),
        shots.display().to_string(),
    ];
    let seen: Value = tokio::task::spawn_blocking(move || {
        knoop_e2e::run_outside(Command::new("node").args(&args))
    })
    .await
    .unwrap();

    assert_eq!(seen["anonymous"]["status"], 401, "{seen}");
    assert!(
        seen["anonymous"]["navigation"]
            .as_str()
            .is_some_and(|e| e.contains("ERR_INVALID_AUTH_CREDENTIALS")),
        "no page without credentials: {seen}"
    );
    let net = &seen["network"];
    assert_eq!(net["digest"], digest.as_str(), "{seen}");
    assert_eq!(net["peers"], 2, "{seen}");
    assert_eq!(net["rows"], 2, "{seen}");
    assert_eq!(net["graph_nodes"], 3, "this node and its two peers: {seen}");
    // The public API's certificate (the test CA's) and the data disk, as /status gives them.
    let status = node.status().await.unwrap();
    let expires = status["public_certificate_expires_ms"].as_u64().unwrap();
    let day = knoop_did::knoop::time::to_rfc3339(expires)[..10].to_owned();
    assert_eq!(net["certificate"], format!("valid until {day}"), "{seen}");
    assert!(status["disk"]["total_bytes"].as_u64() > Some(0), "{status}");
    assert!(
        net["disk"]
            .as_str()
            .is_some_and(|d| d.contains(" free of ")),
        "{seen}"
    );
    assert!(
        seen["throughput"]["after"].as_f64() > seen["throughput"]["before"].as_f64(),
        "{seen}"
    );
    assert!(seen["throughput"]["bars"].as_u64() >= Some(1), "{seen}");
    let created = seen["tenant"]["created"].as_str().unwrap().to_owned();
    assert!(created.starts_with("did:knoop:"), "{seen}");
    assert!(seen["tenant"]["keys"].as_u64().unwrap() >= 1, "{seen}");
    // The DID created from the page resolves on another node, with the endpoint published
    // from the page.
    let t0 = Instant::now();
    loop {
        let (code, r) = other.get(&format!("/v1/dids/{created}")).await.unwrap();
        let published = r["didDocument"]["service"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["type"] == "FHIR" && s["serviceEndpoint"] == "https://ehr.example/fhir");
        if code == 200 && published {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{created}: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let names: Vec<&str> = seen["directory"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for org in [LEIDEN_HOSPITAL, KERKRADE_GP, KERKRADE_PHARMACY] {
        assert!(names.contains(&org.name), "{names:?}");
    }
    let outcomes = seen["audit"]["token_outcomes"].as_array().unwrap();
    assert!(
        outcomes
            .iter()
            .any(|o| o.as_str() == Some("invalid_request: patient must be a patient reference")),
        "{seen}"
    );
    assert_eq!(seen["audit"]["chain_valid"], "true", "{seen}");
    assert_eq!(seen["audit"]["token_refused_today"], "1", "{seen}");
    assert_eq!(
        seen["network"]["sync"],
        serde_json::json!(["in sync", "in sync"]),
        "{seen}"
    );
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    for page in ["network", "throughput", "tenants", "directory", "audit"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "{page}");
    }
}
