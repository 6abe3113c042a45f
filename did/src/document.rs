//! The DID document model knoop writes (W3C DID Core, JSON-LD representation) and its checks.
//!
//! Keys are `Multikey` verification methods: Ed25519 or P-256 for signing relationships, X25519
//! for key agreement. Relationships refer to verification methods of the same document by absolute DID
//! URL. Documents from other methods are handled as plain JSON ([`crate::resolution`]); this model
//! is for `did:knoop`, where strictness keeps every node's view byte-identical.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::url::{Did, DidUrl};

/// The DID Core v1 JSON-LD context, always first.
pub const DID_CONTEXT: &str = "https://www.w3.org/ns/did/v1";
/// The Multikey context (W3C Controlled Identifiers).
pub const MULTIKEY_CONTEXT: &str = "https://w3id.org/security/multikey/v1";
/// The only verification method type knoop writes.
pub const MULTIKEY: &str = "Multikey";

/// Multicodec prefix of an Ed25519 public key.
const ED25519_PUB: [u8; 2] = [0xed, 0x01];
/// Multicodec prefix of an X25519 public key.
const X25519_PUB: [u8; 2] = [0xec, 0x01];
/// Multicodec prefix of a P-256 public key (`p256-pub`, 0x1200), followed by the compressed
/// point (33 bytes).
const P256_PUB: [u8; 2] = [0x80, 0x24];

/// Most verification methods in one document.
pub const MAX_VERIFICATION_METHODS: usize = 32;
/// Most services in one document.
pub const MAX_SERVICES: usize = 32;
/// Most controllers of one document.
pub const MAX_CONTROLLERS: usize = 8;
/// Longest service type, in bytes.
pub const MAX_SERVICE_TYPE_BYTES: usize = 128;
/// Largest serialised service endpoint, in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 2048;

/// A DID document as `did:knoop` publishes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DidDocument {
    #[serde(rename = "@context")]
    pub context: Vec<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controller: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_known_as: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_method: Vec<VerificationMethod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authentication: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assertion_method: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_agreement: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_invocation: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_delegation: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service: Vec<Service>,
}

/// A verification method (`Multikey`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationMethod {
    pub id: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub controller: String,
    pub public_key_multibase: String,
}

/// A service: how to reach the subject for some purpose (adressering).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    pub id: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub service_endpoint: serde_json::Value,
}

/// A verification relationship.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Relationship {
    Authentication,
    AssertionMethod,
    KeyAgreement,
    CapabilityInvocation,
    CapabilityDelegation,
}

