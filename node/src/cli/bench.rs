//! `knoop bench`: micro-benchmarks of the log on this machine, printed as JSON. Run them on a
//! release build (`cargo run --release -p knoop-node -- bench ...`); see BENCHMARKS.md.
//!
//! - `ingest`: transactions as received from a peer (parsed, deduplicated, authorised, verified,
//!   parents checked) committed to a real rocksdb store in groups, per second.
//! - `reconcile`: bytes and rounds that set reconciliation needs for d differences in sets of n.
//! - `localisation`: a national-scale localisation index (issue 18): entries of many holder
//!   nodes in batches of 1024, ingested and indexed in a fresh store; disk bytes per entry, RSS,
//!   reopening, and slot-scan lookups (Argon2id apart).

use std::sync::Arc;
use std::time::Instant;

use clap::Subcommand;
use ed25519_dalek::SigningKey;
use knoop_gossip::reconcile::{respond, Session, Snapshot};
use knoop_gossip::{EmbeddedKeys, Hash32, Log, LogConfig, Source, Transaction, TxBuilder, TxId};
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};

use crate::store::{NodeStore, RocksStore};

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
        /// Ingest into this PostgreSQL database (a libpq connection string; it must hold no
        /// knoop store yet) instead of a temporary rocksdb.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Reconciliation cost for d differences in sets of n.
    Reconcile {
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
        d: Vec<usize>,
    },
    /// A national-scale localisation index: `patients` × `holders` entries published by
    /// `nodes` holder nodes in batches of 1024 (as `specs/consent-localisation.md` §6.2), then
    /// ingested, indexed and looked up on one node.
    Localisation(LocalisationArgs),
    /// Privacy costs: patient key derivation (Argon2id, default parameters), trial decryption
    /// of a private transaction per local key, sealing, and a localisation slot scan.
    Privacy {
        /// Derivations to time.
        #[arg(long, default_value_t = 8)]
        derivations: usize,
        /// Private transactions to trial-decrypt.
        #[arg(long, default_value_t = 2000)]
        transactions: usize,
    },
}

