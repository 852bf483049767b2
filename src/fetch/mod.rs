//! Probes vehicles through the Smartcar client on a tokio task: priorities, concurrency cap, rate budget, retries. Emits events.

pub mod events;

pub use events::{Command, ConnectionInfo, Event, Priority, Progress};
