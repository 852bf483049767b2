//! The fleet filter language: parsed once into terms, then tested against each vehicle record.
//!
//! Terms are separated by spaces and all must hold (AND); `!` before a term negates it. Double
//! quotes group a value with spaces (`model:"model 3"`). Keys:
//!
//! | term | keeps vehicles whose |
//! |---|---|
//! | `status:blocked` / `status:blocked,degraded` | status is one of those |
//! | `make:tesla` | make starts with the value (case, spaces and `-` ignored: `make:mercedes` keeps `Mercedes-Benz`) |
//! | `model:model3` / `model:"model 3"` / `model:model` | model starts with the value, same normalisation (`model:model` keeps every Tesla Model) |
//! | `rule:tesla-virtual-key` / `rule:tesla-v` | diagnosis has a finding from a rule whose id starts with the value (case ignored) |
//! | `finding:virtual-key` | diagnosis has a finding whose id starts with the value |
//! | `year:2019` `year:<2021` `year:>=2020` (`<`, `<=`, `>`, `>=`, `=`) | model year compares so (vehicles without attributes never match) |
//! | `user:ID` / `id:ID` | user id / vehicle id is exactly the value (case ignored) |
//! | `vin:5YJ3` | VIN starts with the value (case ignored) |
//! | `has:token` / `has:vin` / `has:finding` | an access token is configured / the VIN is known / the diagnosis has findings |
//! | `checked:no` / `checked:yes` | the vehicle was (not) probed yet |
//! | `2019` (four digits, 1980–2100) | model year 2019, or a VIN holding `2019` (not ids, where four digits turn up by chance) |
//! | anything else | matched inside one field of VIN, vehicle id, user id, make and model: a term with three digits or more (a VIN or id fragment) as a substring, any other fuzzily (nucleo, score > 0: its characters in order) |
//!
//! Words read as a model first: free words following each other (`model 3`, `ford mustang`), or a
//! `model:` term followed by free words (`model:Model 3`), keep the vehicles whose model, or make and
//! model, start with them all (normalised as `model:`) when the fleet has such a model
//! ([`Filter::prefer_models`]); otherwise each word is its own term. So `model 3` keeps the Model 3s,
//! not every Tesla with a 3 in its VIN, while `tesla 5yj3` still narrows Teslas by VIN.

use nucleo_matcher::{Matcher, Utf32Str};

use crate::health::Status;

use super::VehicleRecord;
use super::search::{FIELD_SEPARATOR, SearchText};

/// Why a filter expression was refused. One line, naming the term.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter term `{term}`: {problem}")]
pub struct FilterError {
    pub term: String,
    pub problem: String,
}

impl FilterError {
    fn new(term: &str, problem: impl Into<String>) -> FilterError {
        FilterError {
            term: term.to_string(),
            problem: problem.into(),
        }
    }
}

/// The keys the language knows, for help screens and error messages.
pub const KEYS: [&str; 11] = [
    "status", "make", "model", "rule", "finding", "year", "user", "id", "vin", "has", "checked",
];

/// How `year:` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum YearCmp {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

/// What one term tests. Strings are stored already normalised for the comparison they take part in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    /// Lower-case needle for nucleo, and the [`char_mask`] of its characters.
    Fuzzy(String, u64),
    /// Bit `1 << status as u8` for each status kept.
    Status(u8),
    Make(String),
    Model(String),
    /// Words that may name a model: the squashed words, the tests they stand for one by one, and
    /// whether they name a model of the fleet (then only the model is tested).
    Phrase {
        model: String,
        words: Vec<Test>,
        as_model: bool,
    },
    RulePrefix(String),
    FindingPrefix(String),
    Year(YearCmp, u16),
    /// A lone four-digit word that reads as a model year: that year, or a VIN holding the digits
    /// (not ids, where four digits turn up by chance).
    YearOrVin(u16, String),
    User(String),
    VehicleId(String),
    VinPrefix(String),
    HasToken,
    HasVin,
    HasFinding,
    Checked(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    negated: bool,
    test: Test,
}

