//! Replaces every known secret a server echoes back (access tokens, the management token) with
//! `[redacted]`, in plain, Basic-auth base64 and URL-encoded form, before the text is stored or shown.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;

use crate::smartcar::{
    Answer, ApiError, ErrorCode, ErrorType, Observation, ProbeReport, Secret, SmartcarError,
};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Shorter secrets are not searched for: redacting "a" or "1234" would garble every text.
pub const MIN_SECRET_LEN: usize = 8;

/// A multi-pattern search for every form of every known secret.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    search: Option<AhoCorasick>,
}

impl Redactor {
    /// A redactor for `secrets`; those shorter than [`MIN_SECRET_LEN`] are left out.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Redactor {
        Redactor::from_values(secrets.into_iter().map(Secret::expose))
    }

    /// Like [`Redactor::new`], from raw values.
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut patterns: Vec<String> = Vec::new();
        for value in values.into_iter().filter(|v| v.len() >= MIN_SECRET_LEN) {
            let url_encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
            // The management token travels as Basic `default:<AMT>`; a server quoting the header echoes this.
            for form in [
                value.to_string(),
                url_encoded,
                b64.encode(format!("default:{value}")),
                b64.encode(value),
            ] {
                if !patterns.contains(&form) {
                    patterns.push(form);
                }
            }
        }
        if patterns.is_empty() {
            return Redactor::default();
        }
        // Longest first, so a secret inside a longer form leaves no tail of the longer one behind.
        let search = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok();
        Redactor { search }
    }

    pub fn is_empty(&self) -> bool {
        self.search.is_none()
    }

    /// `text` with every secret replaced; borrowed when there was none.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.search {
            Some(ac) if ac.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                ac.replace_all_with(text, &mut out, |_, _, dst| {
                    dst.push_str(REDACTED);
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// Redacts a string in place (no copy when it holds no secret).
    pub fn redact_string(&self, s: &mut String) {
        if let Cow::Owned(clean) = self.redact(s) {
            *s = clean;
        }
    }

    fn redact_option(&self, s: &mut Option<String>) {
        if let Some(s) = s {
            self.redact_string(s);
        }
    }

    /// Every string in a JSON value, keys included.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.redact_string(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let keys_hit = map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_)));
                if keys_hit {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(k, v)| (self.redact(&k).into_owned(), v))
                        .collect();
                }
                map.values_mut().for_each(|v| self.redact_json(v));
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn redact_smartcar_error(&self, e: &mut SmartcarError) {
        if let ErrorType::Other(s) = &mut e.error_type {
            self.redact_string(s);
        }
        if let Some(ErrorCode::Other(s)) = &mut e.code {
            self.redact_string(s);
        }
        self.redact_string(&mut e.description);
        self.redact_option(&mut e.doc_url);
        self.redact_option(&mut e.request_id);
        if let Some(r) = &mut e.resolution {
            self.redact_option(&mut r.kind);
            self.redact_option(&mut r.url);
        }
        self.redact_option(&mut e.suggested_user_message);
        if let Some(detail) = &mut e.detail {
            self.redact_json(detail);
        }
    }

    /// Every string an observation carries from the server: error fields, header-derived ids, answer bodies.
    pub fn redact_observation(&self, o: &mut Observation) {
        if self.is_empty() {
            return;
        }
        self.redact_string(&mut o.endpoint);
        self.redact_option(&mut o.meta.request_id);
        match &mut o.outcome {
            Err(ApiError::Smartcar(e)) => self.redact_smartcar_error(e),
            Err(ApiError::Body {
                content_type,
                request_id,
                snippet,
                ..
            }) => {
                self.redact_option(content_type);
                self.redact_option(request_id);
                self.redact_string(snippet);
            }
            Err(ApiError::Transport { message, .. } | ApiError::Unsendable { message }) => {
                self.redact_string(message)
            }
            Err(ApiError::Redirect {
                location,
                request_id,
                ..
            }) => {
                self.redact_option(location);
                self.redact_option(request_id);
            }
            Err(ApiError::TokenUnsettled {
                request_id, reason, ..
            }) => {
                self.redact_option(request_id);
                self.redact_string(reason);
            }
            Ok(Answer::Attributes(a)) => {
                self.redact_string(&mut a.id);
                self.redact_string(&mut a.make);
                self.redact_string(&mut a.model);
            }
            Ok(Answer::Permissions { permissions }) => {
                permissions.iter_mut().for_each(|p| self.redact_string(p));
            }
            Ok(Answer::Data { body }) => self.redact_json(body),
            Ok(Answer::TeslaUserAccess(access)) => {
                self.redact_option(&mut access.access_type);
                if let Some(p) = &mut access.permissions {
                    p.iter_mut().for_each(|p| self.redact_string(p));
                }
            }
            Ok(
                Answer::VirtualKey { .. }
                | Answer::TeslaAttributes { .. }
                | Answer::Connectivity { .. },
            ) => {}
        }
    }

    /// A probe report as it leaves the scheduler: its observations and the server-given identity fields.
    pub fn redact_report(&self, r: &mut ProbeReport) {
        if self.is_empty() {
            return;
        }
        self.redact_option(&mut r.user_id);
        self.redact_option(&mut r.vin);
        if let Some(a) = &mut r.attributes {
            self.redact_string(&mut a.id);
            self.redact_string(&mut a.make);
            self.redact_string(&mut a.model);
        }
        r.observations
            .iter_mut()
            .for_each(|o| self.redact_observation(o));
    }
}

