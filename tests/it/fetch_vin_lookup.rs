//! Finding a vehicle by a VIN nobody has read yet, against the real simulator over loopback, on
//! v2.0 and v3: only vehicles whose make and year fit are read, nearest first, one request each,
//! the cost is said before the first request, and the lookup stops at the match.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use vtriage::fetch::{self, Command, Event, SchedulerConfig, SchedulerHandle, Source};
use vtriage::sim::{self, SimConfig, SimHandle, SimVehicle, Situation};
use vtriage::smartcar::v3::{AppCredentials, V3Client, V3Origins};
use vtriage::smartcar::vin::{self, DecodedVin};
use vtriage::smartcar::{Client, ClientSettings, Origins, Secret, VehicleAttributes};

const WAIT: Duration = Duration::from_secs(60);
const THIS_YEAR: i16 = 2025;

async fn start_sim(vehicles: usize) -> SimHandle {
    sim::spawn(
        SimConfig {
            vehicles,
            seed: 11,
            vehicle_calls_per_hour: 0,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().expect("loopback"),
    )
    .await
    .expect("simulator starts")
}

fn one_at_a_time() -> SchedulerConfig {
    SchedulerConfig {
        concurrency: 1,
        rate: None,
        per_vehicle_per_hour: 1_000,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        ..SchedulerConfig::default()
    }
}

fn v3(sim: &SimHandle) -> SchedulerHandle {
    let config = sim.config();
    let client = V3Client::new(
        V3Origins::all(sim.origin()),
        AppCredentials::new(
            config.client_id.clone(),
            Secret::new(config.client_secret.clone()),
        ),
        ClientSettings::default(),
    )
    .expect("client builds");
    fetch::spawn(client, Source::default(), one_at_a_time())
}

/// A v2.0 scheduler listing through the Management API, told each vehicle's make and year as a
/// snapshot of an earlier session would (the Management API lists neither).
fn v2_knowing_makes(sim: &SimHandle) -> SchedulerHandle {
    let client =
        Client::new(Origins::all(sim.origin()), ClientSettings::default()).expect("client builds");
    let source = Source {
        amt: Some(Secret::new(sim.amt())),
        tokens: sim
            .tokens()
            .iter()
            .map(|(user, token)| (user.clone(), Secret::new(token)))
            .collect(),
        ..Source::default()
    };
    let h = fetch::spawn(client, source, one_at_a_time());
    let known = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| VehicleAttributes {
            id: v.id.clone(),
            make: v.make.clone(),
            model: v.model.clone(),
            year: v.year,
        })
        .collect();
    h.commands
        .send(Command::KnownAttributes(known))
        .expect("scheduler running");
    h
}

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

/// The vehicle ids in listing order.
async fn listed(events: &mut UnboundedReceiver<Event>) -> Vec<String> {
    until(events, |e| match e {
        Event::ConnectionsListed { connections } => Some(
            connections
                .iter()
                .map(|c| c.connection.vehicle_id.clone())
                .collect(),
        ),
        Event::SourceError { message } => panic!("source failed: {message}"),
        _ => None,
    })
    .await
}

/// What a lookup said it would cost, how it ended, and the VINs it taught on the way.
struct Lookup {
    announced: u64,
    found: Option<String>,
    requests: u64,
    learned: Vec<(String, String)>,
}

async fn find(h: &mut SchedulerHandle, vin: &DecodedVin) -> Lookup {
    h.commands
        .send(Command::FindVin { vin: vin.clone() })
        .expect("scheduler running");
    let mut announced = None;
    let mut learned = Vec::new();
    let (found, requests) = until(&mut h.events, |e| match e {
        Event::VinLookupPlanned { requests, .. } => {
            assert!(announced.is_none(), "the cost is said once");
            assert!(learned.is_empty(), "the cost is said before any read");
            announced = Some(*requests);
            None
        }
        Event::VinsLearned { vins } => {
            learned.extend(vins.iter().cloned());
            None
        }
        Event::VinLookupDone {
            vehicle_id,
            requests,
            ..
        } => Some((vehicle_id.clone(), *requests)),
        _ => None,
    })
    .await;
    Lookup {
        announced: announced.expect("the cost was said before the end"),
        found,
        requests,
        learned,
    }
}

