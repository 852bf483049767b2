//! `vtriage connect-url`: a Smartcar Connect URL, encoded as the official SDKs encode it.

use super::*;

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
    let scope: Vec<String> = args
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    for entry in &scope {
        connect::check_scope(entry).map_err(|e| CommandError::Usage(format!("--scope: {e}")))?;
    }
    let options = ConnectOptions {
        client_id: Some(client_id),
        redirect_uri: settings.needs.redirect_uri.clone(),
        scope,
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
