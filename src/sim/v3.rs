//! The seeded fleet served as Smartcar API v3 with API Authentication, on the same port as v2.0.
//!
//! - `POST /oauth2/token` (form or JSON body): `grant_type=client_credentials` with the simulator's
//!   client id and secret gives `{access_token, token_type, expires_in}` lasting `token_ttl_s`;
//!   400 `invalid_request` without `grant_type`, 401 `invalid_client` on a wrong id or secret.
//! - `GET /v3/connections`: `page[number]` (from 1), `page[size]` (default 10, capped at 100),
//!   `filter[userId]`, `filter[vehicleId]`, `filter[vehicle.mode]` and `sc-user-id` as a filter;
//!   newest connection first; `meta{pageNumber,pageSize,totalCount}` and absolute `links`.
//! - `GET /v3/vehicles/{id}` (`data`-wrapped), `GET /v3/vehicles/{id}/signals` (`data: [...]`) and
//!   `/signals/{code}` (the bare signal, as the docs show it).
//!
//! `revoke_first_token_after` revokes the first application token on its Nth use, as a secret
//! rotated mid-sweep would, while requests already accepted with it still answer.
//!
//! Checked in this order: app token (401), app bucket (429 `RATE_LIMIT:SMARTCAR_API`), `sc-user-id`
//! on signals (400 `VALIDATION:PARAMETER`), vehicle (404), owner (403 `PERMISSION`), the connection's
//! own authentication (401), fault, latency, then for signals the hourly per-vehicle limit and the
//! situation's request-level errors. Errors are JSON:API `{"errors": [...]}` bodies.
//!
//! How each situation looks in v3 (the v2.0 form is in [`Situation::summary`]):
//!
//! | situation | v3 |
//! |---|---|
//! | virtual-key-missing | `connectivitystatus-isdigitalkeypaired` false; data signals ERROR `CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED` |
//! | virtual-key-exempt | `isdigitalkeypaired` false; data SUCCESS with an older `oemUpdatedAt` |
//! | location-permission-missing | `location-preciselocation` ERROR `PERMISSION`; the connection still lists `read_location`; `vehicleuseraccount-permissions` lacks `vehicle_location` |
//! | scope-missing | the connection lacks `read_odometer`; `odometer-traveleddistance` ERROR `PERMISSION` |
//! | token-expired | v3 has no per-user token: the connection's authentication fails, so every call for the vehicle is a request-level 401 `AUTHENTICATION` |
//! | oem-authentication-failed | data and OEM account signals ERROR `CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED` |
//! | subscription-lapsed | data and OEM account signals ERROR `CONNECTED_SERVICES_ACCOUNT:SUBSCRIPTION` |
//! | vehicle-asleep | `connectivitystatus-isasleep` true; data ERROR `VEHICLE_STATE:ASLEEP` |
//! | vehicle-unreachable | `connectivitystatus-isonline` false; data ERROR `VEHICLE_STATE:UNREACHABLE` |
//! | stale-data | SUCCESS with `oemUpdatedAt` days old |
//! | rate-limited | signals: request-level 429 `RATE_LIMIT:VEHICLE`, `Retry-After` 1800 |
//! | quota-exhausted | signals: request-level 430 `BILLING:VEHICLE_REQUEST_LIMIT` |
//! | signals-not-subscribed | listed, `/v3/vehicles/{id}` answers, but `/signals` is a request-level 404 `RESOURCE_NOT_FOUND:PATH` |
//!
//! The VIN and the key pairing are Smartcar's own records and answer in every situation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api_error::Failure;
use super::catalog::Powertrain;
use super::fleet::{Fleet, SimVehicle, Situation};
use super::routes::{
    GRANTED, HTML_BAD_GATEWAY, SITUATION_RETRY_AFTER_S, SLOW_FAULT, SimState, TESLA_GRANTED,
    TESLA_SCOPES,
};
use super::stats::{EndpointKind, FaultKind};

/// Most connections one page holds, whatever `page[size]` asks.
const MAX_PAGE_SIZE: usize = 100;
const DEFAULT_PAGE_SIZE: usize = 10;

