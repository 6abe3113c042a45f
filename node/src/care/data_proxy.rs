//! The data proxy (spec: `specs/data-fetch.md` §3): on the public API, `GET /fhir/{type}` with
//! an access token from this node. The proxy, not the caller, decides what is asked of the
//! source: the token's patient (as each holder's local id), the resource types of the granted
//! categories, and a short list of harmless search parameters. What comes back is filtered
//! again (right type, right patient), stamped with the holder it came from, and audited.

use std::sync::Arc;

use serde_json::{json, Value};

pub use crate::care::categories::{types_of, RESOURCE_CATEGORIES};

use crate::care::audit::{AuditLog, Event};
use crate::care::dpop::{DpopError, Expect};
use crate::care::localisation::Localisation;
use crate::care::pdp::Pdp;
use crate::care::source::{is_about, Sources};
use crate::care::tokens::{Grant, Tokens};

/// Search parameters a caller may add (everything else, `patient`, `subject`, `_include` and
/// chains among them, is refused).
pub const ALLOWED_PARAMS: [&str; 6] = [
    "_count",
    "_lastUpdated",
    "date",
    "status",
    "clinical-status",
    "code",
];

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
    #[error("{0} is too long")]
    ParamTooLong(String),
    #[error("the token does not cover {0}")]
    NotCovered(String),
    #[error("the token's patient is not a reference")]
    TokenPatient,
    #[error("{0} is not served to this token")]
    NotFound(String),
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
            ProxyError::ParamTooLong(_) => "too-long",
            ProxyError::NotCovered(_) => "forbidden",
            ProxyError::TokenPatient => "exception",
            ProxyError::NotFound(_) => "not-found",
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

    /// `GET /fhir/{resource_type}?{query}` with the access token as `presented`: checked,
    /// searched at each granted holder's source, merged, and audited (served or refused).
    pub async fn search(
        &self,
        token: Option<Presented<'_>>,
        resource_type: &str,
        query: Option<&str>,
    ) -> Result<Served, ProxyError> {
        let mut event = Event {
            kind: "data".into(),
            peer: "http".into(),
            ..Default::default()
        };
        let res = self
            .serve(token, resource_type, query, None, &mut event)
            .await;
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
        let res = self
            .serve(token, resource_type, None, Some(id), &mut event)
            .await
            .and_then(|s| {
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

    /// Checks the token and the request, has the PDP decide it (`specs/pdp.md` §6), searches
    /// each granted holder's source (with the caller's parameters, and `_id` for a read), and
    /// merges.
    async fn serve(
        &self,
        token: Option<Presented<'_>>,
        resource_type: &str,
        query: Option<&str>,
        read: Option<&str>,
        event: &mut Event,
    ) -> Result<Served, ProxyError> {
        let presented = token.ok_or(ProxyError::NoToken)?;
        let grant = self
            .tokens
            .introspect(presented.token)
            .ok_or(ProxyError::Expired)?;
        self.check_binding(&grant, &presented)?;
        event.requester = grant.requester.clone();
        event.who = grant.professional.clone();
        event.purpose = grant.purpose.clone();
        event.patient = grant.patient.clone();
        event.scope = grant.scope.clone();
        if !RESOURCE_CATEGORIES
            .iter()
            .any(|(t, _, _)| *t == resource_type)
        {
            return Err(ProxyError::NotServed(resource_type.to_owned()));
        }
        let mut params = caller_params(query)?;
        let decision = self
            .pdp
            .decide_proxy(
                &policy_request(&grant, resource_type, read, &params),
                &granted(&grant),
            )
            .await;
        if !decision.allow {
            let why: Vec<String> = decision
                .reasons
                .iter()
                .map(|r| r.description.clone())
                .collect();
            return Err(ProxyError::NotCovered(format!(
                "{resource_type} ({})",
                why.join("; ")
            )));
        }
        if let Some(id) = read {
            params.push(("_id".to_owned(), id.to_owned()));
        }
        let holders = holders_for(&grant, resource_type);
        let p = knoop_privacy::patient::parse_reference(&grant.patient)
            .ok_or(ProxyError::TokenPatient)?;
        event.categories = RESOURCE_CATEGORIES
            .iter()
            .filter(|(t, c, _)| {
                *t == resource_type && grant.holdings.iter().any(|(_, g)| g.iter().any(|x| x == c))
            })
            .map(|(_, c, _)| (*c).to_owned())
            .collect();
        let locals = self.localisation.source_patients(&p);
        let searches = holders.into_iter().map(|(holder, obs)| {
            let mut params = params.clone();
            if !obs.is_empty() {
                params.push(("category".into(), obs.join(",")));
            }
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
                    .search(&holder, resource_type, &local, &params)
                    .await
                    .map_err(|e| e.to_string());
                let found = found.map(|rs| {
                    rs.into_iter()
                        // The source is trusted to search, and checked anyway.
                        .filter(|r| r["resourceType"] == resource_type && is_about(r, &local))
                        .filter(|r| obs.is_empty() || in_observation_category(r, &obs))
                        .collect::<Vec<_>>()
                });
                (holder, found)
            }
        });
        let results = futures::future::join_all(searches).await;
        let mut entries = Vec::new();
        let mut failed = 0;
        for (holder, res) in results {
            match res {
                Ok(resources) => {
                    for mut r in resources {
                        let id = r["id"].as_str().unwrap_or_default().to_owned();
                        if let Some(o) = r.as_object_mut() {
                            let meta = o.entry("meta").or_insert_with(|| json!({}));
                            if let Some(m) = meta.as_object_mut() {
                                m.insert("source".into(), json!(holder));
                            }
                        }
                        entries.push(json!({
                            "fullUrl": format!("{}/fhir/{resource_type}/{id}", self.public_url.as_deref().unwrap_or("")),
                            "resource": r,
                            "search": {"mode": "match"},
                        }));
                    }
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(%holder, error = %e, "source search failed");
                    entries.push(json!({
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
        let served = entries.len() - failed;
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
}

/// Whether an Observation has one of the FHIR observation categories `codes`.
fn in_observation_category(r: &Value, codes: &[&str]) -> bool {
    r["category"].as_array().into_iter().flatten().any(|c| {
        c["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["code"].as_str().is_some_and(|code| codes.contains(&code)))
    })
}

/// The query a caller sent, checked against [`ALLOWED_PARAMS`].
fn caller_params(query: Option<&str>) -> Result<Vec<(String, String)>, ProxyError> {
    let mut out = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !ALLOWED_PARAMS.contains(&k.as_ref()) {
            return Err(ProxyError::ParamNotAllowed(k.into_owned()));
        }
        if v.len() > 256 {
            return Err(ProxyError::ParamTooLong(k.into_owned()));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

impl DataProxy {
    /// A DPoP-bound token comes with the `DPoP` scheme and a proof by its key for this request
    /// (RFC 9449 §7.1, §4.3); a bearer token with the `Bearer` scheme (§7.2).
    fn check_binding(&self, grant: &Grant, presented: &Presented<'_>) -> Result<(), ProxyError> {
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
            method: "GET",
            url: presented.url,
            access_token: Some(presented.token),
        };
        let p = self
            .tokens
            .dpop()
            .verify(proof, &expect, false)
            .map_err(ProxyError::Proof)?;
        if &p.jkt != jkt {
            return Err(ProxyError::OtherKey);
        }
        Ok(())
    }
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
/// `subject`, the FHIR request, and its context.
fn policy_request(
    grant: &Grant,
    resource_type: &str,
    read: Option<&str>,
    params: &[(String, String)],
) -> Value {
    let mut query: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (k, v) in params {
        query.entry(k).or_default().push(v);
    }
    let path = match read {
        Some(id) => format!("/{resource_type}/{id}"),
        None => format!("/{resource_type}"),
    };
    json!({
        "subject": {"scope": grant.scope, "client_id": grant.requester, "user_id": grant.professional,
                    "organization_did": grant.requester},
        "request": {"method": "GET", "protocol": "HTTP/1.1", "path": path, "query_params": query},
        "context": {"connection_type_code": "hl7-fhir-rest", "purpose_of_use": grant.purpose},
    })
}

/// The grant's holders that may share `resource_type`, with the FHIR observation categories
/// to restrict to (empty: no restriction).
fn holders_for(grant: &Grant, resource_type: &str) -> Vec<(String, Vec<&'static str>)> {
    let rows: Vec<_> = RESOURCE_CATEGORIES
        .iter()
        .filter(|(t, _, _)| *t == resource_type)
        .collect();
    grant
        .holdings
        .iter()
        .filter_map(|(holder, cats)| {
            let allowed: Vec<_> = rows
                .iter()
                .filter(|(_, c, _)| cats.iter().any(|g| g == c))
                .collect();
            if allowed.is_empty() {
                return None;
            }
            let obs: Vec<&'static str> = allowed.iter().filter_map(|(_, _, o)| *o).collect();
            Some((holder.clone(), obs))
        })
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
        }
    }

    #[test]
    fn every_category_has_resource_types_and_they_are_known() {
        for c in knoop_vc::types::DATA_CATEGORIES {
            assert!(!types_of(c).is_empty(), "{c} has no resource type");
        }
        assert_eq!(
            types_of("medication"),
            [
                "MedicationStatement",
                "MedicationRequest",
                "MedicationDispense"
            ]
        );
    }

    #[test]
    fn holders_get_only_types_of_their_granted_categories() {
        let g = grant(vec![("did:a", vec!["lab"]), ("did:b", vec!["medication"])]);
        assert_eq!(
            holders_for(&g, "Observation"),
            vec![("did:a".to_owned(), vec!["laboratory"])]
        );
        assert_eq!(
            holders_for(&g, "MedicationStatement"),
            vec![("did:b".to_owned(), vec![])]
        );
        assert!(holders_for(&g, "Condition").is_empty());
        let both = grant(vec![("did:a", vec!["lab", "vital-signs"])]);
        assert_eq!(
            holders_for(&both, "Observation"),
            vec![("did:a".to_owned(), vec!["laboratory", "vital-signs"])]
        );
    }

    #[test]
    fn callers_cannot_choose_the_patient_or_include_more() {
        for q in [
            "patient=Patient/1",
            "subject=Patient/1",
            "_include=*",
            "identifier=x",
            "patient.identifier=x",
            "_has:Condition:patient:code=1",
        ] {
            assert!(caller_params(Some(q)).is_err(), "{q}");
        }
        assert_eq!(
            caller_params(Some("_count=5&status=active")).unwrap(),
            vec![
                ("_count".to_owned(), "5".to_owned()),
                ("status".to_owned(), "active".to_owned())
            ]
        );
        assert!(caller_params(None).unwrap().is_empty());
    }

    #[test]
    fn observation_categories_are_checked_on_the_result() {
        let lab = json!({"category": [{"coding": [{"code": "laboratory"}]}]});
        assert!(in_observation_category(&lab, &["laboratory"]));
        assert!(!in_observation_category(&lab, &["vital-signs"]));
        assert!(!in_observation_category(&json!({}), &["laboratory"]));
    }
}
