//! Reads the tokens file: CSV `user_id,access_token` (more columns ignored), checked line by line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::smartcar::Secret;

/// A tokens file that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Access tokens by user id, plus warnings about lines that were skipped.
#[derive(Debug, Default)]
pub struct Tokens {
    pub by_user: HashMap<String, Secret>,
    /// One line each, naming the file and line: shown to the person, never fatal.
    pub warnings: Vec<String>,
}

/// Reads and checks a tokens file. A wrong header or a file with no usable row is an error;
/// blank lines, short rows and duplicate users are warnings; a file others can read is a warning.
pub fn load(path: &Path) -> Result<Tokens, TokensError> {
    let bytes = std::fs::read(path).map_err(|source| TokensError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut tokens = parse(path, &bytes)?;
    if let Some(w) = crate::private_files::loose_permissions_warning(path) {
        tokens.warnings.insert(0, w);
    }
    Ok(tokens)
}

/// Parses the CSV text of a tokens file (see [`load`]).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Tokens, TokensError> {
    let invalid = |line: usize, message: String| TokensError::Invalid {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        invalid(line, "not UTF-8 text".into())
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut tokens = Tokens::default();
    // Quoting follows RFC 4180 (the csv crate): a quoted comma or quote stays inside its field.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let next = |records: &mut csv::StringRecordsIter<'_, &[u8]>| {
        records.next().map(|r| {
            r.map_err(|e| {
                let line = e
                    .position()
                    .map_or(1, |p| usize::try_from(p.line()).unwrap_or(usize::MAX));
                invalid(line, "not readable as CSV".into())
            })
        })
    };
    let Some(header) = next(&mut records).transpose()? else {
        return Err(invalid(
            1,
            "empty file; expected a header `user_id,access_token`".into(),
        ));
    };
    let header_line = line_of(text, &header);
    let columns: Vec<String> = header.iter().map(str::to_ascii_lowercase).collect();
    let user_col = columns.iter().position(|c| c == "user_id");
    let token_col = columns.iter().position(|c| c == "access_token");
    let (Some(user_col), Some(token_col)) = (user_col, token_col) else {
        return Err(invalid(
            header_line,
            format!(
                "header is `{}`; expected `user_id,access_token` (more columns are fine)",
                crate::untrusted::text::one_line(&columns.join(","))
            ),
        ));
    };
    // The csv reader skips blank lines; they are still worth a warning with their number.
    for (i, line) in text.lines().enumerate().skip(header_line) {
        if line.trim().is_empty() {
            tokens
                .warnings
                .push(format!("{}:{}: blank line skipped", path.display(), i + 1));
        }
    }
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    while let Some(record) = next(&mut records) {
        let record = record?;
        let n = line_of(text, &record);
        let user = record.get(user_col).unwrap_or_default().to_string();
        let token = record.get(token_col).unwrap_or_default().to_string();
        if user.is_empty() || token.is_empty() {
            tokens.warnings.push(format!(
                "{}:{n}: missing user_id or access_token; line skipped",
                path.display()
            ));
            continue;
        }
        if let Some(first) = first_line_of.get(&user) {
            tokens.warnings.push(format!(
                "{}:{n}: user {} already has a token on line {first}; this line wins",
                path.display(),
                crate::untrusted::text::one_line(&user)
            ));
        } else {
            first_line_of.insert(user.clone(), n);
        }
        tokens.by_user.insert(user, Secret::new(token));
    }
    tokens.warnings.sort_by_key(|w| warning_line(w));
    if tokens.by_user.is_empty() {
        return Err(invalid(
            header_line,
            "no usable `user_id,access_token` rows".into(),
        ));
    }
    Ok(tokens)
}

/// The 1-based line a record starts on, counted from its byte offset (the csv reader's own line
/// count leaves out the blank lines it skips).
fn line_of(text: &str, record: &csv::StringRecord) -> usize {
    let start = record
        .position()
        .map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
    // The position is where the reader began looking, before the blank lines it skipped.
    let byte = text
        .as_bytes()
        .get(start..)
        .and_then(|rest| rest.iter().position(|b| !matches!(b, b'\r' | b'\n')))
        .map_or(start, |skipped| start + skipped);
    memchr::memchr_iter(
        b'\n',
        text.as_bytes().get(..byte).unwrap_or(text.as_bytes()),
    )
    .count()
        + 1
}

/// The line number in a `file:line: ...` warning, to keep warnings in file order.
fn warning_line(w: &str) -> usize {
    w.split(':')
        .rev()
        .filter_map(|part| part.trim().parse().ok())
        .next()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Tokens, TokensError> {
        parse(Path::new("t.csv"), text.as_bytes())
    }

    #[test]
    fn header_with_extra_columns_and_bom_is_read() {
        let t = parse_text("\u{feff}email,user_id,access_token\nx@y,u1,tok1\n").unwrap();
        assert_eq!(t.by_user["u1"].expose(), "tok1");
        assert!(t.warnings.is_empty());
    }

    #[test]
    fn wrong_header_names_the_line() {
        let err = parse_text("user,token\nu1,t1\n").unwrap_err().to_string();
        assert!(err.starts_with("t.csv:1: header is `user,token`"), "{err}");
    }

    #[test]
    fn blank_lines_and_duplicates_are_warnings_with_line_numbers() {
        let t = parse_text("user_id,access_token\nu1,a\n\nu1,b\nu2,c\n").unwrap();
        assert_eq!(t.by_user.len(), 2);
        assert_eq!(t.by_user["u1"].expose(), "b");
        assert_eq!(t.warnings.len(), 2);
        assert!(t.warnings[0].contains("t.csv:3"));
        assert!(
            t.warnings[1].contains("t.csv:4") && t.warnings[1].contains("line 2"),
            "{:?}",
            t.warnings
        );
    }

    #[test]
    fn file_without_rows_is_an_error() {
        assert!(parse_text("user_id,access_token\n\n").is_err());
        assert!(parse_text("").is_err());
    }

    #[test]
    fn warnings_never_contain_the_token() {
        let t = parse_text("user_id,access_token\nu1,secret-token-1\nu1,secret-token-2\n,lonely\n")
            .unwrap();
        for w in &t.warnings {
            assert!(!w.contains("secret-token") && !w.contains("lonely"), "{w}");
        }
    }

    #[test]
    fn a_quoted_comma_stays_inside_its_field() {
        let t = parse_text(
            "email,user_id,access_token\n\"Doe, Jane <j@x>\",u1,tok1\n\"a\"\"b\",u2,tok2\n",
        )
        .unwrap();
        assert_eq!(t.by_user["u1"].expose(), "tok1");
        assert_eq!(t.by_user["u2"].expose(), "tok2");
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn non_utf8_is_an_error_not_a_panic() {
        assert!(parse(Path::new("t.csv"), b"user_id,access_token\n\xff\xfe,x\n").is_err());
    }
}
