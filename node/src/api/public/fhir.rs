//! `GET /fhir/{resource_type}` and `GET /fhir/{resource_type}/{id}` on the public API (spec:
//! `specs/data-fetch.md` §3): the access
//! token (`Bearer`, or `DPoP` with its proof), the URL and the query go to the data proxy
//! ([`crate::care::data_proxy`]); its answer comes back as `application/fhir+json`, a refusal
//! as an `OperationOutcome` with the RFC 6750 / RFC 9449 challenge.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::api::public::oauth::{dpop_proof, request_url, with_nonce};
use crate::care::data_proxy::{DataProxy, Presented, ProxyError};
use crate::care::dpop::DpopError;

pub fn routes<S>(proxy: Arc<DataProxy>) -> Router<S> {
    Router::new()
        .route("/fhir/{resource_type}", get(search))
        .route("/fhir/{resource_type}/{id}", get(read).put(update))
        .with_state(proxy)
}

async fn search(
    State(proxy): State<Arc<DataProxy>>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let url = url_of(&proxy, &headers, &format!("/fhir/{resource_type}"));
    let res = match presented(&headers, &url) {
        Ok(p) => {
            proxy
                .search(p, &resource_type, None, query.as_deref())
                .await
        }
        Err(e) => Err(e),
    };
    answer(&proxy, res.map(|s| s.bundle))
}

/// `GET /fhir/{resource_type}/{id}`: a read through the proxy, so that references resolve;
/// `GET /fhir/{resource_type}/${operation}`: an operation on the type (`Observation/$lastn`).
async fn read(
    State(proxy): State<Arc<DataProxy>>,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let url = url_of(&proxy, &headers, &format!("/fhir/{resource_type}/{id}"));
    let res = match (presented(&headers, &url), id.strip_prefix('$')) {
        (Ok(p), Some(op)) => proxy
            .search(p, &resource_type, Some(op), query.as_deref())
            .await
            .map(|s| s.bundle),
        (Ok(p), None) => proxy.read(p, &resource_type, &id).await,
        (Err(e), _) => Err(e),
    };
    answer(&proxy, res)
}

/// `PUT /fhir/{resource_type}/{id}` (FHIR update): with a workflow token, a `Task` the
/// holder's implied consent names (`specs/data-sets.md` §8); the source's answer comes back.
async fn update(
    State(proxy): State<Arc<DataProxy>>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return too_large(e),
    };
    let url = url_of(&proxy, &headers, &format!("/fhir/{resource_type}/{id}"));
    let resource = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(r) if r.is_object() => r,
        _ => {
            return outcome(
                StatusCode::BAD_REQUEST,
                "structure",
                "the body must be a FHIR resource in JSON",
            )
        }
    };
    let res = match presented(&headers, &url) {
        Ok(p) => proxy.update(p, &resource_type, &id, resource).await,
        Err(e) => Err(e),
    };
    match res {
        Ok((status, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            (
                status,
                [(header::CONTENT_TYPE, "application/fhir+json")],
                Json(body),
            )
                .into_response()
        }
        Err(e) => refusal(&proxy, e),
    }
}

/// The URL of the request (what its DPoP proof must name).
pub(crate) fn url_of(proxy: &DataProxy, headers: &HeaderMap, path: &str) -> String {
    proxy
        .url_of(path)
        .unwrap_or_else(|| request_url(None, headers, path))
}

/// How the request presents its token (none: `None`), or its malformed DPoP proof.
pub(crate) fn presented<'a>(
    headers: &'a HeaderMap,
    url: &'a str,
) -> Result<Option<Presented<'a>>, ProxyError> {
    let proof = dpop_proof(headers).map_err(ProxyError::Proof)?;
    Ok(authorization(headers).map(|(dpop, token)| Presented {
        token,
        dpop,
        proof,
        url,
    }))
}

/// The FHIR answer, or the refusal with its challenges.
fn answer(proxy: &DataProxy, res: Result<serde_json::Value, ProxyError>) -> Response {
    match res {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/fhir+json")],
            Json(body),
        )
            .into_response(),
        Err(e) => refusal(proxy, e),
    }
}

