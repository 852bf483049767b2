//! `vtriage serve`: the desk server.

use super::*;

/// The text of the rules in force: the override file when it parses (as `resolve` decided), else
/// the built-in rules. Agents' clients diagnose with it.
pub(super) fn policies_text(settings: &Settings) -> String {
    let path = settings.paths.policies_file();
    match std::fs::read_to_string(&path) {
        Ok(text) if crate::health::Policies::parse(&text, &path).is_ok() => text,
        _ => crate::health::policy::BUILTIN_POLICIES.to_string(),
    }
}

/// What the desk's fix links will lack, said once at start: without the Connect client id no
/// re-authentication link can be made; without a redirect URI Connect sends the customer to the
/// application's default one (Smartcar Dashboard). The demo's simulator gives its own client id.
pub(super) fn links_lack(settings: &Settings, demo: bool) -> Option<String> {
    let mut lacking = Vec::new();
    if !demo
        && settings
            .needs
            .client_id
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
    {
        lacking.push(
            "no Connect client id (--client-id or SMARTCAR_CLIENT_ID): no re-authentication links",
        );
    }
    if settings.needs.redirect_uri.is_none() {
        lacking.push(
            "no redirect_uri (--redirect-uri or SMARTCAR_REDIRECT_URI): links use the redirect URI set in the Smartcar Dashboard",
        );
    }
    (!lacking.is_empty()).then(|| lacking.join("; "))
}

/// `vtriage serve`: the desk server until SIGTERM or Ctrl-C. Logs are lines on stdout, for the
/// service manager (JSON lines with `--log-format json`); `VTRIAGE_LOG` sets the filter (default
/// `info`).
pub async fn serve(
    global: &GlobalArgs,
    args: &crate::cli::ServeArgs,
) -> Result<ExitCode, CommandError> {
    if args.rejected {
        return rejected(args).await;
    }
    // Resolved once, off the async workers; the secret commands are the prober's to run, with a
    // timeout, again after a failure.
    let resolving = global.clone();
    let settings = tokio::task::spawn_blocking(move || {
        setup::resolve_with(&resolving, setup::Commands::Defer)
    })
    .await
    .map_err(|e| CommandError::Usage(format!("cannot resolve the settings: {e}")))??;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VTRIAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match args.log_format {
        crate::cli::LogFormat::Json => logs.json().try_init(),
        crate::cli::LogFormat::Text => logs.with_ansi(false).try_init(),
    };
    for w in &settings.warnings {
        tracing::warn!(warning = %one_line(w), "setup");
    }
    if settings.mode == setup::Mode::Demo && !global.demo {
        return Err(CommandError::Usage(
            "serve needs Smartcar credentials (API v3: SMARTCAR_CLIENT_ID and SMARTCAR_CLIENT_SECRET; v2.0: SMARTCAR_MANAGEMENT_TOKEN with tokens), or --demo to probe the built-in simulator"
                .into(),
        ));
    }
    if let Some(lacking) = links_lack(&settings, global.demo) {
        tracing::warn!(links = %lacking, "the desk's fix links lack something");
    }
    let amt = settings
        .source
        .amt
        .clone()
        .ok_or(crate::desk::DeskError::NoAmt)?;
    let diagnose = crate::desk::diagnoser(
        settings.policies.clone(),
        settings.needs.clone(),
        settings.api,
    );
    let now = settings.now_override;
    let config = crate::desk::DeskConfig {
        listen: args.listen,
        db: crate::desk::DbConfig {
            url: args.database.clone(),
            schema: args.schema.clone(),
            pool_size: usize::from(args.pool_size),
            timeout: args.db_timeout,
        },
        amt,
        secrets: settings
            .client_credentials
            .iter()
            .map(|c| c.client_secret.clone())
            .chain(settings.source.tokens.values().cloned())
            .chain(settings.source.single_token.clone())
            .collect(),
        max_body_bytes: args.max_body_bytes,
        http_limits: crate::http_serve::Limits {
            max_connections: args.max_connections as usize,
            max_per_peer: args.max_connections_per_peer as usize,
            ..crate::http_serve::Limits::default()
        },
        keep_rejected: crate::desk::rejected::KeepRejected {
            rows: args.keep_rejected,
            days: args.keep_rejected_days,
            ..Default::default()
        },
        retention: crate::desk::Retention {
            events_days: args.keep_events_days,
            history_days: args.keep_history_days,
            audit_days: args.keep_audit_days,
            probes_days: args.keep_probes_days,
        },
        prober: (!args.no_prober).then(|| crate::desk::ProberSetup {
            config: crate::desk::ProberConfig {
                lock_retry: args.prober_retry,
                refresh_every: Some(args.refresh_every),
                sweep_every: args.sweep_every,
                command_timeout: args.command_timeout,
                ..crate::desk::ProberConfig::default()
            },
            settings: settings.clone(),
        }),
        max_waiting_probes: args.max_waiting_probes,
        vin_lookups_per_hour: args.vin_lookups_per_hour,
        policies_text: policies_text(&settings),
        needs: settings.needs.clone(),
        api: settings.api,
        rediagnosis: crate::desk::RediagnosisConfig {
            every: args.rediagnose_every,
            lock_retry: args.prober_retry,
        },
        ingest: crate::desk::IngestConfig::default(),
    };

    crate::desk::run(config, diagnose, now, async {
        let name = interrupted().await;
        tracing::info!(signal = name, "shutdown requested");
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// `vtriage serve --rejected`: the refused deliveries the desk kept, newest first.
async fn rejected(args: &crate::cli::ServeArgs) -> Result<ExitCode, CommandError> {
    let config = crate::desk::DbConfig {
        url: args.database.clone(),
        schema: args.schema.clone(),
        pool_size: 1,
        timeout: Duration::from_secs(10),
    };
    let diagnose = crate::desk::diagnoser(
        crate::health::Policies::builtin(),
        crate::health::Needs::default(),
        crate::config::ApiVersion::V3,
    );
    let place = |e: crate::desk::DbError| crate::desk::DeskError::from(e.at(&config.place()));
    let db = crate::desk::Db::new(&config, diagnose, None).map_err(crate::desk::DeskError::from)?;
    if let Some(schema) = &args.schema
        && !db.has_schema(schema).await.map_err(place)?
    {
        return Err(CommandError::Usage(format!(
            "schema {} does not exist on this database: is it the one `serve --schema` uses?",
            one_line(schema)
        )));
    }
    db.migrate(args.schema.as_deref()).await.map_err(place)?;
    let rows = db.rejected(args.keep_rejected).await.map_err(place)?;
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        rows.iter().try_for_each(|r| {
            let line = serde_json::to_string(r).unwrap_or_default();
            writeln!(out, "{}", crate::untrusted::text::json_escaped(&line))
        })
    } else {
        crate::desk::rejected::render(&rows, &mut out)
    };
    written.map_err(CommandError::from)?;
    Ok(ExitCode::SUCCESS)
}
