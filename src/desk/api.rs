//! The agents' API under `/api/v1/` (JSON; every call carries `Authorization: Bearer <agent
//! token>`): the rules, the fleet in pages, one vehicle, a probe request, and the live stream of
//! changes as Server-Sent Events. Every read and every probe request is audited with the agent's
//! name. Nothing here writes the desk's configuration, and no route returns a Smartcar credential:
//! the documents are built from the vehicles' facts and verdicts, which hold none.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_postgres::NoTls;

use crate::health::{Diagnosis, Needs, Policies};
use crate::report::{self, VehicleSummary};
use crate::smartcar::VehicleAttributes;
use crate::untrusted::text::one_line;

use super::agents::bearer;
use super::db::{Db, DbError, LookupsSpent, QueueFull};
use super::facts::VehicleFacts;
use super::metrics::Metrics;
use super::wire::{
    DeskProgress, FleetPage, ProbeAnswer, RulesDoc, StreamEvent, VehicleItem, VinAnswer,
};

/// Vehicles per fleet page unless the client asks for fewer.
pub const PAGE_DEFAULT: usize = 1000;
/// The most vehicles one page holds.
pub const PAGE_MAX: usize = 5000;
/// How long a stream goes without asking the database whether its token still stands; a revoked
/// token is normally cut at once by the revocation notice, this is for a notice that was lost.
const RECHECK_TOKEN: Duration = Duration::from_secs(5);
/// Events a slow stream may fall behind before it is told to read the fleet again.
const STREAM_BACKLOG: usize = 4096;

/// What every `serve` process passes to its streams: an encoded event, or a revoked agent's name.
#[derive(Debug, Clone)]
pub enum Notice {
    Event { name: &'static str, data: Arc<str> },
    Revoked(String),
}

impl Notice {
    fn event(e: &StreamEvent) -> Notice {
        let (name, data) = e.encode();
        Notice::Event {
            name,
            data: data.into(),
        }
    }
}

/// What the API's routes share.
pub struct ApiState {
    pub db: Db,
    /// The policies file's text, as the desk reads it (the built-in rules unless overridden).
    pub policies_text: String,
    pub policies: Policies,
    pub needs: Needs,
    pub now: Option<jiff::Timestamp>,
    pub metrics: Arc<Metrics>,
    pub hub: broadcast::Sender<Notice>,
    /// The longest a probe request waits for its probe before it is answered 202.
    pub probe_wait: Duration,
    /// Probe requests one agent may have waiting; more are answered 429.
    pub max_waiting_probes: u32,
    /// VIN lookups one agent may start an hour; more are answered 429.
    pub vin_lookups_per_hour: u32,
    /// Turns true when the server stops: every stream ends.
    pub shutdown: watch::Receiver<bool>,
}

impl ApiState {
    /// How long a request waits for the prober: what the agent asked (`?wait=S`), at most the desk's limit.
    fn wait(&self, asked_s: Option<u64>) -> Duration {
        asked_s
            .map_or(self.probe_wait, Duration::from_secs)
            .min(self.probe_wait)
    }

