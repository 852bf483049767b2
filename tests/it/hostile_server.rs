//! A Smartcar-shaped server on loopback that answers like a hostile one: absurd Retry-After values,
//! cursor loops, a listing that never ends, vehicle ids built to escape their path segment, redirects
//! to another host, ids with control characters and a body that never ends. vtriage must not
//! panic, hang, or send a request anywhere it should not.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;
use vtriage::fetch::{self, Command, Event, Priority, SchedulerConfig, Source};
use vtriage::health::{Needs, Policies, Status, diagnose};
use vtriage::smartcar::{
    ApiError, Client, ClientSettings, DataKind, MAX_RETRY_AFTER, Origins, Probe, ProbeReport,
    Secret, TransportKind,
};

/// How the fixture answers the Management API.
#[derive(Clone)]
enum Listing {
    /// One page with these `(user, vehicle)` rows.
    Rows(Vec<(String, String)>),
    /// Pages chained by cursor: `None` → first, each page names the next cursor.
    Cursors(HashMap<Option<String>, (usize, Option<String>)>),
    /// A fresh page of 100 with a fresh cursor, forever.
    Endless,
}

/// How the fixture answers the data batch.
#[derive(Clone)]
enum Batch {
    Ok,
    /// Every item 429 `RATE_LIMIT:VEHICLE` with this `Retry-After` in its headers.
    VehicleLimit(String),
    /// The first call 429 `RATE_LIMIT:SMARTCAR_API` with this `Retry-After` header, then data.
    AppLimitOnce(String),
}

struct Fixture {
    listing: Listing,
    batch: Batch,
    /// Every vehicle call answers 302 to this location instead.
    redirect_to: Option<String>,
    /// Request targets as they arrived on the wire (path and query, not decoded).
    seen: Mutex<Vec<String>>,
    batch_calls: Mutex<usize>,
}

