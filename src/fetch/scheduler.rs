//! The scheduler task: turns commands into queued probes, starts them in priority order within the
//! concurrency and budget, reuses fresh reports, and reports progress.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::smartcar::v3::V3Error;
use crate::smartcar::v3::observe::{self, SignalQuestions};
use crate::smartcar::vin::DecodedVin;
use crate::smartcar::{DataKind, Probe, ProbeReport, Secret, deadline_after};
use crate::untrusted::{Redactor, text};

use super::events::{
    Command, ConnectionInfo, Event, ListingFilter, Priority, Progress, UnreadCandidate,
    VinLookupGaps, merge_owners,
};
use super::gate::{Gate, SharedPriority, Ticket};
use super::listing::{self, Listing, ListingRetry};
use super::outage::{self, Admission};
use super::plan::{self, KnownVehicle, ProbePlan};
use super::probe::{self, Access, ListedPermissions, ProbeJob, ProbeOutcome, RetryPolicy};
use super::queue::ProbeQueue;
use super::{Api, SchedulerConfig, Source};

/// The shortest gap between two progress events (at most ten a second).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// `tokens_command` is run again on a refused token at most this often: a token it cannot fix
/// must be reported, not retried in a loop.
const TOKENS_RELOAD_EVERY: Duration = Duration::from_secs(60);
/// How long `tokens_command` may take before it is given up on.
const TOKENS_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

type TokensReload = tokio::task::JoinHandle<Result<HashMap<String, Secret>, String>>;

/// The v3 signal that holds the VIN, read alone by a VIN lookup.
const VIN_SIGNAL: &str = "vehicleidentification-vin";

/// A VIN lookup under way: the candidates left, nearest first, and the reads sent.
struct VinSearch {
    /// Tells its reads from those of a lookup it replaced.
    id: u64,
    vin: String,
    pending: VecDeque<String>,
    /// Reads started: whether each has sent its request, and how to stop it.
    reads: Vec<(Arc<AtomicBool>, AbortHandle)>,
    in_flight: usize,
    unreadable: u64,
    /// Candidates whose VIN could not be read, and why.
    unread: Vec<UnreadCandidate>,
    /// Candidates planned, and reads answered so far.
    planned: u64,
    answered: u64,
}

/// How a lookup that found nothing ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum VinEnd {
    /// Every candidate was read or could not be.
    Exhausted,
    /// Smartcar answered 429 for the app: nothing more is worth sending before then.
    RateLimited(jiff::Timestamp),
    Cancelled,
}

impl VinSearch {
    /// Requests sent so far (a read stopped while waiting at the gate sent none).
    fn requests(&self) -> u64 {
        self.reads
            .iter()
            .filter(|(sent, _)| sent.load(Ordering::Relaxed))
            .count() as u64
    }

    /// Stops the reads that have not sent their request: the lookup no longer needs them.
    fn stop_unsent(&self) {
        for (sent, abort) in &self.reads {
            if !sent.load(Ordering::Relaxed) {
                abort.abort();
            }
        }
    }
}

/// What one VIN read of a lookup gave.
struct VinRead {
    lookup: u64,
    vehicle_id: String,
    vin: Option<String>,
    /// Why no VIN came back.
    unread: Option<Unread>,
}

/// Why a read gave no VIN.
#[derive(Debug, Clone, PartialEq)]
enum Unread {
    /// Smartcar answered 429 for the whole app: nothing more is worth sending before then.
    AppRateLimited { until: jiff::Timestamp },
    /// Something of this vehicle, for a person.
    Vehicle(String),
}

/// Why an error kept a VIN from being read, for a person who must pick the car among those
/// unread.
fn unread_why(e: &crate::smartcar::ApiError) -> Unread {
    use crate::smartcar::{ApiError, ErrorCode, ErrorType};
    let sc = e.smartcar();
    let code = sc.and_then(|s| s.code.as_ref());
    let status = e.status();
    if probe::is_app_rate_limit(e)
        || (status == Some(429) && !matches!(code, Some(ErrorCode::Vehicle)))
    {
        let wait = e.retry_after_s().unwrap_or(60);
        let until = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(wait).unwrap_or(i64::MAX / 2).min(86_400),
            ))
            .unwrap_or_else(|_| jiff::Timestamp::now());
        return Unread::AppRateLimited { until };
    }
    let why = if status == Some(429) {
        match e.retry_after_s() {
            Some(s) => format!(
                "rate limited for this vehicle (429), again in {} min",
                s.div_ceil(60)
            ),
            None => "rate limited for this vehicle (429)".to_string(),
        }
    } else if status == Some(430) || matches!(code, Some(ErrorCode::VehicleRequestLimit)) {
        "monthly request quota spent (430)".to_string()
    } else if matches!(e, ApiError::TokenUnsettled { .. }) {
        "refused (401), app token or connection not known".to_string()
    } else if status == Some(401) || sc.is_some_and(|s| s.error_type == ErrorType::Authentication) {
        "token expired or refused (401)".to_string()
    } else if let ApiError::Transport { message, .. } = e {
        format!("no answer: {}", short(message))
    } else {
        short(&e.to_string())
    };
    Unread::Vehicle(why)
}

/// One line of at most 80 characters of a text from the network.
fn short(message: &str) -> String {
    let line = text::one_line(message);
    if line.chars().count() <= 80 {
        return line.into_owned();
    }
    let mut cut: String = line.chars().take(79).collect();
    cut.push('…');
    cut
}

/// What the scheduler remembers about one vehicle.
#[derive(Debug, Default)]
struct VehicleState {
    known: KnownVehicle,
    last: Option<(ProbeReport, Instant)>,
    /// Smartcar asked (Retry-After) not to call before then.
    not_before: Option<Instant>,
}

struct Active {
    /// Whose access token the probe carries.
    user_id: Option<String>,
    priority: SharedPriority,
    sent_any: Arc<AtomicBool>,
    abort: AbortHandle,
}

/// Counters of the current run of work (reset when new work arrives after everything finished).
#[derive(Debug, Default)]
struct Run {
    done: usize,
    total: usize,
    errors: usize,
}

