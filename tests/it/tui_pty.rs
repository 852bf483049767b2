//! The real binary in a pseudo-terminal, used as an agent would: start the demo, show the blocked
//! vehicles, open one, copy its evidence, go back with the filter kept, quit. Waits for text, never
//! for a fixed time.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const ROWS: u16 = 30;
const COLS: u16 = 120;

struct Session {
    output: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Session {
    fn start(home: &std::path::Path) -> Session {
        Session::start_with(home, &[])
    }

    fn start_with(home: &std::path::Path, env: &[(&str, &str)]) -> Session {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_vtriage"));
        cmd.env("VTRIAGE_HOME", home);
        cmd.env("TERM", "xterm-256color");
        for var in [
            "SMARTCAR_API_ORIGIN",
            "SMARTCAR_MANAGEMENT_API_ORIGIN",
            "SMARTCAR_CONNECT_ORIGIN",
            // A client secret in the environment would take the demo live on API v3.
            "SMARTCAR_CLIENT_SECRET",
            "NO_COLOR",
            // No system clipboard unless a test gives one: copies go through the terminal (OSC 52).
            "DISPLAY",
            "WAYLAND_DISPLAY",
            // Run from inside tmux, the copies would go to its buffer.
            "TMUX",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).expect("spawn vtriage");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = pair.master.take_writer().expect("writer");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut out) = sink.lock() {
                    out.extend_from_slice(&chunk[..n]);
                }
            }
        });
        Session {
            output,
            writer,
            child,
            _master: pair.master,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    fn screen(&self) -> String {
        let mut parser = vt100::Parser::new(ROWS, COLS, 0);
        parser.process(&self.bytes());
        parser.screen().contents()
    }

    /// Waits until the screen shows `text`; fails with the screen when it does not within 60 s.
    fn wait_for(&self, text: &str) -> String {
        self.wait_until(text, |screen| screen.contains(text))
    }

    fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("send keys");
        self.writer.flush().expect("flush keys");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
    }
}

