//! The requester side of the token flow (spec: `specs/tokens.md` §6): an organisation hosted
//! here asks any conformant authorization server (a knoop node's, one organisation's own, or one
//! outside knoop) for an access token, with only the standards: RFC 8414 discovery, an RFC 7523
//! assertion (a presentation JWT of its credentials for that server's issuer), optionally an
//! RFC 7523 client assertion, and DPoP (RFC 9449) with the server's nonce when the server
//! supports it. The DPoP keys stay here; callers get a handle (`dpop_kid`) and ask for proofs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use knoop_vc::jws::SigningKey;
use rand::RngCore;
use serde_json::Value;

use crate::care::dpop::{self, DPOP, DPOP_NONCE};
use crate::care::tokens::{CLIENT_ASSERTION_TYPE, JWT_BEARER};
use crate::identity::did_ops::DidOps;

/// The DID service type naming a node's public API base URL.
pub const PUBLIC_API_SERVICE_TYPE: &str = "KnoopPublicApi";

/// The public API base URL a node publishes in its DID.
pub fn public_url(dids: &DidOps, node: &str) -> Option<String> {
    let (_, doc) = dids.state.current(node)?;
    doc.service
        .iter()
        .find(|s| s.type_ == PUBLIC_API_SERVICE_TYPE)
        .and_then(|s| s.service_endpoint.as_str())
        .map(|u| u.trim_end_matches('/').to_owned())
}

/// The issuer of the authorization server of the organisation `holder`, a did:knoop DID hosted
/// on some knoop node: `<its host's public base URL>/oauth2/<id>` (`specs/tokens.md` §1a').
pub fn issuer_of(dids: &DidOps, holder: &str) -> Option<String> {
    let id = holder.strip_prefix("did:knoop:")?;
    let (_, doc) = dids.state.current(holder)?;
    let host = doc
        .service
        .iter()
        .find(|s| s.type_ == knoop_did::knoop::services::HOST_SERVICE_TYPE)
        .and_then(|s| s.service_endpoint.as_str())
        .unwrap_or(holder);
    public_url(dids, host).map(|base| crate::care::tokens::tenant_issuer(&base, id))
}

/// Lifetime of the presentation JWTs sent (seconds).
const ASSERTION_TTL_S: u64 = 60;
/// How long server metadata is used before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// How long a DPoP key outlives its token's `expires_in` (clock skew, a last request).
const KEY_GRACE: Duration = Duration::from_secs(60);
/// Longest a DPoP key is kept, whatever the server says.
const MAX_KEY_LIFETIME: Duration = Duration::from_secs(3600);
/// Most DPoP keys held.
const MAX_KEYS: usize = 10_000;

/// Why no token was obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("the authorization server is unreachable: {0}")]
    Unreachable(String),
    #[error("over the server's request rate for this address; retry after {0} s")]
    RateLimited(String),
    #[error("the authorization server metadata: {0}")]
    Metadata(String),
    #[error("refused ({status}): {error}: {description}")]
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    #[error("presenting the credentials: {0}")]
    Present(String),
    #[error("unknown or expired DPoP key {0}")]
    UnknownKey(String),
}

/// A token to ask for.
#[derive(Clone, Debug)]
pub struct TokenAsk {
    /// The organisation (a DID hosted here) whose credentials are presented.
    pub requester: String,
    pub credentials: Vec<Value>,
    /// The authorization server's issuer identifier (RFC 8414), e.g. `https://node.example` or
    /// `https://node.example/oauth2/<id>`.
    pub issuer: String,
    pub scope: String,
    /// More form parameters (knoop's `patient`, `purpose`, `reason`).
    pub params: Vec<(String, String)>,
    /// A DID hosted here that authenticates as the client (RFC 7523 §2.2), if any.
    pub client: Option<String>,
    /// Ask for a bearer token even where the server takes DPoP (the Nuts node API's
    /// `token_type: Bearer`); by default the token is bound to a key when it can be.
    pub bearer: bool,
}

/// A token obtained.
#[derive(Clone, Debug)]
pub struct Obtained {
    pub access_token: String,
    /// `DPoP` or `Bearer`.
    pub token_type: String,
    /// The handle of the DPoP key the token is bound to (for [`Requester::dpop_proof`]).
    pub dpop_kid: Option<String>,
    /// The whole token response.
    pub response: Value,
}

/// Asks authorization servers for tokens; holds the DPoP keys.
pub struct Requester {
    dids: std::sync::Arc<DidOps>,
    http: reqwest::Client,
    /// The DPoP keys held, by handle: until when, the key, and the organisation it is for.
    keys: Mutex<HashMap<String, (Instant, SigningKey, String)>>,
    metadata: Mutex<HashMap<String, (Instant, Value)>>,
}

