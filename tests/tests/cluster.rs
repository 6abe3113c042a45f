//! A vendor's replicas of one node on one PostgreSQL database (`specs/storage.md` §9.6): the
//! replica that leads the store runs the node, the other stands by; killed with SIGKILL in the
//! middle of load, the leader is replaced by the standby within seconds, as the same node (peer
//! id, node DID, tenants' keys), with everything the leader acknowledged; the old leader, back,
//! stands by.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use knoop_e2e::{Network, Node};
use serde_json::{json, Value};

/// What the leader acknowledged: DIDs created, and updates of the first one's `#load` service.
#[derive(Default, Debug)]
struct Acked {
    dids: Vec<String>,
    updates: Vec<u32>,
}

/// Creates DIDs and updates the first one on `rpc` until `stop`.
async fn workload(rpc: String, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let created = http
            .post(format!("{rpc}/v1/dids"))
            .json(&json!({}))
            .send()
            .await;
        if let Ok(r) = created {
            if r.status().as_u16() == 201 {
                if let Ok(v) = r.json::<Value>().await {
                    if let Some(did) = v["did"].as_str() {
                        acked.lock().unwrap().dids.push(did.to_owned());
                    }
                }
            }
        }
        let first = acked.lock().unwrap().dids.first().cloned();
        if let Some(did) = first {
            let put = http
                .put(format!("{rpc}/v1/dids/{did}/services/load"))
                .json(&json!({"type": "Load", "serviceEndpoint": format!("https://vendor.example/{n}")}))
                .send()
                .await;
            if put.is_ok_and(|r| r.status().is_success()) {
                acked.lock().unwrap().updates.push(n);
            }
        }
        n += 1;
    }
}

