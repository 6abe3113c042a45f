//! The log service: one tokio task owns the [`Log`] and commits in groups. Callers (RPC, the
//! network driver) send jobs over a bounded channel; the task drains whatever is queued (up to
//! [`MAX_GROUP`] transactions), ingests it as one batch with one write (one fsync when a local
//! caller waits), then answers every job. This is what turns "one fsync per transaction" into
//! "one fsync per group".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::error::TxError;
use crate::log::{IngestReport, Log, SharedIndex, Source};
use crate::store::Store;
use crate::tx::{Transaction, TxId, MAX_PREVS};

/// Most transactions committed in one group.
pub const MAX_GROUP: usize = 4096;
/// Capacity of the job queue (jobs, not transactions).
pub const JOB_QUEUE: usize = 1024;
/// Capacity of the "stored" event stream; slow subscribers skip ahead.
pub const EVENT_QUEUE: usize = 16 * 1024;

/// A transaction that was stored, and where it came from.
#[derive(Clone, Debug)]
pub struct Stored {
    pub tx: Arc<Transaction>,
    pub source: Source,
}

/// Builds a transaction given the current heads `(id, lc)`; runs inside the log task so the
/// heads cannot move underneath it.
pub type BuildFn = Box<dyn FnOnce(&[(TxId, u64)]) -> Result<Transaction, TxError> + Send>;

enum Job {
    Ingest {
        txs: Vec<Transaction>,
        source: Source,
        reply: oneshot::Sender<JobReport>,
    },
    Build {
        build: BuildFn,
        reply: oneshot::Sender<Result<TxId, TxError>>,
    },
}

/// The part of an [`IngestReport`] that concerns one job.
#[derive(Debug, Default)]
pub struct JobReport {
    pub results: Vec<Result<TxId, TxError>>,
    pub missing: Vec<TxId>,
}

/// A cloneable handle to the log service.
pub struct LogHandle<S: Store + ?Sized> {
    jobs: mpsc::Sender<Job>,
    index: SharedIndex,
    store: Arc<S>,
    events: broadcast::Sender<Stored>,
    pending: Arc<AtomicUsize>,
}

impl<S: Store + ?Sized> Clone for LogHandle<S> {
    fn clone(&self) -> Self {
        LogHandle {
            jobs: self.jobs.clone(),
            index: self.index.clone(),
            store: self.store.clone(),
            events: self.events.clone(),
            pending: self.pending.clone(),
        }
    }
}

/// The service stopped (shutdown in progress).
#[derive(Debug, thiserror::Error)]
#[error("log service stopped")]
pub struct Stopped;

impl<S: Store + ?Sized> LogHandle<S> {
    /// Starts the service task over `log`.
    pub fn spawn(log: Log<S>) -> (Self, tokio::task::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(JOB_QUEUE);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let handle = LogHandle {
            jobs,
            index: log.index(),
            store: log.store().clone(),
            events: events.clone(),
            pending: Arc::new(AtomicUsize::new(0)),
        };
        let pending = handle.pending.clone();
        let task = tokio::spawn(run(log, rx, events, pending));
        (handle, task)
    }

    /// Ingests transactions; the answer comes once they are committed (durably for
    /// [`Source::Local`]).
    pub async fn ingest(
        &self,
        txs: Vec<Transaction>,
        source: Source,
    ) -> Result<JobReport, Stopped> {
        // Nothing to commit: no job (a group of empty jobs would never be answered).
        if txs.is_empty() {
            return Ok(JobReport::default());
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Ingest { txs, source, reply })
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Builds (signs) a transaction over the current heads and stores it durably.
    pub async fn publish(&self, build: BuildFn) -> Result<Result<TxId, TxError>, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Build { build, reply })
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    pub fn index(&self) -> &SharedIndex {
        &self.index
    }
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Stored> {
        self.events.subscribe()
    }
    /// Orphans currently held.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
    pub fn get(&self, id: &TxId) -> Result<Option<crate::log::TxWithPayload>, TxError> {
        crate::log::read_tx(self.store.as_ref(), id)
    }
}

