//! The simulated fleet: users, their vehicles and each vehicle's fixed situation, generated from a seed.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::catalog::{self, CITIES, MODELS, ModelSpec, Powertrain};
use super::vin;

/// What is wrong (or not) with a simulated vehicle. Fixed per vehicle by the seed; see the
/// situations table shared with the diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Situation {
    Healthy,
    VirtualKeyMissing,
    VirtualKeyExempt,
    LocationPermissionMissing,
    ScopeMissing,
    TokenExpired,
    OemAuthenticationFailed,
    SubscriptionLapsed,
    VehicleAsleep,
    VehicleUnreachable,
    StaleData,
    RateLimited,
    QuotaExhausted,
    /// API v3 only: the connection is listed but its signals answer 404, as integrators see for a
    /// vehicle not subscribed to a webhook. v2.0 answers as for a healthy car.
    SignalsNotSubscribed,
}

impl Situation {
    pub const ALL: [Situation; 14] = [
        Situation::Healthy,
        Situation::VirtualKeyMissing,
        Situation::VirtualKeyExempt,
        Situation::LocationPermissionMissing,
        Situation::ScopeMissing,
        Situation::TokenExpired,
        Situation::OemAuthenticationFailed,
        Situation::SubscriptionLapsed,
        Situation::VehicleAsleep,
        Situation::VehicleUnreachable,
        Situation::StaleData,
        Situation::RateLimited,
        Situation::QuotaExhausted,
        Situation::SignalsNotSubscribed,
    ];

    /// The kebab-case name used in JSON, flags and the situations table.
    pub fn name(self) -> &'static str {
        match self {
            Situation::Healthy => "healthy",
            Situation::VirtualKeyMissing => "virtual-key-missing",
            Situation::VirtualKeyExempt => "virtual-key-exempt",
            Situation::LocationPermissionMissing => "location-permission-missing",
            Situation::ScopeMissing => "scope-missing",
            Situation::TokenExpired => "token-expired",
            Situation::OemAuthenticationFailed => "oem-authentication-failed",
            Situation::SubscriptionLapsed => "subscription-lapsed",
            Situation::VehicleAsleep => "vehicle-asleep",
            Situation::VehicleUnreachable => "vehicle-unreachable",
            Situation::StaleData => "stale-data",
            Situation::RateLimited => "rate-limited",
            Situation::QuotaExhausted => "quota-exhausted",
            Situation::SignalsNotSubscribed => "signals-not-subscribed",
        }
    }

    pub fn from_name(name: &str) -> Option<Situation> {
        Situation::ALL.into_iter().find(|s| s.name() == name)
    }

    /// What the simulated API answers in this situation, in one line.
    pub fn summary(self) -> &'static str {
        match self {
            Situation::Healthy => "everything 200, data minutes old",
            Situation::VirtualKeyMissing => {
                "Tesla without virtual key: data 400 VIRTUAL_KEY_REQUIRED, isPaired false"
            }
            Situation::VirtualKeyExempt => {
                "Model S/X 2020 or older: data 200 without a key, isPaired false"
            }
            Situation::LocationPermissionMissing => {
                "Tesla: /location 403 PERMISSION, no vehicle_location in user access"
            }
            Situation::ScopeMissing => "read_odometer not granted: /odometer 403 PERMISSION",
            Situation::TokenExpired => {
                "the user's access token expired: every call 401 AUTHENTICATION"
            }
            Situation::OemAuthenticationFailed => {
                "OEM login broken: 400 AUTHENTICATION_FAILED with a re-auth link"
            }
            Situation::SubscriptionLapsed => {
                "OEM connected-services subscription lapsed: 400 SUBSCRIPTION"
            }
            Situation::VehicleAsleep => "data 409 VEHICLE_STATE:ASLEEP",
            Situation::VehicleUnreachable => "data 409 VEHICLE_STATE:UNREACHABLE",
            Situation::StaleData => "everything 200 but data 2 to 10 days old",
            Situation::RateLimited => "data 429 RATE_LIMIT:VEHICLE, Retry-After 1800",
            Situation::QuotaExhausted => "data 430 BILLING:VEHICLE_REQUEST_LIMIT",
            Situation::SignalsNotSubscribed => {
                "v3: listed, but /signals 404 (not subscribed to a webhook); v2.0 as healthy"
            }
        }
    }
}

