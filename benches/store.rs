//! The store at 100,000 vehicles: applying an observation, filtering, sorting, snapshot save and
//! load, and resident memory per vehicle (printed before the benchmarks run).

use std::sync::{Arc, LazyLock};

use divan::Bencher;
use jiff::{SignedDuration, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vtriage::fetch::{ConnectionInfo, Event};
use vtriage::health::{Needs, Policies};
use vtriage::smartcar::{
    Answer, ApiError, Connection, DataKind, ErrorCode, ErrorType, Meta, Observation, Probe,
    ProbeReport, SmartcarError, TeslaUserAccess, VehicleAttributes,
};
use vtriage::store::{Diagnoser, SortColumn, Store};

const FLEET: usize = 100_000;

fn now() -> Timestamp {
    Timestamp::from_second(1_795_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let hex = |rng: &mut ChaCha8Rng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
            .collect()
    };
    format!(
        "{}-{}-{}-{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 12)
    )
}

fn vin(rng: &mut ChaCha8Rng, wmi: &str) -> String {
    let tail: String = (0..14)
        .map(|_| char::from(b"0123456789ABCDEFGHJKLMNPRSTUVWXYZ"[rng.random_range(0..33)]))
        .collect();
    format!("{wmi}{tail}")
}

const MODELS: [(&str, &str, &str, u32); 9] = [
    ("TESLA", "Model 3", "5YJ", 20),
    ("TESLA", "Model Y", "7SA", 18),
    ("TESLA", "Model S", "5YJ", 4),
    ("TESLA", "Model X", "5YJ", 3),
    ("FORD", "Mustang Mach-E", "3FM", 12),
    ("VOLKSWAGEN", "ID.4", "1V2", 12),
    ("BMW", "i4", "WBY", 10),
    ("HYUNDAI", "Ioniq 5", "KM8", 11),
    ("KIA", "EV6", "KNA", 10),
];

fn pick_model(rng: &mut ChaCha8Rng) -> (&'static str, &'static str, &'static str) {
    let total: u32 = MODELS.iter().map(|m| m.3).sum();
    let mut x = rng.random_range(0..total);
    for (make, model, wmi, weight) in MODELS {
        if x < weight {
            return (make, model, wmi);
        }
        x -= weight;
    }
    ("KIA", "EV6", "KNA")
}

fn ok(
    probe: Probe,
    vehicle_id: &str,
    at: Timestamp,
    answer: Answer,
    rng: &mut ChaCha8Rng,
) -> Observation {
    Observation {
        probe,
        endpoint: probe.endpoint(vehicle_id, false),
        at,
        meta: Meta {
            status: 200,
            request_id: Some(uuid(rng)),
            data_age: Some(at - SignedDuration::from_secs(120)),
            fetched_at: Some(at),
            retry_after_s: None,
            latency_ms: rng.random_range(800..20_000),
            webhook: None,
        },
        outcome: Ok(answer),
    }
}

fn failed(
    probe: Probe,
    vehicle_id: &str,
    at: Timestamp,
    error_type: ErrorType,
    code: ErrorCode,
    rng: &mut ChaCha8Rng,
) -> Observation {
    let request_id = uuid(rng);
    Observation {
        probe,
        endpoint: probe.endpoint(vehicle_id, true),
        at,
        meta: Meta {
            status: 400,
            request_id: Some(request_id.clone()),
            ..Meta::default()
        },
        outcome: Err(ApiError::Smartcar(Box::new(SmartcarError {
            status: 400,
            error_type,
            code: Some(code),
            description:
                "The vehicle requires a virtual key to be added before it can be accessed.".into(),
            doc_url: Some(
                "https://smartcar.com/docs/errors/api-errors/connected-services-account-errors"
                    .into(),
            ),
            request_id: Some(request_id),
            resolution: None,
            suggested_user_message: None,
            detail: None,
            retry_after_s: None,
        }))),
    }
}

/// What the synthetic vehicle's probes return.
#[derive(Clone, Copy, PartialEq)]
enum Case {
    Healthy,
    VirtualKeyMissing,
    LocationPermission,
    Asleep,
}

fn probe_report(
    vehicle_id: &str,
    user_id: &str,
    attrs: &VehicleAttributes,
    vin: &str,
    case: Case,
    at: Timestamp,
    rng: &mut ChaCha8Rng,
) -> ProbeReport {
    let tesla = attrs.is_tesla();
    let mut observations = vec![
        ok(
            Probe::Attributes,
            vehicle_id,
            at,
            Answer::Attributes(attrs.clone()),
            rng,
        ),
        ok(
            Probe::Permissions,
            vehicle_id,
            at,
            Answer::Permissions {
                permissions: vec![
                    "read_location".into(),
                    "read_odometer".into(),
                    "read_vin".into(),
                ],
            },
            rng,
        ),
    ];
    match case {
        Case::VirtualKeyMissing => {
            observations.push(failed(
                Probe::Data(DataKind::Odometer),
                vehicle_id,
                at,
                ErrorType::ConnectedServicesAccount,
                ErrorCode::VirtualKeyRequired,
                rng,
            ));
            observations.push(ok(
                Probe::VirtualKey,
                vehicle_id,
                at,
                Answer::VirtualKey { is_paired: false },
                rng,
            ));
        }
        Case::Asleep => {
            observations.push(failed(
                Probe::Data(DataKind::Odometer),
                vehicle_id,
                at,
                ErrorType::VehicleState,
                ErrorCode::Asleep,
                rng,
            ));
        }
        Case::LocationPermission => {
            observations.push(ok(
                Probe::Data(DataKind::Odometer),
                vehicle_id,
                at,
                Answer::Data {
                    body: serde_json::json!({"distance": 10432.5}),
                },
                rng,
            ));
            observations.push(failed(
                Probe::Data(DataKind::Location),
                vehicle_id,
                at,
                ErrorType::Permission,
                ErrorCode::Permission,
                rng,
            ));
            observations.push(ok(
                Probe::TeslaUserAccess,
                vehicle_id,
                at,
                Answer::TeslaUserAccess(TeslaUserAccess {
                    access_type: Some("OWNER".into()),
                    permissions: Some(vec!["vehicle_device_data".into()]),
                }),
                rng,
            ));
        }
        Case::Healthy => {
            observations.push(ok(
                Probe::Data(DataKind::Odometer),
                vehicle_id,
                at,
                Answer::Data {
                    body: serde_json::json!({"distance": 10432.5}),
                },
                rng,
            ));
            if tesla {
                observations.push(ok(
                    Probe::VirtualKey,
                    vehicle_id,
                    at,
                    Answer::VirtualKey { is_paired: true },
                    rng,
                ));
            }
        }
    }
    ProbeReport {
        vehicle_id: vehicle_id.to_string(),
        user_id: Some(user_id.to_string()),
        has_token: true,
        attributes: Some(attrs.clone()),
        vin: Some(vin.to_string()),
        observations,
    }
}

/// The real diagnosis with the built-in rules and default needs: findings, evidence, remedies,
/// customer replies and re-authentication links as the dashboard keeps them.
fn diagnoser() -> Diagnoser {
    let policies = Policies::builtin();
    let needs = Needs::default();
    Arc::new(move |report, now| vtriage::health::diagnose(report, &policies, &needs, now))
}

/// The synthetic fleet: listing plus one probe report per checked vehicle.
struct Fleet {
    connections: Vec<ConnectionInfo>,
    reports: Vec<ProbeReport>,
    /// Reports with a different outcome than the fleet's, to apply in the benchmarks.
    updates: Vec<ProbeReport>,
}

/// Generates the fleet vehicle by vehicle: its listing entry, its probe report when it was
/// checked (`checked_percent` of those with a token; 3% have none), and for every 97th vehicle
/// a report with another outcome to apply in the benchmarks.
fn generate(
    checked_percent: u32,
    mut each: impl FnMut(ConnectionInfo, Option<ProbeReport>, Option<ProbeReport>),
) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut user = uuid(&mut rng);
    for i in 0..FLEET {
        if rng.random_range(0..10) < 7 {
            user = uuid(&mut rng);
        }
        let vehicle_id = uuid(&mut rng);
        let has_token = rng.random_range(0..100) >= 3;
        let (make, model, wmi) = pick_model(&mut rng);
        let attrs = VehicleAttributes {
            id: vehicle_id.clone(),
            make: make.into(),
            model: model.into(),
            year: rng.random_range(2018..2026),
        };
        let vin = vin(&mut rng, wmi);
        let at = now() - SignedDuration::from_secs(rng.random_range(0..30 * 86_400));
        let roll = rng.random_range(0..100);
        let case = match roll {
            0..25 if attrs.is_tesla() => Case::VirtualKeyMissing,
            25..35 if attrs.is_tesla() => Case::LocationPermission,
            35..45 => Case::Asleep,
            _ => Case::Healthy,
        };
        let report = (has_token && rng.random_range(0..100) < checked_percent)
            .then(|| probe_report(&vehicle_id, &user, &attrs, &vin, case, at, &mut rng));
        let update = (has_token && i % 97 == 0).then(|| {
            let flipped = if case == Case::Healthy {
                Case::Asleep
            } else {
                Case::Healthy
            };
            probe_report(&vehicle_id, &user, &attrs, &vin, flipped, now(), &mut rng)
        });
        let connection = ConnectionInfo {
            connection: Connection {
                user_id: user.clone(),
                vehicle_id,
                connected_at: Some("2024-06-01T10:00:00.000Z".into()),
                mode: Some("live".into()),
            },
            has_token,
            other_users: Vec::new(),
            attributes: None,
        };
        each(connection, report, update);
    }
}

