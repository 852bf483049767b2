//! Retention: every table the desk writes keeps its rows for its own number of days, deleted in
//! batches, and the latest state of every vehicle stays however old it is.

use crate::desk_support::{Schema, database_url};
use vtriage::desk::{Db, DbConfig, Pruned};

async fn db_on(schema: &Schema) -> Db {
    let config = DbConfig {
        url: database_url(),
        schema: Some(schema.name.clone()),
        pool_size: 2,
        timeout: std::time::Duration::from_secs(10),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_rows_of_every_table_go_in_batches_and_each_vehicles_latest_state_stays() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let db = db_on(&schema).await;
    // Two vehicles: one with a long past, one whose only rows are old.
    schema
        .client
        .batch_execute(
            "INSERT INTO vehicles (vehicle_id, status) VALUES ('v-busy', 'BLOCKED'), ('v-quiet', 'HEALTHY');
             INSERT INTO status_history (vehicle_id, status, at, cause)
               SELECT 'v-busy', 'BLOCKED', now() - (i || ' days')::interval, 'probe ' || i
               FROM generate_series(500, 2999) i;
             INSERT INTO status_history (vehicle_id, status, at, cause)
               VALUES ('v-busy', 'HEALTHY', now(), 'webhook e1'),
                      ('v-quiet', 'HEALTHY', now() - interval '900 days', 'probe 1');
             INSERT INTO audit (actor, action, at)
               SELECT 'alice', 'read fleet', now() - (i || ' days')::interval FROM generate_series(0, 999) i;
             INSERT INTO probe_results (vehicle_id, at, status, report)
               SELECT 'v-busy', now() - (i || ' days')::interval, 'BLOCKED', '{}' FROM generate_series(40, 139) i;
             INSERT INTO probe_results (vehicle_id, at, status, report)
               VALUES ('v-quiet', now() - interval '900 days', 'HEALTHY', '{}');
             INSERT INTO probe_requests (vehicle_id, requested_by, requested_at, served_at, probe_result_id)
               SELECT 'v-busy', 'alice', now() - interval '100 days', now() - interval '100 days',
                      (SELECT id FROM probe_results WHERE vehicle_id = 'v-busy' ORDER BY at LIMIT 1);
             INSERT INTO probe_requests (vehicle_id, requested_by, requested_at)
               VALUES ('v-busy', 'bob', now() - interval '90 days');
             INSERT INTO vin_lookups (vin, requested_by, requested_at, done_at)
               VALUES ('5YJ3E1EA1KF000001', 'alice', now() - interval '90 days', now() - interval '90 days'),
                      ('5YJ3E1EA1KF000002', 'bob', now() - interval '90 days', NULL),
                      ('5YJ3E1EA1KF000003', 'bob', now() - interval '2 days', now() - interval '2 days');",
        )
        .await
        .expect("an old desk");
    let deleted: Vec<u64> = {
        let mut out = Vec::new();
        for (table, days) in [
            (Pruned::StatusHistory, 400),
            (Pruned::Audit, 400),
            (Pruned::ProbeRequests, 30),
            (Pruned::ProbeResults, 30),
            (Pruned::VinLookups, 30),
        ] {
            out.push(db.prune(table, days, 300).await.expect("pruned"));
        }
        out
    };
    assert_eq!(
        deleted,
        [2_500, 600, 1, 99, 1],
        "history, audit, requests, results, finished VIN lookups"
    );
    let count = |sql: &'static str| schema.count(sql);
    assert_eq!(
        count("SELECT count(*) FROM status_history WHERE vehicle_id = 'v-quiet'").await,
        1,
        "a vehicle's only history row stays, however old"
    );
    assert_eq!(
        count("SELECT count(*) FROM status_history WHERE vehicle_id = 'v-busy'").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM probe_results WHERE vehicle_id = 'v-quiet'").await,
        1,
        "a vehicle's newest probe result stays"
    );
    assert_eq!(
        count("SELECT count(*) FROM probe_requests WHERE served_at IS NULL").await,
        1,
        "a pending request stays"
    );
    assert_eq!(count("SELECT count(*) FROM audit").await, 400);
    assert_eq!(
        count("SELECT count(*) FROM vin_lookups").await,
        2,
        "a lookup not finished stays, and a recent one"
    );
    // Nothing more to do on a second pass.
    assert_eq!(db.prune(Pruned::StatusHistory, 400, 300).await.unwrap(), 0);
}
