//! Runs one probe of one vehicle: the plan's rounds, each request through the gate, retries with
//! backoff, Retry-After waits, and the app-wide pause on `RATE_LIMIT:SMARTCAR_API`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::smartcar::v3::observe::{self, SignalQuestions};
use crate::smartcar::{
    ApiError, DataKind, ErrorCode, ErrorType, Observation, Probe, Secret, capped_wait,
    deadline_after,
};

use super::Api;
use super::backoff::Backoff;
use super::gate::{Gate, SharedPriority, Ticket};
use super::outage;
use super::plan::{KnownVehicle, ProbePlan, Step, vehicle_rate_limited};

/// How requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_tries: u32,
    /// A `RATE_LIMIT:VEHICLE` Retry-After up to this long is waited inside the probe.
    pub max_inline_wait: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// What a probe's requests carry to be let in.
#[derive(Debug, Clone)]
pub enum Access {
    /// v2.0: the user's access token.
    Token(Secret),
    /// v3: the application token (held by the client) and this user id in `sc-user-id`.
    User(String),
}

/// The Smartcar-side permissions a v3 listing gave, and when it was listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPermissions {
    pub permissions: Vec<String>,
    pub at: jiff::Timestamp,
}

/// One probe to run.
#[derive(Debug, Clone)]
pub struct ProbeJob {
    pub vehicle_id: String,
    pub access: Access,
    /// Known from the listing (v3), so no request asks for it.
    pub listed_permissions: Option<ListedPermissions>,
    pub known: KnownVehicle,
    pub priority: SharedPriority,
    /// Arrival order, so earlier probes finish first among equals.
    pub order: u64,
    pub sent_any: Arc<AtomicBool>,
}

/// What a probe found.
#[derive(Debug, Clone)]
pub struct ProbeOutcome {
    pub vehicle_id: String,
    /// One per probe asked, in plan order.
    pub observations: Vec<Observation>,
    /// What is known after the probe (attributes and VIN learned on the way).
    pub known: KnownVehicle,
    /// The vehicle asked not to be called before this time (`RATE_LIMIT:VEHICLE` beyond the inline wait).
    pub not_before: Option<Instant>,
    /// Some request still failed with a retryable error (server fault, timeout) after every try.
    pub unresolved: bool,
    /// How many rounds went out (0 when the gate closed first).
    pub rounds: u32,
}

/// Runs the plan for one vehicle. Never fails: every problem is an observation.
pub async fn run_probe(
    client: &Api,
    gate: &Gate,
    plan: &dyn ProbePlan,
    retry: RetryPolicy,
    job: ProbeJob,
) -> ProbeOutcome {
    let before = job.known.clone();
    let mut outcome = ProbeOutcome {
        vehicle_id: job.vehicle_id.clone(),
        observations: Vec::new(),
        known: before.clone(),
        not_before: None,
        unresolved: false,
        rounds: 0,
    };
    let first = plan.first_round(&before);
    run_round(client, gate, plan, retry, &job, first, &mut outcome).await;
    outcome.known.learn(&outcome.observations);
    let second = plan.second_round(&before, &outcome.known, &outcome.observations);
    if !second.is_empty() && outcome.not_before.is_none() {
        let start = outcome.observations.len();
        run_round(client, gate, plan, retry, &job, second, &mut outcome).await;
        let learned = outcome
            .observations
            .get(start..)
            .unwrap_or_default()
            .to_vec();
        outcome.known.learn(&learned);
    }
    if let Some(listed) = &job.listed_permissions
        && outcome.rounds > 0
    {
        outcome.observations.push(observe::permissions_observation(
            &job.vehicle_id,
            &listed.permissions,
            listed.at,
        ));
    }
    outcome
}

