//! The desk's HTTP face: `POST /webhooks/smartcar` (verify, then commit, then answer), `GET /healthz`
//! and `GET /metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::smartcar::Secret;
use crate::untrusted::Keyring;
use crate::untrusted::text::one_line;

use super::db::{Db, DbError, NewDelivery, Stored};
use super::metrics::{Metrics, Rejection};
use super::rejected::{self, Keeper, Likely, Refused, Why};
use super::webhook::{self, Delivery};

/// The signature header Smartcar sends (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "sc-signature";

/// What the routes share.
pub struct ServerState {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    /// The application management token: the HMAC key of every delivery.
    pub amt: Secret,
    /// Every secret the process knows (the AMT, the client secret, tokens as they rotate).
    pub keyring: Keyring,
    /// The longest signed body read; an unsigned one is held to [`UNSIGNED_MAX_BYTES`].
    pub max_body_bytes: usize,
    /// How long a delivery may wait for its commit before it is answered 503 (Smartcar gives up
    /// on a delivery after 15 s, then retries).
    pub commit_timeout: Duration,
    /// Commits deliveries that arrive together in one transaction.
    pub batcher: Batcher,
    /// Where refused deliveries are kept for the operator; `None`: only counted and logged.
    pub rejected: Option<Keeper>,
}

/// The routes, with bodies over `max_body_bytes` refused with 413 before they are read in full.
pub fn router(state: Arc<ServerState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/webhooks/smartcar", post(webhook_delivery))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn refuse(st: &ServerState, why: Rejection, status: StatusCode, message: &str) -> Response {
    st.metrics.reject(why);
    answer(status, json!({ "error": message }))
}

/// The most an unsigned body may hold: only a VERIFY may come unsigned, and it is a few hundred
/// bytes. A longer one is refused before it is read in full.
pub const UNSIGNED_MAX_BYTES: usize = 4096;

/// Why a body was not read.
enum BodyRead {
    TooLarge,
    Broken,
}

/// Reads at most `limit` bytes of `body`; a longer body is refused without reading the rest.
async fn read_capped(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, BodyRead> {
    use futures_util::StreamExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyRead::TooLarge);
    }
    let mut stream = body.into_data_stream();
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyRead::Broken)?;
        if read.len() + chunk.len() > limit {
            return Err(BodyRead::TooLarge);
        }
        read.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(read))
}

/// What the route has seen of a request, for a refusal to be kept.
struct Seen<'a> {
    peer: Option<std::net::IpAddr>,
    user_agent: Option<&'a str>,
    signature: Option<&'a str>,
    declared_bytes: Option<u64>,
}

/// Refuses a delivery: counted, logged with why in one line, kept for `serve --rejected` (as the
/// rate allows), never processed.
#[allow(clippy::too_many_arguments)]
fn reject(
    st: &ServerState,
    seen: &Seen<'_>,
    body: Option<&[u8]>,
    why: Why,
    analyse: Option<&dyn Fn() -> Likely>,
    counted: Rejection,
    status: StatusCode,
    message: &str,
) -> Response {
    st.metrics.refused(why);
    // What would have matched is worked out only for a refusal that is kept: a flood of junk
    // costs one HMAC each, not the rewrites tried.
    let keeper = st.rejected.as_ref().filter(|k| k.admit());
    let likely = keeper.and(analyse).map(|f| f());
    let detail = match &likely {
        Some(l) => format!("{message}: {}", l.explain()),
        None => message.to_string(),
    };
    tracing::warn!(
        why = why.label(),
        peer = ?seen.peer,
        bytes = body.map(|b| b.len() as u64).or(seen.declared_bytes),
        "webhook refused: {}",
        one_line(&detail)
    );
    if let Some(keeper) = keeper {
        let refused = Refused {
            why,
            detail,
            likely,
            status: status.as_u16(),
            body,
            declared_bytes: seen.declared_bytes,
            signature: seen.signature,
            peer: seen.peer,
            user_agent: seen.user_agent,
        };
        keeper.keep(refused.kept(&st.keyring.redactor(), jiff::Timestamp::now()));
    }
    refuse(st, counted, status, message)
}

