//! The wallet of the organisations hosted here (spec: `specs/oid4vci.md` §6): the credentials
//! they hold, received from any OpenID4VCI 1.0 credential issuer (knoop or not) through a
//! credential offer with a pre-authorized code, or handed over by other means; each checked as
//! genuine and about its holder before it is kept, and presented when the organisation asks for
//! a token without naming credentials.
//!
//! Kept in the store's `private` family (fsynced) under `w/<holder DID>\0<credential id>`.

use std::sync::Arc;

use knoop_did::document::Relationship;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::care::requester::{Obtained, RequestError, Requester};
use crate::identity::credential_offers::{PRE_AUTHORIZED_CODE, PROOF_JWT_TYPE};
use crate::identity::credentials::Credentials;
use crate::identity::did_ops::DidOps;
use crate::identity::prefetch::Prefetcher;
use crate::store::NodeStore;

/// Most credentials one organisation holds.
pub const MAX_HELD: usize = 1000;
/// Largest credential offer, metadata document or credential response read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// The credential formats the wallet takes (OpenID4VCI 1.0 Appendix A).
const FORMATS: [&str; 3] = ["jwt_vc_json", "ldp_vc", "jwt_vc_json-ld"];

/// Why the wallet could not take a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The request itself is wrong (the offer, the holder, the transaction code).
    #[error("{0}")]
    BadRequest(String),
    /// The issuer could not be reached or answered outside the protocol.
    #[error("the credential issuer: {0}")]
    Issuer(String),
    /// The issuer (or its authorization server) refused, with its error code.
    #[error("refused by the issuer ({status}): {error}: {description}")]
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    /// What the issuer sent is not a genuine credential for the holder.
    #[error("the credential received is not acceptable: {0}")]
    NotGenuine(String),
    #[error("wallet store: {0}")]
    Store(#[from] knoop_gossip::StoreError),
}

impl From<RequestError> for WalletError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Refused {
                status,
                error,
                description,
            } => WalletError::Refused {
                status,
                error,
                description,
            },
            e => WalletError::Issuer(e.to_string()),
        }
    }
}

/// A credential held, as listed.
#[derive(Clone, Debug, Serialize)]
pub struct Held {
    pub id: String,
    pub issuer: String,
    pub types: Vec<String>,
    #[serde(rename = "validUntil", skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// How it arrived: the credential issuer's URL, or `handed over`.
    pub via: String,
    pub received_ms: u64,
    pub credential: Value,
}

#[derive(Serialize, Deserialize)]
struct Record {
    credential: Value,
    via: String,
    received_ms: u64,
}

/// The wallet.
pub struct Wallet {
    dids: Arc<DidOps>,
    credentials: Arc<Credentials>,
    prefetch: Arc<Prefetcher>,
    requester: Arc<Requester>,
    store: Arc<dyn NodeStore>,
}

fn key(holder: &str, id: &str) -> Vec<u8> {
    [b"w/", holder.as_bytes(), b"\0", id.as_bytes()].concat()
}

fn prefix(holder: &str) -> Vec<u8> {
    [b"w/", holder.as_bytes(), b"\0"].concat()
}

/// The Credential Offer (OpenID4VCI 1.0 §4.1) in `offer`: a JSON object, or a URL (the
/// `openid-credential-offer://` scheme, or any other) whose query has `credential_offer` (the
/// offer by value) or `credential_offer_uri` (by reference: `Err(Ok(uri))`).
pub fn parse_offer(offer: &Value) -> Result<Result<Value, String>, WalletError> {
    let bad = |m: &str| WalletError::BadRequest(format!("offer: {m}"));
    let text = match offer {
        Value::Object(_) => return Ok(Ok(offer.clone())),
        Value::String(s) => s,
        _ => return Err(bad("give the offer URL or the offer object")),
    };
    let url = url::Url::parse(text).map_err(|_| bad("not a URL"))?;
    let mut by_value = None;
    let mut by_ref = None;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "credential_offer" => by_value = Some(v.into_owned()),
            "credential_offer_uri" => by_ref = Some(v.into_owned()),
            _ => {}
        }
    }
    match (by_value, by_ref) {
        (Some(v), None) => serde_json::from_str::<Value>(&v)
            .ok()
            .filter(Value::is_object)
            .map(Ok)
            .ok_or_else(|| bad("credential_offer is not a JSON object")),
        (None, Some(u)) => {
            if !u.starts_with("https://") {
                return Err(bad("credential_offer_uri must be an https URL"));
            }
            Ok(Err(u))
        }
        _ => Err(bad(
            "the URL must carry exactly one of credential_offer and credential_offer_uri",
        )),
    }
}

