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
            init_tracing(&cfg.log);
            rt.block_on(crate::node::run(cfg))
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
        ..cfg.log.clone()
    });
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

fn init_tracing(log: &crate::config::LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KNOOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    // Colour only on a terminal (and not with NO_COLOR set, no-color.org): a log file, journald
    // or a log shipper gets plain text.
    use std::io::IsTerminal as _;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
