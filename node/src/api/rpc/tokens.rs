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
pub fn routes<S: Clone + Send + Sync + 'static>(tokens: Arc<Tokens>) -> Router<S> {
    crate::api::public::oauth::routes(tokens.clone(), None).merge(
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
        Some(g) => Json(with_cnf(
            g.jkt.as_deref(),
            json!({
                "active": true,
                "token_type": g.token_type(),
                "scope": g.scope,
                "iat": g.issued_ms / 1000,
                "nbf": g.issued_ms / 1000,
                "exp": g.expires_ms / 1000,
                "jti": g.id,
                // GFI-006: the authorization server's DID, and the custodians' (the holders).
                "iss": tokens.audience(),
                "aud": g.holdings.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(),
                "assertions": g.assertions,
                // The software that authenticated (RFC 7523 §2.2), else the organisation.
            "client_id": g.client.as_ref().map_or(&g.requester, |c| &c.0),
            "client_assertions": g.client.as_ref().map(|c| &c.1),
                "sub": g.professional,
                "patient": g.patient,
                "purpose": g.purpose,
                "holdings": g.holdings,
                "break_the_glass": g.break_the_glass,
            }),
        ))
        .into_response(),
    })
}

/// `cnf.jkt` (RFC 9449 §6.2) on the introspection of a DPoP-bound token.
fn with_cnf(jkt: Option<&str>, mut v: serde_json::Value) -> serde_json::Value {
    if let Some(jkt) = jkt {
        v["cnf"] = json!({ "jkt": jkt });
    }
    v
}
