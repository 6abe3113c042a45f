//! `did:x509` (spec: `specs/did-x509.md`; the Trust over IP did:x509 method, version 0): a DID
//! for the subject of an X.509 certificate, anchored in a CA by the fingerprint of one of its
//! certificates, and narrowed by policies on the leaf certificate. Resolution needs the chain,
//! which travels with what the DID signed (a JWS `x5c` header): [`resolve`] checks the chain
//! and the policies and gives the DID document, with the leaf's public key as a JWK. No IO.
//!
//! ```text
//! did:x509:0:sha256:<base64url CA fingerprint>::subject:O:Zorg%20Oost:L:Amsterdam::san:otherName:<UZI>
//! ```
//!
//! Revocation (OCSP, CRL) is not checked here: see `specs/did-x509.md` §5.

use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use serde_json::{json, Value};
use sha2::Digest;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// Longest did:x509 accepted (bytes).
pub const MAX_DID_BYTES: usize = 2048;
/// Most certificates in a chain.
pub const MAX_CHAIN: usize = 8;

/// Why a did:x509 did not resolve.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum X509Error {
    #[error("invalid did:x509: {0}")]
    InvalidDid(String),
    #[error("certificate chain: {0}")]
    Chain(String),
    #[error("no certificate of the chain has the CA fingerprint of the DID")]
    Fingerprint,
    #[error("the leaf certificate does not satisfy the policy {0}")]
    Policy(String),
}

fn invalid(s: impl Into<String>) -> X509Error {
    X509Error::InvalidDid(s.into())
}

/// The hash of the CA fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn digest(self, der: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(der).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(der).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(der).to_vec(),
        }
    }
}

/// One policy of a did:x509.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `subject:<key>:<value>(:<key>:<value>)*`: the leaf's subject has each attribute.
    Subject(Vec<(String, String)>),
    /// `san:<type>:<value>`, type `email`, `dns`, `uri` or `otherName` (the Dutch UZI profile).
    San(String, String),
    /// `eku:<OID>`: the leaf's extended key usage includes the OID.
    Eku(String),
}

/// A parsed did:x509.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X509Did {
    pub hash: HashAlg,
    pub ca_fingerprint: Vec<u8>,
    pub policies: Vec<Policy>,
}

/// Subject attribute names and their OIDs (RFC 4519 names, as did:x509 uses them).
const SUBJECT_KEYS: [(&str, &str); 7] = [
    ("CN", "2.5.4.3"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("C", "2.5.4.6"),
    ("STREET", "2.5.4.9"),
];

/// Percent-decodes a policy value (RFC 3986 §2.1; did:x509 allows `ALPHA / DIGIT / - . _` and
/// `%XX` escapes).
pub fn percent_decode(s: &str) -> Result<String, X509Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| invalid(format!("bad escape in {s}")))?;
                out.push(hex);
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || b"-._".contains(&c) => {
                out.push(c);
                i += 1;
            }
            c => {
                return Err(invalid(format!(
                    "character {:?} must be escaped",
                    c as char
                )))
            }
        }
    }
    String::from_utf8(out).map_err(|_| invalid("a value is not UTF-8"))
}

