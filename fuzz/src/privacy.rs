//! Private transactions and the localisation index (`specs/private-transactions.md`,
//! `specs/consent-localisation.md`): what a node reads from the log and from a blob.

use knoop_privacy::inner::Inner;
use knoop_privacy::{open_symmetric, trial_open, Descriptor};

/// A private transaction's descriptor (its content in the log), then the trial decryption a
/// recipient makes of it. What parses encodes to what it was read from.
pub fn private_descriptor(data: &[u8]) {
    if let Ok(d) = Descriptor::from_cbor(data) {
        let again = Descriptor::from_cbor(&d.to_cbor()).map(|d| d.to_cbor());
        assert_eq!(again.ok(), Some(d.to_cbor()));
        let secret = x25519_dalek::StaticSecret::from([7u8; 32]);
        let _ = trial_open(&d, &secret);
        let _ = open_symmetric(&d, &[9u8; 32]);
    }
}

/// The inner message of an opened blob, and its signature check.
pub fn private_inner(data: &[u8]) {
    if let Ok(inner) = Inner::parse(data) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let _ = inner.verify(&key.verifying_key());
    }
}

/// A localisation transaction's content: a batch of index entries.
pub fn localisation_entries(data: &[u8]) {
    if let Ok(entries) = knoop_privacy::locator::decode_content(data) {
        let bytes = knoop_privacy::locator::encode_content(&entries);
        assert_eq!(
            knoop_privacy::locator::decode_content(&bytes).ok(),
            Some(entries)
        );
    }
}

/// A patient reference (a pseudonym) as a request names it.
pub fn patient_reference(data: &[u8]) {
    if let Some(s) = super::text(data) {
        let _ = knoop_privacy::patient::parse_reference(s);
    }
}
