//! The dashboard at 100,000 vehicles: drawing the fleet view, moving the selection, and one filter
//! keystroke, each through the same `update` and `render` the terminal uses.

#[path = "../tests/tui_support/mod.rs"]
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
    let mut app = App::new(
        tui_support::store(),
        tui_support::config(Theme::default()),
        tui_support::now(),
    );
    update(
        &mut app,
        Msg::Resize {
            width: 120,
            height: 40,
        },
    );
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
