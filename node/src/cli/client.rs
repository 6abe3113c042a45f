//! The CLI's side of the RPC.

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::cli::args::{DidCommand, RpcArgs, TxCommand, VcCommand};

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(rpc: &RpcArgs) -> anyhow::Result<Self> {
        Ok(Client {
            http: reqwest::Client::builder().build()?,
            base: rpc.rpc.trim_end_matches('/').to_owned(),
            token: rpc.token.clone(),
        })
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        self.call_with(req, false).await
    }

    /// Like `call`; with `any_status`, error bodies are returned as results (DID resolution
    /// results carry their error in the body).
    async fn call_with(
        &self,
        req: reqwest::RequestBuilder,
        any_status: bool,
    ) -> anyhow::Result<Value> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() && !any_status {
            bail!(
                "{status}: {}",
                serde_json::to_string(&body).unwrap_or_default()
            );
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }
}

pub async fn status(rpc: &RpcArgs) -> anyhow::Result<Value> {
    Client::new(rpc)?.get("/status").await
}

pub async fn tx(cmd: TxCommand) -> anyhow::Result<Value> {
    match cmd {
        TxCommand::Publish {
            rpc,
            signer,
            content_type,
            data,
            file,
        } => {
            let content = match (data, file) {
                (Some(d), None) => d.into_bytes(),
                (None, Some(f)) => {
                    std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?
                }
                _ => bail!("give exactly one of --data and --file"),
            };
            Client::new(&rpc)?
                .post(
                    "/v1/publish",
                    &json!({"content_type": content_type, "payload": B64.encode(content), "signer": signer}),
                )
                .await
        }
        TxCommand::Submit {
            rpc,
            envelope,
            payload_file,
        } => {
            let payload = match payload_file {
                Some(f) => Some(B64.encode(
                    std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?,
                )),
                None => None,
            };
            Client::new(&rpc)?
                .post(
                    "/v1/transactions",
                    &json!({"envelope": envelope, "payload": payload}),
                )
                .await
        }
        TxCommand::Get { rpc, id } => {
            Client::new(&rpc)?
                .get(&format!("/v1/transactions/{id}"))
                .await
        }
        TxCommand::List { rpc, after, limit } => {
            Client::new(&rpc)?
                .get(&format!("/v1/transactions?after={after}&limit={limit}"))
                .await
        }
    }
}

/// A DID as one URL path segment (`%` and `/` escaped; `:` kept).
fn seg(did: &str) -> String {
    did.replace('%', "%25")
        .replace('/', "%2F")
        .replace('?', "%3F")
        .replace('#', "%23")
}

/// A service endpoint from the command line: JSON when it parses as an object or array, else a
/// string.
fn endpoint_value(s: &str) -> Value {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
        _ => Value::String(s.to_owned()),
    }
}

