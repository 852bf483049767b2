//! Upgrading a desk: a database migrated by any earlier text of a migration reaches the one shape
//! this build needs and works; a migration whose file changed after a database applied it stops
//! `serve` with one line.

use crate::desk_support::{
    Schema, Serve, blocked_tesla, database_url, http, post_signed, temp_home,
};

/// The texts `0003_forced_probes.sql` had before it was restored to its first one: each may have
/// been applied by a desk in the wild.
const HISTORY_0003: [(&str, &str); 3] = [
    (
        "64bfe66",
        include_str!("desk_support/migrations_history/0003_as_of_64bfe66.sql"),
    ),
    (
        "96012a4",
        include_str!("desk_support/migrations_history/0003_as_of_96012a4.sql"),
    ),
    (
        "ff546a1",
        include_str!("desk_support/migrations_history/0003_as_of_ff546a1.sql"),
    ),
];
const M0001: &str = include_str!("../../src/desk/migrations/0001_desk.sql");
const M0002: &str = include_str!("../../src/desk/migrations/0002_agents.sql");

/// How many migrations this build carries.
fn migration_files() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/desk/migrations");
    std::fs::read_dir(dir)
        .expect("the migrations folder")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64
}

/// The schema as a build of that day left it: migrations 1–3 applied, recorded without checksums.
async fn migrated_by_an_earlier_build(schema: &Schema, m0003: &str) {
    schema
        .client
        .batch_execute(&format!(
            "{M0001}\n{M0002}\n{m0003}\n
             CREATE TABLE vtriage_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO vtriage_migrations (version) VALUES (1), (2), (3);"
        ))
        .await
        .expect("the earlier shape");
}

async fn has_column(schema: &Schema, table: &str, column: &str) -> bool {
    schema
        .count(&format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{}' \
             AND table_name = '{table}' AND column_name = '{column}'",
            schema.name
        ))
        .await
        == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_migrated_by_each_earlier_text_of_0003_upgrades_to_one_shape_and_stores_deliveries()
{
    for (commit, m0003) in HISTORY_0003 {
        let Some(schema) = Schema::create().await else {
            return;
        };
        migrated_by_an_earlier_build(&schema, m0003).await;
        let serve = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
        for (table, column) in [
            ("probe_requests", "forced"),
            ("vehicles", "connected_at"),
            ("vehicles", "vin"),
            ("vehicles", "rules_sha256"),
            ("vin_lookups", "vin"),
        ] {
            assert!(
                has_column(&schema, table, column).await,
                "{commit}: {table}.{column} missing after the upgrade"
            );
        }
        assert_eq!(
            schema
                .count("SELECT count(*) FROM vtriage_migrations WHERE sha256 IS NOT NULL")
                .await,
            migration_files(),
            "{commit}: every migration recorded with its checksum"
        );
        let body = blocked_tesla("evt-upgrade", "veh-upgrade");
        assert_eq!(
            post_signed(&http(), &serve.webhook_url(), &body).await,
            200,
            "{commit}: a delivery is stored after the upgrade"
        );
        assert_eq!(
            schema
                .count("SELECT count(*) FROM vehicles WHERE vehicle_id = 'veh-upgrade'")
                .await,
            1,
            "{commit}"
        );
        drop(serve);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_migration_whose_file_changed_stops_serve_with_one_line_naming_it() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    drop(Serve::start(
        &database_url(),
        &schema.name,
        &["--demo", "--no-prober"],
    ));
    schema
        .client
        .batch_execute(
            "UPDATE vtriage_migrations SET sha256 = 'a-text-applied-long-ago' WHERE version = 3",
        )
        .await
        .expect("checksum altered");
    let home = temp_home("migration-changed");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_vtriage"))
            .args(["serve", "--demo", "--no-prober", "--listen", "127.0.0.1:0"])
            .args(["--database", &database_url(), "--schema", &schema.name])
            .env("VTRIAGE_HOME", &home)
            .env("SMARTCAR_MANAGEMENT_TOKEN", crate::desk_support::AMT)
            .env_remove("DATABASE_URL")
            .output(),
    )
    .await
    .expect("serve stops by itself")
    .expect("serve runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.contains("migration 3 (0003_forced_probes.sql)") && line.contains("never change"),
        "{stderr}"
    );
}
