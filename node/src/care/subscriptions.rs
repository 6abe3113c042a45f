//! Consent subscriptions (spec: `specs/fhir-consent.md` §4), as knooppunt's Mitz interface
//! takes them (`Subscription` with `reason` OTV and criteria
//! `Consent?_query=otv&patientid=…&providerid=…&providertype=…`, a `rest-hook` channel), but
//! answered from the network: when a consent or objection about the patient arrives at this
//! node or is revoked, the subscriber's endpoint gets a notification (a FHIR R4 Subscriptions
//! Backport `history` Bundle with the changed `Consent`s). The BSN is used to derive the
//! patient's pseudonym and then dropped: a subscription is stored under the pseudonym.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::care::consent::Consents;
use crate::care::fhir_consent::{self, ConsentError};
use crate::identity::credentials::Credentials;
use crate::store::NodeStore;

/// Key prefix of the subscriptions in the store's node-local family.
const PREFIX: &[u8] = b"ms/";
/// The topic a notification names (the criteria-based OTV subscription).
pub const TOPIC: &str = "urn:knoop:subscription-topic:consent-otv";
/// The profile of the notification's status (FHIR Subscriptions R5 Backport for R4).
pub const STATUS_PROFILE: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";
/// Failed deliveries after which a subscription is marked `error` and no longer tried.
const MAX_FAILURES: u32 = 20;

/// A subscription as stored (no BSN).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    /// The subscribing organisation (a tenant here).
    pub tenant: String,
    /// The patient's pseudonymous reference.
    pub patient: String,
    pub provider_type: String,
    pub endpoint: String,
    /// `channel.header` values, sent with each notification.
    pub headers: Vec<String>,
    /// `active` or `error`.
    pub status: String,
    /// Consent id → status, as last notified.
    pub seen: BTreeMap<String, String>,
    pub events: u64,
    pub failures: u32,
}

/// A subscription request read: the BSN, the subscriber's URA and type, the channel.
#[derive(Debug, PartialEq)]
pub struct SubscriptionRequest {
    pub bsn: String,
    pub provider_ura: String,
    pub provider_type: String,
    pub endpoint: Option<String>,
    pub headers: Vec<String>,
}

fn invalid(d: impl Into<String>) -> ConsentError {
    ConsentError {
        status: 400,
        code: "invalid",
        diagnostics: d.into(),
    }
}

/// Reads a Mitz-style `Subscription` (knooppunt's rules: `status` requested, `reason` OTV,
/// `criteria` `Consent?_query=otv` with `patientid`, `providerid`, `providertype`, `channel.type`
/// rest-hook).
pub fn read_request(s: &Value) -> Result<SubscriptionRequest, ConsentError> {
    if s["resourceType"] != "Subscription" {
        return Err(invalid("the resource is not a Subscription"));
    }
    if s["status"] != "requested" {
        return Err(invalid("Subscription.status must be requested"));
    }
    if s["reason"] != "OTV" {
        return Err(invalid("Subscription.reason must be OTV"));
    }
    let criteria = s["criteria"]
        .as_str()
        .and_then(|c| c.strip_prefix("Consent?"))
        .ok_or_else(|| invalid("Subscription.criteria must start with Consent?"))?;
    let q: BTreeMap<String, String> = url::form_urlencoded::parse(criteria.as_bytes())
        .into_owned()
        .collect();
    if q.get("_query").map(String::as_str) != Some("otv") {
        return Err(invalid("Subscription.criteria must contain _query=otv"));
    }
    let get = |k: &str| {
        q.get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| invalid(format!("Subscription.criteria must contain {k}")))
    };
    if s["channel"]["type"] != "rest-hook" {
        return Err(invalid("Subscription.channel.type must be rest-hook"));
    }
    let endpoint = s["channel"]["endpoint"].as_str().map(str::to_owned);
    if let Some(e) = &endpoint {
        check_endpoint(e)?;
    }
    if let Some(p) = s["channel"]["payload"].as_str() {
        if !matches!(p, "application/fhir+json" | "application/json") {
            return Err(invalid(
                "Subscription.channel.payload is application/fhir+json",
            ));
        }
    }
    Ok(SubscriptionRequest {
        bsn: get("patientid")?,
        provider_ura: get("providerid")?,
        provider_type: get("providertype")?,
        endpoint,
        headers: s["channel"]["header"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect(),
    })
}

