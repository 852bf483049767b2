//! The desk's prober settings, resolved once: a secret command that hangs is stopped after its
//! timeout and leaves the desk degraded, not looping; a holder whose lock connection dies stops
//! probing at once.

use crate::desk_support;

use std::time::{Duration, Instant};

use desk_support::{Schema, Serve, database_url, http, temp_home, v3_desk};

/// Whether a process with this id still runs (a zombie counts as gone).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.split_whitespace().nth(2).is_none_or(|s| s != "Z"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_tokens_command_is_stopped_after_its_timeout_said_once_and_the_desk_stays_degraded()
 {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let dir = temp_home("hanging-command");
    let pid_file = dir.join("pid");
    let script = dir.join("tokens.sh");
    std::fs::write(
        &script,
        format!("echo $$ > '{}'\nexec sleep 120\n", pid_file.display()),
    )
    .expect("script");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.desk]\ntokens_command = \"sh {}\"\n",
            script.display()
        ),
    )
    .expect("config");
    let started = Instant::now();
    let mut serve = Serve::start(
        &database_url(),
        &schema.name,
        &[
            "--demo",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--profile",
            "desk",
            "--command-timeout",
            "1s",
            "--prober-retry",
            "500ms",
        ],
    );
    // serve answers at once: the command runs on the prober's side, not before the desk starts.
    assert!(started.elapsed() < Duration::from_secs(10));

    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while said.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = serve
            .lines
            .recv_timeout(left)
            .expect("serve says the tokens command was stopped");
        if line.contains("cannot resolve its Smartcar settings") {
            said.push(line);
        }
    }
    assert!(
        said[0].contains("tokens_command `sh` did not finish within 1s and was stopped"),
        "{}",
        said[0]
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the command ran")
        .trim()
        .parse()
        .expect("a pid");
    assert!(!running(pid), "the hanging command was killed");

    // Ten seconds of retries, backing off: no second line, no lock taken, no audit row.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let health = http()
        .get(format!("{}/healthz", serve.origin))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "degraded, not dead");
    let body: serde_json::Value = health.json().await.expect("JSON");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["prober"], false, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("tokens_command `sh`"), "{body}");
    assert_eq!(
        serve.metric("vtriage_prober_settings_failing").await,
        Some(1.0)
    );
    assert_eq!(serve.metric("vtriage_prober_active").await, Some(0.0));
    assert_eq!(
        schema
            .count("SELECT count(*) FROM audit WHERE action = 'prober acquired'")
            .await,
        0
    );
    while let Ok(line) = serve.lines.try_recv() {
        if line.contains("cannot resolve its Smartcar settings") {
            said.push(line);
        }
    }
    assert_eq!(said.len(), 1, "one line for one failure: {said:?}");
    let _ = serve.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_lock_connection_stops_probing_at_once_not_at_the_next_heartbeat() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    // A sweep of 2,000 cars at 100 ms a request lasts many seconds; the heartbeat is 30 s away.
    let config = vtriage::sim::SimConfig {
        latency: vtriage::sim::Latency::Fixed {
            ms: 100,
            jitter_ms: 0,
        },
        ..vtriage::sim::SimConfig::default()
    };
    let (sim, serve) = v3_desk(
        &schema.name,
        config,
        &["--prober-retry", "30s", "--sweep-every", "1s"],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.v3_stats().signals_calls < 50 {
        assert!(Instant::now() < deadline, "the sweep never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(serve.metric("vtriage_prober_active").await, Some(1.0));
    let pid: i32 = schema
        .client
        .query_one(
            "SELECT l.pid FROM pg_locks l JOIN pg_namespace n ON n.oid = l.objid
             WHERE l.locktype = 'advisory' AND l.classid::bigint = $1 AND n.nspname = $2",
            &[&i64::from(vtriage::desk::prober::PROBER_LOCK), &schema.name],
        )
        .await
        .expect("the prober's lock is held")
        .get(0);
    let terminated: bool = schema
        .client
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("terminate")
        .get(0);
    assert!(terminated);
    // The requests in flight end; then none is sent.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = sim.v3_stats().signals_calls;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sim.v3_stats().signals_calls,
        after,
        "probing went on after the lock was lost"
    );
    assert_eq!(serve.metric("vtriage_prober_active").await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_requests_counter_includes_every_page_of_the_listing() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    // 250 cars: three pages of 100.
    let config = vtriage::sim::SimConfig {
        vehicles: 250,
        ..vtriage::sim::SimConfig::default()
    };
    let (sim, serve) = v3_desk(&schema.name, config, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while schema.count("SELECT count(*) FROM vehicles").await < 250 {
        assert!(Instant::now() < deadline, "the fleet was never listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pages = sim
        .stats()
        .by_endpoint
        .get("management")
        .copied()
        .unwrap_or(0);
    assert!(pages >= 3, "{:?}", sim.stats());
    // Nothing is probed without a sweep or a request: the counter is the listing's pages.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counted = serve.metric("vtriage_api_requests_total").await;
        if counted == Some(pages as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counted {counted:?}, the simulator answered {pages} listing pages ({:?})",
            sim.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
