//! The fix for each kind of finding: the exact link to send and a reply the agent can paste to the customer.

use crate::smartcar::SmartcarError;
use crate::smartcar::connect::{self, ConnectOptions};
use crate::untrusted::{LinkPolicy, text};

use super::types::{Needs, Remedy, RemedyKind};

/// Who the remedy is for: the vehicle and how this app sends owners to Connect.
#[derive(Debug, Clone, Copy)]
pub struct RemedyTarget<'a> {
    pub needs: &'a Needs,
    pub vehicle_id: &'a str,
    pub is_tesla: bool,
}

impl RemedyTarget<'_> {
    /// Links this app may offer: the fixed hosts and the configured Connect origin.
    pub fn links(&self) -> LinkPolicy {
        LinkPolicy::new(&self.needs.connect_origin)
    }
}

/// A link the server sent, vetted: offered when the policy allows it, else kept only as text for the
/// agent (`note`), never as the fix.
struct ServerLink {
    offered: Option<String>,
    note: Option<String>,
}

impl ServerLink {
    fn vet(policy: &LinkPolicy, link: Option<&str>) -> ServerLink {
        let Some(link) = link.map(str::trim).filter(|l| !l.is_empty()) else {
            return ServerLink {
                offered: None,
                note: None,
            };
        };
        match policy.vet(link) {
            Ok(link) => ServerLink {
                offered: Some(link.to_string()),
                note: None,
            },
            Err(why) => ServerLink {
                offered: None,
                note: Some(format!(
                    " (Smartcar's answer named a link that is not offered because {why}: {})",
                    text::one_line(link)
                )),
            },
        }
    }

    /// The action with the note on a refused link, if any.
    fn annotate(&self, action: String) -> String {
        match &self.note {
            Some(note) => action + note,
            None => action,
        }
    }
}

/// Documentation links need no Connect origin: only Smartcar's docs (and Tesla's pairing page) are offered.
fn doc_link(err: Option<&SmartcarError>) -> ServerLink {
    ServerLink::vet(
        &LinkPolicy::default(),
        err.and_then(|e| e.doc_url.as_deref()),
    )
}

fn reply(err: Option<&SmartcarError>, ours: &str) -> String {
    err.and_then(|e| e.suggested_user_message.as_deref())
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(ours)
        .to_string()
}

/// Smartcar's message often says "open this link" without the link: append it when it is missing.
fn reply_with_link(err: Option<&SmartcarError>, ours: &str, link: &str) -> String {
    let text = reply(err, ours);
    if text.contains(link) {
        text
    } else {
        format!("{text} {link}")
    }
}

/// Smartcar's `resolution.url`, vetted by the link policy.
fn resolution_url(target: RemedyTarget<'_>, err: Option<&SmartcarError>) -> ServerLink {
    ServerLink::vet(
        &target.links(),
        err.and_then(|e| e.resolution.as_ref())
            .and_then(|r| r.url.as_deref()),
    )
}

/// The owner pairs the third-party virtual key: Smartcar's `resolution.url`, else the configured domain's link.
pub fn add_virtual_key(target: RemedyTarget<'_>, err: Option<&SmartcarError>) -> Remedy {
    let given = resolution_url(target, err);
    let link = given
        .offered
        .clone()
        .unwrap_or_else(|| connect::virtual_key_link(&target.needs.virtual_key_domain));
    Remedy {
        kind: RemedyKind::AddVirtualKey,
        action: given.annotate(
            "Ask the owner to open the virtual-key link on the phone with the Tesla app (no re-authentication)"
                .into(),
        ),
        customer_reply: reply_with_link(
            err,
            &format!(
                "Tesla now requires a third-party virtual key before your car shares data with us. Please open {link} \
                 on the phone where your Tesla app is set up as a key, and approve the key for this car."
            ),
            &link,
        ),
        link: Some(link),
        retry_after_s: None,
    }
}

