//! A holder's answers to patient services (spec: `specs/patient-view.md` §3): on
//! `/knoop/patient/1`, a trusted patient service hosted by the asking node presents a statement
//! it signed for one patient; the holder answers with what it holds on that patient, the audit
//! entries about them and the consents it enforces, and audits the request itself.
//!
//! Also the statement's format, which the patient service signs (`patient_service`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use knoop_did::document::Relationship;
use knoop_did::knoop::services::HOST_SERVICE_TYPE;
use knoop_vc::jws::{Compact, PublicJwk, SigningKey};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::care::audit::{AuditLog, Entry, Event};
use crate::care::consent::Consents;
use crate::care::localisation::Localisation;
use crate::identity::credentials::Credentials;
use crate::identity::did_ops::{DidOps, OpsError};
use crate::identity::did_state::DidState;

pub use crate::identity::credentials::PATIENT_SERVICE_ROLE;
/// The statement's media type (`typ`).
pub const STATEMENT_TYPE: &str = "knoop-patient-request+jwt";
/// The audit entry kind and purpose of a patient's view.
pub const AUDIT_KIND: &str = "patient";
pub const AUDIT_PURPOSE: &str = "patient-access";
/// Longest a statement may live, and the clock skew allowed either way (seconds).
const MAX_LIFE_S: i64 = 120;
const SKEW_S: i64 = 60;
/// How long a statement id is remembered against replays.
const JTI_MEMORY: Duration = Duration::from_secs(600);
/// Most audit entries and consents in one answer.
const MAX_ACCESSES: usize = 1000;
const MAX_CONSENTS: usize = 256;
/// Requests per second (and burst) a holder takes from one patient service.
const SERVICE_RATE: f64 = 50.0;
const SERVICE_BURST: f64 = 500.0;

/// `/knoop/patient/1`'s request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientRequest {
    /// The statement, a compact JWS.
    #[serde(rename = "s")]
    pub statement: String,
}

/// `/knoop/patient/1`'s response.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PatientResponse {
    Refused {
        #[serde(rename = "x")]
        reason: String,
    },
    View(HolderView),
}

/// What one holder node answers about the patient.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HolderView {
    #[serde(rename = "h")]
    pub holdings: Vec<Holding>,
    #[serde(rename = "a")]
    pub accesses: Vec<AccessEntry>,
    #[serde(rename = "c")]
    pub consents: Vec<ConsentEntry>,
}

/// A tenant holding data on the patient.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holding {
    #[serde(rename = "o")]
    pub organisation: String,
    #[serde(rename = "c")]
    pub categories: Vec<String>,
}

/// An audit entry as the patient sees it: without the professional's name, the peer or the
/// asking node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessEntry {
    #[serde(rename = "q")]
    pub seq: u64,
    #[serde(rename = "t")]
    pub time_ms: u64,
    #[serde(rename = "k")]
    pub kind: String,
    #[serde(rename = "r")]
    pub requester: String,
    #[serde(rename = "l")]
    pub role: String,
    #[serde(rename = "u")]
    pub purpose: String,
    #[serde(rename = "s")]
    pub scope: String,
    #[serde(rename = "o")]
    pub outcome: String,
    #[serde(rename = "c")]
    pub categories: Vec<String>,
    #[serde(rename = "b")]
    pub reason: String,
    #[serde(rename = "h")]
    pub hash: String,
}

impl From<Entry> for AccessEntry {
    fn from(e: Entry) -> Self {
        AccessEntry {
            seq: e.seq,
            time_ms: e.time_ms,
            kind: e.event.kind,
            requester: e.event.requester,
            role: e.event.role,
            purpose: e.event.purpose,
            scope: e.event.scope,
            outcome: e.event.outcome,
            categories: e.event.categories,
            reason: e.event.reason,
            hash: e.hash,
        }
    }
}

/// A consent held by the holder, with its status there now.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsentEntry {
    /// The credential, as JSON text.
    #[serde(rename = "v")]
    pub credential: String,
    #[serde(rename = "s")]
    pub status: String,
}

/// The statement's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

fn now_s() -> i64 {
    (knoop_gossip::tx::now_ms() / 1000) as i64
}

