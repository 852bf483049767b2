//! Limits and faults that happen per request rather than per vehicle: the hourly per-vehicle limit,
//! the app-wide bucket and injected faults.

use crate::sim_support;

use serde_json::json;
use sim_support::{quiet, start};
use vtriage::sim::{AppRateLimit, SimConfig, Situation};

#[tokio::test]
async fn vehicle_over_its_hourly_limit_gets_429_with_retry_after() {
    let sim = start(SimConfig {
        vehicle_calls_per_hour: 3,
        ..quiet(50, 7)
    })
    .await;
    let v = sim.vehicle(Situation::Healthy);
    let token = sim.token_of(v);
    let odometer = format!("/v2.0/vehicles/{}/odometer", v.id);
    for _ in 0..3 {
        assert_eq!(sim.get(&odometer, Some(&token)).await.status, 200);
    }
    let a = sim.get(&odometer, Some(&token)).await;
    a.expect_error(429, "RATE_LIMIT", Some("VEHICLE"));
    let retry: u64 = a
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("seconds");
    assert!((3_500..=3_600).contains(&retry), "{retry}");

    // Each batch item counts against the same limit, and says so with the exact key the Python SDK reads.
    let batch = sim
        .post(
            &format!("/v2.0/vehicles/{}/batch", v.id),
            Some(&token),
            &json!({"requests": [{"path": "/location"}]}),
        )
        .await
        .json();
    let item = &batch["responses"][0];
    assert_eq!(item["code"], 429);
    assert_eq!(item["body"]["code"], "VEHICLE");
    assert!(
        item["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );

    // Another vehicle is not affected; metadata calls are not data calls.
    let other = sim.vehicle_where(|o| o.situation == Situation::Healthy && o.id != v.id);
    assert_eq!(
        sim.get(
            &format!("/v2.0/vehicles/{}/odometer", other.id),
            Some(&sim.token_of(other))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        sim.get(&format!("/v2.0/vehicles/{}", v.id), Some(&token))
            .await
            .status,
        200
    );
    assert_eq!(sim.handle.stats().rate_limited_vehicle, 2);

    // Resetting the counters forgets the window.
    sim.handle.reset_stats();
    assert_eq!(sim.get(&odometer, Some(&token)).await.status, 200);
}

#[tokio::test]
async fn app_bucket_empties_after_its_burst_and_says_when_to_retry() {
    let sim = start(SimConfig {
        app_rate_limit: Some(AppRateLimit {
            burst: 5,
            refill_per_min: 2.0,
        }),
        ..quiet(50, 7)
    })
    .await;
    let v = sim.vehicle(Situation::Healthy);
    let token = sim.token_of(v);
    for _ in 0..5 {
        assert_eq!(sim.get("/v2.0/user", Some(&token)).await.status, 200);
    }
    let a = sim
        .get(&format!("/v2.0/vehicles/{}/odometer", v.id), Some(&token))
        .await;
    let body = a.expect_error(429, "RATE_LIMIT", Some("SMARTCAR_API"));
    assert_eq!(body["resolution"]["type"], "RETRY_LATER");
    let retry: u64 = a
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&retry), "{retry}");
    // The Management API is not behind the app bucket.
    assert_eq!(
        sim.management("", "default", sim.handle.amt()).await.status,
        200
    );
    let stats = sim.handle.stats();
    assert_eq!(stats.rate_limited_app, 1);
    assert_eq!(stats.rate_limited_vehicle, 0);
}

#[tokio::test]
async fn fault_injection_yields_every_listed_fault_kind() {
    let sim = start(SimConfig {
        fault_rate: 1.0,
        ..quiet(50, 7)
    })
    .await;
    let v = sim.vehicle(Situation::Healthy);
    let token = sim.token_of(v);
    let url = sim.url(&format!("/v2.0/vehicles/{}/odometer", v.id));
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let (http, url, token) = (sim.http.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let r = http.get(url).bearer_auth(token).send().await.expect("sent");
            let status = r.status().as_u16();
            let content_type = r
                .headers()
                .get("content-type")
                .and_then(|c| c.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let has_request_id = r.headers().contains_key("sc-request-id");
            (
                status,
                content_type,
                has_request_id,
                r.text().await.expect("body"),
            )
        }));
    }
    let (mut internal, mut upstream, mut html, mut truncated, mut ok) = (0, 0, 0, 0, 0);
    for t in tasks {
        let (status, content_type, has_request_id, text) = t.await.expect("task");
        assert!(has_request_id);
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        match (status, content_type.as_str(), json) {
            (500, _, Some(b)) if b["type"] == "SERVER" && b["code"] == "INTERNAL" => internal += 1,
            (502, _, Some(b)) if b["type"] == "UPSTREAM" && b["code"] == "UNKNOWN_ISSUE" => {
                upstream += 1
            }
            (502, "text/html", None) => html += 1,
            (200, c, None) if c.starts_with("application/json") => truncated += 1,
            (200, _, Some(b)) if b["distance"].is_number() => ok += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(
        internal > 0 && upstream > 0 && html > 0 && truncated > 0 && ok > 0,
        "{internal} {upstream} {html} {truncated} {ok}"
    );
    let stats = sim.handle.stats();
    assert_eq!(stats.faults_total, 60);
    assert_eq!(stats.faults["slow"], ok);
    assert_eq!(stats.faults["html_bad_gateway"], html);
}

#[tokio::test]
async fn without_fault_rate_nothing_is_injected_and_management_stays_clean() {
    let sim = start(SimConfig {
        fault_rate: 1.0,
        ..quiet(50, 7)
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            sim.management("", "default", sim.handle.amt()).await.status,
            200
        );
    }
    let quiet_sim = start(quiet(50, 7)).await;
    let v = quiet_sim.vehicle(Situation::Healthy);
    for _ in 0..20 {
        assert_eq!(
            quiet_sim
                .get(
                    &format!("/v2.0/vehicles/{}/odometer", v.id),
                    Some(&quiet_sim.token_of(v))
                )
                .await
                .status,
            200
        );
    }
    assert_eq!(quiet_sim.handle.stats().faults_total, 0);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let sim = start(quiet(10, 7)).await;
    let url = sim.url("/_sim/stats");
    let http = sim_support::client();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    sim.handle.shutdown().await;
    let fresh = sim_support::client();
    assert!(fresh.get(&url).send().await.is_err());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let sim = start(quiet(10, 7)).await;
    let url = sim.url("/_sim/stats");
    drop(sim);
    let http = sim_support::client();
    let mut refused = false;
    for _ in 0..200 {
        if http.get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "server still answers after its handle was dropped");
}

#[tokio::test]
async fn vehicle_calls_wait_for_the_configured_latency() {
    use vtriage::sim::Latency;
    let sim = start(SimConfig {
        latency: Latency::Fixed {
            ms: 300,
            jitter_ms: 0,
        },
        ..quiet(50, 7)
    })
    .await;
    let v = sim.vehicle(Situation::Healthy);
    let token = sim.token_of(v);
    for tail in ["", "/odometer"] {
        let started = std::time::Instant::now();
        let a = sim
            .get(&format!("/v2.0/vehicles/{}{tail}", v.id), Some(&token))
            .await;
        assert_eq!(a.status, 200);
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(300),
            "{tail} answered before its latency"
        );
    }
    let started = std::time::Instant::now();
    sim.post(
        &format!("/v2.0/vehicles/{}/batch", v.id),
        Some(&token),
        &json!({"requests": [{"path": "/odometer"}]}),
    )
    .await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}
