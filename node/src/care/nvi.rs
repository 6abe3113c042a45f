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

pub mod records;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::care::data_proxy::{types_of, RESOURCE_CATEGORIES};
use crate::care::localisation::{LocError, Localisation};
use crate::identity::credentials::Credentials;
use crate::identity::did_ops::DidOps;
use crate::store::NodeStore;
use records::{Record, Records};

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
    /// `List.source.identifier`: the registering device, `(system, value)`.
    pub source: Option<(String, String)>,
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
    let source = match &list["source"]["identifier"] {
        Value::Null => None,
        i => Some(identifier(i).ok_or_else(|| {
            bad("source.identifier must have a system and a value of at most 256 bytes")
        })?),
    };
    Ok(Registration {
        bsn,
        custodian,
        codes,
        categories,
        source,
    })
}

/// `(system, value)` of a FHIR Identifier, each 1 to 256 bytes.
fn identifier(i: &Value) -> Option<(String, String)> {
    let ok = |v: &Value| {
        v.as_str()
            .filter(|s| (1..=256).contains(&s.len()))
            .map(str::to_owned)
    };
    Some((ok(&i["system"])?, ok(&i["value"])?))
}

/// The subject of a List read from a registration record: the patient's network pseudonym
/// (`urn:knoop:patient:…`), since no BSN is kept.
fn pseudonym_subject(p_hex: &str) -> Option<Value> {
    let p = <[u8; 32]>::try_from(hex::decode(p_hex).ok()?).ok()?;
    let reference = knoop_privacy::patient::reference_of(&p);
    Some(json!({"system": "urn:ietf:rfc:3986", "value": reference}))
}

/// A stable id for the registration of `code` by `holder` about patient `p` (no BSN in it).
fn list_id(p: &[u8; 32], holder: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(p);
    h.update(holder.as_bytes());
    h.update(code.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A `List` as NVI answers it, about the patient with the BSN `bsn`.
fn list_resource(id: &str, custodian_ura: &str, bsn: &str, code: &str) -> Value {
    list_about(
        id,
        custodian_ura,
        json!({"system": BSN_SYSTEM, "value": bsn}),
        code,
    )
}

/// A `List` about the patient `subject` (an Identifier).
fn list_about(id: &str, custodian_ura: &str, subject: Value, code: &str) -> Value {
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
        "subject": {"identifier": subject},
        "code": {"coding": [{"system": CATEGORY_SYSTEM, "code": code}]},
    })
}

/// The List of a registration record of the tenant with URA `ura`; `bsn` names the patient
/// when the caller gave it, else the pseudonym does.
fn list_of_record(r: &Record, ura: &str, bsn: Option<&str>) -> Value {
    let subject = match bsn {
        Some(b) => json!({"system": BSN_SYSTEM, "value": b}),
        None => pseudonym_subject(&r.p).unwrap_or(Value::Null),
    };
    let code = r.codes.first().map(String::as_str).unwrap_or_default();
    let mut list = list_about(&r.id, ura, subject, code);
    if let Some((system, value)) = &r.source {
        list["source"] = json!({"identifier": {"system": system, "value": value}});
    }
    list
}

/// What a List search or delete names: the patient (a BSN), the codes, the source device.
#[derive(Debug, Default, PartialEq)]
pub struct ListQuery {
    pub bsn: Option<String>,
    pub codes: Option<Vec<String>>,
    pub source: Option<(String, String)>,
}

/// The parameters of a List search or delete: the patient (`patient:identifier` or
/// `subject:identifier`, a BSN), the source device (`source:identifier`), at least one of the
/// two, and the codes asked for.
pub fn read_params(params: &[(String, String)]) -> Result<ListQuery, NviError> {
    let mut q = ListQuery::default();
    for (k, v) in params {
        match k.as_str() {
            "patient:identifier" | "subject:identifier" => {
                let b = bsn_of_token(v)?;
                if q.bsn.as_ref().is_some_and(|x| *x != b) {
                    return Err(NviError::invalid("two different patients are named"));
                }
                q.bsn = Some(b);
            }
            "code" => {
                let list = q.codes.get_or_insert_with(Vec::new);
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
                let source = v
                    .split_once('|')
                    .map(|(s, v)| (s.to_owned(), v.to_owned()))
                    .filter(|(s, v)| (1..=256).contains(&s.len()) && (1..=256).contains(&v.len()))
                    .ok_or_else(|| {
                        NviError::invalid("source:identifier must be <system>|<value>")
                    })?;
                if q.source.as_ref().is_some_and(|x| *x != source) {
                    return Err(NviError::invalid("two different sources are named"));
                }
                q.source = Some(source);
            }
            "_format" | "_count" => {}
            other => {
                return Err(NviError::invalid(format!(
                    "unknown parameter {other} (patient:identifier, subject:identifier, \
                     source:identifier, code)"
                )))
            }
        }
    }
    if q.bsn.is_none() && q.source.is_none() {
        return Err(NviError::invalid(
            "patient:identifier, subject:identifier or source:identifier is required",
        ));
    }
    Ok(q)
}

