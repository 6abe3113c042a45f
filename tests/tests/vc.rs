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
        // The FHIR directory is materialised from the credential index, a moment after it.
        let bundle = wait_for(
            n,
            "/fhir/Organization?name=Zuyderland&address-city=Heerlen",
            |b| b["total"] == 1,
        )
        .await;
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

/// A JWS made by ssi's JOSE implementation (not ours), as the did:key of `key`.
fn ssi_jwt(payload: &Value, key: &SigningKey) -> String {
    use ssi::claims::jws::{encode_sign_custom_header, Header};
    use ssi::jwk::{Algorithm, Base64urlUInt, OctetParams, Params, JWK};
    let secret = JWK::from(Params::OKP(OctetParams {
        curve: "Ed25519".into(),
        public_key: Base64urlUInt(key.verifying_key().to_bytes().to_vec()),
        private_key: Some(Base64urlUInt(key.to_bytes().to_vec())),
    }));
    let mb = knoop_did::document::ed25519_multibase(&key.verifying_key());
    let header = Header {
        algorithm: Algorithm::EdDSA,
        key_id: Some(format!("did:key:{mb}#{mb}")),
        type_: Some("vc+jwt".into()),
        ..Default::default()
    };
    encode_sign_custom_header(&payload.to_string(), &secret, &header).unwrap()
}

