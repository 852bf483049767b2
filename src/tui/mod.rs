//! The dashboard: terminal lifecycle, keymap, theme, clipboard, widgets and views over the store.

pub mod keymap;
pub mod terminal;
