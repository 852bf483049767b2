//! The scheduler's interface: commands it accepts and events it emits.

use serde::{Deserialize, Serialize};

use crate::smartcar::vin::DecodedVin;
use crate::smartcar::{Connection, ProbeReport, VehicleAttributes};

/// Who is waiting for a probe. Ordered: `Sweep < Visible < Focus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// The background sweep of the whole fleet.
    Sweep,
    /// Rows on screen.
    Visible,
    /// The vehicle the agent opened.
    Focus,
}

/// A connection as listed, and whether we hold an access token for its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub connection: Connection,
    /// An access token is configured for at least one of the vehicle's users.
    pub has_token: bool,
    /// Further users who connected the same vehicle (a listing may name one vehicle once per
    /// user); `connection.user_id` is the first. One vehicle is one record with all its owners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_users: Vec<String>,
    /// Make, model and year when the listing tells them (API v3's connections do), so the list
    /// shows and filters them before any probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<VehicleAttributes>,
}

impl ConnectionInfo {
    /// Every user of the vehicle, the first listed first.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.connection.user_id.as_str())
            .chain(self.other_users.iter().map(String::as_str))
    }
}

/// Folds listing rows that name the same vehicle into one connection carrying every owner, in
/// listing order. A repeated row of the same user adds nothing.
pub fn merge_owners(rows: Vec<ConnectionInfo>) -> Vec<ConnectionInfo> {
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut merged: Vec<ConnectionInfo> = Vec::with_capacity(rows.len());
    for row in rows {
        match at.get(&row.connection.vehicle_id) {
            Some(&i) => {
                let first = &mut merged[i];
                first.has_token |= row.has_token;
                if first.attributes.is_none() {
                    first.attributes = row.attributes.clone();
                }
                for user in row.users() {
                    if !first.users().any(|u| u == user) {
                        first.other_users.push(user.to_string());
                    }
                }
            }
            None => {
                at.insert(row.connection.vehicle_id.clone(), merged.len());
                merged.push(row);
            }
        }
    }
    merged
}

/// Which connections a listing asks for: every one, or those of one vehicle or of one user. A
/// narrowed listing is one request (API v3 `filter[vehicleId]`/`filter[userId]`, the Management
/// API's `vehicle_id`/`user_id`) where the whole fleet is one per page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingFilter {
    pub vehicle_id: Option<String>,
    pub user_id: Option<String>,
}

impl ListingFilter {
    /// Every connection.
    pub fn all() -> ListingFilter {
        ListingFilter::default()
    }

    /// The connections of one vehicle (each of its users).
    pub fn vehicle(id: impl Into<String>) -> ListingFilter {
        ListingFilter {
            vehicle_id: Some(id.into()),
            user_id: None,
        }
    }

    /// The connections of one user (each of their vehicles).
    pub fn user(id: impl Into<String>) -> ListingFilter {
        ListingFilter {
            vehicle_id: None,
            user_id: Some(id.into()),
        }
    }

    pub fn is_all(&self) -> bool {
        self.vehicle_id.is_none() && self.user_id.is_none()
    }

    /// Whether a listed connection is one the filter asks for.
    pub fn admits(&self, vehicle_id: &str, user_id: &str) -> bool {
        self.vehicle_id.as_deref().is_none_or(|v| v == vehicle_id)
            && self.user_id.as_deref().is_none_or(|u| u == user_id)
    }
}

