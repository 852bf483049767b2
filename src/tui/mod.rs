//! The dashboard: terminal lifecycle, keymap, theme, clipboard, widgets and views over the store, and the event loop.
//!
//! [`run`] owns the terminal until the agent quits. Data flows one way: scheduler events go into the
//! store through [`app::update`], keys come out as [`crate::fetch::Command`]s; the loop drains every pending
//! message, then draws once, only when something changed.

pub mod app;
pub mod clipboard;
pub mod facts;
pub mod keymap;
pub mod terminal;
pub mod theme;
pub mod views;
pub mod widgets;

use std::path::Path;
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::fetch::{Command, Event};
use crate::store::Store;

pub use app::{App, Effect, Msg, TuiConfig, update};
pub use keymap::{Action, KeyContext, Keymap, KeymapError};
pub use terminal::{Raterm, TermOptions, set_log_path};
pub use theme::{Theme, ThemeError};

/// Why the dashboard could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error(
        "terminal: {0} (the dashboard needs an interactive terminal; use `vtriage check` in scripts)"
    )]
    Terminal(#[from] std::io::Error),
    #[error(transparent)]
    Keymap(#[from] KeymapError),
    #[error(transparent)]
    Theme(#[from] ThemeError),
    #[error("theme file {path}: {error}")]
    ThemeFile { path: String, error: std::io::Error },
}

impl TuiConfig {
    /// Builds the look and keys from the config file's `[ui]` and `[keys]`, `theme.toml` in the config
    /// folder (optional), and `NO_COLOR`/`COLORFGBG` from the environment.
    pub fn load(
        ui: &crate::config::UiConfig,
        keys: &toml::Table,
        config_file: &Path,
        config_dir: &Path,
    ) -> Result<TuiConfig, TuiError> {
        let keymap = Keymap::with_table(&format!("{} [keys]", config_file.display()), keys)?;
        let theme_path = config_dir.join("theme.toml");
        let user_theme = match std::fs::read_to_string(&theme_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(TuiError::ThemeFile {
                    path: theme_path.display().to_string(),
                    error,
                });
            }
        };
        let origin = theme_path.display().to_string();
        let theme = Theme::resolve(
            ui.theme,
            Theme::no_color_from_env(),
            std::env::var("COLORFGBG").ok().as_deref(),
            user_theme.as_deref().map(|t| (origin.as_str(), t)),
        )?;
        Ok(TuiConfig {
            theme,
            keymap,
            mouse: ui.mouse,
            hyperlinks: ui.hyperlinks,
            ..TuiConfig::default()
        })
    }
}

/// Tick period when nothing animates: countdowns and "checked 3m ago" change at most once a second.
const TICK: Duration = Duration::from_secs(1);
/// Tick period while a spinner turns.
const SPIN: Duration = Duration::from_millis(100);
/// Messages applied between two draws at most, so a flood of events cannot freeze the screen.
const DRAIN_MAX: usize = 4096;

/// Runs the dashboard until the agent quits; gives the store back (to save a snapshot).
///
/// - `commands` reaches the scheduler (probes at Visible priority for rows on screen, Focus for an
///   opened vehicle, forced re-probes); `Shutdown` is not sent: the caller decides.
/// - `events` are the scheduler's; the loop keeps running if that channel closes.
/// - `now_override` (`--now`) freezes the clock for every date shown.
/// - `link`: reading a desk server, where its link stands (the header says when it is down).
pub async fn run(
    config: TuiConfig,
    store: Store,
    commands: UnboundedSender<Command>,
    mut events: UnboundedReceiver<Event>,
    now_override: Option<jiff::Timestamp>,
    mut link: Option<tokio::sync::watch::Receiver<crate::desk::remote::Link>>,
) -> Result<Store, TuiError> {
    let clock = move || now_override.unwrap_or_else(jiff::Timestamp::now);
    let mut term = Raterm::start(TermOptions {
        mouse: config.mouse,
    })?;
    let (input_tx, mut input) = unbounded_channel();
    let reader = std::thread::spawn(move || read_terminal(input_tx));

    let routes =
        clipboard::CopyRoutes::find(|name| std::env::var_os(name), std::env::var_os("PATH"));
    let mut config = config;
    config.copying = routes.describe();
    let mut app = App::new(store, config, clock());
    let size = term.terminal().size()?;
    let mut pending = vec![Msg::Resize {
        width: size.width,
        height: size.height,
    }];
    let mut events_open = true;
    let mut fatal: Option<std::io::Error> = None;
    let mut ticker = Ticker::new();
    // The screen as last drawn, and a terminal off screen to draw a tick's frame into first.
    let mut shown: Option<Buffer> = None;
    let mut offscreen = match Terminal::new(TestBackend::new(size.width, size.height)) {
        Ok(offscreen) => offscreen,
        Err(never) => match never {},
    };
    // SIGTERM (a closed SSH session, `kill`) ends the dashboard as `q` does: terminal restored, snapshot saved.
    let mut terminate = std::pin::pin!(terminate_signal());
    let result = loop {
        let mut drained = 0;
        let mut ticks_only = true;
        while let Some(msg) = pending.pop() {
            drained += 1;
            ticks_only &= matches!(msg, Msg::Tick(..));
            for effect in update(&mut app, msg) {
                if let Some(msg) = carry_out(effect, &mut app, &mut term, &commands, &routes) {
                    pending.push(msg);
                }
            }
            if pending.is_empty() && drained < DRAIN_MAX {
                if let Ok(msg) = input.try_recv() {
                    match msg {
                        Ok(msg) => pending.push(msg),
                        Err(e) => fatal = Some(e),
                    }
                } else if events_open && let Ok(event) = events.try_recv() {
                    pending.push(Msg::Store(event));
                }
            }
        }
        if let Some(e) = fatal.take() {
            break Err(TuiError::Terminal(e));
        }
        if app.quit {
            break Ok(());
        }
        if app.dirty {
            app.dirty = false;
            // A tick redraws for clocks and spinners; most seconds nothing on screen changes, and
            // then nothing is written to the terminal.
            let unchanged = ticks_only
                && shown
                    .as_ref()
                    .is_some_and(|last| same_frame(&app, &mut offscreen, last));
            if !unchanged {
                let mut links = Vec::new();
                match term
                    .terminal()
                    .draw(|frame| links = views::render_with_links(&app, frame))
                {
                    Ok(frame) => shown = Some(frame.buffer.clone()),
                    Err(e) => break Err(TuiError::Terminal(e)),
                }
                if app.config.hyperlinks
                    && let Some(buffer) = &shown
                    && let Err(e) = hyperlink(&mut term, buffer, &links)
                {
                    break Err(TuiError::Terminal(e));
                }
                // Lets the end-to-end tests prove that a panic restores the terminal and ends the process.
                if std::env::var_os("VTRIAGE_DEBUG_PANIC").is_some() {
                    panic!("forced by VTRIAGE_DEBUG_PANIC");
                }
            }
        }
        let tick = if app.is_animating() { SPIN } else { TICK };
        let msg = tokio::select! {
            msg = input.recv() => match msg {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => break Err(TuiError::Terminal(e)),
                None => break Ok(()),
            },
            event = events.recv(), if events_open => match event {
                Some(event) => Msg::Store(event),
                None => { events_open = false; continue; }
            },
            changed = async {
                match link.as_mut() {
                    Some(l) => l.changed().await.map(|()| l.borrow_and_update().clone()),
                    None => std::future::pending().await,
                }
            } => match changed {
                Ok(state) => Msg::Link(state),
                // The link's task ended (the session is over): nothing more to watch.
                Err(_) => { link = None; continue; }
            },
            () = ticker.wait(tick) => Msg::Tick(clock(), std::time::Instant::now()),
            () = terminate.as_mut() => break Ok(()),
        };
        pending.push(msg);
    };
    drop(input);
    Raterm::stop()?;
    drop(term);
    // The reader notices the closed channel within one poll period.
    let _ = reader.join();
    result.map(|()| app.store)
}

/// Resolves when the process is asked to terminate (SIGTERM); never elsewhere.
async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

/// Clock ticks due a fixed period after the last one, however many messages arrive in between: a sleep
/// started afresh each turn never ends while a sweep streams events, and the clock would freeze
/// (ages, flashes, countdowns and spinners with it).
struct Ticker {
    last: tokio::time::Instant,
}

impl Ticker {
    fn new() -> Ticker {
        Ticker {
            last: tokio::time::Instant::now(),
        }
    }

    /// Waits until `period` after the last tick. Cancel-safe: dropped early, the deadline stays.
    async fn wait(&mut self, period: Duration) {
        tokio::time::sleep_until(self.last + period).await;
        self.last = tokio::time::Instant::now();
    }
}

/// Whether drawing `app` now gives exactly the `last` frame drawn (same size, same cells).
fn same_frame(app: &App, offscreen: &mut Terminal<TestBackend>, last: &Buffer) -> bool {
    let area = last.area;
    if area.width != app.width || area.height != app.height {
        return false;
    }
    offscreen.backend_mut().resize(area.width, area.height);
    match offscreen.draw(|frame| views::render(app, frame)) {
        Ok(frame) => frame.buffer == last,
        Err(_) => false,
    }
}

/// Reads terminal events on a thread of its own (crossterm's read blocks) until the loop goes away.
fn read_terminal(tx: UnboundedSender<std::io::Result<Msg>>) {
    while !tx.is_closed() {
        match event::poll(Duration::from_millis(200)) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
        let msg = match event::read() {
            Ok(TermEvent::Key(key)) if key.kind != KeyEventKind::Release => Msg::Key(key),
            Ok(TermEvent::Paste(text)) => Msg::Paste(text),
            Ok(TermEvent::Mouse(mouse)) => Msg::Mouse(mouse),
            Ok(TermEvent::Resize(width, height)) => Msg::Resize { width, height },
            Ok(_) => continue,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if tx.send(Ok(msg)).is_err() {
            return;
        }
    }
}

/// Redraws each link's cells between OSC 8 sequences, so the terminal opens or copies the whole link
/// whatever is clipped on screen. Only links the view vetted with the link policy are handed here;
/// one that is not plain printable ASCII is skipped, since it would end the sequence early.
fn hyperlink(term: &mut Raterm, buffer: &Buffer, links: &[views::LinkArea]) -> std::io::Result<()> {
    use ratatui::backend::Backend;
    for link in links {
        if !link.url.bytes().all(|b| b.is_ascii_graphic()) {
            continue;
        }
        let cells: Vec<(u16, u16, &ratatui::buffer::Cell)> = (link.area.x..link.area.right())
            .filter_map(|x| buffer.cell((x, link.area.y)).map(|c| (x, link.area.y, c)))
            .collect();
        term.write_raw(format!("\x1b]8;;{}\x1b\\", link.url).as_bytes())?;
        let backend = term.terminal().backend_mut();
        backend.draw(cells.into_iter())?;
        Backend::flush(backend)?;
        term.write_raw(b"\x1b]8;;\x1b\\")?;
    }
    Ok(())
}

/// Carries out one effect; a message back when there is something to tell the agent.
fn carry_out(
    effect: Effect,
    app: &mut App,
    term: &mut Raterm,
    commands: &UnboundedSender<Command>,
    routes: &clipboard::CopyRoutes,
) -> Option<Msg> {
    match effect {
        Effect::Send(command) => commands
            .send(command)
            .err()
            .map(|_| Msg::EffectFailed("the probe scheduler has stopped".into())),
        Effect::Copy { text, what } => Some(
            match clipboard::copy_by(routes, &text, what, |osc52| {
                term.write_raw(osc52.as_bytes())
            }) {
                Ok(said) => Msg::EffectDone(said),
                Err(why) => Msg::EffectFailed(why),
            },
        ),
        Effect::Open(link) => open_link(&link).err().map(Msg::EffectFailed),
        Effect::Export(path) => Some(export_as_asked(app, &path, std::env::home_dir().as_deref())),
        Effect::Quit => {
            app.quit = true;
            None
        }
    }
}

/// Opens a link with the platform's opener, without waiting for it. The link is one argument of the
/// opener itself, never a shell's (`cmd /C start` would read `&` and `^`), and never looks like an option:
/// `xdg-open` and `open` take no `--`, so a link starting with `-` is refused (the link policy already
/// refuses it).
fn open_link(link: &str) -> Result<(), String> {
    if link.starts_with('-') || link.chars().any(crate::untrusted::text::is_unsafe) {
        return Err("not opened: the link is not a plain URL; copy it with y instead".into());
    }
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        ("open", vec![link])
    } else if cfg!(windows) {
        ("rundll32", vec!["url.dll,FileProtocolHandler", link])
    } else {
        ("xdg-open", vec![link])
    };
    std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("could not open the link with {program}: {e}; copy it with y instead"))
}

