//! # knoop-e2e: the harness for end-to-end tests over real processes
//!
//! Starts real `knoop` node processes (the binary built by `cargo build --workspace`, or the
//! one named by `KNOOP_BIN`) on loopback with fresh data directories, and talks to them over
//! their RPC. Tests live in `tests/tests/`.

pub mod blob_probe;
pub mod care;
pub mod fhir;
pub mod hooks;
pub mod https;
pub mod postgres;
pub mod rogue;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

/// Runs an outside program of the tests (a Python or Node.js client), which must succeed and
/// print one JSON value: that value. Its stderr is shown when it fails.
pub fn run_outside(cmd: &mut std::process::Command) -> Value {
    run_outside_with(cmd, None)
}

/// [`run_outside`], with `input` on the program's stdin (a resource to check, a Bundle to
/// post).
pub fn run_outside_with(cmd: &mut std::process::Command, input: Option<&[u8]>) -> Value {
    let started = output_with_stdin(cmd, input.unwrap_or_default());
    let out = started
        .unwrap_or_else(|e| panic!("{cmd:?} did not start ({e}); .ci/run installs its tools"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{cmd:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs a linter `program args` on `input` (stdin): what it reported (stdout and stderr, and
/// its exit status when not 0), or `""` when it found nothing.
pub fn run_lint(program: &str, args: &[&str], input: &[u8]) -> String {
    let out = output_with_stdin(std::process::Command::new(program).args(args), input)
        .unwrap_or_else(|e| panic!("{program} did not start ({e}); .ci/run installs it"));
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        report.push_str(&format!("({program} exited with {})", out.status));
    }
    report
}

/// Runs `cmd` with `input` on its stdin; its whole output.
fn output_with_stdin(
    cmd: &mut std::process::Command,
    input: &[u8],
) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(input)?;
            drop(stdin);
            child.wait_with_output()
        })
}

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// The repository's `testnet/` directory (its scripts and the FHIR source).
pub fn testnet_dir() -> PathBuf {
    repo_root().join("testnet")
}

/// Runs its closure when dropped: tears down what a test started, also when the test fails.
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// The `knoop` binary under test.
pub fn knoop_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KNOOP_BIN") {
        return PathBuf::from(p);
    }
    let root = repo_root();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(root.join("target"));
    let bin = target.join("debug").join("knoop");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace` first (tests/run.sh does)",
        bin.display()
    );
    bin
}

/// One node process.
pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub rpc: String,
    pub p2p: String,
    pub peer_id: String,
    bootstrap: Vec<String>,
    child: Option<Child>,
    /// Extra environment for the node process (config overrides such as `KNOOP_P2P__ENABLED`).
    pub env: Vec<(String, String)>,
    http: reqwest::Client,
}

/// The HTTP client of a node's RPC: with its bearer token when the environment sets one
/// (`KNOOP_RPC__TOKEN`).
fn rpc_client(env: &[(String, String)]) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some((_, token)) = env.iter().find(|(k, _)| k == "KNOOP_RPC__TOKEN") {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()?)
}

impl Node {
    /// Starts a node in `dir` (created if needed) and waits until its RPC answers.
    pub async fn start(name: &str, dir: &Path, bootstrap: &[String]) -> anyhow::Result<Node> {
        Self::start_with_env(name, dir, bootstrap, Vec::new()).await
    }

    /// Like [`Node::start`], with extra environment (config overrides `KNOOP_<SECTION>__<KEY>`).
    pub async fn start_with_env(
        name: &str,
        dir: &Path,
        bootstrap: &[String],
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Node> {
        let mut node = Self::new(name, dir, bootstrap, env)?;
        node.launch().await?;
        Ok(node)
    }

    /// Like [`Node::start_with_env`], without waiting for the RPC: a replica that stands by
    /// until it leads its store serves nothing before. [`Node::wait_up`] waits for it.
    pub fn spawn_with_env(
        name: &str,
        dir: &Path,
        bootstrap: &[String],
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Node> {
        let mut node = Self::new(name, dir, bootstrap, env)?;
        node.spawn()?;
        Ok(node)
    }

    /// A node not started yet.
    fn new(
        name: &str,
        dir: &Path,
        bootstrap: &[String],
        mut env: Vec<(String, String)>,
    ) -> anyhow::Result<Node> {
        // Many nodes on one machine: the public API on a free port, kept across restarts (its
        // URL is in the node's DID; a new one would be a DID update).
        if !env.iter().any(|(k, _)| k == "KNOOP_PUBLIC__LISTEN") {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            env.insert(
                0,
                ("KNOOP_PUBLIC__LISTEN".into(), format!("127.0.0.1:{port}")),
            );
        }
        Ok(Node {
            name: name.into(),
            dir: dir.to_path_buf(),
            rpc: String::new(),
            p2p: String::new(),
            peer_id: String::new(),
            bootstrap: bootstrap.to_vec(),
            child: None,
            http: rpc_client(&env)?,
            env,
        })
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        self.wait_up(Duration::from_secs(30)).await
    }

    /// Whether the node's RPC has come up (it wrote its address).
    pub fn rpc_is_up(&self) -> bool {
        self.dir.join("rpc.addr").exists()
    }

    /// Whether the process still runs; `Some(status)` once it exited.
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let addr_file = self.dir.join("rpc.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))?;
        let mut cmd = Command::new(knoop_bin());
        cmd.arg("run")
            .arg("--data-dir")
            .arg(&self.dir)
            .args([
                "--rpc-listen",
                "127.0.0.1:0",
                "--p2p-listen",
                "/ip4/127.0.0.1/tcp/0",
            ])
            .env("KNOOP_LOG", "info,knoop_gossip=info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log);
        for b in &self.bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        self.child = Some(cmd.spawn().context("spawning knoop")?);
        Ok(())
    }

    /// Waits until the node's RPC answers with its status (and its p2p address, when online).
    pub async fn wait_up(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let addr_file = self.dir.join("rpc.addr");
        let t0 = Instant::now();
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                self.rpc = format!("http://{}", a.trim());
                if let Ok(s) = self.status().await {
                    if self.is_offline() {
                        self.peer_id = s["peer_id"].as_str().unwrap_or_default().to_owned();
                        return Ok(());
                    }
                    if let Some(addr) = s["listen_addrs"]
                        .as_array()
                        .and_then(|a| a.first())
                        .and_then(|a| a.as_str())
                    {
                        self.peer_id = s["peer_id"].as_str().unwrap_or_default().to_owned();
                        self.p2p = format!("{addr}/p2p/{}", self.peer_id);
                        return Ok(());
                    }
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(code) = c.try_wait()? {
                    bail!(
                        "{} exited at start with {code}; log: {}",
                        self.name,
                        self.log_tail()
                    );
                }
            }
            if t0.elapsed() > timeout {
                bail!(
                    "{} did not come up in {timeout:?}; log: {}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn is_offline(&self) -> bool {
        self.env
            .iter()
            .any(|(k, v)| k == "KNOOP_P2P__ENABLED" && v == "false")
    }

    /// Restarts the node offline (`true`: no network, RPC only) or back on the network.
    pub async fn restart_offline(&mut self, offline: bool) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.stop().await?;
        }
        self.env.retain(|(k, _)| k != "KNOOP_P2P__ENABLED");
        if offline {
            self.env.push(("KNOOP_P2P__ENABLED".into(), "false".into()));
        }
        self.launch().await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .put(format!("{}{path}", self.rpc))
            .json(body)
            .send()
            .await?;
        let code = r.status().as_u16();
        Ok((code, r.json().await.unwrap_or(Value::Null)))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    pub async fn status(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/status", self.rpc))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The node's Prometheus metrics (OpenMetrics text, as Prometheus asks for them).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.rpc))
            .header(
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            )
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = self.http.get(format!("{}{path}", self.rpc)).send().await?;
        let code = r.status().as_u16();
        Ok((code, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}{path}", self.rpc))
            .json(body)
            .send()
            .await?;
        let code = r.status().as_u16();
        Ok((code, r.json().await.unwrap_or(Value::Null)))
    }

    /// RFC 7662 introspection of `token` at `path` on the RPC (`/oauth2/introspect`, or the
    /// Nuts node API's): the JSON answer.
    pub async fn introspect(&self, path: &str, token: &str) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.rpc))
            .form(&[("token", token)])
            .send()
            .await
            .expect("the RPC answers");
        r.json().await.expect("introspection answers JSON")
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
        let r = self
            .http
            .post(format!("{}{path}", self.rpc))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let code = r.status().as_u16();
        Ok((code, r.text().await.unwrap_or_default()))
    }

    /// A FHIR request to the RPC (`application/fhir+json` body, extra `headers`): the status
    /// and the FHIR JSON answer. Every answer but a 204 must be `application/fhir+json`.
    pub async fn fhir(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.rpc));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/fhir+json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("the RPC answers");
        let status = r.status().as_u16();
        if status != 204 {
            assert_eq!(
                r.headers()["content-type"],
                "application/fhir+json",
                "{path}"
            );
        }
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("{} is not running", self.name))?;
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()?
            .success();
        if !ok {
            bail!("kill {sig} {pid} failed");
        }
        Ok(())
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.signal("-KILL")?;
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        Ok(())
    }

    /// Freezes the process (its peers see a silent partition) / thaws it.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    /// SIGTERM and wait for a clean exit; returns the exit status success.
    pub async fn stop(&mut self) -> anyhow::Result<bool> {
        self.signal("-TERM")?;
        let Some(mut c) = self.child.take() else {
            return Ok(false);
        };
        let t0 = Instant::now();
        loop {
            if let Some(s) = c.try_wait()? {
                return Ok(s.success());
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = c.kill();
                bail!(
                    "{} did not stop within 20 s; its log ends:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the node again on the same data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.launch().await
    }

    /// Transactions held besides DID operations.
    pub async fn transactions(&self) -> anyhow::Result<u64> {
        Ok(content_transactions(&self.status().await?))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A local network: node 0 is the bootstrap node of all others.
pub struct Network {
    pub nodes: Vec<Node>,
    pub root: tempfile::TempDir,
}

impl Network {
    pub async fn start(n: usize) -> anyhow::Result<Network> {
        Self::start_with_env(n, Vec::new()).await
    }

    /// Like [`Network::start`], every node with the extra environment `env`.
    pub async fn start_with_env(n: usize, env: Vec<(String, String)>) -> anyhow::Result<Network> {
        let root = tempfile::Builder::new().prefix("knoop-e2e-").tempdir()?;
        let mut nodes = Vec::with_capacity(n);
        let first = Node::start_with_env("n0", &root.path().join("n0"), &[], env.clone()).await?;
        let boot = vec![first.p2p.clone()];
        nodes.push(first);
        for i in 1..n {
            nodes.push(
                Node::start_with_env(
                    &format!("n{i}"),
                    &root.path().join(format!("n{i}")),
                    &boot,
                    env.clone(),
                )
                .await?,
            );
        }
        Ok(Network { nodes, root })
    }

    /// A network of one node per entry of `envs`, each with its own extra environment.
    pub async fn start_each(envs: Vec<Vec<(String, String)>>) -> anyhow::Result<Network> {
        let root = tempfile::Builder::new().prefix("knoop-e2e-").tempdir()?;
        let mut nodes: Vec<Node> = Vec::with_capacity(envs.len());
        for (i, env) in envs.into_iter().enumerate() {
            let boot: Vec<String> = nodes.first().map(|n| n.p2p.clone()).into_iter().collect();
            nodes.push(
                Node::start_with_env(
                    &format!("n{i}"),
                    &root.path().join(format!("n{i}")),
                    &boot,
                    env,
                )
                .await?,
            );
        }
        Ok(Network { nodes, root })
    }

    pub fn bootstrap(&self) -> Vec<String> {
        vec![self.nodes[0].p2p.clone()]
    }

    /// Adds a node wired to node 0.
    pub async fn add(&mut self) -> anyhow::Result<&mut Node> {
        self.add_with_env(Vec::new()).await
    }

    /// Adds a node wired to node 0, with more environment.
    pub async fn add_with_env(&mut self, env: Vec<(String, String)>) -> anyhow::Result<&mut Node> {
        let i = self.nodes.len();
        let node = Node::start_with_env(
            &format!("n{i}"),
            &self.root.path().join(format!("n{i}")),
            &self.bootstrap(),
            env,
        )
        .await?;
        self.nodes.push(node);
        Ok(self.nodes.last_mut().expect("just pushed"))
    }

    pub fn rpc_urls(&self, which: &[usize]) -> Vec<String> {
        which.iter().map(|&i| self.nodes[i].rpc.clone()).collect()
    }

    /// Waits until every node in `which` holds `expected` transactions besides DID operations
    /// (nodes and load workers create DIDs of their own), all with one digest.
    pub async fn wait_converged(
        &self,
        which: &[usize],
        expected: u64,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        loop {
            let mut digests = Vec::new();
            let mut counts = Vec::new();
            for &i in which {
                let s = self.nodes[i].status().await.unwrap_or(Value::Null);
                counts.push(content_transactions(&s));
                digests.push(s["digest"].as_str().unwrap_or_default().to_owned());
            }
            if counts.iter().all(|&c| c == expected) && digests.windows(2).all(|w| w[0] == w[1]) {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > timeout {
                bail!(
                    "not converged after {:?}: counts {counts:?} (want {expected})",
                    timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// From a `/status` answer: transactions that are not DID operations.
pub fn content_transactions(status: &Value) -> u64 {
    let all = status["transactions"].as_u64().unwrap_or(0);
    all.saturating_sub(status["did_operations"].as_u64().unwrap_or(0))
}

/// A DID whose key the test holds (client-side signing), created on a node.
pub struct ClientDid {
    pub key: ed25519_dalek::SigningKey,
    pub did: String,
    /// The create transaction: the version to name in `kid` and as a parent.
    pub root: knoop_gossip::Transaction,
}

impl ClientDid {
    /// Builds the create transaction for `key` (not submitted).
    pub fn new(key: ed25519_dalek::SigningKey) -> Self {
        Self::with_document(key, |_| {})
    }

    /// Like [`ClientDid::new`], with the document changed by `edit` before it is signed (to add
    /// services or keys).
    pub fn with_document(
        key: ed25519_dalek::SigningKey,
        edit: impl FnOnce(&mut knoop_did::document::DidDocument),
    ) -> Self {
        use knoop_did::document::{DidDocument, Relationship};
        use knoop_did::knoop::{did_for_key, DidOp, DID_OP_CONTENT_TYPE};
        let did = did_for_key(&key.verifying_key());
        let mut doc = DidDocument::new(&did);
        doc.add_ed25519(
            "key-1",
            &key.verifying_key(),
            &[
                Relationship::Authentication,
                Relationship::AssertionMethod,
                Relationship::CapabilityInvocation,
            ],
        );
        edit(&mut doc);
        let root = knoop_gossip::TxBuilder::new(DID_OP_CONTENT_TYPE)
            .sign(&key, DidOp::Create { document: doc }.to_bytes())
            .expect("a create transaction builds");
        ClientDid { key, did, root }
    }

    /// `kid` for key-1 under the create version.
    pub fn kid(&self) -> String {
        knoop_did::knoop::SignerKid::format(
            &self.did,
            &knoop_did::knoop::VersionId(self.root.id().0),
            "key-1",
        )
    }

    /// A transaction signed as this DID, with the create and `prevs` as parents.
    pub fn sign(
        &self,
        cty: &str,
        payload: Vec<u8>,
        prevs: &[(knoop_gossip::TxId, u64)],
    ) -> knoop_gossip::Transaction {
        knoop_gossip::TxBuilder::new(cty)
            .prevs([(self.root.id(), self.root.header().lc)])
            .prevs(prevs.iter().copied())
            .kid(self.kid())
            .sign(&self.key, payload)
            .expect("a transaction builds")
    }
}

/// The JSON body that submits `tx`.
pub fn submission(tx: &knoop_gossip::Transaction) -> Value {
    use base64::Engine;
    serde_json::json!({
        "envelope": tx.envelope(),
        "payload": tx.payload().map(|p| base64::engine::general_purpose::STANDARD.encode(p)),
    })
}

/// Runs `knoop load` against `targets`; returns its JSON report.
pub fn load(targets: &[String], count: u64, rate: f64, extra: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(knoop_bin())
        .arg("load")
        .arg("--rpc")
        .arg(targets.join(","))
        .args(["--count", &count.to_string(), "--rate", &rate.to_string()])
        .args(extra)
        .output()?;
    if !out.status.success() {
        bail!(
            "knoop load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Spawns `knoop load` in the background.
pub fn load_spawn(
    targets: &[String],
    count: u64,
    rate: f64,
    extra: &[&str],
) -> anyhow::Result<Child> {
    Ok(Command::new(knoop_bin())
        .arg("load")
        .arg("--rpc")
        .arg(targets.join(","))
        .args(["--count", &count.to_string(), "--rate", &rate.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

/// Node environment for the privacy tests: a network id, a pepper, a reduced Argon2id cost (the
/// default is 64 MiB and 3 passes) and the consent mode.
pub fn privacy_env(consent_mode: &str) -> Vec<(String, String)> {
    [
        ("KNOOP_NETWORK__ID", "knoop-e2e"),
        ("KNOOP_LOCALISATION__PEPPER", &"5a".repeat(32)),
        ("KNOOP_LOCALISATION__ARGON2_M_KIB", "1024"),
        ("KNOOP_LOCALISATION__ARGON2_T", "1"),
        // Short batches: the tests register one patient after another and wait for each
        // (`tests/tests/localisation.rs` checks the default's batching).
        ("KNOOP_LOCALISATION__BATCH_INTERVAL", "50ms"),
        ("KNOOP_CONSENT__MODE", consent_mode),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The files under `dir` (recursively) whose bytes contain `needle`: where a value that must
/// never be stored (a BSN, say) was written after all.
pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

/// The first `n` nine-digit numbers from `from` that are valid BSNs (the privacy crate's own
/// 11-test): distinct patients for tests and benchmarks.
pub fn valid_bsns(from: u64, n: usize) -> Vec<String> {
    (from..)
        .map(|v| format!("{v:09}"))
        .filter(|s| knoop_privacy::patient::PatientId::bsn(s).is_ok())
        .take(n)
        .collect()
}
