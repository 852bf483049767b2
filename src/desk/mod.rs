//! `vtriage serve`: the desk server on PostgreSQL. It receives Smartcar webhooks, keeps every
//! vehicle's diagnosis and history, and runs the desk's one prober.
//!
//! - `webhook`: signatures, challenges and payloads (pure);
//! - `facts`: how deliveries merge per vehicle in any order, and the report diagnosis reads (pure);
//! - `db`: the pool, the embedded migrations and the transactions;
//! - `server`: the webhook routes; `prober`: the advisory-locked scheduler; `rediagnosis`: the
//!   advisory-locked re-diagnosis as time passes and when the rules change; `metrics`: the counters;
//! - `agents`: agent tokens (kept as hashes); `api`: the agents' API and live stream; `wire`: the
//!   documents both sides read; `remote`: the client that turns the API back into `fetch` events.
//!
//! TLS is left to a reverse proxy in front of `serve` (see the README); the database is reached
//! without TLS, so it belongs on the same machine or a private network.

pub mod agents;
pub mod api;
pub mod db;
pub mod facts;
pub mod metrics;
pub mod prober;
pub mod rediagnosis;
pub mod rejected;
pub mod remote;
pub mod server;
pub mod webhook;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ApiVersion;
use crate::health;
use crate::smartcar::Secret;
use crate::untrusted::Keyring;

pub use db::{Db, DbConfig, DbError, Diagnoser, Pruned, Retention, Stored};
pub use metrics::Metrics;
pub use prober::ProberConfig;
pub use rediagnosis::RediagnosisConfig;
pub use server::IngestConfig;

/// Why the desk could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "serve needs the application management token to verify webhooks: --amt, SMARTCAR_MANAGEMENT_TOKEN or amt_file in the profile"
    )]
    NoAmt,
    #[error("the HTTP server stopped: {0}")]
    Serve(std::io::Error),
}

/// Everything `serve` runs with.
pub struct DeskConfig {
    pub listen: SocketAddr,
    pub db: DbConfig,
    pub amt: Secret,
    /// Every other secret the settings name (the v3 client secret, users' access tokens): a
    /// delivery or an answer echoing one is redacted like one echoing the AMT.
    pub secrets: Vec<Secret>,
    pub max_body_bytes: usize,
    /// Timeouts and connection caps of the HTTP face.
    pub http_limits: crate::http_serve::Limits,
    /// How long each table keeps its rows.
    pub retention: Retention,
    /// How many refused deliveries are kept for `serve --rejected`, how long, how fast.
    pub keep_rejected: rejected::KeepRejected,
    /// `None`: this process never probes (webhooks only).
    pub prober: Option<ProberSetup>,
    /// Probe requests one agent may have waiting.
    pub max_waiting_probes: u32,
    /// VIN lookups one agent may start an hour.
    pub vin_lookups_per_hour: u32,
    /// The rules the agents' clients diagnose with: the policies file's text.
    pub policies_text: String,
    /// What the app needs, for the fix links agents see.
    pub needs: health::Needs,
    /// The API the desk's prober speaks, which the diagnoses speak too.
    pub api: ApiVersion,
    /// How the stored verdicts are diagnosed again as time passes.
    pub rediagnosis: RediagnosisConfig,
    /// How deliveries arriving together share a commit.
    pub ingest: IngestConfig,
}

/// What the desk's prober runs with.
pub struct ProberSetup {
    pub config: ProberConfig,
    /// The Smartcar settings, resolved once by `serve` (the secret commands may be left for the
    /// prober to run).
    pub settings: crate::setup::Settings,
}

/// The desk's diagnoser: the given rules and needs, in the words of the API the desk probes with.
/// On v3 there is no user token: a refused connection, whichever path brought it (a probe that
/// proved the app's token good, or a webhook about the vehicle), reads as that vehicle's connection
/// refused, never as a user's access token to refresh.
pub fn diagnoser(policies: health::Policies, needs: health::Needs, api: ApiVersion) -> Diagnoser {
    Arc::new(move |report, now| match api {
        ApiVersion::V3 => {
            let report = in_v3_terms(report);
            health::diagnose(&report, &policies, &needs, now)
        }
        ApiVersion::V2 => health::diagnose(report, &policies, &needs, now),
    })
}

