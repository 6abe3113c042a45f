//! Running a node: `knoop init`, backup and restore, Prometheus metrics and the public API's
//! rate limit, over real node processes.

use std::process::Command;
use std::time::Duration;

use knoop_e2e::{knoop_bin, load, testnet_dir, Network, Node, OnDrop};
use serde_json::Value;

fn knoop(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(knoop_bin())
        .args(args)
        .output()
        .expect("running knoop");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.success(), json, format!("{stdout}{stderr}"))
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Sum of a metric over all its label sets.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_a_config_and_the_node_runs_with_the_same_did() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("knoop.toml");
    let data = dir.path().join("data");
    let (ok, init, text) = knoop(&[
        "init",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--rpc-listen",
        "127.0.0.1:0",
    ]);
    assert!(ok, "init failed: {text}");
    assert_eq!(init["config_written"], true);
    let did = init["did"].as_str().unwrap().to_owned();
    assert!(did.starts_with("did:knoop:"), "{init}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("[public]") && written.contains("rate_limit"),
        "{written}"
    );

    // A second init keeps the config and the identity.
    let (ok, again, text) = knoop(&["init", "--config", config.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(again["config_written"], false);
    assert_eq!(again["did"], did.as_str());
    assert_eq!(again["transactions"], init["transactions"]);

    // The node starts from that config with that DID and publishes nothing new for it.
    let mut node = Node::start_with_env(
        "init",
        &data,
        &[],
        vec![("KNOOP_CONFIG".into(), config.to_string_lossy().into_owned())],
    )
    .await
    .unwrap();
    let status = node.status().await.unwrap();
    assert_eq!(status["did"], did.as_str());
    // Only the public API's URL may be new (init does not bind it).
    let t = status["transactions"].as_u64().unwrap();
    let before = init["transactions"].as_u64().unwrap();
    assert!(t == before || t == before + 1, "{t} vs {before}");
    assert!(node.stop().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_wipe_restore_gives_the_same_digest_and_identity() {
    // Backups go to a directory beside the data directory, which is wiped below.
    let backup = tempfile::tempdir().unwrap();
    let env = vec![(
        "KNOOP_RPC__BACKUP_DIR".to_owned(),
        backup.path().display().to_string(),
    )];
    let mut net = Network::start_with_env(2, env).await.unwrap();
    load(&net.rpc_urls(&[0]), 150, 0.0, &[]).unwrap();
    net.wait_converged(&[0, 1], 150, Duration::from_secs(30))
        .await
        .unwrap();
    let before = net.nodes[1].status().await.unwrap();
    let out = backup.path().join("b1");
    let (ok, made, text) = knoop(&["backup", "--rpc", &net.nodes[1].rpc, "--name", "b1"]);
    assert!(ok, "backup failed: {text}");
    assert_eq!(made["manifest"]["digest"], before["digest"], "{made}");
    assert_eq!(made["dir"], out.display().to_string(), "{made}");
    assert!(out.join("backup.json").is_file());
    // A backup never overwrites one.
    let (ok, _, text) = knoop(&["backup", "--rpc", &net.nodes[1].rpc, "--name", "b1"]);
    assert!(!ok && text.contains("not empty"), "{text}");
    // The route writes nowhere but the backup directory: a path is no name.
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("x");
    for name in [
        target.display().to_string(),
        "../x".into(),
        "..".into(),
        ".x".into(),
    ] {
        let (code, body) = net.nodes[1]
            .post("/v1/admin/backup", &serde_json::json!({ "name": name }))
            .await
            .unwrap();
        assert_eq!(code, 400, "{name}: {body}");
    }
    let (code, _) = net.nodes[1]
        .post("/v1/admin/backup", &serde_json::json!({ "dir": target }))
        .await
        .unwrap();
    assert_eq!(code, 400);
    assert!(!target.exists() && !backup.path().join("x").exists());

    // Stop, wipe, restore, start: same set, same node DID (its keys came back too).
    assert!(net.nodes[1].stop().await.unwrap());
    let data = net.nodes[1].dir.clone();
    std::fs::remove_dir_all(&data).unwrap();
    let (ok, restored, text) = knoop(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "restore failed: {text}");
    assert_eq!(restored["manifest"]["digest"], before["digest"]);
    // Restoring over a store is refused.
    let (ok, _, text) = knoop(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("already holds a store"), "{text}");
    net.nodes[1].restart().await.unwrap();
    let after = net.nodes[1].status().await.unwrap();
    assert_eq!(after["digest"], before["digest"]);
    assert_eq!(after["did"], before["did"]);
    assert_eq!(after["peer_id"], before["peer_id"]);
    // And it keeps up with the network afterwards.
    load(&net.rpc_urls(&[0]), 20, 0.0, &[]).unwrap();
    net.wait_converged(&[0, 1], 170, Duration::from_secs(30))
        .await
        .unwrap();
}

/// The next `n` events of a server-sent event stream: `(id, event, data)`.
async fn next_events(
    resp: &mut reqwest::Response,
    buf: &mut String,
    n: usize,
) -> Vec<(u64, String, Value)> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        // An event ends with an empty line.
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, String::new(), Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).unwrap();
                }
            }
            if let Some(id) = id {
                out.push((id, event, data));
            }
            continue;
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    out
}

