//! Row order: the sortable columns, how two records compare, and sorting the whole fleet fast.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::VehicleRecord;

/// A column the fleet table can be sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortColumn {
    Status,
    /// Make, then model, then model year.
    Vehicle,
    Vin,
    User,
    /// The id of the main finding (vehicles without findings first).
    Finding,
    /// When the vehicle was last probed (never probed first).
    Checked,
    VehicleId,
}

impl SortColumn {
    pub const ALL: [SortColumn; 7] = [
        SortColumn::Status,
        SortColumn::Vehicle,
        SortColumn::Vin,
        SortColumn::User,
        SortColumn::Finding,
        SortColumn::Checked,
        SortColumn::VehicleId,
    ];

    /// Column header text.
    pub fn label(self) -> &'static str {
        match self {
            SortColumn::Status => "Status",
            SortColumn::Vehicle => "Vehicle",
            SortColumn::Vin => "VIN",
            SortColumn::User => "User",
            SortColumn::Finding => "Finding",
            SortColumn::Checked => "Checked",
            SortColumn::VehicleId => "Vehicle id",
        }
    }
}

fn cmp_ignore_ascii_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// The column's value order, ascending, ties left `Equal`.
pub(super) fn cmp_key(column: SortColumn, a: &VehicleRecord, b: &VehicleRecord) -> Ordering {
    match column {
        SortColumn::Status => a.verdict.status.cmp(&b.verdict.status),
        SortColumn::Vehicle => match (&a.attributes, &b.attributes) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => cmp_ignore_ascii_case(&x.make, &y.make)
                .then_with(|| cmp_ignore_ascii_case(&x.model, &y.model))
                .then(x.year.cmp(&y.year)),
        },
        SortColumn::Vin => a.vin.cmp(&b.vin),
        SortColumn::User => a.user_id.cmp(&b.user_id),
        SortColumn::Finding => finding_id(a).cmp(&finding_id(b)),
        SortColumn::Checked => a.last_probe_at.cmp(&b.last_probe_at),
        SortColumn::VehicleId => a.vehicle_id.cmp(&b.vehicle_id),
    }
}

fn finding_id(r: &VehicleRecord) -> Option<&str> {
    r.verdict.main_finding().map(|f| &*f.id)
}

/// The total order of rows: the column (reversed when descending), then arrival order, so equal
/// keys keep their relative order whichever the direction (a stable sort).
pub(super) fn cmp_rows(
    records: &[VehicleRecord],
    column: SortColumn,
    descending: bool,
    a: u32,
    b: u32,
) -> Ordering {
    let (ra, rb) = (&records[a as usize], &records[b as usize]);
    let key = cmp_key(column, ra, rb);
    let key = if descending { key.reverse() } else { key };
    key.then(a.cmp(&b))
}

/// Big-endian first 16 bytes: comparing these never contradicts comparing the strings.
fn prefix(s: &str) -> u128 {
    let mut bytes = [0u8; 16];
    let n = s.len().min(16);
    bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
    u128::from_be_bytes(bytes)
}

