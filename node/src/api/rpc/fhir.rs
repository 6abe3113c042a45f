//! The mCSD Query Directory on the RPC (spec: `specs/mcsd.md`): `GET /fhir/metadata`, search
//! and read of `Organization` and `Endpoint`, in FHIR JSON (`application/fhir+json`), errors as
//! `OperationOutcome` ([`crate::directory::mcsd`]).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::api::rpc::state::RpcState;
use crate::directory::mcsd::{self, Outcome, Params, FHIR_JSON};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/Organization", get(organizations))
        .route("/fhir/Organization/{id}", get(organization))
        .route("/fhir/Endpoint", get(endpoints))
        .route("/fhir/Endpoint/{id}", get(endpoint))
}

/// A FHIR JSON answer (`application/fhir+json`), for every FHIR route of the RPC.
pub(crate) fn fhir(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

fn answer(r: Result<Value, Outcome>) -> Response {
    match r {
        Ok(v) => fhir(StatusCode::OK, &v),
        Err(o) => fhir(
            StatusCode::from_u16(o.status).unwrap_or(StatusCode::BAD_REQUEST),
            &o.resource(),
        ),
    }
}

/// The FHIR base as the client called it (the RPC's `Host`).
fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/fhir")
}

fn params(q: Option<String>) -> Params {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn metadata(headers: HeaderMap) -> Response {
    fhir(StatusCode::OK, &mcsd::capability_statement(&base(&headers)))
}

async fn organizations(State(st): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    answer(mcsd::search_organizations(
        &st.directory,
        &base(&headers),
        &params(q),
    ))
}

async fn endpoints(State(st): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    answer(mcsd::search_endpoints(
        &st.directory,
        &base(&headers),
        &params(q),
    ))
}

async fn organization(State(st): St, Path(id): Path<String>) -> Response {
    answer(mcsd::read_organization(&st.directory, &id))
}

async fn endpoint(State(st): St, Path(id): Path<String>) -> Response {
    answer(mcsd::read_endpoint(&st.directory, &id))
}
