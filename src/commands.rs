//! The subcommands: each turns settings into a running session or a printout and returns an exit code.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::{CheckArgs, ConnectMode, ConnectUrlArgs, DeadlinesArgs, GlobalArgs, VehicleArgs};
use crate::fetch::{Command, Event, Priority, Progress};
use crate::health::Status;
use crate::report::{self, VehicleSummary};
use crate::setup::{self, Session, Settings, SetupError};
use crate::smartcar::connect::{self, ConnectOptions, SingleSelect};
use crate::store::{self, Store, VehicleRecord};
use crate::untrusted::text::one_line;

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

/// A one-line progress bar on stderr, only when stderr is a terminal.
struct ProgressLine {
    enabled: bool,
    last_draw: Option<Instant>,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            enabled: std::io::stderr().is_terminal(),
            last_draw: None,
        }
    }

    fn draw(&mut self, done: usize, total: usize, p: &Progress) {
        if !self.enabled
            || self
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        const WIDTH: usize = 30;
        let filled = (done * WIDTH).checked_div(total).unwrap_or(0).min(WIDTH);
        let budget = p
            .budget_left
            .map(|b| format!(" · budget {b:.0}"))
            .unwrap_or_default();
        eprint!(
            "\r\x1b[2K[{}{}] {done}/{total} vehicles · {} probing · {:.1} req/s · {} errors{budget}",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            p.in_flight,
            p.requests_per_s,
            p.errors,
        );
        let _ = std::io::stderr().flush();
    }

    fn clear(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

/// A check expected to take at least this long says so on stderr before it starts.
const SLOW_CHECK_S: u64 = 120;

/// The line a long check prints first: what it costs and how to change that.
fn slow_check_notice(requests: u64, eta_s: u64, per_min: f64) -> String {
    format!(
        "vtriage: this check needs about {requests} requests ≈ {} at {per_min} requests per minute; --rate R/min or --no-rate-limit change it",
        crate::health::remedy::human_seconds(eta_s)
    )
}

/// Why a check stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Every vehicle asked for has a report.
    Complete,
    /// `--timeout` passed.
    Deadline,
    /// SIGINT or SIGTERM, by name.
    Signal(&'static str),
}

/// Exit status of `check` when nothing is blocked but some vehicles could not be checked.
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

/// Whether a vehicle's result from an earlier run (the snapshot) is young enough to reuse.
fn is_fresh(record: &VehicleRecord, freshness: Duration, now: jiff::Timestamp) -> bool {
    record.has_token
        && record.last_probe_at.is_some_and(|at| {
            now.duration_since(at)
                .try_into()
                .is_ok_and(|age: Duration| age < freshness)
        })
}

/// Feeds scheduler events into the store until every vehicle asked for has a report, the
/// deadline passes or a signal arrives. Vehicles whose last result is fresh are not probed again
/// unless `force`. Returns why it stopped and which vehicles are still waiting (`None`: the fleet
/// was never listed). An error means the source as a whole failed.
async fn run_until_all_observed(
    session: &mut Session,
    store: &mut Store,
    settings: &Settings,
    bar: &mut ProgressLine,
    force: bool,
    deadline: tokio::time::Instant,
) -> Result<(Ending, Option<HashSet<String>>), CommandError> {
    let mut waiting: Option<HashSet<String>> = None;
    let mut progress = Progress::default();
    let mut asked = 0;
    let mut interrupt = std::pin::pin!(interrupted());
    loop {
        if waiting.as_ref().is_some_and(HashSet::is_empty) {
            return Ok((Ending::Complete, waiting));
        }
        let event = tokio::select! {
            event = session.events.recv() => event,
            () = tokio::time::sleep_until(deadline) => return Ok((Ending::Deadline, waiting)),
            name = interrupt.as_mut() => return Ok((Ending::Signal(name), waiting)),
        };
        let Some(event) = event else {
            return Err(CommandError::Source(
                "the scheduler stopped unexpectedly; see the log".into(),
            ));
        };
        store.apply(&event, settings.now());
        match &event {
            Event::ConnectionsListed { connections } if waiting.is_none() => {
                let now = jiff::Timestamp::now();
                let freshness = settings.scheduler.freshness;
                let mut ids: Vec<String> = Vec::with_capacity(connections.len());
                let mut unique = HashSet::with_capacity(connections.len());
                for c in connections {
                    let id = &c.connection.vehicle_id;
                    let reuse = !force
                        && store
                            .vehicle(id)
                            .is_some_and(|r| is_fresh(r, freshness, now));
                    if unique.insert(id.clone()) && !reuse {
                        ids.push(id.clone());
                    }
                }
                asked = ids.len();
                // The cost first, so a check that takes hours at the plan's rate says so before it starts.
                let _ = session.commands.send(Command::Estimate {
                    vehicle_ids: ids.clone(),
                });
                waiting = Some(ids.iter().cloned().collect());
                let _ = session.commands.send(Command::Probe {
                    vehicle_ids: ids,
                    priority: Priority::Sweep,
                    force,
                });
            }
            Event::Observed { report } => {
                if let Some(w) = waiting.as_mut() {
                    w.remove(&report.vehicle_id);
                }
            }
            Event::Progress(p) => progress = p.clone(),
            Event::SweepCost { requests, eta_s } if *eta_s >= SLOW_CHECK_S => {
                if let Some(rate) = &settings.scheduler.rate {
                    bar.clear();
                    eprintln!(
                        "{}",
                        slow_check_notice(*requests, *eta_s, rate.refill_per_min)
                    );
                }
            }
            Event::SourceError { message } if waiting.is_none() => {
                return Err(CommandError::Source(message.clone()));
            }
            _ => {}
        }
        let done = asked - waiting.as_ref().map_or(asked, HashSet::len);
        bar.draw(done, asked, &progress);
    }
}

/// Why the vehicles still waiting were not checked, in words for the report and stderr.
fn not_checked_reason(ending: Ending, timeout: Duration, store: &Store) -> String {
    let mut reason = match ending {
        Ending::Complete => "no answer".to_string(),
        Ending::Deadline => format!(
            "the check's deadline passed (--timeout {})",
            crate::health::remedy::human_seconds(timeout.as_secs())
        ),
        Ending::Signal(name) => format!("the check was interrupted ({name})"),
    };
    if let Some(until) = store.rate_limited_until()
        && until > jiff::Timestamp::now()
    {
        reason.push_str(&format!(
            "; rate limited until {}",
            report::format_instant(until)
        ));
    }
    reason
}

/// Vehicles that were probed but of which nothing was learnt, counted by the reason their main finding gives
/// (most frequent first). Vehicles the run never reached are reported separately.
fn unknown_reasons(
    summaries: &[VehicleSummary<'_>],
    unchecked: &HashSet<String>,
) -> Vec<(String, usize)> {
    let mut by_reason: std::collections::BTreeMap<String, usize> = Default::default();
    for s in summaries {
        if !s.diagnosis.could_not_check() || unchecked.contains(s.vehicle_id) {
            continue;
        }
        let reason = s
            .main_finding()
            .map_or_else(|| "never answered".to_string(), |f| f.title.clone());
        *by_reason.entry(reason).or_default() += 1;
    }
    let mut reasons: Vec<(String, usize)> = by_reason.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    reasons
}

/// `vtriage check`: probe every connection, print the diagnoses.
pub async fn check(global: &GlobalArgs, args: &CheckArgs) -> Result<ExitCode, CommandError> {
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut settings = setup::resolve(global)?;
    if settings.desk.is_some() {
        return check_desk(&mut settings, args, deadline).await;
    }
    settings.demo_latency = setup::DEMO_HEADLESS_LATENCY;
    let _log = init_logging(&settings);
    if let Some(f) = &args.filter {
        store::Filter::parse(f).map_err(|e| CommandError::Usage(format!("--filter: {e}")))?;
    }
    // The store is made after the start, which settles the origins and needs (the demo's
    // simulator) that its diagnoses use.
    let mut session = setup::start(&mut settings).await?;
    let mut store = setup::store_for(&settings);
    if let Some(f) = &args.filter {
        store
            .set_filter(f)
            .map_err(|e| CommandError::Usage(format!("--filter: {e}")))?;
    }
    // History, "failing since" and fresh results carry over from the last run.
    let known = restore_snapshot(&mut settings, &mut store);
    print_warnings(&settings);
    for command in known {
        let _ = session.commands.send(command);
    }
    let mut bar = ProgressLine::new();
    let result = run_until_all_observed(
        &mut session,
        &mut store,
        &settings,
        &mut bar,
        args.force,
        deadline,
    )
    .await;
    bar.clear();
    let _ = session.commands.send(Command::Shutdown);
    let (ending, waiting) = result?;
    save_snapshot(&settings, &store);

    let unchecked: HashSet<String> = match waiting {
        Some(w) => w,
        None => store
            .rows(0..store.len())
            .map(|r| r.vehicle_id.clone())
            .collect(),
    };
    let reason = not_checked_reason(ending, args.timeout, &store);
    if !unchecked.is_empty() {
        eprintln!(
            "vtriage: {} of {} vehicles not checked: {reason}; they are listed as UNKNOWN \"not checked\"",
            unchecked.len(),
            store.len()
        );
    }
    print_check(args, &store, &unchecked, &reason)
}

/// `vtriage check --server URL`: what the desk knows now, with the desk's rules. Nothing is probed:
/// the desk's prober and webhooks keep the fleet current, and a check per agent must not spend the
/// desk's budget. Vehicles the desk knows nothing about yet read UNKNOWN "not checked".
async fn check_desk(
    settings: &mut Settings,
    args: &CheckArgs,
    deadline: tokio::time::Instant,
) -> Result<ExitCode, CommandError> {
    let client = desk_client(settings)?;
    let read = async {
        let rules = client.rules().await?;
        let fleet = client.fleet().await?;
        Ok::<_, crate::desk::remote::RemoteError>((rules, fleet))
    };
    let (rules, fleet) = tokio::time::timeout_at(deadline, read)
        .await
        .map_err(|_| CommandError::Source("the desk did not answer before --timeout".into()))??;
    adopt_desk_rules(settings, &rules);
    print_warnings(settings);
    let mut store = setup::store_for(settings);
    if let Some(f) = &args.filter {
        store
            .set_filter(f)
            .map_err(|e| CommandError::Usage(format!("--filter: {e}")))?;
    }
    let now = settings.now();
    for event in crate::desk::remote::fleet_events(&fleet) {
        store.apply(&event, now);
    }
    let unchecked: HashSet<String> = fleet
        .iter()
        .filter(|v| v.report.is_none())
        .map(|v| v.vehicle_id.clone())
        .collect();
    let reason = "the desk has heard nothing about it yet";
    if !unchecked.is_empty() {
        eprintln!(
            "vtriage: {} of {} vehicles not checked: {reason}; they are listed as UNKNOWN \"not checked\"",
            unchecked.len(),
            store.len()
        );
    }
    print_check(args, &store, &unchecked, reason)
}

/// The client for the desk the settings name.
fn desk_client(settings: &Settings) -> Result<crate::desk::remote::DeskClient, CommandError> {
    let Some(desk) = &settings.desk else {
        return Err(CommandError::Usage(
            "no desk server given (--server URL)".into(),
        ));
    };
    Ok(crate::desk::remote::DeskClient::new(
        &desk.server,
        desk.token.clone(),
        desk.allow_insecure,
    )?)
}

/// Diagnoses with the desk's rules and fix-link settings, so every agent sees what the desk sees.
fn adopt_desk_rules(settings: &mut Settings, rules: &crate::desk::wire::RulesDoc) {
    match crate::health::Policies::parse(
        &rules.policies,
        std::path::Path::new("<the desk's rules>"),
    ) {
        Ok(p) => settings.policies = p,
        Err(e) => settings
            .warnings
            .push(format!("{e}; using this machine's rules")),
    }
    settings.needs = rules.needs.clone();
}

/// A session reading the desk: the same channels as a local scheduler's, and the link's state.
async fn desk_session(
    settings: &mut Settings,
) -> Result<
    (
        Session,
        tokio::sync::watch::Receiver<crate::desk::remote::Link>,
    ),
    CommandError,
> {
    let client = desk_client(settings)?;
    let server = client.server().to_string();
    let remote = crate::desk::remote::start(client).await?;
    adopt_desk_rules(settings, &remote.rules);
    Ok((
        Session {
            mode: setup::Mode::Live,
            origin: server,
            commands: remote.commands,
            events: remote.events,
            simulator: None,
        },
        remote.link,
    ))
}

/// Prints a check's result (table, JSON lines or CSV) for the rows passing the filter; vehicles in
/// `unchecked` read UNKNOWN "not checked" with `reason`. Returns the check's exit code.
fn print_check(
    args: &CheckArgs,
    store: &Store,
    unchecked: &HashSet<String>,
    reason: &str,
) -> Result<ExitCode, CommandError> {
    let records: Vec<&VehicleRecord> = store.rows(0..store.visible_len()).collect();
    let summaries: Vec<VehicleSummary<'_>> = records
        .iter()
        .map(|r| {
            let mut s = VehicleSummary::from(*r);
            if unchecked.contains(&r.vehicle_id) {
                s.diagnosis = std::borrow::Cow::Owned(crate::health::diagnose::not_checked(
                    reason,
                    r.last_probe_at,
                ));
            }
            s
        })
        .collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        report::write_json_lines(&mut out, &summaries)?;
    } else if args.csv {
        report::write_csv(&mut out, &summaries)?;
    } else {
        report::write_table(&mut out, &summaries)?;
        let c = store.counts();
        let counts: Vec<String> = Status::ALL
            .iter()
            .map(|s| format!("{} {}", c.status(*s), s.label()))
            .collect();
        if summaries.len() == store.len() {
            writeln!(
                out,
                "\n{} vehicles: {}",
                summaries.len(),
                counts.join(" · ")
            )?;
        } else {
            writeln!(
                out,
                "\n{} of {} vehicles match the filter · whole fleet: {}",
                summaries.len(),
                store.len(),
                counts.join(" · ")
            )?;
        }
    }
    out.flush()?;
    let blocked = summaries
        .iter()
        .any(|s| s.diagnosis.status == Status::Blocked);
    // Probed but still UNKNOWN (no token, API unreachable, an answer that is not the API's): nothing
    // was learnt about these, so "nothing blocked" would be a claim the check cannot make.
    let unknown = unknown_reasons(&summaries, unchecked);
    if !unknown.is_empty() {
        let n: usize = unknown.iter().map(|(_, n)| n).sum();
        let why: Vec<String> = unknown.iter().map(|(r, n)| format!("{n} {r}")).collect();
        eprintln!(
            "vtriage: {n} of {} vehicles could not be checked: {}",
            summaries.len(),
            one_line(&why.join("; "))
        );
    }
    Ok(if blocked {
        ExitCode::from(1)
    } else if !unchecked.is_empty() || !unknown.is_empty() {
        ExitCode::from(EXIT_NOT_CHECKED)
    } else {
        ExitCode::SUCCESS
    })
}

fn save_snapshot(settings: &Settings, store: &Store) {
    if store.is_empty() {
        return;
    }
    let path = settings.paths.snapshot_file(&settings.profile);
    if let Err(e) = store::snapshot::save(&path, &store.to_snapshot()) {
        eprintln!("vtriage: warning: {}", one_line(&e.to_string()));
    }
}

/// `vtriage vehicle ID`: one vehicle's diagnosis, ready for a ticket.
pub async fn vehicle(global: &GlobalArgs, args: &VehicleArgs) -> Result<ExitCode, CommandError> {
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut settings = setup::resolve(global)?;
    settings.demo_latency = setup::DEMO_HEADLESS_LATENCY;
    let _log = init_logging(&settings);
    let mut session = match settings.desk {
        Some(_) => desk_session(&mut settings).await?.0,
        None => setup::start(&mut settings).await?,
    };
    let mut store = setup::store_for(&settings);
    // The Management API lists no VINs: a VIN is found through what the last session learned.
    let known = restore_snapshot(&mut settings, &mut store);
    print_warnings(&settings);
    for command in known {
        let _ = session.commands.send(command);
    }
    let query = args.id.trim().to_string();
    // The vehicles asked for (one, or every car of a user) and those still waiting for their probe.
    let mut targets: Vec<String> = Vec::new();
    let mut waiting: HashSet<String> = HashSet::new();
    // A VIN no session has read yet is looked up among the vehicles it may belong to.
    let mut looking_up = false;
    let mut interrupt = std::pin::pin!(interrupted());
    let mut ending = Ending::Complete;
    loop {
        if !targets.is_empty() && waiting.is_empty() {
            break;
        }
        let event = tokio::select! {
            event = session.events.recv() => event,
            () = tokio::time::sleep_until(deadline) => {
                ending = Ending::Deadline;
                break;
            }
            name = interrupt.as_mut() => {
                ending = Ending::Signal(name);
                break;
            }
        };
        let Some(event) = event else {
            return Err(CommandError::Source(
                "the scheduler stopped unexpectedly; see the log".into(),
            ));
        };
        store.apply(&event, settings.now());
        match &event {
            Event::ConnectionsListed { .. } if targets.is_empty() && !looking_up => {
                let found = match store.find_all(&query) {
                    Ok(found) => found,
                    Err(e) => {
                        let vin_hint =
                            match crate::smartcar::vin::decode(&query, this_year(settings.now())) {
                                Ok(vin) => {
                                    looking_up = true;
                                    let _ = session.commands.send(Command::FindVin { vin });
                                    continue;
                                }
                                Err(why) if query.len() == 17 => format!("; not a VIN: {why}"),
                                Err(_) => String::new(),
                            };
                        return Err(CommandError::Usage(format!(
                            "`{}`: {e} (vehicle id, VIN, user id, or a unique prefix of an id) among {} connections{vin_hint}",
                            one_line(&query),
                            store.len()
                        )));
                    }
                };
                targets = found.iter().map(|r| r.vehicle_id.clone()).collect();
                waiting = targets.iter().cloned().collect();
                let _ = session.commands.send(Command::Probe {
                    vehicle_ids: targets.clone(),
                    priority: Priority::Focus,
                    force: true,
                });
            }
            Event::Observed { report } => {
                waiting.remove(&report.vehicle_id);
            }
            Event::VinLookupPlanned { requests, make, .. } if looking_up => {
                eprintln!("{}", vin_lookup_cost(*requests, make.as_deref()));
            }
            Event::VinLookupDone {
                vehicle_id,
                requests,
                unreadable,
                ..
            } if looking_up => {
                looking_up = false;
                let Some(id) = vehicle_id else {
                    return Err(CommandError::Usage(vin_not_found(
                        &query,
                        *requests,
                        *unreadable,
                        store.len(),
                    )));
                };
                targets = vec![id.clone()];
                waiting = targets.iter().cloned().collect();
                let _ = session.commands.send(Command::Probe {
                    vehicle_ids: targets.clone(),
                    priority: Priority::Focus,
                    force: true,
                });
            }
            Event::SourceError { message } if targets.is_empty() => {
                return Err(CommandError::Source(message.clone()));
            }
            _ => {}
        }
    }
    let _ = session.commands.send(Command::Shutdown);
    save_snapshot(&settings, &store);
    if targets.is_empty() {
        return Err(CommandError::Source(format!(
            "`{}` not found before {}",
            one_line(&query),
            not_checked_reason(ending, args.timeout, &store)
        )));
    }
    let mut records: Vec<&VehicleRecord> =
        targets.iter().filter_map(|id| store.vehicle(id)).collect();
    if records.is_empty() {
        return Err(CommandError::Source(
            "the vehicle vanished from the listing".into(),
        ));
    }
    let reason = not_checked_reason(ending, args.timeout, &store);
    if !waiting.is_empty() {
        eprintln!(
            "vtriage: {} of {} vehicles not checked: {reason}",
            waiting.len(),
            records.len()
        );
    }
    // Worst first, after the probe: a user's blocked car above the healthy one.
    records.sort_by_key(|r| std::cmp::Reverse(r.verdict.status));
    let mut out = std::io::stdout().lock();
    for (i, record) in records.iter().enumerate() {
        let mut s = VehicleSummary::from(*record);
        if waiting.contains(&record.vehicle_id) {
            s.diagnosis = std::borrow::Cow::Owned(crate::health::diagnose::not_checked(
                &reason,
                record.last_probe_at,
            ));
        }
        if args.json {
            serde_json::to_writer_pretty(&mut out, &report::vehicle_json(&s))
                .map_err(std::io::Error::other)?;
            writeln!(out)?;
        } else {
            if i > 0 {
                writeln!(out, "\n---\n")?;
            }
            write!(
                out,
                "{}",
                report::markdown(&s, &settings.policies, settings.now())
            )?;
        }
    }
    out.flush()?;
    Ok(
        if records
            .iter()
            .any(|r| r.verdict.status == Status::Blocked && !waiting.contains(&r.vehicle_id))
        {
            ExitCode::from(1)
        } else if !waiting.is_empty() {
            ExitCode::from(EXIT_NOT_CHECKED)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// The calendar year at `now` (UTC): VIN model years run at most one ahead of it.
fn this_year(now: jiff::Timestamp) -> i16 {
    now.to_zoned(jiff::tz::TimeZone::UTC).year()
}

/// What a VIN lookup will cost, said before it starts.
fn vin_lookup_cost(requests: u64, make: Option<&str>) -> String {
    let make = make.map_or_else(String::new, |m| format!(" ({} VIN)", one_line(m)));
    match requests {
        0 => format!("vtriage: VIN lookup{make}: no connected vehicle can have it, 0 requests"),
        1 => format!("vtriage: VIN lookup{make}: reading 1 vehicle's VIN, 1 request at most"),
        n => format!(
            "vtriage: VIN lookup{make}: reading the VINs of {n} vehicles whose make and year fit, {n} requests at most"
        ),
    }
}

fn vin_not_found(query: &str, requests: u64, unreadable: u64, fleet: usize) -> String {
    let unread = if unreadable > 0 {
        format!(" ({unreadable} gave no VIN: asleep, offline or refused)")
    } else {
        String::new()
    };
    format!(
        "VIN `{}`: no vehicle among {fleet} connections after {requests} requests{unread}",
        one_line(query)
    )
}

/// `vtriage deadlines`: the rules and their countdowns.
pub async fn deadlines(
    global: &GlobalArgs,
    args: &DeadlinesArgs,
) -> Result<ExitCode, CommandError> {
    let mut settings = setup::resolve(global)?;
    let desk_deadlines = match settings.desk {
        Some(_) => {
            let rules = desk_client(&settings)?.rules().await?;
            adopt_desk_rules(&mut settings, &rules);
            Some(rules.deadlines)
        }
        None => None,
    };
    print_warnings(&settings);
    let now = settings.now();
    let mut out = std::io::stdout().lock();
    // The desk's countdowns are the desk's clock's; the table is drawn from its rules here.
    if let (true, Some(deadlines)) = (args.json, &desk_deadlines) {
        serde_json::to_writer_pretty(&mut out, deadlines).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else if args.json {
        serde_json::to_writer_pretty(&mut out, &report::deadlines_json(&settings.policies, now))
            .map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report::deadlines_table(&settings.policies, now))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `vtriage connect-url`: a Connect URL, encoded as the official SDKs encode it.
pub fn connect_url(global: &GlobalArgs, args: &ConnectUrlArgs) -> Result<ExitCode, CommandError> {
    let settings = setup::resolve(global)?;
    let Some(client_id) = settings.needs.client_id.clone() else {
        return Err(CommandError::Usage(
            "connect-url needs a client id: --client-id, SMARTCAR_CLIENT_ID, or client_id under [connect] in config.toml"
                .into(),
        ));
    };
    let mut flags = Vec::new();
    for f in &args.flags {
        flags
            .push(connect::parse_flag(f).map_err(|e| CommandError::Usage(format!("--flag: {e}")))?);
    }
    let single_select = match (&args.single_select_vin, args.single_select) {
        (Some(vin), _) => Some(SingleSelect::Vin(vin.clone())),
        (None, true) => Some(SingleSelect::Enabled(true)),
        (None, false) => None,
    };
    let options = ConnectOptions {
        client_id: Some(client_id),
        redirect_uri: settings.needs.redirect_uri.clone(),
        scope: args
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        mode: match args.mode {
            Some(ConnectMode::Simulated) => connect::ConnectMode::Simulated,
            Some(ConnectMode::Test) => connect::ConnectMode::Test,
            Some(ConnectMode::Live) | None => connect::ConnectMode::Live,
        },
        force_prompt: args.force_prompt,
        state: args.state.clone(),
        make: args.make.clone(),
        single_select,
        flags,
        user: args.user.clone(),
    };
    let origin = &settings.origins.connect;
    let url = match (&args.reauth, &args.vehicle_id) {
        (true, Some(vehicle_id)) => options.reauthenticate_url(origin, vehicle_id),
        _ => options.authorize_url(origin),
    };
    println!("{url}");
    Ok(ExitCode::SUCCESS)
}

/// `vtriage sim`: the simulator, standalone.
pub async fn sim(args: crate::sim::SimArgs) -> Result<ExitCode, CommandError> {
    crate::sim::run_cli(args).await?;
    Ok(ExitCode::SUCCESS)
}

/// `vtriage info`: every path vtriage uses, and what the current settings resolve to.
pub fn info(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let settings = setup::resolve(global)?;
    let p = &settings.paths;
    let exists = |path: &std::path::Path| if path.exists() { "" } else { " (not present)" };
    let policies = p.policies_file();
    let snapshot = p.snapshot_file(&settings.profile);
    let log = p.log_file();
    println!(
        "config file     {}{}",
        settings.config_file.display(),
        exists(&settings.config_file)
    );
    println!(
        "policies        {}{}",
        policies.display(),
        exists(&policies)
    );
    println!("cache folder    {}", p.cache_dir.display());
    println!(
        "snapshot        {}{}",
        snapshot.display(),
        exists(&snapshot)
    );
    println!("state folder    {}", p.state_dir.display());
    println!("log file        {}{}", log.display(), exists(&log));
    println!(
        "profile         {} ({})",
        settings.profile,
        settings.mode.label()
    );
    match settings.mode {
        setup::Mode::Demo => println!("origins         built-in simulator on a free loopback port"),
        setup::Mode::Live if settings.api == crate::config::ApiVersion::V3 => {
            println!("api             v3 (client id and secret)");
            println!("api origin      {}", settings.v3_origins.api);
            println!("iam origin      {}", settings.v3_origins.iam);
        }
        setup::Mode::Live => {
            println!("api             v2.0");
            println!("api origin      {}", settings.origins.api);
            println!("management      {}", settings.origins.management);
        }
    }
    println!("connect origin  {}", settings.origins.connect);
    for w in &settings.warnings {
        println!("warning         {w}");
    }
    Ok(ExitCode::SUCCESS)
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

/// `vtriage` with no command: the dashboard.
///
/// The first frame never waits for the network: the last snapshot (marked stale) or an empty list is on
/// screen while the scheduler lists connections. In demo mode the whole simulated fleet is swept; live,
/// only what the agent looks at is probed, and a sweep's cost is estimated first.
pub async fn dashboard(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let mut settings = setup::resolve(global)?;
    let _log = init_logging(&settings);
    crate::tui::set_log_path(settings.paths.log_file());
    let mut tui_config = crate::tui::TuiConfig::load(
        &settings.config.ui,
        &settings.config.keys,
        &settings.config_file,
        &settings.paths.config_dir,
    )?;
    let (session, link) = match settings.desk {
        Some(_) => {
            let (session, link) = desk_session(&mut settings).await?;
            (session, Some(link))
        }
        None => (setup::start(&mut settings).await?, None),
    };
    let mut store = setup::store_for(&settings);
    let known = restore_snapshot(&mut settings, &mut store);
    tui_config.mode_label = session.mode.label().to_string();
    tui_config.origin = session.origin.clone();
    if link.is_some() {
        tui_config.mode_label = format!("DESK {}", session.origin);
        tui_config.origin = String::new();
    }
    tui_config.policies = settings.policies.clone();
    tui_config.needs = settings.needs.clone();
    // Reading a desk, rows scrolling by are never probed: the desk's budget is everyone's.
    tui_config.probe_visible = link.is_none()
        && settings
            .config
            .fetch
            .probe_visible
            .unwrap_or(session.mode == setup::Mode::Demo);
    tui_config.refresh_every = settings.config.refresh_interval();
    tui_config.warnings = settings
        .warnings
        .iter()
        .map(|w| one_line(w).into_owned())
        .collect();
    for w in &settings.warnings {
        tracing::warn!("{}", one_line(w));
    }
    for command in known {
        let _ = session.commands.send(command);
    }
    let first = match session.mode {
        setup::Mode::Demo => Command::StartSweep { force: false },
        setup::Mode::Live => Command::EstimateSweep,
    };
    let _ = session.commands.send(first);
    let commands = session.commands.clone();
    let result = crate::tui::run(
        tui_config,
        store,
        commands,
        session.events,
        settings.now_override,
        link,
    )
    .await;
    let _ = session.commands.send(Command::Shutdown);
    let store = result?;
    save_snapshot(&settings, &store);
    print_warnings(&settings);
    // The source never answered (unreachable origin, refused AMT): say so once the terminal is back.
    if let Some(error) = store.source_error() {
        return Err(CommandError::Source(error.to_string()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The text of the rules in force: the override file when it parses (as `resolve` decided), else
/// the built-in rules. Agents' clients diagnose with it.
fn policies_text(settings: &Settings) -> String {
    let path = settings.paths.policies_file();
    match std::fs::read_to_string(&path) {
        Ok(text) if crate::health::Policies::parse(&text, &path).is_ok() => text,
        _ => crate::health::policy::BUILTIN_POLICIES.to_string(),
    }
}

/// `vtriage serve`: the desk server until SIGTERM or Ctrl-C. Logs are JSON lines on stdout, for the
/// service manager; `VTRIAGE_LOG` sets the filter (default `info`).
pub async fn serve(
    global: &GlobalArgs,
    args: &crate::cli::ServeArgs,
) -> Result<ExitCode, CommandError> {
    let settings = setup::resolve(global)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VTRIAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
    for w in &settings.warnings {
        tracing::warn!(warning = %one_line(w), "setup");
    }
    if settings.mode == setup::Mode::Demo && !global.demo {
        return Err(CommandError::Usage(
            "serve needs Smartcar credentials (--amt or SMARTCAR_MANAGEMENT_TOKEN, with tokens), or --demo to probe the built-in simulator"
                .into(),
        ));
    }
    let amt = settings
        .source
        .amt
        .clone()
        .ok_or(crate::desk::DeskError::NoAmt)?;
    let config = crate::desk::DeskConfig {
        listen: args.listen,
        db: crate::desk::DbConfig {
            url: args.database.clone(),
            schema: args.schema.clone(),
            pool_size: usize::from(args.pool_size),
            timeout: args.db_timeout,
        },
        amt,
        max_body_bytes: args.max_body_bytes,
        keep_events_days: args.keep_events_days,
        prober: (!args.no_prober).then(|| crate::desk::ProberConfig {
            lock_retry: args.prober_retry,
            refresh_every: Some(args.refresh_every),
            sweep_every: args.sweep_every,
            ..crate::desk::ProberConfig::default()
        }),
        global: global.clone(),
        policies_text: policies_text(&settings),
        needs: settings.needs.clone(),
    };
    let diagnose = crate::desk::diagnoser(settings.policies.clone(), settings.needs.clone());
    crate::desk::run(config, diagnose, settings.now_override, async {
        let name = interrupted().await;
        tracing::info!(signal = name, "shutdown requested");
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// `vtriage agent add|list|revoke`: the agents of a desk, straight in its database.
pub async fn agent(args: &crate::cli::AgentArgs) -> Result<ExitCode, CommandError> {
    use crate::cli::AgentAction;
    let Some(url) = &args.database else {
        return Err(CommandError::Usage(
            "agent needs the desk's database: --database URL or DATABASE_URL".into(),
        ));
    };
    let config = crate::desk::DbConfig {
        url: url.clone(),
        schema: args.schema.clone(),
        pool_size: 1,
        timeout: Duration::from_secs(10),
    };
    let diagnose = crate::desk::diagnoser(
        crate::health::Policies::builtin(),
        crate::health::Needs::default(),
    );
    let db = crate::desk::Db::new(&config, diagnose, None).map_err(crate::desk::DeskError::from)?;
    // The agents table may not exist yet on a desk never started with this version.
    db.migrate(args.schema.as_deref())
        .await
        .map_err(crate::desk::DeskError::from)?;
    match &args.action {
        AgentAction::Add { name } => {
            let token = db.add_agent(name).await?;
            eprintln!(
                "vtriage: agent {name} added. Its token is printed once, below: give it to the agent \
                 (VTRIAGE_AGENT_TOKEN, or a file of mode 0600 named by agent_token_file)."
            );
            println!("{}", token.expose());
        }
        AgentAction::List => {
            let agents = db.agents().await?;
            if agents.is_empty() {
                eprintln!("vtriage: no agents yet (`vtriage agent add NAME`)");
            }
            for a in agents {
                let state = match a.revoked_at {
                    Some(at) => format!("revoked {}", report::format_instant(at)),
                    None => "active".into(),
                };
                println!(
                    "{:<24} added {}  {state}",
                    one_line(&a.name),
                    report::format_instant(a.created_at)
                );
            }
        }
        AgentAction::Revoke { name } => {
            db.revoke_agent(name).await?;
            eprintln!(
                "vtriage: agent {} revoked; its streams are closed",
                one_line(name)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
