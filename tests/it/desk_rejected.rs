//! Refused webhook deliveries kept for the operator: `vtriage serve --rejected` says why each was
//! refused and what would have matched, with secrets redacted, bounded, and none of them processed.

use std::process::Command;
use std::time::Duration;

use crate::desk_support;

use desk_support::{AMT, Schema, Serve, blocked_tesla, database_url, http};
use serde_json::Value;

/// `vtriage serve --rejected` on the test schema: stdout, or the failure's stderr.
fn rejected(schema: &str, extra: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args([
            "serve",
            "--database",
            &database_url(),
            "--schema",
            schema,
            "--rejected",
        ])
        .args(extra)
        .env_remove("DATABASE_URL")
        .env_remove("SMARTCAR_MANAGEMENT_TOKEN")
        .output()
        .expect("vtriage serve --rejected runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn post(url: &str, body: &[u8], signature: Option<&str>) -> u16 {
    let mut request = http()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "Smartcar-Webhooks/4.0")
        .body(body.to_vec());
    if let Some(s) = signature {
        request = request.header("SC-Signature", s);
    }
    request
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Waits until the writer has kept `n` rows (it writes off the request path).
async fn kept(schema: &Schema, n: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let count = schema
            .count("SELECT count(*) FROM rejected_deliveries")
            .await;
        if count >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} of {n} refused deliveries kept after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_told_from_a_body_changed_on_its_way_and_nothing_refused_is_processed() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let url = serve.webhook_url();
    let value: Value = serde_json::from_str(&blocked_tesla("evt-rej-1", "veh-rej-1")).unwrap();
    // Smartcar signs the compact body; a tunnel pretty-prints it on the way.
    let sent = serde_json::to_vec(&value).unwrap();
    let rewritten = serde_json::to_vec_pretty(&value).unwrap();
    let signed = vtriage::desk::webhook::sign(AMT.as_bytes(), &sent);
    assert_eq!(post(&url, &rewritten, Some(&signed)).await, 401);
    // Another application's AMT, the body as sent; and a body echoing the AMT, unsigned.
    let other = vtriage::desk::webhook::sign(b"another-applications-amt", &sent);
    assert_eq!(post(&url, &sent, Some(&other)).await, 401);
    let echo = format!(r#"{{"eventType":"VEHICLE_STATE","note":"{AMT}"}}"#);
    assert_eq!(post(&url, echo.as_bytes(), None).await, 401);
    // Signed, but no JSON.
    let junk = b"not json at all";
    let junk_sig = vtriage::desk::webhook::sign(AMT.as_bytes(), junk);
    assert_eq!(post(&url, junk, Some(&junk_sig)).await, 400);
    kept(&schema, 4).await;

    let text = rejected(&schema.name, &[]).expect("--rejected lists");
    let blocks: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(blocks.len(), 4, "{text}");
    // Newest first.
    assert!(blocks[0].contains("400 not-json"), "{text}");
    assert!(blocks[1].contains("401 no-signature"), "{text}");
    assert!(blocks[2].contains("401 signature-mismatch"), "{text}");
    assert!(blocks[2].contains("VEHICLE_ERROR evt-rej-1"), "{text}");
    assert!(blocks[3].contains("401 signature-mismatch"), "{text}");
    assert!(text.contains("from 127.0.0.1"), "{text}");
    assert!(text.contains("User-Agent: Smartcar-Webhooks/4.0"), "{text}");
    assert!(
        !text.contains(AMT),
        "the AMT an unsigned body echoed is redacted: {text}"
    );
    let json = rejected(&schema.name, &["--json"]).expect("--rejected --json");
    let rows: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3]["likely"], "body-changed", "{json}");
    assert!(
        rows[3]["detail"].as_str().unwrap().contains("re-encoded"),
        "{json}"
    );
    assert_eq!(rows[2]["likely"], "unknown-key", "{json}");

    // Never processed: no event stored, no vehicle made.
    assert_eq!(schema.count("SELECT count(*) FROM webhook_events").await, 0);
    assert_eq!(schema.count("SELECT count(*) FROM vehicles").await, 0);
    let metrics = http()
        .get(format!("{}/metrics", serve.origin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vtriage_rejected_deliveries_total{why=\"signature-mismatch\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vtriage_rejected_deliveries_kept_total 4"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_junk_keeps_only_the_newest_few_and_the_rest_are_counted() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = Serve::start(
        &database_url(),
        &schema.name,
        &["--demo", "--no-prober", "--keep-rejected", "20"],
    );
    let url = serve.webhook_url();
    let client = http();
    let posts = (0..200).map(|i| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(&url)
                .header("SC-Signature", "00")
                .body(format!("junk {i}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // The rate keeps a burst at most; the table keeps the newest 20 of those.
    kept(&schema, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        schema
            .count("SELECT count(*) FROM rejected_deliveries")
            .await,
        20
    );
    let unkept = serve
        .metric("vtriage_rejected_deliveries_unkept_total")
        .await
        .expect("metric");
    let kept_total = serve
        .metric("vtriage_rejected_deliveries_kept_total")
        .await
        .expect("metric");
    assert_eq!(unkept + kept_total, 200.0, "every refusal is counted once");
    assert!(
        kept_total <= 60.0,
        "a burst of at most 50 (and a few earned meanwhile) is written: {kept_total}"
    );
    let text = rejected(&schema.name, &[]).unwrap();
    assert!(
        text.contains("not a hex HMAC-SHA256 (2 characters"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_on_a_schema_that_does_not_exist_is_a_one_line_error_and_creates_nothing() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let typo = format!("{}_typo", schema.name);
    let err = rejected(&typo, &[]).expect_err("a missing schema is refused");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    let exists = schema
        .count(&format!(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = '{typo}'"
        ))
        .await;
    assert_eq!(exists, 0);
}
