//! The Smartcar API as this program sees it: client, response and error types, Connect URLs.

pub mod client;
pub mod connect;
pub mod error;
pub mod model;
pub mod observation;
pub mod origin;
pub mod retry_after;
pub mod secret;
pub mod v3;
pub mod vin;

pub use client::{
    Client, ClientBuildError, ClientSettings, ConnectionsPage, CursorTrail, ListingError,
};
pub use error::{
    ApiError, BodyProblem, ErrorCode, ErrorType, PagingError, Resolution, SmartcarError,
    TransportKind, quote_untrusted,
};
pub use model::{Connection, DataKind, Meta, TeslaUserAccess, VehicleAttributes, WebhookMeta};
pub use observation::{Answer, Observation, Probe, ProbeReport};
pub use origin::{OriginError, check_origin};
pub use retry_after::{MAX_RETRY_AFTER, capped_wait, deadline_after, parse_retry_after};
pub use secret::Secret;

/// Where the three Smartcar services live. Defaults are the real hosts; the official SDKs'
/// environment variables override them, and flags override those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins {
    pub api: String,
    pub management: String,
    pub connect: String,
}

impl Origins {
    pub const DEFAULT_API: &'static str = "https://api.smartcar.com";
    pub const DEFAULT_MANAGEMENT: &'static str = "https://management.smartcar.com";
    pub const DEFAULT_CONNECT: &'static str = "https://connect.smartcar.com";

    /// Defaults overlaid with `SMARTCAR_API_ORIGIN`, `SMARTCAR_MANAGEMENT_API_ORIGIN`, `SMARTCAR_CONNECT_ORIGIN`.
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        Origins {
            api: var("SMARTCAR_API_ORIGIN", Self::DEFAULT_API),
            management: var("SMARTCAR_MANAGEMENT_API_ORIGIN", Self::DEFAULT_MANAGEMENT),
            connect: var("SMARTCAR_CONNECT_ORIGIN", Self::DEFAULT_CONNECT),
        }
    }

    /// All three at one origin (the simulator serves every path).
    pub fn all(origin: &str) -> Self {
        let origin = origin.trim_end_matches('/').to_string();
        Origins {
            api: origin.clone(),
            management: origin.clone(),
            connect: origin,
        }
    }
}
