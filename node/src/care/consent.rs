//! Patient consent on the node (spec: `specs/consent-localisation.md` §3–§5): the consent and
//! objection credentials this node has (issued here, or received as private transactions), their
//! revocations, and the decision a holder makes for one request under the network's consent
//! mode. Nothing here sees a patient identifier: consents name the pseudonymous reference.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use knoop_gossip::TxId;
use knoop_vc::types::{Claims, PatientConsent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::care::private::{Private, State};
use crate::identity::credentials::{Credentials, Fetched, Revocation, REVOCATION_CONTENT_TYPE};
use crate::store::NodeStore;

/// Inner content type of a consent sent privately.
pub const CONSENT_CONTENT_TYPE: &str = "application/vc";

/// A consent credential held here.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredConsent {
    pub credential: Value,
    pub issuer: String,
    pub id: String,
    pub revoked: bool,
    /// The node DIDs it was sent to (kept by the registering node, for the revocation).
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// One consent as it applies to a decision.
#[derive(Clone, Debug)]
pub struct Applicable {
    pub claims: PatientConsent,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
    pub revoked: bool,
}

/// The question a holder answers (spec §4).
pub struct Question<'a> {
    pub holder: &'a str,
    pub holder_type: Option<&'a str>,
    pub requester: &'a str,
    pub requester_type: Option<&'a str>,
    pub category: &'a str,
    pub purpose: &'a str,
    pub now_ms: i64,
}

fn applies(c: &Applicable, q: &Question) -> bool {
    let k = &c.claims;
    applies_to_pair(c, q)
        && (k.data_categories == ["*"] || k.data_categories.iter().any(|c| c == q.category))
}

/// Whether `c` is in force now and speaks of this holder, requester and purpose (any category).
fn applies_to_pair(c: &Applicable, q: &Question) -> bool {
    let k = &c.claims;
    !c.revoked
        && c.valid_from_ms.is_none_or(|f| f <= q.now_ms)
        && c.valid_until_ms.is_none_or(|u| q.now_ms < u)
        && k.purpose.iter().any(|p| p == q.purpose)
        && k.holders
            .as_ref()
            .is_none_or(|s| s.matches(q.holder, q.holder_type))
        && k.requesters
            .as_ref()
            .is_none_or(|s| s.matches(q.requester, q.requester_type))
}

/// Whether category `q.category` is shared: in opt-in mode, some applicable permit and no
/// applicable deny; in opt-out mode, no applicable deny. An objection always wins.
pub fn shared(opt_out: bool, consents: &[Applicable], q: &Question) -> bool {
    let mut permit = false;
    for c in consents.iter().filter(|c| applies(c, q)) {
        if !c.claims.permit {
            return false;
        }
        permit = true;
    }
    opt_out || permit
}

/// The closed question ("gesloten vraag" of Mitz; `specs/pdp.md` §5): may the requester get the
/// holder's data about the patient for the purpose, whatever its category (`q.category` is not
/// read)? No, when any objection in force names the pair and purpose, for any category (the
/// question cannot narrow to categories, so it does not guess); otherwise yes in opt-out mode,
/// and in opt-in mode only with a permit for every category (`*`).
pub fn closed_question(opt_out: bool, consents: &[Applicable], q: &Question) -> bool {
    let mut permit = false;
    for c in consents.iter().filter(|c| applies_to_pair(c, q)) {
        if !c.claims.permit {
            return false;
        }
        permit |= c.claims.data_categories == ["*"];
    }
    opt_out || permit
}

fn key(patient: &str, credential_id: &str) -> Vec<u8> {
    let p = knoop_privacy::patient::parse_reference(patient).unwrap_or_default();
    let h: [u8; 32] = Sha256::digest(credential_id.as_bytes()).into();
    [b"c/".as_slice(), &p, &h].concat()
}

/// The consents this node holds.
pub struct Consents {
    credentials: Arc<Credentials>,
    store: Arc<dyn NodeStore>,
    /// Private transactions already read.
    processed: Mutex<HashSet<TxId>>,
}

impl Consents {
    pub fn new(credentials: Arc<Credentials>, store: Arc<dyn NodeStore>) -> Self {
        Consents {
            credentials,
            store,
            processed: Mutex::new(HashSet::new()),
        }
    }

