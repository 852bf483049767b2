//! The one error type for everything a Smartcar call can return: v2.0, v1, OAuth and v3 bodies,
//! non-JSON bodies from proxies, and transport failures. Nothing unknown fails to parse.

use serde::{Deserialize, Serialize};
use serde_json::Value;

macro_rules! open_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A value Smartcar may add later; kept verbatim.
            Other(String),
        }

        impl $name {
            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

open_enum!(
    /// Smartcar's error `type`.
    ErrorType {
        Authentication => "AUTHENTICATION",
        Validation => "VALIDATION",
        Permission => "PERMISSION",
        ResourceNotFound => "RESOURCE_NOT_FOUND",
        VehicleState => "VEHICLE_STATE",
        RateLimit => "RATE_LIMIT",
        Billing => "BILLING",
        ConnectedServicesAccount => "CONNECTED_SERVICES_ACCOUNT",
        Compatibility => "COMPATIBILITY",
        Server => "SERVER",
        Upstream => "UPSTREAM",
    }
);

open_enum!(
    /// Smartcar's error `code` (null in the body is `None` where it is used).
    ErrorCode {
        Parameter => "PARAMETER",
        Path => "PATH",
        Version => "VERSION",
        Asleep => "ASLEEP",
        ChargingInProgress => "CHARGING_IN_PROGRESS",
        ChargingPlugConnected => "CHARGING_PLUG_CONNECTED",
        ChargingPlugNotConnected => "CHARGING_PLUG_NOT_CONNECTED",
        ChargeFault => "CHARGE_FAULT",
        DoorOpen => "DOOR_OPEN",
        FullyCharged => "FULLY_CHARGED",
        HoodOpen => "HOOD_OPEN",
        IgnitionOn => "IGNITION_ON",
        InMotion => "IN_MOTION",
        NotCharging => "NOT_CHARGING",
        RemoteAccessDisabled => "REMOTE_ACCESS_DISABLED",
        TrunkOpen => "TRUNK_OPEN",
        Unreachable => "UNREACHABLE",
        VehicleOfflineForService => "VEHICLE_OFFLINE_FOR_SERVICE",
        Unknown => "UNKNOWN",
        LowBattery => "LOW_BATTERY",
        SmartcarApi => "SMARTCAR_API",
        Vehicle => "VEHICLE",
        VehicleLimit => "VEHICLE_LIMIT",
        InvalidPlan => "INVALID_PLAN",
        VehicleRequestLimit => "VEHICLE_REQUEST_LIMIT",
        AccountSuspended => "ACCOUNT_SUSPENDED",
        AccountIssue => "ACCOUNT_ISSUE",
        NoVehicles => "NO_VEHICLES",
        Subscription => "SUBSCRIPTION",
        VehicleMissing => "VEHICLE_MISSING",
        AuthenticationFailed => "AUTHENTICATION_FAILED",
        Permission => "PERMISSION",
        VirtualKeyRequired => "VIRTUAL_KEY_REQUIRED",
        MakeNotCompatible => "MAKE_NOT_COMPATIBLE",
        SmartcarNotCapable => "SMARTCAR_NOT_CAPABLE",
        VehicleNotCapable => "VEHICLE_NOT_CAPABLE",
        PlatformNotCapable => "PLATFORM_NOT_CAPABLE",
        Internal => "INTERNAL",
        RecordNotFound => "RECORD_NOT_FOUND",
        MultipleRecordsFound => "MULTIPLE_RECORDS_FOUND",
        InvalidData => "INVALID_DATA",
        KnownIssue => "KNOWN_ISSUE",
        NoResponse => "NO_RESPONSE",
        RateLimit => "RATE_LIMIT",
        UnknownIssue => "UNKNOWN_ISSUE",
    }
);

/// What Smartcar suggests doing about an error (`resolution`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// `RETRY_LATER`, `REAUTHENTICATE`, `CONTACT_SUPPORT`, `ACTION_REQUIRED`, `FINANCE`, or anything newer.
    pub kind: Option<String>,
    pub url: Option<String>,
}

