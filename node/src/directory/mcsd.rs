//! The directory as an IHE mCSD Query Directory over FHIR R4 (spec: `specs/mcsd.md`):
//! `Organization` (URA and DID identifiers, type, name, city, a reference to its FHIR
//! endpoint) and `Endpoint` (the organisation's FHIR base), with read, search (FHIR string,
//! token and reference semantics, `_id`, paging by `_count` with `self` and `next` links and a
//! true `total`), a CapabilityStatement, and `OperationOutcome` for what cannot be answered.
//! FHIR JSON rules hold: no empty arrays, objects or strings.

use serde_json::{json, Value};
use sha2::Digest;

use crate::directory::Directory;
use crate::identity::credentials::{DirectoryEntry, Query};

/// The URA naming system (Dutch national care-provider id) in FHIR.
pub const URA_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/ura";
/// The identifier system of a DID (a URI).
pub const URI_SYSTEM: &str = "urn:ietf:rfc:3986";
/// The media type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";
/// Page size without `_count`, and the largest one.
pub const DEFAULT_COUNT: usize = 100;
pub const MAX_COUNT: usize = 1000;

/// A stable FHIR id for a DID.
pub fn fhir_id(did: &str) -> String {
    hex::encode(&sha2::Sha256::digest(did.as_bytes())[..16])
}

/// An answer that is not a resource: status and `OperationOutcome` (R4 `operationoutcome`).
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub status: u16,
    pub code: &'static str,
    pub diagnostics: String,
}

impl Outcome {
    fn invalid(d: impl Into<String>) -> Self {
        Outcome {
            status: 400,
            code: "invalid",
            diagnostics: d.into(),
        }
    }
    fn not_found(d: impl Into<String>) -> Self {
        Outcome {
            status: 404,
            code: "not-found",
            diagnostics: d.into(),
        }
    }
    /// The `OperationOutcome` resource.
    pub fn resource(&self) -> Value {
        json!({"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": self.code, "diagnostics": self.diagnostics}]})
    }
}

/// The CapabilityStatement of the Query Directory at `base` (`GET [base]/metadata`).
pub fn capability_statement(base: &str) -> Value {
    let param = |name: &str, type_: &str| json!({"name": name, "type": type_});
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-07",
        "kind": "instance",
        "software": {"name": "knoop", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "knoop mCSD Query Directory", "url": base},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "resource": [
                {"type": "Organization",
                 "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [param("_id", "token"), param("identifier", "token"),
                                 param("name", "string"), param("address-city", "string"),
                                 param("active", "token")]},
                {"type": "Endpoint",
                 "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [param("_id", "token"), param("organization", "reference"),
                                 param("status", "token"), param("connection-type", "token")]},
            ],
        }],
    })
}

/// The parameters of a search: name → values in order (a repeated name: one entry per
/// repetition, each a comma list).
pub type Params = Vec<(String, String)>;

/// Lower case without diacritics, for FHIR's default string matching ("case- and
/// accent-insensitive", R4 §3.1.1.4.7).
fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => {
                'a'
            }
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
            'ý' | 'ÿ' | 'Ý' => 'y',
            'ç' | 'Ç' => 'c',
            'ñ' | 'Ñ' => 'n',
            c => c.to_lowercase().next().unwrap_or(c),
        })
        .collect()
}

/// FHIR string matching: `modifier` none (starts with, folded), `exact`, `contains` (folded).
fn string_matches(modifier: Option<&str>, value: &str, wanted: &str) -> bool {
    match modifier {
        Some("exact") => value == wanted,
        Some("contains") => fold(value).contains(&fold(wanted)),
        _ => fold(value).starts_with(&fold(wanted)),
    }
}

/// FHIR token matching against `(system, value)` pairs: `system|value`, `|value` (no system),
/// `system|`, or `value` (any system).
fn token_matches(identifiers: &[(&str, &str)], wanted: &str) -> bool {
    match wanted.split_once('|') {
        None => identifiers.iter().any(|(_, v)| *v == wanted),
        Some(("", v)) => identifiers.iter().any(|(s, x)| s.is_empty() && *x == v),
        Some((s, "")) => identifiers.iter().any(|(x, _)| *x == s),
        Some((s, v)) => identifiers.iter().any(|(x, y)| *x == s && *y == v),
    }
}

/// Every AND group (repetition) has an OR value (comma list) that `matches`.
fn all_groups(groups: &[&String], matches: impl Fn(&str) -> bool) -> bool {
    groups.iter().all(|g| g.split(',').any(&matches))
}

/// A search request, checked: its filters, page size and offset.
struct Search<'a> {
    filters: Vec<(String, Option<String>, Vec<&'a String>)>,
    count: usize,
    offset: usize,
}