/// A parsed filter expression. The empty filter keeps every vehicle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Cheap terms first, fuzzy ones last, so most rows are decided before any fuzzy scoring.
    terms: Vec<Term>,
}

/// What the filter reads about a row besides its record, from compact per-row arrays, so the
/// common filters (status, free text) touch a few bytes per row instead of the whole record.
#[derive(Clone, Copy)]
pub(super) struct Row<'a> {
    pub(super) search: &'a SearchText,
    pub(super) slot: u32,
    pub(super) status: Status,
}

/// One bit per letter and digit present (others share the remaining bits). Text that is not
/// ASCII gets every bit, since accent folding lets `e` match `ë`. A needle can only match
/// text whose mask covers the needle's mask.
pub fn char_mask(text: &str) -> u64 {
    if !text.is_ascii() {
        return u64::MAX;
    }
    text.bytes().fold(0u64, |mask, b| {
        let bit = match b {
            b'a'..=b'z' => b - b'a',
            b'0'..=b'9' => 26 + b - b'0',
            b'A'..=b'Z' => b - b'A',
            other => 36 + other % 27,
        };
        mask | 1 << bit
    })
}

/// Model years a lone four-digit word is read as.
const YEARS: std::ops::RangeInclusive<u16> = 1980..=2100;

/// A free word: a model year when it is one, else matched as text.
fn free_word(text: &str) -> Test {
    if text.len() == 4
        && text.bytes().all(|b| b.is_ascii_digit())
        && let Ok(year) = text.parse::<u16>()
        && YEARS.contains(&year)
    {
        return Test::YearOrVin(year, text.to_string());
    }
    fuzzy(text)
}

fn fuzzy(text: &str) -> Test {
    let needle = text.to_lowercase();
    // A non-ASCII needle may match through accent folding: no mask pre-check.
    let chars = if needle.is_ascii() {
        char_mask(&needle)
    } else {
        0
    };
    Test::Fuzzy(needle, chars)
}

/// Reused state for fuzzy matching: one nucleo matcher and its scratch buffer.
#[derive(Default, Clone)]
pub struct FuzzyMatcher {
    matcher: Matcher,
    buf: Vec<char>,
    needle_buf: Vec<char>,
    /// The substring searcher for the last VIN or id fragment, built once per filter pass.
    fragment: Option<memchr::memmem::Finder<'static>>,
}

impl FuzzyMatcher {
    /// Whether nucleo gives `needle` (lower case) a score above 0 in `haystack` (lower case).
    ///
    /// Nucleo's score ends on a matched character worth at least 16 points, so for ASCII text it
    /// is positive exactly when the needle is an in-order subsequence of the haystack; that is
    /// checked directly with memchr, an order of magnitude faster than scoring. Other text goes
    /// through nucleo (which also folds accents). `tests::ascii_shortcut_agrees_with_nucleo`
    /// holds the two equal.
    ///
    /// The haystack is a row's fields joined by [`FIELD_SEPARATOR`]; a needle must match inside one
    /// field. A needle with three digits or more is a VIN or id fragment someone copied or read
    /// out: it must appear as typed (a substring), or it would match half the fleet's UUIDs.
    pub fn matches(&mut self, haystack: &str, needle: &str) -> bool {
        let exact = needle.bytes().filter(u8::is_ascii_digit).count() >= 3;
        if exact && !needle.contains(FIELD_SEPARATOR) {
            // Without a separator in it, the needle can only occur inside one field.
            let finder = match self.fragment.take() {
                Some(f) if f.needle() == needle.as_bytes() => f,
                _ => memchr::memmem::Finder::new(needle).into_owned(),
            };
            let found = finder.find(haystack.as_bytes()).is_some();
            self.fragment = Some(finder);
            return found;
        }
        haystack.split(FIELD_SEPARATOR).any(|field| {
            if exact {
                field.contains(needle)
            } else if field.is_ascii() && needle.is_ascii() {
                is_subsequence(field.as_bytes(), needle.as_bytes())
            } else {
                self.nucleo_score(field, needle) > 0
            }
        })
    }

