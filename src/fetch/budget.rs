//! The request budgets: the app-wide token bucket mirroring Smartcar's limit, and the per-vehicle rolling hour.
//! Pure arithmetic over `Instant`s passed in, so it is tested without a clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::bucket_file::{BucketFile, BucketState, to_unix_ms};

/// Smartcar's app-wide limit: a bucket of `burst` requests refilling at `refill_per_min`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateBudget {
    pub burst: f64,
    pub refill_per_min: f64,
}

impl RateBudget {
    /// Smartcar's default plan: 120 requests, refilling at 2 per minute.
    pub const SMARTCAR_DEFAULT: RateBudget = RateBudget {
        burst: 120.0,
        refill_per_min: 2.0,
    };
}

/// A token bucket that starts full. Every HTTP request takes one token.
///
/// One token of the burst is held back: while a request is on its way, the server's full bucket
/// cannot grow but ours already refills, so ours would run ahead of the server's by the refill of
/// one trip. The reserve covers trips shorter than one refill interval.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    budget: RateBudget,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
    /// Where the state is shared with other processes and kept across restarts, if anywhere.
    file: Option<Arc<Mutex<BucketFile>>>,
    /// When [`TokenBucket::available`] last read the file.
    peeked_at: Option<Instant>,
}

/// How often the level shown is read again from the shared file.
const PEEK_EVERY: Duration = Duration::from_millis(500);

impl TokenBucket {
    /// Tokens of the burst held back for requests still on the wire.
    pub const RESERVE: f64 = 1.0;

    pub fn new(budget: RateBudget, now: Instant) -> Self {
        // A bucket that can never hold one token would never send anything.
        let budget = RateBudget {
            burst: budget.burst.max(1.0),
            refill_per_min: budget.refill_per_min.max(0.0),
        };
        let capacity = (budget.burst - Self::RESERVE).max(1.0);
        TokenBucket {
            budget,
            capacity,
            tokens: capacity,
            refilled_at: now,
            file: None,
            peeked_at: None,
        }
    }

    /// Keeps the bucket's state in `file`: a restart starts from what is left, and every process
    /// using the same file spends the same tokens.
    pub fn shared_through(mut self, file: BucketFile) -> Self {
        self.file = Some(Arc::new(Mutex::new(file)));
        self
    }

    pub fn budget(&self) -> RateBudget {
        self.budget
    }

