//! The real binary's headless commands against the real simulator: ground truth, exit codes, bad input.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use vtriage::sim::{self, SimConfig, SimHandle};

use crate::cli_support::{self, expected};

fn temp_home(name: &str) -> PathBuf {
    cli_support::temp_home("cli", name)
}

async fn simulator(vehicles: usize) -> SimHandle {
    let config = SimConfig {
        vehicles,
        seed: 7,
        ..SimConfig::default()
    };
    sim::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

fn write_tokens(sim: &SimHandle, home: &std::path::Path) -> PathBuf {
    cli_support::write_tokens(sim.tokens(), home)
}

async fn vtriage(home: &std::path::Path, args: &[&str]) -> Output {
    cli_support::run(home, args, &[]).await
}

fn live_args<'a>(sim: &'a SimHandle, tokens: &'a str) -> Vec<&'a str> {
    vec![
        "--api-origin",
        sim.origin(),
        "--management-origin",
        sim.origin(),
        "--amt",
        sim.amt(),
        "--tokens",
        tokens,
        "--no-rate-limit",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_json_agrees_with_the_simulator_ground_truth_for_every_vehicle() {
    let sim = simulator(500).await;
    let home = temp_home("truth");
    let tokens = write_tokens(&sim, &home);
    let tokens_s = tokens.to_string_lossy().to_string();
    let mut args = vec!["check", "--json"];
    args.extend(live_args(&sim, &tokens_s));
    let out = vtriage(&home, &args).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "something is blocked: exit 1; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let truth: Vec<Value> = reqwest::get(format!("{}/_sim/fleet", sim.origin()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let truth: HashMap<String, String> = truth
        .iter()
        .map(|v| {
            (
                v["vehicleId"].as_str().unwrap().to_string(),
                v["situation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
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
        let (status, finding) = expected(situation);
        let got = (
            row["status"].as_str().unwrap_or(""),
            row["mainFinding"].as_str(),
        );
        if got != (status, finding) {
            mismatches.push(format!(
                "{id} {situation}: got {got:?}, expected {:?}",
                (status, finding)
            ));
        }
        for key in ["userId", "make", "model", "year", "findings"] {
            assert!(row.get(key).is_some(), "{key} in every row");
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    for (_, token) in sim.tokens() {
        assert!(
            !stdout.contains(token.as_str()),
            "no access token in the output"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_a_filter_that_keeps_only_healthy_vehicles_exits_0() {
    let sim = simulator(120).await;
    let home = temp_home("healthy");
    let tokens = write_tokens(&sim, &home);
    let tokens_s = tokens.to_string_lossy().to_string();
    let mut args = vec!["check", "--csv", "--filter", "status:healthy"];
    args.extend(live_args(&sim, &tokens_s));
    let out = vtriage(&home, &args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("vehicle_id,") || stdout.lines().next().unwrap_or("").contains("status")
    );
    assert!(
        stdout.lines().skip(1).all(|l| l.contains("HEALTHY")),
        "{stdout}"
    );
    assert!(
        out.stderr.is_empty(),
        "nothing on stderr when it is not a terminal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_markdown_for_a_tesla_without_virtual_key_has_the_pairing_link_and_a_reply() {
    let sim = simulator(300).await;
    let home = temp_home("vehicle");
    let tokens = write_tokens(&sim, &home);
    let tokens_s = tokens.to_string_lossy().to_string();
    let tesla = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.situation == sim::Situation::VirtualKeyMissing)
        .expect("a Tesla without key")
        .id
        .clone();
    let mut args = vec!["vehicle", tesla.as_str(), "--markdown"];
    args.extend(live_args(&sim, &tokens_s));
    let out = vtriage(&home, &args).await;
    let md = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "blocked vehicle exits 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        md.contains("https://www.tesla.com/_ak/smartcar.com"),
        "{md}"
    );
    assert!(md.contains("VIRTUAL_KEY_REQUIRED"), "{md}");
    assert!(md.to_lowercase().contains("virtual key"), "{md}");
}

#[tokio::test]
async fn deadlines_on_new_years_day_2025_count_down_20_days_to_the_key_rule() {
    let home = temp_home("deadlines");
    let out = vtriage(&home, &["deadlines", "--now", "2025-01-01T00:00:00Z"]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let key_line = text
        .lines()
        .find(|l| l.contains("tesla-virtual-key"))
        .expect("the key rule");
    assert!(key_line.contains("T-20d"), "{text}");
    assert!(text.contains("March 2025"), "{text}");
}

#[tokio::test]
async fn connect_url_matches_the_python_sdk_byte_for_byte() {
    let home = temp_home("connect");
    let out = vtriage(
        &home,
        &[
            "connect-url",
            "--client-id",
            "my-client-id",
            "--redirect-uri",
            "https://example.com/callback",
            "--mode",
            "test",
            "--scope",
            "read_vehicle_info read_location required:read_odometer",
        ],
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "https://connect.smartcar.com/oauth/authorize?response_type=code&client_id=my-client-id&approval_prompt=auto&mode=test&redirect_uri=https%3A%2F%2Fexample.com%2Fcallback&scope=read_vehicle_info+read_location+required%3Aread_odometer"
    );
}

fn one_line_error(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "setup errors exit 2; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[tokio::test]
async fn malformed_now_is_one_line_naming_the_flag() {
    let home = temp_home("now");
    let err = one_line_error(&vtriage(&home, &["deadlines", "--now", "yesterday"]).await);
    assert!(err.contains("--now yesterday"), "{err}");
}

#[tokio::test]
async fn tokens_file_with_a_wrong_header_names_file_and_line() {
    let home = temp_home("badtokens");
    let path = home.join("t.csv");
    std::fs::write(&path, "user,token\nu1,secret-value\n").unwrap();
    let err = one_line_error(&vtriage(&home, &["check", "--tokens", path.to_str().unwrap()]).await);
    assert!(err.contains("t.csv:1"), "{err}");
    assert!(!err.contains("secret-value"), "{err}");
}

#[tokio::test]
async fn config_with_an_unknown_key_names_file_and_line() {
    let home = temp_home("badconfig");
    std::fs::create_dir_all(home.join("config")).unwrap();
    std::fs::write(home.join("config/config.toml"), "[fetch]\nconcurency = 4\n").unwrap();
    let err = one_line_error(&vtriage(&home, &["info"]).await);
    assert!(
        err.contains("config.toml:2") && err.contains("concurency"),
        "{err}"
    );
}

#[tokio::test]
async fn a_filter_naming_a_rule_that_does_not_exist_is_an_error_naming_the_nearest_not_nothing_blocked()
 {
    let home = temp_home("badrule");
    let err = one_line_error(
        &vtriage(
            &home,
            &["check", "--demo", "--filter", "rule:tesla-virtual-keys"],
        )
        .await,
    );
    assert!(
        err.contains("rule:tesla-virtual-keys") && err.contains("did you mean tesla-virtual-key?"),
        "{err}"
    );
}

#[tokio::test]
async fn connect_url_with_a_mistyped_scope_is_an_error_naming_the_permission_meant() {
    let home = temp_home("badscope");
    let out = vtriage(
        &home,
        &[
            "connect-url",
            "--client-id",
            "my-client-id",
            "--scope",
            "read_vin read_locaton",
        ],
    )
    .await;
    let err = one_line_error(&out);
    assert!(err.contains("did you mean read_location?"), "{err}");
    assert!(out.stdout.is_empty(), "no URL printed");
}

#[tokio::test]
async fn output_piped_into_a_reader_that_stops_ends_quietly_without_a_broken_pipe_line() {
    let home = temp_home("pipe");
    let mut child = cli_support::command(&home, &["check", "--demo"], &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // The reader goes away before reading anything, as `| head -0` does.
    drop(child.stdout.take());
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("vtriage finishes")
    .expect("waited");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "stderr: {stderr}");
}

#[tokio::test]
async fn serve_with_a_database_that_refuses_connections_names_host_port_and_reason_without_the_password()
 {
    let home = temp_home("db-refused");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://desk:hunter2-pw@127.0.0.1:{port}/desk");
    let out = cli_support::run(
        &home,
        &[
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &url,
        ],
        &[("SMARTCAR_MANAGEMENT_TOKEN", "sim-amt")],
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_ne!(out.status.code(), Some(0), "{err}");
    let last = err.lines().last().unwrap_or_default().to_ascii_lowercase();
    assert!(
        last.contains(&format!("127.0.0.1:{port}/desk")) && last.contains("connection refused"),
        "{err}"
    );
    assert!(!err.contains("hunter2-pw"), "{err}");
}

#[tokio::test]
async fn the_demo_table_marks_its_loopback_links_as_local_never_as_links_for_a_customer() {
    let home = temp_home("demolocal");
    let out = vtriage(&home, &["check", "--filter", "status:blocked"]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let local: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("http://127.0.0.1:"))
        .collect();
    assert!(
        !local.is_empty(),
        "the demo has re-authentication fixes: {text}"
    );
    for line in local {
        assert!(
            line.ends_with("(local simulator link, not for a customer)"),
            "{line}"
        );
    }
    assert!(
        text.lines()
            .filter(|l| l.contains("https://www.tesla.com/_ak/"))
            .all(|l| !l.contains("local simulator")),
        "a real link is not marked"
    );
}

#[tokio::test]
async fn unknown_filter_key_is_a_usage_error() {
    let home = temp_home("badfilter");
    let err = one_line_error(&vtriage(&home, &["check", "--filter", "colour:red"]).await);
    assert!(err.contains("colour"), "{err}");
}

#[tokio::test]
async fn unreachable_origin_is_one_line_saying_so() {
    let home = temp_home("refused");
    let err = one_line_error(
        &vtriage(
            &home,
            &[
                "check",
                "--api-origin",
                "http://127.0.0.1:9",
                "--management-origin",
                "http://127.0.0.1:9",
                "--amt",
                "x",
            ],
        )
        .await,
    );
    assert!(err.contains("127.0.0.1:9"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_management_token_is_one_line_and_never_echoes_it() {
    let sim = simulator(10).await;
    let home = temp_home("badamt");
    let out = vtriage(
        &home,
        &[
            "check",
            "--api-origin",
            sim.origin(),
            "--management-origin",
            sim.origin(),
            "--amt",
            "wrong-amt-value",
        ],
    )
    .await;
    let err = one_line_error(&out);
    assert!(!err.contains("wrong-amt-value"), "{err}");
    assert!(
        err.contains("401") || err.to_lowercase().contains("reject"),
        "{err}"
    );
}

#[tokio::test]
async fn live_credentials_without_a_profile_keep_their_own_snapshot_apart_from_the_demo() {
    let home = temp_home("liveprofile");
    let demo = vtriage(&home, &["info"]).await;
    let live = vtriage(&home, &["info", "--amt", "some-amt"]).await;
    let demo = String::from_utf8_lossy(&demo.stdout).to_string();
    let live = String::from_utf8_lossy(&live.stdout).to_string();
    let snapshot = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("snapshot"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert!(snapshot(&demo).contains("snapshot-demo.json"), "{demo}");
    assert!(snapshot(&live).contains("snapshot-live.json"), "{live}");
    assert!(!live.contains("some-amt"), "{live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_that_takes_hours_at_the_plan_rate_says_so_before_it_starts() {
    use tokio::io::AsyncBufReadExt;
    let sim = simulator(300).await;
    let home = temp_home("slowcheck");
    let tokens = write_tokens(&sim, &home);
    let tokens = tokens.to_str().unwrap();
    let mut args = vec!["check"];
    args.extend(live_args(&sim, tokens));
    args.retain(|a| *a != "--no-rate-limit");
    let mut child = cli_support::command(&home, &args, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .ok()
        .and_then(|l| l.ok().flatten())
        .unwrap_or_default();
    let _ = child.kill().await;
    assert!(
        first.contains("requests ≈") && first.contains(" h ") && first.contains("--rate"),
        "{first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_without_a_rate_limit_prints_no_cost_notice() {
    let sim = simulator(40).await;
    let home = temp_home("fastcheck");
    let tokens = write_tokens(&sim, &home);
    let mut args = vec!["check"];
    args.extend(live_args(&sim, tokens.to_str().unwrap()));
    let out = vtriage(&home, &args).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("requests ≈"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_by_a_vin_never_read_says_the_cost_then_finds_it_and_the_next_run_reads_nothing() {
    let sim = simulator(40).await;
    let home = temp_home("vehiclevin");
    let tokens = write_tokens(&sim, &home);
    let live = live_args(&sim, tokens.to_str().unwrap());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet: Value = reqwest::get(format!("{}/_sim/fleet", sim.origin()))
        .await
        .expect("ground truth")
        .json()
        .await
        .expect("json");
    let vin = fleet
        .as_array()
        .and_then(|a| a.iter().find(|v| v["situation"] == "healthy"))
        .and_then(|v| v["vin"].as_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(vin.len(), 17);

    let mut args = vec!["vehicle", vin.as_str()];
    args.extend(live.iter().copied());
    let first = vtriage(&home, &args).await;
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    // Nothing tells the make of a vehicle listed by the Management API: every one may be it.
    assert!(
        stderr.contains("VIN lookup") && stderr.contains("40 requests at most"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains(&vin));

    // The VINs read are kept: the next run finds the vehicle without a lookup.
    let again = vtriage(&home, &args).await;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(!stderr.contains("VIN lookup"), "{stderr}");
    assert!(String::from_utf8_lossy(&again.stdout).contains(&vin));
}

#[tokio::test]
async fn secrets_on_the_command_line_are_warned_about_and_the_safe_place_is_named() {
    let home = temp_home("argvsecret");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["info", "--amt", "amt-in-argv", "--token", "token-in-argv"])
        .env("VTRIAGE_HOME", &home)
        .env_remove("SMARTCAR_MANAGEMENT_TOKEN")
        .output()
        .await
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--amt on the command line is visible")
            && text.contains("SMARTCAR_MANAGEMENT_TOKEN"),
        "{text}"
    );
    assert!(
        text.contains("--token on the command line is visible") && text.contains("--tokens"),
        "{text}"
    );
    assert!(
        !text.contains("amt-in-argv") && !text.contains("token-in-argv"),
        "{text}"
    );
}

#[tokio::test]
async fn an_origin_carrying_credentials_is_refused_without_echoing_them() {
    let home = temp_home("origincreds");
    let out = vtriage(
        &home,
        &[
            "check",
            "--api-origin",
            "https://default:the-amt-secret@api.example",
            "--amt",
            "x",
        ],
    )
    .await;
    let err = one_line_error(&out);
    assert!(
        err.contains("must not carry a user name or password"),
        "{err}"
    );
    assert!(!err.contains("the-amt-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_by_user_id_lists_every_car_of_that_user_worst_first_and_a_unique_prefix_works() {
    let sim = simulator(300).await;
    let home = temp_home("usercars");
    let tokens = write_tokens(&sim, &home);
    let live = live_args(&sim, tokens.to_str().unwrap());
    let fleet = sim.fleet();
    let mut cars_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for v in &fleet.vehicles {
        cars_of
            .entry(v.user_id.as_str())
            .or_default()
            .push(v.id.as_str());
    }
    let (user, cars) = cars_of
        .iter()
        .filter(|(_, cars)| cars.len() > 1)
        .max_by_key(|(_, cars)| cars.len())
        .expect("the seeded fleet has a user with several cars");

    let mut args = vec!["vehicle", user, "--json"];
    args.extend(live.iter().copied());
    let out = vtriage(&home, &args).await;
    // One JSON document: an array of the user's cars.
    let objects: Vec<Value> =
        serde_json::from_slice(&out.stdout).expect("one JSON array of the user's cars");
    assert_eq!(objects.len(), cars.len(), "{objects:?}");
    let rank = |s: &str| match s {
        "BLOCKED" => 4,
        "DEGRADED" => 3,
        "WARNING" => 2,
        "UNKNOWN" => 1,
        _ => 0,
    };
    let ranks: Vec<i32> = objects
        .iter()
        .map(|o| rank(o["status"].as_str().unwrap_or_default()))
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] >= w[1]),
        "worst first: {ranks:?}"
    );

    let mut md = vec!["vehicle", user, "--markdown"];
    md.extend(live.iter().copied());
    let text = String::from_utf8_lossy(&vtriage(&home, &md).await.stdout).to_string();
    for car in cars {
        assert!(text.contains(car), "a section per car: {car}");
    }

    let id = cars[0];
    let prefix = &id[..8];
    let unique = fleet
        .vehicles
        .iter()
        .filter(|v| v.id.starts_with(prefix) || v.user_id.starts_with(prefix))
        .count()
        == 1;
    if unique {
        let mut by_prefix = vec!["vehicle", prefix, "--json"];
        by_prefix.extend(live.iter().copied());
        let one = vtriage(&home, &by_prefix).await;
        assert!(String::from_utf8_lossy(&one.stdout).contains(id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_that_could_probe_nothing_never_says_nothing_is_blocked() {
    let sim = simulator(30).await;
    let home = temp_home("probednothing");
    // A management token lists the fleet, but no access token reads any vehicle.
    let no_tokens = vtriage(
        &home,
        &[
            "check",
            "--json",
            "--api-origin",
            sim.origin(),
            "--management-origin",
            sim.origin(),
            "--amt",
            sim.amt(),
            "--no-rate-limit",
        ],
    )
    .await;
    let err = String::from_utf8_lossy(&no_tokens.stderr);
    assert_eq!(no_tokens.status.code(), Some(3), "{err}");
    assert!(
        err.contains("30 of 30 vehicles could not be checked") && err.contains("No access token"),
        "{err}"
    );

    // The vehicle API is unreachable while the listing works.
    let tokens = write_tokens(&sim, &home);
    let unreachable = vtriage(
        &home,
        &[
            "check",
            "--json",
            "--force",
            "--api-origin",
            "http://127.0.0.1:9",
            "--management-origin",
            sim.origin(),
            "--amt",
            sim.amt(),
            "--tokens",
            tokens.to_str().unwrap(),
            "--no-rate-limit",
        ],
    )
    .await;
    let err = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(unreachable.status.code(), Some(3), "{err}");
    // Either every car failed before the outage was declared, or the outage stopped the rest:
    // both say the cars were not checked, never that nothing is blocked.
    assert!(
        err.contains("could not be checked")
            || (err.contains("not checked") && err.contains("unreachable (connection refused)")),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_config_file_or_an_origin_without_credentials_is_an_error_not_the_demo() {
    let home = temp_home("nodemo");
    let missing = home.join("nope.toml");
    let err =
        one_line_error(&vtriage(&home, &["check", "--config", missing.to_str().unwrap()]).await);
    assert!(
        err.contains("--config") && err.contains("no such file"),
        "{err}"
    );
    let err =
        one_line_error(&vtriage(&home, &["check", "--api-origin", "http://127.0.0.1:9"]).await);
    assert!(
        err.contains("--api-origin given but no credentials") && err.contains("--demo"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_links_use_the_demo_connect_page_and_honour_client_id_and_carry_no_placeholder() {
    let home = temp_home("demolinks");
    for (extra, client) in [(None, "sim-client-id"), (Some("my-app"), "my-app")] {
        let mut args = vec!["check", "--json", "--force"];
        if let Some(id) = extra {
            args.extend(["--client-id", id]);
        }
        let out = vtriage(&home, &args).await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            !text.contains("<your-client-id>"),
            "no placeholder reaches a customer"
        );
        let links: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .flat_map(|v| v["findings"].as_array().cloned().unwrap_or_default())
            .map(|f| f["remedy"]["link"].clone())
            .filter(|l| {
                l.as_str()
                    .is_some_and(|l| l.contains("/oauth/reauthenticate"))
            })
            .collect();
        assert!(
            !links.is_empty(),
            "the demo fleet has re-authentication fixes"
        );
        for link in links {
            let link = link.as_str().unwrap_or_default();
            assert!(
                link.starts_with("http://127.0.0.1:"),
                "the demo's Connect page: {link}"
            );
            assert!(link.contains(&format!("client_id={client}")), "{link}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_on_port_0_prints_the_port_it_really_bound_and_answers_there() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args([
            "sim",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--vehicles",
            "5",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .ok()
        .and_then(|l| l.ok().flatten())
        .unwrap_or_default();
    let origin = first
        .strip_prefix("vtriage sim listening on ")
        .unwrap_or_default()
        .to_string();
    assert!(origin.starts_with("http://127.0.0.1:"), "{first:?}");
    assert!(!origin.ends_with(":0"), "the real port, not 0: {origin}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stats = reqwest::get(format!("{origin}/_sim/stats"))
        .await
        .expect("answers");
    assert_eq!(stats.status().as_u16(), 200);
    let _ = child.kill().await;
}

#[cfg(unix)]
#[tokio::test]
async fn an_amt_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let home = temp_home("amtfile");
    let amt = home.join("amt");
    std::fs::write(&amt, "amt-from-a-file\n").unwrap();
    std::fs::set_permissions(&amt, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"prod\"\n[profiles.prod]\nkind = \"live\"\namt_file = \"{}\"\n",
            amt.display()
        ),
    )
    .unwrap();
    let out = vtriage(&home, &["info", "--config", config.to_str().unwrap()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("readable by group or others") && text.contains("chmod 600"),
        "{text}"
    );
    assert!(!text.contains("amt-from-a-file"), "{text}");
}

#[tokio::test]
async fn sim_help_lists_the_simulator_s_flags_and_none_of_the_connection_flags() {
    let home = temp_home("simhelp");
    let out = vtriage(&home, &["sim", "--help"]).await;
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--vehicles") && help.contains("--webhook-url"),
        "{help}"
    );
    for flag in [
        "--api-origin",
        "--tokens",
        "--profile",
        "--concurrency",
        "--server",
        "--now",
    ] {
        assert!(!help.contains(flag), "{flag} in sim --help:\n{help}");
    }
    let check = vtriage(&home, &["check", "--help"]).await;
    assert!(String::from_utf8_lossy(&check.stdout).contains("--api-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_speaks_v3_and_api_v2_shows_the_v2_path_on_the_same_fleet() {
    for (api, endpoint) in [
        (None, "GET /v3/vehicles/"),
        (Some("v2"), "POST /v2.0/vehicles/"),
    ] {
        let home = temp_home(&format!("demo-{}", api.unwrap_or("v3")));
        let mut args = vec!["vehicle", "d63be243", "--json"];
        if let Some(api) = api {
            args.extend(["--api", api, "--demo"]);
        }
        let out = vtriage(&home, &args).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(endpoint), "{api:?}: {text}");
    }
}

#[tokio::test]
async fn an_unreachable_desk_or_token_endpoint_is_one_line_naming_host_port_and_why() {
    let home = temp_home("refused-places");
    let desk = cli_support::run(
        &home,
        &["check", "--server", "http://127.0.0.1:9"],
        &[
            ("VTRIAGE_AGENT_TOKEN", "vtd_x"),
            ("SMARTCAR_CLIENT_SECRET", "exported"),
        ],
    )
    .await;
    let err = one_line_error(&desk);
    assert_eq!(
        err,
        "vtriage: cannot reach the desk at 127.0.0.1:9 (http://127.0.0.1:9): connection refused"
    );
    let token = cli_support::run(
        &home,
        &[
            "check",
            "--api-origin",
            "http://127.0.0.1:9",
            "--iam-origin",
            "http://127.0.0.1:9",
        ],
        &[
            ("SMARTCAR_CLIENT_ID", "client-id-x"),
            ("SMARTCAR_CLIENT_SECRET", "secret-8d1f2a"),
        ],
    )
    .await;
    let err = one_line_error(&token);
    assert!(
        err.ends_with("cannot reach the token endpoint at 127.0.0.1:9: connection refused"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_by_a_vin_with_a_wrong_check_digit_sends_nothing_names_the_nearest_and_looks_up_only_when_asked()
 {
    let sim = simulator(40).await;
    let home = temp_home("vehiclevintypo");
    let tokens = write_tokens(&sim, &home);
    let live = live_args(&sim, tokens.to_str().unwrap());
    let car = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.situation == sim::Situation::Healthy)
        .expect("a healthy car")
        .clone();
    // A first run reads its VIN: the snapshot knows it.
    let mut args = vec!["vehicle", car.vin.as_str()];
    args.extend(live.iter().copied());
    let first = vtriage(&home, &args).await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    // One character off (the last one), so the check digit no longer fits.
    let mut typo = car.vin.clone().into_bytes();
    typo[16] = if typo[16] == b'1' { b'2' } else { b'1' };
    let typo = String::from_utf8(typo).expect("ASCII");
    assert!(!sim::vin::is_valid(&typo));
    sim.reset_stats();
    let mut args = vec!["vehicle", typo.as_str()];
    args.extend(live.iter().copied());
    let out = vtriage(&home, &args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("check digit")
            && stderr.contains("outside North America")
            && stderr.contains(&car.vin)
            && stderr.contains("--lookup-anyway"),
        "{stderr}"
    );
    let vehicle_calls: u64 = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| sim.vehicle_requests(&v.id).unwrap_or(0))
        .sum();
    assert_eq!(vehicle_calls, 0, "no VIN was read for a likely typo");

    args.push("--lookup-anyway");
    let out = vtriage(&home, &args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("VIN lookup"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_by_a_vin_no_car_has_keeps_every_vin_it_read_so_the_next_lookup_reads_none_again() {
    let sim = simulator(40).await;
    let home = temp_home("vehiclevinkept");
    let tokens = write_tokens(&sim, &home);
    let live = live_args(&sim, tokens.to_str().unwrap());
    // A VIN no car has, its check digit right, so it is looked up.
    let fleet: Vec<&str> = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| v.vin.as_str())
        .collect();
    let absent: Vec<String> = (0..1000u32)
        .map(|serial| {
            let mut v = sim.fleet().vehicles[0].vin.clone().into_bytes();
            v[11..].copy_from_slice(format!("{:06}", 999_000 + serial).as_bytes());
            let d = sim::vin::check_digit(std::str::from_utf8(&v).expect("ASCII")).expect("VIN");
            v[8] = d as u8;
            String::from_utf8(v).expect("ASCII")
        })
        .filter(|v| !fleet.contains(&v.as_str()))
        .take(2)
        .collect();
    let mut args = vec!["vehicle", absent[0].as_str()];
    args.extend(live.iter().copied());
    let first = vtriage(&home, &args).await;
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("40 requests at most"), "{stderr}");

    sim.reset_stats();
    let mut args = vec!["vehicle", absent[1].as_str()];
    args.extend(live.iter().copied());
    let again = vtriage(&home, &args).await;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("0 requests"), "{stderr}");
    let vehicle_calls: u64 = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| sim.vehicle_requests(&v.id).unwrap_or(0))
        .sum();
    assert_eq!(vehicle_calls, 0, "no VIN read twice");
}
