//! The patient service (spec: `specs/patient-view.md`): a patient logs in with OpenID Connect;
//! the service derives their pseudonym, asks every holder node of the localisation index on
//! their behalf (`/knoop/patient/1`), and merges the answers into one view: who holds data on
//! them, who looked at it and why, and every consent about them. It registers their consents
//! and objections as its own organisation.

pub mod oidc;
pub mod sessions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use knoop_gossip::net::AskProtocol;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::care::consent::Consents;
use crate::care::consent_registration::{ConsentRegistration, ConsentRequest, RegistrationError};
use crate::care::localisation::{LocError, Localisation};
use crate::care::patient_access::{self, HolderView, PatientAccess};
use crate::care::private::Private;
use crate::identity::credentials::Credentials;
use crate::identity::did_ops::DidOps;

use oidc::LoginSecrets;
use sessions::{Session, Sessions};

/// How long a holder gets to answer.
const HOLDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a patient's request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatientError {
    #[error("the login expired or was already used; log in again")]
    UnknownLogin,
    #[error(transparent)]
    Oidc(#[from] oidc::OidcError),
    #[error("the patient's keys: {0}")]
    Keys(#[from] LocError),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
}

/// How patients prove who they are (spec §2). OpenID Connect ([`oidc::Client`]) is the one
/// knoop ships: DigiD reaches it through an OpenID Connect broker. A scheme that hands the BSN
/// over otherwise (encrypted for the relying party, for example) plugs in here.
pub trait Authenticator: Send + Sync {
    /// Where to send the browser to log in; the provider sends it back to `redirect_uri` with
    /// the login's `state`.
    fn authorization_url<'a>(
        &'a self,
        redirect_uri: &'a str,
        login: &'a LoginSecrets<'a>,
    ) -> futures::future::BoxFuture<'a, Result<String, oidc::OidcError>>;

    /// The patient the provider vouches for with `code`, for the login of `login`.
    fn authenticate<'a>(
        &'a self,
        code: &'a str,
        redirect_uri: &'a str,
        login: &'a LoginSecrets<'a>,
    ) -> futures::future::BoxFuture<'a, Result<oidc::IdClaims, oidc::OidcError>>;
}

impl Authenticator for oidc::Client {
    fn authorization_url<'a>(
        &'a self,
        redirect_uri: &'a str,
        login: &'a LoginSecrets<'a>,
    ) -> futures::future::BoxFuture<'a, Result<String, oidc::OidcError>> {
        Box::pin(async move {
            let d = self.discovery().await?;
            self.authorization_url_of(&d, redirect_uri, login)
        })
    }

    fn authenticate<'a>(
        &'a self,
        code: &'a str,
        redirect_uri: &'a str,
        login: &'a LoginSecrets<'a>,
    ) -> futures::future::BoxFuture<'a, Result<oidc::IdClaims, oidc::OidcError>> {
        Box::pin(async move {
            let token = self.exchange(code, login.verifier, redirect_uri).await?;
            self.verify(&token, login.nonce).await
        })
    }
}

/// The services the patient service calls.
pub struct Parts {
    pub ops: Arc<DidOps>,
    pub credentials: Arc<Credentials>,
    pub consents: Arc<Consents>,
    pub localisation: Arc<Localisation>,
    pub access: Arc<PatientAccess>,
    pub registration: Arc<ConsentRegistration>,
    pub private: Arc<Private>,
}

/// The patient service of this node.
pub struct PatientService {
    /// The service's organisation DID (a tenant here).
    pub organisation: String,
    /// Where the provider sends the browser back.
    pub redirect_uri: String,
    /// Whether the public API is HTTPS (the cookie is `Secure` then).
    pub secure: bool,
    login: Box<dyn Authenticator>,
    pub sessions: Sessions,
    parts: Parts,
}

/// One holder node's part of the view.
struct Answer {
    node: String,
    result: Result<HolderView, String>,
}

impl PatientService {
    pub fn new(
        organisation: String,
        public_url: &str,
        login: Box<dyn Authenticator>,
        parts: Parts,
    ) -> Self {
        PatientService {
            organisation,
            redirect_uri: format!("{}/patient/callback", public_url.trim_end_matches('/')),
            secure: public_url.starts_with("https://"),
            login,
            sessions: Sessions::default(),
            parts,
        }
    }

