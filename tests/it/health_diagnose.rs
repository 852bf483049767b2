//! Diagnosis, one row per situation: observations in, status, main finding, rule and remedy out.

use serde_json::json;
use vtriage::health::{
    Diagnosis, Finding, FindingId, FindingKind, Needs, Policies, RemedyKind, Severity, Status,
    VirtualKey, diagnose,
};
use vtriage::smartcar::error::parse_error_body;
use vtriage::smartcar::{
    Answer, ApiError, BodyProblem, DataKind, ErrorCode, ErrorType, Meta, Observation, Probe,
    ProbeReport, Resolution, SmartcarError, TeslaUserAccess, TransportKind, VehicleAttributes,
};

const NOW: &str = "2026-11-27T19:00:00Z";
const VID: &str = "veh-1";
const CONNECT: &str = "https://connect.smartcar.com";

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("timestamp")
}

fn now() -> jiff::Timestamp {
    ts(NOW)
}

fn minutes_ago(m: i64) -> jiff::Timestamp {
    now() - jiff::SignedDuration::from_mins(m)
}

fn ok(probe: Probe, answer: Answer) -> Observation {
    Observation {
        probe,
        endpoint: probe.endpoint(VID, true),
        at: minutes_ago(1),
        meta: Meta {
            status: 200,
            request_id: Some(format!("ok-{}", probe.path())),
            ..Meta::default()
        },
        outcome: Ok(answer),
    }
}

fn data_ok(kind: DataKind, age_min: i64) -> Observation {
    let mut o = ok(
        Probe::Data(kind),
        Answer::Data {
            body: json!({"distance": 1234.5}),
        },
    );
    o.meta.data_age = Some(minutes_ago(age_min));
    o
}

fn failing(probe: Probe, err: ApiError) -> Observation {
    Observation {
        probe,
        endpoint: probe.endpoint(VID, true),
        at: minutes_ago(2),
        meta: Meta {
            status: err.status().unwrap_or(0),
            ..Meta::default()
        },
        outcome: Err(err),
    }
}

/// A full v2.0 body as the simulator sends it.
fn v2(
    status: u16,
    ty: &str,
    code: Option<&str>,
    resolution: serde_json::Value,
    msg: Option<&str>,
) -> ApiError {
    let body = json!({
        "type": ty, "code": code, "description": format!("{ty} happened"),
        "docURL": format!("https://smartcar.com/docs/errors/api-errors/{}", ty.to_lowercase()),
        "statusCode": status, "requestId": format!("req-{}-{}", ty.to_lowercase(), code.unwrap_or("null").to_lowercase()),
        "resolution": resolution, "suggestedUserMessage": msg,
    });
    let retry = (status == 429).then_some(1800);
    parse_error_body(
        status,
        Some("application/json"),
        None,
        retry,
        body.to_string().as_bytes(),
    )
}

fn attrs(make: &str, model: &str, year: u16) -> Observation {
    ok(
        Probe::Attributes,
        Answer::Attributes(VehicleAttributes {
            id: VID.into(),
            make: make.into(),
            model: model.into(),
            year,
        }),
    )
}

fn permissions(list: &[&str]) -> Observation {
    ok(
        Probe::Permissions,
        Answer::Permissions {
            permissions: list.iter().map(|s| s.to_string()).collect(),
        },
    )
}

const ALL_PERMS: &[&str] = &[
    "read_vehicle_info",
    "read_location",
    "read_odometer",
    "read_extended_vehicle_info",
];

fn key(paired: bool) -> Observation {
    ok(Probe::VirtualKey, Answer::VirtualKey { is_paired: paired })
}

fn access(location: bool) -> Observation {
    let mut p = vec![
        "vehicle_device_data".to_string(),
        "vehicle_cmds".to_string(),
    ];
    if location {
        p.push("vehicle_location".into());
    }
    ok(
        Probe::TeslaUserAccess,
        Answer::TeslaUserAccess(TeslaUserAccess {
            access_type: Some("OWNER".into()),
            permissions: Some(p),
        }),
    )
}

fn tesla_attrs(at_home: Option<bool>) -> Observation {
    ok(Probe::TeslaAttributes, Answer::TeslaAttributes { at_home })
}

fn report(make: &str, model: &str, year: u16, mut obs: Vec<Observation>) -> ProbeReport {
    let a = VehicleAttributes {
        id: VID.into(),
        make: make.into(),
        model: model.into(),
        year,
    };
    obs.insert(0, attrs(make, model, year));
    ProbeReport {
        vehicle_id: VID.into(),
        user_id: Some("user-1".into()),
        has_token: true,
        attributes: Some(a),
        vin: Some("5YJ3E1EA7KF000001".into()),
        observations: obs,
    }
}

/// Both data kinds the default needs, failing with the same error.
/// Every permission granted, and the data batch failing with `err`.
fn granted_but_data_fails(err: ApiError) -> Vec<Observation> {
    let mut v = vec![permissions(ALL_PERMS)];
    v.extend(data_fail(err));
    v
}

fn data_fail(err: ApiError) -> Vec<Observation> {
    vec![
        failing(Probe::Data(DataKind::Location), err.clone()),
        failing(Probe::Data(DataKind::Odometer), err),
    ]
}

fn vk_required() -> ApiError {
    v2(
        400,
        "CONNECTED_SERVICES_ACCOUNT",
        Some("VIRTUAL_KEY_REQUIRED"),
        json!({"type": "ACTION_REQUIRED", "url": "https://www.tesla.com/_ak/smartcar.com"}),
        Some(
            "In order to perform this request you'll need to add a Third-Party Virtual key to your vehicle.",
        ),
    )
}

fn location_permission() -> ApiError {
    v2(
        403,
        "PERMISSION",
        None,
        json!({"type": "REAUTHENTICATE"}),
        None,
    )
}

fn no_token_needs() -> Needs {
    Needs::default()
}

