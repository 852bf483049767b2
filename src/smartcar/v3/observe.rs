//! API v3 evidence as the observations diagnosis reads: each signal of a `/signals` answer, the
//! connection's permissions and a failed request become the `Observation` that asks the same
//! question in v2.0 terms, so diagnosis never needs to know which API answered. Pure: no I/O.

use serde_json::{Value, json};

use crate::smartcar::error::{ApiError, ErrorType, SmartcarError};
use crate::smartcar::model::{DataKind, Meta, TeslaUserAccess};
use crate::smartcar::observation::{Answer, Observation, Probe};

use super::signals::{Signal, SignalsReport};
use super::{TokenError, V3Error};

/// The virtual-key pairing state of the vehicle.
pub const DIGITAL_KEY_PAIRED: &str = "connectivitystatus-isdigitalkeypaired";
/// The OEM-side scopes the owner granted (Tesla's `vehicle_location`, …).
pub const USER_ACCOUNT_PERMISSIONS: &str = "vehicleuseraccount-permissions";
/// Tesla's `atHome`.
pub const IS_AT_HOME: &str = "location-isathome";
/// Whether the vehicle has a mobile connection.
pub const IS_ONLINE: &str = "connectivitystatus-isonline";
/// Whether the vehicle is in its low-power state.
pub const IS_ASLEEP: &str = "connectivitystatus-isasleep";

/// What the probe asked for: which data the app depends on, and what is known of the make.
#[derive(Debug, Clone, Copy)]
pub struct SignalQuestions<'a> {
    /// Data signals to read (the VIN is always read).
    pub data: &'a [DataKind],
    /// Read `location-isathome` as Tesla's `atHome`.
    pub at_home: bool,
    /// `Some(false)` for a make known not to be a Tesla: Tesla-only signals are then left out.
    pub is_tesla: Option<bool>,
}

/// `GET /v3/vehicles/ID/signals location-preciselocation`: the request and the signal in it.
pub fn signal_endpoint(vehicle_id: &str, code: &str) -> String {
    format!("GET /v3/vehicles/{vehicle_id}/signals {code}")
}

/// The HTTP status Smartcar's error table gives a type; a signal's error has no status of its own.
fn status_of(error_type: &ErrorType) -> u16 {
    match error_type {
        ErrorType::ConnectedServicesAccount | ErrorType::Validation => 400,
        ErrorType::Authentication => 401,
        ErrorType::Permission => 403,
        ErrorType::ResourceNotFound => 404,
        ErrorType::VehicleState => 409,
        ErrorType::RateLimit => 429,
        ErrorType::Billing => 430,
        ErrorType::Compatibility => 501,
        ErrorType::Upstream => 502,
        ErrorType::Server => 500,
        ErrorType::Other(_) => 0,
    }
}

/// A signal's own error as the error a v2.0 request would have answered with. Its `status` stays
/// the signals request's (200): the request succeeded and this one signal did not, which evidence
/// shows as `ERROR TYPE:CODE`.
fn signal_error(signal: &Signal, request: &Meta) -> ApiError {
    let (error_type, code) = match &signal.status.error {
        Some(e) => (e.error_type.clone(), e.code.clone()),
        None => (
            ErrorType::Other(signal.status.value.as_str().to_string()),
            None,
        ),
    };
    let typical = status_of(&error_type);
    let mut e = SmartcarError::new(request.status, error_type, code);
    e.description = format!(
        "signal {} reported status {} (HTTP {} in v2.0 terms)",
        signal.code,
        signal.status.value.as_str(),
        typical
    );
    e.request_id = request.request_id.clone();
    ApiError::Smartcar(Box::new(e))
}

/// The observation of one signal under `probe`, with the answer `read` makes of its body.
fn observe(
    vehicle_id: &str,
    report: &SignalsReport,
    signal: &Signal,
    probe: Probe,
    at: jiff::Timestamp,
    read: impl FnOnce(&Signal) -> Option<Answer>,
) -> Observation {
    let meta = Meta {
        data_age: signal.oem_updated_at,
        fetched_at: signal.retrieved_at.or(report.request.fetched_at),
        ..report.request.clone()
    };
    let outcome = if signal.is_success() {
        read(signal).ok_or_else(|| ApiError::Body {
            status: report.request.status,
            problem: crate::smartcar::BodyProblem::UnexpectedShape,
            content_type: Some("application/json".into()),
            request_id: report.request.request_id.clone(),
            snippet: signal.body.to_string().chars().take(200).collect(),
        })
    } else {
        Err(signal_error(signal, &report.request))
    };
    Observation {
        probe,
        endpoint: signal_endpoint(vehicle_id, &signal.code),
        at,
        meta,
        outcome,
    }
}

