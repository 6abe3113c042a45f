//! knooppunt's NVI interface on the RPC (spec: `specs/nvi.md`): `List` registration (plain and
//! in a transaction Bundle), search (`GET` and `POST _search`), read by id, and delete by id and
//! by parameters, with `X-Tenant-ID`; FHIR JSON in and out, errors as `OperationOutcome`
//! ([`crate::care::nvi`]).

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::api::rpc::fhir::fhir;
use crate::api::rpc::state::RpcState;
use crate::care::nvi::NviError;

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/nvi", post(register_bundle))
        .route("/nvi/List", post(register).get(search).delete(delete))
        .route("/nvi/List/_search", post(search_form))
        .route("/nvi/List/{id}", get(read).delete(delete_by_id))
}

fn outcome(e: NviError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    fhir(status, &e.resource())
}

/// The hosted organisation of `X-Tenant-ID`, if the caller may act as it.
fn tenant(
    st: &RpcState,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<(String, String), NviError> {
    let t = st
        .nvi
        .tenant(headers.get("x-tenant-id").and_then(|v| v.to_str().ok()))?;
    caller.act_as(st, &t.0).map_err(|r| NviError {
        status: 403,
        code: "forbidden",
        diagnostics: r.message,
    })?;
    Ok(t)
}

fn json_body(body: &Bytes) -> Result<Value, NviError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| NviError {
            status: 400,
            code: "structure",
            diagnostics: "the body must be a FHIR JSON resource".into(),
        })
}

fn params(text: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn register(State(st): St, caller: Caller, headers: HeaderMap, body: Bytes) -> Response {
    let done = async {
        let t = tenant(&st, &caller, &headers)?;
        st.nvi.register(&t, &json_body(&body)?).await
    };
    match done.await {
        Ok(list) => {
            let mut resp = fhir(StatusCode::CREATED, &list);
            if let Ok(v) =
                HeaderValue::from_str(&format!("List/{}", list["id"].as_str().unwrap_or_default()))
            {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Err(e) => outcome(e),
    }
}

async fn register_bundle(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let done = async {
        let t = tenant(&st, &caller, &headers)?;
        st.nvi.register_bundle(&t, &json_body(&body)?).await
    };
    match done.await {
        Ok(b) => fhir(StatusCode::OK, &b),
        Err(e) => outcome(e),
    }
}

async fn search(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let done = async {
        let t = tenant(&st, &caller, &headers)?;
        st.nvi
            .search(&t, &params(q.unwrap_or_default().as_bytes()))
            .await
    };
    match done.await {
        Ok(b) => fhir(StatusCode::OK, &b),
        Err(e) => outcome(e),
    }
}

async fn search_form(State(st): St, caller: Caller, headers: HeaderMap, body: Bytes) -> Response {
    let done = async {
        let t = tenant(&st, &caller, &headers)?;
        st.nvi.search(&t, &params(&body)).await
    };
    match done.await {
        Ok(b) => fhir(StatusCode::OK, &b),
        Err(e) => outcome(e),
    }
}

async fn delete(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let done = async {
        let t = tenant(&st, &caller, &headers)?;
        st.nvi
            .delete(&t, &params(q.unwrap_or_default().as_bytes()))
            .await
    };
    match done.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => outcome(e),
    }
}

/// `GET /nvi/List/{id}`: one of the tenant's registrations.
async fn read(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match tenant(&st, &caller, &headers).and_then(|t| st.nvi.read(&t, &id)) {
        Ok(list) => fhir(StatusCode::OK, &list),
        Err(e) => outcome(e),
    }
}

/// `DELETE /nvi/List/{id}`: withdraws one of the tenant's registrations.
async fn delete_by_id(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let done = async {
        let t = tenant(&st, &caller, &headers)?;
        st.nvi.delete_by_id(&t, &id).await
    };
    match done.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => outcome(e),
    }
}