/// Signs a statement of patient service `service` (a tenant here) to holder node `holder`
/// about patient reference `patient`.
pub fn sign_statement(
    ops: &DidOps,
    service: &str,
    holder: &str,
    patient: &str,
    login: (Option<String>, Option<i64>),
) -> Result<String, OpsError> {
    let now = now_s();
    let mut jti = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut jti);
    let claims = Statement {
        iss: service.to_owned(),
        aud: holder.to_owned(),
        sub: patient.to_owned(),
        iat: now,
        exp: now + MAX_LIFE_S,
        jti: base64::Engine::encode(&base64::prelude::BASE64_URL_SAFE_NO_PAD, jti),
        acr: login.0,
        auth_time: login.1,
    };
    ops.with_assertion_key(service, |vm, key| {
        statement_jws(&SigningKey::Ed25519(key.clone()), vm, &claims)
    })
}

/// A statement signed with `key`, verification method `kid` (spec §3).
pub fn statement_jws(key: &SigningKey, kid: &str, claims: &Statement) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut header = Map::new();
    header.insert("kid".into(), kid.into());
    header.insert("typ".into(), STATEMENT_TYPE.into());
    key.sign_compact(header, &payload)
}

/// Answers `/knoop/patient/1` at a holder.
pub struct PatientAccess {
    dids: Arc<DidState>,
    credentials: Arc<Credentials>,
    localisation: Arc<Localisation>,
    consents: Arc<Consents>,
    audit: Arc<AuditLog>,
    node_did: String,
    /// Statement ids seen, with when they may be forgotten.
    seen: Mutex<HashMap<String, Instant>>,
    /// Per patient service.
    buckets: crate::care::buckets::Buckets,
}

impl PatientAccess {
    pub fn new(
        dids: Arc<DidState>,
        credentials: Arc<Credentials>,
        localisation: Arc<Localisation>,
        consents: Arc<Consents>,
        audit: Arc<AuditLog>,
        node_did: String,
    ) -> Self {
        PatientAccess {
            dids,
            credentials,
            localisation,
            consents,
            audit,
            node_did,
            seen: Mutex::new(HashMap::new()),
            buckets: crate::care::buckets::Buckets::new(SERVICE_RATE, SERVICE_BURST),
        }
    }

    /// Answers a request from `peer`.
    pub fn answer(&self, peer: &PeerId, request: &[u8]) -> Vec<u8> {
        let operator = self.dids.did_of_peer(&peer.to_string());
        self.decide(&peer.to_string(), operator.as_deref(), request)
    }

    /// The decision (spec §3), audited when the request decodes.
    pub fn decide(&self, peer: &str, operator: Option<&str>, request: &[u8]) -> Vec<u8> {
        let encode =
            |r: &PatientResponse| cbor4ii::serde::to_vec(Vec::new(), r).unwrap_or_default();
        let refuse = |why: &str| {
            encode(&PatientResponse::Refused {
                reason: why.to_owned(),
            })
        };
        let Ok(req) = cbor4ii::serde::from_slice::<PatientRequest>(request) else {
            return refuse("bad_request");
        };
        let unverified = Compact::parse(&req.statement)
            .ok()
            .and_then(|c| c.claims().ok())
            .and_then(|c| serde_json::from_value::<Statement>(Value::Object(c)).ok());
        let mut event = Event {
            kind: AUDIT_KIND.into(),
            peer: peer.to_owned(),
            operator: operator.map(str::to_owned),
            requester: unverified
                .as_ref()
                .map(|s| s.iss.clone())
                .unwrap_or_default(),
            purpose: AUDIT_PURPOSE.into(),
            ..Default::default()
        };
        let checked = self.check(operator, &req.statement);
        let (outcome, response) = match checked {
            Err(why) => (why.clone(), refuse(&why)),
            Ok(s) => {
                event.patient = s.sub.clone();
                if self.buckets.take(&s.iss) {
                    (
                        "answered".to_owned(),
                        encode(&PatientResponse::View(self.view(&s.sub))),
                    )
                } else {
                    ("rate_limited".to_owned(), refuse("rate_limited"))
                }
            }
        };
        if event.patient.is_empty() {
            // A refused statement's subject, if it named a well-formed one: the patient sees
            // refused attempts at their view too.
            if let Some(s) =
                unverified.filter(|s| knoop_privacy::patient::parse_reference(&s.sub).is_some())
            {
                event.patient = s.sub;
            }
        }
        event.outcome = outcome;
        self.audit.append(event);
        response
    }

