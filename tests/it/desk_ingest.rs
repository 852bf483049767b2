//! Deliveries that arrive together on PostgreSQL: one event sent by many senders at once, a shared
//! commit with a delivery the database refuses, and a shared commit leaving each vehicle as one
//! commit per delivery would.

use std::sync::Arc;
use std::time::Duration;

use crate::desk_support;

use desk_support::{Schema, Serve, blocked_tesla, database_url, http, post_signed, vehicle_error};
use serde_json::json;
use vtriage::desk::db::NewDelivery;
use vtriage::desk::webhook::{Delivery, parse};
use vtriage::desk::{Db, DbConfig, DbError, Metrics, Stored};

async fn serve_on(schema: &Schema) -> Serve {
    Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"])
}

/// The desk's store on the test schema, migrated, diagnosing with the built-in rules.
async fn store(schema: &Schema) -> Db {
    let config = DbConfig {
        url: database_url(),
        schema: Some(schema.name.clone()),
        pool_size: 8,
        timeout: Duration::from_secs(5),
    };
    let diagnose = vtriage::desk::diagnoser(
        vtriage::health::Policies::builtin(),
        vtriage::health::Needs::default(),
        vtriage::config::ApiVersion::V3,
    );
    let db = Db::new(&config, diagnose, None).expect("pool");
    db.migrate(Some(&schema.name)).await.expect("migrated");
    db
}

/// A delivery as the route hands it to the store.
fn delivery(body: &str) -> NewDelivery {
    let Ok(Delivery::Vehicle(event)) = parse(body.as_bytes()) else {
        panic!("a vehicle event: {body}");
    };
    NewDelivery {
        event_id: event.event_id.clone(),
        event_type: event.kind.as_str().to_string(),
        vehicle: Some(*event),
        body: serde_json::from_str(body).expect("JSON"),
    }
}

fn virtual_key(id: &str, vehicle: &str, state: &str, ms: i64) -> String {
    vehicle_error(
        id,
        vehicle,
        "CONNECTED_SERVICES_ACCOUNT",
        Some("VIRTUAL_KEY_REQUIRED"),
        state,
        ms,
        json!(["Location.PreciseLocation"]),
    )
}