pub async fn did(cmd: DidCommand) -> anyhow::Result<Value> {
    match cmd {
        DidCommand::Create {
            rpc,
            services,
            controllers,
            not_hosted_here,
        } => {
            let mut svcs = Vec::new();
            for s in services {
                let (t, e) = s
                    .split_once('=')
                    .with_context(|| format!("--service {s:?}: expected TYPE=ENDPOINT"))?;
                svcs.push(json!({"type": t, "serviceEndpoint": endpoint_value(e)}));
            }
            Client::new(&rpc)?
                .post(
                    "/v1/dids",
                    &json!({"services": svcs, "controllers": controllers, "hosted_here": !not_hosted_here}),
                )
                .await
        }
        DidCommand::Resolve { rpc, did } => {
            let (d, q) = match did.split_once('?') {
                Some((d, q)) => (d.to_owned(), format!("?{q}")),
                None => (did.clone(), String::new()),
            };
            let c = Client::new(&rpc)?;
            c.call_with(
                c.http.get(format!("{}/v1/dids/{}{q}", c.base, seg(&d))),
                true,
            )
            .await
        }
        DidCommand::List { rpc } => {
            let c = Client::new(&rpc)?;
            let mut v = c.get("/v1/dids").await?;
            let node = c.get("/v1/node").await?;
            if let Some(o) = v.as_object_mut() {
                o.insert("node".into(), node);
            }
            Ok(v)
        }
        DidCommand::History { rpc, did } => {
            Client::new(&rpc)?
                .get(&format!("/v1/dids/{}/history", seg(&did)))
                .await
        }
        DidCommand::AddKey {
            rpc,
            did,
            relationships,
        } => {
            let rels = (!relationships.is_empty()).then_some(relationships);
            Client::new(&rpc)?
                .post(
                    &format!("/v1/dids/{}/keys", seg(&did)),
                    &json!({"relationships": rels}),
                )
                .await
        }
        DidCommand::RemoveKey { rpc, did, fragment } => {
            Client::new(&rpc)?
                .delete(&format!("/v1/dids/{}/keys/{}", seg(&did), seg(&fragment)))
                .await
        }
        DidCommand::Rotate { rpc, did, fragment } => {
            Client::new(&rpc)?
                .post(
                    &format!("/v1/dids/{}/keys/{}/rotate", seg(&did), seg(&fragment)),
                    &json!({}),
                )
                .await
        }
        DidCommand::SetService {
            rpc,
            did,
            fragment,
            type_,
            endpoint,
        } => {
            Client::new(&rpc)?
                .put(
                    &format!("/v1/dids/{}/services/{}", seg(&did), seg(&fragment)),
                    &json!({"type": type_, "serviceEndpoint": endpoint_value(&endpoint)}),
                )
                .await
        }
        DidCommand::RemoveService { rpc, did, fragment } => {
            Client::new(&rpc)?
                .delete(&format!(
                    "/v1/dids/{}/services/{}",
                    seg(&did),
                    seg(&fragment)
                ))
                .await
        }
        DidCommand::SetControllers {
            rpc,
            did,
            controllers,
        } => {
            Client::new(&rpc)?
                .put(
                    &format!("/v1/dids/{}/controllers", seg(&did)),
                    &json!({"controllers": controllers}),
                )
                .await
        }
        DidCommand::Deactivate { rpc, did } => {
            Client::new(&rpc)?
                .post(&format!("/v1/dids/{}/deactivate", seg(&did)), &json!({}))
                .await
        }
        DidCommand::Endpoint { rpc, did, type_ } => {
            Client::new(&rpc)?
                .get(&format!("/v1/dids/{}/endpoints/{}", seg(&did), seg(&type_)))
                .await
        }
    }
}

/// A credential from a file (or `-`): JSON, or a JOSE credential as a compact JWS.
fn read_json(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let trimmed = text.trim();
    // A JOSE credential is a bare compact JWS.
    if !trimmed.starts_with(['{', '[', '"']) && trimmed.split('.').count() == 3 {
        return Ok(Value::String(trimmed.to_owned()));
    }
    let v: Value = serde_json::from_str(&text).context("neither JSON nor a compact JWS")?;
    // Accept the `issue` answer as well as a bare credential.
    Ok(match v.get("credential") {
        Some(c) => c.clone(),
        None => v,
    })
}

fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    q.join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn vc(cmd: VcCommand) -> anyhow::Result<Value> {
    match cmd {
        VcCommand::Issue {
            rpc,
            issuer,
            type_,
            subject,
            valid_until,
            cryptosuite,
            publish,
        } => {
            let subject: Value = serde_json::from_str(&subject).context("--subject is not JSON")?;
            Client::new(&rpc)?
                .post(
                    "/v1/credentials",
                    &json!({"issuer": issuer, "type": type_, "subject": subject, "validUntil": valid_until,
                            "cryptosuite": cryptosuite, "publish": publish}),
                )
                .await
        }
        VcCommand::Offer {
            rpc,
            issuer,
            type_,
            subject,
            valid_until,
            format,
            no_tx_code,
            expires_in,
        } => {
            let subject: Value = serde_json::from_str(&subject).context("--subject is not JSON")?;
            Client::new(&rpc)?
                .post(
                    "/v1/credential-offers",
                    &json!({"issuer": issuer, "type": type_, "subject": subject,
                            "validUntil": valid_until, "format": format,
                            "tx_code": !no_tx_code, "expires_in": expires_in}),
                )
                .await
        }
        VcCommand::Receive {
            rpc,
            holder,
            offer,
            tx_code,
        } => {
            Client::new(&rpc)?
                .post(
                    "/v1/wallet/offers",
                    &json!({"holder": holder, "offer": offer, "tx_code": tx_code}),
                )
                .await
        }
        VcCommand::Held { rpc, holder } => {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("holder", &holder)
                .finish();
            Client::new(&rpc)?
                .get(&format!("/v1/wallet/credentials?{q}"))
                .await
        }
        VcCommand::Verify { rpc, file } => {
            Client::new(&rpc)?
                .post(
                    "/v1/credentials/verify",
                    &json!({"credential": read_json(&file)?}),
                )
                .await
        }
        VcCommand::Publish { rpc, file } => {
            Client::new(&rpc)?
                .post(
                    "/v1/credentials/publish",
                    &json!({"credential": read_json(&file)?}),
                )
                .await
        }
        VcCommand::Revoke {
            rpc,
            issuer,
            credential,
            reason,
        } => {
            Client::new(&rpc)?
                .post(
                    "/v1/credentials/revoke",
                    &json!({"issuer": issuer, "credential": credential, "reason": reason}),
                )
                .await
        }
        VcCommand::Search {
            rpc,
            name,
            city,
            type_,
            ura,
        } => {
            let q = query(&[
                ("name", &name),
                ("city", &city),
                ("type", &type_),
                ("ura", &ura),
            ]);
            Client::new(&rpc)?.get(&format!("/v1/directory?{q}")).await
        }
        VcCommand::Trust { rpc, type_, issuer } => {
            Client::new(&rpc)?
                .put(
                    &format!("/v1/trust/{}/{}", seg(&type_), seg(&issuer)),
                    &json!({}),
                )
                .await
        }
        VcCommand::Untrust { rpc, type_, issuer } => {
            Client::new(&rpc)?
                .delete(&format!("/v1/trust/{}/{}", seg(&type_), seg(&issuer)))
                .await
        }
        VcCommand::Trusted { rpc } => Client::new(&rpc)?.get("/v1/trust").await,
    }
}

/// The patient identifier from `--bsn` (or stdin for `-`), as the RPC body's `patient`.
fn patient(p: &crate::cli::args::PatientArg) -> anyhow::Result<Value> {
    let value = if p.bsn == "-" {
        std::io::read_to_string(std::io::stdin())?.trim().to_owned()
    } else {
        p.bsn.clone()
    };
    Ok(json!({ "value": value }))
}

pub async fn private(cmd: crate::cli::args::PrivateCommand) -> anyhow::Result<Value> {
    use crate::cli::args::PrivateCommand;
    match cmd {
        PrivateCommand::Send {
            rpc,
            author,
            to,
            body,
            content_type,
        } => {
            let body: Value = serde_json::from_str(&body).context("--body must be JSON")?;
            Client::new(&rpc)?
                .post(
                    "/v1/private",
                    &json!({"author": author, "to": to, "body": body, "contentType": content_type}),
                )
                .await
        }
        PrivateCommand::List(rpc) => Client::new(&rpc)?.get("/v1/private").await,
        PrivateCommand::Read { rpc, id } => {
            Client::new(&rpc)?.get(&format!("/v1/private/{id}")).await
        }
    }
}

pub async fn loc(cmd: crate::cli::args::LocCommand) -> anyhow::Result<Value> {
    use crate::cli::args::LocCommand;
    match cmd {
        LocCommand::Register {
            rpc,
            holder,
            patient: p,
            categories,
        } => {
            Client::new(&rpc)?
                .post(
                    "/v1/localisation/register",
                    &json!({"holder": holder, "patient": patient(&p)?, "categories": categories}),
                )
                .await
        }
        LocCommand::Lookup {
            rpc,
            requester,
            patient: p,
            purpose,
            who,
        } => {
            Client::new(&rpc)?
                .post(
                    "/v1/localisation/lookup",
                    &json!({"requester": requester, "patient": patient(&p)?, "purpose": purpose,
                            "who": who}),
                )
                .await
        }
        LocCommand::Withdraw {
            rpc,
            holder,
            patient: p,
            categories,
        } => {
            Client::new(&rpc)?
                .post(
                    "/v1/localisation/withdraw",
                    &json!({"holder": holder, "patient": patient(&p)?, "categories": categories}),
                )
                .await
        }
    }
}

