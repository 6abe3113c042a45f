//! DIDs of other methods: `did:key` and `did:jwk` (resolved locally through `ssi`), and the
//! `did:web` rules (DID to URL mapping, document checks) for the node's HTTPS fetcher.
//!
//! Specs: did:key <https://w3c-ccg.github.io/did-method-key/>, did:jwk
//! <https://github.com/quartzjer/did-jwk/blob/main/spec.md>, did:web
//! <https://w3c-ccg.github.io/did-method-web/>.
//!
//! Everything here is pure. Input is checked against the DID syntax before it reaches `ssi`:
//! ssi's method resolvers `unwrap()` the DID they rebuild from the method-specific id, so an id
//! with characters outside the DID grammar would panic inside them. ssi also accepts any
//! multibase for did:key and does not check that the key bytes are a valid key, so both are
//! checked here first.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use ssi::dids::resolution::{DIDMethodResolver, Options};
use ssi::dids::{DIDKey, DIDJWK};
use ssi::jwk::{Params, JWK};
use ssi::multicodec::{MultiEncoded, ED25519_PUB, P256_PUB, SECP256K1_PUB, X25519_PUB};

/// Longest DID accepted here (a did:jwk of a large key stays well below it).
pub const MAX_DID_LEN: usize = 4096;

/// Largest did:web document accepted.
pub const MAX_DID_WEB_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why a DID of another method could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExternalError {
    #[error("invalid DID: {0}")]
    InvalidDid(String),
    #[error("DID not found: {0}")]
    NotFound(String),
    #[error("DID method not supported: {0}")]
    MethodNotSupported(String),
    #[error("invalid DID document: {0}")]
    InvalidDocument(String),
}

impl ExternalError {
    /// The W3C DID Resolution error code.
    pub fn code(&self) -> &'static str {
        match self {
            ExternalError::InvalidDid(_) => "invalidDid",
            ExternalError::NotFound(_) => "notFound",
            ExternalError::MethodNotSupported(_) => "methodNotSupported",
            ExternalError::InvalidDocument(_) => "invalidDidDocument",
        }
    }
}

fn invalid(did: &str, why: &str) -> ExternalError {
    ExternalError::InvalidDid(format!("{}: {why}", shorten(did)))
}

/// Keeps error messages bounded when the input is long.
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Splits a DID into method name and method-specific id, checking the W3C DID Core syntax:
/// `did:` method-name `:` method-specific-id, where the method-specific id is
/// `*( *idchar ":" ) 1*idchar` and idchar is ALPHA / DIGIT / "." / "-" / "_" / pct-encoded.
fn split_did(did: &str) -> Result<(&str, &str), ExternalError> {
    if did.len() > MAX_DID_LEN {
        return Err(invalid(did, "too long"));
    }
    let rest = did
        .strip_prefix("did:")
        .ok_or_else(|| invalid(did, "does not start with `did:`"))?;
    let (method, msid) = rest
        .split_once(':')
        .ok_or_else(|| invalid(did, "no method-specific id"))?;
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(invalid(did, "bad method name"));
    }
    if msid.is_empty() || msid.ends_with(':') {
        return Err(invalid(did, "empty method-specific id"));
    }
    let bytes = msid.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b':' => i += 1,
            b'%' => {
                let ok = bytes.len() > i + 2
                    && bytes[i + 1].is_ascii_hexdigit()
                    && bytes[i + 2].is_ascii_hexdigit();
                if !ok {
                    return Err(invalid(did, "bad percent-encoding"));
                }
                i += 3;
            }
            _ => return Err(invalid(did, "character not allowed in a DID")),
        }
    }
    Ok((method, msid))
}

fn expect_method<'a>(did: &'a str, want: &str) -> Result<&'a str, ExternalError> {
    let (method, msid) = split_did(did)?;
    if method != want {
        return Err(ExternalError::MethodNotSupported(format!(
            "did:{method} (expected did:{want})"
        )));
    }
    Ok(msid)
}

