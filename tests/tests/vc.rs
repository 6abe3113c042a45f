//! Credentials over real node processes: a registry authority certifies a hospital hosted on
//! another node, every node finds it in the directory (also as FHIR mCSD), professional
//! credentials verify everywhere, and each kind of bad credential fails with its own reason.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use knoop_did::document::{DidDocument, Relationship};
use knoop_did::knoop::{DidOp, VersionId, DID_OP_CONTENT_TYPE};
use knoop_e2e::{submission, ClientDid, Network, Node};
use knoop_gossip::TxBuilder;
use knoop_vc::proof::{sign, Cryptosuite, ProofOptions};
use knoop_vc::types::{knoop_contexts, unsigned, Claims, HealthcareProfessional};
use serde_json::{json, Value};

async fn wait_for(node: &Node, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (_, v) = node.get(path).await.unwrap();
        if pred(&v) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{}: {path} never matched; last: {v}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn verify_code(node: &Node, credential: &Value) -> String {
    let (code, v) = node
        .post("/v1/credentials/verify", &json!({"credential": credential}))
        .await
        .unwrap();
    assert_eq!(code, 200, "{v}");
    if v["valid"] == true {
        "ok".into()
    } else {
        v["code"].as_str().unwrap_or_default().into()
    }
}

async fn create_did(node: &Node, services: Value) -> String {
    let (code, body) = node
        .post("/v1/dids", &json!({"services": services}))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    body["did"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_hospital_is_found_and_its_professionals_verify_everywhere() {
    let net = Network::start(3).await.unwrap();
    let (a, b) = (&net.nodes[0], &net.nodes[1]);
    let ra = create_did(a, json!([])).await;
    let hospital = create_did(
        b,
        json!([{"type": "FHIR", "serviceEndpoint": "https://zuyderland.example/fhir"}]),
    )
    .await;
    for n in &net.nodes {
        let (code, body) = n
            .put(
                &format!("/v1/trust/CareOrganizationCredential/{ra}"),
                &json!({}),
            )
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
        wait_for(n, &format!("/v1/dids/{hospital}"), |v| {
            v["didDocument"].is_object()
        })
        .await;
    }

    // The registry authority on A certifies the hospital on B and publishes it.
    let (code, issued) = a
        .post(
            "/v1/credentials",
            &json!({
                "issuer": ra,
                "type": "CareOrganizationCredential",
                "subject": {"id": hospital, "legalName": "Zuyderland Medisch Centrum", "city": "Heerlen",
                            "organizationType": "hospital", "ura": "87654321"},
                "publish": true,
            }),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{issued}");

    // Every node finds it by name and city, with its FHIR endpoint; also as FHIR mCSD.
    for n in &net.nodes {
        let v = wait_for(n, "/v1/directory?name=zuyderland&city=Heerlen", |v| {
            v["organizations"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
        let org = &v["organizations"][0];
        assert_eq!(org["did"], hospital.as_str());
        assert_eq!(org["endpoints"]["FHIR"], "https://zuyderland.example/fhir");
        let (_, none) = n.get("/v1/directory?city=Leiden").await.unwrap();
        assert_eq!(none["organizations"].as_array().unwrap().len(), 0);
        let (code, bundle) = n
            .get("/fhir/Organization?name=Zuyderland&address-city=Heerlen")
            .await
            .unwrap();
        assert_eq!(code, 200);
        assert_eq!(bundle["total"], 1, "{bundle}");
        let resource = &bundle["entry"][0]["resource"];
        assert_eq!(resource["identifier"][0]["value"], "87654321");
        let org_id = resource["id"].as_str().unwrap();
        let (_, eps) = n
            .get(&format!(
                "/fhir/Endpoint?organization=Organization/{org_id}"
            ))
            .await
            .unwrap();
        assert_eq!(
            eps["entry"][0]["resource"]["address"],
            "https://zuyderland.example/fhir"
        );
        let (_, by_ura) = n
            .get("/fhir/Organization?identifier=http://fhir.nl/fhir/NamingSystem/ura|87654321")
            .await
            .unwrap();
        assert_eq!(by_ura["total"], 1);
    }

    // The hospital issues a professional credential for its employee: valid on every node.
    let doctor = create_did(b, json!([])).await;
    let (code, prof) = b
        .post(
            "/v1/credentials",
            &json!({
                "issuer": hospital,
                "type": "HealthcareProfessionalCredential",
                "subject": {"id": doctor, "name": "Dr. A. Jansen", "roleCode": "01.015",
                            "registerId": "19012345601", "employer": hospital},
                "cryptosuite": "eddsa-rdfc-2022",
            }),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{prof}");
    let prof = prof["credential"].clone();
    for n in &net.nodes {
        assert_eq!(verify_code(n, &prof).await, "ok", "{}", n.name);
    }

    // The hospital presents its organisation credential to a verifier on node C.
    let (code, vp) = b
        .post(
            "/v1/presentations",
            &json!({"holder": hospital, "credentials": [issued["credential"]],
                    "challenge": "n-42", "domain": "https://token.node-c.example"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{vp}");
    let check = |challenge: &str| json!({"presentation": vp["presentation"], "challenge": challenge, "domain": "https://token.node-c.example"});
    let (_, v) = net.nodes[2]
        .post("/v1/presentations/verify", &check("n-42"))
        .await
        .unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["holder"], hospital.as_str());
    assert_eq!(v["credentials"][0]["type"], "CareOrganizationCredential");
    let (_, v) = net.nodes[2]
        .post("/v1/presentations/verify", &check("replayed"))
        .await
        .unwrap();
    assert_eq!(v["code"], "challenge_mismatch", "{v}");

    // Tampered with.
    let mut tampered = prof.clone();
    tampered["credentialSubject"]["roleCode"] = "99.999".into();
    assert_eq!(verify_code(&net.nodes[2], &tampered).await, "bad_proof");

    // For someone else's employee: the hospital may not.
    let (_, other) = b
        .post(
            "/v1/credentials",
            &json!({
                "issuer": hospital, "type": "HealthcareProfessionalCredential",
                "subject": {"id": doctor, "name": "X", "roleCode": "01.015", "registerId": "1", "employer": ra},
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        verify_code(&net.nodes[0], &other["credential"]).await,
        "untrusted_issuer"
    );

    // An uncertified organisation is not a trusted issuer.
    let clinic = create_did(&net.nodes[2], json!([])).await;
    wait_for(&net.nodes[1], &format!("/v1/dids/{clinic}"), |v| {
        v["didDocument"].is_object()
    })
    .await;
    let (_, untrusted) = net.nodes[2]
        .post(
            "/v1/credentials",
            &json!({
                "issuer": clinic, "type": "HealthcareProfessionalCredential",
                "subject": {"id": doctor, "name": "X", "roleCode": "01.015", "registerId": "1", "employer": clinic},
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        verify_code(&net.nodes[1], &untrusted["credential"]).await,
        "untrusted_issuer"
    );

    // Expired.
    let soon = knoop_did::knoop::time::to_rfc3339_ms(knoop_gossip::tx::now_ms() + 5_000);
    let (code, short) = b
        .post(
            "/v1/credentials",
            &json!({
                "issuer": hospital, "type": "HealthcareProfessionalCredential", "validUntil": soon,
                "subject": {"id": doctor, "name": "X", "roleCode": "01.015", "registerId": "1", "employer": hospital},
            }),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{short}");
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    assert_eq!(
        verify_code(&net.nodes[0], &short["credential"]).await,
        "expired"
    );

    // Revoked by the hospital: refused on every node once the revocation has spread.
    let (code, body) = b
        .post(
            "/v1/credentials/revoke",
            &json!({"credential": prof["id"], "issuer": hospital, "reason": "left the hospital"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    for n in &net.nodes {
        let t0 = Instant::now();
        while verify_code(n, &prof).await != "revoked" {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{}: not revoked",
                n.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Someone else's "revocation" of the organisation credential does not count.
    let (code, body) = net.nodes[2]
        .post(
            "/v1/credentials/revoke",
            &json!({"credential": issued["credential"]["id"], "issuer": clinic}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, v) = net.nodes[0]
        .get("/v1/directory?ura=87654321")
        .await
        .unwrap();
    assert_eq!(v["organizations"].as_array().unwrap().len(), 1, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_signed_with_a_rotated_out_key_fails() {
    let net = Network::start(2).await.unwrap();
    let n = &net.nodes[0];
    // A client-side issuer whose keys the test holds.
    let issuer = ClientDid::new(SigningKey::from_bytes(&[31; 32]));
    let (code, body) = n
        .post("/v1/transactions", &submission(&issuer.root))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    for node in &net.nodes {
        let (code, body) = node
            .put(
                &format!("/v1/trust/HealthcareProfessionalCredential/{}", issuer.did),
                &json!({}),
            )
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    let claims = Claims::HealthcareProfessional(HealthcareProfessional {
        id: "did:knoop:someone".into(),
        name: "Dr. B. de Vries".into(),
        role_code: "01.015".into(),
        register_id: "29012345601".into(),
        employer: issuer.did.clone(),
    });
    let make = |key: &SigningKey, frag: &str| {
        let now = knoop_gossip::tx::now_ms();
        let vc = unsigned(
            &format!("urn:uuid:{now}"),
            &issuer.did,
            &claims,
            &knoop_did::knoop::time::to_rfc3339(now - 60_000),
            None,
        );
        let mut opts =
            ProofOptions::new(Cryptosuite::EddsaJcs2022, format!("{}#{frag}", issuer.did));
        opts.created = Some(knoop_did::knoop::time::to_rfc3339_ms(now));
        sign(&vc, &opts, key, &knoop_contexts()).unwrap()
    };
    let before = make(&issuer.key, "key-1");
    tokio::time::sleep(Duration::from_millis(20)).await;
    for node in &net.nodes {
        let t0 = Instant::now();
        while verify_code(node, &before).await != "ok" {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{} never accepted it",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Rotate key-1 -> key-2 (client-side update).
    let k2 = SigningKey::from_bytes(&[32; 32]);
    let mut doc = DidDocument::new(&issuer.did);
    doc.add_ed25519(
        "key-2",
        &k2.verifying_key(),
        &[
            Relationship::AssertionMethod,
            Relationship::CapabilityInvocation,
        ],
    );
    let rotation = TxBuilder::new(DID_OP_CONTENT_TYPE)
        .prevs([(issuer.root.id(), 0)])
        .kid(issuer.kid())
        .sign(
            &issuer.key,
            DidOp::Update {
                previous: VersionId(issuer.root.id().0),
                document: doc,
            }
            .to_bytes(),
        )
        .unwrap();
    let (code, body) = n
        .post("/v1/transactions", &submission(&rotation))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let after_old = make(&issuer.key, "key-1");
    let after_new = make(&k2, "key-2");
    for node in &net.nodes {
        let t0 = Instant::now();
        while verify_code(node, &after_new).await != "ok" {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{}: key-2 never accepted",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            verify_code(node, &after_old).await,
            "issuer_key_not_valid_at_issuance",
            "{}",
            node.name
        );
        // Issued before the rotation: still valid (the key was valid at issuance).
        assert_eq!(verify_code(node, &before).await, "ok");
    }
}