async fn run_round(
    client: &Api,
    gate: &Gate,
    plan: &dyn ProbePlan,
    retry: RetryPolicy,
    job: &ProbeJob,
    steps: Vec<Step>,
    outcome: &mut ProbeOutcome,
) {
    if steps.is_empty() {
        return;
    }
    outcome.rounds += 1;
    let results = join_all(
        steps
            .into_iter()
            .map(|step| run_step(client, gate, plan, retry, job, step)),
    )
    .await;
    for r in results {
        outcome.observations.extend(r.observations);
        outcome.unresolved |= r.unresolved;
        outcome.not_before = match (outcome.not_before, r.not_before) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

struct StepResult {
    observations: Vec<Observation>,
    not_before: Option<Instant>,
    unresolved: bool,
}

/// What to do after a try.
#[derive(Debug, PartialEq)]
enum Next {
    Done,
    /// Retry the probes still failing after this wait (the gate holds app-wide pauses itself).
    RetryAfter(Duration),
    /// The vehicle asked to be left alone until then.
    LeaveUntil(Instant),
}

/// Whether sending the same request again soon may help. A sleeping or unreachable car is
/// retryable in Smartcar's sense, but "later" means minutes: retrying within the probe would spend
/// budget and wake attempts on it, so its report says so and the freshness window decides.
fn worth_retrying(e: &ApiError) -> bool {
    e.is_retryable()
        && !e
            .smartcar()
            .is_some_and(|s| s.error_type == ErrorType::VehicleState)
}

pub(super) fn is_app_rate_limit(e: &ApiError) -> bool {
    e.smartcar()
        .is_some_and(|s| s.is(&ErrorType::RateLimit, Some(&ErrorCode::SmartcarApi)))
}

/// Decides the next move from the latest observations of the probes this step still asks.
fn next_move(
    latest: &[&Observation],
    tries: u32,
    retry: RetryPolicy,
    backoff: &mut Backoff,
    gate: &Gate,
    now: Instant,
) -> Next {
    let errors: Vec<&ApiError> = latest.iter().filter_map(|o| o.error()).collect();
    let vehicle_wait = latest
        .iter()
        .filter(|o| vehicle_rate_limited(o))
        .filter_map(|o| o.error().and_then(ApiError::retry_after_s))
        .max()
        .map(|s| capped_wait(Duration::from_secs(s)));
    if let Some(wait) = vehicle_wait
        && wait > retry.max_inline_wait
    {
        return Next::LeaveUntil(deadline_after(now, wait));
    }
    if tries >= retry.max_tries || !errors.iter().any(|e| worth_retrying(e)) {
        // A vehicle still asking for time after every try is rescheduled, never marked failed.
        return match vehicle_wait {
            Some(wait) => Next::LeaveUntil(deadline_after(now, wait)),
            None => Next::Done,
        };
    }
    if let Some(app) = errors.iter().find(|e| is_app_rate_limit(e)) {
        let wait = app
            .retry_after_s()
            .map_or_else(|| backoff.delay(tries), Duration::from_secs);
        gate.pause_until(deadline_after(now, wait));
        return Next::RetryAfter(Duration::ZERO);
    }
    match vehicle_wait {
        Some(wait) => Next::RetryAfter(wait),
        None => Next::RetryAfter(backoff.delay(tries)),
    }
}

fn ticket(job: &ProbeJob, calls: usize) -> Ticket {
    Ticket {
        priority: job.priority.clone(),
        order: job.order,
        vehicle: Some((job.vehicle_id.clone(), calls.try_into().unwrap_or(u32::MAX))),
        sent_any: Some(Arc::clone(&job.sent_any)),
    }
}

/// A step the client cannot send with the access the probe holds: the plan and the API disagree.
fn unsendable(job: &ProbeJob, step: &Step) -> StepResult {
    let probe = match step {
        Step::Get(p) => *p,
        Step::Batch(_) | Step::Signals => Probe::Signals,
    };
    StepResult {
        observations: vec![Observation {
            probe,
            endpoint: probe.endpoint(&job.vehicle_id, false),
            at: jiff::Timestamp::now(),
            meta: crate::smartcar::Meta::default(),
            outcome: Err(ApiError::Unsendable {
                message: "this request does not exist in the API version in use".into(),
            }),
        }],
        not_before: None,
        unresolved: false,
    }
}

/// Sends one step, retrying what fails retryably, and returns the latest observation per probe.
async fn run_step(
    api: &Api,
    gate: &Gate,
    plan: &dyn ProbePlan,
    retry: RetryPolicy,
    job: &ProbeJob,
    step: Step,
) -> StepResult {
    let (client, token) = match (api, &job.access, &step) {
        (Api::V3(client), Access::User(user), Step::Signals) => {
            return run_signals(client, user, gate, plan, retry, job).await;
        }
        (Api::V2(client), Access::Token(token), Step::Get(_) | Step::Batch(_)) => (client, token),
        _ => return unsendable(job, &step),
    };
    let mut backoff = Backoff::new(retry.backoff_base, retry.backoff_max);
    let mut latest: BTreeMap<usize, Observation> = BTreeMap::new();
    // Positions of the probes of this step, so a retried batch keeps plan order.
    let probes: Vec<Probe> = match &step {
        Step::Get(p) => vec![*p],
        Step::Batch(kinds) => kinds.iter().map(|&k| Probe::Data(k)).collect(),
        Step::Signals => Vec::new(),
    };
    let mut pending: Vec<usize> = (0..probes.len()).collect();
    let mut tries = 0;
    let mut not_before = None;
    while !pending.is_empty() {
        tries += 1;
        let Ok(permit) = gate.acquire(ticket(job, pending.len())).await else {
            break;
        };
        let got = match &step {
            Step::Get(p) => vec![client.probe(token, &job.vehicle_id, *p).await],
            Step::Signals => Vec::new(),
            Step::Batch(_) => {
                let kinds: Vec<DataKind> = pending
                    .iter()
                    .filter_map(|&i| match probes.get(i) {
                        Some(Probe::Data(k)) => Some(*k),
                        _ => None,
                    })
                    .collect();
                client.batch(token, &job.vehicle_id, &kinds).await
            }
        };
        permit.settle(&outage::reach_of_observations(&client.origins().api, &got));
        for o in got {
            if let Some(i) = probes.iter().position(|p| *p == o.probe) {
                latest.insert(i, o);
            }
        }
        let asked: Vec<&Observation> = pending.iter().filter_map(|i| latest.get(i)).collect();
        match next_move(&asked, tries, retry, &mut backoff, gate, Instant::now()) {
            Next::Done => break,
            Next::LeaveUntil(t) => {
                not_before = Some(t);
                break;
            }
            Next::RetryAfter(wait) => {
                pending.retain(|i| {
                    latest
                        .get(i)
                        .and_then(Observation::error)
                        .is_some_and(worth_retrying)
                });
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    let unresolved = latest
        .values()
        .filter_map(Observation::error)
        .any(|e| worth_retrying(e) && !is_vehicle_limit(e));
    StepResult {
        observations: latest.into_values().collect(),
        not_before,
        unresolved,
    }
}

/// Sends the v3 signals request, retrying it whole while its failure (or a signal's) is worth it.
/// One request and one vehicle call per try, however many signals come back.
async fn run_signals(
    client: &crate::smartcar::v3::V3Client,
    user_id: &str,
    gate: &Gate,
    plan: &dyn ProbePlan,
    retry: RetryPolicy,
    job: &ProbeJob,
) -> StepResult {
    let (data, at_home) = plan.signal_questions().unwrap_or((&[], false));
    let asked = SignalQuestions {
        data,
        at_home,
        is_tesla: job.known.is_tesla(),
    };
    let mut backoff = Backoff::new(retry.backoff_base, retry.backoff_max);
    let mut latest: Vec<Observation> = Vec::new();
    let mut not_before = None;
    let mut tries = 0;
    loop {
        tries += 1;
        let Ok(permit) = gate.acquire(ticket(job, 1)).await else {
            break;
        };
        let answer = client.signals(&job.vehicle_id, user_id).await;
        permit.settle(&match &answer {
            Ok(_) => outage::Reach::Answered,
            Err(e) => outage::reach_of_v3_error(client, e),
        });
        let at = jiff::Timestamp::now();
        latest = match &answer {
            Ok(report) => observe::observations(&job.vehicle_id, report, asked, at),
            Err(e) => vec![observe::request_failed(&job.vehicle_id, e, at)],
        };
        let asked_now: Vec<&Observation> = latest.iter().collect();
        match next_move(&asked_now, tries, retry, &mut backoff, gate, Instant::now()) {
            Next::Done => break,
            Next::LeaveUntil(t) => {
                not_before = Some(t);
                break;
            }
            Next::RetryAfter(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    let unresolved = latest
        .iter()
        .filter_map(Observation::error)
        .any(|e| worth_retrying(e) && !is_vehicle_limit(e));
    StepResult {
        observations: latest,
        not_before,
        unresolved,
    }
}

fn is_vehicle_limit(e: &ApiError) -> bool {
    e.smartcar()
        .is_some_and(|s| s.is(&ErrorType::RateLimit, Some(&ErrorCode::Vehicle)))
}

/// Polls futures of one type together on the current task and returns their outputs in order.
pub(super) async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartcar::{Meta, SmartcarError};
    use tokio::sync::mpsc;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_tries: 3,
            max_inline_wait: Duration::from_secs(30),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
        }
    }

    fn failed(
        status: u16,
        t: ErrorType,
        code: Option<ErrorCode>,
        retry_after_s: Option<u64>,
    ) -> Observation {
        Observation {
            probe: Probe::Data(DataKind::Odometer),
            endpoint: String::new(),
            at: jiff::Timestamp::UNIX_EPOCH,
            meta: Meta::default(),
            outcome: Err(ApiError::Smartcar(Box::new(SmartcarError {
                retry_after_s,
                ..SmartcarError::new(status, t, code)
            }))),
        }
    }

    fn decide(o: &Observation, tries: u32, gate: &Gate, now: Instant) -> Next {
        let mut b = Backoff::seeded(Duration::from_millis(100), Duration::from_secs(2), 1);
        next_move(&[o], tries, policy(), &mut b, gate, now)
    }

    #[tokio::test]
    async fn vehicle_retry_after_is_waited_inline_when_short_and_reported_when_long() {
        let (events, _rx) = mpsc::unbounded_channel();
        let (gate, _t) = super::super::gate::Gate::new(4, None, 100, events);
        let now = Instant::now();
        let short = failed(429, ErrorType::RateLimit, Some(ErrorCode::Vehicle), Some(5));
        assert_eq!(
            decide(&short, 1, &gate, now),
            Next::RetryAfter(Duration::from_secs(5))
        );
        let long = failed(
            429,
            ErrorType::RateLimit,
            Some(ErrorCode::Vehicle),
            Some(1800),
        );
        assert_eq!(
            decide(&long, 1, &gate, now),
            Next::LeaveUntil(now + Duration::from_secs(1800))
        );
        // Even on the last try a long Retry-After is kept, never turned into a failure.
        assert_eq!(
            decide(&long, 3, &gate, now),
            Next::LeaveUntil(now + Duration::from_secs(1800))
        );
    }

    #[tokio::test]
    async fn vehicle_retry_after_of_u64_max_holds_the_vehicle_for_the_cap_only() {
        let (events, _rx) = mpsc::unbounded_channel();
        let (gate, _t) = super::super::gate::Gate::new(4, None, 100, events);
        let now = Instant::now();
        let hostile = failed(
            429,
            ErrorType::RateLimit,
            Some(ErrorCode::Vehicle),
            Some(u64::MAX),
        );
        for tries in [1, 3] {
            assert_eq!(
                decide(&hostile, tries, &gate, now),
                Next::LeaveUntil(now + crate::smartcar::MAX_RETRY_AFTER)
            );
        }
    }

    #[tokio::test]
    async fn app_retry_after_of_u64_max_pauses_the_gate_for_the_cap_only() {
        let (events, mut rx) = mpsc::unbounded_channel();
        let (gate, _t) = super::super::gate::Gate::new(4, None, 100, events);
        let asked = jiff::Timestamp::now();
        let hostile = failed(
            429,
            ErrorType::RateLimit,
            Some(ErrorCode::SmartcarApi),
            Some(u64::MAX),
        );
        assert_eq!(
            decide(&hostile, 1, &gate, Instant::now()),
            Next::RetryAfter(Duration::ZERO)
        );
        let Ok(crate::fetch::Event::RateLimited { until, .. }) = rx.try_recv() else {
            panic!("the pause was not announced");
        };
        assert!(until.duration_since(asked) <= jiff::SignedDuration::from_secs(3605));
    }

    #[tokio::test]
    async fn server_faults_are_retried_until_max_tries() {
        let (events, _rx) = mpsc::unbounded_channel();
        let (gate, _t) = super::super::gate::Gate::new(4, None, 100, events);
        let now = Instant::now();
        let fault = failed(500, ErrorType::Server, Some(ErrorCode::Internal), None);
        assert!(
            matches!(decide(&fault, 1, &gate, now), Next::RetryAfter(d) if d >= Duration::from_millis(50))
        );
        assert_eq!(decide(&fault, 3, &gate, now), Next::Done);
        let final_answer = failed(
            400,
            ErrorType::ConnectedServicesAccount,
            Some(ErrorCode::VirtualKeyRequired),
            None,
        );
        assert_eq!(decide(&final_answer, 1, &gate, now), Next::Done);
    }

    #[tokio::test]
    async fn sleeping_vehicle_is_reported_not_retried_within_the_probe() {
        let (events, _rx) = mpsc::unbounded_channel();
        let (gate, _t) = super::super::gate::Gate::new(4, None, 100, events);
        let mut asleep = failed(409, ErrorType::VehicleState, Some(ErrorCode::Asleep), None);
        if let Err(ApiError::Smartcar(e)) = &mut asleep.outcome {
            e.resolution = Some(crate::smartcar::Resolution {
                kind: Some("RETRY_LATER".into()),
                url: None,
            });
        }
        assert!(asleep.error().is_some_and(ApiError::is_retryable));
        assert_eq!(decide(&asleep, 1, &gate, Instant::now()), Next::Done);
    }

    #[tokio::test]
    async fn app_rate_limit_pauses_the_gate() {
        let (events, mut rx) = mpsc::unbounded_channel();
        let (gate, _t) = super::super::gate::Gate::new(4, None, 100, events);
        let now = Instant::now();
        let app = failed(
            429,
            ErrorType::RateLimit,
            Some(ErrorCode::SmartcarApi),
            Some(2),
        );
        assert_eq!(
            decide(&app, 1, &gate, now),
            Next::RetryAfter(Duration::ZERO)
        );
        assert!(matches!(
            rx.try_recv(),
            Ok(crate::fetch::Event::RateLimited { .. })
        ));
    }

    #[tokio::test]
    async fn join_all_keeps_input_order() {
        let out = join_all((0..4u64).rev().map(|i| async move {
            tokio::time::sleep(Duration::from_millis(i * 5)).await;
            i
        }))
        .await;
        assert_eq!(out, [3, 2, 1, 0]);
    }
}
