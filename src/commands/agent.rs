//! `vtriage agent`: agent tokens of a desk server.

use super::*;

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
        crate::config::ApiVersion::V3,
    );
    let db = crate::desk::Db::new(&config, diagnose, None).map_err(crate::desk::DeskError::from)?;
    // A mistyped schema would quietly become a desk of its own, with tokens no `serve` reads.
    let new_schema = match &args.schema {
        Some(schema) => !db
            .has_schema(schema)
            .await
            .map_err(|e| crate::desk::DeskError::from(e.at(&config.place())))?,
        None => false,
    };
    // Only `add` may make a desk's tables; listing or revoking on a schema that is not there is a typo.
    if new_schema && !matches!(args.action, AgentAction::Add { .. }) {
        return Err(CommandError::Usage(format!(
            "schema {} does not exist on this database: is it the one `serve --schema` uses?",
            one_line(args.schema.as_deref().unwrap_or_default())
        )));
    }
    // The agents table may not exist yet on a desk never started with this version.
    db.migrate(args.schema.as_deref())
        .await
        .map_err(|e| crate::desk::DeskError::from(e.at(&config.place())))?;
    if new_schema {
        eprintln!(
            "vtriage: schema {} did not exist and was created: is it the one `serve --schema` uses?",
            one_line(args.schema.as_deref().unwrap_or_default())
        );
    }
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
