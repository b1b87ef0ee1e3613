//! `codebeaker run FILE`: the request built from a file (its language guessed from the
//! extension, stdin when piped, test cases from a JSON file), and the answer printed as the
//! program's own output and exit code.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{fail, ServerArgs};
use crate::config::Config;
use crate::judge::{TestResult, Verdict};
use crate::languages::Languages;
use crate::model::{ExecuteRequest, ExecutionRecord, Status};

/// Exit codes of `codebeaker run` when the program did not run to its own exit.
const EXIT_TIME_LIMIT: u8 = 124;
const EXIT_OTHER_LIMIT: u8 = 125;

/// How `codebeaker run` runs the file.
pub struct RunOptions {
    pub tests: Option<PathBuf>,
    pub stream: bool,
}

pub async fn run(
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
fn report_cases(cases: &[TestResult], verdict: Option<Verdict>) -> ExitCode {
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
