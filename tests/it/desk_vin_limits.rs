//! VIN lookups through the agents' API, bounded per agent: each costs Smartcar requests (said in
//! the answer), and an agent past its hourly allowance is answered 429 before anything is sent.

use crate::desk_support;

use std::time::{Duration, Instant};

use serde_json::Value;

use desk_support::{Schema, add_agent, http, v3_desk};

/// A VIN of the fleet's make and year, with a serial no car has and a check digit that fits.
fn made_up_vin(like: &str, serial: &str) -> String {
    let mut vin: Vec<char> = like.chars().collect();
    for (i, c) in serial.chars().enumerate() {
        vin[11 + i] = c;
    }
    let text: String = vin.iter().collect();
    vin[8] = vtriage::smartcar::vin::check_digit(&text).expect("a check digit");
    vin.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_past_its_hourly_vin_lookups_is_answered_429_before_anything_is_sent() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let (alice, bob) = (
        add_agent(&schema.name, "alice"),
        add_agent(&schema.name, "bob"),
    );
    let (sim, serve) = v3_desk(
        &schema.name,
        vtriage::sim::SimConfig {
            vehicles: 40,
            seed: 7,
            vehicle_calls_per_hour: 0,
            ..vtriage::sim::SimConfig::default()
        },
        &["--vin-lookups-per-hour", "2"],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while schema.count("SELECT count(*) FROM vehicles").await < 40 {
        assert!(Instant::now() < deadline, "the fleet was never listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let like = sim.fleet().vehicles[3].vin.clone();
    let vins: Vec<String> = ["900001", "900002", "900003"]
        .iter()
        .map(|s| made_up_vin(&like, s))
        .collect();
    for vin in &vins {
        assert!(sim.fleet().vehicles.iter().all(|v| &v.vin != vin), "{vin}");
    }
    let find = async |token: &str, vin: &str| {
        let r = http()
            .post(format!("{}/api/v1/vins/{vin}", serve.origin))
            .bearer_auth(token)
            .send()
            .await
            .expect("answer");
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        (
            r.status().as_u16(),
            retry_after,
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let mut costs = Vec::new();
    for vin in &vins[..2] {
        let (status, _, answer) = find(&alice, vin).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["done"], true, "{answer}");
        assert_eq!(answer["vehicle_id"], Value::Null, "{answer}");
        costs.push(
            answer["requests"]
                .as_u64()
                .expect("the cost is in the answer"),
        );
    }
    // The first reads every candidate's VIN; the second finds them all read already.
    assert!(costs[0] >= 1, "{costs:?}");
    assert_eq!(costs[1], 0, "{costs:?}");
    let before = sim.stats().requests_total;
    let (status, retry_after, answer) = find(&alice, &vins[2]).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["started"], 2, "{answer}");
    assert_eq!(answer["limit"], 2, "{answer}");
    assert!(
        retry_after.is_some_and(|s| (1..=3600).contains(&s)),
        "{retry_after:?}"
    );
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("retry in")),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sim.stats().requests_total, before, "nothing sent for it");
    // The allowance is each agent's own.
    let (status, _, answer) = find(&bob, &vins[2]).await;
    assert_eq!(status, 200, "{answer}");
}
