//! The desk's counters and gauges, and their Prometheus text exposition for `GET /metrics`.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::db::Pruned;
use super::rejected::Why;
use crate::fetch::{SourceName, SourceOutage};

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Missing or wrong `SC-Signature`.
    Signature,
    /// Signed, but not a payload we can read.
    Payload,
    /// Over the body cap.
    TooLarge,
    /// The database did not commit it (the sender retries).
    Database,
}

impl Rejection {
    const ALL: [Rejection; 4] = [
        Rejection::Signature,
        Rejection::Payload,
        Rejection::TooLarge,
        Rejection::Database,
    ];

    fn label(self) -> &'static str {
        match self {
            Rejection::Signature => "signature",
            Rejection::Payload => "payload",
            Rejection::TooLarge => "too_large",
            Rejection::Database => "database",
        }
    }
}

/// Shared by the server, the prober and the ingest path; every counter is lock-free.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_received: AtomicU64,
    pub events_stored: AtomicU64,
    pub events_deduplicated: AtomicU64,
    pub verify_answered: AtomicU64,
    /// Transactions that committed deliveries together (group commit), and the deliveries in them.
    pub batches_committed: AtomicU64,
    pub batched_deliveries: AtomicU64,
    /// Shared transactions that failed, whose deliveries were then committed one by one.
    pub batches_retried: AtomicU64,
    rejected: [AtomicU64; 4],
    /// Probe reports the prober stored.
    pub probes: AtomicU64,
    /// HTTP requests the prober's scheduler sent to Smartcar.
    pub api_requests: AtomicU64,
    /// Client-side budget left, in thousandths of a request; negative when the limit is off.
    budget_left_milli: AtomicI64,
    /// 1 while this process holds the desk's prober lock.
    pub prober_active: AtomicU64,
    /// Agents' dashboards attached to this server.
    pub dashboards_connected: AtomicU64,
    /// The sources the prober found unreachable, with the line that says why.
    outages: Mutex<Vec<SourceOutage>>,
    /// Rows deleted by retention, per table in [`Pruned::ALL`] order.
    pruned: [AtomicU64; 6],
    /// Refused deliveries by why, in [`Why::ALL`] order.
    refused: [AtomicU64; 6],
    /// Refused deliveries written for `serve --rejected`.
    pub rejected_kept: AtomicU64,
    /// Refused deliveries only counted: over the write rate, or the database refused them.
    pub rejected_unkept: AtomicU64,
    /// Why the prober's Smartcar settings fail, while they do.
    prober_settings_problem: Mutex<Option<String>>,
    /// Probe requests waiting for the prober, as it last read them.
    pub probes_waiting: AtomicU64,
}

/// What the desk did, counted: the operator's log says it per minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub received: u64,
    pub stored: u64,
    pub deduplicated: u64,
    pub rejected: u64,
    pub probes: u64,
}

impl Tally {
    /// What happened between `before` and this tally.
    pub fn since(self, before: Tally) -> Tally {
        Tally {
            received: self.received.saturating_sub(before.received),
            stored: self.stored.saturating_sub(before.stored),
            deduplicated: self.deduplicated.saturating_sub(before.deduplicated),
            rejected: self.rejected.saturating_sub(before.rejected),
            probes: self.probes.saturating_sub(before.probes),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Tally::default()
    }
}

impl Metrics {
    /// The counters a minute's log line compares.
    pub fn tally(&self) -> Tally {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Tally {
            received: load(&self.events_received),
            stored: load(&self.events_stored),
            deduplicated: load(&self.events_deduplicated),
            rejected: self.rejected.iter().map(load).sum(),
            probes: load(&self.probes),
        }
    }

    pub fn new() -> Metrics {
        let m = Metrics::default();
        m.budget_left_milli.store(-1, Ordering::Relaxed);
        m
    }

    /// Counts rows retention deleted from `table`.
    pub fn pruned(&self, table: Pruned, rows: u64) {
        let i = Pruned::ALL.iter().position(|t| *t == table).unwrap_or(0);
        self.pruned[i].fetch_add(rows, Ordering::Relaxed);
    }