    /// Verifies a consent credential authored by `author` and keeps it. Returns its claims.
    pub fn ingest(
        &self,
        credential: &Value,
        author: &str,
        recipients: Vec<String>,
    ) -> Result<PatientConsent, String> {
        let v = self
            .credentials
            .verify(credential, &Fetched::default())
            .map_err(|e| format!("{}: {e}", e.code()))?;
        let Claims::PatientConsent(c) = v.claims else {
            return Err("not a PatientConsentCredential".into());
        };
        if v.issuer != author {
            return Err(format!(
                "sent by {author}, but issued by {}: only the issuer sends its consents",
                v.issuer
            ));
        }
        let id = v.id.ok_or("a consent credential has an id")?;
        let k = key(&c.patient, &id);
        let revoked = self.get(&k).map(|s| s.revoked).unwrap_or(false);
        let stored = StoredConsent {
            credential: credential.clone(),
            issuer: v.issuer,
            id,
            revoked,
            recipients,
        };
        self.put(&k, &stored)?;
        Ok(c)
    }

    fn get(&self, k: &[u8]) -> Option<StoredConsent> {
        serde_json::from_slice(&self.store.get_private(k).ok()??).ok()
    }

    fn put(&self, k: &[u8], s: &StoredConsent) -> Result<(), String> {
        let v = serde_json::to_vec(s).map_err(|e| e.to_string())?;
        self.store.put_private(k, &v).map_err(|e| e.to_string())
    }

    /// Marks a consent revoked, if `author` is its issuer.
    pub fn revoke(&self, patient: &str, r: &Revocation, author: &str) -> Result<(), String> {
        if r.issuer != author {
            return Err("only the issuer revokes its consent".into());
        }
        let k = key(patient, &r.credential);
        let mut s = self.get(&k).ok_or("no such consent here")?;
        if s.issuer != r.issuer {
            return Err("the revocation names another issuer".into());
        }
        s.revoked = true;
        self.put(&k, &s)
    }

    /// Every consent about `patient` (a reference) held here.
    pub fn of_patient(&self, patient: &str) -> Vec<StoredConsent> {
        let Some(p) = knoop_privacy::patient::parse_reference(patient) else {
            return Vec::new();
        };
        self.store
            .scan_private(&[b"c/".as_slice(), &p].concat())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect()
    }

    /// The consent with credential id `id` held here, whichever patient it is about.
    pub fn by_id(&self, id: &str) -> Option<StoredConsent> {
        let h: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        self.store
            .scan_private(b"c/")
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k.ends_with(&h))
            .find_map(|(_, v)| serde_json::from_slice(&v).ok())
    }

    /// The consents about `patient` that verify now (trust included), for decisions.
    pub fn applicable(&self, patient: &str) -> Vec<Applicable> {
        self.of_patient(patient)
            .into_iter()
            .filter_map(|s| {
                let v = self
                    .credentials
                    .verify(&s.credential, &Fetched::default())
                    .ok()?;
                let Claims::PatientConsent(claims) = v.claims else {
                    return None;
                };
                Some(Applicable {
                    claims,
                    valid_from_ms: v.valid_from_ms,
                    valid_until_ms: v.valid_until_ms,
                    revoked: s.revoked,
                })
            })
            .collect()
    }

    /// The status of a stored consent now.
    pub fn status(&self, s: &StoredConsent) -> String {
        if s.revoked {
            return "revoked".into();
        }
        match self.credentials.verify(&s.credential, &Fetched::default()) {
            Ok(_) => "active".into(),
            Err(e) => e.code().into(),
        }
    }

    /// Reads consents and revocations that arrived as private transactions: consents first,
    /// so a revocation read in the same round finds its consent; a revocation whose consent is
    /// not here yet is tried again next round.
    pub fn catch_up(&self, private: &Private) {
        let mut todo: Vec<(TxId, bool)> = private
            .list()
            .into_iter()
            .filter(|(id, rec)| {
                rec.state == State::Have && !self.processed.lock().is_ok_and(|p| p.contains(id))
            })
            .filter_map(|(id, rec)| match rec.content_type.as_deref() {
                Some(CONSENT_CONTENT_TYPE) => Some((id, true)),
                Some(REVOCATION_CONTENT_TYPE) => Some((id, false)),
                _ => None,
            })
            .collect();
        todo.sort_by_key(|(_, consent)| !consent);
        for (id, is_consent) in todo {
            let Some(m) = private.read(&id) else {
                continue;
            };
            let outcome = if is_consent {
                serde_json::from_slice::<Value>(&m.body)
                    .map_err(|e| e.to_string())
                    .and_then(|vc| self.ingest(&vc, &m.author, Vec::new()).map(|_| ()))
            } else {
                let r =
                    serde_json::from_slice::<ConsentRevocation>(&m.body).map_err(|e| e.to_string());
                match r {
                    Ok(r)
                        if self
                            .of_patient(&r.patient)
                            .iter()
                            .all(|s| s.id != r.revocation.credential) =>
                    {
                        debug!(tx = %id, "revocation before its consent; tried again later");
                        continue;
                    }
                    Ok(r) => self.revoke(&r.patient, &r.revocation, &m.author),
                    Err(e) => Err(e),
                }
            };
            match outcome {
                Ok(()) => info!(tx = %id, consent = is_consent, "consent record received"),
                Err(e) => warn!(tx = %id, error = %e, "consent record refused"),
            }
            if let Ok(mut p) = self.processed.lock() {
                p.insert(id);
            }
        }
    }
}

