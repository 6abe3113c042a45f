//! `knoop load`: a load generator. Workers sign transactions locally (each worker chains its own
//! transactions, so every transaction has a causal parent after the first), submit them to one
//! or more nodes (worker w always to node w mod n) on a fixed schedule (transaction i is due at start + i/rate), and report
//! throughput, latency and outcomes.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use knoop_gossip::{TxBuilder, TxId};
use rand::RngCore;
use serde_json::{json, Value};

use crate::cli::args::LoadArgs;

/// Creates a DID for `key` on `target` (a create operation signed client-side) and returns
/// the `kid` to sign with and the create transaction as a parent.
async fn create_did(
    http: &reqwest::Client,
    target: &str,
    token: Option<&str>,
    key: &SigningKey,
) -> anyhow::Result<(String, (TxId, u64))> {
    use knoop_did::document::DidDocument;
    use knoop_did::knoop::{did_for_key, DidOp, SignerKid, VersionId, DID_OP_CONTENT_TYPE};
    let did = did_for_key(&key.verifying_key());
    let mut doc = DidDocument::new(&did);
    doc.add_ed25519(
        "key-1",
        &key.verifying_key(),
        &crate::identity::did_ops::SIGNING_RELATIONSHIPS,
    );
    let tx = TxBuilder::new(DID_OP_CONTENT_TYPE)
        .sign(key, DidOp::Create { document: doc }.to_bytes())?;
    let body =
        json!({"envelope": tx.envelope(), "payload": B64.encode(tx.payload().unwrap_or_default())});
    let mut req = http.post(format!("{target}/v1/transactions")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "{}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    let kid = SignerKid::format(&did, &VersionId(tx.id().0), "key-1");
    Ok((kid, (tx.id(), tx.header().lc)))
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    rejected: u64,
    errors: u64,
    reasons: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(!args.targets.is_empty(), "give at least one --rpc target");
    anyhow::ensure!(
        args.batch >= 1 && args.batch <= crate::api::rpc::log::MAX_BATCH,
        "--batch must be 1..=1000"
    );
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let ids_out = match &args.ids_out {
        Some(p) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ))),
        None => None,
    };
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (http, next, tally, ids_out, args) = (
            http.clone(),
            next.clone(),
            tally.clone(),
            ids_out.clone(),
            args.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let key = SigningKey::from_bytes(&seed);
            let target = args.targets[w % args.targets.len()].trim_end_matches('/').to_owned();
            // Each worker signs as its own DID, created first on its target node.
            let (kid, root) = match create_did(&http, &target, args.token.as_deref(), &key).await {
                Ok(x) => x,
                Err(e) => {
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.errors += 1;
                    *t.reasons.entry(format!("creating the worker DID: {e}")).or_default() += 1;
                    return;
                }
            };
            let mut prev: Option<(TxId, u64)> = None;
            loop {
                let first = next.fetch_add(args.batch as u64, Ordering::Relaxed);
                if first >= args.count {
                    break;
                }
                let n = (args.count - first).min(args.batch as u64);
                if args.rate > 0.0 {
                    let due = start + Duration::from_secs_f64(first as f64 / args.rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut body = Vec::with_capacity(n as usize);
                let mut chain = prev;
                for _ in 0..n {
                    let mut payload = vec![0u8; args.payload_size];
                    rand::thread_rng().fill_bytes(&mut payload);
                    let tx = match TxBuilder::new("application/x-knoop-load")
                        .prevs(chain)
                        .prevs([root])
                        .kid(kid.clone())
                        .sign(&key, payload)
                    {
                        Ok(t) => t,
                        Err(_) => continue,
                    };
                    chain = Some((tx.id(), tx.header().lc));
                    body.push(json!({"envelope": tx.envelope(), "payload": B64.encode(tx.payload().unwrap_or_default())}));
                }
                // A worker's chain stays on one node, so parents always arrive before children.
                let t0 = Instant::now();
                let req = if n == 1 {
                    http.post(format!("{target}/v1/transactions")).json(&body[0])
                } else {
                    http.post(format!("{target}/v1/transactions/batch")).json(&json!({"transactions": body}))
                };
                let req = match &args.token {
                    Some(t) => req.bearer_auth(t),
                    None => req,
                };
                let outcome: Result<Vec<Result<String, String>>, String> = async {
                    let resp = req.send().await.map_err(|e| e.to_string())?;
                    let status = resp.status();
                    let v: Value = resp.json().await.map_err(|e| e.to_string())?;
                    let one = |v: &Value| match v.get("id").and_then(|i| i.as_str()) {
                        Some(id) => Ok(id.to_owned()),
                        None => Err(v.get("error").and_then(|e| e.as_str()).unwrap_or("unknown").to_owned()),
                    };
                    if n == 1 {
                        let _ = status;
                        Ok(vec![one(&v)])
                    } else {
                        Ok(v.get("results").and_then(|r| r.as_array()).map(|a| a.iter().map(one).collect()).unwrap_or_default())
                    }
                }
                .await;
                let elapsed = t0.elapsed();
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                t.latencies.push(elapsed);
                match outcome {
                    Ok(results) => {
                        let all_ok = results.iter().all(|r| r.is_ok()) && results.len() as u64 == n;
                        for r in results {
                            match r {
                                Ok(id) => {
                                    t.accepted += 1;
                                    if let Some(f) = &ids_out {
                                        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                                        let _ = writeln!(f, "{id}");
                                        let _ = f.flush();
                                    }
                                }
                                Err(code) => {
                                    t.rejected += 1;
                                    *t.reasons.entry(code).or_default() += 1;
                                }
                            }
                        }
                        if all_ok {
                            prev = chain;
                        }
                    }
                    Err(e) => {
                        t.errors += n;
                        *t.reasons.entry(format!("transport: {e}")).or_default() += n;
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
    t.latencies.sort();
    let pct = |p: f64| -> f64 {
        if t.latencies.is_empty() {
            return 0.0;
        }
        let i = ((t.latencies.len() as f64 - 1.0) * p).round() as usize;
        t.latencies[i].as_secs_f64() * 1000.0
    };
    Ok(json!({
        "submitted": args.count,
        "accepted": t.accepted,
        "rejected": t.rejected,
        "errors": t.errors,
        "reasons": t.reasons,
        "elapsed_s": elapsed,
        "accepted_per_s": t.accepted as f64 / elapsed.max(1e-9),
        "request_latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "targets": args.targets,
    }))
}
