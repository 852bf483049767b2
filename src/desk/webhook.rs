//! Smartcar webhook deliveries as data: the AMT-keyed HMACs (signature and VERIFY challenge) and the
//! payload (version 4.0 envelope, legacy v2 verify) parsed into what the desk stores. Pure: no I/O.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::smartcar::v3::{Signal, parse_signal};
use crate::smartcar::{ErrorCode, ErrorType, Resolution, SmartcarError};

type HmacSha256 = Hmac<Sha256>;

/// Hex HMAC-SHA256 of `message` keyed with the management token: `SC-Signature` of a body, and the
/// answer to a VERIFY challenge.
pub fn sign(amt: &[u8], message: &[u8]) -> String {
    match HmacSha256::new_from_slice(amt) {
        Ok(mut mac) => {
            mac.update(message);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; an empty answer would never verify anyway.
        Err(_) => String::new(),
    }
}

/// Whether `signature` (the `SC-Signature` header, hex) is the HMAC of `body` under `amt`. The
/// comparison is constant-time, so a forger learns nothing from how long a refusal takes.
pub fn verify_signature(amt: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(claimed) = hex::decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(amt) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// A delivery the body could not describe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not JSON")]
    NotJson,
    #[error("the body names no eventType")]
    NoEventType,
    #[error("a VERIFY event without data.challenge")]
    NoChallenge,
    #[error(
        "the VERIFY challenge is not a short token of letters, digits, `-`, `_`, `.` or `~` (at most 128)"
    )]
    BadChallenge,
    #[error("a {event_type} event without {field}")]
    Missing {
        event_type: String,
        field: &'static str,
    },
}

/// The longest VERIFY challenge answered: Smartcar's is a short random token.
pub const MAX_CHALLENGE_LEN: usize = 128;

/// Whether `challenge` has the shape of the one Smartcar sends: 1 to [`MAX_CHALLENGE_LEN`] URL-safe
/// characters (RFC 3986 unreserved: letters, digits, `-`, `_`, `.`, `~`). The answer to a VERIFY is
/// the HMAC that `SC-Signature` is, so the desk signs only texts that can never be a delivery it
/// accepts: no such token is a JSON object.
pub fn is_challenge(challenge: &str) -> bool {
    (1..=MAX_CHALLENGE_LEN).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

fn challenge(v: Option<&Value>) -> Result<Delivery, PayloadError> {
    let challenge = text(v).ok_or(PayloadError::NoChallenge)?;
    if !is_challenge(&challenge) {
        return Err(PayloadError::BadChallenge);
    }
    Ok(Delivery::Verify { challenge })
}

/// What one delivery asks of the desk.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Smartcar checks the callback URL: answer with the HMAC of the challenge, which
    /// [`is_challenge`] holds.
    Verify { challenge: String },
    /// `VEHICLE_STATE` or `VEHICLE_ERROR`: evidence about one vehicle.
    Vehicle(Box<VehicleEvent>),
    /// An event type this desk does not interpret (a newer one, or a v2 data event); stored as sent.
    Other {
        event_id: Option<String>,
        event_type: String,
    },
}

/// `VEHICLE_STATE` or `VEHICLE_ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VehicleEventKind {
    State,
    Error,
}

impl VehicleEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VehicleEventKind::State => "VEHICLE_STATE",
            VehicleEventKind::Error => "VEHICLE_ERROR",
        }
    }
}

/// Whether an error reported by a `VEHICLE_ERROR` still holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorState {
    Error,
    Resolved,
    /// A state Smartcar may add later; treated as still failing.
    Other(String),
}

impl ErrorState {
    fn parse(s: Option<&str>) -> ErrorState {
        match s.map(str::trim) {
            None | Some("ERROR") => ErrorState::Error,
            Some("RESOLVED") => ErrorState::Resolved,
            Some(other) => ErrorState::Other(other.to_string()),
        }
    }

    pub fn is_resolved(&self) -> bool {
        *self == ErrorState::Resolved
    }
}

/// One entry of `data.errors[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedError {
    pub error: SmartcarError,
    pub state: ErrorState,
    /// Codes of the signals the error affects (`location-preciselocation`).
    pub signals: Vec<String>,
}

