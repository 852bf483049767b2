//! The real binary on API v3 against the real simulator: `check --api v3` agrees with the ground
//! truth, the client secret and the app token appear nowhere, and a profile's secret command works.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use vtriage::sim::{self, SimConfig, SimHandle};

use crate::cli_support::{self, expected_v3};

const SECRET: &str = "v3-secret-5f1c0a9e77d2";
const CLIENT_ID: &str = "client_v3_test";

fn temp_home(name: &str) -> PathBuf {
    cli_support::temp_home("cli-v3", name)
}

async fn simulator(vehicles: usize, token_ttl_s: u64) -> SimHandle {
    let config = SimConfig {
        vehicles,
        seed: 7,
        client_id: CLIENT_ID.into(),
        client_secret: SECRET.into(),
        token_ttl_s,
        ..SimConfig::default()
    };
    sim::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

/// Runs the binary with a clean environment of Smartcar variables, plus `env`.
async fn vtriage(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    cli_support::run(home, args, env).await
}

fn v3_args(sim: &SimHandle) -> Vec<&str> {
    vec![
        "--api",
        "v3",
        "--api-origin",
        sim.origin(),
        "--iam-origin",
        sim.origin(),
        "--client-id",
        CLIENT_ID,
        "--no-rate-limit",
    ]
}

async fn truth(sim: &SimHandle) -> HashMap<String, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet: Vec<Value> = reqwest::get(format!("{}/_sim/fleet", sim.origin()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    fleet
        .iter()
        .map(|v| {
            (
                v["vehicleId"].as_str().unwrap().to_string(),
                v["situation"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_json_on_v3_agrees_with_the_simulator_ground_truth_for_every_vehicle() {
    let sim = simulator(500, 3600).await;
    let home = temp_home("truth");
    let mut args = vec!["check", "--json"];
    args.extend(v3_args(&sim));
    let out = vtriage(&home, &args, &[("SMARTCAR_CLIENT_SECRET", SECRET)]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit 1; stderr: {stderr}");
    let truth = truth(&sim).await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 500, "every vehicle once");
    let mut mismatches = Vec::new();
    for row in &rows {
        let id = row["id"].as_str().unwrap();
        let situation = &truth[id];
        let got = (
            row["status"].as_str().unwrap_or(""),
            row["mainFinding"].as_str(),
        );
        if got != expected_v3(situation) {
            mismatches.push(format!("{id} {situation}: got {got:?}"));
        }
        assert!(row["make"].as_str().is_some_and(|m| !m.is_empty()), "{row}");
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // Every vehicle whose connection still authenticates and that is subscribed was read, each
    // request with sc-user-id.
    let refused = truth
        .values()
        .filter(|s| *s == "token-expired" || *s == "signals-not-subscribed")
        .count();
    let stats = sim.v3_stats();
    assert_eq!(stats.missing_user_id, 0);
    assert!(stats.signals_calls >= (500 - refused) as u64, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_v3_while_the_app_token_is_revoked_mid_sweep_misreports_no_car_over_repeated_runs()
{
    for run in 0..2u64 {
        let config = SimConfig {
            vehicles: 300,
            seed: 11 + run,
            client_id: CLIENT_ID.into(),
            client_secret: SECRET.into(),
            revoke_first_token_after: 12,
            latency: sim::Latency::Fixed {
                ms: 20,
                jitter_ms: 200,
            },
            ..SimConfig::default()
        };
        let sim = sim::spawn(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("simulator starts");
        let home = temp_home(&format!("revoked-mid-sweep-{run}"));
        let mut args = vec!["check", "--json"];
        args.extend(v3_args(&sim));
        let out = vtriage(&home, &args, &[("SMARTCAR_CLIENT_SECRET", SECRET)]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let truth = truth(&sim).await;
        let stdout = String::from_utf8(out.stdout).unwrap();
        let mut wrong = Vec::new();
        let mut rows = 0;
        for line in stdout.lines() {
            let row: Value = serde_json::from_str(line).expect("one JSON object per line");
            rows += 1;
            let id = row["id"].as_str().unwrap();
            let got = (
                row["status"].as_str().unwrap_or(""),
                row["mainFinding"].as_str(),
            );
            if got != expected_v3(&truth[id]) {
                wrong.push(format!("{id} {}: got {got:?}", truth[id]));
            }
        }
        assert_eq!(rows, 300, "every vehicle once; stderr: {stderr}");
        assert!(
            wrong.is_empty(),
            "run {run}: {} misreported:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert!(sim.v3_stats().tokens_issued >= 2, "the token was renewed");
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_secret_and_app_tokens_appear_in_no_output_log_or_snapshot() {
    // One-second tokens: several are issued during the check, every one must stay hidden.
    let sim = simulator(150, 1).await;
    let home = temp_home("secret");
    let mut args = vec!["check", "--json"];
    args.extend(v3_args(&sim));
    let out = vtriage(
        &home,
        &args,
        &[("SMARTCAR_CLIENT_SECRET", SECRET), ("VTRIAGE_LOG", "debug")],
    )
    .await;
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vehicle_id = sim.fleet().vehicles[0].id.clone();
    let one = vtriage(
        &home,
        &["vehicle", &vehicle_id, "--json", "--api", "v3"]
            .into_iter()
            .chain(v3_args(&sim).into_iter().skip(2))
            .collect::<Vec<_>>(),
        &[("SMARTCAR_CLIENT_SECRET", SECRET)],
    )
    .await;
    assert!(sim.v3_stats().tokens_issued >= 1);
    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("check stdout".into(), out.stdout),
        ("check stderr".into(), out.stderr),
        ("vehicle stdout".into(), one.stdout),
        ("vehicle stderr".into(), one.stderr),
    ];
    for dir in ["state", "cache"] {
        for entry in std::fs::read_dir(home.join(dir)).expect("folder written") {
            let path = entry.expect("entry").path();
            places.push((
                path.display().to_string(),
                std::fs::read(&path).expect("read"),
            ));
        }
    }
    assert!(
        places
            .iter()
            .any(|(p, b)| p.ends_with("vtriage.log") && !b.is_empty()),
        "a log was written"
    );
    assert!(
        places.iter().any(|(p, _)| p.contains("snapshot-")),
        "a snapshot was written"
    );
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(SECRET), "the client secret in {place}");
        // The simulator's application tokens all start so.
        assert!(!text.contains("sim-app-"), "an app token in {place}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_reads_the_secret_from_a_command_and_v3_is_the_default_with_a_secret() {
    let sim = simulator(40, 3600).await;
    let home = temp_home("profile");
    std::fs::create_dir_all(home.join("config")).unwrap();
    let config = format!(
        "profile = \"desk\"\n[profiles.desk]\nkind = \"live\"\napi_origin = \"{o}\"\niam_origin = \"{o}\"\nclient_secret_command = \"printf '%s\\\\n' {SECRET}\"\n",
        o = sim.origin()
    );
    std::fs::write(home.join("config/config.toml"), config).unwrap();
    let info = vtriage(&home, &["info", "--client-id", CLIENT_ID], &[]).await;
    let info_text = String::from_utf8_lossy(&info.stdout);
    assert!(info_text.contains("api             v3"), "{info_text}");
    assert!(!info_text.contains(SECRET), "{info_text}");
    let out = vtriage(
        &home,
        &[
            "check",
            "--csv",
            "--no-rate-limit",
            "--client-id",
            CLIENT_ID,
        ],
        &[],
    )
    .await;
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), 41, "a header and every vehicle: {csv}");
    assert!(sim.v3_stats().tokens_issued >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_without_a_secret_says_where_to_put_it_and_a_secret_flag_does_not_exist() {
    let home = temp_home("nosecret");
    let out = vtriage(
        &home,
        &["check", "--api", "v3", "--client-id", CLIENT_ID],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SMARTCAR_CLIENT_SECRET"), "{err}");
    let flag = vtriage(&home, &["check", "--client-secret", "x"], &[]).await;
    assert_eq!(flag.status.code(), Some(2), "no such flag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_without_its_client_id_is_an_error_never_the_demo_fleet() {
    let home = temp_home("noid");
    let out = vtriage(&home, &["check"], &[("SMARTCAR_CLIENT_SECRET", SECRET)]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the client id is missing"), "{err}");
    assert!(out.stdout.is_empty(), "no fleet printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_by_vin_on_v3_reads_only_its_make_and_year_and_an_absent_make_costs_nothing() {
    let sim = simulator(200, 3600).await;
    let home = temp_home("vinlookup");
    let car = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.situation == vtriage::sim::Situation::Healthy)
        .expect("a healthy vehicle");
    let decoded = vtriage::smartcar::vin::decode(&car.vin, 2025).expect("a VIN");
    let fitting = sim
        .fleet()
        .vehicles
        .iter()
        .filter(|v| {
            decoded.fits_make(&v.make) == Some(true) && decoded.fits_year(v.year) == Some(true)
        })
        .count();
    let secret = [("SMARTCAR_CLIENT_SECRET", SECRET)];

    let mut args = vec!["vehicle", car.vin.as_str(), "--now", "2025-06-01T00:00:00Z"];
    args.extend(v3_args(&sim));
    let out = vtriage(&home, &args, &secret).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let cost = format!("{fitting} requests at most");
    let plural = fitting == 1 && stderr.contains("1 request at most");
    assert!(stderr.contains(&cost) || plural, "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&car.vin));

    let mut args = vec!["vehicle", "WP0AB2A99MS000001"];
    args.extend(v3_args(&sim));
    let out = vtriage(&home, &args, &secret).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("0 requests") && stderr.contains("PORSCHE"),
        "{stderr}"
    );
}

/// Connection listing requests the simulator answered since its counters were reset.
fn listing_requests(sim: &SimHandle) -> u64 {
    sim.stats()
        .by_endpoint
        .get("management")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_by_id_or_user_lists_that_car_or_user_alone_not_the_fleet_of_two_thousand() {
    let sim = simulator(2000, 3600).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet: Vec<Value> = reqwest::get(format!("{}/_sim/fleet", sim.origin()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let car = &fleet[1234];
    let vehicle_id = car["vehicleId"].as_str().unwrap().to_string();
    let user_id = car["userId"].as_str().unwrap().to_string();
    let env = [("SMARTCAR_CLIENT_SECRET", SECRET)];
    let run = |home: PathBuf, query: String| {
        let sim = &sim;
        async move {
            let mut args = vec!["vehicle", query.as_str(), "--json"];
            args.extend(v3_args(sim));
            sim.reset_stats();
            let out = vtriage(&home, &args, &env).await;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{query}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (stdout, listing_requests(sim))
        }
    };

    // No snapshot: a vehicle id is one listing request; a user id one more (tried as a vehicle first).
    let (out, listed) = run(temp_home("by-id"), vehicle_id.clone()).await;
    assert!(out.contains(&vehicle_id), "{out}");
    assert_eq!(listed, 1, "a vehicle id lists that vehicle alone");
    let home = temp_home("by-user");
    let (out, listed) = run(home.clone(), user_id.clone()).await;
    assert!(out.contains(&vehicle_id), "{out}");
    assert_eq!(
        listed, 2,
        "a user id is tried as a vehicle id, then as a user"
    );
    // The snapshot says it is a user: one request.
    let (_, listed) = run(home.clone(), user_id.clone()).await;
    assert_eq!(listed, 1, "the snapshot names the user");

    // A prefix needs the whole listing, or a snapshot listed whole within the freshness window.
    let prefix = vehicle_id[..12].to_string();
    let home = temp_home("by-prefix");
    let (out, listed) = run(home.clone(), prefix.clone()).await;
    assert!(out.contains(&vehicle_id), "{out}");
    assert!(listed > 2, "the fleet listed to match the prefix: {listed}");
    let (out, listed) = run(home.clone(), prefix.clone()).await;
    assert!(out.contains(&vehicle_id), "{out}");
    assert_eq!(listed, 1, "a fresh snapshot resolves the prefix");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_by_the_vin_of_a_car_smartcar_will_not_read_lists_it_among_the_unread_never_no_vehicle()
 {
    let sim = simulator(200, 3600).await;
    let home = temp_home("vinunread");
    // Its VIN is refused (its own 429, or its monthly quota spent): the car exists all the same.
    let car = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| {
            matches!(
                v.situation,
                sim::Situation::RateLimited | sim::Situation::QuotaExhausted
            ) && vtriage::smartcar::vin::decode(&v.vin, 2025).is_ok_and(|d| d.make().is_some())
        })
        .expect("a car whose VIN cannot be read")
        .clone();
    let secret = [("SMARTCAR_CLIENT_SECRET", SECRET)];
    let mut args = vec!["vehicle", car.vin.as_str(), "--now", "2025-06-01T00:00:00Z"];
    args.extend(v3_args(&sim));
    let out = vtriage(&home, &args, &secret).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "not checked: {stderr}");
    assert!(!stderr.contains("no vehicle"), "{stderr}");
    assert!(stderr.contains("could not be read"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains(&car.id))
        .unwrap_or_else(|| panic!("{} listed: {stderr}", car.id));
    let why = if car.situation == sim::Situation::RateLimited {
        "429"
    } else {
        "quota"
    };
    assert!(
        line.contains(&car.user_id) && line.contains(&car.model) && line.contains(why),
        "{line}"
    );
}
