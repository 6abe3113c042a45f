//! "Get category C for patient P from every holder" (spec: `specs/data-fetch.md` §5): the
//! requester side in one RPC call, `POST /v1/data/fetch`. It localises the patient, finds each
//! holder node's public API in its DID, asks each for a nonce and a token (presenting the
//! requesting organisation's and the professional's credentials), fetches the resource types
//! of the granted categories, and merges everything into one FHIR searchset Bundle. Holder
//! nodes are asked in parallel, and a node that is down or refuses becomes an
//! `OperationOutcome` entry and a line in `sources`, never a failed answer.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use knoop_privacy::patient::PatientKeys;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::care::audit::{AuditLog, Event};
use crate::care::categories::served_types_of;
use crate::care::data_sets;
use crate::care::localisation::{LocError, Localisation};
use crate::care::requester::{public_url, RequestError, Requester, TokenAsk};
use crate::care::source::is_fhir_id;
use crate::directory::r4::visit_references;
use crate::identity::did_ops::DidOps;

/// Why a fetch could not start (a holder node that fails is reported in the answer instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("unknown category {0}")]
    UnknownCategory(String),
    #[error(transparent)]
    Lookup(#[from] LocError),
}

/// What to fetch, and as whom.
#[derive(Debug)]
pub struct FetchRequest {
    /// The requesting organisation (a tenant here).
    pub requester: String,
    /// Its organisation credential and the professional's credential.
    pub credentials: Vec<Value>,
    /// The use case, as the holders' policies name it.
    pub scope: String,
    /// Categories wanted; all the scope's categories a holder grants when absent.
    pub categories: Option<Vec<String>>,
    pub purpose: String,
    /// Why, for an emergency (break the glass).
    pub reason: Option<String>,
}

impl FetchRequest {
    /// Refuses categories nobody serves, before any work (key derivation included).
    pub fn check(&self) -> Result<(), FetchError> {
        match self
            .categories
            .iter()
            .flatten()
            .find(|c| !knoop_vc::types::DATA_CATEGORIES.contains(&c.as_str()))
        {
            Some(c) => Err(FetchError::UnknownCategory(c.clone())),
            None => Ok(()),
        }
    }
}

/// The requester side of data fetch.
pub struct Fetcher {
    dids: Arc<DidOps>,
    localisation: Arc<Localisation>,
    audit: Arc<AuditLog>,
    /// Asks other nodes' authorization servers for tokens, and their data proxies for data.
    requester: Arc<Requester>,
}

/// What every holder node is asked.
struct Ask {
    requester: String,
    credentials: Vec<Value>,
    scope: String,
    purpose: String,
    reason: Option<String>,
}

/// What one holder node gave.
#[derive(Debug, Clone, Serialize)]
struct SourceReport {
    node: String,
    /// `ok`, `partial`, `refused`, `unreachable`, `no_permitted_data`, `not_here`,
    /// `rate_limited`, `no_public_api` or `error`.
    status: String,
    holders: Vec<String>,
    resources: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    ms: u64,
}

/// The `OperationOutcome` entry that says how one holder node answered (every node has one,
/// so the Bundle alone tells which holders shared, which had nothing, which failed):
/// `information` for `ok` and `nothing_in_scope`, `warning` for a partial answer or no
/// permitted data, `error` otherwise.
fn source_outcome(r: &SourceReport) -> Value {
    let severity = match r.status.as_str() {
        "ok" | "nothing_in_scope" => "information",
        "partial" | "no_permitted_data" | "not_here" => "warning",
        _ => "error",
    };
    let code = match severity {
        "information" => "informational",
        "warning" => "incomplete",
        _ => "transient",
    };
    let mut diagnostics = format!("{}: {} ({} resources)", r.node, r.status, r.resources);
    if let Some(e) = &r.error {
        diagnostics.push_str(": ");
        diagnostics.push_str(e);
    }
    json!({
        "fullUrl": format!("urn:uuid:{}", crate::identity::issuing::urn_uuid().trim_start_matches("urn:uuid:")),
        "resource": {"resourceType": "OperationOutcome",
                     "issue": [{"severity": severity, "code": code,
                                "details": {"coding": [{"system": FETCH_STATUS, "code": r.status}]},
                                "diagnostics": diagnostics}]},
        "search": {"mode": "outcome"},
    })
}

