//! The policy decision point (spec: `specs/pdp.md`): Rego policies evaluated in-process
//! (regorus), with the national guide's input model and knooppunt's request and answer, so that
//! a policy enforcement point written for knooppunt, and knooppunt's own policy directories,
//! work with a knoop node unchanged. Where knooppunt asks a central Mitz the closed question,
//! the node answers it from the consents held here (`care::consent::closed_question`).
//!
//! A policy is a directory `<name>/policy.rego` (its package is `<name>`), optionally with
//! `fhir_capabilitystatement.json` (the FHIR API it guards, [`capability`]) and
//! `policy_test.rego` (its Rego tests, run by [`run_tests`]).

pub mod capability;
pub mod input;
pub mod pip;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use crate::care::consent::{closed_question, Consents, Question};
use crate::care::localisation::Localisation;
use crate::care::source::Sources;
use crate::identity::credentials::{Credentials, DirectoryEntry, Query};
use crate::identity::did_ops::DidOps;
use capability::CapabilityStatement;

/// Largest policy file read.
const MAX_POLICY_BYTES: u64 = 1024 * 1024;
/// Longest one evaluation may run: a policy that loops is stopped, and the request denied with
/// the reason, rather than holding a thread.
pub const EVALUATION_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// An engine with the evaluation time limit.
fn new_engine() -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit: EVALUATION_LIMIT,
        check_interval: std::num::NonZeroU32::MIN.saturating_add(255),
    });
    engine
}

/// One loaded policy (its Rego is in the engine).
struct Policy {
    statement: Option<CapabilityStatement>,
}

/// Why the policies could not be loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("pdp.policies {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pdp.policies {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// A reason in an answer: a code (`not_allowed`, `not_implemented`, `unexpected_input`,
/// `internal_error`, `pip_error`, `info`) and its text.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Reason {
    pub code: &'static str,
    pub description: String,
}

fn reason(code: &'static str, description: impl Into<String>) -> Reason {
    Reason {
        code,
        description: description.into(),
    }
}

/// The decision of one policy.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PolicyResult {
    pub allow: bool,
    pub reasons: Vec<Reason>,
}

impl PolicyResult {
    /// The reasons' descriptions on one line, for a refusal.
    pub fn why(&self) -> String {
        let all: Vec<&str> = self
            .reasons
            .iter()
            .map(|r| r.description.as_str())
            .collect();
        all.join("; ")
    }
}

/// The answer (knooppunt's `APIResponse`): `allow` for the enforcement point, per policy for
/// the logs; `status` 400 for a request that is not one.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub allow: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub policies: BTreeMap<String, PolicyResult>,
    #[serde(skip)]
    pub status: u16,
}

impl Decision {
    fn error(status: u16, e: impl Into<String>) -> Self {
        Decision {
            allow: false,
            error: Some(e.into()),
            policies: BTreeMap::new(),
            status,
        }
    }
}

/// The policies and what they need to decide.
pub struct Pdp {
    policies: BTreeMap<String, Policy>,
    /// An engine with every policy added, cloned for each evaluation.
    engine: regorus::Engine,
    dids: Arc<DidOps>,
    credentials: Arc<Credentials>,
    consents: Arc<Consents>,
    localisation: Arc<Localisation>,
    /// The tenants' FHIR APIs, the policy information point.
    sources: Arc<Sources>,
    /// Whether the policy information point reads the resource's content too.
    resource_content: bool,
}

/// The name a scope selects: lower case, `-` as `_` (knooppunt's normalisation).
pub use crate::care::data_sets::scope_name as policy_name;

fn read(path: &Path) -> Result<String, LoadError> {
    use std::io::Read as _;
    let err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut s = String::new();
    std::fs::File::open(path)
        .map_err(err)?
        .take(MAX_POLICY_BYTES + 1)
        .read_to_string(&mut s)
        .map_err(err)?;
    if s.len() as u64 > MAX_POLICY_BYTES {
        return Err(LoadError::Invalid {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_POLICY_BYTES} bytes"),
        });
    }
    Ok(s)
}

