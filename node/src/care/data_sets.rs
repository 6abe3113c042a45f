//! The data sets a token's scope can name (spec: `specs/data-sets.md`): the national use
//! cases' fixed lists of FHIR queries, as their standards define them (the BgZ, Medicatie-
//! overdracht, proactive care planning). A holder's data proxy allows exactly these queries to a
//! token of that scope (the built-in Rego policy `knoop.data_set` reads this table as data);
//! a requester's node runs the whole list at every holder for one data fetch. Sans-IO: the
//! table and what follows from it.

use serde_json::{json, Value};

use crate::care::categories::{served_types_of, SUPPORTING_TYPES};

/// One query of a data set: `GET [base]/<type>[/$<operation>]?<params>`, the patient added by
/// the data proxy (the token names it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Query {
    pub resource_type: &'static str,
    /// A FHIR operation on the type (`lastn`), else a search.
    pub operation: Option<&'static str>,
    /// Parameters in order; a value lists OR alternatives with commas (FHIR R4 §3.1.1.4), an
    /// `_include` is a parameter.
    pub params: &'static [(&'static str, &'static str)],
}

/// A named list of queries.
#[derive(Debug)]
pub struct DataSet {
    /// The scope that names it (lower case, `_` for `-`: [`scope_name`]).
    pub name: &'static str,
    pub title: &'static str,
    /// The standard the queries come from.
    pub standard: &'static str,
    pub queries: &'static [Query],
}

const fn search(
    resource_type: &'static str,
    params: &'static [(&'static str, &'static str)],
) -> Query {
    Query {
        resource_type,
        operation: None,
        params,
    }
}

const fn lastn(params: &'static [(&'static str, &'static str)]) -> Query {
    Query {
        resource_type: "Observation",
        operation: Some("lastn"),
        params,
    }
}

/// The medication agreements (prescriptions), each with its medication.
const MEDICATION_AGREEMENTS: Query = search(
    "MedicationRequest",
    &[
        ("category", "http://snomed.info/sct|16076005"),
        ("_include", "MedicationRequest:medication"),
    ],
);

/// The dispenses (by the Dutch profiles' category), each with its medication.
const DISPENSES: Query = search(
    "MedicationDispense",
    &[
        ("category", "http://snomed.info/sct|422037009"),
        ("_include", "MedicationDispense:medication"),
    ],
);

/// The medication use, each with its medication.
const MEDICATION_USE: Query = search(
    "MedicationStatement",
    &[
        (
            "category",
            "urn:oid:2.16.840.1.113883.2.4.3.11.60.20.77.5.3|6",
        ),
        ("_include", "MedicationStatement:medication"),
    ],
);

