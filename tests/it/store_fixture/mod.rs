//! Builds fleets, probe reports and a simple diagnoser for the store's tests and benches.
#![allow(dead_code)]

use std::sync::Arc;

use jiff::Timestamp;
use vtriage::fetch::{ConnectionInfo, Event};
use vtriage::health::{Diagnosis, Finding, Remedy, RemedyKind, Severity, Status};
use vtriage::smartcar::{
    Answer, ApiError, Connection, DataKind, ErrorCode, ErrorType, Meta, Observation, Probe,
    ProbeReport, SmartcarError, VehicleAttributes,
};
use vtriage::store::{Diagnoser, Store};

pub fn t(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

pub fn now() -> Timestamp {
    t("2026-11-27T12:00:00Z")
}

fn finding(id: &str, severity: Severity, rule: Option<&str>) -> Finding {
    Finding {
        id: id.to_string(),
        severity,
        title: format!("{id} title"),
        rule: rule.map(str::to_string),
        since: None,
        evidence: Vec::new(),
        remedy: Remedy {
            kind: RemedyKind::RetryLater,
            action: "wait".into(),
            link: None,
            customer_reply: "please wait".into(),
            retry_after_s: None,
        },
    }
}

/// BLOCKED on a virtual-key error, DEGRADED on any other error, UNKNOWN "no access token"
/// without a token, UNKNOWN when nothing was observed, HEALTHY otherwise.
pub fn diagnose(report: &ProbeReport, _now: Timestamp) -> Diagnosis {
    let checked_at = report.observations.iter().map(|o| o.at).max();
    if !report.has_token {
        return Diagnosis {
            status: Status::Unknown,
            findings: vec![finding("no-access-token", Severity::Info, None)],
            checked_at,
        };
    }
    if report.observations.is_empty() {
        return Diagnosis::unknown();
    }
    let mut findings = Vec::new();
    for o in &report.observations {
        if let Some(e) = o.error() {
            let vk = e
                .smartcar()
                .is_some_and(|s| s.code == Some(ErrorCode::VirtualKeyRequired));
            if vk {
                findings.push(finding(
                    "virtual-key-missing",
                    Severity::Blocked,
                    Some("tesla-virtual-key"),
                ));
            } else {
                findings.push(finding("data-unavailable", Severity::Degraded, None));
            }
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let status = findings
        .first()
        .map_or(Status::Healthy, |f| Status::from_severity(f.severity));
    Diagnosis {
        status,
        findings,
        checked_at,
    }
}

pub fn diagnoser() -> Diagnoser {
    Arc::new(diagnose)
}

pub fn connection(vehicle_id: &str, user_id: &str, has_token: bool) -> ConnectionInfo {
    ConnectionInfo {
        connection: Connection {
            user_id: user_id.to_string(),
            vehicle_id: vehicle_id.to_string(),
            connected_at: Some("2025-01-01T00:00:00Z".into()),
            mode: None,
        },
        has_token,
        other_users: Vec::new(),
        attributes: None,
    }
}

pub fn listed(connections: Vec<ConnectionInfo>) -> Event {
    Event::ConnectionsListed { connections }
}

/// How a probe of a vehicle went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    VirtualKeyRequired,
    Asleep,
}

pub fn observation(vehicle_id: &str, outcome: Outcome, at: Timestamp) -> Observation {
    let result = match outcome {
        Outcome::Ok => Ok(Answer::Data {
            body: serde_json::json!({"distance": 12345.6}),
        }),
        Outcome::VirtualKeyRequired => Err(smartcar_error(
            400,
            ErrorType::ConnectedServicesAccount,
            ErrorCode::VirtualKeyRequired,
        )),
        Outcome::Asleep => Err(smartcar_error(
            409,
            ErrorType::VehicleState,
            ErrorCode::Asleep,
        )),
    };
    Observation {
        probe: Probe::Data(DataKind::Odometer),
        endpoint: format!("POST /v2.0/vehicles/{vehicle_id}/batch /odometer"),
        at,
        meta: Meta {
            status: 200,
            request_id: Some(format!("req-{vehicle_id}")),
            ..Meta::default()
        },
        outcome: result,
    }
}

fn smartcar_error(status: u16, error_type: ErrorType, code: ErrorCode) -> ApiError {
    ApiError::Smartcar(Box::new(SmartcarError {
        status,
        error_type,
        code: Some(code),
        description: "test error".into(),
        doc_url: None,
        request_id: Some("req".into()),
        resolution: None,
        suggested_user_message: None,
        detail: None,
        retry_after_s: None,
    }))
}

pub fn attributes(vehicle_id: &str, make: &str, model: &str, year: u16) -> VehicleAttributes {
    VehicleAttributes {
        id: vehicle_id.to_string(),
        make: make.to_string(),
        model: model.to_string(),
        year,
    }
}

pub fn report(
    vehicle_id: &str,
    user_id: &str,
    attrs: Option<VehicleAttributes>,
    vin: Option<&str>,
    outcome: Outcome,
    at: Timestamp,
) -> ProbeReport {
    ProbeReport {
        vehicle_id: vehicle_id.to_string(),
        user_id: Some(user_id.to_string()),
        has_token: true,
        attributes: attrs,
        vin: vin.map(str::to_string),
        observations: vec![observation(vehicle_id, outcome, at)],
    }
}

pub fn observed(report: ProbeReport) -> Event {
    Event::Observed { report }
}

/// `vehicle_id` probed with `outcome`, answered and applied at `at`; whether anything changed.
pub fn probe(
    store: &mut Store,
    vehicle_id: &str,
    user_id: &str,
    outcome: Outcome,
    at: Timestamp,
) -> bool {
    vtriage::feed::apply(
        store,
        &observed(report(vehicle_id, user_id, None, None, outcome, at)),
        at,
    )
}

/// One vehicle of a small named fleet used across tests.
pub struct Car {
    pub id: &'static str,
    pub user: &'static str,
    pub make: &'static str,
    pub model: &'static str,
    pub year: u16,
    pub vin: &'static str,
    pub outcome: Option<Outcome>,
    pub has_token: bool,
}

/// Six vehicles: blocked and healthy Teslas, a degraded Ford, an unchecked BMW, a vehicle
/// without a token, and a healthy old Model S.
pub const FLEET: [Car; 6] = [
    Car {
        id: "veh-a",
        user: "user-1",
        make: "TESLA",
        model: "Model 3",
        year: 2021,
        vin: "5YJ3E1EA7KF000001",
        outcome: Some(Outcome::VirtualKeyRequired),
        has_token: true,
    },
    Car {
        id: "veh-b",
        user: "user-1",
        make: "TESLA",
        model: "Model Y",
        year: 2023,
        vin: "7SAYGDEE0PF000002",
        outcome: Some(Outcome::Ok),
        has_token: true,
    },
    Car {
        id: "veh-c",
        user: "user-2",
        make: "FORD",
        model: "Mustang Mach-E",
        year: 2022,
        vin: "3FMTK1SS0NM000003",
        outcome: Some(Outcome::Asleep),
        has_token: true,
    },
    Car {
        id: "veh-d",
        user: "user-3",
        make: "BMW",
        model: "i4",
        year: 2020,
        vin: "WBY73AW00PF000004",
        outcome: None,
        has_token: true,
    },
    Car {
        id: "veh-e",
        user: "user-4",
        make: "VOLKSWAGEN",
        model: "ID.4",
        year: 2019,
        vin: "1V2GNPE80PC000005",
        outcome: None,
        has_token: false,
    },
    Car {
        id: "veh-f",
        user: "user-5",
        make: "TESLA",
        model: "Model S",
        year: 2019,
        vin: "5YJSA1E20KF000006",
        outcome: Some(Outcome::Ok),
        has_token: true,
    },
];

/// A store holding [`FLEET`]: listed, then each car with an outcome probed once.
pub fn fleet_store() -> Store {
    let mut store = Store::new(diagnoser());
    vtriage::feed::apply(
        &mut store,
        &listed(
            FLEET
                .iter()
                .map(|c| connection(c.id, c.user, c.has_token))
                .collect(),
        ),
        now(),
    );
    for c in &FLEET {
        if let Some(outcome) = c.outcome {
            let r = report(
                c.id,
                c.user,
                Some(attributes(c.id, c.make, c.model, c.year)),
                Some(c.vin),
                outcome,
                now(),
            );
            vtriage::feed::apply(&mut store, &observed(r), now());
        }
    }
    store
}

pub fn ids(store: &Store) -> Vec<String> {
    store.visible_ids(0..store.visible_len())
}