/// Every secret the process knows, gathered from each part that holds some (the desk its AMT and
/// client secret, a scheduler its tokens as they rotate), and one [`Redactor`] for all of them: a
/// secret known to one path is redacted on every path. Clones share the ring.
#[derive(Clone, Default)]
pub struct Keyring {
    ring: Arc<RwLock<Ring>>,
}

#[derive(Default)]
struct Ring {
    /// Each holder's secrets, replaced whole when the holder's set changes.
    parts: BTreeMap<&'static str, Vec<Secret>>,
    redactor: Redactor,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<(&'static str, usize)> = self
            .read()
            .parts
            .iter()
            .map(|(k, v)| (*k, v.len()))
            .collect();
        f.debug_struct("Keyring").field("parts", &parts).finish()
    }
}

impl Keyring {
    /// A ring holding `secrets` as `part`.
    pub fn with<'a>(part: &'static str, secrets: impl IntoIterator<Item = &'a Secret>) -> Keyring {
        let ring = Keyring::default();
        ring.set(part, secrets);
        ring
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the secrets `part` holds; returns the redactor for every part's secrets.
    pub fn set<'a>(
        &self,
        part: &'static str,
        secrets: impl IntoIterator<Item = &'a Secret>,
    ) -> Redactor {
        let mut ring = self
            .ring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let secrets: Vec<Secret> = secrets.into_iter().cloned().collect();
        if ring.parts.get(part) != Some(&secrets) {
            ring.parts.insert(part, secrets);
            ring.redactor = Redactor::new(ring.parts.values().flatten());
        }
        ring.redactor.clone()
    }

    /// Every secret known now, of every part.
    pub fn secrets(&self) -> Vec<Secret> {
        self.read().parts.values().flatten().cloned().collect()
    }

    /// The redactor for every secret known now.
    pub fn redactor(&self) -> Redactor {
        self.read().redactor.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "9f8e7d6c-access-token-value";
    const AMT: &str = "amt+secret/value=1";

    fn redactor() -> Redactor {
        Redactor::new(&[Secret::new(TOKEN), Secret::new(AMT), Secret::new("short")])
    }

    #[test]
    fn a_secret_any_part_of_the_keyring_holds_is_redacted_by_every_holder() {
        let ring = Keyring::with("desk", [&Secret::new(AMT)]);
        let scheduler = ring.clone();
        let from_scheduler = scheduler.set("scheduler", [&Secret::new(TOKEN)]);
        let text = format!("{AMT} {TOKEN}");
        assert_eq!(from_scheduler.redact(&text), "[redacted] [redacted]");
        assert_eq!(ring.redactor().redact(&text), "[redacted] [redacted]");
        // A part's new set replaces its old one; the other parts stay.
        scheduler.set("scheduler", [&Secret::new("rotated-token-value")]);
        assert_eq!(
            ring.redactor()
                .redact(&format!("{AMT} rotated-token-value")),
            "[redacted] [redacted]"
        );
        assert!(!format!("{ring:?}").contains(AMT));
    }

    #[test]
    fn each_form_of_a_secret_is_replaced() {
        let r = redactor();
        let b64 = base64::engine::general_purpose::STANDARD;
        let basic = b64.encode(format!("default:{AMT}"));
        let encoded: String = form_urlencoded::byte_serialize(AMT.as_bytes()).collect();
        let text = format!("Bearer {TOKEN}; Basic {basic}; amt={encoded}; raw {AMT}");
        let out = r.redact(&text);
        assert_eq!(
            out,
            "Bearer [redacted]; Basic [redacted]; amt=[redacted]; raw [redacted]"
        );
    }

    #[test]
    fn secrets_shorter_than_eight_characters_are_not_searched() {
        assert!(matches!(
            redactor().redact("a short description"),
            Cow::Borrowed(_)
        ));
        assert!(Redactor::from_values(["abc", ""]).is_empty());
    }

    #[test]
    fn text_without_a_secret_is_borrowed() {
        assert!(matches!(
            redactor().redact("no secret here"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            Redactor::default().redact(TOKEN),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn every_string_in_a_json_body_is_redacted_keys_included() {
        let mut v = serde_json::json!({
            "distance": 1.0,
            "echo": [format!("token {TOKEN}"), {"nested": TOKEN}],
            TOKEN: true,
        });
        redactor().redact_json(&mut v);
        let text = v.to_string();
        assert!(!text.contains(TOKEN), "{text}");
        assert_eq!(v["echo"][1]["nested"], REDACTED);
        assert_eq!(v["[redacted]"], true);
    }
}
