//! Diagnoses a vehicle from what the probes observed, under the OEM rules in force. Pure: no I/O, no clock.

pub mod types;

pub use types::{Diagnosis, Evidence, Finding, Needs, Remedy, RemedyKind, Severity, Status};