/// Runs one of ssi's method resolvers (async, but no IO) and parses its JSON-LD output.
fn run_ssi<R: DIDMethodResolver>(
    resolver: R,
    did: &str,
    msid: &str,
    options: Options,
) -> Result<Value, ExternalError> {
    let output = futures::executor::block_on(resolver.resolve_method_representation(msid, options))
        .map_err(|e| invalid(did, &e.to_string()))?;
    let doc: Value = serde_json::from_slice(&output.document)
        .map_err(|e| ExternalError::InvalidDocument(format!("ssi output: {e}")))?;
    if doc.get("id").and_then(Value::as_str) != Some(did) {
        return Err(ExternalError::InvalidDocument(
            "ssi output has another id".into(),
        ));
    }
    Ok(doc)
}

/// The verification relationships a key may be used for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyUse {
    Any,
    Signing,
    KeyAgreement,
}

const SIGNING_RELATIONSHIPS: [&str; 4] = [
    "authentication",
    "assertionMethod",
    "capabilityInvocation",
    "capabilityDelegation",
];

/// Rewrites the verification relationships of a one-key document: relative references
/// (`#0`) become absolute (`did:...#0`) so that consumers matching ids as strings work, and a
/// key-agreement-only key (X25519, or a JWK with `"use": "enc"`) is listed under
/// `keyAgreement` only, a signing-only key (`"use": "sig"`) never under it, and a signing key
/// under all of `authentication`, `assertionMethod`, `capabilityInvocation` and
/// `capabilityDelegation`.
fn fix_relationships(doc: &mut Value, did: &str, key_use: KeyUse) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    let Some(vm_id) = obj
        .get("verificationMethod")
        .and_then(|v| v.get(0))
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let vm_id = match vm_id.strip_prefix('#') {
        Some(fragment) => format!("{did}#{fragment}"),
        None => vm_id,
    };
    let reference = || Value::Array(vec![Value::String(vm_id.clone())]);
    for rel in SIGNING_RELATIONSHIPS
        .iter()
        .copied()
        .chain(std::iter::once("keyAgreement"))
    {
        // A signing key is in all four signing relationships (the did:key method's document
        // creation; ssi leaves out the capability ones); `keyAgreement` as ssi derived it.
        let signing = SIGNING_RELATIONSHIPS.contains(&rel);
        let want = match key_use {
            KeyUse::Any => signing || obj.contains_key(rel),
            KeyUse::Signing => signing,
            KeyUse::KeyAgreement => rel == "keyAgreement",
        };
        if want {
            obj.insert(rel.to_owned(), reference());
        } else {
            obj.remove(rel);
        }
    }
}

/// Resolves a `did:key` to its DID document (JSON-LD, `Multikey` verification method whose
/// `publicKeyMultibase` is the method-specific id). Supported keys: Ed25519, X25519, P-256,
/// secp256k1; the key bytes are checked to be a valid public key.
pub fn resolve_did_key(did: &str) -> Result<Value, ExternalError> {
    let msid = expect_method(did, "key")?;
    if msid.contains(':') || msid.contains('%') {
        return Err(invalid(did, "did:key ids have no `:` or `%`"));
    }
    // The did:key spec fixes the multibase to base58-btc; ssi would take any multibase.
    let b58 = msid
        .strip_prefix('z')
        .ok_or_else(|| invalid(did, "not base58-btc multibase (`z...`)"))?;
    let bytes = bs58::decode(b58)
        .into_vec()
        .map_err(|_| invalid(did, "bad base58"))?;
    let encoded = MultiEncoded::new(&bytes).map_err(|_| invalid(did, "bad multicodec"))?;
    let (codec, key) = encoded.parts();
    let key_use = match codec {
        ED25519_PUB => {
            ed25519_dalek::VerifyingKey::try_from(key)
                .map_err(|_| invalid(did, "not an Ed25519 public key"))?;
            KeyUse::Any
        }
        X25519_PUB => {
            if key.len() != 32 {
                return Err(invalid(did, "not an X25519 public key"));
            }
            KeyUse::KeyAgreement
        }
        P256_PUB | SECP256K1_PUB => {
            // did:key fixes the compressed SEC1 form; the parser would also take others
            // (uncompressed, and the 0x05 "compact" form).
            if key.len() != 33 || !matches!(key[0], 2 | 3) {
                return Err(invalid(did, "not a compressed EC public key"));
            }
            JWK::from_multicodec(encoded).map_err(|_| invalid(did, "not a valid public key"))?;
            KeyUse::Any
        }
        _ => return Err(invalid(did, &format!("unsupported key type 0x{codec:x}"))),
    };
    let mut doc = run_ssi(DIDKey, did, msid, Options::default())?;
    let vm = doc.get("verificationMethod").and_then(|v| v.get(0));
    if vm
        .and_then(|v| v.get("publicKeyMultibase"))
        .and_then(Value::as_str)
        != Some(msid)
    {
        return Err(ExternalError::InvalidDocument(
            "ssi output does not carry the key of the DID".into(),
        ));
    }
    fix_relationships(&mut doc, did, key_use);
    Ok(doc)
}

