//! The desk's PostgreSQL store: the connection pool, the embedded migrations, and the transactions
//! that commit a webhook delivery or a probe result together with the diagnosis they lead to.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio_postgres::NoTls;

use crate::fetch::ConnectionInfo;
use crate::health::{Diagnosis, Status};
use crate::smartcar::{ProbeReport, VehicleAttributes};

use super::facts::VehicleFacts;
use super::webhook::VehicleEvent;

/// Turns what is known about a vehicle into its diagnosis (policies and needs are inside).
pub type Diagnoser = Arc<dyn Fn(&ProbeReport, jiff::Timestamp) -> Diagnosis + Send + Sync>;

/// Probe requests not served yet, one per vehicle: the highest priority asked, whether any asker
/// wanted a new answer even inside the freshness window, and the newest request's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingProbe {
    pub vehicle_id: String,
    pub priority: String,
    pub forced: bool,
    pub last_request: i64,
    /// The agents asking at that priority: the prober serves agents in turn.
    pub requested_by: Vec<String>,
}

/// How a VIN lookup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VinLookup {
    pub vehicle_id: Option<String>,
    pub requests: u64,
    /// How a lookup that found nothing may have missed the car; `None` when every candidate was read.
    pub gaps: Option<String>,
}

/// A forced probe request made this soon after a probe of the vehicle began is served by it: two
/// agents pressing `r` at once share one probe.
pub const JOIN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Migrations in order: version, file, text. Each runs once, recorded in `vtriage_migrations` with
/// the SHA-256 of its text. A committed migration is never edited: a change is a new one.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "0001_desk.sql", include_str!("migrations/0001_desk.sql")),
    (
        2,
        "0002_agents.sql",
        include_str!("migrations/0002_agents.sql"),
    ),
    (
        3,
        "0003_forced_probes.sql",
        include_str!("migrations/0003_forced_probes.sql"),
    ),
    (
        4,
        "0004_connected_at.sql",
        include_str!("migrations/0004_connected_at.sql"),
    ),
    (5, "0005_vins.sql", include_str!("migrations/0005_vins.sql")),
    (
        6,
        "0006_diagnosed_with.sql",
        include_str!("migrations/0006_diagnosed_with.sql"),
    ),
    (
        7,
        "0007_retention_indexes.sql",
        include_str!("migrations/0007_retention_indexes.sql"),
    ),
    (
        8,
        "0008_vin_lookup_gaps.sql",
        include_str!("migrations/0008_vin_lookup_gaps.sql"),
    ),
    (
        11,
        "0011_rejected_deliveries.sql",
        include_str!("migrations/0011_rejected_deliveries.sql"),
    ),
];

/// Serialises migrations between `serve` processes starting at once on one database.
const MIGRATION_LOCK: i64 = 0x7674_7269_6167_0001;

/// The channel every committed change is announced on, named after the schema the desk's tables
/// live in (`current_schema()`): `vtriage_changes` in `public` (or with no schema), else
/// `vtriage_changes_<schema>`, since NOTIFY is database-wide and two desks in one database must not
/// hear each other; a schema too long for a channel name is hashed. Case matters: `LISTEN` it quoted.
/// A vehicle's new facts or verdict: `{"vehicle_id", "status", "finding", "moved"}` (`moved`: the
/// verdict changed). Other notices carry a `kind`: `probing`, `progress`, `listed`, `revoked` (see `desk::api`).
pub fn changes_channel(schema: Option<&str>) -> String {
    const BASE: &str = "vtriage_changes";
    match schema {
        None | Some("public") => BASE.to_string(),
        Some(s) if BASE.len() + 1 + s.len() <= 63 => format!("{BASE}_{s}"),
        Some(s) => {
            // FNV-1a: the same name in every process and build.
            let hash = s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            format!("{BASE}_{hash:016x}")
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("--database: {0}")]
    Url(String),
    #[error(
        "--schema `{0}`: use letters, digits and underscores, starting with a letter or underscore (at most 63)"
    )]
    Schema(String),
    #[error("cannot build the database pool: {0}")]
    Pool(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the database refused the data: {0}")]
    Refused(String),
    #[error("database: {0}")]
    Query(String),
    #[error(
        "migration {version} ({file}) is not the text this database applied (SHA-256 {applied}, this build's {ours}); a committed migration must never change: run the vtriage that migrated this database, or restore the file"
    )]
    MigrationChanged {
        version: i32,
        file: &'static str,
        applied: String,
        ours: String,
    },
}

impl DbError {
    /// Whether the same request may succeed later (connection trouble), as opposed to data the
    /// database will never accept.
    pub fn is_transient(&self) -> bool {
        !matches!(self, DbError::Refused(_) | DbError::MigrationChanged { .. })
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        let text = e
            .as_db_error()
            .map(|d| format!("{}: {}", d.code().code(), d.message()))
            .unwrap_or_else(|| with_causes(&e));
        // Class 22 is "data exception": a NUL in a JSON string, a number out of range. Retrying
        // the same body cannot help, so it must not be answered as a passing outage.
        match e.code() {
            Some(code) if code.code().starts_with("22") => DbError::Refused(text),
            Some(_) => DbError::Query(text),
            None => DbError::Unavailable(text),
        }
    }
}

/// An error and the causes under it ("error connecting to server: Connection refused (os error
/// 111)"): the driver's own words rarely say why.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

impl DbError {
    /// The same error naming where the database was looked for, when it could not be reached.
    pub fn at(self, place: &str) -> DbError {
        match self {
            DbError::Unavailable(text) => DbError::Unavailable(format!("{place}: {text}")),
            other => other,
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> DbError {
        match e {
            deadpool_postgres::PoolError::Backend(b) => b.into(),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

/// A table whose old rows are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pruned {
    WebhookEvents,
    StatusHistory,
    Audit,
    ProbeRequests,
    ProbeResults,
    VinLookups,
}

impl Pruned {
    /// Requests before the results they name, so a result is free to go in the same pass.
    pub const ALL: [Pruned; 6] = [
        Pruned::WebhookEvents,
        Pruned::StatusHistory,
        Pruned::Audit,
        Pruned::ProbeRequests,
        Pruned::ProbeResults,
        Pruned::VinLookups,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Pruned::WebhookEvents => "webhook_events",
            Pruned::StatusHistory => "status_history",
            Pruned::Audit => "audit",
            Pruned::ProbeRequests => "probe_requests",
            Pruned::ProbeResults => "probe_results",
            Pruned::VinLookups => "vin_lookups",
        }
    }
}

/// How many days each table keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub events_days: u32,
    pub history_days: u32,
    pub audit_days: u32,
    pub probes_days: u32,
}

impl Retention {
    pub fn days(&self, table: Pruned) -> u32 {
        match table {
            Pruned::WebhookEvents => self.events_days,
            Pruned::StatusHistory => self.history_days,
            Pruned::Audit => self.audit_days,
            Pruned::ProbeRequests | Pruned::ProbeResults | Pruned::VinLookups => self.probes_days,
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            events_days: 30,
            history_days: 400,
            audit_days: 400,
            probes_days: 30,
        }
    }
}

/// Whether `name` can be used as a schema name without quoting.
pub fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: String,
    /// Tables live in this schema (created if missing) instead of the user's default.
    pub schema: Option<String>,
    pub pool_size: usize,
    /// How long a delivery waits for a connection or a new connection for the server.
    pub timeout: Duration,
}

impl DbConfig {
    /// Where the database is looked for: `host:port/dbname` (or the socket folder), no credentials.
    pub fn place(&self) -> String {
        let Ok(config) = self.url.parse::<tokio_postgres::Config>() else {
            return "the database".into();
        };
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports = config.get_ports();
        let at: Vec<String> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                format!("{h}:{port}")
            })
            .collect();
        let at = if at.is_empty() {
            "localhost:5432".to_string()
        } else {
            at.join(",")
        };
        match config.get_dbname() {
            Some(db) => format!("{at}/{db}"),
            None => at,
        }
    }

    /// The driver's configuration: the URL, plus the schema as the connection's `search_path`.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, DbError> {
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
        if let Some(schema) = &self.schema {
            if !valid_schema(schema) {
                return Err(DbError::Schema(schema.clone()));
            }
            config.options(format!("-c search_path={schema}"));
        }
        config.connect_timeout(self.timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("vtriage serve");
        }
        Ok(config)
    }
}

