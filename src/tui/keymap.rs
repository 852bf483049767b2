//! Key bindings as data: actions, per-view contexts, the embedded defaults with partial user overrides, and the hints and help generated from them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::{Deserialize, Serialize};

/// The default bindings, shipped inside the binary.
pub const DEFAULT_KEYMAP: &str = include_str!("../../assets/keymap.toml");

/// Everything a key can ask the dashboard to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    Help,
    Back,
    Open,
    Filter,
    Command,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    SortNext,
    SortReverse,
    FaultsOnly,
    OnlyBlocked,
    OnlyDegraded,
    OnlyWarning,
    OnlyHealthy,
    OnlyUnknown,
    ClearFilter,
    CopyFixLink,
    CopyReply,
    CopyEvidence,
    Reprobe,
    Watch,
    OpenLink,
    RawJson,
    Submit,
    Cancel,
    HistoryPrev,
    HistoryNext,
}

impl Action {
    pub const ALL: [Action; 32] = [
        Action::Open,
        Action::Filter,
        Action::Command,
        Action::SortNext,
        Action::SortReverse,
        Action::FaultsOnly,
        Action::OnlyBlocked,
        Action::OnlyDegraded,
        Action::OnlyWarning,
        Action::OnlyHealthy,
        Action::OnlyUnknown,
        Action::ClearFilter,
        Action::CopyFixLink,
        Action::CopyReply,
        Action::CopyEvidence,
        Action::Reprobe,
        Action::Watch,
        Action::OpenLink,
        Action::RawJson,
        Action::Submit,
        Action::Cancel,
        Action::HistoryPrev,
        Action::HistoryNext,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Back,
        Action::Help,
        Action::Quit,
    ];

    /// The name used in keymap files (`sort_next`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "help",
            Action::Back => "back",
            Action::Open => "open",
            Action::Filter => "filter",
            Action::Command => "command",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page_up",
            Action::PageDown => "page_down",
            Action::Top => "top",
            Action::Bottom => "bottom",
            Action::SortNext => "sort_next",
            Action::SortReverse => "sort_reverse",
            Action::FaultsOnly => "faults_only",
            Action::OnlyBlocked => "only_blocked",
            Action::OnlyDegraded => "only_degraded",
            Action::OnlyWarning => "only_warning",
            Action::OnlyHealthy => "only_healthy",
            Action::OnlyUnknown => "only_unknown",
            Action::ClearFilter => "clear_filter",
            Action::CopyFixLink => "copy_fix_link",
            Action::CopyReply => "copy_reply",
            Action::CopyEvidence => "copy_evidence",
            Action::Reprobe => "reprobe",
            Action::Watch => "watch",
            Action::OpenLink => "open_link",
            Action::RawJson => "raw_json",
            Action::Submit => "submit",
            Action::Cancel => "cancel",
            Action::HistoryPrev => "history_prev",
            Action::HistoryNext => "history_next",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// A word or two for the hint bar.
    pub fn hint(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "help",
            Action::Back => "back",
            Action::Open => "open",
            Action::Filter => "filter",
            Action::Command => "command",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "top",
            Action::Bottom => "bottom",
            Action::SortNext => "sort",
            Action::SortReverse => "reverse",
            Action::FaultsOnly => "faults",
            Action::OnlyBlocked => "blocked",
            Action::OnlyDegraded => "degraded",
            Action::OnlyWarning => "warning",
            Action::OnlyHealthy => "healthy",
            Action::OnlyUnknown => "unknown",
            Action::ClearFilter => "clear",
            Action::CopyFixLink => "copy fix",
            Action::CopyReply => "copy reply",
            Action::CopyEvidence => "copy evidence",
            Action::Reprobe => "re-probe",
            Action::Watch => "watch",
            Action::OpenLink => "open link",
            Action::RawJson => "raw JSON",
            Action::Submit => "apply",
            Action::Cancel => "cancel",
            Action::HistoryPrev => "history",
            Action::HistoryNext => "history",
        }
    }

    /// One sentence for the help overlay.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Quit => "Quit vtriage",
            Action::Help => "Show or hide this help",
            Action::Back => "Go back to the previous view, keeping its filter, sort and selection",
            Action::Open => "Open the selected vehicle",
            Action::Filter => {
                "Filter the fleet (live results; a status key's filter stays apart, Backspace on an empty line drops it; a whole VIN opens its car; up/down recall earlier filters)"
            }
            Action::Command => {
                "Command line: :vehicle ID, :user ID, :vin VIN, :export PATH (.csv .json .jsonl .md), :sweep [force|stop], :refresh, :q"
            }
            Action::Up => "Move up",
            Action::Down => "Move down",
            Action::PageUp => "Move up one page",
            Action::PageDown => "Move down one page",
            Action::Top => "Go to the first row",
            Action::Bottom => "Go to the last row",
            Action::SortNext => "Sort by the next column",
            Action::SortReverse => "Reverse the sort direction",
            Action::FaultsOnly => "Show only vehicles with a fault (toggle)",
            Action::OnlyBlocked => "Show only BLOCKED vehicles (toggle)",
            Action::OnlyDegraded => "Show only DEGRADED vehicles (toggle)",
            Action::OnlyWarning => "Show only WARNING vehicles (toggle)",
            Action::OnlyHealthy => "Show only HEALTHY vehicles (toggle)",
            Action::OnlyUnknown => "Show only UNKNOWN vehicles (toggle)",
            Action::ClearFilter => "Clear the filter",
            Action::CopyFixLink => "Copy the fix link (pairing or re-authentication link)",
            Action::CopyReply => "Copy the reply for the customer",
            Action::CopyEvidence => "Copy the evidence for an escalation to Smartcar",
            Action::Reprobe => "Probe this vehicle again now",
            Action::Watch => {
                "Watch this car once its fix was sent: re-probed after 1, 2, 4, 8… min (at most 15), free on a desk; says when it recovers (again: stop)"
            }
            Action::OpenLink => "Open the fix link with the system opener",
            Action::RawJson => "Show or hide the raw last responses (JSON)",
            Action::Submit => "Apply",
            Action::Cancel => "Cancel and restore what was there before",
            Action::HistoryPrev => "Previous entry in the history",
            Action::HistoryNext => "Next entry in the history",
        }
    }
}