/// `report` with every refused token observed as the v3 probe observes it (its signals request).
fn in_v3_terms(
    report: &crate::smartcar::ProbeReport,
) -> std::borrow::Cow<'_, crate::smartcar::ProbeReport> {
    use crate::smartcar::Probe;
    let worded =
        |o: &crate::smartcar::Observation| o.probe == Probe::Signals || !o.is_token_rejected();
    if report.observations.iter().all(worded) {
        return std::borrow::Cow::Borrowed(report);
    }
    let mut report = report.clone();
    for o in &mut report.observations {
        if !worded(o) {
            o.probe = Probe::Signals;
        }
    }
    std::borrow::Cow::Owned(report)
}

/// A fingerprint of everything a diagnosis reads besides the evidence: the policies file's text,
/// what the app needs and the API. Stored with each verdict; a start with another one diagnoses
/// those verdicts again.
pub fn rules_fingerprint(policies_text: &str, needs: &health::Needs, api: ApiVersion) -> String {
    let needs = serde_json::to_string(needs).unwrap_or_default();
    let text = format!("{}\n{needs}\n{policies_text}", api.label());
    webhook::digest(text.as_bytes())
}

/// One pass of retention over every table, a thousand rows a statement.
async fn prune_all(db: &Db, keep: Retention, metrics: &Metrics) {
    for table in Pruned::ALL {
        let days = keep.days(table);
        match db.prune(table, days, 1_000).await {
            Ok(0) => {}
            Ok(n) => {
                metrics.pruned(table, n);
                tracing::info!(table = table.table(), deleted = n, days, "old rows deleted");
            }
            Err(e) => {
                tracing::warn!(table = table.table(), error = %e, "cannot delete old rows");
            }
        }
    }
}