    /// The statement's checks (spec §3 step 3): its claims, or the refusal's reason.
    fn check(&self, operator: Option<&str>, jws: &str) -> Result<Statement, String> {
        let bad = |_| "bad_request".to_owned();
        let c = Compact::parse(jws).map_err(bad)?;
        if c.header_str("typ") != Some(STATEMENT_TYPE) {
            return Err("bad_request".into());
        }
        let s: Statement = serde_json::from_value(Value::Object(c.claims().map_err(bad)?))
            .map_err(|_| "bad_request".to_owned())?;
        if knoop_privacy::patient::parse_reference(&s.sub).is_none() {
            return Err("bad_request".into());
        }
        if !self.credentials.holds_role(PATIENT_SERVICE_ROLE, &s.iss) {
            return Err("untrusted_service".into());
        }
        let operator = operator.ok_or("service_not_hosted_by_the_asking_node")?;
        let current = self.dids.current(&s.iss);
        let hosted = s.iss == operator
            || current.as_ref().is_some_and(|(_, doc)| {
                doc.service_of_type(HOST_SERVICE_TYPE)
                    .is_some_and(|svc| svc.service_endpoint == operator)
            });
        if !hosted {
            return Err("service_not_hosted_by_the_asking_node".into());
        }
        let kid = c.header_str("kid").unwrap_or_default();
        let key = current
            .as_ref()
            .filter(|_| kid.split('#').next() == Some(s.iss.as_str()))
            .and_then(|(_, doc)| doc.signing_key_for(kid, Relationship::AssertionMethod))
            .and_then(PublicJwk::from_multikey)
            .ok_or("bad_signature")?;
        c.verify(&key).map_err(|_| "bad_signature".to_owned())?;
        if s.aud != self.node_did {
            return Err("wrong_audience".into());
        }
        let now = now_s();
        if s.exp - s.iat > MAX_LIFE_S || now < s.iat - SKEW_S || now > s.exp + SKEW_S {
            return Err("expired".into());
        }
        let mut seen = self.seen.lock().map_err(|_| "bad_request".to_owned())?;
        let at = Instant::now();
        seen.retain(|_, until| *until > at);
        if seen.len() > 100_000 {
            return Err("rate_limited".into());
        }
        if seen
            .insert(format!("{}|{}", s.iss, s.jti), at + JTI_MEMORY)
            .is_some()
        {
            return Err("replayed".into());
        }
        Ok(s)
    }

    /// What this node has on the patient of reference `patient`.
    fn view(&self, patient: &str) -> HolderView {
        let Some(p) = knoop_privacy::patient::parse_reference(patient) else {
            return HolderView::default();
        };
        let holdings = self
            .localisation
            .tenants_holding(&p)
            .into_iter()
            .map(|(organisation, categories)| Holding {
                organisation,
                categories,
            })
            .collect();
        let accesses = self
            .audit
            .about_patient(&p, MAX_ACCESSES)
            .into_iter()
            .map(AccessEntry::from)
            .collect();
        let consents = self
            .consents
            .of_patient(patient)
            .into_iter()
            .take(MAX_CONSENTS)
            .map(|s| ConsentEntry {
                status: self.consents.status(&s),
                credential: s.credential.to_string(),
            })
            .collect();
        HolderView {
            holdings,
            accesses,
            consents,
        }
    }
}

/// The request bytes for a statement.
pub fn request_bytes(statement: String) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), &PatientRequest { statement }).unwrap_or_default()
}