/// Where the keyboard focus is; each has its own bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyContext {
    Fleet,
    Vehicle,
    FilterInput,
    CommandInput,
    Help,
}

impl KeyContext {
    pub const ALL: [KeyContext; 5] = [
        KeyContext::Fleet,
        KeyContext::Vehicle,
        KeyContext::FilterInput,
        KeyContext::CommandInput,
        KeyContext::Help,
    ];

    /// The section name in keymap files.
    pub fn name(self) -> &'static str {
        match self {
            KeyContext::Fleet => "fleet",
            KeyContext::Vehicle => "vehicle",
            KeyContext::FilterInput => "filter_input",
            KeyContext::CommandInput => "command_input",
            KeyContext::Help => "help",
        }
    }

    /// The heading in the help overlay.
    pub fn title(self) -> &'static str {
        match self {
            KeyContext::Fleet => "Fleet",
            KeyContext::Vehicle => "Vehicle",
            KeyContext::FilterInput => "Filter line (/)",
            KeyContext::CommandInput => "Command line (:)",
            KeyContext::Help => "Help",
        }
    }

    pub fn from_name(name: &str) -> Option<KeyContext> {
        KeyContext::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Actions shown in the hint bar, in order.
    fn hinted(self) -> &'static [Action] {
        match self {
            KeyContext::Fleet => &[
                Action::Open,
                Action::Filter,
                Action::Command,
                Action::SortNext,
                Action::FaultsOnly,
                Action::OnlyBlocked,
                Action::Help,
                Action::Quit,
            ],
            KeyContext::Vehicle => &[
                Action::Back,
                Action::CopyFixLink,
                Action::CopyReply,
                Action::CopyEvidence,
                Action::Reprobe,
                Action::Watch,
                Action::OpenLink,
                Action::RawJson,
                Action::Help,
            ],
            KeyContext::FilterInput | KeyContext::CommandInput => {
                &[Action::Submit, Action::Cancel, Action::HistoryPrev]
            }
            KeyContext::Help => &[Action::Back, Action::Quit],
        }
    }
}

/// A key as bindings see it: shift folded into the character, so `S` and `shift-s` are one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

impl Key {
    pub fn new(code: KeyCode, modifiers: KeyModifiers) -> Key {
        let modifiers = match code {
            // Terminals disagree on whether `S` comes with SHIFT; the character already says it.
            KeyCode::Char(_) | KeyCode::BackTab => modifiers - KeyModifiers::SHIFT,
            _ => modifiers,
        };
        Key { code, modifiers }
    }

