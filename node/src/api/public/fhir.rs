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
        Err(e) => {
            let mut resp = outcome(status_of(&e), e.code(), &e.to_string());
            if let Some(challenge) = challenge_of(&e) {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            resp
        }
    }
}

/// The bearer challenge (RFC 6750 §3): none of the error codes for a request without a token
/// (§3.1), `invalid_token` for an unknown or expired one, `insufficient_scope` for a resource
/// type outside the grant.
fn challenge_of(e: &ProxyError) -> Option<&'static str> {
    match e {
        ProxyError::NoToken => Some("Bearer realm=\"knoop\""),
        ProxyError::Expired => Some("Bearer realm=\"knoop\", error=\"invalid_token\""),
        ProxyError::NotCovered(_) => Some("Bearer realm=\"knoop\", error=\"insufficient_scope\""),
        _ => None,
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
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        Json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        })),
    )
        .into_response()
}

/// The bearer token of `Authorization` (RFC 6750 §2.1; the scheme is case-insensitive,
/// RFC 9110 §11.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for (value, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            assert_eq!(bearer(&h), want, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(
            challenge_of(&ProxyError::NoToken),
            Some("Bearer realm=\"knoop\"")
        );
        assert!(challenge_of(&ProxyError::Expired)
            .is_some_and(|c| c.contains("error=\"invalid_token\"")));
        assert!(challenge_of(&ProxyError::NotCovered("Condition".into()))
            .is_some_and(|c| c.contains("error=\"insufficient_scope\"")));
        assert_eq!(challenge_of(&ProxyError::ParamTooLong("code".into())), None);
    }
}
