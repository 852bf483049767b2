//! One sortable table for every list: it is handed only the rows on screen, drops low-priority columns
//! when narrow, marks the sort column and draws a scrollbar.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    HighlightSpacing, Row, Scrollbar, ScrollbarOrientation, ScrollbarState, StatefulWidget, Table,
    TableState, Widget,
};

use crate::tui::theme::Theme;

/// A column: its title, width, and how much it matters when space runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub title: &'static str,
    /// Cells wide; `None` takes what is left (at least `min_width`).
    pub width: Option<u16>,
    pub min_width: u16,
    /// What a fill column wants before any column less important than `yields_to` gets in: the text it
    /// holds is worth more than one more column.
    pub preferred_width: u16,
    /// A fill column shrinks from its preferred width to its minimum only for columns of at least this priority.
    pub yields_to: u8,
    /// Higher stays longer when the terminal is narrow.
    pub priority: u8,
    /// `Some(descending)` on the column the rows are sorted by.
    pub sorted: Option<bool>,
}

impl Column {
    pub const fn fixed(title: &'static str, width: u16, priority: u8) -> Column {
        Column {
            title,
            width: Some(width),
            min_width: width,
            preferred_width: width,
            yields_to: 0,
            priority,
            sorted: None,
        }
    }

    pub const fn fill(title: &'static str, min_width: u16, priority: u8) -> Column {
        Column {
            title,
            width: None,
            min_width,
            preferred_width: min_width,
            yields_to: 0,
            priority,
            sorted: None,
        }
    }

    /// Marks the column the rows are sorted by, wide enough for its title and the arrow: the arrow is
    /// how the agent knows the order.
    pub fn sort(&mut self, descending: bool) {
        self.sorted = Some(descending);
        let need = u16::try_from(self.title.chars().count() + 2).unwrap_or(u16::MAX);
        self.min_width = self.min_width.max(need);
        self.preferred_width = self.preferred_width.max(need);
        self.width = self.width.map(|w| w.max(need));
    }

    /// A fill column that keeps `preferred_width` against every column less important than `yields_to`.
    pub const fn preferring(mut self, preferred_width: u16, yields_to: u8) -> Column {
        self.preferred_width = if preferred_width > self.min_width {
            preferred_width
        } else {
            self.min_width
        };
        self.yields_to = yields_to;
        self
    }
}

/// The first row to show so that `selected` stays on screen, moving as little as possible from `offset`.
pub fn window_offset(total: usize, height: usize, selected: Option<usize>, offset: usize) -> usize {
    if height == 0 || total <= height {
        return 0;
    }
    let max = total - height;
    let offset = offset.min(max);
    match selected {
        Some(s) if s < offset => s,
        Some(s) if s >= offset + height => (s + 1 - height).min(max),
        _ => offset,
    }
}

/// Which columns fit in `width`, by priority, returned in their original order.
///
/// Columns are placed most important first. A fill column shrinks toward its minimum only for a column
/// it yields to; for any other column it keeps its preferred width, and that column gets in only if it
/// fits beside it. So a less important column never takes the place of one the fill column yields to.
pub fn fitting_columns(columns: &[Column], width: u16) -> Vec<usize> {
    let mut by_priority: Vec<usize> = (0..columns.len()).collect();
    by_priority.sort_by_key(|&i| std::cmp::Reverse(columns[i].priority));
    let need = |kept: &[usize], shrink_for: u8| -> u32 {
        let cells: u32 = kept
            .iter()
            .map(|&i| {
                let c = &columns[i];
                u32::from(if shrink_for >= c.yields_to {
                    c.min_width
                } else {
                    c.preferred_width
                })
            })
            .sum();
        // One cell between two columns.
        cells + u32::try_from(kept.len().saturating_sub(1)).unwrap_or(u32::MAX)
    };
    let width = u32::from(width);
    let mut kept: Vec<usize> = Vec::new();
    for &i in &by_priority {
        kept.push(i);
        if need(&kept, columns[i].priority) > width {
            kept.pop();
        }
    }
    kept.sort_unstable();
    kept
}

/// A table over a window of a longer list. Build it with the rows on screen only.
pub struct DataTable<'a> {
    columns: Vec<Column>,
    rows: Vec<Vec<Line<'a>>>,
    total: usize,
    offset: usize,
    selected: Option<usize>,
    theme: &'a Theme,
}

/// The selection marker, and the cells it takes before every row.
const MARKER: &str = "▶ ";
const MARKER_WIDTH: u16 = 2;

impl<'a> DataTable<'a> {
    pub fn new(columns: Vec<Column>, theme: &'a Theme) -> DataTable<'a> {
        DataTable {
            columns,
            rows: Vec::new(),
            total: 0,
            offset: 0,
            selected: None,
            theme,
        }
    }

    /// The visible rows: `items` are rows `offset..` of a list of `total`; `cells` makes one cell per column.
    pub fn rows<T>(
        mut self,
        offset: usize,
        total: usize,
        items: impl IntoIterator<Item = T>,
        cells: impl Fn(T) -> Vec<Line<'a>>,
    ) -> DataTable<'a> {
        self.offset = offset;
        self.total = total;
        self.rows = items.into_iter().map(cells).collect();
        self
    }