    /// Nucleo's fuzzy score, 0 when it does not match.
    pub fn nucleo_score(&mut self, haystack: &str, needle: &str) -> u16 {
        let hay = Utf32Str::new(haystack, &mut self.buf);
        let needle = Utf32Str::new(needle, &mut self.needle_buf);
        self.matcher.fuzzy_match(hay, needle).unwrap_or(0)
    }
}

fn is_subsequence(haystack: &[u8], needle: &[u8]) -> bool {
    let mut rest = haystack;
    for &c in needle {
        match memchr::memchr(c, rest) {
            Some(i) => rest = &rest[i + 1..],
            None => return false,
        }
    }
    true
}

/// Lower case, without spaces, `-` and `_`: how make and model values are compared.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `value`, squashed, starts with `prefix` (already squashed), without allocating.
fn squashed_starts_with(value: &str, prefix: &str) -> bool {
    let mut value = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase);
    prefix.chars().all(|p| value.next() == Some(p))
}

fn starts_with_ignore_case(value: &str, prefix: &str) -> bool {
    value.len() >= prefix.len()
        && value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Splits on spaces outside double quotes; quotes are removed.
fn split_terms(expr: &str) -> Result<Vec<String>, FilterError> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut started = false;
    for c in expr.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                started = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if started {
                    terms.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if in_quotes {
        return Err(FilterError::new(&current, "unclosed double quote"));
    }
    if started {
        terms.push(current);
    }
    Ok(terms)
}

fn parse_year(term: &str, value: &str) -> Result<Test, FilterError> {
    let (cmp, digits) = if let Some(rest) = value.strip_prefix("<=") {
        (YearCmp::Le, rest)
    } else if let Some(rest) = value.strip_prefix(">=") {
        (YearCmp::Ge, rest)
    } else if let Some(rest) = value.strip_prefix('<') {
        (YearCmp::Lt, rest)
    } else if let Some(rest) = value.strip_prefix('>') {
        (YearCmp::Gt, rest)
    } else if let Some(rest) = value.strip_prefix('=') {
        (YearCmp::Eq, rest)
    } else {
        (YearCmp::Eq, value)
    };
    let year = digits.trim().parse::<u16>().map_err(|_| {
        FilterError::new(
            term,
            "year must be a number, optionally after <, <=, >, >= or = (year:>=2020)",
        )
    })?;
    Ok(Test::Year(cmp, year))
}

fn parse_term(raw: &str) -> Result<Term, FilterError> {
    let (negated, body) = match raw.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    if body.is_empty() {
        return Err(FilterError::new(raw, "`!` must be followed by a term"));
    }
    let Some((key, value)) = body.split_once(':') else {
        return Ok(Term {
            negated,
            test: free_word(body),
        });
    };
    let key_lower = key.to_ascii_lowercase();
    if !KEYS.contains(&key_lower.as_str()) {
        // Only a word that looks like a key is refused (so the agent learns the key names); text
        // such as a pasted `TYPE_CODE:...` or `a/b:c` stays free text.
        if key.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(FilterError::new(
                raw,
                format!("unknown key `{key}`; keys are {}", KEYS.join(", ")),
            ));
        }
        return Ok(Term {
            negated,
            test: fuzzy(body),
        });
    }
    if value.trim().is_empty() {
        return Err(FilterError::new(
            raw,
            format!("`{key_lower}:` needs a value"),
        ));
    }
    let test = match key_lower.as_str() {
        "status" => {
            let mut mask = 0u8;
            for name in value.split(',').filter(|s| !s.is_empty()) {
                let status = Status::parse(name.trim()).ok_or_else(|| {
                    FilterError::new(
                        raw,
                        format!("unknown status `{name}`; use blocked, degraded, warning, healthy or unknown"),
                    )
                })?;
                mask |= status_bit(status);
            }
            if mask == 0 {
                return Err(FilterError::new(raw, "`status:` needs at least one status"));
            }
            Test::Status(mask)
        }
        "make" => Test::Make(squash(value)),
        "model" => Test::Model(squash(value)),
        "rule" => Test::RulePrefix(value.to_ascii_lowercase()),
        "finding" => Test::FindingPrefix(value.to_ascii_lowercase()),
        "year" => parse_year(raw, value)?,
        "user" => Test::User(value.to_string()),
        "id" => Test::VehicleId(value.to_string()),
        "vin" => Test::VinPrefix(value.to_string()),
        "has" => match value.to_ascii_lowercase().as_str() {
            "token" => Test::HasToken,
            "vin" => Test::HasVin,
            "finding" | "findings" => Test::HasFinding,
            _ => return Err(FilterError::new(raw, "`has:` takes token, vin or finding")),
        },
        "checked" => match value.to_ascii_lowercase().as_str() {
            "yes" | "true" => Test::Checked(true),
            "no" | "false" => Test::Checked(false),
            _ => return Err(FilterError::new(raw, "`checked:` takes yes or no")),
        },
        _ => return Err(FilterError::new(raw, format!("unknown key `{key}`"))),
    };
    Ok(Term { negated, test })
}