fn vehicle_requests(sim: &SimHandle) -> u64 {
    sim.fleet()
        .vehicles
        .iter()
        .map(|v| sim.vehicle_requests(&v.id).unwrap_or(0))
        .sum()
}

/// Whether a fleet vehicle's make and year fit a VIN.
fn fits(vin: &DecodedVin, v: &SimVehicle) -> bool {
    vin.fits_make(&v.make) == Some(true) && vin.fits_year(v.year) == Some(true)
}

/// The first listed healthy vehicle whose make and year are shared by later-listed vehicles, and
/// how many vehicles of its make and year are listed before it.
fn target<'a>(sim: &'a SimHandle, order: &[String]) -> (&'a SimVehicle, u64) {
    let by_id: HashMap<&str, &SimVehicle> = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| (v.id.as_str(), v))
        .collect();
    let listed: Vec<&SimVehicle> = order
        .iter()
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .collect();
    for (i, v) in listed.iter().enumerate() {
        if v.situation != Situation::Healthy {
            continue;
        }
        let decoded = vin::decode(&v.vin, THIS_YEAR).expect("simulated VINs are VINs");
        let before = listed[..i].iter().filter(|o| fits(&decoded, o)).count() as u64;
        let after = listed[i + 1..].iter().filter(|o| fits(&decoded, o)).count();
        if after >= 2 {
            return (v, before);
        }
    }
    panic!("the seeded fleet has a healthy vehicle sharing make and year")
}

