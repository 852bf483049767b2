//! The dashboard's state and its one `update`: every key, tick and store event goes through it and comes
//! out as state changes plus effects for the runtime. No terminal, no clock: tests drive it directly.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Constraint, Layout, Rect};

use crate::fetch::{Command, Event, Priority};
use crate::health::{Needs, Policies, Status};
use crate::store::{SortColumn, Store, VehicleRecord};
use crate::tui::clipboard;
use crate::tui::keymap::{Action, KeyContext, Keymap};
use crate::tui::theme::Theme;
use crate::tui::widgets::{LineInput, window_offset};
use crate::untrusted::LinkPolicy;
use crate::untrusted::text::one_line;

/// What the dashboard is started with, besides the store and the scheduler's channels.
#[derive(Debug, Clone)]
pub struct TuiConfig {
    /// `DEMO` or `LIVE`.
    pub mode_label: String,
    /// The Vehicle API origin the data comes from.
    pub origin: String,
    /// The rules shown in the deadline strip.
    pub policies: Policies,
    /// What the app needs (the permissions grid marks what is needed but missing).
    pub needs: Needs,
    pub theme: Theme,
    pub keymap: Keymap,
    /// Mouse wheel and click; off by default so the terminal's text selection keeps working.
    pub mouse: bool,
    /// Fix links on the vehicle page are OSC 8 hyperlinks (clickable whole in terminals that know them).
    pub hyperlinks: bool,
    /// What went wrong while starting (a bad `policies.toml`, unreadable token lines): shown in the
    /// header and the help, since nothing printed before the dashboard is seen until it quits.
    pub warnings: Vec<String>,
    /// Rows are probed as they scroll into view (the demo). Live, only what the agent asks for is
    /// probed: an opened vehicle, `r`, `:user`, `:vin`, `:sweep`, and the refresh of opened vehicles.
    pub probe_visible: bool,
    /// Vehicles opened in this session are probed again this often (the freshness window still
    /// decides whether a probe spends anything).
    pub refresh_every: std::time::Duration,
    /// Which way copies go in this session, for the help (the runtime finds the clipboard).
    pub copying: String,
    /// A VIN lookup that would spend more than this share of the budget left asks first.
    pub confirm_lookup_share: f64,
}

impl Default for TuiConfig {
    fn default() -> Self {
        TuiConfig {
            mode_label: "DEMO".into(),
            origin: String::new(),
            policies: Policies::builtin(),
            needs: Needs::default(),
            theme: Theme::default(),
            keymap: Keymap::defaults(),
            mouse: false,
            hyperlinks: true,
            warnings: Vec::new(),
            probe_visible: true,
            refresh_every: std::time::Duration::from_secs(300),
            copying: clipboard::CopyRoutes::default().describe(),
            confirm_lookup_share: 0.25,
        }
    }
}

/// Everything that can happen to the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Key(KeyEvent),
    Paste(String),
    Mouse(MouseEvent),
    Resize {
        width: u16,
        height: u16,
    },
    /// The clock moved (once a second, faster while a spinner turns): the time shown (frozen by
    /// `--now`) and the monotonic time rates are measured with.
    Tick(Timestamp, Instant),
    /// The scheduler reported something.
    Store(Event),
    /// The runtime could not carry out an effect (clipboard write, opener, export).
    EffectFailed(String),
    /// The runtime carried out an effect; a line to confirm it.
    EffectDone(String),
    /// The link to a desk server moved (up, down, refused).
    Link(crate::desk::remote::Link),
}

/// What `update` asks the runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send a command to the scheduler.
    Send(Command),
    /// Put text on the clipboard (already checked by the clipboard guard). `what` names it for the
    /// confirmation, which says which way it went.
    Copy {
        text: String,
        what: &'static str,
    },
    /// Open a link with the system opener.
    Open(String),
    /// Write the visible rows to a file, in the format its extension names (`~` is the home folder).
    Export(PathBuf),
    Quit,
}

/// How the fleet view looked when the agent drilled in, to restore on the way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMemo {
    pub filter: String,
    pub sort: (SortColumn, bool),
    pub selected: Option<String>,
    pub offset: usize,
}

/// One vehicle's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VehiclePage {
    pub vehicle_id: String,
    pub scroll: u16,
    /// `J`: the raw last responses instead of the summary.
    pub raw: bool,
}

/// A screen on the navigation stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Fleet,
    Vehicle(VehiclePage),
}

/// What has the keyboard on top of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    None,
    Filter,
    Command,
    Help { scroll: u16 },
}

/// A one-line message in the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    pub at: Timestamp,
}

/// The window requests per second are measured over.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Requests per second over the last ten seconds, from the scheduler's running count sampled at each
/// tick: when requests stop, the rate falls to 0 as the window empties, with or without events.
#[derive(Debug, Clone, Default)]
pub struct RequestRate {
    samples: VecDeque<(Instant, u64)>,
}

