//! What the RPC handlers reach: the services of the node, built by the builder
//! ([`crate::node`]). Handlers take what they need from here and pass it to one service call.

use std::sync::Arc;
use std::time::Instant;

use knoop_gossip::net::NetView;
use knoop_gossip::LogHandle;

use crate::store::NodeStore;

/// The RPC's shared state.
pub struct RpcState {
    pub log: LogHandle<dyn NodeStore>,
    pub net: NetView,
    /// The node's own DID.
    pub node_did: String,
    /// The node's libp2p peer id (also when offline).
    pub peer_id: String,
    pub dids: Arc<crate::identity::did_ops::DidOps>,
    pub resolver: Arc<crate::identity::resolver::Resolver>,
    pub credentials: Arc<crate::identity::credentials::Credentials>,
    /// Fetches status lists and did:web documents before a verification.
    pub prefetch: Arc<crate::identity::prefetch::Prefetcher>,
    /// The status lists of the issuers hosted here (entries at issuance, bits at revocation).
    pub status_hosting: Arc<crate::identity::status_hosting::HostedStatusLists>,
    pub private: Arc<crate::care::private::Private>,
    pub localisation: Arc<crate::care::localisation::Localisation>,
    pub consents: Arc<crate::care::consent::Consents>,
    pub audit: Arc<crate::care::audit::AuditLog>,
    pub tokens: Arc<crate::care::tokens::Tokens>,
    /// The source systems of the tenants (FHIR).
    pub sources: Arc<crate::care::source::Sources>,
    /// Registering and revoking consents as tenants.
    pub consent_registration: Arc<crate::care::consent_registration::ConsentRegistration>,
    /// did:web ids and documents of the hosted DIDs (with a public API on a host name).
    pub web_dids: Option<Arc<crate::identity::web_dids::WebDids>>,
    /// The care directory (organisations and their endpoints).
    pub directory: Arc<crate::directory::Directory>,
    /// Data fetch from every holder node.
    pub fetcher: Arc<crate::care::fetch::Fetcher>,
    /// Asks authorization servers for tokens as a hosted organisation (and holds DPoP keys).
    pub requester: Arc<crate::care::requester::Requester>,
    /// The OpenID4VCI credential issuers of the hosted organisations (offers, codes, nonces).
    pub credential_offers: Arc<crate::identity::credential_offers::CredentialOffers>,
    /// The credentials the hosted organisations hold.
    pub wallet: Arc<crate::care::wallet::Wallet>,
    /// knooppunt's NVI interface over the localisation index.
    pub nvi: Arc<crate::care::nvi::Nvi>,
    /// The policy decision point (Rego policies, the closed question from the consents).
    pub pdp: Arc<crate::care::pdp::Pdp>,
    /// The mCSD directory: the network's versioned view and the hosted organisations'
    /// Administration Directories.
    pub admin_directory: Arc<crate::directory::admin::AdminDirectory>,
    /// Consent subscriptions (Mitz-style) and their notifications.
    pub subscriptions: Arc<crate::care::subscriptions::Subscriptions>,
    /// Where consent notifications go when a subscription names no endpoint.
    pub notify_endpoint: Option<String>,
    /// The mCSD update client over external Administration Directories.
    pub update_client: Arc<crate::directory::update_client::UpdateClient>,
    /// This node's public API base URL, if it serves one.
    pub public_url: Option<String>,
    /// The patient service's organisation DID, if this node is one (`specs/patient-view.md`).
    pub patient_service: Option<String>,
    /// When the public API's certificate expires (ms since the Unix epoch), with TLS.
    pub public_certificate_expires_ms: Option<u64>,
    pub metrics: Arc<crate::ops::metrics::Metrics>,
    /// The node's data directory (for backups).
    pub data_dir: std::path::PathBuf,
    /// Where backups are written (`[rpc] backup_dir`).
    pub backup_dir: std::path::PathBuf,
    /// The credentials calls are authenticated with (`rpc.token`, `[[rpc.clients]]`).
    pub clients: crate::api::rpc::caller::Clients,
    pub started: Instant,
    /// Turns true at shutdown; long-lived responses end then.
    pub stop: tokio::sync::watch::Receiver<bool>,
}