/// Splits `params` into filters (name, modifier, AND groups) of the `known` parameters; `_count`
/// and `_offset` page; `_format` must be JSON; anything else is refused (strict handling).
fn search<'a>(params: &'a Params, known: &[&str]) -> Result<Search<'a>, Outcome> {
    let mut out = Search {
        filters: Vec::new(),
        count: DEFAULT_COUNT,
        offset: 0,
    };
    for (key, value) in params {
        let (name, modifier) = match key.split_once(':') {
            Some((n, m)) => (n, Some(m.to_owned())),
            None => (key.as_str(), None),
        };
        let number = |what: &str| {
            value
                .parse::<usize>()
                .map_err(|_| Outcome::invalid(format!("{what} must be a number")))
        };
        match name {
            "_count" => out.count = number("_count")?.clamp(1, MAX_COUNT),
            "_offset" => out.offset = number("_offset")?,
            "_format" => {
                if !matches!(value.as_str(), "json" | "application/json" | FHIR_JSON) {
                    return Err(Outcome::invalid("only JSON is served"));
                }
            }
            n if known.contains(&n) => {
                if let Some(m) = &modifier {
                    if !matches!(m.as_str(), "exact" | "contains") {
                        return Err(Outcome::invalid(format!(
                            "the modifier :{m} is not supported"
                        )));
                    }
                }
                match out
                    .filters
                    .iter_mut()
                    .find(|(f, fm, _)| f == n && *fm == modifier)
                {
                    Some((_, _, groups)) => groups.push(value),
                    None => out.filters.push((n.to_owned(), modifier, vec![value])),
                }
            }
            n => {
                return Err(Outcome::invalid(format!(
                    "unknown search parameter {n} (supported: {}, _count, _offset)",
                    known.join(", ")
                )))
            }
        }
    }
    Ok(out)
}