impl RequestRate {
    /// Records the running count of requests sent at `at`.
    pub fn sample(&mut self, at: Instant, requests_sent: u64) {
        if self.samples.back().is_some_and(|(last, _)| at < *last) {
            return;
        }
        self.samples.push_back((at, requests_sent));
        // Keep the newest sample at or before the window's start: the count the window starts from.
        while self
            .samples
            .get(1)
            .is_some_and(|(t, _)| at.duration_since(*t) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Requests per second over the window ending at the last sample.
    pub fn per_s(&self) -> f64 {
        let (Some(&(first_at, first)), Some(&(last_at, last))) =
            (self.samples.front(), self.samples.back())
        else {
            return 0.0;
        };
        // From the count the window starts from (sampled at most one tick before it) to the last.
        let span = last_at.duration_since(first_at);
        if span.is_zero() {
            return 0.0;
        }
        // A restarted scheduler counts from 0 again: no negative rate.
        last.saturating_sub(first) as f64 / span.as_secs_f64()
    }
}

/// How long a flash stays.
const FLASH_S: i64 = 4;

/// The statuses that count as faults for `f`.
const FAULTS: [Status; 3] = [Status::Blocked, Status::Degraded, Status::Warning];

/// The whole dashboard state.
pub struct App {
    pub store: Store,
    pub config: TuiConfig,
    /// The current screen is the last; the first is always the fleet.
    pub stack: Vec<Screen>,
    /// Fleet states saved when a vehicle page was pushed, one per vehicle page.
    memos: Vec<FleetMemo>,
    pub overlay: Overlay,
    pub filter_input: LineInput,
    pub command_input: LineInput,
    /// The filter before `/` was pressed, restored by Esc.
    filter_before: String,
    /// The status quick filter (`1`-`5`, `f`) while `/` edits the rest of the filter: it stays a term
    /// of its own, shown before the line, so what is typed narrows it instead of being appended to it.
    pub filter_quick: String,
    /// The live filter text does not parse: why.
    pub filter_error: Option<String>,
    /// First table row on screen.
    pub offset: usize,
    pub width: u16,
    pub height: u16,
    pub now: Timestamp,
    pub flash: Option<Flash>,
    /// When the fleet was last listed.
    pub listed_at: Option<Timestamp>,
    /// When the store last changed.
    pub updated_at: Option<Timestamp>,
    /// Ids last asked for at Visible priority, to ask again only when the window changes.
    last_visible: Vec<String>,
    /// Vehicles the agent opened, oldest first: refreshed every `refresh_every`.
    opened: Vec<String>,
    /// When the opened vehicles were last refreshed.
    refreshed_at: Option<jiff::Timestamp>,
    /// Something changed since the last draw.
    pub dirty: bool,
    /// The selection sticks to the first row while results re-sort the fleet, until the agent moves it:
    /// otherwise the first vehicle, once probed, would drag the view down with it.
    pub pin_top: bool,
    /// The agent started a sweep with `:sweep` (its estimated cost is no longer offered).
    pub sweep_started: bool,
    /// Animation ticks so far: drives the spinner even when the clock is frozen by `--now`.
    pub spin: u64,
    /// Requests per second as shown.
    pub rate: RequestRate,
    /// A VIN lookup under way (`:vin` or a whole VIN in `/`): its vehicle opens when found.
    pub vin_lookup: Option<String>,
    /// A VIN lookup waiting for `y`: its check digit does not fit, or it costs much of the budget.
    pub vin_confirm: Option<(crate::smartcar::vin::DecodedVin, VinAsk)>,
    /// When verdicts that time alone can change were last diagnosed again.
    rediagnosed_at: Option<Timestamp>,
    pub quit: bool,
    /// Reading a desk server: whether the link is up, and who else waits for probes.
    pub link: Option<crate::desk::remote::Link>,
}

/// Where each part of the fleet view goes. Computed by one function for both drawing and input, so
/// paging and mouse clicks land on the rows that are drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetLayout {
    pub header: Rect,
    pub progress: Rect,
    /// One line per rule shown (at most three).
    pub deadlines: Vec<Rect>,
    pub counts: Rect,
    /// The filter line, when a filter is typed or set.
    pub filter: Option<Rect>,
    /// The table: its header row, then the body.
    pub table: Rect,
    pub footer: Rect,
}

impl FleetLayout {
    /// Rules shown in the deadline strip.
    pub const MAX_DEADLINES: usize = 3;

    pub fn of(app: &App, area: Rect) -> FleetLayout {
        let rules = app.config.policies.rules.len().min(Self::MAX_DEADLINES);
        let show_filter = app.overlay == Overlay::Filter || !app.store.filter_text().is_empty();
        let mut constraints = vec![Constraint::Length(1), Constraint::Length(1)];
        constraints.extend((0..rules).map(|_| Constraint::Length(1)));
        constraints.push(Constraint::Length(1));
        if show_filter {
            constraints.push(Constraint::Length(1));
        }
        constraints.push(Constraint::Fill(1));
        constraints.push(Constraint::Length(1));
        let areas = Layout::vertical(constraints).split(area);
        let mut next = areas.iter().copied();
        let mut take = || next.next().unwrap_or_default();
        FleetLayout {
            header: take(),
            progress: take(),
            deadlines: (0..rules).map(|_| take()).collect(),
            counts: take(),
            filter: show_filter.then(&mut take),
            table: take(),
            footer: take(),
        }
    }

    /// Table rows below the table's header row.
    pub fn body_height(&self) -> usize {
        usize::from(self.table.height.saturating_sub(1))
    }

    /// The screen row of the table body's first line.
    pub fn body_top(&self) -> u16 {
        self.table.y.saturating_add(1)
    }
}

/// A left click on a fleet row: the first click selects the vehicle, a click on the selected row opens
/// it (the open action). Returns whether the click landed on a row.
fn click_row(app: &mut App, screen_row: u16, effects: &mut Vec<Effect>) -> bool {
    if app.overlay != Overlay::None || !matches!(app.screen(), Screen::Fleet) {
        return false;
    }
    let body_top = app.fleet_layout().body_top();
    let Some(line) = screen_row.checked_sub(body_top).map(usize::from) else {
        return false;
    };
    if line >= app.table_height() {
        return false;
    }
    let Some(id) = app
        .store
        .row(app.offset + line)
        .map(|r| r.vehicle_id.clone())
    else {
        return false;
    };
    if app.store.selected().is_some_and(|r| r.vehicle_id == id) {
        fleet_action(app, Action::Open, effects);
    } else {
        app.store.select(Some(&id));
        app.follow_selection(effects);
    }
    true
}

impl App {
    pub fn new(store: Store, config: TuiConfig, now: Timestamp) -> App {
        App {
            store,
            config,
            stack: vec![Screen::Fleet],
            memos: Vec::new(),
            overlay: Overlay::None,
            filter_input: LineInput::default(),
            command_input: LineInput::default(),
            filter_before: String::new(),
            filter_quick: String::new(),
            filter_error: None,
            offset: 0,
            width: 80,
            height: 24,
            now,
            flash: None,
            listed_at: None,
            updated_at: None,
            last_visible: Vec::new(),
            opened: Vec::new(),
            refreshed_at: None,
            dirty: true,
            spin: 0,
            rate: RequestRate::default(),
            sweep_started: false,
            pin_top: true,
            vin_lookup: None,
            vin_confirm: None,
            rediagnosed_at: None,
            quit: false,
            link: None,
        }
    }

    pub fn screen(&self) -> &Screen {
        self.stack.last().unwrap_or(&Screen::Fleet)
    }

    /// The vehicle page on screen, if any.
    pub fn page(&self) -> Option<&VehiclePage> {
        match self.screen() {
            Screen::Vehicle(page) => Some(page),
            Screen::Fleet => None,
        }
    }

    fn page_mut(&mut self) -> Option<&mut VehiclePage> {
        match self.stack.last_mut() {
            Some(Screen::Vehicle(page)) => Some(page),
            _ => None,
        }
    }

    /// The record of the vehicle page on screen.
    pub fn page_vehicle(&self) -> Option<&VehicleRecord> {
        self.page().and_then(|p| self.store.vehicle(&p.vehicle_id))
    }

    /// Where keys go now.
    pub fn context(&self) -> KeyContext {
        match self.overlay {
            Overlay::Filter => KeyContext::FilterInput,
            Overlay::Command => KeyContext::CommandInput,
            Overlay::Help { .. } => KeyContext::Help,
            Overlay::None => match self.screen() {
                Screen::Fleet => KeyContext::Fleet,
                Screen::Vehicle(_) => KeyContext::Vehicle,
            },
        }
    }

