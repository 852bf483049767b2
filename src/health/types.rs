//! The vocabulary of a diagnosis: severities, statuses, findings with evidence, remedies, and what the app needs.

use serde::{Deserialize, Serialize};

use crate::smartcar::{DataKind, Observation};

/// How bad one finding is. Ordered: `Info < Warning < Degraded < Blocked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Degraded,
    Blocked,
}

impl Severity {
    /// Upper-case label used in reports: `INFO`, `WARNING`, `DEGRADED`, `BLOCKED`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Degraded => "DEGRADED",
            Severity::Blocked => "BLOCKED",
        }
    }
}

/// A vehicle's overall status: its worst finding, or Unknown/Healthy.
/// Ordered from least to most urgent so a descending sort puts BLOCKED first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Healthy,
    Unknown,
    Warning,
    Degraded,
    Blocked,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Blocked,
        Status::Degraded,
        Status::Warning,
        Status::Healthy,
        Status::Unknown,
    ];

    /// Upper-case label used in every view and report.
    pub fn label(self) -> &'static str {
        match self {
            Status::Healthy => "HEALTHY",
            Status::Unknown => "UNKNOWN",
            Status::Warning => "WARNING",
            Status::Degraded => "DEGRADED",
            Status::Blocked => "BLOCKED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|st| st.label().eq_ignore_ascii_case(s))
    }

    pub fn from_severity(s: Severity) -> Status {
        match s {
            Severity::Info => Status::Healthy,
            Severity::Warning => Status::Warning,
            Severity::Degraded => Status::Degraded,
            Severity::Blocked => Status::Blocked,
        }
    }
}

/// One request, or one webhook delivery, as evidence for an escalation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// `GET /v2.0/vehicles/{id}/odometer`.
    pub endpoint: String,
    pub http_status: Option<u16>,
    /// `CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED`, `HTML`, `TIMEOUT`.
    pub type_code: Option<String>,
    pub request_id: Option<String>,
    pub at: jiff::Timestamp,
    pub data_age: Option<jiff::Timestamp>,
    /// The webhook event this came in (`VEHICLE_ERROR`), when no request was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Smartcar's `eventId` of that delivery, to quote to Smartcar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<jiff::Timestamp>,
    /// The answer's value where it is the evidence (`false` for a key not paired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Evidence {
    /// When the source says this was so: a v3 signal's or a webhook's own time (`oemUpdatedAt`)
    /// when it has one no later than its arrival, else when it arrived. (A v2 answer's
    /// `sc-data-age` dates the data it carries, not an error.)
    pub fn dated(&self) -> jiff::Timestamp {
        let own_time = self.event_type.is_some() || self.endpoint.starts_with("GET /v3/");
        self.data_age
            .filter(|t| own_time && *t <= self.at)
            .unwrap_or(self.at)
    }

    pub fn from_observation(o: &Observation) -> Evidence {
        let webhook = o.meta.webhook.as_ref();
        Evidence {
            endpoint: o.endpoint.clone(),
            // A delivery answers no request: the status an error type usually comes with never happened.
            http_status: o
                .error()
                .and_then(|e| e.status())
                .or(Some(o.meta.status))
                .filter(|s| *s != 0 && webhook.is_none()),
            type_code: o.error().map(|e| match e.smartcar() {
                // An error inside a successful answer (one signal of a list): `ERROR PERMISSION`.
                Some(s) if (200..300).contains(&s.status) => format!("ERROR {}", e.label()),
                _ => e.label(),
            }),
            request_id: o
                .error()
                .and_then(|e| e.request_id().map(str::to_string))
                .or_else(|| o.meta.request_id.clone()),
            at: o.at,
            data_age: o.meta.data_age,
            event_type: webhook.map(|w| w.event_type.clone()),
            event_id: webhook.and_then(|w| w.event_id.clone()),
            delivered_at: webhook.and_then(|w| w.delivered_at),
            value: match o.answer() {
                Some(crate::smartcar::Answer::VirtualKey { is_paired }) => {
                    Some(is_paired.to_string())
                }
                _ => None,
            },
        }
    }
}

