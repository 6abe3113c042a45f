//! kill -9 at random moments during registrations (RELIABILITY.md): the GP's node takes
//! localisation registrations, consent registrations (private transactions sealed for the
//! holders' nodes) and DID updates without pause, and is killed with SIGKILL at a random moment
//! three times. Afterwards every node holds the same set, everything the node acknowledged is
//! there (on the GP's node and where it travels), and no consent reached a node that holds no
//! data on its patient.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use knoop_e2e::care::{world, KERKRADE_GP, KERKRADE_PHARMACY, LEIDEN_HOSPITAL};
use knoop_e2e::Node;
use serde_json::{json, Value};

/// The `n`th valid BSN (the 11-test): a distinct patient per counter value.
fn bsn(n: u32) -> String {
    static ALL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| knoop_e2e::valid_bsns(100_000_000, 20_000))[n as usize].clone()
}

/// What the GP's node acknowledged.
#[derive(Default, Debug)]
struct Acked {
    registered: Vec<String>,
    consents: Vec<(String, String)>,
    /// The `n` of each acknowledged update of the GP's `#crash` service (its endpoint ends in
    /// `/n`).
    services: Vec<u32>,
}

/// Registers, consents and updates on `rpc` as `gp` for patients `from..`, until `stop`.
async fn workload(
    rpc: String,
    gp: String,
    from: u32,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{rpc}{path}")).json(&body);
        async move {
            let r = req.send().await.ok()?;
            (r.status().as_u16() == 201).then_some(())?;
            r.json::<Value>().await.ok()
        }
    };
    let mut n = from;
    while !stop.load(Ordering::Relaxed) {
        let patient = bsn(n);
        if post(
            "/v1/localisation/register",
            json!({"holder": gp, "patient": {"value": patient}, "categories": ["medication"]}),
        )
        .await
        .is_some()
        {
            acked.lock().unwrap().registered.push(patient.clone());
        }
        if let Some(v) = post(
            "/v1/consent",
            json!({"issuer": gp, "patient": {"value": patient},
                "decision": "permit", "purpose": ["regular-care"], "dataCategories": ["medication"],
                "method": "verbal"}),
        )
        .await
        {
            let id = v["credential"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            acked.lock().unwrap().consents.push((patient.clone(), id));
        }
        let put = http
            .put(format!("{rpc}/v1/dids/{gp}/services/crash"))
            .json(
                &json!({"type": "Crashtest", "serviceEndpoint": format!("https://gp.example/{n}")}),
            )
            .send()
            .await;
        match put {
            Ok(r) if r.status().is_success() => acked.lock().unwrap().services.push(n),
            Ok(r) => eprintln!(
                "DID update refused: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => {}
        }
        n += 1;
    }
}

async fn consent_ids(node: &Node, patient: &str) -> Vec<String> {
    let (_, v) = node
        .post("/v1/consent/list", &json!({"patient": {"value": patient}}))
        .await
        .unwrap();
    v["consents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_registrations_loses_nothing_acknowledged() {
    kill_nine_during_registrations(&[]).await;
}

/// The same with the GP's node keeping its whole state (log, private records, keys) in a
/// PostgreSQL database (`store.postgres`): a commit the database acknowledged is as durable as
/// rocksdb's fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_with_the_store_in_postgresql_loses_nothing_acknowledged() {
    let db = knoop_e2e::postgres::fresh_database();
    let held = kill_nine_during_registrations(&[(1, ("KNOOP_STORE__POSTGRES", db.clone()))]).await;
    // The GP's node really kept its log there, and nothing in its data directory.
    let rows = knoop_e2e::postgres::psql_in(&db, "SELECT count(*) FROM knoop_tx");
    assert_eq!(rows.trim().parse::<u64>().ok(), Some(held), "{rows}");
}

/// Runs the scenario; returns how many transactions (DID operations included) the GP's node
/// holds at the end.
async fn kill_nine_during_registrations(extra: &[(usize, (&str, String))]) -> u64 {
    let mut w = world(
        "opt-in",
        &[LEIDEN_HOSPITAL, KERKRADE_GP, KERKRADE_PHARMACY],
        extra,
    )
    .await;
    let (hospital, gp) = (w.orgs[0].did.clone(), w.orgs[1].did.clone());
    // The hospital holds data on the first patients: their consents are sealed for its node too.
    for n in 0..40 {
        let (code, v) = w.net.nodes[0]
            .post(
                "/v1/localisation/register",
                &json!({"holder": hospital, "patient": {"value": bsn(n)}, "categories": ["lab"]}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{v}");
    }

    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut from = 0;
    for _ in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(workload(
            w.net.nodes[1].rpc.clone(),
            gp.clone(),
            from,
            stop.clone(),
            acked.clone(),
        ));
        // A moment that differs each round and each run.
        let wait = 700 + rand::random::<u64>() % 1800;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        w.net.nodes[1].kill9().unwrap();
        stop.store(true, Ordering::Relaxed);
        task.await.unwrap();
        w.net.nodes[1].restart().await.unwrap();
        from += 1000;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.registered.len() >= 3 && acked.consents.len() >= 3 && acked.services.len() >= 3,
        "too little acknowledged to judge: {acked:?}"
    );

    // One set everywhere.
    let held = w.net.nodes[1].transactions().await.unwrap();
    w.net
        .wait_converged(&[0, 1, 2], held, Duration::from_secs(90))
        .await
        .unwrap();

    // The DID document every node resolves is at least as new as the last acknowledged update
    // (a later one may have landed unacknowledged, cut off by the kill).
    let last = acked.services.iter().max().copied().unwrap_or_default();
    for node in &w.net.nodes {
        let (_, doc) = node.get(&format!("/v1/dids/{gp}")).await.unwrap();
        let service = doc["didDocument"]["service"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == format!("{gp}#crash")))
            .unwrap_or_else(|| panic!("{}: no #crash service: {doc}", node.name))
            .clone();
        let n: u32 = service["serviceEndpoint"]
            .as_str()
            .and_then(|e| e.rsplit('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(
            n >= last,
            "{}: update {last} acknowledged, document at {n}",
            node.name
        );
    }
    // Every acknowledged consent is on the GP's node, and on the hospital's where the hospital
    // holds data on the patient; never on the pharmacy's, which holds none.
    for (patient, id) in &acked.consents {
        assert!(
            consent_ids(&w.net.nodes[1], patient).await.contains(id),
            "{id} lost on the GP's node"
        );
        let at_hospital = (0..40).any(|k| bsn(k) == *patient);
        if at_hospital {
            let mut found = false;
            for _ in 0..100 {
                if consent_ids(&w.net.nodes[0], patient).await.contains(id) {
                    found = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(found, "{id} never reached the hospital's node");
        }
        assert!(
            consent_ids(&w.net.nodes[2], patient).await.is_empty(),
            "a consent on {patient} reached the pharmacy's node"
        );
    }
    // Every acknowledged registration is found from another node.
    for patient in acked.registered.iter().take(10) {
        let (code, v) = w.net.nodes[0]
            .post("/v1/localisation/lookup",
                &json!({"requester": hospital, "patient": {"value": patient}, "purpose": "regular-care"}))
            .await
            .unwrap();
        assert_eq!(code, 200, "{v}");
        assert!(
            v.to_string().contains(&gp),
            "the GP's registration of {patient} lost: {v}"
        );
    }
    eprintln!(
        "acknowledged across three kills: {} registrations, {} consents, {} DID updates",
        acked.registered.len(),
        acked.consents.len(),
        acked.services.len()
    );
    let status = w.net.nodes[1].status().await.unwrap();
    status["transactions"].as_u64().unwrap_or_default()
}
