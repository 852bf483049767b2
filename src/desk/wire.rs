//! What travels between `serve` and the agents' clients under `/api/v1/`: the JSON documents of the
//! fleet, the rules, a probe's answer and the live stream's events, and the Server-Sent Events
//! framing the client reads (pure; no I/O).

use serde::{Deserialize, Serialize};

use crate::fetch::Progress;
use crate::health::{Diagnosis, Needs};
use crate::smartcar::ProbeReport;

/// The API's version, in every path (`/api/v1/...`).
pub const API_PREFIX: &str = "/api/v1";

/// One vehicle as the desk knows it: the verdict for lists, the desk's diagnosis in full, and the
/// report it was read from. The desk is the one diagnoser: a client shows this diagnosis as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleItem {
    pub vehicle_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub make: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub year: Option<u16>,
    /// HEALTHY, UNKNOWN, WARNING, DEGRADED or BLOCKED.
    pub status: String,
    /// The finding that explains the status.
    #[serde(default)]
    pub finding: Option<String>,
    /// Every finding's id, worst first (the dashboard's badges).
    #[serde(default)]
    pub badges: Vec<String>,
    /// When the diagnosis was made; `None` while nothing is known.
    #[serde(default)]
    pub checked_at: Option<jiff::Timestamp>,
    /// When the status or finding last moved.
    #[serde(default)]
    pub changed_at: Option<jiff::Timestamp>,
    /// When the owner connected the car, as the listing gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<String>,
    /// The VIN, once a probe or a lookup has read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vin: Option<String>,
    /// What webhooks and probes told; `None` while nothing is known.
    #[serde(default)]
    pub report: Option<ProbeReport>,
    /// The desk's diagnosis of `report` (findings, evidence, remedies); `None` while nothing is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    /// What moved the verdict last, as the desk's status history says: `webhook <event id>`,
    /// `probe <result id>`, `time`, `rules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// `GET /api/v1/fleet?after=ID&limit=N`: vehicles in id order; `next` is the `after` of the next
/// page, `None` on the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPage {
    pub vehicles: Vec<VehicleItem>,
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /api/v1/rules`: the desk's OEM rules (policies file text), what its app needs, and the
/// countdowns as `vtriage deadlines --json` prints them. Clients show them (`deadlines`, the
/// dashboard's countdowns); they never diagnose with them: verdicts come made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesDoc {
    pub policies: String,
    pub needs: Needs,
    pub deadlines: serde_json::Value,
}

/// The answer to `POST /api/v1/vehicles/{id}/probe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeAnswer {
    pub request_id: i64,
    /// The probe landed before the answer (else it lands later, on the live stream).
    pub served: bool,
    #[serde(default)]
    pub vehicle: Option<VehicleItem>,
}

/// The answer to `POST /api/v1/vins/{vin}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VinAnswer {
    /// The VIN, upper case.
    pub vin: String,
    /// The lookup ended (else it goes on: ask again).
    pub done: bool,
    /// The vehicle with this VIN, when found.
    #[serde(default)]
    pub vehicle_id: Option<String>,
    /// VINs read to find it (0 when the desk knew it already).
    #[serde(default)]
    pub requests: u64,
    /// When it found nothing: why the car may still have been missed (cars whose VIN could not be
    /// read, a stop at Smartcar's 429), in one line. Absent when every candidate was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gaps: Option<String>,
}

/// The desk's prober as the stream reports it: its scheduler's figures, and which agents wait for
/// a probe now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeskProgress {
    pub progress: Progress,
    #[serde(default)]
    pub agents_probing: Vec<String>,
}

/// One event of `GET /api/v1/stream`.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A vehicle's facts or verdict changed (`event: vehicle`).
    Vehicle(Box<VehicleItem>),
    /// The desk's prober started on a vehicle (`event: probing`).
    Probing { vehicle_id: String },
    /// The desk's budget and who is waiting for probes (`event: progress`).
    Progress(DeskProgress),
    /// This agent's token was revoked; the stream ends (`event: revoked`).
    Revoked,
    /// The stream fell behind and changes were lost: read the fleet again (`event: resync`).
    Resync,
}

#[derive(Serialize, Deserialize)]
struct ProbingData {
    vehicle_id: String,
}

