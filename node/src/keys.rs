//! The node key: an Ed25519 key that is the node's libp2p identity and signs the transactions the
//! node publishes itself. Kept in `<data_dir>/node.key` (hex, mode 0600), created on first start.
//! Encryption at rest and per-tenant keys come with the DID issue.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("node key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("node key {path} is not 64 hex digits")]
    Format { path: String },
}

pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyError> {
    let p = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut b = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut b).map_err(|_| KeyError::Format { path: p })?;
            Ok(SigningKey::from_bytes(&b))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(|source| KeyError::Io {
                path: p.clone(),
                source,
            })?;
            f.write_all(hex::encode(key.to_bytes()).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|source| KeyError::Io { path: p, source })?;
            Ok(key)
        }
        Err(source) => Err(KeyError::Io { path: p, source }),
    }
}
