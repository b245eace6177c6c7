//! The `respite` binary: parse the CLI, load the config, start logging, bind, run
//! until SIGINT/SIGTERM.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use respite::Config;

/// Exit code for an invalid configuration (EX_USAGE, as in sysexits.h).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(version, about = "A transparent Redis-protocol caching proxy")]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "proxy.toml")]
    config: PathBuf,
    /// Print every metric (name, type, labels, help) and exit.
    #[arg(long)]
    list_metrics: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and print the effective settings.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_metrics {
        print!("{}", respite::metrics::describe());
        return ExitCode::SUCCESS;
    }
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("respite: invalid configuration: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Some(Command::Check) => {
            print_check(&cli, &config);
            ExitCode::SUCCESS
        }
        None => match serve(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("respite: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let explicit =
        std::env::args().any(|a| a == "--config" || a == "-c" || a.starts_with("--config="));
    if !explicit && !cli.config.exists() {
        // No file: defaults plus environment overrides.
        let mut config = Config::default();
        config.apply_env(|k| std::env::var(k).ok());
        config.validate("")?;
        return Ok(config);
    }
    Ok(Config::load(&cli.config)?)
}

fn print_check(cli: &Cli, config: &Config) {
    println!("{}: ok", cli.config.display());
    println!("listen    {}", config.server.listen);
    println!(
        "upstream  {} (pool_size {})",
        config.upstream.url, config.upstream.pool_size
    );
    for ns in &config.namespaces {
        println!("namespace {:<16} match {:?}", ns.name, ns.pattern);
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    respite::logging::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.worker_threads())
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        respite::run(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}
