//! The Smartcar API v3 client with API Authentication: the application token from the client
//! credentials, `/v3/connections`, `/v3/vehicles/{id}` and its signals read with `sc-user-id`.
//!
//! Origins: `{iam}/oauth2/token` and `{api}/v3/...`. The token lives in memory only and is renewed
//! before it expires; concurrent callers share one renewal. A vehicle call's 401 is the vehicle's
//! only when a token check sent after it arrived proves the token good (see `get_json`). Redirects are never followed, so the token goes only where it was meant to.

mod auth;
mod connections;
pub mod observe;
mod signals;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use super::client::ClientSettings;
use super::client::{Exchange, exchange, json_answer};
use super::error::{ApiError, BodyProblem};
use super::model::Meta;
use super::secret::Secret;

pub use auth::{AppCredentials, TokenError};
pub use connections::{
    ConnectionFilter, MAX_CONNECTIONS, PAGE_SIZE, V3Connection, parse_connection,
};
pub use signals::{
    Signal, SignalError, SignalState, SignalStatus, SignalsReport, V3Vehicle, parse_signal,
    parse_signals, parse_vehicle,
};

/// Where the token endpoint and the v3 Vehicle API live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Origins {
    pub iam: String,
    pub api: String,
}

impl V3Origins {
    pub const DEFAULT_IAM: &'static str = "https://iam.smartcar.com";
    pub const DEFAULT_API: &'static str = "https://vehicle.api.smartcar.com";

    /// Defaults overlaid with `SMARTCAR_IAM_ORIGIN` and `SMARTCAR_API_V3_ORIGIN` (the Node and Java
    /// SDKs' name) or `SMARTCAR_VEHICLE_API_V3_ORIGIN` (the Python SDK's).
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        V3Origins {
            iam: var("SMARTCAR_IAM_ORIGIN").unwrap_or_else(|| Self::DEFAULT_IAM.to_string()),
            api: var("SMARTCAR_API_V3_ORIGIN")
                .or_else(|| var("SMARTCAR_VEHICLE_API_V3_ORIGIN"))
                .unwrap_or_else(|| Self::DEFAULT_API.to_string()),
        }
    }

    /// Both at one origin (the simulator serves the token endpoint too).
    pub fn all(origin: &str) -> Self {
        let origin = origin.trim_end_matches('/').to_string();
        V3Origins {
            iam: origin.clone(),
            api: origin,
        }
    }
}

impl Default for V3Origins {
    fn default() -> Self {
        V3Origins {
            iam: Self::DEFAULT_IAM.to_string(),
            api: Self::DEFAULT_API.to_string(),
        }
    }
}

/// The v3 client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum V3BuildError {
    #[error("invalid {which} origin {origin:?}: expected http(s)://host[:port]")]
    Origin { which: &'static str, origin: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Everything a v3 call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V3Error {
    #[error("application token: {0}")]
    Token(#[from] TokenError),
    /// The API answered with an error, or not at all; `meta` is the evidence of the exchange.
    #[error("{error}")]
    Api {
        meta: Box<Meta>,
        error: Box<ApiError>,
    },
    #[error("connections paging: the next link {link:?} leaves {origin}; not followed")]
    ForeignLink { link: String, origin: String },
    #[error("connections paging: more than {cap} connections; stopped")]
    TooManyConnections { cap: usize },
    #[error("vehicle id {id:?} cannot be one path segment")]
    InvalidVehicleId { id: String },
    /// A vehicle call answered 401 and no later request could tell whether the application token or
    /// the vehicle's connection was refused: neither may be blamed.
    #[error(
        "{error}; whether the app token or this vehicle's connection was refused is not known: {why}"
    )]
    TokenUnsettled {
        meta: Box<Meta>,
        error: Box<ApiError>,
        why: String,
    },
}

impl V3Error {
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            V3Error::Api { error, .. } | V3Error::TokenUnsettled { error, .. } => {
                Some(error.as_ref())
            }
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.api_error().and_then(ApiError::status)
    }

    fn shape(meta: Meta, body: &Value) -> V3Error {
        let error = ApiError::Body {
            status: meta.status,
            problem: BodyProblem::UnexpectedShape,
            content_type: Some("application/json".into()),
            request_id: meta.request_id.clone(),
            snippet: body.to_string().chars().take(200).collect(),
        };
        V3Error::Api {
            meta: Box::new(meta),
            error: Box::new(error),
        }
    }
}

struct Auth {
    credentials: AppCredentials,
    slot: tokio::sync::Mutex<auth::TokenSlot>,
    /// The last token check, held while one is in flight so that concurrent 401s share it.
    check: tokio::sync::Mutex<Option<auth::Check>>,
    revoked: auth::RevokedConnections,
    /// The tokens issued lately, newest last, for redacting echoes of them.
    issued: std::sync::Mutex<IssuedTokens>,
}

