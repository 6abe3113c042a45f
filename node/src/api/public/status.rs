//! `GET /statuslists/{id}/{n}` on the public API: the Bitstring Status List credentials of the
//! issuers hosted here ([`crate::identity::status_hosting`], `specs/credentials.md` §9a), as
//! Data Integrity JSON (`application/vc`) or, when the client asks for it, as a `vc+jwt`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::identity::status_hosting::{HostedStatusLists, ListCredential};

pub fn routes<S>(lists: Arc<HostedStatusLists>) -> Router<S> {
    Router::new()
        .route("/statuslists/{id}/{n}", get(list))
        .with_state(lists)
}

/// Whether the client prefers a `vc+jwt` (it names `application/vc+jwt` and no JSON type
/// before it).
fn wants_jwt(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let first = accept
        .split(',')
        .map(|m| m.split(';').next().unwrap_or_default().trim())
        .find(|m| m.starts_with("application/vc") || *m == "application/json");
    first == Some("application/vc+jwt")
}

async fn list(
    State(lists): State<Arc<HostedStatusLists>>,
    Path((id, n)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Ok(n) = n.parse::<u32>() else {
        return (StatusCode::NOT_FOUND, "no such status list").into_response();
    };
    let jwt = wants_jwt(&headers);
    let l = lists.clone();
    let res = tokio::task::spawn_blocking(move || l.list_credential(&id, n, jwt)).await;
    let cache = [(header::CACHE_CONTROL, "max-age=60")];
    match res {
        Ok(Ok(Some(ListCredential::Json(v)))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/vc")],
            cache,
            v.to_string(),
        )
            .into_response(),
        Ok(Ok(Some(ListCredential::Jwt(t)))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/vc+jwt")],
            cache,
            t,
        )
            .into_response(),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, "no such status list").into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "status list");
            (StatusCode::INTERNAL_SERVER_ERROR, "status list unavailable").into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "status list task").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_jwt_form_is_served_when_asked_for_first() {
        for (accept, jwt) in [
            ("application/vc+jwt", true),
            ("application/vc+jwt, application/vc", true),
            ("application/vc, application/vc+jwt", false),
            ("application/json", false),
            ("*/*", false),
            ("", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(wants_jwt(&h), jwt, "{accept}");
        }
    }
}
