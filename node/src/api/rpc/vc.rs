//! RPC endpoints for credentials: issue (as a hosted DID), verify, publish, revoke, trust, and
//! the organisation directory (as FHIR: `fhir.rs`).

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::state::RpcState;
use crate::identity::credentials::{Revocation, REVOCATION_CONTENT_TYPE, VC_CONTENT_TYPE};
use crate::identity::issuing::{self, CredentialRequest, IssueError};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/v1/credentials", post(issue))
        .route("/v1/credentials/verify", post(verify))
        .route("/v1/credentials/publish", post(publish))
        .route("/v1/credentials/revoke", post(revoke))
        .route("/v1/presentations", post(present))
        .route("/v1/presentations/verify", post(verify_presentation))
        .route("/v1/trust", get(trust_list))
        .route("/v1/trust/{type}/{issuer}", put(trust).delete(untrust))
        .route("/v1/directory", get(directory))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", msg)
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| bad(e.body_text()))
}

/// Runs a verification (JSON-LD work: milliseconds) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "verifier task",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueReq {
    /// A DID hosted here, with an assertionMethod key.
    issuer: String,
    /// `CareOrganizationCredential` or `HealthcareProfessionalCredential`.
    #[serde(rename = "type")]
    type_: String,
    /// The claims, with `id` the subject's DID (`type` is filled in).
    subject: Value,
    #[serde(default, rename = "validUntil")]
    valid_until: Option<String>,
    /// `eddsa-jcs-2022` (default) or `eddsa-rdfc-2022`; or `jose` for a `vc+jwt` (EdDSA).
    #[serde(default)]
    cryptosuite: Option<String>,
    /// Also publish it on the network (for organisation credentials).
    #[serde(default)]
    publish: bool,
}

async fn issue(
    State(st): St,
    caller: Caller,
    b: Result<Json<IssueReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.issuer)?;
    if req.publish {
        // Published as the node (publish_doc's default signer).
        caller.act_as(&st, &st.node_did)?;
    }
    let signed = issuing::issue(
        &st.dids,
        CredentialRequest {
            issuer: req.issuer,
            type_: req.type_,
            subject: req.subject,
            valid_until: req.valid_until,
            cryptosuite: req.cryptosuite,
        },
        &st.status_hosting,
    )?;
    let mut out = json!({"credential": signed});
    if req.publish {
        let id = publish_doc(&st, &out["credential"], None).await?;
        out["published"] = json!(id);
    }
    Ok((StatusCode::CREATED, Json(out)))
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        if let IssueError::Ops(o) = e {
            return o.into();
        }
        let code = match &e {
            IssueError::Schema(_) => "schema",
            IssueError::Malformed(_) => "malformed",
            IssueError::Proof(_) => "proof",
            _ => "bad_request",
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyReq {
    credential: Value,
}

async fn verify(
    State(st): St,
    b: Result<Json<VerifyReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = body(b)?;
    let creds = st.credentials.clone();
    let fetched = st.prefetch.fetch(&[&req.credential]).await;
    let res = blocking(move || creds.verify(&req.credential, &fetched)).await?;
    Ok(Json(match res {
        Ok(v) => json!({
            "valid": true,
            "issuer": v.issuer,
            "id": v.id,
            "type": v.claims.type_name(),
            "types": v.claims.types(),
            "subject": v.claims.subject(),
            "cryptosuite": v.securing.name(),
            "verificationMethod": v.securing.verification_method(),
        }),
        Err(e) => json!({"valid": false, "code": e.code(), "reason": e.to_string()}),
    }))
}

async fn publish_doc(
    st: &RpcState,
    credential: &Value,
    signer: Option<String>,
) -> Result<String, ApiError> {
    let bytes = serde_json::to_vec(credential).map_err(|e| bad(e.to_string()))?;
    let signer = signer.unwrap_or_else(|| st.node_did.clone());
    let id = st.dids.publish_as(&signer, VC_CONTENT_TYPE, bytes).await?;
    Ok(id.to_hex())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishReq {
    credential: Value,
    /// A hosted DID to sign the transaction as (default: the node's DID).
    #[serde(default)]
    signer: Option<String>,
}

async fn publish(
    State(st): St,
    caller: Caller,
    b: Result<Json<PublishReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, req.signer.as_deref().unwrap_or(&st.node_did))?;
    // Refuse what would not be indexed anyway (trust is decided by each reader).
    let creds = st.credentials.clone();
    let doc = req.credential.clone();
    let fetched = st.prefetch.fetch(&[&doc]).await;
    let check = blocking(move || creds.verify(&doc, &fetched)).await?;
    if let Err(e) = check {
        if e.code() != "untrusted_issuer" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                e.code(),
                e.to_string(),
            ));
        }
    }
    let id = publish_doc(&st, &req.credential, req.signer).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

