//! JSON Web Signatures in compact form and the public keys that check them (spec:
//! `specs/jose.md`): RFC 7515 (JWS), RFC 7517 (JWK), RFC 7518 §3 and RFC 8037 (algorithms),
//! RFC 7638 (thumbprints).
//!
//! Verified: `EdDSA` (Ed25519, strict), `ES256` (P-256), `ES384` (P-384), `RS256` and `PS256`
//! (RSA, 2048 to 4096 bits): the algorithms of the national guide's credential catalog and of
//! DPoP clients. Signed: `EdDSA` and `ES256`. Everything else is refused by name, `none` and the
//! HMAC algorithms first (a public key is never an HMAC secret). An algorithm is only tried with
//! a key of its own type, so a header cannot pick how a key is used (RFC 8725 §2.1, §3.1).

use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Largest compact JWS read (bytes).
pub const MAX_JWS_BYTES: usize = 256 * 1024;
/// The smallest RSA modulus accepted (RFC 7518 §3.3: 2048 bits or larger).
const MIN_RSA_BITS: usize = 2048;

/// Why a JWS or a key was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwsError {
    #[error("not a compact JWS: {0}")]
    Malformed(String),
    #[error("the JWS is larger than {MAX_JWS_BYTES} bytes")]
    TooLarge,
    #[error("JWS algorithm {0} is not accepted (accepted: EdDSA, ES256, ES384, RS256, PS256)")]
    Algorithm(String),
    #[error("key: {0}")]
    Key(String),
    #[error("algorithm {alg} cannot be used with a {key} key")]
    KeyMismatch {
        alg: &'static str,
        key: &'static str,
    },
    #[error("the JWS signature does not verify")]
    BadSignature,
}

fn malformed(s: impl Into<String>) -> JwsError {
    JwsError::Malformed(s.into())
}

fn bad_key(s: impl Into<String>) -> JwsError {
    JwsError::Key(s.into())
}

/// A JWS algorithm knoop verifies (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    EdDSA,
    ES256,
    ES384,
    RS256,
    PS256,
}

impl Alg {
    /// Every accepted algorithm, in the order metadata lists them.
    pub const ALL: [Alg; 5] = [Alg::ES256, Alg::ES384, Alg::PS256, Alg::RS256, Alg::EdDSA];

    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
        }
    }

    /// The algorithm named `s`; `none`, the HMAC family and anything unknown are refused.
    pub fn parse(s: &str) -> Result<Alg, JwsError> {
        Alg::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| JwsError::Algorithm(s.chars().take(32).collect()))
    }

    /// The names of [`Alg::ALL`] (for `*_alg_values_supported` metadata).
    pub fn names() -> Vec<&'static str> {
        Alg::ALL.iter().map(|a| a.name()).collect()
    }
}

/// A public key as a JWK (RFC 7517) of a type knoop verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicJwk {
    /// `kty` `OKP`, `crv` `Ed25519` (RFC 8037).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// `kty` `EC`, `crv` `P-256`.
    P256(p256::ecdsa::VerifyingKey),
    /// `kty` `EC`, `crv` `P-384`.
    P384(p384::ecdsa::VerifyingKey),
    /// `kty` `RSA`.
    Rsa(rsa::RsaPublicKey),
}

/// JWK members that only a private or symmetric key has.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

fn b64_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, JwsError> {
    let s = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_key(format!("member {name} is missing")))?;
    BASE64_URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad_key(format!("member {name} is not base64url")))
}

fn fixed<const N: usize>(jwk: &Map<String, Value>, name: &str) -> Result<[u8; N], JwsError> {
    b64_member(jwk, name)?
        .try_into()
        .map_err(|_| bad_key(format!("member {name} must be {N} bytes")))
}