fn fleet(checked_percent: u32) -> Fleet {
    let mut fleet = Fleet {
        connections: Vec::with_capacity(FLEET),
        reports: Vec::new(),
        updates: Vec::new(),
    };
    generate(checked_percent, |c, r, u| {
        fleet.connections.push(c);
        fleet.reports.extend(r);
        fleet.updates.extend(u);
    });
    fleet
}

fn build_store(fleet: &Fleet) -> Store {
    let mut store = Store::new(diagnoser());
    vtriage::feed::apply(
        &mut store,
        &Event::ConnectionsListed {
            connections: fleet.connections.clone(),
        },
        now(),
    );
    for report in &fleet.reports {
        vtriage::feed::apply(
            &mut store,
            &Event::Observed {
                report: report.clone(),
            },
            now(),
        );
    }
    store
}

/// Every vehicle probed: the worst case for memory and snapshot size.
static FULL: LazyLock<(Fleet, Store)> = LazyLock::new(|| {
    let fleet = fleet(100);
    let store = build_store(&fleet);
    (fleet, store)
});

/// A tenth of the vehicles probed: a 100k fleet after about two weeks of background sweeping
/// within Smartcar's default rate budget.
static TENTH: LazyLock<Store> = LazyLock::new(|| build_store(&fleet(10)));