struct Row {
    situation: &'static str,
    report: ProbeReport,
    needs: Needs,
    status: Status,
    main: Option<&'static str>,
    rule: Option<&'static str>,
    remedy: Option<RemedyKind>,
    /// Text the main finding's link must contain.
    link_has: Option<&'static str>,
}

fn row(
    situation: &'static str,
    report: ProbeReport,
    status: Status,
    main: Option<&'static str>,
) -> Row {
    Row {
        situation,
        report,
        needs: app_needs(),
        status,
        main,
        rule: None,
        remedy: None,
        link_has: None,
    }
}

impl Row {
    fn rule(mut self, r: &'static str) -> Row {
        self.rule = Some(r);
        self
    }
    fn remedy(mut self, k: RemedyKind, link_has: Option<&'static str>) -> Row {
        self.remedy = Some(k);
        self.link_has = link_has;
        self
    }
    fn needs(mut self, n: Needs) -> Row {
        self.needs = n;
        self
    }
}

fn tesla_ok_with(extra: Vec<Observation>) -> Vec<Observation> {
    let mut v = vec![
        permissions(ALL_PERMS),
        key(true),
        access(true),
        tesla_attrs(Some(true)),
    ];
    v.extend(extra);
    v
}

fn rows() -> Vec<Row> {
    let healthy_data = || {
        vec![
            data_ok(DataKind::Location, 5),
            data_ok(DataKind::Odometer, 5),
        ]
    };
    let mut rows = Vec::new();

    rows.push(row(
        "healthy",
        report("FORD", "Mustang Mach-E", 2022, {
            let mut v = vec![permissions(ALL_PERMS)];
            v.extend(healthy_data());
            v
        }),
        Status::Healthy,
        None,
    ));

    rows.push(row(
        "healthy-tesla",
        report("TESLA", "Model 3", 2023, tesla_ok_with(healthy_data())),
        Status::Healthy,
        None,
    ));

    rows.push(
        row(
            "virtual-key-missing",
            report("TESLA", "Model Y", 2022, {
                let mut v = vec![permissions(ALL_PERMS), key(false), access(true)];
                v.extend(data_fail(vk_required()));
                v
            }),
            Status::Blocked,
            Some("virtual-key-missing"),
        )
        .rule("tesla-virtual-key")
        .remedy(
            RemedyKind::AddVirtualKey,
            Some("https://www.tesla.com/_ak/smartcar.com"),
        ),
    );

    rows.push(
        row(
            "virtual-key-exempt",
            report("TESLA", "Model S", 2019, {
                let mut v = vec![permissions(ALL_PERMS), key(false), access(true)];
                v.extend(vec![
                    data_ok(DataKind::Location, 25),
                    data_ok(DataKind::Odometer, 25),
                ]);
                v
            }),
            Status::Healthy,
            Some("virtual-key-exempt"),
        )
        .rule("tesla-virtual-key")
        .remedy(RemedyKind::None, None),
    );

    rows.push(
        row(
            "exempt-model-x-with-stale-data",
            report("TESLA", "Model X", 2020, {
                let mut v = vec![permissions(ALL_PERMS), key(false), access(true)];
                v.extend(vec![
                    data_ok(DataKind::Location, 60 * 30),
                    data_ok(DataKind::Odometer, 60 * 30),
                ]);
                v
            }),
            Status::Warning,
            Some("stale-data"),
        )
        .remedy(RemedyKind::OwnerActionAtOem, None),
    );

    rows.push(
        row(
            "location-permission-missing",
            report("TESLA", "Model 3", 2021, {
                let mut v = vec![
                    permissions(ALL_PERMS),
                    key(true),
                    access(false),
                    tesla_attrs(Some(false)),
                ];
                v.push(failing(
                    Probe::Data(DataKind::Location),
                    location_permission(),
                ));
                v.push(data_ok(DataKind::Odometer, 5));
                v
            }),
            Status::Degraded,
            Some("tesla-location-permission-missing"),
        )
        .rule("tesla-location-permission")
        .remedy(
            RemedyKind::Reauthenticate,
            Some("scope=required%3Aread_location&make=TESLA"),
        ),
    );

    rows.push(
        row(
            "location-permission-missing-but-app-needs-only-at-home",
            report("TESLA", "Model 3", 2021, {
                vec![
                    permissions(ALL_PERMS),
                    key(true),
                    access(false),
                    tesla_attrs(Some(true)),
                    data_ok(DataKind::Odometer, 5),
                ]
            }),
            Status::Healthy,
            Some("tesla-location-permission-missing"),
        )
        .rule("tesla-location-permission")
        .remedy(RemedyKind::None, None)
        .needs(Needs {
            at_home_only: true,
            ..Needs::default()
        }),
    );

    rows.push(
        row(
            "scope-missing",
            report("BMW", "i4", 2023, {
                vec![
                    permissions(&["read_vehicle_info", "read_location"]),
                    data_ok(DataKind::Location, 5),
                    failing(
                        Probe::Data(DataKind::Odometer),
                        v2(
                            403,
                            "PERMISSION",
                            None,
                            json!({"type": "REAUTHENTICATE"}),
                            None,
                        ),
                    ),
                ]
            }),
            Status::Degraded,
            Some("permission-missing"),
        )
        .remedy(
            RemedyKind::Reauthenticate,
            Some("scope=required%3Aread_odometer"),
        ),
    );

    let auth = || v2(401, "AUTHENTICATION", None, json!({"type": null}), None);
    rows.push(
        row(
            "token-expired",
            {
                let mut r = report(
                    "TESLA",
                    "Model 3",
                    2022,
                    vec![
                        failing(Probe::Permissions, auth()),
                        failing(Probe::VirtualKey, auth()),
                    ],
                );
                r.observations.extend(data_fail(auth()));
                r
            },
            Status::Blocked,
            Some("access-token-expired"),
        )
        .remedy(RemedyKind::BackendAction, None),
    );

    rows.push(
        row(
            "oem-authentication-failed",
            report("HYUNDAI", "Ioniq 5", 2023, {
                let e = v2(
                    400,
                    "CONNECTED_SERVICES_ACCOUNT",
                    Some("AUTHENTICATION_FAILED"),
                    json!({"type": "REAUTHENTICATE", "url": "http://127.0.0.1:9/oauth/reauthenticate?response_type=vehicle_id&client_id=sim-client&vehicle_id=veh-1"}),
                    Some("Please reconnect."),
                );
                let mut v = vec![permissions(ALL_PERMS)];
                v.extend(data_fail(e));
                v
            }),
            Status::Blocked,
            Some("oem-authentication-failed"),
        )
        .remedy(RemedyKind::Reauthenticate, Some("http://127.0.0.1:9/oauth/reauthenticate?response_type=vehicle_id&client_id=sim-client&vehicle_id=veh-1"))
        // Smartcar's link is offered because it is on the configured Connect origin (as with the simulator).
        .needs(Needs {
            connect_origin: "http://127.0.0.1:9".into(),
            ..Needs::default()
        }),
    );

    rows.push(
        row(
            "subscription-lapsed",
            report(
                "FORD",
                "F-150",
                2021,
                granted_but_data_fails(v2(
                    400,
                    "CONNECTED_SERVICES_ACCOUNT",
                    Some("SUBSCRIPTION"),
                    json!({"type": null}),
                    None,
                )),
            ),
            Status::Blocked,
            Some("oem-subscription"),
        )
        .remedy(RemedyKind::OwnerActionAtOem, None),
    );

    for (name, code) in [
        ("vehicle-asleep", "ASLEEP"),
        ("vehicle-unreachable", "UNREACHABLE"),
    ] {
        rows.push(
            row(
                name,
                report(
                    "KIA",
                    "EV6",
                    2022,
                    granted_but_data_fails(v2(
                        409,
                        "VEHICLE_STATE",
                        Some(code),
                        json!({"type": null}),
                        None,
                    )),
                ),
                Status::Degraded,
                Some("vehicle-state"),
            )
            .remedy(RemedyKind::RetryLater, None),
        );
    }

    rows.push(
        row(
            "stale-data",
            report("FORD", "Mustang Mach-E", 2022, {
                vec![
                    permissions(ALL_PERMS),
                    data_ok(DataKind::Location, 60 * 24 * 3),
                    data_ok(DataKind::Odometer, 60 * 24 * 3),
                ]
            }),
            Status::Warning,
            Some("stale-data"),
        )
        .remedy(RemedyKind::OwnerActionAtOem, None),
    );

    rows.push(
        row(
            "rate-limited",
            report(
                "FORD",
                "Escape",
                2020,
                granted_but_data_fails(v2(
                    429,
                    "RATE_LIMIT",
                    Some("VEHICLE"),
                    json!({"type": "RETRY_LATER"}),
                    None,
                )),
            ),
            Status::Warning,
            Some("rate-limited"),
        )
        .remedy(RemedyKind::RetryLater, None),
    );

    rows.push(
        row(
            "quota-exhausted",
            report(
                "NISSAN",
                "Leaf",
                2020,
                granted_but_data_fails(v2(
                    430,
                    "BILLING",
                    Some("VEHICLE_REQUEST_LIMIT"),
                    json!({"type": "CONTACT_SUPPORT"}),
                    None,
                )),
            ),
            Status::Blocked,
            Some("billing-request-limit"),
        )
        .remedy(RemedyKind::ContactSmartcar, None),
    );

    rows.push(
        row(
            "key-paired-but-car-asleep",
            report("TESLA", "Model Y", 2023, {
                let mut v = tesla_ok_with(Vec::new());
                v.extend(data_fail(v2(
                    409,
                    "VEHICLE_STATE",
                    Some("ASLEEP"),
                    json!({"type": null}),
                    None,
                )));
                v
            }),
            Status::Degraded,
            Some("vehicle-state"),
        )
        .remedy(RemedyKind::RetryLater, None),
    );

    rows.push(
        row(
            "unknown-error-type",
            report(
                "FORD",
                "Bronco",
                2024,
                granted_but_data_fails(v2(
                    418,
                    "TEAPOT",
                    Some("SHORT_AND_STOUT"),
                    json!({"type": null}),
                    None,
                )),
            ),
            Status::Degraded,
            Some("unknown-error"),
        )
        .remedy(RemedyKind::ContactSmartcar, None),
    );

    rows.push(row(
        "html-from-a-proxy",
        report("FORD", "Bronco", 2024, {
            let html = parse_error_body(
                502,
                Some("text/html"),
                None,
                None,
                b"<html><body>Bad Gateway</body></html>",
            );
            vec![
                permissions(ALL_PERMS),
                failing(Probe::Data(DataKind::Location), html),
                data_ok(DataKind::Odometer, 5),
            ]
        }),
        Status::Degraded,
        Some("upstream-html"),
    ));

    rows.push(
        row(
            "transient-server-error",
            report(
                "FORD",
                "Bronco",
                2024,
                granted_but_data_fails(v2(
                    500,
                    "SERVER",
                    Some("INTERNAL"),
                    json!({"type": "RETRY_LATER"}),
                    None,
                )),
            ),
            Status::Degraded,
            Some("upstream-error"),
        )
        .remedy(RemedyKind::RetryLater, None),
    );

    rows.push(
        row(
            "owner-revoked-access",
            report("TESLA", "Model 3", 2022, {
                let mut v = tesla_ok_with(Vec::new());
                v.extend(data_fail(v2(
                    400,
                    "CONNECTED_SERVICES_ACCOUNT",
                    Some("PERMISSION"),
                    json!({"type": "REAUTHENTICATE"}),
                    None,
                )));
                v
            }),
            Status::Blocked,
            Some("owner-revoked-access"),
        )
        .remedy(
            RemedyKind::Reauthenticate,
            Some("/oauth/reauthenticate?response_type=vehicle_id"),
        ),
    );

    rows.push(row(
        "no-access-token",
        ProbeReport {
            vehicle_id: VID.into(),
            has_token: false,
            ..ProbeReport::default()
        },
        Status::Unknown,
        Some("no-access-token"),
    ));

    rows.push(row(
        "never-probed",
        ProbeReport {
            vehicle_id: VID.into(),
            has_token: true,
            ..ProbeReport::default()
        },
        Status::Unknown,
        None,
    ));

    rows.push(
        row(
            "token-expired-and-key-unknown",
            {
                let mut r = report(
                    "TESLA",
                    "Model 3",
                    2022,
                    vec![failing(Probe::VirtualKey, auth())],
                );
                r.observations
                    .push(failing(Probe::Data(DataKind::Odometer), vk_required()));
                r.observations
                    .push(failing(Probe::Data(DataKind::Location), auth()));
                r
            },
            Status::Blocked,
            Some("access-token-expired"),
        )
        .remedy(RemedyKind::BackendAction, None),
    );

    rows.push(
        row(
            "app-wide-rate-limit",
            report("FORD", "Escape", 2020, {
                vec![
                    permissions(ALL_PERMS),
                    failing(
                        Probe::Data(DataKind::Odometer),
                        v2(
                            429,
                            "RATE_LIMIT",
                            Some("SMARTCAR_API"),
                            json!({"type": "RETRY_LATER"}),
                            None,
                        ),
                    ),
                    data_ok(DataKind::Location, 3),
                ]
            }),
            Status::Warning,
            Some("rate-limited"),
        )
        .remedy(RemedyKind::RetryLater, None),
    );

    rows.push(row(
        "timeout",
        report("FORD", "Escape", 2020, {
            vec![
                permissions(ALL_PERMS),
                failing(
                    Probe::Data(DataKind::Odometer),
                    ApiError::Transport {
                        kind: TransportKind::Timeout,
                        message: "timed out after 310 s".into(),
                    },
                ),
                data_ok(DataKind::Location, 3),
            ]
        }),
        Status::Degraded,
        Some("no-response"),
    ));

    rows.push(row(
        "truncated-json",
        report("FORD", "Escape", 2020, {
            let cut = ApiError::Body {
                status: 200,
                problem: BodyProblem::InvalidJson,
                content_type: Some("application/json".into()),
                request_id: None,
                snippet: "{\"dist".into(),
            };
            vec![
                permissions(ALL_PERMS),
                failing(Probe::Data(DataKind::Odometer), cut),
                data_ok(DataKind::Location, 3),
            ]
        }),
        Status::Degraded,
        Some("unreadable-response"),
    ));

    rows.push(row(
        "non-tesla-asked-tesla-endpoints",
        report("FORD", "Escape", 2020, {
            let mut v = vec![permissions(ALL_PERMS)];
            v.push(failing(
                Probe::VirtualKey,
                v2(
                    501,
                    "COMPATIBILITY",
                    Some("MAKE_NOT_COMPATIBLE"),
                    json!({"type": null}),
                    None,
                ),
            ));
            v.extend(vec![
                data_ok(DataKind::Location, 5),
                data_ok(DataKind::Odometer, 5),
            ]);
            v
        }),
        Status::Healthy,
        None,
    ));

    rows
}

