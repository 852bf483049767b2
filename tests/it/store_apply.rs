//! The store fed the scheduler's events (through `feed`): records, diagnosis, history, counts, sort,
//! selection.

use crate::store_fixture;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use store_fixture::*;
use vtriage::fetch::{Event, Priority, Progress};
use vtriage::health::Status;
use vtriage::store::{SortColumn, Store};

#[test]
fn listing_creates_unknown_records_and_no_token_vehicles_get_a_finding() {
    let mut store = Store::new(diagnoser());
    let changed = vtriage::feed::apply(
        &mut store,
        &listed(vec![
            connection("v1", "u1", true),
            connection("v2", "u2", false),
        ]),
        now(),
    );
    assert!(changed);
    assert_eq!(store.len(), 2);
    let v1 = store.vehicle("v1").unwrap();
    assert_eq!(v1.verdict.status, Status::Unknown);
    assert!(v1.diagnosis().findings.is_empty());
    assert!(v1.has_token);
    let v2 = store.vehicle("v2").unwrap();
    assert_eq!(
        v2.verdict.main_finding().map(|f| &*f.id),
        Some("no-access-token")
    );
    assert!(!v2.has_token);
    assert_eq!(store.counts().total, 2);
    assert_eq!(store.counts().checked, 0);
}

#[test]
fn an_observation_merges_attributes_diagnoses_and_records_the_status_change() {
    let mut store = Store::new(diagnoser());
    vtriage::feed::apply(
        &mut store,
        &listed(vec![connection("v1", "u1", true)]),
        now(),
    );
    vtriage::feed::apply(
        &mut store,
        &Event::ProbeStarted {
            vehicle_id: "v1".into(),
            priority: Priority::Focus,
        },
        now(),
    );
    assert!(store.vehicle("v1").unwrap().probing);

    let at = t("2026-11-27T12:00:05Z");
    let r = report(
        "v1",
        "u1",
        Some(attributes("v1", "TESLA", "Model 3", 2021)),
        Some("5YJ3X"),
        Outcome::VirtualKeyRequired,
        at,
    );
    assert!(vtriage::feed::apply(
        &mut store,
        &observed(r),
        t("2026-11-27T12:00:06Z")
    ));
    let v = store.vehicle("v1").unwrap();
    assert!(!v.probing);
    assert_eq!(v.verdict.status, Status::Blocked);
    assert_eq!(
        v.attributes.as_ref().map(|a| a.model.as_str()),
        Some("Model 3")
    );
    assert_eq!(v.vin.as_deref(), Some("5YJ3X"));
    assert_eq!(v.last_probe_at, Some(at));
    assert_eq!(v.failing_since, Some(t("2026-11-27T12:00:06Z")));
    assert_eq!(v.history.len(), 1);
    assert_eq!(
        (v.history[0].from, v.history[0].to),
        (Status::Unknown, Status::Blocked)
    );

    // A later probe without attributes keeps the known ones (and passes them to the diagnoser).
    let r = report(
        "v1",
        "u1",
        None,
        None,
        Outcome::VirtualKeyRequired,
        t("2026-11-27T13:00:00Z"),
    );
    vtriage::feed::apply(&mut store, &observed(r), t("2026-11-27T13:00:01Z"));
    let v = store.vehicle("v1").unwrap();
    assert_eq!(
        v.attributes.as_ref().map(|a| a.make.as_str()),
        Some("TESLA")
    );
    assert_eq!(
        v.report().and_then(|r| r.attributes).map(|a| a.year),
        Some(2021)
    );
    assert_eq!(v.history.len(), 1, "same status, no new history entry");
    assert_eq!(
        v.failing_since,
        Some(t("2026-11-27T12:00:06Z")),
        "failing since the first failure"
    );
}

