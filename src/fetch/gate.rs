//! The gate every HTTP request passes: it grants a request a concurrency slot and a token of the
//! app-wide bucket, highest priority first, pauses everything after an app-wide 429, counts calls
//! per vehicle, and measures what was sent.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::smartcar::{MAX_RETRY_AFTER, deadline_after};

use super::budget::{RateBudget, TokenBucket, VehicleWindows};
use super::events::{Event, Priority};
use super::outage::{Admission, Change, Reach, SourceHealth};

/// A probe's priority, shared with its requests waiting at the gate so that a newer, more urgent
/// request for the same vehicle can raise it while they wait.
#[derive(Debug, Clone)]
pub struct SharedPriority(Arc<AtomicU8>);

impl SharedPriority {
    pub fn new(p: Priority) -> Self {
        SharedPriority(Arc::new(AtomicU8::new(p as u8)))
    }

    pub fn get(&self) -> Priority {
        match self.0.load(Ordering::Relaxed) {
            0 => Priority::Sweep,
            1 => Priority::Visible,
            _ => Priority::Focus,
        }
    }

    /// Raises the priority; never lowers it.
    pub fn raise(&self, p: Priority) {
        self.0.fetch_max(p as u8, Ordering::Relaxed);
    }
}

/// Who asks to send one request.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub priority: SharedPriority,
    /// Order among equal priorities (the probe's arrival): earlier probes finish first.
    pub order: u64,
    /// The vehicle the request calls and how many of its calls it spends (a batch spends one per item).
    pub vehicle: Option<(String, u32)>,
    /// Set once the first request of the probe is granted.
    pub sent_any: Option<Arc<AtomicBool>>,
}

/// The gate was closed (the scheduler shut down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the scheduler is shutting down")]
pub struct GateClosed;

/// What the gate measured, for the progress bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateStats {
    pub requests_sent: u64,
    pub requests_per_s: f64,
    pub in_flight: usize,
    pub waiting: usize,
    pub budget_left: Option<f64>,
    pub refill_per_min: Option<f64>,
    /// Mean time a request held its slot lately (ms), if any was sent.
    pub mean_latency_ms: Option<f64>,
}

const RATE_WINDOW: Duration = Duration::from_secs(10);
/// A shorter wait for the bucket is not worth telling the agent about.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(1);

struct Waiter {
    ticket: Ticket,
    arrival: u64,
    tx: oneshot::Sender<Permit>,
}

struct GateState {
    concurrency: usize,
    in_flight: usize,
    bucket: Option<TokenBucket>,
    paused_until: Option<Instant>,
    windows: VehicleWindows,
    waiters: Vec<Waiter>,
    arrivals: u64,
    requests_sent: u64,
    first_sent: Option<Instant>,
    recent: VecDeque<Instant>,
    latency_ewma_ms: Option<f64>,
    announced: bool,
    closed: bool,
    health: SourceHealth,
}

struct GateInner {
    state: Mutex<GateState>,
    wake: Notify,
    events: mpsc::UnboundedSender<Event>,
}

/// Cheap to clone; all clones share one gate.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

/// The right to have one request in flight. Dropping it frees the slot; [`Permit::settle`] first
/// tells the gate what came back.
pub struct Permit {
    inner: Option<Arc<GateInner>>,
    granted_at: Instant,
    /// The vehicle and the calls the request was counted as.
    vehicle: Option<(String, u32)>,
}

