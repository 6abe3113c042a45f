//! FHIR R4 search over JSON resources (R4 §3.1.1 "search"; spec: `specs/mcsd.md` §3): the
//! search parameters of each directory resource type with their element paths, string, token,
//! reference and date matching with the modifiers the directory supports, strict handling of
//! everything else (an unknown parameter or modifier is refused, not ignored), `_include` and
//! `_revinclude` requests, and paging. No IO: the caller hands in the resources.

use serde_json::Value;

/// The kind of a search parameter (R4 §3.1.1.4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    String,
    Token,
    Reference,
    Date,
}

/// One search parameter: its name, kind, and the element paths it reads (dotted, arrays
/// flattened at every step).
#[derive(Debug)]
pub struct ParamDef {
    pub name: &'static str,
    pub kind: Kind,
    pub paths: &'static [&'static str],
}

const fn p(name: &'static str, kind: Kind, paths: &'static [&'static str]) -> ParamDef {
    ParamDef { name, kind, paths }
}

/// Parameters every resource type has.
const COMMON: [ParamDef; 2] = [
    p("_id", Kind::Token, &["id"]),
    p("_lastUpdated", Kind::Date, &["meta.lastUpdated"]),
];

const ORGANIZATION: [ParamDef; 7] = [
    p("identifier", Kind::Token, &["identifier"]),
    p("name", Kind::String, &["name", "alias"]),
    p("active", Kind::Token, &["active"]),
    p("type", Kind::Token, &["type"]),
    p("partof", Kind::Reference, &["partOf"]),
    p("endpoint", Kind::Reference, &["endpoint"]),
    p("address-city", Kind::String, &["address.city"]),
];
const LOCATION: [ParamDef; 8] = [
    p("identifier", Kind::Token, &["identifier"]),
    p("name", Kind::String, &["name", "alias"]),
    p("organization", Kind::Reference, &["managingOrganization"]),
    p("partof", Kind::Reference, &["partOf"]),
    p("type", Kind::Token, &["type"]),
    p("status", Kind::Token, &["status"]),
    p("address-city", Kind::String, &["address.city"]),
    p("endpoint", Kind::Reference, &["endpoint"]),
];
const HEALTHCARE_SERVICE: [ParamDef; 9] = [
    p("identifier", Kind::Token, &["identifier"]),
    p("active", Kind::Token, &["active"]),
    p("name", Kind::String, &["name"]),
    p("organization", Kind::Reference, &["providedBy"]),
    p("location", Kind::Reference, &["location"]),
    p("service-type", Kind::Token, &["type"]),
    p("service-category", Kind::Token, &["category"]),
    p("specialty", Kind::Token, &["specialty"]),
    p("endpoint", Kind::Reference, &["endpoint"]),
];
const PRACTITIONER_ROLE: [ParamDef; 9] = [
    p("identifier", Kind::Token, &["identifier"]),
    p("active", Kind::Token, &["active"]),
    p("organization", Kind::Reference, &["organization"]),
    p("location", Kind::Reference, &["location"]),
    p("service", Kind::Reference, &["healthcareService"]),
    p("role", Kind::Token, &["code"]),
    p("specialty", Kind::Token, &["specialty"]),
    p("practitioner", Kind::Reference, &["practitioner"]),
    p("endpoint", Kind::Reference, &["endpoint"]),
];
const ENDPOINT: [ParamDef; 6] = [
    p("identifier", Kind::Token, &["identifier"]),
    p("organization", Kind::Reference, &["managingOrganization"]),
    p("status", Kind::Token, &["status"]),
    p("connection-type", Kind::Token, &["connectionType"]),
    p("payload-type", Kind::Token, &["payloadType"]),
    p("name", Kind::String, &["name"]),
];

/// The resource types of the directory, in the order the CapabilityStatement lists them.
pub const TYPES: [&str; 5] = [
    "Organization",
    "Location",
    "HealthcareService",
    "PractitionerRole",
    "Endpoint",
];

/// The type-specific search parameters of `type_`, or `None` for a type the directory does
/// not serve.
pub fn params_of(type_: &str) -> Option<&'static [ParamDef]> {
    Some(match type_ {
        "Organization" => &ORGANIZATION,
        "Location" => &LOCATION,
        "HealthcareService" => &HEALTHCARE_SERVICE,
        "PractitionerRole" => &PRACTITIONER_ROLE,
        "Endpoint" => &ENDPOINT,
        _ => return None,
    })
}

