//! Per-client rate limit of the public API (`public.rate_limit`, `public.rate_burst`).
//!
//! The public API answers anyone on the internet, and every refused token or data request is
//! audited; without a limit one client could grow the audit log and load the node's Argon2id
//! and signature checks at will. Each client IP address gets a token bucket (GCRA, the
//! `governor` crate); over it, requests get `429 Too Many Requests` with `Retry-After` and
//! are neither served nor audited. `/health` is exempt. Idle buckets are dropped every minute,
//! so memory follows the number of recent clients.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;

/// The limiter shared by all connections of the public API.
pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    metrics: Arc<crate::ops::metrics::Metrics>,
}

impl ClientLimiter {
    /// `None` when `per_second` is 0 (no limit).
    pub fn new(
        per_second: u32,
        burst: u32,
        metrics: Arc<crate::ops::metrics::Metrics>,
    ) -> Option<Arc<Self>> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
        Some(Arc::new(ClientLimiter {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            metrics,
        }))
    }

    /// `Err(wait)` when `ip` is over its rate.
    fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops the buckets of clients that are back at full allowance.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Prunes every minute until `stop`.
    pub fn spawn_pruner(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => me.prune(),
                    _ = stop.changed() => break,
                }
            }
        })
    }
}

/// Middleware: 429 for a client over its rate.
pub async fn limit(
    State(limiter): State<Arc<ClientLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip {
        if let Err(wait) = limiter.check(ip) {
            limiter.metrics.rate_limited();
            tracing::debug!(%ip, path = %req.uri().path(), "public API rate limit");
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.max(1).to_string())],
                Json(json!({
                    "error": "rate_limited",
                    "error_description": "too many requests from this address; retry later",
                })),
            )
                .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_burst_waits_and_others_are_not_affected() {
        let m = Arc::new(crate::ops::metrics::Metrics::new());
        let l = ClientLimiter::new(2, 5, m).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..5 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(l.check(b).is_ok(), "another client shares the bucket");
        assert!(ClientLimiter::new(0, 10, Arc::new(crate::ops::metrics::Metrics::new())).is_none());
    }
}
