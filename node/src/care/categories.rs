//! The data categories a node shares (`specs/consent-localisation.md` §3.2) and the FHIR
//! resource types each covers: the table the data proxy serves by, the PDP's built-in policy
//! decides with, and the NVI and FHIR Consent interfaces translate codes through.

/// Resource types served, with the data category each belongs to and, for `Observation`, the
/// FHIR observation category that selects it.
pub const RESOURCE_CATEGORIES: [(&str, &str, Option<&str>); 11] = [
    ("Composition", "summary", None),
    ("MedicationStatement", "medication", None),
    ("MedicationRequest", "medication", None),
    ("MedicationDispense", "medication", None),
    ("AllergyIntolerance", "allergies", None),
    ("Condition", "problems", None),
    ("Observation", "lab", Some("laboratory")),
    ("Observation", "vital-signs", Some("vital-signs")),
    ("ImagingStudy", "imaging", None),
    ("CarePlan", "care-plan", None),
    ("Encounter", "encounters", None),
];

/// The resource types of `category`.
pub fn types_of(category: &str) -> Vec<&'static str> {
    let mut out: Vec<&str> = RESOURCE_CATEGORIES
        .iter()
        .filter(|(_, c, _)| *c == category)
        .map(|(t, _, _)| *t)
        .collect();
    out.dedup();
    out
}