async fn run<S: Store + ?Sized>(
    mut log: Log<S>,
    mut rx: mpsc::Receiver<Job>,
    events: broadcast::Sender<Stored>,
    pending: Arc<AtomicUsize>,
) {
    let mut group_no: u64 = 0;
    while let Some(first) = rx.recv().await {
        group_no += 1;
        let mut jobs = vec![first];
        let mut n = job_len(&jobs[0]);
        while n < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => {
                    n += job_len(&j);
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let span =
            tracing::debug_span!("commit_group", group = group_no, jobs = jobs.len(), txs = n);
        // Ingest is CPU-bound (signature checks) and blocking (store): keep it off the async
        // workers, and keep the log on this task.
        let group = tokio::task::block_in_place(|| {
            let _e = span.enter();
            process_group(&mut log, jobs)
        });
        for s in group.stored {
            let _ = events.send(s);
        }
        pending.store(log.pending_len(), Ordering::Relaxed);
        for reply in group.replies {
            reply();
        }
    }
    tracing::debug!("log service stopped");
}

fn job_len(j: &Job) -> usize {
    match j {
        Job::Ingest { txs, .. } => txs.len(),
        Job::Build { .. } => 1,
    }
}

/// What one group produced: answers to send (after the events), and what was stored.
struct GroupResult {
    replies: Vec<Box<dyn FnOnce() + Send>>,
    stored: Vec<Stored>,
}

fn process_group<S: Store + ?Sized>(log: &mut Log<S>, jobs: Vec<Job>) -> GroupResult {
    let mut replies: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    let mut stored_all: Vec<Stored> = Vec::new();
    let mut merged: Vec<(Transaction, Source)> = Vec::new();
    let mut owners: Vec<(oneshot::Sender<JobReport>, usize, usize)> = Vec::new();
    for job in jobs {
        match job {
            Job::Ingest { txs, source, reply } => {
                let start = merged.len();
                merged.extend(txs.into_iter().map(|t| (t, source)));
                owners.push((reply, start, merged.len()));
            }
            Job::Build { build, reply } => {
                // Builds go in order and see the heads left by everything before them.
                if !merged.is_empty() {
                    flush(log, &mut merged, &mut owners, &mut replies, &mut stored_all);
                }
                let heads = log.heads(MAX_PREVS);
                let result = build(&heads).and_then(|tx| {
                    let report = log.ingest(vec![tx], Source::Local);
                    collect_stored(&report, &[Source::Local], &mut stored_all);
                    report
                        .results
                        .into_iter()
                        .next()
                        .unwrap_or(Err(TxError::Duplicate))
                });
                replies.push(Box::new(move || {
                    let _ = reply.send(result);
                }));
            }
        }
    }
    if !merged.is_empty() {
        flush(log, &mut merged, &mut owners, &mut replies, &mut stored_all);
    }
    GroupResult {
        replies,
        stored: stored_all,
    }
}

fn flush<S: Store + ?Sized>(
    log: &mut Log<S>,
    merged: &mut Vec<(Transaction, Source)>,
    owners: &mut Vec<(oneshot::Sender<JobReport>, usize, usize)>,
    replies: &mut Vec<Box<dyn FnOnce() + Send>>,
    stored_all: &mut Vec<Stored>,
) {
    let sources: Vec<Source> = merged.iter().map(|(_, s)| *s).collect();
    let report = log.ingest_mixed(std::mem::take(merged));
    collect_stored(&report, &sources, stored_all);
    let IngestReport {
        mut results,
        missing,
        ..
    } = report;
    for (reply, start, end) in owners.drain(..).rev() {
        let mine: Vec<_> = results.drain(start..end).collect();
        let missing = missing.clone();
        replies.push(Box::new(move || {
            let _ = reply.send(JobReport {
                results: mine,
                missing,
            });
        }));
    }
}

fn collect_stored(report: &IngestReport, sources: &[Source], out: &mut Vec<Stored>) {
    // A stored transaction is Local when it was one of the inputs of a Local job.
    let local: std::collections::HashSet<TxId> = report
        .results
        .iter()
        .zip(sources)
        .filter_map(|(r, s)| match (r, s) {
            (Ok(id), Source::Local) => Some(*id),
            _ => None,
        })
        .collect();
    for tx in &report.stored {
        let source = if local.contains(&tx.id()) {
            Source::Local
        } else {
            Source::Peer
        };
        out.push(Stored {
            tx: tx.clone(),
            source,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{EmbeddedKeys, LogConfig, MemStore, TxBuilder};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_ingest_is_answered_and_a_full_one_after_it() {
        let store = Arc::new(MemStore::default());
        let log = Log::open(
            store,
            Arc::new(EmbeddedKeys::default()),
            LogConfig::default(),
        )
        .expect("opens");
        let (handle, _task) = LogHandle::spawn(log);
        let report = handle
            .ingest(Vec::new(), Source::Local)
            .await
            .expect("an empty batch is not a stopped service");
        assert!(report.results.is_empty());
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let tx = TxBuilder::new("t/x").sign(&key, vec![1]).expect("signs");
        let report = handle.ingest(vec![tx], Source::Local).await.expect("runs");
        assert!(report.results[0].is_ok(), "{:?}", report.results);
    }
}