impl Relationship {
    pub const ALL: [Relationship; 5] = [
        Relationship::Authentication,
        Relationship::AssertionMethod,
        Relationship::KeyAgreement,
        Relationship::CapabilityInvocation,
        Relationship::CapabilityDelegation,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Relationship::Authentication => "authentication",
            Relationship::AssertionMethod => "assertionMethod",
            Relationship::KeyAgreement => "keyAgreement",
            Relationship::CapabilityInvocation => "capabilityInvocation",
            Relationship::CapabilityDelegation => "capabilityDelegation",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// What is wrong with a document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid DID document: {0}")]
pub struct InvalidDocument(pub String);

fn bad(msg: impl Into<String>) -> InvalidDocument {
    InvalidDocument(msg.into())
}

/// A decoded Multikey public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicKey {
    Ed25519(VerifyingKey),
    X25519([u8; 32]),
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Whether the key signs (Ed25519, P-256) rather than agrees keys (X25519).
    pub fn is_signing(&self) -> bool {
        !matches!(self, PublicKey::X25519(_))
    }
}

/// `z` + base58btc(multicodec p256-pub ‖ compressed point).
pub fn p256_multibase(key: &p256::ecdsa::VerifyingKey) -> String {
    let mut b = P256_PUB.to_vec();
    b.extend_from_slice(key.to_encoded_point(true).as_bytes());
    format!("z{}", bs58::encode(b).into_string())
}

/// `z` + base58btc(multicodec ed25519-pub ‖ key).
pub fn ed25519_multibase(key: &VerifyingKey) -> String {
    let mut b = ED25519_PUB.to_vec();
    b.extend_from_slice(key.as_bytes());
    format!("z{}", bs58::encode(b).into_string())
}

/// `z` + base58btc(multicodec x25519-pub ‖ key).
pub fn x25519_multibase(key: &[u8; 32]) -> String {
    let mut b = X25519_PUB.to_vec();
    b.extend_from_slice(key);
    format!("z{}", bs58::encode(b).into_string())
}

/// Decodes a `publicKeyMultibase` value (Ed25519, X25519 or P-256; Ed25519 points must be valid
/// and not of small order, P-256 points compressed and on the curve).
pub fn decode_multibase_key(s: &str) -> Result<PublicKey, InvalidDocument> {
    let body = s
        .strip_prefix('z')
        .ok_or_else(|| bad("publicKeyMultibase must be base58btc (z...)"))?;
    if body.len() > 64 {
        return Err(bad("publicKeyMultibase too long"));
    }
    let raw = bs58::decode(body)
        .into_vec()
        .map_err(|_| bad("publicKeyMultibase is not base58btc"))?;
    if raw.len() == 35 && raw[..2] == P256_PUB {
        return p256::ecdsa::VerifyingKey::from_sec1_bytes(&raw[2..])
            .map(PublicKey::P256)
            .map_err(|_| bad("not a P-256 point"));
    }
    if raw.len() != 34 {
        return Err(bad("publicKeyMultibase must hold a 32-byte key"));
    }
    let key: [u8; 32] = raw[2..]
        .try_into()
        .map_err(|_| bad("publicKeyMultibase must hold a 32-byte key"))?;
    match [raw[0], raw[1]] {
        ED25519_PUB => {
            let k = VerifyingKey::from_bytes(&key)
                .map_err(|_| bad("not a valid Ed25519 public key"))?;
            if k.is_weak() {
                return Err(bad("Ed25519 public key of small order"));
            }
            Ok(PublicKey::Ed25519(k))
        }
        X25519_PUB => Ok(PublicKey::X25519(key)),
        _ => Err(bad(
            "only Ed25519, X25519 and P-256 Multikeys are supported",
        )),
    }
}

impl DidDocument {
    /// An empty document for `did` with the standard contexts.
    pub fn new(did: &str) -> Self {
        DidDocument {
            context: vec![DID_CONTEXT.into(), MULTIKEY_CONTEXT.into()],
            id: did.into(),
            controller: Vec::new(),
            also_known_as: Vec::new(),
            verification_method: Vec::new(),
            authentication: Vec::new(),
            assertion_method: Vec::new(),
            key_agreement: Vec::new(),
            capability_invocation: Vec::new(),
            capability_delegation: Vec::new(),
            service: Vec::new(),
        }
    }

    pub fn relationship(&self, r: Relationship) -> &Vec<String> {
        match r {
            Relationship::Authentication => &self.authentication,
            Relationship::AssertionMethod => &self.assertion_method,
            Relationship::KeyAgreement => &self.key_agreement,
            Relationship::CapabilityInvocation => &self.capability_invocation,
            Relationship::CapabilityDelegation => &self.capability_delegation,
        }
    }

    pub fn relationship_mut(&mut self, r: Relationship) -> &mut Vec<String> {
        match r {
            Relationship::Authentication => &mut self.authentication,
            Relationship::AssertionMethod => &mut self.assertion_method,
            Relationship::KeyAgreement => &mut self.key_agreement,
            Relationship::CapabilityInvocation => &mut self.capability_invocation,
            Relationship::CapabilityDelegation => &mut self.capability_delegation,
        }
    }

    /// The verification method with absolute id `id`.
    pub fn method(&self, id: &str) -> Option<&VerificationMethod> {
        self.verification_method.iter().find(|m| m.id == id)
    }

