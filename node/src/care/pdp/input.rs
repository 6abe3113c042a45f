//! The policy input of a decision (spec: `specs/pdp.md` §3): what the policy enforcement point
//! sends (the token's introspection claims, the HTTP request, its context) turned into the
//! input model of the national guide and knooppunt's policies (`subject`, `resource`, `action`,
//! `context`). For a FHIR REST request the path and query are read as the FHIR RESTful API
//! defines them (R4 `http.html`): the interaction, the resource type and id, the operation, the
//! search parameters with their AND (repeated) and OR (comma) groups, `_include` and
//! `_revinclude`, and the patient the request is about.

use serde_json::{json, Map, Value};

/// The connection type code of a FHIR REST API.
pub const FHIR_REST: &str = "hl7-fhir-rest";
/// The naming system of the BSN.
pub use knoop_privacy::patient::BSN_SYSTEM;

/// The subject claims the input model names; any other claim is kept as is.
const SUBJECT_CLAIMS: [&str; 8] = [
    "active",
    "client_id",
    "scope",
    "user_id",
    "user_role",
    "organization_ura",
    "organization_name",
    "organization_facility_type",
];

/// Parameters that shape the result, not the selection (FHIR R4 §3.1.1.5.x): not search
/// parameters.
const RESULT_PARAMS: [&str; 11] = [
    "_format",
    "_pretty",
    "_summary",
    "_elements",
    "_sort",
    "_count",
    "_total",
    "_contained",
    "_containedType",
    "_include",
    "_revinclude",
];

/// The resource types of FHIR R4 (4.0.1).
pub const R4_TYPES: [&str; 146] = [
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// A FHIR REST request, read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FhirRequest {
    /// The interaction code (`read`, `search-type`, `operation`, ...).
    pub interaction: &'static str,
    pub resource_type: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// The operation's name without `$`.
    pub operation: Option<String>,
}

fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn is_type(s: &str) -> bool {
    R4_TYPES.contains(&s)
}

fn operation(s: &str) -> Option<String> {
    let name = s.strip_prefix('$')?;
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    ok.then(|| name.to_owned())
}

/// Reads `method` on `path` (relative to the FHIR base) as a FHIR RESTful interaction; `None`
/// when it is none.
pub fn parse_fhir_request(method: &str, path: &str) -> Option<FhirRequest> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let parts: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    let r = |interaction: &'static str| FhirRequest {
        interaction,
        ..Default::default()
    };
    let typed = |interaction: &'static str, t: &str| FhirRequest {
        interaction,
        resource_type: Some(t.to_owned()),
        ..Default::default()
    };
    let m = method.to_ascii_uppercase();
    Some(match (m.as_str(), parts.as_slice()) {
        ("GET", []) => r("search-system"),
        ("POST", []) => r("transaction"),
        ("GET", ["metadata"]) => r("capabilities"),
        ("GET", ["_history"]) => r("history-system"),
        ("GET" | "POST", [op]) if op.starts_with('$') => FhirRequest {
            operation: Some(operation(op)?),
            ..r("operation")
        },
        ("GET", [t]) if is_type(t) => typed("search-type", t),
        ("POST", [t]) if is_type(t) => typed("create", t),
        ("PUT", [t]) if is_type(t) => typed("update", t),
        ("DELETE", [t]) if is_type(t) => typed("delete", t),
        ("POST", [t, "_search"]) if is_type(t) => typed("search-type", t),
        ("GET", [t, "_history"]) if is_type(t) => typed("history-type", t),
        ("GET" | "POST", [t, op]) if is_type(t) && op.starts_with('$') => FhirRequest {
            operation: Some(operation(op)?),
            ..typed("operation", t)
        },
        (verb, [t, id]) if is_type(t) && is_id(id) => FhirRequest {
            id: Some((*id).to_owned()),
            ..typed(
                match verb {
                    "GET" => "read",
                    "PUT" => "update",
                    "PATCH" => "patch",
                    "DELETE" => "delete",
                    _ => return None,
                },
                t,
            )
        },
        ("GET", [t, id, "_history"]) if is_type(t) && is_id(id) => FhirRequest {
            id: Some((*id).to_owned()),
            ..typed("history-instance", t)
        },
        ("GET" | "POST", [t, id, op]) if is_type(t) && is_id(id) && op.starts_with('$') => {
            FhirRequest {
                id: Some((*id).to_owned()),
                operation: Some(operation(op)?),
                ..typed("operation", t)
            }
        }
        ("GET", [t, id, "_history", vid]) if is_type(t) && is_id(id) && is_id(vid) => FhirRequest {
            id: Some((*id).to_owned()),
            version: Some((*vid).to_owned()),
            ..typed("vread", t)
        },
        _ => return None,
    })
}

