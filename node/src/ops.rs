//! Operations: Prometheus metrics, trace export over OTLP, the per-client rate limit of the
//! public API, backup and restore of the store, and the data disk's free space.

pub mod backup;
pub mod disk;
pub mod metrics;
pub mod otlp;
pub mod rate_limit;
