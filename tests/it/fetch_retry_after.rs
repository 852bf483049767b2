//! Short Retry-After answers, which the simulator cannot give (its per-vehicle window is a real
//! hour): a one-vehicle Smartcar stand-in on loopback answers 429 first, then the data.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use vtriage::fetch::{self, Command, Event, Priority, SchedulerConfig, Source};
use vtriage::smartcar::{Client, ClientSettings, DataKind, Origins, Probe, ProbeReport, Secret};

/// How the stand-in answers the batch: the first answers in order, then 200.
#[derive(Clone, Copy, Debug)]
enum BatchAnswer {
    /// Every item 429 `RATE_LIMIT:VEHICLE` with `Retry-After` in the item headers.
    VehicleLimit { retry_after_s: u64 },
    /// The whole request 429 `RATE_LIMIT:SMARTCAR_API` with a `Retry-After` header.
    AppLimit { retry_after_s: u64 },
}

#[derive(Default)]
struct StandIn {
    script: Vec<BatchAnswer>,
    batch_calls: Vec<Instant>,
}

fn rate_limit_body(code: &str, status: u16) -> Value {
    json!({
        "type": "RATE_LIMIT",
        "code": code,
        "description": "You have reached the rate limit.",
        "docURL": "https://smartcar.com/docs/errors/api-errors/rate-limit-errors",
        "statusCode": status,
        "requestId": "stand-in",
        "resolution": {"type": "RETRY_LATER"},
        "suggestedUserMessage": "Please try again later."
    })
}

fn batch_reply(state: &Mutex<StandIn>, body: &Value) -> Response {
    let answer = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let n = s.batch_calls.len();
        s.batch_calls.push(Instant::now());
        s.script.get(n).copied()
    };
    let paths: Vec<String> = body
        .get("requests")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|i| i.get("path").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match answer {
        Some(BatchAnswer::AppLimit { retry_after_s }) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                "retry-after",
                retry_after_s.to_string().parse().expect("header value"),
            );
            (
                StatusCode::TOO_MANY_REQUESTS,
                headers,
                axum::Json(rate_limit_body("SMARTCAR_API", 429)),
            )
                .into_response()
        }
        Some(BatchAnswer::VehicleLimit { retry_after_s }) => {
            let items: Vec<Value> = paths
                .iter()
                .map(|p| {
                    json!({"path": p, "code": 429, "body": rate_limit_body("VEHICLE", 429),
                           "headers": {"Retry-After": retry_after_s.to_string()}})
                })
                .collect();
            axum::Json(json!({"responses": items})).into_response()
        }
        None => {
            let items: Vec<Value> = paths
                .iter()
                .map(|p| {
                    let body = match p.as_str() {
                        "/odometer" => json!({"distance": 1234.5}),
                        _ => json!({"latitude": 52.5, "longitude": 13.4}),
                    };
                    json!({"path": p, "code": 200, "body": body,
                           "headers": {"sc-data-age": "2026-01-01T00:00:00.000Z"}})
                })
                .collect();
            axum::Json(json!({"responses": items})).into_response()
        }
    }
}

