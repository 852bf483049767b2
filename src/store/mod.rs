//! The one app state: every vehicle with its probe report and diagnosis, the filtered and sorted
//! rows, the selection, fleet counts, status history and the scheduler's header figures.
//!
//! A record keeps what the list reads (ids, attributes, [`Verdict`], [`Glance`]) as plain
//! fields and its evidence (observations and full diagnosis) packed, read for one vehicle at a
//! time through [`VehicleRecord::report`] and [`VehicleRecord::diagnosis`].
//!
//! Rows are kept in two sorted index lists (all vehicles, and those passing the filter), so an
//! observation moves one row with two binary searches instead of re-filtering and re-sorting the
//! fleet.

mod counts;
pub mod filter;
mod order;
mod packed;
mod search;
mod slots;
pub mod snapshot;
mod verdict;
pub mod watch;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use jiff::Timestamp;

use crate::fetch::{ConnectionInfo, Progress, SourceName, SourceOutage};
use crate::health::{Diagnosis, Finding, Remedy, RemedyKind, Severity, Status};
use crate::smartcar::{Observation, ProbeReport, VehicleAttributes};

pub use counts::Counts;
pub use filter::{Filter, FilterError};
pub use order::SortColumn;
pub use packed::{Packed, UnpackError};
pub use snapshot::{Snapshot, SnapshotError, load, save, save_forced};
pub use verdict::{FindingTag, Glance, Interner, Verdict};

use filter::{FuzzyMatcher, Row};
use order::ModelIndex;
use search::SearchText;
use slots::SlotIndex;

/// Turns what the probes saw into a verdict, given `now`. Supplied by whoever builds the store,
/// so the store stays free of policy loading.
pub type Diagnoser = Arc<dyn Fn(&ProbeReport, Timestamp) -> Diagnosis + Send + Sync>;

/// Status changes kept per vehicle; older ones are dropped.
pub const HISTORY_LEN: usize = 16;

/// A vehicle's status moved from one value to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub at: Timestamp,
    pub from: Status,
    pub to: Status,
    pub cause: ChangeCause,
}

/// What moved a vehicle's status: new evidence (a probe's answer, a webhook delivery) or the same
/// evidence read again (the rules changed, time passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChangeCause {
    Probe,
    Webhook,
    Rules,
    Time,
    /// The fleet listing changed what is known (a token configured or gone).
    Listing,
}

impl ChangeCause {
    /// `probe`, `webhook`, `rule change`, `time`, `listing`.
    pub fn label(self) -> &'static str {
        match self {
            ChangeCause::Probe => "probe",
            ChangeCause::Webhook => "webhook",
            ChangeCause::Rules => "rule change",
            ChangeCause::Time => "time",
            ChangeCause::Listing => "listing",
        }
    }

    /// A cause as a desk's status history writes it.
    fn named(cause: &str) -> Option<ChangeCause> {
        match cause.split_whitespace().next()? {
            "webhook" => Some(ChangeCause::Webhook),
            "probe" => Some(ChangeCause::Probe),
            "time" => Some(ChangeCause::Time),
            "rules" => Some(ChangeCause::Rules),
            "listing" => Some(ChangeCause::Listing),
            _ => None,
        }
    }

    /// Whether the newest evidence came by webhook (a desk's) or by a probe: a report's
    /// observations, or the diagnosis's own evidence when a resolution cleared them all.
    fn of_evidence(observations: &[Observation], diagnosis: &Diagnosis) -> ChangeCause {
        let by_webhook = match observations.iter().max_by_key(|o| o.at) {
            Some(o) => o.meta.webhook.is_some(),
            None => diagnosis
                .findings
                .iter()
                .flat_map(|f| &f.evidence)
                .max_by_key(|e| e.at)
                .is_some_and(|e| e.event_type.is_some()),
        };
        if by_webhook {
            ChangeCause::Webhook
        } else {
            ChangeCause::Probe
        }
    }
}

/// Everything known about one vehicle. Holds no token.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleRecord {
    pub vehicle_id: String,
    /// The first user the listing names for the vehicle.
    pub user_id: String,
    /// Further users who connected the same vehicle.
    pub other_users: Vec<String>,
    pub connected_at: Option<String>,
    /// An access token is configured for the vehicle's user.
    pub has_token: bool,
    pub attributes: Option<VehicleAttributes>,
    pub vin: Option<String>,
    /// The diagnosis as the list reads it; the full one is [`VehicleRecord::diagnosis`].
    pub verdict: Verdict,
    /// The probe report as the list's badges read it; the full one is [`VehicleRecord::report`].
    pub glance: Glance,
    /// The latest observations and the full diagnosis, compressed.
    packed: Option<Packed>,
    /// Oldest first, at most [`HISTORY_LEN`].
    pub history: Vec<StatusChange>,
    /// When the vehicle first went BLOCKED or DEGRADED; cleared once it is HEALTHY again.
    pub failing_since: Option<Timestamp>,
    /// When the latest probe answered; `None` when never probed.
    pub last_probe_at: Option<Timestamp>,
    /// A probe is under way.
    pub probing: bool,
    /// Loaded from a snapshot and not probed since.
    pub stale: bool,
    /// The verdict came made with the report (a desk's): shown as given, never diagnosed again
    /// here, neither as time passes nor when the local rules change. Its source sends the change.
    pub given_verdict: bool,
}

impl VehicleRecord {
    fn listed(info: &ConnectionInfo) -> VehicleRecord {
        VehicleRecord {
            vehicle_id: info.connection.vehicle_id.clone(),
            user_id: info.connection.user_id.clone(),
            other_users: info.other_users.clone(),
            connected_at: info.connection.connected_at.clone(),
            has_token: info.has_token,
            attributes: info.attributes.clone(),
            vin: None,
            verdict: Verdict::default(),
            glance: Glance::default(),
            packed: None,
            history: Vec::new(),
            failing_since: None,
            last_probe_at: None,
            probing: false,
            stale: false,
            given_verdict: false,
        }
    }

