//! Credential issuance over OpenID4VCI 1.0 (spec: `specs/oid4vci.md`): `POST
//! /v1/credential-offers` makes an offer as an organisation hosted here (the issuer side,
//! [`crate::identity::credential_offers`]); `/v1/wallet/...` receives offered credentials into a
//! hosted organisation's wallet, adds credentials handed over otherwise, lists and removes them
//! ([`crate::care::wallet`]).

use crate::api::rpc::caller::Caller;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::rpc::error::ApiError;
use crate::api::rpc::localisation::body;
use crate::api::rpc::state::RpcState;
use crate::care::wallet::WalletError;
use crate::identity::credential_offers::{Format, OfferError, OfferRequest, DEFAULT_OFFER_TTL_S};

type St = State<Arc<RpcState>>;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route("/v1/credential-offers", post(offer))
        .route("/v1/wallet/offers", post(accept))
        .route(
            "/v1/wallet/credentials",
            axum::routing::get(list).post(add).delete(remove),
        )
}

impl From<OfferError> for ApiError {
    fn from(e: OfferError) -> Self {
        match e {
            OfferError::Issue(i) => i.into(),
            OfferError::NoPublicUrl => {
                ApiError::new(StatusCode::CONFLICT, "not_configured", e.to_string())
            }
            OfferError::Store(_) | OfferError::Lock => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string())
            }
            e => ApiError::bad(e.to_string()),
        }
    }
}

impl From<WalletError> for ApiError {
    fn from(e: WalletError) -> Self {
        let (status, code) = match &e {
            WalletError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            WalletError::Issuer(_) => (StatusCode::BAD_GATEWAY, "upstream"),
            WalletError::Refused { .. } => (StatusCode::FORBIDDEN, "refused"),
            WalletError::NotGenuine(_) => (StatusCode::BAD_REQUEST, "invalid_credential"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct OfferReq {
    /// The issuing organisation (hosted here).
    issuer: String,
    #[serde(rename = "type")]
    type_: String,
    /// The subject's claims; with `id`, only that DID may receive the credential.
    subject: Value,
    #[serde(default, rename = "validUntil")]
    valid_until: Option<String>,
    /// `jwt_vc_json` (default) or `ldp_vc`.
    #[serde(default)]
    format: Option<String>,
    /// Guard the offer with a transaction code (default true).
    #[serde(default)]
    tx_code: Option<bool>,
    /// Seconds the offer can be redeemed (default a day).
    #[serde(default)]
    expires_in: Option<u64>,
}

async fn offer(
    State(st): St,
    caller: Caller,
    b: Result<Json<OfferReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.issuer)?;
    let format = match req.format.as_deref() {
        None | Some("jwt_vc_json") => Format::JwtVcJson,
        Some("ldp_vc") => Format::LdpVc,
        Some(f) => return Err(ApiError::bad(format!("format {f}: jwt_vc_json or ldp_vc"))),
    };
    let made = st.credential_offers.offer(OfferRequest {
        issuer: req.issuer,
        type_: req.type_,
        format,
        claims: req.subject,
        valid_until: req.valid_until,
        tx_code: req.tx_code.unwrap_or(true),
        ttl_s: req.expires_in.unwrap_or(DEFAULT_OFFER_TTL_S),
    })?;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "credential_offer": made.offer,
            "credential_offer_uri": made.offer_uri,
            "offer_url": format!("openid-credential-offer://?credential_offer={}",
                                 encode(&made.offer.to_string())),
            "offer_uri_url": format!("openid-credential-offer://?credential_offer_uri={}",
                                     encode(&made.offer_uri)),
            "tx_code": made.tx_code,
            "expires_in": made.expires_in,
        })),
    ))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct AcceptReq {
    /// The receiving organisation (hosted here).
    holder: String,
    /// The offer: its URL (`openid-credential-offer://…`) or the offer object.
    offer: Value,
    #[serde(default)]
    tx_code: Option<String>,
    #[serde(default)]
    credential_configuration_id: Option<String>,
}

async fn accept(
    State(st): St,
    caller: Caller,
    b: Result<Json<AcceptReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.holder)?;
    let held = st
        .wallet
        .accept_offer(
            &req.holder,
            &req.offer,
            req.tx_code,
            req.credential_configuration_id,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(held))))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct AddReq {
    holder: String,
    credential: Value,
}

async fn add(
    State(st): St,
    caller: Caller,
    b: Result<Json<AddReq>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(b)?;
    caller.act_as(&st, &req.holder)?;
    let held = st
        .wallet
        .add(&req.holder, req.credential, "handed over")
        .await?;
    Ok((StatusCode::CREATED, Json(json!(held))))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct HolderQuery {
    holder: String,
    #[serde(default)]
    id: Option<String>,
}

fn query(q: Result<Query<HolderQuery>, QueryRejection>) -> Result<HolderQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad(e.body_text()))
}

async fn list(
    State(st): St,
    caller: Caller,
    q: Result<Query<HolderQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    caller.act_as(&st, &q.holder)?;
    let held = st.wallet.list(&q.holder)?;
    Ok(Json(json!({"holder": q.holder, "credentials": held})))
}

async fn remove(
    State(st): St,
    caller: Caller,
    q: Result<Query<HolderQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let q = query(q)?;
    caller.act_as(&st, &q.holder)?;
    let id = q.id.ok_or_else(|| ApiError::bad("id is required"))?;
    if st.wallet.remove(&q.holder, &id)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} holds no credential {id}", q.holder),
        ))
    }
}
