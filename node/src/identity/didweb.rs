//! did:web over HTTPS: fetches `https://<host>/<path>/did.json` with rustls, no redirects, a
//! total timeout and a bounded body, then checks the document with
//! [`knoop_did::external::check_did_web_document`]. Spec:
//! <https://w3c-ccg.github.io/did-method-web/>.

use std::path::{Path, PathBuf};
use std::time::Duration;

use knoop_did::external::{
    check_did_web_document, did_web_url, ExternalError, MAX_DID_WEB_DOCUMENT_BYTES,
};
use reqwest::StatusCode;
use serde_json::Value;
use tracing::debug;

use crate::https::{error_chain as chain, read_ca_file, CaFileError};

const USER_AGENT: &str = concat!("knoop/", env!("CARGO_PKG_VERSION"));

/// Why a did:web DID could not be resolved (or the client not built).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DidWebError {
    #[error("invalid DID: {0}")]
    InvalidDid(String),
    #[error("DID method not supported: {0}")]
    MethodNotSupported(String),
    #[error("DID document not found: {0}")]
    NotFound(String),
    #[error("invalid DID document: {0}")]
    InvalidDocument(String),
    /// Network, TLS, HTTP status or timeout trouble.
    #[error("fetching {0}")]
    Fetch(String),
    #[error("reading CA file {path}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {path}: {reason}")]
    InvalidCa { path: PathBuf, reason: String },
    #[error("building the HTTPS client")]
    Build(#[source] reqwest::Error),
}

impl DidWebError {
    /// The W3C DID Resolution error code.
    pub fn code(&self) -> &'static str {
        match self {
            DidWebError::InvalidDid(_) => "invalidDid",
            DidWebError::MethodNotSupported(_) => "methodNotSupported",
            DidWebError::NotFound(_) => "notFound",
            DidWebError::InvalidDocument(_) => "invalidDidDocument",
            DidWebError::Fetch(_)
            | DidWebError::ReadCa { .. }
            | DidWebError::InvalidCa { .. }
            | DidWebError::Build(_) => "internalError",
        }
    }
}

impl From<ExternalError> for DidWebError {
    fn from(e: ExternalError) -> Self {
        match e {
            ExternalError::InvalidDid(m) => DidWebError::InvalidDid(m),
            ExternalError::NotFound(m) => DidWebError::NotFound(m),
            ExternalError::MethodNotSupported(m) => DidWebError::MethodNotSupported(m),
            ExternalError::InvalidDocument(m) => DidWebError::InvalidDocument(m),
            other => DidWebError::InvalidDocument(other.to_string()),
        }
    }
}

fn fetch_error(url: &str, e: &reqwest::Error) -> DidWebError {
    let what = if e.is_timeout() { "timed out: " } else { "" };
    DidWebError::Fetch(format!("{url}: {what}{}", chain(e)))
}

/// Fetches and checks did:web documents.
#[derive(Debug, Clone)]
pub struct DidWebClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl DidWebClient {
    /// A client trusting the web PKI roots plus, if given, the certificate(s) in the PEM file
    /// `extra_ca_pem` (a test CA or a private PKI). `timeout` bounds connecting and the whole
    /// exchange, body included.
    pub fn new(extra_ca_pem: Option<&Path>, timeout: Duration) -> Result<Self, DidWebError> {
        Self::with_cas(extra_ca_pem.as_slice(), timeout)
    }

