//! The settings: one serde struct per subsystem, each with its embedded defaults, gathered in
//! [`Config`]. Loading and validation are beside this file, in `load.rs`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default RPC address (loopback only).
pub const DEFAULT_RPC: &str = "127.0.0.1:7474";
/// Default p2p listen address.
pub const DEFAULT_P2P: &str = "/ip4/0.0.0.0/tcp/7475";
/// Default public API address (loopback until TLS is configured).
pub const DEFAULT_PUBLIC: &str = "127.0.0.1:7476";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the store (with the sealed keystore) lives.
    pub data_dir: PathBuf,
    /// MiB the node keeps free on the data directory's disk: below it, new transactions (from
    /// the RPC and from peers) and private records are refused (`507 disk_full`), while reads,
    /// the audit log and settings go on; writes resume once space is freed. 0: no reserve.
    pub reserved_disk_mib: u64,
    pub store: StoreConfig,
    pub rpc: RpcConfig,
    pub p2p: P2pConfig,
    pub log: LogSettings,
    pub keys: KeysConfig,
    pub did: DidConfig,
    pub trust: TrustConfig,
    pub status_list: StatusListConfig,
    pub network: NetworkConfig,
    pub localisation: LocalisationConfig,
    pub consent: ConsentConfig,
    /// Token policies per scope (`[[policy]]`); none: the built-in ones.
    pub policy: Vec<Policy>,
    pub public: PublicConfig,
    pub source: SourceConfig,
    pub tokens: TokensConfig,
    pub pdp: PdpConfig,
    pub mcsd: McsdConfig,
    pub patient_service: PatientServiceConfig,
}

/// Where the node keeps its state: rocksdb under `data_dir` (the default), or a PostgreSQL
/// database (`specs/storage.md` §6) the vendor runs, backs up and replicates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A libpq connection string (`host=db.example user=knoop dbname=knoop` or
    /// `postgresql://knoop@db.example/knoop`); unset: rocksdb. Best from `KNOOP_STORE__POSTGRES`.
    pub postgres: Option<String>,
    /// A file holding the database password (kept out of the connection string).
    pub postgres_password_file: Option<PathBuf>,
    /// Connections to the database (1 to 64).
    pub postgres_connections: u32,
    /// The leadership lease of replicas sharing the database (`specs/storage.md` §9.6): a
    /// standby takes over this long after the leader stopped renewing (1 s to 60 s).
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            postgres: None,
            postgres_password_file: None,
            postgres_connections: 4,
            lease: Duration::from_secs(5),
        }
    }
}

