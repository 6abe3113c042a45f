//! DIF Presentation Exchange 2.0 (spec: `specs/tokens.md` §7; Nuts RFC021 §4.1): a
//! presentation definition says which credentials a verifier wants (input descriptors with
//! constraints on fields), and a presentation submission says which credential of a
//! presentation answers which descriptor. [`check_definition`] refuses what this subset does
//! not evaluate; [`evaluate`] checks a submission against a definition and a presentation.
//!
//! Supported: `input_descriptors` with `constraints.fields` (`path`: JSONPath, RFC 9535;
//! `filter`: JSON Schema, without remote references; `optional`), `constraints.limit_disclosure`
//! absent or `preferred`; `descriptor_map` entries with `path` into the presentation. Not
//! supported (refused): `submission_requirements`, `path_nested`, `predicate`,
//! `limit_disclosure: required`.

use serde_json::Value;
use serde_json_path::JsonPath;

/// Most input descriptors, and fields per descriptor.
const MAX_DESCRIPTORS: usize = 16;
const MAX_FIELDS: usize = 32;

/// Why a definition or submission was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeError {
    #[error("presentation definition: {0}")]
    Definition(String),
    #[error("presentation submission: {0}")]
    Submission(String),
    #[error("input descriptor {0} is not satisfied: {1}")]
    Unsatisfied(String, String),
}

fn def_err(s: impl Into<String>) -> PeError {
    PeError::Definition(s.into())
}

fn sub_err(s: impl Into<String>) -> PeError {
    PeError::Submission(s.into())
}

fn descriptors(definition: &Value) -> Result<&Vec<Value>, PeError> {
    let d = definition
        .get("input_descriptors")
        .and_then(Value::as_array)
        .ok_or_else(|| def_err("input_descriptors is required"))?;
    if d.len() > MAX_DESCRIPTORS {
        return Err(def_err(format!(
            "more than {MAX_DESCRIPTORS} input descriptors"
        )));
    }
    Ok(d)
}

fn fields(descriptor: &Value) -> Result<Vec<&Value>, PeError> {
    let c = descriptor.get("constraints");
    if let Some(ld) = c.and_then(|c| c.get("limit_disclosure")) {
        if ld != "preferred" {
            return Err(def_err(
                "limit_disclosure other than preferred is not supported",
            ));
        }
    }
    let f: Vec<&Value> = c
        .and_then(|c| c.get("fields"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if f.len() > MAX_FIELDS {
        return Err(def_err(format!("more than {MAX_FIELDS} fields")));
    }
    Ok(f)
}

fn paths(field: &Value) -> Result<Vec<JsonPath>, PeError> {
    let p = field
        .get("path")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| def_err("a field needs a non-empty path array"))?;
    p.iter()
        .map(|p| {
            let s = p.as_str().ok_or_else(|| def_err("paths are strings"))?;
            JsonPath::parse(s).map_err(|e| def_err(format!("path {s}: {e}")))
        })
        .collect()
}

fn filter(field: &Value) -> Result<Option<jsonschema::Validator>, PeError> {
    if field.get("predicate").is_some() {
        return Err(def_err("predicate is not supported"));
    }
    field
        .get("filter")
        .map(|f| jsonschema::validator_for(f).map_err(|e| def_err(format!("filter: {e}"))))
        .transpose()
}

/// Checks that `definition` is one this module evaluates: an `id`, input descriptors with ids,
/// parseable paths and compilable filters, and no unsupported feature.
pub fn check_definition(definition: &Value) -> Result<(), PeError> {
    if definition.get("id").and_then(Value::as_str).is_none() {
        return Err(def_err("id is required"));
    }
    if definition.get("submission_requirements").is_some() {
        return Err(def_err("submission_requirements are not supported"));
    }
    for d in descriptors(definition)? {
        if d.get("id").and_then(Value::as_str).is_none() {
            return Err(def_err("every input descriptor needs an id"));
        }
        for f in fields(d)? {
            paths(f)?;
            filter(f)?;
        }
    }
    Ok(())
}

/// Whether `credential` meets the constraints of `descriptor`: every non-optional field has a
/// path that finds a value passing its filter.
fn satisfies(descriptor: &Value, credential: &Value) -> Result<(), String> {
    for f in fields(descriptor).map_err(|e| e.to_string())? {
        if f.get("optional").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let filter = filter(f).map_err(|e| e.to_string())?;
        let found = paths(f).map_err(|e| e.to_string())?.iter().any(|p| {
            p.query(credential)
                .all()
                .into_iter()
                .any(|v| filter.as_ref().is_none_or(|s| s.is_valid(v)))
        });
        if !found {
            let shown = f.get("path").map(Value::to_string).unwrap_or_default();
            return Err(format!("no value at {shown} passes the filter"));
        }
    }
    Ok(())
}

/// Checks `submission` against `definition` for `presentation` (the presentation object, for a
/// JWT the `vp` claim), whose credentials decode to `credentials` (same order as
/// `verifiableCredential`). Every input descriptor must be answered by a descriptor map entry
/// whose `path` finds a credential of the presentation that meets the descriptor. Returns the
/// credential index of each descriptor.
pub fn evaluate(
    definition: &Value,
    submission: &Value,
    presentation: &Value,
    credentials: &[Value],
) -> Result<Vec<(String, usize)>, PeError> {
    check_definition(definition)?;
    if submission.get("definition_id") != definition.get("id") {
        return Err(sub_err("definition_id is not the definition of this scope"));
    }
    let map = submission
        .get("descriptor_map")
        .and_then(Value::as_array)
        .ok_or_else(|| sub_err("descriptor_map is required"))?;
    let raw: Vec<&Value> = match presentation.get("verifiableCredential") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for d in descriptors(definition)? {
        let id = d.get("id").and_then(Value::as_str).unwrap_or_default();
        let entry = map
            .iter()
            .find(|e| e.get("id").and_then(Value::as_str) == Some(id))
            .ok_or_else(|| PeError::Unsatisfied(id.into(), "no descriptor_map entry".into()))?;
        if entry.get("path_nested").is_some() {
            return Err(sub_err("path_nested is not supported"));
        }
        let path = entry
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| sub_err(format!("the entry for {id} has no path")))?;
        let path = JsonPath::parse(path).map_err(|e| sub_err(format!("path {path}: {e}")))?;
        let found = path
            .query(presentation)
            .exactly_one()
            .map_err(|_| sub_err(format!("the path for {id} must find one credential")))?;
        let index = raw
            .iter()
            .position(|c| std::ptr::eq(*c, found) || *c == found)
            .ok_or_else(|| sub_err(format!("the path for {id} does not name a credential")))?;
        let credential = credentials
            .get(index)
            .ok_or_else(|| sub_err(format!("credential {index} is missing")))?;
        satisfies(d, credential).map_err(|why| PeError::Unsatisfied(id.into(), why))?;
        out.push((id.to_owned(), index));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
