//! The simulator's v3 side over plain HTTP: token lifetime, paging metadata, and the same limits as v2.0.

use std::time::Duration;

use serde_json::Value;
use vtriage::sim::{self, AppRateLimit, SimConfig, SimHandle, Situation};

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("reqwest client")
}

async fn start(config: SimConfig) -> SimHandle {
    sim::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

async fn app_token(sim: &SimHandle) -> String {
    let c = sim.config();
    let body: Value = http()
        .post(format!("{}/oauth2/token", sim.origin()))
        .json(&serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": c.client_id,
            "client_secret": c.client_secret,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], c.token_ttl_s);
    body["access_token"].as_str().expect("token").to_string()
}

async fn get(sim: &SimHandle, path: &str, token: &str, user: Option<&str>) -> (u16, Value) {
    let mut request = http()
        .get(format!("{}{path}", sim.origin()))
        .bearer_auth(token);
    if let Some(u) = user {
        request = request.header("sc-user-id", u);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

fn healthy(sim: &SimHandle) -> (String, String) {
    let v = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.situation == Situation::Healthy)
        .expect("a healthy vehicle");
    (v.id.clone(), v.user_id.clone())
}

#[tokio::test]
async fn a_token_expires_after_its_ttl_and_then_answers_401_with_a_v3_error_body() {
    let sim = start(SimConfig {
        vehicles: 20,
        token_ttl_s: 1,
        ..SimConfig::default()
    })
    .await;
    let token = app_token(&sim).await;
    let (id, user) = healthy(&sim);
    let path = format!("/v3/vehicles/{id}/signals");
    assert_eq!(get(&sim, &path, &token, Some(&user)).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = get(&sim, &path, &token, Some(&user)).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["type"], "AUTHENTICATION");
    assert_eq!(body["errors"][0]["status"], "401");
    assert!(body["meta"]["requestId"].is_string());
    assert_eq!(get(&sim, &path, "made-up", Some(&user)).await.0, 401);
    assert_eq!(sim.v3_stats().unauthorized, 2);
}

#[tokio::test]
async fn connection_pages_carry_meta_and_links_and_page_size_is_capped_at_100() {
    let sim = start(SimConfig {
        vehicles: 230,
        ..SimConfig::default()
    })
    .await;
    let token = app_token(&sim).await;
    let (status, body) = get(
        &sim,
        "/v3/connections?page%5Bnumber%5D=2&page%5Bsize%5D=500",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["pageSize"], 100);
    assert_eq!(body["meta"]["pageNumber"], 2);
    assert_eq!(body["meta"]["totalCount"], 230);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(100));
    for link in ["self", "first", "prev", "next", "last"] {
        assert!(
            body["links"][link]
                .as_str()
                .is_some_and(|l| l.starts_with(sim.origin())),
            "{link}: {}",
            body["links"]
        );
    }
    let (_, last) = get(
        &sim,
        "/v3/connections?page%5Bnumber%5D=3&page%5Bsize%5D=100",
        &token,
        None,
    )
    .await;
    assert_eq!(last["data"].as_array().map(Vec::len), Some(30));
    assert!(last["links"]["next"].is_null());
    let (status, body) = get(&sim, "/v3/connections?page%5Bsize%5D=0", &token, None).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "PARAMETER");
}

#[tokio::test]
async fn a_signals_call_counts_once_against_the_hourly_vehicle_limit() {
    let sim = start(SimConfig {
        vehicles: 20,
        vehicle_calls_per_hour: 2,
        ..SimConfig::default()
    })
    .await;
    let token = app_token(&sim).await;
    let (id, user) = healthy(&sim);
    let path = format!("/v3/vehicles/{id}/signals");
    assert_eq!(get(&sim, &path, &token, Some(&user)).await.0, 200);
    assert_eq!(get(&sim, &path, &token, Some(&user)).await.0, 200);
    let (status, body) = get(&sim, &path, &token, Some(&user)).await;
    assert_eq!(status, 429);
    assert_eq!(body["errors"][0]["code"], "VEHICLE");
    assert_eq!(sim.stats().rate_limited_vehicle, 1);
    assert_eq!(sim.vehicle_requests(&id), Some(3));
}

#[tokio::test]
async fn v3_vehicle_calls_draw_from_the_app_bucket() {
    let sim = start(SimConfig {
        vehicles: 20,
        vehicle_calls_per_hour: 0,
        app_rate_limit: Some(AppRateLimit {
            burst: 2,
            refill_per_min: 0.5,
        }),
        ..SimConfig::default()
    })
    .await;
    let token = app_token(&sim).await;
    let (id, user) = healthy(&sim);
    let path = format!("/v3/vehicles/{id}");
    assert_eq!(get(&sim, &path, &token, Some(&user)).await.0, 200);
    assert_eq!(get(&sim, &path, &token, None).await.0, 200);
    let (status, body) = get(&sim, &path, &token, None).await;
    assert_eq!(status, 429);
    assert_eq!(body["errors"][0]["code"], "SMARTCAR_API");
    assert_eq!(sim.stats().rate_limited_app, 1);
}
