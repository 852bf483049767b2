//! Fleet-wide tallies (per status, rule, make, finding; checked of total), kept up to date one record at a time.

use std::collections::BTreeMap;

use crate::health::Status;

use super::VehicleRecord;

/// Counts over all vehicles, whatever the filter. Rules and findings count vehicles, not findings:
/// a vehicle with two findings from one rule counts once for that rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Every status is present, with 0 when no vehicle has it.
    pub by_status: BTreeMap<Status, usize>,
    pub by_rule: BTreeMap<String, usize>,
    /// Makes in upper case, as Smartcar spells them; vehicles without attributes are not counted.
    pub by_make: BTreeMap<String, usize>,
    pub by_finding: BTreeMap<String, usize>,
    /// Vehicles probed at least once (including those loaded from a snapshot).
    pub checked: usize,
    pub total: usize,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            by_status: Status::ALL.into_iter().map(|s| (s, 0)).collect(),
            by_rule: BTreeMap::new(),
            by_make: BTreeMap::new(),
            by_finding: BTreeMap::new(),
            checked: 0,
            total: 0,
        }
    }
}

fn bump(map: &mut BTreeMap<String, usize>, key: &str, add: bool) {
    if add {
        match map.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                map.insert(key.to_string(), 1);
            }
        }
    } else if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Counts {
    /// Vehicles with this status.
    pub fn status(&self, status: Status) -> usize {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub(super) fn add(&mut self, record: &VehicleRecord) {
        self.tally(record, true);
    }

    pub(super) fn remove(&mut self, record: &VehicleRecord) {
        self.tally(record, false);
    }

    fn tally(&mut self, r: &VehicleRecord, add: bool) {
        let step = |n: &mut usize| {
            if add {
                *n += 1
            } else {
                *n = n.saturating_sub(1)
            }
        };
        step(&mut self.total);
        if r.last_probe_at.is_some() {
            step(&mut self.checked);
        }
        step(self.by_status.entry(r.verdict.status).or_insert(0));
        if let Some(a) = &r.attributes {
            if a.make.bytes().any(|b| b.is_ascii_lowercase()) {
                bump(&mut self.by_make, &a.make.to_ascii_uppercase(), add);
            } else {
                bump(&mut self.by_make, &a.make, add);
            }
        }
        let findings = &r.verdict.findings;
        for (i, f) in findings.iter().enumerate() {
            if !findings[..i].iter().any(|g| g.id == f.id) {
                bump(&mut self.by_finding, &f.id, add);
            }
            // A rule "affects" a vehicle when it causes a problem; an exempt vehicle's Info finding does not count.
            let affects = |g: &super::FindingTag| g.severity > crate::health::Severity::Info;
            if let Some(rule) = &f.rule
                && affects(f)
                && !findings[..i]
                    .iter()
                    .any(|g| affects(g) && g.rule.as_ref() == Some(rule))
            {
                bump(&mut self.by_rule, rule, add);
            }
        }
    }
}
