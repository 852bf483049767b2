//! Cars the agent watches once their fix was sent: when each is probed again (a backoff the
//! budget can carry; never on a desk, whose webhooks announce changes) and when it recovered.
//! Pure: the caller says the time and hands the records.

use jiff::{SignedDuration, Timestamp};

use crate::health::{Severity, Status};
use serde::{Deserialize, Serialize};

use super::{ChangeCause, VehicleRecord};

/// The longest wait between two probes of a watched car.
pub const MAX_BACKOFF: SignedDuration = SignedDuration::from_mins(15);

/// The wait before the `n`th probe of a watch (0-based): 1, 2, 4, 8 minutes, then 15.
pub fn backoff(n: u32) -> SignedDuration {
    let minutes = 1_i64.checked_shl(n.min(8)).unwrap_or(i64::MAX);
    SignedDuration::from_mins(minutes).min(MAX_BACKOFF)
}

/// When and how a watched car left the failure it was watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    pub at: Timestamp,
    /// What showed it: a probe, a webhook, …
    pub cause: ChangeCause,
}

/// One watched car. Saved with the snapshot, so `check` and `vehicle` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    pub vehicle_id: String,
    /// The finding the fix was for (`virtual-key-missing`).
    pub finding: String,
    pub since: Timestamp,
    /// The next probe; `None` on a desk, where webhooks and the desk's own probes bring changes.
    pub next_probe_at: Option<Timestamp>,
    /// Probes sent so far.
    pub probes: u32,
    pub recovered: Option<Recovery>,
}

impl Watch {
    /// One line for `check` and `vehicle`: `watched 7c1e… (virtual-key-missing) since
    /// 2026-11-27 19:00 UTC: recovered at 19:07 (probe)`, or `: still failing`.
    pub fn describe(&self) -> String {
        use crate::untrusted::text::one_line;
        let state = match self.recovered {
            Some(r) => format!(
                "recovered at {} ({})",
                r.at.strftime("%H:%M"),
                r.cause.label()
            ),
            None => "not recovered yet".into(),
        };
        format!(
            "watched {} ({}) since {}: {state}",
            one_line(&self.vehicle_id),
            one_line(&self.finding),
            crate::report::format_instant(self.since)
        )
    }
}

/// What pressing the watch key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toggle {
    Started,
    Stopped,
    /// Nothing is failing on this car: there is nothing to wait for.
    NothingToWatch(Status),
}

/// Every watch of the session, in the order they were started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watches {
    list: Vec<Watch>,
}

/// The BLOCKED or DEGRADED finding a car is failing with, if it is.
fn failing_finding(record: &VehicleRecord) -> Option<&str> {
    if !matches!(record.verdict.status, Status::Blocked | Status::Degraded) {
        return None;
    }
    record
        .verdict
        .findings
        .iter()
        .find(|f| matches!(f.severity, Severity::Blocked | Severity::Degraded))
        .map(|f| &*f.id)
}

impl Watches {
    pub fn get(&self, vehicle_id: &str) -> Option<&Watch> {
        self.list.iter().find(|w| w.vehicle_id == vehicle_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Watch> {
        self.list.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The watches as saved.
    pub fn to_vec(&self) -> Vec<Watch> {
        self.list.clone()
    }

    /// Takes saved watches, keeping any of this session's for the same car.
    pub fn restore(&mut self, saved: Vec<Watch>) {
        for w in saved {
            if self.get(&w.vehicle_id).is_none() {
                self.list.push(w);
            }
        }
    }

    /// Starts watching `record` (failing now) or stops a watch already there. `by_probe`: this
    /// session probes the car itself (no desk).
    pub fn toggle(&mut self, record: &VehicleRecord, now: Timestamp, by_probe: bool) -> Toggle {
        if let Some(i) = self
            .list
            .iter()
            .position(|w| w.vehicle_id == record.vehicle_id)
        {
            self.list.remove(i);
            return Toggle::Stopped;
        }
        let Some(finding) = failing_finding(record) else {
            return Toggle::NothingToWatch(record.verdict.status);
        };
        self.list.push(Watch {
            vehicle_id: record.vehicle_id.clone(),
            finding: finding.to_string(),
            since: now,
            next_probe_at: by_probe.then(|| now.checked_add(backoff(0)).unwrap_or(now)),
            probes: 0,
            recovered: None,
        });
        Toggle::Started
    }

    /// The watched cars due for a probe at `now`; each one's next probe moves one step further
    /// out. Recovered cars are probed no more.
    pub fn due(&mut self, now: Timestamp) -> Vec<String> {
        let mut due = Vec::new();
        for w in &mut self.list {
            let Some(next) = w.next_probe_at else {
                continue;
            };
            if w.recovered.is_some() || next > now {
                continue;
            }
            w.probes = w.probes.saturating_add(1);
            w.next_probe_at = Some(now.checked_add(backoff(w.probes)).unwrap_or(now));
            due.push(w.vehicle_id.clone());
        }
        due
    }

    /// Marks the watched cars that left their failure, as `record_of` now shows them; returns
    /// those that recovered with this call. A car recovered when it is no longer BLOCKED or
    /// DEGRADED, or no longer for the watched finding; the time and cause are its last status
    /// change's when there is one since the watch began.
    pub(super) fn check<'r>(
        &mut self,
        record_of: impl Fn(&str) -> Option<&'r VehicleRecord>,
        now: Timestamp,
    ) -> Vec<(String, Recovery)> {
        let mut recovered = Vec::new();
        for w in self.list.iter_mut().filter(|w| w.recovered.is_none()) {
            let Some(record) = record_of(&w.vehicle_id) else {
                continue;
            };
            if failing_finding(record) == Some(w.finding.as_str()) {
                continue;
            }
            let recovery = match record.history.last().filter(|c| c.at >= w.since) {
                Some(change) => Recovery {
                    at: change.at,
                    cause: change.cause,
                },
                None => Recovery {
                    at: now,
                    cause: ChangeCause::Probe,
                },
            };
            w.recovered = Some(recovery);
            w.next_probe_at = None;
            recovered.push((w.vehicle_id.clone(), recovery));
        }
        recovered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_one_minute_and_stops_at_fifteen() {
        let minutes: Vec<i64> = (0..7).map(|n| backoff(n).as_mins()).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 15, 15, 15]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
