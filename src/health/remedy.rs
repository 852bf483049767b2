//! The fix for each kind of finding: the exact link to send and a reply the agent can paste to the customer.

use crate::smartcar::SmartcarError;
use crate::smartcar::connect::{self, ConnectOptions};

use super::types::{Needs, Remedy, RemedyKind};

/// Who the remedy is for: the vehicle and how this app sends owners to Connect.
#[derive(Debug, Clone, Copy)]
pub struct RemedyTarget<'a> {
    pub needs: &'a Needs,
    pub vehicle_id: &'a str,
    pub is_tesla: bool,
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

fn resolution_url(err: Option<&SmartcarError>) -> Option<String> {
    err.and_then(|e| e.resolution.as_ref())
        .and_then(|r| r.url.as_deref())
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}

/// The owner pairs the third-party virtual key: Smartcar's `resolution.url`, else the configured domain's link.
pub fn add_virtual_key(target: RemedyTarget<'_>, err: Option<&SmartcarError>) -> Remedy {
    let link = resolution_url(err)
        .unwrap_or_else(|| connect::virtual_key_link(&target.needs.virtual_key_domain));
    Remedy {
        kind: RemedyKind::AddVirtualKey,
        action: "Ask the owner to open the virtual-key link on the phone with the Tesla app (no re-authentication)"
            .into(),
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
    let given = resolution_url(err);
    let no_client_id = needs
        .client_id
        .as_deref()
        .is_none_or(|c| c.trim().is_empty());
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
    let mut action = if missing.is_empty() {
        "Send the owner the re-authentication link to reconnect the car".to_string()
    } else {
        format!(
            "Send the owner the re-authentication link asking for {}",
            missing.join(", ")
        )
    };
    if given.is_none() && no_client_id {
        action.push_str(" (no client id configured: replace <your-client-id> in the link)");
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
    Remedy {
        kind: RemedyKind::RetryLater,
        action,
        link: err.and_then(|e| e.doc_url.clone()),
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
    Remedy {
        kind: RemedyKind::OwnerActionAtOem,
        action: action.to_string(),
        link: err.and_then(|e| e.doc_url.clone()),
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
    Remedy {
        kind: RemedyKind::ContactSmartcar,
        action: format!("Contact Smartcar support or your plan owner ({why}); request ids: {ids}"),
        link: err.and_then(|e| e.doc_url.clone()),
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
    Remedy {
        kind: RemedyKind::BackendAction,
        action: "The app's backend must refresh this user's access token (vtriage never refreshes tokens)".into(),
        link: err.and_then(|e| e.doc_url.clone()),
        customer_reply: "We had a temporary sign-in problem with your car's connection on our side. Nothing is \
                         needed from you; it will be fixed shortly."
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

/// Informational: nothing to do.
pub fn nothing(action: &str, customer_reply: &str, link: Option<String>) -> Remedy {
    Remedy {
        kind: RemedyKind::None,
        action: action.to_string(),
        link,
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
    fn reauthenticate_without_client_id_says_to_replace_the_placeholder() {
        let needs = Needs::default();
        let t = RemedyTarget {
            needs: &needs,
            vehicle_id: "v1",
            is_tesla: true,
        };
        let r = reauthenticate(t, None, &["read_location"]);
        assert_eq!(
            r.link.as_deref(),
            Some(
                "https://connect.smartcar.com/oauth/reauthenticate?response_type=vehicle_id&client_id=<your-client-id>&vehicle_id=v1&scope=required%3Aread_location&make=TESLA"
            )
        );
        assert!(r.action.contains("<your-client-id>"), "{}", r.action);
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
            resolution_url(Some(&e))
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
    fn seconds_read_as_minutes_and_hours() {
        assert_eq!(human_seconds(1800), "30 min");
        assert_eq!(human_seconds(45), "45 s");
        assert_eq!(human_seconds(7260), "2 h 1 min");
    }
}