struct Scheduler {
    client: Api,
    source: Source,
    config: SchedulerConfig,
    plan: Arc<dyn ProbePlan>,
    retry: RetryPolicy,
    gate: Gate,
    events: mpsc::UnboundedSender<Event>,
    /// Every credential known so far: what a server echoes of them never leaves the scheduler.
    redactor: Redactor,
    /// The v3 client's token generation the redactor knows (it is rebuilt when a token is issued).
    redacted_generation: u64,

    listing: Option<Listing>,
    listing_failed: bool,
    /// Connections in listing order, and where each vehicle sits in it.
    connection_index: HashMap<String, usize>,
    vehicles: HashMap<String, VehicleState>,
    /// Users whose access token was refused this session: a vehicle with another owner is probed
    /// with that owner's token instead.
    rejected_users: HashSet<String>,

    queue: ProbeQueue,
    active: HashMap<String, Active>,
    tasks: JoinSet<ProbeOutcome>,
    task_vehicle: HashMap<tokio::task::Id, String>,
    max_active: usize,
    next_order: u64,
    /// A source is unreachable: no probe starts before then.
    held_until: Option<Instant>,
    /// The probe started to see whether an unreachable source is back.
    trial: Option<String>,

    /// Work asked for before the first listing finished.
    parked: Vec<(Vec<String>, Priority, bool)>,
    sweep_after_listing: Option<bool>,
    estimate_after_listing: bool,

    run: Run,
    progress_dirty: bool,
    progress_sent_at: Option<Instant>,

    /// `tokens_command` running again after a refused token, and when it last started.
    tokens_reload: Option<TokensReload>,
    tokens_reloaded_at: Option<Instant>,
    /// Vehicles whose token was refused, waiting for the reload to probe them again.
    awaiting_tokens: Vec<(String, Priority)>,

    /// A VIN asked for before the first listing finished.
    parked_vin: Option<DecodedVin>,
    vin_search: Option<VinSearch>,
    vin_reads: JoinSet<VinRead>,
    vin_lookups: u64,
}

pub async fn run(
    client: Api,
    source: Source,
    config: SchedulerConfig,
    plan: Arc<dyn ProbePlan>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let (gate, gate_timer) = Gate::new(
        config.concurrency,
        config.rate,
        config.per_vehicle_per_hour,
        events.clone(),
    );
    if let Some(path) = &config.budget_state {
        match super::bucket_file::BucketFile::open(path) {
            Ok(file) => gate.share_bucket(file),
            Err(e) => tracing::warn!(
                path = %path.display(),
                "rate budget kept in memory only: {e}"
            ),
        }
    }
    let retry = RetryPolicy {
        max_tries: config.max_tries.max(1),
        max_inline_wait: config.max_inline_wait,
        backoff_base: config.backoff_base,
        backoff_max: config.backoff_max,
    };
    let (redacted_generation, redactor) = secrets_of(&client, &source, None, &config.keyring);
    let mut s = Scheduler {
        redactor,
        redacted_generation,
        max_active: config.concurrency.max(1) * 2,
        client,
        source,
        config,
        plan,
        retry,
        gate,
        events,
        listing: None,
        listing_failed: false,
        connection_index: HashMap::new(),
        vehicles: HashMap::new(),
        rejected_users: HashSet::new(),
        queue: ProbeQueue::new(),
        active: HashMap::new(),
        tasks: JoinSet::new(),
        task_vehicle: HashMap::new(),
        next_order: 1,
        held_until: None,
        trial: None,
        parked: Vec::new(),
        sweep_after_listing: None,
        estimate_after_listing: false,
        run: Run::default(),
        progress_dirty: false,
        progress_sent_at: None,
        tokens_reload: None,
        tokens_reloaded_at: None,
        awaiting_tokens: Vec::new(),
        parked_vin: None,
        vin_search: None,
        vin_reads: JoinSet::new(),
        vin_lookups: 0,
    };
    let first = s.config.first_listing.clone();
    let mut listing_task = Some((first.clone(), s.start_listing(first)));
    // A listing asked for while another runs starts when it ends.
    let mut next_listing: Option<ListingFilter> = None;
    loop {
        if listing_task.is_none()
            && let Some(filter) = next_listing.take()
        {
            listing_task = Some((filter.clone(), s.start_listing(filter)));
        }
        let wake = s.next_wake();
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                None | Some(Command::Shutdown) => break,
                Some(Command::RefreshConnections) => {
                    if listing_task.as_ref().is_none_or(|(f, _)| !f.is_all()) {
                        next_listing = Some(ListingFilter::all());
                    }
                }
                Some(Command::ListConnectionsOf(filter)) => {
                    // The whole fleet asked for already holds this part.
                    if next_listing.as_ref().is_none_or(|f| !f.is_all()) {
                        next_listing = Some(filter);
                    }
                }
                Some(other) => s.command(other),
            },
            listed = async {
                match listing_task.as_mut() {
                    Some((_, task)) => task.await,
                    None => std::future::pending().await,
                }
            } => {
                let filter = listing_task.take().map(|(f, _)| f).unwrap_or_default();
                s.listed(
                    &filter,
                    listed.unwrap_or_else(|e| Err(format!("listing stopped: {e}"))),
                );
            }
            Some(joined) = s.tasks.join_next_with_id(), if !s.tasks.is_empty() => s.joined(joined),
            Some(read) = s.vin_reads.join_next(), if !s.vin_reads.is_empty() => {
                // A read stopped by its lookup reports nothing.
                if let Ok(read) = read {
                    s.vin_read(read);
                }
            }
            reloaded = async {
                match s.tokens_reload.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            } => {
                s.tokens_reload = None;
                s.tokens_reloaded(reloaded.unwrap_or_else(|e| Err(format!("stopped: {e}"))));
            }
            () = sleep_until(wake) => {}
        }
        s.dispatch();
        s.maybe_send_progress();
    }
    if let Some((_, task)) = listing_task {
        task.abort();
    }
    if let Some(task) = s.tokens_reload.take() {
        task.abort();
    }
    s.tasks.abort_all();
    s.vin_reads.abort_all();
    s.gate.close();
    gate_timer.abort();
}

