//! Whether the sources every probe needs answer: what one request's answer says of its source,
//! and when a run of failures on distinct vehicles makes the source unreachable (app-wide), until
//! a request sent after that answers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::smartcar::v3::{TokenError, V3Client, V3Error};
use crate::smartcar::{ApiError, BodyProblem, ErrorType, Observation};

use super::events::{SourceName, SourceOutage};

/// Failures on this many distinct vehicles, with no answer sent after them, make the source
/// unreachable. Half the default concurrency: one wave of requests in flight against a dead
/// origin declares it, while a few cars whose requests happen to fail together do not. A car's
/// own error never counts (it is an answer: the source is up).
pub const UNREACHABLE_AFTER: usize = 8;
/// The first wait before one probe is tried again; it doubles per failed retry up to the cap.
pub const RETRY_FIRST: Duration = Duration::from_secs(30);
pub const RETRY_MAX: Duration = Duration::from_secs(5 * 60);

/// The longest outage message kept from a server's words.
const MESSAGE_CHARS: usize = 400;

/// The kind of an outage in which the token endpoint refused the app's client credentials.
pub const INVALID_CLIENT: &str = "invalid_client";

/// What one request's answer says of the source it went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Something answered as Smartcar does (data, or an error about the vehicle): the source is up.
    Answered,
    /// The source did not answer as Smartcar: no connection, a timeout, a proxy's 5xx or HTML page.
    Failed(Failure),
    /// The token endpoint refused the app's client credentials: app-wide, no retry of a car fixes it.
    AppRefused { origin: String, message: String },
    /// Says nothing of the source (not sent, a redirect).
    Silent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub source: SourceName,
    pub origin: String,
    pub kind: String,
    /// Nothing reached Smartcar: the request costs no budget.
    pub never_reached: bool,
}

impl Reach {
    /// Whether the request's budget is given back: nothing of it reached Smartcar.
    pub fn refunds(&self) -> bool {
        match self {
            Reach::Failed(f) => f.never_reached,
            Reach::AppRefused { .. } => true,
            Reach::Answered | Reach::Silent => false,
        }
    }
}

/// What a Vehicle API error says of the Vehicle API at `origin`. An error about the vehicle (its
/// state, its OEM, its permissions, its rate limit) is an answer; a transport failure, a body that
/// is not Smartcar's (a proxy's 5xx, an HTML page) or Smartcar's own `SERVER` 5xx is the source
/// failing.
pub fn reach_of_api_error(origin: &str, e: &ApiError) -> Reach {
    let failed = match e {
        ApiError::Transport { .. } => true,
        ApiError::Body {
            status, problem, ..
        } => *status >= 500 || *problem == BodyProblem::Html,
        ApiError::Smartcar(s) => s.status >= 500 && s.error_type == ErrorType::Server,
        // An unsettled 401 was an answer, but says nothing certain about the source either way.
        ApiError::Redirect { .. }
        | ApiError::Unsendable { .. }
        | ApiError::TokenUnsettled { .. } => {
            return Reach::Silent;
        }
    };
    match e.failure_kind() {
        Some(kind) if failed => Reach::Failed(Failure {
            source: SourceName::VehicleApi,
            origin: origin.to_string(),
            kind,
            never_reached: e.never_reached(),
        }),
        _ => Reach::Answered,
    }
}

/// What a v3 call's failure says: of the token endpoint when the application token could not be
/// had (the vehicle request was then never sent), else of the Vehicle API.
pub fn reach_of_v3_error(client: &V3Client, e: &V3Error) -> Reach {
    let origins = client.origins();
    match e {
        V3Error::Api { error, .. } => reach_of_api_error(&origins.api, error),
        V3Error::Token(TokenError::InvalidClient { .. }) => Reach::AppRefused {
            origin: origins.iam.clone(),
            // It quotes the token endpoint's description: one line, and not a page of it.
            message: crate::untrusted::text::one_line(&e.to_string())
                .chars()
                .take(MESSAGE_CHARS)
                .collect(),
        },
        V3Error::Token(token) => {
            let kind = match token {
                TokenError::Unreachable(inner) => inner.failure_kind(),
                TokenError::Refused { status, .. } if *status >= 500 => {
                    Some(format!("HTTP {status}"))
                }
                TokenError::Malformed { .. } => Some("no usable token in the answer".into()),
                _ => None,
            };
            match kind {
                Some(kind) => Reach::Failed(Failure {
                    source: SourceName::TokenEndpoint,
                    origin: origins.iam.clone(),
                    kind,
                    // No vehicle request was sent without a token.
                    never_reached: true,
                }),
                None => Reach::Silent,
            }
        }
        _ => Reach::Silent,
    }
}

