//! Turns config, environment and flags into a running session: the demo simulator or live origins,
//! credentials, the scheduler and the store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::config::{ApiVersion, Config, ConfigError, Paths, ProfileKind};
use crate::fetch::{self, Command, Event, RateBudget, SchedulerConfig, Source};
use crate::health::{self, Needs, Policies};
use crate::smartcar::v3::{AppCredentials, V3BuildError, V3Client, V3Origins};
use crate::smartcar::{Client, ClientSettings, Origins, Secret};
use crate::store::Store;

/// Anything that stops a command before it starts; `main` prints it on one line and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tokens(#[from] crate::tokens::TokensError),
    #[error("--now {value}: {reason} (expected RFC 3339, e.g. 2025-01-01T00:00:00Z)")]
    Now { value: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("cannot read the management token from {path}: {source}")]
    AmtFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the built-in simulator: {0}")]
    Sim(String),
    #[error(transparent)]
    Client(#[from] crate::smartcar::ClientBuildError),
    #[error(transparent)]
    V3Client(#[from] V3BuildError),
    #[error("cannot read the agent token from {path}: {source}")]
    AgentTokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the client secret from {path}: {source}")]
    ClientSecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A configured command failed; its output is never shown (it may hold the secret).
    #[error("{key} `{program}` {problem}")]
    CommandFailed {
        key: &'static str,
        program: String,
        problem: String,
    },
}

/// Demo runs the built-in simulator; live talks to the configured origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Demo,
    Live,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Demo => "DEMO",
            Mode::Live => "LIVE",
        }
    }
}

/// Everything resolved from config, env and flags, before anything runs.
#[derive(Clone)]
pub struct Settings {
    pub paths: Paths,
    pub config_file: PathBuf,
    pub config: Config,
    pub profile: String,
    pub mode: Mode,
    /// The API spoken: v3 in the demo unless `--api v2` (or a profile's `api`) asks for v2.0.
    pub api: ApiVersion,
    /// The API the flags or the profile named, if any.
    pub api_asked: Option<ApiVersion>,
    pub origins: Origins,
    /// Where the v3 token endpoint and Vehicle API are.
    pub v3_origins: V3Origins,
    /// The v3 client id and secret, when configured.
    pub client_credentials: Option<AppCredentials>,
    pub source: Source,
    pub scheduler: SchedulerConfig,
    pub needs: Needs,
    pub policies: Policies,
    /// Set by `--now`: every date computation uses it instead of the clock.
    pub now_override: Option<jiff::Timestamp>,
    /// Non-fatal problems (tokens file lines, policy override errors): one line each.
    pub warnings: Vec<String>,
    /// How slowly the demo simulator answers vehicle calls: slow enough to watch in the dashboard,
    /// fast for headless commands.
    pub demo_latency: crate::sim::Latency,
    /// `--server` or a `kind = "server"` profile: the desk to read instead of Smartcar.
    pub desk: Option<DeskTarget>,
    /// The secret commands not run yet ([`Commands::Defer`]): [`run_deferred`] runs them.
    pub deferred: Deferred,
}

/// When `resolve` runs the configured secret commands (`tokens_command`, `client_secret_command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commands {
    /// At once, each within the timeout: a failure stops the resolution.
    Run(Duration),
    /// Later, through [`run_deferred`]: a long-running process (the desk) resolves the rest once
    /// and runs the commands off its async workers, again after a failure.
    Defer,
}

/// How long a secret command may take in the desk's prober before it is stopped (its process
/// killed); `serve --command-timeout` sets it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a secret command may take when a command run by a person resolves its settings: a
/// secrets manager may wait for its user to approve (as long as the scheduler gives
/// `tokens_command` when it runs it again).
pub const INTERACTIVE_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The secret commands a [`Commands::Defer`] resolution left to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deferred {
    /// `tokens_command`'s argv: its CSV fills the source's tokens.
    pub tokens: Option<Vec<String>>,
    /// `client_secret_command`'s argv: its first line is the v3 client secret.
    pub client_secret: Option<Vec<String>>,
}

impl Deferred {
    pub fn is_empty(&self) -> bool {
        self.tokens.is_none() && self.client_secret.is_none()
    }
}