/// The patient service role (spec: `specs/patient-view.md` §6): patients log in with OpenID
/// Connect and see who holds their data, who looked at it, and their consents. Off unless
/// `issuer` is set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PatientServiceConfig {
    /// The OpenID Connect provider's issuer URL (https; http only on loopback, for tests).
    pub issuer: Option<String>,
    pub client_id: String,
    /// The client secret; better from `KNOOP_PATIENT_SERVICE__CLIENT_SECRET` or a file.
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// The scope asked for at login.
    pub scope: String,
    /// The ID token claim that carries the BSN.
    pub bsn_claim: String,
    /// The service organisation's name, when the node makes its DID.
    pub name: String,
    /// A hosted DID to act as the service (default: one the node makes at first start).
    pub organisation: Option<String>,
    /// Extra CA certificates (PEM) for the provider's TLS, beside the web PKI.
    pub ca_file: Option<PathBuf>,
    /// Time allowed for each call to the provider.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for PatientServiceConfig {
    fn default() -> Self {
        PatientServiceConfig {
            issuer: None,
            client_id: "knoop-patient-service".into(),
            client_secret: None,
            client_secret_file: None,
            scope: "openid bsn".into(),
            bsn_claim: "bsn".into(),
            name: "Patiëntenservice".into(),
            organisation: None,
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The policy decision point (spec: `specs/pdp.md`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PdpConfig {
    /// A directory of Rego policies, one `<name>/policy.rego` each (with an optional
    /// `fhir_capabilitystatement.json`): knooppunt's `component/pdp/policies` loads as it is.
    pub policies: Option<PathBuf>,
    /// The policy information point also reads the resource a request is about from the data
    /// holder's source (`GET <base>/<type>/<id>`) into `input.resource.content`, for policies
    /// that decide on its content (knooppunt's `pdp.pip.resourcecontentenabled`).
    pub resource_content: bool,
}

/// The mCSD Update Client (spec: `specs/mcsd.md` §6): external Administration Directories the
/// node reads into its Query Directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct McsdConfig {
    /// Root Administration Directories (FHIR bases, `https://`), such as the LRZa: authoritative
    /// for organisations' URA and name, and listing the directories of the organisations. None:
    /// no update client.
    pub roots: Vec<String>,
    /// Directory bases never read (e.g. this node's own, when a root lists it).
    pub exclude: Vec<String>,
    /// Time between update rounds; `0s`: only on `POST /mcsd/update`.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Extra CA certificates (PEM) for the directories' TLS, beside the web PKI (e.g. the
    /// PKIoverheid roots for the LRZa).
    pub ca_file: Option<PathBuf>,
    /// The client certificate (PEM chain) and key (PEM) the update client presents to the
    /// directories (mutual TLS, as the national guide asks of an Administration Directory):
    /// both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Publish what the update client learned to the network, signed by the node DID, so that
    /// nodes trusting this one as a bridge need not poll (needs `roots`).
    pub bridge: bool,
    /// Node DIDs whose published directory learnings this node serves (unverified).
    pub trusted_bridges: Vec<String>,
}

impl Default for McsdConfig {
    fn default() -> Self {
        McsdConfig {
            roots: Vec::new(),
            exclude: Vec::new(),
            interval: Duration::from_secs(300),
            ca_file: None,
            tls_cert: None,
            tls_key: None,
            bridge: false,
            trusted_bridges: Vec::new(),
        }
    }
}

/// The public API (spec: `specs/data-fetch.md`): token endpoint and data proxy, for other
/// nodes. HTTPS with rustls; plain HTTP only on loopback.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PublicConfig {
    /// Listen address; `""` turns the public API off (the node then serves no data).
    pub listen: String,
    /// The base URL other nodes use (published in the node DID as a `KnoopPublicApi`
    /// service). Default: `https://<listen address>` (`http://` without TLS). Required when
    /// listening on an unspecified address (`0.0.0.0`).
    pub url: Option<String>,
    /// Certificate chain and private key (PEM) of the public API.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Extra trusted root certificates (PEM) for calling other nodes' public APIs.
    pub ca_file: Option<PathBuf>,
    /// Roots (PEM) of client certificates (mutual TLS, with `tls_cert`): the listener asks
    /// every client for a certificate and verifies one that is given against these. The public
    /// Administration Directories serve only clients that gave one (the national guide's
    /// care-services page: an Administration Directory must require mTLS); without this
    /// setting they are not served on the public API.
    pub client_ca_file: Option<PathBuf>,
    /// Time allowed for one call to another node's public API.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Requests per second each client IP address may make (0: no limit). Over it: 429.
    pub rate_limit: u32,
    /// Requests a client may make at once before the rate applies (at least `rate_limit`).
    pub rate_burst: u32,
}

impl Default for PublicConfig {
    fn default() -> Self {
        PublicConfig {
            listen: DEFAULT_PUBLIC.into(),
            url: None,
            tls_cert: None,
            tls_key: None,
            ca_file: None,
            client_ca_file: None,
            timeout: Duration::from_secs(10),
            rate_limit: 50,
            rate_burst: 200,
        }
    }
}

/// The source systems (FHIR R4 REST) of the organisations hosted here.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// FHIR base URL for every tenant without its own entry in `tenants`.
    pub fhir: Option<String>,
    /// FHIR base URL per tenant DID: `[source.tenants] "did:knoop:..." = "https://ehr/fhir"`.
    pub tenants: std::collections::BTreeMap<String, String>,
    /// Extra trusted root certificates (PEM) for the source systems.
    pub ca_file: Option<PathBuf>,
    /// Time allowed for one call to a source system.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            fhir: None,
            tenants: Default::default(),
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Access tokens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// Lifetime of an access token (1 s .. 1 h).
    #[serde(with = "humantime_serde")]
    pub lifetime: Duration,
    /// Refuse token requests without a DPoP proof (RFC 9449), so that no bearer token is
    /// issued. Off by default: the national guide leaves DPoP to the client (GFI-004).
    pub require_dpop: bool,
    /// DIDs of resource servers that may introspect every token on the public API (GFI-006);
    /// any other authenticated client only the tokens granted on its own data.
    pub introspection_clients: Vec<String>,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            lifetime: Duration::from_secs(300),
            require_dpop: false,
            introspection_clients: Vec::new(),
        }
    }
}