/// A data signal's body in the shape the v2.0 endpoint answered with, so views and exports read one form.
fn data_body(kind: DataKind, signal: &Signal) -> Option<Value> {
    let body = &signal.body;
    let value = body.get("value");
    Some(match kind {
        DataKind::Vin => json!({"vin": value?.as_str()?}),
        DataKind::Odometer => json!({"distance": value?.as_f64()?, "unit": body.get("unit")}),
        DataKind::Battery => json!({"percentRemaining": value?.as_f64()? / 100.0}),
        DataKind::Fuel => json!({"percentRemaining": value?.as_f64()? / 100.0}),
        _ if body.is_object() => body.clone(),
        _ => return None,
    })
}

/// Every observation a signals answer holds for the questions asked, in a stable order: the data
/// the app needs, the VIN, then the virtual key, Tesla-side access and `atHome`.
pub fn observations(
    vehicle_id: &str,
    report: &SignalsReport,
    asked: SignalQuestions<'_>,
    at: jiff::Timestamp,
) -> Vec<Observation> {
    let mut out = Vec::new();
    let mut kinds: Vec<DataKind> = asked.data.to_vec();
    if !kinds.contains(&DataKind::Vin) {
        kinds.push(DataKind::Vin);
    }
    for kind in kinds {
        let Some(signal) = kind.signal_code().and_then(|c| report.signal(c)) else {
            continue;
        };
        out.push(observe(
            vehicle_id,
            report,
            signal,
            Probe::Data(kind),
            at,
            |s| data_body(kind, s).map(|body| Answer::Data { body }),
        ));
    }
    out.extend(connectivity(vehicle_id, report, at));
    if asked.is_tesla == Some(false) {
        return out;
    }
    if let Some(s) = report.signal(DIGITAL_KEY_PAIRED) {
        out.push(observe(vehicle_id, report, s, Probe::VirtualKey, at, |s| {
            let is_paired = s.value()?.as_bool()?;
            Some(Answer::VirtualKey { is_paired })
        }));
    }
    if let Some(s) = report.signal(USER_ACCOUNT_PERMISSIONS) {
        out.push(observe(
            vehicle_id,
            report,
            s,
            Probe::TeslaUserAccess,
            at,
            |s| {
                let values = s.body.get("values")?.as_array()?;
                let permissions = values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                Some(Answer::TeslaUserAccess(TeslaUserAccess {
                    access_type: None,
                    permissions: Some(permissions),
                }))
            },
        ));
    }
    if asked.at_home
        && let Some(s) = report.signal(IS_AT_HOME)
    {
        out.push(observe(
            vehicle_id,
            report,
            s,
            Probe::TeslaAttributes,
            at,
            |s| {
                Some(Answer::TeslaAttributes {
                    at_home: Some(s.value()?.as_bool()?),
                })
            },
        ));
    }
    out
}

/// `connectivitystatus-isonline` and `-isasleep` as one observation. A make that cannot report them
/// (`COMPATIBILITY`) says nothing; when neither could be read, the first error is the evidence.
fn connectivity(
    vehicle_id: &str,
    report: &SignalsReport,
    at: jiff::Timestamp,
) -> Option<Observation> {
    let said: Vec<&Signal> = [IS_ONLINE, IS_ASLEEP]
        .into_iter()
        .filter_map(|code| report.signal(code))
        .filter(|s| {
            !s.status
                .error
                .as_ref()
                .is_some_and(|e| e.error_type == ErrorType::Compatibility)
        })
        .collect();
    let flag = |code: &str| {
        said.iter()
            .find(|s| s.code == code && s.is_success())
            .and_then(|s| s.value()?.as_bool())
    };
    let (online, asleep) = (flag(IS_ONLINE), flag(IS_ASLEEP));
    let first = said.first()?;
    let mut o = if online.is_none() && asleep.is_none() {
        observe(vehicle_id, report, first, Probe::Connectivity, at, |_| None)
    } else {
        let answered = said.iter().find(|s| s.is_success()).unwrap_or(first);
        observe(
            vehicle_id,
            report,
            answered,
            Probe::Connectivity,
            at,
            |_| Some(Answer::Connectivity { online, asleep }),
        )
    };
    let codes: Vec<&str> = said.iter().map(|s| s.code.as_str()).collect();
    o.endpoint = signal_endpoint(vehicle_id, &codes.join(" "));
    Some(o)
}

