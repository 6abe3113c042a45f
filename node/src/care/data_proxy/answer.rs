//! What the data proxy lets through of a source's answer (spec: `specs/data-sets.md` §5.2), and
//! `$lastn` over a plain search. The source is trusted to search and checked anyway: a match
//! must be of the requested type, about the token's patient at that holder, and of a data
//! category the holder granted ([`category_of`]); an `_include`d resource must be referenced
//! by a match that passed, and be either a supporting resource about no other patient or the
//! patient's own data of a granted category. Sans-IO.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::care::categories::category_of;
use crate::care::data_sets::is_supporting;
use crate::care::source::{is_about, names_a_patient, Found};
use crate::directory::fhir_search::DateQuery;
use crate::directory::r4::visit_references;

/// What one holder may share: its source's id of the patient and the categories granted.
#[derive(Clone, Copy, Debug)]
pub struct Holding<'a> {
    pub local: &'a str,
    pub categories: &'a [String],
}

impl Holding<'_> {
    fn granted(&self, r: &Value) -> bool {
        category_of(r).is_some_and(|c| self.categories.iter().any(|g| g == c))
    }
}

/// The matches and includes that may leave the node.
pub fn admit(found: Found, resource_type: &str, holding: Holding<'_>) -> Found {
    let matches: Vec<Value> = found
        .matches
        .into_iter()
        .filter(|r| r["resourceType"] == resource_type && is_about(r, holding.local))
        .filter(|r| resource_type == "Patient" || holding.granted(r))
        .collect();
    let mut referenced = BTreeSet::new();
    for r in &matches {
        visit_references(r, &mut |reference| {
            if let Some(key) = type_and_id(reference) {
                referenced.insert(key);
            }
        });
    }
    let mut seen = BTreeSet::new();
    let included = found
        .included
        .into_iter()
        .filter(|r| {
            let (Some(t), Some(id)) = (r["resourceType"].as_str(), r["id"].as_str()) else {
                return false;
            };
            let key = (t.to_owned(), id.to_owned());
            if !referenced.contains(&key) || !seen.insert(key) {
                return false;
            }
            if t == "Patient" {
                is_about(r, holding.local)
            } else if is_supporting(t) {
                !names_a_patient(r) || is_about(r, holding.local)
            } else {
                is_about(r, holding.local) && holding.granted(r)
            }
        })
        .collect();
    Found { matches, included }
}

/// `Type/id` of a reference, relative or absolute (`.../Type/id`, `.../Type/id/_history/v`);
/// `None` for a contained (`#`) or `urn:` reference.
fn type_and_id(reference: &str) -> Option<(String, String)> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let path = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let mut segments = path.rsplit('/');
    let id = segments.next()?;
    let t = segments.next()?;
    (t.starts_with(|c: char| c.is_ascii_uppercase()) && !id.is_empty())
        .then(|| (t.to_owned(), id.to_owned()))
}