/// Adds a narrowed listing's connections, tokens and details to the fleet listed before: a
/// connection known already is replaced by its new listing.
fn add_to_listing(known: &mut Listing, found: Listing) {
    let at: HashMap<String, usize> = known
        .connections
        .iter()
        .enumerate()
        .map(|(i, c)| (c.connection.vehicle_id.clone(), i))
        .collect();
    for c in found.connections {
        match at.get(&c.connection.vehicle_id) {
            Some(&i) => known.connections[i] = c,
            None => known.connections.push(c),
        }
    }
    known.tokens.extend(found.tokens);
    known.details.extend(found.details);
    if known.single_token_user.is_none() {
        known.single_token_user = found.single_token_user;
    }
}

/// The source's credentials, the v3 client secret and application tokens and, once listed, the
/// tokens the listing holds, put in the keyring; its redactor (every secret the process knows), with
/// the v3 token generation it covers.
fn secrets_of(
    api: &Api,
    source: &Source,
    listing: Option<&Listing>,
    keyring: &crate::untrusted::Keyring,
) -> (u64, Redactor) {
    let (generation, v3) = match api {
        Api::V3(client) => client.credentials_sent(),
        Api::V2(_) => (0, Vec::new()),
    };
    let redactor = keyring.set(
        "scheduler",
        source
            .amt
            .iter()
            .chain(source.tokens.values())
            .chain(source.single_token.iter())
            .chain(v3.iter())
            .chain(listing.into_iter().flat_map(|l| l.tokens.values())),
    );
    (generation, redactor)
}