/// The Smartcar-side permissions `/v3/connections` listed for the vehicle: the answer v2.0's
/// `/permissions` gave, without a request of its own.
pub fn permissions_observation(
    vehicle_id: &str,
    permissions: &[String],
    listed_at: jiff::Timestamp,
) -> Observation {
    Observation {
        probe: Probe::Permissions,
        endpoint: format!("GET /v3/connections (vehicle {vehicle_id})"),
        at: listed_at,
        meta: Meta {
            status: 200,
            ..Meta::default()
        },
        outcome: Ok(Answer::Permissions {
            permissions: permissions.to_vec(),
        }),
    }
}

/// A signals request that failed as a whole: one observation carrying its error. A failure to get
/// the application token is the app's problem, never the vehicle's: it reads as a request not sent,
/// not as the vehicle's `AUTHENTICATION`.
pub fn request_failed(vehicle_id: &str, error: &V3Error, at: jiff::Timestamp) -> Observation {
    let (meta, error) = match error {
        V3Error::Api { meta, error } => (meta.as_ref().clone(), error.as_ref().clone()),
        V3Error::Token(TokenError::Unreachable(inner)) => (Meta::default(), inner.as_ref().clone()),
        V3Error::TokenUnsettled { meta, error, why } => (
            meta.as_ref().clone(),
            ApiError::TokenUnsettled {
                status: error.status().unwrap_or(401),
                request_id: error.request_id().map(str::to_string),
                reason: why.clone(),
            },
        ),
        other => (
            Meta::default(),
            ApiError::Unsendable {
                message: other.to_string(),
            },
        ),
    };
    Observation {
        probe: Probe::Signals,
        endpoint: Probe::Signals.endpoint(vehicle_id, false),
        at,
        meta,
        outcome: Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartcar::ErrorCode;
    use crate::smartcar::v3::parse_signals;

    const AT: jiff::Timestamp = jiff::Timestamp::UNIX_EPOCH;

    fn report(signals: Value) -> SignalsReport {
        SignalsReport {
            request: Meta {
                status: 200,
                request_id: Some("req-1".into()),
                ..Meta::default()
            },
            signals: parse_signals(&json!({ "data": signals })).expect("signals"),
        }
    }

    fn ok(code: &str, body: Value) -> Value {
        json!({"attributes": {"code": code, "status": {"value": "SUCCESS"}, "body": body},
               "meta": {"retrievedAt": 1_700_000_000_000_u64, "oemUpdatedAt": 1_699_999_000_000_u64}})
    }

    fn failed(code: &str, kind: &str, error_code: Value) -> Value {
        json!({"attributes": {"code": code,
               "status": {"value": "ERROR", "error": {"type": kind, "code": error_code}}}})
    }

    const ASKED: SignalQuestions<'static> = SignalQuestions {
        data: &[DataKind::Location, DataKind::Odometer],
        at_home: false,
        is_tesla: Some(true),
    };

    #[test]
    fn an_unpaired_digital_key_reads_as_the_virtual_key_answer() {
        let r = report(json!([ok(DIGITAL_KEY_PAIRED, json!({"value": false}))]));
        let o = observations("v1", &r, ASKED, AT);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].probe, Probe::VirtualKey);
        assert_eq!(
            o[0].answer(),
            Some(&Answer::VirtualKey { is_paired: false })
        );
        assert_eq!(
            o[0].endpoint,
            "GET /v3/vehicles/v1/signals connectivitystatus-isdigitalkeypaired"
        );
    }

    #[test]
    fn a_permission_error_on_precise_location_is_the_location_data_error_with_its_evidence() {
        let r = report(json!([failed(
            "location-preciselocation",
            "PERMISSION",
            Value::Null
        )]));
        let o = observations("v1", &r, ASKED, AT);
        assert_eq!(o[0].probe, Probe::Data(DataKind::Location));
        let e = o[0]
            .error()
            .and_then(ApiError::smartcar)
            .expect("smartcar error");
        assert_eq!(e.type_code(), "PERMISSION");
        assert_eq!(e.status, 200, "the request answered; the signal failed");
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn a_virtual_key_required_signal_error_keeps_type_and_code() {
        let r = report(json!([failed(
            "odometer-traveleddistance",
            "CONNECTED_SERVICES_ACCOUNT",
            json!("VIRTUAL_KEY_REQUIRED")
        )]));
        let o = observations("v1", &r, ASKED, AT);
        let e = o[0].error().and_then(ApiError::smartcar).expect("error");
        assert_eq!(e.code, Some(ErrorCode::VirtualKeyRequired));
        assert_eq!(o[0].probe, Probe::Data(DataKind::Odometer));
    }

    #[test]
    fn data_signals_take_the_v2_body_shape_and_the_oem_time_as_data_age() {
        let r = report(json!([
            ok(
                "odometer-traveleddistance",
                json!({"unit": "kilometers", "value": 50000})
            ),
            ok(
                "vehicleidentification-vin",
                json!({"value": "5YJ3E1EA7KF317000"})
            ),
        ]));
        let o = observations("v1", &r, ASKED, AT);
        assert_eq!(
            o[0].answer(),
            Some(&Answer::Data {
                body: json!({"distance": 50000.0, "unit": "kilometers"})
            })
        );
        assert_eq!(
            o[0].meta.data_age.map(|t| t.as_millisecond()),
            Some(1_699_999_000_000)
        );
        assert_eq!(o[1].probe, Probe::Data(DataKind::Vin));
        assert_eq!(
            o[1].answer(),
            Some(&Answer::Data {
                body: json!({"vin": "5YJ3E1EA7KF317000"})
            })
        );
    }

    #[test]
    fn tesla_user_account_scopes_and_at_home_read_as_the_tesla_answers() {
        let r = report(json!([
            ok(
                USER_ACCOUNT_PERMISSIONS,
                json!({"values": ["vehicle_device_data"]})
            ),
            ok(IS_AT_HOME, json!({"value": true})),
        ]));
        let asked = SignalQuestions {
            at_home: true,
            ..ASKED
        };
        let o = observations("v1", &r, asked, AT);
        let Some(Answer::TeslaUserAccess(access)) = o[0].answer() else {
            panic!("{o:?}")
        };
        assert!(!access.has_vehicle_location());
        assert_eq!(
            o[1].answer(),
            Some(&Answer::TeslaAttributes {
                at_home: Some(true)
            })
        );
    }

    #[test]
    fn a_known_non_tesla_gets_no_tesla_observations_and_unasked_data_is_left_out() {
        let r = report(json!([
            failed(
                DIGITAL_KEY_PAIRED,
                "COMPATIBILITY",
                json!("VEHICLE_NOT_CAPABLE")
            ),
            failed("tractionbattery-stateofcharge", "PERMISSION", Value::Null),
        ]));
        let asked = SignalQuestions {
            is_tesla: Some(false),
            ..ASKED
        };
        assert!(observations("v1", &r, asked, AT).is_empty());
    }

    #[test]
    fn a_success_with_an_unreadable_body_is_an_unexpected_shape_not_a_panic() {
        let r = report(json!([ok(DIGITAL_KEY_PAIRED, json!({"value": "yes"}))]));
        let o = observations("v1", &r, ASKED, AT);
        assert!(matches!(o[0].error(), Some(ApiError::Body { .. })));
    }

    #[test]
    fn online_and_asleep_signals_read_as_one_connectivity_answer_and_incapable_ones_say_nothing() {
        let r = report(json!([
            ok(IS_ONLINE, json!({"value": true})),
            ok(IS_ASLEEP, json!({"value": true})),
        ]));
        let o = observations("v1", &r, ASKED, AT);
        assert_eq!(o[0].probe, Probe::Connectivity);
        assert_eq!(
            o[0].answer(),
            Some(&Answer::Connectivity {
                online: Some(true),
                asleep: Some(true)
            })
        );
        assert_eq!(
            o[0].endpoint,
            "GET /v3/vehicles/v1/signals connectivitystatus-isonline connectivitystatus-isasleep"
        );
        let r = report(json!([failed(
            IS_ONLINE,
            "COMPATIBILITY",
            json!("VEHICLE_NOT_CAPABLE")
        )]));
        assert!(observations("v1", &r, ASKED, AT).is_empty());
    }

    #[test]
    fn an_app_token_failure_is_a_request_not_sent_never_the_vehicles_authentication() {
        let e = V3Error::Token(TokenError::InvalidClient {
            status: 401,
            description: String::new(),
        });
        let o = request_failed("v1", &e, AT);
        assert_eq!(o.probe, Probe::Signals);
        assert!(!o.is_token_rejected());
        assert!(matches!(o.error(), Some(ApiError::Unsendable { .. })));
    }

    #[test]
    fn connection_permissions_read_as_the_permissions_answer() {
        let o = permissions_observation("v1", &["read_location".into()], AT);
        assert_eq!(o.probe, Probe::Permissions);
        assert_eq!(
            o.answer(),
            Some(&Answer::Permissions {
                permissions: vec!["read_location".into()]
            })
        );
    }
}
