//! Draws the App: the fleet view, the vehicle view and the help overlay. Pure functions of the state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::health::Status;
use crate::store::{SortColumn, VehicleRecord};
use crate::tui::app::{App, FleetLayout, Overlay, Screen};
use crate::tui::facts::{self, Grant};
use crate::tui::keymap::KeyContext;
use crate::tui::theme::Theme;
use crate::tui::widgets::badge::{grant_word, status_symbol};
use crate::tui::widgets::progress::Checked;
use crate::tui::widgets::{
    Column, DataTable, Segment, ago, deadline_spans, fit_line, grant_badge, grouped, progress_line,
    spinner_frame, status_badge, virtual_key_badge,
};
use crate::untrusted::LinkPolicy;
use crate::untrusted::text::one_line;

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    render_with_links(app, frame);
}

/// Draws the whole screen; returns where links the link policy allows are, for the runtime to make
/// them hyperlinks (OSC 8) in terminals that support them.
pub fn render_with_links(app: &App, frame: &mut Frame) -> Vec<LinkArea> {
    let area = frame.area();
    let links = match app.screen() {
        Screen::Fleet => {
            fleet(app, frame, area);
            Vec::new()
        }
        Screen::Vehicle(_) => vehicle(app, frame, area),
    };
    if let Overlay::Help { scroll } = app.overlay {
        help(app, frame, area, scroll);
        // The overlay covers the page: its cells are no longer the links'.
        return Vec::new();
    }
    links
}

/// The header: what matters most survives a narrow terminal whole (the fleet size, rate limits,
/// errors, warnings); the origin goes first, then when it was updated, the sweep offer, the budget.
fn header(app: &App, theme: &Theme, width: u16) -> Line<'static> {
    use crate::desk::remote::Link;
    let mode_style = if app.config.mode_label.eq_ignore_ascii_case("LIVE") {
        theme.live
    } else {
        theme.demo
    };
    let counts = app.store.counts();
    let mut segments = vec![
        Segment::new(90, vec![Span::styled(" vtriage ", theme.header)]),
        Segment::new(
            99,
            vec![Span::styled(
                format!(" {} ", one_line(&app.config.mode_label)),
                mode_style,
            )],
        ),
        Segment::new(
            100,
            vec![Span::raw(format!(" fleet {} ", grouped(counts.total)))],
        ),
    ];
    if !app.config.warnings.is_empty() {
        let n = app.config.warnings.len();
        segments.push(Segment::new(
            97,
            vec![Span::styled(
                format!(
                    " ! {n} warning{} (? shows {}) ",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "it" } else { "them" }
                ),
                theme.warning,
            )],
        ));
    }
    if let Some(until) = app.store.rate_limited_until().filter(|u| *u > app.now) {
        let wait = until.as_second() - app.now.as_second();
        let at = until.strftime("%H:%M:%S UTC");
        let wait = crate::health::remedy::human_seconds(u64::try_from(wait).unwrap_or(0));
        // A 429 is Smartcar's word; an empty local bucket is only our own pacing.
        let (text, style) = if app.store.rate_limited_by_smartcar() {
            (
                format!(" rate limited by Smartcar until {at} ({wait}) "),
                theme.error,
            )
        } else {
            (
                format!(" waiting for budget until {at} ({wait}) "),
                theme.warning,
            )
        };
        segments.push(Segment::new(98, vec![Span::styled(text, style)]));
    }
    match &app.link {
        Some(Link::Reconnecting { attempt, reason }) => {
            // The short part fits at 80 columns; why comes after, where there is room.
            segments.push(Segment::new(
                98,
                vec![Span::styled(
                    format!(" reconnecting (try {attempt}) · last state shown "),
                    theme.error,
                )],
            ));
            segments.push(Segment::new(
                30,
                vec![Span::styled(
                    format!("· {} ", one_line(reason)),
                    theme.muted,
                )],
            ));
        }
        Some(Link::Refused) => segments.push(Segment::new(
            98,
            vec![Span::styled(" agent token refused ", theme.error)],
        )),
        Some(Link::Connected { agents_probing }) if !agents_probing.is_empty() => {
            segments.push(Segment::new(
                55,
                vec![Span::styled(
                    format!("· probing for {} ", one_line(&agents_probing.join(", "))),
                    theme.muted,
                )],
            ));
        }
        Some(Link::Connected { .. }) | None => {}
    }
    // A watched car that recovered is what the agent waited for: it stays in the header.
    let recovered: Vec<_> = app
        .store
        .watches
        .iter()
        .filter_map(|w| w.recovered.map(|r| (w, r)))
        .collect();
    if let Some((w, r)) = recovered.last() {
        segments.push(Segment::new(
            95,
            vec![Span::styled(
                format!(
                    " ✓ {} recovered at {} ",
                    one_line(&w.vehicle_id),
                    r.at.strftime("%H:%M")
                ),
                theme.healthy,
            )],
        ));
    } else if !app.store.watches.is_empty() {
        let n = app.store.watches.iter().count();
        segments.push(Segment::new(
            60,
            vec![Span::styled(format!("· watching {n} "), theme.muted)],
        ));
    }
    if let Some(error) = app.store.source_error() {
        segments.push(Segment::new(
            96,
            vec![Span::styled(format!(" {} ", one_line(error)), theme.error)],
        ));
    }
    // App-wide: no car's row explains why nothing is being probed.
    for outage in app.store.outages() {
        segments.push(Segment::new(
            97,
            vec![Span::styled(
                format!(" {} ", one_line(&outage.what())),
                theme.error,
            )],
        ));
        segments.push(Segment::new(
            45,
            vec![Span::styled(
                format!("· {} ", outage.retry_words(app.now)),
                theme.muted,
            )],
        ));
    }
    let progress = app.store.progress();
    if let Some(left) = progress.budget_left {
        let refill = progress
            .budget_refill_per_min
            .map(|r| format!(" +{r:.0}/min"))
            .unwrap_or_default();
        // With less than one token left, when the next request can go matters more than the count.
        let next = progress
            .budget_refill_per_min
            .filter(|r| left < 1.0 && *r > 0.0)
            .map(|r| {
                let s = ((1.0 - left.max(0.0)) * 60.0 / r).ceil() as u64;
                format!(
                    " · next request in {}",
                    crate::health::remedy::human_seconds(s)
                )
            })
            .unwrap_or_default();
        segments.push(Segment::new(
            60,
            vec![Span::styled(
                format!("· budget {:.0}{refill}{next} ", left.floor()),
                theme.muted,
            )],
        ));
    }
    // The sweep offer in two lengths: the short one keeps it beside the budget at 80 columns.
    let sweep = app
        .store
        .sweep_cost()
        .filter(|(requests, _)| !app.sweep_started && *requests > 0)
        .map(|(requests, eta_s)| {
            let eta = crate::health::remedy::human_seconds(eta_s);
            let requests = grouped(requests);
            (
                format!("· sweep: {requests} requests ≈ {eta} (:sweep) "),
                format!("· :sweep {requests} requests ≈ {eta} "),
            )
        });
    let sweep_index = segments.len();
    if let Some((long, _)) = &sweep {
        segments.push(Segment::new(
            50,
            vec![Span::styled(long.clone(), theme.warning)],
        ));
    }
    if let Some(at) = app.updated_at {
        segments.push(Segment::new(
            40,
            vec![Span::styled(
                format!("· updated {} ", ago(app.now, Some(at))),
                theme.muted,
            )],
        ));
    }
    if !app.config.origin.is_empty() {
        segments.push(Segment::new(
            10,
            vec![Span::styled(
                format!("· {}", one_line(&app.config.origin)),
                theme.muted,
            )],
        ));
    }
    let mut short = segments.clone();
    if let (Some((_, compact)), Some(segment)) = (sweep, short.get_mut(sweep_index)) {
        segment.spans = vec![Span::styled(compact, theme.warning)];
    }
    fit_line(vec![segments, short], width)
}

