//! `vtriage` with no command: the dashboard, local or on a desk server.

use super::*;

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
    tui_config.confirm_lookup_share = settings.config.fetch.confirm_lookup_share.max(0.0);
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
