//! Every path the simulator answers: Smartcar's v2.0 vehicle API, the Management API and `/_sim/*`.
//!
//! One fallback handler does its own matching, so every path takes an optional trailing slash and
//! unknown paths get Smartcar's `RESOURCE_NOT_FOUND` body rather than a bare 404.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::SimConfig;
use super::api_error::Failure;
use super::dice::Dice;
use super::fleet::{Fleet, SimUser, SimVehicle, Situation, iso_millis};
use super::limits::{AppBucket, VehicleWindow};
use super::stats::{Counters, EndpointKind, FaultKind};
use crate::smartcar::DataKind;

/// How much later a "slow" fault answers.
pub(super) const SLOW_FAULT: Duration = Duration::from_millis(2_500);
/// `Retry-After` of the `rate-limited` situation.
pub(super) const SITUATION_RETRY_AFTER_S: u64 = 1_800;

pub(super) const HTML_BAD_GATEWAY: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// Smartcar permissions every simulated connection was granted (before situations take some away).
pub(super) const GRANTED: &[&str] = &[
    "read_vehicle_info",
    "read_vin",
    "read_location",
    "read_odometer",
    "read_battery",
    "read_charge",
    "read_fuel",
    "read_tires",
    "read_engine_oil",
    "read_security",
    "control_security",
    "read_user_profile",
];
pub(super) const TESLA_GRANTED: &[&str] = &["read_extended_vehicle_info", "control_charge"];
pub(super) const TESLA_SCOPES: &[&str] = &[
    "vehicle_device_data",
    "vehicle_cmds",
    "vehicle_charging_cmds",
    "vehicle_location",
    "user_data",
];

/// What a vehicle accumulates while the server runs.
#[derive(Debug, Default)]
pub(super) struct VehicleRuntime {
    pub(super) requests: AtomicU64,
    pub(super) data_calls: AtomicU64,
    pub(super) window: VehicleWindow,
}

/// Shared by every request; nothing in it is locked as a whole.
#[derive(Debug)]
pub(crate) struct SimState {
    pub(crate) config: SimConfig,
    pub(crate) fleet: Fleet,
    pub(crate) counters: Counters,
    pub(super) runtime: Vec<VehicleRuntime>,
    pub(super) dice: Dice,
    pub(super) app_bucket: Option<AppBucket>,
    pub(super) origin: String,
    management_auth: String,
    pub(super) v3: super::v3::V3State,
}

impl SimState {
    pub(crate) fn new(config: SimConfig, fleet: Fleet, origin: String) -> SimState {
        let runtime = fleet
            .vehicles
            .iter()
            .map(|_| VehicleRuntime::default())
            .collect();
        let management_auth = format!("default:{}", config.amt);
        SimState {
            dice: Dice::new(config.seed),
            app_bucket: config.app_rate_limit.map(AppBucket::new),
            runtime,
            counters: Counters::default(),
            fleet,
            origin,
            management_auth,
            config,
            v3: super::v3::V3State::default(),
        }
    }

    pub(crate) fn vehicle_requests(&self, vehicle_id: &str) -> Option<u64> {
        let i = self.fleet.vehicle_index(vehicle_id)?;
        self.runtime
            .get(i)
            .map(|r| r.requests.load(Ordering::Relaxed))
    }

    /// Zeroes every counter and forgets the hourly windows and the app bucket's debt.
    pub(crate) fn reset_stats(&self) {
        self.counters.reset();
        for r in &self.runtime {
            r.requests.store(0, Ordering::Relaxed);
            r.data_calls.store(0, Ordering::Relaxed);
            r.window.clear();
        }
        if let Some(bucket) = &self.app_bucket {
            bucket.reset();
        }
        self.v3.reset();
    }
}

