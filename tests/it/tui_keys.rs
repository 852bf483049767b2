//! Keys pressed through `update`, without a terminal: navigation, filters, sort, copies, commands.

use crate::tui_support;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};
use tui_support::*;
use vtriage::fetch::Priority;
use vtriage::store::SortColumn;
use vtriage::tui::app::{App, Effect, Msg, Overlay, Screen, update};
use vtriage::tui::clipboard::CopiedTo;

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    update(app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars()
        .flat_map(|c| key(app, KeyCode::Char(c)))
        .collect()
}

fn command(app: &mut App, line: &str) -> Vec<Effect> {
    key(app, KeyCode::Char(':'));
    typed(app, line);
    key(app, KeyCode::Enter)
}

fn selected(app: &App) -> Option<String> {
    app.store.selected().map(|r| r.vehicle_id.clone())
}

fn flash(app: &App) -> String {
    app.visible_flash()
        .map(|f| f.text.clone())
        .unwrap_or_default()
}

fn copied(effects: &[Effect]) -> Option<(String, &'static str)> {
    effects.iter().find_map(|e| match e {
        Effect::Copy { text, what } => Some((text.clone(), *what)),
        _ => None,
    })
}

#[test]
fn rows_on_screen_are_asked_for_at_visible_priority_once() {
    let (_, effects) = app_with(vtriage::tui::Theme::plain(), 80, 24);
    let asked = probes(&effects);
    let visible: Vec<_> = asked
        .iter()
        .filter(|(_, p, _)| *p == Priority::Visible)
        .collect();
    assert!(!visible.is_empty(), "{asked:?}");
    let last = visible.last().map(|(ids, _, force)| (ids.len(), *force));
    assert_eq!(last, Some((6, false)));
    // The same rows again ask for nothing.
    let mut app = app(80, 24);
    assert!(
        probes(&update(
            &mut app,
            Msg::Resize {
                width: 80,
                height: 24
            }
        ))
        .is_empty()
    );
}

#[test]
fn enter_opens_the_selected_vehicle_at_focus_priority_and_esc_restores_filter_sort_selection() {
    let mut app = app(120, 40);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "make:tesla");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('S'));
    key(&mut app, KeyCode::Down);
    let before = (
        app.store.filter_text().to_string(),
        app.store.sort(),
        selected(&app),
    );
    assert_eq!(before.0, "make:tesla");

    let effects = key(&mut app, KeyCode::Enter);
    let opened = app.page().map(|p| p.vehicle_id.clone());
    assert_eq!(opened, before.2);
    assert_eq!(
        probes(&effects),
        [(
            vec![opened.clone().unwrap_or_default()],
            Priority::Focus,
            false
        )]
    );

    // Something on the vehicle page changes the fleet state, then Esc brings it back.
    command(&mut app, "user user-cy");
    assert_eq!(app.screen(), &Screen::Fleet);
    assert_eq!(app.store.filter_text(), "user:user-cy");
    key(&mut app, KeyCode::Enter);
    app.store.set_sort(SortColumn::Vin, false);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.screen(), &Screen::Fleet);
    assert_eq!(app.store.filter_text(), "user:user-cy");
    assert_eq!(
        app.store.sort(),
        before.1,
        "the sort the page was opened from"
    );
    assert_eq!(selected(&app).as_deref(), Some("f00d-ok"));
}

#[test]
fn esc_from_a_vehicle_page_restores_exactly_what_was_left() {
    let mut app = app(120, 40);
    key(&mut app, KeyCode::Char('s'));
    key(&mut app, KeyCode::Char('f'));
    key(&mut app, KeyCode::Down);
    let before = (
        app.store.filter_text().to_string(),
        app.store.sort(),
        selected(&app),
        app.offset,
    );
    key(&mut app, KeyCode::Enter);
    assert!(app.page().is_some());
    app.store.set_filter("").ok();
    app.store.set_sort(SortColumn::User, true);
    app.store.select(None);
    key(&mut app, KeyCode::Esc);
    let after = (
        app.store.filter_text().to_string(),
        app.store.sort(),
        selected(&app),
        app.offset,
    );
    assert_eq!(after, before);
}

#[test]
fn filter_applies_live_and_esc_puts_the_old_filter_back() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "vin:5YJ3");
    assert_eq!(app.store.visible_len(), 1, "live while typing");
    assert_eq!(selected(&app).as_deref(), Some("b2d4-loc"));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(app.store.filter_text(), "");
    assert_eq!(app.store.visible_len(), 6);
}

#[test]
fn bad_filter_keeps_the_line_open_with_the_reason() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "year:abc");
    assert!(
        app.filter_error
            .as_deref()
            .is_some_and(|e| e.contains("year:abc")),
        "{:?}",
        app.filter_error
    );
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.overlay, Overlay::Filter);
    assert_eq!(app.filter_input.text(), "year:abc");
}

#[test]
fn filter_history_recalls_earlier_filters_with_up_and_down() {
    let mut app = app(80, 24);
    for text in ["make:tesla", "status:blocked"] {
        key(&mut app, KeyCode::Char('/'));
        key(&mut app, KeyCode::End);
        typed(&mut app, "");
        app.filter_input.start("");
        typed(&mut app, text);
        key(&mut app, KeyCode::Enter);
    }
    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Up);
    assert_eq!(app.store.filter_text(), "status:blocked");
    key(&mut app, KeyCode::Up);
    assert_eq!(app.store.filter_text(), "make:tesla");
    assert_eq!(app.store.visible_len(), 3, "recalled filters apply live");
    key(&mut app, KeyCode::Down);
    assert_eq!(app.filter_input.text(), "status:blocked");
}

#[test]
fn number_keys_toggle_a_status_filter_and_f_shows_faults() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('1'));
    assert_eq!(app.store.filter_text(), "status:blocked");
    assert_eq!(app.store.visible_len(), 1);
    key(&mut app, KeyCode::Char('4'));
    assert_eq!(
        app.store.filter_text(),
        "status:healthy",
        "one status at a time"
    );
    key(&mut app, KeyCode::Char('4'));
    assert_eq!(app.store.filter_text(), "");
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "make:tesla");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('f'));
    assert_eq!(
        app.store.filter_text(),
        "make:tesla status:blocked,degraded,warning"
    );
    assert_eq!(app.store.visible_len(), 2);
}