/// What the UI or the CLI asks the scheduler to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Probe these vehicles. `force` skips the freshness window.
    Probe {
        vehicle_ids: Vec<String>,
        priority: Priority,
        force: bool,
    },
    /// Re-list connections from the source.
    RefreshConnections,
    /// List only the connections the filter names: the answer is [`Event::ConnectionsFound`], and
    /// the connections listed before stay known.
    ListConnectionsOf(ListingFilter),
    /// Report what a sweep of every connection would cost, without starting it.
    EstimateSweep,
    /// Report what probing these vehicles would cost (as a [`Event::SweepCost`]), without starting it.
    Estimate {
        vehicle_ids: Vec<String>,
    },
    /// Probe every connection at Sweep priority.
    StartSweep {
        force: bool,
    },
    CancelSweep,
    /// Attributes known from elsewhere (a snapshot): they are never fetched again, and a known make
    /// lets a probe ask everything in one round trip.
    KnownAttributes(Vec<VehicleAttributes>),
    /// VINs known from elsewhere, as `(vehicle_id, vin)`: the manufacturer code tells a Tesla.
    KnownVins(Vec<(String, String)>),
    /// Find the vehicle with this VIN among those whose VIN is not known yet, reading only the
    /// VINs of the vehicles whose make and year fit, nearest first, at Focus priority, and
    /// stopping at the match. Sends [`Event::VinLookupPlanned`] (the most it costs) before any
    /// request, [`Event::VinsLearned`] as VINs come back and [`Event::VinLookupDone`] at the end.
    /// A new lookup replaces one under way.
    FindVin {
        vin: DecodedVin,
    },
    /// Stops the VIN lookup under way: reads not sent are dropped, the VINs read are kept, and
    /// [`Event::VinLookupDone`] says it was cancelled.
    CancelVinLookup,
    Shutdown,
}

/// Counters for the progress bar.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    /// Vehicles being probed now (each may wait for the request gate, which enforces the concurrency cap).
    pub in_flight: usize,
    /// Probes whose report still holds a transient fault (server error, timeout, unreadable
    /// answer) after every try. A vehicle's own answer (asleep, rate-limited, no key) is not one.
    pub errors: usize,
    /// HTTP requests sent since the scheduler started, every try counted.
    pub requests_sent: u64,
    /// Over the last ten seconds.
    pub requests_per_s: f64,
    /// Tokens left in the client-side rate bucket (`None` when the limit is off). One token of the
    /// burst is held back for requests on the wire, so a full bucket shows `burst - 1`.
    pub budget_left: Option<f64>,
    /// Refill of the bucket, per minute.
    pub budget_refill_per_min: Option<f64>,
}

/// A part of Smartcar every probe depends on, beyond the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceName {
    /// The API the probes read vehicles through (v2.0 `api.smartcar.com`, v3 `vehicle.api`).
    VehicleApi,
    /// API v3's token endpoint, which issues the application token every request carries.
    TokenEndpoint,
}

impl SourceName {
    pub const ALL: [SourceName; 2] = [SourceName::VehicleApi, SourceName::TokenEndpoint];

    /// For a person: `Vehicle API`, `token endpoint`.
    pub fn label(self) -> &'static str {
        match self {
            SourceName::VehicleApi => "Vehicle API",
            SourceName::TokenEndpoint => "token endpoint",
        }
    }

    /// For metrics and JSON: `vehicle_api`, `token_endpoint`.
    pub fn slug(self) -> &'static str {
        match self {
            SourceName::VehicleApi => "vehicle_api",
            SourceName::TokenEndpoint => "token_endpoint",
        }
    }
}

/// A source found unreachable (or refusing the app itself): app-wide, not any car's problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceOutage {
    pub source: SourceName,
    /// `scheme://host[:port]` of the source.
    pub origin: String,
    /// The kind of failure in a few words: `connection refused`, `HTTP 503 HTML page`, `invalid_client`.
    pub kind: String,
    /// One line for a person, naming the source, its origin and the kind of failure.
    pub message: String,
    /// When one probe is tried again.
    pub retry_at: jiff::Timestamp,
}

impl SourceOutage {
    /// What is down, for a header: `Vehicle API unreachable (connection refused)`.
    pub fn what(&self) -> String {
        if self.kind == super::outage::INVALID_CLIENT {
            return match self.source {
                SourceName::TokenEndpoint => {
                    "Token endpoint refused the client credentials".to_string()
                }
                SourceName::VehicleApi => "Vehicle API refused the client credentials".to_string(),
            };
        }
        match self.source {
            SourceName::VehicleApi => format!("Vehicle API unreachable ({})", self.kind),
            SourceName::TokenEndpoint => format!("Token endpoint unreachable ({})", self.kind),
        }
    }

