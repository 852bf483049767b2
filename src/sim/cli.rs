//! `vtriage sim`: flags, the startup banner, the tokens file and the run until Ctrl-C.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{AppRateLimit, Fleet, Latency, SimConfig, SimError, spawn};

/// `--rate-limit`: `off`, `default` (Smartcar's 120 burst refilling 2/min) or `BURST/PER_MIN`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitArg(pub Option<AppRateLimit>);

impl FromStr for RateLimitArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" | "none" => Ok(RateLimitArg(None)),
            "default" => Ok(RateLimitArg(Some(AppRateLimit::SMARTCAR_DEFAULT))),
            other => {
                let hint =
                    || format!("expected off, default or BURST/PER_MIN like 120/2, got {other:?}");
                let (burst, per_min) = other.split_once('/').ok_or_else(hint)?;
                let burst: u32 = burst.trim().parse().map_err(|_| hint())?;
                let refill_per_min: f64 = per_min.trim().parse().map_err(|_| hint())?;
                if burst == 0 || !(refill_per_min > 0.0 && refill_per_min.is_finite()) {
                    return Err(format!(
                        "burst and refill per minute must both be above 0, got {other:?}"
                    ));
                }
                Ok(RateLimitArg(Some(AppRateLimit {
                    burst,
                    refill_per_min,
                })))
            }
        }
    }
}

/// `--latency-profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LatencyProfile {
    /// `--latency-ms` plus up to `--latency-jitter-ms`.
    Fixed,
    /// Like Smartcar's documented 3–45 s average, up to 300 s.
    Realistic,
}

/// `vtriage sim --help`: the simulator's flags alone. The dashboard's connection flags are global
/// to the command line, so clap's own help for `sim` would list them too.
pub fn help() -> String {
    use clap::Args;
    let mut command = SimArgs::augment_args(
        clap::Command::new("vtriage sim")
            .about("Run the Smartcar simulator standalone, for curl, the official SDKs and tests")
            .disable_help_flag(true),
    );
    command.render_help().to_string()
}

/// Runs the Smartcar simulator standalone, for curl, the official SDKs and tests.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Print help (the simulator's own flags; it takes none of vtriage's connection flags).
    #[arg(short = 'h', long = "help", action = clap::ArgAction::SetTrue)]
    pub help: bool,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Number of vehicles in the fleet (1 to 1,000,000).
    #[arg(long, default_value_t = SimConfig::default().vehicles, value_parser = fleet_size)]
    pub vehicles: usize,
    /// Seed: the same seed always gives the same fleet, ids, tokens and situations.
    #[arg(long, default_value_t = SimConfig::default().seed)]
    pub seed: u64,
    /// Application management token the Management API accepts (Basic `default:<AMT>`).
    #[arg(long, default_value = "sim-amt")]
    pub amt: String,
    /// Client id used in re-authentication links and for the v3 token endpoint.
    #[arg(long, default_value = "sim-client-id")]
    pub client_id: String,
    /// Client secret the v3 token endpoint (`POST /oauth2/token`) accepts.
    #[arg(long, default_value = "sim-client-secret")]
    pub client_secret: String,
    /// Lifetime of a v3 application token, seconds (Smartcar's is 3600); short ones exercise renewal.
    #[arg(long, value_name = "SECONDS", default_value_t = SimConfig::default().token_ttl_s,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl: u64,
    /// Revoke the first v3 application token after it was accepted this many times (0: never), as
    /// a client secret rotated mid-sweep would: requests already past the check still succeed.
    #[arg(long, value_name = "REQUESTS", default_value_t = 0)]
    pub revoke_first_token_after: u64,
    /// Latency of vehicle calls, milliseconds (fixed profile).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Extra random latency of vehicle calls, up to this many milliseconds (fixed profile).
    #[arg(long, default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// `fixed` (`--latency-ms`) or `realistic` (3–45 s average, up to 300 s).
    #[arg(long, value_enum, default_value_t = LatencyProfile::Fixed)]
    pub latency_profile: LatencyProfile,
    /// Share of vehicle calls (0–1) answered with a random fault: 500, 502, HTML 502, truncated JSON, slow.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// App-wide limit: off, default (120 burst refilling 2/min) or BURST/PER_MIN.
    #[arg(long, default_value = "off")]
    pub rate_limit: RateLimitArg,
    /// Data calls per vehicle per rolling hour before 429 RATE_LIMIT:VEHICLE; 0 = unlimited.
    #[arg(long, default_value_t = SimConfig::default().vehicle_calls_per_hour)]
    pub vehicle_calls_per_hour: u32,
    /// Write `user_id,access_token` for every user to this CSV file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub write_tokens: Option<PathBuf>,
    /// Print the fleet's situations and their shares, then exit.
    #[arg(long)]
    pub describe: bool,
    /// Post signed v3 webhooks (VERIFY first, then VEHICLE_ERROR / VEHICLE_STATE as situations
    /// appear and resolve) to this URL, e.g. http://127.0.0.1:8787/webhooks/smartcar.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Webhook deliveries per second.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10.0,
        requires = "webhook_url"
    )]
    pub webhook_rate: f64,
    /// Share of webhook deliveries (0–1) sent twice.
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 0.05,
        requires = "webhook_url"
    )]
    pub webhook_duplicate_rate: f64,
    /// Share of webhook deliveries (0–1) sent after the one that follows them.
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 0.05,
        requires = "webhook_url"
    )]
    pub webhook_reorder_rate: f64,
    /// Stop sending webhooks after this many deliveries.
    #[arg(long, value_name = "N", requires = "webhook_url")]
    pub webhook_limit: Option<u64>,
}

