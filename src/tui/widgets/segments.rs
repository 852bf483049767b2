//! A line made of whole segments: when the width runs out the least important segments go, never a
//! part of one, so a count is never cut (`UNKNOWN 1,775`, not `UNKNOWN 17`).

use ratatui::text::{Line, Span};

/// Spans that are shown together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub spans: Vec<Span<'static>>,
    /// Higher stays longer.
    pub priority: u8,
}

impl Segment {
    pub fn new(priority: u8, spans: Vec<Span<'static>>) -> Segment {
        Segment { spans, priority }
    }

    /// Cells wide.
    pub fn width(&self) -> usize {
        self.spans.iter().map(Span::width).sum()
    }
}

/// The first layout that fits `width` whole; failing that, the last one less its least important
/// segments (the later one first among equals). Segments keep their order.
pub fn fit_line(layouts: Vec<Vec<Segment>>, width: u16) -> Line<'static> {
    let width = usize::from(width);
    let total = |segments: &[Segment]| segments.iter().map(Segment::width).sum::<usize>();
    let mut last = Vec::new();
    for layout in layouts {
        if total(&layout) <= width {
            return join(layout);
        }
        last = layout;
    }
    while total(&last) > width && last.len() > 1 {
        let Some(drop) = last
            .iter()
            .enumerate()
            .min_by_key(|(i, s)| (s.priority, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
        else {
            break;
        };
        last.remove(drop);
    }
    join(last)
}

fn join(segments: Vec<Segment>) -> Line<'static> {
    Line::from(
        segments
            .into_iter()
            .flat_map(|s| s.spans)
            .collect::<Vec<_>>(),
    )
}

/// An unsigned count with thousands grouped: `1,775`, so a long one reads at a glance.
pub fn grouped(n: impl std::fmt::Display) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    let len = digits.chars().count();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (len - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: &Line) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    fn seg(priority: u8, text: &str) -> Segment {
        Segment::new(priority, vec![Span::raw(text.to_string())])
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_775), "1,775");
        assert_eq!(grouped(100_000), "100,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn a_narrow_line_drops_whole_segments_least_important_first() {
        let layout = || {
            vec![
                seg(9, "BLOCKED 12 "),
                seg(1, "HEALTHY 40 "),
                seg(5, "UNKNOWN 1,775"),
            ]
        };
        assert_eq!(
            text(&fit_line(vec![layout()], 40)),
            "BLOCKED 12 HEALTHY 40 UNKNOWN 1,775"
        );
        assert_eq!(
            text(&fit_line(vec![layout()], 30)),
            "BLOCKED 12 UNKNOWN 1,775"
        );
        assert_eq!(text(&fit_line(vec![layout()], 15)), "BLOCKED 12 ");
    }

    #[test]
    fn the_first_layout_that_fits_whole_wins() {
        let long = vec![seg(9, "1 BLOCKED 12  "), seg(5, "5 UNKNOWN 1,775")];
        let short = vec![seg(9, "BLOCKED 12 "), seg(5, "UNKNOWN 1,775")];
        assert_eq!(
            text(&fit_line(vec![long.clone(), short.clone()], 29)),
            "1 BLOCKED 12  5 UNKNOWN 1,775"
        );
        assert_eq!(
            text(&fit_line(vec![long, short], 28)),
            "BLOCKED 12 UNKNOWN 1,775"
        );
    }
}