    /// `retrying in 30 s`, or `retrying` once the time has come.
    pub fn retry_words(&self, now: jiff::Timestamp) -> String {
        let left = self.retry_at.duration_since(now).as_secs();
        if left > 0 {
            format!(
                "retrying in {}",
                crate::health::remedy::human_seconds(left.unsigned_abs())
            )
        } else {
            "retrying".to_string()
        }
    }

    /// The header's words: `Vehicle API unreachable (connection refused) · retrying in 30 s`.
    pub fn headline(&self, now: jiff::Timestamp) -> String {
        format!("{} · {}", self.what(), self.retry_words(now))
    }
}

/// What the scheduler tells the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The fleet as the source lists it (Management API, tokens file or one token).
    ConnectionsListed {
        connections: Vec<ConnectionInfo>,
    },
    /// The connections a narrowed listing found (possibly none); the rest of the fleet is as
    /// it was.
    ConnectionsFound {
        filter: ListingFilter,
        connections: Vec<ConnectionInfo>,
    },
    ProbeStarted {
        vehicle_id: String,
        priority: Priority,
    },
    /// A probe finished (possibly with errors inside the report).
    Observed {
        report: ProbeReport,
    },
    /// A verdict made elsewhere (a desk), with the report it was read from: shown as given and
    /// never diagnosed again here, so every screen says what its source says.
    Diagnosed {
        report: ProbeReport,
        diagnosis: Box<crate::health::Diagnosis>,
        /// What moved the verdict, as its source names it (`webhook …`, `probe …`, `time`,
        /// `rules`), when it says.
        cause: Option<String>,
    },
    Progress(Progress),
    /// The budget is exhausted or the server said 429; nothing is sent before `until`.
    RateLimited {
        until: jiff::Timestamp,
        /// Smartcar answered 429 for the app; otherwise the wait is our own pacing (the local
        /// bucket is empty) and Smartcar refused nothing.
        by_smartcar: bool,
    },
    /// What a full sweep would cost.
    SweepCost {
        requests: u64,
        eta_s: u64,
    },
    /// The source as a whole failed (bad AMT, origin unreachable). One line for a person.
    SourceError {
        message: String,
    },
    /// A source every probe needs is down (or refuses the app's credentials): queued probes wait
    /// until one tried at `retry_at` gets through. Sent again after each failed retry.
    SourceUnreachable(SourceOutage),
    /// A request sent after the outage was declared was answered: probing goes on.
    SourceRecovered {
        source: SourceName,
    },
    /// VINs read from vehicles, as `(vehicle_id, vin)`.
    VinsLearned {
        vins: Vec<(String, String)>,
    },
    /// A VIN lookup is about to start: it reads at most `requests` VINs (one request each).
    VinLookupPlanned {
        vin: String,
        requests: u64,
        /// The make the VIN's manufacturer code names, when known.
        make: Option<String>,
        /// Whole requests left in the app's budget before the lookup, when it is limited.
        budget_left: Option<u64>,
        /// Seconds the budget needs to let `requests` through (0 when it has them now).
        eta_s: u64,
    },
    /// A VIN lookup read one more candidate: `read` of at most `of`.
    VinLookupProgress {
        vin: String,
        read: u64,
        of: u64,
    },
    /// A VIN lookup ended: the vehicle found, or none after `requests` requests, of which
    /// `unreadable` did not give a VIN.
    VinLookupDone {
        vin: String,
        vehicle_id: Option<String>,
        requests: u64,
        unreadable: u64,
        /// What was left unknown: the candidates whose VIN could not be read, the lookup cut
        /// short by Smartcar's 429, and the VINs read that are one character from the one asked.
        gaps: VinLookupGaps,
    },
}

