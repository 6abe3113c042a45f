//! knoop's credential types (spec: `specs/credentials.md`), their bundled JSON-LD context
//! (`specs/contexts/knoop-credentials-v1.jsonld`) and their schema checks.
//!
//! - `CareOrganizationCredential`: a care organisation (legal name, city, organisation type, URA),
//!   issued by a registry authority.
//! - `HealthcareProfessionalCredential`: a professional (name, role code, register id, employer
//!   DID), issued by the employing organisation or an identity scheme.

use serde_json::Value;

use crate::contexts::Contexts;

/// URL of knoop's credentials context.
pub const KNOOP_CONTEXT: &str = "https://w3id.org/knoop/credentials/v1";
/// The context document, bundled.
pub const KNOOP_CONTEXT_JSON: &str =
    include_str!("../../specs/contexts/knoop-credentials-v1.jsonld");
/// The VC 2.0 context.
pub const CREDENTIALS_V2: &str = "https://www.w3.org/ns/credentials/v2";

pub const CARE_ORGANIZATION_CREDENTIAL: &str = "CareOrganizationCredential";
pub const HEALTHCARE_PROFESSIONAL_CREDENTIAL: &str = "HealthcareProfessionalCredential";
pub const PATIENT_CONSENT_CREDENTIAL: &str = "PatientConsentCredential";

/// Data categories of version 1 (`specs/consent-localisation.md` §3.2).
pub const DATA_CATEGORIES: [&str; 9] = [
    "summary",
    "medication",
    "allergies",
    "problems",
    "lab",
    "imaging",
    "care-plan",
    "encounters",
    "vital-signs",
];
/// Purposes of a request, and of a consent.
pub const PURPOSES: [&str; 2] = ["regular-care", "emergency"];
/// How the patient expressed consent.
pub const CONSENT_METHODS: [&str; 4] = ["verbal", "written", "portal", "other"];

/// ssi's bundled contexts plus knoop's.
pub fn knoop_contexts() -> Contexts {
    // The bundled document is part of this crate; a parse failure is caught by the tests.
    Contexts::bundled()
        .with(KNOOP_CONTEXT, KNOOP_CONTEXT_JSON)
        .unwrap_or_default()
}

/// The claims of a care organisation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CareOrganization {
    pub id: String,
    pub legal_name: String,
    pub city: String,
    pub organization_type: String,
    pub ura: String,
}

/// The claims of a healthcare professional.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthcareProfessional {
    pub id: String,
    pub name: String,
    pub role_code: String,
    pub register_id: String,
    pub employer: String,
}

/// Whom a consent covers: organisations by type and/or by DID.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    pub organization_types: Vec<String>,
    pub organizations: Vec<String>,
}

impl Selector {
    /// Whether an organisation `did` of type `type_` matches.
    pub fn matches(&self, did: &str, type_: Option<&str>) -> bool {
        self.organizations.iter().any(|o| o == did)
            || type_.is_some_and(|t| self.organization_types.iter().any(|x| x == t))
    }
}

/// A patient's consent (`permit`) or objection (`deny`), about a pseudonymous patient
/// reference (`urn:knoop:patient:...`): never a national identifier.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientConsent {
    pub patient: String,
    /// `true`: permit (consent); `false`: deny (objection).
    pub permit: bool,
    pub purpose: Vec<String>,
    /// Categories, or `["*"]` for all.
    pub data_categories: Vec<String>,
    /// Absent: every holder / every requester.
    pub holders: Option<Selector>,
    pub requesters: Option<Selector>,
    pub registrar: Option<String>,
    pub method: String,
    pub network: String,
}

/// A credential of another type than knoop's: only the data model is checked, and trust is
/// decided per type.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OtherClaims {
    /// The credential's types other than `VerifiableCredential`, in document order.
    pub types: Vec<String>,
    /// The first subject's `id`, if it has one.
    pub subject: Option<String>,
}

/// A credential's subject, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claims {
    CareOrganization(CareOrganization),
    HealthcareProfessional(HealthcareProfessional),
    PatientConsent(PatientConsent),
    Other(OtherClaims),
}