    pub fn new(
        db: Db,
        policies_text: String,
        needs: Needs,
        now: Option<jiff::Timestamp>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> ApiState {
        let (policies, _) = Policies::with_override(
            std::path::Path::new("<desk policies>"),
            Ok(policies_text.clone()),
        );
        ApiState {
            db,
            policies_text,
            policies,
            needs,
            now,
            metrics,
            hub: broadcast::channel(STREAM_BACKLOG).0,
            probe_wait: Duration::from_secs(30),
            max_waiting_probes: 50,
            vin_lookups_per_hour: 20,
            shutdown,
        }
    }

    fn now(&self) -> jiff::Timestamp {
        self.now.unwrap_or_else(jiff::Timestamp::now)
    }
}

/// The API's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/fleet", get(fleet))
        .route("/api/v1/vehicles/{id}", get(vehicle))
        .route("/api/v1/vehicles/{id}/probe", post(probe))
        .route("/api/v1/vins/{vin}", post(find_vin))
        .route("/api/v1/stream", get(stream))
        .with_state(state)
}

/// A JSON answer, with the characters JSON allows raw but a terminal must not see escaped: what an
/// agent reads is safe whichever client reads it.
fn answer(status: StatusCode, body: Value) -> Response {
    let text = serde_json::to_string(&body).unwrap_or_else(|_| "null".into());
    let text = crate::untrusted::text::json_escaped(&text).into_owned();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

/// The answer to a call the database failed: a 400 for input it can never hold (a NUL in an id or a
/// cursor), which is no outage; else 503, retry later.
fn unavailable(e: &DbError) -> Response {
    if !e.is_transient() {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "the request holds text the desk cannot store (a NUL character?)"}),
        );
    }
    tracing::warn!(error = %one_line(&e.to_string()), "API call failed on the database");
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "the desk's database is unavailable; retry later"}),
    )
}

/// The agent calling, or the answer refusing the call.
async fn agent(st: &ApiState, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let refused = |message: &str| {
        let mut r = answer(StatusCode::UNAUTHORIZED, json!({ "error": message }));
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    };
    let Some(token) = token else {
        return Err(refused("send Authorization: Bearer <agent token>"));
    };
    match st.db.agent_for_token(token).await {
        Ok(Some(name)) => Ok(name),
        Ok(None) => Err(refused("the agent token is unknown or revoked")),
        Err(e) => Err(unavailable(&e)),
    }
}

async fn audit(st: &ApiState, agent: &str, action: &str, subject: Option<&str>) {
    if let Err(e) = st.db.audit(agent, action, subject, None).await {
        tracing::warn!(error = %one_line(&e.to_string()), action, "cannot write the audit row");
    }
}

async fn rules(State(st): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let agent = match agent(&st, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    audit(&st, &agent, "read rules", None).await;
    let doc = RulesDoc {
        policies: st.policies_text.clone(),
        needs: st.needs.clone(),
        deadlines: report::deadlines_json(&st.policies, st.now()),
    };
    answer(
        StatusCode::OK,
        serde_json::to_value(doc).unwrap_or(Value::Null),
    )
}

#[derive(Debug, Deserialize)]
struct FleetQuery {
    after: Option<String>,
    limit: Option<usize>,
}

const VEHICLE_COLUMNS: &str = "vehicle_id, user_id, make, model, year, status, finding, facts, \
                               diagnosis, changed_at, connected_at, vin, \
                               (SELECT h.cause FROM status_history h \
                                WHERE h.vehicle_id = vehicles.vehicle_id ORDER BY h.at DESC, h.id DESC LIMIT 1)";

async fn fleet(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(q): Query<FleetQuery>,
) -> Response {
    let agent = match agent(&st, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX);
    let page = async {
        let client = st.db.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {VEHICLE_COLUMNS} FROM vehicles
                     WHERE $1::text IS NULL OR vehicle_id > $1 ORDER BY vehicle_id LIMIT $2"
                ),
                &[&q.after, &(limit as i64)],
            )
            .await?;
        Ok::<_, DbError>(rows.iter().map(item).collect::<Vec<_>>())
    }
    .await;
    let vehicles = match page {
        Ok(v) => v,
        Err(e) => return unavailable(&e),
    };
    // One row per page: a full read of 100,000 vehicles is a hundred rows, not a hundred thousand.
    if q.after.is_none() {
        audit(&st, &agent, "read fleet", None).await;
    }
    let next = (vehicles.len() == limit)
        .then(|| vehicles.last().map(|v| v.vehicle_id.clone()))
        .flatten();
    let page = FleetPage { vehicles, next };
    answer(
        StatusCode::OK,
        serde_json::to_value(page).unwrap_or(Value::Null),
    )
}

