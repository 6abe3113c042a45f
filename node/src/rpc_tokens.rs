//! OAuth2 endpoints (spec: `specs/tokens.md`): a nonce for the presentation's challenge, the
//! token endpoint (grant: a verifiable presentation), and RFC 7662 introspection.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::rpc::RpcState;
use crate::tokens::TokenRequest;

type St = State<Arc<RpcState>>;

/// On the internal RPC: all three (introspection is for the node's own operators).
pub fn routes() -> Router<Arc<RpcState>> {
    public_routes().route("/oauth2/introspect", post(introspect))
}

/// On the public API: nonce and token.
pub fn public_routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/oauth2/nonce", get(nonce))
        .route("/oauth2/token", post(token))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn nonce(State(st): St) -> Json<serde_json::Value> {
    Json(json!({
        "nonce": st.tokens.nonce(),
        "audience": st.tokens.audience(),
        "expires_in": 300,
    }))
}

async fn token(State(st): St, form: Result<Form<TokenRequest>, FormRejection>) -> Response {
    let req = match form {
        Ok(Form(r)) => r,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e.body_text()),
    };
    let tokens = st.tokens.clone();
    let res = tokio::task::spawn_blocking(move || tokens.request(&req)).await;
    match res {
        Ok(Ok((token, grant))) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": st.tokens.lifetime().as_secs(),
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

#[derive(Deserialize)]
struct IntrospectReq {
    token: String,
}

async fn introspect(State(st): St, form: Result<Form<IntrospectReq>, FormRejection>) -> Response {
    let Ok(Form(req)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    match st.tokens.introspect(&req.token) {
        None => Json(json!({"active": false})).into_response(),
        Some(g) => Json(json!({
            "active": true,
            "scope": g.scope,
            "exp": g.expires_ms / 1000,
            "client_id": g.requester,
            "sub": g.professional,
            "patient": g.patient,
            "purpose": g.purpose,
            "holdings": g.holdings,
            "break_the_glass": g.break_the_glass,
        }))
        .into_response(),
    }
}
