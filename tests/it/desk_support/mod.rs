//! What the desk tests share: a private schema on the test PostgreSQL, a `vtriage serve` process,
//! signed deliveries.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio_postgres::NoTls;

pub const AMT: &str = "desk-test-management-token";

/// A value no other test of this run or any other run shares (RandomState is seeded per instance).
pub fn unique() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

pub fn database_url() -> String {
    std::env::var("VTRIAGE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of its own for one test, dropped at the end.
pub struct Schema {
    pub name: String,
    pub client: tokio_postgres::Client,
}

impl Schema {
    /// `None` (with one line on stderr) when no PostgreSQL answers outside CI; under `CI=true`
    /// a missing database fails the test.
    pub async fn create() -> Option<Schema> {
        let url = database_url();
        let connected = match tokio_postgres::connect(&url, NoTls).await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("no PostgreSQL at {url}: {e}; CI needs one (VTRIAGE_TEST_DATABASE_URL)");
                }
                eprintln!(
                    "skipped: no PostgreSQL at {url} ({e}); start one (README, \"A desk server\") or set VTRIAGE_TEST_DATABASE_URL"
                );
                return None;
            }
        };
        let (client, connection) = connected;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let name = format!("vtriage_test_{:016x}", unique());
        client
            .batch_execute(&format!("CREATE SCHEMA {name}; SET search_path = {name}"))
            .await
            .expect("test schema");
        Some(Schema { name, client })
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = database_url();
        // Drop runs outside any runtime guarantee: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A running `vtriage serve`; killed when dropped.
pub struct Serve {
    pub child: Child,
    pub origin: String,
    pub home: PathBuf,
    pub lines: mpsc::Receiver<String>,
}

pub fn temp_home(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vtriage-desk-{name}-{}-{:x}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).expect("temp home");
    dir
}

impl Serve {
    /// Starts `serve` on a free port in `schema`, with `extra` flags, and waits until it listens.
    pub fn start(database: &str, schema: &str, extra: &[&str]) -> Serve {
        Serve::start_with(database, schema, extra, &[])
    }

    /// [`Serve::start`] with these environment variables set too.
    pub fn start_with(database: &str, schema: &str, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let home = temp_home("serve");
        let mut child = Command::new(env!("CARGO_BIN_EXE_vtriage"))
            .args([
                "serve",
                "--database",
                database,
                "--schema",
                schema,
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .args(extra)
            .env("VTRIAGE_HOME", &home)
            .env("SMARTCAR_MANAGEMENT_TOKEN", AMT)
            .env_remove("DATABASE_URL")
            .env("VTRIAGE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("vtriage serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not say it is ready within 30 s");
            };
            if line.contains("vtriage serve ready") {
                let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
                let listen = v["fields"]["listen"].as_str().expect("listen field");
                return Serve {
                    child,
                    origin: format!("http://{listen}"),
                    home,
                    lines: rx,
                };
            }
        }
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/smartcar", self.origin)
    }

    pub fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("serve exits")
    }

    /// The value of a metric line without labels, e.g. `vtriage_prober_active`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = http()
            .get(format!("{}/metrics", self.origin))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// A new agent's token from `vtriage agent add NAME` on the test schema.
pub fn add_agent(schema: &str, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vtriage"))
        .args(["agent", "--database", &database_url(), "--schema", schema])
        .args(["add", name])
        .env_remove("DATABASE_URL")
        .output()
        .expect("vtriage agent runs");
    assert!(
        out.status.success(),
        "agent add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

/// Posts `body` signed with the test AMT; returns the status (0 when no answer came).
pub async fn post_signed(client: &reqwest::Client, url: &str, body: &str) -> u16 {
    let signature = vtriage::desk::webhook::sign(AMT.as_bytes(), body.as_bytes());
    client
        .post(url)
        .header("content-type", "application/json")
        .header("SC-Signature", signature)
        .body(body.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A `VEHICLE_ERROR` delivery.
pub fn vehicle_error(
    event_id: &str,
    vehicle_id: &str,
    error_type: &str,
    code: Option<&str>,
    state: &str,
    delivered_ms: i64,
    signals: serde_json::Value,
) -> String {
    serde_json::json!({
        "eventId": event_id,
        "eventType": "VEHICLE_ERROR",
        "data": {
            "user": {"id": "user-1"},
            "vehicle": {"id": vehicle_id, "make": "TESLA", "model": "Model 3", "year": 2022},
            "errors": [{"type": error_type, "code": code, "state": state,
                        "description": "from the test", "signals": signals}]
        },
        "meta": {"version": "4.0", "deliveryId": format!("d-{event_id}"), "deliveredAt": delivered_ms, "mode": "TEST"}
    })
    .to_string()
}

/// A `VEHICLE_ERROR` that blocks a Tesla: its virtual key is not paired.
pub fn blocked_tesla(event: &str, vehicle: &str) -> String {
    vehicle_error(
        event,
        vehicle,
        "CONNECTED_SERVICES_ACCOUNT",
        Some("VIRTUAL_KEY_REQUIRED"),
        "ERROR",
        1_760_000_000_000,
        serde_json::json!(["Location.PreciseLocation"]),
    )
}

/// The simulator with `config` (its v3 credentials), and `serve` in `schema` probing it on API v3
/// without a rate limit, with `extra` flags.
pub async fn v3_desk(
    schema: &str,
    config: vtriage::sim::SimConfig,
    extra: &[&str],
) -> (vtriage::sim::SimHandle, Serve) {
    let sim = vtriage::sim::spawn(config, "127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("simulator starts");
    let config = sim.config().clone();
    let mut flags = vec![
        "--api",
        "v3",
        "--api-origin",
        sim.origin(),
        "--iam-origin",
        sim.origin(),
        "--client-id",
        &config.client_id,
        "--no-rate-limit",
    ];
    flags.extend_from_slice(extra);
    let serve = Serve::start_with(
        &database_url(),
        schema,
        &flags,
        &[("SMARTCAR_CLIENT_SECRET", config.client_secret.as_str())],
    );
    (sim, serve)
}
