//! API fuzzing of the RPC (issue 17): schemathesis (PyPI), a well-known OpenAPI-driven fuzzer,
//! generates requests from the node's own OpenAPI document (`GET /openapi.yaml`: its coverage
//! phase's boundary values and its fuzzing phase, a few examples per operation, so the run is
//! bounded) against a running node with localisation configured and data in its log. No
//! request may get a server error (5xx); afterwards the node is healthy, lost nothing, and
//! logged no panic.

use std::process::Command;

use knoop_e2e::{load, privacy_env, Network};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rpc_answers_schemathesis_without_a_server_error() {
    let net = Network::start_with_env(1, privacy_env("opt-out"))
        .await
        .unwrap();
    let node = &net.nodes[0];
    load(&net.rpc_urls(&[0]), 20, 0.0, &[]).unwrap();
    let before = node.status().await.unwrap()["transactions"]
        .as_u64()
        .unwrap();
    let rpc = node.rpc.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([
                "-c",
                "from schemathesis.cli import schemathesis; schemathesis()",
                "run",
                &format!("{rpc}/openapi.yaml"),
                "--url",
                &rpc,
                "--checks",
                "not_a_server_error",
                "--phases",
                "coverage,fuzzing",
                "--max-examples",
                "3",
                "--request-timeout",
                "10",
                "--seed",
                "20261207",
            ])
            .output()
            .expect("python3 runs schemathesis (.ci/run installs it)")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = report.lines().rev().take(60).collect();
    assert!(
        out.status.success(),
        "schemathesis found server errors:\n{}\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    // Healthy, nothing lost, no panic.
    let (code, _) = node.get("/health").await.unwrap();
    assert_eq!(code, 200);
    let after = node.status().await.unwrap()["transactions"]
        .as_u64()
        .unwrap();
    assert!(after >= before, "{after} < {before}");
    let log = node.log_text();
    assert!(!log.contains("panicked"), "{}", node.log_tail());
}