fn store_with(percent_probed: u32) -> &'static Store {
    if percent_probed >= 100 {
        &FULL.1
    } else {
        &TENTH
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Hands freed heap pages back to the system, so the resident figure counts live data, not the
/// listing's temporary copy.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim only releases free memory; it has no preconditions.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Resident memory of a store of [`FLEET`] vehicles, per vehicle. Reports are generated and
/// applied one at a time, so what remains resident is the store (and allocator slack).
fn measure_memory(checked_percent: u32) -> f64 {
    release_free_memory();
    let before = resident_bytes();
    let mut store = Store::new(diagnoser());
    let mut connections = Vec::with_capacity(FLEET);
    generate(checked_percent, |c, _, _| connections.push(c));
    vtriage::feed::apply(&mut store, &Event::ConnectionsListed { connections }, now());
    generate(checked_percent, |_, report, _| {
        if let Some(report) = report {
            vtriage::feed::apply(&mut store, &Event::Observed { report }, now());
        }
    });
    release_free_memory();
    let after = resident_bytes();
    let per_vehicle = after.saturating_sub(before) as f64 / store.len() as f64;
    let packed: Vec<usize> = (0..store.len())
        .filter_map(|i| store.row(i))
        .map(|r| r.evidence_bytes())
        .filter(|&b| b > 0)
        .collect();
    if !packed.is_empty() {
        println!(
            "evidence: {} vehicles with packed evidence, {:.0} bytes each on average",
            packed.len(),
            packed.iter().sum::<usize>() as f64 / packed.len() as f64
        );
    }
    drop(store);
    per_vehicle
}

/// `STORE_BENCH_MEMORY=<percent probed> cargo bench --bench store` prints the resident memory per
/// vehicle instead of running the benchmarks (one figure per process, so freed memory from an
/// earlier measurement cannot hide the next one's growth).
fn main() {
    if let Some(percent) = std::env::var("STORE_BENCH_MEMORY")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        let bytes = measure_memory(percent);
        println!(
            "memory: {bytes:.0} bytes resident per vehicle with {percent}% of {FLEET} vehicles probed"
        );
        return;
    }
    divan::main();
}

#[divan::bench(sample_count = 200, sample_size = 10)]
fn apply_one_observation(bencher: Bencher) {
    let (fleet, store) = &*FULL;
    let mut store = store.clone();
    let events: Vec<Event> = fleet
        .updates
        .iter()
        .map(|r| Event::Observed { report: r.clone() })
        .collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % events.len();
        vtriage::feed::apply(&mut store, &events[i], now())
    });
}

#[divan::bench(sample_count = 200, sample_size = 10)]
fn apply_one_observation_sorted_by_checked_with_status_filter(bencher: Bencher) {
    let (fleet, store) = &*FULL;
    let mut store = store.clone();
    store.set_sort(SortColumn::Checked, true);
    let _ = store.set_filter("status:blocked,degraded");
    let events: Vec<Event> = fleet
        .updates
        .iter()
        .map(|r| Event::Observed { report: r.clone() })
        .collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % events.len();
        vtriage::feed::apply(&mut store, &events[i], now())
    });
}

