//! Half of the API down: the listing answers, the Vehicle API (or v3's signals, or the token
//! endpoint) does not. `check` stops well within a minute with one line naming the origin and the
//! kind of failure, lists the rest UNKNOWN "not checked", groups the failures by kind and exits 3;
//! the scheduler holds its queue, and neither a late answer from before the outage nor a car's own
//! error is taken for the source's health.

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use vtriage::fetch::{self, Command, Event, Priority, SchedulerConfig, Source, SourceName};
use vtriage::sim::{self, Latency, SimConfig, SimHandle};
use vtriage::smartcar::{Client, ClientSettings, Origins, Secret};

use crate::cli_support::{self, write_tokens};
use crate::desk_support::{Schema, Serve, database_url, http};

const SECRET: &str = "outage-secret-3b9d";
const CLIENT_ID: &str = "client_outage";

fn temp_home(name: &str) -> PathBuf {
    cli_support::temp_home("outage", name)
}

async fn simulator(vehicles: usize, latency_ms: u64) -> SimHandle {
    let config = SimConfig {
        vehicles,
        seed: 17,
        latency: Latency::Fixed {
            ms: latency_ms,
            jitter_ms: 0,
        },
        client_id: CLIENT_ID.into(),
        client_secret: SECRET.into(),
        ..SimConfig::default()
    };
    sim::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

/// An origin on loopback nothing listens on: every connection is refused.
fn closed_origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback port");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

/// What every test of a stopped check asserts: exit 3 well within a minute, the outage said on
/// one line naming `origin` and `kind`, the failures grouped (no line said twice), nothing
/// BLOCKED, and every vehicle not probed UNKNOWN "not checked".
fn assert_stopped_check(out: &Output, took: Duration, fleet: usize, origin: &str, kind: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        took < Duration::from_secs(45),
        "took {took:?}; stderr: {err}"
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {err}");
    let naming: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("not checked:") && l.contains(origin) && l.contains(kind))
        .collect();
    assert_eq!(naming.len(), 1, "one line names {origin} and {kind}: {err}");
    assert!(
        err.lines().count() <= 4,
        "a few lines, not one per car: {err}"
    );
    let lines = json_lines(out);
    assert_eq!(lines.len(), fleet, "every listed vehicle is printed: {err}");
    assert!(
        lines.iter().all(|l| l["status"] != "BLOCKED"),
        "an app-wide failure blocks no car: {lines:?}"
    );
    let not_checked = lines
        .iter()
        .filter(|l| l["status"] == "UNKNOWN" && l["mainFinding"] == "not-checked")
        .count();
    assert!(
        not_checked >= fleet / 2,
        "{not_checked} of {fleet} not checked; stderr: {err}"
    );
}

/// The stderr line that groups the probed failures, if any: `… could not be checked: 12 × …`.
fn grouped_line(out: &Output) -> Option<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.contains("could not be checked"))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_stops_within_a_minute_when_the_vehicle_api_refuses_connections() {
    let sim = simulator(300, 5).await;
    let home = temp_home("v2-refused");
    let tokens = write_tokens(sim.tokens(), &home);
    let dead = closed_origin();
    // The default rate budget: refused requests must not spend it.
    let args = [
        "check",
        "--json",
        "--api-origin",
        &dead,
        "--management-origin",
        sim.origin(),
        "--amt",
        sim.amt(),
        "--tokens",
        tokens.to_str().unwrap(),
    ];
    let started = Instant::now();
    let out = cli_support::run(&home, &args, &[]).await;
    let took = started.elapsed();
    assert_stopped_check(&out, took, 300, &dead, "connection refused");
    let grouped = grouped_line(&out).expect("the probed failures are summed up");
    assert!(
        grouped.contains(&format!("× connection refused ({dead})")),
        "grouped by kind with the origin: {grouped}"
    );
    assert_eq!(
        grouped.matches(" × ").count(),
        1,
        "one kind, one group: {grouped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_looking_up_a_vin_stops_when_the_vehicle_api_refuses_connections() {
    let sim = simulator(200, 5).await;
    let home = temp_home("vehicle-refused");
    let tokens = write_tokens(sim.tokens(), &home);
    let dead = closed_origin();
    let vin = sim.fleet().vehicles[0].vin.clone();
    let args = [
        "vehicle",
        &vin,
        "--api-origin",
        &dead,
        "--management-origin",
        sim.origin(),
        "--amt",
        sim.amt(),
        "--tokens",
        tokens.to_str().unwrap(),
    ];
    let started = Instant::now();
    let out = cli_support::run(&home, &args, &[]).await;
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        took < Duration::from_secs(45),
        "took {took:?}; stderr: {err}"
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {err}");
    let naming: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(&dead) && l.contains("connection refused"))
        .collect();
    assert_eq!(naming.len(), 1, "said once: {err}");
}