/// Polls verification until it gives `want` (a status list change shows after the cache age).
async fn wait_verify(node: &Node, credential: &Value, want: &str) {
    let t0 = Instant::now();
    loop {
        let got = verify_code(node, credential).await;
        if got == want {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{}: still {got}, want {want}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_issuers_jose_and_status_lists() {
    // A status list server with a throw-away CA, and a node that trusts it.
    let web = knoop_e2e::https::TestHttps::start(Vec::new()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let n = Node::start_with_env(
        "n0",
        &root.path().join("n0"),
        &[],
        vec![
            (
                "KNOOP_STATUS_LIST__CA_FILE".into(),
                web.ca_pem_path().display().to_string(),
            ),
            ("KNOOP_STATUS_LIST__MAX_AGE".into(), "1s".into()),
        ],
    )
    .await
    .unwrap();

    // An issuer outside the network (did:key), whose credential and status list are made by
    // ssi's JOSE implementation.
    let key = SigningKey::from_bytes(&[41; 32]);
    let mb = knoop_did::document::ed25519_multibase(&key.verifying_key());
    let issuer = format!("did:key:{mb}");
    let list_url = web.url("/status/1");
    let list = |set: &[usize]| {
        ssi_jwt(
            &json!({
                "@context": ["https://www.w3.org/ns/credentials/v2"],
                "id": list_url,
                "type": ["VerifiableCredential", "BitstringStatusListCredential"],
                "issuer": issuer,
                "validFrom": "2026-01-01T00:00:00Z",
                "credentialSubject": {
                    "id": format!("{list_url}#list"), "type": "BitstringStatusList",
                    "statusPurpose": "revocation",
                    "encodedList": knoop_vc::status::encode_list(set, 131_072),
                },
            }),
            &key,
        )
    };
    web.set("/status/1".into(), list(&[]).into_bytes());
    let credential = Value::String(ssi_jwt(
        &json!({
            "@context": ["https://www.w3.org/ns/credentials/v2", "https://www.w3.org/ns/credentials/examples/v2"],
            "id": "urn:uuid:5d0c1a6e-2222-4000-8000-000000000001",
            "type": ["VerifiableCredential", "ExampleDegreeCredential"],
            "issuer": issuer,
            "validFrom": "2026-01-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:graduate", "degree": {"type": "ExampleBachelorDegree", "name": "Bachelor of Science"}},
            "credentialStatus": {
                "id": format!("{list_url}#5"), "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation", "statusListIndex": "5",
                "statusListCredential": list_url,
            },
        }),
        &key,
    ));
    // Everything checks out but trust; then trusted for its type, it verifies.
    assert_eq!(verify_code(&n, &credential).await, "untrusted_issuer");
    let (code, body) = n
        .put(
            &format!("/v1/trust/ExampleDegreeCredential/{issuer}"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let (_, v) = n
        .post("/v1/credentials/verify", &json!({"credential": credential}))
        .await
        .unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["type"], "ExampleDegreeCredential");
    assert_eq!(v["cryptosuite"], "jose-eddsa");
    // The issuer sets its bit in the list: revoked. The list disappears: unknown status.
    web.set("/status/1".into(), list(&[5]).into_bytes());
    wait_verify(&n, &credential, "revoked").await;
    web.set("/status/1".into(), list(&[4, 6]).into_bytes());
    wait_verify(&n, &credential, "ok").await;
    web.remove("/status/1");
    wait_verify(&n, &credential, "status_unavailable").await;
    // A list signed by another key under the issuer's name does not count.
    let impostor = SigningKey::from_bytes(&[42; 32]);
    let forged = {
        let good = list(&[]);
        let other = ssi_jwt(&json!({"issuer": issuer}), &impostor);
        let g: Vec<&str> = good.split('.').collect();
        let o: Vec<&str> = other.split('.').collect();
        format!("{}.{}.{}", g[0], g[1], o[2])
    };
    web.set("/status/1".into(), forged.into_bytes());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(verify_code(&n, &credential).await, "status_unavailable");

    // The node issues a JOSE organisation credential, publishes it, and finds it in the
    // directory; the hospital presents it enveloped.
    let ra = create_did(&n, json!([])).await;
    let hospital = create_did(&n, json!([])).await;
    let (code, body) = n
        .put(
            &format!("/v1/trust/CareOrganizationCredential/{ra}"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, issued) = n
        .post(
            "/v1/credentials",
            &json!({
                "issuer": ra, "type": "CareOrganizationCredential", "cryptosuite": "jose",
                "subject": {"id": hospital, "legalName": "Maastricht UMC+", "city": "Maastricht",
                            "organizationType": "hospital", "ura": "11223344"},
                "publish": true,
            }),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{issued}");
    let jwt = issued["credential"].as_str().expect("a JWT").to_owned();
    assert_eq!(jwt.split('.').count(), 3);
    let found = wait_for(&n, "/v1/directory?ura=11223344", |v| {
        v["organizations"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    assert_eq!(found["organizations"][0]["did"], hospital.as_str());
    let (code, vp) = n
        .post(
            "/v1/presentations",
            &json!({"holder": hospital, "credentials": [jwt], "challenge": "n-1", "domain": "https://mumc.example"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{vp}");
    let (_, checked) = n
        .post(
            "/v1/presentations/verify",
            &json!({"presentation": vp["presentation"], "challenge": "n-1", "domain": "https://mumc.example"}),
        )
        .await
        .unwrap();
    assert_eq!(checked["valid"], true, "{checked}");
    assert_eq!(checked["credentials"][0]["subject"], hospital.as_str());
    let (_, v) = n
        .post("/v1/credentials/verify", &json!({"credential": jwt}))
        .await
        .unwrap();
    assert_eq!(v["cryptosuite"], "jose-es256", "{v}");

    // The national guide's format: a VC 1.1 JWT, ES256, the claims in `vc`.
    let (code, issued) = n
        .post(
            "/v1/credentials",
            &json!({
                "issuer": ra, "type": "CareOrganizationCredential", "cryptosuite": "jwt_vc",
                "subject": {"id": hospital, "legalName": "Maastricht UMC+", "city": "Maastricht",
                            "organizationType": "hospital", "ura": "11223344"},
            }),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{issued}");
    let vc11 = issued["credential"].as_str().expect("a JWT").to_owned();
    use base64::Engine;
    let part = |i: usize| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(vc11.split('.').nth(i).unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let (header, payload) = (part(0), part(1));
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("ES256"), Some("JWT"))
    );
    assert_eq!(payload["iss"], ra.as_str(), "{payload}");
    assert_eq!(payload["sub"], hospital.as_str(), "{payload}");
    assert_eq!(
        payload["vc"]["@context"][0], "https://www.w3.org/2018/credentials/v1",
        "{payload}"
    );
    let (_, v) = n
        .post("/v1/credentials/verify", &json!({"credential": vc11}))
        .await
        .unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["cryptosuite"], "jose-es256", "{v}");
}

/// GFI-003: a credential issued by a tenant carries a `BitstringStatusListEntry` pointing at its
/// node's public API. Another node verifies it through the list (over TLS); a verifier outside
/// knoop (`tests/status_check.py`: joserfc, the issuer's did:web document, gzip) reads the bit,
/// and sees it set as soon as the issuer revokes; every knoop node then refuses the credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_outsiders_through_the_status_list() {
    let ca = knoop_e2e::https::TestCa::new().unwrap();
    let (port, mut host_env) = ca.public_env_on_localhost().unwrap();
    let ca_file = ca.ca_pem_path().display().to_string();
    let reader_env = vec![
        ("KNOOP_STATUS_LIST__CA_FILE".to_owned(), ca_file.clone()),
        ("KNOOP_STATUS_LIST__MAX_AGE".to_owned(), "1s".to_owned()),
    ];
    host_env.extend(reader_env.clone());
    let net = Network::start_each(vec![host_env, reader_env])
        .await
        .unwrap();
    let (host, reader) = (&net.nodes[0], &net.nodes[1]);
    let ra = create_did(host, json!([])).await;
    let hospital = create_did(host, json!([])).await;
    for n in &net.nodes {
        let (code, body) = n
            .put(
                &format!("/v1/trust/CareOrganizationCredential/{ra}"),
                &json!({}),
            )
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    let (code, issued) = host
        .post(
            "/v1/credentials",
            &json!({"issuer": ra, "type": "CareOrganizationCredential",
                    "subject": {"id": hospital, "legalName": "Zuyderland MC", "city": "Heerlen",
                                "organizationType": "hospital", "ura": "70000002"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{issued}");
    let credential = issued["credential"].clone();
    let entry = &credential["credentialStatus"];
    assert_eq!(entry["type"], "BitstringStatusListEntry", "{credential}");
    assert_eq!(entry["statusPurpose"], "revocation");
    let list_url = entry["statusListCredential"].as_str().unwrap();
    assert!(
        list_url.starts_with(&format!("https://localhost:{port}/statuslists/")),
        "{list_url}"
    );
    // Knoop nodes verify it through the list (the reader once the RA's DID has arrived).
    wait_verify(host, &credential, "ok").await;
    wait_verify(reader, &credential, "ok").await;

    let dir = tempfile::tempdir().unwrap();
    let cred_file = dir.path().join("credential.json");
    std::fs::write(&cred_file, credential.to_string()).unwrap();
    let doc_url = format!(
        "https://localhost:{port}/knoop/{}/did.json",
        &ra["did:knoop:".len()..]
    );
    let outside = || {
        let run = std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/status_check.py"))
            .arg(&cred_file)
            .arg(&doc_url)
            .arg(&ca_file)
            .output()
            .expect("python3 with joserfc and requests");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        serde_json::from_slice::<Value>(&run.stdout).unwrap()
    };
    let before = outside();
    assert_eq!(before["status"], 0, "{before}");
    assert_eq!(before["issuer"], ra.as_str(), "{before}");
    assert_eq!(before["entries"], 131_072, "{before}");

    let (code, revoked) = host
        .post(
            "/v1/credentials/revoke",
            &json!({"issuer": ra, "credential": credential["id"], "reason": "closed"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{revoked}");
    assert_eq!(revoked["status_list"], true, "{revoked}");
    let after = outside();
    assert_eq!(after["status"], 1, "the bit flips at once: {after}");
    wait_verify(host, &credential, "revoked").await;
    wait_verify(reader, &credential, "revoked").await;

    // Lists of issuers not hosted there, and list numbers not in use, are not found.
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca.ca_pem_path()).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}/statuslists");
    for path in [
        format!("{}/7", &ra["did:knoop:".len()..]),
        format!("{}/x", &ra["did:knoop:".len()..]),
        "4Pd4h9CoNrCCu5QPupW7pEyPzh3AuxrR5mR1LDGiAhz8/0".to_owned(),
    ] {
        let r = http.get(format!("{base}/{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
}

/// The directory is an mCSD Query Directory an outside FHIR client reads without workarounds
/// (`tests/fhir_directory.py`: SMART on FHIR's fhirclient, strict R4 models): the
/// CapabilityStatement, the client's own search and read, FHIR string matching (prefix, accents,
/// `:exact`, `:contains`), paging by next links that covers the true total, and
/// OperationOutcomes for an unknown id and an unknown parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_reads_as_a_fhir_query_directory() {
    let net = Network::start(1).await.unwrap();
    let n = &net.nodes[0];
    let ra = create_did(n, json!([])).await;
    let (code, body) = n
        .put(
            &format!("/v1/trust/CareOrganizationCredential/{ra}"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let orgs = [
        (
            "Zorggroep Noord",
            "Groningen",
            "99990101",
            json!("https://noord.example/fhir"),
        ),
        (
            "Zélande Zorg",
            "Middelburg",
            "99990102",
            json!(["https://zelande.example/fhir"]),
        ),
        ("Apotheek Zuid", "Maastricht", "99990103", Value::Null),
    ];
    for (name, city, ura, fhir) in &orgs {
        let services = if fhir.is_null() {
            json!([])
        } else {
            json!([{"type": "FHIR", "serviceEndpoint": fhir}])
        };
        let did = create_did(n, services).await;
        let (code, issued) = n
            .post(
                "/v1/credentials",
                &json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
                        "subject": {"id": did, "legalName": name, "city": city,
                                    "organizationType": "pharmacy", "ura": ura}}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{issued}");
    }
    // The FHIR directory is materialised from the credential index, a moment after it.
    wait_for(n, "/fhir/Organization", |v| v["total"] == 3).await;

    let v = knoop_e2e::run_outside(
        std::process::Command::new("python3")
            .arg(knoop_e2e::repo_root().join("tests/fhir_directory.py"))
            .arg(format!("{}/fhir", n.rpc))
            .arg("zorg"),
    );
    assert_eq!(
        v["found"],
        json!(["Zorggroep Noord"]),
        "prefix, not substring: {v}"
    );
    assert_eq!(v["read"], "Zorggroep Noord", "{v}");
    assert_eq!(v["endpoints"], json!(["https://noord.example/fhir"]), "{v}");
    assert_eq!(
        (v["total"].as_u64(), v["paged"].as_u64()),
        (Some(3), Some(3)),
        "{v}"
    );
    assert_eq!(v["exact"], json!(["Zorggroep Noord"]), "{v}");
    assert_eq!(
        v["contains"],
        json!(["Zorggroep Noord", "Zélande Zorg"]),
        "{v}"
    );
    assert_eq!(v["accent"], json!(["Zélande Zorg"]), "{v}");
    assert_eq!(
        (v["not_found"].as_u64(), v["unknown_parameter"].as_u64()),
        (Some(404), Some(400)),
        "{v}"
    );

    // An endpoint published as a list is one address in FHIR.
    let (_, b) = n.get("/fhir/Endpoint").await.unwrap();
    let mut addresses: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["address"].as_str().unwrap())
        .collect();
    addresses.sort();
    assert_eq!(
        addresses,
        vec!["https://noord.example/fhir", "https://zelande.example/fhir"]
    );
}