/// What [`export`] writes, named by the path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    JsonArray,
    JsonLines,
    Csv,
    Markdown,
}

/// The extensions `:export` takes, as the error about any other names them.
pub const EXPORT_EXTENSIONS: &str = ".csv .json .jsonl .md";

/// Why an export was not written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {why}; use {EXPORT_EXTENSIONS}")]
    UnknownFormat { path: String, why: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ExportFormat {
    /// The format `path`'s extension names; an error naming the choices for any other.
    pub fn of(path: &Path) -> Result<ExportFormat, ExportError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(ExportFormat::Csv),
            Some("json") => Ok(ExportFormat::JsonArray),
            Some("jsonl" | "ndjson") => Ok(ExportFormat::JsonLines),
            Some("md" | "markdown") => Ok(ExportFormat::Markdown),
            other => Err(ExportError::UnknownFormat {
                path: crate::untrusted::text::one_line(&path.display().to_string()).into_owned(),
                why: match other {
                    Some(e) => format!(".{} names no format", crate::untrusted::text::one_line(e)),
                    None => "no extension".to_string(),
                },
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::JsonArray => "a JSON array",
            ExportFormat::JsonLines => "JSON lines",
            ExportFormat::Csv => "CSV",
            ExportFormat::Markdown => "Markdown",
        }
    }
}

/// `~` or `~/…` at the start of `path` is the home folder (`home`), as a shell would read it; any
/// other path is left as typed. Without a home folder the path stays as typed.
pub fn expand_home(path: &Path, home: Option<&Path>) -> std::path::PathBuf {
    let (Some(home), Ok(rest)) = (home, path.strip_prefix("~")) else {
        return path.to_path_buf();
    };
    home.join(rest)
}

/// Writes the rows passing the filter, in their order, to a file only its owner can read (it
/// holds VINs and user ids), in the format its extension names: a JSON array for `.json`, JSON
/// lines (as `vtriage check --json`) for `.jsonl`/`.ndjson`, CSV for `.csv`, a Markdown ticket
/// section per vehicle (as `vtriage vehicle --markdown`) for `.md`. Returns how many vehicles.
pub fn export(
    store: &Store,
    path: &Path,
    policies: &crate::health::Policies,
    now: jiff::Timestamp,
) -> Result<usize, ExportError> {
    let format = ExportFormat::of(path)?;
    Ok(match format {
        ExportFormat::JsonArray => {
            let summaries = summaries(store);
            let array: Vec<serde_json::Value> =
                summaries.iter().map(crate::report::vehicle_json).collect();
            let mut out = std::io::BufWriter::new(crate::private_files::create_file(path)?);
            serde_json::to_writer_pretty(&mut out, &array).map_err(std::io::Error::other)?;
            std::io::Write::write_all(&mut out, b"\n")?;
            std::io::Write::flush(&mut out)?;
            summaries.len()
        }
        ExportFormat::JsonLines => {
            let summaries = summaries(store);
            let mut out = std::io::BufWriter::new(crate::private_files::create_file(path)?);
            crate::report::write_json_lines(&mut out, &summaries)?;
            std::io::Write::flush(&mut out)?;
            summaries.len()
        }
        ExportFormat::Markdown => {
            let summaries = summaries(store);
            let mut out = std::io::BufWriter::new(crate::private_files::create_file(path)?);
            for (i, summary) in summaries.iter().enumerate() {
                if i > 0 {
                    std::io::Write::write_all(&mut out, b"\n")?;
                }
                let section = crate::report::markdown(summary, policies, now);
                std::io::Write::write_all(&mut out, section.as_bytes())?;
            }
            std::io::Write::flush(&mut out)?;
            summaries.len()
        }
        ExportFormat::Csv => export_csv(store, path)?,
    })
}

/// Carries out `:export PATH` (`~` read as `home`): the line for the footer says what was written
/// (format, how many vehicles) and where (the whole path), or why nothing was.
pub fn export_as_asked(app: &App, path: &Path, home: Option<&Path>) -> Msg {
    let path = expand_home(path, home);
    let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    let shown = crate::untrusted::text::one_line(&shown.display().to_string()).into_owned();
    match export(&app.store, &path, &app.config.policies, app.now) {
        Ok(n) => Msg::EffectDone(format!(
            "exported {} vehicle{} as {} to {shown} (owner-only)",
            crate::tui::widgets::grouped(n),
            if n == 1 { "" } else { "s" },
            ExportFormat::of(&path).map_or("?", ExportFormat::name),
        )),
        Err(e @ ExportError::UnknownFormat { .. }) => {
            Msg::EffectFailed(format!("not exported: {e}"))
        }
        Err(ExportError::Io(e)) => Msg::EffectFailed(format!("could not export to {shown}: {e}")),
    }
}

/// Writes the rows passing the filter, in their order, as the report module's CSV.
pub fn export_csv(store: &Store, path: &Path) -> std::io::Result<usize> {
    let summaries = summaries(store);
    let mut out = std::io::BufWriter::new(crate::private_files::create_file(path)?);
    crate::report::write_csv(&mut out, &summaries)?;
    std::io::Write::flush(&mut out)?;
    Ok(summaries.len())
}

/// The rows passing the filter, in their order, as the reports take them.
fn summaries(store: &Store) -> Vec<crate::report::VehicleSummary<'_>> {
    store
        .rows(0..store.visible_len())
        .map(crate::report::VehicleSummary::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tick_comes_due_while_events_arrive_faster_than_its_period() {
        let (tx, mut rx) = unbounded_channel::<u32>();
        let total = 60;
        let producer = tokio::spawn(async move {
            for i in 0..total {
                if tx.send(i).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut ticker = Ticker::new();
        let mut received = 0;
        loop {
            tokio::select! {
                Some(_) = rx.recv() => received += 1,
                () = ticker.wait(Duration::from_millis(400)) => break,
            }
        }
        assert!(
            received < total,
            "the tick waited for the stream of events to end ({received} events first)"
        );
        producer.abort();
    }
}
