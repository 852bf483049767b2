//! vtriage: diagnoses why connected cars stopped answering through the Smartcar API.

pub mod config;
pub mod fetch;
pub mod health;
pub mod sim;
pub mod report;
pub mod smartcar;
pub mod tokens;
pub mod store;
pub mod tui;
