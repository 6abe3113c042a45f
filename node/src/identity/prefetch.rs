//! What a verification needs from the web, fetched before it starts (spec:
//! `specs/credentials.md` §5a): the Bitstring Status Lists its credentials point to
//! ([`crate::identity::status_list`]) and the did:web documents of its issuers and holders, so
//! that verification itself stays synchronous and IO-free; and the Dezi key sets of
//! `DeziUserCredential`s, only those in `trust.dezi_key_sets` (a `jku` from a credential is
//! never fetched otherwise).
//!
//! did:web documents are cached: a document for five minutes, a failure for ten seconds (so a
//! dead server does not slow every request down). A did:web DID has no history: its keys are
//! checked as they are now, not as they were at issuance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{info_span, Instrument};

use crate::identity::credentials::Fetched;
use crate::identity::didweb::DidWebClient;
use crate::identity::status_list::StatusLists;

/// How long a fetched did:web document is used.
const DOCUMENT_TTL: Duration = Duration::from_secs(300);
/// How long a failed fetch is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Most did:web documents fetched for one verification.
pub const MAX_WEB_DIDS_PER_REQUEST: usize = 16;
/// Most cached documents.
const MAX_CACHED: usize = 4096;
/// Deepest nesting of presentations and credentials looked into.
const MAX_DEPTH: usize = 4;

/// Fetched values (or why not) by URL or DID: a value for [`DOCUMENT_TTL`], a failure for
/// [`NEGATIVE_TTL`], at most [`MAX_CACHED`] entries.
struct TtlCache<T> {
    map: Mutex<HashMap<String, Cached<T>>>,
}

/// When a value was fetched, and the value or why not.
type Cached<T> = (Instant, Result<T, String>);

impl<T: Clone> TtlCache<T> {
    fn new() -> Self {
        TtlCache {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<Result<T, String>> {
        let map = self.map.lock().ok()?;
        let (at, v) = map.get(key)?;
        let ttl = if v.is_ok() {
            DOCUMENT_TTL
        } else {
            NEGATIVE_TTL
        };
        (at.elapsed() < ttl).then(|| v.clone())
    }

    fn put(&self, key: &str, v: &Result<T, String>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_CACHED {
                map.retain(|_, (at, _)| at.elapsed() < DOCUMENT_TTL);
                if map.len() >= MAX_CACHED {
                    map.clear();
                }
            }
            map.insert(key.to_owned(), (Instant::now(), v.clone()));
        }
    }
}

/// Fetches status lists and did:web documents for verifications.
pub struct Prefetcher {
    lists: Arc<StatusLists>,
    /// `None` when did:web is disabled: every did:web key is then unavailable.
    web: Option<DidWebClient>,
    documents: TtlCache<Value>,
    /// The Dezi key sets trusted (config), and their cache.
    dezi_key_sets: Vec<String>,
    key_sets: TtlCache<knoop_vc::dezi::KeySet>,
}

/// Largest JWK Set fetched (bytes).
const MAX_KEY_SET_BYTES: usize = 256 * 1024;

impl Prefetcher {
    pub fn new(
        lists: Arc<StatusLists>,
        web: Option<DidWebClient>,
        dezi_key_sets: Vec<String>,
    ) -> Self {
        Prefetcher {
            lists,
            web,
            documents: TtlCache::new(),
            dezi_key_sets,
            key_sets: TtlCache::new(),
        }
    }

    /// The trusted Dezi key set at `url` (cached like did:web documents).
    async fn key_set(&self, url: &str) -> Result<knoop_vc::dezi::KeySet, String> {
        if let Some(set) = self.key_sets.get(url) {
            return set;
        }
        let set = match &self.web {
            None => Err("fetching over HTTPS is disabled (did.web_enabled)".to_owned()),
            Some(web) => match web
                .get(
                    url,
                    "application/jwk-set+json, application/json",
                    MAX_KEY_SET_BYTES,
                )
                .instrument(info_span!("dezi_key_set", %url))
                .await
            {
                Err(e) => Err(e.to_string()),
                Ok(body) => serde_json::from_slice::<Value>(&body)
                    .map_err(|e| format!("not JSON: {e}"))
                    .and_then(|v| knoop_vc::dezi::parse_key_set(&v)),
            },
        };
        self.key_sets.put(url, &set);
        set
    }

    /// Everything the credentials and presentations in `inputs` (JSON, JOSE credentials,
    /// presentation JWTs) need: their status lists and the did:web documents of their issuers
    /// and holders.
    pub async fn fetch(&self, inputs: &[&Value]) -> Fetched {
        // Presentation JWTs are opened (unverified) so their credentials' lists are found.
        let opened: Vec<Value> = inputs
            .iter()
            .map(|v| match v {
                Value::String(jwt) => unverified_vp(jwt).unwrap_or_else(|| (*v).clone()),
                v => (*v).clone(),
            })
            .collect();
        let refs: Vec<&Value> = opened.iter().collect();
        let lists = self.lists.prefetch(&refs).await;
        let mut wanted = Vec::new();
        for v in inputs {
            web_dids_in(v, 0, &mut wanted);
        }
        let mut dids = HashMap::new();
        for (i, did) in wanted.into_iter().enumerate() {
            let doc = if i >= MAX_WEB_DIDS_PER_REQUEST {
                Err(format!(
                    "more than {MAX_WEB_DIDS_PER_REQUEST} did:web DIDs in one request"
                ))
            } else {
                self.document(&did).await
            };
            dids.insert(did, doc);
        }
        let mut key_sets = HashMap::new();
        for url in dezi_key_sets_in(&opened) {
            let set = if self.dezi_key_sets.contains(&url) {
                self.key_set(&url).await
            } else {
                Err(format!(
                    "{url} is not a trusted Dezi key set (trust.dezi_key_sets)"
                ))
            };
            key_sets.insert(url, set);
        }
        Fetched {
            lists,
            dids,
            key_sets,
        }
    }

