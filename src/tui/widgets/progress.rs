//! The sweep's progress on one line: a bar, probes done of total, requests per second.

use ratatui::text::{Line, Span};

use crate::fetch::Progress;
use crate::tui::theme::Theme;

/// `████████░░░░ 34/120 probes · 1.8 req/s` in `width` cells (the bar takes what the text leaves).
pub fn progress_line(progress: &Progress, width: u16, theme: &Theme) -> Line<'static> {
    let mut text = format!(" {}/{} probes", progress.done, progress.total);
    if progress.in_flight > 0 {
        text.push_str(&format!(" · {} probing", progress.in_flight));
    }
    if progress.errors > 0 {
        text.push_str(&format!(" · {} errors", progress.errors));
    }
    text.push_str(&format!(" · {:.1} req/s", progress.requests_per_s));
    let text_width = text.chars().count() as u16;
    let bar = width.saturating_sub(text_width).min(30) as usize;
    let filled = if progress.total == 0 {
        0
    } else {
        (progress.done.min(progress.total) * bar)
            .div_ceil(progress.total.max(1))
            .min(bar)
    };
    Line::from(vec![
        Span::styled("█".repeat(filled), theme.progress_done),
        Span::styled("░".repeat(bar - filled), theme.progress_todo),
        Span::raw(text),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: &Line) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn bar_fills_in_proportion_to_probes_done() {
        let p = Progress {
            done: 5,
            total: 10,
            requests_per_s: 1.84,
            ..Progress::default()
        };
        let line = progress_line(&p, 30, &Theme::plain());
        assert_eq!(text(&line), "███░░░ 5/10 probes · 1.8 req/s");
    }

    #[test]
    fn empty_fleet_shows_an_empty_bar_and_never_divides_by_zero() {
        let line = progress_line(&Progress::default(), 40, &Theme::plain());
        assert!(text(&line).starts_with("░"), "{}", text(&line));
        assert!(text(&line).contains("0/0 probes"));
    }
}