/// A vehicle event, reduced to what the desk keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleEvent {
    /// Smartcar's id of the event: the same on every retry of it, so deliveries deduplicate on it.
    pub event_id: String,
    pub kind: VehicleEventKind,
    pub vehicle_id: String,
    pub user_id: Option<String>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub year: Option<u16>,
    /// When what the event says was true: the newest `oemUpdatedAt` of its signals, else
    /// `meta.deliveredAt`. Deliveries arrive in any order; the newest wins.
    pub at: Option<jiff::Timestamp>,
    /// `meta.deliveredAt` as Smartcar sent it.
    pub delivered_at: Option<jiff::Timestamp>,
    pub errors: Vec<ReportedError>,
    pub signals: Vec<Signal>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
    .filter(|s| !s.trim().is_empty())
}

/// An instant sent as epoch milliseconds (`deliveredAt`, `oemUpdatedAt`) or ISO 8601 (the VERIFY
/// example's `deliveredAt`). Numbers below 10^11 are read as seconds.
fn instant(v: Option<&Value>) -> Option<jiff::Timestamp> {
    match v? {
        Value::Number(n) => {
            let x = n.as_f64().filter(|x| x.is_finite() && *x >= 0.0)?;
            let ms = if x < 1e11 { x * 1000.0 } else { x };
            if ms > i64::MAX as f64 {
                return None;
            }
            jiff::Timestamp::from_millisecond(ms as i64).ok()
        }
        Value::String(s) => s.trim().parse::<jiff::Timestamp>().ok(),
        _ => None,
    }
}

/// A signal reference as `{code, name, group}` or as a dotted `Group.Name` string, as a code
/// (`location-isathome`).
pub fn signal_code(reference: &Value) -> Option<String> {
    let dotted = |s: &str| {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        Some(match s.split_once('.') {
            Some((group, name)) => format!("{group}-{name}").to_ascii_lowercase(),
            None => s.to_ascii_lowercase(),
        })
    };
    match reference {
        Value::String(s) => dotted(s),
        Value::Object(o) => text(o.get("code"))
            .map(|c| c.to_ascii_lowercase())
            .or_else(|| {
                let group = text(o.get("group"))?;
                let name = text(o.get("name"))?;
                dotted(&format!("{group}.{name}"))
            }),
        _ => None,
    }
}

/// The HTTP status Smartcar gives an error type, for evidence (webhook errors carry none).
fn status_of(error_type: &ErrorType) -> u16 {
    match error_type {
        ErrorType::Authentication => 401,
        ErrorType::Validation | ErrorType::ConnectedServicesAccount => 400,
        ErrorType::Permission => 403,
        ErrorType::ResourceNotFound => 404,
        ErrorType::VehicleState => 409,
        ErrorType::RateLimit => 429,
        ErrorType::Billing => 430,
        ErrorType::Compatibility => 501,
        ErrorType::Server => 500,
        ErrorType::Upstream => 502,
        ErrorType::Other(_) => 0,
    }
}

fn reported_error(e: &Value) -> Option<ReportedError> {
    let error_type = ErrorType::parse(&text(e.get("type"))?);
    let code = text(e.get("code")).map(|c| ErrorCode::parse(&c));
    let mut error = SmartcarError::new(status_of(&error_type), error_type, code);
    error.description = text(e.get("description")).unwrap_or_default();
    error.doc_url = text(e.get("docURL"));
    error.suggested_user_message = text(e.get("suggestedUserMessage"));
    error.resolution = e.get("resolution").map(|r| match r {
        Value::String(kind) => Resolution {
            kind: Some(kind.clone()),
            url: None,
        },
        other => Resolution {
            kind: text(other.get("type")),
            url: text(other.get("url")),
        },
    });
    let signals = e
        .get("signals")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(signal_code).collect())
        .unwrap_or_default();
    Some(ReportedError {
        error,
        state: ErrorState::parse(e.get("state").and_then(Value::as_str)),
        signals,
    })
}