pub(crate) fn router(state: Arc<SimState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// The body of an answer before headers are attached.
enum Payload {
    Json(Value),
    Html(Cow<'static, str>),
    /// JSON cut short by a fault.
    Truncated(Vec<u8>),
}

struct Reply {
    status: u16,
    payload: Payload,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            payload: Payload::Json(body),
            headers: Vec::new(),
        }
    }

    fn error(failure: &Failure, request_id: &str) -> Reply {
        let mut headers = Vec::new();
        if let Some(s) = failure.retry_after_s() {
            headers.push(("retry-after", s.to_string()));
        }
        Reply {
            status: failure.status(),
            payload: Payload::Json(failure.body(request_id)),
            headers,
        }
    }

    fn into_response(self, request_id: &str) -> Response {
        let (content_type, bytes) = match self.payload {
            Payload::Json(v) => (
                "application/json",
                serde_json::to_vec(&v).unwrap_or_default(),
            ),
            Payload::Html(page) => ("text/html", page.into_owned().into_bytes()),
            Payload::Truncated(b) => ("application/json", b),
        };
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("sc-request-id", v);
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

async fn dispatch(
    State(st): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = st.dice.request_id();
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let reply = match segments.as_slice() {
        ["_sim", "v3", "stats"] => return super::v3::stats_response(&st, &request_id),
        ["_sim", rest @ ..] => sim_route(&st, &method, rest, &query, &request_id),
        ["oauth2", "token"] => return super::v3::token(&st, &method, &headers, &body, &request_id),
        ["v3", rest @ ..] => {
            return super::v3::api(&st, &method, rest, &headers, &query, &request_id).await;
        }
        ["oauth", flow @ ("authorize" | "reauthenticate")] if method == Method::GET => {
            connect_page(flow, &query)
        }
        ["v2.0", "management", "connections"] => {
            st.counters.request(EndpointKind::Management);
            management(&st, &method, &headers, &query, &request_id)
        }
        ["v2.0", rest @ ..] => {
            vehicle_api(&st, &method, rest, &headers, &query, &body, &request_id).await
        }
        [first, ..] if is_version_segment(first) => {
            st.counters.request(EndpointKind::NotFound);
            Reply::error(&Failure::VersionNotFound, &request_id)
        }
        _ => {
            st.counters.request(EndpointKind::NotFound);
            Reply::error(&Failure::PathNotFound, &request_id)
        }
    };
    reply.into_response(&request_id)
}

fn is_version_segment(s: &str) -> bool {
    s.strip_prefix('v').is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Reads an optional integer query parameter within `min..=max`.
fn bounded(
    query: &[(String, String)],
    key: &'static str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, Failure> {
    match query_value(query, key) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ if max == usize::MAX => Err(Failure::Validation(format!(
                "Query parameter `{key}` must be an integer of at least {min}, got {raw:?}."
            ))),
            _ => Err(Failure::Validation(format!(
                "Query parameter `{key}` must be an integer from {min} to {max}, got {raw:?}."
            ))),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Management API

fn management(
    st: &SimState,
    method: &Method,
    headers: &HeaderMap,
    query: &[(String, String)],
    request_id: &str,
) -> Reply {
    if method != Method::GET {
        return Reply::error(&Failure::PathNotFound, request_id);
    }
    if !basic_auth_matches(headers, &st.management_auth) {
        return Reply::error(&Failure::Authentication, request_id);
    }
    match connections_page(&st.fleet, query) {
        Ok(body) => Reply::ok(body),
        Err(f) => Reply::error(&f, request_id),
    }
}

fn basic_auth_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    STANDARD
        .decode(encoded.trim())
        .is_ok_and(|decoded| decoded == expected.as_bytes())
}

const CURSOR_PREFIX: &str = "after:";

fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix(CURSOR_PREFIX)?
        .parse()
        .ok()
}

fn connections_page(fleet: &Fleet, query: &[(String, String)]) -> Result<Value, Failure> {
    let limit = bounded(query, "limit", 10, 1, 100)?;
    let offset = match query_value(query, "cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => decode_cursor(c).ok_or_else(|| {
            Failure::Validation(format!(
                "Query parameter `cursor` {c:?} is not a cursor this API returned."
            ))
        })?,
    };
    let user_id = query_value(query, "user_id").filter(|s| !s.is_empty());
    let vehicle_id = query_value(query, "vehicle_id").filter(|s| !s.is_empty());
    let live = query_value(query, "mode").is_none_or(|m| m.is_empty() || m == "live");
    let matches = |i: &usize| {
        fleet.vehicles.get(*i).is_some_and(|v| {
            live && user_id.is_none_or(|u| v.user_id == u) && vehicle_id.is_none_or(|id| v.id == id)
        })
    };
    let selected: Cow<'_, [usize]> = match (vehicle_id, user_id) {
        (Some(id), _) => Cow::Owned(
            fleet
                .vehicle_index(id)
                .into_iter()
                .filter(matches)
                .collect(),
        ),
        (None, Some(u)) => {
            let mut own: Vec<usize> = fleet
                .user(u)
                .map(|u| u.vehicles.clone())
                .unwrap_or_default();
            own.retain(matches);
            own.sort_by(|a, b| {
                let (va, vb) = (&fleet.vehicles[*a], &fleet.vehicles[*b]);
                vb.connected_at
                    .cmp(&va.connected_at)
                    .then_with(|| va.id.cmp(&vb.id))
            });
            Cow::Owned(own)
        }
        // The common case, a plain listing, pages the precomputed order without copying it.
        (None, None) if live => Cow::Borrowed(fleet.newest_first()),
        (None, None) => Cow::Owned(Vec::new()),
    };
    let page: Vec<Value> = selected
        .iter()
        .skip(offset)
        .take(limit)
        .filter_map(|i| fleet.vehicles.get(*i))
        .map(|v| json!({"userId": v.user_id, "vehicleId": v.id, "connectedAt": v.connected_at_text(), "mode": "live"}))
        .collect();
    let next = offset.saturating_add(limit);
    let cursor = if next < selected.len() {
        Some(encode_cursor(next))
    } else {
        None
    };
    Ok(json!({"connections": page, "paging": {"cursor": cursor}}))
}

