//! # knoop: the node binary
//!
//! This binary only wires: the CLI ([`cli`]), the configuration ([`config`]), the durable store
//! ([`store`], rocksdb), the node identity key and the keystore ([`keys`], [`keystore`]), DIDs ([`did_state`], [`did_ops`], [`resolver`]), the internal RPC ([`rpc`]) and the builder that
//! starts the log service and the network from `knoop-gossip` ([`node`]). The CLI commands other
//! than `run` talk to a running node over its RPC ([`client`], [`load`]); `bench` measures the
//! log on this machine ([`bench`]).

mod answers;
mod audit;
mod backup;
mod bench;
mod cli;
mod client;
mod config;
mod consent;
mod credentials;
mod data_proxy;
mod did_ops;
mod did_state;
mod didweb;
mod fetch;
mod keys;
mod keystore;
mod load;
mod localisation;
mod metrics;
mod node;
mod private;
mod public;
mod rate_limit;
mod resolver;
mod rpc;
mod rpc_admin;
mod rpc_audit;
mod rpc_consent;
mod rpc_did;
mod rpc_localisation;
mod rpc_private;
mod rpc_tokens;
mod rpc_vc;
mod source;
mod status_list;
mod store;
mod tokens;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Run(args) => {
            let overrides = config::Overrides {
                log_format: args.log_format,
                log_level: args.log_level,
                ..args.node.overrides()
            };
            let cfg = config::Config::load(args.config.as_deref(), &overrides)?;
            if args.dump_config {
                print!("{}", toml::to_string_pretty(&cfg)?);
                return Ok(());
            }
            init_tracing(&cfg.log);
            rt.block_on(node::run(cfg))
        }
        Command::Init(args) => print_json(init(&rt, args)?),
        Command::Backup { rpc, out } => {
            let out = std::path::absolute(&out)?;
            print_json(rt.block_on(client::backup(&rpc, &out))?)
        }
        Command::Restore {
            from,
            config,
            data_dir,
        } => {
            let overrides = config::Overrides {
                data_dir,
                ..Default::default()
            };
            let cfg = config::Config::load(config.as_deref(), &overrides)?;
            let manifest = backup::restore(&from, &cfg.data_dir)?;
            print_json(serde_json::json!({
                "restored_into": cfg.data_dir,
                "manifest": manifest,
            }))
        }
        Command::Status(rpc) => print_json(rt.block_on(client::status(&rpc))?),
        Command::Tx(cmd) => print_json(rt.block_on(client::tx(cmd))?),
        Command::Did(cmd) => print_json(rt.block_on(client::did(cmd))?),
        Command::Vc(cmd) => print_json(rt.block_on(client::vc(cmd))?),
        Command::Private(cmd) => print_json(rt.block_on(client::private(cmd))?),
        Command::Loc(cmd) => print_json(rt.block_on(client::loc(cmd))?),
        Command::Consent(cmd) => print_json(rt.block_on(client::consent(cmd))?),
        Command::Audit(cmd) => print_json(rt.block_on(client::audit(cmd))?),
        Command::Data(cmd) => print_json(rt.block_on(client::data(cmd))?),
        Command::Load(args) => print_json(rt.block_on(load::run(args))?),
        Command::Bench(cmd) => print_json(bench::run(cmd)?),
    }
}

/// `knoop init`: the config file first (so the node later starts from exactly what init
/// used), then the data directory, keys and node DID.
fn init(rt: &tokio::runtime::Runtime, args: cli::InitArgs) -> anyhow::Result<serde_json::Value> {
    let overrides = args.node.overrides();
    let wrote_config = !args.config.exists();
    if wrote_config {
        // Defaults and the command line only: secrets from the environment stay out of it.
        let mut cfg = config::Config::default();
        overrides.apply(&mut cfg);
        let text = format!(
            "# knoop node configuration, written by `knoop init`. Every setting is listed with \
             its value;\n# see README.md (\"Configuration\") for what each does. Secrets \
             (keys.master_key,\n# rpc.token, localisation.pepper) belong in the environment \
             (KNOOP_<SECTION>__<KEY>)\n# or in files named by *_file settings, not here.\n\n{}",
            toml::to_string_pretty(&cfg)?
        );
        std::fs::write(&args.config, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.config.display()))?;
    }
    let cfg = config::Config::load(Some(&args.config), &overrides)?;
    init_tracing(&config::LogSettings {
        level: "warn".into(),
        ..cfg.log.clone()
    });
    let mut out = rt.block_on(node::init(&cfg))?;
    if let Some(o) = out.as_object_mut() {
        o.insert("config".into(), serde_json::json!(args.config));
        o.insert("config_written".into(), serde_json::json!(wrote_config));
        o.insert(
            "next".into(),
            serde_json::json!(format!("knoop run --config {}", args.config.display())),
        );
    }
    Ok(out)
}

fn print_json(v: serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn init_tracing(log: &config::LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KNOOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