/// The last few application tokens, so a report redacts a token even just after its renewal.
#[derive(Default)]
struct IssuedTokens {
    generation: u64,
    tokens: std::collections::VecDeque<Secret>,
}

/// How many times one vehicle call renews the token before its 401 is left unsettled.
const MAX_RENEWALS: u32 = 2;

/// How many past application tokens are still redacted (an hour each: a day of them).
const REDACTED_TOKENS: usize = 24;

/// A cheap-to-clone v3 client; clones share the connection pool and the application token.
#[derive(Clone)]
pub struct V3Client {
    http: reqwest::Client,
    origins: V3Origins,
    api_base: Url,
    token_url: Url,
    settings: ClientSettings,
    auth: Arc<Auth>,
}

/// One HTTP exchange that arrived.
fn parse_origin(which: &'static str, origin: &str) -> Result<Url, V3BuildError> {
    let bad = || V3BuildError::Origin {
        which,
        origin: origin.to_string(),
    };
    let url = Url::parse(origin.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad());
    }
    Ok(url)
}

fn with_segments(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

impl V3Client {
    pub fn new(
        origins: V3Origins,
        credentials: AppCredentials,
        settings: ClientSettings,
    ) -> Result<V3Client, V3BuildError> {
        let api_base = parse_origin("API", &origins.api)?;
        let token_url = with_segments(&parse_origin("IAM", &origins.iam)?, &["oauth2", "token"]);
        // Several clients may race to install it; the first one wins and that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("vtriage/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| V3BuildError::Http(e.to_string()))?;
        Ok(V3Client {
            http,
            origins,
            api_base,
            token_url,
            settings,
            auth: Arc::new(Auth {
                credentials,
                slot: tokio::sync::Mutex::new(auth::TokenSlot::default()),
                check: tokio::sync::Mutex::new(None),
                revoked: auth::RevokedConnections::default(),
                issued: std::sync::Mutex::new(IssuedTokens::default()),
            }),
        })
    }

    pub fn origins(&self) -> &V3Origins {
        &self.origins
    }

    /// Every credential this client has sent: the client secret and the application tokens issued
    /// lately, with a generation that changes whenever a token is issued. Only for redaction.
    pub fn credentials_sent(&self) -> (u64, Vec<Secret>) {
        let issued = match self.auth.issued.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut all = vec![self.auth.credentials.client_secret.clone()];
        all.extend(issued.tokens.iter().cloned());
        (issued.generation, all)
    }

    fn remember_issued(&self, token: &Secret) {
        let mut issued = match self.auth.issued.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        issued.generation += 1;
        issued.tokens.push_back(token.clone());
        while issued.tokens.len() > REDACTED_TOKENS {
            issued.tokens.pop_front();
        }
    }

    fn api_url(&self, segments: &[&str]) -> Url {
        with_segments(&self.api_base, segments)
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

    /// Asks the token endpoint for a new application token (form-encoded client credentials).
    async fn request_token(&self) -> Result<(auth::IssuedToken, Instant), (TokenError, Instant)> {
        let credentials = &self.auth.credentials;
        let sent_at = Instant::now();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &credentials.client_id)
            .append_pair("client_secret", credentials.client_secret.expose())
            .finish();
        let request = self
            .http
            .post(self.token_url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form);
        let (_, body) = self.json(request, self.settings.fast_timeout).await;
        let body = body.map_err(|e| (auth::token_error(e, &credentials.client_secret), sent_at))?;
        let token =
            auth::issued_token(&body, &credentials.client_secret).map_err(|e| (e, sent_at))?;
        self.remember_issued(&token.value);
        Ok((token, sent_at))
    }

    /// Renews the token in `slot`, or repeats the token endpoint's recent refusal without asking it
    /// again.
    async fn renew(&self, slot: &mut auth::TokenSlot) -> Result<auth::Lease, TokenError> {
        if let Some(refusal) = slot.recent_refusal(Instant::now()) {
            return Err(refusal);
        }
        match self.request_token().await {
            Ok((token, sent_at)) => Ok(slot.store(token, sent_at)),
            Err((error, sent_at)) => {
                slot.refuse(error.clone(), sent_at);
                Err(error)
            }
        }
    }

    /// The application token, renewed first if it is about to expire. Callers arriving during a
    /// renewal wait for it and share its result.
    async fn lease(&self) -> Result<auth::Lease, TokenError> {
        let mut slot = self.auth.slot.lock().await;
        if let Some(lease) = slot.fresh(Instant::now()) {
            return Ok(lease);
        }
        self.renew(&mut slot).await
    }

    /// A token other than the rejected one: renewed by the first caller to report the rejection,
    /// reused by every later caller reporting the same one.
    async fn lease_after_rejection(&self, rejected: u64) -> Result<auth::Lease, TokenError> {
        let mut slot = self.auth.slot.lock().await;
        if let Some(lease) = slot.replacing(rejected, Instant::now()) {
            return Ok(lease);
        }
        self.renew(&mut slot).await
    }

    /// Gets an application token unless a fresh one is held: a check of the client credentials.
    pub async fn check_credentials(&self) -> Result<(), TokenError> {
        self.lease().await.map(|_| ())
    }

    fn get(&self, url: Url, token: &Secret, user_id: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .header("accept", "application/json");
        if let Some(user) = user_id {
            request = request.header("sc-user-id", user);
        }
        request
    }

    /// A token newer than `generation`, if one was issued since (waiting for a renewal in flight).
    async fn newer_lease(&self, generation: u64) -> Option<auth::Lease> {
        let slot = self.auth.slot.lock().await;
        slot.fresh(Instant::now())
            .filter(|l| l.generation > generation)
    }

    /// Whether the token of `lease` is still good, by one token-only request (a one-row connections
    /// page) sent after `received_at`. Single-flight: callers wait for the check in flight and share
    /// its answer when it was sent after their 401 arrived; otherwise they send the next one.
    async fn token_standing(&self, lease: &auth::Lease, received_at: Instant) -> auth::Standing {
        let mut last = self.auth.check.lock().await;
        if let Some(standing) = last
            .as_ref()
            .and_then(|c| c.settles(lease.generation, received_at))
        {
            return standing.clone();
        }
        let sent_at = Instant::now();
        let request = self.get(self.token_check_url(), &lease.token, None);
        let (_, result) = self.json(request, self.settings.fast_timeout).await;
        let standing = match result {
            Ok(_) => auth::Standing::Good,
            Err(e) if e.status() == Some(401) => auth::Standing::Refused,
            Err(e) => auth::Standing::Unknown(match e.status() {
                Some(status) => format!("the token check answered HTTP {status} {}", e.label()),
                None => format!("the token check got no answer ({})", e.label()),
            }),
        };
        *last = Some(auth::Check {
            generation: lease.generation,
            sent_at,
            standing: standing.clone(),
        });
        standing
    }

    /// A GET with the application token.
    ///
    /// A 401 on a vehicle call is blamed on the vehicle's connection only once the token is proven
    /// good by a request sent after the 401 arrived: a token-only check that succeeds with the same
    /// token. A token renewed meanwhile is tried first; a check refused renews the token and sends the
    /// request again. Without such proof the error says it is unsettled. A 401 on a token-only call
    /// (the connections listing) renews once and is sent again.
    async fn get_json(
        &self,
        url: Url,
        user_id: Option<&str>,
        vehicle_id: Option<&str>,
        timeout: Duration,
    ) -> Result<(Meta, Value), V3Error> {
        let connection =
            vehicle_id.map(|v| (v.to_string(), user_id.unwrap_or_default().to_string()));
        let api = |meta: Meta, error: ApiError| V3Error::Api {
            meta: Box::new(meta),
            error: Box::new(error),
        };
        let mut lease = self.lease().await?;
        let mut renewals = 0;
        loop {
            let (meta, result) = self
                .json(self.get(url.clone(), &lease.token, user_id), timeout)
                .await;
            let error = match result {
                Ok(body) => {
                    if let Some(key) = &connection {
                        self.auth.revoked.forget(key);
                    }
                    return Ok((meta, body));
                }
                Err(e) if e.status() == Some(401) => e,
                Err(e) => return Err(api(meta, e)),
            };
            let received_at = Instant::now();
            let Some(key) = &connection else {
                if renewals == 0 {
                    renewals += 1;
                    lease = self.lease_after_rejection(lease.generation).await?;
                    continue;
                }
                return Err(api(meta, error));
            };
            if self.auth.revoked.is_known(key, received_at) {
                return Err(api(meta, error));
            }
            if renewals < MAX_RENEWALS
                && let Some(newer) = self.newer_lease(lease.generation).await
            {
                renewals += 1;
                lease = newer;
                continue;
            }
            match self.token_standing(&lease, received_at).await {
                auth::Standing::Good => {
                    self.auth.revoked.remember(key.clone(), Instant::now());
                    return Err(api(meta, error));
                }
                auth::Standing::Refused if renewals < MAX_RENEWALS => {
                    renewals += 1;
                    lease = self.lease_after_rejection(lease.generation).await?;
                }
                auth::Standing::Refused => {
                    return Err(V3Error::TokenUnsettled {
                        meta: Box::new(meta),
                        error: Box::new(error),
                        why: format!("the app token was refused again after {renewals} renewals"),
                    });
                }
                auth::Standing::Unknown(why) => {
                    return Err(V3Error::TokenUnsettled {
                        meta: Box::new(meta),
                        error: Box::new(error),
                        why,
                    });
                }
            }
        }
    }

    fn vehicle_url(&self, vehicle_id: &str, tail: &[&str]) -> Result<Url, V3Error> {
        // `.` and `..` would be dropped or climb a level instead of naming a vehicle.
        if matches!(vehicle_id, "" | "." | "..") {
            return Err(V3Error::InvalidVehicleId {
                id: vehicle_id.to_string(),
            });
        }
        // The same one-segment encoding as the v2 client, so both APIs send an id identically.
        let mut url = self.api_url(&["v3", "vehicles"]);
        let mut path = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            super::client::path_segment(vehicle_id)
        );
        for segment in tail {
            path.push('/');
            path.push_str(&super::client::path_segment(segment));
        }
        url.set_path(&path);
        Ok(url)
    }

    /// `GET /v3/vehicles/{id}`; `sc-user-id` is sent when given (the docs do not require it here).
    pub async fn vehicle(
        &self,
        vehicle_id: &str,
        user_id: Option<&str>,
    ) -> Result<V3Vehicle, V3Error> {
        let url = self.vehicle_url(vehicle_id, &[])?;
        let (meta, body) = self
            .get_json(url, user_id, Some(vehicle_id), self.settings.fast_timeout)
            .await?;
        parse_vehicle(&body).ok_or_else(|| V3Error::shape(meta, &body))
    }

    /// `GET /v3/vehicles/{id}/signals` with `sc-user-id`: every signal with its own status.
    pub async fn signals(&self, vehicle_id: &str, user_id: &str) -> Result<SignalsReport, V3Error> {
        let url = self.vehicle_url(vehicle_id, &["signals"])?;
        let (meta, body) = self
            .get_json(
                url,
                Some(user_id),
                Some(vehicle_id),
                self.settings.vehicle_timeout,
            )
            .await?;
        match parse_signals(&body) {
            Some(signals) => Ok(SignalsReport {
                request: meta,
                signals,
            }),
            None => Err(V3Error::shape(meta, &body)),
        }
    }

    /// `GET /v3/vehicles/{id}/signals/{code}` with `sc-user-id`: a report of that one signal.
    pub async fn signal(
        &self,
        vehicle_id: &str,
        user_id: &str,
        code: &str,
    ) -> Result<SignalsReport, V3Error> {
        if matches!(code, "" | "." | "..") {
            return Err(V3Error::InvalidVehicleId {
                id: code.to_string(),
            });
        }
        let url = self.vehicle_url(vehicle_id, &["signals", code])?;
        let (meta, body) = self
            .get_json(
                url,
                Some(user_id),
                Some(vehicle_id),
                self.settings.vehicle_timeout,
            )
            .await?;
        match parse_signal(signals::unwrap_data(&body)) {
            Some(signal) => Ok(SignalsReport {
                request: meta,
                signals: vec![signal],
            }),
            None => Err(V3Error::shape(meta, &body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartcar::error::{SmartcarError, parse_error_body};

    #[test]
    fn a_json_api_error_without_type_takes_the_type_of_its_status() {
        let body = br#"{"errors":[{"status":"429","code":"VEHICLE","title":"Rate limit","detail":"Too many"}]}"#;
        let e = parse_error_body(429, None, Some("r1"), Some(30), body);
        let e = e.smartcar().expect("read as a Smartcar error");
        assert_eq!(e.type_code(), "RATE_LIMIT:VEHICLE");
        assert_eq!(e.description, "Too many");
        assert_eq!(e.retry_after_s, Some(30));
        let body = br#"{"errors":[{"code":"VIRTUAL_KEY_REQUIRED","title":"Key"}]}"#;
        let e = parse_error_body(400, None, None, None, body);
        assert_eq!(
            e.smartcar().map(SmartcarError::type_code).as_deref(),
            Some("CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED")
        );
    }

    #[test]
    fn a_vehicle_id_with_a_slash_stays_one_segment_and_dot_dot_is_refused() {
        let client = V3Client::new(
            V3Origins::all("http://127.0.0.1:9"),
            AppCredentials::new("c", Secret::new("s")),
            ClientSettings::default(),
        )
        .unwrap();
        let url = client.vehicle_url("a/b?c#d", &["signals"]).unwrap();
        assert_eq!(url.path(), "/v3/vehicles/a%2Fb%3Fc%23d/signals");
        assert!(url.query().is_none());
        assert!(matches!(
            client.vehicle_url("..", &[]),
            Err(V3Error::InvalidVehicleId { .. })
        ));
    }

    #[test]
    fn origins_without_a_host_are_refused() {
        let creds = AppCredentials::new("c", Secret::new("s"));
        let bad = V3Origins {
            iam: "iam.smartcar.com".into(),
            api: V3Origins::DEFAULT_API.into(),
        };
        assert!(V3Client::new(bad, creds, ClientSettings::default()).is_err());
    }
}
