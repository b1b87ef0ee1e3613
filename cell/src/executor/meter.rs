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

fn cgroup_cpu_ns() -> Option<u64> {
    read_u64(CPU_V1).or_else(|| keyed(CPU_V2, "usage_usec").map(|us| us * 1000))
}

fn memory_usage() -> Option<u64> {
    read_u64(MEMORY_V1).or_else(|| read_u64(MEMORY_V2))
}

fn memory_max() -> Option<u64> {
    read_u64(PEAK_V1).or_else(|| read_u64(PEAK_V2))
}

fn oom_kills() -> Option<u64> {
    keyed(OOM_V1, "oom_kill").or_else(|| keyed(OOM_V2, "oom_kill"))
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

/// Measures one job from `start` on.
pub struct Meter {
    cgroup: bool,
    cpu_start: u64,
    max_start: Option<u64>,
    oom_start: Option<u64>,
    peak: Option<u64>,
}

impl Meter {
    pub fn start() -> Meter {
        let cgroup = cgroup_cpu_ns().is_some();
        let mut meter = Meter {
            cgroup,
            cpu_start: 0,
            max_start: memory_max(),
            oom_start: oom_kills(),
            peak: None,
        };
        meter.cpu_start = meter.cpu_now();
        meter.sample();
        meter
    }

    fn cpu_now(&self) -> u64 {
        match self.cgroup {
            true => cgroup_cpu_ns().unwrap_or(0),
            false => process_cpu_ns(),
        }
    }

    /// CPU used since `start`, or since the last `restart_cpu`.
    pub fn cpu_ns(&self) -> u64 {
        self.cpu_now().saturating_sub(self.cpu_start)
    }

    /// The program starts now: the compile step's CPU is not the program's.
    pub fn restart_cpu(&mut self) {
        self.cpu_start = self.cpu_now();
    }

    /// Records the memory in use now; called on every tick of the job's loop.
    pub fn sample(&mut self) {
        if let Some(now) = memory_usage() {
            self.peak = Some(self.peak.map_or(now, |p| p.max(now)));
        }
    }

    pub fn peak(&self) -> Option<u64> {
        match (memory_max(), self.max_start) {
            (Some(max), Some(before)) if max > before => Some(max),
            _ => self.peak,
        }
    }

    pub fn oom_kills(&self) -> Option<u64> {
        Some(oom_kills()?.saturating_sub(self.oom_start.unwrap_or(0)))
    }
}