#[test]
fn recovery_clears_failing_since_and_history_stays_bounded() {
    let mut store = Store::new(diagnoser());
    vtriage::feed::apply(
        &mut store,
        &listed(vec![connection("v1", "u1", true)]),
        now(),
    );
    let mut at = now();
    for i in 0..40 {
        at += jiff::SignedDuration::from_secs(60);
        let outcome = if i % 2 == 0 {
            Outcome::Asleep
        } else {
            Outcome::Ok
        };
        probe(&mut store, "v1", "u1", outcome, at);
    }
    let v = store.vehicle("v1").unwrap();
    assert_eq!(v.verdict.status, Status::Healthy);
    assert_eq!(v.failing_since, None);
    assert_eq!(v.history.len(), vtriage::store::HISTORY_LEN);
    assert_eq!(
        v.history.last().map(|c| (c.from, c.to, c.at)),
        Some((Status::Degraded, Status::Healthy, at))
    );
}

#[test]
fn counts_follow_every_change() {
    let mut store = fleet_store();
    let c = store.counts();
    assert_eq!(c.total, 6);
    assert_eq!(c.checked, 4);
    assert_eq!(c.status(Status::Blocked), 1);
    assert_eq!(c.status(Status::Degraded), 1);
    assert_eq!(c.status(Status::Healthy), 2);
    assert_eq!(c.status(Status::Unknown), 2);
    assert_eq!(c.by_rule.get("tesla-virtual-key"), Some(&1));
    assert_eq!(c.by_make.get("TESLA"), Some(&3));
    assert_eq!(c.by_finding.get("no-access-token"), Some(&1));

    // The blocked Tesla gets its key: blocked count drops, healthy rises, the rule disappears.
    probe(&mut store, "veh-a", "user-1", Outcome::Ok, now());
    let c = store.counts();
    assert_eq!(c.status(Status::Blocked), 0);
    assert_eq!(c.status(Status::Healthy), 3);
    assert_eq!(c.by_rule.get("tesla-virtual-key"), None);
    assert_eq!(c.checked, 4);
}

#[test]
fn a_vehicle_that_changes_status_moves_in_and_out_of_a_status_filter() {
    let mut store = fleet_store();
    store.set_filter("status:blocked").unwrap();
    assert_eq!(ids(&store), ["veh-a"]);
    probe(
        &mut store,
        "veh-b",
        "user-1",
        Outcome::VirtualKeyRequired,
        now(),
    );
    assert_eq!(ids(&store), ["veh-a", "veh-b"]);
    probe(&mut store, "veh-a", "user-1", Outcome::Ok, now());
    assert_eq!(ids(&store), ["veh-b"]);
}

#[test]
fn sorting_is_stable_in_both_directions_and_blocked_comes_first_descending() {
    let mut store = fleet_store();
    store.set_sort(SortColumn::Status, true);
    assert_eq!(
        ids(&store),
        ["veh-a", "veh-c", "veh-d", "veh-e", "veh-b", "veh-f"]
    );
    store.set_sort(SortColumn::Status, false);
    assert_eq!(
        ids(&store),
        ["veh-b", "veh-f", "veh-d", "veh-e", "veh-c", "veh-a"]
    );
    store.set_sort(SortColumn::Vehicle, false);
    // No attributes first, then make, model, year.
    assert_eq!(
        ids(&store),
        ["veh-d", "veh-e", "veh-c", "veh-a", "veh-f", "veh-b"]
    );
    store.set_sort(SortColumn::Vin, true);
    assert_eq!(
        ids(&store),
        ["veh-b", "veh-f", "veh-a", "veh-c", "veh-d", "veh-e"]
    );
    store.set_sort(SortColumn::User, false);
    assert_eq!(
        ids(&store),
        ["veh-a", "veh-b", "veh-c", "veh-d", "veh-e", "veh-f"]
    );
    store.set_sort(SortColumn::Finding, false);
    assert_eq!(
        ids(&store),
        ["veh-b", "veh-d", "veh-f", "veh-c", "veh-e", "veh-a"]
    );
    store.set_sort(SortColumn::VehicleId, true);
    assert_eq!(
        ids(&store),
        ["veh-f", "veh-e", "veh-d", "veh-c", "veh-b", "veh-a"]
    );
    assert_eq!(store.sort(), (SortColumn::VehicleId, true));
    for column in SortColumn::ALL {
        assert!(!column.label().is_empty());
    }
}