impl Permit {
    /// Frees the slot with what the request's answer says of its source: a request that never
    /// reached Smartcar gives its bucket token and its vehicle calls back, and the source's health
    /// (see [`SourceHealth`]) is told, which may announce an outage or its end.
    pub fn settle(self, reach: &Reach) {
        let Some(inner) = self.inner.as_ref() else {
            return;
        };
        let now = Instant::now();
        let changes = {
            let mut s = lock(&inner.state);
            if reach.refunds() {
                if let Some(bucket) = s.bucket.as_mut() {
                    bucket.give_back(now);
                }
                if let Some((vehicle, calls)) = &self.vehicle {
                    s.windows.forget(vehicle, *calls, self.granted_at);
                }
            }
            let vehicle = self.vehicle.as_ref().map(|(v, _)| v.as_str());
            s.health.record(reach, vehicle, self.granted_at, now)
        };
        for change in changes {
            let event = match change {
                Change::Down(outage) => {
                    tracing::debug!(
                        source = outage.source.slug(),
                        origin = %crate::untrusted::text::one_line(&outage.origin),
                        kind = %crate::untrusted::text::one_line(&outage.kind),
                        "source unreachable; queued probes wait for a retry"
                    );
                    Event::SourceUnreachable(outage)
                }
                Change::Up(source) => {
                    tracing::debug!(source = source.slug(), "source answers again");
                    Event::SourceRecovered { source }
                }
            };
            let _ = inner.events.send(event);
        }
        drop(self);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let held_ms = self.granted_at.elapsed().as_secs_f64() * 1000.0;
        {
            let mut s = lock(&inner.state);
            s.in_flight = s.in_flight.saturating_sub(1);
            s.latency_ewma_ms = Some(match s.latency_ewma_ms {
                Some(avg) => avg * 0.9 + held_ms * 0.1,
                None => held_ms,
            });
            pump(&mut s, &inner, Instant::now());
        }
        inner.wake.notify_one();
    }
}

fn lock(m: &Mutex<GateState>) -> MutexGuard<'_, GateState> {
    // A panic while holding the lock leaves counters that are still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn timestamp_at(at: Instant, now: Instant) -> jiff::Timestamp {
    let ts = jiff::Timestamp::now();
    ts.checked_add(at.saturating_duration_since(now))
        .unwrap_or(ts)
}

