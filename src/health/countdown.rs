//! Where a rule stands at a given `now`: its phase and the compact countdown ("T-20d 04:10", "in force 676d").

use serde::Serialize;

use super::policy::Rule;

/// A rule's phase at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `now` is before the announcement date (a what-if `--now`): nobody knew of the rule yet.
    NotAnnounced,
    /// Announced, not yet in force.
    Upcoming,
    /// In force since its first instant (00:00 UTC of the day, or of the month's first day).
    InForce,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::NotAnnounced => "not announced",
            Phase::Upcoming => "upcoming",
            Phase::InForce => "in force",
        }
    }
}

/// A rule's countdown at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Countdown {
    pub phase: Phase,
    /// `2025-01-21`, or `March 2025` for month precision.
    pub in_force_label: String,
    /// Seconds until the rule is in force (positive) or since it is (zero or negative).
    pub seconds_to_in_force: i64,
}

const DAY_S: i64 = 86_400;

impl Countdown {
    pub fn of(rule: &Rule, now: jiff::Timestamp) -> Countdown {
        let start = rule.in_force.start();
        let phase = if now < rule.announced.start() {
            Phase::NotAnnounced
        } else if now < start {
            Phase::Upcoming
        } else {
            Phase::InForce
        };
        Countdown {
            phase,
            in_force_label: rule.in_force.label(),
            seconds_to_in_force: start.as_second() - now.as_second(),
        }
    }

    /// Time until the rule is in force (negative once it is).
    pub fn until_in_force(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.seconds_to_in_force)
    }

    /// Whole days the rule has been in force (0 on its first day); `None` before.
    pub fn days_in_force(&self) -> Option<i64> {
        (self.seconds_to_in_force <= 0).then(|| -self.seconds_to_in_force / DAY_S)
    }

    /// "T-20d 04:10" before the date (minutes rounded up, so the last minute still shows 00:01),
    /// "in force 676d" from it.
    pub fn compact(&self) -> String {
        match self.days_in_force() {
            Some(days) => format!("in force {days}d"),
            None => {
                let minutes = (self.seconds_to_in_force + 59) / 60;
                let (days, rest) = (minutes / (24 * 60), minutes % (24 * 60));
                format!("T-{days}d {:02}:{:02}", rest / 60, rest % 60)
            }
        }
    }

    /// "in force since 2025-01-21, 676 days" / "in force from March 2025, T-3d 00:00".
    pub fn sentence(&self) -> String {
        match self.days_in_force() {
            Some(1) => format!("in force since {}, 1 day", self.in_force_label),
            Some(days) => format!("in force since {}, {days} days", self.in_force_label),
            None => format!("in force from {}, {}", self.in_force_label, self.compact()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::policy::{Policies, RuleDate};

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("timestamp")
    }

    fn rule(id: &str) -> Rule {
        Policies::builtin().get(id).cloned().expect("builtin rule")
    }

    fn with_dates(announced: RuleDate, in_force: RuleDate) -> Rule {
        let mut r = rule("tesla-virtual-key");
        r.announced = announced;
        r.in_force = in_force;
        r
    }

    #[test]
    fn virtual_key_rule_is_twenty_days_away_on_new_year() {
        let c = Countdown::of(&rule("tesla-virtual-key"), at("2025-01-01T00:00:00Z"));
        assert_eq!(c.phase, Phase::Upcoming);
        assert_eq!(c.compact(), "T-20d 00:00");
    }

    #[test]
    fn minute_before_in_force_still_counts_down() {
        let c = Countdown::of(&rule("tesla-virtual-key"), at("2025-01-20T23:59:00Z"));
        assert_eq!(
            (c.phase, c.compact()),
            (Phase::Upcoming, "T-0d 00:01".to_string())
        );
        let c = Countdown::of(&rule("tesla-virtual-key"), at("2025-01-20T23:59:59Z"));
        assert_eq!(c.compact(), "T-0d 00:01");
    }

    #[test]
    fn at_and_after_midnight_utc_the_rule_is_in_force() {
        let c = Countdown::of(&rule("tesla-virtual-key"), at("2025-01-21T00:00:00Z"));
        assert_eq!(
            (c.phase, c.compact()),
            (Phase::InForce, "in force 0d".to_string())
        );
        let c = Countdown::of(&rule("tesla-virtual-key"), at("2025-01-21T00:01:00Z"));
        assert_eq!(c.compact(), "in force 0d");
        let c = Countdown::of(&rule("tesla-virtual-key"), at("2026-11-28T12:00:00Z"));
        assert_eq!(c.compact(), "in force 676d");
        assert_eq!(c.sentence(), "in force since 2025-01-21, 676 days");
    }

    #[test]
    fn hours_and_minutes_show_before_the_date() {
        let c = Countdown::of(&rule("tesla-virtual-key"), at("2025-01-01T19:50:00Z"));
        assert_eq!(c.compact(), "T-19d 04:10");
    }

    #[test]
    fn location_rule_counts_from_the_first_of_march() {
        let r = rule("tesla-location-permission");
        let c = Countdown::of(&r, at("2025-02-28T23:59:00Z"));
        assert_eq!(
            (c.phase, c.compact(), c.in_force_label.as_str()),
            (Phase::Upcoming, "T-0d 00:01".into(), "March 2025")
        );
        let c = Countdown::of(&r, at("2025-03-01T00:00:00Z"));
        assert_eq!(c.phase, Phase::InForce);
        let c = Countdown::of(&r, at("2025-03-31T00:00:00Z"));
        assert_eq!(c.compact(), "in force 30d");
    }

    #[test]
    fn before_announcement_the_rule_is_not_announced() {
        let c = Countdown::of(
            &rule("tesla-location-permission"),
            at("2025-01-09T23:59:00Z"),
        );
        assert_eq!(c.phase, Phase::NotAnnounced);
        let c = Countdown::of(
            &rule("tesla-location-permission"),
            at("2025-01-10T00:00:00Z"),
        );
        assert_eq!(c.phase, Phase::Upcoming);
    }

    #[test]
    fn leap_day_in_force_date_counts_the_29th() {
        let r = with_dates(
            RuleDate::parse("2024-01-01").expect("d"),
            RuleDate::parse("2024-02-29").expect("d"),
        );
        assert_eq!(
            Countdown::of(&r, at("2024-02-28T00:00:00Z")).compact(),
            "T-1d 00:00"
        );
        assert_eq!(
            Countdown::of(&r, at("2024-03-01T00:00:00Z")).compact(),
            "in force 1d"
        );
        assert_eq!(
            Countdown::of(&r, at("2025-02-28T00:00:00Z")).compact(),
            "in force 365d"
        );
    }

    #[test]
    fn leap_year_2028_month_precision_spans_29_days() {
        let r = with_dates(
            RuleDate::parse("2027-12-01").expect("d"),
            RuleDate::parse("2028-02").expect("m"),
        );
        assert_eq!(
            Countdown::of(&r, at("2028-01-31T00:00:00Z")).compact(),
            "T-1d 00:00"
        );
        assert_eq!(
            Countdown::of(&r, at("2028-02-29T23:59:00Z")).compact(),
            "in force 28d"
        );
        assert_eq!(
            Countdown::of(&r, at("2028-03-01T00:00:00Z")).compact(),
            "in force 29d"
        );
        assert_eq!(
            Countdown::of(&r, at("2028-01-31T00:00:00Z")).in_force_label,
            "February 2028"
        );
    }
}
