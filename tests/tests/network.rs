//! The transaction log and its gossip network, over real node processes on loopback.

use std::collections::HashSet;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use knoop_e2e::{load, load_spawn, submission, ClientDid, Network};
use knoop_gossip::TxBuilder;
use serde_json::json;

fn ok(report: &serde_json::Value, n: u64) {
    assert_eq!(
        report["accepted"].as_u64(),
        Some(n),
        "load report: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_on_ten_thousand_transactions() {
    let net = Network::start(5).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let targets = net.rpc_urls(&[0, 1, 2, 3, 4]);
    let report = load(
        &targets,
        10_000,
        0.0,
        &["--concurrency", "10", "--batch", "20"],
    )
    .unwrap();
    ok(&report, 10_000);
    let took = net
        .wait_converged(&[0, 1, 2, 3, 4], 10_000, Duration::from_secs(120))
        .await
        .unwrap();
    println!("converged {took:?} after the load ended; load: {report}");
    for n in &net.nodes {
        let s = n.status().await.unwrap();
        assert!(
            s["peers"].as_u64().unwrap_or(0) >= 1,
            "{} has no peers: {s}",
            n.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_and_partitioned_node_converge() {
    let mut net = Network::start(4).await.unwrap();
    let all = net.rpc_urls(&[0, 1, 2, 3]);
    ok(&load(&all, 500, 0.0, &["--concurrency", "4"]).unwrap(), 500);
    net.wait_converged(&[0, 1, 2, 3], 500, Duration::from_secs(60))
        .await
        .unwrap();

    // Node 3 is cut off (frozen: its peers see silence) while 1,000 more are added elsewhere.
    net.nodes[3].freeze().unwrap();
    let rest = net.rpc_urls(&[0, 1, 2]);
    ok(
        &load(&rest, 1_000, 0.0, &["--concurrency", "3", "--batch", "10"]).unwrap(),
        1_000,
    );
    net.wait_converged(&[0, 1, 2], 1_500, Duration::from_secs(60))
        .await
        .unwrap();

    // A node that was never there joins, and the partition heals.
    net.add().await.unwrap();
    net.nodes[3].thaw().unwrap();
    let took = net
        .wait_converged(&[0, 1, 2, 3, 4], 1_500, Duration::from_secs(90))
        .await
        .unwrap();
    println!("late joiner and healed node converged in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loses_nothing_acknowledged() {
    let mut net = Network::start(3).await.unwrap();
    let ids_file = net.root.path().join("acked.txt");
    let target = net.rpc_urls(&[2]);
    let loader = load_spawn(
        &target,
        20_000,
        2_000.0,
        &[
            "--concurrency",
            "8",
            "--ids-out",
            ids_file.to_str().unwrap(),
        ],
    )
    .unwrap();
    // Let it ingest for a while, then pull the plug mid-stream.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    net.nodes[2].kill9().unwrap();
    let out = tokio::task::spawn_blocking(move || loader.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acked: Vec<String> = std::fs::read_to_string(&ids_file)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    assert!(
        acked.len() > 100,
        "too few acknowledged before the kill: {report}"
    );
    assert!(
        report["errors"].as_u64().unwrap_or(0) > 0,
        "the kill did not interrupt the load: {report}"
    );

    net.nodes[2].restart().await.unwrap();
    for id in &acked {
        let (code, _) = net.nodes[2]
            .get(&format!("/v1/transactions/{id}"))
            .await
            .unwrap();
        assert_eq!(code, 200, "acknowledged {id} missing after kill -9");
    }
    // Everything it held (acknowledged or not) spreads, and all three agree.
    let held = net.nodes[2].transactions().await.unwrap();
    assert!(held >= acked.len() as u64);
    net.wait_converged(&[0, 1, 2], held, Duration::from_secs(90))
        .await
        .unwrap();
    println!("{} acknowledged, {held} held after restart", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transactions_are_refused_with_a_reason_and_never_spread() {
    let net = Network::start(3).await.unwrap();
    let n0 = &net.nodes[0];
    let me = ClientDid::new(SigningKey::from_bytes(&[42; 32]));
    let other = SigningKey::from_bytes(&[43; 32]);
    let submit = submission;
    let (code, body) = n0
        .post("/v1/transactions", &submit(&me.root))
        .await
        .unwrap();
    assert_eq!(code, 201, "DID create: {body}");

    let good = me.sign("text/plain", b"good".to_vec(), &[]);
    let (code, body) = n0.post("/v1/transactions", &submit(&good)).await.unwrap();
    assert_eq!(code, 201, "{body}");

    // An embedded key on anything but a DID create: not authorised.
    let embedded = TxBuilder::new("text/plain")
        .sign(&other, b"embedded".to_vec())
        .unwrap();
    let (code, body) = n0
        .post("/v1/transactions", &submit(&embedded))
        .await
        .unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("unauthorized")),
        "{body}"
    );

    // A key that is not in the DID, signing under its name.
    let stranger = ClientDid {
        key: other.clone(),
        did: me.did.clone(),
        root: me.root.clone(),
    };
    let wrong = stranger.sign("text/plain", b"wrong key".to_vec(), &[]);
    let (code, body) = n0.post("/v1/transactions", &submit(&wrong)).await.unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("bad_signature")),
        "{body}"
    );

    // Duplicate.
    let (code, body) = n0.post("/v1/transactions", &submit(&good)).await.unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("duplicate")),
        "{body}"
    );

    // Malformed envelope.
    let (code, body) = n0
        .post("/v1/transactions", &json!({"envelope": "not.a-jws"}))
        .await
        .unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("malformed")),
        "{body}"
    );

    // Not JSON at all.
    let (code, _) = n0
        .post_raw("/v1/transactions", b"{{{".to_vec())
        .await
        .unwrap();
    assert_eq!(code, 400);

    // Batches: an empty one is an empty answer (not "shutting down"); each member gets its own
    // reason in its slot (nothing new is stored here: the count below stays one).
    let (code, body) = n0
        .post("/v1/transactions/batch", &json!({"transactions": []}))
        .await
        .unwrap();
    assert_eq!(
        (code, body.clone()),
        (200, json!({"results": []})),
        "{body}"
    );
    let (code, body) = n0
        .post(
            "/v1/transactions/batch",
            &json!({"transactions": [{"envelope": "not.a-jws"}, submit(&good)]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["results"][0]["error"], "malformed", "{body}");
    assert_eq!(body["results"][1]["error"], "duplicate", "{body}");
    let (code, body) = n0
        .post(
            "/v1/transactions/batch",
            &json!({"transactions": [{"envelope": "not.a-jws"}]}),
        )
        .await
        .unwrap();
    assert_eq!(
        (code, body["results"][0]["error"].as_str()),
        (200, Some("malformed")),
        "{body}"
    );

    // Bad signature: the envelope of one key with the signature of another.
    let a = me.sign("text/plain", b"x".to_vec(), &[]);
    let b = stranger.sign("text/plain", b"x".to_vec(), &[]);
    let forged_env = format!(
        "{}.{}",
        a.envelope().rsplit_once('.').unwrap().0,
        b.envelope().rsplit_once('.').unwrap().1
    );
    let forged = json!({"envelope": forged_env, "payload": B64.encode(b"x")});
    let (code, body) = n0.post("/v1/transactions", &forged).await.unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("bad_signature")),
        "{body}"
    );

    // Content that does not match the hash in the envelope.
    let (code, body) = n0
        .post(
            "/v1/transactions",
            &json!({"envelope": good.envelope(), "payload": B64.encode(b"evil")}),
        )
        .await
        .unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("payload_mismatch")),
        "{body}"
    );

    // Oversized content.
    let big = TxBuilder::new("application/octet-stream")
        .kid(me.kid())
        .sign(&me.key, vec![0u8; 300 * 1024]);
    assert!(big.is_err(), "the builder itself refuses oversize content");
    let small = me.sign("application/octet-stream", vec![1u8; 10], &[]);
    let (code, body) = n0
        .post(
            "/v1/transactions",
            &json!({"envelope": small.envelope(), "payload": B64.encode(vec![0u8; 300 * 1024])}),
        )
        .await
        .unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (413, Some("too_large")),
        "{body}"
    );

    // Unknown parent.
    let orphan = me.sign(
        "text/plain",
        b"orphan".to_vec(),
        &[(knoop_gossip::Hash32([7; 32]), 3)],
    );
    let (code, body) = n0.post("/v1/transactions", &submit(&orphan)).await.unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("missing_parents")),
        "{body}"
    );

    // Only the good one exists anywhere, and every node is alive.
    net.wait_converged(&[0, 1, 2], 1, Duration::from_secs(30))
        .await
        .unwrap();
    let bad_ids: HashSet<String> = [
        orphan.id().to_hex(),
        embedded.id().to_hex(),
        wrong.id().to_hex(),
        knoop_gossip::Hash32::of(forged_env.as_bytes()).to_hex(),
    ]
    .into();
    for n in &net.nodes {
        for id in &bad_ids {
            let (code, _) = n.get(&format!("/v1/transactions/{id}")).await.unwrap();
            assert_eq!(code, 404, "{id} reached {}", n.name);
        }
        let (code, body) = n
            .get(&format!("/v1/transactions/{}", good.id()))
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    assert!(
        n0.log_text().contains("rejected submission"),
        "no log line for rejections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_fails_at_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[p2p]\nbootstrap = [\"nonsense\"]\n", "p2p.bootstrap[0]"),
        ("[rpc]\nlisten = \"0.0.0.0:7474\"\n", "rpc.token"),
        ("[p2p]\nunknown_knob = 3\n", "unknown_knob"),
        ("[rpc]\nlisten = \"localhost\"\n", "rpc.listen"),
        ("[public]\nlisten = \"nonsense\"\n", "public.listen"),
        (
            "[public]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"/nonexistent/cert.pem\"\n\
             tls_key = \"/nonexistent/key.pem\"\n",
            "public.tls_cert",
        ),
        ("[public]\nlisten = \"0.0.0.0:7476\"\n", "public.tls_cert"),
        ("[source]\nfhir = \"ftp://ehr\"\n", "source.fhir"),
        ("[tokens]\nlifetime = \"2h\"\n", "tokens.lifetime"),
        ("[public]\nrate_limit = -1.0\n", "public.rate_limit"),
        ("data_dir = 7\n", "data_dir"),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let out = std::process::Command::new(knoop_e2e::knoop_bin())
            .args(["run", "--config"])
            .arg(&f)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text} was accepted");
        assert!(
            err.contains(field),
            "error for {text:?} does not name {field}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_and_restart_keep_the_set() {
    let mut net = Network::start(2).await.unwrap();
    ok(&load(&net.rpc_urls(&[1]), 300, 0.0, &[]).unwrap(), 300);
    net.wait_converged(&[0, 1], 300, Duration::from_secs(30))
        .await
        .unwrap();
    let before = net.nodes[1].status().await.unwrap()["digest"].clone();
    assert!(
        net.nodes[1].stop().await.unwrap(),
        "unclean exit on SIGTERM"
    );
    net.nodes[1].restart().await.unwrap();
    assert_eq!(net.nodes[1].status().await.unwrap()["digest"], before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_finds_the_network_without_its_bootstrap_node() {
    let mut net = Network::start(3).await.unwrap();
    // Peers are remembered at shutdown.
    net.wait_converged(&[0, 1, 2], 0, Duration::from_secs(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(net.nodes[2].stop().await.unwrap());
    // The bootstrap node goes away for good.
    net.nodes[0].kill9().unwrap();
    ok(&load(&net.rpc_urls(&[1]), 200, 0.0, &[]).unwrap(), 200);
    net.nodes[2].restart().await.unwrap();
    net.wait_converged(&[1, 2], 200, Duration::from_secs(60))
        .await
        .unwrap();
}

/// A netns testnet of this test process (`testnet/netns.sh`), taken down when dropped.
struct Netns {
    script: std::path::PathBuf,
    dir: tempfile::TempDir,
    prefix: String,
    env: Vec<(&'static str, &'static str)>,
}

impl Netns {
    /// A testnet named `tag` with extra environment `env`; `None` (and a message) where this
    /// machine cannot create network namespaces (needs root: CAP_NET_ADMIN, CAP_SYS_ADMIN).
    fn new(tag: &str, env: Vec<(&'static str, &'static str)>) -> Option<Netns> {
        let n = Netns {
            script: knoop_e2e::testnet_dir().join("netns.sh"),
            dir: tempfile::tempdir().unwrap(),
            prefix: format!("{tag}{}-", std::process::id()),
            env,
        };
        if !n.run(&["available"]).status.success() {
            eprintln!("skipping: this machine cannot create network namespaces");
            return None;
        }
        Some(n)
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(&self.script)
            .args(args)
            .env("KNOOP_BIN", knoop_e2e::knoop_bin())
            .env("KNOOP_NETNS_DIR", self.dir.path())
            .env("KNOOP_NETNS_PREFIX", &self.prefix)
            .envs(self.env.iter().copied())
            .output()
            .unwrap()
    }

    /// Runs `netns.sh args`, which must succeed: its output.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "netns.sh {args:?}: {text}");
        text
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.run(&["down"]);
    }
}

/// `testnet/netns.sh`: nodes as separate hosts in Linux network namespaces (own addresses on
/// a bridge, nothing on a shared loopback) converge. Skipped, with a message, where this
/// machine cannot create namespaces.
#[test]
fn nodes_in_separate_network_namespaces_converge() {
    let Some(net) = Netns::new("knt", Vec::new()) else {
        return;
    };
    net.ok(&["up", "3"]);
    let check = net.ok(&["check", "200"]);
    assert!(check.contains("check ok: 3 nodes agree"), "{check}");
}

/// Faults on the wire between real hosts (`testnet/netns.sh faults`, `partition`, `heal`): six
/// nodes in their own network namespaces with every link dropping 5% of packets each way,
/// sending 5% twice and capped at 2 Mbit/s, converge; then a third of them is cut off, both
/// sides take new transactions, and after the partition heals every node holds the union (one
/// digest everywhere, nothing acknowledged lost). Skipped where namespaces cannot be made.
#[test]
fn a_lossy_network_and_a_healed_partition_converge() {
    let Some(net) = Netns::new(
        "knf",
        vec![
            ("KNOOP_NETNS_SUBNET", "10.78.0"),
            ("KNOOP_NETNS_TIMEOUT", "120"),
        ],
    ) else {
        return;
    };
    let ok = |args: &[&str]| net.ok(args);
    let prefix = net.prefix.clone();
    ok(&["up", "6"]);
    for i in 0..6 {
        ok(&["faults", &i.to_string(), "loss=0.05,dup=0.05,rate=2mbit"]);
    }
    let out = ok(&["check", "300"]);
    assert!(out.contains("check ok: 6 nodes agree"), "{out}");
    // The faults were on the wire: packets were dropped and sent twice.
    let counters = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{prefix}h0"),
            "iptables-save",
            "-c",
        ])
        .output()
        .unwrap();
    let counters = String::from_utf8_lossy(&counters.stdout);
    let packets = |target: &str| -> u64 {
        counters
            .lines()
            .filter(|l| l.contains(&format!("-j {target}")))
            .filter_map(|l| l.strip_prefix('[')?.split(':').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(packets("DROP") > 0, "no packet dropped: {counters}");
    assert!(packets("TEE") > 0, "no packet duplicated: {counters}");

    // A third of the network apart; both sides take transactions.
    ok(&["partition", "4", "5"]);
    ok(&["publish", "0", "100"]);
    ok(&["publish", "4", "100"]);
    // Each side converges on its own set: two digests (0-3 and 4-5), never one.
    let t0 = std::time::Instant::now();
    loop {
        let status = ok(&["status"]);
        let digest_of = |i: usize| {
            status
                .lines()
                .nth(i)
                .and_then(|l| l.split("digest=").nth(1))
                .unwrap_or_default()
                .to_owned()
        };
        let majority: std::collections::BTreeSet<String> = (0..4).map(digest_of).collect();
        let minority: std::collections::BTreeSet<String> = (4..6).map(digest_of).collect();
        if majority.len() == 1 && minority.len() == 1 {
            assert_ne!(majority, minority, "one set across a partition: {status}");
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "the sides did not converge apart: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    ok(&["heal"]);
    let out = ok(&["check", "50", "2"]);
    assert!(out.contains("check ok: 6 nodes agree"), "{out}");
    let status = ok(&["status"]);
    let counts: Vec<u64> = status
        .lines()
        .filter_map(|l| {
            l.split("transactions=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(counts.len(), 6, "{status}");
    // Everything both sides acknowledged: the 300, 100 + 100 while apart, and 50.
    assert!(counts.iter().all(|c| *c >= 550), "{status}");
}
