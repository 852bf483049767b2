//! Copying to the system clipboard through the terminal (OSC 52), refusing anything that looks like a credential.

use std::borrow::Cow;
use std::io::{self, Write};

use base64::Engine;

/// Terminals commonly cap an OSC 52 payload near 100 kB; a larger copy would be silently cut.
pub const MAX_COPY_BYTES: usize = 74_000;

/// Why a copy was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CopyRefused {
    #[error("not copied: the text looks like a credential ({why})")]
    LooksLikeSecret { why: &'static str },
    #[error(
        "not copied: {bytes} bytes is more than the terminal clipboard takes ({MAX_COPY_BYTES})"
    )]
    TooLong { bytes: usize },
    #[error("not copied: nothing to copy")]
    Empty,
}

/// The text as it may reach the clipboard: pasted into a terminal, an ESC or bidi control from the
/// server would act there, so only line breaks survive (see [`crate::untrusted::text::multi_line`]).
pub fn clean(text: &str) -> Cow<'_, str> {
    crate::untrusted::text::multi_line(text)
}

/// `ESC ] 52 ; c ; <base64> BEL`: asks the terminal to put `text` on the clipboard. With tmux,
/// `set-clipboard on` forwards it as is.
pub fn osc52(text: &str) -> String {
    format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// Refuses text that carries a credential. Callers only pass links, replies and evidence, so this
/// is a second line of defence against a token that slipped into one of them.
pub fn guard(text: &str, known_secrets: &[&str]) -> Result<(), CopyRefused> {
    if text.trim().is_empty() {
        return Err(CopyRefused::Empty);
    }
    if text.len() > MAX_COPY_BYTES {
        return Err(CopyRefused::TooLong { bytes: text.len() });
    }
    if known_secrets
        .iter()
        .any(|s| s.len() >= 8 && text.contains(s))
    {
        return Err(CopyRefused::LooksLikeSecret {
            why: "contains a configured token",
        });
    }
    let lower = text.to_ascii_lowercase();
    for (marker, why) in [
        ("bearer ", "an Authorization header"),
        ("authorization:", "an Authorization header"),
        ("access_token", "an access_token field"),
        ("refresh_token", "a refresh_token field"),
        ("client_secret", "a client secret"),
        ("amt=", "an application management token"),
    ] {
        if lower.contains(marker) {
            return Err(CopyRefused::LooksLikeSecret { why });
        }
    }
    if text
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .any(looks_like_jwt)
    {
        return Err(CopyRefused::LooksLikeSecret {
            why: "a JSON Web Token",
        });
    }
    Ok(())
}

/// Three base64url segments starting with an encoded JSON header (`eyJ`).
fn looks_like_jwt(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            p.len() >= 4
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

/// Checks `text`, then writes its OSC 52 sequence to `out`.
pub fn copy_to(
    out: &mut impl Write,
    text: &str,
    known_secrets: &[&str],
) -> io::Result<Result<(), CopyRefused>> {
    let text = &*clean(text);
    if let Err(refused) = guard(text, known_secrets) {
        return Ok(Err(refused));
    }
    out.write_all(osc52(text).as_bytes())?;
    out.flush()?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_wraps_base64_between_esc_52_and_bel() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
    }

    #[test]
    fn pairing_link_reply_and_evidence_are_copied() {
        let mut out = Vec::new();
        let link = "https://www.tesla.com/_ak/smartcar.com";
        assert_eq!(copy_to(&mut out, link, &[]).ok(), Some(Ok(())));
        assert_eq!(String::from_utf8_lossy(&out), osc52(link));
        let evidence = "GET /v2.0/vehicles/7c1e/odometer 400 CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED request 5f0c2a1e-4c2b-4d1e-9a8f-0b1c2d3e4f5a";
        assert_eq!(guard(evidence, &[]), Ok(()));
    }

    #[test]
    fn anything_token_shaped_is_refused_and_nothing_is_written() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZw";
        for text in [
            "Authorization: Bearer abc",
            "{\"access_token\": \"x\"}",
            "refresh_token=abc",
            jwt,
            "token is 0f9e8d7c-secret-value here",
        ] {
            let mut out = Vec::new();
            let result = copy_to(&mut out, text, &["0f9e8d7c-secret-value"]).ok();
            assert!(
                matches!(result, Some(Err(CopyRefused::LooksLikeSecret { .. }))),
                "{text}"
            );
            assert!(out.is_empty(), "{text}");
        }
    }

    #[test]
    fn copied_text_carries_no_escape_or_bidi_control() {
        let mut out = Vec::new();
        let reply = "Open\x1b]8;;http://evil\x07 this \u{202E}link\nthen approve";
        assert_eq!(copy_to(&mut out, reply, &[]).ok(), Some(Ok(())));
        assert_eq!(
            String::from_utf8_lossy(&out),
            osc52("Open\u{FFFD}]8;;http://evil\u{FFFD} this \u{FFFD}link\nthen approve")
        );
    }

    #[test]
    fn empty_and_oversized_copies_are_refused() {
        assert_eq!(guard("  ", &[]), Err(CopyRefused::Empty));
        let big = "a".repeat(MAX_COPY_BYTES + 1);
        assert!(matches!(guard(&big, &[]), Err(CopyRefused::TooLong { .. })));
    }
}
