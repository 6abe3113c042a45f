//! RPC endpoints for DIDs: resolve any supported method, create and change hosted `did:knoop`
//! DIDs, their keys, services and controllers, and look up service endpoints.

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use knoop_did::document::Relationship;
use knoop_did::knoop::services::LookupError;
use knoop_did::knoop::time::to_rfc3339;
use knoop_did::resolution::{ErrorCode, Representation, ResolutionResult, DID_RESOLUTION};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::state::RpcState;
use crate::identity::did_ops::{OpsError, ServiceSpec};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/v1/node", get(node_identity))
        .route("/v1/dids", post(create).get(list))
        .route("/v1/dids/{did}", get(resolve))
        .route("/v1/dids/{did}/history", get(history))
        .route("/v1/dids/{did}/keys", post(add_key))
        .route(
            "/v1/dids/{did}/keys/{fragment}",
            axum::routing::delete(remove_key),
        )
        .route("/v1/dids/{did}/keys/{fragment}/rotate", post(rotate))
        .route(
            "/v1/dids/{did}/services/{fragment}",
            put(set_service).delete(remove_service),
        )
        .route("/v1/dids/{did}/controllers", put(set_controllers))
        .route("/v1/dids/{did}/deactivate", post(deactivate))
        .route("/v1/dids/{did}/endpoints/{type}", get(endpoint))
}

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            OpsError::Deactivated(_) => {
                ApiError::new(StatusCode::GONE, "deactivated", e.to_string())
            }
            OpsError::NotHosted(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "not_hosted", e.to_string())
            }
            OpsError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.to_string())
            }
            OpsError::Rejected(t) => t.into(),
            OpsError::Keys(_) => {
                tracing::error!(error = %e, "keystore failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "keystore", e.to_string())
            }
            OpsError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the node is shutting down",
            ),
        }
    }
}

fn json_body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))
}

/// A path segment must be a did:knoop DID hosted or known here.
fn knoop_did(did: &str) -> Result<(), ApiError> {
    let d = knoop_did::url::Did::parse(did)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_did", e.to_string()))?;
    if d.method() != "knoop" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_did",
            "only did:knoop DIDs are managed by a node",
        ));
    }
    Ok(())
}

async fn node_identity(State(st): St) -> Json<Value> {
    Json(json!({
        "did": st.node_did,
        "peerId": st.peer_id,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateReq {
    #[serde(default)]
    services: Vec<ServiceSpec>,
    #[serde(default)]
    controllers: Vec<String>,
    /// Name this node's DID as the new DID's host (default true).
    #[serde(default)]
    hosted_here: Option<bool>,
}

async fn create(
    State(st): St,
    body: Result<Json<CreateReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_body(body)?;
    let host = body
        .hosted_here
        .unwrap_or(true)
        .then_some(st.node_did.as_str());
    let (did, v) = st
        .dids
        .create(&body.services, &body.controllers, host, None)
        .await?;
    let res = st.resolver.resolve(&did).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"did": did, "versionId": v.to_hex(), "resolution": res})),
    ))
}

async fn list(State(st): St) -> Result<Json<Value>, ApiError> {
    let hosted = st.dids.hosted()?;
    let web: serde_json::Map<String, Value> = hosted
        .iter()
        .filter_map(|d| Some((d.clone(), json!(st.web_dids.as_ref()?.web_did(d)?))))
        .collect();
    Ok(Json(
        json!({"hosted": hosted, "known": st.dids.state.len(), "did_web": web}),
    ))
}

async fn resolve(
    State(st): St,
    Path(did): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let Some(representation) = Representation::negotiate(accept) else {
        let res = ResolutionResult::error(
            ErrorCode::RepresentationNotSupported,
            "served: application/did-resolution, application/ld+json with the did-resolution \
             profile, application/json, application/did+ld+json, application/did+json",
        );
        return answer(&res, DID_RESOLUTION, None);
    };
    let input = match q {
        Some(q) if !q.is_empty() => format!("{did}?{q}"),
        _ => did,
    };
    let res = st.resolver.resolve(&input).await;
    match representation {
        Representation::Document(media) if res.error_code().is_none() => {
            answer(&res, media, res.did_document.as_ref())
        }
        Representation::Document(_) => answer(&res, DID_RESOLUTION, None),
        Representation::Result(media) => answer(&res, media, None),
    }
}

/// A resolution answer with the binding's status: the whole result, or `document` alone.
fn answer(res: &ResolutionResult, media: &'static str, document: Option<&Value>) -> Response {
    let status = StatusCode::from_u16(res.http_status()).unwrap_or(StatusCode::OK);
    let body = match document {
        Some(d) => d.clone(),
        None => serde_json::to_value(res).unwrap_or_default(),
    };
    (status, [(header::CONTENT_TYPE, media)], Json(body)).into_response()
}