/// A notification endpoint: `https://`, or `http://` on a loopback address.
pub fn check_endpoint(e: &str) -> Result<(), ConsentError> {
    if crate::https::is_callback_url(e) {
        Ok(())
    } else {
        Err(invalid(
            "Subscription.channel.endpoint is an https:// URL (http:// only on loopback)",
        ))
    }
}

/// The subscriptions of this node's tenants, and their notifications.
pub struct Subscriptions {
    store: Arc<dyn NodeStore>,
    consents: Arc<Consents>,
    credentials: Arc<Credentials>,
    http: reqwest::Client,
    round: tokio::sync::Mutex<()>,
}

impl Subscriptions {
    pub fn new(
        store: Arc<dyn NodeStore>,
        consents: Arc<Consents>,
        credentials: Arc<Credentials>,
        http: reqwest::Client,
    ) -> Self {
        Subscriptions {
            store,
            consents,
            credentials,
            http,
            round: tokio::sync::Mutex::new(()),
        }
    }

    fn key(id: &str) -> Vec<u8> {
        [PREFIX, id.as_bytes()].concat()
    }

    fn put(&self, s: &Subscription) -> Result<(), String> {
        let v = serde_json::to_vec(s).map_err(|e| e.to_string())?;
        self.store
            .put_private(&Self::key(&s.id), &v)
            .map_err(|e| e.to_string())
    }

    /// Every subscription.
    pub fn all(&self) -> Vec<Subscription> {
        self.store
            .scan_private(PREFIX)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect()
    }

    /// Records a subscription of `tenant` to the consents about `patient` (a reference); what
    /// exists now counts as seen, so only changes are notified.
    pub fn create(
        &self,
        tenant: &str,
        patient: &str,
        provider_type: &str,
        endpoint: &str,
        headers: Vec<String>,
    ) -> Result<Subscription, String> {
        let seen = self
            .consents
            .of_patient(patient)
            .iter()
            .map(|c| (c.id.clone(), self.consents.status(c)))
            .collect();
        let s = Subscription {
            id: crate::identity::issuing::urn_uuid()
                .trim_start_matches("urn:uuid:")
                .to_owned(),
            tenant: tenant.to_owned(),
            patient: patient.to_owned(),
            provider_type: provider_type.to_owned(),
            endpoint: endpoint.to_owned(),
            headers,
            status: "active".into(),
            seen,
            events: 0,
            failures: 0,
        };
        self.put(&s)?;
        Ok(s)
    }

    /// Subscription `id`, if it is `tenant`'s.
    pub fn get(&self, id: &str, tenant: &str) -> Option<Subscription> {
        self.store
            .get_private(&Self::key(id))
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice::<Subscription>(&v).ok())
            .filter(|s| s.tenant == tenant)
    }

    /// Removes subscription `id` of `tenant`; `false` if there is none.
    pub fn delete(&self, id: &str, tenant: &str) -> bool {
        self.get(id, tenant).is_some() && self.store.delete_private(&[Self::key(id)]).is_ok()
    }

    /// One round: every active subscription whose patient's consents changed since it was last
    /// notified gets a notification; a delivery that fails is tried again next round.
    pub async fn notify_round(&self) {
        let _one = self.round.lock().await;
        for mut s in self.all().into_iter().filter(|s| s.status == "active") {
            let held = self.consents.of_patient(&s.patient);
            let now: BTreeMap<String, String> = held
                .iter()
                .map(|c| (c.id.clone(), self.consents.status(c)))
                .collect();
            let changed: Vec<Value> = held
                .iter()
                .filter(|c| s.seen.get(&c.id) != now.get(&c.id))
                .filter_map(|c| {
                    fhir_consent::write(c, &now[&c.id], None, |did| {
                        self.credentials.organisation(did).map(|e| e.ura)
                    })
                })
                .collect();
            if changed.is_empty() {
                continue;
            }
            let bundle = notification(&s, &changed);
            let span = tracing::info_span!("consent_notification", subscription = %s.id);
            let mut req = self
                .http
                .post(&s.endpoint)
                .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
                .timeout(Duration::from_secs(10))
                .body(bundle.to_string());
            for h in &s.headers {
                if let Some((k, v)) = h.split_once(':') {
                    req = req.header(k.trim(), v.trim());
                }
            }
            match req.send().instrument(span).await {
                Ok(r) if r.status().is_success() => {
                    s.events += changed.len() as u64;
                    s.seen = now;
                    s.failures = 0;
                    tracing::info!(changed = changed.len(), "consent notification delivered");
                }
                outcome => {
                    s.failures += 1;
                    let why = match outcome {
                        Ok(r) => format!("HTTP {}", r.status()),
                        Err(e) => crate::https::error_chain(&e),
                    };
                    tracing::warn!(failures = s.failures, error = %why, "consent notification not delivered");
                    if s.failures >= MAX_FAILURES {
                        s.status = "error".into();
                    }
                }
            }
            if let Err(e) = self.put(&s) {
                tracing::warn!(error = %e, "subscription state not stored");
            }
        }
    }
}

