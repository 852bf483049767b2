//! One set of secrets redacted on every path of the desk: a delivery echoing the v3 client secret
//! and an upstream error echoing the AMT reach neither the database nor the agents.

use crate::desk_support;

use std::time::{Duration, Instant};

use desk_support::{AMT, Schema, Serve, add_agent, database_url, http, post_signed, vehicle_error};

const CLIENT_SECRET: &str = "v3-client-secret-echoed-5e1f0c";

/// No row of the schema's tables holds `secret`.
async fn stored_nowhere(schema: &Schema, secret: &str) {
    let like = format!("%{secret}%");
    for table in [
        "webhook_events",
        "vehicles",
        "status_history",
        "probe_results",
    ] {
        let found: i64 = schema
            .client
            .query_one(
                &format!("SELECT count(*) FROM {table} t WHERE t::text LIKE $1"),
                &[&like],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(found, 0, "the secret is stored in {table}");
    }
}

async fn get_text(serve: &Serve, path: &str, token: &str) -> String {
    let r = http()
        .get(format!("{}{path}", serve.origin))
        .bearer_auth(token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_echoing_the_client_secret_is_redacted_on_the_fleet_and_the_stream() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = Serve::start_with(
        &database_url(),
        &schema.name,
        &[
            "--api",
            "v3",
            "--api-origin",
            "http://127.0.0.1:1",
            "--iam-origin",
            "http://127.0.0.1:1",
            "--client-id",
            "client-echo",
            "--no-prober",
        ],
        &[("SMARTCAR_CLIENT_SECRET", CLIENT_SECRET)],
    );
    let token = add_agent(&schema.name, "alice");
    // The stream is read raw, from before the delivery until the car's change arrives.
    let mut stream = http()
        .get(format!("{}/api/v1/stream", serve.origin))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(stream.status(), 200);
    let body = vehicle_error(
        "echo-secret",
        "veh-secret",
        "CONNECTED_SERVICES_ACCOUNT",
        Some("VIRTUAL_KEY_REQUIRED"),
        "ERROR",
        1_760_000_000_000,
        serde_json::json!(["Location.PreciseLocation"]),
    )
    .replace(
        "from the test",
        &format!("client_secret={CLIENT_SECRET} refused"),
    );
    assert!(body.contains(CLIENT_SECRET));
    assert_eq!(post_signed(&http(), &serve.webhook_url(), &body).await, 200);
    let mut streamed = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !streamed.contains("veh-secret") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => streamed.push_str(&String::from_utf8_lossy(&chunk)),
            _ => panic!("the change never reached the stream: {streamed}"),
        }
    }
    // Whatever the stream sends of the car within a moment more.
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(Duration::from_millis(500), stream.chunk()).await
    {
        streamed.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!streamed.contains(CLIENT_SECRET), "{streamed}");
    let fleet = get_text(&serve, "/api/v1/fleet", &token).await;
    assert!(fleet.contains("veh-secret"), "{fleet}");
    assert!(!fleet.contains(CLIENT_SECRET), "{fleet}");
    assert!(fleet.contains("[redacted]"), "{fleet}");
    stored_nowhere(&schema, CLIENT_SECRET).await;
}

/// A v3 server that lists one car and answers its signals with a 500 quoting the AMT.
async fn upstream_echoing_the_amt() -> String {
    async fn answer(uri: axum::http::Uri) -> axum::response::Response {
        use axum::response::IntoResponse;
        let json = |body: serde_json::Value| {
            ([("content-type", "application/json")], body.to_string()).into_response()
        };
        let path = uri.path();
        if path.ends_with("/oauth2/token") {
            json(
                serde_json::json!({"access_token": "app-token-echo-test", "token_type": "Bearer", "expires_in": 3600}),
            )
        } else if path.ends_with("/v3/connections") {
            json(serde_json::json!({"data": [{
                "id": "c1",
                "relationships": {"vehicle": {"data": {"id": "veh-500"}}, "user": {"data": {"id": "u1"}}},
                "attributes": {"permissions": ["read_vin"], "createdAt": "2025-01-01T00:00:00Z",
                               "vehicle": {"make": "TESLA", "model": "Model 3", "year": 2022}}
            }], "meta": {"totalCount": 1}}))
        } else {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "text/plain")],
                format!(
                    "upstream failed; request had Authorization: Basic default:{AMT} and amt={AMT}"
                ),
            )
                .into_response()
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let app = axum::Router::new().fallback(answer);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    origin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_v3_mode_an_upstream_500_echoing_the_amt_reaches_no_agent() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let origin = upstream_echoing_the_amt().await;
    let serve = Serve::start_with(
        &database_url(),
        &schema.name,
        &[
            "--api",
            "v3",
            "--api-origin",
            &origin,
            "--iam-origin",
            &origin,
            "--client-id",
            "client-500",
            "--no-rate-limit",
        ],
        &[("SMARTCAR_CLIENT_SECRET", CLIENT_SECRET)],
    );
    let token = add_agent(&schema.name, "bob");
    let deadline = Instant::now() + Duration::from_secs(30);
    while schema.count("SELECT count(*) FROM vehicles").await < 1 {
        assert!(Instant::now() < deadline, "the fleet was never listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let probed = http()
        .post(format!(
            "{}/api/v1/vehicles/veh-500/probe?force=true",
            serve.origin
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(probed.status(), 200);
    let answer = probed.text().await.unwrap_or_default();
    let vehicle = get_text(&serve, "/api/v1/vehicles/veh-500", &token).await;
    let fleet = get_text(&serve, "/api/v1/fleet", &token).await;
    for text in [&answer, &vehicle, &fleet] {
        assert!(!text.contains(AMT), "{text}");
    }
    assert!(fleet.contains("[redacted]"), "the echo arrived: {fleet}");
    stored_nowhere(&schema, AMT).await;
}
