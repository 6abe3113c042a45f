//! The RPC's error answer, `{"error": code, "message": text}` with an HTTP status, and its
//! mapping from the log's transaction errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use knoop_gossip::TxError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(crate) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the node is shutting down",
        )
    }
}

impl From<TxError> for ApiError {
    fn from(e: TxError) -> Self {
        let status = match e {
            TxError::Duplicate => StatusCode::CONFLICT,
            TxError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            TxError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // RFC 4918 §11.5: the node cannot store what the request needs stored.
            TxError::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            TxError::Unauthorized(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}
