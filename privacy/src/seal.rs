//! The private-transaction construction (spec: `specs/private-transactions.md` §3): a fresh
//! content key per transaction, an AEAD-sealed and padded blob, one anonymous 64-byte slot per
//! recipient key wrapping the content key, and the public descriptor that carries the slots.
//!
//! Nothing here names a recipient: a slot starts with a 16-byte hint that only the holder of the
//! recipient's X25519 secret (or of a symmetric slot key) can compute, so a node learns that a
//! transaction is for it with one X25519 per local key ([`trial_open`]). The content key commits
//! to itself through `fth`, which doubles as the hash of the fetch token.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

/// Media type of a private transaction's content (the descriptor).
pub const PRIVATE_CONTENT_TYPE: &str = "application/knoop-private+cbor";
/// Slot counts allowed in a descriptor.
pub const SLOT_BUCKETS: [usize; 5] = [4, 8, 16, 32, 64];
/// Most real slots.
pub const MAX_SLOTS: usize = 64;
/// Blob size buckets run from this to [`MAX_BLOB_PLAINTEXT`], doubling.
pub const MIN_BLOB_PLAINTEXT: usize = 1024;
pub const MAX_BLOB_PLAINTEXT: usize = 262_144;
/// Largest inner message.
pub const MAX_INNER: usize = MAX_BLOB_PLAINTEXT - 4;
/// AEAD tag length.
const TAG: usize = 16;
const ZERO_NONCE: [u8; 12] = [0; 12];

/// Why sealing or opening failed (stable codes: [`PrivateError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateError {
    #[error("the inner message is larger than {MAX_INNER} bytes")]
    TooLarge,
    #[error("more than {MAX_SLOTS} recipient keys")]
    TooManyRecipients,
    #[error("no recipients")]
    NoRecipients,
    #[error("a recipient key is of small order (all-zero shared secret)")]
    BadRecipientKey,
    #[error("not enough padding slots supplied")]
    Padding,
    #[error("malformed descriptor: {0}")]
    Descriptor(String),
    #[error("the blob does not hash to the descriptor's blob hash")]
    BlobHash,
    #[error("the blob does not open")]
    BadBlob,
    #[error("the blob's padding or length is wrong")]
    BadPadding,
    #[error("the content key does not match the descriptor's commitment")]
    BadCommitment,
}

impl PrivateError {
    pub fn code(&self) -> &'static str {
        match self {
            PrivateError::TooLarge => "too_large",
            PrivateError::TooManyRecipients => "too_many_recipients",
            PrivateError::NoRecipients => "no_recipients",
            PrivateError::BadRecipientKey => "bad_recipient_key",
            PrivateError::Padding => "padding",
            PrivateError::Descriptor(_) => "malformed",
            PrivateError::BlobHash => "blob_hash",
            PrivateError::BadBlob => "bad_blob",
            PrivateError::BadPadding => "bad_padding",
            PrivateError::BadCommitment => "bad_commitment",
        }
    }
}

/// The keys derived from one content key (§3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct KeySchedule {
    pub k_blob: [u8; 32],
    /// The fetch token: proves to a holder that the requester can read the transaction.
    pub ft: [u8; 32],
    /// `SHA-256(ft)`, in the descriptor: the fetch check and the key commitment.
    pub fth: [u8; 32],
}

impl Drop for KeySchedule {
    fn drop(&mut self) {
        self.k_blob.zeroize();
        self.ft.zeroize();
    }
}

fn expand<const N: usize>(hk: &Hkdf<Sha256>, info: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    // N is at most 48 here, far below HKDF-SHA256's 8160-byte limit.
    if hk.expand(info, &mut out).is_err() {
        unreachable!("HKDF output length within limits");
    }
    out
}

/// `cek` → `K_blob`, `ft`, `fth`.
pub fn key_schedule(cek: &[u8; 32]) -> KeySchedule {
    let hk = Hkdf::<Sha256>::new(Some(b"knoop/private/1"), cek);
    let k_blob = expand::<32>(&hk, b"knoop/private/1 blob");
    let ft = expand::<32>(&hk, b"knoop/private/1 fetch");
    let fth = Sha256::digest(ft).into();
    KeySchedule { k_blob, ft, fth }
}

/// The plaintext size `B` of a blob holding an inner message of `len` bytes.
pub fn blob_bucket(len: usize) -> Option<usize> {
    let need = len.checked_add(4)?;
    let mut b = MIN_BLOB_PLAINTEXT;
    while b < need {
        b *= 2;
    }
    (b <= MAX_BLOB_PLAINTEXT).then_some(b)
}

