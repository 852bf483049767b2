//! The Smartcar simulator: a seeded fleet served over HTTP with Smartcar's paths, headers, errors and limits.
//!
//! It is the backend of every client test, the demo backend of the dashboard, and `vtriage sim`.
//! It simulates the world, never our diagnosis: nothing here calls `health`.
//!
//! What it serves (every path also with a trailing slash; `?flags=` ignored):
//! - `GET /v2.0/management/connections` (Basic `default:<amt>`; `limit` 1–100, default 10; `cursor`,
//!   `user_id`, `vehicle_id`, `mode`), newest connection first, `paging.cursor` null on the last page.
//! - With `Authorization: Bearer <token>`: `GET /v2.0/user`, `GET /v2.0/vehicles` (`limit` ≤ 50,
//!   `offset`), and under `/v2.0/vehicles/{id}`: `/` (attributes), `/vin`, `/permissions`
//!   (`limit` default 25, `offset`), `/location`, `/odometer`, `/battery`, `/charge`, `/fuel`,
//!   `/tires/pressure`, `/engine/oil`, `POST /batch`, `/tesla/virtual_key`, `/tesla/user/access`,
//!   `/tesla/attributes`.
//! - `GET /oauth/authorize`, `/oauth/reauthenticate`: a page standing in for Smartcar Connect.
//! - API v3 with API Authentication: `POST /oauth2/token`, `GET /v3/connections`, `GET /v3/vehicles/{id}`
//!   and its `/signals[/{code}]` (see `v3.rs` for how each situation looks there).
//! - Ground truth and counters: `GET /_sim/fleet`, `GET /_sim/stats[?vehicle_id=]`, `POST /_sim/stats/reset`,
//!   `GET /_sim/v3/stats`.
//!
//! A vehicle request is checked in this order: path (404 `RESOURCE_NOT_FOUND:PATH`), token (401
//! `AUTHENTICATION`, also for every token of a `token-expired` user), app bucket (429
//! `RATE_LIMIT:SMARTCAR_API`), ownership (404), injected fault, latency, then per data call: the
//! hourly per-vehicle limit (429 `RATE_LIMIT:VEHICLE`), the situation's rate-limit and permission errors,
//! compatibility (501), the situation's other errors, and finally the data.

mod api_error;
pub mod catalog;
mod cli;
mod dice;
pub mod fleet;
mod limits;
mod routes;
pub mod stats;
mod v3;
pub mod vin;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use api_error::VIRTUAL_KEY_URL;
pub use catalog::Powertrain;
pub use cli::{LatencyProfile, RateLimitArg, SimArgs, describe, help, run_cli};
pub use fleet::{Fleet, SimUser, SimVehicle, Situation};
pub use stats::SimStats;
pub use v3::V3Stats;

/// How long vehicle calls take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// `ms` plus a uniform draw in `0..=jitter_ms`.
    Fixed { ms: u64, jitter_ms: u64 },
    /// Like Smartcar's documented figures: 3–45 s on average, occasionally up to 300 s.
    Realistic,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed {
            ms: 0,
            jitter_ms: 0,
        }
    }
}

impl Latency {
    /// What one call takes on average.
    pub fn mean(self) -> Duration {
        match self {
            Latency::Fixed { ms, jitter_ms } => {
                Duration::from_millis(ms) + Duration::from_millis(jitter_ms) / 2
            }
            // 97 % of 3 s plus an exponential tail of mean 8 s (capped at 45 s), 3 % of 45–300 s.
            Latency::Realistic => Duration::from_secs(16),
        }
    }

    /// One draw, from a uniform value `u` and a second uniform value `v`, both in `[0, 1)`.
    pub fn draw(self, u: f64, v: f64) -> Duration {
        match self {
            Latency::Fixed { ms, jitter_ms } => {
                let jitter = if jitter_ms == 0 {
                    0
                } else {
                    (u * (jitter_ms + 1) as f64) as u64
                };
                Duration::from_millis(ms.saturating_add(jitter))
            }
            Latency::Realistic => {
                // Mostly 3 s plus an exponential tail (mean ≈ 11 s, capped at 45 s); 3 % wake-ups of 45–300 s.
                let secs = if u < 0.03 {
                    45.0 + v * 255.0
                } else {
                    (3.0 - 8.0 * (1.0 - v).ln()).min(45.0)
                };
                Duration::from_secs_f64(secs)
            }
        }
    }
}

