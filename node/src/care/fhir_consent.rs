//! Consents as FHIR `Consent` resources (spec: `specs/fhir-consent.md`): the IHE PCF Consent
//! the national guide reuses for a DHTV, read into a knoop consent registration, and knoop's
//! `PatientConsentCredential`s written out as such. No IO: the directory lookups (URA ↔ DID)
//! come in as functions.

use knoop_vc::types::{claims, Claims, PatientConsent, Selector};
use serde_json::{json, Value};

use crate::care::consent::StoredConsent;
use crate::care::consent_registration::ConsentRequest;
use crate::care::nvi::{categories_of, BSN_SYSTEM, URA_SYSTEM};

/// `Consent.scope` of a privacy consent.
pub const SCOPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
/// `Consent.category` (IHE PCF): LOINC "Patient consent".
pub const LOINC: &str = "http://loinc.org";
pub const CONSENT_CATEGORY: &str = "59284-0";
/// `provision.purpose`: v3 ActReason (`TREAT` regular care, `ETREAT` emergency).
pub const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// `provision.actor.role`: v3 ParticipationType (`CST` custodian: the holder; `IRCP`
/// information recipient: the requester).
pub const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// `provision.class`: the national guide's data categories (FHIR resource type names).
pub const DATA_CATEGORIES: &str =
    "http://minvws.github.io/generiekefuncties-docs/CodeSystem/nl-gf-data-categories-cs";
/// An actor named by organisation type (knoop's `organizationType`).
pub const ORGANIZATION_TYPE_SYSTEM: &str = "urn:knoop:organization-type";

/// Why a `Consent` cannot be registered: status 400 (`invalid`) or 422 (`processing`).
#[derive(Debug, PartialEq)]
pub struct ConsentError {
    pub status: u16,
    pub code: &'static str,
    pub diagnostics: String,
}

fn invalid(d: impl Into<String>) -> ConsentError {
    ConsentError {
        status: 400,
        code: "invalid",
        diagnostics: d.into(),
    }
}

fn unprocessable(d: impl Into<String>) -> ConsentError {
    ConsentError {
        status: 422,
        code: "processing",
        diagnostics: d.into(),
    }
}

