//! Network-level benchmarks over real node processes on loopback (BENCHMARKS.md).
//!
//! `KNOOP_BIN=target/release/knoop cargo run -p knoop-e2e --bin netbench -- propagation`
//! `KNOOP_BIN=target/release/knoop cargo run -p knoop-e2e --bin netbench -- catchup`
//! `KNOOP_BIN=target/release/knoop cargo run -p knoop-e2e --bin netbench -- locjoin`
//! `KNOOP_BIN=target/release/knoop cargo run -p knoop-e2e --bin netbench -- locstore --data-dir DIR`
//! `KNOOP_BIN=target/release/knoop cargo run -p knoop-e2e --bin netbench -- dids`
//! `KNOOP_BIN=target/release/knoop cargo run -p knoop-e2e --bin netbench -- directory`
//! `KNOOP_BIN=target/release/knoop cargo run -p knoop-e2e --bin netbench -- story2`
//! `KNOOP_BIN=target/release/knoop target/release/netbench sustained --nodes 20 --rate 1000 --seconds 60`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use knoop_e2e::{load, Network, Node};
use knoop_gossip::TxId;
use serde_json::{json, Value};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let out = match args.get(1).map(String::as_str) {
        Some("propagation") => {
            propagation(
                arg("--nodes", 10) as usize,
                arg("--count", 300),
                arg("--rate", 20),
            )
            .await?
        }
        Some("catchup") => catchup(arg("--txs", 100_000)).await?,
        Some("locjoin") => locjoin(arg("--patients", 100_000), arg("--away", 10_000)).await?,
        Some("locstore") => {
            let dir = args
                .iter()
                .position(|a| a == "--data-dir")
                .and_then(|i| args.get(i + 1))
                .context("locstore needs --data-dir DIR (made by `knoop bench localisation --did-keys --dir DIR/store`)")?;
            let away = args
                .iter()
                .position(|a| a == "--away")
                .and_then(|i| args.get(i + 1))
                .map(std::path::Path::new);
            locstore(std::path::Path::new(dir), away).await?
        }
        Some("dids") => dids(arg("--dids", 1_000), arg("--rounds", 5)).await?,
        Some("directory") => directory(arg("--orgs", 10_000), arg("--queries", 1_000)).await?,
        Some("story2") => story2(arg("--fetches", 30)).await?,
        Some("sustained") => {
            sustained(
                arg("--nodes", 20) as usize,
                arg("--rate", 1000),
                arg("--seconds", 60),
            )
            .await?
        }
        _ => anyhow::bail!(
            "usage: netbench propagation [--nodes N --count N --rate R] | catchup [--txs N] \
             | locjoin [--patients N --away M] | locstore --data-dir DIR [--away DIR] \
             | dids [--dids N --rounds R] | directory [--orgs N --queries Q] \
             | story2 [--fetches N] | sustained [--nodes N --rate R --seconds S]"
        ),
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// One node hosts `n` tenant DIDs (created over RPC, 8 at a time); a second node receives them
/// over the network. Then every DID is resolved `rounds` times on each node, one request at a
/// time: resolution latency over HTTP as a client sees it.
async fn dids(n: u64, rounds: u64) -> anyhow::Result<Value> {
    let net = Network::start(2).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let host = &net.nodes[0];
    let t0 = Instant::now();
    let created: Vec<String> = futures::stream::iter(0..n)
        .map(|i| async move {
            let (code, body) = host
                .post(
                    "/v1/dids",
                    &json!({"services": [{"type": "FHIR", "serviceEndpoint": format!("https://org{i}.example/fhir")}]}),
                )
                .await?;
            anyhow::ensure!(code == 201, "create failed: {body}");
            Ok(body["did"].as_str().unwrap_or_default().to_owned())
        })
        .buffer_unordered(8)
        .collect::<Vec<anyhow::Result<String>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let create_s = t0.elapsed().as_secs_f64();
    let known = |s: &Value| s["dids_known"].as_u64().unwrap_or(0);
    let t1 = Instant::now();
    while known(&net.nodes[1].status().await?) < n + 2 {
        anyhow::ensure!(
            t1.elapsed() < Duration::from_secs(120),
            "DIDs did not spread"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spread_s = t1.elapsed().as_secs_f64();
    let mut per_node = Vec::new();
    for node in &net.nodes {
        let mut lat = Vec::with_capacity((n * rounds) as usize);
        for _ in 0..rounds {
            for did in &created {
                let t = Instant::now();
                let (code, _) = node.get(&format!("/v1/dids/{did}")).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(code == 200, "{did} did not resolve on {}", node.name);
            }
        }
        let mut l2 = lat.clone();
        per_node.push(json!({
            "node": node.name,
            "resolutions": lat.len(),
            "p50_ms": pct(&mut lat, 0.5),
            "p99_ms": pct(&mut l2, 0.99),
            "rss_kib": node.pid().and_then(rss_kib),
        }));
    }
    Ok(json!({
        "dids": n,
        "create_s": create_s,
        "creates_per_s": n as f64 / create_s,
        "spread_to_second_node_s_after_last_create": spread_s,
        "resolution": per_node,
    }))
}

const CITIES: [&str; 10] = [
    "Leiden",
    "Heerlen",
    "Utrecht",
    "Groningen",
    "Zwolle",
    "Breda",
    "Delft",
    "Almere",
    "Arnhem",
    "Maastricht",
];

/// A registry authority certifies `n` organisations (published organisation credentials); once
/// a second node has indexed them all, `queries` directory searches run there, one at a time.
async fn directory(n: u64, queries: u64) -> anyhow::Result<Value> {
    let net = Network::start(2).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (a, b) = (&net.nodes[0], &net.nodes[1]);
    let (_, ra) = a.post("/v1/dids", &json!({})).await?;
    let ra = ra["did"].as_str().unwrap_or_default().to_owned();
    for node in &net.nodes {
        node.put(
            &format!("/v1/trust/CareOrganizationCredential/{ra}"),
            &json!({}),
        )
        .await?;
    }
    let t0 = Instant::now();
    let ra_ref = &ra;
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| async move {
            let subject = json!({
                "id": format!("did:knoop:org{i:06}"),
                "legalName": format!("Zorggroep {i:06}"),
                "city": CITIES[(i % 10) as usize],
                "organizationType": if i % 3 == 0 { "hospital" } else { "gp" },
                "ura": format!("{:08}", 10_000_000 + i),
            });
            let (code, body) = a
                .post(
                    "/v1/credentials",
                    &json!({"issuer": ra_ref, "type": "CareOrganizationCredential", "subject": subject, "publish": true}),
                )
                .await?;
            anyhow::ensure!(code == 201, "issue failed: {body}");
            Ok(())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let issue_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    loop {
        let s = b.status().await?;
        if s["credentials_indexed"].as_u64().unwrap_or(0) >= n {
            break;
        }
        anyhow::ensure!(t1.elapsed() < Duration::from_secs(600), "not indexed: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let index_s = t1.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let mut fhir_lat = Vec::new();
    for q in 0..queries {
        let city = CITIES[(q % 10) as usize];
        let t = Instant::now();
        let (code, v) = b
            .get(&format!(
                "/v1/directory?name=zorggroep%20{:04}&city={city}",
                q % 10_000 / 10
            ))
            .await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            code == 200 && v["organizations"].is_array(),
            "search failed: {v}"
        );
        let t = Instant::now();
        let (code, _) = b
            .get(&format!(
                "/fhir/Organization?identifier=http://fhir.nl/fhir/NamingSystem/ura|{:08}",
                10_000_000 + q % n
            ))
            .await?;
        fhir_lat.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(code == 200, "fhir search failed");
    }
    let (mut l2, mut f2) = (lat.clone(), fhir_lat.clone());
    Ok(json!({
        "organizations": n,
        "issue_and_publish_s": issue_s,
        "indexed_on_second_node_s_after_last_issue": index_s,
        "directory_search_ms": {"p50": pct(&mut lat, 0.5), "p99": pct(&mut l2, 0.99)},
        "fhir_organization_by_ura_ms": {"p50": pct(&mut fhir_lat, 0.5), "p99": pct(&mut f2, 0.99)},
        "rss_kib_second_node": b.pid().and_then(rss_kib),
    }))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Calls `on_line(arrival, line)` for every line of a node's event stream, in a task.
fn each_event_line(node: &Node, mut on_line: impl FnMut(Instant, &str) + Send + 'static) {
    let url = format!("{}/v1/events", node.rpc);
    tokio::spawn(async move {
        let Ok(resp) = reqwest::get(&url).await else {
            return;
        };
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            let now = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                on_line(now, &line);
            }
        }
    });
}

/// Records when each transaction id shows up in a node's event stream.
fn watch(node: &Node, seen: Arc<Mutex<HashMap<String, Vec<Instant>>>>) {
    each_event_line(node, move |now, line| {
        if let Some(data) = line.strip_prefix("data: ") {
            if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                if let Some(id) = v["id"].as_str() {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(id.to_owned())
                        .or_default()
                        .push(now);
                }
            }
        }
    });
}

async fn propagation(n: usize, count: u64, rate: u64) -> anyhow::Result<Value> {
    let net = Network::start(n).await?;
    // Let discovery and the gossipsub mesh settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = Arc::new(Mutex::new(HashMap::new()));
    for node in &net.nodes {
        watch(node, seen.clone());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let me = knoop_e2e::ClientDid::new(SigningKey::from_bytes(&[9; 32]));
    let (code, body) = net.nodes[1 % n]
        .post("/v1/transactions", &knoop_e2e::submission(&me.root))
        .await?;
    anyhow::ensure!(code == 201, "DID create failed: {body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut prev: Option<(TxId, u64)> = None;
    let mut sent: Vec<(String, Instant)> = Vec::new();
    let t0 = Instant::now();
    for i in 0..count {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let tx = me.sign(
            "application/x-knoop-bench",
            vec![i as u8; 200],
            &prev.into_iter().collect::<Vec<_>>(),
        );
        prev = Some((tx.id(), tx.header().lc));
        // One author on one node keeps the chain's parents ahead of its children.
        let node = &net.nodes[1 % n];
        let start = Instant::now();
        let (code, body) = node
            .post("/v1/transactions", &json!({"envelope": tx.envelope(), "payload": B64.encode(tx.payload().unwrap_or_default())}))
            .await?;
        anyhow::ensure!(code == 201, "submit failed: {body}");
        sent.push((tx.id().to_hex(), start));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let (mut all, mut complete) = (Vec::new(), 0usize);
    for (id, start) in &sent {
        if let Some(times) = seen.get(id) {
            if times.len() >= n {
                complete += 1;
                let last = times.iter().max().copied().unwrap_or(*start);
                all.push(last.duration_since(*start).as_secs_f64() * 1000.0);
            }
        }
    }
    Ok(json!({
        "bench": "propagation",
        "nodes": n,
        "transactions": count,
        "rate_per_s": rate,
        "reached_all_nodes": complete,
        "time_to_all_nodes_ms": {"p50": pct(&mut all, 0.5), "p99": pct(&mut all, 0.99), "max": pct(&mut all, 1.0)},
    }))
}

async fn catchup(txs: u64) -> anyhow::Result<Value> {
    let mut net = Network::start(1).await?;
    let a = &net.nodes[0];
    let report = load(
        std::slice::from_ref(&a.rpc),
        txs,
        0.0,
        &["--batch", "500", "--concurrency", "4"],
    )?;
    anyhow::ensure!(report["accepted"].as_u64() == Some(txs), "load: {report}");
    // Raw size of what a newcomer must receive: every envelope and payload.
    let mut raw = 0u64;
    let mut after = 0u64;
    loop {
        let (_, page) = a
            .get(&format!("/v1/transactions?after={after}&limit=1000"))
            .await?;
        let items = page["items"].as_array().context("list")?;
        if items.is_empty() {
            break;
        }
        for it in items {
            raw += it["envelope"].as_str().map_or(0, |e| e.len()) as u64;
            raw += it["payload"]
                .as_str()
                .map_or(0, |p| B64.decode(p).map_or(0, |b| b.len())) as u64;
        }
        after = page["next"].as_u64().unwrap_or(after);
    }
    let rss_a = a.pid().and_then(rss_kib);
    let t0 = Instant::now();
    net.add().await?;
    let took = net
        .wait_converged(&[0, 1], txs, Duration::from_secs(600))
        .await?;
    let s = net.nodes[1].status().await?;
    let bytes_in = s["sync"]["bytes_in"].as_u64().unwrap_or(0);
    let rss_b = net.nodes[1].pid().and_then(rss_kib);
    // Start-up with the whole set on disk: stop cleanly, start, time until the RPC answers.
    anyhow::ensure!(net.nodes[1].stop().await?, "unclean stop");
    let t_boot = Instant::now();
    net.nodes[1].restart().await?;
    let boot = t_boot.elapsed();
    let after = net.nodes[1].transactions().await?;
    anyhow::ensure!(after == txs, "restart came back with {after}");
    Ok(json!({
        "bench": "catchup",
        "transactions": txs,
        "raw_bytes": raw,
        "seconds_to_converge": took.as_secs_f64(),
        "seconds_including_start": t0.elapsed().as_secs_f64(),
        "sync_bytes_received": bytes_in,
        "ratio_to_raw": bytes_in as f64 / raw as f64,
        "rss_kib_node_with_all": rss_a,
        "rss_kib_newcomer_after": rss_b,
        "restart_to_rpc_ready_ms": boot.as_secs_f64() * 1000.0,
        "note": "sync_bytes_received counts reconciliation messages and fetched envelopes + content; Noise/Yamux framing adds a few percent",
    }))
}

/// Registers `bsns` at `node` as `holder`, 1024 at a time; the seconds it took.
async fn register_all(node: &Node, holder: &str, bsns: &[String]) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let failures = futures::stream::iter(bsns.iter())
        .map(|bsn| async move {
            let body = json!({"holder": holder, "patient": {"value": bsn}, "categories": ["lab"]});
            match node.post("/v1/localisation/register", &body).await {
                Ok((201, _)) => 0u64,
                _ => 1,
            }
        })
        .buffer_unordered(1024)
        .fold(0u64, |a, b| async move { a + b })
        .await;
    anyhow::ensure!(failures == 0, "{failures} registrations failed");
    Ok(t0.elapsed().as_secs_f64())
}

/// Localisation at scale over real processes (issue 18): one holder node registers `patients`
/// patients over its RPC (entries batched, `specs/consent-localisation.md` §6.2); a fresh node
/// joins and catches up; then it is stopped while `away` more are registered, and comes back.
/// Argon2id runs with the tests' small parameters (1 MiB, t = 1): what is measured is the
/// index and the network, not the derivation.
async fn locjoin(patients: u64, away: u64) -> anyhow::Result<Value> {
    let mut env = knoop_e2e::privacy_env("opt-out");
    env.push(("KNOOP_LOCALISATION__BATCH_INTERVAL".into(), "200ms".into()));
    let mut net = Network::start_with_env(1, env.clone()).await?;
    let (code, body) = net.nodes[0].post("/v1/dids", &json!({})).await?;
    anyhow::ensure!(code == 201, "{body}");
    let holder = body["did"].as_str().context("did")?.to_owned();
    let bsns = knoop_e2e::valid_bsns(100_000_000, (patients + away) as usize);
    let (first, later) = bsns.split_at(patients as usize);
    let reg_s = register_all(&net.nodes[0], &holder, first).await?;
    let batches = knoop_e2e::content_transactions(&net.nodes[0].status().await?);

    // A fresh node joins.
    let t0 = Instant::now();
    net.add_with_env(env.clone()).await?;
    let join = net
        .wait_converged(&[0, 1], batches, Duration::from_secs(3600))
        .await?;
    let join_total = t0.elapsed();
    let bytes_join = sample(&net.nodes[1]).await.wire_bytes as u64;
    let rss_b = net.nodes[1].pid().and_then(rss_kib);

    // It goes away while `away` more patients are registered, then comes back.
    anyhow::ensure!(net.nodes[1].stop().await?, "unclean stop");
    let reg_away_s = register_all(&net.nodes[0], &holder, later).await?;
    let batches_all = knoop_e2e::content_transactions(&net.nodes[0].status().await?);
    let t_back = Instant::now();
    net.nodes[1].restart().await?;
    let back = net
        .wait_converged(&[0, 1], batches_all, Duration::from_secs(3600))
        .await?;
    let bytes_back = sample(&net.nodes[1]).await.wire_bytes as u64;
    Ok(json!({
        "bench": "locjoin",
        "entries": patients,
        "batches": batches,
        "registrations_per_second": patients as f64 / reg_s,
        "join_seconds": join.as_secs_f64(),
        "join_seconds_including_start": join_total.as_secs_f64(),
        "join_wire_bytes": bytes_join,
        "join_wire_bytes_per_entry": bytes_join as f64 / patients as f64,
        "rss_kib_newcomer_after_join": rss_b,
        "note": "wire bytes: the newcomer's libp2p counters, in + out, all protocols, since its (re)start",
        "away_entries": away,
        "away_batches": batches_all - batches,
        "away_registration_seconds": reg_away_s,
        "back_seconds_including_restart": t_back.elapsed().as_secs_f64(),
        "back_converge_seconds": back.as_secs_f64(),
        "back_wire_bytes": bytes_back,
        "back_wire_bytes_per_entry": bytes_back as f64 / away.max(1) as f64,
    }))
}

/// A fresh node's catch-up from a node holding a national-scale localisation index (issue 18):
/// node A starts on `data_dir`, whose store `knoop bench localisation --did-keys --dir
/// <data_dir>/store` generated (holder nodes as DIDs, entries in batches of 1,024); node B joins
/// and reconciles: a fresh node, or with `away` a node on the copy the generator made before
/// its last patients (`--copy-to <away>/store --copy-at N`: a node that was away while they
/// were registered). Timed: A's start-up, B's join until both hold one digest; B's wire bytes
/// and memory.
async fn locstore(
    data_dir: &std::path::Path,
    away: Option<&std::path::Path>,
) -> anyhow::Result<Value> {
    let env = knoop_e2e::privacy_env("opt-out");
    let root = tempfile::Builder::new()
        .prefix("knoop-locstore-")
        .tempdir()?;
    let t_a = Instant::now();
    let a = Node::start_with_env("a", data_dir, &[], env.clone()).await?;
    let a_up = t_a.elapsed();
    let status = a.status().await?;
    let total = status["transactions"].as_u64().unwrap_or(0);
    let digest = status["digest"].as_str().unwrap_or_default().to_owned();
    let store_bytes = status["store_bytes"].as_u64().unwrap_or(0);
    let t0 = Instant::now();
    let b_dir = away.map_or_else(|| root.path().join("b"), std::path::Path::to_path_buf);
    let b = Node::start_with_env("b", &b_dir, std::slice::from_ref(&a.p2p), env).await?;
    let held_at_start = match away {
        Some(_) => b.status().await?["transactions"].as_u64().unwrap_or(0),
        None => 0,
    };
    // B's own node DID is one more transaction, which A learns as well.
    let joined = loop {
        let (sa, sb) = (a.status().await?, b.status().await?);
        let (da, db) = (sa["digest"].as_str(), sb["digest"].as_str());
        if da.is_some() && da == db && sb["transactions"].as_u64().unwrap_or(0) > total {
            break t0.elapsed();
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(7200),
            "no convergence in two hours"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let wire = sample(&b).await.wire_bytes as u64;
    let rss_b = b.pid().and_then(rss_kib);
    let rss_a = a.pid().and_then(rss_kib);
    let sync_b = b.status().await?["sync"].clone();
    Ok(json!({
        "bench": "locstore",
        "newcomer": if away.is_some() { "back from away" } else { "fresh" },
        "newcomer_held_at_start": held_at_start,
        "transactions": total,
        "digest_before_join": digest,
        "store_bytes_a": store_bytes,
        "a_start_to_rpc_ready_s": a_up.as_secs_f64(),
        "join_seconds_including_start": joined.as_secs_f64(),
        "join_wire_bytes": wire,
        "rss_kib_a": rss_a,
        "rss_kib_b_after_join": rss_b,
        "sync_b": sync_b,
        "note": "wire bytes: the newcomer's libp2p counters, in + out, all protocols, since its start",
    }))
}

/// Story 2's emergency fetch (`specs/data-fetch.md` §5) with three holders, each on its own
/// node in front of its own FHIR source, over HTTPS: the emergency department's node
/// localises the patient (the default Argon2id cost), gets three tokens and fetches
/// medication and allergies from all three in parallel. `fetches` answers are timed one at a
/// time, after the first complete one, 1.1 s apart (holders allow one locate per second per
/// requester, burst 30).
async fn story2(fetches: u64) -> anyhow::Result<Value> {
    use knoop_e2e::care::{all_ok, prepare_story_2, resources, world, PIETER, VELUWE};
    let full_cost: Vec<(usize, (&str, String))> = (0..VELUWE.len())
        .flat_map(|i| {
            [
                (i, ("KNOOP_LOCALISATION__ARGON2_M_KIB", "65536".to_owned())),
                (i, ("KNOOP_LOCALISATION__ARGON2_T", "3".to_owned())),
            ]
        })
        .collect();
    let w = world("opt-out", &VELUWE, &full_cost).await;
    prepare_story_2(&w).await;
    let reason = Some("TIA, aphasic; CT angiography with contrast planned");
    let complete = |v: &Value| all_ok(v, 3);
    let t0 = Instant::now();
    let first = w
        .fetch_until(
            "three holders",
            0,
            PIETER,
            "medication-overview",
            &["medication", "allergies"],
            "emergency",
            reason,
            complete,
        )
        .await;
    let first_s = t0.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let mut server_ms = Vec::new();
    for _ in 0..fetches {
        let t = Instant::now();
        let v = w
            .fetch(
                0,
                PIETER,
                "medication-overview",
                &["medication", "allergies"],
                "emergency",
                reason,
            )
            .await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(complete(&v), "incomplete answer: {v}");
        server_ms.push(v["ms"].as_f64().unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    Ok(json!({
        "holders": 3,
        "resources_per_answer": resources(&first).len(),
        "first_complete_answer_s": first_s,
        "fetches": fetches,
        "latency_ms": {"p50": q(0.5), "p99": q(0.99), "max": lat.last()},
        "mean_node_ms": server_ms.iter().sum::<f64>() / server_ms.len().max(1) as f64,
    }))
}

/// Per-node counters read before and after a run.
#[derive(Clone, Copy, Default)]
struct NodeSample {
    /// utime + stime, clock ticks (1/100 s).
    cpu_ticks: u64,
    /// libp2p wire bytes, in + out (every byte on every connection).
    wire_bytes: f64,
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

async fn sample(node: &Node) -> NodeSample {
    let text = node.metrics().await.unwrap_or_default();
    let wire_bytes = text
        .lines()
        .filter(|l| l.starts_with("knoop_p2p_libp2p_bandwidth_bytes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    NodeSample {
        cpu_ticks: node.pid().and_then(cpu_ticks).unwrap_or(0),
        wire_bytes,
    }
}

/// Records, per transaction id, how many nodes stored it and when the first and the last did.
/// Reads only the id out of each event: at 1,000 tx/s on 20 nodes this is 20,000 events/s.
/// Per transaction id: how many nodes stored it, when the first and the last did.
type Arrivals = Arc<Mutex<HashMap<String, (usize, Instant, Instant)>>>;

fn watch_arrivals(node: &Node, seen: Arrivals) {
    each_event_line(node, move |now, line| {
        let Some(at) = line.find("\"id\":\"") else {
            return;
        };
        if let Some(id) = line.get(at + 6..at + 6 + 64) {
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            let e = seen.entry(id.to_owned()).or_insert((0, now, now));
            e.0 += 1;
            e.2 = now;
        }
    });
}

/// Sustained publication on an `n`-node network: `rate` transactions/s for `secs` seconds,
/// spread over every node's RPC by `knoop load` (batches of 20). Measures propagation (from
/// the first node storing a transaction to the last), time to convergence after the load
/// stops, CPU and memory per node, and libp2p wire bytes per transaction per node.
async fn sustained(n: usize, rate: u64, secs: u64) -> anyhow::Result<Value> {
    let net = Network::start(n).await?;
    let want_peers = (n - 1).min(6) as u64;
    let t_mesh = Instant::now();
    loop {
        let mut ok = true;
        for node in &net.nodes {
            if node.status().await?["peers"].as_u64().unwrap_or(0) < want_peers {
                ok = false;
            }
        }
        if ok || t_mesh.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the gossipsub mesh settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen: Arrivals = Arc::new(Mutex::new(HashMap::new()));
    for node in &net.nodes {
        watch_arrivals(node, seen.clone());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut before = Vec::new();
    for node in &net.nodes {
        before.push(sample(node).await);
    }
    let base_tx = net.nodes[0].status().await?["transactions"]
        .as_u64()
        .unwrap_or(0);
    let count = rate * secs;
    let urls = net.rpc_urls(&(0..n).collect::<Vec<_>>());
    let t0 = Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        load(
            &urls,
            count,
            rate as f64,
            &["--batch", "20", "--concurrency", "16"],
        )
    })
    .await??;
    let load_secs = t0.elapsed().as_secs_f64();
    let t_end = Instant::now();
    // Convergence: every node holds the same set, with everything the load stored.
    let accepted = report["accepted"].as_u64().unwrap_or(0);
    let mut converged = None;
    let mut last = (Vec::new(), 0usize);
    while t_end.elapsed() < Duration::from_secs(600) {
        let mut digests = std::collections::BTreeSet::new();
        let mut counts = Vec::new();
        for node in &net.nodes {
            let s = node.status().await?;
            digests.insert(s["digest"].as_str().unwrap_or_default().to_owned());
            counts.push(s["transactions"].as_u64().unwrap_or(0));
        }
        if digests.len() == 1 && counts.iter().all(|&c| c >= base_tx + accepted) {
            converged = Some(t_end.elapsed().as_secs_f64());
            break;
        }
        last = (counts, digests.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let mut after = Vec::new();
    let mut rss = Vec::new();
    let mut sync_rounds = Vec::new();
    for node in &net.nodes {
        after.push(sample(node).await);
        rss.push(node.pid().and_then(rss_kib).unwrap_or(0) as f64 / 1024.0);
        sync_rounds.push(node.status().await?["sync"]["rounds"].as_u64().unwrap_or(0) as f64);
    }
    let mut cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.cpu_ticks - b.cpu_ticks) as f64 / 100.0 / elapsed * 100.0)
        .collect();
    let mut bytes_per_tx: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.wire_bytes - b.wire_bytes) / accepted.max(1) as f64)
        .collect();
    let cpu_total: f64 = cpu.iter().sum();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let (mut prop, mut incomplete) = (Vec::new(), 0u64);
    for (count, first, last) in seen.values() {
        if *count >= n {
            prop.push(last.duration_since(*first).as_secs_f64() * 1000.0);
        } else {
            incomplete += 1;
        }
    }
    let reached = prop.len();
    Ok(json!({
        "bench": "sustained",
        "nodes": n,
        "rate_per_s": rate,
        "seconds": secs,
        "load": report,
        "load_seconds": load_secs,
        "seconds_to_converge_after_load": converged,
        "not_converged_state": if converged.is_none() { json!({"counts": last.0, "digests": last.1}) } else { Value::Null },
        "propagation_ms_first_to_last_node": {
            "transactions_seen_on_all_nodes": reached,
            "seen_on_fewer_nodes_by_the_event_streams": incomplete,
            "p50": pct(&mut prop, 0.5), "p99": pct(&mut prop, 0.99), "max": pct(&mut prop, 1.0),
        },
        "cpu_percent_of_one_core_per_node": {"p50": pct(&mut cpu, 0.5), "max": pct(&mut cpu, 1.0), "sum_all_nodes": cpu_total},
        "rss_mb_per_node": {"p50": pct(&mut rss, 0.5), "max": pct(&mut rss, 1.0)},
        "wire_bytes_per_tx_per_node": {"p50": pct(&mut bytes_per_tx, 0.5), "max": pct(&mut bytes_per_tx, 1.0)},
        "sync_rounds_per_node_p50": pct(&mut sync_rounds, 0.5),
        "note": "propagation: first node storing a transaction (the one it was submitted to) to the last of all nodes, from their event streams; wire bytes: libp2p's counters (noise, yamux, gossipsub mesh copies, IHAVE/IWANT, reconciliation, identify, kad, ping), in + out, over the accepted transactions; CPU over the load and the convergence wait",
    }))
}