/// Answers an unsigned body: only a VERIFY with a challenge of Smartcar's shape is answered, with
/// its HMAC; the body is read no further than a VERIFY needs and nothing is stored.
fn unsigned_delivery(st: &ServerState, seen: &Seen<'_>, body: &[u8]) -> Response {
    let missing = || {
        reject(
            st,
            seen,
            Some(body),
            Why::NoSignature,
            None,
            Rejection::Signature,
            StatusCode::UNAUTHORIZED,
            "SC-Signature missing",
        )
    };
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return missing();
    };
    match webhook::parse_value(&value) {
        Ok(Delivery::Verify { challenge }) => {
            match webhook::challenge_answer(st.amt.expose().as_bytes(), &challenge) {
                Some(reply) => {
                    st.metrics.verify_answered.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("answered a VERIFY challenge");
                    answer(StatusCode::OK, reply)
                }
                None => missing(),
            }
        }
        Err(e @ webhook::PayloadError::BadChallenge) => reject(
            st,
            seen,
            Some(body),
            Why::Unreadable,
            None,
            Rejection::Payload,
            StatusCode::BAD_REQUEST,
            &e.to_string(),
        ),
        _ => missing(),
    }
}

async fn webhook_delivery(
    State(st): State<Arc<ServerState>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    st.metrics.events_received.fetch_add(1, Ordering::Relaxed);
    // A header that is not text is a signature that cannot match, not an absent one.
    let signature = headers
        .get(SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap_or_default());
    let seen = Seen {
        peer: peer.map(|p| p.0.0.ip()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        signature,
        declared_bytes: headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok()),
    };
    let limit = match signature {
        Some(_) => st.max_body_bytes,
        None => UNSIGNED_MAX_BYTES.min(st.max_body_bytes),
    };
    let body = match read_capped(&headers, body, limit).await {
        Ok(b) => b,
        Err(BodyRead::TooLarge) if signature.is_none() => {
            return reject(
                &st,
                &seen,
                None,
                Why::NoSignature,
                None,
                Rejection::Signature,
                StatusCode::UNAUTHORIZED,
                "SC-Signature missing (an unsigned body is at most 4096 bytes)",
            );
        }
        Err(BodyRead::TooLarge) => {
            return reject(
                &st,
                &seen,
                None,
                Why::TooLarge,
                None,
                Rejection::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body over the size cap",
            );
        }
        Err(BodyRead::Broken) => {
            return reject(
                &st,
                &seen,
                None,
                Why::Unreadable,
                None,
                Rejection::Payload,
                StatusCode::BAD_REQUEST,
                "the body could not be read",
            );
        }
    };
    let amt = st.amt.expose().as_bytes();
    let Some(signature) = signature else {
        return unsigned_delivery(&st, &seen, &body);
    };
    // Checked against the raw bytes before anything reads them.
    if !webhook::verify_signature(amt, &body, signature) {
        let analyse = || rejected::likely(amt, &st.keyring.secrets(), &body, signature);
        return reject(
            &st,
            &seen,
            Some(&body),
            Why::SignatureMismatch,
            Some(&analyse),
            Rejection::Signature,
            StatusCode::UNAUTHORIZED,
            "SC-Signature does not match",
        );
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
        return reject(
            &st,
            &seen,
            Some(&body),
            Why::NotJson,
            None,
            Rejection::Payload,
            StatusCode::BAD_REQUEST,
            "the body is not JSON",
        );
    };
    // A signed VERIFY is answered from the challenge as sent, with the same rule on its shape.
    if let Ok(Delivery::Verify { challenge }) = webhook::parse_value(&value)
        && let Some(reply) = webhook::challenge_answer(amt, &challenge)
    {
        st.metrics.verify_answered.fetch_add(1, Ordering::Relaxed);
        tracing::info!("answered a signed VERIFY challenge");
        return answer(StatusCode::OK, reply);
    }
    // A payload that echoes a secret keeps it out of the database, the agents' API and the log,
    // as a probe's answer does. The signature was checked on the bytes as sent.
    let redactor = st.keyring.redactor();
    redactor.redact_json(&mut value);
    let delivery = webhook::parse_value(&value);
    let (event_id, event_type, vehicle) = match delivery {
        Ok(Delivery::Vehicle(event)) => (
            event.event_id.clone(),
            event.kind.as_str().to_string(),
            Some(*event),
        ),
        Ok(Delivery::Other {
            event_id,
            event_type,
        }) => (
            // Without an id the body itself identifies the delivery, so a retry still deduplicates.
            event_id.unwrap_or_else(|| format!("sha256:{}", webhook::digest(&body))),
            event_type,
            None,
        ),
        // Answered above whenever its challenge has the accepted shape.
        Ok(Delivery::Verify { .. }) => {
            return reject(
                &st,
                &seen,
                Some(&body),
                Why::Unreadable,
                None,
                Rejection::Payload,
                StatusCode::BAD_REQUEST,
                "the VERIFY challenge cannot be answered",
            );
        }
        Err(e) => {
            return reject(
                &st,
                &seen,
                Some(&body),
                Why::Unreadable,
                None,
                Rejection::Payload,
                StatusCode::BAD_REQUEST,
                &e.to_string(),
            );
        }
    };
    let event = one_line(&event_id).into_owned();
    let stored = tokio::time::timeout(
        st.commit_timeout,
        st.batcher.store(NewDelivery {
            event_id,
            event_type: event_type.clone(),
            vehicle,
            body: value,
        }),
    )
    .await
    .unwrap_or_else(|_| Err(DbError::Unavailable("no commit within the timeout".into())));
    match stored {
        Ok(Stored::New) => {
            st.metrics.events_stored.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event = %event, kind = %event_type, "webhook stored");
            answer(StatusCode::OK, json!({ "stored": true }))
        }
        Ok(Stored::Duplicate) => {
            st.metrics
                .events_deduplicated
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event = %event, "webhook already stored");
            answer(StatusCode::OK, json!({ "stored": true, "duplicate": true }))
        }
        Err(e) if !e.is_transient() => {
            let message = st.keyring.redactor().redact(&e.to_string()).into_owned();
            tracing::warn!(event = %event, error = %one_line(&message), "the database refused a delivery");
            reject(
                &st,
                &seen,
                Some(&body),
                Why::Unstorable,
                None,
                Rejection::Payload,
                StatusCode::UNPROCESSABLE_ENTITY,
                "the payload cannot be stored",
            )
        }
        Err(e) => {
            let message = st.keyring.redactor().redact(&e.to_string()).into_owned();
            tracing::error!(event = %event, error = %one_line(&message), "webhook not stored; the sender will retry");
            refuse(
                &st,
                Rejection::Database,
                StatusCode::SERVICE_UNAVAILABLE,
                "not stored; retry later",
            )
        }
    }
}