#[test]
fn s_cycles_sort_columns_and_shift_s_reverses() {
    let mut app = app(80, 24);
    assert_eq!(app.store.sort(), (SortColumn::Status, true));
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.store.sort(), (SortColumn::Vehicle, false));
    assert_eq!(flash(&app), "sorted by Vehicle");
    update(
        &mut app,
        Msg::Key(KeyEvent::new(KeyCode::Char('S'), KeyModifiers::SHIFT)),
    );
    assert_eq!(app.store.sort(), (SortColumn::Vehicle, true));
    for _ in 0..SortColumn::ALL.len() - 1 {
        key(&mut app, KeyCode::Char('s'));
    }
    assert_eq!(app.store.sort().0, SortColumn::Status);
}

#[test]
fn vehicle_page_copies_pairing_link_reply_and_evidence_with_a_confirmation() {
    let mut app = app(120, 40);
    command(&mut app, "vehicle 7c1e0f3a-vk");
    let link = copied(&key(&mut app, KeyCode::Char('y')));
    assert_eq!(
        link,
        Some((
            "https://www.tesla.com/_ak/smartcar.com".into(),
            "pairing link"
        ))
    );
    // Only the runtime knows whether a clipboard took it: nothing says "copied" before it answers.
    assert!(!flash(&app).contains("copied"), "{}", flash(&app));
    update(
        &mut app,
        Msg::EffectDone(CopiedTo::Terminal.confirmation("pairing link")),
    );
    assert_eq!(
        flash(&app),
        "pairing link sent to the terminal (OSC 52; ? for tmux)"
    );

    let reply = copied(&key(&mut app, KeyCode::Char('c')));
    assert!(
        reply
            .as_ref()
            .is_some_and(|(t, _)| t.contains("virtual key")),
        "{reply:?}"
    );
    update(
        &mut app,
        Msg::EffectDone(CopiedTo::System("wl-copy".into()).confirmation("customer reply")),
    );
    assert_eq!(flash(&app), "copied customer reply (wl-copy)");

    let evidence = copied(&key(&mut app, KeyCode::Char('i')))
        .map(|(t, _)| t)
        .unwrap_or_default();
    for expected in [
        "7c1e0f3a-vk",
        "7SAYGDEE1NF000001",
        "CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED",
        "rq-loc-1",
        "BLOCKED",
    ] {
        assert!(
            evidence.contains(expected),
            "{expected} missing from {evidence}"
        );
    }
}

#[test]
fn the_help_says_which_way_copies_go_and_how_to_let_osc52_through_tmux() {
    let mut app = app(120, 40);
    key(&mut app, KeyCode::Char('?'));
    let mut text = screen(&app).join("\n");
    for _ in 0..80 {
        if text.contains("allow-passthrough") {
            break;
        }
        key(&mut app, KeyCode::Down);
        text = screen(&app).join("\n");
    }
    assert!(
        text.contains("Here: sent to the terminal as OSC 52, which cannot confirm it"),
        "{text}"
    );
    assert!(text.contains("set -g set-clipboard on"), "{text}");
    assert!(text.contains("set -g allow-passthrough on"), "{text}");
}

#[test]
fn reauthentication_link_is_named_so_in_the_confirmation() {
    let mut app = app(80, 24);
    command(&mut app, "vin 5YJ3E1EA7KF000002");
    let link = copied(&key(&mut app, KeyCode::Char('y')));
    assert!(
        link.as_ref().is_some_and(
            |(t, w)| t.contains("required%3Aread_location") && *w == "re-authentication link"
        ),
        "{link:?}"
    );
}

#[test]
fn healthy_vehicle_has_nothing_to_copy_and_says_so() {
    let mut app = app(80, 24);
    command(&mut app, "vehicle f00d-ok");
    assert_eq!(copied(&key(&mut app, KeyCode::Char('y'))), None);
    assert!(
        app.visible_flash()
            .is_some_and(|f| f.error && f.text.contains("no fix link"))
    );
}

#[test]
fn r_reprobes_now_and_o_opens_the_link() {
    let mut app = app(80, 24);
    command(&mut app, "vehicle 7c1e0f3a-vk");
    let effects = key(&mut app, KeyCode::Char('r'));
    assert_eq!(
        probes(&effects),
        [(vec!["7c1e0f3a-vk".to_string()], Priority::Focus, true)]
    );
    let effects = key(&mut app, KeyCode::Char('o'));
    assert_eq!(
        effects,
        [Effect::Open(
            "https://www.tesla.com/_ak/smartcar.com".into()
        )]
    );
}

#[test]
fn j_toggles_the_raw_responses() {
    let mut app = app(80, 24);
    command(&mut app, "vehicle f00d-ok");
    key(&mut app, KeyCode::Char('J'));
    assert_eq!(app.page().map(|p| p.raw), Some(true));
    key(&mut app, KeyCode::Char('J'));
    assert_eq!(app.page().map(|p| p.raw), Some(false));
}

#[test]
fn command_line_opens_by_vehicle_vin_or_user_and_exports() {
    let mut app = app(80, 24);
    command(&mut app, "vehicle b2d4-loc");
    assert_eq!(app.page().map(|p| p.vehicle_id.as_str()), Some("b2d4-loc"));
    key(&mut app, KeyCode::Esc);
    command(&mut app, "vin 3FMTK3SU5PMA00003");
    assert_eq!(app.page().map(|p| p.vehicle_id.as_str()), Some("f00d-ok"));
    key(&mut app, KeyCode::Esc);
    command(&mut app, "vin 5YJ");
    assert_eq!(
        (app.page(), app.store.filter_text()),
        (None, "vin:5YJ"),
        "a VIN prefix filters"
    );
    assert_eq!(
        command(&mut app, "export /tmp/blocked.csv"),
        [Effect::Export("/tmp/blocked.csv".into())]
    );
    command(&mut app, "vehicle nope");
    assert!(
        app.visible_flash()
            .is_some_and(|f| f.error && f.text.contains("nope"))
    );
    command(&mut app, "frobnicate");
    assert!(flash(&app).contains("unknown command :frobnicate"));
    assert_eq!(command(&mut app, "q"), [Effect::Quit]);
    assert!(app.quit);
}

