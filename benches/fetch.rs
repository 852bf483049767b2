//! Scheduler figures against the simulator over loopback: time to diagnosis, requests per diagnosis,
//! budget use under the app-wide limit, and a fleet sweep against its lower bound.
//! Run with `cargo bench --bench fetch [-- FILTER]` (FILTER picks sections by name: `v2`, `v3`, `sweep`,
//! `budget`); `FETCH_BENCH_BUDGET_S` sets the budget run (default 60 s).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use vtriage::fetch::{
    self, Command, Event, Priority, Progress, RateBudget, SchedulerConfig, SchedulerHandle, Source,
};
use vtriage::sim::{self, AppRateLimit, Latency, SimConfig, SimHandle, SimVehicle, Situation};
use vtriage::smartcar::v3::{AppCredentials, V3Client, V3Origins};
use vtriage::smartcar::{Client, ClientSettings, Origins, Secret, VehicleAttributes};

type Failure = Box<dyn std::error::Error>;

async fn start_sim(config: SimConfig) -> Result<SimHandle, Failure> {
    Ok(sim::spawn(config, "127.0.0.1:0".parse()?).await?)
}

fn start(sim: &SimHandle, config: SchedulerConfig) -> Result<SchedulerHandle, Failure> {
    let client = Client::new(Origins::all(sim.origin()), ClientSettings::default())?;
    let source = Source {
        amt: Some(Secret::new(sim.amt())),
        tokens: sim
            .tokens()
            .iter()
            .map(|(u, t)| (u.clone(), Secret::new(t)))
            .collect(),
        single_token: None,
        tokens_command: None,
    };
    Ok(fetch::spawn(client, source, config))
}

