//! `GET /fhir/{resource_type}` on the public API (spec: `specs/data-fetch.md` §3): the bearer
//! token and the query go to the data proxy ([`crate::care::data_proxy`]); its answer comes
//! back as `application/fhir+json`, a refusal as an `OperationOutcome`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::care::data_proxy::{DataProxy, ProxyError};

pub fn routes<S>(proxy: Arc<DataProxy>) -> Router<S> {
    Router::new()
        .route("/fhir/{resource_type}", get(search))
        .with_state(proxy)
}

async fn search(
    State(proxy): State<Arc<DataProxy>>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match proxy
        .search(bearer(&headers), &resource_type, query.as_deref())
        .await
    {
        Ok(served) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/fhir+json")],
            Json(served.bundle),
        )
            .into_response(),
        Err(e) => outcome(status_of(&e), e.code(), &e.to_string()),
    }
}

fn status_of(e: &ProxyError) -> StatusCode {
    match e {
        ProxyError::NoToken | ProxyError::Expired => StatusCode::UNAUTHORIZED,
        ProxyError::NotServed(_) => StatusCode::NOT_FOUND,
        ProxyError::ParamNotAllowed(_) | ProxyError::ParamTooLong(_) => StatusCode::BAD_REQUEST,
        ProxyError::NotCovered(_) => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A FHIR error: an `OperationOutcome`.
fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        Json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}