#[test]
fn a_new_observation_repositions_the_row_under_the_current_sort() {
    let mut store = fleet_store();
    store.set_sort(SortColumn::Checked, true);
    let later = t("2026-11-28T00:00:00Z");
    probe(&mut store, "veh-d", "user-3", Outcome::Ok, later);
    assert_eq!(store.row(0).map(|r| r.vehicle_id.as_str()), Some("veh-d"));
    assert_eq!(
        store.row(5).map(|r| r.vehicle_id.as_str()),
        Some("veh-e"),
        "never checked sorts last descending"
    );
}

#[test]
fn selection_follows_the_vehicle_through_sort_filter_and_updates() {
    let mut store = fleet_store();
    store.select(Some("veh-c"));
    assert_eq!(store.selected_index(), Some(1));
    store.set_sort(SortColumn::VehicleId, false);
    assert_eq!(
        store.selected().map(|r| r.vehicle_id.as_str()),
        Some("veh-c")
    );
    assert_eq!(store.selected_index(), Some(2));
    store.set_filter("has:vin").unwrap();
    assert_eq!(store.selected_index(), Some(2));
    vtriage::feed::apply(
        &mut store,
        &listed(
            FLEET
                .iter()
                .map(|c| connection(c.id, c.user, c.has_token))
                .collect(),
        ),
        now(),
    );
    assert_eq!(
        store.selected().map(|r| r.vehicle_id.as_str()),
        Some("veh-c"),
        "survives a refresh"
    );
}

#[test]
fn a_filtered_out_selection_moves_to_the_nearest_row() {
    let mut store = fleet_store();
    store.set_sort(SortColumn::VehicleId, false);
    store.select(Some("veh-d"));
    store.set_filter("has:vin").unwrap(); // veh-d has no VIN: a, b, c, f remain
    assert_eq!(
        store.selected().map(|r| r.vehicle_id.as_str()),
        Some("veh-f")
    );
    store.set_filter("status:blocked").unwrap();
    assert_eq!(
        store.selected().map(|r| r.vehicle_id.as_str()),
        Some("veh-a")
    );
    // The selected vehicle recovers and leaves the filter: nothing is left to select.
    probe(&mut store, "veh-a", "user-1", Outcome::Ok, now());
    assert_eq!(store.visible_len(), 0);
    assert!(store.selected().is_none());
}

#[test]
fn moving_the_selection_clamps_at_both_ends() {
    let mut store = fleet_store();
    store.select_next(1);
    assert_eq!(store.selected_index(), Some(0));
    store.select_next(3);
    assert_eq!(store.selected_index(), Some(3));
    store.select_next(100);
    assert_eq!(store.selected_index(), Some(5));
    store.select_prev(2);
    assert_eq!(store.selected_index(), Some(3));
    store.select_prev(100);
    assert_eq!(store.selected_index(), Some(0));
    store.select_last();
    assert_eq!(store.selected_index(), Some(5));
    store.select_first();
    assert_eq!(store.selected_index(), Some(0));
    store.select(None);
    assert!(store.selected().is_none());
    store.select(Some("no-such-vehicle"));
    assert!(store.selected().is_none());
}

#[test]
fn find_accepts_a_vehicle_id_a_vin_or_a_user_id() {
    let store = fleet_store();
    assert_eq!(
        store.find("veh-c").map(|r| r.vehicle_id.as_str()),
        Some("veh-c")
    );
    assert_eq!(
        store
            .find(" 5yj3e1ea7kf000001 ")
            .map(|r| r.vehicle_id.as_str()),
        Some("veh-a")
    );
    assert_eq!(
        store.find("user-1").map(|r| r.vehicle_id.as_str()),
        Some("veh-a")
    );
    assert!(store.find("nobody").is_none());
    assert!(store.find("  ").is_none());
}