    /// The Ed25519 key of method `id` if `id` is listed under relationship `r`.
    pub fn key_for(&self, id: &str, r: Relationship) -> Option<VerifyingKey> {
        if !self.relationship(r).iter().any(|x| x == id) {
            return None;
        }
        match decode_multibase_key(&self.method(id)?.public_key_multibase).ok()? {
            PublicKey::Ed25519(k) => Some(k),
            PublicKey::X25519(_) | PublicKey::P256(_) => None,
        }
    }

    /// The signing key (Ed25519 or P-256) of method `id` if `id` is listed under relationship
    /// `r`.
    pub fn signing_key_for(&self, id: &str, r: Relationship) -> Option<PublicKey> {
        if !self.relationship(r).iter().any(|x| x == id) {
            return None;
        }
        decode_multibase_key(&self.method(id)?.public_key_multibase)
            .ok()
            .filter(PublicKey::is_signing)
    }

    /// Adds a P-256 method `<did>#<fragment>` under the given relationships.
    pub fn add_p256(
        &mut self,
        fragment: &str,
        key: &p256::ecdsa::VerifyingKey,
        rels: &[Relationship],
    ) {
        let id = format!("{}#{fragment}", self.id);
        self.verification_method.push(VerificationMethod {
            id: id.clone(),
            type_: MULTIKEY.into(),
            controller: self.id.clone(),
            public_key_multibase: p256_multibase(key),
        });
        for r in rels {
            self.relationship_mut(*r).push(id.clone());
        }
    }

    /// Whether `key` is the key of some method listed under relationship `r`.
    pub fn has_key(&self, key: &VerifyingKey, r: Relationship) -> bool {
        self.relationship(r)
            .iter()
            .any(|id| self.key_for(id, r).as_ref() == Some(key))
    }

    /// Adds an Ed25519 method `<did>#<fragment>` under the given relationships.
    pub fn add_ed25519(&mut self, fragment: &str, key: &VerifyingKey, rels: &[Relationship]) {
        let id = format!("{}#{fragment}", self.id);
        self.verification_method.push(VerificationMethod {
            id: id.clone(),
            type_: MULTIKEY.into(),
            controller: self.id.clone(),
            public_key_multibase: ed25519_multibase(key),
        });
        for r in rels {
            self.relationship_mut(*r).push(id.clone());
        }
    }

    /// Adds an X25519 method `<did>#<fragment>` under `keyAgreement`.
    pub fn add_x25519(&mut self, fragment: &str, key: &[u8; 32]) {
        let id = format!("{}#{fragment}", self.id);
        self.verification_method.push(VerificationMethod {
            id: id.clone(),
            type_: MULTIKEY.into(),
            controller: self.id.clone(),
            public_key_multibase: x25519_multibase(key),
        });
        self.key_agreement.push(id);
    }

    /// The X25519 keys listed under `keyAgreement`, in document order: `(method id, key)`.
    pub fn key_agreement_keys(&self) -> Vec<(String, [u8; 32])> {
        self.key_agreement
            .iter()
            .filter_map(|id| {
                match decode_multibase_key(&self.method(id)?.public_key_multibase).ok()? {
                    PublicKey::X25519(k) => Some((id.clone(), k)),
                    PublicKey::Ed25519(_) | PublicKey::P256(_) => None,
                }
            })
            .collect()
    }

    /// Removes method `id` and every reference to it. Returns whether it existed.
    pub fn remove_method(&mut self, id: &str) -> bool {
        let before = self.verification_method.len();
        self.verification_method.retain(|m| m.id != id);
        for r in Relationship::ALL {
            self.relationship_mut(r).retain(|x| x != id);
        }
        before != self.verification_method.len()
    }

