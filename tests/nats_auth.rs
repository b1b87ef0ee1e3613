//! Nodes connect to a NATS server that demands credentials.

mod common;

use std::time::{Duration, Instant};

use codebeaker::node::{Node, Role};
use common::{test_config, NatsServer, TestNode};

#[tokio::test]
async fn a_node_with_user_and_password_serves_jobs() {
    let nats = NatsServer::start_with(&["--user", "beaker", "--pass", "s3cret"]);
    let mut config = test_config(1);
    config.nats.url = Some(nats.url.clone());
    config.nats.user = Some("beaker".into());
    config.nats.password = Some("s3cret".into());
    let node = TestNode::join(config, Role::Serve).await;
    let r = node.python("print('authenticated')").await;
    assert_eq!(r["stdout"], "authenticated\n");
}

#[tokio::test]
async fn a_node_with_a_token_serves_jobs() {
    let nats = NatsServer::start_with(&["--auth", "t0ken"]);
    let mut config = test_config(1);
    config.nats.url = Some(nats.url.clone());
    config.nats.token = Some("t0ken".into());
    let node = TestNode::join(config, Role::Serve).await;
    assert_eq!(node.python("print(1)").await["status"], "completed");
}

#[tokio::test]
async fn wrong_credentials_fail_at_once_and_say_so() {
    let nats = NatsServer::start_with(&["--user", "beaker", "--pass", "s3cret"]);
    let mut config = test_config(1);
    config.nats.url = Some(nats.url.clone());
    config.nats.user = Some("beaker".into());
    config.nats.password = Some("guess".into());
    let started = Instant::now();
    let error = Node::start(config, Role::Api).await.err().expect("refused");
    assert!(
        error.to_string().contains("refused our credentials"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no waiting out the connect patience"
    );

    let mut config = test_config(1);
    config.nats.url = Some(nats.url.clone());
    config.nats.token = Some("x".into());
    config.nats.user = Some("beaker".into());
    let error = Node::start(config, Role::Api).await.err().expect("refused");
    assert!(
        error.to_string().contains("one kind of NATS credentials"),
        "{error}"
    );
}

#[tokio::test]
async fn the_documented_accounts_config_gives_each_role_what_it_needs_and_no_more() {
    let nats = NatsServer::with_shipped_accounts();
    let as_user = |user: &str, password: &str| {
        let mut config = test_config(1);
        config.nats.url = Some(nats.url.clone());
        config.nats.user = Some(user.into());
        config.nats.password = Some(password.into());
        // Both roles deliver webhooks: their consumer, pulls, acks and state need rights too.
        config.webhooks = codebeaker::config::WebhooksConfig {
            allow_hosts: vec!["127.0.0.1".into()],
            secret: Some("accounts-test-secret".into()),
            max_attempts: 1,
            allow_private_addresses: true,
            ..Default::default()
        };
        config
    };
    let _worker = TestNode::join(as_user("worker", "change-me-worker"), Role::Worker).await;
    let api = TestNode::join(as_user("api", "change-me-api"), Role::Api).await;
    // Nobody listens on the callback's port: its one try fails, and the record says so.
    let callback = format!("http://127.0.0.1:{}/", common::free_port());
    let r = api
        .run(serde_json::json!({"language": "python", "code": "print('through the accounts')", "callback_url": callback}))
        .await;
    assert_eq!(r["status"], "completed", "{r}");
    let id = r["execution_id"].as_str().unwrap().to_string();
    let failed = common::eventually(Duration::from_secs(20), || async {
        let (_, body) = api.get(&format!("/execution/{id}")).await;
        body.contains(r#""state":"failed""#)
    })
    .await;
    assert!(failed, "the webhook's try was never recorded");

    let client = async_nats::ConnectOptions::with_user_and_password(
        "client".into(),
        "change-me-client".into(),
    )
    .connect(&nats.url)
    .await
    .unwrap();
    let request = serde_json::json!({"language": "python", "code": "print(7)"}).to_string();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/json");
    let reply = client
        .request_with_headers("codebeaker.execute", headers, request.into())
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(record["stdout"], "7\n");
    // The client may not touch the queue: the server drops its publish to a queue subject.
    // (A listener with rights sees whatever reaches the subject.)
    let root = async_nats::ConnectOptions::with_user_and_password(
        "worker".into(),
        "change-me-worker".into(),
    )
    .connect(&nats.url)
    .await
    .unwrap();
    let mut seen = root.subscribe("codebeaker.wake").await.unwrap();
    root.flush().await.unwrap();
    client
        .publish("codebeaker.wake", "forged".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let got = tokio::time::timeout(
        Duration::from_millis(500),
        futures::StreamExt::next(&mut seen),
    )
    .await;
    assert!(
        got.is_err(),
        "a client publish on a queue subject went through"
    );
    // $JS.API is narrowed: neither node role may delete the job stream or purge the records.
    for (user, password) in [("api", "change-me-api"), ("worker", "change-me-worker")] {
        let node = async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
            .connect(&nats.url)
            .await
            .unwrap();
        let mut js = async_nats::jetstream::new(node);
        // A refused request is dropped by the server, and so only times out.
        js.set_timeout(Duration::from_millis(500));
        let deleted = js.delete_stream("CODEBEAKER_JOBS").await;
        assert!(deleted.is_err(), "{user} deleted the job stream");
        let purged = js
            .get_stream("KV_codebeaker-executions")
            .await
            .unwrap()
            .purge()
            .await;
        assert!(purged.is_err(), "{user} purged the records");
    }
    let log = nats.log();
    let log: String = log
        .lines()
        .filter(|l| !l.contains("STREAM.DELETE") && !l.contains("STREAM.PURGE"))
        .collect::<Vec<_>>()
        .join("\n");
    let violations: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Violation") && !l.contains(r#"User "client""#))
        .collect();
    assert!(
        violations.is_empty(),
        "the nodes lack rights: {violations:#?}"
    );
}
