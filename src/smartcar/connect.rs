//! Smartcar Connect URLs (authorize and reauthenticate), encoded byte for byte as the Python SDK's `get_auth_url`.

/// Shown instead of a client id when none is configured, left unencoded so a person sees it must be replaced.
pub const CLIENT_ID_PLACEHOLDER: &str = "<your-client-id>";

/// `mode` of a Connect session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnectMode {
    #[default]
    Live,
    Simulated,
    /// Deprecated by Smartcar, still accepted.
    Test,
}

impl ConnectMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectMode::Live => "live",
            ConnectMode::Simulated => "simulated",
            ConnectMode::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<ConnectMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "live" => Some(ConnectMode::Live),
            "simulated" => Some(ConnectMode::Simulated),
            "test" => Some(ConnectMode::Test),
            _ => None,
        }
    }
}

/// The SDK's `single_select` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SingleSelect {
    /// `single_select=true|false`.
    Enabled(bool),
    /// `single_select_vin=<vin>&single_select=true`.
    Vin(String),
}

/// A value of a Connect feature flag; booleans are written lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagValue {
    Bool(bool),
    Text(String),
}

/// Why a `--flag key:value` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flag `{0}` is not `key:value` (e.g. `country:DE` or `tesla_auth:true`)")]
pub struct FlagSyntaxError(pub String);

impl FlagValue {
    /// `true`/`false` (any case) become booleans, as the SDKs write them; anything else is text.
    pub fn parse(value: &str) -> FlagValue {
        match value.to_ascii_lowercase().as_str() {
            "true" => FlagValue::Bool(true),
            "false" => FlagValue::Bool(false),
            _ => FlagValue::Text(value.to_string()),
        }
    }
}

/// Every permission Smartcar documents (read and control), as a Connect scope names them.
pub const PERMISSIONS: &[&str] = &[
    "read_alerts",
    "read_battery",
    "read_charge",
    "read_charge_locations",
    "read_charge_records",
    "read_charge_events",
    "read_climate",
    "read_compass",
    "read_diagnostics",
    "read_engine_oil",
    "read_extended_vehicle_info",
    "read_fuel",
    "read_location",
    "read_odometer",
    "read_security",
    "read_service_history",
    "read_speedometer",
    "read_thermometer",
    "read_tires",
    "read_user_profile",
    "read_vehicle_info",
    "read_vin",
    "control_charge",
    "control_climate",
    "control_navigation",
    "control_security",
    "control_pin",
    "control_trunk",
];

/// A scope that names no documented permission (a typo would otherwise ask the owner for nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission `{scope}`{hint}")]
pub struct UnknownScope {
    pub scope: String,
    hint: String,
}

/// Checks one scope entry: a permission, optionally marked `required:`.
pub fn check_scope(scope: &str) -> Result<(), UnknownScope> {
    let permission = scope.strip_prefix("required:").unwrap_or(scope);
    if PERMISSIONS.contains(&permission) {
        return Ok(());
    }
    let mut near: Vec<(usize, &str)> = PERMISSIONS
        .iter()
        .map(|p| (strsim::levenshtein(p, &permission.to_ascii_lowercase()), *p))
        .filter(|(d, _)| *d <= 3)
        .collect();
    near.sort();
    let hint = match near.first() {
        Some((_, p)) => format!("; did you mean {p}?"),
        None => format!("; permissions: {}", PERMISSIONS.join(", ")),
    };
    Err(UnknownScope {
        scope: scope.to_string(),
        hint,
    })
}

/// Reads one `key:value` flag as given on a command line.
pub fn parse_flag(arg: &str) -> Result<(String, FlagValue), FlagSyntaxError> {
    match arg.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() && !k.contains(' ') && !v.contains(' ') => {
            Ok((k.trim().to_string(), FlagValue::parse(v)))
        }
        _ => Err(FlagSyntaxError(arg.to_string())),
    }
}

impl std::fmt::Display for FlagValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlagValue::Bool(b) => write!(f, "{b}"),
            FlagValue::Text(s) => f.write_str(s),
        }
    }
}

/// Every option of the official SDKs' `get_auth_url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `None` writes [`CLIENT_ID_PLACEHOLDER`].
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    /// Permissions, each optionally prefixed `required:`.
    pub scope: Vec<String>,
    pub mode: ConnectMode,
    /// `approval_prompt=force` instead of `auto`.
    pub force_prompt: bool,
    pub state: Option<String>,
    /// Skips the brand selector (`TESLA`).
    pub make: Option<String>,
    pub single_select: Option<SingleSelect>,
    /// `key:value` pairs, in order.
    pub flags: Vec<(String, FlagValue)>,
    /// Developer-defined owner id.
    pub user: Option<String>,
}

