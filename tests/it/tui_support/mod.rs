//! A small fleet in known situations, diagnosed by the real rules at a fixed instant, for the dashboard tests.
#![allow(dead_code)]

use std::sync::Arc;

use jiff::Timestamp;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;
use vtriage::fetch::{Command, ConnectionInfo, Event, Priority, Progress};
use vtriage::health::{Needs, Policies, diagnose};
use vtriage::smartcar::error::parse_error_body;
use vtriage::smartcar::{
    Answer, ApiError, Connection, DataKind, Meta, Observation, Probe, ProbeReport, TeslaUserAccess,
    VehicleAttributes,
};
use vtriage::store::Store;
use vtriage::tui::app::{App, Effect, Msg, TuiConfig, update};
use vtriage::tui::{Theme, views};

pub const NOW: &str = "2026-11-27T19:00:00Z";

pub fn now() -> Timestamp {
    NOW.parse().expect("fixed now")
}

fn probed_at() -> Timestamp {
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
        at: probed_at(),
        meta: Meta {
            status,
            request_id: Some(request_id.into()),
            data_age,
            ..Meta::default()
        },
        outcome,
    }
}

fn api_error(
    status: u16,
    ty: &str,
    code: Option<&str>,
    resolution: serde_json::Value,
    rid: &str,
) -> ApiError {
    let body = json!({
        "type": ty, "code": code, "description": "The request failed.",
        "docURL": "https://smartcar.com/docs/errors/api-errors", "statusCode": status, "requestId": rid,
        "resolution": resolution,
    });
    parse_error_body(
        status,
        Some("application/json"),
        None,
        None,
        body.to_string().as_bytes(),
    )
}

fn virtual_key_required(rid: &str) -> ApiError {
    api_error(
        400,
        "CONNECTED_SERVICES_ACCOUNT",
        Some("VIRTUAL_KEY_REQUIRED"),
        json!({"type": "ACTION_REQUIRED", "url": "https://www.tesla.com/_ak/smartcar.com"}),
        rid,
    )
}

fn permissions(id: &str) -> Observation {
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
}

fn tesla_access(id: &str, location: bool) -> Observation {
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
}

