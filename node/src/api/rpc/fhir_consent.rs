//! Consent over FHIR on the RPC (spec: `specs/fhir-consent.md`): `Consent` create, read,
//! search and revoke (an update to `inactive`) for the hosted organisation `X-Tenant-ID`
//! names, as knoop consents on the network; and knooppunt's Mitz subscription interface
//! (`POST /mitz/Subscription`), answered from the network's consents. FHIR JSON in and out,
//! errors as `OperationOutcome` ([`crate::care::fhir_consent`], [`crate::care::subscriptions`]).

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::api::fhir_answer::{fhir, fhir_body, outcome, params};
use crate::api::rpc::state::RpcState;
use crate::care::consent::StoredConsent;
use crate::care::consent_registration::RegistrationError;
use crate::care::fhir_consent::{self, ConsentError};
use crate::care::nvi::{BSN_SYSTEM, URA_SYSTEM};
use crate::care::subscriptions;
use crate::directory::admin::Tenant;
use crate::directory::mcsd::Outcome;
use crate::identity::credentials::Query;

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/fhir/Consent", get(search).post(create))
        .route("/fhir/Consent/{id}", get(read).put(update))
        .route("/mitz/Subscription", post(subscribe))
        .route(
            "/mitz/Subscription/{id}",
            get(subscription).delete(unsubscribe),
        )
}

impl From<ConsentError> for Outcome {
    fn from(e: ConsentError) -> Self {
        Outcome::new(e.status, e.code, e.diagnostics)
    }
}

/// The hosted organisation named by `X-Tenant-ID` (`<URA system>|<URA>`).
fn tenant(st: &RpcState, caller: &Caller, headers: &HeaderMap) -> Result<Tenant, Outcome> {
    let h = headers
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Outcome::invalid(format!(
                "the X-Tenant-ID header ({URA_SYSTEM}|<URA>) is required"
            ))
        })?;
    let ura = match h.split_once('|') {
        Some((URA_SYSTEM, u)) if !u.is_empty() => u,
        _ => {
            return Err(Outcome::invalid(format!(
                "X-Tenant-ID must be {URA_SYSTEM}|<URA>"
            )))
        }
    };
    provider(st, caller, ura)
}

/// The hosted organisation with URA `ura`, if the caller may act as it.
fn provider(st: &RpcState, caller: &Caller, ura: &str) -> Result<Tenant, Outcome> {
    let t = st
        .admin_directory
        .tenant(ura)
        .map_err(|o| Outcome::new(403, "forbidden", o.diagnostics))?;
    caller
        .act_as(st, &t.did)
        .map_err(|r| Outcome::new(403, "forbidden", r.message))?;
    Ok(t)
}

fn did_of(st: &RpcState, ura: &str) -> Option<String> {
    st.credentials
        .directory(&Query {
            ura: Some(ura.to_owned()),
            ..Default::default()
        })
        .into_iter()
        .next()
        .map(|e| e.did)
}

fn as_fhir(st: &RpcState, s: &StoredConsent, bsn: Option<&str>) -> Option<Value> {
    fhir_consent::write(s, &st.consents.status(s), bsn, |did| {
        st.credentials.organisation(did).map(|e| e.ura)
    })
}

fn done(r: Result<Response, Outcome>) -> Response {
    r.unwrap_or_else(|o| outcome(&o))
}

fn with_location(mut resp: Response, location: &str) -> Response {
    if let Ok(h) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, h);
    }
    resp
}

