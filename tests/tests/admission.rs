//! A members-only network (spec: `specs/admission.md`) over real node processes: two nodes
//! holding membership credentials from the network's issuer (a did:jwk) converge; a node whose
//! credential names another peer, or comes from an issuer the network does not name, refuses to
//! start; a knoop node without membership that
//! connects learns nothing and gives nothing; a member whose credential expires, or whose
//! credential its issuer revokes in its status list, is cut off at the next verification and
//! gets nothing more.

use std::time::{Duration, Instant};

use base64::Engine;
use knoop_e2e::care::create_did;
use knoop_e2e::Node;
use knoop_gossip::wire::SyncResponse;
use knoop_vc::jws::{PublicJwk, SigningKey};
use serde_json::{json, Value};

const NETWORK: &str = "admission-test";

/// The network's membership issuer: a did:jwk, resolvable without the log.
struct Issuer {
    key: ed25519_dalek::SigningKey,
    did: String,
}

impl Issuer {
    fn new() -> Issuer {
        let key = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
        let did = Issuer::did_of(&key);
        Issuer { key, did }
    }

    fn did_of(key: &ed25519_dalek::SigningKey) -> String {
        let jwk = PublicJwk::Ed25519(key.verifying_key()).to_json();
        format!(
            "did:jwk:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&jwk).unwrap())
        )
    }

    /// A vc+jwt membership credential for the node `did` with libp2p peer id `peer`, valid
    /// for `seconds`.
    fn credential(&self, did: &str, peer: &str, seconds: u64) -> String {
        self.credential_with_status(did, peer, seconds, None)
    }

    /// The same, with entry `index` of the revocation list at `list_url`.
    fn credential_with_status(
        &self,
        did: &str,
        peer: &str,
        seconds: u64,
        status: Option<(&str, usize)>,
    ) -> String {
        let now = knoop_gossip::tx::now_ms();
        let t = |ms: u64| knoop_did::knoop::time::to_rfc3339(ms);
        let credential = json!({
            "@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/knoop/credentials/v1"],
            "type": ["VerifiableCredential", "KnoopMembershipCredential"],
            "issuer": self.did,
            "validFrom": t(now - 60_000),
            "validUntil": t(now + seconds * 1000),
            "credentialSubject": {"id": did, "type": "KnoopNetworkMember", "peerId": peer, "network": NETWORK},
        });
        let mut credential = credential;
        if let Some((list, index)) = status {
            credential["credentialStatus"] = json!({
                "id": format!("{list}#{index}"), "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation", "statusListIndex": index.to_string(),
                "statusListCredential": list,
            });
        }
        knoop_vc::jose::sign(
            &credential,
            &format!("{}#0", self.did),
            &SigningKey::Ed25519(self.key.clone()),
        )
        .unwrap()
    }

    /// The issuer's revocation list at `url` with `revoked` set, as a vc+jwt.
    fn status_list(&self, url: &str, revoked: &[usize]) -> String {
        let list = json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": url,
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "issuer": self.did,
            "validFrom": knoop_did::knoop::time::to_rfc3339(knoop_gossip::tx::now_ms() - 60_000),
            "credentialSubject": {
                "id": format!("{url}#list"), "type": "BitstringStatusList",
                "statusPurpose": "revocation",
                "encodedList": knoop_vc::status::encode_list(revoked, 131_072),
            },
        });
        knoop_vc::jose::sign(
            &list,
            &format!("{}#0", self.did),
            &SigningKey::Ed25519(self.key.clone()),
        )
        .unwrap()
    }
}

/// Starts a node offline once (its keys, its peer id and node DID), so that its credential can
/// be issued before it joins.
async fn offline(root: &std::path::Path, name: &str) -> (Node, String) {
    let node = Node::start_with_env(
        name,
        &root.join(name),
        &[],
        vec![("KNOOP_P2P__ENABLED".into(), "false".into())],
    )
    .await
    .unwrap();
    let did = node.status().await.unwrap()["did"]
        .as_str()
        .unwrap()
        .to_owned();
    (node, did)
}

/// Restarts `node` on the network as a member (credential file `credential`), bootstrapped
/// from `bootstrap`.
async fn join(node: &mut Node, issuer: &Issuer, credential: &str, bootstrap: Option<&str>) {
    node.stop().await.unwrap();
    let file = node.dir.join("membership.jwt");
    std::fs::write(&file, credential).unwrap();
    set_env(node, membership_env(issuer, &file));
    node.env
        .push(("KNOOP_P2P__MEMBERSHIP_REVERIFY".into(), "2s".into()));
    if let Some(b) = bootstrap {
        node.env
            .push(("KNOOP_P2P__BOOTSTRAP".into(), format!("[\"{b}\"]")));
    }
    node.restart().await.unwrap();
}

