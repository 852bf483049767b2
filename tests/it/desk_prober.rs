//! One prober per desk: of two `serve` processes on one database only one probes; when it dies the
//! other takes over within seconds; two agents asking for one vehicle are served by one probe.

use crate::desk_support;

use std::time::{Duration, Instant};

use desk_support::{Schema, Serve, database_url};

const FLAGS: &[&str] = &["--demo", "--prober-retry", "500ms"];

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within {within:?}");
}

async fn active(serve: &Serve) -> bool {
    serve.metric("vtriage_prober_active").await == Some(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_one_prober_and_the_survivor_takes_over() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let mut first = Serve::start(&database_url(), &schema.name, FLAGS);
    wait_for(
        "the first process holding the lock",
        Duration::from_secs(20),
        async || active(&first).await,
    )
    .await;
    let second = Serve::start(&database_url(), &schema.name, FLAGS);
    // Several lock retries later the second still waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(active(&first).await);
    assert_eq!(second.metric("vtriage_prober_active").await, Some(0.0));

    // Two agents ask for the same vehicle: one probe serves both.
    wait_for(
        "the fleet listed into the database",
        Duration::from_secs(30),
        async || schema.count("SELECT count(*) FROM vehicles").await > 0,
    )
    .await;
    let vehicle: String = schema
        .client
        .query_one(
            "SELECT vehicle_id FROM vehicles ORDER BY vehicle_id LIMIT 1",
            &[],
        )
        .await
        .expect("a vehicle")
        .get(0);
    for agent in ["agent-a", "agent-b"] {
        schema
            .client
            .execute(
                "INSERT INTO probe_requests (vehicle_id, requested_by) VALUES ($1, $2)",
                &[&vehicle, &agent],
            )
            .await
            .expect("request");
    }
    wait_for(
        "both requests served",
        Duration::from_secs(30),
        async || {
            schema
                .count("SELECT count(*) FROM probe_requests WHERE served_at IS NULL")
                .await
                == 0
        },
    )
    .await;
    assert_eq!(
        schema
            .count("SELECT count(DISTINCT probe_result_id) FROM probe_requests")
            .await,
        1,
        "one probe for both agents"
    );
    assert_eq!(
        schema
            .count("SELECT count(*) FROM probe_results WHERE vehicle_id IN (SELECT vehicle_id FROM probe_requests)")
            .await,
        1
    );
    assert_eq!(second.metric("vtriage_probes_total").await, Some(0.0));

    let killed_at = Instant::now();
    first.kill9();
    wait_for(
        "the second process taking over",
        Duration::from_secs(10),
        async || active(&second).await,
    )
    .await;
    eprintln!("takeover after {:?}", killed_at.elapsed());
    assert_eq!(
        schema
            .count("SELECT count(*) FROM audit WHERE action = 'prober acquired'")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_serve_cleanly_and_releases_the_prober() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let mut first = Serve::start(&database_url(), &schema.name, FLAGS);
    wait_for("the lock held", Duration::from_secs(20), async || {
        active(&first).await
    })
    .await;
    let status = first.terminate();
    assert!(status.success(), "exit status {status:?}");
    let second = Serve::start(&database_url(), &schema.name, FLAGS);
    wait_for(
        "the lock taken by the next process",
        Duration::from_secs(10),
        async || active(&second).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_desks_in_two_schemas_of_one_database_each_run_their_own_prober() {
    let (Some(a), Some(b)) = (Schema::create().await, Schema::create().await) else {
        return;
    };
    let first = Serve::start(&database_url(), &a.name, FLAGS);
    let second = Serve::start(&database_url(), &b.name, FLAGS);
    wait_for("both desks probing", Duration::from_secs(20), async || {
        active(&first).await && active(&second).await
    })
    .await;
    for schema in [&a, &b] {
        wait_for(
            "each desk's fleet listed",
            Duration::from_secs(30),
            async || schema.count("SELECT count(*) FROM vehicles").await > 0,
        )
        .await;
    }
}
