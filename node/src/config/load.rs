//! Loading the configuration in layers (embedded defaults, a TOML file, `KNOOP_*` environment
//! variables, command-line flags) and validating it, with errors that name the field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use libp2p::Multiaddr;

use crate::config::settings::*;

/// A configuration value is wrong; `field` is its dotted path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Load(String),
    #[error("config field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

/// `[[rpc.clients]]`: named once each, a SHA-256 each (no two clients one token), and a
/// scope: tenants given as DIDs, or admin.
fn validate_clients_of(clients: &[ApiClient]) -> Result<(), ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    let mut hashes = std::collections::BTreeSet::new();
    for (i, c) in clients.iter().enumerate() {
        let field = |f: &str| format!("rpc.clients[{i}].{f}");
        if c.name.trim().is_empty() || !names.insert(c.name.as_str()) {
            return Err(invalid(&field("name"), "a name given once"));
        }
        let hex_ok =
            c.token_sha256.len() == 64 && c.token_sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex_ok {
            return Err(invalid(
                &field("token_sha256"),
                "64 hex digits: the SHA-256 of the client's token (knoop api-client makes both)",
            ));
        }
        if !hashes.insert(c.token_sha256.to_ascii_lowercase()) {
            return Err(invalid(
                &field("token_sha256"),
                "another client has this token",
            ));
        }
        if let Some(t) = c.tenants.iter().find(|t| !t.starts_with("did:")) {
            return Err(invalid(&field("tenants"), format!("{t:?} is not a DID")));
        }
        if c.tenants.is_empty() && !c.admin {
            return Err(invalid(
                &field("tenants"),
                "name the tenants (DIDs) it may act as, or set admin = true",
            ));
        }
    }
    Ok(())
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The config a figment describes, or the field at fault.
fn extract(fig: Figment) -> Result<Config, ConfigError> {
    fig.extract().map_err(|e| {
        let field = e.path.join(".");
        let msg = e.kind.to_string();
        if field.is_empty() {
            ConfigError::Load(msg)
        } else {
            ConfigError::Invalid { field, reason: msg }
        }
    })
}

