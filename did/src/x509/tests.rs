//! did:x509 over throw-away chains shaped like the Dutch UZI server certificates (made with
//! rcgen): a root, an intermediate and a leaf with the organisation's name and place in its
//! subject and the UZI string (with the URA) as `otherName`.

use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};

const UZI: &str = "2.16.528.1.1007.99.2110-1-900025039-S-90000382-00.000-00000000";

struct Chain {
    ders: Vec<Vec<u8>>,
    root_fp: String,
    inter_fp: String,
}

fn ca(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p
}

fn chain_with(leaf_not_after: Option<(i32, u8, u8)>) -> Chain {
    let root_key = KeyPair::generate().unwrap();
    let root = ca("Test UZI root CA").self_signed(&root_key).unwrap();
    let inter_key = KeyPair::generate().unwrap();
    let inter = ca("Test UZI server CA")
        .signed_by(&inter_key, &root, &root_key)
        .unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["zorg.example".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::OrganizationName, "Tést Zorginstelling 03");
    leaf.distinguished_name
        .push(DnType::LocalityName, "'S-GRAVENHAGE");
    leaf.distinguished_name
        .push(DnType::CommonName, "zorg.example");
    leaf.subject_alt_names
        .push(SanType::OtherName((vec![2, 5, 5, 5], UZI.into())));
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if let Some((y, m, d)) = leaf_not_after {
        leaf.not_after = rcgen::date_time_ymd(y, m, d);
    }
    let leaf = leaf.signed_by(&leaf_key, &inter, &inter_key).unwrap();
    let fp = |der: &[u8]| BASE64_URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der));
    Chain {
        root_fp: fp(root.der()),
        inter_fp: fp(inter.der()),
        ders: vec![
            leaf.der().to_vec(),
            inter.der().to_vec(),
            root.der().to_vec(),
        ],
    }
}

fn uzi_did(fp: &str) -> String {
    format!(
        "did:x509:0:sha256:{fp}::san:otherName:{UZI}::subject:O:T%C3%A9st%20Zorginstelling%2003:L:%27S-GRAVENHAGE"
    )
}

const NOW: i64 = 1_800_000_000;

#[test]
fn a_uzi_shaped_chain_resolves() {
    let c = chain_with(None);
    for fp in [&c.root_fp, &c.inter_fp] {
        let did = uzi_did(fp);
        let r = resolve(&did, &c.ders, NOW).unwrap();
        assert_eq!(r.document["id"], did.as_str());
        assert_eq!(r.document["assertionMethod"], json!([format!("{did}#0")]));
        assert_eq!(r.jwk["crv"], "P-256");
        assert_eq!(r.did.policies.len(), 2);
    }
    // Without the root in the chain, anchored in the intermediate.
    let r = resolve(&uzi_did(&c.inter_fp), &c.ders[..2], NOW).unwrap();
    assert_eq!(
        r.document["verificationMethod"][0]["type"],
        "JsonWebKey2020"
    );
    // The other policies.
    for policy in [
        "san:dns:zorg.example",
        "eku:1.3.6.1.5.5.7.3.2",
        "subject:CN:zorg.example",
    ] {
        let did = format!("did:x509:0:sha256:{}::{policy}", c.root_fp);
        assert!(resolve(&did, &c.ders, NOW).is_ok(), "{policy}");
    }
}