/// What kind of fix a remedy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemedyKind {
    /// The owner pairs the third-party virtual key in the Tesla app.
    AddVirtualKey,
    /// The owner goes through Smartcar Connect again, granting what is missing.
    Reauthenticate,
    /// Nothing is broken for good; ask again after a delay.
    RetryLater,
    /// The owner must act at the OEM (subscription, account, wake the car).
    OwnerActionAtOem,
    /// The app's backend must act (refresh the access token).
    BackendAction,
    /// Smartcar support or the plan owner must act; send the request ids.
    ContactSmartcar,
    /// Nothing to do (informational findings).
    None,
}

impl RemedyKind {
    /// The same name serde writes: `add_virtual_key`, `contact_smartcar`.
    pub fn name(self) -> &'static str {
        match self {
            RemedyKind::AddVirtualKey => "add_virtual_key",
            RemedyKind::Reauthenticate => "reauthenticate",
            RemedyKind::RetryLater => "retry_later",
            RemedyKind::OwnerActionAtOem => "owner_action_at_oem",
            RemedyKind::BackendAction => "backend_action",
            RemedyKind::ContactSmartcar => "contact_smartcar",
            RemedyKind::None => "none",
        }
    }
}

/// The fix for a finding: the exact link and a reply the agent can paste to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remedy {
    pub kind: RemedyKind,
    /// One line for the agent: "Ask the owner to add the virtual key".
    pub action: String,
    /// The pairing link, Connect URL or doc URL.
    pub link: Option<String>,
    /// Text for the customer: Smartcar's `suggestedUserMessage` when given, else ours.
    pub customer_reply: String,
    pub retry_after_s: Option<u64>,
}

/// The findings diagnosis makes by itself, whatever the rules in force. Their ids are the slugs
/// reports, snapshots and filters carry; a policy rule's finding keeps the id its file gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingId {
    NotChecked,
    NoAccessToken,
    AccessTokenExpired,
    UpstreamHtml,
    UnreadableResponse,
    Redirected,
    RequestNotSent,
    NoResponse,
    VirtualKeyMissing,
    OemAuthenticationFailed,
    OwnerRevokedAccess,
    OemSubscription,
    OemAccountIssue,
    PermissionMissing,
    VehicleState,
    RateLimited,
    BillingRequestLimit,
    BillingPlan,
    TeslaLegacyIntegration,
    NotCapable,
    UpstreamError,
    RequestRejected,
    UnknownError,
    StaleData,
    /// API v3: the app's token was proven good and Smartcar still refused this vehicle's connection.
    ConnectionRevoked,
    /// API v3: a 401 that could not be pinned on the app's token or on the vehicle's connection.
    AppTokenUnsettled,
    /// API v3: a listed connection whose signals request answers 404.
    SignalsUnavailable,
    /// A webhook said the error resolved and nothing newer is known about the car.
    ErrorResolved,
}

impl FindingId {
    pub const ALL: [FindingId; 28] = [
        FindingId::NotChecked,
        FindingId::NoAccessToken,
        FindingId::AccessTokenExpired,
        FindingId::UpstreamHtml,
        FindingId::UnreadableResponse,
        FindingId::Redirected,
        FindingId::RequestNotSent,
        FindingId::NoResponse,
        FindingId::VirtualKeyMissing,
        FindingId::OemAuthenticationFailed,
        FindingId::OwnerRevokedAccess,
        FindingId::OemSubscription,
        FindingId::OemAccountIssue,
        FindingId::PermissionMissing,
        FindingId::VehicleState,
        FindingId::RateLimited,
        FindingId::BillingRequestLimit,
        FindingId::BillingPlan,
        FindingId::TeslaLegacyIntegration,
        FindingId::NotCapable,
        FindingId::UpstreamError,
        FindingId::RequestRejected,
        FindingId::UnknownError,
        FindingId::StaleData,
        FindingId::ConnectionRevoked,
        FindingId::AppTokenUnsettled,
        FindingId::SignalsUnavailable,
        FindingId::ErrorResolved,
    ];

