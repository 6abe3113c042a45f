//! The credential issuer of each organisation hosted here (spec: `specs/oid4vci.md`; OpenID for
//! Verifiable Credential Issuance 1.0, the national guide's GFI-002): an organisation acting as
//! registry authority offers a credential with a pre-authorized code (optionally guarded by a
//! transaction code given to the holder out of band); the holder's wallet redeems the code at the
//! issuer's token endpoint, takes a `c_nonce` from the nonce endpoint, proves possession of a key
//! of its DID and receives the credential, bound to that DID, with a status list entry.
//!
//! Offers live in the store's `private` family (fsynced), so a restart loses none:
//! `vo/<sha256 of the pre-authorized code>` holds the offer, `vt/<sha256 of the access token>`
//! and `vr/<reference>` point at it, and `vc/<reference>` keeps the code itself until it is
//! redeemed (the offer served by reference must contain it). Tokens and transaction codes are
//! kept only as hashes.
//! Each offer yields one credential. `c_nonce`s are single-use and live in memory (a restart
//! asks the wallet for a fresh one with `invalid_nonce`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use knoop_did::document::Relationship;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::identity::credentials::{Credentials, Fetched};
use crate::identity::did_ops::DidOps;
use crate::identity::issuing::{self, CredentialRequest, IssueError};
use crate::identity::status_hosting::HostedStatusLists;
use crate::store::NodeStore;

/// Default and longest lifetime of an offer.
pub const DEFAULT_OFFER_TTL_S: u64 = 24 * 3600;
pub const MAX_OFFER_TTL_S: u64 = 30 * 24 * 3600;
/// Lifetime of an access token for the credential endpoint.
pub const ACCESS_TOKEN_TTL_S: u64 = 300;
/// Lifetime of a `c_nonce`.
pub const C_NONCE_TTL_S: u64 = 300;
/// Wrong transaction codes after which an offer is void.
pub const MAX_TX_CODE_FAILURES: u32 = 5;
/// Digits of a transaction code.
pub const TX_CODE_DIGITS: usize = 6;
/// Most `c_nonce`s live at once (a full cache refuses new ones: the wallet retries).
const MAX_NONCES: usize = 100_000;
/// Longest parameter of a token request read.
const MAX_PARAM_BYTES: usize = 8 * 1024;

pub mod errors;
pub mod metadata;
pub mod proof;

use errors::{cred_error, token_error};
pub use errors::{CredentialError, TokenError};
pub use metadata::PRE_AUTHORIZED_CODE;
pub use proof::PROOF_JWT_TYPE;

use metadata::parse_configuration_id;
pub use metadata::{
    configuration_id, issuer_id, issuer_metadata, server_metadata, Format, BINDING_METHODS, TYPES,
};
pub use proof::{check_proof_jwt, KeyProof};

/// What to offer.
#[derive(Clone, Debug)]
pub struct OfferRequest {
    /// The issuing organisation (a DID hosted here).
    pub issuer: String,
    pub type_: String,
    pub format: Format,
    /// The subject's claims; with `id`, only that DID may receive the credential.
    pub claims: Value,
    pub valid_until: Option<String>,
    /// Guard the offer with a transaction code (given to the holder out of band).
    pub tx_code: bool,
    pub ttl_s: u64,
}