impl Config {
    /// Loads defaults, then `file` (if given; it must exist), then the environment, then
    /// `overrides` (already-parsed CLI flags).
    pub fn load(
        file: Option<&std::path::Path>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file(f));
        }
        // Only `KNOOP_DATA_DIR` and `KNOOP_<SECTION>__<KEY>` configure the node; other KNOOP_*
        // variables (KNOOP_LOG, KNOOP_RPC_URL, ...) belong to the CLI.
        fig = fig.merge(
            Env::prefixed("KNOOP_")
                .filter(|k| {
                    k.as_str().contains("__")
                        || k.as_str().eq_ignore_ascii_case("data_dir")
                        || k.as_str().eq_ignore_ascii_case("reserved_disk_mib")
                })
                .split("__"),
        );
        let mut cfg = extract(fig)?;
        overrides.apply(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a config file's text over the defaults (no environment), and checks it as
    /// [`Config::load`] does: what `knoop run --config` makes of that file.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let fig = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text));
        let cfg = extract(fig)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value and names the field at fault.
    /// The public API and source settings.
    fn validate_public(&self) -> Result<(), ConfigError> {
        let p = &self.public;
        if !p.listen.is_empty() {
            let addr: SocketAddr = p
                .listen
                .parse()
                .map_err(|e| invalid("public.listen", format!("not a socket address: {e}")))?;
            let tls = match (&p.tls_cert, &p.tls_key) {
                (Some(_), Some(_)) => true,
                (None, None) => false,
                (Some(_), None) => {
                    return Err(invalid("public.tls_key", "required with public.tls_cert"))
                }
                (None, Some(_)) => {
                    return Err(invalid("public.tls_cert", "required with public.tls_key"))
                }
            };
            if !tls && p.client_ca_file.is_some() {
                return Err(invalid(
                    "public.client_ca_file",
                    "mutual TLS needs public.tls_cert and public.tls_key",
                ));
            }
            if !tls && !addr.ip().is_loopback() {
                return Err(invalid(
                    "public.tls_cert",
                    "a certificate is required when public.listen is not loopback",
                ));
            }
            if addr.ip().is_unspecified() && p.url.is_none() {
                return Err(invalid(
                    "public.url",
                    "required when public.listen is an unspecified address",
                ));
            }
        }
        if let Some(u) = &p.url {
            let parsed =
                reqwest::Url::parse(u).map_err(|e| invalid("public.url", format!("{u:?}: {e}")))?;
            if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
                return Err(invalid("public.url", "must be an http(s) URL with a host"));
            }
        }
        if p.timeout < Duration::from_millis(100) {
            return Err(invalid("public.timeout", "must be at least 100ms"));
        }
        let fhir_url = |field: &str, u: &str| -> Result<(), ConfigError> {
            let parsed =
                reqwest::Url::parse(u).map_err(|e| invalid(field, format!("{u:?}: {e}")))?;
            if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
                return Err(invalid(field, "must be an http(s) URL with a host"));
            }
            Ok(())
        };
        if let Some(u) = &self.source.fhir {
            fhir_url("source.fhir", u)?;
        }
        for (did, u) in &self.source.tenants {
            knoop_did::url::Did::parse(did)
                .map_err(|e| invalid(&format!("source.tenants.{did}"), e.to_string()))?;
            fhir_url(&format!("source.tenants.{did}"), u)?;
        }
        if self.source.timeout < Duration::from_millis(100) {
            return Err(invalid("source.timeout", "must be at least 100ms"));
        }
        let life = self.tokens.lifetime;
        if life < Duration::from_secs(1) || life > Duration::from_secs(3600) {
            return Err(invalid("tokens.lifetime", "must be between 1s and 1h"));
        }
        Ok(())
    }

    /// The patient service role (`specs/patient-view.md` §6).
    fn validate_patient_service(&self) -> Result<(), ConfigError> {
        let p = &self.patient_service;
        let Some(issuer) = &p.issuer else {
            return Ok(());
        };
        let u = url::Url::parse(issuer)
            .map_err(|e| invalid("patient_service.issuer", format!("{issuer:?}: {e}")))?;
        let loopback = match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            None => false,
        };
        if !(u.scheme() == "https" || (u.scheme() == "http" && loopback)) {
            return Err(invalid(
                "patient_service.issuer",
                "must be an https URL (http only on loopback)",
            ));
        }
        if p.client_id.is_empty() {
            return Err(invalid("patient_service.client_id", "must not be empty"));
        }
        if p.client_secret.is_none() && p.client_secret_file.is_none() {
            return Err(invalid(
                "patient_service.client_secret",
                "client_secret or client_secret_file is required",
            ));
        }
        if !p.scope.split(' ').any(|s| s == "openid") {
            return Err(invalid("patient_service.scope", "must include openid"));
        }
        if p.bsn_claim.is_empty() {
            return Err(invalid("patient_service.bsn_claim", "must not be empty"));
        }
        if self.public.listen.is_empty() {
            return Err(invalid(
                "public.listen",
                "the patient service is served on the public API",
            ));
        }
        if let Some(d) = &p.organisation {
            knoop_did::url::Did::parse(d)
                .map_err(|e| invalid("patient_service.organisation", e.to_string()))?;
        }
        Ok(())
    }

    fn validate_clients(&self) -> Result<(), ConfigError> {
        validate_clients_of(&self.rpc.clients)
    }

    fn validate_consent(&self) -> Result<(), ConfigError> {
        let b = self.localisation.batch_interval;
        if b < Duration::from_millis(10) || b > Duration::from_secs(60) {
            return Err(invalid(
                "localisation.batch_interval",
                "must be between 10ms and 60s",
            ));
        }
        if let Some(e) = &self.consent.notify_endpoint {
            if !crate::https::is_callback_url(e) {
                return Err(invalid(
                    "consent.notify_endpoint",
                    "an https:// URL (http:// only on loopback)",
                ));
            }
        }
        Ok(())
    }

    fn validate_mcsd(&self) -> Result<(), ConfigError> {
        match (&self.mcsd.tls_cert, &self.mcsd.tls_key) {
            (Some(_), None) => return Err(invalid("mcsd.tls_key", "required with mcsd.tls_cert")),
            (None, Some(_)) => return Err(invalid("mcsd.tls_cert", "required with mcsd.tls_key")),
            _ => {}
        }
        if self.mcsd.bridge && self.mcsd.roots.is_empty() {
            return Err(invalid(
                "mcsd.bridge",
                "a bridge publishes what its update client reads: give mcsd.roots",
            ));
        }
        if let Some(d) = self
            .mcsd
            .trusted_bridges
            .iter()
            .find(|d| !d.starts_with("did:"))
        {
            return Err(invalid("mcsd.trusted_bridges", format!("{d} is not a DID")));
        }
        for root in &self.mcsd.roots {
            let ok = url::Url::parse(root).is_ok_and(|u| u.scheme() == "https" && u.has_host());
            if !ok {
                return Err(invalid(
                    "mcsd.roots",
                    format!("{root} is not an https:// FHIR base URL"),
                ));
            }
        }
        Ok(())
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let s = &self.store;
        if !(1..=64).contains(&s.postgres_connections) {
            return Err(invalid(
                "store.postgres_connections",
                "must be between 1 and 64",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&s.lease) {
            return Err(invalid("store.lease", "must be between 1s and 60s"));
        }
        if let Some(conn) = &s.postgres {
            // The parse error names the bad part, never the password.
            if let Err(e) = conn.parse::<postgres::Config>() {
                return Err(invalid(
                    "store.postgres",
                    format!("not a PostgreSQL connection string: {e}"),
                ));
            }
        } else if s.postgres_password_file.is_some() {
            return Err(invalid(
                "store.postgres_password_file",
                "is set but store.postgres is not",
            ));
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_mcsd()?;
        self.validate_store()?;
        if let Some(e) = &self.log.otlp_endpoint {
            let ok = url::Url::parse(e)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(invalid(
                    "log.otlp_endpoint",
                    format!("{e:?} is not an http(s) URL"),
                ));
            }
        }
        self.validate_consent()?;
        self.validate_patient_service()?;
        let rpc: SocketAddr = self
            .rpc
            .listen
            .parse()
            .map_err(|e| invalid("rpc.listen", format!("not a socket address: {e}")))?;
        self.validate_clients()?;
        if !rpc.ip().is_loopback() {
            let short = self.rpc.token.as_deref().is_some_and(|t| t.len() < 16);
            if short || (self.rpc.token.is_none() && self.rpc.clients.is_empty()) {
                return Err(invalid(
                    "rpc.token",
                    "a token of at least 16 characters (or rpc.clients) is required when rpc.listen is not loopback",
                ));
            }
        }
        if self.p2p.listen.is_empty() {
            return Err(invalid(
                "p2p.listen",
                "at least one listen address is required",
            ));
        }
        for (i, a) in self.p2p.listen.iter().enumerate() {
            a.parse::<Multiaddr>()
                .map_err(|e| invalid(&format!("p2p.listen[{i}]"), format!("{a:?}: {e}")))?;
        }
        for (i, a) in self.p2p.bootstrap.iter().enumerate() {
            a.parse::<Multiaddr>()
                .map_err(|e| invalid(&format!("p2p.bootstrap[{i}]"), format!("{a:?}: {e}")))?;
        }
        if self.p2p.max_peers == 0 {
            return Err(invalid("p2p.max_peers", "must be at least 1"));
        }
        if !self.p2p.membership_issuers.is_empty() && self.p2p.membership_credential.is_none() {
            return Err(invalid(
                "p2p.membership_credential",
                "required with p2p.membership_issuers (a members-only network)",
            ));
        }
        if let Some(bad) = self
            .p2p
            .membership_issuers
            .iter()
            .find(|d| knoop_did::url::Did::parse(d).is_err())
        {
            return Err(invalid(
                "p2p.membership_issuers",
                format!("{bad:?} is not a DID"),
            ));
        }
        if self.p2p.membership_reverify < Duration::from_secs(1) {
            return Err(invalid("p2p.membership_reverify", "at least 1s"));
        }
        if self.p2p.target_peers > self.p2p.max_peers {
            return Err(invalid("p2p.target_peers", "must not exceed p2p.max_peers"));
        }
        if self.p2p.sync_interval < Duration::from_millis(100) {
            return Err(invalid("p2p.sync_interval", "must be at least 100ms"));
        }
        if self.p2p.sync_fanout == 0 {
            return Err(invalid("p2p.sync_fanout", "must be at least 1"));
        }
        if self.p2p.peer_request_rate <= 0.0 || self.p2p.peer_push_rate <= 0.0 {
            return Err(invalid("p2p.peer_request_rate", "rates must be positive"));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be \"text\" or \"json\""));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", e.to_string()))?;
        let is_key = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some(k) = &self.keys.master_key {
            if !is_key(k) {
                return Err(invalid(
                    "keys.master_key",
                    "must be 64 hex digits (32 bytes)",
                ));
            }
        }
        for (i, k) in self.keys.previous_master_keys.iter().enumerate() {
            if !is_key(k) {
                return Err(invalid(
                    &format!("keys.previous_master_keys[{i}]"),
                    "must be 64 hex digits (32 bytes)",
                ));
            }
        }
        if self.keys.master_key.is_some() && self.keys.master_key_file.is_some() {
            return Err(invalid(
                "keys.master_key_file",
                "set either keys.master_key or keys.master_key_file, not both",
            ));
        }
        for (field, file) in [
            ("did.web_ca_file", &self.did.web_ca_file),
            ("status_list.ca_file", &self.status_list.ca_file),
            ("public.tls_cert", &self.public.tls_cert),
            ("public.tls_key", &self.public.tls_key),
            ("public.ca_file", &self.public.ca_file),
            ("public.client_ca_file", &self.public.client_ca_file),
            ("source.ca_file", &self.source.ca_file),
        ] {
            if let Some(f) = file {
                if !f.is_file() {
                    return Err(invalid(
                        field,
                        format!("{} is not a readable file", f.display()),
                    ));
                }
            }
        }
        if self.network.id.is_empty()
            || self.network.id.len() > 64
            || !self.network.id.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(invalid("network.id", "1..64 printable ASCII characters"));
        }
        if !matches!(self.consent.mode.as_str(), "opt-in" | "opt-out") {
            return Err(invalid("consent.mode", "must be \"opt-in\" or \"opt-out\""));
        }
        if let Some(p) = &self.localisation.pepper {
            if p.len() != 64 || hex::decode(p).is_err() {
                return Err(invalid(
                    "localisation.pepper",
                    "must be 64 hex digits (32 bytes)",
                ));
            }
        }
        if self.localisation.pepper.is_some() && self.localisation.pepper_file.is_some() {
            return Err(invalid(
                "localisation.pepper_file",
                "set either localisation.pepper or localisation.pepper_file, not both",
            ));
        }
        if self.localisation.argon2_m_kib < 8 * self.localisation.argon2_p.max(1)
            || self.localisation.argon2_t == 0
            || self.localisation.argon2_p == 0
        {
            return Err(invalid(
                "localisation.argon2_m_kib",
                "Argon2id needs t >= 1, p >= 1 and m_kib >= 8 * p",
            ));
        }
        for (i, p) in self.policy.iter().enumerate() {
            let field = |f: &str| format!("policy[{i}].{f}");
            if p.scope.is_empty() {
                return Err(invalid(&field("scope"), "required"));
            }
            if let Some(c) = p
                .categories
                .iter()
                .find(|c| !knoop_vc::types::DATA_CATEGORIES.contains(&c.as_str()))
            {
                return Err(invalid(
                    &field("categories"),
                    format!("unknown category {c}"),
                ));
            }
            if let Some(u) = p
                .purposes
                .iter()
                .find(|u| !knoop_vc::types::PURPOSES.contains(&u.as_str()))
            {
                return Err(invalid(&field("purposes"), format!("unknown purpose {u}")));
            }
            if p.implied_consent.is_some() && p.notification {
                return Err(invalid(
                    &field("notification"),
                    "a scope reaches implied consents or notifications, not both",
                ));
            }
            if let Some(c) = &p.implied_consent {
                if c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid(
                        &field("implied_consent"),
                        "a consent scope code (1..64 printable characters)",
                    ));
                }
            }
            if !p.is_about_a_patient() && (!p.categories.is_empty() || p.break_the_glass) {
                return Err(invalid(
                    &field("categories"),
                    "a scope that is not about a patient has no categories and no break the glass",
                ));
            }
            if let Some(path) = &p.presentation_definition {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        &field("presentation_definition"),
                        format!("{}: {e}", path.display()),
                    )
                })?;
                let def: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    invalid(&field("presentation_definition"), format!("not JSON: {e}"))
                })?;
                knoop_vc::exchange::check_definition(&def)
                    .map_err(|e| invalid(&field("presentation_definition"), e.to_string()))?;
            }
        }
        self.validate_public()?;
        if self.status_list.timeout < Duration::from_millis(100) {
            return Err(invalid("status_list.timeout", "must be at least 100ms"));
        }
        for (t, list) in &self.trust.types {
            for (i, d) in list.iter().enumerate() {
                knoop_did::url::Did::parse(d)
                    .map_err(|e| invalid(&format!("trust.types.{t}[{i}]"), e.to_string()))?;
            }
        }
        for (field, list) in [
            (
                "trust.care_organization_issuers",
                &self.trust.care_organization_issuers,
            ),
            (
                "trust.healthcare_professional_issuers",
                &self.trust.healthcare_professional_issuers,
            ),
        ] {
            for (i, d) in list.iter().enumerate() {
                knoop_did::url::Did::parse(d)
                    .map_err(|e| invalid(&format!("{field}[{i}]"), e.to_string()))?;
            }
        }
        for (i, u) in self.trust.dezi_key_sets.iter().enumerate() {
            let ok = url::Url::parse(u).is_ok_and(|u| u.scheme() == "https" && u.has_host());
            if !ok {
                return Err(invalid(
                    &format!("trust.dezi_key_sets[{i}]"),
                    "must be an https URL",
                ));
            }
        }
        if self.did.web_timeout < Duration::from_millis(100) {
            return Err(invalid("did.web_timeout", "must be at least 100ms"));
        }
        Ok(())
    }

    pub fn net_config(&self) -> knoop_gossip::net::NetConfig {
        let parse = |v: &[String]| v.iter().filter_map(|a| a.parse().ok()).collect();
        knoop_gossip::net::NetConfig {
            listen: parse(&self.p2p.listen),
            bootstrap: parse(&self.p2p.bootstrap),
            max_peers: self.p2p.max_peers,
            target_peers: self.p2p.target_peers,
            sync_interval: self.p2p.sync_interval,
            sync_fanout: self.p2p.sync_fanout,
            limits: knoop_gossip::net::PeerLimits {
                requests_per_sec: self.p2p.peer_request_rate,
                request_burst: self.p2p.peer_request_rate * 4.0,
                pushes_per_sec: self.p2p.peer_push_rate,
                push_burst: self.p2p.peer_push_rate * 2.0,
            },
        }
    }
}

