//! The lower-case text the free-text filter searches (VIN, vehicle id, user id, make, model) for
//! every row, kept in one buffer so a filter pass reads memory in order.

use super::VehicleRecord;
use super::filter::char_mask;

/// Per-slot spans into one string. A changed row's text is appended and the old span left as
/// garbage, reclaimed when garbage outgrows the live text.
#[derive(Debug, Clone, Default)]
pub(super) struct SearchText {
    text: String,
    spans: Vec<(u32, u32)>,
    /// Per slot, [`char_mask`] of its text.
    masks: Vec<u64>,
    garbage: usize,
    scratch: String,
}

/// Between fields of a row's search text: a free-text term matches inside one field, never across two.
pub(super) const FIELD_SEPARATOR: char = '\u{1f}';

fn write_text(out: &mut String, r: &VehicleRecord) {
    out.clear();
    for part in [
        r.vin.as_deref(),
        Some(r.vehicle_id.as_str()),
        Some(r.user_id.as_str()),
        r.attributes.as_ref().map(|a| a.make.as_str()),
        r.attributes.as_ref().map(|a| a.model.as_str()),
    ]
    .into_iter()
    .flatten()
    .chain(r.other_users.iter().map(String::as_str))
    {
        if !out.is_empty() {
            out.push(FIELD_SEPARATOR);
        }
        if part.is_ascii() {
            out.extend(part.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            out.extend(part.chars().flat_map(char::to_lowercase));
        }
    }
}

impl SearchText {
    pub(super) fn build(records: &[VehicleRecord]) -> SearchText {
        let mut s = SearchText {
            text: String::with_capacity(records.len() * 100),
            ..SearchText::default()
        };
        for r in records {
            s.push(r);
        }
        s
    }

    pub(super) fn mask(&self, slot: u32) -> u64 {
        self.masks.get(slot as usize).copied().unwrap_or(u64::MAX)
    }

    pub(super) fn get(&self, slot: u32) -> &str {
        let Some(&(start, len)) = self.spans.get(slot as usize) else {
            return "";
        };
        self.text
            .get(start as usize..(start + len) as usize)
            .unwrap_or("")
    }

    pub(super) fn push(&mut self, r: &VehicleRecord) {
        let mut scratch = std::mem::take(&mut self.scratch);
        write_text(&mut scratch, r);
        let span = self.append(&scratch);
        self.spans.push(span);
        self.masks.push(char_mask(&scratch));
        self.scratch = scratch;
    }

    /// Refreshes a row's text after its record changed.
    pub(super) fn update(&mut self, slot: u32, r: &VehicleRecord) {
        let mut scratch = std::mem::take(&mut self.scratch);
        write_text(&mut scratch, r);
        if self.get(slot) != scratch {
            let span = self.append(&scratch);
            if let Some(old) = self.spans.get_mut(slot as usize) {
                self.garbage += old.1 as usize;
                *old = span;
            }
            if let Some(mask) = self.masks.get_mut(slot as usize) {
                *mask = char_mask(&scratch);
            }
        }
        self.scratch = scratch;
        // Garbage stays under a fifth of the live text: copying the text is cheap, resident memory is not.
        if self.garbage > 1 << 16 && self.garbage * 5 > self.text.len() - self.garbage {
            self.compact();
        }
    }

    fn append(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(s);
        (start as u32, s.len() as u32)
    }

    fn compact(&mut self) {
        let mut text = String::with_capacity(self.text.len() - self.garbage);
        for span in &mut self.spans {
            let start = text.len() as u32;
            text.push_str(
                self.text
                    .get(span.0 as usize..(span.0 + span.1) as usize)
                    .unwrap_or(""),
            );
            *span = (start, span.1);
        }
        self.text = text;
        self.garbage = 0;
    }
}
