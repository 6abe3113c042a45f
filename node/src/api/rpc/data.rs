//! `POST /v1/data/fetch` (spec: `specs/data-fetch.md` §5): category C for patient P from every
//! holder, through [`crate::care::fetch`]. The patient identifier travels only in the body.
//! With `Accept: application/fhir+json` the answer is the merged FHIR Bundle alone.

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
    caller: Caller,
    headers: HeaderMap,
    b: Result<Json<FetchReq>, JsonRejection>,
) -> Result<Response, ApiError> {
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
    caller.act_as(&st, &requester)?;
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
    let identifier = (patient.system.clone(), patient.value.clone());
    let k = keys(&st, patient).await?;
    let answer = st
        .fetcher
        .fetch(req, &k, Some((&identifier.0, &identifier.1)))
        .await?;
    // A FHIR client asks for FHIR: the Bundle alone (it names every holder itself).
    let fhir_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/fhir+json"));
    Ok(if fhir_only {
        crate::api::fhir_answer::fhir(StatusCode::OK, &answer["bundle"])
    } else {
        Json(answer).into_response()
    })
}
