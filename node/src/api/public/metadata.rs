//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3) on the public API: where the token
//! endpoint is and what it accepts, for OAuth2 clients that discover a server from its URL; and
//! for each hosted organisation's own authorization server (issuer `<base>/oauth2/{id}`) at
//! `/.well-known/oauth-authorization-server/oauth2/{id}` (RFC 8414 §3.1, the issuer's path
//! after the well-known segment).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::api::public::oauth::hosted_tenant;
use crate::care::tokens::{server_metadata, Tokens};
use crate::identity::did_ops::DidOps;

type St = State<(Arc<Tokens>, Arc<DidOps>, Arc<String>)>;

/// The metadata routes under `base`, the public API's base URL.
pub fn routes<S>(tokens: Arc<Tokens>, dids: Arc<DidOps>, base: String) -> Router<S> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route(
            "/.well-known/oauth-authorization-server/oauth2/{tenant}",
            get(tenant_metadata),
        )
        .with_state((tokens, dids, Arc::new(base)))
}

async fn metadata(State((tokens, _, base)): St) -> Response {
    Json(server_metadata(&base, None, &tokens.scopes())).into_response()
}

async fn tenant_metadata(State((tokens, dids, base)): St, Path(id): Path<String>) -> Response {
    match hosted_tenant(&dids, &id) {
        Some(_) => Json(server_metadata(&base, Some(&id), &tokens.scopes())).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no organisation with this id is hosted here",
        )
            .into_response(),
    }
}
