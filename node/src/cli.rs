//! The `knoop` command line: the clap definitions ([`args`]), the commands that talk to a
//! running node over its RPC ([`client`]), the load generator ([`load`]) and the
//! micro-benchmarks ([`bench`]). [`run`] carries out one parsed command; `run` starts a node
//! through the builder ([`crate::node`]).

pub mod args;
pub mod bench;
pub mod client;
pub mod load;

pub use args::*;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Run(args) => {
            let overrides = crate::config::Overrides {
                log_format: args.log_format,
                log_level: args.log_level,
                ..args.node.overrides()
            };
            let cfg = crate::config::Config::load(args.config.as_deref(), &overrides)?;
            if args.dump_config {
                print!("{}", toml::to_string_pretty(&cfg)?);
                return Ok(());
            }
            let traces = init_tracing(&cfg.log)?;
            let res = rt.block_on(crate::node::run(cfg));
            // Export what is still batched before the process ends.
            if let Some(provider) = traces {
                if let Err(e) = provider.shutdown() {
                    eprintln!("OTLP trace export: {e}");
                }
            }
            res
        }
        Command::Init(args) => print_json(init(&rt, args)?),
        Command::Backup { rpc, name } => print_json(rt.block_on(client::backup(&rpc, &name))?),
        Command::Restore {
            from,
            config,
            data_dir,
        } => {
            let overrides = crate::config::Overrides {
                data_dir,
                ..Default::default()
            };
            let cfg = crate::config::Config::load(config.as_deref(), &overrides)?;
            let manifest = crate::ops::backup::restore(&from, &cfg.data_dir)?;
            print_json(serde_json::json!({
                "restored_into": cfg.data_dir,
                "manifest": manifest,
            }))
        }
        Command::ApiClient {
            name,
            tenants,
            admin,
        } => print_json(api_client(name, tenants, admin)?),
        Command::MembershipCredential {
            issuer_key,
            subject,
            peer_id,
            network,
            valid_days,
        } => print_json(crate::identity::membership::issue_with_key_file(
            &issuer_key,
            subject.as_deref().zip(peer_id.as_deref()),
            &network,
            valid_days,
        )?),
        Command::Status(rpc) => print_json(rt.block_on(client::status(&rpc))?),
        Command::Tx(cmd) => print_json(rt.block_on(client::tx(cmd))?),
        Command::Did(cmd) => print_json(rt.block_on(client::did(cmd))?),
        Command::Vc(cmd) => print_json(rt.block_on(client::vc(cmd))?),
        Command::Private(cmd) => print_json(rt.block_on(client::private(cmd))?),
        Command::Loc(cmd) => print_json(rt.block_on(client::loc(cmd))?),
        Command::Consent(cmd) => print_json(rt.block_on(client::consent(cmd))?),
        Command::Audit(cmd) => print_json(rt.block_on(client::audit(cmd))?),
        Command::Data(cmd) => print_json(rt.block_on(client::data(cmd))?),
        Command::Pdp(crate::cli::args::PdpCommand::Test { dir }) => {
            let results = crate::care::pdp::run_tests(&dir)?;
            let failed = results.iter().filter(|r| !r.passed).count();
            print_json(serde_json::json!({
                "passed": results.len() - failed,
                "failed": failed,
                "tests": results,
            }))?;
            if failed > 0 {
                anyhow::bail!("{failed} of {} policy tests failed", results.len());
            }
            Ok(())
        }
        Command::Load(args) => print_json(rt.block_on(load::run(args))?),
        Command::Bench(cmd) => print_json(bench::run(cmd)?),
    }
}

/// `knoop api-client`: a random token (256 bits, base64url) and the `[[rpc.clients]]` entry
/// with its SHA-256, checked as the node will check it.
fn api_client(
    name: String,
    tenants: Vec<String>,
    admin: bool,
) -> anyhow::Result<serde_json::Value> {
    use base64::Engine;
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let client = crate::config::ApiClient {
        name,
        token_sha256: hex::encode(crate::api::rpc::caller::sha256(&token)),
        tenants,
        admin,
    };
    let mut cfg = crate::config::Config::default();
    cfg.rpc.clients = vec![client.clone()];
    cfg.validate()?;
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        rpc: Clients<'a>,
    }
    #[derive(serde::Serialize)]
    struct Clients<'a> {
        clients: [&'a crate::config::ApiClient; 1],
    }
    let config = toml::to_string(&Entry {
        rpc: Clients { clients: [&client] },
    })?;
    Ok(serde_json::json!({
        "name": client.name,
        "token": token,
        "config": config,
    }))
}

/// `knoop init`: the config file first (so the node later starts from exactly what init
/// used), then the data directory, keys and node DID.
fn init(rt: &tokio::runtime::Runtime, args: InitArgs) -> anyhow::Result<serde_json::Value> {
    let overrides = args.node.overrides();
    let wrote_config = !args.config.exists();
    if wrote_config {
        // Defaults and the command line only: secrets from the environment stay out of it.
        let mut cfg = crate::config::Config::default();
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
    let cfg = crate::config::Config::load(Some(&args.config), &overrides)?;
    init_tracing(&crate::config::LogSettings {
        level: "warn".into(),
        otlp_endpoint: None,
        ..cfg.log.clone()
    })?;
    let mut out = rt.block_on(crate::node::init(&cfg))?;
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

/// Logs to stderr (text or JSON) and, when an OTLP endpoint is configured, spans to the
/// collector: the tracer provider to shut down at the end, so batched spans are sent.
fn init_tracing(
    log: &crate::config::LogSettings,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KNOOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    // Colour only on a terminal (and not with NO_COLOR set, no-color.org): a log file, journald
    // or a log shipper gets plain text.
    use std::io::IsTerminal as _;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let fmt = if log.format == "json" {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let (provider, otel) = match crate::ops::otlp::endpoint(log.otlp_endpoint.as_deref()) {
        Some(url) => {
            let (provider, tracer) =
                crate::ops::otlp::tracer(&url).map_err(|e| anyhow::anyhow!(e))?;
            (
                Some(provider),
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
            )
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    Ok(provider)
}
