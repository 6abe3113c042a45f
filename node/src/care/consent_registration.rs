//! Registering and revoking a patient's consent or objection (spec:
//! `specs/consent-localisation.md` §5): the registering organisation (a tenant here) issues a
//! `PatientConsentCredential` about the patient's pseudonym, it is checked as every holder will
//! check it, sent privately to the patient's holder nodes (and this node), and pointed to from
//! the patient's localisation slots so holders that come later find it.

use std::sync::Arc;

use knoop_did::knoop::time::to_rfc3339_ms;
use knoop_gossip::TxId;
use knoop_privacy::patient::PatientKeys;
use knoop_vc::proof::{sign, Cryptosuite, ProofOptions};
use knoop_vc::types::{claims, knoop_contexts, unsigned, Claims, PatientConsent, Selector};
use serde_json::Value;

use crate::care::consent::{ConsentRevocation, Consents, CONSENT_CONTENT_TYPE};
use crate::care::localisation::Localisation;
use crate::care::private::Private;
use crate::identity::credentials::{Revocation, REVOCATION_CONTENT_TYPE};
use crate::identity::did_ops::{DidOps, OpsError};

/// Why a registration or revocation failed. [`RegistrationError::code`] names it on the RPC.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    #[error("localisation is not configured")]
    NotConfigured,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Schema(String),
    #[error("{0}")]
    Proof(String),
    /// The consent would not be accepted by a holder (untrusted issuer, invalid credential).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Send(String),
    #[error("{0}")]
    Pointer(String),
    #[error("no such consent here")]
    NotFound,
    #[error("verify")]
    Task,
    #[error(transparent)]
    Ops(#[from] OpsError),
}

impl RegistrationError {
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationError::NotConfigured => "not_configured",
            RegistrationError::BadRequest(_) => "bad_request",
            RegistrationError::Schema(_) => "schema",
            RegistrationError::Proof(_) => "proof",
            RegistrationError::Refused(_) => "consent_refused",
            RegistrationError::Send(_) => "send",
            RegistrationError::Pointer(_) => "pointer",
            RegistrationError::NotFound => "not_found",
            RegistrationError::Task => "internal",
            RegistrationError::Ops(_) => "ops",
        }
    }
}

/// A consent or objection to register.
#[derive(Debug)]
pub struct ConsentRequest {
    /// The registering organisation: a tenant here with a trusted organisation credential.
    pub issuer: String,
    /// `true`: consent (permit); `false`: objection (deny).
    pub permit: bool,
    pub purpose: Vec<String>,
    pub data_categories: Vec<String>,
    pub holders: Option<Selector>,
    pub requesters: Option<Selector>,
    pub valid_until: Option<String>,
    pub registrar: Option<String>,
    pub method: String,
}

/// A registered consent.
pub struct Registered {
    pub credential: Value,
    pub tx: TxId,
    pub recipients: Vec<String>,
}

/// Registers and revokes consents as the tenants of this node.
pub struct ConsentRegistration {
    dids: Arc<DidOps>,
    consents: Arc<Consents>,
    localisation: Arc<Localisation>,
    private: Arc<Private>,
    node_did: String,
}

impl ConsentRegistration {
    pub fn new(
        dids: Arc<DidOps>,
        consents: Arc<Consents>,
        localisation: Arc<Localisation>,
        private: Arc<Private>,
        node_did: String,
    ) -> Self {
        ConsentRegistration {
            dids,
            consents,
            localisation,
            private,
            node_did,
        }
    }