/// Which of `ids` have their event row.
async fn stored_events(schema: &Schema, ids: &[String]) -> Vec<String> {
    schema
        .client
        .query(
            "SELECT event_id FROM webhook_events WHERE event_id = ANY($1) ORDER BY event_id",
            &[&ids],
        )
        .await
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_posted_by_eight_senders_at_once_is_stored_once_and_all_eight_hear_2xx() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = serve_on(&schema).await;
    let client = http();
    let body = Arc::new(blocked_tesla("evt-eight", "veh-eight"));
    let url = Arc::new(serve.webhook_url());
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (client, body, url, start) =
                (client.clone(), body.clone(), url.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                post_signed(&client, &url, &body).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for s in senders {
        answers.push(s.await.expect("sender"));
    }
    assert!(
        answers.iter().all(|s| (200..300).contains(s)),
        "{answers:?}"
    );
    assert_eq!(schema.count("SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(
        schema
            .count("SELECT count(*) FROM status_history WHERE vehicle_id = 'veh-eight'")
            .await,
        1,
        "the verdict moved once"
    );
    assert_eq!(
        serve.metric("vtriage_webhook_events_stored_total").await,
        Some(1.0)
    );
    assert_eq!(
        serve
            .metric("vtriage_webhook_events_deduplicated_total")
            .await,
        Some(7.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_the_database_refuses_among_busy_senders_are_never_answered_2xx() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let serve = serve_on(&schema).await;
    let client = http();
    // Every eighth body carries a NUL, which PostgreSQL's jsonb refuses: a poisoned row in
    // whichever shared transaction it lands in.
    let bodies: Vec<(String, String, bool)> = (0..96)
        .map(|i| {
            let id = format!("evt-busy-{i:03}");
            let vehicle = format!("veh-busy-{}", i % 12);
            let poisoned = i % 8 == 5;
            let mut body = virtual_key(&id, &vehicle, "ERROR", 1_760_000_000_000 + i);
            if poisoned {
                body = body.replace("from the test", "from the\\u0000test");
            }
            (id, body, poisoned)
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = Arc::new(serve.webhook_url());
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (client, bodies, next, url) =
                (client.clone(), bodies.clone(), next.clone(), url.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((id, body, poisoned)) = bodies.get(i) else {
                        return answered;
                    };
                    let status = post_signed(&client, &url, body).await;
                    answered.push((id.clone(), *poisoned, status));
                }
            })
        })
        .collect();
    let mut answered = Vec::new();
    for s in senders {
        answered.extend(s.await.expect("sender"));
    }
    assert_eq!(answered.len(), 96);
    let ids: Vec<String> = answered.iter().map(|(id, _, _)| id.clone()).collect();
    let committed = stored_events(&schema, &ids).await;
    for (id, poisoned, status) in &answered {
        let is_committed = committed.contains(id);
        if (200..300).contains(status) {
            assert!(is_committed, "{id} answered {status} but not committed");
        }
        if *poisoned {
            assert_eq!(*status, 422, "{id}: refused data is not an outage");
            assert!(!is_committed, "{id} was refused yet stored");
        } else {
            assert_eq!(*status, 200, "{id}: a clean delivery is committed");
        }
    }
    assert_eq!(committed.len(), 84);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_commit_the_database_refuses_mid_batch_commits_nothing_then_each_delivery_alone() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let db = store(&schema).await;
    // The database refuses one event of the batch, after it accepted the ones before it.
    schema
        .client
        .batch_execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.event_id LIKE 'poison-%' THEN
                     RAISE EXCEPTION 'refused by the test';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON webhook_events
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .await
        .expect("trigger");
    let mut batch: Vec<NewDelivery> = (0..9)
        .map(|i| {
            delivery(&virtual_key(
                &format!("evt-{i}"),
                &format!("veh-{}", i % 3),
                "ERROR",
                1_760_000_000_000 + i,
            ))
        })
        .collect();
    batch.insert(4, delivery(&blocked_tesla("poison-1", "veh-1")));
    // The same event twice in one batch.
    batch.push(delivery(&virtual_key(
        "evt-2",
        "veh-2",
        "ERROR",
        1_760_000_000_002,
    )));

    let failed = db.store_deliveries(&batch).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        schema.count("SELECT count(*) FROM webhook_events").await,
        0,
        "a failed shared commit leaves nothing"
    );
    assert_eq!(schema.count("SELECT count(*) FROM vehicles").await, 0);

    let metrics = Metrics::new();
    let answers = vtriage::desk::server::commit_together(&db, &metrics, &batch).await;
    assert_eq!(answers.len(), batch.len());
    for (d, answer) in batch.iter().zip(&answers) {
        match answer {
            Err(DbError::Query(_)) if d.event_id == "poison-1" => {}
            Ok(_) if d.event_id != "poison-1" => {}
            other => panic!("{}: {other:?}", d.event_id),
        }
    }
    let new = answers
        .iter()
        .filter(|a| matches!(a, Ok(Stored::New)))
        .count();
    assert_eq!(new, 9, "{answers:?}");
    assert!(matches!(answers[10], Ok(Stored::Duplicate)), "{answers:?}");
    assert_eq!(schema.count("SELECT count(*) FROM webhook_events").await, 9);
    assert_eq!(
        schema
            .count("SELECT count(*) FROM status_history WHERE status = 'BLOCKED'")
            .await,
        3,
        "each vehicle blocked once"
    );
    assert_eq!(
        metrics
            .batches_retried
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// A vehicle's history (status, finding, cause with the vehicle's prefix taken off the event id).
async fn history(schema: &Schema, vehicle: &str) -> Vec<(String, Option<String>, String)> {
    schema
        .client
        .query(
            "SELECT status, finding, cause FROM status_history WHERE vehicle_id = $1 ORDER BY id",
            &[&vehicle],
        )
        .await
        .expect("history")
        .iter()
        .map(|r| {
            let cause: String = r.get(2);
            (
                r.get(0),
                r.get(1),
                cause.replace(&format!("{vehicle}-"), ""),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_commit_leaves_each_car_as_one_commit_per_delivery_would() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let db = store(&schema).await;
    // Blocked, unblocked, blocked again, a retry and a late resolution older than the last error.
    let story = |vehicle: &str| -> Vec<NewDelivery> {
        let t = 1_760_000_000_000;
        [
            ("e1", "ERROR", t),
            ("e2", "RESOLVED", t + 1_000),
            ("e3", "ERROR", t + 2_000),
            ("e1", "ERROR", t),
            ("e4", "RESOLVED", t + 1_500),
        ]
        .iter()
        .map(|(id, state, ms)| {
            delivery(&virtual_key(
                &format!("{vehicle}-{id}"),
                vehicle,
                state,
                *ms,
            ))
        })
        .collect()
    };
    let mut alone = Vec::new();
    for d in story("veh-alone") {
        let stored = db
            .store_delivery(&d.event_id, &d.event_type, d.vehicle.as_ref(), &d.body)
            .await
            .expect("committed");
        alone.push(stored);
    }
    let together = db
        .store_deliveries(&story("veh-together"))
        .await
        .expect("committed");
    assert_eq!(alone, together);
    assert_eq!(
        together,
        [
            Stored::New,
            Stored::New,
            Stored::New,
            Stored::Duplicate,
            Stored::New
        ]
    );
    let alone_history = history(&schema, "veh-alone").await;
    assert_eq!(alone_history.len(), 3, "{alone_history:?}");
    assert_eq!(alone_history, history(&schema, "veh-together").await);
    let verdict = |vehicle: &'static str| {
        let client = &schema.client;
        async move {
            let row = client
                .query_one(
                    "SELECT status, finding, diagnosis->'findings' FROM vehicles
                     WHERE vehicle_id = $1",
                    &[&vehicle],
                )
                .await
                .expect("vehicle");
            let findings: serde_json::Value = row.get(2);
            (
                row.get::<_, String>(0),
                row.get::<_, Option<String>>(1),
                findings.to_string().replace(&format!("{vehicle}-"), ""),
            )
        }
    };
    let alone_verdict = verdict("veh-alone").await;
    assert_eq!(alone_verdict.0, "BLOCKED");
    assert_eq!(alone_verdict, verdict("veh-together").await);
}