// ---------------------------------------------------------------------------------------------
// Vehicle API

enum VehicleEndpoint {
    Attributes,
    Permissions,
    Batch,
    Data(DataKind),
    TeslaVirtualKey,
    TeslaUserAccess,
    TeslaAttributes,
    /// A make-specific path with the make not in lower case (`/TESLA/...`): Smartcar answers PERMISSION.
    MakeNotLowerCase,
}

enum Route<'a> {
    Vehicles,
    User,
    Vehicle {
        id: &'a str,
        endpoint: VehicleEndpoint,
    },
}

impl Route<'_> {
    fn kind(&self) -> EndpointKind {
        match self {
            Route::Vehicles => EndpointKind::Vehicles,
            Route::User => EndpointKind::User,
            Route::Vehicle { endpoint, .. } => match endpoint {
                VehicleEndpoint::Attributes => EndpointKind::Attributes,
                VehicleEndpoint::Permissions => EndpointKind::Permissions,
                VehicleEndpoint::Batch => EndpointKind::Batch,
                VehicleEndpoint::Data(_) => EndpointKind::Data,
                VehicleEndpoint::TeslaVirtualKey
                | VehicleEndpoint::TeslaUserAccess
                | VehicleEndpoint::TeslaAttributes
                | VehicleEndpoint::MakeNotLowerCase => EndpointKind::Tesla,
            },
        }
    }
}

