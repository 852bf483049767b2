//! Webhook ingestion into PostgreSQL: a desk in this process, a 100,000-vehicle simulated fleet's
//! signed deliveries posted over loopback by concurrent senders; sustained deliveries per second and
//! the time to commit (a delivery is answered only once committed), p50 / p99 / max.
//!
//! `VTRIAGE_TEST_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/test), a schema of its
//! own dropped at the end. `VTRIAGE_BENCH_VEHICLES` (100000), `VTRIAGE_BENCH_DELIVERIES` (150000),
//! `VTRIAGE_BENCH_CONCURRENCY` (32), `VTRIAGE_BENCH_POOL` (16), `VTRIAGE_BENCH_BATCH_WORKERS` and
//! `VTRIAGE_BENCH_BATCH_MAX` (the desk's defaults: shared transactions in flight, deliveries in one).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vtriage::desk::{self, DbConfig, DeskConfig};
use vtriage::sim::Fleet;
use vtriage::sim::webhooks::{Deliveries, Disorder, sign};
use vtriage::smartcar::Secret;

#[path = "desk_bench/mod.rs"]
mod desk_bench;

use desk_bench::{AMT, env_usize, percentile};

/// The allocator `vtriage serve` runs with (src/main.rs), since the desk runs in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    desk_bench::run(bench());
}

async fn bench() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = std::env::var("VTRIAGE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let vehicles = env_usize("VTRIAGE_BENCH_VEHICLES", 100_000);
    let total = env_usize("VTRIAGE_BENCH_DELIVERIES", 150_000);
    let concurrency = env_usize("VTRIAGE_BENCH_CONCURRENCY", 32);
    let pool = env_usize("VTRIAGE_BENCH_POOL", 16);
    let defaults = desk::IngestConfig::default();
    let batch_workers = env_usize("VTRIAGE_BENCH_BATCH_WORKERS", defaults.workers);
    let max_batch = env_usize("VTRIAGE_BENCH_BATCH_MAX", defaults.max_batch);

    let (admin, connection) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("desk_ingest: no PostgreSQL at {url} ({e}); skipped");
            return;
        }
    };
    tokio::spawn(connection);
    let schema = format!("vtriage_bench_{}", std::process::id());

    println!("desk_ingest: generating {vehicles} vehicles and {total} signed deliveries");
    let fleet = Fleet::generate(vehicles, 7);
    let start_ms = jiff::Timestamp::now().as_millisecond();
    let disorder = Disorder {
        duplicate_rate: 0.02,
        reorder_rate: 0.02,
    };
    let bodies: Vec<(String, String)> = Deliveries::new(&fleet, 7, start_ms, disorder)
        .take(total)
        .map(|o| {
            let sig = sign(AMT, o.body.as_bytes());
            (o.body, sig)
        })
        .collect();
    let bodies = Arc::new(bodies);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let config = DeskConfig {
        listen,
        db: DbConfig {
            url: url.clone(),
            schema: Some(schema.clone()),
            pool_size: pool,
            timeout: Duration::from_secs(5),
        },
        amt: Secret::new(AMT.to_string()),
        secrets: Vec::new(),
        max_body_bytes: 1 << 20,
        // The benchmark opens as many connections as it measures with.
        http_limits: vtriage::http_serve::Limits {
            max_connections: 1 << 16,
            max_per_peer: 1 << 16,
            ..vtriage::http_serve::Limits::default()
        },
        retention: vtriage::desk::Retention::default(),
        keep_rejected: desk::rejected::KeepRejected::default(),
        prober: None,
        max_waiting_probes: 50,
        vin_lookups_per_hour: 20,
        policies_text: vtriage::health::policy::BUILTIN_POLICIES.to_string(),
        needs: vtriage::health::Needs::default(),
        api: vtriage::config::ApiVersion::V3,
        rediagnosis: desk::RediagnosisConfig::default(),
        ingest: desk::IngestConfig {
            workers: batch_workers,
            max_batch,
        },
    };
    let diagnose = desk::diagnoser(
        vtriage::health::Policies::builtin(),
        vtriage::health::Needs::default(),
        vtriage::config::ApiVersion::V3,
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(desk::run(config, diagnose, None, async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let webhook = format!("http://{listen}/webhooks/smartcar");
    let health = format!("http://{listen}/healthz");
    let ready = Instant::now();
    while !client
        .get(&health)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if ready.elapsed() > Duration::from_secs(30) {
            panic!("the desk did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, webhook, bodies, next, failures) = (
            client.clone(),
            webhook.clone(),
            bodies.clone(),
            next.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut samples: Vec<(usize, Duration)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, sig)) = bodies.get(i) else {
                    return samples;
                };
                let sent = Instant::now();
                let ok = client
                    .post(&webhook)
                    .header("content-type", "application/json")
                    .header("SC-Signature", sig)
                    .body(body.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                samples.push((i, sent.elapsed()));
            }
        }));
    }
    let mut samples = Vec::with_capacity(total);
    for t in tasks {
        samples.extend(t.await.expect("sender"));
    }
    let elapsed = began.elapsed();
    let metrics = client
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .ok();
    let metrics = match metrics {
        Some(m) => m.text().await.unwrap_or_default(),
        None => String::new(),
    };
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (batches, batched, retried) = (
        metric("vtriage_webhook_batches_committed_total"),
        metric("vtriage_webhook_batched_deliveries_total"),
        metric("vtriage_webhook_batches_retried_total"),
    );
    let _ = stop_tx.send(());
    let _ = server.await;

    let stored: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {schema}.vehicles"), &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1);
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await;

    let report = |label: &str, mut lat: Vec<Duration>, secs: f64| {
        lat.sort();
        println!(
            "{label:<28} {:>8} deliveries  {:>8.0}/s  commit p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>7.1} ms",
            lat.len(),
            lat.len() as f64 / secs,
            percentile(&lat, 0.50).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    };
    let all: Vec<Duration> = samples.iter().map(|(_, d)| *d).collect();
    report("all", all, elapsed.as_secs_f64());
    let steady: Vec<Duration> = samples
        .iter()
        .filter(|(i, _)| *i >= vehicles)
        .map(|(_, d)| *d)
        .collect();
    if !steady.is_empty() {
        let share = steady.len() as f64 / samples.len().max(1) as f64;
        report(
            "after 100% of the fleet seen",
            steady,
            elapsed.as_secs_f64() * share,
        );
    }
    println!(
        "vehicles in the database: {stored}; failed deliveries: {}; concurrency {concurrency}, pool {pool}",
        failures.load(Ordering::Relaxed)
    );
    println!(
        "shared commits: {batches} of {:.1} deliveries on average ({batched} deliveries), {retried} retried one by one; {batch_workers} in flight, at most {max_batch} each",
        batched / batches.max(1.0)
    );
}
