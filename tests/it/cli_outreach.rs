//! `vtriage outreach` through the real binary against the simulator: exactly the cars each rule
//! blocks, each with its own link and message; no link-less row written as if it were ready.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use vtriage::sim::{self, SimConfig, SimHandle};

use crate::cli_support;

const SECRET: &str = "outreach-secret-51e0c9";
const CLIENT_ID: &str = "client_outreach_test";

async fn simulator() -> SimHandle {
    let config = SimConfig {
        vehicles: 400,
        seed: 11,
        client_id: CLIENT_ID.into(),
        client_secret: SECRET.into(),
        ..SimConfig::default()
    };
    sim::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

/// Vehicle id → situation, as the simulator made them.
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

fn with_situation(truth: &HashMap<String, String>, situation: &str) -> BTreeSet<String> {
    truth
        .iter()
        .filter(|(_, s)| s.as_str() == situation)
        .map(|(id, _)| id.clone())
        .collect()
}

async fn outreach_v3(sim: &SimHandle, home: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "outreach",
        "--api",
        "v3",
        "--api-origin",
        sim.origin(),
        "--iam-origin",
        sim.origin(),
        "--connect-origin",
        sim.origin(),
        "--client-id",
        CLIENT_ID,
        "--no-rate-limit",
    ];
    args.extend(extra);
    cli_support::run(home, &args, &[("SMARTCAR_CLIENT_SECRET", SECRET)]).await
}

fn rows(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn ids(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r["vehicle_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outreach_names_exactly_the_cars_each_rule_blocks_each_with_its_own_link() {
    let sim = simulator().await;
    let truth = truth(&sim).await;
    let home = cli_support::temp_home("outreach", "rules");

    let out = outreach_v3(&sim, &home, &["--json", "--rule", "tesla-virtual-key"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let keys = rows(&out);
    let expected = with_situation(&truth, "virtual-key-missing");
    assert!(!expected.is_empty());
    assert_eq!(ids(&keys), expected, "exactly the cars without the key");
    for r in &keys {
        assert_eq!(r["rule"], "tesla-virtual-key");
        assert_eq!(r["fix"], "add_virtual_key");
        let link = r["link"].as_str().unwrap();
        assert!(link.starts_with("https://www.tesla.com/_ak/"), "{r}");
        assert!(r["message"].as_str().unwrap().contains(link), "{r}");
        assert_eq!(r["make"], "TESLA");
    }
    assert!(
        stderr.contains(&format!("{} customers to reach", expected.len())),
        "{stderr}"
    );

    // The location permission: a re-authentication link for that very car, asking for exactly it.
    // The snapshot of the first run answers this one: no car is probed twice.
    let out = outreach_v3(
        &sim,
        &home,
        &["--json", "--rule", "tesla-location-permission"],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let location = rows(&out);
    assert_eq!(
        ids(&location),
        with_situation(&truth, "location-permission-missing")
    );
    for r in &location {
        let id = r["vehicle_id"].as_str().unwrap();
        let link = url::Url::parse(r["link"].as_str().unwrap()).expect("a URL");
        let query: HashMap<String, String> = link.query_pairs().into_owned().collect();
        assert_eq!(
            query.get("vehicle_id").map(String::as_str),
            Some(id),
            "{link}"
        );
        assert_eq!(
            query.get("client_id").map(String::as_str),
            Some(CLIENT_ID),
            "{link}"
        );
        assert_eq!(
            query.get("scope").map(String::as_str),
            Some("required:read_location"),
            "exactly the missing permission: {link}"
        );
        assert_eq!(r["fix"], "reauthenticate");
    }

    // Every customer-fixable finding, by default; none of another status than asked for.
    let out = outreach_v3(&sim, &home, &["--json", "--status", "DEGRADED"]).await;
    let degraded = rows(&out);
    assert!(degraded.iter().all(|r| r["status"] == "DEGRADED"));
    assert!(ids(&location).is_subset(&ids(&degraded)));
    assert!(
        ids(&degraded).is_disjoint(&ids(&keys)),
        "blocked cars are not DEGRADED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outreach_without_a_client_id_leaves_out_the_cars_needing_a_connect_link_and_says_what_to_set()
 {
    let sim = simulator().await;
    let truth = truth(&sim).await;
    let home = cli_support::temp_home("outreach", "no-client-id");
    let tokens = cli_support::write_tokens(sim.tokens(), &home);
    let out_file = home.join("outreach.csv");
    let args = [
        "outreach",
        "--api-origin",
        sim.origin(),
        "--management-origin",
        sim.origin(),
        "--amt",
        sim.amt(),
        "--tokens",
        tokens.to_str().unwrap(),
        "--no-rate-limit",
        "--output",
        out_file.to_str().unwrap(),
    ];
    let out = cli_support::run(&home, &args, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("left out"), "{stderr}");
    assert!(stderr.contains("SMARTCAR_CLIENT_ID"), "{stderr}");
    assert!(out.stdout.is_empty(), "the rows went to the file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "user ids and VINs: owner-only");
    }
    let mut reader = csv::Reader::from_path(&out_file).expect("CSV");
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "user_id");
    let link_at = headers.iter().position(|h| h == "link").unwrap();
    let id_at = headers.iter().position(|h| h == "vehicle_id").unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // The pairing link needs no client id: those cars are ready; every row has its link.
    assert!(records.iter().all(|r| !r[link_at].is_empty()));
    let written: BTreeSet<String> = records.iter().map(|r| r[id_at].to_string()).collect();
    assert!(with_situation(&truth, "virtual-key-missing").is_subset(&written));
    assert!(
        written.is_disjoint(&with_situation(&truth, "location-permission-missing")),
        "no link-less re-authentication row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_rule_is_a_one_line_error_naming_the_nearest() {
    let home = cli_support::temp_home("outreach", "typo");
    let out = cli_support::run(
        &home,
        &["outreach", "--demo", "--rule", "tesla-virtal-key"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("did you mean tesla-virtual-key?"),
        "{stderr}"
    );
}