    pub fn from_event(event: &KeyEvent) -> Key {
        Key::new(event.code, event.modifiers)
    }

    /// Parses a key name from a keymap file: `"q"`, `"?"`, `"shift-s"`, `"ctrl-c"`, `"enter"`, `"f5"`.
    pub fn parse(name: &str) -> Result<Key, String> {
        if name.is_empty() {
            return Err("empty key name".into());
        }
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = name;
        loop {
            let lower = rest.to_ascii_lowercase();
            let (prefix_len, modifier) = if lower.starts_with("ctrl-") && rest.len() > 5 {
                (5, KeyModifiers::CONTROL)
            } else if lower.starts_with("alt-") && rest.len() > 4 {
                (4, KeyModifiers::ALT)
            } else if lower.starts_with("shift-") && rest.len() > 6 {
                (6, KeyModifiers::SHIFT)
            } else {
                break;
            };
            modifiers |= modifier;
            rest = &rest[prefix_len..];
        }
        let mut chars = rest.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            let c = if modifiers.contains(KeyModifiers::SHIFT) {
                if !c.is_alphabetic() {
                    return Err(format!(
                        "\"shift-{c}\" is ambiguous: write the shifted character itself"
                    ));
                }
                c.to_uppercase().next().unwrap_or(c)
            } else if modifiers.contains(KeyModifiers::CONTROL) {
                // Terminals report ctrl-letters in lower case.
                c.to_ascii_lowercase()
            } else {
                c
            };
            return Ok(Key::new(KeyCode::Char(c), modifiers));
        }
        let lower = rest.to_ascii_lowercase();
        let code = match lower.as_str() {
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "tab" if modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "insert" => KeyCode::Insert,
            "space" => KeyCode::Char(' '),
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" | "pgup" => KeyCode::PageUp,
            "pagedown" | "pgdn" => KeyCode::PageDown,
            f if f.starts_with('f') => match f[1..].parse::<u8>() {
                Ok(n @ 1..=12) => KeyCode::F(n),
                _ => return Err(format!("unknown key name {rest:?}")),
            },
            _ => return Err(format!("unknown key name {rest:?}")),
        };
        Ok(Key::new(code, modifiers))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.modifiers.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("backtab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::Insert => f.write_str("insert"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pageup"),
            KeyCode::PageDown => f.write_str("pagedown"),
            KeyCode::F(n) => write!(f, "f{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// A keymap file that cannot be used, with what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeymapError {
    #[error("keymap {origin}: not valid TOML: {message}")]
    Toml { origin: String, message: String },
    #[error("keymap {origin}: unknown section [{section}]; sections are: {valid}")]
    UnknownContext {
        origin: String,
        section: String,
        valid: String,
    },
    #[error("keymap {origin}: [{context}] has no action {action:?}; actions there: {valid}")]
    UnknownAction {
        origin: String,
        context: &'static str,
        action: String,
        valid: String,
    },
    #[error(
        "keymap {origin}: [{context}] {action} must be a list of key names, like [\"q\", \"ctrl-c\"]"
    )]
    NotAList {
        origin: String,
        context: &'static str,
        action: String,
    },
    #[error(
        "keymap {origin}: [{context}] {action}: {reason}; use a character (\"q\", \"?\", \"J\"), \"shift-s\", \"ctrl-c\", \"alt-x\", \"enter\", \"esc\", \"up\", \"pagedown\", \"f5\""
    )]
    BadKey {
        origin: String,
        context: &'static str,
        action: String,
        reason: String,
    },
}

/// One line of the hint bar: `enter open`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub keys: String,
    pub label: &'static str,
}

/// One row of the help overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpRow {
    pub keys: String,
    pub action: Action,
    pub description: &'static str,
}

/// The bindings of every context. Built from the defaults, then overlaid with the user's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: BTreeMap<KeyContext, BTreeMap<Action, Vec<Key>>>,
    lookup: HashMap<(KeyContext, Key), Action>,
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap::defaults()
    }
}

