//! The public API (spec: `specs/data-fetch.md` §2): what other nodes call. The OAuth2 nonce
//! and token endpoints and the FHIR data proxy, over HTTPS (rustls) with the certificate from
//! config, or plain HTTP on loopback. The node publishes its base URL in its DID as a
//! `KnoopPublicApi` service, so requesters find it from the holder node's DID.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
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

pub mod fhir;
pub mod oauth;

use crate::care::data_proxy::DataProxy;
use crate::care::tokens::Tokens;
use crate::config::PublicConfig;
use crate::ops::metrics::{track_public, Metrics};
use crate::ops::rate_limit::{self, ClientLimiter};

/// Largest request body on the public API (a token request with a presentation).
const MAX_PUBLIC_BODY: usize = 256 * 1024;
/// Time a client gets for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The public routes: OAuth2 nonce and token, the FHIR data proxy, health.
pub fn router(
    tokens: Arc<Tokens>,
    proxy: Arc<DataProxy>,
    metrics: Arc<Metrics>,
    limiter: Option<Arc<ClientLimiter>>,
) -> Router {
    let mut routes = Router::new()
        .merge(oauth::routes(tokens))
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
}

/// Binds the public API as configured; `None` when `public.listen` is empty.
pub async fn bind(cfg: &PublicConfig) -> anyhow::Result<Option<PublicListener>> {
    if cfg.listen.is_empty() {
        return Ok(None);
    }
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(acceptor(c, k)?),
        _ => None,
    };
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on public.listen {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let url = match &cfg.url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!("{}://{addr}", if tls.is_some() { "https" } else { "http" }),
    };
    Ok(Some(PublicListener { listener, tls, url }))
}

fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("public.tls_cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "public.tls_cert {}: not a PEM certificate chain",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!("public.tls_cert {}: no certificate in it", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("public.tls_key {}: not a PEM private key", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("public.tls_cert and public.tls_key do not form a certificate and its key")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
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
            // The client's address, for the rate limit and the logs.
            let service = TowerToHyperService::new(
                tower::ServiceBuilder::new()
                    .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                        req
                    })
                    .service(app.clone()),
            );
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
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        tokio::select! {
                            _ = conn => {}
                            _ = stop.changed() => {}
                        }
                    }
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(tcp), service);
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
