//! The scheduler under load against the real simulator: a faulty server and a tight app-wide budget.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use vtriage::fetch::{
    self, Command, Event, KnownVehicle, ProbePlan, Progress, RateBudget, SchedulerConfig, Source,
    V2Plan,
};
use vtriage::sim::{self, AppRateLimit, SimConfig, SimHandle};
use vtriage::smartcar::{Client, ClientSettings, DataKind, Origins, Secret, VehicleAttributes};

async fn start_sim(config: SimConfig) -> SimHandle {
    sim::spawn(config, "127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("simulator starts")
}

fn amt_source(sim: &SimHandle) -> Source {
    Source {
        amt: Some(Secret::new(sim.amt())),
        tokens: sim
            .tokens()
            .iter()
            .map(|(user, token)| (user.clone(), Secret::new(token)))
            .collect(),
        single_token: None,
        tokens_command: None,
    }
}

/// Runs a sweep to its end: every report by vehicle id (counting repeats) and the last progress.
async fn sweep_to_the_end(
    events: &mut UnboundedReceiver<Event>,
    limit: Duration,
) -> (HashMap<String, usize>, Progress) {
    let mut reports: HashMap<String, usize> = HashMap::new();
    let started = std::time::Instant::now();
    let mut progress_events = 0u64;
    let run = tokio::time::timeout(limit, async {
        while let Some(event) = events.recv().await {
            match event {
                Event::Observed { report } => *reports.entry(report.vehicle_id).or_default() += 1,
                Event::Progress(p) => {
                    progress_events += 1;
                    if p.total > 0 && p.done == p.total && p.in_flight == 0 {
                        return Some(p);
                    }
                }
                Event::SourceError { message } => panic!("source failed: {message}"),
                _ => {}
            }
        }
        None
    })
    .await;
    // Throttled to ten a second, plus the last word of each run.
    let allowed = started.elapsed().as_secs_f64() * 10.0 + 3.0;
    assert!(
        (progress_events as f64) <= allowed,
        "{progress_events} progress events, {allowed:.0} allowed"
    );
    match run {
        Ok(Some(p)) => (reports, p),
        Ok(None) => panic!("the scheduler stopped mid-sweep"),
        Err(_) => panic!("the sweep did not finish within {limit:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_server_every_vehicle_ends_with_one_report_and_retries_stay_bounded() {
    let sim = start_sim(SimConfig {
        vehicles: 5_000,
        seed: 23,
        fault_rate: 0.3,
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    })
    .await;
    let settings = ClientSettings {
        // The simulator's slow faults answer 2.5 s late: make them timeouts, which are retried too.
        vehicle_timeout: Duration::from_secs(1),
        fast_timeout: Duration::from_secs(1),
        ..ClientSettings::default()
    };
    let client = Client::new(Origins::all(sim.origin()), settings).expect("client builds");
    let config = SchedulerConfig {
        concurrency: 128,
        rate: None,
        per_vehicle_per_hour: 1_000,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(100),
        ..SchedulerConfig::default()
    };
    let max_tries = config.max_tries;
    let plan = V2Plan {
        data: config.data.clone(),
        tesla_at_home: config.tesla_at_home,
    };
    let mut h = fetch::spawn(client, amt_source(&sim), config);
    h.commands
        .send(Command::StartSweep { force: false })
        .expect("scheduler running");
    let (reports, progress) = sweep_to_the_end(&mut h.events, Duration::from_secs(300)).await;

    let fleet: HashSet<&str> = sim.fleet().vehicles.iter().map(|v| v.id.as_str()).collect();
    let reported: HashSet<&str> = reports.keys().map(String::as_str).collect();
    assert_eq!(reported, fleet, "every vehicle has a report, no stranger");
    let repeated: Vec<_> = reports.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "reported twice: {repeated:?}");
    assert_eq!(progress.done, 5_000);
    assert_eq!(progress.total, 5_000);

    let stats = sim.stats();
    assert!(stats.faults_total > 0, "the server did fail");
    assert_eq!(
        progress.requests_sent, stats.requests_total,
        "every request that reached the server is counted, the listing's pages too, and nothing else"
    );
    let planned: u64 = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| {
            let known = KnownVehicle {
                attributes: Some(VehicleAttributes {
                    id: v.id.clone(),
                    make: v.make.clone(),
                    model: v.model.clone(),
                    year: v.year,
                }),
                vin: None,
            };
            // With attributes to fetch first: one more request than a known make needs.
            u64::from(plan.worst_case(&known).requests) + 1
        })
        .sum();
    assert!(
        progress.requests_sent <= u64::from(max_tries) * planned,
        "{} requests for {planned} planned",
        progress.requests_sent
    );
    assert!(progress.requests_sent > planned, "faults were retried");
    let _ = h.commands.send(Command::Shutdown);
    let _ = h.join.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_budget_keeps_the_server_from_ever_answering_429() {
    let limit = AppRateLimit {
        burst: 20,
        refill_per_min: 600.0,
    };
    let sim = start_sim(SimConfig {
        vehicles: 50,
        seed: 5,
        app_rate_limit: Some(limit),
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    })
    .await;
    let client =
        Client::new(Origins::all(sim.origin()), ClientSettings::default()).expect("client builds");
    let config = SchedulerConfig {
        rate: Some(RateBudget {
            burst: f64::from(limit.burst),
            refill_per_min: limit.refill_per_min,
        }),
        data: vec![DataKind::Odometer, DataKind::Location, DataKind::Vin],
        ..SchedulerConfig::default()
    };
    let mut h = fetch::spawn(client, amt_source(&sim), config);
    let started = std::time::Instant::now();
    h.commands
        .send(Command::StartSweep { force: false })
        .expect("scheduler running");
    let (reports, progress) = sweep_to_the_end(&mut h.events, Duration::from_secs(120)).await;
    let elapsed = started.elapsed().as_secs_f64();

    assert_eq!(reports.len(), 50);
    let stats = sim.stats();
    assert_eq!(stats.rate_limited_app, 0, "the server never had to say 429");
    let allowed = f64::from(limit.burst) + elapsed * limit.refill_per_min / 60.0;
    let sent =
        (stats.requests_total - stats.by_endpoint.get("management").copied().unwrap_or(0)) as f64;
    assert!(
        sent <= allowed,
        "{sent} requests in {elapsed:.1} s, {allowed:.1} allowed"
    );
    // The listing's pages pass outside the budget, and are counted too.
    assert_eq!(progress.requests_sent, stats.requests_total);
    let _ = h.commands.send(Command::Shutdown);
    let _ = h.join.await;
}
