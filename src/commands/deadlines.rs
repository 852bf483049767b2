//! `vtriage deadlines`: the OEM rules and their countdowns.

use super::*;

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
