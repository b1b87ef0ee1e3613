//! A real Prometheus (the Debian package) scrapes a running node: after known jobs, PromQL
//! sees exactly those counts. This is what the shipped prometheus.yml and dashboard rely on.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestNode;
use serde_json::{json, Value};

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` (host:port) every second, listening on a free loopback port.
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: codebeaker\n    \
                 static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .unwrap();
        let port = common::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus runs (run scripts/setup.sh to install it)");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// An instant query's result as label values → value.
    async fn query(&self, promql: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let answer: Value = match reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => return BTreeMap::new(), // not up yet
        };
        let series = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        series
            .iter()
            .map(|s| {
                let key = labels
                    .iter()
                    .map(|l| s["metric"][l].as_str().unwrap_or("").to_string())
                    .collect();
                (key, s["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn prometheus_scraping_a_node_sees_the_known_jobs() {
    let node = TestNode::start(1).await;
    let prometheus = Prometheus::start(node.url.trim_start_matches("http://"));
    let jobs = [
        json!({"language": "python", "code": "print(1)"}),
        json!({"language": "python", "code": "print(2)"}),
        json!({"language": "python", "code": "print(3)"}),
        json!({"language": "python", "code": "while True: pass", "timeout": 0.5}),
        json!({"language": "c", "code": "int main( {"}),
    ];
    for job in jobs {
        node.run(job).await;
    }
    let key = |l: &str, s: &str| vec![l.to_string(), s.to_string()];
    let expected = BTreeMap::from([
        (key("c", "compile_error"), 1.0),
        (key("python", "completed"), 3.0),
        (key("python", "time_limit_exceeded"), 1.0),
    ]);
    let promql = "sum by (language, status) (codebeaker_executions_total)";
    let labels = ["language", "status"];
    let seen = common::eventually(Duration::from_secs(30), || async {
        prometheus.query(promql, &labels).await == expected
    })
    .await;
    assert!(
        seen,
        "Prometheus sees {:?}",
        prometheus.query(promql, &labels).await
    );
    // The scrape itself is healthy and labelled as the shipped config expects.
    let up = prometheus.query("up{job=\"codebeaker\"}", &["job"]).await;
    assert_eq!(up.values().copied().collect::<Vec<_>>(), [1.0]);
}
