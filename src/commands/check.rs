//! `vtriage check`: probes every connection within a deadline and prints the diagnoses.

use super::*;

/// A one-line progress bar on stderr, only when stderr is a terminal.
pub(super) struct ProgressLine {
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
pub(super) const SLOW_CHECK_S: u64 = 120;

/// The line a long check prints first: what it costs and how to change that.
pub(super) fn slow_check_notice(requests: u64, eta_s: u64, per_min: f64) -> String {
    format!(
        "vtriage: this check needs about {requests} requests ≈ {} at {per_min} requests per minute; --rate R/min or --no-rate-limit change it",
        crate::health::remedy::human_seconds(eta_s)
    )
}

/// Whether a vehicle's result from an earlier run (the snapshot) is young enough to reuse.
pub(super) fn is_fresh(record: &VehicleRecord, freshness: Duration, now: jiff::Timestamp) -> bool {
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
pub(super) async fn run_until_all_observed(
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
        crate::feed::apply(store, &event, settings.now());
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
            Event::Observed { report } | Event::Diagnosed { report, .. } => {
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
            // Said once, for the whole fleet: the rest would only wait for retries.
            Event::SourceUnreachable(outage) => {
                return Ok((Ending::SourceDown(Box::new(outage.clone())), waiting));
            }
            _ => {}
        }
        let done = asked - waiting.as_ref().map_or(asked, HashSet::len);
        bar.draw(done, asked, &progress);
    }
}

/// The kind of failure a vehicle's last probe met, with where, the same for every vehicle it
/// happened to: `connection refused (http://127.0.0.1:1)`. `None` when the source answered.
pub(super) fn failure_group(record: &VehicleRecord, api_origin: Option<&str>) -> Option<String> {
    let report = record.report()?;
    report.observations.iter().find_map(|o| {
        let e = o.error()?;
        let kind = e.failure_kind()?;
        match e.origin_in_message().as_deref().or(api_origin) {
            Some(origin) if !origin.is_empty() => Some(format!("{kind} ({origin})")),
            _ => Some(kind),
        }
    })
}

/// Vehicles that were probed but of which nothing was learnt, counted by the kind of failure (see
/// [`failure_group`]) or else the reason their main finding gives, most frequent first. Vehicles
/// the run never reached are reported separately.
pub(super) fn unknown_reasons(
    summaries: &[VehicleSummary<'_>],
    store: &Store,
    unchecked: &HashSet<String>,
    api_origin: Option<&str>,
) -> Vec<(String, usize)> {
    let mut by_reason: std::collections::BTreeMap<String, usize> = Default::default();
    for s in summaries {
        if !s.diagnosis.could_not_check() || unchecked.contains(s.vehicle_id) {
            continue;
        }
        let reason = store
            .vehicle(s.vehicle_id)
            .and_then(|r| failure_group(r, api_origin))
            .or_else(|| s.main_finding().map(|f| f.title.clone()))
            .unwrap_or_else(|| "never answered".to_string());
        *by_reason.entry(reason).or_default() += 1;
    }
    let mut reasons: Vec<(String, usize)> = by_reason.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    reasons
}

/// A local sweep's outcome: the store after it, the vehicles it did not reach and why it ended.
pub(super) struct Swept {
    pub store: Store,
    pub unchecked: HashSet<String>,
    pub ending: Ending,
    /// Why the vehicles in `unchecked` were not reached.
    pub reason: String,
    _log: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Probes every connection (results from the last run still fresh are reused unless `force`)
/// until all have answered, `timeout` passes or a signal arrives; saves the snapshot. Says on
/// stderr how many were not reached.
pub(super) async fn sweep(
    settings: &mut Settings,
    filter: Option<&str>,
    force: bool,
    timeout: Duration,
) -> Result<Swept, CommandError> {
    let deadline = tokio::time::Instant::now() + timeout;
    settings.demo_latency = setup::DEMO_HEADLESS_LATENCY;
    let log = init_logging(settings);
    if let Some(f) = filter {
        let rule_ids: Vec<String> = settings
            .policies
            .rules
            .iter()
            .map(|r| r.id.clone())
            .collect();
        store::Filter::parse(f)
            .and_then(|filter| filter.check_rules(&rule_ids))
            .map_err(|e| CommandError::Usage(format!("--filter: {e}")))?;
    }
    // The store is made after the start, which settles the origins and needs (the demo's
    // simulator) that its diagnoses use.
    let mut session = setup::start(settings).await?;
    let mut store = setup::store_for(settings);
    if let Some(f) = filter {
        store
            .set_filter(f)
            .map_err(|e| CommandError::Usage(format!("--filter: {e}")))?;
    }
    // History, "failing since" and fresh results carry over from the last run.
    let known = restore_snapshot(settings, &mut store);
    print_warnings(settings);
    for command in known {
        let _ = session.commands.send(command);
    }
    let mut bar = ProgressLine::new();
    let result = run_until_all_observed(
        &mut session,
        &mut store,
        settings,
        &mut bar,
        force,
        deadline,
    )
    .await;
    bar.clear();
    let _ = session.commands.send(Command::Shutdown);
    let (ending, waiting) = result?;
    store.check_watches(settings.now());
    save_snapshot(settings, &store);

    let unchecked: HashSet<String> = match waiting {
        Some(w) => w,
        None => store
            .rows(0..store.len())
            .map(|r| r.vehicle_id.clone())
            .collect(),
    };
    let reason = not_checked_reason(&ending, timeout, &store);
    if !unchecked.is_empty() {
        eprintln!(
            "vtriage: {} of {} vehicles not checked: {reason}; they are listed as UNKNOWN \"not checked\"",
            unchecked.len(),
            store.len()
        );
    } else if let Ending::SourceDown(outage) = &ending {
        eprintln!("vtriage: {}", one_line(&outage.message));
    }
    Ok(Swept {
        store,
        unchecked,
        ending,
        reason,
        _log: log,
    })
}

/// `vtriage check`: probe every connection, print the diagnoses.
pub async fn check(global: &GlobalArgs, args: &CheckArgs) -> Result<ExitCode, CommandError> {
    let mut settings = setup::resolve(global)?;
    if settings.desk.is_some() {
        let deadline = tokio::time::Instant::now() + args.timeout;
        return check_desk(&mut settings, args, deadline).await;
    }
    let swept = sweep(
        &mut settings,
        args.filter.as_deref(),
        args.force,
        args.timeout,
    )
    .await?;
    let code = print_check(
        args,
        &swept.store,
        &swept.unchecked,
        &swept.reason,
        Some(&api_origin(&settings)),
    )?;
    // A source down is an app-wide answer: no car's verdict makes the check complete.
    Ok(match swept.ending {
        Ending::SourceDown(_) if code == ExitCode::SUCCESS => ExitCode::from(EXIT_NOT_CHECKED),
        _ => code,
    })
}

/// The origin of the API the probes read vehicles through.
pub(super) fn api_origin(settings: &Settings) -> String {
    match settings.api {
        crate::config::ApiVersion::V3 => settings.v3_origins.api.clone(),
        crate::config::ApiVersion::V2 => settings.origins.api.clone(),
    }
}

/// `vtriage check --server URL`: the verdicts the desk holds now, as it made them. Nothing is
/// probed or diagnosed here: the desk's prober and webhooks keep the fleet current, and a check per
/// agent must not spend the desk's budget. Vehicles the desk knows nothing about yet read UNKNOWN
/// "not checked".
pub(super) async fn check_desk(
    settings: &mut Settings,
    args: &CheckArgs,
    deadline: tokio::time::Instant,
) -> Result<ExitCode, CommandError> {
    let (store, unchecked) = desk_store(settings, args.filter.as_deref(), deadline).await?;
    print_check(args, &store, &unchecked, DESK_NOT_HEARD, None)
}

/// Why a vehicle read from a desk is not checked.
pub(super) const DESK_NOT_HEARD: &str = "the desk has heard nothing of this vehicle yet";

/// The fleet as the desk holds it now, in a store (with `filter`), and the vehicles the desk has
/// heard nothing about (said on stderr). Spends nothing of the desk's budget.
pub(super) async fn desk_store(
    settings: &mut Settings,
    filter: Option<&str>,
    deadline: tokio::time::Instant,
) -> Result<(Store, HashSet<String>), CommandError> {
    let client = desk_client(settings)?;
    let fleet = tokio::time::timeout_at(deadline, client.fleet())
        .await
        .map_err(|_| CommandError::Source("the desk did not answer before --timeout".into()))??;
    print_warnings(settings);
    let mut store = setup::store_for(settings);
    if let Some(f) = filter {
        store
            .set_filter(f)
            .map_err(|e| CommandError::Usage(format!("--filter: {e}")))?;
    }
    let now = settings.now();
    for event in crate::desk::remote::fleet_events(&fleet) {
        crate::feed::apply(&mut store, &event, now);
    }
    let unchecked: HashSet<String> = fleet
        .iter()
        .filter(|v| v.report.is_none())
        .map(|v| v.vehicle_id.clone())
        .collect();
    if !unchecked.is_empty() {
        eprintln!(
            "vtriage: {} of {} vehicles not checked: {DESK_NOT_HEARD}; they are listed as UNKNOWN \"not checked\"",
            unchecked.len(),
            store.len()
        );
    }
    Ok((store, unchecked))
}

/// Prints a check's result (table, JSON lines or CSV) for the rows passing the filter; vehicles in
/// `unchecked` read UNKNOWN "not checked" with `reason`. Returns the check's exit code.
pub(super) fn print_check(
    args: &CheckArgs,
    store: &Store,
    unchecked: &HashSet<String>,
    reason: &str,
    api_origin: Option<&str>,
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
    // The cars an agent watches (`w` in the dashboard), among the rows shown: under the table, or
    // on stderr where stdout is one record per line (JSON, CSV).
    for w in store
        .watches
        .iter()
        .filter(|w| records.iter().any(|r| r.vehicle_id == w.vehicle_id))
    {
        if args.json || args.csv {
            eprintln!("vtriage: {}", one_line(&w.describe()));
        } else {
            writeln!(out, "{}", w.describe())?;
        }
    }
    out.flush()?;
    let blocked = summaries
        .iter()
        .any(|s| s.diagnosis.status == Status::Blocked);
    // Probed but still UNKNOWN (no token, API unreachable, an answer that is not the API's): nothing
    // was learnt about these, so "nothing blocked" would be a claim the check cannot make.
    let unknown = unknown_reasons(&summaries, store, unchecked, api_origin);
    if !unknown.is_empty() {
        let n: usize = unknown.iter().map(|(_, n)| n).sum();
        let why: Vec<String> = unknown.iter().map(|(r, n)| format!("{n} × {r}")).collect();
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