#[test]
fn user_command_probes_every_car_of_that_user_at_focus_priority() {
    let mut app = app(120, 40);
    let effects = command(&mut app, "user user-cy");
    assert_eq!(app.store.filter_text(), "user:user-cy");
    let focus: Vec<_> = probes(&effects)
        .into_iter()
        .filter(|(_, priority, _)| *priority == Priority::Focus)
        .collect();
    assert_eq!(
        focus,
        [(vec!["f00d-ok".to_string()], Priority::Focus, false)]
    );
    assert!(flash(&app).contains("probing 1 vehicle"), "{}", flash(&app));
    // A user nobody is: nothing is probed.
    let effects = command(&mut app, "user user-nobody");
    assert!(probes(&effects).is_empty());
}

#[test]
fn q_and_ctrl_c_quit_even_from_the_filter_line() {
    let mut app = app(80, 24);
    assert_eq!(key(&mut app, KeyCode::Char('q')), [Effect::Quit]);
    let mut app = tui_support::app(80, 24);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "q");
    assert!(!app.quit, "q is text in the filter line");
    let effects = update(
        &mut app,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert_eq!(effects, [Effect::Quit]);
}

#[test]
fn question_mark_opens_help_and_esc_closes_it() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('?'));
    assert_eq!(app.overlay, Overlay::Help { scroll: 0 });
    key(&mut app, KeyCode::Down);
    assert_eq!(app.overlay, Overlay::Help { scroll: 1 });
    key(&mut app, KeyCode::Char('1'));
    assert_eq!(
        app.store.filter_text(),
        "",
        "keys under the help do not leak to the fleet"
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.overlay, Overlay::None);
}

#[test]
fn key_releases_and_mouse_without_the_switch_change_nothing() {
    let mut app = app(80, 24);
    let before = selected(&app);
    let mut release = KeyEvent::new(KeyCode::Down, KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    update(&mut app, Msg::Key(release));
    let wheel = MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 0,
        row: 10,
        modifiers: KeyModifiers::NONE,
    };
    update(&mut app, Msg::Mouse(wheel));
    assert_eq!(selected(&app), before);
    app.config.mouse = true;
    update(&mut app, Msg::Mouse(wheel));
    assert_ne!(selected(&app), before);
}

#[test]
fn ticks_redraw_once_a_second_unless_a_spinner_turns() {
    let mut app = app(80, 24);
    app.dirty = false;
    let later = |ms: i64| {
        now()
            .checked_add(jiff::SignedDuration::from_millis(ms))
            .unwrap_or(now())
    };
    update(&mut app, Msg::Tick(later(300), std::time::Instant::now()));
    assert!(
        app.dirty,
        "a probe is under way on screen, so the spinner turns"
    );
    key(&mut app, KeyCode::Char('4'));
    app.dirty = false;
    update(&mut app, Msg::Tick(later(600), std::time::Instant::now()));
    assert!(!app.dirty, "same second, nothing animating");
    update(&mut app, Msg::Tick(later(1000), std::time::Instant::now()));
    assert!(app.dirty, "a new second");
}

#[test]
fn paste_goes_into_the_filter_line() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('/'));
    update(&mut app, Msg::Paste("3FMTK3SU5PMA00003".into()));
    assert_eq!(app.store.visible_len(), 1);
    assert_eq!(selected(&app).as_deref(), Some("f00d-ok"));
}

#[test]
fn scheduler_gone_is_reported_not_fatal() {
    let mut app = app(80, 24);
    update(
        &mut app,
        Msg::EffectFailed("the probe scheduler has stopped".into()),
    );
    assert!(app.visible_flash().is_some_and(|f| f.error));
    assert!(!app.quit);
}

#[test]
fn sweep_and_refresh_commands_reach_the_scheduler() {
    use vtriage::fetch::Command;
    let mut app = app(80, 24);
    update(
        &mut app,
        Msg::Store(vtriage::fetch::Event::SweepCost {
            requests: 5000,
            eta_s: 147_600,
        }),
    );
    assert!(
        screen(&app)[0].contains(":sweep 5,000 requests ≈"),
        "{:?}",
        screen(&app)[0]
    );
    let sent = |effects: Vec<Effect>| {
        effects.into_iter().find_map(|e| match e {
            Effect::Send(c) => Some(c),
            _ => None,
        })
    };
    assert_eq!(
        sent(command(&mut app, "sweep")),
        Some(Command::StartSweep { force: false })
    );
    assert!(
        flash(&app).contains("5000 requests, about 41 h"),
        "{}",
        flash(&app)
    );
    assert!(
        !screen(&app)[0].contains("sweep:"),
        "the cost is no longer offered once started"
    );
    assert_eq!(
        sent(command(&mut app, "sweep force")),
        Some(Command::StartSweep { force: true })
    );
    assert_eq!(
        sent(command(&mut app, "sweep stop")),
        Some(Command::CancelSweep)
    );
    assert_eq!(
        sent(command(&mut app, "refresh")),
        Some(Command::RefreshConnections)
    );
}

#[test]
fn export_writes_the_filtered_rows_as_csv() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "make:tesla");
    key(&mut app, KeyCode::Enter);
    let dir = std::env::temp_dir().join(format!("vtriage-tui-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join("teslas.csv");
    assert_eq!(vtriage::tui::export_csv(&app.store, &path).ok(), Some(3));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    };
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.contains("7SAYGDEE1NF000001") && !text.contains("3FMTK3SU5PMA00003"),
        "{text}"
    );
    #[cfg(unix)]
    assert_eq!(mode, Some(0o600), "VINs and user ids: owner only");
}

