//! The real FHIR source: `testnet/fhir/serve` (Medplum's FHIR R4 engine behind a small Node
//! HTTP server, one in-memory repository per dataset in `testnet/fhir/data`), started as a
//! separate process on a free loopback port. Each dataset is one organisation's source
//! system, at `<url>/<dataset>`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

/// The line the server prints when it is ready.
const READY: &str = "knoop-fhir listening on ";

/// A running FHIR server; stopped (SIGTERM, then kill) on drop.
pub struct FhirServer {
    child: Child,
    url: String,
}

/// `testnet/fhir` in this repository.
pub fn fhir_dir() -> PathBuf {
    crate::testnet_dir().join("fhir")
}

impl FhirServer {
    /// Starts the server on the bundled datasets and waits for its ready line.
    pub fn start() -> anyhow::Result<FhirServer> {
        let dir = fhir_dir();
        let mut child = Command::new(dir.join("serve"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}/serve", dir.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.find_map(|l| {
                let l = l.ok()?;
                l.strip_prefix(READY).map(|u| u.trim().to_owned())
            });
            let _ = tx.send(first);
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        // npm ci on a cold machine takes a few seconds; loading the R4 definitions a few more.
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Some(url)) => Ok(FhirServer { child, url }),
            _ => {
                let _ = child.kill();
                bail!("the FHIR server did not print its ready line")
            }
        }
    }

    /// The base URL of `dataset`'s FHIR endpoint.
    pub fn base(&self, dataset: &str) -> String {
        format!("{}/{dataset}", self.url)
    }

    /// Creates `resource` in `dataset` (an EHR writing its own system): the id the server gave.
    pub async fn create(&self, dataset: &str, resource: serde_json::Value) -> String {
        let url = format!(
            "{}/{}",
            self.base(dataset),
            resource["resourceType"].as_str().expect("a resourceType")
        );
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/fhir+json")
            .json(&resource)
            .send()
            .await
            .expect("the FHIR server answers");
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.expect("FHIR JSON");
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("an id").to_owned()
    }

    /// `GET <dataset>/<path>` (a read or search): the resource, which must be there.
    pub async fn read(&self, dataset: &str, path: &str) -> serde_json::Value {
        let r = reqwest::Client::new()
            .get(format!("{}/{path}", self.base(dataset)))
            .header("accept", "application/fhir+json")
            .send()
            .await
            .expect("the FHIR server answers");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.json().await.expect("FHIR JSON")
    }
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