fn data_ok(id: &str, kind: DataKind) -> Observation {
    obs(
        id,
        Probe::Data(kind),
        Ok(Answer::Data { body: json!({}) }),
        "rq-data",
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

fn token_expired(id: &str, probe: Probe) -> Observation {
    let error = api_error(401, "AUTHENTICATION", None, json!({"type": null}), "rq-401");
    obs(id, probe, Err(error), "rq-401")
}

/// The probed vehicles: a Tesla without its virtual key, a Tesla missing the location scope, an exempt
/// Model S, a healthy Ford.
pub fn reports() -> Vec<ProbeReport> {
    vec![
        report(
            "7c1e0f3a-vk",
            "user-ann",
            "TESLA",
            "Model Y",
            2022,
            "7SAYGDEE1NF000001",
            vec![
                permissions("7c1e0f3a-vk"),
                obs(
                    "7c1e0f3a-vk",
                    Probe::VirtualKey,
                    Ok(Answer::VirtualKey { is_paired: false }),
                    "rq-vk",
                ),
                tesla_access("7c1e0f3a-vk", true),
                obs(
                    "7c1e0f3a-vk",
                    Probe::Data(DataKind::Location),
                    Err(virtual_key_required("rq-loc-1")),
                    "rq-loc-1",
                ),
                obs(
                    "7c1e0f3a-vk",
                    Probe::Data(DataKind::Odometer),
                    Err(virtual_key_required("rq-odo-1")),
                    "rq-odo-1",
                ),
            ],
        ),
        report(
            "b2d4-loc",
            "user-bob",
            "TESLA",
            "Model 3",
            2021,
            "5YJ3E1EA7KF000002",
            vec![
                permissions("b2d4-loc"),
                obs(
                    "b2d4-loc",
                    Probe::VirtualKey,
                    Ok(Answer::VirtualKey { is_paired: true }),
                    "rq-vk2",
                ),
                tesla_access("b2d4-loc", false),
                obs(
                    "b2d4-loc",
                    Probe::Data(DataKind::Location),
                    Err(api_error(
                        403,
                        "PERMISSION",
                        None,
                        json!({"type": "REAUTHENTICATE"}),
                        "rq-loc-2",
                    )),
                    "rq-loc-2",
                ),
                data_ok("b2d4-loc", DataKind::Odometer),
            ],
        ),
        report(
            "5e11-exempt",
            "user-eve",
            "TESLA",
            "Model S",
            2019,
            "5YJSA1E2XKF000005",
            vec![
                permissions("5e11-exempt"),
                tesla_access("5e11-exempt", true),
                obs(
                    "5e11-exempt",
                    Probe::VirtualKey,
                    Ok(Answer::VirtualKey { is_paired: false }),
                    "rq-key",
                ),
                data_ok("5e11-exempt", DataKind::Location),
                data_ok("5e11-exempt", DataKind::Odometer),
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
                permissions("f00d-ok"),
                data_ok("f00d-ok", DataKind::Location),
                data_ok("f00d-ok", DataKind::Odometer),
            ],
        ),
    ]
}

fn connection(vehicle_id: &str, user_id: &str, has_token: bool) -> ConnectionInfo {
    ConnectionInfo {
        connection: Connection {
            user_id: user_id.into(),
            vehicle_id: vehicle_id.into(),
            connected_at: Some("2025-01-01T00:00:00Z".into()),
            mode: None,
        },
        has_token,
        other_users: Vec::new(),
        attributes: None,
    }
}

/// The scheduler's events for the fixture fleet: the listing, four probe results, progress.
pub fn events() -> Vec<Event> {
    let mut listed: Vec<ConnectionInfo> = reports()
        .iter()
        .map(|r| connection(&r.vehicle_id, r.user_id.as_deref().unwrap_or(""), true))
        .collect();
    listed.push(connection("9999-notoken", "user-dee", false));
    listed.push(connection("aaaa-unchecked", "user-fay", true));
    let mut events = vec![Event::ConnectionsListed {
        connections: listed,
    }];
    events.extend(
        reports()
            .into_iter()
            .map(|report| Event::Observed { report }),
    );
    events.push(Event::Progress(Progress {
        done: 4,
        total: 6,
        in_flight: 1,
        errors: 0,
        requests_sent: 14,
        requests_per_s: 1.5,
        budget_left: Some(106.0),
        budget_refill_per_min: Some(2.0),
    }));
    events.push(Event::ProbeStarted {
        vehicle_id: "aaaa-unchecked".into(),
        priority: Priority::Visible,
    });
    events
}

pub fn needs() -> Needs {
    Needs {
        client_id: Some("my-client-id".into()),
        ..Needs::default()
    }
}

pub fn store() -> Store {
    let policies = Policies::builtin();
    let needs = needs();
    Store::new(Arc::new(move |report, now| {
        diagnose(report, &policies, &needs, now)
    }))
}

pub fn config(theme: Theme) -> TuiConfig {
    TuiConfig {
        mode_label: "DEMO".into(),
        origin: "http://127.0.0.1:4100".into(),
        policies: Policies::builtin(),
        needs: needs(),
        theme,
        ..TuiConfig::default()
    }
}

/// An app of `width`×`height` that has received the fixture fleet; the effects it produced.
pub fn app_with(theme: Theme, width: u16, height: u16) -> (App, Vec<Effect>) {
    let mut app = App::new(store(), config(theme), now());
    let mut effects = update(&mut app, Msg::Resize { width, height });
    for event in events() {
        effects.extend(update(&mut app, Msg::Store(event)));
    }
    (app, effects)
}

pub fn app(width: u16, height: u16) -> App {
    app_with(Theme::plain(), width, height).0
}

pub fn draw(app: &App) -> Terminal<TestBackend> {
    let mut terminal =
        Terminal::new(TestBackend::new(app.width, app.height)).expect("test terminal");
    terminal
        .draw(|frame| views::render(app, frame))
        .expect("draw");
    terminal
}

/// The screen as text lines.
pub fn screen(app: &App) -> Vec<String> {
    let terminal = draw(app);
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

pub fn probes(effects: &[Effect]) -> Vec<(Vec<String>, Priority, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(Command::Probe {
                vehicle_ids,
                priority,
                force,
            }) => Some((vehicle_ids.clone(), *priority, *force)),
            _ => None,
        })
        .collect()
}

/// A fleet of `n` vehicles for benchmarks: the four probed situations repeated under new ids,
/// every seventh vehicle never probed.
pub fn big_fleet_events(n: usize) -> Vec<Event> {
    let templates = reports();
    let mut listed = Vec::with_capacity(n);
    let mut observed = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("veh-{i:06}");
        let user = format!("user-{:05}", i / 2);
        listed.push(connection(&id, &user, true));
        if i % 7 == 6 {
            continue;
        }
        let mut report = templates[i % templates.len()].clone();
        report.vehicle_id = id.clone();
        report.user_id = Some(user);
        if let Some(a) = report.attributes.as_mut() {
            a.id = id;
        }
        report.vin = report.vin.map(|v| format!("{}{:06}", &v[..11], i));
        observed.push(Event::Observed { report });
    }
    let mut events = vec![Event::ConnectionsListed {
        connections: listed,
    }];
    events.extend(observed);
    events
}

/// A vehicle whose user's access token expired, outside the fixture fleet (tests add it through an
/// `Observed` event). Its attributes are known from before the token expired: they are read once.
pub fn expired_token_report() -> ProbeReport {
    report(
        "dead-401",
        "user-dan",
        "HYUNDAI",
        "Ioniq 5",
        2022,
        "KM8KN4AE0NU000005",
        vec![
            token_expired("dead-401", Probe::Permissions),
            token_expired("dead-401", Probe::Data(DataKind::Location)),
            token_expired("dead-401", Probe::Data(DataKind::Odometer)),
        ],
    )
}

/// The fixture fleet listed again with `unchecked` more vehicles nobody has probed yet, as a real
/// fleet looks minutes after start.
pub fn big_fleet_listing(unchecked: usize) -> Event {
    let mut listed: Vec<ConnectionInfo> = reports()
        .iter()
        .map(|r| connection(&r.vehicle_id, r.user_id.as_deref().unwrap_or(""), true))
        .collect();
    listed.push(connection("9999-notoken", "user-dee", false));
    listed.push(connection("aaaa-unchecked", "user-fay", true));
    for i in 0..unchecked {
        listed.push(connection(
            &format!("bulk-{i:05}"),
            &format!("user-bulk-{i:05}"),
            true,
        ));
    }
    Event::ConnectionsListed {
        connections: listed,
    }
}