fn parse_route<'a>(method: &Method, segments: &[&'a str]) -> Option<Route<'a>> {
    let get = method == Method::GET;
    let route = match segments {
        ["vehicles"] if get => Route::Vehicles,
        ["user"] if get => Route::User,
        ["vehicles", id, tail @ ..] => {
            let endpoint = match tail {
                [] if get => VehicleEndpoint::Attributes,
                ["permissions"] if get => VehicleEndpoint::Permissions,
                ["batch"] if method == Method::POST => VehicleEndpoint::Batch,
                ["tesla", "virtual_key"] if get => VehicleEndpoint::TeslaVirtualKey,
                ["tesla", "user", "access"] if get => VehicleEndpoint::TeslaUserAccess,
                ["tesla", "attributes"] if get => VehicleEndpoint::TeslaAttributes,
                [make, _, ..] if *make != "tesla" && make.eq_ignore_ascii_case("tesla") => {
                    VehicleEndpoint::MakeNotLowerCase
                }
                _ if get => {
                    VehicleEndpoint::Data(DataKind::from_path(&format!("/{}", tail.join("/")))?)
                }
                _ => return None,
            };
            Route::Vehicle { id, endpoint }
        }
        _ => return None,
    };
    Some(route)
}

fn bearer_user<'f>(fleet: &'f Fleet, headers: &HeaderMap) -> Result<&'f SimUser, Failure> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Failure::Authentication)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(Failure::Authentication)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Failure::Authentication);
    }
    match fleet.user_by_token(token.trim()) {
        Some(user) if !user.token_expired => Ok(user),
        _ => Err(Failure::Authentication),
    }
}

async fn vehicle_api(
    st: &SimState,
    method: &Method,
    segments: &[&str],
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
    request_id: &str,
) -> Reply {
    let Some(route) = parse_route(method, segments) else {
        st.counters.request(EndpointKind::NotFound);
        return Reply::error(&Failure::PathNotFound, request_id);
    };
    st.counters.request(route.kind());
    let user = match bearer_user(&st.fleet, headers) {
        Ok(user) => user,
        Err(f) => return Reply::error(&f, request_id),
    };
    if let Some(bucket) = &st.app_bucket
        && let Err(retry_after_s) = bucket.try_acquire()
    {
        st.counters.rate_limited_app();
        return Reply::error(&Failure::AppRateLimit { retry_after_s }, request_id);
    }
    match route {
        Route::User => Reply::ok(json!({"id": user.id})),
        Route::Vehicles => {
            let limit = bounded(query, "limit", 10, 1, 50);
            let offset = bounded(query, "offset", 0, 0, usize::MAX);
            match (limit, offset) {
                (Ok(limit), Ok(offset)) => {
                    let ids: Vec<&str> = user
                        .vehicles
                        .iter()
                        .skip(offset)
                        .take(limit)
                        .filter_map(|i| st.fleet.vehicles.get(*i))
                        .map(|v| v.id.as_str())
                        .collect();
                    Reply::ok(
                        json!({"paging": {"count": user.vehicles.len(), "offset": offset}, "vehicles": ids}),
                    )
                }
                (Err(f), _) | (_, Err(f)) => Reply::error(&f, request_id),
            }
        }
        Route::Vehicle { id, endpoint } => {
            let idx = match st.fleet.vehicle_index(id) {
                Some(i)
                    if st
                        .fleet
                        .vehicles
                        .get(i)
                        .is_some_and(|v| v.user_id == user.id) =>
                {
                    i
                }
                _ => return Reply::error(&Failure::PathNotFound, request_id),
            };
            if let Some(rt) = st.runtime.get(idx) {
                rt.requests.fetch_add(1, Ordering::Relaxed);
            }
            vehicle_endpoint(st, idx, endpoint, headers, query, body, request_id).await
        }
    }
}

/// Metric unless the request asks for `sc-unit-system: imperial`.
fn imperial(headers: &HeaderMap) -> bool {
    headers
        .get("sc-unit-system")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("imperial"))
}