/// A loopback proxy to the simulator that rewrites the simulator's origin to its own in every
/// body (so paging links stay on it) and lets `rule` answer a request itself first, after a wait.
async fn proxy<F>(target: String, rule: F) -> String
where
    F: Fn(&Method, &Uri) -> Option<(Duration, Response)> + Send + Sync + 'static,
{
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let own = origin.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let rule = Arc::new(rule);
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (http, rule, target, own) =
                (http.clone(), Arc::clone(&rule), target.clone(), own.clone());
            async move {
                if let Some((wait, answer)) = rule(&method, &uri) {
                    tokio::time::sleep(wait).await;
                    return answer;
                }
                forward(&http, &target, &own, method, &uri, headers, body).await
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

async fn forward(
    http: &reqwest::Client,
    target: &str,
    own: &str,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http.request(method, format!("{target}{path}")).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let Ok(answer) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let text = answer.text().await.unwrap_or_default().replace(target, own);
    (status, [("content-type", content_type)], text).into_response()
}

fn html_503() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("content-type", "text/html")],
        "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
    )
        .into_response()
}

fn v3_args<'a>(api: &'a str, iam: &'a str) -> Vec<&'a str> {
    vec![
        "check",
        "--json",
        "--api",
        "v3",
        "--api-origin",
        api,
        "--iam-origin",
        iam,
        "--client-id",
        CLIENT_ID,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_v3_stops_when_connections_answer_and_every_signals_call_is_a_503_page() {
    let sim = simulator(120, 5).await;
    let home = temp_home("v3-html");
    let api = proxy(sim.origin().to_string(), |_, uri| {
        uri.path()
            .starts_with("/v3/vehicles/")
            .then(|| (Duration::ZERO, html_503()))
    })
    .await;
    let started = Instant::now();
    let out = cli_support::run(
        &home,
        &v3_args(&api, sim.origin()),
        &[("SMARTCAR_CLIENT_SECRET", SECRET)],
    )
    .await;
    let took = started.elapsed();
    assert_stopped_check(&out, took, 120, &api, "HTTP 503 HTML page");
    // Probes still retrying when it stopped are not checked; any that ended are summed up by kind.
    if let Some(grouped) = grouped_line(&out) {
        assert!(
            grouped.contains(&format!("× HTTP 503 HTML page ({api})")),
            "{grouped}"
        );
    }
}

/// A token endpoint in front of the simulator's: the first token it hands out lives 3 s (so the
/// listing gets it and every probe after needs another), then `after` answers every request, or,
/// with `None`, the endpoint stops listening.
async fn token_endpoint(sim: &SimHandle, after: Option<fn() -> Response>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let target = sim.origin().to_string();
    let issued = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let (issued_in, stop_in) = (Arc::clone(&issued), Arc::clone(&stop));
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (target, issued, stop) =
                (target.clone(), Arc::clone(&issued_in), Arc::clone(&stop_in));
            async move {
                if issued.fetch_add(1, Ordering::SeqCst) > 0 {
                    return match after {
                        Some(answer) => answer(),
                        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                    };
                }
                let http = reqwest::Client::new();
                let mut request = http
                    .request(method, format!("{target}{}", uri.path()))
                    .body(body);
                for (name, value) in &headers {
                    if name != "host" && name != "content-length" {
                        request = request.header(name, value);
                    }
                }
                let Ok(answer) = request.send().await else {
                    return StatusCode::BAD_GATEWAY.into_response();
                };
                let mut token: Value = answer.json().await.unwrap_or(Value::Null);
                token["expires_in"] = json!(3);
                if after.is_none() {
                    stop.notify_one();
                }
                axum::Json(token).into_response()
            }
        },
    );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.notified().await })
            .await
    });
    origin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_v3_stops_when_the_token_endpoint_stops_answering_connections() {
    let sim = simulator(200, 5).await;
    let home = temp_home("v3-token-refused");
    let iam = token_endpoint(&sim, None).await;
    let api = slow_sleeping_signals(&sim).await;
    let started = Instant::now();
    let out = cli_support::run(
        &home,
        &v3_args(&api, &iam),
        &[("SMARTCAR_CLIENT_SECRET", SECRET)],
    )
    .await;
    let took = started.elapsed();
    assert_stopped_check(&out, took, 200, &iam, "connection refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token endpoint"), "{err}");
}

