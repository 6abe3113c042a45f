//! Prometheus metrics: `GET /metrics` on the RPC, in the OpenMetrics text format to a scraper
//! that asks for it (`Accept: application/openmetrics-text`, as Prometheus does), else in the
//! Prometheus text format 0.0.4 ([`to_prometheus_text`]), which `promtool check metrics` and
//! older scrapers read.
//!
//! Three sources, encoded together at each scrape:
//! - counters and histograms this module owns, updated where things happen: HTTP requests on
//!   the RPC and the public API (count and latency by route and status class) and audited
//!   decisions (locate, token, data, fetch: by outcome);
//! - a snapshot of the log and the network state read at scrape time (transactions, sync
//!   rounds, pushes, rejections by reason, reconciliation and push bytes, peers, store size);
//! - libp2p's wire counters (every byte on every connection).
//!
//! Label values come from code (route templates, outcome codes), never from request data, so
//! the number of series stays bounded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// `rpc` or `public`.
    api: &'static str,
    method: String,
    /// The route template (`/fhir/{type}`), or `unmatched`.
    route: String,
    /// `2xx`, `4xx`, ...
    status: &'static str,
}

/// Labels of an audited decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The node's own metrics.
pub struct Metrics {
    registry: Registry,
    http: HistogramFamily<HttpLabels>,
    decisions: Family<DecisionLabels, Counter>,
    rate_limited: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("knoop");
        let http: HistogramFamily<HttpLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests on the RPC and the public API by route and status class, with latency",
            http.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "audit_decisions",
            "Audited decisions by kind (locate, token, data, fetch) and outcome (granted, \
             served, answered, access_denied, invalid_grant, ...)",
            decisions.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "public_rate_limited",
            "Public API requests refused with 429 (a client over public.rate_limit)",
            rate_limited.clone(),
        );
        Metrics {
            registry,
            http,
            decisions,
            rate_limited,
        }
    }

    /// Counts an audited decision. `outcome` is reduced to its leading code (`served 3
    /// Condition` counts as `served`, `invalid_grant: untrusted_issuer` as `invalid_grant`).
    pub fn decision(&self, kind: &str, outcome: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                kind: label_code(kind),
                outcome: label_code(outcome),
            })
            .inc();
    }

    /// Counts a public API request refused by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    fn request(&self, api: &'static str, method: &str, route: &str, status: u16, secs: f64) {
        self.http
            .get_or_create(&HttpLabels {
                api,
                method: label_code(method),
                route: route.chars().take(80).collect(),
                status: status_class(status),
            })
            .observe(secs);
    }

    /// The OpenMetrics text of these metrics, the snapshot and libp2p's wire counters.
    pub fn encode(
        &self,
        snapshot: &Snapshot,
        wire: Option<&Registry>,
    ) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &snapshot.registry())?;
        if let Some(w) = wire {
            encode_registry(&mut out, w)?;
        }
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// Values read at scrape time.
#[derive(Default)]
pub struct Snapshot {
    pub transactions: u64,
    pub pending: u64,
    pub peers: u64,
    pub peers_in_sync: u64,
    pub banned_peers: u64,
    pub last_sync_age_seconds: Option<f64>,
    pub received_push: u64,
    pub received_fetched: u64,
    pub pushed: u64,
    pub served_fetched: u64,
    pub rejected_by_reason: Vec<(String, u64)>,
    pub sync_rounds: u64,
    pub sync_sessions: u64,
    pub fetch_queue: u64,
    pub bytes_sync_in: u64,
    pub bytes_sync_out: u64,
    pub bytes_push_in: u64,
    pub bytes_push_out: u64,
    pub store_bytes: u64,
    pub dids: u64,
    pub credentials: u64,
    pub audit_entries: u64,
    pub uptime_seconds: u64,
}