/// The RFC 8414 §3.1 metadata URL of `issuer`: the well-known segment between the host and the
/// issuer's path.
pub fn metadata_url(issuer: &str) -> Result<String, RequestError> {
    let u =
        url::Url::parse(issuer).map_err(|e| RequestError::Metadata(format!("{issuer}: {e}")))?;
    if u.query().is_some() || u.fragment().is_some() || !u.has_host() {
        return Err(RequestError::Metadata(format!(
            "{issuer} is not an issuer identifier (RFC 8414 §2)"
        )));
    }
    let path = u.path().trim_end_matches('/');
    let mut origin = u.clone();
    origin.set_path("");
    Ok(format!(
        "{}/.well-known/oauth-authorization-server{path}",
        origin.as_str().trim_end_matches('/')
    ))
}

fn header_text(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn rate_limited(resp: &reqwest::Response) -> Result<(), RequestError> {
    if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Ok(());
    }
    Err(RequestError::RateLimited(
        header_text(resp, reqwest::header::RETRY_AFTER.as_str()).unwrap_or_else(|| "?".into()),
    ))
}

fn unreachable(e: reqwest::Error) -> RequestError {
    RequestError::Unreachable(crate::https::error_chain(&e))
}

impl Requester {
    pub fn new(dids: std::sync::Arc<DidOps>, http: reqwest::Client) -> Self {
        Requester {
            dids,
            http,
            keys: Mutex::new(HashMap::new()),
            metadata: Mutex::new(HashMap::new()),
        }
    }

    /// The authorization server metadata of `issuer` (cached), checked as RFC 8414 §3.3 says:
    /// its `issuer` is the one asked for.
    pub async fn metadata(&self, issuer: &str) -> Result<Value, RequestError> {
        if let Ok(m) = self.metadata.lock() {
            if let Some((at, v)) = m.get(issuer) {
                if at.elapsed() < METADATA_TTL {
                    return Ok(v.clone());
                }
            }
        }
        let resp = self
            .http
            .get(metadata_url(issuer)?)
            .send()
            .await
            .map_err(unreachable)?;
        rate_limited(&resp)?;
        if !resp.status().is_success() {
            return Err(RequestError::Metadata(format!(
                "{issuer}: HTTP {}",
                resp.status()
            )));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| RequestError::Metadata(format!("{issuer}: {e}")))?;
        if v["issuer"].as_str() != Some(issuer) {
            return Err(RequestError::Metadata(format!(
                "the metadata names issuer {}, not {issuer}",
                v["issuer"]
            )));
        }
        if v["token_endpoint"].as_str().is_none() {
            return Err(RequestError::Metadata(format!(
                "{issuer}: no token_endpoint"
            )));
        }
        if let Ok(mut m) = self.metadata.lock() {
            m.retain(|_, (at, _)| at.elapsed() < METADATA_TTL);
            m.insert(issuer.to_owned(), (Instant::now(), v.clone()));
        }
        Ok(v)
    }

    /// Asks `ask.issuer` for a token (see the module comment).
    pub async fn token(&self, ask: &TokenAsk) -> Result<Obtained, RequestError> {
        let meta = self.metadata(&ask.issuer).await?;
        let present = |holder: &str, credentials: Vec<Value>| {
            crate::identity::issuing::present_jwt(
                &self.dids,
                holder,
                credentials,
                &ask.issuer,
                None,
                ASSERTION_TTL_S,
            )
            .map_err(|e| RequestError::Present(e.to_string()))
        };
        let mut form: Vec<(String, String)> = vec![
            ("grant_type".into(), JWT_BEARER.into()),
            (
                "assertion".into(),
                present(&ask.requester, ask.credentials.clone())?,
            ),
            ("scope".into(), ask.scope.clone()),
        ];
        if let Some(client) = &ask.client {
            form.push(("client_assertion_type".into(), CLIENT_ASSERTION_TYPE.into()));
            form.push(("client_assertion".into(), present(client, Vec::new())?));
        }
        form.extend(ask.params.iter().cloned());
        if ask.bearer {
            // No DPoP key offered: the server issues a bearer token (or refuses).
            let mut meta = meta;
            if let Some(m) = meta.as_object_mut() {
                m.remove("dpop_signing_alg_values_supported");
            }
            return self.exchange(&meta, form, &ask.requester).await;
        }
        self.exchange(&meta, form, &ask.requester).await
    }