    /// [`DidWebClient::new`] trusting the certificates of several PEM files.
    pub fn with_cas(extra_ca_pems: &[&Path], timeout: Duration) -> Result<Self, DidWebError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(USER_AGENT);
        for path in extra_ca_pems {
            for cert in read_ca_file(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(DidWebError::Build)?;
        Ok(DidWebClient { http, timeout })
    }

    /// Resolves a `did:web` DID to its checked DID document.
    pub async fn resolve(&self, did: &str) -> Result<Value, DidWebError> {
        let url = did_web_url(did)?;
        debug!(%did, %url, "fetching did:web document");
        // reqwest's timeout covers the body too; this one also bounds our own reading loop.
        let body = match tokio::time::timeout(self.timeout, self.fetch(&url)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(DidWebError::Fetch(format!(
                    "{url}: timed out after {:?}",
                    self.timeout
                )))
            }
        };
        let doc = check_did_web_document(did, &body)?;
        debug!(%did, bytes = body.len(), "did:web document fetched");
        Ok(doc)
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, DidWebError> {
        self.get(
            url,
            "application/did+json, application/json",
            MAX_DID_WEB_DOCUMENT_BYTES,
        )
        .await
    }

    /// GETs `url` (HTTPS only, no redirects) and reads at most `max_bytes` of body. 404 and
    /// 410 are [`DidWebError::NotFound`]; a larger body is [`DidWebError::InvalidDocument`].
    pub async fn get(
        &self,
        url: &str,
        accept: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, DidWebError> {
        let mut resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| fetch_error(url, &e))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Err(DidWebError::NotFound(format!("{url}: HTTP {status}")));
        }
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            return Err(DidWebError::Fetch(format!(
                "{url}: HTTP {status} to {to} (redirects are not followed)"
            )));
        }
        if !status.is_success() {
            return Err(DidWebError::Fetch(format!("{url}: HTTP {status}")));
        }
        let too_big =
            || DidWebError::InvalidDocument(format!("{url}: more than {max_bytes} bytes"));
        if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fetch_error(url, &e))? {
            if body.len() + chunk.len() > max_bytes {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The total timeout of one exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl From<CaFileError> for DidWebError {
    fn from(e: CaFileError) -> Self {
        match e {
            CaFileError::Read { path, source } => DidWebError::ReadCa { path, source },
            CaFileError::Invalid { path, reason } => DidWebError::InvalidCa { path, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::TlsAcceptor;

    /// What the test server answers for a path.
    #[derive(Clone)]
    enum Reply {
        Ok(Vec<u8>),
        /// 200 with no Content-Length: the body ends when the connection closes.
        OkUnsized(Vec<u8>),
        Status(u16, &'static str),
        Redirect(&'static str),
    }

    struct TestCa {
        ca_pem: String,
        leaf: CertificateDer<'static>,
        key: PrivatePkcs8KeyDer<'static>,
    }

    fn test_ca() -> TestCa {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "knoop didweb test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA cert");

        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params");
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("leaf cert");
        TestCa {
            ca_pem: ca_cert.pem(),
            leaf: leaf_cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        }
    }

    type Routes = Arc<Mutex<HashMap<String, Reply>>>;

    /// A minimal HTTPS/1.1 server on 127.0.0.1: one request per connection.
    async fn serve(ca: &TestCa, routes: Routes) -> SocketAddr {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![ca.leaf.clone()],
            PrivateKeyDer::Pkcs8(ca.key.clone_key()),
        )
        .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let routes = routes.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let reply = routes
                        .lock()
                        .ok()
                        .and_then(|r| r.get(&path).cloned())
                        .unwrap_or(Reply::Status(404, "Not Found"));
                    let _ = tls.write_all(&render(reply)).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        addr
    }

    fn render(reply: Reply) -> Vec<u8> {
        match reply {
            Reply::Ok(body) => [
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/did+json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes(),
                body,
            ]
            .concat(),
            Reply::OkUnsized(body) => [
                b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec(),
                body,
            ]
            .concat(),
            Reply::Status(code, reason) => format!(
                "HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .into_bytes(),
            Reply::Redirect(to) => format!(
                "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\
                 connection: close\r\n\r\n"
            )
            .into_bytes(),
        }
    }

    /// Accepts connections and never says a word.
    async fn silent_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        addr
    }

    /// A file removed on drop.
    struct TempFile(PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn temp_file(name: &str, contents: &[u8]) -> TempFile {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "knoop-didweb-test-{}-{n}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }

    struct Fixture {
        ca_file: TempFile,
        addr: SocketAddr,
        routes: Routes,
    }

    impl Fixture {
        async fn start() -> Fixture {
            let ca = test_ca();
            let routes = Routes::default();
            let addr = serve(&ca, routes.clone()).await;
            Fixture {
                ca_file: temp_file("ca.pem", ca.ca_pem.as_bytes()),
                addr,
                routes,
            }
        }

        /// The did:web DID for `path` (`""` or `":user:alice"`) on this server.
        fn did(&self, path: &str) -> String {
            format!("did:web:localhost%3A{}{path}", self.addr.port())
        }

        fn set(&self, path: &str, reply: Reply) {
            if let Ok(mut r) = self.routes.lock() {
                r.insert(path.to_owned(), reply);
            }
        }

        fn client(&self) -> DidWebClient {
            DidWebClient::new(Some(&self.ca_file.0), Duration::from_secs(10)).expect("client")
        }
    }

    fn doc(did: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "@context": "https://www.w3.org/ns/did/v1",
            "id": did,
        }))
        .expect("json")
    }

    #[tokio::test]
    async fn resolves_with_the_ca() {
        let f = Fixture::start().await;
        let root = f.did("");
        let alice = f.did(":user:alice");
        f.set("/.well-known/did.json", Reply::Ok(doc(&root)));
        f.set("/user/alice/did.json", Reply::OkUnsized(doc(&alice)));
        let c = f.client();
        let d = c.resolve(&root).await.expect("root document");
        assert_eq!(d["id"], root.as_str());
        let d = c.resolve(&alice).await.expect("alice's document");
        assert_eq!(d["id"], alice.as_str());
    }

    #[tokio::test]
    async fn tls_error_without_the_ca() {
        let f = Fixture::start().await;
        let did = f.did("");
        f.set("/.well-known/did.json", Reply::Ok(doc(&did)));
        let c = DidWebClient::new(None, Duration::from_secs(10)).expect("client");
        let e = c.resolve(&did).await.expect_err("untrusted server");
        assert!(matches!(e, DidWebError::Fetch(_)), "{e:?}");
        assert_eq!(e.code(), "internalError");
        let msg = e.to_string().to_lowercase();
        assert!(msg.contains("certificate"), "{msg}");
    }

    #[tokio::test]
    async fn missing_is_not_found() {
        let f = Fixture::start().await;
        let c = f.client();
        let e = c.resolve(&f.did(":nobody")).await.expect_err("404");
        assert!(matches!(e, DidWebError::NotFound(_)), "{e:?}");
        assert_eq!(e.code(), "notFound");
        f.set("/gone/did.json", Reply::Status(410, "Gone"));
        let e = c.resolve(&f.did(":gone")).await.expect_err("410");
        assert_eq!(e.code(), "notFound");
        f.set(
            "/broken/did.json",
            Reply::Status(500, "Internal Server Error"),
        );
        let e = c.resolve(&f.did(":broken")).await.expect_err("500");
        assert!(matches!(e, DidWebError::Fetch(_)), "{e:?}");
        assert_eq!(e.code(), "internalError");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let f = Fixture::start().await;
        let did = f.did(":moved");
        f.set("/elsewhere/did.json", Reply::Ok(doc(&did)));
        f.set("/moved/did.json", Reply::Redirect("/elsewhere/did.json"));
        let e = f.client().resolve(&did).await.expect_err("redirect");
        assert!(matches!(e, DidWebError::Fetch(_)), "{e:?}");
    }

    #[tokio::test]
    async fn other_id_is_invalid_document() {
        let f = Fixture::start().await;
        let did = f.did(":alice");
        f.set("/alice/did.json", Reply::Ok(doc(&f.did(":mallory"))));
        f.set("/junk/did.json", Reply::Ok(b"<html>".to_vec()));
        let c = f.client();
        let e = c.resolve(&did).await.expect_err("other id");
        assert!(matches!(e, DidWebError::InvalidDocument(_)), "{e:?}");
        assert_eq!(e.code(), "invalidDidDocument");
        let e = c.resolve(&f.did(":junk")).await.expect_err("not JSON");
        assert_eq!(e.code(), "invalidDidDocument");
    }

    #[tokio::test]
    async fn oversized_body_is_refused() {
        let f = Fixture::start().await;
        let big = f.did(":big");
        let stream = f.did(":stream");
        let mut body = doc(&big);
        body.resize(MAX_DID_WEB_DOCUMENT_BYTES + 1, b' ');
        f.set("/big/did.json", Reply::Ok(body));
        // No Content-Length: the cap has to stop the streamed read.
        let mut body = doc(&stream);
        body.resize(4 * MAX_DID_WEB_DOCUMENT_BYTES, b' ');
        f.set("/stream/did.json", Reply::OkUnsized(body));
        let c = f.client();
        for did in [big, stream] {
            let e = c.resolve(&did).await.expect_err("too big");
            assert!(matches!(e, DidWebError::InvalidDocument(_)), "{e:?}");
        }
        // Exactly at the limit is fine.
        let edge = f.did(":edge");
        let mut body = doc(&edge);
        body.resize(MAX_DID_WEB_DOCUMENT_BYTES, b' ');
        f.set("/edge/did.json", Reply::OkUnsized(body));
        c.resolve(&edge).await.expect("at the limit");
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let f = Fixture::start().await;
        let addr = silent_server().await;
        let timeout = Duration::from_millis(500);
        let c = DidWebClient::new(Some(&f.ca_file.0), timeout).expect("client");
        let t0 = Instant::now();
        let e = c
            .resolve(&format!("did:web:localhost%3A{}", addr.port()))
            .await
            .expect_err("silence");
        let took = t0.elapsed();
        assert!(matches!(e, DidWebError::Fetch(_)), "{e:?}");
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(took < timeout + Duration::from_secs(2), "took {took:?}");
    }

    #[tokio::test]
    async fn bad_input_and_bad_ca() {
        let c = DidWebClient::new(None, Duration::from_secs(1)).expect("client");
        for (did, code) in [
            ("", "invalidDid"),
            ("did:web:", "invalidDid"),
            ("did:web:a..b", "invalidDid"),
            ("did:web:127.0.0.1%3A443", "invalidDid"),
            ("did:web:example.com:..:x", "invalidDid"),
            (
                "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
                "methodNotSupported",
            ),
        ] {
            let e = c.resolve(did).await.expect_err(did);
            assert_eq!(e.code(), code, "{did}: {e}");
        }

        let missing = std::env::temp_dir().join("knoop-didweb-test-no-such-ca.pem");
        let e = DidWebClient::new(Some(&missing), Duration::from_secs(1)).expect_err("missing");
        assert!(matches!(e, DidWebError::ReadCa { .. }), "{e:?}");
        let junk = temp_file("junk.pem", b"not a certificate");
        let e = DidWebClient::new(Some(&junk.0), Duration::from_secs(1)).expect_err("junk");
        assert!(matches!(e, DidWebError::InvalidCa { .. }), "{e:?}");
    }
}