fn footer(app: &App, theme: &Theme) -> Line<'static> {
    if let Some(flash) = app.visible_flash() {
        let style = if flash.error {
            theme.error
        } else {
            theme.flash
        };
        return Line::from(Span::styled(format!(" {} ", flash.text), style));
    }
    hint_bar(app, theme, app.width)
}

/// The hints that fit in `width`, in the keymap's order; the help's hint is kept whatever else goes,
/// since the help lists every key the bar has no room for.
fn hint_bar(app: &App, theme: &Theme, width: u16) -> Line<'static> {
    use crate::tui::keymap::Action;
    let context = app.context();
    let hints = app.config.keymap.hints(context);
    let help_keys = app
        .config
        .keymap
        .keys(context, Action::Help)
        .first()
        .map(|k| k.to_string());
    let is_help = |h: &crate::tui::keymap::Hint| {
        h.label == Action::Help.hint() && Some(&h.keys) == help_keys.as_ref()
    };
    let cells = |h: &crate::tui::keymap::Hint| h.keys.chars().count() + 1 + h.label.chars().count();
    let mut room = usize::from(width);
    // The help's hint first: it is never the one that does not fit.
    if let Some(help) = hints.iter().find(|h| is_help(h)) {
        room = room.saturating_sub(cells(help));
    }
    let mut shown = Vec::new();
    let mut full = false;
    for hint in &hints {
        if is_help(hint) {
            shown.push(hint.clone());
            continue;
        }
        // Two spaces after each hint but the last.
        let need = cells(hint) + 2;
        if !full && need <= room {
            room -= need;
            shown.push(hint.clone());
        } else {
            full = true;
        }
    }
    let mut spans = Vec::new();
    let last = shown.len().saturating_sub(1);
    for (i, hint) in shown.into_iter().enumerate() {
        spans.push(Span::styled(hint.keys, theme.key));
        let gap = if i == last { "" } else { "  " };
        spans.push(Span::styled(format!(" {}{gap}", hint.label), theme.muted));
    }
    Line::from(spans)
}

/// Counts per status with their keys. Narrow, the keys go (the footer names them), then whole
/// statuses, empty ones and the healthy first: a count is never cut.
fn status_summary(app: &App, theme: &Theme, width: u16) -> Line<'static> {
    let filter = app.store.filter_text().to_ascii_lowercase();
    let counts = app.store.counts();
    let layout = |with_keys: bool| {
        let mut segments = Vec::new();
        for (i, status) in Status::ALL.into_iter().enumerate() {
            let count = counts.status(status);
            let active = filter
                .split_whitespace()
                .any(|t| t == format!("status:{}", status.label().to_ascii_lowercase()));
            let style = if active {
                theme.selection.patch(theme.status(status))
            } else {
                theme.status(status)
            };
            let importance = match status {
                Status::Blocked => 100,
                Status::Degraded => 90,
                Status::Warning => 80,
                Status::Unknown => 70,
                Status::Healthy => 60,
            };
            let mut spans = Vec::new();
            if with_keys {
                spans.push(Span::styled(format!("{} ", i + 1), theme.key));
            }
            spans.push(Span::styled(
                format!(
                    "{} {} {}",
                    status_symbol(status),
                    status.label(),
                    grouped(count)
                ),
                style,
            ));
            spans.push(Span::raw(if with_keys { "  " } else { " " }));
            // Nothing to see in an empty status: it goes before any count does.
            let priority = if count == 0 {
                importance / 10
            } else {
                importance
            };
            segments.push(Segment::new(priority, spans));
        }
        segments
    };
    fit_line(vec![layout(true), layout(false)], width)
}

fn filter_line(app: &App, theme: &Theme) -> Line<'static> {
    let editing = app.overlay == Overlay::Filter;
    let mut spans = vec![Span::styled("/", theme.key)];
    if editing {
        // The quick filter is a term of its own before the typed text (Backspace on an empty line drops it).
        if !app.filter_quick.is_empty() {
            spans.push(Span::styled(
                format!("[{}]", one_line(&app.filter_quick)),
                theme.selection,
            ));
            spans.push(Span::raw(" "));
        }
        // The cursor where it is: a block over the character it stands on, or after the end.
        let text = app.filter_input.text();
        let at = app.filter_input.cursor();
        let before: String = text.chars().take(at).collect();
        let mut after = text.chars().skip(at);
        spans.push(Span::raw(before));
        match after.next() {
            Some(c) => {
                spans.push(Span::styled(c.to_string(), theme.selection));
                spans.push(Span::raw(after.collect::<String>()));
            }
            None => spans.push(Span::styled("█", theme.key)),
        }
    } else {
        spans.push(Span::raw(app.store.filter_text().to_string()));
    }
    match &app.filter_error {
        Some(error) => spans.push(Span::styled(
            format!("  0 of {}  {error}", grouped(app.store.len())),
            theme.blocked,
        )),
        None => spans.push(Span::styled(
            format!(
                "  {} of {}",
                grouped(app.store.visible_len()),
                grouped(app.store.len())
            ),
            theme.muted,
        )),
    }
    Line::from(spans)
}

