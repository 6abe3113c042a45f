//! The data proxy (spec: `specs/data-fetch.md` §3, `specs/data-sets.md` §5): on the public
//! API, `GET /fhir/{type}`, `GET /fhir/{type}/{id}` and `GET /fhir/Observation/$lastn` with an
//! access token from this node. The proxy, not the caller, decides what is asked of the
//! source: the token's patient (as each holder's local id), the narrowing parameters the caller
//! may add ([`query`]), each decided by the PDP (the built-in policies, the data set the scope
//! names, the scope's own policy). What comes back is filtered again per resource (right type,
//! right patient, a granted category, includes only as referenced: [`answer`]), stamped with
//! the holder it came from, and audited.

pub mod answer;
pub mod query;

use std::sync::Arc;

use serde_json::{json, Value};

pub use crate::care::categories::{types_of, RESOURCE_CATEGORIES};
pub use query::ALLOWED_PARAMS;

use crate::care::audit::{AuditLog, Event};
use crate::care::categories::{category_of, is_served, served_types_of};
use crate::care::dpop::{DpopError, Expect};
use crate::care::localisation::Localisation;
use crate::care::pdp::{Pdp, Workflow};
use crate::care::source::{Found, Sources};
use crate::care::tokens::{Grant, Tokens};
use answer::{admit, lastn, Holding};

/// Why a proxy request was refused. [`ProxyError::code`] is the FHIR issue type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("an access token from this node is required (Authorization: Bearer or DPoP)")]
    NoToken,
    #[error("the access token is unknown or expired")]
    Expired,
    #[error("the access token is bound to a key: send it as Authorization: DPoP with a proof")]
    BoundToken,
    #[error("the access token is a bearer token: send it as Authorization: Bearer")]
    NotBound,
    #[error("{0}")]
    Proof(DpopError),
    #[error("the DPoP proof is signed by another key than the one the token is bound to")]
    OtherKey,
    #[error("resource type {0} is not served")]
    NotServed(String),
    #[error(
        "search parameter {0} is not allowed here (the token fixes the patient; allowed: \
         {ALLOWED_PARAMS:?})"
    )]
    ParamNotAllowed(String),
    #[error("search parameter {0}")]
    BadParam(String),
    #[error("the patient parameter names another patient than the token's")]
    OtherPatient,
    #[error("{0} is too long")]
    ParamTooLong(String),
    #[error("the token does not cover {0}")]
    NotCovered(String),
    #[error("the token's patient is not a reference")]
    TokenPatient,
    #[error("{0} is not served to this token")]
    NotFound(String),
    #[error("the resource: {0}")]
    BadResource(String),
    #[error("the data holder's source system: {0}")]
    Source(String),
}

impl ProxyError {
    /// The FHIR `OperationOutcome.issue.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NoToken => "login",
            ProxyError::Expired => "expired",
            ProxyError::BoundToken
            | ProxyError::NotBound
            | ProxyError::Proof(_)
            | ProxyError::OtherKey => "security",
            ProxyError::NotServed(_) | ProxyError::ParamNotAllowed(_) => "not-supported",
            ProxyError::BadParam(_) => "invalid",
            ProxyError::OtherPatient => "forbidden",
            ProxyError::ParamTooLong(_) => "too-long",
            ProxyError::NotCovered(_) => "forbidden",
            ProxyError::TokenPatient => "exception",
            ProxyError::NotFound(_) => "not-found",
            ProxyError::BadResource(_) => "invalid",
            ProxyError::Source(_) => "transient",
        }
    }
}

impl From<query::ParamError> for ProxyError {
    fn from(e: query::ParamError) -> Self {
        match e {
            query::ParamError::NotAllowed(p) => ProxyError::ParamNotAllowed(p),
            query::ParamError::TooLong(p) => ProxyError::ParamTooLong(p),
            query::ParamError::Bad(p) => ProxyError::BadParam(p),
        }
    }
}

