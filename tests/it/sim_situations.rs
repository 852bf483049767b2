//! Each simulated situation answers as the situations table says: status, type, code, resolution, headers.

use crate::sim_support;

use serde_json::json;
use sim_support::{Sim, quiet, start};
use vtriage::sim::{SimVehicle, Situation, VIRTUAL_KEY_URL};

async fn fleet() -> Sim {
    start(quiet(2_000, 7)).await
}

fn path(v: &SimVehicle, tail: &str) -> String {
    format!("/v2.0/vehicles/{}{tail}", v.id)
}

/// Attributes and permissions answer 200 in every situation but token-expired.
async fn assert_metadata_answers(sim: &Sim, v: &SimVehicle) {
    let token = sim.token_of(v);
    assert_eq!(sim.get(&path(v, ""), Some(&token)).await.status, 200);
    assert_eq!(
        sim.get(&path(v, "/permissions"), Some(&token)).await.status,
        200
    );
    if v.is_tesla() {
        assert_eq!(
            sim.get(&path(v, "/tesla/virtual_key"), Some(&token))
                .await
                .status,
            200
        );
    }
}

fn data_age_s(a: &sim_support::Answer) -> i64 {
    let at: jiff::Timestamp = a
        .header("sc-data-age")
        .expect("sc-data-age")
        .parse()
        .expect("ISO timestamp");
    jiff::Timestamp::now().as_second() - at.as_second()
}

#[tokio::test]
async fn healthy_vehicle_answers_everything_with_fresh_data() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::Healthy);
    let token = sim.token_of(v);
    for tail in ["/location", "/odometer", "/vin"] {
        let a = sim.get(&path(v, tail), Some(&token)).await;
        assert_eq!(a.status, 200, "{tail}: {}", a.text);
        assert!(data_age_s(&a) < 31 * 60);
    }
    assert_metadata_answers(&sim, v).await;
}

#[tokio::test]
async fn tesla_without_virtual_key_is_blocked() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::VirtualKeyMissing);
    assert!(v.is_tesla() && !v.is_virtual_key_exempt());
    let token = sim.token_of(v);
    for tail in ["/location", "/odometer"] {
        let body = sim.get(&path(v, tail), Some(&token)).await.expect_error(
            400,
            "CONNECTED_SERVICES_ACCOUNT",
            Some("VIRTUAL_KEY_REQUIRED"),
        );
        assert_eq!(
            body["resolution"],
            json!({"type": "ACTION_REQUIRED", "url": VIRTUAL_KEY_URL})
        );
        assert!(
            body["suggestedUserMessage"]
                .as_str()
                .unwrap()
                .contains("Virtual key")
        );
        assert!(
            body["docURL"]
                .as_str()
                .unwrap()
                .ends_with("#virtual-key-required")
        );
    }
    let key = sim.get(&path(v, "/tesla/virtual_key"), Some(&token)).await;
    assert_eq!(key.json(), json!({"isPaired": false}));
    let access = sim.get(&path(v, "/tesla/user/access"), Some(&token)).await;
    assert_eq!(access.status, 200);
    let batch = sim
        .post(
            &path(v, "/batch"),
            Some(&token),
            &json!({"requests": [{"path": "/odometer"}, {"path": "/location"}]}),
        )
        .await
        .json();
    for item in batch["responses"].as_array().unwrap() {
        assert_eq!(item["code"], 400);
        assert_eq!(item["body"]["code"], "VIRTUAL_KEY_REQUIRED");
        assert_eq!(item["body"]["statusCode"], 400);
    }
    assert_metadata_answers(&sim, v).await;
}

