//! What FHIR R4 asks of a directory resource that came from elsewhere (an external directory,
//! a bridge): the elements it requires and its JSON without empty elements.

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
