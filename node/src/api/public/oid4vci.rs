//! The OpenID4VCI 1.0 credential issuer of each organisation hosted here (spec:
//! `specs/oid4vci.md`; the national guide's GFI-002), on the public API under
//! `/oid4vci/{id}`: its metadata (§12.2, at the well-known URL after the host and, for older
//! wallets, after the path), its authorization server's metadata (RFC 8414) and token endpoint
//! for the pre-authorized code (§6), the nonce endpoint (§7), the credential endpoint (§8) and
//! offers by reference (§4.1.3). Each handler parses, calls
//! [`crate::identity::credential_offers`] and maps the result; errors are OAuth JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::api::public::fhir::authorization;
use crate::api::public::oauth::{dpop_proof, is_form, no_store, oauth_error, with_nonce};
use crate::care::dpop::Expect;
use crate::care::tokens::Tokens;
use crate::identity::credential_offers::{
    issuer_metadata, server_metadata, CredentialError, CredentialOffers, CredentialRequestBody,
};
use crate::identity::prefetch::Prefetcher;

#[derive(Clone)]
struct Issuers {
    offers: Arc<CredentialOffers>,
    /// For the DPoP nonces and replay cache.
    tokens: Arc<Tokens>,
    prefetch: Arc<Prefetcher>,
}

/// The issuer routes (empty when the public URL is not https: an issuer identifier must be).
pub fn routes<S: Clone + Send + Sync + 'static>(
    offers: Arc<CredentialOffers>,
    tokens: Arc<Tokens>,
    prefetch: Arc<Prefetcher>,
) -> Router<S> {
    if offers.base().is_none() {
        return Router::new();
    }
    Router::new()
        .route(
            "/.well-known/openid-credential-issuer/oid4vci/{tenant}",
            get(metadata),
        )
        .route(
            "/oid4vci/{tenant}/.well-known/openid-credential-issuer",
            get(metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server/oid4vci/{tenant}",
            get(as_metadata),
        )
        .route("/oid4vci/{tenant}/token", post(token))
        .route("/oid4vci/{tenant}/nonce", post(nonce))
        .route("/oid4vci/{tenant}/credential", post(credential))
        .route("/oid4vci/{tenant}/offers/{reference}", get(offer))
        .with_state(Issuers {
            offers,
            tokens,
            prefetch,
        })
}

fn not_hosted() -> Response {
    oauth_error(
        StatusCode::NOT_FOUND,
        "invalid_request",
        "no credential issuer with this id is hosted here",
    )
}

fn base(s: &Issuers) -> &str {
    s.offers.base().unwrap_or_default()
}

async fn metadata(State(s): State<Issuers>, Path(id): Path<String>) -> Response {
    match s.offers.tenant(&id) {
        Some(did) => Json(issuer_metadata(
            base(&s),
            &id,
            s.offers.display_name(&did).as_deref(),
        ))
        .into_response(),
        None => not_hosted(),
    }
}

async fn as_metadata(State(s): State<Issuers>, Path(id): Path<String>) -> Response {
    match s.offers.tenant(&id) {
        Some(_) => Json(server_metadata(base(&s), &id)).into_response(),
        None => not_hosted(),
    }
}

async fn offer(
    State(s): State<Issuers>,
    Path((id, reference)): Path<(String, String)>,
) -> Response {
    let found = s
        .offers
        .tenant(&id)
        .and_then(|did| s.offers.offer_by_reference(&did, &reference));
    match found {
        Some(o) => no_store(Json(o).into_response()),
        None => oauth_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "no such offer: unknown, redeemed or expired",
        ),
    }
}

async fn nonce(State(s): State<Issuers>, Path(id): Path<String>) -> Response {
    if s.offers.tenant(&id).is_none() {
        return not_hosted();
    }
    match s.offers.nonce() {
        Some(n) => no_store(Json(json!({"c_nonce": n})).into_response()),
        None => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many live nonces; retry",
        ),
    }
}

async fn token(
    State(s): State<Issuers>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let resp = match s.offers.tenant(&id) {
        None => not_hosted(),
        Some(did) => redeem(&s, &did, &id, &headers, &body),
    };
    with_nonce(resp, &s.tokens.dpop().nonce())
}