/// Grants as many waiting requests as slots, tokens and the pause allow.
fn pump(s: &mut GateState, inner: &Arc<GateInner>, now: Instant) {
    let events = &inner.events;
    loop {
        s.waiters.retain(|w| !w.tx.is_closed());
        if s.closed || s.waiters.is_empty() || s.in_flight >= s.concurrency {
            return;
        }
        if s.paused_until.is_some_and(|t| t > now) {
            return;
        }
        if let Some(bucket) = s.bucket.as_mut()
            && !bucket.try_take(now)
        {
            if !s.announced
                && let Some(at) = bucket.next_token_at(now)
                && at.saturating_duration_since(now) >= ANNOUNCE_WAIT
            {
                s.announced = true;
                let _ = events.send(Event::RateLimited {
                    until: timestamp_at(at, now),
                    by_smartcar: false,
                });
            }
            return;
        }
        let Some(best) = s
            .waiters
            .iter()
            .enumerate()
            .max_by_key(|(_, w)| {
                (
                    w.ticket.priority.get(),
                    std::cmp::Reverse(w.ticket.order),
                    std::cmp::Reverse(w.arrival),
                )
            })
            .map(|(i, _)| i)
        else {
            return;
        };
        let w = s.waiters.swap_remove(best);
        let permit = Permit {
            inner: Some(Arc::clone(inner)),
            granted_at: now,
            vehicle: w.ticket.vehicle.clone(),
        };
        match w.tx.send(permit) {
            Ok(()) => {
                s.in_flight += 1;
                s.requests_sent += 1;
                s.first_sent.get_or_insert(now);
                s.recent.push_back(now);
                while s
                    .recent
                    .front()
                    .is_some_and(|&t| now.saturating_duration_since(t) > RATE_WINDOW)
                {
                    s.recent.pop_front();
                }
                s.announced = false;
                if let Some((vehicle, calls)) = &w.ticket.vehicle {
                    s.windows.record(vehicle, *calls, now);
                }
                if let Some(flag) = &w.ticket.sent_any {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            Err(mut unsent) => {
                // The requester went away between the check and the send: the token was not spent.
                // Disarmed, so dropping it here does not take the lock again.
                unsent.inner = None;
                if let Some(bucket) = s.bucket.as_mut() {
                    bucket.give_back(now);
                }
            }
        }
    }
}

impl Gate {
    /// Keeps the app-wide bucket's state in `file` (see [`TokenBucket::shared_through`]).
    pub fn share_bucket(&self, file: super::bucket_file::BucketFile) {
        let mut s = lock(&self.inner.state);
        if let Some(bucket) = s.bucket.take() {
            s.bucket = Some(bucket.shared_through(file));
        }
    }

    /// A gate with `concurrency` slots and an optional app-wide bucket; starts its timer task.
    pub fn new(
        concurrency: usize,
        rate: Option<RateBudget>,
        per_vehicle_per_hour: u32,
        events: mpsc::UnboundedSender<Event>,
    ) -> (Gate, tokio::task::JoinHandle<()>) {
        let now = Instant::now();
        let inner = Arc::new(GateInner {
            state: Mutex::new(GateState {
                concurrency: concurrency.max(1),
                in_flight: 0,
                bucket: rate.map(|r| TokenBucket::new(r, now)),
                paused_until: None,
                windows: VehicleWindows::new(per_vehicle_per_hour, VehicleWindows::HOUR),
                waiters: Vec::new(),
                arrivals: 0,
                requests_sent: 0,
                first_sent: None,
                recent: VecDeque::new(),
                latency_ewma_ms: None,
                announced: false,
                closed: false,
                health: SourceHealth::default(),
            }),
            wake: Notify::new(),
            events,
        });
        let timer = tokio::spawn(run_timer(Arc::clone(&inner)));
        (Gate { inner }, timer)
    }

    /// Waits until the request may be sent. Permits are handed out in priority order.
    pub async fn acquire(&self, ticket: Ticket) -> Result<Permit, GateClosed> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = lock(&self.inner.state);
            if s.closed {
                return Err(GateClosed);
            }
            let arrival = s.arrivals;
            s.arrivals += 1;
            s.waiters.push(Waiter {
                ticket,
                arrival,
                tx,
            });
            pump(&mut s, &self.inner, Instant::now());
        }
        self.inner.wake.notify_one();
        rx.await.map_err(|_| GateClosed)
    }

    /// Counts a request sent without a permit (a listing page, which must run whatever the
    /// budget): [`GateStats::requests_sent`] counts every request.
    pub fn count_unbudgeted(&self) {
        let mut s = lock(&self.inner.state);
        s.requests_sent += 1;
    }

    /// The server answered `RATE_LIMIT:SMARTCAR_API`: nothing is sent before `until`, which is
    /// held to at most [`MAX_RETRY_AFTER`] from now whatever the caller computed.
    pub fn pause_until(&self, until: Instant) {
        let now = Instant::now();
        let until = until.min(deadline_after(now, MAX_RETRY_AFTER));
        {
            let mut s = lock(&self.inner.state);
            if s.paused_until.is_some_and(|t| t >= until) {
                return;
            }
            s.paused_until = Some(until);
            if let Some(bucket) = s.bucket.as_mut() {
                bucket.drain_until(until);
            }
            let _ = self.inner.events.send(Event::RateLimited {
                until: timestamp_at(until, now),
                by_smartcar: true,
            });
        }
        self.inner.wake.notify_one();
    }

    /// When `calls` more calls to the vehicle fit its hourly cap (`now` if they fit already).
    pub fn vehicle_room_at(&self, vehicle_id: &str, calls: u32, now: Instant) -> Instant {
        lock(&self.inner.state)
            .windows
            .room_at(vehicle_id, calls, now)
    }

    /// Seconds the bucket needs to let `requests` through, `None` when the limit is off.
    pub fn seconds_for(&self, requests: u64) -> Option<f64> {
        let mut s = lock(&self.inner.state);
        let now = Instant::now();
        let paused = s
            .paused_until
            .map_or(0.0, |t| t.saturating_duration_since(now).as_secs_f64());
        s.bucket
            .as_mut()
            .and_then(|b| b.seconds_for(requests, now))
            .map(|secs| secs.max(paused))
    }

    pub fn stats(&self) -> GateStats {
        let mut s = lock(&self.inner.state);
        let now = Instant::now();
        while s
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > RATE_WINDOW)
        {
            s.recent.pop_front();
        }
        let span = s
            .first_sent
            .map_or(RATE_WINDOW, |t| now.saturating_duration_since(t))
            .clamp(Duration::from_secs(1), RATE_WINDOW);
        let requests_per_s = s.recent.len() as f64 / span.as_secs_f64();
        let budget_left = s.bucket.as_mut().map(|b| b.available(now));
        GateStats {
            requests_sent: s.requests_sent,
            requests_per_s,
            in_flight: s.in_flight,
            waiting: s.waiters.len(),
            budget_left,
            refill_per_min: s.bucket.as_ref().map(|b| b.budget().refill_per_min),
            mean_latency_ms: s.latency_ewma_ms,
        }
    }

    /// Whether a probe may start, given the sources' health.
    pub fn admission(&self, now: Instant) -> Admission {
        lock(&self.inner.state).health.admission(now)
    }

    /// The retry probe of an outage was started.
    pub fn trial_started(&self, now: Instant) {
        lock(&self.inner.state).health.trial_started(now);
    }

    /// The retry probe ended without telling anything of the source.
    pub fn trial_ended(&self) {
        lock(&self.inner.state).health.trial_ended();
    }

    /// Refuses every waiting and future request.
    pub fn close(&self) {
        {
            let mut s = lock(&self.inner.state);
            s.closed = true;
            s.waiters.clear();
        }
        self.inner.wake.notify_one();
    }
}