/// Whether the vehicle's model, or its make and model, starts with `phrase` (squashed).
fn names_model(r: &VehicleRecord, phrase: &str) -> bool {
    r.attributes.as_ref().is_some_and(|a| {
        squashed_starts_with(&a.model, phrase)
            || squashed_parts_start_with(&a.make, &a.model, phrase)
    })
}

/// Whether `first` then `second`, squashed, start with `prefix` (already squashed), without allocating.
fn squashed_parts_start_with(first: &str, second: &str, prefix: &str) -> bool {
    let mut value = first
        .chars()
        .chain(second.chars())
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase);
    prefix.chars().all(|p| value.next() == Some(p))
}

fn status_bit(status: Status) -> u8 {
    1 << (status as u8)
}

/// Joins words that may name a model into one phrase term: a run of free words, or a `model:` term
/// and the free words after it; a free word with spaces (quoted) is a phrase on its own.
fn group_phrases(raw: &[String], terms: Vec<Term>) -> Vec<Term> {
    let is_free = |t: &Term| !t.negated && matches!(t.test, Test::Fuzzy(..));
    let mut out: Vec<Term> = Vec::with_capacity(terms.len());
    let mut run: Vec<(String, Term)> = Vec::new();
    let flush = |run: &mut Vec<(String, Term)>, out: &mut Vec<Term>| {
        let spaced = run.len() == 1 && run[0].0.contains(char::is_whitespace);
        if run.len() >= 2 || spaced {
            let model = run.iter().map(|(word, _)| squash(word)).collect::<String>();
            let words = run.drain(..).map(|(_, t)| t.test).collect();
            out.push(Term {
                negated: false,
                test: Test::Phrase {
                    model,
                    words,
                    as_model: false,
                },
            });
        } else {
            out.extend(run.drain(..).map(|(_, t)| t));
        }
    };
    for (text, term) in raw.iter().zip(terms) {
        let starts_model = !term.negated && matches!(term.test, Test::Model(_));
        if is_free(&term) {
            run.push((text.clone(), term));
        } else {
            flush(&mut run, &mut out);
            if starts_model {
                let value = text.split_once(':').map_or("", |(_, v)| v).to_string();
                run.push((value, term));
            } else {
                out.push(term);
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

impl Filter {
    /// Parses an expression. Blank text is the empty filter.
    /// Refuses a `rule:` term that starts no rule id of `rule_ids`, naming the nearest ones: a
    /// mistyped rule would otherwise match nothing and read as "nothing is wrong".
    pub fn check_rules(&self, rule_ids: &[String]) -> Result<(), FilterError> {
        for term in &self.terms {
            let Test::RulePrefix(prefix) = &term.test else {
                continue;
            };
            if rule_ids
                .iter()
                .any(|id| starts_with_ignore_case(id, prefix))
            {
                continue;
            }
            let mut near: Vec<(usize, &str)> = rule_ids
                .iter()
                .map(|id| {
                    (
                        strsim::levenshtein(&id.to_ascii_lowercase(), prefix),
                        id.as_str(),
                    )
                })
                .filter(|(d, _)| *d <= prefix.chars().count().div_ceil(3).max(2))
                .collect();
            near.sort();
            let names = |list: Vec<&str>| list.join(", ");
            let hint = if near.is_empty() {
                format!(
                    "rules: {}",
                    names(rule_ids.iter().map(String::as_str).collect())
                )
            } else {
                format!(
                    "did you mean {}?",
                    names(near.iter().take(3).map(|(_, id)| *id).collect())
                )
            };
            let bang = if term.negated { "!" } else { "" };
            return Err(FilterError::new(
                &format!("{bang}rule:{prefix}"),
                format!("no rule starts with `{prefix}`; {hint}"),
            ));
        }
        Ok(())
    }

    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        let raw = split_terms(expr)?;
        let terms = raw
            .iter()
            .map(|t| parse_term(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut terms = group_phrases(&raw, terms);
        terms.sort_by_key(|t| matches!(t.test, Test::Fuzzy(..) | Test::Phrase { .. }));
        Ok(Filter { terms })
    }

    /// Decides, against the fleet, which phrases name a model: those some vehicle's model (or make
    /// and model) starts with. The others stay word by word.
    pub fn prefer_models<'a>(&mut self, records: impl IntoIterator<Item = &'a VehicleRecord>) {
        let mut undecided: Vec<&mut Test> = self
            .terms
            .iter_mut()
            .map(|t| &mut t.test)
            .filter(|t| matches!(t, Test::Phrase { .. }))
            .collect();
        if undecided.is_empty() {
            return;
        }
        for record in records {
            undecided.retain_mut(|test| {
                let Test::Phrase {
                    model, as_model, ..
                } = &mut **test
                else {
                    return false;
                };
                *as_model = names_model(record, model);
                !*as_model
            });
            if undecided.is_empty() {
                return;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `record` passes every term.
    pub(super) fn matches(
        &self,
        record: &VehicleRecord,
        row: &Row<'_>,
        fuzzy: &mut FuzzyMatcher,
    ) -> bool {
        self.terms
            .iter()
            .all(|t| t.test.holds(record, row, fuzzy) != t.negated)
    }

    /// True when every record this filter keeps is also kept by `previous`, so re-filtering
    /// may start from `previous`'s rows (typing more characters, adding a term).
    pub fn narrows(&self, previous: &Filter) -> bool {
        previous
            .terms
            .iter()
            .all(|old| self.terms.iter().any(|new| implies(new, old)))
    }
}

fn implies(new: &Term, old: &Term) -> bool {
    if new == old {
        return true;
    }
    if new.negated || old.negated {
        return false;
    }
    match (&new.test, &old.test) {
        (Test::Fuzzy(n, _), Test::Fuzzy(o, _)) => n.starts_with(o.as_str()),
        (Test::VinPrefix(n), Test::VinPrefix(o)) => starts_with_ignore_case(n, o),
        (Test::FindingPrefix(n), Test::FindingPrefix(o))
        | (Test::RulePrefix(n), Test::RulePrefix(o))
        | (Test::Make(n), Test::Make(o))
        | (Test::Model(n), Test::Model(o)) => n.starts_with(o.as_str()),
        (Test::Status(n), Test::Status(o)) => n & !o == 0,
        _ => false,
    }
}

impl Test {
    fn holds(&self, r: &VehicleRecord, row: &Row<'_>, fuzzy: &mut FuzzyMatcher) -> bool {
        match self {
            Test::Fuzzy(needle, chars) => {
                chars & !row.search.mask(row.slot) == 0
                    && fuzzy.matches(row.search.get(row.slot), needle)
            }
            Test::Status(mask) => mask & status_bit(row.status) != 0,
            Test::Phrase {
                model,
                words,
                as_model,
            } => {
                if *as_model {
                    names_model(r, model)
                } else {
                    words.iter().all(|w| w.holds(r, row, fuzzy))
                }
            }
            _ => self.holds_on_record(r),
        }
    }

    /// The tests that read the record itself. Kept out of line: inlined, the compiler loads
    /// record fields before knowing they are needed, and a status or text filter over 100k rows
    /// then pays a cache miss per row.
    #[inline(never)]
    fn holds_on_record(&self, r: &VehicleRecord) -> bool {
        match self {
            Test::Fuzzy(..) | Test::Status(_) | Test::Phrase { .. } => false,
            Test::Make(v) => r
                .attributes
                .as_ref()
                .is_some_and(|a| squashed_starts_with(&a.make, v)),
            Test::Model(v) => r
                .attributes
                .as_ref()
                .is_some_and(|a| squashed_starts_with(&a.model, v)),
            Test::RulePrefix(v) => r.verdict.findings.iter().any(|f| {
                f.rule
                    .as_deref()
                    .is_some_and(|rule| starts_with_ignore_case(rule, v))
            }),
            Test::FindingPrefix(v) => r
                .verdict
                .findings
                .iter()
                .any(|f| starts_with_ignore_case(&f.id, v)),
            Test::YearOrVin(year, digits) => {
                r.attributes.as_ref().is_some_and(|a| a.year == *year)
                    || r.vin
                        .as_deref()
                        .is_some_and(|v| v.contains(digits.as_str()))
            }
            Test::Year(cmp, year) => r.attributes.as_ref().is_some_and(|a| match cmp {
                YearCmp::Lt => a.year < *year,
                YearCmp::Le => a.year <= *year,
                YearCmp::Eq => a.year == *year,
                YearCmp::Ge => a.year >= *year,
                YearCmp::Gt => a.year > *year,
            }),
            Test::User(v) => r.users().any(|u| u.eq_ignore_ascii_case(v)),
            Test::VehicleId(v) => r.vehicle_id.eq_ignore_ascii_case(v),
            Test::VinPrefix(v) => r
                .vin
                .as_deref()
                .is_some_and(|vin| starts_with_ignore_case(vin, v)),
            Test::HasToken => r.has_token,
            Test::HasVin => r.vin.is_some(),
            Test::HasFinding => !r.verdict.findings.is_empty(),
            Test::Checked(yes) => r.last_probe_at.is_some() == *yes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_keep_their_spaces() {
        assert_eq!(
            split_terms(r#"model:"model 3" !has:token"#).unwrap(),
            vec!["model:model 3", "!has:token"]
        );
    }

    #[test]
    fn words_after_each_other_or_after_model_form_one_phrase() {
        let phrase = |expr: &str| {
            Filter::parse(expr)
                .unwrap()
                .terms
                .into_iter()
                .find_map(|t| match t.test {
                    Test::Phrase { model, words, .. } => Some((model, words.len())),
                    _ => None,
                })
        };
        assert_eq!(phrase("model 3"), Some(("model3".into(), 2)));
        assert_eq!(phrase("model:Model 3"), Some(("model3".into(), 2)));
        assert_eq!(phrase(r#""model 3""#), Some(("model3".into(), 1)));
        assert_eq!(
            phrase("ford mustang status:blocked"),
            Some(("fordmustang".into(), 2))
        );
        // A negated word or a single word stays a term of its own.
        assert_eq!(phrase("!model 3"), None);
        assert_eq!(phrase("model:model3"), None);
        assert_eq!(phrase("tesla"), None);
    }

    #[test]
    fn a_longer_rule_prefix_narrows_a_shorter_one() {
        let ids = [
            "tesla-virtual-key".to_string(),
            "tesla-location".to_string(),
        ];
        let typo = Filter::parse("status:blocked rule:tesla-virtual-keys").unwrap();
        let e = typo.check_rules(&ids).unwrap_err();
        assert!(
            e.problem.contains("did you mean tesla-virtual-key?"),
            "{e:?}"
        );
        assert!(
            Filter::parse("rule:Tesla-V")
                .unwrap()
                .check_rules(&ids)
                .is_ok()
        );
        let far = Filter::parse("!rule:ford")
            .unwrap()
            .check_rules(&ids)
            .unwrap_err();
        assert!(
            far.problem
                .contains("rules: tesla-virtual-key, tesla-location"),
            "{far:?}"
        );
        let a = Filter::parse("rule:tesla").unwrap();
        let b = Filter::parse("rule:Tesla-V").unwrap();
        assert!(b.narrows(&a));
        assert!(!a.narrows(&b));
    }

    #[test]
    fn unclosed_quote_is_an_error() {
        assert!(Filter::parse(r#"model:"model 3"#).is_err());
    }

    #[test]
    fn typing_more_characters_narrows() {
        let a = Filter::parse("5yj").unwrap();
        let b = Filter::parse("5yj3").unwrap();
        assert!(b.narrows(&a));
        assert!(!a.narrows(&b));
        let c = Filter::parse("5yj3 status:blocked").unwrap();
        assert!(c.narrows(&b));
        assert!(!Filter::parse("!5yj3").unwrap().narrows(&a));
    }

    #[test]
    fn ascii_shortcut_agrees_with_nucleo() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let alphabet = b"abc3f- 5yj";
        let mut m = FuzzyMatcher::default();
        for _ in 0..20_000 {
            let hay: String = (0..rng.random_range(0..120))
                .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                .collect();
            let needle: String = (0..rng.random_range(1..8))
                .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                .collect();
            let fragment = needle.bytes().filter(u8::is_ascii_digit).count() >= 3;
            let expected = if fragment {
                hay.contains(&needle)
            } else {
                m.nucleo_score(&hay, &needle) > 0
            };
            assert_eq!(m.matches(&hay, &needle), expected, "`{needle}` in `{hay}`");
        }
    }

    #[test]
    fn a_fragment_matches_inside_one_field_only() {
        let mut m = FuzzyMatcher::default();
        let hay = format!("5yj3e1ea7kf000123{FIELD_SEPARATOR}456-veh");
        assert!(m.matches(&hay, "000123"));
        assert!(m.matches(&hay, "456-v"));
        assert!(!m.matches(&hay, "123456"));
        assert!(!m.matches("5yj3e1ea7kf000124", "000123"));
    }

    #[test]
    fn accented_text_goes_through_nucleo() {
        let mut m = FuzzyMatcher::default();
        assert!(m.matches("citroën ë-c4", "citroen"));
        assert!(!m.matches("citroën ë-c4", "peugeot"));
    }

    #[test]
    fn a_needle_mask_rejects_only_text_lacking_one_of_its_characters() {
        let needle = char_mask("5yj");
        assert_eq!(needle & !char_mask("5yj3e1 tesla"), 0);
        assert_ne!(needle & !char_mask("3fmtk1 ford"), 0);
        // Accented text may match through folding, so it never rejects.
        assert_eq!(
            char_mask("citroën") & char_mask("citroen"),
            char_mask("citroen")
        );
    }
}
