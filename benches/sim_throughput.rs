//! Simulator throughput over loopback with reqwest: requests per second at zero latency.
//!
//! Each iteration sends `REQUESTS` requests from `CONCURRENCY` tasks sharing one keep-alive client;
//! divan reports the rate as items per second. Client and server share the same runtime and cores,
//! so the figure is a floor for the server alone.

use std::sync::Arc;

use divan::Bencher;
use divan::counter::ItemsCount;
use serde_json::json;
use vtriage::sim::{SimConfig, SimHandle, Situation};

const REQUESTS: usize = 2_000;
const CONCURRENCY: usize = 64;

fn main() {
    divan::main();
}

struct Bench {
    rt: tokio::runtime::Runtime,
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
    vehicle: String,
}

fn setup() -> Bench {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = SimConfig {
        vehicles: 2_000,
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    };
    let sim = rt
        .block_on(vtriage::sim::spawn(
            config,
            "127.0.0.1:0".parse().expect("address"),
        ))
        .expect("simulator");
    let v = sim
        .fleet()
        .vehicles
        .iter()
        .find(|v| v.situation == Situation::Healthy)
        .expect("a healthy vehicle");
    let token = sim
        .fleet()
        .user(&v.user_id)
        .expect("owner")
        .access_token
        .clone();
    let vehicle = v.id.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    Bench {
        rt,
        sim,
        http,
        token,
        vehicle,
    }
}

#[derive(Clone, Copy)]
enum Call {
    Attributes,
    Odometer,
    Batch,
    Management,
}

async fn burst(b: Arc<(reqwest::Client, String, String, String, String)>, call: Call) {
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for worker in 0..CONCURRENCY {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let (http, origin, token, vehicle, amt) = &*b;
            let mut n = worker;
            while n < REQUESTS {
                let request = match call {
                    Call::Attributes => http
                        .get(format!("{origin}/v2.0/vehicles/{vehicle}"))
                        .bearer_auth(token),
                    Call::Odometer => http
                        .get(format!("{origin}/v2.0/vehicles/{vehicle}/odometer"))
                        .bearer_auth(token),
                    Call::Batch => http
                        .post(format!("{origin}/v2.0/vehicles/{vehicle}/batch"))
                        .bearer_auth(token)
                        .json(&json!({"requests": [{"path": "/odometer"}, {"path": "/location"}]})),
                    Call::Management => http
                        .get(format!("{origin}/v2.0/management/connections?limit=10"))
                        .basic_auth("default", Some(amt)),
                };
                let response = request.send().await.expect("request");
                assert_eq!(response.status(), 200);
                let _ = response.bytes().await.expect("body");
                n += CONCURRENCY;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

fn run(bencher: Bencher, call: Call) {
    let b = setup();
    let shared = Arc::new((
        b.http.clone(),
        b.sim.origin().to_string(),
        b.token.clone(),
        b.vehicle.clone(),
        b.sim.amt().to_string(),
    ));
    bencher
        .counter(ItemsCount::new(REQUESTS))
        .bench_local(|| b.rt.block_on(burst(shared.clone(), call)));
    let Bench { rt, sim, .. } = b;
    rt.block_on(sim.shutdown());
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn attributes(bencher: Bencher) {
    run(bencher, Call::Attributes);
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn odometer(bencher: Bencher) {
    run(bencher, Call::Odometer);
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn batch_of_two(bencher: Bencher) {
    run(bencher, Call::Batch);
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn management_page(bencher: Bencher) {
    run(bencher, Call::Management);
}