/// The environment of a member of the test network.
fn membership_env(issuer: &Issuer, credential: &std::path::Path) -> Vec<(String, String)> {
    vec![
        (
            "KNOOP_P2P__MEMBERSHIP_ISSUERS".into(),
            format!("[\"{}\"]", issuer.did),
        ),
        ("KNOOP_P2P__MEMBERSHIP_NETWORK".into(), NETWORK.into()),
        (
            "KNOOP_P2P__MEMBERSHIP_CREDENTIAL".into(),
            credential.display().to_string(),
        ),
    ]
}

/// Replaces the node's p2p settings (`KNOOP_P2P__*`) with `p2p`, keeping the rest (its public
/// API's port).
fn set_env(node: &mut Node, p2p: Vec<(String, String)>) {
    node.env.retain(|(k, _)| !k.starts_with("KNOOP_P2P__"));
    node.env.extend(p2p);
}

fn digest(s: &Value) -> String {
    s["digest"].as_str().unwrap_or_default().to_owned()
}

/// Whether `node` lists `peer` as an admitted member.
async fn is_member(node: &Node, peer: &str) -> bool {
    node.status().await.unwrap()["peer_list"]
        .as_array()
        .is_some_and(|l| {
            l.iter()
                .any(|p| p["peer_id"] == peer && p["member"] == true)
        })
}

/// `n0` cuts `n1` off (it is no member in `n0`'s peer list any more), and `n1` gets nothing
/// `n0` creates after that.
async fn assert_cut_off(n0: &Node, n1: &Node, why: &str) {
    wait_for(&format!("n0 cuts off the {why} member"), 20, async || {
        !is_member(n0, &n1.peer_id).await
    })
    .await;
    let after = create_did(n0).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (code, _) = n1.get(&format!("/v1/dids/{after}")).await.unwrap();
    assert_eq!(code, 404, "the {why} member got a new transaction");
}

