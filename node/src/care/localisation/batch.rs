//! Entry batching and shuffling (spec: `specs/consent-localisation.md` §6.2): the node's
//! localisation entries go out in one transaction per batch (up to 1024 entries, or what
//! arrived within `localisation.batch_interval` of the first), in random order, so the
//! per-transaction costs (signing, the envelope, sync, indexing) are paid once per batch and a
//! batch shows how many entries a node published, not which was whose. A caller is answered
//! once its batch is committed (acknowledged means stored), with the transaction and its
//! entry's position in it.

use std::sync::Arc;
use std::time::Duration;

use knoop_privacy::locator::{encode_content, ENTRY_LEN, LOC_CONTENT_TYPE, MAX_ENTRIES};
use rand::seq::SliceRandom;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn, Instrument};

use crate::identity::did_ops::DidOps;

/// Entries waiting for a batch, at most (callers wait for room beyond it).
const QUEUE: usize = 4 * MAX_ENTRIES;

/// What a caller gets back: the batch's transaction and the entry's position in it, or why
/// the batch was not published.
pub type Placed = Result<(knoop_gossip::TxId, u32), String>;

/// The error of a batch that never went out because the node stops.
pub const STOPPED: &str = "the node is shutting down";

struct Waiting {
    entry: [u8; ENTRY_LEN],
    done: oneshot::Sender<Placed>,
}

/// Collects entries into batches and publishes them as the node.
pub struct Batcher {
    queue: mpsc::Sender<Waiting>,
}

impl Batcher {
    /// Starts the batching task (on the current runtime).
    pub fn spawn(ops: Arc<DidOps>, node_did: String, interval: Duration) -> Batcher {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(ops, node_did, interval, rx));
        Batcher { queue }
    }

    /// Publishes `entry` in the next batch; answers once that batch is committed.
    pub async fn publish(&self, entry: [u8; ENTRY_LEN]) -> Placed {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Waiting { entry, done })
            .await
            .map_err(|_| STOPPED.to_owned())?;
        answer.await.map_err(|_| STOPPED.to_owned())?
    }
}

async fn run(
    ops: Arc<DidOps>,
    node_did: String,
    interval: Duration,
    mut rx: mpsc::Receiver<Waiting>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + interval;
        while batch.len() < MAX_ENTRIES {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(w) => batch.push(w),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        batch.shuffle(&mut rand::rngs::OsRng);
        let entries: Vec<[u8; ENTRY_LEN]> = batch.iter().map(|w| w.entry).collect();
        let n = entries.len();
        let span = tracing::info_span!("localisation_batch", entries = n);
        let res = ops
            .publish_as(&node_did, LOC_CONTENT_TYPE, encode_content(&entries))
            .instrument(span)
            .await;
        match &res {
            Ok(id) => info!(tx = %id, entries = n, "localisation entries published"),
            Err(e) => warn!(error = %e, entries = n, "a localisation batch was not published"),
        }
        for (i, w) in batch.into_iter().enumerate() {
            let placed = match &res {
                Ok(id) => Ok((*id, i as u32)),
                Err(e) => Err(e.to_string()),
            };
            let _ = w.done.send(placed);
        }
    }
}
