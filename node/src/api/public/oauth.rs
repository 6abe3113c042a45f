//! The OAuth2 endpoints other nodes call (spec: `specs/tokens.md`): a nonce for the
//! presentation's challenge, and the token endpoint (grant: a verifiable presentation). Both
//! call [`crate::care::tokens`]; errors are RFC 6749 §5.2 JSON.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::json;

use crate::care::tokens::{TokenRequest, Tokens};

/// `GET /oauth2/nonce` and `POST /oauth2/token`.
pub fn routes<S>(tokens: Arc<Tokens>) -> Router<S> {
    Router::new()
        .route("/oauth2/nonce", get(nonce))
        .route("/oauth2/token", post(token))
        .with_state(tokens)
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn nonce(State(tokens): State<Arc<Tokens>>) -> Json<serde_json::Value> {
    Json(json!({
        "nonce": tokens.nonce(),
        "audience": tokens.audience(),
        "expires_in": 300,
    }))
}

async fn token(
    State(tokens): State<Arc<Tokens>>,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let req = match form {
        Ok(Form(r)) => r,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e.body_text()),
    };
    let t = tokens.clone();
    let res = tokio::task::spawn_blocking(move || t.request(&req)).await;
    match res {
        Ok(Ok((token, grant))) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": tokens.lifetime().as_secs(),
            "scope": grant.scope,
            "holdings": grant.holdings,
        }))
        .into_response(),
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
