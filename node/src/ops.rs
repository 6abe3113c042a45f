//! Operations: Prometheus metrics, trace export over OTLP, the per-client rate limit of the
//! public API, backup and restore of the store, the data disk's free space, and the leadership
//! of replicas sharing one store.

pub mod backup;
pub mod disk;
pub mod leadership;
pub mod metrics;
pub mod otlp;
pub mod rate_limit;
