//! The CLI's side of the RPC.

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::cli::{RpcArgs, TxCommand};

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
        if !status.is_success() {
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
                    &json!({"content_type": content_type, "payload": B64.encode(content)}),
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
