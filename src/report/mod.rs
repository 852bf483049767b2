//! Renders diagnoses as text, JSON, CSV and Markdown for headless use (`check`, `vehicle`, `deadlines`); no terminal.
//!
//! Nothing here sees a credential: the inputs are diagnoses and vehicle facts, so no output can carry a token.

pub mod csv;
pub mod deadlines;
pub mod json;
pub mod markdown;
pub mod outreach;
pub mod table;

use std::borrow::Cow;

use crate::health::{Diagnosis, Finding};
use crate::smartcar::ProbeReport;

pub use csv::write_csv;
pub use deadlines::{deadlines_json, deadlines_table};
pub use json::{vehicle_json, write_json_lines};
pub use markdown::markdown;
pub use table::{TABLE_WIDTH, write_table};

/// One vehicle as the reports show it. Borrowed but for a stored vehicle's diagnosis, which is
/// unpacked from the store for the time of the report.
#[derive(Debug, Clone)]
pub struct VehicleSummary<'a> {
    pub vehicle_id: &'a str,
    pub user_id: Option<&'a str>,
    pub make: Option<&'a str>,
    pub model: Option<&'a str>,
    pub year: Option<u16>,
    pub vin: Option<&'a str>,
    /// As the Management API sent it.
    pub connected_at: Option<&'a str>,
    pub diagnosis: Cow<'a, Diagnosis>,
    /// When the vehicle was last probed (usually `diagnosis.checked_at`).
    pub last_checked: Option<jiff::Timestamp>,
}

impl<'a> From<&'a crate::store::VehicleRecord> for VehicleSummary<'a> {
    /// A vehicle as the store knows it (listed, maybe probed).
    fn from(r: &'a crate::store::VehicleRecord) -> Self {
        let a = r.attributes.as_ref();
        VehicleSummary {
            vehicle_id: &r.vehicle_id,
            user_id: Some(r.user_id.as_str()),
            make: a.map(|a| a.make.as_str()),
            model: a.map(|a| a.model.as_str()),
            year: a.map(|a| a.year),
            vin: r.vin.as_deref(),
            connected_at: r.connected_at.as_deref(),
            diagnosis: Cow::Owned(r.diagnosis()),
            last_checked: r.last_probe_at,
        }
    }
}

impl<'a> VehicleSummary<'a> {
    /// The summary of a probed vehicle and its diagnosis.
    pub fn from_report(
        report: &'a ProbeReport,
        diagnosis: &'a Diagnosis,
        connected_at: Option<&'a str>,
    ) -> Self {
        let a = report.attributes.as_ref();
        VehicleSummary {
            vehicle_id: &report.vehicle_id,
            user_id: report.user_id.as_deref(),
            make: a.map(|a| a.make.as_str()),
            model: a.map(|a| a.model.as_str()),
            year: a.map(|a| a.year),
            vin: report.vin.as_deref(),
            connected_at,
            diagnosis: Cow::Borrowed(diagnosis),
            last_checked: diagnosis.checked_at,
        }
    }

    /// `TESLA Model 3 2021`, or what is known of it.
    pub fn vehicle_label(&self) -> String {
        let mut parts: Vec<String> = Vec::with_capacity(3);
        parts.extend(self.make.map(str::to_string));
        parts.extend(self.model.map(str::to_string));
        parts.extend(self.year.map(|y| y.to_string()));
        if parts.is_empty() {
            "unknown vehicle".into()
        } else {
            parts.join(" ")
        }
    }

    pub fn main_finding(&self) -> Option<&Finding> {
        self.diagnosis.main_finding()
    }

    /// The main finding's fix link, if any.
    pub fn fix_link(&self) -> Option<&str> {
        self.main_finding().and_then(|f| f.remedy.link.as_deref())
    }
}