/// What `knoop bench localisation` builds and times.
#[derive(clap::Args, Debug, Clone)]
pub struct LocalisationArgs {
    #[arg(long, default_value_t = 100_000)]
    pub patients: usize,
    /// Holder nodes per patient.
    #[arg(long, default_value_t = 3)]
    pub holders: usize,
    /// Holder nodes in the network.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Lookups to time (half of known patients, half of unknown ones).
    #[arg(long, default_value_t = 2000)]
    pub lookups: usize,
    /// Keep the store in this directory (default: a temporary one, removed).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Make the holder nodes DIDs (their creates first) and sign the batches with their keys'
    /// DID URLs, as real nodes do: a store a `knoop` node can open and serve to others (`--dir
    /// <data dir>/store`; `netbench locstore` measures a fresh node's catch-up from it).
    #[arg(long)]
    pub did_keys: bool,
    /// Also copy the store (a checkpoint) into each of these directories when the matching
    /// `--copy-at` number of patients remain to be generated: the state of a node that went
    /// away that long before the end (`netbench locstore --away DIR`). Repeatable.
    #[arg(long)]
    pub copy_to: Vec<std::path::PathBuf>,
    /// See `--copy-to`.
    #[arg(long)]
    pub copy_at: Vec<usize>,
    /// Build the index in this PostgreSQL database (a libpq connection string; it must hold no
    /// knoop store yet) instead of rocksdb.
    #[arg(long)]
    pub postgres: Option<String>,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<Value> {
    match cmd {
        BenchCommand::Ingest {
            count,
            group,
            payload_size,
            authors,
            embedded_keys,
            postgres,
        } => ingest(
            count,
            group,
            payload_size,
            authors,
            embedded_keys,
            postgres.as_deref(),
        ),
        BenchCommand::Reconcile { n, d } => Ok(reconcile(n, &d)),
        BenchCommand::Privacy {
            derivations,
            transactions,
        } => privacy(derivations, transactions),
        BenchCommand::Localisation(args) => localisation(&args),
    }
}

fn ingest(
    count: usize,
    group: usize,
    payload_size: usize,
    authors: usize,
    embedded_keys: bool,
    postgres: Option<&str>,
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
    let (creates, kids) = did_creates(&keys, false)?;
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
    let store = bench_store(&dir, postgres)?;
    let auth: Arc<dyn knoop_gossip::Authorizer> = if embedded_keys {
        Arc::new(EmbeddedKeys::default())
    } else {
        Arc::new(crate::identity::did_state::DidState::default())
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
        "store": if postgres.is_some() { "postgresql" } else { "rocksdb" },
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

/// Times the privacy primitives (see [`BenchCommand::Privacy`]).
fn privacy(derivations: usize, transactions: usize) -> anyhow::Result<Value> {
    use knoop_privacy::locator::{scan, seal_entry, slot_tag, EntryKind, StoredEntry};
    use knoop_privacy::patient::{NetworkParams, PatientId, PatientKeys};
    use knoop_privacy::{seal, trial_open, Recipient};
    use x25519_dalek::{PublicKey, StaticSecret};

    let net = NetworkParams {
        network_id: "knoop-bench".into(),
        epoch: 1,
        pepper: zeroize::Zeroizing::new([7; 32]),
        m_kib: 65_536,
        t: 3,
        p: 1,
    };
    let ids: Vec<String> = (0..derivations.max(1))
        .map(|i| {
            // 9-digit numbers passing the 11-test.
            (100_000_000u64 + i as u64 * 7919..)
                .map(|n| n.to_string())
                .find(|s| PatientId::bsn(s).is_ok())
                .unwrap_or_default()
        })
        .collect();
    let t0 = Instant::now();
    let mut keys = Vec::new();
    for id in &ids {
        keys.push(PatientKeys::derive(&PatientId::bsn(id)?, &net)?);
    }
    let derive_ms = t0.elapsed().as_secs_f64() * 1000.0 / ids.len() as f64;

    // Private transactions for 3 recipients (4 slots), none of them ours.
    let others: Vec<Recipient> = (1..=3u8)
        .map(|i| Recipient::X25519(PublicKey::from(&StaticSecret::from([i; 32])).to_bytes()))
        .collect();
    let t0 = Instant::now();
    let sealed: Vec<_> = (0..transactions)
        .map(|_| seal(&[0u8; 512], &others, &knoop_privacy::ephemeral().0))
        .collect::<Result<_, _>>()?;
    let seal_us = t0.elapsed().as_secs_f64() * 1e6 / transactions as f64;
    let mut per_key = serde_json::Map::new();
    for local_keys in [1usize, 16] {
        let secrets: Vec<StaticSecret> = (0..local_keys)
            .map(|i| StaticSecret::from([100 + i as u8; 32]))
            .collect();
        let t0 = Instant::now();
        let mut hits = 0;
        for s in &sealed {
            for k in &secrets {
                if trial_open(&s.descriptor, k)?.is_some() {
                    hits += 1;
                }
            }
        }
        anyhow::ensure!(hits == 0, "a slot opened for a key it was not sealed for");
        per_key.insert(
            format!("local_keys_{local_keys}_us_per_tx"),
            json!(t0.elapsed().as_secs_f64() * 1e6 / transactions as f64),
        );
    }

    // A slot scan over an index with the patient's entries among 100,000 others.
    let k = &keys[0];
    let mut index: std::collections::HashMap<[u8; 16], Vec<StoredEntry>> = Default::default();
    for i in 0..3u32 {
        let e = seal_entry(k, i, "did:knoop:holder", &EntryKind::Held, &[i as u8; 24]);
        index.entry(slot_tag(k, i)).or_default().push(StoredEntry {
            tx: [i as u8; 32],
            index: 0,
            signer: "did:knoop:holder".into(),
            entry: e,
        });
    }
    for i in 0..100_000u32 {
        let mut tag = [0u8; 16];
        tag[..4].copy_from_slice(&i.to_be_bytes());
        index.entry(tag).or_default();
    }
    let lookup = |t: &[u8; 16]| -> Vec<StoredEntry> {
        index
            .get(t)
            .map(|v| {
                v.iter()
                    .map(|e| StoredEntry {
                        tx: e.tx,
                        index: e.index,
                        signer: e.signer.clone(),
                        entry: e.entry,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let t0 = Instant::now();
    let rounds = 1000;
    for _ in 0..rounds {
        anyhow::ensure!(scan(k, &lookup).holders.len() == 1);
    }
    let scan_us = t0.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    Ok(json!({
        "derive_ms_per_patient": derive_ms,
        "argon2": {"m_kib": net.m_kib, "t": net.t, "p": net.p},
        "seal_us_per_tx": seal_us,
        "trial_decryption": per_key,
        "slot_scan_us": scan_us,
    }))
}

/// The keys of generated patient `i` (random-looking, Argon2id apart: the benchmark measures
/// the index, not the derivation).
fn bench_patient(i: u64) -> knoop_privacy::patient::PatientKeys {
    use sha2::{Digest, Sha256};
    let part = |what: &str| -> [u8; 32] {
        Sha256::digest([what.as_bytes(), &i.to_be_bytes()].concat()).into()
    };
    knoop_privacy::patient::PatientKeys {
        k_tag: zeroize::Zeroizing::new(part("tag")),
        k_ent: zeroize::Zeroizing::new(part("ent")),
        k_pat: zeroize::Zeroizing::new(part("pat")),
        p: part("p"),
    }
}

/// RSS of this process, in bytes (Linux).
fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn localisation(args: &LocalisationArgs) -> anyhow::Result<Value> {
    use knoop_privacy::locator::LOC_CONTENT_TYPE;
    use knoop_privacy::locator::{encode_content, seal_entry, EntryKind, ENTRY_LEN, MAX_ENTRIES};
    let LocalisationArgs {
        patients,
        holders,
        nodes,
        lookups,
        did_keys,
        ..
    } = *args;
    let keep = args.dir.clone();
    let postgres = args.postgres.as_deref();
    anyhow::ensure!(
        args.copy_to.len() == args.copy_at.len(),
        "give one --copy-at for each --copy-to"
    );
    let mut copies = Vec::new();
    for (dir, &remaining) in args.copy_to.iter().zip(&args.copy_at) {
        anyhow::ensure!(remaining < patients, "--copy-at must be below --patients");
        copies.push((dir.clone(), patients - remaining));
    }
    anyhow::ensure!(
        holders >= 1 && holders <= nodes && patients >= 1,
        "need 1 <= holders <= nodes and at least one patient"
    );
    let node_keys: Vec<SigningKey> = (0..nodes)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let (creates, kids) = did_creates(&node_keys, true)?;
    let signers: Vec<String> = (0..nodes)
        .map(|i| {
            if did_keys {
                knoop_did::knoop::did_for_key(&node_keys[i].verifying_key())
            } else {
                format!("did:knoop:bench-node-{i}")
            }
        })
        .collect();
    let by_key: std::collections::HashMap<String, usize> = node_keys
        .iter()
        .enumerate()
        .map(|(i, k)| (knoop_gossip::tx::Jwk::from_key(&k.verifying_key()).x, i))
        .collect();
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("knoop-bench-loc-{}", rand::random::<u64>()))
    });
    let store = bench_store(&dir, postgres)?;
    let auth: Arc<dyn knoop_gossip::Authorizer> = if did_keys {
        Arc::new(crate::identity::did_state::DidState::default())
    } else {
        Arc::new(EmbeddedKeys::default())
    };
    let mut log = Log::open(store.clone(), auth.clone(), LogConfig::default())?;
    if did_keys {
        let r = log.ingest(creates.clone(), Source::Peer);
        anyhow::ensure!(r.stored.len() == nodes, "DID creates not stored");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let mut buffers: Vec<Vec<[u8; ENTRY_LEN]>> = vec![Vec::new(); nodes];
    let mut prev: Vec<Option<(TxId, u64)>> = vec![None; nodes];
    let mut queue: Vec<Transaction> = Vec::new();
    let (mut publish_s, mut ingest_s) = (0.0f64, 0.0f64);
    let (mut txs, mut entries) = (0usize, 0usize);
    let mut publish = |n: usize,
                       buffers: &mut Vec<Vec<[u8; ENTRY_LEN]>>,
                       queue: &mut Vec<Transaction>|
     -> anyhow::Result<()> {
        let batch = std::mem::take(&mut buffers[n]);
        if batch.is_empty() {
            return Ok(());
        }
        let tx = if did_keys {
            TxBuilder::new(LOC_CONTENT_TYPE)
                .prevs(prev[n])
                .prevs([(creates[n].id(), 0)])
                .kid(kids[n].clone())
                .sign(&node_keys[n], encode_content(&batch))?
        } else {
            TxBuilder::new(LOC_CONTENT_TYPE)
                .prevs(prev[n])
                .sign(&node_keys[n], encode_content(&batch))?
        };
        prev[n] = Some((tx.id(), tx.header().lc));
        queue.push(tx);
        Ok(())
    };
    let mut ingest =
        |queue: &mut Vec<Transaction>, log: &mut Log<dyn NodeStore>| -> anyhow::Result<usize> {
            let n = queue.len();
            let t = Instant::now();
            let report = log.ingest(std::mem::take(queue), Source::Peer);
            ingest_s += t.elapsed().as_secs_f64();
            anyhow::ensure!(
                report.stored.len() == n,
                "stored {} of {n}: {:?}",
                report.stored.len(),
                report.results.iter().find(|r| r.is_err())
            );
            Ok(n)
        };
    let mut copied = Vec::new();
    for i in 0..patients {
        for (dir, at) in &copies {
            if i == *at {
                // Every holder publishes what it has (real nodes do within a batch interval),
                // and a node that stops now holds all of it.
                for n in 0..nodes {
                    publish(n, &mut buffers, &mut queue)?;
                }
                txs += ingest(&mut queue, &mut log)?;
                store.flush()?;
                store.checkpoint(dir)?;
                copied.push(json!({"dir": dir, "batches": txs, "patients": i}));
            }
        }
        let t = Instant::now();
        let keys = bench_patient(i as u64);
        let chosen = rand::seq::index::sample(&mut rng, nodes, holders);
        for (slot, n) in chosen.into_iter().enumerate() {
            let mut nonce = [0u8; 24];
            rng.fill_bytes(&mut nonce);
            buffers[n].push(seal_entry(
                &keys,
                slot as u32,
                &signers[n],
                &EntryKind::Held,
                &nonce,
            ));
            entries += 1;
            if buffers[n].len() == MAX_ENTRIES {
                publish(n, &mut buffers, &mut queue)?;
            }
        }
        publish_s += t.elapsed().as_secs_f64();
        if queue.len() >= 16 {
            txs += ingest(&mut queue, &mut log)?;
        }
    }
    let t = Instant::now();
    for n in 0..nodes {
        publish(n, &mut buffers, &mut queue)?;
    }
    publish_s += t.elapsed().as_secs_f64();
    txs += ingest(&mut queue, &mut log)?;

    let t = Instant::now();
    let signer_of = |tx: &Transaction| {
        let h = tx.header();
        match (&h.jwk, &h.kid) {
            (Some(j), _) => by_key
                .get(&j.x)
                .map(|&n| signers[n].clone())
                .unwrap_or_default(),
            // A DID URL: the DID is what comes before its query or fragment.
            (None, Some(kid)) => kid.split(['?', '#']).next().unwrap_or_default().to_owned(),
            (None, None) => String::new(),
        }
    };
    crate::care::localisation::index_entries(store.as_ref(), 0, &signer_of)
        .map_err(|e| anyhow::anyhow!(e))?;
    let index_s = t.elapsed().as_secs_f64();
    let rss_loaded = rss_bytes();
    store.flush()?;
    let disk = store.disk_bytes();

    // Start-up: the store and the log reopened, until the log answers.
    drop(log);
    drop(store);
    let t = Instant::now();
    let store = reopen(&dir, postgres)?;
    let log = Log::open(
        store.clone(),
        Arc::new(EmbeddedKeys::default()),
        LogConfig::default(),
    )?;
    let reopen_s = t.elapsed().as_secs_f64();
    // The batches, and the holder nodes' DID creates.
    let creates_stored = if did_keys { nodes } else { 0 };
    anyhow::ensure!(
        log.index().len() == txs + creates_stored,
        "{} transactions after reopening",
        log.index().len()
    );

    // Lookups: known patients find their holders, unknown ones find nothing.
    let mut known_ms = Vec::new();
    let mut unknown_ms = Vec::new();
    for l in 0..lookups {
        let known = l % 2 == 0;
        let i = if known {
            rng.gen_range(0..patients as u64)
        } else {
            patients as u64 + rng.gen_range(0..u32::MAX as u64)
        };
        let keys = bench_patient(i);
        let t = Instant::now();
        let found = crate::care::localisation::scan_index(store.as_ref(), &keys);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if known {
            anyhow::ensure!(
                found.holders.len() == holders,
                "patient {i}: {} holders found",
                found.holders.len()
            );
            known_ms.push(ms);
        } else {
            anyhow::ensure!(found.holders.is_empty(), "an unknown patient was found");
            unknown_ms.push(ms);
        }
    }
    known_ms.sort_by(f64::total_cmp);
    unknown_ms.sort_by(f64::total_cmp);
    drop(log);
    drop(store);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(json!({
        "bench": "localisation",
        "copies": copied,
        "store": if postgres.is_some() { "postgresql" } else { "rocksdb" },
        "patients": patients,
        "holders_per_patient": holders,
        "holder_nodes": nodes,
        "entries": entries,
        "transactions": txs,
        "publish_seconds": publish_s,
        "ingest_seconds": ingest_s,
        "index_seconds": index_s,
        "entries_per_second_ingest_and_index": entries as f64 / (ingest_s + index_s),
        "disk_bytes": disk,
        "disk_bytes_per_entry": disk as f64 / entries as f64,
        "rss_bytes_after_indexing": rss_loaded,
        "reopen_seconds": reopen_s,
        "lookup_ms_known": {"p50": percentile(&known_ms, 0.5), "p99": percentile(&known_ms, 0.99)},
        "lookup_ms_unknown": {"p50": percentile(&unknown_ms, 0.5), "p99": percentile(&unknown_ms, 0.99)},
        "cores_available": std::thread::available_parallelism().map_or(1, |n| n.get()),
    }))
}

/// A DID create for each key (one `key-1` for every signing relationship; a node DID, its
/// `KnoopNode` binding signed with the same key as its peer key, when `nodes`) and the DID URL
/// its transactions name as `kid`.
fn did_creates(
    keys: &[SigningKey],
    nodes: bool,
) -> anyhow::Result<(Vec<Transaction>, Vec<String>)> {
    let creates: Vec<Transaction> = keys
        .iter()
        .map(|k| {
            let did = knoop_did::knoop::did_for_key(&k.verifying_key());
            let mut doc = knoop_did::document::DidDocument::new(&did);
            doc.add_ed25519(
                "key-1",
                &k.verifying_key(),
                &crate::identity::did_ops::SIGNING_RELATIONSHIPS,
            );
            if nodes {
                doc.service
                    .push(knoop_did::binding::sign_binding(&did, k, Vec::new()).service(&did));
            }
            TxBuilder::new(knoop_did::knoop::DID_OP_CONTENT_TYPE).sign(
                k,
                knoop_did::knoop::DidOp::Create { document: doc }.to_bytes(),
            )
        })
        .collect::<Result<_, _>>()?;
    let kids = creates
        .iter()
        .zip(keys)
        .map(|(c, k)| {
            knoop_did::knoop::SignerKid::format(
                &knoop_did::knoop::did_for_key(&k.verifying_key()),
                &knoop_did::knoop::VersionId(c.id().0),
                "key-1",
            )
        })
        .collect();
    Ok((creates, kids))
}

/// A fresh store for a benchmark: rocksdb in `dir`, or the PostgreSQL database `postgres`
/// (which must hold no knoop store yet, so that figures are of a fresh store).
fn bench_store(
    dir: &std::path::Path,
    postgres: Option<&str>,
) -> anyhow::Result<Arc<dyn NodeStore>> {
    let store = reopen(dir, postgres)?;
    anyhow::ensure!(
        store.last_seq()? == 0,
        "the benchmark's store already holds transactions: give it an empty database"
    );
    Ok(store)
}

/// The benchmark's store opened (again).
fn reopen(dir: &std::path::Path, postgres: Option<&str>) -> anyhow::Result<Arc<dyn NodeStore>> {
    Ok(match postgres {
        Some(conn) => Arc::new(crate::store::PgStore::open(conn, None, 4)?),
        None => Arc::new(RocksStore::open(dir)?),
    })
}

#[cfg(test)]
mod tests {
    /// The generator at a small scale: every known patient is found at its holders through the
    /// index built page by page, no unknown one is, and the store reopens with every batch.
    #[test]
    fn the_localisation_benchmark_finds_every_patient_it_made() {
        // Signed with embedded keys, and as real nodes sign (DIDs, `kid`).
        for did_keys in [false, true] {
            let v = super::localisation(&super::LocalisationArgs {
                patients: 3000,
                holders: 3,
                nodes: 10,
                lookups: 400,
                dir: None,
                did_keys,
                copy_to: Vec::new(),
                copy_at: Vec::new(),
                postgres: None,
            })
            .unwrap();
            assert_eq!(v["entries"], 9000);
            // 10 nodes × ceil(900 / 1024) batches: one each.
            assert_eq!(v["transactions"], 10);
            assert!(v["disk_bytes_per_entry"].as_f64().unwrap() > 104.0);
        }
    }
}