    /// Runs `f` on the bucket as the state file has it, and stores the result. Without a file, or
    /// when the file fails (it is then dropped, and the bucket goes on in memory), just runs `f`.
    fn shared<R>(&mut self, now: Instant, f: impl FnOnce(&mut Self) -> R) -> R {
        let Some(file) = self.file.clone() else {
            return f(self);
        };
        let Ok(mut file) = file.lock() else {
            return f(self);
        };
        let wall = SystemTime::now();
        let stored = match file.begin() {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(path = %file.path().display(), "rate budget kept in memory only: {e}");
                drop(file);
                self.file = None;
                return f(self);
            }
        };
        if let Some(s) = stored.filter(|s| {
            (s.capacity - self.capacity).abs() < 1e-9
                && (s.refill_per_min - self.budget.refill_per_min).abs() < 1e-9
        }) {
            self.tokens = s.tokens_at(wall).max(0.0);
            self.refilled_at = now.checked_add(s.paused_for(wall)).unwrap_or(now);
        }
        let out = f(self);
        let at = match self.refilled_at.checked_duration_since(now) {
            Some(ahead) => wall + ahead,
            // `refilled_at` is in the past only when `f` did not refill: count from it.
            None => wall - now.saturating_duration_since(self.refilled_at),
        };
        let state = BucketState {
            tokens: self.tokens,
            at_unix_ms: to_unix_ms(at),
            capacity: self.capacity,
            refill_per_min: self.budget.refill_per_min,
        };
        if let Err(e) = file.commit(&state) {
            tracing::warn!(path = %file.path().display(), "rate budget not saved: {e}");
        }
        out
    }

    fn refill(&mut self, now: Instant) {
        let Some(elapsed) = now.checked_duration_since(self.refilled_at) else {
            return;
        };
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.budget.refill_per_min / 60.0)
            .min(self.capacity);
        self.refilled_at = now;
    }

    /// Tokens available at `now` (fractional), as the shared file holds them: what other
    /// processes spent counts. Read for the progress line ten times a second, so the file is
    /// read at most every [`PEEK_EVERY`], and never written.
    pub fn available(&mut self, now: Instant) -> f64 {
        self.follow_file(now);
        self.refill(now);
        self.tokens
    }

    /// Takes the level the shared file holds, if it is this bucket's.
    fn follow_file(&mut self, now: Instant) {
        let Some(file) = self.file.clone() else {
            return;
        };
        if self
            .peeked_at
            .is_some_and(|t| now.saturating_duration_since(t) < PEEK_EVERY)
        {
            return;
        }
        self.peeked_at = Some(now);
        let Ok(mut file) = file.lock() else {
            return;
        };
        let wall = SystemTime::now();
        if let Ok(Some(s)) = file.peek()
            && (s.capacity - self.capacity).abs() < 1e-9
            && (s.refill_per_min - self.budget.refill_per_min).abs() < 1e-9
        {
            self.tokens = s.tokens_at(wall).max(0.0);
            self.refilled_at = now.checked_add(s.paused_for(wall)).unwrap_or(now);
        }
    }

    /// Takes one token if a whole one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.shared(now, |b| {
            b.refill(now);
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                true
            } else {
                false
            }
        })
    }

    /// Gives back a token taken for a request that was never sent.
    pub fn give_back(&mut self, now: Instant) {
        self.shared(now, |b| {
            b.refill(now);
            b.tokens = (b.tokens + 1.0).min(b.capacity);
        })
    }

    /// When the next whole token will be there (`now` if one is); `None` if the bucket never refills.
    /// A hint for the gate's wake-up: the take that follows reads the shared state.
    pub fn next_token_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        if self.tokens >= 1.0 {
            return Some(now);
        }
        if self.budget.refill_per_min <= 0.0 {
            return None;
        }
        let secs = (1.0 - self.tokens) * 60.0 / self.budget.refill_per_min;
        // A refill so slow that the wait does not fit a `Duration` or an `Instant` never comes.
        Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|wait| now.checked_add(wait))
    }

    /// The server said its bucket is empty: ours is too, and nothing refills before `until`.
    pub fn drain_until(&mut self, until: Instant) {
        let now = Instant::now().min(until);
        self.shared(now, |b| {
            b.tokens = 0.0;
            b.refilled_at = b.refilled_at.max(until);
        })
    }

    /// Seconds needed to send `requests` from now at this budget (0 if the bucket holds them).
    pub fn seconds_for(&mut self, requests: u64, now: Instant) -> Option<f64> {
        self.refill(now);
        let missing = requests as f64 - self.tokens.floor().max(0.0);
        if missing <= 0.0 {
            return Some(0.0);
        }
        if self.budget.refill_per_min <= 0.0 {
            return None;
        }
        Some(missing * 60.0 / self.budget.refill_per_min)
    }
}

/// Calls per vehicle in a rolling window (Smartcar asks for under 20 per vehicle per hour).
/// A batch counts once per item, as Smartcar counts it.
#[derive(Debug, Clone)]
pub struct VehicleWindows {
    cap: u32,
    window: Duration,
    calls: HashMap<String, VecDeque<Instant>>,
}

impl VehicleWindows {
    pub const HOUR: Duration = Duration::from_secs(3600);

    pub fn new(cap: u32, window: Duration) -> Self {
        VehicleWindows {
            cap: cap.max(1),
            window,
            calls: HashMap::new(),
        }
    }

