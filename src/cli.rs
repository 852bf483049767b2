//! The command line: global connection flags and the subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A terminal dashboard that tells a support agent why a connected car stopped answering
/// through the Smartcar API, and hands them the fix.
#[derive(Debug, Parser)]
#[command(name = "vtriage", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Profile from config.toml (default: the file's `profile`, else demo).
    #[arg(long, global = true, env = "VTRIAGE_PROFILE")]
    pub profile: Option<String>,
    /// Config file instead of config.toml in the config folder.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Pretend it is this moment (RFC 3339, e.g. 2025-01-01T00:00:00Z): countdowns, ages, staleness.
    #[arg(long, global = true, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Smartcar API version: v3 (client id and secret; the default when SMARTCAR_CLIENT_SECRET or a
    /// profile's client secret is set) or v2 (AMT and access tokens). Profile key `api`.
    #[arg(long, global = true, value_enum)]
    pub api: Option<crate::config::ApiVersion>,
    /// Vehicle API origin (v2 env SMARTCAR_API_ORIGIN; v3 env SMARTCAR_API_V3_ORIGIN or
    /// SMARTCAR_VEHICLE_API_V3_ORIGIN).
    #[arg(long, global = true, value_name = "URL")]
    pub api_origin: Option<String>,
    /// API v3 token endpoint origin (env SMARTCAR_IAM_ORIGIN).
    #[arg(long, global = true, value_name = "URL")]
    pub iam_origin: Option<String>,
    /// Management API origin (env SMARTCAR_MANAGEMENT_API_ORIGIN).
    #[arg(long, global = true, value_name = "URL")]
    pub management_origin: Option<String>,
    /// Connect origin used in re-authentication links (env SMARTCAR_CONNECT_ORIGIN).
    #[arg(long, global = true, value_name = "URL")]
    pub connect_origin: Option<String>,
    /// Accept plain http:// origins off this machine (tokens then travel unencrypted).
    #[arg(long, global = true)]
    pub allow_insecure_origin: bool,
    /// Application management token (env SMARTCAR_MANAGEMENT_TOKEN).
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    pub amt: Option<String>,
    /// CSV file `user_id,access_token` with the users' access tokens.
    #[arg(long, global = true, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// One access token (one user's vehicles).
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Use the built-in simulator even when credentials are configured.
    #[arg(long, global = true)]
    pub demo: bool,
    /// Probes in flight at once.
    #[arg(long, global = true, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Client-side request budget per minute (burst stays as configured).
    #[arg(
        long,
        global = true,
        value_name = "R/min",
        conflicts_with = "no_rate_limit",
        value_parser = per_minute
    )]
    pub rate: Option<f64>,
    /// Switch the client-side rate budget off (plans with higher limits, the simulator).
    #[arg(long, global = true)]
    pub no_rate_limit: bool,
    /// Client id: API v3 credentials with the secret from SMARTCAR_CLIENT_SECRET, and re-authentication
    /// links (env SMARTCAR_CLIENT_ID). The secret is never taken from a flag.
    #[arg(long, global = true, value_name = "ID")]
    pub client_id: Option<String>,
    /// Connect redirect URI (env SMARTCAR_REDIRECT_URI).
    #[arg(long, global = true, value_name = "URI")]
    pub redirect_uri: Option<String>,
    /// Read a desk server (`vtriage serve`) instead of Smartcar: the dashboard, check, vehicle and
    /// deadlines come from it, with the agent token from VTRIAGE_AGENT_TOKEN or the profile's
    /// agent_token_file. Profile `kind = "server"` with `server = URL` does the same.
    #[arg(long, global = true, value_name = "URL", env = "VTRIAGE_SERVER")]
    pub server: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe every connection and print the diagnosis (exit 0 nothing blocked, 1 something blocked, 2 setup error,
    /// 3 some vehicles not checked: the deadline, a signal, or the Vehicle API or token endpoint unreachable or
    /// refusing the client credentials, which stops the check at once).
    Check(CheckArgs),
    /// The customers to reach before they write a ticket: one row per car a rule blocks, with the car's
    /// own fix link and the message for the app's mail or push tool (exit 0, 2 setup error, 3 some cars
    /// not checked or left out for want of a link).
    Outreach(OutreachArgs),
    /// One vehicle's report, ready to paste into a ticket (exit 0, 1 blocked, 2 setup error, 3 not checked: the
    /// deadline, or the Vehicle API or token endpoint unreachable).
    Vehicle(VehicleArgs),
    /// The OEM rules and their countdowns.
    Deadlines(DeadlinesArgs),
    /// Print a Smartcar Connect URL (authorize, or re-authenticate an existing vehicle).
    ConnectUrl(ConnectUrlArgs),
    /// Run the Smartcar simulator standalone.
    #[command(disable_help_flag = true)]
    Sim(crate::sim::SimArgs),
    /// Where config, cache, snapshot and logs live.
    Info,
    /// The desk server: Smartcar webhooks into PostgreSQL, and the desk's one prober.
    Serve(ServeArgs),
    /// The agents who may read a desk server: add (prints the token once), list, revoke.
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The desk's PostgreSQL URL (env DATABASE_URL).
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        global = true
    )]
    pub database: Option<String>,
    /// The schema `serve --schema` uses, if any.
    #[arg(long, value_name = "NAME", global = true)]
    pub schema: Option<String>,
    #[command(subcommand)]
    pub action: AgentAction,
}

