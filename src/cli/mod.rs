//! The command line: `codebeaker serve|api|worker` start a node; `run`, `languages`, `cluster`
//! and `bench` are clients of a running server; `mcp` serves AI agents on stdio. `main.rs`
//! only calls [`main`].
//!
//! - [`run`]: `codebeaker run FILE`: the request from a file, the answer as output and exit code.
//! - [`lists`]: the tables of `languages` and `cluster`.
//! - [`mcp`]: `codebeaker mcp`, with a node of its own when pointed at no server.

mod lists;
mod mcp;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::bench::BenchOptions;
use crate::client::Client;
use crate::config::Config;
use crate::node::{Node, Role};
use crate::queue::embedded;

#[derive(Parser)]
#[command(
    name = "codebeaker",
    version,
    about = "Runs untrusted code in hardened, throw-away containers"
)]
pub struct Cli {
    /// Config file (TOML); `codebeaker.toml` in the current directory is read when present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole node: API and workers (and its own nats-server unless --nats is given).
    Serve(NodeArgs),
    /// Run the API half: REST and NATS request/reply; no Docker needed.
    Api(NodeArgs),
    /// Run the worker half: pull jobs from NATS and run them.
    Worker(NodeArgs),
    /// Run a source file on a server; prints its output and exits with its exit code.
    Run {
        file: PathBuf,
        /// Language name or alias; guessed from the file extension when omitted.
        #[arg(long)]
        language: Option<String>,
        /// Run it against the test cases in this JSON file (`[{"stdin", "expected_output"}]`):
        /// prints each case's verdict and exits 0 only when every case is accepted.
        #[arg(long)]
        tests: Option<PathBuf>,
        /// Print the output as the program writes it rather than at the end (REST only).
        #[arg(long)]
        stream: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the languages a server runs.
    Languages {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Serve MCP on stdin and stdout: code-execution tools for AI agents.
    ///
    /// MCP is the Model Context Protocol. Jobs run on the server named by --url or --nats; with neither, on a node of
    /// its own started here (Docker and nats-server, as `scripts/setup.sh` installs them).
    Mcp(mcp::McpArgs),
    /// List the cluster's live nodes: role, workers, busy, languages, version, last heartbeat.
    Cluster {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Measure a running server's latency beside `docker run --rm` and a bare process.
    Bench {
        /// The server's REST address.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        url: String,
        /// Also measure this server in the same run (an older build, another deployment).
        #[arg(long)]
        baseline_url: Option<String>,
        /// Runs per workload.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Also time each language's hello world this many times.
        #[arg(long, default_value_t = 0)]
        per_language: usize,
        /// Also measure `codebeaker.execute` request/reply over this NATS server.
        #[arg(long)]
        nats: Option<String>,
        /// Also run the sequential workload with this many milliseconds between jobs.
        #[arg(long)]
        pause_ms: Option<u64>,
        /// Also submit this many `print(1)` jobs asynchronously and report jobs per second.
        #[arg(long, default_value_t = 0)]
        async_jobs: usize,
        /// Also time a C++ program with this many test cases in one request, beside as many
        /// separate requests.
        #[arg(long, default_value_t = 0)]
        test_cases: usize,
        /// Concurrent clients submitting the async jobs.
        #[arg(long, default_value_t = 10)]
        clients: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct NodeArgs {
    /// HTTP address (default 127.0.0.1:8000).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Jobs run at once on this node.
    #[arg(long)]
    workers: Option<usize>,
    /// NATS server or cluster URL.
    #[arg(long)]
    nats: Option<String>,
}

#[derive(Args)]
pub struct ServerArgs {
    /// Talk to the server over NATS request/reply at this URL.
    #[arg(long, conflicts_with = "url")]
    nats: Option<String>,
    /// Talk to the server over REST at this address.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
}

impl ServerArgs {
    pub async fn client(&self, config: &Config) -> Result<Client, String> {
        client(self.nats.as_deref(), &self.url, config).await
    }
}

/// A client over NATS when given its URL (with this machine's kept credentials unless some
/// are configured), else over REST at `url`.
async fn client(nats: Option<&str>, url: &str, config: &Config) -> Result<Client, String> {
    match nats {
        Some(nats_url) => {
            let nats = embedded::with_kept_credentials(&config.nats).map_err(|e| e.to_string())?;
            Client::nats(nats_url, &nats)
                .await
                .map_err(|e| e.to_string())
        }
        None => Ok(Client::rest(url)),
    }
}

/// Parses the command line and runs the command; the process exits with what this returns.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("codebeaker: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let level = match cli.command {
        Command::Serve(_) | Command::Api(_) | Command::Worker(_) => "info",
        _ => "warn",
    };
    crate::telemetry::init(config.log_format, level);
    match cli.command {
        Command::Serve(args) => serve(apply(config, args), Role::Serve).await,
        Command::Api(args) => serve(apply(config, args), Role::Api).await,
        Command::Worker(args) => serve(apply(config, args), Role::Worker).await,
        Command::Run {
            file,
            language,
            tests,
            stream,
            server,
        } => {
            let how = run::RunOptions { tests, stream };
            run::run(&file, language, how, &server, &config).await
        }
        Command::Languages { server } => lists::languages(&server, &config).await,
        Command::Cluster { server } => lists::cluster(&server, &config).await,
        Command::Mcp(args) => mcp::serve(args, config).await,
        Command::Bench {
            url,
            baseline_url,
            runs,
            per_language,
            nats,
            pause_ms,
            async_jobs,
            clients,
            test_cases,
            json,
        } => {
            let options = BenchOptions {
                url,
                baseline_url,
                runs,
                per_language,
                nats_url: nats,
                pause: pause_ms.map(std::time::Duration::from_millis),
                async_jobs,
                clients: clients.max(1),
                test_cases,
            };
            bench(options, &config, json).await
        }
    }
}

fn apply(mut config: Config, args: NodeArgs) -> Config {
    config.listen = args.listen.unwrap_or(config.listen);
    config.workers = args.workers.unwrap_or(config.workers);
    config.nats.url = args.nats.or(config.nats.url);
    config
}

async fn serve(config: Config, role: Role) -> ExitCode {
    let node = match Node::start(config, role).await {
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

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("codebeaker: {message}");
    ExitCode::FAILURE
}

async fn bench(options: BenchOptions, config: &Config, json: bool) -> ExitCode {
    match crate::bench::run(&options, config).await {
        Ok(results) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&results).expect("serialisable")
            );
            ExitCode::SUCCESS
        }
        Ok(results) => {
            crate::bench::print_table(&results);
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("bench: {e}")),
    }
}
