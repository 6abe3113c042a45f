//! Wires a node together: store, log service, network, RPC; and shuts it down in order.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use knoop_gossip::{Log, LogConfig, LogHandle};
use tokio::sync::watch;
use tracing::info;

use crate::api::rpc::router;
use crate::api::rpc::state::RpcState;
use crate::config::Config;
use crate::identity::did_ops::DidOps;
use crate::identity::did_state::DidState;
use crate::identity::didweb::DidWebClient;
use crate::identity::keystore::{KeyStore, MasterKey};
use crate::identity::resolver::Resolver;
use crate::store::NodeStore;

/// What every start opens: the store, the keystore, the node key and DID, the DID state and
/// the log service.
struct Core {
    store: Arc<dyn NodeStore>,
    /// This replica's name in the store's leadership lease and the task renewing it (a shared
    /// store only).
    lease: Option<(String, tokio::task::JoinHandle<()>)>,
    key: ed25519_dalek::SigningKey,
    did_state: Arc<DidState>,
    handle: LogHandle<dyn NodeStore>,
    log_task: tokio::task::JoinHandle<()>,
    dids: Arc<DidOps>,
    node_did: String,
}

async fn open_core(cfg: &Config) -> anyhow::Result<Core> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data_dir {}", cfg.data_dir.display()))?;
    let store = crate::store::open(cfg)?;
    // Replicas on one shared store (PostgreSQL): this one runs the node once it leads the store,
    // and stops when it no longer does.
    let lease = if cfg.store.postgres.is_some() {
        let holder = crate::ops::leadership::replica_name();
        let ttl = cfg.store.lease;
        let epoch = crate::ops::leadership::take(&store, &holder, ttl, shutdown_signal()).await?;
        let renewal = crate::ops::leadership::keep(store.clone(), holder.clone(), epoch, ttl);
        Some((holder, renewal))
    } else {
        None
    };
    let t0 = Instant::now();
    let keys = Arc::new(open_keystore(cfg, store.clone())?);
    let key = crate::identity::node_key::node_identity(&keys, &cfg.data_dir.join("node.key"))?;
    let did_state = Arc::new(DidState::load(store.as_ref()).context("loading DIDs")?);
    let log = Log::open(
        store.clone(),
        did_state.clone(),
        LogConfig {
            max_pending: cfg.p2p.max_pending,
            ..LogConfig::default()
        },
    )?;
    info!(
        store = store.kind(),
        transactions = log.index().len(),
        dids = did_state.len(),
        ms = t0.elapsed().as_millis() as u64,
        "store opened"
    );
    let (handle, log_task) = LogHandle::spawn(log);
    let dids = Arc::new(DidOps {
        state: did_state.clone(),
        keys,
        log: handle.clone(),
        web_base: std::sync::OnceLock::new(),
    });
    let node_did = node_did(&dids, &key).await?;
    info!(did = %node_did, "node DID");
    // The node's X25519 key for private transactions (a DID update the first time).
    dids.ensure_key_agreement(&node_did)
        .await
        .context("the node DID's keyAgreement key")?;
    Ok(Core {
        store,
        lease,
        key,
        did_state,
        handle,
        log_task,
        dids,
        node_did,
    })
}

/// `knoop init`: creates the data directory, the keys and the node DID, then stops. The node
/// DID is published to the network when the node first runs.
pub async fn init(cfg: &Config) -> anyhow::Result<serde_json::Value> {
    let Core {
        store,
        lease,
        key,
        handle,
        log_task,
        dids,
        node_did,
        ..
    } = open_core(cfg).await?;
    let peer_id = knoop_did::binding::peer_id_of(&key.verifying_key());
    let transactions = handle.index().len();
    // The log task ends with its last handle (the DID operations hold one).
    drop((dids, handle));
    let _ = log_task.await;
    store.flush()?;
    if let Some((holder, renewal)) = lease {
        renewal.abort();
        store.step_down(&holder)?;
    }
    Ok(serde_json::json!({
        "did": node_did,
        "peer_id": peer_id,
        "data_dir": cfg.data_dir,
        "transactions": transactions,
    }))
}