/// A desk server to read, and this agent's token for it.
#[derive(Debug, Clone)]
pub struct DeskTarget {
    pub server: String,
    pub token: Secret,
    pub allow_insecure: bool,
}

/// The environment variable holding the agent token.
pub const AGENT_TOKEN_ENV: &str = "VTRIAGE_AGENT_TOKEN";

/// The desk to read, if `--server` or the profile names one; its token from [`AGENT_TOKEN_ENV`],
/// else the profile's `agent_token_file` (warned unless mode 0600).
fn desk_target(
    global: &GlobalArgs,
    profile_name: &str,
    profile: &crate::config::Profile,
    warnings: &mut Vec<String>,
) -> Result<Option<DeskTarget>, SetupError> {
    let server = match (&global.server, profile.kind, &profile.server) {
        (Some(s), _, _) => s.clone(),
        (None, ProfileKind::Server, Some(s)) => s.clone(),
        (None, ProfileKind::Server, None) => {
            return Err(SetupError::Usage(format!(
                "profile {profile_name} is kind = \"server\" but has no server = \"https://...\""
            )));
        }
        (None, _, _) => return Ok(None),
    };
    let token = match (env_nonempty(AGENT_TOKEN_ENV), &profile.agent_token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(file)) => {
            warnings.extend(crate::private_files::loose_permissions_warning(file));
            let bytes = std::fs::read(file).map_err(|source| SetupError::AgentTokenFile {
                path: file.clone(),
                source,
            })?;
            first_line(&bytes).unwrap_or_default()
        }
        (None, None) => String::new(),
    };
    if token.is_empty() {
        return Err(SetupError::Usage(format!(
            "reading a desk server needs an agent token: set {AGENT_TOKEN_ENV}, or agent_token_file in a kind = \"server\" profile (`vtriage agent add NAME` on the desk prints one)"
        )));
    }
    Ok(Some(DeskTarget {
        server,
        token: Secret::new(token),
        allow_insecure: global.allow_insecure_origin,
    }))
}

impl Settings {
    /// The moment to compute dates against: `--now` or the clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.now_override.unwrap_or_else(jiff::Timestamp::now)
    }
}

