//! The desk's one prober: whichever `serve` process holds a PostgreSQL advisory lock (on a connection
//! of its own) runs the scheduler, so the desk spends one budget; the others wait to take over.
//!
//! PostgreSQL releases a session's advisory lock when the session ends, and a process that dies
//! (even by SIGKILL) ends its session when the kernel closes the socket; the next process asking
//! gets the lock within one retry interval. A holder that loses its connection stops probing at
//! once, since it can no longer know it is the only one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::NoTls;

use crate::fetch::{Command, Event, Priority, Progress};
use crate::setup::{self, Settings};
use crate::untrusted::text::one_line;

use super::db::{Db, PendingProbe};
use super::metrics::Metrics;
use super::wire::DeskProgress;

/// The advisory lock class of the desk's prober ("vtp" and 2 in ASCII). Advisory locks are
/// database-wide, so the key's second half is the desk's schema (its OID): two desks in two schemas
/// of one database each have their own prober. A `serve` from before the per-schema key took a
/// single database-wide key instead: stop every old `serve` before starting new ones.
pub const PROBER_LOCK: i32 = 0x7674_7002;

/// How the prober behaves.
#[derive(Debug, Clone)]
pub struct ProberConfig {
    /// How often a waiting process asks for the lock, and how often the holder checks its connection.
    pub lock_retry: Duration,
    /// Re-list the fleet this often (`None`: only at takeover).
    pub refresh_every: Option<Duration>,
    /// Sweep the whole fleet this often (`None`: never; sweeps spend the budget).
    pub sweep_every: Option<Duration>,
    /// How often pending probe requests are read from the database.
    pub poll_requests: Duration,
    /// The process's secrets: the scheduler redacts with all of them and adds its own.
    pub keyring: crate::untrusted::Keyring,
    /// How long a secret command may run before it is stopped.
    pub command_timeout: Duration,
    /// The longest wait between two attempts to complete settings that failed (it doubles up to it).
    pub settings_backoff_cap: Duration,
}

impl Default for ProberConfig {
    fn default() -> Self {
        ProberConfig {
            lock_retry: Duration::from_secs(2),
            refresh_every: Some(Duration::from_secs(3600)),
            sweep_every: None,
            poll_requests: Duration::from_secs(1),
            keyring: crate::untrusted::Keyring::default(),
            command_timeout: setup::COMMAND_TIMEOUT,
            settings_backoff_cap: Duration::from_secs(300),
        }
    }
}

/// Why holding the lock ended.
enum Held {
    Shutdown,
    Lost(String),
    /// The settings could not start a scheduler: not the lock's fault, so the next attempt waits
    /// out a backoff.
    Failed(String),
}

/// The wait before the next attempt after settings failed: doubling from `first` up to `cap`.
#[derive(Debug)]
struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
    /// The reason last logged: the same failure again is not logged again.
    reason: Option<String>,
}

impl Backoff {
    fn new(first: Duration, cap: Duration) -> Backoff {
        let first = first.max(Duration::from_millis(100));
        Backoff {
            first,
            cap: cap.max(first),
            next: first,
            reason: None,
        }
    }

    /// Records a failure: the wait before the next attempt, and whether its reason is new (worth
    /// a log line).
    fn failed(&mut self, reason: &str) -> (Duration, bool) {
        let wait = self.next;
        self.next = (self.next * 2).min(self.cap);
        let new = self.reason.as_deref() != Some(reason);
        self.reason = Some(reason.to_string());
        (wait, new)
    }

    /// Records a success: the next failure waits the first wait again, and is logged.
    fn succeeded(&mut self) {
        self.next = self.first;
        self.reason = None;
    }
}

/// Runs the secret commands `settings` left to run, off the async workers, within the timeout;
/// adds the secrets they printed to the ring.
async fn complete(settings: &mut Settings, config: &ProberConfig) -> Result<(), String> {
    if settings.deferred.is_empty() {
        return Ok(());
    }
    let mut completing = settings.clone();
    let timeout = config.command_timeout;
    let done = tokio::task::spawn_blocking(move || {
        setup::run_deferred(&mut completing, timeout).map(|()| completing)
    })
    .await;
    match done {
        Ok(Ok(completed)) => {
            *settings = completed;
            let secrets: Vec<crate::smartcar::Secret> = settings
                .client_credentials
                .iter()
                .map(|c| c.client_secret.clone())
                .chain(settings.source.tokens.values().cloned())
                .collect();
            config.keyring.set("prober settings", secrets.iter());
            Ok(())
        }
        Ok(Err(e)) => Err(config
            .keyring
            .redactor()
            .redact(&e.to_string())
            .into_owned()),
        Err(e) => Err(format!("the secret commands stopped: {e}")),
    }
}

