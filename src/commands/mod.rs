//! The subcommands: each turns settings into a running session or a printout and returns an exit code.
//! One file per command; what several share (errors, logging, the snapshot, how a run ends) is here.

use std::collections::{HashSet, VecDeque};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::{CheckArgs, ConnectMode, ConnectUrlArgs, DeadlinesArgs, GlobalArgs, VehicleArgs};
use crate::fetch::{Command, Event, ListingFilter, Priority, Progress};
use crate::health::Status;
use crate::report::{self, VehicleSummary};
use crate::setup::{self, Session, Settings, SetupError};
use crate::smartcar::connect::{self, ConnectOptions, SingleSelect};
use crate::store::{self, Store, VehicleRecord};
use crate::untrusted::text::one_line;

mod agent;
mod check;
mod connect_url;
mod dashboard;
mod deadlines;
mod info;
mod outreach;
mod serve;
mod session;
mod sim;
mod vehicle;

pub use agent::agent;
pub use check::check;
pub use connect_url::connect_url;
pub use dashboard::dashboard;
pub use deadlines::deadlines;
pub use info::info;
pub use outreach::outreach;
pub use serve::serve;
use session::*;
pub use sim::sim;
pub use vehicle::vehicle;

/// A command that could not run; printed as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Source(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    Dashboard(#[from] crate::tui::TuiError),
    #[error(transparent)]
    Desk(#[from] crate::desk::DeskError),
    #[error(transparent)]
    Remote(#[from] crate::desk::remote::RemoteError),
    #[error(transparent)]
    Agent(#[from] crate::desk::agents::AgentError),
}

impl CommandError {
    /// The reader of the output stopped reading (`| head`), whichever writer met it (the CSV
    /// writer wraps the I/O error in its own).
    pub fn is_broken_pipe(&self) -> bool {
        let CommandError::Output(e) = self else {
            return false;
        };
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return true;
        }
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<csv::Error>())
            .is_some_and(|c| {
                matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
    }
}

fn print_warnings(settings: &Settings) {
    for w in &settings.warnings {
        eprintln!("vtriage: warning: {}", one_line(w));
    }
}

/// Starts file logging in the state folder; nothing is ever logged to the terminal.
/// `VTRIAGE_LOG` sets the filter (default `info`).
pub fn init_logging(settings: &Settings) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let dir = &settings.paths.state_dir;
    crate::private_files::create_dir(dir).ok()?;
    let file = crate::private_files::append_file(&settings.paths.log_file()).ok()?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("VTRIAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .ok()?;
    Some(guard)
}

/// Why a check stopped waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// Every vehicle asked for has a report.
    Complete,
    /// `--timeout` passed.
    Deadline,
    /// SIGINT or SIGTERM, by name.
    Signal(&'static str),
    /// A source every probe needs is unreachable, or refuses the app's credentials: waiting for
    /// the rest would only wait for retries.
    SourceDown(Box<crate::fetch::SourceOutage>),
}

/// Exit status of `check` and `vehicle` when nothing is blocked but some vehicles could not be
/// checked: the deadline, a signal, or the Vehicle API or token endpoint unreachable.
pub const EXIT_NOT_CHECKED: u8 = 3;

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, with the signal's name.
async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    match tokio::signal::ctrl_c().await {
        Ok(()) => "Ctrl-C",
        Err(_) => std::future::pending().await,
    }
}

/// Why the vehicles still waiting were not checked, in words for the report and stderr.
fn not_checked_reason(ending: &Ending, timeout: Duration, store: &Store) -> String {
    let mut reason = match ending {
        Ending::Complete => "no answer".to_string(),
        Ending::Deadline => format!(
            "the check's deadline passed (--timeout {})",
            crate::health::remedy::human_seconds(timeout.as_secs())
        ),
        Ending::Signal(name) => format!("the check was interrupted ({name})"),
        Ending::SourceDown(outage) => one_line(&outage.message).into_owned(),
    };
    if let Some(until) = store.rate_limited_until()
        && until > jiff::Timestamp::now()
    {
        let who = if store.rate_limited_by_smartcar() {
            "rate limited by Smartcar"
        } else {
            "waiting for budget"
        };
        reason.push_str(&format!("; {who} until {}", report::format_instant(until)));
    }
    reason
}

fn save_snapshot(settings: &Settings, store: &Store) {
    save_snapshot_as(settings, store, store.to_snapshot());
}

/// Saves the snapshot dated `listed_at`: when the fleet it holds was last listed whole.
fn save_snapshot_dated(settings: &Settings, store: &Store, listed_at: jiff::Timestamp) {
    let mut snapshot = store.to_snapshot();
    snapshot.saved_at = listed_at;
    save_snapshot_as(settings, store, snapshot);
}

fn save_snapshot_as(settings: &Settings, store: &Store, snapshot: store::snapshot::Snapshot) {
    if store.is_empty() {
        return;
    }
    let path = settings.paths.snapshot_file(&settings.profile);
    if let Err(e) = store::snapshot::save(&path, &snapshot) {
        eprintln!("vtriage: warning: {}", one_line(&e.to_string()));
    }
}

/// Loads the profile's last snapshot into `store` (a bad one becomes a warning); returns the commands that
/// hand its attributes and VINs to the scheduler, so known vehicles skip a round trip.
fn restore_snapshot(settings: &mut Settings, store: &mut Store) -> Vec<Command> {
    let snapshot_path = settings.paths.snapshot_file(&settings.profile);
    match store::snapshot::load(&snapshot_path) {
        Ok(Some(snapshot)) => store.restore(snapshot),
        Ok(None) => {}
        Err(e) => settings.warnings.push(e.to_string()),
    }
    let known: Vec<_> = store
        .rows(0..store.len())
        .filter_map(|r| r.attributes.clone())
        .collect();
    let known_vins: Vec<_> = store
        .rows(0..store.len())
        .filter_map(|r| r.vin.clone().map(|vin| (r.vehicle_id.clone(), vin)))
        .collect();
    let mut commands = Vec::new();
    if !known.is_empty() {
        commands.push(Command::KnownAttributes(known));
    }
    if !known_vins.is_empty() {
        commands.push(Command::KnownVins(known_vins));
    }
    commands
}
