//! The presentation definitions of the scopes (Nuts RFC021 §5, `specs/tokens.md` §7), on the
//! public API only: `GET /presentation_definition?scope=` and, per hosted organisation,
//! `GET /oauth2/{id}/presentation_definition`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::api::public::oauth::{hosted_tenant, oauth_error};
use crate::care::tokens::Tokens;
use crate::identity::did_ops::DidOps;

/// `GET /presentation_definition?scope=` and `GET /oauth2/{id}/presentation_definition` on the
/// public API (Nuts RFC021 §5): the DIF Presentation Exchange definition of a scope.
pub fn routes<S>(tokens: Arc<Tokens>, dids: Arc<DidOps>) -> Router<S> {
    Router::new()
        .route("/presentation_definition", get(definition))
        .route(
            "/oauth2/{tenant}/presentation_definition",
            get(tenant_definition),
        )
        .with_state((tokens, dids))
}

#[derive(serde::Deserialize)]
struct ScopeQuery {
    #[serde(default)]
    scope: String,
}

fn definition_of(tokens: &Tokens, scope: &str) -> Response {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    match scopes.as_slice() {
        [one] => match tokens.definition(one) {
            Some(d) => Json(d.clone()).into_response(),
            None => oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "unknown scope"),
        },
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "name exactly one scope",
        ),
    }
}

async fn definition(
    State((tokens, _)): State<(Arc<Tokens>, Arc<DidOps>)>,
    q: Result<axum::extract::Query<ScopeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match q {
        Ok(q) => definition_of(&tokens, &q.scope),
        Err(_) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "bad query"),
    }
}

async fn tenant_definition(
    State((tokens, dids)): State<(Arc<Tokens>, Arc<DidOps>)>,
    Path(id): Path<String>,
    q: Result<axum::extract::Query<ScopeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if hosted_tenant(&dids, &id).is_none() {
        return oauth_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "no organisation with this id is hosted here",
        );
    }
    match q {
        Ok(q) => definition_of(&tokens, &q.scope),
        Err(_) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "bad query"),
    }
}
