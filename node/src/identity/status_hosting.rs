//! Bitstring Status Lists for the credentials issued here (spec: `specs/credentials.md` §9a;
//! the national guide's GFI-003): revocation that anyone can check with one HTTPS GET, not only
//! the nodes of the knoop network.
//!
//! Each issuer hosted here has revocation lists of 131,072 entries (16 KiB, the spec's minimum
//! for herd privacy). A credential gets a random free index of the issuer's current list (a list
//! is filled to half, then the next one starts), so an index says nothing about when or to whom
//! a credential was issued. The state is in the store's `meta` family:
//!
//! - `status-list/<issuer>/<n>`: the allocated bitmap ‖ the revoked bitmap (2 × 16 KiB);
//! - `status-list-current/<issuer>`: the list being filled (u32, big-endian);
//! - `status-index/<issuer>\0<credential id>`: the list and index of a credential (2 × u32).
//!
//! The list credential is signed by the issuer on demand (eddsa-jcs-2022 JSON, or a `vc+jwt`
//! when asked for), kept for a minute, and signed anew after a revocation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use knoop_did::knoop::time::to_rfc3339_ms;
use knoop_vc::proof::{sign, Cryptosuite, ProofOptions};
use rand::Rng;
use serde_json::{json, Value};

use crate::identity::did_ops::{DidOps, OpsError};
use crate::store::NodeStore;

/// Entries per list.
pub const LIST_BITS: usize = 131_072;
const LIST_BYTES: usize = LIST_BITS / 8;
/// Entries allocated in one list before the next one starts.
const FILL_LIMIT: usize = LIST_BITS / 2;
/// How long a signed list credential is served before it is signed again.
const SIGNED_TTL: Duration = Duration::from_secs(60);
/// The validity of a signed list credential.
const LIST_VALIDITY_MS: u64 = 24 * 3600 * 1000;
/// Prefix of the DIDs whose lists are hosted.
const KNOOP_PREFIX: &str = "did:knoop:";

/// Why a status list operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusHostError {
    #[error("status list store: {0}")]
    Store(#[from] knoop_gossip::StoreError),
    #[error("status list state of {0} is corrupt")]
    Corrupt(String),
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error("signing the status list: {0}")]
    Sign(String),
    #[error("status list lock poisoned")]
    Poisoned,
}

/// A signed list credential, as served.
#[derive(Clone, Debug)]
pub enum ListCredential {
    /// Data Integrity JSON (`application/vc`).
    Json(Value),
    /// A `vc+jwt` (`application/vc+jwt`).
    Jwt(String),
}

/// (issuer, list, as a JWT) of a signed list credential.
type SignedKey = (String, u32, bool);

/// The status lists of the issuers hosted here.
pub struct HostedStatusLists {
    store: Arc<dyn NodeStore>,
    dids: Arc<DidOps>,
    /// The public API's base URL, when it is `https` (lists must be fetchable).
    base: Option<String>,
    /// Serialises allocation and revocation.
    lock: Mutex<()>,
    /// (issuer, list, jwt) → (signed at, credential).
    signed: Mutex<HashMap<SignedKey, (Instant, ListCredential)>>,
}

fn list_key(issuer: &str, n: u32) -> Vec<u8> {
    format!("status-list/{issuer}/{n}").into_bytes()
}

fn current_key(issuer: &str) -> Vec<u8> {
    format!("status-list-current/{issuer}").into_bytes()
}

fn index_key(issuer: &str, credential: &str) -> Vec<u8> {
    [
        b"status-index/".as_slice(),
        issuer.as_bytes(),
        b"\0",
        credential.as_bytes(),
    ]
    .concat()
}

fn bit(bytes: &[u8], i: usize) -> bool {
    bytes.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}

fn set_bit(bytes: &mut [u8], i: usize) {
    if let Some(b) = bytes.get_mut(i / 8) {
        *b |= 0x80 >> (i % 8);
    }
}

impl HostedStatusLists {
    /// Lists are hosted only when `public_url` is `https` (a verifier fetches lists over HTTPS
    /// only); otherwise credentials are issued without a status entry.
    pub fn new(store: Arc<dyn NodeStore>, dids: Arc<DidOps>, public_url: Option<&str>) -> Self {
        HostedStatusLists {
            store,
            dids,
            base: public_url
                .filter(|u| u.starts_with("https://"))
                .map(|u| u.trim_end_matches('/').to_owned()),
            lock: Mutex::new(()),
            signed: Mutex::new(HashMap::new()),
        }
    }

    /// The URL of list `n` of `issuer` (a did:knoop DID).
    pub fn list_url(&self, issuer: &str, n: u32) -> Option<String> {
        let id = issuer.strip_prefix(KNOOP_PREFIX)?;
        Some(format!("{}/statuslists/{id}/{n}", self.base.as_ref()?))
    }

    fn load(&self, issuer: &str, n: u32) -> Result<Vec<u8>, StatusHostError> {
        match self.store.get_meta(&list_key(issuer, n))? {
            None => Ok(vec![0; 2 * LIST_BYTES]),
            Some(v) if v.len() == 2 * LIST_BYTES => Ok(v),
            Some(_) => Err(StatusHostError::Corrupt(format!("{issuer} list {n}"))),
        }
    }

