//! Everything that must happen to text from the network before a person, a file or a clipboard sees it:
//! control characters neutralised, fix links vetted against a policy, echoed secrets redacted.
//!
//! Each rule lives here once; the report writers, the dashboard, the clipboard and the scheduler call it.

pub mod link;
pub mod redact;
pub mod text;

pub use link::{LinkPolicy, RejectedLink};
pub use redact::{Keyring, Redactor};
