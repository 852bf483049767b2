//! `check` always finishes and remembers: a deadline or a signal prints what is known and saves it, a second
//! run reuses fresh results and keeps history, and a vehicle two users connected is one row probed with a
//! token that works.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use vtriage::sim::{self, Latency, SimConfig, SimHandle};

use crate::cli_support::{self, write_tokens};

fn temp_home(name: &str) -> PathBuf {
    cli_support::temp_home("endings", name)
}

async fn simulator(vehicles: usize, latency: Latency) -> SimHandle {
    let config = SimConfig {
        vehicles,
        seed: 7,
        latency,
        ..SimConfig::default()
    };
    sim::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

fn command(home: &Path, args: &[&str]) -> tokio::process::Command {
    cli_support::command(home, args, &[])
}

async fn vtriage(home: &Path, args: &[&str]) -> Output {
    cli_support::run(home, args, &[]).await
}

fn live_args<'a>(origin: &'a str, amt: &'a str, tokens: &'a str) -> Vec<&'a str> {
    vec![
        "--api-origin",
        origin,
        "--management-origin",
        origin,
        "--amt",
        amt,
        "--tokens",
        tokens,
        "--no-rate-limit",
    ]
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

fn snapshot_of(home: &Path) -> vtriage::store::Snapshot {
    let dir = home.join("cache");
    let file = std::fs::read_dir(&dir)
        .expect("cache folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("snapshot-"))
        })
        .expect("a snapshot was saved");
    vtriage::store::load(&file)
        .expect("the snapshot is valid")
        .expect("the snapshot exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_past_its_deadline_prints_what_it_knows_and_exits_3() {
    let sim = simulator(
        30,
        Latency::Fixed {
            ms: 30_000,
            jitter_ms: 0,
        },
    )
    .await;
    let home = temp_home("deadline");
    let tokens = write_tokens(sim.tokens(), &home);
    let mut args = vec!["check", "--json", "--timeout", "2s"];
    args.extend(live_args(sim.origin(), sim.amt(), tokens.to_str().unwrap()));
    let started = std::time::Instant::now();
    let out = vtriage(&home, &args).await;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the deadline ends the check"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("not checked") && err.contains("--timeout 2 s"),
        "{err}"
    );
    let lines = json_lines(&out);
    let listed = sim.fleet().vehicles.len();
    assert_eq!(lines.len(), listed, "every listed vehicle is printed");
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "UNKNOWN" && l["mainFinding"] == "not-checked"),
        "{lines:?}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_check_prints_partial_results_and_leaves_a_valid_snapshot() {
    use tokio::io::AsyncBufReadExt;
    let sim = simulator(
        40,
        Latency::Fixed {
            ms: 60_000,
            jitter_ms: 0,
        },
    )
    .await;
    let home = temp_home("sigterm");
    // A first, quick run on the same fleet leaves results to keep.
    let tokens = write_tokens(sim.tokens(), &home);
    let tokens = tokens.to_str().unwrap();
    let mut args = vec!["check", "--json", "--concurrency", "4"];
    args.extend(live_args(sim.origin(), sim.amt(), tokens));
    let mut child = command(&home, &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until the listing is done and probes are on the wire.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sim.stats().by_endpoint.get("batch").copied().unwrap_or(0)
        + sim
            .stats()
            .by_endpoint
            .get("attributes")
            .copied()
            .unwrap_or(0)
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "probes start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().expect("pid");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .expect("output");
    let mut err = String::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        err.push_str(&line);
    }
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("interrupted (SIGTERM)"), "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), sim.fleet().vehicles.len());
    let snapshot = snapshot_of(&home);
    assert_eq!(snapshot.records.len(), sim.fleet().vehicles.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_check_reuses_fresh_results_and_keeps_history_and_force_probes_again() {
    let sim = simulator(
        25,
        Latency::Fixed {
            ms: 1,
            jitter_ms: 0,
        },
    )
    .await;
    let home = temp_home("reuse");
    let tokens = write_tokens(sim.tokens(), &home);
    let mut args = vec!["check", "--json"];
    args.extend(live_args(sim.origin(), sim.amt(), tokens.to_str().unwrap()));
    let first = vtriage(&home, &args).await;
    assert!(matches!(first.status.code(), Some(0 | 1)));
    let first_lines = json_lines(&first);
    let before = snapshot_of(&home);
    let failing: Vec<_> = before
        .records
        .iter()
        .filter(|r| r.failing_since.is_some())
        .map(|r| (r.vehicle_id.clone(), r.failing_since))
        .collect();
    assert!(!failing.is_empty(), "the seeded fleet has failing vehicles");

    sim.reset_stats();
    let second = vtriage(&home, &args).await;
    assert_eq!(second.status.code(), first.status.code());
    let vehicle_calls: u64 = ["attributes", "permissions", "batch", "data", "tesla"]
        .iter()
        .filter_map(|k| sim.stats().by_endpoint.get(*k).copied())
        .sum();
    assert_eq!(vehicle_calls, 0, "fresh results are reused");
    assert_eq!(json_lines(&second).len(), first_lines.len());
    let after = snapshot_of(&home);
    for (id, since) in &failing {
        let r = after
            .records
            .iter()
            .find(|r| &r.vehicle_id == id)
            .expect("kept");
        assert_eq!(&r.failing_since, since, "failing since survives a run");
    }

    sim.reset_stats();
    args.push("--force");
    vtriage(&home, &args).await;
    assert!(
        sim.stats().by_endpoint.get("batch").copied().unwrap_or(0) > 0,
        "--force probes again"
    );
}

/// A Management API listing one vehicle under two users, whose first user's token is revoked.
#[derive(Clone, Default)]
struct TwoOwners {
    with_revoked_token: Arc<AtomicU64>,
}

async fn two_owners(State(st): State<TwoOwners>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if path == "/v2.0/management/connections" {
        let row = |u: &str, v: &str| json!({"userId": u, "vehicleId": v, "connectedAt": "2025-01-01T00:00:00.000Z", "mode": "live"});
        return axum::Json(json!({
            "connections": [row("user-a", "car-1"), row("user-b", "car-1"), row("user-b", "car-2"), row("user-b", "car-1")],
            "paging": {"cursor": null}
        }))
        .into_response();
    }
    if auth == "Bearer token-a" {
        st.with_revoked_token.fetch_add(1, Ordering::SeqCst);
        let body = json!({"type": "AUTHENTICATION", "code": null, "description": "The access token is invalid or expired.", "docURL": null, "statusCode": 401, "requestId": "req-a", "resolution": {"type": "REAUTHENTICATE"}, "suggestedUserMessage": null});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    if auth != "Bearer token-b" {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let id = path.split('/').nth(3).unwrap_or_default().to_string();
    let rest: Vec<&str> = path.split('/').skip(4).collect();
    match rest.as_slice() {
        [] => axum::Json(json!({"id": id, "make": "TOYOTA", "model": "bZ4X", "year": 2023})).into_response(),
        ["permissions"] => axum::Json(json!({"permissions": ["read_vehicle_info", "read_odometer", "read_location", "read_vin"], "paging": {"count": 4, "offset": 0}})).into_response(),
        ["batch"] => {
            let body: Value = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            // Data the car reported a minute ago: healthy whatever the day's hour.
            let fresh = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)).to_string();
            let items: Vec<Value> = body["requests"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|r| {
                    let p = r["path"].as_str().unwrap_or_default().to_string();
                    let answer = match p.as_str() {
                        "/odometer" => json!({"distance": 1234.5}),
                        "/location" => json!({"latitude": 37.4, "longitude": -122.1}),
                        "/vin" => json!({"vin": if id == "car-1" { "JTMAB3FV7PD000001" } else { "JTMAB3FV9PD000002" }}),
                        _ => json!({}),
                    };
                    json!({"path": p, "code": 200, "body": answer, "headers": {"sc-data-age": fresh}})
                })
                .collect();
            axum::Json(json!({"responses": items})).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vehicle_listed_under_two_users_is_one_row_probed_with_the_token_that_works() {
    let state = TwoOwners::default();
    let app = axum::Router::new()
        .fallback(two_owners)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let home = temp_home("owners");
    let tokens = write_tokens(
        &[
            ("user-a".into(), "token-a".into()),
            ("user-b".into(), "token-b".into()),
        ],
        &home,
    );
    let mut args = vec!["check", "--json", "--timeout", "60s"];
    args.extend(live_args(
        &origin,
        "amt-for-the-test",
        tokens.to_str().unwrap(),
    ));
    let out = vtriage(&home, &args).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "one row per vehicle: {lines:?}");
    let car = lines.iter().find(|l| l["id"] == "car-1").expect("car-1");
    assert_eq!(car["status"], "HEALTHY", "{car}");
    assert_eq!(
        car["userId"], "user-b",
        "the evidence came from user-b's token"
    );

    let mut vehicle = vec!["vehicle", "user-a", "--json"];
    vehicle.extend(live_args(
        &origin,
        "amt-for-the-test",
        tokens.to_str().unwrap(),
    ));
    let by_first_owner = vtriage(&home, &vehicle).await;
    let text = String::from_utf8_lossy(&by_first_owner.stdout);
    assert!(text.contains("car-1"), "found by either owner: {text}");
}

fn vehicle_requests(sim: &SimHandle) -> u64 {
    ["attributes", "permissions", "batch", "data", "tesla"]
        .iter()
        .filter_map(|k| sim.stats().by_endpoint.get(*k).copied())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_budget_survives_a_restart_and_two_processes_share_it() {
    let sim = simulator(
        80,
        Latency::Fixed {
            ms: 1,
            jitter_ms: 0,
        },
    )
    .await;
    let home = temp_home("budget");
    let tokens = write_tokens(sim.tokens(), &home);
    let tokens = tokens.to_str().unwrap();
    let args = |timeout: &'static str| {
        let mut a = vec![
            "check",
            "--json",
            "--force",
            "--rate",
            "2/min",
            "--timeout",
            timeout,
        ];
        a.extend(live_args(sim.origin(), sim.amt(), tokens));
        a.retain(|x| *x != "--no-rate-limit");
        a
    };
    // 80 vehicles need more than the 120-request burst: the first run spends it all.
    let first = vtriage(&home, &args("4s")).await;
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(matches!(first.status.code(), Some(1 | 3)), "{err}");
    assert!(
        // Our own bucket ran dry; Smartcar answered no 429, so it is not said to throttle us.
        err.contains("not checked")
            && err.contains("waiting for budget until")
            && !err.contains("rate limited by Smartcar"),
        "{err}"
    );
    let spent = vehicle_requests(&sim);
    assert!(
        (100..=120).contains(&spent),
        "the first run spends the burst: {spent}"
    );

    sim.reset_stats();
    let second = vtriage(&home, &args("3s")).await;
    assert!(matches!(second.status.code(), Some(1 | 3)));
    assert!(
        vehicle_requests(&sim) <= 1,
        "a restart starts from what is left, not a full bucket: {}",
        vehicle_requests(&sim)
    );

    // Two processes at once, on a fresh budget: together they spend one burst, not two.
    let fresh = temp_home("budget-two");
    std::fs::copy(home.join("tokens.csv"), fresh.join("tokens.csv")).unwrap();
    sim.reset_stats();
    let a = args("4s");
    let b = args("4s");
    let (one, two) = tokio::join!(vtriage(&fresh, &a), vtriage(&fresh, &b));
    assert!(one.status.code().is_some() && two.status.code().is_some());
    let both = vehicle_requests(&sim);
    assert!(both <= 121, "two processes share one bucket: {both}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_past_its_deadline_says_not_checked_and_exits_3() {
    let sim = simulator(
        10,
        Latency::Fixed {
            ms: 30_000,
            jitter_ms: 0,
        },
    )
    .await;
    let home = temp_home("vehicledeadline");
    let tokens = write_tokens(sim.tokens(), &home);
    let id = sim.fleet().vehicles[0].id.clone();
    let mut args = vec!["vehicle", id.as_str(), "--json", "--timeout", "2s"];
    args.extend(live_args(sim.origin(), sim.amt(), tokens.to_str().unwrap()));
    let out = vtriage(&home, &args).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("not checked") && err.contains("--timeout 2 s"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("the vehicle as JSON");
    assert_eq!(v["mainFinding"], "not-checked");
}
