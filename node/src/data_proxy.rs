//! The data proxy (spec: `specs/data-fetch.md` §3): on the public API, `GET /fhir/{type}` with
//! an access token from this node. The proxy, not the caller, decides what is asked of the
//! source: the token's patient (as each holder's local id), the resource types of the granted
//! categories, and a short list of harmless search parameters. What comes back is filtered
//! again (right type, right patient), stamped with the holder it came from, and audited.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::audit::Event;
use crate::rpc::RpcState;
use crate::source::is_about;
use crate::tokens::Grant;

type St = State<Arc<RpcState>>;

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

/// Search parameters a caller may add (everything else, `patient`, `subject`, `_include` and
/// chains among them, is refused).
pub const ALLOWED_PARAMS: [&str; 6] = [
    "_count",
    "_lastUpdated",
    "date",
    "status",
    "clinical-status",
    "code",
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

/// Whether `s` is a FHIR logical id.
pub fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new().route("/fhir/{resource_type}", get(search))
}

/// A FHIR error: an `OperationOutcome`.
fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        Json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn search(
    State(st): St,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut event = Event {
        kind: "data".into(),
        peer: "http".into(),
        ..Default::default()
    };
    let res = serve(&st, &resource_type, query.as_deref(), &headers, &mut event).await;
    event.outcome = match &res {
        Ok((_, n, 0)) => format!("served {n} {resource_type}"),
        Ok((_, n, failed)) => format!("served {n} {resource_type}; {failed} source(s) failed"),
        Err((_, code, text)) => format!("{code}: {text}"),
    };
    st.audit.append(event);
    match res {
        Ok((bundle, _, _)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/fhir+json")],
            Json(bundle),
        )
            .into_response(),
        Err((status, code, text)) => outcome(status, code, &text),
    }
}

type Refusal = (StatusCode, &'static str, String);

/// Checks the token and the request, searches each granted holder's source, and merges.
/// Returns the Bundle, the resources served and the holders whose source failed.
async fn serve(
    st: &Arc<RpcState>,
    resource_type: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    event: &mut Event,
) -> Result<(Value, usize, usize), Refusal> {
    let token = bearer(headers).ok_or((
        StatusCode::UNAUTHORIZED,
        "login",
        "an access token from this node is required (Authorization: Bearer)".to_owned(),
    ))?;
    let grant = st.tokens.introspect(token).ok_or((
        StatusCode::UNAUTHORIZED,
        "expired",
        "the access token is unknown or expired".to_owned(),
    ))?;
    event.requester = grant.requester.clone();
    event.who = grant.professional.clone();
    event.purpose = grant.purpose.clone();
    event.patient = grant.patient.clone();
    event.scope = grant.scope.clone();
    if !RESOURCE_CATEGORIES
        .iter()
        .any(|(t, _, _)| *t == resource_type)
    {
        return Err((
            StatusCode::NOT_FOUND,
            "not-supported",
            format!("resource type {resource_type} is not served"),
        ));
    }
    let params = caller_params(query)?;
    let holders = holders_for(&grant, resource_type);
    if holders.is_empty() {
        return Err((
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token does not cover {resource_type}"),
        ));
    }
    let p = knoop_privacy::patient::parse_reference(&grant.patient).ok_or((
        StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        "the token's patient is not a reference".to_owned(),
    ))?;
    event.categories = RESOURCE_CATEGORIES
        .iter()
        .filter(|(t, c, _)| {
            *t == resource_type && grant.holdings.iter().any(|(_, g)| g.iter().any(|x| x == c))
        })
        .map(|(_, c, _)| (*c).to_owned())
        .collect();
    let locals = st.localisation.source_patients(&p);
    let searches = holders.into_iter().map(|(holder, obs)| {
        let mut params = params.clone();
        if !obs.is_empty() {
            params.push(("category".into(), obs.join(",")));
        }
        let local = locals.get(&holder).cloned();
        async move {
            let Some(local) = local else {
                return (
                    holder,
                    Err("the patient is not linked to this holder's source".to_owned()),
                );
            };
            let found = st
                .sources
                .search(&holder, resource_type, &local, &params)
                .await
                .map_err(|e| e.to_string());
            let found = found.map(|rs| {
                rs.into_iter()
                    // The source is trusted to search, and checked anyway.
                    .filter(|r| r["resourceType"] == resource_type && is_about(r, &local))
                    .filter(|r| obs.is_empty() || in_observation_category(r, &obs))
                    .collect::<Vec<_>>()
            });
            (holder, found)
        }
    });
    let results = futures::future::join_all(searches).await;
    let mut entries = Vec::new();
    let mut failed = 0;
    for (holder, res) in results {
        match res {
            Ok(resources) => {
                for mut r in resources {
                    let id = r["id"].as_str().unwrap_or_default().to_owned();
                    if let Some(o) = r.as_object_mut() {
                        let meta = o.entry("meta").or_insert_with(|| json!({}));
                        if let Some(m) = meta.as_object_mut() {
                            m.insert("source".into(), json!(holder));
                        }
                    }
                    entries.push(json!({
                        "fullUrl": format!("{}/fhir/{resource_type}/{id}", st.public_url.as_deref().unwrap_or("")),
                        "resource": r,
                        "search": {"mode": "match"},
                    }));
                }
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(%holder, error = %e, "source search failed");
                entries.push(json!({
                    "resource": {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "transient",
                                   "diagnostics": format!("{holder}: {e}")}],
                    },
                    "search": {"mode": "outcome"},
                }));
            }
        }
    }
    let served = entries.len() - failed;
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": served,
        "entry": entries,
    });
    Ok((bundle, served, failed))
}

