//! `POST /notified-pull/{organisation}/Task` on the public API (spec: `specs/data-sets.md`
//! §8): a Notified Pull notification for an organisation hosted here, with a token from its
//! own token endpoint ([`crate::care::notified_pull`]). The EHR's answer comes back as
//! `application/fhir+json`; a refusal as an `OperationOutcome` with the RFC 6750 / RFC 9449
//! challenge, as on the data proxy.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use crate::api::public::fhir::{outcome, presented, refusal, too_large, url_of};
use crate::api::public::oauth::hosted_tenant;
use crate::care::data_proxy::DataProxy;
use crate::care::notified_pull::NotifiedPull;
use crate::identity::did_ops::DidOps;

#[derive(Clone)]
struct Endpoints {
    notified: Arc<NotifiedPull>,
    /// For URLs and DPoP nonces, as on the data proxy.
    proxy: Arc<DataProxy>,
    dids: Arc<DidOps>,
}

pub fn routes<S>(
    notified: Arc<NotifiedPull>,
    proxy: Arc<DataProxy>,
    dids: Arc<DidOps>,
) -> Router<S> {
    Router::new()
        .route("/notified-pull/{organisation}/Task", post(notify))
        .with_state(Endpoints {
            notified,
            proxy,
            dids,
        })
}

async fn notify(
    State(st): State<Endpoints>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return too_large(e),
    };
    let Some(organisation) = hosted_tenant(&st.dids, &id) else {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "no organisation with this id is hosted here",
        );
    };
    let task = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(t) if t.is_object() => t,
        _ => {
            return outcome(
                StatusCode::BAD_REQUEST,
                "structure",
                "the body must be a FHIR Task in JSON",
            )
        }
    };
    let url = url_of(&st.proxy, &headers, &format!("/notified-pull/{id}/Task"));
    let res = match presented(&headers, &url) {
        Ok(p) => st.notified.notify(p, &organisation, task).await,
        Err(e) => Err(e),
    };
    match res {
        Ok((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
            [(header::CONTENT_TYPE, "application/fhir+json")],
            Json(body),
        )
            .into_response(),
        Err(e) => refusal(&st.proxy, e),
    }
}
