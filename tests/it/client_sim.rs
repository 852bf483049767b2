//! The typed client against the real simulator over loopback: every endpoint, every situation, paging.

use std::collections::HashMap;

use vtriage::sim::{self, SimConfig, SimHandle, Situation};
use vtriage::smartcar::{
    Answer, ApiError, Client, ClientSettings, DataKind, ErrorCode, ErrorType, Origins, Probe,
    Secret,
};

async fn start(vehicles: usize) -> (SimHandle, Client) {
    let config = SimConfig {
        vehicles,
        seed: 7,
        ..SimConfig::default()
    };
    let sim = sim::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts");
    let client = Client::new(Origins::all(sim.origin()), ClientSettings::default()).unwrap();
    (sim, client)
}

fn tokens(sim: &SimHandle) -> HashMap<String, Secret> {
    sim.tokens()
        .iter()
        .map(|(u, t)| (u.clone(), Secret::new(t.clone())))
        .collect()
}

fn first_with(sim: &SimHandle, situation: Situation) -> (String, String) {
    let v = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.situation == situation)
        .unwrap_or_else(|| panic!("the fleet has a {situation:?} vehicle"));
    (v.id.clone(), v.user_id.clone())
}

fn smartcar_error(o: &vtriage::smartcar::Observation) -> &vtriage::smartcar::SmartcarError {
    match o.error() {
        Some(ApiError::Smartcar(e)) => e,
        other => panic!("expected a Smartcar error at {}, got {other:?}", o.endpoint),
    }
}

#[tokio::test]
async fn management_connections_page_through_cursors_to_the_whole_fleet() {
    let (sim, client) = start(250).await;
    let amt = Secret::new(sim.amt());
    let first = client.connections_page(&amt, None, 100).await.unwrap();
    assert_eq!(first.connections.len(), 100);
    assert!(first.cursor.is_some());
    let all = client.list_connections(&amt, 1_000_000).await.unwrap();
    assert_eq!(all.len(), 250, "three pages of 100, 100 and 50");
    let mut ids: Vec<_> = all.iter().map(|c| c.vehicle_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250, "no vehicle twice across pages");
}

#[tokio::test]
async fn wrong_management_token_is_an_authentication_error() {
    let (_sim, client) = start(5).await;
    let err = client
        .list_connections(&Secret::new("nope"), 1_000_000)
        .await
        .unwrap_err();
    let err = err.api().expect("a request failed");
    assert_eq!(err.status(), Some(401));
    assert_eq!(
        err.smartcar().map(|e| e.error_type.clone()),
        Some(ErrorType::Authentication)
    );
}

#[tokio::test]
async fn vehicles_and_user_answer_for_a_token() {
    let (sim, client) = start(60).await;
    let tokens = tokens(&sim);
    let (user, token) = tokens.iter().next().unwrap();
    assert_eq!(&client.user_id(token).await.unwrap(), user);
    let ids = client.vehicle_ids(token).await.unwrap();
    let expected: Vec<_> = sim
        .fleet()
        .vehicles
        .iter()
        .filter(|v| &v.user_id == user)
        .map(|v| v.id.clone())
        .collect();
    assert_eq!(ids.len(), expected.len());
    assert!(ids.iter().all(|id| expected.contains(id)));
}

#[tokio::test]
async fn healthy_vehicle_answers_every_endpoint() {
    let (sim, client) = start(200).await;
    let tokens = tokens(&sim);
    let (vid, user) = first_with(&sim, Situation::Healthy);
    let token = &tokens[&user];
    let attrs = client.probe(token, &vid, Probe::Attributes).await;
    let Some(Answer::Attributes(a)) = attrs.answer() else {
        panic!("attributes: {attrs:?}")
    };
    assert_eq!(a.id, vid);
    assert!(
        attrs.meta.request_id.is_some(),
        "every answer carries sc-request-id"
    );
    let perms = client.probe(token, &vid, Probe::Permissions).await;
    let Some(Answer::Permissions { permissions }) = perms.answer() else {
        panic!("{perms:?}")
    };
    assert!(permissions.iter().any(|p| p == "read_odometer"));
    let batch = client
        .batch(token, &vid, &[DataKind::Odometer, DataKind::Location])
        .await;
    assert_eq!(batch.len(), 2);
    for o in &batch {
        assert!(o.answer().is_some(), "{o:?}");
        assert!(o.meta.data_age.is_some(), "batch items carry sc-data-age");
    }
    let single = client
        .probe(token, &vid, Probe::Data(DataKind::Odometer))
        .await;
    assert!(single.answer().is_some());
}

#[tokio::test]
async fn tesla_without_virtual_key_parses_to_virtual_key_required_with_pairing_link() {
    let (sim, client) = start(400).await;
    let tokens = tokens(&sim);
    let (vid, user) = first_with(&sim, Situation::VirtualKeyMissing);
    let token = &tokens[&user];
    let batch = client.batch(token, &vid, &[DataKind::Odometer]).await;
    let e = smartcar_error(&batch[0]);
    assert_eq!(e.error_type, ErrorType::ConnectedServicesAccount);
    assert_eq!(e.code, Some(ErrorCode::VirtualKeyRequired));
    assert_eq!(e.status, 400);
    assert!(e.request_id.is_some());
    assert_eq!(
        e.resolution.as_ref().and_then(|r| r.url.as_deref()),
        Some("https://www.tesla.com/_ak/smartcar.com")
    );
    let key = client.probe(token, &vid, Probe::VirtualKey).await;
    assert_eq!(key.answer(), Some(&Answer::VirtualKey { is_paired: false }));
}

