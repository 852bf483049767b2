//! Neutralises text from the network for each place it is shown: a terminal line, a multi-line terminal
//! text, a Markdown ticket, a CSV cell. Clean input comes back borrowed, so the per-frame table costs nothing.

use std::borrow::Cow;

/// What replaces a character that could drive a terminal or reorder what a person reads.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Bidirectional controls: they make `evil.com/moc.elgoog` read as something else ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// C0 controls, DEL, C1 controls (U+0080–U+009F, which some terminals read as ESC sequences), bidi
/// controls and the Unicode line and paragraph separators.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Controls that only break lines or space words: shown as one space rather than as a replacement mark.
fn is_break(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// True when every byte is printable ASCII: the common case, checked without decoding.
fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7F).contains(&b))
}

/// Serialized JSON with every unsafe character that JSON allows raw (DEL, C1 controls, bidi controls,
/// U+2028 and U+2029) written as a `\uXXXX` escape: the same value, but a client that prints a string
/// without decoding it, or a log viewer, cannot be driven by it. Such characters can only stand in
/// strings, so the escape is always valid there.
pub fn json_escaped(json: &str) -> Cow<'_, str> {
    // C0 controls are escaped by every JSON writer already.
    let raw_unsafe = |c: char| is_unsafe(c) && u32::from(c) > 0x1F;
    if printable_ascii(json) || !json.chars().any(raw_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if raw_unsafe(c) {
            out.push_str(&format!("\\u{:04X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line for a table cell, a status line, a log field or a stderr message: every run of line breaks
/// and tabs becomes one space, every other unsafe character (ESC, DEL, C1, bidi) becomes U+FFFD, which
/// also disarms an ESC sequence since its tail is then plain text.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if printable_ascii(s) || !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut in_break = false;
    for c in s.chars() {
        if is_break(c) {
            if !in_break {
                out.push(' ');
            }
            in_break = true;
            continue;
        }
        in_break = false;
        out.push(if is_unsafe(c) { REPLACEMENT } else { c });
    }
    Cow::Owned(out)
}

/// Text where lines are expected (a customer reply, pretty JSON): `\n` stays, `\r\n` and a lone `\r`
/// become `\n`, a tab becomes a space, every other unsafe character becomes U+FFFD.
pub fn multi_line(s: &str) -> Cow<'_, str> {
    let clean = |c: char| c == '\n' || !is_unsafe(c);
    if s.bytes().all(|b| b == b'\n' || (0x20..0x7F).contains(&b)) || s.chars().all(clean) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\t' => out.push(' '),
            c if clean(c) => out.push(c),
            _ => out.push(REPLACEMENT),
        }
    }
    Cow::Owned(out)
}

/// Characters that make Markdown anywhere in a line: emphasis, code, links and images (`[`), raw HTML
/// and autolinks (`<`), table cells (`|`), entities (`&`), strikethrough, and the escape itself.
fn markdown_active(c: char) -> bool {
    matches!(
        c,
        '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '{' | '}' | '&' | '~' | '!'
    )
}

/// Characters that make a block (heading, list, quote, rule, setext underline) at the start of a line.
fn markdown_leading(c: char) -> bool {
    matches!(c, '#' | '-' | '+' | '=' | '>' | '(' | ')') || c.is_ascii_digit()
}