async fn vehicle_endpoint(
    st: &SimState,
    idx: usize,
    endpoint: VehicleEndpoint,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
    request_id: &str,
) -> Reply {
    let Some(v) = st.fleet.vehicles.get(idx) else {
        return Reply::error(&Failure::PathNotFound, request_id);
    };
    let fault = (st.config.fault_rate > 0.0 && st.dice.unit() < st.config.fault_rate)
        .then(|| FaultKind::from_unit(st.dice.unit()));
    if let Some(f) = fault {
        st.counters.fault(f);
    }
    let contacts_vehicle = !matches!(endpoint, VehicleEndpoint::Permissions);
    let mut delay = Duration::ZERO;
    if contacts_vehicle
        && st.config.latency
            != (super::Latency::Fixed {
                ms: 0,
                jitter_ms: 0,
            })
    {
        delay = st.config.latency.draw(st.dice.unit(), st.dice.unit());
    }
    if fault == Some(FaultKind::Slow) {
        delay += SLOW_FAULT;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(FaultKind::ServerInternal) => {
            return Reply::error(&Failure::ServerInternal, request_id);
        }
        Some(FaultKind::UpstreamUnknown) => {
            return Reply::error(&Failure::UpstreamUnknown, request_id);
        }
        Some(FaultKind::HtmlBadGateway) => {
            return Reply {
                status: 502,
                payload: Payload::Html(Cow::Borrowed(HTML_BAD_GATEWAY)),
                headers: Vec::new(),
            };
        }
        _ => {}
    }
    let reply = match endpoint {
        VehicleEndpoint::Attributes => Reply::ok(attributes(v)),
        VehicleEndpoint::Permissions => permissions(v, query, request_id),
        VehicleEndpoint::Data(kind) => {
            let item = data_item(st, idx, v, kind, imperial(headers), request_id);
            let mut headers = Vec::new();
            if let Some(s) = item.retry_after_s {
                headers.push(("retry-after", s.to_string()));
            }
            if let Some(age) = item.data_age {
                headers.push(("sc-data-age", age));
            }
            if let Some(at) = item.fetched_at {
                headers.push(("sc-fetched-at", at));
            }
            if let Some(units) = item.unit_system {
                headers.push(("sc-unit-system", units.to_string()));
            }
            Reply {
                status: item.status,
                payload: Payload::Json(item.body),
                headers,
            }
        }
        VehicleEndpoint::Batch => batch(st, idx, v, body, imperial(headers), request_id),
        VehicleEndpoint::MakeNotLowerCase => Reply::error(&Failure::Permission, request_id),
        VehicleEndpoint::TeslaVirtualKey
        | VehicleEndpoint::TeslaUserAccess
        | VehicleEndpoint::TeslaAttributes => tesla(st, v, &endpoint, request_id),
    };
    match (fault, reply.payload) {
        (Some(FaultKind::TruncatedJson), Payload::Json(value)) => {
            let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
            bytes.truncate((bytes.len() / 2).max(1));
            Reply {
                status: 200,
                payload: Payload::Truncated(bytes),
                headers: Vec::new(),
            }
        }
        (_, payload) => Reply { payload, ..reply },
    }
}

fn attributes(v: &SimVehicle) -> Value {
    json!({"id": v.id, "make": v.make, "model": v.model, "year": v.year})
}

fn permissions(v: &SimVehicle, query: &[(String, String)], request_id: &str) -> Reply {
    let (limit, offset) = match (
        bounded(query, "limit", 25, 1, 100),
        bounded(query, "offset", 0, 0, usize::MAX),
    ) {
        (Ok(l), Ok(o)) => (l, o),
        (Err(f), _) | (_, Err(f)) => return Reply::error(&f, request_id),
    };
    let granted: Vec<&str> = GRANTED
        .iter()
        .chain(if v.is_tesla() { TESLA_GRANTED } else { &[] })
        .copied()
        .filter(|p| !(v.situation == Situation::ScopeMissing && *p == "read_odometer"))
        .collect();
    let page: Vec<&str> = granted.iter().skip(offset).take(limit).copied().collect();
    Reply::ok(json!({"paging": {"count": granted.len(), "offset": offset}, "permissions": page}))
}

fn reauth_url(st: &SimState, v: &SimVehicle) -> String {
    let client_id: String =
        form_urlencoded::byte_serialize(st.config.client_id.as_bytes()).collect();
    format!(
        "{}/oauth/reauthenticate?response_type=vehicle_id&client_id={client_id}&vehicle_id={}",
        st.origin, v.id
    )
}