/// Parses a did:x509 (version 0).
pub fn parse(did: &str) -> Result<X509Did, X509Error> {
    if did.len() > MAX_DID_BYTES {
        return Err(invalid("too long"));
    }
    let rest = did
        .strip_prefix("did:x509:0:")
        .ok_or_else(|| invalid("must start with did:x509:0:"))?;
    let mut parts = rest.split("::");
    let head = parts.next().unwrap_or_default();
    let (alg, fp) = head
        .split_once(':')
        .ok_or_else(|| invalid("<hash>:<CA fingerprint> is required"))?;
    let hash = match alg {
        "sha256" => HashAlg::Sha256,
        "sha384" => HashAlg::Sha384,
        "sha512" => HashAlg::Sha512,
        a => return Err(invalid(format!("hash algorithm {a} is not supported"))),
    };
    let ca_fingerprint = BASE64_URL_SAFE_NO_PAD
        .decode(fp)
        .map_err(|_| invalid("the CA fingerprint is not base64url"))?;
    if ca_fingerprint.len() != hash.digest(b"").len() {
        return Err(invalid("the CA fingerprint has the wrong length"));
    }
    let mut policies = Vec::new();
    for p in parts {
        let mut f = p.split(':');
        let name = f.next().unwrap_or_default();
        let args: Vec<&str> = f.collect();
        let policy = match (name, args.as_slice()) {
            ("subject", kv) if !kv.is_empty() && kv.len() % 2 == 0 => {
                let mut pairs = Vec::new();
                for c in kv.chunks(2) {
                    let key = c[0].to_ascii_uppercase();
                    if !SUBJECT_KEYS.iter().any(|(k, _)| *k == key) {
                        return Err(invalid(format!("subject key {} is not supported", c[0])));
                    }
                    if pairs.iter().any(|(k, _): &(String, String)| *k == key) {
                        return Err(invalid(format!("subject key {key} is given twice")));
                    }
                    pairs.push((key, percent_decode(c[1])?));
                }
                Policy::Subject(pairs)
            }
            ("san", [t, v]) if ["email", "dns", "uri", "otherName"].contains(t) => {
                Policy::San((*t).to_owned(), percent_decode(v)?)
            }
            ("eku", [oid])
                if !oid.is_empty()
                    && oid
                        .split('.')
                        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
            {
                Policy::Eku((*oid).to_owned())
            }
            (n, _) => {
                return Err(invalid(format!(
                    "policy {n} is not supported or malformed (subject, san, eku)"
                )))
            }
        };
        policies.push(policy);
    }
    if policies.is_empty() {
        return Err(invalid("at least one policy is required"));
    }
    Ok(X509Did {
        hash,
        ca_fingerprint,
        policies,
    })
}

/// A resolved did:x509.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The DID document (one `JsonWebKey2020` method `#0`, for authentication and assertions).
    pub document: Value,
    /// The leaf's public key as a JWK.
    pub jwk: Value,
    /// The leaf's validity (Unix seconds).
    pub not_before: i64,
    pub not_after: i64,
    /// The parsed DID.
    pub did: X509Did,
}

fn chain_err(s: impl Into<String>) -> X509Error {
    X509Error::Chain(s.into())
}

/// The UZI `otherName` value (an IA5String or UTF8String inside the `[0]` explicit tag).
fn other_name_value(raw: &[u8]) -> Option<String> {
    // [0] { string }: skip the explicit tag and its length, then read the inner string.
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *b.first()?;
        let first = *b.get(1)?;
        let (len, off) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 2 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | usize::from(*b.get(2 + i)?);
            }
            (len, 2 + n)
        };
        let body = b.get(off..off + len)?;
        Some((tag, body, b.get(off + len..)?))
    }
    let (tag, inner, _) = tlv(raw)?;
    let inner = if tag == 0xa0 { inner } else { raw };
    let (t, s, _) = tlv(inner)?;
    matches!(t, 0x16 | 0x0c | 0x13)
        .then(|| String::from_utf8(s.to_vec()).ok())
        .flatten()
}

fn leaf_jwk(cert: &X509Certificate<'_>) -> Result<Value, X509Error> {
    let spki = cert.public_key();
    let b64 = |b: &[u8]| BASE64_URL_SAFE_NO_PAD.encode(b);
    let alg = spki.algorithm.algorithm.to_id_string();
    if alg == "1.3.101.112" {
        let x = spki.subject_public_key.data.as_ref();
        return Ok(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(x)}));
    }
    match spki
        .parsed()
        .map_err(|_| chain_err("the leaf's public key does not parse"))?
    {
        PublicKey::RSA(k) => {
            let strip = |b: &[u8]| {
                let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                b[start..].to_vec()
            };
            Ok(json!({"kty": "RSA", "n": b64(&strip(k.modulus)), "e": b64(&strip(k.exponent))}))
        }
        PublicKey::EC(point) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let (crv, n) = match curve.as_str() {
                "1.2.840.10045.3.1.7" => ("P-256", 32),
                "1.3.132.0.34" => ("P-384", 48),
                c => return Err(chain_err(format!("the leaf's curve {c} is not supported"))),
            };
            let d = point.data();
            if d.len() != 1 + 2 * n || d[0] != 4 {
                return Err(chain_err("the leaf's EC point is not uncompressed"));
            }
            Ok(json!({"kty": "EC", "crv": crv, "x": b64(&d[1..=n]), "y": b64(&d[n + 1..])}))
        }
        _ => Err(chain_err("the leaf's key type is not supported")),
    }
}