/// What a v2.0 request's observations say of the Vehicle API: answered when any part of it was.
pub fn reach_of_observations(origin: &str, observations: &[Observation]) -> Reach {
    let mut reach = Reach::Silent;
    for o in observations {
        match &o.outcome {
            Ok(_) => return Reach::Answered,
            Err(e) => match reach_of_api_error(origin, e) {
                Reach::Answered => return Reach::Answered,
                Reach::Silent => {}
                failed => reach = failed,
            },
        }
    }
    reach
}

/// What changed in a source's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Down(SourceOutage),
    Up(SourceName),
}

/// Whether probes may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Open,
    /// One probe may go now, to see whether the source is back.
    Trial,
    /// Nothing starts before then.
    Closed(Instant),
}

#[derive(Debug)]
struct Down {
    outage: SourceOutage,
    declared_at: Instant,
    retry_at: Instant,
    wait: Duration,
    /// When the retry probe was let through; its failure sets the next retry.
    trial_at: Option<Instant>,
}

/// One source's run of failures and outage.
#[derive(Debug, Default)]
struct Track {
    /// Vehicles whose latest request to the source failed, with when that request was sent.
    /// A request answered that was sent later removes them.
    failures: HashMap<String, Instant>,
    last_kind: Option<(String, String)>,
    down: Option<Down>,
}

/// The health of every source, as the requests' answers tell it. Times are send times: a request
/// sent before the outage was declared and answered after it says nothing of the outage.
#[derive(Debug, Default)]
pub struct SourceHealth {
    tracks: HashMap<SourceName, Track>,
}

fn outage_message(source: SourceName, origin: &str, kind: &str, vehicles: usize) -> String {
    format!(
        "the {} at {origin} is unreachable ({kind}) on {vehicles} vehicles in a row; probing stopped",
        source.label()
    )
}

impl SourceHealth {
    /// Takes one request's answer: `vehicle` the request was for, `sent_at` when it was let out.
    pub fn record(
        &mut self,
        reach: &Reach,
        vehicle: Option<&str>,
        sent_at: Instant,
        now: Instant,
    ) -> Vec<Change> {
        match reach {
            Reach::Silent => Vec::new(),
            Reach::Answered => self.answered(sent_at),
            Reach::Failed(f) => self
                .failed(f, vehicle, sent_at, now)
                .map(Change::Down)
                .into_iter()
                .collect(),
            Reach::AppRefused { origin, message } => {
                let track = self.tracks.entry(SourceName::TokenEndpoint).or_default();
                let outage = SourceOutage {
                    source: SourceName::TokenEndpoint,
                    origin: origin.clone(),
                    kind: INVALID_CLIENT.to_string(),
                    message: message.clone(),
                    retry_at: jiff::Timestamp::now(),
                };
                declare_or_extend(track, outage, sent_at, now)
                    .map(Change::Down)
                    .into_iter()
                    .collect()
            }
        }
    }

    /// An answer proves every source it passed through up. A v3 answer went through the token
    /// endpoint too; a v2.0 one has no token endpoint, whose track then stays empty.
    fn answered(&mut self, sent_at: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for (source, track) in &mut self.tracks {
            track.failures.retain(|_, failed_at| *failed_at > sent_at);
            if track
                .down
                .as_ref()
                .is_some_and(|d| sent_at >= d.declared_at)
            {
                track.down = None;
                track.failures.clear();
                changes.push(Change::Up(*source));
            }
        }
        changes.sort_by_key(|c| match c {
            Change::Up(s) => *s,
            Change::Down(o) => o.source,
        });
        changes
    }

    fn failed(
        &mut self,
        f: &Failure,
        vehicle: Option<&str>,
        sent_at: Instant,
        now: Instant,
    ) -> Option<SourceOutage> {
        let track = self.tracks.entry(f.source).or_default();
        if track.down.is_some() {
            let outage = SourceOutage {
                source: f.source,
                origin: f.origin.clone(),
                kind: f.kind.clone(),
                message: outage_message(f.source, &f.origin, &f.kind, UNREACHABLE_AFTER),
                retry_at: jiff::Timestamp::now(),
            };
            return declare_or_extend(track, outage, sent_at, now);
        }
        let vehicle = vehicle?;
        track.failures.insert(vehicle.to_string(), sent_at);
        track.last_kind = Some((f.origin.clone(), f.kind.clone()));
        if track.failures.len() < UNREACHABLE_AFTER {
            return None;
        }
        let outage = SourceOutage {
            source: f.source,
            origin: f.origin.clone(),
            kind: f.kind.clone(),
            message: outage_message(f.source, &f.origin, &f.kind, track.failures.len()),
            retry_at: jiff::Timestamp::now(),
        };
        track.failures.clear();
        declare_or_extend(track, outage, sent_at, now)
    }