/// The parameters of a request: name → its values, in order (a name given twice has two).
pub type Params = Vec<(String, Vec<String>)>;

/// Parses `application/x-www-form-urlencoded` text (a query or a form body) into [`Params`].
pub fn parse_params(text: &str) -> Params {
    let mut out: Params = Vec::new();
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        match out.iter_mut().find(|(n, _)| *n == k) {
            Some((_, vs)) => vs.push(v.into_owned()),
            None => out.push((k.into_owned(), vec![v.into_owned()])),
        }
    }
    out
}

fn values<'a>(params: &'a Params, name: &str) -> &'a [String] {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
        .unwrap_or_default()
}

/// The one value of parameter `name` (`Ok(None)` without it); several, or a comma list, is an
/// error.
fn single(params: &Params, name: &str) -> Result<Option<String>, String> {
    match values(params, name) {
        [] => Ok(None),
        [v] if !v.contains(',') => Ok(Some(v.clone())),
        [_] => Err(format!("expected one value in {name}, found several")),
        _ => Err(format!("{name} is given more than once")),
    }
}

/// The Patient id a reference names (`Patient/<id>`, an absolute URL ending so, or, for the
/// `patient` parameter whose target is Patient, a bare id); `None` for other targets.
fn patient_id_of(reference: &str, bare_allowed: bool) -> Option<String> {
    let tail = match reference.rfind("Patient/") {
        Some(i) if i == 0 || reference[..i].ends_with('/') => &reference[i + "Patient/".len()..],
        _ if bare_allowed && is_id(reference) => reference,
        _ => return None,
    };
    let id = tail.split('/').next().unwrap_or_default();
    is_id(id).then(|| id.to_owned())
}

/// The patient a FHIR request is about, by id: the Patient read or searched by `_id`, else the
/// `patient` or `subject` (a Patient reference) search parameter; an error when it is named
/// ambiguously.
pub fn patient_id(req: &FhirRequest, params: &Params) -> Result<Option<String>, String> {
    if req.resource_type.as_deref() == Some("Patient") {
        if let Some(id) = &req.id {
            return Ok(Some(id.clone()));
        }
        return single(params, "_id");
    }
    if !matches!(req.interaction, "search-type" | "operation") {
        return Ok(None);
    }
    let mut found = Vec::new();
    if let Some(p) = single(params, "patient")? {
        found.push(
            patient_id_of(&p, true).ok_or("the patient parameter does not reference a Patient")?,
        );
    }
    let subjects = values(params, "subject");
    if let Some(s) = subjects.iter().find_map(|s| patient_id_of(s, false)) {
        if subjects.len() > 1 {
            return Err("several subject parameters, one of them a Patient".into());
        }
        found.push(s);
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err("the patient is named by both patient and subject".into()),
    }
}

/// The patient's BSN, when the request searches Patient by `identifier=<BSN system>|<BSN>`.
pub fn patient_bsn(req: &FhirRequest, params: &Params) -> Result<Option<String>, String> {
    if req.resource_type.as_deref() != Some("Patient") {
        return Ok(None);
    }
    let Some(identifier) = single(params, "identifier")? else {
        return Ok(None);
    };
    match identifier.split_once('|') {
        Some((BSN_SYSTEM, v)) if !v.is_empty() && !v.contains('|') => Ok(Some(v.to_owned())),
        Some((BSN_SYSTEM, _)) => Err("the identifier's BSN is empty or malformed".into()),
        Some((system, _)) => Err(format!(
            "the identifier system must be {BSN_SYSTEM}, not {system}"
        )),
        None => Err("the identifier must be system|value".into()),
    }
}