/// Parses `--now`.
pub fn parse_now(value: Option<&str>) -> Result<Option<jiff::Timestamp>, SetupError> {
    value
        .map(|v| {
            v.parse::<jiff::Timestamp>().map_err(|e| SetupError::Now {
                value: v.to_string(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Splits a configured command line into argv (shell quoting rules, no shell run).
pub fn command_argv(key: &'static str, line: &str) -> Result<Vec<String>, SetupError> {
    let argv = shell_words::split(line).map_err(|e| SetupError::CommandFailed {
        key,
        program: line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
        problem: format!("cannot be split into arguments: {e}"),
    })?;
    if argv.is_empty() {
        return Err(SetupError::CommandFailed {
            key,
            program: String::new(),
            problem: "is empty".into(),
        });
    }
    Ok(argv)
}

/// Runs a configured command without a shell and returns its standard output. Its standard error is
/// discarded and its output never shown: both may carry the secret it prints. A command still
/// running after `timeout` is killed. Blocks: async code runs it with `spawn_blocking`.
pub fn run_command(
    key: &'static str,
    argv: &[String],
    timeout: Duration,
) -> Result<Vec<u8>, SetupError> {
    use std::io::Read;
    let program = argv.first().cloned().unwrap_or_default();
    let failed = |problem: String| SetupError::CommandFailed {
        key,
        program: program.clone(),
        problem,
    };
    let mut child = std::process::Command::new(&program)
        .args(argv.iter().skip(1))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("cannot run: {e}")))?;
    // The output is read on a thread of its own, so a command printing more than a pipe holds
    // cannot stall while this one waits for it to end.
    let mut stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(stdout) = stdout.as_mut() {
            let _ = stdout.read_to_end(&mut out);
        }
        let _ = tx.send(out);
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "did not finish within {timeout:?} and was stopped"
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(failed(format!("cannot be waited for: {e}"))),
        }
    };
    if !status.success() {
        return Err(failed(format!("failed ({status})")));
    }
    // A process it started may hold the output open: what came within a second is the answer.
    Ok(rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default())
}

/// The first non-empty line of a secret's text.
fn first_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// The v3 client secret: `SMARTCAR_CLIENT_SECRET`, else the profile's `client_secret_file`, else
/// its `client_secret_command`. Never a flag: a flag is visible to every user in `ps`.
fn client_secret(
    profile: &crate::config::Profile,
    warnings: &mut Vec<String>,
    commands: Commands,
    deferred: &mut Deferred,
) -> Result<Option<Secret>, SetupError> {
    if let Some(secret) = env_nonempty("SMARTCAR_CLIENT_SECRET") {
        return Ok(Some(Secret::new(secret.trim())));
    }
    if let Some(file) = &profile.client_secret_file {
        warnings.extend(crate::private_files::loose_permissions_warning(file));
        let bytes = std::fs::read(file).map_err(|source| SetupError::ClientSecretFile {
            path: file.clone(),
            source,
        })?;
        return Ok(first_line(&bytes).map(Secret::new));
    }
    if let Some(line) = &profile.client_secret_command {
        let argv = command_argv("client_secret_command", line)?;
        return match commands {
            Commands::Run(timeout) => run_client_secret_command(&argv, timeout).map(Some),
            Commands::Defer => {
                deferred.client_secret = Some(argv);
                Ok(None)
            }
        };
    }
    Ok(None)
}

/// Runs `client_secret_command`: the first line it prints is the secret.
fn run_client_secret_command(argv: &[String], timeout: Duration) -> Result<Secret, SetupError> {
    let out = run_command("client_secret_command", argv, timeout)?;
    match first_line(&out) {
        Some(secret) => Ok(Secret::new(secret)),
        None => Err(SetupError::CommandFailed {
            key: "client_secret_command",
            program: argv.first().cloned().unwrap_or_default(),
            problem: "printed nothing".into(),
        }),
    }
}

/// Runs `tokens_command`: its CSV `user_id,access_token`, and the warnings its lines gave.
fn run_tokens_command(
    argv: &[String],
    timeout: Duration,
) -> Result<crate::tokens::Tokens, SetupError> {
    let out = run_command("tokens_command", argv, timeout)?;
    Ok(crate::tokens::parse(
        std::path::Path::new("<tokens_command output>"),
        &out,
    )?)
}

/// Runs the secret commands a [`Commands::Defer`] resolution left, each within `timeout`, and
/// completes `settings` with what they print. Blocks (run it with `spawn_blocking`); on an error
/// `settings` keep the commands still to run.
pub fn run_deferred(settings: &mut Settings, timeout: Duration) -> Result<(), SetupError> {
    if let Some(argv) = settings.deferred.client_secret.clone() {
        let secret = run_client_secret_command(&argv, timeout)?;
        let client_id = settings.needs.client_id.clone().unwrap_or_default();
        settings.client_credentials = Some(AppCredentials::new(client_id.trim(), secret));
        settings.deferred.client_secret = None;
    }
    if let Some(argv) = settings.deferred.tokens.clone() {
        let tokens = run_tokens_command(&argv, timeout)?;
        settings.warnings.extend(tokens.warnings);
        settings.source.tokens = tokens.by_user;
        settings.deferred.tokens = None;
    }
    Ok(())
}

/// The Smartcar settings set in flags, environment or the profile, by name: a desk's reader
/// ignores them.
fn smartcar_settings_given(
    global: &GlobalArgs,
    profile: &crate::config::Profile,
    amt_env: &str,
) -> Vec<String> {
    let flags = [
        ("--api", global.api.is_some()),
        ("--api-origin", global.api_origin.is_some()),
        ("--iam-origin", global.iam_origin.is_some()),
        ("--management-origin", global.management_origin.is_some()),
        ("--connect-origin", global.connect_origin.is_some()),
        ("--amt", global.amt.is_some()),
        ("--tokens", global.tokens.is_some()),
        ("--token", global.token.is_some()),
        ("--client-id", global.client_id.is_some()),
        ("--redirect-uri", global.redirect_uri.is_some()),
    ];
    let envs = [
        "SMARTCAR_CLIENT_ID",
        "SMARTCAR_CLIENT_SECRET",
        "SMARTCAR_REDIRECT_URI",
        amt_env,
    ];
    let keys = [
        ("amt_file", profile.amt_file.is_some()),
        ("tokens_file", profile.tokens_file.is_some()),
        ("tokens_command", profile.tokens_command.is_some()),
        ("client_secret_file", profile.client_secret_file.is_some()),
        (
            "client_secret_command",
            profile.client_secret_command.is_some(),
        ),
        ("api", profile.api.is_some()),
        ("api_origin", profile.api_origin.is_some()),
        ("iam_origin", profile.iam_origin.is_some()),
        ("management_origin", profile.management_origin.is_some()),
        ("connect_origin", profile.connect_origin.is_some()),
    ];
    flags
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name.to_string())
        .chain(
            envs.into_iter()
                .filter(|name| env_nonempty(name).is_some())
                .map(str::to_string),
        )
        .chain(
            keys.into_iter()
                .filter(|(_, set)| *set)
                .map(|(key, _)| format!("profile {key}")),
        )
        .collect()
}

/// The flags without their Smartcar settings.
fn without_smartcar(global: &GlobalArgs) -> GlobalArgs {
    GlobalArgs {
        api: None,
        api_origin: None,
        iam_origin: None,
        management_origin: None,
        connect_origin: None,
        amt: None,
        tokens: None,
        token: None,
        client_id: None,
        redirect_uri: None,
        ..global.clone()
    }
}

/// The profile without its Smartcar settings.
fn without_smartcar_profile(profile: &crate::config::Profile) -> crate::config::Profile {
    crate::config::Profile {
        amt_file: None,
        tokens_file: None,
        tokens_command: None,
        client_secret_file: None,
        client_secret_command: None,
        api: None,
        api_origin: None,
        iam_origin: None,
        management_origin: None,
        connect_origin: None,
        ..profile.clone()
    }
}

/// Resolves settings. Reads the config file, the tokens file and the policies override, and runs
/// the secret commands (each within [`INTERACTIVE_COMMAND_TIMEOUT`]); starts nothing.
pub fn resolve(global: &GlobalArgs) -> Result<Settings, SetupError> {
    resolve_with(global, Commands::Run(INTERACTIVE_COMMAND_TIMEOUT))
}

/// [`resolve`], running the secret commands as `commands` says.
pub fn resolve_with(global: &GlobalArgs, commands: Commands) -> Result<Settings, SetupError> {
    let paths = Paths::discover();
    let config_file = global.config.clone().unwrap_or_else(|| paths.config_file());
    // The default config file may be absent; one named on the command line must exist.
    if let Some(named) = &global.config
        && !named.exists()
    {
        return Err(SetupError::Usage(format!(
            "--config {}: no such file",
            named.display()
        )));
    }
    let config = Config::load(&config_file)?;
    let now_override = parse_now(global.now.as_deref())?;
    let mut warnings = Vec::new();

    let chosen_profile = global.profile.clone().or_else(|| config.profile.clone());
    let mut profile_name = chosen_profile.clone().unwrap_or_else(|| "demo".into());
    let profile = match config.profiles.get(&profile_name) {
        Some(p) => p.clone(),
        None if profile_name == "demo" => Default::default(),
        None => {
            return Err(SetupError::Usage(format!(
                "--profile {profile_name}: no [profiles.{profile_name}] in {}",
                config_file.display()
            )));
        }
    };

    let desk = desk_target(global, &profile_name, &profile, &mut warnings)?;
    // A desk's snapshot is the desk's fleet, not the demo's nor a live profile's.
    if desk.is_some() && chosen_profile.is_none() {
        profile_name = "desk".into();
    }

    // Credentials: flags, then env, then the profile.
    let amt_env = profile
        .amt_env
        .clone()
        .unwrap_or_else(|| "SMARTCAR_MANAGEMENT_TOKEN".into());
    // A desk holds the Smartcar credentials; an agent reading it needs none and none are read.
    let stripped;
    let (global, profile) = if desk.is_some() {
        let ignored = smartcar_settings_given(global, &profile, &amt_env);
        if !ignored.is_empty() {
            warnings.push(format!(
                "Smartcar settings are ignored when reading a desk server: {}",
                ignored.join(", ")
            ));
        }
        stripped = without_smartcar(global);
        (&stripped, without_smartcar_profile(&profile))
    } else {
        (global, profile)
    };
    let amt_from_env = env_nonempty(&amt_env).filter(|_| desk.is_none());
    let amt = match (&global.amt, amt_from_env, &profile.amt_file) {
        (Some(a), _, _) => Some(a.trim().to_string()),
        (None, Some(a), _) => Some(a.trim().to_string()),
        (None, None, Some(file)) => {
            warnings.extend(crate::private_files::loose_permissions_warning(file));
            let text = std::fs::read_to_string(file).map_err(|source| SetupError::AmtFile {
                path: file.clone(),
                source,
            })?;
            text.lines()
                .next()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
        }
        _ => None,
    };
    let tokens_path = global
        .tokens
        .clone()
        .or_else(|| profile.tokens_file.clone());
    let tokens_command = profile
        .tokens_command
        .as_deref()
        .map(|line| command_argv("tokens_command", line))
        .transpose()?;
    let mut deferred = Deferred::default();
    let tokens = match (&tokens_path, &tokens_command, commands) {
        (Some(path), _, _) => {
            let t = crate::tokens::load(path)?;
            warnings.extend(t.warnings);
            t.by_user
        }
        (None, Some(argv), Commands::Run(timeout)) => {
            let t = run_tokens_command(argv, timeout)?;
            warnings.extend(t.warnings);
            t.by_user
        }
        (None, Some(argv), Commands::Defer) => {
            deferred.tokens = Some(argv.clone());
            Default::default()
        }
        (None, None, _) => Default::default(),
    };
    let single_token = global.token.clone().map(Secret::new);
    if global.amt.is_some() {
        warnings.push(format!(
            "--amt on the command line is visible to other users of this machine (ps, shell history); set {amt_env} or amt_file in the profile instead"
        ));
    }
    if global.token.is_some() {
        warnings.push(
            "--token on the command line is visible to other users of this machine (ps, shell history); put it in a tokens file (mode 0600) with --tokens instead"
                .into(),
        );
    }
    let secret = match desk {
        Some(_) => None,
        None => client_secret(&profile, &mut warnings, commands, &mut deferred)?,
    };
    let secret_given = secret.is_some() || deferred.client_secret.is_some();
    let client_id = global
        .client_id
        .clone()
        .or_else(|| env_nonempty("SMARTCAR_CLIENT_ID"))
        .or(config.connect.client_id.clone())
        .filter(|_| desk.is_none());
    let api = global.api.or(profile.api).unwrap_or(if secret_given {
        ApiVersion::V3
    } else {
        ApiVersion::V2
    });
    let client_credentials = match (&client_id, secret) {
        (Some(id), Some(secret)) => Some(AppCredentials::new(id.trim(), secret)),
        _ => None,
    };
    // A command left to run counts: it is run before anything is probed.
    let has_credentials = match api {
        ApiVersion::V3 => {
            client_credentials.is_some()
                || (client_id.is_some() && deferred.client_secret.is_some())
        }
        ApiVersion::V2 => {
            amt.is_some()
                || !tokens.is_empty()
                || single_token.is_some()
                || deferred.tokens.is_some()
        }
    };
    // A secret without its client id is a live setup half done, never a reason to show the demo.
    if api == ApiVersion::V3
        && !has_credentials
        && !global.demo
        && (global.api.is_some() || secret_given)
    {
        return Err(SetupError::Usage(format!(
            "--api v3 needs the client id (--client-id or SMARTCAR_CLIENT_ID) and the client secret \
             (SMARTCAR_CLIENT_SECRET, or client_secret_file or client_secret_command in the profile); {} missing",
            if client_id.is_none() {
                "the client id is"
            } else {
                "the client secret is"
            }
        )));
    }

    let mode = if global.demo || !has_credentials {
        Mode::Demo
    } else {
        Mode::Live
    };
    // Live credentials given by flags or environment without a profile: the snapshot of this fleet must
    // not be the demo fleet's (nor the demo's this one's).
    if chosen_profile.is_none() && mode == Mode::Live {
        profile_name = "live".into();
    }
    // An origin given without credentials would otherwise quietly run the demo instead.
    if mode == Mode::Demo && !global.demo {
        let given: Vec<&str> = [
            ("--api-origin", &global.api_origin),
            ("--management-origin", &global.management_origin),
        ]
        .into_iter()
        .filter_map(|(flag, v)| v.as_ref().map(|_| flag))
        .collect();
        if !given.is_empty() {
            return Err(SetupError::Usage(format!(
                "{} given but no credentials: set SMARTCAR_CLIENT_ID and SMARTCAR_CLIENT_SECRET (API v3), or {amt_env} (or amt_file in a profile) and --tokens (v2.0), or add --demo to use the built-in simulator",
                given.join(" and ")
            )));
        }
    }
    if mode == Mode::Demo && profile.kind == ProfileKind::Live && !global.demo {
        return Err(SetupError::Usage(match api {
            ApiVersion::V3 => format!(
                "profile {profile_name} is live (API v3) but has no credentials: set SMARTCAR_CLIENT_ID and SMARTCAR_CLIENT_SECRET, or client_secret_file / client_secret_command"
            ),
            ApiVersion::V2 => format!(
                "profile {profile_name} is live but has no credentials: set {amt_env}, amt_file, tokens_file or tokens_command, or pass --amt/--tokens/--token"
            ),
        }));
    }

    let mut origins = Origins::from_env();
    if let Some(o) = &profile.api_origin {
        origins.api = o.clone();
    }
    if let Some(o) = &profile.management_origin {
        origins.management = o.clone();
    }
    if let Some(o) = &profile.connect_origin {
        origins.connect = o.clone();
    }
    if let Some(o) = &global.api_origin {
        origins.api = o.clone();
    }
    if let Some(o) = &global.management_origin {
        origins.management = o.clone();
    }
    if let Some(o) = &global.connect_origin {
        origins.connect = o.clone();
    }
    for origin in [
        &mut origins.api,
        &mut origins.management,
        &mut origins.connect,
    ] {
        *origin = origin.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(origin).ok();
        if parsed
            .as_ref()
            .is_none_or(|u| !matches!(u.scheme(), "http" | "https"))
        {
            return Err(SetupError::Usage(format!(
                "origin `{}` is not an http(s) URL",
                crate::untrusted::text::one_line(origin)
            )));
        }
        // Credentials in an origin would be shown in the header, logs and error lines.
        if parsed.is_some_and(|u| !u.username().is_empty() || u.password().is_some()) {
            return Err(SetupError::Usage(
                "an origin must not carry a user name or password (https://user:secret@host); pass credentials with SMARTCAR_MANAGEMENT_TOKEN, amt_file or a tokens file"
                    .into(),
            ));
        }
        // Demo mode replaces the origins with the simulator's loopback one; only live ones carry tokens.
        if mode == Mode::Live {
            crate::smartcar::check_origin(origin, global.allow_insecure_origin)
                .map_err(|e| SetupError::Usage(e.to_string()))?;
        }
    }

    let mut v3_origins = V3Origins::from_env();
    if let Some(o) = &profile.iam_origin {
        v3_origins.iam = o.clone();
    }
    if let Some(o) = &profile.api_origin {
        v3_origins.api = o.clone();
    }
    if let Some(o) = &global.iam_origin {
        v3_origins.iam = o.clone();
    }
    if let Some(o) = &global.api_origin {
        v3_origins.api = o.clone();
    }
    if api == ApiVersion::V3 {
        for origin in [&mut v3_origins.iam, &mut v3_origins.api] {
            *origin = origin.trim_end_matches('/').to_string();
            // The client secret goes to the token endpoint, the app token to the Vehicle API.
            if mode == Mode::Live {
                crate::smartcar::check_origin(origin, global.allow_insecure_origin)
                    .map_err(|e| SetupError::Usage(e.to_string()))?;
            }
        }
    }

    let needs = Needs {
        data: config.data_kinds(),
        at_home_only: config.needs.at_home_only,
        virtual_key_domain: config.connect.virtual_key_domain.clone(),
        connect_origin: origins.connect.clone(),
        client_id,
        redirect_uri: global
            .redirect_uri
            .clone()
            .or_else(|| env_nonempty("SMARTCAR_REDIRECT_URI").filter(|_| desk.is_none()))
            .or(config.connect.redirect_uri.clone()),
        stale_after_s: config.needs.stale_after_hours * 3600,
    };

    let policies_file = paths.policies_file();
    let (policies, policy_error) =
        Policies::with_override(&policies_file, std::fs::read_to_string(&policies_file));
    if let Some(e) = policy_error {
        // The error says so already: "(built-in rules in use)".
        warnings.push(e.to_string());
    }

    let rate = if global.no_rate_limit
        || !config.fetch.rate_limit
        || mode == Mode::Demo && global.rate.is_none()
    {
        None
    } else {
        Some(RateBudget {
            burst: config.fetch.rate_burst,
            refill_per_min: global.rate.unwrap_or(config.fetch.rate_per_minute),
        })
    };
    let concurrency = global.concurrency.unwrap_or(config.fetch.concurrency);
    if concurrency == 0 {
        return Err(SetupError::Usage("--concurrency must be at least 1".into()));
    }
    // The budget is the Smartcar app's, not this process's: a restart or a second vtriage spends
    // what is left, not a fresh bucket.
    let budget_state =
        (rate.is_some() && mode == Mode::Live).then(|| paths.budget_file(&profile_name));
    let scheduler = SchedulerConfig {
        budget_state,
        concurrency,
        rate,
        per_vehicle_per_hour: config.fetch.per_vehicle_per_hour,
        freshness: Duration::from_secs(config.fetch.freshness_minutes * 60),
        data: needs.data_to_probe(),
        tesla_at_home: needs.at_home_only,
        sweep_first_makes: {
            let mut makes: Vec<String> = policies
                .rules
                .iter()
                .map(|r| r.make.to_ascii_uppercase())
                .collect();
            makes.sort();
            makes.dedup();
            makes
        },
        ..SchedulerConfig::default()
    };

    Ok(Settings {
        paths,
        config_file,
        config,
        profile: profile_name,
        mode,
        api,
        api_asked: global.api.or(profile.api),
        origins,
        v3_origins,
        client_credentials,
        source: Source {
            amt: amt.map(Secret::new),
            tokens,
            single_token,
            tokens_command,
        },
        scheduler,
        needs,
        policies,
        now_override,
        warnings,
        demo_latency: DEMO_DASHBOARD_LATENCY,
        desk,
        deferred,
    })
}

/// A running session: the scheduler and, in demo mode, the simulator behind it.
pub struct Session {
    pub mode: Mode,
    /// Where the Vehicle API is (the simulator's loopback origin in demo mode).
    pub origin: String,
    pub commands: tokio::sync::mpsc::UnboundedSender<Command>,
    pub events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    /// Keeps the demo simulator alive as long as the session.
    pub simulator: Option<crate::sim::SimHandle>,
}

/// How big the demo fleet is.
pub const DEMO_VEHICLES: usize = 2000;

/// Demo vehicle calls in the dashboard: a couple of hundred milliseconds, so the fleet visibly fills
/// in as a sweep, and is diagnosed whole within half a minute.
pub const DEMO_DASHBOARD_LATENCY: crate::sim::Latency = crate::sim::Latency::Fixed {
    ms: 100,
    jitter_ms: 200,
};

/// Requests in flight in the demo at least: the simulator has no budget to spare.
pub const DEMO_CONCURRENCY: usize = 24;

/// Demo vehicle calls for headless commands, which should finish promptly.
pub const DEMO_HEADLESS_LATENCY: crate::sim::Latency = crate::sim::Latency::Fixed {
    ms: 5,
    jitter_ms: 10,
};

/// Starts the demo simulator if needed, then the scheduler.
pub async fn start(settings: &mut Settings) -> Result<Session, SetupError> {
    let mut simulator = None;
    if settings.mode == Mode::Demo {
        // The demo's Connect page is the simulator's: its links carry the simulator's client id,
        // or the one given with --client-id, which the simulator then accepts.
        let defaults = crate::sim::SimConfig::default();
        let client_id = settings
            .needs
            .client_id
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or(defaults.client_id.clone());
        settings.needs.client_id = Some(client_id.clone());
        let config = crate::sim::SimConfig {
            vehicles: DEMO_VEHICLES,
            seed: 7,
            latency: settings.demo_latency,
            client_id,
            ..defaults
        };
        settings.scheduler.expected_latency = settings.demo_latency.mean();
        settings.scheduler.concurrency = settings.scheduler.concurrency.max(DEMO_CONCURRENCY);
        let bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let handle = crate::sim::spawn(config, bind)
            .await
            .map_err(|e| SetupError::Sim(e.to_string()))?;
        settings.origins = Origins::all(handle.origin());
        settings.needs.connect_origin = settings.origins.connect.clone();
        // The demo speaks API v3, the live default: the listing names every car's make, so the
        // sweep reaches the cars the OEM rules concern first, and a diagnosis is one request.
        // `--api v2` shows the v2.0 path on the same fleet.
        settings.api = settings.api_asked.unwrap_or(ApiVersion::V3);
        settings.v3_origins = V3Origins {
            iam: handle.origin().to_string(),
            api: handle.origin().to_string(),
        };
        settings.client_credentials = Some(AppCredentials::new(
            handle.config().client_id.clone(),
            Secret::new(handle.config().client_secret.clone()),
        ));
        settings.source = Source {
            amt: Some(Secret::new(handle.amt())),
            tokens: handle
                .tokens()
                .iter()
                .map(|(u, t)| (u.clone(), Secret::new(t.clone())))
                .collect(),
            single_token: None,
            tokens_command: None,
        };
        simulator = Some(handle);
    }
    let (handle, origin) = match (settings.mode, &settings.client_credentials, settings.api) {
        (_, Some(credentials), ApiVersion::V3) => {
            let client = V3Client::new(
                settings.v3_origins.clone(),
                credentials.clone(),
                ClientSettings::default(),
            )?;
            let handle = fetch::spawn(client, Source::default(), settings.scheduler.clone());
            (handle, settings.v3_origins.api.clone())
        }
        _ => {
            let client = Client::new(settings.origins.clone(), ClientSettings::default())?;
            let handle = fetch::spawn(client, settings.source.clone(), settings.scheduler.clone());
            (handle, settings.origins.api.clone())
        }
    };
    Ok(Session {
        mode: settings.mode,
        origin,
        commands: handle.commands,
        events: handle.events,
        simulator,
    })
}

/// A store whose diagnoser uses the settings' policies and needs.
pub fn store_for(settings: &Settings) -> Store {
    let policies = settings.policies.clone();
    let needs = settings.needs.clone();
    let rule_ids = policies.rules.iter().map(|r| r.id.clone()).collect();
    let mut store = Store::new(Arc::new(move |report, now| {
        health::diagnose(report, &policies, &needs, now)
    }));
    store.know_rules(rule_ids);
    // Answers are stamped by the real clock; `--now` moves them with every other date.
    if let Some(now) = settings.now_override {
        store.shift_evidence_by(now.duration_since(jiff::Timestamp::now()));
    }
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_command_that_hangs_is_killed_after_its_timeout() {
        let argv: Vec<String> = ["sh", "-c", "echo $$; exec sleep 60"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let started = std::time::Instant::now();
        let e =
            run_command("tokens_command", &argv, Duration::from_millis(300)).expect_err("it hangs");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            e.to_string(),
            "tokens_command `sh` did not finish within 300ms and was stopped"
        );
    }

    #[test]
    fn a_secret_command_within_its_timeout_gives_its_output() {
        let argv: Vec<String> = ["sh", "-c", "echo the-secret"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out =
            run_command("client_secret_command", &argv, Duration::from_secs(5)).expect("it ends");
        assert_eq!(first_line(&out).as_deref(), Some("the-secret"));
        let failing: Vec<String> = ["sh", "-c", "exit 3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = run_command("client_secret_command", &failing, Duration::from_secs(5))
            .expect_err("it fails");
        assert!(e.to_string().contains("failed (exit status: 3)"), "{e}");
    }
}