    /// Starts a login: where to send the browser, and the login's `state` (which the browser
    /// keeps in a cookie, so a callback is only taken from the browser that started it).
    pub async fn begin_login(&self, lang: &str) -> Result<(String, String), PatientError> {
        let (state, nonce) = (oidc::random_token(16), oidc::random_token(16));
        let verifier = zeroize::Zeroizing::new(oidc::random_token(32));
        let secrets = LoginSecrets {
            state: &state,
            nonce: &nonce,
            verifier: &verifier,
            lang,
        };
        let url = self
            .login
            .authorization_url(&self.redirect_uri, &secrets)
            .await?;
        self.sessions
            .begin(state.clone(), nonce, verifier, lang.to_owned());
        Ok((url, state))
    }

    /// Finishes a login: the new session's id and the patient's language.
    pub async fn finish_login(
        &self,
        state: &str,
        code: &str,
    ) -> Result<(String, String), PatientError> {
        let pending = self
            .sessions
            .take(state)
            .ok_or(PatientError::UnknownLogin)?;
        let secrets = LoginSecrets {
            state,
            nonce: &pending.nonce,
            verifier: &pending.verifier,
            lang: &pending.lang,
        };
        let claims = self
            .login
            .authenticate(code, &self.redirect_uri, &secrets)
            .await?;
        let keys = self
            .parts
            .localisation
            .derive_blocking(
                knoop_privacy::patient::BSN_SYSTEM.to_owned(),
                claims.bsn.to_string(),
            )
            .await?;
        drop(claims.bsn);
        info!(patient = %keys.reference(), "a patient logged in");
        let lang = pending.lang.clone();
        let id = self.sessions.start(Session::new(
            keys,
            claims.acr,
            claims.auth_time,
            pending.lang,
            sessions::SESSION_TTL,
        ));
        Ok((id, lang))
    }

    /// Asks every holder node of the patient (this one too, if it is one).
    async fn ask_holders(&self, s: &Session) -> Vec<Answer> {
        let loc = &self.parts.localisation;
        let patient = s.keys.reference();
        let own = loc.node_did().to_owned();
        let asks = loc.holder_nodes(&s.keys).into_iter().map(|node| {
            let patient = patient.clone();
            let own = own.clone();
            async move {
                let statement = patient_access::sign_statement(
                    &self.parts.ops,
                    &self.organisation,
                    &node,
                    &patient,
                    (s.acr.clone(), s.auth_time),
                );
                let result = match statement {
                    Err(e) => Err(format!("cannot sign the request: {e}")),
                    Ok(st) => {
                        let bytes = patient_access::request_bytes(st);
                        let raw = if node == own {
                            Ok(self.parts.access.decide("local", Some(&own), &bytes))
                        } else {
                            tokio::time::timeout(
                                HOLDER_TIMEOUT,
                                loc.ask_node(&node, AskProtocol::Patient, bytes),
                            )
                            .await
                            .unwrap_or_else(|_| Err("no answer in time".into()))
                            .map_err(|e| format!("unreachable: {e}"))
                        };
                        raw.and_then(|b| patient_access::parse_response(&b))
                    }
                };
                Answer { node, result }
            }
        });
        futures::future::join_all(asks).await
    }