fn check(r: &Row, d: &Diagnosis) {
    let s = r.situation;
    assert_eq!(
        d.status, r.status,
        "{s}: status; findings {:#?}",
        d.findings
    );
    assert_eq!(
        d.main_finding().map(|f| f.id.as_str()),
        r.main,
        "{s}: main finding; {:#?}",
        d.findings
    );
    for w in d.findings.windows(2) {
        assert!(
            w[0].severity >= w[1].severity,
            "{s}: findings sorted worst first"
        );
    }
    let Some(main) = d.main_finding() else { return };
    assert!(!main.title.is_empty(), "{s}: title");
    assert!(
        main.since.is_some() || main.id == "no-access-token",
        "{s}: since"
    );
    if let Some(rule) = r.rule {
        assert_eq!(main.rule.as_deref(), Some(rule), "{s}: rule");
    }
    if let Some(kind) = r.remedy {
        assert_eq!(
            main.remedy.kind, kind,
            "{s}: remedy kind {:#?}",
            main.remedy
        );
    }
    if let Some(link) = r.link_has {
        let got = main.remedy.link.as_deref().unwrap_or_default();
        assert!(got.contains(link), "{s}: link {got:?} lacks {link:?}");
    }
    if main.id != "no-access-token" {
        assert!(!main.evidence.is_empty(), "{s}: evidence");
    }
    assert!(
        !main.remedy.customer_reply.is_empty(),
        "{s}: customer reply"
    );
}