async fn healthz(State(st): State<Arc<ServerState>>) -> Response {
    let prober = st.metrics.prober_active.load(Ordering::Relaxed) == 1;
    match tokio::time::timeout(Duration::from_secs(2), st.db.ping()).await {
        Ok(Ok(())) => {
            // A Smartcar source down is the desk degraded, not dead: webhooks, the fleet and the
            // stream still work, and the prober retries by itself.
            // So are the prober's settings failing: webhooks still work, the prober retries.
            let outages = st.metrics.outages();
            let settings = st.metrics.prober_settings_problem();
            if outages.is_empty() && settings.is_none() {
                answer(
                    StatusCode::OK,
                    json!({ "status": "ok", "database": "ok", "prober": prober }),
                )
            } else {
                let reasons: Vec<String> = settings
                    .iter()
                    .map(|why| format!("the prober's settings fail: {why}"))
                    .chain(outages.iter().map(|o| o.message.clone()))
                    .map(|why| one_line(&st.keyring.redactor().redact(&why)).into_owned())
                    .collect();
                answer(
                    StatusCode::OK,
                    json!({ "status": "degraded", "database": "ok", "prober": prober, "reason": reasons.join("; ") }),
                )
            }
        }
        Ok(Err(e)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable", "database": one_line(&st.keyring.redactor().redact(&e.to_string())), "prober": prober }),
        ),
        Err(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable", "database": "no answer within 2 s", "prober": prober }),
        ),
    }
}

async fn metrics(State(st): State<Arc<ServerState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

/// How deliveries are committed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestConfig {
    /// Shared transactions in flight at once: while one waits for its commit to reach the disk,
    /// the next ones gather what arrived meanwhile.
    pub workers: usize,
    /// Deliveries committed together at most: a larger batch holds more rows locked for longer.
    pub max_batch: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        // Two: on two cores a third transaction in flight made each batch smaller (more commits
        // and statements per delivery) without committing more.
        IngestConfig {
            workers: 2,
            max_batch: 64,
        }
    }
}

/// A delivery waiting for its commit, and its caller waiting for the answer.
struct Queued {
    delivery: NewDelivery,
    answer: tokio::sync::oneshot::Sender<Result<Stored, DbError>>,
}

/// Group commit: deliveries that arrive together share one transaction, and each caller is
/// answered once that transaction committed (or failed). A worker takes whatever is queued, up to
/// [`IngestConfig::max_batch`], so a quiet desk commits each delivery at once and a busy one spends one commit
/// on many.
#[derive(Clone)]
pub struct Batcher {
    queue: tokio::sync::mpsc::Sender<Queued>,
}

