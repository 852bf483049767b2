//! The dashboard: terminal lifecycle, keymap, theme, clipboard, widgets and views over the store.

pub mod clipboard;
pub mod facts;
pub mod keymap;
pub mod terminal;
pub mod theme;
pub mod widgets;
