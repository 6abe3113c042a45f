//! Fetching Bitstring Status List credentials (spec: `specs/credentials.md` §9): the
//! `statusListCredential` URLs a credential points to are fetched over HTTPS before it is
//! verified, with a cache, so verification itself stays synchronous and IO-free.
//!
//! A list is served as a JSON credential or as a `vc+jwt`; either way the verifier checks its
//! proof and that its issuer is the credential's. Failures are cached for a short while so a
//! dead status server does not slow every verification down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use knoop_vc::verify::StatusLookup;
use serde_json::Value;
use tracing::{debug, info_span, Instrument};

use crate::identity::didweb::DidWebClient;

/// Largest status list credential fetched (bytes). A 16 KiB list compresses to well under 1 KiB;
/// a list of 128 Mi entries is still far below this.
pub const MAX_LIST_CREDENTIAL_BYTES: usize = 1024 * 1024;
/// Most lists fetched for one verification.
pub const MAX_LISTS_PER_REQUEST: usize = 16;
/// How long a failed fetch is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Most cached lists.
const MAX_CACHED: usize = 4096;

/// The status list cache and fetcher.
pub struct StatusLists {
    /// `None` when fetching is disabled: every list is then unavailable.
    client: Option<DidWebClient>,
    max_age: Duration,
    cache: Mutex<HashMap<String, (Instant, StatusLookup)>>,
}

impl StatusLists {
    pub fn new(client: Option<DidWebClient>, max_age: Duration) -> Self {
        StatusLists {
            client,
            max_age,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches (or takes from the cache) every status list that the credentials in `inputs`
    /// point to: credentials, JOSE credentials, or presentations holding them.
    pub async fn prefetch(&self, inputs: &[&Value]) -> HashMap<String, StatusLookup> {
        let mut urls = Vec::new();
        for input in inputs {
            for c in credentials_in(input) {
                let c = knoop_vc::jose::unverified_credential(c);
                for e in knoop_vc::status::entries(&c).unwrap_or_default() {
                    if !urls.contains(&e.list) {
                        urls.push(e.list);
                    }
                }
            }
        }
        let mut out = HashMap::new();
        for (i, url) in urls.into_iter().enumerate() {
            let lookup = if i >= MAX_LISTS_PER_REQUEST {
                StatusLookup::Unavailable(format!(
                    "more than {MAX_LISTS_PER_REQUEST} status lists in one request"
                ))
            } else {
                self.get(&url).await
            };
            out.insert(url, lookup);
        }
        out
    }

    async fn get(&self, url: &str) -> StatusLookup {
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, lookup)) = cache.get(url) {
                let ttl = match lookup {
                    StatusLookup::Fetched(_) => self.max_age,
                    _ => NEGATIVE_TTL,
                };
                if at.elapsed() < ttl {
                    return lookup.clone();
                }
            }
        }
        let lookup = self
            .fetch(url)
            .instrument(info_span!("status_list_fetch", %url))
            .await;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                let ttl = self.max_age.max(NEGATIVE_TTL);
                cache.retain(|_, (at, _)| at.elapsed() < ttl);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(url.to_owned(), (Instant::now(), lookup.clone()));
        }
        lookup
    }

    async fn fetch(&self, url: &str) -> StatusLookup {
        let Some(client) = &self.client else {
            return StatusLookup::Unavailable("fetching status lists is disabled".into());
        };
        if !url.starts_with("https://") {
            return StatusLookup::Unavailable("status lists are fetched over https only".into());
        }
        let res = tokio::time::timeout(
            client.timeout(),
            client.get(
                url,
                "application/vc+ld+json, application/vc+jwt, application/vc, application/json",
                MAX_LIST_CREDENTIAL_BYTES,
            ),
        )
        .await;
        let body = match res {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return StatusLookup::Unavailable(e.to_string()),
            Err(_) => return StatusLookup::Unavailable("timed out".into()),
        };
        debug!(bytes = body.len(), "status list fetched");
        parse_list(&body)
    }
}

/// A status list body: a JSON credential, or a compact JWS.
fn parse_list(body: &[u8]) -> StatusLookup {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('{') {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => StatusLookup::Fetched(v),
            Err(e) => StatusLookup::Unavailable(format!("not JSON: {e}")),
        }
    } else if text.split('.').count() == 3 {
        StatusLookup::Fetched(Value::String(text.to_owned()))
    } else {
        StatusLookup::Unavailable("neither a JSON credential nor a JWT".into())
    }
}

/// The credentials in `v`: `v` itself, or a presentation's `verifiableCredential`.
fn credentials_in(v: &Value) -> Vec<&Value> {
    match v.get("verifiableCredential") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(c) => vec![c],
        None => vec![v],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_as_json_or_jwt() {
        assert!(matches!(
            parse_list(b" {\"type\": \"x\"} "),
            StatusLookup::Fetched(Value::Object(_))
        ));
        assert!(matches!(
            parse_list(b"aaa.bbb.ccc\n"),
            StatusLookup::Fetched(Value::String(_))
        ));
        assert!(matches!(
            parse_list(b"<html>"),
            StatusLookup::Unavailable(_)
        ));
    }

    #[tokio::test]
    async fn without_a_client_every_list_is_unavailable() {
        let lists = StatusLists::new(None, Duration::from_secs(60));
        let vc = serde_json::json!({"credentialStatus": {
            "type": "BitstringStatusListEntry", "statusPurpose": "revocation",
            "statusListIndex": "1", "statusListCredential": "https://example.com/l",
        }});
        let got = lists.prefetch(&[&vc]).await;
        assert!(matches!(
            got.get("https://example.com/l"),
            Some(StatusLookup::Unavailable(_))
        ));
    }
}
