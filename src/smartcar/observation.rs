//! What one probe of one endpoint observed: the answer or the error, with its meta and time.

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::model::{DataKind, Meta, TeslaUserAccess, VehicleAttributes};

/// Which question a request asked the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "probe", content = "kind")]
pub enum Probe {
    Attributes,
    Permissions,
    Data(DataKind),
    VirtualKey,
    TeslaUserAccess,
    TeslaAttributes,
    /// API v3: the whole signals list of a vehicle, when the request itself failed (each signal's
    /// own answer maps to the probe that asks the same question).
    Signals,
    /// Whether the vehicle is online and awake (v3 `connectivitystatus-isonline`/`-isasleep`).
    Connectivity,
}

impl Probe {
    /// Path under `/vehicles/{id}`.
    pub fn path(self) -> &'static str {
        match self {
            Probe::Attributes => "/",
            Probe::Permissions => "/permissions",
            Probe::Data(kind) => kind.path(),
            Probe::VirtualKey => "/tesla/virtual_key",
            Probe::TeslaUserAccess => "/tesla/user/access",
            Probe::TeslaAttributes => "/tesla/attributes",
            Probe::Signals => "/signals",
            Probe::Connectivity => "/connectivity",
        }
    }

    /// The request as a person would quote it: `GET /v2.0/vehicles/{id}/odometer`; a data kind
    /// read through a batch is `POST /v2.0/vehicles/{id}/batch /odometer`.
    pub fn endpoint(self, vehicle_id: &str, batched: bool) -> String {
        match self {
            Probe::Data(kind) if batched => {
                format!("POST /v2.0/vehicles/{vehicle_id}/batch {}", kind.path())
            }
            Probe::Attributes => format!("GET /v2.0/vehicles/{vehicle_id}"),
            Probe::Signals | Probe::Connectivity => {
                format!("GET /v3/vehicles/{vehicle_id}/signals")
            }
            other => format!("GET /v2.0/vehicles/{vehicle_id}{}", other.path()),
        }
    }
}

/// A successful answer, reduced to what diagnosis and the views use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "answer")]
pub enum Answer {
    Attributes(VehicleAttributes),
    Permissions {
        permissions: Vec<String>,
    },
    /// A data endpoint's body as sent (odometer, location, ...).
    Data {
        body: serde_json::Value,
    },
    VirtualKey {
        is_paired: bool,
    },
    TeslaUserAccess(TeslaUserAccess),
    TeslaAttributes {
        at_home: Option<bool>,
    },
    /// The vehicle's own word on its connection; `None` where it did not say.
    Connectivity {
        online: Option<bool>,
        asleep: Option<bool>,
    },
}

/// One request's outcome, the unit of evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub probe: Probe,
    /// As a person would quote it: `GET /v2.0/vehicles/{id}/odometer` or `POST /v2.0/vehicles/{id}/batch /odometer`.
    pub endpoint: String,
    /// When the answer arrived.
    pub at: jiff::Timestamp,
    pub meta: Meta,
    pub outcome: Result<Answer, ApiError>,
}

impl Observation {
    pub fn error(&self) -> Option<&ApiError> {
        self.outcome.as_ref().err()
    }

    pub fn answer(&self) -> Option<&Answer> {
        self.outcome.as_ref().ok()
    }

    /// The access token the request carried was refused (401, or an `AUTHENTICATION` error): in
    /// v2.0 a fact about that user's token; in v3, where the app's token was proven good, about the
    /// vehicle's connection. A v3 401 left unsettled is neither.
    pub fn is_token_rejected(&self) -> bool {
        self.error().is_some_and(|e| {
            (e.status() == Some(401) && !matches!(e, ApiError::TokenUnsettled { .. }))
                || e.smartcar()
                    .is_some_and(|s| s.error_type == super::ErrorType::Authentication)
        })
    }
}

/// Everything known from probing one vehicle: the input to diagnosis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub vehicle_id: String,
    pub user_id: Option<String>,
    /// False when no access token is configured for the vehicle's user: nothing can be probed.
    pub has_token: bool,
    /// Known attributes (from this probe or an earlier one: they are fetched once per vehicle).
    pub attributes: Option<VehicleAttributes>,
    pub vin: Option<String>,
    /// The latest observation per probe.
    pub observations: Vec<Observation>,
}

impl ProbeReport {
    pub fn get(&self, probe: Probe) -> Option<&Observation> {
        self.observations.iter().find(|o| o.probe == probe)
    }

    pub fn is_tesla(&self) -> Option<bool> {
        self.attributes.as_ref().map(VehicleAttributes::is_tesla)
    }
}