/// The owner goes through Connect again. Smartcar's own `resolution.url` when it gave one; otherwise a
/// reauthenticate URL asking for exactly `missing` (each with `required:`), for Teslas with `make=TESLA`.
pub fn reauthenticate(
    target: RemedyTarget<'_>,
    err: Option<&SmartcarError>,
    missing: &[&str],
) -> Remedy {
    let needs = target.needs;
    let server = resolution_url(target, err);
    let given = server.offered.clone();
    let no_client_id = needs
        .client_id
        .as_deref()
        .is_none_or(|c| c.trim().is_empty());
    if given.is_none() && no_client_id {
        let mut remedy = reauthenticate_without_link(missing);
        remedy.action = server.annotate(remedy.action);
        return remedy;
    }
    let link = given.clone().unwrap_or_else(|| {
        ConnectOptions {
            client_id: needs.client_id.clone(),
            redirect_uri: needs.redirect_uri.clone(),
            scope: missing.iter().map(|p| format!("required:{p}")).collect(),
            make: target.is_tesla.then(|| "TESLA".to_string()),
            ..ConnectOptions::default()
        }
        .reauthenticate_url(&needs.connect_origin, target.vehicle_id)
    });
    let action = if missing.is_empty() {
        "Send the owner the re-authentication link to reconnect the car".to_string()
    } else {
        format!(
            "Send the owner the re-authentication link asking for {}",
            missing.join(", ")
        )
    };
    let mut action = server.annotate(action);
    if given.is_none() && needs.redirect_uri.is_none() {
        // Connect then sends the owner to the Dashboard's default redirect URI, which may be none.
        action.push_str(" · no redirect_uri: Dashboard default; set one under [connect]");
    }
    let ours = if missing.is_empty() {
        format!(
            "The connection to your car needs to be renewed. Please open {link} and sign in again."
        )
    } else {
        format!(
            "We need one more permission to keep your car's data flowing. Please open {link}, sign in and allow \
             {}.",
            missing
                .iter()
                .map(|p| permission_words(p))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Remedy {
        kind: RemedyKind::Reauthenticate,
        action,
        customer_reply: reply_with_link(err, &ours, &link),
        link: Some(link),
        retry_after_s: None,
    }
}

/// Without a Connect client id there is no link to send: the fix says what to configure, and the
/// reply promises a link instead of carrying a broken one.
fn reauthenticate_without_link(missing: &[&str]) -> Remedy {
    let what = if missing.is_empty() {
        "to reconnect the car".to_string()
    } else {
        format!("asking for {}", missing.join(", "))
    };
    Remedy {
        kind: RemedyKind::Reauthenticate,
        action: format!(
            "The owner needs a re-authentication link {what}; configure the app's Connect client id \
             (--client-id, SMARTCAR_CLIENT_ID or client_id under [connect] in config.toml) to get it"
        ),
        customer_reply:
            "Your car's connection needs to be renewed. We will send you a link to sign in \
                         again shortly."
                .into(),
        link: None,
        retry_after_s: None,
    }
}

/// `read_location` → "access to the car's location".
fn permission_words(permission: &str) -> String {
    match permission.strip_prefix("read_") {
        Some("location") => "access to the car's location (Vehicle Location)".into(),
        Some(what) => format!("access to the car's {}", what.replace('_', " ")),
        None => permission.replace('_', " "),
    }
}

/// Nothing is broken for good: ask again after `retry_after_s` (when known).
pub fn retry_later(err: Option<&SmartcarError>, retry_after_s: Option<u64>, why: &str) -> Remedy {
    let action = match retry_after_s {
        Some(s) => format!("Retry after {s} s ({}): {why}", human_seconds(s)),
        None => format!("Retry later: {why}"),
    };
    let docs = doc_link(err);
    Remedy {
        kind: RemedyKind::RetryLater,
        action: docs.annotate(action),
        link: docs.offered,
        customer_reply: reply(
            err,
            "We could not reach your car's data just now. Nothing needs to be done on your side; we will try again \
             shortly.",
        ),
        retry_after_s,
    }
}

/// The owner must act at the carmaker (subscription, account, wake or service the car).
pub fn owner_action_at_oem(err: Option<&SmartcarError>, action: &str, ours: &str) -> Remedy {
    let docs = doc_link(err);
    Remedy {
        kind: RemedyKind::OwnerActionAtOem,
        action: docs.annotate(action.to_string()),
        link: docs.offered,
        customer_reply: reply(err, ours),
        retry_after_s: None,
    }
}

/// Smartcar support or the plan owner must act; the request ids go with the escalation.
pub fn contact_smartcar(err: Option<&SmartcarError>, why: &str, request_ids: &[&str]) -> Remedy {
    let ids = if request_ids.is_empty() {
        "no request id".to_string()
    } else {
        request_ids.join(", ")
    };
    let docs = doc_link(err);
    Remedy {
        kind: RemedyKind::ContactSmartcar,
        action: docs.annotate(format!(
            "Contact Smartcar support or your plan owner ({why}); request ids: {ids}"
        )),
        link: docs.offered,
        // The customer did nothing wrong here: never pass on a message asking them to act.
        customer_reply:
            "This is a problem on our side, not with your car or account. We are working on it and \
                         will let you know when data flows again."
                .into(),
        retry_after_s: None,
    }
}

/// The app's backend must refresh the user's access token; this tool never refreshes tokens.
pub fn refresh_access_token(err: Option<&SmartcarError>) -> Remedy {
    let docs = doc_link(err);
    Remedy {
        kind: RemedyKind::BackendAction,
        action: docs.annotate(
            "The app's backend must refresh this user's access token (vtriage never refreshes tokens)"
                .into(),
        ),
        link: docs.offered,
        customer_reply: "We had a temporary sign-in problem with your car's connection on our side. Nothing is \
                         needed from you; it will be fixed shortly."
            .into(),
        retry_after_s: None,
    }
}

/// API v3: Smartcar kept refusing the application's token, or a 401 could not be settled. There is
/// no per-user token to refresh: either the app's credential is refused, or (when other vehicles
/// answer) this owner's connection no longer authorizes the app.
pub fn check_app_credential(err: Option<&SmartcarError>) -> Remedy {
    let docs = doc_link(err);
    Remedy {
        kind: RemedyKind::BackendAction,
        action: docs.annotate(
            "Check the app's client id and secret (Smartcar Dashboard, API Credentials); if other vehicles \
             answer, this owner's connection no longer authorizes the app: ask them to reconnect the car"
                .into(),
        ),
        link: docs.offered,
        customer_reply: "We had a sign-in problem with your car's connection on our side and are fixing it. If \
                         it persists we will ask you to reconnect your car in the app."
            .into(),
        retry_after_s: None,
    }
}

/// API v3: a listed vehicle whose signals answer 404: subscribe it to one of the app's webhooks.
pub fn subscribe_vehicle(vehicle_id: &str) -> Remedy {
    // The error's own docs page is about a mistyped path, which this is not: no link is better.
    Remedy {
        kind: RemedyKind::BackendAction,
        action: format!(
            "Subscribe vehicle {vehicle_id} to one of the app's webhooks (v3 Management API: POST \
             /webhooks/{{webhookId}}/subscriptions, or the Smartcar Dashboard), then check it again"
        ),
        link: None,
        customer_reply: "Your car is connected, but our app is not receiving its data yet. We are fixing this on \
                         our side; nothing is needed from you."
            .into(),
        retry_after_s: None,
    }
}

/// No access token configured for the user: nothing could be asked.
pub fn provide_access_token() -> Remedy {
    Remedy {
        kind: RemedyKind::BackendAction,
        action:
            "Add this user's access token to the tokens file (user_id,access_token) or pass --token"
                .into(),
        link: None,
        customer_reply: "We are checking your car's connection and will get back to you shortly."
            .into(),
        retry_after_s: None,
    }
}

/// Informational: nothing to do. `link` (a rule's or Smartcar's documentation) is offered only when the
/// link policy allows it.
pub fn nothing(action: &str, customer_reply: &str, link: Option<String>) -> Remedy {
    let docs = ServerLink::vet(&LinkPolicy::default(), link.as_deref());
    Remedy {
        kind: RemedyKind::None,
        action: docs.annotate(action.to_string()),
        link: docs.offered,
        customer_reply: customer_reply.to_string(),
        retry_after_s: None,
    }
}

/// `1800` → `30 min`, `7260` → `2 h 1 min`, `45` → `45 s`.
pub fn human_seconds(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s.div_ceil(60)),
        _ => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if m == 0 {
                format!("{h} h")
            } else {
                format!("{h} h {m} min")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartcar::{ErrorType, Resolution};

    fn err(url: Option<&str>, msg: Option<&str>) -> SmartcarError {
        SmartcarError {
            status: 400,
            error_type: ErrorType::ConnectedServicesAccount,
            code: None,
            description: String::new(),
            doc_url: None,
            request_id: Some("req-1".into()),
            resolution: Some(Resolution {
                kind: Some("REAUTHENTICATE".into()),
                url: url.map(str::to_string),
            }),
            suggested_user_message: msg.map(str::to_string),
            detail: None,
            retry_after_s: None,
        }
    }

    #[test]
    fn virtual_key_link_falls_back_to_configured_domain() {
        let needs = Needs {
            virtual_key_domain: "fleet.example.com".into(),
            ..Needs::default()
        };
        let t = RemedyTarget {
            needs: &needs,
            vehicle_id: "v1",
            is_tesla: true,
        };
        let r = add_virtual_key(t, None);
        assert_eq!(
            r.link.as_deref(),
            Some("https://www.tesla.com/_ak/fleet.example.com")
        );
        let e = err(
            Some("https://www.tesla.com/_ak/smartcar.com"),
            Some("Open this link."),
        );
        let r = add_virtual_key(t, Some(&e));
        assert_eq!(
            r.link.as_deref(),
            Some("https://www.tesla.com/_ak/smartcar.com")
        );
        assert_eq!(
            r.customer_reply,
            "Open this link. https://www.tesla.com/_ak/smartcar.com"
        );
    }

    #[test]
    fn reauthenticate_without_client_id_offers_no_broken_link_and_says_what_to_configure() {
        let needs = Needs::default();
        let t = RemedyTarget {
            needs: &needs,
            vehicle_id: "v1",
            is_tesla: true,
        };
        let r = reauthenticate(t, None, &["read_location"]);
        assert_eq!(r.link, None);
        assert!(
            r.action.contains("--client-id") && r.action.contains("read_location"),
            "{}",
            r.action
        );
        for text in [&r.action, &r.customer_reply] {
            assert!(
                !text.contains('<') && !text.contains("client_id="),
                "{text}"
            );
        }
    }

    #[test]
    fn reauthenticate_prefers_smartcar_resolution_url() {
        let needs = Needs {
            client_id: Some("cid".into()),
            redirect_uri: Some("https://a.b/cb".into()),
            ..Needs::default()
        };
        let t = RemedyTarget {
            needs: &needs,
            vehicle_id: "v1",
            is_tesla: false,
        };
        let e = err(
            Some(
                "https://connect.smartcar.com/oauth/reauthenticate?response_type=vehicle_id&client_id=x&vehicle_id=v1",
            ),
            None,
        );
        assert_eq!(
            reauthenticate(t, Some(&e), &[]).link,
            resolution_url(t, Some(&e)).offered
        );
        let r = reauthenticate(t, None, &["read_odometer"]);
        assert_eq!(
            r.link.as_deref(),
            Some(
                "https://connect.smartcar.com/oauth/reauthenticate?response_type=vehicle_id&client_id=cid&vehicle_id=v1&redirect_uri=https%3A%2F%2Fa.b%2Fcb&scope=required%3Aread_odometer"
            )
        );
        assert!(!r.action.contains("placeholder"));
    }

    #[test]
    fn a_hostile_resolution_url_is_never_the_fix_and_stays_as_text() {
        let needs = Needs {
            client_id: Some("cid".into()),
            ..Needs::default()
        };
        let t = RemedyTarget {
            needs: &needs,
            vehicle_id: "v1",
            is_tesla: true,
        };
        for hostile in [
            "javascript:alert(1)",
            "https://smartcar.com@evil.example/_ak/x",
            "https://evil.example/_ak/smartcar.com",
            "--version",
            "file:///etc/passwd",
        ] {
            let e = err(Some(hostile), None);
            let r = add_virtual_key(t, Some(&e));
            assert_eq!(
                r.link.as_deref(),
                Some("https://www.tesla.com/_ak/smartcar.com"),
                "{hostile}"
            );
            assert!(!r.customer_reply.contains(hostile), "{}", r.customer_reply);
            assert!(r.action.contains(hostile), "{}", r.action);
            let r = reauthenticate(t, Some(&e), &[]);
            assert!(
                r.link.as_deref().is_some_and(
                    |l| l.starts_with("https://connect.smartcar.com/oauth/reauthenticate?")
                ),
                "{:?}",
                r.link
            );
        }
    }

    #[test]
    fn the_configured_connect_origin_is_offered_from_the_server() {
        let needs = Needs {
            connect_origin: "http://127.0.0.1:4010".into(),
            ..Needs::default()
        };
        let t = RemedyTarget {
            needs: &needs,
            vehicle_id: "v1",
            is_tesla: false,
        };
        let given = "http://127.0.0.1:4010/oauth/reauthenticate?vehicle_id=v1";
        let e = err(Some(given), None);
        assert_eq!(
            reauthenticate(t, Some(&e), &[]).link.as_deref(),
            Some(given)
        );
    }

    #[test]
    fn doc_links_off_smartcar_docs_are_not_offered() {
        let mut e = err(None, None);
        e.doc_url = Some("https://evil.example/docs".into());
        for r in [
            retry_later(Some(&e), None, "x"),
            owner_action_at_oem(Some(&e), "act", "reply"),
            contact_smartcar(Some(&e), "why", &[]),
            refresh_access_token(Some(&e)),
            nothing("nothing", "reply", e.doc_url.clone()),
        ] {
            assert_eq!(r.link, None, "{r:?}");
        }
        e.doc_url = Some("https://smartcar.com/docs/errors/api-errors/server-errors".into());
        assert_eq!(retry_later(Some(&e), None, "x").link, e.doc_url);
    }

    #[test]
    fn seconds_read_as_minutes_and_hours() {
        assert_eq!(human_seconds(1800), "30 min");
        assert_eq!(human_seconds(45), "45 s");
        assert_eq!(human_seconds(7260), "2 h 1 min");
    }
}
