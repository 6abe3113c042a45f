//! Replicas of one node on a shared store (`specs/storage.md` §9.6): the replica that holds the
//! store's leadership lease runs the node; the others stand by, and the first to find the lease
//! expired takes over. A leader that cannot renew its lease in time stops, and the store fences
//! its writes from the moment another replica holds the lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::NodeStore;

/// Exit status of a replica that lost the leadership (EX_TEMPFAIL: its supervisor restarts it,
/// and it stands by).
pub const LOST_LEADERSHIP_EXIT: i32 = 75;

/// This replica's name in the lease: host, process and a random part (a restarted process is a
/// new replica).
pub fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}/{}/{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Waits until `holder` leads `store` (at once when nobody else does), asking every fifth of
/// `ttl`; returns the lease's epoch. `stop` ends the wait (the process is asked to stop).
pub async fn take(
    store: &Arc<dyn NodeStore>,
    holder: &str,
    ttl: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<u64> {
    tokio::pin!(stop);
    let mut standing_by = None;
    loop {
        let (s, h) = (store.clone(), holder.to_owned());
        if let Some(epoch) = tokio::task::spawn_blocking(move || s.lead(&h, ttl)).await?? {
            match standing_by {
                Some(since) => tracing::info!(
                    holder,
                    epoch,
                    after_ms = Instant::elapsed(&since).as_millis() as u64,
                    "took over the store's leadership: this replica runs the node now"
                ),
                None => tracing::info!(holder, epoch, "this replica leads the store"),
            }
            return Ok(epoch);
        }
        if standing_by.is_none() {
            tracing::info!(
                holder,
                "standing by: another replica leads the store; taking over when its lease runs out"
            );
            standing_by = Some(Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(ttl / 5) => {}
            _ = &mut stop => anyhow::bail!("stopped while standing by"),
        }
    }
}

/// Renews the lease every third of `ttl` for as long as the process runs. When another replica
/// has taken it, or no renewal succeeded for a whole `ttl` (the database unreachable), the
/// process exits with [`LOST_LEADERSHIP_EXIT`] at once: its writes are fenced by then anyway,
/// and a replica that no longer leads must not go on answering as the node.
pub fn keep(
    store: Arc<dyn NodeStore>,
    holder: String,
    epoch: u64,
    ttl: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(ttl / 3).await;
            let (s, h) = (store.clone(), holder.clone());
            let outcome = tokio::task::spawn_blocking(move || s.lead(&h, ttl)).await;
            match outcome {
                Ok(Ok(Some(e))) if e == epoch => renewed = Instant::now(),
                Ok(Ok(_)) => {
                    tracing::error!(
                        holder,
                        "another replica took over the store's leadership: stopping"
                    );
                    std::process::exit(LOST_LEADERSHIP_EXIT);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "renewing the store's leadership failed"),
                Err(e) => tracing::warn!(error = %e, "renewing the store's leadership failed"),
            }
            if renewed.elapsed() >= ttl {
                tracing::error!(
                    holder,
                    "the store's leadership could not be renewed in time: stopping"
                );
                std::process::exit(LOST_LEADERSHIP_EXIT);
            }
        }
    })
}