/// The simulator's connections, and vehicle calls that answer "asleep" after 3.5 s: the probes
/// sent with the first token come back after it lapsed, with a car's own answer, not a verdict.
async fn slow_sleeping_signals(sim: &SimHandle) -> String {
    proxy(sim.origin().to_string(), |_, uri| {
        uri.path().starts_with("/v3/vehicles/").then(|| {
            let asleep = json!({"errors": [{"status": "409", "type": "VEHICLE_STATE", "code": "ASLEEP",
                "title": "Vehicle asleep", "detail": "The vehicle is asleep.",
                "resolution": {"type": "RETRY_LATER"}}]});
            (
                Duration::from_millis(3_500),
                (StatusCode::CONFLICT, axum::Json(asleep)).into_response(),
            )
        })
    })
    .await
}

fn invalid_client() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "invalid_client", "error_description": "the client secret was rotated"})),
    )
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_v3_says_a_refused_client_secret_once_and_blocks_no_vehicle() {
    let sim = simulator(150, 5).await;
    let home = temp_home("v3-invalid-client");
    let iam = token_endpoint(&sim, Some(invalid_client)).await;
    let api = slow_sleeping_signals(&sim).await;
    let started = Instant::now();
    let out = cli_support::run(
        &home,
        &v3_args(&api, &iam),
        &[("SMARTCAR_CLIENT_SECRET", SECRET)],
    )
    .await;
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        took < Duration::from_secs(45),
        "took {took:?}; stderr: {err}"
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {err}");
    assert_eq!(
        err.matches("refused the client credentials").count(),
        1,
        "said once: {err}"
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 150, "{err}");
    assert!(lines.iter().all(|l| l["status"] != "BLOCKED"), "{lines:?}");
    let not_checked = lines
        .iter()
        .filter(|l| l["mainFinding"] == "not-checked")
        .count();
    assert!(not_checked >= 100, "{not_checked} not checked; {err}");
}

// The scheduler itself, against a Vehicle API on loopback.

/// Listing `(u1, id)` rows; vehicles named `slow-*` answer after 1.5 s, `dead-*` with a proxy's
/// 503 page, `asleep-*` with Smartcar's asleep error.
async fn vehicle_api(ids: Vec<String>, started: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let ids = Arc::new(ids);
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let (ids, started) = (Arc::clone(&ids), Arc::clone(&started));
        async move {
            let path = uri.path();
            if path == "/v2.0/management/connections" {
                let rows: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"userId": "u1", "vehicleId": id, "connectedAt": "2025-01-01T00:00:00.000Z", "mode": "live"}))
                    .collect();
                return axum::Json(json!({"connections": rows, "paging": {"cursor": null}}))
                    .into_response();
            }
            let Some(rest) = path.strip_prefix("/v2.0/vehicles/") else {
                return StatusCode::NOT_FOUND.into_response();
            };
            started.fetch_add(1, Ordering::SeqCst);
            let id = rest.split('/').next().unwrap_or("").to_string();
            if id.starts_with("dead-") {
                return html_503();
            }
            if id.starts_with("asleep-") {
                return (
                    StatusCode::CONFLICT,
                    axum::Json(json!({"type": "VEHICLE_STATE", "code": "ASLEEP", "description": "asleep", "statusCode": 409, "requestId": "r", "resolution": {"type": "RETRY_LATER"}})),
                )
                    .into_response();
            }
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            if method == Method::POST {
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let items: Vec<Value> = request["requests"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|r| json!({"path": r["path"], "code": 200, "body": {"distance": 1.0, "latitude": 1.0, "longitude": 1.0}, "headers": {}}))
                    .collect();
                return axum::Json(json!({"responses": items})).into_response();
            }
            if rest.ends_with("/permissions") {
                return axum::Json(json!({"permissions": ["read_odometer", "read_location", "read_vehicle_info"], "paging": {"count": 3, "offset": 0}})).into_response();
            }
            axum::Json(json!({"id": id, "make": "FORD", "model": "F-150", "year": 2022}))
                .into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

