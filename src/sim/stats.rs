//! Request counters of a running simulator, kept in atomics so counting never serialises requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Which family of endpoint a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    Management,
    Vehicles,
    User,
    Attributes,
    Permissions,
    Data,
    Batch,
    Tesla,
    NotFound,
}

impl EndpointKind {
    const ALL: [EndpointKind; 9] = [
        EndpointKind::Management,
        EndpointKind::Vehicles,
        EndpointKind::User,
        EndpointKind::Attributes,
        EndpointKind::Permissions,
        EndpointKind::Data,
        EndpointKind::Batch,
        EndpointKind::Tesla,
        EndpointKind::NotFound,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EndpointKind::Management => "management",
            EndpointKind::Vehicles => "vehicles",
            EndpointKind::User => "user",
            EndpointKind::Attributes => "attributes",
            EndpointKind::Permissions => "permissions",
            EndpointKind::Data => "data",
            EndpointKind::Batch => "batch",
            EndpointKind::Tesla => "tesla",
            EndpointKind::NotFound => "not_found",
        }
    }
}

/// A fault injected on purpose (`--fault-rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 500 `SERVER:INTERNAL`.
    ServerInternal,
    /// 502 `UPSTREAM:UNKNOWN_ISSUE`.
    UpstreamUnknown,
    /// 502 with an HTML page, as a proxy in front of the API sends.
    HtmlBadGateway,
    /// 200 whose JSON body is cut short.
    TruncatedJson,
    /// The right answer, several seconds late.
    Slow,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::ServerInternal,
        FaultKind::UpstreamUnknown,
        FaultKind::HtmlBadGateway,
        FaultKind::TruncatedJson,
        FaultKind::Slow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ServerInternal => "server_internal",
            FaultKind::UpstreamUnknown => "upstream_unknown",
            FaultKind::HtmlBadGateway => "html_bad_gateway",
            FaultKind::TruncatedJson => "truncated_json",
            FaultKind::Slow => "slow",
        }
    }

    /// Picks a kind from a uniform draw in `[0, 1)`.
    pub fn from_unit(u: f64) -> FaultKind {
        let i = (u * FaultKind::ALL.len() as f64) as usize;
        FaultKind::ALL.get(i).copied().unwrap_or(FaultKind::Slow)
    }
}

/// Live counters. Per-vehicle counts live with each vehicle's runtime state.
#[derive(Debug, Default)]
pub struct Counters {
    total: AtomicU64,
    by_endpoint: [AtomicU64; EndpointKind::ALL.len()],
    rate_limited_app: AtomicU64,
    rate_limited_vehicle: AtomicU64,
    faults: [AtomicU64; FaultKind::ALL.len()],
}

impl Counters {
    pub fn request(&self, kind: EndpointKind) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.by_endpoint[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited_app(&self) {
        self.rate_limited_app.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited_vehicle(&self) {
        self.rate_limited_vehicle.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fault(&self, kind: FaultKind) {
        self.faults[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        for c in self.by_endpoint.iter().chain(self.faults.iter()) {
            c.store(0, Ordering::Relaxed);
        }
        self.rate_limited_app.store(0, Ordering::Relaxed);
        self.rate_limited_vehicle.store(0, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> SimStats {
        let by_endpoint = EndpointKind::ALL
            .into_iter()
            .map(|k| {
                (
                    k.name().to_string(),
                    self.by_endpoint[k as usize].load(Ordering::Relaxed),
                )
            })
            .collect();
        let faults: BTreeMap<String, u64> = FaultKind::ALL
            .into_iter()
            .map(|k| {
                (
                    k.name().to_string(),
                    self.faults[k as usize].load(Ordering::Relaxed),
                )
            })
            .collect();
        SimStats {
            requests_total: self.total.load(Ordering::Relaxed),
            by_endpoint,
            rate_limited_app: self.rate_limited_app.load(Ordering::Relaxed),
            rate_limited_vehicle: self.rate_limited_vehicle.load(Ordering::Relaxed),
            faults_total: faults.values().sum(),
            faults,
        }
    }
}

/// What `GET /_sim/stats` answers: Smartcar-path requests since start or the last reset
/// (`/_sim/*` itself is not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimStats {
    pub requests_total: u64,
    /// Keyed by endpoint family: management, vehicles, user, attributes, permissions, data, batch, tesla, not_found.
    pub by_endpoint: BTreeMap<String, u64>,
    /// 429 `RATE_LIMIT:SMARTCAR_API` answers (app-wide bucket).
    pub rate_limited_app: u64,
    /// 429 `RATE_LIMIT:VEHICLE` answers, from the hourly limit or the `rate-limited` situation
    /// (batch items included).
    pub rate_limited_vehicle: u64,
    pub faults_total: u64,
    /// Keyed by fault kind: server_internal, upstream_unknown, html_bad_gateway, truncated_json, slow.
    pub faults: BTreeMap<String, u64>,
}