/// The definition of parameter `name` of `type_` (common ones included).
pub fn param(type_: &str, name: &str) -> Option<&'static ParamDef> {
    COMMON
        .iter()
        .chain(params_of(type_)?.iter())
        .find(|d| d.name == name)
}

/// Every search parameter of `type_` with its kind's FHIR name (for a CapabilityStatement).
pub fn param_names(type_: &str) -> Vec<(&'static str, &'static str)> {
    COMMON
        .iter()
        .chain(params_of(type_).unwrap_or(&[]).iter())
        .map(|d| {
            let kind = match d.kind {
                Kind::String => "string",
                Kind::Token => "token",
                Kind::Reference => "reference",
                Kind::Date => "date",
            };
            (d.name, kind)
        })
        .collect()
}

/// The reference parameters of `type_` (what `_include` can follow from it).
pub fn reference_params(type_: &str) -> Vec<&'static str> {
    params_of(type_)
        .unwrap_or(&[])
        .iter()
        .filter(|d| d.kind == Kind::Reference)
        .map(|d| d.name)
        .collect()
}

/// The resource type reference parameter `name` of `source` points at.
pub fn target_of(source: &str, name: &str) -> &'static str {
    match (source, name) {
        (_, "organization") | ("Organization", "partof") => "Organization",
        (_, "location") | ("Location", "partof") => "Location",
        (_, "service") => "HealthcareService",
        (_, "endpoint") => "Endpoint",
        (_, "practitioner") => "Practitioner",
        _ => "",
    }
}

/// The `_revinclude` values that reach `type_`: `Source:param` for every reference parameter
/// of a directory type that points at it.
pub fn revincludes_onto(type_: &str) -> Vec<String> {
    TYPES
        .iter()
        .flat_map(|s| {
            reference_params(s)
                .into_iter()
                .filter(move |p| target_of(s, p) == type_)
                .map(move |p| format!("{s}:{p}"))
        })
        .collect()
}

/// A search that cannot be answered (400 with an `OperationOutcome`, R4 §3.1.1.4).
#[derive(Debug, PartialEq)]
pub struct Refused(pub String);

/// Page size without `_count`, and the largest one.
pub const DEFAULT_COUNT: usize = 100;
pub const MAX_COUNT: usize = 1000;

/// One filter: a parameter, its modifier, and its AND groups (each a comma list of ORs).
#[derive(Debug)]
pub struct Filter {
    pub def: &'static ParamDef,
    pub modifier: Option<String>,
    pub groups: Vec<String>,
}

/// `_include` / `_revinclude` request: `source type : reference parameter`.
#[derive(Debug, PartialEq)]
pub struct Inclusion {
    pub source: String,
    pub param: &'static str,
}

/// A search request, checked.
#[derive(Debug)]
pub struct Search {
    pub filters: Vec<Filter>,
    pub includes: Vec<Inclusion>,
    pub revincludes: Vec<Inclusion>,
    pub count: usize,
    pub offset: usize,
}

/// Parses the query parameters of a search on `type_`; anything the directory does not
/// support is refused with its reason (strict handling: a server that ignored it would give
/// the client wider results than asked, R4 §3.1.1.4.x).
pub fn parse(type_: &str, params: &[(String, String)]) -> Result<Search, Refused> {
    let mut out = Search {
        filters: Vec::new(),
        includes: Vec::new(),
        revincludes: Vec::new(),
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
                .map_err(|_| Refused(format!("{what} must be a number")))
        };
        match name {
            "_count" => out.count = number("_count")?.clamp(1, MAX_COUNT),
            "_offset" => out.offset = number("_offset")?,
            "_format" => check_format(value)?,
            "_include" | "_revinclude" => {
                if let Some(m) = modifier {
                    return Err(Refused(format!("{name}:{m} is not supported")));
                }
                let inc = inclusion(value)?;
                if name == "_include" {
                    if inc.source != type_ {
                        return Err(Refused(format!(
                            "_include={value} does not start from {type_}"
                        )));
                    }
                    out.includes.push(inc);
                } else {
                    out.revincludes.push(inc);
                }
            }
            n => {
                let def = param(type_, n).ok_or_else(|| {
                    Refused(format!(
                        "unknown search parameter {n} for {type_} (supported: {})",
                        supported(type_)
                    ))
                })?;
                check_modifier(def, modifier.as_deref())?;
                match out
                    .filters
                    .iter_mut()
                    .find(|f| f.def.name == n && f.modifier == modifier)
                {
                    Some(f) => f.groups.push(value.clone()),
                    None => out.filters.push(Filter {
                        def,
                        modifier,
                        groups: vec![value.clone()],
                    }),
                }
            }
        }
    }
    Ok(out)
}