    /// Allocates a status entry for credential `credential` of `issuer`: the
    /// `BitstringStatusListEntry` to put in its `credentialStatus`, or `None` when lists are
    /// not hosted (no https public URL, or an issuer that is not a did:knoop DID).
    pub fn allocate(
        &self,
        issuer: &str,
        credential: &str,
    ) -> Result<Option<Value>, StatusHostError> {
        if self.list_url(issuer, 0).is_none() {
            return Ok(None);
        }
        let _guard = self.lock.lock().map_err(|_| StatusHostError::Poisoned)?;
        let mut n = match self.store.get_meta(&current_key(issuer))? {
            None => 0,
            Some(v) => u32::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StatusHostError::Corrupt(issuer.to_owned()))?,
            ),
        };
        let mut state = self.load(issuer, n)?;
        let used = state[..LIST_BYTES]
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum::<usize>();
        if used >= FILL_LIMIT {
            n += 1;
            state = self.load(issuer, n)?;
            self.store
                .put_meta(&current_key(issuer), &n.to_be_bytes())?;
        }
        // At most half full: a random probe finds a free index in two tries on average.
        let mut rng = rand::rngs::OsRng;
        let index = loop {
            let i = rng.gen_range(0..LIST_BITS);
            if !bit(&state[..LIST_BYTES], i) {
                break i;
            }
        };
        set_bit(&mut state[..LIST_BYTES], index);
        self.store.put_meta(&list_key(issuer, n), &state)?;
        let mut at = n.to_be_bytes().to_vec();
        at.extend_from_slice(&(index as u32).to_be_bytes());
        self.store.put_meta(&index_key(issuer, credential), &at)?;
        let url = self
            .list_url(issuer, n)
            .ok_or_else(|| StatusHostError::Corrupt(issuer.to_owned()))?;
        Ok(Some(json!({
            "id": format!("{url}#{index}"),
            "type": knoop_vc::status::ENTRY_TYPE,
            "statusPurpose": "revocation",
            "statusListIndex": index.to_string(),
            "statusListCredential": url,
        })))
    }

    /// Sets the revocation bit of `credential` of `issuer`, if it has an entry here. Returns
    /// whether it had one.
    pub fn revoke(&self, issuer: &str, credential: &str) -> Result<bool, StatusHostError> {
        let _guard = self.lock.lock().map_err(|_| StatusHostError::Poisoned)?;
        let Some(at) = self.store.get_meta(&index_key(issuer, credential))? else {
            return Ok(false);
        };
        let (n, index) = match at.as_slice() {
            [a, b, c, d, e, f, g, h] => (
                u32::from_be_bytes([*a, *b, *c, *d]),
                u32::from_be_bytes([*e, *f, *g, *h]) as usize,
            ),
            _ => return Err(StatusHostError::Corrupt(credential.to_owned())),
        };
        let mut state = self.load(issuer, n)?;
        set_bit(&mut state[LIST_BYTES..], index);
        self.store.put_meta(&list_key(issuer, n), &state)?;
        if let Ok(mut s) = self.signed.lock() {
            s.retain(|(i, l, _), _| !(i == issuer && *l == n));
        }
        tracing::info!(%issuer, list = n, index, "status list bit set");
        Ok(true)
    }

    /// List `n` of the issuer `did:knoop:<id>`, signed by it: `None` if that issuer is not
    /// hosted here or has no such list.
    pub fn list_credential(
        &self,
        id: &str,
        n: u32,
        jwt: bool,
    ) -> Result<Option<ListCredential>, StatusHostError> {
        let issuer = format!("{KNOOP_PREFIX}{id}");
        let Some(url) = self.list_url(&issuer, n) else {
            return Ok(None);
        };
        if let Ok(s) = self.signed.lock() {
            if let Some((at, c)) = s.get(&(issuer.clone(), n, jwt)) {
                if at.elapsed() < SIGNED_TTL {
                    return Ok(Some(c.clone()));
                }
            }
        }
        let current = match self.store.get_meta(&current_key(&issuer))? {
            None => 0,
            Some(v) => v
                .as_slice()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StatusHostError::Corrupt(issuer.clone()))?,
        };
        if n > current || !self.dids.hosted()?.contains(&issuer) {
            return Ok(None);
        }
        let state = self.load(&issuer, n)?;
        let revoked: Vec<usize> = (0..LIST_BITS)
            .filter(|&i| bit(&state[LIST_BYTES..], i))
            .collect();
        let now = knoop_gossip::tx::now_ms();
        let vc = json!({
            "@context": [knoop_vc::types::CREDENTIALS_V2],
            "id": url,
            "type": ["VerifiableCredential", knoop_vc::status::LIST_CREDENTIAL_TYPE],
            "issuer": issuer,
            "validFrom": to_rfc3339_ms(now),
            "validUntil": to_rfc3339_ms(now + LIST_VALIDITY_MS),
            "credentialSubject": {
                "id": format!("{url}#list"),
                "type": "BitstringStatusList",
                "statusPurpose": "revocation",
                "encodedList": knoop_vc::status::encode_list(&revoked, LIST_BITS),
            },
        });
        let contexts = knoop_vc::types::knoop_contexts();
        let signed = self
            .dids
            .with_assertion_key(&issuer, |vm, key| {
                if jwt {
                    knoop_vc::jose::sign(&vc, vm, &knoop_vc::jws::SigningKey::Ed25519(key.clone()))
                        .map(ListCredential::Jwt)
                        .map_err(|e| e.to_string())
                } else {
                    let mut opts = ProofOptions::new(Cryptosuite::EddsaJcs2022, vm);
                    opts.created = Some(to_rfc3339_ms(now));
                    sign(&vc, &opts, key, &contexts)
                        .map(ListCredential::Json)
                        .map_err(|e| e.to_string())
                }
            })?
            .map_err(StatusHostError::Sign)?;
        if let Ok(mut s) = self.signed.lock() {
            s.retain(|_, (at, _)| at.elapsed() < SIGNED_TTL);
            s.insert((issuer, n, jwt), (Instant::now(), signed.clone()));
        }
        Ok(Some(signed))
    }
}