impl StreamEvent {
    /// The `event:` name and `data:` JSON of this event.
    pub fn encode(&self) -> (&'static str, String) {
        let json = |v: serde_json::Result<String>| v.unwrap_or_else(|_| "{}".into());
        match self {
            StreamEvent::Vehicle(v) => ("vehicle", json(serde_json::to_string(v))),
            StreamEvent::Probing { vehicle_id } => (
                "probing",
                json(serde_json::to_string(&ProbingData {
                    vehicle_id: vehicle_id.clone(),
                })),
            ),
            StreamEvent::Progress(p) => ("progress", json(serde_json::to_string(p))),
            StreamEvent::Revoked => ("revoked", "{}".into()),
            StreamEvent::Resync => ("resync", "{}".into()),
        }
    }

    /// Reads one event; `None` for an unknown name or data that does not parse (skipped, so a newer
    /// server can add events).
    pub fn decode(name: &str, data: &str) -> Option<StreamEvent> {
        match name {
            "vehicle" => serde_json::from_str(data)
                .ok()
                .map(|v| StreamEvent::Vehicle(Box::new(v))),
            "probing" => {
                serde_json::from_str::<ProbingData>(data)
                    .ok()
                    .map(|p| StreamEvent::Probing {
                        vehicle_id: p.vehicle_id,
                    })
            }
            "progress" => serde_json::from_str(data).ok().map(StreamEvent::Progress),
            "revoked" => Some(StreamEvent::Revoked),
            "resync" => Some(StreamEvent::Resync),
            _ => None,
        }
    }
}

/// The longest line of a stream the client keeps; a longer one is dropped whole, so a hostile
/// server cannot grow the client's memory without bound.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// Reads Server-Sent Events from chunks as they arrive: `event:` and `data:` lines, an event at
/// each blank line, comments (`:`) and other fields ignored.
#[derive(Debug, Default)]
pub struct SseReader {
    line: Vec<u8>,
    overlong: bool,
    name: String,
    data: String,
}

impl SseReader {
    /// Feeds one chunk; returns the `(event name, data)` pairs it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for &byte in chunk {
            if byte != b'\n' {
                if self.line.len() < MAX_LINE {
                    self.line.push(byte);
                } else {
                    self.overlong = true;
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if std::mem::take(&mut self.overlong) {
                continue;
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if !self.data.is_empty() || !self.name.is_empty() {
                    let name = std::mem::take(&mut self.name);
                    let data = std::mem::take(&mut self.data);
                    out.push((
                        if name.is_empty() {
                            "message".into()
                        } else {
                            name
                        },
                        data,
                    ));
                }
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.name = value.to_string(),
                "data" => {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    if self.data.len() + value.len() <= MAX_LINE {
                        self.data.push_str(value);
                    }
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole_and_comments_are_skipped() {
        let mut r = SseReader::default();
        assert!(r.push(b": keep-alive\n\nevent: prob").is_empty());
        let got = r.push(b"ing\ndata: {\"vehicle_id\":\"v1\"}\r\n\r\nevent: resync\ndata: {}\n\n");
        assert_eq!(
            got,
            vec![
                ("probing".to_string(), "{\"vehicle_id\":\"v1\"}".to_string()),
                ("resync".to_string(), "{}".to_string())
            ]
        );
        assert_eq!(
            StreamEvent::decode(&got[0].0, &got[0].1),
            Some(StreamEvent::Probing {
                vehicle_id: "v1".into()
            })
        );
    }

    #[test]
    fn an_overlong_line_is_dropped_without_growing_memory_past_the_cap() {
        let mut r = SseReader::default();
        let huge = vec![b'x'; MAX_LINE + 10];
        assert!(r.push(b"data: ").is_empty());
        assert!(r.push(&huge).is_empty());
        assert!(r.line.len() <= MAX_LINE);
        let got = r.push(b"\nevent: revoked\ndata: {}\n\n");
        assert_eq!(got, vec![("revoked".to_string(), "{}".to_string())]);
    }

    #[test]
    fn every_event_reads_back_as_itself_and_unknown_or_broken_ones_are_skipped() {
        let events = [
            StreamEvent::Probing {
                vehicle_id: "v".into(),
            },
            StreamEvent::Progress(DeskProgress {
                progress: Progress {
                    budget_left: Some(3.0),
                    ..Progress::default()
                },
                agents_probing: vec!["alice".into()],
            }),
            StreamEvent::Revoked,
            StreamEvent::Resync,
        ];
        for e in events {
            let (name, data) = e.encode();
            assert_eq!(StreamEvent::decode(name, &data), Some(e));
        }
        assert_eq!(StreamEvent::decode("future", "{}"), None);
        assert_eq!(StreamEvent::decode("vehicle", "[1,2"), None);
    }
}