impl Keymap {
    /// The shipped bindings.
    pub fn defaults() -> Keymap {
        let mut keymap = Keymap {
            bindings: BTreeMap::new(),
            lookup: HashMap::new(),
        };
        // The embedded file is checked by the tests below; a mistake there is a build defect.
        if let Err(e) = keymap.overlay("(built-in)", DEFAULT_KEYMAP, true) {
            panic!("{e}");
        }
        keymap
    }

    /// The defaults overlaid with a user keymap file's text. `origin` names the file in errors.
    pub fn with_overrides(origin: &str, text: &str) -> Result<Keymap, KeymapError> {
        let mut keymap = Keymap::defaults();
        keymap.overlay(origin, text, false)?;
        Ok(keymap)
    }

    /// The defaults overlaid with an already parsed table: the config file's `[keys]`. Either
    /// sections per context (`[keys.vehicle] copy_reply = ["C"]`) or, for short, an action name
    /// at the top (`quit = ["x"]`), which rebinds it in every context that has it.
    pub fn with_table(origin: &str, table: &toml::Table) -> Result<Keymap, KeymapError> {
        let mut keymap = Keymap::defaults();
        keymap.overlay_table(origin, table, false)?;
        Ok(keymap)
    }

    fn overlay(&mut self, origin: &str, text: &str, defining: bool) -> Result<(), KeymapError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| KeymapError::Toml {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        self.overlay_table(origin, &table, defining)
    }

    fn overlay_table(
        &mut self,
        origin: &str,
        table: &toml::Table,
        defining: bool,
    ) -> Result<(), KeymapError> {
        let unknown_section = |section: &str| KeymapError::UnknownContext {
            origin: origin.into(),
            section: section.into(),
            valid: KeyContext::ALL.map(KeyContext::name).join(", "),
        };
        for (section, value) in table {
            if let (false, Some(action), toml::Value::Array(_)) =
                (defining, Action::from_name(section), value)
            {
                let contexts: Vec<KeyContext> = KeyContext::ALL
                    .into_iter()
                    .filter(|c| {
                        self.bindings
                            .get(c)
                            .is_some_and(|a| a.contains_key(&action))
                    })
                    .collect();
                for context in contexts {
                    self.overlay_action(origin, context, section, value, false)?;
                }
                continue;
            }
            // `quit = "Q"`: an action everywhere, written without the list brackets.
            if !defining && Action::from_name(section).is_some() && !value.is_table() {
                return Err(KeymapError::NotAList {
                    origin: origin.into(),
                    context: "every section",
                    action: section.clone(),
                });
            }
            let context = KeyContext::from_name(section).ok_or_else(|| unknown_section(section))?;
            let actions = value.as_table().ok_or_else(|| unknown_section(section))?;
            for (action_name, keys) in actions {
                self.overlay_action(origin, context, action_name, keys, defining)?;
            }
        }
        Ok(())
    }