fn command_line(app: &App, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(":", theme.key),
        Span::raw(app.command_input.text().to_string()),
        Span::styled("█", theme.key),
    ])
}

/// How much each fleet column matters when the terminal is narrow (higher stays longer).
const STATUS_PRIORITY: u8 = 100;
/// The sorted column stays whatever the width, so the arrow saying how rows are ordered is always seen.
const SORTED_PRIORITY: u8 = 95;
const FINDING_PRIORITY: u8 = 90;
const VEHICLE_PRIORITY: u8 = 80;
/// Agents search by VIN: at 80 columns it stays, and the finding shrinks for it.
const VIN_PRIORITY: u8 = 70;
/// The virtual key decides most Tesla tickets: at 80 columns it stays too, before the check time.
const KEY_PRIORITY: u8 = 65;
/// The finding's least width: at 80 columns, beside the VIN and the key, enough to tell rules apart.
const FINDING_MIN_WIDTH: u16 = 17;

/// The fleet table's columns, with the sort arrow on the sorted one. The finding is what an agent reads
/// first: it keeps 36 cells (a rule's title) against every column but the vehicle, its VIN and its key.
fn fleet_columns(sort: (SortColumn, bool)) -> Vec<Column> {
    let vehicle_title = if sort.0 == SortColumn::VehicleId {
        "Vehicle id"
    } else {
        "Vehicle"
    };
    let mut columns = vec![
        Column::fixed("Status", 10, STATUS_PRIORITY),
        Column::fixed(vehicle_title, 18, VEHICLE_PRIORITY),
        Column::fixed("VIN", 17, VIN_PRIORITY),
        Column::fixed("User", 12, 30),
        Column::fixed("Permissions", 11, 40),
        Column::fixed("Key", 11, KEY_PRIORITY),
        Column::fill("Finding", FINDING_MIN_WIDTH, FINDING_PRIORITY).preferring(36, KEY_PRIORITY),
        Column::fixed("Checked", 8, 60),
    ];
    let sorted = match sort.0 {
        SortColumn::Status => 0,
        SortColumn::Vehicle | SortColumn::VehicleId => 1,
        SortColumn::Vin => 2,
        SortColumn::User => 3,
        SortColumn::Finding => 6,
        SortColumn::Checked => 7,
    };
    if let Some(c) = columns.get_mut(sorted) {
        c.sort(sort.1);
        c.priority = c.priority.max(SORTED_PRIORITY);
    }
    columns
}

fn vehicle_label(record: &VehicleRecord) -> String {
    match &record.attributes {
        Some(a) => format!("{} {} {}", one_line(&a.make), one_line(&a.model), a.year),
        // Until attributes are read, the id is what tells vehicles apart.
        None => format!("id {}", one_line(&record.vehicle_id)),
    }
}

/// A finding's title without the `Tesla: ` a rule starts it with, when the row already names the make:
/// in a narrow column the cells go to the words that tell one rule from another.
fn without_make<'t>(title: &'t str, record: &VehicleRecord) -> &'t str {
    match (title.split_once(": "), &record.attributes) {
        (Some((make, rest)), Some(a)) if !rest.is_empty() && make.eq_ignore_ascii_case(&a.make) => {
            rest
        }
        _ => title,
    }
}

fn is_tesla(record: &VehicleRecord) -> bool {
    record.attributes.as_ref().is_some_and(|a| a.is_tesla())
}

/// The needed permissions in few cells: `✔ granted` when all are, else the ones that are not.
fn permissions_cell(app: &App, record: &VehicleRecord, theme: &Theme) -> Line<'static> {
    let needed: Vec<_> = facts::permissions(&record.glance, is_tesla(record), &app.config.needs)
        .into_iter()
        .filter(|p| p.needed)
        .collect();
    let not_granted: Vec<_> = needed
        .iter()
        .filter(|p| p.overall() != Grant::Granted)
        .collect();
    if needed.is_empty() {
        Line::default()
    } else if not_granted.is_empty() {
        Line::from(Span::styled("✔ granted", theme.healthy))
    } else if not_granted.iter().all(|p| p.overall() == Grant::Unknown) {
        Line::from(Span::styled("? unknown", theme.unknown))
    } else {
        let mut spans = Vec::new();
        for p in not_granted {
            if !spans.is_empty() {
                spans.push(Span::raw(" "));
            }
            spans.push(grant_badge(p.overall(), p.kind.name(), theme));
        }
        Line::from(spans)
    }
}

fn fleet_cells<'a>(app: &App, record: &VehicleRecord, theme: &Theme) -> Vec<Line<'a>> {
    let status = if record.probing {
        Line::from(vec![
            Span::styled(spinner_frame(app.spin), theme.key),
            Span::styled(
                format!(" {}", record.verdict.status.label()),
                theme.status(record.verdict.status),
            ),
        ])
    } else {
        Line::from(status_badge(record.verdict.status, theme))
    };
    let permissions = permissions_cell(app, record, theme);
    let key = virtual_key_badge(
        facts::virtual_key(
            record.attributes.as_ref(),
            &record.glance,
            &record.verdict,
            &app.config.policies,
        ),
        theme,
    );
    let finding = match record.verdict.main_finding() {
        Some(f) => Span::raw(without_make(&one_line(&f.title), record).to_string()),
        None if record.last_probe_at.is_none() => Span::styled("not checked yet", theme.muted),
        None => Span::styled("no findings", theme.muted),
    };
    // `*`: the verdict comes from the last session's snapshot, not from this one.
    let checked = if record.stale && record.last_probe_at.is_some() {
        format!("{}*", ago(app.now, record.last_probe_at))
    } else {
        ago(app.now, record.last_probe_at)
    };
    let vehicle = if app.store.sort().0 == SortColumn::VehicleId {
        // Sorted by id: the rows read in the order they are sorted.
        Line::from(one_line(&record.vehicle_id).into_owned())
    } else if record.attributes.is_some() {
        Line::from(vehicle_label(record))
    } else {
        Line::from(Span::styled(vehicle_label(record), theme.muted))
    };
    vec![
        status,
        vehicle,
        Line::from(
            record
                .vin
                .as_deref()
                .map_or_else(|| "—".into(), |v| one_line(v).into_owned()),
        ),
        Line::from(one_line(&record.user_id).into_owned()),
        permissions,
        Line::from(key),
        Line::from(finding),
        Line::from(Span::styled(checked, theme.muted)),
    ]
}

