//! What FHIR R4 asks of a directory resource that came from elsewhere (an external directory,
//! a bridge): the elements it requires and its JSON without empty elements; and the walk over
//! every `reference` in a resource, for whoever reads or rewrites them.

use serde_json::Value;

/// The elements FHIR R4 requires (cardinality 1..) and the invariants the directory relies on.
pub fn r4_required(type_: &str, r: &Value) -> Result<(), String> {
    let present = |e: &str| match r.get(e) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    let required: &[&str] = match type_ {
        "Endpoint" => &["status", "connectionType", "payloadType", "address"],
        _ => &[],
    };
    if let Some(missing) = required.iter().find(|e| !present(e)) {
        return Err(format!("{type_}.{missing} is required (FHIR R4)"));
    }
    if type_ == "Organization" && !present("identifier") && !present("name") {
        return Err("an Organization has an identifier or a name (FHIR R4 org-1)".into());
    }
    Ok(())
}

/// Removes empty strings, arrays and objects (FHIR JSON has none), innermost first.
pub fn drop_empty(v: &mut Value) {
    let empty = |x: &Value| match x {
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        _ => false,
    };
    match v {
        Value::Object(o) => {
            o.values_mut().for_each(drop_empty);
            o.retain(|_, x| !empty(x));
        }
        Value::Array(a) => {
            a.iter_mut().for_each(drop_empty);
            a.retain(|x| !empty(x));
        }
        _ => {}
    }
}

/// Calls `f` with every `reference` string in `v` (a resource, or any part of one).
pub fn visit_references(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("reference", Value::String(r)) => f(r),
                    _ => visit_references(x, f),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| visit_references(x, f)),
        _ => {}
    }
}

/// Replaces every `reference` string in `v` for which `f` gives a new one.
pub fn map_references(v: &mut Value, f: &mut impl FnMut(&str) -> Option<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                match (k.as_str(), &mut *x) {
                    ("reference", Value::String(r)) => {
                        if let Some(new) = f(r) {
                            *r = new;
                        }
                    }
                    _ => map_references(x, f),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| map_references(x, f)),
        _ => {}
    }
}