impl Snapshot {
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("knoop");
        let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
            r.register(name, help, ConstCounter::new(v));
        };
        let gauge = |r: &mut Registry, name: &str, help: &str, v: i64| {
            r.register(name, help, ConstGauge::new(v));
        };
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            &mut r,
            "transactions",
            "Transactions in the log",
            i(self.transactions),
        );
        gauge(
            &mut r,
            "transactions_pending",
            "Transactions waiting for their parents",
            i(self.pending),
        );
        gauge(&mut r, "peers", "Connected peers", i(self.peers));
        gauge(
            &mut r,
            "peers_in_sync",
            "Peers whose last reconciliation found no difference",
            i(self.peers_in_sync),
        );
        gauge(
            &mut r,
            "peers_banned",
            "Peers banned for invalid data",
            i(self.banned_peers),
        );
        if let Some(age) = self.last_sync_age_seconds {
            r.register(
                "sync_lag_seconds",
                "Time since the last finished reconciliation with any peer",
                ConstGauge::new(age),
            );
        }
        counter(
            &mut r,
            "transactions_received_push",
            "Transactions received by gossip push",
            self.received_push,
        );
        counter(
            &mut r,
            "transactions_received_fetched",
            "Transactions fetched after reconciliation",
            self.received_fetched,
        );
        counter(
            &mut r,
            "transactions_pushed",
            "Transactions this node pushed to the gossip topic",
            self.pushed,
        );
        counter(
            &mut r,
            "transactions_served_fetched",
            "Transactions sent to peers that fetched them",
            self.served_fetched,
        );
        let rejected = Family::<ReasonLabel, Counter>::default();
        for (reason, n) in &self.rejected_by_reason {
            rejected
                .get_or_create(&ReasonLabel {
                    reason: label_code(reason),
                })
                .inc_by(*n);
        }
        r.register(
            "transactions_rejected",
            "Transactions from peers refused, by reason",
            rejected,
        );
        counter(
            &mut r,
            "sync_rounds",
            "Reconciliation rounds",
            self.sync_rounds,
        );
        counter(
            &mut r,
            "sync_sessions",
            "Reconciliation sessions (one or more rounds with one peer)",
            self.sync_sessions,
        );
        gauge(
            &mut r,
            "sync_fetch_queue",
            "Transaction ids waiting to be fetched",
            i(self.fetch_queue),
        );
        counter(
            &mut r,
            "sync_received_bytes",
            "Reconciliation bytes received",
            self.bytes_sync_in,
        );
        counter(
            &mut r,
            "sync_sent_bytes",
            "Reconciliation bytes sent",
            self.bytes_sync_out,
        );
        counter(
            &mut r,
            "push_received_bytes",
            "Gossip push bytes received (transactions)",
            self.bytes_push_in,
        );
        counter(
            &mut r,
            "push_sent_bytes",
            "Gossip push bytes published (own transactions)",
            self.bytes_push_out,
        );
        gauge(
            &mut r,
            "store_bytes",
            "Size of the store on disk",
            i(self.store_bytes),
        );
        gauge(&mut r, "dids", "DIDs known", i(self.dids));
        gauge(
            &mut r,
            "credentials",
            "Credentials indexed",
            i(self.credentials),
        );
        gauge(
            &mut r,
            "audit_entries",
            "Entries in the audit log",
            i(self.audit_entries),
        );
        gauge(
            &mut r,
            "uptime_seconds",
            "Seconds since start",
            i(self.uptime_seconds),
        );
        r
    }
}

/// Middleware recording every request on the RPC.
pub async fn track_rpc(
    State(m): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    track("rpc", &m, req, next).await
}

/// Middleware recording every request on the public API.
pub async fn track_public(
    State(m): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    track("public", &m, req, next).await
}

async fn track(api: &'static str, m: &Metrics, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    m.request(
        api,
        &method,
        &route,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    res
}

fn status_class(s: u16) -> &'static str {
    match s / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// The leading code of a free-text value: up to the first character outside `[a-z0-9_]`,