/// `s` as a FHIR `Subscription` for its subscriber (`specs/fhir-consent.md` §4): the criteria
/// without `patientid` (the node keeps no BSN), `status` `active` or `error`, and `error`
/// naming the failed deliveries.
pub fn as_fhir(s: &Subscription, provider_ura: &str) -> Value {
    let mut r = json!({
        "resourceType": "Subscription",
        "id": s.id,
        "status": s.status,
        "reason": "OTV",
        "criteria": format!("Consent?_query=otv&providerid={provider_ura}&providertype={}",
                            s.provider_type),
        "channel": {"type": "rest-hook", "endpoint": s.endpoint,
                    "payload": "application/fhir+json"},
    });
    if s.failures > 0 {
        r["error"] = json!(format!(
            "{} notification(s) in a row not delivered",
            s.failures
        ));
    }
    r
}

/// The notification of `changed` consents for `s` (FHIR R4 Subscriptions Backport: a
/// `history` Bundle, its first entry the subscription status).
fn notification(s: &Subscription, changed: &[Value]) -> Value {
    let first = s.events + 1;
    let events: Vec<Value> = changed
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"name": "notification-event", "part": [
                {"name": "event-number", "valueString": (first + i as u64).to_string()},
                {"name": "focus", "valueReference": {"reference": format!("Consent/{}", c["id"].as_str().unwrap_or_default())}}]})
        })
        .collect();
    let mut params = vec![
        json!({"name": "subscription", "valueReference": {"reference": format!("Subscription/{}", s.id)}}),
        json!({"name": "topic", "valueCanonical": TOPIC}),
        json!({"name": "status", "valueCode": "active"}),
        json!({"name": "type", "valueCode": "event-notification"}),
        json!({"name": "events-since-subscription-start",
               "valueString": (s.events + changed.len() as u64).to_string()}),
    ];
    params.extend(events);
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{}", crate::identity::issuing::urn_uuid().trim_start_matches("urn:uuid:")),
        "resource": {"resourceType": "Parameters", "meta": {"profile": [STATUS_PROFILE]},
                     "parameter": params},
        "request": {"method": "GET", "url": format!("Subscription/{}/$status", s.id)},
        "response": {"status": "200"},
    })];
    for c in changed {
        let id = c["id"].as_str().unwrap_or_default();
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{id}"),
            "resource": c,
            "request": {"method": "PUT", "url": format!("Consent/{id}")},
            "response": {"status": "200"},
        }));
    }
    json!({"resourceType": "Bundle", "type": "history",
           "timestamp": knoop_did::knoop::time::to_rfc3339_ms(knoop_gossip::tx::now_ms()),
           "entry": entries})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Value {
        json!({"resourceType": "Subscription", "status": "requested", "reason": "OTV",
            "criteria": "Consent?_query=otv&patientid=999900109&providerid=99990011&providertype=Z3",
            "channel": {"type": "rest-hook", "endpoint": "https://ehr.example/notify",
                        "payload": "application/fhir+json", "header": ["Authorization: Bearer x"]}})
    }

    #[test]
    fn a_mitz_subscription_reads_as_knooppunt_checks_it() {
        let r = read_request(&request()).unwrap();
        assert_eq!(
            (
                r.bsn.as_str(),
                r.provider_ura.as_str(),
                r.provider_type.as_str()
            ),
            ("999900109", "99990011", "Z3")
        );
        assert_eq!(r.headers, ["Authorization: Bearer x"]);
        for (path, value) in [
            ("status", json!("active")),
            ("reason", json!("other")),
            ("criteria", json!("Patient?x=1")),
            (
                "criteria",
                json!("Consent?_query=otv&patientid=1&providertype=Z3"),
            ),
        ] {
            let mut s = request();
            s[path] = value;
            assert!(read_request(&s).is_err(), "{path}");
        }
        let mut s = request();
        s["channel"]["endpoint"] = json!("http://ehr.example/notify");
        assert!(read_request(&s).is_err(), "plain http off loopback");
        s["channel"]["endpoint"] = json!("http://127.0.0.1:8080/notify");
        assert!(read_request(&s).is_ok());
    }
}