/// `2026-11-27 19:00 UTC`: how every report prints an instant.
pub fn format_instant(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// A time from outside (a connection's `connectedAt`) in [`format_instant`]'s format, or as sent
/// (on one line) when it does not parse.
pub fn format_sent_instant(at: &str) -> String {
    at.trim().parse::<jiff::Timestamp>().map_or_else(
        |_| crate::untrusted::text::one_line(at).into_owned(),
        format_instant,
    )
}

/// Whose date a finding's `since` is: the rule's, the car's newest data, or when vtriage first
/// saw it fail. `Rule in force since`, `Newest data from`, `First seen failing`.
pub fn since_label(f: &Finding) -> &'static str {
    if f.rule.is_some() {
        "Rule in force since"
    } else if f.id == crate::health::FindingId::StaleData.as_str() {
        "Newest data from"
    } else {
        "First seen failing"
    }
}

/// One piece of evidence on one line, as the dashboard and the text report show it: what was
/// asked (or which webhook event said it), the HTTP status only when a request was answered, the
/// value that is the evidence, the error, the ids to quote to Smartcar, and the times.
/// `GET /v2.0/vehicles/v1/odometer → 409 VEHICLE_STATE:ASLEEP · request r-1 · 2026-11-27 18:58 UTC`;
/// `webhook VEHICLE_ERROR CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED · event e-1 · delivered 2026-11-27 18:58 UTC`.
pub fn evidence_line(e: &crate::health::Evidence) -> String {
    use crate::untrusted::text::one_line;
    let mut text = one_line(&e.endpoint).into_owned();
    match (e.http_status, e.value.as_deref()) {
        (Some(s), Some(v)) => text.push_str(&format!(" → {s} {}", one_line(v))),
        (Some(s), None) => text.push_str(&format!(" → {s}")),
        (None, Some(v)) => text.push_str(&format!(" → {}", one_line(v))),
        (None, None) => {}
    }
    if let Some(tc) = &e.type_code {
        text.push_str(&format!(" {}", one_line(tc)));
    }
    if let Some(id) = &e.request_id {
        text.push_str(&format!(" · request {}", one_line(id)));
    }
    if let Some(id) = &e.event_id {
        text.push_str(&format!(" · event {}", one_line(id)));
    }
    if let Some(t) = e.delivered_at {
        text.push_str(&format!(" · delivered {}", format_instant(t)));
    }
    // A delivery's own time is the one its data or error is dated by; said once when it is the
    // delivery time.
    if e.delivered_at
        .is_none_or(|t| format_instant(t) != format_instant(e.at))
    {
        let label = if e.event_type.is_some() { "as of " } else { "" };
        text.push_str(&format!(" · {label}{}", format_instant(e.at)));
    }
    text
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::{fleet, now};
    use super::*;

    #[test]
    fn a_sent_time_is_shown_in_the_one_format_or_as_sent() {
        assert_eq!(
            format_sent_instant("2025-01-01T00:00:00Z"),
            "2025-01-01 00:00 UTC"
        );
        assert_eq!(format_sent_instant("yester\nday"), "yester day");
    }
    use crate::health::Policies;

    fn summaries(fleet: &[(ProbeReport, Diagnosis)]) -> Vec<VehicleSummary<'_>> {
        fleet
            .iter()
            .map(|(r, d)| VehicleSummary::from_report(r, d, Some("2024-06-01T10:00:00.000Z")))
            .collect()
    }

    #[test]
    fn markdown_for_tesla_without_virtual_key() {
        let f = fleet();
        let s = summaries(&f);
        insta::assert_snapshot!(markdown(&s[0], &Policies::builtin(), now()));
    }

    #[test]
    fn a_customer_reply_pasted_as_plain_text_keeps_its_link_whole_even_around_backticks() {
        let f = fleet();
        let mut s = summaries(&f);
        let md = markdown(&s[0], &Policies::builtin(), now());
        assert!(
            md.contains("https://www.tesla.com/_ak/smartcar.com\n```"),
            "{md}"
        );
        assert!(!md.contains("\\_ak"), "{md}");
        let mut d = (*s[0].diagnosis).clone();
        d.findings[0].remedy.customer_reply = "Open ```this``` please".into();
        s[0].diagnosis = std::borrow::Cow::Owned(d);
        let md = markdown(&s[0], &Policies::builtin(), now());
        assert!(
            md.contains("````text\nOpen ```this``` please\n````"),
            "{md}"
        );
    }

    #[test]
    fn markdown_for_tesla_missing_location_permission() {
        let f = fleet();
        let s = summaries(&f);
        insta::assert_snapshot!(markdown(&s[1], &Policies::builtin(), now()));
    }

    #[test]
    fn markdown_for_healthy_vehicle_says_nothing_is_wrong() {
        let f = fleet();
        let s = summaries(&f);
        let md = markdown(&s[2], &Policies::builtin(), now());
        assert!(md.contains("— HEALTHY"), "{md}");
        assert!(md.contains("Nothing: every probe answered as expected."));
    }

    #[test]
    fn deadlines_table_at_fixed_now() {
        insta::assert_snapshot!(deadlines_table(&Policies::builtin(), now()));
    }

    #[test]
    fn deadlines_table_before_the_virtual_key_date() {
        let at: jiff::Timestamp = "2025-01-01T00:00:00Z".parse().expect("ts");
        insta::assert_snapshot!(deadlines_table(&Policies::builtin(), at));
    }

    #[test]
    fn deadlines_json_has_phase_and_countdown() {
        let v = deadlines_json(&Policies::builtin(), now());
        let first = &v[0];
        assert_eq!(first["rule"], "tesla-virtual-key");
        assert_eq!(first["phase"], "in_force");
        assert_eq!(first["countdown"], "in force 675d");
        assert_eq!(first["inForceAt"], "2025-01-21T00:00:00Z");
        assert_eq!(v[1]["inForce"], "March 2025");
    }

    #[test]
    fn fleet_table_fits_120_columns_up_to_the_fix_link() {
        let f = fleet();
        let s = summaries(&f);
        let mut out = Vec::new();
        write_table(&mut out, &s).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        insta::assert_snapshot!(text);
        for line in text.lines() {
            let before_link = line.rsplit_once(' ').map_or(line, |(a, _)| a);
            assert!(before_link.chars().count() <= TABLE_WIDTH, "{line}");
        }
        let vk_line = text
            .lines()
            .find(|l| l.contains("virtual-key-missing"))
            .expect("vk line");
        assert!(vk_line.chars().count() <= TABLE_WIDTH, "{vk_line}");
    }

    #[test]
    fn json_lines_parse_one_vehicle_per_line() {
        let f = fleet();
        let s = summaries(&f);
        let mut out = Vec::new();
        write_json_lines(&mut out, &s).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["status"], "BLOCKED");
        assert_eq!(lines[0]["userId"], "user-ann");
        assert_eq!(
            lines[0]["findings"][0]["remedy"]["link"],
            "https://www.tesla.com/_ak/smartcar.com"
        );
        assert_eq!(
            lines[0]["findings"][0]["evidence"][0]["requestId"],
            "rq-loc-1"
        );
        assert_eq!(lines[3]["status"], "UNKNOWN");
        assert_eq!(lines[3]["mainFinding"], "no-access-token");
    }

    #[test]
    fn csv_quotes_commas_and_quotes() {
        let f = fleet();
        let s = summaries(&f);
        let mut out = Vec::new();
        write_csv(&mut out, &s).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let rows: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(rows.len(), 5);
        assert!(rows[0].starts_with("status,vehicle_id,user_id,make,model,year,vin"));
        assert!(
            rows[2].contains(",\"user-bob, \"\"the\"\" driver\",TESLA,"),
            "{}",
            rows[2]
        );
        assert!(rows[1].contains(",rq-loc-1 rq-odo-1 rq-vk"), "{}", rows[1]);
    }

    #[test]
    fn csv_lists_a_batch_request_id_once() {
        let mut f = fleet();
        let Some(evidence) = f
            .first_mut()
            .and_then(|(_, d)| d.findings.first_mut())
            .map(|finding| &mut finding.evidence)
        else {
            panic!("the fixture has a finding")
        };
        for e in evidence.iter_mut().take(2) {
            e.request_id = Some("rq-batch".into());
        }
        let s = summaries(&f);
        let mut out = Vec::new();
        write_csv(&mut out, &s).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let row = text.split("\r\n").nth(1).unwrap_or_default();
        assert_eq!(row.matches("rq-batch").count(), 1, "{row}");
    }
}
