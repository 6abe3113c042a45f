//! The directory as IHE mCSD over FHIR R4 (spec: `specs/mcsd.md`): the interactions of the
//! Query Directory over the whole network (read, vread, search with `_include` and
//! `_revinclude`, type and instance `_history` with `_since`) and of one organisation's
//! Administration Directory (the same, restricted to what it published), their
//! CapabilityStatements, and `OperationOutcome` for what cannot be answered. FHIR JSON rules
//! hold: no empty arrays, objects or strings.

use serde_json::{json, Value};

use crate::directory::fhir_search::{self, Search};
pub use crate::directory::ids::{fhir_id, FHIR_JSON, URA_SYSTEM, URI_SYSTEM};
use crate::directory::view::{DirectoryView, Version};

/// An answer that is not a resource: status and `OperationOutcome` (R4 `operationoutcome`).
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub status: u16,
    pub code: &'static str,
    pub diagnostics: String,
}

impl Outcome {
    pub fn new(status: u16, code: &'static str, d: impl Into<String>) -> Self {
        Outcome {
            status,
            code,
            diagnostics: d.into(),
        }
    }
    pub fn invalid(d: impl Into<String>) -> Self {
        Outcome::new(400, "invalid", d)
    }
    pub fn not_found(d: impl Into<String>) -> Self {
        Outcome::new(404, "not-found", d)
    }
    /// The `OperationOutcome` resource.
    pub fn resource(&self) -> Value {
        json!({"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": self.code, "diagnostics": self.diagnostics}]})
    }
}

impl From<fhir_search::Refused> for Outcome {
    fn from(r: fhir_search::Refused) -> Self {
        Outcome::invalid(r.0)
    }
}

/// The parameters of a request: name → value, in order (a repeated name once per repetition).
pub type Params = Vec<(String, String)>;

/// Whose resources an interaction sees: the whole network (Query Directory) or one
/// organisation's (its Administration Directory).
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    Network,
    Organisation(&'a str),
}

impl Scope<'_> {
    fn owner(&self) -> Option<&str> {
        match self {
            Scope::Network => None,
            Scope::Organisation(o) => Some(o),
        }
    }
    fn sees(&self, v: &Version) -> bool {
        self.owner().is_none_or(|o| v.owner == o)
    }
}

/// The CapabilityStatement at `base`: a Query Directory (`admin` false) or an Administration
/// Directory that also takes create, update, delete and transaction (`admin` true).
pub fn capability_statement(base: &str, admin: bool) -> Value {
    let resources: Vec<Value> = fhir_search::TYPES
        .iter()
        .map(|t| {
            let mut interactions = vec![
                "read",
                "vread",
                "search-type",
                "history-instance",
                "history-type",
            ];
            if admin {
                interactions.extend(["create", "update", "delete"]);
            }
            let mut params: Vec<Value> = fhir_search::param_names(t)
                .iter()
                .map(|(n, k)| json!({"name": n, "type": k}))
                .collect();
            params.push(json!({"name": "_since", "type": "date",
                               "documentation": "on _history"}));
            let includes = fhir_search::reference_params(t);
            let mut r = json!({
                "type": t,
                "interaction": interactions.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
                "versioning": "versioned",
                "readHistory": true,
                "updateCreate": admin,
                "searchParam": params,
            });
            if !includes.is_empty() {
                r["searchInclude"] = json!(includes
                    .iter()
                    .map(|p| format!("{t}:{p}"))
                    .collect::<Vec<_>>());
            }
            let revincludes = fhir_search::revincludes_onto(t);
            if !revincludes.is_empty() {
                r["searchRevInclude"] = json!(revincludes);
            }
            r
        })
        .collect();
    let mut rest = json!({"mode": "server", "resource": resources,
                          "interaction": [{"code": "history-system"}]});
    if admin {
        rest["interaction"] = json!([{"code": "history-system"}, {"code": "transaction"}]);
    }
    let description = if admin {
        "knoop mCSD Administration Directory of one organisation"
    } else {
        "knoop mCSD Query Directory over the whole network"
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-07",
        "kind": "instance",
        "software": {"name": "knoop", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": description, "url": base},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [rest],
    })
}

