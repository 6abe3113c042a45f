//! knooppunt's policies (copied unchanged into `tests/fixtures/knooppunt-pdp`, see its README)
//! load into knoop's policy decision point, and their own Rego tests pass on knoop's engine
//! (regorus), as `opa test` runs them for knooppunt.

use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("fixtures")
        .join("knooppunt-pdp")
}

#[test]
fn knooppunts_policy_tests_pass_on_knoops_rego_engine() {
    let results = knoop_node::care::pdp::run_tests(&fixtures()).expect("the policies load");
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    assert!(failed.is_empty(), "failed: {failed:#?}");
    // Every policy's tests ran: bgz 37, eoverdracht_receiver 6, eoverdracht_sender 12,
    // mcsd_query 3, mcsd_update 3, medicatieoverdracht_gf 12, pzp_gf 10, system 33.
    let count = |p: &str| results.iter().filter(|r| r.policy == p).count();
    for (policy, n) in [
        ("bgz", 37),
        ("eoverdracht_receiver", 6),
        ("eoverdracht_sender", 12),
        ("mcsd_query", 3),
        ("mcsd_update", 3),
        ("medicatieoverdracht_gf", 12),
        ("pzp_gf", 10),
        ("system", 33),
    ] {
        assert_eq!(count(policy), n, "{policy}");
    }
}

/// A test that fails is reported as failed, not passed (the runner can fail).
#[test]
fn a_failing_policy_test_is_reported() {
    let dir = tempfile_dir();
    let p = dir.join("demo");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("policy.rego"),
        "package demo\n\nimport rego.v1\n\ndefault allow := false\nallow if input.ok == true\n",
    )
    .unwrap();
    std::fs::write(
        p.join("policy_test.rego"),
        "package demo_test\n\nimport rego.v1\n\nimport data.demo\n\n\
         test_allows if {\n\tdemo.allow with input as {\"ok\": true}\n}\n\n\
         test_wrongly_expects_allow if {\n\tdemo.allow with input as {\"ok\": false}\n}\n",
    )
    .unwrap();
    let results = knoop_node::care::pdp::run_tests(&dir).unwrap();
    let outcome: Vec<(&str, bool)> = results
        .iter()
        .map(|r| (r.test.as_str(), r.passed))
        .collect();
    assert_eq!(
        outcome,
        vec![("test_allows", true), ("test_wrongly_expects_allow", false)]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A policy that would evaluate for seconds is stopped at the time limit and reported, not
/// waited for.
#[test]
fn a_policy_that_runs_too_long_is_stopped() {
    let dir = tempfile_dir().join("slow-case");
    let p = dir.join("slow");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("policy.rego"),
        "package slow\n\nimport rego.v1\n\ndefault allow := false\n\
         allow if {\n\tsome i in numbers.range(1, 4000)\n\tsome j in numbers.range(1, 4000)\n\ti * j < 0\n}\n",
    )
    .unwrap();
    std::fs::write(
        p.join("policy_test.rego"),
        "package slow_test\n\nimport rego.v1\n\nimport data.slow\n\n\
         test_never_allows if {\n\tnot slow.allow\n}\n",
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let results = knoop_node::care::pdp::run_tests(&dir).unwrap();
    assert_eq!(results.len(), 1);
    assert!(!results[0].passed, "{results:?}");
    assert!(results[0].error.is_some(), "{results:?}");
    assert!(
        t0.elapsed() < knoop_node::care::pdp::EVALUATION_LIMIT * 10,
        "stopped near the limit, not after the whole evaluation: {:?}",
        t0.elapsed()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("knoop-pdp-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