    /// Whether a probe may start now. `Trial` lets one through and closes again until it ends.
    pub fn admission(&mut self, now: Instant) -> Admission {
        let mut admission = Admission::Open;
        for track in self.tracks.values_mut() {
            let Some(down) = track.down.as_mut() else {
                continue;
            };
            let this = if down.trial_at.is_some() {
                // The retry is under way: nothing else until it ends.
                Admission::Closed(now + down.wait)
            } else if now >= down.retry_at {
                Admission::Trial
            } else {
                Admission::Closed(down.retry_at)
            };
            admission = match (admission, this) {
                (Admission::Closed(a), Admission::Closed(b)) => Admission::Closed(a.min(b)),
                (Admission::Closed(a), _) | (_, Admission::Closed(a)) => Admission::Closed(a),
                (Admission::Trial, _) | (_, Admission::Trial) => Admission::Trial,
                (Admission::Open, Admission::Open) => Admission::Open,
            };
        }
        admission
    }

    /// The retry probe was let through at `now`.
    pub fn trial_started(&mut self, now: Instant) {
        for track in self.tracks.values_mut() {
            if let Some(down) = track.down.as_mut()
                && now >= down.retry_at
            {
                down.trial_at = Some(now);
            }
        }
    }

    /// The retry probe ended without a word about the source (the car had a fresh report, the
    /// probe was stopped): the next one may go.
    pub fn trial_ended(&mut self) {
        for track in self.tracks.values_mut() {
            if let Some(down) = track.down.as_mut() {
                down.trial_at = None;
            }
        }
    }

    /// The sources down now.
    pub fn outages(&self) -> Vec<SourceOutage> {
        let mut out: Vec<SourceOutage> = self
            .tracks
            .values()
            .filter_map(|t| t.down.as_ref().map(|d| d.outage.clone()))
            .collect();
        out.sort_by_key(|o| o.source);
        out
    }
}

fn at_timestamp(at: Instant, now: Instant) -> jiff::Timestamp {
    let ts = jiff::Timestamp::now();
    ts.checked_add(at.saturating_duration_since(now))
        .unwrap_or(ts)
}