/// How a request presents its access token: the `Authorization` scheme and token, and for the
/// `DPoP` scheme the proof and the URL it must be for (RFC 9449 §7).
#[derive(Clone, Copy, Debug)]
pub struct Presented<'a> {
    pub token: &'a str,
    /// The `DPoP` scheme (else `Bearer`).
    pub dpop: bool,
    /// The `DPoP` header.
    pub proof: Option<&'a str>,
    /// The request's URL.
    pub url: &'a str,
}

/// What one proxy request served.
#[derive(Debug)]
pub struct Served {
    /// The searchset Bundle.
    pub bundle: Value,
    /// Resources in it.
    pub resources: usize,
    /// Holders whose source failed (an `OperationOutcome` entry each).
    pub failed: usize,
}

/// The data proxy of this node's public API.
pub struct DataProxy {
    tokens: Arc<Tokens>,
    /// Decides every request (the built-in policy and the scope's configured one).
    pdp: Arc<Pdp>,
    localisation: Arc<Localisation>,
    sources: Arc<Sources>,
    audit: Arc<AuditLog>,
    /// This node's public API base URL (for `fullUrl`).
    public_url: Option<String>,
}

impl DataProxy {
    pub fn new(
        tokens: Arc<Tokens>,
        pdp: Arc<Pdp>,
        localisation: Arc<Localisation>,
        sources: Arc<Sources>,
        audit: Arc<AuditLog>,
        public_url: Option<String>,
    ) -> Self {
        DataProxy {
            tokens,
            pdp,
            localisation,
            sources,
            audit,
            public_url,
        }
    }

