//! RPC endpoints for the audit log (spec: `specs/audit.md`): read it, check its hash chain,
//! export it as FHIR `AuditEvent` resources.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::state::RpcState;

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/v1/audit", get(list))
        .route("/v1/audit/verify", get(verify))
        .route("/fhir/AuditEvent", get(fhir))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list(State(st): St, Query(p): Query<Page>) -> Json<Value> {
    let entries = st
        .audit
        .entries(p.after, p.limit.unwrap_or(1000).min(10_000));
    Json(json!({ "entries": entries }))
}

async fn verify(State(st): St) -> Json<Value> {
    let audit = st.audit.clone();
    let verdict = tokio::task::spawn_blocking(move || audit.verify())
        .await
        .ok();
    Json(json!(verdict))
}

/// The entries after `after` as a FHIR `searchset` Bundle of `AuditEvent` (FHIR JSON, each
/// entry with its `fullUrl`).
async fn fhir(State(st): St, headers: HeaderMap, Query(p): Query<Page>) -> Response {
    let entries = st
        .audit
        .entries(p.after, p.limit.unwrap_or(1000).min(10_000));
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let resources: Vec<Value> = entries
        .iter()
        .map(|e| {
            let r = crate::care::audit::to_fhir(e, &st.node_did);
            let id = r["id"].as_str().unwrap_or_default().to_owned();
            json!({"fullUrl": format!("http://{host}/fhir/AuditEvent/{id}"), "resource": r,
                   "search": {"mode": "match"}})
        })
        .collect();
    let mut bundle =
        json!({"resourceType": "Bundle", "type": "searchset", "total": resources.len()});
    if !resources.is_empty() {
        bundle["entry"] = json!(resources);
    }
    crate::api::rpc::fhir::fhir(StatusCode::OK, &bundle)
}
