//! Patient identifiers and the keys derived from them (spec: `specs/consent-localisation.md`
//! §2). The identifier (a BSN) is the capability: everything about a patient on the network is
//! found through keys derived from it with a slow, peppered Argon2id, and the identifier itself
//! never leaves this module: not on the wire, not in a store, not in a log.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The BSN naming system.
pub const BSN_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
/// Prefix of a patient reference.
pub const PATIENT_REF_PREFIX: &str = "urn:knoop:patient:";

/// Why an identifier or derivation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatientError {
    #[error("invalid_identifier: {0}")]
    InvalidIdentifier(&'static str),
    #[error("bad derivation parameters: {0}")]
    Params(String),
}

/// A validated patient identifier (`system|value`). Its `Debug` never shows the value.
pub struct PatientId(Zeroizing<String>);

impl std::fmt::Debug for PatientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientId(<redacted>)")
    }
}

impl PatientId {
    /// A BSN: 9 digits (8 are left-padded with `0`) passing the 11-test.
    pub fn bsn(value: &str) -> Result<Self, PatientError> {
        let v = value.trim();
        if !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PatientError::InvalidIdentifier("a BSN has only digits"));
        }
        let v = match v.len() {
            9 => v.to_owned(),
            8 => format!("0{v}"),
            _ => return Err(PatientError::InvalidIdentifier("a BSN has 9 digits")),
        };
        let d: Vec<i64> = v.bytes().map(|b| i64::from(b - b'0')).collect();
        let sum: i64 = (0..8).map(|i| (9 - i as i64) * d[i]).sum::<i64>() - d[8];
        if sum % 11 != 0 {
            return Err(PatientError::InvalidIdentifier("the BSN fails the 11-test"));
        }
        Ok(PatientId(Zeroizing::new(format!("{BSN_SYSTEM}|{v}"))))
    }

    /// An identifier of `system` (only the BSN system in version 1).
    pub fn new(system: &str, value: &str) -> Result<Self, PatientError> {
        if system == BSN_SYSTEM {
            Self::bsn(value)
        } else {
            Err(PatientError::InvalidIdentifier("unknown identifier system"))
        }
    }
}

/// The network-wide derivation parameters (from governance, with the bootstrap list).
#[derive(Clone)]
pub struct NetworkParams {
    pub network_id: String,
    pub epoch: u32,
    pub pepper: Zeroizing<[u8; 32]>,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl std::fmt::Debug for NetworkParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkParams")
            .field("network_id", &self.network_id)
            .field("epoch", &self.epoch)
            .field("m_kib", &self.m_kib)
            .field("t", &self.t)
            .field("p", &self.p)
            .finish_non_exhaustive()
    }
}

impl NetworkParams {
    /// `SHA-256("knoop/loc/1 salt" || 0 || network id || 0 || u32be(epoch))`.
    pub fn salt(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"knoop/loc/1 salt\x00");
        h.update(self.network_id.as_bytes());
        h.update([0]);
        h.update(self.epoch.to_be_bytes());
        h.finalize().into()
    }
}

/// The keys of one patient.
#[derive(Clone)]
pub struct PatientKeys {
    /// Finds index entries (slot tags).
    pub k_tag: Zeroizing<[u8; 32]>,
    /// Opens index entries.
    pub k_ent: Zeroizing<[u8; 32]>,
    /// The private-transaction symmetric slot key for consent.
    pub k_pat: Zeroizing<[u8; 32]>,
    /// The pseudonym: the only value sent to others.
    pub p: [u8; 32],
}

impl std::fmt::Debug for PatientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PatientKeys({})", self.reference())
    }
}

fn expand(hk: &Hkdf<Sha256>, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if hk.expand(info, &mut out).is_err() {
        unreachable!("32 bytes is within HKDF-SHA256's limit");
    }
    out
}

impl PatientKeys {
    /// Derives the keys of `id` (about a quarter second with the default parameters).
    pub fn derive(id: &PatientId, net: &NetworkParams) -> Result<Self, PatientError> {
        let mut l = Zeroizing::new([0u8; 32]);
        let params = Params::new(net.m_kib, net.t, net.p, Some(32))
            .map_err(|e| PatientError::Params(e.to_string()))?;
        Argon2::new_with_secret(
            net.pepper.as_ref(),
            Algorithm::Argon2id,
            Version::V0x13,
            params,
        )
        .map_err(|e| PatientError::Params(e.to_string()))?
        .hash_password_into(id.0.as_bytes(), &net.salt(), l.as_mut())
        .map_err(|e| PatientError::Params(e.to_string()))?;
        Ok(Self::from_l(&l))
    }

