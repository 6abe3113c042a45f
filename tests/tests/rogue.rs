//! An outsider's libp2p peer that speaks knoop's protocols but pushes invalid transactions: the
//! node rejects them, never forwards them, penalises the peer and finally disconnects and bans it.

use std::time::Duration;

use knoop_e2e::rogue::RoguePeer;
use knoop_e2e::Network;

/// The node's status once it counts a banned peer (the status view is refreshed a few times a
/// second); fails after 4 s.
async fn banned_status(node: &knoop_e2e::Node) -> serde_json::Value {
    let mut s = node.status().await.unwrap();
    for _ in 0..20 {
        if s["banned_peers"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        s = node.status().await.unwrap();
    }
    assert!(s["banned_peers"].as_u64().unwrap_or(0) >= 1, "{s}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_pushing_invalid_transactions_is_banned_and_nothing_spreads() {
    let net = Network::start(2).await.unwrap();
    let mut rogue = RoguePeer::dial(&net.nodes[0].p2p, "/knoop/id/1.0.0").unwrap();

    // Wait until the node has subscribed us, then push forged transactions.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while tokio::time::Instant::now() < deadline && !rogue.disconnected {
        if rogue.subscribed() {
            rogue.push_forged();
        }
        rogue.run_for(Duration::from_millis(300)).await;
    }
    let (sent, forged_ids) = (rogue.sent, rogue.forged_ids.clone());
    assert!(sent > 0, "never got to push anything");
    assert!(
        rogue.disconnected,
        "the node kept the rogue connected after {sent} forged pushes"
    );

    let s = banned_status(&net.nodes[0]).await;
    assert!(s["sync"]["rejected"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert!(
        net.nodes[0].log_text().contains("peer banned"),
        "no ban logged"
    );
    for n in &net.nodes {
        for id in &forged_ids {
            let (code, _) = n.get(&format!("/v1/transactions/{id}")).await.unwrap();
            assert_eq!(code, 404, "forged {id} stored on {}", n.name);
        }
        assert_eq!(n.transactions().await.unwrap(), 0);
    }
    // The honest peers still talk to each other.
    assert!(
        net.nodes[1].status().await.unwrap()["peers"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
}

/// `p2p.max_peers` is a hard limit: a node that is full closes a newcomer's connections, its
/// second one too (two dialled at once), and keeps its peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_admits_no_second_connection_of_a_newcomer() {
    let net = knoop_e2e::Network::start_with_env(
        2,
        vec![
            ("KNOOP_P2P__MAX_PEERS".into(), "1".into()),
            ("KNOOP_P2P__TARGET_PEERS".into(), "1".into()),
        ],
    )
    .await
    .unwrap();
    let t0 = std::time::Instant::now();
    while net.nodes[0].status().await.unwrap()["peers"] != 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the honest peer never connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rogue = RoguePeer::dial(&net.nodes[0].p2p, "/knoop/id/1.0.0").unwrap();
    rogue.dial_again(&net.nodes[0].p2p).unwrap();
    // Over a few seconds the node never holds the newcomer, and ends with none of its
    // connections.
    for _ in 0..20 {
        rogue.run_for(Duration::from_millis(200)).await;
        let s = net.nodes[0].status().await.unwrap();
        assert_eq!(s["peers"], 1, "{s}");
    }
    assert_eq!(
        rogue.connections(),
        0,
        "the newcomer still holds a connection"
    );
    let s = net.nodes[0].status().await.unwrap();
    assert_eq!(
        s["peer_list"][0]["peer_id"],
        net.nodes[1].peer_id.as_str(),
        "{s}"
    );
}

/// Junk published in gossipsub's signed mode never reaches the node's own checks (gossipsub
/// refuses a signed message on knoop's anonymous topic first), but it still costs the sender:
/// gossipsub's score graylists it and the node bans it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_in_gossipsubs_signed_mode_is_penalised_until_banned() {
    let net = Network::start(2).await.unwrap();
    let mut rogue = RoguePeer::dial_signed(&net.nodes[0].p2p, "/knoop/id/1.1.0").unwrap();
    assert!(
        rogue.until_subscribed(Duration::from_secs(20)).await,
        "never subscribed"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline && !rogue.disconnected {
        rogue.push_junk(5);
        rogue.run_for(Duration::from_millis(300)).await;
    }
    assert!(rogue.sent > 0, "never got to push anything");
    assert!(
        rogue.disconnected,
        "the node kept the rogue connected after {} signed junk messages",
        rogue.sent
    );
    banned_status(&net.nodes[0]).await;
    assert!(net.nodes[0].log_text().contains("invalid gossip messages"));
    assert_eq!(net.nodes[0].transactions().await.unwrap(), 0);
}
