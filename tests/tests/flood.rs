//! Flooding (RELIABILITY.md): honest load through a node while outsiders flood it. Each
//! outsider pushes transactions with forged signatures, bytes that are no transaction, replays
//! of real transactions (valid but useless), and junk on `/knoop/locate/1` and `/knoop/private/1`, as fast as it can;
//! when it is banned it comes back under a new identity (a Sybil). The honest transactions all
//! reach every node, nothing forged is stored, every flooder is banned, and the node stays
//! healthy. The honest throughput with and without the flood is printed (the figures in
//! RELIABILITY.md come from this test's output).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use knoop_e2e::rogue::RoguePeer;
use knoop_e2e::{load, Network};
use serde_json::Value;

/// Honest transactions per run.
const HONEST: u64 = 1500;

/// What one flood did.
#[derive(Default, Debug)]
struct Flood {
    identities: u64,
    /// Identities whose connection the node refused (or never took into its gossip).
    refused: u64,
    banned: u64,
    pushed: u64,
    asks: u64,
    forged_ids: Vec<String>,
}

/// Floods the node at `target` until `stop`, with fresh identities after each ban.
async fn flood(target: String, replays: Vec<Vec<u8>>, stop: Arc<AtomicBool>) -> Flood {
    let mut f = Flood::default();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut rogue) = RoguePeer::dial(&target, "/knoop/id/1.1.0") else {
            break;
        };
        f.identities += 1;
        if !rogue.until_subscribed(Duration::from_secs(1)).await {
            // Refused at the door: come back at once under another identity.
            f.refused += 1;
            continue;
        }
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) && !rogue.disconnected {
            for _ in 0..20 {
                rogue.push_forged();
                let replay = replays[i % replays.len()].clone();
                rogue.push_raw(replay);
                rogue.ask_locate(format!("junk {i}").into_bytes());
                rogue.ask_private(format!("junk {i}").into_bytes());
                i += 1;
            }
            rogue.run_for(Duration::from_millis(5)).await;
        }
        if rogue.disconnected {
            f.banned += 1;
        }
        f.pushed += rogue.sent;
        f.asks += rogue.asks_sent;
        f.forged_ids.extend(rogue.forged_ids.clone());
    }
    f
}

/// CPU seconds (user and system) process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of proc(5) (utime, stime), in clock ticks (100 per second here).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Runs the honest load through node 0 and waits until node 2 has it all: transactions per
/// second end to end, and the load's own acceptance rate.
async fn honest_run(net: &Network, expected: u64) -> (f64, f64) {
    let t0 = Instant::now();
    let target = vec![net.nodes[0].rpc.clone()];
    let report: Value = tokio::task::spawn_blocking(move || load(&target, HONEST, 0.0, &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report["accepted"], HONEST, "{report}");
    let accepted_per_s = HONEST as f64 / report["elapsed_s"].as_f64().unwrap();
    loop {
        let n = net.nodes[2].transactions().await.unwrap();
        if n >= expected {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "node 2 has {n} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (HONEST as f64 / t0.elapsed().as_secs_f64(), accepted_per_s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_load_gets_through_a_sybil_flood() {
    let net = Network::start(3).await.unwrap();

    // Without a flood.
    let pid = net.nodes[0].pid().unwrap();
    let cpu0 = cpu_seconds(pid);
    let (base_e2e, base_accept) = honest_run(&net, HONEST).await;
    let base_cpu = cpu_seconds(pid) - cpu0;
    net.wait_converged(&[0, 1, 2], HONEST, Duration::from_secs(60))
        .await
        .unwrap();

    // Real transactions to replay.
    let (_, page) = net.nodes[0].get("/v1/transactions?limit=64").await.unwrap();
    let replays: Vec<Vec<u8>> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            use base64::Engine;
            knoop_gossip::wire::WireTx {
                envelope: t["envelope"].as_str().unwrap().to_owned(),
                payload: t["payload"]
                    .as_str()
                    .map(|p| base64::engine::general_purpose::STANDARD.decode(p).unwrap()),
            }
            .encode()
        })
        .collect();
    assert!(!replays.is_empty());

    // With two flooders on the node the honest load goes into.
    let stop = Arc::new(AtomicBool::new(false));
    let floods: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(flood(
                net.nodes[0].p2p.clone(),
                replays.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await; // the flood under way first
    let cpu0 = cpu_seconds(pid);
    let me0 = cpu_seconds(std::process::id());
    let (flood_e2e, flood_accept) = honest_run(&net, 2 * HONEST).await;
    let flood_cpu = cpu_seconds(pid) - cpu0;
    let flooders_cpu = cpu_seconds(std::process::id()) - me0;
    stop.store(true, Ordering::Relaxed);
    let mut total = Flood::default();
    for f in floods {
        let f = f.await.unwrap();
        total.identities += f.identities;
        total.refused += f.refused;
        total.banned += f.banned;
        total.pushed += f.pushed;
        total.asks += f.asks;
        total.forged_ids.extend(f.forged_ids);
    }
    net.wait_converged(&[0, 1, 2], 2 * HONEST, Duration::from_secs(60))
        .await
        .unwrap();

    eprintln!(
        "flood figures: without: {base_e2e:.0} tx/s end to end, {base_accept:.0} tx/s accepted; \
         with: {flood_e2e:.0} tx/s end to end ({:.0}%), {flood_accept:.0} tx/s accepted ({:.0}%); \
         node 0's CPU: {base_cpu:.2} s without, {flood_cpu:.2} s with; the flooders' CPU \
         {flooders_cpu:.2} s; \
         flood: {} identities, {} banned, {} refused at the door, {} pushes, {} locate and private asks",
        100.0 * flood_e2e / base_e2e,
        100.0 * flood_accept / base_accept,
        total.identities,
        total.banned,
        total.refused,
        total.pushed,
        total.asks
    );
    assert!(total.pushed > 0 && total.asks > 0, "{total:?}");
    assert!(total.banned >= 1, "no flooder was banned: {total:?}");
    let s = net.nodes[0].status().await.unwrap();
    assert!(s["banned_peers"].as_u64().unwrap_or(0) >= 1, "{s}");
    // Nothing forged anywhere, and exactly the honest transactions everywhere.
    for n in &net.nodes {
        assert_eq!(n.transactions().await.unwrap(), 2 * HONEST, "{}", n.name);
        for id in total.forged_ids.iter().take(50) {
            let (code, _) = n.get(&format!("/v1/transactions/{id}")).await.unwrap();
            assert_eq!(code, 404, "forged {id} stored on {}", n.name);
        }
        assert!(!n.log_text().contains("panicked"), "{}", n.name);
    }
}