impl Batcher {
    /// Starts `workers` tasks committing from one queue; they end when every `Batcher` is dropped.
    pub fn start(db: Db, metrics: Arc<Metrics>, config: IngestConfig) -> Batcher {
        let (max, workers) = (config.max_batch.max(1), config.workers.max(1));
        let (queue, rx) = tokio::sync::mpsc::channel(max * workers * 4);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..workers {
            let (db, metrics, rx) = (db.clone(), metrics.clone(), rx.clone());
            tokio::spawn(async move {
                let mut batch: Vec<Queued> = Vec::with_capacity(max);
                loop {
                    // One worker gathers at a time; it lets go as soon as it has a batch.
                    if rx.lock().await.recv_many(&mut batch, max).await == 0 {
                        return;
                    }
                    let (deliveries, answers): (Vec<NewDelivery>, Vec<_>) =
                        batch.drain(..).map(|q| (q.delivery, q.answer)).unzip();
                    let stored = commit_together(&db, &metrics, &deliveries).await;
                    for (answer, stored) in answers.into_iter().zip(stored) {
                        // A caller that stopped waiting (its timeout) was answered 503 already.
                        let _ = answer.send(stored);
                    }
                }
            });
        }
        Batcher { queue }
    }

    /// Queues `delivery` and waits for the commit of the transaction it went into.
    pub async fn store(&self, delivery: NewDelivery) -> Result<Stored, DbError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.queue
            .send(Queued { delivery, answer })
            .await
            .map_err(|_| DbError::Unavailable("the desk is stopping".into()))?;
        answered.await.unwrap_or_else(|_| {
            Err(DbError::Unavailable(
                "the delivery's transaction was abandoned".into(),
            ))
        })
    }
}

/// Commits `deliveries` in one transaction; when it fails, commits each in a transaction of its
/// own, so one delivery the database refuses (or a deadlock, or a lost connection) costs the
/// others nothing and each caller hears its own outcome. Nothing is answered `Ok` that was not
/// committed. One answer per delivery, in order.
pub async fn commit_together(
    db: &Db,
    metrics: &Metrics,
    deliveries: &[NewDelivery],
) -> Vec<Result<Stored, DbError>> {
    async fn alone(db: &Db, d: &NewDelivery) -> Result<Stored, DbError> {
        db.store_delivery(&d.event_id, &d.event_type, d.vehicle.as_ref(), &d.body)
            .await
    }
    if let [one] = deliveries {
        return vec![alone(db, one).await];
    }
    match db.store_deliveries(deliveries).await {
        Ok(stored) => {
            metrics.batches_committed.fetch_add(1, Ordering::Relaxed);
            metrics
                .batched_deliveries
                .fetch_add(deliveries.len() as u64, Ordering::Relaxed);
            stored.into_iter().map(Ok).collect()
        }
        Err(e) => {
            metrics.batches_retried.fetch_add(1, Ordering::Relaxed);
            // The error may quote a body; each delivery's own error is logged redacted.
            tracing::warn!(
                deliveries = deliveries.len(),
                transient = e.is_transient(),
                "a shared commit failed; committing its deliveries one by one"
            );
            // Each vehicle's deliveries one after the other, in the order they came (so a
            // repeated event id is new once, the first time); the vehicles side by side.
            let mut by_vehicle: std::collections::BTreeMap<Option<&str>, Vec<usize>> =
                Default::default();
            for (i, d) in deliveries.iter().enumerate() {
                let vehicle = d.vehicle.as_ref().map(|v| v.vehicle_id.as_str());
                by_vehicle.entry(vehicle).or_default().push(i);
            }
            let groups = by_vehicle.into_values().map(|indices| async move {
                let mut stored = Vec::with_capacity(indices.len());
                for i in indices {
                    stored.push((i, alone(db, &deliveries[i]).await));
                }
                stored
            });
            let mut answers: Vec<Option<Result<Stored, DbError>>> =
                deliveries.iter().map(|_| None).collect();
            for (i, stored) in futures_util::future::join_all(groups)
                .await
                .into_iter()
                .flatten()
            {
                answers[i] = Some(stored);
            }
            answers
                .into_iter()
                .map(|a| {
                    a.unwrap_or_else(|| Err(DbError::Query("a delivery was not committed".into())))
                })
                .collect()
        }
    }
}