    /// Every user of the vehicle, the first listed first.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.user_id.as_str()).chain(self.other_users.iter().map(String::as_str))
    }

    /// Makes `user` the vehicle's shown user: the one whose token the evidence was read with, so
    /// a refused token is shown against its own user.
    fn put_user_first(&mut self, user: &str) {
        if self.user_id == user {
            return;
        }
        if self.user_id.is_empty() {
            self.user_id = user.to_string();
            return;
        }
        if let Some(i) = self.other_users.iter().position(|u| u == user) {
            std::mem::swap(&mut self.user_id, &mut self.other_users[i]);
        }
    }

    /// Whether `user_id` is one of the vehicle's users.
    pub fn is_owned_by(&self, user_id: &str) -> bool {
        self.users().any(|u| u == user_id)
    }

    /// The report the diagnoser gets for a vehicle never probed: nothing observed, and whether a token exists.
    fn empty_report(&self) -> ProbeReport {
        ProbeReport {
            vehicle_id: self.vehicle_id.clone(),
            user_id: Some(self.user_id.clone()),
            has_token: self.has_token,
            attributes: self.attributes.clone(),
            vin: self.vin.clone(),
            observations: Vec::new(),
        }
    }

    /// The latest probe report, with attributes and VIN merged in from earlier ones; `None`
    /// when the vehicle was never probed (or its saved evidence is damaged).
    pub fn report(&self) -> Option<ProbeReport> {
        self.last_probe_at?;
        let observations = match self.packed.as_ref()?.unpack() {
            Ok((observations, _)) => observations,
            Err(e) => {
                tracing::warn!(
                    vehicle = %crate::untrusted::text::one_line(&self.vehicle_id),
                    "{}",
                    crate::untrusted::text::one_line(&e.to_string())
                );
                return None;
            }
        };
        Some(ProbeReport {
            observations,
            ..self.empty_report()
        })
    }

    /// The full diagnosis: findings with evidence and remedies. From a damaged snapshot, the
    /// findings the list knows, with a remedy to probe again.
    pub fn diagnosis(&self) -> Diagnosis {
        let Some(packed) = &self.packed else {
            return Diagnosis::unknown();
        };
        match packed.unpack() {
            Ok((_, diagnosis)) => diagnosis,
            Err(e) => {
                tracing::warn!(
                    vehicle = %crate::untrusted::text::one_line(&self.vehicle_id),
                    "{}",
                    crate::untrusted::text::one_line(&e.to_string())
                );
                self.verdict_only()
            }
        }
    }

    /// Whether time alone can change the verdict: a probed vehicle that is healthy (its data can
    /// go stale), or whose findings count down to a rule's date or say the data is stale.
    fn verdict_depends_on_time(&self) -> bool {
        !self.given_verdict
            && self.last_probe_at.is_some()
            && (self.verdict.status == Status::Healthy
                || self.verdict.findings.iter().any(|f| {
                    f.rule.is_some()
                        || f.kind()
                            == crate::health::FindingKind::Builtin(
                                crate::health::FindingId::StaleData,
                            )
                }))
    }

    /// Bytes the packed evidence takes.
    pub fn evidence_bytes(&self) -> usize {
        self.packed.as_ref().map_or(0, Packed::len)
    }

    fn verdict_only(&self) -> Diagnosis {
        Diagnosis {
            status: self.verdict.status,
            checked_at: self.verdict.checked_at,
            findings: self
                .verdict
                .findings
                .iter()
                .map(|f| Finding {
                    id: f.id.to_string(),
                    severity: f.severity,
                    title: f.title.to_string(),
                    rule: f.rule.as_deref().map(str::to_string),
                    since: None,
                    evidence: Vec::new(),
                    remedy: Remedy {
                        kind: RemedyKind::RetryLater,
                        action:
                            "The saved evidence is damaged: refresh to probe this vehicle again"
                                .into(),
                        link: None,
                        customer_reply: String::new(),
                        retry_after_s: None,
                    },
                })
                .collect(),
        }
    }

    /// Takes a new diagnosis and the observations behind it, recording a status change and the
    /// start of a failure.
    fn set_diagnosis(
        &mut self,
        diagnosis: Diagnosis,
        observations: &[Observation],
        now: Timestamp,
        cause: ChangeCause,
        interner: &mut Interner,
    ) {
        let (from, to) = (self.verdict.status, diagnosis.status);
        if from != to {
            if self.history.len() >= HISTORY_LEN {
                let excess = self.history.len() + 1 - HISTORY_LEN;
                self.history.drain(..excess);
            }
            // Most vehicles change status once or twice: grow by one, not to four.
            self.history.reserve_exact(1);
            self.history.push(StatusChange {
                at: now,
                from,
                to,
                cause,
            });
        }
        let mut diagnosis = diagnosis;
        match to {
            Status::Blocked | Status::Degraded => {
                // The failure began at its first failing answer, not when the store heard of it.
                let first_seen = diagnosis
                    .main_finding()
                    .and_then(|f| f.evidence.iter().map(|e| e.dated()).min())
                    .map_or(now, |at| at.min(now));
                let since = *self.failing_since.get_or_insert(first_seen);
                // A finding dated by its evidence dates from the start of the failure, so the
                // page's "since" and the header's "failing since" tell the same time.
                let text = crate::report::format_instant(since);
                let findings: &mut [Finding] = if self.given_verdict {
                    &mut []
                } else {
                    &mut diagnosis.findings
                };
                for f in findings {
                    if f.rule.is_none()
                        && f.since.is_some()
                        && matches!(f.severity, Severity::Blocked | Severity::Degraded)
                    {
                        f.since = Some(text.clone());
                    }
                }
            }
            Status::Healthy => self.failing_since = None,
            Status::Warning | Status::Unknown => {}
        }
        self.keep(&diagnosis, observations, interner);
    }

    /// Stores a diagnosis and its observations without touching history: the verdict for the
    /// list, the rest packed.
    fn keep(
        &mut self,
        diagnosis: &Diagnosis,
        observations: &[Observation],
        interner: &mut Interner,
    ) {
        self.verdict = Verdict::of(diagnosis, interner);
        self.packed = (*diagnosis != Diagnosis::unknown() || !observations.is_empty())
            .then(|| Packed::pack(observations, diagnosis));
    }
}

/// Records looked at by one pass of [`Store::rediagnose_time_dependent`] (about 20 ms of work).
pub const REDIAGNOSE_PER_PASS: usize = 2_000;

/// A query shorter than this is never taken as a prefix: too many ids would share it.
const MIN_PREFIX: usize = 4;

/// Why a query names no single set of vehicles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    #[error("nothing to look for")]
    Empty,
    #[error("no vehicle id, VIN or user id matches")]
    NotFound,
    #[error("the prefix matches {vehicles} vehicle ids and {users} user ids; type more of it")]
    Ambiguous { vehicles: usize, users: usize },
}

/// The app state. See the module documentation.
#[derive(Clone)]
pub struct Store {
    diagnoser: Diagnoser,
    /// In listing order; a record's index ("slot") is stable until the next listing.
    records: Vec<VehicleRecord>,
    /// Per slot, the text free-text terms search.
    search: SearchText,
    models: ModelIndex,
    /// Per slot, the diagnosis status (what status filters read).
    statuses: Vec<Status>,
    /// Per slot, whether it passes the filter.
    visible: Vec<bool>,
    by_id: SlotIndex,
    /// Every slot in sort order.
    order: Vec<u32>,
    /// Visible slots in sort order.
    view: Vec<u32>,
    filter: Filter,
    filter_text: String,
    sort: (SortColumn, bool),
    selected: Option<u32>,
    counts: Counts,
    progress: Progress,
    rate_limited_until: Option<Timestamp>,
    rate_limited_by_smartcar: bool,
    source_error: Option<String>,
    /// Sources found unreachable, until a request sent after gets through.
    outages: Vec<SourceOutage>,
    sweep_cost: Option<(u64, u64)>,
    /// The latest `now` the store was given: the time stamped on a snapshot.
    clock: Option<Timestamp>,
    /// Where the next pass of [`Store::rediagnose_time_dependent`] starts.
    rediagnose_from: usize,
    /// The ids of the rules in force, when known: a `rule:` filter term must name one of them.
    rule_ids: Option<Vec<String>>,
    /// While a verdict given by its source is stored: the cause it named.
    given_cause: Option<ChangeCause>,
    /// Added to every time a probe report carries, so that evidence, check ages and "since"
    /// live on the same clock as `now` when `--now` moves it.
    evidence_shift: jiff::SignedDuration,
    fuzzy: FuzzyMatcher,
    interner: Interner,
    /// Cars watched once their fix was sent (`w`), kept across runs.
    pub watches: watch::Watches,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("vehicles", &self.records.len())
            .field("visible", &self.view.len())
            .field("filter", &self.filter_text)
            .field("sort", &self.sort)
            .finish_non_exhaustive()
    }
}

