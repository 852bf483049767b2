//! What `serve` logs for its operator: each refused delivery as one line with why, agents'
//! dashboards coming and going; text lines by default, JSON lines with `--log-format json`.

use crate::desk_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use desk_support::{AMT, Schema, Serve, add_agent, database_url, http, temp_home};

/// Every line `lines` gives within `within`.
fn lines_within(lines: &mpsc::Receiver<String>, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        got.push(line);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_is_one_text_line_saying_why() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let home = temp_home("text-logs");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["serve", "--demo", "--no-prober", "--listen", "127.0.0.1:0"])
        .args(["--database", &database_url(), "--schema", &schema.name])
        .env("VTRIAGE_HOME", &home)
        .env("SMARTCAR_MANAGEMENT_TOKEN", AMT)
        .env("VTRIAGE_LOG", "info")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let listen = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("serve says it is ready");
        if line.contains("vtriage serve ready") {
            assert!(
                serde_json::from_str::<serde_json::Value>(&line).is_err(),
                "text by default: {line}"
            );
            break line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("listen="))
                .expect("the address in the line")
                .to_string();
        }
    };
    let body = desk_support::blocked_tesla("e-text", "v-text");
    let answer = http()
        .post(format!("http://{listen}/webhooks/smartcar"))
        .header("content-type", "application/json")
        .header("SC-Signature", "0".repeat(64))
        .body(body)
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 401);
    let lines = lines_within(&rx, Duration::from_secs(2));
    let refused: Vec<&String> = lines.iter().filter(|l| l.contains("refused")).collect();
    assert_eq!(refused.len(), 1, "one line for one refusal: {lines:?}");
    assert!(
        refused[0].contains("why=\"signature-mismatch\"")
            || refused[0].contains("why=signature-mismatch"),
        "{}",
        refused[0]
    );
    assert!(
        refused[0].contains("SC-Signature does not match"),
        "{}",
        refused[0]
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_parse_and_name_refusals_and_agents_coming_and_going() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let client = http();
    // No signature, then over the cap: two refusals, two lines.
    let unsigned = client
        .post(serve.webhook_url())
        .header("content-type", "application/json")
        .body(r#"{"eventType":"VEHICLE_STATE"}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(unsigned.status(), 401);
    let token = add_agent(&schema.name, "night-shift");
    let stream = client
        .get(format!("{}/api/v1/stream", serve.origin))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream opens");
    assert_eq!(stream.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    let lines = lines_within(&serve.lines, Duration::from_secs(2));
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |v: &serde_json::Value| v["fields"]["message"].as_str().unwrap_or("").to_string();
    let refused: Vec<&serde_json::Value> = parsed
        .iter()
        .filter(|v| message(v).contains("refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{lines:?}");
    assert_eq!(refused[0]["fields"]["why"], "no-signature");
    assert!(
        message(refused[0]).contains("SC-Signature missing"),
        "{}",
        refused[0]
    );
    for said in [
        "an agent's dashboard connected",
        "an agent's dashboard left",
    ] {
        let line = parsed
            .iter()
            .find(|v| message(v) == said)
            .unwrap_or_else(|| panic!("no {said:?} in {lines:?}"));
        assert_eq!(line["fields"]["agent"], "night-shift", "{line}");
    }
}
