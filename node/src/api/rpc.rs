//! The internal HTTP JSON RPC (loopback by default, a bearer token beyond it). Its routes are
//! grouped by concern in the modules below; every endpoint is documented in `api/openapi.yaml`,
//! served at `/openapi.yaml`. Errors are [`error::ApiError`].

pub mod access;
pub mod admin;
pub mod admin_directory;
pub mod audit;
pub mod caller;
pub mod consent;
pub mod console;
pub mod data;
pub mod did;
pub mod error;
pub mod events;
pub mod fhir;
pub mod fhir_consent;
pub mod localisation;
pub mod log;
pub mod nuts_auth;
pub mod nvi;
pub mod pdp;
pub mod private;
pub mod state;
pub mod tenancy;
pub mod tokens;
pub mod vc;
pub mod wallet;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::Instrument;

use error::ApiError;
use state::RpcState;

/// Largest RPC request body.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

type St = State<Arc<RpcState>>;

pub fn router(state: Arc<RpcState>) -> Router {
    Router::new()
        .route("/openapi.yaml", get(openapi))
        .merge(log::routes())
        .merge(events::routes())
        .merge(did::routes())
        .merge(vc::routes())
        .merge(private::routes())
        .merge(localisation::routes())
        .merge(consent::routes())
        .merge(audit::routes())
        .merge(tokens::routes(state.tokens.clone(), state.dids.clone()))
        .merge(data::routes())
        .merge(access::routes())
        .merge(nuts_auth::routes())
        .merge(admin::routes())
        .merge(wallet::routes())
        .merge(pdp::routes())
        .merge(fhir::routes())
        .merge(admin_directory::routes())
        .merge(fhir_consent::routes())
        .merge(nvi::routes())
        .merge(console::routes())
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::ops::metrics::track_rpc,
        ))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Authenticates the call (`specs/rpc-clients.md`): finds the caller of its credential, refuses
/// a non-admin caller on an admin-only route, and hands the caller to the handler.
async fn auth(State(st): St, mut req: Request, next: Next) -> Response {
    let caller = if st.clients.required() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(credentials);
        let Some(caller) = given.as_ref().and_then(|(_, t)| st.clients.caller(t)) else {
            let mut resp = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            )
            .into_response();
            // RFC 6750 §3, and RFC 7617 §2 for the console in a browser.
            for challenge in [
                "Bearer realm=\"knoop-rpc\"",
                "Basic realm=\"knoop console\", charset=\"UTF-8\"",
            ] {
                resp.headers_mut().append(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static(challenge),
                );
            }
            return resp;
        };
        // A browser sends Basic credentials with any request to this origin, also one another
        // site makes it send: those are refused (cross-site request forgery).
        if matches!(given, Some((Scheme::Basic, _))) && !same_origin(&req) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site",
                "a request from another site with the console's credentials",
            )
            .into_response();
        }
        caller.clone()
    } else {
        caller::Caller::unauthenticated_admin()
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    if !caller.is_admin() && caller::class_of(req.method(), &route) == caller::Class::Admin {
        tracing::warn!(client = %caller.name, method = %req.method(), route, "refused: admin-only route");
        st.audit.append(crate::care::audit::Event {
            kind: "api".into(),
            who: format!("rpc client {}", caller.name),
            purpose: format!("{} {route}", req.method()),
            outcome: "admin_only".into(),
            ..Default::default()
        });
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_only",
            format!(
                "{} {route} needs the admin scope; the API credential of {} is scoped to tenants",
                req.method(),
                caller.name
            ),
        )
        .into_response();
    }
    let span = tracing::info_span!("rpc", method = %req.method(), path = %req.uri().path(), client = %caller.name);
    let mut caller = caller;
    caller.route = format!("{} {route}", req.method());
    req.extensions_mut().insert(caller);
    next.run(req).instrument(span).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Basic,
}

/// The scheme and the token of an `Authorization` value: `Bearer <token>` (RFC 6750 §2.1),
/// or `Basic` (RFC 7617) with the token as the password, whatever the user name.
fn credentials(value: &str) -> Option<(Scheme, String)> {
    if let Some(t) = bearer(value) {
        return Some((Scheme::Bearer, t.to_owned()));
    }
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some((Scheme::Basic, password.to_owned()))
}