fn blob_aad(epk: &[u8; 32]) -> Vec<u8> {
    let mut aad = b"knoop/private/1 blob".to_vec();
    aad.extend_from_slice(epk);
    aad
}

/// Frames, pads and seals the inner message (§3.2).
pub fn seal_blob(k_blob: &[u8; 32], epk: &[u8; 32], inner: &[u8]) -> Result<Vec<u8>, PrivateError> {
    let b = blob_bucket(inner.len()).ok_or(PrivateError::TooLarge)?;
    let len = u32::try_from(inner.len()).map_err(|_| PrivateError::TooLarge)?;
    let mut framed = Vec::with_capacity(b);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(inner);
    framed.resize(b, 0);
    let aad = blob_aad(epk);
    let out = ChaCha20Poly1305::new(Key::from_slice(k_blob))
        .encrypt(
            Nonce::from_slice(&ZERO_NONCE),
            Payload {
                msg: &framed,
                aad: &aad,
            },
        )
        .map_err(|_| PrivateError::BadBlob);
    framed.zeroize();
    out
}

/// Opens a blob and checks its framing: the inner message.
pub fn open_blob(k_blob: &[u8; 32], epk: &[u8; 32], blob: &[u8]) -> Result<Vec<u8>, PrivateError> {
    let size_ok = blob.len().checked_sub(TAG).is_some_and(|b| {
        (MIN_BLOB_PLAINTEXT..=MAX_BLOB_PLAINTEXT).contains(&b) && b.is_power_of_two()
    });
    if !size_ok {
        return Err(PrivateError::BadPadding);
    }
    let aad = blob_aad(epk);
    let mut framed = ChaCha20Poly1305::new(Key::from_slice(k_blob))
        .decrypt(
            Nonce::from_slice(&ZERO_NONCE),
            Payload {
                msg: blob,
                aad: &aad,
            },
        )
        .map_err(|_| PrivateError::BadBlob)?;
    let len = u32::from_be_bytes([framed[0], framed[1], framed[2], framed[3]]) as usize;
    let ok = len <= framed.len() - 4 && framed[4 + len..].iter().all(|&b| b == 0);
    let inner = ok.then(|| framed[4..4 + len].to_vec());
    framed.zeroize();
    inner.ok_or(PrivateError::BadPadding)
}

/// Who a slot is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// An X25519 `keyAgreement` public key.
    X25519([u8; 32]),
    /// A 32-byte key its readers share (at most one per transaction).
    Symmetric([u8; 32]),
}