    /// The slug written in `Finding::id`: `virtual-key-missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingId::NotChecked => "not-checked",
            FindingId::NoAccessToken => "no-access-token",
            FindingId::AccessTokenExpired => "access-token-expired",
            FindingId::UpstreamHtml => "upstream-html",
            FindingId::UnreadableResponse => "unreadable-response",
            FindingId::Redirected => "redirected",
            FindingId::RequestNotSent => "request-not-sent",
            FindingId::NoResponse => "no-response",
            FindingId::VirtualKeyMissing => "virtual-key-missing",
            FindingId::OemAuthenticationFailed => "oem-authentication-failed",
            FindingId::OwnerRevokedAccess => "owner-revoked-access",
            FindingId::OemSubscription => "oem-subscription",
            FindingId::OemAccountIssue => "oem-account-issue",
            FindingId::PermissionMissing => "permission-missing",
            FindingId::VehicleState => "vehicle-state",
            FindingId::RateLimited => "rate-limited",
            FindingId::BillingRequestLimit => "billing-request-limit",
            FindingId::BillingPlan => "billing-plan",
            FindingId::TeslaLegacyIntegration => "tesla-legacy-integration",
            FindingId::NotCapable => "not-capable",
            FindingId::UpstreamError => "upstream-error",
            FindingId::RequestRejected => "request-rejected",
            FindingId::UnknownError => "unknown-error",
            FindingId::StaleData => "stale-data",
            FindingId::ConnectionRevoked => "connection-revoked",
            FindingId::AppTokenUnsettled => "app-token-unsettled",
            FindingId::SignalsUnavailable => "signals-unavailable",
            FindingId::ErrorResolved => "error-resolved",
        }
    }

    /// The built-in finding a slug names, if any.
    pub fn from_id(id: &str) -> Option<FindingId> {
        FindingId::ALL.into_iter().find(|f| f.as_str() == id)
    }

    /// The finding is about the way to the API (unreachable, an answer that is not the API's, a
    /// redirect, a request never sent, a run that did not get there), not about the vehicle.
    pub fn is_about_the_way(self) -> bool {
        matches!(
            self,
            FindingId::NoResponse
                | FindingId::UpstreamHtml
                | FindingId::UnreadableResponse
                | FindingId::Redirected
                | FindingId::RequestNotSent
                | FindingId::AppTokenUnsettled
                | FindingId::NotChecked
        )
    }
}

/// What a finding is: one diagnosis makes by itself, or one a policy rule reports. A rule's finding
/// is never taken for a built-in one, whatever id a policies file gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind<'a> {
    Builtin(FindingId),
    /// The finding id a rule reports (`Rule::finding` or `Rule::exempt_finding`).
    Rule(&'a str),
    /// No rule, and an id this build does not make (a snapshot written by another version).
    Unknown(&'a str),
}

impl<'a> FindingKind<'a> {
    /// Reads a finding's id and the rule it came from, as findings and verdicts store them.
    pub fn of(id: &'a str, rule: Option<&str>) -> FindingKind<'a> {
        match (rule, FindingId::from_id(id)) {
            (Some(_), _) => FindingKind::Rule(id),
            (None, Some(builtin)) => FindingKind::Builtin(builtin),
            (None, None) => FindingKind::Unknown(id),
        }
    }
}

/// One thing wrong (or worth knowing) about a vehicle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable slug used by filters, reports and tests: `virtual-key-missing`. A built-in finding's is
    /// [`FindingId::as_str`]; a rule's is the one its policies file gives. Compare through [`Finding::kind`].
    pub id: String,
    pub severity: Severity,
    /// One line: "Tesla virtual key not paired: no data flows".
    pub title: String,
    /// The rule (policy id) this comes from, when an OEM rule explains it.
    pub rule: Option<String>,
    /// Since when: the rule's in-force date or the first failing observation, as text ("2025-01-21", "March 2025").
    pub since: Option<String>,
    pub evidence: Vec<Evidence>,
    pub remedy: Remedy,
}

impl Finding {
    pub fn kind(&self) -> FindingKind<'_> {
        FindingKind::of(&self.id, self.rule.as_deref())
    }
}

/// The verdict on one vehicle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub status: Status,
    /// Worst first.
    pub findings: Vec<Finding>,
    /// When the newest observation used was made; `None` when never probed.
    pub checked_at: Option<jiff::Timestamp>,
}

