//! A hostile server over loopback answers with terminal escapes, bidi overrides, spreadsheet formulas,
//! Markdown and links of its own, and echoes the credentials it was sent. After the scheduler, every
//! output (table, JSON, CSV, Markdown, clipboard text, stored report) is clean and holds no secret.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use serde_json::json;
use vtriage::fetch::{self, Command, Event, Priority, SchedulerConfig, Source};
use vtriage::health::{Needs, Policies, diagnose};
use vtriage::report::{VehicleSummary, markdown, write_csv, write_json_lines, write_table};
use vtriage::smartcar::{Client, ClientSettings, Origins, ProbeReport, Secret};
use vtriage::tui::clipboard;

const TOKEN: &str = "tok-3f9a7c1e-access-token";
const AMT: &str = "amt-5b2d8e4f/management+token";
const VEHICLE: &str = "veh-hostile";
const HOSTILE_MAKE: &str = "\x1b[2J\x1b]52;c;aGk=\x07# TESLA\u{202E}";
const HOSTILE_MODEL: &str = "=HYPERLINK(\"http://evil.example\",\"Model 3\") | ```";
const HOSTILE_LINK: &str = "https://smartcar.com@evil.example/_ak/x";

/// Every vehicle call but the attributes fails with an error that quotes the request's credentials.
async fn hostile(uri: axum::http::Uri, headers: HeaderMap) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bare = auth
        .split_once(' ')
        .map_or(auth.as_str(), |(_, v)| v)
        .to_string();
    let mut out = HeaderMap::new();
    if let Ok(v) = format!("rq-{bare}").parse() {
        out.insert("sc-request-id", v);
    }
    if uri.path() == format!("/v2.0/vehicles/{VEHICLE}") {
        let body =
            json!({"id": VEHICLE, "make": HOSTILE_MAKE, "model": HOSTILE_MODEL, "year": 2021});
        return (StatusCode::OK, out, axum::Json(body));
    }
    let body = json!({
        "type": "CONNECTED_SERVICES_ACCOUNT",
        "code": "VIRTUAL_KEY_REQUIRED",
        "description": format!("\x1b[31mdenied\x1b[0m for {auth} \u{202E}\n# Heading"),
        "docURL": "javascript:alert(1)",
        "statusCode": 400,
        "requestId": format!("rq-{bare}"),
        "resolution": {"type": "ACTION_REQUIRED", "url": HOSTILE_LINK},
        "suggestedUserMessage": format!("[x](javascript:alert(1)) ![i](http://x) <script> =1+1 {bare} \x1b[2J"),
        "echo": {"authorization": auth},
    });
    (StatusCode::BAD_REQUEST, out, axum::Json(body))
}

