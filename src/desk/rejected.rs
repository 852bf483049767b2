//! Rejected webhook deliveries kept for the operator: why each was refused, what would have made its
//! signature match, a redacted excerpt; bounded in count, age and write rate, and never processed.
//!
//! A refused delivery is only ever written to `rejected_deliveries` (never to the tables the
//! diagnosis reads), by one writer task fed through a bounded queue and a token bucket, so a flood
//! of junk costs the database a few rows a second at most; the rest are counted, not kept.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::smartcar::Secret;
use crate::untrusted::Redactor;
use crate::untrusted::text::one_line;

use super::db::Db;
use super::metrics::Metrics;
use super::webhook;

/// Why a delivery was refused, as the operator reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// No `SC-Signature`, and not a VERIFY of Smartcar's shape.
    NoSignature,
    /// `SC-Signature` present but not the HMAC of the body under the AMT.
    SignatureMismatch,
    /// Over the size cap (the unsigned one, or `--max-body-bytes`).
    TooLarge,
    /// Signed, but the body is not JSON.
    NotJson,
    /// Signed JSON the desk cannot read as a delivery (no eventType, a VERIFY challenge of another shape…).
    Unreadable,
    /// Signed and readable, but the database refused to hold it.
    Unstorable,
}

impl Why {
    pub fn label(self) -> &'static str {
        match self {
            Why::NoSignature => "no-signature",
            Why::SignatureMismatch => "signature-mismatch",
            Why::TooLarge => "too-large",
            Why::NotJson => "not-json",
            Why::Unreadable => "unreadable",
            Why::Unstorable => "unstorable",
        }
    }

    pub const ALL: [Why; 6] = [
        Why::NoSignature,
        Why::SignatureMismatch,
        Why::TooLarge,
        Why::NotJson,
        Why::Unreadable,
        Why::Unstorable,
    ];
}

/// What a signature that did not match would have matched, as far as the desk can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Likely {
    /// The header is no hex SHA-256 HMAC at all.
    NotAnHmac { chars: usize },
    /// The HMAC of the body under the AMT once the body is put back as it was: something between
    /// Smartcar and the desk rewrote it.
    BodyChanged { how: &'static str },
    /// The HMAC of the body under another secret this desk holds (a client secret or token
    /// configured where the AMT belongs, or the other way round).
    OtherKnownKey,
    /// Nothing the desk knows matches: another key (another application's AMT, or one
    /// regenerated at Smartcar since), or a body changed beyond the usual rewrites.
    UnknownKey,
}

impl Likely {
    /// One line for the operator.
    pub fn explain(&self) -> String {
        match self {
            Likely::NotAnHmac { chars } => format!(
                "the header is not a hex HMAC-SHA256 ({chars} characters, 64 hex expected): not sent by Smartcar as is"
            ),
            Likely::BodyChanged { how } => format!(
                "signed with this desk's AMT, but the body was changed on its way ({how}): a proxy or tunnel in front of the desk rewrites bodies; pass them through unchanged"
            ),
            Likely::OtherKnownKey => "signed with another secret this desk holds, not its AMT: check which value is configured as the application management token".into(),
            Likely::UnknownKey => "signed with a key this desk does not hold, body as sent: another application's AMT, or one regenerated at Smartcar since this desk was configured (if VERIFY still passes, Smartcar verifies and signs with different keys; recreating the webhook's application was the fix reported)".into(),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Likely::NotAnHmac { .. } => "not-an-hmac",
            Likely::BodyChanged { .. } => "body-changed",
            Likely::OtherKnownKey => "other-known-key",
            Likely::UnknownKey => "unknown-key",
        }
    }
}

/// Rewrites of a body seen between a sender and a server, each undone in turn.
fn rewrites(body: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let trimmed = body.trim_ascii_end();
    if trimmed.len() != body.len() {
        out.push(("whitespace added at its end", trimmed.to_vec()));
    }
    out.push(("a line end removed at its end", [body, b"\n"].concat()));
    if body.windows(2).any(|w| w == b"\r\n") {
        let lf = String::from_utf8_lossy(body).replace("\r\n", "\n");
        out.push(("line ends turned into CR LF", lf.into_bytes()));
    }
    if let Some(rest) = body.strip_prefix("\u{feff}".as_bytes()) {
        out.push(("a byte-order mark added", rest.to_vec()));
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Ok(compact) = serde_json::to_vec(&value) {
            out.push(("the JSON re-encoded (spacing or key order)", compact));
        }
        if let Ok(pretty) = serde_json::to_vec_pretty(&value) {
            out.push(("the JSON re-encoded (spacing or key order)", pretty));
        }
    }
    out.retain(|(_, b)| b.as_slice() != body);
    out
}

