//! JSON output: one object per vehicle, written as JSON lines (one object per line) so 100k vehicles stream
//! and every line parses on its own (`jq -c`, `grep`, `split`).

use std::io::{self, Write};

use serde::Serialize;

use crate::health::{Evidence, Finding, Severity};

use super::VehicleSummary;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VehicleJson<'a> {
    id: &'a str,
    user_id: Option<&'a str>,
    make: Option<&'a str>,
    model: Option<&'a str>,
    year: Option<u16>,
    vin: Option<&'a str>,
    connected_at: Option<&'a str>,
    last_checked: Option<jiff::Timestamp>,
    /// `BLOCKED`, `DEGRADED`, `WARNING`, `HEALTHY`, `UNKNOWN`.
    status: &'static str,
    main_finding: Option<&'a str>,
    findings: Vec<FindingJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FindingJson<'a> {
    id: &'a str,
    severity: Severity,
    title: &'a str,
    rule: Option<&'a str>,
    since: Option<&'a str>,
    evidence: Vec<EvidenceJson<'a>>,
    remedy: RemedyJson<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EvidenceJson<'a> {
    endpoint: &'a str,
    http_status: Option<u16>,
    type_code: Option<&'a str>,
    request_id: Option<&'a str>,
    at: jiff::Timestamp,
    data_age: Option<jiff::Timestamp>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemedyJson<'a> {
    kind: crate::health::RemedyKind,
    action: &'a str,
    link: Option<&'a str>,
    customer_reply: &'a str,
    retry_after_s: Option<u64>,
}

fn evidence(e: &Evidence) -> EvidenceJson<'_> {
    EvidenceJson {
        endpoint: &e.endpoint,
        http_status: e.http_status,
        type_code: e.type_code.as_deref(),
        request_id: e.request_id.as_deref(),
        at: e.at,
        data_age: e.data_age,
    }
}

fn finding(f: &Finding) -> FindingJson<'_> {
    FindingJson {
        id: &f.id,
        severity: f.severity,
        title: &f.title,
        rule: f.rule.as_deref(),
        since: f.since.as_deref(),
        evidence: f.evidence.iter().map(evidence).collect(),
        remedy: RemedyJson {
            kind: f.remedy.kind,
            action: &f.remedy.action,
            link: f.remedy.link.as_deref(),
            customer_reply: &f.remedy.customer_reply,
            retry_after_s: f.remedy.retry_after_s,
        },
    }
}

fn to_json<'a>(v: &'a VehicleSummary<'a>) -> VehicleJson<'a> {
    VehicleJson {
        id: v.vehicle_id,
        user_id: v.user_id,
        make: v.make,
        model: v.model,
        year: v.year,
        vin: v.vin,
        connected_at: v.connected_at,
        last_checked: v.last_checked,
        status: v.diagnosis.status.label(),
        main_finding: v.main_finding().map(|f| f.id.as_str()),
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