    /// Full structural check against the DID it must describe.
    pub fn validate(&self, did: &str) -> Result<(), InvalidDocument> {
        if self.id != did {
            return Err(bad(format!("id {} is not {did}", self.id)));
        }
        if self.context.first().map(String::as_str) != Some(DID_CONTEXT) {
            return Err(bad("@context must start with the DID v1 context"));
        }
        if self.context.len() > 8 {
            return Err(bad("too many @context entries"));
        }
        if self.controller.len() > MAX_CONTROLLERS {
            return Err(bad("too many controllers"));
        }
        for c in &self.controller {
            Did::parse(c).map_err(|e| bad(format!("controller {c}: {e}")))?;
        }
        if self.also_known_as.len() > 8 {
            return Err(bad("too many alsoKnownAs entries"));
        }
        if self.verification_method.len() > MAX_VERIFICATION_METHODS {
            return Err(bad("too many verification methods"));
        }
        let mut ids = std::collections::HashSet::new();
        for m in &self.verification_method {
            self.check_local_id(&m.id)?;
            if !ids.insert(m.id.as_str()) {
                return Err(bad(format!("duplicate id {}", m.id)));
            }
            if m.type_ != MULTIKEY {
                return Err(bad(format!("{}: type must be Multikey", m.id)));
            }
            if m.controller != self.id && !self.controller.contains(&m.controller) {
                return Err(bad(format!("{}: controller must be the subject", m.id)));
            }
            decode_multibase_key(&m.public_key_multibase)
                .map_err(|e| bad(format!("{}: {}", m.id, e.0)))?;
        }
        for r in Relationship::ALL {
            let refs = self.relationship(r);
            let mut seen = std::collections::HashSet::new();
            for id in refs {
                if !seen.insert(id) {
                    return Err(bad(format!("{}: {id} listed twice", r.name())));
                }
                let m = self
                    .method(id)
                    .ok_or_else(|| bad(format!("{}: {id} is not a method here", r.name())))?;
                let key = decode_multibase_key(&m.public_key_multibase)
                    .map_err(|e| bad(format!("{id}: {}", e.0)))?;
                match (r, key) {
                    (Relationship::KeyAgreement, PublicKey::X25519(_)) => {}
                    (Relationship::KeyAgreement, _) => {
                        return Err(bad(format!("keyAgreement {id} must be an X25519 key")))
                    }
                    (_, PublicKey::X25519(_)) => {
                        return Err(bad(format!(
                            "{} {id} must be an Ed25519 or P-256 key",
                            r.name()
                        )))
                    }
                    _ => {}
                }
            }
        }
        if self.service.len() > MAX_SERVICES {
            return Err(bad("too many services"));
        }
        for s in &self.service {
            self.check_local_id(&s.id)?;
            if !ids.insert(s.id.as_str()) {
                return Err(bad(format!("duplicate id {}", s.id)));
            }
            if s.type_.is_empty()
                || s.type_.len() > MAX_SERVICE_TYPE_BYTES
                || !s.type_.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(bad(format!("{}: bad service type", s.id)));
            }
            let ok_shape = matches!(
                &s.service_endpoint,
                serde_json::Value::String(x) if !x.is_empty()
            ) || s.service_endpoint.is_object()
                || s.service_endpoint.is_array();
            if !ok_shape {
                return Err(bad(format!(
                    "{}: serviceEndpoint must be a URI, a map or a set",
                    s.id
                )));
            }
            if serde_json::to_vec(&s.service_endpoint)
                .map(|v| v.len())
                .unwrap_or(usize::MAX)
                > MAX_ENDPOINT_BYTES
            {
                return Err(bad(format!("{}: serviceEndpoint too large", s.id)));
            }
        }
        Ok(())
    }

    /// `id` must be `<this did>#<fragment>` with a non-empty fragment.
    fn check_local_id(&self, id: &str) -> Result<(), InvalidDocument> {
        let u = DidUrl::parse(id).map_err(|e| bad(format!("{id}: {e}")))?;
        if u.did.as_str() != self.id
            || u.path.is_some()
            || !u.query.is_empty()
            || u.fragment.as_deref().is_none_or(str::is_empty)
        {
            return Err(bad(format!("{id} must be {}#<fragment>", self.id)));
        }
        Ok(())
    }