async fn start_hostile() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    let app = Router::new().fallback(hostile);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Probes the hostile vehicle through the scheduler; the report and the source error it emitted.
async fn probe_hostile(origin: &str) -> (ProbeReport, String) {
    let client = Client::new(Origins::all(origin), ClientSettings::default()).expect("client");
    let source = Source {
        amt: Some(Secret::new(AMT)),
        tokens: HashMap::new(),
        single_token: Some(Secret::new(TOKEN)),
        tokens_command: None,
    };
    let config = SchedulerConfig {
        rate: None,
        max_tries: 1,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(10),
        ..SchedulerConfig::default()
    };
    let mut handle = fetch::spawn(client, source, config);
    handle
        .commands
        .send(Command::Probe {
            vehicle_ids: vec![VEHICLE.into()],
            priority: Priority::Focus,
            force: true,
        })
        .expect("scheduler listens");
    let mut source_error = String::new();
    let report = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = handle.events.recv().await {
            match event {
                Event::SourceError { message } => source_error = message,
                Event::Observed { report } if report.vehicle_id == VEHICLE => return Some(report),
                _ => {}
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("the hostile vehicle is reported");
    let _ = handle.commands.send(Command::Shutdown);
    (report, source_error)
}

fn secret_forms() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        TOKEN.into(),
        AMT.into(),
        b64.encode(format!("default:{AMT}")),
        form_urlencoded::byte_serialize(AMT.as_bytes()).collect(),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in secret_forms() {
        assert!(!text.contains(&secret), "{what} holds {secret:?}:\n{text}");
    }
}

fn assert_no_controls(what: &str, text: &str, allowed: &[char]) {
    let bad = text.chars().find(|c| {
        !allowed.contains(c)
            && (c.is_control()
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'))
    });
    assert_eq!(bad, None, "{what} holds a control character:\n{text:?}");
}

#[tokio::test]
async fn a_hostile_server_reaches_no_output_unsanitized_and_no_secret_survives() {
    let origin = start_hostile().await;
    let (report, source_error) = probe_hostile(&origin).await;

    assert_no_secret("the source error", &source_error);
    let stored = serde_json::to_string(&report).expect("report serialises");
    assert_no_secret("the stored report", &stored);
    assert!(stored.contains("[redacted]"), "{stored}");
    assert!(
        report.observations.iter().any(|o| o.error().is_some()),
        "the probe saw the hostile errors: {stored}"
    );

    let needs = Needs {
        connect_origin: origin.clone(),
        ..Needs::default()
    };
    let policies = Policies::builtin();
    let now: jiff::Timestamp = "2026-11-27T19:00:00Z".parse().expect("timestamp");
    let diagnosis = diagnose(&report, &policies, &needs, now);
    let summary = VehicleSummary::from_report(&report, &diagnosis, Some("=cmd|' /C calc'!A0"));
    let summaries = [summary];

    // Fix links: never the server's hostile one, never javascript:.
    for f in &diagnosis.findings {
        let link = f.remedy.link.as_deref().unwrap_or_default();
        assert!(
            !link.contains("evil.example") && !link.starts_with("javascript:"),
            "{link}"
        );
    }

    let mut table = Vec::new();
    write_table(&mut table, &summaries).expect("table");
    let table = String::from_utf8(table).expect("utf8");
    assert_no_secret("the table", &table);
    assert_no_controls("the table", &table, &['\n']);

    let mut json = Vec::new();
    write_json_lines(&mut json, &summaries).expect("json");
    let json = String::from_utf8(json).expect("utf8");
    assert_no_secret("the JSON", &json);
    assert_no_controls("the JSON", &json, &['\n']);
    for line in json.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
        // What `jq -r` prints: the decoded strings carry no ESC or bidi control either.
        assert_no_controls("a decoded JSON string", &value["make"].to_string(), &[]);
        let decoded = value["findings"].to_string();
        assert!(!decoded.contains("\\u001b"), "{decoded}");
    }

    let mut csv = Vec::new();
    write_csv(&mut csv, &summaries).expect("csv");
    let csv = String::from_utf8(csv).expect("utf8");
    assert_no_secret("the CSV", &csv);
    assert_no_controls("the CSV", &csv, &['\r', '\n']);
    let mut reader = ::csv::Reader::from_reader(csv.as_bytes());
    for record in reader.records() {
        let record = record.expect("valid CSV");
        for cell in record.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell starts a formula: {cell:?}"
            );
        }
        assert!(
            record.iter().any(|c| c.starts_with("'=HYPERLINK(")),
            "{record:?}"
        );
    }

    let md = markdown(&summaries[0], &policies, now);
    assert_no_secret("the Markdown", &md);
    assert_no_controls("the Markdown", &md, &['\n']);
    // The reply is plain text in a fence of ours, longer than any backtick run in it: nothing inside
    // can close it early.
    let mut lines = md.lines();
    let mut outside = Vec::new();
    while let Some(line) = lines.next() {
        let Some(fence) = line
            .strip_suffix("text")
            .filter(|f| f.len() >= 3 && f.chars().all(|c| c == '`'))
        else {
            outside.push(line);
            continue;
        };
        let inner: Vec<&str> = lines.by_ref().take_while(|l| *l != fence).collect();
        for l in inner {
            assert!(
                !l.starts_with(fence),
                "the reply closes its fence early: {l}"
            );
        }
    }
    for line in outside {
        assert!(!line.starts_with("# "), "a heading from the server: {line}");
        assert!(
            !line.replace("\\]", "").contains("](javascript:"),
            "a link from the server: {line}"
        );
        assert!(!line.contains("<script>"), "HTML from the server: {line}");
        assert!(!line.contains("```"), "a fence from the server: {line}");
    }
    assert!(md.starts_with("## \u{FFFD}"), "{md}");

    let reply = diagnosis
        .main_finding()
        .map(|f| f.remedy.customer_reply.clone())
        .unwrap_or_default();
    let copied = clipboard::clean(&reply);
    assert_no_secret("the copied reply", &copied);
    assert_no_controls("the copied reply", &copied, &['\n']);
}
