//! The Nuts node's token API (nuts-node `docs/_static/auth/v2.yaml`, `/internal/auth/v2`), for
//! EHRs integrated with a Nuts node, and the same under `/nuts/auth/v2`, where knooppunt serves
//! it (its `docs/INTEGRATION.md`, "Authentication"): such an EHR changes its base URL and keeps
//! its calls (spec: `specs/tokens.md` §6.1).
//!
//! - `POST .../{subjectID}/request-service-access-token`: a token from a remote authorization
//!   server as an organisation hosted here (`subjectID`: its DID, or the method-specific id of
//!   its did:knoop DID), presenting its wallet, any `credentials` given and the user's Dezi
//!   attestation (`id_token`, knooppunt's); DPoP-bound unless `token_type` is `Bearer`.
//! - `POST .../accesstoken/introspect`: RFC 7662 introspection of a token this node issued.
//! - `POST .../dpop/{kid}`: a DPoP proof for one request with a token's key.
//!
//! Errors are RFC 9457 `application/problem+json`, as the Nuts node answers them.

use crate::api::rpc::caller::Caller;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Form, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::state::RpcState;
use crate::care::requester::{RequestError, TokenAsk};
use crate::care::wallet::WalletError;

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route(
            "/internal/auth/v2/{subject_id}/request-service-access-token",
            post(request_service_access_token),
        )
        .route(
            "/nuts/auth/v2/{subject_id}/request-service-access-token",
            post(request_service_access_token),
        )
        .route("/internal/auth/v2/accesstoken/introspect", post(introspect))
        .route("/nuts/auth/v2/accesstoken/introspect", post(introspect))
        .route("/internal/auth/v2/dpop/{kid}", post(dpop))
        .route("/nuts/auth/v2/dpop/{kid}", post(dpop))
}

