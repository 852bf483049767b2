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
        segments.push(Segment::new(
            98,
            vec![Span::styled(
                format!(
                    " rate limited until {at} ({}) ",
                    crate::health::remedy::human_seconds(u64::try_from(wait).unwrap_or(0))
                ),
                theme.error,
            )],
        ));
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
    if let Some(error) = app.store.source_error() {
        segments.push(Segment::new(
            96,
            vec![Span::styled(format!(" {} ", one_line(error)), theme.error)],
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
    let mut spans = Vec::new();
    for hint in app.config.keymap.hints(app.context()) {
        spans.push(Span::styled(hint.keys, theme.key));
        spans.push(Span::styled(format!(" {}  ", hint.label), theme.muted));
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

/// The fleet table's columns, with the sort arrow on the sorted one. The finding is what an agent reads
/// first: it keeps 36 cells (a rule's title) against every column but the vehicle and its VIN.
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
        Column::fixed("Key", 11, 50),
        Column::fill("Finding", 19, FINDING_PRIORITY).preferring(36, VIN_PRIORITY),
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
        Some(f) => Span::raw(one_line(&f.title).into_owned()),
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
                let text = if unchecked > 0 {
                    format!(
                        "no vehicle matches the filter; {unchecked} of {} vehicles are not checked yet, and what a probe reads (the VIN; on API v2.0 the make and model too) is unknown until they are (they are probed as the sweep reaches them, or open one with :vehicle ID)",
                        c.total
                    )
                } else {
                    "no vehicle matches the filter".into()
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

    lines.push(PageLine::Text(section("Findings", theme)));
    if diagnosis.findings.is_empty() {
        let text = if record.last_probe_at.is_none() {
            "not checked yet"
        } else {
            "no findings: data flows"
        };
        lines.push(PageLine::Text(Line::from(Span::styled(
            format!("  {text}"),
            theme.muted,
        ))));
    }
    for f in &diagnosis.findings {
        let status = Status::from_severity(f.severity);
        lines.push(PageLine::Text(Line::from(vec![
            Span::raw("  "),
            Span::styled(
                format!("{} {}", status_symbol(status), f.severity.label()),
                theme.status(status),
            ),
            Span::raw("  "),
            Span::styled(one_line(&f.title).into_owned(), theme.title),
        ])));
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
            meta.push(Span::styled(
                format!(" · since {}", one_line(since)),
                theme.muted,
            ));
        }
        lines.push(PageLine::Text(Line::from(meta)));
        // What to do comes before the proof: on a small terminal the fix and its link stay in view,
        // and the evidence, one line per signal under API v3, follows.
        lines.push(PageLine::Text(Line::from(vec![
            Span::raw("    fix: "),
            Span::raw(one_line(&f.remedy.action).into_owned()),
        ])));
        if let Some(link) = &f.remedy.link {
            lines.push(PageLine::Text(Line::from(Span::raw("    link:"))));
            lines.push(PageLine::link(app, link));
        }
        for e in &f.evidence {
            let mut text = format!("    ↳ {}", one_line(&e.endpoint));
            if let Some(s) = e.http_status {
                text.push_str(&format!(" → {s}"));
            }
            if let Some(tc) = &e.type_code {
                text.push_str(&format!(" {}", one_line(tc)));
            }
            if let Some(id) = &e.request_id {
                text.push_str(&format!(" · request {}", one_line(id)));
            }
            // The exact time, as an escalation quotes it.
            text.push_str(&format!(" · {}", e.at.strftime("%Y-%m-%d %H:%M:%S UTC")));
            lines.push(PageLine::Text(Line::from(Span::raw(text))));
        }
    }
    lines.push(PageLine::Text(Line::from(vec![
        Span::raw("  "),
        Span::styled(key(Action::CopyFixLink), theme.key),
        Span::raw(" copy fix link  "),
        Span::styled(key(Action::CopyReply), theme.key),
        Span::raw(" copy customer reply  "),
        Span::styled(key(Action::CopyEvidence), theme.key),
        Span::raw(" copy evidence  "),
        Span::styled(key(Action::Reprobe), theme.key),
        Span::raw(" re-probe  "),
        Span::styled(key(Action::OpenLink), theme.key),
        Span::raw(" open link"),
    ])));
    if let Some(reply) = diagnosis
        .main_finding()
        .map(|f| one_line(&f.remedy.customer_reply).into_owned())
        .filter(|r| !r.is_empty())
    {
        lines.push(PageLine::Text(Line::from(vec![
            Span::styled("  reply: ", theme.muted),
            Span::raw(reply),
        ])));
    }

    lines.push(PageLine::Text(Line::default()));
    lines.push(PageLine::Text(section(
        "Permissions (needed · at Smartcar · at Tesla)",
        theme,
    )));
    let grid = facts::permissions(&record.glance, is_tesla(record), &app.config.needs);
    if grid.is_empty() {
        lines.push(PageLine::Text(Line::from(Span::styled(
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
        lines.push(PageLine::Text(Line::from(spans)));
    }

    lines.push(PageLine::Text(Line::default()));
    lines.push(PageLine::Text(section("Virtual key", theme)));
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
    lines.push(PageLine::Text(Line::from(vk_line)));
    if let Some(link) = pairing {
        lines.push(PageLine::link(app, &link));
    }

    lines.push(PageLine::Text(Line::default()));
    lines.push(PageLine::Text(section("Status history", theme)));
    if record.history.is_empty() {
        lines.push(PageLine::Text(Line::from(Span::styled(
            "  no changes yet",
            theme.muted,
        ))));
    }
    for change in record.history.iter().rev() {
        lines.push(PageLine::Text(Line::from(vec![
            Span::styled(
                format!("  {}  ", crate::report::format_instant(change.at)),
                theme.muted,
            ),
            status_badge(change.from, theme),
            Span::raw(" → "),
            status_badge(change.to, theme),
        ])));
    }
    lines
}

/// The furthest a wrapped paragraph scrolls: its last row at the bottom of `visible` rows of `width` cells.
fn max_scroll(paragraph: &Paragraph, width: u16, visible: u16) -> u16 {
    let rows = paragraph.line_count(width);
    u16::try_from(rows.saturating_sub(usize::from(visible))).unwrap_or(u16::MAX)
}

/// A line of the vehicle page. Text wraps; a link never does: selected across a wrap it would be two
/// broken halves, so it sits on a row of its own and is clipped at the edge (the copy key copies it whole).
#[derive(Debug, Clone)]
enum PageLine {
    Text(Line<'static>),
    Link {
        /// Cleaned for the screen.
        text: String,
        /// The link policy allows it: only then is it a hyperlink.
        allowed: bool,
    },
}

impl PageLine {
    fn link(app: &App, link: &str) -> PageLine {
        let policy = LinkPolicy::new(&app.config.needs.connect_origin);
        PageLine::Link {
            text: one_line(link).into_owned(),
            allowed: policy.allows(link),
        }
    }

    /// Rows it takes at `width`.
    fn rows(&self, width: u16) -> usize {
        match self {
            PageLine::Text(line) => Paragraph::new(line.clone())
                .wrap(Wrap { trim: false })
                .line_count(width)
                .max(1),
            PageLine::Link { .. } => 1,
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
            PageLine::Text(text) => Paragraph::new(text.clone())
                .wrap(Wrap { trim: false })
                .scroll((u16::try_from(skip).unwrap_or(u16::MAX), 0))
                .render(rect, buf),
            PageLine::Link { text, allowed } => {
                // Indented like the text around it when there is room, else from the first column.
                let width = Span::raw(text.as_str()).width();
                let indent: u16 = if width + 4 <= usize::from(area.width) {
                    4
                } else {
                    0
                };
                let cells = Rect {
                    x: rect.x + indent,
                    width: rect
                        .width
                        .saturating_sub(indent)
                        .min(u16::try_from(width).unwrap_or(u16::MAX)),
                    ..rect
                };
                Paragraph::new(Span::styled(text.clone(), theme.link)).render(cells, buf);
                if *allowed && !cells.is_empty() {
                    links.push(LinkArea {
                        area: Rect { height: 1, ..cells },
                        url: text.clone(),
                    });
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
            raw_lines(record).into_iter().map(PageLine::Text).collect(),
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
            format!("failing since {}", crate::report::format_instant(since)),
            theme.muted,
        )]);
    }
    if let Some(connected) = &record.connected_at {
        fields.push(vec![Span::styled(
            format!("connected {}", one_line(connected)),
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