/// What committing one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// New; committed.
    New,
    /// An event with this id was committed before: nothing changed.
    Duplicate,
}

/// A verified delivery waiting to be committed with others ([`Db::store_deliveries`]).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub event_id: String,
    pub event_type: String,
    /// What a vehicle event says; `None` for any other event (only its row is kept).
    pub vehicle: Option<VehicleEvent>,
    /// The body as stored (secrets redacted).
    pub body: Value,
}

/// The rows one batch writes, column by column, for its `unnest` statements.
#[derive(Default)]
struct VehicleWrites<'a> {
    ids: Vec<&'a str>,
    facts: Vec<Value>,
    statuses: Vec<String>,
    findings: Vec<Option<String>>,
    diagnoses: Vec<Value>,
    moved: Vec<bool>,
    history: HistoryRows<'a>,
    notices: Vec<String>,
}

/// One `status_history` row per verdict moved, in the order they moved, column by column.
#[derive(Default)]
struct HistoryRows<'a> {
    vehicles: Vec<&'a str>,
    statuses: Vec<String>,
    findings: Vec<Option<String>>,
    causes: Vec<String>,
}

/// The pool and what the transactions need.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// See [`changes_channel`]; known once [`Db::migrate`] has read the schema.
    channel: std::sync::OnceLock<String>,
    diagnose: Diagnoser,
    /// A fingerprint of the rules inside `diagnose`, stored with every verdict it makes.
    rules: Arc<str>,
    now: Option<jiff::Timestamp>,
}

/// Which stored verdicts a pass of [`Db::rediagnose`] reads again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Those made with other rules (or before rules were recorded): every one is diagnosed again.
    Rules,
    /// Those made with these rules that time alone can change (a rule's date, data going stale).
    Time,
}

/// What one pass of [`Db::rediagnose`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rediagnosed {
    /// Vehicles read.
    pub read: usize,
    /// Vehicles whose diagnosis changed (each announced; a history row when the verdict moved).
    pub changed: usize,
    /// The last vehicle read: where the next pass goes on; `None` when the pass reached the end.
    pub next: Option<String>,
}

impl Db {
    /// Builds the pool (no connection is made yet).
    pub fn new(
        config: &DbConfig,
        diagnose: Diagnoser,
        now: Option<jiff::Timestamp>,
    ) -> Result<Db, DbError> {
        let pg = config.pg_config()?;
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .recycle_timeout(Some(config.timeout))
            .build()
            .map_err(|e| DbError::Pool(e.to_string()))?;
        Ok(Db {
            pool,
            channel: std::sync::OnceLock::new(),
            diagnose,
            rules: Arc::from(""),
            now,
        })
    }

    /// The same store, recording `rules` (a fingerprint of what the diagnoser reads: policies,
    /// needs, API) with every verdict, so a start with other rules knows what to diagnose again.
    pub fn diagnosing_with(mut self, rules: &str) -> Db {
        self.rules = Arc::from(rules);
        self
    }

    fn now(&self) -> jiff::Timestamp {
        self.now.unwrap_or_else(jiff::Timestamp::now)
    }

    /// Creates the schema if one is configured and applies every migration not applied yet.
    pub async fn migrate(&self, schema: Option<&str>) -> Result<(), DbError> {
        let mut client = self.pool.get().await?;
        if let Some(schema) = schema
            && !valid_schema(schema)
        {
            return Err(DbError::Schema(schema.to_string()));
        }
        let tx = client.transaction().await?;
        // Under the lock, so two `serve` starting at once cannot race to create the schema either.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        if let Some(schema) = schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS vtriage_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             ALTER TABLE vtriage_migrations ADD COLUMN IF NOT EXISTS sha256 text",
        )
        .await?;
        let applied: std::collections::HashMap<i32, Option<String>> = tx
            .query("SELECT version, sha256 FROM vtriage_migrations", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (version, file, sql) in MIGRATIONS {
            let ours = super::webhook::digest(sql.as_bytes());
            match applied.get(version) {
                Some(Some(recorded)) if *recorded != ours => {
                    return Err(DbError::MigrationChanged {
                        version: *version,
                        file,
                        applied: recorded.clone(),
                        ours,
                    });
                }
                Some(Some(_)) => {}
                // Applied by a build that kept no checksum. Every text it may have run is brought
                // to one shape by the migrations after it, so this text is recorded as applied.
                Some(None) => {
                    tx.execute(
                        "UPDATE vtriage_migrations SET sha256 = $2 WHERE version = $1",
                        &[version, &ours],
                    )
                    .await?;
                }
                None => {
                    tx.batch_execute(sql).await?;
                    tx.execute(
                        "INSERT INTO vtriage_migrations (version, sha256) VALUES ($1, $2)",
                        &[version, &ours],
                    )
                    .await?;
                    tracing::info!(version, file, "applied migration");
                }
            }
        }
        let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
        if let Some(newer) = applied.keys().filter(|v| **v > known).max() {
            tracing::warn!(
                version = newer,
                "this database was migrated by a newer vtriage (migration {newer}); this build knows {known}"
            );
        }
        tx.commit().await?;
        let current: Option<String> = client
            .query_one("SELECT current_schema()::text", &[])
            .await?
            .get(0);
        let _ = self.channel.set(changes_channel(current.as_deref()));
        Ok(())
    }

