//! OEM rules as data: the embedded `assets/policies.toml`, a user override's text, and which vehicles a
//! rule covers. Pure: the override file is read by setup.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The rules shipped with the program.
pub const BUILTIN_POLICIES: &str = include_str!("../../assets/policies.toml");

/// Why a policies file was not used. The built-in rules stay in force whenever one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policies file {}: {message}; fix its permissions or remove it (built-in rules in use)", .path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}:{}: {message}; fix the file or remove it (built-in rules in use)", .path.display(), line_label(*.line))]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}:{}: rule `{rule}`: {message}; fix the file or remove it (built-in rules in use)", .path.display(), line_label(*.line))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        rule: String,
        message: String,
    },
}

fn line_label(line: Option<usize>) -> String {
    line.map_or_else(|| "?".to_string(), |l| l.to_string())
}

/// A day (`2025-01-21`) or a whole month (`2025-03`) in UTC, or an instant (`2025-01-21T08:00:00Z`)
/// for a change announced to the hour; a rule is in force from its first instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleDate {
    Day(jiff::civil::Date),
    Month { year: i16, month: i8 },
    Instant(jiff::Timestamp),
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl RuleDate {
    /// Reads `YYYY-MM-DD`, `YYYY-MM` or an RFC 3339 instant with its offset.
    pub fn parse(text: &str) -> Result<RuleDate, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "`{text}` is not a date: write a day `2025-01-21`, a month `2025-03` or an instant `2025-01-21T08:00:00Z`"
            )
        };
        if text.contains('T') || text.contains(' ') {
            return text
                .parse::<jiff::Timestamp>()
                .map(RuleDate::Instant)
                .map_err(|_| bad());
        }
        let parts: Vec<&str> = text.split('-').collect();
        match parts.as_slice() {
            [y, m] if y.len() == 4 && m.len() == 2 => {
                let year: i16 = y.parse().map_err(|_| bad())?;
                let month: i8 = m.parse().map_err(|_| bad())?;
                // Validates the month against the calendar.
                jiff::civil::Date::new(year, month, 1).map_err(|_| bad())?;
                Ok(RuleDate::Month { year, month })
            }
            [y, _, _] if y.len() == 4 => text
                .parse::<jiff::civil::Date>()
                .map(RuleDate::Day)
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    /// The first day the date covers.
    pub fn first_day(self) -> jiff::civil::Date {
        match self {
            RuleDate::Day(d) => d,
            RuleDate::Instant(t) => t.to_zoned(jiff::tz::TimeZone::UTC).date(),
            // Validated at parse time; the fallback is never reached for a parsed value.
            RuleDate::Month { year, month } => {
                jiff::civil::Date::new(year, month, 1).unwrap_or_default()
            }
        }
    }

    /// The instant itself, else 00:00 UTC of the first day.
    pub fn start(self) -> jiff::Timestamp {
        if let RuleDate::Instant(t) = self {
            return t;
        }
        let day = self.first_day();
        day.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// `2025-01-21`, `March 2025` for month precision, `2025-01-21 08:00:00 UTC` for an instant.
    pub fn label(self) -> String {
        self.to_string()
    }

    pub fn is_month(self) -> bool {
        matches!(self, RuleDate::Month { .. })
    }
}

impl fmt::Display for RuleDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleDate::Day(d) => write!(f, "{d}"),
            RuleDate::Instant(t) => write!(f, "{}", t.strftime("%Y-%m-%d %H:%M:%S UTC")),
            RuleDate::Month { year, month } => {
                let name = usize::try_from(*month - 1)
                    .ok()
                    .and_then(|i| MONTH_NAMES.get(i))
                    .unwrap_or(&"?");
                write!(f, "{name} {year}")
            }
        }
    }
}

/// A date as written in the file: a string, or a TOML local date literal.
#[derive(Deserialize)]
#[serde(untagged)]
enum DateField {
    Text(String),
    Toml(toml::value::Datetime),
}