impl std::fmt::Display for Situation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A customer of the app: one access token, one to three vehicles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimUser {
    pub id: String,
    pub access_token: String,
    /// Every call with this user's token answers 401 (their vehicles carry `token-expired`).
    pub token_expired: bool,
    /// Indexes into [`Fleet::vehicles`].
    pub vehicles: Vec<usize>,
}

/// One simulated vehicle and everything the API reports about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimVehicle {
    pub id: String,
    pub user_id: String,
    /// Upper case, as Smartcar spells it (`TESLA`).
    pub make: String,
    pub model: String,
    pub year: u16,
    pub vin: String,
    pub connected_at: jiff::Timestamp,
    pub situation: Situation,
    pub powertrain: Powertrain,
    pub odometer_km: f64,
    pub latitude: f64,
    pub longitude: f64,
    /// State of charge, 0–1.
    pub battery_fraction: f64,
    /// Range on a full battery, km (electric drive only for plug-in hybrids).
    pub battery_full_range_km: f64,
    pub plugged_in: bool,
    /// `CHARGING`, `FULLY_CHARGED` or `NOT_CHARGING`.
    pub charge_state: String,
    /// Fuel level, 0–1.
    pub fuel_fraction: f64,
    pub tank_l: f64,
    /// Front left, front right, back left, back right, kPa.
    pub tire_kpa: [f64; 4],
    /// Engine oil life remaining, 0–1.
    pub oil_life: f64,
    /// How old the vehicle's data is when asked, seconds.
    pub data_age_s: i64,
    /// Tesla's `atHome` (`None` = undetermined).
    pub at_home: Option<bool>,
    pub firmware_version: String,
    pub nickname: String,
}

impl SimVehicle {
    pub fn is_tesla(&self) -> bool {
        self.make == catalog::TESLA
    }

    pub fn is_virtual_key_exempt(&self) -> bool {
        catalog::is_virtual_key_exempt(&self.make, &self.model, self.year)
    }

    /// `connected_at` as Smartcar writes timestamps (`2024-03-05T12:34:56.000Z`).
    pub fn connected_at_text(&self) -> String {
        iso_millis(self.connected_at)
    }
}

/// A timestamp as Smartcar writes it: UTC, milliseconds, `Z`.
pub fn iso_millis(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The whole fleet, with lookups the server needs on every request.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub vehicles: Vec<SimVehicle>,
    pub users: Vec<SimUser>,
    seed: u64,
    by_vehicle_id: HashMap<String, usize>,
    by_user_id: HashMap<String, usize>,
    by_token: HashMap<String, usize>,
    /// Vehicle indexes, newest connection first (the Management API's order).
    newest_first: Vec<usize>,
}

/// Connections are spread up to this instant (2025-11-15), so they are in the past whatever the clock says.
const CONNECT_WINDOW_END_S: i64 = 1_763_164_800;
/// Earliest connection (2019-01-01).
const CONNECT_WINDOW_START_S: i64 = 1_546_300_800;
/// Connect asks Tesla owners to add the key since 2025-05-20: a keyless Tesla connected before that.
const KEY_PROMPT_START_S: i64 = 1_747_699_200;
/// Tesla's location scope took effect in March 2025: vehicles missing it connected before.
const LOCATION_SCOPE_START_S: i64 = 1_740_787_200;

/// Seconds from 1970-01-01 to January 1st of `year`.
fn year_start_s(year: u16) -> i64 {
    let y = i64::from(year) - 1;
    let days =
        365 * (y - 1969) + (y / 4 - 1969 / 4) - (y / 100 - 1969 / 100) + (y / 400 - 1969 / 400);
    days * 86_400
}

fn weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut pick = rng.random_range(0..total.max(1));
    for (item, w) in items {
        if pick < *w {
            return item;
        }
        pick -= w;
    }
    // Only reached with an empty list, which the tables below never are.
    &items[items.len() - 1].0
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const TESLA_SITUATIONS: &[(Situation, u32)] = &[
    (Situation::Healthy, 40),
    (Situation::VirtualKeyMissing, 22),
    (Situation::LocationPermissionMissing, 12),
    (Situation::ScopeMissing, 3),
    (Situation::OemAuthenticationFailed, 3),
    (Situation::VehicleAsleep, 7),
    (Situation::VehicleUnreachable, 3),
    (Situation::StaleData, 3),
    (Situation::RateLimited, 4),
    (Situation::QuotaExhausted, 3),
];

