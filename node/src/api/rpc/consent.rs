//! RPC endpoints for consent (spec: `specs/consent-localisation.md` §5, §10): register a consent
//! or objection as a `PatientConsentCredential` sent privately to the patient's holder nodes,
//! revoke it, list what this node holds about a patient. Identifiers only in request bodies.

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use knoop_vc::types::Selector;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::localisation::{body, keys, Patient};
use crate::api::rpc::state::RpcState;
use crate::care::consent_registration::{ConsentRequest, RegistrationError};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/v1/consent", post(register))
        .route("/v1/consent/revoke", post(revoke))
        .route("/v1/consent/list", post(list))
}

fn bad(code: &str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, msg)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SelectorReq {
    #[serde(default)]
    organization_types: Vec<String>,
    #[serde(default)]
    organizations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RegisterReq {
    /// The registering organisation: a tenant here with a trusted organisation credential.
    issuer: String,
    patient: Patient,
    /// `permit` (consent) or `deny` (objection).
    decision: String,
    purpose: Vec<String>,
    data_categories: Vec<String>,
    #[serde(default)]
    holders: Option<SelectorReq>,
    #[serde(default)]
    requesters: Option<SelectorReq>,
    #[serde(default)]
    valid_until: Option<String>,
    #[serde(default)]
    registrar: Option<String>,
    method: String,
}

fn selector(s: Option<SelectorReq>) -> Option<Selector> {
    s.map(|s| Selector {
        organization_types: s.organization_types,
        organizations: s.organizations,
    })
}

impl From<RegistrationError> for ApiError {
    fn from(e: RegistrationError) -> Self {
        match e {
            RegistrationError::Ops(o) => o.into(),
            RegistrationError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, e.code(), e.to_string())
            }
            RegistrationError::Task => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.code(), e.to_string())
            }
            e => bad(e.code(), e.to_string()),
        }
    }
}

async fn register(
    State(st): St,
    caller: Caller,
    b: Result<Json<RegisterReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.issuer)?;
    let k = keys(&st, req.patient).await?;
    if st.localisation.network_id().is_none() {
        return Err(RegistrationError::NotConfigured.into());
    }
    let permit = match req.decision.as_str() {
        "permit" => true,
        "deny" => false,
        _ => return Err(bad("bad_request", "decision is permit or deny")),
    };
    let done = st
        .consent_registration
        .register(
            ConsentRequest {
                issuer: req.issuer,
                permit,
                purpose: req.purpose,
                data_categories: req.data_categories,
                holders: selector(req.holders),
                requesters: selector(req.requesters),
                valid_until: req.valid_until,
                registrar: req.registrar,
                method: req.method,
            },
            &k,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "credential": done.credential,
            "tx": done.tx.to_hex(),
            "recipients": done.recipients,
            "patient": k.reference(),
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeReq {
    issuer: String,
    patient: Patient,
    credential: String,
    #[serde(default)]
    reason: String,
}

async fn revoke(
    State(st): St,
    caller: Caller,
    b: Result<Json<RevokeReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.issuer)?;
    let k = keys(&st, req.patient).await?;
    let tx = st
        .consent_registration
        .revoke(&req.issuer, req.credential, req.reason, &k)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"tx": tx.to_hex()}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListReq {
    patient: Patient,
}

async fn list(
    State(st): St,
    b: Result<Json<ListReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = body(b)?;
    let k = keys(&st, req.patient).await?;
    let consents: Vec<Value> = st
        .consents
        .of_patient(&k.reference())
        .iter()
        .map(|s| {
            json!({"id": s.id, "issuer": s.issuer, "status": st.consents.status(s),
                        "credential": s.credential})
        })
        .collect();
    Ok(Json(
        json!({"patient": k.reference(), "consents": consents}),
    ))
}
