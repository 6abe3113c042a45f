//! RPC endpoints for consent (spec: `specs/consent-localisation.md` §5, §10): register a consent
//! or objection as a `PatientConsentCredential` sent privately to the patient's holder nodes,
//! revoke it, list what this node holds about a patient. Identifiers only in request bodies.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use knoop_did::knoop::time::to_rfc3339_ms;
use knoop_vc::proof::{sign, Cryptosuite, ProofOptions};
use knoop_vc::types::{claims, knoop_contexts, unsigned, Claims, PatientConsent, Selector};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::consent::{ConsentRevocation, CONSENT_CONTENT_TYPE};
use crate::credentials::{Revocation, REVOCATION_CONTENT_TYPE};
use crate::rpc::{ApiError, RpcState};
use crate::rpc_localisation::{body, keys, Patient};

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

async fn register(
    State(st): St,
    b: Result<Json<RegisterReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    let k = keys(&st, req.patient).await?;
    let network = st
        .localisation
        .network_id()
        .ok_or_else(|| bad("not_configured", "localisation is not configured"))?
        .to_owned();
    let permit = match req.decision.as_str() {
        "permit" => true,
        "deny" => false,
        _ => return Err(bad("bad_request", "decision is permit or deny")),
    };
    let c = PatientConsent {
        patient: k.reference(),
        permit,
        purpose: req.purpose,
        data_categories: req.data_categories,
        holders: selector(req.holders),
        requesters: selector(req.requesters),
        registrar: req.registrar,
        method: req.method,
        network,
    };
    let now = knoop_gossip::tx::now_ms();
    let vc = unsigned(
        &crate::rpc_vc::urn_uuid(),
        &req.issuer,
        &Claims::PatientConsent(c),
        &to_rfc3339_ms(now),
        req.valid_until.as_deref(),
    );
    claims(&vc).map_err(|e| bad("schema", e.to_string()))?;
    let contexts = knoop_contexts();
    let vc = st
        .dids
        .with_assertion_key(&req.issuer, |vm, key| {
            let mut opts = ProofOptions::new(Cryptosuite::EddsaJcs2022, vm);
            opts.created = Some(to_rfc3339_ms(now));
            sign(&vc, &opts, key, &contexts)
        })?
        .map_err(|e| bad("proof", e.to_string()))?;
    // Check it as any holder will (a trusted issuer, a valid credential) before sending it.
    let consents = st.consents.clone();
    let (check_vc, issuer) = (vc.clone(), req.issuer.clone());
    tokio::task::spawn_blocking(move || consents.ingest(&check_vc, &issuer, Vec::new()))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "verify"))?
        .map_err(|e| bad("consent_refused", e))?;
    let mut recipients = st.localisation.holder_nodes(&k);
    recipients.push(st.node_did.clone());
    let bytes = serde_json::to_vec(&vc).map_err(|e| bad("bad_request", e.to_string()))?;
    let tx = st
        .private
        .send_with(
            &req.issuer,
            recipients.clone(),
            CONSENT_CONTENT_TYPE,
            bytes,
            Some(*k.k_pat),
        )
        .await
        .map_err(|e| bad("send", e.to_string()))?;
    st.consents
        .ingest(&vc, &req.issuer, recipients.clone())
        .map_err(|e| bad("consent_refused", e))?;
    // A pointer in the patient's slots, for holders that come later.
    st.localisation
        .point_to(&k, &tx)
        .await
        .map_err(|e| bad("pointer", e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"credential": vc, "tx": tx.to_hex(), "recipients": recipients,
                    "patient": k.reference()}),
        ),
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
    b: Result<Json<RevokeReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    let k = keys(&st, req.patient).await?;
    let reference = k.reference();
    let stored = st
        .consents
        .of_patient(&reference)
        .into_iter()
        .find(|s| s.id == req.credential)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such consent here"))?;
    let mut recipients = stored.recipients.clone();
    recipients.extend(st.localisation.holder_nodes(&k));
    recipients.push(st.node_did.clone());
    let revocation = Revocation {
        credential: req.credential,
        issuer: req.issuer.clone(),
        reason: req.reason,
    };
    let body = ConsentRevocation {
        patient: reference.clone(),
        revocation: revocation.clone(),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| bad("bad_request", e.to_string()))?;
    let tx = st
        .private
        .send_with(
            &req.issuer,
            recipients,
            REVOCATION_CONTENT_TYPE,
            bytes,
            Some(*k.k_pat),
        )
        .await
        .map_err(|e| bad("send", e.to_string()))?;
    st.consents
        .revoke(&reference, &revocation, &req.issuer)
        .map_err(|e| bad("bad_request", e))?;
    st.localisation
        .point_to(&k, &tx)
        .await
        .map_err(|e| bad("pointer", e.to_string()))?;
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