/// The BgZ (basisgegevensset zorg), MedMij FHIR BgZ 2017's query list on FHIR R4: its
/// `ProcedureRequest` query is R4's `ServiceRequest`, the encounter classes are R4's
/// `v3-ActCode` codes, and a lab result's related results are R4's `has-member`
/// (`specs/data-sets.md` §3.1).
pub const BGZ: DataSet = DataSet {
    name: "bgz",
    title: "Basisgegevensset Zorg (BgZ)",
    standard: "https://informatiestandaarden.nictiz.nl/wiki/MedMij:V2020.01/FHIR_BGZ_2017",
    queries: &[
        search("Patient", &[("_include", "Patient:general-practitioner")]),
        search(
            "Coverage",
            &[
                ("_include", "Coverage:payor:Patient"),
                ("_include", "Coverage:payor:Organization"),
            ],
        ),
        search(
            "Consent",
            &[("category", "http://snomed.info/sct|11291000146105")],
        ),
        search(
            "Consent",
            &[("category", "http://snomed.info/sct|11341000146107")],
        ),
        lastn(&[(
            "category",
            "http://snomed.info/sct|118228005,http://snomed.info/sct|384821006",
        )]),
        search("Condition", &[]),
        lastn(&[("code", "http://snomed.info/sct|365508006")]),
        search(
            "Observation",
            &[("code", "http://snomed.info/sct|228366006")],
        ),
        search(
            "Observation",
            &[("code", "http://snomed.info/sct|228273003")],
        ),
        search(
            "Observation",
            &[("code", "http://snomed.info/sct|365980008")],
        ),
        search("NutritionOrder", &[]),
        search("Flag", &[]),
        search("AllergyIntolerance", &[]),
        MEDICATION_USE,
        MEDICATION_AGREEMENTS,
        DISPENSES,
        search(
            "DeviceUseStatement",
            &[("_include", "DeviceUseStatement:device")],
        ),
        search("Immunization", &[("status", "completed")]),
        lastn(&[("code", "http://loinc.org|85354-9")]),
        lastn(&[(
            "code",
            "http://loinc.org|8302-2,http://loinc.org|8306-3,http://loinc.org|8308-9",
        )]),
        lastn(&[
            ("category", "http://snomed.info/sct|275711006"),
            ("_include", "Observation:has-member"),
            ("_include", "Observation:specimen"),
        ]),
        search(
            "Procedure",
            &[("category", "http://snomed.info/sct|387713003")],
        ),
        search(
            "Encounter",
            &[(
                "class",
                "http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP,\
                 http://terminology.hl7.org/CodeSystem/v3-ActCode|ACUTE,\
                 http://terminology.hl7.org/CodeSystem/v3-ActCode|NONAC",
            )],
        ),
        search("ServiceRequest", &[("status", "active")]),
        search("ImmunizationRecommendation", &[]),
        search(
            "DeviceRequest",
            &[("status", "active"), ("_include", "DeviceRequest:device")],
        ),
        search("Appointment", &[("status", "booked,pending,proposed")]),
        search("DocumentReference", &[("status", "current")]),
    ],
};

/// Medicatieoverdracht: the medication process's current prescriptions, dispenses and
/// medication use, each with its medication (MedMij Medicatieproces 9; `specs/data-sets.md`
/// §3.2).
pub const MEDICATIEOVERDRACHT: DataSet = DataSet {
    name: "medicatieoverdracht",
    title: "Medicatieoverdracht",
    standard: "https://informatiestandaarden.nictiz.nl/wiki/MedMij:V2019.01_FHIR_MedicationProcess",
    queries: &[
        search("Patient", &[]),
        MEDICATION_AGREEMENTS,
        DISPENSES,
        MEDICATION_USE,
    ],
};

/// Proactive care planning (PZP / ACP): the patient and their advance care planning
/// agreements (Nuts PZP volume 3; `specs/data-sets.md` §3.3).
pub const PZP: DataSet = DataSet {
    name: "pzp",
    title: "Proactieve zorgplanning (PZP)",
    standard: "https://wiki.nuts.nl/books/pzp/page/pzp-volume-3-content",
    queries: &[
        search("Patient", &[]),
        search(
            "Consent",
            &[
                (
                    "scope",
                    "http://terminology.hl7.org/CodeSystem/consentscope|treatment",
                ),
                ("category", "http://snomed.info/sct|129125009"),
            ],
        ),
    ],
};

/// Every data set.
pub const DATA_SETS: [&DataSet; 3] = [&BGZ, &MEDICATIEOVERDRACHT, &PZP];

/// The name a scope selects, of a data set or a policy: lower case, `-` as `_` (knooppunt's
/// normalisation of policy names, `specs/pdp.md` §2).
pub fn scope_name(scope: &str) -> String {
    scope.to_ascii_lowercase().replace('-', "_")
}

/// The data set a scope names, if any.
pub fn for_scope(scope: &str) -> Option<&'static DataSet> {
    let name = scope_name(scope);
    DATA_SETS.into_iter().find(|d| d.name == name)
}

impl Query {
    /// The path under the FHIR base: `Observation/$lastn`, `Condition`.
    pub fn path(&self) -> String {
        match self.operation {
            Some(op) => format!("{}/${op}", self.resource_type),
            None => self.resource_type.to_owned(),
        }
    }

    /// The query string (form-encoded, in order).
    pub fn query_string(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.params {
            q.append_pair(k, v);
        }
        q.finish()
    }