/// Runs the desk until `stop` resolves: applies migrations, serves HTTP, runs the prober and the
/// event retention. In-flight deliveries finish before it returns.
pub async fn run(
    config: DeskConfig,
    diagnose: Diagnoser,
    now: Option<jiff::Timestamp>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DeskError> {
    let rules = rules_fingerprint(&config.policies_text, &config.needs, config.api);
    let db = Db::new(&config.db, diagnose, now)?.diagnosing_with(&rules);
    db.migrate(config.db.schema.as_deref())
        .await
        .map_err(|e| e.at(&config.db.place()))?;
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DeskError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| DeskError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(listen = %addr, "vtriage serve ready");

    // One ring for the process: the prober's scheduler adds the tokens it is issued, and every
    // path (webhooks, probes, what the desk serves) redacts with all of them.
    let keyring = Keyring::with(
        "desk",
        std::iter::once(&config.amt).chain(config.secrets.iter()),
    );
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let shutdown_tx = Arc::new(shutdown_tx);
    let prober = config.prober.map(|setup| {
        let mut prober_config = setup.config;
        prober_config.keyring = keyring.clone();
        let pg = config.db.pg_config();
        let (db, metrics, settings, rx) = (
            db.clone(),
            metrics.clone(),
            setup.settings,
            shutdown_rx.clone(),
        );
        tokio::spawn(async move {
            match pg {
                Ok(pg) => prober::run(pg, db, settings, prober_config, metrics, rx).await,
                Err(e) => tracing::error!(error = %e, "prober not started"),
            }
        })
    });
    let rediagnosis = {
        let (db, rediagnosis, rx) = (db.clone(), config.rediagnosis.clone(), shutdown_rx.clone());
        let pg = config.db.pg_config();
        tokio::spawn(async move {
            match pg {
                Ok(pg) => rediagnosis::run(pg, db, rediagnosis, rx).await,
                Err(e) => tracing::error!(error = %e, "re-diagnosis not started"),
            }
        })
    };
    let retention = {
        let (db, keep, metrics, mut rx) = (
            db.clone(),
            config.retention,
            metrics.clone(),
            shutdown_rx.clone(),
        );
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = every.tick() => prune_all(&db, keep, &metrics).await,
                    _ = rx.changed() => return,
                }
            }
        })
    };

    // What an operator follows: a line a minute when deliveries or probes happened.
    let tally = {
        let (metrics, mut rx) = (metrics.clone(), shutdown_rx.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            every.tick().await;
            let mut last = metrics.tally();
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = rx.changed() => return,
                }
                let now = metrics.tally();
                let minute = now.since(last);
                last = now;
                if !minute.is_empty() {
                    tracing::info!(
                        received = minute.received,
                        stored = minute.stored,
                        duplicates = minute.deduplicated,
                        rejected = minute.rejected,
                        probes = minute.probes,
                        "deliveries and probes in the last minute"
                    );
                }
            }
        })
    };
    let api = Arc::new(api::ApiState {
        max_waiting_probes: config.max_waiting_probes,
        vin_lookups_per_hour: config.vin_lookups_per_hour,
        ..api::ApiState::new(
            db.clone(),
            config.policies_text.clone(),
            config.needs.clone(),
            now,
            metrics.clone(),
            shutdown_rx.clone(),
        )
    });
    let listener_task = match config.db.pg_config() {
        Ok(pg) => Some(tokio::spawn(api::listen(
            pg,
            api.clone(),
            shutdown_rx.clone(),
        ))),
        Err(e) => {
            tracing::error!(error = %e, "live stream not started");
            None
        }
    };
    let batcher = server::Batcher::start(db.clone(), metrics.clone(), config.ingest);
    let (keeper, keeper_task) =
        rejected::Keeper::start(db.clone(), config.keep_rejected, metrics.clone());
    let state = Arc::new(server::ServerState {
        db,
        metrics,
        batcher,
        rejected: Some(keeper),
        keyring,
        amt: config.amt,
        max_body_bytes: config.max_body_bytes,
        commit_timeout: Duration::from_secs(10),
    });
    let app = server::router(state, config.max_body_bytes).merge(api::router(api));
    let stopping = shutdown_tx.clone();
    let served = crate::http_serve::serve(listener, app, config.http_limits, async move {
        stop.await;
        tracing::info!("stopping: finishing deliveries in flight");
        // Live streams never finish by themselves: they end now, so the shutdown can.
        let _ = stopping.send(true);
    })
    .await;
    let _ = shutdown_tx.send(true);
    if let Some(p) = prober {
        let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), rediagnosis).await;
    // The refusals still queued are written once the routes are gone.
    let _ = tokio::time::timeout(Duration::from_secs(2), keeper_task).await;
    retention.abort();
    tally.abort();
    if let Some(task) = listener_task {
        task.abort();
    }
    tracing::info!("vtriage serve stopped");
    served.map_err(DeskError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::facts::VehicleFacts;
    use crate::desk::webhook::{Delivery, parse};
    use crate::smartcar::Probe;

    /// What a desk knows of a car from one webhook: Smartcar refused the token (`AUTHENTICATION`).
    fn refused_by_webhook() -> crate::smartcar::ProbeReport {
        let body = serde_json::json!({
            "eventId": "e1", "eventType": "VEHICLE_ERROR",
            "data": {"vehicle": {"id": "v1", "make": "TESLA", "model": "Model 3", "year": 2022},
                     "errors": [{"type": "AUTHENTICATION", "code": null, "state": "ERROR"}]},
            "meta": {"deliveredAt": 1_760_000_000_000_i64}
        });
        let Ok(Delivery::Vehicle(event)) = parse(body.to_string().as_bytes()) else {
            panic!("a vehicle event");
        };
        let mut facts = VehicleFacts::default();
        facts.merge(&event, event.at.expect("dated"));
        facts.report("v1", Some("u1"), None)
    }

    #[test]
    fn on_a_v3_desk_a_token_refused_in_a_webhook_reads_as_the_v3_probe_says_it() {
        let report = refused_by_webhook();
        let now = jiff::Timestamp::from_second(1_760_000_100).expect("ts");
        let desk = |api| {
            diagnoser(health::Policies::builtin(), health::Needs::default(), api)(&report, now)
        };
        // The same error as the v3 probe observes it: on its signals request.
        let mut probed = report.clone();
        for o in &mut probed.observations {
            o.probe = Probe::Signals;
        }
        let by_probe = health::diagnose(
            &probed,
            &health::Policies::builtin(),
            &health::Needs::default(),
            now,
        );
        let v3 = desk(ApiVersion::V3);
        assert_eq!(v3.findings[0].title, by_probe.findings[0].title);
        assert_eq!(v3.findings[0].remedy, by_probe.findings[0].remedy);
        let v2 = desk(ApiVersion::V2);
        assert_ne!(
            v2.findings[0].remedy, v3.findings[0].remedy,
            "v2.0 has a user token"
        );
    }

    #[test]
    fn the_rules_fingerprint_changes_with_the_policies_the_needs_and_the_api() {
        let needs = health::Needs::default();
        let text = health::policy::BUILTIN_POLICIES;
        let base = rules_fingerprint(text, &needs, ApiVersion::V3);
        assert_eq!(base, rules_fingerprint(text, &needs, ApiVersion::V3));
        assert_ne!(base, rules_fingerprint(text, &needs, ApiVersion::V2));
        assert_ne!(
            base,
            rules_fingerprint(&format!("{text}\n"), &needs, ApiVersion::V3)
        );
        let other = health::Needs {
            client_id: Some("cid".into()),
            ..health::Needs::default()
        };
        assert_ne!(base, rules_fingerprint(text, &other, ApiVersion::V3));
    }
}