impl PublicJwk {
    /// Reads a public JWK. A JWK with private members, a `use` other than `sig`, an unknown
    /// `kty` or curve, a point off its curve or an RSA modulus under 2048 bits is refused.
    pub fn from_json(v: &Value) -> Result<PublicJwk, JwsError> {
        let jwk = v
            .as_object()
            .ok_or_else(|| bad_key("a JWK must be a JSON object"))?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
            return Err(bad_key(format!(
                "member {m} belongs to a private or symmetric key"
            )));
        }
        if jwk.get("use").is_some_and(|u| u != "sig") {
            return Err(bad_key("use must be sig"));
        }
        let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
        let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or_default();
        match (kty, crv) {
            ("OKP", "Ed25519") => {
                let x: [u8; 32] = fixed(jwk, "x")?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| bad_key("x is not an Ed25519 point"))?;
                if key.is_weak() {
                    return Err(bad_key("x is an Ed25519 point of small order"));
                }
                Ok(PublicJwk::Ed25519(key))
            }
            ("EC", "P-256") => {
                let (x, y): ([u8; 32], [u8; 32]) = (fixed(jwk, "x")?, fixed(jwk, "y")?);
                let point =
                    p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
                p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map(PublicJwk::P256)
                    .map_err(|_| bad_key("x, y is not a point on P-256"))
            }
            ("EC", "P-384") => {
                let (x, y): ([u8; 48], [u8; 48]) = (fixed(jwk, "x")?, fixed(jwk, "y")?);
                let point =
                    p384::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
                p384::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map(PublicJwk::P384)
                    .map_err(|_| bad_key("x, y is not a point on P-384"))
            }
            ("RSA", _) => {
                let n = rsa::BigUint::from_bytes_be(&b64_member(jwk, "n")?);
                let e = rsa::BigUint::from_bytes_be(&b64_member(jwk, "e")?);
                let key = rsa::RsaPublicKey::new(n, e)
                    .map_err(|e| bad_key(format!("not an RSA public key: {e}")))?;
                if key.n().bits() < MIN_RSA_BITS {
                    return Err(bad_key(format!(
                        "the RSA modulus is shorter than {MIN_RSA_BITS} bits"
                    )));
                }
                Ok(PublicJwk::Rsa(key))
            }
            ("EC", c) | ("OKP", c) => Err(bad_key(format!(
                "curve {} is not supported (Ed25519, P-256, P-384)",
                c.chars().take(16).collect::<String>()
            ))),
            (k, _) => Err(bad_key(format!(
                "kty {} is not supported (OKP, EC, RSA)",
                k.chars().take(16).collect::<String>()
            ))),
        }
    }

    /// The signing key of a DID document's Multikey method (`None` for an X25519 key).
    pub fn from_multikey(key: knoop_did::document::PublicKey) -> Option<PublicJwk> {
        use knoop_did::document::PublicKey;
        match key {
            PublicKey::Ed25519(k) => Some(PublicJwk::Ed25519(k)),
            PublicKey::P256(k) => Some(PublicJwk::P256(k)),
            PublicKey::X25519(_) => None,
        }
    }

    /// The key's required members (RFC 7638 §3.2), as a JSON object.
    pub fn to_json(&self) -> Value {
        let b64 = |b: &[u8]| BASE64_URL_SAFE_NO_PAD.encode(b);
        match self {
            PublicJwk::Ed25519(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.as_bytes())})
            }
            PublicJwk::P256(k) => {
                let p = k.to_encoded_point(false);
                let (x, y) = (p.x().map(|x| b64(x)), p.y().map(|y| b64(y)));
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})
            }
            PublicJwk::P384(k) => {
                let p = k.to_encoded_point(false);
                let (x, y) = (p.x().map(|x| b64(x)), p.y().map(|y| b64(y)));
                json!({"kty": "EC", "crv": "P-384", "x": x, "y": y})
            }
            PublicJwk::Rsa(k) => json!({
                "kty": "RSA",
                "e": b64(&k.e().to_bytes_be()),
                "n": b64(&k.n().to_bytes_be()),
            }),
        }
    }

    /// The RFC 7638 thumbprint: base64url of the SHA-256 of the required members, in
    /// lexicographic order, without white space.
    pub fn thumbprint(&self) -> String {
        let v = self.to_json();
        let m = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
        let canonical = match self {
            PublicJwk::Ed25519(_) => format!(
                r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
                m("crv"),
                m("kty"),
                m("x")
            ),
            PublicJwk::P256(_) | PublicJwk::P384(_) => format!(
                r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
                m("crv"),
                m("kty"),
                m("x"),
                m("y")
            ),
            PublicJwk::Rsa(_) => format!(
                r#"{{"e":"{}","kty":"{}","n":"{}"}}"#,
                m("e"),
                m("kty"),
                m("n")
            ),
        };
        BASE64_URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    fn kind(&self) -> &'static str {
        match self {
            PublicJwk::Ed25519(_) => "Ed25519",
            PublicJwk::P256(_) => "P-256",
            PublicJwk::P384(_) => "P-384",
            PublicJwk::Rsa(_) => "RSA",
        }
    }

    /// Checks `signature` over `input` made with `alg`; the algorithm must belong to the key's
    /// type (no algorithm confusion).
    pub fn verify(&self, alg: Alg, input: &[u8], signature: &[u8]) -> Result<(), JwsError> {
        let mismatch = JwsError::KeyMismatch {
            alg: alg.name(),
            key: self.kind(),
        };
        let ok = match (self, alg) {
            (PublicJwk::Ed25519(k), Alg::EdDSA) => {
                let sig = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| JwsError::BadSignature)?;
                k.verify_strict(input, &sig).is_ok()
            }
            (PublicJwk::P256(k), Alg::ES256) => {
                let sig = p256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| JwsError::BadSignature)?;
                k.verify(input, &sig).is_ok()
            }
            (PublicJwk::P384(k), Alg::ES384) => {
                let sig = p384::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| JwsError::BadSignature)?;
                k.verify(input, &sig).is_ok()
            }
            (PublicJwk::Rsa(k), Alg::RS256) => {
                let sig = rsa::pkcs1v15::Signature::try_from(signature)
                    .map_err(|_| JwsError::BadSignature)?;
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone())
                    .verify(input, &sig)
                    .is_ok()
            }
            (PublicJwk::Rsa(k), Alg::PS256) => {
                let sig =
                    rsa::pss::Signature::try_from(signature).map_err(|_| JwsError::BadSignature)?;
                rsa::pss::VerifyingKey::<Sha256>::new(k.clone())
                    .verify(input, &sig)
                    .is_ok()
            }
            _ => return Err(mismatch),
        };
        ok.then_some(()).ok_or(JwsError::BadSignature)
    }
}