fn fleet(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.config.theme;
    let layout = FleetLayout::of(app, area);
    let rules = app
        .config
        .policies
        .rules
        .iter()
        .take(FleetLayout::MAX_DEADLINES);

    frame.render_widget(
        Paragraph::new(header(app, theme, area.width)),
        layout.header,
    );
    frame.render_widget(
        Paragraph::new(progress_line(
            app.store.progress(),
            Checked {
                vehicles: app.store.counts().checked,
                of: app.store.counts().total,
            },
            app.rate.per_s(),
            area.width,
            theme,
        )),
        layout.progress,
    );
    for (rule, line) in rules.zip(&layout.deadlines) {
        let affected = app
            .store
            .counts()
            .by_rule
            .get(&rule.id)
            .copied()
            .unwrap_or(0);
        frame.render_widget(
            Paragraph::new(Line::from(deadline_spans(rule, app.now, affected, theme))),
            *line,
        );
    }
    frame.render_widget(
        Paragraph::new(status_summary(app, theme, area.width)),
        layout.counts,
    );
    if let Some(filter) = layout.filter {
        frame.render_widget(Paragraph::new(filter_line(app, theme)), filter);
    }
    let table_area = layout.table;
    let height = layout.body_height();
    let total = app.store.visible_len();
    if let Some(error) = &app.filter_error {
        // The rows of the filter before would read as this one's results.
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(Span::styled(format!("no results: {error}"), theme.blocked)),
                Line::from(Span::styled(
                    "fix the term, or Esc for the filter before",
                    theme.muted,
                )),
            ])
            .wrap(Wrap { trim: true }),
            table_area,
        );
    } else if total == 0 {
        let (text, style) = match app.store.source_error() {
            Some(error) if app.store.is_empty() => (
                format!("the fleet could not be listed: {error} (:refresh tries again)"),
                theme.error,
            ),
            _ if app.store.is_empty() => ("waiting for the fleet listing…".into(), theme.muted),
            _ => {
                // VINs (and on API v2.0 makes and models) are known only once a vehicle has been probed.
                let c = app.store.counts();
                let unchecked = c.total.saturating_sub(c.checked);
                // A status key's term hides the rest of the fleet: said, with how to drop it.
                let quick: Vec<&str> = app
                    .store
                    .filter_text()
                    .split_whitespace()
                    .filter(|t| t.to_ascii_lowercase().starts_with("status:"))
                    .collect();
                let quick = if quick.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (only {}: its key again, or Backspace on an empty / line, drops it)",
                        one_line(&quick.join(" "))
                    )
                };
                let text = if unchecked > 0 {
                    format!(
                        "no vehicle matches the filter{quick}; {unchecked} of {} vehicles are not checked yet, and what a probe reads (the VIN; on API v2.0 the make and model too) is unknown until they are (they are probed as the sweep reaches them, or open one with :vehicle ID)",
                        c.total
                    )
                } else {
                    format!("no vehicle matches the filter{quick}")
                };
                (text, theme.muted)
            }
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, style)).wrap(Wrap { trim: true }),
            table_area,
        );
    } else {
        let table = DataTable::new(fleet_columns(app.store.sort()), theme)
            .rows(
                app.offset,
                total,
                app.store.rows(app.offset..app.offset + height),
                |r| fleet_cells(app, r, theme),
            )
            .selected(app.store.selected_index());
        frame.render_widget(table, table_area);
    }
    let foot = layout.footer;
    let line = if app.overlay == Overlay::Command {
        command_line(app, theme)
    } else {
        footer(app, theme)
    };
    frame.render_widget(Paragraph::new(line), foot);
}

fn section<'a>(title: &str, theme: &Theme) -> Line<'a> {
    Line::from(Span::styled(format!("── {title} "), theme.title))
}

