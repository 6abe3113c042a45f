//! A local HTTPS server with a throw-away test CA, for did:web and other fetches in end-to-end
//! tests.
//!
//! [`TestHttps::start`] makes a fresh CA and a leaf certificate for `localhost` and `127.0.0.1`,
//! writes the CA as PEM into a temporary directory it owns (hand [`TestHttps::ca_pem_path`] to
//! the client under test), binds `127.0.0.1:0` and serves GET for a table of paths on its own
//! thread and tokio runtime: 404 for unknown paths, one request per connection. The table can
//! change while it runs ([`TestHttps::set`]); the server stops when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// Longest request head read before giving up on a connection.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A running HTTPS server; stops on drop.
pub struct TestHttps {
    addr: SocketAddr,
    files: Files,
    ca_pem: String,
    ca_pem_path: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestHttps {
    /// Starts serving `files` (`(path, body)`, path as in the request line, e.g.
    /// `/.well-known/did.json`).
    pub fn start(files: Vec<(String, Vec<u8>)>) -> anyhow::Result<TestHttps> {
        Self::start_with(files, None)
    }

    /// Like [`TestHttps::start`], and when `client_ca` (PEM) is given, every client must present
    /// a certificate that CA issued (mutual TLS): the handshake fails without one.
    pub fn start_with(
        files: Vec<(String, Vec<u8>)>,
        client_ca: Option<&str>,
    ) -> anyhow::Result<TestHttps> {
        let (ca_pem, leaf, key) = test_certificates()?;
        let dir = tempfile::Builder::new()
            .prefix("knoop-e2e-https-")
            .tempdir()?;
        let ca_pem_path = dir.path().join("ca.pem");
        std::fs::write(&ca_pem_path, &ca_pem)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots.add(c?)?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(vec![leaf], PrivateKeyDer::Pkcs8(key))?;
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let files: Files = Arc::new(Mutex::new(files.into_iter().collect()));
        let (stop_tx, stop_rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let served = files.clone();
        let thread = std::thread::Builder::new()
            .name(format!("test-https-{}", addr.port()))
            .spawn(move || runtime.block_on(run(listener, acceptor, served, stop_rx)))?;
        Ok(TestHttps {
            addr,
            files,
            ca_pem,
            ca_pem_path,
            _dir: dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The CA certificate (PEM) that signed the server's certificate.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `https://localhost:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port())
    }

    /// Adds or replaces the body served at `path`.
    pub fn set(&self, path: String, body: Vec<u8>) {
        if let Ok(mut f) = self.files.lock() {
            f.insert(path, body);
        }
    }

    /// Stops serving `path` (it answers 404 from now on).
    pub fn remove(&self, path: &str) {
        if let Ok(mut f) = self.files.lock() {
            f.remove(path);
        }
    }
}

impl Drop for TestHttps {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A throw-away CA with one server certificate for `localhost` and `127.0.0.1`, written as PEM
/// files into a temporary directory: what the nodes' public APIs (`public.tls_cert`,
/// `public.tls_key`) and their clients (`public.ca_file`) use in tests.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> anyhow::Result<TestCa> {
        let (ca_pem, leaf, key) = test_certificates()?;
        let dir = tempfile::Builder::new().prefix("knoop-e2e-ca-").tempdir()?;
        std::fs::write(dir.path().join("ca.pem"), ca_pem)?;
        let pem = |label: &str, der: &[u8]| {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                lines.join("\n")
            )
        };
        std::fs::write(
            dir.path().join("server.pem"),
            pem("CERTIFICATE", leaf.as_ref()),
        )?;
        std::fs::write(
            dir.path().join("server.key"),
            pem("PRIVATE KEY", key.secret_pkcs8_der()),
        )?;
        Ok(TestCa { dir })
    }

    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Node environment serving the public API over HTTPS with this CA's certificate and
    /// trusting the CA for calls to other nodes.
    pub fn public_env(&self) -> Vec<(String, String)> {
        let p = |f: &str| self.dir.path().join(f).display().to_string();
        vec![
            ("KNOOP_PUBLIC__TLS_CERT".into(), p("server.pem")),
            ("KNOOP_PUBLIC__TLS_KEY".into(), p("server.key")),
            ("KNOOP_PUBLIC__CA_FILE".into(), p("ca.pem")),
        ]
    }
}

impl TestCa {
    /// [`TestCa::public_env`] on a free port of `127.0.0.1`, published as
    /// `https://localhost:<port>` (a host name, so hosted DIDs get did:web ids): the port and
    /// the environment.
    pub fn public_env_on_localhost(&self) -> anyhow::Result<(u16, Vec<(String, String)>)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut env = self.public_env();
        env.push(("KNOOP_PUBLIC__LISTEN".into(), format!("127.0.0.1:{port}")));
        env.push((
            "KNOOP_PUBLIC__URL".into(),
            format!("https://localhost:{port}"),
        ));
        Ok((port, env))
    }
}

/// A client identity for mutual TLS: `(CA PEM, client certificate PEM, client key PEM)`, the
/// certificate issued by a fresh CA for client authentication.
pub fn client_identity(name: &str) -> anyhow::Result<(String, String, String)> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "knoop e2e client CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name.push(DnType::CommonName, name);
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// A fresh CA (PEM) and a leaf certificate and key for `localhost` and `127.0.0.1`.
fn test_certificates(
) -> anyhow::Result<(String, CertificateDer<'static>, PrivatePkcs8KeyDer<'static>)> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "knoop e2e test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;
    Ok((
        ca_cert.pem(),
        leaf_cert.der().clone(),
        PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    ))
}

