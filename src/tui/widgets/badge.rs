//! Badges: a symbol and a word as well as a colour, so they read without colour and on any background.

use ratatui::text::Span;

use crate::health::Status;
use crate::tui::facts::{Grant, VirtualKey};
use crate::tui::theme::Theme;

/// The symbol of a status.
pub fn status_symbol(status: Status) -> &'static str {
    match status {
        Status::Blocked => "✖",
        Status::Degraded => "▲",
        Status::Warning => "!",
        Status::Healthy => "●",
        Status::Unknown => "?",
    }
}

/// `✖ BLOCKED` in the status colour.
pub fn status_badge(status: Status, theme: &Theme) -> Span<'static> {
    Span::styled(
        format!("{} {}", status_symbol(status), status.label()),
        theme.status(status),
    )
}

/// `✔ location` / `✖ location needed` / `· battery` / `? odometer`.
pub fn grant_badge(grant: Grant, name: &str, theme: &Theme) -> Span<'static> {
    let (text, style) = match grant {
        Grant::Granted => (format!("✔ {name}"), theme.healthy),
        Grant::Missing => (format!("· {name}"), theme.muted),
        Grant::NeededMissing => (format!("✖ {name}"), theme.blocked),
        Grant::Unknown => (format!("? {name}"), theme.unknown),
    };
    Span::styled(text, style)
}

/// The word for a grant in the permissions grid.
pub fn grant_word(grant: Grant) -> &'static str {
    match grant {
        Grant::Granted => "✔ granted",
        Grant::Missing => "· not granted",
        Grant::NeededMissing => "✖ MISSING",
        Grant::Unknown => "? unknown",
    }
}

/// `✔ paired` / `✖ missing` / `– exempt` / `· not a Tesla` / `? unknown`.
pub fn virtual_key_badge(key: VirtualKey, theme: &Theme) -> Span<'static> {
    let (text, style) = match key {
        VirtualKey::Paired => ("✔ paired", theme.healthy),
        VirtualKey::Missing => ("✖ missing", theme.blocked),
        VirtualKey::Exempt => ("– exempt", theme.muted),
        VirtualKey::NotTesla => ("· not Tesla", theme.muted),
        VirtualKey::Unknown => ("? unknown", theme.unknown),
    };
    Span::styled(text, style)
}