    /// Whether a schema of this name exists (unquoted names are folded to lower case, as here).
    pub async fn has_schema(&self, name: &str) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = lower($1))",
                &[&name],
            )
            .await?;
        Ok(row.get(0))
    }

    /// The channel this desk's changes are announced on.
    pub fn channel(&self) -> &str {
        self.channel.get().map_or("vtriage_changes", String::as_str)
    }

    /// A connection from the pool, for the queries of the agents' API.
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        Ok(self.pool.get().await?)
    }

    /// Announces `notice` on the changes channel (the prober's progress, a probe starting), so
    /// every `serve` on the database passes it to its agents' streams.
    pub async fn notify(&self, notice: &Value) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&self.channel(), &notice.to_string()],
            )
            .await?;
        Ok(())
    }

    /// The agents with a probe request not served yet, by name.
    pub async fn agents_waiting(&self) -> Result<Vec<String>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT DISTINCT requested_by FROM probe_requests WHERE served_at IS NULL
                 ORDER BY requested_by LIMIT 50",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Whether the database answers now (for `/healthz`).
    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Commits a delivery: the event row, and for a vehicle event the merged facts, the new
    /// diagnosis, a history row when the status or finding changed, and a notification. `Ok` only
    /// once committed; an event id seen before commits nothing.
    pub async fn store_delivery(
        &self,
        event_id: &str,
        event_type: &str,
        vehicle: Option<&VehicleEvent>,
        body: &Value,
    ) -> Result<Stored, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Times from outside are believed only so far ahead of the clock (probes are stamped by it).
        let received = jiff::Timestamp::now();
        let occurred_at = vehicle
            .and_then(|v| v.at)
            .map(|t| std::time::SystemTime::from(super::facts::believed(t, received)));
        let Some(event) = vehicle else {
            let insert = tx
                .prepare_cached(
                    "INSERT INTO webhook_events (event_id, event_type, vehicle_id, occurred_at, body)
                     VALUES ($1, $2, NULL, NULL, $3) ON CONFLICT (event_id) DO NOTHING",
                )
                .await?;
            if tx.execute(&insert, &[&event_id, &event_type, body]).await? == 0 {
                tx.rollback().await?;
                return Ok(Stored::Duplicate);
            }
            tx.commit().await?;
            return Ok(Stored::New);
        };
        // One round trip records the event and, only if it is new, locks (or creates) the
        // vehicle's row: concurrent deliveries for one vehicle then merge one after the other.
        let record = tx
            .prepare_cached(
                "WITH event AS (
                     INSERT INTO webhook_events (event_id, event_type, vehicle_id, occurred_at, body)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING RETURNING 1)
                 INSERT INTO vehicles (vehicle_id, user_id, make, model, year)
                 SELECT $3, $6, $7, $8, $9 FROM event
                 ON CONFLICT (vehicle_id) DO UPDATE SET
                     user_id = COALESCE(EXCLUDED.user_id, vehicles.user_id),
                     make = COALESCE(EXCLUDED.make, vehicles.make),
                     model = COALESCE(EXCLUDED.model, vehicles.model),
                     year = COALESCE(EXCLUDED.year, vehicles.year)
                 RETURNING status, finding, facts, user_id, make, model, year",
            )
            .await?;
        let year = event.year.map(i32::from);
        let row = tx
            .query_opt(
                &record,
                &[
                    &event_id,
                    &event_type,
                    &event.vehicle_id,
                    &occurred_at,
                    body,
                    &event.user_id,
                    &event.make,
                    &event.model,
                    &year,
                ],
            )
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(Stored::Duplicate);
        };
        self.apply(
            &tx,
            &event.vehicle_id,
            &row,
            |facts| facts.merge(event, received),
            &format!("webhook {event_id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(Stored::New)
    }

    /// Commits `deliveries` in one transaction (group commit): every event row, and for each
    /// vehicle the merge of its new events in the order given, one diagnosis per event (a history
    /// row whenever one moved the verdict, a notice per change) and one write of its row. A second
    /// delivery of an event id in `deliveries` is a duplicate of the first. Returns one answer per
    /// delivery, in their order, only once committed; on an error nothing is committed.
    ///
    /// Locks are taken in one order by every batch: the event ids sorted, then the vehicle rows
    /// sorted by id (as [`Db::rediagnose`] does), so concurrent batches wait for each other but
    /// never deadlock.
    pub async fn store_deliveries(
        &self,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<Stored>, DbError> {
        use std::collections::{BTreeMap, HashMap};
        let mut answers = vec![Stored::Duplicate; deliveries.len()];
        // The first delivery of each event id, by id: the order its row is inserted in.
        let mut firsts: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, d) in deliveries.iter().enumerate() {
            firsts.entry(d.event_id.as_str()).or_insert(i);
        }
        let received = jiff::Timestamp::now();
        let occurred = |d: &NewDelivery| {
            d.vehicle
                .as_ref()
                .and_then(|v| v.at)
                .map(|t| std::time::SystemTime::from(super::facts::believed(t, received)))
        };
        let ids: Vec<&str> = firsts.keys().copied().collect();
        let types: Vec<&str> = firsts
            .values()
            .map(|&i| deliveries[i].event_type.as_str())
            .collect();
        let vehicles: Vec<Option<&str>> = firsts
            .values()
            .map(|&i| {
                deliveries[i]
                    .vehicle
                    .as_ref()
                    .map(|v| v.vehicle_id.as_str())
            })
            .collect();
        let occurred_at: Vec<Option<std::time::SystemTime>> =
            firsts.values().map(|&i| occurred(&deliveries[i])).collect();
        let bodies: Vec<&Value> = firsts.values().map(|&i| &deliveries[i].body).collect();

        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO webhook_events (event_id, event_type, vehicle_id, occurred_at, body)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                                      $5::jsonb[])
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            )
            .await?;
        let inserted = tx
            .query(&insert, &[&ids, &types, &vehicles, &occurred_at, &bodies])
            .await?;
        let mut new: Vec<usize> = Vec::with_capacity(inserted.len());
        for row in &inserted {
            let id: &str = row.get(0);
            if let Some(&i) = firsts.get(id) {
                answers[i] = Stored::New;
                new.push(i);
            }
        }
        // Each vehicle's new events in the order they came.
        new.sort_unstable();
        let mut by_vehicle: BTreeMap<&str, Vec<&VehicleEvent>> = BTreeMap::new();
        for &i in &new {
            if let Some(event) = &deliveries[i].vehicle {
                by_vehicle
                    .entry(event.vehicle_id.as_str())
                    .or_default()
                    .push(event);
            }
        }
        if by_vehicle.is_empty() {
            tx.commit().await?;
            return Ok(answers);
        }
        // What the events say of the vehicle itself: the last one saying it wins, as one
        // transaction per event would leave it.
        fn last<'a>(
            events: &[&'a VehicleEvent],
            said: fn(&'a VehicleEvent) -> Option<&'a str>,
        ) -> Option<&'a str> {
            events.iter().rev().find_map(|e| said(e))
        }
        let vehicle_ids: Vec<&str> = by_vehicle.keys().copied().collect();
        let users: Vec<Option<&str>> = by_vehicle
            .values()
            .map(|e| last(e, |v| v.user_id.as_deref()))
            .collect();
        let makes: Vec<Option<&str>> = by_vehicle
            .values()
            .map(|e| last(e, |v| v.make.as_deref()))
            .collect();
        let models: Vec<Option<&str>> = by_vehicle
            .values()
            .map(|e| last(e, |v| v.model.as_deref()))
            .collect();
        let years: Vec<Option<i32>> = by_vehicle
            .values()
            .map(|e| e.iter().rev().find_map(|v| v.year.map(i32::from)))
            .collect();
        // Creates the rows missing and locks every one, in id order. A row whose user, make,
        // model and year the events leave as they are is locked without being written: its
        // facts are written once below, not twice.
        let lock = tx
            .prepare_cached(
                "INSERT INTO vehicles (vehicle_id, user_id, make, model, year)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[])
                 ON CONFLICT (vehicle_id) DO UPDATE SET
                     user_id = COALESCE(EXCLUDED.user_id, vehicles.user_id),
                     make = COALESCE(EXCLUDED.make, vehicles.make),
                     model = COALESCE(EXCLUDED.model, vehicles.model),
                     year = COALESCE(EXCLUDED.year, vehicles.year)
                 WHERE (vehicles.user_id, vehicles.make, vehicles.model, vehicles.year)
                     IS DISTINCT FROM
                     (COALESCE(EXCLUDED.user_id, vehicles.user_id),
                      COALESCE(EXCLUDED.make, vehicles.make),
                      COALESCE(EXCLUDED.model, vehicles.model),
                      COALESCE(EXCLUDED.year, vehicles.year))",
            )
            .await?;
        tx.execute(&lock, &[&vehicle_ids, &users, &makes, &models, &years])
            .await?;
        let read = tx
            .prepare_cached(
                "SELECT status, finding, facts, user_id, make, model, year, NULL::jsonb, vehicle_id
                 FROM vehicles WHERE vehicle_id = ANY($1)",
            )
            .await?;
        let rows = tx.query(&read, &[&vehicle_ids]).await?;
        let mut locked: HashMap<String, Known> = rows
            .iter()
            .map(|r| (r.get::<_, String>(KNOWN_LEN), Known::of(r)))
            .collect();
        let mut writes = VehicleWrites::default();
        for (vehicle_id, events) in &by_vehicle {
            let Some(mut known) = locked.remove(*vehicle_id) else {
                return Err(DbError::Query(format!(
                    "the row of vehicle {vehicle_id} was not locked"
                )));
            };
            let before = (known.status.clone(), known.finding.clone());
            let mut written: Option<Diagnosis> = None;
            let mut believed = known.facts.believe_times(received);
            for event in events {
                let changed = known.facts.merge(event, received);
                if !changed && !believed {
                    continue;
                }
                believed = false;
                let diagnosis = self.diagnosis(vehicle_id, &known);
                let status = diagnosis.status.label();
                let finding = diagnosis.main_finding().map(|f| f.id.clone());
                let moved = status != known.status || finding != known.finding;
                if moved {
                    writes.history.vehicles.push(*vehicle_id);
                    writes.history.statuses.push(status.to_string());
                    writes.history.findings.push(finding.clone());
                    writes
                        .history
                        .causes
                        .push(format!("webhook {}", event.event_id));
                }
                writes.notices.push(
                    serde_json::json!({
                        "vehicle_id": vehicle_id,
                        "status": status,
                        "finding": finding,
                        "moved": moved,
                    })
                    .to_string(),
                );
                known.status = status.to_string();
                known.finding = finding;
                written = Some(diagnosis);
            }
            if let Some(diagnosis) = written {
                writes.ids.push(*vehicle_id);
                writes.facts.push(
                    serde_json::to_value(&known.facts)
                        .map_err(|e| DbError::Query(e.to_string()))?,
                );
                writes
                    .moved
                    .push(before != (known.status.clone(), known.finding.clone()));
                writes.statuses.push(known.status);
                writes.findings.push(known.finding);
                writes.diagnoses.push(
                    serde_json::to_value(&diagnosis).map_err(|e| DbError::Query(e.to_string()))?,
                );
            }
        }
        if !writes.ids.is_empty() {
            let update = tx
                .prepare_cached(
                    "WITH written AS (
                         UPDATE vehicles SET facts = v.facts, status = v.status,
                             finding = v.finding, diagnosis = v.diagnosis, rules_sha256 = $7,
                             updated_at = now(),
                             changed_at = CASE WHEN v.moved THEN now() ELSE vehicles.changed_at END
                         FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::text[], $5::jsonb[],
                                     $6::bool[]) AS v(vehicle_id, facts, status, finding, diagnosis, moved)
                         WHERE vehicles.vehicle_id = v.vehicle_id RETURNING 1),
                     history AS (
                         INSERT INTO status_history (vehicle_id, status, finding, cause)
                         SELECT * FROM unnest($8::text[], $9::text[], $10::text[], $11::text[])
                         RETURNING 1)
                     SELECT pg_notify($12, n) FROM unnest($13::text[]) AS n",
                )
                .await?;
            tx.query(
                &update,
                &[
                    &writes.ids,
                    &writes.facts,
                    &writes.statuses,
                    &writes.findings,
                    &writes.diagnoses,
                    &writes.moved,
                    &&*self.rules,
                    &writes.history.vehicles,
                    &writes.history.statuses,
                    &writes.history.findings,
                    &writes.history.causes,
                    &self.channel(),
                    &writes.notices,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(answers)
    }

    /// Commits a probe result: the report, the vehicle's new diagnosis, and every pending probe
    /// request for the vehicle marked as served by it (two agents asking for one vehicle share one
    /// probe). Returns the result's id.
    /// `age`: how long ago the probe started, when it did (a fresh report reused has none). A request
    /// forced more than [`JOIN_GRACE`] after the probe began wants a newer answer: it stays pending.
    pub async fn store_probe(
        &self,
        report: &ProbeReport,
        age: Option<std::time::Duration>,
    ) -> Result<i64, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let attrs = report.attributes.as_ref();
        let attributes = Attributes {
            user_id: report.user_id.as_deref(),
            make: attrs.map(|a| a.make.as_str()),
            model: attrs.map(|a| a.model.as_str()),
            year: attrs.map(|a| a.year),
        };
        let diagnosis = (self.diagnose)(report, self.now());
        let report_json =
            serde_json::to_value(report).map_err(|e| DbError::Query(e.to_string()))?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO probe_results (vehicle_id, status, report) VALUES ($1, $2, $3) RETURNING id",
                &[&report.vehicle_id, &diagnosis.status.label(), &report_json],
            )
            .await?
            .get(0);
        let row = self
            .lock_vehicle(&tx, &report.vehicle_id, attributes)
            .await?;
        self.apply(
            &tx,
            &report.vehicle_id,
            &row,
            |facts| {
                facts.probed(report, jiff::Timestamp::now());
                true
            },
            &format!("probe {id}"),
        )
        .await?;
        let forced_before: Option<f64> = age.map(|a| a.as_secs_f64() - JOIN_GRACE.as_secs_f64());
        tx.execute(
            "UPDATE probe_requests SET served_at = now(), probe_result_id = $2
             WHERE vehicle_id = $1 AND served_at IS NULL
               AND (NOT forced OR $3::float8 IS NULL
                    OR requested_at <= now() - make_interval(secs => $3::float8))",
            &[&report.vehicle_id, &id, &forced_before],
        )
        .await?;
        if let Some(vin) = &report.vin {
            tx.execute(
                "UPDATE vehicles SET vin = $2 WHERE vehicle_id = $1 AND vin IS DISTINCT FROM $2",
                &[&report.vehicle_id, vin],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Records VINs read by a lookup, as `(vehicle_id, vin)`.
    pub async fn store_vins(&self, vins: &[(String, String)]) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        let ids: Vec<&str> = vins.iter().map(|(id, _)| id.as_str()).collect();
        let values: Vec<&str> = vins.iter().map(|(_, vin)| vin.as_str()).collect();
        client
            .execute(
                "UPDATE vehicles SET vin = v.vin
                 FROM unnest($1::text[], $2::text[]) AS v(vehicle_id, vin)
                 WHERE vehicles.vehicle_id = v.vehicle_id AND vehicles.vin IS DISTINCT FROM v.vin",
                &[&ids, &values],
            )
            .await?;
        Ok(())
    }

    /// The vehicle whose VIN the desk has read as `vin` (upper case), if any.
    pub async fn vehicle_with_vin(&self, vin: &str) -> Result<Option<String>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT vehicle_id FROM vehicles WHERE vin = $1 ORDER BY vehicle_id LIMIT 1",
                &[&vin],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Asks the prober to look `vin` up (audited); a lookup under way goes on, a finished one
    /// starts again.
    pub async fn request_vin_lookup(&self, vin: &str, requested_by: &str) -> Result<(), DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO vin_lookups (vin, requested_by) VALUES ($1, $2)
             ON CONFLICT (vin) DO UPDATE
                 SET requested_by = EXCLUDED.requested_by, requested_at = now(),
                     done_at = NULL, vehicle_id = NULL, requests = NULL, gaps = NULL
                 WHERE vin_lookups.done_at IS NOT NULL",
            &[&vin, &requested_by],
        )
        .await?;
        tx.execute(
            "INSERT INTO audit (actor, action, subject) VALUES ($1, 'find vin', $2)",
            &[&requested_by, &vin],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How a lookup ended: `None` while it runs (or was never asked for), else the vehicle found
    /// (if any) and the requests it took.
    pub async fn vin_lookup(&self, vin: &str) -> Result<Option<VinLookup>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT vehicle_id, coalesce(requests, 0), gaps FROM vin_lookups
                 WHERE vin = $1 AND done_at IS NOT NULL",
                &[&vin],
            )
            .await?;
        Ok(row.map(|r| VinLookup {
            vehicle_id: r.get(0),
            requests: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            gaps: r.get(2),
        }))
    }

    /// The oldest VIN lookup not finished.
    pub async fn next_vin_lookup(&self) -> Result<Option<String>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT vin FROM vin_lookups WHERE done_at IS NULL ORDER BY requested_at LIMIT 1",
                &[],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Records how a lookup ended.
    pub async fn finish_vin_lookup(
        &self,
        vin: &str,
        vehicle_id: Option<&str>,
        requests: u64,
        gaps: Option<&str>,
    ) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        let requests = i64::try_from(requests).unwrap_or(i64::MAX);
        client
            .execute(
                "UPDATE vin_lookups SET done_at = now(), vehicle_id = $2, requests = $3, gaps = $4
                 WHERE vin = $1 AND done_at IS NULL",
                &[&vin, &vehicle_id, &requests, &gaps],
            )
            .await?;
        Ok(())
    }

    /// Locks the vehicle's row, creating it; returns what [`Db::apply`] reads.
    async fn lock_vehicle(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        vehicle_id: &str,
        attributes: Attributes<'_>,
    ) -> Result<tokio_postgres::Row, DbError> {
        let year = attributes.year.map(i32::from);
        let lock = tx
            .prepare_cached(
                "INSERT INTO vehicles (vehicle_id, user_id, make, model, year)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (vehicle_id) DO UPDATE SET
                     user_id = COALESCE(EXCLUDED.user_id, vehicles.user_id),
                     make = COALESCE(EXCLUDED.make, vehicles.make),
                     model = COALESCE(EXCLUDED.model, vehicles.model),
                     year = COALESCE(EXCLUDED.year, vehicles.year)
                 RETURNING status, finding, facts, user_id, make, model, year",
            )
            .await?;
        Ok(tx
            .query_one(
                &lock,
                &[
                    &vehicle_id,
                    &attributes.user_id,
                    &attributes.make,
                    &attributes.model,
                    &year,
                ],
            )
            .await?)
    }

    /// With the vehicle's row locked (`row`: status, finding, facts, user, make, model, year), lets
    /// `change` update its facts, and when anything changed writes the new diagnosis, a history row
    /// if the verdict moved, and a notification (every change: dashboards show evidence too).
    async fn apply(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        vehicle_id: &str,
        row: &tokio_postgres::Row,
        change: impl FnOnce(&mut VehicleFacts) -> bool,
        cause: &str,
    ) -> Result<(), DbError> {
        let mut known = Known::of(row);
        // A time stored before arrivals were checked (a delivery dated 2100) would outrank all
        // evidence to come.
        let believed = known.facts.believe_times(jiff::Timestamp::now());
        if !change(&mut known.facts) && !believed {
            return Ok(());
        }
        let diagnosis = self.diagnosis(vehicle_id, &known);
        self.write(tx, vehicle_id, &known, &diagnosis, cause).await
    }

    /// The diagnosis of what is known, at the desk's now.
    fn diagnosis(&self, vehicle_id: &str, known: &Known) -> Diagnosis {
        let report = known.facts.report(
            vehicle_id,
            known.user_id.as_deref(),
            known.attributes(vehicle_id),
        );
        known
            .facts
            .with_resolution((self.diagnose)(&report, self.now()))
    }

    /// Writes `diagnosis` over what `known` read (the row locked): the facts, the verdict and the
    /// rules it was made with, the notice, and only when the verdict moved, its history row.
    async fn write(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        vehicle_id: &str,
        known: &Known,
        diagnosis: &Diagnosis,
        cause: &str,
    ) -> Result<(), DbError> {
        let status = diagnosis.status.label();
        let finding = diagnosis.main_finding().map(|f| f.id.clone());
        let moved = status != known.status || finding != known.finding;
        let facts_json =
            serde_json::to_value(&known.facts).map_err(|e| DbError::Query(e.to_string()))?;
        let diagnosis_json =
            serde_json::to_value(diagnosis).map_err(|e| DbError::Query(e.to_string()))?;
        let payload = serde_json::json!({
            "vehicle_id": vehicle_id,
            "status": status,
            "finding": finding,
            "moved": moved,
        })
        .to_string();
        // One round trip: the new verdict, the notice, and only when it moved, its history row. A
        // data-modifying CTE runs whether or not the outer query reads it.
        let update = tx
            .prepare_cached(
                "WITH updated AS (
                     UPDATE vehicles SET facts = $2, status = $3, finding = $4, diagnosis = $5,
                         rules_sha256 = $10, updated_at = now(),
                         changed_at = CASE WHEN $6 THEN now() ELSE changed_at END
                     WHERE vehicle_id = $1 RETURNING 1),
                 history AS (
                     INSERT INTO status_history (vehicle_id, status, finding, cause)
                     SELECT $1, $3, $4, $7 FROM updated WHERE $6 RETURNING 1)
                 SELECT pg_notify($8, $9) FROM updated",
            )
            .await?;
        tx.query(
            &update,
            &[
                &vehicle_id,
                &facts_json,
                &status,
                &finding,
                &diagnosis_json,
                &moved,
                &cause,
                &self.channel(),
                &payload,
                &&*self.rules,
            ],
        )
        .await?;
        Ok(())
    }

    /// Diagnoses again, from stored evidence and without a request to Smartcar, up to `limit`
    /// vehicles after `after` (in id order) that `pass` selects. A diagnosis that changed is
    /// written as a delivery's would be (history when the verdict moved, cause `cause`, a notice);
    /// one that did not only records the rules it was made with. Each vehicle is diagnosed again
    /// under its row's lock, so a delivery committed meanwhile is never overwritten.
    pub async fn rediagnose(
        &self,
        pass: Pass,
        after: Option<&str>,
        limit: usize,
        cause: &str,
    ) -> Result<Rediagnosed, DbError> {
        let mut client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {KNOWN_COLUMNS}, vehicle_id, updated_at FROM vehicles
                     WHERE diagnosis IS NOT NULL AND ($1::text IS NULL OR vehicle_id > $1)
                       AND CASE WHEN $3 THEN rules_sha256 IS DISTINCT FROM $4
                                ELSE rules_sha256 = $4 END
                     ORDER BY vehicle_id LIMIT $2"
                ),
                &[
                    &after,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                    &(pass == Pass::Rules),
                    &&*self.rules,
                ],
            )
            .await?;
        let mut done = Rediagnosed {
            read: rows.len(),
            next: (rows.len() == limit)
                .then(|| rows.last().map(|r| r.get::<_, String>(KNOWN_LEN)))
                .flatten(),
            ..Rediagnosed::default()
        };
        // Unchanged by the new rules, as read: they only record the rules, in one statement, and
        // only if nothing was written to them since.
        let mut unchanged: (Vec<String>, Vec<std::time::SystemTime>) = Default::default();
        let mut moved: Vec<String> = Vec::new();
        for row in &rows {
            let vehicle_id: String = row.get(KNOWN_LEN);
            let known = Known::of(row);
            if pass == Pass::Time && !known.diagnosis.as_ref().is_some_and(may_change_with_time) {
                continue;
            }
            if known.diagnosis.as_ref() == Some(&self.diagnosis(&vehicle_id, &known)) {
                if pass == Pass::Rules {
                    unchanged.0.push(vehicle_id);
                    unchanged.1.push(row.get(KNOWN_LEN + 1));
                }
            } else {
                moved.push(vehicle_id);
            }
        }
        // The changed ones are diagnosed again under their rows' locks (a delivery may have been
        // committed meanwhile), a few at a time so no delivery waits long for its row.
        for ids in moved.chunks(LOCKED_AT_ONCE) {
            let tx = client.transaction().await?;
            let locked = tx
                .query(
                    &format!(
                        "SELECT {KNOWN_COLUMNS}, vehicle_id FROM vehicles
                         WHERE vehicle_id = ANY($1) ORDER BY vehicle_id FOR UPDATE"
                    ),
                    &[&ids],
                )
                .await?;
            for row in &locked {
                let vehicle_id: String = row.get(KNOWN_LEN);
                let known = Known::of(row);
                let diagnosis = self.diagnosis(&vehicle_id, &known);
                if known.diagnosis.as_ref() == Some(&diagnosis) {
                    tx.execute(
                        "UPDATE vehicles SET rules_sha256 = $2 WHERE vehicle_id = $1",
                        &[&vehicle_id, &&*self.rules],
                    )
                    .await?;
                } else {
                    self.write(&tx, &vehicle_id, &known, &diagnosis, cause)
                        .await?;
                    done.changed += 1;
                }
            }
            tx.commit().await?;
        }
        if !unchanged.0.is_empty() {
            client
                .execute(
                    "UPDATE vehicles SET rules_sha256 = $1
                     FROM unnest($2::text[], $3::timestamptz[]) AS v(vehicle_id, updated_at)
                     WHERE vehicles.vehicle_id = v.vehicle_id AND vehicles.updated_at = v.updated_at",
                    &[&&*self.rules, &unchanged.0, &unchanged.1],
                )
                .await?;
        }
        Ok(done)
    }

    /// Records the fleet as listed: new vehicles appear (UNKNOWN until something is known), known
    /// ones take a changed user and the make, model and year they lacked. Returns how many rows
    /// changed.
    pub async fn store_connections(&self, connections: &[ConnectionInfo]) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        let mut changed = 0;
        for chunk in connections.chunks(5_000) {
            let ids: Vec<&str> = chunk
                .iter()
                .map(|c| c.connection.vehicle_id.as_str())
                .collect();
            let users: Vec<&str> = chunk
                .iter()
                .map(|c| c.connection.user_id.as_str())
                .collect();
            // API v3 lists make, model and year; a value already known (a probe's) is kept.
            let attributes = |f: fn(&VehicleAttributes) -> &str| -> Vec<Option<&str>> {
                chunk.iter().map(|c| c.attributes.as_ref().map(f)).collect()
            };
            let makes = attributes(|a| a.make.as_str());
            let models = attributes(|a| a.model.as_str());
            let years: Vec<Option<i32>> = chunk
                .iter()
                .map(|c| c.attributes.as_ref().map(|a| i32::from(a.year)))
                .collect();
            let connected: Vec<Option<&str>> = chunk
                .iter()
                .map(|c| c.connection.connected_at.as_deref())
                .collect();
            changed += client
                .execute(
                    "INSERT INTO vehicles (vehicle_id, user_id, make, model, year, connected_at)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                                          $6::text[])
                     ON CONFLICT (vehicle_id) DO UPDATE SET
                         user_id = EXCLUDED.user_id,
                         connected_at = coalesce(EXCLUDED.connected_at, vehicles.connected_at),
                         make = coalesce(vehicles.make, EXCLUDED.make),
                         model = coalesce(vehicles.model, EXCLUDED.model),
                         year = coalesce(vehicles.year, EXCLUDED.year)
                     WHERE vehicles.user_id IS DISTINCT FROM EXCLUDED.user_id
                        OR (vehicles.make IS NULL AND EXCLUDED.make IS NOT NULL)
                        OR (vehicles.model IS NULL AND EXCLUDED.model IS NOT NULL)
                        OR (vehicles.year IS NULL AND EXCLUDED.year IS NOT NULL)
                        OR (EXCLUDED.connected_at IS NOT NULL
                            AND vehicles.connected_at IS DISTINCT FROM EXCLUDED.connected_at)",
                    &[&ids, &users, &makes, &models, &years, &connected],
                )
                .await?;
        }
        Ok(changed)
    }

    /// Probe requests not served yet, one row per vehicle, in the order they are to be served:
    /// Focus ahead of Visible ahead of Sweep, and within a priority the agents in turn (each
    /// agent's oldest request, then each one's second, ...), so one agent's many requests never
    /// make another's one wait behind them.
    pub async fn pending_probe_requests(&self) -> Result<Vec<PendingProbe>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "WITH waiting AS (
                     SELECT vehicle_id, forced, id, requested_at, requested_by,
                            CASE priority WHEN 'focus' THEN 3 WHEN 'visible' THEN 2 ELSE 1 END AS rank
                     FROM probe_requests
                     WHERE served_at IS NULL),
                 turns AS (
                     SELECT *, row_number() OVER (
                         PARTITION BY requested_by, rank ORDER BY requested_at, id) AS turn
                     FROM waiting),
                 vehicles AS (
                     SELECT vehicle_id, max(rank) AS rank, bool_or(forced) AS forced,
                            max(id) AS last_request,
                            -- The vehicle's place: its best request at its highest priority.
                            min(turn) FILTER (WHERE rank = top) AS turn,
                            min(requested_at) FILTER (WHERE rank = top) AS since,
                            array_agg(DISTINCT requested_by) FILTER (WHERE rank = top) AS agents
                     FROM (SELECT *, max(rank) OVER (PARTITION BY vehicle_id) AS top FROM turns) t
                     GROUP BY vehicle_id)
                 SELECT vehicle_id,
                        CASE rank WHEN 3 THEN 'focus' WHEN 2 THEN 'visible' ELSE 'sweep' END,
                        forced, last_request, agents
                 FROM vehicles
                 ORDER BY rank DESC, turn, since, vehicle_id LIMIT 1000",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PendingProbe {
                vehicle_id: r.get(0),
                priority: r.get(1),
                forced: r.get(2),
                last_request: r.get(3),
                requested_by: r.get(4),
            })
            .collect())
    }

    /// Asks the desk's prober to probe a vehicle, on behalf of `requested_by` (audited).
    pub async fn request_probe(
        &self,
        vehicle_id: &str,
        priority: &str,
        forced: bool,
        requested_by: &str,
    ) -> Result<i64, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO probe_requests (vehicle_id, priority, forced, requested_by)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&vehicle_id, &priority, &forced, &requested_by],
            )
            .await?
            .get(0);
        tx.execute(
            "INSERT INTO audit (actor, action, subject) VALUES ($1, 'request probe', $2)",
            &[&requested_by, &vehicle_id],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Writes one audit row: who did what to which subject.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&Value>,
    ) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO audit (actor, action, subject, detail) VALUES ($1, $2, $3, $4)",
                &[&actor, &action, &subject, &detail],
            )
            .await?;
        Ok(())
    }

    /// Deletes rows of `table` older than `days`, `batch` at a time (each a short statement of its
    /// own, so ingestion never waits long behind it); returns how many. The latest state of every
    /// vehicle stays: its newest history row, its newest probe result, any result a request names,
    /// and every pending request. A retry of a webhook event this old is merged again, which the
    /// newest-wins rule makes harmless.
    pub async fn prune(&self, table: Pruned, days: u32, batch: i64) -> Result<u64, DbError> {
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        let sql = match table {
            Pruned::WebhookEvents => {
                "DELETE FROM webhook_events WHERE event_id IN (
                     SELECT event_id FROM webhook_events
                     WHERE received_at < now() - ($1::int * interval '1 day') LIMIT $2)"
            }
            Pruned::StatusHistory => {
                "DELETE FROM status_history WHERE id IN (
                     SELECT h.id FROM status_history h
                     WHERE h.at < now() - ($1::int * interval '1 day')
                       AND EXISTS (SELECT 1 FROM status_history n
                                   WHERE n.vehicle_id = h.vehicle_id AND n.at > h.at)
                     LIMIT $2)"
            }
            Pruned::Audit => {
                "DELETE FROM audit WHERE id IN (
                     SELECT id FROM audit WHERE at < now() - ($1::int * interval '1 day') LIMIT $2)"
            }
            Pruned::ProbeRequests => {
                "DELETE FROM probe_requests WHERE id IN (
                     SELECT id FROM probe_requests
                     WHERE served_at IS NOT NULL
                       AND requested_at < now() - ($1::int * interval '1 day')
                     LIMIT $2)"
            }
            Pruned::ProbeResults => {
                "DELETE FROM probe_results WHERE id IN (
                     SELECT p.id FROM probe_results p
                     WHERE p.at < now() - ($1::int * interval '1 day')
                       AND EXISTS (SELECT 1 FROM probe_results n
                                   WHERE n.vehicle_id = p.vehicle_id AND n.at > p.at)
                       AND NOT EXISTS (SELECT 1 FROM probe_requests r WHERE r.probe_result_id = p.id)
                     LIMIT $2)"
            }
            // A lookup not finished stays: an agent may be waiting for it.
            Pruned::VinLookups => {
                "DELETE FROM vin_lookups WHERE vin IN (
                     SELECT vin FROM vin_lookups
                     WHERE done_at IS NOT NULL
                       AND requested_at < now() - ($1::int * interval '1 day')
                     LIMIT $2)"
            }
        };
        let batch = batch.max(1);
        let mut deleted = 0;
        loop {
            let client = self.pool.get().await?;
            let n = client.execute(sql, &[&days, &batch]).await?;
            drop(client);
            deleted += n;
            if n < batch as u64 {
                return Ok(deleted);
            }
            // Let deliveries in between batches.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Keeps refused deliveries, then trims the table to the newest `rows` younger than `days`.
    pub async fn keep_rejected(
        &self,
        rejected: &[super::rejected::Rejected],
        rows: u32,
        days: u32,
    ) -> Result<(), DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let whys: Vec<&str> = rejected.iter().map(|r| r.why.label()).collect();
        let statuses: Vec<i32> = rejected.iter().map(|r| i32::from(r.status)).collect();
        let details: Vec<Value> = rejected
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect();
        tx.execute(
            "INSERT INTO rejected_deliveries (why, status, detail)
             SELECT * FROM unnest($1::text[], $2::int[], $3::jsonb[])",
            &[&whys, &statuses, &details],
        )
        .await?;
        let rows = i64::from(rows.max(1));
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        tx.execute(
            "DELETE FROM rejected_deliveries
             WHERE at < now() - ($2::int * interval '1 day')
                OR id <= (SELECT id FROM rejected_deliveries ORDER BY id DESC OFFSET $1 LIMIT 1)",
            &[&rows, &days],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The refused deliveries kept, newest first, at most `limit`.
    pub async fn rejected(&self, limit: u32) -> Result<Vec<super::rejected::Rejected>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT detail FROM rejected_deliveries ORDER BY id DESC LIMIT $1",
                &[&i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_value(r.get::<_, Value>(0)).ok())
            .collect())
    }

    /// The vehicle's status and main finding, if the desk knows it.
    pub async fn vehicle_status(
        &self,
        vehicle_id: &str,
    ) -> Result<Option<(Status, Option<String>)>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT status, finding FROM vehicles WHERE vehicle_id = $1",
                &[&vehicle_id],
            )
            .await?;
        Ok(row.map(|r| {
            let status: String = r.get(0);
            (Status::parse(&status).unwrap_or(Status::Unknown), r.get(1))
        }))
    }
}