/// `hint || wk` for a key slot, from the shared secret; `None` if the secret is all zero.
fn x25519_okm(ss: &[u8; 32], epk: &[u8; 32], pk: &[u8; 32]) -> Option<[u8; 48]> {
    if bool::from(ss.ct_eq(&[0u8; 32])) {
        return None;
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(epk);
    salt[32..].copy_from_slice(pk);
    let hk = Hkdf::<Sha256>::new(Some(&salt), ss);
    Some(expand::<48>(&hk, b"knoop/private/1 slot x25519"))
}

fn symmetric_okm(key: &[u8; 32], epk: &[u8; 32]) -> [u8; 48] {
    let hk = Hkdf::<Sha256>::new(Some(epk), key);
    expand::<48>(&hk, b"knoop/private/1 slot symmetric")
}

fn slot_aad(blob_hash: &[u8; 32], fth: &[u8; 32]) -> [u8; 64] {
    let mut aad = [0u8; 64];
    aad[..32].copy_from_slice(blob_hash);
    aad[32..].copy_from_slice(fth);
    aad
}

fn make_slot(okm: &[u8; 48], aad: &[u8; 64], cek: &[u8; 32]) -> Result<[u8; 64], PrivateError> {
    let ct = ChaCha20Poly1305::new(Key::from_slice(&okm[16..]))
        .encrypt(Nonce::from_slice(&ZERO_NONCE), Payload { msg: cek, aad })
        .map_err(|_| PrivateError::BadBlob)?;
    let mut slot = [0u8; 64];
    slot[..16].copy_from_slice(&okm[..16]);
    slot[16..].copy_from_slice(&ct);
    Ok(slot)
}

/// The public descriptor (§3.5): the content of a private transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub epk: [u8; 32],
    pub blob_hash: [u8; 32],
    pub fth: [u8; 32],
    /// In strictly ascending order; a count from [`SLOT_BUCKETS`].
    pub slots: Vec<[u8; 64]>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptorWire {
    v: u8,
    e: ByteBuf,
    b: ByteBuf,
    f: ByteBuf,
    s: Vec<ByteBuf>,
}

fn array<const N: usize>(b: &ByteBuf, field: &str) -> Result<[u8; N], PrivateError> {
    b.as_slice()
        .try_into()
        .map_err(|_| PrivateError::Descriptor(format!("{field} must be {N} bytes")))
}

impl Descriptor {
    /// The canonical CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        let wire = DescriptorWire {
            v: 1,
            e: ByteBuf::from(self.epk.to_vec()),
            b: ByteBuf::from(self.blob_hash.to_vec()),
            f: ByteBuf::from(self.fth.to_vec()),
            s: self
                .slots
                .iter()
                .map(|s| ByteBuf::from(s.to_vec()))
                .collect(),
        };
        cbor4ii::serde::to_vec(Vec::new(), &wire).unwrap_or_default()
    }

    /// Parses a descriptor, refusing anything but the canonical encoding of a valid one: the
    /// same bytes must come out again, so every node reaches the same verdict.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, PrivateError> {
        let bad = |m: &str| PrivateError::Descriptor(m.to_owned());
        if bytes.len() > 8192 {
            return Err(bad("too large"));
        }
        let wire: DescriptorWire = cbor4ii::serde::from_slice(bytes)
            .map_err(|e| PrivateError::Descriptor(e.to_string()))?;
        if wire.v != 1 {
            return Err(bad("unknown version"));
        }
        if !SLOT_BUCKETS.contains(&wire.s.len()) {
            return Err(bad("slot count must be 4, 8, 16, 32 or 64"));
        }
        let slots = wire
            .s
            .iter()
            .map(|s| array::<64>(s, "a slot"))
            .collect::<Result<Vec<_>, _>>()?;
        if slots.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("slots must be in strictly ascending order"));
        }
        let d = Descriptor {
            epk: array(&wire.e, "e")?,
            blob_hash: array(&wire.b, "b")?,
            fth: array(&wire.f, "f")?,
            slots,
        };
        if d.to_cbor() != bytes {
            return Err(bad("not the canonical encoding"));
        }
        Ok(d)
    }
}

/// A sealed private payload: the descriptor (public) and the blob (participants only).
pub struct Sealed {
    pub descriptor: Descriptor,
    pub blob: Vec<u8>,
    /// The content key (keep it sealed: it opens the blob).
    pub cek: zeroize::Zeroizing<[u8; 32]>,
}

/// A fresh ephemeral key pair `(esk, epk)` for one private transaction: the inner message
/// signs `epk` before the blob is sealed with `esk`.
pub fn ephemeral() -> (zeroize::Zeroizing<[u8; 32]>, [u8; 32]) {
    use rand::RngCore;
    let mut esk = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(esk.as_mut());
    let epk = PublicKey::from(&StaticSecret::from(*esk)).to_bytes();
    (esk, epk)
}

/// Seals `inner` for `recipients` under the ephemeral secret `esk` (from [`ephemeral`]), with a
/// fresh content key and random padding slots.
pub fn seal(
    inner: &[u8],
    recipients: &[Recipient],
    esk: &[u8; 32],
) -> Result<Sealed, PrivateError> {
    use rand::RngCore;
    let mut rng = rand::rngs::OsRng;
    let mut cek = [0u8; 32];
    rng.fill_bytes(&mut cek);
    let mut padding = vec![[0u8; 64]; MAX_SLOTS];
    for p in &mut padding {
        rng.fill_bytes(p);
    }
    let out = seal_with(inner, recipients, esk, &cek, &padding);
    cek.zeroize();
    out
}

