//! Judge0's read-only endpoints: languages under Judge0's ids, statuses, and the server's
//! description (`/about`, `/config_info`, `/system_info`, `/workers`) in Judge0's shapes,
//! filled from this server's own languages, bounds and nodes.

use serde_json::{json, Value};

use super::status;
use super::submission::Bounds;
use crate::config::Config;
use crate::languages::{Language, Languages};
use crate::queue::nodes::NodeEntry;

/// The Judge0 version this API is: the SDK picks its language table by it.
pub const VERSION: &str = "1.13.1";

/// Judge0's name of a language, with this server's version in it.
pub fn name(language: &Language) -> String {
    let judge0 = language.judge0.as_ref();
    judge0.map_or_else(
        || language.name.clone(),
        |j| j.name.replace("{version}", &language.version),
    )
}

/// `GET /languages`: `[{id, name}]`, by name as Judge0 lists them; `all` adds `is_archived`.
pub fn languages(languages: &Languages, all: bool) -> Value {
    let mut list: Vec<(String, u32)> = languages
        .all()
        .iter()
        .flat_map(|l| {
            let ids = l.judge0.iter().flat_map(|j| j.ids.iter().copied());
            ids.map(|id| (name(l), id))
        })
        .collect();
    list.sort();
    let entries = list.into_iter().map(|(name, id)| match all {
        true => json!({"id": id, "name": name, "is_archived": false}),
        false => json!({"id": id, "name": name}),
    });
    Value::Array(entries.collect())
}

/// `GET /languages/{id}`: the language with its file and commands, or none.
pub fn language(languages: &Languages, id: u32) -> Option<Value> {
    let language = languages.by_judge0_id(id)?;
    Some(json!({
        "id": id,
        "name": name(language),
        "is_archived": false,
        "source_file": language.file,
        "compile_cmd": language.compile,
        "run_cmd": language.run.join(" "),
    }))
}

pub fn statuses() -> Value {
    json!(status::ALL)
}

pub fn about() -> Value {
    json!({
        "version": VERSION,
        "homepage": "CodeBeaker: the Judge0 CE API over CodeBeaker's sandboxes",
        "source_code": "codebeaker",
        "maintainer": "the operators of this CodeBeaker server",
    })
}

/// `GET /config_info`: every key Judge0 1.13.1 has (its SDK needs them all), each saying
/// what this server does.
pub fn config_info(config: &Config) -> Value {
    let b = Bounds::new(&config.limits, &Default::default());
    let hooks = &config.webhooks;
    json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": true,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": true,
        "enable_submission_delete": false,
        "enable_callbacks": hooks.enabled(),
        "callbacks_max_tries": hooks.max_attempts,
        "callbacks_timeout": hooks.timeout_secs as f64,
        "enable_additional_files": true,
        "max_queue_size": MAX_QUEUE_SIZE,
        "cpu_time_limit": b.cpu_time.default,
        "max_cpu_time_limit": b.cpu_time.max,
        "cpu_extra_time": b.cpu_extra_time.default,
        "max_cpu_extra_time": b.cpu_extra_time.max,
        "wall_time_limit": b.wall_time.default,
        "max_wall_time_limit": b.wall_time.max,
        "memory_limit": b.memory_kb.default as u64,
        "max_memory_limit": b.memory_kb.max as u64,
        "stack_limit": b.stack_kb.default as u64,
        "max_stack_limit": b.stack_kb.max as u64,
        "max_processes_and_or_threads": b.processes.default as i64,
        "max_max_processes_and_or_threads": b.processes.max as i64,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": b.file_size_kb.default as u64,
        "max_max_file_size": b.file_size_kb.max as u64,
        "number_of_runs": b.runs.default as u32,
        "max_number_of_runs": b.runs.max as u32,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": config.limits.max_files_bytes.bytes() / 1024,
        "enable_batched_submissions": true,
        "max_submission_batch_size": config.limits.max_batch,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    })
}

/// Judge0 refuses work past its queue size; CodeBeaker's queue is a durable stream with no
/// such cap, so this reports the largest number a client could sensibly compare with.
const MAX_QUEUE_SIZE: u64 = u32::MAX as u64;

/// `GET /system_info`: the API node's CPU and memory, in the keys Judge0 takes from `lscpu`
/// and `free -h`.
pub fn system_info() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let gib = |key: &str| {
        let kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        format!("{:.1}Gi", kb / 1024.0 / 1024.0)
    };
    json!({
        "Architecture": std::env::consts::ARCH,
        "CPU(s)": cpus.to_string(),
        "Model name": model,
        "Mem": gib("MemTotal:"),
        "Swap": gib("SwapTotal:"),
    })
}

/// `GET /workers`: Judge0 lists its queue's workers; here the queue is the job stream and
/// the workers are every node's.
pub fn workers(nodes: &[NodeEntry], backlog: u64) -> Value {
    let available: usize = nodes.iter().filter(|n| n.ready).map(|n| n.workers).sum();
    let working: usize = nodes.iter().map(|n| n.busy).sum();
    json!([{
        "queue": VERSION,
        "size": backlog,
        "available": available,
        "idle": available.saturating_sub(working),
        "working": working,
        "paused": 0,
        "failed": 0,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge0s_ids_and_names_carry_this_servers_versions() {
        let table = Languages::load(None).unwrap();
        let list = languages(&table, false);
        let find = |id: u32| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|l| l["id"] == id)
                .cloned()
        };
        for id in [71, 50, 54, 52, 62, 63] {
            assert!(find(id).is_some(), "{id}");
        }
        let python = table.get("python").unwrap();
        assert_eq!(
            find(71).unwrap()["name"],
            format!("Python ({})", python.version)
        );
        let c = language(&table, 50).unwrap();
        assert_eq!(c["source_file"], "main.c");
        assert!(language(&table, 1).is_none());
    }

    #[test]
    fn config_info_has_every_key_judge0_has() {
        let info = config_info(&Config::default());
        assert_eq!(info.as_object().unwrap().len(), 39);
        assert_eq!(info["max_number_of_runs"], 1);
    }
}
