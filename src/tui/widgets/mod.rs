//! The dashboard's building blocks: badges, countdowns, progress, the sortable table, spinner and the one-line input.

pub mod badge;
pub mod countdown;
pub mod input;
pub mod progress;
pub mod segments;
pub mod spinner;
pub mod table;

pub use badge::{grant_badge, status_badge, virtual_key_badge};
pub use countdown::{ago, deadline_spans};
pub use input::LineInput;
pub use progress::progress_line;
pub use segments::{Segment, fit_line, grouped};
pub use spinner::spinner_frame;
pub use table::{Column, DataTable, window_offset};