impl TryFrom<DateField> for RuleDate {
    type Error = String;
    fn try_from(field: DateField) -> Result<Self, Self::Error> {
        match field {
            DateField::Text(s) => RuleDate::parse(&s),
            DateField::Toml(dt) => RuleDate::parse(&dt.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for RuleDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let field = DateField::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a date: a day \"2025-01-21\", a month \"2025-03\" or an instant \"2025-01-21T08:00:00Z\"",
            )
        })?;
        RuleDate::try_from(field).map_err(serde::de::Error::custom)
    }
}

impl Serialize for RuleDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RuleDate::Day(d) => s.collect_str(d),
            RuleDate::Instant(t) => s.collect_str(t),
            RuleDate::Month { year, month } => s.collect_str(&format_args!("{year:04}-{month:02}")),
        }
    }
}

/// Model years, both ends inclusive; a missing end is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearRange {
    #[serde(default)]
    pub from: Option<u16>,
    #[serde(default)]
    pub to: Option<u16>,
}

impl YearRange {
    pub fn contains(self, year: u16) -> bool {
        self.from.is_none_or(|f| year >= f) && self.to.is_none_or(|t| year <= t)
    }
}

/// Vehicles of the make that a rule leaves alone (Model S/X of 2020 and earlier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// Empty: every model.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub years: YearRange,
}

impl Exemption {
    pub fn covers(&self, model: &str, year: u16) -> bool {
        model_listed(&self.models, model) && self.years.contains(year)
    }

    /// `Model S/X of model year ≤ 2020`.
    pub fn describe(&self) -> String {
        let models = if self.models.is_empty() {
            "all models".to_string()
        } else {
            self.models.join(", ")
        };
        match (self.years.from, self.years.to) {
            (None, None) => models,
            (Some(f), None) => format!("{models} of model year ≥ {f}"),
            (None, Some(t)) => format!("{models} of model year ≤ {t}"),
            (Some(f), Some(t)) => format!("{models} of model years {f}–{t}"),
        }
    }
}

fn model_listed(models: &[String], model: &str) -> bool {
    models.is_empty()
        || models
            .iter()
            .any(|m| m.trim().eq_ignore_ascii_case(model.trim()))
}

/// How a rule shows in the API's answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Symptom {
    /// `TYPE:CODE`, or `TYPE` for a null code.
    #[serde(default)]
    pub error: Option<String>,
    /// The data path the error appears on (`/location`); none = any data endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `/tesla/virtual_key` reports this pairing state.
    #[serde(default)]
    pub virtual_key_paired: Option<bool>,
    /// A Tesla scope missing from `/tesla/user/access`.
    #[serde(default)]
    pub tesla_permission: Option<String>,
}

/// The kind of fix a rule calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleRemedyKind {
    AddVirtualKey,
    Reauthenticate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRemedy {
    pub kind: RuleRemedyKind,
    /// Smartcar permission to ask for with `required:` (`read_location`).
    #[serde(default)]
    pub permission: Option<String>,
    /// Apps that only need "is it at home" can read `atHome` instead of re-authenticating.
    #[serde(default)]
    pub at_home_alternative: bool,
}

/// One OEM rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub name: String,
    /// Smartcar make (`TESLA`); `oem` is accepted as another name.
    #[serde(alias = "oem")]
    pub make: String,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub years: Vec<YearRange>,
    #[serde(default)]
    pub exemptions: Vec<Exemption>,
    pub announced: RuleDate,
    pub in_force: RuleDate,
    /// Finding id for a vehicle caught by the rule.
    pub finding: String,
    /// Informational finding id for an exempt vehicle.
    #[serde(default)]
    pub exempt_finding: Option<String>,
    #[serde(default)]
    pub docs: Option<String>,
    pub symptom: Symptom,
    pub remedy: RuleRemedy,
}

/// Whether a rule covers one vehicle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage<'a> {
    Covered,
    Exempt(&'a Exemption),
    NotCovered,
}