/// An error Smartcar described in a JSON body (v2.0, v1, OAuth or v3 shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartcarError {
    /// HTTP status of the response (or batch item).
    pub status: u16,
    pub error_type: ErrorType,
    pub code: Option<ErrorCode>,
    pub description: String,
    pub doc_url: Option<String>,
    pub request_id: Option<String>,
    pub resolution: Option<Resolution>,
    pub suggested_user_message: Option<String>,
    /// `detail`, kept as Smartcar sent it (validation errors).
    pub detail: Option<Value>,
    pub retry_after_s: Option<u64>,
}

impl SmartcarError {
    /// An error with only its status, type and code; every other field empty.
    pub fn new(status: u16, error_type: ErrorType, code: Option<ErrorCode>) -> SmartcarError {
        SmartcarError {
            status,
            error_type,
            code,
            description: String::new(),
            doc_url: None,
            request_id: None,
            resolution: None,
            suggested_user_message: None,
            detail: None,
            retry_after_s: None,
        }
    }

    /// `TYPE:CODE`, or `TYPE` when the code is null, as Smartcar's docs and the SDKs print it.
    pub fn type_code(&self) -> String {
        match &self.code {
            Some(code) => format!("{}:{}", self.error_type, code),
            None => self.error_type.to_string(),
        }
    }

    pub fn is(&self, error_type: &ErrorType, code: Option<&ErrorCode>) -> bool {
        &self.error_type == error_type && self.code.as_ref() == code
    }
}

/// Why a body could not be read as a Smartcar answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyProblem {
    /// An HTML page, typically from a proxy or load balancer in front of the API.
    Html,
    Empty,
    /// Not JSON at all, or JSON cut short.
    InvalidJson,
    /// Valid JSON without the fields we need.
    UnexpectedShape,
    /// Larger than the response size cap.
    TooLarge,
}

impl BodyProblem {
    pub fn describe(self) -> &'static str {
        match self {
            BodyProblem::Html => "upstream returned HTML",
            BodyProblem::Empty => "empty response body",
            BodyProblem::InvalidJson => "response body is not valid JSON",
            BodyProblem::UnexpectedShape => "response JSON has an unexpected shape",
            BodyProblem::TooLarge => "response body over the size cap",
        }
    }
}

/// Why no HTTP response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// No connection was made: refused, DNS lookup or TLS handshake failed. Nothing was sent.
    Refused,
    /// No connection was made within the connect timeout. Nothing was sent.
    ConnectTimeout,
    /// The request was sent and no answer came in time: Smartcar may have counted it.
    Timeout,
    Other,
}