/// Whether the browser says the request comes from this origin: `Sec-Fetch-Site` (Fetch
/// Metadata) `same-origin` or `none` (typed or bookmarked) when sent, and an `Origin`, when
/// sent, naming this host.
fn same_origin(req: &Request) -> bool {
    let h = req.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive (RFC
/// 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// An RPC error: `{"error": code, "message": text}`.
async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/yaml")],
        include_str!("openapi.yaml"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_authenticates_with_basic_and_the_token_as_password() {
        use base64::Engine as _;
        let basic = |userpass: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(userpass)
            )
        };
        assert_eq!(
            credentials(&basic("knoop:s3cret")),
            Some((Scheme::Basic, "s3cret".into()))
        );
        assert_eq!(
            credentials(&basic(":s3cret:with:colons")),
            Some((Scheme::Basic, "s3cret:with:colons".into()))
        );
        assert_eq!(
            credentials("Bearer s3cret"),
            Some((Scheme::Bearer, "s3cret".into()))
        );
        assert_eq!(credentials(&basic("no-colon")), None);
        assert_eq!(credentials("Basic !!!"), None);
        assert_eq!(credentials("Digest x"), None);
    }

    #[test]
    fn requests_from_other_sites_are_told_apart() {
        let req = |headers: &[(&str, &str)]| {
            let mut b = Request::builder().uri("/v1/dids");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(axum::body::Body::empty()).unwrap()
        };
        let host = ("host", "127.0.0.1:7475");
        assert!(same_origin(&req(&[host])));
        assert!(same_origin(&req(&[
            host,
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(same_origin(&req(&[host, ("sec-fetch-site", "none")])));
        assert!(same_origin(&req(&[
            host,
            ("origin", "http://127.0.0.1:7475")
        ])));
        assert!(!same_origin(&req(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&req(&[host, ("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&req(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&req(&[("origin", "http://127.0.0.1:7475")])));
    }

    #[test]
    fn the_rpc_bearer_scheme_is_case_insensitive() {
        for (value, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("Bearerabc", None),
        ] {
            assert_eq!(super::bearer(value), want, "{value:?}");
        }
    }

    /// Every route the RPC serves is documented in the OpenAPI document.
    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc = include_str!("openapi.yaml");
        // Every file whose routes the RPC serves: the router, every file under `rpc/`, and the
        // OAuth2 and Administration Directory read routes it shares with the public API.
        let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        let mut files = vec![
            api.join("rpc.rs"),
            api.join("public/oauth.rs"),
            api.join("admin_directory_reads.rs"),
        ];
        for e in std::fs::read_dir(api.join("rpc")).unwrap() {
            files.push(e.unwrap().path());
        }
        assert!(files.len() >= 12, "found only {} files", files.len());
        let sources: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        let mut n = 0;
        for src in &sources {
            let code = src.split("#[cfg(test)]").next().unwrap_or_default();
            for part in code.split(".route(").skip(1) {
                let Some(path) = part
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|p| p.split('"').next())
                else {
                    continue;
                };
                assert!(
                    doc.contains(&format!("\n  {path}:\n")),
                    "{path} is served but not in openapi.yaml"
                );
                n += 1;
            }
        }
        assert!(n >= 30, "found only {n} routes");
    }

    /// The OpenAPI document is valid OpenAPI 3, as an outside validator
    /// (openapi-spec-validator, installed by `.ci/run`) reads it.
    #[test]
    fn the_openapi_document_validates() {
        let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/openapi.yaml");
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys\n\
                 from openapi_spec_validator import validate\n\
                 from openapi_spec_validator.readers import read_from_filename\n\
                 validate(read_from_filename(sys.argv[1])[0])\n\
                 print('valid')",
            ])
            .arg(&doc)
            .output()
            .expect("python3 runs (.ci/run installs it with openapi-spec-validator)");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "valid",
            "openapi.yaml does not validate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
