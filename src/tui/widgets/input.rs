//! A one-line text input with a cursor and a history recalled with up/down (for `/` and `:`).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// How many submitted entries a history keeps.
pub const HISTORY_LEN: usize = 50;

/// The text, the cursor (in characters) and the history of earlier submissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineInput {
    text: String,
    cursor: usize,
    history: Vec<String>,
    /// Which history entry is shown; `None` while editing fresh text.
    recalled: Option<usize>,
    /// The fresh text kept aside while browsing the history.
    draft: String,
}

impl LineInput {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Cursor position in characters.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Starts editing with `text` (the current filter, so `/` continues from it).
    pub fn start(&mut self, text: &str) {
        self.text = text.to_string();
        self.cursor = self.text.chars().count();
        self.recalled = None;
        self.draft.clear();
    }

    fn byte_at(&self, char_index: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_index)
            .map_or(self.text.len(), |(b, _)| b)
    }

    /// Applies an editing key; returns whether the text changed. Keys that are not editing keys are ignored.
    pub fn edit(&mut self, key: &KeyEvent) -> bool {
        let len = self.text.chars().count();
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                let at = self.byte_at(self.cursor);
                self.text.replace_range(..at, "");
                self.cursor = 0;
                true
            }
            KeyCode::Char('w') if ctrl => {
                let before: Vec<char> = self.text.chars().take(self.cursor).collect();
                let mut start = before.len();
                while start > 0 && before[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && before[start - 1] != ' ' {
                    start -= 1;
                }
                let (from, to) = (self.byte_at(start), self.byte_at(self.cursor));
                self.text.replace_range(from..to, "");
                let changed = start != self.cursor;
                self.cursor = start;
                changed
            }
            KeyCode::Char('a') if ctrl => {
                self.cursor = 0;
                false
            }
            KeyCode::Char('e') if ctrl => {
                self.cursor = len;
                false
            }
            KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => {
                self.insert(&c.to_string());
                true
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let (from, to) = (self.byte_at(self.cursor - 1), self.byte_at(self.cursor));
                self.text.replace_range(from..to, "");
                self.cursor -= 1;
                true
            }
            KeyCode::Delete if self.cursor < len => {
                let (from, to) = (self.byte_at(self.cursor), self.byte_at(self.cursor + 1));
                self.text.replace_range(from..to, "");
                true
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                false
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(len);
                false
            }
            KeyCode::Home => {
                self.cursor = 0;
                false
            }
            KeyCode::End => {
                self.cursor = len;
                false
            }
            _ => false,
        }
    }

    /// Inserts pasted or typed text at the cursor; line breaks become spaces.
    pub fn insert(&mut self, text: &str) {
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let at = self.byte_at(self.cursor);
        self.text.insert_str(at, &clean);
        self.cursor += clean.chars().count();
    }

    /// Shows the previous (older) history entry; returns whether the text changed.
    pub fn history_prev(&mut self) -> bool {
        if self.history.is_empty() {
            return false;
        }
        let index = match self.recalled {
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => return false,
            Some(i) => i - 1,
        };
        self.show(Some(index))
    }

    /// Shows the next (newer) entry, or the draft after the newest; returns whether the text changed.
    pub fn history_next(&mut self) -> bool {
        match self.recalled {
            None => false,
            Some(i) if i + 1 < self.history.len() => self.show(Some(i + 1)),
            Some(_) => self.show(None),
        }
    }

    fn show(&mut self, index: Option<usize>) -> bool {
        self.recalled = index;
        let text = match index {
            Some(i) => self.history.get(i).cloned().unwrap_or_default(),
            None => self.draft.clone(),
        };
        let changed = text != self.text;
        self.text = text;
        self.cursor = self.text.chars().count();
        changed
    }

    /// Ends editing: records the text in the history (not twice in a row, never empty) and returns it.
    pub fn submit(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        let trimmed = text.trim();
        if !trimmed.is_empty() && self.history.last().map(String::as_str) != Some(trimmed) {
            self.history.push(trimmed.to_string());
            if self.history.len() > HISTORY_LEN {
                self.history.remove(0);
            }
        }
        self.cursor = 0;
        self.recalled = None;
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed(input: &mut LineInput, text: &str) {
        for c in text.chars() {
            input.edit(&key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn typing_and_editing_move_the_cursor_by_characters() {
        let mut input = LineInput::default();
        typed(&mut input, "vín:5YJ");
        input.edit(&key(KeyCode::Left));
        input.edit(&key(KeyCode::Backspace));
        assert_eq!(input.text(), "vín:5J");
        input.edit(&key(KeyCode::Home));
        input.edit(&key(KeyCode::Delete));
        assert_eq!((input.text(), input.cursor()), ("ín:5J", 0));
        input.edit(&KeyEvent::new(KeyCode::Char('e'), KeyModifiers::CONTROL));
        input.edit(&KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(input.text(), "");
    }

    #[test]
    fn history_recalls_older_entries_and_returns_to_the_draft() {
        let mut input = LineInput::default();
        for entry in ["status:blocked", "make:tesla"] {
            input.start("");
            typed(&mut input, entry);
            input.submit();
        }
        input.start("");
        typed(&mut input, "vin:");
        assert!(input.history_prev());
        assert_eq!(input.text(), "make:tesla");
        assert!(input.history_prev());
        assert_eq!(input.text(), "status:blocked");
        assert!(!input.history_prev(), "stays at the oldest");
        input.history_next();
        input.history_next();
        assert_eq!(input.text(), "vin:");
    }

    #[test]
    fn submit_skips_blanks_and_repeats() {
        let mut input = LineInput::default();
        for entry in ["a", "a", "  "] {
            input.start(entry);
            input.submit();
        }
        assert_eq!(input.history(), ["a"]);
    }

    #[test]
    fn paste_turns_line_breaks_into_spaces() {
        let mut input = LineInput::default();
        input.insert("5YJ3\nE1EA");
        assert_eq!(input.text(), "5YJ3 E1EA");
    }
}