#[test]
fn relisting_keeps_probe_data_and_drops_vehicles_no_longer_connected() {
    let mut store = fleet_store();
    vtriage::feed::apply(
        &mut store,
        &listed(vec![
            connection("veh-a", "user-1", true),
            connection("veh-new", "user-9", true),
        ]),
        now(),
    );
    assert_eq!(store.len(), 2);
    assert_eq!(
        store.vehicle("veh-a").unwrap().verdict.status,
        Status::Blocked
    );
    assert!(store.vehicle("veh-b").is_none());
    assert_eq!(
        store.vehicle("veh-new").unwrap().verdict.status,
        Status::Unknown
    );
    assert_eq!(store.counts().total, 2);
    assert_eq!(store.counts().status(Status::Blocked), 1);
}

#[test]
fn an_observation_of_an_unlisted_vehicle_adds_it() {
    let mut store = fleet_store();
    probe(&mut store, "veh-z", "user-z", Outcome::Asleep, now());
    assert_eq!(store.len(), 7);
    assert_eq!(store.vehicle("veh-z").unwrap().user_id, "user-z");
    assert_eq!(store.counts().status(Status::Degraded), 2);
    store.set_filter("status:degraded").unwrap();
    assert_eq!(ids(&store), ["veh-c", "veh-z"]);
}

#[test]
fn header_events_are_kept_and_report_a_change() {
    let mut store = Store::new(diagnoser());
    let progress = Progress {
        done: 3,
        total: 10,
        ..Progress::default()
    };
    assert!(vtriage::feed::apply(
        &mut store,
        &Event::Progress(progress.clone()),
        now()
    ));
    assert!(
        !vtriage::feed::apply(&mut store, &Event::Progress(progress), now()),
        "same progress twice is no change"
    );
    assert_eq!(store.progress().done, 3);
    vtriage::feed::apply(
        &mut store,
        &Event::RateLimited {
            until: t("2026-11-27T12:05:00Z"),
            by_smartcar: true,
        },
        now(),
    );
    assert_eq!(store.rate_limited_until(), Some(t("2026-11-27T12:05:00Z")));
    vtriage::feed::apply(
        &mut store,
        &Event::SweepCost {
            requests: 5000,
            eta_s: 3600,
        },
        now(),
    );
    assert_eq!(store.sweep_cost(), Some((5000, 3600)));
    vtriage::feed::apply(
        &mut store,
        &Event::SourceError {
            message: "management token refused".into(),
        },
        now(),
    );
    assert_eq!(store.source_error(), Some("management token refused"));
    vtriage::feed::apply(
        &mut store,
        &listed(vec![connection("v1", "u1", true)]),
        now(),
    );
    assert_eq!(
        store.source_error(),
        None,
        "a successful listing clears the source error"
    );
    assert!(!vtriage::feed::apply(
        &mut store,
        &Event::ProbeStarted {
            vehicle_id: "ghost".into(),
            priority: Priority::Sweep
        },
        now()
    ));
}

#[test]
fn rediagnose_all_applies_a_new_diagnoser_to_every_vehicle() {
    let mut store = fleet_store();
    // Re-running the same diagnoser changes nothing visible.
    let before = ids(&store);
    store.rediagnose_all(now());
    assert_eq!(ids(&store), before);
    assert_eq!(store.counts().status(Status::Blocked), 1);
}