/// Declares the outage, or, when one stands, counts a failed retry (a request sent after the
/// retry was let through) with a longer wait. Returns the outage to announce.
fn declare_or_extend(
    track: &mut Track,
    mut outage: SourceOutage,
    sent_at: Instant,
    now: Instant,
) -> Option<SourceOutage> {
    match track.down.as_mut() {
        None => {
            let retry_at = now + RETRY_FIRST;
            outage.retry_at = at_timestamp(retry_at, now);
            track.down = Some(Down {
                outage: outage.clone(),
                declared_at: now,
                retry_at,
                wait: RETRY_FIRST,
                trial_at: None,
            });
            Some(outage)
        }
        Some(down) => {
            // Requests let out before the retry (in flight when it was declared) say nothing new.
            if down.trial_at.is_none_or(|t| sent_at < t) {
                return None;
            }
            down.wait = (down.wait * 2).min(RETRY_MAX);
            down.retry_at = now + down.wait;
            down.trial_at = None;
            // The outage keeps its first words; only the retry moves.
            down.outage.retry_at = at_timestamp(down.retry_at, now);
            Some(down.outage.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Reach {
        Reach::Failed(Failure {
            source: SourceName::VehicleApi,
            origin: "http://127.0.0.1:1".into(),
            kind: "connection refused".into(),
            never_reached: true,
        })
    }

    fn fail_distinct(
        h: &mut SourceHealth,
        n: usize,
        sent_at: Instant,
        now: Instant,
    ) -> Vec<Change> {
        (0..n)
            .flat_map(|i| h.record(&refused(), Some(&format!("v{i}")), sent_at, now))
            .collect()
    }

    #[test]
    fn failures_on_distinct_vehicles_declare_the_source_unreachable_once() {
        let mut h = SourceHealth::default();
        let t0 = Instant::now();
        let changes = fail_distinct(&mut h, UNREACHABLE_AFTER - 1, t0, t0);
        assert!(changes.is_empty());
        // The same vehicle again is not one more vehicle.
        assert!(h.record(&refused(), Some("v0"), t0, t0).is_empty());
        let changes = h.record(&refused(), Some("last"), t0, t0);
        let [Change::Down(outage)] = changes.as_slice() else {
            panic!("{changes:?}");
        };
        assert_eq!(outage.kind, "connection refused");
        assert!(
            outage.message.contains("http://127.0.0.1:1"),
            "{}",
            outage.message
        );
        assert!(matches!(h.admission(t0), Admission::Closed(_)));
        // More failures of requests in flight when it was declared announce nothing more.
        assert!(fail_distinct(&mut h, 16, t0, t0).is_empty());
    }

    #[test]
    fn a_cars_own_error_is_an_answer_and_breaks_the_run() {
        let mut h = SourceHealth::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        let t2 = t0 + Duration::from_millis(20);
        fail_distinct(&mut h, UNREACHABLE_AFTER - 1, t0, t1);
        assert!(
            h.record(&Reach::Answered, Some("asleep"), t1, t1)
                .is_empty()
        );
        assert!(fail_distinct(&mut h, UNREACHABLE_AFTER - 1, t2, t2).is_empty());
        assert_eq!(h.admission(t2), Admission::Open);
    }

    #[test]
    fn a_late_answer_to_a_request_sent_before_the_outage_does_not_clear_it() {
        let mut h = SourceHealth::default();
        let before = Instant::now();
        let t1 = before + Duration::from_millis(10);
        fail_distinct(&mut h, UNREACHABLE_AFTER, t1, t1);
        // Sent before the failures: it neither breaks the run nor clears the outage.
        assert!(
            h.record(
                &Reach::Answered,
                Some("slow"),
                before,
                t1 + Duration::from_secs(1)
            )
            .is_empty()
        );
        assert!(matches!(h.admission(t1), Admission::Closed(_)));
        assert_eq!(h.outages().len(), 1);
    }

    #[test]
    fn the_retry_waits_grow_and_an_answer_sent_after_the_outage_clears_it() {
        let mut h = SourceHealth::default();
        let t0 = Instant::now();
        fail_distinct(&mut h, UNREACHABLE_AFTER, t0, t0);
        let first = t0 + RETRY_FIRST;
        assert_eq!(
            h.admission(first - Duration::from_secs(1)),
            Admission::Closed(first)
        );
        assert_eq!(h.admission(first), Admission::Trial);
        h.trial_started(first);
        assert!(matches!(h.admission(first), Admission::Closed(_)));
        let changes = h.record(&refused(), Some("v0"), first, first);
        assert!(
            matches!(changes.as_slice(), [Change::Down(_)]),
            "{changes:?}"
        );
        let second = first + RETRY_FIRST * 2;
        assert_eq!(h.admission(first), Admission::Closed(second));
        h.trial_started(second);
        let changes = h.record(&Reach::Answered, Some("v0"), second, second);
        assert_eq!(changes, [Change::Up(SourceName::VehicleApi)]);
        assert_eq!(h.admission(second), Admission::Open);
    }

    #[test]
    fn smartcars_own_5xx_counts_and_an_oems_or_a_cars_answer_does_not() {
        use crate::smartcar::error::parse_error_body;
        use crate::smartcar::{ErrorCode, SmartcarError};
        let origin = "https://vehicle.api.smartcar.com";
        // v3's JSON:API error without a type: the status stands for SERVER.
        let unavailable = parse_error_body(
            503,
            Some("application/json"),
            None,
            None,
            br#"{"errors":[{"status":"503","title":"Service Unavailable"}]}"#,
        );
        let Reach::Failed(f) = reach_of_api_error(origin, &unavailable) else {
            panic!("{unavailable:?}");
        };
        assert_eq!(f.kind, "HTTP 503 SERVER");
        assert!(!f.never_reached, "it was sent and answered");
        for (status, t, code) in [
            (502, ErrorType::Upstream, ErrorCode::UnknownIssue),
            (409, ErrorType::VehicleState, ErrorCode::Asleep),
            (429, ErrorType::RateLimit, ErrorCode::Vehicle),
        ] {
            let e = ApiError::Smartcar(Box::new(SmartcarError::new(status, t, Some(code))));
            assert_eq!(reach_of_api_error(origin, &e), Reach::Answered, "{e}");
        }
    }

    #[test]
    fn refused_client_credentials_stop_at_once() {
        let mut h = SourceHealth::default();
        let t0 = Instant::now();
        let changes = h.record(
            &Reach::AppRefused {
                origin: "http://iam".into(),
                message: "refused the client credentials".into(),
            },
            Some("v1"),
            t0,
            t0,
        );
        let [Change::Down(outage)] = changes.as_slice() else {
            panic!("{changes:?}");
        };
        assert_eq!(outage.source, SourceName::TokenEndpoint);
        assert_eq!(outage.kind, INVALID_CLIENT);
    }
}
