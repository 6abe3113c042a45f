//! `POST /v1/data/fetch` (spec: `specs/data-fetch.md` §5): category C for patient P from every
//! holder, through [`crate::care::fetch`]. The patient identifier travels only in the body.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::api::rpc::error::ApiError;
use crate::api::rpc::localisation::{body, keys, loc_error, Patient};
use crate::api::rpc::state::RpcState;
use crate::care::fetch::{FetchError, FetchRequest};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new().route("/v1/data/fetch", post(fetch))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FetchReq {
    requester: String,
    /// The credentials presented; absent: those in the requester's wallet.
    #[serde(default)]
    credentials: Option<Vec<Value>>,
    /// Also present the requester's own credentials from its wallet (default: only when
    /// `credentials` is absent).
    #[serde(default)]
    wallet: Option<bool>,
    patient: Patient,
    scope: String,
    #[serde(default)]
    categories: Option<Vec<String>>,
    purpose: String,
    #[serde(default)]
    reason: Option<String>,
}

impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Lookup(l) => loc_error(l),
            e => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
        }
    }
}

async fn fetch(
    State(st): St,
    b: Result<Json<FetchReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let FetchReq {
        requester,
        credentials,
        patient,
        scope,
        categories,
        purpose,
        reason,
        wallet,
    } = body(b)?;
    let credentials = st
        .wallet
        .with_given(&requester, credentials, wallet)
        .await?;
    let req = FetchRequest {
        requester,
        credentials,
        scope,
        categories,
        purpose,
        reason,
    };
    req.check()?;
    let k = keys(&st, patient).await?;
    Ok(Json(st.fetcher.fetch(req, &k).await?))
}