/// The code system of a holder node's answer in a fetch Bundle.
pub const FETCH_STATUS: &str = "urn:knoop:fetch-status";

/// Makes the merged entries stand on their own (`specs/data-fetch.md` §5.1): for every patient
/// a holder's resources refer to (`Patient/<its source's id>`), a `Patient` entry with the
/// identifier the caller named the patient by, at the URL the relative reference resolves to
/// within the Bundle (the holder's FHIR base, from the entry's `fullUrl`, FHIR R4 §2.36.4.1).
/// The entries to add.
fn standalone(entries: &[Value], identifier: Option<(&str, &str)>) -> Vec<Value> {
    let Some((system, value)) = identifier else {
        return Vec::new();
    };
    let mut patients: BTreeSet<(String, String)> = BTreeSet::new();
    for e in entries {
        let r = &e["resource"];
        let (Some(full), Some(t), Some(id)) = (
            e["fullUrl"].as_str(),
            r["resourceType"].as_str(),
            r["id"].as_str(),
        ) else {
            continue;
        };
        let Some(base) = full.strip_suffix(&format!("/{t}/{id}")) else {
            continue;
        };
        visit_references(r, &mut |reference| {
            if let Some(local) = reference
                .strip_prefix("Patient/")
                .filter(|id| is_fhir_id(id))
            {
                patients.insert((format!("{base}/Patient/{local}"), local.to_owned()));
            }
        });
    }
    let present: BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e["fullUrl"].as_str())
        .collect();
    patients
        .into_iter()
        .filter(|(url, _)| !present.contains(url.as_str()))
        .map(|(url, id)| {
            json!({"fullUrl": url,
                   "resource": {"resourceType": "Patient", "id": id,
                                "identifier": [{"system": system, "value": value}]},
                   "search": {"mode": "include"}})
        })
        .collect()
}

/// Adds a holder node's entry, once per `fullUrl`: a resource two queries gave (a medication
/// two prescriptions include, the patient as a match and as an include) appears once, as a
/// match when it was one.
fn add_entry(entries: &mut Vec<Value>, e: &Value) {
    let same = e["fullUrl"]
        .as_str()
        .and_then(|u| entries.iter().position(|x| x["fullUrl"] == u));
    match same {
        Some(i) => {
            if e["search"]["mode"] == "match" {
                entries[i] = e.clone();
            }
        }
        None => entries.push(e.clone()),
    }
}

/// The professional's name in the presented credentials, for the holders' audit logs.
fn professional_name(credentials: &[Value]) -> String {
    credentials
        .iter()
        .find(|c| {
            c["type"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "HealthcareProfessionalCredential"))
        })
        .and_then(|c| c["credentialSubject"]["name"].as_str())
        .unwrap_or("unknown professional")
        .chars()
        .take(128)
        .collect()
}

impl Fetcher {
    pub fn new(
        dids: Arc<DidOps>,
        localisation: Arc<Localisation>,
        audit: Arc<AuditLog>,
        requester: Arc<Requester>,
    ) -> Self {
        Fetcher {
            dids,
            localisation,
            audit,
            requester,
        }
    }