/// One vehicle's row as the API sends it.
pub async fn vehicle_item(db: &Db, vehicle_id: &str) -> Result<Option<VehicleItem>, DbError> {
    let client = db.client().await?;
    let row = client
        .query_opt(
            &format!("SELECT {VEHICLE_COLUMNS} FROM vehicles WHERE vehicle_id = $1"),
            &[&vehicle_id],
        )
        .await?;
    Ok(row.as_ref().map(item))
}

fn item(row: &tokio_postgres::Row) -> VehicleItem {
    let vehicle_id: String = row.get(0);
    let user_id: Option<String> = row.get(1);
    let make: Option<String> = row.get(2);
    let model: Option<String> = row.get(3);
    let year: Option<i32> = row.get(4);
    let year = year.and_then(|y| u16::try_from(y).ok());
    let facts: Value = row.get(7);
    let diagnosis: Option<Value> = row.get(8);
    let changed_at: std::time::SystemTime = row.get(9);
    let diagnosis: Option<Diagnosis> = diagnosis.and_then(|d| serde_json::from_value(d).ok());
    let report = diagnosis.as_ref().map(|_| {
        let facts: VehicleFacts = serde_json::from_value(facts).unwrap_or_default();
        let attributes = match (&make, year) {
            (Some(make), Some(year)) => Some(VehicleAttributes {
                id: vehicle_id.clone(),
                make: make.clone(),
                model: model.clone().unwrap_or_default(),
                year,
            }),
            _ => None,
        };
        facts.report(&vehicle_id, user_id.as_deref(), attributes)
    });
    VehicleItem {
        badges: diagnosis
            .as_ref()
            .map(|d| d.findings.iter().map(|f| f.id.clone()).collect())
            .unwrap_or_default(),
        checked_at: diagnosis.as_ref().and_then(|d| d.checked_at),
        changed_at: jiff::Timestamp::try_from(changed_at).ok(),
        connected_at: row.get(10),
        vin: row.get(11),
        cause: row.get(12),
        status: row.get(5),
        finding: row.get(6),
        vehicle_id,
        user_id,
        make,
        model,
        year,
        report,
        diagnosis,
    }
}

