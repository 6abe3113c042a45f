//! The operator console (spec: `specs/console.md`) in a real browser: Debian's headless
//! Chromium, driven by Playwright (`tests/console/drive.mjs`), against a real 3-node network
//! whose first node requires an RPC token. Without credentials there is no page; with the
//! token as the Basic password the Network page shows the peers and the digest `/status` gives,
//! the throughput chart rises when another node publishes, a DID created from the Tenants page
//! resolves on another node with the endpoint published from the page, the Audit page counts
//! and lists a token refusal made here and its chain verifies. A fourth node runs with its
//! clock two minutes ahead (libfaketime): the Network page shows each peer's clock and set
//! against this node's and warns about that one. The Tenants page verifies the wallet's
//! credentials; the Events page shows a transaction stored elsewhere as it arrives.
//! Screenshots of each page go to `target/console-screenshots/` (not committed).

use std::process::Command;
use std::time::{Duration, Instant};

use knoop_e2e::care::*;
use knoop_e2e::rogue::RoguePeer;
use knoop_e2e::Node;
use serde_json::Value;

const TOKEN: &str = "console-test-token-0123456789";
/// How far the fourth node's clock runs ahead.
const SKEW_MS: i64 = 120_000;
/// Debian's libfaketime (package `libfaketime`, installed by `.ci/run`).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_and_acts_through_the_console() {
    let w = world(
        "opt-out",
        &[LEIDEN_HOSPITAL, KERKRADE_GP, KERKRADE_PHARMACY],
        &[(0, ("KNOOP_RPC__TOKEN", TOKEN.to_owned()))],
    )
    .await;
    let (node, other) = (w.node(0), w.node(2));
    // A node whose wall clock runs two minutes ahead (its monotonic clock is left alone).
    let skewed = Node::start_with_env(
        "skewed",
        &w.net.root.path().join("skewed"),
        &w.net.bootstrap(),
        vec![
            ("LD_PRELOAD".into(), FAKETIME.into()),
            ("FAKETIME".into(), format!("+{}s", SKEW_MS / 1000)),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ],
    )
    .await
    .unwrap();
    let skewed_peer = skewed.status().await.unwrap()["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Two credentials in the hospital's wallet: its organisation credential, issued by the
    // trusted registry authority, and one it issued to itself, which verifies but is not
    // trusted.
    let hospital = w.orgs[0].did.clone();
    let self_issued = issue(node, serde_json::json!({"issuer": hospital, "type": "CareOrganizationCredential",
        "subject": {"id": hospital, "legalName": "Self-declared", "city": "Leiden", "organizationType": "hospital", "ura": "99999999"}})).await;
    for credential in [w.orgs[0].credential.clone(), self_issued] {
        let (code, body) = node
            .post(
                "/v1/wallet/credentials",
                &serde_json::json!({"holder": hospital, "credential": credential}),
            )
            .await
            .unwrap();
        assert!(code == 201 || code == 200, "{code} {body}");
    }

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
        for n in w.net.nodes.iter().chain([&skewed]) {
            digests.push(n.status().await.unwrap()["digest"].clone());
        }
        // ... and the console's node has reconciled with its three peers since, finding
        // nothing, and each peer's last state answer (specs/sync.md §6.4) has that digest.
        let peers = node.status().await.unwrap()["peer_list"].clone();
        let reconciled = peers.as_array().is_some_and(|p| {
            p.len() == 3
                && p.iter().all(|p| {
                    p["last_sync_differences"] == 0
                        && p["last_sync_ms"].is_u64()
                        && p["state"]["digest"] == digests[0]
                })
        });
        if digests.windows(2).all(|d| d[0] == d[1]) && reconciled {
            break digests[0].as_str().unwrap().to_owned();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "{digests:?} {peers}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // The state exchange measured the skewed node's clock, and the others' as in step.
    let peers = node.status().await.unwrap()["peer_list"].clone();
    for p in peers.as_array().unwrap() {
        let offset = p["state"]["clock_offset_ms"].as_i64().unwrap();
        let expected = if p["peer_id"] == skewed_peer.as_str() {
            SKEW_MS
        } else {
            0
        };
        assert!((offset - expected).abs() < 5_000, "{p}");
        assert!(p["traffic"]["sync_sessions"].as_u64() > Some(0), "{p}");
        assert!(p["traffic"]["bytes_sync_out"].as_u64() > Some(0), "{p}");
    }

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
        hospital.clone(),
    ];
    // An outsider's peer pushing invalid transactions, when the page asks for it (while its
    // throughput charts are open): the rejected chart shows them by reason.
    let signal = shots.join(".rogue");
    let _ = std::fs::remove_file(&signal);
    let target = node.p2p.clone();
    let rogue = tokio::spawn(async move {
        let t0 = Instant::now();
        while !signal.exists() {
            if t0.elapsed() > Duration::from_secs(120) {
                return 0;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Ok(mut rogue) = RoguePeer::dial(&target, "/knoop/id/1.0.0") else {
            return 0;
        };
        if rogue.until_subscribed(Duration::from_secs(20)).await {
            rogue.push_forged();
            rogue.push_forged();
        }
        rogue.run_for(Duration::from_secs(3)).await;
        rogue.sent
    });
    let seen: Value = tokio::task::spawn_blocking(move || {
        knoop_e2e::run_outside(Command::new("node").args(&args))
    })
    .await
    .unwrap();
    assert_eq!(rogue.await.unwrap(), 2, "the rogue's forged pushes: {seen}");

    assert_eq!(seen["anonymous"]["status"], 401, "{seen}");
    assert!(
        seen["anonymous"]["navigation"]
            .as_str()
            .is_some_and(|e| e.contains("ERR_INVALID_AUTH_CREDENTIALS")),
        "no page without credentials: {seen}"
    );
    let net = &seen["network"];
    assert_eq!(net["digest"], digest.as_str(), "{seen}");
    assert_eq!(net["peers"], 3, "{seen}");
    assert_eq!(net["rows"], 3, "{seen}");
    assert_eq!(
        net["graph_nodes"], 4,
        "this node and its three peers: {seen}"
    );
    assert_eq!(
        net["sets"],
        serde_json::json!(["same", "same", "same"]),
        "each peer's set is ours: {seen}"
    );
    let clocks: Vec<i64> = net["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(clocks.len(), 3, "{seen}");
    assert_eq!(
        clocks
            .iter()
            .filter(|c| (**c - SKEW_MS).abs() < 5_000)
            .count(),
        1,
        "{seen}"
    );
    let warnings: Vec<&str> = net["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let short = &skewed_peer[skewed_peer.len() - 8..];
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("clock of peer {short}")) && w.contains("ahead of ours")),
        "{warnings:?}"
    );
    assert_eq!(
        warnings.iter().filter(|w| w.contains("clock")).count(),
        1,
        "{warnings:?}"
    );
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
    // The rogue's pushes, rejected by reason: transactions signed by a key no DID holds
    // (`unauthorized`) and bytes that are no transaction (`malformed`).
    let rejected = &seen["throughput"]["rejected"];
    assert!(rejected["unauthorized"].as_f64() >= Some(2.0), "{seen}");
    assert!(rejected["malformed"].as_f64() >= Some(2.0), "{seen}");
    assert!(
        seen["throughput"]["legend"]
            .as_str()
            .is_some_and(|l| l.contains("unauthorized")),
        "{seen}"
    );
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
        serde_json::json!(["in sync", "in sync", "in sync"]),
        "{seen}"
    );
    // Per-peer traffic: what arrived while the page was open shows in some peer's chart.
    // (The rogue may still be connected: it is a peer too.)
    assert!(seen["peer_traffic"]["charts"].as_u64() >= Some(3), "{seen}");
    assert!(
        seen["peer_traffic"]["received"].as_f64() > Some(0.0),
        "{seen}"
    );
    // The wallet's credentials, verified by the node now.
    let mut verdicts: Vec<&str> = seen["tenant"]["wallet"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    verdicts.sort();
    assert_eq!(verdicts, ["untrusted_issuer", "valid"], "{seen}");
    // The live event view showed the DID created elsewhere as it was stored here.
    assert_eq!(seen["events"]["state"], "open", "{seen}");
    assert!(seen["events"]["did_rows"].as_u64() >= Some(1), "{seen}");
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    for page in [
        "network",
        "throughput",
        "tenants",
        "directory",
        "audit",
        "events",
    ] {
        assert!(shots.join(format!("{page}.png")).is_file(), "{page}");
    }
}