    /// Table rows that fit on screen.
    /// The fleet view's layout on this terminal.
    pub fn fleet_layout(&self) -> FleetLayout {
        FleetLayout::of(self, Rect::new(0, 0, self.width, self.height))
    }

    pub fn table_height(&self) -> usize {
        self.fleet_layout().body_height()
    }

    /// Whether something animates (a probe under way on screen), so ticks should come faster.
    pub fn is_animating(&self) -> bool {
        match self.screen() {
            Screen::Vehicle(_) => self.page_vehicle().is_some_and(|v| v.probing),
            Screen::Fleet => self
                .store
                .rows(self.offset..self.offset + self.table_height())
                .any(|r| r.probing),
        }
    }

    /// The flash still showing at `now`.
    pub fn visible_flash(&self) -> Option<&Flash> {
        // A question waiting for its answer, or a lookup under way, stays on screen.
        let held = self.vin_confirm.is_some() || self.vin_lookup.is_some();
        self.flash
            .as_ref()
            .filter(|f| held || self.now.as_second() - f.at.as_second() < FLASH_S)
    }

    fn say(&mut self, text: impl Into<String>) {
        self.flash = Some(Flash {
            text: text.into(),
            error: false,
            at: self.now,
        });
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.flash = Some(Flash {
            text: text.into(),
            error: true,
            at: self.now,
        });
    }

    /// Keeps the selection on screen, and asks for the rows on screen to be probed when they changed.
    fn follow_selection(&mut self, effects: &mut Vec<Effect>) {
        self.keep_selection_on_screen();
        if self.page().is_some() {
            return;
        }
        let height = self.table_height();
        let ids = self.store.visible_ids(self.offset..self.offset + height);
        let mut set = ids.clone();
        set.sort_unstable();
        // The same vehicles in another order (results re-sorted them) need no new probes.
        if set != self.last_visible {
            self.last_visible = set;
            if !ids.is_empty() && self.config.probe_visible {
                effects.push(Effect::Send(Command::Probe {
                    vehicle_ids: ids,
                    priority: Priority::Visible,
                    force: false,
                }));
            }
        }
    }

    /// Keeps the selection on screen without asking for probes: used when results reorder rows, so
    /// that probed rows moving away do not pull new rows in and sweep the fleet by chain reaction.
    fn keep_selection_on_screen(&mut self) {
        let height = self.table_height();
        self.offset = window_offset(
            self.store.visible_len(),
            height,
            self.store.selected_index(),
            self.offset,
        );
    }
}

/// Applies one message; returns what the runtime must do.
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    let mut effects = Vec::new();
    match msg {
        Msg::Key(key) => {
            if key.kind == KeyEventKind::Release {
                return effects;
            }
            on_key(app, key, &mut effects);
            app.dirty = true;
        }
        Msg::Paste(text) => {
            match app.overlay {
                Overlay::Filter => {
                    app.filter_input.insert(&text);
                    apply_live_filter(app, &mut effects);
                }
                Overlay::Command => app.command_input.insert(&text),
                _ => {}
            }
            app.dirty = true;
        }
        Msg::Mouse(mouse) => {
            if app.config.mouse {
                match mouse.kind {
                    MouseEventKind::ScrollDown => move_by(app, Action::Down, &mut effects),
                    MouseEventKind::ScrollUp => move_by(app, Action::Up, &mut effects),
                    MouseEventKind::Down(MouseButton::Left) => {
                        if !click_row(app, mouse.row, &mut effects) {
                            return effects;
                        }
                    }
                    _ => return effects,
                }
                app.dirty = true;
            }
        }
        Msg::Resize { width, height } => {
            app.width = width;
            app.height = height;
            app.follow_selection(&mut effects);
            app.dirty = true;
        }
        Msg::Tick(now, at) => {
            let second_changed = now.as_second() != app.now.as_second();
            app.now = now;
            let before = app.rate.per_s();
            app.rate.sample(at, app.store.progress().requests_sent);
            // Shown with one decimal: redraw when that changes, frozen clock or not.
            app.dirty |= format!("{before:.1}") != format!("{:.1}", app.rate.per_s());
            if app.is_animating() {
                app.spin = app.spin.wrapping_add(1);
                app.dirty = true;
            }
            app.dirty |= second_changed;
            rediagnose_as_time_passes(app);
            refresh_opened(app, &mut effects);
            probe_watched(app, &mut effects);
            watch_news(app);
        }
        Msg::Store(event) => {
            vin_lookup_news(app, &event, &mut effects);
            if matches!(event, Event::ConnectionsListed { .. }) {
                app.listed_at = Some(app.now);
            }
            let first_listing =
                matches!(event, Event::ConnectionsListed { .. }) && app.last_visible.is_empty();
            let had_selection = app.store.selected().is_some();
            if crate::feed::apply(&mut app.store, &event, app.now) {
                app.updated_at = Some(app.now);
                if (!had_selection || app.pin_top) && app.page().is_none() {
                    app.store.select_first();
                }
                if first_listing {
                    app.follow_selection(&mut effects);
                } else {
                    app.keep_selection_on_screen();
                }
                watch_news(app);
                app.dirty = true;
            }
        }
        Msg::EffectFailed(text) => {
            app.complain(text);
            app.dirty = true;
        }
        Msg::EffectDone(text) => {
            app.say(text);
            app.dirty = true;
        }
        Msg::Link(link) => {
            app.dirty |= app.link.as_ref() != Some(&link);
            app.link = Some(link);
        }
    }
    effects
}