fn tesla(st: &SimState, v: &SimVehicle, endpoint: &VehicleEndpoint, request_id: &str) -> Reply {
    if !v.is_tesla() {
        return Reply::error(&Failure::MakeNotCompatible, request_id);
    }
    // The key status answers in every situation but an expired token (situations table).
    if v.situation == Situation::OemAuthenticationFailed
        && !matches!(endpoint, VehicleEndpoint::TeslaVirtualKey)
    {
        return Reply::error(
            &Failure::OemAuthenticationFailed {
                reauth_url: reauth_url(st, v),
            },
            request_id,
        );
    }
    match endpoint {
        VehicleEndpoint::TeslaVirtualKey => {
            let paired = !matches!(
                v.situation,
                Situation::VirtualKeyMissing | Situation::VirtualKeyExempt
            );
            Reply::ok(json!({"isPaired": paired}))
        }
        VehicleEndpoint::TeslaUserAccess => {
            let scopes: Vec<&str> = TESLA_SCOPES
                .iter()
                .copied()
                .filter(|s| {
                    !(v.situation == Situation::LocationPermissionMissing
                        && *s == "vehicle_location")
                })
                .collect();
            Reply::ok(json!({"accessType": "OWNER", "permissions": scopes}))
        }
        _ if v.situation == Situation::VirtualKeyMissing => {
            Reply::error(&Failure::VirtualKeyRequired, request_id)
        }
        _ => Reply::ok(json!({
            "id": v.id,
            "make": v.make,
            "model": v.model,
            "year": v.year,
            "firmwareVersion": v.firmware_version,
            "nickname": v.nickname,
            "sentryMode": {"available": true, "enabled": (v.odometer_km as u64).is_multiple_of(3)},
            "atHome": v.at_home,
        })),
    }
}

/// One data answer, shared by the data endpoints and batch items.
struct Item {
    status: u16,
    body: Value,
    data_age: Option<String>,
    fetched_at: Option<String>,
    unit_system: Option<&'static str>,
    retry_after_s: Option<u64>,
}

impl Item {
    fn failure(f: &Failure, request_id: &str) -> Item {
        Item {
            status: f.status(),
            body: f.body(request_id),
            data_age: None,
            fetched_at: None,
            unit_system: None,
            retry_after_s: f.retry_after_s(),
        }
    }
}