/// at most 40 characters; `other` when that leaves nothing.
/// The code a label value is reduced to: the leading word (up to a space or `:`), lower case,
/// `-` as `_`, when it is a word of at most 40 letters, digits and `_` that starts with a
/// letter; otherwise `other`. So counts, ids and free text never become label values.
fn label_code(s: &str) -> String {
    let word: String = s
        .split([' ', ':'])
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let is_code = word.starts_with(|c: char| c.is_ascii_lowercase())
        && word.len() <= 40
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if is_code {
        word
    } else {
        "other".into()
    }
}

/// The Prometheus text format (version 0.0.4) of OpenMetrics text: a counter family's `HELP`
/// and `TYPE` lines name its samples (`<name>_total`), an `info` family is a gauge
/// (`<name>_info`), and the `UNIT` and `EOF` lines go (the older format has neither).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut renamed: std::collections::HashMap<&str, (String, &str)> = Default::default();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            match rest.split_once(' ') {
                Some((name, "counter")) => {
                    renamed.insert(name, (format!("{name}_total"), "counter"));
                }
                Some((name, "info")) => {
                    renamed.insert(name, (format!("{name}_info"), "gauge"));
                }
                _ => {}
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta.and_then(|(p, rest)| {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            renamed.get(name).map(|(new, kind)| (p, new, kind, tail))
        }) {
            Some(("# TYPE ", new, kind, _)) => out.push_str(&format!("# TYPE {new} {kind}")),
            Some((p, new, _, tail)) => out.push_str(&format!("{p}{new} {tail}")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_reduce_to_their_code() {
        assert_eq!(label_code("served 3 Condition"), "served");
        assert_eq!(
            label_code("invalid_grant: untrusted_issuer"),
            "invalid_grant"
        );
        assert_eq!(label_code("access_denied"), "access_denied");
        assert_eq!(label_code("GET"), "get");
        assert_eq!(label_code("<script>"), "other");
        assert_eq!(label_code(&"a".repeat(100)), "other");
        assert_eq!(label_code("not-supported: Condition"), "not_supported");
        // A count is no label value (a fetch's outcome starts with its word).
        assert_eq!(label_code("12 resources from 2 of 3 holder nodes"), "other");
        assert_eq!(
            label_code("fetched 12 resources from 2 of 3 holder nodes"),
            "fetched"
        );
        assert_eq!(label_code(""), "other");
    }

    #[test]
    fn the_prometheus_text_names_counter_samples() {
        let om = "# HELP knoop_x Things.\n# TYPE knoop_x counter\nknoop_x_total 3\n\
                  # HELP knoop_b Bytes.\n# TYPE knoop_b gauge\n# UNIT knoop_b bytes\nknoop_b 7\n\
                  # HELP knoop_v Version.\n# TYPE knoop_v info\nknoop_v_info{v=\"1\"} 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP knoop_x_total Things.\n# TYPE knoop_x_total counter\nknoop_x_total 3\n\
             # HELP knoop_b Bytes.\n# TYPE knoop_b gauge\nknoop_b 7\n\
             # HELP knoop_v_info Version.\n# TYPE knoop_v_info gauge\nknoop_v_info{v=\"1\"} 1\n"
        );
    }

    #[test]
    fn the_text_names_every_family_and_ends_with_eof() {
        let m = Metrics::new();
        m.decision("token", "granted");
        m.decision("token", "access_denied: no consent");
        m.request("public", "GET", "/fhir/{type}", 200, 0.004);
        let snap = Snapshot {
            transactions: 12,
            rejected_by_reason: vec![("bad_signature".into(), 2)],
            last_sync_age_seconds: Some(1.5),
            ..Default::default()
        };
        let text = m.encode(&snap, None).unwrap();
        for line in [
            "knoop_audit_decisions_total{kind=\"token\",outcome=\"granted\"} 1",
            "knoop_audit_decisions_total{kind=\"token\",outcome=\"access_denied\"} 1",
            "knoop_transactions 12",
            "knoop_transactions_rejected_total{reason=\"bad_signature\"} 2",
            "knoop_sync_lag_seconds 1.5",
            "knoop_http_request_duration_seconds_count{api=\"public\",method=\"get\",route=\"/fhir/{type}\",status=\"2xx\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
