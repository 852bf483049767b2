//! Owns the terminal's lifecycle: raw mode, alternate screen, bracketed paste, mouse capture and cursor, undone on every exit path.

use std::io::{self, Stdout, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Once, OnceLock};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{
    cursor,
    event::{DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture},
    execute,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};

/// What has been switched on and must be switched off again. One process has one terminal,
/// so this is process-wide: the panic hook must find it without a handle.
static ENABLED: AtomicU8 = AtomicU8::new(0);
static HOOK: Once = Once::new();

/// One terminal feature that [`Raterm::start`] switches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Feature {
    RawMode = 1,
    AlternateScreen = 2,
    BracketedPaste = 4,
    MouseCapture = 8,
    HiddenCursor = 16,
}

impl Feature {
    /// In the order they are undone: the reverse of how they were enabled.
    const TEARDOWN: [Feature; 5] = [
        Feature::MouseCapture,
        Feature::BracketedPaste,
        Feature::AlternateScreen,
        Feature::HiddenCursor,
        Feature::RawMode,
    ];
}

/// The escape sequences that undo every feature in `enabled` except raw mode (which is not a sequence).
pub fn restore_sequence(enabled: u8) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    for feature in Feature::TEARDOWN {
        if enabled & feature as u8 == 0 {
            continue;
        }
        // Writing into a Vec cannot fail.
        let _ = match feature {
            Feature::MouseCapture => execute!(out, DisableMouseCapture),
            Feature::BracketedPaste => execute!(out, DisableBracketedPaste),
            Feature::AlternateScreen => execute!(out, LeaveAlternateScreen),
            Feature::HiddenCursor => execute!(out, cursor::Show),
            Feature::RawMode => Ok(()),
        };
    }
    out
}

/// Options for [`Raterm::start`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TermOptions {
    /// Capture the mouse. Off by default: it takes text selection away from the terminal.
    pub mouse: bool,
}

/// The dashboard's terminal. Dropping it, calling [`Raterm::stop`], or panicking restores the
/// terminal exactly once.
pub struct Raterm {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Raterm {
    /// Switches the terminal into dashboard mode. On failure, whatever was switched on is switched off.
    pub fn start(options: TermOptions) -> io::Result<Raterm> {
        install_panic_hook();
        let result = Self::enable(options);
        if result.is_err() {
            let _ = Self::stop();
        }
        result
    }

    fn enable(options: TermOptions) -> io::Result<Raterm> {
        let mut stdout = io::stdout();
        terminal::enable_raw_mode()?;
        mark(Feature::RawMode);
        execute!(stdout, EnterAlternateScreen)?;
        mark(Feature::AlternateScreen);
        execute!(stdout, EnableBracketedPaste)?;
        mark(Feature::BracketedPaste);
        if options.mouse {
            execute!(stdout, EnableMouseCapture)?;
            mark(Feature::MouseCapture);
        }
        execute!(stdout, cursor::Hide)?;
        mark(Feature::HiddenCursor);
        let terminal = Terminal::new(CrosstermBackend::new(stdout))?;
        Ok(Raterm { terminal })
    }

    /// The ratatui terminal to draw on.
    pub fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        &mut self.terminal
    }

    /// Writes raw bytes (an OSC 52 sequence) past ratatui's buffer, straight to the terminal.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let out = self.terminal.backend_mut();
        out.write_all(bytes)?;
        out.flush()
    }

    /// Undoes everything that was enabled. Idempotent: later calls find nothing left to undo.
    pub fn stop() -> io::Result<()> {
        let enabled = ENABLED.swap(0, Ordering::SeqCst);
        if enabled == 0 {
            return Ok(());
        }
        let mut stdout = io::stdout();
        // Keep going after a failure: a half-restored terminal is worse than a reported error.
        let written = stdout
            .write_all(&restore_sequence(enabled))
            .and_then(|()| stdout.flush());
        let raw = if enabled & Feature::RawMode as u8 != 0 {
            terminal::disable_raw_mode()
        } else {
            Ok(())
        };
        written.and(raw)
    }

    /// Whether a feature is currently on (for tests and diagnostics).
    pub fn is_enabled(feature: Feature) -> bool {
        ENABLED.load(Ordering::SeqCst) & feature as u8 != 0
    }
}

