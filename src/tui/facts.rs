//! What the views say about one vehicle's permissions and virtual key, read from its probe report and diagnosis. Pure.

use crate::health::policy::Coverage;
use crate::health::{Diagnosis, Needs, Policies};
use crate::smartcar::{Answer, DataKind, Probe, ProbeReport};

/// Where one permission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Granted and used.
    Granted,
    /// Not granted, and the app does not need it.
    Missing,
    /// The app needs it and it is not granted: a fault.
    NeededMissing,
    /// The permissions were not read yet.
    Unknown,
}

/// One row of the permissions grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionRow {
    pub kind: DataKind,
    pub needed: bool,
    /// At Smartcar (`GET /permissions`).
    pub smartcar: Grant,
    /// At Tesla (`/tesla/user/access`): only location has a Tesla-side scope; `None` when it does not apply.
    pub tesla: Option<Grant>,
}

impl PermissionRow {
    /// The worst of both sides, for the compact badge.
    pub fn overall(&self) -> Grant {
        match (self.smartcar, self.tesla) {
            (Grant::NeededMissing, _) | (_, Some(Grant::NeededMissing)) => Grant::NeededMissing,
            (Grant::Unknown, _) => Grant::Unknown,
            (Grant::Missing, _) | (_, Some(Grant::Missing)) => Grant::Missing,
            (_, Some(Grant::Unknown)) => Grant::Unknown,
            _ => Grant::Granted,
        }
    }
}

/// The Tesla virtual key, as far as we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtualKey {
    Paired,
    Missing,
    /// Model S/X of model year 2020 and earlier: no key needed.
    Exempt,
    NotTesla,
    Unknown,
}

fn grant(granted: Option<bool>, needed: bool) -> Grant {
    match (granted, needed) {
        (None, _) => Grant::Unknown,
        (Some(true), _) => Grant::Granted,
        (Some(false), true) => Grant::NeededMissing,
        (Some(false), false) => Grant::Missing,
    }
}

/// The permissions grid: what the app needs first, then what was granted beyond it.
pub fn permissions(report: Option<&ProbeReport>, needs: &Needs) -> Vec<PermissionRow> {
    let smartcar: Option<&Vec<String>> =
        report
            .and_then(|r| r.get(Probe::Permissions))
            .and_then(|o| match o.answer() {
                Some(Answer::Permissions { permissions }) => Some(permissions),
                _ => None,
            });
    let tesla_location: Option<bool> =
        report
            .and_then(|r| r.get(Probe::TeslaUserAccess))
            .and_then(|o| match o.answer() {
                Some(Answer::TeslaUserAccess(access)) => Some(access.has_vehicle_location()),
                _ => None,
            });
    let is_tesla = report.and_then(ProbeReport::is_tesla).unwrap_or(false);
    let needed = needs.data_to_probe();
    let mut rows: Vec<PermissionRow> = DataKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let is_needed = needed.contains(&kind);
            let granted = smartcar.map(|p| p.iter().any(|g| g == kind.permission()));
            if !is_needed && granted != Some(true) {
                return None;
            }
            let tesla =
                (is_tesla && kind == DataKind::Location).then(|| grant(tesla_location, is_needed));
            Some(PermissionRow {
                kind,
                needed: is_needed,
                smartcar: grant(granted, is_needed),
                tesla,
            })
        })
        .collect();
    rows.sort_by_key(|r| !r.needed);
    rows
}

/// The virtual key's status from the probe, the diagnosis, and the rules' exemptions.
pub fn virtual_key(
    report: Option<&ProbeReport>,
    diagnosis: &Diagnosis,
    policies: &Policies,
) -> VirtualKey {
    let exempt_by_rule = report.and_then(|r| r.attributes.as_ref()).is_some_and(|a| {
        policies
            .rules
            .iter()
            .filter(|rule| rule.symptom.virtual_key_paired.is_some())
            .any(|rule| {
                matches!(
                    rule.coverage(&a.make, &a.model, Some(a.year)),
                    Coverage::Exempt(_)
                )
            })
    });
    if exempt_by_rule
        || diagnosis
            .findings
            .iter()
            .any(|f| f.id == "virtual-key-exempt")
    {
        return VirtualKey::Exempt;
    }
    if report.and_then(ProbeReport::is_tesla) == Some(false) {
        return VirtualKey::NotTesla;
    }
    let paired = report
        .and_then(|r| r.get(Probe::VirtualKey))
        .and_then(|o| match o.answer() {
            Some(Answer::VirtualKey { is_paired }) => Some(*is_paired),
            _ => None,
        });
    match paired {
        Some(true) => VirtualKey::Paired,
        Some(false) => VirtualKey::Missing,
        None if diagnosis
            .findings
            .iter()
            .any(|f| f.id == "virtual-key-missing") =>
        {
            VirtualKey::Missing
        }
        None => VirtualKey::Unknown,
    }
}