/// FHIR R4 `Observation/$lastn`: the `max` most recent Observations for each code (the first
/// coding of `code`, or its text), newest first within a code; codes keep the order in which
/// they first appear. Observations entered in error do not count.
pub fn lastn(observations: Vec<Value>, max: usize) -> Vec<Value> {
    let mut groups: BTreeMap<String, (usize, Vec<(i64, Value)>)> = BTreeMap::new();
    for o in observations {
        if o["status"] == "entered-in-error" {
            continue;
        }
        let code = &o["code"];
        let key = code["coding"]
            .as_array()
            .and_then(|c| c.first())
            .map(|c| {
                format!(
                    "{}|{}",
                    c["system"].as_str().unwrap_or_default(),
                    c["code"].as_str().unwrap_or_default()
                )
            })
            .or_else(|| code["text"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let n = groups.len();
        let when = effective_ms(&o);
        groups
            .entry(key)
            .or_insert((n, Vec::new()))
            .1
            .push((when, o));
    }
    let mut ordered: Vec<(usize, Vec<(i64, Value)>)> = groups.into_values().collect();
    ordered.sort_by_key(|(first, _)| *first);
    ordered
        .into_iter()
        .flat_map(|(_, mut obs)| {
            obs.sort_by_key(|o| std::cmp::Reverse(o.0));
            obs.into_iter().take(max).map(|(_, o)| o)
        })
        .collect()
}

/// When an Observation was made (`effective[x]`, else `issued`), in Unix milliseconds;
/// unknown: the earliest.
fn effective_ms(o: &Value) -> i64 {
    [
        &o["effectiveDateTime"],
        &o["effectiveInstant"],
        &o["effectivePeriod"]["start"],
        &o["issued"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().and_then(DateQuery::parse))
    .map_or(i64::MIN, |d| d.from_ms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holding<'a>(categories: &'a [String]) -> Holding<'a> {
        Holding {
            local: "p1",
            categories,
        }
    }

    #[test]
    fn matches_must_be_the_patients_and_of_a_granted_category() {
        let cats = ["lab".to_owned()];
        let found = Found {
            matches: vec![
                json!({"resourceType": "Observation", "id": "a", "subject": {"reference": "Patient/p1"},
                       "category": [{"coding": [{"code": "laboratory"}]}]}),
                json!({"resourceType": "Observation", "id": "b", "subject": {"reference": "Patient/p1"},
                       "category": [{"coding": [{"code": "social-history"}]}]}),
                json!({"resourceType": "Observation", "id": "c", "subject": {"reference": "Patient/p2"},
                       "category": [{"coding": [{"code": "laboratory"}]}]}),
                json!({"resourceType": "Condition", "id": "d", "subject": {"reference": "Patient/p1"}}),
            ],
            included: vec![],
        };
        let ids: Vec<_> = admit(found, "Observation", holding(&cats))
            .matches
            .into_iter()
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(ids, [json!("a")]);
    }

    #[test]
    fn includes_must_be_referenced_and_about_no_other_patient() {
        let cats = ["medication".to_owned()];
        let found = Found {
            matches: vec![
                json!({"resourceType": "MedicationRequest", "id": "m", "subject": {"reference": "Patient/p1"},
                       "medicationReference": {"reference": "Medication/med1"},
                       "requester": {"reference": "https://ehr/fhir/Practitioner/dr/_history/2"}}),
            ],
            included: vec![
                json!({"resourceType": "Medication", "id": "med1"}),
                json!({"resourceType": "Medication", "id": "med1"}),
                json!({"resourceType": "Medication", "id": "med2"}),
                json!({"resourceType": "Practitioner", "id": "dr"}),
                json!({"resourceType": "Device", "id": "dr", "patient": {"reference": "Patient/p2"}}),
                json!({"resourceType": "Patient", "id": "p2"}),
            ],
        };
        let out = admit(found, "MedicationRequest", holding(&cats));
        let ids: Vec<_> = out
            .included
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap(),
                    r["id"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(ids, ["Medication/med1", "Practitioner/dr"]);
        // The patient's own data included from a match is checked as a match would be.
        let found = Found {
            matches: vec![
                json!({"resourceType": "Observation", "id": "o", "subject": {"reference": "Patient/p1"},
                                 "category": [{"coding": [{"code": "laboratory"}]}],
                                 "hasMember": [{"reference": "Observation/v"}, {"reference": "Observation/l"}]}),
            ],
            included: vec![
                json!({"resourceType": "Observation", "id": "v", "subject": {"reference": "Patient/p1"},
                       "category": [{"coding": [{"code": "vital-signs"}]}]}),
                json!({"resourceType": "Observation", "id": "l", "subject": {"reference": "Patient/p1"},
                       "category": [{"coding": [{"code": "laboratory"}]}]}),
            ],
        };
        let lab = ["lab".to_owned()];
        let out = admit(found, "Observation", holding(&lab));
        assert_eq!(out.included.len(), 1);
        assert_eq!(out.included[0]["id"], "l");
    }

    #[test]
    fn references_name_type_and_id() {
        assert_eq!(
            type_and_id("Medication/1"),
            Some(("Medication".into(), "1".into()))
        );
        assert_eq!(
            type_and_id("https://x/fhir/Patient/p/_history/3"),
            Some(("Patient".into(), "p".into()))
        );
        assert_eq!(type_and_id("#c1"), None);
        assert_eq!(type_and_id("urn:uuid:1"), None);
        assert_eq!(type_and_id("p1"), None);
    }

    #[test]
    fn lastn_keeps_the_newest_per_code() {
        let obs = |id: &str, code: &str, when: &str| {
            json!({"resourceType": "Observation", "id": id, "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                   "effectiveDateTime": when})
        };
        let all = vec![
            obs("w1", "29463-7", "2026-11-01"),
            obs("bp1", "85354-9", "2026-11-16T10:00:00+01:00"),
            obs("w2", "29463-7", "2026-11-20T08:00:00Z"),
            obs("bp2", "85354-9", "2026-11-21T10:00:00+01:00"),
            json!({"resourceType": "Observation", "id": "err", "status": "entered-in-error",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                   "effectiveDateTime": "2026-11-30"}),
        ];
        let ids = |v: Vec<Value>| -> Vec<String> {
            v.iter()
                .map(|o| o["id"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(ids(lastn(all.clone(), 1)), ["w2", "bp2"]);
        assert_eq!(ids(lastn(all, 2)), ["w2", "w1", "bp2", "bp1"]);
    }
}
