//! Draws the App: the fleet view, the vehicle view and the help overlay. Pure functions of the state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::health::Status;
use crate::store::{SortColumn, VehicleRecord};
use crate::tui::app::{App, Overlay, Screen};
use crate::tui::facts::{self, Grant};
use crate::tui::keymap::KeyContext;
use crate::tui::theme::Theme;
use crate::tui::widgets::badge::{grant_word, status_symbol};
use crate::tui::widgets::{
    Column, DataTable, ago, deadline_spans, grant_badge, progress_line, spinner_frame,
    status_badge, virtual_key_badge,
};
use crate::untrusted::text::one_line;

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    match app.screen() {
        Screen::Fleet => fleet(app, frame, area),
        Screen::Vehicle(_) => vehicle(app, frame, area),
    }
    if let Overlay::Help { scroll } = app.overlay {
        help(app, frame, area, scroll);
    }
}

fn header(app: &App, theme: &Theme) -> Line<'static> {
    let mode_style = if app.config.mode_label.eq_ignore_ascii_case("LIVE") {
        theme.live
    } else {
        theme.demo
    };
    let counts = app.store.counts();
    let mut spans = vec![
        Span::styled(" vtriage ", theme.header),
        Span::styled(format!(" {} ", app.config.mode_label), mode_style),
        Span::raw(format!(
            " fleet {} · checked {} ",
            counts.total, counts.checked
        )),
    ];
    if let Some(until) = app.store.rate_limited_until().filter(|u| *u > app.now) {
        let wait = until.as_second() - app.now.as_second();
        spans.push(Span::styled(
            format!(" rate-limited, waiting {wait}s "),
            theme.error,
        ));
    }
    if let Some(error) = app.store.source_error() {
        spans.push(Span::styled(format!(" {error} "), theme.error));
    }
    let progress = app.store.progress();
    // The budget before the sweep offer: on a narrow terminal the header is cut from the right.
    if let Some(left) = progress.budget_left {
        let refill = progress
            .budget_refill_per_min
            .map(|r| format!(" +{r:.0}/min"))
            .unwrap_or_default();
        spans.push(Span::styled(
            format!("· budget {:.0}{refill} ", left.floor()),
            theme.muted,
        ));
    }
    if let Some((requests, eta_s)) = app
        .store
        .sweep_cost()
        .filter(|(requests, _)| !app.sweep_started && *requests > 0)
    {
        spans.push(Span::styled(
            format!(
                "· sweep: {requests} requests ≈ {} (:sweep) ",
                crate::health::remedy::human_seconds(eta_s)
            ),
            theme.warning,
        ));
    }
    if let Some(at) = app.updated_at {
        spans.push(Span::styled(
            format!("· updated {} ", ago(app.now, Some(at))),
            theme.muted,
        ));
    }
    spans.push(Span::styled(
        format!("· {}", app.config.origin),
        theme.muted,
    ));
    Line::from(spans)
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

fn status_summary(app: &App, theme: &Theme) -> Line<'static> {
    let filter = app.store.filter_text().to_ascii_lowercase();
    let mut spans = Vec::new();
    for (i, status) in Status::ALL.into_iter().enumerate() {
        let count = app.store.counts().status(status);
        let active = filter
            .split_whitespace()
            .any(|t| t == format!("status:{}", status.label().to_ascii_lowercase()));
        let style = if active {
            theme.selection.patch(theme.status(status))
        } else {
            theme.status(status)
        };
        spans.push(Span::styled(format!("{} ", i + 1), theme.key));
        spans.push(Span::styled(
            format!("{} {} {count}", status_symbol(status), status.label()),
            style,
        ));
        spans.push(Span::raw("  "));
    }
    Line::from(spans)
}