/// Whether an Observation has one of the FHIR observation categories `codes`.
fn in_observation_category(r: &Value, codes: &[&str]) -> bool {
    r["category"].as_array().into_iter().flatten().any(|c| {
        c["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["code"].as_str().is_some_and(|code| codes.contains(&code)))
    })
}

/// The query a caller sent, checked against [`ALLOWED_PARAMS`].
fn caller_params(query: Option<&str>) -> Result<Vec<(String, String)>, Refusal> {
    let mut out = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !ALLOWED_PARAMS.contains(&k.as_ref()) {
            return Err((
                StatusCode::BAD_REQUEST,
                "not-supported",
                format!(
                    "search parameter {k} is not allowed here (the token fixes the patient; \
                     allowed: {ALLOWED_PARAMS:?})"
                ),
            ));
        }
        if v.len() > 256 {
            return Err((
                StatusCode::BAD_REQUEST,
                "too-long",
                format!("{k} is too long"),
            ));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// The grant's holders that may share `resource_type`, with the FHIR observation categories
/// to restrict to (empty: no restriction).
fn holders_for(grant: &Grant, resource_type: &str) -> Vec<(String, Vec<&'static str>)> {
    let rows: Vec<_> = RESOURCE_CATEGORIES
        .iter()
        .filter(|(t, _, _)| *t == resource_type)
        .collect();
    grant
        .holdings
        .iter()
        .filter_map(|(holder, cats)| {
            let allowed: Vec<_> = rows
                .iter()
                .filter(|(_, c, _)| cats.iter().any(|g| g == c))
                .collect();
            if allowed.is_empty() {
                return None;
            }
            let obs: Vec<&'static str> = allowed.iter().filter_map(|(_, _, o)| *o).collect();
            Some((holder.clone(), obs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(holdings: Vec<(&str, Vec<&str>)>) -> Grant {
        Grant {
            requester: "did:r".into(),
            professional: "did:p".into(),
            scope: "s".into(),
            patient: "urn:knoop:patient:x".into(),
            purpose: "regular-care".into(),
            holdings: holdings
                .into_iter()
                .map(|(h, c)| (h.to_owned(), c.into_iter().map(str::to_owned).collect()))
                .collect(),
            break_the_glass: false,
            expires_ms: 0,
        }
    }

    #[test]
    fn every_category_has_resource_types_and_they_are_known() {
        for c in knoop_vc::types::DATA_CATEGORIES {
            assert!(!types_of(c).is_empty(), "{c} has no resource type");
        }
        assert_eq!(
            types_of("medication"),
            [
                "MedicationStatement",
                "MedicationRequest",
                "MedicationDispense"
            ]
        );
    }

    #[test]
    fn holders_get_only_types_of_their_granted_categories() {
        let g = grant(vec![("did:a", vec!["lab"]), ("did:b", vec!["medication"])]);
        assert_eq!(
            holders_for(&g, "Observation"),
            vec![("did:a".to_owned(), vec!["laboratory"])]
        );
        assert_eq!(
            holders_for(&g, "MedicationStatement"),
            vec![("did:b".to_owned(), vec![])]
        );
        assert!(holders_for(&g, "Condition").is_empty());
        let both = grant(vec![("did:a", vec!["lab", "vital-signs"])]);
        assert_eq!(
            holders_for(&both, "Observation"),
            vec![("did:a".to_owned(), vec!["laboratory", "vital-signs"])]
        );
    }

    #[test]
    fn callers_cannot_choose_the_patient_or_include_more() {
        for q in [
            "patient=Patient/1",
            "subject=Patient/1",
            "_include=*",
            "identifier=x",
            "patient.identifier=x",
            "_has:Condition:patient:code=1",
        ] {
            assert!(caller_params(Some(q)).is_err(), "{q}");
        }
        assert_eq!(
            caller_params(Some("_count=5&status=active")).unwrap(),
            vec![
                ("_count".to_owned(), "5".to_owned()),
                ("status".to_owned(), "active".to_owned())
            ]
        );
        assert!(caller_params(None).unwrap().is_empty());
    }

    #[test]
    fn observation_categories_are_checked_on_the_result() {
        let lab = json!({"category": [{"coding": [{"code": "laboratory"}]}]});
        assert!(in_observation_category(&lab, &["laboratory"]));
        assert!(!in_observation_category(&lab, &["vital-signs"]));
        assert!(!in_observation_category(&json!({}), &["laboratory"]));
    }

    #[test]
    fn fhir_ids() {
        assert!(is_fhir_id("abc-1.2"));
        assert!(!is_fhir_id(""));
        assert!(!is_fhir_id("a/b"));
        assert!(!is_fhir_id(&"a".repeat(65)));
    }
}