async fn vehicle(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let agent = match agent(&st, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    audit(&st, &agent, "read vehicle", Some(&id)).await;
    match vehicle_item(&st.db, &id).await {
        Ok(Some(v)) => answer(StatusCode::OK, vehicle_document(&v)),
        Ok(None) => answer(
            StatusCode::NOT_FOUND,
            json!({"error": "the desk knows no such vehicle"}),
        ),
        Err(e) => unavailable(&e),
    }
}

/// The vehicle as `vtriage vehicle --json` prints it, with the diagnosis the desk stored.
fn vehicle_document(v: &VehicleItem) -> Value {
    let diagnosis = v.diagnosis.clone().unwrap_or_else(Diagnosis::unknown);
    let summary = VehicleSummary {
        vehicle_id: &v.vehicle_id,
        user_id: v.user_id.as_deref(),
        make: v.make.as_deref(),
        model: v.model.as_deref(),
        year: v.year,
        vin: v.report.as_ref().and_then(|r| r.vin.as_deref()),
        connected_at: None,
        last_checked: diagnosis.checked_at,
        diagnosis: std::borrow::Cow::Owned(diagnosis),
    };
    report::vehicle_json(&summary)
}

#[derive(Debug, Deserialize)]
struct ProbeQuery {
    /// Seconds to wait for the probe to land (at most the desk's own limit).
    wait: Option<u64>,
    /// A new answer even when the desk's last one is fresh (Smartcar's Retry-After still holds).
    #[serde(default)]
    force: bool,
    /// Look a VIN up even though its check digit does not fit (some non-North-American VINs).
    #[serde(default)]
    anyway: bool,
}

async fn probe(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ProbeQuery>,
) -> Response {
    let agent = match agent(&st, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    // Only vehicles the desk knows: a request for anything else would wait for nothing.
    match vehicle_item(&st.db, &id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return answer(
                StatusCode::NOT_FOUND,
                json!({"error": "the desk knows no such vehicle"}),
            );
        }
        Err(e) => return unavailable(&e),
    }
    let request_id = match st
        .db
        .request_probe_within(&id, "focus", q.force, &agent, st.max_waiting_probes)
        .await
    {
        Ok(Ok(id)) => id,
        Ok(Err(full)) => return queue_full(full, st.max_waiting_probes),
        Err(e) => return unavailable(&e),
    };
    let served = match poll(st.wait(q.wait), || async {
        Ok(served(&st.db, request_id).await?.then_some(()))
    })
    .await
    {
        Ok(served) => served.is_some(),
        Err(e) => return unavailable(&e),
    };
    // Served: the vehicle as the probe left it; else what the desk knows now, and the probe's
    // result follows on the live stream.
    let body = ProbeAnswer {
        request_id,
        served,
        vehicle: vehicle_item(&st.db, &id).await.ok().flatten(),
    };
    answer(
        if served {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        },
        serde_json::to_value(body).unwrap_or(Value::Null),
    )
}

/// The answer to a probe request over the agent's cap: 429, how many wait, and when to try again.
fn queue_full(full: QueueFull, cap: u32) -> Response {
    let mut response = answer(
        StatusCode::TOO_MANY_REQUESTS,
        json!({
            "error": format!(
                "{} of your probe requests are waiting (at most {cap}); retry later, when some are served",
                full.waiting
            ),
            "waiting": full.waiting,
            "limit": cap,
        }),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    response
}

/// The answer to a VIN lookup over the agent's hourly allowance: 429, and when to try again.
fn lookups_spent(spent: LookupsSpent, per_hour: u32) -> Response {
    let mut response = answer(
        StatusCode::TOO_MANY_REQUESTS,
        json!({
            "error": format!(
                "you started {} VIN lookups within the hour (at most {per_hour}: each reads VINs from Smartcar); retry in {} s",
                spent.started, spent.retry_after_s
            ),
            "started": spent.started,
            "limit": per_hour,
            "retry_after_s": spent.retry_after_s,
        }),
    );
    if let Ok(value) = HeaderValue::from_str(&spent.retry_after_s.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Asks `check` every 100 ms until it has an answer or `wait` is over (then `None`).
async fn poll<T, F, Fut>(wait: Duration, mut check: F) -> Result<Option<T>, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, DbError>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(found) = check().await? {
            return Ok(Some(found));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finds the vehicle with a VIN: at once when the desk has read it, else through a lookup by the
/// desk's prober (the VINs of the cars whose make and year fit, nearest first), answered 200 when
/// it ends or 202 `{"done": false}` after the desk's wait (ask again: the lookup goes on).
async fn find_vin(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(vin): Path<String>,
    Query(q): Query<ProbeQuery>,
) -> Response {
    let agent = match agent(&st, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let vin = match crate::smartcar::vin::decode_at(&vin, jiff::Timestamp::now()) {
        // A check digit that does not fit is most likely a typo: refused before it costs a lookup,
        // unless the caller confirms (`?anyway=true`).
        Ok(decoded) if !q.anyway && decoded.check_digit_misfit().is_some() => {
            let line = decoded.check_digit_line().unwrap_or_default();
            return answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": line, "check_digit": decoded.check_digit_misfit().map(String::from)}),
            );
        }
        Ok(decoded) => decoded.vin,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("not a VIN: {e}")}),
            );
        }
    };
    let done = |vehicle_id: Option<String>, requests: u64, gaps: Option<String>| {
        let body = VinAnswer {
            vin: vin.clone(),
            done: true,
            vehicle_id,
            requests,
            gaps,
        };
        answer(
            StatusCode::OK,
            serde_json::to_value(body).unwrap_or(Value::Null),
        )
    };
    match st.db.vehicle_with_vin(&vin).await {
        Ok(Some(id)) => {
            audit(&st, &agent, "find vin", Some(&vin)).await;
            return done(Some(id), 0, None);
        }
        Ok(None) => {}
        Err(e) => return unavailable(&e),
    }
    match st
        .db
        .request_vin_lookup_within(&vin, &agent, st.vin_lookups_per_hour)
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(spent)) => return lookups_spent(spent, st.vin_lookups_per_hour),
        Err(e) => return unavailable(&e),
    }
    match poll(st.wait(q.wait), || st.db.vin_lookup(&vin)).await {
        Ok(Some(found)) => done(found.vehicle_id, found.requests, found.gaps),
        Ok(None) => {
            let body = VinAnswer {
                vin: vin.clone(),
                done: false,
                vehicle_id: None,
                requests: 0,
                gaps: None,
            };
            answer(
                StatusCode::ACCEPTED,
                serde_json::to_value(body).unwrap_or(Value::Null),
            )
        }
        Err(e) => unavailable(&e),
    }
}

