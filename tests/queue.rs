//! The durable queue: async submit and poll, idempotent ids, cancel, NATS restarts, load.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{eventually, final_record, test_config, TestNode};
use serde_json::{json, Value};

async fn submit(node: &TestNode, request: Value) -> String {
    let (status, body) = node.post_to("/execute/async", request).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    body["execution_id"].as_str().unwrap().to_string()
}

async fn executions_total(node: &TestNode) -> u64 {
    let (_, text) = node.get("/metrics").await;
    text.lines()
        .filter(|l| l.starts_with("codebeaker_executions_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test]
async fn async_submit_then_poll_to_the_result() {
    let node = TestNode::start(1).await;
    let id = submit(
        &node,
        json!({"language": "python", "code": "print('later')"}),
    )
    .await;
    let record = final_record(&node, &id, Duration::from_secs(20)).await;
    assert_eq!(record["status"], "completed");
    assert_eq!(record["stdout"], "later\n");
    assert_eq!(record["execution_id"], id.as_str());
    assert_eq!(record["node"], node.node().node_id());
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let node = TestNode::start(1).await;
    let (status, body) = node
        .get(&format!("/execution/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = node.get("/execution/not-a-uuid").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = node
        .delete(&format!("/execution/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_same_execution_id_runs_once() {
    let node = TestNode::start(2).await;
    let id = uuid::Uuid::new_v4().to_string();
    let request = json!({"language": "python", "code": "print('once')", "execution_id": id});
    assert_eq!(submit(&node, request.clone()).await, id);
    // The repeat answers with the record as it stands, which a worker may have taken already.
    let (status, repeat) = node.post_to("/execute/async", request.clone()).await;
    assert_eq!(
        (status, repeat["execution_id"].as_str()),
        (202, Some(id.as_str()))
    );
    assert!(["queued", "running", "completed"].contains(&repeat["status"].as_str().unwrap()));
    let record = final_record(&node, &id, Duration::from_secs(20)).await;
    assert_eq!(record["status"], "completed");
    // A third submission after it finished answers with the finished record, and runs nothing.
    let (status, again) = node.post(request).await;
    assert_eq!(status, 200);
    assert_eq!(again, record);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(executions_total(&node).await, 1);
}

#[tokio::test]
async fn a_queued_job_cancelled_never_runs_and_a_running_one_is_killed() {
    let node = TestNode::start(1).await;
    let running = submit(
        &node,
        json!({"language": "python", "code": "import time; time.sleep(30)", "timeout": 40}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.containers().await.len() == 1
        })
        .await
    );
    let queued = submit(
        &node,
        json!({"language": "python", "code": "print('must not run')"}),
    )
    .await;

    let (status, record) = node.delete(&format!("/execution/{queued}")).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "cancelled");
    assert_eq!(record["started_at"], Value::Null);

    let (status, record) = node.delete(&format!("/execution/{running}")).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "cancelled");
    assert!(record["duration_ms"].as_u64().unwrap() < 20_000);
    assert!(
        eventually(Duration::from_secs(5), || async {
            node.containers().await.is_empty()
        })
        .await
    );

    // The worker is free again and the cancelled queued job stays cancelled.
    let next = node.python("print('next')").await;
    assert_eq!(next["status"], "completed");
    assert_eq!(
        final_record(&node, &queued, Duration::from_secs(1)).await["status"],
        "cancelled"
    );
    let (status, body) = node.delete(&format!("/execution/{running}")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_finished");
}

#[tokio::test]
async fn jobs_queued_across_a_nats_restart_all_complete() {
    let mut node = TestNode::start(1).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(submit(&node, json!({"language": "python", "code": format!("import time; time.sleep(0.3); print({i})")})).await);
    }
    node.nats.as_mut().unwrap().restart();
    for (i, id) in ids.iter().enumerate() {
        let record = final_record(&node, id, Duration::from_secs(60)).await;
        assert_eq!(record["status"], "completed", "{record}");
        assert_eq!(record["stdout"], format!("{i}\n"));
    }
}

#[tokio::test]
async fn five_hundred_async_jobs_each_end_with_exactly_one_final_record() {
    let node = TestNode::with_config(test_config(4)).await;
    let clients = 10;
    let per_client = 50;
    let submissions = (0..clients).map(|c| {
        let node = &node;
        async move {
            let mut ids = Vec::new();
            for j in 0..per_client {
                let n = c * per_client + j;
                ids.push((
                    n,
                    submit(
                        node,
                        json!({"language": "python", "code": format!("print({n})")}),
                    )
                    .await,
                ));
            }
            ids
        }
    });
    let ids: Vec<(usize, String)> = futures::future::join_all(submissions)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ids.len(), 500);
    assert_eq!(
        ids.iter().map(|(_, id)| id).collect::<HashSet<_>>().len(),
        500,
        "ids are unique"
    );
    for (n, id) in &ids {
        let record = final_record(&node, id, Duration::from_secs(300)).await;
        assert_eq!(record["status"], "completed", "{record}");
        assert_eq!(record["stdout"], format!("{n}\n"));
    }
    // None ran twice: the node counted exactly 500 executions.
    assert_eq!(executions_total(&node).await, 500);
}

#[tokio::test]
async fn workers_take_only_as_many_jobs_as_they_can_run() {
    let node = TestNode::start(1).await;
    for _ in 0..3 {
        submit(
            &node,
            json!({"language": "python", "code": "import time; time.sleep(3)", "timeout": 10}),
        )
        .await;
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.containers().await.len() == 1
        })
        .await
    );
    let js = async_nats::jetstream::new(async_nats::connect(node.nats_url()).await.unwrap());
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream("CODEBEAKER_JOBS")
        .await
        .unwrap()
        .get_consumer("workers-normal")
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 1, "one worker, one job taken");
    assert_eq!(
        info.num_pending, 2,
        "the rest wait in the stream, not on the node"
    );
}

