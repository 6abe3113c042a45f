//! `knoop bench`: micro-benchmarks of the log on this machine, printed as JSON. Run them on a
//! release build (`cargo run --release -p knoop-node -- bench ...`); see BENCHMARKS.md.
//!
//! - `ingest`: transactions as received from a peer (parsed, deduplicated, authorised, verified,
//!   parents checked) committed to a real rocksdb store in groups, per second.
//! - `reconcile`: bytes and rounds that set reconciliation needs for d differences in sets of n.

use std::sync::Arc;
use std::time::Instant;

use clap::Subcommand;
use ed25519_dalek::SigningKey;
use knoop_gossip::reconcile::{respond, Session, Snapshot};
use knoop_gossip::{EmbeddedKeys, Hash32, Log, LogConfig, Source, Transaction, TxBuilder, TxId};
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};

use crate::store::RocksStore;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Ingest throughput into a fresh rocksdb store.
    Ingest {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// Transactions per commit group (the network driver's groups are up to 4096).
        #[arg(long, default_value_t = 1024)]
        group: usize,
        #[arg(long, default_value_t = 256)]
        payload_size: usize,
        /// Authors (each a DID signing a chain of transactions).
        #[arg(long, default_value_t = 64)]
        authors: usize,
        /// Sign with embedded keys and skip DID authorisation (the bare log).
        #[arg(long)]
        embedded_keys: bool,
    },
    /// Reconciliation cost for d differences in sets of n.
    Reconcile {
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
        d: Vec<usize>,
    },
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<Value> {
    match cmd {
        BenchCommand::Ingest {
            count,
            group,
            payload_size,
            authors,
            embedded_keys,
        } => ingest(count, group, payload_size, authors, embedded_keys),
        BenchCommand::Reconcile { n, d } => Ok(reconcile(n, &d)),
    }
}

fn ingest(
    count: usize,
    group: usize,
    payload_size: usize,
    authors: usize,
    embedded_keys: bool,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        group >= 1 && authors >= 1,
        "group and authors must be at least 1"
    );
    let t_gen = Instant::now();
    let keys: Vec<SigningKey> = (0..authors)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
        .collect();
    // Each author is a DID: its create comes first (not timed), its transactions name it.
    let creates: Vec<Transaction> = keys
        .iter()
        .map(|k| {
            let did = knoop_did::knoop::did_for_key(&k.verifying_key());
            let mut doc = knoop_did::document::DidDocument::new(&did);
            doc.add_ed25519(
                "key-1",
                &k.verifying_key(),
                &crate::did_ops::SIGNING_RELATIONSHIPS,
            );
            TxBuilder::new(knoop_did::knoop::DID_OP_CONTENT_TYPE).sign(
                k,
                knoop_did::knoop::DidOp::Create { document: doc }.to_bytes(),
            )
        })
        .collect::<Result<_, _>>()?;
    let kids: Vec<String> = creates
        .iter()
        .zip(&keys)
        .map(|(c, k)| {
            knoop_did::knoop::SignerKid::format(
                &knoop_did::knoop::did_for_key(&k.verifying_key()),
                &knoop_did::knoop::VersionId(c.id().0),
                "key-1",
            )
        })
        .collect();
    let mut prev: Vec<Option<(TxId, u64)>> = vec![None; authors];
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut txs: Vec<Transaction> = Vec::with_capacity(count);
    let mut raw_bytes = 0usize;
    for i in 0..count {
        let a = i % authors;
        let mut payload = vec![0u8; payload_size];
        rng.fill_bytes(&mut payload);
        let tx = if embedded_keys {
            TxBuilder::new("application/x-knoop-bench")
                .prevs(prev[a])
                .sign(&keys[a], payload)?
        } else {
            TxBuilder::new("application/x-knoop-bench")
                .prevs(prev[a])
                .prevs([(creates[a].id(), 0)])
                .kid(kids[a].clone())
                .sign(&keys[a], payload)?
        };
        prev[a] = Some((tx.id(), tx.header().lc));
        raw_bytes += tx.envelope().len() + payload_size;
        txs.push(tx);
    }
    let gen_s = t_gen.elapsed().as_secs_f64();

    let dir = std::env::temp_dir().join(format!("knoop-bench-{}", rand::random::<u64>()));
    let store = Arc::new(RocksStore::open(&dir)?);
    let auth: Arc<dyn knoop_gossip::Authorizer> = if embedded_keys {
        Arc::new(EmbeddedKeys::default())
    } else {
        Arc::new(crate::did_state::DidState::default())
    };
    let mut log = Log::open(store.clone(), auth, LogConfig::default())?;
    if !embedded_keys {
        let r = log.ingest(creates, Source::Peer);
        anyhow::ensure!(
            r.stored.len() == authors,
            "DID creates not stored: {:?}",
            r.results
        );
    }
    let t0 = Instant::now();
    let mut stored = 0usize;
    let mut it = txs.into_iter();
    loop {
        let batch: Vec<Transaction> = it.by_ref().take(group).collect();
        if batch.is_empty() {
            break;
        }
        let report = log.ingest(batch, Source::Peer);
        stored += report.stored.len();
    }
    let secs = t0.elapsed().as_secs_f64();
    let digest = log.index().digest();
    drop(log);
    let disk = store.disk_bytes();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(stored == count, "stored {stored} of {count}");
    Ok(json!({
        "bench": "ingest",
        "authorisation": if embedded_keys { "embedded keys" } else { "DID keys (kid), causal check" },
        "transactions": count,
        "group": group,
        "payload_size": payload_size,
        "raw_bytes": raw_bytes,
        "seconds": secs,
        "per_second": count as f64 / secs,
        "cores_available": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "generate_seconds": gen_s,
        "disk_bytes_before_compaction": disk,
        "digest": digest,
    }))
}

fn reconcile(n: usize, ds: &[usize]) -> Value {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let base = 1_700_000_000_000u64;
    let common: Vec<(u64, TxId)> = (0..n)
        .map(|i| {
            (
                base + (i as u64) * 10 + rng.gen_range(0..10),
                Hash32(rng.gen()),
            )
        })
        .collect();
    let mut rows = Vec::new();
    for &d in ds {
        for (layout, newest) in [("scattered", false), ("newest", true)] {
            let extra: Vec<(u64, TxId)> = (0..d)
                .map(|i| {
                    let t = if newest {
                        base + (n as u64) * 10 + i as u64
                    } else {
                        base + rng.gen_range(0..(n as u64) * 10)
                    };
                    (t, Hash32(rng.gen()))
                })
                .collect();
            let a = Snapshot::from_sorted(common.iter().copied());
            let mut b_items = common.clone();
            b_items.extend(extra.iter().copied());
            b_items.sort();
            let b = Snapshot::from_sorted(b_items.into_iter());
            let t0 = Instant::now();
            let (mut s, mut q) = match Session::start(a) {
                Ok(x) => x,
                Err(_) => continue,
            };
            let (mut up, mut down, mut found) = (0usize, 0usize, 0usize);
            loop {
                up += q.len();
                let Ok(r) = respond(&b, &q) else { break };
                down += r.len();
                let Ok(step) = s.step(&r) else { break };
                found += step.need.len();
                match step.next {
                    Some(next) => q = next,
                    None => break,
                }
            }
            rows.push(json!({
                "n": n, "d": d, "layout": layout, "found": found,
                "round_trips": s.rounds, "bytes_up": up, "bytes_down": down, "bytes_total": up + down,
                "floor_bytes": 32 * d, "ms": t0.elapsed().as_secs_f64() * 1000.0,
            }));
        }
    }
    json!({"bench": "reconcile", "rows": rows})
}