/// Resolves a `did:jwk` to its DID document (JSON-LD, one `JsonWebKey2020` verification
/// method `#0` as the did:jwk spec writes it). Supported keys: Ed25519, X25519, P-256,
/// secp256k1, public only; points are checked to be on the curve. `"use": "enc"` limits the key
/// to `keyAgreement`, `"use": "sig"` keeps it out of it.
pub fn resolve_did_jwk(did: &str) -> Result<Value, ExternalError> {
    let msid = expect_method(did, "jwk")?;
    let json = URL_SAFE_NO_PAD
        .decode(msid)
        .map_err(|_| invalid(did, "not base64url"))?;
    let jwk: JWK = serde_json::from_slice(&json).map_err(|_| invalid(did, "not a JWK"))?;
    if jwk.to_public() != jwk {
        return Err(invalid(did, "the JWK holds private key material"));
    }
    match &jwk.params {
        Params::OKP(p) if p.curve == "Ed25519" => {
            ed25519_dalek::VerifyingKey::try_from(p.public_key.0.as_slice())
                .map_err(|_| invalid(did, "not an Ed25519 public key"))?;
        }
        Params::OKP(p) if p.curve == "X25519" => {
            if p.public_key.0.len() != 32 {
                return Err(invalid(did, "not an X25519 public key"));
            }
        }
        Params::EC(p) if matches!(p.curve.as_deref(), Some("P-256") | Some("secp256k1")) => {
            // Encoding to a compressed point parses (and so checks) the point.
            jwk.to_multicodec()
                .map_err(|_| invalid(did, "not a valid public key"))?;
        }
        _ => return Err(invalid(did, "unsupported key type")),
    }
    let key_use = match jwk.public_key_use.as_deref() {
        None => {
            if matches!(&jwk.params, Params::OKP(p) if p.curve == "X25519") {
                KeyUse::KeyAgreement
            } else {
                KeyUse::Any
            }
        }
        Some("sig") => KeyUse::Signing,
        Some("enc") => KeyUse::KeyAgreement,
        Some(_) => return Err(invalid(did, "unknown JWK `use`")),
    };
    let mut options = Options::default();
    options.parameters.public_key_format = Some("JsonWebKey2020".into());
    let mut doc = run_ssi(DIDJWK, did, msid, options)?;
    fix_relationships(&mut doc, did, key_use);
    Ok(doc)
}

