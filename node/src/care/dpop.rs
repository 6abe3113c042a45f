//! DPoP, OAuth 2.0 Demonstrating Proof of Possession (RFC 9449; spec: `specs/tokens.md` §5):
//! the proof a client sends with a token request and with every use of the token, binding the
//! token to a key the client holds (the national guide's GFI-004 and GFI-005).
//!
//! [`check`] is the pure check of one proof (RFC 9449 §4.3); [`DpopGuard`] adds what needs
//! memory: the server nonces (§8, two live at a time, rotated) and the replay cache of proof
//! ids (§11.1). [`proof`] makes a proof, for this node's own requests.

use std::sync::Arc;

use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use knoop_vc::jws::{Alg, Compact, JwsError, PublicJwk, SigningKey};
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::store::expiring::Expiring;
use crate::store::{Family, NodeStore};

/// The `DPoP` request header (RFC 9449 §4.1).
pub const DPOP: &str = "dpop";
/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
pub const DPOP_NONCE: &str = "dpop-nonce";
/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const DPOP_JWT_TYPE: &str = "dpop+jwt";
/// How old a proof may be (by its `iat`).
pub const MAX_PROOF_AGE_S: i64 = 300;
/// How far in the future a proof's `iat` may be (clock skew).
pub const MAX_FUTURE_S: i64 = 60;
/// How long one server nonce is handed out; it is accepted for up to twice as long.
pub const NONCE_PERIOD_S: i64 = 300;
/// Longest `jti` accepted.
const MAX_JTI: usize = 256;

/// Why a DPoP proof was refused. [`DpopError::code`] is the RFC 9449 error code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopError {
    #[error("the DPoP proof is not a valid JWS: {0}")]
    Jws(#[from] JwsError),
    #[error("the DPoP proof header: {0}")]
    Header(String),
    #[error("the DPoP proof claims: {0}")]
    Claims(String),
    #[error("the DPoP proof is for {0}, not for this request")]
    Target(String),
    #[error("the DPoP proof was made at {iat}, outside the accepted window (now {now})")]
    Time { iat: i64, now: i64 },
    #[error("the DPoP proof's ath is not the hash of the access token")]
    AccessTokenHash,
    #[error("a fresh DPoP nonce from this server is required")]
    UseNonce,
    #[error("the DPoP proof was used before")]
    Replay,
    #[error("more than one DPoP proof")]
    Several,
}

impl DpopError {
    /// The error code: `use_dpop_nonce` when the client must retry with the nonce of the
    /// `DPoP-Nonce` header, else `invalid_dpop_proof` (RFC 9449 §5, §7.1, §8).
    pub fn code(&self) -> &'static str {
        match self {
            DpopError::UseNonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }
}

/// What a proof must match.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The HTTP method of the request.
    pub method: &'a str,
    /// The URL of the request (query and fragment are ignored).
    pub url: &'a str,
    /// The access token sent with the proof (a resource request), whose hash is `ath`.
    pub access_token: Option<&'a str>,
}

/// A proof that passed [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key (`cnf.jkt` of a bound token).
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
}

/// `scheme://authority/path` of `url`, normalised as RFC 9449 §4.3 asks (RFC 3986 §6.2.2,
/// §6.2.3: case of scheme and host, default port, percent-encoding), without query and
/// fragment. `None` for a URL that does not parse.
pub fn target_uri(url: &str) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    if !u.has_host() {
        return None;
    }
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// `ath`: base64url of the SHA-256 of the access token (RFC 9449 §4.2).
pub fn access_token_hash(token: &str) -> String {
    BASE64_URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Checks one proof against the request, at `now` (seconds), RFC 9449 §4.3 steps 1-11 except
/// the nonce and replay, which need memory ([`DpopGuard`]).
pub fn check(proof: &str, expect: &Expect<'_>, now: i64) -> Result<Proof, DpopError> {
    let jws = Compact::parse(proof)?;
    if jws.header_str("typ") != Some(DPOP_JWT_TYPE) {
        return Err(DpopError::Header(format!("typ must be {DPOP_JWT_TYPE}")));
    }
    let jwk = jws
        .header
        .get("jwk")
        .ok_or_else(|| DpopError::Header("jwk is missing".into()))?;
    let key = PublicJwk::from_json(jwk)?;
    jws.verify(&key)?;
    let claims = jws.claims()?;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| DpopError::Claims(format!("{name} must be a string")))
    };
    let jti = text("jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI {
        return Err(DpopError::Claims(format!(
            "jti must have 1 to {MAX_JTI} characters"
        )));
    }
    let htm = text("htm")?;
    if htm != expect.method {
        return Err(DpopError::Target(format!("method {htm}")));
    }
    let htu = text("htu")?;
    let wanted = target_uri(expect.url);
    if wanted.is_none() || target_uri(htu) != wanted {
        return Err(DpopError::Target(htu.chars().take(200).collect()));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| DpopError::Claims("iat must be an integer".into()))?;
    if iat < now - MAX_PROOF_AGE_S || iat > now + MAX_FUTURE_S {
        return Err(DpopError::Time { iat, now });
    }
    match (expect.access_token, claims.get("ath")) {
        (Some(token), Some(ath)) if ath.as_str() == Some(&access_token_hash(token)) => {}
        (Some(_), _) => return Err(DpopError::AccessTokenHash),
        (None, _) => {}
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(DpopError::Claims("nonce must be a string".into())),
    };
    Ok(Proof {
        jkt: key.thumbprint(),
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

/// A DPoP proof for `method` on `url`, signed with `key`.
pub fn proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
    now: i64,
) -> String {
    let mut header = Map::new();
    header.insert("typ".into(), DPOP_JWT_TYPE.into());
    header.insert("jwk".into(), key.public_jwk().to_json());
    let mut jti = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut jti);
    let mut claims = json!({
        "jti": BASE64_URL_SAFE_NO_PAD.encode(jti),
        "htm": method,
        "htu": target_uri(url).unwrap_or_else(|| url.to_owned()),
        "iat": now,
    });
    if let Some(t) = access_token {
        claims["ath"] = access_token_hash(t).into();
    }
    if let Some(n) = nonce {
        claims["nonce"] = n.into();
    }
    key.sign_compact(header, claims.to_string().as_bytes())
}