/// The `(system, code)` pairs of a Coding, a CodeableConcept, or a list of either.
fn codings(v: &Value) -> Vec<(&str, &str)> {
    match v {
        Value::Array(a) => a.iter().flat_map(codings).collect(),
        Value::Object(o) if o.contains_key("coding") => codings(&o["coding"]),
        Value::Object(_) => match (v["system"].as_str(), v["code"].as_str()) {
            (Some(s), Some(c)) => vec![(s, c)],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Reads a `Consent` the tenant `issuer` (URA `ura`) records (`specs/fhir-consent.md` §2):
/// the patient's BSN and the registration. `did_of` finds the DID of an organisation by URA.
pub fn read(
    c: &Value,
    issuer: &str,
    ura: &str,
    did_of: impl Fn(&str) -> Option<String>,
) -> Result<(String, ConsentRequest), ConsentError> {
    if c["resourceType"] != "Consent" {
        return Err(invalid("the resource is not a Consent"));
    }
    if c["status"] != "active" {
        return Err(unprocessable(
            "a Consent is recorded with status active (revoke one with status inactive)",
        ));
    }
    if !codings(&c["scope"]).contains(&(SCOPE_SYSTEM, "patient-privacy")) {
        return Err(unprocessable(format!(
            "Consent.scope must be {SCOPE_SYSTEM}#patient-privacy"
        )));
    }
    if c["category"].as_array().is_none_or(|a| a.is_empty()) {
        return Err(invalid("Consent.category is required"));
    }
    let patient = &c["patient"]["identifier"];
    let bsn = match (patient["system"].as_str(), patient["value"].as_str()) {
        (Some(BSN_SYSTEM), Some(v)) if !v.is_empty() => v.to_owned(),
        _ => {
            return Err(invalid(format!(
                "Consent.patient.identifier is the BSN ({BSN_SYSTEM})"
            )))
        }
    };
    for o in c["organization"].as_array().into_iter().flatten() {
        let id = &o["identifier"];
        if id["system"] != URA_SYSTEM || id["value"] != ura {
            return Err(unprocessable(format!(
                "Consent.organization is the recording organisation ({URA_SYSTEM}|{ura})"
            )));
        }
    }
    let p = &c["provision"];
    let permit = match p["type"].as_str() {
        Some("permit") => true,
        Some("deny") => false,
        _ => return Err(invalid("Consent.provision.type is permit or deny")),
    };
    let mut purpose = Vec::new();
    for (system, code) in codings(&p["purpose"]) {
        let knoop = match (system, code) {
            (ACT_REASON, "TREAT") => "regular-care",
            (ACT_REASON, "ETREAT") => "emergency",
            _ => {
                return Err(unprocessable(format!(
                    "provision.purpose {system}#{code}: only {ACT_REASON}#TREAT and #ETREAT"
                )))
            }
        };
        if !purpose.iter().any(|x| x == knoop) {
            purpose.push(knoop.to_owned());
        }
    }
    if purpose.is_empty() {
        return Err(unprocessable(format!(
            "provision.purpose is required ({ACT_REASON}#TREAT, #ETREAT)"
        )));
    }
    let mut data_categories: Vec<String> = Vec::new();
    for (system, code) in codings(&p["class"]) {
        if system != DATA_CATEGORIES {
            return Err(unprocessable(format!(
                "provision.class {system}#{code}: codes are from {DATA_CATEGORIES}"
            )));
        }
        let cats = categories_of(code);
        if cats.is_empty() {
            return Err(unprocessable(format!(
                "provision.class {code} is not a category this network shares"
            )));
        }
        for cat in cats {
            if !data_categories.contains(&cat) {
                data_categories.push(cat);
            }
        }
    }
    if data_categories.is_empty() {
        data_categories.push("*".into());
    }
    let (mut holders, mut requesters) = (Selector::default(), Selector::default());
    for a in p["actor"].as_array().into_iter().flatten() {
        let target = match codings(&a["role"]).first() {
            Some((PARTICIPATION, "CST")) => &mut holders,
            Some((PARTICIPATION, "IRCP")) => &mut requesters,
            _ => {
                return Err(unprocessable(format!(
                    "provision.actor.role is {PARTICIPATION}#CST (holder) or #IRCP (recipient)"
                )))
            }
        };
        let id = &a["reference"]["identifier"];
        match (id["system"].as_str(), id["value"].as_str()) {
            (Some(URA_SYSTEM), Some(u)) => {
                let did = did_of(u).ok_or_else(|| {
                    unprocessable(format!("no organisation with URA {u} in the directory"))
                })?;
                target.organizations.push(did);
            }
            (Some(ORGANIZATION_TYPE_SYSTEM), Some(t)) => {
                target.organization_types.push(t.to_owned())
            }
            _ => {
                return Err(unprocessable(format!(
                    "provision.actor.reference.identifier is a URA ({URA_SYSTEM}) or an \
                     organisation type ({ORGANIZATION_TYPE_SYSTEM})"
                )))
            }
        }
    }
    let some = |s: Selector| {
        (!s.organizations.is_empty() || !s.organization_types.is_empty()).then_some(s)
    };
    let method = if c.get("sourceAttachment").is_some() || c.get("sourceReference").is_some() {
        "written"
    } else {
        "other"
    };
    Ok((
        bsn,
        ConsentRequest {
            issuer: issuer.to_owned(),
            permit,
            purpose,
            data_categories,
            holders: some(holders),
            requesters: some(requesters),
            valid_until: p["period"]["end"].as_str().map(str::to_owned),
            registrar: None,
            method: method.into(),
        },
    ))
}

/// A knoop consent as a FHIR `Consent` (`specs/fhir-consent.md` §3). `status` is the node's
/// verdict on it (`active`, `revoked`, or why it does not verify); `bsn`, when the caller named
/// the patient; `ura_of` finds the URA of an organisation by DID.
pub fn write(
    s: &StoredConsent,
    status: &str,
    bsn: Option<&str>,
    ura_of: impl Fn(&str) -> Option<String>,
) -> Option<Value> {
    let Ok(Claims::PatientConsent(k)) = claims(&s.credential) else {
        return None;
    };
    let id = s.id.strip_prefix("urn:uuid:").unwrap_or(&s.id);
    let issued = s.credential["validFrom"]
        .as_str()
        .or_else(|| s.credential["issuanceDate"].as_str());
    let mut c = json!({
        "resourceType": "Consent",
        "id": id,
        "status": if status == "active" { "active" } else { "inactive" },
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": CONSENT_CATEGORY}]}],
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": s.id}],
        "provision": provision(&k, &ura_of, s.credential["validUntil"].as_str()),
    });
    if let Some(t) = issued {
        c["dateTime"] = json!(t);
        c["meta"] = json!({"lastUpdated": t});
    }
    if let Some(b) = bsn {
        c["patient"] = json!({"identifier": {"system": BSN_SYSTEM, "value": b}});
    }
    let recorder = ura_of(&s.issuer)
        .map(|u| json!({"identifier": {"system": URA_SYSTEM, "value": u}}))
        .unwrap_or_else(
            || json!({"identifier": {"system": "urn:ietf:rfc:3986", "value": s.issuer}}),
        );
    c["organization"] = json!([recorder]);
    Some(c)
}

fn provision(
    k: &PatientConsent,
    ura_of: &impl Fn(&str) -> Option<String>,
    until: Option<&str>,
) -> Value {
    let mut p = json!({"type": if k.permit { "permit" } else { "deny" }});
    let purposes: Vec<Value> = k
        .purpose
        .iter()
        .map(|u| {
            let code = if u == "emergency" { "ETREAT" } else { "TREAT" };
            json!({"system": ACT_REASON, "code": code})
        })
        .collect();
    p["purpose"] = json!(purposes);
    if k.data_categories != ["*"] {
        let mut classes: Vec<Value> = Vec::new();
        for cat in &k.data_categories {
            for t in crate::care::data_proxy::types_of(cat) {
                let c = json!({"system": DATA_CATEGORIES, "code": t});
                if !classes.contains(&c) {
                    classes.push(c);
                }
            }
        }
        if !classes.is_empty() {
            p["class"] = json!(classes);
        }
    }
    let mut actors = Vec::new();
    for (role, sel) in [("CST", &k.holders), ("IRCP", &k.requesters)] {
        let Some(sel) = sel else { continue };
        let role = json!({"coding": [{"system": PARTICIPATION, "code": role}]});
        for did in &sel.organizations {
            let identifier = match ura_of(did) {
                Some(u) => json!({"system": URA_SYSTEM, "value": u}),
                None => json!({"system": "urn:ietf:rfc:3986", "value": did}),
            };
            actors.push(json!({"role": role, "reference": {"identifier": identifier}}));
        }
        for t in &sel.organization_types {
            actors.push(json!({"role": role, "reference": {"identifier":
                {"system": ORGANIZATION_TYPE_SYSTEM, "value": t}}}));
        }
    }
    if !actors.is_empty() {
        p["actor"] = json!(actors);
    }
    if let Some(u) = until {
        p["period"] = json!({"end": u});
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objection() -> Value {
        json!({"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": LOINC, "code": CONSENT_CATEGORY}]}],
            "patient": {"identifier": {"system": BSN_SYSTEM, "value": "999900109"}},
            "organization": [{"identifier": {"system": URA_SYSTEM, "value": "99990022"}}],
            "provision": {"type": "deny",
                "purpose": [{"system": ACT_REASON, "code": "TREAT"}],
                "class": [{"system": DATA_CATEGORIES, "code": "MedicationStatement"}],
                "actor": [{"role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                           "reference": {"identifier": {"system": ORGANIZATION_TYPE_SYSTEM, "value": "pharmacy"}}},
                          {"role": {"coding": [{"system": PARTICIPATION, "code": "CST"}]},
                           "reference": {"identifier": {"system": URA_SYSTEM, "value": "99990011"}}}]}})
    }

    #[test]
    fn a_pcf_consent_reads_as_a_registration() {
        let (bsn, r) = read(&objection(), "did:knoop:g", "99990022", |u| {
            (u == "99990011").then(|| "did:knoop:h".to_owned())
        })
        .unwrap();
        assert_eq!(
            (bsn.as_str(), r.issuer.as_str()),
            ("999900109", "did:knoop:g")
        );
        assert!(!r.permit);
        assert_eq!(r.purpose, ["regular-care"]);
        assert_eq!(r.data_categories, ["medication"]);
        assert_eq!(r.holders.unwrap().organizations, ["did:knoop:h"]);
        assert_eq!(r.requesters.unwrap().organization_types, ["pharmacy"]);
    }

    #[test]
    fn what_cannot_be_registered_is_named() {
        let none = |_: &str| None;
        let mut c = objection();
        c["status"] = json!("proposed");
        assert_eq!(read(&c, "d", "99990022", none).unwrap_err().status, 422);
        let mut c = objection();
        c["patient"] = json!({"reference": "Patient/1"});
        assert_eq!(read(&c, "d", "99990022", none).unwrap_err().status, 400);
        let c = objection();
        assert!(read(&c, "d", "99990011", none)
            .unwrap_err()
            .diagnostics
            .contains("recording organisation"));
        let mut c = objection();
        c["provision"]["purpose"] = json!([{"system": ACT_REASON, "code": "HMARKT"}]);
        assert_eq!(read(&c, "d", "99990022", none).unwrap_err().status, 422);
        let c = objection();
        assert!(read(&c, "d", "99990022", none)
            .unwrap_err()
            .diagnostics
            .contains("URA 99990011"));
    }
}