/// Smartcar's app-wide token bucket: `burst` requests, refilling `refill_per_min` per minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppRateLimit {
    pub burst: u32,
    pub refill_per_min: f64,
}

impl AppRateLimit {
    /// Smartcar's default plan: 120 requests, refilling 2 per minute.
    pub const SMARTCAR_DEFAULT: AppRateLimit = AppRateLimit {
        burst: 120,
        refill_per_min: 2.0,
    };
}

/// Everything that shapes a simulator run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub vehicles: usize,
    pub seed: u64,
    /// Application management token for the Management API (Basic `default:<amt>`).
    pub amt: String,
    /// Appears in re-authentication links; with `client_secret`, the v3 client credentials.
    pub client_id: String,
    /// The v3 client secret `POST /oauth2/token` accepts.
    pub client_secret: String,
    /// How long a v3 application token lasts, seconds (Smartcar: 3600).
    pub token_ttl_s: u64,
    /// The first v3 application token is revoked once it has been accepted this many times
    /// (0: never). Requests accepted before that still answer, however late.
    pub revoke_first_token_after: u64,
    pub latency: Latency,
    /// Share of requests (0–1) answered with a random fault instead.
    pub fault_rate: f64,
    /// `None`: no app-wide limit.
    pub app_rate_limit: Option<AppRateLimit>,
    /// Data calls per vehicle per rolling hour before 429 `RATE_LIMIT:VEHICLE`; 0 = unlimited.
    /// Every data endpoint call and every batch item counts; attributes, permissions and the Tesla
    /// endpoints do not (they answer from Smartcar's side without waking the car).
    pub vehicle_calls_per_hour: u32,
    /// How long a client may take to send a request's headers (see [`HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: std::time::Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            vehicles: 2_000,
            seed: 7,
            amt: "sim-amt".to_string(),
            client_id: "sim-client-id".to_string(),
            client_secret: "sim-client-secret".to_string(),
            token_ttl_s: 3_600,
            revoke_first_token_after: 0,
            latency: Latency::default(),
            fault_rate: 0.0,
            app_rate_limit: None,
            vehicle_calls_per_hour: 30,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

impl SimConfig {
    fn validate(&self) -> Result<(), SimError> {
        let bad =
            |field: &'static str, reason: String| Err(SimError::InvalidConfig { field, reason });
        if !(0.0..=1.0).contains(&self.fault_rate) {
            return bad(
                "fault_rate",
                format!("{} is not between 0 and 1", self.fault_rate),
            );
        }
        if self.vehicles == 0 {
            return bad("vehicles", "the fleet needs at least one vehicle".into());
        }
        if let Some(limit) = self.app_rate_limit
            && (limit.burst == 0
                || !(limit.refill_per_min > 0.0 && limit.refill_per_min.is_finite()))
        {
            return bad(
                "app_rate_limit",
                "burst and refill per minute must both be above 0".into(),
            );
        }
        if self.client_secret.is_empty() || self.client_id.is_empty() {
            return bad(
                "client_secret",
                "the client id and secret cannot be empty".into(),
            );
        }
        if self.token_ttl_s == 0 {
            return bad("token_ttl_s", "tokens must live at least 1 second".into());
        }
        if self.amt.is_empty() {
            return bad("amt", "the management token cannot be empty".into());
        }
        Ok(())
    }
}

/// Why the simulator could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source} (is the port in use? try --port 0 for a free one)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid simulator setting {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("invalid value {value:?} for {flag}: {reason}")]
    InvalidFlag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot write the tokens file {path}: {source}")]
    WriteTokens {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the simulator's server stopped: {0}")]
    Serve(std::io::Error),
}

/// A running simulator. Dropping it stops the server (in-flight requests finish).
#[derive(Debug)]
pub struct SimHandle {
    origin: String,
    addr: SocketAddr,
    state: Arc<routes::SimState>,
    tokens: Vec<(String, String)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: the origin for the API, the Management API and Connect alike.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn amt(&self) -> &str {
        &self.state.config.amt
    }

    pub fn config(&self) -> &SimConfig {
        &self.state.config
    }

    /// `(user id, access token)` for every user, expired ones included.
    pub fn tokens(&self) -> &[(String, String)] {
        &self.tokens
    }

    pub fn fleet(&self) -> &Fleet {
        &self.state.fleet
    }

    pub fn stats(&self) -> SimStats {
        self.state.counters.snapshot()
    }

    /// Requests addressed to one vehicle (`/vehicles/{id}/...`) since start or the last reset.
    pub fn vehicle_requests(&self, vehicle_id: &str) -> Option<u64> {
        self.state.vehicle_requests(vehicle_id)
    }

