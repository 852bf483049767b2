//! `vtriage serve` against a real PostgreSQL: VERIFY, signatures, deduplication, order, diagnosis.

use crate::desk_support;

use desk_support::{
    AMT, Schema, Serve, blocked_tesla, database_url, http, post_signed, vehicle_error,
};
use serde_json::json;

async fn setup() -> Option<(Schema, Serve)> {
    let schema = Schema::create().await?;
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    Some((schema, serve))
}

async fn post_verify(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    signature: Option<String>,
) -> (u16, serde_json::Value) {
    let mut request = client.post(url).body(body.to_string());
    if let Some(signature) = signature {
        request = request.header("SC-Signature", signature);
    }
    let answer = request.send().await.expect("answer");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_is_answered_only_for_a_challenge_of_smartcars_shape_signed_or_not() {
    let Some((schema, serve)) = setup().await else {
        return;
    };
    let client = http();
    let url = serve.webhook_url();
    let body =
        json!({"eventType": "VERIFY", "data": {"challenge": "ch-42"}, "meta": {"version": "4.0"}})
            .to_string();
    let expected = vtriage::desk::webhook::sign(AMT.as_bytes(), b"ch-42");
    let signed = vtriage::desk::webhook::sign(AMT.as_bytes(), body.as_bytes());
    for signature in [None, Some(signed)] {
        let (status, v) = post_verify(&client, &url, &body, signature).await;
        assert_eq!(status, 200);
        assert_eq!(v, json!({"challenge": expected}));
    }
    let legacy = json!({"eventName": "verify", "payload": {"challenge": "3f9c2a1e-6b7d-4e8f"}});
    let (status, _) = post_verify(&client, &url, &legacy.to_string(), None).await;
    assert_eq!(status, 200, "the legacy shape");

    // A VERIFY signed with another key, a challenge that is no token, an unsigned body over the
    // unsigned cap: refused, each with its reason.
    let forged = vtriage::desk::webhook::sign(b"not-the-amt", body.as_bytes());
    let (status, _) = post_verify(&client, &url, &body, Some(forged)).await;
    assert_eq!(status, 401);
    let spaced = json!({"eventType": "VERIFY", "data": {"challenge": "a challenge with spaces"}});
    let (status, v) = post_verify(&client, &url, &spaced.to_string(), None).await;
    assert_eq!(status, 400);
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("challenge")),
        "{v}"
    );
    let padded =
        json!({"eventType": "VERIFY", "data": {"challenge": "ch-1"}, "pad": "x".repeat(5000)});
    let (status, v) = post_verify(&client, &url, &padded.to_string(), None).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(schema.count("SELECT count(*) FROM webhook_events").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_delivery_sent_as_a_verify_challenge_is_never_signed_nor_stored() {
    let Some((schema, serve)) = setup().await else {
        return;
    };
    let client = http();
    let url = serve.webhook_url();
    let forged = blocked_tesla("forged-1", "veh-forged");
    // The attack: the forged body as the challenge, in both VERIFY shapes, signed by no one.
    for verify in [
        json!({"eventType": "VERIFY", "data": {"challenge": forged}, "meta": {"version": "4.0"}}),
        json!({"eventName": "verify", "payload": {"challenge": forged}}),
    ] {
        let (status, v) = post_verify(&client, &url, &verify.to_string(), None).await;
        assert_eq!(status, 400, "{v}");
        assert!(v.get("challenge").is_none(), "{v}");
    }
    // A signature the desk did give, for a challenge of the accepted shape, signs that token
    // only: as a body it is no delivery, and it signs no forged one.
    let (status, v) = post_verify(
        &client,
        &url,
        &json!({"eventType": "VERIFY", "data": {"challenge": "true"}}).to_string(),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let obtained = v["challenge"].as_str().expect("an answer").to_string();
    for body in ["true", forged.as_str()] {
        let (status, _) = post_verify(&client, &url, body, Some(obtained.clone())).await;
        assert!(status == 400 || status == 401, "{body}: {status}");
    }
    assert_eq!(schema.count("SELECT count(*) FROM webhook_events").await, 0);
    assert_eq!(schema.count("SELECT count(*) FROM vehicles").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_missing_signature_is_refused_and_nothing_is_stored() {
    let Some((schema, serve)) = setup().await else {
        return;
    };
    let client = http();
    let body = vehicle_error(
        "e-forged",
        "veh-1",
        "AUTHENTICATION",
        None,
        "ERROR",
        1_760_000_000_000,
        json!([]),
    );
    let forged = vtriage::desk::webhook::sign(b"not-the-amt", body.as_bytes());
    let status = client
        .post(serve.webhook_url())
        .header("SC-Signature", forged)
        .body(body.clone())
        .send()
        .await
        .expect("answer")
        .status();
    assert_eq!(status, 401);
    let unsigned = client
        .post(serve.webhook_url())
        .body(body)
        .send()
        .await
        .expect("answer")
        .status();
    assert_eq!(unsigned, 401);
    assert_eq!(schema.count("SELECT count(*) FROM webhook_events").await, 0);
    assert_eq!(schema.count("SELECT count(*) FROM vehicles").await, 0);
    let rejected = http()
        .get(format!("{}/metrics", serve.origin))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        rejected.contains("vtriage_webhook_events_rejected_total{reason=\"signature\"} 2"),
        "{rejected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_delivery_twice_is_stored_once() {
    let Some((schema, serve)) = setup().await else {
        return;
    };
    let client = http();
    let body = vehicle_error(
        "e-dup",
        "veh-dup",
        "CONNECTED_SERVICES_ACCOUNT",
        Some("VIRTUAL_KEY_REQUIRED"),
        "ERROR",
        1_760_000_000_000,
        json!(["Location.PreciseLocation"]),
    );
    assert_eq!(post_signed(&client, &serve.webhook_url(), &body).await, 200);
    assert_eq!(post_signed(&client, &serve.webhook_url(), &body).await, 200);
    assert_eq!(schema.count("SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(
        schema
            .count("SELECT count(*) FROM status_history WHERE vehicle_id = 'veh-dup'")
            .await,
        1
    );
    assert_eq!(
        serve
            .metric("vtriage_webhook_events_deduplicated_total")
            .await,
        Some(1.0)
    );
}

async fn vehicle(schema: &Schema, id: &str) -> (String, Option<String>) {
    let row = schema
        .client
        .query_one(
            "SELECT status, finding FROM vehicles WHERE vehicle_id = $1",
            &[&id],
        )
        .await
        .expect("vehicle row");
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_deliveries_end_in_the_newest_state() {
    let Some((schema, serve)) = setup().await else {
        return;
    };
    let client = http();
    let url = serve.webhook_url();
    let key = |id: &str, vehicle: &str, state: &str, ms: i64| {
        vehicle_error(
            id,
            vehicle,
            "CONNECTED_SERVICES_ACCOUNT",
            Some("VIRTUAL_KEY_REQUIRED"),
            state,
            ms,
            json!([{"code": "location-preciselocation", "name": "PreciseLocation", "group": "Location"}]),
        )
    };
    // The resolution (newer) arrives before the error it resolves.
    assert_eq!(
        post_signed(&client, &url, &key("r1", "veh-late", "RESOLVED", 2_000_000)).await,
        200
    );
    assert_eq!(
        post_signed(&client, &url, &key("e1", "veh-late", "ERROR", 1_000_000)).await,
        200
    );
    let (status, finding) = vehicle(&schema, "veh-late").await;
    assert_ne!(status, "BLOCKED", "{finding:?}");

    // In order: blocked by the missing key, then cleared.
    assert_eq!(
        post_signed(&client, &url, &key("e2", "veh-order", "ERROR", 1_000_000)).await,
        200
    );
    assert_eq!(
        vehicle(&schema, "veh-order").await,
        ("BLOCKED".into(), Some("virtual-key-missing".into()))
    );
    assert_eq!(
        post_signed(
            &client,
            &url,
            &key("r2", "veh-order", "RESOLVED", 2_000_000)
        )
        .await,
        200
    );
    let (status, _) = vehicle(&schema, "veh-order").await;
    assert_ne!(status, "BLOCKED");
    let history: Vec<String> = schema
        .client
        .query(
            "SELECT status FROM status_history WHERE vehicle_id = 'veh-order' ORDER BY id",
            &[],
        )
        .await
        .expect("history")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0], "BLOCKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_errors_become_a_diagnosis_without_any_api_call() {
    let Some((schema, serve)) = setup().await else {
        return;
    };
    let client = http();
    let url = serve.webhook_url();
    let cases = [
        (
            "veh-key",
            "CONNECTED_SERVICES_ACCOUNT",
            Some("VIRTUAL_KEY_REQUIRED"),
            json!(["Odometer.TraveledDistance"]),
            "virtual-key-missing",
        ),
        (
            "veh-token",
            "AUTHENTICATION",
            None,
            json!([]),
            "access-token-expired",
        ),
    ];
    for (i, (vehicle_id, error_type, code, signals, finding)) in cases.into_iter().enumerate() {
        let body = vehicle_error(
            &format!("diag-{i}"),
            vehicle_id,
            error_type,
            code,
            "ERROR",
            1_760_000_000_000,
            signals,
        );
        assert_eq!(post_signed(&client, &url, &body).await, 200);
        assert_eq!(
            vehicle(&schema, vehicle_id).await,
            ("BLOCKED".to_string(), Some(finding.to_string()))
        );
    }
    // A Tesla's location refused with PERMISSION: a finding that names location, not BLOCKED data.
    let body = vehicle_error(
        "diag-loc",
        "veh-loc",
        "PERMISSION",
        None,
        "ERROR",
        1_760_000_000_000,
        json!(["Location.PreciseLocation"]),
    );
    assert_eq!(post_signed(&client, &url, &body).await, 200);
    let (status, finding) = vehicle(&schema, "veh-loc").await;
    assert_ne!(status, "HEALTHY");
    let diagnosis: serde_json::Value = schema
        .client
        .query_one(
            "SELECT diagnosis FROM vehicles WHERE vehicle_id = 'veh-loc'",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert!(
        diagnosis.to_string().contains("location"),
        "{finding:?} {diagnosis}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_gets_413_and_healthz_reports_the_database() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = Serve::start(
        &database_url(),
        &schema.name,
        &["--demo", "--no-prober", "--max-body-bytes", "1024"],
    );
    let client = http();
    let body = "x".repeat(4096);
    assert_eq!(post_signed(&client, &serve.webhook_url(), &body).await, 413);
    let health = client
        .get(format!("{}/healthz", serve.origin))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(
        serve.metric("vtriage_webhook_events_received_total").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_change_is_announced_on_the_changes_channel() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    // A second connection of our own listens.
    let (listener, mut connection) =
        tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
            .await
            .expect("connect");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        // The driver hands notifications out only to whoever polls the connection.
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    listener
        .batch_execute(&format!(
            "LISTEN \"{}\"",
            vtriage::desk::db::changes_channel(Some(&schema.name))
        ))
        .await
        .expect("listen");
    let body = vehicle_error(
        "n-1",
        "veh-notify",
        "AUTHENTICATION",
        None,
        "ERROR",
        1_760_000_000_000,
        json!([]),
    );
    assert_eq!(post_signed(&http(), &serve.webhook_url(), &body).await, 200);
    let payload = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification within 10 s")
        .expect("payload");
    let v: serde_json::Value = serde_json::from_str(&payload).expect("json payload");
    assert_eq!(v["vehicle_id"], "veh-notify");
    assert_eq!(v["status"], "BLOCKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_echoing_the_management_token_stores_it_nowhere() {
    let Some((schema, serve)) = setup().await else {
        return;
    };
    let client = http();
    let body = vehicle_error(
        "echo-1",
        "veh-echo",
        "CONNECTED_SERVICES_ACCOUNT",
        Some("VIRTUAL_KEY_REQUIRED"),
        "ERROR",
        1_760_000_000_000,
        json!(["Odometer.TraveledDistance"]),
    )
    .replace("from the test", &format!("token {AMT} refused \\u001b[2J"));
    assert!(body.contains(AMT));
    assert_eq!(post_signed(&client, &serve.webhook_url(), &body).await, 200);
    assert_eq!(
        vehicle(&schema, "veh-echo").await.1.as_deref(),
        Some("virtual-key-missing")
    );
    let like = format!("%{AMT}%");
    for table in ["webhook_events", "vehicles", "status_history"] {
        let found = schema
            .client
            .query_one(
                &format!("SELECT count(*) FROM {table} t WHERE t::text LIKE $1"),
                &[&like],
            )
            .await
            .expect("count")
            .get::<_, i64>(0);
        assert_eq!(found, 0, "the management token is stored in {table}");
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// 2100-01-01, as a delivery from a sender whose clock is wrong might date itself.
const YEAR_2100_MS: i64 = 4_102_444_800_000;

fn virtual_key(id: &str, vehicle: &str, state: &str, ms: i64) -> String {
    vehicle_error(
        id,
        vehicle,
        "CONNECTED_SERVICES_ACCOUNT",
        Some("VIRTUAL_KEY_REQUIRED"),
        state,
        ms,
        json!(["Location.PreciseLocation"]),
    )
}

async fn history(schema: &Schema, vehicle: &str) -> Vec<(String, String)> {
    schema
        .client
        .query(
            "SELECT status, cause FROM status_history WHERE vehicle_id = $1 ORDER BY id",
            &[&vehicle],
        )
        .await
        .expect("history")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_dated_2100_does_not_freeze_its_car_a_resolution_sent_now_clears_it() {
    let Some((schema, serve)) = setup().await else {
        return;
    };
    let client = http();
    let url = serve.webhook_url();
    let future = virtual_key("f-1", "veh-2100", "ERROR", YEAR_2100_MS);
    assert_eq!(post_signed(&client, &url, &future).await, 200);
    assert_eq!(vehicle(&schema, "veh-2100").await.0, "BLOCKED");
    let occurred: Option<std::time::SystemTime> = schema
        .client
        .query_one(
            "SELECT occurred_at FROM webhook_events WHERE event_id = 'f-1'",
            &[],
        )
        .await
        .expect("event row")
        .get(0);
    let year_2100 = std::time::UNIX_EPOCH + std::time::Duration::from_millis(YEAR_2100_MS as u64);
    assert!(occurred.is_some_and(|t| t < year_2100), "{occurred:?}");

    let resolved = virtual_key("r-1", "veh-2100", "RESOLVED", now_ms());
    assert_eq!(post_signed(&client, &url, &resolved).await, 200);
    let (status, finding) = vehicle(&schema, "veh-2100").await;
    assert_ne!(status, "BLOCKED", "{finding:?}");
    assert_eq!(history(&schema, "veh-2100").await.len(), 2);
}

/// Waits until `vehicle`'s status satisfies `done`; the last status seen.
async fn wait_status(schema: &Schema, vehicle_id: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, _) = vehicle(schema, vehicle_id).await;
        if done(&status) || std::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The simulator and a v3 desk probing it, once the desk has listed the fleet.
async fn probing_desk(schema: &Schema) -> (vtriage::sim::SimHandle, Serve, String) {
    let (sim, serve) = desk_support::v3_desk(
        &schema.name,
        vtriage::sim::SimConfig {
            vehicles: 40,
            seed: 7,
            vehicle_calls_per_hour: 0,
            ..vtriage::sim::SimConfig::default()
        },
        &[],
    )
    .await;
    let token = desk_support::add_agent(&schema.name, "alice");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while schema.count("SELECT count(*) FROM vehicles").await < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "the fleet was never listed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    (sim, serve, token)
}

async fn force_probe(serve: &Serve, token: &str, vehicle_id: &str) {
    let status = http()
        .post(format!(
            "{}/api/v1/vehicles/{vehicle_id}/probe?force=true",
            serve.origin
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("an answer")
        .status();
    assert_eq!(status, 200, "the forced probe of {vehicle_id} was served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_probe_after_a_delivery_dated_2100_clears_it() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let (sim, serve, token) = probing_desk(&schema).await;
    let healthy = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.situation == vtriage::sim::Situation::Healthy)
        .expect("a healthy car")
        .id
        .clone();
    let future = virtual_key("f-probe", &healthy, "ERROR", YEAR_2100_MS);
    assert_eq!(
        post_signed(&http(), &serve.webhook_url(), &future).await,
        200
    );
    assert_eq!(vehicle(&schema, &healthy).await.0, "BLOCKED");
    force_probe(&serve, &token, &healthy).await;
    let status = wait_status(&schema, &healthy, |s| s != "BLOCKED").await;
    assert_ne!(
        status, "BLOCKED",
        "the probe's answer is newer than the delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_arriving_after_a_probe_unblocks_the_car_in_history_and_on_the_channel() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let (sim, serve, token) = probing_desk(&schema).await;
    let tesla = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.is_tesla() && v.situation == vtriage::sim::Situation::VirtualKeyMissing)
        .expect("a Tesla without its key")
        .id
        .clone();
    force_probe(&serve, &token, &tesla).await;
    assert_eq!(
        vehicle(&schema, &tesla).await,
        ("BLOCKED".into(), Some("virtual-key-missing".into()))
    );
    let (listener, mut connection) =
        tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
            .await
            .expect("connect");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    listener
        .batch_execute(&format!(
            "LISTEN \"{}\"",
            vtriage::desk::db::changes_channel(Some(&schema.name))
        ))
        .await
        .expect("listen");

    // The customer pairs the key; Smartcar says so after the probe.
    let resolved = virtual_key("r-after-probe", &tesla, "RESOLVED", now_ms());
    assert_eq!(
        post_signed(&http(), &serve.webhook_url(), &resolved).await,
        200
    );
    let (status, finding) = vehicle(&schema, &tesla).await;
    assert_ne!(status, "BLOCKED", "{finding:?}");
    let history = history(&schema, &tesla).await;
    assert_eq!(
        history.last().map(|(s, c)| (s != "BLOCKED", c.as_str())),
        Some((true, "webhook r-after-probe")),
        "{history:?}"
    );
    let announced = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(payload) = rx.recv().await {
            let v: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
            if v["vehicle_id"] == tesla.as_str() && v["moved"] == true {
                return Some(v);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let announced = announced.expect("the change is announced");
    assert_ne!(announced["status"], "BLOCKED", "{announced}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_error_reads_resolved_at_its_delivery_by_webhook_not_unknown() {
    let Some((schema, serve)) = setup().await else {
        return;
    };
    let client = http();
    let url = serve.webhook_url();
    // 2026-11-27 14:00 and 14:05 UTC.
    let (failed_ms, resolved_ms) = (1_795_788_000_000_i64, 1_795_788_300_000_i64);
    let error = virtual_key("e-w", "veh-resolved", "ERROR", failed_ms);
    assert_eq!(post_signed(&client, &url, &error).await, 200);
    let resolved = virtual_key("r-w", "veh-resolved", "RESOLVED", resolved_ms);
    assert_eq!(post_signed(&client, &url, &resolved).await, 200);
    let row = schema
        .client
        .query_one(
            "SELECT status, finding, diagnosis FROM vehicles WHERE vehicle_id = 'veh-resolved'",
            &[],
        )
        .await
        .expect("vehicle row");
    let (status, finding): (String, Option<String>) = (row.get(0), row.get(1));
    assert_ne!(status, "UNKNOWN");
    assert_eq!(finding.as_deref(), Some("error-resolved"));
    let diagnosis: serde_json::Value = row.get(2);
    let main = &diagnosis["findings"][0];
    assert!(
        main["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("resolved at 14:05 (webhook)")),
        "{main}"
    );
    assert_eq!(main["evidence"][0]["event_id"], "r-w", "{main}");
    let causes: Vec<String> = history(&schema, "veh-resolved")
        .await
        .into_iter()
        .map(|(_, cause)| cause)
        .collect();
    assert_eq!(causes, ["webhook e-w", "webhook r-w"]);
}
