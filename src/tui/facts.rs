//! What the views say about one vehicle's permissions and virtual key, read from the glance at its probe report and its verdict. Pure.

use crate::health::{Needs, Policies};
use crate::smartcar::{DataKind, VehicleAttributes};
use crate::store::{Glance, Verdict};

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

pub use crate::health::VirtualKey;

fn grant(granted: Option<bool>, needed: bool) -> Grant {
    match (granted, needed) {
        (None, _) => Grant::Unknown,
        (Some(true), _) => Grant::Granted,
        (Some(false), true) => Grant::NeededMissing,
        (Some(false), false) => Grant::Missing,
    }
}

/// The permissions grid: what the app needs first, then what was granted beyond it.
pub fn permissions(glance: &Glance, is_tesla: bool, needs: &Needs) -> Vec<PermissionRow> {
    let needed = needs.data_to_probe();
    let mut rows: Vec<PermissionRow> = DataKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let is_needed = needed.contains(&kind);
            let granted = glance.grants(kind);
            if !is_needed && granted != Some(true) {
                return None;
            }
            let tesla = (is_tesla && kind == DataKind::Location)
                .then(|| grant(glance.tesla_location, is_needed));
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

/// The virtual key's status from the probe, the diagnosis, and the rules' exemptions (health owns
/// the reading; the view only shows it).
pub fn virtual_key(
    attributes: Option<&VehicleAttributes>,
    glance: &Glance,
    verdict: &Verdict,
    policies: &Policies,
) -> VirtualKey {
    crate::health::virtual_key::virtual_key(
        attributes,
        glance.virtual_key_paired,
        |kind| verdict.has_finding(kind),
        policies,
    )
}