impl Rule {
    /// Does the rule cover this make/model/year? An unknown year counts as covered unless every exemption
    /// would apply regardless of year.
    pub fn coverage(&self, make: &str, model: &str, year: Option<u16>) -> Coverage<'_> {
        if !self.make.trim().eq_ignore_ascii_case(make.trim()) || !model_listed(&self.models, model)
        {
            return Coverage::NotCovered;
        }
        if let Some(y) = year
            && !self.years.is_empty()
            && !self.years.iter().any(|r| r.contains(y))
        {
            return Coverage::NotCovered;
        }
        let exempt = self.exemptions.iter().find(|e| match year {
            Some(y) => e.covers(model, y),
            None => model_listed(&e.models, model) && e.years == YearRange::default(),
        });
        match exempt {
            Some(e) => Coverage::Exempt(e),
            None => Coverage::Covered,
        }
    }

    /// Whether an error label (`TYPE:CODE` or `TYPE`) is this rule's error symptom. The symptom may
    /// be written as a v3 signal shows it too: `ERROR PERMISSION`, or a null code as `PERMISSION:null`.
    pub fn matches_error(&self, type_code: &str) -> bool {
        self.symptom
            .error
            .as_deref()
            .is_some_and(|e| normal_error(e).eq_ignore_ascii_case(normal_error(type_code)))
    }

    /// Whether a data kind is where the symptom shows (any data when the rule names none). The rule
    /// may name the v2.0 path (`/location`) or the v3 signal code (`location-preciselocation`).
    pub fn matches_data(&self, kind: crate::smartcar::DataKind) -> bool {
        self.symptom.endpoint.as_deref().is_none_or(|e| {
            let e = e.trim();
            e.trim_end_matches('/') == kind.path().trim_end_matches('/')
                || kind
                    .signal_code()
                    .is_some_and(|code| e.eq_ignore_ascii_case(code))
        })
    }

    /// Whether a data path is where the symptom shows (any data path when the rule names none).
    pub fn matches_endpoint(&self, path: &str) -> bool {
        match crate::smartcar::DataKind::from_path(path) {
            Some(kind) => self.matches_data(kind),
            None => self
                .symptom
                .endpoint
                .as_deref()
                .is_none_or(|e| e.trim_end_matches('/') == path.trim_end_matches('/')),
        }
    }
}

/// `TYPE:CODE` without a v3 `ERROR ` prefix or a `:null` code.
fn normal_error(label: &str) -> &str {
    let label = label.trim();
    let label = label
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("ERROR "))
        .and_then(|_| label.get(6..))
        .unwrap_or(label)
        .trim();
    label
        .len()
        .checked_sub(5)
        .and_then(|at| {
            label
                .get(at..)
                .filter(|tail| tail.eq_ignore_ascii_case(":null"))
                .and_then(|_| label.get(..at))
        })
        .unwrap_or(label)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
}

/// The rules in force.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policies {
    pub rules: Vec<Rule>,
}

impl Policies {
    /// The embedded rules.
    pub fn builtin() -> Policies {
        // The embedded file is checked by a unit test; an empty list would only hide rules, never crash.
        Policies::parse(BUILTIN_POLICIES, Path::new("<built-in policies.toml>")).unwrap_or_default()
    }

    /// The built-in rules, replaced by the override file's text when it was read. A file that could
    /// not be read or parsed is reported and the built-in rules stay in force; a missing file is no
    /// override. Health does no I/O: the caller reads the file (`path` only names it).
    pub fn with_override(
        path: &Path,
        read: std::io::Result<String>,
    ) -> (Policies, Option<PolicyError>) {
        let text = match read {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (Policies::builtin(), None);
            }
            Err(e) => {
                return (
                    Policies::builtin(),
                    Some(PolicyError::Read {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    }),
                );
            }
        };
        match Policies::parse(&text, path) {
            Ok(p) => (p, None),
            Err(e) => (Policies::builtin(), Some(e)),
        }
    }

    /// Parses a policies file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Policies, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().trim().to_string(),
        })?;
        let invalid = |rule: &str, message: String| PolicyError::Invalid {
            path: path.to_path_buf(),
            line: id_line(text, rule),
            rule: rule.to_string(),
            message,
        };
        for (i, rule) in file.rules.iter().enumerate() {
            if rule.id.trim().is_empty() {
                return Err(invalid(&format!("#{}", i + 1), "the id is empty".into()));
            }
            if file.rules.iter().take(i).any(|r| r.id == rule.id) {
                return Err(invalid(
                    &rule.id,
                    "the id is used by an earlier rule".into(),
                ));
            }
            if rule.in_force.start() < rule.announced.start() {
                return Err(invalid(&rule.id, "in_force is before announced".into()));
            }
            let s = &rule.symptom;
            if s.error.is_none() && s.virtual_key_paired.is_none() && s.tesla_permission.is_none() {
                return Err(invalid(
                    &rule.id,
                    "the symptom names nothing to look for (error, virtual_key_paired or tesla_permission)".into(),
                ));
            }
            if rule.remedy.kind == RuleRemedyKind::Reauthenticate
                && rule.remedy.permission.is_none()
            {
                return Err(invalid(
                    &rule.id,
                    "a reauthenticate remedy needs the permission to ask for".into(),
                ));
            }
        }
        Ok(Policies { rules: file.rules })
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

