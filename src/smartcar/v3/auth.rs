//! API Authentication: the application token from the client credentials, kept in memory and renewed
//! by one caller at a time however many requests wait for it.

use std::sync::Mutex as SyncMutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::smartcar::error::{ApiError, ErrorType};
use crate::smartcar::secret::Secret;

/// What the application signs in with: `client_id` and one of its (up to three) client secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: Secret,
}

impl AppCredentials {
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> AppCredentials {
        AppCredentials {
            client_id: client_id.into(),
            client_secret,
        }
    }
}

/// Why no application token could be had. No variant ever holds the client secret: every text that
/// came from the server is scrubbed of it first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the token endpoint refused the client credentials (HTTP {status} invalid_client{}); check the client id and secret (SMARTCAR_CLIENT_ID, SMARTCAR_CLIENT_SECRET)",
        describe(.description)
    )]
    InvalidClient { status: u16, description: String },
    #[error(
        "the token endpoint rejected the request as malformed (HTTP {status} invalid_request{})",
        describe(.description)
    )]
    InvalidRequest { status: u16, description: String },
    #[error("the token endpoint refused with HTTP {status} {error}{}", describe(.description))]
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    #[error("the token endpoint answered 200 without a usable access_token: {snippet}")]
    Malformed { snippet: String },
    #[error("{}", unreachable_words(.0))]
    Unreachable(Box<ApiError>),
}

/// `cannot reach the token endpoint at host:port: connection refused` when the connection failed;
/// what was read otherwise.
fn unreachable_words(e: &ApiError) -> String {
    match e {
        ApiError::Transport { message, .. } => {
            let place = crate::smartcar::origin::url_in(message)
                .map(crate::smartcar::origin::place_of)
                .map_or_else(String::new, |p| format!(" at {p}"));
            format!(
                "cannot reach the token endpoint{place}: {}",
                crate::smartcar::origin::transport_cause(message)
            )
        }
        other => format!("the token endpoint could not be read: {other}"),
    }
}

fn describe(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    }
}

/// A token just issued by the token endpoint.
pub(super) struct IssuedToken {
    pub value: Secret,
    pub expires_in: Duration,
}

/// Replaces every occurrence of the secret in a text that came back from the server, so a token
/// endpoint echoing the request cannot leak it into logs or error messages.
pub(super) fn scrub(text: &str, secret: &Secret) -> String {
    let raw = secret.expose();
    if raw.is_empty() {
        text.to_string()
    } else {
        text.replace(raw, "***")
    }
}

fn scrub_api_error(error: ApiError, secret: &Secret) -> ApiError {
    match error {
        ApiError::Smartcar(mut e) => {
            e.description = scrub(&e.description, secret);
            e.suggested_user_message = e.suggested_user_message.map(|m| scrub(&m, secret));
            e.detail = e
                .detail
                .map(|d| Value::String(scrub(&d.to_string(), secret)));
            ApiError::Smartcar(e)
        }
        ApiError::Body {
            status,
            problem,
            content_type,
            request_id,
            snippet,
        } => ApiError::Body {
            status,
            problem,
            content_type,
            request_id,
            snippet: scrub(&snippet, secret),
        },
        ApiError::Transport { kind, message } => ApiError::Transport {
            kind,
            message: scrub(&message, secret),
        },
        ApiError::Unsendable { message } => ApiError::Unsendable {
            message: scrub(&message, secret),
        },
        ApiError::TokenUnsettled {
            status,
            request_id,
            reason,
        } => ApiError::TokenUnsettled {
            status,
            request_id,
            reason: scrub(&reason, secret),
        },
        ApiError::Redirect {
            status,
            location,
            request_id,
        } => ApiError::Redirect {
            status,
            location: location.map(|l| scrub(&l, secret)),
            request_id,
        },
    }
}

/// Turns a failed token request into the error a person can act on.
pub(super) fn token_error(error: ApiError, secret: &Secret) -> TokenError {
    let error = scrub_api_error(error, secret);
    let Some(e) = error.smartcar() else {
        return TokenError::Unreachable(Box::new(error));
    };
    let status = e.status;
    let description = e.description.clone();
    match (&e.error_type, status) {
        (ErrorType::Other(kind), _) if kind == "invalid_client" => TokenError::InvalidClient {
            status,
            description,
        },
        (ErrorType::Authentication, 401) => TokenError::InvalidClient {
            status,
            description,
        },
        (ErrorType::Other(kind), _) if kind == "invalid_request" => TokenError::InvalidRequest {
            status,
            description,
        },
        (kind, _) => TokenError::Refused {
            status,
            error: kind.to_string(),
            description,
        },
    }
}

