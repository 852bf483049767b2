//! `vtriage info`: where vtriage keeps its files, and what the settings resolve to.

use super::*;

/// `vtriage info`: every path vtriage uses, and what the current settings resolve to.
pub fn info(global: &GlobalArgs) -> Result<ExitCode, CommandError> {
    let settings = setup::resolve(global)?;
    let p = &settings.paths;
    let exists = |path: &std::path::Path| if path.exists() { "" } else { " (not present)" };
    let policies = p.policies_file();
    let snapshot = p.snapshot_file(&settings.profile);
    let log = p.log_file();
    println!(
        "config file     {}{}",
        settings.config_file.display(),
        exists(&settings.config_file)
    );
    println!(
        "policies        {}{}",
        policies.display(),
        exists(&policies)
    );
    println!("cache folder    {}", p.cache_dir.display());
    println!(
        "snapshot        {}{}",
        snapshot.display(),
        exists(&snapshot)
    );
    println!("state folder    {}", p.state_dir.display());
    println!("log file        {}{}", log.display(), exists(&log));
    println!(
        "profile         {} ({})",
        settings.profile,
        settings.mode.label()
    );
    match settings.mode {
        setup::Mode::Demo => println!("origins         built-in simulator on a free loopback port"),
        setup::Mode::Live if settings.api == crate::config::ApiVersion::V3 => {
            println!("api             v3 (client id and secret)");
            println!("api origin      {}", settings.v3_origins.api);
            println!("iam origin      {}", settings.v3_origins.iam);
        }
        setup::Mode::Live => {
            println!("api             v2.0");
            println!("api origin      {}", settings.origins.api);
            println!("management      {}", settings.origins.management);
        }
    }
    println!("connect origin  {}", settings.origins.connect);
    for w in &settings.warnings {
        println!("warning         {w}");
    }
    Ok(ExitCode::SUCCESS)
}
