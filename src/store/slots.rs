//! Vehicle id to slot: a hash table of slots that hashes the ids the records already hold,
//! instead of keeping a second copy of every id.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::VehicleRecord;

#[derive(Clone, Default)]
pub(super) struct SlotIndex {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl SlotIndex {
    /// Every record's slot. With a repeated id, the first slot wins.
    pub(super) fn build(records: &[VehicleRecord]) -> SlotIndex {
        let mut index = SlotIndex {
            table: HashTable::with_capacity(records.len()),
            hasher: RandomState::new(),
        };
        for slot in 0..records.len() as u32 {
            index.insert(records, slot);
        }
        index
    }

    pub(super) fn get(&self, records: &[VehicleRecord], id: &str) -> Option<u32> {
        self.table
            .find(self.hasher.hash_one(id), |&s| id_of(records, s) == id)
            .copied()
    }

    /// Adds `slot` (already in `records`) unless its id is indexed.
    pub(super) fn insert(&mut self, records: &[VehicleRecord], slot: u32) {
        let id = id_of(records, slot);
        let hash = self.hasher.hash_one(id);
        if self
            .table
            .find(hash, |&s| id_of(records, s) == id)
            .is_none()
        {
            let hasher = &self.hasher;
            self.table
                .insert_unique(hash, slot, |&s| hasher.hash_one(id_of(records, s)));
        }
    }
}

fn id_of(records: &[VehicleRecord], slot: u32) -> &str {
    records
        .get(slot as usize)
        .map_or("", |r| r.vehicle_id.as_str())
}