fn check_type(type_: &str) -> Result<(), Outcome> {
    if fhir_search::params_of(type_).is_some() {
        Ok(())
    } else {
        Err(Outcome::new(
            404,
            "not-supported",
            format!(
                "{type_} is not served here (served: {})",
                fhir_search::TYPES.join(", ")
            ),
        ))
    }
}

/// `GET [base]/[type]?...` (R4 search; `specs/mcsd.md` §3).
pub fn search(
    view: &DirectoryView,
    base: &str,
    type_: &str,
    params: &Params,
    scope: Scope,
) -> Result<Value, Outcome> {
    check_type(type_)?;
    let s = fhir_search::parse(type_, params)?;
    let matches: Vec<Value> = view
        .current(type_, scope.owner())
        .into_iter()
        .filter_map(|v| v.resource)
        .filter(|r| fhir_search::matches(r, &s))
        .collect();
    let total = matches.len();
    let page: Vec<Value> = matches.into_iter().skip(s.offset).take(s.count).collect();
    let included = inclusions(view, type_, &page, &s, scope);
    let mut entries: Vec<Value> = page.into_iter().map(|r| entry(base, r, "match")).collect();
    entries.extend(included.into_iter().map(|r| entry(base, r, "include")));
    let links = links(base, type_, params, s.offset, s.count, total);
    Ok(bundle("searchset", total, links, entries))
}

fn entry(base: &str, r: Value, mode: &str) -> Value {
    let url = format!(
        "{base}/{}/{}",
        r["resourceType"].as_str().unwrap_or_default(),
        r["id"].as_str().unwrap_or_default()
    );
    json!({"fullUrl": url, "resource": r, "search": {"mode": mode}})
}

