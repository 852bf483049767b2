//! Colours that carry meaning, checked cell by cell (text snapshots drop colour), and their absence under NO_COLOR.

use crate::tui_support;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::Widget;
use tui_support::*;
use vtriage::config::ThemeChoice;
use vtriage::health::Status;
use vtriage::tui::facts::{Grant, VirtualKey};
use vtriage::tui::theme::Preset;
use vtriage::tui::widgets::{grant_badge, status_badge, virtual_key_badge};
use vtriage::tui::{Theme, views};

fn rendered(line: Line<'static>, width: u16) -> Buffer {
    let mut buf = Buffer::empty(Rect::new(0, 0, width, 1));
    line.render(buf.area, &mut buf);
    buf
}

#[test]
fn status_badges_carry_symbol_word_and_their_colour_on_the_dark_preset() {
    let dark = Theme::preset(Preset::Dark);
    let cases = [
        (Status::Blocked, "✖ BLOCKED ", Color::LightRed),
        (Status::Degraded, "▲ DEGRADED", Color::Yellow),
        (Status::Warning, "! WARNING ", Color::LightMagenta),
        (Status::Healthy, "● HEALTHY ", Color::LightGreen),
        (Status::Unknown, "? UNKNOWN ", Color::Gray),
    ];
    for (status, text, colour) in cases {
        let buf = rendered(Line::from(status_badge(status, &dark)), 10);
        let badge = text.trim_end();
        let mut expected = Buffer::with_lines([text]);
        expected.set_style(
            Rect::new(0, 0, badge.chars().count() as u16, 1),
            Style::new().fg(colour).add_modifier(Modifier::BOLD),
        );
        assert_eq!(buf, expected, "{status:?}");
    }
}

#[test]
fn light_preset_uses_darker_colours_readable_on_white() {
    let light = Theme::preset(Preset::Light);
    let buf = rendered(Line::from(status_badge(Status::Blocked, &light)), 9);
    assert_eq!(buf[(0, 0)].fg, Color::Red);
    let buf = rendered(Line::from(status_badge(Status::Healthy, &light)), 9);
    assert_eq!(buf[(0, 0)].fg, Color::Green);
}

#[test]
fn permission_and_virtual_key_badges_colour_the_fault_only() {
    let dark = Theme::preset(Preset::Dark);
    let needed = rendered(
        Line::from(grant_badge(Grant::NeededMissing, "location", &dark)),
        10,
    );
    let mut expected = Buffer::with_lines(["✖ location"]);
    expected.set_style(Rect::new(0, 0, 10, 1), dark.blocked);
    assert_eq!(needed, expected);
    let granted = rendered(
        Line::from(grant_badge(Grant::Granted, "odometer", &dark)),
        10,
    );
    assert_eq!(granted[(0, 0)].fg, Color::LightGreen);
    let missing_key = rendered(Line::from(virtual_key_badge(VirtualKey::Missing, &dark)), 9);
    let mut expected = Buffer::with_lines(["✖ missing"]);
    expected.set_style(Rect::new(0, 0, 9, 1), dark.blocked);
    assert_eq!(missing_key, expected);
    let exempt = rendered(Line::from(virtual_key_badge(VirtualKey::Exempt, &dark)), 8);
    assert_eq!(exempt[(0, 0)].fg, Color::DarkGray);
}

#[test]
fn fleet_rows_show_their_status_colour_in_the_table() {
    let (app, _) = app_with(Theme::preset(Preset::Dark), 120, 40);
    let terminal = draw(&app);
    let buf = terminal.backend().buffer();
    let cell_of = |needle: &str| {
        (0..buf.area.height).find_map(|y| {
            let row: String = (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect();
            let x = row
                .find(needle)
                .map(|byte| row[..byte].chars().count() as u16)?;
            (y >= 6).then_some((x, y))
        })
    };
    let Some((x, y)) = cell_of("✖ BLOCKED") else {
        panic!("no BLOCKED row")
    };
    assert_eq!(buf[(x, y)].fg, Color::LightRed);
    let Some((x, y)) = cell_of("● HEALTHY") else {
        panic!("no HEALTHY row")
    };
    assert_eq!(buf[(x, y)].fg, Color::LightGreen);
    // The selected row (first, BLOCKED) carries the selection background.
    let Some((_, y)) = cell_of("▶") else {
        panic!("no selection marker")
    };
    assert_eq!(buf[(30, y)].bg, Color::DarkGray);
    // The DEMO tag stands out.
    assert_eq!(buf[(10, 0)].bg, Color::Yellow);
}

#[test]
fn no_color_draws_every_view_without_a_single_colour() {
    let theme = Theme::resolve(ThemeChoice::Dark, true, None, None).unwrap_or_default();
    let (mut app, _) = app_with(theme, 120, 40);
    let check = |app: &vtriage::tui::App, what: &str| {
        let mut terminal = draw(app);
        terminal.draw(|f| views::render(app, f)).ok();
        let buf = terminal.backend().buffer();
        for cell in buf.content() {
            assert_eq!(
                (cell.fg, cell.bg),
                (Color::Reset, Color::Reset),
                "{what}: {:?}",
                cell.symbol()
            );
        }
        let text: String = buf.content().iter().map(|c| c.symbol()).collect();
        text
    };
    let fleet = check(&app, "fleet");
    assert!(
        fleet.contains("✖ BLOCKED") && fleet.contains("● HEALTHY"),
        "badges keep symbol and word"
    );
    app.store.select(Some("7c1e0f3a-vk"));
    vtriage::tui::update(
        &mut app,
        vtriage::tui::Msg::Key(ratatui::crossterm::event::KeyEvent::from(
            ratatui::crossterm::event::KeyCode::Enter,
        )),
    );
    let vehicle = check(&app, "vehicle");
    assert!(
        vehicle.contains("✖ missing"),
        "virtual key badge keeps its word"
    );
}
