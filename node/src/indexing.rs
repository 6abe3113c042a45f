//! Indexers: derived state (credentials, private transactions, localisation entries) is read
//! from the log after the fact, off the ingest path. [`after_commits`] runs one indexer's
//! catch-up after each batch of commits, and at least every second.

use std::sync::Arc;

use knoop_gossip::LogHandle;
use tokio::sync::watch;

use crate::store::NodeStore;

/// Runs `work` (blocking) after each batch of commits, and at least every second, until
/// `stop`: the pattern of every indexer that reads the log after the fact.
pub fn after_commits(
    log: &LogHandle<dyn NodeStore>,
    mut stop: watch::Receiver<bool>,
    name: &'static str,
    work: impl Fn() + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut events = log.subscribe();
    let work = Arc::new(work);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = events.recv() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.changed() => break,
            }
            // Drain what queued meanwhile; one round reads all of it from the store.
            while events.try_recv().is_ok() {}
            let w = work.clone();
            let span = tracing::debug_span!("after_commits", task = name);
            let _ = tokio::task::spawn_blocking(move || span.in_scope(|| w())).await;
        }
    })
}