/// The resources `_include` and `_revinclude` add to a page (each once, none of the page).
fn inclusions(
    view: &DirectoryView,
    type_: &str,
    page: &[Value],
    s: &Search,
    scope: Scope,
) -> Vec<Value> {
    let mut seen: std::collections::BTreeSet<(String, String)> = page
        .iter()
        .map(|r| {
            (
                type_.to_owned(),
                r["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for inc in &s.includes {
        for r in page {
            for target in fhir_search::references(r, type_, inc.param) {
                if seen.contains(&target) {
                    continue;
                }
                if let Some(res) = view
                    .latest(&target.0, &target.1)
                    .filter(|v| scope.sees(v))
                    .and_then(|v| v.resource)
                {
                    seen.insert(target);
                    out.push(res);
                }
            }
        }
    }
    for inc in &s.revincludes {
        let ids: Vec<(String, String)> = page
            .iter()
            .map(|r| {
                (
                    type_.to_owned(),
                    r["id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        for v in view.current(&inc.source, scope.owner()) {
            let Some(r) = v.resource else { continue };
            let key = (inc.source.clone(), v.id.clone());
            if seen.contains(&key) {
                continue;
            }
            if fhir_search::references(&r, &inc.source, inc.param)
                .iter()
                .any(|t| ids.contains(t))
            {
                seen.insert(key);
                out.push(r);
            }
        }
    }
    out
}

fn links(
    base: &str,
    path: &str,
    params: &Params,
    offset: usize,
    count: usize,
    total: usize,
) -> Vec<Value> {
    let query = |offset: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            if k != "_offset" && k != "_count" {
                q.append_pair(k, v);
            }
        }
        q.append_pair("_count", &count.to_string());
        if offset > 0 {
            q.append_pair("_offset", &offset.to_string());
        }
        format!("{base}/{path}?{}", q.finish())
    };
    let mut links = vec![json!({"relation": "self", "url": query(offset)})];
    if offset + count < total {
        links.push(json!({"relation": "next", "url": query(offset + count)}));
    }
    links
}

fn bundle(type_: &str, total: usize, links: Vec<Value>, entries: Vec<Value>) -> Value {
    let mut b = json!({"resourceType": "Bundle", "type": type_, "total": total, "link": links});
    if !entries.is_empty() {
        b["entry"] = json!(entries);
    }
    b
}

/// `GET [base]/[type]/[id]`: the resource, `404` if it never existed here, `410` once deleted.
pub fn read(view: &DirectoryView, type_: &str, id: &str, scope: Scope) -> Result<Value, Outcome> {
    check_type(type_)?;
    let v = view
        .latest(type_, id)
        .filter(|v| scope.sees(v))
        .ok_or_else(|| Outcome::not_found(format!("{type_}/{id} is not in the directory")))?;
    v.resource
        .ok_or_else(|| Outcome::new(410, "deleted", format!("{type_}/{id} was deleted")))
}

/// `GET [base]/[type]/[id]/_history/[vid]`.
pub fn vread(
    view: &DirectoryView,
    type_: &str,
    id: &str,
    vid: &str,
    scope: Scope,
) -> Result<Value, Outcome> {
    check_type(type_)?;
    let v = view
        .history(|v| v.type_ == type_ && v.id == id && v.vid.to_string() == vid && scope.sees(v))
        .into_iter()
        .next()
        .ok_or_else(|| Outcome::not_found(format!("{type_}/{id} has no version {vid}")))?;
    v.resource.ok_or_else(|| {
        Outcome::new(
            410,
            "deleted",
            format!("version {vid} of {type_}/{id} is its delete"),
        )
    })
}

/// `GET [base]/_history`, `[base]/[type]/_history` or `[base]/[type]/[id]/_history`, with
/// `_since`, `_count` and paging (R4 §3.1.0.12): newest first, deletes included.
pub fn history(
    view: &DirectoryView,
    base: &str,
    type_: Option<&str>,
    id: Option<&str>,
    params: &Params,
    scope: Scope,
) -> Result<Value, Outcome> {
    if let Some(t) = type_ {
        check_type(t)?;
    }
    let mut since: Option<u64> = None;
    let (mut count, mut offset) = (fhir_search::DEFAULT_COUNT, 0usize);
    for (k, v) in params {
        let number = |what: &str| {
            v.parse::<usize>()
                .map_err(|_| Outcome::invalid(format!("{what} must be a number")))
        };
        match k.as_str() {
            "_since" => {
                let t = fhir_search::instant_ms(v).ok_or_else(|| {
                    Outcome::invalid("_since is an instant (YYYY-MM-DDThh:mm:ss[.sss]+zz:zz)")
                })?;
                since = Some(u64::try_from(t).unwrap_or(0));
            }
            "_count" => count = number("_count")?.clamp(1, fhir_search::MAX_COUNT),
            "_offset" => offset = number("_offset")?,
            "_format" => fhir_search::check_format(v)?,
            other => {
                return Err(Outcome::invalid(format!(
                    "unknown _history parameter {other} (supported: _since, _count, _offset)"
                )))
            }
        }
    }
    let versions = view.history(|v| {
        type_.is_none_or(|t| v.type_ == t)
            && id.is_none_or(|i| v.id == i)
            && since.is_none_or(|s| v.at_ms >= s)
            && scope.sees(v)
    });
    if let (Some(t), Some(i)) = (type_, id) {
        if versions.is_empty() && since.is_none() {
            return Err(Outcome::not_found(format!(
                "{t}/{i} is not in the directory"
            )));
        }
    }
    let total = versions.len();
    let entries: Vec<Value> = versions
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|v| history_entry(base, v))
        .collect();
    let path = match (type_, id) {
        (Some(t), Some(i)) => format!("{t}/{i}/_history"),
        (Some(t), None) => format!("{t}/_history"),
        _ => "_history".to_owned(),
    };
    Ok(bundle(
        "history",
        total,
        links(base, &path, params, offset, count, total),
        entries,
    ))
}

fn history_entry(base: &str, v: Version) -> Value {
    let (method, status) = v.interaction();
    let url = if method == "POST" {
        v.type_.clone()
    } else {
        format!("{}/{}", v.type_, v.id)
    };
    let mut e = json!({
        "fullUrl": format!("{base}/{}/{}", v.type_, v.id),
        "request": {"method": method, "url": url},
        "response": {"status": status, "etag": etag(v.vid),
                     "lastModified": knoop_did::knoop::time::to_rfc3339_ms(v.at_ms)},
    });
    if let Some(r) = v.resource {
        e["resource"] = r;
    }
    e
}

/// The weak ETag of version `vid` (R4 §3.1.0.5: `W/"<versionId>"`).
pub fn etag(vid: u64) -> String {
    format!("W/\"{vid}\"")
}