/// True if `label` is a DNS label: 1 to 63 of `[A-Za-z0-9-]`, no hyphen at either end.
fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// True if a URL parser would take this host for an IPv4 address (WHATWG "ends in a number":
/// the last label is decimal digits or `0x` hex, as in `127.1` or `0x7f000001`).
fn looks_like_ipv4(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X"));
    match hex {
        Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Decodes `%XX` escapes (the caller has checked they are well formed).
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Maps a `did:web` DID to the HTTPS URL of its document:
/// `did:web:example.com` → `https://example.com/.well-known/did.json`,
/// `did:web:example.com:user:alice` → `https://example.com/user/alice/did.json`,
/// `did:web:localhost%3A8443` → `https://localhost:8443/.well-known/did.json`.
///
/// The host must be a DNS name (no IP address, as the spec requires), optionally with a port
/// given as `%3A`; path segments must be non-empty, not `.` or `..` in any encoding, and may
/// not encode `/`, `\`, `?`, `#` or control characters.
pub fn did_web_url(did: &str) -> Result<String, ExternalError> {
    let msid = expect_method(did, "web")?;
    let mut segments = msid.split(':');
    let authority = segments.next().unwrap_or_default();
    // The only escape allowed in the host part is the port's colon.
    let lower = authority.to_ascii_lowercase();
    let (host, port) = match lower.split_once("%3a") {
        Some((h, p)) => (h, Some(p)),
        None => (lower.as_str(), None),
    };
    if host.contains('%') {
        return Err(invalid(did, "percent-encoding in the host"));
    }
    if host.is_empty() || host.len() > 253 || !host.split('.').all(is_dns_label) {
        return Err(invalid(did, "host is not a domain name"));
    }
    if looks_like_ipv4(host) {
        return Err(invalid(did, "IP addresses are not allowed in did:web"));
    }
    let port = match port {
        None => None,
        Some(p) => {
            let ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
            match p.parse::<u16>() {
                Ok(n) if ok && n != 0 => Some(n),
                _ => return Err(invalid(did, "bad port")),
            }
        }
    };
    let mut path = String::new();
    let mut has_path = false;
    for segment in segments {
        has_path = true;
        if segment.is_empty() {
            return Err(invalid(did, "empty path segment"));
        }
        let decoded = percent_decode(segment);
        if decoded == b"." || decoded == b".." {
            return Err(invalid(did, "`.` or `..` path segment"));
        }
        // A decoded `%` is refused too: `%252F` fools servers that decode twice.
        if decoded
            .iter()
            .any(|&b| matches!(b, b'/' | b'\\' | b'?' | b'#' | b'%') || b < 0x20 || b == 0x7f)
        {
            return Err(invalid(did, "path segment encodes a forbidden character"));
        }
        path.push('/');
        path.push_str(segment);
    }
    if !has_path {
        path.push_str("/.well-known");
    }
    let authority = match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    Ok(format!("https://{authority}{path}/did.json"))
}

/// Checks a fetched did:web document: at most [`MAX_DID_WEB_DOCUMENT_BYTES`], a JSON object,
/// and its `id` is exactly `did`. Returns the document.
pub fn check_did_web_document(did: &str, body: &[u8]) -> Result<Value, ExternalError> {
    if body.len() > MAX_DID_WEB_DOCUMENT_BYTES {
        return Err(ExternalError::InvalidDocument(format!(
            "{} bytes, more than {MAX_DID_WEB_DOCUMENT_BYTES}",
            body.len()
        )));
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| ExternalError::InvalidDocument(format!("not JSON: {e}")))?;
    if !doc.is_object() {
        return Err(ExternalError::InvalidDocument("not a JSON object".into()));
    }
    match doc.get("id").and_then(Value::as_str) {
        Some(id) if id == did => Ok(doc),
        Some(id) => Err(ExternalError::InvalidDocument(format!(
            "id {} is not {}",
            shorten(id),
            shorten(did)
        ))),
        None => Err(ExternalError::InvalidDocument("no string `id`".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The four signing relationships, in the order `relationships` lists them.
    const SIGNING_SORTED: [&str; 4] = [
        "assertionMethod",
        "authentication",
        "capabilityDelegation",
        "capabilityInvocation",
    ];

    /// Ed25519 vectors from the did:key spec.
    const ED25519_KEYS: [&str; 3] = [
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
        "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
    ];
    const P256_KEY: &str = "did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169";
    const SECP256K1_KEY: &str = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme";
    const X25519_KEY: &str = "did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F";

    /// From the did:jwk spec.
    const JWK_P256: &str = "did:jwk:eyJjcnYiOiJQLTI1NiIsImt0eSI6IkVDIiwieCI6ImFjYklRaXVNczNpOF91c3pFakoydHBUdFJNNEVVM3l6OTFQSDZDZEgyVjAiLCJ5IjoiX0tjeUxqOXZXTXB0bm1LdG00NkdxRHo4d2Y3NEk1TEtncmwyR3pIM25TRSJ9";
    const JWK_X25519_SPEC: &str = "did:jwk:eyJrdHkiOiJPS1AiLCJjcnYiOiJYMjU1MTkiLCJ1c2UiOiJlbmMiLCJ4IjoiM3A3YmZYdDl3YlRUVzJIQzdPUTFOei1EUThoYmVHZE5yZkx5eEJSRUxJRk0ifQ";

    /// The Ed25519 public key of RFC 8037, appendix A.
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    /// An X25519 public key of RFC 8037, appendix A.6.
    const RFC8037_X25519_X: &str = "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo";

    fn did_jwk(jwk: Value) -> String {
        format!("did:jwk:{}", URL_SAFE_NO_PAD.encode(jwk.to_string()))
    }

    fn did_key_from(codec_prefix: &[u8], key: &[u8]) -> String {
        let mut bytes = codec_prefix.to_vec();
        bytes.extend_from_slice(key);
        format!("did:key:z{}", bs58::encode(bytes).into_string())
    }

    fn relationships(doc: &Value) -> Vec<&str> {
        let mut out: Vec<&str> = SIGNING_RELATIONSHIPS
            .iter()
            .copied()
            .chain(["keyAgreement"])
            .filter(|r| doc.get(*r).is_some())
            .collect();
        out.sort();
        out
    }

    fn is_invalid_did<T: std::fmt::Debug>(r: Result<T, ExternalError>) -> bool {
        matches!(r, Err(ExternalError::InvalidDid(_)))
    }

    #[test]
    fn codes() {
        let s = String::new;
        assert_eq!(ExternalError::InvalidDid(s()).code(), "invalidDid");
        assert_eq!(ExternalError::NotFound(s()).code(), "notFound");
        assert_eq!(
            ExternalError::MethodNotSupported(s()).code(),
            "methodNotSupported"
        );
        assert_eq!(
            ExternalError::InvalidDocument(s()).code(),
            "invalidDidDocument"
        );
    }

    #[test]
    fn did_key_ed25519_vectors() {
        for did in ED25519_KEYS {
            let doc = resolve_did_key(did).expect(did);
            let msid = &did["did:key:".len()..];
            let vm_id = format!("{did}#{msid}");
            assert_eq!(doc["id"], did);
            let vm = &doc["verificationMethod"][0];
            assert_eq!(vm["id"], vm_id.as_str());
            assert_eq!(vm["type"], "Multikey");
            assert_eq!(vm["controller"], did);
            assert_eq!(vm["publicKeyMultibase"], msid);
            for rel in SIGNING_RELATIONSHIPS {
                assert_eq!(doc[rel], json!([vm_id]), "{rel}");
            }
            let ctx = doc["@context"].as_array().expect("context array");
            assert_eq!(ctx[0], "https://www.w3.org/ns/did/v1");
            assert!(ctx.contains(&json!("https://w3id.org/security/multikey/v1")));
        }
    }

    #[test]
    fn did_key_other_curves() {
        for did in [P256_KEY, SECP256K1_KEY] {
            let doc = resolve_did_key(did).expect(did);
            assert_eq!(
                doc["verificationMethod"][0]["publicKeyMultibase"],
                &did["did:key:".len()..]
            );
            assert_eq!(relationships(&doc), SIGNING_SORTED);
        }
        let doc = resolve_did_key(X25519_KEY).expect("x25519");
        assert_eq!(relationships(&doc), ["keyAgreement"]);
        assert_eq!(
            doc["keyAgreement"],
            json!([format!("{X25519_KEY}#{}", &X25519_KEY["did:key:".len()..])])
        );
    }

    #[test]
    fn did_key_malformed() {
        let valid = ED25519_KEYS[0];
        let b58 = &valid["did:key:z".len()..];
        let raw = bs58::decode(b58).into_vec().expect("vector");
        let key = &raw[2..];
        // An Ed25519 point that does not decompress.
        let bad_point = (0u8..=255)
            .map(|i| [i; 32])
            .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
            .expect("some byte pattern is not a point");
        let long = format!("did:key:z{}", "1".repeat(MAX_DID_LEN));
        let cases = [
            String::new(),
            "did".into(),
            "did:".into(),
            "did:key".into(),
            "did:key:".into(),
            "did:key:z".into(),
            "did:key:zzzz".into(),
            "did:key:z0OIl".into(),
            "did:key:6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp".into(),
            format!("did:key:u{}", URL_SAFE_NO_PAD.encode(&raw)),
            format!("did:key:f{}", hex::encode(&raw)),
            format!("{valid}#{b58}"),
            format!("{valid}?x=1"),
            format!("{valid}/path"),
            format!("{valid} "),
            format!("{valid}:x"),
            format!("{valid}%41"),
            "did:key:%zz".into(),
            "did:key:%".into(),
            "DID:key:z6Mk".into(),
            "did:KEY:z6Mk".into(),
            "did:key:z6Mké".into(),
            did_key_from(&[0xed, 0x01], &key[..31]),
            did_key_from(&[0xed, 0x01], &[key, &[0]].concat()),
            did_key_from(&[0xed, 0x01], &bad_point),
            did_key_from(&[0xec, 0x01], &key[..31]),
            did_key_from(&[0x80, 0x26], key), // ed25519-priv
            did_key_from(&[0xed], key),       // truncated varint
            did_key_from(&[0x80, 0x24], &[[2u8].as_slice(), &[0xff; 32]].concat()), // p256-pub, x >= p
            did_key_from(&[0xe7, 0x01], &[[2u8].as_slice(), &[0xff; 32]].concat()), // x >= p
            did_key_from(&[0x80, 0x24], &[5u8; 33]),                                // bad SEC1 tag
            long,
        ];
        for did in &cases {
            let r = resolve_did_key(did);
            assert!(is_invalid_did(r.clone()), "{did:?} gave {r:?}");
        }
        assert!(matches!(
            resolve_did_key(JWK_P256),
            Err(ExternalError::MethodNotSupported(_))
        ));
        assert!(matches!(
            resolve_did_key("did:web:example.com"),
            Err(ExternalError::MethodNotSupported(_))
        ));
    }

    #[test]
    fn did_jwk_p256_spec_example() {
        let doc = resolve_did_jwk(JWK_P256).expect("p256");
        let vm_id = format!("{JWK_P256}#0");
        assert_eq!(doc["id"], JWK_P256);
        let vm = &doc["verificationMethod"][0];
        assert_eq!(vm["id"], vm_id.as_str());
        assert_eq!(vm["type"], "JsonWebKey2020");
        assert_eq!(vm["controller"], JWK_P256);
        assert_eq!(vm["publicKeyJwk"]["crv"], "P-256");
        assert_eq!(
            vm["publicKeyJwk"]["x"],
            "acbIQiuMs3i8_uszEjJ2tpTtRM4EU3yz91PH6CdH2V0"
        );
        assert_eq!(
            vm["publicKeyJwk"]["y"],
            "_KcyLj9vWMptnmKtm46GqDz8wf74I5LKgrl2GzH3nSE"
        );
        for rel in SIGNING_RELATIONSHIPS.iter().chain(&["keyAgreement"]) {
            assert_eq!(doc[*rel], json!([vm_id]), "{rel}");
        }
        let ctx = doc["@context"].as_array().expect("context array");
        assert!(ctx.contains(&json!("https://w3id.org/security/suites/jws-2020/v1")));
    }

    #[test]
    fn did_jwk_x25519_is_key_agreement_only() {
        // The did:jwk spec's own X25519 example has a 33-byte `x` (44 base64url characters),
        // so it is not a valid X25519 key.
        assert!(is_invalid_did(resolve_did_jwk(JWK_X25519_SPEC)));

        for use_ in [Some("enc"), None] {
            let mut jwk = json!({"kty": "OKP", "crv": "X25519", "x": RFC8037_X25519_X});
            if let Some(u) = use_ {
                jwk["use"] = json!(u);
            }
            let did = did_jwk(jwk);
            let doc = resolve_did_jwk(&did).expect("x25519");
            assert_eq!(relationships(&doc), ["keyAgreement"]);
            assert_eq!(doc["keyAgreement"], json!([format!("{did}#0")]));
            assert_eq!(
                doc["verificationMethod"][0]["publicKeyJwk"]["crv"],
                "X25519"
            );
        }
    }

    #[test]
    fn did_jwk_ed25519() {
        let did = did_jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}));
        let doc = resolve_did_jwk(&did).expect("ed25519");
        let vm = &doc["verificationMethod"][0];
        assert_eq!(vm["publicKeyJwk"]["x"], RFC8037_X);
        assert_eq!(vm["publicKeyJwk"]["kty"], "OKP");
        assert_eq!(relationships(&doc).len(), 5);

        let sig = did_jwk(json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "x": RFC8037_X}));
        let doc = resolve_did_jwk(&sig).expect("ed25519 sig");
        assert_eq!(relationships(&doc), SIGNING_SORTED);
    }

    #[test]
    fn did_jwk_malformed() {
        let short_x = URL_SAFE_NO_PAD.encode([1u8; 31]);
        let p256_off_curve = json!({"kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([1u8; 32])});
        let cases = [
            String::new(),
            "did:jwk:".into(),
            "did:jwk:notbase64".into(),
            "did:jwk:e30".into(), // {}
            "did:jwk:eyJ".into(),
            format!("did:jwk:{}", URL_SAFE_NO_PAD.encode("not json")),
            format!("did:jwk:{}", URL_SAFE_NO_PAD.encode("[1,2]")),
            format!("{}=", &JWK_P256),
            format!("{JWK_P256}#0"),
            format!("did:jwk:{}", base64::engine::general_purpose::STANDARD.encode("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}??")),
            did_jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X,
                "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"})),
            did_jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": short_x})),
            did_jwk(json!({"kty": "OKP", "crv": "X25519", "x": short_x})),
            did_jwk(json!({"kty": "OKP", "crv": "Ed448", "x": RFC8037_X})),
            did_jwk(json!({"kty": "OKP", "crv": "Ed25519", "use": "wrap", "x": RFC8037_X})),
            did_jwk(p256_off_curve),
            did_jwk(json!({"kty": "oct", "k": "AAAA"})),
            did_jwk(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
            format!("did:jwk:{}", "A".repeat(MAX_DID_LEN)),
        ];
        for did in &cases {
            let r = resolve_did_jwk(did);
            assert!(is_invalid_did(r.clone()), "{did:?} gave {r:?}");
        }
        assert!(matches!(
            resolve_did_jwk(ED25519_KEYS[0]),
            Err(ExternalError::MethodNotSupported(_))
        ));
    }

    #[test]
    fn did_web_spec_examples() {
        let cases = [
            (
                "did:web:w3c-ccg.github.io",
                "https://w3c-ccg.github.io/.well-known/did.json",
            ),
            (
                "did:web:w3c-ccg.github.io:user:alice",
                "https://w3c-ccg.github.io/user/alice/did.json",
            ),
            (
                "did:web:example.com%3A3000:user:alice",
                "https://example.com:3000/user/alice/did.json",
            ),
            (
                "did:web:example.com",
                "https://example.com/.well-known/did.json",
            ),
            (
                "did:web:example.com:user:alice",
                "https://example.com/user/alice/did.json",
            ),
            (
                "did:web:localhost%3A8443",
                "https://localhost:8443/.well-known/did.json",
            ),
            (
                "did:web:localhost%3a8443:a",
                "https://localhost:8443/a/did.json",
            ),
            (
                "did:web:Example.COM:Users:Bob",
                "https://example.com/Users/Bob/did.json",
            ),
            (
                "did:web:xn--nxasmq6b.example:a.b:c-d_e",
                "https://xn--nxasmq6b.example/a.b/c-d_e/did.json",
            ),
            (
                "did:web:example.com:alice%40home",
                "https://example.com/alice%40home/did.json",
            ),
            (
                "did:web:10.0.0.example",
                "https://10.0.0.example/.well-known/did.json",
            ),
        ];
        for (did, url) in cases {
            assert_eq!(did_web_url(did).as_deref(), Ok(url), "{did}");
        }
    }

    #[test]
    fn did_web_malformed() {
        let cases = [
            "",
            "did:web",
            "did:web:",
            "did:web::",
            "did:web:a..b",
            "did:web:.example.com",
            "did:web:example.com.",
            "did:web:-example.com",
            "did:web:example-.com",
            "did:web:exa_mple.com",
            "did:web:example.com:",
            "did:web:example.com::alice",
            "did:web:example.com:..",
            "did:web:example.com:.",
            "did:web:example.com:a:..:b",
            "did:web:example.com:%2E%2E",
            "did:web:example.com:%2e",
            "did:web:example.com:a%2Fb",
            "did:web:example.com:a%5Cb",
            "did:web:example.com:a%3Fb",
            "did:web:example.com:a%23b",
            "did:web:example.com:a%00b",
            "did:web:example.com:%252e%252e",
            "did:web:example.com:a%2",
            "did:web:example.com:a%zz",
            "did:web:example.com/a",
            "did:web:example.com#a",
            "did:web:example.com?a",
            "did:web:example.com:a b",
            "did:web:example.com:~alice",
            "did:web:example.com%2F..",
            "did:web:example.com%40evil.com",
            "did:web:user%3Apass%40host",
            "did:web:example.com%3A",
            "did:web:example.com%3A0",
            "did:web:example.com%3A65536",
            "did:web:example.com%3A123456",
            "did:web:example.com%3A+80",
            "did:web:example.com%3A80%3A81",
            "did:web:%3A80",
            "did:web:127.0.0.1",
            "did:web:127.0.0.1%3A8443",
            "did:web:127.1",
            "did:web:2130706433",
            "did:web:0x7f000001",
            "did:web:example.0x1F",
            "did:web:%5B::1%5D",
            "did:web:%5B%3A%3A1%5D%3A443",
            "did:web:ex%61mple.com",
            "did:web:exämple.com",
            "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        ];
        for did in cases {
            let r = did_web_url(did);
            assert!(
                matches!(
                    r,
                    Err(ExternalError::InvalidDid(_)) | Err(ExternalError::MethodNotSupported(_))
                ),
                "{did:?} gave {r:?}"
            );
        }
        let label = "a".repeat(64);
        assert!(is_invalid_did(did_web_url(&format!("did:web:{label}.com"))));
        let long_host = vec!["a".repeat(63); 5].join(".");
        assert!(is_invalid_did(did_web_url(&format!("did:web:{long_host}"))));
        assert!(matches!(
            did_web_url("did:key:z6Mk"),
            Err(ExternalError::MethodNotSupported(_))
        ));
    }

    #[test]
    fn did_web_document_checks() {
        let did = "did:web:example.com";
        let doc = json!({"@context": "https://www.w3.org/ns/did/v1", "id": did});
        let body = serde_json::to_vec(&doc).expect("json");
        assert_eq!(check_did_web_document(did, &body), Ok(doc));

        let bad = |body: &[u8]| {
            let r = check_did_web_document(did, body);
            assert!(
                matches!(r, Err(ExternalError::InvalidDocument(_))),
                "{:?} gave {r:?}",
                String::from_utf8_lossy(&body[..body.len().min(60)])
            );
            r.err().map(|e| e.code())
        };
        assert_eq!(
            bad(br#"{"id":"did:web:example.org"}"#),
            Some("invalidDidDocument")
        );
        bad(br#"{"id":"did:web:example.com:x"}"#);
        bad(br#"{"id":"DID:web:example.com"}"#);
        bad(br#"{"id":["did:web:example.com"]}"#);
        bad(br#"{"ID":"did:web:example.com"}"#);
        bad(br#"["did:web:example.com"]"#);
        bad(br#""did:web:example.com""#);
        bad(b"");
        bad(b"null");
        bad(b"{");
        bad(b"\xff\xfe");
        bad(br#"{"id":"did:web:example.com"} x"#);
        bad("[".repeat(10_000).as_bytes());

        // Size: padded with whitespace up to the limit is fine, one byte more is not.
        let mut body = serde_json::to_vec(&json!({ "id": did })).expect("json");
        body.resize(MAX_DID_WEB_DOCUMENT_BYTES, b' ');
        assert!(check_did_web_document(did, &body).is_ok());
        body.push(b' ');
        bad(&body);
    }

    /// Random strings near the valid ones never make anything panic.
    #[test]
    fn never_panics() {
        let seeds = [
            ED25519_KEYS[0],
            P256_KEY,
            X25519_KEY,
            JWK_P256,
            JWK_X25519_SPEC,
            "did:web:localhost%3A8443:user:alice",
        ];
        let alphabet = b"did:keyjwb%3A.-_zZ6Mk0Oe%2F:#?/ \xc3\xa9";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let seed = seeds[round % seeds.len()];
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % (bytes.len() + 1);
                match next() % 3 {
                    0 => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            let s = String::from_utf8_lossy(&bytes);
            let _ = resolve_did_key(&s);
            let _ = resolve_did_jwk(&s);
            let _ = did_web_url(&s);
            let _ = check_did_web_document(&s, &bytes);
        }
    }
}
