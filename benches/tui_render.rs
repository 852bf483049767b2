//! The dashboard at 100,000 vehicles: drawing the fleet view, moving the selection, and one filter
//! keystroke, each through the same `update` and `render` the terminal uses.

#[path = "../tests/it/tui_support/mod.rs"]
mod tui_support;

use std::sync::LazyLock;

use divan::Bencher;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use vtriage::tui::app::{App, Msg, update};
use vtriage::tui::{Theme, views};

const FLEET: usize = 100_000;

static EVENTS: LazyLock<Vec<vtriage::fetch::Event>> =
    LazyLock::new(|| tui_support::big_fleet_events(FLEET));

fn app() -> App {
    app_at(120, 40)
}

fn app_at(width: u16, height: u16) -> App {
    let mut app = App::new(
        tui_support::store(),
        tui_support::config(Theme::default()),
        tui_support::now(),
    );
    update(&mut app, Msg::Resize { width, height });
    for event in EVENTS.iter() {
        update(&mut app, Msg::Store(event.clone()));
    }
    app
}

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 50)]
fn draw_fleet_view_120x40(bencher: Bencher) {
    let app = app();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test terminal");
    bencher.bench_local(|| {
        terminal
            .draw(|frame| views::render(&app, frame))
            .expect("draw");
    });
}

#[divan::bench(sample_count = 50)]
fn draw_fleet_view_200x60(bencher: Bencher) {
    let app = app_at(200, 60);
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test terminal");
    bencher.bench_local(|| {
        terminal
            .draw(|frame| views::render(&app, frame))
            .expect("draw");
    });
}

#[divan::bench(sample_count = 50)]
fn key_down_then_draw(bencher: Bencher) {
    let mut app = app();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test terminal");
    bencher.bench_local(|| {
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Down)));
        terminal
            .draw(|frame| views::render(&app, frame))
            .expect("draw");
    });
}

#[divan::bench(sample_count = 20)]
fn filter_keystroke_then_draw(bencher: Bencher) {
    let mut app = app();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test terminal");
    update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Char('/'))));
    let mut toggle = false;
    bencher.bench_local(|| {
        // Alternates narrowing and widening, so every sample refilters the fleet.
        let key = if toggle {
            KeyCode::Backspace
        } else {
            KeyCode::Char('5')
        };
        toggle = !toggle;
        update(&mut app, Msg::Key(KeyEvent::from(key)));
        terminal
            .draw(|frame| views::render(&app, frame))
            .expect("draw");
    });
}

/// One keystroke in the filter line with `before` already typed, then the next frame. Each sample
/// starts from the same state: a copy of the store as `before` left it (the copy is made, and the
/// replaced store dropped, outside the timing).
fn filter_keystroke_from(bencher: Bencher, before: &str, key: KeyCode) {
    let mut app = app();
    update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Char('/'))));
    for c in before.chars() {
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Char(c))));
    }
    let base = app.store.clone();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test terminal");
    bencher
        .with_inputs(|| base.clone())
        .bench_local_values(|store| {
            let previous = std::mem::replace(&mut app.store, store);
            app.filter_input.start(before);
            update(&mut app, Msg::Key(KeyEvent::from(key)));
            terminal
                .draw(|frame| views::render(&app, frame))
                .expect("draw");
            previous
        });
}

/// Typing the next character of a free-text filter: the store re-tests only the rows the
/// previous text kept.
#[divan::bench(args = ["", "5", "5y", "5yj", "tesl", "veh-0001"], sample_count = 30, sample_size = 1)]
fn filter_typing_extends_then_draw(bencher: Bencher, before: &str) {
    let next = match before {
        "" => '5',
        "5" => 'y',
        "5y" => 'j',
        "5yj" => '3',
        "tesl" => 'a',
        _ => '2',
    };
    filter_keystroke_from(bencher, before, KeyCode::Char(next));
}

/// Deleting the last character of a free-text filter: every row is re-tested against the wider text.
#[divan::bench(args = ["5", "5yj", "5yj3", "tesla", "veh-00012"], sample_count = 30, sample_size = 1)]
fn filter_backspace_widens_then_draw(bencher: Bencher, before: &str) {
    filter_keystroke_from(bencher, before, KeyCode::Backspace);
}
