//! The public API (spec: `specs/data-fetch.md` §2): what other nodes call. The OAuth2 nonce
//! and token endpoints and the FHIR data proxy, over HTTPS (rustls) with the certificate from
//! config, or plain HTTP on loopback. The node publishes its base URL in its DID as a
//! `KnoopPublicApi` service, so requesters find it from the holder node's DID.

pub mod admin_directory;
pub mod definitions;
pub mod did_web;
pub mod fhir;
pub mod introspect;
pub mod metadata;
pub mod notified_pull;
pub mod oauth;
pub mod oid4vci;
pub mod patient;
pub mod status;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn, Instrument};

pub use admin_directory::ClientCertificate;

use crate::care::data_proxy::DataProxy;
use crate::care::tokens::Tokens;
use crate::config::PublicConfig;
use crate::identity::credential_offers::CredentialOffers;
use crate::identity::did_ops::DidOps;
use crate::identity::prefetch::Prefetcher;
use crate::identity::status_hosting::HostedStatusLists;
use crate::identity::web_dids::WebDids;
use crate::ops::metrics::{track_public, Metrics};
use crate::ops::rate_limit::{self, ClientLimiter};

/// Largest request body on the public API (a token request with a presentation).
const MAX_PUBLIC_BODY: usize = 256 * 1024;
/// Time a client gets for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The public routes at base URL `url`: OAuth2 nonce, token, introspection and server metadata,
/// the FHIR data proxy, the did:web documents of the hosted DIDs (when the URL has a host name),
/// the status lists, OpenID4VCI credential issuers and mCSD Administration Directories (read
/// only) of the hosted organisations, health.
#[allow(clippy::too_many_arguments)]
pub fn router(
    url: String,
    tokens: Arc<Tokens>,
    dids: Arc<DidOps>,
    proxy: Arc<DataProxy>,
    notified: Arc<crate::care::notified_pull::NotifiedPull>,
    web_dids: Option<Arc<WebDids>>,
    status_lists: Arc<HostedStatusLists>,
    issuers: (Arc<CredentialOffers>, Arc<Prefetcher>),
    directories: Arc<crate::directory::admin::AdminDirectory>,
    mutual_tls: bool,
    metrics: Arc<Metrics>,
    limiter: Option<Arc<ClientLimiter>>,
    patients: Option<Arc<crate::care::patient_service::PatientService>>,
) -> Router {
    let dids_for_notify = dids.clone();
    let mut routes = Router::new()
        .merge(oauth::routes(
            tokens.clone(),
            dids.clone(),
            Some(url.clone()),
        ))
        .merge(introspect::routes(tokens.clone()))
        .merge(oid4vci::routes(issuers.0, tokens.clone(), issuers.1))
        .merge(definitions::routes(tokens.clone(), dids.clone()))
        .merge(metadata::routes(tokens, dids, url.clone()))
        .merge(status::routes(status_lists))
        .merge(admin_directory::routes(
            directories,
            url.clone(),
            mutual_tls,
        ));
    if let Some(web) = web_dids {
        routes = routes.merge(did_web::routes(web));
    }
    if let Some(p) = patients {
        routes = routes.merge(patient::routes(p));
    }
    let mut routes = routes
        .merge(notified_pull::routes(
            notified,
            proxy.clone(),
            dids_for_notify,
        ))
        .merge(fhir::routes(proxy))
        .layer(middleware::from_fn(span));
    if let Some(l) = limiter {
        routes = routes.layer(middleware::from_fn_with_state(l, rate_limit::limit));
    }
    routes
        .layer(middleware::from_fn_with_state(metrics, track_public))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_PUBLIC_BODY))
}

async fn span(req: Request, next: Next) -> Response {
    let span = tracing::info_span!("public", method = %req.method(), path = %req.uri().path());
    next.run(req).instrument(span).await
}

/// A bound public listener and the URL it is reached at.
pub struct PublicListener {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    pub url: String,
    /// When the certificate served expires (ms since the Unix epoch), with TLS.
    pub certificate_expires_ms: Option<u64>,
}

