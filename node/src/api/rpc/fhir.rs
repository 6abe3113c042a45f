//! The mCSD Query Directory on the RPC (spec: `specs/mcsd.md`): `GET /fhir/metadata`, read,
//! vread, search (`GET` and `POST _search`) with `_include` / `_revinclude`, and `_history`
//! over every directory resource type of the whole network, in FHIR JSON
//! (`application/fhir+json`), errors as `OperationOutcome` ([`crate::directory::mcsd`]). The
//! helpers at the bottom serve the Administration Directories too.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub(crate) use crate::api::fhir_answer::{
    answer, fhir, form_params, outcome, params, version_headers,
};
use crate::api::rpc::state::RpcState;
use crate::directory::mcsd::{self, Scope};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/_history", get(system_history))
        .route("/fhir/{type}", get(search))
        .route("/fhir/{type}/_search", post(search_form))
        .route("/fhir/{type}/_history", get(type_history))
        .route("/fhir/{type}/{id}", get(read))
        .route("/fhir/{type}/{id}/_history", get(instance_history))
        .route("/fhir/{type}/{id}/_history/{vid}", get(vread))
}

/// The FHIR base as the client called it (the RPC's `Host`) with `path` after it.
pub(crate) fn base_url(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{path}")
}

fn base(headers: &HeaderMap) -> String {
    base_url(headers, "/fhir")
}

async fn metadata(headers: HeaderMap) -> Response {
    fhir(
        StatusCode::OK,
        &mcsd::capability_statement(&base(&headers), false),
    )
}

async fn search(
    State(st): St,
    Path(type_): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(mcsd::search(
        st.admin_directory.view(),
        &base(&headers),
        &type_,
        &params(q),
        Scope::Network,
    ))
}

async fn search_form(
    State(st): St,
    Path(type_): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = match form_params(&headers, q, &body) {
        Ok(p) => p,
        Err(o) => return outcome(&o),
    };
    answer(mcsd::search(
        st.admin_directory.view(),
        &base(&headers),
        &type_,
        &p,
        Scope::Network,
    ))
}

async fn read(State(st): St, Path((type_, id)): Path<(String, String)>) -> Response {
    answer(mcsd::read(
        st.admin_directory.view(),
        &type_,
        &id,
        Scope::Network,
    ))
}

async fn vread(State(st): St, Path((type_, id, vid)): Path<(String, String, String)>) -> Response {
    answer(mcsd::vread(
        st.admin_directory.view(),
        &type_,
        &id,
        &vid,
        Scope::Network,
    ))
}

async fn system_history(State(st): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    answer(mcsd::history(
        st.admin_directory.view(),
        &base(&headers),
        None,
        None,
        &params(q),
        Scope::Network,
    ))
}

async fn type_history(
    State(st): St,
    Path(type_): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(mcsd::history(
        st.admin_directory.view(),
        &base(&headers),
        Some(&type_),
        None,
        &params(q),
        Scope::Network,
    ))
}

async fn instance_history(
    State(st): St,
    Path((type_, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(mcsd::history(
        st.admin_directory.view(),
        &base(&headers),
        Some(&type_),
        Some(&id),
        &params(q),
        Scope::Network,
    ))
}
