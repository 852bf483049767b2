//! The rules and their countdowns at `now`, for `vtriage deadlines`: a text table and JSON.

use serde::Serialize;

use crate::health::{Countdown, Phase, Policies};

/// Rule, make, announced, in force, countdown, phase; one line per rule, in file order.
pub fn deadlines_table(policies: &Policies, now: jiff::Timestamp) -> String {
    let rows: Vec<[String; 6]> = policies
        .rules
        .iter()
        .map(|r| {
            let c = Countdown::of(r, now);
            [
                r.id.clone(),
                r.make.clone(),
                r.announced.label(),
                c.in_force_label.clone(),
                c.compact(),
                c.phase.label().into(),
            ]
        })
        .collect();
    let header = [
        "RULE",
        "MAKE",
        "ANNOUNCED",
        "IN FORCE",
        "COUNTDOWN",
        "PHASE",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            l.push_str(cell);
            if i + 1 < cells.len() {
                l.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeadlineJson<'a> {
    rule: &'a str,
    name: &'a str,
    make: &'a str,
    announced: String,
    in_force: String,
    /// `2025-01-21T00:00:00Z`: the first instant the rule applies.
    in_force_at: jiff::Timestamp,
    countdown: String,
    phase: Phase,
    /// Positive before the date, zero or negative from it.
    seconds_to_in_force: i64,
    docs: Option<&'a str>,
}

/// A JSON array, one object per rule.
pub fn deadlines_json(policies: &Policies, now: jiff::Timestamp) -> serde_json::Value {
    let list: Vec<DeadlineJson<'_>> = policies
        .rules
        .iter()
        .map(|r| {
            let c = Countdown::of(r, now);
            DeadlineJson {
                rule: &r.id,
                name: &r.name,
                make: &r.make,
                announced: r.announced.label(),
                in_force: c.in_force_label.clone(),
                in_force_at: r.in_force.start(),
                countdown: c.compact(),
                phase: c.phase,
                seconds_to_in_force: c.seconds_to_in_force,
                docs: r.docs.as_deref(),
            }
        })
        .collect();
    serde_json::to_value(list).unwrap_or(serde_json::Value::Null)
}