/// `_format` must ask for JSON: the directory serves no XML.
pub fn check_format(value: &str) -> Result<(), Refused> {
    match value {
        "json" | "application/json" | "application/fhir+json" => Ok(()),
        _ => Err(Refused("only JSON is served".into())),
    }
}

fn supported(type_: &str) -> String {
    let mut names: Vec<&str> = COMMON.iter().map(|d| d.name).collect();
    names.extend(params_of(type_).unwrap_or(&[]).iter().map(|d| d.name));
    names.extend(["_include", "_revinclude", "_count", "_offset"]);
    names.join(", ")
}

fn check_modifier(def: &ParamDef, modifier: Option<&str>) -> Result<(), Refused> {
    let ok = matches!(
        (def.kind, modifier),
        (_, None)
            | (Kind::String, Some("exact" | "contains"))
            | (Kind::Reference, Some("identifier"))
    );
    if ok {
        Ok(())
    } else {
        Err(Refused(format!(
            "the modifier :{} is not supported on {}",
            modifier.unwrap_or_default(),
            def.name
        )))
    }
}

fn inclusion(value: &str) -> Result<Inclusion, Refused> {
    let (source, name) = value
        .split_once(':')
        .ok_or_else(|| Refused(format!("{value}: an inclusion is <type>:<parameter>")))?;
    if name.contains(':') {
        return Err(Refused(format!(
            "{value}: a target type on an inclusion is not supported"
        )));
    }
    match param(source, name) {
        Some(d) if d.kind == Kind::Reference => Ok(Inclusion {
            source: source.to_owned(),
            param: d.name,
        }),
        _ => Err(Refused(format!(
            "{value}: not a reference search parameter of a directory resource"
        ))),
    }
}

/// The elements at `path` (dotted; arrays flattened at every step).
pub fn values<'a>(r: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![r];
    for step in path.split('.') {
        let mut next = Vec::new();
        for v in cur {
            match v.get(step) {
                Some(Value::Array(a)) => next.extend(a.iter()),
                Some(x) => next.push(x),
                None => {}
            }
        }
        cur = next;
    }
    cur
}

/// The elements of every path of `def`.
fn elements<'a>(r: &'a Value, def: &ParamDef) -> Vec<&'a Value> {
    def.paths.iter().flat_map(|p| values(r, p)).collect()
}

/// Does `r` match every filter of `s`?
pub fn matches(r: &Value, s: &Search) -> bool {
    s.filters.iter().all(|f| {
        let els = elements(r, f.def);
        f.groups.iter().all(|g| {
            g.split(',')
                .any(|v| els.iter().any(|e| element_matches(f, e, v)))
        })
    })
}

fn element_matches(f: &Filter, e: &Value, wanted: &str) -> bool {
    match f.def.kind {
        Kind::String => e
            .as_str()
            .is_some_and(|s| string_matches(f.modifier.as_deref(), s, wanted)),
        Kind::Token => token_matches(&codes(e), wanted),
        Kind::Reference => match f.modifier.as_deref() {
            Some("identifier") => e
                .get("identifier")
                .is_some_and(|i| token_matches(&codes(i), wanted)),
            _ => e
                .get("reference")
                .and_then(Value::as_str)
                .is_some_and(|r| reference_matches(r, wanted)),
        },
        Kind::Date => e
            .as_str()
            .and_then(instant_ms)
            .zip(DateQuery::parse(wanted))
            .is_some_and(|(t, q)| q.holds(t)),
    }
}

