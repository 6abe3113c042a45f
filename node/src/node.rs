//! Wires a node together: store, log service, network, RPC; and shuts it down in order.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use knoop_gossip::{EmbeddedKeys, Log, LogConfig, LogHandle};
use tokio::sync::watch;
use tracing::info;

use crate::config::Config;
use crate::rpc::{router, RpcState};
use crate::store::RocksStore;

/// Runs a node until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data_dir {}", cfg.data_dir.display()))?;
    let key = crate::keys::load_or_create(&cfg.data_dir.join("node.key"))?;
    let t0 = Instant::now();
    let store = Arc::new(RocksStore::open(&cfg.data_dir.join("store"))?);
    let log = Log::open(
        store.clone(),
        Arc::new(EmbeddedKeys::default()),
        LogConfig {
            max_pending: cfg.p2p.max_pending,
            ..LogConfig::default()
        },
    )?;
    info!(
        transactions = log.index().len(),
        ms = t0.elapsed().as_millis() as u64,
        "store opened"
    );
    let (handle, log_task) = LogHandle::spawn(log);

    let (stop_tx, stop_rx) = watch::channel(false);
    let (net, net_task) =
        knoop_gossip::net::spawn(key.to_bytes(), cfg.net_config(), handle.clone(), stop_rx)?;

    let listener = tokio::net::TcpListener::bind(&cfg.rpc.listen)
        .await
        .with_context(|| format!("cannot listen on rpc.listen {}", cfg.rpc.listen))?;
    let rpc_addr = listener.local_addr()?;
    // Scripts and tests that asked for port 0 read the real address here.
    std::fs::write(cfg.data_dir.join("rpc.addr"), rpc_addr.to_string())?;
    info!(%rpc_addr, data_dir = %cfg.data_dir.display(), "rpc listening");

    let state = Arc::new(RpcState {
        log: handle.clone(),
        net,
        node_key: key,
        token: cfg.rpc.token.clone(),
        started: Instant::now(),
        stop: stop_tx.subscribe(),
    });
    drop(handle);
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
    let _ = net_task.await;
    // The log task ends when the last handle is gone; it finishes the group it is committing.
    let _ = log_task.await;
    store.flush()?;
    let _ = std::fs::remove_file(cfg.data_dir.join("rpc.addr"));
    info!("stopped");
    Ok(())
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
