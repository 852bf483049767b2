//! Probes vehicles through the Smartcar client on a tokio task: priorities, concurrency cap, rate budget, retries. Emits events.

mod backoff;
pub mod bucket_file;
pub mod budget;
pub mod events;
mod gate;
mod listing;
pub mod outage;
pub mod plan;
mod probe;
mod queue;
mod scheduler;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::smartcar::v3::V3Client;
use crate::smartcar::{Client, DataKind, Secret};

pub use budget::RateBudget;
pub use events::{
    Command, ConnectionInfo, Event, ListingFilter, Priority, Progress, SourceName, SourceOutage,
    UnreadCandidate, VinLookupGaps,
};
pub use plan::{KnownVehicle, ProbePlan, Step, StepCost, V2Plan, V3Plan};

/// Which Smartcar API the scheduler speaks: v2.0 with per-user access tokens, or v3 with the
/// application token and `sc-user-id`.
#[derive(Clone)]
pub enum Api {
    V2(Client),
    V3(V3Client),
}

impl From<Client> for Api {
    fn from(client: Client) -> Api {
        Api::V2(client)
    }
}

impl From<V3Client> for Api {
    fn from(client: V3Client) -> Api {
        Api::V3(client)
    }
}

/// Where the fleet and its credentials come from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// Application management token: lists connections through the Management API.
    pub amt: Option<Secret>,
    /// Access tokens by user id (a tokens file).
    pub tokens: HashMap<String, Secret>,
    /// One access token whose user is found with `GET /user` (`--token`).
    pub single_token: Option<Secret>,
    /// A command (argv, no shell) printing the tokens CSV: run again when a token is refused,
    /// since v2.0 access tokens expire every two hours.
    pub tokens_command: Option<Vec<String>>,
}

/// How the scheduler spends the API.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// HTTP requests in flight at once.
    pub concurrency: usize,
    /// The client-side mirror of the app-wide limit; `None` turns it off.
    pub rate: Option<RateBudget>,
    /// Calls per vehicle per rolling hour (a batch counts once per item).
    pub per_vehicle_per_hour: u32,
    /// A report younger than this is reused unless the probe is forced.
    pub freshness: Duration,
    /// Tries per request, the first included.
    pub max_tries: u32,
    /// What the data batch reads.
    pub data: Vec<DataKind>,
    /// Also read `/tesla/attributes` (`atHome`) from Teslas.
    pub tesla_at_home: bool,
    /// A `RATE_LIMIT:VEHICLE` Retry-After up to this long is waited inside the probe; a longer
    /// one ends the probe with the rate-limit observation and holds the vehicle until then.
    pub max_inline_wait: Duration,
    /// First backoff delay after a retryable failure; it doubles per try, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// What a vehicle call is expected to take until calls have been measured: sweep cost
    /// estimates use it (Smartcar's lower figure by default).
    pub expected_latency: Duration,
    /// Where the app-wide bucket's state is kept, so the budget survives a restart and is shared
    /// by every vtriage process on the machine that uses the same file. `None`: memory only.
    pub budget_state: Option<std::path::PathBuf>,
    /// A sweep probes vehicles of these makes first (upper case; the makes the OEM rules concern),
    /// when the make is known before the probe (the v3 listing, a snapshot); otherwise listing order.
    pub sweep_first_makes: Vec<String>,
    /// The most connections a listing accepts before it stops with an error. Each costs memory
    /// and a probe; a server that keeps listing past this is broken or hostile, not a fleet.
    pub max_connections: usize,
    /// Where the scheduler puts every credential it knows, and whose redactor it uses: shared with
    /// the rest of the process (the desk's webhook path), so one set of secrets is redacted everywhere.
    pub keyring: crate::untrusted::Keyring,
    /// What the listing at the start asks for: every connection unless a command needs only one
    /// vehicle's or one user's.
    pub first_listing: ListingFilter,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            concurrency: 16,
            rate: Some(RateBudget::SMARTCAR_DEFAULT),
            per_vehicle_per_hour: 20,
            freshness: Duration::from_secs(15 * 60),
            max_tries: 3,
            data: vec![DataKind::Odometer, DataKind::Location],
            tesla_at_home: false,
            max_inline_wait: Duration::from_secs(30),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            expected_latency: Duration::from_secs(3),
            budget_state: None,
            sweep_first_makes: Vec::new(),
            max_connections: 1_000_000,
            keyring: crate::untrusted::Keyring::default(),
            first_listing: ListingFilter::all(),
        }
    }
}

/// The running scheduler: send commands, read events. Dropping `commands` shuts it down too.
pub struct SchedulerHandle {
    pub commands: mpsc::UnboundedSender<Command>,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub join: tokio::task::JoinHandle<()>,
}

/// Starts the scheduler with the probe plan of the API: v2.0 rounds, or one v3 signals request.
/// It lists the source's connections at once. Must be called inside a tokio runtime.
pub fn spawn(api: impl Into<Api>, source: Source, config: SchedulerConfig) -> SchedulerHandle {
    let api = api.into();
    let plan: Arc<dyn ProbePlan> = match api {
        Api::V2(_) => Arc::new(V2Plan {
            data: config.data.clone(),
            tesla_at_home: config.tesla_at_home,
        }),
        Api::V3(_) => Arc::new(V3Plan {
            data: config.data.clone(),
            tesla_at_home: config.tesla_at_home,
        }),
    };
    spawn_with_plan(api, source, config, plan)
}

/// Starts the scheduler with another probe plan.
pub fn spawn_with_plan(
    client: impl Into<Api>,
    source: Source,
    config: SchedulerConfig,
    plan: Arc<dyn ProbePlan>,
) -> SchedulerHandle {
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let join = tokio::spawn(scheduler::run(
        client.into(),
        source,
        config,
        plan,
        command_rx,
        event_tx,
    ));
    SchedulerHandle {
        commands: command_tx,
        events: event_rx,
        join,
    }
}
