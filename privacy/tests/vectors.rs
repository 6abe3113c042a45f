//! `specs/vectors/private.json`: the private-transaction construction from fixed inputs
//! (`specs/private-transactions.md` §14). `KNOOP_REGEN_VECTORS=1` rewrites the file from this
//! implementation; otherwise every output must match it byte for byte.

use knoop_privacy::seal::{
    blob_bucket, key_schedule, open, open_symmetric, seal_with, trial_open, Descriptor, Recipient,
};
use knoop_privacy::MISS;
use serde_json::{json, Value};
use sha2::{Digest, Sha512};
use x25519_dalek::{PublicKey, StaticSecret};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/vectors/private.json");

fn pk(seed: u8) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from([seed; 32])).to_bytes()
}

fn padding() -> Vec<[u8; 64]> {
    (0u8..64)
        .map(|i| {
            let h = Sha512::digest([b"knoop/private/1 vector padding ".as_slice(), &[i]].concat());
            h.into()
        })
        .collect()
}

fn generate() -> Value {
    let cek = [0x31; 32];
    let esk = [0x21; 32];
    let ks = key_schedule(&cek);
    let inner = b"{\"hello\":\"private world\"}".to_vec();
    let symmetric = [0x51; 32];
    let sealed = seal_with(
        &inner,
        &[
            Recipient::X25519(pk(0x12)),
            Recipient::X25519(pk(0x13)),
            Recipient::X25519(pk(0x11)),
            Recipient::Symmetric(symmetric),
        ],
        &esk,
        &cek,
        &padding(),
    )
    .unwrap();
    let five = seal_with(
        b"five recipients",
        &(1u8..=5)
            .map(|i| Recipient::X25519(pk(0x60 + i)))
            .collect::<Vec<_>>(),
        &esk,
        &cek,
        &padding(),
    )
    .unwrap();
    let buckets: Vec<Value> = [0usize, 1019, 1020, 1021, 262_140, 262_141]
        .iter()
        .map(|&n| json!({"inner_len": n, "B": blob_bucket(n)}))
        .collect();
    let recipients: Vec<String> = ["12", "13", "11"].iter().map(|s| s.repeat(32)).collect();
    let pads: Vec<String> = padding().iter().map(hex::encode).collect();
    json!({
        "description": "Private-transaction construction (specs/private-transactions.md §3) from fixed inputs. Checked by privacy/tests/vectors.rs; regenerate with KNOOP_REGEN_VECTORS=1.",
        "key_schedule": {
            "cek": hex::encode(cek),
            "k_blob": hex::encode(ks.k_blob),
            "ft": hex::encode(ks.ft),
            "fth": hex::encode(ks.fth),
        },
        "padding_buckets": buckets,
        "private": {
            "esk": hex::encode(esk),
            "epk": hex::encode(sealed.descriptor.epk),
            "recipient_secrets": recipients,
            "symmetric_key": hex::encode(symmetric),
            "padding_slots": pads,
            "inner": hex::encode(&inner),
            "blob": hex::encode(&sealed.blob),
            "blob_hash": hex::encode(sealed.descriptor.blob_hash),
            "descriptor": hex::encode(sealed.descriptor.to_cbor()),
        },
        "five_recipients_descriptor": hex::encode(five.descriptor.to_cbor()),
        "miss": hex::encode(MISS),
    })
}

