//! `vtriage outreach`: the customers to reach before they write a ticket, one row per car a rule
//! blocks, with the car's own fix link and the message, for the app's mail or push tool.

use super::*;
use crate::cli::OutreachArgs;
use crate::report::outreach::{self as rows, Outreach, Select};

/// How the rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Csv,
    JsonLines,
}

impl Format {
    fn of(args: &OutreachArgs) -> Format {
        let by_name = args.output.as_ref().map(|p| {
            match p
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
            {
                Some(e) if e == "json" || e == "jsonl" || e == "ndjson" => Format::JsonLines,
                _ => Format::Csv,
            }
        });
        if args.json {
            Format::JsonLines
        } else if args.csv {
            Format::Csv
        } else {
            by_name.unwrap_or(Format::Table)
        }
    }
}

/// What `--rule` and `--status` select, checked against the rules in force.
fn selection(args: &OutreachArgs, settings: &Settings) -> Result<Select, CommandError> {
    let mut known: Vec<String> = settings
        .policies
        .rules
        .iter()
        .flat_map(|r| [r.id.clone(), r.finding.clone()])
        .collect();
    known.extend(
        crate::health::FindingId::ALL
            .iter()
            .map(|f| f.as_str().to_string()),
    );
    for rule in &args.rules {
        if !known.iter().any(|k| k == rule) {
            let near = known
                .iter()
                .filter(|k| strsim::levenshtein(k, rule) <= rule.chars().count().div_ceil(3).max(2))
                .min_by_key(|k| strsim::levenshtein(k, rule));
            let hint = match near {
                Some(n) => format!("did you mean {n}?"),
                None => format!("rules and findings: {}", known.join(", ")),
            };
            return Err(CommandError::Usage(format!(
                "--rule {}: no such rule or finding; {hint}",
                one_line(rule)
            )));
        }
    }
    let statuses = args
        .statuses
        .iter()
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                CommandError::Usage(format!(
                    "--status {}: give one of {}",
                    one_line(s),
                    Status::ALL.map(Status::label).join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Select {
        rules: args.rules.clone(),
        statuses,
    })
}

/// `vtriage outreach`: probes the fleet as `check` does (or reads a desk's verdicts), then writes a
/// row per customer and car to reach. Cars whose fix has no link yet (no Connect client id) are
/// left out and said on stderr with what to configure (exit 3), never written as if ready.
pub async fn outreach(global: &GlobalArgs, args: &OutreachArgs) -> Result<ExitCode, CommandError> {
    let mut settings = setup::resolve(global)?;
    let select = selection(args, &settings)?;
    let (store, unchecked) = if settings.desk.is_some() {
        let deadline = tokio::time::Instant::now() + args.timeout;
        check::desk_store(&mut settings, None, deadline).await?
    } else {
        let swept = check::sweep(&mut settings, None, args.force, args.timeout).await?;
        (swept.store, swept.unchecked)
    };
    let summaries: Vec<VehicleSummary<'_>> = store
        .rows(0..store.len())
        .filter(|r| !unchecked.contains(&r.vehicle_id))
        .map(VehicleSummary::from)
        .collect();
    let found = rows::outreach(&summaries, &select);
    write(args, &found)?;
    let mut complete = unchecked.is_empty();
    if !found.without_link.is_empty() {
        complete = false;
        let client_id = settings
            .needs
            .client_id
            .as_deref()
            .is_some_and(|c| !c.trim().is_empty());
        let what = if client_id {
            "their fix has no link".to_string()
        } else {
            "a re-authentication link needs the Connect client id: set SMARTCAR_CLIENT_ID, --client-id or client_id in the profile".to_string()
        };
        eprintln!(
            "vtriage: {} car{} left out: {what}",
            found.without_link.len(),
            if found.without_link.len() == 1 {
                ""
            } else {
                "s"
            },
        );
    }
    let target = args
        .output
        .as_ref()
        .map(|p| format!(" to {}", one_line(&p.display().to_string())))
        .unwrap_or_default();
    eprintln!(
        "vtriage: {} customer{} to reach{target}",
        found.ready.len(),
        if found.ready.len() == 1 { "" } else { "s" }
    );
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_CHECKED)
    })
}

/// Writes the ready rows to `--output` (owner-only: it holds user ids and VINs) or stdout.
fn write(args: &OutreachArgs, found: &Outreach) -> Result<(), CommandError> {
    let format = Format::of(args);
    let emit = |out: &mut dyn Write| -> std::io::Result<()> {
        match format {
            Format::Table => rows::write_table(out, &found.ready),
            Format::Csv => rows::write_csv(out, &found.ready),
            Format::JsonLines => rows::write_json_lines(out, &found.ready),
        }?;
        out.flush()
    };
    match &args.output {
        Some(path) => {
            let home = directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf());
            let path = crate::tui::expand_home(path, home.as_deref());
            let file = crate::private_files::create_file(&path).map_err(|e| {
                CommandError::Usage(format!(
                    "cannot write {}: {e}",
                    one_line(&path.display().to_string())
                ))
            })?;
            emit(&mut std::io::BufWriter::new(file))?;
        }
        None => emit(&mut std::io::BufWriter::new(std::io::stdout().lock()))?,
    }
    Ok(())
}