/// Runs until `shutdown` turns true: completes the settings, waits for the lock, probes while
/// holding it, starts over when the lock's connection is lost. Settings that fail are one log
/// line, `/healthz` degraded and a gauge, and are tried again after a backoff, without the lock.
pub async fn run(
    pg: tokio_postgres::Config,
    db: Db,
    mut settings: Settings,
    config: ProberConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(config.lock_retry, config.settings_backoff_cap);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let commands_left = !settings.deferred.is_empty();
        if let Err(why) = complete(&mut settings, &config).await {
            let (wait, new) = backoff.failed(&why);
            metrics.set_prober_settings_problem(Some(&why));
            if new {
                tracing::warn!(reason = %one_line(&why), retry_in = ?wait, "the prober cannot resolve its Smartcar settings; probing waits");
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        // The commands gave their secrets: this process can probe, whoever holds the lock now.
        if commands_left && metrics.set_prober_settings_problem(None) {
            tracing::info!("the prober's secret commands answered; its settings are complete");
        }
        let mut lock = match acquire(&pg, &config, &mut shutdown).await {
            Some(lock) => lock,
            None => return,
        };
        tracing::info!("this process now holds the desk's prober lock");
        // Audited before the gauge rises: whoever sees this process active finds the row.
        let _ = db
            .audit(
                "serve",
                "prober acquired",
                None,
                Some(&serde_json::json!({"pid": std::process::id()})),
            )
            .await;
        metrics.prober_active.store(1, Ordering::Relaxed);
        let held = hold(&mut lock, &db, &settings, &config, &metrics, &mut shutdown).await;
        metrics.prober_active.store(0, Ordering::Relaxed);
        // Without a scheduler this process knows nothing of the sources any more.
        metrics.forget_outages();
        drop(lock);
        match held {
            Held::Shutdown => {
                tracing::info!("prober stopped");
                return;
            }
            Held::Lost(why) => {
                backoff.succeeded();
                tracing::warn!(reason = %one_line(&why), "prober lock lost; probing stopped until it is held again");
                tokio::select! {
                    () = tokio::time::sleep(config.lock_retry) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Held::Failed(why) => {
                let (wait, new) = backoff.failed(&why);
                metrics.set_prober_settings_problem(Some(&why));
                if new {
                    tracing::warn!(reason = %one_line(&why), retry_in = ?wait, "the prober cannot start; lock released, probing waits");
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

/// The lock's own connection; dropping it ends the session and so releases the lock.
pub(super) struct LockConnection {
    pub(super) client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
    /// Answers once the connection ended, with why: the lock is gone with it.
    pub(super) ended: tokio::sync::oneshot::Receiver<String>,
}

impl Drop for LockConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until this process holds the lock; `None` on shutdown.
async fn acquire(
    pg: &tokio_postgres::Config,
    config: &ProberConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<LockConnection> {
    let mut announced = false;
    loop {
        match try_lock(pg, PROBER_LOCK).await {
            Ok(Some(lock)) => return Some(lock),
            Ok(None) if !announced => {
                tracing::info!("another serve process holds the prober lock; waiting to take over");
                announced = true;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %one_line(&e.to_string()), "cannot ask for the prober lock")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(config.lock_retry) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return None;
        }
    }
}

/// The advisory lock of `class` for this desk's schema, on a connection of its own; `None` when
/// another session holds it.
pub(super) async fn try_lock(
    pg: &tokio_postgres::Config,
    class: i32,
) -> Result<Option<LockConnection>, tokio_postgres::Error> {
    let (client, connection) = pg.connect(NoTls).await?;
    let (tx, ended) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let why = match connection.await {
            Ok(()) => "the lock's database connection closed".to_string(),
            Err(e) => format!("the lock's database connection ended: {e}"),
        };
        let _ = tx.send(why);
    });
    let lock = LockConnection {
        client,
        task,
        ended,
    };
    let got: bool = lock
        .client
        .query_one(
            "SELECT pg_try_advisory_lock($1, coalesce(
                 (SELECT oid::int4 FROM pg_namespace WHERE nspname = current_schema()), 0))",
            &[&class],
        )
        .await?
        .get(0);
    // Without the lock the connection is closed at once (dropped), so waiting costs no session.
    Ok(got.then_some(lock))
}

/// Probes while the lock's connection answers; stops the moment that connection ends.
async fn hold(
    lock: &mut LockConnection,
    db: &Db,
    settings: &Settings,
    config: &ProberConfig,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Held {
    let mut settings = settings.clone();
    settings.demo_latency = setup::DEMO_HEADLESS_LATENCY;
    // In v3 mode the scheduler holds no AMT of its own; from the ring it redacts that one too.
    settings.scheduler.keyring = config.keyring.clone();
    let mut session = match setup::start(&mut settings).await {
        Ok(s) => s,
        Err(e) => return Held::Failed(format!("cannot start the scheduler: {e}")),
    };
    if metrics.set_prober_settings_problem(None) {
        tracing::info!("the prober's Smartcar settings work again");
    }
    let mut heartbeat = tokio::time::interval(config.lock_retry);
    let mut requests = tokio::time::interval(config.poll_requests);
    let far = Duration::from_secs(365 * 24 * 3600);
    let mut refresh = tokio::time::interval(config.refresh_every.unwrap_or(far));
    refresh.tick().await; // the scheduler lists the fleet at start already
    let mut sweep = tokio::time::interval(config.sweep_every.unwrap_or(far));
    sweep.tick().await;
    // Requests sent to the scheduler and not answered yet, at most: as many as it probes at once.
    let window = settings.scheduler.concurrency.max(1);
    let mut requests_seen: u64 = 0;
    let mut announcer = Announcer::default();
    let mut book = Book::default();
    let held = loop {
        tokio::select! {
            event = session.events.recv() => {
                let Some(event) = event else {
                    break Held::Lost("the scheduler stopped".into());
                };
                let in_flight = book.forwarded.len();
                handle(event, db, metrics, &mut requests_seen, &mut announcer, &mut book).await;
                // A request answered frees a place: the next one is sent now, not at the tick.
                if book.forwarded.len() < in_flight {
                    requests.reset_immediately();
                }
            }
            why = &mut lock.ended => {
                break Held::Lost(why.unwrap_or_else(|_| "the lock's database connection ended".into()));
            }
            _ = heartbeat.tick() => {
                if let Err(e) = lock.client.simple_query("SELECT 1").await {
                    break Held::Lost(e.to_string());
                }
            }
            _ = requests.tick() => {
                match db.pending_probe_requests().await {
                    Ok(pending) => {
                        metrics.probes_waiting.store(pending.len() as u64, Ordering::Relaxed);
                        // A few at a time, agents in turn: what the scheduler holds it serves
                        // first-come, so a long queue stays in the database, where a later
                        // agent's request can pass it.
                        for (pending, priority) in book.next_to_send(pending, window) {
                            // The scheduler merges a request for a vehicle already queued or in flight.
                            let _ = session.commands.send(Command::Probe {
                                vehicle_ids: vec![pending.vehicle_id],
                                priority,
                                force: pending.forced,
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %one_line(&e.to_string()), "cannot read probe requests"),
                }
                if book.vin_lookup.is_none() {
                    next_vin_lookup(db, &session.commands, &mut book).await;
                }
                announcer.flush(db).await;
            }
            _ = refresh.tick(), if config.refresh_every.is_some() => {
                let _ = session.commands.send(Command::RefreshConnections);
            }
            _ = sweep.tick(), if config.sweep_every.is_some() => {
                let _ = session.commands.send(Command::StartSweep { force: false });
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break Held::Shutdown;
                }
            }
        }
    };
    let _ = session.commands.send(Command::Shutdown);
    held
}

/// Tells the agents' streams (through the changes channel) what the desk's prober is doing: at
/// most one progress notice per [`Announcer::EVERY`], the last one always sent at the next flush.
#[derive(Default)]
struct Announcer {
    pending: Option<Progress>,
    last: Option<std::time::Instant>,
    agents: Vec<String>,
}

impl Announcer {
    const EVERY: Duration = Duration::from_millis(250);

    async fn progress(&mut self, db: &Db, progress: Progress) {
        self.pending = Some(progress);
        if self.last.is_none_or(|t| t.elapsed() >= Self::EVERY) {
            self.flush(db).await;
        }
    }

    /// Sends the pending progress, or the same one again when the agents waiting changed.
    async fn flush(&mut self, db: &Db) {
        let agents = db.agents_waiting().await.unwrap_or_default();
        if self.pending.is_none() && agents == self.agents {
            return;
        }
        self.agents = agents;
        let progress = self.pending.take().unwrap_or_default();
        self.last = Some(std::time::Instant::now());
        let notice = serde_json::json!({
            "kind": "progress",
            "desk": DeskProgress { progress, agents_probing: self.agents.clone() },
        });
        if let Err(e) = db.notify(&notice).await {
            tracing::debug!(error = %one_line(&e.to_string()), "cannot announce progress");
        }
    }
}

/// What the prober keeps of the agents' requests between events: the newest request id sent to the
/// scheduler per vehicle (until its result is stored), and when each probe under way started.
#[derive(Default)]
struct Book {
    /// Per vehicle: the newest request id sent, and when it was sent.
    forwarded: HashMap<String, (i64, Instant)>,
    started: HashMap<String, Instant>,
    /// The VIN being looked up: one at a time, since a new lookup replaces one under way.
    vin_lookup: Option<String>,
    /// Per agent, when its request was last sent (in [`Book::turn`]s): the agent whose turn came
    /// longest ago goes next.
    turns: HashMap<String, u64>,
    turn: u64,
}

impl Book {
    /// Whether requests up to `last_request` for the vehicle still need sending; records them sent.
    fn forward(&mut self, vehicle_id: &str, last_request: i64) -> bool {
        match self.forwarded.get_mut(vehicle_id) {
            Some((sent, _)) if *sent >= last_request => false,
            Some(sent) => {
                *sent = (last_request, Instant::now());
                true
            }
            None => {
                self.forwarded
                    .insert(vehicle_id.to_string(), (last_request, Instant::now()));
                true
            }
        }
    }

    /// Which of `pending` (in the desk's order) to send now, at most enough to have `window` in
    /// flight: the highest priority first, and among requests of one priority the agent whose
    /// turn came longest ago, so agents are served in turn across polls.
    fn next_to_send(
        &mut self,
        pending: Vec<PendingProbe>,
        window: usize,
    ) -> Vec<(PendingProbe, Priority)> {
        let rank = |p: &PendingProbe| match p.priority.as_str() {
            "sweep" => 1,
            "visible" => 2,
            _ => 3,
        };
        // Sent already and not answered yet: sending it again could start a second probe of a
        // forced request the moment the first one ends.
        let mut candidates: Vec<PendingProbe> = pending
            .into_iter()
            .filter(|p| {
                self.forwarded
                    .get(&p.vehicle_id)
                    .is_none_or(|(sent, _)| *sent < p.last_request)
            })
            .collect();
        let mut chosen = Vec::new();
        while self.in_flight() < window && !candidates.is_empty() {
            let turn = |p: &PendingProbe| {
                p.requested_by
                    .iter()
                    .map(|a| self.turns.get(a).copied().unwrap_or(0))
                    .min()
                    .unwrap_or(0)
            };
            let Some(best) = (0..candidates.len()).min_by_key(|&i| {
                (
                    std::cmp::Reverse(rank(&candidates[i])),
                    turn(&candidates[i]),
                    i,
                )
            }) else {
                break;
            };
            let next = candidates.remove(best);
            self.turn += 1;
            for agent in &next.requested_by {
                self.turns.insert(agent.clone(), self.turn);
            }
            self.forward(&next.vehicle_id, next.last_request);
            let priority = match rank(&next) {
                1 => Priority::Sweep,
                2 => Priority::Visible,
                _ => Priority::Focus,
            };
            chosen.push((next, priority));
        }
        chosen
    }

    /// Requests sent and not answered yet. One unanswered for [`Book::GIVEN_UP`] (a probe the
    /// scheduler merged away or dropped) no longer holds a place, so the queue cannot stall.
    fn in_flight(&self) -> usize {
        self.forwarded
            .values()
            .filter(|(_, at)| at.elapsed() < Self::GIVEN_UP)
            .count()
    }

    const GIVEN_UP: Duration = Duration::from_secs(120);
}

/// Starts the oldest VIN lookup waiting; a text that is no VIN ends at once, unfound.
async fn next_vin_lookup(
    db: &Db,
    commands: &tokio::sync::mpsc::UnboundedSender<Command>,
    book: &mut Book,
) {
    let vin = match db.next_vin_lookup().await {
        Ok(Some(vin)) => vin,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %one_line(&e.to_string()), "cannot read VIN lookups");
            return;
        }
    };
    match crate::smartcar::vin::decode_at(&vin, jiff::Timestamp::now()) {
        Ok(decoded) => {
            book.vin_lookup = Some(decoded.vin.clone());
            let _ = commands.send(Command::FindVin { vin: decoded });
        }
        Err(_) => {
            if let Err(e) = db.finish_vin_lookup(&vin, None, 0, None).await {
                tracing::warn!(error = %one_line(&e.to_string()), "cannot end a VIN lookup");
            }
        }
    }
}

async fn handle(
    event: Event,
    db: &Db,
    metrics: &Metrics,
    requests_seen: &mut u64,
    announcer: &mut Announcer,
    book: &mut Book,
) {
    match event {
        Event::ConnectionsListed { connections } => {
            match db.store_connections(&connections).await {
                Err(e) => {
                    tracing::warn!(error = %one_line(&e.to_string()), "cannot store the listed fleet")
                }
                Ok(changed) => {
                    tracing::info!(vehicles = connections.len(), changed, "fleet listed");
                    // New vehicles, owners or attributes: every dashboard reads the fleet again.
                    if changed > 0
                        && let Err(e) = db.notify(&serde_json::json!({"kind": "listed"})).await
                    {
                        tracing::debug!(error = %one_line(&e.to_string()), "cannot announce the listing");
                    }
                }
            }
        }
        Event::Observed { report } => {
            let age = book.started.remove(&report.vehicle_id).map(|t| t.elapsed());
            match db.store_probe(&report, age).await {
                Ok(_) => {
                    // Requests still pending (forced after this probe began) are sent again.
                    book.forwarded.remove(&report.vehicle_id);
                    metrics.probes.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(vehicle = %one_line(&report.vehicle_id), error = %one_line(&e.to_string()), "cannot store a probe result")
                }
            }
        }
        Event::Progress(p) => {
            metrics.set_budget_left(p.budget_left);
            let new = p.requests_sent.saturating_sub(*requests_seen);
            *requests_seen = p.requests_sent.max(*requests_seen);
            metrics.api_requests.fetch_add(new, Ordering::Relaxed);
            announcer.progress(db, p).await;
        }
        Event::SourceError { message } => {
            tracing::warn!(error = %one_line(&message), "the Smartcar source failed");
        }
        Event::RateLimited { until, by_smartcar } => {
            tracing::info!(until = %until, by_smartcar, "rate budget exhausted");
        }
        Event::ProbeStarted { vehicle_id, .. } => {
            book.started.insert(vehicle_id.clone(), Instant::now());
            let notice = serde_json::json!({"kind": "probing", "vehicle_id": vehicle_id});
            if let Err(e) = db.notify(&notice).await {
                tracing::debug!(error = %one_line(&e.to_string()), "cannot announce a probe");
            }
        }
        Event::VinsLearned { vins } => {
            if let Err(e) = db.store_vins(&vins).await {
                tracing::warn!(error = %one_line(&e.to_string()), "cannot store VINs read");
            }
        }
        Event::VinLookupDone {
            vin,
            vehicle_id,
            requests,
            gaps,
            ..
        } => {
            // "No vehicle" only when every candidate was read: otherwise the agents hear why not.
            let gaps =
                (vehicle_id.is_none() && !gaps.is_empty()).then(|| gaps.summary(&vin, requests, 0));
            if book.vin_lookup.as_deref() == Some(vin.as_str()) {
                book.vin_lookup = None;
            }
            if let Err(e) = db
                .finish_vin_lookup(&vin, vehicle_id.as_deref(), requests, gaps.as_deref())
                .await
            {
                tracing::warn!(error = %one_line(&e.to_string()), "cannot end a VIN lookup");
            }
        }
        Event::SourceUnreachable(outage) => {
            // Once per outage; a failed retry only moves the next one.
            if metrics.source_down(&outage) {
                tracing::warn!(
                    source = outage.source.slug(),
                    origin = %one_line(&outage.origin),
                    kind = %one_line(&outage.kind),
                    "{}; retrying from {}",
                    one_line(&outage.message),
                    outage.retry_at
                );
            }
        }
        Event::SourceRecovered { source } => {
            if metrics.source_up(source) {
                tracing::info!(
                    source = source.slug(),
                    "the {} answers again",
                    source.label()
                );
            }
        }
        // The scheduler's own reports are diagnosed by the desk as it stores them; the desk
        // lists its whole fleet, never a part.
        Event::SweepCost { .. }
        | Event::VinLookupPlanned { .. }
        | Event::VinLookupProgress { .. }
        | Event::Diagnosed { .. }
        | Event::ConnectionsFound { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(vehicle: &str, priority: &str, by: &str, id: i64) -> PendingProbe {
        PendingProbe {
            vehicle_id: vehicle.into(),
            priority: priority.into(),
            forced: true,
            last_request: id,
            requested_by: vec![by.into()],
        }
    }

    /// What the desk reads while A's sixty wait and then B's one: the oldest first.
    fn sixty_then_one() -> Vec<PendingProbe> {
        let mut pending: Vec<PendingProbe> = (0..60)
            .map(|i| request(&format!("a{i:02}"), "focus", "agent-a", i))
            .collect();
        pending.push(request("b", "focus", "agent-b", 60));
        pending
    }

    #[test]
    fn a_failing_setting_backs_off_doubling_to_its_cap_and_is_said_once_per_reason() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(10));
        let waits: Vec<(Duration, bool)> = (0..5).map(|_| backoff.failed("hangs")).collect();
        let secs: Vec<u64> = waits.iter().map(|(w, _)| w.as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 10, 10]);
        let said: Vec<bool> = waits.iter().map(|(_, new)| *new).collect();
        assert_eq!(said, [true, false, false, false, false]);
        assert!(backoff.failed("fails").1, "another reason is said");
        backoff.succeeded();
        assert_eq!(backoff.failed("fails"), (Duration::from_secs(2), true));
    }

    #[test]
    fn one_car_at_a_time_another_agents_one_request_goes_second_not_sixty_first() {
        let mut book = Book::default();
        let mut order = Vec::new();
        for _ in 0..4 {
            let waiting: Vec<PendingProbe> = sixty_then_one()
                .into_iter()
                .filter(|p| !order.contains(&p.vehicle_id))
                .collect();
            let sent = book.next_to_send(waiting, 1);
            assert_eq!(sent.len(), 1);
            let vehicle = sent[0].0.vehicle_id.clone();
            // Nothing more while it is in flight.
            assert!(book.next_to_send(sixty_then_one(), 1).is_empty());
            // Its probe lands.
            book.forwarded.remove(&vehicle);
            order.push(vehicle);
        }
        assert_eq!(order, ["a00", "b", "a01", "a02"]);
    }

    #[test]
    fn a_window_sends_agents_in_turn_and_focus_ahead_of_visible_ahead_of_sweep() {
        let mut book = Book::default();
        let pending = vec![
            request("s1", "sweep", "agent-c", 1),
            request("a1", "focus", "agent-a", 2),
            request("a2", "focus", "agent-a", 3),
            request("v1", "visible", "agent-c", 4),
            request("a3", "focus", "agent-a", 5),
            request("b1", "focus", "agent-b", 6),
        ];
        let sent: Vec<(String, Priority)> = book
            .next_to_send(pending, 5)
            .into_iter()
            .map(|(p, priority)| (p.vehicle_id, priority))
            .collect();
        let names: Vec<&str> = sent.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(names, ["a1", "b1", "a2", "a3", "v1"]);
        assert_eq!(sent[4].1, Priority::Visible);
        assert_eq!(book.in_flight(), 5);
        // A request already sent is not sent again until a newer one for its vehicle comes.
        let again = book.next_to_send(vec![request("a1", "focus", "agent-a", 2)], 10);
        assert!(again.is_empty());
        let newer = book.next_to_send(vec![request("a1", "focus", "agent-a", 9)], 10);
        assert_eq!(newer.len(), 1);
    }
}