async fn revoke(
    State(st): St,
    caller: Caller,
    b: Result<Json<Revocation>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let r = body(b)?;
    caller.act_as(&st, &r.issuer)?;
    let bytes = serde_json::to_vec(&r).map_err(|e| bad(e.to_string()))?;
    let id = st
        .dids
        .publish_as(&r.issuer, REVOCATION_CONTENT_TYPE, bytes)
        .await?;
    // The same revocation in the issuer's status list, for verifiers outside the network.
    let lists = st.status_hosting.clone();
    let (issuer, credential) = (r.issuer.clone(), r.credential.clone());
    let in_list = blocking(move || {
        lists.revoke(&issuer, &credential).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })
    })
    .await??;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id.to_hex(), "status_list": in_list})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresentReq {
    /// A DID hosted here, with an authentication key.
    holder: String,
    credentials: Vec<Value>,
    /// The verifier's nonce (required for `ldp`; the JWT's `nonce` for `jwt`) and its domain
    /// (for `jwt`: the audience, `aud`).
    #[serde(default)]
    challenge: Option<String>,
    domain: String,
    /// Seconds the presentation stays valid (default 300).
    #[serde(default)]
    ttl_s: Option<u64>,
    /// `ldp` (default: JSON with a Data Integrity proof) or `jwt` (a VC 1.1 presentation JWT,
    /// the assertion of an RFC 7523 token request).
    #[serde(default)]
    format: Option<String>,
}

async fn present(
    State(st): St,
    caller: Caller,
    b: Result<Json<PresentReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.holder)?;
    let ttl = req.ttl_s.unwrap_or(300);
    let vp = match req.format.as_deref() {
        None | Some("ldp") => issuing::present(
            &st.dids,
            &req.holder,
            req.credentials,
            req.challenge.as_deref().unwrap_or_default(),
            &req.domain,
            ttl,
        )?,
        Some("jwt") => Value::String(issuing::present_jwt(
            &st.dids,
            &req.holder,
            req.credentials,
            &req.domain,
            req.challenge.as_deref(),
            ttl,
        )?),
        Some(_) => {
            return Err(issuing::IssueError::BadRequest("format must be ldp or jwt".into()).into())
        }
    };
    Ok((StatusCode::CREATED, Json(json!({"presentation": vp}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyPresentationReq {
    presentation: Value,
    challenge: String,
    domain: String,
}

async fn verify_presentation(
    State(st): St,
    b: Result<Json<VerifyPresentationReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = body(b)?;
    let creds = st.credentials.clone();
    let fetched = st.prefetch.fetch(&[&req.presentation]).await;
    let res = blocking(move || {
        creds.verify_presentation(&req.presentation, &req.challenge, &req.domain, &fetched)
    })
    .await?;
    Ok(Json(match res {
        Ok(p) => json!({
            "valid": true,
            "holder": p.holder,
            "credentials": p.credentials.iter().map(|c| json!({
                "id": c.id, "issuer": c.issuer, "type": c.claims.type_name(), "subject": c.claims.subject(),
            })).collect::<Vec<_>>(),
        }),
        Err(e) => json!({"valid": false, "code": e.code(), "reason": e.to_string()}),
    }))
}

async fn trust_list(State(st): St) -> Json<Value> {
    Json(json!({"trusted": st.credentials.trust().0}))
}

async fn trust(
    State(st): St,
    Path((type_, issuer)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    st.credentials
        .set_trust(&type_, &issuer, true)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Json(json!({"trusted": st.credentials.trust().0})))
}

async fn untrust(
    State(st): St,
    Path((type_, issuer)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    st.credentials
        .set_trust(&type_, &issuer, false)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Json(json!({"trusted": st.credentials.trust().0})))
}

async fn directory(
    State(st): St,
    q: Result<Query<crate::identity::credentials::Query>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    Ok(Json(json!({"organizations": st.directory.search(&q)})))
}
