//! The scheduler against the real simulator over loopback: economy, round trips, priorities,
//! Retry-After, sources without tokens, and what a bad source says.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use vtriage::fetch::{
    self, Command, Event, Priority, Progress, RateBudget, SchedulerConfig, SchedulerHandle, Source,
};
use vtriage::sim::{self, Latency, SimConfig, SimHandle, SimVehicle, Situation};
use vtriage::smartcar::{
    Answer, Client, ClientSettings, DataKind, ErrorCode, ErrorType, Origins, Probe, ProbeReport,
    Secret, VehicleAttributes,
};

const WAIT: Duration = Duration::from_secs(60);

async fn start_sim(config: SimConfig) -> SimHandle {
    sim::spawn(config, "127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("simulator starts")
}

fn sim_config(vehicles: usize) -> SimConfig {
    SimConfig {
        vehicles,
        seed: 11,
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    }
}

fn client(origin: &str) -> Client {
    Client::new(Origins::all(origin), ClientSettings::default()).expect("client builds")
}

fn all_tokens(sim: &SimHandle) -> HashMap<String, Secret> {
    sim.tokens()
        .iter()
        .map(|(user, token)| (user.clone(), Secret::new(token)))
        .collect()
}

fn amt_source(sim: &SimHandle) -> Source {
    Source {
        amt: Some(Secret::new(sim.amt())),
        tokens: all_tokens(sim),
        single_token: None,
        tokens_command: None,
    }
}

fn quick_config() -> SchedulerConfig {
    SchedulerConfig {
        rate: None,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        ..SchedulerConfig::default()
    }
}

/// Waits for the first event `pick` accepts, failing the test after a minute.
async fn until<T>(
    events: &mut UnboundedReceiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.recv().await {
            if let Some(t) = pick(&event) {
                return Some(t);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(t)) => t,
        Ok(None) => panic!("the scheduler stopped before the expected event"),
        Err(_) => panic!("no expected event within {WAIT:?}"),
    }
}

async fn listed(events: &mut UnboundedReceiver<Event>) -> usize {
    until(events, |e| match e {
        Event::ConnectionsListed { connections } => Some(connections.len()),
        Event::SourceError { message } => panic!("source failed: {message}"),
        _ => None,
    })
    .await
}

async fn report_of(events: &mut UnboundedReceiver<Event>, vehicle_id: &str) -> ProbeReport {
    until(events, |e| match e {
        Event::Observed { report } if report.vehicle_id == vehicle_id => Some(report.clone()),
        _ => None,
    })
    .await
}

fn probe(handle: &SchedulerHandle, ids: &[&str], priority: Priority, force: bool) {
    handle
        .commands
        .send(Command::Probe {
            vehicle_ids: ids.iter().map(|s| s.to_string()).collect(),
            priority,
            force,
        })
        .expect("scheduler running");
}

fn pick(sim: &SimHandle, what: impl Fn(&SimVehicle) -> bool) -> &SimVehicle {
    sim.fleet()
        .vehicles
        .iter()
        .find(|v| what(v))
        .expect("the seeded fleet has such a vehicle")
}

fn requests_to(sim: &SimHandle, vehicle_id: &str) -> u64 {
    sim.vehicle_requests(vehicle_id).unwrap_or(0)
}

async fn stop(handle: SchedulerHandle) {
    let _ = handle.commands.send(Command::Shutdown);
    let _ = handle.join.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_tesla_diagnosis_costs_three_requests_and_a_repeat_costs_none() {
    let sim = start_sim(sim_config(200)).await;
    let mut h = fetch::spawn(client(sim.origin()), amt_source(&sim), quick_config());
    listed(&mut h.events).await;
    let car = pick(&sim, |v| !v.is_tesla() && v.situation == Situation::Healthy);

    probe(&h, &[&car.id], Priority::Focus, false);
    let first = report_of(&mut h.events, &car.id).await;
    assert_eq!(requests_to(&sim, &car.id), 3);
    assert!(first.has_token);
    assert_eq!(
        first.attributes.as_ref().map(|a| a.make.as_str()),
        Some(car.make.as_str())
    );
    assert!(first.get(Probe::Permissions).is_some());
    for kind in [DataKind::Odometer, DataKind::Location] {
        let o = first.get(Probe::Data(kind)).expect("data observed");
        assert!(o.answer().is_some(), "{kind:?}: {:?}", o.outcome);
        assert!(o.meta.data_age.is_some());
    }
    assert!(first.get(Probe::VirtualKey).is_none());

    // Inside the freshness window the same report comes back without a request.
    probe(&h, &[&car.id], Priority::Focus, false);
    let again = report_of(&mut h.events, &car.id).await;
    assert_eq!(again, first);
    assert_eq!(requests_to(&sim, &car.id), 3);

    // Forced: attributes are never fetched twice.
    probe(&h, &[&car.id], Priority::Focus, true);
    let forced = report_of(&mut h.events, &car.id).await;
    assert_eq!(requests_to(&sim, &car.id), 5);
    assert!(forced.get(Probe::Attributes).is_none());
    assert!(forced.attributes.is_some());
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tesla_on_first_sight_costs_five_requests_with_key_and_access() {
    let sim = start_sim(sim_config(200)).await;
    let mut h = fetch::spawn(client(sim.origin()), amt_source(&sim), quick_config());
    listed(&mut h.events).await;
    let car = pick(&sim, |v| {
        v.is_tesla() && v.situation == Situation::VirtualKeyMissing
    });

    probe(&h, &[&car.id], Priority::Focus, false);
    let report = report_of(&mut h.events, &car.id).await;
    assert_eq!(requests_to(&sim, &car.id), 5);
    assert_eq!(report.is_tesla(), Some(true));
    assert!(matches!(
        report.get(Probe::VirtualKey).and_then(|o| o.answer()),
        Some(Answer::VirtualKey { is_paired: false })
    ));
    assert!(matches!(
        report.get(Probe::TeslaUserAccess).and_then(|o| o.answer()),
        Some(Answer::TeslaUserAccess(_))
    ));
    let data_error = report
        .get(Probe::Data(DataKind::Odometer))
        .and_then(|o| o.error())
        .and_then(|e| e.smartcar())
        .map(|e| e.type_code());
    assert_eq!(
        data_error.as_deref(),
        Some("CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED")
    );
    stop(h).await;
}

/// One round trip: every request went out at about the same moment. With 300 ms per vehicle call,
/// a second round starts at least 300 ms after the first.
fn one_round_trip(report: &ProbeReport) -> bool {
    let sent: Vec<jiff::Timestamp> = report
        .observations
        .iter()
        .map(|o| {
            o.at.checked_sub(jiff::SignedDuration::from_millis(o.meta.latency_ms as i64))
                .unwrap_or(o.at)
        })
        .collect();
    match (sent.iter().min(), sent.iter().max()) {
        (Some(first), Some(last)) => {
            last.duration_since(*first) < jiff::SignedDuration::from_millis(150)
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_make_asks_everything_in_one_round_trip() {
    let sim = start_sim(SimConfig {
        latency: Latency::Fixed {
            ms: 300,
            jitter_ms: 0,
        },
        ..sim_config(200)
    })
    .await;
    let mut h = fetch::spawn(client(sim.origin()), amt_source(&sim), quick_config());
    listed(&mut h.events).await;
    let mut teslas = sim
        .fleet()
        .vehicles
        .iter()
        .filter(|v| v.is_tesla() && v.situation == Situation::Healthy);
    let (from_snapshot, from_vin, unknown) = (
        teslas.next().expect("a healthy Tesla"),
        teslas.next().expect("a second healthy Tesla"),
        teslas.next().expect("a third healthy Tesla"),
    );
    h.commands
        .send(Command::KnownAttributes(vec![VehicleAttributes {
            id: from_snapshot.id.clone(),
            make: from_snapshot.make.clone(),
            model: from_snapshot.model.clone(),
            year: from_snapshot.year,
        }]))
        .expect("scheduler running");
    h.commands
        .send(Command::KnownVins(vec![(
            from_vin.id.clone(),
            from_vin.vin.clone(),
        )]))
        .expect("scheduler running");

    probe(&h, &[&from_snapshot.id], Priority::Focus, false);
    let r = report_of(&mut h.events, &from_snapshot.id).await;
    assert_eq!(
        requests_to(&sim, &from_snapshot.id),
        4,
        "no attributes call"
    );
    assert!(r.get(Probe::VirtualKey).is_some());
    assert!(one_round_trip(&r), "{:#?}", r.observations);

    probe(&h, &[&from_vin.id], Priority::Focus, false);
    let r = report_of(&mut h.events, &from_vin.id).await;
    assert_eq!(requests_to(&sim, &from_vin.id), 5);
    assert!(r.get(Probe::VirtualKey).is_some());
    assert!(one_round_trip(&r), "{:#?}", r.observations);

    probe(&h, &[&unknown.id], Priority::Focus, false);
    let r = report_of(&mut h.events, &unknown.id).await;
    assert!(
        !one_round_trip(&r),
        "an unknown make needs the second round"
    );
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn focus_probe_finishes_before_queued_sweep_probes() {
    let sim = start_sim(SimConfig {
        latency: Latency::Fixed {
            ms: 20,
            jitter_ms: 0,
        },
        ..sim_config(80)
    })
    .await;
    let config = SchedulerConfig {
        concurrency: 1,
        ..quick_config()
    };
    let mut h = fetch::spawn(client(sim.origin()), amt_source(&sim), config);
    listed(&mut h.events).await;
    let expired: Vec<&str> = sim
        .fleet()
        .users
        .iter()
        .filter(|u| u.token_expired)
        .map(|u| u.id.as_str())
        .collect();
    let last = sim
        .fleet()
        .vehicles
        .iter()
        .rev()
        .find(|v| !expired.contains(&v.user_id.as_str()))
        .expect("a vehicle with a working token");

    h.commands
        .send(Command::StartSweep { force: false })
        .expect("scheduler running");
    until(&mut h.events, |e| {
        matches!(e, Event::Observed { .. }).then_some(())
    })
    .await;
    probe(&h, &[&last.id], Priority::Focus, false);
    let mut sweep_reports_before_focus = 0;
    until(&mut h.events, |e| match e {
        Event::Observed { report } if report.vehicle_id == last.id => Some(()),
        Event::Observed { .. } => {
            sweep_reports_before_focus += 1;
            None
        }
        _ => None,
    })
    .await;
    // Only the sweep probes already started (at most two per slot) may finish first.
    assert!(
        sweep_reports_before_focus <= 2,
        "{sweep_reports_before_focus} sweep reports came before the focused one"
    );
    h.commands
        .send(Command::CancelSweep)
        .expect("scheduler running");
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_over_its_hourly_limit_is_rescheduled_not_failed() {
    let sim = start_sim(SimConfig {
        // The first probe reads odometer, location and (once) the VIN: three calls.
        vehicle_calls_per_hour: 3,
        ..sim_config(200)
    })
    .await;
    let config = SchedulerConfig {
        max_inline_wait: Duration::from_secs(5),
        ..quick_config()
    };
    let mut h = fetch::spawn(client(sim.origin()), amt_source(&sim), config);
    listed(&mut h.events).await;
    let car = pick(&sim, |v| !v.is_tesla() && v.situation == Situation::Healthy);

    probe(&h, &[&car.id], Priority::Focus, false);
    let good = report_of(&mut h.events, &car.id).await;
    assert!(
        good.get(Probe::Data(DataKind::Odometer))
            .is_some_and(|o| o.answer().is_some())
    );

    // Every data call of the hour is spent: Smartcar answers 429 with a Retry-After of about an hour.
    probe(&h, &[&car.id], Priority::Focus, true);
    let limited = report_of(&mut h.events, &car.id).await;
    let error = limited
        .get(Probe::Data(DataKind::Odometer))
        .and_then(|o| o.error())
        .and_then(|e| e.smartcar())
        .cloned()
        .expect("the data call was refused");
    assert!(error.is(&ErrorType::RateLimit, Some(&ErrorCode::Vehicle)));
    assert!(error.retry_after_s.is_some_and(|s| s > 5));
    let after_limit = requests_to(&sim, &car.id);
    // Refused once, not retried three times.
    assert_eq!(after_limit, 5);
    let progress = until(&mut h.events, |e| match e {
        Event::Progress(p) if p.done == p.total => Some(p.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        progress.errors, 0,
        "a rate-limited vehicle is not a failure"
    );

    // Until the Retry-After passes, even a forced probe gets the last report and sends nothing.
    probe(&h, &[&car.id], Priority::Focus, true);
    let held = report_of(&mut h.events, &car.id).await;
    assert_eq!(held, limited);
    assert_eq!(requests_to(&sim, &car.id), after_limit);
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_without_token_is_reported_without_requests() {
    let sim = start_sim(sim_config(60)).await;
    let tokenless_user = sim.fleet().users.first().expect("a user").id.clone();
    let mut source = amt_source(&sim);
    source.tokens.remove(&tokenless_user);
    let mut h = fetch::spawn(client(sim.origin()), source, quick_config());
    let connections = until(&mut h.events, |e| match e {
        Event::ConnectionsListed { connections } => Some(connections.clone()),
        _ => None,
    })
    .await;
    assert_eq!(connections.len(), 60);
    let tokenless: Vec<&str> = connections
        .iter()
        .filter(|c| !c.has_token)
        .map(|c| c.connection.vehicle_id.as_str())
        .collect();
    assert!(!tokenless.is_empty());
    assert!(
        connections
            .iter()
            .all(|c| c.has_token == (c.connection.user_id != tokenless_user))
    );

    probe(&h, &tokenless, Priority::Visible, false);
    for id in &tokenless {
        let r = report_of(&mut h.events, id).await;
        assert!(!r.has_token);
        assert!(r.observations.is_empty());
        assert_eq!(r.user_id.as_deref(), Some(tokenless_user.as_str()));
        assert_eq!(requests_to(&sim, id), 0);
    }
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_skips_the_tesla_round() {
    let sim = start_sim(sim_config(400)).await;
    let mut h = fetch::spawn(client(sim.origin()), amt_source(&sim), quick_config());
    listed(&mut h.events).await;
    let car = pick(&sim, |v| {
        v.situation == Situation::TokenExpired && v.is_tesla()
    });
    probe(&h, &[&car.id], Priority::Focus, false);
    let r = report_of(&mut h.events, &car.id).await;
    assert!(r.get(Probe::VirtualKey).is_none());
    assert!(r.observations.iter().all(|o| o.meta.status == 401));
    assert_eq!(
        r.observations.len(),
        5,
        "attributes, permissions, two data items and the VIN"
    );
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_amt_list_each_users_vehicles() {
    let sim = start_sim(sim_config(40)).await;
    let source = Source {
        amt: None,
        tokens: all_tokens(&sim),
        single_token: None,
        tokens_command: None,
    };
    let mut h = fetch::spawn(client(sim.origin()), source, quick_config());
    let connections = until(&mut h.events, |e| match e {
        Event::ConnectionsListed { connections } => Some(connections.clone()),
        Event::SourceError { message } => panic!("{message}"),
        _ => None,
    })
    .await;
    let reachable = sim
        .fleet()
        .vehicles
        .iter()
        .filter(|v| v.situation != Situation::TokenExpired)
        .count();
    assert_eq!(connections.len(), reachable);
    for c in &connections {
        let v = sim
            .fleet()
            .vehicle(&c.connection.vehicle_id)
            .expect("listed vehicle exists");
        assert_eq!(v.user_id, c.connection.user_id);
        assert!(c.has_token);
    }
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_management_token_is_one_clear_line() {
    let sim = start_sim(sim_config(10)).await;
    let mut source = amt_source(&sim);
    source.amt = Some(Secret::new("not-the-amt"));
    let mut h = fetch::spawn(client(sim.origin()), source, quick_config());
    let message = until(&mut h.events, |e| match e {
        Event::SourceError { message } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert!(
        message.starts_with("the management token was rejected (401)"),
        "{message}"
    );
    assert!(!message.contains('\n'));
    assert!(!message.contains("not-the-amt"));
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_origin_is_one_clear_line() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("address").port()
    };
    let origin = format!("http://127.0.0.1:{port}");
    let source = Source {
        amt: Some(Secret::new("amt")),
        ..Source::default()
    };
    let mut h = fetch::spawn(client(&origin), source, quick_config());
    let message = until(&mut h.events, |e| match e {
        Event::SourceError { message } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        message,
        format!("cannot reach {origin}: connection refused")
    );
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_estimate_counts_requests_at_the_budget() {
    let sim = start_sim(sim_config(300)).await;
    let config = SchedulerConfig {
        rate: Some(RateBudget::SMARTCAR_DEFAULT),
        ..quick_config()
    };
    let mut h = fetch::spawn(client(sim.origin()), amt_source(&sim), config);
    listed(&mut h.events).await;
    h.commands
        .send(Command::EstimateSweep)
        .expect("scheduler running");
    let (requests, eta_s) = until(&mut h.events, |e| match e {
        Event::SweepCost { requests, eta_s } => Some((*requests, *eta_s)),
        _ => None,
    })
    .await;
    // Nothing is known yet: each vehicle may be a Tesla (attributes, permissions, batch, key, access).
    assert_eq!(requests, 300 * 5);
    // 119 now (one is held back for requests on the wire), the rest at 2 per minute.
    assert_eq!(eta_s, (1_500 - 119) * 30);
    assert_eq!(
        sim.stats().requests_total,
        3,
        "listing only: three management pages"
    );
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_sweep_drops_its_queued_work() {
    let sim = start_sim(sim_config(60)).await;
    let config = SchedulerConfig {
        concurrency: 2,
        rate: Some(RateBudget {
            burst: 6.0,
            refill_per_min: 120.0,
        }),
        ..quick_config()
    };
    let mut h = fetch::spawn(client(sim.origin()), amt_source(&sim), config);
    listed(&mut h.events).await;
    h.commands
        .send(Command::StartSweep { force: false })
        .expect("scheduler running");
    until(&mut h.events, |e| {
        matches!(e, Event::Observed { .. }).then_some(())
    })
    .await;
    h.commands
        .send(Command::CancelSweep)
        .expect("scheduler running");
    let mut observed = 1;
    let last: Progress = until(&mut h.events, |e| match e {
        Event::Observed { .. } => {
            observed += 1;
            None
        }
        Event::Progress(p) if p.in_flight == 0 && p.done == p.total => Some(p.clone()),
        _ => None,
    })
    .await;
    assert!(observed < 60, "{observed} reports: the sweep went on");
    assert_eq!(last.done, observed);
    assert_eq!(last.total, observed);
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_request_joins_the_probe_in_flight() {
    let sim = start_sim(SimConfig {
        latency: Latency::Fixed {
            ms: 200,
            jitter_ms: 0,
        },
        ..sim_config(100)
    })
    .await;
    let mut h = fetch::spawn(client(sim.origin()), amt_source(&sim), quick_config());
    listed(&mut h.events).await;
    let car = pick(&sim, |v| !v.is_tesla() && v.situation == Situation::Healthy);
    probe(&h, &[&car.id], Priority::Sweep, false);
    until(&mut h.events, |e| {
        matches!(e, Event::ProbeStarted { vehicle_id, .. } if *vehicle_id == car.id).then_some(())
    })
    .await;
    probe(&h, &[&car.id], Priority::Focus, true);
    probe(&h, &[&car.id], Priority::Visible, false);
    report_of(&mut h.events, &car.id).await;
    let progress = until(&mut h.events, |e| match e {
        Event::Progress(p) if p.in_flight == 0 && p.done == p.total => Some(p.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (progress.done, progress.total),
        (1, 1),
        "one probe, one report"
    );
    assert_eq!(requests_to(&sim, &car.id), 3);
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_access_token_runs_tokens_command_again_and_the_fresh_token_reads_the_car() {
    let sim = start_sim(sim_config(60)).await;
    let car = pick(&sim, |v| !v.is_tesla() && v.situation == Situation::Healthy).clone();
    // What the command prints: every user's current token.
    let dir = std::env::temp_dir().join(format!("vtriage-tokens-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let csv = dir.join("tokens.csv");
    let mut text = String::from("user_id,access_token\n");
    for (u, t) in sim.tokens() {
        text.push_str(&format!("{u},{t}\n"));
    }
    std::fs::write(&csv, text).expect("write");
    // The tokens read at start have gone stale for this car's owner.
    let mut source = amt_source(&sim);
    source
        .tokens
        .insert(car.user_id.clone(), Secret::new("expired-two-hours-ago"));
    source.tokens_command = Some(vec!["cat".into(), csv.to_string_lossy().to_string()]);
    let mut h = fetch::spawn(client(sim.origin()), source, quick_config());
    listed(&mut h.events).await;

    probe(&h, &[&car.id], Priority::Focus, false);
    let report = report_of(&mut h.events, &car.id).await;
    assert!(
        report.observations.iter().all(|o| !o.is_token_rejected()),
        "read with the fresh token: {:?}",
        report.observations
    );
    assert!(!report.observations.is_empty());
    stop(h).await;
    let _ = std::fs::remove_dir_all(&dir);
}
