//! The patient service as an OpenID Connect relying party (spec: `specs/patient-view.md` §2):
//! discovery, the authorization request with PKCE, the code exchange and the ID token's
//! checks (OpenID Connect Core 1.0 §3.1.3.7). The checks themselves are [`verify_id_token`],
//! without IO.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use knoop_vc::jws::{Compact, PublicJwk};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Clock skew allowed either way on `exp` and `iat` (seconds).
const SKEW_S: i64 = 60;
/// Least time between two fetches of the provider's keys.
const JWKS_REFETCH: Duration = Duration::from_secs(60);

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("the identity provider's answer is not usable: {0}")]
    BadProvider(String),
    #[error("the identity provider refused: {0}")]
    Refused(String),
    #[error("the ID token is refused: {0}")]
    BadToken(String),
}

/// The provider's endpoints (OpenID Connect Discovery 1.0 §3).
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// One key of the provider's JWK Set.
#[derive(Clone, Debug)]
pub struct ProviderKey {
    pub kid: Option<String>,
    pub key: PublicJwk,
}

/// What a verified ID token says about the patient.
pub struct IdClaims {
    /// The BSN: only in memory, only until the keys are derived.
    pub bsn: Zeroizing<String>,
    pub acr: Option<String>,
    pub auth_time: Option<i64>,
    pub exp: i64,
}

