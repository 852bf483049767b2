//! How long diagnosis takes per vehicle: it runs for every probe result of a 100k-vehicle fleet.

use serde_json::json;
use vtriage::health::{Needs, Policies, diagnose};
use vtriage::smartcar::error::parse_error_body;
use vtriage::smartcar::{
    Answer, ApiError, DataKind, Meta, Observation, Probe, ProbeReport, TeslaUserAccess,
    VehicleAttributes,
};

fn main() {
    divan::main();
}

fn now() -> jiff::Timestamp {
    "2026-11-27T19:00:00Z".parse().expect("fixed now")
}

fn obs(probe: Probe, outcome: Result<Answer, ApiError>) -> Observation {
    Observation {
        probe,
        endpoint: probe.endpoint("v", false),
        at: now(),
        meta: Meta {
            status: 200,
            request_id: Some("rq".into()),
            data_age: Some("2026-11-27T18:50:00Z".parse().expect("age")),
            ..Meta::default()
        },
        outcome,
    }
}

fn err(status: u16, ty: &str, code: Option<&str>) -> ApiError {
    let body = json!({"type": ty, "code": code, "description": "d", "docURL": "u", "statusCode": status,
        "requestId": "r", "resolution": {"type": "ACTION_REQUIRED", "url": "https://www.tesla.com/_ak/smartcar.com"},
        "suggestedUserMessage": "m"});
    parse_error_body(
        status,
        Some("application/json"),
        None,
        None,
        body.to_string().as_bytes(),
    )
}

fn tesla(data: Result<Answer, ApiError>, paired: bool) -> ProbeReport {
    ProbeReport {
        vehicle_id: "v".into(),
        user_id: Some("u".into()),
        has_token: true,
        attributes: Some(VehicleAttributes {
            id: "v".into(),
            make: "TESLA".into(),
            model: "Model 3".into(),
            year: 2022,
        }),
        vin: None,
        observations: vec![
            obs(
                Probe::Permissions,
                Ok(Answer::Permissions {
                    permissions: vec!["read_location".into(), "read_odometer".into()],
                }),
            ),
            obs(
                Probe::VirtualKey,
                Ok(Answer::VirtualKey { is_paired: paired }),
            ),
            obs(
                Probe::TeslaUserAccess,
                Ok(Answer::TeslaUserAccess(TeslaUserAccess {
                    access_type: Some("OWNER".into()),
                    permissions: Some(vec![
                        "vehicle_device_data".into(),
                        "vehicle_location".into(),
                    ]),
                })),
            ),
            obs(Probe::Data(DataKind::Location), data.clone()),
            obs(Probe::Data(DataKind::Odometer), data),
        ],
    }
}

#[divan::bench]
fn healthy_tesla(bencher: divan::Bencher) {
    let (p, n, r) = (
        Policies::builtin(),
        Needs::default(),
        tesla(Ok(Answer::Data { body: json!({}) }), true),
    );
    bencher.bench(|| diagnose(divan::black_box(&r), &p, &n, now()));
}

#[divan::bench]
fn tesla_without_virtual_key(bencher: divan::Bencher) {
    let (p, n) = (Policies::builtin(), Needs::default());
    let r = tesla(
        Err(err(
            400,
            "CONNECTED_SERVICES_ACCOUNT",
            Some("VIRTUAL_KEY_REQUIRED"),
        )),
        false,
    );
    bencher.bench(|| diagnose(divan::black_box(&r), &p, &n, now()));
}

#[divan::bench]
fn vehicle_asleep(bencher: divan::Bencher) {
    let (p, n) = (Policies::builtin(), Needs::default());
    let r = tesla(Err(err(409, "VEHICLE_STATE", Some("ASLEEP"))), true);
    bencher.bench(|| diagnose(divan::black_box(&r), &p, &n, now()));
}