async fn wait_for(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !ok().await {
        assert!(t0.elapsed() < Duration::from_secs(secs), "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_take_part_and_an_expired_member_is_cut_off() {
    let root = tempfile::Builder::new()
        .prefix("knoop-admission-")
        .tempdir()
        .unwrap();
    let issuer = Issuer::new();
    let (mut n0, did0) = offline(root.path(), "n0").await;
    let (mut n1, did1) = offline(root.path(), "n1").await;
    let (mut n2, did2) = offline(root.path(), "n2").await;

    // Two members; n1's membership ends in 30 s.
    let c0 = issuer.credential(&did0, &n0.peer_id, 3600);
    join(&mut n0, &issuer, &c0, None).await;
    let boot = n0.p2p.clone();
    let c1 = issuer.credential(&did1, &n1.peer_id, 30);
    join(&mut n1, &issuer, &c1, Some(&boot)).await;
    let expires = Instant::now() + Duration::from_secs(30);
    for _ in 0..3 {
        create_did(&n0).await;
    }
    wait_for("the members converge", 30, async || {
        let (a, b) = (n0.status().await.unwrap(), n1.status().await.unwrap());
        digest(&a) == digest(&b) && a["transactions"].as_u64() >= Some(5)
    })
    .await;
    let peers = n0.status().await.unwrap()["peer_list"].clone();
    assert!(
        peers
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer_id"] == n1.peer_id.as_str() && p["member"] == true),
        "{peers}"
    );

    // A node presenting a credential for another peer refuses to start, and says why.
    n2.stop().await.unwrap();
    let file = n2.dir.join("membership.jwt");
    std::fs::write(&file, issuer.credential(&did0, &n0.peer_id, 3600)).unwrap();
    set_env(&mut n2, membership_env(&issuer, &file));
    let refused = n2.restart().await.unwrap_err().to_string();
    assert!(refused.contains("does not make this node"), "{refused}");
    assert!(refused.contains("another peer"), "{refused}");
    // ... and so does one with its own credential from an issuer the network does not name.
    let stranger = Issuer {
        key: ed25519_dalek::SigningKey::from_bytes(&[78; 32]),
        did: String::new(),
    };
    let stranger = Issuer {
        did: Issuer::did_of(&stranger.key),
        ..stranger
    };
    std::fs::write(&file, stranger.credential(&did2, &n2.peer_id, 3600)).unwrap();
    let refused = n2.restart().await.unwrap_err().to_string();
    assert!(
        refused.contains("is not a membership issuer of this network"),
        "{refused}"
    );

    // The same node without membership (an open node) connects and learns nothing: its sync
    // requests are refused, nothing is pushed to it, and what it pushes is not taken.
    set_env(
        &mut n2,
        vec![("KNOOP_P2P__BOOTSTRAP".into(), format!("[\"{boot}\"]"))],
    );
    n2.restart().await.unwrap();
    wait_for("the outsider connects", 20, async || {
        n0.status().await.unwrap()["peer_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p["peer_id"] == n2.peer_id.as_str()))
    })
    .await;
    let from_member = create_did(&n0).await;
    let from_outsider = create_did(&n2).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (code, _) = n2.get(&format!("/v1/dids/{from_member}")).await.unwrap();
    assert_eq!(code, 404, "the outsider learnt a member's DID");
    let (code, _) = n2.get(&format!("/v1/dids/{did0}")).await.unwrap();
    assert_eq!(code, 404, "the outsider learnt a member's node DID");
    let (code, _) = n0.get(&format!("/v1/dids/{from_outsider}")).await.unwrap();
    assert_eq!(code, 404, "a member took the outsider's DID");
    let after = n2.status().await.unwrap();
    assert_eq!(after["sync"]["received_push"], 0, "{after}");
    assert_eq!(after["sync"]["received_fetched"], 0, "{after}");
    assert!(digest(&after) != digest(&n0.status().await.unwrap()));
    let s0 = n0.status().await.unwrap();
    let outsider = s0["peer_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == n2.peer_id.as_str())
        .cloned();
    if let Some(p) = outsider {
        assert_eq!(p["member"], false, "{p}");
    }
    assert!(n0.log_text().contains("peer admitted"));

    // n1's credential expires: at the next verification n0 cuts it off, and n1 gets nothing
    // created after that.
    tokio::time::sleep(expires.saturating_duration_since(Instant::now()) + Duration::from_secs(4))
        .await;
    assert_cut_off(&n0, &n1, "expired").await;
    assert!(
        n0.log_text().contains("is not a member"),
        "no refusal logged"
    );
}

/// The issuer revokes a member's credential in its status list (served over HTTPS): at its
/// next verification the other member cuts it off, and it gets nothing created after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_member_is_cut_off() {
    let root = tempfile::Builder::new()
        .prefix("knoop-revocation-")
        .tempdir()
        .unwrap();
    let issuer = Issuer::new();
    let web = knoop_e2e::https::TestHttps::start(Vec::new()).unwrap();
    let list_url = web.url("/status/members");
    web.set(
        "/status/members".into(),
        issuer.status_list(&list_url, &[]).into_bytes(),
    );
    let status_env = |node: &mut Node| {
        node.env.push((
            "KNOOP_STATUS_LIST__CA_FILE".into(),
            web.ca_pem_path().display().to_string(),
        ));
        node.env
            .push(("KNOOP_STATUS_LIST__MAX_AGE".into(), "1s".into()));
    };
    let (mut n0, did0) = offline(root.path(), "n0").await;
    let (mut n1, did1) = offline(root.path(), "n1").await;
    status_env(&mut n0);
    status_env(&mut n1);
    let c0 = issuer.credential_with_status(&did0, &n0.peer_id, 3600, Some((&list_url, 3)));
    join(&mut n0, &issuer, &c0, None).await;
    let boot = n0.p2p.clone();
    let c1 = issuer.credential_with_status(&did1, &n1.peer_id, 3600, Some((&list_url, 7)));
    join(&mut n1, &issuer, &c1, Some(&boot)).await;
    let before = create_did(&n0).await;
    wait_for("the members converge", 30, async || {
        let (code, _) = n1.get(&format!("/v1/dids/{before}")).await.unwrap();
        code == 200
    })
    .await;

    // The issuer revokes n1's membership (entry 7), not n0's (entry 3).
    web.set(
        "/status/members".into(),
        issuer.status_list(&list_url, &[7]).into_bytes(),
    );
    assert_cut_off(&n0, &n1, "revoked").await;
    assert!(
        n0.log_text().contains("revoked"),
        "the refusal does not say the credential is revoked"
    );
}

/// What the js-libp2p outsider (`tests/outsider/probe.mjs`) got from `target` when it asked
/// `/knoop/sync/1` for the state and for transaction `id`: the two decoded answers.
fn probe(target: &str, id: &str) -> (SyncResponse, SyncResponse) {
    let dir = knoop_e2e::repo_root().join("tests/outsider");
    let out = knoop_e2e::run_outside(
        std::process::Command::new("node")
            .arg(dir.join("probe.mjs"))
            .args([target, id])
            .current_dir(&dir),
    );
    assert_eq!(out["connected"], true, "{out}");
    let answer = |what: &str| -> SyncResponse {
        let text = out[what]["answer"]
            .as_str()
            .unwrap_or_else(|| panic!("no {what} answer: {out}"));
        cbor4ii::serde::from_slice(&hex::decode(text).unwrap())
            .unwrap_or_else(|e| panic!("{what}: {e}: {out}"))
    };
    (answer("state"), answer("fetch"))
}

/// An outsider speaking knoop's sync protocol from another libp2p implementation (js-libp2p,
/// TCP + Noise + yamux): an open node answers it (its set digest, a transaction), a members-only
/// node refuses both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_in_js_libp2p_learns_nothing_from_a_member() {
    let root = tempfile::Builder::new()
        .prefix("knoop-outsider-")
        .tempdir()
        .unwrap();
    // The control: an open node answers the probe.
    let open = Node::start("open", &root.path().join("open"), &[])
        .await
        .unwrap();
    create_did(&open).await;
    let (_, page) = open.get("/v1/transactions?limit=1").await.unwrap();
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    let (state, fetch) = probe(&open.p2p, &id);
    let digest = digest(&open.status().await.unwrap());
    match state {
        SyncResponse::State(s) => assert_eq!(s.digest, digest),
        other => panic!("the open node did not answer the state: {other:?}"),
    }
    match fetch {
        SyncResponse::Txs(txs) => assert_eq!(txs.len(), 1),
        other => panic!("the open node did not give the transaction: {other:?}"),
    }

    // A member refuses the same outsider both.
    let issuer = Issuer::new();
    let (mut n0, did0) = offline(root.path(), "n0").await;
    let c0 = issuer.credential(&did0, &n0.peer_id, 3600);
    join(&mut n0, &issuer, &c0, None).await;
    let (_, page) = n0.get("/v1/transactions?limit=1").await.unwrap();
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    let (state, fetch) = probe(&n0.p2p, &id);
    assert_eq!(state, SyncResponse::Refused("not_admitted".into()));
    assert_eq!(fetch, SyncResponse::Refused("not_admitted".into()));
}

/// A member renews its credential by replacing the file before the old one expires: it sends
/// the new one to its peers, which keep it a member past the old credential's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_renews_its_credential_by_replacing_the_file() {
    let root = tempfile::Builder::new()
        .prefix("knoop-renewal-")
        .tempdir()
        .unwrap();
    let issuer = Issuer::new();
    let (mut n0, did0) = offline(root.path(), "n0").await;
    let (mut n1, did1) = offline(root.path(), "n1").await;
    let c0 = issuer.credential(&did0, &n0.peer_id, 3600);
    join(&mut n0, &issuer, &c0, None).await;
    let boot = n0.p2p.clone();
    // n1's first credential ends in 15 s.
    let c1 = issuer.credential(&did1, &n1.peer_id, 15);
    join(&mut n1, &issuer, &c1, Some(&boot)).await;
    let ends = Instant::now() + Duration::from_secs(15);
    wait_for("n0 admits n1", 20, async || {
        is_member(&n0, &n1.peer_id).await
    })
    .await;

    // A file that does not make n1 a member (another peer's credential) is not taken.
    let file = n1.dir.join("membership.jwt");
    std::fs::write(&file, issuer.credential(&did0, &n0.peer_id, 3600)).unwrap();
    wait_for("n1 refuses the wrong credential", 10, async || {
        n1.log_text().contains("keeping the old one")
    })
    .await;
    // The renewed credential, a year long.
    std::fs::write(&file, issuer.credential(&did1, &n1.peer_id, 365 * 86_400)).unwrap();
    wait_for("n1 takes the renewed credential", 10, async || {
        n1.log_text().contains("membership credential renewed")
    })
    .await;

    // Past the first credential's end, n1 is still a member and still gets what n0 creates.
    tokio::time::sleep(ends.saturating_duration_since(Instant::now()) + Duration::from_secs(5))
        .await;
    assert!(
        is_member(&n0, &n1.peer_id).await,
        "n0 cut off the renewed member"
    );
    let after = create_did(&n0).await;
    wait_for("n1 gets a transaction after the old end", 20, async || {
        n1.get(&format!("/v1/dids/{after}")).await.unwrap().0 == 200
    })
    .await;
    assert!(
        !n0.log_text().contains("is not a member"),
        "n0 refused n1 at some point"
    );
}
