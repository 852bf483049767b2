//! `GET /v3/connections`: every (user, vehicle) connection of the application, paged defensively so a
//! server that ignores or repeats pages, or points elsewhere, cannot loop us forever or leak the token.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::signals::{text, unwrap_data, year};
use super::{V3Client, V3Error};

/// Connections asked for per page (the documented maximum).
pub const PAGE_SIZE: usize = 100;
/// Beyond this many connections the listing stops with an error rather than growing without end.
pub const MAX_CONNECTIONS: usize = 1_000_000;

/// One connection: a user's grant of one vehicle to the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V3Connection {
    pub connection_id: String,
    pub vehicle_id: String,
    /// What goes in `sc-user-id` for this vehicle's signals.
    pub user_id: Option<String>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub year: Option<u16>,
    pub mode: Option<String>,
    pub powertrain_type: Option<String>,
    /// The Smartcar permissions the user granted (`read_location`, …). A listing shares one
    /// list between the connections granted the same ones.
    pub permissions: Arc<[String]>,
    pub created_at: Option<String>,
}

/// Optional filters of the listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFilter {
    pub user_id: Option<String>,
    pub vehicle_id: Option<String>,
}

/// Reads one connection. The vehicle sits in `relationships.vehicle.data.id` (documented) or
/// `attributes.vehicle.id`; the user in `relationships.user.data.id` or `attributes.user.id`; make,
/// model and year in `attributes.vehicle` or directly in `attributes`. `None` without a vehicle id.
pub fn parse_connection(item: &Value) -> Option<V3Connection> {
    let attributes = item.get("attributes").filter(|a| a.is_object());
    let relationship = |name: &str| {
        item.get("relationships")
            .and_then(|r| r.get(name))
            .and_then(|r| r.get("data"))
            .and_then(|d| text(d.get("id")))
    };
    let nested = |name: &str| {
        attributes
            .and_then(|a| a.get(name))
            .and_then(|n| text(n.get("id")))
    };
    let vehicle = attributes
        .and_then(|a| a.get("vehicle"))
        .filter(|v| v.is_object());
    let field = |key: &str| {
        vehicle
            .and_then(|v| v.get(key))
            .or_else(|| attributes.and_then(|a| a.get(key)))
    };
    let vehicle_id = relationship("vehicle")
        .or_else(|| nested("vehicle"))
        .or_else(|| text(item.get("vehicleId")))
        .filter(|id| !id.is_empty())?;
    let permissions = attributes
        .and_then(|a| a.get("permissions"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| text(Some(p)))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into();
    let created_at = text(item.get("meta").and_then(|m| m.get("createdAt")))
        .or_else(|| text(attributes.and_then(|a| a.get("createdAt"))));
    Some(V3Connection {
        connection_id: text(item.get("id")).unwrap_or_default(),
        user_id: relationship("user")
            .or_else(|| nested("user"))
            .or_else(|| text(item.get("userId")))
            .filter(|id| !id.is_empty()),
        vehicle_id,
        make: text(field("make")),
        model: text(field("model")),
        year: year(field("year")),
        mode: text(field("mode")),
        powertrain_type: text(field("powertrainType")),
        permissions,
        created_at,
    })
}

/// One page: its raw entry count (an empty page ends the listing even if no entry could be read),
/// the connections read from it, and where the server says the next page is.
struct Page {
    entries: usize,
    connections: Vec<V3Connection>,
    total: Option<usize>,
    next: NextLink,
}

enum NextLink {
    /// `links.next` names a page.
    At(String),
    /// `links` is there and `next` is null: the last page.
    End,
    /// No links at all: count pages ourselves.
    Unknown,
}

fn read_page(body: &Value) -> Option<Page> {
    let list = unwrap_data(body).as_array()?;
    let total = body
        .get("meta")
        .and_then(|m| m.get("totalCount"))
        .and_then(|t| match t {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .map(|t| usize::try_from(t).unwrap_or(usize::MAX));
    let next = match body.get("links").filter(|l| l.is_object()) {
        None => NextLink::Unknown,
        Some(links) => match links.get("next") {
            Some(Value::String(s)) if !s.trim().is_empty() => NextLink::At(s.trim().to_string()),
            Some(Value::Null) | None => NextLink::End,
            Some(_) => NextLink::Unknown,
        },
    };
    Some(Page {
        entries: list.len(),
        connections: list.iter().filter_map(parse_connection).collect(),
        total,
        next,
    })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl V3Client {
    fn connections_url(&self, filter: &ConnectionFilter, page_number: usize) -> Url {
        let mut url = self.api_url(&["v3", "connections"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("page[number]", &page_number.to_string());
            q.append_pair("page[size]", &PAGE_SIZE.to_string());
            if let Some(u) = &filter.user_id {
                q.append_pair("filter[userId]", u);
            }
            if let Some(v) = &filter.vehicle_id {
                q.append_pair("filter[vehicleId]", v);
            }
        }
        url
    }

    /// One row of the listing: the cheapest request that proves the application token good.
    pub(super) fn token_check_url(&self) -> Url {
        let mut url = self.api_url(&["v3", "connections"]);
        url.query_pairs_mut()
            .append_pair("page[number]", "1")
            .append_pair("page[size]", "1");
        url
    }

    /// Every connection matching `filter`. Follows `links.next` when the server gives one (relative or
    /// absolute, same origin only), else counts pages; stops at `meta.totalCount`, an empty page, a page
    /// of nothing new, or `links.next` null. Each connection is listed once.
    pub async fn connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<Vec<V3Connection>, V3Error> {
        self.connections_counted(filter, || {}).await
    }

    /// [`V3Client::connections`], calling `sent` for every page requested.
    pub async fn connections_counted(
        &self,
        filter: &ConnectionFilter,
        mut sent: impl FnMut(),
    ) -> Result<Vec<V3Connection>, V3Error> {
        let mut all: Vec<V3Connection> = Vec::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut visited: HashSet<String> = HashSet::new();
        let mut grants: HashSet<Arc<[String]>> = HashSet::new();
        let mut page_number = 1usize;
        let mut url = self.connections_url(filter, page_number);
        loop {
            visited.insert(url.as_str().to_string());
            sent();
            let (meta, body) = self
                .get_json(url.clone(), None, None, self.settings.fast_timeout)
                .await?;
            let page = read_page(&body).ok_or_else(|| V3Error::shape(meta, &body))?;
            if page.entries == 0 {
                return Ok(all);
            }
            let before = all.len();
            for mut c in page.connections {
                // A fleet of 100,000 holds a handful of distinct grants: one copy of each.
                match grants.get(&c.permissions) {
                    Some(shared) => c.permissions = shared.clone(),
                    None => {
                        grants.insert(c.permissions.clone());
                    }
                }
                let key = (c.connection_id.clone(), c.vehicle_id.clone());
                if seen.insert(key) {
                    all.push(c);
                }
            }
            if all.len() > MAX_CONNECTIONS {
                return Err(V3Error::TooManyConnections {
                    cap: MAX_CONNECTIONS,
                });
            }
            // A server that ignores page[number] sends the same page again: nothing new means stop.
            if all.len() == before || page.total.is_some_and(|t| all.len() >= t) {
                return Ok(all);
            }
            let next = match page.next {
                NextLink::End => return Ok(all),
                NextLink::At(link) => {
                    let next = url.join(&link).map_err(|_| V3Error::ForeignLink {
                        link: link.clone(),
                        origin: self.origins.api.clone(),
                    })?;
                    if !same_origin(&next, &self.api_base) {
                        return Err(V3Error::ForeignLink {
                            link,
                            origin: self.origins.api.clone(),
                        });
                    }
                    next
                }
                NextLink::Unknown => {
                    page_number += 1;
                    self.connections_url(filter, page_number)
                }
            };
            if visited.contains(next.as_str()) {
                return Ok(all);
            }
            url = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_connection_parses() {
        let item = json!({"id":"32c4139a","type":"connection",
            "attributes":{"permissions":["read_vehicle_info","read_odometer"],
              "vehicle":{"make":"Tesla","model":"Model S","year":2020,"mode":"live","powertrainType":"BEV"}},
            "relationships":{"vehicle":{"data":{"id":"a6a425d6","type":"vehicle"}},
                             "user":{"data":{"id":"1e258add","type":"user"}}},
            "meta":{"createdAt":"2024-01-01T00:00:00Z"}});
        let c = parse_connection(&item).unwrap();
        assert_eq!(c.connection_id, "32c4139a");
        assert_eq!(c.vehicle_id, "a6a425d6");
        assert_eq!(c.user_id.as_deref(), Some("1e258add"));
        assert_eq!(c.year, Some(2020));
        assert_eq!(c.powertrain_type.as_deref(), Some("BEV"));
        assert_eq!(*c.permissions, ["read_vehicle_info", "read_odometer"]);
        assert_eq!(c.created_at.as_deref(), Some("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn user_id_under_attributes_and_flat_vehicle_fields_with_a_string_year_parse() {
        let item = json!({"id":"c1","attributes":{"user":{"id":"u9","externalId":"x"},
            "make":"FORD","model":"F-150","year":"2022","permissions":["read_location"]},
            "relationships":{"vehicle":{"data":{"id":"v1"}}}});
        let c = parse_connection(&item).unwrap();
        assert_eq!(c.user_id.as_deref(), Some("u9"));
        assert_eq!(c.make.as_deref(), Some("FORD"));
        assert_eq!(c.year, Some(2022));
        assert!(parse_connection(&json!({"id":"c2","attributes":{}})).is_none());
    }
}