pub async fn consent(cmd: crate::cli::args::ConsentCommand) -> anyhow::Result<Value> {
    use crate::cli::args::ConsentCommand;
    match cmd {
        ConsentCommand::Register {
            rpc,
            issuer,
            patient: p,
            decision,
            purposes,
            categories,
            requester_types,
            requesters,
            method,
            valid_until,
        } => {
            let mut body = json!({"issuer": issuer, "patient": patient(&p)?, "decision": decision,
                                  "purpose": purposes, "dataCategories": categories,
                                  "method": method});
            if !requester_types.is_empty() || !requesters.is_empty() {
                body["requesters"] =
                    json!({"organizationTypes": requester_types, "organizations": requesters});
            }
            if let Some(u) = valid_until {
                body["validUntil"] = Value::String(u);
            }
            Client::new(&rpc)?.post("/v1/consent", &body).await
        }
        ConsentCommand::Revoke {
            rpc,
            issuer,
            patient: p,
            credential,
            reason,
        } => {
            Client::new(&rpc)?
                .post(
                    "/v1/consent/revoke",
                    &json!({"issuer": issuer, "patient": patient(&p)?, "credential": credential,
                            "reason": reason}),
                )
                .await
        }
        ConsentCommand::List { rpc, patient: p } => {
            Client::new(&rpc)?
                .post("/v1/consent/list", &json!({"patient": patient(&p)?}))
                .await
        }
    }
}

pub async fn audit(cmd: crate::cli::args::AuditCommand) -> anyhow::Result<Value> {
    use crate::cli::args::AuditCommand;
    match cmd {
        AuditCommand::List { rpc, after } => {
            Client::new(&rpc)?
                .get(&format!("/v1/audit?after={after}"))
                .await
        }
        AuditCommand::Verify(rpc) => Client::new(&rpc)?.get("/v1/audit/verify").await,
        AuditCommand::Fhir(rpc) => Client::new(&rpc)?.get("/fhir/AuditEvent").await,
    }
}

/// Asks the node for a backup of its store into a new directory `name` under its backup
/// directory.
pub async fn backup(rpc: &RpcArgs, name: &str) -> anyhow::Result<Value> {
    Client::new(rpc)?
        .post("/v1/admin/backup", &serde_json::json!({ "name": name }))
        .await
}

pub async fn data(cmd: crate::cli::args::DataCommand) -> anyhow::Result<Value> {
    use crate::cli::args::DataCommand;
    match cmd {
        DataCommand::Fetch {
            rpc,
            requester,
            credentials,
            patient: p,
            scope,
            categories,
            purpose,
            reason,
            summary,
        } => {
            let credentials = credentials
                .iter()
                .map(|f| read_json(f))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut body = json!({"requester": requester, "credentials": credentials,
                "patient": patient(&p)?, "scope": scope, "purpose": purpose});
            if !categories.is_empty() {
                body["categories"] = json!(categories);
            }
            if let Some(r) = reason {
                body["reason"] = json!(r);
            }
            let answer = Client::new(&rpc)?.post("/v1/data/fetch", &body).await?;
            Ok(if summary {
                fetch_summary(&answer)
            } else {
                answer
            })
        }
    }
}

/// The holders' statuses and, per resource type, how many came from each source (the matches:
/// not the included patient nor the holders' outcomes).
fn fetch_summary(answer: &Value) -> Value {
    let mut counts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        Default::default();
    let mut total = 0u64;
    let entries = answer["bundle"]["entry"].as_array().into_iter().flatten();
    for e in entries.filter(|e| e["search"]["mode"] == "match") {
        let r = &e["resource"];
        let Some(t) = r["resourceType"].as_str() else {
            continue;
        };
        let source = r["meta"]["source"].as_str().unwrap_or("?").to_owned();
        *counts
            .entry(t.to_owned())
            .or_default()
            .entry(source)
            .or_default() += 1;
        total += 1;
    }
    json!({
        "sources": answer["sources"],
        "resources": counts,
        "total": total,
    })
}
