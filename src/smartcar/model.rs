//! The shapes Smartcar answers with: vehicles, connections, permissions, data values and response meta.

use serde::{Deserialize, Deserializer, Serialize};

/// Metadata every Smartcar response carries in its headers, plus what we measured ourselves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// HTTP status of the response (for a batch item: the item's `code`).
    pub status: u16,
    /// `sc-request-id`.
    pub request_id: Option<String>,
    /// `sc-data-age`: when the vehicle recorded the data.
    pub data_age: Option<jiff::Timestamp>,
    /// `sc-fetched-at`: when Smartcar fetched it from the OEM.
    pub fetched_at: Option<jiff::Timestamp>,
    /// `Retry-After`, in seconds.
    pub retry_after_s: Option<u64>,
    /// Wall time of the HTTP exchange as we saw it.
    pub latency_ms: u64,
    /// What a webhook delivery said, not an answer to a request: `status` is then no HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookMeta>,
}

/// The delivery an observation came in, as a person quotes it to Smartcar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookMeta {
    /// `VEHICLE_ERROR`, `VEHICLE_STATE`.
    pub event_type: String,
    /// Smartcar's `eventId`; absent for what was stored before it was kept.
    #[serde(default)]
    pub event_id: Option<String>,
    /// `meta.deliveredAt`, else when the desk received it.
    #[serde(default)]
    pub delivered_at: Option<jiff::Timestamp>,
}

/// A vehicle's make, model and year from `GET /vehicles/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VehicleAttributes {
    pub id: String,
    pub make: String,
    pub model: String,
    /// Docs type it as an integer but examples send a string; both are accepted.
    #[serde(deserialize_with = "year_from_number_or_string")]
    pub year: u16,
}

impl VehicleAttributes {
    /// Smartcar spells makes in upper case (`TESLA`); compare without caring.
    pub fn is_tesla(&self) -> bool {
        self.make.eq_ignore_ascii_case("tesla")
    }
}

fn year_from_number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Year {
        Number(u64),
        Text(String),
    }
    match Year::deserialize(d)? {
        Year::Number(n) => u16::try_from(n).map_err(serde::de::Error::custom),
        Year::Text(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// One row of the Management API's connection list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub user_id: String,
    pub vehicle_id: String,
    #[serde(default)]
    pub connected_at: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
}

/// `GET /vehicles/{id}/tesla/user/access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeslaUserAccess {
    #[serde(default)]
    pub access_type: Option<String>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

impl TeslaUserAccess {
    /// Tesla's `vehicle_location` scope is what Smartcar's `read_location` needs since March 2025.
    pub fn has_vehicle_location(&self) -> bool {
        self.permissions
            .as_deref()
            .is_some_and(|p| p.iter().any(|s| s == "vehicle_location"))
    }
}

/// The data an app can depend on, each read through one v2.0 endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    Location,
    Odometer,
    Battery,
    Charge,
    Fuel,
    TirePressure,
    EngineOil,
    Vin,
}

impl DataKind {
    pub const ALL: [DataKind; 8] = [
        DataKind::Location,
        DataKind::Odometer,
        DataKind::Battery,
        DataKind::Charge,
        DataKind::Fuel,
        DataKind::TirePressure,
        DataKind::EngineOil,
        DataKind::Vin,
    ];

    /// The path under `/vehicles/{id}`, as used in a batch request.
    pub fn path(self) -> &'static str {
        match self {
            DataKind::Location => "/location",
            DataKind::Odometer => "/odometer",
            DataKind::Battery => "/battery",
            DataKind::Charge => "/charge",
            DataKind::Fuel => "/fuel",
            DataKind::TirePressure => "/tires/pressure",
            DataKind::EngineOil => "/engine/oil",
            DataKind::Vin => "/vin",
        }
    }

    /// The Smartcar permission the endpoint needs.
    pub fn permission(self) -> &'static str {
        match self {
            DataKind::Location => "read_location",
            DataKind::Odometer => "read_odometer",
            DataKind::Battery => "read_battery",
            DataKind::Charge => "read_charge",
            DataKind::Fuel => "read_fuel",
            DataKind::TirePressure => "read_tires",
            DataKind::EngineOil => "read_engine_oil",
            DataKind::Vin => "read_vin",
        }
    }

    /// The API v3 signal that carries the same data, when one is documented.
    pub fn signal_code(self) -> Option<&'static str> {
        match self {
            DataKind::Location => Some("location-preciselocation"),
            DataKind::Odometer => Some("odometer-traveleddistance"),
            DataKind::Battery => Some("tractionbattery-stateofcharge"),
            DataKind::Fuel => Some("internalcombustionengine-fuellevel"),
            DataKind::Vin => Some("vehicleidentification-vin"),
            // No single v3 signal answers what these v2.0 endpoints did.
            DataKind::Charge | DataKind::TirePressure | DataKind::EngineOil => None,
        }
    }

    pub fn from_signal_code(code: &str) -> Option<DataKind> {
        DataKind::ALL
            .into_iter()
            .find(|k| k.signal_code() == Some(code))
    }

    pub fn from_path(path: &str) -> Option<DataKind> {
        let path = path.trim_end_matches('/');
        DataKind::ALL.into_iter().find(|k| k.path() == path)
    }

    /// The name used in config files and flags (`location`, `tire_pressure`).
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Location => "location",
            DataKind::Odometer => "odometer",
            DataKind::Battery => "battery",
            DataKind::Charge => "charge",
            DataKind::Fuel => "fuel",
            DataKind::TirePressure => "tire_pressure",
            DataKind::EngineOil => "engine_oil",
            DataKind::Vin => "vin",
        }
    }

    pub fn from_name(name: &str) -> Option<DataKind> {
        DataKind::ALL.into_iter().find(|k| k.name() == name)
    }
}
