use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use codebeaker::bench::BenchOptions;
use codebeaker::config::Config;
use codebeaker::node::Node;

#[derive(Parser)]
#[command(
    name = "codebeaker",
    version,
    about = "Runs untrusted code in hardened, throw-away containers"
)]
struct Cli {
    /// Config file (TOML); `codebeaker.toml` in the current directory is read when present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: REST API and workers.
    Serve {
        /// Address of the REST API (default 127.0.0.1:8000).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Jobs run at once on this node.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Measure a running server's latency beside `docker run --rm` and a bare process.
    Bench {
        /// The server's REST address.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        url: String,
        /// Runs per workload.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("codebeaker: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    codebeaker::telemetry::init(config.log_format);
    match cli.command {
        Command::Serve { listen, workers } => {
            config.listen = listen.unwrap_or(config.listen);
            config.workers = workers.unwrap_or(config.workers);
            serve(config).await
        }
        Command::Bench { url, runs, json } => {
            bench(BenchOptions { url, runs }, &config, json).await
        }
    }
}

async fn bench(options: BenchOptions, config: &Config, json: bool) -> ExitCode {
    match codebeaker::bench::run(&options, config).await {
        Ok(results) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&results).expect("serialisable")
            );
            ExitCode::SUCCESS
        }
        Ok(results) => {
            codebeaker::bench::print_table(&results);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("codebeaker bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let node = match Node::start(config).await {
        Ok(node) => node,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    node.shutdown().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