async fn a_vin_never_read_is_found_within_the_announced_cost(
    mut h: SchedulerHandle,
    sim: &SimHandle,
) {
    let order = listed(&mut h.events).await;
    sim.reset_stats();
    let (car, before) = target(sim, &order);
    let decoded = vin::decode(&car.vin, THIS_YEAR).expect("a VIN");
    let fitting = sim
        .fleet()
        .vehicles
        .iter()
        .filter(|v| fits(&decoded, v))
        .count() as u64;

    let lookup = find(&mut h, &decoded).await;

    assert_eq!(lookup.found.as_deref(), Some(car.id.as_str()));
    assert_eq!(
        lookup.announced, fitting,
        "only vehicles of the VIN's make and year are candidates"
    );
    // Nearest first, one at a time, and nothing after the match.
    assert_eq!(lookup.requests, before + 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = vehicle_requests(sim);
    assert_eq!(sent, before + 1, "the lookup stopped at the match");
    assert!(sent <= lookup.announced);
    assert!(
        lookup.learned.contains(&(car.id.clone(), car.vin.clone())),
        "the VIN found is handed on for the store: {:?}",
        lookup.learned
    );

    // Asked again, the VIN is known: nothing is read.
    sim.reset_stats();
    let again = find(&mut h, &decoded).await;
    assert_eq!((again.announced, again.requests), (0, 0));
    assert_eq!(again.found.as_deref(), Some(car.id.as_str()));
    assert_eq!(vehicle_requests(sim), 0);
    let _ = h.commands.send(Command::Shutdown);
}

async fn a_vin_of_a_make_absent_from_the_fleet_costs_nothing(
    mut h: SchedulerHandle,
    sim: &SimHandle,
) {
    listed(&mut h.events).await;
    sim.reset_stats();
    // A Porsche: the simulated fleet has none.
    let porsche = vin::decode("WP0AB2A99MS000001", THIS_YEAR).expect("a VIN");
    assert!(
        sim.fleet()
            .vehicles
            .iter()
            .all(|v| porsche.fits_make(&v.make) == Some(false))
    );
    let lookup = find(&mut h, &porsche).await;
    assert_eq!(lookup.announced, 0);
    assert_eq!(lookup.found, None);
    assert_eq!(lookup.requests, 0);
    assert_eq!(vehicle_requests(sim), 0);
    let _ = h.commands.send(Command::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_finds_a_vin_never_read_reading_only_vehicles_of_its_make_and_year() {
    let sim = start_sim(300).await;
    a_vin_never_read_is_found_within_the_announced_cost(v3(&sim), &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_lookup_of_a_make_absent_from_the_fleet_sends_nothing() {
    let sim = start_sim(300).await;
    a_vin_of_a_make_absent_from_the_fleet_costs_nothing(v3(&sim), &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_finds_a_vin_never_read_reading_only_vehicles_of_its_make_and_year() {
    let sim = start_sim(300).await;
    a_vin_never_read_is_found_within_the_announced_cost(v2_knowing_makes(&sim), &sim).await;
    assert_eq!(
        sim.stats().by_endpoint.get("batch").copied().unwrap_or(0),
        0,
        "a VIN read is one GET /vehicles/{{id}}/vin, never a batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_lookup_of_a_make_absent_from_the_fleet_sends_nothing() {
    let sim = start_sim(300).await;
    a_vin_of_a_make_absent_from_the_fleet_costs_nothing(v2_knowing_makes(&sim), &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_without_known_makes_reads_every_vehicle_at_most_and_still_stops_at_the_match() {
    let sim = start_sim(40).await;
    let client =
        Client::new(Origins::all(sim.origin()), ClientSettings::default()).expect("client builds");
    let source = Source {
        amt: Some(Secret::new(sim.amt())),
        tokens: sim
            .tokens()
            .iter()
            .map(|(user, token)| (user.clone(), Secret::new(token)))
            .collect(),
        ..Source::default()
    };
    let mut h = fetch::spawn(client, source, one_at_a_time());
    let order = listed(&mut h.events).await;
    sim.reset_stats();
    let by_id: HashMap<&str, &SimVehicle> = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| (v.id.as_str(), v))
        .collect();
    // The second healthy vehicle listed: the one before it is read first, nothing after.
    let (position, car) = order
        .iter()
        .enumerate()
        .filter_map(|(i, id)| by_id.get(id.as_str()).map(|v| (i, *v)))
        .filter(|(_, v)| v.situation == Situation::Healthy)
        .nth(1)
        .expect("two healthy vehicles");
    let decoded = vin::decode(&car.vin, THIS_YEAR).expect("a VIN");
    let lookup = find(&mut h, &decoded).await;
    assert_eq!(
        lookup.announced,
        order.len() as u64,
        "no make known: every vehicle may be it"
    );
    assert_eq!(lookup.found.as_deref(), Some(car.id.as_str()));
    assert_eq!(lookup.requests, position as u64 + 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(vehicle_requests(&sim), position as u64 + 1);
    let _ = h.commands.send(Command::Shutdown);
}

/// A VIN of the make, year and plant of a fleet vehicle that no fleet vehicle has: every vehicle
/// of that make and year is a candidate, and none matches.
fn absent_vin_like(sim: &SimHandle, car: &SimVehicle) -> String {
    let fleet: Vec<&str> = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| v.vin.as_str())
        .collect();
    (0..1000u32)
        .map(|serial| {
            let mut v: Vec<u8> = car.vin.as_bytes().to_vec();
            let tail = format!("{:06}", 999_000 + serial);
            v[11..].copy_from_slice(tail.as_bytes());
            let v = String::from_utf8(v).expect("ASCII");
            let d = sim::vin::check_digit(&v).expect("VIN characters");
            let mut v = v.into_bytes();
            v[8] = d as u8;
            String::from_utf8(v).expect("ASCII")
        })
        .find(|v| !fleet.contains(&v.as_str()))
        .expect("a serial the fleet does not use")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_lookup_lists_the_candidates_it_could_not_read_instead_of_saying_no_vehicle() {
    let sim = start_sim(300).await;
    let mut h = v3(&sim);
    listed(&mut h.events).await;
    // A car whose VIN Smartcar will not give (its own 429, or its monthly quota spent).
    let car = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| {
            matches!(
                v.situation,
                Situation::RateLimited | Situation::QuotaExhausted
            ) && vin::decode(&v.vin, THIS_YEAR).is_ok_and(|d| d.make().is_some())
        })
        .expect("the seeded fleet has a car whose VIN cannot be read")
        .clone();
    let decoded = vin::decode(&car.vin, THIS_YEAR).expect("a VIN");
    h.commands
        .send(Command::FindVin { vin: decoded })
        .expect("scheduler running");
    let (found, gaps) = until(&mut h.events, |e| match e {
        Event::VinLookupDone {
            vehicle_id, gaps, ..
        } => Some((vehicle_id.clone(), gaps.clone())),
        _ => None,
    })
    .await;
    assert_eq!(found, None, "its VIN was never read");
    let unread = gaps
        .unread
        .iter()
        .find(|c| c.vehicle_id == car.id)
        .expect("the car is listed among those unread");
    let line = unread.line();
    assert!(
        line.contains(&car.make) && line.contains(&car.model) && line.contains(&car.user_id),
        "make, model and user say which car it is: {line}"
    );
    assert!(
        line.contains("429") || line.contains("quota"),
        "why it was not read: {line}"
    );
    let summary = gaps.summary(&car.vin, 1, 300);
    assert!(!summary.contains("no vehicle"), "{summary}");
    assert!(summary.contains("could not be read"), "{summary}");
    let _ = h.commands.send(Command::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_lookup_stops_at_smartcars_first_429_and_says_when_it_can_go_on() {
    let sim = sim::spawn(
        SimConfig {
            vehicles: 300,
            seed: 11,
            vehicle_calls_per_hour: 0,
            // Two reads, then the app's bucket is empty for minutes.
            app_rate_limit: Some(sim::AppRateLimit {
                burst: 2,
                refill_per_min: 0.2,
            }),
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().expect("loopback"),
    )
    .await
    .expect("simulator starts");
    let mut h = v3(&sim);
    let order = listed(&mut h.events).await;
    let (car, _) = target(&sim, &order);
    let absent = vin::decode(&absent_vin_like(&sim, car), THIS_YEAR).expect("a VIN");
    sim.reset_stats();
    let lookup_started = jiff::Timestamp::now();
    h.commands
        .send(Command::FindVin { vin: absent })
        .expect("scheduler running");
    let mut planned = 0;
    let (found, requests, gaps) = until(&mut h.events, |e| match e {
        Event::VinLookupPlanned { requests, .. } => {
            planned = *requests;
            None
        }
        Event::VinLookupDone {
            vehicle_id,
            requests,
            gaps,
            ..
        } => Some((vehicle_id.clone(), *requests, gaps.clone())),
        _ => None,
    })
    .await;
    assert!(
        planned > 3,
        "enough candidates to go past the bucket: {planned}"
    );
    assert_eq!(found, None);
    let until_at = gaps.stopped_until.expect("the lookup says it was stopped");
    assert!(until_at > lookup_started, "{until_at}");
    assert!(gaps.not_tried > 0, "{gaps:?}");
    assert!(
        requests <= 3,
        "two reads and the refused one, no more: {requests}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sim.stats().rate_limited_app,
        1,
        "one 429, not one per candidate"
    );
    let summary = gaps.summary(absent_vin_like(&sim, car).as_str(), requests, 300);
    assert!(
        summary.contains("429") && summary.contains("again after"),
        "{summary}"
    );
    assert!(!summary.contains("no vehicle"), "{summary}");
    let _ = h.commands.send(Command::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_says_the_budget_it_leaves_and_cancelled_keeps_what_it_read() {
    let sim = start_sim(300).await;
    let config = sim.config();
    let client = V3Client::new(
        V3Origins::all(sim.origin()),
        AppCredentials::new(
            config.client_id.clone(),
            Secret::new(config.client_secret.clone()),
        ),
        ClientSettings::default(),
    )
    .expect("client builds");
    // Two requests in the bucket, then one every two minutes.
    let paced = SchedulerConfig {
        rate: Some(fetch::RateBudget {
            burst: 3.0,
            refill_per_min: 0.5,
        }),
        ..one_at_a_time()
    };
    let mut h = fetch::spawn(client, Source::default(), paced);
    let order = listed(&mut h.events).await;
    let (car, _) = target(&sim, &order);
    let absent = vin::decode(&absent_vin_like(&sim, car), THIS_YEAR).expect("a VIN");
    sim.reset_stats();
    h.commands
        .send(Command::FindVin { vin: absent })
        .expect("scheduler running");
    let (planned, budget_left, eta_s) = until(&mut h.events, |e| match e {
        Event::VinLookupPlanned {
            requests,
            budget_left,
            eta_s,
            ..
        } => Some((*requests, *budget_left, *eta_s)),
        _ => None,
    })
    .await;
    assert!(planned > 2, "{planned}");
    assert_eq!(budget_left, Some(2), "the bucket's level before the lookup");
    assert!(eta_s >= 60, "the rest waits for the refill: {eta_s} s");
    let mut learned = 0;
    until(&mut h.events, |e| match e {
        Event::VinsLearned { vins } => {
            learned += vins.len() as u64;
            None
        }
        Event::VinLookupProgress { read: 2, .. } => Some(()),
        _ => None,
    })
    .await;
    h.commands
        .send(Command::CancelVinLookup)
        .expect("scheduler running");
    let (requests, gaps) = until(&mut h.events, |e| match e {
        Event::VinLookupDone { requests, gaps, .. } => Some((*requests, gaps.clone())),
        _ => None,
    })
    .await;
    assert!(gaps.cancelled);
    assert_eq!(requests, 2, "sim saw {:?}", sim.v3_stats());
    assert_eq!(gaps.not_tried, planned - 2);
    assert!(gaps.summary("X", requests, 300).contains("cancelled"));
    // What was read is kept: asked again, the VINs read are not read again.
    let again = vin::decode(&absent_vin_like(&sim, car), THIS_YEAR).expect("a VIN");
    h.commands
        .send(Command::FindVin { vin: again })
        .expect("scheduler running");
    let replanned = until(&mut h.events, |e| match e {
        Event::VinLookupPlanned { requests, .. } => Some(*requests),
        _ => None,
    })
    .await;
    assert!(learned > 0);
    assert_eq!(replanned, planned - learned);
    let _ = h.commands.send(Command::Shutdown);
}

/// What a cold lookup of each healthy Tesla of the fleet costs, the candidates ranked by `key`:
/// one request per candidate read before it, and its own.
fn mean_cost_by<K: Ord>(
    sim: &SimHandle,
    order: &[String],
    key: impl Fn(&DecodedVin, &fetch::KnownVehicle) -> Option<K>,
) -> (f64, Vec<(String, u64)>) {
    let by_id: HashMap<&str, &SimVehicle> = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| (v.id.as_str(), v))
        .collect();
    let listed: Vec<&SimVehicle> = order
        .iter()
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .collect();
    let known = |v: &SimVehicle| fetch::KnownVehicle {
        attributes: Some(VehicleAttributes {
            id: v.id.clone(),
            make: v.make.clone(),
            model: v.model.clone(),
            year: v.year,
        }),
        vin: None,
    };
    let mut costs = Vec::new();
    for (i, t) in listed.iter().enumerate() {
        if t.make != "TESLA" || !readable(t) {
            continue;
        }
        let vin = vin::decode(&t.vin, THIS_YEAR).expect("a VIN");
        let Some(own) = key(&vin, &known(t)) else {
            continue;
        };
        let own = (own, i);
        let ahead = listed
            .iter()
            .enumerate()
            .filter(|(j, o)| key(&vin, &known(o)).is_some_and(|k| (k, *j) < own))
            .count() as u64;
        costs.push((t.vin.clone(), ahead + 1));
    }
    let mean = costs.iter().map(|(_, c)| *c as f64).sum::<f64>() / costs.len().max(1) as f64;
    (mean, costs)
}

/// Whether the car is one whose VIN is read for sure (a healthy one).
fn readable(v: &SimVehicle) -> bool {
    v.situation == Situation::Healthy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_a_tesla_vin_names_lowers_the_mean_lookup_cost_over_the_fleets_teslas() {
    let sim = start_sim(300).await;
    let mut h = v3(&sim);
    let order = listed(&mut h.events).await;
    let _ = h.commands.send(Command::Shutdown);
    let (before, _) = mean_cost_by(&sim, &order, fetch::plan::vin_fit);
    let (after, costs) = mean_cost_by(&sim, &order, fetch::plan::vin_rank);
    eprintln!(
        "mean VIN lookup cost over {} Teslas of 300 cars: {before:.1} requests by make and year, {after:.1} with the model",
        costs.len()
    );
    assert!(after < before, "{after} < {before}");
    // The real scheduler spends what the ranking says, Tesla after Tesla, each lookup cold.
    for (vin, cost) in costs.iter().step_by(7) {
        let mut h = v3(&sim);
        listed(&mut h.events).await;
        let decoded = vin::decode(vin, THIS_YEAR).expect("a VIN");
        let lookup = find(&mut h, &decoded).await;
        assert!(lookup.found.is_some(), "{vin}");
        assert_eq!(lookup.requests, *cost, "{vin}");
        let _ = h.commands.send(Command::Shutdown);
    }

    let big = start_sim(2000).await;
    let mut h = v3(&big);
    let order = listed(&mut h.events).await;
    let _ = h.commands.send(Command::Shutdown);
    let (before, _) = mean_cost_by(&big, &order, fetch::plan::vin_fit);
    let (after, costs) = mean_cost_by(&big, &order, fetch::plan::vin_rank);
    eprintln!(
        "mean VIN lookup cost over {} Teslas of 2000 cars: {before:.1} requests by make and year, {after:.1} with the model",
        costs.len()
    );
    assert!(after < before, "{after} < {before}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vin_one_character_from_one_read_is_offered_as_did_you_mean() {
    let sim = start_sim(300).await;
    let mut h = v3(&sim);
    let order = listed(&mut h.events).await;
    let (car, _) = target(&sim, &order);
    let decoded = vin::decode(&car.vin, THIS_YEAR).expect("a VIN");
    let found = find(&mut h, &decoded).await;
    assert_eq!(found.found.as_deref(), Some(car.id.as_str()));
    // The last character changed: no car has it.
    let mut typo = car.vin.clone().into_bytes();
    typo[16] = if typo[16] == b'1' { b'2' } else { b'1' };
    let typo = String::from_utf8(typo).expect("ASCII");
    h.commands
        .send(Command::FindVin {
            vin: vin::decode(&typo, THIS_YEAR).expect("a VIN"),
        })
        .expect("scheduler running");
    let (vehicle_id, requests, gaps) = until(&mut h.events, |e| match e {
        Event::VinLookupDone {
            vehicle_id,
            requests,
            gaps,
            ..
        } => Some((vehicle_id.clone(), *requests, gaps.clone())),
        _ => None,
    })
    .await;
    assert_eq!(vehicle_id, None);
    assert!(
        gaps.near.contains(&(car.id.clone(), car.vin.clone())),
        "{gaps:?}"
    );
    let summary = gaps.summary(&typo, requests, 300);
    assert!(
        summary.contains(&format!("did you mean {} ({})", car.vin, car.id)),
        "{summary}"
    );
    let _ = h.commands.send(Command::Shutdown);
}
