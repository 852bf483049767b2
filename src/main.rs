//! The `vtriage` binary: parses the command line, runs one command, turns failures into one line and an exit code.

use std::process::ExitCode;

use clap::Parser;
use vtriage::cli::{Cli, Command};

/// glibc's malloc keeps an arena per thread and hands little back: a desk that re-lists a
/// 100,000-vehicle fleet (allocated on one runtime thread, freed on another) grew by hundreds of
/// megabytes. mimalloc frees across threads and returns what it no longer uses, and allocates
/// faster on the webhook path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vtriage: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(cli));
    // Background tasks (scheduler, simulator) must not keep the process alive after the command.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        // The reader stopped reading (`| head`): end quietly, as a process killed by SIGPIPE would.
        Err(e) if e.is_broken_pipe() => ExitCode::from(141),
        Err(e) => {
            eprintln!(
                "vtriage: {}",
                vtriage::untrusted::text::one_line(&e.to_string())
            );
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, vtriage::commands::CommandError> {
    use vtriage::commands;
    match cli.command {
        None => commands::dashboard(&cli.global).await,
        Some(Command::Check(args)) => commands::check(&cli.global, &args).await,
        Some(Command::Outreach(args)) => commands::outreach(&cli.global, &args).await,
        Some(Command::Vehicle(args)) => commands::vehicle(&cli.global, &args).await,
        Some(Command::Deadlines(args)) => commands::deadlines(&cli.global, &args).await,
        Some(Command::ConnectUrl(args)) => commands::connect_url(&cli.global, &args),
        Some(Command::Sim(args)) => commands::sim(args).await,
        Some(Command::Info) => commands::info(&cli.global),
        Some(Command::Serve(args)) => commands::serve(&cli.global, &args).await,
        Some(Command::Agent(args)) => commands::agent(&args).await,
    }
}