/// The compact facts the filter reads for `slot`.
fn row_facts<'a>(search: &'a SearchText, statuses: &[Status], slot: u32) -> Row<'a> {
    Row {
        search,
        slot,
        status: statuses
            .get(slot as usize)
            .copied()
            .unwrap_or(Status::Unknown),
    }
}

/// Position of `slot` in a sorted index list. Falls back to a scan if the list is out of order,
/// which would be a bug, so that a wrong position can never be used to remove the wrong row.
fn position(list: &[u32], slot: u32, cmp: impl Fn(u32, u32) -> Ordering) -> Option<usize> {
    match list.binary_search_by(|&s| cmp(s, slot)) {
        Ok(p) if list[p] == slot => Some(p),
        _ => list.iter().position(|&s| s == slot),
    }
}

/// Moves the row at `old` (whose key just changed) to where it now sorts, shifting only the rows in between.
fn reposition(list: &mut [u32], old: usize, cmp: impl Fn(u32, u32) -> Ordering) {
    let slot = list[old];
    let p = list[..old].partition_point(|&s| cmp(s, slot) == Ordering::Less);
    if p < old {
        list[p..=old].rotate_right(1);
        return;
    }
    let q = list[old + 1..].partition_point(|&s| cmp(s, slot) == Ordering::Less);
    if q > 0 {
        list[old..=old + q].rotate_left(1);
    }
}

impl Store {
    /// An empty store sorted by status, descending (BLOCKED first), with no filter.
    pub fn new(diagnoser: Diagnoser) -> Store {
        Store {
            diagnoser,
            records: Vec::new(),
            search: SearchText::default(),
            models: ModelIndex::default(),
            statuses: Vec::new(),
            visible: Vec::new(),
            by_id: SlotIndex::default(),
            order: Vec::new(),
            view: Vec::new(),
            filter: Filter::default(),
            filter_text: String::new(),
            sort: (SortColumn::Status, true),
            selected: None,
            counts: Counts::default(),
            progress: Progress::default(),
            rate_limited_until: None,
            rate_limited_by_smartcar: false,
            source_error: None,
            outages: Vec::new(),
            sweep_cost: None,
            clock: None,
            rediagnose_from: 0,
            rule_ids: None,
            given_cause: None,
            evidence_shift: jiff::SignedDuration::ZERO,
            fuzzy: FuzzyMatcher::default(),
            interner: Interner::default(),
            watches: watch::Watches::default(),
        }
    }

    /// Marks the watched cars that left their failure as the records now show them; returns
    /// those that recovered with this call.
    pub fn check_watches(&mut self, now: Timestamp) -> Vec<(String, watch::Recovery)> {
        let (records, by_id) = (&self.records, &self.by_id);
        self.watches.check(
            |id| by_id.get(records, id).map(|s| &records[s as usize]),
            now,
        )
    }