fn on_key(app: &mut App, key: KeyEvent, effects: &mut Vec<Effect>) {
    if let Some((vin, asked)) = app.vin_confirm.take() {
        // The answer to "look it up?": `y` goes on, any other key sends nothing.
        match (key.code, asked) {
            (KeyCode::Char('y'), VinAsk::CheckDigit) => ask_cost_or_send(app, vin, effects),
            (KeyCode::Char('y'), VinAsk::Cost) => send_vin_lookup(app, vin, effects),
            _ => app.say(format!("VIN {} not looked up: nothing was sent", vin.vin)),
        }
        return;
    }
    if key.code == KeyCode::Esc
        && matches!(app.context(), KeyContext::Fleet | KeyContext::Vehicle)
        && let Some(vin) = app.vin_lookup.clone()
    {
        // Esc stops the lookup; what it read is kept.
        effects.push(Effect::Send(Command::CancelVinLookup));
        if app.link.is_some() {
            app.vin_lookup = None;
            app.say(format!(
                "VIN {vin}: no longer waiting for the desk's lookup"
            ));
        } else {
            app.say(format!("VIN {vin}: cancelling the lookup…"));
        }
        return;
    }
    let context = app.context();
    let action = app.config.keymap.action_for_event(context, &key);
    match (context, action) {
        (_, Some(Action::Quit)) => {
            app.quit = true;
            effects.push(Effect::Quit);
        }
        (KeyContext::FilterInput, action) => filter_key(app, key, action, effects),
        (KeyContext::CommandInput, action) => command_key(app, key, action, effects),
        (KeyContext::Help, Some(Action::Back)) => app.overlay = Overlay::None,
        (KeyContext::Help, Some(Action::Up)) => {
            if let Overlay::Help { scroll } = &mut app.overlay {
                *scroll = scroll.saturating_sub(1);
            }
        }
        (
            KeyContext::Help,
            Some(
                action @ (Action::Down
                | Action::PageUp
                | Action::PageDown
                | Action::Top
                | Action::Bottom),
            ),
        ) => {
            let max = crate::tui::views::help_max_scroll(app);
            let page = app.height.saturating_sub(4).max(1);
            if let Overlay::Help { scroll } = &mut app.overlay {
                *scroll = match action {
                    Action::Down => scroll.saturating_add(1),
                    Action::PageUp => scroll.saturating_sub(page),
                    Action::PageDown => scroll.saturating_add(page),
                    Action::Top => 0,
                    _ => max,
                }
                .min(max);
            }
        }
        (_, Some(Action::Help)) => app.overlay = Overlay::Help { scroll: 0 },
        (_, Some(Action::Command)) => {
            app.command_input.start("");
            app.overlay = Overlay::Command;
        }
        (KeyContext::Fleet, Some(action)) => fleet_action(app, action, effects),
        (KeyContext::Vehicle, Some(action)) => vehicle_action(app, action, effects),
        _ => {}
    }
}

fn fleet_action(app: &mut App, action: Action, effects: &mut Vec<Effect>) {
    match action {
        Action::Up
        | Action::Down
        | Action::PageUp
        | Action::PageDown
        | Action::Top
        | Action::Bottom => {
            move_by(app, action, effects);
        }
        Action::Open => {
            if let Some(id) = app.store.selected().map(|r| r.vehicle_id.clone()) {
                open_vehicle(app, id, effects);
            }
        }
        Action::Filter => {
            app.filter_before = app.store.filter_text().to_string();
            // The quick filter stays a term of its own; the line holds the rest, cursor at its end.
            let (quick, rest) = split_quick(&app.filter_before);
            app.filter_quick = quick;
            app.filter_input.start(&rest);
            app.filter_error = None;
            app.overlay = Overlay::Filter;
        }
        Action::ClearFilter if !app.store.filter_text().is_empty() => {
            set_filter(app, "", effects);
        }
        Action::SortNext => {
            let (column, descending) = app.store.sort();
            let i = SortColumn::ALL
                .iter()
                .position(|c| *c == column)
                .unwrap_or(0);
            let next = SortColumn::ALL[(i + 1) % SortColumn::ALL.len()];
            // Status reads best worst-first; every other column starts ascending.
            app.store.set_sort(
                next,
                next == SortColumn::Status || (next == column && descending),
            );
            app.say(format!("sorted by {}", next.label()));
            app.follow_selection(effects);
        }
        Action::SortReverse => {
            let (column, descending) = app.store.sort();
            app.store.set_sort(column, !descending);
            app.say(format!(
                "sorted by {} {}",
                column.label(),
                if descending {
                    "ascending"
                } else {
                    "descending"
                }
            ));
            app.follow_selection(effects);
        }
        Action::FaultsOnly => toggle_status_filter(app, &FAULTS, effects),
        Action::OnlyBlocked => toggle_status_filter(app, &[Status::Blocked], effects),
        Action::OnlyDegraded => toggle_status_filter(app, &[Status::Degraded], effects),
        Action::OnlyWarning => toggle_status_filter(app, &[Status::Warning], effects),
        Action::OnlyHealthy => toggle_status_filter(app, &[Status::Healthy], effects),
        Action::OnlyUnknown => toggle_status_filter(app, &[Status::Unknown], effects),
        Action::Reprobe => {
            if let Some(id) = app.store.selected().map(|r| r.vehicle_id.clone()) {
                reprobe(app, id, effects);
            }
        }
        Action::Watch => {
            if let Some(id) = app.store.selected().map(|r| r.vehicle_id.clone()) {
                toggle_watch(app, &id);
            }
        }
        _ => {}
    }
}

fn vehicle_action(app: &mut App, action: Action, effects: &mut Vec<Effect>) {
    let Some(record) = app.page_vehicle() else {
        if action == Action::Back {
            go_back(app, effects);
        }
        return;
    };
    // Only the copy and open actions read the packed evidence; scrolling does not unpack it.
    let diagnosis = if matches!(
        action,
        Action::CopyFixLink | Action::CopyReply | Action::OpenLink
    ) {
        record.diagnosis()
    } else {
        crate::health::Diagnosis::unknown()
    };
    let main = diagnosis.main_finding();
    // Vetted again here: a diagnosis read back from a snapshot was made under whatever rules wrote it.
    let links = LinkPolicy::new(&app.config.needs.connect_origin);
    let fix_link = diagnosis
        .findings
        .iter()
        .filter_map(|f| f.remedy.link.as_deref())
        .find(|l| links.allows(l))
        .map(str::to_string);
    match action {
        Action::Back => go_back(app, effects),
        Action::Up
        | Action::Down
        | Action::PageUp
        | Action::PageDown
        | Action::Top
        | Action::Bottom => {
            let page = usize::from(app.height.saturating_sub(6)).max(1) as u16;
            let max = crate::tui::views::vehicle_page_max_scroll(app);
            if let Some(p) = app.page_mut() {
                p.scroll = match action {
                    Action::Up => p.scroll.saturating_sub(1),
                    Action::Down => p.scroll.saturating_add(1),
                    Action::PageUp => p.scroll.saturating_sub(page),
                    Action::PageDown => p.scroll.saturating_add(page),
                    Action::Top => 0,
                    _ => max,
                }
                .min(max);
            }
        }
        Action::CopyFixLink => match fix_link {
            Some(link) => copy(app, link, fix_link_name(&diagnosis), effects),
            None => app.complain("no fix link for this vehicle"),
        },
        Action::CopyReply => match main
            .map(|f| f.remedy.customer_reply.clone())
            .filter(|r| !r.is_empty())
        {
            Some(reply) => copy(app, reply, "customer reply", effects),
            None => app.complain("no customer reply: nothing is wrong with this vehicle"),
        },
        Action::CopyEvidence => {
            let text = escalation_text(record);
            copy(app, text, "evidence for escalation", effects);
        }
        Action::OpenLink => match fix_link {
            Some(link) => {
                app.say(format!("opening {}", one_line(&link)));
                effects.push(Effect::Open(link));
            }
            None => app.complain("no link to open for this vehicle"),
        },
        Action::Reprobe => {
            let id = record.vehicle_id.clone();
            reprobe(app, id, effects);
        }
        Action::Watch => {
            let id = record.vehicle_id.clone();
            toggle_watch(app, &id);
        }
        Action::RawJson => {
            if let Some(p) = app.page_mut() {
                p.raw = !p.raw;
                p.scroll = 0;
            }
        }
        _ => {}
    }
}