    pub fn reject(&self, why: Rejection) {
        let i = Rejection::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.rejected[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused delivery by why, as `serve --rejected` names it.
    pub fn refused(&self, why: Why) {
        let i = Why::ALL.iter().position(|w| *w == why).unwrap_or(0);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, why: Rejection) -> u64 {
        let i = Rejection::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.rejected[i].load(Ordering::Relaxed)
    }

    pub fn set_budget_left(&self, left: Option<f64>) {
        let milli = left.map_or(-1, |l| (l.max(0.0) * 1000.0).min(i64::MAX as f64) as i64);
        self.budget_left_milli.store(milli, Ordering::Relaxed);
    }

    /// Sets (or with `None` clears) why the prober's settings fail; whether they failed until now.
    pub fn set_prober_settings_problem(&self, problem: Option<&str>) -> bool {
        let mut slot = self
            .prober_settings_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, problem.map(str::to_string)).is_some()
    }

    /// Why the prober's settings fail, while they do.
    pub fn prober_settings_problem(&self) -> Option<String> {
        self.prober_settings_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The prober found a source unreachable; whether it was not already (a new outage).
    pub fn source_down(&self, outage: &SourceOutage) -> bool {
        let mut outages = self.outages.lock().unwrap_or_else(|e| e.into_inner());
        let new = !outages.iter().any(|o| o.source == outage.source);
        outages.retain(|o| o.source != outage.source);
        outages.push(outage.clone());
        outages.sort_by_key(|o| o.source);
        new
    }

    /// The source answers again; whether it was down.
    pub fn source_up(&self, source: SourceName) -> bool {
        let mut outages = self.outages.lock().unwrap_or_else(|e| e.into_inner());
        let before = outages.len();
        outages.retain(|o| o.source != source);
        outages.len() != before
    }

    /// The prober stopped: what it knew of the sources goes with it.
    pub fn forget_outages(&self) {
        self.outages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The sources down now.
    pub fn outages(&self) -> Vec<SourceOutage> {
        self.outages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let plain = |v: u64| vec![(String::new(), v.to_string())];
        metric(
            "vtriage_webhook_events_received_total",
            "counter",
            "Webhook deliveries received.",
            &plain(load(&self.events_received)),
        );
        metric(
            "vtriage_webhook_events_stored_total",
            "counter",
            "Webhook deliveries committed to the database.",
            &plain(load(&self.events_stored)),
        );
        metric(
            "vtriage_webhook_events_deduplicated_total",
            "counter",
            "Deliveries of an event already stored (same eventId).",
            &plain(load(&self.events_deduplicated)),
        );
        metric(
            "vtriage_webhook_batches_committed_total",
            "counter",
            "Transactions that committed several deliveries together.",
            &plain(load(&self.batches_committed)),
        );
        metric(
            "vtriage_webhook_batched_deliveries_total",
            "counter",
            "Deliveries committed in a transaction shared with others.",
            &plain(load(&self.batched_deliveries)),
        );
        metric(
            "vtriage_webhook_batches_retried_total",
            "counter",
            "Shared transactions that failed; their deliveries were committed one by one.",
            &plain(load(&self.batches_retried)),
        );
        metric(
            "vtriage_webhook_verify_answered_total",
            "counter",
            "VERIFY challenges answered.",
            &plain(load(&self.verify_answered)),
        );
        let rejected: Vec<(String, String)> = Rejection::ALL
            .iter()
            .map(|r| {
                (
                    format!("{{reason=\"{}\"}}", r.label()),
                    self.rejected(*r).to_string(),
                )
            })
            .collect();
        metric(
            "vtriage_webhook_events_rejected_total",
            "counter",
            "Webhook deliveries refused, by reason.",
            &rejected,
        );
        let refused: Vec<(String, String)> = Why::ALL
            .iter()
            .zip(&self.refused)
            .map(|(w, n)| (format!("{{why=\"{}\"}}", w.label()), load(n).to_string()))
            .collect();
        metric(
            "vtriage_rejected_deliveries_total",
            "counter",
            "Webhook deliveries refused, by why (as `serve --rejected` lists them).",
            &refused,
        );
        metric(
            "vtriage_rejected_deliveries_kept_total",
            "counter",
            "Refused deliveries kept for `serve --rejected`.",
            &plain(load(&self.rejected_kept)),
        );
        metric(
            "vtriage_rejected_deliveries_unkept_total",
            "counter",
            "Refused deliveries only counted (over the write rate, or not written).",
            &plain(load(&self.rejected_unkept)),
        );
        let pruned: Vec<(String, String)> = Pruned::ALL
            .iter()
            .zip(&self.pruned)
            .map(|(t, n)| (format!("{{table=\"{}\"}}", t.table()), load(n).to_string()))
            .collect();
        metric(
            "vtriage_rows_pruned_total",
            "counter",
            "Rows deleted by retention, by table.",
            &pruned,
        );
        metric(
            "vtriage_probes_total",
            "counter",
            "Probe reports stored by this process's prober.",
            &plain(load(&self.probes)),
        );
        metric(
            "vtriage_api_requests_total",
            "counter",
            "Requests this process's prober sent to Smartcar.",
            &plain(load(&self.api_requests)),
        );
        let budget = self.budget_left_milli.load(Ordering::Relaxed);
        if budget >= 0 {
            metric(
                "vtriage_budget_left",
                "gauge",
                "Requests left in the client-side rate budget.",
                &[(String::new(), format!("{:.3}", budget as f64 / 1000.0))],
            );
        }
        metric(
            "vtriage_prober_active",
            "gauge",
            "1 while this process holds the desk's prober lock.",
            &plain(load(&self.prober_active)),
        );
        metric(
            "vtriage_prober_settings_failing",
            "gauge",
            "1 while the prober's Smartcar settings fail (a secret command, the scheduler's start).",
            &plain(u64::from(self.prober_settings_problem().is_some())),
        );
        metric(
            "vtriage_probes_waiting",
            "gauge",
            "Vehicles with probe requests not served yet, as the prober last read them.",
            &plain(load(&self.probes_waiting)),
        );
        let down = self.outages();
        let sources: Vec<(String, String)> = SourceName::ALL
            .iter()
            .map(|s| {
                let value = u8::from(down.iter().any(|o| o.source == *s));
                (format!("{{source=\"{}\"}}", s.slug()), value.to_string())
            })
            .collect();
        metric(
            "vtriage_source_unreachable",
            "gauge",
            "1 while the prober finds this source unreachable (probing waits for a retry).",
            &sources,
        );
        metric(
            "vtriage_dashboards_connected",
            "gauge",
            "Agents' dashboards attached to this server.",
            &plain(load(&self.dashboards_connected)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_counter_with_help_and_type() {
        let m = Metrics::new();
        m.events_received.fetch_add(3, Ordering::Relaxed);
        m.reject(Rejection::Signature);
        m.set_budget_left(Some(118.5));
        let text = m.render();
        assert!(text.contains("vtriage_webhook_events_received_total 3\n"));
        assert!(text.contains("vtriage_webhook_events_rejected_total{reason=\"signature\"} 1\n"));
        assert!(text.contains("vtriage_budget_left 118.500\n"));
        assert!(text.contains("# TYPE vtriage_prober_active gauge\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line.split(' ').count(), 2, "{line}");
        }
    }

    #[test]
    fn a_minutes_tally_is_what_changed_since_the_last_one() {
        let m = Metrics::new();
        let before = m.tally();
        assert!(m.tally().since(before).is_empty());
        m.events_received.fetch_add(5, Ordering::Relaxed);
        m.events_stored.fetch_add(3, Ordering::Relaxed);
        m.reject(Rejection::Signature);
        m.reject(Rejection::TooLarge);
        let minute = m.tally().since(before);
        assert_eq!(
            minute,
            Tally {
                received: 5,
                stored: 3,
                deduplicated: 0,
                rejected: 2,
                probes: 0,
            }
        );
        assert!(m.tally().since(m.tally()).is_empty());
    }

    #[test]
    fn the_probes_waiting_and_failing_prober_settings_are_gauges() {
        let m = Metrics::new();
        m.probes_waiting.store(61, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("# TYPE vtriage_probes_waiting gauge\nvtriage_probes_waiting 61\n"));
        assert!(text.contains("vtriage_prober_settings_failing 0\n"));
        assert!(!m.set_prober_settings_problem(Some("tokens_command `x` failed")));
        assert!(m.render().contains("vtriage_prober_settings_failing 1\n"));
        assert!(m.set_prober_settings_problem(None), "it was failing");
        assert!(m.render().contains("vtriage_prober_settings_failing 0\n"));
    }

    #[test]
    fn an_unreachable_source_is_a_gauge_until_it_answers() {
        let m = Metrics::new();
        assert!(
            m.render()
                .contains("vtriage_source_unreachable{source=\"vehicle_api\"} 0\n")
        );
        let outage = SourceOutage {
            source: SourceName::VehicleApi,
            origin: "http://127.0.0.1:1".into(),
            kind: "connection refused".into(),
            message: "the Vehicle API at http://127.0.0.1:1 is unreachable".into(),
            retry_at: jiff::Timestamp::now(),
        };
        assert!(m.source_down(&outage));
        assert!(!m.source_down(&outage), "a failed retry is the same outage");
        let text = m.render();
        assert!(text.contains("vtriage_source_unreachable{source=\"vehicle_api\"} 1\n"));
        assert!(text.contains("vtriage_source_unreachable{source=\"token_endpoint\"} 0\n"));
        assert!(m.source_up(SourceName::VehicleApi));
        assert!(
            m.render()
                .contains("vtriage_source_unreachable{source=\"vehicle_api\"} 0\n")
        );
    }

    #[test]
    fn no_budget_gauge_when_the_limit_is_off() {
        let m = Metrics::new();
        m.set_budget_left(None);
        assert!(!m.render().contains("vtriage_budget_left"));
    }
}