fn filter_line(app: &App, theme: &Theme) -> Line<'static> {
    let editing = app.overlay == Overlay::Filter;
    let text = if editing {
        app.filter_input.text().to_string()
    } else {
        app.store.filter_text().to_string()
    };
    let mut spans = vec![Span::styled("/", theme.key), Span::raw(text)];
    if editing {
        spans.push(Span::styled("█", theme.key));
    }
    match &app.filter_error {
        Some(error) if editing => spans.push(Span::styled(format!("  {error}"), theme.blocked)),
        _ => spans.push(Span::styled(
            format!("  {} of {}", app.store.visible_len(), app.store.len()),
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

/// The fleet table's columns, with the sort arrow on the sorted one.
fn fleet_columns(sort: (SortColumn, bool)) -> Vec<Column> {
    let mut columns = vec![
        Column::fixed("Status", 10, 10),
        Column::fixed("Vehicle", 22, 8),
        Column::fixed("VIN", 17, 5),
        Column::fixed("User", 12, 3),
        Column::fixed("Permissions", 22, 4),
        Column::fixed("Key", 11, 6),
        Column::fill("Finding", 16, 9),
        Column::fixed("Checked", 8, 7),
    ];
    let sorted = match sort.0 {
        SortColumn::Status => Some(0),
        SortColumn::Vehicle => Some(1),
        SortColumn::Vin => Some(2),
        SortColumn::User => Some(3),
        SortColumn::Finding => Some(6),
        SortColumn::Checked => Some(7),
        SortColumn::VehicleId => None,
    };
    if let Some(c) = sorted.and_then(|i| columns.get_mut(i)) {
        c.sorted = Some(sort.1);
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
    let permissions: Vec<Span> =
        facts::permissions(&record.glance, is_tesla(record), &app.config.needs)
            .into_iter()
            .filter(|p| p.needed)
            .flat_map(|p| {
                [
                    grant_badge(p.overall(), p.kind.name(), theme),
                    Span::raw(" "),
                ]
            })
            .collect();
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
    let checked = if record.stale {
        format!("{}*", ago(app.now, record.last_probe_at))
    } else {
        ago(app.now, record.last_probe_at)
    };
    vec![
        status,
        match record.attributes {
            Some(_) => Line::from(vehicle_label(record)),
            None => Line::from(Span::styled(vehicle_label(record), theme.muted)),
        },
        Line::from(
            record
                .vin
                .as_deref()
                .map_or_else(|| "—".into(), |v| one_line(v).into_owned()),
        ),
        Line::from(one_line(&record.user_id).into_owned()),
        Line::from(permissions),
        Line::from(key),
        Line::from(finding),
        Line::from(Span::styled(checked, theme.muted)),
    ]
}

fn fleet(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.config.theme;
    let rules: Vec<_> = app.config.policies.rules.iter().take(3).collect();
    let show_filter = app.overlay == Overlay::Filter || !app.store.filter_text().is_empty();
    let mut constraints = vec![Constraint::Length(1), Constraint::Length(1)];
    constraints.extend(rules.iter().map(|_| Constraint::Length(1)));
    constraints.push(Constraint::Length(1));
    if show_filter {
        constraints.push(Constraint::Length(1));
    }
    constraints.push(Constraint::Fill(1));
    constraints.push(Constraint::Length(1));
    let areas = Layout::vertical(constraints).split(area);
    let mut next = areas.iter().copied();
    let mut take = || next.next().unwrap_or_default();

    frame.render_widget(Paragraph::new(header(app, theme)), take());
    frame.render_widget(
        Paragraph::new(progress_line(app.store.progress(), area.width, theme)),
        take(),
    );
    for rule in rules {
        let affected = app
            .store
            .counts()
            .by_rule
            .get(&rule.id)
            .copied()
            .unwrap_or(0);
        frame.render_widget(
            Paragraph::new(Line::from(deadline_spans(rule, app.now, affected, theme))),
            take(),
        );
    }
    frame.render_widget(Paragraph::new(status_summary(app, theme)), take());
    if show_filter {
        frame.render_widget(Paragraph::new(filter_line(app, theme)), take());
    }
    let table_area = take();
    let height = DataTable::body_height(table_area);
    let total = app.store.visible_len();
    if total == 0 {
        let (text, style) = match app.store.source_error() {
            Some(error) if app.store.is_empty() => (
                format!("the fleet could not be listed: {error} (:refresh tries again)"),
                theme.error,
            ),
            _ if app.store.is_empty() => ("waiting for the fleet listing…".into(), theme.muted),
            _ => {
                // VINs, makes and models are known only once a vehicle has been probed.
                let c = app.store.counts();
                let unchecked = c.total.saturating_sub(c.checked);
                let text = if unchecked > 0 {
                    format!(
                        "no vehicle matches the filter; {unchecked} of {} vehicles are not checked yet, and their VIN, make and model are unknown until they are (they are probed as the sweep reaches them, or open one with :vehicle ID)",
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
    let foot = take();
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

fn vehicle_lines(app: &App, record: &VehicleRecord, theme: &Theme) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = Vec::new();
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

    lines.push(section("Findings", theme));
    if diagnosis.findings.is_empty() {
        let text = if record.last_probe_at.is_none() {
            "not checked yet"
        } else {
            "no findings: data flows"
        };
        lines.push(Line::from(Span::styled(format!("  {text}"), theme.muted)));
    }
    for f in &diagnosis.findings {
        let status = Status::from_severity(f.severity);
        lines.push(Line::from(vec![
            Span::raw("  "),
            Span::styled(
                format!("{} {}", status_symbol(status), f.severity.label()),
                theme.status(status),
            ),
            Span::raw("  "),
            Span::styled(one_line(&f.title).into_owned(), theme.title),
        ]));
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
        lines.push(Line::from(meta));
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
            lines.push(Line::from(Span::raw(text)));
        }
        lines.push(Line::from(vec![
            Span::raw("    fix: "),
            Span::raw(one_line(&f.remedy.action).into_owned()),
        ]));
        if let Some(link) = &f.remedy.link {
            lines.push(Line::from(vec![
                Span::raw("    link: "),
                Span::styled(one_line(link).into_owned(), theme.link),
            ]));
        }
    }
    lines.push(Line::from(vec![
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
    ]));
    if let Some(reply) = diagnosis
        .main_finding()
        .map(|f| one_line(&f.remedy.customer_reply).into_owned())
        .filter(|r| !r.is_empty())
    {
        lines.push(Line::from(vec![
            Span::styled("  reply: ", theme.muted),
            Span::raw(reply),
        ]));
    }

    lines.push(Line::default());
    lines.push(section(
        "Permissions (needed · at Smartcar · at Tesla)",
        theme,
    ));
    let grid = facts::permissions(&record.glance, is_tesla(record), &app.config.needs);
    if grid.is_empty() {
        lines.push(Line::from(Span::styled("  not read yet", theme.muted)));
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
        lines.push(Line::from(spans));
    }

    lines.push(Line::default());
    lines.push(section("Virtual key", theme));
    let vk = facts::virtual_key(
        record.attributes.as_ref(),
        &record.glance,
        &record.verdict,
        &app.config.policies,
    );
    let mut vk_line = vec![Span::raw("  "), virtual_key_badge(vk, theme)];
    if let Some(link) = diagnosis
        .findings
        .iter()
        .find(|f| f.remedy.kind == crate::health::RemedyKind::AddVirtualKey)
        .and_then(|f| f.remedy.link.clone())
    {
        vk_line.push(Span::raw("  pairing link: "));
        vk_line.push(Span::styled(one_line(&link).into_owned(), theme.link));
    }
    lines.push(Line::from(vk_line));

    lines.push(Line::default());
    lines.push(section("Status history", theme));
    if record.history.is_empty() {
        lines.push(Line::from(Span::styled("  no changes yet", theme.muted)));
    }
    for change in record.history.iter().rev() {
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {}  ", crate::report::format_instant(change.at)),
                theme.muted,
            ),
            status_badge(change.from, theme),
            Span::raw(" → "),
            status_badge(change.to, theme),
        ]));
    }
    lines
}

/// The furthest a wrapped paragraph scrolls: its last row at the bottom of `visible` rows of `width` cells.
fn max_scroll(paragraph: &Paragraph, width: u16, visible: u16) -> u16 {
    let rows = paragraph.line_count(width);
    u16::try_from(rows.saturating_sub(usize::from(visible))).unwrap_or(u16::MAX)
}

/// The vehicle page's body: its lines (summary or raw responses) wrapped as drawn, under a top border.
fn vehicle_body<'a>(app: &App, record: &VehicleRecord, raw: bool) -> Paragraph<'a> {
    let theme = &app.config.theme;
    let (lines, title_text) = if raw {
        (raw_lines(record), " raw last responses (J to close) ")
    } else {
        (vehicle_lines(app, record, theme), "")
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(theme.border)
        .title(Span::styled(title_text, theme.title));
    Paragraph::new(Text::from(lines))
        .block(block)
        .wrap(Wrap { trim: false })
}

/// The furthest the vehicle page on screen scrolls, as drawn at the app's size (for `update`).
pub fn vehicle_page_max_scroll(app: &App) -> u16 {
    let (Some(page), Some(record)) = (app.page(), app.page_vehicle()) else {
        return 0;
    };
    let title_rows = vehicle_title(app, record, app.width).len().max(2) as u16;
    // The body is what the header, the title and the footer leave (its top border counts in both).
    let body = app.height.saturating_sub(2 + title_rows);
    max_scroll(&vehicle_body(app, record, page.raw), app.width, body)
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

fn vehicle(app: &App, frame: &mut Frame, area: Rect) {
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
    frame.render_widget(Paragraph::new(header(app, theme)), head);
    let (Some(page), Some(record)) = (app.page(), app.page_vehicle()) else {
        let id = app.page().map(|p| p.vehicle_id.clone()).unwrap_or_default();
        frame.render_widget(
            Paragraph::new(format!("vehicle {id} is no longer in the fleet")),
            body,
        );
        frame.render_widget(Paragraph::new(footer(app, theme)), foot);
        return;
    };
    frame.render_widget(Paragraph::new(title_lines), title);

    let paragraph = vehicle_body(app, record, page.raw);
    let max_scroll = max_scroll(&paragraph, body.width, body.height);
    frame.render_widget(paragraph.scroll((page.scroll.min(max_scroll), 0)), body);
    let line = if app.overlay == Overlay::Command {
        command_line(app, theme)
    } else {
        footer(app, theme)
    };
    frame.render_widget(Paragraph::new(line), foot);
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
    lines.push(Line::from(Span::styled(
        "Filter: status:blocked make:tesla model:\"model 3\" year:<2021 rule:ID finding:ID user:ID vin:5YJ has:token checked:no !term, else fuzzy",
        theme.muted,
    )));
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