/// The `(system, code)` pairs a token parameter sees in an element: a code or boolean (no
/// system), a Coding, a CodeableConcept's codings, an Identifier.
fn codes(e: &Value) -> Vec<(&str, String)> {
    match e {
        Value::String(s) => vec![("", s.clone())],
        Value::Bool(b) => vec![("", b.to_string())],
        Value::Object(o) => {
            if let Some(Value::Array(codings)) = o.get("coding") {
                return codings.iter().flat_map(codes).collect();
            }
            let system = o.get("system").and_then(Value::as_str).unwrap_or("");
            o.get("code")
                .or_else(|| o.get("value"))
                .and_then(Value::as_str)
                .map(|c| vec![(system, c.to_owned())])
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// FHIR token matching: `system|code`, `|code` (no system), `system|`, or `code` (any system).
pub fn token_matches(pairs: &[(&str, String)], wanted: &str) -> bool {
    match wanted.split_once('|') {
        None => pairs.iter().any(|(_, c)| c == wanted),
        Some(("", c)) => pairs.iter().any(|(s, x)| s.is_empty() && x == c),
        Some((s, "")) => pairs.iter().any(|(x, _)| *x == s),
        Some((s, c)) => pairs.iter().any(|(x, y)| *x == s && y == c),
    }
}

/// A reference (`Type/id` or an absolute URL ending in it) against a wanted `Type/id`, `id`
/// or URL.
fn reference_matches(reference: &str, wanted: &str) -> bool {
    let tail = |s: &str| -> (Option<String>, String) {
        let parts: Vec<&str> = s.trim_end_matches('/').rsplitn(3, '/').collect();
        match parts.as_slice() {
            [id, t, ..] => (Some((*t).to_owned()), (*id).to_owned()),
            [id] => (None, (*id).to_owned()),
            _ => (None, String::new()),
        }
    };
    let (rt, rid) = tail(reference);
    let (wt, wid) = tail(wanted);
    rid == wid && (wt.is_none() || wt == rt)
}

/// The `Type/id` a relative or absolute reference points at.
pub fn reference_target(reference: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = reference.trim_end_matches('/').rsplitn(3, '/').collect();
    match parts.as_slice() {
        [id, t, ..] if !id.is_empty() && t.chars().next().is_some_and(char::is_uppercase) => {
            Some(((*t).to_owned(), (*id).to_owned()))
        }
        _ => None,
    }
}

/// The references of `r` under reference parameter `param` of its type.
pub fn references(r: &Value, type_: &str, param_name: &str) -> Vec<(String, String)> {
    let Some(def) = param(type_, param_name) else {
        return Vec::new();
    };
    elements(r, def)
        .into_iter()
        .filter_map(|e| e.get("reference").and_then(Value::as_str))
        .filter_map(reference_target)
        .collect()
}

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
pub fn string_matches(modifier: Option<&str>, value: &str, wanted: &str) -> bool {
    match modifier {
        Some("exact") => value == wanted,
        Some("contains") => fold(value).contains(&fold(wanted)),
        _ => fold(value).starts_with(&fold(wanted)),
    }
}

/// An RFC 3339 instant (any offset) in Unix milliseconds.
pub fn instant_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A FHIR date search value (R4 §3.1.1.4.2): a prefix and the range its precision covers.
#[derive(Debug, PartialEq)]
pub struct DateQuery {
    prefix: &'static str,
    /// `[from, to)` in Unix milliseconds.
    from: i64,
    to: i64,
}

impl DateQuery {
    /// `[eq|gt|ge|lt|le]` then `YYYY`, `YYYY-MM`, `YYYY-MM-DD` (UTC) or a full dateTime.
    pub fn parse(v: &str) -> Option<DateQuery> {
        let (prefix, rest) = ["eq", "gt", "ge", "lt", "le"]
            .iter()
            .find_map(|p| v.strip_prefix(p).map(|r| (*p, r)))
            .unwrap_or(("eq", v));
        let (from, to) = date_range(rest)?;
        Some(DateQuery { prefix, from, to })
    }

    /// Does instant `t` satisfy the query?
    pub fn holds(&self, t: i64) -> bool {
        match self.prefix {
            "gt" => t >= self.to,
            "ge" => t >= self.from,
            "lt" => t < self.from,
            "le" => t < self.to,
            _ => self.from <= t && t < self.to,
        }
    }

    /// The earliest instant the query admits (for `_since`, which is `ge`).
    pub fn from_ms(&self) -> i64 {
        self.from
    }
}

fn date_range(s: &str) -> Option<(i64, i64)> {
    if s.contains('T') {
        let t = instant_ms(s)?;
        // A full instant covers its second (or the fraction given).
        let to = if s.contains('.') { t + 1 } else { t + 1000 };
        return Some((t, to));
    }
    let parts: Vec<&str> = s.split('-').collect();
    let num = |x: &str, len: usize| -> Option<i32> {
        (x.len() == len && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse().ok())
            .flatten()
    };
    let day = |y: i32, m: u8, d: u8| -> Option<i64> {
        let month = time::Month::try_from(m).ok()?;
        let date = time::Date::from_calendar_date(y, month, d).ok()?;
        Some(date.midnight().assume_utc().unix_timestamp() * 1000)
    };
    match parts.as_slice() {
        [y] => {
            let y = num(y, 4)?;
            Some((day(y, 1, 1)?, day(y + 1, 1, 1)?))
        }
        [y, m] => {
            let (y, m) = (num(y, 4)?, u8::try_from(num(m, 2)?).ok()?);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            Some((day(y, m, 1)?, day(ny, nm, 1)?))
        }
        [y, m, d] => {
            let (y, m, d) = (
                num(y, 4)?,
                u8::try_from(num(m, 2)?).ok()?,
                u8::try_from(num(d, 2)?).ok()?,
            );
            let from = day(y, m, d)?;
            Some((from, from + 86_400_000))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

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
    fn tokens_match_codings_identifiers_and_codes() {
        let hs = json!({"resourceType": "HealthcareService", "active": true,
            "identifier": [{"system": "urn:s", "value": "42"}],
            "type": [{"coding": [{"system": "urn:t", "code": "ortho"}]}]});
        let run =
            |k: &str, v: &str| matches(&hs, &parse("HealthcareService", &q(&[(k, v)])).unwrap());
        assert!(run("identifier", "urn:s|42"));
        assert!(run("identifier", "42"));
        assert!(!run("identifier", "|42"));
        assert!(run("service-type", "urn:t|ortho"));
        assert!(run("service-type", "urn:t|"));
        assert!(!run("service-type", "urn:x|ortho"));
        assert!(run("active", "true"));
        assert!(!run("active", "false"));
        assert!(run("identifier", "7,42"));
    }

    #[test]
    fn references_match_relative_absolute_and_identifier() {
        let loc = json!({"resourceType": "Location",
            "managingOrganization": {"reference": "Organization/abc",
                                     "identifier": {"system": "urn:ura", "value": "1"}}});
        let run = |k: &str, v: &str| matches(&loc, &parse("Location", &q(&[(k, v)])).unwrap());
        assert!(run("organization", "Organization/abc"));
        assert!(run("organization", "abc"));
        assert!(run("organization", "https://x/fhir/Organization/abc"));
        assert!(!run("organization", "Location/abc"));
        assert!(!run("organization", "abcd"));
        assert!(run("organization:identifier", "urn:ura|1"));
        assert_eq!(
            references(&loc, "Location", "organization"),
            vec![("Organization".to_owned(), "abc".to_owned())]
        );
    }

    #[test]
    fn dates_follow_prefix_and_precision() {
        let t = instant_ms("2025-02-07T13:28:17.239+02:00").unwrap();
        assert_eq!(t, instant_ms("2025-02-07T11:28:17.239Z").unwrap());
        let d = |v: &str| DateQuery::parse(v).unwrap().holds(t);
        assert!(d("2025"));
        assert!(d("2025-02"));
        assert!(d("2025-02-07"));
        assert!(!d("2025-02-08"));
        assert!(d("ge2025-02-07T11:28:17Z"));
        assert!(!d("gt2025-02-07"));
        assert!(d("lt2025-02-08"));
        assert!(d("le2025-02-07"));
        assert!(DateQuery::parse("2025-13").is_none());
        assert!(DateQuery::parse("yesterday").is_none());
    }

    #[test]
    fn what_is_not_supported_is_refused() {
        let refused = |k: &str, v: &str| parse("Organization", &q(&[(k, v)])).is_err();
        assert!(!refused("name", "a"));
        assert!(!refused("name:contains", "a"));
        assert!(refused("nmae", "a"));
        assert!(refused("name:missing", "true"));
        assert!(refused("identifier:text", "x"));
        assert!(refused("_count", "x"));
        assert!(refused("_format", "xml"));
        assert!(refused("_include", "Location:organization"));
        assert!(refused("_include", "Organization:name"));
        assert!(refused("_include:iterate", "Organization:endpoint"));
        assert!(!refused("_include", "Organization:endpoint"));
        assert!(!refused("_revinclude", "Location:organization"));
        assert_eq!(
            parse("Organization", &q(&[("_count", "5000")]))
                .unwrap()
                .count,
            MAX_COUNT
        );
        assert!(parse("Patient", &q(&[("name", "x")])).is_err());
    }
}