/// The signing keys of a JWK Set (RFC 7517 §5); keys for encryption or of unknown types are
/// left out.
pub fn parse_jwks(v: &Value) -> Vec<ProviderKey> {
    v["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter(|k| k["use"].as_str().is_none_or(|u| u == "sig"))
                .filter_map(|k| {
                    Some(ProviderKey {
                        kid: k["kid"].as_str().map(str::to_owned),
                        key: PublicJwk::from_json(k).ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks an ID token (OpenID Connect Core 1.0 §3.1.3.7) against the provider's `keys`:
/// signature, `iss`, `aud`/`azp`, `exp`, `iat`, `nonce`, and the BSN in claim `bsn_claim`.
pub fn verify_id_token(
    token: &str,
    keys: &[ProviderKey],
    expect: &Expected<'_>,
    now_s: i64,
) -> Result<IdClaims, OidcError> {
    let bad = |s: &str| OidcError::BadToken(s.to_owned());
    let c = Compact::parse(token).map_err(|e| OidcError::BadToken(e.to_string()))?;
    let kid = c.header_str("kid");
    let candidates: Vec<&ProviderKey> = keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .collect();
    if candidates.is_empty() {
        return Err(bad("signed with a key the provider does not publish"));
    }
    if !candidates.iter().any(|k| c.verify(&k.key).is_ok()) {
        return Err(bad("the signature does not verify"));
    }
    let claims: Map<String, Value> = c.claims().map_err(|e| OidcError::BadToken(e.to_string()))?;
    let str_of = |n: &str| claims.get(n).and_then(Value::as_str);
    if str_of("iss") != Some(expect.issuer) {
        return Err(bad("iss is not the configured provider"));
    }
    let aud: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !aud.contains(&expect.client_id) {
        return Err(bad("aud does not name this client"));
    }
    if aud.len() > 1 && str_of("azp") != Some(expect.client_id) {
        return Err(bad("azp does not name this client"));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no exp"))?;
    if now_s > exp + SKEW_S {
        return Err(bad("expired"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no iat"))?;
    if iat > now_s + SKEW_S {
        return Err(bad("issued in the future"));
    }
    if str_of("nonce") != Some(expect.nonce) {
        return Err(bad("nonce does not match the login"));
    }
    let bsn = match claims.get(expect.bsn_claim) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad("the ID token carries no BSN")),
    };
    let bsn = Zeroizing::new(bsn);
    knoop_privacy::patient::PatientId::bsn(&bsn)
        .map_err(|_| bad("the BSN claim is not a valid BSN"))?;
    Ok(IdClaims {
        bsn,
        acr: str_of("acr").map(str::to_owned),
        auth_time: claims.get("auth_time").and_then(Value::as_i64),
        exp,
    })
}

/// A login's secrets, kept by the service between the two legs.
pub struct LoginSecrets<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    pub verifier: &'a str,
    pub lang: &'a str,
}

/// What an ID token must say.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub bsn_claim: &'a str,
}

/// The PKCE challenge of a verifier (RFC 7636 §4.2, S256).
pub fn challenge(verifier: &str) -> String {
    BASE64_URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `n` random bytes, base64url.
pub fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    BASE64_URL_SAFE_NO_PAD.encode(b)
}

/// The relying party's settings and what it learnt of the provider.
pub struct Client {
    http: reqwest::Client,
    pub issuer: String,
    pub client_id: String,
    secret: Zeroizing<String>,
    pub scope: String,
    pub bsn_claim: String,
    discovery: tokio::sync::Mutex<Option<Discovery>>,
    keys: Mutex<(Vec<ProviderKey>, Option<Instant>)>,
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        issuer: String,
        client_id: String,
        secret: Zeroizing<String>,
        scope: String,
        bsn_claim: String,
    ) -> Self {
        Client {
            http,
            issuer,
            client_id,
            secret,
            scope,
            bsn_claim,
            discovery: tokio::sync::Mutex::new(None),
            keys: Mutex::new((Vec::new(), None)),
        }
    }

    /// The provider's discovery document, fetched once (its `issuer` must be the configured
    /// one, Discovery §4.3).
    pub async fn discovery(&self) -> Result<Discovery, OidcError> {
        let mut d = self.discovery.lock().await;
        if let Some(d) = &*d {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let got: Discovery = self.get_json(&url).await.and_then(|v| {
            serde_json::from_value(v).map_err(|e| OidcError::BadProvider(e.to_string()))
        })?;
        if got.issuer != self.issuer {
            return Err(OidcError::BadProvider(format!(
                "the discovery document names issuer {}, not {}",
                got.issuer, self.issuer
            )));
        }
        *d = Some(got.clone());
        Ok(got)
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(crate::https::error_chain(&e)))?;
        if !r.status().is_success() {
            return Err(OidcError::BadProvider(format!("{url}: {}", r.status())));
        }
        r.json()
            .await
            .map_err(|e| OidcError::BadProvider(e.to_string()))
    }

    /// Where to send the patient's browser (OpenID Connect Core §3.1.2.1).
    pub fn authorization_url_of(
        &self,
        d: &Discovery,
        redirect_uri: &str,
        login: &LoginSecrets<'_>,
    ) -> Result<String, OidcError> {
        let mut u = url::Url::parse(&d.authorization_endpoint)
            .map_err(|e| OidcError::BadProvider(e.to_string()))?;
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scope)
            .append_pair("state", login.state)
            .append_pair("nonce", login.nonce)
            .append_pair("code_challenge", &challenge(login.verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("ui_locales", login.lang);
        Ok(u.into())
    }

    /// Exchanges `code` for the ID token (RFC 6749 §4.1.3, client_secret_basic).
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<String, OidcError> {
        let d = self.discovery().await?;
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let r = self
            .http
            .post(&d.token_endpoint)
            .basic_auth(enc(&self.client_id), Some(enc(&self.secret)))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(crate::https::error_chain(&e)))?;
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .map_err(|e| OidcError::BadProvider(e.to_string()))?;
        if !status.is_success() {
            return Err(OidcError::Refused(format!(
                "{}: {}",
                v["error"].as_str().unwrap_or("error"),
                v["error_description"].as_str().unwrap_or_default()
            )));
        }
        v["id_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| OidcError::BadProvider("the token response has no id_token".into()))
    }

    /// The provider's signing keys; fetched again when `kid` is unknown, at most once a minute.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Vec<ProviderKey>, OidcError> {
        let (cached, fetched) = self
            .keys
            .lock()
            .map(|k| k.clone())
            .unwrap_or((Vec::new(), None));
        let known = kid.is_none_or(|kid| cached.iter().any(|k| k.kid.as_deref() == Some(kid)));
        let fresh = fetched.is_some_and(|at| at.elapsed() < JWKS_REFETCH);
        if (known && fetched.is_some()) || fresh {
            return Ok(cached);
        }
        let d = self.discovery().await?;
        let keys = parse_jwks(&self.get_json(&d.jwks_uri).await?);
        if let Ok(mut k) = self.keys.lock() {
            *k = (keys.clone(), Some(Instant::now()));
        }
        Ok(keys)
    }

    /// Verifies an ID token from the token endpoint for the login with `nonce`.
    pub async fn verify(&self, token: &str, nonce: &str) -> Result<IdClaims, OidcError> {
        let kid = Compact::parse(token)
            .map_err(|e| OidcError::BadToken(e.to_string()))?
            .header_str("kid")
            .map(str::to_owned);
        let keys = self.keys_for(kid.as_deref()).await?;
        verify_id_token(
            token,
            &keys,
            &Expected {
                issuer: &self.issuer,
                client_id: &self.client_id,
                nonce,
                bsn_claim: &self.bsn_claim,
            },
            (knoop_gossip::tx::now_ms() / 1000) as i64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knoop_vc::jws::SigningKey;
    use serde_json::json;

    const ISSUER: &str = "https://login.example.nl";
    const CLIENT: &str = "knoop-patient-service";
    const BSN: &str = "999911120";

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: "n-1",
            bsn_claim: "bsn",
        }
    }

    fn token(key: &SigningKey, kid: &str, claims: Value) -> String {
        let mut h = Map::new();
        h.insert("kid".into(), kid.into());
        h.insert("typ".into(), "JWT".into());
        key.sign_compact(h, claims.to_string().as_bytes())
    }

    fn claims(now: i64) -> Value {
        json!({"iss": ISSUER, "aud": CLIENT, "sub": "degroot", "iat": now, "exp": now + 300,
               "nonce": "n-1", "bsn": BSN, "acr": "urn:digid:substantieel", "auth_time": now})
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v[k] = x;
        v
    }

    #[test]
    fn an_id_token_is_checked_as_openid_connect_core_says() {
        let key = SigningKey::generate_p256();
        let keys = vec![ProviderKey {
            kid: Some("k1".into()),
            key: key.public_jwk(),
        }];
        let now = 1_800_000_000;
        let ok = verify_id_token(&token(&key, "k1", claims(now)), &keys, &expected(), now).unwrap();
        assert_eq!(ok.bsn.as_str(), BSN);
        assert_eq!(ok.acr.as_deref(), Some("urn:digid:substantieel"));

        let refused = |t: String| verify_id_token(&t, &keys, &expected(), now).err();
        // Signed by someone else, under the provider's kid.
        let forger = SigningKey::generate_p256();
        assert!(refused(token(&forger, "k1", claims(now))).is_some());
        // A kid the provider does not publish.
        assert!(refused(token(&key, "k2", claims(now))).is_some());
        // Expired beyond the skew; issued in the future.
        assert!(refused(token(&key, "k1", with(claims(now), "exp", json!(now - 61)))).is_some());
        assert!(refused(token(&key, "k1", with(claims(now), "iat", json!(now + 61)))).is_some());
        // Another provider, another client, another login.
        assert!(refused(token(
            &key,
            "k1",
            with(claims(now), "iss", json!("https://evil"))
        ))
        .is_some());
        assert!(refused(token(&key, "k1", with(claims(now), "aud", json!("other")))).is_some());
        assert!(refused(token(&key, "k1", with(claims(now), "nonce", json!("n-2")))).is_some());
        // Several audiences without azp naming this client.
        assert!(refused(token(
            &key,
            "k1",
            with(claims(now), "aud", json!([CLIENT, "x"]))
        ))
        .is_some());
        let multi = with(
            with(claims(now), "aud", json!([CLIENT, "x"])),
            "azp",
            json!(CLIENT),
        );
        assert!(refused(token(&key, "k1", multi)).is_none());
        // No BSN, or one that fails the 11-test.
        let mut none = claims(now);
        none.as_object_mut().unwrap().remove("bsn");
        assert!(refused(token(&key, "k1", none)).is_some());
        assert!(refused(token(
            &key,
            "k1",
            with(claims(now), "bsn", json!("123456789"))
        ))
        .is_some());
        // alg none and HMAC are refused before any key is tried.
        let body = BASE64_URL_SAFE_NO_PAD.encode(claims(now).to_string());
        for alg in ["none", "HS256"] {
            let h = BASE64_URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "k1"}).to_string());
            assert!(refused(format!("{h}.{body}.")).is_some(), "{alg}");
        }
        // A payload changed after signing.
        let good = token(&key, "k1", claims(now));
        let parts: Vec<&str> = good.split('.').collect();
        let changed =
            BASE64_URL_SAFE_NO_PAD.encode(with(claims(now), "bsn", json!("999993653")).to_string());
        assert!(refused(format!("{}.{changed}.{}", parts[0], parts[2])).is_some());
    }

    #[test]
    fn a_jwk_set_gives_its_signing_keys() {
        let key = SigningKey::generate_p256();
        let mut sig = key.public_jwk().to_json();
        sig["kid"] = json!("a");
        let mut enc = sig.clone();
        enc["use"] = json!("enc");
        let keys = parse_jwks(&json!({"keys": [sig, enc, {"kty": "oct", "k": "AAAA"}]}));
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("a"));
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "RFC 7636 appendix B"
        );
    }
}
