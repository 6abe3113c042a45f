//! What a caller may ask the data proxy (spec: `specs/data-sets.md` §5.1): the parameters
//! that narrow an answer (and those the data sets use), `_include`s of the requested type, and
//! the patient, which the token fixes: a `patient` or `subject` parameter must name the token's
//! patient at a holder, and a `Patient` search's `identifier` must be a BSN, sent on to the
//! source beside the patient's id (so another BSN finds nothing). Sans-IO.

use knoop_privacy::patient::BSN_SYSTEM;

/// Why a caller's parameters are refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// A parameter the proxy does not take.
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0} is too long")]
    TooLong(String),
    /// A parameter it takes, malformed.
    #[error("{0}")]
    Bad(String),
}

/// Search parameters a caller may send; every other is refused (`400`), so that no chain,
/// `_has`, `_revinclude` or wildcard reaches another patient's data.
pub const ALLOWED_PARAMS: [&str; 14] = [
    "_count",
    "_lastUpdated",
    "date",
    "status",
    "clinical-status",
    "code",
    "category",
    "class",
    "scope",
    "_include",
    "patient",
    "subject",
    "identifier",
    "max",
];

/// Longest parameter value.
const MAX_VALUE: usize = 512;
/// Most parameters in one request.
const MAX_PARAMS: usize = 32;
/// Largest `$lastn` `max`.
pub const MAX_LASTN: usize = 100;

/// A caller's request, read.
#[derive(Debug, Default, PartialEq)]
pub struct Asked {
    /// Every parameter as given (what the PDP decides on).
    pub given: Vec<(String, String)>,
    /// What goes to the sources: the parameters without the patient's and `max`.
    pub params: Vec<(String, String)>,
    /// The patient a `patient` or `subject` parameter names (a holder's local id).
    pub patient: Option<String>,
    /// `$lastn`: the most Observations per code (default 1).
    pub max: usize,
}

fn bad(name: &str, why: &str) -> ParamError {
    ParamError::Bad(format!("{name}: {why}"))
}

/// Reads the query of `GET /fhir/<resource_type>[/$<operation>]`.
pub fn parse(
    resource_type: &str,
    operation: Option<&str>,
    query: Option<&str>,
) -> Result<Asked, ParamError> {
    let mut asked = Asked {
        max: 1,
        ..Default::default()
    };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        if !ALLOWED_PARAMS.contains(&k.as_str()) {
            return Err(ParamError::NotAllowed(k));
        }
        if v.len() > MAX_VALUE {
            return Err(ParamError::TooLong(k));
        }
        if asked.given.len() == MAX_PARAMS {
            return Err(bad(&k, &format!("at most {MAX_PARAMS} parameters")));
        }
        asked.given.push((k.clone(), v.clone()));
        match k.as_str() {
            "patient" | "subject" => {
                let id = v.strip_prefix("Patient/").unwrap_or(&v);
                if !crate::directory::ids::is_fhir_id(id) || v.contains(',') {
                    return Err(bad(&k, "one Patient reference (Patient/<id>)"));
                }
                if asked.patient.as_deref().is_some_and(|p| p != id) {
                    return Err(bad(&k, "names a second patient"));
                }
                asked.patient = Some(id.to_owned());
                continue;
            }
            "max" => {
                if operation != Some("lastn") {
                    return Err(ParamError::NotAllowed(k));
                }
                asked.max = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LASTN).contains(n))
                    .ok_or_else(|| bad(&k, &format!("a number from 1 to {MAX_LASTN}")))?;
                continue;
            }
            "identifier" => {
                let is_bsn = v.strip_prefix(BSN_SYSTEM).and_then(|r| r.strip_prefix('|'));
                if resource_type != "Patient"
                    || !is_bsn
                        .is_some_and(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()))
                {
                    return Err(bad(&k, &format!("only a Patient's {BSN_SYSTEM}|<BSN>")));
                }
            }
            "_include" => {
                let mut parts = v.split(':');
                let (source, param, target) = (parts.next(), parts.next(), parts.next());
                let word = |s: &str, f: fn(char) -> bool| !s.is_empty() && s.chars().all(f);
                let ok = source == Some(resource_type)
                    && param.is_some_and(|p| word(p, |c| c.is_ascii_lowercase() || c == '-'))
                    && target.is_none_or(|t| word(t, |c| c.is_ascii_alphabetic()))
                    && parts.next().is_none();
                if !ok {
                    return Err(bad(
                        &k,
                        &format!("{resource_type}:<search parameter>[:<type>], no wildcard"),
                    ));
                }
            }
            _ => {}
        }
        asked.params.push((k, v));
    }
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Result<Asked, ParamError> {
        parse("MedicationRequest", None, Some(q))
    }

    #[test]
    fn callers_cannot_choose_another_patient_or_reach_further() {
        for q in [
            "_include=*",
            "_revinclude=Provenance:target",
            "patient.identifier=x",
            "subject:Patient.name=x",
            "_has:Condition:patient:code=1",
            "_include=Condition:subject",
            "_include=MedicationRequest:*",
            "_include=MedicationRequest:medication:x:y",
            "identifier=x",
            "patient=Patient/a,Patient/b",
            "patient=Group/1",
            "patient=a&subject=Patient/b",
            "max=3",
        ] {
            assert!(params(q).is_err(), "{q}");
        }
        assert!(parse("Patient", None, Some("identifier=urn:x|1")).is_err());
        assert!(parse("Observation", Some("lastn"), Some("max=0")).is_err());
        assert!(parse("Observation", Some("lastn"), Some("max=101")).is_err());
    }

    #[test]
    fn narrowing_parameters_pass_and_the_patient_is_set_apart() {
        let a = params(
            "_count=5&status=active&category=http://snomed.info/sct|16076005\
             &_include=MedicationRequest:medication&patient=Patient/p1",
        )
        .unwrap();
        assert_eq!(a.patient.as_deref(), Some("p1"));
        assert_eq!(a.params.len(), 4);
        assert_eq!(a.given.len(), 5);
        assert!(a.params.iter().all(|(k, _)| k != "patient"));
        let p = parse(
            "Patient",
            None,
            Some("identifier=http://fhir.nl/fhir/NamingSystem/bsn|999900109"),
        )
        .unwrap();
        assert_eq!(p.params.len(), 1);
        let l = parse("Observation", Some("lastn"), Some("max=3&code=x")).unwrap();
        assert_eq!((l.max, l.params.len()), (3, 1));
        assert_eq!(parse("Condition", None, None).unwrap().max, 1);
        assert!(matches!(
            params(&format!("code={}", "x".repeat(513))),
            Err(ParamError::TooLong(_))
        ));
    }
}
