//! The source systems of the organisations hosted here: FHIR R4 REST servers (spec:
//! `specs/data-fetch.md` §4). The node finds a patient's local id there once, at
//! registration (by identifier), and later searches one resource type for that patient on
//! behalf of a token holder. Responses are bounded; only `searchset` Bundles are accepted.

use std::collections::BTreeMap;

use reqwest::Url;
use serde_json::Value;

use crate::config::SourceConfig;

/// Largest response read from a source system.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Pages of one search followed at most.
const MAX_PAGES: usize = 10;
/// Entries asked per page.
const PAGE_SIZE: &str = "100";

/// Why a source call failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("no source system is configured for {0}")]
    NotConfigured(String),
    #[error("source unreachable: {0}")]
    Unreachable(String),
    #[error("source answered {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("source answered something other than FHIR: {0}")]
    Malformed(String),
    #[error("the identifier matches {0} patients at the source")]
    Ambiguous(usize),
}

pub use crate::directory::ids::is_fhir_id;

/// How a registration links the patient to the holder's source: the local id, or why none.
#[derive(Debug, Clone, Default)]
pub struct SourceLink {
    pub patient: Option<String>,
    pub note: Option<String>,
}

/// The source systems, by tenant.
pub struct Sources {
    default: Option<Url>,
    tenants: BTreeMap<String, Url>,
    http: reqwest::Client,
}

fn base_url(u: &str) -> Option<Url> {
    // A base without a trailing slash would lose its last segment when joined.
    Url::parse(&format!("{}/", u.trim_end_matches('/'))).ok()
}

impl Sources {
    pub fn new(cfg: &SourceConfig) -> Result<Self, crate::https::ClientError> {
        let http = crate::https::client(cfg.ca_file.as_deref(), cfg.timeout)?;
        Ok(Sources {
            default: cfg.fhir.as_deref().and_then(base_url),
            tenants: cfg
                .tenants
                .iter()
                .filter_map(|(d, u)| Some((d.clone(), base_url(u)?)))
                .collect(),
            http,
        })
    }

    /// The FHIR base of `tenant`'s source system.
    pub fn base(&self, tenant: &str) -> Result<&Url, SourceError> {
        self.tenants
            .get(tenant)
            .or(self.default.as_ref())
            .ok_or_else(|| SourceError::NotConfigured(tenant.to_owned()))
    }

    /// Finds the patient (`system|value`) at `holder`'s source system, while the identifier is
    /// in memory; a patient not found, an ambiguous match or a failing source is a note, not an
    /// error (the registration goes ahead without a link).
    pub async fn link(&self, holder: &str, system: &str, value: &str) -> SourceLink {
        if !self.configured(holder) {
            return SourceLink {
                patient: None,
                note: Some("no source system is configured for this holder".to_owned()),
            };
        }
        match self.find_patient(holder, system, value).await {
            Ok(Some(id)) if is_fhir_id(&id) => SourceLink {
                patient: Some(id),
                note: None,
            },
            Ok(_) => SourceLink {
                patient: None,
                note: Some("the patient was not found at the source system".to_owned()),
            },
            Err(e) => SourceLink {
                patient: None,
                note: Some(e.to_string()),
            },
        }
    }

    /// Whether `tenant` has a source system.
    pub fn configured(&self, tenant: &str) -> bool {
        self.base(tenant).is_ok()
    }

