//! The desk's probe queue, fair and bounded: agents are served in turn, and one agent's waiting
//! requests are capped with a clear 429.

use crate::desk_support;

use std::time::{Duration, Instant};

use desk_support::{Schema, Serve, add_agent, database_url, http, v3_desk};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agents_sixty_forced_probes_do_not_make_anothers_one_wait_behind_them() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    // The fleet listed into the desk, then that prober stopped.
    let config = vtriage::sim::SimConfig {
        vehicles: 100,
        ..vtriage::sim::SimConfig::default()
    };
    let (sim, mut lister) = v3_desk(&schema.name, config, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while schema.count("SELECT count(*) FROM vehicles").await < 100 {
        assert!(Instant::now() < deadline, "the fleet was never listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = lister.terminate();
    let vehicles: Vec<String> = schema
        .client
        .query(
            "SELECT vehicle_id FROM vehicles ORDER BY vehicle_id LIMIT 61",
            &[],
        )
        .await
        .expect("vehicles")
        .iter()
        .map(|r| r.get(0))
        .collect();

    // Agents queue on a desk that does not probe: A sixty forced probes, then B one.
    let api = Serve::start(
        &database_url(),
        &schema.name,
        &["--demo", "--no-prober", "--max-waiting-probes", "60"],
    );
    let (a, b) = (
        add_agent(&schema.name, "agent-a"),
        add_agent(&schema.name, "agent-b"),
    );
    let client = http();
    let ask = async |token: &str, vehicle: &str| {
        client
            .post(format!(
                "{}/api/v1/vehicles/{vehicle}/probe?force=true&wait=0",
                api.origin
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("probe request")
    };
    for vehicle in &vehicles[..60] {
        assert_eq!(ask(&a, vehicle).await.status(), 202);
    }
    // A's sixty-first waits for nothing: it is refused, saying why.
    let refused = ask(&a, &vehicles[60]).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(body["waiting"], 60, "{body}");
    assert_eq!(body["limit"], 60, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("retry later")),
        "{body}"
    );
    assert_eq!(ask(&b, &vehicles[60]).await.status(), 202);

    // A prober probing one car at a time serves B within the first two.
    let sim_config = sim.config().clone();
    let _prober = Serve::start_with(
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
            "--concurrency",
            "1",
        ],
        &[("SMARTCAR_CLIENT_SECRET", sim_config.client_secret.as_str())],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while schema
        .count("SELECT count(*) FROM probe_requests WHERE requested_by = 'agent-b' AND served_at IS NOT NULL")
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "B's probe was never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served_before_b = schema
        .count(
            "SELECT count(*) FROM probe_requests a, probe_requests b
             WHERE a.requested_by = 'agent-a' AND b.requested_by = 'agent-b'
               AND a.served_at < b.served_at",
        )
        .await;
    assert!(
        served_before_b <= 1,
        "{served_before_b} of A's probes were served before B's"
    );
}