    fn prune(&mut self, vehicle_id: &str, now: Instant) -> Option<&mut VecDeque<Instant>> {
        let window = self.window;
        let calls = self.calls.get_mut(vehicle_id)?;
        while calls
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            calls.pop_front();
        }
        Some(calls)
    }

    /// Calls made to the vehicle in the window ending at `now`.
    pub fn used(&mut self, vehicle_id: &str, now: Instant) -> u32 {
        self.prune(vehicle_id, now)
            .map_or(0, |c| c.len().try_into().unwrap_or(u32::MAX))
    }

    /// When `calls` more calls fit in the window: `now` if they fit already. A plan larger than the
    /// cap waits for an empty window rather than forever.
    pub fn room_at(&mut self, vehicle_id: &str, calls: u32, now: Instant) -> Instant {
        let cap = self.cap as usize;
        let window = self.window;
        let Some(made) = self.prune(vehicle_id, now) else {
            return now;
        };
        let calls = (calls as usize).min(cap);
        if made.len() + calls <= cap {
            return now;
        }
        // The oldest calls must leave the window until `calls` fit.
        let must_leave = made.len() + calls - cap;
        made.get(must_leave - 1).map_or(now, |&t| t + window)
    }

    pub fn record(&mut self, vehicle_id: &str, calls: u32, now: Instant) {
        let made = self.calls.entry(vehicle_id.to_string()).or_default();
        made.extend(std::iter::repeat_n(now, calls as usize));
    }

    /// Takes back `calls` calls recorded at `at`: the request never reached Smartcar.
    pub fn forget(&mut self, vehicle_id: &str, calls: u32, at: Instant) {
        let Some(made) = self.calls.get_mut(vehicle_id) else {
            return;
        };
        for _ in 0..calls {
            match made.iter().rposition(|t| *t == at) {
                Some(i) => {
                    made.remove(i);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_level_shown_is_the_shared_files_not_a_stale_copy() {
        let dir = std::env::temp_dir().join(format!("vtriage-budget-shown-{}", std::process::id()));
        let path = dir.join("budget.json");
        let _ = std::fs::remove_file(&path);
        let budget = RateBudget {
            burst: 11.0,
            refill_per_min: 0.0,
        };
        let now = Instant::now();
        let open = || BucketFile::open(&path).expect("bucket file");
        let mut shown = TokenBucket::new(budget, now).shared_through(open());
        let mut other = TokenBucket::new(budget, now).shared_through(open());
        assert_eq!(shown.available(now).floor(), 10.0);
        // Another process spends the budget.
        for _ in 0..10 {
            assert!(other.try_take(now));
        }
        let later = now + PEEK_EVERY;
        assert!(
            shown.available(later) < 1.0,
            "the level shown follows the file: {}",
            shown.available(later)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bucket_starts_full_and_empties() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateBudget {
                burst: 4.0,
                refill_per_min: 60.0,
            },
            t0,
        );
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        assert_eq!(b.next_token_at(t0), Some(t0 + secs(1.0)));
    }

    #[test]
    fn bucket_refills_at_its_rate_and_never_over_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateBudget::SMARTCAR_DEFAULT, t0);
        // One of the 120 is held back for requests on the wire.
        for _ in 0..119 {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0));
        // 2 per minute: one token after 30 s.
        assert!(!b.try_take(t0 + secs(29.0)));
        assert!(b.try_take(t0 + secs(30.0)));
        assert!((b.available(t0 + secs(3600.0 * 10.0)) - 119.0).abs() < 1e-9);
    }

    #[test]
    fn bucket_estimates_time_for_a_sweep() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateBudget::SMARTCAR_DEFAULT, t0);
        // 5,000 requests: 119 now, 4,881 more at 2 per minute ≈ 40.7 h.
        let s = b.seconds_for(5_000, t0).unwrap_or(f64::NAN);
        assert!((s - 4_881.0 * 30.0).abs() < 1e-6);
        assert_eq!(b.seconds_for(100, t0), Some(0.0));
    }

    #[test]
    fn drained_bucket_refills_only_after_the_server_pause() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateBudget {
                burst: 10.0,
                refill_per_min: 60.0,
            },
            t0,
        );
        b.drain_until(t0 + secs(5.0));
        assert!(!b.try_take(t0 + secs(5.5)));
        assert!(b.try_take(t0 + secs(6.0)));
    }

    #[test]
    fn given_back_token_is_usable_again() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateBudget {
                burst: 1.0,
                refill_per_min: 0.0,
            },
            t0,
        );
        assert!(b.try_take(t0));
        assert_eq!(b.next_token_at(t0), None);
        b.give_back(t0);
        assert!(b.try_take(t0));
    }

    #[test]
    fn vehicle_window_defers_calls_over_the_cap_until_old_ones_leave() {
        let t0 = Instant::now();
        let mut w = VehicleWindows::new(5, VehicleWindows::HOUR);
        w.record("v", 3, t0);
        w.record("v", 1, t0 + secs(60.0));
        assert_eq!(w.room_at("v", 1, t0 + secs(120.0)), t0 + secs(120.0));
        // 4 used, 3 more needed: two must leave; the second oldest left at t0 + 1 h.
        assert_eq!(
            w.room_at("v", 3, t0 + secs(120.0)),
            t0 + VehicleWindows::HOUR
        );
        assert_eq!(w.used("v", t0 + VehicleWindows::HOUR), 1);
        assert_eq!(w.room_at("other", 5, t0), t0);
    }

    #[test]
    fn vehicle_plan_larger_than_the_cap_waits_for_an_empty_window() {
        let t0 = Instant::now();
        let mut w = VehicleWindows::new(2, VehicleWindows::HOUR);
        w.record("v", 1, t0);
        assert_eq!(w.room_at("v", 6, t0), t0 + VehicleWindows::HOUR);
    }

    #[test]
    fn a_refill_too_slow_for_a_duration_never_comes() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateBudget {
                burst: 1.0,
                refill_per_min: 1e-300,
            },
            t0,
        );
        assert!(b.try_take(t0));
        assert_eq!(b.next_token_at(t0), None);
    }
}
