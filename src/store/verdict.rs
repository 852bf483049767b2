//! The hot half of a vehicle record: what the fleet list, filters, counts and sort read of its
//! diagnosis (`Verdict`) and probe report (`Glance`), with finding texts shared across vehicles.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::health::{Diagnosis, FindingKind, Severity, Status};
use crate::smartcar::{Answer, DataKind, Probe, ProbeReport};

/// One finding as the list shows and filters it. Shared by every vehicle with the same finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FindingTag {
    pub id: Arc<str>,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
    pub title: Arc<str>,
}

impl FindingTag {
    pub fn kind(&self) -> FindingKind<'_> {
        FindingKind::of(&self.id, self.rule.as_deref())
    }
}

/// A diagnosis reduced to its status and findings (worst first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub checked_at: Option<Timestamp>,
    pub findings: Box<[Arc<FindingTag>]>,
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict {
            status: Status::Unknown,
            checked_at: None,
            findings: Box::default(),
        }
    }
}

impl Verdict {
    pub fn of(diagnosis: &Diagnosis, interner: &mut Interner) -> Verdict {
        Verdict {
            status: diagnosis.status,
            checked_at: diagnosis.checked_at,
            findings: diagnosis
                .findings
                .iter()
                .map(|f| interner.tag(&f.id, f.severity, f.rule.as_deref(), &f.title))
                .collect(),
        }
    }

    /// The finding that explains the status.
    pub fn main_finding(&self) -> Option<&FindingTag> {
        self.findings.first().map(|f| &**f)
    }

    pub fn has_finding(&self, kind: FindingKind<'_>) -> bool {
        self.findings.iter().any(|f| f.kind() == kind)
    }

    /// The same verdict with its texts shared through `interner` (after loading a snapshot).
    pub(super) fn share(&mut self, interner: &mut Interner) {
        for f in &mut self.findings {
            *f = interner.tag(&f.id, f.severity, f.rule.as_deref(), &f.title);
        }
    }
}

/// What the list's badges read of a probe report: permissions and the virtual key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Glance {
    /// Data kinds granted at Smartcar, one bit per [`DataKind::ALL`] entry; `None` until the
    /// permissions were read.
    pub granted: Option<u16>,
    /// Tesla-side `vehicle_location` scope, when the user access was read.
    pub tesla_location: Option<bool>,
    /// The virtual key's pairing, when it was read.
    pub virtual_key_paired: Option<bool>,
}

impl Glance {
    pub fn of(report: &ProbeReport) -> Glance {
        let answer = |probe| report.get(probe).and_then(|o| o.answer());
        Glance {
            granted: match answer(Probe::Permissions) {
                Some(Answer::Permissions { permissions }) => Some(
                    DataKind::ALL
                        .iter()
                        .enumerate()
                        .filter(|(_, k)| permissions.iter().any(|p| p == k.permission()))
                        .fold(0, |bits, (i, _)| bits | 1 << i),
                ),
                _ => None,
            },
            tesla_location: match answer(Probe::TeslaUserAccess) {
                Some(Answer::TeslaUserAccess(access)) => Some(access.has_vehicle_location()),
                _ => None,
            },
            virtual_key_paired: match answer(Probe::VirtualKey) {
                Some(Answer::VirtualKey { is_paired }) => Some(*is_paired),
                _ => None,
            },
        }
    }

    /// Whether `kind` is granted at Smartcar; `None` when the permissions were not read.
    pub fn grants(&self, kind: DataKind) -> Option<bool> {
        let bit = DataKind::ALL.iter().position(|k| *k == kind)?;
        self.granted.map(|bits| bits & (1 << bit) != 0)
    }
}

/// One shared copy of each finding text and tag: a fleet has a few dozen distinct ones.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    texts: HashSet<Arc<str>>,
    tags: HashSet<Arc<FindingTag>>,
}

impl Interner {
    pub fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.texts.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        self.texts.insert(Arc::clone(&shared));
        shared
    }

    pub fn tag(
        &mut self,
        id: &str,
        severity: Severity,
        rule: Option<&str>,
        title: &str,
    ) -> Arc<FindingTag> {
        let tag = FindingTag {
            id: self.intern(id),
            severity,
            rule: rule.map(|r| self.intern(r)),
            title: self.intern(title),
        };
        if let Some(shared) = self.tags.get(&tag) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(tag);
        self.tags.insert(Arc::clone(&shared));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartcar::{Meta, Observation, TeslaUserAccess};

    fn answered(probe: Probe, answer: Answer) -> Observation {
        Observation {
            probe,
            endpoint: String::new(),
            at: Timestamp::UNIX_EPOCH,
            meta: Meta::default(),
            outcome: Ok(answer),
        }
    }

    #[test]
    fn a_glance_reads_granted_permissions_the_tesla_scope_and_the_key() {
        let report = ProbeReport {
            observations: vec![
                answered(
                    Probe::Permissions,
                    Answer::Permissions {
                        permissions: vec!["read_odometer".into(), "read_vin".into()],
                    },
                ),
                answered(
                    Probe::TeslaUserAccess,
                    Answer::TeslaUserAccess(TeslaUserAccess {
                        access_type: None,
                        permissions: Some(vec!["vehicle_device_data".into()]),
                    }),
                ),
                answered(Probe::VirtualKey, Answer::VirtualKey { is_paired: true }),
            ],
            ..ProbeReport::default()
        };
        let glance = Glance::of(&report);
        assert_eq!(glance.grants(DataKind::Odometer), Some(true));
        assert_eq!(glance.grants(DataKind::Vin), Some(true));
        assert_eq!(glance.grants(DataKind::Location), Some(false));
        assert_eq!(glance.tesla_location, Some(false));
        assert_eq!(glance.virtual_key_paired, Some(true));
        assert_eq!(Glance::default().grants(DataKind::Odometer), None);
    }

    #[test]
    fn interned_texts_share_one_allocation() {
        let mut interner = Interner::default();
        let a = interner.intern("virtual-key-missing");
        let b = interner.intern(&String::from("virtual-key-missing"));
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn a_rule_finding_spelled_like_a_builtin_one_is_found_as_the_rules() {
        use crate::health::{FindingId, FindingKind};
        let mut interner = Interner::default();
        let verdict = Verdict {
            status: Status::Blocked,
            checked_at: None,
            findings: Box::new([interner.tag(
                "no-response",
                Severity::Blocked,
                Some("tesla-virtual-key"),
                "Tesla: virtual key required for data",
            )]),
        };
        assert!(verdict.has_finding(FindingKind::Rule("no-response")));
        assert!(!verdict.has_finding(FindingKind::Builtin(FindingId::NoResponse)));
    }
}