/// Reads `{access_token, token_type, expires_in}`. `expires_in` may come as a number or a numeric
/// string; without it the documented lifetime of one hour is assumed.
pub(super) fn issued_token(body: &Value, secret: &Secret) -> Result<IssuedToken, TokenError> {
    let malformed = || TokenError::Malformed {
        snippet: scrub(&body.to_string(), secret).chars().take(200).collect(),
    };
    let value = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(malformed)?;
    let expires_in_s = match body.get("expires_in") {
        None | Some(Value::Null) => DOCUMENTED_LIFETIME_S,
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .ok_or_else(malformed)?,
        Some(Value::String(s)) => s.trim().parse().map_err(|_| malformed())?,
        Some(_) => return Err(malformed()),
    };
    Ok(IssuedToken {
        value: Secret::new(value.trim()),
        expires_in: Duration::from_secs(expires_in_s.clamp(1, MAX_LIFETIME_S)),
    })
}

/// Smartcar's application tokens last one hour.
const DOCUMENTED_LIFETIME_S: u64 = 3_600;
/// A server claiming a longer life is not believed beyond a day, so a hostile `expires_in` cannot
/// overflow a deadline or pin a revoked token forever.
const MAX_LIFETIME_S: u64 = 86_400;

/// When to renew a token that lives `expires_in` from `sent_at`: a minute early, or a tenth of its
/// life early when it lives less than ten minutes, so a short-lived token is still used.
pub(super) fn renew_at(sent_at: Instant, expires_in: Duration) -> Instant {
    let margin = (expires_in / 10).min(Duration::from_secs(60));
    sent_at
        .checked_add(expires_in.saturating_sub(margin))
        .unwrap_or(sent_at)
}

/// One token handed to a caller, with the generation it belongs to so that a rejection renews it
/// once, not once per caller.
#[derive(Clone)]
pub(super) struct Lease {
    pub token: Secret,
    pub generation: u64,
}

struct Cached {
    lease: Lease,
    renew_at: Instant,
}

/// The current token. Renewal happens while the lock is held, so concurrent callers wait for the one
/// renewal in flight instead of each asking the token endpoint.
#[derive(Default)]
pub(super) struct TokenSlot {
    current: Option<Cached>,
    issued: u64,
    /// The token endpoint's last refusal and when it was sent: callers within
    /// [`REFUSAL_MEMORY`] of it share it instead of each asking again.
    refused: Option<(TokenError, Instant)>,
}

/// How long a token endpoint's refusal (or silence) stands for every caller: refused credentials
/// are one app-level error, said once, not one per vehicle.
pub(super) const REFUSAL_MEMORY: Duration = Duration::from_secs(15);

impl TokenSlot {
    /// The current token if it need not be renewed yet at `now`.
    pub fn fresh(&self, now: Instant) -> Option<Lease> {
        self.current
            .as_ref()
            .filter(|c| now < c.renew_at)
            .map(|c| c.lease.clone())
    }

    /// The current token unless it is the one a server just rejected.
    pub fn replacing(&self, rejected: u64, now: Instant) -> Option<Lease> {
        self.fresh(now).filter(|l| l.generation != rejected)
    }

    /// The token endpoint's refusal of a request sent within [`REFUSAL_MEMORY`] of `now`.
    pub fn recent_refusal(&self, now: Instant) -> Option<TokenError> {
        self.refused
            .as_ref()
            .filter(|(_, at)| now.saturating_duration_since(*at) < REFUSAL_MEMORY)
            .map(|(e, _)| e.clone())
    }

    pub fn refuse(&mut self, error: TokenError, sent_at: Instant) {
        self.refused = Some((error, sent_at));
    }

    pub fn store(&mut self, token: IssuedToken, sent_at: Instant) -> Lease {
        self.refused = None;
        self.issued += 1;
        let lease = Lease {
            token: token.value,
            generation: self.issued,
        };
        self.current = Some(Cached {
            lease: lease.clone(),
            renew_at: renew_at(sent_at, token.expires_in),
        });
        lease
    }
}

/// What a token check found: whether the token a 401 came back with is still good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Standing {
    /// A token-only request sent after the 401 arrived succeeded with the same token: the 401 was
    /// about the vehicle's connection.
    Good,
    /// The token-only request was refused too: the token is no longer good, renew it.
    Refused,
    /// The check itself got no usable answer: nothing can be said about the 401.
    Unknown(String),
}

/// The last token check: which token, when it was sent, what it found. A check settles every 401
/// that arrived before it was sent, and only those: an answer that arrived before a 401 proves
/// nothing about it, since the server may have checked the token before it was revoked.
pub(super) struct Check {
    pub generation: u64,
    pub sent_at: Instant,
    pub standing: Standing,
}

impl Check {
    /// This check's finding, if it settles a 401 on `generation` that arrived at `received_at`.
    pub fn settles(&self, generation: u64, received_at: Instant) -> Option<&Standing> {
        (self.generation == generation && self.sent_at >= received_at).then_some(&self.standing)
    }
}

/// How long a connection proven refused is remembered: its next 401s within this time cost no
/// token check and no renewal. The default freshness window.
pub(super) const REVOKED_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Most connections remembered as refused; older ones are forgotten first.
const REVOKED_CAP: usize = 100_000;

