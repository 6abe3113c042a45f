//! Membership of a members-only network (spec: `specs/admission.md`): which peers the network
//! layer serves. A peer is a member when it presents a `KnoopMembershipCredential` that
//! verifies (proof by its issuer's key, validity period, status list), whose issuer is one of
//! `p2p.membership_issuers`, and whose subject names the peer's own libp2p peer id (which the
//! Noise handshake proved) and this network.

use std::sync::Arc;
use std::time::Duration;

use knoop_gossip::net::Admission;
use libp2p::PeerId;
use serde_json::Value;

use crate::identity::credentials::Credentials;
use crate::identity::prefetch::Prefetcher;

/// The credential type that makes a node a member.
pub const MEMBERSHIP_TYPE: &str = "KnoopMembershipCredential";
/// Largest credential accepted (the admission protocol's frame is 16 KiB).
const MAX_CREDENTIAL_BYTES: usize = 12 * 1024;

/// The network's membership rules and this node's own credential.
pub struct Membership {
    issuers: Vec<String>,
    network: String,
    /// This node's credential, as sent to peers (replaced when the file is renewed).
    own: std::sync::RwLock<String>,
    reverify: Duration,
    credentials: Arc<Credentials>,
    prefetch: Arc<Prefetcher>,
    runtime: tokio::runtime::Handle,
}

impl Membership {
    pub fn new(
        cfg: &crate::config::P2pConfig,
        own: String,
        credentials: Arc<Credentials>,
        prefetch: Arc<Prefetcher>,
    ) -> Self {
        Membership {
            issuers: cfg.membership_issuers.clone(),
            network: cfg.membership_network.clone(),
            own: std::sync::RwLock::new(own.trim().to_owned()),
            reverify: cfg.membership_reverify,
            credentials,
            prefetch,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Whether `credential` makes the node with peer id `peer` a member now (`Err`: why not).
    pub async fn check(&self, peer: &str, credential: &str) -> Result<(), String> {
        if credential.len() > MAX_CREDENTIAL_BYTES {
            return Err(format!(
                "a credential larger than {MAX_CREDENTIAL_BYTES} bytes"
            ));
        }
        let text = credential.trim();
        let doc: Value = if text.starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("not a JSON credential: {e}"))?
        } else {
            Value::String(text.to_owned())
        };
        let fetched = self.prefetch.fetch(&[&doc]).await;
        let verified = self
            .credentials
            .verify_genuine(&doc, &fetched)
            .map_err(|f| format!("{}: {f}", f.code()))?;
        if !verified.claims.types().contains(&MEMBERSHIP_TYPE) {
            return Err(format!("not a {MEMBERSHIP_TYPE}"));
        }
        if !self.issuers.contains(&verified.issuer) {
            return Err(format!(
                "{} is not a membership issuer of this network",
                verified.issuer
            ));
        }
        let subject = &verified.credential["credentialSubject"];
        if subject["peerId"].as_str() != Some(peer) {
            return Err(format!("the credential is for another peer than {peer}"));
        }
        if subject["network"].as_str() != Some(self.network.as_str()) {
            return Err(format!(
                "the credential is not for network {:?}",
                self.network
            ));
        }
        Ok(())
    }
}

impl Membership {
    /// Watches this node's credential file every `every` (`specs/admission.md` §5): a new
    /// credential that makes the node (peer id `peer`) a member replaces the one sent to peers
    /// (the network layer sends it to them); one that does not is logged once and left out.
    pub fn watch(self: Arc<Self>, file: std::path::PathBuf, peer: String, every: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut refused = String::new();
            loop {
                tick.tick().await;
                let text = match tokio::fs::read_to_string(&file).await {
                    Ok(t) => t.trim().to_owned(),
                    Err(e) => {
                        tracing::debug!(file = %file.display(), error = %e, "membership credential file unreadable");
                        continue;
                    }
                };
                if text == self.own_credential() || text == refused {
                    continue;
                }
                match self.check(&peer, &text).await {
                    Ok(()) => {
                        if let Ok(mut own) = self.own.write() {
                            *own = text;
                        }
                        refused.clear();
                        tracing::info!(file = %file.display(), "membership credential renewed");
                    }
                    Err(why) => {
                        tracing::warn!(file = %file.display(), %why,
                            "the new membership credential does not make this node a member: keeping the old one");
                        refused = text;
                    }
                }
            }
        });
    }
}

impl Admission for Membership {
    fn own_credential(&self) -> String {
        self.own.read().map(|o| o.clone()).unwrap_or_default()
    }

    fn admit(&self, peer: &PeerId, credential: &str) -> Result<(), String> {
        self.runtime
            .block_on(self.check(&peer.to_string(), credential))
    }

    fn reverify_every(&self) -> Duration {
        self.reverify
    }
}

/// `knoop membership-credential`: the did:key of the Ed25519 key in `key_file` (64 hex digits)
/// and, for `member` = `(node DID, peer id)`, a vc+jwt membership credential it signs for
/// `network`, valid `days` from a minute ago.
pub fn issue_with_key_file(
    key_file: &std::path::Path,
    member: Option<(&str, &str)>,
    network: &str,
    days: u64,
) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(key_file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_file.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| anyhow::anyhow!("{}: not 64 hex digits", key_file.display()))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let mb = knoop_did::document::ed25519_multibase(&key.verifying_key());
    let issuer = format!("did:key:{mb}");
    let Some((subject, peer)) = member else {
        return Ok(serde_json::json!({ "issuer": issuer }));
    };
    if !subject.starts_with("did:") {
        anyhow::bail!("--subject must be the member's node DID");
    }
    peer.parse::<PeerId>()
        .map_err(|e| anyhow::anyhow!("--peer-id: {e}"))?;
    let now = knoop_gossip::tx::now_ms();
    let t = knoop_did::knoop::time::to_rfc3339;
    let credential = serde_json::json!({
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/knoop/credentials/v1"],
        "type": ["VerifiableCredential", MEMBERSHIP_TYPE],
        "issuer": issuer,
        "validFrom": t(now.saturating_sub(60_000)),
        "validUntil": t(now + days.saturating_mul(86_400_000)),
        "credentialSubject": {"id": subject, "type": "KnoopNetworkMember", "peerId": peer, "network": network},
    });
    let jwt = knoop_vc::jose::sign(
        &credential,
        &format!("{issuer}#{mb}"),
        &knoop_vc::jws::SigningKey::Ed25519(key),
    )?;
    Ok(serde_json::json!({ "issuer": issuer, "credential": jwt }))
}
