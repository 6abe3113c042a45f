//! The `knoop` binary: parses the command line and hands it to the library
//! ([`knoop_node::cli::run`]). Everything else lives in the library; see `lib.rs`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = knoop_node::cli::Cli::parse();
    match knoop_node::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
