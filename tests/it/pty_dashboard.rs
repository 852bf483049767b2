//! The real binary in a pseudo-terminal, driven as a person would: start, filter, drill down, copy, back, quit.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// A running `vtriage` in a PTY with a vt100 screen fed from its output.
struct Terminal {
    parser: vt100::Parser,
    raw: Vec<u8>,
    output: mpsc::Receiver<Vec<u8>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Terminal {
    fn start(args: &[&str], env: &[(&str, &str)], rows: u16, cols: u16) -> Terminal {
        let pty = native_pty_system();
        let pair = pty
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_vtriage"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        for k in [
            "SMARTCAR_MANAGEMENT_TOKEN",
            "SMARTCAR_API_ORIGIN",
            "SMARTCAR_MANAGEMENT_API_ORIGIN",
            // No system clipboard unless a test gives one: copies go through the terminal (OSC 52).
            "DISPLAY",
            "WAYLAND_DISPLAY",
            // Run from inside tmux, the copies would go to its buffer.
            "TMUX",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).expect("vtriage starts");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Terminal {
            parser: vt100::Parser::new(rows, cols, 0),
            raw: Vec::new(),
            output: rx,
            writer,
            child,
            _master: pair.master,
        }
    }

    fn pump(&mut self, wait: Duration) {
        if let Ok(bytes) = self.output.recv_timeout(wait) {
            self.parser.process(&bytes);
            self.raw.extend_from_slice(&bytes);
        }
        while let Ok(bytes) = self.output.try_recv() {
            self.parser.process(&bytes);
            self.raw.extend_from_slice(&bytes);
        }
    }

    fn screen(&self) -> String {
        self.parser.screen().contents()
    }