    /// The URL of `path` on this node's public API (the `htu` its DPoP proofs name), `None`
    /// when the node has no public URL.
    pub fn url_of(&self, path: &str) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|b| format!("{}{path}", b.trim_end_matches('/')))
    }

    /// The DPoP nonce to hand out with an answer.
    pub fn dpop_nonce(&self) -> String {
        self.tokens.dpop().nonce()
    }

    /// `GET /fhir/{resource_type}[/${operation}]?{query}` with the access token as
    /// `presented`: checked, searched at each granted holder's source, merged, and audited
    /// (served or refused). The one operation is `Observation/$lastn`.
    pub async fn search(
        &self,
        token: Option<Presented<'_>>,
        resource_type: &str,
        operation: Option<&str>,
        query: Option<&str>,
    ) -> Result<Served, ProxyError> {
        let mut event = Event {
            kind: "data".into(),
            peer: "http".into(),
            ..Default::default()
        };
        let asked = Asked {
            resource_type,
            operation,
            query,
            read: None,
        };
        let res = self.serve(token, asked, &mut event).await;
        event.outcome = match &res {
            Ok(s) if s.failed == 0 => format!("served {} {resource_type}", s.resources),
            Ok(s) => format!(
                "served {} {resource_type}; {} source(s) failed",
                s.resources, s.failed
            ),
            Err(e) => format!("{}: {e}", e.code()),
        };
        self.audit.append(event);
        res
    }

    /// `GET /fhir/{resource_type}/{id}` (FHIR read) with the access token as `presented`: the
    /// resource, when a granted holder's source has it about the token's patient; so that the
    /// references in what the proxy served resolve. Audited as the search is.
    pub async fn read(
        &self,
        token: Option<Presented<'_>>,
        resource_type: &str,
        id: &str,
    ) -> Result<Value, ProxyError> {
        let mut event = Event {
            kind: "data".into(),
            peer: "http".into(),
            ..Default::default()
        };
        if !crate::directory::ids::is_fhir_id(id) {
            return Err(ProxyError::NotFound(format!("{resource_type}/{id}")));
        }
        if self.is_workflow(token.as_ref()) {
            let res = self
                .workflow(token, resource_type, id, None, &mut event)
                .await
                .map(|(_, r)| r);
            self.audit.append(event);
            return res;
        }
        let asked = Asked {
            resource_type,
            operation: None,
            query: None,
            read: Some(id),
        };
        let res = self.serve(token, asked, &mut event).await.and_then(|s| {
            s.bundle["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| &e["resource"])
                .find(|r| r["resourceType"] == resource_type && r["id"] == id)
                .cloned()
                .ok_or_else(|| ProxyError::NotFound(format!("{resource_type}/{id}")))
        });
        event.outcome = match &res {
            Ok(_) => format!("read {resource_type}/{id}"),
            Err(e) => format!("{}: {e}", e.code()),
        };
        self.audit.append(event);
        res
    }

    /// `PUT /fhir/{resource_type}/{id}` (FHIR update) with a workflow token: `resource` goes to
    /// the holder's source when its implied consents allow (`specs/data-sets.md` §8); the
    /// source's status and answer come back. Audited.
    pub async fn update(
        &self,
        token: Option<Presented<'_>>,
        resource_type: &str,
        id: &str,
        resource: Value,
    ) -> Result<(u16, Value), ProxyError> {
        let mut event = Event {
            kind: "data".into(),
            peer: "http".into(),
            ..Default::default()
        };
        let res = if !crate::directory::ids::is_fhir_id(id) {
            Err(ProxyError::NotFound(format!("{resource_type}/{id}")))
        } else {
            self.workflow(token, resource_type, id, Some(resource), &mut event)
                .await
        };
        if let Err(e) = &res {
            event.outcome = format!("{}: {e}", e.code());
        }
        self.audit.append(event);
        res
    }

    /// Whether the presented token is a workflow token (no patient).
    fn is_workflow(&self, token: Option<&Presented<'_>>) -> bool {
        token
            .and_then(|p| self.tokens.introspect(p.token))
            .is_some_and(|g| g.implied_consent.is_some() || g.notification)
    }

    /// A read (`resource` `None`) or an update of one resource with a workflow token: the
    /// token, its binding, the resource's type and id, the PDP with the holder's implied
    /// consents (`specs/data-sets.md` §8), then the holder's source. The audit `event` is
    /// filled in.
    async fn workflow(
        &self,
        token: Option<Presented<'_>>,
        resource_type: &str,
        id: &str,
        resource: Option<Value>,
        event: &mut Event,
    ) -> Result<(u16, Value), ProxyError> {
        let method = if resource.is_some() { "PUT" } else { "GET" };
        let presented = token.ok_or(ProxyError::NoToken)?;
        let grant = self
            .tokens
            .introspect(presented.token)
            .ok_or(ProxyError::Expired)?;
        self.check_binding(&grant, &presented, method)?;
        event.requester = grant.requester.clone();
        event.who = grant.professional.clone();
        event.purpose = grant.purpose.clone();
        event.scope = grant.scope.clone();
        let what = format!("{resource_type}/{id}");
        let (Some(consent_scope), Some((holder, _))) =
            (grant.implied_consent.as_deref(), grant.holdings.first())
        else {
            return Err(ProxyError::NotCovered(format!(
                "{what} (this token reads no data)"
            )));
        };
        if let Some(r) = &resource {
            if r["resourceType"] != resource_type || r["id"] != id {
                return Err(ProxyError::BadResource(format!(
                    "an update of {what} sends a {resource_type} with id {id} (FHIR R4 §3.1.0.4)"
                )));
            }
        }
        let api = json!({
            "subject": subject_of(&grant),
            "request": {"method": method, "protocol": "HTTP/1.1", "path": format!("/{what}")},
            "context": {"connection_type_code": "hl7-fhir-rest", "purpose_of_use": grant.purpose},
        });
        let decision = self
            .pdp
            .decide_workflow(&api, holder, Workflow::ImpliedConsent(consent_scope))
            .await;
        if !decision.allow {
            return Err(ProxyError::NotCovered(format!(
                "{what} ({})",
                decision.why()
            )));
        }
        let source = |e: crate::care::source::SourceError| ProxyError::Source(e.to_string());
        match resource {
            None => {
                let r = self
                    .sources
                    .read(holder, resource_type, id)
                    .await
                    .map_err(source)?
                    .ok_or_else(|| ProxyError::NotFound(what.clone()))?;
                event.outcome = format!("read {what}");
                Ok((200, r))
            }
            Some(r) => {
                let written = self
                    .sources
                    .write(holder, resource_type, Some(id), &r)
                    .await
                    .map_err(source)?;
                event.outcome = format!("updated {what}: {}", written.status);
                Ok((written.status, written.body))
            }
        }
    }

    /// Checks the token and the request, has the PDP decide it (`specs/pdp.md` §6), searches
    /// each granted holder's source (with the caller's parameters, and `_id` for a read), and
    /// merges what may leave (`specs/data-sets.md` §5).
    async fn serve(
        &self,
        token: Option<Presented<'_>>,
        asked: Asked<'_>,
        event: &mut Event,
    ) -> Result<Served, ProxyError> {
        let resource_type = asked.resource_type;
        let presented = token.ok_or(ProxyError::NoToken)?;
        let grant = self
            .tokens
            .introspect(presented.token)
            .ok_or(ProxyError::Expired)?;
        self.check_binding(&grant, &presented, "GET")?;
        event.requester = grant.requester.clone();
        event.who = grant.professional.clone();
        event.purpose = grant.purpose.clone();
        event.patient = grant.patient.clone();
        event.scope = grant.scope.clone();
        if grant.patient.is_empty() {
            return Err(ProxyError::NotCovered(format!(
                "searches of {resource_type} (this token reads single resources only)"
            )));
        }
        if !is_served(resource_type) {
            return Err(ProxyError::NotServed(resource_type.to_owned()));
        }
        if let Some(op) = asked.operation {
            if (op, resource_type) != ("lastn", "Observation") {
                return Err(ProxyError::NotServed(format!("{resource_type}/${op}")));
            }
        }
        let caller = query::parse(resource_type, asked.operation, asked.query)?;
        let decision = self
            .pdp
            .decide_proxy(
                &policy_request(&grant, &asked, &caller.given),
                &granted(&grant),
            )
            .await;
        if !decision.allow {
            return Err(ProxyError::NotCovered(format!(
                "{resource_type} ({})",
                decision.why()
            )));
        }
        let p = knoop_privacy::patient::parse_reference(&grant.patient)
            .ok_or(ProxyError::TokenPatient)?;
        let locals = self.localisation.source_patients(&p);
        let mut holders = holders_for(&grant, resource_type);
        // A patient parameter must name the token's patient at a holder: only that one is asked.
        if let Some(want) = &caller.patient {
            holders.retain(|(h, _)| locals.get(h) == Some(want));
            if holders.is_empty() {
                return Err(ProxyError::OtherPatient);
            }
        }
        let mut params = caller.params.clone();
        if let Some(id) = asked.read.filter(|_| resource_type != "Patient") {
            params.push(("_id".to_owned(), id.to_owned()));
        }
        if asked.operation.is_some() {
            params.push(("_sort".to_owned(), "-date".to_owned()));
        }
        let searches = holders.into_iter().map(|(holder, categories)| {
            let params = &params;
            let local = locals.get(&holder).cloned();
            async move {
                let Some(local) = local else {
                    return (
                        holder,
                        Err("the patient is not linked to this holder's source".to_owned()),
                    );
                };
                let found = self
                    .sources
                    .search(&holder, resource_type, &local, params)
                    .await
                    .map_err(|e| e.to_string())
                    .map(|found| {
                        let holding = Holding {
                            local: &local,
                            categories: &categories,
                        };
                        let mut found = admit(found, resource_type, holding);
                        if asked.operation.is_some() {
                            let matches = lastn(found.matches, caller.max);
                            found = admit(
                                Found {
                                    matches,
                                    included: found.included,
                                },
                                resource_type,
                                holding,
                            );
                        }
                        found
                    });
                (holder, found)
            }
        });
        let results = futures::future::join_all(searches).await;
        let mut entries = Vec::new();
        let mut included = Vec::new();
        let mut failed = 0;
        let mut categories = std::collections::BTreeSet::new();
        for (holder, res) in results {
            match res {
                Ok(found) => {
                    for (r, mode) in found
                        .matches
                        .into_iter()
                        .map(|r| (r, "match"))
                        .chain(found.included.into_iter().map(|r| (r, "include")))
                    {
                        if let Some(c) = category_of(&r) {
                            categories.insert(c.to_owned());
                        }
                        let entry = self.entry(r, &holder, mode);
                        if mode == "match" {
                            entries.push(entry);
                        } else {
                            included.push(entry);
                        }
                    }
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(%holder, error = %e, "source search failed");
                    included.push(json!({
                        "resource": {
                            "resourceType": "OperationOutcome",
                            "issue": [{"severity": "error", "code": "transient",
                                       "diagnostics": format!("{holder}: {e}")}],
                        },
                        "search": {"mode": "outcome"},
                    }));
                }
            }
        }
        event.categories = categories.into_iter().collect();
        let served = entries.len();
        entries.extend(included);
        let bundle = json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": served,
            "entry": entries,
        });
        Ok(Served {
            bundle,
            resources: served,
            failed,
        })
    }

    /// The Bundle entry of a resource `holder`'s source gave, stamped with the holder
    /// (`meta.source`) and at its URL on this proxy.
    fn entry(&self, mut r: Value, holder: &str, mode: &str) -> Value {
        let full_url = format!(
            "{}/fhir/{}/{}",
            self.public_url.as_deref().unwrap_or(""),
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default()
        );
        if let Some(o) = r.as_object_mut() {
            let meta = o.entry("meta").or_insert_with(|| json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.insert("source".into(), json!(holder));
            }
        }
        json!({"fullUrl": full_url, "resource": r, "search": {"mode": mode}})
    }
}