#[tokio::test]
async fn a_job_past_max_deliver_is_recorded_as_internal_error_with_the_reason() {
    let mut config = test_config(1);
    config.nats.max_deliver = 1;
    let node = TestNode::with_config(config).await;
    let id = submit(
        &node,
        json!({"language": "python", "code": "import time; time.sleep(5)", "timeout": 10}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.containers().await.len() == 1
        })
        .await
    );
    node.node().status().await.unwrap().workers[0].kill();
    let record = final_record(&node, &id, Duration::from_secs(20)).await;
    assert_eq!(record["status"], "internal_error", "{record}");
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("gave up after 1 deliveries"),
        "{record}"
    );
}

#[tokio::test]
async fn a_job_longer_than_ack_wait_is_kept_alive_and_runs_once() {
    // ack_wait is 3 s in tests: without in-progress acks this job would be redelivered.
    let node = TestNode::start(2).await;
    let id = submit(&node, json!({"language": "python", "code": "import time; time.sleep(7); print('once')", "timeout": 15})).await;
    let record = final_record(&node, &id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "completed", "{record}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(executions_total(&node).await, 1, "the job ran once");
}

/// A first submission that stored its record but failed to publish (NATS electing a leader,
/// say) must not leave the job stuck when the client retries with the same id.
#[tokio::test]
async fn a_retry_after_a_failed_publish_runs_the_job() {
    let node = TestNode::start(1).await;
    let config = test_config(1);
    let nats_url = &node.nats.as_ref().unwrap().url;
    let queue = codebeaker::queue::Queue::connect(nats_url, &config.nats, Duration::from_secs(5))
        .await
        .unwrap();
    let languages = codebeaker::languages::Languages::load(None).unwrap();
    let mut request = codebeaker::model::ExecuteRequest::new("python", "print('retried')");
    let id = uuid::Uuid::new_v4();
    request.execution_id = Some(id);
    let job = request
        .clone()
        .validate(&languages, &config.limits)
        .unwrap();
    let orphan = codebeaker::model::ExecutionRecord::new(&job, codebeaker::model::Status::Queued);
    assert!(
        queue.records.create(&orphan).await.unwrap().is_some(),
        "the record alone, never published"
    );

    let (status, record) = node.post(serde_json::to_value(&request).unwrap()).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "completed");
    assert_eq!(record["stdout"], "retried\n");
}

