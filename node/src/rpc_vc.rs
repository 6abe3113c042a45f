//! RPC endpoints for credentials: issue (as a hosted DID), verify, publish, revoke, trust, the
//! organisation directory, and the same directory as FHIR `Organization` / `Endpoint` search
//! (IHE mCSD).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use knoop_did::knoop::time::to_rfc3339_ms;
use knoop_vc::proof::{sign, Cryptosuite, ProofOptions};
use knoop_vc::types::{claims, knoop_contexts, CREDENTIALS_V2, KNOOP_CONTEXT};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::credentials::{DirectoryEntry, Revocation, REVOCATION_CONTENT_TYPE, VC_CONTENT_TYPE};
use crate::rpc::{ApiError, RpcState};

type St = State<Arc<RpcState>>;

/// The URA naming system (Dutch national care-provider id) in FHIR.
const URA_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/ura";

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
        .route("/fhir/Organization", get(fhir_organizations))
        .route("/fhir/Endpoint", get(fhir_endpoints))
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

pub(crate) fn urn_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
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
    b: Result<Json<IssueReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    let subject_type = match req.type_.as_str() {
        "CareOrganizationCredential" => "CareOrganization",
        "HealthcareProfessionalCredential" => "HealthcareProfessional",
        t => return Err(bad(format!("unknown credential type {t}"))),
    };
    let mut subject = req.subject;
    let Some(obj) = subject.as_object_mut() else {
        return Err(bad("subject must be an object"));
    };
    obj.insert("type".into(), subject_type.into());
    let suite = match req.cryptosuite.as_deref() {
        None => Some(Cryptosuite::EddsaJcs2022),
        Some("jose") => None,
        Some(n) => {
            Some(Cryptosuite::from_name(n).ok_or_else(|| bad(format!("unknown cryptosuite {n}")))?)
        }
    };
    let now = knoop_gossip::tx::now_ms();
    let mut vc = json!({
        "@context": [CREDENTIALS_V2, KNOOP_CONTEXT],
        "id": urn_uuid(),
        "type": ["VerifiableCredential", req.type_],
        "issuer": req.issuer,
        "validFrom": to_rfc3339_ms(now),
        "credentialSubject": subject,
    });
    if let Some(u) = req.valid_until {
        vc["validUntil"] = Value::String(u);
    }
    claims(&vc).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "schema", e.to_string()))?;
    knoop_vc::model::check_credential(&vc, knoop_vc::Strictness::Issued)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))?;
    let contexts = knoop_contexts();
    let signed = st
        .dids
        .with_assertion_key(&req.issuer, |vm, key| match suite {
            Some(suite) => {
                let mut opts = ProofOptions::new(suite, vm);
                opts.created = Some(to_rfc3339_ms(now));
                sign(&vc, &opts, key, &contexts).map_err(|e| e.to_string())
            }
            None => knoop_vc::jose::sign(&vc, vm, key)
                .map(Value::String)
                .map_err(|e| e.to_string()),
        })?
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "proof", e))?;
    let mut out = json!({"credential": signed});
    if req.publish {
        let id = publish_doc(&st, &out["credential"], None).await?;
        out["published"] = json!(id);
    }
    Ok((StatusCode::CREATED, Json(out)))
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
    let lists = st.status_lists.prefetch(&[&req.credential]).await;
    let res = blocking(move || creds.verify(&req.credential, &lists)).await?;
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
    b: Result<Json<PublishReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    // Refuse what would not be indexed anyway (trust is decided by each reader).
    let creds = st.credentials.clone();
    let doc = req.credential.clone();
    let lists = st.status_lists.prefetch(&[&doc]).await;
    let check = blocking(move || creds.verify(&doc, &lists)).await?;
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
    b: Result<Json<Revocation>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let r = body(b)?;
    let bytes = serde_json::to_vec(&r).map_err(|e| bad(e.to_string()))?;
    let id = st
        .dids
        .publish_as(&r.issuer, REVOCATION_CONTENT_TYPE, bytes)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id.to_hex()}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresentReq {
    /// A DID hosted here, with an authentication key.
    holder: String,
    credentials: Vec<Value>,
    /// The verifier's nonce and its domain (audience).
    challenge: String,
    domain: String,
    /// Seconds the presentation stays valid (default 300).
    #[serde(default)]
    ttl_s: Option<u64>,
}

/// A presentation by `holder` (hosted here) of `credentials` for `challenge` and `domain`,
/// valid `ttl_s` seconds (at most a day). JOSE credentials travel enveloped (VC 2.0).
pub(crate) fn make_presentation(
    dids: &crate::did_ops::DidOps,
    holder: &str,
    credentials: Vec<Value>,
    challenge: &str,
    domain: &str,
    ttl_s: u64,
) -> Result<Value, ApiError> {
    if challenge.is_empty() || domain.is_empty() {
        return Err(bad("challenge and domain are required"));
    }
    let now = knoop_gossip::tx::now_ms();
    let expires = to_rfc3339_ms(now + ttl_s.min(86_400) * 1000);
    let contexts = knoop_contexts();
    let credentials: Vec<Value> = credentials
        .into_iter()
        .map(|c| match c {
            Value::String(jwt) => knoop_vc::jose::envelope(&jwt),
            c => c,
        })
        .collect();
    dids.with_key_for(
        holder,
        knoop_did::document::Relationship::Authentication,
        |vm, key| {
            knoop_vc::presentation::present(
                holder,
                vm,
                key,
                credentials,
                challenge,
                domain,
                &to_rfc3339_ms(now),
                Some(&expires),
                &contexts,
            )
        },
    )?
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "proof", e.to_string()))
}

