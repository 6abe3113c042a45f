//! RPC endpoints for the audit log (spec: `specs/audit.md`): read it, check its hash chain,
//! export it as FHIR `AuditEvent` resources.

use std::sync::Arc;

use axum::extract::{Query, State};
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

async fn fhir(State(st): St, Query(p): Query<Page>) -> Json<Value> {
    let entries = st
        .audit
        .entries(p.after, p.limit.unwrap_or(1000).min(10_000));
    let resources: Vec<Value> = entries
        .iter()
        .map(|e| json!({"resource": crate::care::audit::to_fhir(e, &st.node_did)}))
        .collect();
    Json(json!({
        "resourceType": "Bundle", "type": "searchset", "total": resources.len(),
        "entry": resources,
    }))
}
