//! A care network for end-to-end tests and benchmarks: one node per organisation, each
//! fronting its own dataset of the real FHIR source (`testnet/fhir`), a registry authority
//! every node trusts, HTTPS between nodes with a throw-away CA, and the calls the stories make
//! (register a patient, fetch from every holder) with helpers to read the answers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fhir::FhirServer;
use crate::https::TestCa;
use crate::{Network, Node};

/// One care organisation on its own node, with its source dataset and one professional.
pub struct Org {
    pub node: usize,
    pub did: String,
    pub credential: Value,
    pub professional: Value,
}

pub struct OrgSpec {
    pub dataset: &'static str,
    pub name: &'static str,
    pub city: &'static str,
    pub kind: &'static str,
    pub ura: &'static str,
    pub professional: &'static str,
    pub role: &'static str,
}

/// The hospital of story 1, fronting the `leiden-hospital` dataset.
pub const LEIDEN_HOSPITAL: OrgSpec = OrgSpec {
    dataset: "leiden-hospital",
    name: "Ziekenhuis Leiden",
    city: "Leiden",
    kind: "hospital",
    ura: "99990011",
    professional: "Dr. M. Verbeek (geriatrics)",
    role: "01.010",
};

/// The pharmacy of story 1, fronting the `kerkrade-pharmacy` dataset.
pub const KERKRADE_PHARMACY: OrgSpec = OrgSpec {
    dataset: "kerkrade-pharmacy",
    name: "Apotheek Kerkrade Noord",
    city: "Kerkrade",
    kind: "pharmacy",
    ura: "99990044",
    professional: "J. Brouns, apotheker",
    role: "17.000",
};

/// The home care organisation of story 1, fronting the `kerkrade-homecare` dataset.
pub const KERKRADE_HOMECARE: OrgSpec = OrgSpec {
    dataset: "kerkrade-homecare",
    name: "Wijkverpleging Kerkrade",
    city: "Kerkrade",
    kind: "homecare",
    ura: "99990033",
    professional: "E. Schmeitz, wijkverpleegkundige",
    role: "30.000",
};

/// The GP of story 1, fronting the `kerkrade-gp` dataset.
pub const KERKRADE_GP: OrgSpec = OrgSpec {
    dataset: "kerkrade-gp",
    name: "Huisartsenpraktijk Kerkrade-West",
    city: "Kerkrade",
    kind: "gp",
    ura: "99990022",
    professional: "Dr. L. Crombach",
    role: "01.015",
};

pub struct World {
    pub net: Network,
    pub orgs: Vec<Org>,
    pub fhir: FhirServer,
    pub ca: TestCa,
}

pub async fn create_did(node: &Node) -> String {
    let (code, body) = node.post("/v1/dids", &json!({})).await.unwrap();
    assert_eq!(code, 201, "{body}");
    body["did"].as_str().unwrap().to_owned()
}

/// Makes `node` trust `issuer` for credentials of `type_`.
pub async fn trust(node: &Node, type_: &str, issuer: &str) {
    let (code, body) = node
        .put(&format!("/v1/trust/{type_}/{issuer}"), &json!({}))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
}

pub async fn issue(node: &Node, body: Value) -> Value {
    let (code, v) = node.post("/v1/credentials", &body).await.unwrap();
    assert_eq!(code, 201, "{v}");
    v["credential"].clone()
}

