//! The desk is the one diagnoser: a new `policies.toml` at start diagnoses the stored fleet again
//! without a request to Smartcar, and a refused token reads the same whichever path brought it.

use crate::desk_support;

use std::process::Command;
use std::time::{Duration, Instant};

use desk_support::{
    Schema, Serve, database_url, http, post_signed, temp_home, v3_desk, vehicle_error,
};
use serde_json::Value;

fn add_agent(schema: &str, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["agent", "--database", &database_url(), "--schema", schema])
        .args(["add", name])
        .env_remove("DATABASE_URL")
        .output()
        .expect("agent add");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every request the simulator answered, the token endpoint's included.
fn sim_requests(sim: &vtriage::sim::SimHandle) -> u64 {
    sim.stats().requests_total + sim.v3_stats().token_requests
}

async fn finding(schema: &Schema, vehicle: &str) -> Option<String> {
    schema
        .client
        .query_one(
            "SELECT finding FROM vehicles WHERE vehicle_id = $1",
            &[&vehicle],
        )
        .await
        .expect("the vehicle's row")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_policies_file_at_start_diagnoses_the_stored_fleet_again_without_a_request() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let config = vtriage::sim::SimConfig {
        vehicles: 30,
        seed: 7,
        vehicle_calls_per_hour: 0,
        latency: vtriage::sim::Latency::Fixed {
            ms: 0,
            jitter_ms: 0,
        },
        ..vtriage::sim::SimConfig::default()
    };
    let (sim, mut serve) = v3_desk(&schema.name, config, &[]).await;
    let tesla = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.is_tesla() && v.situation == vtriage::sim::Situation::VirtualKeyMissing)
        .expect("a Tesla without its key in the seeded fleet")
        .id
        .clone();
    let token = add_agent(&schema.name, "gus");
    // The prober lists the fleet at takeover; a probe is asked for a car the desk knows.
    let listed = Instant::now() + Duration::from_secs(30);
    while schema
        .count(&format!(
            "SELECT count(*) FROM vehicles WHERE vehicle_id = '{tesla}'"
        ))
        .await
        == 0
    {
        assert!(Instant::now() < listed, "the desk never listed {tesla}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer: Value = http()
        .post(format!(
            "{}/api/v1/vehicles/{tesla}/probe?wait=30",
            serve.origin
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("probe request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["served"], true, "{answer}");
    assert_eq!(
        finding(&schema, &tesla).await.as_deref(),
        Some("virtual-key-missing")
    );
    serve.terminate();
    let before = sim_requests(&sim);

    // The desk starts again with a policies file that names the rule's finding otherwise.
    let home = temp_home("new-rules");
    std::fs::create_dir_all(home.join("config")).expect("config dir");
    std::fs::write(
        home.join("config/policies.toml"),
        vtriage::health::policy::BUILTIN_POLICIES.replace(
            "finding = \"virtual-key-missing\"",
            "finding = \"tesla-key-unpaired\"",
        ),
    )
    .expect("policies file");
    let home_text = home.to_string_lossy().to_string();
    let sim_config = sim.config().clone();
    let _again = Serve::start_with(
        &database_url(),
        &schema.name,
        &[
            "--api",
            "v3",
            "--api-origin",
            sim.origin(),
            "--iam-origin",
            sim.origin(),
            "--client-id",
            &sim_config.client_id,
            "--no-rate-limit",
            "--no-prober",
        ],
        &[
            ("SMARTCAR_CLIENT_SECRET", sim_config.client_secret.as_str()),
            ("VTRIAGE_HOME", home_text.as_str()),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = finding(&schema, &tesla).await;
        if now.as_deref() == Some("tesla-key-unpaired") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {now:?} with the new rules"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let history: Vec<(Option<String>, String)> = schema
        .client
        .query(
            "SELECT finding, cause FROM status_history WHERE vehicle_id = $1 ORDER BY id DESC LIMIT 1",
            &[&tesla],
        )
        .await
        .expect("history")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        history,
        vec![(Some("tesla-key-unpaired".to_string()), "rules".to_string())]
    );
    // Every stored verdict is now the new rules': none is left made with the old ones.
    let left = schema
        .count(&format!(
            "SELECT count(*) FROM vehicles WHERE diagnosis IS NOT NULL AND rules_sha256 IS DISTINCT FROM
                 (SELECT rules_sha256 FROM vehicles WHERE vehicle_id = '{tesla}')"
        ))
        .await;
    assert_eq!(left, 0);
    assert_eq!(sim_requests(&sim), before, "not one request to Smartcar");
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_v3_desk_a_connection_refused_in_a_webhook_reads_as_the_v3_probe_says_never_a_user_token()
 {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let config = vtriage::sim::SimConfig {
        vehicles: 5,
        seed: 3,
        ..vtriage::sim::SimConfig::default()
    };
    let (_sim, serve) = v3_desk(&schema.name, config, &["--no-prober"]).await;
    let body = vehicle_error(
        "e-auth",
        "veh-auth",
        "AUTHENTICATION",
        None,
        "ERROR",
        jiff::Timestamp::now().as_millisecond() - 1000,
        serde_json::json!([]),
    );
    assert_eq!(post_signed(&http(), &serve.webhook_url(), &body).await, 200);
    let token = add_agent(&schema.name, "hal");
    let shown: Value = http()
        .get(format!("{}/api/v1/vehicles/veh-auth", serve.origin))
        .bearer_auth(&token)
        .send()
        .await
        .expect("vehicle read")
        .json()
        .await
        .expect("JSON");
    let action = shown["findings"][0]["remedy"]["action"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(shown["findings"][0]["id"], "connection-revoked", "{shown}");
    assert!(
        action.contains("re-authentication link"),
        "the v3 probe's words: {shown}"
    );
    assert!(
        !action.contains("refresh this user's access token"),
        "no v2.0 user token on a v3 desk: {action}"
    );
    let stored: Value = schema
        .client
        .query_one(
            "SELECT diagnosis FROM vehicles WHERE vehicle_id = 'veh-auth'",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(
        stored["findings"][0]["remedy"]["action"], shown["findings"][0]["remedy"]["action"],
        "the agents see what the desk stored"
    );
}