/// The NVI interface over the localisation index.
pub struct Nvi {
    localisation: Arc<Localisation>,
    credentials: Arc<Credentials>,
    dids: Arc<DidOps>,
    /// The registrations made here (`nl/`), for read and delete by id and by source.
    store: Arc<dyn NodeStore>,
}

impl Nvi {
    pub fn new(
        localisation: Arc<Localisation>,
        credentials: Arc<Credentials>,
        dids: Arc<DidOps>,
        store: Arc<dyn NodeStore>,
    ) -> Self {
        Nvi {
            localisation,
            credentials,
            dids,
            store,
        }
    }

    fn records(&self) -> Records<'_> {
        Records {
            store: self.store.as_ref(),
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
        let id = list_id(&keys.p, did, code);
        let record = Record {
            id: id.clone(),
            p: hex::encode(keys.p),
            codes: reg.codes.clone(),
            source: reg.source.clone(),
            created_ms: knoop_gossip::tx::now_ms(),
        };
        self.records().put(did, &record).map_err(store_error)?;
        Ok(list_of_record(&record, ura, Some(&reg.bsn)))
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
        tenant: &(String, String),
        params: &[(String, String)],
    ) -> Result<Value, NviError> {
        let q = read_params(params)?;
        if q.source.is_some() {
            return self.search_own(tenant, &q).await;
        }
        let did = &tenant.0;
        let codes = q.codes;
        let bsn = q.bsn.unwrap_or_default();
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

    /// The tenant's own registrations from the source device `q.source` (narrowed to the
    /// patient and the codes when given): the network carries no source devices, so a search
    /// by source is one of this node's records (`specs/nvi.md` §4).
    async fn search_own(
        &self,
        (did, ura): &(String, String),
        q: &ListQuery,
    ) -> Result<Value, NviError> {
        let lists: Vec<Value> = self
            .matching(did, q)
            .await?
            .iter()
            .map(|r| {
                json!({"resource": list_of_record(r, ura, q.bsn.as_deref()),
                       "search": {"mode": "match"}})
            })
            .collect();
        let mut b = json!({"resourceType": "Bundle", "type": "searchset", "total": lists.len()});
        if !lists.is_empty() {
            b["entry"] = json!(lists);
        }
        Ok(b)
    }

    /// The tenant's records that `q` names (patient, codes, source).
    async fn matching(&self, did: &str, q: &ListQuery) -> Result<Vec<Record>, NviError> {
        let p = match &q.bsn {
            Some(b) => Some(hex::encode(
                self.localisation
                    .derive_blocking(BSN_SYSTEM.to_owned(), b.clone())
                    .await?
                    .p,
            )),
            None => None,
        };
        Ok(self
            .records()
            .all(did)
            .map_err(store_error)?
            .into_iter()
            .filter(|r| p.as_ref().is_none_or(|p| *p == r.p))
            .filter(|r| {
                q.source
                    .as_ref()
                    .is_none_or(|s| r.source.as_ref() == Some(s))
            })
            .filter(|r| {
                q.codes
                    .as_ref()
                    .is_none_or(|c| r.codes.iter().any(|x| c.contains(x)))
            })
            .collect())
    }

    /// Deletes `tenant`'s registrations: for the patient (of the codes given, or all), or from
    /// a source device.
    pub async fn delete(
        &self,
        (did, _): &(String, String),
        params: &[(String, String)],
    ) -> Result<(), NviError> {
        let q = read_params(params)?;
        if q.source.is_some() {
            let gone = self.matching(did, &q).await?;
            return self.forget(did, gone).await;
        }
        let bsn = q.bsn.unwrap_or_default();
        let categories: Vec<String> = match q.codes {
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
        // The Lists the withdrawal made untrue go too.
        let p = hex::encode(keys.p);
        let untrue: Vec<String> = self
            .records()
            .all(did)
            .map_err(store_error)?
            .into_iter()
            .filter(|r| r.p == p)
            .filter(|r| {
                categories.is_empty()
                    || r.codes
                        .iter()
                        .flat_map(|c| categories_of(c))
                        .all(|c| categories.contains(&c))
            })
            .map(|r| r.id)
            .collect();
        self.records().remove(did, &untrue).map_err(store_error)
    }

    /// `GET /nvi/List/<id>`: the tenant's registration with that id, the patient named by its
    /// pseudonym (no BSN is kept).
    pub fn read(&self, (did, ura): &(String, String), id: &str) -> Result<Value, NviError> {
        self.records()
            .get(did, id)
            .map_err(store_error)?
            .map(|r| list_of_record(&r, ura, None))
            .ok_or_else(|| not_found(id))
    }

    /// `DELETE /nvi/List/<id>`: withdraws the tenant's registration with that id.
    pub async fn delete_by_id(
        &self,
        (did, _): &(String, String),
        id: &str,
    ) -> Result<(), NviError> {
        let r = self
            .records()
            .get(did, id)
            .map_err(store_error)?
            .ok_or_else(|| not_found(id))?;
        self.forget(did, vec![r]).await
    }

    /// Removes the records `gone` of `did`, and withdraws from the network each category that
    /// no remaining record of the same patient still registers.
    async fn forget(&self, did: &str, gone: Vec<Record>) -> Result<(), NviError> {
        let ids: Vec<String> = gone.iter().map(|r| r.id.clone()).collect();
        self.records().remove(did, &ids).map_err(store_error)?;
        let rest = self.records().all(did).map_err(store_error)?;
        let mut by_patient: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for r in &gone {
            by_patient
                .entry(&r.p)
                .or_default()
                .extend(r.codes.iter().flat_map(|c| categories_of(c)));
        }
        for (p, mut categories) in by_patient {
            for r in rest.iter().filter(|r| r.p == p) {
                for c in r.codes.iter().flat_map(|c| categories_of(c)) {
                    categories.remove(&c);
                }
            }
            if categories.is_empty() {
                continue;
            }
            let keys = <[u8; 32]>::try_from(hex::decode(p).unwrap_or_default())
                .ok()
                .and_then(|p| self.localisation.stored_keys(&p))
                .ok_or_else(|| NviError {
                    status: 409,
                    code: "conflict",
                    diagnostics: "the patient's keys are not on this node".into(),
                })?;
            let categories: Vec<String> = categories.into_iter().collect();
            self.localisation.withdraw(did, &keys, &categories).await?;
        }
        Ok(())
    }
}

fn store_error(e: String) -> NviError {
    NviError {
        status: 409,
        code: "conflict",
        diagnostics: format!("the node's store: {e}"),
    }
}

fn not_found(id: &str) -> NviError {
    NviError {
        status: 404,
        code: "not-found",
        diagnostics: format!("List/{id} is not a registration of this organisation"),
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
                source: None,
            }
        );
        let mut from_device = list("1", "2", "Condition");
        from_device["source"] = json!({"identifier": {"system": "urn:oid:2.16.840.1.113883.2.4.6.6", "value": "ehr-7"}});
        assert_eq!(
            read_list(&from_device).unwrap().source,
            Some(("urn:oid:2.16.840.1.113883.2.4.6.6".into(), "ehr-7".into()))
        );
        let mut bad_source = list("1", "2", "Condition");
        bad_source["source"] = json!({"identifier": {"value": "ehr-7"}});
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
            bad_source,
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
        let q = read_params(&p(&[
            ("patient:identifier", &bsn),
            (
                "code",
                &format!("{CATEGORY_SYSTEM}|MedicationRequest,Condition"),
            ),
        ]))
        .unwrap();
        assert_eq!(q.bsn.as_deref(), Some("999900109"));
        assert_eq!(
            q.codes,
            Some(vec!["MedicationRequest".to_owned(), "Condition".to_owned()])
        );
        let by_source = read_params(&p(&[("source:identifier", "urn:oid:1|ehr-7")])).unwrap();
        assert_eq!(
            (by_source.bsn, by_source.source),
            (None, Some(("urn:oid:1".to_owned(), "ehr-7".to_owned())))
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
            p(&[
                ("source:identifier", "urn:oid:1|a"),
                ("source:identifier", "urn:oid:1|b"),
            ]),
        ] {
            assert!(read_params(&bad).is_err(), "{bad:?}");
        }
    }
}