/// One line of running Markdown text: `one_line`, then every character that could make a heading, link,
/// image, HTML, table break or code fence is backslash-escaped. `(` and `)` only make a link after `]`,
/// which is escaped, so they stay readable in the middle of a line.
pub fn markdown(s: &str) -> Cow<'_, str> {
    let line = one_line(s);
    let trimmed = line.trim_start_matches(' ');
    let leading = trimmed.chars().next().filter(|c| markdown_leading(*c));
    if leading.is_none() && !line.chars().any(markdown_active) {
        return line;
    }
    let mut out = String::with_capacity(line.len() + 8);
    let lead_at = line.len() - trimmed.len();
    for (i, c) in line.char_indices() {
        // A digit starts an ordered list only when `.` or `)` follows; escaping that punctuation is enough.
        let at_lead = i == lead_at && leading.is_some();
        if at_lead && c.is_ascii_digit() {
            out.push(c);
            continue;
        }
        let active = match c {
            '_' => !intraword(&line, i),
            '&' => starts_entity(&line[i..]),
            c => markdown_active(c),
        };
        if active || at_lead || (i > lead_at && ordered_marker(&line, lead_at, i)) {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// `_` between two letters or digits never makes emphasis (CommonMark's flanking rules), so
/// `read_location` and `vehicle_id` stay as written.
fn intraword(line: &str, i: usize) -> bool {
    let before = line.get(..i).and_then(|h| h.chars().next_back());
    let after = line.get(i + 1..).and_then(|t| t.chars().next());
    before.is_some_and(char::is_alphanumeric) && after.is_some_and(char::is_alphanumeric)
}

/// `&name;`, `&#123;` or `&#x1F;`: an entity Markdown would turn into another character.
fn starts_entity(tail: &str) -> bool {
    let Some(rest) = tail.strip_prefix('&') else {
        return false;
    };
    let body: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '#')
        .collect();
    !body.is_empty() && rest[body.len()..].starts_with(';')
}

/// `.` or `)` right after the leading run of digits (`1.` or `1)` starts an ordered list).
fn ordered_marker(line: &str, lead_at: usize, i: usize) -> bool {
    let Some(head) = line.get(lead_at..i) else {
        return false;
    };
    !head.is_empty()
        && head.bytes().all(|b| b.is_ascii_digit())
        && matches!(line.as_bytes().get(i), Some(b'.' | b')'))
}

/// Characters a spreadsheet reads as the start of a formula (OWASP CSV injection).
fn starts_formula(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r')
}

/// A CSV cell's value: `one_line`, then a leading `'` when the value (or its first character after
/// spaces, which spreadsheets skip) would start a formula: `=HYPERLINK(...)` stays text. The CSV writer
/// does the quoting.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let formula = s
        .trim_start_matches(' ')
        .chars()
        .next()
        .is_some_and(starts_formula);
    let line = one_line(s);
    if !formula {
        return line;
    }
    let mut out = String::with_capacity(line.len() + 1);
    out.push('\'');
    out.push_str(&line);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_del_c1_bidi_and_line_separators_keeps_its_value_with_those_escaped() {
        let raw = serde_json::to_string(
            &serde_json::json!({"make": "A\u{7f}B\u{9b}C\u{202e}D\u{2028}E\u{1b}"}),
        )
        .unwrap();
        let escaped = json_escaped(&raw);
        assert!(escaped.chars().all(|c| !is_unsafe(c)), "{escaped}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back["make"], "A\u{7f}B\u{9b}C\u{202e}D\u{2028}E\u{1b}");
        assert!(matches!(json_escaped("{\"a\":1}"), Cow::Borrowed(_)));
    }

    #[test]
    fn clean_text_is_borrowed_not_copied() {
        for s in ["TESLA Model 3", "Zoë's Mégane E-Tech", "", "rq-1 · 2026"] {
            assert!(matches!(one_line(s), Cow::Borrowed(_)), "{s}");
            assert!(matches!(multi_line(s), Cow::Borrowed(_)), "{s}");
        }
        assert!(matches!(multi_line("a\nb"), Cow::Borrowed(_)));
        assert!(matches!(markdown("Model 3"), Cow::Borrowed(_)));
        assert!(matches!(csv_cell("5YJ3E1EA7KF000001"), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_sequences_lose_their_escape() {
        let s = one_line("Model\x1b[2J\x1b]52;c;aGk=\x07 3");
        assert!(!s.contains('\x1b') && !s.contains('\x07'), "{s:?}");
        assert_eq!(s, "Model\u{FFFD}[2J\u{FFFD}]52;c;aGk=\u{FFFD} 3");
    }

    #[test]
    fn c1_controls_del_and_bidi_overrides_are_replaced() {
        for c in [
            '\u{9B}', '\u{80}', '\u{9F}', '\u{7F}', '\u{202E}', '\u{202A}', '\u{2066}', '\u{2069}',
            '\u{200E}', '\u{200F}', '\u{061C}', '\0',
        ] {
            let s = format!("a{c}b");
            assert_eq!(one_line(&s), "a\u{FFFD}b", "{c:?}");
            assert_eq!(multi_line(&s), "a\u{FFFD}b", "{c:?}");
        }
    }

    #[test]
    fn line_breaks_collapse_to_one_space_on_one_line() {
        assert_eq!(one_line("a\r\n\r\nb\tc\u{2028}d"), "a b c d");
    }

    #[test]
    fn multi_line_keeps_newlines_and_normalises_carriage_returns() {
        assert_eq!(multi_line("a\r\nb\rc\n\x1bd\te"), "a\nb\nc\n\u{FFFD}d e");
    }

    #[test]
    fn markdown_heading_link_image_html_table_and_fence_stay_text() {
        assert_eq!(markdown("# Heading"), "\\# Heading");
        assert_eq!(
            markdown("[x](javascript:alert(1))"),
            "\\[x\\](javascript:alert(1))"
        );
        assert_eq!(markdown("![i](http://x)"), "\\!\\[i\\](http://x)");
        assert_eq!(
            markdown("<script>alert(1)</script>"),
            "\\<script\\>alert(1)\\</script\\>"
        );
        assert_eq!(markdown("a | b"), "a \\| b");
        assert_eq!(markdown("```rust"), "\\`\\`\\`rust");
        assert_eq!(markdown("- item"), "\\- item");
        assert_eq!(markdown("  > quote"), "  \\> quote");
        assert_eq!(markdown("1. first"), "1\\. first");
        assert_eq!(
            markdown("Model 3 (2021) - e-tron"),
            "Model 3 (2021) - e-tron"
        );
    }

    #[test]
    fn markdown_cannot_start_a_new_line() {
        // Without the line break the `#` is not at a line start, so it stays readable.
        assert_eq!(markdown("ok\n# Heading"), "ok # Heading");
    }

    #[test]
    fn csv_formulas_become_text() {
        for (input, want) in [
            (
                "=HYPERLINK(\"http://evil\",\"x\")",
                "'=HYPERLINK(\"http://evil\",\"x\")",
            ),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "' =1"),
            ("\r=1", "' =1"),
            ("  =1", "'  =1"),
            ("Model=3", "Model=3"),
        ] {
            assert_eq!(csv_cell(input), want, "{input:?}");
        }
    }
}