/// Counts of what happened on the v3 side, for tests and `GET /_sim/v3/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V3Stats {
    /// Every `POST /oauth2/token`.
    pub token_requests: u64,
    pub tokens_issued: u64,
    /// Token requests answered 400 or 401.
    pub token_refusals: u64,
    /// v3 calls refused 401 because the app token was missing, unknown, expired or revoked.
    pub unauthorized: u64,
    /// Signals calls refused 400 for lack of `sc-user-id`.
    pub missing_user_id: u64,
    /// Signals calls that reached a vehicle (list or single).
    pub signals_calls: u64,
}

#[derive(Debug, Default)]
struct Counters {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    token_refusals: AtomicU64,
    unauthorized: AtomicU64,
    missing_user_id: AtomicU64,
    signals_calls: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Tokens issued and their expiry, plus the counters.
#[derive(Debug, Default)]
pub(crate) struct V3State {
    tokens: Mutex<HashMap<String, Instant>>,
    /// The first token issued and how often it was accepted, for `revoke_first_token_after`.
    first: Mutex<Option<(String, u64)>>,
    counters: Counters,
}

impl V3State {
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        match self.tokens.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn issue(&self, token: String, ttl: Duration) {
        let now = Instant::now();
        let mut tokens = self.tokens();
        // Forget expired tokens so a long run does not grow the table without end.
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(token.clone(), now.checked_add(ttl).unwrap_or(now));
        drop(tokens);
        let mut first = match self.first.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if first.is_none() {
            *first = Some((token, 0));
        }
    }

    /// Counts a use of an accepted token; the first token is revoked on its `revoke_after`-th use.
    fn accepted(&self, token: &str, revoke_after: u64) {
        if revoke_after == 0 {
            return;
        }
        let mut first = match self.first.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((first_token, uses)) = first.as_mut()
            && first_token == token
        {
            *uses += 1;
            if *uses == revoke_after {
                self.tokens().remove(token);
            }
        }
    }

    fn is_valid(&self, token: &str) -> bool {
        self.tokens()
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    }

    /// Invalidates every application token, as a rotated and deleted client secret would.
    pub(crate) fn revoke_all(&self) {
        self.tokens().clear();
    }

    pub(crate) fn stats(&self) -> V3Stats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        V3Stats {
            token_requests: get(&c.token_requests),
            tokens_issued: get(&c.tokens_issued),
            token_refusals: get(&c.token_refusals),
            unauthorized: get(&c.unauthorized),
            missing_user_id: get(&c.missing_user_id),
            signals_calls: get(&c.signals_calls),
        }
    }

