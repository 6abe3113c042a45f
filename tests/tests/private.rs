//! Private transactions over real node processes (spec: `specs/private-transactions.md`): a
//! message from a GP on node A to a hospital on B and a pharmacy on C is read there, while D and
//! E hold only the public descriptor, cannot read it, and answer like for any unknown id.

use std::time::{Duration, Instant};

use knoop_e2e::{Network, Node};
use serde_json::{json, Value};

async fn wait_for(node: &Node, path: &str, pred: impl Fn(u16, &Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (code, v) = node.get(path).await.unwrap();
        if pred(code, &v) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "{}: {path} never matched; last: {code} {v}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn create_did(node: &Node) -> String {
    let (code, body) = node.post("/v1/dids", &json!({})).await.unwrap();
    assert_eq!(code, 201, "{body}");
    body["did"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_recipients_read_a_private_transaction() {
    let net = Network::start(5).await.unwrap();
    let [a, b, c, d, e] = [0, 1, 2, 3, 4].map(|i| &net.nodes[i]);
    let gp = create_did(a).await;
    let hospital = create_did(b).await;
    let pharmacy = create_did(c).await;
    // Tenants receive through their host's X25519 key.
    for (did, node) in [(&hospital, b), (&pharmacy, c)] {
        let doc = wait_for(node, &format!("/v1/dids/{did}"), |code, _| code == 200).await;
        assert_eq!(
            doc["didDocument"]["keyAgreement"][0],
            format!("{did}#ka-1"),
            "{doc}"
        );
    }
    for did in [&hospital, &pharmacy] {
        wait_for(a, &format!("/v1/dids/{did}"), |code, _| code == 200).await;
    }

    let secret = "BSN-free consent marker 7f3c1e";
    let (code, sent) = a
        .post(
            "/v1/private",
            &json!({"author": gp, "to": [pharmacy, hospital], "body": {"note": secret}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{sent}");
    let id = sent["id"].as_str().unwrap().to_owned();

    // B and C read it, signed by the GP and addressed to both.
    let mut to = vec![hospital.clone(), pharmacy.clone()];
    to.sort();
    for node in [a, b, c] {
        let m = wait_for(node, &format!("/v1/private/{id}"), |code, _| code == 200).await;
        assert_eq!(m["author"], gp.as_str(), "{}", node.name);
        assert_eq!(m["to"], json!(to));
        assert_eq!(m["body"]["note"], secret);
    }
    // D and E hold the transaction (the descriptor) but cannot read it, and say "not found"
    // exactly as for an id that does not exist.
    let unknown = "00".repeat(32);
    for node in [d, e] {
        let tx = wait_for(node, &format!("/v1/transactions/{id}"), |code, _| {
            code == 200
        })
        .await;
        assert_eq!(
            tx["header"]["cty"], "application/knoop-private+cbor",
            "{tx}"
        );
        assert!(tx["payload"].is_string(), "the descriptor travels: {tx}");
        let (code, body) = node.get(&format!("/v1/private/{id}")).await.unwrap();
        let (code2, body2) = node.get(&format!("/v1/private/{unknown}")).await.unwrap();
        assert_eq!((code, &body), (code2, &body2));
        assert_eq!(code, 404);
        let (_, list) = node.get("/v1/private").await.unwrap();
        assert_eq!(list["transactions"], json!([]), "{}", node.name);
        assert!(!tx.to_string().contains(secret));
    }
    // Unknown recipients and recipients without keys are refused with a reason.
    let (code, body) = a
        .post(
            "/v1/private",
            &json!({"author": gp, "to": ["did:knoop:nobody"], "body": {}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"], "unknown_recipient");
}