/// A keystroke that extends the query: only the rows of the previous query are re-tested.
#[divan::bench(args = ["5", "5y", "5yj3", "tesla"], sample_count = 30, sample_size = 1)]
fn filter_keystroke_typing(bencher: Bencher, typed: &str) {
    let (_, store) = &*FULL;
    let prefix = &typed[..typed.len() - 1];
    let mut base = store.clone();
    let _ = base.set_filter(prefix);
    bencher
        .with_inputs(|| base.clone())
        .bench_local_refs(|s| s.set_filter(typed).is_ok());
}

/// A keystroke that is not an extension (a deletion, a new word): every row is re-tested.
#[divan::bench(args = ["5yj3e", "mustang", "a", "3f4"], sample_count = 50, sample_size = 1)]
fn filter_free_text_from_scratch(bencher: Bencher, query: &str) {
    let (_, store) = &*FULL;
    let mut store = store.clone();
    let mut flip = false;
    bencher.bench_local(|| {
        flip = !flip;
        store.set_filter(if flip { query } else { "!x" }).is_ok()
    });
}

#[divan::bench(sample_count = 50, sample_size = 1)]
fn filter_status(bencher: Bencher) {
    let (_, store) = &*FULL;
    let mut store = store.clone();
    let mut flip = false;
    bencher.bench_local(|| {
        flip = !flip;
        store
            .set_filter(if flip {
                "status:blocked"
            } else {
                "status:degraded"
            })
            .is_ok()
    });
}

#[divan::bench(args = SortColumn::ALL, sample_count = 20, sample_size = 1)]
fn resort(bencher: Bencher, column: SortColumn) {
    let (_, store) = &*FULL;
    let mut store = store.clone();
    let mut descending = false;
    bencher.bench_local(|| {
        descending = !descending;
        store.set_sort(column, descending);
    });
}

#[divan::bench(args = [10, 100], sample_count = 10, sample_size = 1)]
fn snapshot_save(bencher: Bencher, percent_probed: u32) {
    let snapshot = store_with(percent_probed).to_snapshot();
    let dir = std::env::temp_dir().join(format!(
        "vtriage-bench-{}-{percent_probed}",
        std::process::id()
    ));
    let path = dir.join("fleet.snapshot");
    bencher.bench_local(|| vtriage::store::save(&path, &snapshot).is_ok());
    if let Ok(meta) = std::fs::metadata(&path) {
        println!(
            "snapshot file: {} bytes for {} vehicles, {percent_probed}% probed",
            meta.len(),
            snapshot.records.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[divan::bench(args = [10, 100], sample_count = 10, sample_size = 1)]
fn snapshot_load(bencher: Bencher, percent_probed: u32) {
    let dir = std::env::temp_dir().join(format!(
        "vtriage-bench-load-{}-{percent_probed}",
        std::process::id()
    ));
    let path = dir.join("fleet.snapshot");
    let _ = vtriage::store::save(&path, &store_with(percent_probed).to_snapshot());
    bencher.bench_local(|| {
        vtriage::store::load(&path)
            .ok()
            .flatten()
            .map(|s| s.records.len())
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[divan::bench(args = [10, 100], sample_count = 10, sample_size = 1)]
fn snapshot_restore_into_empty_store(bencher: Bencher, percent_probed: u32) {
    let store = store_with(percent_probed);
    bencher
        .with_inputs(|| store.to_snapshot())
        .bench_local_values(|snapshot| {
            let mut fresh = Store::new(diagnoser());
            fresh.restore(snapshot);
            fresh
        });
}

#[divan::bench(args = [10, 100], sample_count = 10, sample_size = 1)]
fn to_snapshot(bencher: Bencher, percent_probed: u32) {
    let store = store_with(percent_probed);
    bencher.bench_local(|| store.to_snapshot());
}

/// Packing one vehicle's evidence (JSON, then zstd against the dictionary): the share of `apply`
/// that keeps the store small.
#[divan::bench(sample_count = 200, sample_size = 10)]
fn pack_one_vehicle(bencher: Bencher) {
    let (fleet, _) = &*FULL;
    let diagnose = diagnoser();
    let inputs: Vec<_> = fleet
        .updates
        .iter()
        .map(|r| (r.observations.clone(), diagnose(r, now())))
        .collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % inputs.len();
        vtriage::store::Packed::pack(&inputs[i].0, &inputs[i].1)
    });
}
