//! The dashboard drawn into a test terminal at 80×24 and 120×40 with a fixed clock and fleet.

use crate::tui_support;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_support::*;
use vtriage::tui::app::{Msg, update};

fn press(app: &mut vtriage::tui::App, code: KeyCode) {
    update(app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn typed(app: &mut vtriage::tui::App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

#[test]
fn fleet_at_80x24() {
    let app = app(80, 24);
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn fleet_at_120x40() {
    let app = app(120, 40);
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn fleet_filtered_to_blocked_at_120x40() {
    let mut app = app(120, 40);
    press(&mut app, KeyCode::Char('1'));
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn filter_line_while_typing_at_80x24() {
    let mut app = app(80, 24);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "make:tesla");
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn vehicle_without_virtual_key_at_120x40() {
    let mut app = app(120, 40);
    update(
        &mut app,
        Msg::Store(vtriage::fetch::Event::Progress(Default::default())),
    );
    press(&mut app, KeyCode::Char(':'));
    typed(&mut app, "vehicle 7c1e0f3a-vk");
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn vehicle_missing_location_permission_at_80x24() {
    let mut app = app(80, 24);
    press(&mut app, KeyCode::Char(':'));
    typed(&mut app, "vin 5YJ3E1EA7KF000002");
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn raw_responses_at_80x24() {
    let mut app = app(80, 24);
    press(&mut app, KeyCode::Char(':'));
    typed(&mut app, "vehicle f00d-ok");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('J'));
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn help_overlay_at_120x40() {
    let mut app = app(120, 40);
    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn tiny_terminal_draws_without_panicking() {
    for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 10)] {
        let mut app = app(w, h);
        screen(&app);
        press(&mut app, KeyCode::Enter);
        screen(&app);
        press(&mut app, KeyCode::Char('?'));
        screen(&app);
    }
}

fn add_expired_token_vehicle(app: &mut vtriage::tui::App) {
    let report = tui_support::expired_token_report();
    update(app, Msg::Store(vtriage::fetch::Event::Observed { report }));
}

fn open(app: &mut vtriage::tui::App, vehicle_id: &str) {
    press(app, KeyCode::Char(':'));
    typed(app, &format!("vehicle {vehicle_id}"));
    press(app, KeyCode::Enter);
}

#[test]
fn vehicle_without_virtual_key_at_80x24() {
    let mut app = app(80, 24);
    open(&mut app, "7c1e0f3a-vk");
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn vehicle_missing_location_permission_at_120x40() {
    let mut app = app(120, 40);
    open(&mut app, "b2d4-loc");
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn vehicle_with_expired_token_at_80x24() {
    let mut app = app(80, 24);
    add_expired_token_vehicle(&mut app);
    open(&mut app, "dead-401");
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn vehicle_with_expired_token_at_120x40() {
    let mut app = app(120, 40);
    add_expired_token_vehicle(&mut app);
    open(&mut app, "dead-401");
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn healthy_exempt_model_s_at_80x24() {
    let mut app = app(80, 24);
    open(&mut app, "5e11-exempt");
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn healthy_exempt_model_s_at_120x40() {
    let mut app = app(120, 40);
    open(&mut app, "5e11-exempt");
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn help_overlay_at_80x24() {
    let mut app = app(80, 24);
    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn an_empty_result_says_that_unchecked_vehicles_have_no_vin_yet() {
    let mut app = app(120, 40);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "zzzz");
    press(&mut app, KeyCode::Enter);
    let text = screen(&app).join("\n");
    assert!(text.contains("no vehicle matches the filter"), "{text}");
    assert!(
        text.contains("2 of 6 vehicles are not checked yet"),
        "{text}"
    );
}

fn big_fleet(width: u16, height: u16) -> vtriage::tui::App {
    let mut app = app(width, height);
    update(&mut app, Msg::Store(tui_support::big_fleet_listing(1_773)));
    app
}

#[test]
fn big_fleet_at_80x24() {
    let app = big_fleet(80, 24);
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn big_fleet_at_120x40() {
    let app = big_fleet(120, 40);
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn at_80_columns_no_count_is_cut_and_the_vin_column_stays() {
    let app = big_fleet(80, 24);
    let lines = screen(&app);
    let status = lines
        .iter()
        .find(|l| l.contains("BLOCKED"))
        .cloned()
        .unwrap_or_default();
    assert!(status.contains("UNKNOWN 1,775"), "{status:?}");
    assert!(lines[0].contains("fleet 1,779"), "{:?}", lines[0]);
    let header = lines
        .iter()
        .find(|l| l.starts_with("  Status"))
        .cloned()
        .unwrap_or_default();
    assert!(header.contains("VIN"), "{header:?}");
}

#[test]
fn at_120_columns_the_finding_column_holds_a_rule_title() {
    let text = screen(&app(120, 40)).join("\n");
    assert!(
        text.contains("Tesla: virtual key required for data"),
        "{text}"
    );
}

#[test]
fn every_sort_state_shows_its_arrow_on_a_column_on_screen() {
    for (width, height) in [(80, 24), (120, 40)] {
        let mut app = app(width, height);
        for _ in 0..vtriage::store::SortColumn::ALL.len() {
            press(&mut app, KeyCode::Char('s'));
            let (column, _) = app.store.sort();
            let header = screen(&app)
                .into_iter()
                .find(|l| l.contains("Status"))
                .unwrap_or_default();
            let label = column.label();
            assert!(
                header.contains(&format!("{label} ▲")) || header.contains(&format!("{label} ▼")),
                "sorted by {label} at {width}: {header:?}"
            );
        }
    }
}

#[test]
fn startup_warnings_show_in_the_header_and_the_help() {
    let mut app = app(80, 24);
    app.config.warnings = vec![
        "policies.toml line 3: unknown key `in_forse`; the built-in rules are used".into(),
        "tokens.csv line 7: no access token; the line is skipped".into(),
    ];
    let top = screen(&app)[0].clone();
    assert!(top.contains("! 2 warnings"), "{top:?}");
    press(&mut app, KeyCode::Char('?'));
    let help = screen(&app).join("\n");
    assert!(help.contains("policies.toml line 3"), "{help}");
    assert!(help.contains("tokens.csv line 7"), "{help}");
}

#[test]
fn an_invalid_filter_shows_its_error_and_no_rows_of_the_filter_before() {
    let mut app = app(120, 40);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "make:tesla colour:red");
    let text = screen(&app).join("\n");
    assert!(text.contains("unknown key `colour`"), "{text}");
    assert!(text.contains("0 of 6"), "{text}");
    assert!(
        !text.contains("TESLA Model Y"),
        "rows of the filter before:\n{text}"
    );
}

#[test]
fn the_help_lists_the_rule_and_finding_ids_the_filter_takes() {
    let mut app = app(120, 40);
    press(&mut app, KeyCode::Char('?'));
    for _ in 0..60 {
        press(&mut app, KeyCode::Down);
    }
    let text = screen(&app).join("\n");
    assert!(text.contains("tesla-virtual-key"), "{text}");
    assert!(text.contains("virtual-key-missing (1)"), "{text}");
}

#[test]
fn a_rate_limit_reads_rate_limited_until_a_time_in_the_header() {
    let mut app = app(120, 40);
    let until = now() + jiff::SignedDuration::from_secs(3600);
    app.store.rate_limited(until, true, now());
    let top = screen(&app)[0].clone();
    assert!(
        top.contains(&format!(
            "rate limited by Smartcar until {}",
            until.strftime("%H:%M:%S UTC")
        )),
        "{top:?}"
    );
    assert!(top.contains("(1 h"), "{top:?}");
}

#[test]
fn our_own_pacing_reads_waiting_for_budget_never_rate_limited_by_smartcar() {
    let mut app = app(120, 40);
    let until = now() + jiff::SignedDuration::from_secs(29);
    app.store.rate_limited(until, false, now());
    let top = screen(&app)[0].clone();
    assert!(
        top.contains(&format!(
            "waiting for budget until {}",
            until.strftime("%H:%M:%S UTC")
        )),
        "{top:?}"
    );
    assert!(!top.contains("rate limited"), "{top:?}");
    // A pause Smartcar asked for is not hidden by our pacing announced after it.
    let pause = now() + jiff::SignedDuration::from_secs(600);
    app.store.rate_limited(pause, true, now());
    app.store.rate_limited(until, false, now());
    let top = screen(&app)[0].clone();
    assert!(top.contains("rate limited by Smartcar"), "{top:?}");
}

#[test]
fn with_the_budget_spent_the_header_says_when_the_next_request_can_go() {
    let mut app = app(120, 40);
    let progress = vtriage::fetch::Progress {
        budget_left: Some(0.3),
        budget_refill_per_min: Some(2.0),
        ..Default::default()
    };
    app.store.set_progress(&progress, now());
    let top = screen(&app)[0].clone();
    assert!(
        top.contains("budget 0 +2/min · next request in 21 s"),
        "{top:?}"
    );
}

#[test]
fn a_desk_gone_away_reads_reconnecting_in_the_header_even_at_80_columns() {
    let mut app = app(80, 24);
    app.link = Some(vtriage::desk::remote::Link::Reconnecting {
        attempt: 3,
        reason: "the desk at http://127.0.0.1:8787 does not answer: error sending request for url (http://127.0.0.1:8787/api/v1/stream)".into(),
    });
    let top = screen(&app)[0].clone();
    assert!(top.contains("reconnecting (try 3)"), "{top:?}");
    update(
        &mut app,
        Msg::Resize {
            width: 300,
            height: 24,
        },
    );
    let wide = screen(&app)[0].clone();
    assert!(wide.contains("does not answer"), "{wide:?}");
}

#[test]
fn an_unreachable_vehicle_api_reads_in_the_header_with_its_retry_until_it_answers() {
    use vtriage::fetch::{Event, SourceName, SourceOutage};
    let mut app = app(120, 40);
    let outage = SourceOutage {
        source: SourceName::VehicleApi,
        origin: "http://127.0.0.1:1".into(),
        kind: "connection refused".into(),
        message: "the Vehicle API at http://127.0.0.1:1 is unreachable (connection refused)".into(),
        retry_at: now() + jiff::SignedDuration::from_secs(30),
    };
    update(&mut app, Msg::Store(Event::SourceUnreachable(outage)));
    let top = screen(&app)[0].clone();
    assert!(
        top.contains("Vehicle API unreachable (connection refused) · retrying in 30 s"),
        "{top:?}"
    );
    update(
        &mut app,
        Msg::Store(Event::SourceRecovered {
            source: SourceName::VehicleApi,
        }),
    );
    let top = screen(&app)[0].clone();
    assert!(!top.contains("unreachable"), "{top:?}");
}

#[test]
fn refused_client_credentials_read_in_the_header_at_80_columns() {
    use vtriage::fetch::{Event, SourceName, SourceOutage};
    let mut app = app(80, 24);
    let outage = SourceOutage {
        source: SourceName::TokenEndpoint,
        origin: "http://127.0.0.1:1".into(),
        kind: vtriage::fetch::outage::INVALID_CLIENT.into(),
        message: "application token: the token endpoint refused the client credentials".into(),
        retry_at: now() + jiff::SignedDuration::from_secs(60),
    };
    update(&mut app, Msg::Store(Event::SourceUnreachable(outage)));
    let top = screen(&app)[0].clone();
    assert!(top.contains("Token endpoint refused the client"), "{top:?}");
}

/// The table's header row and the rows of the two Teslas with different rules.
fn fleet_rows(app: &vtriage::tui::App) -> (String, String, String) {
    let lines = screen(app);
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
            .unwrap_or_default()
    };
    (
        find("  Status"),
        find("7SAYGDEE1NF000001"),
        find("5YJ3E1EA7KF000002"),
    )
}

#[test]
fn at_80x24_the_list_keeps_the_key_column_and_enough_of_the_finding_to_tell_rules_apart() {
    // Without and with a scrollbar (a fleet taller than the screen takes one more column).
    for app in [app(80, 24), big_fleet(80, 24)] {
        let (header, vk, location) = fleet_rows(&app);
        assert!(header.contains("Key"), "{header:?}");
        assert!(header.contains("VIN"), "{header:?}");
        assert!(vk.contains("✖ missing"), "{vk:?}");
        // The make is in the Vehicle column: the finding's cells go to the words that differ.
        assert!(vk.contains("virtual key requi"), "{vk:?}");
        assert!(location.contains("Vehicle Location"), "{location:?}");
    }
}

/// The rows between the page's top border and the footer.
fn page_body(app: &vtriage::tui::App) -> Vec<String> {
    let lines = screen(app);
    let border = lines
        .iter()
        .position(|l| l.starts_with("────"))
        .unwrap_or_default();
    lines[border + 1..lines.len() - 1].to_vec()
}

#[test]
fn at_80x24_the_vehicle_page_shows_the_fix_the_whole_link_and_the_copy_keys_above_the_fold() {
    let link = "https://connect.smartcar.com/oauth/reauthenticate?response_type=vehicle_id&client_id=my-client-id&vehicle_id=b2d4-loc&scope=required%3Aread_location&make=TESLA";
    let mut app = app(80, 24);
    open(&mut app, "b2d4-loc");
    let body = page_body(&app);
    let text = body.join("\n");
    assert!(
        text.contains("fix: Send the owner the re-authentication link"),
        "{text}"
    );
    assert!(
        text.contains("y copy fix link  c copy reply  i copy evidence"),
        "{text}"
    );
    // The link on rows of its own, under the text's indent, cut only at the edge of the screen.
    let first = body
        .iter()
        .position(|l| l.trim_start().starts_with("https://connect"))
        .unwrap_or_else(|| panic!("no link row:\n{text}"));
    let mut whole = String::new();
    for row in &body[first..] {
        if whole.len() >= link.len() {
            break;
        }
        assert!(row.starts_with("    "), "{row:?}");
        whole.push_str(row.trim());
    }
    assert_eq!(whole, link, "{text}");
}

#[test]
fn a_long_fix_link_is_a_hyperlink_on_every_row_it_takes() {
    let link = "https://connect.smartcar.com/oauth/reauthenticate?response_type=vehicle_id&client_id=my-client-id&vehicle_id=b2d4-loc&scope=required%3Aread_location&make=TESLA";
    let mut app = app(80, 24);
    open(&mut app, "b2d4-loc");
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).expect("test terminal");
    let mut areas = Vec::new();
    let frame = terminal
        .draw(|frame| areas = vtriage::tui::views::render_with_links(&app, frame))
        .expect("draw");
    let fix: Vec<_> = areas.iter().filter(|a| a.url == link).collect();
    assert_eq!(fix.len(), 3, "{areas:?}");
    let cells: String = fix
        .iter()
        .flat_map(|a| {
            (a.area.x..a.area.right())
                .map(move |x| frame.buffer[(x, a.area.y)].symbol().to_string())
        })
        .collect();
    assert_eq!(cells, link);
}

#[test]
fn the_hint_bar_always_offers_the_help() {
    let mut vehicle = app(80, 24);
    open(&mut vehicle, "7c1e0f3a-vk");
    for (name, app) in [("vehicle page", vehicle), ("fleet at 50", app(50, 24))] {
        let footer = screen(&app).last().cloned().unwrap_or_default();
        assert!(footer.contains("? help"), "{name}: {footer:?}");
    }
}

#[test]
fn evidence_and_long_lines_wrap_under_their_own_indent_at_any_width() {
    for width in [40, 64, 80, 100, 120, 160] {
        for id in ["7c1e0f3a-vk", "b2d4-loc", "5e11-exempt"] {
            let mut app = app(width, 60);
            open(&mut app, id);
            for row in page_body(&app) {
                assert!(
                    row.trim().is_empty() || row.starts_with(' ') || row.starts_with('─'),
                    "{id} at {width}: a row starts at column 0: {row:?}"
                );
            }
        }
    }
}

fn watched_vehicle(width: u16, height: u16) -> vtriage::tui::App {
    let mut app = app(width, height);
    press(&mut app, KeyCode::Char(':'));
    typed(&mut app, "vehicle 7c1e0f3a-vk");
    press(&mut app, KeyCode::Enter);
    update(&mut app, Msg::Tick(now(), std::time::Instant::now()));
    press(&mut app, KeyCode::Char('w'));
    app
}

#[test]
fn vehicle_watched_after_its_fix_was_sent_at_120x40() {
    let app = watched_vehicle(120, 40);
    insta::assert_snapshot!(draw(&app).backend());
}

#[test]
fn watched_vehicle_recovered_at_80x24() {
    let mut app = watched_vehicle(80, 24);
    let later = now()
        .checked_add(jiff::SignedDuration::from_mins(3))
        .expect("time");
    update(&mut app, Msg::Tick(later, std::time::Instant::now()));
    let mut healthy = reports()
        .into_iter()
        .find(|r| r.vehicle_id == "f00d-ok")
        .expect("healthy report");
    healthy.vehicle_id = "7c1e0f3a-vk".into();
    healthy.attributes = None;
    healthy.vin = None;
    update(
        &mut app,
        Msg::Store(vtriage::fetch::Event::Observed { report: healthy }),
    );
    insta::assert_snapshot!(draw(&app).backend());
}
