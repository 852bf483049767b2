//! vtriage: diagnoses why connected cars stopped answering through the Smartcar API.

pub mod fetch;
pub mod health;
pub mod smartcar;
pub mod tui;
