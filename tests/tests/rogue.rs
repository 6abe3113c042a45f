//! An outsider's libp2p peer that speaks knoop's protocols but pushes invalid transactions: the
//! node rejects them, never forwards them, penalises the peer and finally disconnects and bans it.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use knoop_e2e::Network;
use knoop_gossip::wire::{WireTx, TX_TOPIC};
use knoop_gossip::TxBuilder;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, identify, Multiaddr};

#[derive(NetworkBehaviour)]
struct Rogue {
    identify: identify::Behaviour,
    gossipsub: gossipsub::Behaviour,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_pushing_invalid_transactions_is_banned_and_nothing_spreads() {
    let net = Network::start(2).await.unwrap();
    let target: Multiaddr = net.nodes[0].p2p.parse().unwrap();

    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let cfg = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .heartbeat_interval(Duration::from_millis(200))
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(knoop_gossip::Hash32::of(&m.data).0.to_vec())
                })
                .build()
                .expect("config");
            Rogue {
                identify: identify::Behaviour::new(identify::Config::new(
                    "/knoop/id/1.0.0".into(),
                    key.public(),
                )),
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Anonymous,
                    cfg,
                )
                .expect("gossipsub"),
            }
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let topic = gossipsub::IdentTopic::new(TX_TOPIC);
    swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    swarm.dial(target).unwrap();

    // Wait until the node has subscribed us, then push forged transactions.
    let key = SigningKey::from_bytes(&[66; 32]);
    let other = SigningKey::from_bytes(&[67; 32]);
    let mut forged_ids = Vec::new();
    let mut sent = 0;
    let mut disconnected = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    while tokio::time::Instant::now() < deadline && !disconnected {
        tokio::select! {
            ev = swarm.select_next_some() => {
                if let SwarmEvent::ConnectionClosed { num_established: 0, .. } = ev {
                    disconnected = sent > 0;
                }
            }
            _ = tick.tick() => {
                if swarm.behaviour().gossipsub.all_peers().next().is_none() {
                    continue;
                }
                // The envelope of one key carrying the signature of another.
                let a = TxBuilder::new("text/plain").sign(&key, format!("forged {sent}").into_bytes()).unwrap();
                let b = TxBuilder::new("text/plain").sigt(a.header().sigt).sign(&other, format!("forged {sent}").into_bytes()).unwrap();
                let env = format!("{}.{}", a.envelope().rsplit_once('.').unwrap().0, b.envelope().rsplit_once('.').unwrap().1);
                forged_ids.push(knoop_gossip::Hash32::of(env.as_bytes()).to_hex());
                let msg = WireTx { envelope: env, payload: a.payload().map(|p| p.to_vec()) };
                match swarm.behaviour_mut().gossipsub.publish(topic.clone(), msg.encode()) {
                    Ok(_) => sent += 1,
                    Err(e) => eprintln!("publish refused locally: {e}"),
                }
                // And some bytes that are not a transaction at all.
                let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), format!("junk {sent}").into_bytes());
            }
        }
    }
    assert!(sent > 0, "never got to push anything");
    assert!(
        disconnected,
        "the node kept the rogue connected after {sent} forged pushes"
    );

    // The status view is refreshed a few times a second.
    let mut s = net.nodes[0].status().await.unwrap();
    for _ in 0..20 {
        if s["banned_peers"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        s = net.nodes[0].status().await.unwrap();
    }
    assert!(s["banned_peers"].as_u64().unwrap_or(0) >= 1, "{s}");
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