/// An offer made.
#[derive(Clone, Debug)]
pub struct Offer {
    /// The Credential Offer object (§4.1.1).
    pub offer: Value,
    /// Where the offer is served by reference (`credential_offer_uri`, §4.1.3).
    pub offer_uri: String,
    /// The transaction code, to be sent to the holder on another channel.
    pub tx_code: Option<String>,
    pub expires_in: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Stage {
    Offered,
    /// The code was redeemed for an access token (its hash), bound to a DPoP key or not.
    Redeemed {
        token: String,
        expires_ms: u64,
        jkt: Option<String>,
    },
    Issued {
        credential: String,
        holder: String,
        at_ms: u64,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OfferRecord {
    issuer: String,
    type_: String,
    format: Format,
    claims: Value,
    valid_until: Option<String>,
    /// SHA-256 (hex) of the transaction code.
    tx_code: Option<String>,
    tx_failures: u32,
    expires_ms: u64,
    reference: String,
    stage: Stage,
}

/// Why an offer could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    #[error("{0}")]
    BadRequest(String),
    #[error("credential offers need the node's public API on an https URL")]
    NoPublicUrl,
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error("offer store: {0}")]
    Store(#[from] knoop_gossip::StoreError),
    #[error("the offer lock is poisoned")]
    Lock,
}

/// A token response (§6.2).
#[derive(Clone, Debug)]
pub struct Token {
    pub access_token: String,
    /// `Bearer`, or `DPoP` when bound.
    pub token_type: &'static str,
    pub expires_in: u64,
    /// `authorization_details` with the credential identifier, when the request used them.
    pub authorization_details: Option<Value>,
}

/// A credential request (§8.2), parsed.
#[derive(Clone, Debug, Deserialize)]
pub struct CredentialRequestBody {
    #[serde(default)]
    pub credential_configuration_id: Option<String>,
    #[serde(default)]
    pub credential_identifier: Option<String>,
    #[serde(default)]
    pub proofs: Option<serde_json::Map<String, Value>>,
    /// Draft 13-14 form (`{proof_type, jwt}`), accepted for older wallets.
    #[serde(default)]
    pub proof: Option<Value>,
    #[serde(default)]
    pub credential_response_encryption: Option<Value>,
}

/// The credential issuers of the organisations hosted here.
pub struct CredentialOffers {
    dids: Arc<DidOps>,
    credentials: Arc<Credentials>,
    status: Arc<HostedStatusLists>,
    store: Arc<dyn NodeStore>,
    /// The public API base URL, when it is https.
    base: Option<String>,
    /// `c_nonce` → expiry (ms).
    nonces: Mutex<HashMap<String, u64>>,
    /// Serialises the changes of offer records.
    write: Mutex<()>,
}

fn now_ms() -> u64 {
    knoop_gossip::tx::now_ms()
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    BASE64_URL_SAFE_NO_PAD.encode(b)
}

fn hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn tx_code() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let n = u64::from_le_bytes(b) % 10u64.pow(TX_CODE_DIGITS as u32);
    format!("{n:0width$}", width = TX_CODE_DIGITS)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl CredentialOffers {
    pub fn new(
        dids: Arc<DidOps>,
        credentials: Arc<Credentials>,
        status: Arc<HostedStatusLists>,
        store: Arc<dyn NodeStore>,
        public_url: Option<&str>,
    ) -> Self {
        CredentialOffers {
            dids,
            credentials,
            status,
            store,
            base: public_url
                .filter(|u| u.starts_with("https://"))
                .map(|u| u.trim_end_matches('/').to_owned()),
            nonces: Mutex::new(HashMap::new()),
            write: Mutex::new(()),
        }
    }

    /// The public base URL the issuers are served at, if any.
    pub fn base(&self) -> Option<&str> {
        self.base.as_deref()
    }

    /// The hosted organisation whose issuer id is `id`, if any.
    pub fn tenant(&self, id: &str) -> Option<String> {
        let did = format!("did:knoop:{id}");
        let valid =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        (valid && self.base.is_some() && self.dids.hosted().ok()?.contains(&did)).then_some(did)
    }

    /// The issuer's display name: its legal name in the directory, if it has one.
    pub fn display_name(&self, did: &str) -> Option<String> {
        self.credentials.organisation(did).map(|e| e.legal_name)
    }

    /// Makes an offer (§4.1) of a credential that `req.issuer` will sign.
    pub fn offer(&self, req: OfferRequest) -> Result<Offer, OfferError> {
        let base = self.base.as_deref().ok_or(OfferError::NoPublicUrl)?;
        let id = req
            .issuer
            .strip_prefix("did:knoop:")
            .filter(|_| self.dids.hosted().is_ok_and(|h| h.contains(&req.issuer)))
            .ok_or_else(|| OfferError::BadRequest(format!("{} is not hosted here", req.issuer)))?;
        if !TYPES.contains(&req.type_.as_str()) {
            return Err(OfferError::BadRequest(format!(
                "unknown credential type {}; offered are {}",
                req.type_,
                TYPES.join(", ")
            )));
        }
        if req.ttl_s == 0 || req.ttl_s > MAX_OFFER_TTL_S {
            return Err(OfferError::BadRequest(format!(
                "expires_in must be 1..{MAX_OFFER_TTL_S} seconds"
            )));
        }
        let Some(claims) = req.claims.as_object() else {
            return Err(OfferError::BadRequest("subject must be an object".into()));
        };
        if let Some(subject) = claims.get("id") {
            let ok = subject.as_str().is_some_and(|s| {
                BINDING_METHODS
                    .iter()
                    .any(|m| s.starts_with(&format!("{m}:")))
            });
            if !ok {
                return Err(OfferError::BadRequest(format!(
                    "subject.id must be a DID of {}",
                    BINDING_METHODS.join(", ")
                )));
            }
        }
        // The claims must fit the type now, not only when the wallet comes: checked by signing
        // a trial credential (the issuer as stand-in subject when none is named yet).
        let mut trial = req.claims.clone();
        if trial.get("id").is_none() {
            trial["id"] = Value::String(req.issuer.clone());
        }
        issuing::check(
            &self.dids,
            &CredentialRequest {
                issuer: req.issuer.clone(),
                type_: req.type_.clone(),
                subject: trial,
                valid_until: req.valid_until.clone(),
                cryptosuite: None,
            },
        )?;

        let code = random_token();
        let tx = req.tx_code.then(tx_code);
        let reference = random_token();
        let expires_ms = now_ms() + req.ttl_s * 1000;
        let record = OfferRecord {
            issuer: req.issuer.clone(),
            type_: req.type_.clone(),
            format: req.format,
            claims: req.claims,
            valid_until: req.valid_until,
            tx_code: tx.as_deref().map(hash),
            tx_failures: 0,
            expires_ms,
            reference: reference.clone(),
            stage: Stage::Offered,
        };
        {
            let _w = self.write.lock().map_err(|_| OfferError::Lock)?;
            self.prune()?;
            let code_hash = hash(&code);
            self.save(&code_hash, &record)?;
            self.store
                .put_private(format!("vr/{reference}").as_bytes(), code_hash.as_bytes())?;
            self.store
                .put_private(format!("vc/{reference}").as_bytes(), code.as_bytes())?;
        }
        let issuer = issuer_id(base, id);
        let mut grant = json!({"pre-authorized_code": code});
        if tx.is_some() {
            grant["tx_code"] = json!({
                "input_mode": "numeric",
                "length": TX_CODE_DIGITS,
                "description": "The code the issuing organisation sent you separately",
            });
        }
        let offer = json!({
            "credential_issuer": issuer,
            "credential_configuration_ids": [configuration_id(&req.type_, req.format)],
            "grants": {PRE_AUTHORIZED_CODE: grant},
        });
        Ok(Offer {
            offer,
            offer_uri: format!("{issuer}/offers/{reference}"),
            tx_code: tx,
            expires_in: req.ttl_s,
        })
    }

    /// The offer served by reference at `/oid4vci/{id}/offers/{reference}`, while it can be
    /// redeemed.
    pub fn offer_by_reference(&self, tenant: &str, reference: &str) -> Option<Value> {
        let base = self.base.as_deref()?;
        if reference.len() > 64 {
            return None;
        }
        let code_hash = self
            .store
            .get_private(format!("vr/{reference}").as_bytes())
            .ok()??;
        let code_hash = String::from_utf8(code_hash).ok()?;
        let record = self.load(&code_hash)?;
        if record.issuer != tenant
            || record.expires_ms < now_ms()
            || !matches!(record.stage, Stage::Offered)
        {
            return None;
        }
        let code = self
            .store
            .get_private(format!("vc/{reference}").as_bytes())
            .ok()??;
        let code = String::from_utf8(code).ok()?;
        let id = tenant.strip_prefix("did:knoop:")?;
        let mut grant = json!({"pre-authorized_code": code});
        if record.tx_code.is_some() {
            grant["tx_code"] = json!({"input_mode": "numeric", "length": TX_CODE_DIGITS});
        }
        Some(json!({
            "credential_issuer": issuer_id(base, id),
            "credential_configuration_ids": [configuration_id(&record.type_, record.format)],
            "grants": {PRE_AUTHORIZED_CODE: grant},
        }))
    }

    fn load(&self, code_hash: &str) -> Option<OfferRecord> {
        let v = self
            .store
            .get_private(format!("vo/{code_hash}").as_bytes())
            .ok()??;
        serde_json::from_slice(&v).ok()
    }

    fn save(&self, code_hash: &str, r: &OfferRecord) -> Result<(), knoop_gossip::StoreError> {
        let v = serde_json::to_vec(r).unwrap_or_default();
        self.store
            .put_private(format!("vo/{code_hash}").as_bytes(), &v)
    }

    /// Deletes offers past their expiry (and their token and reference keys).
    fn prune(&self) -> Result<(), knoop_gossip::StoreError> {
        let now = now_ms();
        let mut dead = Vec::new();
        for (k, v) in self.store.scan_private(b"vo/")? {
            let Ok(r) = serde_json::from_slice::<OfferRecord>(&v) else {
                dead.push(k);
                continue;
            };
            let live_token =
                matches!(r.stage, Stage::Redeemed { expires_ms, .. } if expires_ms > now);
            if r.expires_ms < now && !live_token {
                if let Stage::Redeemed { token, .. } = &r.stage {
                    dead.push(format!("vt/{token}").into_bytes());
                }
                dead.push(format!("vr/{}", r.reference).into_bytes());
                dead.push(format!("vc/{}", r.reference).into_bytes());
                dead.push(k);
            }
        }
        self.store.delete_private(&dead)
    }

    /// The token endpoint (§6) of organisation `tenant`: redeems a pre-authorized code from the
    /// form `body`, bound to `jkt` when the request carried a DPoP proof.
    pub fn token(
        &self,
        tenant: &str,
        body: &[u8],
        jkt: Option<String>,
    ) -> Result<Token, TokenError> {
        let mut found: HashMap<&'static str, String> = HashMap::new();
        const KNOWN: [&str; 4] = [
            "grant_type",
            "pre-authorized_code",
            "tx_code",
            "authorization_details",
        ];
        for (k, v) in url::form_urlencoded::parse(body) {
            let Some(name) = KNOWN.iter().find(|n| **n == k) else {
                continue; // RFC 6749 §3.2: unknown parameters are ignored.
            };
            if v.len() > MAX_PARAM_BYTES {
                return Err(token_error(
                    "invalid_request",
                    format!("{name} is too long"),
                ));
            }
            if found.insert(name, v.into_owned()).is_some() {
                return Err(token_error(
                    "invalid_request",
                    format!("{name} is given more than once"),
                ));
            }
        }
        match found.remove("grant_type").as_deref() {
            None => return Err(token_error("invalid_request", "grant_type is required")),
            Some(PRE_AUTHORIZED_CODE) => {}
            Some(_) => {
                return Err(token_error(
                    "unsupported_grant_type",
                    format!("this issuer takes {PRE_AUTHORIZED_CODE}"),
                ))
            }
        }
        let code = found
            .remove("pre-authorized_code")
            .ok_or_else(|| token_error("invalid_request", "pre-authorized_code is required"))?;
        let details = match found.remove("authorization_details") {
            None => None,
            Some(d) => Some(serde_json::from_str::<Value>(&d).map_err(|_| {
                token_error("invalid_request", "authorization_details is not JSON")
            })?),
        };
        let invalid = || {
            token_error(
                "invalid_grant",
                "the pre-authorized code is unknown, used or expired",
            )
        };
        let _w = self
            .write
            .lock()
            .map_err(|_| token_error("server_error", "offer lock"))?;
        let code_hash = hash(&code);
        let mut record = self.load(&code_hash).ok_or_else(invalid)?;
        if record.issuer != tenant
            || record.expires_ms < now_ms()
            || !matches!(record.stage, Stage::Offered)
        {
            return Err(invalid());
        }
        let store_err = |e: knoop_gossip::StoreError| token_error("server_error", e.to_string());
        match (&record.tx_code, found.remove("tx_code")) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(token_error(
                    "invalid_request",
                    "this offer has no transaction code",
                ))
            }
            (Some(_), None) => {
                return Err(token_error(
                    "invalid_request",
                    "this offer needs its transaction code (tx_code)",
                ))
            }
            (Some(want), Some(given)) => {
                if !constant_time_eq(want.as_bytes(), hash(&given).as_bytes()) {
                    record.tx_failures += 1;
                    if record.tx_failures >= MAX_TX_CODE_FAILURES {
                        // Void: a guessed code is worth nothing now.
                        record.expires_ms = 0;
                    }
                    self.save(&code_hash, &record).map_err(store_err)?;
                    return Err(token_error("invalid_grant", "wrong transaction code"));
                }
            }
        }
        let config = configuration_id(&record.type_, record.format);
        if let Some(d) = &details {
            let asks_other = d.as_array().is_none_or(|a| {
                a.iter().any(|x| {
                    x["type"] != "openid_credential"
                        || x["credential_configuration_id"].as_str() != Some(&config)
                })
            });
            if asks_other {
                return Err(token_error(
                    "invalid_request",
                    format!(
                        "authorization_details may ask for {config} only (type openid_credential)"
                    ),
                ));
            }
        }
        let token = random_token();
        let expires_ms = now_ms() + ACCESS_TOKEN_TTL_S * 1000;
        let bound = jkt.is_some();
        record.stage = Stage::Redeemed {
            token: hash(&token),
            expires_ms,
            jkt,
        };
        self.store
            .put_private(
                format!("vt/{}", hash(&token)).as_bytes(),
                code_hash.as_bytes(),
            )
            .map_err(store_err)?;
        self.save(&code_hash, &record).map_err(store_err)?;
        // Redeemed: the offer is no longer served by reference.
        self.store
            .delete_private(&[
                format!("vr/{}", record.reference).into_bytes(),
                format!("vc/{}", record.reference).into_bytes(),
            ])
            .map_err(store_err)?;
        Ok(Token {
            access_token: token,
            token_type: if bound { "DPoP" } else { "Bearer" },
            expires_in: ACCESS_TOKEN_TTL_S,
            authorization_details: details.map(|_| {
                json!([{
                    "type": "openid_credential",
                    "credential_configuration_id": config,
                    "credential_identifiers": [record.reference],
                }])
            }),
        })
    }

