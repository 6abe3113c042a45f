//! The node's outgoing HTTPS: one way to build a client (rustls, extra roots from a PEM file,
//! no redirects, bounded time) for every service that calls out (did:web, status lists, source
//! systems, other nodes' public APIs), and the error text they all report.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest CA file read (a bundle of a few roots is a few KiB).
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// Why a CA file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaFileError {
    #[error("reading CA file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Why an HTTPS client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(transparent)]
    Ca(#[from] CaFileError),
    #[error("building the HTTPS client")]
    Build(#[source] reqwest::Error),
}

/// The certificates in the PEM file `path` (at most [`MAX_CA_FILE_BYTES`], at least one).
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    use std::io::Read as _;
    let read_err = |source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(read_err)?;
    let invalid = |reason: String| CaFileError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(invalid(format!("larger than {MAX_CA_FILE_BYTES} bytes")));
    }
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| invalid(error_chain(&e)))?;
    if certs.is_empty() {
        return Err(invalid("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// A client builder with the node's rules: rustls, no redirects, `timeout` for connecting and
/// for the whole exchange, the extra roots in `ca_file`.
pub fn builder(
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::ClientBuilder, CaFileError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout);
    if let Some(f) = ca_file {
        for c in read_ca_file(f)? {
            b = b.add_root_certificate(c);
        }
    }
    Ok(b)
}

/// An HTTP client for other nodes' public APIs and source systems (see [`builder`]).
pub fn client(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, ClientError> {
    builder(ca_file, timeout)?
        .build()
        .map_err(ClientError::Build)
}

/// The error and its causes on one line: reqwest's own message hides the TLS or IO reason.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

/// Is `url` a place to deliver callbacks (notifications) to: `https://` with a host, or
/// `http://` on a loopback address (an EHR on the same machine)?
pub fn is_callback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| match u.scheme() {
        "https" => u.has_host(),
        "http" => matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
        _ => false,
    })
}