impl Fixture {
    fn new(listing: Listing, batch: Batch) -> Fixture {
        Fixture {
            listing,
            batch,
            redirect_to: None,
            seen: Mutex::new(Vec::new()),
            batch_calls: Mutex::new(0),
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn rate_limit_body(code: &str) -> Value {
    json!({
        "type": "RATE_LIMIT", "code": code, "description": "You have reached the rate limit.",
        "docURL": null, "statusCode": 429, "requestId": "hostile",
        "resolution": {"type": "RETRY_LATER"}, "suggestedUserMessage": null
    })
}

fn connection(user: &str, vehicle: &str) -> Value {
    json!({"userId": user, "vehicleId": vehicle, "connectedAt": "2025-01-01T00:00:00.000Z", "mode": "live"})
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn management(fixture: &Fixture, uri: &Uri) -> Response {
    let cursor = query_param(uri, "cursor");
    let (rows, next): (Vec<Value>, Option<String>) = match &fixture.listing {
        Listing::Rows(rows) => (rows.iter().map(|(u, v)| connection(u, v)).collect(), None),
        Listing::Cursors(pages) => match pages.get(&cursor) {
            Some((n, next)) => (
                (0..*n)
                    .map(|i| {
                        connection(
                            "u1",
                            &format!("{}-{i}", cursor.as_deref().unwrap_or("first")),
                        )
                    })
                    .collect(),
                next.clone(),
            ),
            None => (Vec::new(), None),
        },
        Listing::Endless => {
            let page: u64 = cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
            (
                (0..100)
                    .map(|i| connection("u1", &format!("v{page}-{i}")))
                    .collect(),
                Some((page + 1).to_string()),
            )
        }
    };
    axum::Json(json!({"connections": rows, "paging": {"cursor": next}})).into_response()
}

fn batch(fixture: &Fixture, body: &[u8]) -> Response {
    let n = {
        let mut calls = fixture
            .batch_calls
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *calls += 1;
        *calls
    };
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let paths: Vec<String> = request
        .get("requests")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|i| i.get("path").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let ok = |p: &String| {
        let body = match p.as_str() {
            "/odometer" => json!({"distance": 1234.5}),
            _ => json!({"latitude": 52.5, "longitude": 13.4}),
        };
        json!({"path": p, "code": 200, "body": body, "headers": {}})
    };
    match &fixture.batch {
        Batch::VehicleLimit(retry_after) => {
            let items: Vec<Value> = paths
                .iter()
                .map(|p| {
                    json!({"path": p, "code": 429, "body": rate_limit_body("VEHICLE"),
                                "headers": {"Retry-After": retry_after}})
                })
                .collect();
            axum::Json(json!({"responses": items})).into_response()
        }
        Batch::AppLimitOnce(retry_after) if n == 1 => {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(retry_after) {
                headers.insert("retry-after", v);
            }
            (
                StatusCode::TOO_MANY_REQUESTS,
                headers,
                axum::Json(rate_limit_body("SMARTCAR_API")),
            )
                .into_response()
        }
        _ => axum::Json(json!({"responses": paths.iter().map(ok).collect::<Vec<_>>()}))
            .into_response(),
    }
}

/// One handler for every path, so the raw request target is recorded before any routing decodes it.
async fn answer(fixture: Arc<Fixture>, method: Method, uri: Uri, body: Bytes) -> Response {
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
    if let Ok(mut seen) = fixture.seen.lock() {
        seen.push(target);
    }
    let path = uri.path();
    if path == "/v2.0/management/connections" {
        return management(&fixture, &uri);
    }
    let Some(rest) = path.strip_prefix("/v2.0/vehicles/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(location) = &fixture.redirect_to {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("{location}{path}")) {
            headers.insert("location", v);
        }
        return (StatusCode::FOUND, headers, "").into_response();
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let id = segments.first().copied().unwrap_or("");
    match (method, segments.get(1..).unwrap_or_default()) {
        (Method::GET, []) => {
            axum::Json(json!({"id": id, "make": "FORD", "model": "F-150", "year": 2022}))
                .into_response()
        }
        (Method::GET, ["permissions"]) => axum::Json(json!({
            "permissions": ["read_odometer", "read_location", "read_vehicle_info"],
            "paging": {"count": 3, "offset": 0}
        }))
        .into_response(),
        (Method::POST, ["batch"]) => batch(&fixture, &body),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve(fixture: Fixture) -> (String, Arc<Fixture>) {
    let fixture = Arc::new(fixture);
    let state = Arc::clone(&fixture);
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let state = Arc::clone(&state);
        async move { answer(state, method, uri, body).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (origin, fixture)
}

fn start(origin: &str, config: SchedulerConfig) -> fetch::SchedulerHandle {
    let client = Client::new(Origins::all(origin), ClientSettings::default()).expect("client");
    let source = Source {
        amt: Some(Secret::new("amt")),
        tokens: [("u1".to_string(), Secret::new("token-u1"))].into(),
        single_token: None,
        tokens_command: None,
    };
    fetch::spawn(client, source, config)
}

fn quick() -> SchedulerConfig {
    SchedulerConfig {
        rate: None,
        max_inline_wait: Duration::from_secs(5),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..SchedulerConfig::default()
    }
}

fn probe(h: &fetch::SchedulerHandle, ids: &[&str]) {
    h.commands
        .send(Command::Probe {
            vehicle_ids: ids.iter().map(|s| s.to_string()).collect(),
            priority: Priority::Focus,
            force: true,
        })
        .expect("scheduler running");
}

/// Events until `stop` says so, within 20 s.
async fn until<T>(
    events: &mut UnboundedReceiver<Event>,
    mut stop: impl FnMut(&Event) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(e) = events.recv().await {
            if let Some(t) = stop(&e) {
                return Some(t);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(t)) => t,
        _ => panic!("the awaited event did not come within 20 s"),
    }
}

async fn reports(events: &mut UnboundedReceiver<Event>, n: usize) -> Vec<ProbeReport> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(
            until(events, |e| match e {
                Event::Observed { report } => Some(report.clone()),
                Event::SourceError { message } => panic!("source failed: {message}"),
                _ => None,
            })
            .await,
        );
    }
    out
}

const HOSTILE_RETRY_AFTER: [&str; 8] = [
    "18446744073709551615",
    "1e300",
    "99999999999999999999999",
    "-5",
    "Thu, 01 Jan 2099 00:00:00 GMT",
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "garbage",
    "",
];

fn one_vehicle() -> Listing {
    Listing::Rows(vec![("u1".into(), "v1".into())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_vehicle_retry_after_is_reported_within_the_cap() {
    for value in HOSTILE_RETRY_AFTER {
        let (origin, _f) = serve(Fixture::new(
            one_vehicle(),
            Batch::VehicleLimit(value.into()),
        ))
        .await;
        let mut h = start(&origin, quick());
        probe(&h, &["v1"]);
        let report = reports(&mut h.events, 1).await.remove(0);
        let odometer = report
            .get(Probe::Data(DataKind::Odometer))
            .unwrap_or_else(|| panic!("Retry-After {value:?}: no odometer in {report:#?}"));
        assert_eq!(odometer.meta.status, 429, "Retry-After {value:?}");
        let waits = [
            odometer.meta.retry_after_s,
            odometer.error().and_then(ApiError::retry_after_s),
        ];
        for wait in waits.into_iter().flatten() {
            assert!(
                wait <= MAX_RETRY_AFTER.as_secs(),
                "Retry-After {value:?} became {wait} s"
            );
        }
        let _ = h.commands.send(Command::Shutdown);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_app_wide_retry_after_pauses_for_at_most_the_cap_and_says_until_when() {
    for value in [
        "18446744073709551615",
        "1e300",
        "99999999999999999999999",
        "Thu, 01 Jan 2099 00:00:00 GMT",
    ] {
        let (origin, _f) = serve(Fixture::new(
            one_vehicle(),
            Batch::AppLimitOnce(value.into()),
        ))
        .await;
        let mut h = start(&origin, quick());
        let asked = jiff::Timestamp::now();
        probe(&h, &["v1"]);
        let paused_until = until(&mut h.events, |e| match e {
            Event::RateLimited { until, .. } => Some(*until),
            Event::Observed { report } => {
                panic!("Retry-After {value:?}: no pause before {report:#?}")
            }
            _ => None,
        })
        .await;
        let held = paused_until.duration_since(asked);
        assert!(
            held >= jiff::SignedDuration::from_secs(3500)
                && held <= jiff::SignedDuration::from_secs(3600 + 20),
            "Retry-After {value:?} paused for {held:?}"
        );
        let _ = h.commands.send(Command::Shutdown);
    }
    // Values that mean "now" or nothing fall back to the backoff and the probe ends with data.
    for value in ["-5", "garbage", "Sun, 06 Nov 1994 08:49:37 GMT"] {
        let (origin, f) = serve(Fixture::new(
            one_vehicle(),
            Batch::AppLimitOnce(value.into()),
        ))
        .await;
        let mut h = start(&origin, quick());
        probe(&h, &["v1"]);
        let report = reports(&mut h.events, 1).await.remove(0);
        let data = report
            .get(Probe::Data(DataKind::Odometer))
            .and_then(|o| o.answer());
        assert!(data.is_some(), "Retry-After {value:?}: {report:#?}");
        assert_eq!(f.batch_calls.lock().map(|c| *c).unwrap_or(0), 2);
        let _ = h.commands.send(Command::Shutdown);
    }
}

async fn source_error(origin: &str, config: SchedulerConfig) -> String {
    let mut h = start(origin, config);
    let message = until(&mut h.events, |e| match e {
        Event::SourceError { message } => Some(message.clone()),
        Event::ConnectionsListed { connections } => {
            panic!(
                "listed {} connections instead of stopping",
                connections.len()
            )
        }
        _ => None,
    })
    .await;
    let _ = h.commands.send(Command::Shutdown);
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_that_comes_back_two_pages_later_stops_the_listing() {
    let pages = HashMap::from([
        (None, (2, Some("A".to_string()))),
        (Some("A".to_string()), (2, Some("B".to_string()))),
        (Some("B".to_string()), (2, Some("A".to_string()))),
    ]);
    let (origin, f) = serve(Fixture::new(Listing::Cursors(pages), Batch::Ok)).await;
    let message = source_error(&origin, quick()).await;
    assert!(
        message.contains("the Management API repeated cursor \"A\", stopping the listing"),
        "{message}"
    );
    assert_eq!(f.seen().len(), 3, "first page, A, B: {:?}", f.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_never_ends_stops_at_max_connections() {
    let (origin, f) = serve(Fixture::new(Listing::Endless, Batch::Ok)).await;
    let config = SchedulerConfig {
        max_connections: 250,
        ..quick()
    };
    let message = source_error(&origin, config).await;
    assert!(
        message.contains("passed 250 connections (the max_connections cap), stopping the listing"),
        "{message}"
    );
    assert_eq!(f.seen().len(), 3, "pages of 100 until past 250");
}

/// The vehicle id each vehicle request named, decoded from its one path segment, and the rest of its path.
fn vehicle_requests(seen: &[String]) -> Vec<(String, String)> {
    seen.iter()
        .filter_map(|target| target.strip_prefix("/v2.0/vehicles/"))
        .map(|rest| {
            let (path, _query) = rest.split_once('?').unwrap_or((rest, ""));
            let (segment, tail) = path.split_once('/').unwrap_or((path, ""));
            let id = percent_decode(segment);
            (id, tail.to_string())
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_vehicle_ids_reach_the_server_as_one_path_segment() {
    let ids = [
        "../../management/connections",
        "x?admin=1#frag",
        "//evil.example/v2.0",
        "%2e%2e",
        "a\\b",
    ];
    let rows = ids
        .iter()
        .map(|id| ("u1".to_string(), id.to_string()))
        .collect();
    let (origin, f) = serve(Fixture::new(Listing::Rows(rows), Batch::Ok)).await;
    let mut h = start(&origin, quick());
    probe(&h, &ids);
    let got = reports(&mut h.events, ids.len()).await;
    let _ = h.commands.send(Command::Shutdown);
    for r in &got {
        let data = r
            .get(Probe::Data(DataKind::Odometer))
            .and_then(|o| o.answer());
        assert!(data.is_some(), "{}: {:#?}", r.vehicle_id, r.observations);
    }
    let seen = f.seen();
    let listing = seen
        .iter()
        .filter(|t| t.starts_with("/v2.0/management/"))
        .count();
    assert_eq!(
        listing, 1,
        "only the listing itself reached the Management API: {seen:#?}"
    );
    let requests = vehicle_requests(&seen);
    assert_eq!(requests.len(), seen.len() - 1, "{seen:#?}");
    for (id, tail) in &requests {
        assert!(
            ids.contains(&id.as_str()),
            "a request named {id:?}: {seen:#?}"
        );
        assert!(
            ["", "permissions", "batch"].contains(&tail.as_str()),
            "{id:?} reached /{tail}"
        );
    }
    for id in ids {
        assert!(
            requests
                .iter()
                .any(|(seen_id, tail)| seen_id == id && tail == "batch"),
            "{id:?} was never asked for data: {seen:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_finding_with_its_location_and_the_target_is_never_contacted() {
    let (target, target_fixture) = serve(Fixture::new(one_vehicle(), Batch::Ok)).await;
    let mut fixture = Fixture::new(one_vehicle(), Batch::Ok);
    fixture.redirect_to = Some(target.clone());
    let (origin, _f) = serve(fixture).await;
    let mut h = start(&origin, quick());
    probe(&h, &["v1"]);
    let report = reports(&mut h.events, 1).await.remove(0);
    let _ = h.commands.send(Command::Shutdown);
    assert!(
        target_fixture.seen().is_empty(),
        "the redirect target was contacted: {:?}",
        target_fixture.seen()
    );
    let redirected = report
        .observations
        .iter()
        .filter_map(|o| o.error())
        .find(|e| matches!(e, ApiError::Redirect { .. }))
        .unwrap_or_else(|| panic!("no redirect error in {:#?}", report.observations));
    assert_eq!(redirected.status(), Some(302));
    assert!(!redirected.is_retryable());
    assert!(redirected.to_string().contains(&target), "{redirected}");
    let d = diagnose(
        &report,
        &Policies::builtin(),
        &Needs::default(),
        jiff::Timestamp::now(),
    );
    assert_eq!(d.status, Status::Unknown, "{d:#?}");
    let finding = d
        .findings
        .iter()
        .find(|f| f.title.contains("redirect"))
        .unwrap_or_else(|| panic!("no redirect finding: {d:#?}"));
    assert!(finding.title.contains(&target), "{}", finding.title);
    assert!(
        finding.title.contains("does not follow redirects"),
        "{}",
        finding.title
    );
}

/// A log writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the subscriber set for this test sees the listing task's warning.
#[tokio::test(flavor = "current_thread")]
async fn a_vehicle_id_with_control_characters_is_skipped_with_a_warning_naming_the_row() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rows = vec![
        ("u1".to_string(), "good-1".to_string()),
        ("u1".to_string(), "bad\r\nid\u{7f}".to_string()),
        ("u1".to_string(), String::new()),
    ];
    let (origin, f) = serve(Fixture::new(Listing::Rows(rows), Batch::Ok)).await;
    let mut h = start(&origin, quick());
    let listed = until(&mut h.events, |e| match e {
        Event::ConnectionsListed { connections } => Some(connections.clone()),
        Event::SourceError { message } => panic!("{message}"),
        _ => None,
    })
    .await;
    h.commands
        .send(Command::StartSweep { force: true })
        .expect("scheduler running");
    let got = reports(&mut h.events, 1).await;
    let _ = h.commands.send(Command::Shutdown);

    let ids: Vec<&str> = listed
        .iter()
        .map(|c| c.connection.vehicle_id.as_str())
        .collect();
    assert_eq!(ids, ["good-1"]);
    assert_eq!(got.first().map(|r| r.vehicle_id.as_str()), Some("good-1"));
    let requested: Vec<String> = vehicle_requests(&f.seen())
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(requested.iter().all(|id| id == "good-1"), "{requested:?}");
    let logs =
        String::from_utf8_lossy(&logs.0.lock().map(|v| v.clone()).unwrap_or_default()).into_owned();
    assert!(
        logs.contains(r#"connection of user "u1" skipped: vehicle id "bad\r\nid\u{7f}" contains control characters"#),
        "{logs}"
    );
    assert!(logs.contains(r#"vehicle id "" is empty"#), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_is_cut_off_by_the_request_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // A JSON string that never closes, a few bytes at a time.
                let _ = socket.write_all(b"2\r\n{\"\r\n").await;
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if socket.write_all(b"1\r\nx\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let settings = ClientSettings {
        fast_timeout: Duration::from_millis(800),
        ..ClientSettings::default()
    };
    let client = Client::new(Origins::all(&origin), settings).expect("client");
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        client.user_id(&Secret::new("token")),
    )
    .await
    .expect("the request timeout ends a body that never ends");
    assert!(
        matches!(
            answer,
            Err(ApiError::Transport {
                kind: TransportKind::Timeout,
                ..
            })
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_plain_http_origin_off_this_machine_is_refused_unless_allowed() {
    let home = std::env::temp_dir().join(format!("vtriage-hostile-origin-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&home);
    let run = |extra: &'static [&'static str]| {
        let home = home.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_vtriage"))
                .args([
                    "check",
                    "--api-origin",
                    "http://smartcar.invalid",
                    "--management-origin",
                    "http://smartcar.invalid",
                    "--amt",
                    "x",
                ])
                .args(extra)
                .env("VTRIAGE_HOME", &home)
                .env_remove("SMARTCAR_MANAGEMENT_TOKEN")
                .env_remove("SMARTCAR_API_ORIGIN")
                .env_remove("SMARTCAR_MANAGEMENT_API_ORIGIN")
                .env_remove("SMARTCAR_CONNECT_ORIGIN")
                .output()
                .await
                .expect("the binary runs")
        }
    };
    let refused = run(&[]).await;
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("http://smartcar.invalid is not encrypted: tokens would cross the network in clear text; use https or pass --allow-insecure-origin"),
        "{err}"
    );
    let allowed = run(&["--allow-insecure-origin"]).await;
    let err = String::from_utf8_lossy(&allowed.stderr);
    assert!(!err.contains("is not encrypted"), "{err}");
}
