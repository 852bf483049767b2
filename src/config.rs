//! The config file (`config.toml` in the config folder), its profiles, and the folders vtriage uses.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::smartcar::DataKind;

/// Where vtriage keeps its files. `VTRIAGE_HOME` puts all of them under one folder (tests, portable use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl Paths {
    pub fn discover() -> Paths {
        if let Some(home) = std::env::var_os("VTRIAGE_HOME").filter(|h| !h.is_empty()) {
            let home = PathBuf::from(home);
            return Paths {
                config_dir: home.join("config"),
                cache_dir: home.join("cache"),
                state_dir: home.join("state"),
            };
        }
        match directories::ProjectDirs::from("", "", "vtriage") {
            Some(dirs) => Paths {
                config_dir: dirs.config_dir().to_path_buf(),
                cache_dir: dirs.cache_dir().to_path_buf(),
                state_dir: dirs
                    .state_dir()
                    .unwrap_or(dirs.data_local_dir())
                    .to_path_buf(),
            },
            None => {
                let base = std::env::temp_dir().join("vtriage");
                Paths {
                    config_dir: base.join("config"),
                    cache_dir: base.join("cache"),
                    state_dir: base.join("state"),
                }
            }
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    pub fn policies_file(&self) -> PathBuf {
        self.config_dir.join("policies.toml")
    }

    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("vtriage.log")
    }

    /// The snapshot of one profile's last known fleet state.
    pub fn snapshot_file(&self, profile: &str) -> PathBuf {
        self.cache_dir
            .join(format!("snapshot-{}.json", file_safe(profile)))
    }

    /// The app-wide rate budget's state for a profile (tokens left and when).
    pub fn budget_file(&self, profile: &str) -> PathBuf {
        self.state_dir
            .join(format!("budget-{}.json", file_safe(profile)))
    }
}

/// A profile name as a file name part: anything but letters, digits, `-` and `_` becomes `_`.
fn file_safe(profile: &str) -> String {
    profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A config file that cannot be used. The message names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Value { path: PathBuf, message: String },
}

/// Demo runs the built-in simulator; live talks to Smartcar (or any origin you point it at); server
/// reads a desk (`vtriage serve`) with an agent token and holds no Smartcar credential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    #[default]
    Demo,
    Live,
    Server,
}

/// Which Smartcar API live use speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// v2.0 with an AMT and per-user access tokens (apps not yet migrated).
    V2,
    /// v3 with API Authentication: client id and secret, `sc-user-id` per call.
    V3,
}

impl ApiVersion {
    pub fn label(self) -> &'static str {
        match self {
            ApiVersion::V2 => "v2",
            ApiVersion::V3 => "v3",
        }
    }
}

/// One named set of connection settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub kind: ProfileKind,
    /// `v2` or `v3`; default v3 when a client secret is configured.
    pub api: Option<ApiVersion>,
    /// The v3 token endpoint's origin (`https://iam.smartcar.com`).
    pub iam_origin: Option<String>,
    /// A file whose first line is the v3 client secret (mode 0600).
    pub client_secret_file: Option<PathBuf>,
    /// A command printing the v3 client secret (a secrets manager), run without a shell.
    pub client_secret_command: Option<String>,
    /// A command printing the v2 tokens CSV `user_id,access_token`, run without a shell at start
    /// and again when a token is refused (v2 access tokens expire every two hours).
    pub tokens_command: Option<String>,
    pub api_origin: Option<String>,
    pub management_origin: Option<String>,
    pub connect_origin: Option<String>,
    /// CSV `user_id,access_token`.
    pub tokens_file: Option<PathBuf>,
    /// Name of the environment variable holding the AMT (default `SMARTCAR_MANAGEMENT_TOKEN`).
    pub amt_env: Option<String>,
    /// A file whose first line is the AMT.
    pub amt_file: Option<PathBuf>,
    /// `kind = "server"`: the desk's URL (`https://desk.example.com`).
    pub server: Option<String>,
    /// `kind = "server"`: a file whose first line is this agent's token (mode 0600).
    pub agent_token_file: Option<PathBuf>,
}

/// What the app depends on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeedsConfig {
    pub data: Vec<String>,
    pub at_home_only: bool,
    pub stale_after_hours: u64,
}

impl Default for NeedsConfig {
    fn default() -> Self {
        NeedsConfig {
            data: vec!["location".into(), "odometer".into()],
            at_home_only: false,
            stale_after_hours: 6,
        }
    }
}

/// Connect settings for re-authentication links.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectConfig {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub virtual_key_domain: String,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        ConnectConfig {
            client_id: None,
            redirect_uri: None,
            virtual_key_domain: "smartcar.com".into(),
        }
    }
}