    /// The selected row, as an index into the whole list.
    pub fn selected(mut self, selected: Option<usize>) -> DataTable<'a> {
        self.selected = selected;
        self
    }

    /// How many rows fit in `area` under the header.
    pub fn body_height(area: Rect) -> usize {
        usize::from(area.height.saturating_sub(1))
    }
}

impl Widget for DataTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let body = usize::from(area.height.saturating_sub(1));
        let scroll = self.total > body;
        let usable = area.width.saturating_sub(MARKER_WIDTH + u16::from(scroll));
        let shown = fitting_columns(&self.columns, usable);
        let header = Row::new(shown.iter().map(|&i| {
            let c = &self.columns[i];
            let arrow = match c.sorted {
                Some(true) => " ▼",
                Some(false) => " ▲",
                None => "",
            };
            Line::from(Span::styled(
                format!("{}{arrow}", c.title),
                self.theme.title,
            ))
        }));
        let widths: Vec<Constraint> = shown
            .iter()
            .map(|&i| match self.columns[i].width {
                Some(w) => Constraint::Length(w),
                None => Constraint::Fill(1),
            })
            .collect();
        let rows = self.rows.into_iter().map(|cells| {
            let cells: Vec<Line> = cells
                .into_iter()
                .enumerate()
                .filter(|(i, _)| shown.contains(i))
                .map(|(_, cell)| cell)
                .collect();
            Row::new(cells)
        });
        let table = Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .row_highlight_style(self.theme.selection)
            .highlight_symbol(MARKER)
            .highlight_spacing(HighlightSpacing::Always);
        let mut state = TableState::default().with_selected(
            self.selected
                .and_then(|s| s.checked_sub(self.offset))
                .filter(|s| *s < body),
        );
        let table_area = Rect {
            width: area.width.saturating_sub(u16::from(scroll)),
            ..area
        };
        StatefulWidget::render(table, table_area, buf, &mut state);
        if scroll {
            let bar_area = Rect {
                y: area.y + 1,
                height: area.height.saturating_sub(1),
                ..area
            };
            let mut bar =
                ScrollbarState::new(self.total.saturating_sub(body)).position(self.offset);
            Scrollbar::new(ScrollbarOrientation::VerticalRight)
                .begin_symbol(None)
                .end_symbol(None)
                .thumb_style(self.theme.title)
                .track_style(self.theme.muted)
                .render(bar_area, buf, &mut bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_follows_the_selection_with_the_least_movement() {
        assert_eq!(window_offset(100, 10, Some(0), 0), 0);
        assert_eq!(window_offset(100, 10, Some(9), 0), 0);
        assert_eq!(window_offset(100, 10, Some(10), 0), 1);
        assert_eq!(window_offset(100, 10, Some(50), 45), 45);
        assert_eq!(window_offset(100, 10, Some(3), 45), 3);
        assert_eq!(window_offset(100, 10, None, 95), 90, "never past the end");
        assert_eq!(window_offset(5, 10, Some(4), 3), 0, "everything fits");
    }

    #[test]
    fn narrow_tables_drop_the_least_important_columns() {
        let columns = [
            Column::fixed("Status", 10, 9),
            Column::fixed("VIN", 17, 2),
            Column::fill("Finding", 20, 8),
        ];
        assert_eq!(fitting_columns(&columns, 80), [0, 1, 2]);
        assert_eq!(fitting_columns(&columns, 40), [0, 2]);
        assert_eq!(fitting_columns(&columns, 12), [0]);
    }

    #[test]
    fn a_fill_column_keeps_its_preferred_width_against_minor_columns_only() {
        let columns = [
            Column::fixed("Status", 10, 100),
            Column::fixed("VIN", 17, 70),
            Column::fixed("User", 12, 30),
            Column::fill("Finding", 19, 90).preferring(36, 70),
        ];
        // Room for everything at the preferred width.
        assert_eq!(fitting_columns(&columns, 78), [0, 1, 2, 3]);
        // User would leave Finding 23 cells: it stays out.
        assert_eq!(fitting_columns(&columns, 70), [0, 1, 3]);
        // VIN matters enough for Finding to shrink to its minimum.
        assert_eq!(fitting_columns(&columns, 48), [0, 1, 3]);
        assert_eq!(fitting_columns(&columns, 47), [0, 3]);
    }

    #[test]
    fn only_the_handed_rows_are_drawn_with_the_sort_arrow_and_marker() {
        let theme = Theme::plain();
        let mut columns = vec![Column::fixed("N", 4, 9), Column::fill("Name", 6, 8)];
        columns[0].sorted = Some(true);
        let table = DataTable::new(columns, &theme)
            .rows(10, 100, 10..13, |i: usize| {
                vec![Line::from(i.to_string()), Line::from(format!("row {i}"))]
            })
            .selected(Some(11));
        let mut buf = Buffer::empty(Rect::new(0, 0, 20, 4));
        table.render(buf.area, &mut buf);
        let lines: Vec<String> = (0..4)
            .map(|y| {
                (0..20)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect();
        assert!(lines[0].starts_with("  N ▼  Name"), "{lines:?}");
        assert!(lines[1].starts_with("  10   row 10"), "{lines:?}");
        assert!(lines[2].starts_with("▶ 11   row 11"), "{lines:?}");
        assert!(lines[3].starts_with("  12   row 12"), "{lines:?}");
    }
}
