//! `vtriage sim --webhook-url` against `vtriage serve`: the challenge is verified, duplicates are
//! stored once, and the fleet's situations arrive as diagnoses.

use crate::desk_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use desk_support::{AMT, Schema, Serve, database_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_posts_signed_deliveries_the_desk_stores_once_each() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let mut sim = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args([
            "sim",
            "--vehicles",
            "60",
            "--amt",
            AMT,
            "--webhook-url",
            &serve.webhook_url(),
            "--webhook-rate",
            "1000",
            "--webhook-limit",
            "200",
            "--webhook-duplicate-rate",
            "0.1",
            "--webhook-reorder-rate",
            "0.1",
        ])
        .env("VTRIAGE_HOME", &serve.home)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sim starts");
    let stdout = sim.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut verified = false;
    let mut done = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        verified |= line.contains("verified the challenge");
        if line.contains("deliveries posted") {
            done = true;
            break;
        }
    }
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(done, "the simulator finished sending");
    assert!(verified, "the desk answered VERIFY with the AMT's HMAC");

    let stored = schema.count("SELECT count(*) FROM webhook_events").await;
    let duplicates = serve
        .metric("vtriage_webhook_events_deduplicated_total")
        .await
        .unwrap_or(0.0);
    assert!(duplicates >= 1.0, "some deliveries were sent twice");
    assert_eq!(
        stored as f64 + duplicates,
        200.0,
        "every delivery is either new or a duplicate"
    );
    assert_eq!(
        serve
            .metric("vtriage_webhook_events_stored_total")
            .await
            .unwrap_or(0.0),
        stored as f64
    );
    assert!(
        schema
            .count("SELECT count(*) FROM vehicles WHERE status = 'BLOCKED'")
            .await
            > 0,
        "the fleet's blocking situations arrive as diagnoses"
    );
}