    /// The patient's view (spec §4).
    pub async fn view(&self, s: &Session) -> Value {
        let patient = s.keys.reference();
        // Consents registered before this service saw the patient: adopted through their
        // pointers, so the next view has them here too.
        for tx in self.parts.localisation.consent_pointers(&s.keys) {
            if let Err(e) = self
                .parts
                .private
                .adopt_symmetric(&knoop_gossip::Hash32(tx), &s.keys.k_pat)
            {
                warn!(error = %e, "a consent pointer could not be followed");
            }
        }
        let answers = self.ask_holders(s).await;
        let name_of = |did: &str| self.parts.credentials.organisation(did);
        let mut holders = Vec::new();
        let mut accesses = Vec::new();
        let mut consents: BTreeMap<String, (Value, String)> = BTreeMap::new();
        for a in &answers {
            match &a.result {
                Err(why) => {
                    let status = if why.starts_with("unreachable") {
                        "unreachable"
                    } else {
                        "refused"
                    };
                    holders.push(json!({"node": a.node, "status": status, "reason": why,
                                        "organisations": []}));
                }
                Ok(v) => {
                    let orgs: Vec<Value> = v
                        .holdings
                        .iter()
                        .map(|h| {
                            let e = name_of(&h.organisation);
                            json!({"did": h.organisation,
                                   "name": e.as_ref().map(|e| e.legal_name.clone()),
                                   "city": e.as_ref().map(|e| e.city.clone()),
                                   "type": e.as_ref().map(|e| e.organization_type.clone()),
                                   "categories": h.categories})
                        })
                        .collect();
                    let org_names: Vec<Value> = orgs.iter().map(|o| o["name"].clone()).collect();
                    holders.push(json!({"node": a.node, "status": "ok", "organisations": orgs}));
                    for e in &v.accesses {
                        let r = name_of(&e.requester);
                        let result = result_of(&e.outcome);
                        accesses.push(json!({
                            "time": knoop_did::knoop::time::to_rfc3339_ms(e.time_ms),
                            "timeMs": e.time_ms,
                            "holderNode": a.node,
                            "holders": org_names,
                            "kind": e.kind,
                            "requester": {"did": e.requester,
                                          "name": r.as_ref().map(|r| r.legal_name.clone()),
                                          "type": r.as_ref().map(|r| r.organization_type.clone())},
                            "byThisService": e.requester == self.organisation,
                            "role": e.role,
                            "purpose": e.purpose,
                            "scope": e.scope,
                            "outcome": e.outcome,
                            "result": result,
                            "categories": e.categories,
                            "breakTheGlass": e.outcome == "granted_break_the_glass",
                            "reason": e.reason,
                            "hash": e.hash,
                            "seq": e.seq,
                        }));
                    }
                    for c in &v.consents {
                        let Ok(doc) = serde_json::from_str::<Value>(&c.credential) else {
                            continue;
                        };
                        merge_consent(&mut consents, doc, c.status.clone());
                    }
                }
            }
        }
        for c in self.parts.consents.of_patient(&patient) {
            let status = self.parts.consents.status(&c);
            merge_consent(&mut consents, c.credential, status);
        }
        accesses.sort_by_key(|a| std::cmp::Reverse(a["timeMs"].as_u64().unwrap_or(0)));
        let consents: Vec<Value> = consents
            .into_values()
            .map(|(doc, status)| self.consent_json(&doc, &status))
            .collect();
        json!({"patient": patient, "service": self.organisation,
               "holders": holders, "accesses": accesses, "consents": consents})
    }

    fn consent_json(&self, doc: &Value, status: &str) -> Value {
        let s = &doc["credentialSubject"];
        let issuer = doc["issuer"]
            .as_str()
            .or(doc["issuer"]["id"].as_str())
            .unwrap_or_default();
        let e = self.parts.credentials.organisation(issuer);
        json!({
            "id": doc["id"],
            "decision": s["decision"],
            "purpose": s["purpose"],
            "categories": s["dataCategories"],
            "holders": s["holders"],
            "requesters": s["requesters"],
            "issuer": {"did": issuer, "name": e.map(|e| e.legal_name)},
            "byThisService": issuer == self.organisation,
            "registrar": s["registrar"],
            "method": s["method"],
            "validFrom": doc["validFrom"],
            "validUntil": doc["validUntil"],
            "status": status,
        })
    }

    /// Registers a consent (`permit`) or objection (`deny`) for the patient (spec §5).
    pub async fn register(
        &self,
        s: &Session,
        decision: &str,
        purpose: Vec<String>,
        categories: Vec<String>,
    ) -> Result<Value, PatientError> {
        let permit = match decision {
            "permit" => true,
            "deny" => false,
            _ => {
                return Err(PatientError::BadRequest(
                    "decision is permit or deny".into(),
                ))
            }
        };
        let purpose = if purpose.is_empty() {
            vec!["regular-care".to_owned(), "emergency".to_owned()]
        } else {
            purpose
        };
        let categories = if categories.is_empty() {
            vec!["*".to_owned()]
        } else {
            categories
        };
        let done = self
            .parts
            .registration
            .register(
                ConsentRequest {
                    issuer: self.organisation.clone(),
                    permit,
                    purpose,
                    data_categories: categories,
                    holders: None,
                    requesters: None,
                    valid_until: None,
                    registrar: Some("patient".into()),
                    method: "portal".into(),
                },
                &s.keys,
            )
            .await?;
        info!(patient = %s.keys.reference(), permit, "a patient registered a consent record");
        Ok(self.consent_json(&done.credential, "active"))
    }