/// Runs a node until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let Core {
        store,
        lease,
        key,
        did_state,
        handle,
        log_task,
        dids,
        node_did,
    } = open_core(&cfg).await?;
    let private = Arc::new(crate::care::private::Private::new(
        dids.clone(),
        did_state.clone(),
        store.clone(),
        node_did.clone(),
    ));
    let web = if cfg.did.web_enabled {
        Some(
            // did:web documents of knoop tenants are served by public APIs: their CA counts too.
            https_client(&cfg, cfg.did.web_ca_file.as_deref(), cfg.did.web_timeout)
                .context("did:web client")?,
        )
    } else {
        None
    };
    let mut trust = crate::identity::credentials::Trust::default();
    trust.0.insert(
        knoop_vc::types::CARE_ORGANIZATION_CREDENTIAL.into(),
        cfg.trust
            .care_organization_issuers
            .iter()
            .cloned()
            .collect(),
    );
    trust.0.insert(
        knoop_vc::types::HEALTHCARE_PROFESSIONAL_CREDENTIAL.into(),
        cfg.trust
            .healthcare_professional_issuers
            .iter()
            .cloned()
            .collect(),
    );
    for (t, issuers) in &cfg.trust.types {
        trust
            .0
            .entry(t.clone())
            .or_default()
            .extend(issuers.iter().cloned());
    }
    let credentials = Arc::new(
        crate::identity::credentials::Credentials::open(did_state.clone(), store.clone(), trust)
            .context("credentials")?,
    );
    let status_lists = Arc::new(crate::identity::status_list::StatusLists::new(
        if cfg.status_list.enabled {
            Some(
                // Knoop issuers' lists are served by public APIs: their CA counts too.
                https_client(
                    &cfg,
                    cfg.status_list.ca_file.as_deref(),
                    cfg.status_list.timeout,
                )
                .context("status list client")?,
            )
        } else {
            None
        },
        cfg.status_list.max_age,
    ));
    let resolver = Arc::new(Resolver {
        knoop: did_state.clone(),
        web: web.clone(),
    });

    let loc_params = localisation_params(&cfg)?;
    if loc_params.is_none() {
        tracing::info!("localisation.pepper not set: this node takes no part in localisation");
    }
    let consents = Arc::new(crate::care::consent::Consents::new(
        credentials.clone(),
        store.clone(),
    ));
    let metrics = Arc::new(crate::ops::metrics::Metrics::new());
    let audit =
        Arc::new(crate::care::audit::AuditLog::open(store.clone()).with_metrics(metrics.clone()));
    let localisation = Arc::new(
        crate::care::localisation::Localisation::new(
            dids.clone(),
            did_state.clone(),
            store.clone(),
            credentials.clone(),
            consents.clone(),
            private.clone(),
            audit.clone(),
            node_did.clone(),
            loc_params,
            cfg.consent.mode == "opt-out",
        )
        .with_batch_interval(cfg.localisation.batch_interval),
    );
    let patient_access = Arc::new(crate::care::patient_access::PatientAccess::new(
        did_state.clone(),
        credentials.clone(),
        localisation.clone(),
        consents.clone(),
        audit.clone(),
        node_did.clone(),
    ));
    let prefetch = Arc::new(crate::identity::prefetch::Prefetcher::new(
        status_lists,
        web.clone(),
        cfg.trust.dezi_key_sets.clone(),
    ));
    let scopes = if cfg.policy.is_empty() {
        crate::care::tokens::default_policies()
    } else {
        cfg.policy.clone()
    };
    let sources = Arc::new(crate::care::source::Sources::new(&cfg.source).context("source")?);
    let pdp = Arc::new(
        crate::care::pdp::Pdp::load(
            cfg.pdp.policies.as_deref(),
            &scopes,
            dids.clone(),
            credentials.clone(),
            consents.clone(),
            localisation.clone(),
            sources.clone(),
        )
        .context("pdp")?
        .with_resource_content(cfg.pdp.resource_content),
    );
    if cfg.pdp.policies.is_some() {
        info!(policies = ?pdp.names(), "policy decision point loaded");
    }
    let tokens = Arc::new(crate::care::tokens::Tokens::new(
        pdp.clone(),
        credentials.clone(),
        prefetch.clone(),
        localisation.clone(),
        audit.clone(),
        node_did.clone(),
        scopes,
        cfg.tokens.lifetime,
        cfg.tokens.require_dpop,
        cfg.tokens.introspection_clients.clone(),
        store.clone(),
    ));
    // Expired tokens, nonces and replay-cache entries leave the store once a minute (holding
    // the token service only weakly: at shutdown it goes, and with it the log's last handle).
    {
        let tokens = Arc::downgrade(&tokens);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                let Some(t) = tokens.upgrade() else {
                    return;
                };
                match tokio::task::spawn_blocking(move || t.sweep()).await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::debug!(records = n, "expired tokens and nonces swept")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "sweeping expired tokens failed"),
                    _ => {}
                }
            }
        });
    }
    let http = crate::https::client(cfg.public.ca_file.as_deref(), cfg.public.timeout)
        .context("public API client")?;
    // The public API: bound now, so its URL goes into the node DID before anyone asks.
    let public = crate::api::public::bind(&cfg.public).await?;
    let public_url = public.as_ref().map(|p| p.url.clone());
    let public_certificate_expires_ms = public.as_ref().and_then(|p| p.certificate_expires_ms);
    if let Some(url) = &public_url {
        tokens.add_public_url(url);
    }
    match &public_url {
        Some(url) => {
            dids.ensure_service(
                &node_did,
                crate::care::requester::PUBLIC_API_SERVICE_TYPE,
                url,
            )
            .await
            .context("publishing the public API URL in the node DID")?;
            if let Some(p) = &public {
                std::fs::write(
                    cfg.data_dir.join("public.addr"),
                    p.local_addr()?.to_string(),
                )?;
            }
        }
        None => tracing::warn!("public.listen is empty: this node serves no tokens and no data"),
    }
    let admission = membership(&cfg, &key, &credentials, &prefetch).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (net, net_task) = if cfg.p2p.enabled {
        let n = knoop_gossip::net::spawn(
            key.to_bytes(),
            cfg.net_config(),
            handle.clone(),
            Some(Arc::new(crate::api::answers::Answers {
                private: private.clone(),
                localisation: localisation.clone(),
                patients: patient_access.clone(),
            })),
            admission,
            stop_rx,
        )?;
        localisation.attach(n.ask.clone());
        private.attach(n.ask, n.view.clone());
        (n.view, n.task)
    } else {
        tracing::warn!("p2p.enabled = false: running offline, not joining the network");
        drop(stop_rx);
        (
            knoop_gossip::net::NetView::default(),
            tokio::spawn(async {}),
        )
    };
    // Private transactions after each commit: trial decryption, blob fetches, then the
    // consents and revocations that arrived that way.
    let private_task = {
        let (p, c) = (private.clone(), consents.clone());
        let rt = tokio::runtime::Handle::current();
        crate::indexing::after_commits(
            &handle,
            stop_tx.subscribe(),
            "private_transactions",
            move || {
                p.catch_up();
                // Fetching is async: run it to completion from this blocking task.
                rt.block_on(p.fetch_round());
                c.catch_up(&p);
            },
        )
    };
    let loc_task =
        crate::care::localisation::spawn(localisation.clone(), &handle, stop_tx.subscribe());

    let listener = tokio::net::TcpListener::bind(&cfg.rpc.listen)
        .await
        .with_context(|| format!("cannot listen on rpc.listen {}", cfg.rpc.listen))?;
    let rpc_addr = listener.local_addr()?;
    // Scripts and tests that asked for port 0 read the real address here.
    std::fs::write(cfg.data_dir.join("rpc.addr"), rpc_addr.to_string())?;
    info!(%rpc_addr, data_dir = %cfg.data_dir.display(), "rpc listening");

    let requester = Arc::new(crate::care::requester::Requester::new(dids.clone(), http));
    let fetcher = Arc::new(crate::care::fetch::Fetcher::new(
        dids.clone(),
        localisation.clone(),
        audit.clone(),
        requester.clone(),
    ));
    let proxy = Arc::new(crate::care::data_proxy::DataProxy::new(
        tokens.clone(),
        pdp.clone(),
        localisation.clone(),
        sources.clone(),
        audit.clone(),
        public_url.clone(),
    ));
    let notified = Arc::new(crate::care::notified_pull::NotifiedPull::new(
        tokens.clone(),
        pdp.clone(),
        sources.clone(),
        audit.clone(),
    ));
    let directory = Arc::new(crate::directory::Directory::new(
        credentials.clone(),
        did_state.clone(),
    ));
    let consent_registration =
        Arc::new(crate::care::consent_registration::ConsentRegistration::new(
            dids.clone(),
            consents.clone(),
            localisation.clone(),
            private.clone(),
            node_did.clone(),
        ));
    let patient_service = patient_service(
        &cfg,
        public_url.as_deref(),
        &store,
        crate::care::patient_service::Parts {
            ops: dids.clone(),
            credentials: credentials.clone(),
            consents: consents.clone(),
            localisation: localisation.clone(),
            access: patient_access,
            registration: consent_registration.clone(),
            private: private.clone(),
        },
    )
    .await?;
    // did:web ids for the hosted DIDs, when the public URL has a host name; each hosted DID
    // names its did:web id in alsoKnownAs (an update only where it is missing).
    let web_dids = public_url
        .as_deref()
        .and_then(|u| crate::identity::web_dids::WebDids::new(dids.clone(), u))
        .map(Arc::new);
    for did in dids.hosted()? {
        if web_dids.is_some() {
            if let Err(e) = dids.ensure_web_alias(&did).await {
                tracing::warn!(%did, error = %e, "cannot name the did:web id in alsoKnownAs");
            }
        }
        // DIDs made before knoop signed with ES256 get their P-256 key (one update, once).
        if let Err(e) = dids.ensure_es256_key(&did).await {
            tracing::warn!(%did, error = %e, "cannot add the ES256 key");
        }
    }
    let status_hosting = Arc::new(crate::identity::status_hosting::HostedStatusLists::new(
        store.clone(),
        dids.clone(),
        public_url.as_deref(),
    ));
    let credential_offers = Arc::new(crate::identity::credential_offers::CredentialOffers::new(
        dids.clone(),
        credentials.clone(),
        status_hosting.clone(),
        store.clone(),
        public_url.as_deref(),
    ));
    let wallet = Arc::new(crate::care::wallet::Wallet::new(
        dids.clone(),
        credentials.clone(),
        prefetch.clone(),
        requester.clone(),
        store.clone(),
    ));
    // The mCSD directory: published changes and derived resources, materialised with their
    // history after each commit.
    let published = Arc::new(crate::directory::published::Published::new(store.clone()));
    let external = Arc::new(crate::directory::external::External::default());
    let mut trusted_bridges = cfg.mcsd.trusted_bridges.clone();
    if cfg.mcsd.bridge {
        trusted_bridges.push(node_did.clone());
    }
    let bridged = Arc::new(crate::directory::bridge::Bridged::new(
        store.clone(),
        trusted_bridges,
    ));
    let bridge_out = cfg
        .mcsd
        .bridge
        .then(|| crate::directory::update_client::BridgeOut {
            dids: dids.clone(),
            did: node_did.clone(),
            bridged: bridged.clone(),
        });
    let mcsd_http = mcsd_client(&cfg.mcsd)?;
    let update_client = Arc::new(crate::directory::update_client::UpdateClient::open(
        mcsd_http,
        &cfg.mcsd,
        store.clone(),
        external.clone(),
        bridge_out,
    ));
    let view = Arc::new(crate::directory::view::DirectoryView::open(
        directory.clone(),
        published.clone(),
        external,
        bridged,
        store.clone(),
    ));
    let update_task = spawn_update_client(
        update_client.clone(),
        view.clone(),
        cfg.mcsd.interval,
        stop_tx.subscribe(),
    );
    let indexer = spawn_indexer(
        credentials.clone(),
        view.clone(),
        &handle,
        stop_tx.subscribe(),
    );
    let admin_directory = Arc::new(crate::directory::admin::AdminDirectory::new(
        view,
        published,
        directory.clone(),
        dids.clone(),
    ));
    let subscriptions = Arc::new(crate::care::subscriptions::Subscriptions::new(
        store.clone(),
        consents.clone(),
        credentials.clone(),
        requester.http().clone(),
    ));
    let subscription_task = {
        let s = subscriptions.clone();
        let rt = tokio::runtime::Handle::current();
        crate::indexing::after_commits(
            &handle,
            stop_tx.subscribe(),
            "consent_notifications",
            move || rt.block_on(s.notify_round()),
        )
    };
    let nvi = Arc::new(crate::care::nvi::Nvi::new(
        localisation.clone(),
        credentials.clone(),
        dids.clone(),
        store.clone(),
    ));
    let state = Arc::new(RpcState {
        log: handle.clone(),
        net,
        node_did,
        peer_id: knoop_did::binding::peer_id_of(&key.verifying_key()),
        dids,
        resolver,
        credentials,
        prefetch,
        status_hosting,
        private,
        localisation,
        consents,
        audit,
        tokens,
        sources,
        consent_registration,
        web_dids,
        directory,
        fetcher,
        requester,
        credential_offers,
        wallet,
        pdp,
        admin_directory,
        update_client,
        subscriptions,
        notify_endpoint: cfg.consent.notify_endpoint.clone(),
        nvi,
        public_url,
        patient_service: patient_service.as_ref().map(|p| p.organisation.clone()),
        public_certificate_expires_ms,
        metrics,
        data_dir: cfg.data_dir.clone(),
        backup_dir: cfg
            .rpc
            .backup_dir
            .clone()
            .unwrap_or_else(|| cfg.data_dir.join("backups")),
        clients: crate::api::rpc::caller::Clients::from_config(&cfg.rpc),
        started: Instant::now(),
        stop: stop_tx.subscribe(),
    });
    drop(handle);
    let limiter = crate::ops::rate_limit::ClientLimiter::new(
        cfg.public.rate_limit,
        cfg.public.rate_burst,
        state.metrics.clone(),
    );
    let pruner = limiter
        .as_ref()
        .map(|l| l.spawn_pruner(stop_tx.subscribe()));
    let public_task = match public {
        Some(p) => {
            let app = crate::api::public::router(
                p.url.clone(),
                state.tokens.clone(),
                state.dids.clone(),
                proxy,
                notified,
                state.web_dids.clone(),
                state.status_hosting.clone(),
                (state.credential_offers.clone(), state.prefetch.clone()),
                state.admin_directory.clone(),
                cfg.public.client_ca_file.is_some(),
                state.metrics.clone(),
                limiter,
                patient_service,
            );
            tokio::spawn(p.serve(app, stop_tx.subscribe()))
        }
        None => tokio::spawn(async {}),
    };
    // One signal stops everything: RPC stops accepting (and event streams end), the network
    // task leaves its loop.
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            info!("shutting down");
            let _ = stop_tx.send(true);
        })
        .await
        .context("rpc server")?;
    let _ = public_task.await;
    if let Some(p) = pruner {
        let _ = p.await;
    }
    let _ = net_task.await;
    let _ = indexer.await;
    let _ = private_task.await;
    let _ = loc_task.await;
    let _ = update_task.await;
    let _ = subscription_task.await;
    // The log task ends when the last handle is gone; it finishes the group it is committing.
    let _ = log_task.await;
    store.flush()?;
    if let Some((holder, renewal)) = lease {
        renewal.abort();
        match store.step_down(&holder) {
            Ok(()) => info!("stepped down: a standby replica takes over now"),
            Err(e) => {
                tracing::warn!(error = %e, "stepping down failed; a standby takes over when the lease runs out")
            }
        }
    }
    let _ = std::fs::remove_file(cfg.data_dir.join("rpc.addr"));
    let _ = std::fs::remove_file(cfg.data_dir.join("public.addr"));
    info!("stopped");
    Ok(())
}

