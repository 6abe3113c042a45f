//! The command line (clap): every command, its arguments and flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "knoop",
    version,
    about = "knoop: a peer-to-peer data-availability network for healthcare"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node (defaults: data in ./data, RPC on 127.0.0.1:7474, p2p on tcp/7475).
    Run(RunArgs),
    /// Set up a node: write a config file (if missing), create the data directory, the keys
    /// and the node DID, print the DID and peer id, and stop.
    Init(InitArgs),
    /// Back up a running node's store (one consistent checkpoint) into a new directory under
    /// the node's backup directory (`[rpc] backup_dir`, default `<data_dir>/backups`).
    Backup {
        #[command(flatten)]
        rpc: RpcArgs,
        /// The backup's directory name (must not exist there, or be empty).
        #[arg(long)]
        name: String,
    },
    /// Restore a backup into an empty data directory (the node stopped); checks the set digest.
    Restore {
        /// The backup directory (with backup.json).
        #[arg(long)]
        from: PathBuf,
        /// The node's config file, for its data_dir (also KNOOP_CONFIG).
        #[arg(long, short, env = "KNOOP_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory to restore into (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Make an API credential scoped to tenants (`[[rpc.clients]]`, specs/rpc-clients.md):
    /// prints a new random token for the client and the config lines for the node, which hold
    /// only the token's SHA-256.
    ApiClient {
        /// Who will hold it (an EHR, a tool), as the audit log will name it.
        #[arg(long)]
        name: String,
        /// A hosted organisation's DID it may act as (repeat for several).
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// The vendor's scope: every route, as every tenant.
        #[arg(long)]
        admin: bool,
    },
    /// Issue a membership credential (`specs/admission.md` §2) with an issuer's Ed25519 key
    /// (a file of 64 hex digits; the issuer is its did:key): a vc+jwt for the node DID and
    /// libp2p peer id given. Without --subject, prints only the issuer's DID (for
    /// `p2p.membership_issuers`). For testnets and tooling; a production issuer signs with its
    /// own infrastructure.
    MembershipCredential {
        #[arg(long)]
        issuer_key: PathBuf,
        /// The member's node DID.
        #[arg(long, requires = "peer_id")]
        subject: Option<String>,
        /// The member's libp2p peer id.
        #[arg(long)]
        peer_id: Option<String>,
        /// The network's name (`p2p.membership_network`).
        #[arg(long, default_value = "knoop")]
        network: String,
        /// Days it is valid from now.
        #[arg(long, default_value_t = 365)]
        valid_days: u64,
    },
    /// Show a running node's status.
    Status(RpcArgs),
    /// Submit, publish, read and list transactions.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Create, resolve and change DIDs (did:knoop hosted here; resolve also did:key/jwk/web).
    #[command(subcommand)]
    Did(DidCommand),
    /// Issue, verify, publish and revoke credentials; trust issuers; search the directory.
    #[command(subcommand)]
    Vc(VcCommand),
    /// Send and read private transactions (sealed for the recipients' keys).
    #[command(subcommand)]
    Private(PrivateCommand),
    /// Localisation: register that a tenant holds data about a patient; find the holders.
    #[command(subcommand)]
    Loc(LocCommand),
    /// Register, revoke and list patients' consents and objections.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Read the node's audit log, check its hash chain, export it as FHIR AuditEvents.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Fetch a patient's data from every organisation that holds it, as one FHIR Bundle.
    #[command(subcommand)]
    Data(DataCommand),
    /// The policy decision point: run a policy directory's Rego tests.
    #[command(subcommand)]
    Pdp(PdpCommand),
    /// Generate signed transactions and submit them at a given rate; report what was measured.
    Load(LoadArgs),
    /// Micro-benchmarks of the log on this machine (use a release build).
    #[command(subcommand)]
    Bench(crate::cli::bench::BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum PdpCommand {
    /// Run the `policy_test.rego` tests of every policy under DIR (as `opa test` does), here,
    /// with the node's Rego engine; exits non-zero when one fails.
    Test { dir: PathBuf },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// TOML config file (also KNOOP_CONFIG).
    #[arg(long, short, env = "KNOOP_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Log format: text or json.
    #[arg(long)]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or knoop_gossip=debug,info.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub dump_config: bool,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Config file to write (kept when it exists: then init uses it).
    #[arg(long, short, env = "KNOOP_CONFIG", default_value = "knoop.toml")]
    pub config: PathBuf,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Where a node keeps its data and listens; these flags win over file and environment.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Data directory (store and keystore).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// RPC listen address, e.g. 127.0.0.1:7474 (port 0 picks a free port, written to <data_dir>/rpc.addr).
    #[arg(long)]
    pub rpc_listen: Option<String>,
    /// p2p listen multiaddr (repeatable), e.g. /ip4/0.0.0.0/tcp/7475.
    #[arg(long)]
    pub p2p_listen: Vec<String>,
    /// Bootstrap peer multiaddr (repeatable), e.g. /ip4/10.0.0.1/tcp/7475/p2p/12D3Koo...
    #[arg(long)]
    pub bootstrap: Vec<String>,
}

impl NodeArgs {
    pub fn overrides(self) -> crate::config::Overrides {
        crate::config::Overrides {
            data_dir: self.data_dir,
            rpc_listen: self.rpc_listen,
            p2p_listen: self.p2p_listen,
            bootstrap: self.bootstrap,
            ..Default::default()
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct RpcArgs {
    /// RPC base URL of the node.
    #[arg(long, env = "KNOOP_RPC_URL", default_value = "http://127.0.0.1:7474")]
    pub rpc: String,
    /// Bearer token for the RPC.
    #[arg(long, env = "KNOOP_RPC_TOKEN")]
    pub token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PrivateCommand {
    /// Send a JSON body from a DID hosted here to recipient DIDs.
    Send {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        author: String,
        /// Recipient DIDs.
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        /// The body (JSON).
        #[arg(long)]
        body: String,
        #[arg(long, default_value = "application/json")]
        content_type: String,
    },
    /// The private transactions this node takes part in.
    List(RpcArgs),
    /// Read one (if this node takes part in it).
    Read {
        #[command(flatten)]
        rpc: RpcArgs,
        id: String,
    },
}

/// A patient identifier for the CLI: `--bsn -` reads it from stdin, keeping it out of shell
/// history.
#[derive(Args, Debug)]
pub struct PatientArg {
    /// The patient's BSN, or - to read it from stdin.
    #[arg(long)]
    pub bsn: String,
}

#[derive(Subcommand, Debug)]
pub enum LocCommand {
    /// Record that a tenant holds data of these categories about a patient.
    Register {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        holder: String,
        #[command(flatten)]
        patient: PatientArg,
        /// summary, medication, allergies, problems, lab, imaging, care-plan, encounters,
        /// vital-signs; none: every category of the scope the holders grant (a data set's scope,
        /// such as bgz, needs none).
        #[arg(long = "category")]
        categories: Vec<String>,
    },
    /// Record that a tenant no longer holds (some) data about a patient.
    Withdraw {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        holder: String,
        #[command(flatten)]
        patient: PatientArg,
        /// Categories no longer held (default: all).
        #[arg(long = "category")]
        categories: Vec<String>,
    },
    /// Find the organisations holding data about a patient (asks each holder node).
    Lookup {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        requester: String,
        #[command(flatten)]
        patient: PatientArg,
        /// regular-care or emergency.
        #[arg(long, default_value = "regular-care")]
        purpose: String,
        /// The professional asking (logged at the holders).
        #[arg(long, default_value = "")]
        who: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Localise the patient, get a token from each holder's node (a presentation of the
    /// credentials) and search its FHIR data proxy; one searchset Bundle plus a status per
    /// holder node.
    Fetch {
        #[command(flatten)]
        rpc: RpcArgs,
        /// The requesting organisation (a DID hosted on this node).
        #[arg(long)]
        requester: String,
        /// The organisation's and the professional's credentials: files (JSON or vc+jwt).
        #[arg(long = "credential", required = true)]
        credentials: Vec<PathBuf>,
        #[command(flatten)]
        patient: PatientArg,
        /// The use case (a policy scope), e.g. discharge-summary, medication-overview, or a
        /// national data set: bgz, medicatieoverdracht, pzp.
        #[arg(long)]
        scope: String,
        /// summary, medication, allergies, problems, lab, imaging, care-plan, encounters,
        /// vital-signs; none: every category of the scope the holders grant (a data set's scope,
        /// such as bgz, needs none).
        #[arg(long = "category")]
        categories: Vec<String>,
        /// regular-care or emergency.
        #[arg(long, default_value = "regular-care")]
        purpose: String,
        /// Why (required to break the glass in an emergency; logged at the holders).
        #[arg(long)]
        reason: Option<String>,
        /// Print the holders' statuses and resource counts instead of the whole Bundle.
        #[arg(long)]
        summary: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Entries from `--after` on.
    List {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Recompute the hash chain; name the first entry that does not verify.
    Verify(RpcArgs),
    /// The log as a FHIR Bundle of AuditEvent resources.
    Fhir(RpcArgs),
}

#[derive(Subcommand, Debug)]
pub enum ConsentCommand {
    /// Register a consent (permit) or objection (deny), issued by a tenant organisation.
    Register {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        issuer: String,
        #[command(flatten)]
        patient: PatientArg,
        /// permit or deny.
        #[arg(long)]
        decision: String,
        /// regular-care and/or emergency.
        #[arg(long = "purpose", required = true)]
        purposes: Vec<String>,
        /// Data categories, or * for all.
        #[arg(long = "category", required = true)]
        categories: Vec<String>,
        /// Requesting organisation types the consent covers (default: all).
        #[arg(long = "requester-type")]
        requester_types: Vec<String>,
        /// Requesting organisations (DIDs) the consent covers.
        #[arg(long = "requester")]
        requesters: Vec<String>,
        /// verbal, written, portal or other.
        #[arg(long, default_value = "written")]
        method: String,
        #[arg(long)]
        valid_until: Option<String>,
    },
    /// Revoke a consent the issuer (a tenant here) registered.
    Revoke {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        issuer: String,
        #[command(flatten)]
        patient: PatientArg,
        #[arg(long)]
        credential: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The consents this node holds about a patient.
    List {
        #[command(flatten)]
        rpc: RpcArgs,
        #[command(flatten)]
        patient: PatientArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum TxCommand {
    /// Have the node sign and publish content as its DID (or a DID it hosts).
    Publish {
        #[command(flatten)]
        rpc: RpcArgs,
        /// Hosted DID to sign as (default: the node's DID).
        #[arg(long)]
        signer: Option<String>,
        /// Media type of the content.
        #[arg(long)]
        content_type: String,
        /// Content as a string.
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        /// Content from a file.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Submit an already signed transaction (compact JWS envelope and content).
    Submit {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        envelope: String,
        /// Content file (omit to submit the envelope only).
        #[arg(long)]
        payload_file: Option<PathBuf>,
    },
    /// Show one transaction.
    Get {
        #[command(flatten)]
        rpc: RpcArgs,
        id: String,
    },
    /// List transactions in local arrival order.
    List {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Node RPC URLs; transactions are spread over them round-robin.
    #[arg(
        long = "rpc",
        env = "KNOOP_RPC_URL",
        default_value = "http://127.0.0.1:7474",
        value_delimiter = ','
    )]
    pub targets: Vec<String>,
    #[arg(long, env = "KNOOP_RPC_TOKEN")]
    pub token: Option<String>,
    /// Transactions to submit.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Target transactions per second (0: as fast as possible).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Transactions per request (1 uses POST /v1/transactions, more the batch endpoint).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Content bytes per transaction.
    #[arg(long, default_value_t = 256)]
    pub payload_size: usize,
    /// Append each acknowledged transaction id to this file (one per line, flushed as acknowledged).
    #[arg(long)]
    pub ids_out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum DidCommand {
    /// Create a DID hosted on this node (keys generated and kept by the node).
    Create {
        #[command(flatten)]
        rpc: RpcArgs,
        /// Service as TYPE=ENDPOINT (repeatable), e.g. FHIR=https://ehr.example/fhir.
        #[arg(long = "service")]
        services: Vec<String>,
        /// Controller DID (repeatable).
        #[arg(long = "controller")]
        controllers: Vec<String>,
        /// Do not name this node's DID as host.
        #[arg(long)]
        not_hosted_here: bool,
    },
    /// Resolve any DID or DID URL (did:knoop with ?versionId= or ?versionTime=).
    Resolve {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
    },
    /// The DIDs hosted on this node, and the node's own DID.
    List {
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Every version of a did:knoop DID, superseded ones included.
    History {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
    },
    /// Generate a key and add it (default relationships: authentication, assertionMethod,
    /// capabilityInvocation).
    AddKey {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
        #[arg(long = "relationship")]
        relationships: Vec<String>,
    },
    /// Remove a key (by fragment, e.g. key-1).
    RemoveKey {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
        fragment: String,
    },
    /// Replace a key with a fresh one in one update.
    Rotate {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
        fragment: String,
    },
    /// Add or replace a service (fragment, type, endpoint: a URL, a DID, or JSON).
    SetService {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
        fragment: String,
        #[arg(long = "type")]
        type_: String,
        #[arg(long)]
        endpoint: String,
    },
    /// Remove a service by fragment.
    RemoveService {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
        fragment: String,
    },
    /// Replace the controllers.
    SetControllers {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
        controllers: Vec<String>,
    },
    /// Deactivate a DID (final).
    Deactivate {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
    },
    /// The endpoint of a service type for a DID, following references to its host.
    Endpoint {
        #[command(flatten)]
        rpc: RpcArgs,
        did: String,
        #[arg(long = "type")]
        type_: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum VcCommand {
    /// Issue a credential as a DID hosted on the node (claims as JSON).
    Issue {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        issuer: String,
        /// CareOrganizationCredential or HealthcareProfessionalCredential.
        #[arg(long = "type")]
        type_: String,
        /// The claims, e.g. '{"id":"did:knoop:...","legalName":"...","city":"...","organizationType":"hospital","ura":"12345678"}'.
        #[arg(long)]
        subject: String,
        #[arg(long)]
        valid_until: Option<String>,
        /// eddsa-jcs-2022 (default), eddsa-rdfc-2022, jose (a vc+jwt) or jwt_vc (a VC 1.1
        /// JWT, the national guide's format); JOSE is ES256 with the issuer's P-256 key.
        #[arg(long)]
        cryptosuite: Option<String>,
        /// Publish it on the network too.
        #[arg(long)]
        publish: bool,
    },
    /// Offer a credential over OpenID4VCI as a DID hosted on the node (specs/oid4vci.md):
    /// prints the offer links and the transaction code to send the holder separately.
    Offer {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        issuer: String,
        #[arg(long = "type")]
        type_: String,
        /// The claims; with "id", only that DID can receive it.
        #[arg(long)]
        subject: String,
        #[arg(long)]
        valid_until: Option<String>,
        /// jwt_vc_json (default) or ldp_vc.
        #[arg(long)]
        format: Option<String>,
        /// No transaction code (anyone with the offer can redeem it).
        #[arg(long)]
        no_tx_code: bool,
        /// Seconds the offer can be redeemed (default a day).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Receive the credential an OpenID4VCI offer makes into a hosted organisation's wallet.
    Receive {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        holder: String,
        /// The offer URL (openid-credential-offer://...).
        offer: String,
        #[arg(long)]
        tx_code: Option<String>,
    },
    /// The credentials a hosted organisation holds in its wallet.
    Held {
        #[command(flatten)]
        rpc: RpcArgs,
        holder: String,
    },
    /// Verify a credential (a JSON file or a vc+jwt, or - for stdin).
    Verify {
        #[command(flatten)]
        rpc: RpcArgs,
        file: PathBuf,
    },
    /// Publish a credential (a JSON file or a vc+jwt, or - for stdin) on the network.
    Publish {
        #[command(flatten)]
        rpc: RpcArgs,
        file: PathBuf,
    },
    /// Revoke a credential this node's DID issued.
    Revoke {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        issuer: String,
        /// The credential's id.
        #[arg(long)]
        credential: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Search the organisation directory.
    Search {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        city: Option<String>,
        #[arg(long = "type")]
        type_: Option<String>,
        #[arg(long)]
        ura: Option<String>,
    },
    /// Trust an issuer for a credential type.
    Trust {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long = "type")]
        type_: String,
        issuer: String,
    },
    /// Stop trusting an issuer for a credential type.
    Untrust {
        #[command(flatten)]
        rpc: RpcArgs,
        #[arg(long = "type")]
        type_: String,
        issuer: String,
    },
    /// List trusted issuers.
    Trusted {
        #[command(flatten)]
        rpc: RpcArgs,
    },
}
