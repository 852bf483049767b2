//! v3 vehicles and signals as data: what `GET /v3/vehicles/{id}` and `/signals[/{code}]` answer,
//! parsed from any of the documented shapes (wrapped in `data` or bare). Pure: no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::smartcar::error::{ErrorCode, ErrorType};
use crate::smartcar::model::Meta;

/// A signal's `status.value`: `SUCCESS`, `ERROR`, or anything newer kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SignalState {
    Success,
    Error,
    Other(String),
}

impl SignalState {
    pub fn parse(s: &str) -> SignalState {
        match s {
            "SUCCESS" => SignalState::Success,
            "ERROR" => SignalState::Error,
            other => SignalState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            SignalState::Success => "SUCCESS",
            SignalState::Error => "ERROR",
            SignalState::Other(s) => s,
        }
    }
}

impl Serialize for SignalState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SignalState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SignalState::parse(&String::deserialize(d)?))
    }
}

/// `status.error` of a signal that could not be read: `{type, code}`, the code often null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalError {
    pub error_type: ErrorType,
    pub code: Option<ErrorCode>,
}

impl SignalError {
    /// `TYPE:CODE`, or `TYPE` when the code is null.
    pub fn type_code(&self) -> String {
        match &self.code {
            Some(code) => format!("{}:{}", self.error_type, code),
            None => self.error_type.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalStatus {
    pub value: SignalState,
    pub error: Option<SignalError>,
}

/// One signal as the API reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Lowercase-hyphen code, `<group>-<name>` (`location-preciselocation`).
    pub code: String,
    pub name: Option<String>,
    pub group: Option<String>,
    pub status: SignalStatus,
    /// The value as sent; its shape depends on the signal. `Null` when the signal failed.
    pub body: Value,
    /// When Smartcar retrieved the value (`meta.retrievedAt`).
    pub retrieved_at: Option<jiff::Timestamp>,
    /// When the vehicle recorded it (`meta.oemUpdatedAt`).
    pub oem_updated_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub ingested_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub fetched_at: Option<jiff::Timestamp>,
}

impl Signal {
    pub fn is_success(&self) -> bool {
        self.status.value == SignalState::Success
    }

    /// `body.value` when the signal carries a single value (booleans, numbers).
    pub fn value(&self) -> Option<&Value> {
        self.body.get("value")
    }
}

/// One signals request as evidence: the response meta and every signal it carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalsReport {
    pub request: Meta,
    pub signals: Vec<Signal>,
}

impl SignalsReport {
    pub fn signal(&self, code: &str) -> Option<&Signal> {
        self.signals.iter().find(|s| s.code == code)
    }
}

/// `GET /v3/vehicles/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V3Vehicle {
    pub id: String,
    pub make: Option<String>,
    pub model: Option<String>,
    pub year: Option<u16>,
    pub mode: Option<String>,
    pub powertrain_type: Option<String>,
}

/// The resource itself: the value of `data` when the answer is wrapped, else the answer.
pub fn unwrap_data(body: &Value) -> &Value {
    match body.get("data") {
        Some(inner) if inner.is_object() || inner.is_array() => inner,
        _ => body,
    }
}

pub(super) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A model year sent as a number or as a string.
pub(super) fn year(v: Option<&Value>) -> Option<u16> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|y| u16::try_from(y).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Below this an epoch number is seconds, not milliseconds (10^11 ms is 1973; 10^11 s is year 5138).
const SECONDS_BELOW: f64 = 1e11;

/// An instant sent as epoch milliseconds, epoch seconds (REST examples show 10 digits) or ISO 8601.
pub fn instant(v: Option<&Value>) -> Option<jiff::Timestamp> {
    match v? {
        Value::Number(n) => {
            let x = n.as_f64().filter(|x| x.is_finite() && *x >= 0.0)?;
            let ms = if x < SECONDS_BELOW { x * 1000.0 } else { x };
            if ms > i64::MAX as f64 {
                return None;
            }
            jiff::Timestamp::from_millisecond(ms as i64).ok()
        }
        Value::String(s) => {
            let s = s.trim();
            s.parse::<jiff::Timestamp>()
                .ok()
                .or_else(|| instant(Some(&Value::from(s.parse::<f64>().ok()?))))
        }
        _ => None,
    }
}

/// Reads one signal: JSON:API `{attributes{code,…}, meta{…}}` or the flat `{code, …, meta}` of webhooks.
/// `None` without a code.
pub fn parse_signal(item: &Value) -> Option<Signal> {
    let attributes = item
        .get("attributes")
        .filter(|a| a.is_object())
        .unwrap_or(item);
    let field = |key: &str| attributes.get(key).or_else(|| item.get(key));
    let code = text(field("code")).filter(|c| !c.is_empty())?;
    let status = field("status");
    let error = status
        .and_then(|s| s.get("error"))
        .filter(|e| e.is_object());
    let state = status
        .and_then(|s| text(s.get("value")))
        .map(|v| SignalState::parse(&v))
        .unwrap_or(if error.is_some() {
            SignalState::Error
        } else {
            SignalState::Other(String::new())
        });
    let error = error.map(|e| SignalError {
        error_type: ErrorType::parse(&text(e.get("type")).unwrap_or_default()),
        code: text(e.get("code")).map(|c| ErrorCode::parse(&c)),
    });
    let meta = item.get("meta").or_else(|| attributes.get("meta"));
    let at = |key: &str| instant(meta.and_then(|m| m.get(key)));
    Some(Signal {
        code,
        name: text(field("name")),
        group: text(field("group")),
        status: SignalStatus {
            value: state,
            error,
        },
        body: field("body").cloned().unwrap_or(Value::Null),
        retrieved_at: at("retrievedAt"),
        oem_updated_at: at("oemUpdatedAt"),
        ingested_at: at("ingestedAt"),
        fetched_at: at("fetchedAt"),
    })
}

