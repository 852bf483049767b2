//! The desk's one re-diagnoser: whichever `serve` process holds its advisory lock diagnoses the
//! fleet again from stored evidence, with no request to Smartcar. At takeover it reads every verdict
//! made with other rules (a new `policies.toml`, other needs, another API); then, as time passes, the
//! verdicts time alone can change (a rule's date, data going stale), in batches as the dashboard's
//! store does. Every change is written like a delivery's: the verdict, a history row when it moved,
//! and a notice to every agent's stream. One holder, so two processes never write one change twice.

use std::time::Duration;

use tokio::sync::watch;

use crate::untrusted::text::one_line;

use super::db::{Db, Pass};
use super::prober::{LockConnection, try_lock};

/// The advisory lock class of the re-diagnoser ("vtp" and 3 in ASCII), keyed per schema as the
/// prober's is.
pub const REDIAGNOSIS_LOCK: i32 = 0x7674_7003;

/// Vehicles read per pass, as the dashboard's store takes per pass.
pub const BATCH: usize = crate::store::REDIAGNOSE_PER_PASS;

/// How the re-diagnoser behaves.
#[derive(Debug, Clone)]
pub struct RediagnosisConfig {
    /// How often one batch of time-dependent verdicts is diagnosed again.
    pub every: Duration,
    /// How often a waiting process asks for the lock, and how often the holder checks its connection.
    pub lock_retry: Duration,
}

impl Default for RediagnosisConfig {
    fn default() -> Self {
        RediagnosisConfig {
            every: Duration::from_secs(10),
            lock_retry: Duration::from_secs(2),
        }
    }
}

/// Runs until `shutdown` turns true: waits for the lock, re-diagnoses while holding it, starts over
/// when the lock's connection is lost.
pub async fn run(
    pg: tokio_postgres::Config,
    db: Db,
    config: RediagnosisConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let lock = loop {
            if *shutdown.borrow() {
                return;
            }
            match try_lock(&pg, REDIAGNOSIS_LOCK).await {
                Ok(Some(lock)) => break lock,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %one_line(&e.to_string()), "cannot ask for the re-diagnosis lock")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(config.lock_retry) => {}
                _ = shutdown.changed() => {}
            }
        };
        match hold(&lock, &db, &config, &mut shutdown).await {
            None => return,
            Some(why) => {
                tracing::warn!(reason = %one_line(&why), "re-diagnosis lock lost; waiting to hold it again");
                drop(lock);
                tokio::select! {
                    () = tokio::time::sleep(config.lock_retry) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

/// Re-diagnoses while the lock's connection answers: first every verdict made with other rules,
/// then a batch of time-dependent ones per tick. `None` on shutdown, else why the lock was lost.
async fn hold(
    lock: &LockConnection,
    db: &Db,
    config: &RediagnosisConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<String> {
    let (mut read, mut changed) = (0, 0);
    let mut after: Option<String> = None;
    loop {
        if *shutdown.borrow() {
            return None;
        }
        match db
            .rediagnose(Pass::Rules, after.as_deref(), BATCH, "rules")
            .await
        {
            Ok(done) => {
                read += done.read;
                changed += done.changed;
                match done.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            Err(e) => return Some(e.to_string()),
        }
    }
    if read > 0 {
        tracing::info!(
            vehicles = read,
            changed,
            "verdicts made with other rules diagnosed again from stored evidence"
        );
    }
    let mut every = tokio::time::interval(config.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeat = tokio::time::interval(config.lock_retry);
    let mut after: Option<String> = None;
    loop {
        tokio::select! {
            _ = every.tick() => {
                match db.rediagnose(Pass::Time, after.as_deref(), BATCH, "time").await {
                    Ok(done) => {
                        if done.changed > 0 {
                            tracing::info!(changed = done.changed, "verdicts changed as time passed");
                        }
                        after = done.next;
                    }
                    Err(e) => {
                        tracing::warn!(error = %one_line(&e.to_string()), "cannot diagnose verdicts again");
                    }
                }
            }
            _ = heartbeat.tick() => {
                if let Err(e) = lock.client.simple_query("SELECT 1").await {
                    return Some(e.to_string());
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return None;
                }
            }
        }
    }
}
