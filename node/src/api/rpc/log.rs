//! RPC endpoints for the log and the node itself: status, Prometheus metrics, submitting,
//! publishing, reading and listing transactions, and the server-sent event stream of new ones.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use knoop_gossip::{Hash32, Source, Transaction, TxError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::state::RpcState;

/// Most transactions in one batch submission.
pub const MAX_BATCH: usize = 1000;
/// Most transactions listed per page.
pub const MAX_LIST: usize = 1000;

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/status", get(status))
        .route("/v1/status", get(status))
        .route("/v1/transactions", post(submit).get(list))
        .route("/v1/transactions/batch", post(submit_batch))
        .route("/v1/transactions/{id}", get(get_tx))
        .route("/v1/publish", post(publish))
        .route("/metrics", get(metrics))
}

async fn status(State(st): St) -> Json<Value> {
    let net = st.net.get();
    let idx = st.log.index();
    let now = knoop_gossip::tx::now_ms();
    let (credentials, revocations) = st.credentials.counts();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "peer_id": st.peer_id,
        "did": st.node_did,
        "dids_known": st.dids.state.len(),
        "did_operations": st.dids.state.op_count(),
        "credentials_indexed": credentials,
        "revocations": revocations,
        "listen_addrs": net.listen_addrs,
        "public_url": st.public_url,
        "patient_service": st.patient_service,
        "peers": net.peers.len(),
        "transactions": idx.len(),
        "pending": st.log.pending(),
        "digest": idx.digest(),
        "uptime_s": st.started.elapsed().as_secs(),
        "store": st.log.store().kind(),
        "store_bytes": st.log.store().disk_bytes(),
        "disk": crate::ops::disk::space(&st.data_dir),
        "public_certificate_expires_ms": st.public_certificate_expires_ms,
        "audit_entries": st.audit.len(),
        "sync": {
            "peers_in_sync": net.peers_in_sync(),
            "last_sync_ago_ms": net.last_sync_age_ms(now),
            "sessions": net.sync_sessions,
            "rounds": net.sync_rounds,
            "fetch_queue": net.fetch_queue,
            "received_push": net.received_push,
            "received_fetched": net.received_fetched,
            "rejected": net.rejected,
            "rejected_by_reason": net.rejected_by_reason,
            "pushed": net.pushed,
            "served_fetched": net.served_fetched,
            "bytes_push_in": net.bytes_push_in,
            "bytes_push_out": net.bytes_push_out,
            "bytes_in": net.bytes_sync_in,
            "bytes_out": net.bytes_sync_out,
        },
        "banned_peers": net.banned,
        "peer_list": net.peers.iter().map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("did".into(), json!(st.dids.state.did_of_peer(&p.peer_id)));
            }
            v
        }).collect::<Vec<_>>(),
    }))
}

/// Prometheus metrics (OpenMetrics text).
async fn metrics(State(st): St, headers: HeaderMap) -> Result<Response, ApiError> {
    let net = st.net.get();
    let now = knoop_gossip::tx::now_ms();
    let (credentials, _) = st.credentials.counts();
    let snapshot = crate::ops::metrics::Snapshot {
        transactions: st.log.index().len() as u64,
        pending: st.log.pending() as u64,
        peers: net.peers.len() as u64,
        peers_in_sync: net.peers_in_sync() as u64,
        banned_peers: net.banned as u64,
        last_sync_age_seconds: net.last_sync_age_ms(now).map(|ms| ms as f64 / 1000.0),
        received_push: net.received_push,
        received_fetched: net.received_fetched,
        pushed: net.pushed,
        served_fetched: net.served_fetched,
        rejected_by_reason: net.rejected_by_reason.clone().into_iter().collect(),
        sync_rounds: net.sync_rounds,
        sync_sessions: net.sync_sessions,
        fetch_queue: net.fetch_queue as u64,
        bytes_sync_in: net.bytes_sync_in,
        bytes_sync_out: net.bytes_sync_out,
        bytes_push_in: net.bytes_push_in,
        bytes_push_out: net.bytes_push_out,
        store_bytes: st.log.store().disk_bytes(),
        dids: st.dids.state.len() as u64,
        credentials: credentials as u64,
        audit_entries: st.audit.len(),
        uptime_seconds: st.started.elapsed().as_secs(),
    };
    let text = st
        .metrics
        .encode(&snapshot, st.net.wire_metrics())
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics",
                "cannot encode the metrics",
            )
        })?;
    // OpenMetrics to a scraper that asks for it; the Prometheus text format otherwise.
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    Ok(if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::ops::metrics::to_prometheus_text(&text),
        )
            .into_response()
    })
}