/// Sorts every slot. Each record gets a small integer key computed once (a rank for make/model
/// and finding, a prefix for ids), so the sort compares integers and only looks at the records
/// again when two prefixes tie.
pub(super) fn sort_all(
    records: &[VehicleRecord],
    models: &ModelIndex,
    column: SortColumn,
    descending: bool,
) -> Vec<u32> {
    // `exact`: the key alone decides, ties are true ties.
    let (keys, exact): (Vec<u128>, bool) = match column {
        SortColumn::Status => (
            records.iter().map(|r| r.verdict.status as u128).collect(),
            true,
        ),
        SortColumn::Checked => (
            records
                .iter()
                .map(|r| match r.last_probe_at {
                    None => 0,
                    // Flipping the sign bit keeps i128 order in u128; jiff's range never maps to 0.
                    Some(t) => (t.as_nanosecond() as u128) ^ (1u128 << 127),
                })
                .collect(),
            true,
        ),
        SortColumn::Vehicle => {
            let ranks = models.ranks();
            let keys = (0..records.len())
                .map(|slot| ranks.get(models.id(slot)).copied().unwrap_or(0))
                .collect();
            (keys, true)
        }
        SortColumn::Finding => {
            // Finding ids are shared between vehicles: read each record's id address once, rank
            // the few distinct ids by text, and key records by rank without comparing text.
            let addresses: Vec<usize> = records
                .iter()
                .map(|r| {
                    r.verdict
                        .main_finding()
                        .map_or(0, |t| t.id.as_ptr() as usize)
                })
                .collect();
            let mut distinct: Vec<(usize, &str)> = Vec::new();
            for (r, &address) in records.iter().zip(&addresses) {
                if address != 0
                    && !distinct.iter().any(|&(a, _)| a == address)
                    && let Some(t) = r.verdict.main_finding()
                {
                    distinct.push((address, &*t.id));
                }
                if distinct.len() > 64 {
                    break;
                }
            }
            let mut ids: Vec<&str> = distinct.iter().map(|&(_, id)| id).collect();
            ids.sort_unstable();
            ids.dedup();
            let rank_of = |id: &str| ids.binary_search(&id).map_or(0, |i| i as u128 + 1);
            let ranks: Vec<(usize, u128)> =
                distinct.iter().map(|&(a, id)| (a, rank_of(id))).collect();
            let keys = if distinct.len() > 64 {
                // More distinct ids than a scan handles well: rank by text.
                records
                    .iter()
                    .map(|r| r.verdict.main_finding().map_or(0, |t| rank_of(&t.id)))
                    .collect()
            } else {
                addresses
                    .iter()
                    .map(|&a| {
                        ranks
                            .iter()
                            .find(|&&(x, _)| x == a)
                            .map_or(0, |&(_, rank)| rank)
                    })
                    .collect()
            };
            (keys, true)
        }
        // `None` maps to 0 like `Some("")`: equal prefixes fall back to the full comparison.
        SortColumn::Vin => (
            records
                .iter()
                .map(|r| r.vin.as_deref().map_or(0, prefix))
                .collect(),
            false,
        ),
        SortColumn::User => (records.iter().map(|r| prefix(&r.user_id)).collect(), false),
        SortColumn::VehicleId => (
            records.iter().map(|r| prefix(&r.vehicle_id)).collect(),
            false,
        ),
    };
    let mut rows: Vec<(u128, u32)> = keys.into_iter().zip(0u32..).collect();
    rows.sort_unstable_by(|&(ka, a), &(kb, b)| {
        let key = ka.cmp(&kb);
        let key = if key == Ordering::Equal && !exact {
            cmp_key(column, &records[a as usize], &records[b as usize])
        } else {
            key
        };
        let key = if descending { key.reverse() } else { key };
        key.then(a.cmp(&b))
    });
    rows.into_iter().map(|(_, slot)| slot).collect()
}

/// Each slot's make/model/year as a small id, so sorting by vehicle reads one integer per row
/// instead of two strings elsewhere on the heap. Id 0 is "no attributes".
#[derive(Debug, Clone, Default)]
pub(super) struct ModelIndex {
    ids: HashMap<String, usize>,
    /// Index `id - 1`: a record carrying that make/model/year.
    kinds: Vec<(String, String, u16)>,
    per_slot: Vec<usize>,
    scratch: String,
}

impl ModelIndex {
    pub(super) fn build(records: &[VehicleRecord]) -> ModelIndex {
        let mut index = ModelIndex::default();
        for (slot, r) in records.iter().enumerate() {
            index.set(slot, r);
        }
        index
    }

    pub(super) fn id(&self, slot: usize) -> usize {
        self.per_slot.get(slot).copied().unwrap_or(0)
    }

    /// Records `r`'s make/model/year for `slot` (a new slot is the next one).
    pub(super) fn set(&mut self, slot: usize, r: &VehicleRecord) {
        let id = match &r.attributes {
            None => 0,
            Some(a) => {
                self.scratch.clear();
                let _ = write!(self.scratch, "{}\u{0}{}\u{0}{}", a.make, a.model, a.year);
                match self.ids.get(self.scratch.as_str()) {
                    Some(&id) => id,
                    None => {
                        self.kinds.push((a.make.clone(), a.model.clone(), a.year));
                        let id = self.kinds.len();
                        self.ids.insert(self.scratch.clone(), id);
                        id
                    }
                }
            }
        };
        if slot < self.per_slot.len() {
            self.per_slot[slot] = id;
        } else {
            self.per_slot.push(id);
        }
    }

    /// Sort rank per id (same order as [`cmp_key`] for `Vehicle`); equal vehicles share a rank.
    fn ranks(&self) -> Vec<u128> {
        let mut by_order: Vec<usize> = (0..self.kinds.len()).collect();
        let cmp = |a: &(String, String, u16), b: &(String, String, u16)| {
            cmp_ignore_ascii_case(&a.0, &b.0)
                .then_with(|| cmp_ignore_ascii_case(&a.1, &b.1))
                .then(a.2.cmp(&b.2))
        };
        by_order.sort_by(|&a, &b| cmp(&self.kinds[a], &self.kinds[b]));
        let mut ranks = vec![0u128; self.kinds.len() + 1];
        let mut rank = 0;
        for (i, &k) in by_order.iter().enumerate() {
            if i == 0 || cmp(&self.kinds[by_order[i - 1]], &self.kinds[k]) != Ordering::Equal {
                rank += 1;
            }
            ranks[k + 1] = rank;
        }
        ranks
    }
}
