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
use serde_json::json;

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

/// `GET /fhir/metadata`: the Query Directory's CapabilityStatement, with the other resources
/// served under the same base (consents, `specs/fhir-consent.md`; the audit log,
/// `specs/audit.md`).
async fn metadata(headers: HeaderMap) -> Response {
    let mut cs = mcsd::capability_statement(&base(&headers), false);
    if let Some(resources) = cs["rest"][0]["resource"].as_array_mut() {
        resources.push(json!({
            "type": "Consent",
            "profile": "https://profiles.ihe.net/ITI/PCF/StructureDefinition/IHE.PCF.consentIntermediate",
            "documentation": "X-Tenant-ID names the hosted organisation; update only revokes (status inactive)",
            "interaction": [{"code": "create"}, {"code": "read"}, {"code": "update"},
                            {"code": "search-type"}],
            "searchParam": [{"name": "patient", "type": "reference",
                             "documentation": "patient:identifier=<BSN system>|<BSN>, required"},
                            {"name": "status", "type": "token"}],
        }));
        resources.push(json!({
            "type": "AuditEvent",
            "documentation": "this node's audit log; paged by after (sequence) and limit",
            "interaction": [{"code": "search-type"}],
        }));
    }
    fhir(StatusCode::OK, &cs)
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
