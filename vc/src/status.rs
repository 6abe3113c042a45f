//! [Bitstring Status List v1.0](https://www.w3.org/TR/vc-bitstring-status-list/): the status
//! entries a credential points to, and the reading of a status list credential once it has been
//! fetched and its proof verified. No IO: the caller fetches `statusListCredential` URLs
//! (spec: `specs/credentials.md` §9).
//!
//! The encoded list is multibase base64url of a GZIP-compressed bitstring; index 0 is the most
//! significant bit of the first byte. Decoding and bit access are ssi's (`ssi-status`).
//!
//! Its predecessor, [StatusList2021](https://www.w3.org/TR/2023/WD-vc-status-list-20230427/)
//! (`StatusList2021Entry`, `StatusList2021Credential`, which Nuts nodes issue), is read too: the
//! same bitstring, with `encodedList` in base64 (either alphabet) without the multibase prefix.

use serde_json::Value;
use ssi::status::bitstring_status_list::{BitString, EncodedList, StatusSize};

/// The entry type handled.
pub const ENTRY_TYPE: &str = "BitstringStatusListEntry";
/// The status list credential's type.
pub const LIST_CREDENTIAL_TYPE: &str = "BitstringStatusListCredential";
/// The entry type of StatusList2021.
pub const ENTRY_TYPE_2021: &str = "StatusList2021Entry";
/// The list credential type of StatusList2021.
pub const LIST_CREDENTIAL_TYPE_2021: &str = "StatusList2021Credential";
/// Most status entries read from one credential.
pub const MAX_ENTRIES: usize = 8;
/// Largest decompressed list (bytes): 16 MiB, 128 Mi entries of one bit.
pub const MAX_LIST_BYTES: u64 = 16 * 1024 * 1024;

/// Why a credential's status could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusError {
    #[error("credentialStatus: {0}")]
    Entry(String),
    #[error("credentialStatus type {0} is not supported ({ENTRY_TYPE} or {ENTRY_TYPE_2021})")]
    Unsupported(String),
    #[error("status list credential: {0}")]
    List(String),
}

/// One `BitstringStatusListEntry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    /// `revocation`, `suspension`, `refresh` or `message`.
    pub purpose: String,
    pub index: usize,
    /// URL of the status list credential.
    pub list: String,
    /// Bits per entry (`statusSize`, default 1).
    pub size: u8,
}

impl StatusEntry {
    /// Whether a set status means the credential must not be used.
    pub fn blocks(&self) -> bool {
        self.purpose == "revocation" || self.purpose == "suspension"
    }
}

fn index_of(v: Option<&Value>) -> Result<usize, StatusError> {
    // The spec says a string of base-10 digits; older issuers wrote a number.
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map_err(|_| StatusError::Entry("statusListIndex out of range".into())),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| StatusError::Entry("statusListIndex out of range".into())),
        _ => Err(StatusError::Entry(
            "statusListIndex must be a base-10 integer string".into(),
        )),
    }
}

/// The status entries of `credential` (none if it has no `credentialStatus`). An entry of a
/// type other than [`ENTRY_TYPE`] is an error: a status that cannot be checked is not ignored.
pub fn entries(credential: &Value) -> Result<Vec<StatusEntry>, StatusError> {
    let list: Vec<&Value> = match credential.get("credentialStatus") {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    if list.len() > MAX_ENTRIES {
        return Err(StatusError::Entry(format!(
            "more than {MAX_ENTRIES} entries"
        )));
    }
    list.into_iter()
        .map(|e| {
            let t = e.get("type").and_then(Value::as_str).unwrap_or_default();
            if t != ENTRY_TYPE && t != ENTRY_TYPE_2021 {
                return Err(StatusError::Unsupported(t.to_owned()));
            }
            let text = |f: &str| {
                e.get(f)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| StatusError::Entry(format!("{f} is required")))
            };
            let size = match e.get("statusSize") {
                None => 1,
                Some(v) => v
                    .as_u64()
                    .filter(|s| (1..=8).contains(s))
                    .map(|s| s as u8)
                    .ok_or_else(|| StatusError::Entry("statusSize must be 1..8".into()))?,
            };
            Ok(StatusEntry {
                purpose: text("statusPurpose")?,
                index: index_of(e.get("statusListIndex"))?,
                list: text("statusListCredential")?,
                size,
            })
        })
        .collect()
}

/// A decoded status list.
#[derive(Clone, Debug)]
pub struct StatusList {
    purposes: Vec<String>,
    bits: BitString,
    len_bytes: usize,
}