#[test]
fn each_refusal_is_named() {
    let c = chain_with(None);
    let good = uzi_did(&c.root_fp);
    let other = chain_with(None);
    // Another CA's fingerprint; the leaf's own fingerprint does not anchor.
    assert_eq!(
        resolve(&uzi_did(&other.root_fp), &c.ders, NOW).unwrap_err(),
        X509Error::Fingerprint
    );
    let leaf_fp = BASE64_URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&c.ders[0]));
    assert_eq!(
        resolve(&uzi_did(&leaf_fp), &c.ders, NOW).unwrap_err(),
        X509Error::Fingerprint
    );
    // Policies the leaf does not meet.
    for policy in [
        "san:otherName:2.16.528.1.1007.99.2110-1-900025039-S-99999999-00.000-00000000",
        "subject:O:Another%20Org",
        "san:email:info%40zorg.example",
        "eku:1.3.6.1.5.5.7.3.1",
    ] {
        let did = format!("did:x509:0:sha256:{}::{policy}", c.root_fp);
        assert!(
            matches!(resolve(&did, &c.ders, NOW), Err(X509Error::Policy(_))),
            "{policy}"
        );
    }
    // A chain out of order, a leaf from another chain, a broken certificate, an expired leaf.
    let swapped = vec![c.ders[1].clone(), c.ders[0].clone(), c.ders[2].clone()];
    assert!(matches!(
        resolve(&good, &swapped, NOW),
        Err(X509Error::Chain(_))
    ));
    let foreign = vec![other.ders[0].clone(), c.ders[1].clone(), c.ders[2].clone()];
    assert!(matches!(
        resolve(&good, &foreign, NOW),
        Err(X509Error::Chain(_))
    ));
    let mut broken = c.ders.clone();
    broken[0].truncate(40);
    assert!(matches!(
        resolve(&good, &broken, NOW),
        Err(X509Error::Chain(_))
    ));
    assert!(matches!(resolve(&good, &[], NOW), Err(X509Error::Chain(_))));
    let expired = chain_with(Some((2001, 1, 1)));
    assert!(matches!(
        resolve(&uzi_did(&expired.root_fp), &expired.ders, NOW),
        Err(X509Error::Chain(_))
    ));
}

#[test]
fn malformed_dids_are_refused() {
    let fp = chain_with(None).root_fp;
    for did in [
        "did:x509:1:sha256:AAAA::eku:1.2".to_owned(),
        format!("did:x509:0:md5:{fp}::eku:1.2"),
        "did:x509:0:sha256:AAAA::eku:1.2".to_owned(),
        format!("did:x509:0:sha256:{fp}"),
        format!("did:x509:0:sha256:{fp}::subject:O"),
        format!("did:x509:0:sha256:{fp}::subject:X:y"),
        format!("did:x509:0:sha256:{fp}::subject:O:a:O:b"),
        format!("did:x509:0:sha256:{fp}::san:ip:1.2.3.4"),
        format!("did:x509:0:sha256:{fp}::eku:1..2"),
        format!("did:x509:0:sha256:{fp}::fulcio-issuer:x"),
        format!("did:x509:0:sha256:{fp}::subject:O:a b"),
        format!("did:x509:0:sha256:{fp}::subject:O:%zz"),
        format!(
            "did:x509:0:sha256:{fp}::subject:O:{}",
            "a".repeat(MAX_DID_BYTES)
        ),
    ] {
        assert!(parse(&did).is_err(), "{did}");
    }
    assert_eq!(percent_decode("T%C3%A9st%20Zorg").unwrap(), "Tést Zorg");
}

/// `specs/vectors/did-x509.json` (made with pyca/cryptography): its DIDs resolve with its chain
/// at its time to its leaf key, the others fail as it says.
#[test]
fn the_cryptography_vectors_resolve() {
    use base64::prelude::BASE64_STANDARD;
    let v: Value =
        serde_json::from_str(include_str!("../../../specs/vectors/did-x509.json")).unwrap();
    let chain: Vec<Vec<u8>> = v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| BASE64_STANDARD.decode(c.as_str().unwrap()).unwrap())
        .collect();
    let at = v["resolve_at"].as_i64().unwrap();
    for did in v["resolves"].as_array().unwrap() {
        let did = did.as_str().unwrap();
        let r = resolve(did, &chain, at).unwrap_or_else(|e| panic!("{did}: {e}"));
        assert_eq!(r.jwk, v["leaf_jwk"], "{did}");
    }
    for case in v["fails"].as_array().unwrap() {
        let did = case["did"].as_str().unwrap();
        let e = resolve(did, &chain, at).unwrap_err();
        let kind = match e {
            X509Error::Policy(_) => "policy",
            X509Error::Fingerprint => "fingerprint",
            _ => "other",
        };
        assert_eq!(kind, case["error"], "{did}: {e}");
    }
    // Before the chain's validity it does not resolve.
    let first = v["resolves"][0].as_str().unwrap();
    assert!(matches!(
        resolve(first, &chain, 1_700_000_000),
        Err(X509Error::Chain(_))
    ));
}