fn replica_env(db: &str) -> Vec<(String, String)> {
    [
        ("KNOOP_STORE__POSTGRES", db.to_owned()),
        // Replicas share the keystore, so they share its master key.
        ("KNOOP_KEYS__MASTER_KEY", "7c".repeat(32)),
        ("KNOOP_STORE__LEASE", "2s".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_when_the_leader_is_killed() {
    let mut net = Network::start(2).await.unwrap();
    let db = knoop_e2e::postgres::fresh_database();
    let root = net.root.path().to_path_buf();
    let mut a = Node::start_with_env(
        "replica-a",
        &root.join("replica-a"),
        &net.bootstrap(),
        replica_env(&db),
    )
    .await
    .unwrap();
    let mut b = Node::spawn_with_env(
        "replica-b",
        &root.join("replica-b"),
        &net.bootstrap(),
        replica_env(&db),
    )
    .unwrap();

    // B stands by while A leads: it serves nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!b.rpc_is_up(), "the standby serves while the leader leads");
    assert!(b.exited().unwrap().is_none(), "{}", b.log_tail());
    assert!(b.log_text().contains("standing by"), "{}", b.log_tail());

    // Load on A, killed at a random moment in it.
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(workload(a.rpc.clone(), stop.clone(), acked.clone()));
    tokio::time::sleep(Duration::from_millis(1500 + rand::random::<u64>() % 1500)).await;
    a.kill9().unwrap();
    let killed = Instant::now();
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();

    // B takes over within seconds, as the same node.
    b.wait_up(Duration::from_secs(60)).await.unwrap();
    let failover = killed.elapsed();
    assert!(
        b.log_text().contains("took over the store's leadership"),
        "{}",
        b.log_tail()
    );
    assert_eq!(b.peer_id, a.peer_id, "the standby runs the same node");
    assert_eq!(b.status().await.unwrap()["store"], "postgresql");
    let status = b.status().await.unwrap();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.dids.len() >= 3 && !acked.updates.is_empty(),
        "too little acknowledged to judge: {acked:?}"
    );

    // Everything A acknowledged is on B.
    for did in &acked.dids {
        let (code, v) = b.get(&format!("/v1/dids/{did}")).await.unwrap();
        assert_eq!(
            code, 200,
            "{did} acknowledged by the leader, unknown to the standby: {v}"
        );
    }
    let first = &acked.dids[0];
    let last = acked.updates.iter().max().copied().unwrap_or_default();
    let (_, doc) = b.get(&format!("/v1/dids/{first}")).await.unwrap();
    let endpoint = doc["didDocument"]["service"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == format!("{first}#load")))
        .and_then(|s| s["serviceEndpoint"].as_str())
        .unwrap_or_else(|| panic!("no #load service: {doc}"))
        .to_owned();
    let at: u32 = endpoint.rsplit('/').next().unwrap().parse().unwrap();
    assert!(
        at >= last,
        "update {last} acknowledged, the document is at {at}"
    );

    // B acts for the tenants A created: their keys, sealed in the shared store, sign for it.
    let (code, v) = b
        .put(
            &format!("/v1/dids/{first}/services/load"),
            &json!({"type": "Load", "serviceEndpoint": "https://vendor.example/after-failover"}),
        )
        .await
        .unwrap();
    assert!((200..300).contains(&code), "{code} {v}");

    // The network holds one set with B in it.
    let held = knoop_e2e::content_transactions(&b.status().await.unwrap());
    net.nodes.push(b);
    net.wait_converged(&[0, 1, 2], held, Duration::from_secs(60))
        .await
        .unwrap();

    // A, restarted, stands by behind B.
    let mut a2 = Node::spawn_with_env(
        "replica-a",
        &root.join("replica-a"),
        &net.bootstrap(),
        replica_env(&db),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!a2.rpc_is_up(), "two replicas serve at once");
    assert!(a2.exited().unwrap().is_none(), "{}", a2.log_tail());
    assert!(a2.log_text().contains("standing by"), "{}", a2.log_tail());
    let node_did = status["did"].as_str().unwrap_or_default();
    eprintln!(
        "failover: the standby answered {} ms after the leader's kill; {} DIDs and {} updates \
         acknowledged; node {node_did}",
        failover.as_millis(),
        acked.dids.len(),
        acked.updates.len()
    );
}

/// Creates DIDs through whichever replica answers (a load balancer's view: the RPC addresses in
/// `rpcs`, tried in turn) until `stop`; every 201 is acknowledged.
async fn balanced_workload(
    rpcs: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
) -> u32 {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut refused = 0;
    while !stop.load(Ordering::Relaxed) {
        let urls = rpcs.lock().unwrap().clone();
        let mut done = false;
        for rpc in urls {
            let Ok(r) = http
                .post(format!("{rpc}/v1/dids"))
                .json(&json!({}))
                .send()
                .await
            else {
                continue;
            };
            if r.status().as_u16() == 201 {
                if let Ok(v) = r.json::<Value>().await {
                    if let Some(did) = v["did"].as_str() {
                        acked.lock().unwrap().push(did.to_owned());
                        done = true;
                        break;
                    }
                }
            }
        }
        if !done {
            refused += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    refused
}

/// A rolling restart of both replicas (the standby, then the leader, which steps down on
/// SIGTERM) with load running: the standby takes over without waiting for the lease to run
/// out, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_the_replicas_under_load_loses_nothing() {
    let mut net = Network::start(2).await.unwrap();
    let db = knoop_e2e::postgres::fresh_database();
    let root = net.root.path().to_path_buf();
    let env = |lease: &str| {
        let mut e = replica_env(&db);
        e.retain(|(k, _)| k != "KNOOP_STORE__LEASE");
        e.push(("KNOOP_STORE__LEASE".into(), lease.into()));
        e
    };
    // The default lease (5 s): a handover faster than that is the step-down's doing.
    let mut a = Node::start_with_env(
        "replica-a",
        &root.join("replica-a"),
        &net.bootstrap(),
        env("5s"),
    )
    .await
    .unwrap();
    let b = Node::spawn_with_env(
        "replica-b",
        &root.join("replica-b"),
        &net.bootstrap(),
        env("5s"),
    )
    .unwrap();
    let rpcs = Arc::new(Mutex::new(vec![a.rpc.clone()]));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(balanced_workload(rpcs.clone(), stop.clone(), acked.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 1. The standby restarts.
    let mut b_old = b;
    assert!(!b_old.rpc_is_up());
    b_old.stop().await.unwrap();
    let mut b = Node::spawn_with_env(
        "replica-b",
        &root.join("replica-b"),
        &net.bootstrap(),
        env("5s"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 2. The leader restarts: SIGTERM, it steps down, the standby takes over.
    let before = acked.lock().unwrap().len();
    let t = Instant::now();
    assert!(
        a.stop().await.unwrap(),
        "the leader did not stop cleanly: {}",
        a.log_tail()
    );
    b.wait_up(Duration::from_secs(30)).await.unwrap();
    let handover = t.elapsed();
    assert!(a.log_text().contains("stepped down"), "{}", a.log_tail());
    *rpcs.lock().unwrap() = vec![b.rpc.clone()];
    let a2 = Node::spawn_with_env(
        "replica-a",
        &root.join("replica-a"),
        &net.bootstrap(),
        env("5s"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!a2.rpc_is_up(), "two replicas serve at once");
    stop.store(true, Ordering::Relaxed);
    let refused = load.await.unwrap();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        before >= 3 && acked.len() > before,
        "too little load on either side of the handover: {before} then {}",
        acked.len()
    );

    // Every acknowledged DID is on the new leader and on the other nodes.
    for did in &acked {
        let (code, v) = b.get(&format!("/v1/dids/{did}")).await.unwrap();
        assert_eq!(code, 200, "{did} acknowledged, then lost: {v}");
    }
    let held = knoop_e2e::content_transactions(&b.status().await.unwrap());
    net.nodes.push(b);
    net.wait_converged(&[0, 1, 2], held, Duration::from_secs(60))
        .await
        .unwrap();
    for did in acked.iter().rev().take(5) {
        let (code, _) = net.nodes[0].get(&format!("/v1/dids/{did}")).await.unwrap();
        assert_eq!(code, 200, "{did} did not reach the network");
    }
    eprintln!(
        "rolling restart: handover {} ms (lease 5 s); {} DIDs acknowledged, {} requests found \
         no replica serving",
        handover.as_millis(),
        acked.len(),
        refused
    );
}