/// The BLOCKED count of the status summary (`1 ✖ BLOCKED 12  2 ▲ ...`).
fn blocked_count(screen: &str) -> usize {
    screen
        .lines()
        .find_map(|l| l.strip_prefix("1 ✖ BLOCKED "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn agent_filters_blocked_opens_one_copies_evidence_and_comes_back() {
    let home = std::env::temp_dir().join(format!("vtriage-tui-pty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let mut s = Session::start(&home);

    s.wait_for("DEMO");
    s.wait_until("a blocked vehicle", |screen| blocked_count(screen) > 0);
    s.send("1");
    let list = s.wait_for("/status:blocked");
    assert!(!list.contains("● HEALTHY  "), "only blocked rows:\n{list}");

    s.send("\r");
    let page = s.wait_for("── Findings");
    assert!(page.contains("✖ BLOCKED"), "{page}");
    // The evidence exists for every vehicle; a fix link only for some.
    s.send("i");
    s.wait_for("evidence for escalation sent to the terminal (OSC 52; ? for tmux)");
    let raw = String::from_utf8_lossy(&s.bytes()).to_string();
    assert!(raw.contains("\x1b]52;c;"), "an OSC 52 copy was written");

    s.send("\x1b");
    let back = s.wait_for("/status:blocked");
    assert!(
        back.contains("▶ ✖ BLOCKED"),
        "selection kept on a blocked row:\n{back}"
    );

    s.send("q");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = s.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "vtriage did not quit; screen:\n{}",
            s.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let raw = s.bytes();
    let left = raw.windows(8).rposition(|w| w == b"\x1b[?1049l");
    assert!(left.is_some(), "the alternate screen was left");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_panic_restores_the_terminal_and_ends_the_process_with_one_line_and_the_log_path() {
    let home = std::env::temp_dir().join(format!("vtriage-tui-panic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let mut s = Session::start_with(&home, &[("VTRIAGE_DEBUG_PANIC", "1")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = s.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the process must end after a panic; screen:\n{}",
            s.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.exit_code(), 101);
    // The reader thread may still be draining the last bytes.
    std::thread::sleep(Duration::from_millis(200));
    let raw = String::from_utf8_lossy(&s.bytes()).to_string();
    let left = raw
        .rfind("\x1b[?1049l")
        .expect("the alternate screen was left");
    let entered = raw
        .rfind("\x1b[?1049h")
        .expect("the alternate screen was entered");
    assert!(left > entered, "restored after the last frame");
    let after = &raw[left..];
    assert!(after.contains("\x1b[?25h"), "cursor shown again");
    assert!(
        after.contains(
            "vtriage: internal error, the dashboard stopped: forced by VTRIAGE_DEBUG_PANIC"
        ),
        "{after:?}"
    );
    assert!(
        after.contains("details in") && after.contains("vtriage.log"),
        "{after:?}"
    );
    let log = std::fs::read_to_string(home.join("state").join("vtriage.log")).unwrap_or_default();
    assert!(log.contains("panic"), "the panic is in the log: {log}");
}

#[test]
fn the_dashboard_on_api_v3_opens_a_tesla_and_shows_the_signal_that_proves_the_missing_key() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sim = runtime
        .block_on(vtriage::sim::spawn(
            vtriage::sim::SimConfig {
                vehicles: 60,
                seed: 7,
                vehicle_calls_per_hour: 0,
                ..vtriage::sim::SimConfig::default()
            },
            "127.0.0.1:0".parse().expect("loopback"),
        ))
        .expect("simulator starts");
    let tesla = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.is_tesla() && v.situation == vtriage::sim::Situation::VirtualKeyMissing)
        .expect("a Tesla without its key in the seeded fleet")
        .clone();
    let home = std::env::temp_dir().join(format!("vtriage-tui-v3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let config = sim.config().clone();
    let mut s = Session::start_with(
        &home,
        &[
            ("SMARTCAR_CLIENT_ID", config.client_id.as_str()),
            ("SMARTCAR_CLIENT_SECRET", config.client_secret.as_str()),
            ("SMARTCAR_IAM_ORIGIN", sim.origin()),
            ("SMARTCAR_API_V3_ORIGIN", sim.origin()),
        ],
    );
    s.wait_for("LIVE");
    s.send("/");
    s.send(&tesla.id);
    s.send("\r");
    s.wait_for(&tesla.id);
    s.send("\r");
    let page = s.wait_until("the probe's findings", |screen| {
        screen.contains("── Findings") && screen.contains("BLOCKED")
    });
    assert!(
        page.contains("/signals"),
        "v3 evidence on the page:\n{page}"
    );
    assert!(!page.contains(config.client_secret.as_str()));
    s.send("q");
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.child.try_wait().ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "vtriage did not quit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sim.v3_stats().signals_calls >= 1);
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn w_on_a_blocked_demo_car_watches_it_on_its_page_and_in_the_header() {
    let home = std::env::temp_dir().join(format!("vtriage-tui-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let mut s = Session::start(&home);

    s.wait_for("DEMO");
    s.wait_until("a blocked vehicle", |screen| blocked_count(screen) > 0);
    s.send("1");
    s.wait_for("/status:blocked");
    s.send("\r");
    s.wait_for("── Findings");
    s.send("w");
    s.wait_for("then less often (at most every 15 min)");
    let page = s.wait_for("watched since");
    assert!(page.contains("· next probe"), "{page}");
    assert!(page.contains("watching 1"), "the header counts it:\n{page}");

    let id = page
        .split_whitespace()
        .skip_while(|w| *w != "vehicle")
        .nth(1)
        .expect("the page names the vehicle")
        .to_string();

    s.send("?");
    s.wait_for("Watch this car once its fix was sent");
    s.send("?");
    s.wait_until("the help closed", |screen| {
        !screen.contains("Watch this car")
    });
    s.send("q");
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.child.try_wait().ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "vtriage did not quit");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The next run's `vehicle` shows the watch the dashboard started.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["vehicle", id.as_str()])
        .env("VTRIAGE_HOME", &home)
        .env_remove("SMARTCAR_CLIENT_SECRET")
        .output()
        .expect("vtriage vehicle runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("watched {id} (")) && stdout.contains("not recovered yet"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `check --json` keeps one record per line on stdout and says the watch on stderr.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["check", "--json", "--filter", &format!("id:{id}")])
        .env("VTRIAGE_HOME", &home)
        .env_remove("SMARTCAR_CLIENT_SECRET")
        .output()
        .expect("vtriage check runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("watched {id} (")), "{stderr}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("stdout stays JSON lines");
    }
    let _ = std::fs::remove_dir_all(&home);
}