/// Everything that can go wrong with one Smartcar request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ApiError {
    /// Smartcar answered with an error body it meant us to read.
    #[error("{} ({}): {}", .0.type_code(), .0.status, .0.description)]
    Smartcar(Box<SmartcarError>),
    /// Something answered, but not with a body we can read.
    #[error("HTTP {status}: {}", .problem.describe())]
    Body {
        status: u16,
        problem: BodyProblem,
        content_type: Option<String>,
        request_id: Option<String>,
        /// The first bytes of the body, for evidence.
        snippet: String,
    },
    /// No response: connection refused, timed out, reset.
    #[error("transport: {message}")]
    Transport {
        kind: TransportKind,
        message: String,
    },
    /// A 3xx answer. Redirects are never followed: the credentials were meant for this origin,
    /// and another host's answer is no evidence about the vehicle.
    #[error(
        "HTTP {status}: the API answered with a redirect to {}; vtriage does not follow redirects",
        .location.as_deref().unwrap_or("nowhere (no Location header)")
    )]
    Redirect {
        status: u16,
        location: Option<String>,
        request_id: Option<String>,
    },
    /// The request was not sent because it could not be put into a URL as asked (a vehicle id
    /// of `.` or `..`, which URL parsers turn into a different path, or an unusable origin).
    #[error("request not sent: {message}")]
    Unsendable { message: String },
    /// API v3: a vehicle call answered 401 and it could not be told whether the application token
    /// or the vehicle's connection was refused (the token check failed, or the token kept being
    /// refused after renewals). Blames neither.
    #[error(
        "HTTP {status}: refused, and whether the app token or the vehicle's connection was refused is not known: {reason}"
    )]
    TokenUnsettled {
        status: u16,
        request_id: Option<String>,
        reason: String,
    },
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Smartcar(e) => Some(e.status),
            ApiError::Body { status, .. }
            | ApiError::Redirect { status, .. }
            | ApiError::TokenUnsettled { status, .. } => Some(*status),
            ApiError::Transport { .. } | ApiError::Unsendable { .. } => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Smartcar(e) => e.request_id.as_deref(),
            ApiError::Body { request_id, .. }
            | ApiError::Redirect { request_id, .. }
            | ApiError::TokenUnsettled { request_id, .. } => request_id.as_deref(),
            ApiError::Transport { .. } | ApiError::Unsendable { .. } => None,
        }
    }

    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            ApiError::Smartcar(e) => e.retry_after_s,
            _ => None,
        }
    }

    pub fn smartcar(&self) -> Option<&SmartcarError> {
        match self {
            ApiError::Smartcar(e) => Some(e),
            _ => None,
        }
    }

    /// A short label for evidence: `TYPE:CODE`, `HTML`, `TIMEOUT`.
    pub fn label(&self) -> String {
        match self {
            ApiError::Smartcar(e) => e.type_code(),
            ApiError::Body { problem, .. } => match problem {
                BodyProblem::Html => "HTML".into(),
                BodyProblem::Empty => "EMPTY_BODY".into(),
                BodyProblem::InvalidJson => "INVALID_JSON".into(),
                BodyProblem::UnexpectedShape => "UNEXPECTED_JSON".into(),
                BodyProblem::TooLarge => "BODY_TOO_LARGE".into(),
            },
            ApiError::Transport { kind, .. } => match kind {
                TransportKind::Refused => "CONNECTION_REFUSED".into(),
                TransportKind::ConnectTimeout => "CONNECT_TIMEOUT".into(),
                TransportKind::Timeout => "TIMEOUT".into(),
                TransportKind::Other => "TRANSPORT".into(),
            },
            ApiError::Redirect { .. } => "REDIRECT".into(),
            ApiError::Unsendable { .. } => "NOT_SENT".into(),
            ApiError::TokenUnsettled { .. } => "AUTHENTICATION_UNSETTLED".into(),
        }
    }

    /// The request never reached Smartcar: no connection was made (refused, DNS, TLS, connect
    /// timeout), so it cost nothing on Smartcar's side. A timeout after the request went out is not
    /// one: Smartcar may have counted it.
    pub fn never_reached(&self) -> bool {
        matches!(
            self,
            ApiError::Transport {
                kind: TransportKind::Refused | TransportKind::ConnectTimeout,
                ..
            }
        )
    }

    /// The kind of failure in a few words, the same for every vehicle and URL it happened to, so
    /// failures group by it: `connection refused`, `DNS lookup failed`, `HTTP 503 HTML page`,
    /// `HTTP 500 SERVER:INTERNAL`. `None` for an answer about the vehicle (its state, its OEM, its
    /// permissions) and for a redirect.
    pub fn failure_kind(&self) -> Option<String> {
        match self {
            ApiError::Transport { kind, message } => {
                let m = message.to_ascii_lowercase();
                Some(
                    match kind {
                        TransportKind::Refused if m.contains("dns") || m.contains("lookup") => {
                            "DNS lookup failed"
                        }
                        TransportKind::Refused
                            if m.contains("tls")
                                || m.contains("certificate")
                                || m.contains("ssl") =>
                        {
                            "TLS handshake failed"
                        }
                        TransportKind::Refused if m.contains("refused") => "connection refused",
                        TransportKind::Refused => "cannot connect",
                        TransportKind::ConnectTimeout => "connect timed out",
                        TransportKind::Timeout => "timed out",
                        TransportKind::Other if m.contains("reset") => "connection reset",
                        TransportKind::Other => "no response",
                    }
                    .to_string(),
                )
            }
            ApiError::Body {
                status, problem, ..
            } => {
                let what = match problem {
                    BodyProblem::Html => "HTML page",
                    BodyProblem::Empty => "empty body",
                    BodyProblem::InvalidJson => "body not JSON",
                    BodyProblem::UnexpectedShape => "unexpected JSON",
                    BodyProblem::TooLarge => "body too large",
                };
                Some(format!("HTTP {status} {what}"))
            }
            // Smartcar's own platform failing, not the car nor its OEM (`UPSTREAM`).
            ApiError::Smartcar(e) if e.status >= 500 && e.error_type == ErrorType::Server => {
                // The code is the server's text: short, and on one line.
                let code: String = crate::untrusted::text::one_line(&e.type_code())
                    .chars()
                    .take(48)
                    .collect();
                Some(format!("HTTP {} {code}", e.status))
            }
            ApiError::Smartcar(_)
            | ApiError::Redirect { .. }
            | ApiError::Unsendable { .. }
            | ApiError::TokenUnsettled { .. } => None,
        }
    }

    /// The origin (`scheme://host[:port]`) a transport failure names in its message, if any.
    pub fn origin_in_message(&self) -> Option<String> {
        let ApiError::Transport { message, .. } = self else {
            return None;
        };
        let start = message
            .find("http://")
            .or_else(|| message.find("https://"))?;
        let rest = &message[start..];
        let after_scheme = rest.find("://").map_or(0, |i| i + 3);
        let end = rest[after_scheme..]
            .find(['/', ')', ' ', '?'])
            .map_or(rest.len(), |i| after_scheme + i);
        Some(rest[..end].to_string())
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Smartcar(e) => match e.error_type {
                ErrorType::RateLimit | ErrorType::Server | ErrorType::Upstream => !matches!(
                    e.code,
                    Some(ErrorCode::RecordNotFound | ErrorCode::MultipleRecordsFound)
                ),
                ErrorType::VehicleState => {
                    matches!(
                        e.code,
                        Some(
                            ErrorCode::Unknown
                                | ErrorCode::LowBattery
                                | ErrorCode::Asleep
                                | ErrorCode::Unreachable
                        )
                    ) && e.resolution.as_ref().and_then(|r| r.kind.as_deref())
                        == Some("RETRY_LATER")
                }
                _ => false,
            },
            ApiError::Body {
                status, problem, ..
            } => {
                *status >= 500
                    || *status == 429
                    || matches!(problem, BodyProblem::InvalidJson | BodyProblem::Empty)
            }
            ApiError::Transport { kind, .. } => !matches!(kind, TransportKind::Refused),
            // The same request would be redirected, or refused, again.
            ApiError::Redirect { .. } | ApiError::Unsendable { .. } => false,
            // A later probe, with a token that is settled by then, may tell.
            ApiError::TokenUnsettled { .. } => true,
        }
    }
}

