//! The mCSD Query Directory on the RPC (spec: `specs/mcsd.md`): `GET /fhir/metadata`, read,
//! vread, search (`GET` and `POST _search`) with `_include` / `_revinclude`, and `_history`
//! over every directory resource type of the whole network, in FHIR JSON
//! (`application/fhir+json`), errors as `OperationOutcome` ([`crate::directory::mcsd`]). The
//! helpers at the bottom serve the Administration Directories too.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::api::rpc::state::RpcState;
use crate::directory::mcsd::{self, Outcome, Params, Scope, FHIR_JSON};

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

/// A FHIR JSON answer (`application/fhir+json`), for every FHIR route of the RPC.
pub(crate) fn fhir(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

/// The `OperationOutcome` of `o` with its status.
pub(crate) fn outcome(o: &Outcome) -> Response {
    fhir(
        StatusCode::from_u16(o.status).unwrap_or(StatusCode::BAD_REQUEST),
        &o.resource(),
    )
}

/// A resource or bundle with 200, or the outcome.
pub(crate) fn answer(r: Result<Value, Outcome>) -> Response {
    match r {
        Ok(v) => {
            let mut resp = fhir(StatusCode::OK, &v);
            version_headers(&mut resp, &v);
            resp
        }
        Err(o) => outcome(&o),
    }
}

/// `ETag` and `Last-Modified` of a resource with `meta` (R4 §3.1.0.5).
pub(crate) fn version_headers(resp: &mut Response, r: &Value) {
    if r["resourceType"] == "Bundle" {
        return;
    }
    if let Some(v) = r["meta"]["versionId"].as_str() {
        if let Ok(h) = HeaderValue::from_str(&format!("W/\"{v}\"")) {
            resp.headers_mut().insert(header::ETAG, h);
        }
    }
    let modified = r["meta"]["lastUpdated"]
        .as_str()
        .and_then(crate::directory::fhir_search::instant_ms)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| httpdate(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)));
    if let Some(Ok(h)) = modified.map(|m| HeaderValue::from_str(&m)) {
        resp.headers_mut().insert(header::LAST_MODIFIED, h);
    }
}

/// An HTTP date (RFC 9110 §5.6.7, IMF-fixdate).
fn httpdate(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let s = knoop_did::knoop::time::to_rfc3339(secs * 1000);
    let (y, m, d) = (&s[0..4], &s[5..7], &s[8..10]);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][m.parse::<usize>().unwrap_or(1).saturating_sub(1).min(11)];
    format!("{weekday}, {d} {month} {y} {} GMT", &s[11..19])
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

pub(crate) fn params(q: Option<String>) -> Params {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The parameters of a `POST [type]/_search` form body and its query string (R4 §3.1.1.1).
pub(crate) fn form_params(
    headers: &HeaderMap,
    q: Option<String>,
    body: &Bytes,
) -> Result<Params, Outcome> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(Outcome::new(
            415,
            "not-supported",
            "a _search body is application/x-www-form-urlencoded",
        ));
    }
    let mut p = params(q);
    p.extend(url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    Ok(p)
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

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_are_imf_fixdate() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(super::httpdate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
