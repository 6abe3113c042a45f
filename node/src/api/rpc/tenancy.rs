//! Whether a caller may act as a hosted organisation (`specs/rpc-clients.md` §2.1): the check
//! every tenant route's handler makes on the organisation its request names, and the audit
//! entry of a refusal. Who the caller is: [`super::caller`].

use axum::http::StatusCode;

use super::caller::{Caller, Scope};
use super::error::ApiError;
use super::state::RpcState;
use crate::care::audit::Event;

impl Caller {
    /// Whether this caller may act as `did`, a DID or a hosted DID's did:web id.
    pub fn may_act_as(&self, st: &RpcState, did: &str) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Tenants(dids) => {
                dids.contains(did)
                    || st.dids.web_alias(did).is_some_and(|w| dids.contains(&w))
                    || dids
                        .iter()
                        .any(|t| st.dids.web_alias(t).as_deref() == Some(did))
            }
        }
    }

    /// `Ok` when this caller may act as `did`; else the refusal, written to the audit log with
    /// the route it was made on.
    pub fn act_as(&self, st: &RpcState, did: &str) -> Result<(), Refusal> {
        if self.may_act_as(st, did) {
            return Ok(());
        }
        let route = self.route.as_str();
        tracing::warn!(client = %self.name, tenant = %did, route, "refused: not this client's tenant");
        st.audit.append(Event {
            kind: "api".into(),
            requester: did.to_owned(),
            who: format!("rpc client {}", self.name),
            purpose: route.to_owned(),
            outcome: "forbidden_tenant".into(),
            ..Event::default()
        });
        Err(Refusal {
            message: format!("the API credential of {} may not act as {did}", self.name),
        })
    }
}

/// An act-as refused: answered `403` in the route's own error format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden_tenant", r.message)
    }
}