    /// What the v3 side counted: token requests, refusals, calls without `sc-user-id`.
    pub fn v3_stats(&self) -> V3Stats {
        self.state.v3.stats()
    }

    /// Invalidates every v3 application token issued so far, as deleting a client secret would.
    pub fn revoke_app_tokens(&self) {
        self.state.v3.revoke_all();
    }

    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    /// Stops accepting connections and waits (up to 5 s) for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }

    /// Serves until the server stops on its own (an I/O error) or is shut down.
    async fn wait(&mut self) -> Result<(), SimError> {
        match self.task.as_mut() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(SimError::Serve),
                Err(join) => Err(SimError::Serve(std::io::Error::other(join.to_string()))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// How long a client may take to send a request's headers, by default. A client that trickles
/// them one byte at a time (slowloris) would otherwise hold a connection, and a task, for ever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts a simulator on `bind` (port 0 picks a free port) inside the current tokio runtime.
pub async fn spawn(config: SimConfig, bind: SocketAddr) -> Result<SimHandle, SimError> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| SimError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr: bind, source })?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let origin = match addr {
        SocketAddr::V6(_) if !addr.ip().is_unspecified() => {
            format!("http://[{host}]:{}", addr.port())
        }
        _ => format!("http://{host}:{}", addr.port()),
    };
    let header_read_timeout = config.header_read_timeout;
    let fleet = Fleet::generate(config.vehicles, config.seed);
    let tokens = fleet.tokens();
    let state = Arc::new(routes::SimState::new(config, fleet, origin.clone()));
    let router = routes::router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let limits = crate::http_serve::Limits {
        header_read_timeout,
        // A test or a benchmark opens as many connections as it likes.
        max_connections: 1 << 20,
        max_per_peer: 1 << 20,
        drain: std::time::Duration::from_millis(500),
    };
    let task = tokio::spawn(crate::http_serve::serve(listener, router, limits, async {
        let _ = rx.await;
    }));
    Ok(SimHandle {
        origin,
        addr,
        state,
        tokens,
        shutdown: Some(tx),
        task: Some(task),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realistic_latency_averages_seconds_and_stays_under_five_minutes() {
        let dice = dice::Dice::new(3);
        let draws: Vec<f64> = (0..20_000)
            .map(|_| {
                Latency::Realistic
                    .draw(dice.unit(), dice.unit())
                    .as_secs_f64()
            })
            .collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((3.0..=45.0).contains(&mean), "mean {mean}");
        assert!(draws.iter().all(|d| (3.0..=300.0).contains(d)));
        assert!(draws.iter().any(|d| *d > 45.0), "some calls wake the car");
    }

    #[test]
    fn each_latency_profile_states_the_mean_of_its_draws() {
        let dice = dice::Dice::new(5);
        for latency in [
            Latency::Realistic,
            Latency::Fixed {
                ms: 250,
                jitter_ms: 500,
            },
        ] {
            let n = 50_000;
            let drawn = (0..n)
                .map(|_| latency.draw(dice.unit(), dice.unit()).as_secs_f64())
                .sum::<f64>()
                / n as f64;
            let stated = latency.mean().as_secs_f64();
            assert!(
                (drawn - stated).abs() / stated < 0.1,
                "{latency:?}: drawn {drawn:.2} s, stated {stated:.2} s"
            );
        }
    }

    #[test]
    fn fixed_latency_adds_jitter_within_bounds() {
        let fixed = Latency::Fixed {
            ms: 100,
            jitter_ms: 50,
        };
        assert_eq!(fixed.draw(0.0, 0.0), Duration::from_millis(100));
        assert!(fixed.draw(0.999, 0.0) <= Duration::from_millis(150));
        assert_eq!(Latency::default().draw(0.5, 0.5), Duration::ZERO);
    }

    #[test]
    fn invalid_settings_are_refused_with_the_field_named() {
        let bad = SimConfig {
            fault_rate: 1.5,
            ..SimConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(SimError::InvalidConfig {
                field: "fault_rate",
                ..
            })
        ));
        let bad = SimConfig {
            app_rate_limit: Some(AppRateLimit {
                burst: 0,
                refill_per_min: 2.0,
            }),
            ..SimConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(SimError::InvalidConfig {
                field: "app_rate_limit",
                ..
            })
        ));
        assert!(SimConfig::default().validate().is_ok());
    }
}
