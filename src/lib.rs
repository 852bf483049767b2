//! vtriage: diagnoses why connected cars stopped answering through the Smartcar API.

pub mod cli;
pub mod commands;
pub mod config;
pub mod desk;
pub mod feed;
pub mod fetch;
pub mod health;
pub mod http_serve;
pub mod private_files;
pub mod report;
pub mod setup;
pub mod sim;
pub mod smartcar;
pub mod store;
pub mod tokens;
pub mod tui;
pub mod untrusted;
