//! The OAuth2 endpoints other nodes call (spec: `specs/tokens.md`): a nonce for the
//! presentation's challenge and the token endpoint (grant: a verifiable presentation), served on
//! the public API and the RPC. Both call [`crate::care::tokens`]; errors
//! are RFC 6749 §5.2 JSON, and no answer may be cached (§5.1).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::care::tokens::{TokenRequest, Tokens};

/// `GET /oauth2/nonce` and `POST /oauth2/token`.
pub fn routes<S>(tokens: Arc<Tokens>) -> Router<S> {
    Router::new()
        .route("/oauth2/nonce", get(nonce))
        .route("/oauth2/token", post(token))
        .with_state(tokens)
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1) on `resp`.
pub(crate) fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(
        (
            status,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response(),
    )
}

async fn nonce(State(tokens): State<Arc<Tokens>>) -> Response {
    no_store(
        Json(json!({
            "nonce": tokens.nonce(),
            "audience": tokens.audience(),
            "expires_in": 300,
        }))
        .into_response(),
    )
}

/// Whether the body is declared as a form (RFC 6749 §3.2: the token endpoint takes
/// `application/x-www-form-urlencoded`).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn token(State(tokens): State<Arc<Tokens>>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let req = match TokenRequest::from_form(&body) {
        Ok(r) => r,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, e.error, &e.description),
    };
    let t = tokens.clone();
    let res = tokio::task::spawn_blocking(move || t.request(&req)).await;
    match res {
        Ok(Ok((token, grant))) => no_store(
            Json(json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": tokens.lifetime().as_secs(),
                "scope": grant.scope,
                "holdings": grant.holdings,
            }))
            .into_response(),
        ),
        Ok(Err(e)) => {
            let status = if e.error == "access_denied" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_REQUEST
            };
            oauth_error(status, e.error, &e.description)
        }
        Err(_) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "token task",
        ),
    }
}