/// The event stream names each transaction's sequence number as the event id, and a client
/// that reconnects with `Last-Event-ID` gets every transaction it missed, then the live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_where_a_client_left_off() {
    let net = Network::start(1).await.unwrap();
    let node = &net.nodes[0];
    let urls = net.rpc_urls(&[0]);
    let stored = || async {
        node.status().await.unwrap()["transactions"]
            .as_u64()
            .unwrap()
    };
    let start = stored().await;
    let http = reqwest::Client::new();
    let mut live = http
        .get(format!("{}/v1/events", node.rpc))
        .send()
        .await
        .unwrap();
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();
    // `knoop load` stores its load transactions (and, the first time, a DID for them).
    load(&urls, 5, 0.0, &[]).unwrap();
    let seen = stored().await;
    let first = next_events(&mut live, &mut buf, (seen - start) as usize).await;
    let ids: Vec<u64> = first.iter().map(|e| e.0).collect();
    assert_eq!(ids, (start + 1..=seen).collect::<Vec<_>>(), "{first:?}");
    for (id, event, data) in &first {
        assert_eq!(
            (event.as_str(), data["seq"].as_u64()),
            ("transaction", Some(*id))
        );
        assert_eq!(data["local"], true, "{data}");
        assert_eq!(data["id"].as_str().map(str::len), Some(64), "{data}");
    }
    drop(live);

    // Away while more are stored; back with the last id seen: every one missed, in order,
    // then the live ones.
    load(&urls, 7, 0.0, &[]).unwrap();
    let away = stored().await;
    assert!(away >= seen + 7);
    let mut resumed = http
        .get(format!("{}/v1/events", node.rpc))
        .header("Last-Event-ID", seen.to_string())
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let missed = next_events(&mut resumed, &mut buf, (away - seen) as usize).await;
    let ids: Vec<u64> = missed.iter().map(|e| e.0).collect();
    assert_eq!(ids, (seen + 1..=away).collect::<Vec<_>>(), "{missed:?}");
    load(&urls, 2, 0.0, &[]).unwrap();
    let now = stored().await;
    let after = next_events(&mut resumed, &mut buf, (now - away) as usize).await;
    let ids: Vec<u64> = after.iter().map(|e| e.0).collect();
    assert_eq!(ids, (away + 1..=now).collect::<Vec<_>>(), "{after:?}");
    assert!(after.iter().all(|e| e.2["local"] == true), "{after:?}");
}

