//! The terminal is given back whole after a panic: this test runs itself in a pseudo-terminal as a child
//! that switches dashboard mode on (mouse included) and panics, then reads what the child wrote.

use std::io::Read;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use vtriage::tui::{Raterm, TermOptions};

const CHILD: &str = "VTRIAGE_TUI_PANIC_CHILD";

/// In the child: start the dashboard terminal and panic while it is on.
#[test]
fn child_panics_with_the_terminal_in_dashboard_mode() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let _term = Raterm::start(TermOptions { mouse: true }).expect("a pseudo-terminal");
    panic!("boom inside the dashboard");
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn panic_restores_the_terminal_before_the_message_is_printed() {
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("open pty");
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = CommandBuilder::new(exe);
    cmd.args([
        "--exact",
        "tui_terminal::child_panics_with_the_terminal_in_dashboard_mode",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env(CHILD, "1");
    cmd.env("RUST_BACKTRACE", "0");
    let mut child = pair.slave.spawn_command(cmd).expect("spawn child");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let collector = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        out
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "child did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(pair.master);
    let out = collector.join().unwrap_or_default();
    assert!(!status.success(), "the child panicked");

    let at = |seq: &[u8]| position(&out, seq);
    let text = String::from_utf8_lossy(&out);
    let entered =
        at(b"\x1b[?1049h").unwrap_or_else(|| panic!("alternate screen entered: {text:?}"));
    let mouse_on = at(b"\x1b[?1000h").unwrap_or_else(|| panic!("mouse captured: {text:?}"));
    let left = at(b"\x1b[?1049l").unwrap_or_else(|| panic!("alternate screen left: {text:?}"));
    let mouse_off = at(b"\x1b[?1000l").unwrap_or_else(|| panic!("mouse released: {text:?}"));
    let paste_off = at(b"\x1b[?2004l").unwrap_or_else(|| panic!("bracketed paste off: {text:?}"));
    let cursor = at(b"\x1b[?25h").unwrap_or_else(|| panic!("cursor shown: {text:?}"));
    let message =
        at(b"boom inside the dashboard").unwrap_or_else(|| panic!("panic message: {text:?}"));
    assert!(entered < left && mouse_on < mouse_off, "{text:?}");
    for restored in [left, mouse_off, paste_off, cursor] {
        assert!(
            restored < message,
            "restored before the message is printed: {text:?}"
        );
    }
}