const EXEMPT_TESLA_SITUATIONS: &[(Situation, u32)] = &[
    (Situation::VirtualKeyExempt, 75),
    (Situation::StaleData, 8),
    (Situation::VehicleAsleep, 8),
    (Situation::OemAuthenticationFailed, 3),
    (Situation::RateLimited, 3),
    (Situation::QuotaExhausted, 3),
];

const OTHER_SITUATIONS: &[(Situation, u32)] = &[
    (Situation::Healthy, 62),
    (Situation::SubscriptionLapsed, 7),
    (Situation::ScopeMissing, 5),
    (Situation::OemAuthenticationFailed, 5),
    (Situation::VehicleAsleep, 4),
    (Situation::VehicleUnreachable, 5),
    (Situation::StaleData, 5),
    (Situation::RateLimited, 4),
    (Situation::QuotaExhausted, 3),
];

/// Share of users whose access token has expired (all their vehicles).
const TOKEN_EXPIRED_SHARE: f64 = 0.04;

const FIRMWARE: &[&str] = &[
    "2024.45.32.12",
    "2025.2.6",
    "2025.14.3",
    "2025.20.7",
    "2025.32.4",
    "2025.38.9",
];
const NICKNAMES: &[&str] = &[
    "",
    "",
    "Road Runner",
    "Blue",
    "Daily",
    "Family car",
    "Sparky",
    "Work truck",
    "Zippy",
];

/// Share of healthy cars whose v3 signals answer 404 as if not subscribed to a webhook.
const UNSUBSCRIBED_SHARE: f64 = 0.01;
const UNSUBSCRIBED_STREAM: u64 = 0x5ab5_c71b_ed00_0404;

fn pick_situation(rng: &mut ChaCha8Rng, spec: &ModelSpec, year: u16) -> Situation {
    if catalog::is_virtual_key_exempt(spec.make, spec.model, year) {
        *weighted(rng, EXEMPT_TESLA_SITUATIONS)
    } else if spec.is_tesla() {
        *weighted(rng, TESLA_SITUATIONS)
    } else {
        *weighted(rng, OTHER_SITUATIONS)
    }
}

fn make_vin(rng: &mut ChaCha8Rng, spec: &ModelSpec, year: u16) -> String {
    let wmis: Vec<_> = spec
        .wmis
        .iter()
        .filter(|w| w.from <= year && year <= w.to)
        .collect();
    let (code, plant) = match wmis.get(rng.random_range(0..wmis.len().max(1))) {
        Some(w) => (w.code, w.plant),
        None => spec
            .wmis
            .first()
            .map_or(("5YJ", 'F'), |w| (w.code, w.plant)),
    };
    let descriptor: String = spec
        .descriptor
        .chars()
        .map(|c| {
            if c == '?' {
                let i = rng.random_range(0..vin::VIN_ALPHABET.len());
                char::from(vin::VIN_ALPHABET[i])
            } else {
                c
            }
        })
        .collect();
    vin::assemble(
        code,
        &descriptor,
        year,
        plant,
        rng.random_range(1..1_000_000),
    )
}