/// A client for HTTPS fetches (did:web, status lists, key sets) trusting the web PKI, `extra_ca`
/// and the CA of other nodes' public APIs (`public.ca_file`).
fn https_client(
    cfg: &Config,
    extra_ca: Option<&std::path::Path>,
    timeout: std::time::Duration,
) -> Result<DidWebClient, crate::identity::didweb::DidWebError> {
    let cas: Vec<&std::path::Path> = [extra_ca, cfg.public.ca_file.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    DidWebClient::with_cas(&cas, timeout)
}

/// Indexes published credentials and revocations whenever the log stores something (and every
/// second, so nothing is missed when the event stream lags), off the ingest path; then brings
/// the mCSD directory view up to date with them and with the published directory changes.
fn spawn_indexer(
    credentials: Arc<crate::identity::credentials::Credentials>,
    view: Arc<crate::directory::view::DirectoryView>,
    log: &LogHandle<dyn NodeStore>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    crate::indexing::after_commits(log, stop, "index_credentials", move || {
        credentials.catch_up();
        view.refresh();
    })
}

/// The update client's HTTP client: the web PKI and `mcsd.ca_file`, and the client identity of
/// `mcsd.tls_cert` and `mcsd.tls_key` for directories that require mutual TLS.
fn mcsd_client(cfg: &crate::config::McsdConfig) -> anyhow::Result<reqwest::Client> {
    let mut b = crate::https::builder(cfg.ca_file.as_deref(), std::time::Duration::from_secs(15))
        .context("mcsd.ca_file")?;
    if let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) {
        let read = |p: &std::path::Path, field: &str| {
            std::fs::read(p).with_context(|| format!("mcsd.{field} {}", p.display()))
        };
        let pem = [
            read(cert, "tls_cert")?,
            b"\n".to_vec(),
            read(key, "tls_key")?,
        ]
        .concat();
        let identity = reqwest::Identity::from_pem(&pem)
            .context("mcsd.tls_cert and mcsd.tls_key: not a PEM certificate and key")?;
        b = b.identity(identity);
    }
    b.build().context("mcsd client")
}