/// Trusted credential issuers from config (more can be added over RPC; these cannot be removed
/// there).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Issuers of `CareOrganizationCredential` (registry authorities).
    pub care_organization_issuers: Vec<String>,
    /// Issuers of `HealthcareProfessionalCredential` besides trusted organisations (identity
    /// schemes).
    pub healthcare_professional_issuers: Vec<String>,
    /// Issuers of other credential types, by type: `[trust.types] AlumniCredential = [..]`.
    pub types: std::collections::BTreeMap<String, Vec<String>>,
    /// The Dezi key sets (JWK Set URLs, https) whose attestations make `DeziUserCredential`s:
    /// a `jku` outside this list is never fetched.
    pub dezi_key_sets: Vec<String>,
}

/// Which network this node belongs to (from the network's governance, with the bootstrap list).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// The network's name: binds patient pseudonyms to this network.
    pub id: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            id: "knoop-local".into(),
        }
    }
}

/// The localisation index (spec: `specs/consent-localisation.md` §2, §6). Without a pepper the
/// node takes no part in localisation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LocalisationConfig {
    /// The network's secret pepper: 64 hex digits. Best from `KNOOP_LOCALISATION__PEPPER`.
    pub pepper: Option<String>,
    /// A file holding the pepper (64 hex digits).
    pub pepper_file: Option<PathBuf>,
    /// Pepper generation.
    pub epoch: u32,
    /// Argon2id memory (KiB), passes and lanes: every node of a network uses the same.
    pub argon2_m_kib: u32,
    pub argon2_t: u32,
    pub argon2_p: u32,
    /// How long entries wait for others before their batch (one transaction of up to 1024
    /// shuffled entries) goes out (`specs/consent-localisation.md` §6.2).
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
}

impl Default for LocalisationConfig {
    fn default() -> Self {
        LocalisationConfig {
            pepper: None,
            pepper_file: None,
            epoch: 1,
            argon2_m_kib: 65_536,
            argon2_t: 3,
            argon2_p: 1,
            batch_interval: Duration::from_secs(2),
        }
    }
}

/// How consent decides sharing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// `opt-in` (share only with consent) or `opt-out` (share unless the patient objected).
    pub mode: String,
    /// Where consent notifications go when a subscription names no endpoint
    /// (`specs/fhir-consent.md` §4).
    pub notify_endpoint: Option<String>,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            mode: "opt-in".into(),
            notify_endpoint: None,
        }
    }
}

/// Bitstring Status Lists of credentials from other issuers, fetched over HTTPS.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StatusListConfig {
    /// Fetch status lists. When `false`, a credential with a status entry fails verification
    /// with `status_unavailable`.
    pub enabled: bool,
    /// Extra trusted root certificates (PEM) for status list servers (`public.ca_file` is
    /// trusted too: knoop issuers' lists are on public APIs).
    pub ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a fetched list is used before it is fetched again.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for StatusListConfig {
    fn default() -> Self {
        StatusListConfig {
            enabled: true,
            ca_file: None,
            timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(300),
        }
    }
}