async fn next_event<T>(
    events: &mut UnboundedReceiver<Event>,
    limit: Duration,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> Result<T, Failure> {
    let found = tokio::time::timeout(limit, async {
        while let Some(e) = events.recv().await {
            if let Some(t) = pick(e) {
                return Some(t);
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .ok_or_else(|| "the expected event did not come".into())
}

async fn listed(h: &mut SchedulerHandle) -> Result<(), Failure> {
    next_event(&mut h.events, Duration::from_secs(60), |e| {
        matches!(e, Event::ConnectionsListed { .. }).then_some(())
    })
    .await
}

/// Probes one vehicle at Focus and returns the seconds until its report.
async fn diagnose(h: &mut SchedulerHandle, id: &str, force: bool) -> Result<f64, Failure> {
    let started = Instant::now();
    h.commands.send(Command::Probe {
        vehicle_ids: vec![id.to_string()],
        priority: Priority::Focus,
        force,
    })?;
    next_event(&mut h.events, Duration::from_secs(60), |e| match e {
        Event::Observed { report } if report.vehicle_id == id => Some(()),
        _ => None,
    })
    .await?;
    Ok(started.elapsed().as_secs_f64())
}

fn attributes(v: &SimVehicle) -> VehicleAttributes {
    VehicleAttributes {
        id: v.id.clone(),
        make: v.make.clone(),
        model: v.model.clone(),
        year: v.year,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn time_to_diagnosis() -> Result<(), Failure> {
    let sim = start_sim(SimConfig {
        vehicles: 400,
        seed: 3,
        latency: Latency::Fixed {
            ms: 1_000,
            jitter_ms: 0,
        },
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    })
    .await?;
    let mut h = start(
        &sim,
        SchedulerConfig {
            rate: None,
            ..SchedulerConfig::default()
        },
    )?;
    listed(&mut h).await?;
    let healthy = |tesla: bool| -> Vec<&SimVehicle> {
        sim.fleet()
            .vehicles
            .iter()
            .filter(|v| v.situation == Situation::Healthy && v.is_tesla() == tesla)
            .take(6)
            .collect()
    };
    let (teslas, others) = (healthy(true), healthy(false));
    let (unknown_teslas, known_teslas) = teslas.split_at(teslas.len() / 2);
    h.commands.send(Command::KnownAttributes(
        known_teslas.iter().map(|v| attributes(v)).collect(),
    ))?;

    println!(
        "time to diagnosis, 1 s per vehicle call (median of {}):",
        unknown_teslas.len()
    );
    let mut rows: Vec<(&str, Vec<f64>, Vec<u64>)> = Vec::new();
    for (label, group) in [
        ("Tesla, make unknown", unknown_teslas),
        ("Tesla, make known  ", known_teslas),
        ("other, make unknown", &others[..others.len().min(3)]),
    ] {
        let mut secs = Vec::new();
        let mut requests = Vec::new();
        for v in group {
            secs.push(diagnose(&mut h, &v.id, false).await?);
            requests.push(sim.vehicle_requests(&v.id).unwrap_or(0));
        }
        rows.push((label, secs, requests));
    }
    for (label, secs, _) in &rows {
        let max = secs.iter().copied().fold(0.0, f64::max);
        println!("  {label}: {:.3} s (max {max:.3} s)", median(secs.clone()));
    }
    println!("requests per diagnosis:");
    for (label, _, requests) in &rows {
        println!("  {label}: {requests:?}");
    }
    let repeat = unknown_teslas.first().ok_or("no healthy Tesla")?;
    let before = sim.vehicle_requests(&repeat.id).unwrap_or(0);
    let secs = diagnose(&mut h, &repeat.id, false).await?;
    let after = sim.vehicle_requests(&repeat.id).unwrap_or(0);
    println!(
        "  repeat inside the freshness window: {} requests, {:.4} s",
        after - before,
        secs
    );
    let _ = h.commands.send(Command::Shutdown);
    Ok(())
}

/// API v3: the listing gives make and permissions, so every diagnosis is one signals request.
async fn v3_time_to_diagnosis() -> Result<(), Failure> {
    let sim = start_sim(SimConfig {
        vehicles: 400,
        seed: 3,
        latency: Latency::Fixed {
            ms: 1_000,
            jitter_ms: 0,
        },
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    })
    .await?;
    let config = sim.config();
    let client = V3Client::new(
        V3Origins::all(sim.origin()),
        AppCredentials::new(
            config.client_id.clone(),
            Secret::new(config.client_secret.clone()),
        ),
        ClientSettings::default(),
    )?;
    let mut h = fetch::spawn(
        client,
        Source::default(),
        SchedulerConfig {
            rate: None,
            ..SchedulerConfig::default()
        },
    );
    listed(&mut h).await?;
    let pages = sim
        .stats()
        .by_endpoint
        .get("management")
        .copied()
        .unwrap_or(0);
    let healthy = |tesla: bool| -> Vec<&SimVehicle> {
        sim.fleet()
            .vehicles
            .iter()
            .filter(|v| v.situation == Situation::Healthy && v.is_tesla() == tesla)
            .take(3)
            .collect()
    };
    println!("API v3, time to diagnosis, 1 s per vehicle call (median of 3):");
    let mut rows = Vec::new();
    for (label, group) in [
        ("Tesla, first sight", healthy(true)),
        ("other, first sight", healthy(false)),
    ] {
        let mut secs = Vec::new();
        let mut requests = Vec::new();
        for v in group {
            secs.push(diagnose(&mut h, &v.id, false).await?);
            requests.push(sim.vehicle_requests(&v.id).unwrap_or(0));
        }
        println!("  {label}: {:.3} s", median(secs));
        rows.push((label, requests));
    }
    println!("API v3, requests per diagnosis:");
    for (label, requests) in rows {
        println!("  {label}: {requests:?}");
    }
    println!(
        "  listing: {pages} request(s) for {} connections (one per page of 100)",
        sim.fleet().vehicles.len()
    );
    let _ = h.commands.send(Command::Shutdown);
    Ok(())
}

async fn budget_use(run: Duration) -> Result<(), Failure> {
    let limit = AppRateLimit {
        burst: 20,
        refill_per_min: 120.0,
    };
    let sim = start_sim(SimConfig {
        vehicles: 2_000,
        seed: 9,
        app_rate_limit: Some(limit),
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    })
    .await?;
    let mut h = start(
        &sim,
        SchedulerConfig {
            rate: Some(RateBudget {
                burst: f64::from(limit.burst),
                refill_per_min: limit.refill_per_min,
            }),
            ..SchedulerConfig::default()
        },
    )?;
    listed(&mut h).await?;
    let started = Instant::now();
    h.commands.send(Command::StartSweep { force: false })?;
    let mut reports = 0usize;
    let mut pauses = 0usize;
    let deadline = tokio::time::sleep(run);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            e = h.events.recv() => match e {
                Some(Event::Observed { .. }) => reports += 1,
                Some(Event::RateLimited { .. }) => pauses += 1,
                Some(_) => {}
                None => break,
            },
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = sim.stats();
    let sent = stats.requests_total - stats.by_endpoint.get("management").copied().unwrap_or(0);
    let budget = f64::from(limit.burst) + elapsed * limit.refill_per_min / 60.0;
    println!(
        "budget use, server bucket {} / {} per min, {elapsed:.0} s sweep:",
        limit.burst, limit.refill_per_min
    );
    println!(
        "  {sent} requests of {budget:.0} allowed = {:.1} %, {} answered 429 RATE_LIMIT:SMARTCAR_API, {reports} reports, {pauses} RateLimited events",
        100.0 * sent as f64 / budget,
        stats.rate_limited_app
    );
    let _ = h.commands.send(Command::Shutdown);
    Ok(())
}

async fn fleet_sweep() -> Result<(), Failure> {
    let latency = Duration::from_millis(25);
    let sim = start_sim(SimConfig {
        vehicles: 2_000,
        seed: 13,
        latency: Latency::Fixed {
            ms: latency.as_millis() as u64,
            jitter_ms: 0,
        },
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    })
    .await?;
    let concurrency = 16;
    let mut h = start(
        &sim,
        SchedulerConfig {
            concurrency,
            rate: None,
            ..SchedulerConfig::default()
        },
    )?;
    listed(&mut h).await?;
    let listing = sim.stats().requests_total;
    let started = Instant::now();
    h.commands.send(Command::StartSweep { force: false })?;
    let mut by_vehicle: HashMap<String, usize> = HashMap::new();
    let last: Progress = next_event(&mut h.events, Duration::from_secs(600), |e| match e {
        Event::Observed { report } => {
            *by_vehicle.entry(report.vehicle_id).or_default() += 1;
            None
        }
        Event::Progress(p) if p.total > 0 && p.done == p.total && p.in_flight == 0 => Some(p),
        _ => None,
    })
    .await?;
    let wall = started.elapsed().as_secs_f64();
    let stats = sim.stats();
    let requests = stats.requests_total - listing;
    let slow = stats
        .by_endpoint
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "permissions" | "management" | "user" | "vehicles"
            )
        })
        .map(|(_, n)| n)
        .sum::<u64>();
    let bound = requests as f64 / concurrency as f64 * latency.as_secs_f64();
    let slow_bound = slow as f64 / concurrency as f64 * latency.as_secs_f64();
    println!(
        "fleet sweep, {} vehicles, 25 ms per call, concurrency {concurrency}, no rate limit:",
        last.total
    );
    println!(
        "  {requests} requests in {wall:.2} s; bound {bound:.2} s (requests / concurrency × latency) → {:.2}×",
        wall / bound
    );
    println!(
        "  ({slow} of them wait the 25 ms; permissions answer at once: bound on those {slow_bound:.2} s → {:.2}×)",
        wall / slow_bound
    );
    println!(
        "  {:.0} requests/s, {} reports for {} vehicles",
        requests as f64 / wall,
        by_vehicle.values().sum::<usize>(),
        by_vehicle.len()
    );
    let _ = h.commands.send(Command::Shutdown);
    Ok(())
}

fn main() -> Result<(), Failure> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful either way.
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let budget_s = std::env::var("FETCH_BENCH_BUDGET_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    rt.block_on(async {
        if wanted("v2 time to diagnosis") {
            time_to_diagnosis().await?;
        }
        if wanted("v3 time to diagnosis") {
            v3_time_to_diagnosis().await?;
        }
        if wanted("v2 fleet sweep") {
            fleet_sweep().await?;
        }
        if wanted("v2 budget") {
            budget_use(Duration::from_secs(budget_s)).await?;
        }
        Ok(())
    })
}