    /// A fresh `c_nonce` (§7), or `None` when too many are live.
    pub fn nonce(&self) -> Option<String> {
        let now = now_ms();
        let mut n = self.nonces.lock().ok()?;
        if n.len() >= MAX_NONCES {
            n.retain(|_, until| *until > now);
            if n.len() >= MAX_NONCES {
                return None;
            }
        }
        let nonce = random_token();
        n.insert(nonce.clone(), now + C_NONCE_TTL_S * 1000);
        Some(nonce)
    }

    fn take_nonce(&self, nonce: &str) -> bool {
        let now = now_ms();
        self.nonces
            .lock()
            .ok()
            .and_then(|mut n| n.remove(nonce))
            .is_some_and(|until| until > now)
    }

    /// The offer an access token was issued for: its code hash, record, and the key the token
    /// is bound to. `invalid_token` when unknown, expired or already used.
    pub fn authorize(
        &self,
        tenant: &str,
        access_token: &str,
    ) -> Result<Option<String>, CredentialError> {
        let (_, record) = self.redeemed(tenant, access_token)?;
        match record.stage {
            Stage::Redeemed { jkt, .. } => Ok(jkt),
            _ => Err(cred_error("invalid_token", "the access token was used")),
        }
    }

    fn redeemed(
        &self,
        tenant: &str,
        access_token: &str,
    ) -> Result<(String, OfferRecord), CredentialError> {
        let invalid = || {
            cred_error(
                "invalid_token",
                "the access token is unknown, used or expired",
            )
        };
        let code_hash = self
            .store
            .get_private(format!("vt/{}", hash(access_token)).as_bytes())
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(invalid)?;
        let record = self.load(&code_hash).ok_or_else(invalid)?;
        match &record.stage {
            Stage::Redeemed {
                token, expires_ms, ..
            } if *token == hash(access_token)
                && *expires_ms > now_ms()
                && record.issuer == tenant => {}
            _ => return Err(invalid()),
        }
        Ok((code_hash, record))
    }