#[test]
fn selection_stays_on_top_while_results_resort_until_the_agent_moves() {
    use vtriage::fetch::Event;
    let mut app = App::new(store(), config(vtriage::tui::Theme::plain()), now());
    update(
        &mut app,
        Msg::Resize {
            width: 80,
            height: 24,
        },
    );
    update(&mut app, Msg::Store(events()[0].clone()));
    let first = selected(&app).unwrap_or_default();
    // The selected vehicle turns out healthy and sorts to the bottom.
    let mut healthy = reports()[3].clone();
    healthy.vehicle_id = first.clone();
    update(&mut app, Msg::Store(Event::Observed { report: healthy }));
    assert_eq!(app.store.selected_index(), Some(0), "pinned to the top row");
    assert_ne!(selected(&app).as_deref(), Some(first.as_str()));

    key(&mut app, KeyCode::Down);
    let moved = selected(&app);
    let index = app.store.selected_index();
    let mut blocked = reports()[0].clone();
    blocked.vehicle_id = moved.clone().unwrap_or_default();
    update(&mut app, Msg::Store(Event::Observed { report: blocked }));
    assert_eq!(
        selected(&app),
        moved,
        "once moved, the selection follows the vehicle"
    );
    assert_ne!(app.store.selected_index(), index, "it re-sorted");
}

#[test]
fn vehicle_page_scrolls_no_further_than_its_last_line() {
    let mut app = app(80, 24);
    command(&mut app, "vehicle 7c1e0f3a-vk");
    key(&mut app, KeyCode::End);
    let bottom = app.page().map(|p| p.scroll).unwrap_or_default();
    assert!(bottom > 0, "the page is longer than the screen");
    key(&mut app, KeyCode::Down);
    assert_eq!(
        app.page().map(|p| p.scroll),
        Some(bottom),
        "no dead zone past the end"
    );
    key(&mut app, KeyCode::Up);
    assert_eq!(
        app.page().map(|p| p.scroll),
        Some(bottom - 1),
        "one key up moves one line"
    );
    key(&mut app, KeyCode::Home);
    assert_eq!(app.page().map(|p| p.scroll), Some(0));
}