    async fn document(&self, did: &str) -> Result<Value, String> {
        if let Some(doc) = self.documents.get(did) {
            return doc;
        }
        let doc = match &self.web {
            None => Err("did:web resolution is disabled on this node".to_owned()),
            Some(web) => web
                .resolve(did)
                .instrument(info_span!("did_web_prefetch", %did))
                .await
                .map_err(|e| format!("{did}: {e}")),
        };
        self.documents.put(did, &doc);
        doc
    }
}

/// The `jku` of every Dezi credential in `inputs` (credentials or presentations), at most
/// [`MAX_WEB_DIDS_PER_REQUEST`].
fn dezi_key_sets_in(inputs: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for v in inputs {
        let creds: Vec<&Value> = match v.get("verifiableCredential") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(c) => vec![c],
            None => vec![v],
        };
        for c in creds {
            if let Some(url) = knoop_vc::dezi::key_set_url(c) {
                if !out.contains(&url) && out.len() < MAX_WEB_DIDS_PER_REQUEST {
                    out.push(url);
                }
            }
        }
    }
    out
}

/// The `vp` claim of a presentation JWT, with `holder` = `iss`, read without verifying.
fn unverified_vp(jwt: &str) -> Option<Value> {
    let claims = knoop_vc::jws::Compact::parse(jwt).ok()?.claims().ok()?;
    let mut vp = claims.get("vp")?.clone();
    if let (Some(o), Some(iss)) = (vp.as_object_mut(), claims.get("iss")) {
        o.entry("holder").or_insert_with(|| iss.clone());
    }
    Some(vp)
}

fn push_web_did(out: &mut Vec<String>, id: Option<&str>) {
    let Some(did) = id.and_then(|i| i.split('#').next()) else {
        return;
    };
    if did.starts_with("did:web:") && !out.iter().any(|d| d == did) {
        out.push(did.to_owned());
    }
}

/// The did:web DIDs that sign or hold in `v`: a credential's issuer and proof methods, a
/// presentation's holder, the `iss` and `kid` of a JWT, recursively through
/// `verifiableCredential` and JOSE envelopes.
pub fn web_dids_in(v: &Value, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Some(jwt) = knoop_vc::jose::jwt_of(v) {
        let Ok(jws) = knoop_vc::jws::Compact::parse(jwt) else {
            return;
        };
        push_web_did(out, jws.header_str("kid"));
        if let Ok(claims) = jws.claims() {
            push_web_did(out, claims.get("iss").and_then(Value::as_str));
            let inner = claims.get("vp").or_else(|| claims.get("vc"));
            let payload = Value::Object(claims.clone());
            web_dids_in(inner.unwrap_or(&payload), depth + 1, out);
        }
        return;
    }
    let Some(o) = v.as_object() else {
        return;
    };
    for field in ["issuer", "holder"] {
        match o.get(field) {
            Some(Value::String(s)) => push_web_did(out, Some(s)),
            Some(Value::Object(i)) => push_web_did(out, i.get("id").and_then(Value::as_str)),
            _ => {}
        }
    }
    let proofs: Vec<&Value> = match o.get("proof") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(p) => vec![p],
        None => Vec::new(),
    };
    for p in proofs {
        push_web_did(out, p.get("verificationMethod").and_then(Value::as_str));
    }
    match o.get("verifiableCredential") {
        Some(Value::Array(a)) => a.iter().for_each(|c| web_dids_in(c, depth + 1, out)),
        Some(c) => web_dids_in(c, depth + 1, out),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn web_dids_are_found_wherever_they_sign_or_hold() {
        let key = knoop_vc::jws::SigningKey::generate_p256();
        let vc_jwt = key.sign_compact(
            serde_json::Map::from_iter([("kid".into(), json!("did:web:ra.example#k"))]),
            json!({"iss": "did:web:ra.example", "vc": {}})
                .to_string()
                .as_bytes(),
        );
        let vp_jwt = key.sign_compact(
            serde_json::Map::from_iter([("kid".into(), json!("did:web:ehr.example:org#k"))]),
            json!({"iss": "did:web:ehr.example:org", "vp": {"verifiableCredential": [
                vc_jwt,
                {"issuer": {"id": "did:web:other.example"}, "proof": {"verificationMethod": "did:web:other.example#1"}},
                {"issuer": "did:knoop:abc"},
            ]}})
            .to_string()
            .as_bytes(),
        );
        let mut out = Vec::new();
        web_dids_in(&Value::String(vp_jwt.clone()), 0, &mut out);
        assert_eq!(
            out,
            [
                "did:web:ehr.example:org",
                "did:web:ra.example",
                "did:web:other.example"
            ]
        );
        let vp = unverified_vp(&vp_jwt).unwrap();
        assert_eq!(vp["holder"], "did:web:ehr.example:org");
        let mut none = Vec::new();
        web_dids_in(
            &json!({"holder": "did:key:z6Mk", "verifiableCredential": "junk"}),
            0,
            &mut none,
        );
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn without_did_web_the_keys_are_unavailable_not_fatal() {
        let lists = Arc::new(StatusLists::new(None, Duration::from_secs(60)));
        let p = Prefetcher::new(lists, None, Vec::new());
        let f = p
            .fetch(&[&json!({"issuer": "did:web:ra.example", "credentialSubject": {}})])
            .await;
        assert!(f.dids["did:web:ra.example"]
            .as_ref()
            .is_err_and(|e| e.contains("disabled")));
    }
}