    /// Waits until the screen shows `text`; fails with the screen when it does not within the limit.
    fn wait_for(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.screen().contains(text) {
                return;
            }
            self.pump(Duration::from_millis(50));
        }
        panic!(
            "waited {limit:?} for {text:?}; the screen shows:\n{}",
            self.screen()
        );
    }

    /// Waits until the raw output (escape sequences included) contains `bytes`.
    fn wait_for_raw(&mut self, bytes: &[u8], limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.raw.windows(bytes.len()).any(|w| w == bytes) {
                return;
            }
            self.pump(Duration::from_millis(50));
        }
        panic!(
            "waited {limit:?} for {:?} in the output",
            String::from_utf8_lossy(bytes)
        );
    }

    fn send(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    fn wait_exit(&mut self, limit: Duration) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.pump(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vtriage did not exit; screen:\n{}",
                self.screen()
            );
            self.pump(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn temp_home(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("vtriage-pty-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().to_string()
}

/// The terminal is back to normal: alternate screen left, cursor shown, mouse and bracketed paste off.
fn assert_restored(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    let last = |seq: &str| text.rfind(seq);
    let left_alt = last("\x1b[?1049l").expect("left the alternate screen");
    assert!(
        last("\x1b[?1049h").is_none_or(|entered| entered < left_alt),
        "alternate screen left last"
    );
    assert!(last("\x1b[?25h").is_some(), "cursor shown again");
    if let Some(on) = last("\x1b[?2004h") {
        assert!(
            last("\x1b[?2004l").is_some_and(|off| off > on),
            "bracketed paste switched off"
        );
    }
    if let Some(on) = last("\x1b[?1000h") {
        assert!(
            last("\x1b[?1000l").is_some_and(|off| off > on),
            "mouse capture switched off"
        );
    }
}

#[test]
fn agent_finds_a_blocked_tesla_copies_the_pairing_link_and_quits() {
    let home = temp_home("flow");
    let mut t = Terminal::start(
        &["--now", "2026-11-27T12:00:00Z"],
        &[("VTRIAGE_HOME", home.as_str())],
        40,
        140,
    );
    t.wait_for("DEMO", Duration::from_secs(10));
    // Rows appear and some get diagnosed.
    t.wait_for("BLOCKED", Duration::from_secs(60));
    // The ticket names a VIN: a Tesla of the demo fleet without virtual key (the fleet is seeded).
    let fleet = vtriage::sim::Fleet::generate(vtriage::setup::DEMO_VEHICLES, 7);
    let tesla = fleet
        .newest_first()
        .iter()
        .map(|&i| &fleet.vehicles[i])
        .find(|v| v.situation == vtriage::sim::Situation::VirtualKeyMissing)
        .expect("the demo fleet has a Tesla without virtual key");
    let vin_part = &tesla.vin[9..];
    t.send("/");
    t.send(vin_part);
    t.send("\r");
    // Its row is on screen once probed (the sweep reaches it), with the missing-key badge.
    t.wait_for(&tesla.vin, Duration::from_secs(90));
    t.wait_for("✖ missing", Duration::from_secs(30));
    t.send("\r");
    t.wait_for(
        "https://www.tesla.com/_ak/smartcar.com",
        Duration::from_secs(30),
    );
    // Copy the fix link: an OSC 52 sequence goes to the terminal.
    t.send("y");
    t.wait_for_raw(b"\x1b]52;c;", Duration::from_secs(5));
    t.wait_for(
        "pairing link sent to the terminal (OSC 52; ? for tmux)",
        Duration::from_secs(5),
    );
    // Back to the fleet with the filter kept.
    t.send("\x1b");
    t.wait_for(&format!("/{vin_part}"), Duration::from_secs(5));
    t.wait_for(&tesla.vin, Duration::from_secs(5));
    t.send("q");
    let status = t.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit 0");
    assert_restored(&t.raw);
}

#[test]
fn unreachable_origin_is_shown_in_the_dashboard_then_one_line_and_exit_2() {
    let home = temp_home("unreachable");
    let mut t = Terminal::start(
        &[
            "--api-origin",
            "http://127.0.0.1:9",
            "--management-origin",
            "http://127.0.0.1:9",
            "--amt",
            "x",
        ],
        &[("VTRIAGE_HOME", home.as_str())],
        24,
        80,
    );
    t.wait_for("could not be listed", Duration::from_secs(60));
    assert!(!t.screen().contains("sweep: 0"), "{}", t.screen());
    t.send("q");
    let status = t.wait_exit(Duration::from_secs(30));
    assert_eq!(status.exit_code(), 2, "{status:?}");
    assert_restored(&t.raw);
    let text = String::from_utf8_lossy(&t.raw);
    let after = text.rsplit("\x1b[?1049l").next().unwrap_or_default();
    assert!(
        after.contains("vtriage: cannot reach http://127.0.0.1:9"),
        "the reason after the terminal is restored: {after:?}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

/// A vehicle of the seeded demo fleet in `situation`.
fn demo_vehicle(situation: vtriage::sim::Situation) -> vtriage::sim::SimVehicle {
    let fleet = vtriage::sim::Fleet::generate(vtriage::setup::DEMO_VEHICLES, 7);
    fleet
        .vehicles
        .iter()
        .find(|v| v.situation == situation)
        .cloned()
        .expect("the demo fleet has a vehicle in that situation")
}

/// The screen's line starting with `prefix`.
fn line_starting<'a>(screen: &'a str, prefix: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.starts_with(prefix))
}

/// The count after `label` on the status line, thousands separators allowed.
fn status_count(screen: &str, label: &str) -> Option<usize> {
    let line = screen.lines().find(|l| l.contains("BLOCKED"))?;
    let rest = &line[line.find(label)? + label.len()..];
    rest.split_whitespace()
        .next()?
        .replace(',', "")
        .parse()
        .ok()
}

#[test]
fn at_80x24_counts_are_whole_and_the_vin_column_stays() {
    let home = temp_home("narrow");
    let mut t = Terminal::start(
        &["--now", "2026-11-27T12:00:00Z"],
        &[("VTRIAGE_HOME", home.as_str())],
        24,
        80,
    );
    t.wait_for("fleet 2,000", Duration::from_secs(30));
    t.wait_for("  Status", Duration::from_secs(30));
    let screen = t.screen();
    // Two thousand vehicles, a few probed: the unknown count has four digits, all of them shown.
    let unknown = status_count(&screen, "UNKNOWN ");
    assert!(
        unknown.is_some_and(|n| n >= 1_000),
        "UNKNOWN {unknown:?} in:\n{screen}"
    );
    let header = line_starting(&screen, "  Status").unwrap_or_default();
    assert!(header.contains("VIN"), "{header:?}\n{screen}");
    t.send("q");
    t.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn at_120x40_the_finding_column_holds_a_rule_title() {
    let home = temp_home("wide");
    let mut t = Terminal::start(
        &["--now", "2026-11-27T12:00:00Z"],
        &[("VTRIAGE_HOME", home.as_str())],
        40,
        120,
    );
    t.wait_for("  Status", Duration::from_secs(30));
    let screen = t.screen();
    let header = line_starting(&screen, "  Status").unwrap_or_default();
    let (Some(finding), Some(checked)) = (header.find("Finding"), header.find("Checked")) else {
        panic!("no Finding and Checked columns: {header:?}");
    };
    // The characters in between: "Tesla: virtual key required for data" is 36 of them.
    let width = header[finding..checked].chars().count() - 1;
    assert!(width >= 36, "Finding is {width} wide: {header:?}");
    t.send("q");
    t.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_fix_link_wider_than_the_screen_is_shown_whole_on_rows_of_its_own_and_is_an_osc8_hyperlink() {
    let home = temp_home("osc8");
    let location = demo_vehicle(vtriage::sim::Situation::LocationPermissionMissing);
    let pairing = demo_vehicle(vtriage::sim::Situation::VirtualKeyMissing);
    let mut t = Terminal::start(
        &["--now", "2026-11-27T12:00:00Z"],
        &[("VTRIAGE_HOME", home.as_str())],
        24,
        80,
    );
    t.wait_for("  Status", Duration::from_secs(30));
    t.send(&format!(":vehicle {}\r", location.id));
    // The demo's links go to its own Connect page (the simulator's origin), longer than 80 columns.
    t.wait_for("    http://127.0.0.1:", Duration::from_secs(60));
    t.wait_for_raw(b"\x1b]8;;http://127.0.0.1:", Duration::from_secs(10));
    let raw = String::from_utf8_lossy(&t.raw).to_string();
    let link = raw
        .split("\x1b]8;;")
        .filter_map(|s| s.split_once("\x1b\\").map(|(url, _)| url))
        .find(|url| url.starts_with("http://127.0.0.1:") && url.contains("/oauth/reauthenticate?"))
        .unwrap_or_else(|| panic!("no OSC 8 hyperlink to the demo's Connect page"))
        .to_string();
    assert!(link.len() > 76, "a link wider than the screen: {link}");
    // On screen, the rows from its first one read as the whole link, each under the text's indent.
    let whole_on = |screen: &str| -> Option<String> {
        let lines: Vec<&str> = screen.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("    http://127.0.0.1:"))?;
        let mut whole = String::new();
        for row in &lines[at..] {
            if whole.len() >= link.len() || !row.starts_with("    ") {
                break;
            }
            whole.push_str(row.trim());
        }
        Some(whole)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut screen = t.screen();
    while whole_on(&screen).as_deref() != Some(link.as_str()) && Instant::now() < deadline {
        t.pump(Duration::from_millis(50));
        screen = t.screen();
    }
    let whole = whole_on(&screen).unwrap_or_default();
    // Every row it takes is a hyperlink to the whole link.
    let rows = whole.len().div_ceil(76);
    let sequence = format!("\x1b]8;;{link}\x1b\\");
    let deadline = Instant::now() + Duration::from_secs(10);
    let count = |raw: &[u8]| String::from_utf8_lossy(raw).matches(&sequence).count();
    while count(&t.raw) < rows && Instant::now() < deadline {
        t.pump(Duration::from_millis(50));
    }
    let pieces = count(&t.raw);
    assert!(
        pieces >= rows && rows >= 2,
        "{pieces} hyperlinked rows of {rows} for {link}"
    );
    assert_eq!(whole, link, "the link whole on screen:\n{screen}");

    // Back to the fleet first: Esc and `:` sent together read as Alt-:.
    t.send("\x1b");
    t.wait_for("  Status ▼", Duration::from_secs(10));
    t.send(&format!(":vehicle {}\r", pairing.id));
    t.wait_for(
        "https://www.tesla.com/_ak/smartcar.com",
        Duration::from_secs(60),
    );
    // The terminal gets the pairing link as a hyperlink (OSC 8 ... ST).
    t.wait_for_raw(
        b"\x1b]8;;https://www.tesla.com/_ak/smartcar.com\x1b\\",
        Duration::from_secs(5),
    );
    t.wait_for_raw(b"\x1b]8;;\x1b\\", Duration::from_secs(5));
    t.send("q");
    t.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&home);
}

#[cfg(unix)]
#[test]
fn with_a_system_clipboard_the_link_is_copied_through_it_and_the_footer_says_copied() {
    use std::os::unix::fs::PermissionsExt;
    let home = temp_home("clip");
    let bin = std::path::Path::new(&home).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let clip = std::path::Path::new(&home).join("clipboard");
    let xclip = bin.join("xclip");
    std::fs::write(&xclip, format!("#!/bin/sh\ncat > '{}'\n", clip.display())).unwrap();
    std::fs::set_permissions(&xclip, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let vehicle = demo_vehicle(vtriage::sim::Situation::VirtualKeyMissing);
    let mut t = Terminal::start(
        &["--now", "2026-11-27T12:00:00Z"],
        &[
            ("VTRIAGE_HOME", home.as_str()),
            ("PATH", path.as_str()),
            ("DISPLAY", ":0"),
        ],
        24,
        80,
    );
    t.wait_for("  Status", Duration::from_secs(30));
    t.send(&format!(":vehicle {}\r", vehicle.id));
    t.wait_for(
        "https://www.tesla.com/_ak/smartcar.com",
        Duration::from_secs(60),
    );
    t.send("y");
    t.wait_for("copied pairing link (xclip)", Duration::from_secs(10));
    assert_eq!(
        std::fs::read_to_string(&clip).unwrap_or_default(),
        "https://www.tesla.com/_ak/smartcar.com"
    );
    assert!(
        !t.raw.windows(6).any(|w| w == b"\x1b]52;c"),
        "no OSC 52 once the system clipboard took it"
    );
    t.send("q");
    t.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&home);
}

#[cfg(unix)]
#[test]
fn inside_tmux_the_link_goes_to_its_buffer_and_the_footer_says_copied_there() {
    use std::os::unix::fs::PermissionsExt;
    let home = temp_home("tmux");
    let bin = std::path::Path::new(&home).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let buffer = std::path::Path::new(&home).join("buffer");
    let tmux = bin.join("tmux");
    std::fs::write(
        &tmux,
        format!(
            "#!/bin/sh\n[ \"$*\" = 'load-buffer -' ] || exit 2\ncat > '{}'\n",
            buffer.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&tmux, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let vehicle = demo_vehicle(vtriage::sim::Situation::VirtualKeyMissing);
    let mut t = Terminal::start(
        &["--now", "2026-11-27T12:00:00Z"],
        &[
            ("VTRIAGE_HOME", home.as_str()),
            ("PATH", path.as_str()),
            ("TMUX", "/tmp/tmux-1000/default,4242,0"),
        ],
        24,
        80,
    );
    t.wait_for("  Status", Duration::from_secs(30));
    t.send(&format!(":vehicle {}\r", vehicle.id));
    t.wait_for(
        "https://www.tesla.com/_ak/smartcar.com",
        Duration::from_secs(60),
    );
    t.send("y");
    t.wait_for(
        "copied pairing link to the tmux buffer (prefix ] pastes)",
        Duration::from_secs(10),
    );
    assert_eq!(
        std::fs::read_to_string(&buffer).unwrap_or_default(),
        "https://www.tesla.com/_ak/smartcar.com"
    );
    // OSC 52 goes too, for a tmux with set-clipboard on to pass to the terminal.
    t.wait_for_raw(b"\x1b]52;c;", Duration::from_secs(5));
    t.send("q");
    t.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn the_demo_shows_a_tesla_blocked_by_the_virtual_key_rule_in_its_first_seconds() {
    let home = temp_home("firstminute");
    let mut t = Terminal::start(&[], &[("VTRIAGE_HOME", home.as_str())], 40, 120);
    t.wait_for("  Status", Duration::from_secs(30));
    // The demo speaks API v3: the listing names each car's make, and the sweep reaches the
    // makes the rules concern first.
    t.send("/rule:tesla-virtual-key status:blocked\r");
    t.wait_for("✖ BLOCKED  TESLA", Duration::from_secs(30));
    t.wait_for("2,000/2,000 vehicles checked", Duration::from_secs(120));
    t.send("q");
    t.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&home);
}