#[test]
fn export_to_a_json_path_writes_json_not_csv() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "make:tesla");
    key(&mut app, KeyCode::Enter);
    let dir = std::env::temp_dir().join(format!("vtriage-tui-export-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok();
    let array = dir.join("teslas.json");
    let lines = dir.join("teslas.jsonl");
    let plain = dir.join("teslas.CSV");
    let export = |path: &std::path::Path| {
        vtriage::tui::export(&app.store, path, &app.config.policies, now()).ok()
    };
    assert_eq!(export(&array), Some(3));
    assert_eq!(export(&lines), Some(3));
    assert_eq!(export(&plain), Some(3));
    let array = std::fs::read_to_string(&array).unwrap_or_default();
    let lines = std::fs::read_to_string(&lines).unwrap_or_default();
    let plain = std::fs::read_to_string(&plain).unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();

    let parsed: serde_json::Value = serde_json::from_str(&array).unwrap_or_default();
    let vins: Vec<&str> = parsed
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["vin"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(vins.len(), 3, "{array}");
    assert!(vins.contains(&"7SAYGDEE1NF000001"), "{array}");
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(
        lines
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{lines}"
    );
    assert!(plain.starts_with("status,vehicle_id,"), "{plain}");
}

#[test]
fn export_to_an_extension_that_names_no_format_is_refused_naming_the_choices() {
    let dir = std::env::temp_dir().join(format!("vtriage-tui-export-txt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok();
    let mut app = app(80, 24);
    // Said in full on an 80-column footer.
    command(&mut app, "export exp.txt");
    let footer = screen(&app).last().cloned().unwrap_or_default();
    assert!(
        footer.contains("exp.txt: .txt names no format; use .csv .json .jsonl .md"),
        "{footer:?}"
    );
    for name in ["exp.txt", "exp"] {
        let path = dir.join(name);
        let effects = command(&mut app, &format!("export {}", path.display()));
        assert!(
            !effects.iter().any(|e| matches!(e, Effect::Export(_))),
            "{effects:?}"
        );
        let said = app.visible_flash().cloned();
        assert!(said.as_ref().is_some_and(|f| f.error), "{said:?}");
        let text = flash(&app);
        assert!(text.contains(name), "{text}");
        assert!(
            text.contains(".csv")
                && text.contains(".json")
                && text.contains(".jsonl")
                && text.contains(".md"),
            "{text}"
        );
        let written = vtriage::tui::export(&app.store, &path, &app.config.policies, now());
        assert!(written.is_err(), "{written:?}");
        assert!(!path.exists(), "nothing written to {name}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn export_to_a_markdown_path_writes_one_ticket_section_per_vehicle() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "make:tesla");
    key(&mut app, KeyCode::Enter);
    let dir = std::env::temp_dir().join(format!("vtriage-tui-export-md-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join("teslas.md");
    let written = vtriage::tui::export(&app.store, &path, &app.config.policies, now()).ok();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(written, Some(3));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("## ")).count(),
        3,
        "{text}"
    );
    assert!(text.contains("7SAYGDEE1NF000001"), "{text}");
}

#[test]
fn export_says_what_it_wrote_where_and_how_many_vehicles_with_the_tilde_read_as_home() {
    let home = std::env::temp_dir().join(format!("vtriage-tui-export-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).ok();
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('1'));
    let said = vtriage::tui::export_as_asked(&app, std::path::Path::new("~/x.md"), Some(&home));
    let written = std::fs::read_to_string(home.join("x.md")).unwrap_or_default();
    std::fs::remove_dir_all(&home).ok();
    assert_eq!(
        said,
        Msg::EffectDone(format!(
            "exported 1 vehicle as Markdown to {} (owner-only)",
            home.join("x.md").display()
        ))
    );
    assert!(written.starts_with("## "), "{written}");
}

#[test]
fn a_tilde_at_the_start_of_an_export_path_is_the_home_folder() {
    use std::path::Path;
    use vtriage::tui::expand_home;
    let home = Path::new("/home/agent");
    assert_eq!(
        expand_home(Path::new("~/x.csv"), Some(home)),
        Path::new("/home/agent/x.csv")
    );
    assert_eq!(expand_home(Path::new("~"), Some(home)), home);
    // Only a leading `~` component: `~bob` and a `~` further on are names.
    for kept in ["~bob/x.csv", "out/~/x.csv", "x~.csv", "/tmp/x.csv"] {
        assert_eq!(expand_home(Path::new(kept), Some(home)), Path::new(kept));
    }
    assert_eq!(
        expand_home(Path::new("~/x.csv"), None),
        Path::new("~/x.csv")
    );
}

/// The last text row of the vehicle page as drawn on a terminal tall enough to hold all of it.
fn last_page_row(id: &str, width: u16) -> String {
    let mut tall = app(width, 200);
    command(&mut tall, &format!("vehicle {id}"));
    let rows = screen(&tall);
    rows.iter()
        .take(rows.len().saturating_sub(1))
        .rev()
        .find(|r| !r.trim().is_empty())
        .map(|r| r.trim_end().to_string())
        .unwrap_or_default()
}

#[test]
fn end_on_a_vehicle_page_shows_its_last_row_even_when_long_lines_wrap() {
    for (id, width) in [("7c1e0f3a-vk", 80), ("b2d4-loc", 80), ("7c1e0f3a-vk", 60)] {
        let last = last_page_row(id, width);
        assert!(!last.is_empty());
        let mut app = app(width, 24);
        command(&mut app, &format!("vehicle {id}"));
        key(&mut app, KeyCode::End);
        let rows = screen(&app);
        assert!(
            rows.iter().any(|r| r.trim_end() == last),
            "{id} at {width}: {last:?} not on screen after End:\n{}",
            rows.join("\n")
        );
        key(&mut app, KeyCode::Char('J'));
        key(&mut app, KeyCode::End);
        let rows = screen(&app);
        assert!(
            rows.iter().rev().nth(1).is_some_and(|r| r.trim() == "]"),
            "{id} at {width}: the raw responses end on screen after End:\n{}",
            rows.join("\n")
        );
    }
}

#[test]
fn help_scrolls_to_its_last_wrapped_line_and_no_further() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('?'));
    for _ in 0..200 {
        key(&mut app, KeyCode::Down);
    }
    let rows = screen(&app);
    assert!(
        rows.iter().any(|r| r.contains("else fuzzy")),
        "the filter syntax line ends on screen:\n{}",
        rows.join("\n")
    );
    let Overlay::Help { scroll: bottom } = app.overlay else {
        panic!("help is open")
    };
    key(&mut app, KeyCode::Up);
    assert_eq!(
        app.overlay,
        Overlay::Help {
            scroll: bottom.saturating_sub(1)
        },
        "one key up moves one line"
    );
}

#[test]
fn help_pages_with_pagedown_and_jumps_to_either_end() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('?'));
    key(&mut app, KeyCode::End);
    let Overlay::Help { scroll: bottom } = app.overlay else {
        panic!("help is open")
    };
    assert!(bottom > 0, "the help is longer than 24 rows");
    key(&mut app, KeyCode::Home);
    assert_eq!(app.overlay, Overlay::Help { scroll: 0 });
    key(&mut app, KeyCode::PageDown);
    let Overlay::Help { scroll: paged } = app.overlay else {
        panic!("help is open")
    };
    assert!(paged > 1 && paged <= bottom, "{paged} of {bottom}");
}

#[test]
fn budget_stays_in_an_80_column_header_when_a_sweep_is_offered() {
    let mut app = app(80, 24);
    update(
        &mut app,
        Msg::Store(vtriage::fetch::Event::SweepCost {
            requests: 1500,
            eta_s: 41_400,
        }),
    );
    update(
        &mut app,
        Msg::Store(vtriage::fetch::Event::Progress(vtriage::fetch::Progress {
            budget_left: Some(0.6),
            budget_refill_per_min: Some(2.0),
            ..Default::default()
        })),
    );
    let header = screen(&app)[0].clone();
    assert!(
        header.contains("budget 0 +2/min"),
        "a budget under one request reads 0: {header:?}"
    );
}

#[test]
fn with_the_mouse_on_a_click_selects_a_row_and_a_second_click_opens_it() {
    let mut app = app(120, 40);
    app.config.mouse = true;
    let click = |row: u16| {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(ratatui::crossterm::event::MouseButton::Left),
            column: 20,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    // header, progress, two deadline rows, status summary, table header: the body starts on row 6.
    let third = app
        .store
        .row(2)
        .map(|r| r.vehicle_id.clone())
        .expect("a third row");
    update(&mut app, click(8));
    assert_eq!(
        app.store.selected().map(|r| r.vehicle_id.clone()),
        Some(third.clone())
    );
    assert!(matches!(app.screen(), Screen::Fleet));
    update(&mut app, click(8));
    assert!(matches!(app.screen(), Screen::Vehicle(page) if page.vehicle_id == third));
    // A click on the page of a vehicle, or outside the rows, does nothing.
    update(&mut app, click(8));
    assert!(matches!(app.screen(), Screen::Vehicle(_)));
}

#[test]
fn requests_per_second_fall_to_zero_once_requests_stop() {
    let mut app = app(120, 40);
    let start = std::time::Instant::now();
    let tick = |app: &mut App, s: u64| {
        update(
            app,
            Msg::Tick(now(), start + std::time::Duration::from_secs(s)),
        );
    };
    let sent = |app: &mut App, requests_sent: u64| {
        update(
            app,
            Msg::Store(vtriage::fetch::Event::Progress(vtriage::fetch::Progress {
                requests_sent,
                // What the scheduler last measured: frozen once it stops sending events.
                requests_per_s: 4.0,
                ..Default::default()
            })),
        );
    };
    let rate_line = |app: &App| {
        screen(app)
            .into_iter()
            .find(|l| l.contains("req/s"))
            .unwrap_or_default()
    };
    sent(&mut app, 0);
    tick(&mut app, 0);
    sent(&mut app, 40);
    tick(&mut app, 10);
    assert!(rate_line(&app).contains("4.0 req/s"), "{}", rate_line(&app));
    // No more events: the clock alone empties the window (the clock shown is frozen by --now).
    tick(&mut app, 15);
    assert!(rate_line(&app).contains("2.7 req/s"), "{}", rate_line(&app));
    tick(&mut app, 21);
    assert!(rate_line(&app).contains("0.0 req/s"), "{}", rate_line(&app));
}

/// A live dashboard: rows are not probed as they come into view.
fn live_app() -> (App, Vec<Effect>) {
    let config = vtriage::tui::TuiConfig {
        mode_label: "LIVE".into(),
        probe_visible: false,
        refresh_every: std::time::Duration::from_secs(300),
        ..tui_support::config(vtriage::tui::Theme::plain())
    };
    let mut app = App::new(tui_support::store(), config, now());
    let mut effects = update(
        &mut app,
        Msg::Resize {
            width: 120,
            height: 40,
        },
    );
    for event in events() {
        effects.extend(update(&mut app, Msg::Store(event)));
    }
    (app, effects)
}

fn tick(app: &mut App, at: jiff::Timestamp) -> Vec<Effect> {
    update(app, Msg::Tick(at, std::time::Instant::now()))
}

#[test]
fn live_the_rows_on_screen_are_not_probed_only_what_the_agent_opens_and_its_refresh() {
    let (mut app, listed) = live_app();
    assert!(
        probes(&listed).is_empty(),
        "listing probes nothing: {:?}",
        probes(&listed)
    );
    let mut effects = key(&mut app, KeyCode::Down);
    effects.extend(key(&mut app, KeyCode::End));
    effects.extend(key(&mut app, KeyCode::Home));
    assert!(probes(&effects).is_empty(), "scrolling probes nothing");

    let opened = key(&mut app, KeyCode::Enter);
    let asked = probes(&opened);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].1, Priority::Focus);
    let id = asked[0].0[0].clone();
    let back = key(&mut app, KeyCode::Esc);
    assert!(
        probes(&back).is_empty(),
        "going back to the list probes nothing"
    );

    assert!(probes(&tick(&mut app, now() + jiff::SignedDuration::from_secs(10))).is_empty());
    let refresh = tick(&mut app, now() + jiff::SignedDuration::from_secs(310));
    assert_eq!(
        probes(&refresh),
        vec![(vec![id], Priority::Visible, false)],
        "the opened vehicle is refreshed; the freshness window decides the cost"
    );
}

fn find_vin_sent(effects: &[Effect]) -> Option<String> {
    effects.iter().find_map(|e| match e {
        Effect::Send(vtriage::fetch::Command::FindVin { vin }) => Some(vin.vin.clone()),
        _ => None,
    })
}

fn store_event(app: &mut App, event: vtriage::fetch::Event) -> Vec<Effect> {
    update(app, Msg::Store(event))
}

#[test]
fn vin_command_for_a_vin_never_read_says_the_cost_and_opens_the_vehicle_found() {
    use vtriage::fetch::Event;
    let mut app = app(80, 24);
    let vin = "5YJ3E1EA3PF000009";
    let effects = command(&mut app, &format!("vin {}", vin.to_lowercase()));
    assert_eq!(find_vin_sent(&effects).as_deref(), Some(vin));
    assert_eq!(app.page(), None, "nothing opens before the lookup ends");
    store_event(
        &mut app,
        Event::VinLookupPlanned {
            vin: vin.into(),
            requests: 2,
            make: Some("TESLA".into()),
            budget_left: None,
            eta_s: 0,
        },
    );
    assert!(
        flash(&app).contains("2 requests at most"),
        "{}",
        flash(&app)
    );
    store_event(
        &mut app,
        Event::VinsLearned {
            vins: vec![("aaaa-unchecked".into(), vin.into())],
        },
    );
    let effects = store_event(
        &mut app,
        Event::VinLookupDone {
            vin: vin.into(),
            vehicle_id: Some("aaaa-unchecked".into()),
            requests: 1,
            unreadable: 0,
            gaps: Default::default(),
        },
    );
    assert_eq!(
        app.page().map(|p| p.vehicle_id.as_str()),
        Some("aaaa-unchecked")
    );
    assert_eq!(
        probes(&effects),
        [(vec!["aaaa-unchecked".to_string()], Priority::Focus, false)]
    );
    assert_eq!(app.vin_lookup, None);
}

#[test]
fn vin_command_of_an_absent_make_says_it_costs_nothing_and_a_bad_vin_says_why() {
    use vtriage::fetch::Event;
    let mut app = app(80, 24);
    let vin = "WP0AB2A99MS000001";
    command(&mut app, &format!("vin {vin}"));
    store_event(
        &mut app,
        Event::VinLookupPlanned {
            vin: vin.into(),
            requests: 0,
            make: Some("PORSCHE".into()),
            budget_left: None,
            eta_s: 0,
        },
    );
    store_event(
        &mut app,
        Event::VinLookupDone {
            vin: vin.into(),
            vehicle_id: None,
            requests: 0,
            unreadable: 0,
            gaps: Default::default(),
        },
    );
    let said = flash(&app);
    assert!(
        said.contains("PORSCHE") && said.contains("0 requests"),
        "{said}"
    );
    assert_eq!(app.page(), None);

    let effects = command(&mut app, "vin 5YJ3E1EA1PF00000O");
    assert_eq!(find_vin_sent(&effects), None);
    assert!(
        app.visible_flash()
            .is_some_and(|f| f.error && f.text.contains("never I, O or Q"))
    );
}

#[test]
fn a_whole_vin_in_the_filter_matching_no_row_is_looked_up_and_the_car_found_opens_probed_at_focus()
{
    use vtriage::fetch::Event;
    let mut app = app(80, 24);
    let vin = "5YJ3E1EA3PF000009";
    key(&mut app, KeyCode::Char('/'));
    let typing = typed(&mut app, vin);
    assert_eq!(find_vin_sent(&typing), None, "typing alone spends nothing");
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(find_vin_sent(&effects).as_deref(), Some(vin));
    assert_eq!(app.store.visible_len(), 0);
    store_event(
        &mut app,
        Event::VinsLearned {
            vins: vec![("aaaa-unchecked".into(), vin.into())],
        },
    );
    let effects = store_event(
        &mut app,
        Event::VinLookupDone {
            vin: vin.into(),
            vehicle_id: Some("aaaa-unchecked".into()),
            requests: 1,
            unreadable: 0,
            gaps: Default::default(),
        },
    );
    // As `:vin` does: the car opens and is probed at Focus priority.
    assert_eq!(
        app.page().map(|p| p.vehicle_id.as_str()),
        Some("aaaa-unchecked")
    );
    assert_eq!(
        probes(&effects),
        [(vec!["aaaa-unchecked".to_string()], Priority::Focus, false)]
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(
        app.store.visible_len(),
        1,
        "back on the list, its row shows"
    );
}

#[test]
fn a_whole_known_vin_in_the_filter_opens_its_car_at_focus_even_under_a_status_quick_filter() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Char('/'));
    // The Model 3 is DEGRADED: hidden by `1`, found by its VIN all the same.
    typed(&mut app, "5YJ3E1EA7KF000002");
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(
        find_vin_sent(&effects),
        None,
        "a VIN the fleet knows costs nothing"
    );
    assert_eq!(
        app.page().map(|p| p.vehicle_id.as_str()),
        Some("b2d4-loc"),
        "{}",
        flash(&app)
    );
    assert!(
        probes(&effects)
            .iter()
            .any(|(ids, priority, _)| ids == &["b2d4-loc".to_string()]
                && *priority == Priority::Focus),
        "{:?}",
        probes(&effects)
    );
    let focus = |effects: &[Effect]| -> Vec<_> {
        probes(effects)
            .into_iter()
            .filter(|(_, priority, _)| *priority == Priority::Focus)
            .collect()
    };
    let by_command = command(&mut app, "vin 5YJ3E1EA7KF000002");
    assert_eq!(focus(&by_command), focus(&effects), ":vin does the same");
}

#[test]
fn after_a_status_key_slash_edits_the_free_text_while_the_quick_filter_stays_its_own_term() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Char('/'));
    assert_eq!(
        app.filter_input.text(),
        "",
        "the line holds the free text only"
    );
    assert_eq!(app.filter_quick, "status:blocked");
    typed(&mut app, "tesla");
    assert_eq!(app.store.filter_text(), "status:blocked tesla");
    assert_eq!(app.store.visible_len(), 1);
    typed(&mut app, " ford");
    let text = screen(&app).join("\n");
    assert!(
        text.contains(
            "no vehicle matches the filter (only status:blocked: its key again, or Backspace"
        ),
        "{text}"
    );
    for _ in 0.." ford".len() {
        key(&mut app, KeyCode::Backspace);
    }
    let line = screen(&app)
        .into_iter()
        .find(|l| l.starts_with('/'))
        .unwrap_or_default();
    assert!(line.starts_with("/[status:blocked] tesla█"), "{line:?}");
    // Erasing what was typed, then one Backspace more, drops the quick filter too.
    for _ in 0.."tesla".len() {
        key(&mut app, KeyCode::Backspace);
    }
    assert_eq!(app.store.filter_text(), "status:blocked");
    key(&mut app, KeyCode::Backspace);
    assert_eq!(app.store.filter_text(), "");
    assert_eq!(app.store.visible_len(), app.store.len());
    typed(&mut app, "tesla");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.store.filter_text(), "tesla");
    // `1` with free text keeps it; `/` again shows the free text, the quick filter apart.
    key(&mut app, KeyCode::Char('1'));
    assert_eq!(app.store.filter_text(), "tesla status:blocked");
    key(&mut app, KeyCode::Char('/'));
    assert_eq!(app.filter_input.text(), "tesla");
    assert_eq!(app.filter_quick, "status:blocked");
    key(&mut app, KeyCode::Esc);
    assert_eq!(
        app.store.filter_text(),
        "tesla status:blocked",
        "Esc restores it"
    );
}

