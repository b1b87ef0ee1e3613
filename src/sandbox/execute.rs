//! One job in a cell: the job message built from the node's own language table and limits,
//! the executor's frames read into capped buffers, a cancel passed on, and the node's own
//! deadline as a backstop should the executor ever stop answering.

use std::time::Duration;

use codebeaker_cell::protocol::{self, CompileReport, FromCell, Report, Stream, ToCell};

use tokio::sync::mpsc;

use super::cell::Cell;
use super::output::Capped;
use super::{Sandbox, SandboxError};
use crate::live::{self, Event, Input, Utf8Chunks};
use crate::model::Job;

/// Time the executor has beyond the job's own limits to set the job up and report.
const SETUP_GRACE: Duration = Duration::from_secs(7);
/// After a Kill, how long the executor has to report before its cell is removed.
const KILL_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Outcome {
    /// The executor's report; None when the cell died or went silent.
    pub report: Option<Report>,
    /// The compile step's report, for compiled languages that got that far.
    pub compiled: Option<CompileReport>,
    /// The executor could not set the job up, or the cell died: why.
    pub failure: Option<String>,
    /// The node's own deadline passed without a report; the cell was removed.
    pub node_timed_out: bool,
    /// Docker says the kernel's OOM killer fired in the cell (asked only without a report).
    pub cell_oom: bool,
    /// The program's CPU limit, to tell a CPU-time kill from other signals.
    pub cpu_limit: Duration,
    pub stdout: Capped,
    pub stderr: Capped,
    /// The compiled work dir, from a `Step::Compile` that succeeded.
    pub work: Option<Work>,
}

/// Which part of a job a cell runs.
#[derive(Clone, Copy)]
pub enum Step<'a> {
    /// Compile (for compiled languages) and run: an ordinary job.
    Whole,
    /// Compile only, and send the work dir back for the job's test cases.
    Compile,
    /// Run the program from a work dir the compile step left.
    From(&'a Work),
}

/// Who follows a job while it runs: where its events go, and, for an interactive job, where
/// its input comes from. Both are optional: most jobs have neither.
#[derive(Default)]
pub struct Tap {
    pub events: Option<mpsc::UnboundedSender<Event>>,
    pub input: Option<mpsc::UnboundedReceiver<Input>>,
    /// Output not yet sent, held to whole UTF-8 characters.
    chunks: [Utf8Chunks; 2],
}

impl Tap {
    pub fn new(
        events: Option<mpsc::UnboundedSender<Event>>,
        input: Option<mpsc::UnboundedReceiver<Input>>,
    ) -> Tap {
        Tap {
            events,
            input,
            chunks: Default::default(),
        }
    }

    fn send(&self, event: Event) {
        if let Some(events) = &self.events {
            // A watcher that left is no reason to stop the job.
            let _ = events.send(event);
        }
    }

    fn output(&mut self, stream: live::Stream, bytes: &[u8]) {
        let bytes = self.chunks[stream as usize].push(bytes);
        if !bytes.is_empty() {
            self.send(Event::Output { stream, bytes });
        }
    }

    /// What was held of a character cut at the end of the output.
    fn finish(&mut self) {
        for stream in [live::Stream::Stdout, live::Stream::Stderr] {
            let bytes = self.chunks[stream as usize].finish();
            if !bytes.is_empty() {
                self.send(Event::Output { stream, bytes });
            }
        }
    }

