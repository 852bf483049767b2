//! Rate limits as Smartcar enforces them: the app-wide token bucket and the per-vehicle rolling hour.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::AppRateLimit;

/// The app-wide bucket as a generic cell rate algorithm on one atomic: the "theoretical arrival
/// time" advances by one refill interval per request, and a request is refused when that time runs
/// more than a full bucket ahead of now. Same behaviour as a token bucket, no lock.
#[derive(Debug)]
pub struct AppBucket {
    start: Instant,
    interval_ns: u64,
    capacity_ns: u64,
    tat_ns: AtomicU64,
}

impl AppBucket {
    pub fn new(limit: AppRateLimit) -> AppBucket {
        let per_min = if limit.refill_per_min > 0.0 {
            limit.refill_per_min
        } else {
            f64::MIN_POSITIVE
        };
        let interval_ns = (60e9 / per_min).min(u64::MAX as f64 / 4.0) as u64;
        AppBucket {
            start: Instant::now(),
            interval_ns,
            capacity_ns: interval_ns.saturating_mul(u64::from(limit.burst.max(1))),
            tat_ns: AtomicU64::new(0),
        }
    }

    /// Takes one token, or says in how many seconds one will be there.
    pub fn try_acquire(&self) -> Result<(), u64> {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX / 2);
        let mut current = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let next = current.max(now).saturating_add(self.interval_ns);
            let ahead = next - now;
            if ahead > self.capacity_ns {
                let wait_ns = ahead - self.capacity_ns;
                return Err(wait_ns.div_ceil(1_000_000_000).max(1));
            }
            match self.tat_ns.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }

    /// Refills the bucket.
    pub fn reset(&self) {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX / 2);
        self.tat_ns.store(now, Ordering::Relaxed);
    }
}

const HOUR: Duration = Duration::from_secs(3_600);

/// One vehicle's calls in the last hour. Locked per vehicle, so vehicles never wait on each other.
#[derive(Debug, Default)]
pub struct VehicleWindow {
    calls: Mutex<VecDeque<Instant>>,
}

impl VehicleWindow {
    /// Records a call, or refuses it with the seconds until the oldest call leaves the hour.
    /// `limit` 0 means unlimited.
    pub fn try_call(&self, limit: u32, now: Instant) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        let mut calls = match self.calls.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            calls.pop_front();
        }
        if calls.len() >= limit as usize {
            let oldest = calls.front().copied().unwrap_or(now);
            let free_in = HOUR.saturating_sub(now.duration_since(oldest));
            return Err(free_in.as_secs_f64().ceil().max(1.0) as u64);
        }
        calls.push_back(now);
        Ok(())
    }

    pub fn clear(&self) {
        match self.calls.lock() {
            Ok(mut guard) => guard.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refuses_with_a_wait() {
        let bucket = AppBucket::new(AppRateLimit {
            burst: 5,
            refill_per_min: 2.0,
        });
        for _ in 0..5 {
            assert_eq!(bucket.try_acquire(), Ok(()));
        }
        let wait = bucket
            .try_acquire()
            .expect_err("sixth request exceeds the burst");
        assert!((1..=30).contains(&wait), "{wait}");
    }

    #[test]
    fn vehicle_window_refuses_after_the_hourly_limit() {
        let window = VehicleWindow::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(window.try_call(3, t0), Ok(()));
        }
        let wait = window
            .try_call(3, t0 + Duration::from_secs(600))
            .expect_err("fourth call");
        assert_eq!(wait, 3_000);
        assert_eq!(window.try_call(3, t0 + HOUR), Ok(()));
    }

    #[test]
    fn zero_means_no_vehicle_limit() {
        let window = VehicleWindow::default();
        for _ in 0..100 {
            assert_eq!(window.try_call(0, Instant::now()), Ok(()));
        }
    }
}