/// Reads a delivery. Unknown event types are kept, not refused: Smartcar may add some.
pub fn parse(body: &[u8]) -> Result<Delivery, PayloadError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| PayloadError::NotJson)?;
    parse_value(&v)
}

/// The longest event or vehicle id accepted; ids go into keys, logs and notifications.
pub const MAX_ID_LEN: usize = 200;

/// An id fit to be a key and a log field: not empty, not too long, no control characters.
fn id(v: Option<&Value>) -> Option<String> {
    text(v).filter(|s| s.len() <= MAX_ID_LEN && !s.chars().any(crate::untrusted::text::is_unsafe))
}

/// Hex SHA-256 of a body: the identity of a delivery that names no event id.
pub fn digest(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(body))
}

/// [`parse`] of a body already read as JSON.
pub fn parse_value(v: &Value) -> Result<Delivery, PayloadError> {
    // Legacy (v2) verify: {"eventName":"verify","payload":{"challenge":…}}.
    if let Some(name) = text(v.get("eventName")) {
        if name.eq_ignore_ascii_case("verify") {
            return challenge(v.get("payload").and_then(|p| p.get("challenge")));
        }
        return Ok(Delivery::Other {
            event_id: id(v.get("eventId")),
            event_type: name,
        });
    }
    let event_type = text(v.get("eventType")).ok_or(PayloadError::NoEventType)?;
    let data = v.get("data");
    let kind = match event_type.as_str() {
        "VERIFY" => return challenge(data.and_then(|d| d.get("challenge"))),
        "VEHICLE_STATE" => VehicleEventKind::State,
        "VEHICLE_ERROR" => VehicleEventKind::Error,
        _ => {
            return Ok(Delivery::Other {
                event_id: id(v.get("eventId")),
                event_type,
            });
        }
    };
    let missing = |field| PayloadError::Missing {
        event_type: event_type.clone(),
        field,
    };
    let event_id = id(v.get("eventId")).ok_or_else(|| missing("eventId"))?;
    let data = data.ok_or_else(|| missing("data"))?;
    let vehicle = data.get("vehicle");
    let vehicle_id = id(vehicle.and_then(|x| x.get("id")))
        .or_else(|| id(data.get("vehicleId")))
        .ok_or_else(|| missing("data.vehicle.id"))?;
    let signals: Vec<Signal> = data
        .get("signals")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(parse_signal).collect())
        .unwrap_or_default();
    let errors = data
        .get("errors")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(reported_error).collect())
        .unwrap_or_default();
    let delivered_at = instant(v.get("meta").and_then(|m| m.get("deliveredAt")));
    let oem_at = signals.iter().filter_map(|s| s.oem_updated_at).max();
    Ok(Delivery::Vehicle(Box::new(VehicleEvent {
        event_id,
        kind,
        vehicle_id,
        user_id: text(data.get("user").and_then(|u| u.get("id"))),
        make: text(vehicle.and_then(|x| x.get("make"))),
        model: text(vehicle.and_then(|x| x.get("model"))),
        year: vehicle
            .and_then(|x| x.get("year"))
            .and_then(|y| match y {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .and_then(|y| u16::try_from(y).ok()),
        at: oem_at.or(delivered_at),
        delivered_at,
        errors,
        signals,
    })))
}

/// The answer to a VERIFY challenge: `{"challenge": hex(HMAC-SHA256(AMT, challenge))}`; `None` for a
/// challenge not of Smartcar's shape ([`is_challenge`]), whose HMAC could sign a forged delivery.
pub fn challenge_answer(amt: &[u8], challenge: &str) -> Option<Value> {
    is_challenge(challenge)
        .then(|| serde_json::json!({ "challenge": sign(amt, challenge.as_bytes()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_python_sdks_hash_challenge() {
        // smartcar.hash_challenge("amt-123", "abc") from the Python SDK.
        let expected = {
            let mut mac = HmacSha256::new_from_slice(b"amt-123").expect("key");
            mac.update(b"abc");
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(sign(b"amt-123", b"abc"), expected);
        assert!(verify_signature(b"amt-123", b"abc", &expected));
        assert!(verify_signature(
            b"amt-123",
            b"abc",
            &expected.to_uppercase()
        ));
    }

    #[test]
    fn a_wrong_short_or_non_hex_signature_is_refused() {
        let good = sign(b"key", b"body");
        assert!(!verify_signature(b"key", b"body!", &good));
        assert!(!verify_signature(b"other", b"body", &good));
        assert!(!verify_signature(b"key", b"body", &good[..10]));
        assert!(!verify_signature(b"key", b"body", "zz"));
        assert!(!verify_signature(b"key", b"body", ""));
    }

    #[test]
    fn verify_is_read_in_the_v4_and_the_legacy_shape() {
        let v4 = br#"{"eventType":"VERIFY","data":{"challenge":"c-1"},"meta":{"version":"4.0"}}"#;
        assert_eq!(
            parse(v4),
            Ok(Delivery::Verify {
                challenge: "c-1".into()
            })
        );
        let legacy = br#"{"eventName":"verify","payload":{"challenge":"c-2"}}"#;
        assert_eq!(
            parse(legacy),
            Ok(Delivery::Verify {
                challenge: "c-2".into()
            })
        );
        assert_eq!(
            parse(br#"{"eventType":"VERIFY","data":{}}"#),
            Err(PayloadError::NoChallenge)
        );
    }

    #[test]
    fn a_challenge_that_is_no_short_url_safe_token_is_refused() {
        let forged =
            br#"{"eventId":"x","eventType":"VEHICLE_ERROR","data":{"vehicle":{"id":"v"}}}"#;
        let as_challenge = serde_json::json!({"eventType": "VERIFY", "data": {"challenge": String::from_utf8_lossy(forged)}});
        assert_eq!(
            parse(as_challenge.to_string().as_bytes()),
            Err(PayloadError::BadChallenge)
        );
        for bad in [
            "",
            " c-1",
            "a b",
            "{}",
            "[1]",
            "\"x\"",
            "c\u{1b}",
            "é",
            &"x".repeat(MAX_CHALLENGE_LEN + 1),
        ] {
            assert!(!is_challenge(bad), "{bad:?}");
            assert_eq!(challenge_answer(b"amt", bad), None, "{bad:?}");
        }
        for good in [
            "c-1",
            "sim-challenge-7",
            "3f9c2a1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b",
            "aGVsbG8_d29ybGQ~.x",
            &"x".repeat(MAX_CHALLENGE_LEN),
        ] {
            assert!(is_challenge(good), "{good:?}");
        }
    }

    #[test]
    fn no_challenge_the_desk_answers_is_a_delivery_it_accepts() {
        // Every body the desk acts on is a JSON object naming an event; a challenge of the
        // accepted shape never parses as one, so its HMAC signs nothing the desk would store.
        const CHARSET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut samples: Vec<String> = ["true", "null", "1", "-1.5e3", "0", "false"]
            .map(String::from)
            .to_vec();
        for _ in 0..20_000 {
            let len = 1 + (next() % MAX_CHALLENGE_LEN as u64) as usize;
            samples.push(
                (0..len)
                    .map(|_| CHARSET[(next() % CHARSET.len() as u64) as usize] as char)
                    .collect(),
            );
        }
        for challenge in samples {
            assert!(is_challenge(&challenge), "{challenge}");
            assert!(
                !matches!(
                    parse(challenge.as_bytes()),
                    Ok(Delivery::Vehicle(_) | Delivery::Other { .. })
                ),
                "{challenge} reads as a delivery"
            );
        }
    }

    #[test]
    fn signal_references_read_as_objects_or_dotted_strings() {
        assert_eq!(
            signal_code(&serde_json::json!("Location.IsAtHome")).as_deref(),
            Some("location-isathome")
        );
        assert_eq!(
            signal_code(&serde_json::json!({"code":"location-preciselocation","name":"PreciseLocation","group":"Location"}))
                .as_deref(),
            Some("location-preciselocation")
        );
        assert_eq!(
            signal_code(&serde_json::json!({"name":"IsAtHome","group":"Location"})).as_deref(),
            Some("location-isathome")
        );
        assert_eq!(signal_code(&serde_json::json!(42)), None);
        assert_eq!(signal_code(&serde_json::json!("  ")), None);
    }

    #[test]
    fn a_vehicle_error_keeps_type_code_state_and_signals() {
        let body = br#"{"eventId":"e1","eventType":"VEHICLE_ERROR",
          "data":{"user":{"id":"u1"},"vehicle":{"id":"v1","make":"TESLA","model":"Model 3","year":"2022"},
                  "errors":[{"type":"CONNECTED_SERVICES_ACCOUNT","code":"VIRTUAL_KEY_REQUIRED","state":"ERROR",
                             "resolution":{"type":"ACTION_REQUIRED","url":"https://www.tesla.com/_ak/smartcar.com"},
                             "signals":["Location.PreciseLocation",{"code":"odometer-traveleddistance"}]},
                            {"type":"PERMISSION","code":null,"state":"RESOLVED"},
                            {"code":"no type"}]},
          "meta":{"version":"4.0","deliveredAt":1761896351529}}"#;
        let Ok(Delivery::Vehicle(e)) = parse(body) else {
            panic!("not a vehicle event")
        };
        assert_eq!(e.kind, VehicleEventKind::Error);
        assert_eq!(e.vehicle_id, "v1");
        assert_eq!(e.user_id.as_deref(), Some("u1"));
        assert_eq!(e.year, Some(2022));
        assert_eq!(e.errors.len(), 2, "an error without a type is skipped");
        assert_eq!(
            e.errors[0].error.type_code(),
            "CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED"
        );
        assert_eq!(
            e.errors[0].signals,
            ["location-preciselocation", "odometer-traveleddistance"]
        );
        assert!(e.errors[1].state.is_resolved());
        assert_eq!(
            e.at,
            Some(jiff::Timestamp::from_millisecond(1761896351529).expect("ts"))
        );
    }

    #[test]
    fn a_state_event_takes_its_time_from_the_newest_signal() {
        let body = br#"{"eventId":"e2","eventType":"VEHICLE_STATE",
          "data":{"vehicle":{"id":"v1"},"signals":[
            {"code":"location-isathome","body":{"value":true},"status":{"value":"SUCCESS"},"meta":{"oemUpdatedAt":1000000000000}},
            {"code":"odometer-traveleddistance","body":{"value":10},"status":{"value":"SUCCESS"},"meta":{"oemUpdatedAt":1000000005000}}]},
          "meta":{"deliveredAt":1761896351529}}"#;
        let Ok(Delivery::Vehicle(e)) = parse(body) else {
            panic!("not a vehicle event")
        };
        assert_eq!(e.signals.len(), 2);
        assert_eq!(
            e.at,
            Some(jiff::Timestamp::from_millisecond(1000000005000).expect("ts"))
        );
    }

    #[test]
    fn hostile_bodies_are_errors_or_kept_types_never_panics() {
        assert_eq!(parse(b"not json"), Err(PayloadError::NotJson));
        assert_eq!(parse(b"[]"), Err(PayloadError::NoEventType));
        assert!(matches!(
            parse(br#"{"eventType":"VEHICLE_STATE","eventId":"x"}"#),
            Err(PayloadError::Missing { field: "data", .. })
        ));
        assert!(matches!(
            parse(br#"{"eventType":"VEHICLE_STATE","data":{"vehicle":{"id":"v"}}}"#),
            Err(PayloadError::Missing {
                field: "eventId",
                ..
            })
        ));
        let long_id = format!(
            r#"{{"eventType":"VEHICLE_STATE","eventId":"{}","data":{{"vehicle":{{"id":"v"}}}}}}"#,
            "x".repeat(MAX_ID_LEN + 1)
        );
        assert!(parse(long_id.as_bytes()).is_err());
        let control =
            br#"{"eventType":"VEHICLE_STATE","eventId":"a","data":{"vehicle":{"id":"v[2J"}}}"#;
        assert!(parse(control).is_err());
        assert_eq!(
            parse(br#"{"eventType":"VEHICLE_CONNECTION","eventId":"z"}"#),
            Ok(Delivery::Other {
                event_id: Some("z".into()),
                event_type: "VEHICLE_CONNECTION".into()
            })
        );
    }
}