#[test]
fn the_filter_line_draws_the_cursor_where_it_is() {
    let mut app = app(80, 24);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "make:tsla");
    for _ in 0..3 {
        key(&mut app, KeyCode::Left);
    }
    typed(&mut app, "e");
    assert_eq!(app.store.filter_text(), "make:tesla");
    let line = screen(&app)
        .into_iter()
        .find(|l| l.starts_with('/'))
        .unwrap_or_default();
    assert!(
        line.starts_with("/make:tesla  "),
        "no block after the end: {line:?}"
    );
}

#[test]
fn a_click_lands_on_the_row_drawn_there_with_or_without_the_filter_line() {
    for filtered in [false, true] {
        let mut app = app(120, 40);
        app.config.mouse = true;
        if filtered {
            key(&mut app, KeyCode::Char('/'));
            typed(&mut app, "!status:unknown");
            key(&mut app, KeyCode::Enter);
        }
        let lines = screen(&app);
        // A row below the first whose VIN tells it apart on screen.
        let third = (1..app.store.visible_len())
            .filter_map(|i| app.store.row(i).cloned())
            .find(|r| r.vin.is_some())
            .expect("a row with a VIN below the first");
        let label = third.vin.clone().unwrap_or_default();
        let drawn_at = lines
            .iter()
            .position(|l| l.contains(&label))
            .expect("the third row is drawn") as u16;
        update(
            &mut app,
            Msg::Mouse(MouseEvent {
                kind: MouseEventKind::Down(ratatui::crossterm::event::MouseButton::Left),
                column: 20,
                row: drawn_at,
                modifiers: KeyModifiers::NONE,
            }),
        );
        assert_eq!(
            selected(&app),
            Some(third.vehicle_id.clone()),
            "filter line shown: {filtered}"
        );
    }
}

