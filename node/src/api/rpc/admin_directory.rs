//! The mCSD Administration Directory of each hosted organisation on the RPC (spec:
//! `specs/mcsd.md` §5), FHIR base `/admin-directory/<URA>`: create, update, delete and
//! transaction for an administration client (here), and read, search and `_history` of what
//! the organisation published ([`crate::api::admin_directory_reads`]), in FHIR JSON; errors as
//! `OperationOutcome` ([`crate::directory::admin`]).

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::Json;
use axum::Router;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::api::admin_directory_reads::{self as reads, DirectoryHost};
use crate::api::fhir_answer::fhir_body;
use crate::api::rpc::fhir::{base_url, fhir, outcome, version_headers};
use crate::api::rpc::state::RpcState;
use crate::directory::admin::{self, AdminDirectory, Done, Request, Tenant};
use crate::directory::mcsd::{self, Outcome};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    reads::routes::<RpcState>()
        .route("/admin-directory/{ura}", post(transaction))
        .route("/admin-directory/{ura}/", post(transaction))
        .route("/admin-directory/{ura}/{type}", post(create))
        .route(
            "/admin-directory/{ura}/{type}/{id}",
            put(update).delete(delete),
        )
        .route("/mcsd/update", post(mcsd_update))
}

/// `POST /mcsd/update` (knooppunt's): one update client round now, then the view refreshed;
/// the report per external directory.
async fn mcsd_update(State(st): St) -> Response {
    let report = st.update_client.update().await;
    let view = st.admin_directory.view().clone();
    let _ = tokio::task::spawn_blocking(move || view.refresh()).await;
    let mut resp = Json(report).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

impl DirectoryHost for RpcState {
    fn admin_directory(&self) -> &AdminDirectory {
        &self.admin_directory
    }
    fn base(&self, headers: &HeaderMap, ura: &str) -> String {
        base(headers, ura)
    }
}

fn base(headers: &HeaderMap, ura: &str) -> String {
    base_url(headers, &format!("/admin-directory/{ura}"))
}

/// The hosted organisation with URA `ura`, if the caller may act as it.
fn tenant(st: &RpcState, caller: &Caller, ura: &str) -> Result<Tenant, Outcome> {
    let t = st.admin_directory.tenant(ura)?;
    caller
        .act_as(st, &t.did)
        .map_err(|r| Outcome::new(403, "forbidden", r.message))?;
    Ok(t)
}

/// The answer to one create or update.
fn written(base: &str, d: &Done) -> Response {
    let Some(v) = &d.version else {
        return fhir(
            StatusCode::ACCEPTED,
            &json!({"resourceType": "OperationOutcome", "issue": [{"severity": "information",
                    "code": "informational",
                    "diagnostics": "published; not (yet) served by this node's directory"}]}),
        );
    };
    let r = v.resource.clone().unwrap_or_default();
    let status = if d.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = fhir(status, &r);
    version_headers(&mut resp, &r);
    let location = format!("{base}/{}/{}/_history/{}", d.type_, d.id, v.vid);
    if let Ok(h) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, h);
    }
    resp
}

async fn apply_one(
    st: &RpcState,
    caller: &Caller,
    ura: &str,
    headers: &HeaderMap,
    req: Request,
) -> Response {
    let t = match tenant(st, caller, ura) {
        Ok(t) => t,
        Err(o) => return outcome(&o),
    };
    let delete = matches!(req, Request::Delete { .. });
    let span = tracing::info_span!("admin_directory", ura, tenant = %t.did);
    match st
        .admin_directory
        .apply(&t, vec![req])
        .instrument(span)
        .await
    {
        Err(o) => outcome(&o),
        Ok(_) if delete => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(axum::body::Body::empty())
            .unwrap_or_default(),
        Ok(done) => match done.first() {
            Some(d) => written(&base(headers, ura), d),
            None => outcome(&Outcome::invalid("nothing to do")),
        },
    }
}

async fn create(
    State(st): St,
    caller: Caller,
    Path((ura, type_)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let resource = match fhir_body(&headers, &body) {
        Ok(r) => r,
        Err(o) => return outcome(&o),
    };
    let req = Request::Create {
        type_,
        resource,
        full_url: None,
    };
    apply_one(&st, &caller, &ura, &headers, req).await
}

async fn update(
    State(st): St,
    caller: Caller,
    Path((ura, type_, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let resource = match fhir_body(&headers, &body) {
        Ok(r) => r,
        Err(o) => return outcome(&o),
    };
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let req = Request::Update {
        type_,
        id,
        resource,
        if_match,
    };
    apply_one(&st, &caller, &ura, &headers, req).await
}

async fn delete(
    State(st): St,
    caller: Caller,
    Path((ura, type_, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    apply_one(&st, &caller, &ura, &headers, Request::Delete { type_, id }).await
}

/// `POST [base]` with a `transaction` Bundle: all entries or none (R4 §3.1.0.11).
async fn transaction(
    State(st): St,
    caller: Caller,
    Path(ura): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t = match tenant(&st, &caller, &ura) {
        Ok(t) => t,
        Err(o) => return outcome(&o),
    };
    let requests = match fhir_body(&headers, &body).and_then(|b| admin::transaction_requests(&b)) {
        Ok(r) => r,
        Err(o) => return outcome(&o),
    };
    let span = tracing::info_span!("admin_directory_transaction", ura, entries = requests.len());
    let done = match st
        .admin_directory
        .apply(&t, requests)
        .instrument(span)
        .await
    {
        Ok(d) => d,
        Err(o) => return outcome(&o),
    };
    let base = base(&headers, &ura);
    let entries: Vec<Value> = done
        .iter()
        .map(|d| match &d.version {
            Some(v) => {
                let status = if d.created { "201 Created" } else { "200 OK" };
                let mut e = json!({"fullUrl": format!("{base}/{}/{}", d.type_, d.id),
                    "response": {"status": status,
                        "location": format!("{}/{}/_history/{}", d.type_, d.id, v.vid),
                        "etag": mcsd::etag(v.vid),
                        "lastModified": knoop_did::knoop::time::to_rfc3339_ms(v.at_ms)}});
                if let Some(r) = &v.resource {
                    e["resource"] = r.clone();
                }
                e
            }
            None => json!({"response": {"status": "204 No Content"}}),
        })
        .collect();
    let mut b = json!({"resourceType": "Bundle", "type": "transaction-response"});
    if !entries.is_empty() {
        b["entry"] = json!(entries);
    }
    fhir(StatusCode::OK, &b)
}
