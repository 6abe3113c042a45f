//! Tokens for the EHR (spec: `specs/tokens.md` §6): `POST /v1/access-tokens` asks any
//! conformant authorization server for a token as an organisation hosted here
//! ([`crate::care::requester`]), and `POST /v1/dpop-proofs` makes the DPoP proof for each use
//! of a DPoP-bound token; the DPoP keys never leave the node.

use crate::api::rpc::caller::Caller;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::localisation::{body, keys, Patient};
use crate::api::rpc::state::RpcState;
use crate::care::requester::{issuer_of, RequestError, TokenAsk};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/v1/access-tokens", post(access_token))
        .route("/v1/dpop-proofs", post(dpop_proof))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct AccessReq {
    /// The organisation (hosted here) whose credentials are presented.
    requester: String,
    /// The credentials presented; absent: those in the organisation's wallet.
    #[serde(default)]
    credentials: Option<Vec<Value>>,
    /// Also present the organisation's own credentials from its wallet (default: only when
    /// `credentials` is absent).
    #[serde(default)]
    wallet: Option<bool>,
    /// The authorization server's issuer URL; or
    #[serde(default)]
    issuer: Option<String>,
    /// the organisation (a did:knoop DID) whose own authorization server is asked.
    #[serde(default)]
    holder: Option<String>,
    scope: String,
    /// For a knoop authorization server: the patient (sent as its pseudonymous reference only).
    #[serde(default)]
    patient: Option<Patient>,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// More form parameters for the token request.
    #[serde(default)]
    params: BTreeMap<String, String>,
    /// A DID hosted here that authenticates as the client (RFC 7523 §2.2).
    #[serde(default)]
    client: Option<String>,
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let (status, code) = match &e {
            RequestError::Unreachable(_) | RequestError::Metadata(_) => {
                (StatusCode::BAD_GATEWAY, "upstream")
            }
            RequestError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            RequestError::Refused { .. } => (StatusCode::FORBIDDEN, "refused"),
            RequestError::Present(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            RequestError::UnknownKey(_) => (StatusCode::NOT_FOUND, "not_found"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", msg)
}

/// Parameters the request sets itself; `params` may not override them.
const RESERVED: [&str; 8] = [
    "grant_type",
    "assertion",
    "scope",
    "client_assertion",
    "client_assertion_type",
    "patient",
    "purpose",
    "reason",
];

async fn access_token(
    State(st): St,
    caller: Caller,
    b: Result<Json<AccessReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.requester)?;
    if let Some(client) = &req.client {
        caller.act_as(&st, client)?;
    }
    let issuer = match (&req.issuer, &req.holder) {
        // An issuer is an absolute http(s) URL (RFC 8414 §2): anything else is the caller's
        // mistake, not an upstream failure.
        (Some(i), None) => {
            let ok = url::Url::parse(i)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
            if !ok {
                return Err(bad(format!(
                    "issuer {i:?} is not an absolute https URL (RFC 8414 §2)"
                )));
            }
            i.clone()
        }
        (None, Some(h)) => issuer_of(&st.dids, h).ok_or_else(|| {
            bad(format!(
                "{h} is not an organisation on a knoop node with a public API"
            ))
        })?,
        _ => return Err(bad("give either issuer or holder")),
    };
    if let Some(p) = req.params.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return Err(bad(format!("params may not set {p}")));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(p) = req.patient {
        params.push(("patient".into(), keys(&st, p).await?.reference()));
    }
    if let Some(p) = req.purpose {
        params.push(("purpose".into(), p));
    }
    if let Some(r) = req.reason {
        params.push(("reason".into(), r));
    }
    params.extend(req.params);
    let credentials = st
        .wallet
        .with_given(&req.requester, req.credentials, req.wallet)
        .await?;
    let ask = TokenAsk {
        requester: req.requester,
        credentials,
        issuer: issuer.clone(),
        scope: req.scope,
        params,
        client: req.client,
        bearer: false,
    };
    let t = st.requester.token(&ask).await?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "issuer": issuer,
            "access_token": t.access_token,
            "token_type": t.token_type,
            "expires_in": t.response["expires_in"],
            "scope": t.response["scope"],
            "dpop_kid": t.dpop_kid,
            "response": t.response,
        })),
    ))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ProofReq {
    dpop_kid: String,
    /// The HTTP method of the request the proof is for.
    method: String,
    /// Its URL.
    url: String,
    access_token: String,
}

async fn dpop_proof(
    State(st): St,
    caller: Caller,
    b: Result<Json<ProofReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = body(b)?;
    if let Some(owner) = st.requester.dpop_owner(&req.dpop_kid) {
        caller.act_as(&st, &owner)?;
    }
    let method = req.method.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("method must be an HTTP method"));
    }
    if crate::care::dpop::target_uri(&req.url).is_none() {
        return Err(bad("url must be an absolute URL"));
    }
    let proof = st
        .requester
        .dpop_proof(&req.dpop_kid, &method, &req.url, &req.access_token)?;
    Ok(Json(json!({ "dpop": proof })))
}
