//! FHIR JSON answers for every FHIR route of the RPC and the public API: the media type
//! (`application/fhir+json`), `OperationOutcome`s with their status, `ETag` and
//! `Last-Modified` of a versioned resource, and the query parameters of a FHIR request.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::directory::mcsd::{Outcome, Params, FHIR_JSON};

/// A FHIR JSON answer (`application/fhir+json`), for every FHIR route.
pub fn fhir(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

/// The `OperationOutcome` of `o` with its status.
pub fn outcome(o: &Outcome) -> Response {
    fhir(
        StatusCode::from_u16(o.status).unwrap_or(StatusCode::BAD_REQUEST),
        &o.resource(),
    )
}

/// A resource or bundle with 200, or the outcome.
pub fn answer(r: Result<Value, Outcome>) -> Response {
    match r {
        Ok(v) => {
            let mut resp = fhir(StatusCode::OK, &v);
            version_headers(&mut resp, &v);
            resp
        }
        Err(o) => outcome(&o),
    }
}

/// `ETag` and `Last-Modified` of a resource with `meta` (R4 §3.1.0.5).
pub fn version_headers(resp: &mut Response, r: &Value) {
    if r["resourceType"] == "Bundle" {
        return;
    }
    if let Some(v) = r["meta"]["versionId"].as_str() {
        if let Ok(h) = HeaderValue::from_str(&format!("W/\"{v}\"")) {
            resp.headers_mut().insert(header::ETAG, h);
        }
    }
    let modified = r["meta"]["lastUpdated"]
        .as_str()
        .and_then(crate::directory::fhir_search::instant_ms)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| httpdate(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)));
    if let Some(Ok(h)) = modified.map(|m| HeaderValue::from_str(&m)) {
        resp.headers_mut().insert(header::LAST_MODIFIED, h);
    }
}

/// An HTTP date (RFC 9110 §5.6.7, IMF-fixdate).
fn httpdate(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let s = knoop_did::knoop::time::to_rfc3339(secs * 1000);
    let (y, m, d) = (&s[0..4], &s[5..7], &s[8..10]);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][m.parse::<usize>().unwrap_or(1).saturating_sub(1).min(11)];
    format!("{weekday}, {d} {month} {y} {} GMT", &s[11..19])
}

pub fn params(q: Option<String>) -> Params {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The parameters of a `POST [type]/_search` form body and its query string (R4 §3.1.1.1).
pub fn form_params(
    headers: &HeaderMap,
    q: Option<String>,
    body: &Bytes,
) -> Result<Params, Outcome> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(Outcome::new(
            415,
            "not-supported",
            "a _search body is application/x-www-form-urlencoded",
        ));
    }
    let mut p = params(q);
    p.extend(url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    Ok(p)
}

/// The JSON resource in a request body (`application/fhir+json` or `application/json`).
pub fn fhir_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Outcome> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| {
            c.starts_with("application/fhir+json") || c.starts_with("application/json")
        });
    if !json {
        return Err(Outcome::new(
            415,
            "not-supported",
            "the body is application/fhir+json",
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Outcome::new(400, "structure", format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(Outcome::new(400, "structure", "the body is not a resource"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_are_imf_fixdate() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(super::httpdate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