impl Diagnosis {
    pub fn unknown() -> Diagnosis {
        Diagnosis {
            status: Status::Unknown,
            findings: Vec::new(),
            checked_at: None,
        }
    }

    /// Nothing was learnt about the vehicle itself: it is UNKNOWN, or its main finding is about the
    /// way to the API (unreachable, an answer that is not the API's, a redirect, a request never sent).
    /// A check that ends with such vehicles cannot claim that nothing is blocked.
    pub fn could_not_check(&self) -> bool {
        self.status == Status::Unknown
            || self.main_finding().is_some_and(
                |f| matches!(f.kind(), FindingKind::Builtin(id) if id.is_about_the_way()),
            )
    }

    /// The finding that explains the status (the first, since findings are sorted worst first).
    pub fn main_finding(&self) -> Option<&Finding> {
        self.findings.first()
    }
}

/// What the app depends on and how its users are sent to fix things.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    /// Data the app reads (default: location and odometer).
    pub data: Vec<DataKind>,
    /// The app only needs "is it at home" instead of live location (Tesla `atHome`, no re-authentication).
    pub at_home_only: bool,
    /// Virtual-key domain for `https://www.tesla.com/_ak/<domain>`.
    pub virtual_key_domain: String,
    /// Connect origin, client id and redirect URI for re-authentication links.
    pub connect_origin: String,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    /// Data older than this (by `sc-data-age`) is stale.
    pub stale_after_s: u64,
}

impl Default for Needs {
    fn default() -> Self {
        Needs {
            data: vec![DataKind::Location, DataKind::Odometer],
            at_home_only: false,
            virtual_key_domain: "smartcar.com".into(),
            connect_origin: crate::smartcar::Origins::DEFAULT_CONNECT.into(),
            client_id: None,
            redirect_uri: None,
            stale_after_s: 6 * 3600,
        }
    }
}

impl Needs {
    /// Data kinds to request in the data batch: location is left out in at-home-only mode.
    pub fn data_to_probe(&self) -> Vec<DataKind> {
        self.data
            .iter()
            .copied()
            .filter(|k| !(self.at_home_only && *k == DataKind::Location))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_dated_by_its_sources_own_time_when_it_has_one() {
        let at: jiff::Timestamp = "2026-11-27T18:58:00Z".parse().expect("ts");
        let oem: jiff::Timestamp = "2026-11-27T18:40:00Z".parse().expect("ts");
        let signal = Evidence {
            endpoint: "GET /v3/vehicles/v1/signals location-preciselocation".into(),
            type_code: Some("ERROR PERMISSION".into()),
            at,
            data_age: Some(oem),
            ..Evidence::default()
        };
        assert_eq!(signal.dated(), oem, "a v3 signal's oemUpdatedAt");
        let v2 = Evidence {
            endpoint: "GET /v2.0/vehicles/v1/odometer".into(),
            ..signal.clone()
        };
        assert_eq!(v2.dated(), at, "sc-data-age dates data, not the error");
        let later = Evidence {
            data_age: Some(at + jiff::SignedDuration::from_secs(60)),
            ..signal
        };
        assert_eq!(later.dated(), at, "never after it arrived");
    }

    #[test]
    fn every_builtin_finding_id_reads_back_from_its_own_slug() {
        for id in FindingId::ALL {
            assert_eq!(FindingId::from_id(id.as_str()), Some(id), "{id:?}");
        }
        assert_eq!(FindingId::from_id("virtual-key-exempt"), None);
    }

    #[test]
    fn a_finding_with_a_rule_is_the_rules_even_when_spelled_like_a_builtin_one() {
        assert_eq!(
            FindingKind::of("no-response", Some("tesla-virtual-key")),
            FindingKind::Rule("no-response")
        );
        assert_eq!(
            FindingKind::of("no-response", None),
            FindingKind::Builtin(FindingId::NoResponse)
        );
        assert_eq!(
            FindingKind::of("gone-in-this-build", None),
            FindingKind::Unknown("gone-in-this-build")
        );
    }
}