    /// Issues, checks, sends and points to the consent `req` about the patient of `k`.
    pub async fn register(
        &self,
        req: ConsentRequest,
        k: &PatientKeys,
    ) -> Result<Registered, RegistrationError> {
        let network = self
            .localisation
            .network_id()
            .ok_or(RegistrationError::NotConfigured)?
            .to_owned();
        let c = PatientConsent {
            patient: k.reference(),
            permit: req.permit,
            purpose: req.purpose,
            data_categories: req.data_categories,
            holders: req.holders,
            requesters: req.requesters,
            registrar: req.registrar,
            method: req.method,
            network,
        };
        let now = knoop_gossip::tx::now_ms();
        let vc = unsigned(
            &crate::identity::issuing::urn_uuid(),
            &req.issuer,
            &Claims::PatientConsent(c),
            &to_rfc3339_ms(now),
            req.valid_until.as_deref(),
        );
        claims(&vc).map_err(|e| RegistrationError::Schema(e.to_string()))?;
        let contexts = knoop_contexts();
        let vc = self
            .dids
            .with_assertion_key(&req.issuer, |vm, key| {
                let mut opts = ProofOptions::new(Cryptosuite::EddsaJcs2022, vm);
                opts.created = Some(to_rfc3339_ms(now));
                sign(&vc, &opts, key, &contexts)
            })?
            .map_err(|e| RegistrationError::Proof(e.to_string()))?;
        // Check it as any holder will (a trusted issuer, a valid credential) before sending it.
        let consents = self.consents.clone();
        let (check_vc, issuer) = (vc.clone(), req.issuer.clone());
        tokio::task::spawn_blocking(move || consents.ingest(&check_vc, &issuer, Vec::new()))
            .await
            .map_err(|_| RegistrationError::Task)?
            .map_err(RegistrationError::Refused)?;
        let mut recipients = self.localisation.holder_nodes(k);
        recipients.push(self.node_did.clone());
        let bytes =
            serde_json::to_vec(&vc).map_err(|e| RegistrationError::BadRequest(e.to_string()))?;
        let tx = self
            .private
            .send_with(
                &req.issuer,
                recipients.clone(),
                CONSENT_CONTENT_TYPE,
                bytes,
                Some(*k.k_pat),
            )
            .await
            .map_err(|e| RegistrationError::Send(e.to_string()))?;
        self.consents
            .ingest(&vc, &req.issuer, recipients.clone())
            .map_err(RegistrationError::Refused)?;
        // A pointer in the patient's slots, for holders that come later.
        self.localisation
            .point_to(k, &tx)
            .await
            .map_err(|e| RegistrationError::Pointer(e.to_string()))?;
        Ok(Registered {
            credential: vc,
            tx,
            recipients,
        })
    }

    /// Revokes consent `credential` (issued by `issuer`) about the patient of `k`: sent to
    /// everyone who got it and to the patient's holder nodes now.
    pub async fn revoke(
        &self,
        issuer: &str,
        credential: String,
        reason: String,
        k: &PatientKeys,
    ) -> Result<TxId, RegistrationError> {
        let reference = k.reference();
        let stored = self
            .consents
            .of_patient(&reference)
            .into_iter()
            .find(|s| s.id == credential)
            .ok_or(RegistrationError::NotFound)?;
        let mut recipients = stored.recipients.clone();
        recipients.extend(self.localisation.holder_nodes(k));
        recipients.push(self.node_did.clone());
        let revocation = Revocation {
            credential,
            issuer: issuer.to_owned(),
            reason,
        };
        let body = ConsentRevocation {
            patient: reference.clone(),
            revocation: revocation.clone(),
        };
        let bytes =
            serde_json::to_vec(&body).map_err(|e| RegistrationError::BadRequest(e.to_string()))?;
        let tx = self
            .private
            .send_with(
                issuer,
                recipients,
                REVOCATION_CONTENT_TYPE,
                bytes,
                Some(*k.k_pat),
            )
            .await
            .map_err(|e| RegistrationError::Send(e.to_string()))?;
        self.consents
            .revoke(&reference, &revocation, issuer)
            .map_err(RegistrationError::BadRequest)?;
        self.localisation
            .point_to(k, &tx)
            .await
            .map_err(|e| RegistrationError::Pointer(e.to_string()))?;
        Ok(tx)
    }
}
