//! `horace`: the command-line client of the Horace query service.
//!
//! Parses flags, runs one command on a single-threaded runtime, prints errors as one line
//! (`horace: …`) and maps them to the exit codes documented in `--help`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let json = args.json;
    if matches!(args.command, cli::Command::Mcp(_)) {
        // stdout carries the protocol: logs go to stderr, warnings only unless RUST_LOG.
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("horace: failed to start the runtime: {e}");
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if cli::quiet_exit(&e).is_some() => ExitCode::from(cli::exit_code(&e)),
        Err(e) if json => {
            // One JSON object on stderr: what a script matches on, the message unescaped.
            let code = cli::exit_code(&e);
            let err = serde_json::json!({
                "error": cli::error_name(&e),
                "message": format!("{e:#}"),
                "exit_code": code,
            });
            eprintln!("{err}");
            ExitCode::from(code)
        }
        Err(e) => {
            // Error messages can quote names: escaped like every human output.
            eprintln!("horace: {}", cli::escape(&format!("{e:#}")));
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
