//! The HTTP client for the Smartcar Vehicle and Management APIs: requests, paging, meta, typed errors.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use super::error::{
    ApiError, BodyProblem, PagingError, TransportKind, error_from_json, parse_error_body,
    quote_untrusted,
};
use super::model::{Connection, DataKind, Meta, TeslaUserAccess, VehicleAttributes};
use super::observation::{Answer, Observation, Probe};
use super::retry_after::parse_retry_after;
use super::{Origins, Secret};

/// Timeouts and limits. Vehicle calls may wake the car: Smartcar's SDKs wait up to 310 s.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    /// Calls that contact the vehicle (data, batch, attributes, Tesla endpoints).
    pub vehicle_timeout: Duration,
    /// Calls that do not (Management API, `/permissions`, `/vehicles`, `/user`).
    pub fast_timeout: Duration,
    /// Bodies larger than this are refused as [`BodyProblem::TooLarge`].
    pub max_body_bytes: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(10),
            vehicle_timeout: Duration::from_secs(310),
            fast_timeout: Duration::from_secs(30),
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The client could not be built (TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientBuildError(String);

/// One HTTP exchange that arrived: status, headers we use, body.
pub(crate) struct Exchange {
    pub(crate) meta: Meta,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// A cheap-to-clone Smartcar client (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    origins: Origins,
    settings: ClientSettings,
}

/// One page of the Management API's connection list.
#[derive(Debug, Clone)]
pub struct ConnectionsPage {
    pub connections: Vec<Connection>,
    pub cursor: Option<String>,
}

/// Follows the Management API's cursors and stops a listing that would never end: a cursor seen
/// before (A, B, A) or more rows than the cap.
#[derive(Debug)]
pub struct CursorTrail {
    seen: HashSet<String>,
    listed: usize,
    max_connections: usize,
}

impl CursorTrail {
    pub fn new(max_connections: usize) -> Self {
        CursorTrail {
            seen: HashSet::new(),
            listed: 0,
            max_connections,
        }
    }

    /// Counts a page in; the cursor to ask for next, `None` when the listing is complete.
    pub fn follow(&mut self, page: &ConnectionsPage) -> Result<Option<String>, PagingError> {
        self.listed = self.listed.saturating_add(page.connections.len());
        if self.listed > self.max_connections {
            return Err(PagingError::TooMany {
                max: self.max_connections,
            });
        }
        match &page.cursor {
            // An empty page that still points further has nothing more to give.
            Some(_) if page.connections.is_empty() => Ok(None),
            Some(next) if !self.seen.insert(next.clone()) => {
                Err(PagingError::repeated_cursor(next))
            }
            next => Ok(next.clone()),
        }
    }
}

/// A whole listing failed: one request, or the paging itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Paging(#[from] PagingError),
}

impl ListingError {
    /// The failed request, when a request failed.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ListingError::Api(e) => Some(e),
            ListingError::Paging(_) => None,
        }
    }
}

