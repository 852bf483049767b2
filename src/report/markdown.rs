//! One vehicle as Markdown, ready to paste into a ticket: what is wrong, since when, under which rule,
//! the evidence with request ids, the fix link and the reply for the customer.

use std::fmt::Write;

use crate::health::{Countdown, Finding, Policies};
use crate::untrusted::text;

use super::{VehicleSummary, format_instant};

/// The ticket text for one vehicle at `now` (the rule's countdown is computed for it).
pub fn markdown(v: &VehicleSummary<'_>, policies: &Policies, now: jiff::Timestamp) -> String {
    let mut md = String::with_capacity(2048);
    let d = &*v.diagnosis;
    // `write!` into a String cannot fail.
    let _ = writeln!(
        md,
        "## {} — {} — {}",
        cell(&v.vehicle_label()),
        cell(v.vehicle_id),
        d.status.label()
    );
    md.push('\n');
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| Vehicle id | `{}` |", code(v.vehicle_id));
    let _ = writeln!(
        md,
        "| VIN | {} |",
        v.vin.map_or("-".to_string(), |s| format!("`{}`", code(s)))
    );
    let _ = writeln!(
        md,
        "| User | {} |",
        v.user_id
            .map_or("-".to_string(), |s| format!("`{}`", code(s)))
    );
    let _ = writeln!(
        md,
        "| Connected | {} |",
        v.connected_at.map_or("-".to_string(), |at| {
            // One time format everywhere; a time that does not parse is shown as sent.
            at.trim()
                .parse::<jiff::Timestamp>()
                .map_or_else(|_| cell(at), format_instant)
        })
    );
    let _ = writeln!(
        md,
        "| Last checked | {} |",
        v.last_checked.map_or("never".to_string(), format_instant)
    );
    md.push('\n');

    let Some(main) = d.main_finding() else {
        md.push_str("### What is wrong\n\nNothing: every probe answered as expected.\n");
        return md;
    };
    let _ = writeln!(
        md,
        "### What is wrong\n\n**{}** {}\n",
        main.severity.label(),
        inline(&main.title)
    );
    if let Some(since) = &main.since {
        let label = super::since_label(main);
        let _ = writeln!(md, "- {label}: {}", inline(since));
    }
    match main.rule.as_deref() {
        Some(id) => match policies.get(id) {
            Some(rule) => {
                let c = Countdown::of(rule, now);
                let _ = write!(
                    md,
                    "- Rule: `{}` — {}, {}",
                    code(id),
                    inline(&rule.name),
                    c.sentence()
                );
                if let Some(docs) = &rule.docs {
                    let _ = write!(md, " ([docs]({docs}))");
                }
                md.push('\n');
            }
            None => {
                let _ = writeln!(md, "- Rule: `{}`", code(id));
            }
        },
        None => md.push_str("- Rule: none (not an OEM rule)\n"),
    }
    let _ = writeln!(md, "- Finding: `{}`\n", code(&main.id));

    evidence_table(&mut md, main);

    md.push_str("### Fix\n\n");
    let _ = writeln!(md, "{}\n", inline(&main.remedy.action));
    if let Some(link) = &main.remedy.link {
        // An autolink cannot hold `<`, `>` or spaces; the link policy already refused those, this keeps it so.
        let _ = writeln!(
            md,
            "<{}>\n",
            text::one_line(link).replace(['<', '>', ' '], "")
        );
    }
    if let Some(s) = main.remedy.retry_after_s {
        let _ = writeln!(md, "Retry after: {s} s\n");
    }
    // Plain text for the customer, not Markdown: fenced so that neither a renderer nor a paste
    // changes a character of it (a link keeps its underscores).
    md.push_str("### Reply to the customer (plain text)\n\n");
    let reply = text::multi_line(&main.remedy.customer_reply);
    let fence = "`".repeat(longest_backtick_run(&reply).max(2) + 1);
    let _ = writeln!(md, "{fence}text\n{}\n{fence}", reply.trim_end());

    let others: Vec<&Finding> = d.findings.iter().skip(1).collect();
    if !others.is_empty() {
        md.push_str("\n### Other findings\n\n");
        for f in others {
            let _ = writeln!(
                md,
                "- **{}** `{}`: {}",
                f.severity.label(),
                code(&f.id),
                inline(&f.title)
            );
        }
    }
    md
}

/// The longest run of backticks in `s`, so a fence around it can be longer.
fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

fn evidence_table(md: &mut String, f: &Finding) {
    if f.evidence.is_empty() {
        return;
    }
    md.push_str("### Evidence\n\n| endpoint | HTTP | error | request id | at | data age |\n|---|---|---|---|---|---|\n");
    for e in &f.evidence {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} |",
            code(&e.endpoint),
            e.http_status.map_or("-".to_string(), |s| s.to_string()),
            match (e.value.as_deref(), e.type_code.as_deref()) {
                (_, Some(t)) => format!("`{}`", code(t)),
                (Some(v), None) => format!("value `{}`", code(v)),
                (None, None) => "-".to_string(),
            },
            match (e.request_id.as_deref(), e.event_id.as_deref()) {
                (Some(r), _) => format!("`{}`", code(r)),
                (None, Some(id)) => format!(
                    "event `{}`{}",
                    code(id),
                    e.delivered_at
                        .map(|t| format!(", delivered {}", format_instant(t)))
                        .unwrap_or_default()
                ),
                (None, None) => "-".to_string(),
            },
            format_instant(e.at),
            e.data_age.map_or("-".to_string(), format_instant),
        );
    }
    md.push('\n');
}

/// Text in a table cell or a heading: one line, every Markdown-making character escaped.
fn cell(s: &str) -> String {
    text::markdown(s).into_owned()
}

/// Text inside backticks, where backslash escapes do not work: one line, no backticks; pipes escaped
/// for tables (GitHub reads `\|` inside a code span in a table as a pipe).
fn code(s: &str) -> String {
    text::one_line(s).replace('`', " ").replace('|', "\\|")
}

/// Running text: as in a cell (it may sit in a table when pasted).
fn inline(s: &str) -> String {
    cell(s)
}
