use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use codebeaker::bench::BenchOptions;
use codebeaker::client::Client;
use codebeaker::config::Config;
use codebeaker::judge::Verdict;
use codebeaker::languages::Languages;
use codebeaker::model::{ExecuteRequest, ExecutionRecord, Status};
use codebeaker::node::{Node, Role};
use codebeaker::queue::embedded;

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
struct ServerArgs {
    /// Talk to the server over NATS request/reply at this URL.
    #[arg(long, conflicts_with = "url")]
    nats: Option<String>,
    /// Talk to the server over REST at this address.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
}

impl ServerArgs {
    async fn client(&self, config: &Config) -> Result<Client, String> {
        match &self.nats {
            Some(url) => {
                let nats =
                    embedded::with_kept_credentials(&config.nats).map_err(|e| e.to_string())?;
                Client::nats(url, &nats).await.map_err(|e| e.to_string())
            }
            None => Ok(Client::rest(&self.url)),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
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
    codebeaker::telemetry::init(config.log_format, level);
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
            let how = RunOptions { tests, stream };
            run(&file, language, how, &server, &config).await
        }
        Command::Languages { server } => languages(&server, &config).await,
        Command::Cluster { server } => cluster(&server, &config).await,
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

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Exit codes of `codebeaker run` when the program did not run to its own exit.
const EXIT_TIME_LIMIT: u8 = 124;
const EXIT_OTHER_LIMIT: u8 = 125;

/// How `codebeaker run` runs the file.
struct RunOptions {
    tests: Option<PathBuf>,
    stream: bool,
}

async fn run(
    file: &std::path::Path,
    language: Option<String>,
    how: RunOptions,
    server: &ServerArgs,
    config: &Config,
) -> ExitCode {
    let request = match run_request(file, language, how.tests.as_deref()) {
        Ok(request) => request,
        Err(e) => return fail(e),
    };
    let client = match server.client(config).await {
        Ok(client) => client,
        Err(e) => return fail(e),
    };
    let answer = match how.stream {
        true => client.stream(&request, print_chunk).await,
        false => client.execute(&request).await,
    };
    let record = match answer {
        Ok(record) => record,
        Err(e) => return fail(e.to_string()),
    };
    if !how.stream {
        print!("{}", record.stdout);
        eprint!("{}", record.stderr);
    }
    let _ = std::io::stdout().flush();
    if let Some(compile) = record
        .compile
        .as_ref()
        .filter(|_| record.status == Status::CompileError)
    {
        eprint!("{}{}", compile.stdout, compile.stderr);
    }
    match &record.tests {
        Some(cases) => report_cases(cases, record.verdict),
        None => exit_status(&record),
    }
}

/// The request: the file, its language, stdin when piped, and the test cases if any.
fn run_request(
    file: &std::path::Path,
    language: Option<String>,
    tests: Option<&std::path::Path>,
) -> Result<ExecuteRequest, String> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let code = read(file)?;
    let language = language.or_else(|| guess_language(file)).ok_or_else(|| {
        format!(
            "cannot tell the language of {}; pass --language",
            file.display()
        )
    })?;
    let tests = match tests {
        Some(path) => serde_json::from_str(&read(path)?).map_err(|e| {
            format!(
                "{}: test cases are a JSON list of {{\"stdin\", \"expected_output\"}}: {e}",
                path.display()
            )
        })?,
        None => Vec::new(),
    };
    let mut stdin = String::new();
    if !std::io::stdin().is_terminal() {
        let _ = std::io::stdin().read_to_string(&mut stdin);
    }
    Ok(ExecuteRequest {
        stdin,
        tests,
        ..ExecuteRequest::new(language, code)
    })
}

/// A live output chunk, written where the program wrote it.
fn print_chunk(event: &str, data: &serde_json::Value) {
    let text = data["data"].as_str().unwrap_or_default();
    match event {
        "stdout" => {
            print!("{text}");
            let _ = std::io::stdout().flush();
        }
        "stderr" => eprint!("{text}"),
        _ => {}
    }
}

/// One line per case, then the overall verdict; 0 only when every case is accepted.
fn report_cases(cases: &[codebeaker::judge::TestResult], verdict: Option<Verdict>) -> ExitCode {
    for (i, case) in cases.iter().enumerate() {
        let ms = case.duration_ms.unwrap_or(0);
        println!("case {:>2}: {:<22} {ms} ms", i + 1, case.verdict.as_str());
    }
    let accepted = cases
        .iter()
        .filter(|c| c.verdict == Verdict::Accepted)
        .count();
    let name = verdict.map_or("none", Verdict::as_str);
    println!("verdict: {name} ({accepted} of {} accepted)", cases.len());
    match verdict == Some(Verdict::Accepted) && !cases.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// The program's own exit code, or ours for a limit or failure.
fn exit_status(record: &ExecutionRecord) -> ExitCode {
    match record.status {
        Status::Completed => ExitCode::from(record.exit_code.unwrap_or(0).clamp(0, 255) as u8),
        Status::TimeLimitExceeded => {
            eprintln!("codebeaker: time_limit_exceeded");
            ExitCode::from(EXIT_TIME_LIMIT)
        }
        other => {
            let why = record
                .error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            eprintln!("codebeaker: {}{why}", other.as_str());
            ExitCode::from(EXIT_OTHER_LIMIT)
        }
    }
}

/// The language whose source file name has the same extension (`x.py` → python).
fn guess_language(file: &std::path::Path) -> Option<String> {
    let ext = file.extension()?.to_str()?;
    let languages = Languages::load(None).ok()?;
    languages
        .all()
        .iter()
        .find(|l| {
            std::path::Path::new(&l.file)
                .extension()
                .and_then(|e| e.to_str())
                == Some(ext)
        })
        .map(|l| l.name.clone())
}

async fn languages(server: &ServerArgs, config: &Config) -> ExitCode {
    let client = match server.client(config).await {
        Ok(client) => client,
        Err(e) => return fail(e),
    };
    match client.languages().await {
        Ok(list) => {
            println!("{:<12} {:<24} {:<10}", "name", "aliases", "version");
            for l in list {
                println!(
                    "{:<12} {:<24} {:<10}",
                    l.name,
                    l.aliases.join(", "),
                    l.version
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}

async fn cluster(server: &ServerArgs, config: &Config) -> ExitCode {
    let client = match server.client(config).await {
        Ok(client) => client,
        Err(e) => return fail(e),
    };
    let nodes = match client.cluster().await {
        Ok(nodes) => nodes,
        Err(e) => return fail(e.to_string()),
    };
    println!(
        "{:<20} {:<7} {:>7} {:>5} {:<6} {:<9} {:<20} languages",
        "node", "role", "workers", "busy", "ready", "version", "last heartbeat"
    );
    for n in nodes {
        let languages = match n.languages.len() {
            0 => "-".to_string(),
            k if k > 4 => format!("{} and {} more", n.languages[..4].join(", "), k - 4),
            _ => n.languages.join(", "),
        };
        println!(
            "{:<20} {:<7} {:>7} {:>5} {:<6} {:<9} {:<20} {}",
            n.id,
            n.role,
            n.workers,
            n.busy,
            if n.ready { "yes" } else { "no" },
            n.version,
            n.last_heartbeat.format("%Y-%m-%d %H:%M:%S"),
            languages
        );
    }
    ExitCode::SUCCESS
}

fn fail(message: String) -> ExitCode {
    eprintln!("codebeaker: {message}");
    ExitCode::FAILURE
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
        Err(e) => fail(format!("bench: {e}")),
    }
}