impl Client {
    pub fn new(origins: Origins, settings: ClientSettings) -> Result<Client, ClientBuildError> {
        // Several clients may race to install it; the first one wins and that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("vtriage/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            // A redirect would carry the bearer token's request to another host and turn its
            // answer into a diagnosis: a 3xx is reported as it is instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(Client {
            http,
            origins,
            settings,
        })
    }

    pub fn origins(&self) -> &Origins {
        &self.origins
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Exchange, ApiError> {
        exchange(request, timeout, self.settings.max_body_bytes).await
    }

    /// Sends a request and reads a JSON success body, or the error it carries.
    async fn json(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> (Meta, Result<Value, ApiError>) {
        json_answer(self.exchange(request, timeout).await)
    }

    fn api_url(&self, path: &str) -> String {
        format!("{}/v2.0{}", self.origins.api, path)
    }

    /// `{api}/v2.0/vehicles/{id}/{tail…}` with the id as exactly one path segment, whatever it
    /// holds (`/`, `?`, `#`, `%`, CR/LF are percent-encoded). `.` and `..` cannot be one segment:
    /// every URL parser on the way would resolve them, so they are refused, not sent.
    fn vehicle_url(&self, vehicle_id: &str, tail: &[&str]) -> Result<url::Url, ApiError> {
        if matches!(vehicle_id, "" | "." | "..") {
            return Err(ApiError::Unsendable {
                message: format!(
                    "vehicle id {} cannot be sent as one URL path segment",
                    quote_untrusted(vehicle_id)
                ),
            });
        }
        let mut path = self.api_url("/vehicles/");
        path.push_str(&path_segment(vehicle_id));
        for segment in tail {
            path.push('/');
            path.push_str(segment);
        }
        url::Url::parse(&path).map_err(|e| ApiError::Unsendable {
            message: format!(
                "the API origin {} does not make a URL: {e}",
                quote_untrusted(&self.origins.api)
            ),
        })
    }

    fn bearer(
        &self,
        method: reqwest::Method,
        url: impl reqwest::IntoUrl,
        token: &Secret,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(token.expose())
            .header("sc-unit-system", "metric")
    }

    /// One page of `GET /v2.0/management/connections` (Basic `default:<AMT>`).
    pub async fn connections_page(
        &self,
        amt: &Secret,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ConnectionsPage, ApiError> {
        self.connections_page_of(amt, cursor, limit, None, None)
            .await
    }

    /// A page of the connections of one user or one vehicle (the Management API's `user_id` and
    /// `vehicle_id` filters); every connection when both are `None`.
    pub async fn connections_page_of(
        &self,
        amt: &Secret,
        cursor: Option<&str>,
        limit: u32,
        user_id: Option<&str>,
        vehicle_id: Option<&str>,
    ) -> Result<ConnectionsPage, ApiError> {
        let url = format!("{}/v2.0/management/connections", self.origins.management);
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("default:{}", amt.expose()));
        let mut query: Vec<(&str, String)> = vec![("limit", limit.min(100).to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        if let Some(u) = user_id {
            query.push(("user_id", u.to_string()));
        }
        if let Some(v) = vehicle_id {
            query.push(("vehicle_id", v.to_string()));
        }
        let request = self
            .http
            .get(url)
            .header("authorization", format!("Basic {basic}"))
            .query(&query);
        let (meta, body) = self.json(request, self.settings.fast_timeout).await;
        let body = body?;
        let connections = body
            .get("connections")
            .cloned()
            .and_then(|c| serde_json::from_value::<Vec<Connection>>(c).ok())
            .ok_or_else(|| shape_error(&meta, &body))?;
        let cursor = body
            .get("paging")
            .and_then(|p| p.get("cursor"))
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        Ok(ConnectionsPage {
            connections,
            cursor,
        })
    }

    /// Every connection of the application, following cursors until `null`; at most
    /// `max_connections`, and never round a cursor loop.
    pub async fn list_connections(
        &self,
        amt: &Secret,
        max_connections: usize,
    ) -> Result<Vec<Connection>, ListingError> {
        let mut all = Vec::new();
        let mut trail = CursorTrail::new(max_connections);
        let mut cursor: Option<String> = None;
        loop {
            let page = self.connections_page(amt, cursor.as_deref(), 100).await?;
            let next = trail.follow(&page)?;
            all.extend(page.connections);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// The vehicle ids a token can reach (`GET /vehicles`, offset paging).
    pub async fn vehicle_ids(&self, token: &Secret) -> Result<Vec<String>, ApiError> {
        const LIMIT: usize = 50;
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let url = self.api_url("/vehicles");
            let request = self.bearer(reqwest::Method::GET, &url, token).query(&[
                ("limit", LIMIT.to_string()),
                ("offset", ids.len().to_string()),
            ]);
            let (meta, body) = self.json(request, self.settings.fast_timeout).await;
            let body = body?;
            let page: Vec<String> = body
                .get("vehicles")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| shape_error(&meta, &body))?;
            let n = page.len();
            let before = ids.len();
            for id in page {
                if seen.insert(id.clone()) {
                    ids.push(id);
                }
            }
            // A server that ignores `offset` repeats its first page: stop instead of looping forever.
            if n < LIMIT || ids.len() == before {
                return Ok(ids);
            }
        }
    }

    /// The user id behind a token (`GET /user`).
    pub async fn user_id(&self, token: &Secret) -> Result<String, ApiError> {
        let url = self.api_url("/user");
        let (meta, body) = self
            .json(
                self.bearer(reqwest::Method::GET, &url, token),
                self.settings.fast_timeout,
            )
            .await;
        let body = body?;
        body.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| shape_error(&meta, &body))
    }

    /// Every permission granted to the app for a vehicle, following offset paging.
    async fn permissions(
        &self,
        token: &Secret,
        vehicle_id: &str,
    ) -> (Meta, Result<Vec<String>, ApiError>) {
        const LIMIT: usize = 25;
        let mut all = Vec::new();
        let mut first_meta: Option<Meta> = None;
        let url = match self.vehicle_url(vehicle_id, &["permissions"]) {
            Ok(url) => url,
            Err(e) => return (Meta::default(), Err(e)),
        };
        loop {
            let request = self
                .bearer(reqwest::Method::GET, url.clone(), token)
                .query(&[
                    ("limit", LIMIT.to_string()),
                    ("offset", all.len().to_string()),
                ]);
            let (meta, body) = self.json(request, self.settings.fast_timeout).await;
            let meta_out = first_meta.clone().unwrap_or_else(|| meta.clone());
            let body = match body {
                Ok(b) => b,
                Err(e) => return (meta_out, Err(e)),
            };
            let page: Option<Vec<String>> = body
                .get("permissions")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok());
            let Some(page) = page else {
                return (meta_out, Err(shape_error(&meta, &body)));
            };
            first_meta.get_or_insert(meta);
            let n = page.len();
            all.extend(page);
            let total = body
                .get("paging")
                .and_then(|p| p.get("count"))
                .and_then(Value::as_u64)
                .map(|c| c as usize);
            let more = match total {
                Some(total) => all.len() < total && n > 0,
                None => n == LIMIT,
            };
            if !more {
                return (first_meta.unwrap_or(meta_out), Ok(all));
            }
        }
    }

    /// Asks one question of one vehicle and records the answer as an [`Observation`].
    pub async fn probe(&self, token: &Secret, vehicle_id: &str, probe: Probe) -> Observation {
        let endpoint = probe.endpoint(vehicle_id, false);
        if probe == Probe::Permissions {
            let (meta, result) = self.permissions(token, vehicle_id).await;
            return Observation {
                probe,
                endpoint,
                at: jiff::Timestamp::now(),
                meta,
                outcome: result.map(|permissions| Answer::Permissions { permissions }),
            };
        }
        let tail: Vec<&str> = probe.path().split('/').filter(|s| !s.is_empty()).collect();
        let (meta, body) = match self.vehicle_url(vehicle_id, &tail) {
            Ok(url) => {
                self.json(
                    self.bearer(reqwest::Method::GET, url, token),
                    self.settings.vehicle_timeout,
                )
                .await
            }
            Err(e) => (Meta::default(), Err(e)),
        };
        let outcome = body.and_then(|body| {
            answer_from_body(probe, &body).ok_or_else(|| shape_error(&meta, &body))
        });
        Observation {
            probe,
            endpoint,
            at: jiff::Timestamp::now(),
            meta,
            outcome,
        }
    }

    /// Reads several data kinds in one `POST /vehicles/{id}/batch`; one observation per kind.
    pub async fn batch(
        &self,
        token: &Secret,
        vehicle_id: &str,
        kinds: &[DataKind],
    ) -> Vec<Observation> {
        let url = self.vehicle_url(vehicle_id, &["batch"]);
        let endpoint_of = |kind: DataKind| Probe::Data(kind).endpoint(vehicle_id, true);
        let requests: Vec<Value> = kinds
            .iter()
            .map(|k| serde_json::json!({ "path": k.path() }))
            .collect();
        let (meta, body) = match url {
            Ok(url) => {
                let request = self
                    .bearer(reqwest::Method::POST, url, token)
                    .json(&serde_json::json!({ "requests": requests }));
                self.json(request, self.settings.vehicle_timeout).await
            }
            Err(e) => (Meta::default(), Err(e)),
        };
        let at = jiff::Timestamp::now();
        let failed_whole = |err: ApiError| {
            kinds
                .iter()
                .map(|&k| Observation {
                    probe: Probe::Data(k),
                    endpoint: endpoint_of(k),
                    at,
                    meta: meta.clone(),
                    outcome: Err(err.clone()),
                })
                .collect::<Vec<_>>()
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => return failed_whole(e),
        };
        let Some(items) = body.get("responses").and_then(Value::as_array) else {
            return failed_whole(shape_error(&meta, &body));
        };
        kinds
            .iter()
            .map(|&kind| {
                let item = items.iter().find(|item| {
                    item.get("path")
                        .and_then(Value::as_str)
                        .and_then(DataKind::from_path)
                        == Some(kind)
                });
                let (item_meta, outcome) = match item {
                    Some(item) => batch_item(&meta, item),
                    None => (meta.clone(), Err(shape_error(&meta, &body))),
                };
                Observation {
                    probe: Probe::Data(kind),
                    endpoint: endpoint_of(kind),
                    at,
                    meta: item_meta,
                    outcome,
                }
            })
            .collect()
    }
}

/// Percent-encodes every byte but RFC 3986's unreserved ones. Stricter than a URL parser's own
/// path encoding, which silently drops CR/LF and tab and would send a different id.
pub(crate) fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads one batch item: its `code`, `body` and `headers` (header names compared without case).
fn batch_item(top: &Meta, item: &Value) -> (Meta, Result<Answer, ApiError>) {
    let code = item
        .get("code")
        .and_then(Value::as_u64)
        .map(|c| c as u16)
        .unwrap_or(0);
    let headers = item.get("headers").and_then(Value::as_object);
    let header = |name: &str| {
        headers.and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
        })
    };
    let meta = Meta {
        status: code,
        request_id: top.request_id.clone(),
        data_age: header("sc-data-age").and_then(|s| s.parse().ok()),
        fetched_at: header("sc-fetched-at").and_then(|s| s.parse().ok()),
        retry_after_s: header("retry-after").and_then(|s| parse_retry_after(&s)),
        latency_ms: top.latency_ms,
        webhook: None,
    };
    let body = item.get("body").cloned().unwrap_or(Value::Null);
    let outcome = if code == 200 || code == 204 {
        Ok(Answer::Data { body })
    } else {
        match error_from_json(code, &body, top.request_id.as_deref(), meta.retry_after_s) {
            Some(e) => Err(ApiError::Smartcar(Box::new(e))),
            None => Err(ApiError::Body {
                status: code,
                problem: BodyProblem::UnexpectedShape,
                content_type: None,
                request_id: top.request_id.clone(),
                snippet: body.to_string().chars().take(200).collect(),
            }),
        }
    };
    (meta, outcome)
}

