//! JSON output: one object per vehicle, written as JSON lines (one object per line) so 100k vehicles stream
//! and every line parses on its own (`jq -c`, `grep`, `split`).

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

use crate::health::{Evidence, Finding, Severity};
use crate::untrusted::text;

use super::VehicleSummary;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VehicleJson<'a> {
    id: Cow<'a, str>,
    user_id: Option<Cow<'a, str>>,
    make: Option<Cow<'a, str>>,
    model: Option<Cow<'a, str>>,
    year: Option<u16>,
    vin: Option<Cow<'a, str>>,
    connected_at: Option<Cow<'a, str>>,
    last_checked: Option<jiff::Timestamp>,
    /// `BLOCKED`, `DEGRADED`, `WARNING`, `HEALTHY`, `UNKNOWN`.
    status: &'static str,
    main_finding: Option<Cow<'a, str>>,
    findings: Vec<FindingJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FindingJson<'a> {
    id: Cow<'a, str>,
    severity: Severity,
    title: Cow<'a, str>,
    rule: Option<Cow<'a, str>>,
    since: Option<Cow<'a, str>>,
    evidence: Vec<EvidenceJson<'a>>,
    remedy: RemedyJson<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EvidenceJson<'a> {
    endpoint: Cow<'a, str>,
    http_status: Option<u16>,
    type_code: Option<Cow<'a, str>>,
    request_id: Option<Cow<'a, str>>,
    at: jiff::Timestamp,
    data_age: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_type: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered_at: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemedyJson<'a> {
    kind: crate::health::RemedyKind,
    action: Cow<'a, str>,
    link: Option<Cow<'a, str>>,
    customer_reply: Cow<'a, str>,
    retry_after_s: Option<u64>,
}

/// Strings from the network are JSON-escaped by serde already; the sanitizer also takes out what JSON
/// escaping lets through (ESC as `\u001b` comes back raw from `jq -r`, bidi and C1 are not escaped).
fn clean(s: &str) -> Cow<'_, str> {
    text::one_line(s)
}

fn clean_opt(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(clean)
}

fn evidence(e: &Evidence) -> EvidenceJson<'_> {
    EvidenceJson {
        endpoint: clean(&e.endpoint),
        http_status: e.http_status,
        type_code: clean_opt(e.type_code.as_deref()),
        request_id: clean_opt(e.request_id.as_deref()),
        at: e.at,
        data_age: e.data_age,
        event_type: clean_opt(e.event_type.as_deref()),
        event_id: clean_opt(e.event_id.as_deref()),
        delivered_at: e.delivered_at,
        value: clean_opt(e.value.as_deref()),
    }
}

fn finding(f: &Finding) -> FindingJson<'_> {
    FindingJson {
        id: clean(&f.id),
        severity: f.severity,
        title: clean(&f.title),
        rule: clean_opt(f.rule.as_deref()),
        since: clean_opt(f.since.as_deref()),
        evidence: f.evidence.iter().map(evidence).collect(),
        remedy: RemedyJson {
            kind: f.remedy.kind,
            action: clean(&f.remedy.action),
            link: clean_opt(f.remedy.link.as_deref()),
            // A reply may hold paragraphs: its line breaks stay (as `\n`).
            customer_reply: text::multi_line(&f.remedy.customer_reply),
            retry_after_s: f.remedy.retry_after_s,
        },
    }
}

fn to_json<'a>(v: &'a VehicleSummary<'a>) -> VehicleJson<'a> {
    VehicleJson {
        id: clean(v.vehicle_id),
        user_id: clean_opt(v.user_id),
        make: clean_opt(v.make),
        model: clean_opt(v.model),
        year: v.year,
        vin: clean_opt(v.vin),
        connected_at: clean_opt(v.connected_at),
        last_checked: v.last_checked,
        status: v.diagnosis.status.label(),
        main_finding: v.main_finding().map(|f| clean(&f.id)),
        findings: v.diagnosis.findings.iter().map(finding).collect(),
    }
}

/// One vehicle as a JSON value (for `vtriage vehicle ID --json`).
pub fn vehicle_json(v: &VehicleSummary<'_>) -> serde_json::Value {
    serde_json::to_value(to_json(v)).unwrap_or(serde_json::Value::Null)
}

/// One compact JSON object per line, in the order given.
pub fn write_json_lines<'a, W: Write>(
    out: &mut W,
    vehicles: impl IntoIterator<Item = &'a VehicleSummary<'a>>,
) -> io::Result<()> {
    for v in vehicles {
        serde_json::to_writer(&mut *out, &to_json(v)).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