fn make_vehicle(rng: &mut ChaCha8Rng, user_id: &str, token_expired: bool) -> SimVehicle {
    let weights: Vec<(usize, u32)> = MODELS
        .iter()
        .enumerate()
        .map(|(i, m)| (i, m.weight))
        .collect();
    let spec = &MODELS[*weighted(rng, &weights)];
    let year = rng.random_range(spec.first_year..=spec.last_year);
    let situation = if token_expired {
        Situation::TokenExpired
    } else {
        pick_situation(rng, spec, year)
    };

    let start = CONNECT_WINDOW_START_S.max(year_start_s(year.saturating_sub(1)));
    let end = match situation {
        Situation::VirtualKeyMissing => KEY_PROMPT_START_S,
        Situation::LocationPermissionMissing => LOCATION_SCOPE_START_S,
        _ => CONNECT_WINDOW_END_S,
    };
    let connected_s = if start < end {
        rng.random_range(start..end)
    } else {
        end - 86_400
    };
    let connected_at =
        jiff::Timestamp::from_second(connected_s).unwrap_or(jiff::Timestamp::UNIX_EPOCH);

    let age_years = f64::from(2026u16.saturating_sub(year).max(1));
    let odometer_km = (rng.random_range(8_000.0..19_000.0) * age_years * 10.0).round() / 10.0;
    let (lat, lon) = CITIES[rng.random_range(0..CITIES.len())];
    let latitude = ((lat + rng.random_range(-0.15..0.15)) * 10_000.0).round() / 10_000.0;
    let longitude = ((lon + rng.random_range(-0.15..0.15)) * 10_000.0).round() / 10_000.0;

    let battery_fraction = if spec.powertrain.has_battery() {
        (rng.random_range(0.08..1.0f64) * 100.0).round() / 100.0
    } else {
        0.0
    };
    let plugged_in = spec.powertrain.has_battery() && rng.random_bool(0.35);
    let charge_state = if !plugged_in {
        "NOT_CHARGING"
    } else if battery_fraction >= 0.95 {
        "FULLY_CHARGED"
    } else if rng.random_bool(0.7) {
        "CHARGING"
    } else {
        "NOT_CHARGING"
    };
    let fuel_fraction = if spec.powertrain.has_engine() {
        (rng.random_range(0.05..1.0f64) * 100.0).round() / 100.0
    } else {
        0.0
    };
    let base_kpa = rng.random_range(230.0..260.0f64);
    let tire_kpa = [0; 4].map(|_| (base_kpa + rng.random_range(-12.0..6.0f64)).round());
    let oil_life = if spec.powertrain.has_engine() {
        (rng.random_range(0.05..1.0f64) * 100.0).round() / 100.0
    } else {
        0.0
    };

    let data_age_s = match situation {
        Situation::VirtualKeyExempt => rng.random_range(600..2_400),
        Situation::StaleData => rng.random_range(2 * 86_400..10 * 86_400),
        _ => rng.random_range(60..1_800),
    };
    let at_home = match situation {
        Situation::LocationPermissionMissing => Some(rng.random_bool(0.45)),
        _ if rng.random_bool(0.15) => None,
        _ => Some(rng.random_bool(0.4)),
    };

    SimVehicle {
        id: uuid(rng),
        user_id: user_id.to_string(),
        make: spec.make.to_string(),
        model: spec.model.to_string(),
        year,
        vin: make_vin(rng, spec, year),
        connected_at,
        situation,
        powertrain: spec.powertrain,
        odometer_km,
        latitude,
        longitude,
        battery_fraction,
        battery_full_range_km: spec.battery_range_km,
        plugged_in,
        charge_state: charge_state.to_string(),
        fuel_fraction,
        tank_l: spec.tank_l,
        tire_kpa,
        oil_life,
        data_age_s,
        at_home,
        firmware_version: if spec.is_tesla() {
            FIRMWARE[rng.random_range(0..FIRMWARE.len())].to_string()
        } else {
            String::new()
        },
        nickname: NICKNAMES[rng.random_range(0..NICKNAMES.len())].to_string(),
    }
}

impl Fleet {
    /// Generates `vehicles` vehicles for as many users as it takes (1–3 each). The same seed always
    /// gives the same fleet, ids, tokens and situations.
    pub fn generate(vehicles: usize, seed: u64) -> Fleet {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut fleet_vehicles: Vec<SimVehicle> = Vec::with_capacity(vehicles);
        let mut users = Vec::new();
        while fleet_vehicles.len() < vehicles {
            let remaining = vehicles - fleet_vehicles.len();
            let owned = (*weighted(&mut rng, &[(1usize, 70), (2, 22), (3, 8)])).min(remaining);
            let id = uuid(&mut rng);
            let access_token = uuid(&mut rng);
            let token_expired = rng.random_bool(TOKEN_EXPIRED_SHARE);
            let mut indexes = Vec::with_capacity(owned);
            for _ in 0..owned {
                indexes.push(fleet_vehicles.len());
                fleet_vehicles.push(make_vehicle(&mut rng, &id, token_expired));
            }
            users.push(SimUser {
                id,
                access_token,
                token_expired,
                vehicles: indexes,
            });
        }
        // A stream of its own, so the rest of every seeded fleet stays as it was.
        let mut unsubscribed = ChaCha8Rng::seed_from_u64(seed ^ UNSUBSCRIBED_STREAM);
        for v in &mut fleet_vehicles {
            if v.situation == Situation::Healthy && unsubscribed.random_bool(UNSUBSCRIBED_SHARE) {
                v.situation = Situation::SignalsNotSubscribed;
            }
        }
        Fleet::index(fleet_vehicles, users, seed)
    }