/// The largest body whose rewrites are tried.
const REWRITES_MAX_BYTES: usize = 64 * 1024;

/// What `signature` would have matched: the body as Smartcar may have sent it under the AMT, or
/// the body under another secret the desk holds. Called only once [`webhook::verify_signature`] refused it.
pub fn likely(amt: &[u8], others: &[Secret], body: &[u8], signature: &str) -> Likely {
    let claimed = signature.trim();
    let hex_digits = claimed.chars().filter(char::is_ascii_hexdigit).count();
    if claimed.len() != 64 || hex_digits != 64 {
        return Likely::NotAnHmac {
            chars: claimed.chars().count(),
        };
    }
    // Smartcar's deliveries are a few KiB: a body far larger is no re-encoded delivery worth the work.
    let rewritten = if body.len() <= REWRITES_MAX_BYTES {
        rewrites(body)
    } else {
        Vec::new()
    };
    for (how, original) in rewritten {
        if webhook::verify_signature(amt, &original, claimed) {
            return Likely::BodyChanged { how };
        }
    }
    let amt_text = String::from_utf8_lossy(amt);
    let other_key = others
        .iter()
        .filter(|s| s.expose() != amt_text.as_ref())
        .any(|s| webhook::verify_signature(s.expose().as_bytes(), body, claimed));
    if other_key {
        return Likely::OtherKnownKey;
    }
    Likely::UnknownKey
}

/// The most of a refused body kept, after redaction.
pub const EXCERPT_BYTES: usize = 2048;

/// One refused delivery, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// When it arrived (RFC 3339).
    pub at: String,
    pub why: Why,
    /// What the operator should know: the refusal in words, and for a signature, what would have matched.
    pub detail: String,
    /// For a signature mismatch: `not-an-hmac`, `body-changed`, `other-known-key` or `unknown-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likely: Option<String>,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// The body's length as received (or as declared, when it was refused before being read).
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The body's first [`EXCERPT_BYTES`], every secret the desk knows redacted; raw text from the
    /// network, sanitized whenever shown.
    pub excerpt: String,
}

/// What the route knows of a refused request.
pub struct Refused<'a> {
    pub why: Why,
    pub detail: String,
    pub likely: Option<Likely>,
    pub status: u16,
    pub body: Option<&'a [u8]>,
    pub declared_bytes: Option<u64>,
    pub signature: Option<&'a str>,
    pub peer: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

impl Refused<'_> {
    /// The row to keep: cut to size, every secret `redactor` knows removed.
    pub fn kept(&self, redactor: &Redactor, at: jiff::Timestamp) -> Rejected {
        let body = self.body.unwrap_or_default();
        let cut = &body[..body.len().min(EXCERPT_BYTES)];
        let text = String::from_utf8_lossy(cut).replace('\0', "\u{fffd}");
        let excerpt = redactor.redact(&text).into_owned();
        // An id or type only as far as a lenient read of the JSON gives them.
        let value = serde_json::from_slice::<Value>(body).ok();
        let field = |name: &str| {
            value
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
                .map(|s| clean(redactor, s, 200))
        };
        Rejected {
            at: at.to_string(),
            why: self.why,
            detail: self.detail.clone(),
            likely: self.likely.as_ref().map(|l| l.label().to_string()),
            status: self.status,
            bytes: self
                .body
                .map(|b| b.len() as u64)
                .or(self.declared_bytes)
                .unwrap_or(0),
            signature: self.signature.map(|s| clean(redactor, s, 128)),
            event_type: field("eventType").or_else(|| field("eventName")),
            event_id: field("eventId"),
            peer: self.peer.map(|p| p.to_string()),
            user_agent: self.user_agent.map(|s| clean(redactor, s, 200)),
            excerpt,
        }
    }
}

