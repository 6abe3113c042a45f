//! The data categories a node shares (`specs/consent-localisation.md` §3.2) and the FHIR
//! resources each covers (`specs/data-sets.md` §2): the table the NVI and FHIR Consent
//! interfaces translate the national guide's category codes (resource type names) through, and
//! the rule the data proxy decides each resource it serves by ([`category_of`]).

use serde_json::Value;

/// Resource types with the data category each belongs to. A type may be in several
/// categories (an `Observation` is lab or vital signs by its own category, [`category_of`]).
pub const RESOURCE_CATEGORIES: [(&str, &str); 26] = [
    ("Composition", "summary"),
    ("Coverage", "summary"),
    ("Flag", "summary"),
    ("DocumentReference", "summary"),
    ("MedicationStatement", "medication"),
    ("MedicationRequest", "medication"),
    ("MedicationDispense", "medication"),
    ("MedicationAdministration", "medication"),
    ("Immunization", "medication"),
    ("ImmunizationRecommendation", "medication"),
    ("AllergyIntolerance", "allergies"),
    ("Condition", "problems"),
    ("Observation", "lab"),
    ("Observation", "vital-signs"),
    ("ImagingStudy", "imaging"),
    ("CarePlan", "care-plan"),
    ("Consent", "care-plan"),
    ("NutritionOrder", "care-plan"),
    ("ServiceRequest", "care-plan"),
    ("DeviceRequest", "care-plan"),
    ("DeviceUseStatement", "care-plan"),
    ("Appointment", "care-plan"),
    ("Goal", "care-plan"),
    ("Encounter", "encounters"),
    ("Procedure", "encounters"),
    ("EpisodeOfCare", "encounters"),
];

/// Resources that are no patient's data by themselves: the data proxy serves them only as
/// `_include`s of what it served (a medication's product, the author, the device), and then
/// only when they are about no other patient.
pub const SUPPORTING_TYPES: [&str; 8] = [
    "Medication",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Device",
    "Specimen",
    "Substance",
];

/// FHIR observation categories (and the SNOMED CT concept the BgZ selects laboratory results
/// by, 275711006) that make an `Observation` a lab result.
const LAB_CODES: [&str; 2] = ["laboratory", "275711006"];

/// The resource types of `category` in the table (what the NVI and FHIR Consent interfaces
/// name the category by).
pub fn types_of(category: &str) -> Vec<&'static str> {
    let mut out: Vec<&str> = RESOURCE_CATEGORIES
        .iter()
        .filter(|(_, c)| *c == category)
        .map(|(t, _)| *t)
        .collect();
    out.dedup();
    out
}

/// The resource types the data proxy may return for `category`: the table's, and for
/// `summary` also `Observation` (one in neither the lab nor the vital-signs category, such as
/// social history or functional status, [`category_of`]).
pub fn served_types_of(category: &str) -> Vec<&'static str> {
    let mut out = types_of(category);
    if category == "summary" {
        out.push("Observation");
    }
    out
}

/// Whether the data proxy serves `resource_type` as a patient's data (`Patient` itself is
/// served to every token for its own patient).
pub fn is_served(resource_type: &str) -> bool {
    resource_type == "Patient" || RESOURCE_CATEGORIES.iter().any(|(t, _)| *t == resource_type)
}

/// The data category of one resource, `None` for a type no category covers. An `Observation`
/// is `lab` with a laboratory category, `vital-signs` with the vital-signs category, and
/// otherwise part of the `summary`.
pub fn category_of(resource: &Value) -> Option<&'static str> {
    let t = resource["resourceType"].as_str()?;
    if t == "Observation" {
        let codes: Vec<&str> = resource["category"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["coding"].as_array().into_iter().flatten())
            .filter_map(|c| c["code"].as_str())
            .collect();
        return Some(if codes.iter().any(|c| LAB_CODES.contains(c)) {
            "lab"
        } else if codes.contains(&"vital-signs") {
            "vital-signs"
        } else {
            "summary"
        });
    }
    RESOURCE_CATEGORIES
        .iter()
        .find(|(rt, _)| *rt == t)
        .map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_category_has_resource_types() {
        for c in knoop_vc::types::DATA_CATEGORIES {
            assert!(!types_of(c).is_empty(), "{c} has no resource type");
        }
        assert_eq!(
            types_of("medication"),
            [
                "MedicationStatement",
                "MedicationRequest",
                "MedicationDispense",
                "MedicationAdministration",
                "Immunization",
                "ImmunizationRecommendation"
            ]
        );
        assert_eq!(served_types_of("summary").last(), Some(&"Observation"));
        assert!(!types_of("summary").contains(&"Observation"));
    }

    #[test]
    fn observations_are_categorised_by_their_own_category() {
        let obs = |code: &str| {
            json!({"resourceType": "Observation",
                   "category": [{"coding": [{"system": "x", "code": code}]}]})
        };
        assert_eq!(category_of(&obs("laboratory")), Some("lab"));
        assert_eq!(category_of(&obs("275711006")), Some("lab"));
        assert_eq!(category_of(&obs("vital-signs")), Some("vital-signs"));
        assert_eq!(category_of(&obs("social-history")), Some("summary"));
        assert_eq!(
            category_of(&json!({"resourceType": "Observation"})),
            Some("summary")
        );
        assert_eq!(
            category_of(&json!({"resourceType": "Condition"})),
            Some("problems")
        );
        assert_eq!(category_of(&json!({"resourceType": "Medication"})), None);
        assert_eq!(category_of(&json!({"resourceType": "Patient"})), None);
        assert!(is_served("Patient") && is_served("Consent") && !is_served("Medication"));
    }
}