/// Turns a success body into the answer for a probe; `None` when the shape is wrong.
pub fn answer_from_body(probe: Probe, body: &Value) -> Option<Answer> {
    match probe {
        Probe::Attributes => serde_json::from_value::<VehicleAttributes>(body.clone())
            .ok()
            .map(Answer::Attributes),
        Probe::Permissions => body
            .get("permissions")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .map(|permissions| Answer::Permissions { permissions }),
        Probe::Data(_) => body
            .is_object()
            .then(|| Answer::Data { body: body.clone() }),
        Probe::VirtualKey => body
            .get("isPaired")
            .and_then(Value::as_bool)
            .map(|is_paired| Answer::VirtualKey { is_paired }),
        Probe::TeslaUserAccess => serde_json::from_value::<TeslaUserAccess>(body.clone())
            .ok()
            .filter(|_| body.is_object())
            .map(Answer::TeslaUserAccess),
        Probe::TeslaAttributes => body.is_object().then(|| Answer::TeslaAttributes {
            at_home: body.get("atHome").and_then(Value::as_bool),
        }),
        // A v3 signals list is read signal by signal (`v3::observe`), never as one answer.
        Probe::Signals | Probe::Connectivity => None,
    }
}

fn shape_error(meta: &Meta, body: &Value) -> ApiError {
    ApiError::Body {
        status: meta.status,
        problem: BodyProblem::UnexpectedShape,
        content_type: Some("application/json".into()),
        request_id: meta.request_id.clone(),
        snippet: body.to_string().chars().take(200).collect(),
    }
}

