//! RPC endpoints for private transactions (spec: `specs/private-transactions.md`): send, list
//! the ones this node takes part in, read one. A transaction this node does not take part in
//! reads as 404, the same as one that does not exist.

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::prelude::{Engine, BASE64_STANDARD};
use knoop_gossip::TxId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::state::RpcState;
use crate::care::private::SendError;

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/v1/private", post(send).get(list))
        .route("/v1/private/{id}", get(read))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendReq {
    /// A DID hosted here, with an assertionMethod key: the author.
    author: String,
    /// Recipient DIDs (1..63), each with a keyAgreement key.
    to: Vec<String>,
    #[serde(rename = "contentType", default = "json_type")]
    content_type: String,
    /// The body: any JSON (sent as its bytes).
    body: Value,
}

fn json_type() -> String {
    "application/json".into()
}

fn send_error(e: SendError) -> ApiError {
    let (status, code) = match e {
        SendError::Ops(o) => return o.into(),
        SendError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        SendError::NoKeyAgreement(_) => (StatusCode::BAD_REQUEST, "no_key_agreement"),
        SendError::UnknownRecipient(_) => (StatusCode::BAD_REQUEST, "unknown_recipient"),
        SendError::Seal(ref s) => (StatusCode::BAD_REQUEST, s.code()),
        SendError::Store(ref m) if knoop_gossip::StoreError::text_is_disk_full(m) => {
            (StatusCode::INSUFFICIENT_STORAGE, "disk_full")
        }
        SendError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
    };
    ApiError::new(status, code, e.to_string())
}

async fn send(
    State(st): St,
    caller: Caller,
    b: Result<Json<SendReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(req) =
        b.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    caller.act_as(&st, &req.author)?;
    let body = serde_json::to_vec(&req.body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let id = st
        .private
        .send(&req.author, req.to, &req.content_type, body)
        .await
        .map_err(send_error)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id.to_hex()}))))
}

async fn list(State(st): St) -> Json<Value> {
    let items: Vec<Value> = st
        .private
        .list()
        .into_iter()
        .map(|(id, r)| {
            json!({
                "id": id.to_hex(), "state": r.state, "origin": r.origin, "author": r.author,
                "to": r.to, "contentType": r.content_type, "iat": r.iat, "error": r.error,
                "attempts": r.attempts,
            })
        })
        .collect();
    Json(json!({ "transactions": items }))
}

async fn read(State(st): St, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let not_here = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such private transaction here",
        )
    };
    let id = TxId::from_hex(&id).map_err(|_| not_here())?;
    let m = st.private.read(&id).ok_or_else(not_here)?;
    let body = serde_json::from_slice::<Value>(&m.body)
        .unwrap_or_else(|_| Value::String(BASE64_STANDARD.encode(&m.body)));
    Ok(Json(json!({
        "id": id.to_hex(), "author": m.author, "to": m.to, "contentType": m.content_type,
        "iat": m.iat, "body": body,
    })))
}