/// Runs the mCSD update client's rounds every `interval` (none when it has no roots or the
/// interval is zero), each followed by a refresh of the directory view.
fn spawn_update_client(
    client: Arc<crate::directory::update_client::UpdateClient>,
    view: Arc<crate::directory::view::DirectoryView>,
    interval: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !client.enabled() || interval.is_zero() {
            return;
        }
        loop {
            let report = client.update().await;
            let errors: usize = report.values().map(|r| r.errors.len()).sum();
            info!(directories = report.len(), errors, "mCSD update round");
            let v = view.clone();
            let _ = tokio::task::spawn_blocking(move || v.refresh()).await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => break,
            }
        }
    })
}

/// The patient service (`specs/patient-view.md` §6), if `[patient_service]` names a provider:
/// its organisation is the configured tenant, or one this node made at its first start.
async fn patient_service(
    cfg: &Config,
    public_url: Option<&str>,
    store: &Arc<dyn NodeStore>,
    parts: crate::care::patient_service::Parts,
) -> anyhow::Result<Option<Arc<crate::care::patient_service::PatientService>>> {
    const DID_KEY: &[u8] = b"patient_service_did";
    let p = &cfg.patient_service;
    let Some(issuer) = &p.issuer else {
        return Ok(None);
    };
    let public_url = public_url.context("the patient service needs the public API")?;
    if parts.localisation.network_id().is_none() {
        anyhow::bail!("the patient service needs localisation (localisation.pepper)");
    }
    let secret = match (&p.client_secret, &p.client_secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading patient_service.client_secret_file {}", f.display()))?
            .trim()
            .to_owned(),
        (None, None) => anyhow::bail!("patient_service.client_secret is required"),
    };
    let hosted = parts.ops.hosted()?;
    let organisation = match &p.organisation {
        Some(d) if hosted.contains(d) => d.clone(),
        Some(d) => anyhow::bail!("patient_service.organisation {d} is not hosted here"),
        None => match store
            .get_meta(DID_KEY)?
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|d| hosted.contains(d))
        {
            Some(d) => d,
            None => {
                let node = parts.localisation.node_did().to_owned();
                let (did, _) = parts.ops.create(&[], &[], Some(&node), None).await?;
                store.put_meta(DID_KEY, did.as_bytes())?;
                info!(%did, name = %p.name, "made the patient service's organisation DID");
                did
            }
        },
    };
    let http = crate::https::client(p.ca_file.as_deref(), p.timeout)
        .context("the patient service's client for its identity provider")?;
    let oidc = crate::care::patient_service::oidc::Client::new(
        http,
        issuer.clone(),
        p.client_id.clone(),
        zeroize::Zeroizing::new(secret),
        p.scope.clone(),
        p.bsn_claim.clone(),
    );
    info!(%organisation, %issuer, "serving patients at {public_url}/patient/");
    Ok(Some(Arc::new(
        crate::care::patient_service::PatientService::new(
            organisation,
            public_url,
            Box::new(oidc),
            parts,
        ),
    )))
}

