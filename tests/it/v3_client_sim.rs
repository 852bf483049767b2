//! The v3 client against the real simulator over loopback (token renewal, `sc-user-id`, connections,
//! every situation's signals) and against small fixtures for the shapes the simulator does not send.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use vtriage::sim::{self, Latency, SimConfig, SimHandle, SimVehicle, Situation};
use vtriage::smartcar::v3::{
    AppCredentials, ConnectionFilter, SignalState, SignalsReport, TokenError, V3Client, V3Error,
    V3Origins,
};
use vtriage::smartcar::{ClientSettings, ErrorCode, ErrorType, Secret};

/// Plain HTTP for what the typed client would not send; TLS provider installed as the client does.
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("reqwest client")
}

async fn start(config: SimConfig) -> SimHandle {
    sim::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

fn quiet(vehicles: usize, token_ttl_s: u64) -> SimConfig {
    SimConfig {
        vehicles,
        seed: 7,
        vehicle_calls_per_hour: 0,
        token_ttl_s,
        ..SimConfig::default()
    }
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

/// Vehicles whose signals calls answer 200.
fn readable(sim: &SimHandle) -> Vec<SimVehicle> {
    sim.fleet()
        .vehicles
        .iter()
        .filter(|v| {
            !matches!(
                v.situation,
                Situation::TokenExpired
                    | Situation::RateLimited
                    | Situation::QuotaExhausted
                    | Situation::SignalsNotSubscribed
            )
        })
        .cloned()
        .collect()
}

async fn read_all(
    client: &V3Client,
    vehicles: &[SimVehicle],
) -> Vec<Result<SignalsReport, V3Error>> {
    let tasks: Vec<_> = vehicles
        .iter()
        .map(|v| {
            let client = client.clone();
            let (id, user) = (v.id.clone(), v.user_id.clone());
            tokio::spawn(async move { client.signals(&id, &user).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task finishes"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_callers_share_one_token_and_renew_it_once_per_expiry() {
    let sim = start(quiet(120, 1)).await;
    let client = client(&sim);
    let vehicles: Vec<_> = readable(&sim).into_iter().take(50).collect();
    for r in read_all(&client, &vehicles).await {
        r.expect("read with the first token");
    }
    assert_eq!(sim.v3_stats().token_requests, 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for r in read_all(&client, &vehicles).await {
        r.expect("read with the renewed token");
    }
    let stats = sim.v3_stats();
    assert_eq!(stats.token_requests, 2, "{stats:?}");
    assert_eq!(stats.unauthorized, 0, "renewed before expiry, never after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_reads_across_token_expiries_lose_no_call_and_surface_no_401() {
    let sim = start(SimConfig {
        latency: Latency::Fixed {
            ms: 50,
            jitter_ms: 150,
        },
        ..quiet(300, 1)
    })
    .await;
    let client = client(&sim);
    let vehicles: Vec<_> = readable(&sim).into_iter().take(200).collect();
    assert_eq!(vehicles.len(), 200);
    let started = Instant::now();
    let tasks: Vec<_> = vehicles
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let client = client.clone();
            let (id, user) = (v.id.clone(), v.user_id.clone());
            // Spread over 2.5 s so reads start before, during and after two expiries.
            let offset = Duration::from_millis(i as u64 * 12);
            tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                client.signals(&id, &user).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task finishes") {
            Ok(report) => {
                assert!(!report.signals.is_empty());
                ok += 1;
            }
            Err(e) => panic!("a read failed: {e}"),
        }
    }
    assert_eq!(ok, 200, "no call lost");
    let elapsed = started.elapsed().as_secs_f64();
    let stats = sim.v3_stats();
    assert!(stats.token_requests >= 2, "{stats:?}");
    assert!(
        stats.token_requests as f64 <= elapsed / 0.9 + 2.0,
        "one renewal per expiry, not per caller: {stats:?} in {elapsed:.1} s"
    );
    assert_eq!(stats.signals_calls, 200 + stats.unauthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_renewed_once_for_fifty_rejected_callers_each_retried_once() {
    let sim = start(quiet(120, 3_600)).await;
    let client = client(&sim);
    let vehicles: Vec<_> = readable(&sim).into_iter().take(50).collect();
    client
        .signals(&vehicles[0].id, &vehicles[0].user_id)
        .await
        .expect("first read");
    sim.revoke_app_tokens();
    for r in read_all(&client, &vehicles).await {
        r.expect("read after the renewal");
    }
    let stats = sim.v3_stats();
    assert_eq!(stats.token_requests, 2, "{stats:?}");
    // Each rejected caller, plus the token check that proved the token bad (one, or two when
    // rejections arrived on both sides of the first check's sending).
    assert!(
        stats.unauthorized >= 2 && stats.unauthorized <= 52,
        "{stats:?}"
    );
    assert_eq!(stats.signals_calls, 51);
}

#[tokio::test]
async fn every_signals_request_carries_sc_user_id_and_one_without_it_is_refused() {
    let sim = start(quiet(40, 3_600)).await;
    let client = client(&sim);
    for v in readable(&sim).iter().take(10) {
        client.signals(&v.id, &v.user_id).await.expect("list");
        client
            .signal(&v.id, &v.user_id, "vehicleidentification-vin")
            .await
            .expect("one signal");
    }
    assert_eq!(sim.v3_stats().missing_user_id, 0);

    let http = http();
    let config = sim.config();
    let token: Value = http
        .post(format!("{}/oauth2/token", sim.origin()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            config.client_id, config.client_secret
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().expect("a token").to_string();
    let v = &sim.fleet().vehicles[0];
    let answer = http
        .get(format!("{}/v3/vehicles/{}/signals", sim.origin(), v.id))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["errors"][0]["type"], "VALIDATION");
    assert_eq!(sim.v3_stats().missing_user_id, 1);

    let other_user = sim
        .fleet()
        .users
        .iter()
        .find(|u| u.id != v.user_id)
        .expect("a second user");
    let err = client.signals(&v.id, &other_user.id).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    let err = client
        .signals("no-such-vehicle", &v.user_id)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
}

/// Reads every vehicle at most `in_flight` at a time, as the scheduler does.
async fn read_all_capped(
    client: &V3Client,
    vehicles: &[SimVehicle],
    in_flight: usize,
) -> Vec<(SimVehicle, Result<SignalsReport, V3Error>)> {
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let tasks: Vec<_> = vehicles
        .iter()
        .map(|v| {
            let (client, permits, v) = (client.clone(), Arc::clone(&permits), v.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore open");
                let result = client.signals(&v.id, &v.user_id).await;
                (v, result)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task finishes"));
    }
    out
}

/// What went wrong in a sweep: cars wrongly refused, refused cars not reported as such.
fn misreports(results: &[(SimVehicle, Result<SignalsReport, V3Error>)]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (v, result) in results {
        let refused = v.situation == Situation::TokenExpired;
        match (refused, result) {
            (_, Err(V3Error::TokenUnsettled { why, .. })) => wrong.push(format!(
                "{} [{}] unsettled: {why}",
                v.id,
                v.situation.name()
            )),
            (false, Err(e)) if e.status() == Some(401) => {
                wrong.push(format!("{} [{}] blamed: {e}", v.id, v.situation.name()))
            }
            (true, Err(e)) if e.status() == Some(401) => {}
            (true, other) => wrong.push(format!(
                "{} refused connection not reported: {:?}",
                v.id,
                other
                    .as_ref()
                    .map(|_| "answered")
                    .map_err(ToString::to_string)
            )),
            _ => {}
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_mid_sweep_with_sixteen_requests_in_flight_blames_no_car_over_repeated_runs()
 {
    // Answers take 20-220 ms after the token was checked: a request accepted just before the
    // revocation answers after others were already refused, the race that used to blame cars.
    for run in 0..4u64 {
        let sim = start(SimConfig {
            seed: 7 + run,
            latency: Latency::Fixed {
                ms: 20,
                jitter_ms: 200,
            },
            revoke_first_token_after: 12,
            ..quiet(300, 3_600)
        })
        .await;
        let client = client(&sim);
        let vehicles: Vec<SimVehicle> = sim
            .fleet()
            .vehicles
            .iter()
            .filter(|v| {
                !matches!(
                    v.situation,
                    Situation::RateLimited | Situation::QuotaExhausted
                )
            })
            .cloned()
            .collect();
        assert!(
            vehicles
                .iter()
                .any(|v| v.situation == Situation::TokenExpired),
            "the fleet has refused connections"
        );
        let results = read_all_capped(&client, &vehicles, 16).await;
        let wrong = misreports(&results);
        let stats = sim.v3_stats();
        assert!(
            wrong.is_empty(),
            "run {run}: {} misreported:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert!(stats.tokens_issued >= 2, "the token was renewed: {stats:?}");
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_remembered_so_its_next_probe_costs_no_check_and_no_renewal() {
    let sim = start(quiet(200, 3_600)).await;
    let client = client(&sim);
    let refused = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.situation == Situation::TokenExpired)
        .cloned()
        .expect("a refused connection");
    let err = client
        .signals(&refused.id, &refused.user_id)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err:?}");
    assert!(matches!(err, V3Error::Api { .. }), "proven: {err:?}");
    let before = sim.v3_stats();
    let calls = |sim: &SimHandle, kind: &str| sim.stats().by_endpoint.get(kind).copied();
    let (listed, data) = (calls(&sim, "management"), calls(&sim, "data").unwrap_or(0));
    let err = client
        .signals(&refused.id, &refused.user_id)
        .await
        .unwrap_err();
    assert!(matches!(err, V3Error::Api { .. }), "{err:?}");
    let after = sim.v3_stats();
    assert_eq!(after.token_requests, before.token_requests, "no renewal");
    assert_eq!(
        calls(&sim, "management"),
        listed,
        "no token check the second time"
    );
    assert_eq!(calls(&sim, "data"), Some(data + 1), "only the call itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_one_token_refusal_for_fifty_callers_and_blames_no_car() {
    let sim = start(quiet(120, 3_600)).await;
    let client = V3Client::new(
        V3Origins::all(sim.origin()),
        AppCredentials::new(
            sim.config().client_id.clone(),
            Secret::new("the-secret-before-rotation"),
        ),
        ClientSettings::default(),
    )
    .unwrap();
    let vehicles: Vec<_> = sim.fleet().vehicles.iter().take(50).cloned().collect();
    let results = read_all_capped(&client, &vehicles, 50).await;
    for (v, result) in &results {
        assert!(
            matches!(
                result,
                Err(V3Error::Token(TokenError::InvalidClient { .. }))
            ),
            "{}: {result:?}",
            v.id
        );
    }
    let stats = sim.v3_stats();
    assert_eq!(stats.token_requests, 1, "said once: {stats:?}");
    assert_eq!(stats.signals_calls, 0, "no car was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_whose_token_check_gets_no_answer_is_unsettled_never_the_cars() {
    // A server whose vehicle calls answer 401 while its connections listing is down.
    let app = axum::Router::new()
        .route(
            "/oauth2/token",
            axum::routing::post(|| async {
                axum::Json(
                    json!({"access_token": "t1", "token_type": "Bearer", "expires_in": 3600}),
                )
            }),
        )
        .route(
            "/v3/connections",
            axum::routing::get(|| async { (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>") }),
        )
        .fallback(|| async {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"type": "AUTHENTICATION", "code": null,
                    "description": "The authorization token is invalid", "statusCode": 401})),
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = V3Client::new(
        V3Origins::all(&origin),
        AppCredentials::new("c", Secret::new("s")),
        ClientSettings::default(),
    )
    .unwrap();
    let err = client.signals("v1", "u1").await.unwrap_err();
    match &err {
        V3Error::TokenUnsettled { why, .. } => assert!(why.contains("502"), "{why}"),
        other => panic!("expected unsettled: {other:?}"),
    }
    let o = vtriage::smartcar::v3::observe::request_failed("v1", &err, jiff::Timestamp::now());
    assert!(!o.is_token_rejected());
}

#[tokio::test]
async fn wrong_credentials_are_invalid_client_and_the_secret_never_shows() {
    let sim = start(quiet(5, 3_600)).await;
    let secret = "a-wrong-and-very-private-secret";
    let client = V3Client::new(
        V3Origins::all(sim.origin()),
        AppCredentials::new(sim.config().client_id.clone(), Secret::new(secret)),
        ClientSettings::default(),
    )
    .unwrap();
    let v = &sim.fleet().vehicles[0];
    let err = client.signals(&v.id, &v.user_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            V3Error::Token(TokenError::InvalidClient { status: 401, .. })
        ),
        "{err:?}"
    );
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!(
            "{client_debug:?}",
            client_debug = AppCredentials::new("c", Secret::new(secret))
        ),
    ] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(err.to_string().contains("invalid_client"));

    let answer = http()
        .post(format!("{}/oauth2/token", sim.origin()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("client_id=sim-client-id&client_secret=sim-client-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(sim.v3_stats().token_refusals, 2);
}

#[tokio::test]
async fn connections_list_every_vehicle_once_with_its_user_and_permissions() {
    let sim = start(quiet(250, 3_600)).await;
    let client = client(&sim);
    let all = client
        .connections(&ConnectionFilter::default())
        .await
        .expect("listing");
    assert_eq!(all.len(), 250);
    let ids: HashSet<_> = all.iter().map(|c| c.vehicle_id.clone()).collect();
    assert_eq!(ids.len(), 250);
    let truth: HashMap<_, _> = sim
        .fleet()
        .vehicles
        .iter()
        .map(|v| (v.id.clone(), v))
        .collect();
    for c in &all {
        let v = truth[&c.vehicle_id];
        assert_eq!(c.user_id.as_deref(), Some(v.user_id.as_str()));
        assert_eq!(c.make.as_deref(), Some(v.make.as_str()));
        assert_eq!(c.year, Some(v.year));
        assert!(c.created_at.is_some());
        let has = |p: &str| c.permissions.iter().any(|x| x == p);
        match v.situation {
            Situation::ScopeMissing => assert!(!has("read_odometer"), "{c:?}"),
            Situation::LocationPermissionMissing => assert!(has("read_location"), "{c:?}"),
            _ => assert!(has("read_odometer") && has("read_location")),
        }
    }
    let user = &sim.fleet().users[0];
    let own = client
        .connections(&ConnectionFilter {
            user_id: Some(user.id.clone()),
            vehicle_id: None,
        })
        .await
        .unwrap();
    assert_eq!(own.len(), user.vehicles.len());
    let one = client
        .connections(&ConnectionFilter {
            user_id: None,
            vehicle_id: Some(sim.fleet().vehicles[3].id.clone()),
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    // Three pages of 100, 100 and 50, then nothing more.
    assert_eq!(sim.stats().by_endpoint["management"], 3 + 1 + 1);
}

#[tokio::test]
async fn the_vehicle_and_one_signal_read_from_the_simulator() {
    let sim = start(quiet(30, 3_600)).await;
    let client = client(&sim);
    let v = readable(&sim).remove(0);
    let vehicle = client.vehicle(&v.id, None).await.unwrap();
    assert_eq!(vehicle.id, v.id);
    assert_eq!(vehicle.model.as_deref(), Some(v.model.as_str()));
    let one = client
        .signal(&v.id, &v.user_id, "vehicleidentification-vin")
        .await
        .unwrap();
    assert_eq!(one.signals.len(), 1);
    assert_eq!(one.signals[0].value(), Some(&json!(v.vin)));
    assert!(one.request.request_id.is_some());
    let missing = client
        .signal(&v.id, &v.user_id, "nope-nothing")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
}

fn error_of(signal: &vtriage::smartcar::v3::Signal) -> String {
    assert_eq!(signal.status.value, SignalState::Error, "{signal:?}");
    signal
        .status
        .error
        .as_ref()
        .map(|e| e.type_code())
        .unwrap_or_default()
}

fn value_of(report: &SignalsReport, code: &str) -> Value {
    let s = report
        .signal(code)
        .unwrap_or_else(|| panic!("{code} missing"));
    assert!(s.is_success(), "{s:?}");
    s.value().cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn each_situation_reads_as_its_v3_signals() {
    let sim = start(quiet(1_500, 3_600)).await;
    let client = client(&sim);
    let now = jiff::Timestamp::now();
    let data_codes = ["odometer-traveleddistance", "location-preciselocation"];
    for situation in Situation::ALL {
        let sample: Vec<_> = sim
            .fleet()
            .vehicles
            .iter()
            .filter(|v| v.situation == situation)
            .take(3)
            .cloned()
            .collect();
        assert!(!sample.is_empty(), "{situation} in the fleet");
        for v in sample {
            let result = client.signals(&v.id, &v.user_id).await;
            let report = match situation {
                Situation::TokenExpired
                | Situation::RateLimited
                | Situation::QuotaExhausted
                | Situation::SignalsNotSubscribed => {
                    let err = result.expect_err("a request-level error");
                    let e = err
                        .api_error()
                        .and_then(|e| e.smartcar())
                        .unwrap_or_else(|| panic!("{situation}: {err:?}"));
                    match situation {
                        Situation::TokenExpired => {
                            assert_eq!(e.status, 401);
                            assert_eq!(e.error_type, ErrorType::Authentication);
                        }
                        Situation::RateLimited => {
                            assert_eq!(e.type_code(), "RATE_LIMIT:VEHICLE");
                            assert_eq!(e.retry_after_s, Some(1_800));
                        }
                        Situation::SignalsNotSubscribed => {
                            assert_eq!(e.status, 404);
                            assert_eq!(e.error_type, ErrorType::ResourceNotFound);
                        }
                        _ => {
                            assert_eq!(e.status, 430);
                            assert_eq!(e.code, Some(ErrorCode::VehicleRequestLimit));
                        }
                    }
                    continue;
                }
                _ => result.unwrap_or_else(|e| panic!("{situation}: {e}")),
            };
            let vin = value_of(&report, "vehicleidentification-vin");
            assert_eq!(vin, json!(v.vin));
            assert_eq!(
                report.signal("tractionbattery-stateofcharge").is_some(),
                v.powertrain.has_battery(),
                "{situation}"
            );
            let age = |code: &str| {
                let s = report.signal(code).expect("signal");
                now.duration_since(s.oem_updated_at.expect("oemUpdatedAt"))
                    .as_secs()
            };
            match situation {
                Situation::Healthy => {
                    for code in data_codes {
                        assert!(report.signal(code).is_some_and(|s| s.is_success()));
                    }
                    assert_eq!(
                        value_of(&report, "connectivitystatus-isonline"),
                        json!(true)
                    );
                }
                Situation::VirtualKeyMissing => {
                    assert_eq!(
                        value_of(&report, "connectivitystatus-isdigitalkeypaired"),
                        json!(false)
                    );
                    for code in data_codes {
                        assert_eq!(
                            error_of(report.signal(code).unwrap()),
                            "CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED"
                        );
                    }
                }
                Situation::VirtualKeyExempt => {
                    assert_eq!(
                        value_of(&report, "connectivitystatus-isdigitalkeypaired"),
                        json!(false)
                    );
                    value_of(&report, "odometer-traveleddistance");
                    assert!(age("odometer-traveleddistance") >= 590);
                }
                Situation::LocationPermissionMissing => {
                    assert_eq!(
                        error_of(report.signal("location-preciselocation").unwrap()),
                        "PERMISSION"
                    );
                    let scopes = report
                        .signal("vehicleuseraccount-permissions")
                        .expect("OEM permissions")
                        .body["values"]
                        .clone();
                    let scopes: Vec<String> = serde_json::from_value(scopes).unwrap();
                    assert!(
                        !scopes.iter().any(|s| s == "vehicle_location"),
                        "{scopes:?}"
                    );
                    assert!(scopes.iter().any(|s| s == "vehicle_device_data"));
                    value_of(&report, "odometer-traveleddistance");
                }
                Situation::ScopeMissing => {
                    assert_eq!(
                        error_of(report.signal("odometer-traveleddistance").unwrap()),
                        "PERMISSION"
                    );
                }
                Situation::OemAuthenticationFailed => {
                    for code in data_codes {
                        assert_eq!(
                            error_of(report.signal(code).unwrap()),
                            "CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED"
                        );
                    }
                }
                Situation::SubscriptionLapsed => {
                    for code in data_codes {
                        assert_eq!(
                            error_of(report.signal(code).unwrap()),
                            "CONNECTED_SERVICES_ACCOUNT:SUBSCRIPTION"
                        );
                    }
                }
                Situation::VehicleAsleep => {
                    assert_eq!(
                        value_of(&report, "connectivitystatus-isasleep"),
                        json!(true)
                    );
                    for code in data_codes {
                        assert_eq!(
                            error_of(report.signal(code).unwrap()),
                            "VEHICLE_STATE:ASLEEP"
                        );
                    }
                }
                Situation::VehicleUnreachable => {
                    assert_eq!(
                        value_of(&report, "connectivitystatus-isonline"),
                        json!(false)
                    );
                    for code in data_codes {
                        assert_eq!(
                            error_of(report.signal(code).unwrap()),
                            "VEHICLE_STATE:UNREACHABLE"
                        );
                    }
                }
                Situation::StaleData => {
                    value_of(&report, "odometer-traveleddistance");
                    assert!(age("odometer-traveleddistance") >= 2 * 86_400);
                }
                Situation::TokenExpired
                | Situation::RateLimited
                | Situation::QuotaExhausted
                | Situation::SignalsNotSubscribed => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures: shapes and misbehaviour the simulator does not produce.

/// A server whose behaviour is chosen by the first path segment (the client's API origin carries it).
async fn fixture(uri: Uri) -> axum::response::Response {
    let path = uri.path().to_string();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let page: usize = query
        .get("page[number]")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let connection = |n: usize| {
        if n.is_multiple_of(2) {
            json!({"id": format!("c{n}"), "relationships": {"vehicle": {"data": {"id": format!("v{n}")}},
                   "user": {"data": {"id": format!("u{n}")}}}, "attributes": {"permissions": []}})
        } else {
            json!({"id": format!("c{n}"), "relationships": {"vehicle": {"data": {"id": format!("v{n}")}}},
                   "attributes": {"user": {"id": format!("u{n}")}, "vehicle": {"year": "2020"}}})
        }
    };
    let json = |status: u16, v: Value| {
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json"), ("retry-after", "12")],
            v.to_string(),
        )
            .into_response()
    };
    if path.ends_with("/oauth2/token") {
        return json(
            200,
            json!({"access_token": "fixture", "token_type": "Bearer", "expires_in": 3600}),
        );
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        // Ignores page[size]: 10 per page whatever was asked, 35 in all, no links.
        ["ignores-size", "v3", "connections"] => {
            let items: Vec<Value> = ((page - 1) * 10..(page * 10).min(35))
                .map(connection)
                .collect();
            json(200, json!({"data": items, "meta": {"totalCount": 35}}))
        }
        // Ignores page[number]: the same five forever, no total, no links.
        ["repeats", "v3", "connections"] => json(
            200,
            json!({"data": (0..5).map(connection).collect::<Vec<_>>()}),
        ),
        // Relative next links, bare array pages.
        ["relative", "v3", "connections"] => {
            let next = if page < 3 {
                json!(format!(
                    "/relative/v3/connections?page%5Bnumber%5D={}",
                    page + 1
                ))
            } else {
                Value::Null
            };
            let items: Vec<Value> = (page * 100..page * 100 + 4).map(connection).collect();
            json(200, json!({"data": items, "links": {"next": next}}))
        }
        ["foreign", "v3", "connections"] => json(
            200,
            json!({"data": [connection(1)], "links": {"next": "http://attacker.example/v3/connections?page[number]=2"}}),
        ),
        ["flat", "v3", "vehicles", _, "signals"] => json(
            409,
            json!({"type": "VEHICLE_STATE", "code": "ASLEEP", "description": "asleep", "statusCode": 409,
                   "requestId": "r-flat", "resolution": {"type": "RETRY_LATER"}}),
        ),
        ["jsonapi", "v3", "vehicles", _, "signals"] => json(
            429,
            json!({"errors": [{"status": "429", "code": "VEHICLE", "title": "Rate limited", "detail": "slow down"}]}),
        ),
        ["bare", "v3", "vehicles", id] => json(
            200,
            json!({"id": id, "make": "TESLA", "model": "Model Y", "year": "2023", "powertrainType": "BEV"}),
        ),
        ["bare", "v3", "vehicles", _, "signals", code] => json(
            200,
            json!({"data": {"id": code, "type": "signal", "attributes": {"code": code, "status": {"value": "SUCCESS"},
                   "body": {"value": true}}, "meta": {"retrievedAt": 1_700_000_000_000_u64}}}),
        ),
        _ => json(
            404,
            json!({"errors": [{"code": "PATH", "title": "not found"}]}),
        ),
    }
}

async fn start_fixture() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(fixture);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn fixture_client(origin: &str, mode: &str) -> V3Client {
    V3Client::new(
        V3Origins {
            iam: origin.to_string(),
            api: format!("{origin}/{mode}"),
        },
        AppCredentials::new("c", Secret::new("s")),
        ClientSettings::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn paging_survives_a_server_that_ignores_page_size_or_repeats_pages() {
    let origin = start_fixture().await;
    let all = fixture_client(&origin, "ignores-size")
        .connections(&ConnectionFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 35, "counted pages of 10 up to totalCount");
    let repeated = fixture_client(&origin, "repeats")
        .connections(&ConnectionFilter::default())
        .await
        .unwrap();
    assert_eq!(repeated.len(), 5, "stopped at the first repeated page");
    let relative = fixture_client(&origin, "relative")
        .connections(&ConnectionFilter::default())
        .await
        .unwrap();
    assert_eq!(
        relative.len(),
        12,
        "three pages through relative next links"
    );
    assert!(
        relative.iter().all(|c| c.user_id.is_some()),
        "user id under relationships or attributes"
    );
    assert_eq!(
        relative
            .iter()
            .find(|c| c.vehicle_id == "v101")
            .and_then(|c| c.year),
        Some(2020)
    );
    let foreign = fixture_client(&origin, "foreign")
        .connections(&ConnectionFilter::default())
        .await
        .unwrap_err();
    assert!(
        matches!(foreign, V3Error::ForeignLink { .. }),
        "{foreign:?}"
    );
}

#[tokio::test]
async fn flat_and_json_api_error_bodies_and_bare_objects_are_read() {
    let origin = start_fixture().await;
    let flat = fixture_client(&origin, "flat")
        .signals("v1", "u1")
        .await
        .unwrap_err();
    let e = flat
        .api_error()
        .and_then(|e| e.smartcar())
        .expect("flat body read");
    assert_eq!(e.type_code(), "VEHICLE_STATE:ASLEEP");
    assert_eq!(e.request_id.as_deref(), Some("r-flat"));
    let jsonapi = fixture_client(&origin, "jsonapi")
        .signals("v1", "u1")
        .await
        .unwrap_err();
    let e = jsonapi
        .api_error()
        .and_then(|e| e.smartcar())
        .expect("errors[] read");
    assert_eq!(e.type_code(), "RATE_LIMIT:VEHICLE");
    assert_eq!(e.description, "slow down");
    assert_eq!(e.retry_after_s, Some(12));

    let bare = fixture_client(&origin, "bare");
    let vehicle = bare.vehicle("v9", None).await.unwrap();
    assert_eq!((vehicle.id.as_str(), vehicle.year), ("v9", Some(2023)));
    let one = bare
        .signal("v9", "u9", "connectivitystatus-isonline")
        .await
        .unwrap();
    assert_eq!(one.signals[0].value(), Some(&json!(true)));
    assert_eq!(
        one.signals[0].retrieved_at.map(|t| t.as_second()),
        Some(1_700_000_000)
    );
}

#[tokio::test]
async fn the_sim_answers_the_v2_and_v3_fleets_alike() {
    let sim = start(quiet(20, 3_600)).await;
    let client = client(&sim);
    let truth: Arc<Vec<Value>> = Arc::new(
        http()
            .get(format!("{}/_sim/fleet", sim.origin()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    let listed = client
        .connections(&ConnectionFilter::default())
        .await
        .unwrap();
    let mut a: Vec<_> = listed.iter().map(|c| c.vehicle_id.clone()).collect();
    let mut b: Vec<_> = truth
        .iter()
        .filter_map(|v| v["vehicleId"].as_str().map(str::to_string))
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}