    /// The keys from the Argon2id output `L`.
    pub fn from_l(l: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"knoop/patient/1"), l);
        PatientKeys {
            k_tag: Zeroizing::new(expand(&hk, b"knoop/loc/1 tag")),
            k_ent: Zeroizing::new(expand(&hk, b"knoop/loc/1 entry")),
            k_pat: Zeroizing::new(expand(&hk, b"knoop/consent/1 slot")),
            p: expand(&hk, b"knoop/patient/1 pseudonym"),
        }
    }

    /// `urn:knoop:patient:<base64url(P)>`: how consent credentials and locate requests name the
    /// patient.
    pub fn reference(&self) -> String {
        reference_of(&self.p)
    }

    /// The keys as 96 bytes (`K_tag || K_ent || K_pat`) for sealed storage.
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Vec::with_capacity(96);
        v.extend_from_slice(self.k_tag.as_ref());
        v.extend_from_slice(self.k_ent.as_ref());
        v.extend_from_slice(self.k_pat.as_ref());
        Zeroizing::new(v)
    }

    /// Back from [`PatientKeys::secret_bytes`] and the pseudonym.
    pub fn from_secret_bytes(bytes: &[u8], p: [u8; 32]) -> Option<Self> {
        if bytes.len() != 96 {
            return None;
        }
        let part = |i: usize| {
            let mut k = [0u8; 32];
            k.copy_from_slice(&bytes[i * 32..i * 32 + 32]);
            let z = Zeroizing::new(k);
            k.zeroize();
            z
        };
        Some(PatientKeys {
            k_tag: part(0),
            k_ent: part(1),
            k_pat: part(2),
            p,
        })
    }
}

/// The patient reference of pseudonym `p`: `urn:knoop:patient:<base64url(P)>`.
pub fn reference_of(p: &[u8; 32]) -> String {
    format!("{PATIENT_REF_PREFIX}{}", BASE64_URL_SAFE_NO_PAD.encode(p))
}

/// The pseudonym in a patient reference.
pub fn parse_reference(r: &str) -> Option<[u8; 32]> {
    let b = BASE64_URL_SAFE_NO_PAD
        .decode(r.strip_prefix(PATIENT_REF_PREFIX)?)
        .ok()?;
    b.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fast_params() -> NetworkParams {
        NetworkParams {
            network_id: "knoop-test".into(),
            epoch: 1,
            pepper: Zeroizing::new([0x51; 32]),
            m_kib: 256,
            t: 1,
            p: 1,
        }
    }

    #[test]
    fn bsn_checks() {
        assert!(PatientId::bsn("123456782").is_ok());
        assert!(PatientId::bsn("12345678").is_err()); // 012345678 fails the 11-test
        assert!(PatientId::bsn("111222333").is_ok());
        for bad in ["1234567", "1234567890", "123456783", "12345678a", ""] {
            assert!(PatientId::bsn(bad).is_err(), "{bad}");
        }
        let id = PatientId::bsn("123456782").unwrap();
        assert!(!format!("{id:?}").contains("123456782"));
    }

    #[test]
    fn keys_depend_on_identifier_pepper_and_network() {
        let net = fast_params();
        let a = PatientKeys::derive(&PatientId::bsn("123456782").unwrap(), &net).unwrap();
        let again = PatientKeys::derive(&PatientId::bsn("123456782").unwrap(), &net).unwrap();
        assert_eq!(a.p, again.p);
        assert_eq!(*a.k_tag, *again.k_tag);
        let b = PatientKeys::derive(&PatientId::bsn("111222333").unwrap(), &net).unwrap();
        assert_ne!(a.p, b.p);
        let mut other = fast_params();
        other.pepper = Zeroizing::new([0x52; 32]);
        let c = PatientKeys::derive(&PatientId::bsn("123456782").unwrap(), &other).unwrap();
        assert_ne!(a.p, c.p);
        let mut net2 = fast_params();
        net2.network_id = "other".into();
        let d = PatientKeys::derive(&PatientId::bsn("123456782").unwrap(), &net2).unwrap();
        assert_ne!(a.p, d.p);
        let r = a.reference();
        assert_eq!(r.len(), PATIENT_REF_PREFIX.len() + 43);
        assert_eq!(parse_reference(&r), Some(a.p));
        let back = PatientKeys::from_secret_bytes(&a.secret_bytes(), a.p).unwrap();
        assert_eq!(*back.k_ent, *a.k_ent);
        // Every key differs from every other.
        let all = [*a.k_tag, *a.k_ent, *a.k_pat, a.p];
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(all[i], all[j]);
            }
        }
    }
}