/// Values given on the command line; they win over file and environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub rpc_listen: Option<String>,
    pub p2p_listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
}

impl Overrides {
    pub(crate) fn apply(&self, c: &mut Config) {
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(r) = &self.rpc_listen {
            c.rpc.listen = r.clone();
        }
        if !self.p2p_listen.is_empty() {
            c.p2p.listen = self.p2p_listen.clone();
        }
        if !self.bootstrap.is_empty() {
            c.p2p.bootstrap = self.bootstrap.clone();
        }
        if let Some(f) = &self.log_format {
            c.log.format = f.clone();
        }
        if let Some(l) = &self.log_level {
            c.log.level = l.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("knoop-cfg-{}.toml", rand::random::<u64>()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn the_testnet_example_config_is_valid() {
        let text = include_str!("../../../testnet/knoop-testnet.toml");
        // Its certificate paths are the vendor's: stand in files for them.
        let cert = write("certificate");
        let key = write("key");
        let text = text
            .replace("/etc/knoop/tls/fullchain.pem", &cert.to_string_lossy())
            .replace("/etc/knoop/tls/privkey.pem", &key.to_string_lossy())
            .replace("<knoop.vendor.example>", "knoop.vendor.example")
            .replace("<ehr.vendor.example>", "ehr.vendor.example");
        let cfg = Config::load(Some(&write(&text)), &Overrides::default()).unwrap();
        assert_eq!(cfg.p2p.bootstrap.len(), 2);
        assert_eq!(cfg.network.id, "knoop-testnet");
        assert_eq!(cfg.p2p.membership_network, "knoop-testnet");
        // The testnet's issuer is the key in testnet/ (what local.sh and operators sign with).
        let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testnet/membership-issuer.key");
        let issuer = crate::identity::membership::issue_with_key_file(&key, None, "", 0).unwrap();
        assert_eq!(
            cfg.p2p.membership_issuers,
            vec![issuer["issuer"].as_str().unwrap()]
        );
        assert_eq!(cfg.public.rate_limit, 50);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_field() {
        let p = write("[p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/1\"]\nbogus = 1\n");
        let e = Config::load(Some(&p), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let p = write("[p2p]\nbootstrap = [\"not an address\"]\n");
        let e = Config::load(Some(&p), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("p2p.bootstrap[0]"), "{e}");
        let p = write("[rpc]\nlisten = \"0.0.0.0:1\"\n");
        let e = Config::load(Some(&p), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("rpc.token"), "{e}");
        for (text, field) in [
            ("[[rpc.clients]]\nname = \"ehr\"\ntoken_sha256 = \"ab\"\ntenants = [\"did:knoop:a\"]\n", "rpc.clients[0].token_sha256"),
            ("[[rpc.clients]]\nname = \"ehr\"\ntoken_sha256 = \"{H}\"\n", "rpc.clients[0].tenants"),
            ("[[rpc.clients]]\nname = \"ehr\"\ntoken_sha256 = \"{H}\"\ntenants = [\"hospital\"]\n", "rpc.clients[0].tenants"),
            ("[[rpc.clients]]\nname = \"\"\ntoken_sha256 = \"{H}\"\nadmin = true\n", "rpc.clients[0].name"),
            ("[[rpc.clients]]\nname = \"a\"\ntoken_sha256 = \"{H}\"\nadmin = true\n[[rpc.clients]]\nname = \"b\"\ntoken_sha256 = \"{H}\"\nadmin = true\n", "rpc.clients[1].token_sha256"),
            ("[[rpc.clients]]\nname = \"a\"\ntoken_sha256 = \"{H}\"\nadmin = true\nscope = \"all\"\n", "scope"),
        ] {
            let p = write(&text.replace("{H}", &"0f".repeat(32)));
            let e = Config::load(Some(&p), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
        // Clients alone secure an RPC beyond loopback.
        let p = write(&format!(
            "[rpc]\nlisten = \"0.0.0.0:1\"\n[[rpc.clients]]\nname = \"ehr\"\ntoken_sha256 = \"{}\"\ntenants = [\"did:knoop:a\"]\n",
            "0f".repeat(32)
        ));
        Config::load(Some(&p), &Overrides::default()).unwrap();
        let p = write("[p2p]\nsync_interval = \"soon\"\n");
        let e = Config::load(Some(&p), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("sync_interval"), "{e}");
        let p = write("[trust.types]\nExampleDegreeCredential = [\"not a did\"]\n");
        let e = Config::load(Some(&p), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("trust.types.ExampleDegreeCredential[0]"), "{e}");
        let p = write("[status_list]\nca_file = \"/no/such/ca.pem\"\n");
        let e = Config::load(Some(&p), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("status_list.ca_file"), "{e}");
    }

    #[test]
    fn public_api_and_sources_name_the_field() {
        for (text, field) in [
            ("[public]\nlisten = \"0.0.0.0:7476\"\n", "public.tls_cert"),
            ("[public]\nlisten = \"nowhere\"\n", "public.listen"),
            (
                "[public]\ntls_cert = \"/no/such/cert.pem\"\n",
                "public.tls_cert",
            ),
            ("[public]\nurl = \"ftp://x\"\n", "public.url"),
            (
                "[public]\nclient_ca_file = \"/etc/hostname\"\n",
                "public.client_ca_file",
            ),
            ("[source]\nfhir = \"not a url\"\n", "source.fhir"),
            (
                "[source.tenants]\n\"did:knoop:x\" = \"mailto:a@b\"\n",
                "source.tenants.did:knoop:x",
            ),
            ("[tokens]\nlifetime = \"2h\"\n", "tokens.lifetime"),
        ] {
            let p = write(text);
            let e = Config::load(Some(&p), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
        let p = write("[public]\nlisten = \"\"\n[source]\nfhir = \"https://ehr.example/fhir\"\n");
        Config::load(Some(&p), &Overrides::default()).unwrap();
    }

    #[test]
    fn environment_overrides_nested_fields() {
        std::env::set_var("KNOOP_P2P__MAX_PEERS", "20");
        std::env::set_var("KNOOP_RPC_URL", "http://ignored");
        let c = Config::load(None, &Overrides::default());
        std::env::remove_var("KNOOP_P2P__MAX_PEERS");
        let c = c.unwrap();
        assert_eq!(c.p2p.max_peers, 20);
    }

    #[test]
    fn flags_win_over_file() {
        let p = write("data_dir = \"/tmp/a\"\n[rpc]\nlisten = \"127.0.0.1:9\"\n");
        let o = Overrides {
            rpc_listen: Some("127.0.0.1:10".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&p), &o).unwrap();
        assert_eq!(c.rpc.listen, "127.0.0.1:10");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/a"));
    }
}