#[test]
fn every_situation_gets_its_status_and_main_finding() {
    let policies = Policies::builtin();
    for r in rows() {
        let d = diagnose(&r.report, &policies, &r.needs, now());
        check(&r, &d);
    }
}

/// What a configured app has: a Connect client id, so re-authentication links can be built.
fn app_needs() -> Needs {
    Needs {
        client_id: Some("app-client-id".into()),
        ..Needs::default()
    }
}

fn diagnose_one(situation: &str) -> Diagnosis {
    let r = rows()
        .into_iter()
        .find(|r| r.situation == situation)
        .expect("row");
    diagnose(&r.report, &Policies::builtin(), &r.needs, now())
}

#[test]
fn tesla_without_virtual_key_is_blocked_since_the_rule_date_with_smartcar_message() {
    let d = diagnose_one("virtual-key-missing");
    let f = d.main_finding().expect("finding");
    assert_eq!(f.since.as_deref(), Some("2025-01-21"));
    assert!(
        f.remedy
            .customer_reply
            .starts_with("In order to perform this request"),
        "{}",
        f.remedy.customer_reply
    );
    let ids: Vec<_> = f
        .evidence
        .iter()
        .filter_map(|e| e.request_id.as_deref())
        .collect();
    assert!(
        ids.contains(&"req-connected_services_account-virtual_key_required"),
        "{ids:?}"
    );
    assert!(
        f.evidence
            .iter()
            .any(|e| e.type_code.as_deref()
                == Some("CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED"))
    );
}

