//! CSV output (RFC 4180): a header, then one row per vehicle with its main finding and fix.

use std::io::{self, Write};

use crate::untrusted::text;

use super::{VehicleSummary, format_instant};

const HEADER: [&str; 16] = [
    "status",
    "vehicle_id",
    "user_id",
    "make",
    "model",
    "year",
    "vin",
    "connected_at",
    "last_checked",
    "main_finding",
    "title",
    "rule",
    "since",
    "remedy",
    "link",
    "request_ids",
];

/// Writes the header and one row per vehicle. Every cell is cleaned and neutralised against formula
/// injection ([`text::csv_cell`]); the `csv` crate quotes fields holding `,`, `"`, CR or LF.
pub fn write_csv<'a, W: Write>(
    out: &mut W,
    vehicles: impl IntoIterator<Item = &'a VehicleSummary<'a>>,
) -> io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    writer.write_record(HEADER)?;
    for v in vehicles {
        let f = v.main_finding();
        let year = v.year.map(|y| y.to_string()).unwrap_or_default();
        let checked = v.last_checked.map(format_instant).unwrap_or_default();
        let kind = f.map_or("", |f| f.remedy.kind.name());
        // One batch answers several probes under one request id: list it once.
        let mut ids: Vec<&str> = Vec::new();
        for id in f
            .into_iter()
            .flat_map(|f| f.evidence.iter().filter_map(|e| e.request_id.as_deref()))
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let ids = ids.join(" ");
        let record = [
            v.diagnosis.status.label(),
            v.vehicle_id,
            v.user_id.unwrap_or_default(),
            v.make.unwrap_or_default(),
            v.model.unwrap_or_default(),
            &year,
            v.vin.unwrap_or_default(),
            v.connected_at.unwrap_or_default(),
            &checked,
            f.map_or("", |f| &f.id),
            f.map_or("", |f| &f.title),
            f.and_then(|f| f.rule.as_deref()).unwrap_or_default(),
            f.and_then(|f| f.since.as_deref()).unwrap_or_default(),
            kind,
            v.fix_link().unwrap_or_default(),
            &ids,
        ];
        writer.write_record(record.map(text::csv_cell).iter().map(|c| c.as_bytes()))?;
    }
    writer.flush()?;
    Ok(())
}