/// The deterministic construction (for test vectors): `esk`, `cek` and the padding slots given.
pub fn seal_with(
    inner: &[u8],
    recipients: &[Recipient],
    esk: &[u8; 32],
    cek: &[u8; 32],
    padding: &[[u8; 64]],
) -> Result<Sealed, PrivateError> {
    if recipients.is_empty() {
        return Err(PrivateError::NoRecipients);
    }
    let mut unique: Vec<Recipient> = Vec::with_capacity(recipients.len());
    for r in recipients {
        if !unique.contains(r) {
            unique.push(*r);
        }
    }
    if unique.len() > MAX_SLOTS {
        return Err(PrivateError::TooManyRecipients);
    }
    if unique
        .iter()
        .filter(|r| matches!(r, Recipient::Symmetric(_)))
        .count()
        > 1
    {
        return Err(PrivateError::TooManyRecipients);
    }
    let secret = StaticSecret::from(*esk);
    let epk = PublicKey::from(&secret).to_bytes();
    let keys = key_schedule(cek);
    let blob = seal_blob(&keys.k_blob, &epk, inner)?;
    let blob_hash: [u8; 32] = Sha256::digest(&blob).into();
    let aad = slot_aad(&blob_hash, &keys.fth);
    let mut slots = Vec::with_capacity(unique.len());
    for r in &unique {
        let mut okm = match r {
            Recipient::X25519(pk) => {
                let ss = secret.diffie_hellman(&PublicKey::from(*pk));
                x25519_okm(ss.as_bytes(), &epk, pk).ok_or(PrivateError::BadRecipientKey)?
            }
            Recipient::Symmetric(k) => symmetric_okm(k, &epk),
        };
        slots.push(make_slot(&okm, &aad, cek)?);
        okm.zeroize();
    }
    let n = SLOT_BUCKETS
        .into_iter()
        .find(|&n| n >= slots.len())
        .ok_or(PrivateError::TooManyRecipients)?;
    let fill = n - slots.len();
    if padding.len() < fill {
        return Err(PrivateError::Padding);
    }
    slots.extend_from_slice(&padding[..fill]);
    slots.sort_unstable();
    slots.dedup();
    if slots.len() != n {
        // Two equal 64-byte slots: only with repeated padding input.
        return Err(PrivateError::Padding);
    }
    Ok(Sealed {
        descriptor: Descriptor {
            epk,
            blob_hash,
            fth: keys.fth,
            slots,
        },
        blob,
        cek: zeroize::Zeroizing::new(*cek),
    })
}

fn open_slots(d: &Descriptor, okm: &[u8; 48]) -> Result<Option<[u8; 32]>, PrivateError> {
    let aad = slot_aad(&d.blob_hash, &d.fth);
    let aead = ChaCha20Poly1305::new(Key::from_slice(&okm[16..]));
    for slot in d
        .slots
        .iter()
        .filter(|s| bool::from(s[..16].ct_eq(&okm[..16])))
    {
        let Ok(cek) = aead.decrypt(
            Nonce::from_slice(&ZERO_NONCE),
            Payload {
                msg: &slot[16..],
                aad: &aad,
            },
        ) else {
            continue;
        };
        let Ok(cek) = <[u8; 32]>::try_from(cek.as_slice()) else {
            continue;
        };
        if !bool::from(key_schedule(&cek).fth.ct_eq(&d.fth)) {
            return Err(PrivateError::BadCommitment);
        }
        return Ok(Some(cek));
    }
    Ok(None)
}

/// Trial decryption with one local X25519 secret: the content key if a slot is for it.
pub fn trial_open(d: &Descriptor, secret: &StaticSecret) -> Result<Option<[u8; 32]>, PrivateError> {
    let pk = PublicKey::from(secret).to_bytes();
    let ss = secret.diffie_hellman(&PublicKey::from(d.epk));
    match x25519_okm(ss.as_bytes(), &d.epk, &pk) {
        Some(okm) => open_slots(d, &okm),
        None => Ok(None),
    }
}

/// Opens the symmetric slot with `key`, if the descriptor has one for it.
pub fn open_symmetric(d: &Descriptor, key: &[u8; 32]) -> Result<Option<[u8; 32]>, PrivateError> {
    open_slots(d, &symmetric_okm(key, &d.epk))
}

/// Opens a fetched blob with the content key: checks its hash, the commitment and the framing.
pub fn open(d: &Descriptor, cek: &[u8; 32], blob: &[u8]) -> Result<Vec<u8>, PrivateError> {
    let hash: [u8; 32] = Sha256::digest(blob).into();
    if hash != d.blob_hash {
        return Err(PrivateError::BlobHash);
    }
    let keys = key_schedule(cek);
    if !bool::from(keys.fth.ct_eq(&d.fth)) {
        return Err(PrivateError::BadCommitment);
    }
    open_blob(&keys.k_blob, &d.epk, blob)
}