const KM_PER_MILE: f64 = 1.609_344;
const KPA_PER_PSI: f64 = 6.894_757;
const LITRES_PER_GALLON: f64 = 3.785_412;

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn data_item(
    st: &SimState,
    idx: usize,
    v: &SimVehicle,
    kind: DataKind,
    imperial: bool,
    request_id: &str,
) -> Item {
    if let Some(rt) = st.runtime.get(idx) {
        rt.data_calls.fetch_add(1, Ordering::Relaxed);
        if let Err(retry_after_s) = rt
            .window
            .try_call(st.config.vehicle_calls_per_hour, Instant::now())
        {
            st.counters.rate_limited_vehicle();
            return Item::failure(&Failure::VehicleRateLimit { retry_after_s }, request_id);
        }
    }
    let failure = match v.situation {
        Situation::RateLimited => Some(Failure::VehicleRateLimit {
            retry_after_s: SITUATION_RETRY_AFTER_S,
        }),
        Situation::ScopeMissing if kind == DataKind::Odometer => Some(Failure::Permission),
        Situation::LocationPermissionMissing if kind == DataKind::Location => {
            Some(Failure::Permission)
        }
        _ => None,
    }
    .or_else(|| {
        let capable = match kind {
            DataKind::Battery | DataKind::Charge => v.powertrain.has_battery(),
            DataKind::Fuel | DataKind::EngineOil => v.powertrain.has_engine(),
            _ => true,
        };
        (!capable).then_some(Failure::VehicleNotCapable)
    })
    .or(match v.situation {
        Situation::VirtualKeyMissing => Some(Failure::VirtualKeyRequired),
        Situation::OemAuthenticationFailed => Some(Failure::OemAuthenticationFailed {
            reauth_url: reauth_url(st, v),
        }),
        Situation::SubscriptionLapsed => Some(Failure::Subscription),
        Situation::VehicleAsleep => Some(Failure::VehicleAsleep),
        Situation::VehicleUnreachable => Some(Failure::VehicleUnreachable),
        Situation::QuotaExhausted => Some(Failure::VehicleRequestLimit),
        _ => None,
    });
    // The VIN comes from the OEM account, not from the car: the car's situation does not affect it.
    let failure = failure.filter(|_| kind != DataKind::Vin);
    if let Some(f) = failure {
        if matches!(f, Failure::VehicleRateLimit { .. }) {
            st.counters.rate_limited_vehicle();
        }
        return Item::failure(&f, request_id);
    }
    let distance = |km: f64| if imperial { km / KM_PER_MILE } else { km };
    let body = match kind {
        DataKind::Location => json!({"latitude": v.latitude, "longitude": v.longitude}),
        DataKind::Odometer => json!({"distance": round(distance(v.odometer_km), 1)}),
        DataKind::Battery => json!({
            "percentRemaining": v.battery_fraction,
            "range": round(distance(v.battery_fraction * v.battery_full_range_km), 1),
        }),
        DataKind::Charge => json!({"isPluggedIn": v.plugged_in, "state": v.charge_state}),
        DataKind::Fuel => {
            let litres = v.fuel_fraction * v.tank_l;
            json!({
                "amountRemaining": round(if imperial { litres / LITRES_PER_GALLON } else { litres }, 1),
                "percentRemaining": v.fuel_fraction,
                "range": round(distance(litres * 12.5), 1),
            })
        }
        DataKind::TirePressure => {
            let p = |kpa: f64| round(if imperial { kpa / KPA_PER_PSI } else { kpa }, 1);
            let [fl, fr, bl, br] = v.tire_kpa;
            json!({"frontLeft": p(fl), "frontRight": p(fr), "backLeft": p(bl), "backRight": p(br)})
        }
        DataKind::EngineOil => json!({"lifeRemaining": v.oil_life}),
        DataKind::Vin => json!({"vin": v.vin}),
    };
    let now = jiff::Timestamp::now();
    let recorded = now
        .checked_sub(jiff::SignedDuration::from_secs(v.data_age_s))
        .unwrap_or(now);
    Item {
        status: 200,
        body,
        data_age: Some(iso_millis(recorded)),
        fetched_at: Some(iso_millis(now)),
        unit_system: Some(if imperial { "imperial" } else { "metric" }),
        retry_after_s: None,
    }
}

/// Most requests one batch may carry. Each item is a vehicle call; a client sending more is
/// broken or hostile, and the simulator refuses it the way Smartcar refuses an invalid body.
pub const MAX_BATCH_REQUESTS: usize = 20;
/// Largest batch body read (a full batch of paths is well under 2 KiB).
pub const MAX_BATCH_BODY_BYTES: usize = 64 * 1024;

