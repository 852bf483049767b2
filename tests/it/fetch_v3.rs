//! The scheduler on API v3 against the real simulator over loopback: the listing from
//! `/v3/connections`, one signals request per diagnosis with `sc-user-id`, the application token
//! renewed mid-sweep, and the diagnosis of every simulated situation from v3 evidence.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use vtriage::fetch::{self, Command, Event, SchedulerConfig, SchedulerHandle, Source};
use vtriage::health::{Needs, Policies, Status, diagnose};
use vtriage::sim::{self, Latency, SimConfig, SimHandle, Situation};
use vtriage::smartcar::v3::{AppCredentials, V3Client, V3Origins};
use vtriage::smartcar::{ClientSettings, ProbeReport, Secret};

const WAIT: Duration = Duration::from_secs(120);

async fn start(config: SimConfig) -> SimHandle {
    sim::spawn(config, "127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("simulator starts")
}

fn client(sim: &SimHandle) -> V3Client {
    let config = sim.config();
    V3Client::new(
        V3Origins::all(sim.origin()),
        AppCredentials::new(
            config.client_id.clone(),
            Secret::new(config.client_secret.clone()),
        ),
        ClientSettings::default(),
    )
    .expect("client builds")
}

fn unthrottled(concurrency: usize) -> SchedulerConfig {
    SchedulerConfig {
        concurrency,
        rate: None,
        per_vehicle_per_hour: 1_000,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..SchedulerConfig::default()
    }
}

/// Sweeps the whole fleet and returns one report per vehicle, by vehicle id.
async fn sweep(handle: &mut SchedulerHandle, fleet: usize) -> HashMap<String, ProbeReport> {
    handle
        .commands
        .send(Command::StartSweep { force: true })
        .expect("scheduler running");
    let mut reports = HashMap::new();
    let collected = tokio::time::timeout(WAIT, async {
        while reports.len() < fleet {
            match recv(&mut handle.events).await {
                Event::Observed { report } => {
                    let again = reports.insert(report.vehicle_id.clone(), report);
                    assert!(again.is_none(), "a vehicle reported twice in one sweep");
                }
                Event::SourceError { message } => panic!("source failed: {message}"),
                _ => {}
            }
        }
    })
    .await;
    assert!(
        collected.is_ok(),
        "only {} of {fleet} reports",
        reports.len()
    );
    reports
}

async fn recv(events: &mut UnboundedReceiver<Event>) -> Event {
    events.recv().await.expect("the scheduler stopped")
}

fn expected(s: Situation) -> (Status, Option<&'static str>) {
    match s {
        Situation::Healthy => (Status::Healthy, None),
        Situation::VirtualKeyMissing => (Status::Blocked, Some("virtual-key-missing")),
        Situation::VirtualKeyExempt => (Status::Healthy, Some("virtual-key-exempt")),
        Situation::LocationPermissionMissing => {
            (Status::Degraded, Some("tesla-location-permission-missing"))
        }
        Situation::ScopeMissing => (Status::Degraded, Some("permission-missing")),
        Situation::TokenExpired => (Status::Blocked, Some("connection-revoked")),
        Situation::OemAuthenticationFailed => (Status::Blocked, Some("oem-authentication-failed")),
        Situation::SubscriptionLapsed => (Status::Blocked, Some("oem-subscription")),
        Situation::VehicleAsleep | Situation::VehicleUnreachable => {
            (Status::Degraded, Some("vehicle-state"))
        }
        Situation::StaleData => (Status::Warning, Some("stale-data")),
        Situation::RateLimited => (Status::Warning, Some("rate-limited")),
        Situation::QuotaExhausted => (Status::Blocked, Some("billing-request-limit")),
        Situation::SignalsNotSubscribed => (Status::Blocked, Some("signals-unavailable")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v3_sweep_diagnoses_every_simulated_vehicle_as_the_situation_table_says() {
    let sim = start(SimConfig {
        vehicles: 500,
        seed: 11,
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    })
    .await;
    let mut h = fetch::spawn(client(&sim), Source::default(), unthrottled(32));
    let reports = sweep(&mut h, 500).await;
    let needs = Needs {
        connect_origin: sim.origin().to_string(),
        ..Needs::default()
    };
    let policies = Policies::builtin();
    let mut wrong = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for v in &sim.fleet().vehicles {
        let report = &reports[&v.id];
        seen.insert(v.situation.name());
        assert_eq!(report.user_id.as_deref(), Some(v.user_id.as_str()));
        let d = diagnose(report, &policies, &needs, jiff::Timestamp::now());
        let got = (d.status, d.main_finding().map(|f| f.id.clone()));
        let (status, main) = expected(v.situation);
        if got != (status, main.map(str::to_string)) {
            wrong.push(format!(
                "{} {} {} {} [{}]: got {got:?}: {:?}",
                v.id,
                v.make,
                v.model,
                v.year,
                v.situation.name(),
                d.findings
                    .iter()
                    .map(|f| (&f.id, &f.title))
                    .collect::<Vec<_>>()
            ));
        }
        // One signals request per diagnosis; a refused connection costs the one renewal retry.
        let requests = sim.vehicle_requests(&v.id).unwrap_or(0);
        let allowed = if v.situation == Situation::TokenExpired {
            2
        } else {
            1
        };
        assert!(
            requests <= allowed,
            "{} [{}]: {requests} requests",
            v.id,
            v.situation.name()
        );
    }
    assert!(
        wrong.is_empty(),
        "{} of 500 misdiagnosed:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        seen.len(),
        Situation::ALL.len(),
        "every situation exercised: {seen:?}"
    );
    let stats = sim.v3_stats();
    assert_eq!(
        stats.missing_user_id, 0,
        "sc-user-id on every signals request"
    );
    let _ = h.commands.send(Command::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_token_expiring_mid_sweep_is_renewed_and_no_probe_is_lost() {
    let sim = start(SimConfig {
        vehicles: 120,
        seed: 5,
        vehicle_calls_per_hour: 0,
        token_ttl_s: 1,
        latency: Latency::Fixed {
            ms: 120,
            jitter_ms: 0,
        },
        ..SimConfig::default()
    })
    .await;
    let mut h = fetch::spawn(client(&sim), Source::default(), unthrottled(4));
    let reports = sweep(&mut h, 120).await;
    let stats = sim.v3_stats();
    assert!(
        stats.tokens_issued >= 3,
        "the sweep outlived several one-second tokens: {stats:?}"
    );
    assert_eq!(stats.missing_user_id, 0);
    let needs = Needs::default();
    let policies = Policies::builtin();
    for v in &sim.fleet().vehicles {
        let report = &reports[&v.id];
        assert!(!report.observations.is_empty(), "{} was probed", v.id);
        if v.situation == Situation::TokenExpired {
            continue;
        }
        let d = diagnose(report, &policies, &needs, jiff::Timestamp::now());
        assert!(
            d.findings
                .iter()
                .all(|f| f.id != "access-token-expired" && f.id != "connection-revoked"),
            "{} [{}] blamed on authentication: {:?}",
            v.id,
            v.situation.name(),
            d.findings
        );
    }
    let _ = h.commands.send(Command::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_gives_make_and_permissions_so_a_tesla_costs_one_request_on_first_sight() {
    let sim = start(SimConfig {
        vehicles: 200,
        seed: 7,
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    })
    .await;
    let mut h = fetch::spawn(client(&sim), Source::default(), unthrottled(4));
    let tesla = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.is_tesla() && v.situation == Situation::VirtualKeyMissing)
        .expect("a Tesla without its key")
        .clone();
    h.commands
        .send(Command::Probe {
            vehicle_ids: vec![tesla.id.clone()],
            priority: fetch::Priority::Focus,
            force: false,
        })
        .expect("running");
    let report = tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Observed { report } = recv(&mut h.events).await
                && report.vehicle_id == tesla.id
            {
                return report;
            }
        }
    })
    .await
    .expect("reported");
    assert_eq!(sim.vehicle_requests(&tesla.id), Some(1));
    assert_eq!(
        report.attributes.as_ref().map(|a| a.make.as_str()),
        Some(tesla.make.as_str())
    );
    assert_eq!(report.vin.as_deref(), Some(tesla.vin.as_str()));
    let d = diagnose(
        &report,
        &Policies::builtin(),
        &Needs::default(),
        jiff::Timestamp::now(),
    );
    let main = d.main_finding().expect("a finding");
    assert_eq!(main.id, "virtual-key-missing");
    assert!(
        main.remedy
            .link
            .as_deref()
            .is_some_and(|l| l.starts_with("https://www.tesla.com/_ak/")),
        "{:?}",
        main.remedy
    );
    assert!(
        main.evidence.iter().any(|e| e
            .endpoint
            .starts_with(&format!("GET /v3/vehicles/{}/signals ", tesla.id))
            && e.type_code.as_deref()
                == Some("ERROR CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED")),
        "{:?}",
        main.evidence
    );
    let _ = h.commands.send(Command::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_reaches_the_makes_the_rules_concern_first_when_the_listing_names_them() {
    let sim = start(SimConfig {
        vehicles: 120,
        seed: 7,
        latency: Latency::Fixed {
            ms: 1,
            jitter_ms: 0,
        },
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    })
    .await;
    let teslas = sim
        .fleet()
        .vehicles
        .iter()
        .filter(|v| v.make == "TESLA")
        .count();
    assert!(teslas > 0 && teslas < 120);
    let config = SchedulerConfig {
        sweep_first_makes: vec!["TESLA".into()],
        ..unthrottled(1)
    };
    let mut handle = fetch::spawn(client(&sim), Source::default(), config);
    handle
        .commands
        .send(Command::StartSweep { force: true })
        .expect("scheduler running");
    let mut order = Vec::new();
    let done = tokio::time::timeout(WAIT, async {
        while order.len() < 120 {
            if let Event::Observed { report } = recv(&mut handle.events).await {
                let make = report.attributes.map(|a| a.make).unwrap_or_default();
                order.push(make.eq_ignore_ascii_case("TESLA"));
            }
        }
    })
    .await;
    assert!(done.is_ok(), "{} reports", order.len());
    assert!(
        order.iter().take(teslas).all(|t| *t),
        "every Tesla before any other make: {order:?}"
    );
}

/// A v3 server whose listing echoes the client secret in every text it gives of a car.
async fn echoing_listing(secret: &'static str) -> String {
    async fn answer(uri: axum::http::Uri, secret: &'static str) -> axum::response::Response {
        use axum::response::IntoResponse;
        let body = if uri.path().ends_with("/oauth2/token") {
            serde_json::json!({"access_token": "app-token", "token_type": "Bearer", "expires_in": 3600})
        } else if uri.path().ends_with("/v3/connections") {
            serde_json::json!({"data": [{
                "id": "c1",
                "relationships": {"vehicle": {"data": {"id": "v1"}}, "user": {"data": {"id": "u1"}}},
                "attributes": {"permissions": ["read_vin"], "createdAt": format!("2025-01-01 {secret}"),
                               "vehicle": {"make": format!("TESLA {secret}"), "model": format!("Model {secret}"), "year": 2022}}
            }], "meta": {"totalCount": 1}})
        } else {
            serde_json::json!({"errors": [{"code": "PATH", "title": "not found"}]})
        };
        ([("content-type", "application/json")], body.to_string()).into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move |uri| answer(uri, secret));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    origin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_echoes_the_client_secret_lists_the_car_with_the_secret_redacted() {
    const SECRET: &str = "v3-secret-echoed-9c2d7a";
    let origin = echoing_listing(SECRET).await;
    let client = V3Client::new(
        V3Origins::all(&origin),
        AppCredentials::new("client", Secret::new(SECRET)),
        ClientSettings::default(),
    )
    .expect("client builds");
    let mut h = fetch::spawn(client, Source::default(), unthrottled(1));
    let connections = tokio::time::timeout(WAIT, async {
        loop {
            if let Event::ConnectionsListed { connections } = recv(&mut h.events).await {
                return connections;
            }
        }
    })
    .await
    .expect("listed");
    let _ = h.commands.send(Command::Shutdown);
    let attributes = connections[0].attributes.as_ref().expect("make and model");
    assert!(attributes.make.starts_with("TESLA"), "{attributes:?}");
    let text = format!("{connections:?}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}