impl Claims {
    /// The credential type trust is decided on (for other credentials, the first specific
    /// type; see [`Claims::types`] for all).
    pub fn type_name(&self) -> &str {
        match self {
            Claims::CareOrganization(_) => CARE_ORGANIZATION_CREDENTIAL,
            Claims::HealthcareProfessional(_) => HEALTHCARE_PROFESSIONAL_CREDENTIAL,
            Claims::PatientConsent(_) => PATIENT_CONSENT_CREDENTIAL,
            Claims::Other(o) => o
                .types
                .first()
                .map(String::as_str)
                .unwrap_or("VerifiableCredential"),
        }
    }
    /// Every specific type of the credential.
    pub fn types(&self) -> Vec<&str> {
        match self {
            Claims::Other(o) => o.types.iter().map(String::as_str).collect(),
            c => vec![c.type_name()],
        }
    }
    pub fn subject(&self) -> &str {
        match self {
            Claims::CareOrganization(c) => &c.id,
            Claims::HealthcareProfessional(p) => &p.id,
            Claims::PatientConsent(c) => &c.patient,
            Claims::Other(o) => o.subject.as_deref().unwrap_or_default(),
        }
    }
}

/// A schema violation, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("schema: {field}: {problem}")]
pub struct SchemaError {
    pub field: String,
    pub problem: String,
}

fn err(field: &str, problem: impl Into<String>) -> SchemaError {
    SchemaError {
        field: field.into(),
        problem: problem.into(),
    }
}

fn text(subject: &Value, field: &str, max: usize) -> Result<String, SchemaError> {
    let v = subject
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| err(&format!("credentialSubject.{field}"), "required string"))?;
    if v.trim().is_empty() || v.len() > max {
        return Err(err(
            &format!("credentialSubject.{field}"),
            format!("must be 1..{max} characters"),
        ));
    }
    Ok(v.to_owned())
}

fn types(doc: &Value) -> Vec<&str> {
    match doc.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether `doc` claims to be a knoop credential type (then [`claims`] must accept it).
pub fn is_knoop_type(doc: &Value) -> bool {
    types(doc).iter().any(|t| {
        *t == CARE_ORGANIZATION_CREDENTIAL
            || *t == HEALTHCARE_PROFESSIONAL_CREDENTIAL
            || *t == PATIENT_CONSENT_CREDENTIAL
    })
}

/// The national guide's credential of an organisation's care-provider role (draft).
pub const HEALTHCARE_PROVIDER_ROLE_TYPE_CREDENTIAL: &str = "HealthcareProviderRoleTypeCredential";

/// `HealthcareProviderRoleTypeCredential`: the subject is the organisation (a DID) and
/// `roleCodeNL` a code of the care-provider role code system (2.16.840.1.113883.2.4.15.1060):
/// 1 to 16 letters, digits and dots.
fn check_provider_role_type(subject: Option<&Value>) -> Result<(), SchemaError> {
    let s = subject.ok_or_else(|| err("credentialSubject", "is required"))?;
    let id = s.get("id").and_then(Value::as_str).unwrap_or_default();
    if !id.starts_with("did:") {
        return Err(err(
            "credentialSubject.id",
            "must be the organisation's DID",
        ));
    }
    let code = s
        .get("roleCodeNL")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ok = (1..=16).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
    if !ok {
        return Err(err(
            "credentialSubject.roleCodeNL",
            "must be a care-provider role code (letters, digits, dots; at most 16)",
        ));
    }
    Ok(())
}

/// Checks and extracts the claims of a credential: knoop's types strictly, any other type as
/// [`Claims::Other`].
pub fn claims(doc: &Value) -> Result<Claims, SchemaError> {
    if !is_knoop_type(doc) {
        let subject = match doc.get("credentialSubject") {
            Some(Value::Array(a)) => a.first(),
            s => s,
        };
        if types(doc).contains(&HEALTHCARE_PROVIDER_ROLE_TYPE_CREDENTIAL) {
            check_provider_role_type(subject)?;
        }
        return Ok(Claims::Other(OtherClaims {
            types: types(doc)
                .into_iter()
                .filter(|t| *t != "VerifiableCredential")
                .map(str::to_owned)
                .collect(),
            subject: subject
                .and_then(|s| s.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }));
    }
    let t = types(doc);
    let contexts: Vec<&str> = match doc.get("@context") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !contexts.contains(&KNOOP_CONTEXT) {
        return Err(err("@context", format!("must include {KNOOP_CONTEXT}")));
    }
    let subject = doc
        .get("credentialSubject")
        .filter(|s| s.is_object())
        .ok_or_else(|| err("credentialSubject", "must be one object"))?;
    if t.contains(&PATIENT_CONSENT_CREDENTIAL) {
        return patient_consent(subject).map(Claims::PatientConsent);
    }
    let id = subject
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("did:"))
        .ok_or_else(|| err("credentialSubject.id", "must be the subject's DID"))?
        .to_owned();
    let subject_type = types(subject);
    if t.contains(&CARE_ORGANIZATION_CREDENTIAL) {
        if !subject_type.contains(&"CareOrganization") {
            return Err(err("credentialSubject.type", "must be CareOrganization"));
        }
        let ura = text(subject, "ura", 16)?;
        if !ura.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("credentialSubject.ura", "must be digits"));
        }
        return Ok(Claims::CareOrganization(CareOrganization {
            id,
            legal_name: text(subject, "legalName", 256)?,
            city: text(subject, "city", 128)?,
            organization_type: text(subject, "organizationType", 64)?,
            ura,
        }));
    }
    if t.contains(&HEALTHCARE_PROFESSIONAL_CREDENTIAL) {
        if !subject_type.contains(&"HealthcareProfessional") {
            return Err(err(
                "credentialSubject.type",
                "must be HealthcareProfessional",
            ));
        }
        let employer = text(subject, "employer", 512)?;
        if !employer.starts_with("did:") {
            return Err(err(
                "credentialSubject.employer",
                "must be the employer's DID",
            ));
        }
        return Ok(Claims::HealthcareProfessional(HealthcareProfessional {
            id,
            name: text(subject, "name", 256)?,
            role_code: text(subject, "roleCode", 64)?,
            register_id: text(subject, "registerId", 64)?,
            employer,
        }));
    }
    Err(err("type", "not a knoop credential type"))
}