/// `POST /fhir/Consent`: the consent or objection registered as the tenant.
async fn create(State(st): St, caller: Caller, headers: HeaderMap, body: Bytes) -> Response {
    done(
        async {
            let t = tenant(&st, &caller, &headers)?;
            let c = fhir_body(&headers, &body)?;
            let (bsn, req) = fhir_consent::read(&c, &t.did, &t.ura, |u| did_of(&st, u))?;
            let k = st
                .localisation
                .derive_blocking(BSN_SYSTEM.to_owned(), bsn.clone())
                .await
                .map_err(|e| Outcome::invalid(e.to_string()))?;
            let registered = st
                .consent_registration
                .register(req, &k)
                .await
                .map_err(|e| Outcome::new(422, "processing", e.to_string()))?;
            let id = registered.credential["id"].as_str().unwrap_or_default();
            let stored = st
                .consents
                .by_id(id)
                .ok_or_else(|| Outcome::new(500, "exception", "registered but not held"))?;
            let body = as_fhir(&st, &stored, Some(&bsn))
                .ok_or_else(|| Outcome::new(500, "exception", "not a consent credential"))?;
            let location = format!("Consent/{}", body["id"].as_str().unwrap_or_default());
            Ok(with_location(fhir(StatusCode::CREATED, &body), &location))
        }
        .await,
    )
}

/// `GET /fhir/Consent?patient:identifier=<BSN system>|<BSN>[&status=]`: the consents this node
/// holds about the patient.
async fn search(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    done(
        async {
            tenant(&st, &caller, &headers)?;
            let mut bsn = None;
            let mut status = None;
            for (k, v) in params(q) {
                match k.as_str() {
                    "patient:identifier" | "patient.identifier" => match v.split_once('|') {
                        Some((BSN_SYSTEM, b)) if !b.is_empty() => bsn = Some(b.to_owned()),
                        _ => {
                            return Err(Outcome::invalid(format!(
                                "patient:identifier is {BSN_SYSTEM}|<BSN>"
                            )))
                        }
                    },
                    "status" => status = Some(v),
                    "_format" => crate::directory::fhir_search::check_format(&v)?,
                    other => {
                        return Err(Outcome::invalid(format!(
                        "unknown search parameter {other} (supported: patient:identifier, status)"
                    )))
                    }
                }
            }
            let bsn = bsn.ok_or_else(|| Outcome::invalid("patient:identifier is required"))?;
            let k = st
                .localisation
                .derive_blocking(BSN_SYSTEM.to_owned(), bsn.clone())
                .await
                .map_err(|e| Outcome::invalid(e.to_string()))?;
            let found: Vec<Value> = st
                .consents
                .of_patient(&k.reference())
                .iter()
                .filter_map(|s| as_fhir(&st, s, Some(&bsn)))
                .filter(|c| status.as_deref().is_none_or(|w| c["status"] == w))
                .map(|c| {
                    json!({"fullUrl": format!("urn:uuid:{}", c["id"].as_str().unwrap_or_default()),
                           "resource": c, "search": {"mode": "match"}})
                })
                .collect();
            let mut b =
                json!({"resourceType": "Bundle", "type": "searchset", "total": found.len()});
            if !found.is_empty() {
                b["entry"] = json!(found);
            }
            Ok(fhir(StatusCode::OK, &b))
        }
        .await,
    )
}

fn by_id(st: &RpcState, id: &str) -> Result<StoredConsent, Outcome> {
    st.consents
        .by_id(&format!("urn:uuid:{id}"))
        .ok_or_else(|| Outcome::not_found(format!("Consent/{id} is not held here")))
}

/// `GET /fhir/Consent/[id]` (without the patient: the node does not know the BSN).
async fn read(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    done((|| {
        tenant(&st, &caller, &headers)?;
        let s = by_id(&st, &id)?;
        let c = as_fhir(&st, &s, None)
            .ok_or_else(|| Outcome::not_found(format!("Consent/{id} is not a consent")))?;
        Ok(fhir(StatusCode::OK, &c))
    })())
}