/// Wakes the gate when a token refills or a pause ends, so waiting requests are granted on time.
async fn run_timer(inner: Arc<GateInner>) {
    loop {
        let next = {
            let mut s = lock(&inner.state);
            if s.closed {
                return;
            }
            let now = Instant::now();
            pump(&mut s, &inner, now);
            next_wake(&mut s, now)
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = inner.wake.notified() => {}
                    () = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => inner.wake.notified().await,
        }
    }
}

/// When something blocked only by time (a pause, the bucket) may be granted.
fn next_wake(s: &mut GateState, now: Instant) -> Option<Instant> {
    if s.waiters.is_empty() || s.in_flight >= s.concurrency {
        return None;
    }
    if let Some(t) = s.paused_until.filter(|&t| t > now) {
        return Some(t);
    }
    s.bucket.as_mut().and_then(|b| b.next_token_at(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(p: Priority, order: u64) -> Ticket {
        Ticket {
            priority: SharedPriority::new(p),
            order,
            vehicle: None,
            sent_any: None,
        }
    }

    #[test]
    fn shared_priority_only_rises() {
        let p = SharedPriority::new(Priority::Visible);
        p.raise(Priority::Sweep);
        assert_eq!(p.get(), Priority::Visible);
        p.raise(Priority::Focus);
        assert_eq!(p.get(), Priority::Focus);
    }

    #[tokio::test]
    async fn gate_grants_in_priority_order_when_a_slot_frees() {
        let (events, _rx) = mpsc::unbounded_channel();
        let (gate, _timer) = Gate::new(1, None, 100, events);
        let first = gate.acquire(ticket(Priority::Sweep, 0)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, p, seq) in [
            ("sweep", Priority::Sweep, 1),
            ("visible", Priority::Visible, 2),
            ("focus", Priority::Focus, 3),
        ] {
            let gate = gate.clone();
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                let permit = gate.acquire(ticket(p, seq)).await;
                order.lock().map(|mut o| o.push(name)).ok();
                drop(permit);
            }));
            tokio::task::yield_now().await;
        }
        // All three wait behind the one slot; freeing it lets the most urgent through first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        for t in tasks {
            t.await.ok();
        }
        let order = order.lock().map(|o| o.clone()).unwrap_or_default();
        assert_eq!(order, ["focus", "visible", "sweep"]);
        assert_eq!(gate.stats().requests_sent, 4);
    }

    #[tokio::test]
    async fn gate_spends_one_token_per_request_and_waits_for_refill() {
        let (events, mut rx) = mpsc::unbounded_channel();
        let budget = RateBudget {
            burst: 2.0,
            refill_per_min: 600.0,
        };
        let (gate, _timer) = Gate::new(8, Some(budget), 100, events);
        let started = Instant::now();
        for i in 0..4 {
            let p = gate.acquire(ticket(Priority::Focus, i)).await;
            assert!(p.is_ok());
        }
        // 2 at once, then 10 per second: the 4th request waits about 0.2 s.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
        assert!(
            rx.try_recv().is_err(),
            "waits under a second are not announced"
        );
    }

    #[tokio::test]
    async fn an_empty_local_bucket_is_announced_as_our_own_pacing_not_smartcars() {
        let (events, mut rx) = mpsc::unbounded_channel();
        let budget = RateBudget {
            burst: 2.0,
            refill_per_min: 2.0,
        };
        let (gate, _timer) = Gate::new(8, Some(budget), 100, events);
        let first = gate.acquire(ticket(Priority::Focus, 0)).await;
        assert!(first.is_ok());
        // The next token is 30 s away: the wait is announced, as ours.
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.acquire(ticket(Priority::Focus, 1)).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            rx.try_recv(),
            Ok(Event::RateLimited {
                by_smartcar: false,
                ..
            })
        ));
        waiting.abort();
    }

    #[tokio::test]
    async fn server_pause_holds_every_request_and_is_announced() {
        let (events, mut rx) = mpsc::unbounded_channel();
        let (gate, _timer) = Gate::new(8, None, 100, events);
        gate.pause_until(Instant::now() + Duration::from_millis(150));
        assert!(matches!(
            rx.try_recv(),
            Ok(Event::RateLimited {
                by_smartcar: true,
                ..
            })
        ));
        let started = Instant::now();
        let p = gate.acquire(ticket(Priority::Focus, 0)).await;
        assert!(p.is_ok());
        assert!(started.elapsed() >= Duration::from_millis(140));
    }

    #[tokio::test]
    async fn a_pause_past_the_cap_is_held_to_the_cap_and_still_announced() {
        let (events, mut rx) = mpsc::unbounded_channel();
        let (gate, _timer) = Gate::new(8, None, 100, events);
        let asked = jiff::Timestamp::now();
        gate.pause_until(Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600));
        let Ok(Event::RateLimited { until, .. }) = rx.try_recv() else {
            panic!("the pause was not announced");
        };
        let held = until.duration_since(asked);
        assert!(
            held <= jiff::SignedDuration::try_from(MAX_RETRY_AFTER + Duration::from_secs(5))
                .unwrap_or_default(),
            "paused for {held:?}"
        );
        assert!(held >= jiff::SignedDuration::from_secs(3590), "{held:?}");
    }

    fn refused() -> Reach {
        Reach::Failed(super::super::outage::Failure {
            source: super::super::events::SourceName::VehicleApi,
            origin: "http://127.0.0.1:1".into(),
            kind: "connection refused".into(),
            never_reached: true,
        })
    }

    #[tokio::test]
    async fn a_request_that_never_reached_smartcar_gives_its_token_and_vehicle_calls_back() {
        let (events, _rx) = mpsc::unbounded_channel();
        let budget = RateBudget {
            burst: 3.0,
            refill_per_min: 0.001,
        };
        let (gate, _timer) = Gate::new(8, Some(budget), 2, events);
        let vehicle_ticket = |order| Ticket {
            vehicle: Some(("v1".to_string(), 1)),
            ..ticket(Priority::Focus, order)
        };
        let left = |gate: &Gate| gate.stats().budget_left.unwrap_or_default().floor();
        let before = left(&gate);
        for order in 0..10 {
            let permit = gate.acquire(vehicle_ticket(order)).await;
            let Ok(permit) = permit else {
                panic!("the gate closed");
            };
            permit.settle(&refused());
        }
        assert_eq!(left(&gate), before, "ten refused connections spent nothing");
        let now = Instant::now();
        assert!(
            gate.vehicle_room_at("v1", 2, now) <= now,
            "nor any of the vehicle's hourly calls"
        );
        // A request that reached Smartcar and timed out is spent: Smartcar may have counted it.
        let Ok(permit) = gate.acquire(vehicle_ticket(10)).await else {
            panic!("the gate closed");
        };
        permit.settle(&Reach::Failed(super::super::outage::Failure {
            never_reached: false,
            kind: "timed out".into(),
            ..match refused() {
                Reach::Failed(f) => f,
                _ => unreachable!(),
            }
        }));
        assert_eq!(left(&gate), before - 1.0);
    }

    #[tokio::test]
    async fn closed_gate_refuses_waiting_requests() {
        let (events, _rx) = mpsc::unbounded_channel();
        let (gate, _timer) = Gate::new(1, None, 100, events);
        let held = gate.acquire(ticket(Priority::Focus, 0)).await;
        let g = gate.clone();
        let waiting =
            tokio::spawn(async move { g.acquire(ticket(Priority::Focus, 1)).await.err() });
        tokio::time::sleep(Duration::from_millis(10)).await;
        gate.close();
        assert_eq!(waiting.await.ok().flatten(), Some(GateClosed));
        drop(held);
    }
}