/// The incremental view must equal a view computed from scratch after any sequence of events.
#[test]
fn incremental_rows_equal_a_full_recompute_after_random_events() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let filters = [
        "",
        "status:blocked",
        "status:blocked,degraded",
        "!status:healthy",
        "make:tesla",
        "5yj",
        "checked:no",
        "!has:token",
    ];
    let makes = [
        ("TESLA", "Model 3"),
        ("TESLA", "Model Y"),
        ("FORD", "F-150"),
        ("BMW", "i4"),
    ];
    for round in 0..20 {
        let mut store = Store::new(diagnoser());
        let n = 60;
        let conns = (0..n)
            .map(|i| connection(&format!("v{i:03}"), &format!("u{}", i % 17), i % 9 != 0))
            .collect();
        vtriage::feed::apply(&mut store, &listed(conns), now());
        let column = SortColumn::ALL[round % SortColumn::ALL.len()];
        store.set_sort(column, round % 2 == 0);
        store.set_filter(filters[round % filters.len()]).unwrap();
        store.select(Some("v010"));
        for step in 0..300 {
            let i = rng.random_range(0..n);
            let (make, model) = makes[rng.random_range(0..makes.len())];
            let vin = format!("{}X{i:05}", if make == "TESLA" { "5YJ" } else { "1FT" });
            let outcome =
                [Outcome::Ok, Outcome::VirtualKeyRequired, Outcome::Asleep][rng.random_range(0..3)];
            let at = now() + jiff::SignedDuration::from_secs(rng.random_range(0..1000));
            let id = format!("v{i:03}");
            let r = report(
                &id,
                &format!("u{}", i % 17),
                Some(attributes(&id, make, model, 2020)),
                Some(&vin),
                outcome,
                at,
            );
            vtriage::feed::apply(&mut store, &observed(r), at);
            if step % 50 == 0 {
                store
                    .set_filter(filters[rng.random_range(0..filters.len())])
                    .unwrap();
            }
        }
        let mut fresh = Store::new(diagnoser());
        fresh.restore(store.to_snapshot());
        fresh.set_sort(store.sort().0, store.sort().1);
        fresh.set_filter(store.filter_text()).unwrap();
        assert_eq!(
            ids(&store),
            ids(&fresh),
            "round {round}, sort {:?}, filter `{}`",
            store.sort(),
            store.filter_text()
        );
        assert_eq!(store.counts(), fresh.counts(), "round {round}");
        if let Some(i) = store.selected_index() {
            assert_eq!(
                store.row(i).map(|r| &r.vehicle_id),
                store.selected().map(|r| &r.vehicle_id)
            );
        }
    }
}

#[test]
fn a_vehicle_opened_through_find_stays_selected_while_other_rows_update() {
    let mut store = fleet_store();
    store.set_filter("status:blocked").unwrap();
    let id = store.find("user-3").map(|r| r.vehicle_id.clone()).unwrap();
    store.select(Some(&id));
    assert_eq!(store.selected_index(), None, "filtered out, but selected");
    probe(&mut store, "veh-b", "user-1", Outcome::Asleep, now());
    assert_eq!(
        store.selected().map(|r| r.vehicle_id.as_str()),
        Some("veh-d")
    );
    // Moving from a hidden selection starts where it would sort.
    store.select_next(1);
    assert_eq!(
        store.selected().map(|r| r.vehicle_id.as_str()),
        Some("veh-a")
    );
}

#[test]
fn an_exempt_vehicle_does_not_count_as_affected_by_the_rule() {
    use vtriage::health::{Diagnosis, Finding, Remedy, RemedyKind, Severity};
    let exempt: vtriage::store::Diagnoser = std::sync::Arc::new(|report, _now| {
        let severity = if report.vehicle_id == "veh-a" {
            Severity::Blocked
        } else {
            Severity::Info
        };
        Diagnosis {
            status: Status::from_severity(severity),
            findings: vec![Finding {
                id: if severity == Severity::Info {
                    "virtual-key-exempt"
                } else {
                    "virtual-key-missing"
                }
                .into(),
                severity,
                title: "t".into(),
                rule: Some("tesla-virtual-key".into()),
                since: None,
                evidence: Vec::new(),
                remedy: Remedy {
                    kind: RemedyKind::None,
                    action: String::new(),
                    link: None,
                    customer_reply: String::new(),
                    retry_after_s: None,
                },
            }],
            checked_at: Some(now()),
        }
    });
    let mut store = Store::new(exempt);
    vtriage::feed::apply(
        &mut store,
        &listed(vec![
            connection("veh-a", "user-1", true),
            connection("veh-b", "user-2", true),
        ]),
        now(),
    );
    for id in ["veh-a", "veh-b"] {
        probe(&mut store, id, "user-1", Outcome::Ok, now());
    }
    assert_eq!(
        store.counts().by_rule.get("tesla-virtual-key"),
        Some(&1),
        "only the blocked one"
    );
    assert_eq!(
        store.counts().by_finding.get("virtual-key-exempt"),
        Some(&1)
    );
}