/// A page of `matches` as a `searchset` Bundle with `total`, `fullUrl`s and links.
fn searchset(base: &str, type_: &str, params: &Params, s: &Search, matches: Vec<Value>) -> Value {
    let total = matches.len();
    let query = |offset: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            if k != "_offset" && k != "_count" {
                q.append_pair(k, v);
            }
        }
        q.append_pair("_count", &s.count.to_string());
        if offset > 0 {
            q.append_pair("_offset", &offset.to_string());
        }
        format!("{base}/{type_}?{}", q.finish())
    };
    let mut links = vec![json!({"relation": "self", "url": query(s.offset)})];
    if s.offset + s.count < total {
        links.push(json!({"relation": "next", "url": query(s.offset + s.count)}));
    }
    let entries: Vec<Value> = matches
        .into_iter()
        .skip(s.offset)
        .take(s.count)
        .map(|r| {
            json!({"fullUrl": format!("{base}/{type_}/{}", r["id"].as_str().unwrap_or_default()),
                   "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    let mut b =
        json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links});
    if !entries.is_empty() {
        b["entry"] = json!(entries);
    }
    b
}

/// The one URL of a DID service endpoint (a string, or the first string of a list or map).
fn address_of(endpoint: &Value) -> Option<String> {
    match endpoint {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(address_of),
        Value::Object(o) => o.values().find_map(address_of),
        _ => None,
    }
}

fn organization_resource(dir: &Directory, e: &DirectoryEntry) -> Value {
    let id = fhir_id(&e.did);
    let mut identifier = vec![json!({"system": URI_SYSTEM, "value": e.did})];
    if !e.ura.is_empty() {
        identifier.insert(0, json!({"system": URA_SYSTEM, "value": e.ura}));
    }
    let mut r = json!({"resourceType": "Organization", "id": id, "identifier": identifier,
                       "active": true, "name": e.legal_name});
    if !e.organization_type.is_empty() {
        r["type"] = json!([{"text": e.organization_type}]);
    }
    if !e.city.is_empty() {
        r["address"] = json!([{"city": e.city}]);
    }
    if dir
        .endpoint(&e.did, "FHIR")
        .and_then(|v| address_of(&v))
        .is_some()
    {
        r["endpoint"] = json!([{"reference": format!("Endpoint/{id}-fhir")}]);
    }
    r
}

fn endpoint_resource(dir: &Directory, e: &DirectoryEntry) -> Option<Value> {
    let address = address_of(&dir.endpoint(&e.did, "FHIR")?)?;
    let id = fhir_id(&e.did);
    Some(json!({
        "resourceType": "Endpoint",
        "id": format!("{id}-fhir"),
        "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                           "code": "hl7-fhir-rest"},
        "name": format!("FHIR endpoint of {}", e.legal_name),
        "managingOrganization": {"reference": format!("Organization/{id}")},
        "payloadType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                                     "code": "any"}]}],
        "address": address,
    }))
}

fn all(dir: &Directory) -> Vec<DirectoryEntry> {
    dir.entries(&Query::default())
}

/// `GET [base]/Organization?...` (R4 search; `specs/mcsd.md` §2).
pub fn search_organizations(
    dir: &Directory,
    base: &str,
    params: &Params,
) -> Result<Value, Outcome> {
    let s = search(
        params,
        &["_id", "identifier", "name", "address-city", "active"],
    )?;
    let mut matches = Vec::new();
    for e in all(dir) {
        let id = fhir_id(&e.did);
        let ok = s
            .filters
            .iter()
            .all(|(name, modifier, groups)| match name.as_str() {
                "_id" => all_groups(groups, |v| v == id),
                "identifier" => all_groups(groups, |v| {
                    token_matches(&[(URA_SYSTEM, &e.ura), (URI_SYSTEM, &e.did)], v)
                }),
                "name" => all_groups(groups, |v| {
                    string_matches(modifier.as_deref(), &e.legal_name, v)
                }),
                "address-city" => {
                    all_groups(groups, |v| string_matches(modifier.as_deref(), &e.city, v))
                }
                "active" => all_groups(groups, |v| v == "true"),
                _ => false,
            });
        if ok {
            matches.push(organization_resource(dir, &e));
        }
    }
    Ok(searchset(base, "Organization", params, &s, matches))
}

/// `GET [base]/Endpoint?...`.
pub fn search_endpoints(dir: &Directory, base: &str, params: &Params) -> Result<Value, Outcome> {
    let s = search(
        params,
        &["_id", "organization", "status", "connection-type"],
    )?;
    let mut matches = Vec::new();
    for e in all(dir) {
        let Some(r) = endpoint_resource(dir, &e) else {
            continue;
        };
        let org = fhir_id(&e.did);
        let ok = s
            .filters
            .iter()
            .all(|(name, _, groups)| match name.as_str() {
                "_id" => all_groups(groups, |v| r["id"] == v),
                "organization" => all_groups(groups, |v| {
                    let id = v
                        .strip_prefix("Organization/")
                        .or_else(|| v.rsplit_once("/Organization/").map(|(_, i)| i))
                        .unwrap_or(v);
                    id == org
                }),
                "status" => all_groups(groups, |v| v == "active"),
                "connection-type" => all_groups(groups, |v| {
                    token_matches(
                        &[(
                            "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                            "hl7-fhir-rest",
                        )],
                        v,
                    )
                }),
                _ => false,
            });
        if ok {
            matches.push(r);
        }
    }
    Ok(searchset(base, "Endpoint", params, &s, matches))
}

/// `GET [base]/Organization/[id]`.
pub fn read_organization(dir: &Directory, id: &str) -> Result<Value, Outcome> {
    all(dir)
        .iter()
        .find(|e| fhir_id(&e.did) == id)
        .map(|e| organization_resource(dir, e))
        .ok_or_else(|| Outcome::not_found(format!("Organization/{id} is not in the directory")))
}

/// `GET [base]/Endpoint/[id]`.
pub fn read_endpoint(dir: &Directory, id: &str) -> Result<Value, Outcome> {
    all(dir)
        .iter()
        .filter_map(|e| endpoint_resource(dir, e))
        .find(|r| r["id"] == id)
        .ok_or_else(|| Outcome::not_found(format!("Endpoint/{id} is not in the directory")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_match_as_fhir_says() {
        assert!(string_matches(None, "Ziekenhuis Leiden", "zieken"));
        assert!(string_matches(None, "Zélande", "zel"));
        assert!(!string_matches(None, "Ziekenhuis Leiden", "leiden"));
        assert!(string_matches(
            Some("contains"),
            "Ziekenhuis Leiden",
            "LEIDEN"
        ));
        assert!(string_matches(Some("exact"), "Leiden", "Leiden"));
        assert!(!string_matches(Some("exact"), "Leiden", "leiden"));
    }

    #[test]
    fn tokens_match_with_and_without_system() {
        let ids = [(URA_SYSTEM, "99990011"), (URI_SYSTEM, "did:knoop:x")];
        assert!(token_matches(&ids, "99990011"));
        assert!(token_matches(&ids, &format!("{URA_SYSTEM}|99990011")));
        assert!(token_matches(&ids, &format!("{URA_SYSTEM}|")));
        assert!(!token_matches(&ids, "|99990011"));
        assert!(!token_matches(&ids, "urn:other|99990011"));
    }

    #[test]
    fn unknown_parameters_and_modifiers_are_refused() {
        let p = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let known = ["name"];
        assert!(search(&p("name", "a"), &known).is_ok());
        assert!(search(&p("name:contains", "a"), &known).is_ok());
        assert_eq!(
            search(&p("nmae", "a"), &known).err().map(|o| o.status),
            Some(400)
        );
        assert!(search(&p("name:missing", "true"), &known).is_err());
        assert!(search(&p("_count", "x"), &known).is_err());
        assert!(search(&p("_format", "xml"), &known).is_err());
        assert_eq!(
            search(&p("_count", "5000"), &known).unwrap().count,
            MAX_COUNT
        );
    }

    #[test]
    fn service_endpoints_give_one_address() {
        assert_eq!(
            address_of(&json!("https://a")).as_deref(),
            Some("https://a")
        );
        assert_eq!(
            address_of(&json!(["https://a", "https://b"])).as_deref(),
            Some("https://a")
        );
        assert_eq!(
            address_of(&json!({"origins": ["https://c"]})).as_deref(),
            Some("https://c")
        );
        assert_eq!(address_of(&json!(7)), None);
    }
}
