//! Outreach rows: one per customer and car a rule blocks, with the car's own fix link and the message
//! for the app's mail or push tool, as CSV or JSON lines. Pure: the selection and the writers.

use std::io::{self, Write};

use serde::Serialize;

use crate::health::{Finding, RemedyKind, Status};
use crate::untrusted::text;

use super::VehicleSummary;

/// What the customer can do with a link: add the key, or go through Connect again.
fn customer_can_act(f: &Finding) -> bool {
    matches!(
        f.remedy.kind,
        RemedyKind::AddVirtualKey | RemedyKind::Reauthenticate
    )
}

/// Which cars an outreach run is for.
#[derive(Debug, Clone, Default)]
pub struct Select {
    /// Rule ids or finding ids; empty: every finding the customer can fix with a link.
    pub rules: Vec<String>,
    /// Statuses; empty: any.
    pub statuses: Vec<Status>,
}

impl Select {
    /// The finding a car's outreach is about: its worst one the customer can act on that the
    /// selection names.
    pub fn finding<'a>(&self, v: &'a VehicleSummary<'_>) -> Option<&'a Finding> {
        if !self.statuses.is_empty() && !self.statuses.contains(&v.diagnosis.status) {
            return None;
        }
        v.diagnosis.findings.iter().find(|f| {
            customer_can_act(f)
                && (self.rules.is_empty()
                    || self
                        .rules
                        .iter()
                        .any(|r| f.rule.as_deref() == Some(r.as_str()) || f.id == *r))
        })
    }
}

/// One customer and car to reach.
#[derive(Debug, Clone, Serialize)]
pub struct OutreachRow {
    pub user_id: String,
    pub vehicle_id: String,
    pub vin: String,
    pub make: String,
    pub model: String,
    pub year: Option<u16>,
    pub status: &'static str,
    /// The rule's id, or the finding's when no rule made it.
    pub rule: String,
    pub finding: String,
    /// When it started: the rule's date, or when the car was first seen failing.
    pub since: String,
    /// `add_virtual_key` or `reauthenticate`.
    pub fix: &'static str,
    pub link: String,
    pub message: String,
}

/// The cars an outreach is for, split into those ready (with their link) and those whose fix has
/// no link yet (a re-authentication link needs the Connect client id).
#[derive(Debug, Default)]
pub struct Outreach {
    pub ready: Vec<OutreachRow>,
    /// `(vehicle id, finding id)` of the cars left out for want of a link.
    pub without_link: Vec<(String, String)>,
}

/// Selects the cars `select` names among `vehicles`, one row per car.
pub fn outreach<'a>(
    vehicles: impl IntoIterator<Item = &'a VehicleSummary<'a>>,
    select: &Select,
) -> Outreach {
    let mut out = Outreach::default();
    for v in vehicles {
        let Some(f) = select.finding(v) else {
            continue;
        };
        let Some(link) = f.remedy.link.as_deref() else {
            out.without_link
                .push((v.vehicle_id.to_string(), f.id.clone()));
            continue;
        };
        out.ready.push(OutreachRow {
            user_id: v.user_id.unwrap_or_default().to_string(),
            vehicle_id: v.vehicle_id.to_string(),
            vin: v.vin.unwrap_or_default().to_string(),
            make: v.make.unwrap_or_default().to_string(),
            model: v.model.unwrap_or_default().to_string(),
            year: v.year,
            status: v.diagnosis.status.label(),
            rule: f.rule.clone().unwrap_or_else(|| f.id.clone()),
            finding: f.id.clone(),
            since: f.since.clone().unwrap_or_default(),
            fix: f.remedy.kind.name(),
            link: link.to_string(),
            message: f.remedy.customer_reply.clone(),
        });
    }
    out
}

const HEADER: [&str; 13] = [
    "user_id",
    "vehicle_id",
    "vin",
    "make",
    "model",
    "year",
    "status",
    "rule",
    "finding",
    "since",
    "fix",
    "link",
    "message",
];

/// CSV with a header: every cell cleaned and neutralised against formula injection.
pub fn write_csv<W: Write + ?Sized>(out: &mut W, rows: &[OutreachRow]) -> io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    writer.write_record(HEADER)?;
    for r in rows {
        let year = r.year.map(|y| y.to_string()).unwrap_or_default();
        let record = [
            r.user_id.as_str(),
            &r.vehicle_id,
            &r.vin,
            &r.make,
            &r.model,
            &year,
            r.status,
            &r.rule,
            &r.finding,
            &r.since,
            r.fix,
            &r.link,
            &r.message,
        ];
        writer.write_record(record.map(text::csv_cell).iter().map(|c| c.as_bytes()))?;
    }
    writer.flush()
}

/// One JSON object per row and line, with controls and bidirectional overrides escaped.
pub fn write_json_lines<W: Write + ?Sized>(out: &mut W, rows: &[OutreachRow]) -> io::Result<()> {
    for r in rows {
        let line = serde_json::to_string(r).map_err(io::Error::other)?;
        writeln!(out, "{}", text::json_escaped(&line))?;
    }
    Ok(())
}

/// A line per row for the terminal: user, vehicle, rule, link.
pub fn write_table<W: Write + ?Sized>(out: &mut W, rows: &[OutreachRow]) -> io::Result<()> {
    writeln!(out, "{:<20} {:<22} {:<28} LINK", "USER", "VEHICLE", "RULE")?;
    for r in rows {
        writeln!(
            out,
            "{:<20} {:<22} {:<28} {}",
            cut(&r.user_id, 20),
            cut(&r.vehicle_id, 22),
            cut(&r.rule, 28),
            text::one_line(&r.link)
        )?;
    }
    Ok(())
}

fn cut(s: &str, width: usize) -> String {
    let s = text::one_line(s);
    if s.chars().count() <= width {
        s.into_owned()
    } else {
        let mut c: String = s.chars().take(width.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}
