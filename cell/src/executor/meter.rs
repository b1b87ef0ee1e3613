//! What a job used, read from outside its namespaces: the cell's cgroup where the runtime shows
//! one (runc), else the kernel's per-process accounting (gVisor shows no cgroup files).
//!
//! One job runs in a cell at a time, so the cell's cgroup counts that job plus the executor,
//! which sleeps in poll(2) while the job runs. Cgroup v1's `memory.max_usage_in_bytes` cannot be
//! reset from inside a container, so the peak is sampled from the current usage, and taken
//! from the cgroup's own maximum only when this job raised it.

use std::fs;

const CPU_V1: &str = "/sys/fs/cgroup/cpuacct/cpuacct.usage";
const CPU_V2: &str = "/sys/fs/cgroup/cpu.stat";
const MEMORY_V1: &str = "/sys/fs/cgroup/memory/memory.usage_in_bytes";
const MEMORY_V2: &str = "/sys/fs/cgroup/memory.current";
const PEAK_V1: &str = "/sys/fs/cgroup/memory/memory.max_usage_in_bytes";
const PEAK_V2: &str = "/sys/fs/cgroup/memory.peak";
const OOM_V1: &str = "/sys/fs/cgroup/memory/memory.oom_control";
const OOM_V2: &str = "/sys/fs/cgroup/memory.events";

fn read_u64(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a file of "key value" lines.
fn keyed(path: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// The first of `paths` that exists here.
fn present(paths: [&'static str; 2]) -> Option<&'static str> {
    paths.into_iter().find(|p| std::path::Path::new(p).exists())
}

/// Which accounting files this cell has, found once when the executor starts (none at all
/// under gVisor), so that the 10 ms ticks read only files that are there.
#[derive(Clone, Copy)]
pub struct Sources {
    cpu: Option<&'static str>,
    usage: Option<&'static str>,
    max: Option<&'static str>,
    oom: Option<&'static str>,
}

impl Sources {
    pub fn find() -> Sources {
        Sources {
            cpu: present([CPU_V1, CPU_V2]),
            usage: present([MEMORY_V1, MEMORY_V2]),
            max: present([PEAK_V1, PEAK_V2]),
            oom: present([OOM_V1, OOM_V2]),
        }
    }

    fn cpu_ns(&self) -> u64 {
        match self.cpu {
            Some(CPU_V1) => read_u64(CPU_V1).unwrap_or(0),
            Some(path) => keyed(path, "usage_usec").map_or(0, |us| us * 1000),
            None => process_cpu_ns(),
        }
    }

    fn usage(&self) -> Option<u64> {
        read_u64(self.usage?)
    }

    fn max(&self) -> Option<u64> {
        read_u64(self.max?)
    }

    fn oom_kills(&self) -> Option<u64> {
        keyed(self.oom?, "oom_kill")
    }
}

/// CPU of every process in the cell but the executor, without a cgroup: the live ones' own and
/// their waited-for children's time from /proc, plus what the executor has waited for itself.
/// A process that dies moves its time into its parent's children's time, so nothing counts
/// twice and nothing is lost while parents wait for their children.
fn process_cpu_ns() -> u64 {
    let tick = 1_000_000_000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let me = std::process::id().to_string();
    let mut ticks = 0;
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == me || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            continue;
        };
        // After ')': state is field 3; utime, stime, cutime, cstime are fields 14 to 17.
        ticks += fields
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum::<u64>();
    }
    ticks * tick + super::sys::children_cpu_ns()
}

/// Without a cgroup, CPU is read from /proc (a scan of every process) only every this many
/// ticks: 100 ms is precise enough for a limit in seconds, and gVisor's system calls are dear.
const SCAN_EVERY: u32 = 10;

/// Measures one job from `start` on.
pub struct Meter {
    sources: Sources,
    cpu_start: u64,
    /// CPU as of the last tick, since `cpu_start`.
    cpu: u64,
    ticks: u32,
    max_start: Option<u64>,
    oom_start: Option<u64>,
    peak: Option<u64>,
    /// Memory in use at the last tick.
    now: Option<u64>,
}

impl Meter {
    pub fn start(sources: Sources) -> Meter {
        let mut meter = Meter {
            sources,
            cpu_start: sources.cpu_ns(),
            cpu: 0,
            ticks: 0,
            max_start: sources.max(),
            oom_start: sources.oom_kills(),
            peak: None,
            now: None,
        };
        meter.tick();
        meter
    }

    /// CPU used since `start` (or the last `restart_cpu`), as of the last tick.
    pub fn cpu_ns(&self) -> u64 {
        self.cpu
    }

    /// The program starts now: the compile step's CPU is not the program's.
    pub fn restart_cpu(&mut self) {
        self.cpu_start = self.sources.cpu_ns();
        self.cpu = 0;
    }

    /// Records the memory in use now, and the CPU (every tick from a cgroup, every
    /// `SCAN_EVERY` from /proc); called on every tick of the job's loop.
    pub fn tick(&mut self) {
        self.now = self.sources.usage();
        if let Some(now) = self.now {
            self.peak = Some(self.peak.map_or(now, |p| p.max(now)));
        }
        if self.sources.cpu.is_some() || self.ticks.is_multiple_of(SCAN_EVERY) {
            self.refresh_cpu();
        }
        self.ticks += 1;
    }

    /// Reads the CPU now. Time never runs backwards: without a cgroup, the time of processes
    /// the kernel killed with the job's namespace is counted by nobody (gVisor), so a reading
    /// after the job's end can be lower than the last one taken while it ran.
    pub fn refresh_cpu(&mut self) {
        let now = self.sources.cpu_ns().saturating_sub(self.cpu_start);
        self.cpu = self.cpu.max(now);
    }

    /// Memory in use as of the last tick.
    pub fn memory_now(&self) -> Option<u64> {
        self.now
    }

    pub fn peak(&self) -> Option<u64> {
        match (self.sources.max(), self.max_start) {
            (Some(max), Some(before)) if max > before => Some(max),
            _ => self.peak,
        }
    }

    pub fn oom_kills(&self) -> Option<u64> {
        Some(
            self.sources
                .oom_kills()?
                .saturating_sub(self.oom_start.unwrap_or(0)),
        )
    }
}