    fn tick(&mut self, now: Timestamp) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
    }

    /// The source listed these connections: vehicles appear, change owners or leave, and a
    /// source error clears. Each call below returns whether anything visible changed.
    pub fn listed(&mut self, connections: &[ConnectionInfo], now: Timestamp) -> bool {
        self.tick(now);
        self.source_error = None;
        self.reconcile(connections, now);
        true
    }

    /// A probe of this vehicle began.
    pub fn probing(&mut self, vehicle_id: &str, now: Timestamp) -> bool {
        self.tick(now);
        match self.by_id.get(&self.records, vehicle_id) {
            Some(slot) => {
                let record = &mut self.records[slot as usize];
                !std::mem::replace(&mut record.probing, true)
            }
            None => false,
        }
    }

    /// A probe ended with this report: the vehicle is diagnosed again and its row moves.
    pub fn observed(&mut self, report: &ProbeReport, now: Timestamp) -> bool {
        self.tick(now);
        self.observe(report, None, now);
        true
    }

    /// Its source diagnosed the vehicle from this report: the verdict is kept as given (not
    /// diagnosed here, now or as time passes) and the row moves. `cause` is what the source says
    /// moved it (`webhook …`, `probe …`, `time`, `rules`); without it the newest evidence tells.
    pub fn diagnosed(
        &mut self,
        report: &ProbeReport,
        diagnosis: &Diagnosis,
        cause: Option<&str>,
        now: Timestamp,
    ) -> bool {
        self.tick(now);
        self.given_cause = cause.and_then(ChangeCause::named);
        self.observe(report, Some(diagnosis), now);
        self.given_cause = None;
        true
    }

    /// The header's progress figures.
    pub fn set_progress(&mut self, progress: &Progress, now: Timestamp) -> bool {
        self.tick(now);
        if &self.progress == progress {
            return false;
        }
        self.progress = progress.clone();
        true
    }

    /// Requests wait until `until` (Smartcar's Retry-After or the local budget).
    /// Nothing is sent before `until`: Smartcar said 429 (`by_smartcar`), or the local bucket
    /// is empty. Our own pacing never hides a pause Smartcar asked for.
    pub fn rate_limited(&mut self, until: Timestamp, by_smartcar: bool, now: Timestamp) -> bool {
        self.tick(now);
        let smartcar_pause = self.rate_limited_by_smartcar
            && self
                .rate_limited_until
                .is_some_and(|u| u > now && u >= until);
        if !by_smartcar && smartcar_pause {
            return false;
        }
        self.rate_limited_until = Some(until);
        self.rate_limited_by_smartcar = by_smartcar;
        true
    }

    /// What a sweep would cost: requests and seconds.
    pub fn set_sweep_cost(&mut self, requests: u64, eta_s: u64, now: Timestamp) -> bool {
        self.tick(now);
        self.sweep_cost = Some((requests, eta_s));
        true
    }

    /// The source could not be read; shown until the next listing.
    pub fn source_failed(&mut self, message: &str, now: Timestamp) -> bool {
        self.tick(now);
        self.source_error = Some(message.to_string());
        true
    }

    /// A source every probe needs is unreachable (or refuses the app); replaces what was known of it.
    pub fn source_unreachable(&mut self, outage: &SourceOutage, now: Timestamp) -> bool {
        self.tick(now);
        self.outages.retain(|o| o.source != outage.source);
        self.outages.push(outage.clone());
        self.outages.sort_by_key(|o| o.source);
        true
    }

    /// The source answers again.
    pub fn source_recovered(&mut self, source: SourceName, now: Timestamp) -> bool {
        self.tick(now);
        let before = self.outages.len();
        self.outages.retain(|o| o.source != source);
        self.outages.len() != before
    }

    /// VINs learned, as `(vehicle_id, vin)`.
    pub fn learned_vins(&mut self, vins: &[(String, String)], now: Timestamp) -> bool {
        self.tick(now);
        let mut changed = false;
        for (vehicle_id, vin) in vins {
            changed |= self.learn_vin(vehicle_id, vin);
        }
        changed
    }

    /// The known VINs nearest a VIN (at most two characters apart), nearest first, as
    /// `(vehicle_id, vin)`: what a mistyped VIN was likely meant to be.
    pub fn nearest_vins(&self, vin: &str, most: usize) -> Vec<(String, String)> {
        let mut near: Vec<(usize, &str, &str)> = self
            .records
            .iter()
            .filter_map(|r| {
                let known = r.vin.as_deref()?;
                let d = crate::smartcar::vin::distance(known.trim(), vin.trim())?;
                (d <= 2).then_some((d, r.vehicle_id.as_str(), known))
            })
            .collect();
        near.sort_unstable();
        near.into_iter()
            .take(most)
            .map(|(_, id, v)| (id.to_string(), v.to_string()))
            .collect()
    }

    /// Every vehicle, whatever the filter, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = &VehicleRecord> {
        self.records.iter()
    }

    /// All vehicles, whatever the filter.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn vehicle(&self, id: &str) -> Option<&VehicleRecord> {
        self.by_id
            .get(&self.records, id)
            .map(|slot| &self.records[slot as usize])
    }

    /// The vehicle an agent means by `query`: its vehicle id, its VIN (case ignored), or the user
    /// id of its owner (then the user's first listed vehicle). Surrounding spaces are ignored.
    /// The vehicle a query names (see [`Store::find_all`]); for a user, their worst vehicle.
    pub fn find(&self, query: &str) -> Option<&VehicleRecord> {
        self.find_all(query).ok()?.into_iter().next()
    }

    /// Every vehicle a query names, worst first: a vehicle id, a VIN, a user id (all of that user's
    /// vehicles), or a prefix of a vehicle or user id that names exactly one of them.
    pub fn find_all(&self, query: &str) -> Result<Vec<&VehicleRecord>, FindError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(FindError::Empty);
        }
        if let Some(r) = self.vehicle(query) {
            return Ok(vec![r]);
        }
        if let Some(r) = self.records.iter().find(|r| {
            r.vin
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case(query))
        }) {
            return Ok(vec![r]);
        }
        let of_user = |user: &str| -> Vec<&VehicleRecord> {
            let mut cars: Vec<&VehicleRecord> = self
                .records
                .iter()
                .filter(|r| r.is_owned_by(user))
                .collect();
            cars.sort_by(|a, b| {
                b.verdict
                    .status
                    .cmp(&a.verdict.status)
                    .then_with(|| a.vehicle_id.cmp(&b.vehicle_id))
            });
            cars
        };
        let cars = of_user(query);
        if !cars.is_empty() {
            return Ok(cars);
        }
        if query.len() < MIN_PREFIX {
            return Err(FindError::NotFound);
        }
        let lower = query.to_ascii_lowercase();
        let starts = |id: &str| {
            id.len() >= lower.len()
                && id.as_bytes()[..lower.len()].eq_ignore_ascii_case(lower.as_bytes())
        };
        let vehicles: Vec<&VehicleRecord> = self
            .records
            .iter()
            .filter(|r| starts(&r.vehicle_id))
            .collect();
        let mut users: Vec<&str> = self
            .records
            .iter()
            .flat_map(VehicleRecord::users)
            .filter(|u| starts(u))
            .collect();
        users.sort_unstable();
        users.dedup();
        match (vehicles.as_slice(), users.as_slice()) {
            ([one], []) => Ok(vec![*one]),
            ([], [user]) => Ok(of_user(user)),
            ([], []) => Err(FindError::NotFound),
            _ => Err(FindError::Ambiguous {
                vehicles: vehicles.len(),
                users: users.len(),
            }),
        }
    }

    /// The rules in force, so that a filter naming no rule of them is an error, not an empty list.
    pub fn know_rules(&mut self, ids: Vec<String>) {
        self.rule_ids = Some(ids);
    }

    /// Replaces the filter. On a parse error the current filter stays.
    pub fn set_filter(&mut self, expr: &str) -> Result<(), FilterError> {
        if expr == self.filter_text {
            return Ok(());
        }
        let mut filter = Filter::parse(expr)?;
        if let Some(ids) = &self.rule_ids {
            filter.check_rules(ids)?;
        }
        filter.prefer_models(&self.records);
        let narrowing = filter.narrows(&self.filter);
        self.filter = filter;
        self.filter_text = expr.to_string();
        if narrowing {
            // Only rows kept by the previous filter can pass; test them in slot order (memory order).
            for (slot, record) in self.records.iter().enumerate() {
                if self.visible[slot] {
                    let row = row_facts(&self.search, &self.statuses, slot as u32);
                    self.visible[slot] = self.filter.matches(record, &row, &mut self.fuzzy);
                }
            }
            let visible = &self.visible;
            self.view.retain(|&slot| visible[slot as usize]);
        } else {
            self.refilter();
        }
        self.keep_selection_visible();
        Ok(())
    }

    pub fn filter_text(&self) -> &str {
        &self.filter_text
    }

    pub fn set_sort(&mut self, column: SortColumn, descending: bool) {
        if self.sort == (column, descending) {
            return;
        }
        self.sort = (column, descending);
        self.order = order::sort_all(&self.records, &self.models, column, descending);
        self.view = self
            .order
            .iter()
            .copied()
            .filter(|&s| self.visible[s as usize])
            .collect();
    }

    /// The sort column and whether it is descending.
    pub fn sort(&self) -> (SortColumn, bool) {
        self.sort
    }

    /// Rows passing the filter.
    pub fn visible_len(&self) -> usize {
        self.view.len()
    }

    /// The row at `index` in filtered, sorted order.
    pub fn row(&self, index: usize) -> Option<&VehicleRecord> {
        self.view
            .get(index)
            .map(|&slot| &self.records[slot as usize])
    }

    /// Rows in `range` (clamped to the visible rows), in filtered, sorted order.
    pub fn rows(&self, range: Range<usize>) -> impl Iterator<Item = &VehicleRecord> {
        self.clamp(range)
            .iter()
            .map(|&slot| &self.records[slot as usize])
    }

    /// Vehicle ids of the rows in `range`: what the scheduler probes at Visible priority.
    pub fn visible_ids(&self, range: Range<usize>) -> Vec<String> {
        self.rows(range).map(|r| r.vehicle_id.clone()).collect()
    }

    fn clamp(&self, range: Range<usize>) -> &[u32] {
        let end = range.end.min(self.view.len());
        let start = range.start.min(end);
        &self.view[start..end]
    }

    /// Selects a vehicle by id, visible or not (a vehicle opened through [`Store::find`]); an
    /// unknown id or `None` clears the selection. A selected vehicle that is filtered out gives
    /// way to the nearest row when the filter changes or when its own row leaves the view.
    pub fn select(&mut self, vehicle_id: Option<&str>) {
        self.selected = vehicle_id.and_then(|id| self.by_id.get(&self.records, id));
    }

    pub fn selected(&self) -> Option<&VehicleRecord> {
        self.selected.map(|slot| &self.records[slot as usize])
    }

    /// Row index of the selected vehicle; `None` when nothing is selected or it is filtered out.
    pub fn selected_index(&self) -> Option<usize> {
        let slot = self.selected?;
        if !self.visible[slot as usize] {
            return None;
        }
        position(&self.view, slot, |a, b| self.cmp_rows(a, b))
    }

    /// Where the selection stands for moving: its row, or the row it would sort at when filtered out.
    fn cursor(&self) -> Option<usize> {
        let slot = self.selected?;
        if self.visible[slot as usize] {
            return self.selected_index();
        }
        Some(
            self.insertion_point(slot)
                .min(self.view.len().saturating_sub(1)),
        )
    }

    fn select_row(&mut self, index: usize) {
        if let Some(&slot) = self.view.get(index) {
            self.selected = Some(slot);
        }
    }

    /// Moves the selection `n` rows down (clamped); selects the first row when nothing is selected.
    pub fn select_next(&mut self, n: usize) {
        if self.view.is_empty() {
            return;
        }
        let target = match self.cursor() {
            Some(i) => i.saturating_add(n).min(self.view.len() - 1),
            None => 0,
        };
        self.select_row(target);
    }

    /// Moves the selection `n` rows up (clamped); selects the first row when nothing is selected.
    pub fn select_prev(&mut self, n: usize) {
        let target = self.cursor().map_or(0, |i| i.saturating_sub(n));
        self.select_row(target);
    }

    pub fn select_first(&mut self) {
        self.select_row(0);
    }

    pub fn select_last(&mut self) {
        self.select_row(self.view.len().saturating_sub(1));
    }

    /// Tallies over all vehicles.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Nothing is sent before this time (compare with `now` to know whether it is still in force).
    /// Whether the wait of [`Store::rate_limited_until`] was asked by Smartcar (a 429), not our
    /// own pacing.
    pub fn rate_limited_by_smartcar(&self) -> bool {
        self.rate_limited_by_smartcar
    }

    pub fn rate_limited_until(&self) -> Option<Timestamp> {
        self.rate_limited_until
    }

    /// Why the source failed as a whole, until the next successful listing.
    pub fn source_error(&self) -> Option<&str> {
        self.source_error.as_deref()
    }

    /// The sources unreachable now, Vehicle API first.
    pub fn outages(&self) -> &[SourceOutage] {
        &self.outages
    }

    /// What the header says of the sources down: `Vehicle API unreachable (connection refused) ·
    /// retrying in 30 s`, one clause per source.
    pub fn outage_headline(&self, now: Timestamp) -> Option<String> {
        if self.outages.is_empty() {
            return None;
        }
        Some(
            self.outages
                .iter()
                .map(|o| o.headline(now))
                .collect::<Vec<_>>()
                .join(" · "),
        )
    }

    /// What a full sweep would cost: requests and estimated seconds.
    pub fn sweep_cost(&self) -> Option<(u64, u64)> {
        self.sweep_cost
    }

    /// Moves every time later probe reports carry (answers, data ages) by `shift`: with `--now`,
    /// the clock the reports were stamped with is not the one dates are computed against.
    pub fn shift_evidence_by(&mut self, shift: jiff::SignedDuration) {
        self.evidence_shift = shift;
    }

    /// Diagnoses again, at `now`, the probed vehicles whose verdict time alone can change (a rule's
    /// countdown, data going stale), from their packed evidence and without a probe; a record whose
    /// verdict stays the same is left alone. Returns whether any row changed.
    ///
    /// Each call takes at most [`REDIAGNOSE_PER_PASS`] records, going on where the last one
    /// stopped: unpacking and diagnosing a whole large fleet at once would stall the dashboard for
    /// a second, while what time changes here (hours of staleness, a rule's day) can wait a few
    /// passes.
    pub fn rediagnose_time_dependent(&mut self, now: Timestamp) -> bool {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
        let len = self.records.len();
        let start = if self.rediagnose_from < len {
            self.rediagnose_from
        } else {
            0
        };
        let take = len.min(REDIAGNOSE_PER_PASS);
        self.rediagnose_from = (start + take) % len.max(1);
        let due: Vec<u32> = (0..take)
            .map(|i| ((start + i) % len) as u32)
            .filter(|&slot| self.records[slot as usize].verdict_depends_on_time())
            .collect();
        let mut changed = false;
        for slot in due {
            let Some(report) = self.records[slot as usize].report() else {
                continue;
            };
            let diagnosis = (self.diagnoser)(&report, now);
            let verdict = Verdict::of(&diagnosis, &mut self.interner);
            if verdict == self.records[slot as usize].verdict {
                continue;
            }
            changed = true;
            let mut interner = std::mem::take(&mut self.interner);
            let shared = &mut interner;
            self.update_slot(slot, move |r| {
                r.set_diagnosis(
                    diagnosis,
                    &report.observations,
                    now,
                    ChangeCause::Time,
                    shared,
                );
            });
            self.interner = interner;
        }
        changed
    }

    /// Diagnoses every vehicle again (the policies or the app's needs changed).
    pub fn rediagnose_all(&mut self, now: Timestamp) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
        for record in self.records.iter_mut().filter(|r| !r.given_verdict) {
            let report = record.report();
            let diagnosis = match &report {
                Some(report) => (self.diagnoser)(report, now),
                None if !record.has_token => (self.diagnoser)(&record.empty_report(), now),
                None => Diagnosis::unknown(),
            };
            let observations = report.map(|r| r.observations).unwrap_or_default();
            record.set_diagnosis(
                diagnosis,
                &observations,
                now,
                ChangeCause::Rules,
                &mut self.interner,
            );
        }
        self.rebuild();
    }

    /// Takes what a snapshot knows. Into an empty store, its records become the fleet (marked
    /// stale until probed). Into a listed fleet, it fills in vehicles not probed yet and adds
    /// none: the listing decides which vehicles exist.
    pub fn restore(&mut self, mut snapshot: Snapshot) {
        let selected = self.selected_id();
        self.watches.restore(std::mem::take(&mut snapshot.watches));
        // Saved finding texts join the ones live records already share.
        for r in &mut snapshot.records {
            r.verdict.share(&mut self.interner);
        }
        if self.records.is_empty() {
            let mut seen = std::collections::HashSet::new();
            self.records = snapshot
                .records
                .into_iter()
                .filter(|r| seen.insert(r.vehicle_id.clone()))
                .map(|mut r| {
                    r.stale = true;
                    r.probing = false;
                    r
                })
                .collect();
        } else {
            for saved in snapshot.records {
                let Some(slot) = self.by_id.get(&self.records, &saved.vehicle_id) else {
                    continue;
                };
                let live = &mut self.records[slot as usize];
                // A VIN read once (a lookup reads VINs without probing) names the vehicle for good.
                if live.vin.is_none() {
                    live.vin.clone_from(&saved.vin);
                }
                if live.last_probe_at.is_some() || saved.last_probe_at.is_none() {
                    continue;
                }
                live.attributes = live.attributes.take().or(saved.attributes);
                live.vin = live.vin.take().or(saved.vin);
                live.verdict = saved.verdict;
                live.glance = saved.glance;
                live.packed = saved.packed;
                live.history = saved.history;
                live.failing_since = saved.failing_since;
                live.last_probe_at = saved.last_probe_at;
                live.stale = true;
            }
        }
        self.rebuild();
        self.selected = selected.and_then(|id| self.by_id.get(&self.records, &id));
        self.keep_selection_visible();
    }

    /// Everything worth keeping across runs, stamped with the latest `now` the store was given.
    pub fn to_snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::new(
            self.clock.unwrap_or_else(Timestamp::now),
            self.records.clone(),
        );
        snapshot.watches = self.watches.to_vec();
        snapshot
    }

    fn selected_id(&self) -> Option<String> {
        self.selected().map(|r| r.vehicle_id.clone())
    }

    fn cmp_rows(&self, a: u32, b: u32) -> Ordering {
        order::cmp_rows(&self.records, self.sort.0, self.sort.1, a, b)
    }

    /// Where `slot` would sit among the visible rows.
    fn insertion_point(&self, slot: u32) -> usize {
        self.view
            .partition_point(|&s| s != slot && self.cmp_rows(s, slot) == Ordering::Less)
    }

    /// After the rows changed: a selected vehicle that is now filtered out gives way to the row
    /// nearest to where it would sort.
    fn keep_selection_visible(&mut self) {
        let Some(slot) = self.selected else { return };
        if self.visible.get(slot as usize).copied().unwrap_or(false) {
            return;
        }
        if self.view.is_empty() {
            self.selected = None;
            return;
        }
        let index = self.insertion_point(slot).min(self.view.len() - 1);
        self.selected = Some(self.view[index]);
    }

    /// Re-tests every vehicle against the filter (in slot order, which is memory order), then
    /// lists the visible ones in sort order.
    fn refilter(&mut self) {
        self.visible.clear();
        self.visible.reserve(self.records.len());
        for (slot, record) in self.records.iter().enumerate() {
            let row = row_facts(&self.search, &self.statuses, slot as u32);
            self.visible
                .push(self.filter.matches(record, &row, &mut self.fuzzy));
        }
        let visible = &self.visible;
        self.view = self
            .order
            .iter()
            .copied()
            .filter(|&s| visible[s as usize])
            .collect();
    }

    /// Recomputes every index from the records.
    fn rebuild(&mut self) {
        self.by_id = SlotIndex::build(&self.records);
        self.search = SearchText::build(&self.records);
        self.models = ModelIndex::build(&self.records);
        self.statuses = self.records.iter().map(|r| r.verdict.status).collect();
        self.counts = Counts::default();
        for r in &self.records {
            self.counts.add(r);
        }
        self.order = order::sort_all(&self.records, &self.models, self.sort.0, self.sort.1);
        self.refilter();
    }

    /// A new listing: keeps probe data of vehicles still listed, adds new ones, drops the rest.
    fn reconcile(&mut self, connections: &[ConnectionInfo], now: Timestamp) {
        let selected = self.selected_id();
        let mut previous: HashMap<String, VehicleRecord> = std::mem::take(&mut self.records)
            .into_iter()
            .map(|r| (r.vehicle_id.clone(), r))
            .collect();
        let mut seen = std::collections::HashSet::with_capacity(connections.len());
        let mut records = Vec::with_capacity(connections.len());
        for info in connections {
            let id = &info.connection.vehicle_id;
            if !seen.insert(id.as_str()) {
                continue;
            }
            let record = match previous.remove(id.as_str()) {
                Some(mut r) => {
                    self.relisted(&mut r, info, now);
                    r
                }
                None => self.newly_listed(info, now),
            };
            records.push(record);
        }
        self.records = records;
        self.rebuild();
        self.selected = selected.and_then(|id| self.by_id.get(&self.records, &id));
        self.keep_selection_visible();
    }

    /// A narrowed listing (one vehicle's or one user's connections) answered: those connections
    /// are updated or added, and every other record stays as it was.
    pub fn found(&mut self, connections: &[ConnectionInfo], now: Timestamp) -> bool {
        self.tick(now);
        self.source_error = None;
        let selected = self.selected_id();
        for info in connections {
            match self.by_id.get(&self.records, &info.connection.vehicle_id) {
                Some(slot) => {
                    let mut r = std::mem::replace(
                        &mut self.records[slot as usize],
                        VehicleRecord::listed(info),
                    );
                    self.relisted(&mut r, info, now);
                    self.records[slot as usize] = r;
                }
                None => {
                    let r = self.newly_listed(info, now);
                    self.records.push(r);
                }
            }
        }
        self.rebuild();
        self.selected = selected.and_then(|id| self.by_id.get(&self.records, &id));
        self.keep_selection_visible();
        true
    }

    /// A known record listed again: its users, connection time and token as the listing says.
    fn relisted(&mut self, r: &mut VehicleRecord, info: &ConnectionInfo, now: Timestamp) {
        let token_changed = r.has_token != info.has_token;
        let shown = std::mem::take(&mut r.user_id);
        r.user_id.clone_from(&info.connection.user_id);
        r.other_users.clone_from(&info.other_users);
        // The user whose token the evidence came from stays the one shown.
        r.put_user_first(&shown);
        r.connected_at.clone_from(&info.connection.connected_at);
        r.has_token = info.has_token;
        if r.attributes.is_none() {
            r.attributes.clone_from(&info.attributes);
        }
        if token_changed && r.last_probe_at.is_none() {
            let diagnosis = self.unprobed_diagnosis(r, now);
            r.set_diagnosis(
                diagnosis,
                &[],
                now,
                ChangeCause::Listing,
                &mut self.interner,
            );
        }
    }

    /// A record for a vehicle listed for the first time.
    fn newly_listed(&mut self, info: &ConnectionInfo, now: Timestamp) -> VehicleRecord {
        let mut r = VehicleRecord::listed(info);
        if !r.has_token {
            let diagnosis = self.unprobed_diagnosis(&r, now);
            r.keep(&diagnosis, &[], &mut self.interner);
        }
        r
    }

    fn unprobed_diagnosis(&self, r: &VehicleRecord, now: Timestamp) -> Diagnosis {
        if r.has_token {
            Diagnosis::unknown()
        } else {
            (self.diagnoser)(&r.empty_report(), now)
        }
    }

    /// Records a VIN read by a lookup, so free text, `find` and the snapshot know it. Returns
    /// whether the record changed.
    fn learn_vin(&mut self, vehicle_id: &str, vin: &str) -> bool {
        let Some(slot) = self.by_id.get(&self.records, vehicle_id) else {
            return false;
        };
        if self.records[slot as usize].vin.as_deref() == Some(vin) {
            return false;
        }
        let vin = vin.to_string();
        self.update_slot(slot, move |r| r.vin = Some(vin));
        true
    }

    /// A probe finished: merge what it learnt, diagnose (unless `given` is the verdict its source
    /// made), and move the row.
    fn observe(&mut self, report: &ProbeReport, given: Option<&Diagnosis>, now: Timestamp) {
        if !self.evidence_shift.is_zero() {
            let mut shifted = report.clone();
            let by = self.evidence_shift;
            let shift = |t: Timestamp| t.checked_add(by).unwrap_or(t);
            for o in &mut shifted.observations {
                o.at = shift(o.at);
                o.meta.data_age = o.meta.data_age.map(shift);
            }
            self.evidence_shift = jiff::SignedDuration::ZERO;
            self.observe(&shifted, given, now);
            self.evidence_shift = by;
            return;
        }
        let slot = match self.by_id.get(&self.records, &report.vehicle_id) {
            Some(slot) => slot,
            // Probed before being listed (a single token's vehicles, or a race with the listing).
            None => self.insert_unlisted(report),
        };
        // What earlier probes learnt fills the gaps of this one; copied only when there are gaps.
        let r = &self.records[slot as usize];
        let merged = if (report.attributes.is_none() && r.attributes.is_some())
            || (report.vin.is_none() && r.vin.is_some())
            || (report.user_id.is_none() && !r.user_id.is_empty())
        {
            let mut merged = report.clone();
            if merged.attributes.is_none() {
                merged.attributes.clone_from(&r.attributes);
            }
            if merged.vin.is_none() {
                merged.vin.clone_from(&r.vin);
            }
            if merged.user_id.is_none() && !r.user_id.is_empty() {
                merged.user_id = Some(r.user_id.clone());
            }
            std::borrow::Cow::Owned(merged)
        } else {
            std::borrow::Cow::Borrowed(report)
        };
        let diagnosis = match given {
            Some(d) => d.clone(),
            None => (self.diagnoser)(&merged, now),
        };
        let glance = Glance::of(&merged);
        let given_cause = self.given_cause;
        let probed_at = merged
            .observations
            .iter()
            .map(|o| o.at)
            .max()
            .unwrap_or(now);
        let mut interner = std::mem::take(&mut self.interner);
        let shared = &mut interner;
        self.update_slot(slot, move |r| {
            if merged.attributes.is_some() {
                r.attributes.clone_from(&merged.attributes);
            }
            if merged.vin.is_some() {
                r.vin.clone_from(&merged.vin);
            }
            if let Some(user) = &merged.user_id {
                r.put_user_first(user);
            }
            r.has_token = merged.has_token;
            r.last_probe_at = Some(probed_at);
            r.probing = false;
            r.stale = false;
            r.given_verdict = given.is_some();
            r.glance = glance;
            let cause = given_cause
                .unwrap_or_else(|| ChangeCause::of_evidence(&merged.observations, &diagnosis));
            r.set_diagnosis(diagnosis, &merged.observations, now, cause, shared);
        });
        self.interner = interner;
    }

    /// Adds a vehicle known only from a probe report, not yet visible (the caller's update decides).
    fn insert_unlisted(&mut self, report: &ProbeReport) -> u32 {
        let slot = self.records.len() as u32;
        let record = VehicleRecord::listed(&ConnectionInfo {
            connection: crate::smartcar::Connection {
                user_id: report.user_id.clone().unwrap_or_default(),
                vehicle_id: report.vehicle_id.clone(),
                connected_at: None,
                mode: None,
            },
            has_token: report.has_token,
            other_users: Vec::new(),
            attributes: None,
        });
        self.search.push(&record);
        self.models.set(slot as usize, &record);
        self.statuses.push(record.verdict.status);
        self.counts.add(&record);
        self.records.push(record);
        self.by_id.insert(&self.records, slot);
        self.visible.push(false);
        let p = self
            .order
            .partition_point(|&s| self.cmp_rows(s, slot) == Ordering::Less);
        self.order.insert(p, slot);
        slot
    }

    /// Changes one record and puts its row back where it belongs: counts, search text, filter
    /// membership, sort position and selection, without touching the other rows.
    fn update_slot(&mut self, slot: u32, change: impl FnOnce(&mut VehicleRecord)) {
        let s = slot as usize;
        let (column, descending) = self.sort;
        let order_pos = position(&self.order, slot, |a, b| {
            order::cmp_rows(&self.records, column, descending, a, b)
        });
        let view_pos = if self.visible[s] {
            position(&self.view, slot, |a, b| {
                order::cmp_rows(&self.records, column, descending, a, b)
            })
        } else {
            None
        };
        self.counts.remove(&self.records[s]);
        change(&mut self.records[s]);
        self.counts.add(&self.records[s]);
        self.search.update(slot, &self.records[s]);
        self.models.set(s, &self.records[s]);
        self.statuses[s] = self.records[s].verdict.status;
        let row = row_facts(&self.search, &self.statuses, slot);
        let visible = self.filter.matches(&self.records[s], &row, &mut self.fuzzy);
        self.visible[s] = visible;

        let records = &self.records;
        let cmp = |a, b| order::cmp_rows(records, column, descending, a, b);
        match order_pos {
            Some(p) => reposition(&mut self.order, p, cmp),
            None => {
                let p = self
                    .order
                    .partition_point(|&x| cmp(x, slot) == Ordering::Less);
                self.order.insert(p, slot);
            }
        }
        match (view_pos, visible) {
            (Some(p), true) => reposition(&mut self.view, p, cmp),
            (Some(p), false) => {
                self.view.remove(p);
            }
            (None, true) => {
                let p = self
                    .view
                    .partition_point(|&x| cmp(x, slot) == Ordering::Less);
                self.view.insert(p, slot);
            }
            (None, false) => {}
        }
        // Only the changed row can have left the view; a vehicle selected while filtered out
        // (opened through `find`) stays selected until the filter changes.
        if self.selected == Some(slot) {
            self.keep_selection_visible();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Severity;

    #[test]
    fn damaged_evidence_leaves_the_list_s_findings_with_a_remedy_to_probe_again() {
        let mut interner = Interner::default();
        let mut record = VehicleRecord::listed(&ConnectionInfo {
            connection: crate::smartcar::Connection {
                user_id: "u1".into(),
                vehicle_id: "v1".into(),
                connected_at: None,
                mode: None,
            },
            has_token: true,
            other_users: Vec::new(),
            attributes: None,
        });
        record.verdict = Verdict {
            status: Status::Blocked,
            checked_at: None,
            findings: Box::new([interner.tag(
                "virtual-key-missing",
                Severity::Blocked,
                Some("tesla-virtual-key"),
                "Tesla virtual key not paired",
            )]),
        };
        record.packed = Some(Packed::damaged());
        record.last_probe_at = Some(Timestamp::UNIX_EPOCH);

        assert_eq!(record.report(), None);
        let diagnosis = record.diagnosis();
        assert_eq!(diagnosis.status, Status::Blocked);
        assert_eq!(diagnosis.findings.len(), 1);
        let finding = &diagnosis.findings[0];
        assert_eq!(finding.id, "virtual-key-missing");
        assert_eq!(finding.rule.as_deref(), Some("tesla-virtual-key"));
        assert!(finding.remedy.action.contains("probe this vehicle again"));
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn listed_one() -> Vec<ConnectionInfo> {
        vec![ConnectionInfo {
            connection: crate::smartcar::Connection {
                user_id: "u1".into(),
                vehicle_id: "v1".into(),
                connected_at: None,
                mode: None,
            },
            has_token: true,
            other_users: Vec::new(),
            attributes: None,
        }]
    }

    fn answered_at(t: Timestamp) -> ProbeReport {
        ProbeReport {
            vehicle_id: "v1".into(),
            user_id: Some("u1".into()),
            has_token: true,
            attributes: None,
            vin: None,
            observations: vec![Observation {
                probe: crate::smartcar::Probe::Permissions,
                endpoint: "GET /vehicles/v1/permissions".into(),
                at: t,
                meta: crate::smartcar::Meta::default(),
                outcome: Ok(crate::smartcar::Answer::Permissions {
                    permissions: Vec::new(),
                }),
            }],
        }
    }

    /// Healthy for an hour after the newest answer, then a warning that the data is stale; or,
    /// with `failing`, blocked with a finding dated by its evidence.
    fn clocked(failing: bool) -> Diagnoser {
        Arc::new(move |report: &ProbeReport, now: Timestamp| {
            let newest = report.observations.iter().map(|o| o.at).max();
            let finding = |id: &str, severity: Severity, t: Timestamp| Finding {
                id: id.into(),
                severity,
                title: id.into(),
                rule: None,
                since: Some(crate::report::format_instant(t)),
                evidence: vec![crate::health::Evidence {
                    endpoint: String::new(),
                    http_status: None,
                    type_code: None,
                    request_id: None,
                    at: t,
                    ..Default::default()
                }],
                remedy: Remedy {
                    kind: RemedyKind::RetryLater,
                    action: String::new(),
                    link: None,
                    customer_reply: String::new(),
                    retry_after_s: None,
                },
            };
            let Some(newest) = newest else {
                return Diagnosis::unknown();
            };
            let (status, findings) = if failing {
                (
                    Status::Blocked,
                    vec![finding("broken", Severity::Blocked, newest)],
                )
            } else if now.duration_since(newest) > jiff::SignedDuration::from_hours(1) {
                (
                    Status::Warning,
                    vec![finding("stale-data", Severity::Warning, newest)],
                )
            } else {
                (Status::Healthy, Vec::new())
            };
            Diagnosis {
                status,
                checked_at: Some(newest),
                findings,
            }
        })
    }

    #[test]
    fn a_verdict_time_can_change_is_diagnosed_again_as_the_clock_moves_without_a_probe() {
        let mut store = Store::new(clocked(false));
        let t0 = at("2026-03-01T10:00:00Z");
        store.listed(&listed_one(), t0);
        store.observed(&answered_at(t0), t0);
        assert_eq!(store.vehicle("v1").unwrap().verdict.status, Status::Healthy);

        assert!(!store.rediagnose_time_dependent(at("2026-03-01T10:30:00Z")));
        assert_eq!(store.vehicle("v1").unwrap().verdict.status, Status::Healthy);

        let later = at("2026-03-01T11:30:00Z");
        assert!(store.rediagnose_time_dependent(later));
        let record = store.vehicle("v1").unwrap();
        assert_eq!(record.verdict.status, Status::Warning);
        assert_eq!(record.last_probe_at, Some(t0), "no probe was made");
        assert_eq!(store.counts().total, 1);
        assert_eq!(store.visible_len(), 1);
    }

    #[test]
    fn every_status_change_names_its_cause_and_a_snapshot_keeps_it() {
        let mut store = Store::new(clocked(false));
        let t0 = at("2026-03-01T10:00:00Z");
        store.listed(&listed_one(), t0);
        store.observed(&answered_at(t0), t0);
        store.rediagnose_time_dependent(at("2026-03-01T11:30:00Z"));
        let mut by_webhook = answered_at(at("2026-03-01T11:40:00Z"));
        by_webhook.observations[0].meta.webhook = Some(crate::smartcar::WebhookMeta::default());
        store.observed(&by_webhook, at("2026-03-01T11:40:00Z"));
        let causes = |store: &Store| -> Vec<ChangeCause> {
            store
                .vehicle("v1")
                .unwrap()
                .history
                .iter()
                .map(|c| c.cause)
                .collect()
        };
        assert_eq!(
            causes(&store),
            [ChangeCause::Probe, ChangeCause::Time, ChangeCause::Webhook]
        );
        let mut restored = Store::new(clocked(false));
        restored.restore(store.to_snapshot());
        assert_eq!(causes(&restored), causes(&store));
    }

    #[test]
    fn a_desks_resolution_without_observations_is_a_change_by_webhook() {
        let mut store = Store::new(clocked(true));
        let t0 = at("2026-03-01T10:00:00Z");
        store.listed(&listed_one(), t0);
        store.observed(&answered_at(t0), t0);
        let mut cleared = answered_at(t0);
        cleared.observations.clear();
        let resolved = Diagnosis {
            status: Status::Healthy,
            checked_at: Some(t0),
            findings: vec![Finding {
                id: "error-resolved".into(),
                severity: Severity::Info,
                title: "resolved at 10:05 (webhook)".into(),
                rule: None,
                since: None,
                evidence: vec![crate::health::Evidence {
                    event_type: Some("VEHICLE_ERROR".into()),
                    at: t0,
                    ..Default::default()
                }],
                remedy: crate::health::remedy::nothing("", "", None),
            }],
        };
        store.diagnosed(&cleared, &resolved, None, at("2026-03-01T10:05:00Z"));
        let history = &store.vehicle("v1").unwrap().history;
        assert_eq!(history.last().map(|c| c.cause), Some(ChangeCause::Webhook));
    }

    #[test]
    fn the_failure_s_start_is_the_same_in_the_header_and_in_the_finding_after_a_new_probe() {
        let mut store = Store::new(clocked(true));
        let first = at("2026-03-01T10:00:00Z");
        store.listed(&listed_one(), first);
        store.observed(&answered_at(first), at("2026-03-01T10:00:05Z"));
        let record = store.vehicle("v1").unwrap();
        // The first failing answer, not the moment the store applied it.
        assert_eq!(record.failing_since, Some(first));

        let second = at("2026-03-02T09:00:00Z");
        store.observed(&answered_at(second), second);
        let record = store.vehicle("v1").unwrap();
        assert_eq!(record.failing_since, Some(first));
        let diagnosis = record.diagnosis();
        assert_eq!(
            diagnosis.main_finding().and_then(|f| f.since.clone()),
            Some(crate::report::format_instant(first))
        );
    }

    #[test]
    fn with_a_moved_clock_answers_are_dated_on_that_clock() {
        let mut store = Store::new(clocked(false));
        let real = at("2026-03-01T10:00:00Z");
        let pretend = at("2025-01-01T00:00:00Z");
        store.shift_evidence_by(pretend.duration_since(real));
        store.listed(&listed_one(), pretend);
        store.observed(&answered_at(real), pretend);
        let record = store.vehicle("v1").unwrap();
        assert_eq!(record.last_probe_at, Some(pretend));
        assert_eq!(record.verdict.status, Status::Healthy, "checked just now");
        let report = record.report().expect("probed");
        assert_eq!(report.observations[0].at, pretend);
    }

    #[test]
    fn a_desks_verdict_moved_by_time_or_rules_names_that_cause_not_the_evidence_it_read() {
        let mut store = Store::new(clocked(true));
        let t0 = at("2026-03-01T10:00:00Z");
        store.listed(&listed_one(), t0);
        store.observed(&answered_at(t0), t0);
        let status = store.vehicle("v1").unwrap().verdict.status;
        let moved = |status: Status| Diagnosis {
            status,
            checked_at: Some(t0),
            findings: Vec::new(),
        };
        let other = if status == Status::Blocked {
            Status::Healthy
        } else {
            Status::Blocked
        };
        store.diagnosed(&answered_at(t0), &moved(other), Some("time"), t0);
        store.diagnosed(&answered_at(t0), &moved(status), Some("rules"), t0);
        let causes: Vec<ChangeCause> = store
            .vehicle("v1")
            .unwrap()
            .history
            .iter()
            .map(|c| c.cause)
            .collect();
        assert_eq!(
            causes[causes.len() - 2..],
            [ChangeCause::Time, ChangeCause::Rules]
        );
    }

    #[test]
    fn a_verdict_given_by_its_source_is_kept_as_given_as_time_passes_and_when_rules_change() {
        // The local rules would call the car blocked; the source (a desk) says healthy.
        let mut store = Store::new(clocked(true));
        let t0 = at("2026-03-01T10:00:00Z");
        store.listed(&listed_one(), t0);
        let given = Diagnosis {
            status: Status::Healthy,
            checked_at: Some(t0),
            findings: Vec::new(),
        };
        store.diagnosed(&answered_at(t0), &given, None, t0);
        let record = store.vehicle("v1").unwrap();
        assert_eq!(record.verdict.status, Status::Healthy);
        assert_eq!(record.diagnosis(), given);
        assert_eq!(record.last_probe_at, Some(t0));

        assert!(!store.rediagnose_time_dependent(at("2026-03-02T10:00:00Z")));
        store.rediagnose_all(at("2026-03-02T10:00:00Z"));
        let record = store.vehicle("v1").unwrap();
        assert_eq!(
            record.verdict.status,
            Status::Healthy,
            "the source sends the change"
        );

        // A report the store diagnoses itself is its own again.
        store.observed(&answered_at(t0), t0);
        assert_eq!(store.vehicle("v1").unwrap().verdict.status, Status::Blocked);
    }
}
