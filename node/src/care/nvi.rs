//! The localisation index as knooppunt's NVI interface (spec: `specs/nvi.md`): an EHR registers
//! FHIR `List` resources ("organisation X holds data of category C about the patient with this
//! BSN"), searches them by the patient's BSN and deletes them, with `X-Tenant-ID` naming its
//! organisation. Where knooppunt forwards to the central NVI, the node answers from knoop's
//! hub-less index ([`crate::care::localisation`]): a registration is a localisation entry on the
//! network, a search asks the holder nodes (consent-filtered and audited there), and no BSN is
//! ever stored.
//!
//! Data categories: the `nl-gf-data-categories-cs` codes are FHIR resource type names; each maps
//! to knoop's categories through the data proxy's table
//! ([`crate::care::data_proxy::RESOURCE_CATEGORIES`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::care::data_proxy::{types_of, RESOURCE_CATEGORIES};
use crate::care::localisation::{LocError, Localisation};
use crate::identity::credentials::Credentials;
use crate::identity::did_ops::DidOps;

/// The custodian extension of an NVI `List`.
pub const CUSTODIAN_EXTENSION: &str =
    "http://minvws.github.io/generiekefuncties-docs/StructureDefinition/nl-gf-localization-custodian";
/// The code system of the data categories.
pub const CATEGORY_SYSTEM: &str =
    "http://minvws.github.io/generiekefuncties-docs/CodeSystem/nl-gf-data-categories-cs";
pub use crate::directory::mcsd::URA_SYSTEM;
pub use knoop_privacy::patient::BSN_SYSTEM;
/// Most `List` entries in one registration Bundle.
pub const MAX_BUNDLE_ENTRIES: usize = 100;

/// Why an NVI request could not be served: an HTTP status and an `OperationOutcome` issue code.
#[derive(Debug, thiserror::Error)]
#[error("{diagnostics}")]
pub struct NviError {
    pub status: u16,
    pub code: &'static str,
    pub diagnostics: String,
}

impl NviError {
    fn invalid(d: impl Into<String>) -> Self {
        NviError {
            status: 400,
            code: "invalid",
            diagnostics: d.into(),
        }
    }
    /// The `OperationOutcome`.
    pub fn resource(&self) -> Value {
        json!({"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": self.code, "diagnostics": self.diagnostics}]})
    }
}

impl From<LocError> for NviError {
    fn from(e: LocError) -> Self {
        let (status, code) = match &e {
            LocError::NotConfigured => (409, "not-supported"),
            LocError::Invalid(_) | LocError::UnknownTenant(_) => (400, "invalid"),
            LocError::SlotsExhausted => (409, "conflict"),
            _ => (500, "exception"),
        };
        NviError {
            status,
            code,
            diagnostics: e.to_string(),
        }
    }
}

/// A registration read from a `List`.
#[derive(Debug, PartialEq)]
pub struct Registration {
    pub bsn: String,
    pub custodian: String,
    /// The category codes (resource type names) and the knoop categories they map to.
    pub codes: Vec<String>,
    pub categories: Vec<String>,
}

/// The knoop categories of a category code (a resource type name).
pub fn categories_of(code: &str) -> Vec<String> {
    RESOURCE_CATEGORIES
        .iter()
        .filter(|(t, _)| *t == code)
        .map(|(_, c)| (*c).to_owned())
        .collect()
}

fn supported_codes() -> String {
    let codes: BTreeSet<&str> = RESOURCE_CATEGORIES.iter().map(|(t, _)| *t).collect();
    codes.into_iter().collect::<Vec<_>>().join(", ")
}

/// The BSN in a token search value (`<BSN system>|<value>`).
fn bsn_of_token(v: &str) -> Result<String, NviError> {
    match v.split_once('|') {
        Some((BSN_SYSTEM, b)) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
            Ok(b.to_owned())
        }
        _ => Err(NviError::invalid(format!(
            "the patient must be given as {BSN_SYSTEM}|<BSN>"
        ))),
    }
}