/// The line of the last `id = "<rule>"`, where a person looks for the rule (a duplicate is the later one).
fn id_line(text: &str, rule: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.trim_start()
                .strip_prefix("id")
                .map(str::trim_start)
                .and_then(|r| r.strip_prefix('='))
                .is_some_and(|r| r.trim().trim_matches(|c| c == '"' || c == '\'') == rule)
        })
        .last()
        .map(|(i, _)| i + 1)
}

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(byte)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_policies_parse_with_both_tesla_rules() {
        let p = Policies::parse(BUILTIN_POLICIES, Path::new("builtin"))
            .expect("embedded policies parse");
        let key = p.get("tesla-virtual-key").expect("virtual key rule");
        assert_eq!(key.in_force, RuleDate::Day(jiff::civil::date(2025, 1, 21)));
        assert_eq!(key.announced.label(), "2024-12-19");
        let loc = p.get("tesla-location-permission").expect("location rule");
        assert_eq!(
            loc.in_force,
            RuleDate::Month {
                year: 2025,
                month: 3
            }
        );
        assert_eq!(loc.in_force.label(), "March 2025");
        assert_eq!(loc.remedy.permission.as_deref(), Some("read_location"));
    }

    #[test]
    fn model_s_2020_is_exempt_from_the_virtual_key_rule_but_not_2021() {
        let p = Policies::builtin();
        let key = p.get("tesla-virtual-key").expect("rule");
        assert!(matches!(
            key.coverage("TESLA", "Model S", Some(2020)),
            Coverage::Exempt(_)
        ));
        assert!(matches!(
            key.coverage("tesla", "model x", Some(2014)),
            Coverage::Exempt(_)
        ));
        assert_eq!(
            key.coverage("TESLA", "Model S", Some(2021)),
            Coverage::Covered
        );
        assert_eq!(
            key.coverage("TESLA", "Model 3", Some(2019)),
            Coverage::Covered
        );
        assert_eq!(
            key.coverage("FORD", "Mustang Mach-E", Some(2022)),
            Coverage::NotCovered
        );
    }

    #[test]
    fn unknown_field_is_rejected_with_its_line() {
        let text = BUILTIN_POLICIES.replacen("docs = ", "colour = \"red\"\ndocs = ", 1);
        let err = Policies::parse(&text, Path::new("/etc/p.toml")).expect_err("unknown field");
        let PolicyError::Parse {
            line: Some(line),
            ref message,
            ..
        } = err
        else {
            panic!("parse error: {err}")
        };
        let expected = text
            .lines()
            .position(|l| l.starts_with("colour"))
            .expect("line")
            + 1;
        assert_eq!(line, expected);
        assert!(message.contains("colour"), "{message}");
        assert!(
            err.to_string()
                .starts_with(&format!("/etc/p.toml:{expected}:")),
            "{err}"
        );
    }

    #[test]
    fn malformed_override_keeps_builtin_rules() {
        let path = Path::new("/etc/vtriage/policies.toml");
        let text = "[[rule]]\nid = \"x\"\nin_force = \"soon\"\n".to_string();
        let (p, err) = Policies::with_override(path, Ok(text));
        assert!(p.get("tesla-virtual-key").is_some());
        let err = err.expect("an error");
        assert!(err.to_string().contains("policies.toml:"), "{err}");
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            Policies::with_override(path, Err(missing)),
            (Policies::builtin(), None)
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let (p, err) = Policies::with_override(path, Err(denied));
        assert!(p.get("tesla-virtual-key").is_some());
        assert!(matches!(err, Some(PolicyError::Read { .. })));
    }

    #[test]
    fn override_replaces_rules_and_accepts_toml_date_literals() {
        let text = BUILTIN_POLICIES.replace("in_force = \"2025-01-21\"", "in_force = 2025-02-01");
        let p = Policies::parse(&text, Path::new("x")).expect("parses");
        assert_eq!(
            p.get("tesla-virtual-key").map(|r| r.in_force),
            Some(RuleDate::Day(jiff::civil::date(2025, 2, 1)))
        );
    }

    #[test]
    fn duplicate_rule_id_is_reported_at_its_line() {
        let first_rule = BUILTIN_POLICIES.find("\n[[rule]]").map_or(0, |i| i + 1);
        let text = format!("{BUILTIN_POLICIES}\n{}", &BUILTIN_POLICIES[first_rule..]);
        let err = Policies::parse(&text, Path::new("p.toml")).expect_err("duplicate");
        let PolicyError::Invalid {
            line: Some(line),
            ref rule,
            ..
        } = err
        else {
            panic!("invalid: {err}")
        };
        assert_eq!(rule, "tesla-virtual-key");
        assert!(
            line > BUILTIN_POLICIES.lines().count(),
            "the later copy: line {line}"
        );
        assert_eq!(
            text.lines().nth(line - 1).map(str::trim),
            Some("id = \"tesla-virtual-key\"")
        );
        assert!(err.to_string().contains("used by an earlier rule"), "{err}");
    }

    #[test]
    fn in_force_before_announcement_is_refused() {
        let text =
            BUILTIN_POLICIES.replace("in_force = \"2025-01-21\"", "in_force = \"2024-01-21\"");
        let err = Policies::parse(&text, Path::new("p.toml")).expect_err("dates");
        assert!(
            err.to_string().contains("in_force is before announced"),
            "{err}"
        );
    }

    #[test]
    fn month_thirteen_is_not_a_date() {
        assert!(RuleDate::parse("2025-13").is_err());
        assert!(RuleDate::parse("2025-02-30").is_err());
        assert!(RuleDate::parse("March").is_err());
        assert_eq!(
            RuleDate::parse("2028-02").map(RuleDate::label),
            Ok("February 2028".to_string())
        );
    }

    #[test]
    fn a_rule_may_name_its_evidence_as_a_v3_signal_and_error_form() {
        let text = BUILTIN_POLICIES
            .replace(
                "endpoint = \"/location\"",
                "endpoint = \"location-preciselocation\"",
            )
            .replace(
                "error = \"PERMISSION\"",
                "error = \"ERROR PERMISSION:null\"",
            );
        let p = Policies::parse(&text, Path::new("p.toml")).expect("parses");
        let rule = p.get("tesla-location-permission").expect("rule");
        assert!(rule.matches_data(crate::smartcar::DataKind::Location));
        assert!(rule.matches_endpoint("/location"));
        assert!(!rule.matches_data(crate::smartcar::DataKind::Odometer));
        assert!(rule.matches_error("PERMISSION"));
        assert!(rule.matches_error("ERROR PERMISSION"));
        assert!(!rule.matches_error("PERMISSION:OTHER"));
        let builtin = Policies::builtin();
        let key = builtin.get("tesla-virtual-key").expect("rule");
        assert!(key.matches_error("ERROR CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED"));
    }

    #[test]
    fn a_rule_may_come_into_force_at_an_instant_written_as_text_or_a_toml_literal() {
        for written in ["\"2026-12-04T01:30:00Z\"", "2026-12-04T01:30:00Z"] {
            let text = BUILTIN_POLICIES.replace(
                "in_force = \"2025-01-21\"",
                &format!("in_force = {written}"),
            );
            let p = Policies::parse(&text, Path::new("p.toml")).expect("parses");
            let rule = p.get("tesla-virtual-key").expect("rule");
            let at: jiff::Timestamp = "2026-12-04T01:30:00Z".parse().expect("ts");
            assert_eq!(rule.in_force.start(), at, "{written}");
            assert_eq!(rule.in_force.label(), "2026-12-04 01:30:00 UTC");
        }
        assert!(RuleDate::parse("2026-12-04T01:30:00").is_err(), "no offset");
    }
}