/// The pre-authorized code grant of an offer: the issuer, the configuration ids, the code, whether
/// a transaction code is needed, and the authorization server it names.
#[derive(Debug, PartialEq)]
pub struct PreAuthorized {
    pub issuer: String,
    pub configurations: Vec<String>,
    pub code: String,
    pub tx_code: bool,
    pub authorization_server: Option<String>,
}

/// Reads the parts of `offer` a wallet needs (§4.1.1).
pub fn pre_authorized(offer: &Value) -> Result<PreAuthorized, WalletError> {
    let bad = |m: &str| WalletError::BadRequest(format!("offer: {m}"));
    let issuer = offer["credential_issuer"]
        .as_str()
        .filter(|i| i.starts_with("https://"))
        .ok_or_else(|| bad("credential_issuer must be an https URL"))?
        .trim_end_matches('/')
        .to_owned();
    let configurations: Vec<String> = offer["credential_configuration_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if configurations.is_empty() {
        return Err(bad("credential_configuration_ids is empty"));
    }
    let grant = &offer["grants"][PRE_AUTHORIZED_CODE];
    let code = grant["pre-authorized_code"]
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            bad("no pre-authorized code grant (only the pre-authorized code flow is supported)")
        })?
        .to_owned();
    Ok(PreAuthorized {
        issuer,
        configurations,
        code,
        tx_code: grant.get("tx_code").is_some_and(Value::is_object),
        authorization_server: grant["authorization_server"].as_str().map(str::to_owned),
    })
}

/// The metadata URLs of a credential issuer: the well-known segment after the host (§12.2.2),
/// then appended to the identifier (what older issuers serve).
pub fn issuer_metadata_urls(issuer: &str) -> Result<Vec<String>, WalletError> {
    let u = url::Url::parse(issuer)
        .map_err(|_| WalletError::BadRequest(format!("{issuer} is not a URL")))?;
    let path = u.path().trim_end_matches('/');
    let mut origin = u.clone();
    origin.set_path("");
    origin.set_query(None);
    let origin = origin.as_str().trim_end_matches('/').to_owned();
    let mut urls = vec![format!(
        "{origin}/.well-known/openid-credential-issuer{path}"
    )];
    if !path.is_empty() {
        urls.push(format!("{issuer}/.well-known/openid-credential-issuer"));
    }
    Ok(urls)
}