    /// The service whose type is `type_` (the first, in document order).
    pub fn service_of_type(&self, type_: &str) -> Option<&Service> {
        self.service.iter().find(|s| s.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn doc() -> DidDocument {
        let k = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let mut d = DidDocument::new("did:knoop:abc");
        d.add_ed25519(
            "key-1",
            &k,
            &[
                Relationship::Authentication,
                Relationship::AssertionMethod,
                Relationship::CapabilityInvocation,
            ],
        );
        d
    }

    #[test]
    fn a_built_document_validates_and_round_trips() {
        let d = doc();
        d.validate("did:knoop:abc").unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"verificationMethod\""));
        assert!(json.contains("\"publicKeyMultibase\":\"z6Mk"));
        let back: DidDocument = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        let k = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert!(back.has_key(&k, Relationship::CapabilityInvocation));
        assert!(!back.has_key(&k, Relationship::KeyAgreement));
    }

    #[test]
    fn structural_errors_are_named() {
        assert!(doc().validate("did:knoop:other").is_err());
        let mut d = doc();
        d.assertion_method.push("did:knoop:abc#nope".into());
        assert!(d.validate("did:knoop:abc").unwrap_err().0.contains("#nope"));
        let mut d = doc();
        d.verification_method[0].public_key_multibase = "z111".into();
        assert!(d.validate("did:knoop:abc").is_err());
        let mut d = doc();
        d.key_agreement.push("did:knoop:abc#key-1".into());
        assert!(d
            .validate("did:knoop:abc")
            .unwrap_err()
            .0
            .contains("X25519"));
        let mut d = doc();
        d.service.push(Service {
            id: "did:knoop:other#s".into(),
            type_: "FHIR".into(),
            service_endpoint: "https://x".into(),
        });
        assert!(d.validate("did:knoop:abc").is_err());
        let mut d = doc();
        d.service.push(Service {
            id: "did:knoop:abc#s".into(),
            type_: "FHIR".into(),
            service_endpoint: serde_json::Value::Null,
        });
        assert!(d.validate("did:knoop:abc").is_err());
        assert!(
            serde_json::from_str::<DidDocument>(r#"{"@context":[],"id":"x","evil":1}"#).is_err()
        );
    }

    #[test]
    fn multikeys_decode_and_refuse_garbage() {
        let k = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert_eq!(
            decode_multibase_key(&ed25519_multibase(&k)).unwrap(),
            PublicKey::Ed25519(k)
        );
        assert_eq!(
            decode_multibase_key(&x25519_multibase(&[9; 32])).unwrap(),
            PublicKey::X25519([9; 32])
        );
        for bad in ["", "z", "m6Mk", "z0OIl", &"z".repeat(100)] {
            assert!(decode_multibase_key(bad).is_err(), "{bad}");
        }
        let p = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
        let mb = p256_multibase(p.verifying_key());
        assert!(mb.starts_with("zDn"), "{mb}");
        assert_eq!(
            decode_multibase_key(&mb).unwrap(),
            PublicKey::P256(*p.verifying_key())
        );
        // A P-256 prefix with an x coordinate outside the field.
        let mut off = P256_PUB.to_vec();
        off.push(2);
        off.extend_from_slice(&[0xff; 32]);
        let off = format!("z{}", bs58::encode(off).into_string());
        assert!(decode_multibase_key(&off).is_err());
        // The did:key spec's example keys decode (Ed25519 and P-256).
        assert!(matches!(
            decode_multibase_key("zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169"),
            Ok(PublicKey::P256(_))
        ));
        assert!(matches!(
            decode_multibase_key("z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"),
            Ok(PublicKey::Ed25519(_))
        ));
    }
}