/// The localisation parameters, if a pepper is configured.
fn localisation_params(
    cfg: &Config,
) -> anyhow::Result<Option<knoop_privacy::patient::NetworkParams>> {
    let l = &cfg.localisation;
    let hex_pepper = match (&l.pepper, &l.pepper_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading localisation.pepper_file {}", f.display()))?
            .trim()
            .to_owned(),
        (None, None) => return Ok(None),
    };
    let mut pepper = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(&hex_pepper, pepper.as_mut())
        .context("localisation.pepper must be 64 hex digits")?;
    Ok(Some(knoop_privacy::patient::NetworkParams {
        network_id: cfg.network.id.clone(),
        epoch: l.epoch,
        pepper,
        m_kib: l.argon2_m_kib,
        t: l.argon2_t,
        p: l.argon2_p,
    }))
}

/// Opens the keystore with the configured master key (creating a development key file when
/// none is configured).
fn open_keystore(cfg: &Config, store: Arc<dyn NodeStore>) -> anyhow::Result<KeyStore> {
    let master = match (&cfg.keys.master_key, &cfg.keys.master_key_file) {
        (Some(hex), _) => MasterKey::from_hex(hex)?,
        (None, Some(file)) => MasterKey::from_file(file, false)?.0,
        (None, None) => {
            let file = cfg.data_dir.join("master.key");
            let (key, created) = MasterKey::from_file(&file, true)?;
            if created {
                tracing::warn!(
                    file = %file.display(),
                    "created a master key beside the store: fine for development; in \
                     production give keys.master_key (KNOOP_KEYS__MASTER_KEY) from a secret store"
                );
            }
            key
        }
    };
    let previous = cfg
        .keys
        .previous_master_keys
        .iter()
        .map(|k| MasterKey::from_hex(k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KeyStore::open(store, &master, &previous)?)
}

/// The node's DID: the hosted DID whose `KnoopNode` service binds this node's peer id, created
/// on first start.
async fn node_did(dids: &DidOps, key: &ed25519_dalek::SigningKey) -> anyhow::Result<String> {
    let peer_id = knoop_did::binding::peer_id_of(&key.verifying_key());
    if let Some(did) = dids.state.did_of_peer(&peer_id) {
        if dids.hosted()?.contains(&did) {
            return Ok(did);
        }
    }
    let (did, _) = dids
        .create(&[], &[], None, Some(key))
        .await
        .context("creating the node DID")?;
    Ok(did)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A members-only network's rules (`specs/admission.md`), once this node's own credential is
/// found to make it a member; `None` for an open network.
async fn membership(
    cfg: &Config,
    key: &ed25519_dalek::SigningKey,
    credentials: &Arc<crate::identity::credentials::Credentials>,
    prefetch: &Arc<crate::identity::prefetch::Prefetcher>,
) -> anyhow::Result<Option<Arc<dyn knoop_gossip::net::Admission>>> {
    if cfg.p2p.membership_issuers.is_empty() {
        return Ok(None);
    }
    let file = cfg
        .p2p
        .membership_credential
        .as_ref()
        .context("p2p.membership_credential is required in a members-only network")?;
    let own = std::fs::read_to_string(file)
        .with_context(|| format!("reading p2p.membership_credential {}", file.display()))?;
    let m = crate::identity::membership::Membership::new(
        &cfg.p2p,
        own.clone(),
        credentials.clone(),
        prefetch.clone(),
    );
    let peer_id = knoop_did::binding::peer_id_of(&key.verifying_key());
    m.check(&peer_id, &own).await.map_err(|why| {
        anyhow::anyhow!(
            "p2p.membership_credential {} does not make this node ({peer_id}) a member: {why}",
            file.display()
        )
    })?;
    tracing::info!(issuers = ?cfg.p2p.membership_issuers, network = %cfg.p2p.membership_network,
        "members-only network: serving only peers with a membership credential");
    let m = Arc::new(m);
    m.clone().watch(
        file.clone(),
        peer_id,
        cfg.p2p
            .membership_reverify
            .min(std::time::Duration::from_secs(30)),
    );
    Ok(Some(m))
}