/// Rows a re-diagnosis holds locked at once.
const LOCKED_AT_ONCE: usize = 100;

/// The columns [`Known::of`] reads, in its order.
const KNOWN_COLUMNS: &str = "status, finding, facts, user_id, make, model, year, diagnosis";
const KNOWN_LEN: usize = 8;

/// A probe request refused because its agent has as many waiting as the desk allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// The agent's requests waiting now.
    pub waiting: i64,
}

/// The probe queue's bound: each agent may have so many requests waiting.
impl Db {
    /// [`Db::request_probe`] unless `requested_by` has `cap` requests waiting already (then
    /// `Ok(Err(QueueFull))`, nothing written). The count and the insert are one transaction
    /// serialized per agent, so requests sent at once cannot pass the cap together.
    pub async fn request_probe_within(
        &self,
        vehicle_id: &str,
        priority: &str,
        forced: bool,
        requested_by: &str,
        cap: u32,
    ) -> Result<Result<i64, QueueFull>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('vtriage probe queue ' || $1)::bigint)",
            &[&requested_by],
        )
        .await?;
        let waiting: i64 = tx
            .query_one(
                "SELECT count(*) FROM probe_requests WHERE requested_by = $1 AND served_at IS NULL",
                &[&requested_by],
            )
            .await?
            .get(0);
        if waiting >= i64::from(cap) {
            return Ok(Err(QueueFull { waiting }));
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO probe_requests (vehicle_id, priority, forced, requested_by)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&vehicle_id, &priority, &forced, &requested_by],
            )
            .await?
            .get(0);
        tx.execute(
            "INSERT INTO audit (actor, action, subject) VALUES ($1, 'request probe', $2)",
            &[&requested_by, &vehicle_id],
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }
}

