//! The keystore: Ed25519 private keys generated and held by the node, encrypted at rest.
//!
//! Keys live in the store's `keys` family, each sealed with XChaCha20-Poly1305 under the
//! master key (from config, the environment, or a key file), with the key id as associated data
//! so a sealed key cannot be moved to another id. Secrets never leave this module: callers get
//! public keys and signatures. A check value written on first use makes a wrong master key fail
//! at start with a clear error instead of at the first signature. Master keys rotate by listing
//! the old one under `keys.previous_master_keys`: at start every key sealed under it is re-sealed
//! under the current one.

use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{SigningKey, VerifyingKey};
use knoop_gossip::StoreError;
use rand::RngCore;
use zeroize::Zeroize;

use crate::store::{Family, NodeStore};

/// Record format version (first byte of every sealed value).
const SEAL_V1: u8 = 1;
/// Key of the check value.
const CHECK_ID: &[u8] = b"\x00check";
const CHECK_PLAINTEXT: &[u8] = b"knoop keystore check v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("keystore: {0}")]
    Db(#[from] StoreError),
    #[error("keystore: the master key does not open this store (wrong keys.master_key?)")]
    WrongMasterKey,
    #[error("keystore: sealed key {0} is damaged or sealed under another master key")]
    Unseal(String),
    #[error("keystore: no key {0}")]
    NoKey(String),
    #[error("keystore: key {0} exists already")]
    Exists(String),
    #[error("master key: {0}")]
    MasterKey(String),
}

/// A 32-byte master key, wiped on drop.
pub struct MasterKey([u8; 32]);

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl MasterKey {
    /// From 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, KeyStoreError> {
        let mut k = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut k)
            .map_err(|_| KeyStoreError::MasterKey("must be 64 hex digits (32 bytes)".into()))?;
        Ok(MasterKey(k))
    }

    /// Reads a key file (64 hex digits), or creates one (mode 0600) when `create` and missing.
    pub fn from_file(path: &Path, create: bool) -> Result<(Self, bool), KeyStoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_hex(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut k = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut k);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                use std::io::Write;
                let mut hexed = hex::encode(k);
                let res = opts
                    .open(path)
                    .and_then(|mut f| f.write_all(hexed.as_bytes()).and_then(|_| f.sync_all()));
                hexed.zeroize();
                res.map_err(|e| KeyStoreError::MasterKey(format!("{}: {e}", path.display())))?;
                Ok((MasterKey(k), true))
            }
            Err(e) => Err(KeyStoreError::MasterKey(format!("{}: {e}", path.display()))),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

/// The node's private keys.
pub struct KeyStore {
    store: Arc<dyn NodeStore>,
    cipher: XChaCha20Poly1305,
}