/// The policy directories under `dir`: `(name, directory)` for each `<name>/policy.rego`.
fn policy_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, LoadError> {
    let err = |source| LoadError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        if !path.join("policy.rego").is_file() {
            continue;
        }
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            out.push((name.to_owned(), path.clone()));
        }
    }
    out.sort();
    Ok(out)
}

fn add_policy(engine: &mut regorus::Engine, path: &Path, rego: String) -> Result<(), LoadError> {
    engine
        .add_policy(path.display().to_string(), rego)
        .map(|_| ())
        .map_err(|e| LoadError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// The package of the built-in data proxy policy (`specs/pdp.md` §6).
pub const DATA_PROXY_PACKAGE: &str = "knoop.data_proxy";

/// The package of the built-in token policy (`specs/pdp.md` §6).
pub const TOKEN_PACKAGE: &str = "knoop.token";

/// The package of the built-in data set policy (`specs/data-sets.md` §4).
pub const DATA_SET_PACKAGE: &str = "knoop.data_set";

/// The package of the built-in policy of workflow tokens (`specs/data-sets.md` §8).
pub const IMPLIED_CONSENT_PACKAGE: &str = "knoop.implied_consent";

/// The package of the built-in policy of Notified Pull notifications (`specs/data-sets.md` §8).
pub const NOTIFICATION_PACKAGE: &str = "knoop.notification";

/// What a workflow request (`specs/data-sets.md` §8) is decided by.
#[derive(Clone, Copy, Debug)]
pub enum Workflow<'a> {
    /// A read or update under the implied consents of this consent scope.
    ImpliedConsent(&'a str),
    /// A notification `Task` posted to the holder.
    Notification(&'a Value),
}

/// knoop's built-in policies: (path for messages, Rego).
const BUILTIN_POLICIES: [(&str, &str); 5] = [
    (
        "builtin/data_proxy.rego",
        include_str!("pdp/data_proxy.rego"),
    ),
    ("builtin/token.rego", include_str!("pdp/token.rego")),
    ("builtin/data_set.rego", include_str!("pdp/data_set.rego")),
    (
        "builtin/implied_consent.rego",
        include_str!("pdp/implied_consent.rego"),
    ),
    (
        "builtin/notification.rego",
        include_str!("pdp/notification.rego"),
    ),
];

/// Adds knoop's built-in policies and the data they decide with: each category's resource
/// types, and the configured token scopes (`[[policy]]`).
fn add_builtin(
    engine: &mut regorus::Engine,
    scopes: &[crate::config::Policy],
) -> Result<(), LoadError> {
    for (path, rego) in BUILTIN_POLICIES {
        add_policy(engine, Path::new(path), rego.to_owned())?;
    }
    let path = Path::new(BUILTIN_POLICIES[0].0);
    let categories: BTreeMap<&str, Vec<&str>> = knoop_vc::types::DATA_CATEGORIES
        .iter()
        .map(|c| (*c, crate::care::categories::served_types_of(c)))
        .collect();
    let scopes: BTreeMap<&str, Value> = scopes
        .iter()
        .map(|p| {
            (
                p.scope.as_str(),
                json!({"purposes": p.purposes, "roles": p.roles, "categories": p.categories,
                       "break_the_glass": p.break_the_glass}),
            )
        })
        .collect();
    let data = json!({"knoop": {"categories": categories, "scopes": scopes,
                                "data_sets": crate::care::data_sets::policy_data()}});
    let invalid = |reason: String| LoadError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let value =
        regorus::Value::from_json_str(&data.to_string()).map_err(|e| invalid(e.to_string()))?;
    engine.add_data(value).map_err(|e| invalid(e.to_string()))
}

impl Pdp {
    /// Whether a token may be granted for `scope` and `purpose` (and the professional's `role`,
    /// once known): the built-in token policy (`specs/pdp.md` §6). A refusal is the RFC 6749
    /// error and its description.
    pub fn decide_token(
        &self,
        scope: &str,
        purpose: &str,
        role: Option<&str>,
    ) -> Result<(), (String, String)> {
        let mut input = json!({"scope": scope, "purpose": purpose});
        if let Some(r) = role {
            input["role"] = json!(r);
        }
        let mut engine = self.engine.clone();
        let failed = |e: String| ("server_error".to_owned(), format!("token policy: {e}"));
        let value =
            regorus::Value::from_json_str(&input.to_string()).map_err(|e| failed(e.to_string()))?;
        engine.set_input(value);
        let results = engine
            .eval_query(format!("data.{TOKEN_PACKAGE}.errors"), false)
            .map_err(|e| failed(e.to_string()))?;
        let errors = results
            .result
            .first()
            .and_then(|r| r.expressions.first())
            .map(|e| e.value.to_json_str())
            .transpose()
            .map_err(|e| failed(e.to_string()))?
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .unwrap_or(json!([]));
        // The scope's own errors first (invalid_scope), then the role's (access_denied).
        let mut list: Vec<(String, String)> = errors
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e["error"].as_str()?.to_owned(),
                    e["description"].as_str()?.to_owned(),
                ))
            })
            .collect();
        list.sort_by_key(|(e, d)| (e != "invalid_scope", d.clone()));
        match list.into_iter().next() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Decides one request the data proxy serves (`specs/pdp.md` §6): `api` in knooppunt's
    /// request model (the token's claims as `subject`, the FHIR request, its `context`),
    /// `granted` the categories the token granted. The built-in policy decides; a policy
    /// configured under the name of the token's scope must allow too.
    pub async fn decide_proxy(&self, api: &Value, granted: &[String]) -> PolicyResult {
        let result = PolicyResult::default();
        let (api, mut input) = match self.input_of(api) {
            Ok(x) => x,
            Err(refused) => return refused,
        };
        input["context"]["granted_categories"] = json!(granted);
        // The token endpoint granted the categories under the patient's consents (the closed
        // question, answered per holder and category): what a policy reads as the consent.
        input["context"]["mitz_consent"] = json!(true);
        let mut policies = vec![(DATA_PROXY_PACKAGE.to_owned(), None)];
        let scopes = api["subject"]["scope"].as_str().unwrap_or_default();
        // A scope that names a data set allows its queries only (`specs/data-sets.md` §4).
        if let Some(d) = scopes
            .split_whitespace()
            .find_map(crate::care::data_sets::for_scope)
        {
            input["context"]["data_set"] = json!(d.name);
            policies.push((DATA_SET_PACKAGE.to_owned(), None));
        }
        policies.extend(self.scope_policies(scopes));
        self.all_allow(&input, policies, result).await
    }

    /// Decides a request of a workflow token (`specs/data-sets.md` §8): `api` in knooppunt's
    /// request model, `holder` the organisation hosted here that granted the token. The
    /// policy information point adds the holder's implied consents of the resource, or the
    /// notification `Task` is the resource's content; the built-in policy decides, and a
    /// policy configured under the scope's name must allow too.
    pub async fn decide_workflow(
        &self,
        api: &Value,
        holder: &str,
        workflow: Workflow<'_>,
    ) -> PolicyResult {
        let mut result = PolicyResult::default();
        let (api, mut input) = match self.input_of(api) {
            Ok(x) => x,
            Err(refused) => return refused,
        };
        let entry = self.credentials.organisation(holder);
        input["context"]["data_holder_organization_id"] =
            json!(entry.as_ref().map(|e| e.ura.clone()).unwrap_or_default());
        let package = match workflow {
            Workflow::ImpliedConsent(scope) => {
                input["context"]["implied_consent"] = json!(scope);
                let mut pip = self.ask_source(&mut input, entry.as_ref()).await;
                result.reasons.append(&mut pip);
                IMPLIED_CONSENT_PACKAGE
            }
            Workflow::Notification(task) => {
                input["resource"]["content"] = task.clone();
                NOTIFICATION_PACKAGE
            }
        };
        let mut policies = vec![(package.to_owned(), None)];
        policies.extend(self.scope_policies(api["subject"]["scope"].as_str().unwrap_or_default()));
        self.all_allow(&input, policies, result).await
    }

    /// Evaluates `policies` for `input` in order while they allow: `result` allows when all
    /// do; the first denial adds its reasons and stops.
    async fn all_allow(
        &self,
        input: &Value,
        policies: Vec<(String, Option<&Policy>)>,
        mut result: PolicyResult,
    ) -> PolicyResult {
        for (name, policy) in policies {
            let mut input = input.clone();
            if let Some(p) = policy {
                self.check_capability(p, &mut input, &mut result.reasons);
            }
            match self.evaluate(&name, input).await {
                Ok((true, _)) => result.allow = true,
                Ok((false, mut reasons)) => {
                    result.allow = false;
                    result.reasons.append(&mut reasons);
                    result
                        .reasons
                        .push(reason("info", format!("denied by {name}")));
                    return result;
                }
                Err(e) => {
                    tracing::warn!(policy = %name, error = %e, "policy evaluation failed");
                    result.allow = false;
                    result.reasons.push(reason(
                        "internal_error",
                        format!("failed to evaluate rego policy {name}: {e}"),
                    ));
                    return result;
                }
            }
        }
        result
    }

    /// The request with the requester as the directory knows it, and its policy input; or the
    /// denial of an input that cannot be read.
    fn input_of(&self, api: &Value) -> Result<(Value, Value), PolicyResult> {
        let api = self.with_requester(api);
        match input::policy_input(&api) {
            Ok(input) => Ok((api, input)),
            Err(e) => Err(PolicyResult {
                allow: false,
                reasons: vec![reason("unexpected_input", format!("invalid request: {e}"))],
            }),
        }
    }

    /// The configured policies the (space-separated) `scopes` name.
    fn scope_policies(&self, scopes: &str) -> Vec<(String, Option<&Policy>)> {
        scopes
            .split_whitespace()
            .map(policy_name)
            .filter_map(|name| {
                let p = self.policies.get(&name)?;
                Some((name, Some(p)))
            })
            .collect()
    }

    /// `api` with the requesting organisation (`subject.organization_did`) as the directory
    /// knows it: its URA, name and type.
    fn with_requester(&self, api: &Value) -> Value {
        let mut api = api.clone();
        let did = api["subject"]["organization_did"]
            .as_str()
            .map(str::to_owned);
        if let Some(e) = did.and_then(|d| self.credentials.organisation(&d)) {
            api["subject"]["organization_ura"] = json!(e.ura);
            api["subject"]["organization_name"] = json!(e.legal_name);
            api["subject"]["organization_facility_type"] = json!(e.organization_type);
        }
        api
    }

    /// Loads the policies under `dir` (none without one), each compiled now so that a broken
    /// policy stops the start with its file and line.
    pub fn load(
        dir: Option<&Path>,
        scopes: &[crate::config::Policy],
        dids: Arc<DidOps>,
        credentials: Arc<Credentials>,
        consents: Arc<Consents>,
        localisation: Arc<Localisation>,
        sources: Arc<Sources>,
    ) -> Result<Self, LoadError> {
        let mut policies = BTreeMap::new();
        let mut engine = new_engine();
        add_builtin(&mut engine, scopes)?;
        if let Some(dir) = dir {
            for (name, path) in policy_dirs(dir)? {
                let file = path.join("policy.rego");
                let rego = read(&file)?;
                add_policy(&mut engine, &file, rego)?;
                let cs = path.join("fhir_capabilitystatement.json");
                let statement = if cs.is_file() {
                    Some(CapabilityStatement::parse(&read(&cs)?).map_err(|reason| {
                        LoadError::Invalid {
                            path: cs.clone(),
                            reason,
                        }
                    })?)
                } else {
                    None
                };
                policies.insert(name, Policy { statement });
            }
        }
        Ok(Pdp {
            policies,
            engine,
            dids,
            credentials,
            consents,
            localisation,
            sources,
            resource_content: false,
        })
    }

    /// With `on`, the policy information point reads the resource a request is about into
    /// `input.resource.content` (`specs/pdp.md` §6).
    pub fn with_resource_content(mut self, on: bool) -> Self {
        self.resource_content = on;
        self
    }

    /// The names of the policies loaded.
    pub fn names(&self) -> Vec<String> {
        self.policies.keys().cloned().collect()
    }

    /// Decides a request (knooppunt's `POST /pdp` body, `{"input": {...}}`): the policies its
    /// scopes name, in name order, until one allows.
    pub async fn decide(&self, body: &Value) -> Decision {
        let Some(api) = body.get("input").filter(|i| i.is_object()) else {
            return Decision::error(400, "the body must be {\"input\": {...}}");
        };
        let mut names: Vec<String> = api["subject"]["scope"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .map(policy_name)
            .collect();
        names.sort();
        names.dedup();
        if let Some(n) = names
            .iter()
            .find(|n| n.starts_with("test_") || *n == "system")
        {
            return Decision::error(400, format!("policy not allowed: {n}"));
        }
        if names.is_empty() {
            return Decision::error(200, "missing required value, no policy defined");
        }
        let mut template = match input::policy_input(api) {
            Ok(i) => i,
            Err(e) => return Decision::error(200, format!("invalid request: {e}")),
        };
        let holder = self.holder(&template);
        let mut shared_reasons = self.ask_source(&mut template, holder.as_ref()).await;
        shared_reasons.extend(
            self.answer_closed_question(&mut template, holder.as_ref())
                .await,
        );
        let mut decision = Decision {
            allow: false,
            error: None,
            policies: BTreeMap::new(),
            status: 200,
        };
        for name in names {
            let mut result = PolicyResult {
                allow: false,
                reasons: shared_reasons.clone(),
            };
            let Some(policy) = self.policies.get(&name) else {
                result
                    .reasons
                    .push(reason("not_implemented", format!("unknown policy: {name}")));
                decision.policies.insert(name, result);
                continue;
            };
            let mut input = template.clone();
            self.check_capability(policy, &mut input, &mut result.reasons);
            match self.evaluate(&name, input).await {
                Ok((allow, mut reasons)) => {
                    result.allow = allow;
                    result.reasons.append(&mut reasons);
                }
                Err(e) => {
                    tracing::warn!(policy = %name, error = %e, "policy evaluation failed");
                    result.reasons.push(reason(
                        "internal_error",
                        format!("failed to evaluate rego policy: {e}"),
                    ));
                }
            }
            let allow = result.allow;
            decision.policies.insert(name, result);
            if allow {
                decision.allow = true;
                break;
            }
        }
        decision
    }

    /// Sets `action.fhir_rest.capability_checked` by the policy's CapabilityStatement.
    fn check_capability(&self, policy: &Policy, input: &mut Value, reasons: &mut Vec<Reason>) {
        input["action"]["fhir_rest"]["capability_checked"] = json!(false);
        if input["resource"]["type"].is_null() {
            return;
        }
        let Some(statement) = &policy.statement else {
            reasons.push(reason(
                "info",
                "no FHIR CapabilityStatement is configured for this policy",
            ));
            return;
        };
        match statement.check(input) {
            Ok(()) => input["action"]["fhir_rest"]["capability_checked"] = json!(true),
            Err(n) => reasons.push(reason(n.code, n.description)),
        }
    }

    /// Evaluates package `name` for `input`: its `allow`, and when it denies, the other rules'
    /// values as an informational reason.
    async fn evaluate(&self, name: &str, input: Value) -> Result<(bool, Vec<Reason>), String> {
        let mut engine = self.engine.clone();
        let query = format!("data.{name}");
        let document = tokio::task::spawn_blocking(move || {
            let input =
                regorus::Value::from_json_str(&input.to_string()).map_err(|e| e.to_string())?;
            engine.set_input(input);
            let results = engine.eval_query(query, false).map_err(|e| e.to_string())?;
            let value = results
                .result
                .first()
                .and_then(|r| r.expressions.first())
                .map(|e| e.value.clone())
                .ok_or_else(|| "the package is undefined".to_owned())?;
            let text = value.to_json_str().map_err(|e| e.to_string())?;
            serde_json::from_str::<Value>(&text).map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| "evaluation task".to_owned())??;
        let allow = match document.get("allow") {
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(format!("allow is not a boolean but {v}")),
            None => return Err("the package has no allow rule".into()),
        };
        let mut reasons = Vec::new();
        if !allow {
            reasons.push(reason("not_allowed", "access denied by policy"));
            let info: Vec<String> = document
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "allow")
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            if !info.is_empty() {
                reasons.push(reason("info", info.join("; ")));
            }
        }
        Ok((allow, reasons))
    }

    /// The data holder of the input: the organisation hosted here with the URA
    /// `context.data_holder_organization_id` in the directory.
    fn holder(&self, input: &Value) -> Option<DirectoryEntry> {
        let ura = input["context"]["data_holder_organization_id"].as_str()?;
        if ura.is_empty() {
            return None;
        }
        let hosted = self.dids.hosted().unwrap_or_default();
        self.credentials.hosted_by_ura(ura, &hosted)
    }

    /// Asks the data holder's source system, the policy information point (§6), for what a FHIR
    /// request leaves out: the BSN of a patient named by id, and the implied consents of the
    /// resource it is about (`resource.consents`).
    async fn ask_source(&self, input: &mut Value, holder: Option<&DirectoryEntry>) -> Vec<Reason> {
        if input["action"]["connection_type_code"] != input::FHIR_REST {
            return Vec::new();
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let patient_id = text(&input["context"]["patient_id"]);
        let needs_bsn = !patient_id.is_empty() && input["context"]["patient_bsn"] == "";
        let resource = match (
            input["resource"]["type"].as_str(),
            input["resource"]["id"].as_str(),
        ) {
            (Some(t), Some(id)) if !id.is_empty() => Some(format!("{t}/{id}")),
            _ => None,
        };
        if !needs_bsn && resource.is_none() {
            return Vec::new();
        }
        let pip_error = |d: String| vec![reason("pip_error", d)];
        let Some(holder) = holder else {
            return pip_error(
                "no policy information point: the data holder is not an organisation hosted \
                 on this node"
                    .into(),
            );
        };
        if !self.sources.configured(&holder.did) {
            return pip_error(
                "no policy information point: no source system is configured for the data \
                 holder"
                    .into(),
            );
        }
        let mut reasons = Vec::new();
        if needs_bsn {
            match self
                .sources
                .patient_identifiers(&holder.did, &patient_id)
                .await
                .map_err(|e| e.to_string())
                .and_then(|ids| pip::bsn_of(&ids))
            {
                Ok(bsn) => input["context"]["patient_bsn"] = json!(bsn),
                Err(e) => reasons.push(reason(
                    "pip_error",
                    format!("the patient's BSN from the source system: {e}"),
                )),
            }
        }
        if let (true, Some(t), Some(id)) = (
            self.resource_content && resource.is_some(),
            input["resource"]["type"].as_str().map(str::to_owned),
            input["resource"]["id"].as_str().map(str::to_owned),
        ) {
            match self.sources.read(&holder.did, &t, &id).await {
                Ok(Some(r)) => input["resource"]["content"] = r,
                Ok(None) => {}
                Err(e) => reasons.push(reason(
                    "pip_error",
                    format!("the content of {t}/{id} from the source system: {e}"),
                )),
            }
        }
        if let Some(reference) = resource {
            match self.sources.consents_about(&holder.did, &reference).await {
                Ok(consents) => {
                    let requester = text(&input["subject"]["organization"]["ura"]);
                    input["resource"]["consents"] = json!(pip::consent_scopes(
                        &consents,
                        &holder.ura,
                        &requester,
                        &reference
                    ));
                }
                Err(e) => reasons.push(reason(
                    "pip_error",
                    format!("the consents of {reference} from the source system: {e}"),
                )),
            }
        }
        reasons
    }

    /// Answers the closed question for the input (`context.mitz_consent`) from the consents
    /// held here, when the input names a patient by BSN: may the requesting organisation (by
    /// URA) get the data holder's (a tenant hosted here, by URA) data for the purpose.
    async fn answer_closed_question(
        &self,
        input: &mut Value,
        holder: Option<&DirectoryEntry>,
    ) -> Vec<Reason> {
        input["context"]["mitz_consent"] = json!(false);
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let bsn = text(&input["context"]["patient_bsn"]);
        if bsn.is_empty() {
            return Vec::new();
        }
        let holder_ura = text(&input["context"]["data_holder_organization_id"]);
        let requester_ura = text(&input["subject"]["organization"]["ura"]);
        let unexpected = |d: String| vec![reason("unexpected_input", d)];
        if holder_ura.is_empty() || requester_ura.is_empty() {
            return unexpected(
                "could not answer the closed question: the data holder's and the requesting \
                 organisation's URA are both needed"
                    .into(),
            );
        }
        let purpose = match input["context"]["purpose_of_use"]
            .as_str()
            .unwrap_or("TREAT")
        {
            "" | "TREAT" => "regular-care",
            "ETREAT" => "emergency",
            p => return unexpected(format!("purpose_of_use {p}: TREAT or ETREAT")),
        };
        let Some(holder) = holder else {
            return unexpected(format!(
                "could not answer the closed question: no organisation with URA {holder_ura} \
                 is hosted on this node"
            ));
        };
        let requester = self
            .credentials
            .directory(&Query {
                ura: Some(requester_ura.clone()),
                ..Default::default()
            })
            .into_iter()
            .next();
        let Some(requester) = requester else {
            return vec![reason(
                "info",
                format!(
                    "closed question: no: URA {requester_ura} has no trusted organisation \
                     credential on the network"
                ),
            )];
        };
        let keys = match self
            .localisation
            .derive_blocking(input::BSN_SYSTEM.to_owned(), bsn)
            .await
        {
            Ok(k) => k,
            Err(e) => {
                return vec![reason(
                    "internal_error",
                    format!("could not answer the closed question: {e}"),
                )]
            }
        };
        let consents = self.consents.applicable(&keys.reference());
        let opt_out = self.localisation.opt_out();
        let answer = closed_question(
            opt_out,
            &consents,
            &Question {
                holder: &holder.did,
                holder_type: Some(&holder.organization_type),
                requester: &requester.did,
                requester_type: Some(&requester.organization_type),
                category: "*",
                purpose,
                now_ms: knoop_gossip::tx::now_ms() as i64,
            },
        );
        input["context"]["mitz_consent"] = json!(answer);
        vec![reason(
            "info",
            format!(
                "closed question answered from the consents on the network ({} mode): {}",
                if opt_out { "opt-out" } else { "opt-in" },
                if answer { "yes" } else { "no" }
            ),
        )]
    }
}

/// The result of one Rego test.
#[derive(Clone, Debug, Serialize)]
pub struct TestResult {
    pub policy: String,
    pub test: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The package a Rego file declares.
fn package_of(rego: &str) -> Option<String> {
    rego.lines().find_map(|l| {
        l.trim()
            .strip_prefix("package ")
            .map(|p| p.trim().to_owned())
    })
}

/// The test rules a Rego file defines (`test_...` at the start of a line).
fn tests_of(rego: &str) -> Vec<String> {
    let mut out: Vec<String> = rego
        .lines()
        .filter_map(|l| {
            let name: String = l
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            name.starts_with("test_").then_some(name)
        })
        .collect();
    out.dedup();
    out
}

/// Runs the Rego tests of every policy under `dir` (`<name>/policy_test.rego` beside
/// `<name>/policy.rego`), as `opa test` does: each `test_` rule must be true.
pub fn run_tests(dir: &Path) -> Result<Vec<TestResult>, LoadError> {
    let mut results = Vec::new();
    for (name, path) in policy_dirs(dir)? {
        let test_file = path.join("policy_test.rego");
        if !test_file.is_file() {
            continue;
        }
        let mut engine = new_engine();
        let policy_file = path.join("policy.rego");
        add_policy(&mut engine, &policy_file, read(&policy_file)?)?;
        let tests = read(&test_file)?;
        add_policy(&mut engine, &test_file, tests.clone())?;
        let package = package_of(&tests).ok_or_else(|| LoadError::Invalid {
            path: test_file.clone(),
            reason: "no package".into(),
        })?;
        for test in tests_of(&tests) {
            let outcome = engine
                .clone()
                .eval_query(format!("data.{package}.{test}"), false);
            let (passed, error) = match outcome {
                Ok(r) => {
                    let value = r
                        .result
                        .first()
                        .and_then(|r| r.expressions.first())
                        .map(|e| e.value.clone());
                    (value == Some(regorus::Value::from(true)), None)
                }
                Err(e) => (false, Some(e.to_string())),
            };
            results.push(TestResult {
                policy: name.clone(),
                test,
                passed,
                error,
            });
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pdp/data_proxy_test.rego`: the built-in policy's own Rego tests, on the engine the node
    /// decides with (the built-in policy and its data loaded as at start).
    #[test]
    fn the_builtin_policy_tests_pass() {
        let mut engine = new_engine();
        add_builtin(&mut engine, &crate::care::tokens::default_policies())
            .expect("the built-in policies load");
        for (package, tests, n) in [
            (
                "knoop.data_proxy_test",
                include_str!("pdp/data_proxy_test.rego"),
                8,
            ),
            ("knoop.token_test", include_str!("pdp/token_test.rego"), 6),
            (
                "knoop.data_set_test",
                include_str!("pdp/data_set_test.rego"),
                6,
            ),
            (
                "knoop.implied_consent_test",
                include_str!("pdp/implied_consent_test.rego"),
                4,
            ),
            (
                "knoop.notification_test",
                include_str!("pdp/notification_test.rego"),
                6,
            ),
        ] {
            add_policy(&mut engine, Path::new(package), tests.to_owned()).unwrap();
            let names = tests_of(tests);
            assert_eq!(names.len(), n, "{names:?}");
            for t in names {
                let r = engine
                    .clone()
                    .eval_query(format!("data.{package}.{t}"), false)
                    .unwrap_or_else(|e| panic!("{t}: {e}"));
                let value = r
                    .result
                    .first()
                    .and_then(|r| r.expressions.first())
                    .map(|e| e.value.clone());
                assert_eq!(value, Some(regorus::Value::from(true)), "{package}.{t}");
            }
        }
    }

    #[test]
    fn scopes_select_policies_by_knooppunts_normalisation() {
        assert_eq!(policy_name("BgZ"), "bgz");
        assert_eq!(policy_name("eoverdracht-sender"), "eoverdracht_sender");
    }

    #[test]
    fn test_rules_and_packages_are_found() {
        let rego = "package bgz_test\n\nimport data.bgz\n\ntest_a if {\n  true\n}\n\
                    # test_commented\ntest_b if { false }\nnot_a_test := 1\n";
        assert_eq!(package_of(rego).as_deref(), Some("bgz_test"));
        assert_eq!(
            tests_of(rego),
            vec!["test_a".to_owned(), "test_b".to_owned()]
        );
    }
}