/// Sends one request and reads what came back: status, the headers the evidence uses, and a body
/// of at most `max_body_bytes`. Redirects are answers, never followed. Both API versions use it.
pub(crate) async fn exchange(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    max_body_bytes: usize,
) -> Result<Exchange, ApiError> {
    let started = Instant::now();
    let mut response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(transport_error)?;
    let headers = response.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut meta = Meta {
        status: response.status().as_u16(),
        request_id: header("sc-request-id"),
        data_age: header("sc-data-age").and_then(|s| s.parse().ok()),
        fetched_at: header("sc-fetched-at").and_then(|s| s.parse().ok()),
        retry_after_s: header("retry-after").and_then(|s| parse_retry_after(&s)),
        latency_ms: 0,
        webhook: None,
    };
    let content_type = header("content-type");
    if (300..400).contains(&meta.status) {
        return Err(ApiError::Redirect {
            status: meta.status,
            location: header("location").map(|l| l.chars().take(300).collect()),
            request_id: meta.request_id,
        });
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max_body_bytes {
                    return Err(ApiError::Body {
                        status: meta.status,
                        problem: BodyProblem::TooLarge,
                        content_type,
                        request_id: meta.request_id,
                        snippet: String::new(),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                // The body was cut off mid-way: keep what arrived as evidence of a truncated answer.
                if e.is_timeout() {
                    return Err(transport_error(e));
                }
                break;
            }
        }
    }
    meta.latency_ms = started.elapsed().as_millis() as u64;
    Ok(Exchange {
        meta,
        content_type,
        body,
    })
}

/// Reads an exchange as a JSON success body, or the error it carries, for both API versions. A
/// success status with an unreadable body is classified like an error body.
pub(crate) fn json_answer(
    exchanged: Result<Exchange, ApiError>,
) -> (Meta, Result<Value, ApiError>) {
    let ex = match exchanged {
        Ok(ex) => ex,
        Err(e) => {
            let meta = Meta {
                status: e.status().unwrap_or(0),
                ..Meta::default()
            };
            return (meta, Err(e));
        }
    };
    let status = ex.meta.status;
    if !(200..300).contains(&status) {
        let err = parse_error_body(
            status,
            ex.content_type.as_deref(),
            ex.meta.request_id.as_deref(),
            ex.meta.retry_after_s,
            &ex.body,
        );
        return (ex.meta, Err(err));
    }
    let parsed = match serde_json::from_slice::<Value>(ex.body.trim_ascii()) {
        Ok(v) => Ok(v),
        Err(_) => {
            // A success status with an unreadable body: classify it like an error body would be.
            let problem =
                match parse_error_body(status, ex.content_type.as_deref(), None, None, &ex.body) {
                    ApiError::Body { problem, .. } => problem,
                    _ => BodyProblem::InvalidJson,
                };
            Err(ApiError::Body {
                status,
                problem,
                content_type: ex.content_type.clone(),
                request_id: ex.meta.request_id.clone(),
                snippet: String::from_utf8_lossy(&ex.body)
                    .chars()
                    .take(200)
                    .collect(),
            })
        }
    };
    (ex.meta, parsed)
}

fn transport_error(e: reqwest::Error) -> ApiError {
    // A connect failure (refused, DNS, TLS, connect timeout) sent nothing; any other timeout may
    // have reached Smartcar.
    let kind = if e.is_connect() && e.is_timeout() {
        TransportKind::ConnectTimeout
    } else if e.is_connect() {
        TransportKind::Refused
    } else if e.is_timeout() {
        TransportKind::Timeout
    } else {
        TransportKind::Other
    };
    // reqwest's Display includes the URL, which never carries a token (tokens go in headers).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    ApiError::Transport { kind, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(rows: usize, cursor: Option<&str>) -> ConnectionsPage {
        ConnectionsPage {
            connections: (0..rows)
                .map(|i| Connection {
                    user_id: "u".into(),
                    vehicle_id: format!("v{i}"),
                    connected_at: None,
                    mode: None,
                })
                .collect(),
            cursor: cursor.map(str::to_string),
        }
    }

    #[test]
    fn a_cursor_seen_two_pages_ago_stops_the_listing() {
        let mut trail = CursorTrail::new(1_000);
        assert_eq!(trail.follow(&page(2, Some("A"))), Ok(Some("A".into())));
        assert_eq!(trail.follow(&page(2, Some("B"))), Ok(Some("B".into())));
        let err = trail.follow(&page(2, Some("A"))).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("the Management API repeated cursor \"A\", stopping the listing".into())
        );
    }

    #[test]
    fn a_listing_past_the_cap_stops_and_a_complete_one_ends() {
        let mut trail = CursorTrail::new(5);
        assert_eq!(trail.follow(&page(3, Some("A"))), Ok(Some("A".into())));
        assert_eq!(
            trail.follow(&page(3, Some("B"))),
            Err(PagingError::TooMany { max: 5 })
        );
        let mut trail = CursorTrail::new(5);
        assert_eq!(trail.follow(&page(5, None)), Ok(None));
        assert_eq!(CursorTrail::new(5).follow(&page(0, Some("A"))), Ok(None));
    }

    #[test]
    fn a_hostile_cursor_is_quoted_escaped_and_cut_short() {
        let long = format!("\r\n\u{1b}[2J{}", "x".repeat(500));
        let message = PagingError::repeated_cursor(&long).to_string();
        assert!(!message.chars().any(char::is_control), "{message}");
        assert!(message.len() < 200, "{message}");
    }

    fn client() -> Client {
        Client::new(
            Origins::all("http://127.0.0.1:9"),
            ClientSettings::default(),
        )
        .expect("client")
    }

    #[test]
    fn a_hostile_vehicle_id_stays_one_path_segment() {
        let c = client();
        for (id, path) in [
            ("v1", "/v2.0/vehicles/v1/odometer"),
            (
                "../../management/connections",
                "/v2.0/vehicles/..%2F..%2Fmanagement%2Fconnections/odometer",
            ),
            (
                "x?admin=1#frag",
                "/v2.0/vehicles/x%3Fadmin%3D1%23frag/odometer",
            ),
            (
                "//evil.example",
                "/v2.0/vehicles/%2F%2Fevil.example/odometer",
            ),
            ("%2e%2e", "/v2.0/vehicles/%252e%252e/odometer"),
            (
                "a\r\nHost: evil",
                "/v2.0/vehicles/a%0D%0AHost%3A%20evil/odometer",
            ),
            ("caf\u{e9}", "/v2.0/vehicles/caf%C3%A9/odometer"),
            ("a\\b", "/v2.0/vehicles/a%5Cb/odometer"),
        ] {
            let url = c.vehicle_url(id, &["odometer"]).expect("addressable");
            assert_eq!(url.path(), path, "id {id:?}");
            assert_eq!(url.query(), None, "id {id:?}");
            assert_eq!(url.fragment(), None, "id {id:?}");
            assert_eq!(url.host_str(), Some("127.0.0.1"), "id {id:?}");
        }
    }

    #[test]
    fn path_step_vehicle_ids_are_refused_not_sent() {
        let c = client();
        for id in ["", ".", ".."] {
            let err = c.vehicle_url(id, &["odometer"]).expect_err("refused");
            assert!(matches!(err, ApiError::Unsendable { .. }), "{err:?}");
            assert!(!err.is_retryable());
        }
    }
}
