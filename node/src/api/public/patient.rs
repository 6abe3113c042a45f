//! The patient page and its routes on the public API (spec: `specs/patient-view.md`): the page
//! (plain files from `node/patient/` compiled into the binary), the OpenID Connect login and
//! callback, and the JSON the page reads: the merged view, its FHIR `AuditEvent` Bundle, and
//! registering or withdrawing a consent or objection. Every handler parses, calls the patient
//! service once and maps the result.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::care::patient_service::{audit_bundle, PatientError, PatientService};

type St = State<Arc<PatientService>>;

/// The session cookie's name.
const COOKIE: &str = "knoop_patient";
/// The cookie binding a login in progress to the browser that started it (its `state`:
/// RFC 6749 §10.12, against login cross-site request forgery).
const LOGIN_COOKIE: &str = "knoop_patient_login";

/// The page's files: name, media type, content.
const FILES: [(&str, &str, &[u8]); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../patient/index.html"),
    ),
    (
        "patient.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../patient/patient.js"),
    ),
    (
        "patient.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../patient/patient.css"),
    ),
];

/// Only the node's own files, no inline script or style, never in a frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' \
                   data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

pub fn routes(service: Arc<PatientService>) -> Router {
    Router::new()
        .route(
            "/patient",
            get(|| async { Redirect::permanent("/patient/") }),
        )
        .route("/patient/", get(|| async { serve("index.html") }))
        .route("/patient/{file}", get(file))
        .route("/patient/login", get(login))
        .route("/patient/callback", get(callback))
        .route("/patient/logout", post(logout))
        .route("/patient/api/view", get(view))
        .route("/patient/api/audit-events", get(audit_events))
        .route("/patient/api/consents", post(register))
        .route("/patient/api/consents/revoke", post(revoke))
        .with_state(service)
}

async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    let Some((_, media_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut resp = (StatusCode::OK, *body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

impl IntoResponse for PatientError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match &self {
            PatientError::BadRequest(_) => error(StatusCode::BAD_REQUEST, "bad_request", message),
            PatientError::Registration(e) => {
                let status = match e.code() {
                    "internal" | "send" | "pointer" | "ops" | "proof" | "not_configured" => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    _ => StatusCode::BAD_REQUEST,
                };
                error(status, e.code(), message)
            }
            PatientError::Keys(_) => error(StatusCode::SERVICE_UNAVAILABLE, "keys", message),
            PatientError::Oidc(_) | PatientError::UnknownLogin => {
                error(StatusCode::UNAUTHORIZED, "login_failed", message)
            }
        }
    }
}

/// The value of cookie `name` the browser sent.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
        .map(str::to_owned)
        .next()
}

/// The session id the browser sent.
fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// `resp` with a cookie set (`Secure` over HTTPS).
fn with_cookie(mut resp: Response, p: &PatientService, value: &str) -> Response {
    let secure = if p.secure { "; Secure" } else { "" };
    if let Ok(v) = HeaderValue::from_str(&format!("{value}{secure}")) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Why a request was refused before the service was asked.
enum Refusal {
    NotLoggedIn,
    CrossSite,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotLoggedIn => error(
                StatusCode::UNAUTHORIZED,
                "not_logged_in",
                "log in first (or again: the session ended)",
            ),
            Refusal::CrossSite => error(
                StatusCode::FORBIDDEN,
                "cross_site",
                "a change from another site is refused",
            ),
        }
    }
}

/// The patient's session.
fn session(
    p: &PatientService,
    headers: &HeaderMap,
) -> Result<Arc<crate::care::patient_service::sessions::Session>, Refusal> {
    session_id(headers)
        .and_then(|id| p.sessions.get(&id))
        .ok_or(Refusal::NotLoggedIn)
}