impl StatusList {
    /// Reads the list from a status list credential whose proof the caller has verified.
    pub fn from_credential(list_vc: &Value) -> Result<Self, StatusError> {
        let err = |m: &str| StatusError::List(m.to_owned());
        let has_type = |name: &str| match list_vc.get("type") {
            Some(Value::Array(a)) => a.iter().any(|t| t == name),
            Some(Value::String(t)) => t == name,
            _ => false,
        };
        let v2021 = if has_type(LIST_CREDENTIAL_TYPE) {
            false
        } else if has_type(LIST_CREDENTIAL_TYPE_2021) {
            true
        } else {
            return Err(err(
                "type must include BitstringStatusListCredential or StatusList2021Credential",
            ));
        };
        let subject = list_vc
            .get("credentialSubject")
            .filter(|s| s.is_object())
            .ok_or_else(|| err("credentialSubject must be one object"))?;
        let subject_type = if v2021 {
            "StatusList2021"
        } else {
            "BitstringStatusList"
        };
        if subject.get("type").and_then(Value::as_str) != Some(subject_type) {
            return Err(StatusError::List(format!(
                "credentialSubject.type must be {subject_type}"
            )));
        }
        let purposes = match subject.get("statusPurpose") {
            Some(Value::String(p)) => vec![p.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        if purposes.is_empty() {
            return Err(err("credentialSubject.statusPurpose is required"));
        }
        let encoded = subject
            .get("encodedList")
            .and_then(Value::as_str)
            .ok_or_else(|| err("credentialSubject.encodedList is required"))?;
        let encoded = if v2021 {
            multibase_of_2021(encoded)?
        } else if encoded.starts_with('u') {
            encoded.to_owned()
        } else {
            return Err(err("encodedList must be multibase base64url (prefix u)"));
        };
        let bytes = EncodedList::new(encoded)
            .decode(Some(MAX_LIST_BYTES))
            .map_err(|e| StatusError::List(format!("encodedList: {e}")))?;
        Ok(StatusList {
            purposes,
            len_bytes: bytes.len(),
            bits: BitString::from_bytes(bytes),
        })
    }

    /// The status value of `entry` in this list.
    pub fn status(&self, entry: &StatusEntry) -> Result<u8, StatusError> {
        if !self.purposes.contains(&entry.purpose) {
            return Err(StatusError::List(format!(
                "the list is not for statusPurpose {}",
                entry.purpose
            )));
        }
        let past =
            || StatusError::List(format!("statusListIndex {} is past the list", entry.index));
        // Checked here: the index comes from the credential and ssi's offset would overflow.
        let last_bit = entry
            .index
            .checked_mul(usize::from(entry.size))
            .and_then(|b| b.checked_add(usize::from(entry.size)))
            .ok_or_else(past)?;
        if last_bit > self.len_bytes.saturating_mul(8) {
            return Err(past());
        }
        let size = StatusSize::try_from(entry.size)
            .map_err(|_| StatusError::Entry("statusSize must be 1..8".into()))?;
        self.bits.get(size, entry.index).ok_or_else(past)
    }
}

/// A StatusList2021 `encodedList` (base64 of the GZIP data, standard or URL-safe alphabet,
/// padded or not) as the multibase base64url string ssi decodes.
fn multibase_of_2021(encoded: &str) -> Result<String, StatusError> {
    use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD, BASE64_URL_SAFE_NO_PAD};
    let trimmed = encoded.trim_end_matches('=');
    let gzip = BASE64_URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| BASE64_STANDARD_NO_PAD.decode(trimmed))
        .map_err(|_| StatusError::List("encodedList is not base64".into()))?;
    Ok(format!("u{}", BASE64_URL_SAFE_NO_PAD.encode(gzip)))
}