/// Traces over OTLP: a node configured with a collector (`[log] otlp_endpoint`) sends its
/// request spans as OTLP/HTTP protobuf, which the official OpenTelemetry protobuf definitions
/// decode (`tests/otlp_collector.py`); a node whose collector is down serves all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_otlp_collector() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans.jsonl");
    let mut collector = Command::new("python3")
        .arg(knoop_e2e::repo_root().join("tests/otlp_collector.py"))
        .arg(&spans)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs tests/otlp_collector.py (.ci/run installs opentelemetry-proto)");
    let mut line = String::new();
    std::io::BufReader::new(collector.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().strip_prefix("listening ").unwrap().to_owned();
    let _stop = OnDrop(move || {
        let _ = collector.kill();
        let _ = collector.wait();
    });
    // A port nobody listens on, for the node whose collector is down.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = |port: &str| {
        vec![
            (
                "KNOOP_LOG__OTLP_ENDPOINT".to_owned(),
                format!("http://127.0.0.1:{port}"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
        ]
    };
    let net = Network::start_each(vec![env(&port), env(&dead.to_string())])
        .await
        .unwrap();
    for node in &net.nodes {
        for _ in 0..3 {
            assert_eq!(node.get("/v1/status").await.unwrap().0, 200);
        }
    }
    let t0 = std::time::Instant::now();
    let seen = loop {
        let text = std::fs::read_to_string(&spans).unwrap_or_default();
        let seen: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if seen
            .iter()
            .any(|s| s["name"] == "rpc" && s["attributes"]["path"] == "/v1/status")
        {
            break seen;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no request span reached the collector: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = seen
        .iter()
        .find(|s| s["name"] == "rpc" && s["attributes"]["path"] == "/v1/status")
        .unwrap();
    assert_eq!(status["service"], "knoop", "{status}");
    assert_eq!(status["attributes"]["method"], "GET", "{status}");
    assert_eq!(
        status["trace_id"].as_str().map(str::len),
        Some(32),
        "{status}"
    );
    // The node without a collector keeps serving and stops cleanly.
    let (code, _) = net.nodes[1].get("/v1/status").await.unwrap();
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_gossip_wire_bytes_decisions_and_rate_limited_requests() {
    let limit = vec![
        ("KNOOP_PUBLIC__RATE_LIMIT".to_owned(), "1".to_owned()),
        ("KNOOP_PUBLIC__RATE_BURST".to_owned(), "3".to_owned()),
    ];
    let net = Network::start_with_env(2, limit).await.unwrap();
    load(&net.rpc_urls(&[0]), 100, 0.0, &[]).unwrap();
    net.wait_converged(&[0, 1], 100, Duration::from_secs(30))
        .await
        .unwrap();

    // The public API: a made-up token is refused and audited; past the burst, 429.
    let public = net.nodes[1].status().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let mut codes = Vec::new();
    for _ in 0..6 {
        let r = http
            .get(format!("{public}/fhir/Condition"))
            .bearer_auth("made-up")
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 429 {
            let retry = r.headers().get("retry-after").cloned();
            assert!(retry.is_some(), "429 without Retry-After");
        }
        codes.push(r.status().as_u16());
    }
    assert_eq!(&codes[..3], &[401, 401, 401], "{codes:?}");
    assert!(
        codes[3..].contains(&429),
        "no 429 past the burst: {codes:?}"
    );
    let health = http.get(format!("{public}/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "/health is rate limited");

    // The gossip counters reach /metrics with the network task's next tick (250 ms): wait for
    // the received transactions to show before reading the rest.
    let received_of = |text: &str| {
        metric(text, "knoop_transactions_received_push_total").unwrap_or(0.0)
            + metric(text, "knoop_transactions_received_fetched_total").unwrap_or(0.0)
    };
    let t0 = std::time::Instant::now();
    let text = loop {
        let text = net.nodes[1].metrics().await.unwrap();
        if received_of(&text) >= 100.0 || t0.elapsed() > Duration::from_secs(10) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.ends_with("# EOF\n"), "not OpenMetrics text");
    assert_eq!(
        metric(&text, "knoop_transactions"),
        Some(
            net.nodes[1].status().await.unwrap()["transactions"]
                .as_u64()
                .unwrap() as f64
        )
    );
    let received = received_of(&text);
    assert!(received >= 100.0, "received {received}\n{text}");
    assert!(metric(&text, "knoop_sync_rounds_total").is_some());
    // libp2p's wire counters: every byte on the connection, more than the payload alone.
    let wire_in = metric_sum(&text, "knoop_p2p_libp2p_bandwidth_bytes_total");
    assert!(wire_in > 0.0, "no wire bytes\n{text}");
    assert_eq!(
        metric(
            &text,
            "knoop_audit_decisions_total{kind=\"data\",outcome=\"expired\"}"
        ),
        Some(3.0),
        "\n{text}"
    );
    assert!(metric(&text, "knoop_public_rate_limited_total").unwrap_or(0.0) >= 1.0);
    assert!(
        text.contains("knoop_http_request_duration_seconds_count{api=\"public\",method=\"get\",route=\"/fhir/{resource_type}\",status=\"4xx\"} 6"),
        "\n{text}"
    );
    // The sender pushed them (its counters too reach /metrics with its next tick).
    let t0 = std::time::Instant::now();
    let sender = loop {
        let sender = net.nodes[0].metrics().await.unwrap();
        let pushed = metric(&sender, "knoop_transactions_pushed_total").unwrap_or(0.0);
        if pushed >= 100.0 || t0.elapsed() > Duration::from_secs(10) {
            break sender;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        metric(&sender, "knoop_transactions_pushed_total").unwrap_or(0.0) >= 100.0,
        "\n{sender}"
    );

    // Without an OpenMetrics Accept header: the Prometheus text format, which Prometheus's own
    // linter (promtool, from Debian's prometheus package) finds nothing wrong with.
    let r = reqwest::get(format!("{}/metrics", net.nodes[1].rpc))
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let plain = r.text().await.unwrap();
    assert!(
        plain.contains("# TYPE knoop_transactions_received_push_total counter"),
        "{plain}"
    );
    assert!(!plain.contains("# EOF"));
    let lint = knoop_e2e::run_lint("promtool", &["check", "metrics"], plain.as_bytes());
    assert_eq!(lint, "", "promtool check metrics:\n{lint}");
    // The node's log, written to a file, is plain text a log shipper reads: no colour codes.
    let log = net.nodes[1].log_text();
    assert!(log.contains("rpc listening"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
}

/// The one-command local testnet (`testnet/local.sh up 7`: the FHIR source, the patients'
/// identity provider, seven members-only nodes, the registry authority, organisations,
/// professionals, patients and a consent, all through the CLI) plays both stories through the
/// CLI (`testnet/stories.sh`), serves patients on node 0, and shuts down cleanly.
#[test]
fn the_local_testnet_plays_both_stories_through_the_cli_and_stops_cleanly() {
    let testnet = testnet_dir();
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_range(100);
    let run = |script: &str, args: &[&str]| {
        let out = Command::new(testnet.join(script))
            .args(args)
            .env("KNOOP_BIN", knoop_bin())
            .env("KNOOP_TESTNET_DIR", dir.path())
            .env("KNOOP_TESTNET_BASE_PORT", base.to_string())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let down = OnDrop(|| {
        run("local.sh", &["down"]);
    });
    let (ok, text) = run("local.sh", &["up", "7"]);
    assert!(ok, "local.sh up 7 failed:\n{text}");
    assert!(text.contains("seed: done"), "{text}");
    // A members-only network: node 0 has admitted its peers (testnet/membership-issuer.key).
    let first = std::fs::read_to_string(dir.path().join("rpc")).unwrap();
    let first = first.lines().next().unwrap().to_owned();
    let status = Command::new("curl")
        .args(["-fsS", &format!("{first}/status")])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let peers = status["peer_list"].as_array().unwrap();
    assert!(!peers.is_empty(), "{status}");
    assert!(peers.iter().all(|p| p["member"] == true), "{status}");
    let (ok, text) = run("stories.sh", &[]);
    assert!(ok, "the stories did not play:\n{text}");
    assert!(text.contains("both stories played as told"), "{text}");
    let pids: Vec<u32> = std::fs::read_to_string(dir.path().join("pids"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(
        pids.len(),
        9,
        "the FHIR server, the patients' identity provider and seven nodes"
    );
    // Node 0 serves patients, logging them in at the testnet's identity provider.
    let login = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!("http://127.0.0.1:{}/patient/login", base + 50))
        .output()
        .unwrap();
    let login = String::from_utf8_lossy(&login.stdout).into_owned();
    assert!(
        login.starts_with(&format!("303 http://127.0.0.1:{}/auth?", base + 98)),
        "{login}"
    );
    let (ok, text) = run("local.sh", &["down"]);
    assert!(ok && text.contains("testnet stopped"), "{text}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true),
            "process {pid} still runs after down"
        );
    }
    for i in 0..7 {
        let log = std::fs::read_to_string(dir.path().join(format!("n{i}/node.log"))).unwrap();
        let last = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        assert!(
            last.contains("stopped"),
            "node {i} did not stop cleanly: {last}"
        );
    }
    drop(down);
}

/// A base port with `n` free ports above it (the testnet takes base..base+100).
fn free_port_range(n: u16) -> u16 {
    for _ in 0..50 {
        let base = 20_000 + (rand::random::<u16>() % 400) * 100;
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of {n} ports");
}
