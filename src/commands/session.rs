//! The session of a command against a desk server: its client, its rules, its events.

use super::*;

/// The client for the desk the settings name.
pub(super) fn desk_client(
    settings: &Settings,
) -> Result<crate::desk::remote::DeskClient, CommandError> {
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

/// Shows the desk's rules (countdowns, `deadlines`) and vets fix links against its Connect origin.
/// Verdicts are never made with them here: the desk sends each vehicle's diagnosis made.
pub(super) fn adopt_desk_rules(settings: &mut Settings, rules: &crate::desk::wire::RulesDoc) {
    match crate::health::Policies::parse(
        &rules.policies,
        std::path::Path::new("<the desk's rules>"),
    ) {
        Ok(p) => settings.policies = p,
        Err(e) => settings.warnings.push(format!(
            "{e}; the countdowns shown are this machine's rules (verdicts are the desk's)"
        )),
    }
    settings.needs = rules.needs.clone();
}

/// A session reading the desk: the same channels as a local scheduler's, and the link's state.
pub(super) async fn desk_session(
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