/// `PUT /fhir/Consent/[id]` with `status` inactive and the patient: the recording organisation
/// revokes its consent. Any other change is refused: a consent is replaced by revoking it and
/// recording a new one.
async fn update(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    done(
        async {
            let t = tenant(&st, &caller, &headers)?;
            let c = fhir_body(&headers, &body)?;
            if c["resourceType"] != "Consent" || c["id"] != id.as_str() {
                return Err(Outcome::invalid(format!("the body is Consent/{id}")));
            }
            let s = by_id(&st, &id)?;
            if s.issuer != t.did {
                return Err(Outcome::new(
                    403,
                    "forbidden",
                    "only the recording organisation changes a consent",
                ));
            }
            if c["status"] != "inactive" {
                return Err(Outcome::new(
                    422,
                    "business-rule",
                    "a consent is only revoked (status inactive); record a new one to change it",
                ));
            }
            let patient = &c["patient"]["identifier"];
            let bsn = match (patient["system"].as_str(), patient["value"].as_str()) {
                (Some(BSN_SYSTEM), Some(v)) => v.to_owned(),
                _ => {
                    return Err(Outcome::invalid(format!(
                        "Consent.patient.identifier is the BSN ({BSN_SYSTEM})"
                    )))
                }
            };
            let k = st
                .localisation
                .derive_blocking(BSN_SYSTEM.to_owned(), bsn.clone())
                .await
                .map_err(|e| Outcome::invalid(e.to_string()))?;
            st.consent_registration
                .revoke(&t.did, s.id.clone(), "revoked over FHIR".into(), &k)
                .await
                .map_err(|e| match e {
                    // Not among the consents about this patient.
                    RegistrationError::NotFound => {
                        Outcome::new(422, "business-rule", "the consent is about another patient")
                    }
                    e => Outcome::new(422, "processing", e.to_string()),
                })?;
            let s = by_id(&st, &id)?;
            let body = as_fhir(&st, &s, Some(&bsn))
                .ok_or_else(|| Outcome::new(500, "exception", "not a consent credential"))?;
            Ok(fhir(StatusCode::OK, &body))
        }
        .await,
    )
}

/// `POST /mitz/Subscription` (knooppunt's): the subscriber is the hosted organisation of
/// `providerid`; notifications go to `channel.endpoint` (or `[consent] notify_endpoint`).
async fn subscribe(State(st): St, caller: Caller, headers: HeaderMap, body: Bytes) -> Response {
    done(
        async {
            let s = fhir_body(&headers, &body)?;
            let req = subscriptions::read_request(&s)?;
            let t = provider(&st, &caller, &req.provider_ura)?;
            let endpoint = req
                .endpoint
                .clone()
                .or_else(|| st.notify_endpoint.clone())
                .ok_or_else(|| Outcome::invalid("Subscription.channel.endpoint is required (no consent.notify_endpoint is configured)"))?;
            let k = st
                .localisation
                .derive_blocking(BSN_SYSTEM.to_owned(), req.bsn.clone())
                .await
                .map_err(|e| Outcome::invalid(e.to_string()))?;
            let created = st
                .subscriptions
                .create(&t.did, &k.reference(), &req.provider_type, &endpoint, req.headers)
                .map_err(|e| Outcome::new(500, "exception", e))?;
            let mut answer = s.clone();
            answer["id"] = json!(created.id);
            answer["status"] = json!("active");
            answer["channel"]["endpoint"] = json!(endpoint);
            let location = format!("Subscription/{}", created.id);
            Ok(with_location(fhir(StatusCode::CREATED, &answer), &location))
        }
        .await,
    )
}

/// `GET /mitz/Subscription/[id]` by the subscribing organisation (`X-Tenant-ID`): its status.
async fn subscription(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    done((|| {
        let t = tenant(&st, &caller, &headers)?;
        let s = st.subscriptions.get(&id, &t.did).ok_or_else(|| {
            Outcome::not_found(format!("Subscription/{id} is not this organisation's"))
        })?;
        Ok(fhir(StatusCode::OK, &subscriptions::as_fhir(&s, &t.ura)))
    })())
}

/// `DELETE /mitz/Subscription/[id]` by the subscribing organisation (`X-Tenant-ID`).
async fn unsubscribe(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    done((|| {
        let t = tenant(&st, &caller, &headers)?;
        if st.subscriptions.delete(&id, &t.did) {
            Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(axum::body::Body::empty())
                .unwrap_or_default())
        } else {
            Err(Outcome::not_found(format!(
                "Subscription/{id} is not this organisation's"
            )))
        }
    })())
}
