//! The OAuth2 endpoints other nodes call (spec: `specs/tokens.md`): a nonce for the
//! presentation's challenge and the token endpoint (grant: a verifiable presentation), served on
//! the public API and the RPC. Both call [`crate::care::tokens`]; errors
//! are RFC 6749 §5.2 JSON, and no answer may be cached (§5.1). A `DPoP` proof (RFC 9449) binds
//! the token to the client's key; every answer carries a fresh `DPoP-Nonce`. Each hosted
//! organisation has its own token endpoint, `/oauth2/{id}/token` (GFI-004), whose tokens cover
//! its data only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::care::dpop::{DpopError, Expect, DPOP, DPOP_NONCE};
use crate::care::tokens::{tenant_issuer, Tenant, TokenRequest, Tokens};
use crate::identity::did_ops::DidOps;

#[derive(Clone)]
struct OAuth {
    tokens: Arc<Tokens>,
    dids: Arc<DidOps>,
    /// The base URL the endpoints are reached at (the public API's), for a DPoP proof's
    /// `htu`; `None` on the RPC, where the `Host` header says it.
    base: Option<Arc<str>>,
}

/// `GET /oauth2/nonce`, `POST /oauth2/token` and the organisations' `POST
/// /oauth2/{id}/token`, reached at `base` (`None`: from `Host`).
pub fn routes<S>(tokens: Arc<Tokens>, dids: Arc<DidOps>, base: Option<String>) -> Router<S> {
    Router::new()
        .route("/oauth2/nonce", get(nonce))
        .route("/oauth2/token", post(token))
        .route("/oauth2/{tenant}/token", post(tenant_token))
        .with_state(OAuth {
            tokens,
            dids,
            base: base.map(Into::into),
        })
}

/// The hosted did:knoop DID whose method-specific id is `id`, if any.
pub(crate) fn hosted_tenant(dids: &DidOps, id: &str) -> Option<String> {
    let did = format!("did:knoop:{id}");
    let valid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (valid && dids.hosted().ok()?.contains(&did)).then_some(did)
}

/// The URL of `path` as the client called it: under `base`, or `http://<Host>` on the RPC.
pub(crate) fn request_url(base: Option<&str>, headers: &HeaderMap, path: &str) -> String {
    match base {
        Some(b) => format!("{}{path}", b.trim_end_matches('/')),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}{path}")
        }
    }
}

/// The one `DPoP` header of a request: `Ok(None)` without one, an error for several.
pub(crate) fn dpop_proof(headers: &HeaderMap) -> Result<Option<&str>, DpopError> {
    let mut all = headers.get_all(DPOP).iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v
            .to_str()
            .map(Some)
            .map_err(|_| DpopError::Header("the DPoP header is not text".into())),
        (Some(_), Some(_)) => Err(DpopError::Several),
    }
}

/// `resp` with a `DPoP-Nonce` header.
pub(crate) fn with_nonce(mut resp: Response, nonce: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(nonce) {
        resp.headers_mut().insert(DPOP_NONCE, v);
    }
    resp
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

async fn nonce(State(s): State<OAuth>) -> Response {
    let nonce = match s.tokens.nonce() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "storing a presentation nonce failed");
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "no nonce could be kept; retry",
            );
        }
    };
    let resp = no_store(
        Json(json!({
            "nonce": nonce,
            "audience": s.tokens.audience(),
            "expires_in": 300,
        }))
        .into_response(),
    );
    with_nonce(resp, &s.tokens.dpop().nonce())
}

/// Whether the body is declared as a form (RFC 6749 §3.2: the token endpoint takes
/// `application/x-www-form-urlencoded`).
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn token(State(s): State<OAuth>, headers: HeaderMap, body: Bytes) -> Response {
    let resp = decide(&s, &headers, body, None).await;
    with_nonce(resp, &s.tokens.dpop().nonce())
}

/// `POST /oauth2/{id}/token`: the token endpoint of one organisation hosted here.
async fn tenant_token(
    State(s): State<OAuth>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let resp = match hosted_tenant(&s.dids, &id) {
        None => oauth_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "no organisation with this id is hosted here",
        ),
        Some(did) => {
            let issuer = tenant_issuer(&request_url(s.base.as_deref(), &headers, ""), &id);
            let tenant = Tenant {
                did,
                audiences: vec![format!("{issuer}/token"), issuer],
            };
            decide(&s, &headers, body, Some(tenant)).await
        }
    };
    with_nonce(resp, &s.tokens.dpop().nonce())
}

/// The key the request's DPoP proof binds the token to (RFC 9449 §5): `None` without a proof
/// where none is required; the server's nonce is required in a proof.
fn binding(s: &OAuth, headers: &HeaderMap, path: &str) -> Result<Option<String>, DpopError> {
    let Some(proof) = dpop_proof(headers)? else {
        return if s.tokens.require_dpop() {
            Err(DpopError::Header(
                "this server requires a DPoP proof".into(),
            ))
        } else {
            Ok(None)
        };
    };
    let url = request_url(s.base.as_deref(), headers, path);
    let expect = Expect {
        method: "POST",
        url: &url,
        access_token: None,
    };
    Ok(Some(s.tokens.dpop().verify(proof, &expect, true)?.jkt))
}

/// The status of an RFC 6749 §5.2 error: 401 for a client that failed to authenticate, 403 for
/// a refusal of policy or consent, 500 for the server's own failure, else 400.
pub(crate) fn status_for(error: &str) -> StatusCode {
    match error {
        "access_denied" => StatusCode::FORBIDDEN,
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn decide(s: &OAuth, headers: &HeaderMap, body: Bytes, tenant: Option<Tenant>) -> Response {
    let tokens = &s.tokens;
    if !is_form(headers) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let mut req = match TokenRequest::from_form(&body) {
        Ok(r) => r,
        Err(e) => return oauth_error(status_for(e.error), e.error, &e.description),
    };
    let path = match &tenant {
        None => "/oauth2/token".to_owned(),
        Some(t) => format!(
            "/oauth2/{}/token",
            t.did.strip_prefix("did:knoop:").unwrap_or_default()
        ),
    };
    req.tenant = tenant;
    let jkt = match binding(s, headers, &path) {
        Ok(j) => j,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, e.code(), &e.to_string()),
    };
    match tokens.request(req, jkt).await {
        Ok((token, grant)) => no_store(
            Json(json!({
                "access_token": token,
                "token_type": grant.token_type(),
                "expires_in": tokens.lifetime().as_secs(),
                "scope": grant.scope,
                "holdings": grant.holdings,
            }))
            .into_response(),
        ),
        Err(e) if e.error == "server_error" => {
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, e.error, &e.description)
        }
        Err(e) => oauth_error(status_for(e.error), e.error, &e.description),
    }
}