fn string_set(
    subject: &Value,
    field: &str,
    allowed: Option<&[&str]>,
    max: usize,
) -> Result<Vec<String>, SchemaError> {
    let path = format!("credentialSubject.{field}");
    let list = subject
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| err(&path, "must be an array of strings"))?;
    if list.is_empty() || list.len() > max {
        return Err(err(&path, format!("must hold 1..{max} values")));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for v in list {
        let s = v
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| err(&path, "values are strings of 1..256 bytes"))?;
        if allowed.is_some_and(|a| !a.contains(&s)) {
            return Err(err(&path, format!("{s} is not one of {allowed:?}")));
        }
        if out.iter().any(|o| o == s) {
            return Err(err(&path, format!("{s} is listed twice")));
        }
        out.push(s.to_owned());
    }
    Ok(out)
}

fn selector(subject: &Value, field: &str) -> Result<Option<Selector>, SchemaError> {
    let Some(v) = subject.get(field) else {
        return Ok(None);
    };
    let path = format!("credentialSubject.{field}");
    let obj = v
        .as_object()
        .ok_or_else(|| err(&path, "must be an object"))?;
    if obj
        .keys()
        .any(|k| k != "organizationTypes" && k != "organizations")
    {
        return Err(err(&path, "only organizationTypes and organizations"));
    }
    let list = |k: &str, max: usize| -> Result<Vec<String>, SchemaError> {
        match obj.get(k) {
            None => Ok(Vec::new()),
            Some(_) => string_set(v, k, None, max).map_err(|e| SchemaError {
                field: format!("{path}.{k}"),
                problem: e.problem,
            }),
        }
    };
    let s = Selector {
        organization_types: list("organizationTypes", 16)?,
        organizations: list("organizations", 64)?,
    };
    if s.organization_types.is_empty() && s.organizations.is_empty() {
        return Err(err(&path, "name organizationTypes or organizations"));
    }
    if s.organizations.iter().any(|o| !o.starts_with("did:")) {
        return Err(err(&path, "organizations are DIDs"));
    }
    Ok(Some(s))
}