/// Encodes a bitstring (as [`StatusList::from_credential`] reads it) with the given indexes
/// set, padded to the 16 KiB minimum; for issuing lists and for tests.
pub fn encode_list(set: &[usize], len_bits: usize) -> String {
    let mut bytes = vec![0u8; len_bits.div_ceil(8).max(EncodedList::MINIMUM_SIZE)];
    for &i in set {
        if let Some(b) = bytes.get_mut(i / 8) {
            *b |= 0x80 >> (i % 8);
        }
    }
    let encoded = EncodedList::encode(&bytes);
    serde_json::to_value(&encoded)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_vc(encoded: &str) -> Value {
        serde_json::json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "issuer": "did:example:issuer",
            "credentialSubject": {
                "id": "https://example.com/status/3#list",
                "type": "BitstringStatusList",
                "statusPurpose": "revocation",
                "encodedList": encoded,
            },
        })
    }

    fn entry(index: usize) -> StatusEntry {
        StatusEntry {
            purpose: "revocation".into(),
            index,
            list: "https://example.com/status/3".into(),
            size: 1,
        }
    }

    #[test]
    fn the_spec_example_list_is_all_clear() {
        // The empty 16 KiB list from the spec's examples.
        let l = StatusList::from_credential(&list_vc(
            "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA",
        ))
        .unwrap();
        for i in [0, 7, 94567, 131_071] {
            assert_eq!(l.status(&entry(i)).unwrap(), 0);
        }
        assert!(l.status(&entry(131_072)).is_err());
        assert!(l.status(&entry(usize::MAX)).is_err());
    }

    #[test]
    fn set_bits_read_back_most_significant_first() {
        let l =
            StatusList::from_credential(&list_vc(&encode_list(&[0, 9, 131_071], 131_072))).unwrap();
        let set: Vec<usize> = (0..131_072)
            .filter(|&i| l.status(&entry(i)).unwrap() == 1)
            .collect();
        assert_eq!(set, vec![0, 9, 131_071]);
        let mut suspension = entry(0);
        suspension.purpose = "suspension".into();
        assert!(l.status(&suspension).is_err());
    }

    /// StatusList2021 (what Nuts issues): the entry and the list read the same bits; the list's
    /// `encodedList` is plain base64 of the GZIP data, in either alphabet.
    #[test]
    fn status_list_2021_reads_the_same_bits() {
        use base64::prelude::{Engine, BASE64_STANDARD, BASE64_URL_SAFE_NO_PAD};
        let multibase = encode_list(&[3, 94_567], 131_072);
        let gzip = BASE64_URL_SAFE_NO_PAD.decode(&multibase[1..]).unwrap();
        for encoded in [
            BASE64_STANDARD.encode(&gzip),
            BASE64_URL_SAFE_NO_PAD.encode(&gzip),
        ] {
            let list = serde_json::json!({
                "@context": ["https://www.w3.org/2018/credentials/v1", "https://w3id.org/vc/status-list/2021/v1"],
                "type": ["VerifiableCredential", "StatusList2021Credential"],
                "issuer": "did:web:nuts.example",
                "credentialSubject": {
                    "id": "https://nuts.example/status/1#list",
                    "type": "StatusList2021",
                    "statusPurpose": "revocation",
                    "encodedList": encoded,
                },
            });
            let l = StatusList::from_credential(&list).unwrap();
            let vc = serde_json::json!({"credentialStatus": {
                "id": "https://nuts.example/status/1#94567", "type": "StatusList2021Entry",
                "statusPurpose": "revocation", "statusListIndex": "94567",
                "statusListCredential": "https://nuts.example/status/1",
            }});
            let e = entries(&vc).unwrap();
            assert_eq!(l.status(&e[0]).unwrap(), 1);
            assert_eq!(l.status(&entry(4)).unwrap(), 0);
            // The 2021 list type with the new subject type is refused, and the other way round.
            let mut mixed = list.clone();
            mixed["credentialSubject"]["type"] = "BitstringStatusList".into();
            assert!(StatusList::from_credential(&mixed).is_err());
        }
    }

    #[test]
    fn entries_are_strict() {
        let vc = serde_json::json!({"credentialStatus": {
            "id": "https://example.com/status/3#94567", "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation", "statusListIndex": "94567",
            "statusListCredential": "https://example.com/status/3",
        }});
        assert_eq!(
            entries(&vc).unwrap(),
            vec![StatusEntry {
                index: 94567,
                ..entry(0)
            }]
        );
        let mut bad = vc.clone();
        bad["credentialStatus"]["statusListIndex"] = "-1".into();
        assert!(entries(&bad).is_err());
        bad["credentialStatus"]["statusListIndex"] = "94567".into();
        bad["credentialStatus"]["type"] = "RevocationList2020Status".into();
        assert_eq!(
            entries(&bad),
            Err(StatusError::Unsupported("RevocationList2020Status".into()))
        );
        assert!(StatusList::from_credential(&list_vc("zNotBase64Url")).is_err());
        assert!(StatusList::from_credential(&list_vc("uAAAA")).is_err());
    }
}
