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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_here_is_the_same_four_bytes_for_everyone() {
    use base64::Engine;
    use knoop_e2e::blob_probe::BlobProbe;
    use knoop_e2e::{submission, ClientDid};

    const MISS: [u8; 4] = [0xa1, 0x61, 0x6d, 0xf6];
    let net = Network::start(4).await.unwrap();
    let [a, b, _, d] = [0, 1, 2, 3].map(|i| &net.nodes[i]);
    let gp = create_did(a).await;
    let hospital = create_did(b).await;

    // The probe is a member node of its own: a DID whose KnoopNode service binds the probe's
    // peer key, with an X25519 key the test holds, so it can be a recipient.
    let peer_secret = [61u8; 32];
    let x_secret = x25519_dalek::StaticSecret::from([62u8; 32]);
    let x_public = x25519_dalek::PublicKey::from(&x_secret).to_bytes();
    let member =
        ClientDid::with_document(ed25519_dalek::SigningKey::from_bytes(&[60; 32]), |doc| {
            let binding = knoop_did::binding::sign_binding(
                &doc.id,
                &ed25519_dalek::SigningKey::from_bytes(&peer_secret),
                Vec::new(),
            );
            doc.service.push(binding.service(&doc.id));
            doc.add_x25519("ka-1", &x_public);
        });
    let (code, body) = a
        .post("/v1/transactions", &submission(&member.root))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    for did in [&hospital, &member.did] {
        for node in [a, b, d] {
            wait_for(node, &format!("/v1/dids/{did}"), |code, _| code == 200).await;
        }
    }
    let (code, sent) = a
        .post(
            "/v1/private",
            &json!({"author": gp, "to": [hospital, member.did], "body": {"allergy": "penicillin"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{sent}");
    let id_hex = sent["id"].as_str().unwrap().to_owned();
    let id: [u8; 32] = hex::decode(&id_hex).unwrap().try_into().unwrap();
    wait_for(b, &format!("/v1/private/{id_hex}"), |code, _| code == 200).await;

    // The probe finds its slot in the public descriptor, as any node would.
    let tx = wait_for(d, &format!("/v1/transactions/{id_hex}"), |code, _| {
        code == 200
    })
    .await;
    let descriptor = base64::engine::general_purpose::STANDARD
        .decode(tx["payload"].as_str().unwrap())
        .unwrap();
    let descriptor = knoop_privacy::Descriptor::from_cbor(&descriptor).unwrap();
    let cek = knoop_privacy::trial_open(&descriptor, &x_secret)
        .unwrap()
        .expect("a slot for the probe");
    let token = knoop_privacy::seal::key_schedule(&cek).ft;

    let peer = |n: &Node| -> (libp2p::PeerId, libp2p::Multiaddr) {
        (n.peer_id.parse().unwrap(), n.p2p.parse().unwrap())
    };
    let mut probe = BlobProbe::new(peer_secret).unwrap();
    // With the token, from the origin: the blob, which opens to the GP's message.
    let (pa, addr_a) = peer(a);
    let answer = probe.ask(pa, addr_a.clone(), &id, &token).await.unwrap();
    assert_eq!(&answer[..3], &[0xa1, 0x61, b'c'], "a blob answer");
    let blob: serde_bytes::ByteBuf = {
        #[derive(serde::Deserialize)]
        struct Blob {
            c: serde_bytes::ByteBuf,
        }
        cbor4ii::serde::from_slice::<Blob>(&answer).unwrap().c
    };
    let inner = knoop_privacy::open(&descriptor, &cek, &blob).unwrap();
    let inner = knoop_privacy::inner::Inner::parse(&inner).unwrap();
    assert_eq!(inner.signed.author(), gp);
    // Every other case answers exactly the four bytes of a miss.
    let (pd, addr_d) = peer(d);
    let (pb, addr_b) = peer(b);
    let random = [0x5a; 32];
    let cases = [
        (
            "D holds no blob, right token",
            pd,
            addr_d.clone(),
            id,
            token,
        ),
        ("origin, wrong token", pa, addr_a.clone(), id, random),
        (
            "origin, unknown transaction",
            pa,
            addr_a.clone(),
            [7; 32],
            token,
        ),
        ("recipient B, wrong token", pb, addr_b, id, random),
    ];
    for (what, p, addr, tx, t) in cases {
        let answer = probe.ask(p, addr, &tx, &t).await.unwrap();
        assert_eq!(answer, MISS, "{what}");
    }
    // A peer that is no member node gets the miss even with the token.
    let mut stranger = BlobProbe::new([63; 32]).unwrap();
    let answer = stranger.ask(pa, addr_a, &id, &token).await.unwrap();
    assert_eq!(answer, MISS, "a stranger");
}
