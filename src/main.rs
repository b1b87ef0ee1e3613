//! The `codebeaker` binary: everything it does is in the library's `cli` module.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    codebeaker::cli::main().await
}