    fn index(vehicles: Vec<SimVehicle>, users: Vec<SimUser>, seed: u64) -> Fleet {
        let by_vehicle_id = vehicles
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id.clone(), i))
            .collect();
        let by_user_id = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
        let by_token = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.access_token.clone(), i))
            .collect();
        let mut newest_first: Vec<usize> = (0..vehicles.len()).collect();
        newest_first.sort_by(|a, b| {
            let (va, vb) = (&vehicles[*a], &vehicles[*b]);
            vb.connected_at
                .cmp(&va.connected_at)
                .then_with(|| va.id.cmp(&vb.id))
        });
        Fleet {
            vehicles,
            users,
            seed,
            by_vehicle_id,
            by_user_id,
            by_token,
            newest_first,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn vehicle_index(&self, vehicle_id: &str) -> Option<usize> {
        self.by_vehicle_id.get(vehicle_id).copied()
    }

    pub fn vehicle(&self, vehicle_id: &str) -> Option<&SimVehicle> {
        self.vehicle_index(vehicle_id)
            .and_then(|i| self.vehicles.get(i))
    }

    pub fn user(&self, user_id: &str) -> Option<&SimUser> {
        self.by_user_id
            .get(user_id)
            .and_then(|i| self.users.get(*i))
    }

    pub fn user_by_token(&self, access_token: &str) -> Option<&SimUser> {
        self.by_token
            .get(access_token)
            .and_then(|i| self.users.get(*i))
    }

    /// Vehicle indexes sorted by connection date, newest first.
    pub fn newest_first(&self) -> &[usize] {
        &self.newest_first
    }

    /// How many vehicles carry each situation, in [`Situation::ALL`] order.
    pub fn situation_counts(&self) -> Vec<(Situation, usize)> {
        Situation::ALL
            .into_iter()
            .map(|s| (s, self.vehicles.iter().filter(|v| v.situation == s).count()))
            .collect()
    }

    /// `(user id, access token)` for every user, in generation order.
    pub fn tokens(&self) -> Vec<(String, String)> {
        self.users
            .iter()
            .map(|u| (u.id.clone(), u.access_token.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_start_matches_known_dates() {
        assert_eq!(year_start_s(1970), 0);
        assert_eq!(year_start_s(2019), CONNECT_WINDOW_START_S);
        assert_eq!(year_start_s(2025), 1_735_689_600);
    }

    #[test]
    fn situations_fit_the_vehicle() {
        let fleet = Fleet::generate(3_000, 11);
        for v in &fleet.vehicles {
            match v.situation {
                Situation::VirtualKeyMissing | Situation::LocationPermissionMissing => {
                    assert!(v.is_tesla() && !v.is_virtual_key_exempt(), "{v:?}")
                }
                Situation::VirtualKeyExempt => assert!(v.is_virtual_key_exempt(), "{v:?}"),
                Situation::SubscriptionLapsed => assert!(!v.is_tesla(), "{v:?}"),
                _ => {}
            }
            assert!(vin::is_valid(&v.vin), "{}", v.vin);
            assert!(v.connected_at.as_second() < CONNECT_WINDOW_END_S);
        }
        for u in &fleet.users {
            assert!((1..=3).contains(&u.vehicles.len()));
            let expired = u
                .vehicles
                .iter()
                .all(|i| fleet.vehicles[*i].situation == Situation::TokenExpired);
            assert_eq!(expired, u.token_expired);
        }
    }
}