#[test]
fn a_vin_whose_check_digit_does_not_fit_costs_nothing_offers_the_nearest_and_is_looked_up_only_on_y()
 {
    // One character from the Model 3's VIN: its check digit no longer fits.
    let typo = "5YJ3E1EA7KF000003";
    let mut app = app(80, 24);
    let effects = command(&mut app, &format!("vin {typo}"));
    assert_eq!(
        find_vin_sent(&effects),
        None,
        "nothing is spent on a likely typo"
    );
    let said = flash(&app);
    assert!(
        said.contains("check digit")
            && said.contains("outside North America")
            && said.contains("5YJ3E1EA7KF000002"),
        "{said}"
    );
    // Any other key: still nothing.
    let effects = key(&mut app, KeyCode::Char('n'));
    assert_eq!(find_vin_sent(&effects), None);
    assert!(flash(&app).contains("not looked up"), "{}", flash(&app));

    // The same VIN in `/`, then `y`: looked up all the same.
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, typo);
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(find_vin_sent(&effects), None);
    let effects = key(&mut app, KeyCode::Char('y'));
    assert_eq!(find_vin_sent(&effects).as_deref(), Some(typo));
}

#[test]
fn a_vin_lookup_costing_much_of_the_budget_asks_first_then_its_progress_stays_until_esc_cancels() {
    use vtriage::fetch::{Command, Event, Progress};
    let mut app = app(120, 40);
    app.store.set_progress(
        &Progress {
            budget_left: Some(1.4),
            budget_refill_per_min: Some(2.0),
            ..Progress::default()
        },
        now(),
    );
    // A Tesla VIN no row has, its check digit right.
    let vin = "5YJ3E1EA3PF000009";
    let effects = command(&mut app, &format!("vin {vin}"));
    assert_eq!(
        find_vin_sent(&effects),
        None,
        "nothing is spent before the agent agrees"
    );
    let said = flash(&app);
    assert!(
        said.contains("of 1 left") && said.contains("y / any key"),
        "{said}"
    );
    let effects = key(&mut app, KeyCode::Char('y'));
    assert_eq!(find_vin_sent(&effects).as_deref(), Some(vin));

    store_event(
        &mut app,
        Event::VinLookupPlanned {
            vin: vin.into(),
            requests: 3,
            make: Some("TESLA".into()),
            budget_left: Some(1),
            eta_s: 60,
        },
    );
    store_event(
        &mut app,
        Event::VinLookupProgress {
            vin: vin.into(),
            read: 1,
            of: 3,
        },
    );
    // Long after a flash would have gone, the lookup's line is still there.
    app.now = now() + jiff::SignedDuration::from_secs(600);
    let said = flash(&app);
    assert!(
        said.contains("1/3 read") && said.contains("left") && said.contains("Esc cancels"),
        "{said}"
    );
    let effects = key(&mut app, KeyCode::Esc);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Send(Command::CancelVinLookup))),
        "{effects:?}"
    );
}

