//! Live streams under load: a desk in this process, 50 agents' sessions reading its stream (the
//! same `desk::remote` link the dashboard runs on), and signed webhooks posted at 200 per second.
//! Measured per delivery and per session: from the moment the delivery was sent (its commit comes
//! before the answer) to the moment its change reached the session's event channel, which the
//! dashboard drains and draws at once; p50 / p99 / max.
//!
//! `VTRIAGE_TEST_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/test), a schema of its
//! own dropped at the end. `VTRIAGE_BENCH_STREAMS` (50), `VTRIAGE_BENCH_RATE` (200 per second),
//! `VTRIAGE_BENCH_SECONDS` (15), `VTRIAGE_BENCH_VEHICLES` (2000).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vtriage::desk::remote::{DeskClient, start};
use vtriage::desk::{self, DbConfig};
use vtriage::fetch::Event;
use vtriage::sim::Fleet;
use vtriage::sim::webhooks::{Deliveries, Disorder, sign};

#[path = "desk_bench/mod.rs"]
mod desk_bench;

use desk_bench::{AMT, env_usize, percentile};

fn main() {
    desk_bench::run(bench());
}

/// When each vehicle's deliveries were sent, oldest first.
type Sent = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

async fn bench() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = std::env::var("VTRIAGE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let streams = env_usize("VTRIAGE_BENCH_STREAMS", 50);
    let rate = env_usize("VTRIAGE_BENCH_RATE", 200).max(1);
    let seconds = env_usize("VTRIAGE_BENCH_SECONDS", 15);
    let vehicles = env_usize("VTRIAGE_BENCH_VEHICLES", 2000);
    let (admin, connection) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("desk_stream: no PostgreSQL at {url} ({e}); skipped");
            return;
        }
    };
    tokio::spawn(connection);
    let schema = format!("vtriage_bench_stream_{}", std::process::id());
    let total = rate * seconds;
    let fleet = Fleet::generate(vehicles, 7);
    let start_ms = jiff::Timestamp::now().as_millisecond();
    let no_disorder = Disorder {
        duplicate_rate: 0.0,
        reorder_rate: 0.0,
    };
    let bodies: Vec<(String, String, String)> = Deliveries::new(&fleet, 7, start_ms, no_disorder)
        .take(total)
        .filter_map(|o| {
            let v: serde_json::Value = serde_json::from_str(&o.body).ok()?;
            let id = v["data"]["vehicle"]["id"].as_str()?.to_string();
            let sig = sign(AMT, o.body.as_bytes());
            Some((id, o.body, sig))
        })
        .collect();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let db = DbConfig {
        url: url.clone(),
        schema: Some(schema.clone()),
        pool_size: 16,
        timeout: Duration::from_secs(5),
    };
    let diagnose = desk::diagnoser(
        vtriage::health::Policies::builtin(),
        vtriage::health::Needs::default(),
        vtriage::config::ApiVersion::V3,
    );
    // The agent first: the migrations make its table.
    let admin_db = desk::Db::new(&db, diagnose.clone(), None).expect("pool");
    admin_db.migrate(Some(&schema)).await.expect("migrations");
    let token = admin_db.add_agent("bench").await.expect("agent");
    // `serve` as the desk runs it: its own process.
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args([
            "serve",
            "--demo",
            "--no-prober",
            "--database",
            &url,
            "--schema",
            &schema,
        ])
        .args(["--listen", &listen.to_string()])
        .env("SMARTCAR_MANAGEMENT_TOKEN", AMT)
        .env(
            "VTRIAGE_HOME",
            std::env::temp_dir().join(format!("{schema}-home")),
        )
        .env("VTRIAGE_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("vtriage serve starts");
    let origin = format!("http://{listen}");
    let http = reqwest::Client::new();
    let ready = Instant::now();
    while !http
        .get(format!("{origin}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "the desk did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let sent: Sent = Arc::new(Mutex::new(HashMap::new()));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for _ in 0..streams {
        let client = DeskClient::new(&origin, token.clone(), false).expect("client");
        let mut session = start(client).await.expect("session");
        let mut link = session.link.clone();
        // Connected: the stream is open and the (empty) fleet read.
        while !matches!(
            *link.borrow(),
            vtriage::desk::remote::Link::Connected { .. }
        ) {
            let _ = link.changed().await;
        }
        let sent = sent.clone();
        let mut done = done_rx.clone();
        readers.push(tokio::spawn(async move {
            // The session ends when its command sender goes: held for as long as it reads.
            let _commands = session.commands;
            let mut latencies = Vec::new();
            loop {
                let event = tokio::select! {
                    e = session.events.recv() => e,
                    _ = done.changed() => None,
                };
                let Some(event) = event else {
                    break;
                };
                let Event::Diagnosed { report, .. } = event else {
                    continue;
                };
                let arrived = Instant::now();
                let at = sent.lock().ok().and_then(|m| {
                    m.get(&report.vehicle_id)?
                        .iter()
                        .rev()
                        .find(|t| **t <= arrived)
                        .copied()
                });
                if let Some(at) = at {
                    latencies.push(arrived - at);
                }
            }
            latencies
        }));
    }
    println!(
        "desk_stream: {streams} streams connected; posting {} deliveries at {rate}/s",
        bodies.len()
    );

    let webhook = format!("{origin}/webhooks/smartcar");
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let mut posts = Vec::with_capacity(bodies.len());
    let began = Instant::now();
    for (id, body, sig) in bodies {
        tick.tick().await;
        let (http, webhook, sent) = (http.clone(), webhook.clone(), sent.clone());
        posts.push(tokio::spawn(async move {
            if let Ok(mut m) = sent.lock() {
                m.entry(id).or_default().push(Instant::now());
            }
            http.post(&webhook)
                .header("content-type", "application/json")
                .header("SC-Signature", sig)
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }));
    }
    let mut stored = 0;
    for p in posts {
        stored += usize::from(p.await.unwrap_or(false));
    }
    let elapsed = began.elapsed();
    // The last changes reach the streams.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = done_tx.send(true);
    let _ = server.kill();
    let _ = server.wait();
    let mut all: Vec<Duration> = Vec::new();
    for r in readers {
        if let Ok(Ok(mut l)) = tokio::time::timeout(Duration::from_secs(5), r).await {
            all.append(&mut l);
        }
    }
    all.sort();
    println!(
        "desk_stream: {stored} deliveries stored in {:.1} s ({:.0}/s); {} changes received over {streams} streams",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        all.len()
    );
    println!(
        "desk_stream: delivery sent → change in a session: p50 {:?} · p99 {:?} · max {:?}",
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or_default()
    );
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await;
}