#[tokio::test]
async fn old_model_s_or_x_needs_no_virtual_key() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::VirtualKeyExempt);
    assert!(matches!(v.model.as_str(), "Model S" | "Model X") && v.year <= 2020);
    let token = sim.token_of(v);
    let odometer = sim.get(&path(v, "/odometer"), Some(&token)).await;
    assert_eq!(odometer.status, 200);
    let age = data_age_s(&odometer);
    assert!(
        (10 * 60 - 5..=40 * 60 + 5).contains(&age),
        "data age {age} s"
    );
    assert_eq!(
        sim.get(&path(v, "/location"), Some(&token)).await.status,
        200
    );
    assert_eq!(
        sim.get(&path(v, "/tesla/virtual_key"), Some(&token))
            .await
            .json(),
        json!({"isPaired": false})
    );
    assert_metadata_answers(&sim, v).await;
}

#[tokio::test]
async fn tesla_without_location_scope_fails_only_location() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::LocationPermissionMissing);
    let token = sim.token_of(v);
    let body = sim
        .get(&path(v, "/location"), Some(&token))
        .await
        .expect_error(403, "PERMISSION", None);
    assert_eq!(body["resolution"]["type"], "REAUTHENTICATE");
    assert_eq!(
        sim.get(&path(v, "/odometer"), Some(&token)).await.status,
        200
    );
    let access = sim
        .get(&path(v, "/tesla/user/access"), Some(&token))
        .await
        .json();
    let scopes = access["permissions"].as_array().unwrap();
    assert!(
        !scopes.contains(&json!("vehicle_location"))
            && scopes.contains(&json!("vehicle_device_data"))
    );
    assert_eq!(
        sim.get(&path(v, "/tesla/virtual_key"), Some(&token))
            .await
            .json(),
        json!({"isPaired": true})
    );
    let attrs = sim
        .get(&path(v, "/tesla/attributes"), Some(&token))
        .await
        .json();
    assert!(attrs["atHome"].is_boolean(), "{attrs}");
    assert_metadata_answers(&sim, v).await;
}

#[tokio::test]
async fn missing_odometer_scope_fails_odometer_with_reauthenticate() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::ScopeMissing);
    let token = sim.token_of(v);
    let perms = sim.get(&path(v, "/permissions"), Some(&token)).await.json();
    let perms = perms["permissions"].as_array().unwrap();
    assert!(!perms.contains(&json!("read_odometer")) && perms.contains(&json!("read_location")));
    let body = sim
        .get(&path(v, "/odometer"), Some(&token))
        .await
        .expect_error(403, "PERMISSION", None);
    assert_eq!(body["resolution"]["type"], "REAUTHENTICATE");
    assert_eq!(
        sim.get(&path(v, "/location"), Some(&token)).await.status,
        200
    );
    assert_metadata_answers(&sim, v).await;
}

#[tokio::test]
async fn expired_token_fails_every_call_of_that_user() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::TokenExpired);
    let user = sim.handle.fleet().user(&v.user_id).unwrap();
    assert!(user.token_expired);
    for i in &user.vehicles {
        assert_eq!(
            sim.handle.fleet().vehicles[*i].situation,
            Situation::TokenExpired
        );
    }
    let token = sim.token_of(v);
    for tail in [
        "",
        "/permissions",
        "/odometer",
        "/location",
        "/tesla/virtual_key",
    ] {
        sim.get(&path(v, tail), Some(&token))
            .await
            .expect_error(401, "AUTHENTICATION", None);
    }
    sim.get("/v2.0/user", Some(&token))
        .await
        .expect_error(401, "AUTHENTICATION", None);
    sim.get("/v2.0/vehicles", Some(&token))
        .await
        .expect_error(401, "AUTHENTICATION", None);
    sim.post(
        &path(v, "/batch"),
        Some(&token),
        &json!({"requests": [{"path": "/odometer"}]}),
    )
    .await
    .expect_error(401, "AUTHENTICATION", None);
}