/// A signed transaction as submitted: the envelope and the content (standard base64).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitTx {
    pub envelope: String,
    #[serde(default)]
    pub payload: Option<String>,
}

fn parse_submission(s: SubmitTx) -> Result<Transaction, TxError> {
    let payload = match s.payload {
        Some(p) => Some(
            B64.decode(p)
                .map_err(|_| TxError::Malformed("payload is not standard base64"))?,
        ),
        None => None,
    };
    Transaction::parse(&s.envelope, payload)
}

async fn submit(
    State(st): St,
    body: Result<Json<SubmitTx>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad(e.body_text()))?;
    let tx = parse_submission(body)
        .inspect_err(|e| tracing::info!(reason = e.code(), "rejected submission: {e}"))?;
    let report = st
        .log
        .ingest(vec![tx], Source::Local)
        .await
        .map_err(|_| ApiError::unavailable())?;
    match report.results.into_iter().next() {
        Some(Ok(id)) => Ok((StatusCode::CREATED, Json(json!({"id": id})))),
        Some(Err(e)) => {
            tracing::info!(reason = e.code(), "rejected submission: {e}");
            Err(e.into())
        }
        None => Err(ApiError::unavailable()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    transactions: Vec<SubmitTx>,
}

async fn submit_batch(
    State(st): St,
    body: Result<Json<Batch>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad(e.body_text()))?;
    if body.transactions.len() > MAX_BATCH {
        return Err(ApiError::bad(format!(
            "at most {MAX_BATCH} transactions per batch"
        )));
    }
    let mut results: Vec<Value> = vec![Value::Null; body.transactions.len()];
    let mut txs = Vec::new();
    let mut slots = Vec::new();
    for (i, s) in body.transactions.into_iter().enumerate() {
        match parse_submission(s) {
            Ok(t) => {
                txs.push(t);
                slots.push(i);
            }
            Err(e) => results[i] = json!({"error": e.code(), "message": e.to_string()}),
        }
    }
    if txs.is_empty() {
        // Nothing to store (an empty batch, or every submission malformed): the log is not
        // asked, so a healthy node never answers this as if it were shutting down.
        return Ok(Json(json!({"results": results})));
    }
    let report = st
        .log
        .ingest(txs, Source::Local)
        .await
        .map_err(|_| ApiError::unavailable())?;
    for (slot, r) in slots.into_iter().zip(report.results) {
        results[slot] = match r {
            Ok(id) => json!({"id": id}),
            Err(e) => json!({"error": e.code(), "message": e.to_string()}),
        };
    }
    Ok(Json(json!({"results": results})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishReq {
    content_type: String,
    /// Content, standard base64.
    payload: String,
    /// A DID hosted here to sign as (default: the node's DID).
    #[serde(default)]
    signer: Option<String>,
}

async fn publish(
    State(st): St,
    body: Result<Json<PublishReq>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad(e.body_text()))?;
    let payload = B64
        .decode(body.payload)
        .map_err(|_| ApiError::bad("payload is not standard base64"))?;
    if payload.len() > knoop_gossip::tx::MAX_PAYLOAD_BYTES {
        return Err(TxError::TooLarge {
            what: "payload",
            max: knoop_gossip::tx::MAX_PAYLOAD_BYTES,
        }
        .into());
    }
    let signer = body.signer.unwrap_or_else(|| st.node_did.clone());
    let id = st
        .dids
        .publish_as(&signer, &body.content_type, payload)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

fn tx_json(id: &Hash32, stored: &knoop_gossip::StoredTx, payload: Option<Vec<u8>>) -> Value {
    let header = Transaction::parse(&stored.envelope, None)
        .map(|t| t.header().clone())
        .ok();
    json!({
        "id": id,
        "seq": stored.seq,
        "envelope": stored.envelope,
        "header": header,
        "payload": payload.map(|p| B64.encode(p)),
    })
}

async fn get_tx(State(st): St, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id =
        Hash32::from_hex(&id).map_err(|_| ApiError::bad("id must be 64 lowercase hex digits"))?;
    match st.log.get(&id)? {
        Some((stored, payload)) => Ok(Json(tx_json(&id, &stored, payload))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such transaction",
        )),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list(State(st): St, Query(q): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIST);
    let store = st.log.store();
    let page = store.list_after(q.after, limit).map_err(TxError::from)?;
    let mut items = Vec::with_capacity(page.len());
    for (_, id) in &page {
        if let Some((stored, payload)) = st.log.get(id)? {
            items.push(tx_json(id, &stored, payload));
        }
    }
    let next = page.last().map(|(s, _)| *s).unwrap_or(q.after);
    Ok(Json(json!({"items": items, "next": next})))
}