/// Every signal of a `/signals` answer (`data: [...]` or a bare array); `None` when there is no list.
/// Entries without a code are skipped.
pub fn parse_signals(body: &Value) -> Option<Vec<Signal>> {
    let list = unwrap_data(body).as_array()?;
    Some(list.iter().filter_map(parse_signal).collect())
}

/// A vehicle (`data`-wrapped or bare); `None` without an id.
pub fn parse_vehicle(body: &Value) -> Option<V3Vehicle> {
    let resource = unwrap_data(body);
    let attributes = resource
        .get("attributes")
        .filter(|a| a.is_object())
        .unwrap_or(resource);
    let field = |key: &str| attributes.get(key).or_else(|| resource.get(key));
    Some(V3Vehicle {
        id: text(resource.get("id")).filter(|id| !id.is_empty())?,
        make: text(field("make")),
        model: text(field("model")),
        year: year(field("year")),
        mode: text(field("mode")),
        powertrain_type: text(field("powertrainType")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_list_example_parses_with_second_timestamps() {
        let body = json!({"data":[{"id":"x","type":"signal",
            "attributes":{"code":"charge-voltage","name":"Voltage","group":"Charge",
                          "status":{"value":"SUCCESS"},"body":{"unit":"volts","value":85}},
            "meta":{"retrievedAt":1696156800,"oemUpdatedAt":1696156799}}],
            "meta":{"page":1,"pageSize":10,"totalCount":5}});
        let signals = parse_signals(&body).unwrap();
        assert_eq!(signals.len(), 1);
        let s = &signals[0];
        assert_eq!(s.code, "charge-voltage");
        assert!(s.is_success());
        assert_eq!(s.value(), Some(&json!(85)));
        assert_eq!(s.retrieved_at.unwrap().as_second(), 1_696_156_800);
        assert_eq!(s.oem_updated_at.unwrap().as_second(), 1_696_156_799);
    }

    #[test]
    fn a_webhook_style_error_signal_with_millisecond_times_and_null_code_parses() {
        let item = json!({"code":"location-isathome","name":"IsAtHome","group":"Location",
            "status":{"error":{"code":null,"type":"PERMISSION"},"value":"ERROR"},
            "meta":{"retrievedAt":1758668712404_u64,"ingestedAt":"2025-09-23T23:05:12Z"}});
        let s = parse_signal(&item).unwrap();
        assert_eq!(s.status.value, SignalState::Error);
        let e = s.status.error.unwrap();
        assert_eq!(e.error_type, ErrorType::Permission);
        assert_eq!(e.code, None);
        assert_eq!(s.retrieved_at.unwrap().as_millisecond(), 1_758_668_712_404);
        assert!(s.ingested_at.is_some());
        assert_eq!(s.body, Value::Null);
    }

    #[test]
    fn an_unknown_status_is_kept_and_a_signal_without_code_is_skipped() {
        let body = json!([{"code":"a-b","status":{"value":"PENDING"}}, {"status":{}}, 7]);
        let signals = parse_signals(&body).unwrap();
        assert_eq!(signals.len(), 1);
        assert_eq!(
            signals[0].status.value,
            SignalState::Other("PENDING".into())
        );
        assert!(parse_signals(&json!({"data": "nope"})).is_none());
    }

    #[test]
    fn a_vehicle_wrapped_or_bare_with_a_string_year_parses() {
        let wrapped = json!({"data":{"id":"v1","type":"vehicle","attributes":{"make":"TESLA","model":"Model 3","year":"2021","powertrainType":"BEV","mode":"live"}}});
        let bare = json!({"id":"v1","make":"TESLA","model":"Model 3","year":2021,"powertrainType":"BEV","mode":"live"});
        assert_eq!(parse_vehicle(&wrapped), parse_vehicle(&bare));
        assert_eq!(parse_vehicle(&bare).unwrap().year, Some(2021));
        assert!(parse_vehicle(&json!({"data":{"attributes":{}}})).is_none());
    }

    #[test]
    fn absurd_timestamps_are_dropped_not_panicked_on() {
        assert!(instant(Some(&json!(-5))).is_none());
        assert!(instant(Some(&json!(1e300))).is_none());
        assert!(instant(Some(&json!("yesterday"))).is_none());
        assert_eq!(
            instant(Some(&json!("1700000000"))).unwrap().as_second(),
            1_700_000_000
        );
    }
}