    /// The holder DID a key proof names, for the prefetch of a did:web document.
    pub fn proof_jwts(req: &CredentialRequestBody) -> Result<Vec<String>, CredentialError> {
        let bad = |d: &str| cred_error("invalid_credential_request", d);
        match (&req.proofs, &req.proof) {
            (Some(_), Some(_)) => Err(bad("give proofs or proof, not both")),
            (None, None) => Err(cred_error(
                "invalid_proof",
                "a key proof is required (proofs.jwt): the credential is bound to the holder's DID",
            )),
            (Some(p), None) => {
                if p.len() != 1 {
                    return Err(bad("proofs must have exactly one proof type"));
                }
                let jwts = p
                    .get("jwt")
                    .ok_or_else(|| cred_error("invalid_proof", "only jwt proofs are supported"))?
                    .as_array()
                    .ok_or_else(|| bad("proofs.jwt must be an array"))?;
                if jwts.len() != 1 {
                    return Err(bad("this issuer issues one credential per request (no batch_credential_issuance)"));
                }
                Ok(jwts
                    .iter()
                    .map(|j| {
                        j.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| bad("proofs.jwt holds strings"))
                    })
                    .collect::<Result<_, _>>()?)
            }
            (None, Some(p)) => {
                if p["proof_type"] != "jwt" {
                    return Err(cred_error("invalid_proof", "only jwt proofs are supported"));
                }
                let jwt = p["jwt"]
                    .as_str()
                    .ok_or_else(|| bad("proof.jwt must be a string"))?;
                Ok(vec![jwt.to_owned()])
            }
        }
    }

    /// The credential endpoint (§8) of organisation `tenant`: checks the request and its key
    /// proof (with `fetched`: the did:web document of the proof's DID), issues the credential
    /// bound to the proof's DID and returns it (a JWT string or a JSON object).
    pub fn credential(
        &self,
        tenant: &str,
        access_token: &str,
        req: &CredentialRequestBody,
        fetched: &Fetched,
    ) -> Result<Value, CredentialError> {
        let base = self
            .base
            .as_deref()
            .ok_or_else(|| cred_error("server_error", "no public URL"))?;
        let id = tenant.strip_prefix("did:knoop:").unwrap_or_default();
        let issuer = issuer_id(base, id);
        let _w = self
            .write
            .lock()
            .map_err(|_| cred_error("server_error", "offer lock"))?;
        let (code_hash, mut record) = self.redeemed(tenant, access_token)?;
        if req.credential_response_encryption.is_some() {
            return Err(cred_error(
                "invalid_encryption_parameters",
                "this issuer does not encrypt credential responses",
            ));
        }
        let config = configuration_id(&record.type_, record.format);
        match (&req.credential_configuration_id, &req.credential_identifier) {
            (Some(c), None) => {
                if parse_configuration_id(c).is_none() {
                    return Err(cred_error(
                        "unknown_credential_configuration",
                        format!("{c} is not in this issuer's metadata"),
                    ));
                }
                if *c != config {
                    return Err(cred_error(
                        "invalid_credential_request",
                        format!("the access token is for {config}, not {c}"),
                    ));
                }
            }
            (None, Some(i)) => {
                if *i != record.reference {
                    return Err(cred_error(
                        "unknown_credential_identifier",
                        format!("{i} was not issued with this access token"),
                    ));
                }
            }
            _ => {
                return Err(cred_error(
                    "invalid_credential_request",
                    "give exactly one of credential_configuration_id and credential_identifier",
                ))
            }
        }
        let jwts = Self::proof_jwts(req)?;
        let holder = self.check_proof(&jwts[0], &issuer, fetched)?;
        if let Some(bound) = record.claims.get("id").and_then(Value::as_str) {
            if bound != holder {
                return Err(cred_error(
                    "credential_request_denied",
                    format!("this offer is for {bound}, not {holder}"),
                ));
            }
        }
        let mut subject = record.claims.clone();
        subject["id"] = Value::String(holder.clone());
        let signed = issuing::issue(
            &self.dids,
            CredentialRequest {
                issuer: record.issuer.clone(),
                type_: record.type_.clone(),
                subject,
                valid_until: record.valid_until.clone(),
                cryptosuite: Some(record.format.cryptosuite().to_owned()),
            },
            &self.status,
        )
        .map_err(|e| cred_error("credential_request_denied", e.to_string()))?;
        let credential_id = match &signed {
            Value::String(jwt) => knoop_vc::jose::decode(jwt)
                .ok()
                .and_then(|c| c.credential["id"].as_str().map(str::to_owned))
                .unwrap_or_default(),
            v => v["id"].as_str().unwrap_or_default().to_owned(),
        };
        record.stage = Stage::Issued {
            credential: credential_id.clone(),
            holder: holder.clone(),
            at_ms: now_ms(),
        };
        self.save(&code_hash, &record)
            .map_err(|e| cred_error("server_error", e.to_string()))?;
        let _ = self
            .store
            .delete_private(&[format!("vt/{}", hash(access_token)).into_bytes()]);
        tracing::info!(issuer = %record.issuer, %holder, credential = %credential_id, "credential issued (OpenID4VCI)");
        Ok(signed)
    }

    /// Checks a key proof JWT for issuer `aud` ([`check_proof_jwt`], with the holder's key
    /// from its DID: did:knoop, did:key, did:jwk, or did:web from `fetched`), then takes its
    /// `c_nonce` (last: a proof that fails otherwise does not use it up). Returns the holder's
    /// DID.
    fn check_proof(
        &self,
        jwt: &str,
        aud: &str,
        fetched: &Fetched,
    ) -> Result<String, CredentialError> {
        let now = (now_ms() / 1000) as i64;
        let proof = check_proof_jwt(jwt, aud, now, |kid| {
            self.credentials
                .key_now(kid, Relationship::Authentication, fetched)
        })?;
        if !proof.nonce.as_deref().is_some_and(|n| self.take_nonce(n)) {
            return Err(cred_error(
                "invalid_nonce",
                "the proof needs a fresh c_nonce from the nonce endpoint",
            ));
        }
        Ok(proof.holder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_codes_have_six_digits() {
        for _ in 0..200 {
            let c = tx_code();
            assert_eq!(c.len(), TX_CODE_DIGITS);
            assert!(c.bytes().all(|b| b.is_ascii_digit()), "{c}");
        }
    }

    #[test]
    fn requests_without_exactly_one_jwt_proof_are_refused() {
        let req = |v: Value| serde_json::from_value::<CredentialRequestBody>(v).unwrap();
        for (body, want) in [
            (json!({}), "invalid_proof"),
            (json!({"proofs": {"jwt": []}}), "invalid_credential_request"),
            (
                json!({"proofs": {"jwt": ["a", "b"]}}),
                "invalid_credential_request",
            ),
            (json!({"proofs": {"ldp_vp": [{}]}}), "invalid_proof"),
            (
                json!({"proofs": {"jwt": ["a"], "ldp_vp": []}}),
                "invalid_credential_request",
            ),
            (
                json!({"proofs": {"jwt": [1]}}),
                "invalid_credential_request",
            ),
            (
                json!({"proof": {"proof_type": "cwt", "cwt": "x"}}),
                "invalid_proof",
            ),
            (
                json!({"proofs": {"jwt": ["a"]}, "proof": {"proof_type": "jwt", "jwt": "a"}}),
                "invalid_credential_request",
            ),
        ] {
            let e = CredentialOffers::proof_jwts(&req(body.clone())).unwrap_err();
            assert_eq!(e.error, want, "{body}");
        }
        assert_eq!(
            CredentialOffers::proof_jwts(&req(json!({"proofs": {"jwt": ["a.b.c"]}}))).unwrap(),
            vec!["a.b.c".to_owned()]
        );
        assert_eq!(
            CredentialOffers::proof_jwts(&req(
                json!({"proof": {"proof_type": "jwt", "jwt": "a.b.c"}})
            ))
            .unwrap(),
            vec!["a.b.c".to_owned()]
        );
    }
}
