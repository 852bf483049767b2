//! Probe reports of a few situations at a fixed instant, for the report snapshots.

use serde_json::json;

use crate::health::{Diagnosis, Needs, Policies, diagnose};
use crate::smartcar::error::parse_error_body;
use crate::smartcar::{
    Answer, ApiError, DataKind, Meta, Observation, Probe, ProbeReport, TeslaUserAccess,
    VehicleAttributes,
};

pub const NOW: &str = "2026-11-27T19:00:00Z";

pub fn now() -> jiff::Timestamp {
    NOW.parse().expect("fixed now")
}

fn at() -> jiff::Timestamp {
    "2026-11-27T18:58:30Z".parse().expect("fixed time")
}

fn obs(id: &str, probe: Probe, outcome: Result<Answer, ApiError>, request_id: &str) -> Observation {
    let endpoint = probe.endpoint(id, true);
    let status = outcome
        .as_ref()
        .err()
        .and_then(ApiError::status)
        .unwrap_or(200);
    let data_age =
        matches!(probe, Probe::Data(_)).then(|| "2026-11-27T18:40:00Z".parse().expect("age"));
    Observation {
        probe,
        endpoint,
        at: at(),
        meta: Meta {
            status,
            request_id: Some(request_id.into()),
            data_age,
            ..Meta::default()
        },
        outcome,
    }
}

fn v2(
    status: u16,
    ty: &str,
    code: Option<&str>,
    resolution: serde_json::Value,
    msg: Option<&str>,
    rid: &str,
) -> ApiError {
    let body = json!({
        "type": ty, "code": code, "description": "The request failed | with a pipe.",
        "docURL": "https://smartcar.com/docs/errors/api-errors", "statusCode": status, "requestId": rid,
        "resolution": resolution, "suggestedUserMessage": msg,
    });
    parse_error_body(
        status,
        Some("application/json"),
        None,
        None,
        body.to_string().as_bytes(),
    )
}

fn report(
    id: &str,
    user: &str,
    make: &str,
    model: &str,
    year: u16,
    vin: &str,
    obs: Vec<Observation>,
) -> ProbeReport {
    ProbeReport {
        vehicle_id: id.into(),
        user_id: Some(user.into()),
        has_token: true,
        attributes: Some(VehicleAttributes {
            id: id.into(),
            make: make.into(),
            model: model.into(),
            year,
        }),
        vin: Some(vin.into()),
        observations: obs,
    }
}

/// A Tesla without its virtual key, a Tesla missing the location scope, a healthy Ford, a user without token.
pub fn fleet() -> Vec<(ProbeReport, Diagnosis)> {
    let vk = |rid: &str| {
        v2(
            400,
            "CONNECTED_SERVICES_ACCOUNT",
            Some("VIRTUAL_KEY_REQUIRED"),
            json!({"type": "ACTION_REQUIRED", "url": "https://www.tesla.com/_ak/smartcar.com"}),
            Some(
                "In order to perform this request you'll need to add a Third-Party Virtual key to your vehicle.",
            ),
            rid,
        )
    };
    let perms = |id: &str| {
        obs(
            id,
            Probe::Permissions,
            Ok(Answer::Permissions {
                permissions: vec![
                    "read_vehicle_info".into(),
                    "read_location".into(),
                    "read_odometer".into(),
                ],
            }),
            "rq-perm",
        )
    };
    let access = |id: &str, location: bool| {
        let mut p = vec!["vehicle_device_data".to_string()];
        if location {
            p.push("vehicle_location".into());
        }
        obs(
            id,
            Probe::TeslaUserAccess,
            Ok(Answer::TeslaUserAccess(TeslaUserAccess {
                access_type: Some("OWNER".into()),
                permissions: Some(p),
            })),
            "rq-access",
        )
    };
    let data_ok = |id: &str, kind| {
        obs(
            id,
            Probe::Data(kind),
            Ok(Answer::Data { body: json!({}) }),
            "rq-data",
        )
    };
    let reports = vec![
        report(
            "7c1e0f3a-vk",
            "user-ann",
            "TESLA",
            "Model Y",
            2022,
            "7SAYGDEE1NF000001",
            vec![
                perms("7c1e0f3a-vk"),
                obs(
                    "7c1e0f3a-vk",
                    Probe::VirtualKey,
                    Ok(Answer::VirtualKey { is_paired: false }),
                    "rq-vk",
                ),
                access("7c1e0f3a-vk", true),
                obs(
                    "7c1e0f3a-vk",
                    Probe::Data(DataKind::Location),
                    Err(vk("rq-loc-1")),
                    "rq-loc-1",
                ),
                obs(
                    "7c1e0f3a-vk",
                    Probe::Data(DataKind::Odometer),
                    Err(vk("rq-odo-1")),
                    "rq-odo-1",
                ),
            ],
        ),
        report(
            "b2d4-loc",
            "user-bob, \"the\" driver",
            "TESLA",
            "Model 3",
            2021,
            "5YJ3E1EA7KF000002",
            vec![
                perms("b2d4-loc"),
                obs(
                    "b2d4-loc",
                    Probe::VirtualKey,
                    Ok(Answer::VirtualKey { is_paired: true }),
                    "rq-vk2",
                ),
                access("b2d4-loc", false),
                obs(
                    "b2d4-loc",
                    Probe::Data(DataKind::Location),
                    Err(v2(
                        403,
                        "PERMISSION",
                        None,
                        json!({"type": "REAUTHENTICATE"}),
                        None,
                        "rq-loc-2",
                    )),
                    "rq-loc-2",
                ),
                data_ok("b2d4-loc", DataKind::Odometer),
            ],
        ),
        report(
            "f00d-ok",
            "user-cy",
            "FORD",
            "Mustang Mach-E",
            2023,
            "3FMTK3SU5PMA00003",
            vec![
                perms("f00d-ok"),
                data_ok("f00d-ok", DataKind::Location),
                data_ok("f00d-ok", DataKind::Odometer),
            ],
        ),
        ProbeReport {
            vehicle_id: "9999-notoken".into(),
            user_id: Some("user-dee".into()),
            ..ProbeReport::default()
        },
    ];
    let policies = Policies::builtin();
    let needs = Needs {
        client_id: Some("my-client-id".into()),
        ..Needs::default()
    };
    reports
        .into_iter()
        .map(|r| {
            let d = diagnose(&r, &policies, &needs, now());
            (r, d)
        })
        .collect()
}