    /// Whether a holder that granted `categories` can answer the query (`Patient`: any).
    pub fn answerable_with(&self, categories: &[String]) -> bool {
        self.resource_type == "Patient"
            || categories
                .iter()
                .any(|c| served_types_of(c).contains(&self.resource_type))
    }

    /// The query as the policy reads it (`data.knoop.data_sets[name].queries[_]`): the type,
    /// the interaction, the operation, the `_include`s, and the other parameters as
    /// `name → [[OR values]]` (the PDP input model, `specs/pdp.md` §3).
    fn policy_data(&self) -> Value {
        let mut params = serde_json::Map::new();
        let mut include = Vec::new();
        for (k, v) in self.params {
            if *k == "_include" {
                include.push(json!(v));
                continue;
            }
            let ors: Vec<&str> = v.split(',').collect();
            let groups = params.entry(*k).or_insert_with(|| json!([]));
            if let Some(g) = groups.as_array_mut() {
                g.push(json!(ors));
            }
        }
        json!({
            "type": self.resource_type,
            "interaction": if self.operation.is_some() { "operation" } else { "search-type" },
            "operation": self.operation.unwrap_or(""),
            "include": include,
            "params": params,
        })
    }
}

impl DataSet {
    /// The resource types its queries are about.
    pub fn types(&self) -> Vec<&'static str> {
        let mut out: Vec<&str> = self.queries.iter().map(|q| q.resource_type).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Every data set as the built-in policy reads it: `{name: {queries, types}}`.
pub fn policy_data() -> Value {
    let mut out = serde_json::Map::new();
    for d in DATA_SETS {
        let queries: Vec<Value> = d.queries.iter().map(Query::policy_data).collect();
        out.insert(
            d.name.to_owned(),
            json!({"queries": queries, "types": d.types(), "title": d.title}),
        );
    }
    Value::Object(out)
}

/// Whether `resource_type` may come with a data set's answer as an `_include` only.
pub fn is_supporting(resource_type: &str) -> bool {
    SUPPORTING_TYPES.contains(&resource_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::care::categories::is_served;

    #[test]
    fn every_query_is_of_a_served_type_and_includes_name_their_source() {
        for d in DATA_SETS {
            for q in d.queries {
                assert!(is_served(q.resource_type), "{}: {q:?}", d.name);
                for (k, v) in q.params {
                    if *k == "_include" {
                        assert!(v.starts_with(&format!("{}:", q.resource_type)), "{v}");
                    }
                }
            }
        }
        assert_eq!(BGZ.queries.len(), 28);
    }

    #[test]
    fn queries_render_as_fhir_requests() {
        let q = &BGZ.queries[20];
        assert_eq!(q.path(), "Observation/$lastn");
        assert_eq!(
            q.query_string(),
            "category=http%3A%2F%2Fsnomed.info%2Fsct%7C275711006\
             &_include=Observation%3Ahas-member&_include=Observation%3Aspecimen"
        );
        let data = q.policy_data();
        assert_eq!(data["interaction"], "operation");
        assert_eq!(
            data["params"]["category"],
            json!([["http://snomed.info/sct|275711006"]])
        );
        assert_eq!(data["include"].as_array().map(Vec::len), Some(2));
        let enc = BGZ.queries.iter().find(|q| q.resource_type == "Encounter");
        assert_eq!(
            enc.map(|q| q.policy_data()["params"]["class"][0]
                .as_array()
                .map(Vec::len)),
            Some(Some(3))
        );
    }

    #[test]
    fn scopes_name_data_sets_as_policies_are_named() {
        assert_eq!(for_scope("BgZ").map(|d| d.name), Some("bgz"));
        assert_eq!(for_scope("pzp").map(|d| d.name), Some("pzp"));
        assert!(for_scope("discharge-summary").is_none());
        let cond = BGZ.queries.iter().find(|q| q.resource_type == "Condition");
        assert!(cond.is_some_and(|q| q.answerable_with(&["problems".into()])));
        assert!(cond.is_some_and(|q| !q.answerable_with(&["lab".into()])));
        assert!(BGZ.queries[0].answerable_with(&[]));
    }
}
