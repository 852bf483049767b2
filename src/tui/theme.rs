//! Colours as data: semantic style slots, the dark and light presets, `auto`, user overrides and NO_COLOR.

use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};

use crate::config::ThemeChoice;
use crate::health::Status;

/// The shipped presets.
pub const DEFAULT_THEME: &str = include_str!("../../assets/theme.toml");

/// Every style the views use, named for what it means rather than how it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub blocked: Style,
    pub degraded: Style,
    pub warning: Style,
    pub healthy: Style,
    pub unknown: Style,
    pub header: Style,
    pub demo: Style,
    pub live: Style,
    pub selection: Style,
    pub muted: Style,
    pub link: Style,
    pub key: Style,
    pub title: Style,
    pub border: Style,
    pub progress_done: Style,
    pub progress_todo: Style,
    pub flash: Style,
    pub error: Style,
}

const SLOTS: [&str; 18] = [
    "blocked",
    "degraded",
    "warning",
    "healthy",
    "unknown",
    "header",
    "demo",
    "live",
    "selection",
    "muted",
    "link",
    "key",
    "title",
    "border",
    "progress_done",
    "progress_todo",
    "flash",
    "error",
];

/// A theme file that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThemeError {
    #[error("theme {origin}: not valid TOML: {message}")]
    Toml { origin: String, message: String },
    #[error("theme {origin}: unknown section [{section}]; sections are: dark, light")]
    UnknownPreset { origin: String, section: String },
    #[error("theme {origin}: [{preset}] has no slot {slot:?}; slots are: {valid}")]
    UnknownSlot {
        origin: String,
        preset: String,
        slot: String,
        valid: String,
    },
    #[error(
        "theme {origin}: [{preset}] {slot} = {value:?}: {reason}; write e.g. \"bold red\", \"white on blue\", \"#ff8800\", \"underlined 75\""
    )]
    BadStyle {
        origin: String,
        preset: String,
        slot: String,
        value: String,
        reason: String,
    },
}

/// Which preset a resolved theme uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Dark,
    Light,
}

impl Preset {
    fn name(self) -> &'static str {
        match self {
            Preset::Dark => "dark",
            Preset::Light => "light",
        }
    }

    /// What `auto` means: the terminal's `COLORFGBG` ("15;0" is light on black) when it says, else dark.
    pub fn detect(colorfgbg: Option<&str>) -> Preset {
        let background = colorfgbg
            .and_then(|v| v.rsplit(';').next())
            .and_then(|b| b.trim().parse::<u8>().ok());
        match background {
            Some(7 | 9..=15) => Preset::Light,
            _ => Preset::Dark,
        }
    }
}

/// Parses a style: `"bold white on blue"`, `"#ff8800"`, `"underlined 75"`.
pub fn parse_style(text: &str) -> Result<Style, String> {
    let mut style = Style::new();
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        let lower = word.to_ascii_lowercase();
        let modifier = match lower.as_str() {
            "bold" => Some(Modifier::BOLD),
            "dim" => Some(Modifier::DIM),
            "italic" => Some(Modifier::ITALIC),
            "underlined" | "underline" => Some(Modifier::UNDERLINED),
            "reversed" | "reverse" => Some(Modifier::REVERSED),
            _ => None,
        };
        if let Some(m) = modifier {
            style = style.add_modifier(m);
            continue;
        }
        if lower == "on" {
            let Some(colour) = words.next() else {
                return Err("\"on\" needs a colour after it".into());
            };
            let colour = parse_colour(colour)?;
            style = style.bg(colour);
            continue;
        }
        if style.fg.is_some() {
            return Err(format!("two foreground colours (second: {word:?})"));
        }
        style = style.fg(parse_colour(word)?);
    }
    Ok(style)
}

fn parse_colour(word: &str) -> Result<Color, String> {
    Color::from_str(word).map_err(|_| format!("unknown colour {word:?}"))
}

impl Theme {
    /// The preset from the shipped file.
    pub fn preset(preset: Preset) -> Theme {
        let mut theme = Theme::plain();
        // The embedded file is checked by the tests below; a mistake there is a build defect.
        if let Err(e) = theme.overlay_text("(built-in)", DEFAULT_THEME, preset) {
            panic!("{e}");
        }
        theme
    }

    /// No colour at all, for NO_COLOR: only bold, underline and reverse, which every terminal shows.
    pub fn plain() -> Theme {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        Theme {
            blocked: bold,
            degraded: bold,
            warning: bold,
            healthy: bold,
            unknown: bold,
            header: Style::new().add_modifier(Modifier::REVERSED),
            demo: bold,
            live: bold,
            selection: Style::new().add_modifier(Modifier::REVERSED),
            muted: Style::new(),
            link: Style::new().add_modifier(Modifier::UNDERLINED),
            key: bold,
            title: bold,
            border: Style::new(),
            progress_done: Style::new(),
            progress_todo: Style::new(),
            flash: Style::new().add_modifier(Modifier::REVERSED),
            error: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        }
    }

    /// The theme to use: NO_COLOR wins, then the choice (`auto` reads `COLORFGBG`), then the user's file.
    pub fn resolve(
        choice: ThemeChoice,
        no_color: bool,
        colorfgbg: Option<&str>,
        user_file: Option<(&str, &str)>,
    ) -> Result<Theme, ThemeError> {
        if no_color {
            return Ok(Theme::plain());
        }
        let preset = match choice {
            ThemeChoice::Dark => Preset::Dark,
            ThemeChoice::Light => Preset::Light,
            ThemeChoice::Auto => Preset::detect(colorfgbg),
        };
        let mut theme = Theme::preset(preset);
        if let Some((origin, text)) = user_file {
            theme.overlay_text(origin, text, preset)?;
        }
        Ok(theme)
    }

