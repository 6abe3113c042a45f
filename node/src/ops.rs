//! Operations: Prometheus metrics, trace export over OTLP, the per-client rate limit of the
//! public API, and backup and restore of the store.

pub mod backup;
pub mod metrics;
pub mod otlp;
pub mod rate_limit;