/// Why a VIN lookup that found nothing may still have missed the vehicle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VinLookupGaps {
    /// Candidates whose VIN could not be read, and why: the vehicle may be one of them.
    pub unread: Vec<UnreadCandidate>,
    /// Smartcar answered 429 for the app as a whole: the lookup stopped, and may go on then.
    pub stopped_until: Option<jiff::Timestamp>,
    /// Candidates not read because the lookup stopped.
    pub not_tried: u64,
    /// VINs already read one character away from the one asked, as `(vehicle_id, vin)`.
    pub near: Vec<(String, String)>,
    /// The agent cancelled the lookup.
    pub cancelled: bool,
    /// Why the outcome is not known at all (a desk whose lookup was refused or did not end, or
    /// one that says it could not read every candidate), in one line.
    pub unknown: Option<String>,
}

impl VinLookupGaps {
    /// Whether "no vehicle has this VIN" is true of every candidate.
    pub fn is_empty(&self) -> bool {
        self.unread.is_empty()
            && self.stopped_until.is_none()
            && self.not_tried == 0
            && !self.cancelled
            && self.unknown.is_none()
    }

    /// How a lookup that found nothing ended, in one line: "no vehicle" only when every
    /// candidate was read.
    pub fn summary(&self, vin: &str, requests: u64, connections: usize) -> String {
        let plural = |n: u64, one: &str, many: &str| {
            if n == 1 {
                format!("{n} {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let sent = plural(requests, "request", "requests");
        if let Some(why) = &self.unknown {
            return format!("VIN {vin}: {why}");
        }
        let mut line = if self.cancelled {
            format!(
                "VIN {vin}: lookup cancelled after {sent}; {} not read (the VINs read are kept)",
                plural(self.not_tried, "candidate", "candidates")
            )
        } else if let Some(until) = self.stopped_until {
            format!(
                "VIN {vin}: stopped after {sent}: Smartcar rate-limited the app (429); {} not read, look it up again after {}",
                plural(self.not_tried, "candidate", "candidates"),
                until.strftime("%H:%M:%S UTC")
            )
        } else if self.unread.is_empty() {
            format!("VIN {vin}: no vehicle among {connections} connections has it ({sent})")
        } else {
            format!(
                "VIN {vin}: not among the VINs read ({sent}), but {} could not be read: the car may be one of them",
                plural(self.unread.len() as u64, "candidate", "candidates")
            )
        };
        if !self.unread.is_empty() && self.stopped_until.is_some() {
            line.push_str(&format!(
                "; {} could not be read",
                plural(self.unread.len() as u64, "other", "others")
            ));
        }
        if !self.near.is_empty() {
            let near: Vec<String> = self
                .near
                .iter()
                .take(3)
                .map(|(id, v)| format!("{v} ({id})"))
                .collect();
            line.push_str(&format!("; did you mean {}?", near.join(" or ")));
        }
        crate::untrusted::text::one_line(&line).into_owned()
    }
}

impl UnreadCandidate {
    /// `ID  make model year  user U  why`, for a person choosing the car to open.
    pub fn line(&self) -> String {
        let car = match &self.attributes {
            Some(a) => {
                let year = if a.year == 0 {
                    String::new()
                } else {
                    format!(" {}", a.year)
                };
                format!("{} {}{year}", a.make.trim(), a.model.trim())
            }
            None => "make not known".to_string(),
        };
        let user = self
            .user_id
            .as_deref()
            .map_or_else(String::new, |u| format!("  user {u}"));
        crate::untrusted::text::one_line(&format!(
            "{}  {}{user}  {}",
            self.vehicle_id,
            car.trim(),
            self.why
        ))
        .into_owned()
    }
}

/// A candidate of a VIN lookup whose VIN could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadCandidate {
    pub vehicle_id: String,
    /// Make, model and year as far as known.
    pub attributes: Option<VehicleAttributes>,
    pub user_id: Option<String>,
    /// Why, for a person: "token expired or refused (401)", "monthly request quota spent".
    pub why: String,
}