fn vehicle_lines(app: &App, record: &VehicleRecord, theme: &Theme) -> Vec<PageLine> {
    let mut lines: Vec<PageLine> = Vec::new();
    let keymap = &app.config.keymap;
    let key = |action| {
        keymap
            .keys(KeyContext::Vehicle, action)
            .first()
            .map(|k| k.to_string())
            .unwrap_or_else(|| "—".into())
    };
    use crate::tui::keymap::Action;
    let diagnosis = record.diagnosis();

    // The copy keys and the reply follow the main finding's fix and link, before any evidence: on a
    // small terminal what to do and what to send stay in view, the proof follows.
    let actions = {
        let mut actions = vec![PageLine::hanging(
            Line::from(vec![
                Span::raw("  "),
                Span::styled(key(Action::CopyFixLink), theme.key),
                Span::raw(" copy fix link  "),
                Span::styled(key(Action::CopyReply), theme.key),
                Span::raw(" copy reply  "),
                Span::styled(key(Action::CopyEvidence), theme.key),
                Span::raw(" copy evidence  "),
                Span::styled(key(Action::Reprobe), theme.key),
                Span::raw(" re-probe  "),
                Span::styled(key(Action::OpenLink), theme.key),
                Span::raw(" open link"),
            ]),
            2,
        )];
        if let Some(reply) = diagnosis
            .main_finding()
            .map(|f| one_line(&f.remedy.customer_reply).into_owned())
            .filter(|r| !r.is_empty())
        {
            actions.push(PageLine::hanging(
                Line::from(vec![
                    Span::styled("  reply: ", theme.muted),
                    Span::raw(reply),
                ]),
                9,
            ));
        }
        actions
    };
    let main = diagnosis.main_finding();
    let mut actions = Some(actions);

    lines.push(PageLine::section(section("Findings", theme)));
    if diagnosis.findings.is_empty() {
        let text = if record.last_probe_at.is_none() {
            "not checked yet"
        } else {
            "no findings: data flows"
        };
        lines.push(PageLine::indented(Line::from(Span::styled(
            format!("  {text}"),
            theme.muted,
        ))));
    }
    for f in &diagnosis.findings {
        let status = Status::from_severity(f.severity);
        lines.push(PageLine::hanging(
            Line::from(vec![
                Span::raw("  "),
                Span::styled(
                    format!("{} {}", status_symbol(status), f.severity.label()),
                    theme.status(status),
                ),
                Span::raw("  "),
                Span::styled(one_line(&f.title).into_owned(), theme.title),
            ]),
            4,
        ));
        let mut meta = vec![Span::styled(
            format!("    {}", one_line(&f.id)),
            theme.muted,
        )];
        if let Some(rule) = &f.rule {
            meta.push(Span::styled(
                format!(" · rule {}", one_line(rule)),
                theme.muted,
            ));
        }
        if let Some(since) = &f.since {
            // Whose date it is, in the words of the Markdown report; a rule's follows its name.
            let label = match &f.rule {
                Some(_) => " in force since".to_string(),
                None => format!(" · {}", crate::report::since_label(f).to_lowercase()),
            };
            meta.push(Span::styled(
                format!("{label} {}", one_line(since)),
                theme.muted,
            ));
        }
        lines.push(PageLine::hanging(Line::from(meta), 4));
        // What to do comes before the proof: on a small terminal the fix and its link stay in view,
        // and the evidence, one line per signal under API v3, follows.
        lines.push(PageLine::hanging(
            Line::from(vec![
                Span::raw("    fix: "),
                Span::raw(one_line(&f.remedy.action).into_owned()),
            ]),
            9,
        ));
        if let Some(link) = &f.remedy.link {
            let label = if crate::untrusted::link::is_local(link) {
                format!("    link {}:", crate::untrusted::link::LOCAL_NOTE)
            } else {
                "    link:".to_string()
            };
            lines.push(PageLine::indented(Line::from(Span::raw(label))));
            lines.push(PageLine::link(app, link));
        }
        if main.is_some_and(|m| std::ptr::eq(m, f)) {
            lines.extend(actions.take().unwrap_or_default());
        }
        for e in &f.evidence {
            let text = format!("    ↳ {}", crate::report::evidence_line(e));
            // Wrapped under its own start, so each piece of evidence reads as one block.
            lines.push(PageLine::hanging(Line::from(Span::raw(text)), 6));
        }
    }
    lines.extend(actions.take().unwrap_or_default());

    lines.push(PageLine::indented(Line::default()));
    lines.push(PageLine::section(section(
        "Permissions (needed · at Smartcar · at Tesla)",
        theme,
    )));
    let grid = facts::permissions(&record.glance, is_tesla(record), &app.config.needs);
    if grid.is_empty() {
        lines.push(PageLine::indented(Line::from(Span::styled(
            "  not read yet",
            theme.muted,
        ))));
    }
    for row in grid {
        let style = |g: Grant| match g {
            Grant::Granted => theme.healthy,
            Grant::NeededMissing => theme.blocked,
            Grant::Missing => theme.muted,
            Grant::Unknown => theme.unknown,
        };
        let mut spans = vec![
            Span::raw(format!("  {:<16}", row.kind.permission())),
            Span::styled(
                format!("{:<8}", if row.needed { "needed" } else { "—" }),
                theme.muted,
            ),
            Span::styled(
                format!("{:<16}", grant_word(row.smartcar)),
                style(row.smartcar),
            ),
        ];
        if let Some(t) = row.tesla {
            spans.push(Span::styled(grant_word(t).to_string(), style(t)));
        } else {
            spans.push(Span::styled("n/a", theme.muted));
        }
        lines.push(PageLine::indented(Line::from(spans)));
    }

    lines.push(PageLine::indented(Line::default()));
    lines.push(PageLine::section(section("Virtual key", theme)));
    let vk = facts::virtual_key(
        record.attributes.as_ref(),
        &record.glance,
        &record.verdict,
        &app.config.policies,
    );
    let mut vk_line = vec![Span::raw("  "), virtual_key_badge(vk, theme)];
    let pairing = diagnosis
        .findings
        .iter()
        .find(|f| f.remedy.kind == crate::health::RemedyKind::AddVirtualKey)
        .and_then(|f| f.remedy.link.clone());
    if pairing.is_some() {
        vk_line.push(Span::raw("  pairing link:"));
    }
    lines.push(PageLine::indented(Line::from(vk_line)));
    if let Some(link) = pairing {
        lines.push(PageLine::link(app, &link));
    }

    lines.push(PageLine::indented(Line::default()));
    lines.push(PageLine::section(section("Status history", theme)));
    if record.history.is_empty() {
        lines.push(PageLine::indented(Line::from(Span::styled(
            "  no changes yet",
            theme.muted,
        ))));
    }
    for change in record.history.iter().rev() {
        lines.push(PageLine::indented(Line::from(vec![
            Span::styled(
                format!("  {}  ", crate::report::format_instant(change.at)),
                theme.muted,
            ),
            status_badge(change.from, theme),
            Span::raw(" → "),
            status_badge(change.to, theme),
            Span::styled(format!("  ({})", change.cause.label()), theme.muted),
        ])));
    }
    lines
}

/// The furthest a wrapped paragraph scrolls: its last row at the bottom of `visible` rows of `width` cells.
fn max_scroll(paragraph: &Paragraph, width: u16, visible: u16) -> u16 {
    let rows = paragraph.line_count(width);
    u16::try_from(rows.saturating_sub(usize::from(visible))).unwrap_or(u16::MAX)
}