/// A network with one node per organisation, each fronting its own source dataset; node 0
/// also hosts the registry authority every node trusts. `extra` is more environment for node
/// `i`.
pub async fn world(mode: &str, specs: &[OrgSpec], extra: &[(usize, (&str, String))]) -> World {
    let fhir = FhirServer::start().expect("FHIR server");
    let ca = TestCa::new().expect("test CA");
    let envs = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut env = crate::privacy_env(mode);
            env.extend(ca.public_env());
            env.push(("KNOOP_SOURCE__FHIR".into(), fhir.base(s.dataset)));
            for (j, (k, v)) in extra {
                if *j == i {
                    env.push(((*k).to_owned(), v.clone()));
                }
            }
            env
        })
        .collect();
    let net = Network::start_each(envs).await.unwrap();
    let ra = create_did(&net.nodes[0]).await;
    for node in &net.nodes {
        trust(node, "CareOrganizationCredential", &ra).await;
    }
    let mut orgs = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let node = &net.nodes[i];
        let did = create_did(node).await;
        let credential = issue(&net.nodes[0], json!({"issuer": ra, "type": "CareOrganizationCredential", "publish": true,
            "subject": {"id": did, "legalName": s.name, "city": s.city, "organizationType": s.kind, "ura": s.ura}})).await;
        let person = create_did(node).await;
        let professional = issue(node, json!({"issuer": did, "type": "HealthcareProfessionalCredential",
            "subject": {"id": person, "name": s.professional, "roleCode": s.role, "registerId": "19000000001", "employer": did}})).await;
        orgs.push(Org {
            node: i,
            did,
            credential,
            professional,
        });
    }
    for node in &net.nodes {
        let t0 = Instant::now();
        while node.get("/v1/directory").await.unwrap().1["organizations"]
            .as_array()
            .map_or(0, |a| a.len())
            < specs.len()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{}: directory never complete",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    World {
        net,
        orgs,
        fhir,
        ca,
    }
}

impl World {
    pub fn node(&self, org: usize) -> &Node {
        &self.net.nodes[self.orgs[org].node]
    }

