//! The queue of probes not yet started: highest priority first, first come first served within a
//! priority, one entry per vehicle, with entries held back until a given time.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::events::Priority;

/// A probe waiting to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedProbe {
    pub vehicle_id: String,
    pub priority: Priority,
    pub force: bool,
    /// Order of arrival; kept when the entry is upgraded or deferred.
    pub seq: u64,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    New,
    /// The vehicle was already queued; its priority and `force` are now the higher of both.
    Merged,
}

#[derive(Debug, Clone)]
struct Entry {
    priority: Priority,
    force: bool,
    seq: u64,
    not_before: Option<Instant>,
}

type ReadyKey = (Reverse<Priority>, u64, String);

#[derive(Debug, Default)]
pub struct ProbeQueue {
    entries: HashMap<String, Entry>,
    ready: BTreeSet<ReadyKey>,
    held: BTreeSet<(Instant, u64, String)>,
    next_seq: u64,
}

impl ProbeQueue {
    pub fn new() -> Self {
        ProbeQueue::default()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, vehicle_id: &str) -> bool {
        self.entries.contains_key(vehicle_id)
    }

    fn unlink(&mut self, vehicle_id: &str, e: &Entry) {
        match e.not_before {
            Some(t) => self.held.remove(&(t, e.seq, vehicle_id.to_string())),
            None => self
                .ready
                .remove(&(Reverse(e.priority), e.seq, vehicle_id.to_string())),
        };
    }

    fn link(&mut self, vehicle_id: &str, e: &Entry) {
        match e.not_before {
            Some(t) => self.held.insert((t, e.seq, vehicle_id.to_string())),
            None => self
                .ready
                .insert((Reverse(e.priority), e.seq, vehicle_id.to_string())),
        };
    }

    /// Queues a probe, or merges it into the one already queued for the vehicle.
    pub fn push(&mut self, vehicle_id: &str, priority: Priority, force: bool) -> Pushed {
        if let Some(old) = self.entries.get(vehicle_id).cloned() {
            let merged = Entry {
                priority: old.priority.max(priority),
                force: old.force || force,
                ..old.clone()
            };
            self.unlink(vehicle_id, &old);
            self.link(vehicle_id, &merged);
            self.entries.insert(vehicle_id.to_string(), merged);
            return Pushed::Merged;
        }
        let e = Entry {
            priority,
            force,
            seq: self.next_seq,
            not_before: None,
        };
        self.next_seq += 1;
        self.link(vehicle_id, &e);
        self.entries.insert(vehicle_id.to_string(), e);
        Pushed::New
    }

    /// Puts a popped probe back, held until `until`, keeping its place among equals.
    pub fn defer(&mut self, probe: QueuedProbe, until: Instant) {
        let e = Entry {
            priority: probe.priority,
            force: probe.force,
            seq: probe.seq,
            not_before: Some(until),
        };
        if let Some(old) = self.entries.remove(&probe.vehicle_id) {
            self.unlink(&probe.vehicle_id, &old);
        }
        self.link(&probe.vehicle_id, &e);
        self.entries.insert(probe.vehicle_id, e);
    }

    /// Moves held entries whose time has come to the ready set.
    fn release_due(&mut self, now: Instant) {
        while let Some(first) = self.held.first().cloned() {
            if first.0 > now {
                break;
            }
            self.held.pop_first();
            let (_, seq, vehicle_id) = first;
            if let Some(e) = self.entries.get_mut(&vehicle_id) {
                e.not_before = None;
                self.ready.insert((Reverse(e.priority), seq, vehicle_id));
            }
        }
    }

    /// The priority of the probe that would start next, if any is ready.
    pub fn peek_ready(&mut self, now: Instant) -> Option<Priority> {
        self.release_due(now);
        self.ready.first().map(|(Reverse(p), _, _)| *p)
    }

    pub fn pop_ready(&mut self, now: Instant) -> Option<QueuedProbe> {
        self.release_due(now);
        let (Reverse(priority), seq, vehicle_id) = self.ready.pop_first()?;
        let e = self.entries.remove(&vehicle_id)?;
        Some(QueuedProbe {
            vehicle_id,
            priority,
            force: e.force,
            seq,
        })
    }

