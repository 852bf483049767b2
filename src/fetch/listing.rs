//! Lists the fleet from the source: API v3 `/v3/connections` with the application token; for v2.0
//! the Management API with an AMT, else each access token's user and vehicles. Failures become one
//! line a person can act on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::smartcar::v3::{ConnectionFilter, V3Client, V3Connection, V3Error};
use crate::smartcar::{
    ApiError, Client, Connection, CursorTrail, ErrorCode, ErrorType, PagingError, Secret,
    TransportKind, VehicleAttributes, capped_wait, deadline_after, quote_untrusted,
};

use super::Source;
use super::backoff::Backoff;
use super::events::{ConnectionInfo, ListingFilter, Priority};
use super::gate::{Gate, SharedPriority, Ticket};

/// The fleet as listed, and the access token of each user who has one.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub connections: Vec<ConnectionInfo>,
    pub tokens: HashMap<String, Secret>,
    /// The user behind `Source::single_token`, when it could be asked.
    pub single_token_user: Option<String>,
    /// What a v3 listing told of each vehicle, by vehicle id (empty for v2.0).
    pub details: HashMap<String, ListedVehicle>,
}

/// What `/v3/connections` says of a vehicle beyond its ids, so no probe has to ask it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVehicle {
    /// Make, model and year, when the connection gave all three.
    pub attributes: Option<VehicleAttributes>,
    /// The Smartcar permissions granted on the connection; one list shared by every vehicle
    /// granted the same ones (a fleet of 100,000 holds a handful of distinct lists).
    pub permissions: Arc<[String]>,
    pub listed_at: jiff::Timestamp,
}

/// How listing requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct ListingRetry {
    pub max_tries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// Which credential a failed request carried, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    ManagementToken,
    AccessToken,
    ClientCredentials,
}

/// One line for a person: what failed and what to do.
fn describe(origin: &str, credential: Credential, e: &ApiError) -> String {
    match e {
        ApiError::Transport { kind, message } => {
            // The innermost cause is the part a person can act on ("Connection refused (os error 111)").
            let cause = message.rsplit(": ").next().unwrap_or(message);
            match kind {
                TransportKind::Refused if cause.to_ascii_lowercase().contains("refused") => {
                    format!("cannot reach {origin}: connection refused")
                }
                TransportKind::Timeout | TransportKind::ConnectTimeout => {
                    format!("cannot reach {origin}: timed out")
                }
                _ => format!("cannot reach {origin}: {cause}"),
            }
        }
        _ if e.status() == Some(401) => match credential {
            Credential::ManagementToken => format!(
                "the management token was rejected (401) by {origin}: check the application management token (AMT) in the Smartcar dashboard"
            ),
            Credential::AccessToken => format!(
                "the access token was rejected (401) by {origin}: it has expired or was revoked; the backend must refresh it"
            ),
            Credential::ClientCredentials => format!(
                "the application token was rejected (401) by {origin} although just issued: check that the application uses API v3 in the Smartcar dashboard"
            ),
        },
        other => match credential {
            Credential::ManagementToken => {
                format!("listing connections from {origin} failed: {other}")
            }
            Credential::AccessToken => format!("listing vehicles from {origin} failed: {other}"),
            Credential::ClientCredentials => {
                format!("listing connections from {origin}/v3/connections failed: {other}")
            }
        },
    }
}

fn is_app_rate_limit(e: &ApiError) -> bool {
    e.smartcar()
        .is_some_and(|s| s.is(&ErrorType::RateLimit, Some(&ErrorCode::SmartcarApi)))
}

struct Lister<'a> {
    client: &'a Client,
    gate: &'a Gate,
    retry: ListingRetry,
    max_connections: usize,
    ticket: Ticket,
}