    pub(crate) fn reset(&self) {
        let c = &self.counters;
        for a in [
            &c.token_requests,
            &c.tokens_issued,
            &c.token_refusals,
            &c.unauthorized,
            &c.missing_user_id,
            &c.signals_calls,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

fn respond(status: u16, body: Vec<u8>, content_type: &'static str, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("sc-request-id", v);
    }
    response
}

fn json_response(status: u16, body: &Value, request_id: &str) -> Response {
    respond(
        status,
        serde_json::to_vec(body).unwrap_or_default(),
        "application/json",
        request_id,
    )
}

/// The v2.0 error as a JSON:API error document, texts and links unchanged.
fn error_response(failure: &Failure, request_id: &str) -> Response {
    let flat = failure.body(request_id);
    let field = |key: &str| flat.get(key).cloned().unwrap_or(Value::Null);
    let title = match (field("type"), field("code")) {
        (Value::String(t), Value::String(c)) => format!("{t}:{c}"),
        (Value::String(t), _) => t,
        _ => String::new(),
    };
    let body = json!({
        "errors": [{
            "status": failure.status().to_string(),
            "type": field("type"),
            "code": field("code"),
            "title": title,
            "detail": field("description"),
            "resolution": field("resolution"),
            "suggestedUserMessage": field("suggestedUserMessage"),
            "links": {"about": field("docURL")},
        }],
        "meta": {"requestId": request_id},
    });
    let mut response = json_response(failure.status(), &body, request_id);
    if let Some(s) = failure.retry_after_s()
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn oauth_error(status: u16, error: &str, description: &str, request_id: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
        request_id,
    )
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

/// The token request's fields, from a form body or a JSON one (the docs show both).
fn token_fields(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    if is_json {
        return serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|o| {
                o.into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
    }
    form_urlencoded::parse(body).into_owned().collect()
}

pub(super) fn token(
    st: &SimState,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> Response {
    if method != Method::POST {
        return error_response(&Failure::PathNotFound, request_id);
    }
    let c = &st.v3.counters;
    bump(&c.token_requests);
    let fields = token_fields(headers, body);
    let field = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let refuse = |status, error, description: &str| {
        bump(&c.token_refusals);
        oauth_error(status, error, description, request_id)
    };
    match field("grant_type") {
        None => return refuse(400, "invalid_request", "grant_type is required."),
        Some("client_credentials") => {}
        Some(_) => {
            return refuse(
                400,
                "unsupported_grant_type",
                "Only client_credentials is supported.",
            );
        }
    }
    let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return refuse(
            400,
            "invalid_request",
            "client_id and client_secret are required.",
        );
    };
    if id != st.config.client_id || secret != st.config.client_secret {
        return refuse(401, "invalid_client", "Client authentication failed.");
    }
    let access_token = format!("sim-app-{}", st.dice.request_id());
    st.v3.issue(
        access_token.clone(),
        Duration::from_secs(st.config.token_ttl_s),
    );
    bump(&c.tokens_issued);
    json_response(
        200,
        &json!({"access_token": access_token, "token_type": "Bearer", "expires_in": st.config.token_ttl_s}),
        request_id,
    )
}

// ---------------------------------------------------------------------------------------------
// Vehicle API

fn app_token_valid(st: &SimState, headers: &HeaderMap) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token.filter(|t| st.v3.is_valid(t)) else {
        return false;
    };
    st.v3.accepted(token, st.config.revoke_first_token_after);
    true
}

fn user_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("sc-user-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|u| !u.is_empty())
}

/// `/v3/...` after the version segment.
pub(super) async fn api(
    st: &SimState,
    method: &Method,
    segments: &[&str],
    headers: &HeaderMap,
    query: &[(String, String)],
    request_id: &str,
) -> Response {
    let get = method == Method::GET;
    let (kind, vehicle, signal) = match segments {
        ["connections"] if get => (EndpointKind::Management, None, None),
        ["vehicles", id] if get => (EndpointKind::Attributes, Some(*id), None),
        ["vehicles", id, "signals"] if get => (EndpointKind::Data, Some(*id), Some(None)),
        ["vehicles", id, "signals", code] if get => {
            (EndpointKind::Data, Some(*id), Some(Some(*code)))
        }
        _ => {
            st.counters.request(EndpointKind::NotFound);
            return error_response(&Failure::PathNotFound, request_id);
        }
    };
    st.counters.request(kind);
    if !app_token_valid(st, headers) {
        bump(&st.v3.counters.unauthorized);
        // A refusal travels as long as an answer does, so it may arrive after answers to requests
        // accepted before it.
        if vehicle.is_some() && st.config.latency != super::Latency::default() {
            tokio::time::sleep(st.config.latency.draw(st.dice.unit(), st.dice.unit())).await;
        }
        return error_response(&Failure::Authentication, request_id);
    }
    let Some(vehicle_id) = vehicle else {
        return connections(st, headers, query, request_id);
    };
    if let Some(bucket) = &st.app_bucket
        && let Err(retry_after_s) = bucket.try_acquire()
    {
        st.counters.rate_limited_app();
        return error_response(&Failure::AppRateLimit { retry_after_s }, request_id);
    }
    let user = user_header(headers);
    if signal.is_some() && user.is_none() {
        bump(&st.v3.counters.missing_user_id);
        let f = Failure::Validation("The sc-user-id header is required.".into());
        return error_response(&f, request_id);
    }
    let Some((idx, v)) = st
        .fleet
        .vehicle_index(vehicle_id)
        .and_then(|i| Some((i, st.fleet.vehicles.get(i)?)))
    else {
        return error_response(&Failure::PathNotFound, request_id);
    };
    if user.is_some_and(|u| u != v.user_id) {
        return error_response(&Failure::Permission, request_id);
    }
    if let Some(rt) = st.runtime.get(idx) {
        rt.requests.fetch_add(1, Ordering::Relaxed);
    }
    if v.situation == Situation::TokenExpired {
        return error_response(&Failure::Authentication, request_id);
    }
    if signal.is_some() && v.situation == Situation::SignalsNotSubscribed {
        return error_response(&Failure::PathNotFound, request_id);
    }
    match signal {
        None => json_response(200, &vehicle_document(v), request_id),
        Some(code) => signals(st, idx, v, code, request_id).await,
    }
}

fn powertrain_type(p: Powertrain) -> &'static str {
    match p {
        Powertrain::Electric => "BEV",
        Powertrain::PlugInHybrid => "PHEV",
        Powertrain::Combustion => "ICE",
    }
}

fn vehicle_document(v: &SimVehicle) -> Value {
    json!({"data": {
        "id": v.id,
        "type": "vehicle",
        "attributes": {
            "make": v.make,
            "model": v.model,
            "year": v.year,
            "powertrainType": powertrain_type(v.powertrain),
            "mode": "live",
        },
        "links": {"self": format!("/v3/vehicles/{}", v.id)},
    }})
}

/// Injected fault and latency, as for v2.0 data calls. `Some` answers instead of the data.
async fn fault_and_latency(
    st: &SimState,
    request_id: &str,
) -> (Option<FaultKind>, Option<Response>) {
    let fault = (st.config.fault_rate > 0.0 && st.dice.unit() < st.config.fault_rate)
        .then(|| FaultKind::from_unit(st.dice.unit()));
    if let Some(f) = fault {
        st.counters.fault(f);
    }
    let mut delay = Duration::ZERO;
    if st.config.latency != super::Latency::default() {
        delay = st.config.latency.draw(st.dice.unit(), st.dice.unit());
    }
    if fault == Some(FaultKind::Slow) {
        delay += SLOW_FAULT;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let early = match fault {
        Some(FaultKind::ServerInternal) => {
            Some(error_response(&Failure::ServerInternal, request_id))
        }
        Some(FaultKind::UpstreamUnknown) => {
            Some(error_response(&Failure::UpstreamUnknown, request_id))
        }
        Some(FaultKind::HtmlBadGateway) => Some(respond(
            502,
            HTML_BAD_GATEWAY.as_bytes().to_vec(),
            "text/html",
            request_id,
        )),
        _ => None,
    };
    (fault, early)
}

async fn signals(
    st: &SimState,
    idx: usize,
    v: &SimVehicle,
    code: Option<&str>,
    request_id: &str,
) -> Response {
    let (fault, early) = fault_and_latency(st, request_id).await;
    if let Some(response) = early {
        return response;
    }
    bump(&st.v3.counters.signals_calls);
    // One signals call is one vehicle call, however many signals it returns.
    if let Some(rt) = st.runtime.get(idx) {
        rt.data_calls.fetch_add(1, Ordering::Relaxed);
        if let Err(retry_after_s) = rt
            .window
            .try_call(st.config.vehicle_calls_per_hour, Instant::now())
        {
            st.counters.rate_limited_vehicle();
            return error_response(&Failure::VehicleRateLimit { retry_after_s }, request_id);
        }
    }
    match v.situation {
        Situation::RateLimited => {
            st.counters.rate_limited_vehicle();
            let f = Failure::VehicleRateLimit {
                retry_after_s: SITUATION_RETRY_AFTER_S,
            };
            return error_response(&f, request_id);
        }
        Situation::QuotaExhausted => {
            return error_response(&Failure::VehicleRequestLimit, request_id);
        }
        _ => {}
    }
    let now = jiff::Timestamp::now();
    let all = vehicle_signals(v, now);
    let body = match code {
        None => {
            let n = all.len();
            json!({
                "data": all,
                "meta": {"pageNumber": 1, "pageSize": n, "totalCount": n},
                "links": {"self": format!("/v3/vehicles/{}/signals", v.id), "next": null},
            })
        }
        Some(code) => match all
            .into_iter()
            .find(|s| s.get("attributes").and_then(|a| a.get("code")) == Some(&json!(code)))
        {
            Some(signal) => signal,
            None => return error_response(&Failure::PathNotFound, request_id),
        },
    };
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    if fault == Some(FaultKind::TruncatedJson) {
        bytes.truncate((bytes.len() / 2).max(1));
    }
    respond(200, bytes, "application/json", request_id)
}

/// A signal's outcome before it is written as JSON.
enum Outcome {
    Value(Value),
    Error(&'static str, Option<&'static str>),
}

const CSA: &str = "CONNECTED_SERVICES_ACCOUNT";

/// What the account-level situations do to every signal read from the OEM account.
fn account_error(s: Situation) -> Option<Outcome> {
    match s {
        Situation::OemAuthenticationFailed => {
            Some(Outcome::Error(CSA, Some("AUTHENTICATION_FAILED")))
        }
        Situation::SubscriptionLapsed => Some(Outcome::Error(CSA, Some("SUBSCRIPTION"))),
        _ => None,
    }
}

/// What the situation does to a data signal (read from the car).
fn data_error(s: Situation) -> Option<Outcome> {
    match s {
        Situation::VirtualKeyMissing => Some(Outcome::Error(CSA, Some("VIRTUAL_KEY_REQUIRED"))),
        Situation::VehicleAsleep => Some(Outcome::Error("VEHICLE_STATE", Some("ASLEEP"))),
        Situation::VehicleUnreachable => Some(Outcome::Error("VEHICLE_STATE", Some("UNREACHABLE"))),
        other => account_error(other),
    }
}

const NOT_CAPABLE: Outcome = Outcome::Error("COMPATIBILITY", Some("VEHICLE_NOT_CAPABLE"));

/// The Smartcar permissions of a vehicle's connection.
pub(super) fn connection_permissions(v: &SimVehicle) -> Vec<&'static str> {
    GRANTED
        .iter()
        .chain(if v.is_tesla() { TESLA_GRANTED } else { &[] })
        .copied()
        .filter(|p| !(v.situation == Situation::ScopeMissing && *p == "read_odometer"))
        .collect()
}

/// Every signal the vehicle reports, in its situation, at `now`.
fn vehicle_signals(v: &SimVehicle, now: jiff::Timestamp) -> Vec<Value> {
    let s = v.situation;
    let tesla = v.is_tesla();
    let data = |ok: Value| data_error(s).unwrap_or(Outcome::Value(ok));
    let account = |ok: Value| account_error(s).unwrap_or(Outcome::Value(ok));
    let mut list: Vec<(&str, &str, &str, Outcome)> = vec![
        (
            "vehicleidentification-vin",
            "Vin",
            "VehicleIdentification",
            Outcome::Value(json!({"value": v.vin})),
        ),
        (
            "odometer-traveleddistance",
            "TraveledDistance",
            "Odometer",
            if s == Situation::ScopeMissing {
                Outcome::Error("PERMISSION", None)
            } else {
                data(json!({"unit": "kilometers", "value": (v.odometer_km * 10.0).round() / 10.0}))
            },
        ),
        (
            "location-preciselocation",
            "PreciseLocation",
            "Location",
            if s == Situation::LocationPermissionMissing {
                Outcome::Error("PERMISSION", None)
            } else {
                data(
                    json!({"latitude": v.latitude, "longitude": v.longitude, "locationType": "CURRENT"}),
                )
            },
        ),
        (
            "location-isathome",
            "IsAtHome",
            "Location",
            match v.at_home {
                Some(home) if tesla => data(json!({"value": home})),
                _ => NOT_CAPABLE,
            },
        ),
        (
            "connectivitystatus-isonline",
            "IsOnline",
            "ConnectivityStatus",
            account(json!({"value": s != Situation::VehicleUnreachable})),
        ),
        (
            "connectivitystatus-isasleep",
            "IsAsleep",
            "ConnectivityStatus",
            account(json!({"value": s == Situation::VehicleAsleep})),
        ),
        (
            "connectivitystatus-isdigitalkeypaired",
            "IsDigitalKeyPaired",
            "ConnectivityStatus",
            if tesla {
                let paired = !matches!(
                    s,
                    Situation::VirtualKeyMissing | Situation::VirtualKeyExempt
                );
                Outcome::Value(json!({"value": paired}))
            } else {
                NOT_CAPABLE
            },
        ),
        (
            "vehicleuseraccount-permissions",
            "Permissions",
            "VehicleUserAccount",
            if tesla {
                let scopes: Vec<&str> = TESLA_SCOPES
                    .iter()
                    .copied()
                    .filter(|scope| {
                        !(s == Situation::LocationPermissionMissing && *scope == "vehicle_location")
                    })
                    .collect();
                account(json!({"values": scopes}))
            } else {
                NOT_CAPABLE
            },
        ),
    ];
    if v.powertrain.has_battery() {
        list.push((
            "tractionbattery-stateofcharge",
            "StateOfCharge",
            "TractionBattery",
            data(json!({"unit": "percent", "value": (v.battery_fraction * 100.0).round()})),
        ));
    }
    let now_ms = now.as_millisecond();
    let recorded_ms = now_ms.saturating_sub(v.data_age_s.saturating_mul(1000));
    list.into_iter()
        .map(|(code, name, group, outcome)| {
            let (status, body, meta) = match outcome {
                Outcome::Value(body) => (
                    json!({"value": "SUCCESS"}),
                    body,
                    json!({"retrievedAt": now_ms, "oemUpdatedAt": recorded_ms}),
                ),
                Outcome::Error(kind, code) => (
                    json!({"value": "ERROR", "error": {"type": kind, "code": code}}),
                    Value::Null,
                    json!({"retrievedAt": now_ms}),
                ),
            };
            json!({
                "id": code,
                "type": "signal",
                "attributes": {"code": code, "name": name, "group": group, "status": status, "body": body},
                "meta": meta,
                "links": {
                    "self": format!("/v3/vehicles/{}/signals/{code}", v.id),
                    "vehicle": format!("/v3/vehicles/{}", v.id),
                },
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Connections

/// A stable connection id per (seed, vehicle): two FNV-1a lanes shaped like a UUID.
fn connection_id(seed: u64, vehicle_id: &str) -> String {
    let lane = |salt: u64| {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed ^ salt;
        for b in vehicle_id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    let (a, b) = (lane(0x636f_6e6e), lane(0x7633_7633));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

fn connection_resource(st: &SimState, v: &SimVehicle) -> Value {
    let id = connection_id(st.fleet.seed(), &v.id);
    let created = v.connected_at_text();
    json!({
        "id": id,
        "type": "connection",
        "attributes": {
            "permissions": connection_permissions(v),
            "vehicle": {
                "make": v.make,
                "model": v.model,
                "year": v.year,
                "mode": "live",
                "powertrainType": powertrain_type(v.powertrain),
            },
        },
        "relationships": {
            "vehicle": {
                "data": {"id": v.id, "type": "vehicle"},
                "links": {"related": format!("{}/v3/vehicles/{}", st.origin, v.id)},
            },
            "user": {"data": {"id": v.user_id, "type": "user"}},
        },
        "meta": {"createdAt": created, "updatedAt": created},
        "links": {"self": format!("{}/v3/connections/{id}", st.origin)},
    })
}

fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A positive integer query parameter, or the validation error naming it.
fn positive(query: &[(String, String)], key: &str, default: usize) -> Result<usize, Failure> {
    match query_value(query, key) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                Failure::Validation(format!(
                    "Query parameter `{key}` must be an integer of at least 1, got {raw:?}."
                ))
            }),
    }
}

/// The indexes of the vehicles whose connections match, newest first.
fn selected(fleet: &Fleet, user: Option<&str>, vehicle: Option<&str>, live: bool) -> Vec<usize> {
    if !live {
        return Vec::new();
    }
    match vehicle {
        Some(id) => fleet
            .vehicle_index(id)
            .into_iter()
            .filter(|i| {
                fleet
                    .vehicles
                    .get(*i)
                    .is_some_and(|v| user.is_none_or(|u| v.user_id == u))
            })
            .collect(),
        None => fleet
            .newest_first()
            .iter()
            .copied()
            .filter(|i| user.is_none_or(|u| fleet.vehicles.get(*i).is_some_and(|v| v.user_id == u)))
            .collect(),
    }
}

fn connections(
    st: &SimState,
    headers: &HeaderMap,
    query: &[(String, String)],
    request_id: &str,
) -> Response {
    let (number, size) = match (
        positive(query, "page[number]", 1),
        positive(query, "page[size]", DEFAULT_PAGE_SIZE),
    ) {
        (Ok(n), Ok(s)) => (n, s.min(MAX_PAGE_SIZE)),
        (Err(f), _) | (_, Err(f)) => return error_response(&f, request_id),
    };
    let user = query_value(query, "filter[userId]").or_else(|| user_header(headers));
    let vehicle = query_value(query, "filter[vehicleId]");
    let live = query_value(query, "filter[vehicle.mode]").is_none_or(|m| m == "live");
    let all = selected(&st.fleet, user, vehicle, live);
    let total = all.len();
    let last = total.div_ceil(size).max(1);
    let data: Vec<Value> = all
        .iter()
        .skip((number - 1).saturating_mul(size))
        .take(size)
        .filter_map(|i| st.fleet.vehicles.get(*i))
        .map(|v| connection_resource(st, v))
        .collect();
    let link = |page: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("page[number]", &page.to_string());
        q.append_pair("page[size]", &size.to_string());
        if let Some(u) = user {
            q.append_pair("filter[userId]", u);
        }
        if let Some(v) = vehicle {
            q.append_pair("filter[vehicleId]", v);
        }
        Value::String(format!("{}/v3/connections?{}", st.origin, q.finish()))
    };
    let body = json!({
        "data": data,
        "meta": {
            "pageNumber": number,
            "pageSize": size,
            "totalCount": total,
            "orderBy": "createdAt",
            "orderDirection": "desc",
        },
        "links": {
            "self": link(number),
            "first": link(1),
            "prev": if number > 1 { link(number - 1) } else { Value::Null },
            "next": if number < last { link(number + 1) } else { Value::Null },
            "last": link(last),
        },
    });
    json_response(200, &body, request_id)
}

/// `GET /_sim/v3/stats`.
pub(super) fn stats_response(st: &SimState, request_id: &str) -> Response {
    json_response(
        200,
        &serde_json::to_value(st.v3.stats()).unwrap_or(Value::Null),
        request_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal<'a>(signals: &'a [Value], code: &str) -> &'a Value {
        signals
            .iter()
            .find(|s| s["attributes"]["code"] == code)
            .unwrap_or_else(|| panic!("{code} missing"))
    }

    #[test]
    fn connection_ids_are_stable_per_seed_and_distinct_per_vehicle() {
        assert_eq!(connection_id(7, "a"), connection_id(7, "a"));
        assert_ne!(connection_id(7, "a"), connection_id(7, "b"));
        assert_ne!(connection_id(7, "a"), connection_id(8, "a"));
        assert_eq!(connection_id(7, "a").len(), 36);
    }

    #[test]
    fn every_situation_gives_a_full_signal_list_with_a_status_each() {
        let fleet = Fleet::generate(600, 7);
        let now = jiff::Timestamp::now();
        for s in Situation::ALL {
            let Some(v) = fleet.vehicles.iter().find(|v| v.situation == s) else {
                continue;
            };
            let list = vehicle_signals(v, now);
            assert!(list.len() >= 8, "{s}");
            for item in &list {
                let status = &item["attributes"]["status"]["value"];
                assert!(status == "SUCCESS" || status == "ERROR", "{s}: {item}");
            }
            assert_eq!(
                signal(&list, "vehicleidentification-vin")["attributes"]["body"]["value"],
                v.vin.as_str()
            );
        }
    }
}