async fn present(
    State(st): St,
    b: Result<Json<PresentReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    let vp = make_presentation(
        &st.dids,
        &req.holder,
        req.credentials,
        &req.challenge,
        &req.domain,
        req.ttl_s.unwrap_or(300),
    )?;
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
    let lists = st.status_lists.prefetch(&[&req.presentation]).await;
    let res = blocking(move || {
        creds.verify_presentation(&req.presentation, &req.challenge, &req.domain, &lists)
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

/// Service types a directory answer resolves for each organisation.
const ENDPOINT_TYPES: [&str; 2] = ["FHIR", "OAuth2Token"];

pub(crate) fn with_endpoints(st: &RpcState, e: &DirectoryEntry) -> Value {
    let mut endpoints = serde_json::Map::new();
    for t in ENDPOINT_TYPES {
        if let Ok(hit) = st.dids.state.endpoint(&e.did, t) {
            endpoints.insert(t.into(), hit.service_endpoint);
        }
    }
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["endpoints"] = Value::Object(endpoints);
    v
}

async fn directory(
    State(st): St,
    q: Result<Query<crate::credentials::Query>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let hits: Vec<Value> = st
        .credentials
        .directory(&q)
        .iter()
        .map(|e| with_endpoints(&st, e))
        .collect();
    Ok(Json(json!({"organizations": hits})))
}

/// A stable FHIR id for a DID.
fn fhir_id(did: &str) -> String {
    hex::encode(&sha2::Sha256::digest(did.as_bytes())[..16])
}

use sha2::Digest;

#[derive(Deserialize, Default)]
struct FhirOrgQuery {
    name: Option<String>,
    #[serde(rename = "address-city")]
    city: Option<String>,
    identifier: Option<String>,
    #[serde(rename = "_id")]
    id: Option<String>,
    #[serde(rename = "_count")]
    count: Option<usize>,
}

fn bundle(entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "entry": entries.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>(),
    })
}

fn organization_resource(st: &RpcState, e: &DirectoryEntry) -> Value {
    let id = fhir_id(&e.did);
    let has_fhir = st.dids.state.endpoint(&e.did, "FHIR").is_ok();
    json!({
        "resourceType": "Organization",
        "id": id,
        "identifier": [
            {"system": URA_SYSTEM, "value": e.ura},
            {"system": "urn:ietf:rfc:3986", "value": e.did},
        ],
        "active": true,
        "type": [{"text": e.organization_type}],
        "name": e.legal_name,
        "address": [{"city": e.city}],
        "endpoint": if has_fhir { json!([{"reference": format!("Endpoint/{id}-fhir")}]) } else { json!([]) },
    })
}

async fn fhir_organizations(
    State(st): St,
    q: Result<Query<FhirOrgQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let ura = match q.identifier.as_deref() {
        None => None,
        Some(i) => match i.split_once('|') {
            Some((URA_SYSTEM, v)) | Some(("", v)) => Some(v.to_owned()),
            Some((_, _)) => return Ok(Json(bundle(Vec::new()))),
            None => Some(i.to_owned()),
        },
    };
    let entries = st.credentials.directory(&crate::credentials::Query {
        name: q.name,
        city: q.city,
        ura,
        limit: q.count,
        ..Default::default()
    });
    let resources = entries
        .iter()
        .filter(|e| q.id.as_ref().is_none_or(|id| *id == fhir_id(&e.did)))
        .map(|e| organization_resource(&st, e))
        .collect();
    Ok(Json(bundle(resources)))
}

#[derive(Deserialize, Default)]
struct FhirEndpointQuery {
    organization: Option<String>,
}

async fn fhir_endpoints(
    State(st): St,
    q: Result<Query<FhirEndpointQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let wanted = q
        .organization
        .as_deref()
        .map(|o| o.trim_start_matches("Organization/").to_owned());
    let mut out = Vec::new();
    for e in st.credentials.directory(&crate::credentials::Query {
        limit: Some(1000),
        ..Default::default()
    }) {
        let id = fhir_id(&e.did);
        if wanted.as_ref().is_some_and(|w| *w != id) {
            continue;
        }
        if let Ok(hit) = st.dids.state.endpoint(&e.did, "FHIR") {
            out.push(json!({
                "resourceType": "Endpoint",
                "id": format!("{id}-fhir"),
                "status": "active",
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
                "name": format!("FHIR endpoint of {}", e.legal_name),
                "managingOrganization": {"reference": format!("Organization/{id}")},
                "payloadType": [{"text": "any"}],
                "address": hit.service_endpoint,
            }));
        }
    }
    Ok(Json(bundle(out)))
}