fn check_policy(leaf: &X509Certificate<'_>, p: &Policy) -> Result<(), X509Error> {
    let name = |p: &Policy| match p {
        Policy::Subject(kv) => format!(
            "subject {}",
            kv.iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Policy::San(t, _) => format!("san {t}"),
        Policy::Eku(o) => format!("eku {o}"),
    };
    let ok = match p {
        Policy::Subject(pairs) => pairs.iter().all(|(key, value)| {
            let oid = SUBJECT_KEYS
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, o)| *o)
                .unwrap_or_default();
            leaf.subject().iter_attributes().any(|a| {
                a.attr_type().to_id_string() == oid && a.as_str().is_ok_and(|v| v == value)
            })
        }),
        Policy::San(t, value) => {
            let san = leaf
                .subject_alternative_name()
                .map_err(|_| chain_err("the leaf's subjectAltName does not parse"))?;
            san.is_some_and(|s| {
                s.value.general_names.iter().any(|g| match (t.as_str(), g) {
                    ("email", GeneralName::RFC822Name(v))
                    | ("dns", GeneralName::DNSName(v))
                    | ("uri", GeneralName::URI(v)) => v == value,
                    ("otherName", GeneralName::OtherName(_, raw)) => {
                        other_name_value(raw).as_deref() == Some(value.as_str())
                    }
                    _ => false,
                })
            })
        }
        Policy::Eku(oid) => {
            let eku = leaf
                .extended_key_usage()
                .map_err(|_| chain_err("the leaf's extendedKeyUsage does not parse"))?;
            eku.is_some_and(|e| {
                let e = e.value;
                let known = [
                    ("1.3.6.1.5.5.7.3.1", e.server_auth),
                    ("1.3.6.1.5.5.7.3.2", e.client_auth),
                    ("1.3.6.1.5.5.7.3.3", e.code_signing),
                    ("1.3.6.1.5.5.7.3.4", e.email_protection),
                    ("1.3.6.1.5.5.7.3.8", e.time_stamping),
                    ("1.3.6.1.5.5.7.3.9", e.ocsp_signing),
                ];
                known.iter().any(|(o, set)| *set && o == oid)
                    || e.other.iter().any(|o| o.to_id_string() == *oid)
            })
        }
    };
    ok.then_some(()).ok_or_else(|| X509Error::Policy(name(p)))
}

/// Resolves `did` with its certificate `chain` (DER, leaf first) at `now` (Unix seconds): every
/// certificate is valid now and signed by the next one, the certificates after the leaf are
/// CAs, one of them has the DID's CA fingerprint, and the leaf satisfies every policy.
pub fn resolve(did: &str, chain: &[Vec<u8>], now: i64) -> Result<Resolved, X509Error> {
    let parsed = parse(did)?;
    if chain.is_empty() || chain.len() > MAX_CHAIN {
        return Err(chain_err(format!(
            "1 to {MAX_CHAIN} certificates are needed"
        )));
    }
    let certs = chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|_| chain_err(format!("certificate {i} does not parse")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, c) in certs.iter().enumerate() {
        let v = c.validity();
        if now < v.not_before.timestamp() || now > v.not_after.timestamp() {
            return Err(chain_err(format!("certificate {i} is not valid now")));
        }
        if let Some(next) = certs.get(i + 1) {
            if !next.is_ca() {
                return Err(chain_err(format!("certificate {} is not a CA", i + 1)));
            }
            if c.issuer().as_raw() != next.subject().as_raw() {
                return Err(chain_err(format!(
                    "certificate {i} is not issued by certificate {}",
                    i + 1
                )));
            }
            c.verify_signature(Some(next.public_key()))
                .map_err(|e| chain_err(format!("certificate {i}'s signature: {e}")))?;
        }
    }
    if !chain
        .iter()
        .skip(1)
        .any(|der| parsed.hash.digest(der) == parsed.ca_fingerprint)
    {
        return Err(X509Error::Fingerprint);
    }
    let leaf = &certs[0];
    for p in &parsed.policies {
        check_policy(leaf, p)?;
    }
    let jwk = leaf_jwk(leaf)?;
    let vm = format!("{did}#0");
    let document = json!({
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/suites/jws-2020/v1"
        ],
        "id": did,
        "verificationMethod": [{
            "id": vm, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": jwk,
        }],
        "authentication": [vm],
        "assertionMethod": [vm],
    });
    Ok(Resolved {
        document,
        jwk,
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
        did: parsed,
    })
}

#[cfg(test)]
mod tests;