/// The body of a private consent revocation: the revocation and the patient it is about.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRevocation {
    pub patient: String,
    pub revocation: Revocation,
}

#[cfg(test)]
mod tests {
    use super::*;
    use knoop_vc::types::Selector;

    fn consent(permit: bool, cats: &[&str], purpose: &[&str]) -> Applicable {
        Applicable {
            claims: PatientConsent {
                patient: "urn:knoop:patient:x".into(),
                permit,
                purpose: purpose.iter().map(|s| s.to_string()).collect(),
                data_categories: cats.iter().map(|s| s.to_string()).collect(),
                holders: None,
                requesters: None,
                registrar: None,
                method: "written".into(),
                network: "n".into(),
            },
            valid_from_ms: Some(0),
            valid_until_ms: None,
            revoked: false,
        }
    }

    fn q<'a>(category: &'a str, purpose: &'a str) -> Question<'a> {
        Question {
            holder: "did:knoop:hospital",
            holder_type: Some("hospital"),
            requester: "did:knoop:gp",
            requester_type: Some("gp"),
            category,
            purpose,
            now_ms: 1_000,
        }
    }

    #[test]
    fn the_closed_question_reads_no_category_and_guesses_none() {
        let none: Vec<Applicable> = Vec::new();
        let question = q("ignored", "regular-care");
        assert!(!closed_question(false, &none, &question));
        assert!(closed_question(true, &none, &question));
        // A permit for some categories does not answer for all of them; one for `*` does.
        let some = vec![consent(true, &["medication"], &["regular-care"])];
        assert!(!closed_question(false, &some, &question));
        let all = vec![consent(true, &["*"], &["regular-care"])];
        assert!(closed_question(false, &all, &question));
        assert!(!closed_question(false, &all, &q("x", "emergency")));
        // An objection in any category answers no, in both modes.
        let lab = consent(false, &["lab"], &["regular-care"]);
        assert!(!closed_question(
            true,
            std::slice::from_ref(&lab),
            &question
        ));
        assert!(!closed_question(false, &[all[0].clone(), lab], &question));
    }

    #[test]
    fn opt_in_needs_a_permit_opt_out_an_absent_objection() {
        let none: Vec<Applicable> = Vec::new();
        assert!(!shared(false, &none, &q("medication", "regular-care")));
        assert!(shared(true, &none, &q("medication", "regular-care")));
        let permit = vec![consent(true, &["medication"], &["regular-care"])];
        assert!(shared(false, &permit, &q("medication", "regular-care")));
        assert!(!shared(false, &permit, &q("lab", "regular-care")));
        assert!(!shared(false, &permit, &q("medication", "emergency")));
        let deny = vec![consent(false, &["*"], &["regular-care", "emergency"])];
        assert!(!shared(true, &deny, &q("lab", "emergency")));
        // An objection wins over a permit.
        let both = vec![permit[0].clone(), deny[0].clone()];
        assert!(!shared(false, &both, &q("medication", "regular-care")));
        assert!(!shared(true, &both, &q("medication", "regular-care")));
    }

    #[test]
    fn revoked_expired_and_unmatched_consents_do_not_apply() {
        let mut c = consent(true, &["*"], &["regular-care"]);
        c.revoked = true;
        assert!(!shared(false, &[c.clone()], &q("lab", "regular-care")));
        c.revoked = false;
        c.valid_until_ms = Some(500);
        assert!(!shared(false, &[c.clone()], &q("lab", "regular-care")));
        c.valid_until_ms = None;
        c.claims.requesters = Some(Selector {
            organization_types: vec!["pharmacy".into()],
            organizations: vec![],
        });
        assert!(!shared(false, &[c.clone()], &q("lab", "regular-care")));
        c.claims.requesters = Some(Selector {
            organization_types: vec![],
            organizations: vec!["did:knoop:gp".into()],
        });
        assert!(shared(false, &[c.clone()], &q("lab", "regular-care")));
        c.claims.holders = Some(Selector {
            organization_types: vec!["gp".into()],
            organizations: vec![],
        });
        assert!(!shared(false, &[c], &q("lab", "regular-care")));
    }
}
