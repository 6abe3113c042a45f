//! RPC endpoints for operators: an online backup of the node's store (`specs/storage.md`,
//! "Backup") into a new directory under the configured backup directory, named by the caller
//! (one path segment: the route writes nowhere else). Restore runs offline (`knoop restore`),
//! with the node stopped.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::localisation::body;
use crate::api::rpc::state::RpcState;

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new().route("/v1/admin/backup", post(backup))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    /// The new backup's directory name under `[rpc] backup_dir`; it must not exist or be empty.
    name: String,
}

/// Whether `name` is one directory name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with a
/// dot (no `..`, no separator, no hidden directory).
fn is_backup_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

async fn backup(
    State(st): St,
    req: Result<Json<BackupRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = body(req)?;
    if !is_backup_name(&req.name) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "name must be one directory name: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with a dot",
        ));
    }
    let store = st.log.store().clone();
    let data_dir = st.data_dir.clone();
    let dir = st.backup_dir.join(&req.name);
    let answer_dir = dir.clone();
    let manifest = tokio::task::spawn_blocking(move || {
        crate::ops::backup::create(store.as_ref(), &data_dir, &dir)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "backup", e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::CONFLICT, "backup", e.to_string()))?;
    Ok(Json(json!({ "dir": answer_dir, "manifest": manifest })))
}

#[cfg(test)]
mod tests {
    use super::is_backup_name;

    #[test]
    fn backup_names_are_one_directory_name() {
        for ok in ["b1", "2026-12-07T10.00", "nightly_backup"] {
            assert!(is_backup_name(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "/tmp/x",
            "../x",
            "a\\b",
            "a b",
            long.as_str(),
        ] {
            assert!(!is_backup_name(bad), "{bad}");
        }
    }
}