fn batch(
    st: &SimState,
    idx: usize,
    v: &SimVehicle,
    body: &[u8],
    imperial: bool,
    request_id: &str,
) -> Reply {
    if body.len() > MAX_BATCH_BODY_BYTES {
        let f = Failure::Validation(format!(
            "The batch body is over {MAX_BATCH_BODY_BYTES} bytes."
        ));
        return Reply::error(&f, request_id);
    }
    let parsed: Option<Vec<String>> =
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|value| {
                value
                    .get("requests")?
                    .as_array()?
                    .iter()
                    .map(|r| r.get("path")?.as_str().map(str::to_string))
                    .collect()
            });
    let Some(paths) = parsed.filter(|p| !p.is_empty()) else {
        let f = Failure::Validation("The body must be {\"requests\": [{\"path\": \"/odometer\"}, ...]} with at least one request.".into());
        return Reply::error(&f, request_id);
    };
    if paths.len() > MAX_BATCH_REQUESTS {
        let f = Failure::Validation(format!(
            "A batch holds at most {MAX_BATCH_REQUESTS} requests; this one has {}.",
            paths.len()
        ));
        return Reply::error(&f, request_id);
    }
    let responses: Vec<Value> = paths
        .iter()
        .map(|path| {
            let item = match DataKind::from_path(path) {
                Some(kind) => data_item(st, idx, v, kind, imperial, request_id),
                // `/` is the attributes, as the SDKs name it in a batch.
                None if path.trim_end_matches('/').is_empty() => Item {
                    status: 200,
                    body: attributes(v),
                    data_age: None,
                    fetched_at: None,
                    unit_system: None,
                    retry_after_s: None,
                },
                None => Item::failure(&Failure::PathNotFound, request_id),
            };
            let mut headers = serde_json::Map::new();
            if let Some(age) = item.data_age {
                headers.insert("sc-data-age".into(), Value::String(age));
            }
            if let Some(at) = item.fetched_at {
                headers.insert("sc-fetched-at".into(), Value::String(at));
            }
            if let Some(units) = item.unit_system {
                headers.insert("sc-unit-system".into(), Value::String(units.into()));
            }
            if let Some(s) = item.retry_after_s {
                // The Python SDK looks this key up case-sensitively.
                headers.insert("Retry-After".into(), Value::String(s.to_string()));
            }
            json!({"path": path, "code": item.status, "body": item.body, "headers": headers})
        })
        .collect();
    Reply::ok(json!({"responses": responses}))
}

// ---------------------------------------------------------------------------------------------
// Connect

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Connect links (`/oauth/authorize`, `/oauth/reauthenticate`) open a page that shows what the real
/// Connect flow would be asked to do, so a link copied from the dashboard in demo mode leads somewhere.
fn connect_page(flow: &str, query: &[(String, String)]) -> Reply {
    let rows: String = query
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                escape_html(k),
                escape_html(v)
            )
        })
        .collect();
    let what = if flow == "reauthenticate" {
        "re-authenticate a vehicle"
    } else {
        "connect vehicles"
    };
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Smartcar Connect (simulated)</title></head>\
         <body><h1>Smartcar Connect (simulated)</h1><p>The real Connect flow would now ask the owner to {what}.</p>\
         <table>{rows}</table></body></html>"
    );
    Reply {
        status: 200,
        payload: Payload::Html(Cow::Owned(page)),
        headers: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Ground truth and counters

fn sim_route(
    st: &SimState,
    method: &Method,
    segments: &[&str],
    query: &[(String, String)],
    request_id: &str,
) -> Reply {
    match (method, segments) {
        (&Method::GET, ["fleet"]) => {
            let rows: Vec<Value> = st
                .fleet
                .vehicles
                .iter()
                .map(|v| {
                    json!({
                        "vehicleId": v.id,
                        "userId": v.user_id,
                        "make": v.make,
                        "model": v.model,
                        "year": v.year,
                        "vin": v.vin,
                        "situation": v.situation,
                        "connectedAt": v.connected_at_text(),
                        "powertrain": v.powertrain,
                    })
                })
                .collect();
            Reply::ok(Value::Array(rows))
        }
        (&Method::GET, ["stats"]) => match query_value(query, "vehicle_id") {
            None => Reply::ok(serde_json::to_value(st.counters.snapshot()).unwrap_or(Value::Null)),
            Some(id) => match st.fleet.vehicle_index(id).and_then(|i| st.runtime.get(i)) {
                Some(rt) => Reply::ok(json!({
                    "vehicleId": id,
                    "requests": rt.requests.load(Ordering::Relaxed),
                    "dataCalls": rt.data_calls.load(Ordering::Relaxed),
                })),
                None => Reply::error(&Failure::PathNotFound, request_id),
            },
        },
        (&Method::POST, ["stats", "reset"]) => {
            st.reset_stats();
            Reply::ok(json!({"status": "success"}))
        }
        _ => Reply::error(&Failure::PathNotFound, request_id),
    }
}
