//! `GET /knoop/{id}/did.json` on the public API: the did:web document of a DID hosted here
//! ([`crate::identity::web_dids`]), for any did:web resolver.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::identity::web_dids::WebDids;

pub fn routes<S>(web: Arc<WebDids>) -> Router<S> {
    Router::new()
        .route("/knoop/{id}/did.json", get(document))
        .with_state(web)
}

async fn document(State(web): State<Arc<WebDids>>, Path(id): Path<String>) -> Response {
    match web.document(&id) {
        Some(doc) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/did+json")],
            Json(doc),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no DID hosted here has this id").into_response(),
    }
}