/// A holder's answer decoded.
pub fn parse_response(bytes: &[u8]) -> Result<HolderView, String> {
    match cbor4ii::serde::from_slice::<PatientResponse>(bytes) {
        Ok(PatientResponse::View(v)) => Ok(v),
        Ok(PatientResponse::Refused { reason }) => Err(reason),
        Err(_) if bytes == knoop_gossip::wire::MISS => Err("not_a_member".into()),
        Err(e) => Err(format!("bad answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VECTORS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../specs/vectors/patient-view.json"
    );

    fn key() -> SigningKey {
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]))
    }

    fn claims() -> Statement {
        Statement {
            iss: "did:knoop:patient-service".into(),
            aud: "did:knoop:holder-node".into(),
            sub: knoop_privacy::patient::reference_of(&[0x50; 32]),
            iat: 1_800_000_000,
            exp: 1_800_000_120,
            jti: "AAECAwQFBgcICQoLDA0ODw".into(),
            acr: Some("urn:digid:substantieel".into()),
            auth_time: Some(1_799_999_990),
        }
    }

    fn view() -> HolderView {
        HolderView {
            holdings: vec![Holding {
                organisation: "did:knoop:gp".into(),
                categories: vec!["medication".into(), "allergies".into()],
            }],
            accesses: vec![AccessEntry {
                seq: 7,
                time_ms: 1_800_000_000_000,
                kind: "token".into(),
                requester: "did:knoop:emergency-department".into(),
                role: "01.010".into(),
                purpose: "emergency".into(),
                scope: "medication-overview".into(),
                outcome: "granted_break_the_glass".into(),
                categories: vec!["medication".into()],
                reason: "unconscious".into(),
                hash: "00".repeat(32),
            }],
            consents: vec![ConsentEntry {
                credential: r#"{"id":"urn:uuid:0"}"#.into(),
                status: "active".into(),
            }],
        }
    }

    fn generate() -> Value {
        let jws = statement_jws(&key(), "did:knoop:patient-service#key-1", &claims());
        let cbor =
            |r: &PatientResponse| hex::encode(cbor4ii::serde::to_vec(Vec::new(), r).unwrap());
        json!({
            "description": "/knoop/patient/1 (specs/patient-view.md §3): a statement signed with the Ed25519 key whose seed is 32 bytes 0x42, the request carrying it, an answer and a refusal, in CBOR. Checked by node/src/care/patient_access.rs; regenerate with KNOOP_REGEN_VECTORS=1.",
            "public_key": hex::encode(key().public_jwk().to_json()["x"].as_str().map(|x| base64::Engine::decode(&base64::prelude::BASE64_URL_SAFE_NO_PAD, x).unwrap()).unwrap()),
            "claims": claims(),
            "statement": jws,
            "request": hex::encode(request_bytes(jws.clone())),
            "view": serde_json::to_value(view()).unwrap(),
            "response": cbor(&PatientResponse::View(view())),
            "refused": cbor(&PatientResponse::Refused { reason: "untrusted_service".into() }),
        })
    }

    #[test]
    fn the_vectors_are_what_the_code_does() {
        let generated = generate();
        if std::env::var_os("KNOOP_REGEN_VECTORS").is_some() {
            std::fs::write(
                VECTORS,
                serde_json::to_string_pretty(&generated).unwrap() + "\n",
            )
            .unwrap();
        }
        let file: Value = serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
        assert_eq!(
            file, generated,
            "specs/vectors/patient-view.json differs from the code"
        );
        // The request decodes to the statement, which verifies with the public key.
        let req: PatientRequest =
            cbor4ii::serde::from_slice(&hex::decode(file["request"].as_str().unwrap()).unwrap())
                .unwrap();
        let c = Compact::parse(&req.statement).unwrap();
        let pk: [u8; 32] = hex::decode(file["public_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let jwk = PublicJwk::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&pk).unwrap());
        c.verify(&jwk).unwrap();
        assert_eq!(c.header_str("typ"), Some(STATEMENT_TYPE));
        let claims: Statement = serde_json::from_value(Value::Object(c.claims().unwrap())).unwrap();
        assert_eq!(claims, self::claims());
        // The answer and the refusal decode as a requester reads them.
        let v = parse_response(&hex::decode(file["response"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(serde_json::to_value(v).unwrap(), file["view"]);
        assert_eq!(
            parse_response(&hex::decode(file["refused"].as_str().unwrap()).unwrap()).err(),
            Some("untrusted_service".to_owned())
        );
        assert_eq!(
            parse_response(&knoop_gossip::wire::MISS).err(),
            Some("not_a_member".to_owned())
        );
    }
}
