//! `vtriage sim`: the simulator, standalone.

use super::*;

/// `vtriage sim`: the simulator, standalone.
pub async fn sim(args: crate::sim::SimArgs) -> Result<ExitCode, CommandError> {
    if args.help {
        print!("{}", crate::sim::help());
        return Ok(ExitCode::SUCCESS);
    }
    crate::sim::run_cli(args).await?;
    Ok(ExitCode::SUCCESS)
}