    /// Registers that `org` holds `categories` on the patient; the node links its source's
    /// Patient by BSN. Returns the patient reference and the linked local id.
    pub async fn register(&self, org: usize, bsn: &str, categories: &[&str]) -> (String, String) {
        let (code, body) = self
            .node(org)
            .post(
                "/v1/localisation/register",
                &json!({"holder": self.orgs[org].did, "patient": {"value": bsn}, "categories": categories}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
        let local = body["source_patient"]
            .as_str()
            .unwrap_or_else(|| panic!("no source link: {body}"))
            .to_owned();
        (body["patient"].as_str().unwrap().to_owned(), local)
    }

    /// `org`'s professional fetches `categories` of the patient from every holder (none named:
    /// every category of the scope the holders grant).
    pub async fn fetch(
        &self,
        org: usize,
        bsn: &str,
        scope: &str,
        categories: &[&str],
        purpose: &str,
        reason: Option<&str>,
    ) -> Value {
        let o = &self.orgs[org];
        let mut body = json!({"requester": o.did, "credentials": [o.credential, o.professional],
            "patient": {"value": bsn}, "scope": scope, "purpose": purpose});
        if !categories.is_empty() {
            body["categories"] = json!(categories);
        }
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        let (code, v) = self.node(org).post("/v1/data/fetch", &body).await.unwrap();
        assert_eq!(code, 200, "{v}");
        v
    }

    /// Fetches until `done` holds for the answer (consents and registrations travel the
    /// network first).
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch_until(
        &self,
        what: &str,
        org: usize,
        bsn: &str,
        scope: &str,
        categories: &[&str],
        purpose: &str,
        reason: Option<&str>,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self
                .fetch(org, bsn, scope, categories, purpose, reason)
                .await;
            if done(&v) {
                return v;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{what}: never happened; last answer {v}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// The resources in a fetch answer.
pub fn resources(v: &Value) -> Vec<Value> {
    v["bundle"]["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"].clone())
        .collect()
}

/// `(resourceType, meta.source)` pairs of a fetch answer.
pub fn kinds(v: &Value) -> BTreeSet<(String, String)> {
    resources(v)
        .iter()
        .map(|r| {
            (
                r["resourceType"].as_str().unwrap_or_default().to_owned(),
                r["meta"]["source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

pub fn count(v: &Value, resource_type: &str, source: &str) -> usize {
    resources(v)
        .iter()
        .filter(|r| r["resourceType"] == resource_type && r["meta"]["source"] == source)
        .count()
}

/// Every resource refers to the holder's local id of the patient, never another patient.
pub fn all_about(v: &Value, locals: &[(&str, &str)]) {
    for r in resources(v) {
        let source = r["meta"]["source"].as_str().unwrap_or_default();
        let local = locals
            .iter()
            .find(|(s, _)| *s == source)
            .unwrap_or_else(|| panic!("resource from an unexpected source {source}: {r}"))
            .1;
        if r["resourceType"] == "Patient" {
            assert_eq!(r["id"], local, "{r}");
            continue;
        }
        // The patient is the subject, the patient, a coverage's beneficiary, or one of an
        // appointment's participants.
        let participants: Vec<&str> = r["participant"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["actor"]["reference"].as_str())
            .filter(|a| a.starts_with("Patient/"))
            .collect();
        let reference = r["subject"]["reference"]
            .as_str()
            .or(r["patient"]["reference"].as_str())
            .or(r["beneficiary"]["reference"].as_str())
            .or(participants.first().copied())
            .unwrap_or_default();
        assert_eq!(reference, format!("Patient/{local}"), "{r}");
        assert!(participants.len() <= 1, "{r}");
    }
}

/// The category codes of a resource's `category` (for an Observation: lab, vital signs, ...).
pub fn category_codes(r: &Value) -> Vec<String> {
    r["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .filter_map(|c| c["code"].as_str().map(str::to_owned))
        .collect()
}

/// Whether a fetch answer has exactly `n` holder nodes, all `ok`.
pub fn all_ok(v: &Value, n: usize) -> bool {
    v["sources"]
        .as_array()
        .is_some_and(|s| s.len() == n && s.iter().all(|s| s["status"] == "ok"))
}

pub fn status_of<'a>(v: &'a Value, node_did: &str) -> &'a str {
    v["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["node"] == node_did)
        .and_then(|s| s["status"].as_str())
        .unwrap_or("absent")
}

pub async fn node_did(node: &Node) -> String {
    node.status().await.unwrap()["did"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Story 2's organisations: the emergency department on the Veluwe (node 0, holding nothing
/// on the patient: its dataset is another hospital's) and Mr De Groot's GP, pharmacy and
/// hospital in Zwolle.
pub const VELUWE: [OrgSpec; 4] = [
    // The emergency department on the Veluwe holds nothing on him: its dataset is
    // another hospital's, unused here.
    OrgSpec {
        dataset: "leiden-hospital",
        name: "Ziekenhuis Veluwe SEH",
        city: "Apeldoorn",
        kind: "hospital",
        ura: "99990088",
        professional: "Dr. S. Bos (SEH-arts)",
        role: "01.010",
    },
    OrgSpec {
        dataset: "zwolle-gp",
        name: "Huisartsenpraktijk Assendorp",
        city: "Zwolle",
        kind: "gp",
        ura: "99990055",
        professional: "Dr. H. Visser",
        role: "01.015",
    },
    OrgSpec {
        dataset: "zwolle-pharmacy",
        name: "Apotheek Zwolle-Zuid",
        city: "Zwolle",
        kind: "pharmacy",
        ura: "99990066",
        professional: "K. Smit, apotheker",
        role: "17.000",
    },
    OrgSpec {
        dataset: "zwolle-hospital",
        name: "Ziekenhuis Zwolle",
        city: "Zwolle",
        kind: "hospital",
        ura: "99990077",
        professional: "Dr. R. Jansen",
        role: "01.010",
    },
];

/// Story 2's patient, Pieter de Groot.
pub const PIETER: &str = "999900171";

/// Story 2's three holders register Mr De Groot (each linked to its own source).
pub async fn register_story_2_holders(w: &World) {
    let (gp, pharmacy, hospital) = (1, 2, 3);
    w.register(gp, PIETER, &["medication", "allergies", "problems"])
        .await;
    w.register(pharmacy, PIETER, &["medication", "allergies"])
        .await;
    w.register(hospital, PIETER, &["allergies", "problems", "imaging"])
        .await;
}

/// Story 2 before the emergency: the three holders have registered Mr De Groot (each linked
/// to its own source), and he consented at his GP to sharing medication and allergies with
/// hospitals and GPs, also in emergencies.
pub async fn prepare_story_2(w: &World) {
    let gp = 1;
    register_story_2_holders(w).await;
    // Earlier, at his GP, he consented to sharing medication and allergies in emergencies.
    let (code, c) = w
        .node(gp)
        .post(
            "/v1/consent",
            &json!({"issuer": w.orgs[gp].did, "patient": {"value": PIETER}, "decision": "permit",
                    "purpose": ["emergency", "regular-care"], "dataCategories": ["medication", "allergies"],
                    "requesters": {"organizationTypes": ["hospital", "gp"]},
                    "method": "written", "registrar": "dr. Visser"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{c}");
}
