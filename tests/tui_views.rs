//! The dashboard drawn into a test terminal at 80×24 and 120×40 with a fixed clock and fleet.

mod tui_support;

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