/// A line of the vehicle page. Text wraps under its own indent, never at column 0; a link
/// is shown whole on rows of its own, cut into pieces of the row's width when longer, so it can be
/// read and selected whatever the terminal does with copies.
#[derive(Debug, Clone)]
enum PageLine {
    /// Wrapped with its continuation rows `indent` cells in.
    Hanging { line: Line<'static>, indent: u16 },
    Link {
        /// Cleaned for the screen.
        text: String,
        /// The link policy allows it: only then is it a hyperlink.
        allowed: bool,
    },
}

/// The cells one character takes.
fn char_width(c: char) -> usize {
    let mut buf = [0u8; 4];
    Span::raw(&*c.encode_utf8(&mut buf)).width()
}

/// `line` word-wrapped at `width` with its continuation rows starting `indent` cells in (ratatui's
/// wrap starts them at column 0). A word longer than a row is cut; styles are kept.
fn hang(line: &Line<'static>, width: u16, indent: u16) -> Vec<Line<'static>> {
    let width = usize::from(width);
    if width == 0 {
        return vec![Line::default()];
    }
    // On a very narrow terminal an indent would leave no room for the text.
    let indent = if usize::from(indent) * 2 <= width {
        usize::from(indent)
    } else {
        0
    };
    let chars: Vec<(char, Style)> = line
        .spans
        .iter()
        .flat_map(|s| {
            let style = line.style.patch(s.style);
            s.content.chars().map(move |c| (c, style))
        })
        .collect();
    let mut rows: Vec<Vec<(char, Style)>> = vec![Vec::new()];
    let mut used = 0usize;
    let new_row = |rows: &mut Vec<Vec<(char, Style)>>, used: &mut usize| {
        if let Some(row) = rows.last_mut() {
            while row.last().is_some_and(|(c, _)| *c == ' ') {
                row.pop();
            }
        }
        rows.push(vec![(' ', Style::default()); indent]);
        *used = indent;
    };
    let mut i = 0;
    while i < chars.len() {
        let word_end = (i..chars.len())
            .find(|&j| chars[j].0 == ' ')
            .unwrap_or(chars.len());
        let spaces_end = (word_end..chars.len())
            .find(|&j| chars[j].0 != ' ')
            .unwrap_or(chars.len());
        let word_width: usize = chars[i..word_end].iter().map(|(c, _)| char_width(*c)).sum();
        let row_start = if rows.len() == 1 { 0 } else { indent };
        if word_width > 0 && used + word_width > width && used > row_start {
            new_row(&mut rows, &mut used);
        }
        for &(c, style) in &chars[i..word_end] {
            let w = char_width(c);
            let row_start = if rows.len() == 1 { 0 } else { indent };
            if used + w > width && used > row_start {
                new_row(&mut rows, &mut used);
            }
            if let Some(row) = rows.last_mut() {
                row.push((c, style));
            }
            used += w;
        }
        for &(c, style) in &chars[word_end..spaces_end] {
            if used < width
                && let Some(row) = rows.last_mut()
            {
                row.push((c, style));
                used += 1;
            }
        }
        i = spaces_end;
    }
    rows.into_iter()
        .map(|row| {
            let mut spans: Vec<Span<'static>> = Vec::new();
            let mut text = String::new();
            let mut current: Option<Style> = None;
            for (c, style) in row {
                if current.is_some_and(|s| s != style) {
                    spans.push(Span::styled(
                        std::mem::take(&mut text),
                        current.unwrap_or_default(),
                    ));
                }
                current = Some(style);
                text.push(c);
            }
            if !text.is_empty() {
                spans.push(Span::styled(text, current.unwrap_or_default()));
            }
            Line::from(spans)
        })
        .collect()
}

/// Cells a link row starts in: indented like the text around it when there is room.
fn link_indent(width: u16) -> u16 {
    if width >= 24 { 4 } else { 0 }
}

/// A link cut into pieces that fit rows of `width` less the indent, whole characters each.
fn link_pieces(text: &str, width: u16) -> Vec<String> {
    let room = usize::from(width.saturating_sub(link_indent(width))).max(1);
    let mut pieces = vec![String::new()];
    let mut used = 0;
    for c in text.chars() {
        let w = char_width(c);
        if used + w > room && used > 0 {
            pieces.push(String::new());
            used = 0;
        }
        if let Some(piece) = pieces.last_mut() {
            piece.push(c);
        }
        used += w;
    }
    pieces
}

impl PageLine {
    fn link(app: &App, link: &str) -> PageLine {
        let policy = LinkPolicy::new(&app.config.needs.connect_origin);
        PageLine::Link {
            text: one_line(link).into_owned(),
            allowed: policy.allows(link),
        }
    }

    fn hanging(line: Line<'static>, indent: u16) -> PageLine {
        PageLine::Hanging { line, indent }
    }

    /// A line whose wrapped rows start where its text does.
    fn indented(line: Line<'static>) -> PageLine {
        let indent = line
            .spans
            .iter()
            .flat_map(|s| s.content.chars())
            .take_while(|c| *c == ' ')
            .count();
        PageLine::hanging(line, u16::try_from(indent).unwrap_or(0))
    }

    /// A section heading (`── Findings`): its wrapped rows start after the rule.
    fn section(line: Line<'static>) -> PageLine {
        PageLine::hanging(line, 3)
    }

    /// Rows it takes at `width`.
    fn rows(&self, width: u16) -> usize {
        match self {
            PageLine::Hanging { line, indent } => hang(line, width, *indent).len().max(1),
            PageLine::Link { text, .. } => link_pieces(text, width).len(),
        }
    }
}

/// Where a link was drawn: one row of cells, and the link they stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkArea {
    pub area: Rect,
    pub url: String,
}

/// Draws `lines` into `area` from row `scroll` of the page; returns where the allowed links are.
fn render_page(
    lines: &[PageLine],
    area: Rect,
    scroll: usize,
    theme: &Theme,
    buf: &mut ratatui::buffer::Buffer,
) -> Vec<LinkArea> {
    use ratatui::widgets::Widget;
    let mut links = Vec::new();
    let mut top = 0usize;
    let bottom = scroll + usize::from(area.height);
    for line in lines {
        let rows = line.rows(area.width);
        let (start, end) = (top, top + rows);
        top = end;
        if end <= scroll {
            continue;
        }
        if start >= bottom {
            break;
        }
        let skip = scroll.saturating_sub(start);
        let y = area.y + u16::try_from(start + skip - scroll).unwrap_or(u16::MAX);
        let height = u16::try_from((end.min(bottom)) - (start + skip)).unwrap_or(0);
        let rect = Rect {
            x: area.x,
            y,
            width: area.width,
            height,
        };
        match line {
            PageLine::Hanging { line, indent } => Paragraph::new(hang(line, area.width, *indent))
                .scroll((u16::try_from(skip).unwrap_or(u16::MAX), 0))
                .render(rect, buf),
            PageLine::Link { text, allowed } => {
                // Whole, one piece per row; each piece is a hyperlink to the whole link.
                let indent = link_indent(area.width);
                for (row, piece) in link_pieces(text, area.width)
                    .into_iter()
                    .enumerate()
                    .skip(skip)
                {
                    let Some(y) = u16::try_from(start + row)
                        .ok()
                        .and_then(|r| r.checked_sub(u16::try_from(scroll).unwrap_or(u16::MAX)))
                    else {
                        continue;
                    };
                    if y >= area.height {
                        break;
                    }
                    let piece_width =
                        u16::try_from(Span::raw(piece.as_str()).width()).unwrap_or(u16::MAX);
                    let cells = Rect {
                        x: area.x + indent,
                        y: area.y + y,
                        width: area.width.saturating_sub(indent).min(piece_width),
                        height: 1,
                    };
                    Paragraph::new(Span::styled(piece, theme.link)).render(cells, buf);
                    if *allowed && !cells.is_empty() {
                        links.push(LinkArea {
                            area: cells,
                            url: text.clone(),
                        });
                    }
                }
            }
        }
    }
    links
}

/// The vehicle page's body lines (summary or raw responses) and the title of its top border.
fn vehicle_body(app: &App, record: &VehicleRecord, raw: bool) -> (Vec<PageLine>, &'static str) {
    let theme = &app.config.theme;
    if raw {
        (
            raw_lines(record)
                .into_iter()
                .map(PageLine::indented)
                .collect(),
            " raw last responses (J to close) ",
        )
    } else {
        (vehicle_lines(app, record, theme), "")
    }
}

/// The furthest a page of `lines` scrolls: its last row at the bottom of `visible` rows of `width` cells.
fn page_max_scroll(lines: &[PageLine], width: u16, visible: u16) -> u16 {
    let rows: usize = lines.iter().map(|l| l.rows(width)).sum();
    u16::try_from(rows.saturating_sub(usize::from(visible))).unwrap_or(u16::MAX)
}

/// The furthest the vehicle page on screen scrolls, as drawn at the app's size (for `update`).
pub fn vehicle_page_max_scroll(app: &App) -> u16 {
    let (Some(page), Some(record)) = (app.page(), app.page_vehicle()) else {
        return 0;
    };
    let title_rows = vehicle_title(app, record, app.width).len().max(2) as u16;
    // The body is what the header, the title and the footer leave, less its top border.
    let body = app.height.saturating_sub(3 + title_rows);
    let (lines, _) = vehicle_body(app, record, page.raw);
    page_max_scroll(&lines, app.width, body)
}

/// The vehicle's badge and name, then its ids and times packed into as few lines as `width` allows.
fn vehicle_title(app: &App, record: &VehicleRecord, width: u16) -> Vec<Line<'static>> {
    let theme = &app.config.theme;
    let mut first = vec![
        status_badge(record.verdict.status, theme),
        Span::raw("  "),
        Span::styled(vehicle_label(record), theme.title),
    ];
    if record.probing {
        first.push(Span::styled(
            format!("  {} probing…", spinner_frame(app.spin)),
            theme.key,
        ));
    }
    let field = |name: &str, value: String| {
        vec![
            Span::styled(format!("{name} "), theme.muted),
            Span::raw(value),
        ]
    };
    let mut fields = vec![
        field(
            "VIN",
            record
                .vin
                .as_deref()
                .map_or_else(|| "—".into(), |v| one_line(v).into_owned()),
        ),
        field("vehicle", one_line(&record.vehicle_id).into_owned()),
        field("user", one_line(&record.user_id).into_owned()),
        vec![Span::styled(
            format!("checked {}", ago(app.now, record.last_probe_at)),
            theme.muted,
        )],
    ];
    if record.stale {
        fields.push(vec![Span::styled(
            "(from the last session, not probed since)",
            theme.warning,
        )]);
    }
    if let Some(since) = record.failing_since {
        fields.push(vec![Span::styled(
            format!(
                "first seen failing {}",
                crate::report::format_instant(since)
            ),
            theme.muted,
        )]);
    }
    if let Some(w) = app.store.watches.get(&record.vehicle_id) {
        let text = match (w.recovered, w.next_probe_at) {
            (Some(r), _) => format!(
                "watched · recovered at {} ({})",
                r.at.strftime("%H:%M"),
                r.cause.label()
            ),
            (None, Some(next)) => format!(
                "watched since {} · next probe {}",
                w.since.strftime("%H:%M"),
                next.strftime("%H:%M")
            ),
            (None, None) => format!(
                "watched since {} · the desk tells",
                w.since.strftime("%H:%M")
            ),
        };
        let style = if w.recovered.is_some() {
            theme.healthy
        } else {
            theme.warning
        };
        fields.push(vec![Span::styled(text, style)]);
    }
    if let Some(connected) = &record.connected_at {
        fields.push(vec![Span::styled(
            format!(
                "connected {}",
                crate::report::format_sent_instant(connected)
            ),
            theme.muted,
        )]);
    }
    let mut lines = vec![Line::from(first)];
    let mut current: Vec<Span<'static>> = Vec::new();
    let mut used = 0usize;
    for spans in fields {
        let w: usize = spans.iter().map(|s| s.width()).sum();
        if !current.is_empty() && used + 2 + w > usize::from(width) {
            lines.push(Line::from(std::mem::take(&mut current)));
            used = 0;
        }
        if !current.is_empty() {
            current.push(Span::raw("  "));
            used += 2;
        }
        current.extend(spans);
        used += w;
    }
    if !current.is_empty() {
        lines.push(Line::from(current));
    }
    lines
}