/// Why a listing that pages through cursors was stopped before the server said it was complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    /// A cursor came back that was already followed: the listing would go round forever.
    #[error("the Management API repeated cursor {cursor}, stopping the listing")]
    RepeatedCursor {
        /// As sent, quoted and escaped, cut to a readable length.
        cursor: String,
    },
    /// More rows than the configured cap: a runaway server would otherwise fill memory.
    #[error("the listing passed {max} connections (the max_connections cap), stopping the listing")]
    TooMany { max: usize },
}

impl PagingError {
    pub fn repeated_cursor(cursor: &str) -> PagingError {
        PagingError::RepeatedCursor {
            cursor: quote_untrusted(cursor),
        }
    }
}

/// Longest piece of an untrusted string quoted in a message.
const QUOTE_CHARS: usize = 80;

/// An untrusted string made safe to print on one line: quoted, control characters escaped, cut short.
pub fn quote_untrusted(s: &str) -> String {
    let mut out = String::from("\"");
    out.extend(s.chars().take(QUOTE_CHARS).flat_map(char::escape_debug));
    out.push('"');
    if s.chars().nth(QUOTE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Largest body kept as evidence.
const SNIPPET_CHARS: usize = 200;

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(SNIPPET_CHARS).collect();
    if text.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_resolution(v: Option<&Value>) -> Option<Resolution> {
    match v? {
        Value::Object(_) => {
            let v = v?;
            Some(Resolution {
                kind: str_field(v, "type"),
                url: str_field(v, "url"),
            })
        }
        Value::String(s) => Some(Resolution {
            kind: Some(s.clone()),
            url: None,
        }),
        _ => None,
    }
}

/// Reads an error response. `content_type` and `request_id_header` come from the HTTP headers;
/// `retry_after_s` from `Retry-After`. Never fails: an unreadable body becomes [`ApiError::Body`].
pub fn parse_error_body(
    status: u16,
    content_type: Option<&str>,
    request_id_header: Option<&str>,
    retry_after_s: Option<u64>,
    body: &[u8],
) -> ApiError {
    let body_problem = |problem| ApiError::Body {
        status,
        problem,
        content_type: content_type.map(str::to_string),
        request_id: request_id_header.map(str::to_string),
        snippet: snippet(body),
    };
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return body_problem(BodyProblem::Empty);
    }
    let looks_html = content_type.is_some_and(|c| c.to_ascii_lowercase().contains("text/html"))
        || trimmed.first() == Some(&b'<');
    let value: Value = match serde_json::from_slice(trimmed) {
        Ok(v) => v,
        Err(_) if looks_html => return body_problem(BodyProblem::Html),
        Err(_) => return body_problem(BodyProblem::InvalidJson),
    };
    match error_from_json(status, &value, request_id_header, retry_after_s)
        .or_else(|| untyped_json_api_error(status, &value, request_id_header, retry_after_s))
    {
        Some(e) => ApiError::Smartcar(Box::new(e)),
        None => body_problem(BodyProblem::UnexpectedShape),
    }
}

/// A string or a number, as text.
fn json_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON:API `errors[]` entry without `type` (v3 sends them): the type is the one the HTTP
/// status stands for in Smartcar's error table.
fn untyped_json_api_error(
    status: u16,
    value: &Value,
    request_id: Option<&str>,
    retry_after_s: Option<u64>,
) -> Option<SmartcarError> {
    let first = value.get("errors")?.as_array()?.first()?;
    let code = json_text(first.get("code")).map(|c| ErrorCode::parse(&c));
    let error_type = match (status, &code) {
        (
            400,
            Some(
                ErrorCode::AccountIssue
                | ErrorCode::AuthenticationFailed
                | ErrorCode::NoVehicles
                | ErrorCode::Permission
                | ErrorCode::Subscription
                | ErrorCode::VehicleMissing
                | ErrorCode::VirtualKeyRequired,
            ),
        ) => ErrorType::ConnectedServicesAccount,
        (400, _) => ErrorType::Validation,
        (401, _) => ErrorType::Authentication,
        (403, _) => ErrorType::Permission,
        (404, _) => ErrorType::ResourceNotFound,
        (409, _) => ErrorType::VehicleState,
        (429, _) => ErrorType::RateLimit,
        (430, _) => ErrorType::Billing,
        (501, _) => ErrorType::Compatibility,
        (502, _) => ErrorType::Upstream,
        (500..=599, _) => ErrorType::Server,
        _ => return None,
    };
    let mut e = SmartcarError::new(status, error_type, code);
    e.description = json_text(first.get("detail"))
        .or_else(|| json_text(first.get("title")))
        .unwrap_or_default();
    e.doc_url = first.get("links").and_then(|l| json_text(l.get("about")));
    e.request_id = json_text(value.get("meta").and_then(|m| m.get("requestId")))
        .or_else(|| request_id.map(str::to_string));
    e.suggested_user_message = json_text(first.get("suggestedUserMessage"));
    e.retry_after_s = retry_after_s;
    Some(e)
}

/// Reads a JSON error value in any of Smartcar's shapes; `None` when it is none of them.
/// Used for whole responses and for batch items alike.
pub fn error_from_json(
    status: u16,
    v: &Value,
    request_id_header: Option<&str>,
    retry_after_s: Option<u64>,
) -> Option<SmartcarError> {
    let obj = v.as_object()?;
    let request_id = str_field(v, "requestId").or_else(|| request_id_header.map(str::to_string));
    // v3: {"errors": [{status, type, code, title, detail, links{about}, resolution, suggestedUserMessage}]}
    if let Some(first) = obj
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        let error_type = str_field(first, "type")?;
        return Some(SmartcarError {
            status,
            error_type: ErrorType::parse(&error_type),
            code: str_field(first, "code").map(|c| ErrorCode::parse(&c)),
            description: str_field(first, "detail")
                .or_else(|| str_field(first, "title"))
                .unwrap_or_default(),
            doc_url: first.get("links").and_then(|l| str_field(l, "about")),
            request_id,
            resolution: parse_resolution(first.get("resolution")),
            suggested_user_message: str_field(first, "suggestedUserMessage"),
            detail: None,
            retry_after_s,
        });
    }
    // v2.0: {type, code, description, docURL, statusCode, requestId, resolution, suggestedUserMessage, detail}
    if let Some(error_type) = str_field(v, "type") {
        return Some(SmartcarError {
            status,
            error_type: ErrorType::parse(&error_type),
            code: str_field(v, "code").map(|c| ErrorCode::parse(&c)),
            description: str_field(v, "description").unwrap_or_default(),
            doc_url: str_field(v, "docURL"),
            request_id,
            resolution: parse_resolution(obj.get("resolution")),
            suggested_user_message: str_field(v, "suggestedUserMessage"),
            detail: obj.get("detail").filter(|d| !d.is_null()).cloned(),
            retry_after_s,
        });
    }
    // v1 {error, message, code} and OAuth {error, error_description}
    if let Some(error) = str_field(v, "error") {
        let description = str_field(v, "error_description")
            .or_else(|| str_field(v, "message"))
            .unwrap_or_default();
        return Some(SmartcarError {
            status,
            error_type: ErrorType::parse(&error),
            code: str_field(v, "code").map(|c| ErrorCode::parse(&c)),
            description,
            doc_url: None,
            request_id,
            resolution: None,
            suggested_user_message: None,
            detail: None,
            retry_after_s,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(kind: TransportKind, message: &str) -> ApiError {
        ApiError::Transport {
            kind,
            message: message.into(),
        }
    }

    #[test]
    fn a_failure_reads_the_same_for_every_vehicle_and_url_it_happened_to() {
        let refused = |id: &str| {
            transport(
                TransportKind::Refused,
                &format!(
                    "error sending request for url (http://127.0.0.1:1/v2.0/vehicles/{id}/odometer): client error (Connect): tcp connect error: Connection refused (os error 111)"
                ),
            )
        };
        for e in [refused("a"), refused("b")] {
            assert_eq!(e.failure_kind().as_deref(), Some("connection refused"));
            assert_eq!(e.origin_in_message().as_deref(), Some("http://127.0.0.1:1"));
            assert!(e.never_reached());
        }
        let dns = transport(
            TransportKind::Refused,
            "error sending request for url (https://api.example/v2.0/vehicles/x): client error (Connect): dns error: failed to lookup address information",
        );
        assert_eq!(dns.failure_kind().as_deref(), Some("DNS lookup failed"));
        assert_eq!(
            dns.origin_in_message().as_deref(),
            Some("https://api.example")
        );
        // Sent, then no answer in time: Smartcar may have counted it.
        let timeout = transport(TransportKind::Timeout, "operation timed out");
        assert!(!timeout.never_reached());
        assert!(transport(TransportKind::ConnectTimeout, "connect timeout").never_reached());
        let page = ApiError::Body {
            status: 503,
            problem: BodyProblem::Html,
            content_type: Some("text/html".into()),
            request_id: None,
            snippet: "<html>".into(),
        };
        assert_eq!(page.failure_kind().as_deref(), Some("HTTP 503 HTML page"));
        let asleep = ApiError::Smartcar(Box::new(SmartcarError::new(
            409,
            ErrorType::VehicleState,
            Some(ErrorCode::Asleep),
        )));
        assert_eq!(
            asleep.failure_kind(),
            None,
            "a car's own answer is no failure kind"
        );
    }
}