#[test]
fn a_query_finds_a_vehicle_a_user_s_cars_or_a_unique_prefix_and_says_when_a_prefix_is_ambiguous() {
    let mut store = Store::new(diagnoser());
    vtriage::feed::apply(
        &mut store,
        &listed(vec![
            connection("d63be243-aaaa", "user-1", true),
            connection("d63bf000-bbbb", "user-2", true),
            connection("77aa0000-cccc", "user-1", true),
        ]),
        now(),
    );
    let ids = |found: Vec<&vtriage::store::VehicleRecord>| {
        found
            .iter()
            .map(|r| r.vehicle_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(store.find_all("user-1").unwrap()).len(), 2);
    assert_eq!(ids(store.find_all("d63be2").unwrap()), ["d63be243-aaaa"]);
    assert_eq!(ids(store.find_all("77aa").unwrap()), ["77aa0000-cccc"]);
    assert!(matches!(
        store.find_all("d63b"),
        Err(vtriage::store::FindError::Ambiguous { vehicles: 2, .. })
    ));
    assert!(store.find_all("d6").is_err(), "too short to be a prefix");
    assert!(store.find_all("zzzz").is_err());
}

#[test]
fn a_vin_read_by_a_lookup_finds_filters_and_outlives_the_session_without_a_probe() {
    let mut store = Store::new(diagnoser());
    vtriage::feed::apply(
        &mut store,
        &listed(vec![
            connection("v1", "u1", true),
            connection("v2", "u2", true),
        ]),
        now(),
    );
    assert!(store.find("5YJ3E1EA7KF317000").is_none());
    let changed = vtriage::feed::apply(
        &mut store,
        &Event::VinsLearned {
            vins: vec![("v2".into(), "5YJ3E1EA7KF317000".into())],
        },
        now(),
    );
    assert!(changed);
    assert_eq!(
        store
            .find("5yj3e1ea7kf317000")
            .map(|r| r.vehicle_id.as_str()),
        Some("v2")
    );
    assert_eq!(
        store.vehicle("v2").unwrap().last_probe_at,
        None,
        "not a probe"
    );
    store.set_filter("5YJ3E1EA7KF317000").unwrap();
    assert_eq!(store.visible_len(), 1);

    // The next session lists the fleet first, then reads the snapshot: the VIN comes back.
    let snapshot = store.to_snapshot();
    let mut next = Store::new(diagnoser());
    vtriage::feed::apply(
        &mut next,
        &listed(vec![
            connection("v1", "u1", true),
            connection("v2", "u2", true),
        ]),
        now(),
    );
    next.restore(snapshot);
    assert_eq!(
        next.find("5YJ3E1EA7KF317000")
            .map(|r| r.vehicle_id.as_str()),
        Some("v2")
    );
}

#[test]
fn make_and_model_from_the_listing_show_and_filter_before_any_probe() {
    let mut store = Store::new(diagnoser());
    let mut tesla = connection("v1", "u1", true);
    tesla.attributes = Some(attributes("v1", "TESLA", "Model 3", 2022));
    store.listed(&[tesla, connection("v2", "u2", true)], now());
    let v1 = store.vehicle("v1").unwrap();
    assert_eq!(
        v1.attributes.as_ref().map(|a| a.model.as_str()),
        Some("Model 3")
    );
    assert_eq!(v1.last_probe_at, None);
    store.set_filter("make:tesla").unwrap();
    assert_eq!(store.visible_len(), 1);
    assert_eq!(store.row(0).map(|r| r.vehicle_id.as_str()), Some("v1"));

    // A listing without attributes (v2.0) does not forget what an earlier one told.
    store.listed(&[connection("v1", "u1", true)], now());
    assert_eq!(store.visible_len(), 1);
}