    /// Localises the patient of `k`, asks every holder node for a token and the data, and
    /// merges the answers: `{patient, bundle, sources, ms}`. Audited as a `fetch` entry.
    /// `identifier` (`system`, `value`) is the patient as the caller named them: the Bundle
    /// includes the patient with it wherever a holder's resources refer to the patient
    /// (`specs/data-fetch.md` §5.1); it is not kept.
    pub async fn fetch(
        &self,
        req: FetchRequest,
        k: &PatientKeys,
        identifier: Option<(&str, &str)>,
    ) -> Result<Value, FetchError> {
        req.check()?;
        let t0 = Instant::now();
        let wanted: Option<BTreeSet<String>> =
            req.categories.clone().map(|c| c.into_iter().collect());
        let who = professional_name(&req.credentials);
        let FetchRequest {
            requester,
            credentials,
            scope,
            categories: _,
            purpose,
            reason,
        } = req;
        let req = Ask {
            requester,
            credentials,
            scope,
            purpose,
            reason,
        };
        let patient_ref = k.reference();
        let answers = self
            .localisation
            .lookup(&req.requester, k, &req.purpose, &who)
            .await?;
        let asks = answers.into_iter().map(|a| {
            let req_ref = &req;
            let patient_ref = patient_ref.clone();
            let wanted = wanted.clone();
            let span = tracing::info_span!("fetch_from", node = %a.node);
            async move {
                let t = Instant::now();
                let holders: Vec<String> = a.holdings.iter().map(|h| h.0.clone()).collect();
                let mut report = SourceReport {
                    node: a.node.clone(),
                    status: a.status.clone(),
                    holders,
                    resources: 0,
                    error: None,
                    ms: 0,
                };
                // Categories this node's holders share, narrowed to what was asked.
                let offered: BTreeSet<String> = a
                    .holdings
                    .iter()
                    .flat_map(|h| h.1.iter().cloned())
                    .filter(|c| wanted.as_ref().is_none_or(|w| w.contains(c)))
                    .collect();
                // In an emergency the holder may break the glass though the lookup found no
                // permitted data: ask for a token anyway.
                let emergency = req_ref.purpose == "emergency" && req_ref.reason.is_some();
                let ask_anyway = emergency && a.status == "no_permitted_data";
                let mut resources = Vec::new();
                if (a.status == "ok" && !offered.is_empty()) || ask_anyway {
                    match self
                        .ask_node(req_ref, &a.node, &patient_ref, wanted.as_ref())
                        .await
                    {
                        Ok((rs, partial)) => {
                            report.status =
                                if partial.is_empty() { "ok" } else { "partial" }.into();
                            if !partial.is_empty() {
                                report.error = Some(partial.join("; "));
                            }
                            resources = rs;
                        }
                        Err((status, e)) => {
                            report.status = status.into();
                            report.error = Some(e);
                        }
                    }
                } else if a.status == "ok" {
                    report.status = "nothing_in_scope".into();
                }
                report.resources = resources.len();
                report.ms = t.elapsed().as_millis() as u64;
                (report, resources)
            }
            .instrument(span)
        });
        let results = futures::future::join_all(asks).await;
        let mut entries = Vec::new();
        let mut outcomes = Vec::new();
        let mut sources = Vec::new();
        for (report, resources) in results {
            entries.extend(resources);
            outcomes.push(source_outcome(&report));
            sources.push(report);
        }
        let included = standalone(&entries, identifier);
        entries.extend(included);
        entries.extend(outcomes);
        let matches = entries
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .count();
        let ok = sources.iter().filter(|s| s.status == "ok").count();
        self.audit.append(Event {
            kind: "fetch".into(),
            peer: "local".into(),
            requester: req.requester.clone(),
            who,
            purpose: req.purpose.clone(),
            scope: req.scope.clone(),
            patient: patient_ref.clone(),
            outcome: format!(
                "fetched {matches} resources from {ok} of {} holder nodes",
                sources.len()
            ),
            categories: wanted.map(|w| w.into_iter().collect()).unwrap_or_default(),
            ..Default::default()
        });
        Ok(json!({
            "patient": patient_ref,
            "bundle": {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": matches,
                "entry": entries,
            },
            "sources": sources,
            "ms": t0.elapsed().as_millis() as u64,
        }))
    }