/// Whether `ft` is the fetch token of a descriptor with commitment `fth` (constant time).
pub fn fetch_token_matches(ft: &[u8; 32], fth: &[u8; 32]) -> bool {
    let h: [u8; 32] = Sha256::digest(ft).into();
    bool::from(h.ct_eq(fth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(seed: u8) -> (StaticSecret, [u8; 32]) {
        let s = StaticSecret::from([seed; 32]);
        let p = PublicKey::from(&s).to_bytes();
        (s, p)
    }

    #[test]
    fn recipients_open_others_do_not() {
        let (b, pb) = x(0x12);
        let (c, pc) = x(0x13);
        let (d, _) = x(0x14);
        let sym = [0x55; 32];
        let sealed = seal(
            b"consent for patient P",
            &[
                Recipient::X25519(pb),
                Recipient::X25519(pc),
                Recipient::Symmetric(sym),
            ],
            &ephemeral().0,
        )
        .unwrap();
        let desc = Descriptor::from_cbor(&sealed.descriptor.to_cbor()).unwrap();
        assert_eq!(desc.slots.len(), 4);
        for s in [&b, &c] {
            let cek = trial_open(&desc, s).unwrap().expect("a slot for this key");
            assert_eq!(
                open(&desc, &cek, &sealed.blob).unwrap(),
                b"consent for patient P"
            );
            assert!(fetch_token_matches(&key_schedule(&cek).ft, &desc.fth));
        }
        let cek = open_symmetric(&desc, &sym)
            .unwrap()
            .expect("symmetric slot");
        assert_eq!(
            open(&desc, &cek, &sealed.blob).unwrap(),
            b"consent for patient P"
        );
        assert_eq!(trial_open(&desc, &d).unwrap(), None);
        assert_eq!(open_symmetric(&desc, &[0x56; 32]).unwrap(), None);
        // A flipped bit anywhere in the blob: refused.
        let mut blob = sealed.blob.clone();
        blob[100] ^= 1;
        assert_eq!(open(&desc, &cek, &blob), Err(PrivateError::BlobHash));
    }

    #[test]
    fn sizes_are_bucketed() {
        assert_eq!(blob_bucket(0), Some(1024));
        assert_eq!(blob_bucket(1020), Some(1024));
        assert_eq!(blob_bucket(1021), Some(2048));
        assert_eq!(blob_bucket(MAX_INNER), Some(MAX_BLOB_PLAINTEXT));
        assert_eq!(blob_bucket(MAX_INNER + 1), None);
        let (_, p) = x(1);
        let small = seal(b"a", &[Recipient::X25519(p)], &ephemeral().0).unwrap();
        let bigger = seal(&[7u8; 1000], &[Recipient::X25519(p)], &ephemeral().0).unwrap();
        assert_eq!(small.blob.len(), bigger.blob.len());
        let many: Vec<Recipient> = (1..=5u8).map(|i| Recipient::X25519(x(i).1)).collect();
        assert_eq!(
            seal(b"a", &many, &ephemeral().0)
                .unwrap()
                .descriptor
                .slots
                .len(),
            8
        );
        let too_many: Vec<Recipient> = (1..=65u8).map(|i| Recipient::X25519(x(i).1)).collect();
        assert_eq!(
            seal(b"a", &too_many, &ephemeral().0).err(),
            Some(PrivateError::TooManyRecipients)
        );
        assert_eq!(
            seal(
                &vec![0u8; MAX_INNER + 1],
                &[Recipient::X25519(p)],
                &ephemeral().0
            )
            .err(),
            Some(PrivateError::TooLarge)
        );
    }

    #[test]
    fn small_order_keys_and_bad_descriptors_are_refused() {
        // The all-zero point is of small order: its shared secret is all zero.
        assert_eq!(
            seal(b"a", &[Recipient::X25519([0u8; 32])], &ephemeral().0).err(),
            Some(PrivateError::BadRecipientKey)
        );
        let (_, p) = x(1);
        let d = seal(b"a", &[Recipient::X25519(p)], &ephemeral().0)
            .unwrap()
            .descriptor;
        let mut unsorted = d.clone();
        unsorted.slots.reverse();
        assert!(Descriptor::from_cbor(&unsorted.to_cbor()).is_err());
        let mut three = d.clone();
        three.slots.pop();
        assert!(Descriptor::from_cbor(&three.to_cbor()).is_err());
        let mut bytes = d.to_cbor();
        bytes.push(0);
        assert!(Descriptor::from_cbor(&bytes).is_err());
        assert!(Descriptor::from_cbor(b"\xa0").is_err());
    }

    #[test]
    fn a_wrong_content_key_fails_the_commitment() {
        let (b, pb) = x(0x12);
        let sealed = seal(b"x", &[Recipient::X25519(pb)], &ephemeral().0).unwrap();
        let cek = trial_open(&sealed.descriptor, &b).unwrap().unwrap();
        let mut other = cek;
        other[0] ^= 1;
        assert_eq!(
            open(&sealed.descriptor, &other, &sealed.blob),
            Err(PrivateError::BadCommitment)
        );
    }
}