/// Key custody.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Master key sealing the keystore: 64 hex digits. Best given through the environment
    /// (`KNOOP_KEYS__MASTER_KEY`) from a secret store.
    pub master_key: Option<String>,
    /// File holding the master key (64 hex digits). Default when neither is set:
    /// `<data_dir>/master.key`, created on first start (fine for development only).
    pub master_key_file: Option<PathBuf>,
    /// Earlier master keys: keys sealed under one of them are re-sealed under `master_key` at
    /// start (master-key rotation).
    pub previous_master_keys: Vec<String>,
}

/// DID resolution.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DidConfig {
    /// Resolve did:web over HTTPS.
    pub web_enabled: bool,
    /// Extra trusted root certificates (PEM) for did:web, e.g. a private or test CA.
    pub web_ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub web_timeout: Duration,
}

impl Default for DidConfig {
    fn default() -> Self {
        DidConfig {
            web_enabled: true,
            web_ca_file: None,
            web_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RpcConfig {
    /// Address of the internal HTTP JSON RPC.
    pub listen: String,
    /// Bearer token required on every RPC call except `/health`: the vendor's administrator
    /// credential (every route, every tenant). Required when `listen` is not a loopback address
    /// and no `clients` are configured.
    pub token: Option<String>,
    /// API credentials scoped to tenants (`specs/rpc-clients.md`): one per EHR or other client,
    /// acting only as the hosted organisations it names. With any configured, every call
    /// except `/health` needs a credential, also on loopback.
    pub clients: Vec<ApiClient>,
    /// Where `POST /v1/admin/backup` writes backups, each in a new directory it names; default
    /// `<data_dir>/backups`. The route writes nowhere else on the node's machine.
    pub backup_dir: Option<PathBuf>,
}

/// One API credential of the RPC (`[[rpc.clients]]`, `specs/rpc-clients.md`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiClient {
    /// Who holds it (an EHR, a vendor's tool), as the audit log and the logs name it.
    pub name: String,
    /// Hex SHA-256 of its bearer token: the node keeps no token of a client, so the config
    /// file gives none away (`knoop api-client` makes a token and this line).
    pub token_sha256: String,
    /// The hosted organisations' DIDs (did:knoop, or their did:web ids) it may act as.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// The vendor's scope: every route, as every tenant (as `rpc.token`).
    #[serde(default)]
    pub admin: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// Join the network. `false` runs the node offline (RPC and store only), e.g. for
    /// maintenance; it catches up when started again with the network.
    pub enabled: bool,
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub max_peers: usize,
    pub target_peers: usize,
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// Reconciliation sessions started per `sync_interval` at most (least recently synced
    /// peers first).
    pub sync_fanout: usize,
    /// Sync requests per second allowed from one peer.
    pub peer_request_rate: f64,
    /// Pushed transactions per second allowed from one peer.
    pub peer_push_rate: f64,
    /// Orphans (transactions waiting for parents) held at most.
    pub max_pending: usize,
    /// A members-only network (`specs/admission.md`): the DIDs whose
    /// `KnoopMembershipCredential`s admit a peer (they must resolve without the log: did:web,
    /// did:x509, did:key, did:jwk). Empty: open membership, every knoop peer is served.
    pub membership_issuers: Vec<String>,
    /// The `credentialSubject.network` a membership credential must name.
    pub membership_network: String,
    /// This node's membership credential: a file holding a vc+jwt or a JSON credential.
    /// Required with `membership_issuers`.
    pub membership_credential: Option<PathBuf>,
    /// How often a member's credential is verified again (revocation, expiry).
    #[serde(with = "humantime_serde")]
    pub membership_reverify: Duration,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info` or `knoop_gossip=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
    /// An OpenTelemetry collector's OTLP/HTTP base URL (e.g. `http://127.0.0.1:4318`): the
    /// node's spans are exported to `<base>/v1/traces`. Also `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            reserved_disk_mib: 256,
            store: StoreConfig::default(),
            rpc: RpcConfig::default(),
            p2p: P2pConfig::default(),
            log: LogSettings::default(),
            keys: KeysConfig::default(),
            did: DidConfig::default(),
            trust: TrustConfig::default(),
            status_list: StatusListConfig::default(),
            network: NetworkConfig::default(),
            localisation: LocalisationConfig::default(),
            consent: ConsentConfig::default(),
            policy: Vec::new(),
            public: PublicConfig::default(),
            source: SourceConfig::default(),
            tokens: TokensConfig::default(),
            pdp: PdpConfig::default(),
            mcsd: McsdConfig::default(),
            patient_service: PatientServiceConfig::default(),
        }
    }
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            listen: DEFAULT_RPC.into(),
            token: None,
            clients: Vec::new(),
            backup_dir: None,
        }
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        let net = knoop_gossip::net::NetConfig::default();
        P2pConfig {
            enabled: true,
            listen: vec![DEFAULT_P2P.into()],
            bootstrap: Vec::new(),
            max_peers: net.max_peers,
            target_peers: net.target_peers,
            sync_interval: net.sync_interval,
            sync_fanout: net.sync_fanout,
            peer_request_rate: net.limits.requests_per_sec,
            peer_push_rate: net.limits.pushes_per_sec,
            max_pending: knoop_gossip::LogConfig::default().max_pending,
            membership_issuers: Vec::new(),
            membership_network: "knoop".into(),
            membership_credential: None,
            membership_reverify: Duration::from_secs(300),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: "text".into(),
            otlp_endpoint: None,
        }
    }
}

