//! Typed errors of the transaction log.

use crate::tx::TxId;

/// Why a transaction was refused. The `code()` strings are stable: they appear in RPC errors,
/// log lines and metrics labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    #[error("malformed transaction: {0}")]
    Malformed(&'static str),
    #[error("{what} too large (at most {max} bytes)")]
    TooLarge { what: &'static str, max: usize },
    #[error("content does not match the payload hash in the envelope")]
    PayloadMismatch,
    #[error("signature does not verify")]
    BadSignature,
    #[error("signer not authorised: {0}")]
    Unauthorized(String),
    #[error("transaction already known")]
    Duplicate,
    #[error("causal parents unknown: {0:?}")]
    MissingParents(Vec<TxId>),
    #[error("lamport clock lc={got} does not follow its parents (expected {expected})")]
    BadClock { got: u64, expected: u64 },
    #[error("signing time is {ahead_ms} ms in the future")]
    FromTheFuture { ahead_ms: u64 },
    #[error("storage failure: {0}")]
    Store(String),
    /// The node keeps its disk's reserve free and takes no more until space returns.
    #[error("{0}")]
    DiskFull(String),
}

impl TxError {
    /// A short stable code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::Malformed(_) => "malformed",
            TxError::TooLarge { .. } => "too_large",
            TxError::PayloadMismatch => "payload_mismatch",
            TxError::BadSignature => "bad_signature",
            TxError::Unauthorized(_) => "unauthorized",
            TxError::Duplicate => "duplicate",
            TxError::MissingParents(_) => "missing_parents",
            TxError::BadClock { .. } => "bad_clock",
            TxError::FromTheFuture { .. } => "from_the_future",
            TxError::Store(_) => "store",
            TxError::DiskFull(_) => "disk_full",
        }
    }

    /// Whether a peer that sent this transaction misbehaved (as opposed to being merely ahead
    /// of us, or repeating itself).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            TxError::Duplicate
                | TxError::MissingParents(_)
                | TxError::Store(_)
                | TxError::DiskFull(_)
                | TxError::FromTheFuture { .. }
        )
    }
}

/// A storage backend failed.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// How a [`StoreError`] that refuses a write for want of disk space begins.
const DISK_FULL: &str = "disk full: ";

impl StoreError {
    /// A write refused because the disk is (nearly) full: `why` says how full.
    pub fn disk_full(why: impl std::fmt::Display) -> Self {
        StoreError(format!("{DISK_FULL}{why}"))
    }

    /// Whether this error refused a write for want of disk space (see [`StoreError::disk_full`]).
    pub fn is_disk_full(&self) -> bool {
        self.0.starts_with(DISK_FULL)
    }

    /// Whether `text`, a store error carried on as text by a service's own error, is such a
    /// refusal.
    pub fn text_is_disk_full(text: &str) -> bool {
        text.contains(DISK_FULL)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        if e.is_disk_full() {
            TxError::DiskFull(e.0)
        } else {
            TxError::Store(e.0)
        }
    }
}