fn seal(cipher: &XChaCha20Poly1305, id: &[u8], secret: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    // Encryption with a fresh nonce and in-memory buffers cannot fail.
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: id,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(1 + 24 + ct.len());
    out.push(SEAL_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn unseal(cipher: &XChaCha20Poly1305, id: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 1 + 24 + 16 || sealed[0] != SEAL_V1 {
        return None;
    }
    cipher
        .decrypt(
            XNonce::from_slice(&sealed[1..25]),
            Payload {
                msg: &sealed[25..],
                aad: id,
            },
        )
        .ok()
}

impl KeyStore {
    /// Opens the keystore in `store` under `master`, re-sealing keys found under any of
    /// `previous` (master-key rotation).
    pub fn open(
        store: Arc<dyn NodeStore>,
        master: &MasterKey,
        previous: &[MasterKey],
    ) -> Result<Self, KeyStoreError> {
        let cipher = master.cipher();
        let ks = KeyStore { store, cipher };
        match ks.store.get(Family::Keys, CHECK_ID)? {
            None => {
                let check = seal(&ks.cipher, CHECK_ID, CHECK_PLAINTEXT);
                ks.store
                    .write(Family::Keys, &[(CHECK_ID.to_vec(), check)], &[], true)?;
            }
            Some(v) => {
                if unseal(&ks.cipher, CHECK_ID, &v).as_deref() != Some(CHECK_PLAINTEXT) {
                    let old = previous
                        .iter()
                        .map(|m| m.cipher())
                        .find(|c| unseal(c, CHECK_ID, &v).as_deref() == Some(CHECK_PLAINTEXT));
                    match old {
                        Some(old) => ks.reseal(&old)?,
                        None => return Err(KeyStoreError::WrongMasterKey),
                    }
                }
            }
        }
        Ok(ks)
    }

    /// Re-seals every key from the `old` master key to the current one, atomically.
    fn reseal(&self, old: &XChaCha20Poly1305) -> Result<(), KeyStoreError> {
        let mut resealed = Vec::new();
        for (k, v) in self.store.scan(Family::Keys, b"")? {
            let mut secret = unseal(old, &k, &v)
                .ok_or_else(|| KeyStoreError::Unseal(String::from_utf8_lossy(&k).into_owned()))?;
            let sealed = seal(&self.cipher, &k, &secret);
            secret.zeroize();
            resealed.push((k, sealed));
        }
        let n = resealed.len();
        self.store.write(Family::Keys, &resealed, &[], true)?;
        tracing::info!(records = n, "keystore re-sealed under the new master key");
        Ok(())
    }

    /// Generates a new key under `id` and returns its public half.
    pub fn generate(&self, id: &str) -> Result<VerifyingKey, KeyStoreError> {
        if self.contains(id)? {
            return Err(KeyStoreError::Exists(id.to_owned()));
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        self.put(id, &key)?;
        Ok(key.verifying_key())
    }

    /// Stores an existing key under `id` (the node identity key, imported once).
    pub fn put(&self, id: &str, key: &SigningKey) -> Result<(), KeyStoreError> {
        let mut secret = key.to_bytes();
        let res = self.put_bytes(id, &secret);
        secret.zeroize();
        res
    }

    /// Stores a 32-byte secret that is not an Ed25519 key (an X25519 secret, a content key).
    pub fn put_bytes(&self, id: &str, secret: &[u8; 32]) -> Result<(), KeyStoreError> {
        let sealed = seal(&self.cipher, id.as_bytes(), secret);
        self.store
            .write(Family::Keys, &[(id.as_bytes().to_vec(), sealed)], &[], true)?;
        Ok(())
    }

    /// Stores several 32-byte secrets in one durable write.
    pub fn put_bytes_many(&self, secrets: &[(String, &[u8; 32])]) -> Result<(), KeyStoreError> {
        let sealed: Vec<(Vec<u8>, Vec<u8>)> = secrets
            .iter()
            .map(|(id, s)| {
                (
                    id.as_bytes().to_vec(),
                    seal(&self.cipher, id.as_bytes(), *s),
                )
            })
            .collect();
        self.store.write(Family::Keys, &sealed, &[], true)?;
        Ok(())
    }

    /// Runs `f` with the 32-byte secret `id`; the secret does not outlive the call.
    pub fn with_bytes<T>(
        &self,
        id: &str,
        f: impl FnOnce(&[u8; 32]) -> T,
    ) -> Result<T, KeyStoreError> {
        let mut bytes = self.load_bytes(id)?;
        let out = f(&bytes);
        bytes.zeroize();
        Ok(out)
    }

    fn load_bytes(&self, id: &str) -> Result<[u8; 32], KeyStoreError> {
        let sealed = self
            .store
            .get(Family::Keys, id.as_bytes())?
            .ok_or_else(|| KeyStoreError::NoKey(id.to_owned()))?;
        let mut secret = unseal(&self.cipher, id.as_bytes(), &sealed)
            .ok_or_else(|| KeyStoreError::Unseal(id.to_owned()))?;
        let bytes: Result<[u8; 32], _> = secret.as_slice().try_into();
        secret.zeroize();
        bytes.map_err(|_| KeyStoreError::Unseal(id.to_owned()))
    }

    pub fn contains(&self, id: &str) -> Result<bool, KeyStoreError> {
        Ok(self.store.get(Family::Keys, id.as_bytes())?.is_some())
    }

    fn load(&self, id: &str) -> Result<SigningKey, KeyStoreError> {
        let mut bytes = self.load_bytes(id)?;
        let key = SigningKey::from_bytes(&bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// The public key of `id`.
    #[cfg(test)]
    pub fn public(&self, id: &str) -> Result<VerifyingKey, KeyStoreError> {
        Ok(self.load(id)?.verifying_key())
    }

    /// Runs `f` with the private key of `id` (for builders that sign themselves); the key does
    /// not outlive the call.
    pub fn with_key<T>(
        &self,
        id: &str,
        f: impl FnOnce(&SigningKey) -> T,
    ) -> Result<T, KeyStoreError> {
        let key = self.load(id)?;
        Ok(f(&key))
    }

    /// Deletes key `id` (after a rotation has retired it).
    pub fn delete(&self, id: &str) -> Result<(), KeyStoreError> {
        self.store
            .write(Family::Keys, &[], &[id.as_bytes().to_vec()], true)?;
        Ok(())
    }

    /// Ids of all keys whose id starts with `prefix`.
    pub fn ids(&self, prefix: &str) -> Result<Vec<String>, KeyStoreError> {
        Ok(self
            .store
            .scan(Family::Keys, prefix.as_bytes())?
            .into_iter()
            .filter(|(k, _)| k.as_slice() != CHECK_ID)
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, Verifier};

    fn temp() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("knoop-ks-test-{}", rand::random::<u64>()))
    }

    #[test]
    fn keys_are_sealed_sign_and_survive_master_key_rotation() {
        let dir = temp();
        let m1 = MasterKey([1; 32]);
        let m2 = MasterKey([2; 32]);
        let pk = {
            let store: Arc<dyn NodeStore> = Arc::new(crate::store::RocksStore::open(&dir).unwrap());
            let ks = KeyStore::open(store.clone(), &m1, &[]).unwrap();
            let pk = ks.generate("did:knoop:a#key-1").unwrap();
            assert!(matches!(
                ks.generate("did:knoop:a#key-1"),
                Err(KeyStoreError::Exists(_))
            ));
            let sig = ks
                .with_key("did:knoop:a#key-1", |k| k.sign(b"msg"))
                .unwrap();
            pk.verify(b"msg", &sig).unwrap();
            assert_eq!(ks.ids("did:knoop:a").unwrap(), vec!["did:knoop:a#key-1"]);
            // The secret is not stored in the clear.
            let raw = store
                .get(Family::Keys, b"did:knoop:a#key-1")
                .unwrap()
                .unwrap();
            let secret = ks.load("did:knoop:a#key-1").unwrap().to_bytes();
            assert!(!raw.windows(32).any(|w| w == secret));
            // A sealed key moved to another id does not open.
            store
                .write(
                    Family::Keys,
                    &[(b"did:knoop:b#key-1".to_vec(), raw)],
                    &[],
                    true,
                )
                .unwrap();
            assert!(matches!(
                ks.with_key("did:knoop:b#key-1", |k| k.sign(b"m")),
                Err(KeyStoreError::Unseal(_))
            ));
            ks.delete("did:knoop:b#key-1").unwrap();
            pk
        };
        {
            let store: Arc<dyn NodeStore> = Arc::new(crate::store::RocksStore::open(&dir).unwrap());
            assert!(matches!(
                KeyStore::open(store.clone(), &m2, &[]),
                Err(KeyStoreError::WrongMasterKey)
            ));
            let ks = KeyStore::open(store, &m2, &[MasterKey([1; 32])]).unwrap();
            assert_eq!(ks.public("did:knoop:a#key-1").unwrap(), pk);
        }
        let store: Arc<dyn NodeStore> = Arc::new(crate::store::RocksStore::open(&dir).unwrap());
        let ks = KeyStore::open(store.clone(), &m2, &[]).unwrap();
        assert_eq!(ks.public("did:knoop:a#key-1").unwrap(), pk);
        assert!(matches!(ks.public("nope"), Err(KeyStoreError::NoKey(_))));
        drop((ks, store));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_keystore_seals_in_either_store_and_refuses_another_master_key() {
        crate::store::conformance::both(|open| {
            let pk = {
                let ks =
                    KeyStore::open(open(), &MasterKey::from_hex(&"11".repeat(32)).unwrap(), &[])
                        .unwrap();
                let pk = ks.generate("did:knoop:a#key-1").unwrap();
                assert_eq!(ks.ids("did:knoop:a").unwrap(), vec!["did:knoop:a#key-1"]);
                pk
            };
            let store = open();
            let sealed = store.get(Family::Keys, b"did:knoop:a#key-1").unwrap();
            // A version byte, a 24-byte nonce, the 32-byte secret sealed, and a 16-byte tag.
            assert_eq!(sealed.map(|s| s.len()), Some(1 + 24 + 32 + 16));
            assert!(matches!(
                KeyStore::open(
                    store.clone(),
                    &MasterKey::from_hex(&"22".repeat(32)).unwrap(),
                    &[]
                ),
                Err(KeyStoreError::WrongMasterKey)
            ));
            let ks = KeyStore::open(store, &MasterKey::from_hex(&"11".repeat(32)).unwrap(), &[])
                .unwrap();
            assert_eq!(ks.public("did:knoop:a#key-1").unwrap(), pk);
        });
    }
}