impl ConnectOptions {
    /// `<origin>/oauth/authorize?...` in the Python SDK's parameter order:
    /// response_type, client_id, approval_prompt, mode, redirect_uri, scope, state, make,
    /// single_select_vin, single_select, flags, user.
    pub fn authorize_url(&self, connect_origin: &str) -> String {
        let mut q = Query::new(connect_origin, "/oauth/authorize");
        q.push("response_type", "code");
        self.push_client_id(&mut q);
        q.push(
            "approval_prompt",
            if self.force_prompt { "force" } else { "auto" },
        );
        q.push("mode", self.mode.as_str());
        self.push_common(&mut q, true);
        q.finish()
    }

    /// `<origin>/oauth/reauthenticate?response_type=vehicle_id&client_id=…&vehicle_id=…`, then the options
    /// that differ from Connect's defaults, in the authorize order (approval_prompt and mode only when not
    /// `auto`/`live`; single select does not apply to one known vehicle).
    pub fn reauthenticate_url(&self, connect_origin: &str, vehicle_id: &str) -> String {
        let mut q = Query::new(connect_origin, "/oauth/reauthenticate");
        q.push("response_type", "vehicle_id");
        self.push_client_id(&mut q);
        q.push("vehicle_id", vehicle_id);
        if self.force_prompt {
            q.push("approval_prompt", "force");
        }
        if self.mode != ConnectMode::Live {
            q.push("mode", self.mode.as_str());
        }
        self.push_common(&mut q, false);
        q.finish()
    }

    fn push_client_id(&self, q: &mut Query) {
        match self.client_id.as_deref().filter(|c| !c.trim().is_empty()) {
            Some(id) => q.push("client_id", id),
            None => q.push_raw("client_id", CLIENT_ID_PLACEHOLDER),
        }
    }

    fn push_common(&self, q: &mut Query, single_select: bool) {
        if let Some(r) = &self.redirect_uri {
            q.push("redirect_uri", r);
        }
        if !self.scope.is_empty() {
            q.push("scope", &self.scope.join(" "));
        }
        if let Some(s) = &self.state {
            q.push("state", s);
        }
        if let Some(m) = &self.make {
            q.push("make", m);
        }
        if single_select {
            match &self.single_select {
                Some(SingleSelect::Vin(vin)) => {
                    q.push("single_select_vin", vin);
                    q.push("single_select", "true");
                }
                Some(SingleSelect::Enabled(on)) => {
                    q.push("single_select", if *on { "true" } else { "false" })
                }
                None => {}
            }
        }
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            q.push("flags", &flags.join(" "));
        }
        if let Some(u) = &self.user {
            q.push("user", u);
        }
    }
}

/// A URL being assembled, query encoded like Python's `urllib.parse.urlencode`.
struct Query {
    out: String,
    first: bool,
}

impl Query {
    fn new(origin: &str, path: &str) -> Query {
        let mut out = String::with_capacity(256);
        out.push_str(origin.trim_end_matches('/'));
        out.push_str(path);
        Query { out, first: true }
    }

    fn sep(&mut self) {
        self.out.push(if self.first { '?' } else { '&' });
        self.first = false;
    }

    fn push(&mut self, key: &str, value: &str) {
        self.sep();
        quote_plus(&mut self.out, key);
        self.out.push('=');
        quote_plus(&mut self.out, value);
    }

    fn push_raw(&mut self, key: &str, value: &str) {
        self.sep();
        self.out.push_str(key);
        self.out.push('=');
        self.out.push_str(value);
    }

    fn finish(self) -> String {
        self.out
    }
}

/// Python's `quote_plus`: keeps `A-Z a-z 0-9 _ . - ~`, turns space into `+`, percent-encodes every other
/// UTF-8 byte in upper-case hex.
fn quote_plus(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xF)]));
            }
        }
    }
}

/// The owner's virtual-key pairing link: `https://www.tesla.com/_ak/<domain>`.
pub fn virtual_key_link(domain: &str) -> String {
    format!(
        "https://www.tesla.com/_ak/{}",
        domain.trim().trim_matches('/')
    )
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn a_mistyped_scope_is_refused_naming_the_permission_it_is_nearest() {
        assert!(check_scope("read_location").is_ok());
        assert!(check_scope("required:read_location").is_ok());
        let e = check_scope("read_locaton").unwrap_err();
        assert!(e.to_string().contains("did you mean read_location?"), "{e}");
        let e = check_scope("fly").unwrap_err();
        assert!(e.to_string().contains("permissions: read_alerts"), "{e}");
    }
}