/// "pairing link" for a virtual key, "re-authentication link" for Connect, "fix link" otherwise.
fn fix_link_name(diagnosis: &crate::health::Diagnosis) -> &'static str {
    use crate::health::RemedyKind;
    match diagnosis
        .findings
        .iter()
        .find(|f| f.remedy.link.is_some())
        .map(|f| f.remedy.kind)
    {
        Some(RemedyKind::AddVirtualKey) => "pairing link",
        Some(RemedyKind::Reauthenticate) => "re-authentication link",
        _ => "fix link",
    }
}

fn copy(app: &mut App, text: String, what: &'static str, effects: &mut Vec<Effect>) {
    let text = clipboard::clean(&text).into_owned();
    match clipboard::guard(&text, &[]) {
        // The runtime says which way it went: only it knows whether a clipboard took the text.
        Ok(()) => effects.push(Effect::Copy { text, what }),
        Err(refused) => app.complain(refused.to_string()),
    }
}

/// `w`: starts or stops watching a car. Without a desk it is probed again on a backoff; on a desk
/// its changes arrive on the stream anyway, so watching costs no request.
fn toggle_watch(app: &mut App, id: &str) {
    use crate::store::watch::{MAX_BACKOFF, Toggle, backoff};
    let Some(record) = app.store.vehicle(id) else {
        return;
    };
    let by_probe = app.link.is_none();
    let record = record.clone();
    match app.store.watches.toggle(&record, app.now, by_probe) {
        Toggle::Started if by_probe => app.say(format!(
            "watching {id}: probed again in {} min, then less often (at most every {} min)",
            backoff(0).as_mins(),
            MAX_BACKOFF.as_mins()
        )),
        Toggle::Started => app.say(format!(
            "watching {id}: the desk's webhooks and probes tell when it recovers (no request)"
        )),
        Toggle::Stopped => app.say(format!("stopped watching {id}")),
        Toggle::NothingToWatch(status) => app.complain(format!(
            "nothing to watch: {id} is {}, not failing",
            status.label()
        )),
    }
}

/// Asks again for the watched cars whose backoff ran out, at Visible priority: inside the budget,
/// after what the agent is looking at.
fn probe_watched(app: &mut App, effects: &mut Vec<Effect>) {
    if app.link.is_some() || app.store.watches.is_empty() {
        return;
    }
    let due = app.store.watches.due(app.now);
    if !due.is_empty() {
        effects.push(Effect::Send(Command::Probe {
            vehicle_ids: due,
            priority: Priority::Visible,
            force: true,
        }));
    }
}

/// Tells the agent when a watched car recovered.
fn watch_news(app: &mut App) {
    if app.store.watches.is_empty() {
        return;
    }
    let recovered = app.store.check_watches(app.now);
    for (id, r) in recovered {
        app.say(format!(
            "✓ {id} recovered at {} ({})",
            r.at.strftime("%H:%M"),
            r.cause.label()
        ));
        app.dirty = true;
    }
}

fn reprobe(app: &mut App, id: String, effects: &mut Vec<Effect>) {
    app.say(format!("re-probing {id}"));
    effects.push(Effect::Send(Command::Probe {
        vehicle_ids: vec![id],
        priority: Priority::Focus,
        force: true,
    }));
}

/// The text an agent pastes into an escalation to Smartcar: vehicle, status, and each request as evidence.
pub fn escalation_text(record: &VehicleRecord) -> String {
    let mut out = String::new();
    let label = record
        .attributes
        .as_ref()
        .map(|a| format!("{} {} {}", one_line(&a.make), one_line(&a.model), a.year))
        .unwrap_or_else(|| "unknown vehicle".into());
    // Each field on one line: a line break from the server cannot forge a line of evidence.
    out.push_str(&format!(
        "Vehicle {} ({label}), VIN {}, user {}\n",
        one_line(&record.vehicle_id),
        one_line(record.vin.as_deref().unwrap_or("unknown")),
        one_line(&record.user_id)
    ));
    let diagnosis = record.diagnosis();
    out.push_str(&format!("Status {}", diagnosis.status.label()));
    if let Some(since) = record.failing_since {
        out.push_str(&format!(
            ", first seen failing {}",
            crate::report::format_instant(since)
        ));
    }
    out.push('\n');
    for f in &diagnosis.findings {
        out.push_str(&format!(
            "- {} [{}]: {}",
            one_line(&f.id),
            f.severity.label(),
            one_line(&f.title)
        ));
        if let Some(rule) = &f.rule {
            out.push_str(&format!(" (rule {})", one_line(rule)));
        }
        out.push('\n');
        for e in &f.evidence {
            out.push_str(&format!("  {}", one_line(&e.endpoint)));
            if let Some(s) = e.http_status {
                out.push_str(&format!(" -> {s}"));
            }
            if let Some(v) = &e.value {
                out.push_str(&format!(" -> {}", one_line(v)));
            }
            if let Some(tc) = &e.type_code {
                out.push_str(&format!(" {}", one_line(tc)));
            }
            if let Some(id) = &e.request_id {
                out.push_str(&format!(" request-id {}", one_line(id)));
            }
            if let Some(id) = &e.event_id {
                out.push_str(&format!(" event-id {}", one_line(id)));
            }
            if let Some(t) = e.delivered_at {
                out.push_str(&format!(" delivered {t}"));
            }
            out.push_str(&format!(" at {}\n", e.at));
        }
    }
    out
}

fn move_by(app: &mut App, action: Action, effects: &mut Vec<Effect>) {
    if app.page().is_some() {
        return;
    }
    let page = app.table_height().max(1);
    app.pin_top = action == Action::Top;
    match action {
        Action::Up => app.store.select_prev(1),
        Action::Down => app.store.select_next(1),
        Action::PageUp => app.store.select_prev(page),
        Action::PageDown => app.store.select_next(page),
        Action::Top => app.store.select_first(),
        Action::Bottom => app.store.select_last(),
        _ => {}
    }
    app.follow_selection(effects);
}

