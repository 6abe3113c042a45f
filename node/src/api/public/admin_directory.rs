//! The hosted organisations' mCSD Administration Directories on the public API, read only
//! (spec: `specs/mcsd.md` §5.4): `https://<host>/admin-directory/<URA>` with `metadata`,
//! read, vread, search and `_history`, for outside update clients (knooppunt's, an LRZa's)
//! that consume Administration Directories as the national guide describes. Writes stay on the
//! RPC. As the guide's care-services page asks, only clients that authenticated with a
//! certificate (mutual TLS, verified against `public.client_ca_file`) are served.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

use crate::api::admin_directory_reads::{self as reads, DirectoryHost};
use crate::api::fhir_answer::outcome;
use crate::directory::admin::AdminDirectory;
use crate::directory::mcsd::Outcome;

/// The certificate a client gave in the TLS handshake, verified against
/// `public.client_ca_file` (a request extension the listener adds; absent when the client gave
/// none).
#[derive(Clone, Debug)]
pub struct ClientCertificate(pub tokio_rustls::rustls::pki_types::CertificateDer<'static>);

/// The directories and the public base URL they are served under.
pub struct PublicDirectories {
    admin: Arc<AdminDirectory>,
    url: String,
}

impl DirectoryHost for PublicDirectories {
    fn admin_directory(&self) -> &AdminDirectory {
        &self.admin
    }
    fn base(&self, _headers: &HeaderMap, ura: &str) -> String {
        format!("{}/admin-directory/{ura}", self.url)
    }
}

/// The read routes; `mutual_tls`: the listener verifies client certificates
/// (`public.client_ca_file` is set). Without it no client can be served.
pub fn routes(admin: Arc<AdminDirectory>, url: String, mutual_tls: bool) -> Router {
    reads::routes::<PublicDirectories>()
        .with_state(Arc::new(PublicDirectories { admin, url }))
        .route_layer(middleware::from_fn_with_state(
            mutual_tls,
            require_client_certificate,
        ))
}

/// `403` with an `OperationOutcome` (issue `security`) for a client without a verified
/// certificate.
async fn require_client_certificate(
    axum::extract::State(mutual_tls): axum::extract::State<bool>,
    req: Request,
    next: Next,
) -> Response {
    if req.extensions().get::<ClientCertificate>().is_some() {
        return next.run(req).await;
    }
    let why = if mutual_tls {
        "this Administration Directory requires a client certificate (mutual TLS)"
    } else {
        "this Administration Directory requires mutual TLS, which this node's public API does \
         not offer (public.client_ca_file is not set)"
    };
    tracing::info!("admin directory read refused: no client certificate");
    outcome(&Outcome::new(403, "security", why))
}
