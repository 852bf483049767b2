//! The filter language against a small fleet: each expression and the vehicles it keeps.

use crate::store_fixture;

use store_fixture::{fleet_store, ids};

#[test]
fn each_expression_keeps_exactly_its_rows() {
    // Default sort: status descending (BLOCKED first), ties in listing order.
    let table: &[(&str, &[&str])] = &[
        ("", &["veh-a", "veh-c", "veh-d", "veh-e", "veh-b", "veh-f"]),
        ("status:blocked", &["veh-a"]),
        ("status:blocked,degraded", &["veh-a", "veh-c"]),
        ("STATUS:Healthy", &["veh-b", "veh-f"]),
        ("!status:healthy", &["veh-a", "veh-c", "veh-d", "veh-e"]),
        ("make:tesla", &["veh-a", "veh-b", "veh-f"]),
        (
            "make:tesla status:healthy",
            &["veh-a", "veh-b", "veh-f"][1..],
        ),
        ("model:model3", &["veh-a"]),
        (r#"model:"model 3""#, &["veh-a"]),
        ("model:model", &["veh-a", "veh-b", "veh-f"]),
        ("model:mustangmach-e", &["veh-c"]),
        ("rule:tesla-virtual-key", &["veh-a"]),
        // A rule id prefix, as `finding:` takes.
        ("rule:tesla-virtual", &["veh-a"]),
        ("rule:TESLA-V", &["veh-a"]),
        // Words that name a model of the fleet read as that model, not as a word in any field
        // (`y` alone would keep every 5YJ VIN).
        ("model y", &["veh-b"]),
        ("Model Y", &["veh-b"]),
        ("model:Model Y", &["veh-b"]),
        (r#""model y""#, &["veh-b"]),
        ("tesla model y", &["veh-b"]),
        ("ford mustang", &["veh-c"]),
        // Words that name no model stay words, each in its own field.
        ("tesla 5yj3", &["veh-a"]),
        ("model 000002", &["veh-b"]),
        ("!rule:tesla-virtual-key make:tesla", &["veh-b", "veh-f"]),
        ("finding:virtual-key", &["veh-a"]),
        ("finding:data", &["veh-c"]),
        ("finding:no-access", &["veh-e"]),
        ("has:finding", &["veh-a", "veh-c", "veh-e"]),
        ("year:2019", &["veh-f"]),
        // A lone four-digit word that reads as a year is the model year (or in a VIN), not id digits.
        ("2019", &["veh-f"]),
        ("tesla 2019", &["veh-f"]),
        ("!2019 make:tesla", &["veh-a", "veh-b"]),
        ("year:<2021", &["veh-f"]),
        ("year:>=2022", &["veh-c", "veh-b"]),
        ("year:>2021", &["veh-c", "veh-b"]),
        ("year:<=2021 make:tesla", &["veh-a", "veh-f"]),
        ("user:user-1", &["veh-a", "veh-b"]),
        ("id:veh-c", &["veh-c"]),
        ("vin:5yj", &["veh-a", "veh-f"]),
        ("vin:5YJ3", &["veh-a"]),
        ("has:token", &["veh-a", "veh-c", "veh-d", "veh-b", "veh-f"]),
        ("!has:token", &["veh-e"]),
        ("has:vin", &["veh-a", "veh-c", "veh-b", "veh-f"]),
        ("checked:no", &["veh-d", "veh-e"]),
        ("checked:yes", &["veh-a", "veh-c", "veh-b", "veh-f"]),
        // Free text: inside one field of VIN, vehicle id, user id, make and model.
        ("mustang", &["veh-c"]),
        ("5yj3e1", &["veh-a"]),
        ("user-5", &["veh-f"]),
        ("tesla", &["veh-a", "veh-b", "veh-f"]),
        ("tesla !model3", &["veh-b", "veh-f"]),
        ("user-4", &["veh-e"]),
        ("zzzz", &[]),
        // A fragment with three digits or more is matched as typed, inside one field.
        ("kf000001", &["veh-a"]),
        ("e1000", &[]),
        ("F000006", &["veh-f"]),
    ];
    for (expr, expected) in table {
        let mut store = fleet_store();
        store
            .set_filter(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(ids(&store), *expected, "filter `{expr}`");
        assert_eq!(store.filter_text(), *expr);
    }
}

#[test]
fn bad_terms_are_refused_with_the_term_named() {
    let table: &[(&str, &str)] = &[
        ("colour:red", "colour:red"),
        ("status:broken", "status:broken"),
        ("status:,", "status:,"),
        ("year:new", "year:new"),
        ("year:>=", "year:>="),
        ("has:wings", "has:wings"),
        ("checked:maybe", "checked:maybe"),
        ("make:", "make:"),
        ("tesla !", "!"),
        (r#"model:"model 3"#, "model 3"),
    ];
    for (expr, term) in table {
        let mut store = fleet_store();
        let err = store.set_filter(expr).expect_err(expr);
        let message = err.to_string();
        assert!(message.contains(term), "`{expr}` gave `{message}`");
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[test]
fn a_refused_filter_leaves_the_previous_one_in_force() {
    let mut store = fleet_store();
    store.set_filter("make:tesla").unwrap();
    assert!(store.set_filter("make:tesla colour:red").is_err());
    assert_eq!(store.filter_text(), "make:tesla");
    assert_eq!(store.visible_len(), 3);
}

#[test]
fn typing_a_vin_character_by_character_matches_a_fresh_filter_at_every_step() {
    let mut typed = fleet_store();
    let query = "5yj3e1ea";
    for n in 1..=query.len() {
        typed.set_filter(&query[..n]).unwrap();
        let mut fresh = fleet_store();
        fresh.set_filter(&query[..n]).unwrap();
        assert_eq!(ids(&typed), ids(&fresh), "after typing `{}`", &query[..n]);
    }
    // Deleting characters widens again.
    typed.set_filter("5").unwrap();
    let mut fresh = fleet_store();
    fresh.set_filter("5").unwrap();
    assert_eq!(ids(&typed), ids(&fresh));
}

#[test]
fn typing_a_year_digit_by_digit_matches_a_fresh_filter_at_every_step() {
    let mut typed = fleet_store();
    for query in ["2", "20", "201", "2019", "20190", "2019", "201"] {
        typed.set_filter(query).unwrap();
        let mut fresh = fleet_store();
        fresh.set_filter(query).unwrap();
        assert_eq!(ids(&typed), ids(&fresh), "after `{query}`");
    }
}

#[test]
fn clearing_the_filter_shows_every_vehicle() {
    let mut store = fleet_store();
    store.set_filter("status:blocked").unwrap();
    store.set_filter("").unwrap();
    assert_eq!(store.visible_len(), store.len());
}
