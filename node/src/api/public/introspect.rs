//! `POST /oauth2/introspect` on the public API (GFI-006, `specs/tokens.md` §1b): RFC 7662 for
//! resource servers outside the node, which authenticate with a client assertion. (The RPC has
//! its own, for the node's operators.)

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::api::public::oauth::{is_form, no_store, oauth_error, status_for};
use crate::care::tokens::Tokens;

/// `POST /oauth2/introspect` on the public API: RFC 7662 for resource servers outside the node,
/// authenticated by a client assertion (RFC 7523 §2.2).
pub fn routes<S>(tokens: Arc<Tokens>) -> Router<S> {
    Router::new()
        .route("/oauth2/introspect", post(introspect))
        .with_state(tokens)
}

async fn introspect(
    State(tokens): State<Arc<Tokens>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_form(&headers) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let mut token = None;
    let mut assertion = None;
    let mut assertion_type = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "token" => token = Some(v.into_owned()),
            "client_assertion" => assertion = Some(v.into_owned()),
            "client_assertion_type" => assertion_type = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(token) = token else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    let (Some(assertion), Some(crate::care::tokens::CLIENT_ASSERTION_TYPE)) =
        (assertion, assertion_type.as_deref())
    else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "authenticate with client_assertion_type \
             urn:ietf:params:oauth:client-assertion-type:jwt-bearer and a client_assertion",
        );
    };
    match tokens.introspect_as(&token, &assertion).await {
        Ok(None) => no_store(Json(json!({"active": false})).into_response()),
        Ok(Some(g)) => no_store(Json(tokens.introspection(&g)).into_response()),
        Err(e) => oauth_error(status_for(e.error), e.error, &e.description),
    }
}
