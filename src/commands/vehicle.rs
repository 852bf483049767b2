//! `vtriage vehicle`: one vehicle, every car of a user, or a VIN looked up, ready for a ticket.

use super::*;

/// `vtriage vehicle ID`: one vehicle's diagnosis, ready for a ticket.
pub async fn vehicle(global: &GlobalArgs, args: &VehicleArgs) -> Result<ExitCode, CommandError> {
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut settings = setup::resolve(global)?;
    settings.demo_latency = setup::DEMO_HEADLESS_LATENCY;
    let _log = init_logging(&settings);
    let query = args.id.trim().to_string();
    // An id or a user is listed by itself, one request, not the whole fleet with it; a VIN is
    // found among the fleet's VINs, which a listing does not give.
    let (mut plan, listed_at) = match &settings.desk {
        None if crate::smartcar::vin::decode_at(&query, settings.now()).is_err() => {
            listing_plan(&settings, &query)
        }
        _ => (VecDeque::new(), None),
    };
    if let Some(first) = plan.pop_front() {
        settings.scheduler.first_listing = first;
    }
    let mut listed_whole = settings.scheduler.first_listing.is_all();
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
    // The vehicles asked for (one, or every car of a user) and those still waiting for their probe.
    let mut targets: Vec<String> = Vec::new();
    let mut waiting: HashSet<String> = HashSet::new();
    // A VIN no session has read yet is looked up among the vehicles it may belong to.
    let mut looking_up = false;
    // A lookup that found nothing: what to say, and whether the car may still be among those unread.
    let mut unfound: Option<(String, bool)> = None;
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
        crate::feed::apply(&mut store, &event, settings.now());
        match &event {
            Event::ConnectionsFound { connections, .. } if targets.is_empty() && !looking_up => {
                if connections.is_empty() {
                    match plan.pop_front() {
                        Some(next) if !next.is_all() => {
                            let _ = session.commands.send(Command::ListConnectionsOf(next));
                        }
                        _ => {
                            eprintln!(
                                "vtriage: `{}` is no vehicle or user id; listing every connection to match it as a prefix",
                                one_line(&query)
                            );
                            listed_whole = true;
                            let _ = session.commands.send(Command::RefreshConnections);
                        }
                    }
                    continue;
                }
                targets = connections
                    .iter()
                    .map(|c| c.connection.vehicle_id.clone())
                    .collect();
                waiting = targets.iter().cloned().collect();
                let _ = session.commands.send(Command::Probe {
                    vehicle_ids: targets.clone(),
                    priority: Priority::Focus,
                    force: true,
                });
            }
            Event::ConnectionsListed { .. } if targets.is_empty() && !looking_up => {
                let found = match store.find_all(&query) {
                    Ok(found) => found,
                    Err(e) => {
                        let vin_hint = match crate::smartcar::vin::decode_at(&query, settings.now())
                        {
                            Ok(vin)
                                if vin.check_digit_misfit().is_some() && !args.lookup_anyway =>
                            {
                                // Most likely a typo: nothing is spent on it unless asked.
                                let line = vin.check_digit_line().unwrap_or_default();
                                let near = store.nearest_vins(&vin.vin, 3);
                                let near = if near.is_empty() {
                                    String::new()
                                } else {
                                    let near: Vec<String> =
                                        near.iter().map(|(id, v)| format!("{v} ({id})")).collect();
                                    format!("; nearest known: {}", near.join(", "))
                                };
                                let _ = session.commands.send(Command::Shutdown);
                                return Err(CommandError::Usage(format!(
                                    "{line}{near}; --lookup-anyway looks it up all the same"
                                )));
                            }
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
                    // A desk answers from a fresh report of its own: its budget is everyone's.
                    force: settings.desk.is_none(),
                });
            }
            Event::Observed { report } | Event::Diagnosed { report, .. } => {
                waiting.remove(&report.vehicle_id);
            }
            Event::VinLookupPlanned {
                requests,
                make,
                budget_left,
                eta_s,
                ..
            } if looking_up => {
                let mut line = vin_lookup_cost(*requests, make.as_deref());
                if let Some(left) = budget_left.filter(|_| *requests > 0) {
                    // What it leaves of the app's budget, and how long the budget makes it take.
                    let wait = if *eta_s == 0 {
                        "within the budget".to_string()
                    } else {
                        format!("~{}", crate::health::remedy::human_seconds(*eta_s))
                    };
                    line.push_str(&format!(" ({left} left in the budget: {wait})"));
                }
                eprintln!("{line}");
            }
            Event::VinLookupDone {
                vehicle_id,
                requests,
                gaps,
                ..
            } if looking_up => {
                looking_up = false;
                let Some(id) = vehicle_id else {
                    // Said after the snapshot keeps every VIN read on the way.
                    unfound = Some((
                        vin_not_found(&query, gaps, *requests, store.len()),
                        !gaps.is_empty(),
                    ));
                    break;
                };
                targets = vec![id.clone()];
                waiting = targets.iter().cloned().collect();
                let _ = session.commands.send(Command::Probe {
                    vehicle_ids: targets.clone(),
                    priority: Priority::Focus,
                    // A desk answers from a fresh report of its own: its budget is everyone's.
                    force: settings.desk.is_none(),
                });
            }
            Event::SourceError { message } if targets.is_empty() => {
                return Err(CommandError::Source(message.clone()));
            }
            // Said once: the rest would only wait for retries.
            Event::SourceUnreachable(outage) if !targets.is_empty() || looking_up => {
                ending = Ending::SourceDown(Box::new(outage.clone()));
                break;
            }
            _ => {}
        }
    }
    let _ = session.commands.send(Command::Shutdown);
    store.check_watches(settings.now());
    if listed_whole {
        save_snapshot(&settings, &store);
    } else {
        // Only part of the fleet was listed: the snapshot keeps the date of its last whole listing,
        // so a prefix is never matched against a fleet older than the freshness window.
        save_snapshot_dated(
            &settings,
            &store,
            listed_at.unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        );
    }
    match unfound {
        Some((message, false)) => return Err(CommandError::Usage(message)),
        Some((message, true)) => {
            // The car may be one of those unread: not "no vehicle".
            eprintln!("vtriage: {message}");
            return Ok(ExitCode::from(EXIT_NOT_CHECKED));
        }
        None => {}
    }
    if targets.is_empty() {
        // The API answers nothing now: the vehicle may well exist, it was just not looked up.
        if let Ending::SourceDown(outage) = &ending {
            eprintln!(
                "vtriage: `{}` not looked up: {}",
                one_line(&query),
                one_line(&outage.message)
            );
            return Ok(ExitCode::from(EXIT_NOT_CHECKED));
        }
        return Err(CommandError::Source(format!(
            "`{}` not found before {}",
            one_line(&query),
            not_checked_reason(&ending, args.timeout, &store)
        )));
    }
    let mut records: Vec<&VehicleRecord> =
        targets.iter().filter_map(|id| store.vehicle(id)).collect();
    if records.is_empty() {
        return Err(CommandError::Source(
            "the vehicle vanished from the listing".into(),
        ));
    }
    let reason = not_checked_reason(&ending, args.timeout, &store);
    if !waiting.is_empty() {
        eprintln!(
            "vtriage: {} of {} vehicles not checked: {reason}",
            waiting.len(),
            records.len()
        );
    } else if let Ending::SourceDown(outage) = &ending {
        eprintln!("vtriage: {}", one_line(&outage.message));
    }
    // Worst first, after the probe: a user's blocked car above the healthy one.
    records.sort_by_key(|r| std::cmp::Reverse(r.verdict.status));
    let mut out = std::io::stdout().lock();
    // One vehicle is one JSON object; a user's several cars are one array of them, worst first.
    let mut documents = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let mut s = VehicleSummary::from(*record);
        if waiting.contains(&record.vehicle_id) {
            s.diagnosis = std::borrow::Cow::Owned(crate::health::diagnose::not_checked(
                &reason,
                record.last_probe_at,
            ));
        }
        if args.json {
            documents.push(report::vehicle_json(&s));
        } else {
            if i > 0 {
                writeln!(out, "\n---\n")?;
            }
            write!(
                out,
                "{}",
                report::markdown(&s, &settings.policies, settings.now())
            )?;
            if let Some(w) = store.watches.get(&record.vehicle_id) {
                writeln!(out, "\n{}", w.describe())?;
            }
        }
    }
    if args.json {
        let written = match documents.as_slice() {
            [one] => serde_json::to_writer_pretty(&mut out, one),
            many => serde_json::to_writer_pretty(&mut out, many),
        };
        written.map_err(std::io::Error::other)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(
        if records
            .iter()
            .any(|r| r.verdict.status == Status::Blocked && !waiting.contains(&r.vehicle_id))
        {
            ExitCode::from(1)
        } else if !waiting.is_empty() || matches!(ending, Ending::SourceDown(_)) {
            ExitCode::from(EXIT_NOT_CHECKED)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// The listings that find `query`, cheapest first, and when the snapshot's fleet was listed whole.
/// The snapshot tells whether the query is a vehicle id, a user id or a unique prefix of one; a
/// prefix is matched only against a snapshot younger than the freshness window, else against a
/// new listing of every connection. Without a snapshot, the query is tried as a vehicle id, then
/// as a user id, then as a prefix.
fn listing_plan(
    settings: &Settings,
    query: &str,
) -> (VecDeque<ListingFilter>, Option<jiff::Timestamp>) {
    let whole = || ListingFilter::all();
    let guess = VecDeque::from([
        ListingFilter::vehicle(query),
        ListingFilter::user(query),
        whole(),
    ]);
    let path = settings.paths.snapshot_file(&settings.profile);
    let Ok(Some(snapshot)) = store::snapshot::load(&path) else {
        return (guess, None);
    };
    let listed_at = snapshot.saved_at;
    let fresh = settings
        .now()
        .duration_since(listed_at)
        .as_secs()
        .try_into()
        .is_ok_and(|age: u64| age < settings.scheduler.freshness.as_secs());
    let mut known = setup::store_for(settings);
    known.restore(snapshot);
    let plan = match known.find_all(query) {
        Ok(cars) if cars.iter().any(|r| r.vehicle_id == query) => {
            VecDeque::from([ListingFilter::vehicle(query), whole()])
        }
        Ok(cars) if cars.iter().all(|r| r.is_owned_by(query)) => {
            VecDeque::from([ListingFilter::user(query), whole()])
        }
        // A unique prefix of one vehicle's id, or of one user's.
        Ok(cars) if fresh => match cars.as_slice() {
            [one] => VecDeque::from([ListingFilter::vehicle(one.vehicle_id.clone()), whole()]),
            [first, ..] if cars.iter().all(|r| r.is_owned_by(&first.user_id)) => {
                VecDeque::from([ListingFilter::user(first.user_id.clone()), whole()])
            }
            _ => VecDeque::from([whole()]),
        },
        Ok(_) => VecDeque::from([whole()]),
        Err(_) => guess,
    };
    (plan, Some(listed_at))
}

/// What a VIN lookup will cost, said before it starts.
pub(super) fn vin_lookup_cost(requests: u64, make: Option<&str>) -> String {
    let make = make.map_or_else(String::new, |m| format!(" ({} VIN)", one_line(m)));
    match requests {
        0 => format!("vtriage: VIN lookup{make}: no connected vehicle can have it, 0 requests"),
        1 => format!("vtriage: VIN lookup{make}: reading 1 vehicle's VIN, 1 request at most"),
        n => format!(
            "vtriage: VIN lookup{make}: reading the VINs of {n} vehicles whose make and year fit, {n} requests at most"
        ),
    }
}

/// How a lookup that found nothing ended, with the candidates it could not read, one a line.
pub(super) fn vin_not_found(
    query: &str,
    gaps: &crate::fetch::VinLookupGaps,
    requests: u64,
    fleet: usize,
) -> String {
    let mut message = gaps.summary(&one_line(query).to_ascii_uppercase(), requests, fleet);
    const SHOWN: usize = 20;
    for candidate in gaps.unread.iter().take(SHOWN) {
        message.push_str("\n  ");
        message.push_str(&candidate.line());
    }
    if gaps.unread.len() > SHOWN {
        message.push_str(&format!("\n  … and {} more", gaps.unread.len() - SHOWN));
    }
    message
}