#[derive(Debug, Subcommand)]
pub enum AgentAction {
    /// Adds an agent and prints its token once (the desk keeps only a hash of it).
    Add {
        /// The agent's name, as the audit shows it.
        name: String,
    },
    /// Every agent, when added, and whether revoked.
    List,
    /// Refuses the agent's token from now on, including on a live stream already open.
    Revoke { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// One JSON object per vehicle.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header row.
    #[arg(long)]
    pub csv: bool,
    /// Only vehicles matching this filter (same language as `/` in the dashboard).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Ignore cached results younger than the freshness window.
    #[arg(long)]
    pub force: bool,
    /// Deadline for the whole check (90s, 30m, 2h). On it, on Ctrl-C or on SIGTERM, what is known is
    /// printed and saved, and vehicles not reached read UNKNOWN "not checked" (exit 3).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration)]
    pub timeout: std::time::Duration,
}

/// The longest `--timeout` accepted: a week.
const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;

/// Parses a duration: `90` (seconds), `90s`, `30m`, `2h`, `1h 30m`, or ISO 8601 (`PT30M`).
fn duration(value: &str) -> Result<std::time::Duration, String> {
    let value = value.trim();
    let parsed = match value.parse::<u64>() {
        Ok(s) => std::time::Duration::from_secs(s),
        Err(_) => value
            .parse::<jiff::SignedDuration>()
            .ok()
            .and_then(|d| std::time::Duration::try_from(d).ok())
            .ok_or_else(|| format!("`{value}` is not a duration (try 90s, 30m or 2h)"))?,
    };
    if parsed.is_zero() || parsed.as_secs() > MAX_TIMEOUT_S {
        return Err(format!(
            "`{value}` is out of range (more than 0 s, at most 7 days)"
        ));
    }
    Ok(parsed)
}

#[derive(Debug, Args)]
pub struct OutreachArgs {
    /// Only cars caught by this rule or finding (repeatable): tesla-virtual-key,
    /// tesla-location-permission, connection-revoked…; default: every one the customer fixes with a link.
    #[arg(long = "rule", value_name = "ID")]
    pub rules: Vec<String>,
    /// Only cars with this status (repeatable): BLOCKED, DEGRADED, WARNING.
    #[arg(long = "status", value_name = "S")]
    pub statuses: Vec<String>,
    /// One JSON object per car and line.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header row (cells neutralised against formula injection).
    #[arg(long)]
    pub csv: bool,
    /// Write to this file, readable by its owner only, instead of stdout: CSV, or JSON lines for a
    /// .json/.jsonl name or with --json.
    #[arg(long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Ignore cached results younger than the freshness window.
    #[arg(long)]
    pub force: bool,
    /// Deadline for the probes (90s, 30m, 2h); cars not reached are left out (exit 3).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct VehicleArgs {
    /// Vehicle id, VIN, user id (every car of the user, worst first), or a unique prefix of an id.
    pub id: String,
    /// The full diagnosis and evidence as JSON, one object per vehicle.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// A Markdown section per vehicle, ready to paste into a ticket (the default).
    #[arg(long)]
    pub markdown: bool,
    /// Deadline (90s, 5m): a vehicle whose probe has not landed by then reads UNKNOWN "not checked" (exit 3).
    #[arg(long, value_name = "DURATION", default_value = "6m", value_parser = duration)]
    pub timeout: std::time::Duration,
    /// Look a VIN up even when its check digit (position 9) does not fit: some VINs made
    /// outside North America do not use it.
    #[arg(long)]
    pub lookup_anyway: bool,
}

#[derive(Debug, Args)]
pub struct DeadlinesArgs {
    /// The rules and their countdowns as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConnectMode {
    /// Real vehicles.
    Live,
    /// Smartcar's vehicle simulator.
    Simulated,
    /// Test mode with made-up credentials.
    Test,
}

#[derive(Debug, Args)]
pub struct ConnectUrlArgs {
    /// Scopes, space separated; prefix with `required:` to make one required.
    #[arg(long, value_name = "SCOPES")]
    pub scope: Option<String>,
    /// Connect mode: live (real cars), simulated (Smartcar's simulator) or test.
    #[arg(long, value_enum)]
    pub mode: Option<ConnectMode>,
    /// approval_prompt=force.
    #[arg(long)]
    pub force_prompt: bool,
    /// An opaque value Connect hands back to the redirect URI unchanged.
    #[arg(long)]
    pub state: Option<String>,
    /// Skip the brand selector (e.g. TESLA).
    #[arg(long)]
    pub make: Option<String>,
    /// Let the owner connect one vehicle only.
    #[arg(long)]
    pub single_select: bool,
    /// Let the owner connect only the vehicle with this VIN.
    #[arg(long, value_name = "VIN")]
    pub single_select_vin: Option<String>,
    /// Feature flag KEY:VALUE; repeatable.
    #[arg(long = "flag", value_name = "KEY:VALUE")]
    pub flags: Vec<String>,
    /// Your id for the user, for analytics.
    #[arg(long)]
    pub user: Option<String>,
    /// A re-authentication URL for an existing vehicle (needs --vehicle-id).
    #[arg(long, requires = "vehicle_id")]
    pub reauth: bool,
    /// The vehicle to re-authenticate (with --reauth).
    #[arg(long)]
    pub vehicle_id: Option<String>,
}

/// `serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// PostgreSQL URL, e.g. postgres://vtriage@127.0.0.1:5432/desk (env DATABASE_URL).
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database: String,
    /// Address to listen on; put a TLS-terminating proxy in front of it.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    pub listen: std::net::SocketAddr,
    /// Keep the desk's tables in this schema (created if missing) instead of the user's default.
    #[arg(long, value_name = "NAME")]
    pub schema: Option<String>,
    /// Database connections in the pool.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub pool_size: u16,
    /// How long a request waits for the database before it is answered 503.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub db_timeout: std::time::Duration,
    /// Largest webhook body accepted; larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Open HTTP connections at most (keep it under the process's file-descriptor limit).
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Open HTTP connections one peer address may hold (behind a proxy, every client is the proxy).
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_peer: u32,
    /// Delete webhook events older than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub keep_events_days: u32,
    /// Delete status-history rows older than this many days (each vehicle's newest is kept).
    #[arg(long, value_name = "DAYS", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub keep_history_days: u32,
    /// Delete audit rows older than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub keep_audit_days: u32,
    /// Delete served probe requests and probe results older than this many days (each vehicle's
    /// newest result is kept).
    #[arg(long, value_name = "DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub keep_probes_days: u32,
    /// Never probe from this process (webhooks only).
    #[arg(long)]
    pub no_prober: bool,
    /// How often a waiting process asks for the prober lock (takeover time after the holder dies).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    pub prober_retry: std::time::Duration,
    /// Re-list the fleet this often.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration)]
    pub refresh_every: std::time::Duration,
    /// Sweep the whole fleet this often (off by default: a sweep spends the budget).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub sweep_every: Option<std::time::Duration>,
    /// Diagnose again this often, from stored evidence (no request), a batch of 2,000 verdicts
    /// that time alone can change: a rule coming into force, data going stale.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub rediagnose_every: std::time::Duration,
    /// How long `tokens_command` or `client_secret_command` may run before it is stopped; the
    /// prober tries again later, backing off.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub command_timeout: std::time::Duration,
    /// How the log on stdout is written: `text` lines for a person, `json` lines for a collector.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// VIN lookups one agent may start an hour (each reads VINs from Smartcar, the costliest call
    /// a desk answers); more are answered 429.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub vin_lookups_per_hour: u32,
    /// Probe requests one agent may have waiting; more are answered 429.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_waiting_probes: u32,
    /// Keep this many of the newest refused webhook deliveries for `--rejected`.
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub keep_rejected: u32,
    /// Delete kept refused deliveries older than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub keep_rejected_days: u32,
    /// Print the refused webhook deliveries the desk kept (why each was refused, what would have
    /// matched its signature), newest first, and exit; serves nothing.
    #[arg(long)]
    pub rejected: bool,
    /// With --rejected: one JSON object per line.
    #[arg(long, requires = "rejected")]
    pub json: bool,
}

/// A request rate per minute: `120`, `120/min` or `2/s`.
fn per_minute(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, per_second) = if let Some(n) = t.strip_suffix("/min").or(t.strip_suffix("/m")) {
        (n, false)
    } else if let Some(n) = t.strip_suffix("/s") {
        (n, true)
    } else {
        (t, false)
    };
    match number.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(if per_second { r * 60.0 } else { r }),
        _ => Err(format!(
            "`{text}` is not a rate: give requests per minute, like 120, 120/min or 2/s"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::per_minute;

    #[test]
    fn a_rate_reads_as_a_number_per_minute_or_per_second() {
        assert_eq!(per_minute("120"), Ok(120.0));
        assert_eq!(per_minute("600/min"), Ok(600.0));
        assert_eq!(per_minute("2/s"), Ok(120.0));
        assert_eq!(per_minute(" 1.5/m "), Ok(1.5));
        for bad in ["fast", "0", "-3/min", "NaN", "inf/s", "/min"] {
            let err = per_minute(bad).expect_err(bad);
            assert!(err.contains("not a rate"), "{err}");
        }
    }
}