    /// Revokes a consent this service issued for the patient.
    pub async fn revoke(&self, s: &Session, id: &str) -> Result<(), PatientError> {
        let stored = self
            .parts
            .consents
            .of_patient(&s.keys.reference())
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| PatientError::BadRequest("no such consent registered here".into()))?;
        if stored.issuer != self.organisation {
            return Err(PatientError::BadRequest(
                "this consent was registered by a care organisation: it is withdrawn there, or \
                 overruled by an objection here"
                    .into(),
            ));
        }
        self.parts
            .registration
            .revoke(
                &self.organisation,
                id.to_owned(),
                "withdrawn by the patient".into(),
                &s.keys,
            )
            .await?;
        Ok(())
    }
}

/// How an audit outcome reads for the patient: `shared`, `refused` or `rate_limited`.
fn result_of(outcome: &str) -> &'static str {
    if outcome == "answered"
        || outcome == "granted"
        || outcome == "granted_break_the_glass"
        || (outcome.starts_with("served ") && !outcome.contains("failed"))
    {
        "shared"
    } else if outcome == "rate_limited" {
        "rate_limited"
    } else {
        "refused"
    }
}

/// Adds a consent to the merged set by its id; revoked anywhere means revoked.
fn merge_consent(set: &mut BTreeMap<String, (Value, String)>, doc: Value, status: String) {
    let Some(id) = doc["id"].as_str().map(str::to_owned) else {
        return;
    };
    match set.get_mut(&id) {
        Some((_, s)) if status == "revoked" => *s = status,
        Some(_) => {}
        None => {
            set.insert(id, (doc, status));
        }
    }
}

/// The accesses of a view as a FHIR R4 `Bundle` (`collection`) of `AuditEvent`s, with an
/// `OperationOutcome` for each holder that did not answer (spec §4).
pub fn audit_bundle(view: &Value) -> Value {
    let mut entries: Vec<Value> = Vec::new();
    for a in view["accesses"].as_array().into_iter().flatten() {
        let mut agents = vec![json!({
            "type": {"text": "requesting organisation"},
            "who": {"identifier": {"system": "urn:ietf:rfc:3986", "value": a["requester"]["did"]},
                    "display": a["requester"]["name"]},
            "requestor": true,
        })];
        if a["role"].as_str().is_some_and(|r| !r.is_empty()) {
            agents.push(json!({"type": {"text": "professional"},
                               "role": [{"coding": [{"code": a["role"]}]}], "requestor": true}));
        }
        let mut detail = vec![json!({"type": "hash", "valueString": a["hash"]})];
        if let Some(c) = a["categories"].as_array().filter(|c| !c.is_empty()) {
            let joined: Vec<&str> = c.iter().filter_map(Value::as_str).collect();
            detail.push(json!({"type": "categories", "valueString": joined.join(",")}));
        }
        if a["reason"].as_str().is_some_and(|r| !r.is_empty()) {
            detail.push(json!({"type": "break-the-glass reason", "valueString": a["reason"]}));
        }
        let resource = json!({
            "resourceType": "AuditEvent",
            "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110112", "display": "Query"},
            "subtype": [{"system": "https://w3id.org/knoop/audit", "code": a["kind"]}],
            "action": "E",
            "recorded": a["time"],
            "outcome": if a["result"] == "shared" { "0" } else { "4" },
            "outcomeDesc": a["outcome"],
            "purposeOfEvent": [{"text": a["purpose"]}],
            "agent": agents,
            "source": {"observer": {"identifier": {"system": "urn:ietf:rfc:3986", "value": a["holderNode"]}}},
            "entity": [{"what": {"identifier": {"system": "urn:knoop:patient", "value": view["patient"]}},
                        "detail": detail}],
        });
        entries.push(json!({"resource": resource}));
    }
    for h in view["holders"].as_array().into_iter().flatten() {
        if h["status"] != "ok" {
            entries.push(json!({"resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "transient",
                           "details": {"coding": [{"system": "https://w3id.org/knoop/patient-view", "code": h["status"]}]},
                           "diagnostics": format!("{}: {}", h["node"].as_str().unwrap_or_default(),
                                                  h["reason"].as_str().unwrap_or_default())}]
            }}));
        }
    }
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}
