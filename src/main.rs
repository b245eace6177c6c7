//! The `respite` binary: parse the CLI, load the config, start logging, bind, run
//! until SIGINT/SIGTERM.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use respite::{Config, policy::Policy};

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
    /// Validate the configuration and print the effective settings and rules.
    Check,
    /// Say which namespace rule applies to each key and what it does.
    Explain {
        /// Keys to look up.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Commands sent to a running proxy (`--addr`): stats, delpattern, warm, flush, reload,
    /// top.
    #[command(flatten)]
    Admin(respite::cli::AdminCommand),
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.list_metrics {
        print!("{}", respite::metrics::describe());
        return ExitCode::SUCCESS;
    }
    let offline = match cli.command.take() {
        // Talks to a running proxy: no config needed.
        Some(Command::Admin(cmd)) => return respite::cli::run(cmd),
        other => other,
    };
    let (config, policy) = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("respite: invalid configuration: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match offline {
        Some(Command::Check) => {
            // The TLS files are read too, as the listener and the upstream will.
            let listener = respite::tls::listener(&config.server)
                .map(|_| ())
                .map_err(|e| format!("server TLS: {e}"));
            if let Err(e) = listener.and_then(|()| check_upstream_tls(&config)) {
                eprintln!("respite: invalid configuration: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            print_check(&cli, &config, &policy);
            ExitCode::SUCCESS
        }
        Some(Command::Explain { keys }) => {
            for key in keys {
                println!("{key}: {}", policy.explain(key.as_bytes()));
            }
            ExitCode::SUCCESS
        }
        Some(Command::Admin(_)) => unreachable!("handled above"),
        None => match serve(config, policy) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("respite: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The configuration and its rules, checked (the rules are compiled once, here).
fn load(cli: &Cli) -> anyhow::Result<(Config, Policy)> {
    let explicit =
        std::env::args().any(|a| a == "--config" || a == "-c" || a.starts_with("--config="));
    let config = if !explicit && !cli.config.exists() {
        // No file: defaults plus environment overrides.
        let mut config = Config::default();
        config.apply_env(|k| std::env::var(k).ok());
        config.validate("")?;
        config
    } else {
        Config::load(&cli.config)?
    };
    let policy = Policy::from_config(&config)?;
    Ok((config, policy))
}

/// For a `rediss://` upstream, reads its certificate files as the proxy would (an
/// error names the file).
fn check_upstream_tls(config: &Config) -> Result<(), String> {
    respite::upstream::Endpoint::new(&config.upstream).map(drop)
}

/// How a `rediss://` upstream is checked and what the proxy presents to it.
fn upstream_tls(up: &respite::config::UpstreamConfig) -> String {
    let ca = up
        .tls_ca
        .as_ref()
        .map_or("the system's CAs".to_owned(), |p| {
            format!("CA {}", p.display())
        });
    let name = up
        .tls_server_name
        .as_ref()
        .map_or(String::new(), |n| format!(", server name {n}"));
    let cert = up.tls_cert.as_ref().map_or(String::new(), |p| {
        format!(", client certificate {}", p.display())
    });
    format!("; TLS, {ca}{name}{cert}")
}

fn print_check(cli: &Cli, config: &Config, policy: &Policy) {
    println!("{}: ok", cli.config.display());
    println!(
        "listen    {} ({} event loop{})",
        config.server.listen,
        config.server.event_loops(),
        if config.server.event_loops() == 1 {
            ""
        } else {
            "s"
        }
    );
    print_clients(config);
    print_tls(&config.server);
    let up = &config.upstream;
    let tls = respite::config::UpstreamAddr::parse(&up.url).is_ok_and(|a| a.tls);
    println!(
        "upstream  {} (pool_size {}{})",
        respite::config::redact(&up.url),
        up.pool_size,
        if tls { upstream_tls(up) } else { String::new() }
    );
    let show = respite::config::show_interval;
    println!(
        "metrics   {}; Redis INFO polled every {}, namespace sizes sampled every {}",
        config
            .metrics
            .listen
            .as_deref()
            .map_or("no HTTP endpoint".to_owned(), |l| format!("listen {l}")),
        show(config.metrics.upstream_poll),
        show(config.metrics.namespace_sizes)
    );
    println!(
        "l1        ACL changes on Redis checked every {}",
        show(config.l1.acl_check)
    );
    if config.metrics.listen.is_some() {
        let put = if config.metrics.allow_loglevel {
            "allowed"
        } else {
            "refused (allow_loglevel = false)"
        };
        println!("          PUT /loglevel {put}");
    }
    print_admin(config);
    if policy.rules().is_empty() {
        println!("no namespace rules: every key passes through unchanged");
    }
    for rule in policy.rules() {
        println!(
            "rule {} `{}` match `{}`: {}",
            rule.index + 1,
            rule.name,
            rule.pattern,
            rule.describe()
        );
    }
}

/// `[server]`'s limits on clients.
fn print_clients(config: &Config) {
    let server = &config.server;
    let per_ip = match server.max_clients_per_ip {
        0 => "no limit per address".to_owned(),
        n => format!("at most {n} per address"),
    };
    let timeout = match respite::config::show_interval(server.timeout).as_str() {
        "off" => "never closed when idle".to_owned(),
        t => format!("closed after {t} idle"),
    };
    println!(
        "clients   at most {}, {per_ip}; {timeout}",
        server.max_clients
    );
}

/// Who may run the RESPITE admin commands (the password is never printed).
fn print_admin(config: &Config) {
    use respite::admin::Access;
    let access = Access::of(&config.admin, &config.server.client_listeners());
    let text = match access {
        Access::Disabled => "disabled ([admin] enabled = false)",
        Access::Password => "after RESPITE AUTH ([admin] password is set)",
        Access::Loopback => "allowed without a password (clients connect on loopback only)",
        Access::Exposed => {
            "REFUSED: clients can connect from other hosts and no [admin] password is set"
        }
    };
    println!("admin     RESPITE commands {text}");
}

fn print_tls(server: &respite::config::ServerConfig) {
    let (Some(listen), Some(cert)) = (&server.tls_listen, &server.tls_cert) else {
        return;
    };
    let clients = match &server.tls_client_ca {
        Some(ca) => format!("client certificates signed by {} required", ca.display()),
        None => "no client certificates".to_owned(),
    };
    println!(
        "tls       {listen} (certificate {}, {clients})",
        cert.display()
    );
}

fn serve(config: Config, policy: Policy) -> anyhow::Result<()> {
    respite::logging::init(&config.log);
    let runtime = respite::server::runtime().context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        respite::server::run_with(config, policy, listener, shutdown_signal()).await?;
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