/// Reads a `List` registration (knooppunt's NVI profile).
pub fn read_list(list: &Value) -> Result<Registration, NviError> {
    let bad = |m: &str| NviError::invalid(m);
    if list["resourceType"] != "List" {
        return Err(bad("the resource must be a List"));
    }
    if list["status"] != "current" || list["mode"] != "working" {
        return Err(bad(
            "a registration List has status current and mode working",
        ));
    }
    let subject = &list["subject"]["identifier"];
    if subject["system"] != BSN_SYSTEM {
        return Err(bad(&format!(
            "subject.identifier must be a BSN ({BSN_SYSTEM})"
        )));
    }
    let bsn = subject["value"]
        .as_str()
        .filter(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| bad("subject.identifier.value must be a BSN"))?
        .to_owned();
    let custodian = list["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == CUSTODIAN_EXTENSION)
        .map(|e| &e["valueReference"]["identifier"])
        .filter(|i| i["system"] == URA_SYSTEM)
        .and_then(|i| i["value"].as_str())
        .ok_or_else(|| {
            bad(&format!(
                "the {CUSTODIAN_EXTENSION} extension with the custodian's URA is required"
            ))
        })?
        .to_owned();
    let codes: Vec<String> = list["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["system"] == CATEGORY_SYSTEM)
        .filter_map(|c| c["code"].as_str().map(str::to_owned))
        .collect();
    if codes.is_empty() {
        return Err(bad(&format!(
            "code must have a coding from {CATEGORY_SYSTEM}"
        )));
    }
    let mut categories = Vec::new();
    for code in &codes {
        let c = categories_of(code);
        if c.is_empty() {
            return Err(bad(&format!(
                "the data category {code} is not one this node serves ({})",
                supported_codes()
            )));
        }
        categories.extend(c);
    }
    categories.sort();
    categories.dedup();
    Ok(Registration {
        bsn,
        custodian,
        codes,
        categories,
    })
}

/// A stable id for the registration of `code` by `holder` about patient `p` (no BSN in it).
fn list_id(p: &[u8; 32], holder: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(p);
    h.update(holder.as_bytes());
    h.update(code.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A `List` as NVI answers it.
fn list_resource(id: &str, custodian_ura: &str, bsn: &str, code: &str) -> Value {
    let mut custodian = json!({"system": URA_SYSTEM});
    if !custodian_ura.is_empty() {
        custodian["value"] = json!(custodian_ura);
    }
    json!({
        "resourceType": "List",
        "id": id,
        "extension": [{"url": CUSTODIAN_EXTENSION, "valueReference": {"identifier": custodian}}],
        "status": "current",
        "mode": "working",
        "subject": {"identifier": {"system": BSN_SYSTEM, "value": bsn}},
        "code": {"coding": [{"system": CATEGORY_SYSTEM, "code": code}]},
    })
}

/// The search parameters of a List search or delete: the BSN and the codes asked for.
pub fn read_params(params: &[(String, String)]) -> Result<(String, Option<Vec<String>>), NviError> {
    let mut bsn = None;
    let mut codes: Option<Vec<String>> = None;
    for (k, v) in params {
        match k.as_str() {
            "patient:identifier" | "subject:identifier" => {
                let b = bsn_of_token(v)?;
                if bsn.as_ref().is_some_and(|x| *x != b) {
                    return Err(NviError::invalid("two different patients are named"));
                }
                bsn = Some(b);
            }
            "code" => {
                let list = codes.get_or_insert_with(Vec::new);
                for c in v.split(',') {
                    let code = match c.split_once('|') {
                        Some((CATEGORY_SYSTEM, code)) | Some(("", code)) => code,
                        Some((s, _)) => {
                            return Err(NviError::invalid(format!(
                                "code: the system must be {CATEGORY_SYSTEM}, not {s}"
                            )))
                        }
                        None => c,
                    };
                    list.push(code.to_owned());
                }
            }
            "source:identifier" => {
                return Err(NviError {
                    status: 400,
                    code: "not-supported",
                    diagnostics: "source:identifier: knoop registers no source devices".into(),
                })
            }
            "_format" | "_count" => {}
            other => {
                return Err(NviError::invalid(format!(
                    "unknown parameter {other} (patient:identifier, subject:identifier, code)"
                )))
            }
        }
    }
    let bsn = bsn
        .ok_or_else(|| NviError::invalid("patient:identifier or subject:identifier is required"))?;
    Ok((bsn, codes))
}

/// The NVI interface over the localisation index.
pub struct Nvi {
    localisation: Arc<Localisation>,
    credentials: Arc<Credentials>,
    dids: Arc<DidOps>,
}

impl Nvi {
    pub fn new(
        localisation: Arc<Localisation>,
        credentials: Arc<Credentials>,
        dids: Arc<DidOps>,
    ) -> Self {
        Nvi {
            localisation,
            credentials,
            dids,
        }
    }

    /// The hosted organisation an `X-Tenant-ID` (`<URA system>|<URA>`) names, and its URA.
    pub fn tenant(&self, header: Option<&str>) -> Result<(String, String), NviError> {
        let header = header.ok_or_else(|| {
            NviError::invalid(format!(
                "the X-Tenant-ID header ({URA_SYSTEM}|<URA>) is required"
            ))
        })?;
        let ura = match header.split_once('|') {
            Some((URA_SYSTEM, u)) if !u.is_empty() => u,
            _ => {
                return Err(NviError::invalid(format!(
                    "X-Tenant-ID must be {URA_SYSTEM}|<URA>"
                )))
            }
        };
        let hosted = self.dids.hosted().unwrap_or_default();
        let did = self
            .credentials
            .hosted_by_ura(ura, &hosted)
            .map(|e| e.did)
            .ok_or_else(|| NviError {
                status: 403,
                code: "forbidden",
                diagnostics: format!(
                    "no organisation with URA {ura} (and a trusted organisation credential) is hosted on this node"
                ),
            })?;
        Ok((did, ura.to_owned()))
    }

    /// Registers a `List` for `tenant` (`(DID, URA)` from [`Nvi::tenant`]): the created List
    /// (with its id).
    pub async fn register(
        &self,
        tenant: &(String, String),
        list: &Value,
    ) -> Result<Value, NviError> {
        let reg = read_list(list)?;
        self.register_checked(tenant, reg).await
    }

    async fn register_checked(
        &self,
        (did, ura): &(String, String),
        reg: Registration,
    ) -> Result<Value, NviError> {
        if reg.custodian != *ura {
            return Err(NviError::invalid(format!(
                "the custodian {} is not the X-Tenant-ID's organisation {ura}",
                reg.custodian
            )));
        }
        let keys = self
            .localisation
            .derive_blocking(BSN_SYSTEM.to_owned(), reg.bsn.clone())
            .await?;
        self.localisation
            .register(did, &keys, &reg.categories, None)
            .await?;
        let code = &reg.codes[0];
        Ok(list_resource(
            &list_id(&keys.p, did, code),
            ura,
            &reg.bsn,
            code,
        ))
    }

    /// Registers every `List` of a `transaction` Bundle, after checking them all: the
    /// `transaction-response` Bundle.
    pub async fn register_bundle(
        &self,
        tenant: &(String, String),
        bundle: &Value,
    ) -> Result<Value, NviError> {
        if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
            return Err(NviError::invalid("the body must be a transaction Bundle"));
        }
        let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() || entries.len() > MAX_BUNDLE_ENTRIES {
            return Err(NviError::invalid(format!(
                "the Bundle must hold 1 to {MAX_BUNDLE_ENTRIES} entries"
            )));
        }
        let mut regs = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e["request"]["method"] != "POST" || e["request"]["url"] != "List" {
                return Err(NviError::invalid(format!(
                    "entry {i}: only POST List is supported"
                )));
            }
            let reg = read_list(&e["resource"])
                .map_err(|err| NviError::invalid(format!("entry {i}: {err}")))?;
            if reg.custodian != tenant.1 {
                return Err(NviError::invalid(format!(
                    "entry {i}: the custodian {} is not the X-Tenant-ID's organisation",
                    reg.custodian
                )));
            }
            regs.push(reg);
        }
        let mut out = Vec::new();
        for reg in regs {
            let list = self.register_checked(tenant, reg).await?;
            let id = list["id"].as_str().unwrap_or_default().to_owned();
            out.push(json!({"resource": list,
                            "response": {"status": "201 Created", "location": format!("List/{id}")}}));
        }
        Ok(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": out}))
    }

    /// Searches the network's index for the patient as `tenant`: a `searchset` Bundle with a
    /// `List` per holder organisation and category code, and an `OperationOutcome` entry for
    /// each holder node that could not answer (never silently left out).
    pub async fn search(
        &self,
        (did, _): &(String, String),
        params: &[(String, String)],
    ) -> Result<Value, NviError> {
        let (bsn, codes) = read_params(params)?;
        let keys = self
            .localisation
            .derive_blocking(BSN_SYSTEM.to_owned(), bsn.clone())
            .await?;
        let answers = self
            .localisation
            .lookup(did, &keys, "regular-care", "NVI search")
            .await?;
        let mut entries = Vec::new();
        for a in answers {
            match a.status.as_str() {
                "ok" | "no_permitted_data" | "not_here" => {}
                status => entries.push(json!({
                    "resource": {"resourceType": "OperationOutcome", "issue": [{
                        "severity": "warning", "code": "transient",
                        "diagnostics": format!("holder node {} did not answer: {status}", a.node)}]},
                    "search": {"mode": "outcome"},
                })),
            }
            for (holder, categories) in a.holdings {
                let ura = self
                    .credentials
                    .organisation(&holder)
                    .map(|e| e.ura)
                    .unwrap_or_default();
                let mut seen = BTreeSet::new();
                for c in &categories {
                    for code in types_of(c) {
                        if codes.as_ref().is_some_and(|w| !w.iter().any(|x| x == code)) {
                            continue;
                        }
                        if seen.insert(code) {
                            entries.push(json!({
                                "resource": list_resource(&list_id(&keys.p, &holder, code), &ura, &bsn, code),
                                "search": {"mode": "match"},
                            }));
                        }
                    }
                }
            }
        }
        let total = entries
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .count();
        let mut b = json!({"resourceType": "Bundle", "type": "searchset", "total": total});
        if !entries.is_empty() {
            b["entry"] = json!(entries);
        }
        Ok(b)
    }

    /// Deletes `tenant`'s registrations for the patient (of the codes given, or all).
    pub async fn delete(
        &self,
        (did, _): &(String, String),
        params: &[(String, String)],
    ) -> Result<(), NviError> {
        let (bsn, codes) = read_params(params)?;
        let categories: Vec<String> = match codes {
            None => Vec::new(),
            Some(codes) => {
                let mut c: Vec<String> = codes.iter().flat_map(|x| categories_of(x)).collect();
                if c.is_empty() {
                    return Err(NviError::invalid(format!(
                        "no data category this node serves among the codes ({})",
                        supported_codes()
                    )));
                }
                c.sort();
                c.dedup();
                c
            }
        };
        let keys = self
            .localisation
            .derive_blocking(BSN_SYSTEM.to_owned(), bsn)
            .await?;
        self.localisation.withdraw(did, &keys, &categories).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(bsn: &str, ura: &str, code: &str) -> Value {
        json!({"resourceType": "List", "status": "current", "mode": "working",
               "extension": [{"url": CUSTODIAN_EXTENSION,
                              "valueReference": {"identifier": {"system": URA_SYSTEM, "value": ura}}}],
               "subject": {"identifier": {"system": BSN_SYSTEM, "value": bsn}},
               "code": {"coding": [{"system": CATEGORY_SYSTEM, "code": code}]}})
    }

    #[test]
    fn lists_read_as_registrations() {
        assert_eq!(
            read_list(&list("999900109", "90000308", "MedicationRequest")).unwrap(),
            Registration {
                bsn: "999900109".into(),
                custodian: "90000308".into(),
                codes: vec!["MedicationRequest".into()],
                categories: vec!["medication".into()],
            }
        );
        assert_eq!(
            read_list(&list("1", "2", "Observation"))
                .unwrap()
                .categories,
            vec!["lab".to_owned(), "vital-signs".to_owned()]
        );
        let mut no_custodian = list("1", "2", "Condition");
        no_custodian["extension"] = json!([]);
        let mut tokenized = list("1", "2", "Condition");
        tokenized["subject"]["identifier"]["system"] = json!("urn:x");
        for bad in [
            list("1", "2", "Basic"),
            list("12a", "2", "Condition"),
            no_custodian,
            tokenized,
            json!({"resourceType": "Patient"}),
        ] {
            assert!(read_list(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_parameters_name_one_patient_and_codes() {
        let p = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect::<Vec<_>>()
        };
        let bsn = format!("{BSN_SYSTEM}|999900109");
        let (b, codes) = read_params(&p(&[
            ("patient:identifier", &bsn),
            (
                "code",
                &format!("{CATEGORY_SYSTEM}|MedicationRequest,Condition"),
            ),
        ]))
        .unwrap();
        assert_eq!(b, "999900109");
        assert_eq!(
            codes,
            Some(vec!["MedicationRequest".to_owned(), "Condition".to_owned()])
        );
        for bad in [
            p(&[]),
            p(&[("patient:identifier", "999900109")]),
            p(&[
                ("patient:identifier", &bsn),
                ("subject:identifier", &format!("{BSN_SYSTEM}|1")),
            ]),
            p(&[("patient:identifier", &bsn), ("code", "urn:other|X")]),
            p(&[("patient:identifier", &bsn), ("name", "x")]),
            p(&[("source:identifier", "x")]),
        ] {
            assert!(read_params(&bad).is_err(), "{bad:?}");
        }
    }
}