    /// Token and data from one holder node: the merged search entries, and the resource types
    /// that failed (a partial answer). Errors: (status, reason).
    async fn ask_node(
        &self,
        req: &Ask,
        node: &str,
        patient_ref: &str,
        wanted: Option<&BTreeSet<String>>,
    ) -> Result<(Vec<Value>, Vec<String>), (&'static str, String)> {
        let base = public_url(&self.dids, node).ok_or((
            "no_public_api",
            "the node publishes no public API".to_owned(),
        ))?;
        // RFC 7523 with DPoP at the node's authorization server (its RFC 8414 issuer, the
        // public base URL), as any client would ask it.
        let mut params = vec![
            ("patient".to_owned(), patient_ref.to_owned()),
            ("purpose".to_owned(), req.purpose.clone()),
        ];
        if let Some(r) = &req.reason {
            params.push(("reason".to_owned(), r.clone()));
        }
        let ask = TokenAsk {
            requester: req.requester.clone(),
            credentials: req.credentials.clone(),
            issuer: base.clone(),
            scope: req.scope.clone(),
            params,
            client: None,
            bearer: false,
        };
        let obtained = self.requester.token(&ask).await.map_err(|e| match e {
            RequestError::Unreachable(m) => ("unreachable", m),
            RequestError::RateLimited(_) => ("rate_limited", e.to_string()),
            RequestError::Refused {
                error, description, ..
            } => ("refused", format!("{error}: {description}")),
            e => ("error", e.to_string()),
        })?;
        let token = &obtained.response;
        let granted: BTreeSet<String> = token["holdings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.get(1)?.as_array().cloned())
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .filter(|c| wanted.is_none_or(|w| w.contains(c)))
            .collect();
        // The scope's data set: its queries a holder's grant can answer; otherwise each
        // resource type of the granted categories (`specs/data-sets.md` §6).
        let paths: Vec<String> = match data_sets::for_scope(&req.scope) {
            Some(d) => {
                let granted: Vec<String> = granted.iter().cloned().collect();
                d.queries
                    .iter()
                    .filter(|q| q.answerable_with(&granted))
                    .map(|q| match q.query_string() {
                        qs if qs.is_empty() => q.path(),
                        qs => format!("{}?{qs}", q.path()),
                    })
                    .collect()
            }
            None => {
                let mut types: Vec<&str> =
                    granted.iter().flat_map(|c| served_types_of(c)).collect();
                types.sort_unstable();
                types.dedup();
                types.into_iter().map(str::to_owned).collect()
            }
        };
        let gets = paths.into_iter().map(|t| {
            let url = format!("{base}/fhir/{t}");
            let obtained = &obtained;
            async move {
                let res = async {
                    let get = self
                        .requester
                        .get(obtained, &url)
                        .map_err(|e| e.to_string())?;
                    let resp = get
                        .send()
                        .await
                        .map_err(|e| crate::https::error_chain(&e))?;
                    let status = resp.status();
                    let v: Value = resp
                        .json()
                        .await
                        .map_err(|e| crate::https::error_chain(&e))?;
                    Ok::<_, String>((status, v))
                }
                .await;
                (t, res)
            }
        });
        let mut entries = Vec::new();
        let mut failed = Vec::new();
        for (t, res) in futures::future::join_all(gets).await {
            match res {
                Ok((s, bundle)) if s.is_success() && bundle["resourceType"] == "Bundle" => {
                    for e in bundle["entry"].as_array().into_iter().flatten() {
                        if e["search"]["mode"] == "outcome" {
                            failed.push(format!(
                                "{t}: {}",
                                e["resource"]["issue"][0]["diagnostics"]
                                    .as_str()
                                    .unwrap_or("source failed")
                            ));
                        } else {
                            add_entry(&mut entries, e);
                        }
                    }
                }
                Ok((s, v)) => failed.push(format!(
                    "{t}: {s}: {}",
                    v["issue"][0]["diagnostics"].as_str().unwrap_or("")
                )),
                Err(e) => failed.push(format!("{t}: {e}")),
            }
        }
        Ok((entries, failed))
    }
}
