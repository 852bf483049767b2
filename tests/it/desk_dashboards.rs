//! Two dashboards (the real binary in pseudo-terminals) on one desk: a webhook that blocks a Tesla
//! shows on both within a second, and when the desk restarts they say "reconnecting", keep the
//! last state, and come back to the same state by themselves.

use crate::desk_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use desk_support::{
    AMT, Schema, Serve, blocked_tesla, database_url, http, post_signed, temp_home, v3_desk,
    vehicle_error,
};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use serde_json::json;

/// A running `vtriage` in a PTY with a vt100 screen fed from its output.
struct Terminal {
    parser: vt100::Parser,
    output: mpsc::Receiver<Vec<u8>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Terminal {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Terminal {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 30,
                cols: 140,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_vtriage"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        for k in ["SMARTCAR_MANAGEMENT_TOKEN", "DISPLAY", "WAYLAND_DISPLAY"] {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).expect("vtriage starts");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = pair.master.take_writer().expect("writer");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            parser: vt100::Parser::new(30, 140, 0),
            output: rx,
            writer,
            child,
            _master: pair.master,
        }
    }

    fn pump(&mut self, wait: Duration) {
        if let Ok(bytes) = self.output.recv_timeout(wait) {
            self.parser.process(&bytes);
        }
        while let Ok(bytes) = self.output.try_recv() {
            self.parser.process(&bytes);
        }
    }

    fn screen(&self) -> String {
        self.parser.screen().contents()
    }

    fn shows(&mut self, text: &str) -> bool {
        self.pump(Duration::from_millis(5));
        self.screen().contains(text)
    }