/// Now, in seconds since the epoch.
pub fn now_s() -> i64 {
    (knoop_gossip::tx::now_ms() / 1000) as i64
}

/// The server side of DPoP: nonces and the replay cache around [`check`]. Both live in the
/// store, so that every replica of a node sharing one store (PostgreSQL) accepts the nonces
/// another handed out and refuses the proofs another saw: a nonce is derived from a secret kept
/// in the store and the current period (`specs/tokens.md`, DPoP), the proofs seen are
/// short-lived records.
pub struct DpopGuard {
    /// The nonce secret, created in the store once (by whichever replica comes first).
    secret: [u8; 32],
    /// (jkt, jti) of the proofs seen, until they are too old to be accepted anyway.
    seen: Expiring,
}

/// Where the nonce secret is kept (the `private` family).
const SECRET_KEY: &[u8] = b"e/dpop-secret";

impl DpopGuard {
    /// The guard over `store`; the nonce secret is created there on first use.
    pub fn new(store: Arc<dyn NodeStore>) -> Self {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        // Written only when absent, then read back: two replicas starting together agree.
        let secret = store
            .insert_new(Family::Private, SECRET_KEY, &fresh)
            .and_then(|_| store.get(Family::Private, SECRET_KEY))
            .ok()
            .flatten()
            .and_then(|s| <[u8; 32]>::try_from(s.as_slice()).ok())
            .unwrap_or_else(|| {
                tracing::warn!(
                    "the DPoP nonce secret could not be kept in the store: nonces of this \
                     process only"
                );
                fresh
            });
        DpopGuard {
            secret,
            seen: Expiring::new(store, "dpop-jti"),
        }
    }

    /// The nonce to hand out now (the `DPoP-Nonce` header).
    pub fn nonce(&self) -> String {
        self.nonce_at(now_s())
    }

    /// The nonce of the period `now` falls in: SHA-256 of the secret and the period's number,
    /// 128 bits of it.
    fn nonce_at(&self, now: i64) -> String {
        self.nonce_of(now.div_euclid(NONCE_PERIOD_S))
    }

    fn nonce_of(&self, period: i64) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(period.to_be_bytes());
        BASE64_URL_SAFE_NO_PAD.encode(&h.finalize()[..16])
    }

    /// A nonce of this period or of the one before (so a nonce lives one to two periods).
    fn nonce_is_live(&self, nonce: &str, now: i64) -> bool {
        let period = now.div_euclid(NONCE_PERIOD_S);
        !nonce.is_empty() && (nonce == self.nonce_of(period) || nonce == self.nonce_of(period - 1))
    }

    /// Checks `proof` for a request: [`check`], then the nonce (required when
    /// `require_nonce`; checked whenever present) and that the proof was not used before.
    pub fn verify(
        &self,
        proof: &str,
        expect: &Expect<'_>,
        require_nonce: bool,
    ) -> Result<Proof, DpopError> {
        let now = now_s();
        let p = check(proof, expect, now)?;
        match p.nonce.as_deref() {
            Some(n) if !self.nonce_is_live(n, now) => return Err(DpopError::UseNonce),
            None if require_nonce => return Err(DpopError::UseNonce),
            _ => {}
        }
        // Remembered until the proof is too old to pass `check`.
        let until = u64::try_from(
            p.iat
                .saturating_add(MAX_PROOF_AGE_S)
                .saturating_add(MAX_FUTURE_S),
        )
        .unwrap_or(0)
        .saturating_mul(1000);
        match self
            .seen
            .insert_new(&[p.jkt.as_bytes(), p.jti.as_bytes()], until)
        {
            Ok(true) => Ok(p),
            Ok(false) => Err(DpopError::Replay),
            Err(e) => {
                // Unable to tell a replay: refuse (a client retries).
                tracing::warn!(error = %e, "the DPoP replay cache is unavailable");
                Err(DpopError::Replay)
            }
        }
    }

    /// Deletes the expired entries of the replay cache.
    pub fn sweep(&self) -> Result<usize, knoop_gossip::StoreError> {
        self.seen.sweep()
    }
}

/// The `algs` a DPoP challenge lists (RFC 9449 §7.1).
pub fn algs() -> String {
    Alg::names().join(" ")
}

#[cfg(test)]
mod tests;