async fn stand_in(script: Vec<BatchAnswer>) -> (String, Arc<Mutex<StandIn>>) {
    let state = Arc::new(Mutex::new(StandIn {
        script,
        ..StandIn::default()
    }));
    let batch_state = Arc::clone(&state);
    let app = Router::new()
        .route(
            "/v2.0/management/connections",
            get(|| async {
                axum::Json(json!({
                    "connections": [{"userId": "u1", "vehicleId": "v1", "connectedAt": "2025-01-01T00:00:00.000Z", "mode": "live"}],
                    "paging": {"cursor": null}
                }))
            }),
        )
        .route(
            "/v2.0/vehicles/v1",
            get(|| async {
                axum::Json(json!({"id": "v1", "make": "FORD", "model": "F-150", "year": 2022}))
            }),
        )
        .route(
            "/v2.0/vehicles/v1/permissions",
            get(|| async {
                axum::Json(json!({"permissions": ["read_odometer", "read_location", "read_vehicle_info"],
                                  "paging": {"count": 3, "offset": 0}}))
            }),
        )
        .route(
            "/v2.0/vehicles/v1/batch",
            post(move |axum::Json(body): axum::Json<Value>| {
                let state = Arc::clone(&batch_state);
                async move { batch_reply(&state, &body) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (origin, state)
}

fn start(origin: &str) -> fetch::SchedulerHandle {
    let client = Client::new(Origins::all(origin), ClientSettings::default()).expect("client");
    let source = Source {
        amt: Some(Secret::new("amt")),
        tokens: [("u1".to_string(), Secret::new("token-u1"))].into(),
        single_token: None,
        tokens_command: None,
    };
    let config = SchedulerConfig {
        rate: None,
        max_inline_wait: Duration::from_secs(5),
        backoff_base: Duration::from_millis(5),
        ..SchedulerConfig::default()
    };
    let h = fetch::spawn(client, source, config);
    h.commands
        .send(Command::Probe {
            vehicle_ids: vec!["v1".into()],
            priority: Priority::Focus,
            force: false,
        })
        .expect("scheduler running");
    h
}

/// The report, and whether the scheduler announced an app-wide pause before it.
async fn report(events: &mut UnboundedReceiver<Event>) -> (ProbeReport, bool) {
    let mut paused = false;
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(e) = events.recv().await {
            match e {
                Event::Observed { report } => return Some(report),
                Event::RateLimited { .. } => paused = true,
                _ => {}
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(r)) => (r, paused),
        _ => panic!("no report within 30 s"),
    }
}

fn has_good_data(r: &ProbeReport) -> bool {
    [DataKind::Odometer, DataKind::Location]
        .into_iter()
        .all(|k| r.get(Probe::Data(k)).is_some_and(|o| o.answer().is_some()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_vehicle_retry_after_is_waited_and_ends_with_good_data() {
    let (origin, state) = stand_in(vec![BatchAnswer::VehicleLimit { retry_after_s: 1 }]).await;
    let mut h = start(&origin);
    let (r, paused) = report(&mut h.events).await;
    assert!(has_good_data(&r), "{:#?}", r.observations);
    assert!(!paused, "a vehicle's limit does not pause the others");
    let calls = state
        .lock()
        .map(|s| s.batch_calls.clone())
        .unwrap_or_default();
    assert_eq!(calls.len(), 2, "one refused batch, one good one");
    if let [refused, retried] = calls.as_slice() {
        assert!(retried.duration_since(*refused) >= Duration::from_secs(1));
    }
    let _ = h.commands.send(Command::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_wide_429_pauses_sending_then_retries() {
    let (origin, state) = stand_in(vec![BatchAnswer::AppLimit { retry_after_s: 1 }]).await;
    let mut h = start(&origin);
    let (r, paused) = report(&mut h.events).await;
    assert!(has_good_data(&r), "{:#?}", r.observations);
    assert!(paused, "RateLimited was announced");
    let calls = state
        .lock()
        .map(|s| s.batch_calls.clone())
        .unwrap_or_default();
    assert_eq!(calls.len(), 2);
    if let [refused, retried] = calls.as_slice() {
        assert!(retried.duration_since(*refused) >= Duration::from_secs(1));
    }
    let _ = h.commands.send(Command::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_that_keeps_coming_is_reported_not_failed() {
    let script = vec![BatchAnswer::VehicleLimit { retry_after_s: 1 }; 10];
    let (origin, state) = stand_in(script).await;
    let mut h = start(&origin);
    let (r, _) = report(&mut h.events).await;
    let limited = r
        .get(Probe::Data(DataKind::Odometer))
        .and_then(|o| o.error())
        .is_some_and(|e| e.status() == Some(429));
    assert!(limited, "the report carries the rate-limit answer");
    let calls = state.lock().map(|s| s.batch_calls.len()).unwrap_or(0);
    assert_eq!(calls, 3, "max_tries bounds the waits");
    let _ = h.commands.send(Command::Shutdown);
}