fn unhex<const N: usize>(v: &Value) -> [u8; N] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn private_vectors() {
    let generated = generate();
    if std::env::var_os("KNOOP_REGEN_VECTORS").is_some() {
        std::fs::write(
            PATH,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(
        file, generated,
        "specs/vectors/private.json differs from the implementation"
    );

    // Read back from the file alone: each recipient key opens its slot, the symmetric key opens
    // its own, and the blob opens to the inner message.
    let p = &file["private"];
    let d =
        Descriptor::from_cbor(&hex::decode(p["descriptor"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(d.slots.len(), 4);
    let blob = hex::decode(p["blob"].as_str().unwrap()).unwrap();
    let inner = hex::decode(p["inner"].as_str().unwrap()).unwrap();
    for s in p["recipient_secrets"].as_array().unwrap() {
        let secret = StaticSecret::from(unhex::<32>(s));
        let cek = trial_open(&d, &secret).unwrap().expect("a slot");
        assert_eq!(
            hex::encode(cek),
            file["key_schedule"]["cek"].as_str().unwrap()
        );
        assert_eq!(open(&d, &cek, &blob).unwrap(), inner);
    }
    let cek = open_symmetric(&d, &unhex::<32>(&p["symmetric_key"]))
        .unwrap()
        .expect("symmetric");
    assert_eq!(open(&d, &cek, &blob).unwrap(), inner);
    assert_eq!(
        trial_open(&d, &StaticSecret::from([0x14; 32])).unwrap(),
        None
    );
    let five = Descriptor::from_cbor(
        &hex::decode(file["five_recipients_descriptor"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(five.slots.len(), 8);
    assert_eq!(file["miss"], "a1616df6");
}

const LOC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../specs/vectors/localisation.json"
);

fn generate_localisation() -> Value {
    use knoop_privacy::locator::{encode_content, seal_entry, slot_tag, EntryKind};
    use knoop_privacy::patient::{NetworkParams, PatientId, PatientKeys};
    let net = NetworkParams {
        network_id: "knoop-test".into(),
        epoch: 1,
        pepper: zeroize::Zeroizing::new([0x51; 32]),
        m_kib: 256,
        t: 1,
        p: 1,
    };
    let keys = PatientKeys::derive(&PatientId::bsn("123456782").unwrap(), &net).unwrap();
    let signer = "did:knoop:node-01";
    let kinds = [
        ("held", EntryKind::Held),
        (
            "withdrawn",
            EntryKind::Withdrawn {
                tx: [0x71; 32],
                index: 2,
            },
        ),
        ("consent", EntryKind::Consent { tx: [0x72; 32] }),
    ];
    let entries: Vec<[u8; 104]> = kinds
        .iter()
        .enumerate()
        .map(|(i, (_, k))| seal_entry(&keys, i as u32, signer, k, &[0x61; 24]))
        .collect();
    json!({
        "description": "Patient keys, slot tags and localisation entries (specs/consent-localisation.md §2, §6) with reduced Argon2id parameters. Checked by privacy/tests/vectors.rs; regenerate with KNOOP_REGEN_VECTORS=1.",
        "derive": {
            "system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "123456782",
            "network_id": net.network_id, "epoch": net.epoch, "pepper": hex::encode([0x51; 32]),
            "argon2": {"m_kib": net.m_kib, "t": net.t, "p": net.p},
            "salt": hex::encode(net.salt()),
            "k_tag": hex::encode(*keys.k_tag), "k_ent": hex::encode(*keys.k_ent),
            "k_pat": hex::encode(*keys.k_pat), "p": hex::encode(keys.p),
            "reference": keys.reference(),
        },
        "tags": (0..4).map(|i| hex::encode(slot_tag(&keys, i))).collect::<Vec<_>>(),
        "entries": {
            "signer": signer, "nonce": hex::encode([0x61; 24]),
            "kinds": kinds.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            "sealed": entries.iter().map(hex::encode).collect::<Vec<_>>(),
            "content": hex::encode(encode_content(&entries)),
        },
        "invalid_identifiers": ["12345678a", "1234567", "1234567890", "123456783"],
    })
}

#[test]
fn localisation_vectors() {
    use knoop_privacy::locator::{decode_content, open_entry, EntryKind};
    use knoop_privacy::patient::{PatientId, PatientKeys};
    let generated = generate_localisation();
    if std::env::var_os("KNOOP_REGEN_VECTORS").is_some() {
        std::fs::write(
            LOC_PATH,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(LOC_PATH).unwrap()).unwrap();
    assert_eq!(
        file, generated,
        "specs/vectors/localisation.json differs from the implementation"
    );
    let d = &file["derive"];
    let keys = {
        let k = |f: &str| -> [u8; 32] { unhex::<32>(&d[f]) };
        let mut bytes = Vec::new();
        for f in ["k_tag", "k_ent", "k_pat"] {
            bytes.extend_from_slice(&k(f));
        }
        PatientKeys::from_secret_bytes(&bytes, k("p")).unwrap()
    };
    let e = &file["entries"];
    let sealed = decode_content(&hex::decode(e["content"].as_str().unwrap()).unwrap()).unwrap();
    let signer = e["signer"].as_str().unwrap();
    assert!(matches!(
        open_entry(&keys, &sealed[0], signer),
        Ok(EntryKind::Held)
    ));
    assert!(open_entry(&keys, &sealed[0], "did:knoop:other").is_err());
    for bad in file["invalid_identifiers"].as_array().unwrap() {
        assert!(PatientId::bsn(bad.as_str().unwrap()).is_err(), "{bad}");
    }
}
