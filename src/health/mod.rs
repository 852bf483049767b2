//! Diagnoses a vehicle from what the probes observed, under the OEM rules in force. Pure: no I/O, no clock.

pub mod countdown;
pub mod diagnose;
pub mod policy;
pub mod remedy;
pub mod types;
pub mod virtual_key;

pub use countdown::{Countdown, Phase};
pub use diagnose::diagnose;
pub use policy::{Policies, PolicyError, Rule, RuleDate};
pub use types::{
    Diagnosis, Evidence, Finding, FindingId, FindingKind, Needs, Remedy, RemedyKind, Severity,
    Status,
};
pub use virtual_key::VirtualKey;