fn patient_consent(subject: &Value) -> Result<PatientConsent, SchemaError> {
    if !types(subject).contains(&"PatientConsent") {
        return Err(err("credentialSubject.type", "must be PatientConsent"));
    }
    let patient = subject
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| {
            s.strip_prefix("urn:knoop:patient:").is_some_and(|r| {
                r.len() == 43
                    && r.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        })
        .ok_or_else(|| {
            err(
                "credentialSubject.id",
                "must be a patient reference urn:knoop:patient:<43 base64url characters>",
            )
        })?
        .to_owned();
    let permit = match subject.get("decision").and_then(Value::as_str) {
        Some("permit") => true,
        Some("deny") => false,
        _ => return Err(err("credentialSubject.decision", "permit or deny")),
    };
    let purpose = string_set(subject, "purpose", Some(&PURPOSES), 2)?;
    let data_categories = if subject.get("dataCategories") == Some(&serde_json::json!(["*"])) {
        vec!["*".to_owned()]
    } else {
        string_set(subject, "dataCategories", Some(&DATA_CATEGORIES), 16)?
    };
    let method = text(subject, "method", 16)?;
    if !CONSENT_METHODS.contains(&method.as_str()) {
        return Err(err(
            "credentialSubject.method",
            format!("one of {CONSENT_METHODS:?}"),
        ));
    }
    let registrar = match subject.get("registrar") {
        None => None,
        Some(_) => Some(text(subject, "registrar", 128)?),
    };
    Ok(PatientConsent {
        patient,
        permit,
        purpose,
        data_categories,
        holders: selector(subject, "holders")?,
        requesters: selector(subject, "requesters")?,
        registrar,
        method,
        network: text(subject, "network", 64)?,
    })
}

/// The subject of a consent credential, as issued.
pub fn consent_subject(c: &PatientConsent) -> Value {
    let mut v = serde_json::json!({
        "id": c.patient, "type": "PatientConsent",
        "decision": if c.permit { "permit" } else { "deny" },
        "purpose": c.purpose, "dataCategories": c.data_categories,
        "method": c.method, "network": c.network,
    });
    for (k, s) in [("holders", &c.holders), ("requesters", &c.requesters)] {
        if let Some(s) = s {
            let mut o = serde_json::Map::new();
            if !s.organization_types.is_empty() {
                o.insert(
                    "organizationTypes".into(),
                    serde_json::json!(s.organization_types),
                );
            }
            if !s.organizations.is_empty() {
                o.insert("organizations".into(), serde_json::json!(s.organizations));
            }
            v[k] = Value::Object(o);
        }
    }
    if let Some(r) = &c.registrar {
        v["registrar"] = Value::String(r.clone());
    }
    v
}

/// An unsigned credential of a knoop type: `@context`, `type`, `issuer`, validity, subject.
pub fn unsigned(
    id: &str,
    issuer: &str,
    claims: &Claims,
    valid_from: &str,
    valid_until: Option<&str>,
) -> Value {
    let subject = match claims {
        Claims::CareOrganization(c) => serde_json::json!({
            "id": c.id, "type": "CareOrganization", "legalName": c.legal_name, "city": c.city,
            "organizationType": c.organization_type, "ura": c.ura,
        }),
        Claims::HealthcareProfessional(p) => serde_json::json!({
            "id": p.id, "type": "HealthcareProfessional", "name": p.name, "roleCode": p.role_code,
            "registerId": p.register_id, "employer": p.employer,
        }),
        Claims::PatientConsent(c) => consent_subject(c),
        Claims::Other(o) => serde_json::json!({ "id": o.subject }),
    };
    let mut vc = serde_json::json!({
        "@context": [CREDENTIALS_V2, KNOOP_CONTEXT],
        "id": id,
        "type": std::iter::once("VerifiableCredential").chain(claims.types()).collect::<Vec<_>>(),
        "issuer": issuer,
        "validFrom": valid_from,
        "credentialSubject": subject,
    });
    if let (Some(u), Some(o)) = (valid_until, vc.as_object_mut()) {
        o.insert("validUntil".into(), Value::String(u.into()));
    }
    vc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_role_type_credentials_need_an_organisation_and_a_code() {
        let vc = |subject: Value| {
            serde_json::json!({
                "@context": ["https://www.w3.org/2018/credentials/v1"],
                "type": ["VerifiableCredential", HEALTHCARE_PROVIDER_ROLE_TYPE_CREDENTIAL],
                "credentialSubject": subject,
            })
        };
        let good = claims(&vc(
            serde_json::json!({"id": "did:web:zorg.example", "roleCodeNL": "A1"}),
        ));
        assert!(
            matches!(good, Ok(Claims::Other(o)) if o.subject.as_deref() == Some("did:web:zorg.example"))
        );
        for bad in [
            serde_json::json!({"id": "did:web:zorg.example"}),
            serde_json::json!({"id": "did:web:zorg.example", "roleCodeNL": "A 1"}),
            serde_json::json!({"id": "did:web:zorg.example", "roleCodeNL": "x".repeat(17)}),
            serde_json::json!({"roleCodeNL": "A1"}),
        ] {
            assert!(claims(&vc(bad.clone())).is_err(), "{bad}");
        }
    }

    fn org() -> Claims {
        Claims::CareOrganization(CareOrganization {
            id: "did:knoop:hospital".into(),
            legal_name: "Leids Universitair Medisch Centrum".into(),
            city: "Leiden".into(),
            organization_type: "hospital".into(),
            ura: "12345678".into(),
        })
    }

    #[test]
    fn the_context_loads_and_typed_credentials_expand() {
        let ctx = knoop_contexts();
        let vc = unsigned(
            "urn:uuid:1",
            "did:knoop:ra",
            &org(),
            "2026-01-01T00:00:00Z",
            None,
        );
        crate::model::check_credential(&vc, crate::Strictness::Issued).unwrap();
        crate::model::check_semantics(&vc, &ctx).unwrap();
        assert_eq!(claims(&vc).unwrap(), org());
        // An undefined term in the subject is refused by the JSON-LD check.
        let mut bad = vc.clone();
        bad["credentialSubject"]["favouriteColour"] = "blue".into();
        assert!(crate::model::check_semantics(&bad, &ctx).is_err());
    }

    #[test]
    fn schema_errors_name_the_field() {
        let mut vc = unsigned(
            "urn:uuid:1",
            "did:knoop:ra",
            &org(),
            "2026-01-01T00:00:00Z",
            None,
        );
        vc["credentialSubject"]["ura"] = "12ab".into();
        assert_eq!(claims(&vc).unwrap_err().field, "credentialSubject.ura");
        vc["credentialSubject"]["ura"] = "12345678".into();
        vc["credentialSubject"]
            .as_object_mut()
            .unwrap()
            .remove("city");
        assert_eq!(claims(&vc).unwrap_err().field, "credentialSubject.city");
        let mut vc = unsigned(
            "urn:uuid:1",
            "did:knoop:ra",
            &org(),
            "2026-01-01T00:00:00Z",
            None,
        );
        vc["@context"] = serde_json::json!([CREDENTIALS_V2]);
        assert_eq!(claims(&vc).unwrap_err().field, "@context");
    }

    #[test]
    fn consent_credentials_name_a_pseudonym_never_an_identifier() {
        let c = PatientConsent {
            patient: format!("urn:knoop:patient:{}", "A".repeat(43)),
            permit: true,
            purpose: vec!["regular-care".into()],
            data_categories: vec!["medication".into(), "allergies".into()],
            holders: None,
            requesters: Some(Selector {
                organization_types: vec!["hospital".into()],
                organizations: vec![],
            }),
            registrar: Some("portal".into()),
            method: "written".into(),
            network: "knoop-test".into(),
        };
        let vc = unsigned(
            "urn:uuid:c1",
            "did:knoop:gp",
            &Claims::PatientConsent(c.clone()),
            "2026-01-01T00:00:00Z",
            None,
        );
        crate::model::check_credential(&vc, crate::Strictness::Issued).unwrap();
        crate::model::check_semantics(&vc, &knoop_contexts()).unwrap();
        assert_eq!(claims(&vc).unwrap(), Claims::PatientConsent(c));
        for (field, value) in [
            ("id", serde_json::json!("urn:knoop:patient:123456782")),
            ("purpose", serde_json::json!([])),
            ("dataCategories", serde_json::json!(["genome"])),
            ("decision", serde_json::json!("maybe")),
            ("requesters", serde_json::json!({})),
        ] {
            let mut bad = vc.clone();
            bad["credentialSubject"][field] = value;
            let e = claims(&bad).unwrap_err();
            assert!(
                e.field.starts_with(&format!("credentialSubject.{field}")),
                "{e}"
            );
        }
    }

    #[test]
    fn other_types_keep_their_types_and_subject() {
        let vc = serde_json::json!({
            "@context": [CREDENTIALS_V2],
            "type": ["VerifiableCredential", "AlumniCredential"],
            "issuer": "did:key:z6Mk",
            "credentialSubject": [{"id": "did:example:alice"}, {"id": "did:example:bob"}],
        });
        let c = claims(&vc).unwrap();
        assert_eq!(c.type_name(), "AlumniCredential");
        assert_eq!(c.subject(), "did:example:alice");
        assert_eq!(c.types(), vec!["AlumniCredential"]);
    }
}