/// Runs `tokens_command` (no shell) and reads its CSV. Its output is never quoted in an error: it
/// holds the tokens.
async fn run_tokens_command(argv: Vec<String>) -> Result<HashMap<String, Secret>, String> {
    let program = argv.first().cloned().unwrap_or_default();
    let run = tokio::process::Command::new(&program)
        .args(argv.iter().skip(1))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(TOKENS_COMMAND_TIMEOUT, run).await {
        Err(_) => return Err(format!("tokens_command `{program}` timed out")),
        Ok(Err(e)) => return Err(format!("tokens_command `{program}` cannot run: {e}")),
        Ok(Ok(o)) => o,
    };
    if !output.status.success() {
        return Err(format!(
            "tokens_command `{program}` failed ({})",
            output.status
        ));
    }
    crate::tokens::parse(
        std::path::Path::new("<tokens_command output>"),
        &output.stdout,
    )
    .map(|t| t.by_user)
    .map_err(|e| e.to_string())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Scheduler {
    fn start_listing(
        &self,
        filter: ListingFilter,
    ) -> tokio::task::JoinHandle<Result<Listing, String>> {
        let client = self.client.clone();
        let gate = self.gate.clone();
        let source = self.source.clone();
        let retry = ListingRetry {
            max_tries: self.retry.max_tries,
            backoff_base: self.retry.backoff_base,
            backoff_max: self.retry.backoff_max,
        };
        let max_connections = self.config.max_connections;
        tokio::spawn(async move {
            match client {
                Api::V2(client) => {
                    listing::list(&client, &gate, &source, &filter, retry, max_connections).await
                }
                Api::V3(client) => {
                    listing::list_v3(&client, &gate, &filter, retry, max_connections).await
                }
            }
        })
    }

    /// Rebuilds the redactor when the v3 client was issued a token it does not know yet.
    fn refresh_redactor(&mut self) {
        if let Api::V3(client) = &self.client
            && client.credentials_sent().0 != self.redacted_generation
        {
            let (generation, redactor) = secrets_of(
                &self.client,
                &self.source,
                self.listing.as_ref(),
                &self.config.keyring,
            );
            self.redacted_generation = generation;
            self.redactor = redactor;
        }
    }

    fn emit(&self, event: Event) {
        // The receiver gone means nobody listens; the task ends when commands close.
        let _ = self.events.send(event);
    }

    fn listed(&mut self, filter: &ListingFilter, result: Result<Listing, String>) {
        // Its pages count among the requests sent.
        self.progress_dirty = true;
        match result {
            Ok(mut listing) => {
                // The whole fleet listed replaces the one known: it goes now, so a large fleet is
                // not held three times (old, new, and the copy sent on) while this one is read.
                if filter.is_all() {
                    self.listing = None;
                }
                listing.connections = merge_owners(std::mem::take(&mut listing.connections));
                // A narrowed listing adds to the fleet known; it never drops the rest.
                if !filter.is_all()
                    && let Some(mut known) = self.listing.take()
                {
                    add_to_listing(&mut known, listing);
                    listing = known;
                }
                (self.redacted_generation, self.redactor) = secrets_of(
                    &self.client,
                    &self.source,
                    Some(&listing),
                    &self.config.keyring,
                );
                for (vehicle_id, listed) in &listing.details {
                    if let Some(a) = &listed.attributes {
                        let state = self.vehicles.entry(vehicle_id.clone()).or_default();
                        state.known.attributes = Some(a.clone());
                    }
                }
                self.connection_index = listing
                    .connections
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.connection.vehicle_id.clone(), i))
                    .collect();
                // What the listing said of each car is the server's text: a secret it echoes
                // goes no further than a probe's answer would.
                let mut connections = listing.connections.clone();
                if !self.redactor.is_empty() {
                    for c in &mut connections {
                        if let Some(a) = &mut c.attributes {
                            self.redactor.redact_string(&mut a.make);
                            self.redactor.redact_string(&mut a.model);
                        }
                        if let Some(at) = &mut c.connection.connected_at {
                            self.redactor.redact_string(at);
                        }
                    }
                }
                if filter.is_all() {
                    self.emit(Event::ConnectionsListed { connections });
                } else {
                    connections.retain(|c| {
                        c.users()
                            .any(|u| filter.admits(&c.connection.vehicle_id, u))
                    });
                    self.emit(Event::ConnectionsFound {
                        filter: filter.clone(),
                        connections,
                    });
                }
                self.listing = Some(listing);
            }
            Err(message) => {
                self.listing_failed = true;
                self.refresh_redactor();
                let message = self.redactor.redact(&message).into_owned();
                self.emit(Event::SourceError { message });
            }
        }
        for (ids, priority, force) in std::mem::take(&mut self.parked) {
            self.probe(ids, priority, force);
        }
        if let Some(force) = self.sweep_after_listing.take() {
            self.sweep(force);
        }
        if std::mem::take(&mut self.estimate_after_listing) {
            self.estimate(None);
        }
        if let Some(vin) = self.parked_vin.take() {
            self.find_vin(vin);
        }
    }

    fn listed_once(&self) -> bool {
        self.listing.is_some() || self.listing_failed
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Probe {
                vehicle_ids,
                priority,
                force,
            } => {
                if self.listed_once() {
                    self.probe(vehicle_ids, priority, force);
                } else {
                    self.parked.push((vehicle_ids, priority, force));
                }
            }
            Command::StartSweep { force } => {
                if self.listed_once() {
                    self.sweep(force);
                } else {
                    self.sweep_after_listing = Some(force);
                }
            }
            Command::CancelSweep => self.cancel_sweep(),
            Command::EstimateSweep => {
                if self.listed_once() {
                    self.estimate(None);
                } else {
                    self.estimate_after_listing = true;
                }
            }
            Command::Estimate { vehicle_ids } => self.estimate(Some(&vehicle_ids)),
            Command::KnownAttributes(list) => {
                for a in list {
                    let state = self.vehicles.entry(a.id.clone()).or_default();
                    state.known.attributes.get_or_insert(a);
                }
            }
            Command::KnownVins(list) => {
                for (vehicle_id, vin) in list {
                    self.vehicles.entry(vehicle_id).or_default().known.vin = Some(vin);
                }
            }
            Command::CancelVinLookup => {
                if let Some(search) = self.vin_search.take() {
                    search.stop_unsent();
                    self.end_vin_search(search, None, VinEnd::Cancelled);
                }
                // One waiting for the listing is dropped too.
                self.parked_vin = None;
            }
            Command::FindVin { vin } => {
                if self.listed_once() {
                    self.find_vin(vin);
                } else {
                    self.parked_vin = Some(vin);
                }
            }
            // Handled by the loop, which owns the listing task and the exit.
            Command::RefreshConnections | Command::ListConnectionsOf(_) | Command::Shutdown => {}
        }
    }

    fn connection(&self, vehicle_id: &str) -> Option<&ConnectionInfo> {
        let i = *self.connection_index.get(vehicle_id)?;
        self.listing.as_ref()?.connections.get(i)
    }

    /// The user and the access to probe a vehicle with, if any. v2.0: the first owner whose token
    /// has not been refused, else the first owner with a token, else the first owner. v3: the first
    /// owner not refused, else the first owner, in `sc-user-id`.
    fn credentials(&self, vehicle_id: &str) -> (Option<String>, Option<Access>) {
        if let Api::V3(_) = self.client {
            let Some(c) = self.connection(vehicle_id) else {
                return (None, None);
            };
            let owners = || c.users().filter(|u| !u.is_empty());
            let user = owners()
                .find(|u| !self.rejected_users.contains(*u))
                .or_else(|| owners().next())
                .map(str::to_string);
            return (user.clone(), user.map(Access::User));
        }
        let (user, token) = self.v2_credentials(vehicle_id);
        (user, token.map(Access::Token))
    }

    fn v2_credentials(&self, vehicle_id: &str) -> (Option<String>, Option<Secret>) {
        let listing = self.listing.as_ref();
        let token_of = |user: &str| {
            listing
                .and_then(|l| l.tokens.get(user))
                .or_else(|| self.source.tokens.get(user))
                .cloned()
        };
        match self.connection(vehicle_id) {
            Some(c) => {
                let with_token = || c.users().filter_map(|u| token_of(u).map(|t| (u, t)));
                let chosen = with_token()
                    .find(|(u, _)| !self.rejected_users.contains(*u))
                    .or_else(|| with_token().next());
                match chosen {
                    Some((user, token)) => (Some(user.to_string()), Some(token)),
                    None => (Some(c.connection.user_id.clone()), None),
                }
            }
            // Not listed: only a single --token can reach it.
            None => (
                listing.and_then(|l| l.single_token_user.clone()),
                self.source.single_token.clone(),
            ),
        }
    }

    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.active.is_empty()
    }

    /// Counts one more unit of work, starting a new run if the last one had finished.
    fn count_new_work(&mut self) {
        if self.is_idle() && self.run.done >= self.run.total {
            self.run = Run::default();
        }
        self.run.total += 1;
        self.progress_dirty = true;
    }

    /// A report of what is known of a vehicle (attributes, VIN) without any new observation.
    fn known_only(
        &self,
        vehicle_id: String,
        user_id: Option<String>,
        has_token: bool,
    ) -> ProbeReport {
        let known = self
            .vehicles
            .get(&vehicle_id)
            .map(|v| v.known.clone())
            .unwrap_or_default();
        ProbeReport {
            vehicle_id,
            user_id,
            has_token,
            attributes: known.attributes,
            vin: known.vin,
            observations: Vec::new(),
        }
    }

    fn finish_without_requests(&mut self, mut report: ProbeReport) {
        // Known attributes come from an earlier answer, as sent.
        self.redactor.redact_report(&mut report);
        self.run.done += 1;
        self.progress_dirty = true;
        self.emit(Event::Observed { report });
    }

    fn probe(&mut self, vehicle_ids: Vec<String>, priority: Priority, force: bool) {
        let now = Instant::now();
        for vehicle_id in vehicle_ids {
            if let Some(active) = self.active.get(&vehicle_id) {
                // Joins the probe in flight; its requests waiting at the gate move up.
                active.priority.raise(priority);
                continue;
            }
            if self.queue.contains(&vehicle_id) {
                self.queue.push(&vehicle_id, priority, force);
                continue;
            }
            let (user_id, token) = self.credentials(&vehicle_id);
            if token.is_none() {
                self.count_new_work();
                let report = self.known_only(vehicle_id, user_id, false);
                self.finish_without_requests(report);
                continue;
            }
            if let Some(report) = self.reusable(&vehicle_id, force, now) {
                self.count_new_work();
                self.finish_without_requests(report);
                continue;
            }
            self.count_new_work();
            self.queue.push(&vehicle_id, priority, force);
        }
    }

    /// The last report, when a new probe would not be worth its requests.
    fn reusable(&self, vehicle_id: &str, force: bool, now: Instant) -> Option<ProbeReport> {
        let state = self.vehicles.get(vehicle_id)?;
        let (report, at) = state.last.as_ref()?;
        let held = state.not_before.is_some_and(|t| t > now);
        // Smartcar asked us to leave this vehicle alone: even a forced probe gets the last answer.
        let fresh = now.saturating_duration_since(*at) < self.config.freshness;
        (held || (fresh && !force)).then(|| report.clone())
    }

    fn sweep(&mut self, force: bool) {
        let mut ids: Vec<String> = self
            .listing
            .as_ref()
            .map(|l| {
                l.connections
                    .iter()
                    .map(|c| c.connection.vehicle_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        // The makes the OEM rules concern go first; the sort is stable, so listing order holds within.
        if !self.config.sweep_first_makes.is_empty() {
            let first = |id: &String| {
                self.vehicles
                    .get(id)
                    .and_then(|v| v.known.attributes.as_ref())
                    .is_some_and(|a| {
                        self.config
                            .sweep_first_makes
                            .iter()
                            .any(|m| m.eq_ignore_ascii_case(&a.make))
                    })
            };
            ids.sort_by_key(|id| !first(id));
        }
        self.probe(ids, Priority::Sweep, force);
    }

    fn cancel_sweep(&mut self) {
        self.sweep_after_listing = None;
        let dropped = self.queue.drop_priority(Priority::Sweep);
        self.run.total = self.run.total.saturating_sub(dropped.len());
        // Sweep probes that have not sent anything yet are queued work too.
        for active in self.active.values() {
            if active.priority.get() == Priority::Sweep && !active.sent_any.load(Ordering::Relaxed)
            {
                active.abort.abort();
            }
        }
        self.progress_dirty = true;
    }

    /// What probing `only` (or every connection) would cost, sent as [`Event::SweepCost`].
    fn estimate(&mut self, only: Option<&[String]>) {
        let now = Instant::now();
        let mut requests = 0u64;
        let connections = self
            .listing
            .as_ref()
            .map(|l| l.connections.as_slice())
            .unwrap_or_default();
        let asked: Option<HashSet<&str>> = only.map(|ids| ids.iter().map(String::as_str).collect());
        let empty = VehicleState::default();
        for c in connections.iter().filter(|c| {
            c.has_token
                && asked
                    .as_ref()
                    .is_none_or(|a| a.contains(c.connection.vehicle_id.as_str()))
        }) {
            let vehicle_id = &c.connection.vehicle_id;
            if self.reusable(vehicle_id, false, now).is_some() {
                continue;
            }
            let state = self.vehicles.get(vehicle_id).unwrap_or(&empty);
            requests += u64::from(self.plan.worst_case(&state.known).requests);
        }
        let stats = self.gate.stats();
        let latency_s = stats
            .mean_latency_ms
            .map_or(self.config.expected_latency.as_secs_f64(), |ms| ms / 1000.0);
        let by_concurrency = requests as f64 / self.config.concurrency.max(1) as f64 * latency_s;
        let by_budget = self.gate.seconds_for(requests).unwrap_or(0.0);
        let eta_s = by_concurrency.max(by_budget).ceil() as u64;
        self.emit(Event::SweepCost { requests, eta_s });
    }

    /// Starts a VIN lookup (replacing one under way): ranks the listed vehicles the VIN may
    /// belong to, says what reading theirs costs, and starts reading.
    fn find_vin(&mut self, vin: DecodedVin) {
        if let Some(old) = self.vin_search.take() {
            old.stop_unsent();
        }
        self.vin_lookups += 1;
        let empty = KnownVehicle::default();
        let mut ranked: Vec<(plan::VinRank, usize, &str)> = Vec::new();
        let mut known_match = None;
        let mut no_access = Vec::new();
        let connections = self
            .listing
            .as_ref()
            .map(|l| l.connections.as_slice())
            .unwrap_or_default();
        for (i, c) in connections.iter().enumerate() {
            let id = c.connection.vehicle_id.as_str();
            let known = self.vehicles.get(id).map_or(&empty, |v| &v.known);
            let Some(fit) = plan::vin_rank(&vin, known) else {
                continue;
            };
            if known.vin.is_some() {
                known_match = Some(id.to_string());
                break;
            }
            if self.credentials(id).1.is_some() {
                ranked.push((fit, i, id));
            } else {
                no_access.push(id.to_string());
            }
        }
        ranked.sort_unstable();
        let pending: VecDeque<String> = if known_match.is_some() {
            VecDeque::new()
        } else {
            ranked
                .into_iter()
                .map(|(_, _, id)| id.to_string())
                .collect()
        };
        let requests = pending.len() as u64;
        let budget_left = self
            .gate
            .stats()
            .budget_left
            .map(|left| left.max(0.0).floor() as u64);
        let eta_s = self
            .gate
            .seconds_for(requests)
            .map_or(0, |s| s.max(0.0).ceil() as u64);
        self.emit(Event::VinLookupPlanned {
            vin: vin.vin.clone(),
            requests,
            make: vin.make().map(str::to_string),
            budget_left,
            eta_s,
        });
        let unread = if known_match.is_some() {
            Vec::new()
        } else {
            no_access
                .iter()
                .map(|id| self.unread_candidate(id, "no access token for its user".into()))
                .collect()
        };
        let search = VinSearch {
            id: self.vin_lookups,
            vin: vin.vin,
            pending,
            reads: Vec::new(),
            in_flight: 0,
            unreadable: 0,
            unread,
            planned: requests,
            answered: 0,
        };
        if known_match.is_some() || search.pending.is_empty() {
            self.end_vin_search(search, known_match, VinEnd::Exhausted);
            return;
        }
        self.vin_search = Some(search);
        self.read_more_vins();
    }

    /// A candidate whose VIN could not be read, with what is known of it.
    fn unread_candidate(&self, vehicle_id: &str, why: String) -> UnreadCandidate {
        let attributes = self
            .vehicles
            .get(vehicle_id)
            .and_then(|v| v.known.attributes.clone())
            .or_else(|| {
                self.connection(vehicle_id)
                    .and_then(|c| c.attributes.clone())
            });
        UnreadCandidate {
            vehicle_id: vehicle_id.to_string(),
            attributes,
            user_id: self.credentials(vehicle_id).0,
            why,
        }
    }

    /// Ends a lookup: the vehicle found, or what kept it from being found.
    fn end_vin_search(&mut self, search: VinSearch, vehicle_id: Option<String>, end: VinEnd) {
        let stopped_until = match end {
            VinEnd::RateLimited(until) => Some(until),
            _ => None,
        };
        let cancelled = end == VinEnd::Cancelled;
        let requests = search.requests();
        let gaps = if vehicle_id.is_some() {
            VinLookupGaps::default()
        } else {
            let mut near: Vec<(String, String)> = self
                .vehicles
                .iter()
                .filter_map(|(id, v)| {
                    let read = v.known.vin.as_deref()?;
                    (crate::smartcar::vin::distance(read.trim(), &search.vin) == Some(1))
                        .then(|| (id.clone(), read.to_string()))
                })
                .collect();
            near.sort_unstable();
            VinLookupGaps {
                unread: search.unread,
                stopped_until,
                not_tried: if end == VinEnd::Exhausted {
                    0
                } else {
                    search.planned.saturating_sub(search.answered)
                },
                near,
                cancelled,
                unknown: None,
            }
        };
        self.emit(Event::VinLookupDone {
            vin: search.vin,
            vehicle_id,
            requests,
            unreadable: search.unreadable,
            gaps,
        });
    }

    /// Starts reads of the lookup's next candidates, as many at once as the concurrency allows.
    fn read_more_vins(&mut self) {
        let window = self.config.concurrency.max(1);
        let Some(mut search) = self.vin_search.take() else {
            return;
        };
        while search.in_flight < window {
            let Some(vehicle_id) = search.pending.pop_front() else {
                break;
            };
            let (_, access) = self.credentials(&vehicle_id);
            let Some(access) = access else {
                // The token went away with a new listing.
                search.unreadable += 1;
                search.unread.push(
                    self.unread_candidate(&vehicle_id, "no access token for its user".into()),
                );
                continue;
            };
            let sent = Arc::new(AtomicBool::new(false));
            let ticket = Ticket {
                priority: SharedPriority::new(Priority::Focus),
                order: self.next_order,
                vehicle: Some((vehicle_id.clone(), 1)),
                sent_any: Some(Arc::clone(&sent)),
            };
            self.next_order += 1;
            let abort = self.vin_reads.spawn(read_vin(
                self.client.clone(),
                self.gate.clone(),
                access,
                ticket,
                search.id,
                vehicle_id,
            ));
            search.reads.push((sent, abort));
            search.in_flight += 1;
        }
        if search.in_flight == 0 {
            // Every candidate was read (or could not be) and none matched.
            self.end_vin_search(search, None, VinEnd::Exhausted);
        } else {
            self.vin_search = Some(search);
        }
    }

    /// A VIN came back (or did not): keep it, and end the lookup at the match.
    fn vin_read(&mut self, read: VinRead) {
        let vin = read
            .vin
            .map(|v| self.redactor.redact(v.trim()).into_owned())
            .filter(|v| !v.is_empty());
        if let Some(vin) = &vin {
            self.vehicles
                .entry(read.vehicle_id.clone())
                .or_default()
                .known
                .vin = Some(vin.clone());
            self.emit(Event::VinsLearned {
                vins: vec![(read.vehicle_id.clone(), vin.clone())],
            });
        }
        if self.vin_search.as_ref().is_none_or(|s| s.id != read.lookup) {
            return;
        }
        let unread = match (&vin, read.unread) {
            (Some(_), _) => None,
            (None, Some(why)) => Some(why),
            (None, None) => Some(Unread::Vehicle("no VIN in the answer".into())),
        };
        let candidate = match &unread {
            Some(Unread::Vehicle(why)) => {
                Some(self.unread_candidate(&read.vehicle_id, why.clone()))
            }
            _ => None,
        };
        let Some(search) = self.vin_search.as_mut() else {
            return;
        };
        search.in_flight = search.in_flight.saturating_sub(1);
        search.answered += 1;
        let progress = Event::VinLookupProgress {
            vin: search.vin.clone(),
            read: search.answered,
            of: search.planned,
        };
        self.emit(progress);
        let Some(search) = self.vin_search.as_mut() else {
            return;
        };
        match (vin, unread) {
            (Some(vin), _) if vin.eq_ignore_ascii_case(&search.vin) => {
                search.stop_unsent();
                if let Some(search) = self.vin_search.take() {
                    self.end_vin_search(search, Some(read.vehicle_id), VinEnd::Exhausted);
                }
            }
            (Some(_), _) => self.read_more_vins(),
            (None, Some(Unread::AppRateLimited { until })) => {
                // Every further read would be refused too: stop, and say when it may go on.
                search.stop_unsent();
                search.unreadable += 1;
                search.answered -= 1;
                if let Some(search) = self.vin_search.take() {
                    self.end_vin_search(search, None, VinEnd::RateLimited(until));
                }
            }
            (None, _) => {
                search.unreadable += 1;
                search.unread.extend(candidate);
                self.read_more_vins();
            }
        }
    }

    /// Starts queued probes, most urgent first, while slots allow. Focus never waits for a slot.
    /// While a source is unreachable nothing starts but one probe per retry.
    fn dispatch(&mut self) {
        let now = Instant::now();
        self.held_until = None;
        let trial = match self.gate.admission(now) {
            Admission::Open => false,
            Admission::Trial if self.trial.is_none() => true,
            Admission::Trial => return,
            Admission::Closed(until) => {
                self.held_until = Some(until);
                return;
            }
        };
        while let Some(priority) = self.queue.peek_ready(now) {
            if priority != Priority::Focus && self.active.len() >= self.max_active {
                break;
            }
            let Some(next) = self.queue.pop_ready(now) else {
                break;
            };
            let known = self
                .vehicles
                .get(&next.vehicle_id)
                .map(|v| v.known.clone())
                .unwrap_or_default();
            let calls = self.plan.worst_case(&known).vehicle_calls;
            let room_at = self.gate.vehicle_room_at(&next.vehicle_id, calls, now);
            if room_at > now {
                // Over the per-vehicle hourly cap: start when enough calls have left the window.
                self.queue.defer(next, room_at);
                continue;
            }
            let (user_id, access) = self.credentials(&next.vehicle_id);
            let Some(access) = access else {
                // The token went away with a new listing while the probe waited.
                let report = self.known_only(next.vehicle_id, user_id, false);
                self.finish_without_requests(report);
                continue;
            };
            let shared = SharedPriority::new(next.priority);
            let sent_any = Arc::new(AtomicBool::new(false));
            let listed_permissions = self
                .listing
                .as_ref()
                .and_then(|l| l.details.get(&next.vehicle_id))
                .map(|d| ListedPermissions {
                    permissions: d.permissions.to_vec(),
                    at: d.listed_at,
                });
            let job = ProbeJob {
                vehicle_id: next.vehicle_id.clone(),
                access,
                listed_permissions,
                known,
                priority: shared.clone(),
                order: self.next_order,
                sent_any: Arc::clone(&sent_any),
            };
            self.next_order += 1;
            let client = self.client.clone();
            let gate = self.gate.clone();
            let plan = Arc::clone(&self.plan);
            let retry = self.retry;
            let abort = self.tasks.spawn(async move {
                probe::run_probe(&client, &gate, plan.as_ref(), retry, job).await
            });
            self.task_vehicle
                .insert(abort.id(), next.vehicle_id.clone());
            self.active.insert(
                next.vehicle_id.clone(),
                Active {
                    user_id,
                    priority: shared,
                    sent_any,
                    abort,
                },
            );
            self.progress_dirty = true;
            if trial {
                self.gate.trial_started(now);
                self.trial = Some(next.vehicle_id.clone());
            }
            self.emit(Event::ProbeStarted {
                vehicle_id: next.vehicle_id,
                priority: next.priority,
            });
            if trial {
                break;
            }
        }
    }

    fn joined(&mut self, joined: Result<(tokio::task::Id, ProbeOutcome), tokio::task::JoinError>) {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, Ok(outcome)),
            Err(e) => (e.id(), Err(e)),
        };
        let Some(vehicle_id) = self.task_vehicle.remove(&id) else {
            return;
        };
        let active = self.active.remove(&vehicle_id);
        self.progress_dirty = true;
        if self.trial.as_deref() == Some(vehicle_id.as_str()) {
            // Its answer already told the gate; if it told nothing, the next retry may go.
            self.trial = None;
            self.gate.trial_ended();
        }
        match outcome {
            Ok(outcome) => self.finished(outcome, active),
            Err(e) if e.is_cancelled() => {
                // A cancelled sweep probe that had sent nothing: dropped work, not done work.
                self.run.total = self.run.total.saturating_sub(1);
            }
            Err(e) => {
                // A bug in a probe must not lose the vehicle: report it with what is known.
                let e = e.to_string();
                tracing::error!(
                    vehicle_id,
                    "probe task failed: {}",
                    text::one_line(&self.redactor.redact(&e))
                );
                let (user_id, _) = self.credentials(&vehicle_id);
                self.run.errors += 1;
                let report = self.known_only(vehicle_id, user_id, true);
                self.finish_without_requests(report);
            }
        }
    }

    /// Starts `tokens_command` again unless it runs already or ran within the last minute.
    /// Whether the vehicle waits for it.
    fn reload_tokens_for(&mut self, vehicle_id: &str, priority: Priority) -> bool {
        let Some(argv) = self.source.tokens_command.clone() else {
            return false;
        };
        if self.tokens_reload.is_none() {
            let recent = self
                .tokens_reloaded_at
                .is_some_and(|t| t.elapsed() < TOKENS_RELOAD_EVERY);
            if recent {
                return false;
            }
            tracing::info!("an access token was refused; running tokens_command again");
            self.tokens_reloaded_at = Some(Instant::now());
            self.tokens_reload = Some(tokio::spawn(run_tokens_command(argv)));
        }
        self.awaiting_tokens
            .push((vehicle_id.to_string(), priority));
        true
    }

    /// Takes the tokens `tokens_command` printed and probes the vehicles that waited for them.
    fn tokens_reloaded(&mut self, result: Result<HashMap<String, Secret>, String>) {
        match result {
            Ok(tokens) => {
                for (user, token) in &tokens {
                    let changed = self.source.tokens.get(user) != Some(token);
                    if changed {
                        self.rejected_users.remove(user);
                    }
                }
                if let Some(listing) = self.listing.as_mut() {
                    listing.tokens.extend(tokens.clone());
                }
                self.source.tokens = tokens;
                (self.redacted_generation, self.redactor) = secrets_of(
                    &self.client,
                    &self.source,
                    self.listing.as_ref(),
                    &self.config.keyring,
                );
            }
            Err(message) => tracing::warn!("{}", text::one_line(&message)),
        }
        for (vehicle_id, priority) in std::mem::take(&mut self.awaiting_tokens) {
            self.queue.push(&vehicle_id, priority, true);
        }
    }

    fn finished(&mut self, outcome: ProbeOutcome, active: Option<Active>) {
        let now = Instant::now();
        let (user_id, priority) = match active {
            Some(a) => (a.user_id, a.priority.get()),
            None => (self.credentials(&outcome.vehicle_id).0, Priority::Sweep),
        };
        // v2.0 tokens expire every two hours: a fresh set from tokens_command may read the vehicle.
        if outcome.observations.iter().any(|o| o.is_token_rejected())
            && self.reload_tokens_for(&outcome.vehicle_id, priority)
        {
            self.remember_known(&outcome);
            return;
        }
        // A refused token belongs to its user: another owner's token may still read the vehicle.
        if let Some(user) = &user_id
            && outcome.observations.iter().any(|o| o.is_token_rejected())
        {
            self.rejected_users.insert(user.clone());
            let (next_user, token) = self.credentials(&outcome.vehicle_id);
            let untried = next_user.is_some_and(|u| !self.rejected_users.contains(&u));
            if token.is_some() && untried {
                tracing::info!(
                    vehicle_id = outcome.vehicle_id,
                    "token of one owner refused; probing with another owner's token"
                );
                self.remember_known(&outcome);
                self.queue.push(&outcome.vehicle_id, priority, true);
                return;
            }
        }
        self.remember_known(&outcome);
        self.refresh_redactor();
        let state = self.vehicles.entry(outcome.vehicle_id.clone()).or_default();
        state.not_before = outcome.not_before;
        let mut report = ProbeReport {
            vehicle_id: outcome.vehicle_id,
            user_id,
            has_token: true,
            attributes: state.known.attributes.clone(),
            vin: state.known.vin.clone(),
            observations: outcome.observations,
        };
        // Here observations become events (and so the store, the snapshot, every view and report):
        // a server echoing a token, the AMT, the client secret or the app token stops here.
        self.redactor.redact_report(&mut report);
        state.last = Some((report.clone(), now));
        self.run.done += 1;
        if outcome.unresolved {
            self.run.errors += 1;
        }
        self.emit(Event::Observed { report });
    }

    /// Keeps what a probe learned (attributes, VIN) for the next probe of the vehicle.
    fn remember_known(&mut self, outcome: &ProbeOutcome) {
        let state = self.vehicles.entry(outcome.vehicle_id.clone()).or_default();
        if state.known.attributes.is_none() {
            state.known.attributes = outcome.known.attributes.clone();
        }
        if outcome.known.vin.is_some() {
            state.known.vin = outcome.known.vin.clone();
        }
    }

    fn next_wake(&mut self) -> Option<Instant> {
        let progress = self.progress_dirty.then(|| {
            self.progress_sent_at
                .map_or_else(Instant::now, |t| t + PROGRESS_EVERY)
        });
        let release = self.queue.next_release();
        [progress, release, self.held_until]
            .into_iter()
            .flatten()
            .min()
    }

    fn maybe_send_progress(&mut self) {
        if !self.progress_dirty {
            return;
        }
        let now = Instant::now();
        let due = self
            .progress_sent_at
            .is_none_or(|t| now.saturating_duration_since(t) >= PROGRESS_EVERY);
        // The last word of a run is never held back.
        if !due && !self.is_idle() {
            return;
        }
        let stats = self.gate.stats();
        self.emit(Event::Progress(Progress {
            done: self.run.done,
            total: self.run.total,
            in_flight: self.active.len(),
            errors: self.run.errors,
            requests_sent: stats.requests_sent,
            requests_per_s: stats.requests_per_s,
            budget_left: stats.budget_left,
            budget_refill_per_min: stats.refill_per_min,
        }));
        self.progress_dirty = false;
        self.progress_sent_at = Some(now);
    }
}