/// `s` redacted, without NULs, at most `max` characters.
fn clean(redactor: &Redactor, s: &str, max: usize) -> String {
    let s: String = s.chars().filter(|c| *c != '\0').take(max).collect();
    redactor.redact(&s).into_owned()
}

/// How many refused deliveries are kept, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepRejected {
    /// The newest this many rows stay.
    pub rows: u32,
    /// Rows older than this are deleted.
    pub days: u32,
    /// Rows written per second at most (a burst of ten times as many); the rest are only counted.
    pub per_second: u32,
}

impl Default for KeepRejected {
    fn default() -> Self {
        KeepRejected {
            rows: 500,
            days: 7,
            per_second: 5,
        }
    }
}

/// Hands refused deliveries to the writer without ever waiting for it.
#[derive(Clone)]
pub struct Keeper {
    tx: mpsc::Sender<Rejected>,
    bucket: Arc<std::sync::Mutex<Bucket>>,
    metrics: Arc<Metrics>,
}

struct Bucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Keeper {
    /// A keeper and the writer task that drains it into `db` until every keeper is dropped.
    pub fn start(
        db: Db,
        keep: KeepRejected,
        metrics: Arc<Metrics>,
    ) -> (Keeper, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(64);
        let per_second = f64::from(keep.per_second.max(1));
        let burst = per_second * 10.0;
        let keeper = Keeper {
            tx,
            bucket: Arc::new(std::sync::Mutex::new(Bucket {
                tokens: burst,
                burst,
                per_second,
                at: Instant::now(),
            })),
            metrics,
        };
        let writer = tokio::spawn(write(db, keep, rx, keeper.metrics.clone()));
        (keeper, writer)
    }