fn raw_lines(record: &VehicleRecord) -> Vec<Line<'static>> {
    let json = match &record.report() {
        Some(report) => {
            serde_json::to_string_pretty(&report.observations).unwrap_or_else(|e| e.to_string())
        }
        None => "not probed yet: no responses".into(),
    };
    // serde escapes C0 controls but not DEL, C1 or bidi controls: each line is cleaned too.
    json.lines()
        .map(|l| Line::from(one_line(l).into_owned()))
        .collect()
}

fn vehicle(app: &App, frame: &mut Frame, area: Rect) -> Vec<LinkArea> {
    let theme = &app.config.theme;
    let title_lines = match app.page_vehicle() {
        Some(record) => vehicle_title(app, record, area.width),
        None => Vec::new(),
    };
    let [head, title, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(title_lines.len().max(2) as u16),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header(app, theme, area.width)), head);
    let (Some(page), Some(record)) = (app.page(), app.page_vehicle()) else {
        let id = app.page().map(|p| p.vehicle_id.clone()).unwrap_or_default();
        frame.render_widget(
            Paragraph::new(format!("vehicle {id} is no longer in the fleet")),
            body,
        );
        frame.render_widget(Paragraph::new(footer(app, theme)), foot);
        return Vec::new();
    };
    frame.render_widget(Paragraph::new(title_lines), title);

    let (lines, title_text) = vehicle_body(app, record, page.raw);
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(theme.border)
        .title(Span::styled(title_text, theme.title));
    let inner = block.inner(body);
    frame.render_widget(block, body);
    let max_scroll = page_max_scroll(&lines, inner.width, inner.height);
    let scroll = usize::from(page.scroll.min(max_scroll));
    let links = render_page(&lines, inner, scroll, theme, frame.buffer_mut());
    let line = if app.overlay == Overlay::Command {
        command_line(app, theme)
    } else {
        footer(app, theme)
    };
    frame.render_widget(Paragraph::new(line), foot);
    links
}