/// Countdowns run out and data goes stale without a probe: once a minute of the shown clock, the
/// verdicts that time can change are diagnosed again from their evidence.
fn rediagnose_as_time_passes(app: &mut App) {
    let due = app
        .rediagnosed_at
        .is_none_or(|at| app.now.duration_since(at) >= jiff::SignedDuration::from_secs(60));
    if !due {
        return;
    }
    app.rediagnosed_at = Some(app.now);
    if app.store.rediagnose_time_dependent(app.now) {
        app.keep_selection_on_screen();
        app.dirty = true;
    }
}

/// Asks again for the vehicles opened in this session once `refresh_every` has passed.
fn refresh_opened(app: &mut App, effects: &mut Vec<Effect>) {
    let every = jiff::SignedDuration::try_from(app.config.refresh_every)
        .unwrap_or(jiff::SignedDuration::MAX);
    let due = app
        .refreshed_at
        .is_some_and(|at| app.now.duration_since(at) >= every);
    if app.opened.is_empty() || app.refreshed_at.is_none() {
        app.refreshed_at = Some(app.now);
        return;
    }
    if due {
        app.refreshed_at = Some(app.now);
        effects.push(Effect::Send(Command::Probe {
            vehicle_ids: app.opened.clone(),
            priority: Priority::Visible,
            force: false,
        }));
    }
}

fn open_vehicle(app: &mut App, vehicle_id: String, effects: &mut Vec<Effect>) {
    app.pin_top = false;
    if !app.opened.contains(&vehicle_id) {
        app.opened.push(vehicle_id.clone());
    }
    app.memos.push(FleetMemo {
        filter: app.store.filter_text().to_string(),
        sort: app.store.sort(),
        selected: app.store.selected().map(|r| r.vehicle_id.clone()),
        offset: app.offset,
    });
    effects.push(Effect::Send(Command::Probe {
        vehicle_ids: vec![vehicle_id.clone()],
        priority: Priority::Focus,
        force: false,
    }));
    app.stack.push(Screen::Vehicle(VehiclePage {
        vehicle_id,
        scroll: 0,
        raw: false,
    }));
}

fn go_back(app: &mut App, effects: &mut Vec<Effect>) {
    if app.stack.len() <= 1 {
        return;
    }
    app.stack.pop();
    if let Some(memo) = app.memos.pop() {
        if let Err(e) = app.store.set_filter(&memo.filter) {
            app.complain(e.to_string());
        }
        app.store.set_sort(memo.sort.0, memo.sort.1);
        app.store.select(memo.selected.as_deref());
        app.offset = memo.offset;
        app.pin_top = false;
    }
    app.follow_selection(effects);
}

fn set_filter(app: &mut App, text: &str, effects: &mut Vec<Effect>) -> bool {
    match app.store.set_filter(text) {
        Ok(()) => {
            app.filter_error = None;
            // The best match is on top: select it, so Enter opens it.
            app.store.select_first();
            app.pin_top = true;
            app.offset = 0;
            app.follow_selection(effects);
            true
        }
        Err(e) => {
            app.filter_error = Some(e.to_string());
            false
        }
    }
}

fn apply_live_filter(app: &mut App, effects: &mut Vec<Effect>) {
    let text = with_quick(&app.filter_quick, app.filter_input.text());
    set_filter(app, &text, effects);
}

/// Splits a filter into its status terms (what `1`-`5` and `f` set) and the rest, each in its order.
fn split_quick(filter: &str) -> (String, String) {
    let (quick, rest): (Vec<&str>, Vec<&str>) = filter
        .split_whitespace()
        .partition(|t| t.to_ascii_lowercase().starts_with("status:"));
    (quick.join(" "), rest.join(" "))
}

/// The whole filter: the quick filter's terms, then the typed text.
fn with_quick(quick: &str, typed: &str) -> String {
    match (quick.is_empty(), typed.trim().is_empty()) {
        (true, _) => typed.to_string(),
        (false, true) => quick.to_string(),
        (false, false) => format!("{quick} {typed}"),
    }
}

