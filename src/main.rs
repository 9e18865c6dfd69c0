//! `datastream`: command-line entry point. Parses flags, loads settings,
//! sets up logging and metrics, and hands each subcommand to `commands`.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod shutdown;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{BenchCommand, Cli, Command, IngestorArgs, UserCommand};
use datastream::{system, Settings};
use shutdown::{until_interrupted, Interrupted};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: memory freed when a burst of
/// streams, resumes or exports ends goes back to the system, where glibc's
/// per-thread arenas kept it (10,000 short streams left ~190 MiB resident).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match run_cli() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<Interrupted>() => {
            eprintln!("interrupted");
            ExitCode::from(130)
        }
        Err(error) => {
            // The message and its causes, without a backtrace: these are
            // user-facing (a taken port, an unreachable database).
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    // Before any part starts: what is recorded before the recorder exists
    // is lost (an ingestor started on a backlog commits its first batches
    // before its /metrics endpoint is up).
    datastream_http::telemetry::prometheus();
    let mut settings = Settings::load(cli.config.as_deref())?;
    cli.overrides.apply(&mut settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(dispatch(cli.command.unwrap_or(Command::Up), settings));
    if result.as_ref().is_err_and(|e| e.is::<Interrupted>()) {
        // A password prompt may still hold a blocking thread; dropping the
        // runtime would wait for it.
        runtime.shutdown_background();
    }
    result
}

/// Runs one subcommand: services until Ctrl-C/SIGTERM, one-shot commands
/// until they end (or are interrupted).
async fn dispatch(command: Command, settings: Settings) -> Result<()> {
    let stop = shutdown::on_signal();
    match command {
        Command::Up => commands::up(settings, stop).await,
        Command::Broker => commands::broker(&settings, stop).await,
        Command::Generator(args) => commands::generator(settings, args, stop).await,
        Command::Ingestor(IngestorArgs { end_session: true }) => {
            commands::end_ingestor_session(&settings).await
        }
        Command::Ingestor(_) => system::run_standalone_ingestor(&settings, stop).await,
        Command::Api => system::run_standalone_api(&settings, stop).await,
        Command::Alerter => datastream::alerting::run_standalone_alerter(&settings, stop).await,
        Command::Grpc => datastream::grpc_gateway::run_standalone_grpc(&settings, stop).await,
        Command::Migrate => until_interrupted(&stop, commands::migrate(&settings)).await,
        Command::User(UserCommand::Add { username, role }) => {
            let add = datastream::user_admin::add(&settings, &username, &role);
            until_interrupted(&stop, add).await
        }
        Command::User(UserCommand::List) => {
            until_interrupted(&stop, datastream::user_admin::list(&settings)).await
        }
        Command::User(UserCommand::SetPassword { username }) => {
            let set = datastream::user_admin::set_password(&settings, &username);
            until_interrupted(&stop, set).await
        }
        Command::User(UserCommand::SetRole { username, role }) => {
            let set = datastream::user_admin::set_role(&settings, &username, &role);
            until_interrupted(&stop, set).await
        }
        Command::User(UserCommand::Delete { username }) => {
            let delete = datastream::user_admin::delete(&settings, &username);
            until_interrupted(&stop, delete).await
        }
        Command::Bench(BenchCommand::Ingest(args)) => {
            until_interrupted(&stop, commands::bench_ingest(&settings, args)).await
        }
        Command::Bench(BenchCommand::Retention(args)) => {
            until_interrupted(&stop, commands::bench_retention(&settings, args)).await
        }
        Command::Bench(BenchCommand::Query(args)) => {
            until_interrupted(&stop, commands::bench_query(&settings, args)).await
        }
        Command::Bench(BenchCommand::Generate(args)) => {
            until_interrupted(&stop, commands::bench_generate(&settings, args)).await
        }
        Command::Bench(BenchCommand::Grpc(args)) => {
            until_interrupted(&stop, commands::bench_grpc(&settings, args)).await
        }
        Command::Bench(BenchCommand::Alerts(args)) => {
            until_interrupted(&stop, commands::bench_alerts(&settings, args)).await
        }
        Command::Bench(BenchCommand::Stream(args)) => {
            until_interrupted(&stop, commands::bench_stream(&settings, args)).await
        }
    }
}

fn init_tracing() {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,rumqttd=off,rumqttc=warn,actix_server=warn,actix_web=warn")
    });
    // Colours only for a terminal: logs piped to a file or a collector
    // stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .fmt_fields(datastream::log_format::escaped_fields())
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