    async fn get(&self, url: Url) -> Result<Value, SourceError> {
        let resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .send()
            .await
            .map_err(|e| SourceError::Unreachable(crate::https::error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = read_capped(resp).await?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| SourceError::Malformed(format!("not JSON: {e}")))?;
        if status != 200 {
            return Err(SourceError::Status {
                status,
                detail: outcome_detail(&v),
            });
        }
        Ok(v)
    }

    /// The local id of the patient with identifier `system|value` at `tenant`'s source.
    pub async fn find_patient(
        &self,
        tenant: &str,
        system: &str,
        value: &str,
    ) -> Result<Option<String>, SourceError> {
        let mut url = self
            .base(tenant)?
            .join("Patient")
            .map_err(|e| SourceError::Malformed(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("identifier", &format!("{system}|{value}"));
        let bundle = self.get(url).await?;
        let ids: Vec<String> = entries(&bundle)?
            .matches
            .iter()
            .filter(|r| r["resourceType"] == "Patient")
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect();
        match ids.len() {
            0 => Ok(None),
            1 => Ok(ids.into_iter().next()),
            n => Err(SourceError::Ambiguous(n)),
        }
    }

    /// Every `resource_type` resource of `patient` (a local id) at `tenant`'s source that
    /// matches `params`, following the source's `next` links on the same origin.
    pub async fn search(
        &self,
        tenant: &str,
        resource_type: &str,
        patient: &str,
        params: &[(String, String)],
    ) -> Result<Found, SourceError> {
        let base = self.base(tenant)?;
        let mut url = base
            .join(resource_type)
            .map_err(|e| SourceError::Malformed(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            if resource_type == "Patient" {
                q.append_pair("_id", patient);
            } else {
                q.append_pair("patient", &format!("Patient/{patient}"));
            }
            q.append_pair("_count", PAGE_SIZE);
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        self.pages(base, url).await
    }

    /// The entries of the searchset at `url` and its `next` pages on `base`'s origin (at most
    /// `MAX_PAGES`).
    async fn pages(&self, base: &Url, mut url: Url) -> Result<Found, SourceError> {
        let mut out = Found::default();
        for _ in 0..MAX_PAGES {
            let bundle = self.get(url.clone()).await?;
            let page = entries(&bundle)?;
            out.matches.extend(page.matches);
            out.included.extend(page.included);
            let next = bundle["link"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["relation"] == "next")
                .and_then(|l| l["url"].as_str())
                .and_then(|u| Url::parse(u).ok());
            match next {
                Some(n) if n.origin() == base.origin() => url = n,
                _ => break,
            }
        }
        Ok(out)
    }

    /// The identifiers of patient `id` at `tenant`'s source (`GET Patient/<id>?_elements=
    /// identifier`: the policy information point's BSN lookup, `specs/pdp.md` §6).
    pub async fn patient_identifiers(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Vec<Value>, SourceError> {
        if !is_fhir_id(id) {
            return Err(SourceError::Malformed(format!("{id} is not a FHIR id")));
        }
        let mut url = self.resource_url(tenant, "Patient", Some(id))?;
        url.query_pairs_mut().append_pair("_elements", "identifier");
        let patient = self.get(url).await?;
        if patient["resourceType"] != "Patient" {
            return Err(SourceError::Malformed("expected a Patient".into()));
        }
        Ok(patient["identifier"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The `Consent` resources at `tenant`'s source that govern `reference` (`GET
    /// Consent?data=<reference>`, every page: the implied consent of `specs/pdp.md` §6).
    pub async fn consents_about(
        &self,
        tenant: &str,
        reference: &str,
    ) -> Result<Vec<Value>, SourceError> {
        let base = self.base(tenant)?;
        let mut url = base
            .join("Consent")
            .map_err(|e| SourceError::Malformed(e.to_string()))?;
        url.query_pairs_mut().append_pair("data", reference);
        Ok(self.pages(base, url).await?.matches)
    }
}

/// The answer of a source to a write: its status and FHIR body (the resource, or its
/// `OperationOutcome` for a refusal).
#[derive(Debug)]
pub struct Written {
    pub status: u16,
    pub body: Value,
}

impl Sources {
    /// `GET <base>/<type>/<id>` at `tenant`'s source: the resource, unchanged (whatever its
    /// FHIR version), when it is of that type and id; `Ok(None)` for a `404` or `410`.
    pub async fn read(
        &self,
        tenant: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<Value>, SourceError> {
        let url = self.resource_url(tenant, resource_type, Some(id))?;
        match self.get(url).await {
            Ok(r) if r["resourceType"] == resource_type && r["id"] == id => Ok(Some(r)),
            Ok(_) => Err(SourceError::Malformed(format!(
                "expected {resource_type}/{id}"
            ))),
            Err(SourceError::Status {
                status: 404 | 410, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT <base>/<type>/<id>` (FHIR update) or, without `id`, `POST <base>/<type>` (create)
    /// of `resource` at `tenant`'s source: the source's status and answer, refusals included
    /// (a `4xx` of the source is its verdict on the resource, passed on).
    pub async fn write(
        &self,
        tenant: &str,
        resource_type: &str,
        id: Option<&str>,
        resource: &Value,
    ) -> Result<Written, SourceError> {
        let url = self.resource_url(tenant, resource_type, id)?;
        let req = match id {
            Some(_) => self.http.put(url),
            None => self.http.post(url),
        };
        let resp = req
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
            .body(resource.to_string())
            .send()
            .await
            .map_err(|e| SourceError::Unreachable(crate::https::error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = read_capped(resp).await?;
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| SourceError::Malformed(format!("not JSON: {e}")))?
        };
        if !(200..500).contains(&status) {
            return Err(SourceError::Status {
                status,
                detail: outcome_detail(&body),
            });
        }
        Ok(Written { status, body })
    }

    fn resource_url(
        &self,
        tenant: &str,
        resource_type: &str,
        id: Option<&str>,
    ) -> Result<Url, SourceError> {
        let valid_type = !resource_type.is_empty()
            && resource_type.bytes().all(|b| b.is_ascii_alphabetic())
            && resource_type.starts_with(|c: char| c.is_ascii_uppercase());
        if !valid_type || id.is_some_and(|i| !is_fhir_id(i)) {
            return Err(SourceError::Malformed(format!(
                "{resource_type}/{} is not a FHIR type and id",
                id.unwrap_or_default()
            )));
        }
        let path = match id {
            Some(i) => format!("{resource_type}/{i}"),
            None => resource_type.to_owned(),
        };
        self.base(tenant)?
            .join(&path)
            .map_err(|e| SourceError::Malformed(e.to_string()))
    }
}

/// What a search found: its matches, and the resources its `_include`s brought.
#[derive(Debug, Default)]
pub struct Found {
    pub matches: Vec<Value>,
    pub included: Vec<Value>,
}

fn entries(bundle: &Value) -> Result<Found, SourceError> {
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "searchset" {
        return Err(SourceError::Malformed("expected a searchset Bundle".into()));
    }
    let mut found = Found::default();
    for e in bundle["entry"].as_array().into_iter().flatten() {
        let Some(r) = e.get("resource").cloned() else {
            continue;
        };
        match e["search"]["mode"].as_str().unwrap_or("match") {
            "match" => found.matches.push(r),
            "include" => found.included.push(r),
            _ => {}
        }
    }
    Ok(found)
}

/// What a source's `OperationOutcome` says (its first issue's diagnostics or details), at most
/// 200 characters, for an error message.
fn outcome_detail(outcome: &Value) -> String {
    let issue = &outcome["issue"][0];
    issue["diagnostics"]
        .as_str()
        .or(issue["details"]["text"].as_str())
        .unwrap_or("no details")
        .chars()
        .take(200)
        .collect()
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, SourceError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| SourceError::Unreachable(crate::https::error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(SourceError::Malformed(format!(
                "response larger than {MAX_RESPONSE} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether `resource` is about local patient `patient`: the patient itself, or its `subject`,
/// `patient` or `beneficiary` (`Coverage`), or an `Appointment` participant, names them.
pub fn is_about(resource: &Value, patient: &str) -> bool {
    if resource["resourceType"] == "Patient" {
        return resource["id"] == patient;
    }
    let want = format!("Patient/{patient}");
    let names = |r: &Value| {
        r["reference"]
            .as_str()
            .is_some_and(|r| r == want || r.ends_with(&format!("/{want}")))
    };
    ["subject", "patient", "beneficiary"]
        .iter()
        .any(|f| names(&resource[f]))
        || (resource["resourceType"] == "Appointment"
            && resource["participant"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| names(&p["actor"])))
}

/// Whether `resource` names a patient at all (`subject`, `patient`, `beneficiary`): a
/// supporting resource that does is served only about the token's patient.
pub fn names_a_patient(resource: &Value) -> bool {
    ["subject", "patient", "beneficiary"].iter().any(|f| {
        resource[f]["reference"]
            .as_str()
            .is_some_and(|r| r.starts_with("Patient/") || r.contains("/Patient/"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fhir_ids() {
        assert!(is_fhir_id("abc-1.2"));
        assert!(!is_fhir_id(""));
        assert!(!is_fhir_id("a/b"));
        assert!(!is_fhir_id(&"a".repeat(65)));
    }

    use serde_json::json;

    #[test]
    fn is_about_matches_relative_and_absolute_references_only_of_that_patient() {
        assert!(is_about(
            &json!({"subject": {"reference": "Patient/p1"}}),
            "p1"
        ));
        assert!(is_about(
            &json!({"patient": {"reference": "https://ehr/fhir/Patient/p1"}}),
            "p1"
        ));
        assert!(!is_about(
            &json!({"subject": {"reference": "Patient/p10"}}),
            "p1"
        ));
        assert!(!is_about(
            &json!({"subject": {"reference": "Group/p1"}}),
            "p1"
        ));
        assert!(!is_about(&json!({"resourceType": "Condition"}), "p1"));
        assert!(is_about(
            &json!({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p1"}}),
            "p1"
        ));
        assert!(is_about(
            &json!({"resourceType": "Appointment",
                    "participant": [{"actor": {"reference": "Practitioner/d"}},
                                    {"actor": {"reference": "Patient/p1"}}]}),
            "p1"
        ));
        assert!(is_about(
            &json!({"resourceType": "Patient", "id": "p1"}),
            "p1"
        ));
        assert!(!is_about(
            &json!({"resourceType": "Patient", "id": "p2"}),
            "p1"
        ));
        assert!(names_a_patient(
            &json!({"resourceType": "Device", "patient": {"reference": "Patient/p2"}})
        ));
        assert!(!names_a_patient(&json!({"resourceType": "Medication"})));
    }

    #[test]
    fn entries_take_matches_and_includes_of_searchsets_only() {
        let b = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"id": "a"}, "search": {"mode": "match"}},
            {"resource": {"id": "b"}, "search": {"mode": "include"}},
            {"resource": {"id": "c"}}]});
        let found = entries(&b).unwrap();
        let ids: Vec<_> = found.matches.iter().map(|r| r["id"].clone()).collect();
        assert_eq!(ids, vec![json!("a"), json!("c")]);
        assert_eq!(found.included, vec![json!({"id": "b"})]);
        assert!(entries(&json!({"resourceType": "Bundle", "type": "collection"})).is_err());
    }

    #[test]
    fn base_urls_keep_their_last_segment() {
        let b = base_url("http://h:1/leiden-hospital").unwrap();
        assert_eq!(
            b.join("Patient").unwrap().as_str(),
            "http://h:1/leiden-hospital/Patient"
        );
    }
}