/// A use case and what it allows (config `[[policy]]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The scope name, e.g. `medication-overview`.
    pub scope: String,
    /// Data categories the scope covers.
    pub categories: Vec<String>,
    /// Professional role codes allowed (empty: any professional).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Purposes allowed.
    pub purposes: Vec<String>,
    /// Whether an emergency request with a reason may proceed without consent (never against
    /// an objection), flagged in the audit log.
    #[serde(default)]
    pub break_the_glass: bool,
    /// A DIF Presentation Exchange definition (JSON file) that RFC021 token requests for this
    /// scope must satisfy; default: an organisation credential and a professional credential
    /// (for a scope that is not about a patient: an organisation credential).
    #[serde(default)]
    pub presentation_definition: Option<std::path::PathBuf>,
    /// A workflow scope not about one patient (`specs/data-sets.md` §8): its token reads the
    /// resources the holder's own `Consent`s of this consent scope name for the requester
    /// ("veronderstelde toestemming", e.g. `eoverdracht`), and updates such a `Task`.
    #[serde(default)]
    pub implied_consent: Option<String>,
    /// A notification scope (`specs/data-sets.md` §8): its token lets the requester post a
    /// Notified Pull notification `Task` to the organisation; no patient, no data.
    #[serde(default)]
    pub notification: bool,
}

/// What a token of a scope reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach<'a> {
    /// One patient's data in the scope's categories, as consent allows.
    Patient,
    /// The resources the holder's implied consents of this consent scope name.
    ImpliedConsent(&'a str),
    /// Notifications to the organisation.
    Notification,
}

impl Policy {
    /// Whether a token of this scope is about one patient ([`Reach::Patient`]).
    pub fn is_about_a_patient(&self) -> bool {
        self.reach() == Reach::Patient
    }

    /// What a token of this scope reaches.
    pub fn reach(&self) -> Reach<'_> {
        match (&self.implied_consent, self.notification) {
            (Some(c), _) => Reach::ImpliedConsent(c),
            (None, true) => Reach::Notification,
            (None, false) => Reach::Patient,
        }
    }
}