impl SimArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> Result<SimConfig, SimError> {
        if !(0.0..=1.0).contains(&self.fault_rate) {
            return Err(SimError::InvalidFlag {
                flag: "--fault-rate",
                value: self.fault_rate.to_string(),
                reason: "must be between 0 and 1".into(),
            });
        }
        for (flag, value) in [
            ("--webhook-duplicate-rate", self.webhook_duplicate_rate),
            ("--webhook-reorder-rate", self.webhook_reorder_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(SimError::InvalidFlag {
                    flag,
                    value: value.to_string(),
                    reason: "must be between 0 and 1".into(),
                });
            }
        }
        if !(self.webhook_rate > 0.0 && self.webhook_rate.is_finite()) {
            return Err(SimError::InvalidFlag {
                flag: "--webhook-rate",
                value: self.webhook_rate.to_string(),
                reason: "must be above 0".into(),
            });
        }
        if let Some(url) = &self.webhook_url
            && url::Url::parse(url)
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
        {
            return Err(SimError::InvalidFlag {
                flag: "--webhook-url",
                value: url.clone(),
                reason: "not an http(s) URL".into(),
            });
        }
        let latency = match self.latency_profile {
            LatencyProfile::Fixed => Latency::Fixed {
                ms: self.latency_ms,
                jitter_ms: self.latency_jitter_ms,
            },
            LatencyProfile::Realistic => Latency::Realistic,
        };
        Ok(SimConfig {
            vehicles: self.vehicles,
            seed: self.seed,
            amt: self.amt.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            token_ttl_s: self.token_ttl,
            revoke_first_token_after: self.revoke_first_token_after,
            latency,
            fault_rate: self.fault_rate,
            app_rate_limit: self.rate_limit.0,
            vehicle_calls_per_hour: self.vehicle_calls_per_hour,
            ..SimConfig::default()
        })
    }
}

/// The situations of a fleet and their shares, one per line.
pub fn describe(fleet: &Fleet) -> String {
    let total = fleet.vehicles.len().max(1);
    let mut out = format!(
        "fleet: {} vehicles, {} users, seed {}\n",
        fleet.vehicles.len(),
        fleet.users.len(),
        fleet.seed()
    );
    for (situation, count) in fleet.situation_counts() {
        let share = 100.0 * count as f64 / total as f64;
        out.push_str(&format!(
            "  {:<28} {:>7} {:>6.1}%  {}\n",
            situation.name(),
            count,
            share,
            situation.summary()
        ));
    }
    let teslas = fleet.vehicles.iter().filter(|v| v.is_tesla()).count();
    out.push_str(&format!(
        "  Tesla: {teslas} vehicles ({:.1}%)\n",
        100.0 * teslas as f64 / total as f64
    ));
    out
}