/// A refusal: its `OperationOutcome`, with the challenges and the DPoP nonce it needs.
pub(crate) fn refusal(proxy: &DataProxy, e: ProxyError) -> Response {
    let mut resp = outcome(status_of(&e), e.code(), &e.to_string());
    for challenge in challenges_of(&e) {
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    if matches!(e, ProxyError::Proof(DpopError::UseNonce)) {
        resp = with_nonce(resp, &proxy.dpop_nonce());
    }
    resp
}

/// The challenges (RFC 6750 §3, RFC 9449 §7.1): without a token, both schemes and no error
/// code (§3.1); `invalid_token` for an unknown or expired token or one sent with the wrong
/// scheme; `invalid_dpop_proof` or `use_dpop_nonce` for a proof; `insufficient_scope` for a
/// resource type outside the grant.
fn challenges_of(e: &ProxyError) -> Vec<String> {
    let algs = crate::care::dpop::algs();
    let bearer = |error: &str| format!("Bearer realm=\"knoop\", error=\"{error}\"");
    let dpop = |error: &str| format!("DPoP algs=\"{algs}\", error=\"{error}\"");
    match e {
        ProxyError::NoToken => vec![
            "Bearer realm=\"knoop\"".to_owned(),
            format!("DPoP algs=\"{algs}\""),
        ],
        ProxyError::Expired => vec![bearer("invalid_token"), dpop("invalid_token")],
        ProxyError::NotBound => vec![bearer("invalid_token")],
        ProxyError::BoundToken | ProxyError::OtherKey => vec![dpop("invalid_token")],
        ProxyError::Proof(p) => vec![dpop(p.code())],
        ProxyError::NotCovered(_) => vec![bearer("insufficient_scope")],
        _ => Vec::new(),
    }
}

fn status_of(e: &ProxyError) -> StatusCode {
    match e {
        ProxyError::NoToken
        | ProxyError::Expired
        | ProxyError::BoundToken
        | ProxyError::NotBound
        | ProxyError::Proof(_)
        | ProxyError::OtherKey => StatusCode::UNAUTHORIZED,
        ProxyError::NotServed(_) | ProxyError::NotFound(_) => StatusCode::NOT_FOUND,
        ProxyError::ParamNotAllowed(_)
        | ProxyError::ParamTooLong(_)
        | ProxyError::BadParam(_)
        | ProxyError::BadResource(_) => StatusCode::BAD_REQUEST,
        ProxyError::Source(_) => StatusCode::BAD_GATEWAY,
        ProxyError::NotCovered(_) | ProxyError::OtherPatient => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A body that could not be read (over the public API's limit): its status, as an
/// `OperationOutcome`.
pub(crate) fn too_large(e: axum::extract::rejection::BytesRejection) -> Response {
    outcome(e.status(), "too-long", &e.body_text())
}

/// A FHIR error: an `OperationOutcome`.
pub(crate) fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
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

/// The token of `Authorization` and whether its scheme is `DPoP` (RFC 9449 §7.1) rather than
/// `Bearer` (RFC 6750 §2.1); schemes are case-insensitive (RFC 9110 §11.1).
pub(crate) fn authorization(headers: &HeaderMap) -> Option<(bool, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((false, token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((true, token))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_case_insensitive() {
        for (value, want) in [
            ("Bearer abc", Some((false, "abc"))),
            ("bearer abc", Some((false, "abc"))),
            ("BEARER  abc ", Some((false, "abc"))),
            ("DPoP abc", Some((true, "abc"))),
            ("dpop abc", Some((true, "abc"))),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            assert_eq!(authorization(&h), want, "{value:?}");
        }
        assert_eq!(authorization(&HeaderMap::new()), None);
    }

    #[test]
    fn challenges_follow_rfc_6750_and_rfc_9449() {
        let no_token = challenges_of(&ProxyError::NoToken);
        assert_eq!(no_token[0], "Bearer realm=\"knoop\"");
        assert!(no_token[1].starts_with("DPoP algs=\"ES256 ") && !no_token[1].contains("error"));
        let has = |e: ProxyError, scheme: &str, code: &str| {
            challenges_of(&e)
                .iter()
                .any(|c| c.starts_with(scheme) && c.contains(&format!("error=\"{code}\"")))
        };
        assert!(has(ProxyError::Expired, "Bearer", "invalid_token"));
        assert!(has(ProxyError::Expired, "DPoP", "invalid_token"));
        assert!(has(ProxyError::BoundToken, "DPoP", "invalid_token"));
        assert!(has(ProxyError::NotBound, "Bearer", "invalid_token"));
        assert!(has(
            ProxyError::Proof(DpopError::Replay),
            "DPoP",
            "invalid_dpop_proof"
        ));
        assert!(has(
            ProxyError::Proof(DpopError::UseNonce),
            "DPoP",
            "use_dpop_nonce"
        ));
        assert!(has(
            ProxyError::NotCovered("Condition".into()),
            "Bearer",
            "insufficient_scope"
        ));
        assert!(challenges_of(&ProxyError::ParamTooLong("code".into())).is_empty());
    }
}
