//! Agents on the desk: tokens made and revoked with `vtriage agent`, the `/api/v1/` reads and probe
//! requests (audited by name), the live stream (a webhook reaches it within a second; a revoked
//! token ends it at once), `check --server`, and no Smartcar secret in any answer.

use crate::desk_support;

use std::process::Command;
use std::time::{Duration, Instant};

use desk_support::{AMT, Schema, Serve, blocked_tesla, database_url, http, post_signed, v3_desk};
use serde_json::Value;

/// `vtriage agent ACTION...` on the test schema; its stdout, or a panic with its stderr.
fn agent_cmd(schema: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .arg("agent")
        .args(["--database", &database_url(), "--schema", schema])
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("vtriage agent runs");
    assert!(
        out.status.success(),
        "agent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn add_agent(schema: &str, name: &str) -> String {
    agent_cmd(schema, &["add", name]).trim().to_string()
}

async fn get(serve: &Serve, path: &str, token: &str) -> (u16, String) {
    let r = http()
        .get(format!("{}{path}", serve.origin))
        .bearer_auth(token)
        .send()
        .await
        .expect("an answer");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// Reads an SSE stream on a task of its own; `(event, data)` pairs come out of the channel.
fn open_stream(
    serve: &Serve,
    token: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, String)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let url = format!("{}/api/v1/stream", serve.origin);
    let token = token.to_string();
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let Ok(mut response) = client.get(url).bearer_auth(token).send().await else {
            return;
        };
        let mut reader = vtriage::desk::wire::SseReader::default();
        while let Ok(Some(chunk)) = response.chunk().await {
            for event in reader.push(&chunk) {
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(("<closed>".into(), String::new()));
    });
    rx
}

async fn next_named(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    name: &str,
    within: Duration,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((n, data))) if n == name => return Some(data),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_token_is_shown_once_kept_as_a_hash_and_refused_once_revoked() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let token = add_agent(&schema.name, "alice");
    assert!(token.starts_with("vtd_") && token.len() == 68, "{token}");
    let stored: String = schema
        .client
        .query_one("SELECT token_sha256 FROM agents WHERE name = 'alice'", &[])
        .await
        .expect("row")
        .get(0);
    assert!(
        !stored.contains(&token[4..]),
        "the token itself is not stored"
    );
    assert!(agent_cmd(&schema.name, &["list"]).contains("alice"));

    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    assert_eq!(get(&serve, "/api/v1/rules", &token).await.0, 200);
    assert_eq!(get(&serve, "/api/v1/rules", "vtd_not-a-token").await.0, 401);
    let anonymous = http()
        .get(format!("{}/api/v1/fleet", serve.origin))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status().as_u16(), 401);

    agent_cmd(&schema.name, &["revoke", "alice"]);
    assert_eq!(get(&serve, "/api/v1/fleet", &token).await.0, 401);
    assert!(agent_cmd(&schema.name, &["list"]).contains("revoked"));

    // A revoked name takes a new token; the old one stays refused.
    let rotated = add_agent(&schema.name, "alice");
    assert_ne!(rotated, token);
    assert_eq!(get(&serve, "/api/v1/fleet", &rotated).await.0, 200);
    assert_eq!(get(&serve, "/api/v1/fleet", &token).await.0, 401);
    assert!(!agent_cmd(&schema.name, &["list"]).contains("revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_reaches_an_open_stream_within_a_second_and_revoking_the_token_ends_it() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let token = add_agent(&schema.name, "bob");
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let mut stream = open_stream(&serve, &token);
    // The stream is open once the server counts it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while serve.metric("vtriage_dashboards_connected").await != Some(1.0) {
        assert!(Instant::now() < deadline, "the stream never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = Instant::now();
    let body = blocked_tesla("e-stream", "veh-stream");
    assert_eq!(post_signed(&http(), &serve.webhook_url(), &body).await, 200);
    let data = next_named(&mut stream, "vehicle", Duration::from_secs(1))
        .await
        .expect("the change on the stream within 1 s");
    eprintln!("webhook to stream: {:?}", sent.elapsed());
    let v: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(v["vehicle_id"], "veh-stream");
    assert_eq!(v["status"], "BLOCKED");

    let revoked_at = Instant::now();
    agent_cmd(&schema.name, &["revoke", "bob"]);
    assert!(
        next_named(&mut stream, "revoked", Duration::from_secs(3))
            .await
            .is_some(),
        "the open stream is told at once"
    );
    assert!(
        next_named(&mut stream, "<closed>", Duration::from_secs(3))
            .await
            .is_some(),
        "and closed"
    );
    eprintln!("revocation to closed stream: {:?}", revoked_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_asking_for_one_vehicle_at_once_cost_one_probe_and_both_are_audited() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let alice = add_agent(&schema.name, "alice");
    let bob = add_agent(&schema.name, "bob");
    let serve = Serve::start(
        &database_url(),
        &schema.name,
        &["--demo", "--prober-retry", "500ms"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let vehicle = loop {
        let (_, body) = get(&serve, "/api/v1/fleet?limit=1", &alice).await;
        let page: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if let Some(id) = page["vehicles"][0]["vehicle_id"].as_str() {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "the fleet was never listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let probe = |token: String| {
        let url = format!("{}/api/v1/vehicles/{vehicle}/probe", serve.origin);
        async move {
            let r = http()
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("answer");
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let ((sa, a), (sb, b)) = tokio::join!(probe(alice.clone()), probe(bob.clone()));
    assert_eq!((sa, sb), (200, 200), "{a} {b}");
    assert_eq!(a["served"], true);
    assert_eq!(b["served"], true);
    assert_eq!(a["vehicle"]["vehicle_id"], vehicle.as_str());
    let probes: i64 = schema
        .client
        .query_one(
            "SELECT count(*) FROM probe_results WHERE vehicle_id = $1",
            &[&vehicle],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(probes, 1, "one probe for both agents");

    assert_eq!(
        get(&serve, &format!("/api/v1/vehicles/{vehicle}"), &bob)
            .await
            .0,
        200
    );
    let audited: Vec<(String, String)> = schema
        .client
        .query("SELECT actor, action FROM audit ORDER BY id", &[])
        .await
        .expect("audit")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (actor, action) in [
        ("alice", "read fleet"),
        ("alice", "request probe"),
        ("bob", "request probe"),
        ("bob", "read vehicle"),
    ] {
        assert!(
            audited.iter().any(|(a, b)| a == actor && b == action),
            "{actor} {action} not in {audited:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_of_the_api_carries_a_smartcar_secret() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let token = add_agent(&schema.name, "carol");
    let serve = Serve::start(
        &database_url(),
        &schema.name,
        &["--demo", "--prober-retry", "500ms"],
    );
    let body = blocked_tesla("e-secret", "veh-secret");
    assert_eq!(post_signed(&http(), &serve.webhook_url(), &body).await, 200);
    let mut stream = open_stream(&serve, &token);
    let probe = http()
        .post(format!(
            "{}/api/v1/vehicles/veh-secret/probe?wait=5",
            serve.origin
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .unwrap_or_default();
    // A VIN lookup: a Tesla VIN of the demo fleet's make.
    let vin = http()
        .post(format!(
            "{}/api/v1/vins/5YJ3E1EH5LF714828?wait=5",
            serve.origin
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .unwrap_or_default();
    assert!(vin.contains("5YJ3E1EH5LF714828"), "{vin}");
    let mut answers = vec![probe, vin];
    for path in [
        "/api/v1/rules",
        "/api/v1/fleet",
        "/api/v1/fleet?limit=5000",
        "/api/v1/vehicles/veh-secret",
    ] {
        let (status, text) = get(&serve, path, &token).await;
        assert_eq!(status, 200, "{path}: {text}");
        answers.push(text);
    }
    // Whatever the stream said meanwhile (progress, probes, changes).
    while let Ok(Some((name, data))) =
        tokio::time::timeout(Duration::from_millis(1500), stream.recv()).await
    {
        answers.push(format!("{name} {data}"));
    }
    // The desk's AMT, the simulator's client secret, and anything named like a credential.
    let secrets = [
        AMT,
        "sim-client-secret",
        "access_token",
        "refresh_token",
        "client_secret",
    ];
    for answer in &answers {
        for secret in secrets {
            assert!(
                !answer.contains(secret),
                "an API answer carries {secret}: {answer:.300}"
            );
        }
    }
    assert!(answers.iter().any(|a| a.contains("veh-secret")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_server_prints_the_desks_verdicts_as_json() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let token = add_agent(&schema.name, "dave");
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let body = blocked_tesla("e-check", "veh-check");
    assert_eq!(post_signed(&http(), &serve.webhook_url(), &body).await, 200);
    let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["check", "--json", "--server", &serve.origin])
        .env("VTRIAGE_HOME", &serve.home)
        .env("VTRIAGE_AGENT_TOKEN", &token)
        .env_remove("SMARTCAR_MANAGEMENT_TOKEN")
        .output()
        .expect("check runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit 1: something is blocked; stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["id"] == "veh-check")
        .expect("the desk's vehicle is printed");
    assert_eq!(line["status"], "BLOCKED");

    // A token the desk does not know: refused, exit 2, one line.
    let refused = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["check", "--server", &serve.origin])
        .env("VTRIAGE_HOME", &serve.home)
        .env("VTRIAGE_AGENT_TOKEN", "vtd_unknown")
        .output()
        .expect("check runs");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused the agent token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smartcar_settings_exported_are_ignored_with_one_line_when_reading_a_desk() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let token = add_agent(&schema.name, "erin");
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let body = blocked_tesla("e-ignored", "veh-ignored");
    assert_eq!(post_signed(&http(), &serve.webhook_url(), &body).await, 200);
    for args in [
        vec!["check", "--json", "--server", &serve.origin],
        vec![
            "vehicle",
            "veh-ignored",
            "--json",
            "--server",
            &serve.origin,
        ],
    ] {
        // Anyone who tried live API v3 first has the secret exported, but no client id.
        let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
            .args(&args)
            .env("VTRIAGE_HOME", &serve.home)
            .env("VTRIAGE_AGENT_TOKEN", &token)
            .env("SMARTCAR_CLIENT_SECRET", "exported-long-ago")
            .env_remove("SMARTCAR_CLIENT_ID")
            .env_remove("SMARTCAR_MANAGEMENT_TOKEN")
            .output()
            .expect("vtriage runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("veh-ignored"),
            "{args:?}"
        );
        let notes: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("SMARTCAR_CLIENT_SECRET"))
            .collect();
        assert_eq!(notes.len(), 1, "{args:?}: {stderr}");
        assert!(notes[0].contains("ignored"), "{stderr}");
        assert!(!stderr.contains("exported-long-ago"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_answering_without_end_or_with_a_redirect_is_refused_not_read_or_followed() {
    use axum::response::IntoResponse;
    // An answer larger than any fleet page, and a redirect that would carry the token elsewhere.
    let app = axum::Router::new()
        .route(
            "/api/v1/rules",
            axum::routing::get(|| async { vec![b' '; 65 * 1024 * 1024].into_response() }),
        )
        .route(
            "/api/v1/fleet",
            axum::routing::get(|| async {
                axum::response::Redirect::temporary("http://127.0.0.1:9/steal").into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = vtriage::desk::remote::DeskClient::new(
        &origin,
        vtriage::smartcar::Secret::new("vtd_test".to_string()),
        false,
    )
    .expect("a loopback desk");
    let too_big = client.rules().await.expect_err("an oversized answer");
    assert!(
        matches!(too_big, vtriage::desk::remote::RemoteError::Unreadable(_)),
        "{too_big}"
    );
    let redirected = client.fleet().await.expect_err("a redirect");
    assert!(redirected.to_string().contains("redirect"), "{redirected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_probe_asked_for_seconds_into_a_slow_probe_gets_a_probe_of_its_own() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let alice = add_agent(&schema.name, "alice");
    let bob = add_agent(&schema.name, "bob");
    // Every answer takes 6 s: Bob asks 4.5 s after Alice, while her probe is still on its way but
    // more than the 3 s grace after it began, so its answer may predate what Bob wants to see.
    let (sim, serve) = v3_desk(
        &schema.name,
        vtriage::sim::SimConfig {
            vehicles: 10,
            seed: 7,
            vehicle_calls_per_hour: 0,
            latency: vtriage::sim::Latency::Fixed {
                ms: 6000,
                jitter_ms: 0,
            },
            ..vtriage::sim::SimConfig::default()
        },
        &[],
    )
    .await;
    let vehicle = sim.fleet().vehicles[0].id.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while schema.count("SELECT count(*) FROM vehicles").await < 10 {
        assert!(Instant::now() < deadline, "the fleet was never listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let forced = |token: String| {
        let url = format!(
            "{}/api/v1/vehicles/{vehicle}/probe?force=true",
            serve.origin
        );
        async move {
            let r = http()
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("answer");
            r.status().as_u16()
        }
    };
    let first = tokio::spawn(forced(alice));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let second = forced(bob).await;
    assert_eq!(first.await.expect("alice's request"), 200);
    assert_eq!(second, 200);
    assert_eq!(sim.v3_stats().signals_calls, 2, "a probe for each");
    let results = format!(
        "SELECT count(DISTINCT probe_result_id) FROM {}.probe_requests WHERE vehicle_id = '{vehicle}'",
        schema.name
    );
    assert_eq!(schema.count(&results).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_list_on_a_schema_that_does_not_exist_is_an_error_and_creates_nothing_while_add_says_it_created_one()
 {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let typo = format!("{}_typo", schema.name);
    let run = |action: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vtriage"))
            .args(["agent", "--database", &database_url(), "--schema", &typo])
            .args(action)
            .env_remove("DATABASE_URL")
            .output()
            .expect("vtriage agent runs")
    };
    let listed = run(&["list"]);
    assert_eq!(listed.status.code(), Some(2));
    let err = String::from_utf8_lossy(&listed.stderr);
    assert!(err.contains("does not exist"), "{err}");
    let namespaces = schema
        .count(&format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = '{typo}'"
        ))
        .await;
    assert_eq!(namespaces, 0, "list created nothing");
    let first = run(&["add", "zoe"]);
    let second = run(&["add", "yan"]);
    schema
        .client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {typo} CASCADE"))
        .await
        .expect("drop the schema");
    assert!(first.status.success());
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(err.contains("did not exist and was created"), "{err}");
    let again = String::from_utf8_lossy(&second.stderr);
    assert!(!again.contains("did not exist"), "said once: {again}");
}

#[tokio::test]
async fn the_names_the_audit_gives_the_desk_itself_cannot_be_agents_names() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    for name in ["admin", "serve", "Admin"] {
        let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
            .args([
                "agent",
                "--database",
                &database_url(),
                "--schema",
                &schema.name,
            ])
            .args(["add", name])
            .env_remove("DATABASE_URL")
            .output()
            .expect("vtriage agent runs");
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the desk itself"), "{name}: {err}");
    }
}

/// A v3 desk on a simulator of `vehicles` cars (seed 7, no hourly limit), once it has listed them all.
async fn listed_v3_desk(schema: &Schema, vehicles: usize) -> (vtriage::sim::SimHandle, Serve) {
    let (sim, serve) = v3_desk(
        &schema.name,
        vtriage::sim::SimConfig {
            vehicles,
            seed: 7,
            vehicle_calls_per_hour: 0,
            ..vtriage::sim::SimConfig::default()
        },
        &["--prober-retry", "500ms"],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while schema.count("SELECT count(*) FROM vehicles").await < vehicles as i64 {
        assert!(Instant::now() < deadline, "the fleet was never listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (sim, serve)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vin_the_desk_has_not_read_is_looked_up_once_then_known_and_audited() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let alice = add_agent(&schema.name, "alice");
    let (sim, serve) = listed_v3_desk(&schema, 40).await;
    let car = sim.fleet().vehicles[17].clone();
    let find = |vin: String| {
        let url = format!("{}/api/v1/vins/{vin}", serve.origin);
        let token = alice.clone();
        async move {
            let r = http()
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("answer");
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, first) = find(car.vin.to_lowercase()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["done"], true);
    assert_eq!(first["vehicle_id"], car.id.as_str());
    assert!(first["requests"].as_u64().unwrap_or(0) >= 1, "{first}");
    let (_, again) = find(car.vin.clone()).await;
    assert_eq!(again["vehicle_id"], car.id.as_str());
    assert_eq!(again["requests"], 0, "known now: {again}");
    let (_, item) = get(&serve, "/api/v1/fleet?limit=5000", &alice).await;
    assert!(item.contains(&car.vin), "the fleet carries the VIN read");

    let (bad, answer) = find("not-a-vin".into()).await;
    assert_eq!(bad, 400, "{answer}");
    // One character off: its check digit no longer fits, and the desk spends nothing on it.
    let mut typo: Vec<char> = car.vin.chars().collect();
    typo[12] = if typo[12] == '7' { '8' } else { '7' };
    let typo: String = typo.into_iter().collect();
    let before = sim.stats().requests_total;
    let (status, answer) = find(typo.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("check digit"),
        "{answer}"
    );
    assert_eq!(
        sim.stats().requests_total,
        before,
        "nothing sent for a typo"
    );
    let audited = schema
        .count("SELECT count(*) FROM audit WHERE action = 'find vin' AND actor = 'alice'")
        .await;
    assert_eq!(audited, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_escapes_what_json_allows_raw_but_a_terminal_must_not_see_and_a_nul_cursor_is_a_400()
 {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let body = blocked_tesla("evt-escape", "veh-escape");
    assert_eq!(post_signed(&http(), &serve.webhook_url(), &body).await, 200);
    let hostile = "Model\u{7f}\u{9b}31m\u{202e}lesT\u{2028}";
    schema
        .client
        .execute(
            "UPDATE vehicles SET model = $1 WHERE vehicle_id = 'veh-escape'",
            &[&hostile],
        )
        .await
        .expect("hostile model");
    let token = add_agent(&schema.name, "eve");
    let (status, raw) = get(&serve, "/api/v1/fleet", &token).await;
    assert_eq!(status, 200, "{raw}");
    for c in ['\u{7f}', '\u{9b}', '\u{202e}', '\u{2028}'] {
        assert!(!raw.contains(c), "raw {:?} in the fleet: {raw:?}", c);
    }
    let page: Value = serde_json::from_str(&raw).expect("still JSON");
    assert_eq!(page["vehicles"][0]["model"], hostile, "the same value");
    let (status, raw) = get(&serve, "/api/v1/fleet?after=a%00b", &token).await;
    assert_eq!(status, 400, "a NUL is bad input, not an outage: {raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_stream_whose_revocation_notice_was_lost_still_ends_within_seconds() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let token = add_agent(&schema.name, "mallory");
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let mut stream = open_stream(&serve, &token);
    let deadline = Instant::now() + Duration::from_secs(10);
    while serve.metric("vtriage_dashboards_connected").await != Some(1.0) {
        assert!(Instant::now() < deadline, "the stream never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Revoked in the table alone: no notice reaches the stream.
    schema
        .client
        .execute(
            "UPDATE agents SET revoked_at = now() WHERE name = 'mallory'",
            &[],
        )
        .await
        .expect("revoked quietly");
    let revoked_at = Instant::now();
    // A delivery every half second keeps the stream busy.
    let url = serve.webhook_url();
    let busy = tokio::spawn(async move {
        for i in 0..40 {
            let body = blocked_tesla(&format!("e-busy-{i}"), &format!("veh-busy-{i}"));
            let _ = post_signed(&http(), &url, &body).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let ended = next_named(&mut stream, "revoked", Duration::from_secs(12)).await;
    busy.abort();
    assert!(
        ended.is_some(),
        "still streaming {:?} after a quiet revocation",
        revoked_at.elapsed()
    );
    assert!(revoked_at.elapsed() < Duration::from_secs(12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_lookup_that_could_not_read_every_candidate_says_so_never_no_vehicle() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let alice = add_agent(&schema.name, "alice");
    let (sim, serve) = listed_v3_desk(&schema, 200).await;
    // A car whose connection is refused: Smartcar never gives its VIN.
    let car = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.situation == vtriage::sim::Situation::TokenExpired)
        .cloned()
        .expect("a refused connection in the fleet");
    let (status, answer) = {
        let r = http()
            .post(format!("{}/api/v1/vins/{}?wait=30", serve.origin, car.vin))
            .bearer_auth(&alice)
            .send()
            .await
            .expect("answer");
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["done"], true, "{answer}");
    assert!(answer["vehicle_id"].is_null(), "{answer}");
    let gaps = answer["gaps"].as_str().unwrap_or_default();
    assert!(gaps.contains("could not be read"), "{answer}");
    assert!(!gaps.contains("no vehicle"), "{answer}");
}