/// Consumers on the records bucket's stream: each KV watch is one.
async fn record_watchers(js: &async_nats::jetstream::Context) -> usize {
    let mut stream = js.get_stream("KV_codebeaker-executions").await.unwrap();
    stream.info().await.unwrap().state.consumer_count
}

#[tokio::test]
async fn five_hundred_waiting_sync_requests_share_one_records_watch() {
    let nats = common::NatsServer::start();
    let api = TestNode::on(&nats, codebeaker::node::Role::Api, 0).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let before = record_watchers(&js).await;

    // No worker yet: every request waits, half over REST and half over NATS request/reply.
    let requests: Vec<_> = (0..500)
        .map(|n| {
            let request = json!({"language": "bash", "code": format!("echo $(({n} * 3))")});
            match n % 2 {
                0 => api.spawn_post(request),
                _ => tokio::spawn(nats_execute(client.clone(), request)),
            }
        })
        .collect();
    let queued = eventually(Duration::from_secs(60), || async {
        let mut stream = js.get_stream("CODEBEAKER_JOBS").await.unwrap();
        stream.info().await.unwrap().state.messages == 500
    })
    .await;
    assert!(queued, "the 500 jobs were not all queued");
    let waiting = record_watchers(&js).await;
    assert!(
        waiting <= before + 1,
        "500 waiting requests opened {} record watches (before: {before})",
        waiting - before
    );

    let mut worker_config = test_config(4);
    worker_config.nats.url = Some(nats.url.clone());
    // Warm cells, each serving many jobs: the load is on the waiting, not on Docker.
    let warm = codebeaker::config::PoolRange { min: 4, max: 4 };
    worker_config.pool.languages = [("bash".to_string(), warm)].into();
    let worker = TestNode::join(worker_config, codebeaker::node::Role::Worker).await;
    for (n, request) in requests.into_iter().enumerate() {
        let record = request.await.unwrap();
        assert_eq!(record["status"], "completed", "request {n}: {record}");
        assert_eq!(record["stdout"], format!("{}\n", n * 3), "request {n}");
    }
    assert!(record_watchers(&js).await <= before + 1);
    worker.shutdown().await;
    api.shutdown().await;
}

async fn nats_execute(client: async_nats::Client, request: Value) -> Value {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/json");
    let sent = async_nats::Request::new()
        .headers(headers)
        .payload(request.to_string().into())
        .timeout(Some(Duration::from_secs(300)));
    let reply = client
        .send_request("codebeaker.execute", sent)
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test]
async fn nats_requests_over_the_bound_are_told_to_come_back() {
    let nats = common::NatsServer::start();
    let mut config = test_config(0);
    config.nats.url = Some(nats.url.clone());
    config.nats.max_requests_in_flight = 2;
    let api = TestNode::join(config, codebeaker::node::Role::Api).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    // No worker: the first two wait for one, the other three are answered at once.
    let waiting: Vec<_> = (0..5)
        .map(|_| {
            let request = json!({"language": "python", "code": "print(1)", "timeout": 1});
            tokio::spawn(nats_execute(client.clone(), request))
        })
        .collect();
    let mut busy = 0;
    for answer in waiting {
        let answer = tokio::time::timeout(Duration::from_secs(5), answer).await;
        match answer {
            Ok(reply) => {
                let reply = reply.unwrap();
                assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
                assert!(reply["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("nats.max_requests_in_flight"));
                busy += 1;
            }
            Err(_still_waiting) => {}
        }
    }
    assert_eq!(busy, 3, "three of five requests are over a bound of two");
    api.shutdown().await;
}
