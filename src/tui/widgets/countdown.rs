//! Time as the agent reads it: a rule's countdown in the deadline strip, and "checked 3m ago".

use ratatui::text::Span;

use crate::health::{Countdown, Phase, Rule};
use crate::tui::theme::Theme;

/// `2025-01-21  in force 676d    412 vehicles  Tesla: virtual key required for data`: fixed-width
/// fields first so several rules line up, the long name last where a narrow terminal cuts it.
pub fn deadline_spans(
    rule: &Rule,
    now: jiff::Timestamp,
    affected: usize,
    theme: &Theme,
) -> Vec<Span<'static>> {
    let countdown = Countdown::of(rule, now);
    let style = match countdown.phase {
        Phase::InForce => theme.blocked,
        Phase::Upcoming => theme.warning,
        Phase::NotAnnounced => theme.muted,
    };
    let vehicles = if affected == 1 {
        "1 vehicle".to_string()
    } else {
        format!("{affected} vehicles")
    };
    vec![
        Span::styled(format!("{:<10} ", countdown.in_force_label), theme.muted),
        Span::styled(format!("{:<15}", countdown.compact()), style),
        Span::styled(format!("{vehicles:>12}  "), theme.muted),
        Span::styled(rule.name.clone(), theme.title),
    ]
}

/// `now`, `42s ago`, `3m ago`, `5h ago`, `12d ago`, or `never`.
pub fn ago(now: jiff::Timestamp, then: Option<jiff::Timestamp>) -> String {
    let Some(then) = then else {
        return "never".into();
    };
    let s = now.as_second() - then.as_second();
    match s {
        i64::MIN..=4 => "now".into(),
        5..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn ago_rounds_down_to_the_largest_unit() {
        let now = t("2026-11-27T12:00:00Z");
        assert_eq!(ago(now, None), "never");
        assert_eq!(ago(now, Some(t("2026-11-27T12:00:00Z"))), "now");
        assert_eq!(ago(now, Some(t("2026-11-27T11:59:18Z"))), "42s ago");
        assert_eq!(ago(now, Some(t("2026-11-27T11:57:00Z"))), "3m ago");
        assert_eq!(ago(now, Some(t("2026-11-27T07:00:00Z"))), "5h ago");
        assert_eq!(ago(now, Some(t("2026-11-15T12:00:00Z"))), "12d ago");
    }

    #[test]
    fn deadline_strip_shows_name_date_countdown_and_count() {
        let policies = crate::health::Policies::builtin();
        let Some(rule) = policies.get("tesla-virtual-key") else {
            panic!("builtin rule")
        };
        let theme = Theme::plain();
        let text: String = deadline_spans(rule, t("2026-11-27T12:00:00Z"), 3, &theme)
            .iter()
            .map(|s| s.content.as_ref())
            .collect();
        assert_eq!(
            text,
            "2025-01-21 in force 675d    3 vehicles  Tesla: virtual key required for data"
        );
    }
}