async fn json_of(resp: reqwest::Response) -> Result<(u16, Value), WalletError> {
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| WalletError::Issuer(crate::https::error_chain(&e)))?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(WalletError::Issuer(format!(
            "an answer larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    let v = serde_json::from_slice(&bytes)
        .map_err(|_| WalletError::Issuer(format!("HTTP {status}: not JSON")))?;
    Ok((status, v))
}

fn refused(status: u16, body: &Value) -> WalletError {
    WalletError::Refused {
        status,
        error: body["error"].as_str().unwrap_or("error").to_owned(),
        description: body["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

impl Wallet {
    pub fn new(
        dids: Arc<DidOps>,
        credentials: Arc<Credentials>,
        prefetch: Arc<Prefetcher>,
        requester: Arc<Requester>,
        store: Arc<dyn NodeStore>,
    ) -> Self {
        Wallet {
            dids,
            credentials,
            prefetch,
            requester,
            store,
        }
    }

    fn hosted(&self, holder: &str) -> Result<(), WalletError> {
        let hosted = self
            .dids
            .hosted()
            .map_err(|e| WalletError::BadRequest(e.to_string()))?;
        if hosted.iter().any(|d| d == holder) {
            Ok(())
        } else {
            Err(WalletError::BadRequest(format!(
                "{holder} is not hosted here"
            )))
        }
    }

    /// The credentials `holder` holds.
    pub fn list(&self, holder: &str) -> Result<Vec<Held>, WalletError> {
        let mut out = Vec::new();
        for (k, v) in self.store.scan_private(&prefix(holder))? {
            let Ok(r) = serde_json::from_slice::<Record>(&v) else {
                tracing::warn!(key = %String::from_utf8_lossy(&k), "unreadable wallet record");
                continue;
            };
            let id = String::from_utf8_lossy(&k[prefix(holder).len()..]).into_owned();
            let c = knoop_vc::jose::unverified_credential(&r.credential).into_owned();
            let issuer = match &c["issuer"] {
                Value::String(s) => s.clone(),
                o => o["id"].as_str().unwrap_or_default().to_owned(),
            };
            let types = c["type"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let valid_until = c["validUntil"]
                .as_str()
                .or_else(|| c["expirationDate"].as_str())
                .map(str::to_owned);
            out.push(Held {
                id,
                issuer,
                types,
                valid_until,
                via: r.via,
                received_ms: r.received_ms,
                credential: r.credential,
            });
        }
        Ok(out)
    }

    /// The credentials `holder` presents when it names none: those that verify now (signature,
    /// validity period, revocation), trusted or not (trust is the verifier's).
    pub async fn presentable(&self, holder: &str) -> Result<Vec<Value>, WalletError> {
        let held = self.list(holder)?;
        let all: Vec<&Value> = held.iter().map(|h| &h.credential).collect();
        let fetched = self.prefetch.fetch(&all).await;
        Ok(held
            .into_iter()
            .filter(|h| {
                self.credentials
                    .verify_genuine(&h.credential, &fetched)
                    .is_ok()
            })
            .map(|h| h.credential)
            .collect())
    }

    /// The credentials a request of `holder` presents: `given`, and its presentable wallet
    /// credentials when `wallet` says so (by default when nothing is given).
    pub async fn with_given(
        &self,
        holder: &str,
        given: Option<Vec<Value>>,
        wallet: Option<bool>,
    ) -> Result<Vec<Value>, WalletError> {
        let from_wallet = wallet.unwrap_or(given.is_none());
        let mut all = given.unwrap_or_default();
        if from_wallet {
            all.extend(self.presentable(holder).await?);
        }
        Ok(all)
    }

    /// Removes the credential `id` of `holder`; whether it was there.
    pub fn remove(&self, holder: &str, id: &str) -> Result<bool, WalletError> {
        let k = key(holder, id);
        let there = self.store.get_private(&k)?.is_some();
        self.store.delete_private(&[k])?;
        Ok(there)
    }

    /// Keeps `credential` for `holder` once it verifies (signature, validity, revocation; not
    /// trust) and its subject is `holder`.
    pub async fn add(
        &self,
        holder: &str,
        credential: Value,
        via: &str,
    ) -> Result<Held, WalletError> {
        self.hosted(holder)?;
        let fetched = self.prefetch.fetch(&[&credential]).await;
        let verified = self
            .credentials
            .verify_genuine(&credential, &fetched)
            .map_err(|f| WalletError::NotGenuine(f.to_string()))?;
        let subject = verified.claims.subject();
        if subject != holder && self.dids.web_alias(holder).as_deref() != Some(subject) {
            return Err(WalletError::NotGenuine(format!(
                "its subject is {subject}, not {holder} (or its did:web id)"
            )));
        }
        let id = verified.id.clone().unwrap_or_else(|| {
            let bytes = serde_json::to_vec(&credential).unwrap_or_default();
            format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
        });
        if id.contains('\0') || id.len() > 512 {
            return Err(WalletError::NotGenuine("an unusable credential id".into()));
        }
        let count = self.store.scan_private(&prefix(holder))?.len();
        if count >= MAX_HELD && self.store.get_private(&key(holder, &id))?.is_none() {
            return Err(WalletError::BadRequest(format!(
                "{holder} holds {MAX_HELD} credentials already; remove some first"
            )));
        }
        let record = Record {
            credential,
            via: via.to_owned(),
            received_ms: knoop_gossip::tx::now_ms(),
        };
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        self.store.put_private(&key(holder, &id), &bytes)?;
        let held = self
            .list(holder)?
            .into_iter()
            .find(|h| h.id == id)
            .ok_or_else(|| WalletError::NotGenuine("not kept".into()))?;
        tracing::info!(%holder, credential = %id, %via, "credential received into the wallet");
        Ok(held)
    }

    /// Receives the credential `offer` makes to `holder` (OpenID4VCI 1.0, pre-authorized code
    /// flow): the offer (fetched when by reference), the issuer's metadata, a token for the code
    /// (and `tx_code`), a `c_nonce`, a key proof of `holder`'s DID, the credential; kept once it
    /// verifies. `configuration` picks one of the offer's configurations (default: the first the
    /// wallet can take).
    pub async fn accept_offer(
        &self,
        holder: &str,
        offer: &Value,
        tx_code: Option<String>,
        configuration: Option<String>,
    ) -> Result<Held, WalletError> {
        self.hosted(holder)?;
        let offer = match parse_offer(offer)? {
            Ok(o) => o,
            Err(uri) => match self.get_json(&uri).await? {
                (200, v) if v.is_object() => v,
                (s, _) => {
                    return Err(WalletError::Issuer(format!(
                        "the offer at {uri}: HTTP {s} (used or expired?)"
                    )))
                }
            },
        };
        let grant = pre_authorized(&offer)?;
        if grant.tx_code && tx_code.is_none() {
            return Err(WalletError::BadRequest(
                "this offer needs the transaction code the issuer sent separately (tx_code)".into(),
            ));
        }
        let metadata = self.issuer_metadata(&grant.issuer).await?;
        let supported = &metadata["credential_configurations_supported"];
        let config = match configuration {
            Some(c) if grant.configurations.contains(&c) => c,
            Some(c) => {
                return Err(WalletError::BadRequest(format!(
                    "the offer does not offer {c}"
                )))
            }
            None => grant
                .configurations
                .iter()
                .find(|c| {
                    supported[c.as_str()]["format"]
                        .as_str()
                        .is_some_and(|f| FORMATS.contains(&f))
                })
                .cloned()
                .ok_or_else(|| {
                    WalletError::BadRequest(format!(
                        "none of the offered configurations has a format this wallet takes ({})",
                        FORMATS.join(", ")
                    ))
                })?,
        };
        let proof_algs = &supported[config.as_str()]["proof_types_supported"]["jwt"]
            ["proof_signing_alg_values_supported"];
        let subject = self.binding(
            holder,
            &supported[config.as_str()]["cryptographic_binding_methods_supported"],
        )?;
        let credential_endpoint = metadata["credential_endpoint"]
            .as_str()
            .ok_or_else(|| WalletError::Issuer("no credential_endpoint in the metadata".into()))?
            .to_owned();

        // The token (§6).
        let server = grant
            .authorization_server
            .clone()
            .or_else(|| {
                metadata["authorization_servers"][0]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| grant.issuer.clone());
        let as_meta = self.requester.metadata(&server).await?;
        let mut form = vec![
            ("grant_type".to_owned(), PRE_AUTHORIZED_CODE.to_owned()),
            ("pre-authorized_code".to_owned(), grant.code.clone()),
        ];
        if let Some(tx) = tx_code {
            form.push(("tx_code".into(), tx));
        }
        let token = self.requester.exchange(&as_meta, form, holder).await?;
        let identifier = token.response["authorization_details"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["credential_configuration_id"] == config.as_str())
            .and_then(|d| d["credential_identifiers"][0].as_str())
            .map(str::to_owned);

        // The credential (§8), with a fresh nonce; once more when the issuer asks for another.
        let mut nonce = match metadata["nonce_endpoint"].as_str() {
            Some(url) => Some(self.c_nonce(url).await?),
            // Draft issuers gave the nonce with the token.
            None => token.response["c_nonce"].as_str().map(str::to_owned),
        };
        let mut attempt = 0;
        let credential = loop {
            attempt += 1;
            let proof = self.proof(
                holder,
                &subject,
                &grant.issuer,
                nonce.as_deref(),
                proof_algs,
            )?;
            let mut body = json!({"proofs": {"jwt": [proof]}});
            match &identifier {
                Some(i) => body["credential_identifier"] = json!(i),
                None => body["credential_configuration_id"] = json!(config),
            }
            let (status, answer) = self
                .post_credential_request(&token, &credential_endpoint, &body)
                .await?;
            if status == 200 {
                break answer;
            }
            if answer["error"] == "invalid_nonce" && attempt < 2 {
                nonce = match metadata["nonce_endpoint"].as_str() {
                    Some(url) => Some(self.c_nonce(url).await?),
                    None => answer["c_nonce"].as_str().map(str::to_owned),
                };
                continue;
            }
            if status == 202 {
                return Err(WalletError::Issuer(
                    "the issuer defers issuance (transaction_id); deferred issuance is not supported"
                        .into(),
                ));
            }
            return Err(refused(status, &answer));
        };
        // Draft 13-14 issuers answered with one `credential`.
        let issued = match &credential["credentials"][0]["credential"] {
            Value::Null => credential["credential"].clone(),
            v => v.clone(),
        };
        if !(issued.is_string() || issued.is_object()) {
            return Err(WalletError::Issuer(
                "the credential response has no credential".into(),
            ));
        }
        self.add(holder, issued, &grant.issuer).await
    }

    /// `GET url` for JSON.
    async fn get_json(&self, url: &str) -> Result<(u16, Value), WalletError> {
        let resp = self
            .requester
            .http()
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| WalletError::Issuer(crate::https::error_chain(&e)))?;
        json_of(resp).await
    }

    async fn issuer_metadata(&self, issuer: &str) -> Result<Value, WalletError> {
        let mut last = String::new();
        for url in issuer_metadata_urls(issuer)? {
            match self.get_json(&url).await {
                Ok((200, v)) => {
                    // §12.2.3: the metadata is the issuer's own.
                    let named = v["credential_issuer"]
                        .as_str()
                        .map(|i| i.trim_end_matches('/'));
                    if named != Some(issuer) {
                        return Err(WalletError::Issuer(format!(
                            "the metadata at {url} names issuer {}, not {issuer}",
                            v["credential_issuer"]
                        )));
                    }
                    return Ok(v);
                }
                Ok((s, _)) => last = format!("{url}: HTTP {s}"),
                Err(e) => last = e.to_string(),
            }
        }
        Err(WalletError::Issuer(format!("no issuer metadata: {last}")))
    }

    async fn c_nonce(&self, url: &str) -> Result<String, WalletError> {
        let resp = self
            .requester
            .http()
            .post(url)
            .send()
            .await
            .map_err(|e| WalletError::Issuer(crate::https::error_chain(&e)))?;
        match json_of(resp).await? {
            (200, v) => v["c_nonce"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| WalletError::Issuer("the nonce endpoint gave no c_nonce".into())),
            (s, v) => Err(refused(s, &v)),
        }
    }

    async fn post_credential_request(
        &self,
        token: &Obtained,
        url: &str,
        body: &Value,
    ) -> Result<(u16, Value), WalletError> {
        let resp = self
            .requester
            .with_token(reqwest::Method::POST, token, url)?
            .json(body)
            .send()
            .await
            .map_err(|e| WalletError::Issuer(crate::https::error_chain(&e)))?;
        json_of(resp).await
    }

    /// The DID the credential is bound to (§12.2.4 `cryptographic_binding_methods_supported`):
    /// `holder` itself where the issuer takes did:knoop (or names no methods), else its did:web
    /// id where the issuer takes did:web (an issuer outside knoop resolves that one).
    fn binding(&self, holder: &str, methods: &Value) -> Result<String, WalletError> {
        let Some(methods) = methods.as_array() else {
            return Ok(holder.to_owned());
        };
        let takes = |m: &str| methods.iter().any(|x| x == m);
        if takes("did:knoop") {
            return Ok(holder.to_owned());
        }
        if takes("did:web") {
            if let Some(web) = self.dids.web_alias(holder) {
                return Ok(web);
            }
        }
        Err(WalletError::BadRequest(format!(
            "the issuer binds credentials to {}; this wallet binds to did:knoop, or did:web \
             when the node's public URL has a host name",
            Value::Array(methods.clone())
        )))
    }

    /// A key proof JWT (Appendix F.1) of `holder`, as its DID `subject` (itself or its did:web
    /// id), for `issuer`: its ES256 key (else Ed25519), if the issuer takes that algorithm.
    fn proof(
        &self,
        holder: &str,
        subject: &str,
        issuer: &str,
        nonce: Option<&str>,
        algs: &Value,
    ) -> Result<String, WalletError> {
        let now = (knoop_gossip::tx::now_ms() / 1000) as i64;
        let mut claims = json!({"aud": issuer, "iat": now});
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        let payload = claims.to_string();
        self.dids
            .with_jose_key(holder, Relationship::Authentication, |vm, key| {
                let alg = key.alg().name();
                let takes = algs.as_array().is_none_or(|a| a.iter().any(|x| x == alg));
                if !takes {
                    return Err(WalletError::BadRequest(format!(
                        "the issuer takes key proofs signed with {algs}, not {alg}"
                    )));
                }
                // The same key under the did:web id: its documents mirror the fragments.
                let fragment = vm.split_once('#').map(|(_, f)| f).unwrap_or_default();
                let mut header = Map::new();
                header.insert("typ".into(), json!(PROOF_JWT_TYPE));
                header.insert("kid".into(), json!(format!("{subject}#{fragment}")));
                Ok(key.sign_compact(header, payload.as_bytes()))
            })
            .map_err(|e| WalletError::BadRequest(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_come_by_value_by_reference_or_as_objects() {
        let offer = json!({"credential_issuer": "https://i.example/oid4vci/a",
            "credential_configuration_ids": ["CareOrganizationCredential_jwt_vc_json"],
            "grants": {PRE_AUTHORIZED_CODE: {"pre-authorized_code": "c0de",
                                             "tx_code": {"length": 6}}}});
        let by_value = format!(
            "openid-credential-offer://?credential_offer={}",
            url::form_urlencoded::byte_serialize(offer.to_string().as_bytes()).collect::<String>()
        );
        assert_eq!(parse_offer(&json!(by_value)).unwrap(), Ok(offer.clone()));
        assert_eq!(parse_offer(&offer).unwrap(), Ok(offer.clone()));
        let by_ref =
            "openid-credential-offer://?credential_offer_uri=https%3A%2F%2Fi.example%2Fo%2F1";
        assert_eq!(
            parse_offer(&json!(by_ref)).unwrap(),
            Err("https://i.example/o/1".to_owned())
        );
        for bad in [
            json!("openid-credential-offer://?credential_offer_uri=http%3A%2F%2Fi.example%2Fo"),
            json!("openid-credential-offer://?credential_offer=%5B%5D"),
            json!("openid-credential-offer://"),
            json!("not a url"),
            json!(7),
        ] {
            assert!(parse_offer(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            pre_authorized(&offer).unwrap(),
            PreAuthorized {
                issuer: "https://i.example/oid4vci/a".into(),
                configurations: vec!["CareOrganizationCredential_jwt_vc_json".into()],
                code: "c0de".into(),
                tx_code: true,
                authorization_server: None,
            }
        );
        let mut no_grant = offer.clone();
        no_grant["grants"] = json!({"authorization_code": {"issuer_state": "x"}});
        assert!(pre_authorized(&no_grant).is_err());
        let mut http = offer.clone();
        http["credential_issuer"] = json!("http://i.example");
        assert!(pre_authorized(&http).is_err());
    }

    #[test]
    fn the_vector_offer_reads_by_value() {
        let v: Value =
            serde_json::from_str(include_str!("../../../specs/vectors/oid4vci.json")).unwrap();
        let parsed = parse_offer(&v["credential_offer_url"]).unwrap().unwrap();
        assert_eq!(parsed, v["credential_offer"]);
        let grant = pre_authorized(&parsed).unwrap();
        assert!(grant.tx_code);
        assert_eq!(grant.code, "oaKazRN8I0IbtZ0C7JuMn5");
    }

    #[test]
    fn issuer_metadata_is_looked_for_after_the_host_then_after_the_path() {
        assert_eq!(
            issuer_metadata_urls("https://i.example/oid4vci/a").unwrap(),
            vec![
                "https://i.example/.well-known/openid-credential-issuer/oid4vci/a".to_owned(),
                "https://i.example/oid4vci/a/.well-known/openid-credential-issuer".to_owned(),
            ]
        );
        assert_eq!(
            issuer_metadata_urls("https://i.example").unwrap(),
            vec!["https://i.example/.well-known/openid-credential-issuer".to_owned()]
        );
    }
}