    fn overlay_action(
        &mut self,
        origin: &str,
        context: KeyContext,
        action_name: &str,
        keys: &toml::Value,
        defining: bool,
    ) -> Result<(), KeymapError> {
        let known = self.bindings.get(&context);
        let action = Action::from_name(action_name)
            .filter(|a| defining || known.is_some_and(|k| k.contains_key(a)))
            .ok_or_else(|| KeymapError::UnknownAction {
                origin: origin.into(),
                context: context.name(),
                action: action_name.into(),
                valid: known
                    .map(|k| k.keys().map(|a| a.name()).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
            })?;
        let not_a_list = || KeymapError::NotAList {
            origin: origin.into(),
            context: context.name(),
            action: action_name.into(),
        };
        let list = keys.as_array().ok_or_else(not_a_list)?;
        let mut parsed = Vec::with_capacity(list.len());
        for key in list {
            let name = key.as_str().ok_or_else(not_a_list)?;
            let key = Key::parse(name).map_err(|reason| KeymapError::BadKey {
                origin: origin.into(),
                context: context.name(),
                action: action_name.into(),
                reason,
            })?;
            parsed.push(key);
        }
        self.bind(context, action, parsed);
        Ok(())
    }

    /// Gives `action` exactly `keys` in `context`; a key taken from another action leaves it.
    fn bind(&mut self, context: KeyContext, action: Action, keys: Vec<Key>) {
        let actions = self.bindings.entry(context).or_default();
        for (other, other_keys) in actions.iter_mut() {
            if *other != action {
                other_keys.retain(|k| !keys.contains(k));
            }
        }
        actions.insert(action, keys);
        self.lookup.retain(|(c, _), _| *c != context);
        for (action, keys) in actions.iter() {
            for key in keys {
                self.lookup.insert((context, *key), *action);
            }
        }
    }

    /// The action a key press asks for in a context.
    pub fn action(&self, context: KeyContext, key: Key) -> Option<Action> {
        self.lookup.get(&(context, key)).copied()
    }

    pub fn action_for_event(&self, context: KeyContext, event: &KeyEvent) -> Option<Action> {
        self.action(context, Key::from_event(event))
    }

    /// The keys bound to an action in a context, in the order they were written.
    pub fn keys(&self, context: KeyContext, action: Action) -> &[Key] {
        self.bindings
            .get(&context)
            .and_then(|a| a.get(&action))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The hint bar of a context: first key of each hinted action, with the five status filters folded into one entry.
    pub fn hints(&self, context: KeyContext) -> Vec<Hint> {
        let mut hints = Vec::new();
        for &action in context.hinted() {
            if action == Action::OnlyBlocked {
                if let Some(hint) = self.status_filter_hint(context) {
                    hints.push(hint);
                }
                continue;
            }
            if let Some(key) = self.keys(context, action).first() {
                let keys = match action {
                    Action::HistoryPrev => {
                        let next = self.keys(context, Action::HistoryNext).first();
                        next.map_or_else(|| key.to_string(), |n| format!("{key}{n}"))
                    }
                    _ => key.to_string(),
                };
                hints.push(Hint {
                    keys,
                    label: action.hint(),
                });
            }
        }
        hints
    }

    fn status_filter_hint(&self, context: KeyContext) -> Option<Hint> {
        let firsts: Vec<String> = [
            Action::OnlyBlocked,
            Action::OnlyDegraded,
            Action::OnlyWarning,
            Action::OnlyHealthy,
            Action::OnlyUnknown,
        ]
        .into_iter()
        .filter_map(|a| self.keys(context, a).first().map(Key::to_string))
        .collect();
        let first = firsts.first()?;
        let keys = if firsts.concat() == "12345" {
            "1-5".to_string()
        } else {
            firsts.join("/")
        };
        let keys = if firsts.len() == 1 {
            first.clone()
        } else {
            keys
        };
        Some(Hint {
            keys,
            label: "status",
        })
    }

    /// Every bound action of a context with all its keys, for the help overlay.
    pub fn help_rows(&self, context: KeyContext) -> Vec<HelpRow> {
        let Some(actions) = self.bindings.get(&context) else {
            return Vec::new();
        };
        Action::ALL
            .into_iter()
            .filter_map(|action| {
                let keys = actions.get(&action)?;
                if keys.is_empty() {
                    return None;
                }
                Some(HelpRow {
                    keys: keys
                        .iter()
                        .map(Key::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                    action,
                    description: match (context, action) {
                        // The shared wording fits the filter line and the vehicle page, not these.
                        (KeyContext::CommandInput, Action::Cancel) => {
                            "Close the command line without running it"
                        }
                        (KeyContext::Help, Action::Back) => "Close this help",
                        _ => action.describe(),
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_describes_esc_as_what_it_does_in_each_context() {
        let keymap = Keymap::defaults();
        let describe = |context, action| {
            keymap
                .help_rows(context)
                .into_iter()
                .find(|r| r.action == action)
                .map(|r| r.description)
                .unwrap_or_default()
        };
        assert_eq!(
            describe(KeyContext::CommandInput, Action::Cancel),
            "Close the command line without running it"
        );
        assert_eq!(describe(KeyContext::Help, Action::Back), "Close this help");
        assert!(describe(KeyContext::FilterInput, Action::Cancel).contains("restore"));
    }

    #[test]
    fn action_written_as_a_string_asks_for_a_list() {
        let table: toml::Table = toml::from_str("quit = \"Q\"").unwrap_or_default();
        let err = Keymap::with_table("config.toml [keys]", &table)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("quit must be a list of key names"), "{err}");
        assert!(!err.contains("unknown section"), "{err}");
    }

    fn key(name: &str) -> Key {
        Key::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn every_default_binding_maps_to_its_action() {
        let keymap = Keymap::defaults();
        let table: toml::Table = toml::from_str(DEFAULT_KEYMAP).unwrap_or_default();
        let mut checked = 0;
        for (section, actions) in &table {
            let context =
                KeyContext::from_name(section).unwrap_or_else(|| panic!("section {section}"));
            for (name, keys) in actions.as_table().into_iter().flatten() {
                let action = Action::from_name(name).unwrap_or_else(|| panic!("action {name}"));
                for k in keys.as_array().into_iter().flatten() {
                    let k = key(k.as_str().unwrap_or_default());
                    assert_eq!(keymap.action(context, k), Some(action), "[{section}] {k}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 60, "only {checked} bindings checked");
    }

    #[test]
    fn terminal_events_reach_the_documented_actions() {
        let keymap = Keymap::defaults();
        let cases = [
            (
                KeyContext::Fleet,
                press(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Action::Quit,
            ),
            (
                KeyContext::Fleet,
                press(KeyCode::Char('S'), KeyModifiers::SHIFT),
                Action::SortReverse,
            ),
            (
                KeyContext::Fleet,
                press(KeyCode::Char('S'), KeyModifiers::NONE),
                Action::SortReverse,
            ),
            (
                KeyContext::Fleet,
                press(KeyCode::Char('?'), KeyModifiers::SHIFT),
                Action::Help,
            ),
            (
                KeyContext::Fleet,
                press(KeyCode::Enter, KeyModifiers::NONE),
                Action::Open,
            ),
            (
                KeyContext::Fleet,
                press(KeyCode::Char('3'), KeyModifiers::NONE),
                Action::OnlyWarning,
            ),
            (
                KeyContext::Vehicle,
                press(KeyCode::Esc, KeyModifiers::NONE),
                Action::Back,
            ),
            (
                KeyContext::Vehicle,
                press(KeyCode::Char('J'), KeyModifiers::SHIFT),
                Action::RawJson,
            ),
            (
                KeyContext::Vehicle,
                press(KeyCode::Char('y'), KeyModifiers::NONE),
                Action::CopyFixLink,
            ),
            (
                KeyContext::FilterInput,
                press(KeyCode::Up, KeyModifiers::NONE),
                Action::HistoryPrev,
            ),
            (
                KeyContext::CommandInput,
                press(KeyCode::Enter, KeyModifiers::NONE),
                Action::Submit,
            ),
            (
                KeyContext::Help,
                press(KeyCode::Char('?'), KeyModifiers::NONE),
                Action::Back,
            ),
        ];
        for (context, event, action) in cases {
            assert_eq!(
                keymap.action_for_event(context, &event),
                Some(action),
                "{context:?} {event:?}"
            );
        }
        // Typing into the filter line must not trigger fleet actions.
        assert_eq!(
            keymap.action_for_event(
                KeyContext::FilterInput,
                &press(KeyCode::Char('q'), KeyModifiers::NONE)
            ),
            None
        );
    }

    #[test]
    fn override_replaces_one_action_and_keeps_the_rest() {
        let keymap = Keymap::with_overrides("test.toml", "[fleet]\nsort_next = [\"o\"]\n")
            .unwrap_or_default();
        assert_eq!(
            keymap.action(KeyContext::Fleet, key("o")),
            Some(Action::SortNext)
        );
        assert_eq!(keymap.action(KeyContext::Fleet, key("s")), None);
        assert_eq!(
            keymap.action(KeyContext::Fleet, key("S")),
            Some(Action::SortReverse)
        );
        assert_eq!(
            keymap.action(KeyContext::Fleet, key("q")),
            Some(Action::Quit)
        );
        assert_eq!(
            keymap.action(KeyContext::Vehicle, key("y")),
            Some(Action::CopyFixLink)
        );
    }

    #[test]
    fn override_taking_a_used_key_moves_it() {
        let keymap = Keymap::with_overrides("test.toml", "[vehicle]\nraw_json = [\"r\"]\n")
            .unwrap_or_default();
        assert_eq!(
            keymap.action(KeyContext::Vehicle, key("r")),
            Some(Action::RawJson)
        );
        assert!(keymap.keys(KeyContext::Vehicle, Action::Reprobe).is_empty());
        assert!(
            !keymap
                .help_rows(KeyContext::Vehicle)
                .iter()
                .any(|r| r.action == Action::Reprobe)
        );
    }

    #[test]
    fn bad_key_name_is_a_clear_error() {
        let err = Keymap::with_overrides("/home/a/keymap.toml", "[fleet]\nquit = [\"ctlr-q\"]\n");
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("/home/a/keymap.toml"), "{message}");
        assert!(message.contains("[fleet] quit"), "{message}");
        assert!(message.contains("\"ctlr-q\""), "{message}");
        assert!(
            message.contains("ctrl-c"),
            "suggests a valid form: {message}"
        );
    }

    #[test]
    fn unknown_action_and_section_name_the_valid_ones() {
        let action = Keymap::with_overrides("k.toml", "[vehicle]\nexplode = [\"x\"]\n").err();
        assert!(
            matches!(&action, Some(KeymapError::UnknownAction { valid, .. }) if valid.contains("copy_fix_link"))
        );
        let misplaced =
            Keymap::with_overrides("k.toml", "[filter_input]\nreprobe = [\"x\"]\n").err();
        assert!(matches!(misplaced, Some(KeymapError::UnknownAction { .. })));
        let section = Keymap::with_overrides("k.toml", "[fleets]\nquit = [\"x\"]\n").err();
        assert!(matches!(section, Some(KeymapError::UnknownContext { .. })));
        let not_list = Keymap::with_overrides("k.toml", "[fleet]\nquit = \"x\"\n").err();
        assert!(matches!(not_list, Some(KeymapError::NotAList { .. })));
    }

    #[test]
    fn config_keys_table_rebinds_an_action_everywhere_it_exists() {
        let table: toml::Table =
            toml::from_str("quit = [\"x\"]\n[vehicle]\ncopy_reply = [\"C\"]\n").unwrap_or_default();
        let keymap = Keymap::with_table("config.toml [keys]", &table).unwrap_or_default();
        assert_eq!(
            keymap.action(KeyContext::Fleet, key("x")),
            Some(Action::Quit)
        );
        assert_eq!(
            keymap.action(KeyContext::Vehicle, key("x")),
            Some(Action::Quit)
        );
        assert_eq!(keymap.action(KeyContext::Fleet, key("q")), None);
        assert_eq!(
            keymap.action(KeyContext::Vehicle, key("C")),
            Some(Action::CopyReply)
        );
        assert_eq!(keymap.action(KeyContext::Vehicle, key("c")), None);
    }

    #[test]
    fn key_names_round_trip_through_display() {
        for name in [
            "q", "?", "J", "ctrl-c", "alt-x", "enter", "esc", "pagedown", "f5", "space", "backtab",
        ] {
            let k = key(name);
            assert_eq!(key(&k.to_string().replace('↑', "up")), k, "{name}");
        }
        assert_eq!(key("shift-s"), key("S"));
        assert_eq!(key("shift-tab"), key("backtab"));
        assert!(Key::parse("shift-1").is_err());
        assert!(Key::parse("f13").is_err());
        assert!(Key::parse("").is_err());
    }

    #[test]
    fn hint_bar_follows_the_keymap() {
        let defaults = Keymap::defaults().hints(KeyContext::Fleet);
        let text: Vec<String> = defaults
            .iter()
            .map(|h| format!("{} {}", h.keys, h.label))
            .collect();
        assert_eq!(
            text,
            [
                "enter open",
                "/ filter",
                ": command",
                "s sort",
                "f faults",
                "1-5 status",
                "? help",
                "q quit"
            ]
        );
        let moved =
            Keymap::with_overrides("k.toml", "[fleet]\nhelp = [\"h\"]\n").unwrap_or_default();
        assert!(moved.hints(KeyContext::Fleet).contains(&Hint {
            keys: "h".into(),
            label: "help"
        }));
        let input = Keymap::defaults().hints(KeyContext::FilterInput);
        assert!(input.contains(&Hint {
            keys: "↑↓".into(),
            label: "history"
        }));
    }

    #[test]
    fn help_lists_every_bound_action_of_a_context() {
        let rows = Keymap::defaults().help_rows(KeyContext::Vehicle);
        let quit = rows
            .iter()
            .find(|r| r.action == Action::Quit)
            .map(|r| r.keys.clone());
        assert_eq!(quit.as_deref(), Some("q ctrl-c"));
        assert!(
            rows.iter()
                .any(|r| r.action == Action::CopyEvidence && r.keys == "i")
        );
    }

    #[test]
    fn action_serde_names_match_keymap_names() {
        for action in Action::ALL {
            let json = serde_json::to_string(&action).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", action.name()));
        }
    }
}