/// One request to the proxy, as routed.
#[derive(Clone, Copy, Debug)]
struct Asked<'a> {
    resource_type: &'a str,
    /// `lastn`.
    operation: Option<&'a str>,
    query: Option<&'a str>,
    /// A read of this id.
    read: Option<&'a str>,
}

impl DataProxy {
    fn check_binding(
        &self,
        grant: &Grant,
        presented: &Presented<'_>,
        method: &str,
    ) -> Result<(), ProxyError> {
        check_binding(&self.tokens, grant, presented, method)
    }
}

/// A DPoP-bound token comes with the `DPoP` scheme and a proof by its key for this request
/// (`method` on the presented URL; RFC 9449 §7.1, §4.3); a bearer token with the `Bearer`
/// scheme (§7.2).
pub fn check_binding(
    tokens: &Tokens,
    grant: &Grant,
    presented: &Presented<'_>,
    method: &str,
) -> Result<(), ProxyError> {
    let Some(jkt) = &grant.jkt else {
        return if presented.dpop {
            Err(ProxyError::NotBound)
        } else {
            Ok(())
        };
    };
    if !presented.dpop {
        return Err(ProxyError::BoundToken);
    }
    let proof = presented.proof.ok_or(ProxyError::Proof(DpopError::Header(
        "a DPoP proof is required with the DPoP scheme".into(),
    )))?;
    let expect = Expect {
        method,
        url: presented.url,
        access_token: Some(presented.token),
    };
    let p = tokens
        .dpop()
        .verify(proof, &expect, false)
        .map_err(ProxyError::Proof)?;
    if &p.jkt != jkt {
        return Err(ProxyError::OtherKey);
    }
    Ok(())
}

