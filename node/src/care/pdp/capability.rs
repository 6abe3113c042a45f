//! The FHIR CapabilityStatement check of a policy (spec: `specs/pdp.md` §4): a policy may come
//! with the CapabilityStatement (R4) of the FHIR API it guards; a request conforms when the
//! statement lists its interaction for its resource type (or its operation), and every search
//! parameter, `_include` and `_revinclude` it uses. The result is the input's
//! `action.fhir_rest.capability_checked`, with the reason when it does not conform.

use serde::Deserialize;
use serde_json::Value;

/// The interactions a statement can allow; any other (system search, transaction, ...) is
/// not implemented for policies.
const CHECKED: [&str; 10] = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
    "operation",
];

#[derive(Debug, Default, Deserialize)]
pub struct CapabilityStatement {
    #[serde(default)]
    rest: Vec<Rest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rest {
    #[serde(default)]
    resource: Vec<Resource>,
    #[serde(default)]
    operation: Vec<Named>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    interaction: Vec<Code>,
    #[serde(default)]
    search_param: Vec<Named>,
    #[serde(default)]
    search_include: Vec<String>,
    #[serde(default)]
    search_rev_include: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Code {
    code: String,
}

#[derive(Debug, Default, Deserialize)]
struct Named {
    name: String,
}

/// Why a request does not conform: a reason code (`not_implemented`, `not_allowed`) and text.
#[derive(Debug, PartialEq)]
pub struct NonConformance {
    pub code: &'static str,
    pub description: String,
}

fn not_allowed(description: String) -> NonConformance {
    NonConformance {
        code: "not_allowed",
        description,
    }
}

impl CapabilityStatement {
    /// Reads a statement (JSON).
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// Checks the FHIR part of a policy input (`resource`, `action.fhir_rest`).
    pub fn check(&self, input: &Value) -> Result<(), NonConformance> {
        let rest = &input["action"]["fhir_rest"];
        let interaction = rest["interaction_type"].as_str().unwrap_or_default();
        let type_ = input["resource"]["type"].as_str().unwrap_or_default();
        if !CHECKED.contains(&interaction) {
            return Err(NonConformance {
                code: "not_implemented",
                description: format!("the interaction {interaction} is not supported by policies"),
            });
        }
        if interaction == "operation" {
            let op = rest["operation"].as_str().unwrap_or_default();
            let listed = self
                .rest
                .iter()
                .flat_map(|r| &r.operation)
                .any(|o| o.name == op);
            return if listed {
                Ok(())
            } else {
                Err(not_allowed(format!(
                    "operation {op} is not allowed on {type_}"
                )))
            };
        }
        let resources: Vec<&Resource> = self
            .rest
            .iter()
            .flat_map(|r| &r.resource)
            .filter(|r| r.type_ == type_)
            .collect();
        if !resources
            .iter()
            .any(|r| r.interaction.iter().any(|i| i.code == interaction))
        {
            return Err(not_allowed(format!(
                "the capability statement does not allow {interaction} on {type_}"
            )));
        }
        if interaction == "search-type" {
            let mut rejected: Vec<&str> = rest["search_params"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys())
                .map(String::as_str)
                .filter(|p| {
                    !resources
                        .iter()
                        .any(|r| r.search_param.iter().any(|s| s.name == *p))
                })
                .collect();
            rejected.sort_unstable();
            if !rejected.is_empty() {
                return Err(not_allowed(format!(
                    "search parameters not allowed: {}",
                    rejected.join(", ")
                )));
            }
        }
        for (field, what) in [("include", "_include"), ("revinclude", "_revinclude")] {
            let rejected: Vec<&str> = rest[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|i| {
                    !resources.iter().any(|r| {
                        let allowed = if field == "include" {
                            &r.search_include
                        } else {
                            &r.search_rev_include
                        };
                        allowed.iter().any(|a| a == i)
                    })
                })
                .collect();
            if !rejected.is_empty() {
                return Err(not_allowed(format!(
                    "{what} not allowed: {}",
                    rejected.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn statement() -> CapabilityStatement {
        CapabilityStatement::parse(
            r#"{"resourceType": "CapabilityStatement", "rest": [{"mode": "server",
                "resource": [{"type": "Patient", "interaction": [{"code": "search-type"}, {"code": "read"}],
                              "searchParam": [{"name": "identifier", "type": "token"}],
                              "searchInclude": ["Patient:general-practitioner"]}],
                "operation": [{"name": "lastn", "definition": "x"}]}]}"#,
        )
        .unwrap()
    }

    fn input(t: &str, interaction: &str, rest: Value) -> Value {
        let mut fhir_rest = json!({"interaction_type": interaction, "include": [], "revinclude": [],
                                   "search_params": {}, "operation": null});
        for (k, v) in rest.as_object().unwrap() {
            fhir_rest[k] = v.clone();
        }
        json!({"resource": {"type": t}, "action": {"fhir_rest": fhir_rest}})
    }

    #[test]
    fn conforming_requests_pass_and_the_others_say_why() {
        let s = statement();
        assert_eq!(s.check(&input("Patient", "read", json!({}))), Ok(()));
        assert_eq!(
            s.check(&input(
                "Patient",
                "search-type",
                json!({
                "search_params": {"identifier": [["x"]]},
                "include": ["Patient:general-practitioner"]})
            )),
            Ok(())
        );
        assert_eq!(
            s.check(&input(
                "Observation",
                "operation",
                json!({"operation": "lastn"})
            )),
            Ok(())
        );
        for (i, code) in [
            (input("Patient", "delete", json!({})), "not_allowed"),
            (input("Observation", "read", json!({})), "not_allowed"),
            (
                input(
                    "Patient",
                    "search-type",
                    json!({"search_params": {"name": [["x"]]}}),
                ),
                "not_allowed",
            ),
            (
                input(
                    "Patient",
                    "search-type",
                    json!({"include": ["Patient:organization"]}),
                ),
                "not_allowed",
            ),
            (
                input(
                    "Patient",
                    "search-type",
                    json!({"revinclude": ["Encounter:patient"]}),
                ),
                "not_allowed",
            ),
            (
                input("Observation", "operation", json!({"operation": "stats"})),
                "not_allowed",
            ),
            (
                input("Patient", "transaction", json!({})),
                "not_implemented",
            ),
        ] {
            assert_eq!(s.check(&i).unwrap_err().code, code, "{i}");
        }
    }
}
