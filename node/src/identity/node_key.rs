//! The node identity key: the Ed25519 key that is the node's libp2p identity and signs the binding
//! between its peer id and its DID. Kept in the keystore (sealed at rest) under
//! [`NODE_IDENTITY`]; created on first start. A plaintext `node.key` left by an earlier version is
//! imported into the keystore once and then removed.

use std::path::Path;

use ed25519_dalek::SigningKey;

use crate::identity::keystore::{KeyStore, KeyStoreError};

/// Keystore id of the node identity key.
pub const NODE_IDENTITY: &str = "node-identity";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("node key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("node key {path} is not 64 hex digits")]
    Format { path: String },
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
}

/// The node identity key, from the keystore (importing `legacy` if present, else creating one).
pub fn node_identity(keys: &KeyStore, legacy: &Path) -> Result<SigningKey, KeyError> {
    if keys.contains(NODE_IDENTITY)? {
        return Ok(keys.with_key(NODE_IDENTITY, |k| k.clone())?);
    }
    let p = legacy.display().to_string();
    let key = match std::fs::read_to_string(legacy) {
        Ok(text) => {
            let mut b = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut b)
                .map_err(|_| KeyError::Format { path: p.clone() })?;
            SigningKey::from_bytes(&b)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            SigningKey::generate(&mut rand::rngs::OsRng)
        }
        Err(source) => return Err(KeyError::Io { path: p, source }),
    };
    keys.put(NODE_IDENTITY, &key)?;
    if legacy.exists() {
        std::fs::remove_file(legacy).map_err(|source| KeyError::Io { path: p, source })?;
        tracing::info!("imported the plaintext node key into the keystore and removed the file");
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::keystore::MasterKey;

    #[test]
    fn a_legacy_key_is_imported_once_and_the_file_removed() {
        let dir = std::env::temp_dir().join(format!("knoop-keys-test-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let legacy = dir.join("node.key");
        std::fs::write(&legacy, hex::encode([9u8; 32])).unwrap();
        let store: std::sync::Arc<dyn crate::store::NodeStore> =
            std::sync::Arc::new(crate::store::RocksStore::open(&dir.join("store")).unwrap());
        let ks = KeyStore::open(
            store.clone(),
            &MasterKey::from_hex(&"11".repeat(32)).unwrap(),
            &[],
        )
        .unwrap();
        let k = node_identity(&ks, &legacy).unwrap();
        assert_eq!(k.to_bytes(), [9u8; 32]);
        assert!(!legacy.exists());
        assert_eq!(node_identity(&ks, &legacy).unwrap().to_bytes(), [9u8; 32]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