/// The `fhir_rest` part of the input: `include`, `revinclude`, and `search_params` (every
/// selecting parameter: its AND groups, each an OR list split at commas).
pub fn fhir_rest(req: &FhirRequest, params: &Params) -> Value {
    let mut search = Map::new();
    for (name, vs) in params {
        if RESULT_PARAMS.contains(&name.as_str()) {
            continue;
        }
        let groups: Vec<Vec<&str>> = vs.iter().map(|v| v.split(',').collect()).collect();
        search.insert(name.clone(), json!(groups));
    }
    json!({
        "capability_checked": false,
        "interaction_type": req.interaction,
        "operation": req.operation,
        "include": values(params, "_include"),
        "revinclude": values(params, "_revinclude"),
        "search_params": search,
    })
}

/// Why a request could not be turned into a policy input.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The policy input of the PEP's `input` (knooppunt's request model; spec §2).
pub fn policy_input(api: &Value) -> Result<Value, InputError> {
    let bad = |m: String| InputError(m);
    let subject = api.get("subject").cloned().unwrap_or(json!({}));
    let request = api.get("request").cloned().unwrap_or(json!({}));
    let context = api.get("context").cloned().unwrap_or(json!({}));
    if !subject.is_object() || !request.is_object() || !context.is_object() {
        return Err(bad("subject, request and context must be objects".into()));
    }
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let scopes: Vec<&str> = subject["scope"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let mut policy_subject = json!({
        "client": {"id": text(&subject, "client_id"), "scopes": scopes},
        "organization": {
            "ura": text(&subject, "organization_ura"),
            "name": text(&subject, "organization_name"),
            "facility_type": text(&subject, "organization_facility_type"),
        },
        "user": {"id": text(&subject, "user_id"), "role": text(&subject, "user_role")},
    });
    if let (Some(all), Some(out)) = (subject.as_object(), policy_subject.as_object_mut()) {
        for (k, v) in all {
            if !SUBJECT_CLAIMS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    // The query: a string, or (as knooppunt's documentation shows) `query_params`, a map of
    // names to value lists.
    let query = match request.get("query_params").and_then(Value::as_object) {
        Some(m) => {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, vs) in m {
                for v in vs.as_array().into_iter().flatten() {
                    s.append_pair(k, v.as_str().unwrap_or_default());
                }
            }
            s.finish()
        }
        None => text(&request, "query"),
    };
    let mut input = json!({
        "subject": policy_subject,
        "resource": {"id": "", "type": null, "version_id": "", "consents": []},
        "action": {
            "name": "",
            "connection_type_code": "",
            "request": request,
            "fhir_rest": {"capability_checked": false, "include": [], "revinclude": [],
                          "interaction_type": "", "operation": null, "search_params": {}},
        },
        "context": {
            "data_holder_facility_type": text(&context, "data_holder_facility_type"),
            "data_holder_organization_id": text(&context, "data_holder_organization_id"),
            "mitz_consent": false,
            "patient_bsn": text(&context, "patient_bsn"),
            "patient_id": "",
            "purpose_of_use": text(&context, "purpose_of_use"),
        },
    });
    if context["connection_type_code"] != FHIR_REST {
        return Ok(input);
    }
    input["action"]["connection_type_code"] = json!(FHIR_REST);
    let method = text(&request, "method");
    let path = text(&request, "path");
    let req = parse_fhir_request(&method, &path)
        .ok_or_else(|| bad(format!("{method} {path} is not a FHIR REST interaction")))?;
    input["resource"]["type"] = json!(req.resource_type);
    input["resource"]["id"] = json!(req.id.clone().unwrap_or_default());
    input["resource"]["version_id"] = json!(req.version.clone().unwrap_or_default());
    // Search and operation parameters may come as a form body (FHIR R4 §3.1.0.9.1).
    let form = request["header"]
        .as_object()
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v)
        })
        .and_then(|v| match v {
            Value::Array(a) => a.first().and_then(Value::as_str),
            v => v.as_str(),
        })
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let params = if form && matches!(req.interaction, "search-type" | "operation") {
        parse_params(&text(&request, "body"))
    } else {
        parse_params(&query)
    };
    input["action"]["fhir_rest"] = fhir_rest(&req, &params);
    let mut errors = Vec::new();
    match patient_id(&req, &params) {
        Ok(id) => input["context"]["patient_id"] = json!(id.unwrap_or_default()),
        Err(e) => errors.push(format!("patient_id: {e}")),
    }
    if input["context"]["patient_bsn"] == "" {
        match patient_bsn(&req, &params) {
            Ok(bsn) => input["context"]["patient_bsn"] = json!(bsn.unwrap_or_default()),
            Err(e) => errors.push(format!("patient_bsn: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(bad(errors.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(m: &str, p: &str) -> Option<FhirRequest> {
        parse_fhir_request(m, p)
    }

    #[test]
    fn paths_read_as_fhir_interactions() {
        for (m, p, interaction, t, id, op) in [
            (
                "GET",
                "/Patient/123",
                "read",
                Some("Patient"),
                Some("123"),
                None,
            ),
            ("GET", "Patient", "search-type", Some("Patient"), None, None),
            (
                "POST",
                "/Patient/_search",
                "search-type",
                Some("Patient"),
                None,
                None,
            ),
            ("POST", "/Patient", "create", Some("Patient"), None, None),
            (
                "PUT",
                "/Task/a-1",
                "update",
                Some("Task"),
                Some("a-1"),
                None,
            ),
            ("PUT", "/Task", "update", Some("Task"), None, None),
            ("PATCH", "/Task/a", "patch", Some("Task"), Some("a"), None),
            ("DELETE", "/Task/a", "delete", Some("Task"), Some("a"), None),
            ("DELETE", "/Task", "delete", Some("Task"), None, None),
            (
                "GET",
                "/Task/a/_history",
                "history-instance",
                Some("Task"),
                Some("a"),
                None,
            ),
            (
                "GET",
                "/Task/_history",
                "history-type",
                Some("Task"),
                None,
                None,
            ),
            ("GET", "/_history", "history-system", None, None, None),
            ("GET", "/metadata", "capabilities", None, None, None),
            ("GET", "/", "search-system", None, None, None),
            ("POST", "/", "transaction", None, None, None),
            (
                "GET",
                "/Observation/$lastn",
                "operation",
                Some("Observation"),
                None,
                Some("lastn"),
            ),
            (
                "POST",
                "/$process-message",
                "operation",
                None,
                None,
                Some("process-message"),
            ),
            (
                "GET",
                "/Composition/c1/$document",
                "operation",
                Some("Composition"),
                Some("c1"),
                Some("document"),
            ),
        ] {
            let r = parse(m, p).unwrap_or_else(|| panic!("{m} {p}"));
            assert_eq!(r.interaction, interaction, "{m} {p}");
            assert_eq!(r.resource_type.as_deref(), t, "{m} {p}");
            assert_eq!(r.id.as_deref(), id, "{m} {p}");
            assert_eq!(r.operation.as_deref(), op, "{m} {p}");
        }
        let v = parse("GET", "/Patient/1/_history/2").unwrap();
        assert_eq!((v.interaction, v.version.as_deref()), ("vread", Some("2")));
        for (m, p) in [
            ("GET", "/Nonsense"),
            ("GET", "/Patient/a_b"),
            ("POST", "/Patient/1"),
            ("GET", "/Patient/1/2/3/4"),
            ("GET", "/$"),
            ("OPTIONS", "/Patient"),
        ] {
            assert_eq!(parse(m, p), None, "{m} {p}");
        }
    }

    #[test]
    fn search_parameters_keep_and_and_or_groups() {
        let req = parse("GET", "/Observation").unwrap();
        let params = parse_params(
            "category=a,b&category=c&_include=Observation:subject&_count=10&patient=Patient/p1",
        );
        let rest = fhir_rest(&req, &params);
        assert_eq!(
            rest["search_params"]["category"],
            json!([["a", "b"], ["c"]])
        );
        assert_eq!(rest["search_params"]["patient"], json!([["Patient/p1"]]));
        assert!(rest["search_params"].get("_count").is_none());
        assert!(rest["search_params"].get("_include").is_none());
        assert_eq!(rest["include"], json!(["Observation:subject"]));
        assert_eq!(rest["revinclude"], json!([]));
        assert_eq!(patient_id(&req, &params).unwrap().as_deref(), Some("p1"));
    }

    #[test]
    fn the_patient_is_found_or_the_ambiguity_refused() {
        let obs = parse("GET", "/Observation").unwrap();
        let p = |q: &str| patient_id(&obs, &parse_params(q));
        assert_eq!(p("patient=123").unwrap().as_deref(), Some("123"));
        assert_eq!(p("subject=Patient/9").unwrap().as_deref(), Some("9"));
        assert_eq!(p("subject=Group/9").unwrap(), None);
        assert!(p("patient=Group/1").is_err());
        assert!(p("patient=1&patient=2").is_err());
        assert!(p("patient=1,2").is_err());
        assert!(p("patient=1&subject=Patient/1").is_err());
        assert!(p("subject=Patient/1&subject=Group/2").is_err());
        let patient = parse("GET", "/Patient").unwrap();
        assert_eq!(
            patient_id(&patient, &parse_params("_id=x"))
                .unwrap()
                .as_deref(),
            Some("x")
        );
        let bsn = |q: &str| patient_bsn(&patient, &parse_params(q));
        assert_eq!(
            bsn(&format!("identifier={BSN_SYSTEM}|999900109"))
                .unwrap()
                .as_deref(),
            Some("999900109")
        );
        assert!(bsn("identifier=urn:other|1").is_err());
        assert!(bsn("identifier=999900109").is_err());
        assert!(bsn(&format!("identifier={BSN_SYSTEM}|")).is_err());
        assert_eq!(bsn("").unwrap(), None);
    }

    #[test]
    fn the_input_model_has_every_field_the_policies_read() {
        let api = json!({
            "subject": {"scope": "bgz other", "organization_ura": "00000666", "user_id": "u",
                        "user_role": "01.015", "patient_enrollment_identifier": "x"},
            "request": {"method": "GET", "path": "/Patient",
                        "query_params": {"_include": ["Patient:general-practitioner"]}},
            "context": {"connection_type_code": "hl7-fhir-rest",
                        "data_holder_organization_id": "00000659"},
        });
        let input = policy_input(&api).unwrap();
        assert_eq!(
            input["subject"]["client"]["scopes"],
            json!(["bgz", "other"])
        );
        assert_eq!(input["subject"]["organization"]["ura"], "00000666");
        assert_eq!(input["subject"]["patient_enrollment_identifier"], "x");
        assert_eq!(input["resource"]["type"], "Patient");
        assert_eq!(
            input["action"]["fhir_rest"]["interaction_type"],
            "search-type"
        );
        assert_eq!(
            input["action"]["fhir_rest"]["include"],
            json!(["Patient:general-practitioner"])
        );
        assert_eq!(input["context"]["mitz_consent"], false);
        assert_eq!(input["context"]["data_holder_organization_id"], "00000659");
        // The query as a string, and the form body of a POST search.
        let api = json!({"request": {"method": "POST", "path": "/Patient/_search",
            "header": {"Content-Type": ["application/x-www-form-urlencoded"]},
            "body": format!("identifier={BSN_SYSTEM}%7C999900109")},
            "context": {"connection_type_code": "hl7-fhir-rest"}});
        let input = policy_input(&api).unwrap();
        assert_eq!(input["context"]["patient_bsn"], "999900109");
        // Not FHIR: no FHIR reading at all.
        let api = json!({"request": {"method": "GET", "path": "/anything"}, "context": {}});
        assert_eq!(policy_input(&api).unwrap()["resource"]["type"], Value::Null);
        let api = json!({"request": {"method": "GET", "path": "/Nonsense"},
                         "context": {"connection_type_code": "hl7-fhir-rest"}});
        assert!(policy_input(&api).is_err());
    }
}