async fn history(State(st): St, Path(did): Path<String>) -> Result<Json<Value>, ApiError> {
    knoop_did(&did)?;
    st.dids
        .state
        .with_history(&did, |h| {
            let chain: Vec<_> = h.chain().iter().map(|r| r.version).collect();
            let versions: Vec<Value> = h
                .all()
                .iter()
                .map(|r| {
                    json!({
                        "versionId": r.version.to_hex(),
                        "operation": r.op.name(),
                        "previous": r.op.previous().map(|p| p.to_hex()),
                        "signer": r.signer,
                        "lc": r.lc,
                        "signed": to_rfc3339(r.sigt),
                        "current": chain.last() == Some(&r.version),
                        "superseded": !chain.contains(&r.version),
                    })
                })
                .collect();
            Json(json!({"did": did, "versions": versions}))
        })
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "DID not known"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKeyReq {
    #[serde(default)]
    relationships: Option<Vec<String>>,
}

fn parse_rels(names: Option<Vec<String>>) -> Result<Vec<Relationship>, ApiError> {
    match names {
        None => Ok(crate::identity::did_ops::SIGNING_RELATIONSHIPS.to_vec()),
        Some(v) if v.is_empty() => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "relationships must not be empty",
        )),
        Some(v) => v
            .iter()
            .map(|n| {
                Relationship::from_name(n).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("unknown relationship {n}"),
                    )
                })
            })
            .collect(),
    }
}

async fn add_key(
    State(st): St,
    caller: Caller,
    Path(did): Path<String>,
    body: Result<Json<AddKeyReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    knoop_did(&did)?;
    caller.act_as(&st, &did)?;
    let rels = parse_rels(json_body(body)?.relationships)?;
    let (frag, v) = st.dids.add_key(&did, &rels).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": format!("{did}#{frag}"), "versionId": v.to_hex()})),
    ))
}

async fn remove_key(
    State(st): St,
    caller: Caller,
    Path((did, fragment)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    knoop_did(&did)?;
    caller.act_as(&st, &did)?;
    let v = st.dids.remove_key(&did, &fragment).await?;
    Ok(Json(json!({"versionId": v.to_hex()})))
}

async fn rotate(
    State(st): St,
    caller: Caller,
    Path((did, fragment)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    knoop_did(&did)?;
    caller.act_as(&st, &did)?;
    let (frag, v) = st.dids.rotate(&did, &fragment).await?;
    Ok(Json(json!({
        "id": format!("{did}#{frag}"),
        "retired": format!("{did}#{fragment}"),
        "versionId": v.to_hex(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceReq {
    #[serde(rename = "type")]
    type_: String,
    #[serde(rename = "serviceEndpoint")]
    endpoint: Value,
}

async fn set_service(
    State(st): St,
    caller: Caller,
    Path((did, fragment)): Path<(String, String)>,
    body: Result<Json<ServiceReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    knoop_did(&did)?;
    caller.act_as(&st, &did)?;
    let body = json_body(body)?;
    let spec = ServiceSpec {
        id: Some(fragment),
        type_: body.type_,
        endpoint: body.endpoint,
    };
    let v = st
        .dids
        .update(&did, move |d| {
            let s = spec.to_service(&d.id);
            match d.service.iter_mut().find(|x| x.id == s.id) {
                Some(x) => *x = s,
                None => d.service.push(s),
            }
            Ok(())
        })
        .await?;
    Ok(Json(json!({"versionId": v.to_hex()})))
}

async fn remove_service(
    State(st): St,
    caller: Caller,
    Path((did, fragment)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    knoop_did(&did)?;
    caller.act_as(&st, &did)?;
    let id = format!("{did}#{fragment}");
    let v = st
        .dids
        .update(&did, move |d| {
            let before = d.service.len();
            d.service.retain(|s| s.id != id);
            if d.service.len() == before {
                return Err(OpsError::Invalid(format!(
                    "{id} is not a service of the document"
                )));
            }
            Ok(())
        })
        .await?;
    Ok(Json(json!({"versionId": v.to_hex()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControllersReq {
    controllers: Vec<String>,
}

async fn set_controllers(
    State(st): St,
    caller: Caller,
    Path(did): Path<String>,
    body: Result<Json<ControllersReq>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    knoop_did(&did)?;
    caller.act_as(&st, &did)?;
    let c = json_body(body)?.controllers;
    let v = st
        .dids
        .update(&did, move |d| {
            d.controller = c;
            Ok(())
        })
        .await?;
    Ok(Json(json!({"versionId": v.to_hex()})))
}

async fn deactivate(
    State(st): St,
    caller: Caller,
    Path(did): Path<String>,
) -> Result<Json<Value>, ApiError> {
    knoop_did(&did)?;
    caller.act_as(&st, &did)?;
    let v = st.dids.deactivate(&did).await?;
    Ok(Json(json!({"versionId": v.to_hex()})))
}

async fn endpoint(
    State(st): St,
    Path((did, type_)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    knoop_did(&did)?;
    match st.dids.state.endpoint(&did, &type_) {
        Ok(hit) => Ok(Json(serde_json::to_value(hit).unwrap_or_default())),
        Err(e @ LookupError::TooDeep(_)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reference_loop",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            e.to_string(),
        )),
    }
}
