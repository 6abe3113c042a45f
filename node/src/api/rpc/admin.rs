//! RPC endpoints for operators: an online backup of the node's store (`specs/storage.md`,
//! "Backup"). Restore runs offline (`knoop restore`), with the node stopped.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::state::RpcState;

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new().route("/v1/admin/backup", post(backup))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    /// Directory on the node's machine; must not exist or be empty.
    dir: PathBuf,
}

async fn backup(State(st): St, Json(req): Json<BackupRequest>) -> Result<Json<Value>, ApiError> {
    if !req.dir.is_absolute() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "dir must be an absolute path on the node's machine",
        ));
    }
    let store = st.log.store().clone();
    let data_dir = st.data_dir.clone();
    let dir = req.dir.clone();
    let manifest =
        tokio::task::spawn_blocking(move || crate::ops::backup::create(&store, &data_dir, &dir))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "backup", e.to_string()))?
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, "backup", e.to_string()))?;
    Ok(Json(json!({ "dir": req.dir, "manifest": manifest })))
}