/// Where the help overlay goes on a screen of `area`.
fn help_popup(area: Rect) -> Rect {
    let width = area.width.saturating_sub(4).min(90);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + 1,
        width,
        height: area.height.saturating_sub(2),
    }
}

/// The cells of a help row's key column: two spaces, then the keys padded to 16.
const HELP_KEYS_WIDTH: usize = 18;

/// The help overlay's text in its frame: the keys of the screen under it, of the input lines and of help.
fn help_paragraph<'a>(app: &App) -> Paragraph<'a> {
    let theme = &app.config.theme;
    let mut lines = Vec::new();
    let under = match app.screen() {
        Screen::Fleet => KeyContext::Fleet,
        Screen::Vehicle(_) => KeyContext::Vehicle,
    };
    if !app.config.warnings.is_empty() {
        lines.push(Line::from(Span::styled("Warnings at start", theme.warning)));
        for warning in &app.config.warnings {
            lines.push(Line::from(Span::styled(
                format!("  ! {}", one_line(warning)),
                theme.warning,
            )));
        }
        lines.push(Line::default());
    }
    let contexts = [
        under,
        KeyContext::FilterInput,
        KeyContext::CommandInput,
        KeyContext::Help,
    ];
    for context in contexts {
        lines.push(Line::from(Span::styled(
            context.title().to_string(),
            theme.title,
        )));
        for row in app.config.keymap.help_rows(context) {
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<16}", row.keys), theme.key),
                Span::raw(row.description),
            ]));
        }
        lines.push(Line::default());
    }
    // What a copy can promise here, and how to make OSC 52 reach the clipboard through tmux.
    lines.push(Line::from(Span::styled("Copying", theme.title)));
    lines.push(Line::from(Span::raw(format!(
        "  {}",
        one_line(&app.config.copying)
    ))));
    lines.push(Line::from(vec![
        Span::raw("  tmux passes OSC 52 on with:  "),
        Span::styled("set -g set-clipboard on", theme.key),
    ]));
    lines.push(Line::from(vec![
        Span::raw("  tmux inside tmux also needs: "),
        Span::styled("set -g allow-passthrough on", theme.key),
    ]));
    lines.push(Line::from(Span::styled(
        "  Nothing arrived? The vehicle page shows the fix link whole, to select",
        theme.muted,
    )));
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        "Filter: status:blocked make:tesla model:\"model 3\" year:<2021 rule:ID finding:ID user:ID vin:5YJ has:token checked:no !term; words like `model 3` read as a model when one is so named, else fuzzy",
        theme.muted,
    )));
    // The ids `rule:` and `finding:` take (a prefix will do), so nobody has to guess them.
    let rules: Vec<String> = app
        .config
        .policies
        .rules
        .iter()
        .map(|r| one_line(&r.id).into_owned())
        .collect();
    if !rules.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("  rule: ", theme.key),
            Span::styled(rules.join(", "), theme.muted),
        ]));
    }
    let findings: Vec<String> = app
        .store
        .counts()
        .by_finding
        .iter()
        .map(|(id, n)| format!("{} ({})", one_line(id), grouped(*n)))
        .collect();
    lines.push(Line::from(vec![
        Span::styled("  finding: ", theme.key),
        Span::styled(
            if findings.is_empty() {
                "none in this fleet yet".to_string()
            } else {
                findings.join(", ")
            },
            theme.muted,
        ),
    ]));
    // A key's description wraps under itself, any other line under its own start.
    let width = help_popup(Rect::new(0, 0, app.width, app.height))
        .width
        .saturating_sub(2);
    let lines: Vec<Line<'static>> = lines
        .into_iter()
        .flat_map(|line| {
            let key_row = line.spans.len() >= 2 && line.spans[0].width() == HELP_KEYS_WIDTH;
            let indent = if key_row {
                HELP_KEYS_WIDTH as u16
            } else {
                let spaces = line
                    .spans
                    .iter()
                    .flat_map(|s| s.content.chars())
                    .take_while(|c| *c == ' ')
                    .count();
                u16::try_from(spaces).unwrap_or(0)
            };
            hang(&line, width, indent)
        })
        .collect();
    let block = Block::bordered()
        .title(Span::styled(" help ", theme.title))
        .border_style(theme.border);
    Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false })
        .style(Style::new())
}

/// The furthest the help overlay scrolls at the app's size: its last row at the bottom of the frame.
pub fn help_max_scroll(app: &App) -> u16 {
    let popup = help_popup(Rect::new(0, 0, app.width, app.height));
    // The side borders narrow the text; the top and bottom ones count in both the rows and the frame.
    max_scroll(
        &help_paragraph(app),
        popup.width.saturating_sub(2),
        popup.height,
    )
}

fn help(app: &App, frame: &mut Frame, area: Rect, scroll: u16) {
    let popup = help_popup(area);
    let paragraph = help_paragraph(app);
    // Never scroll the last line out of sight, counting the rows long lines wrap to.
    let last = max_scroll(&paragraph, popup.width.saturating_sub(2), popup.height);
    frame.render_widget(Clear, popup);
    frame.render_widget(paragraph.scroll((scroll.min(last), 0)), popup);
}
