//! Receiving private transactions (spec: `specs/private-transactions.md`): after each commit,
//! off the ingest path, every new private transaction is trial-decrypted with the node's X25519
//! secrets; a hit becomes a `want` record and its blob is fetched from the origin node, else from
//! other peers, over `/knoop/private/1`, then checked and kept.

use super::*;

impl Private {
    /// The node's X25519 secrets (current and retained).
    pub(super) fn local_secrets(&self) -> Vec<StaticSecret> {
        let ids = self
            .ops
            .keys
            .ids(&format!("{}#ka-", self.node_did))
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| {
                self.ops
                    .keys
                    .with_bytes(id, |b| StaticSecret::from(*b))
                    .ok()
            })
            .collect()
    }

    /// Trial-decrypts private transactions committed since the last call. Returns how many are
    /// newly for this node.
    pub fn catch_up(&self) -> usize {
        let after = self.seen.lock().map(|s| *s).unwrap_or(0);
        let (last, txs) =
            crate::store::read_by_type(self.store.as_ref(), PRIVATE_CONTENT_TYPE, after);
        let mut found = 0;
        let mut secrets: Option<Vec<StaticSecret>> = None;
        for (_, tx, payload) in txs {
            let id = tx.id();
            if self.record(&id).is_some() {
                continue;
            }
            let Ok(d) = Descriptor::from_cbor(&payload) else {
                continue;
            };
            let secrets = secrets.get_or_insert_with(|| self.local_secrets());
            if let Some(cek) = secrets
                .iter()
                .find_map(|s| knoop_privacy::trial_open(&d, s).ok().flatten())
            {
                if let Err(e) = self.want(&id, &tx, &cek) {
                    warn!(tx = %id, error = %e, "cannot record a private transaction");
                    continue;
                }
                found += 1;
            }
        }
        if let Ok(mut s) = self.seen.lock() {
            *s = last;
        }
        found
    }

    /// Takes part in private transaction `id` through its symmetric slot, if `key` opens one
    /// (a patient's consent key, found through a localisation pointer). Returns whether it is
    /// new here.
    pub fn adopt_symmetric(&self, id: &TxId, key: &[u8; 32]) -> Result<bool, SendError> {
        if self.record(id).is_some() {
            return Ok(false);
        }
        let Some((tx, d)) = self.descriptor_of(id) else {
            return Ok(false);
        };
        match knoop_privacy::open_symmetric(&d, key)? {
            Some(cek) => {
                self.want_via(id, &tx, &cek, true)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub(super) fn want(
        &self,
        id: &TxId,
        tx: &Transaction,
        cek: &[u8; 32],
    ) -> Result<(), SendError> {
        self.want_via(id, tx, cek, false)
    }

    pub(super) fn want_via(
        &self,
        id: &TxId,
        tx: &Transaction,
        cek: &[u8; 32],
        symmetric: bool,
    ) -> Result<(), SendError> {
        self.ops
            .keys
            .put_bytes(&cek_id(id), cek)
            .map_err(OpsError::from)?;
        let origin = signer_did(tx).unwrap_or_default();
        debug!(tx = %id, %origin, "private transaction for this node");
        self.put_record(
            id,
            &Record {
                state: State::Want,
                origin,
                author: None,
                to: Vec::new(),
                content_type: None,
                iat: None,
                error: None,
                attempts: 0,
                next_ms: 0,
                symmetric,
            },
        )
    }

    /// The transaction and its descriptor, if `id` is a private transaction held here.
    pub(super) fn descriptor_of(&self, id: &TxId) -> Option<(Transaction, Descriptor)> {
        let (t, payload) = knoop_gossip::log::read_tx(self.store.as_ref(), id).ok()??;
        let tx = Transaction::parse(&t.envelope, None).ok()?;
        if tx.header().cty != PRIVATE_CONTENT_TYPE {
            return None;
        }
        let d = Descriptor::from_cbor(&payload?).ok()?;
        Some((tx, d))
    }

    /// Where to ask for a blob: the origin node first, then connected peers.
    pub(super) fn sources(&self, origin: &str) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut out = Vec::new();
        if let Some(b) = self.dids.current(origin).and_then(|(_, d)| binding_in(&d)) {
            if let Ok(p) = b.peer_id.parse::<PeerId>() {
                let addrs = b.addresses.iter().filter_map(|a| a.parse().ok()).collect();
                out.push((p, addrs));
            }
        }
        if let Some((_, view)) = self.net.get() {
            for p in view.get().peers.iter() {
                if out.len() > FALLBACK_PEERS {
                    break;
                }
                if let Ok(id) = p.peer_id.parse::<PeerId>() {
                    if !out.iter().any(|(q, _)| *q == id) {
                        out.push((id, Vec::new()));
                    }
                }
            }
        }
        out
    }

    /// Fetches the blobs still wanted (due ones, a bounded number per round).
    pub async fn fetch_round(&self) {
        let Some((client, _)) = self.net.get() else {
            return;
        };
        let now = now_ms();
        let due: Vec<(TxId, Record)> = self
            .store
            .scan_private(b"r/")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| {
                let id = knoop_gossip::Hash32(k.get(2..34)?.try_into().ok()?);
                let r: Record = serde_json::from_slice(&v).ok()?;
                (r.state == State::Want && r.next_ms <= now).then_some((id, r))
            })
            .take(FETCHES_PER_ROUND)
            .collect();
        for (id, rec) in due {
            let span = tracing::info_span!("private_fetch", tx = %id);
            self.fetch_one(client, id, rec).instrument(span).await;
        }
    }

    pub(super) async fn fetch_one(&self, client: &AskClient, id: TxId, mut rec: Record) {
        let Some((_, d)) = self.descriptor_of(&id) else {
            return;
        };
        let Ok(cek) = self.ops.keys.with_bytes(&cek_id(&id), |c| *c) else {
            return;
        };
        let ft = key_schedule(&cek).ft;
        let mut got = None;
        let request = cbor4ii::serde::to_vec(
            Vec::new(),
            &BlobRequest {
                tx: id.0.to_vec(),
                token: ft.to_vec(),
            },
        )
        .unwrap_or_default();
        for (peer, addrs) in self.sources(&rec.origin) {
            let answer = client
                .ask(peer, addrs, AskProtocol::Private, request.clone())
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    cbor4ii::serde::from_slice::<BlobResponse>(&b).map_err(|e| e.to_string())
                });
            match answer {
                Ok(BlobResponse::Blob(blob)) if knoop_privacy::open(&d, &cek, &blob).is_ok() => {
                    got = Some(blob);
                    break;
                }
                Ok(BlobResponse::Blob(_)) => {
                    debug!(%peer, "a peer sent a blob that does not open; next source")
                }
                Ok(other) => debug!(%peer, answer = ?other, "blob not held there"),
                Err(e) => debug!(%peer, error = %e, "blob not fetched from this peer"),
            }
        }
        match got {
            Some(blob) => {
                if let Err(why) = self.accept(&id, &d, &cek, &blob, &mut rec) {
                    warn!(error = %why, "private transaction for this node is invalid");
                    rec.state = State::Invalid;
                    rec.error = Some(why);
                }
            }
            None => {
                rec.attempts = rec.attempts.saturating_add(1);
                let backoff = 5_000u64
                    .saturating_mul(1 << rec.attempts.min(10))
                    .min(3_600_000);
                rec.next_ms = now_ms() + backoff;
            }
        }
        if let Err(e) = self.put_record(&id, &rec) {
            warn!(error = %e, "cannot update a private record");
        }
    }

    /// Checks a fetched blob (it opened) and its inner message; stores the blob.
    pub(super) fn accept(
        &self,
        id: &TxId,
        d: &Descriptor,
        cek: &[u8; 32],
        blob: &[u8],
        rec: &mut Record,
    ) -> Result<(), String> {
        let message = self.read_blob(d, cek, blob)?;
        // Addressed to a DID that receives through one of this node's keys.
        let ours: Vec<[u8; 32]> = self
            .local_secrets()
            .iter()
            .map(|s| PublicKey::from(s).to_bytes())
            .collect();
        let addressed = message.to.iter().any(|did| {
            self.dids.current(did).is_some_and(|(_, doc)| {
                doc.key_agreement_keys()
                    .iter()
                    .any(|(_, k)| ours.contains(k))
            })
        }) || rec.origin == self.node_did
            || rec.symmetric;
        if !addressed {
            return Err("misaddressed: no recipient receives through this node".into());
        }
        self.store
            .put_private(&blob_key(&d.blob_hash), blob)
            .map_err(|e| e.to_string())?;
        rec.state = State::Have;
        rec.author = Some(message.author);
        rec.to = message.to;
        rec.content_type = Some(message.content_type);
        rec.iat = Some(message.iat);
        info!(tx = %id, author = ?rec.author, "private transaction received");
        Ok(())
    }

    /// Opens a blob and verifies its inner message against the author's DID.
    pub(super) fn read_blob(
        &self,
        d: &Descriptor,
        cek: &[u8; 32],
        blob: &[u8],
    ) -> Result<Message, String> {
        let inner = knoop_privacy::open(d, cek, blob).map_err(|e| e.code().to_owned())?;
        let inner = Inner::parse(&inner).map_err(|e| e.to_string())?;
        let s = &inner.signed;
        if s.epk.as_slice() != d.epk {
            return Err("the inner message names another ephemeral key".into());
        }
        let kid = SignerKid::parse(&s.kid).map_err(|e| e.to_string())?;
        let vm = format!("{}#{}", kid.did, kid.fragment);
        let key = self
            .dids
            .with_history(&kid.did, |h| {
                h.get(&kid.version)
                    .and_then(|r| r.document())
                    .and_then(|doc| doc.key_for(&vm, Relationship::AssertionMethod))
            })
            .flatten()
            .ok_or_else(|| format!("{vm} is not an assertionMethod key of that version"))?;
        if !inner.verify(&key) {
            return Err("the author's signature does not verify".into());
        }
        Ok(Message {
            author: kid.did.clone(),
            to: s.to.clone(),
            content_type: s.cty.clone(),
            iat: s.iat,
            body: s.body.to_vec(),
        })
    }
}