impl Lister<'_> {
    /// Sends through the gate (the listing spends the same budget), retrying retryable failures.
    async fn call<T, F, Fut>(&self, through_gate: bool, mut f: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut backoff = Backoff::new(self.retry.backoff_base, self.retry.backoff_max);
        let mut tries = 0;
        loop {
            tries += 1;
            let permit = if through_gate {
                match self.gate.acquire(self.ticket.clone()).await {
                    Ok(p) => Some(p),
                    Err(closed) => {
                        return Err(ApiError::Transport {
                            kind: TransportKind::Other,
                            message: closed.to_string(),
                        });
                    }
                }
            } else {
                None
            };
            if permit.is_none() {
                self.gate.count_unbudgeted();
            }
            let result = f().await;
            drop(permit);
            match result {
                Err(e) if e.is_retryable() && tries < self.retry.max_tries => {
                    let wait = e.retry_after_s().map_or_else(
                        || backoff.delay(tries),
                        |s| capped_wait(Duration::from_secs(s)),
                    );
                    if through_gate && is_app_rate_limit(&e) {
                        // The whole application is limited: hold every request, and say until when.
                        self.gate.pause_until(deadline_after(Instant::now(), wait));
                    }
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn management(
        &self,
        amt: &Secret,
        filter: &ListingFilter,
    ) -> Result<Vec<Connection>, String> {
        let origin = &self.client.origins().management;
        let mut all = Vec::new();
        let mut trail = CursorTrail::new(self.max_connections);
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .call(false, || {
                    self.client.connections_page_of(
                        amt,
                        cursor.as_deref(),
                        100,
                        filter.user_id.as_deref(),
                        filter.vehicle_id.as_deref(),
                    )
                })
                .await
                .map_err(|e| describe(origin, Credential::ManagementToken, &e))?;
            let next = trail
                .follow(&page)
                .map_err(|e| format!("listing connections from {origin} failed: {e}"))?;
            all.extend(page.connections);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    async fn user_of(&self, token: &Secret) -> Result<String, String> {
        self.call(true, || self.client.user_id(token))
            .await
            .map_err(|e| describe(&self.client.origins().api, Credential::AccessToken, &e))
    }

    async fn vehicles_of(&self, token: &Secret) -> Result<Vec<String>, String> {
        self.call(true, || self.client.vehicle_ids(token))
            .await
            .map_err(|e| describe(&self.client.origins().api, Credential::AccessToken, &e))
    }
}

/// Why a vehicle id cannot be probed safely, if it cannot: it would be put in URLs, logs and the
/// terminal, where an empty id or a control character (C0, DEL, C1) has no honest meaning.
fn unsafe_id(vehicle_id: &str) -> Option<&'static str> {
    if vehicle_id.is_empty() {
        Some("is empty")
    } else if matches!(vehicle_id, "." | "..") {
        // URL parsers resolve these as path steps: no request could name the vehicle.
        Some("is a path step")
    } else if vehicle_id.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    }
}

/// Keeps the rows whose vehicle id is safe to probe; each other row is named in a warning.
fn screen_ids(connections: Vec<Connection>) -> Vec<Connection> {
    let (kept, warnings) = split_unsafe_ids(connections);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    kept
}

/// The rows safe to probe, and one warning per row that is not.
fn split_unsafe_ids(connections: Vec<Connection>) -> (Vec<Connection>, Vec<String>) {
    let mut warnings = Vec::new();
    let kept = connections
        .into_iter()
        .filter(|c| match unsafe_id(&c.vehicle_id) {
            None => true,
            Some(why) => {
                warnings.push(format!(
                    "connection of user {} skipped: vehicle id {} {why}; it is not probed",
                    quote_untrusted(&c.user_id),
                    quote_untrusted(&c.vehicle_id),
                ));
                false
            }
        })
        .collect();
    (kept, warnings)
}

fn v3_attributes(c: &V3Connection) -> Option<VehicleAttributes> {
    Some(VehicleAttributes {
        id: c.vehicle_id.clone(),
        make: c.make.clone().filter(|m| !m.trim().is_empty())?,
        model: c.model.clone()?,
        // Without a year an exemption by model year could not be decided: the make alone is not enough.
        year: c.year?,
    })
}

/// Lists the fleet through `/v3/connections` (user id, make, model, year, permissions), retrying
/// the whole listing while its failure is retryable. `Err` is the one-line message.
pub async fn list_v3(
    client: &V3Client,
    gate: &Gate,
    filter: &ListingFilter,
    retry: ListingRetry,
    max_connections: usize,
) -> Result<Listing, String> {
    let origin = &client.origins().api;
    let mut backoff = Backoff::new(retry.backoff_base, retry.backoff_max);
    let mut tries = 0;
    let asked = ConnectionFilter {
        user_id: filter.user_id.clone(),
        vehicle_id: filter.vehicle_id.clone(),
    };
    let rows = loop {
        tries += 1;
        // The pages pass outside the budget (the listing must run), but each is counted.
        match client
            .connections_counted(&asked, || gate.count_unbudgeted())
            .await
        {
            Ok(rows) => break rows,
            Err(V3Error::Api { error, .. }) if error.is_retryable() && tries < retry.max_tries => {
                let wait = error.retry_after_s().map_or_else(
                    || backoff.delay(tries),
                    |s| capped_wait(Duration::from_secs(s)),
                );
                tokio::time::sleep(wait).await;
            }
            Err(V3Error::Api { error, .. }) => {
                return Err(describe(origin, Credential::ClientCredentials, &error));
            }
            Err(other) => return Err(other.to_string()),
        }
    };
    if rows.len() > max_connections {
        return Err(PagingError::TooMany {
            max: max_connections,
        }
        .to_string());
    }
    let listed_at = jiff::Timestamp::now();
    let mut listing = Listing::default();
    let mut details: HashMap<String, ListedVehicle> = HashMap::new();
    let mut connections = Vec::with_capacity(rows.len());
    // Each row is dropped once read, so the listing is not held twice while it is built.
    for row in rows {
        let row = &row;
        let entry = details
            .entry(row.vehicle_id.clone())
            .or_insert_with(|| ListedVehicle {
                attributes: None,
                permissions: Arc::from([]),
                listed_at,
            });
        if entry.attributes.is_none() {
            entry.attributes = v3_attributes(row);
        }
        // Owners of one vehicle may have granted different permissions; the first listed is the
        // one probed first, so its grant is the one diagnosis compares against.
        if entry.permissions.is_empty() {
            entry.permissions = row.permissions.clone();
        }
        let Some(user_id) = row.user_id.clone() else {
            tracing::warn!(
                "connection {} lists no user id: vehicle {} cannot be probed (sc-user-id)",
                quote_untrusted(&row.connection_id),
                quote_untrusted(&row.vehicle_id)
            );
            connections.push(Connection {
                user_id: String::new(),
                vehicle_id: row.vehicle_id.clone(),
                connected_at: row.created_at.clone(),
                mode: row.mode.clone(),
            });
            continue;
        };
        connections.push(Connection {
            user_id,
            vehicle_id: row.vehicle_id.clone(),
            connected_at: row.created_at.clone(),
            mode: row.mode.clone(),
        });
    }
    listing.connections = screen_ids(connections)
        .into_iter()
        .map(|c| ConnectionInfo {
            has_token: !c.user_id.is_empty(),
            attributes: details
                .get(&c.vehicle_id)
                .and_then(|d| d.attributes.clone()),
            connection: c,
            other_users: Vec::new(),
        })
        .collect();
    listing.details = details;
    Ok(listing)
}

/// Lists the fleet. `Err` is the one-line message for `Event::SourceError`.
pub async fn list(
    client: &Client,
    gate: &Gate,
    source: &Source,
    filter: &ListingFilter,
    retry: ListingRetry,
    max_connections: usize,
) -> Result<Listing, String> {
    let lister = Lister {
        client,
        gate,
        retry,
        max_connections,
        ticket: Ticket {
            priority: SharedPriority::new(Priority::Focus),
            order: 0,
            vehicle: None,
            sent_any: Some(Arc::new(AtomicBool::new(false))),
        },
    };
    let mut tokens = source.tokens.clone();
    let mut single_token_user = None;
    if let Some(amt) = &source.amt {
        if let Some(single) = &source.single_token {
            match lister.user_of(single).await {
                Ok(user) => {
                    tokens.insert(user.clone(), single.clone());
                    single_token_user = Some(user);
                }
                Err(e) => tracing::warn!(
                    "the --token user could not be identified: {}",
                    crate::untrusted::text::one_line(&e)
                ),
            }
        }
        let connections = lister.management(amt, filter).await?;
        let connections = screen_ids(connections)
            .into_iter()
            .map(|c| ConnectionInfo {
                has_token: tokens.contains_key(&c.user_id),
                connection: c,
                other_users: Vec::new(),
                attributes: None,
            })
            .collect();
        return Ok(Listing {
            connections,
            tokens,
            single_token_user,
            details: HashMap::new(),
        });
    }

    // No AMT: each token lists its own user's vehicles; one user's listing asks only their token.
    let mut credentials: Vec<(Option<String>, Secret)> = source
        .tokens
        .iter()
        .filter(|(user, _)| filter.user_id.as_ref().is_none_or(|u| u == *user))
        .map(|(user, t)| (Some(user.clone()), t.clone()))
        .collect();
    credentials.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(single) = &source.single_token {
        credentials.push((None, single.clone()));
    }
    if credentials.is_empty() && !source.tokens.is_empty() {
        // Tokens are configured, none of them this user's: nothing of theirs can be listed.
        return Ok(Listing::default());
    }
    if credentials.is_empty() {
        return Err(
            "no credentials: give an application management token (AMT), a tokens file or --token"
                .into(),
        );
    }
    let answers = super::probe::join_all(credentials.iter().map(|(_, token)| async {
        let user = lister.user_of(token).await?;
        let vehicles = lister.vehicles_of(token).await?;
        Ok::<_, String>((user, vehicles))
    }))
    .await;
    let mut listing = Listing::default();
    let mut seen = HashSet::new();
    let mut failures = Vec::new();
    for ((file_user, token), answer) in credentials.into_iter().zip(answers) {
        match answer {
            Ok((user, vehicles)) => {
                if file_user.is_none() {
                    listing.single_token_user = Some(user.clone());
                }
                let rows = vehicles
                    .into_iter()
                    .filter(|vehicle_id| filter.admits(vehicle_id, &user))
                    .map(|vehicle_id| Connection {
                        user_id: user.clone(),
                        vehicle_id,
                        connected_at: None,
                        mode: None,
                    });
                // A vehicle two users connected is listed once per user; the scheduler merges them.
                for connection in screen_ids(rows.collect()) {
                    if seen.insert((connection.user_id.clone(), connection.vehicle_id.clone())) {
                        if listing.connections.len() >= max_connections {
                            return Err(PagingError::TooMany {
                                max: max_connections,
                            }
                            .to_string());
                        }
                        listing.connections.push(ConnectionInfo {
                            connection,
                            has_token: true,
                            other_users: Vec::new(),
                            attributes: None,
                        });
                    }
                }
                listing.tokens.insert(user, token);
            }
            Err(e) => failures.push((file_user, e)),
        }
    }
    if listing.tokens.is_empty()
        && let Some((_, first)) = failures.first()
    {
        return Err(if failures.len() == 1 {
            first.clone()
        } else {
            format!(
                "none of the {} access tokens works: {first}",
                failures.len()
            )
        });
    }
    for (user, e) in &failures {
        tracing::warn!(
            user = user.as_deref().unwrap_or("--token"),
            "vehicles not listed: {}",
            crate::untrusted::text::one_line(e)
        );
    }
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartcar::{BodyProblem, ErrorType, SmartcarError};

    fn unauthorized() -> ApiError {
        ApiError::Smartcar(Box::new(SmartcarError {
            description: "invalid".into(),
            ..SmartcarError::new(401, ErrorType::Authentication, None)
        }))
    }

    #[test]
    fn rejected_amt_says_which_token_and_what_to_do() {
        let m = describe(
            "http://127.0.0.1:9",
            Credential::ManagementToken,
            &unauthorized(),
        );
        assert!(
            m.starts_with("the management token was rejected (401)"),
            "{m}"
        );
        assert!(!m.contains('\n'));
    }

    #[test]
    fn unreachable_origin_names_the_origin() {
        let e = ApiError::Transport {
            kind: TransportKind::Refused,
            message: "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)".into(),
        };
        assert_eq!(
            describe("http://127.0.0.1:9", Credential::ManagementToken, &e),
            "cannot reach http://127.0.0.1:9: connection refused"
        );
    }

    #[test]
    fn unknown_host_says_why_not_refused() {
        let e = ApiError::Transport {
            kind: TransportKind::Refused,
            message: "client error (Connect): dns error: failed to lookup address information"
                .into(),
        };
        assert_eq!(
            describe("https://api.example", Credential::AccessToken, &e),
            "cannot reach https://api.example: failed to lookup address information"
        );
    }

    #[test]
    fn html_from_a_proxy_is_described_not_hidden() {
        let e = ApiError::Body {
            status: 502,
            problem: BodyProblem::Html,
            content_type: Some("text/html".into()),
            request_id: None,
            snippet: "<html>".into(),
        };
        let m = describe("http://x", Credential::AccessToken, &e);
        assert_eq!(
            m,
            "listing vehicles from http://x failed: HTTP 502: upstream returned HTML"
        );
    }

    fn row(user_id: &str, vehicle_id: &str) -> Connection {
        Connection {
            user_id: user_id.into(),
            vehicle_id: vehicle_id.into(),
            connected_at: None,
            mode: None,
        }
    }

    #[test]
    fn vehicle_ids_with_control_characters_or_empty_are_skipped_with_the_row_named() {
        let rows = vec![
            row("u1", "good-1"),
            row("u2", "bad\r\nGET /evil"),
            row("u3", ""),
            row("u4", "del\u{7f}"),
            row("u5", "c1\u{85}"),
            row("u6", "caf\u{e9}"),
        ];
        let (kept, warnings) = split_unsafe_ids(rows);
        let kept: Vec<&str> = kept.iter().map(|c| c.vehicle_id.as_str()).collect();
        assert_eq!(kept, ["good-1", "caf\u{e9}"]);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert_eq!(
            warnings.first().map(String::as_str),
            Some(
                "connection of user \"u2\" skipped: vehicle id \"bad\\r\\nGET /evil\" contains control characters; it is not probed"
            )
        );
        assert!(warnings.iter().all(|w| !w.chars().any(char::is_control)));
        assert!(
            warnings
                .get(1)
                .is_some_and(|w| w.contains("\"u3\"") && w.contains("is empty"))
        );
    }
}