#[test]
fn location_permission_link_asks_for_exactly_read_location() {
    let d = diagnose_one("location-permission-missing");
    let f = d.main_finding().expect("finding");
    assert_eq!(f.since.as_deref(), Some("March 2025"));
    assert_eq!(
        f.remedy.link.as_deref(),
        Some(&*format!(
            "{CONNECT}/oauth/reauthenticate?response_type=vehicle_id&client_id=app-client-id&vehicle_id=veh-1&scope=required%3Aread_location&make=TESLA"
        ))
    );
}

#[test]
fn without_a_client_id_the_location_fix_says_what_to_configure_and_links_nothing() {
    let r = rows()
        .into_iter()
        .find(|r| r.situation == "location-permission-missing")
        .expect("row");
    let d = diagnose(&r.report, &Policies::builtin(), &Needs::default(), now());
    let f = d.main_finding().expect("finding");
    assert_eq!(f.remedy.link, None);
    assert!(f.remedy.action.contains("client id"), "{}", f.remedy.action);
    assert!(
        !f.remedy.customer_reply.contains("http"),
        "{}",
        f.remedy.customer_reply
    );
}

#[test]
fn at_home_only_app_is_told_the_at_home_value_and_no_reauthentication() {
    let d = diagnose_one("location-permission-missing-but-app-needs-only-at-home");
    let f = d.main_finding().expect("finding");
    assert_eq!(f.severity, Severity::Info);
    assert!(
        f.remedy.action.contains("atHome = true"),
        "{}",
        f.remedy.action
    );
    assert!(
        f.remedy
            .link
            .as_deref()
            .is_none_or(|l| !l.contains("reauthenticate"))
    );
}

#[test]
fn rate_limit_shows_retry_after() {
    let d = diagnose_one("rate-limited");
    let f = d.main_finding().expect("finding");
    assert_eq!(f.remedy.retry_after_s, Some(1800));
    assert!(f.title.contains("30 min"), "{}", f.title);
    assert!(f.title.contains("Not the car's fault"));
}

#[test]
fn unknown_error_is_shown_verbatim() {
    let d = diagnose_one("unknown-error-type");
    assert!(
        d.findings[0].title.contains("TEAPOT:SHORT_AND_STOUT"),
        "{}",
        d.findings[0].title
    );
}

#[test]
fn html_answer_title_says_upstream_returned_html() {
    let d = diagnose_one("html-from-a-proxy");
    assert!(
        d.findings[0].title.contains("Upstream returned HTML"),
        "{}",
        d.findings[0].title
    );
    assert_eq!(d.findings[0].evidence[0].type_code.as_deref(), Some("HTML"));
}

#[test]
fn token_expired_hides_everything_it_makes_unknowable() {
    let d = diagnose_one("token-expired-and-key-unknown");
    assert_eq!(d.findings.len(), 1, "{:#?}", d.findings);
    assert_eq!(d.findings[0].evidence.len(), 2);
}

#[test]
fn quota_remedy_lists_request_ids_and_does_not_blame_the_customer() {
    let d = diagnose_one("quota-exhausted");
    let f = d.main_finding().expect("finding");
    assert!(
        f.remedy
            .action
            .contains("req-billing-vehicle_request_limit"),
        "{}",
        f.remedy.action
    );
    assert!(f.remedy.customer_reply.contains("not with your car"));
}

#[test]
fn virtual_key_rule_before_it_was_in_force_is_only_a_warning() {
    // The state probe says unpaired but data still flows: on 2025-01-01 that is a warning with a countdown.
    let r = report("TESLA", "Model 3", 2022, {
        let mut v = vec![permissions(ALL_PERMS), key(false), access(true)];
        v.extend(vec![
            data_ok(DataKind::Location, 5),
            data_ok(DataKind::Odometer, 5),
        ]);
        v
    });
    let mut at = r.clone();
    for o in &mut at.observations {
        o.at = ts("2025-01-01T00:00:00Z");
        o.meta.data_age = o.meta.data_age.map(|_| ts("2024-12-31T23:55:00Z"));
    }
    let d = diagnose(
        &at,
        &Policies::builtin(),
        &Needs::default(),
        ts("2025-01-01T00:00:00Z"),
    );
    assert_eq!(d.status, Status::Warning, "{:#?}", d.findings);
    assert!(
        d.findings[0].title.contains("T-20d 00:00"),
        "{}",
        d.findings[0].title
    );
}

#[test]
fn configured_client_id_and_redirect_go_into_the_reauthentication_link() {
    let r = rows()
        .into_iter()
        .find(|r| r.situation == "scope-missing")
        .expect("row");
    let needs = Needs {
        client_id: Some("cid-9".into()),
        redirect_uri: Some("https://app.example/cb".into()),
        ..no_token_needs()
    };
    let d = diagnose(&r.report, &Policies::builtin(), &needs, now());
    assert_eq!(
        d.main_finding().and_then(|f| f.remedy.link.as_deref()),
        Some(
            "https://connect.smartcar.com/oauth/reauthenticate?response_type=vehicle_id&client_id=cid-9&vehicle_id=veh-1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=required%3Aread_odometer"
        )
    );
}

#[test]
fn error_types_used_in_rows_parse_as_expected() {
    // Guards the fixtures themselves: the v2 bodies above go through the real parser.
    let e = vk_required();
    let sc: &SmartcarError = e.smartcar().expect("smartcar error");
    assert_eq!(sc.error_type, ErrorType::ConnectedServicesAccount);
    assert_eq!(sc.code, Some(ErrorCode::VirtualKeyRequired));
    assert_eq!(
        sc.resolution,
        Some(Resolution {
            kind: Some("ACTION_REQUIRED".into()),
            url: Some("https://www.tesla.com/_ak/smartcar.com".into())
        })
    );
}