impl Drop for Raterm {
    fn drop(&mut self) {
        let _ = Raterm::stop();
    }
}

fn mark(feature: Feature) {
    ENABLED.fetch_or(feature as u8, Ordering::SeqCst);
}

/// Where the log is written, for the one line a panic leaves on the restored terminal.
static LOG_PATH: OnceLock<PathBuf> = OnceLock::new();

/// Names the log file that the panic message points to. The first call wins.
pub fn set_log_path(path: PathBuf) {
    let _ = LOG_PATH.set(path);
}

/// Exit status of a process ended by a panic (the status Rust gives a panicking main).
pub const PANIC_EXIT_CODE: i32 = 101;

/// The one line a panic leaves on the restored terminal.
pub fn panic_line(info: &std::panic::PanicHookInfo<'_>, log: Option<&std::path::Path>) -> String {
    let what = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    let what: String = what.chars().filter(|c| !c.is_control()).take(300).collect();
    let at = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let log = log
        .map(|p| format!("; details in {}", p.display()))
        .unwrap_or_default();
    format!("vtriage: internal error, the dashboard stopped: {what}{at}{log}")
}

/// Restores the terminal, then ends the process with one line. A panic on any thread while the
/// dashboard is up must not leave it running in a cooked terminal: the scheduler or the input
/// reader dying alone would leave a screen that no longer answers.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let dashboard_up = ENABLED.load(Ordering::SeqCst) != 0;
            let _ = Raterm::stop();
            if !dashboard_up {
                previous(info);
                return;
            }
            let log = LOG_PATH.get().map(PathBuf::as_path);
            // Written straight to the file: the logger's writer thread would not flush before exit.
            if let Some(path) = log
                && let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(path)
            {
                let trace = std::backtrace::Backtrace::force_capture();
                let _ = writeln!(
                    file,
                    "{} ERROR panic: {info}\n{trace}",
                    jiff::Timestamp::now()
                );
            }
            let line = panic_line(info, log);
            let _ = writeln!(io::stderr(), "{line}");
            std::process::exit(PANIC_EXIT_CODE);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_but_raw() -> u8 {
        Feature::AlternateScreen as u8
            | Feature::BracketedPaste as u8
            | Feature::MouseCapture as u8
            | Feature::HiddenCursor as u8
    }

    #[test]
    fn restore_undoes_every_enabled_feature() {
        let text = String::from_utf8(restore_sequence(all_but_raw())).unwrap_or_default();
        assert!(text.contains("\x1b[?1000l"), "mouse capture off: {text:?}");
        assert!(
            text.contains("\x1b[?2004l"),
            "bracketed paste off: {text:?}"
        );
        assert!(
            text.contains("\x1b[?1049l"),
            "alternate screen left: {text:?}"
        );
        assert!(text.contains("\x1b[?25h"), "cursor shown: {text:?}");
    }

    #[test]
    fn restore_leaves_mouse_alone_when_it_was_never_captured() {
        let enabled = all_but_raw() & !(Feature::MouseCapture as u8);
        let text = String::from_utf8(restore_sequence(enabled)).unwrap_or_default();
        assert!(!text.contains("\x1b[?1000l"), "{text:?}");
        assert!(text.contains("\x1b[?1049l"));
    }

    #[test]
    fn stop_without_start_is_a_no_op_and_repeatable() {
        assert!(Raterm::stop().is_ok());
        assert!(Raterm::stop().is_ok());
        assert!(!Raterm::is_enabled(Feature::RawMode));
    }
}