    /// When the earliest held entry becomes ready.
    pub fn next_release(&self) -> Option<Instant> {
        self.held.first().map(|(t, _, _)| *t)
    }

    /// Drops every entry queued at exactly `priority` (a cancelled sweep); returns their vehicle ids.
    pub fn drop_priority(&mut self, priority: Priority) -> Vec<String> {
        let dropped: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.priority == priority)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dropped {
            if let Some(e) = self.entries.remove(id) {
                self.unlink(id, &e);
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ids(q: &mut ProbeQueue, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| q.pop_ready(now).map(|p| p.vehicle_id)).collect()
    }

    #[test]
    fn focus_jumps_ahead_of_queued_sweep_work() {
        let now = Instant::now();
        let mut q = ProbeQueue::new();
        for i in 0..5 {
            q.push(&format!("s{i}"), Priority::Sweep, false);
        }
        q.push("row", Priority::Visible, false);
        q.push("opened", Priority::Focus, false);
        assert_eq!(
            ids(&mut q, now),
            ["opened", "row", "s0", "s1", "s2", "s3", "s4"]
        );
    }

    #[test]
    fn repeated_request_merges_and_upgrades_instead_of_duplicating() {
        let now = Instant::now();
        let mut q = ProbeQueue::new();
        assert_eq!(q.push("a", Priority::Sweep, false), Pushed::New);
        q.push("b", Priority::Sweep, false);
        assert_eq!(q.push("b", Priority::Focus, true), Pushed::Merged);
        assert_eq!(q.push("b", Priority::Sweep, false), Pushed::Merged);
        assert_eq!(q.len(), 2);
        let first = q.pop_ready(now);
        assert_eq!(
            first,
            Some(QueuedProbe {
                vehicle_id: "b".into(),
                priority: Priority::Focus,
                force: true,
                seq: 1
            })
        );
    }

    #[test]
    fn cancelled_sweep_drops_only_sweep_entries() {
        let now = Instant::now();
        let mut q = ProbeQueue::new();
        q.push("s1", Priority::Sweep, false);
        q.push("s2", Priority::Sweep, false);
        q.push("s2", Priority::Visible, false);
        q.push("f", Priority::Focus, false);
        q.push("s3", Priority::Sweep, false);
        let held = q.pop_ready(now);
        if let Some(p) = held {
            q.defer(p, now + Duration::from_secs(60));
        }
        let mut dropped = q.drop_priority(Priority::Sweep);
        dropped.sort();
        assert_eq!(dropped, ["s1", "s3"]);
        assert_eq!(ids(&mut q, now), ["s2"]);
        assert_eq!(ids(&mut q, now + Duration::from_secs(61)), ["f"]);
        assert!(q.is_empty());
    }

    #[test]
    fn deferred_probe_waits_until_its_time() {
        let now = Instant::now();
        let mut q = ProbeQueue::new();
        q.push("limited", Priority::Focus, false);
        q.push("other", Priority::Sweep, false);
        let p = q.pop_ready(now);
        let until = now + Duration::from_secs(10);
        if let Some(p) = p {
            q.defer(p, until);
        }
        assert_eq!(q.next_release(), Some(until));
        assert_eq!(q.peek_ready(now), Some(Priority::Sweep));
        assert_eq!(ids(&mut q, now), ["other"]);
        assert_eq!(q.peek_ready(now), None);
        assert_eq!(ids(&mut q, until), ["limited"]);
    }

    #[test]
    fn upgrading_a_deferred_probe_keeps_it_held() {
        let now = Instant::now();
        let mut q = ProbeQueue::new();
        q.push("v", Priority::Sweep, false);
        if let Some(p) = q.pop_ready(now) {
            q.defer(p, now + Duration::from_secs(5));
        }
        q.push("v", Priority::Focus, false);
        assert_eq!(q.peek_ready(now), None);
        assert_eq!(
            q.pop_ready(now + Duration::from_secs(5))
                .map(|p| p.priority),
            Some(Priority::Focus)
        );
    }
}