/// Why the public API could not be bound. Each message names the setting at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    #[error("public.tls_cert {}: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    #[error("public.tls_key {}: not a PEM private key: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("public.tls_cert and public.tls_key do not form a certificate and its key: {0}")]
    Pair(String),
    #[error("public.client_ca_file {}: {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
    #[error("TLS protocol versions: {0}")]
    Tls(String),
    #[error("cannot listen on public.listen {listen}: {source}")]
    Listen {
        listen: String,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the public API as configured; `None` when `public.listen` is empty.
pub async fn bind(cfg: &PublicConfig) -> Result<Option<PublicListener>, BindError> {
    if cfg.listen.is_empty() {
        return Ok(None);
    }
    let (tls, certificate_expires_ms) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (
            Some(acceptor(c, k, cfg.client_ca_file.as_deref())?),
            certificate_expiry(c),
        ),
        _ => (None, None),
    };
    let listen_err = |source| BindError::Listen {
        listen: cfg.listen.clone(),
        source,
    };
    let listener = TcpListener::bind(&cfg.listen).await.map_err(listen_err)?;
    let addr = listener.local_addr().map_err(listen_err)?;
    let url = match &cfg.url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!("{}://{addr}", if tls.is_some() { "https" } else { "http" }),
    };
    Ok(Some(PublicListener {
        listener,
        tls,
        url,
        certificate_expires_ms,
    }))
}

/// When the first certificate of the PEM chain at `path` expires (its `notAfter`), in ms since
/// the Unix epoch; `None` when it cannot be read (the acceptor has checked the chain already).
fn certificate_expiry(path: &Path) -> Option<u64> {
    let der = CertificateDer::pem_file_iter(path).ok()?.next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let seconds = cert.validity().not_after.timestamp();
    u64::try_from(seconds).ok()?.checked_mul(1000)
}

/// The TLS acceptor of `cert` and `key`; with `client_ca`, it asks clients for a certificate
/// and verifies one that is given against those roots (a client without one is still served:
/// the routes that need one check [`ClientCertificate`]).
fn acceptor(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<TlsAcceptor, BindError> {
    let cert_err = |reason: String| BindError::Cert {
        path: cert.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(cert_err("no certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| BindError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BindError::Tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| BindError::Pair(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A verifier of client certificates against the roots in `path`, for clients that give one.
fn client_verifier(
    path: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, BindError> {
    let ca_err = |reason: String| BindError::ClientCa {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))? {
        let c = c.map_err(|e| ca_err(format!("not a PEM certificate: {e}")))?;
        roots.add(c).map_err(|e| ca_err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_err("no certificate in it".into()));
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| ca_err(e.to_string()))
}

impl PublicListener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `app` until `stop` turns true.
    pub async fn serve(self, app: Router, mut stop: watch::Receiver<bool>) {
        info!(url = %self.url, tls = self.tls.is_some(), "public API listening");
        loop {
            let (tcp, peer) = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        warn!(error = %e, "public API accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            // The client's address (for the rate limit and the logs) and its verified
            // certificate, on every request of the connection.
            let app = app.clone();
            let service = move |client: Option<ClientCertificate>| {
                TowerToHyperService::new(
                    tower::ServiceBuilder::new()
                        .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                            req.extensions_mut()
                                .insert(axum::extract::ConnectInfo(peer));
                            if let Some(c) = &client {
                                req.extensions_mut().insert(c.clone());
                            }
                            req
                        })
                        .service(app),
                )
            };
            let tls = self.tls.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                                .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                        let client = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| ClientCertificate(c.clone().into_owned()));
                        let conn = builder.serve_connection(TokioIo::new(stream), service(client));
                        tokio::select! {
                            _ = conn => {}
                            _ = stop.changed() => {}
                        }
                    }
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(tcp), service(None));
                        tokio::select! {
                            _ = conn => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
            });
        }
    }
}
