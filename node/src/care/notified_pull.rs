//! Notified Pull notifications received (spec: `specs/data-sets.md` §8; Twiin's TA Notified
//! Pull, knooppunt's `eoverdracht-sd.puml` step 3): an organisation hosted here is told by a
//! sender that a workflow (eOverdracht, a BgZ referral) waits for it. The sender POSTs a
//! notification `Task` to `https://<public>/notified-pull/<organisation>/Task` with a token
//! of a notification scope (`eOverdracht-receiver`) from the organisation's own token
//! endpoint. The built-in policy `knoop.notification` (and a configured policy of the scope's
//! name) decides: the `Task` is a pull notification from the token's organisation to this one,
//! based on a workflow `Task`. The `Task` then goes to the organisation's EHR (its source
//! system's FHIR API, `POST <base>/Task`), whose answer comes back. Nothing is stored here;
//! every notification is audited.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::care::audit::{AuditLog, Event};
use crate::care::data_proxy::{check_binding, subject_of, Presented, ProxyError};
use crate::care::pdp::{Pdp, Workflow};
use crate::care::source::Sources;
use crate::care::tokens::Tokens;

/// Why a notification was refused: the token's ([`ProxyError`]), or the EHR's answer could not
/// be had.
pub type NotificationError = ProxyError;

/// The notification endpoints of the organisations hosted here.
pub struct NotifiedPull {
    tokens: Arc<Tokens>,
    pdp: Arc<Pdp>,
    sources: Arc<Sources>,
    audit: Arc<AuditLog>,
}

impl NotifiedPull {
    pub fn new(
        tokens: Arc<Tokens>,
        pdp: Arc<Pdp>,
        sources: Arc<Sources>,
        audit: Arc<AuditLog>,
    ) -> Self {
        NotifiedPull {
            tokens,
            pdp,
            sources,
            audit,
        }
    }

    /// A notification `task` for `organisation` (a hosted DID), with the token as
    /// `presented`: checked, decided, and handed to the organisation's EHR. The EHR's status
    /// and answer (`201` with the `Task` it created), or why not. Audited either way.
    pub async fn notify(
        &self,
        token: Option<Presented<'_>>,
        organisation: &str,
        task: Value,
    ) -> Result<(u16, Value), NotificationError> {
        let mut event = Event {
            kind: "notification".into(),
            peer: "http".into(),
            ..Default::default()
        };
        let res = self.deliver(token, organisation, task, &mut event).await;
        event.outcome = match &res {
            Ok((status, body)) => format!(
                "delivered to the EHR: {status} Task/{}",
                body["id"].as_str().unwrap_or("?")
            ),
            Err(e) => format!("{}: {e}", e.code()),
        };
        self.audit.append(event);
        res
    }

    async fn deliver(
        &self,
        token: Option<Presented<'_>>,
        organisation: &str,
        task: Value,
        event: &mut Event,
    ) -> Result<(u16, Value), NotificationError> {
        let presented = token.ok_or(ProxyError::NoToken)?;
        let grant = self
            .tokens
            .introspect(presented.token)
            .ok_or(ProxyError::Expired)?;
        check_binding(&self.tokens, &grant, &presented, "POST")?;
        event.requester = grant.requester.clone();
        event.who = grant.professional.clone();
        event.purpose = grant.purpose.clone();
        event.scope = grant.scope.clone();
        if !grant.notification {
            return Err(ProxyError::NotCovered(format!(
                "notifications (scope {} is no notification scope)",
                grant.scope
            )));
        }
        if !grant.holdings.iter().any(|(h, _)| h == organisation) {
            return Err(ProxyError::NotCovered(
                "notifications to this organisation (the token was granted by another)".into(),
            ));
        }
        if task["resourceType"] != "Task" {
            return Err(ProxyError::BadResource(
                "a notification is a FHIR Task".into(),
            ));
        }
        let api = json!({
            "subject": subject_of(&grant),
            "request": {"method": "POST", "protocol": "HTTP/1.1", "path": "/Task"},
            "context": {"connection_type_code": "hl7-fhir-rest", "purpose_of_use": grant.purpose},
        });
        let decision = self
            .pdp
            .decide_workflow(&api, organisation, Workflow::Notification(&task))
            .await;
        if !decision.allow {
            return Err(ProxyError::NotCovered(format!(
                "this notification ({})",
                decision.why()
            )));
        }
        let written = self
            .sources
            .write(organisation, "Task", None, &task)
            .await
            .map_err(|e| ProxyError::Source(e.to_string()))?;
        Ok((written.status, written.body))
    }
}