/// An RFC 9457 problem: `{title, status, detail}`.
fn problem(status: StatusCode, title: &str, detail: impl Into<String>) -> Response {
    let mut resp = (
        status,
        Json(json!({"title": title, "status": status.as_u16(), "detail": detail.into()})),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    resp
}

fn bad(detail: impl Into<String>) -> Response {
    problem(StatusCode::BAD_REQUEST, "bad request", detail)
}

/// The Nuts node's statuses: `400` for bad parameters and an OAuth error of the authorizer,
/// `412` when the wallet cannot satisfy it, `502` for an authorizer answer that is no use,
/// `503` when it cannot be reached.
fn request_problem(e: RequestError) -> Response {
    let status = match &e {
        RequestError::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
        RequestError::Metadata(_) => StatusCode::BAD_GATEWAY,
        RequestError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        RequestError::Refused { .. } => StatusCode::BAD_REQUEST,
        RequestError::Present(_) => StatusCode::PRECONDITION_FAILED,
        RequestError::UnknownKey(_) => StatusCode::NOT_FOUND,
    };
    problem(status, "access token request failed", e.to_string())
}

fn wallet_problem(e: WalletError) -> Response {
    match e {
        WalletError::BadRequest(m) => bad(m),
        e => problem(
            StatusCode::PRECONDITION_FAILED,
            "the wallet cannot present the credentials",
            e.to_string(),
        ),
    }
}

/// The hosted organisation a Nuts `subjectID` names: a DID hosted here, or the method-specific
/// id of a hosted did:knoop DID.
fn subject(st: &RpcState, id: &str) -> Option<String> {
    if id.starts_with("did:") {
        let hosted = st.dids.hosted().ok()?;
        return hosted.iter().any(|d| d == id).then(|| id.to_owned());
    }
    crate::api::public::oauth::hosted_tenant(&st.dids, id)
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ServiceAccessTokenRequest {
    authorization_server: String,
    scope: String,
    #[serde(default)]
    credentials: Vec<Value>,
    #[serde(default)]
    credential_selection: BTreeMap<String, String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    service_provider_subject_id: Option<String>,
    /// knooppunt's: the Dezi attestation of the user (the decrypted ID token of the Dezi
    /// login), presented as a `DeziUserCredential`.
    #[serde(default)]
    id_token: Option<String>,
}

async fn request_service_access_token(
    State(st): St,
    caller: Caller,
    Path(subject_id): Path<String>,
    body: Result<Json<ServiceAccessTokenRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return bad(e.body_text()),
    };
    let Some(requester) = subject(&st, &subject_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "unknown subject",
            format!("{subject_id} is not an organisation hosted here"),
        );
    };
    if let Err(r) = caller.act_as(&st, &requester) {
        return problem(StatusCode::FORBIDDEN, "forbidden", r.message);
    }
    let issuer_ok = url::Url::parse(&req.authorization_server)
        .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
    if !issuer_ok {
        return bad("authorization_server must be an absolute https URL (RFC 8414 §2)");
    }
    if req.scope.trim().is_empty() {
        return bad("scope is required");
    }
    if !req.credential_selection.is_empty() {
        return bad("credential_selection is not supported: name the credentials instead");
    }
    let bearer = match req.token_type.as_deref() {
        None | Some("DPoP") => false,
        Some("Bearer") => true,
        Some(t) => return bad(format!("token_type {t}: Bearer or DPoP")),
    };
    let client = match &req.service_provider_subject_id {
        None => None,
        Some(s) => match subject(&st, s) {
            Some(d) => {
                if let Err(r) = caller.act_as(&st, &d) {
                    return problem(StatusCode::FORBIDDEN, "forbidden", r.message);
                }
                Some(d)
            }
            None => {
                return bad(format!(
                    "service_provider_subject_id {s} is not hosted here"
                ))
            }
        },
    };
    // The wallet's credentials, and those given in addition, with the user's Dezi attestation.
    let mut given = req.credentials;
    if let Some(jwt) = &req.id_token {
        match knoop_vc::dezi::credential_of(jwt, &requester) {
            Ok(c) => given.push(c),
            Err(e) => return bad(format!("id_token: {e}")),
        }
    }
    let given = (!given.is_empty()).then_some(given);
    let credentials = match st.wallet.with_given(&requester, given, Some(true)).await {
        Ok(c) => c,
        Err(e) => return wallet_problem(e),
    };
    let ask = TokenAsk {
        requester,
        credentials,
        issuer: req.authorization_server,
        scope: req.scope,
        params: Vec::new(),
        client,
        bearer,
    };
    match st.requester.token(&ask).await {
        Ok(t) => {
            let expires_in = t.response["expires_in"].as_u64();
            let mut out = json!({
                "access_token": t.access_token,
                "token_type": t.token_type,
                "scope": t.response["scope"].as_str().unwrap_or(&ask.scope),
            });
            if let Some(kid) = t.dpop_kid {
                out["dpop_kid"] = json!(kid);
            }
            if let Some(e) = expires_in {
                out["expires_in"] = json!(e);
                out["expires_at"] = json!(knoop_gossip::tx::now_ms() / 1000 + e);
            }
            Json(out).into_response()
        }
        Err(e) => request_problem(e),
    }
}

#[derive(Deserialize)]
struct IntrospectionRequest {
    token: String,
}

/// RFC 7662 §2: `active: false` for any token this node does not know.
async fn introspect(
    State(st): St,
    form: Result<Form<IntrospectionRequest>, FormRejection>,
) -> Response {
    let Ok(Form(req)) = form else {
        return bad("token is required (application/x-www-form-urlencoded)");
    };
    let body = match st.tokens.introspect(&req.token) {
        None => json!({"active": false}),
        Some(g) => st.tokens.introspection(&g),
    };
    crate::api::public::oauth::no_store(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DpopRequest {
    htm: String,
    token: String,
    htu: String,
}

async fn dpop(
    State(st): St,
    caller: Caller,
    Path(kid): Path<String>,
    body: Result<Json<DpopRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return bad(e.body_text()),
    };
    let method = req.htm.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return bad("htm must be an HTTP method");
    }
    if crate::care::dpop::target_uri(&req.htu).is_none() {
        return bad("htu must be an absolute URL");
    }
    if let Some(owner) = st.requester.dpop_owner(&kid) {
        if let Err(r) = caller.act_as(&st, &owner) {
            return problem(StatusCode::FORBIDDEN, "forbidden", r.message);
        }
    }
    match st.requester.dpop_proof(&kid, &method, &req.htu, &req.token) {
        Ok(proof) => Json(json!({"dpop": proof})).into_response(),
        Err(e) => request_problem(e),
    }
}