#[test]
fn a_401_in_an_old_body_shape_is_still_the_token() {
    let v1 = parse_error_body(
        401,
        Some("application/json"),
        None,
        None,
        br#"{"error":"authentication_error","message":"Invalid token"}"#,
    );
    let r = report("FORD", "Escape", 2020, data_fail(v1));
    let d = diagnose(&r, &Policies::builtin(), &Needs::default(), now());
    assert_eq!(
        d.main_finding().map(|f| f.id.as_str()),
        Some("access-token-expired")
    );
}

#[test]
fn a_new_oem_rule_in_the_policies_file_names_its_own_finding() {
    let extra = r#"
[[rule]]
id = "ford-odometer-consent"
name = "Ford: odometer needs a new consent"
make = "FORD"
announced = "2026-10-01"
in_force = "2026-11"
finding = "ford-odometer-consent-missing"

[rule.symptom]
error = "PERMISSION"
endpoint = "/odometer"

[rule.remedy]
kind = "reauthenticate"
permission = "read_odometer"
"#;
    let text = format!("{}{extra}", vtriage::health::policy::BUILTIN_POLICIES);
    let policies = Policies::parse(&text, std::path::Path::new("policies.toml")).expect("parses");
    let r = report("FORD", "F-150", 2024, {
        vec![
            permissions(ALL_PERMS),
            data_ok(DataKind::Location, 5),
            failing(
                Probe::Data(DataKind::Odometer),
                v2(
                    403,
                    "PERMISSION",
                    None,
                    json!({"type": "REAUTHENTICATE"}),
                    None,
                ),
            ),
        ]
    });
    let d = diagnose(&r, &policies, &app_needs(), now());
    let f = d.main_finding().expect("finding");
    assert_eq!(
        (f.id.as_str(), f.rule.as_deref(), f.since.as_deref()),
        (
            "ford-odometer-consent-missing",
            Some("ford-odometer-consent"),
            Some("November 2026")
        )
    );
    assert!(
        f.remedy.link.as_deref().is_some_and(
            |l| l.contains("scope=required%3Aread_odometer") && !l.contains("make=TESLA")
        )
    );
    // The built-in rules alone call the same answer a plain missing permission.
    let plain = diagnose(&r, &Policies::builtin(), &Needs::default(), now());
    assert_eq!(
        plain.main_finding().map(|f| f.id.as_str()),
        Some("permission-missing")
    );
}

mod arbitrary_answers {
    use super::*;
    use proptest::prelude::*;

    const PROBES: [Probe; 8] = [
        Probe::Attributes,
        Probe::Permissions,
        Probe::VirtualKey,
        Probe::TeslaUserAccess,
        Probe::TeslaAttributes,
        Probe::Data(DataKind::Location),
        Probe::Data(DataKind::Odometer),
        Probe::Data(DataKind::Battery),
    ];
    const TYPES: [&str; 8] = [
        "AUTHENTICATION",
        "PERMISSION",
        "VEHICLE_STATE",
        "RATE_LIMIT",
        "CONNECTED_SERVICES_ACCOUNT",
        "COMPATIBILITY",
        "SERVER",
        "NEW_TYPE",
    ];

    /// A probe index, maybe an error (status, type index, code), and junk bytes for a second, unreadable body.
    type Item = (usize, Option<(u16, usize, Option<String>)>, Vec<u8>);

