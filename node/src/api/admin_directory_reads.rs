//! The read side of a hosted organisation's mCSD Administration Directory (spec:
//! `specs/mcsd.md` §1, §5): `metadata`, read, vread, search and `_history` of what one
//! organisation published, in FHIR JSON. The RPC serves it beside the writes
//! (`api/rpc/admin_directory.rs`); the public API serves it alone, so that outside update
//! clients (knooppunt's, an LRZa's) can read the directory as the national guide's
//! update-client CapabilityStatement asks.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::api::fhir_answer::{answer, fhir, form_params, outcome, params};
use crate::directory::admin::AdminDirectory;
use crate::directory::mcsd::{self, Outcome, Scope};
use crate::directory::view::DirectoryView;

/// What serves Administration Directories: the directories, and the FHIR base a client
/// reached one at.
pub trait DirectoryHost: Send + Sync + 'static {
    fn admin_directory(&self) -> &AdminDirectory;
    fn base(&self, headers: &HeaderMap, ura: &str) -> String;
}

/// The read routes under `/admin-directory/{ura}`.
pub fn routes<S: DirectoryHost>() -> Router<Arc<S>> {
    Router::new()
        .route("/admin-directory/{ura}/metadata", get(metadata::<S>))
        .route("/admin-directory/{ura}/_history", get(system_history::<S>))
        .route("/admin-directory/{ura}/{type}", get(search::<S>))
        .route(
            "/admin-directory/{ura}/{type}/_search",
            post(search_form::<S>),
        )
        .route(
            "/admin-directory/{ura}/{type}/_history",
            get(type_history::<S>),
        )
        .route("/admin-directory/{ura}/{type}/{id}", get(read::<S>))
        .route(
            "/admin-directory/{ura}/{type}/{id}/_history",
            get(instance_history::<S>),
        )
        .route(
            "/admin-directory/{ura}/{type}/{id}/_history/{vid}",
            get(vread::<S>),
        )
}

/// Answers `f` over the resources of the organisation with URA `ura`.
fn as_tenant<S: DirectoryHost>(
    st: &S,
    ura: &str,
    f: impl FnOnce(&DirectoryView, Scope) -> Result<Value, Outcome>,
) -> Response {
    let dir = st.admin_directory();
    match dir.tenant(ura) {
        Ok(t) => answer(f(dir.view(), Scope::Organisation(&t.did))),
        Err(o) => outcome(&o),
    }
}

async fn metadata<S: DirectoryHost>(
    State(st): State<Arc<S>>,
    Path(ura): Path<String>,
    headers: HeaderMap,
) -> Response {
    match st.admin_directory().tenant(&ura) {
        Ok(_) => fhir(
            StatusCode::OK,
            &mcsd::capability_statement(&st.base(&headers, &ura), true),
        ),
        Err(o) => outcome(&o),
    }
}

async fn search<S: DirectoryHost>(
    State(st): State<Arc<S>>,
    Path((ura, type_)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let base = st.base(&headers, &ura);
    as_tenant(st.as_ref(), &ura, |v, s| {
        mcsd::search(v, &base, &type_, &params(q), s)
    })
}

async fn search_form<S: DirectoryHost>(
    State(st): State<Arc<S>>,
    Path((ura, type_)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = match form_params(&headers, q, &body) {
        Ok(p) => p,
        Err(o) => return outcome(&o),
    };
    let base = st.base(&headers, &ura);
    as_tenant(st.as_ref(), &ura, |v, s| {
        mcsd::search(v, &base, &type_, &p, s)
    })
}

async fn read<S: DirectoryHost>(
    State(st): State<Arc<S>>,
    Path((ura, type_, id)): Path<(String, String, String)>,
) -> Response {
    as_tenant(st.as_ref(), &ura, |v, s| mcsd::read(v, &type_, &id, s))
}

async fn vread<S: DirectoryHost>(
    State(st): State<Arc<S>>,
    Path((ura, type_, id, vid)): Path<(String, String, String, String)>,
) -> Response {
    as_tenant(st.as_ref(), &ura, |v, s| {
        mcsd::vread(v, &type_, &id, &vid, s)
    })
}

async fn system_history<S: DirectoryHost>(
    State(st): State<Arc<S>>,
    Path(ura): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let base = st.base(&headers, &ura);
    as_tenant(st.as_ref(), &ura, |v, s| {
        mcsd::history(v, &base, None, None, &params(q), s)
    })
}

async fn type_history<S: DirectoryHost>(
    State(st): State<Arc<S>>,
    Path((ura, type_)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let base = st.base(&headers, &ura);
    as_tenant(st.as_ref(), &ura, |v, s| {
        mcsd::history(v, &base, Some(&type_), None, &params(q), s)
    })
}

async fn instance_history<S: DirectoryHost>(
    State(st): State<Arc<S>>,
    Path((ura, type_, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let base = st.base(&headers, &ura);
    as_tenant(st.as_ref(), &ura, |v, s| {
        mcsd::history(v, &base, Some(&type_), Some(&id), &params(q), s)
    })
}
