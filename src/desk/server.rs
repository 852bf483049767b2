//! The desk's HTTP face: `POST /webhooks/smartcar` (verify, then commit, then answer), `GET /healthz`
//! and `GET /metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::smartcar::Secret;
use crate::untrusted::Redactor;
use crate::untrusted::text::one_line;

use super::db::{Db, DbError, Stored};
use super::metrics::{Metrics, Rejection};
use super::webhook::{self, Delivery};

/// The signature header Smartcar sends (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "sc-signature";

/// What the routes share.
pub struct ServerState {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    /// The application management token: the HMAC key of every delivery.
    pub amt: Secret,
    pub redactor: Redactor,
    /// How long a delivery may wait for its commit before it is answered 503 (Smartcar gives up
    /// on a delivery after 15 s, then retries).
    pub commit_timeout: Duration,
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

async fn webhook_delivery(
    State(st): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    st.metrics.events_received.fetch_add(1, Ordering::Relaxed);
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                &st,
                Rejection::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body over the size cap",
            );
        }
        Err(rejection) => {
            return refuse(
                &st,
                Rejection::Payload,
                rejection.status(),
                "the body could not be read",
            );
        }
    };
    let amt = st.amt.expose().as_bytes();
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let signed = match signature {
        // Checked against the raw bytes before anything reads them.
        Some(sig) if webhook::verify_signature(amt, &body, sig) => true,
        Some(_) => {
            tracing::warn!("webhook refused: SC-Signature does not match the body");
            return refuse(
                &st,
                Rejection::Signature,
                StatusCode::UNAUTHORIZED,
                "SC-Signature does not match",
            );
        }
        None => false,
    };
    let mut value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) if !signed => {
            return refuse(
                &st,
                Rejection::Signature,
                StatusCode::UNAUTHORIZED,
                "SC-Signature missing",
            );
        }
        Err(_) => {
            return refuse(
                &st,
                Rejection::Payload,
                StatusCode::BAD_REQUEST,
                "the body is not JSON",
            );
        }
    };
    // A payload that echoes a secret keeps it out of the database, the agents' API and the log,
    // as a probe's answer does. The signature was checked on the bytes as sent.
    st.redactor.redact_json(&mut value);
    let delivery = webhook::parse_value(&value);
    // VERIFY is answered signed or not: Smartcar's callback check may come unsigned, and the answer
    // proves we hold the AMT without revealing it. Everything else must be signed.
    if let Ok(Delivery::Verify { challenge }) = &delivery {
        st.metrics.verify_answered.fetch_add(1, Ordering::Relaxed);
        tracing::info!("answered a VERIFY challenge");
        return answer(StatusCode::OK, webhook::challenge_answer(amt, challenge));
    }
    if !signed {
        tracing::warn!("webhook refused: no SC-Signature");
        return refuse(
            &st,
            Rejection::Signature,
            StatusCode::UNAUTHORIZED,
            "SC-Signature missing",
        );
    }
    let (event_id, event_type, vehicle) = match &delivery {
        Ok(Delivery::Vehicle(event)) => (
            event.event_id.clone(),
            event.kind.as_str().to_string(),
            Some(event.as_ref()),
        ),
        Ok(Delivery::Other {
            event_id,
            event_type,
        }) => (
            // Without an id the body itself identifies the delivery, so a retry still deduplicates.
            event_id
                .clone()
                .unwrap_or_else(|| format!("sha256:{}", webhook::digest(&body))),
            event_type.clone(),
            None,
        ),
        Ok(Delivery::Verify { .. }) => unreachable!("answered above"),
        Err(e) => {
            tracing::warn!(error = %one_line(&e.to_string()), "webhook refused: unreadable payload");
            return refuse(
                &st,
                Rejection::Payload,
                StatusCode::BAD_REQUEST,
                &e.to_string(),
            );
        }
    };
    let stored = tokio::time::timeout(
        st.commit_timeout,
        st.db
            .store_delivery(&event_id, &event_type, vehicle, &value),
    )
    .await
    .unwrap_or_else(|_| Err(DbError::Unavailable("no commit within the timeout".into())));
    let event = one_line(&event_id).into_owned();
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
            let message = st.redactor.redact(&e.to_string()).into_owned();
            tracing::warn!(event = %event, error = %one_line(&message), "webhook refused by the database");
            refuse(
                &st,
                Rejection::Payload,
                StatusCode::UNPROCESSABLE_ENTITY,
                "the payload cannot be stored",
            )
        }
        Err(e) => {
            let message = st.redactor.redact(&e.to_string()).into_owned();
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
            let outages = st.metrics.outages();
            if outages.is_empty() {
                answer(
                    StatusCode::OK,
                    json!({ "status": "ok", "database": "ok", "prober": prober }),
                )
            } else {
                let reasons: Vec<String> = outages
                    .iter()
                    .map(|o| one_line(&st.redactor.redact(&o.message)).into_owned())
                    .collect();
                answer(
                    StatusCode::OK,
                    json!({ "status": "degraded", "database": "ok", "prober": prober, "reason": reasons.join("; ") }),
                )
            }
        }
        Ok(Err(e)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable", "database": one_line(&st.redactor.redact(&e.to_string())), "prober": prober }),
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