#[tokio::test]
async fn broken_oem_login_asks_for_reauthentication_with_a_link() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::OemAuthenticationFailed);
    let token = sim.token_of(v);
    let body = sim
        .get(&path(v, "/odometer"), Some(&token))
        .await
        .expect_error(
            400,
            "CONNECTED_SERVICES_ACCOUNT",
            Some("AUTHENTICATION_FAILED"),
        );
    assert_eq!(body["resolution"]["type"], "REAUTHENTICATE");
    let expected = format!(
        "{}/oauth/reauthenticate?response_type=vehicle_id&client_id={}&vehicle_id={}",
        sim.handle.origin(),
        sim.handle.config().client_id,
        v.id
    );
    assert_eq!(body["resolution"]["url"], json!(expected));
    assert_metadata_answers(&sim, v).await;

    let tesla =
        sim.vehicle_where(|t| t.situation == Situation::OemAuthenticationFailed && t.is_tesla());
    let token = sim.token_of(tesla);
    for tail in ["/tesla/user/access", "/tesla/attributes"] {
        sim.get(&path(tesla, tail), Some(&token))
            .await
            .expect_error(
                400,
                "CONNECTED_SERVICES_ACCOUNT",
                Some("AUTHENTICATION_FAILED"),
            );
    }
}

#[tokio::test]
async fn lapsed_subscription_blocks_data() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::SubscriptionLapsed);
    assert!(!v.is_tesla());
    let token = sim.token_of(v);
    sim.get(&path(v, "/location"), Some(&token))
        .await
        .expect_error(400, "CONNECTED_SERVICES_ACCOUNT", Some("SUBSCRIPTION"));
    assert_metadata_answers(&sim, v).await;
}

#[tokio::test]
async fn asleep_and_unreachable_vehicles_answer_vehicle_state() {
    let sim = fleet().await;
    for (situation, code) in [
        (Situation::VehicleAsleep, "ASLEEP"),
        (Situation::VehicleUnreachable, "UNREACHABLE"),
    ] {
        let v = sim.vehicle(situation);
        let token = sim.token_of(v);
        sim.get(&path(v, "/odometer"), Some(&token))
            .await
            .expect_error(409, "VEHICLE_STATE", Some(code));
        assert_metadata_answers(&sim, v).await;
    }
}

#[tokio::test]
async fn stale_data_is_days_old() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::StaleData);
    let token = sim.token_of(v);
    let a = sim.get(&path(v, "/location"), Some(&token)).await;
    assert_eq!(a.status, 200);
    let age = data_age_s(&a);
    assert!(
        (2 * 86_400 - 5..=10 * 86_400 + 5).contains(&age),
        "data age {age} s"
    );
    let batch = sim
        .post(
            &path(v, "/batch"),
            Some(&token),
            &json!({"requests": [{"path": "/odometer"}]}),
        )
        .await
        .json();
    let at: jiff::Timestamp = batch["responses"][0]["headers"]["sc-data-age"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(jiff::Timestamp::now().as_second() - at.as_second() >= 2 * 86_400 - 5);
}

#[tokio::test]
async fn rate_limited_vehicle_says_retry_after_half_an_hour() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::RateLimited);
    let token = sim.token_of(v);
    let a = sim.get(&path(v, "/odometer"), Some(&token)).await;
    let body = a.expect_error(429, "RATE_LIMIT", Some("VEHICLE"));
    assert_eq!(body["resolution"]["type"], "RETRY_LATER");
    assert_eq!(a.header("retry-after"), Some("1800"));
    let batch = sim
        .post(
            &path(v, "/batch"),
            Some(&token),
            &json!({"requests": [{"path": "/odometer"}]}),
        )
        .await
        .json();
    assert_eq!(batch["responses"][0]["code"], 429);
    assert_eq!(batch["responses"][0]["headers"]["Retry-After"], "1800");
    assert_metadata_answers(&sim, v).await;
}

#[tokio::test]
async fn exhausted_monthly_quota_is_a_billing_error() {
    let sim = fleet().await;
    let v = sim.vehicle(Situation::QuotaExhausted);
    let token = sim.token_of(v);
    let body = sim
        .get(&path(v, "/odometer"), Some(&token))
        .await
        .expect_error(430, "BILLING", Some("VEHICLE_REQUEST_LIMIT"));
    assert_eq!(body["resolution"]["type"], "CONTACT_SUPPORT");
    assert_metadata_answers(&sim, v).await;
}