/// A VIN lookup refused because its agent started as many within the hour as the desk allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupsSpent {
    /// Lookups the agent started within the last hour.
    pub started: i64,
    /// Seconds until the oldest of them is an hour old.
    pub retry_after_s: i64,
}

/// The bound on VIN lookups: each agent may start so many an hour (joining one under way is free).
impl Db {
    /// [`Db::request_vin_lookup`] unless it would start a lookup and `requested_by` started
    /// `per_hour` within the last hour (then `Ok(Err(LookupsSpent))`, nothing written). A lookup
    /// started is audited as `find vin` with `{"lookup": "started"}`, which the count reads.
    pub async fn request_vin_lookup_within(
        &self,
        vin: &str,
        requested_by: &str,
        per_hour: u32,
    ) -> Result<Result<(), LookupsSpent>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('vtriage vin lookups ' || $1)::bigint)",
            &[&requested_by],
        )
        .await?;
        let running = tx
            .query_opt(
                "SELECT 1 FROM vin_lookups WHERE vin = $1 AND done_at IS NULL",
                &[&vin],
            )
            .await?
            .is_some();
        if !running {
            let row = tx
                .query_one(
                    "SELECT count(*),
                            coalesce(ceil(extract(epoch FROM min(at) + interval '1 hour' - now())), 0)::bigint
                     FROM audit
                     WHERE actor = $1 AND action = 'find vin' AND detail->>'lookup' = 'started'
                       AND at > now() - interval '1 hour'",
                    &[&requested_by],
                )
                .await?;
            let started: i64 = row.get(0);
            if started >= i64::from(per_hour) {
                return Ok(Err(LookupsSpent {
                    started,
                    retry_after_s: row.get::<_, i64>(1).max(1),
                }));
            }
        }
        tx.execute(
            "INSERT INTO vin_lookups (vin, requested_by) VALUES ($1, $2)
             ON CONFLICT (vin) DO UPDATE
                 SET requested_by = EXCLUDED.requested_by, requested_at = now(),
                     done_at = NULL, vehicle_id = NULL, requests = NULL, gaps = NULL
                 WHERE vin_lookups.done_at IS NOT NULL",
            &[&vin, &requested_by],
        )
        .await?;
        let detail = (!running).then(|| serde_json::json!({"lookup": "started"}));
        tx.execute(
            "INSERT INTO audit (actor, action, subject, detail) VALUES ($1, 'find vin', $2, $3)",
            &[&requested_by, &vin, &detail],
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}

