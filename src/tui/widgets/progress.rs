//! The fleet's progress on one line: a bar and vehicles checked of the fleet, then probes under way,
//! errors and requests per second, least important dropped first when narrow.

use ratatui::text::{Line, Span};

use crate::fetch::Progress;
use crate::tui::theme::Theme;
use crate::tui::widgets::segments::{Segment, fit_line, grouped};

/// Vehicles of the fleet checked so far. The scheduler counts probes, which a re-probe or a retry
/// repeats; next to the header's vehicles only vehicles read right.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Checked {
    pub vehicles: usize,
    pub of: usize,
}

/// `████████░░░░ 34/120 vehicles checked · 2 probing · 1.8 req/s` in `width` cells (the bar takes
/// what the text leaves, 30 cells at most). `requests_per_s` is the dashboard's own measure, which
/// falls to 0 when requests stop.
pub fn progress_line(
    progress: &Progress,
    checked: Checked,
    requests_per_s: f64,
    width: u16,
    theme: &Theme,
) -> Line<'static> {
    let mut segments = vec![Segment::new(
        100,
        vec![Span::raw(format!(
            " {}/{} vehicles checked",
            grouped(checked.vehicles),
            grouped(checked.of)
        ))],
    )];
    if progress.in_flight > 0 {
        segments.push(Segment::new(
            80,
            vec![Span::raw(format!(
                " · {} probing",
                grouped(progress.in_flight)
            ))],
        ));
    }
    if progress.errors > 0 {
        segments.push(Segment::new(
            90,
            vec![Span::styled(
                format!(" · {} errors", grouped(progress.errors)),
                theme.warning,
            )],
        ));
    }
    segments.push(Segment::new(
        70,
        vec![Span::raw(format!(" · {requests_per_s:.1} req/s"))],
    ));
    let text = fit_line(vec![segments], width);
    let bar = usize::from(width).saturating_sub(text.width()).min(30);
    let filled = if checked.of == 0 {
        0
    } else {
        (checked.vehicles.min(checked.of) * bar)
            .div_ceil(checked.of)
            .min(bar)
    };
    let mut spans = vec![
        Span::styled("█".repeat(filled), theme.progress_done),
        Span::styled("░".repeat(bar - filled), theme.progress_todo),
    ];
    spans.extend(text.spans);
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: &Line) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn bar_fills_in_proportion_to_vehicles_checked_not_probes() {
        // Twice as many probes as vehicles (re-probes): the vehicles are what the line counts.
        let p = Progress {
            done: 10,
            total: 10,
            ..Progress::default()
        };
        let checked = Checked {
            vehicles: 5,
            of: 10,
        };
        let line = progress_line(&p, checked, 1.84, 40, &Theme::plain());
        assert_eq!(text(&line), "███░░░ 5/10 vehicles checked · 1.8 req/s");
    }

    #[test]
    fn empty_fleet_shows_an_empty_bar_and_never_divides_by_zero() {
        let line = progress_line(
            &Progress::default(),
            Checked::default(),
            0.0,
            60,
            &Theme::plain(),
        );
        assert!(text(&line).starts_with("░"), "{}", text(&line));
        assert!(text(&line).contains("0/0 vehicles checked"));
    }

    #[test]
    fn a_narrow_line_drops_the_rate_before_cutting_a_count() {
        let p = Progress {
            in_flight: 3,
            ..Progress::default()
        };
        let checked = Checked {
            vehicles: 1_807,
            of: 100_000,
        };
        let line = progress_line(&p, checked, 2.5, 45, &Theme::plain());
        assert_eq!(text(&line), "█░ 1,807/100,000 vehicles checked · 3 probing");
    }
}