    async fn next_input(&mut self) -> Option<Input> {
        match &mut self.input {
            Some(input) => input.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// A compiled work dir, as a cell sent it back: the sources and what the compiler wrote.
#[derive(Debug, Clone)]
pub struct Work(Vec<protocol::File>);

impl Sandbox {
    /// Runs `job` in `cell`. The job is killed early if `cancel` completes. A cell that breaks
    /// is marked so (and its container removed); whether it serves again is its owner's call.
    pub async fn execute(
        &self,
        cell: &mut Cell,
        job: &Job,
        step: Step<'_>,
        cancel: impl std::future::Future<Output = ()>,
        tap: &mut Tap,
    ) -> Result<Outcome, SandboxError> {
        let cap = job.limits.output.bytes() as usize;
        let mut outcome = Outcome {
            report: None,
            compiled: None,
            failure: None,
            node_timed_out: false,
            cell_oom: false,
            cpu_limit: job.limits.cpu_time,
            stdout: Capped::new(cap),
            stderr: Capped::new(cap),
            work: None,
        };
        cell.job_started();
        cell.send(&ToCell::Run(Box::new(cell_job(job, &cell.shape, step))))
            .await?;
        let budget = match step {
            Step::Compile => job.limits.compile_timeout,
            Step::Whole | Step::From(_) => job.time_budget(),
        };
        let backstop = tokio::time::sleep(budget + SETUP_GRACE);
        tokio::pin!(backstop, cancel);
        let mut killed = false;
        loop {
            let message = tokio::select! {
                message = cell.next() => message,
                _ = &mut cancel, if !killed => {
                    killed = true;
                    cell.send(&ToCell::Kill).await?;
                    backstop.as_mut().reset(tokio::time::Instant::now() + KILL_GRACE);
                    continue;
                }
                input = tap.next_input(), if !killed => {
                    match input {
                        Some(input) => cell.send(&to_cell(input)).await?,
                        // The client is gone: nothing more will come.
                        None => {
                            tap.input = None;
                            cell.send(&ToCell::Eof).await?;
                        }
                    }
                    continue;
                }
                _ = &mut backstop => {
                    outcome.node_timed_out = !killed;
                    outcome.failure = Some("the cell's executor stopped answering".into());
                    break;
                }
            };
            match message {
                Ok(FromCell::Output { stream, bytes }) => match stream {
                    Stream::Stdout => {
                        tap.output(live::Stream::Stdout, &bytes);
                        let _ = outcome.stdout.push(&bytes);
                    }
                    Stream::Stderr => {
                        tap.output(live::Stream::Stderr, &bytes);
                        let _ = outcome.stderr.push(&bytes);
                    }
                },
                Ok(FromCell::Usage {
                    cpu_ns,
                    memory_bytes,
                }) => tap.send(Event::Usage {
                    cpu_time_ms: cpu_ns / 1_000_000,
                    memory_bytes,
                }),
                Ok(FromCell::Compiled(report)) => outcome.compiled = Some(report),
                Ok(FromCell::Work { files }) => outcome.work = Some(Work(files)),
                Ok(FromCell::Finished(report)) => {
                    outcome.report = Some(report);
                    break;
                }
                Ok(FromCell::Failed { reason }) => {
                    outcome.failure = Some(reason);
                    break;
                }
                Ok(FromCell::Ready { .. }) => {
                    outcome.failure = Some("the executor restarted mid-job".into());
                    break;
                }
                Err(SandboxError::CellGone) => {
                    outcome.failure = Some("the cell ended without its report".into());
                    outcome.cell_oom = self.oom_killed(&cell.id).await;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        tap.finish();
        let oom = outcome
            .report
            .as_ref()
            .and_then(|r| r.oom_kills)
            .unwrap_or(0)
            > 0;
        if outcome.report.is_none() || oom {
            // A cell that failed a job, or whose memory cgroup hit its limit, is not trusted
            // with another.
            cell.mark_broken();
        }
        Ok(outcome)
    }
}

/// The executor's view of `job`'s `step`: commands and limits from this node's own tables.
fn cell_job(job: &Job, shape: &super::container::Shape, step: Step) -> protocol::Job {
    let l = &job.limits;
    let ms = |d: Duration| d.as_millis() as u64;
    let file = |name: &str, content: &[u8]| protocol::File {
        name: name.to_string(),
        content: content.to_vec(),
        executable: false,
    };
    let files = match step {
        Step::From(Work(files)) => files.clone(),
        Step::Whole | Step::Compile => {
            std::iter::once(file(&job.language.file, job.submission.code.as_bytes()))
                .chain(
                    job.submission
                        .files
                        .iter()
                        .map(|f| file(&f.name, &f.content)),
                )
                .collect()
        }
    };
    let mut run = job.language.run.clone();
    run.extend(job.submission.args.iter().cloned());
    protocol::Job {
        files,
        stdin: job.submission.stdin.as_bytes().to_vec(),
        compile: match step {
            Step::From(_) => None,
            Step::Whole | Step::Compile => compile_command(job),
        },
        run,
        limits: protocol::JobLimits {
            timeout_ms: ms(l.timeout),
            cpu_ms: ms(l.cpu_time),
            output_bytes: l.output.bytes(),
            file_size_bytes: l.file_size.bytes(),
            open_files: l.open_files as u64,
            tmpfs_bytes: l.tmpfs.bytes(),
            nproc: shape.gvisor().then_some(l.pids as u64),
            compile_timeout_ms: ms(l.compile_timeout),
            compile_output_bytes: l.compile_output.bytes(),
            stack_bytes: l.stack.map(|s| s.bytes()),
        },
        isolation: protocol::Isolation {
            fresh_mounts: !shape.gvisor(),
        },
        keep_work: matches!(step, Step::Compile),
        // Test cases each have their own stdin: input from a client has no case to go to.
        interactive: job.submission.interactive && job.submission.tests.is_empty(),
        stderr_to_stdout: job.submission.stderr_to_stdout,
    }
}

/// The language's compile command, with the request's options after it (checked to be plain
/// words when the job was resolved).
fn compile_command(job: &Job) -> Option<String> {
    let compile = job.language.compile.as_ref()?;
    match job.submission.compiler_options.as_deref().map(str::trim) {
        Some(options) if !options.is_empty() => Some(format!("{compile} {options}")),
        _ => Some(compile.clone()),
    }
}

fn to_cell(input: Input) -> ToCell {
    match input {
        Input::Stdin(bytes) => ToCell::Stdin(bytes),
        Input::Eof => ToCell::Eof,
        Input::Signal(signal) => ToCell::Signal(signal),
    }
}
