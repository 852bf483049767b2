//! Ground truth: every vehicle of a seeded simulator fleet, probed over loopback with the real client and
//! diagnosed, must get the status and main finding its situation promises (situations table).

use vtriage::health::{Needs, Policies, Status, diagnose};
use vtriage::sim::{self, SimConfig, Situation};
use vtriage::smartcar::{Answer, Client, ClientSettings, Origins, Probe, ProbeReport, Secret};

fn expected(s: Situation) -> (Status, Option<&'static str>) {
    match s {
        // v2.0 has no webhook subscriptions to miss: such a car reads as healthy.
        Situation::Healthy | Situation::SignalsNotSubscribed => (Status::Healthy, None),
        Situation::VirtualKeyMissing => (Status::Blocked, Some("virtual-key-missing")),
        Situation::VirtualKeyExempt => (Status::Healthy, Some("virtual-key-exempt")),
        Situation::LocationPermissionMissing => {
            (Status::Degraded, Some("tesla-location-permission-missing"))
        }
        Situation::ScopeMissing => (Status::Degraded, Some("permission-missing")),
        Situation::TokenExpired => (Status::Blocked, Some("access-token-expired")),
        Situation::OemAuthenticationFailed => (Status::Blocked, Some("oem-authentication-failed")),
        Situation::SubscriptionLapsed => (Status::Blocked, Some("oem-subscription")),
        Situation::VehicleAsleep | Situation::VehicleUnreachable => {
            (Status::Degraded, Some("vehicle-state"))
        }
        Situation::StaleData => (Status::Warning, Some("stale-data")),
        Situation::RateLimited => (Status::Warning, Some("rate-limited")),
        Situation::QuotaExhausted => (Status::Blocked, Some("billing-request-limit")),
    }
}

/// The probes vtriage asks of a vehicle: attributes, permissions, the data batch, and for a Tesla its endpoints.
async fn probe(client: &Client, token: &Secret, vehicle_id: &str, needs: &Needs) -> ProbeReport {
    let mut observations = vec![
        client.probe(token, vehicle_id, Probe::Attributes).await,
        client.probe(token, vehicle_id, Probe::Permissions).await,
    ];
    observations.extend(
        client
            .batch(token, vehicle_id, &needs.data_to_probe())
            .await,
    );
    let attributes = match observations.first().and_then(|o| o.answer()) {
        Some(Answer::Attributes(a)) => Some(a.clone()),
        _ => None,
    };
    if attributes.as_ref().is_some_and(|a| a.is_tesla()) {
        for p in [
            Probe::VirtualKey,
            Probe::TeslaUserAccess,
            Probe::TeslaAttributes,
        ] {
            observations.push(client.probe(token, vehicle_id, p).await);
        }
    }
    ProbeReport {
        vehicle_id: vehicle_id.to_string(),
        user_id: None,
        has_token: true,
        attributes,
        vin: None,
        observations,
    }
}

/// Probes every vehicle of the fleet at once (slow faults overlap instead of adding up).
async fn probe_fleet(sim: &sim::SimHandle, needs: &Needs) -> Vec<(usize, ProbeReport)> {
    let client =
        Client::new(Origins::all(sim.origin()), ClientSettings::default()).expect("client");
    let tokens: std::collections::HashMap<String, String> = sim.tokens().iter().cloned().collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, v) in sim.fleet().vehicles.iter().enumerate() {
        let token = Secret::new(tokens.get(&v.user_id).expect("token for user").clone());
        let (client, needs, id) = (client.clone(), needs.clone(), v.id.clone());
        tasks.spawn(async move { (i, probe(&client, &token, &id, &needs).await) });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.expect("probe task"));
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_simulated_situation_is_diagnosed_as_the_table_says() {
    let config = SimConfig {
        vehicles: 400,
        seed: 11,
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    };
    let sim = sim::spawn(config, "127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("simulator starts");
    let needs = Needs {
        connect_origin: sim.origin().to_string(),
        ..Needs::default()
    };
    let policies = Policies::builtin();

    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    let mut wrong = Vec::new();
    for (i, report) in probe_fleet(&sim, &needs).await {
        let v = &sim.fleet().vehicles[i];
        let d = diagnose(&report, &policies, &needs, jiff::Timestamp::now());
        let (status, main) = expected(v.situation);
        *seen.entry(v.situation.name()).or_default() += 1;
        let got_main = d.main_finding().map(|f| f.id.as_str());
        if d.status != status || got_main != main {
            wrong.push(format!(
                "{} {} {} {} [{}]: expected {} {:?}, got {} {:?}: {:?}",
                v.id,
                v.make,
                v.model,
                v.year,
                v.situation.name(),
                status.label(),
                main,
                d.status.label(),
                got_main,
                d.findings
                    .iter()
                    .map(|f| (&f.id, &f.title))
                    .collect::<Vec<_>>()
            ));
        }
        if v.situation == Situation::OemAuthenticationFailed {
            // Smartcar's own re-authentication URL is passed on untouched.
            let link = d
                .main_finding()
                .and_then(|f| f.remedy.link.as_deref())
                .unwrap_or_default();
            assert!(
                link.starts_with(&format!("{}/oauth/reauthenticate?", sim.origin())),
                "{link}"
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} vehicles misdiagnosed:\n{}",
        wrong.len(),
        sim.fleet().vehicles.len(),
        wrong.join("\n")
    );
    // The fleet must exercise every situation, or the test proves less than it claims.
    assert_eq!(
        seen.len(),
        Situation::ALL.len(),
        "situations seen: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_are_named_never_unknown() {
    let config = SimConfig {
        vehicles: 120,
        seed: 5,
        vehicle_calls_per_hour: 0,
        fault_rate: 0.4,
        ..SimConfig::default()
    };
    let sim = sim::spawn(config, "127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("simulator starts");
    let needs = Needs {
        connect_origin: sim.origin().to_string(),
        ..Needs::default()
    };
    let policies = Policies::builtin();
    let mut ids = std::collections::BTreeSet::new();
    for (i, report) in probe_fleet(&sim, &needs).await {
        let d = diagnose(&report, &policies, &needs, jiff::Timestamp::now());
        for f in &d.findings {
            assert_ne!(
                f.id,
                "unknown-error",
                "{}: {}",
                sim.fleet().vehicles[i].id,
                f.title
            );
            ids.insert(f.id.clone());
        }
    }
    for fault in ["upstream-error", "upstream-html", "unreadable-response"] {
        assert!(ids.contains(fault), "no {fault} among {ids:?}");
    }
}
