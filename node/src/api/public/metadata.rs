//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3) on the public API: where the token
//! endpoint is and what it accepts, for OAuth2 clients that discover a server from its URL.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::care::tokens::{server_metadata, Tokens};

/// The metadata route for the token endpoint at `issuer`, the public API's base URL.
pub fn routes<S>(tokens: Arc<Tokens>, issuer: String) -> Router<S> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .with_state((tokens, Arc::new(issuer)))
}

async fn metadata(State((tokens, issuer)): State<(Arc<Tokens>, Arc<String>)>) -> Response {
    Json(server_metadata(&issuer, &tokens.scopes())).into_response()
}