/// The categories the grant covers, at any of its holders.
fn granted(grant: &Grant) -> Vec<String> {
    let mut out: Vec<String> = grant
        .holdings
        .iter()
        .flat_map(|(_, c)| c.iter().cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The request in knooppunt's model for the PDP (`specs/pdp.md` §6): the token's claims as
/// `subject`, the FHIR request with the caller's parameters, and its context.
fn policy_request(grant: &Grant, asked: &Asked<'_>, params: &[(String, String)]) -> Value {
    let mut query: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (k, v) in params {
        query.entry(k).or_default().push(v);
    }
    let path = match (asked.read, asked.operation) {
        (Some(id), _) => format!("/{}/{id}", asked.resource_type),
        (None, Some(op)) => format!("/{}/${op}", asked.resource_type),
        (None, None) => format!("/{}", asked.resource_type),
    };
    json!({
        "subject": subject_of(grant),
        "request": {"method": "GET", "protocol": "HTTP/1.1", "path": path, "query_params": query},
        "context": {"connection_type_code": "hl7-fhir-rest", "purpose_of_use": grant.purpose},
    })
}

/// The token's claims as the PDP's `subject` (knooppunt's model).
pub(crate) fn subject_of(grant: &Grant) -> Value {
    json!({"scope": grant.scope, "client_id": grant.requester, "user_id": grant.professional,
           "organization_did": grant.requester})
}

/// The grant's holders that may share resources of `resource_type`, with the categories
/// granted at each (the patient itself: every holder that granted anything).
fn holders_for(grant: &Grant, resource_type: &str) -> Vec<(String, Vec<String>)> {
    grant
        .holdings
        .iter()
        .filter(|(_, cats)| {
            if resource_type == "Patient" {
                !cats.is_empty()
            } else {
                cats.iter()
                    .any(|c| served_types_of(c).contains(&resource_type))
            }
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(holdings: Vec<(&str, Vec<&str>)>) -> Grant {
        Grant {
            requester: "did:r".into(),
            professional: "did:p".into(),
            scope: "s".into(),
            patient: "urn:knoop:patient:x".into(),
            purpose: "regular-care".into(),
            holdings: holdings
                .into_iter()
                .map(|(h, c)| (h.to_owned(), c.into_iter().map(str::to_owned).collect()))
                .collect(),
            break_the_glass: false,
            issued_ms: 0,
            expires_ms: 0,
            id: "urn:uuid:x".into(),
            assertions: json!({}),
            jkt: None,
            client: None,
            implied_consent: None,
            notification: false,
            claims: Default::default(),
        }
    }

    #[test]
    fn holders_are_asked_only_for_types_of_their_granted_categories() {
        let g = grant(vec![
            ("did:a", vec!["lab"]),
            ("did:b", vec!["medication"]),
            ("did:c", vec![]),
        ]);
        let names = |v: Vec<(String, Vec<String>)>| -> Vec<String> {
            v.into_iter().map(|(h, _)| h).collect()
        };
        assert_eq!(names(holders_for(&g, "Observation")), ["did:a"]);
        assert_eq!(names(holders_for(&g, "MedicationStatement")), ["did:b"]);
        assert_eq!(names(holders_for(&g, "Immunization")), ["did:b"]);
        assert!(holders_for(&g, "Condition").is_empty());
        assert_eq!(names(holders_for(&g, "Patient")), ["did:a", "did:b"]);
        let summary = grant(vec![("did:a", vec!["summary"])]);
        assert_eq!(names(holders_for(&summary, "Observation")), ["did:a"]);
    }

    #[test]
    fn the_policy_request_names_the_operation_and_every_parameter() {
        let g = grant(vec![("did:a", vec!["lab"])]);
        let asked = Asked {
            resource_type: "Observation",
            operation: Some("lastn"),
            query: None,
            read: None,
        };
        let params = vec![
            ("code".to_owned(), "x".to_owned()),
            ("_include".to_owned(), "Observation:specimen".to_owned()),
            ("code".to_owned(), "y".to_owned()),
        ];
        let r = policy_request(&g, &asked, &params);
        assert_eq!(r["request"]["path"], "/Observation/$lastn");
        assert_eq!(r["request"]["query_params"]["code"], json!(["x", "y"]));
        let input = crate::care::pdp::input::policy_input(&r).unwrap();
        assert_eq!(input["action"]["fhir_rest"]["operation"], "lastn");
        assert_eq!(
            input["action"]["fhir_rest"]["include"],
            json!(["Observation:specimen"])
        );
    }
}