/// What the desk holds about a vehicle, as its row says.
struct Known {
    status: String,
    finding: Option<String>,
    facts: VehicleFacts,
    user_id: Option<String>,
    make: Option<String>,
    model: Option<String>,
    year: Option<i32>,
    /// The stored diagnosis; `None` when none was made (or it cannot be read).
    diagnosis: Option<Diagnosis>,
}

impl Known {
    /// Reads status, finding, facts, user, make, model, year and, when the row has it, the diagnosis.
    fn of(row: &tokio_postgres::Row) -> Known {
        let facts: Value = row.get(2);
        let diagnosis: Option<Value> = if row.len() > 7 { row.get(7) } else { None };
        Known {
            status: row.get(0),
            finding: row.get(1),
            // A document this version cannot read (written by a newer one) starts over rather
            // than failing every delivery for the vehicle.
            facts: serde_json::from_value(facts).unwrap_or_default(),
            user_id: row.get(3),
            make: row.get(4),
            model: row.get(5),
            year: row.get(6),
            diagnosis: diagnosis.and_then(|d| serde_json::from_value(d).ok()),
        }
    }

    fn attributes(&self, vehicle_id: &str) -> Option<VehicleAttributes> {
        match (&self.make, self.year.and_then(|y| u16::try_from(y).ok())) {
            (Some(make), Some(year)) => Some(VehicleAttributes {
                id: vehicle_id.to_string(),
                make: make.clone(),
                model: self.model.clone().unwrap_or_default(),
                year,
            }),
            _ => None,
        }
    }
}