/// Toggles a `status:` term in the filter text (kept visible and editable with `/`).
fn toggle_status_filter(app: &mut App, statuses: &[Status], effects: &mut Vec<Effect>) {
    let term = format!(
        "status:{}",
        statuses
            .iter()
            .map(|s| s.label().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(",")
    );
    let current = app.store.filter_text().to_string();
    let had = current
        .split_whitespace()
        .any(|t| t.eq_ignore_ascii_case(&term));
    let mut terms: Vec<&str> = current
        .split_whitespace()
        .filter(|t| !t.to_ascii_lowercase().starts_with("status:"))
        .collect();
    if !had {
        terms.push(&term);
    }
    let text = terms.join(" ");
    if set_filter(app, &text, effects) {
        app.say(if had {
            "status filter off".to_string()
        } else {
            format!("showing {term}")
        });
    }
}

fn filter_key(app: &mut App, key: KeyEvent, action: Option<Action>, effects: &mut Vec<Effect>) {
    match action {
        Some(Action::Submit) => {
            let typed = app.filter_input.text().trim().to_string();
            // A whole VIN names one car: it opens as with `:vin`, whatever the quick filter hid.
            let vin = crate::smartcar::vin::decode_at(&typed, app.now).ok();
            if vin.is_some() {
                app.filter_quick.clear();
            }
            let whole = with_quick(&app.filter_quick, &typed);
            if set_filter(app, &whole, effects) {
                // The history keeps whole filters, so a recalled one is the filter as it was.
                app.filter_input.start(&whole);
                app.filter_input.submit();
                app.overlay = Overlay::None;
                if let Some(vin) = vin {
                    open_by_vin(app, vin, effects);
                }
            }
            // Otherwise the line stays open with the text so the agent can fix it.
        }
        // Backspace on an empty line takes the quick filter away, as it would a character before it.
        None if key.code == KeyCode::Backspace
            && app.filter_input.text().is_empty()
            && !app.filter_quick.is_empty() =>
        {
            app.filter_quick.clear();
            apply_live_filter(app, effects);
        }
        Some(Action::Cancel) => {
            let before = app.filter_before.clone();
            set_filter(app, &before, effects);
            app.filter_error = None;
            app.overlay = Overlay::None;
        }
        // A recalled filter is whole: it replaces the quick filter too.
        Some(Action::HistoryPrev) => {
            if app.filter_input.history_prev() {
                app.filter_quick.clear();
                apply_live_filter(app, effects);
            }
        }
        Some(Action::HistoryNext) => {
            if app.filter_input.history_next() {
                app.filter_quick.clear();
                apply_live_filter(app, effects);
            }
        }
        _ => {
            if app.filter_input.edit(&key) {
                apply_live_filter(app, effects);
            }
        }
    }
}

fn command_key(app: &mut App, key: KeyEvent, action: Option<Action>, effects: &mut Vec<Effect>) {
    match action {
        Some(Action::Submit) => {
            let line = app.command_input.submit();
            app.overlay = Overlay::None;
            run_command(app, line.trim(), effects);
        }
        Some(Action::Cancel) => app.overlay = Overlay::None,
        Some(Action::HistoryPrev) => {
            app.command_input.history_prev();
        }
        Some(Action::HistoryNext) => {
            app.command_input.history_next();
        }
        _ => {
            app.command_input.edit(&key);
        }
    }
}

/// The command line: `vehicle ID`, `user ID`, `vin VIN`, `export PATH`, `sweep [force|stop]`, `refresh`, `q`.
fn run_command(app: &mut App, line: &str, effects: &mut Vec<Effect>) {
    let (verb, arg) = match line.split_once(char::is_whitespace) {
        Some((v, a)) => (v, a.trim()),
        None => (line, ""),
    };
    match (verb, arg) {
        ("", _) => {}
        ("q" | "quit" | "q!", _) => {
            app.quit = true;
            effects.push(Effect::Quit);
        }
        ("vehicle" | "v", id) if !id.is_empty() => {
            match app.store.find(id).map(|r| r.vehicle_id.clone()) {
                Some(id) => open_from_command(app, id, effects),
                None => app.complain(format!("no vehicle {id:?} in this fleet")),
            }
        }
        ("vin", vin) if !vin.is_empty() => {
            let exact = app
                .store
                .find(vin)
                .filter(|r| {
                    r.vin
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case(vin))
                })
                .map(|r| r.vehicle_id.clone());
            match (exact, crate::smartcar::vin::decode_at(vin, app.now)) {
                (Some(id), _) => open_from_command(app, id, effects),
                (None, Ok(decoded)) => start_vin_lookup(app, decoded, effects),
                (None, Err(e)) if vin.chars().count() == 17 => {
                    app.complain(format!("{}: {e}", one_line(vin)));
                }
                // Part of a VIN: the rows whose VIN starts so.
                (None, Err(_)) => {
                    fleet_filter_from_command(app, &format!("vin:{vin}"), effects);
                }
            }
        }
        ("user" | "u", user) if !user.is_empty() => {
            fleet_filter_from_command(app, &format!("user:{}", quote(user)), effects);
            probe_user(app, user, effects);
        }
        ("export", path) if !path.is_empty() => {
            // The format follows the extension: one that names none is refused before anything is written.
            match crate::tui::ExportFormat::of(std::path::Path::new(path)) {
                Ok(_) => effects.push(Effect::Export(PathBuf::from(path))),
                Err(e) => app.complain(format!("not exported: {e}")),
            }
        }
        ("sweep", "" | "force") => {
            let force = arg == "force";
            app.say(match app.store.sweep_cost() {
                Some((requests, eta_s)) => format!(
                    "sweep started: {requests} requests, about {}",
                    crate::health::remedy::human_seconds(eta_s)
                ),
                None => "sweep started".to_string(),
            });
            app.sweep_started = true;
            effects.push(Effect::Send(Command::StartSweep { force }));
        }
        ("sweep", "stop" | "cancel") => {
            app.say("sweep cancelled");
            app.sweep_started = false;
            effects.push(Effect::Send(Command::CancelSweep));
        }
        ("refresh", _) => {
            app.say("listing the fleet again");
            effects.push(Effect::Send(Command::RefreshConnections));
        }
        ("vehicle" | "v" | "vin" | "user" | "u" | "export", _) => app.complain(format!(
            ":{verb} needs an argument, e.g. :{verb} {}",
            example_arg(verb)
        )),
        _ => app.complain(format!(
            "unknown command :{verb}; commands: :vehicle ID, :user ID, :vin VIN, :export PATH, :sweep, :refresh, :q"
        )),
    }
}

/// Opens the car with this VIN (probed at Focus priority): the row that knows it, else the one a
/// lookup finds. `:vin` and a whole VIN in `/` both come here, so they behave the same.
fn open_by_vin(app: &mut App, vin: crate::smartcar::vin::DecodedVin, effects: &mut Vec<Effect>) {
    let known = app
        .store
        .find(&vin.vin)
        .filter(|r| {
            r.vin
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case(&vin.vin))
        })
        .map(|r| r.vehicle_id.clone());
    match known {
        Some(id) => open_from_command(app, id, effects),
        None => start_vin_lookup(app, vin, effects),
    }
}

/// Asks the scheduler to find a VIN no row knows; its cost and outcome come back as events, and the
/// vehicle found opens.
fn start_vin_lookup(
    app: &mut App,
    vin: crate::smartcar::vin::DecodedVin,
    effects: &mut Vec<Effect>,
) {
    if let Some(line) = vin.check_digit_line() {
        // Most likely a typo: nothing is spent on it unless the agent says so.
        let near: Vec<String> = app
            .store
            .nearest_vins(&vin.vin, 2)
            .into_iter()
            .map(|(id, v)| format!("{v} ({id})"))
            .collect();
        let near = if near.is_empty() {
            String::new()
        } else {
            format!("; nearest known: {}", near.join(", "))
        };
        app.complain(format!("{line}{near}. Look it up anyway? y / any key"));
        app.vin_confirm = Some((vin, VinAsk::CheckDigit));
        return;
    }
    ask_cost_or_send(app, vin, effects);
}

/// Why a VIN lookup waits for `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VinAsk {
    /// The check digit does not fit: most likely a typo.
    CheckDigit,
    /// It would spend more than [`TuiConfig::confirm_lookup_share`] of the budget left.
    Cost,
}

/// Requests a lookup of `vin` would send at most: the rows whose VIN is not known, whose user
/// has a token, and whose make and year (when known) fit.
fn vin_lookup_estimate(app: &App, vin: &crate::smartcar::vin::DecodedVin) -> u64 {
    app.store
        .all()
        .filter(|r| r.vin.is_none() && r.has_token)
        .filter(|r| {
            let Some(a) = &r.attributes else {
                return true;
            };
            let make = (!a.make.trim().is_empty())
                .then(|| vin.fits_make(&a.make))
                .flatten();
            let year = (a.year != 0).then(|| vin.fits_year(a.year)).flatten();
            make != Some(false) && year != Some(false)
        })
        .count() as u64
}