/// A change from another site is refused (the cookie is `SameSite=Lax` besides).
fn same_origin(p: &PatientService, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ours = url::Url::parse(&p.redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    if origin == ours {
        Ok(())
    } else {
        Err(Refusal::CrossSite)
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    lang: Option<String>,
}

fn lang_of(l: Option<&str>) -> &'static str {
    match l {
        Some("en") => "en",
        _ => "nl",
    }
}

async fn login(State(p): St, Query(q): Query<LoginQuery>) -> Response {
    match p.begin_login(lang_of(q.lang.as_deref())).await {
        Ok((url, state)) => with_cookie(
            Redirect::to(&url).into_response(),
            &p,
            &format!("{LOGIN_COOKIE}={state}; Path=/patient; HttpOnly; SameSite=Lax; Max-Age=600"),
        ),
        Err(e) => {
            warn!(error = %e, "a patient's login could not start");
            Redirect::to("/patient/?error=provider_unavailable").into_response()
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(State(p): St, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    let clear = format!("{LOGIN_COOKIE}=; Path=/patient; HttpOnly; SameSite=Lax; Max-Age=0");
    let (Some(code), Some(state)) = (q.code, q.state) else {
        // The provider's own error (RFC 6749 §4.1.2.1), or a bare visit.
        info!(error = ?q.error, "a patient's login ended without a code");
        let to = Redirect::to("/patient/?error=login_cancelled").into_response();
        return with_cookie(to, &p, &clear);
    };
    // Only the browser that started this login may finish it.
    if cookie(&headers, LOGIN_COOKIE).as_deref() != Some(state.as_str()) {
        warn!("a login callback from a browser that did not start that login was refused");
        let to = Redirect::to("/patient/?error=login_failed").into_response();
        return with_cookie(to, &p, &clear);
    }
    let resp = match p.finish_login(&state, &code).await {
        Ok((id, lang)) => with_cookie(
            Redirect::to(&format!("/patient/?lang={lang}")).into_response(),
            &p,
            &format!("{COOKIE}={id}; Path=/patient; HttpOnly; SameSite=Lax; Max-Age=900"),
        ),
        Err(e) => {
            warn!(error = %e, "a patient's login was refused");
            Redirect::to("/patient/?error=login_failed").into_response()
        }
    };
    with_cookie(resp, &p, &clear)
}

async fn logout(State(p): St, headers: HeaderMap) -> Response {
    if let Err(r) = same_origin(&p, &headers) {
        return r.into_response();
    }
    if let Some(id) = session_id(&headers) {
        p.sessions.end(&id);
    }
    with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        &p,
        &format!("{COOKIE}=; Path=/patient; HttpOnly; SameSite=Lax; Max-Age=0"),
    )
}

async fn view(State(p): St, headers: HeaderMap) -> Response {
    let s = match session(&p, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let span = tracing::info_span!("patient_view", patient = %s.keys.reference());
    let v = tracing::Instrument::instrument(p.view(&s), span).await;
    let mut resp = Json(v).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn audit_events(State(p): St, headers: HeaderMap) -> Response {
    let s = match session(&p, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let bundle = audit_bundle(&p.view(&s).await);
    let bundle = crate::care::audit::without_empties(bundle).unwrap_or(Value::Null);
    let mut resp = Json(bundle).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RegisterReq {
    decision: String,
    #[serde(default)]
    purpose: Vec<String>,
    #[serde(default)]
    data_categories: Vec<String>,
}

async fn register(
    State(p): St,
    headers: HeaderMap,
    body: Result<Json<RegisterReq>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let s = match same_origin(&p, &headers).and_then(|_| session(&p, &headers)) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Ok(Json(req)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body is {decision, purpose?, dataCategories?}",
        );
    };
    match p
        .register(&s, &req.decision, req.purpose, req.data_categories)
        .await
    {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeReq {
    id: String,
}

async fn revoke(
    State(p): St,
    headers: HeaderMap,
    body: Result<Json<RevokeReq>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let s = match same_origin(&p, &headers).and_then(|_| session(&p, &headers)) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Ok(Json(req)) = body else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "the body is {id}");
    };
    match p.revoke(&s, &req.id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
