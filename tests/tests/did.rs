//! DIDs over real node processes: did:knoop lifecycle on five nodes, concurrent updates across a
//! partition, refusal of retired and foreign keys everywhere, node identity, external methods.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use knoop_did::document::{DidDocument, Relationship};
use knoop_did::knoop::{DidOp, SignerKid, VersionId, DID_OP_CONTENT_TYPE};
use knoop_e2e::{submission, ClientDid, Network, Node};
use knoop_gossip::TxBuilder;
use serde_json::{json, Value};

/// `/v1/dids/<did>` with the DID escaped as one path segment.
fn did_path(did: &str) -> String {
    format!("/v1/dids/{}", did.replace('%', "%25"))
}

/// Polls `node` until resolving `did` satisfies `pred`; returns the last result.
async fn wait_resolved(node: &Node, did: &str, pred: impl Fn(u16, &Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (code, v) = node.get(&did_path(did)).await.unwrap();
        if pred(code, &v) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{}: {did} never reached the expected state; last {code}: {v}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn version(v: &Value) -> String {
    v["didDocumentMetadata"]["versionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn service_endpoint(v: &Value, type_: &str) -> Option<String> {
    v["didDocument"]["service"]
        .as_array()?
        .iter()
        .find(|s| s["type"] == type_)?["serviceEndpoint"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_did_lives_and_ends_identically_on_five_nodes() {
    let mut net = Network::start(5).await.unwrap();
    let a = &net.nodes[0];

    // Create on A, with a FHIR endpoint; every node resolves the same document.
    let (code, created) = a
        .post(
            "/v1/dids",
            &json!({"services": [{"type": "FHIR", "serviceEndpoint": "https://leiden.example/fhir"}]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let did = created["did"].as_str().unwrap().to_owned();
    let v1 = created["versionId"].as_str().unwrap().to_owned();
    let doc1 = created["resolution"]["didDocument"].clone();
    for n in &net.nodes {
        let r = wait_resolved(n, &did, |c, _| c == 200).await;
        assert_eq!(
            r["didDocument"], doc1,
            "{} resolves another document",
            n.name
        );
        assert_eq!(version(&r), v1);
    }

    // Endpoint lookup on another node follows KnoopHost to A's node DID.
    let (code, node_a) = a.get("/v1/node").await.unwrap();
    assert_eq!(code, 200);
    let (code, hit) = net.nodes[3]
        .get(&format!("{}/endpoints/FHIR", did_path(&did)))
        .await
        .unwrap();
    assert_eq!(code, 200, "{hit}");
    assert_eq!(hit["serviceEndpoint"], "https://leiden.example/fhir");
    let (code, hit) = net.nodes[3]
        .get(&format!("{}/endpoints/KnoopNode", did_path(&did)))
        .await
        .unwrap();
    assert_eq!(code, 200, "{hit}");
    assert_eq!(hit["foundAt"], node_a["did"]);
    assert_eq!(hit["serviceEndpoint"]["peerId"], node_a["peerId"]);

    // Update a service, rotate the key: each state everywhere.
    let (code, body) = a
        .put(
            &format!("{}/services/fhir", did_path(&did)),
            &json!({"type": "FHIR", "serviceEndpoint": "https://leiden.example/fhir/r4"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let v2 = body["versionId"].as_str().unwrap().to_owned();
    let (code, body) = a
        .post(&format!("{}/keys/key-1/rotate", did_path(&did)), &json!({}))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["id"], format!("{did}#key-2"));
    let v3 = body["versionId"].as_str().unwrap().to_owned();
    for n in &net.nodes {
        let r = wait_resolved(n, &did, |c, v| c == 200 && version(v) == v3).await;
        let keys: Vec<&str> = r["didDocument"]["verificationMethod"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        // key-1 is gone, key-2 replaced it; es256-1 (the P-256 key for JOSE) and ka-1 (the
        // host's X25519 key for private transactions, specs/private-transactions.md §2) stay.
        assert_eq!(
            keys,
            vec![
                format!("{did}#es256-1"),
                format!("{did}#ka-1"),
                format!("{did}#key-2")
            ],
            "{}",
            n.name
        );
        assert_eq!(
            service_endpoint(&r, "FHIR").as_deref(),
            Some("https://leiden.example/fhir/r4")
        );
    }

    // Content signed as the DID with the new key is accepted and spreads.
    let (code, body) = a
        .post(
            "/v1/publish",
            &json!({"content_type": "text/plain", "payload": "aGk=", "signer": did}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");

    // Old versions still resolve, with the links between versions.
    for n in [&net.nodes[1], &net.nodes[4]] {
        let (code, r) = n
            .get(&format!("{}?versionId={v1}", did_path(&did)))
            .await
            .unwrap();
        assert_eq!(code, 200, "{r}");
        assert_eq!(r["didDocument"], doc1);
        assert_eq!(r["didDocumentMetadata"]["nextVersionId"], v2.as_str());
        let (code, r) = n
            .get(&format!(
                "{}?versionTime=2000-01-01T00:00:00Z",
                did_path(&did)
            ))
            .await
            .unwrap();
        assert_eq!(code, 404, "{r}");
        assert_eq!(r["didResolutionMetadata"]["error"], "notFound");
    }

    // Peers learn which operator they talk to.
    let t0 = Instant::now();
    loop {
        let s = net.nodes[1].status().await.unwrap();
        let known: Vec<Value> = s["peer_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["did"].clone())
            .collect();
        if known.contains(&node_a["did"]) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "peer DIDs: {known:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The DID Resolution HTTP binding's representations, chosen by Accept.
    let url = format!("{}{}", a.rpc, did_path(&did));
    let http = reqwest::Client::new();
    let fetch = |accept: &'static str| {
        let req = http.get(&url).header("accept", accept);
        async move {
            let r = req.send().await.unwrap();
            let code = r.status().as_u16();
            let media = r.headers()["content-type"].to_str().unwrap().to_owned();
            (code, media, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (code, media, v) = fetch("application/did-resolution").await;
    assert_eq!((code, media.as_str()), (200, "application/did-resolution"));
    assert_eq!(v["didDocument"]["id"], did.as_str(), "{v}");
    let (code, media, v) = fetch("application/did+ld+json").await;
    assert_eq!((code, media.as_str()), (200, "application/did+ld+json"));
    assert_eq!(v["id"], did.as_str(), "the document alone: {v}");
    let (code, _, v) = fetch("text/html").await;
    assert_eq!(code, 406, "{v}");
    assert_eq!(
        v["didResolutionMetadata"]["error"],
        "representationNotSupported"
    );

    // Deactivate: gone everywhere (410), the last document still shown and marked deactivated;
    // not an error (DID Core §7.1.3).
    let (code, body) = a
        .post(&format!("{}/deactivate", did_path(&did)), &json!({}))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    for n in &net.nodes {
        let r = wait_resolved(n, &did, |c, _| c == 410).await;
        assert!(r["didResolutionMetadata"].get("error").is_none(), "{r}");
        assert_eq!(r["didDocumentMetadata"]["deactivated"], true);
        assert_eq!(r["didDocument"]["id"], did.as_str());
    }
    let (code, body) = a
        .post(
            "/v1/publish",
            &json!({"content_type": "text/plain", "payload": "aGk=", "signer": did}),
        )
        .await
        .unwrap();
    assert_eq!(code, 410, "{body}");

    // A restart keeps the node's DID and every DID's history.
    let node = &mut net.nodes[2];
    let (_, before) = node.get("/v1/node").await.unwrap();
    node.stop().await.unwrap();
    node.restart().await.unwrap();
    let (_, after) = node.get("/v1/node").await.unwrap();
    assert_eq!(before, after);
    let (code, r) = node.get(&did_path(&did)).await.unwrap();
    assert_eq!(code, 410, "{r}");
    let (code, h) = node
        .get(&format!("{}/history", did_path(&did)))
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(h["versions"].as_array().unwrap().len(), 4, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_across_a_partition_settle_on_one_document() {
    let mut net = Network::start(3).await.unwrap();
    // The controller lives on node 1; the organisation on node 0 names it as controller.
    let (code, c) = net.nodes[1].post("/v1/dids", &json!({})).await.unwrap();
    assert_eq!(code, 201, "{c}");
    let controller = c["did"].as_str().unwrap().to_owned();
    let (code, x) = net.nodes[0]
        .post("/v1/dids", &json!({"controllers": [controller]}))
        .await
        .unwrap();
    assert_eq!(code, 201, "{x}");
    let did = x["did"].as_str().unwrap().to_owned();
    let v1 = x["versionId"].as_str().unwrap().to_owned();
    for n in &net.nodes {
        wait_resolved(n, &did, |c, _| c == 200).await;
        wait_resolved(n, &controller, |c, _| c == 200).await;
    }

    // Partition: node 1 runs offline while both sides change the same version.
    net.nodes[1].restart_offline(true).await.unwrap();
    let set_fhir = |url: &str| json!({"type": "FHIR", "serviceEndpoint": url});
    let (code, a) = net.nodes[0]
        .put(
            &format!("{}/services/fhir", did_path(&did)),
            &set_fhir("https://side-a.example/fhir"),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{a}");
    let (code, b) = net.nodes[1]
        .put(
            &format!("{}/services/fhir", did_path(&did)),
            &set_fhir("https://side-b.example/fhir"),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "node 1 updates as controller: {b}");
    let (va, vb) = (
        a["versionId"].as_str().unwrap().to_owned(),
        b["versionId"].as_str().unwrap().to_owned(),
    );
    assert_ne!(va, vb);
    for (n, want) in [(0, &va), (1, &vb)] {
        let r = wait_resolved(&net.nodes[n], &did, |c, _| c == 200).await;
        assert_eq!(&version(&r), want, "each side sees its own update first");
    }

    // Heal: every node settles on the same document and reports the loser.
    net.nodes[1].restart_offline(false).await.unwrap();
    let mut results = Vec::new();
    for n in &net.nodes {
        let r = wait_resolved(n, &did, |c, v| {
            c == 200
                && v["didDocumentMetadata"]["superseded"]
                    .as_array()
                    .is_some_and(|s| s.len() == 1)
        })
        .await;
        results.push(r);
    }
    let winner = version(&results[0]);
    assert!(winner == va || winner == vb);
    let loser = if winner == va { &vb } else { &va };
    for r in &results {
        assert_eq!(r["didDocument"], results[0]["didDocument"]);
        assert_eq!(version(r), winner);
        let s = &r["didDocumentMetadata"]["superseded"][0];
        assert_eq!(s["versionId"], loser.as_str());
        assert_eq!(s["previous"], v1.as_str());
    }
    // The superseded version resolves, naming the winner.
    let (code, r) = net.nodes[2]
        .get(&format!("{}?versionId={loser}", did_path(&did)))
        .await
        .unwrap();
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["didDocumentMetadata"]["supersededBy"], winner.as_str());
    // The next update builds on the winner, from either side.
    let (code, body) = net.nodes[1]
        .put(
            &format!("{}/services/fhir", did_path(&did)),
            &set_fhir("https://after.example/fhir"),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let after = body["versionId"].as_str().unwrap().to_owned();
    for n in &net.nodes {
        let r = wait_resolved(n, &did, |c, v| c == 200 && version(v) == after).await;
        assert_eq!(
            service_endpoint(&r, "FHIR").as_deref(),
            Some("https://after.example/fhir")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_and_never_authorised_keys_are_refused_everywhere() {
    let net = Network::start(3).await.unwrap();
    let me = ClientDid::new(SigningKey::from_bytes(&[21; 32]));
    let (code, body) = net.nodes[0]
        .post("/v1/transactions", &submission(&me.root))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let v1 = VersionId(me.root.id().0);

    // Rotate key-1 -> key-2 client-side (update signed by key-1 under version 1).
    let k2 = SigningKey::from_bytes(&[22; 32]);
    let mut doc = DidDocument::new(&me.did);
    doc.add_ed25519(
        "key-2",
        &k2.verifying_key(),
        &[
            Relationship::Authentication,
            Relationship::AssertionMethod,
            Relationship::CapabilityInvocation,
        ],
    );
    let rotation = TxBuilder::new(DID_OP_CONTENT_TYPE)
        .prevs([(me.root.id(), 0)])
        .kid(me.kid())
        .sign(
            &me.key,
            DidOp::Update {
                previous: v1,
                document: doc,
            }
            .to_bytes(),
        )
        .unwrap();
    let (code, body) = net.nodes[0]
        .post("/v1/transactions", &submission(&rotation))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    for n in &net.nodes {
        wait_resolved(n, &me.did, |c, v| {
            c == 200 && version(v) == rotation.id().to_hex()
        })
        .await;
    }

    // key-1 after the rotation it has seen; a key never in the DID; key-2 under its name.
    let retired = me.sign(
        "text/plain",
        b"retired".to_vec(),
        &[(rotation.id(), rotation.header().lc)],
    );
    let k2_kid = SignerKid::format(&me.did, &VersionId(rotation.id().0), "key-2");
    let foreign = TxBuilder::new("text/plain")
        .prevs([(rotation.id(), rotation.header().lc)])
        .kid(k2_kid.clone())
        .sign(&SigningKey::from_bytes(&[99; 32]), b"foreign".to_vec())
        .unwrap();
    let good = TxBuilder::new("text/plain")
        .prevs([(rotation.id(), rotation.header().lc)])
        .kid(k2_kid)
        .sign(&k2, b"fine".to_vec())
        .unwrap();
    for n in &net.nodes {
        let (code, body) = n
            .post("/v1/transactions", &submission(&retired))
            .await
            .unwrap();
        assert_eq!(
            (code, body["error"].as_str()),
            (403, Some("unauthorized")),
            "{}: {body}",
            n.name
        );
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("not an assertionMethod key"));
        let (code, body) = n
            .post("/v1/transactions", &submission(&foreign))
            .await
            .unwrap();
        assert_eq!(
            (code, body["error"].as_str()),
            (400, Some("bad_signature")),
            "{}: {body}",
            n.name
        );
    }
    let (code, body) = net.nodes[2]
        .post("/v1/transactions", &submission(&good))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    net.wait_converged(&[0, 1, 2], 1, Duration::from_secs(30))
        .await
        .unwrap();
    for n in &net.nodes {
        for bad in [&retired, &foreign] {
            let (code, _) = n
                .get(&format!("/v1/transactions/{}", bad.id()))
                .await
                .unwrap();
            assert_eq!(code, 404, "{} holds a refused transaction", n.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_hosts_many_tenants_and_bad_dids_never_crash_it() {
    let net = Network::start(2).await.unwrap();
    let host = &net.nodes[0];
    let mut tenants = Vec::new();
    for i in 0..40 {
        let (code, body) = host
            .post(
                "/v1/dids",
                &json!({"services": [{"type": "FHIR", "serviceEndpoint": format!("https://org{i}.example/fhir")}]}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
        tenants.push(body["did"].as_str().unwrap().to_owned());
    }
    let (_, list) = host.get("/v1/dids").await.unwrap();
    assert_eq!(
        list["hosted"].as_array().unwrap().len(),
        41,
        "40 tenants + the node: {list}"
    );
    // Each tenant signs with its own key; the other node sees each one's endpoint.
    for (i, did) in tenants.iter().enumerate() {
        let (code, body) = host
            .post(
                "/v1/publish",
                &json!({"content_type": "text/plain", "payload": "aGk=", "signer": did}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
        let r = wait_resolved(&net.nodes[1], did, |c, _| c == 200).await;
        assert_eq!(
            service_endpoint(&r, "FHIR"),
            Some(format!("https://org{i}.example/fhir"))
        );
        let kid = r["didDocument"]["assertionMethod"][0].as_str().unwrap();
        assert!(kid.starts_with(did.as_str()), "each tenant has its own key");
    }
    // The other node hosts none of them.
    let (code, body) = net.nodes[1]
        .post(
            "/v1/publish",
            &json!({"content_type": "text/plain", "payload": "aGk=", "signer": tenants[0]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 403, "{body}");

    // Malformed and unknown DIDs: standard errors, never a crash.
    let unknown = knoop_did::knoop::did_for_key(&SigningKey::from_bytes(&[77; 32]).verifying_key());
    let long = format!("did:knoop:{}", "a".repeat(5000));
    let cases: Vec<(String, u16, &str)> = vec![
        ("did:knoop:xyz".into(), 400, "invalidDid"),
        (unknown.clone(), 404, "notFound"),
        ("notadid".into(), 400, "invalidDid"),
        ("did:".into(), 400, "invalidDid"),
        ("did:example:123".into(), 501, "methodNotSupported"),
        ("did:key:zzz".into(), 400, "invalidDid"),
        ("did:jwk:!!!".into(), 400, "invalidDid"),
        (long, 400, "invalidDid"),
        (format!("{}?versionId=nothex", tenants[0]), 404, "notFound"),
        (
            format!("{}?versionTime=yesterday", tenants[0]),
            400,
            "invalidOptions",
        ),
    ];
    for (input, code_want, err) in &cases {
        let (code, r) = host.get(&did_path(input)).await.unwrap();
        assert_eq!(
            (code, r["didResolutionMetadata"]["error"].as_str()),
            (*code_want, Some(*err)),
            "{input}: {r}"
        );
    }
    for path in [
        format!("{}/keys", did_path("did:web:example.com")),
        format!("{}/deactivate", did_path(&unknown)),
        format!("{}/deactivate", did_path("garbage")),
    ] {
        let (code, body) = host.post(&path, &json!({})).await.unwrap();
        assert!([400, 404].contains(&code), "{path}: {code} {body}");
    }
    let (code, body) = host
        .post(
            "/v1/dids",
            &json!({"services": [{"type": "", "serviceEndpoint": 5}]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 400, "{body}");
    let (code, _) = host.get("/health").await.unwrap();
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn did_key_jwk_and_web_resolve_through_the_node() {
    use base64::Engine;
    let key = SigningKey::from_bytes(&[1; 32]);
    // did:key of a known key: the document's key is that key.
    let multibase = knoop_did::document::ed25519_multibase(&key.verifying_key());
    let did_key = format!("did:key:{multibase}");
    // did:jwk of the same key.
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())});
    let did_jwk = format!(
        "did:jwk:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jwk.to_string())
    );

    // did:web from a local HTTPS server whose certificate comes from a throw-away CA.
    let web = knoop_e2e::https::TestHttps::start(Vec::new()).unwrap();
    let did_web = format!("did:web:localhost%3A{}:orgs:leiden", web.port());
    let doc = json!({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did_web,
        "service": [{"id": format!("{did_web}#fhir"), "type": "FHIR", "serviceEndpoint": "https://leiden.example/fhir"}],
    });
    web.set("/orgs/leiden/did.json".into(), doc.to_string().into_bytes());

    let root = tempfile::tempdir().unwrap();
    let with_ca = Node::start_with_env(
        "n0",
        &root.path().join("n0"),
        &[],
        vec![(
            "KNOOP_DID__WEB_CA_FILE".into(),
            web.ca_pem_path().display().to_string(),
        )],
    )
    .await
    .unwrap();
    let without_ca = Node::start("n1", &root.path().join("n1"), &[])
        .await
        .unwrap();

    let (code, r) = with_ca.get(&did_path(&did_key)).await.unwrap();
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["didDocument"]["id"], did_key.as_str());
    assert!(r.to_string().contains(&multibase));
    let (code, r) = with_ca.get(&did_path(&did_jwk)).await.unwrap();
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["didDocument"]["id"], did_jwk.as_str());

    let (code, r) = with_ca.get(&did_path(&did_web)).await.unwrap();
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["didDocument"], doc);
    // Without the CA the TLS handshake fails: an error, not a document, and not a crash.
    let (code, r) = without_ca.get(&did_path(&did_web)).await.unwrap();
    assert_ne!(code, 200, "{r}");
    assert!(r["didResolutionMetadata"]["error"].is_string(), "{r}");
    // Missing path: notFound. A document claiming another id: invalid.
    let missing = format!("did:web:localhost%3A{}:nobody", web.port());
    let (code, r) = with_ca.get(&did_path(&missing)).await.unwrap();
    assert_eq!(
        (code, r["didResolutionMetadata"]["error"].as_str()),
        (404, Some("notFound")),
        "{r}"
    );
    let liar = format!("did:web:localhost%3A{}:liar", web.port());
    web.set("/liar/did.json".into(), doc.to_string().into_bytes());
    let (code, r) = with_ca.get(&did_path(&liar)).await.unwrap();
    assert_eq!(code, 500, "{r}");
    assert_eq!(r["didResolutionMetadata"]["error"], "invalidDidDocument");
    let (code, _) = without_ca.get("/health").await.unwrap();
    assert_eq!(code, 200);
}

/// A tenant's did:web (`specs/did-web.md`), served by its node's public API over HTTPS, resolves
/// from another node with the same keys as its did:knoop document, follows a key rotation at
/// once, and names the did:knoop DID in `alsoKnownAs`; ids not hosted there are not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_dids_resolve_as_did_web_elsewhere() {
    let ca = knoop_e2e::https::TestCa::new().unwrap();
    let (port, env) = ca.public_env_on_localhost().unwrap();
    let root = tempfile::tempdir().unwrap();
    let host = Node::start_with_env("n0", &root.path().join("n0"), &[], env)
        .await
        .unwrap();
    let reader = Node::start_with_env(
        "n1",
        &root.path().join("n1"),
        &[],
        vec![(
            "KNOOP_DID__WEB_CA_FILE".into(),
            ca.ca_pem_path().display().to_string(),
        )],
    )
    .await
    .unwrap();

    let (code, body) = host.post("/v1/dids", &json!({})).await.unwrap();
    assert_eq!(code, 201, "{body}");
    let did = body["did"].as_str().unwrap().to_owned();
    let (_, list) = host.get("/v1/dids").await.unwrap();
    let web = list["did_web"][&did].as_str().unwrap().to_owned();
    assert_eq!(
        web,
        format!(
            "did:web:localhost%3A{port}:knoop:{}",
            &did["did:knoop:".len()..]
        )
    );

    let key_of = |r: &Value| {
        r["didDocument"]["verificationMethod"][0]["publicKeyMultibase"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (code, own) = host.get(&did_path(&did)).await.unwrap();
    assert_eq!(code, 200, "{own}");
    // Linked both ways: the did:knoop document names the did:web id from its creation on, and
    // the node's own DID (created before the public API was bound) got it at start.
    assert_eq!(own["didDocument"]["alsoKnownAs"], json!([web]), "{own}");
    let (_, node) = host.get("/v1/node").await.unwrap();
    let node_did = node["did"].as_str().unwrap().to_owned();
    let node_web = list["did_web"][&node_did].as_str().unwrap().to_owned();
    let (_, node_doc) = host.get(&did_path(&node_did)).await.unwrap();
    assert_eq!(
        node_doc["didDocument"]["alsoKnownAs"],
        json!([node_web]),
        "{node_doc}"
    );
    let (code, r) = reader.get(&did_path(&web)).await.unwrap();
    assert_eq!(code, 200, "{r}");
    let doc = &r["didDocument"];
    assert_eq!(doc["id"], web.as_str(), "{r}");
    assert_eq!(
        doc["alsoKnownAs"],
        json!([did]),
        "the did:knoop DID, not itself: {r}"
    );
    assert_eq!(key_of(&r), key_of(&own), "the same key");
    assert_eq!(
        doc["verificationMethod"][0]["id"],
        format!("{web}#key-1"),
        "{r}"
    );
    assert_eq!(
        doc["assertionMethod"],
        json!([format!("{web}#key-1"), format!("{web}#es256-1")]),
        "{r}"
    );

    // A rotation shows at once.
    let (code, body) = host
        .post(&format!("{}/keys/key-1/rotate", did_path(&did)), &json!({}))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let (_, own) = host.get(&did_path(&did)).await.unwrap();
    let (code, r) = reader.get(&did_path(&web)).await.unwrap();
    assert_eq!(code, 200, "{r}");
    assert_eq!(key_of(&r), key_of(&own), "rotated key: {r}");

    // Not hosted there: notFound.
    let stranger =
        format!("did:web:localhost%3A{port}:knoop:4Pd4h9CoNrCCu5QPupW7pEyPzh3AuxrR5mR1LDGiAhz8");
    let (code, r) = reader.get(&did_path(&stranger)).await.unwrap();
    assert_eq!(
        (code, r["didResolutionMetadata"]["error"].as_str()),
        (404, Some("notFound")),
        "{r}"
    );

    // A did:web resolver outside knoop (the Decentralized Identity Foundation's, from npm:
    // tests/resolver) reads the same document: the P-256 and Ed25519 keys, the back-link.
    let outside = |did: &str| {
        let run = std::process::Command::new("node")
            .arg(knoop_e2e::repo_root().join("tests/resolver/resolve.mjs"))
            .arg(did)
            .env("NODE_EXTRA_CA_CERTS", ca.ca_pem_path())
            .output()
            .expect("node (.ci/run installs it and tests/resolver's packages)");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        serde_json::from_slice::<Value>(&run.stdout).unwrap()
    };
    let r = outside(&web);
    assert!(r["didResolutionMetadata"]["error"].is_null(), "{r}");
    let doc = &r["didDocument"];
    assert_eq!(doc["id"], web.as_str(), "{r}");
    assert_eq!(doc["alsoKnownAs"], json!([did]), "{r}");
    assert_eq!(key_of(&r), key_of(&own), "{r}");
    let types: Vec<&str> = doc["verificationMethod"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["publicKeyMultibase"].as_str())
        .map(|k| &k[..3])
        .collect();
    assert!(types.contains(&"zDn"), "a P-256 Multikey: {r}");
    let r = outside(&stranger);
    assert_eq!(r["didResolutionMetadata"]["error"], "notFound", "{r}");
}