/// A compact JWS taken apart, signature not yet checked.
#[derive(Debug, Clone)]
pub struct Compact {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The algorithm the header names (accepted ones only).
    pub alg: Alg,
    /// The decoded payload.
    pub payload: Vec<u8>,
    signing_input: String,
    signature: Vec<u8>,
}

impl Compact {
    /// Splits `jws` (`header.payload.signature`, base64url without padding). The header must
    /// be a JSON object naming an accepted `alg`; `crit` is refused (no extension is
    /// understood, RFC 7515 §4.1.11), and so is an unencoded payload (`b64`, RFC 7797).
    pub fn parse(jws: &str) -> Result<Compact, JwsError> {
        if jws.len() > MAX_JWS_BYTES {
            return Err(JwsError::TooLarge);
        }
        let mut parts = jws.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a compact JWS has three parts"));
        };
        let decode = |part: &str, what: &str| {
            BASE64_URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| malformed(format!("the {what} is not base64url")))
        };
        let header: Map<String, Value> = serde_json::from_slice(&decode(h, "header")?)
            .map_err(|_| malformed("the header is not a JSON object"))?;
        if header.contains_key("crit") {
            return Err(malformed(
                "crit names extensions this verifier does not know",
            ));
        }
        if header.contains_key("b64") {
            return Err(malformed("unencoded payloads (b64) are not accepted"));
        }
        let alg = Alg::parse(
            header
                .get("alg")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("the header has no alg"))?,
        )?;
        Ok(Compact {
            alg,
            payload: decode(p, "payload")?,
            signature: decode(s, "signature")?,
            signing_input: format!("{h}.{p}"),
            header,
        })
    }

    /// A header member as a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// The payload as a JSON object (the claims of a JWT).
    pub fn claims(&self) -> Result<Map<String, Value>, JwsError> {
        serde_json::from_slice(&self.payload)
            .map_err(|_| malformed("the payload is not a JSON object"))
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &PublicJwk) -> Result<(), JwsError> {
        key.verify(self.alg, self.signing_input.as_bytes(), &self.signature)
    }
}

/// A private key knoop signs JWSs with.
pub enum SigningKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl SigningKey {
    /// A fresh P-256 key (for example a DPoP key).
    pub fn generate_p256() -> SigningKey {
        SigningKey::P256(p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng))
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Alg {
        match self {
            SigningKey::Ed25519(_) => Alg::EdDSA,
            SigningKey::P256(_) => Alg::ES256,
        }
    }

    /// The public half.
    pub fn public_jwk(&self) -> PublicJwk {
        match self {
            SigningKey::Ed25519(k) => PublicJwk::Ed25519(k.verifying_key()),
            SigningKey::P256(k) => PublicJwk::P256(*k.verifying_key()),
        }
    }

    /// Signs `payload` as a compact JWS whose header is `header` plus this key's `alg`.
    pub fn sign_compact(&self, mut header: Map<String, Value>, payload: &[u8]) -> String {
        header.insert("alg".into(), self.alg().name().into());
        let input = format!(
            "{}.{}",
            BASE64_URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
            BASE64_URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = match self {
            SigningKey::Ed25519(k) => k.sign(input.as_bytes()).to_bytes().to_vec(),
            SigningKey::P256(k) => {
                let s: p256::ecdsa::Signature =
                    p256::ecdsa::signature::Signer::sign(k, input.as_bytes());
                s.to_bytes().to_vec()
            }
        };
        format!("{input}.{}", BASE64_URL_SAFE_NO_PAD.encode(signature))
    }
}

#[cfg(test)]
mod tests;