    fn wait_for(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.shows(text) {
                return;
            }
            self.pump(Duration::from_millis(20));
        }
        panic!(
            "waited {limit:?} for {text:?}; the screen shows:\n{}",
            self.screen()
        );
    }

    fn send(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("write");
        self.writer.flush().expect("flush");
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `vtriage serve` listening on exactly `listen` (a restart on the same address).
fn serve_at(schema: &str, listen: &str, home: &std::path::Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args([
            "serve",
            "--demo",
            "--no-prober",
            "--database",
            &database_url(),
        ])
        .args([
            "--schema",
            schema,
            "--listen",
            listen,
            "--log-format",
            "json",
        ])
        .env("VTRIAGE_HOME", home)
        .env("SMARTCAR_MANAGEMENT_TOKEN", AMT)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve starts again");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains("vtriage serve ready") {
            // Keep reading its output so the pipe never fills.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return child;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve did not start again on {listen}");
}

fn agent_token(schema: &str, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["agent", "--database", &database_url(), "--schema", schema])
        .args(["add", name])
        .env_remove("DATABASE_URL")
        .output()
        .expect("agent add");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dashboards_see_a_blocked_tesla_within_a_second_and_ride_out_a_desk_restart() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let mut serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let listen = serve.origin.trim_start_matches("http://").to_string();
    // A healthy starting fleet of one, so both dashboards have listed something.
    let first = vehicle_error(
        "e-0",
        "veh-aaa-first",
        "AUTHENTICATION",
        None,
        "RESOLVED",
        1_760_000_000_000,
        json!([]),
    );
    assert_eq!(
        post_signed(&http(), &serve.webhook_url(), &first).await,
        200
    );

    let mut screens: Vec<Terminal> = ["ann", "ben"]
        .iter()
        .map(|name| {
            let token = agent_token(&schema.name, name);
            let home = temp_home(&format!("dash-{name}"));
            let home = home.to_string_lossy().to_string();
            Terminal::start(
                &["--server", &serve.origin],
                &[
                    ("VTRIAGE_HOME", home.as_str()),
                    ("VTRIAGE_AGENT_TOKEN", token.as_str()),
                ],
            )
        })
        .collect();
    for t in &mut screens {
        t.wait_for(&format!("DESK {}", serve.origin), Duration::from_secs(20));
        t.wait_for("fleet 1", Duration::from_secs(10));
    }
    // The live stream is up on both before the webhook is sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while serve.metric("vtriage_dashboards_connected").await != Some(2.0) {
        assert!(Instant::now() < deadline, "both dashboards stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let sent = Instant::now();
    let body = blocked_tesla("e-1", "veh-bbb-tesla");
    assert_eq!(post_signed(&http(), &serve.webhook_url(), &body).await, 200);
    let mut seen = [None, None];
    while seen.iter().any(Option::is_none) && sent.elapsed() < Duration::from_secs(5) {
        for (i, t) in screens.iter_mut().enumerate() {
            if seen[i].is_none() && t.shows("BLOCKED 1") {
                seen[i] = Some(sent.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("webhook to both screens: {seen:?}");
    for (i, t) in screens.iter().enumerate() {
        let at = seen[i].unwrap_or_else(|| panic!("screen {i}:\n{}", t.screen()));
        assert!(at <= Duration::from_secs(1), "screen {i} after {at:?}");
    }

    // The desk goes away: both say so and keep what they showed.
    serve.kill9();
    for t in &mut screens {
        t.wait_for("reconnecting", Duration::from_secs(10));
        assert!(t.shows("BLOCKED 1"), "last state kept:\n{}", t.screen());
    }
    // Typed while the desk is away: not lost (the filter is applied locally and stays).
    screens[0].send("/");
    screens[0].send("tesla\r");

    let mut again = serve_at(&schema.name, &listen, &serve.home);
    for t in &mut screens {
        let deadline = Instant::now() + Duration::from_secs(15);
        while t.shows("reconnecting") {
            assert!(
                Instant::now() < deadline,
                "still reconnecting:\n{}",
                t.screen()
            );
            t.pump(Duration::from_millis(50));
        }
        assert!(t.shows("BLOCKED 1"), "same state again:\n{}", t.screen());
        assert!(t.shows("fleet 2"), "{}", t.screen());
    }
    assert!(screens[0].shows("tesla"), "{}", screens[0].screen());
    let _ = again.kill();
    let _ = again.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dashboards_asking_for_one_car_at_once_cost_the_smartcar_api_one_probe() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    // A slow car (3 s an answer), so the second dashboard's request arrives while the first one's
    // probe is still on its way.
    let (sim, serve) = v3_desk(
        &schema.name,
        vtriage::sim::SimConfig {
            vehicles: 30,
            seed: 7,
            vehicle_calls_per_hour: 0,
            latency: vtriage::sim::Latency::Fixed {
                ms: 3000,
                jitter_ms: 0,
            },
            ..vtriage::sim::SimConfig::default()
        },
        &[],
    )
    .await;
    let car = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.is_tesla() && v.situation == vtriage::sim::Situation::VirtualKeyMissing)
        .expect("a Tesla without its key in the seeded fleet")
        .clone();
    let tesla = car.id.clone();

    let mut screens: Vec<Terminal> = ["cat", "dan"]
        .iter()
        .map(|name| {
            let token = agent_token(&schema.name, name);
            let home = temp_home(&format!("probe-{name}"));
            let home = home.to_string_lossy().to_string();
            Terminal::start(
                &["--server", &serve.origin],
                &[
                    ("VTRIAGE_HOME", home.as_str()),
                    ("VTRIAGE_AGENT_TOKEN", token.as_str()),
                ],
            )
        })
        .collect();
    for t in &mut screens {
        t.wait_for("fleet 30", Duration::from_secs(30));
        t.send("/");
        t.send(&tesla);
        t.send("\r");
    }
    // The v3 listing told make and model: shown before any probe.
    for t in &mut screens {
        t.wait_for("1 of 30", Duration::from_secs(10));
        assert!(t.shows(&car.model), "{}", t.screen());
    }
    assert_eq!(
        schema
            .count(&format!(
                "SELECT count(*) FROM {}.vehicles WHERE make IS NOT NULL",
                schema.name
            ))
            .await,
        30
    );
    let opened_from = sim.v3_stats().signals_calls;

    // Both agents open the car at once: its first probe.
    for t in &mut screens {
        t.send("\r");
    }
    for t in &mut screens {
        t.wait_for("virtual key not paired", Duration::from_secs(30));
    }
    // When the owner connected the car, from the listing through the desk.
    assert!(screens[0].shows("connected 20"), "{}", screens[0].screen());
    let forced_from = sim.v3_stats().signals_calls;
    assert_eq!(forced_from - opened_from, 1, "opening from both: one probe");

    // Both press `r` at once: a new answer for both, from one probe.
    for t in &mut screens {
        t.send("r");
    }
    let forced = format!(
        "SELECT count(*) FROM {}.probe_requests WHERE vehicle_id = '{tesla}' AND forced AND served_at IS NOT NULL",
        schema.name
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while schema.count(&forced).await < 2 {
        assert!(
            Instant::now() < deadline,
            "both forced requests served; dashboards:\n{}\n{}",
            screens[0].screen(),
            screens[1].screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for a second probe to have been started and answered, were there one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sim.v3_stats().signals_calls - forced_from,
        1,
        "`r` from both: one probe"
    );
    let probes = format!(
        "SELECT count(DISTINCT probe_result_id) FROM {}.probe_requests WHERE vehicle_id = '{tesla}' AND forced",
        schema.name
    );
    assert_eq!(schema.count(&probes).await, 1, "both served by one result");

    // A VIN the desk has not read: the desk looks it up (reading the VINs of the cars whose make
    // and year fit) and the dashboard opens the car; `vehicle VIN --server` finds it too.
    let unread = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.id != tesla)
        .expect("another car")
        .clone();
    screens[0].send("\x1b");
    screens[0].wait_for("1 of 30", Duration::from_secs(10));
    let looked_up = Instant::now();
    screens[0].send(&format!(":vin {}\r", unread.vin));
    // The vehicle page's header line names the car: `VIN …  vehicle ID  user …`.
    screens[0].wait_for(&format!("vehicle {}", unread.id), Duration::from_secs(60));
    eprintln!("VIN lookup through the desk: {:?}", looked_up.elapsed());
    assert!(screens[0].shows(&unread.vin), "{}", screens[0].screen());
    let token = agent_token(&schema.name, "eve");
    let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["vehicle", &unread.vin, "--server", &serve.origin, "--json"])
        .env("VTRIAGE_HOME", temp_home("vin-eve"))
        .env("VTRIAGE_AGENT_TOKEN", &token)
        .output()
        .expect("vehicle runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&unread.id), "{text}\n{err}");
}

/// `check --server --json` as an agent runs it: the line of `vehicle`.
fn check_line(serve: &Serve, token: &str, vehicle: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["check", "--json", "--server", &serve.origin])
        .env("VTRIAGE_HOME", temp_home("check-clock"))
        .env("VTRIAGE_AGENT_TOKEN", token)
        .env_remove("SMARTCAR_MANAGEMENT_TOKEN")
        .output()
        .expect("check runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["id"] == vehicle)
        .unwrap_or_else(|| {
            panic!(
                "check printed no line for {vehicle}; stderr {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// The desk's row of `vehicle`: status, main finding, and that finding's title.
async fn desk_row(schema: &Schema, vehicle: &str) -> (String, Option<String>, Option<String>) {
    let row = schema
        .client
        .query_one(
            "SELECT status, finding, diagnosis->'findings'->0->>'title' FROM vehicles WHERE vehicle_id = $1",
            &[&vehicle],
        )
        .await
        .expect("the vehicle's row");
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_coming_into_force_blocks_a_car_alike_in_the_database_history_dashboard_and_check() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    // The virtual-key rule comes into force a few seconds from now.
    let in_force = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(15);
    let in_force = in_force.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let home = temp_home("rule-clock");
    std::fs::create_dir_all(home.join("config")).expect("config dir");
    std::fs::write(
        home.join("config/policies.toml"),
        vtriage::health::policy::BUILTIN_POLICIES.replace(
            "in_force = \"2025-01-21\"",
            &format!("in_force = \"{in_force}\""),
        ),
    )
    .expect("policies file");
    let home_text = home.to_string_lossy().to_string();
    let serve = Serve::start_with(
        &database_url(),
        &schema.name,
        &["--demo", "--no-prober", "--rediagnose-every", "1s"],
        &[("VTRIAGE_HOME", home_text.as_str())],
    );
    // A webhook says the Tesla's key is not paired: before the rule's date, a warning.
    let car = "veh-clock-tesla";
    let delivered_ms = jiff::Timestamp::now().as_millisecond() - 1000;
    let state = json!({
        "eventId": "s-clock", "eventType": "VEHICLE_STATE",
        "data": {
            "user": {"id": "user-1"},
            "vehicle": {"id": car, "make": "TESLA", "model": "Model 3", "year": 2022},
            "signals": [{"code": "connectivitystatus-isdigitalkeypaired", "body": {"value": false},
                         "status": {"value": "SUCCESS"}}]
        },
        "meta": {"version": "4.0", "deliveredAt": delivered_ms, "mode": "TEST"}
    })
    .to_string();
    assert_eq!(
        post_signed(&http(), &serve.webhook_url(), &state).await,
        200
    );
    let before = desk_row(&schema, car).await;
    assert_eq!(before.0, "WARNING", "{before:?}");
    assert_eq!(before.1.as_deref(), Some("virtual-key-missing"));

    let token = agent_token(&schema.name, "fay");
    let checked = check_line(&serve, &token, car);
    assert_eq!(checked["status"], "WARNING", "{checked}");
    let dash_home = temp_home("dash-clock");
    let dash_home = dash_home.to_string_lossy().to_string();
    let mut screen = Terminal::start(
        &["--server", &serve.origin],
        &[
            ("VTRIAGE_HOME", dash_home.as_str()),
            ("VTRIAGE_AGENT_TOKEN", token.as_str()),
        ],
    );
    screen.wait_for("WARNING 1", Duration::from_secs(20));
    assert!(
        desk_row(&schema, car).await.0 == "WARNING",
        "the setup outran the rule's date; the test needs a later one"
    );

    // The date passes: the desk diagnoses the car again by itself, without a probe or a delivery.
    let deadline = Instant::now() + Duration::from_secs(40);
    let after = loop {
        let row = desk_row(&schema, car).await;
        if row.0 != "WARNING" {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "still {row:?} after the rule's date"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after.0, "BLOCKED", "{after:?}");
    assert_eq!(after.1.as_deref(), Some("virtual-key-missing"));
    screen.wait_for("BLOCKED 1", Duration::from_secs(5));

    let checked = check_line(&serve, &token, car);
    assert_eq!(checked["status"], "BLOCKED", "{checked}");
    assert_eq!(
        checked["findings"][0]["title"].as_str(),
        after.2.as_deref(),
        "check prints the desk's finding as the desk wrote it"
    );
    let history: Vec<(String, String)> = schema
        .client
        .query(
            "SELECT status, cause FROM status_history WHERE vehicle_id = $1 ORDER BY id",
            &[&car],
        )
        .await
        .expect("history")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        history,
        vec![
            ("WARNING".to_string(), "webhook s-clock".to_string()),
            ("BLOCKED".to_string(), "time".to_string()),
        ]
    );
    let _ = std::fs::remove_dir_all(&home);
}