    /// Sends the token request `form` to the token endpoint of the server whose metadata is
    /// `meta`, with DPoP when the server takes ES256 proofs (a fresh key per token, and the
    /// server's nonce when it asks for one). `owner` is the organisation the token is for (the
    /// only one whose callers get proofs with its DPoP key).
    pub async fn exchange(
        &self,
        meta: &Value,
        form: Vec<(String, String)>,
        owner: &str,
    ) -> Result<Obtained, RequestError> {
        let token_endpoint = meta["token_endpoint"]
            .as_str()
            .ok_or_else(|| RequestError::Metadata("no token_endpoint".into()))?
            .to_owned();
        // DPoP when the server takes ES256 proofs (RFC 9449 §5.1); a fresh key per token.
        let dpop_key = meta["dpop_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "ES256"))
            .then(SigningKey::generate_p256);
        let mut nonce: Option<String> = None;
        let mut attempts = 0;
        let (status, body) = loop {
            attempts += 1;
            let mut post = self.http.post(&token_endpoint).form(&form);
            if let Some(key) = &dpop_key {
                let proof = dpop::proof(
                    key,
                    "POST",
                    &token_endpoint,
                    None,
                    nonce.as_deref(),
                    dpop::now_s(),
                );
                post = post.header(DPOP, proof);
            }
            let resp = post.send().await.map_err(unreachable)?;
            rate_limited(&resp)?;
            let status = resp.status();
            let fresh = header_text(&resp, DPOP_NONCE);
            let body: Value = resp.json().await.map_err(unreachable)?;
            // RFC 9449 §8: retry once with the nonce the server names.
            if body["error"] == "use_dpop_nonce" && fresh.is_some() && attempts < 2 {
                nonce = fresh;
                continue;
            }
            break (status, body);
        };
        if !status.is_success() {
            return Err(RequestError::Refused {
                status: status.as_u16(),
                error: body["error"].as_str().unwrap_or("error").to_owned(),
                description: body["error_description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        let access_token = body["access_token"]
            .as_str()
            .ok_or_else(|| RequestError::Metadata("no access_token in the token response".into()))?
            .to_owned();
        let token_type = body["token_type"].as_str().unwrap_or("Bearer").to_owned();
        let dpop_kid = match dpop_key {
            Some(key) if token_type.eq_ignore_ascii_case("DPoP") => {
                let ttl = body["expires_in"]
                    .as_u64()
                    .map(Duration::from_secs)
                    .unwrap_or(MAX_KEY_LIFETIME)
                    .min(MAX_KEY_LIFETIME)
                    + KEY_GRACE;
                Some(self.hold(key, ttl, owner))
            }
            _ => None,
        };
        Ok(Obtained {
            access_token,
            token_type,
            dpop_kid,
            response: body,
        })
    }

    fn hold(&self, key: SigningKey, ttl: Duration, owner: &str) -> String {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let kid = hex::encode(id);
        if let Ok(mut keys) = self.keys.lock() {
            keys.retain(|_, (until, _, _)| *until > Instant::now());
            if keys.len() >= MAX_KEYS {
                // Full of live keys: the oldest token loses its key first.
                if let Some(oldest) = keys
                    .iter()
                    .min_by_key(|(_, (until, _, _))| *until)
                    .map(|(k, _)| k.clone())
                {
                    keys.remove(&oldest);
                }
            }
            keys.insert(kid.clone(), (Instant::now() + ttl, key, owner.to_owned()));
        }
        kid
    }

    /// The organisation the live DPoP key `kid` was made for.
    pub fn dpop_owner(&self, kid: &str) -> Option<String> {
        let keys = self.keys.lock().ok()?;
        keys.get(kid)
            .filter(|(until, _, _)| *until > Instant::now())
            .map(|(_, _, owner)| owner.clone())
    }

    /// A DPoP proof with the key `kid` for `method` on `url`, with the token's hash.
    pub fn dpop_proof(
        &self,
        kid: &str,
        method: &str,
        url: &str,
        access_token: &str,
    ) -> Result<String, RequestError> {
        let keys = self
            .keys
            .lock()
            .map_err(|_| RequestError::UnknownKey(kid.to_owned()))?;
        let key = keys
            .get(kid)
            .filter(|(until, _, _)| *until > Instant::now())
            .map(|(_, key, _)| key)
            .ok_or_else(|| RequestError::UnknownKey(kid.to_owned()))?;
        Ok(dpop::proof(
            key,
            method,
            url,
            Some(access_token),
            None,
            dpop::now_s(),
        ))
    }

    /// `GET url` with the token: `Authorization: DPoP` and a proof for a bound token, else
    /// `Bearer`.
    pub fn get(
        &self,
        token: &Obtained,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        self.with_token(reqwest::Method::GET, token, url)
    }

    /// `method url` with the token, as [`Requester::get`].
    pub fn with_token(
        &self,
        method: reqwest::Method,
        token: &Obtained,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let req = self.http.request(method.clone(), url);
        Ok(match &token.dpop_kid {
            Some(kid) => req
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("DPoP {}", token.access_token),
                )
                .header(
                    DPOP,
                    self.dpop_proof(kid, method.as_str(), url, &token.access_token)?,
                ),
            None => req.bearer_auth(&token.access_token),
        })
    }

    /// The HTTPS client (the node's roots and `public.ca_file`, bounded time).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_insert_the_well_known_segment() {
        for (issuer, want) in [
            (
                "https://node.example",
                "https://node.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://node.example/",
                "https://node.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://node.example:8443/oauth2/abc",
                "https://node.example:8443/.well-known/oauth-authorization-server/oauth2/abc",
            ),
        ] {
            assert_eq!(metadata_url(issuer).unwrap(), want, "{issuer}");
        }
        for bad in [
            "not a url",
            "https://node.example/?x=1",
            "https://node.example/#f",
        ] {
            assert!(metadata_url(bad).is_err(), "{bad}");
        }
    }
}