fn write_tokens(path: &Path, tokens: &[(String, String)]) -> Result<(), SimError> {
    let err = |source| SimError::WriteTokens {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(err)?;
    #[cfg(unix)]
    {
        // An existing file keeps its old mode on open; tokens must not stay readable by others.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "user_id,access_token").map_err(err)?;
    for (user, token) in tokens {
        writeln!(out, "{user},{token}").map_err(err)?;
    }
    out.flush().map_err(err)
}

/// Stops the webhook sender with the simulator.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The largest fleet `--vehicles` accepts: a million vehicles already take hundreds of MB, and a
/// larger number is far more likely a typo than a test.
pub const MAX_VEHICLES: usize = 1_000_000;

fn fleet_size(value: &str) -> Result<usize, String> {
    let n: usize = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a whole number of vehicles"))?;
    if (1..=MAX_VEHICLES).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} is out of range: the fleet holds 1 to {MAX_VEHICLES} vehicles"
        ))
    }
}

/// Runs `vtriage sim`: starts the simulator, prints where it listens, serves until Ctrl-C.
pub async fn run_cli(args: SimArgs) -> Result<(), SimError> {
    let config = args.config()?;
    if args.describe {
        print!(
            "{}",
            describe(&Fleet::generate(config.vehicles, config.seed))
        );
        return Ok(());
    }
    let amt = config.amt.clone();
    let (client_id, client_secret) = (config.client_id.clone(), config.client_secret.clone());
    let mut handle = spawn(config, SocketAddr::new(args.bind, args.port)).await?;
    if let Some(path) = &args.write_tokens {
        write_tokens(path, handle.tokens())?;
    }
    let origin = handle.origin().to_string();
    println!("vtriage sim listening on {origin}");
    println!("  management token (AMT): {amt}");
    println!(
        "  {} vehicles, {} users, seed {}",
        handle.fleet().vehicles.len(),
        handle.fleet().users.len(),
        handle.fleet().seed()
    );
    if let Some(path) = &args.write_tokens {
        println!("  access tokens written to {}", path.display());
    }
    println!("  for the official SDKs, set before starting them:");
    println!("    export SMARTCAR_API_ORIGIN={origin}");
    println!("    export SMARTCAR_MANAGEMENT_API_ORIGIN={origin}");
    println!("    export SMARTCAR_CONNECT_ORIGIN={origin}");
    println!("  for API v3 (API Authentication), client id {client_id}, secret {client_secret}:");
    println!(
        "    export SMARTCAR_CLIENT_ID={client_id} SMARTCAR_CLIENT_SECRET={client_secret} SMARTCAR_IAM_ORIGIN={origin} SMARTCAR_API_V3_ORIGIN={origin}"
    );
    println!("  ground truth: {origin}/_sim/fleet   counters: {origin}/_sim/stats");
    let _webhooks = args.webhook_url.clone().map(|url| {
        let fleet = handle.fleet().clone();
        let config = super::webhooks::SenderConfig {
            url,
            amt: amt.clone(),
            per_second: args.webhook_rate,
            disorder: super::webhooks::Disorder {
                duplicate_rate: args.webhook_duplicate_rate,
                reorder_rate: args.webhook_reorder_rate,
            },
            seed: args.seed,
            limit: args.webhook_limit,
        };
        AbortOnDrop(tokio::spawn(async move {
            super::webhooks::send(config, &fleet).await;
        }))
    });
    println!("  Ctrl-C stops");
    tokio::select! {
        result = handle.wait() => result,
        _ = tokio::signal::ctrl_c() => {
            handle.shutdown().await;
            println!("vtriage sim stopped");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    #[command(disable_help_flag = true)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied())).map(|c| c.sim)
    }

    #[test]
    fn flags_become_a_simulator_configuration() {
        let args = parse(&[
            "--vehicles",
            "50",
            "--seed",
            "9",
            "--latency-ms",
            "200",
            "--latency-jitter-ms",
            "20",
            "--rate-limit",
            "default",
            "--fault-rate",
            "0.1",
            "--vehicle-calls-per-hour",
            "0",
        ])
        .expect("valid flags");
        let config = args.config().expect("valid config");
        assert_eq!(config.vehicles, 50);
        assert_eq!(config.seed, 9);
        assert_eq!(
            config.latency,
            Latency::Fixed {
                ms: 200,
                jitter_ms: 20
            }
        );
        assert_eq!(config.app_rate_limit, Some(AppRateLimit::SMARTCAR_DEFAULT));
        assert_eq!(config.vehicle_calls_per_hour, 0);
        assert_eq!(args.port, 0);
        assert_eq!(args.bind.to_string(), "127.0.0.1");

        let defaults = parse(&[]).expect("no flags").config().expect("defaults");
        assert_eq!(defaults, SimConfig::default());
        let realistic = parse(&["--latency-profile", "realistic"])
            .expect("flag")
            .config()
            .expect("config");
        assert_eq!(realistic.latency, Latency::Realistic);
        assert!(
            parse(&["--fault-rate", "2"])
                .expect("parses")
                .config()
                .is_err()
        );
        assert!(parse(&["--rate-limit", "fast"]).is_err());
    }

    #[test]
    fn v3_flags_set_the_client_secret_and_a_token_lifetime_of_at_least_a_second() {
        let config = parse(&["--client-secret", "s2", "--token-ttl", "1"])
            .expect("valid flags")
            .config()
            .expect("valid config");
        assert_eq!(config.client_secret, "s2");
        assert_eq!(config.token_ttl_s, 1);
        assert!(parse(&["--token-ttl", "0"]).is_err());
        assert!(parse(&["--token-ttl", "soon"]).is_err());
    }

    #[test]
    fn tokens_file_is_private_and_has_a_header() {
        let path =
            std::env::temp_dir().join(format!("vtriage-sim-tokens-{}.csv", std::process::id()));
        write_tokens(
            &path,
            &[("u1".into(), "t1".into()), ("u2".into(), "t2".into())],
        )
        .expect("written");
        let text = std::fs::read_to_string(&path).expect("readable");
        assert_eq!(text, "user_id,access_token\nu1,t1\nu2,t2\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn describe_lists_every_situation_with_its_share() {
        let text = describe(&Fleet::generate(500, 7));
        for s in crate::sim::Situation::ALL {
            assert!(text.contains(s.name()), "{s} missing from {text}");
        }
        assert!(text.contains('%'));
    }

    #[test]
    fn rate_limit_flag_accepts_off_default_and_burst_per_minute() {
        assert_eq!("off".parse::<RateLimitArg>(), Ok(RateLimitArg(None)));
        assert_eq!(
            "default".parse::<RateLimitArg>(),
            Ok(RateLimitArg(Some(AppRateLimit::SMARTCAR_DEFAULT)))
        );
        assert_eq!(
            "10/0.5".parse::<RateLimitArg>(),
            Ok(RateLimitArg(Some(AppRateLimit {
                burst: 10,
                refill_per_min: 0.5
            })))
        );
        assert!("10".parse::<RateLimitArg>().is_err());
        assert!("0/2".parse::<RateLimitArg>().is_err());
        assert!("x/2".parse::<RateLimitArg>().is_err());
    }

    #[test]
    fn vehicles_out_of_range_is_a_one_line_flag_error() {
        for bad in [
            "0",
            "1000001",
            "18446744073709551615",
            "99999999999999999999999",
            "-1",
            "many",
        ] {
            let flag = format!("--vehicles={bad}");
            let err = parse(&[flag.as_str()]).map(|a| a.vehicles);
            let message = err
                .as_ref()
                .map_err(ToString::to_string)
                .err()
                .unwrap_or_default();
            assert!(message.contains("--vehicles"), "{bad}: {message}");
            assert!(err.is_err(), "{bad} was accepted");
        }
        assert_eq!(
            parse(&["--vehicles", "1000000"]).map(|a| a.vehicles).ok(),
            Some(MAX_VEHICLES)
        );
        assert_eq!(
            parse(&["--vehicles", "1"]).map(|a| a.vehicles).ok(),
            Some(1)
        );
    }
}