fn redeem(s: &Issuers, did: &str, id: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    if !is_form(headers) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    // RFC 9449 §5: a DPoP proof binds the token to its key.
    let jkt = match dpop_proof(headers) {
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, e.code(), &e.to_string()),
        Ok(None) => None,
        Ok(Some(proof)) => {
            let url = format!("{}/oid4vci/{id}/token", base(s));
            let expect = Expect {
                method: "POST",
                url: &url,
                access_token: None,
            };
            match s.tokens.dpop().verify(proof, &expect, true) {
                Ok(p) => Some(p.jkt),
                Err(e) => return oauth_error(StatusCode::BAD_REQUEST, e.code(), &e.to_string()),
            }
        }
    };
    match s.offers.token(did, body, jkt) {
        Ok(t) => {
            let mut out = json!({
                "access_token": t.access_token,
                "token_type": t.token_type,
                "expires_in": t.expires_in,
            });
            if let Some(d) = t.authorization_details {
                out["authorization_details"] = d;
            }
            no_store(Json(out).into_response())
        }
        Err(e) => {
            let status = match e.error {
                "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            oauth_error(status, e.error, &e.description)
        }
    }
}

fn credential_error(e: CredentialError, dpop: bool) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = oauth_error(status, e.error, &e.description);
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6750 §3, RFC 9449 §7.1.
        let challenge = format!(
            "{} error=\"{}\"{}",
            if dpop { "DPoP" } else { "Bearer" },
            e.error,
            if dpop {
                format!(" algs=\"{}\"", crate::care::dpop::algs())
            } else {
                String::new()
            }
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    resp
}

async fn credential(
    State(s): State<Issuers>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(did) = s.offers.tenant(&id) else {
        return not_hosted();
    };
    let unauthorized = |d: &str, dpop| {
        credential_error(
            CredentialError {
                error: "invalid_token",
                description: d.to_owned(),
            },
            dpop,
        )
    };
    let Some((dpop_scheme, token)) = authorization(&headers) else {
        let mut resp = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "an access token from this issuer's token endpoint is required",
        );
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    };
    let jkt = match s.offers.authorize(&did, token) {
        Ok(j) => j,
        Err(e) => return credential_error(e, dpop_scheme),
    };
    let bad_proof = |description: String| {
        credential_error(
            CredentialError {
                error: "invalid_dpop_proof",
                description,
            },
            true,
        )
    };
    // A bound token needs the DPoP scheme and a proof of its key (RFC 9449 §7).
    match (&jkt, dpop_scheme) {
        (Some(jkt), true) => {
            let url = format!("{}/oid4vci/{id}/credential", base(&s));
            let expect = Expect {
                method: "POST",
                url: &url,
                access_token: Some(token),
            };
            let proof = match dpop_proof(&headers) {
                Ok(Some(p)) => p,
                Ok(None) => return unauthorized("a DPoP proof is required", true),
                Err(e) => return bad_proof(e.to_string()),
            };
            match s.tokens.dpop().verify(proof, &expect, false) {
                Ok(p) if p.jkt == *jkt => {}
                Ok(_) => return unauthorized("the DPoP proof is of another key", true),
                Err(e) => return bad_proof(e.to_string()),
            }
        }
        (Some(_), false) => {
            return unauthorized("the token is DPoP-bound: use the DPoP scheme", true)
        }
        (None, true) => return unauthorized("the token is a bearer token", false),
        (None, false) => {}
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    let bad = |d: String| {
        credential_error(
            CredentialError {
                error: "invalid_credential_request",
                description: d,
            },
            false,
        )
    };
    if !json_body {
        return bad("the body must be application/json".into());
    }
    let req: CredentialRequestBody = match serde_json::from_slice::<Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|v| {
            if v.is_object() {
                serde_json::from_value(v).map_err(|e| e.to_string())
            } else {
                Err("the body must be a JSON object".into())
            }
        }) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let jwts = match CredentialOffers::proof_jwts(&req) {
        Ok(j) => j,
        Err(e) => return credential_error(e, false),
    };
    let proof = Value::String(jwts[0].clone());
    let fetched = s.prefetch.fetch(&[&proof]).await;
    let offers = s.offers.clone();
    let token = token.to_owned();
    let issued =
        tokio::task::spawn_blocking(move || offers.credential(&did, &token, &req, &fetched)).await;
    match issued {
        Ok(Ok(c)) => no_store(Json(json!({"credentials": [{"credential": c}]})).into_response()),
        Ok(Err(e)) => credential_error(e, jkt.is_some()),
        Err(_) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "issuing task",
        ),
    }
}
