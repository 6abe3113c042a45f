//! The policy information point (spec: `specs/pdp.md` §6): what a decision needs from the data
//! holder's own FHIR API, which knoop already knows as the tenant's source system (`[source]`):
//! the BSN of a patient named by id, and the implied consents ("veronderstelde toestemming") of
//! the resource a request is about, as FHIR `Consent` resources with a scope per policy.

use serde_json::{json, Value};

use super::input::BSN_SYSTEM;

pub use crate::directory::mcsd::URA_SYSTEM;
/// The code system of the consent scopes (the national guide's `nl-gf-consent-scope`).
pub const CONSENT_SCOPE_SYSTEM: &str =
    "http://nuts-foundation.github.io/nl-generic-functions-ig/CodeSystem/nl-gf-consent-scope";
/// The action a consent must grant.
const ACCESS_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/consentaction";

/// The one BSN among `identifiers`; an error for none or several.
pub fn bsn_of(identifiers: &[Value]) -> Result<String, String> {
    let bsns: Vec<&str> = identifiers
        .iter()
        .filter(|i| i["system"] == BSN_SYSTEM)
        .filter_map(|i| i["value"].as_str())
        .filter(|v| !v.is_empty())
        .collect();
    match bsns.as_slice() {
        [b] => Ok((*b).to_owned()),
        [] => Err("the patient record has no BSN".into()),
        _ => Err("the patient record has several BSNs".into()),
    }
}

fn has_ura(identifier: &Value, ura: &str) -> bool {
    identifier["system"] == URA_SYSTEM && identifier["value"] == ura
}

/// The scopes `consents` grant the requester `requester_ura` on `reference`, held by
/// `holder_ura`: each active consent whose scope is from the guide's code system, whose
/// `organization` is the holder, which grants `access` to an actor with the requester's URA,
/// on data referencing `reference`. A `deny` for a scope supersedes every `permit` for it.
/// As the input's `resource.consents`: `[{"scope": ...}]`.
pub fn consent_scopes(
    consents: &[Value],
    holder_ura: &str,
    requester_ura: &str,
    reference: &str,
) -> Vec<Value> {
    let mut permitted: Vec<String> = Vec::new();
    let mut denied: Vec<String> = Vec::new();
    for c in consents {
        if c["resourceType"] != "Consent" || c["status"] != "active" {
            continue;
        }
        let scope = &c["scope"]["coding"][0];
        let Some(code) = scope["code"].as_str() else {
            continue;
        };
        if scope["system"] != CONSENT_SCOPE_SYSTEM {
            continue;
        }
        let of_holder = c["organization"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| has_ura(&o["identifier"], holder_ura));
        let p = &c["provision"];
        let access = p["action"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["coding"].as_array().into_iter().flatten())
            .any(|c| c["system"] == ACCESS_SYSTEM && c["code"] == "access");
        let actor = p["actor"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| has_ura(&a["reference"]["identifier"], requester_ura));
        let data = p["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["reference"]["reference"] == reference);
        if !(of_holder && access && actor && data) {
            continue;
        }
        match p["type"].as_str() {
            Some("permit") => permitted.push(code.to_owned()),
            Some("deny") => denied.push(code.to_owned()),
            _ => {}
        }
    }
    permitted.sort();
    permitted.dedup();
    permitted
        .into_iter()
        .filter(|s| !denied.contains(s))
        .map(|scope| json!({"scope": scope}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent(kind: &str, scope: &str, holder: &str, actor: &str, data: &str) -> Value {
        json!({"resourceType": "Consent", "status": "active",
               "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": scope}]},
               "organization": [{"identifier": {"system": URA_SYSTEM, "value": holder}}],
               "provision": {"type": kind,
                   "action": [{"coding": [{"system": ACCESS_SYSTEM, "code": "access"}]}],
                   "actor": [{"reference": {"identifier": {"system": URA_SYSTEM, "value": actor}}}],
                   "data": [{"reference": {"reference": data}}]}})
    }

    #[test]
    fn implied_consents_match_holder_actor_data_and_scope() {
        let t = "Task/t1";
        let ok = consent("permit", "eoverdracht", "30", "40", t);
        assert_eq!(
            consent_scopes(std::slice::from_ref(&ok), "30", "40", t),
            vec![json!({"scope": "eoverdracht"})]
        );
        for other in [
            consent("permit", "eoverdracht", "31", "40", t),
            consent("permit", "eoverdracht", "30", "41", t),
            consent("permit", "eoverdracht", "30", "40", "Task/t2"),
        ] {
            assert!(consent_scopes(&[other], "30", "40", t).is_empty());
        }
        let mut inactive = ok.clone();
        inactive["status"] = json!("inactive");
        assert!(consent_scopes(&[inactive], "30", "40", t).is_empty());
        let mut other_system = ok.clone();
        other_system["scope"]["coding"][0]["system"] = json!("urn:x");
        assert!(consent_scopes(&[other_system], "30", "40", t).is_empty());
        // A deny for the scope wins.
        let deny = consent("deny", "eoverdracht", "30", "40", t);
        assert!(consent_scopes(&[ok, deny], "30", "40", t).is_empty());
    }

    #[test]
    fn the_bsn_is_the_one_bsn_identifier() {
        let bsn = |v: &str| json!({"system": BSN_SYSTEM, "value": v});
        let other = json!({"system": "urn:x", "value": "1"});
        assert_eq!(
            bsn_of(&[other.clone(), bsn("999900109")]).unwrap(),
            "999900109"
        );
        assert!(bsn_of(std::slice::from_ref(&other)).is_err());
        assert!(bsn_of(&[bsn("1"), bsn("2")]).is_err());
    }
}