    fn answer_or_error() -> impl Strategy<Value = Item> {
        (
            0..PROBES.len(),
            proptest::option::of((
                100u16..600,
                0..TYPES.len(),
                proptest::option::of("[A-Z_]{1,12}"),
            )),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
    }

    proptest! {
        #[test]
        fn any_mix_of_answers_gives_a_sorted_consistent_diagnosis(
            items in proptest::collection::vec(answer_or_error(), 0..8),
            make in prop_oneof![Just("TESLA"), Just("FORD")],
            year in 2012u16..2027,
            at_home_only in any::<bool>(),
        ) {
            let mut obs = Vec::new();
            for (p, err, junk) in items {
                let probe = PROBES[p];
                match err {
                    Some((status, t, code)) => {
                        let body = json!({"type": TYPES[t], "code": code, "description": "x", "statusCode": status});
                        obs.push(failing(probe, parse_error_body(status, Some("application/json"), None, Some(5), body.to_string().as_bytes())));
                        obs.push(failing(probe, parse_error_body(status, None, None, None, &junk)));
                    }
                    None => obs.push(match probe {
                        Probe::VirtualKey => key(year % 2 == 0),
                        Probe::TeslaUserAccess => access(year % 3 == 0),
                        Probe::Permissions => permissions(&["read_odometer"]),
                        Probe::Data(k) => data_ok(k, i64::from(year) * 7),
                        _ => tesla_attrs(None),
                    }),
                }
            }
            let r = report(make, "Model S", year, obs);
            let needs = Needs { at_home_only, ..Needs::default() };
            let d = diagnose(&r, &Policies::builtin(), &needs, now());
            for w in d.findings.windows(2) {
                prop_assert!(w[0].severity >= w[1].severity);
            }
            match d.main_finding() {
                Some(f) => prop_assert_eq!(d.status, Status::from_severity(f.severity)),
                None => prop_assert_eq!(d.status, Status::Healthy),
            }
            for f in &d.findings {
                prop_assert!(!f.title.is_empty() && !f.evidence.is_empty(), "{:?}", f);
            }
        }
    }
}

#[test]
fn a_car_reporting_itself_asleep_while_no_data_reads_is_the_vehicle_state_finding() {
    let policies = Policies::builtin();
    let needs = Needs::default();
    let upstream = v2(
        502,
        "UPSTREAM",
        Some("NO_RESPONSE"),
        json!({"type": "RETRY_LATER"}),
        None,
    );
    let asleep = ok(
        Probe::Connectivity,
        Answer::Connectivity {
            online: Some(true),
            asleep: Some(true),
        },
    );
    let mut obs = granted_but_data_fails(upstream);
    obs.push(asleep.clone());
    let d = diagnose(
        &report("FORD", "F-150", 2022, obs),
        &policies,
        &needs,
        now(),
    );
    assert_eq!(d.status, Status::Degraded);
    assert!(
        d.findings
            .iter()
            .any(|f| f.id == "vehicle-state" && f.title.contains("asleep")),
        "{:?}",
        d.findings
    );
    // Data read fine from the car's last report: asleep is no fault.
    let fine = vec![
        permissions(ALL_PERMS),
        data_ok(DataKind::Location, 5),
        data_ok(DataKind::Odometer, 5),
        asleep,
    ];
    let d = diagnose(
        &report("FORD", "F-150", 2022, fine),
        &policies,
        &needs,
        now(),
    );
    assert_eq!(d.status, Status::Healthy, "{:?}", d.findings);
}

/// A policies override that spells its rules' findings like built-in ones about the way to the API.
fn policies_naming_rule_findings(finding: &str, exempt: &str) -> Policies {
    let text = vtriage::health::policy::BUILTIN_POLICIES
        .replace(
            "finding = \"virtual-key-missing\"",
            &format!("finding = \"{finding}\""),
        )
        .replace(
            "exempt_finding = \"virtual-key-exempt\"",
            &format!("exempt_finding = \"{exempt}\""),
        );
    Policies::parse(&text, std::path::Path::new("policies.toml")).expect("parses")
}

fn key_state(r: &ProbeReport, d: &Diagnosis, policies: &Policies) -> VirtualKey {
    vtriage::health::virtual_key::virtual_key(
        r.attributes.as_ref(),
        None,
        |kind| d.findings.iter().any(|f| f.kind() == kind),
        policies,
    )
}

#[test]
fn a_rule_finding_renamed_like_a_builtin_one_keeps_the_key_badge_and_the_check_verdict() {
    let policies = policies_naming_rule_findings("no-response", "redirected");

    // The key rule bites on the data errors; its finding is now called `no-response`.
    let r = report("TESLA", "Model 3", 2022, {
        let mut v = vec![permissions(ALL_PERMS)];
        v.extend(data_fail(vk_required()));
        v
    });
    let d = diagnose(&r, &policies, &app_needs(), now());
    let main = d.main_finding().expect("finding");
    assert_eq!(
        (main.id.as_str(), main.rule.as_deref(), main.kind()),
        (
            "no-response",
            Some("tesla-virtual-key"),
            FindingKind::Rule("no-response")
        )
    );
    assert_eq!(d.status, Status::Blocked);
    assert!(!d.could_not_check(), "a blocked car was checked");
    assert_eq!(key_state(&r, &d, &policies), VirtualKey::Missing);

    // An exempt Model S whose informational finding is now called `redirected`: checked and healthy.
    let r = report(
        "TESLA",
        "Model S",
        2019,
        vec![
            permissions(ALL_PERMS),
            key(false),
            data_ok(DataKind::Location, 5),
            data_ok(DataKind::Odometer, 5),
        ],
    );
    let d = diagnose(&r, &policies, &app_needs(), now());
    assert_eq!(
        d.main_finding().map(Finding::kind),
        Some(FindingKind::Rule("redirected"))
    );
    assert_eq!(d.status, Status::Healthy, "{:?}", d.findings);
    assert!(!d.could_not_check());
    assert_eq!(key_state(&r, &d, &policies), VirtualKey::Exempt);
}

#[test]
fn a_builtin_finding_about_the_way_to_the_api_means_the_car_was_not_checked() {
    let r = report(
        "TESLA",
        "Model 3",
        2022,
        vec![failing(
            Probe::Data(DataKind::Odometer),
            ApiError::Transport {
                kind: TransportKind::Timeout,
                message: "timed out".into(),
            },
        )],
    );
    let d = diagnose(&r, &Policies::builtin(), &app_needs(), now());
    assert_eq!(
        d.main_finding().map(Finding::kind),
        Some(FindingKind::Builtin(FindingId::NoResponse))
    );
    assert!(d.could_not_check());
}

#[test]
fn a_v3_signals_request_refused_401_after_the_token_was_proven_good_asks_the_owner_to_reconnect() {
    let refused = parse_error_body(
        401,
        Some("application/json"),
        None,
        None,
        br#"{"type":"AUTHENTICATION","code":null,"description":"The authorization token is invalid","statusCode":401}"#,
    );
    let r = report(
        "TESLA",
        "Model 3",
        2022,
        vec![failing(Probe::Signals, refused)],
    );
    let d = diagnose(&r, &Policies::builtin(), &Needs::default(), now());
    assert_eq!(d.status, Status::Blocked);
    let f = d.main_finding().expect("a finding");
    assert_eq!(f.id, "connection-revoked");
    assert!(f.title.contains("connection"), "{}", f.title);
    assert!(
        f.remedy.action.contains("re-authentication link"),
        "{}",
        f.remedy.action
    );
    assert!(
        !f.remedy.action.contains("access token")
            && !f.remedy.action.contains("client id and secret"),
        "{}",
        f.remedy.action
    );
}

#[test]
fn a_v3_401_whose_cause_could_not_be_settled_is_unknown_never_blocked() {
    let unsettled = ApiError::TokenUnsettled {
        status: 401,
        request_id: Some("req-9".into()),
        reason: "the token check got no answer (CONNECTION_REFUSED)".into(),
    };
    let r = report(
        "TESLA",
        "Model 3",
        2022,
        vec![failing(Probe::Signals, unsettled)],
    );
    let d = diagnose(&r, &Policies::builtin(), &Needs::default(), now());
    assert_eq!(d.status, Status::Unknown, "{:?}", d.findings);
    let f = d.main_finding().expect("a finding");
    assert_eq!(f.id, "app-token-unsettled");
    assert!(f.title.contains("could not be told"), "{}", f.title);
}

/// The observations a v3 signals answer of `signals` gives for the default needs, plus the
/// listing's permissions (the connection is listed).
fn v3_signals(make: &str, signals: serde_json::Value) -> ProbeReport {
    use vtriage::smartcar::v3::{SignalsReport, observe, parse_signals};
    let report = SignalsReport {
        request: Meta {
            status: 200,
            request_id: Some("req-v3".into()),
            ..Meta::default()
        },
        signals: parse_signals(&json!({ "data": signals })).expect("signals"),
    };
    let needs = Needs::default();
    let asked = observe::SignalQuestions {
        data: &needs.data,
        at_home: false,
        is_tesla: Some(make == "TESLA"),
    };
    let mut observations = observe::observations(VID, &report, asked, minutes_ago(1));
    observations.push(observe::permissions_observation(
        VID,
        &[
            "read_vehicle_info".into(),
            "read_location".into(),
            "read_odometer".into(),
            "read_vin".into(),
        ],
        minutes_ago(1),
    ));
    self::report(make, "Model", 2024, observations)
}

fn signal_ok(code: &str, body: serde_json::Value) -> serde_json::Value {
    json!({"attributes": {"code": code, "status": {"value": "SUCCESS"}, "body": body},
           "meta": {"retrievedAt": 1_795_805_400_000_u64, "oemUpdatedAt": 1_795_805_400_000_u64}})
}

fn signal_error(code: &str, kind: &str, error_code: serde_json::Value) -> serde_json::Value {
    json!({"attributes": {"code": code,
           "status": {"value": "ERROR", "error": {"type": kind, "code": error_code}}}})
}

#[test]
fn a_v3_signals_404_for_a_listed_connection_is_no_signals_with_the_subscription_fix_never_a_missing_car()
 {
    let not_found = parse_error_body(
        404,
        Some("application/json"),
        Some("req-404"),
        None,
        br#"{"errors":[{"status":"404","type":"RESOURCE_NOT_FOUND","code":"PATH","title":"RESOURCE_NOT_FOUND:PATH","detail":"The requested resource does not exist."}]}"#,
    );
    let listed = vtriage::smartcar::v3::observe::permissions_observation(
        VID,
        &["read_location".into()],
        minutes_ago(1),
    );
    let r = report(
        "FORD",
        "F-150",
        2023,
        vec![failing(Probe::Signals, not_found.clone()), listed],
    );
    let d = diagnose(&r, &Policies::builtin(), &Needs::default(), now());
    let f = d.main_finding().expect("a finding");
    assert_eq!(f.id, "signals-unavailable", "{:?}", d.findings);
    assert_eq!(d.status, Status::Blocked);
    assert!(
        f.title.contains("no signals for this connected vehicle"),
        "{}",
        f.title
    );
    assert!(
        f.remedy.action.contains("/subscriptions"),
        "{}",
        f.remedy.action
    );
    assert!(!f.title.to_lowercase().contains("not found"), "{}", f.title);
    // Without the listing's word that the connection exists, it stays a rejected request.
    let r = report(
        "FORD",
        "F-150",
        2023,
        vec![failing(Probe::Signals, not_found)],
    );
    let d = diagnose(&r, &Policies::builtin(), &Needs::default(), now());
    assert_eq!(
        d.main_finding().map(|f| f.id.as_str()),
        Some("request-rejected")
    );
}

#[test]
fn a_needed_signal_the_car_cannot_give_reads_not_available_and_leaves_the_car_healthy() {
    let r = v3_signals(
        "TOYOTA",
        json!([
            signal_error(
                "location-preciselocation",
                "COMPATIBILITY",
                json!("VEHICLE_NOT_CAPABLE")
            ),
            signal_ok(
                "odometer-traveleddistance",
                json!({"value": 1234.5, "unit": "km"})
            ),
            signal_ok(
                "vehicleidentification-vin",
                json!({"value": "JTMAB3FV5RD000001"})
            ),
            signal_error(
                "connectivitystatus-isonline",
                "COMPATIBILITY",
                json!("VEHICLE_NOT_CAPABLE")
            ),
        ]),
    );
    let d = diagnose(&r, &Policies::builtin(), &Needs::default(), now());
    assert_eq!(d.status, Status::Healthy, "{:?}", d.findings);
    let f = d.main_finding().expect("a finding");
    assert_eq!(f.id, "not-capable");
    assert!(
        f.title.starts_with("Not available for this car"),
        "{}",
        f.title
    );
    assert_eq!(f.severity, Severity::Info);
}

#[test]
fn an_error_on_a_signal_diagnosis_does_not_need_never_makes_the_car_blocked() {
    let r = v3_signals(
        "FORD",
        json!([
            signal_ok(
                "location-preciselocation",
                json!({"latitude": 40.0, "longitude": -83.0})
            ),
            signal_ok(
                "odometer-traveleddistance",
                json!({"value": 1234.5, "unit": "km"})
            ),
            signal_error(
                "vehicleidentification-vin",
                "CONNECTED_SERVICES_ACCOUNT",
                json!("ACCOUNT_ISSUE")
            ),
            signal_error(
                "connectivitystatus-isonline",
                "CONNECTED_SERVICES_ACCOUNT",
                json!("ACCOUNT_ISSUE")
            ),
        ]),
    );
    let d = diagnose(&r, &Policies::builtin(), &Needs::default(), now());
    assert!(d.status != Status::Blocked, "{:?}", d.findings);
    assert!(
        d.findings.iter().all(|f| f.severity <= Severity::Warning),
        "{:?}",
        d.findings
    );
    // The same error on the data the app reads does block.
    let r = v3_signals(
        "FORD",
        json!([
            signal_error(
                "location-preciselocation",
                "CONNECTED_SERVICES_ACCOUNT",
                json!("ACCOUNT_ISSUE")
            ),
            signal_ok(
                "odometer-traveleddistance",
                json!({"value": 1234.5, "unit": "km"})
            ),
        ]),
    );
    let d = diagnose(&r, &Policies::builtin(), &Needs::default(), now());
    assert_eq!(d.status, Status::Blocked, "{:?}", d.findings);
}