    /// Whether the rate allows keeping one more refusal now; one not allowed is counted as unkept.
    pub fn admit(&self) -> bool {
        let allowed = self.bucket.lock().unwrap_or_else(|e| e.into_inner()).take();
        if !allowed {
            self.metrics.rejected_unkept.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Hands an admitted refusal to the writer; never blocks the route.
    pub fn keep(&self, rejected: Rejected) {
        if self.tx.try_send(rejected).is_err() {
            self.metrics.rejected_unkept.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer: a few rows a statement, the table trimmed to its bounds after each batch.
async fn write(
    db: Db,
    keep: KeepRejected,
    mut rx: mpsc::Receiver<Rejected>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 32).await > 0 {
        match db.keep_rejected(&batch, keep.rows, keep.days).await {
            Ok(()) => {
                metrics
                    .rejected_kept
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                metrics
                    .rejected_unkept
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::warn!(error = %one_line(&e.to_string()), rows = batch.len(), "cannot keep refused deliveries");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        batch.clear();
    }
}

/// The kept deliveries as `serve --rejected` prints them: newest first, every text from the
/// network sanitized to one line.
pub fn render(rows: &[Rejected], out: &mut impl std::io::Write) -> std::io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "no refused deliveries kept");
    }
    for r in rows {
        let mut head = format!(
            "{}  {} {}  {} bytes",
            r.at,
            r.status,
            r.why.label(),
            r.bytes
        );
        if let Some(t) = &r.event_type {
            head.push_str(&format!("  {}", one_line(t)));
        }
        if let Some(id) = &r.event_id {
            head.push_str(&format!(" {}", one_line(id)));
        }
        if let Some(p) = &r.peer {
            head.push_str(&format!("  from {p}"));
        }
        writeln!(out, "{head}")?;
        writeln!(out, "  why: {}", one_line(&r.detail))?;
        if let Some(s) = &r.signature {
            writeln!(out, "  SC-Signature: {}", one_line(s))?;
        }
        if let Some(ua) = &r.user_agent {
            writeln!(out, "  User-Agent: {}", one_line(ua))?;
        }
        let excerpt: String = r.excerpt.chars().take(300).collect();
        let more = if r.excerpt.chars().count() > 300 {
            " …"
        } else {
            ""
        };
        writeln!(out, "  body: {}{more}", one_line(&excerpt))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMT: &str = "rejected-test-management-token";
    const BODY: &[u8] =
        br#"{"eventId":"e1","eventType":"VEHICLE_STATE","data":{"vehicle":{"id":"v1"}}}"#;

    #[test]
    fn a_signature_under_another_applications_amt_is_an_unknown_key() {
        let sig = webhook::sign(b"another-applications-amt", BODY);
        assert_eq!(likely(AMT.as_bytes(), &[], BODY, &sig), Likely::UnknownKey);
    }

    #[test]
    fn a_body_re_encoded_by_a_proxy_is_told_from_a_wrong_key() {
        let value: Value = serde_json::from_slice(BODY).unwrap();
        // Sent compact, pretty-printed on the way.
        let sent = serde_json::to_vec(&value).unwrap();
        let received = serde_json::to_vec_pretty(&value).unwrap();
        let sig = webhook::sign(AMT.as_bytes(), &sent);
        assert!(matches!(
            likely(AMT.as_bytes(), &[], &received, &sig),
            Likely::BodyChanged { .. }
        ));
        // A line end dropped on the way.
        let with_newline = [BODY, b"\n"].concat();
        let sig_newline = webhook::sign(AMT.as_bytes(), &with_newline);
        assert_eq!(
            likely(AMT.as_bytes(), &[], BODY, &sig_newline),
            Likely::BodyChanged {
                how: "a line end removed at its end"
            }
        );
        // The same rewritten body under another key is no rewrite.
        let wrong = webhook::sign(b"another-applications-amt", &sent);
        assert_eq!(
            likely(AMT.as_bytes(), &[], &received, &wrong),
            Likely::UnknownKey
        );
    }

    #[test]
    fn a_delivery_signed_with_the_client_secret_names_the_other_known_key() {
        let secret = Secret::new("the-v3-client-secret-value");
        let sig = webhook::sign(secret.expose().as_bytes(), BODY);
        assert_eq!(
            likely(AMT.as_bytes(), &[Secret::new(AMT), secret], BODY, &sig),
            Likely::OtherKnownKey
        );
    }

    #[test]
    fn a_header_that_is_no_hex_hmac_says_so() {
        assert_eq!(
            likely(AMT.as_bytes(), &[], BODY, "sha256=abc"),
            Likely::NotAnHmac { chars: 10 }
        );
        let upper_but_wrong = "Z".repeat(64);
        assert!(matches!(
            likely(AMT.as_bytes(), &[], BODY, &upper_but_wrong),
            Likely::NotAnHmac { .. }
        ));
    }

    #[test]
    fn a_kept_refusal_holds_no_secret_and_no_nul_and_is_cut_to_size() {
        let redactor = Redactor::new(&[Secret::new(AMT)]);
        let mut body =
            format!(r#"{{"eventId":"e\u0000{AMT}","eventType":"X","pad":""#).into_bytes();
        body.extend(std::iter::repeat_n(b'a', 10_000));
        let refused = Refused {
            why: Why::SignatureMismatch,
            detail: "x".into(),
            likely: Some(Likely::UnknownKey),
            status: 401,
            body: Some(&body),
            declared_bytes: None,
            signature: Some(AMT),
            peer: None,
            user_agent: Some(AMT),
        };
        let kept = refused.kept(&redactor, jiff::Timestamp::UNIX_EPOCH);
        let json = serde_json::to_string(&kept).unwrap();
        assert!(!json.contains(AMT), "{json}");
        assert!(!kept.excerpt.contains('\0'));
        assert!(kept.excerpt.len() <= EXCERPT_BYTES + 64);
        assert_eq!(kept.bytes, body.len() as u64);
        assert_eq!(kept.likely.as_deref(), Some("unknown-key"));
    }

    #[test]
    fn the_listing_shows_network_text_on_one_safe_line() {
        let row = Rejected {
            at: "2026-12-04T05:00:00Z".into(),
            why: Why::NoSignature,
            detail: "SC-Signature missing".into(),
            likely: None,
            status: 401,
            bytes: 12,
            signature: None,
            event_type: Some("VEHICLE\u{1b}[2J_STATE".into()),
            event_id: None,
            peer: Some("127.0.0.1".into()),
            user_agent: Some("curl\r\nX-Evil: 1".into()),
            excerpt: "{\"a\":\"\u{202e}\u{7}\"}".into(),
        };
        let mut out = Vec::new();
        render(&[row], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}') && !text.contains('\u{7}'));
        assert!(!text.contains("\r"), "{text:?}");
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.starts_with("2026-12-04T05:00:00Z  401 no-signature  12 bytes"));
    }
}