fn scheduler(origin: &str) -> fetch::SchedulerHandle {
    let client = Client::new(Origins::all(origin), ClientSettings::default()).expect("client");
    let source = Source {
        amt: Some(Secret::new("amt")),
        tokens: [("u1".to_string(), Secret::new("token-u1"))].into(),
        single_token: None,
        tokens_command: None,
    };
    let config = SchedulerConfig {
        rate: None,
        concurrency: 16,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..SchedulerConfig::default()
    };
    fetch::spawn(client, source, config)
}

/// Every event until `quiet` passes without one, or `cap` in all.
async fn events_for(events: &mut UnboundedReceiver<Event>, cap: Duration) -> Vec<Event> {
    let end = tokio::time::Instant::now() + cap;
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout_at(end, events.recv()).await {
        out.push(e);
    }
    out
}

async fn sweep(origin: &str, n: usize) -> (fetch::SchedulerHandle, Vec<String>) {
    let mut h = scheduler(origin);
    let ids: Vec<String> = match tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match h.events.recv().await {
                Some(Event::ConnectionsListed { connections }) => {
                    break connections
                        .iter()
                        .map(|c| c.connection.vehicle_id.clone())
                        .collect();
                }
                Some(_) => {}
                None => break Vec::new(),
            }
        }
    })
    .await
    {
        Ok(ids) => ids,
        Err(_) => panic!("no listing"),
    };
    assert_eq!(ids.len(), n);
    h.commands
        .send(Command::Probe {
            vehicle_ids: ids.clone(),
            priority: Priority::Sweep,
            force: true,
        })
        .expect("scheduler running");
    (h, ids)
}