/// "of 50 left: ~9 min" after "about 67 requests": what the budget makes of a lookup's cost;
/// empty when the budget is not limited.
fn budget_phrase(requests: u64, budget_left: Option<f64>, refill_per_min: Option<f64>) -> String {
    let Some(left) = budget_left.map(|l| l.max(0.0).floor()) else {
        return String::new();
    };
    let short = (requests as f64 - left).max(0.0);
    let wait = match refill_per_min.filter(|r| *r > 0.0) {
        _ if short == 0.0 => "within the budget".to_string(),
        Some(rate) => format!(
            "~{}",
            crate::health::remedy::human_seconds((short * 60.0 / rate).ceil() as u64)
        ),
        None => "more than the budget will ever hold".to_string(),
    };
    format!(" of {left} left: {wait}")
}

/// Asks first when the lookup would spend more than the configured share of the budget left.
fn ask_cost_or_send(
    app: &mut App,
    vin: crate::smartcar::vin::DecodedVin,
    effects: &mut Vec<Effect>,
) {
    let requests = vin_lookup_estimate(app, &vin);
    let progress = app.store.progress();
    let (left, refill) = (progress.budget_left, progress.budget_refill_per_min);
    // A desk spends its own budget, and says nothing of it here.
    if app.link.is_none()
        && requests > 0
        && let Some(left) = left
        && requests as f64 > app.config.confirm_lookup_share * left.max(0.0).floor()
    {
        app.complain(format!(
            "VIN {}: about {requests} requests{}. Look it up? y / any key",
            vin.vin,
            budget_phrase(requests, Some(left), refill)
        ));
        app.vin_confirm = Some((vin, VinAsk::Cost));
        return;
    }
    send_vin_lookup(app, vin, effects);
}

/// Sends the lookup of a VIN, its cost and outcome to come back as events.
fn send_vin_lookup(
    app: &mut App,
    vin: crate::smartcar::vin::DecodedVin,
    effects: &mut Vec<Effect>,
) {
    app.say(format!("looking up VIN {}…", vin.vin));
    app.vin_lookup = Some(vin.vin.clone());
    effects.push(Effect::Send(Command::FindVin { vin }));
}

/// What a VIN lookup the agent started says: its cost before it starts, then the vehicle (opened)
/// or that none has the VIN.
fn vin_lookup_news(app: &mut App, event: &Event, effects: &mut Vec<Effect>) {
    let Some(asked) = app.vin_lookup.clone() else {
        return;
    };
    match event {
        Event::VinLookupPlanned {
            vin,
            requests,
            make,
            ..
        } if *vin == asked => {
            let make = make
                .as_deref()
                .map_or_else(String::new, |m| format!(" {}", one_line(m)));
            app.say(match requests {
                0 => format!("VIN {vin}: no{make} vehicle of that year is connected; 0 requests"),
                n => {
                    let progress = app.store.progress();
                    format!(
                        "looking up{make} VIN {vin}: {n} requests at most{} · Esc cancels",
                        budget_phrase(*n, progress.budget_left, progress.budget_refill_per_min)
                    )
                }
            });
            app.dirty = true;
        }
        Event::VinLookupProgress { vin, read, of } if *vin == asked => {
            let progress = app.store.progress();
            let left = of.saturating_sub(*read);
            app.say(format!(
                "looking up VIN {vin}: {read}/{of} read · {left} more at most{} · Esc cancels",
                budget_phrase(left, progress.budget_left, progress.budget_refill_per_min)
            ));
            app.dirty = true;
        }
        Event::VinLookupDone {
            vin,
            vehicle_id,
            requests,
            gaps,
            ..
        } if *vin == asked => {
            app.vin_lookup = None;
            match vehicle_id {
                Some(id) => {
                    let id = id.clone();
                    app.say(format!("VIN {vin} is {id} ({requests} requests)"));
                    open_from_command(app, id, effects);
                }
                // On a desk no plan is announced: say how it ended, "no vehicle" only when true.
                None if app.link.is_some() && !gaps.is_empty() => {
                    app.complain(gaps.summary(vin, *requests, app.store.len()));
                }
                None if app.link.is_some() => app.complain(format!(
                    "VIN {vin}: the desk found no vehicle with it ({requests} VINs read)"
                )),
                // The plan said so already.
                None if *requests == 0 && gaps.is_empty() && gaps.near.is_empty() => {}
                None => {
                    let summary = gaps.summary(vin, *requests, app.store.len());
                    if gaps.unread.is_empty() && gaps.not_tried == 0 {
                        app.complain(summary);
                    } else {
                        // The car may be one of those unread: the list shows them to open.
                        let make = gaps
                            .unread
                            .iter()
                            .filter_map(|c| c.attributes.as_ref())
                            .map(|a| a.make.trim().to_ascii_lowercase())
                            .find(|m| !m.is_empty() && !m.contains(char::is_whitespace));
                        let filter = match make {
                            Some(make) => format!("!has:vin make:{make}"),
                            None => "!has:vin".to_string(),
                        };
                        fleet_filter_from_command(app, &filter, effects);
                        app.complain(format!("{summary} (listed: {filter})"));
                    }
                }
            }
            app.dirty = true;
        }
        _ => {}
    }
}

fn example_arg(verb: &str) -> &'static str {
    match verb {
        "vin" => "5YJ3E1EA7KF000002",
        "user" | "u" => "USER_ID",
        "export" => "blocked.csv",
        _ => "VEHICLE_ID",
    }
}

fn quote(value: &str) -> String {
    if value.contains(char::is_whitespace) {
        format!("\"{value}\"")
    } else {
        value.to_string()
    }
}

fn open_from_command(app: &mut App, id: String, effects: &mut Vec<Effect>) {
    app.store.select(Some(&id));
    open_vehicle(app, id, effects);
}

/// Every car of the user, probed at Focus priority: the agent asked for them by name. A result
/// younger than the freshness window costs nothing.
fn probe_user(app: &mut App, user: &str, effects: &mut Vec<Effect>) {
    let Ok(cars) = app.store.find_all(user) else {
        return;
    };
    let vehicle_ids: Vec<String> = cars.iter().map(|r| r.vehicle_id.clone()).collect();
    let n = vehicle_ids.len();
    app.say(format!(
        "user {}: probing {n} vehicle{}",
        one_line(user),
        if n == 1 { "" } else { "s" }
    ));
    effects.push(Effect::Send(Command::Probe {
        vehicle_ids,
        priority: Priority::Focus,
        force: false,
    }));
}

/// Back to the fleet (restoring it), then filter it.
fn fleet_filter_from_command(app: &mut App, filter: &str, effects: &mut Vec<Effect>) {
    while app.stack.len() > 1 {
        go_back(app, effects);
    }
    if set_filter(app, filter, effects) {
        app.say(format!("filter {filter}"));
    } else if let Some(e) = app.filter_error.take() {
        app.complain(e);
    }
}