#[tokio::test]
async fn tesla_missing_location_permission_shows_on_location_and_user_access() {
    let (sim, client) = start(600).await;
    let tokens = tokens(&sim);
    let (vid, user) = first_with(&sim, Situation::LocationPermissionMissing);
    let token = &tokens[&user];
    let loc = client
        .probe(token, &vid, Probe::Data(DataKind::Location))
        .await;
    let e = smartcar_error(&loc);
    assert_eq!(e.error_type, ErrorType::Permission);
    assert_eq!(e.status, 403);
    let access = client.probe(token, &vid, Probe::TeslaUserAccess).await;
    let Some(Answer::TeslaUserAccess(a)) = access.answer() else {
        panic!("{access:?}")
    };
    assert!(!a.has_vehicle_location());
    let attrs = client.probe(token, &vid, Probe::TeslaAttributes).await;
    assert!(
        matches!(
            attrs.answer(),
            Some(Answer::TeslaAttributes { at_home: Some(_) })
        ),
        "{attrs:?}"
    );
}

#[tokio::test]
async fn expired_token_is_authentication_on_every_call() {
    let (sim, client) = start(600).await;
    let tokens = tokens(&sim);
    let (vid, user) = first_with(&sim, Situation::TokenExpired);
    let token = &tokens[&user];
    for probe in [
        Probe::Attributes,
        Probe::Permissions,
        Probe::Data(DataKind::Odometer),
    ] {
        let o = client.probe(token, &vid, probe).await;
        let e = smartcar_error(&o);
        assert_eq!(
            (e.status, &e.error_type),
            (401, &ErrorType::Authentication),
            "{probe:?}"
        );
    }
}

#[tokio::test]
async fn every_situation_parses_to_its_type_and_code() {
    let (sim, client) = start(2000).await;
    let tokens = tokens(&sim);
    let cases: &[(Situation, u16, ErrorType, Option<ErrorCode>)] = &[
        (
            Situation::OemAuthenticationFailed,
            400,
            ErrorType::ConnectedServicesAccount,
            Some(ErrorCode::AuthenticationFailed),
        ),
        (
            Situation::SubscriptionLapsed,
            400,
            ErrorType::ConnectedServicesAccount,
            Some(ErrorCode::Subscription),
        ),
        (
            Situation::VehicleAsleep,
            409,
            ErrorType::VehicleState,
            Some(ErrorCode::Asleep),
        ),
        (
            Situation::VehicleUnreachable,
            409,
            ErrorType::VehicleState,
            Some(ErrorCode::Unreachable),
        ),
        (
            Situation::RateLimited,
            429,
            ErrorType::RateLimit,
            Some(ErrorCode::Vehicle),
        ),
        (
            Situation::QuotaExhausted,
            430,
            ErrorType::Billing,
            Some(ErrorCode::VehicleRequestLimit),
        ),
        (Situation::ScopeMissing, 403, ErrorType::Permission, None),
    ];
    for (situation, status, error_type, code) in cases {
        let (vid, user) = first_with(&sim, *situation);
        let batch = client
            .batch(&tokens[&user], &vid, &[DataKind::Odometer])
            .await;
        let e = smartcar_error(&batch[0]);
        assert_eq!(
            (e.status, &e.error_type, &e.code),
            (*status, error_type, code),
            "{situation:?}"
        );
        assert!(e.request_id.is_some(), "{situation:?} carries a request id");
        if *situation == Situation::RateLimited {
            assert!(
                e.retry_after_s.is_some_and(|s| s > 0),
                "Retry-After read from the batch item"
            );
        }
        if *situation == Situation::OemAuthenticationFailed {
            let url = e
                .resolution
                .as_ref()
                .and_then(|r| r.url.clone())
                .unwrap_or_default();
            assert!(
                url.contains("/oauth/reauthenticate?") && url.contains(&vid),
                "{url}"
            );
        }
    }
}

#[tokio::test]
async fn refused_connection_is_a_transport_error() {
    let client = Client::new(
        Origins::all("http://127.0.0.1:9"),
        ClientSettings::default(),
    )
    .unwrap();
    let o = client
        .probe(&Secret::new("t"), "v", Probe::Attributes)
        .await;
    assert!(
        matches!(o.error(), Some(ApiError::Transport { .. })),
        "{o:?}"
    );
    assert!(!format!("{o:?}").contains("Bearer"));
}

#[test]
fn secrets_never_print() {
    let s = Secret::new("super-secret-token");
    assert!(!format!("{s:?} {s}").contains("super-secret"));
}

#[tokio::test]
async fn vin_reads_from_the_account_even_when_the_car_blocks_data() {
    let (sim, client) = start(400).await;
    let tokens = tokens(&sim);
    for situation in [
        Situation::VirtualKeyMissing,
        Situation::OemAuthenticationFailed,
        Situation::VehicleAsleep,
    ] {
        let (vid, user) = first_with(&sim, situation);
        let batch = client
            .batch(&tokens[&user], &vid, &[DataKind::Odometer, DataKind::Vin])
            .await;
        assert!(batch[0].error().is_some(), "{situation:?}: data fails");
        let expected_vin = &sim.fleet().vehicle(&vid).unwrap().vin;
        let Some(Answer::Data { body }) = batch[1].answer() else {
            panic!("{situation:?}: {:?}", batch[1])
        };
        assert_eq!(body["vin"].as_str(), Some(expected_vin.as_str()));
    }
}
