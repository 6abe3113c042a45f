//! RPC endpoints for localisation (spec: `specs/consent-localisation.md` §10): register that a
//! tenant holds data about a patient, withdraw that, look a patient up. Patient
//! identifiers travel only in request bodies, never in URLs, and are never logged.

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use knoop_privacy::patient::{PatientKeys, BSN_SYSTEM};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::state::RpcState;
use crate::care::localisation::LocError;
use crate::care::source::{is_fhir_id, SourceLink};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/v1/localisation/register", post(register))
        .route("/v1/localisation/withdraw", post(withdraw))
        .route("/v1/localisation/lookup", post(lookup))
}

/// A patient identifier. Its `Debug` hides the value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Patient {
    #[serde(default = "bsn")]
    pub(crate) system: String,
    pub(crate) value: String,
}

impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Patient({}|<redacted>)", self.system)
    }
}

fn bsn() -> String {
    BSN_SYSTEM.into()
}

pub(crate) fn loc_error(e: LocError) -> ApiError {
    let (status, code) = match e {
        LocError::Ops(o) => return o.into(),
        // A feature this node was not set up for: the request conflicts with its state (as the
        // NVI interface and the wallet answer), not a server failure.
        LocError::NotConfigured => (StatusCode::CONFLICT, "not_configured"),
        LocError::Invalid(ref m) if m.starts_with("invalid_identifier") => {
            (StatusCode::BAD_REQUEST, "invalid_identifier")
        }
        LocError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        LocError::UnknownTenant(_) => (StatusCode::BAD_REQUEST, "unknown_tenant"),
        LocError::SlotsExhausted => (StatusCode::CONFLICT, "slots_exhausted"),
        LocError::Store(ref m) if knoop_gossip::StoreError::text_is_disk_full(m) => {
            (StatusCode::INSUFFICIENT_STORAGE, "disk_full")
        }
        LocError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
        LocError::Task => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    ApiError::new(status, code, e.to_string())
}

pub(crate) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))
}

/// Derives the patient's keys off the async workers (Argon2id: slow by design).
pub(crate) async fn keys(st: &Arc<RpcState>, p: Patient) -> Result<PatientKeys, ApiError> {
    st.localisation
        .derive_blocking(p.system, p.value)
        .await
        .map_err(loc_error)
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RegisterReq {
    holder: String,
    patient: Patient,
    categories: Vec<String>,
    /// The patient's id at the holder's FHIR source; found there by identifier when absent.
    #[serde(default)]
    source_patient: Option<String>,
}

async fn register(
    State(st): St,
    caller: Caller,
    b: Result<Json<RegisterReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.holder)?;
    if let Some(id) = &req.source_patient {
        if !is_fhir_id(id) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "source_patient must be a FHIR id ([A-Za-z0-9-.]{1,64})",
            ));
        }
    }
    let link = match req.source_patient {
        Some(id) => SourceLink {
            patient: Some(id),
            note: None,
        },
        None => {
            st.sources
                .link(&req.holder, &req.patient.system, &req.patient.value)
                .await
        }
    };
    let (source_patient, source_note) = (link.patient, link.note);
    if let Some(note) = &source_note {
        tracing::warn!(holder = %req.holder, note = %note, "registered without a source link");
    }
    let k = keys(&st, req.patient).await?;
    let published = st
        .localisation
        .register(&req.holder, &k, &req.categories, source_patient.clone())
        .await
        .map_err(loc_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"patient": k.reference(), "published": published,
                    "source_patient": source_patient, "source_note": source_note})),
    ))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct WithdrawReq {
    holder: String,
    patient: Patient,
    /// The categories no longer held; all when absent.
    #[serde(default)]
    categories: Vec<String>,
}

async fn withdraw(
    State(st): St,
    caller: Caller,
    b: Result<Json<WithdrawReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.holder)?;
    let k = keys(&st, req.patient).await?;
    let published = st
        .localisation
        .withdraw(&req.holder, &k, &req.categories)
        .await
        .map_err(loc_error)?;
    Ok(Json(
        json!({"patient": k.reference(), "withdrawn": published}),
    ))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct LookupReq {
    requester: String,
    patient: Patient,
    purpose: String,
    /// An opaque reference to the professional asking (logged at the holders).
    #[serde(default)]
    who: String,
}

async fn lookup(
    State(st): St,
    caller: Caller,
    b: Result<Json<LookupReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.requester)?;
    let k = keys(&st, req.patient).await?;
    let answers = st
        .localisation
        .lookup(&req.requester, &k, &req.purpose, &req.who)
        .await
        .map_err(loc_error)?;
    let holders: Vec<Value> = answers
        .into_iter()
        .map(|a| {
            let organizations: Vec<Value> = a
                .holdings
                .iter()
                .map(|(did, categories)| {
                    let mut org = st.directory.organisation(did);
                    org["categories"] = json!(categories);
                    org
                })
                .collect();
            json!({"node": a.node, "status": a.status, "organizations": organizations})
        })
        .collect();
    Ok(Json(json!({"patient": k.reference(), "holders": holders})))
}
