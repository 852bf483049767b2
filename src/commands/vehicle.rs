//! `vtriage vehicle`: one vehicle, every car of a user, or a VIN looked up, ready for a ticket.

use super::*;

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
        crate::feed::apply(&mut store, &event, settings.now());
        match &event {
            Event::ConnectionsListed { .. } if targets.is_empty() && !looking_up => {
                let found = match store.find_all(&query) {
                    Ok(found) => found,
                    Err(e) => {
                        let vin_hint = match crate::smartcar::vin::decode_at(&query, settings.now())
                        {
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
    save_snapshot(&settings, &store);
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

pub(super) fn vin_not_found(query: &str, requests: u64, unreadable: u64, fleet: usize) -> String {
    let unread = if unreadable > 0 {
        format!(" ({unreadable} gave no VIN: asleep, offline or refused)")
    } else {
        String::new()
    };
    let plural = if requests == 1 { "" } else { "s" };
    format!(
        "VIN `{}`: no vehicle among {fleet} connections after {requests} request{plural}{unread}",
        one_line(query)
    )
}