async fn served(db: &Db, request_id: i64) -> Result<bool, DbError> {
    let client = db.client().await?;
    let row = client
        .query_opt(
            "SELECT 1 FROM probe_requests WHERE id = $1 AND served_at IS NOT NULL",
            &[&request_id],
        )
        .await?;
    Ok(row.is_some())
}

/// Counts a stream as a connected dashboard for as long as it lives.
struct Connected {
    metrics: Arc<Metrics>,
    agent: String,
}

impl Connected {
    fn new(metrics: Arc<Metrics>, agent: &str) -> Connected {
        let now = metrics.dashboards_connected.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(agent = %one_line(agent), streams = now, "an agent's dashboard connected");
        Connected {
            metrics,
            agent: agent.to_string(),
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        let now = self
            .metrics
            .dashboards_connected
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        tracing::info!(agent = %one_line(&self.agent), streams = now, "an agent's dashboard left");
    }
}

struct Streaming {
    st: Arc<ApiState>,
    agent: String,
    token: String,
    rx: broadcast::Receiver<Notice>,
    shutdown: watch::Receiver<bool>,
    ended: bool,
    /// When the token is checked again: on a clock of its own, so a busy stream still notices a
    /// revocation whose notice was lost.
    recheck_at: tokio::time::Instant,
    _connected: Connected,
}

async fn stream(State(st): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let agent = match agent(&st, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .unwrap_or_default()
        .to_string();
    audit(&st, &agent, "open stream", None).await;
    let state = Streaming {
        rx: st.hub.subscribe(),
        shutdown: st.shutdown.clone(),
        _connected: Connected::new(st.metrics.clone(), &agent),
        st,
        agent,
        token,
        ended: false,
        recheck_at: tokio::time::Instant::now() + RECHECK_TOKEN,
    };
    let events = futures_util::stream::unfold(state, next_event);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}

fn sse(e: &StreamEvent) -> SseEvent {
    let (name, data) = e.encode();
    SseEvent::default()
        .event(name)
        .data(crate::untrusted::text::json_escaped(&data))
}

/// The stream's next event; `None` ends it (revoked, or the server is stopping).
async fn next_event(
    mut s: Streaming,
) -> Option<(Result<SseEvent, std::convert::Infallible>, Streaming)> {
    if s.ended || *s.shutdown.borrow() {
        return None;
    }
    loop {
        let received = tokio::select! {
            r = s.rx.recv() => r,
            _ = s.shutdown.changed() => return None,
            () = tokio::time::sleep_until(s.recheck_at) => {
                s.recheck_at = tokio::time::Instant::now() + RECHECK_TOKEN;
                match s.st.db.agent_for_token(&s.token).await {
                    Ok(None) => {
                        s.ended = true;
                        return Some((Ok(sse(&StreamEvent::Revoked)), s));
                    }
                    Ok(Some(_)) | Err(_) => continue,
                }
            }
        };
        match received {
            Ok(Notice::Event { name, data }) => {
                let data = crate::untrusted::text::json_escaped(&data);
                return Some((Ok(SseEvent::default().event(name).data(data)), s));
            }
            Ok(Notice::Revoked(agent)) if agent == s.agent => {
                s.ended = true;
                return Some((Ok(sse(&StreamEvent::Revoked)), s));
            }
            Ok(Notice::Revoked(_)) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::info!(agent = %s.agent, missed = n, "a stream fell behind; it reads the fleet again");
                return Some((Ok(sse(&StreamEvent::Resync)), s));
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// Listens on the changes channel with a connection of its own until `shutdown`, and hands every
/// notice to the streams: a vehicle's change becomes its whole item (read once, sent to every
/// stream). After a lost connection it connects again and tells the streams to read the fleet again,
/// since changes in between were not heard.
pub async fn listen(
    pg: tokio_postgres::Config,
    st: Arc<ApiState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut first = true;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match pg.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let task = tokio::spawn(async move {
                    // The driver hands notifications out only to whoever polls the connection.
                    while let Some(Ok(message)) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        if let tokio_postgres::AsyncMessage::Notification(n) = message
                            && tx.send(n.payload().to_string()).is_err()
                        {
                            return;
                        }
                    }
                });
                match client
                    // Quoted: pg_notify names the channel exactly, case included.
                    .batch_execute(&format!("LISTEN \"{}\"", st.db.channel()))
                    .await
                {
                    Ok(()) => {
                        tracing::info!("listening for changes");
                        if !first {
                            let _ = st.hub.send(Notice::event(&StreamEvent::Resync));
                        }
                        first = false;
                        loop {
                            tokio::select! {
                                payload = rx.recv() => match payload {
                                    Some(p) => {
                                        tracing::debug!(streams = st.hub.receiver_count(), "change heard");
                                        relay(&st, &p).await
                                    }
                                    None => break,
                                },
                                _ = shutdown.changed() => {
                                    if *shutdown.borrow() {
                                        task.abort();
                                        return;
                                    }
                                }
                            }
                        }
                        tracing::warn!("the changes listener lost its connection; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(error = %one_line(&e.to_string()), "cannot LISTEN for changes")
                    }
                }
                task.abort();
            }
            Err(e) => {
                tracing::warn!(error = %one_line(&e.to_string()), "the changes listener cannot connect")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Turns one notice's payload into what the streams send.
async fn relay(st: &ApiState, payload: &str) {
    let Ok(v) = serde_json::from_str::<Value>(payload) else {
        return;
    };
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let notice = match text("kind").as_deref() {
        Some("revoked") => match text("agent") {
            Some(agent) => Notice::Revoked(agent),
            None => return,
        },
        Some("probing") => match text("vehicle_id") {
            Some(vehicle_id) => Notice::event(&StreamEvent::Probing { vehicle_id }),
            None => return,
        },
        // The fleet itself changed (a listing): every dashboard reads it again.
        Some("listed") => Notice::event(&StreamEvent::Resync),
        Some("progress") => match v
            .get("desk")
            .and_then(|d| serde_json::from_value::<DeskProgress>(d.clone()).ok())
        {
            Some(p) => Notice::event(&StreamEvent::Progress(p)),
            None => return,
        },
        Some(_) => return,
        None => {
            let Some(id) = text("vehicle_id") else {
                return;
            };
            match vehicle_item(&st.db, &id).await {
                Ok(Some(item)) => Notice::event(&StreamEvent::Vehicle(Box::new(item))),
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %one_line(&e.to_string()), "cannot read a changed vehicle");
                    Notice::event(&StreamEvent::Resync)
                }
            }
        }
    };
    // No stream open: nothing to do.
    let _ = st.hub.send(notice);
}