    /// Whether the environment asks for no colour (`NO_COLOR` set and not empty, per no-color.org).
    pub fn no_color_from_env() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    }

    fn slot_mut(&mut self, name: &str) -> Option<&mut Style> {
        Some(match name {
            "blocked" => &mut self.blocked,
            "degraded" => &mut self.degraded,
            "warning" => &mut self.warning,
            "healthy" => &mut self.healthy,
            "unknown" => &mut self.unknown,
            "header" => &mut self.header,
            "demo" => &mut self.demo,
            "live" => &mut self.live,
            "selection" => &mut self.selection,
            "muted" => &mut self.muted,
            "link" => &mut self.link,
            "key" => &mut self.key,
            "title" => &mut self.title,
            "border" => &mut self.border,
            "progress_done" => &mut self.progress_done,
            "progress_todo" => &mut self.progress_todo,
            "flash" => &mut self.flash,
            "error" => &mut self.error,
            _ => return None,
        })
    }

    /// Applies the `[dark]` or `[light]` section of a theme file; the other section is checked, not applied.
    fn overlay_text(&mut self, origin: &str, text: &str, preset: Preset) -> Result<(), ThemeError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ThemeError::Toml {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        for (section, slots) in &table {
            if section != "dark" && section != "light" {
                return Err(ThemeError::UnknownPreset {
                    origin: origin.into(),
                    section: section.clone(),
                });
            }
            let Some(slots) = slots.as_table() else {
                return Err(ThemeError::UnknownPreset {
                    origin: origin.into(),
                    section: section.clone(),
                });
            };
            let mut scratch = *self;
            let target: &mut Theme = if section == preset.name() {
                &mut *self
            } else {
                &mut scratch
            };
            for (slot, value) in slots {
                let bad = |reason: String| ThemeError::BadStyle {
                    origin: origin.into(),
                    preset: section.clone(),
                    slot: slot.clone(),
                    value: value.to_string(),
                    reason,
                };
                let text = value
                    .as_str()
                    .ok_or_else(|| bad("must be a string".into()))?;
                let style = parse_style(text).map_err(bad)?;
                let place = target
                    .slot_mut(slot)
                    .ok_or_else(|| ThemeError::UnknownSlot {
                        origin: origin.into(),
                        preset: section.clone(),
                        slot: slot.clone(),
                        valid: SLOTS.join(", "),
                    })?;
                // A slot is replaced whole, so a user can also remove a colour.
                *place = style;
            }
        }
        Ok(())
    }

    /// The style of a status everywhere it appears.
    pub fn status(&self, status: Status) -> Style {
        match status {
            Status::Blocked => self.blocked,
            Status::Degraded => self.degraded,
            Status::Warning => self.warning,
            Status::Healthy => self.healthy,
            Status::Unknown => self.unknown,
        }
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::preset(Preset::Dark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_presets_define_every_slot() {
        let table: toml::Table = toml::from_str(DEFAULT_THEME).unwrap_or_default();
        for preset in ["dark", "light"] {
            let slots = table
                .get(preset)
                .and_then(|t| t.as_table())
                .cloned()
                .unwrap_or_default();
            for slot in SLOTS {
                assert!(slots.contains_key(slot), "[{preset}] lacks {slot}");
            }
        }
        assert_ne!(Theme::preset(Preset::Dark), Theme::preset(Preset::Light));
    }

    #[test]
    fn no_color_has_no_colour_anywhere() {
        let theme = Theme::resolve(ThemeChoice::Dark, true, None, None).unwrap_or_default();
        for slot in SLOTS {
            let mut t = theme;
            let style = t.slot_mut(slot).copied().unwrap_or_default();
            assert_eq!((style.fg, style.bg), (None, None), "{slot}");
        }
    }

    #[test]
    fn auto_follows_colorfgbg() {
        assert_eq!(Preset::detect(Some("0;15")), Preset::Light);
        assert_eq!(Preset::detect(Some("15;0")), Preset::Dark);
        assert_eq!(Preset::detect(Some("12;7")), Preset::Light);
        assert_eq!(Preset::detect(Some("garbage")), Preset::Dark);
        assert_eq!(Preset::detect(None), Preset::Dark);
        let light =
            Theme::resolve(ThemeChoice::Auto, false, Some("0;15"), None).unwrap_or_default();
        assert_eq!(light, Theme::preset(Preset::Light));
    }

    #[test]
    fn user_file_replaces_one_slot_of_the_chosen_preset() {
        let user = "[dark]\nblocked = \"bold #ff0000 on black\"\n[light]\nblocked = \"red\"\n";
        let theme = Theme::resolve(ThemeChoice::Dark, false, None, Some(("theme.toml", user)))
            .unwrap_or_default();
        assert_eq!(
            theme.blocked,
            Style::new()
                .bold()
                .fg(Color::Rgb(255, 0, 0))
                .bg(Color::Black)
        );
        assert_eq!(theme.healthy, Theme::preset(Preset::Dark).healthy);
    }

    #[test]
    fn bad_colour_names_the_slot_and_the_value() {
        let err = Theme::resolve(
            ThemeChoice::Light,
            false,
            None,
            Some(("/c/theme.toml", "[light]\nlink = \"blurple\"\n")),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("/c/theme.toml") && err.contains("link") && err.contains("blurple"),
            "{err}"
        );
        let slot = Theme::resolve(
            ThemeChoice::Light,
            false,
            None,
            Some(("t", "[light]\nlinks = \"red\"\n")),
        )
        .err();
        assert!(matches!(slot, Some(ThemeError::UnknownSlot { .. })));
    }
}