/// How hard vtriage may use the API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    pub concurrency: usize,
    /// The client-side bucket: off for plans without Smartcar's default limit.
    pub rate_limit: bool,
    pub rate_burst: f64,
    pub rate_per_minute: f64,
    pub per_vehicle_per_hour: u32,
    pub freshness_minutes: u64,
    /// How often the dashboard probes again the vehicles the agent opened; floor 30 s.
    pub refresh_interval_seconds: u64,
    /// Probe rows as they scroll into view. Default: on in the demo, off live, where the budget
    /// is the production app's and only what the agent asks for is probed.
    pub probe_visible: Option<bool>,
    /// In the dashboard, a VIN lookup that would spend more than this share of the budget left
    /// asks before it starts.
    pub confirm_lookup_share: f64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            concurrency: 16,
            rate_limit: true,
            rate_burst: 120.0,
            rate_per_minute: 2.0,
            per_vehicle_per_hour: 20,
            freshness_minutes: 15,
            refresh_interval_seconds: 300,
            probe_visible: None,
            confirm_lookup_share: 0.25,
        }
    }
}

/// Dark, light, or follow the terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThemeChoice {
    #[default]
    Auto,
    Dark,
    Light,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    pub theme: ThemeChoice,
    /// Mouse wheel and click; off by default so the terminal's text selection keeps working.
    pub mouse: bool,
    /// Fix links as OSC 8 hyperlinks; on by default, off for a terminal that shows the sequence as text.
    pub hyperlinks: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            theme: ThemeChoice::default(),
            mouse: false,
            hyperlinks: true,
        }
    }
}

/// The whole config file. Every section is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The profile used when `--profile` is not given.
    pub profile: Option<String>,
    pub profiles: std::collections::BTreeMap<String, Profile>,
    pub needs: NeedsConfig,
    pub connect: ConnectConfig,
    pub fetch: FetchConfig,
    pub ui: UiConfig,
    /// Key overrides by action name, over the embedded keymap.
    pub keys: toml::Table,
}

impl Config {
    /// Reads the file; a missing file is the default config.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let config = Config::parse(path, &text)?;
        config.validate(path)?;
        Ok(config)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    text.as_bytes()[..s.start.min(text.len())]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        + 1
                })
                .unwrap_or(1);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                message: e.message().replace('\n', " "),
            }
        })
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Value {
            path: path.to_path_buf(),
            message,
        };
        if let Some(p) = &self.profile
            && !self.profiles.contains_key(p)
            && p != "demo"
        {
            return Err(bad(format!(
                "profile = \"{p}\" but there is no [profiles.{p}] section"
            )));
        }
        for d in &self.needs.data {
            if DataKind::from_name(d).is_none() {
                let known: Vec<&str> = DataKind::ALL.iter().map(|k| k.name()).collect();
                return Err(bad(format!(
                    "needs.data: unknown data kind `{d}` (known: {})",
                    known.join(", ")
                )));
            }
        }
        if self.fetch.concurrency == 0 {
            return Err(bad("fetch.concurrency must be at least 1".into()));
        }
        if self.fetch.rate_limit
            && (self.fetch.rate_burst < 1.0 || self.fetch.rate_per_minute <= 0.0)
        {
            return Err(bad("fetch.rate_burst must be ≥ 1 and fetch.rate_per_minute > 0 (or set rate_limit = false)".into()));
        }
        Ok(())
    }

    pub fn data_kinds(&self) -> Vec<DataKind> {
        self.needs
            .data
            .iter()
            .filter_map(|d| DataKind::from_name(d))
            .collect()
    }

    /// The refresh interval with its 30-second floor.
    pub fn refresh_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.fetch.refresh_interval_seconds.max(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_the_default_config() {
        let c = Config::load(Path::new("/nonexistent/vtriage/config.toml")).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let err = Config::parse(Path::new("c.toml"), "[fetch]\nconcurrency = 4\nspeed = 9\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("c.toml:3:"), "{msg}");
        assert!(msg.contains("speed"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let err = Config::parse(Path::new("c.toml"), "\n\n[ui]\nmouse = \"yes\"\n").unwrap_err();
        assert!(err.to_string().starts_with("c.toml:4:"), "{err}");
    }

    #[test]
    fn profiles_and_needs_are_read() {
        let text = r#"
profile = "prod"
[profiles.prod]
kind = "live"
tokens_file = "/etc/vtriage/tokens.csv"
[needs]
data = ["odometer", "battery"]
at_home_only = true
[fetch]
refresh_interval_seconds = 5
"#;
        let c = Config::parse(Path::new("c.toml"), text).unwrap();
        c.validate(Path::new("c.toml")).unwrap();
        assert_eq!(c.profiles["prod"].kind, ProfileKind::Live);
        assert_eq!(c.data_kinds(), vec![DataKind::Odometer, DataKind::Battery]);
        assert_eq!(c.refresh_interval().as_secs(), 30);
    }

    #[test]
    fn unknown_data_kind_is_rejected() {
        let c = Config::parse(Path::new("c.toml"), "[needs]\ndata = [\"teleport\"]\n").unwrap();
        assert!(
            c.validate(Path::new("c.toml"))
                .unwrap_err()
                .to_string()
                .contains("teleport")
        );
    }

    #[test]
    fn profile_pointing_nowhere_is_rejected() {
        let c = Config::parse(Path::new("c.toml"), "profile = \"nope\"\n").unwrap();
        assert!(c.validate(Path::new("c.toml")).is_err());
    }
}