/// Reads one vehicle's VIN in one request: v2.0 `GET /vehicles/{id}/vin`, v3 the VIN signal alone.
/// `None` when the answer holds no VIN (an error, a refused token, the gate closed).
async fn read_vin(
    client: Api,
    gate: Gate,
    access: Access,
    ticket: Ticket,
    lookup: u64,
    vehicle_id: String,
) -> VinRead {
    let mut known = KnownVehicle::default();
    let mut unread = None;
    if let Ok(permit) = gate.acquire(ticket).await {
        let (observations, reach) = match (&client, &access) {
            (Api::V2(client), Access::Token(token)) => {
                let observations = vec![
                    client
                        .probe(token, &vehicle_id, Probe::Data(DataKind::Vin))
                        .await,
                ];
                let reach = outage::reach_of_observations(&client.origins().api, &observations);
                (observations, reach)
            }
            (Api::V3(client), Access::User(user)) => {
                match client.signal(&vehicle_id, user, VIN_SIGNAL).await {
                    Ok(report) => (
                        observe::observations(
                            &vehicle_id,
                            &report,
                            SignalQuestions {
                                data: &[DataKind::Vin],
                                at_home: false,
                                is_tesla: Some(false),
                            },
                            jiff::Timestamp::now(),
                        ),
                        outage::Reach::Answered,
                    ),
                    Err(e) => {
                        unread = Some(match &e {
                            V3Error::Api { error, .. } | V3Error::TokenUnsettled { error, .. } => {
                                unread_why(error)
                            }
                            other => Unread::Vehicle(short(&other.to_string())),
                        });
                        (Vec::new(), outage::reach_of_v3_error(client, &e))
                    }
                }
            }
            // A credential of the other API: nothing can be sent.
            _ => (Vec::new(), outage::Reach::Silent),
        };
        if let outage::Reach::Failed(f) = &reach {
            unread = Some(Unread::Vehicle(format!("no answer: {}", short(&f.kind))));
        }
        permit.settle(&reach);
        if unread.is_none() {
            unread = observations.iter().find_map(|o| o.error()).map(unread_why);
        }
        if let Some(Unread::AppRateLimited { until }) = &unread {
            // The rest of the app waits too, as after any probe's app-wide 429.
            let wait = until
                .duration_since(jiff::Timestamp::now())
                .try_into()
                .unwrap_or_default();
            gate.pause_until(deadline_after(Instant::now(), wait));
        }
        known.learn(&observations);
    } else {
        unread = Some(Unread::Vehicle("not sent: the lookup was stopped".into()));
    }
    VinRead {
        lookup,
        vehicle_id,
        vin: known.vin,
        unread,
    }
}