/// A Vehicle API that goes down 200 ms after its first vehicle request: requests that arrived
/// before are answered with data after 1.5 s (odd vehicles after 3 s), later ones with a 503 page.
async fn api_going_down(vehicles: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let first: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let first = Arc::clone(&first);
        async move {
            let path = uri.path();
            if path == "/v2.0/management/connections" {
                let rows: Vec<Value> = (0..vehicles)
                    .map(|i| json!({"userId": "u1", "vehicleId": format!("v{i}"), "connectedAt": "2025-01-01T00:00:00.000Z", "mode": "live"}))
                    .collect();
                return axum::Json(json!({"connections": rows, "paging": {"cursor": null}}))
                    .into_response();
            }
            let Some(rest) = path.strip_prefix("/v2.0/vehicles/") else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let down_at = *first.get_or_init(Instant::now) + Duration::from_millis(200);
            if Instant::now() >= down_at {
                return html_503();
            }
            let id = rest.split('/').next().unwrap_or("").to_string();
            let odd = id.trim_start_matches('v').parse::<u32>().unwrap_or(0) % 2 == 1;
            tokio::time::sleep(Duration::from_millis(if odd { 3_000 } else { 1_500 })).await;
            if method == Method::POST {
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let items: Vec<Value> = request["requests"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|r| json!({"path": r["path"], "code": 200, "body": {"distance": 1.0, "latitude": 1.0, "longitude": 1.0}, "headers": {}}))
                    .collect();
                return axum::Json(json!({"responses": items})).into_response();
            }
            if rest.ends_with("/permissions") {
                return axum::Json(json!({"permissions": ["read_odometer", "read_location", "read_vehicle_info"], "paging": {"count": 3, "offset": 0}})).into_response();
            }
            axum::Json(json!({"id": id, "make": "FORD", "model": "F-150", "year": 2022}))
                .into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sixteen_probes_in_flight_late_answers_from_before_the_outage_do_not_clear_it() {
    let origin = api_going_down(64).await;
    let (mut h, _) = sweep(&origin, 64).await;
    let events = events_for(&mut h.events, Duration::from_secs(6)).await;
    let down: Vec<usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| matches!(e, Event::SourceUnreachable(_)).then_some(i))
        .collect();
    assert_eq!(down.len(), 1, "declared once: {events:?}");
    let Event::SourceUnreachable(outage) = &events[down[0]] else {
        unreachable!()
    };
    assert_eq!(outage.source, SourceName::VehicleApi);
    assert_eq!(outage.origin, origin);
    assert_eq!(outage.kind, "HTTP 503 HTML page");
    // Answers to requests sent before the outage keep arriving after it was declared.
    let late_answers = events[down[0]..]
        .iter()
        .filter(|e| matches!(e, Event::Observed { report } if report.observations.iter().any(|o| o.outcome.is_ok())))
        .count();
    assert!(late_answers > 0, "no late answer came: {events:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::SourceRecovered { .. })),
        "answers to requests sent before the outage do not end it"
    );
    let probes_started = events
        .iter()
        .filter(|e| matches!(e, Event::ProbeStarted { .. }))
        .count();
    assert!(
        probes_started < 64,
        "queued probes wait for the retry: {probes_started} started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_sleeping_cars_is_never_a_source_outage() {
    let started = Arc::new(AtomicUsize::new(0));
    let ids: Vec<String> = (0..40).map(|i| format!("asleep-{i}")).collect();
    let origin = vehicle_api(ids, Arc::clone(&started)).await;
    let (mut h, _) = sweep(&origin, 40).await;
    let events = events_for(&mut h.events, Duration::from_secs(3)).await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::SourceUnreachable(_))),
        "a car's own error is an answer"
    );
    let observed = events
        .iter()
        .filter(|e| matches!(e, Event::Observed { .. }))
        .count();
    assert_eq!(observed, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_whose_vehicle_api_is_down_is_degraded_not_dead_and_says_so_once() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let sim = simulator(60, 5).await;
    let api = proxy(sim.origin().to_string(), |_, uri| {
        uri.path()
            .starts_with("/v3/vehicles/")
            .then(|| (Duration::ZERO, html_503()))
    })
    .await;
    let mut serve = Serve::start_with(
        &database_url(),
        &schema.name,
        &[
            "--api",
            "v3",
            "--api-origin",
            &api,
            "--iam-origin",
            sim.origin(),
            "--client-id",
            CLIENT_ID,
            "--no-rate-limit",
            "--sweep-every",
            "1s",
        ],
        &[("SMARTCAR_CLIENT_SECRET", SECRET)],
    );
    let gauge = "vtriage_source_unreachable{source=\"vehicle_api\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while serve.metric(gauge).await != Some(1.0) {
        assert!(Instant::now() < deadline, "the gauge never rose");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        serve
            .metric("vtriage_source_unreachable{source=\"token_endpoint\"}")
            .await,
        Some(0.0)
    );
    let health = http()
        .get(format!("{}/healthz", serve.origin))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "degraded, not dead");
    let body: Value = health.json().await.expect("JSON");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&api) && reason.contains("HTTP 503 HTML page"),
        "{body}"
    );
    // Sweeps keep coming every second; the outage is logged once, not per car or per sweep.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut said = 0;
    while let Ok(line) = serve.lines.try_recv() {
        if line.contains("is unreachable") {
            said += 1;
        }
    }
    assert_eq!(said, 1, "logged once per outage");
    let _ = serve.terminate();
}