/// Connections (vehicle, user) whose 401 was proven to be their own, and when.
#[derive(Default)]
pub(super) struct RevokedConnections(
    SyncMutex<std::collections::HashMap<(String, String), Instant>>,
);

impl RevokedConnections {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, String), Instant>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn remember(&self, key: (String, String), now: Instant) {
        let mut map = self.map();
        if map.len() >= REVOKED_CAP {
            map.retain(|_, at| now.saturating_duration_since(*at) < REVOKED_MEMORY);
        }
        if map.len() < REVOKED_CAP {
            map.insert(key, now);
        }
    }

    /// Whether this connection was proven refused within [`REVOKED_MEMORY`] of `now`.
    pub fn is_known(&self, key: &(String, String), now: Instant) -> bool {
        self.map()
            .get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) < REVOKED_MEMORY)
    }

    /// The connection answered: it is no longer refused (the owner reconnected).
    pub fn forget(&self, key: &(String, String)) {
        let mut map = self.map();
        if !map.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartcar::error::parse_error_body;

    #[test]
    fn a_check_settles_only_the_401s_that_arrived_before_it_was_sent() {
        let t0 = Instant::now();
        let check = Check {
            generation: 1,
            sent_at: t0 + Duration::from_millis(10),
            standing: Standing::Good,
        };
        assert_eq!(check.settles(1, t0), Some(&Standing::Good));
        assert_eq!(
            check.settles(1, t0 + Duration::from_millis(10)),
            Some(&Standing::Good)
        );
        // A 401 that arrived after the check was sent may be about a token revoked meanwhile.
        assert_eq!(check.settles(1, t0 + Duration::from_millis(11)), None);
        assert_eq!(check.settles(2, t0), None);
    }

    #[test]
    fn a_refused_connection_is_remembered_for_the_freshness_window_then_forgotten() {
        let revoked = RevokedConnections::default();
        let key = ("v1".to_string(), "u1".to_string());
        let t0 = Instant::now();
        revoked.remember(key.clone(), t0);
        assert!(revoked.is_known(&key, t0 + Duration::from_secs(60)));
        assert!(!revoked.is_known(&key, t0 + REVOKED_MEMORY));
        revoked.forget(&key);
        assert!(!revoked.is_known(&key, t0));
    }

    #[test]
    fn a_one_hour_token_is_renewed_a_minute_early_and_a_one_second_token_at_nine_tenths() {
        let t0 = Instant::now();
        assert_eq!(
            renew_at(t0, Duration::from_secs(3_600)) - t0,
            Duration::from_secs(3_540)
        );
        assert_eq!(
            renew_at(t0, Duration::from_secs(1)) - t0,
            Duration::from_millis(900)
        );
    }

    #[test]
    fn expires_in_as_a_string_or_missing_is_read_and_a_huge_one_is_capped() {
        let s = Secret::new("s3cret");
        let t = issued_token(
            &serde_json::json!({"access_token": "a", "expires_in": "120"}),
            &s,
        )
        .unwrap();
        assert_eq!(t.expires_in, Duration::from_secs(120));
        let t = issued_token(&serde_json::json!({"access_token": "a"}), &s).unwrap();
        assert_eq!(t.expires_in, Duration::from_secs(3_600));
        let t = issued_token(
            &serde_json::json!({"access_token": "a", "expires_in": u64::MAX}),
            &s,
        )
        .unwrap();
        assert_eq!(t.expires_in, Duration::from_secs(MAX_LIFETIME_S));
        assert!(issued_token(&serde_json::json!({"expires_in": 5}), &s).is_err());
        assert!(issued_token(&serde_json::json!({"access_token": ""}), &s).is_err());
    }

    #[test]
    fn invalid_client_echoing_the_secret_never_shows_it() {
        let secret = Secret::new("very-secret-value");
        let body =
            br#"{"error":"invalid_client","error_description":"bad secret very-secret-value"}"#;
        let e = token_error(parse_error_body(401, None, None, None, body), &secret);
        assert!(matches!(e, TokenError::InvalidClient { status: 401, .. }));
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("very-secret-value"), "{text}");
        }
        let html = b"<html>very-secret-value</html>";
        let e = token_error(parse_error_body(502, None, None, None, html), &secret);
        assert!(!format!("{e} {e:?}").contains("very-secret-value"));
    }

    #[test]
    fn invalid_request_is_its_own_error() {
        let secret = Secret::new("x-secret");
        let body = br#"{"error":"invalid_request","error_description":"grant_type is required"}"#;
        let e = token_error(parse_error_body(400, None, None, None, body), &secret);
        assert_eq!(
            e,
            TokenError::InvalidRequest {
                status: 400,
                description: "grant_type is required".into()
            }
        );
        assert!(e.to_string().contains("grant_type is required"));
    }
}