fn tick_after(app: &mut App, after_s: i64) -> Vec<Effect> {
    let at = now()
        .checked_add(jiff::SignedDuration::from_secs(after_s))
        .expect("time");
    update(app, Msg::Tick(at, std::time::Instant::now()))
}

/// The watched car's probes among `effects`: sent forced at Visible priority.
fn watch_probes(effects: &[Effect]) -> Vec<Vec<String>> {
    probes(effects)
        .into_iter()
        .filter(|(_, p, force)| *p == Priority::Visible && *force)
        .map(|(ids, _, _)| ids)
        .collect()
}

#[test]
fn w_on_a_blocked_car_probes_it_again_after_1_2_4_minutes_and_says_when_it_recovered() {
    let mut app = app(120, 40);
    command(&mut app, "vehicle 7c1e0f3a-vk");
    tick_after(&mut app, 0);
    assert!(key(&mut app, KeyCode::Char('w')).is_empty());
    assert!(
        flash(&app).starts_with("watching 7c1e0f3a-vk"),
        "{}",
        flash(&app)
    );
    let probed_at = |app: &mut App, s: i64| !watch_probes(&tick_after(app, s)).is_empty();
    assert!(!probed_at(&mut app, 30));
    assert!(probed_at(&mut app, 60), "first probe after a minute");
    assert!(!probed_at(&mut app, 150));
    assert!(probed_at(&mut app, 180), "then two minutes later");
    assert!(!probed_at(&mut app, 400));
    assert!(probed_at(&mut app, 420), "then four");
    assert!(
        screen(&app)
            .join("\n")
            .contains("watched since 19:00 · next probe 19:15")
    );

    // The customer paired the key: the next answer is healthy.
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
    assert_eq!(flash(&app), "✓ 7c1e0f3a-vk recovered at 19:07 (probe)");
    let shown = screen(&app).join("\n");
    assert!(
        shown.contains("✓ 7c1e0f3a-vk recovered at 19:07"),
        "{shown}"
    );
    assert!(
        shown.contains("watched · recovered at 19:07 (probe)"),
        "{shown}"
    );
    assert!(
        watch_probes(&tick_after(&mut app, 2000)).is_empty(),
        "no probe once recovered"
    );
}

#[test]
fn w_on_a_desk_spends_no_request() {
    let mut app = app(120, 40);
    update(
        &mut app,
        Msg::Link(vtriage::desk::remote::Link::Connected {
            agents_probing: Vec::new(),
        }),
    );
    command(&mut app, "vehicle 7c1e0f3a-vk");
    key(&mut app, KeyCode::Char('w'));
    assert!(flash(&app).contains("no request"), "{}", flash(&app));
    for s in [60, 180, 420, 3600] {
        assert!(watch_probes(&tick_after(&mut app, s)).is_empty());
    }
    assert!(
        screen(&app)
            .join("\n")
            .contains("watched since 19:00 · the desk tells")
    );
}

#[test]
fn w_on_a_healthy_car_says_there_is_nothing_to_watch_and_w_again_stops_a_watch() {
    let mut app = app(120, 40);
    command(&mut app, "vehicle f00d-ok");
    key(&mut app, KeyCode::Char('w'));
    assert_eq!(
        flash(&app),
        "nothing to watch: f00d-ok is HEALTHY, not failing"
    );
    key(&mut app, KeyCode::Esc);
    command(&mut app, "vehicle 7c1e0f3a-vk");
    key(&mut app, KeyCode::Char('w'));
    key(&mut app, KeyCode::Char('w'));
    assert_eq!(flash(&app), "stopped watching 7c1e0f3a-vk");
    assert!(watch_probes(&tick_after(&mut app, 60)).is_empty());
}

#[test]
fn the_watch_key_is_in_the_help_and_the_vehicle_hint_bar() {
    let mut app = app(120, 40);
    command(&mut app, "vehicle 7c1e0f3a-vk");
    assert!(
        screen(&app).last().is_some_and(|l| l.contains("w watch")),
        "{:?}",
        screen(&app).last()
    );
    key(&mut app, KeyCode::Char('?'));
    assert!(
        screen(&app)
            .join("\n")
            .contains("Watch this car once its fix was sent")
    );
}
