//! OAuth2 on the internal RPC (spec: `specs/tokens.md`): the public API's nonce and token
//! endpoints ([`crate::api::public::oauth`]) plus RFC 7662 introspection.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::care::tokens::Tokens;

/// On the internal RPC: nonce, token and introspection (introspection is for the node's own
/// operators).
pub fn routes<S: Clone + Send + Sync + 'static>(
    tokens: Arc<Tokens>,
    dids: Arc<crate::identity::did_ops::DidOps>,
) -> Router<S> {
    crate::api::public::oauth::routes(tokens.clone(), dids, None).merge(
        Router::new()
            .route("/oauth2/introspect", post(introspect))
            .with_state(tokens),
    )
}

#[derive(Deserialize)]
struct IntrospectReq {
    token: String,
}

async fn introspect(
    State(tokens): State<Arc<Tokens>>,
    form: Result<Form<IntrospectReq>, FormRejection>,
) -> Response {
    let Ok(Form(req)) = form else {
        return crate::api::public::oauth::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    crate::api::public::oauth::no_store(match tokens.introspect(&req.token) {
        None => Json(json!({"active": false})).into_response(),
        Some(g) => Json(tokens.introspection(&g)).into_response(),
    })
}