/// Whether time alone can change this verdict, as the dashboard's store decides for its own: a
/// checked vehicle that is healthy (its data can go stale), or whose findings count down to a
/// rule's date or say the data is stale.
pub fn may_change_with_time(d: &Diagnosis) -> bool {
    d.checked_at.is_some()
        && (d.status == Status::Healthy
            || d.findings.iter().any(|f| {
                f.rule.is_some()
                    || f.kind()
                        == crate::health::FindingKind::Builtin(crate::health::FindingId::StaleData)
            }))
}

/// What a delivery or a probe says about the vehicle itself; `None` keeps what is stored.
struct Attributes<'a> {
    user_id: Option<&'a str>,
    make: Option<&'a str>,
    model: Option<&'a str>,
    year: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_schema_has_its_own_changes_channel_within_postgres_name_limit() {
        assert_eq!(changes_channel(None), "vtriage_changes");
        assert_eq!(changes_channel(Some("public")), "vtriage_changes");
        assert_eq!(changes_channel(Some("desk_a")), "vtriage_changes_desk_a");
        let long = "a".repeat(63);
        let hashed = changes_channel(Some(&long));
        assert!(hashed.len() <= 63, "{hashed}");
        assert_eq!(hashed, changes_channel(Some(&long)));
        assert_ne!(hashed, changes_channel(Some(&"b".repeat(63))));
    }

    #[test]
    fn only_checked_verdicts_that_a_rule_s_date_or_stale_data_can_move_wait_for_the_clock() {
        use crate::health::{Finding, Remedy, RemedyKind, Severity};
        let finding = |id: &str, rule: Option<&str>| Finding {
            id: id.into(),
            severity: Severity::Warning,
            title: id.into(),
            rule: rule.map(str::to_string),
            since: None,
            evidence: Vec::new(),
            remedy: Remedy {
                kind: RemedyKind::RetryLater,
                action: String::new(),
                link: None,
                customer_reply: String::new(),
                retry_after_s: None,
            },
        };
        let checked = Some(jiff::Timestamp::UNIX_EPOCH);
        let verdict = |status, findings, checked_at| Diagnosis {
            status,
            findings,
            checked_at,
        };
        for (d, waits) in [
            (verdict(Status::Healthy, vec![], checked), true),
            (verdict(Status::Healthy, vec![], None), false),
            (
                verdict(
                    Status::Warning,
                    vec![finding("virtual-key-missing", Some("tesla-virtual-key"))],
                    checked,
                ),
                true,
            ),
            (
                verdict(Status::Warning, vec![finding("stale-data", None)], checked),
                true,
            ),
            (
                verdict(
                    Status::Blocked,
                    vec![finding("access-token-expired", None)],
                    checked,
                ),
                false,
            ),
        ] {
            assert_eq!(may_change_with_time(&d), waits, "{d:?}");
        }
    }

    #[test]
    fn only_plain_identifiers_are_accepted_as_schema_names() {
        for good in ["desk", "_x", "vtriage_test_0af3"] {
            assert!(valid_schema(good), "{good}");
        }
        for bad in ["", "1abc", "a-b", "a;drop", "a b", &"x".repeat(64)] {
            assert!(!valid_schema(bad), "{bad}");
        }
    }

    #[test]
    fn a_schema_with_quotes_is_refused_before_any_connection() {
        let config = DbConfig {
            url: "postgres://postgres@127.0.0.1/test".into(),
            schema: Some("x\"; drop".into()),
            pool_size: 1,
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(config.pg_config(), Err(DbError::Schema(_))));
    }
}