async fn run(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    files: Files,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("test https: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let files = files.clone();
                tokio::spawn(async move {
                    // Handshake failures (a client without the CA) are expected in tests.
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = answer(tls, &files).await;
                    }
                });
            }
        }
    }
}

/// Reads one request head and writes the response, then closes.
async fn answer<S>(mut conn: S, files: &Files) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD {
            return Err(anyhow!("request head too long"));
        }
        let n = conn.read(&mut buf).await.context("reading request")?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.split_whitespace();
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let body = files.lock().ok().and_then(|f| f.get(path).cloned());
    let response = match (method, body) {
        ("GET", Some(body)) => {
            let kind = if path.ends_with(".json") {
                "application/json"
            } else {
                "application/octet-stream"
            };
            [
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes(),
                body,
            ]
            .concat()
        }
        ("GET", None) => status(404, "Not Found"),
        _ => status(405, "Method Not Allowed"),
    };
    conn.write_all(&response).await?;
    conn.shutdown().await?;
    Ok(())
}

fn status(code: u16, reason: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(ca: Option<&Path>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(10));
        if let Some(p) = ca {
            let pem = std::fs::read(p).expect("CA file");
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"));
        }
        b.build().expect("client")
    }

    #[tokio::test]
    async fn serves_files_over_tls() {
        let https =
            TestHttps::start(vec![("/a.json".into(), b"{\"a\":1}".to_vec())]).expect("start");
        let c = client(Some(https.ca_pem_path()));
        let r = c.get(https.url("/a.json")).send().await.expect("GET");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "{\"a\":1}");
        // Also by IP.
        let r = c
            .get(format!("https://127.0.0.1:{}/a.json?x=1", https.port()))
            .send()
            .await
            .expect("GET by IP");
        assert_eq!(r.status(), 200);

        let r = c.get(https.url("/b")).send().await.expect("GET");
        assert_eq!(r.status(), 404);
        https.set("/b".into(), b"bee".to_vec());
        let r = c.get(https.url("/b")).send().await.expect("GET");
        assert_eq!(r.text().await.expect("body"), "bee");
        https.remove("/b");
        let r = c.get(https.url("/b")).send().await.expect("GET");
        assert_eq!(r.status(), 404);

        // A client without the CA fails the handshake; the server carries on.
        assert!(client(None).get(https.url("/a.json")).send().await.is_err());
        let r = c.get(https.url("/a.json")).send().await.expect("GET");
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn stops_on_drop() {
        let https = TestHttps::start(Vec::new()).expect("start");
        let port = https.port();
        let dir = https.ca_pem_path().to_path_buf();
        drop(https);
        assert!(!dir.exists());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
