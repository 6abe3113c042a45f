//! The policy decision point for policy enforcement points (spec: `specs/pdp.md`), with
//! knooppunt's endpoints: `POST /pdp` and `POST /pdp/v1/data/knooppunt/authz` take
//! `{"input": {subject, request, context}}` and answer `{allow, policies, error}`
//! ([`crate::care::pdp`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use crate::api::rpc::state::RpcState;

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/pdp", post(decide))
        .route("/pdp/v1/data/{package}/{rule}", post(decide_rule))
}

async fn decide(State(st): St, body: Bytes) -> Response {
    let decision = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => st.pdp.decide(&v).await,
        Err(e) => crate::care::pdp::Decision {
            allow: false,
            error: Some(format!("unable to parse request body: {e}")),
            policies: Default::default(),
            status: 400,
        },
    };
    let status = StatusCode::from_u16(decision.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(decision)).into_response()
}

/// OPA's data API path as knooppunt serves it: only `knooppunt/authz`.
async fn decide_rule(
    st: St,
    Path((package, rule)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if package != "knooppunt" {
        return (StatusCode::BAD_REQUEST, "invalid package").into_response();
    }
    if rule != "authz" {
        return (StatusCode::BAD_REQUEST, format!("unknown rule {rule}")).into_response();
    }
    decide(st, body).await
}
