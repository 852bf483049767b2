//! The simulated fleet as Smartcar webhooks (payload version 4.0), signed with the AMT: a VERIFY
//! first, then `VEHICLE_ERROR` as each vehicle's situation appears and resolves and `VEHICLE_STATE`
//! for vehicles without one, with duplicates and out-of-order deliveries at configurable rates.
//!
//! The stream is a pure, seeded iterator ([`Deliveries`]), so tests and benchmarks get the same
//! deliveries the sender posts.

use std::collections::VecDeque;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::dice::Dice;
use super::fleet::{Fleet, SimVehicle, Situation};

/// Hex HMAC-SHA256 keyed with the AMT, as Smartcar signs deliveries and answers challenges.
pub fn sign(amt: &str, message: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(amt.as_bytes()) {
        Ok(mut mac) => {
            mac.update(message);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length.
        Err(_) => String::new(),
    }
}

/// The error a situation shows in a `VEHICLE_ERROR`: type, code, and the signals it affects.
pub fn situation_error(
    situation: Situation,
) -> Option<(&'static str, Option<&'static str>, &'static [&'static str])> {
    const DATA: &[&str] = &["Location.PreciseLocation", "Odometer.TraveledDistance"];
    Some(match situation {
        Situation::Healthy
        | Situation::VirtualKeyExempt
        | Situation::StaleData
        | Situation::SignalsNotSubscribed => return None,
        Situation::VirtualKeyMissing => (
            "CONNECTED_SERVICES_ACCOUNT",
            Some("VIRTUAL_KEY_REQUIRED"),
            DATA,
        ),
        Situation::LocationPermissionMissing => ("PERMISSION", None, &["Location.PreciseLocation"]),
        Situation::ScopeMissing => ("PERMISSION", None, &["Odometer.TraveledDistance"]),
        Situation::TokenExpired => ("AUTHENTICATION", None, &[]),
        Situation::OemAuthenticationFailed => (
            "CONNECTED_SERVICES_ACCOUNT",
            Some("AUTHENTICATION_FAILED"),
            DATA,
        ),
        Situation::SubscriptionLapsed => ("CONNECTED_SERVICES_ACCOUNT", Some("SUBSCRIPTION"), DATA),
        Situation::VehicleAsleep => ("VEHICLE_STATE", Some("ASLEEP"), DATA),
        Situation::VehicleUnreachable => ("VEHICLE_STATE", Some("UNREACHABLE"), DATA),
        Situation::RateLimited => ("RATE_LIMIT", Some("VEHICLE"), DATA),
        Situation::QuotaExhausted => ("BILLING", Some("VEHICLE_REQUEST_LIMIT"), DATA),
    })
}

fn envelope(event_id: &str, event_type: &str, data: Value, at_ms: i64) -> String {
    json!({
        "eventId": event_id,
        "eventType": event_type,
        "data": data,
        "meta": {"version": "4.0", "deliveryId": format!("{event_id}-delivery"), "deliveredAt": at_ms,
                 "webhookId": "sim-webhook", "webhookName": "vtriage sim", "mode": "TEST"}
    })
    .to_string()
}

fn vehicle_json(v: &SimVehicle) -> Value {
    json!({"id": v.id, "make": v.make, "model": v.model, "year": v.year})
}

/// The challenge the sender's VERIFY carries: a short URL-safe token, as Smartcar's is (a desk
/// answers no other).
pub fn verify_challenge(seed: u64) -> String {
    format!("sim-challenge-{seed:016x}")
}

/// `VERIFY` with `challenge`.
pub fn verify_body(challenge: &str) -> String {
    json!({"eventType": "VERIFY", "data": {"challenge": challenge}, "meta": {"version": "4.0"}})
        .to_string()
}

/// A `VEHICLE_ERROR` for the vehicle's situation in `state` (`ERROR` or `RESOLVED`); `None` when
/// the situation shows no error.
pub fn vehicle_error_body(
    v: &SimVehicle,
    event_id: &str,
    state: &str,
    at_ms: i64,
) -> Option<String> {
    let (error_type, code, signals) = situation_error(v.situation)?;
    let data = json!({
        "user": {"id": v.user_id},
        "vehicle": vehicle_json(v),
        "errors": [{"type": error_type, "code": code, "state": state,
                    "description": v.situation.summary(),
                    "resolution": {"type": if v.situation == Situation::VirtualKeyMissing { "ACTION_REQUIRED" } else { "RETRY_LATER" }},
                    "signals": signals}]
    });
    Some(envelope(event_id, "VEHICLE_ERROR", data, at_ms))
}

/// A `VEHICLE_STATE` with the vehicle's odometer, location and key pairing, all recorded at `at_ms`.
pub fn vehicle_state_body(v: &SimVehicle, event_id: &str, at_ms: i64) -> String {
    let meta = json!({"retrievedAt": at_ms, "oemUpdatedAt": at_ms});
    let mut signals = vec![
        json!({"code": "odometer-traveleddistance", "name": "TraveledDistance", "group": "Odometer",
               "body": {"value": v.odometer_km, "unit": "km"}, "status": {"value": "SUCCESS"}, "meta": meta}),
        json!({"code": "location-preciselocation", "name": "PreciseLocation", "group": "Location",
               "body": {"latitude": v.latitude, "longitude": v.longitude}, "status": {"value": "SUCCESS"}, "meta": meta}),
    ];
    if v.is_tesla() {
        signals.push(json!({"code": "connectivitystatus-isdigitalkeypaired", "name": "IsDigitalKeyPaired",
            "group": "ConnectivityStatus", "body": {"value": v.situation != Situation::VirtualKeyMissing},
            "status": {"value": "SUCCESS"}, "meta": meta}));
    }
    let data = json!({
        "user": {"id": v.user_id},
        "vehicle": vehicle_json(v),
        "signals": signals,
        "triggers": [{"type": "SIGNAL_UPDATED", "signal": {"name": "TraveledDistance", "group": "Odometer", "code": "odometer-traveleddistance"}}]
    });
    envelope(event_id, "VEHICLE_STATE", data, at_ms)
}

/// One delivery to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub event_id: String,
    pub body: String,
}

/// How the stream misbehaves, as Smartcar's delivery may.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disorder {
    /// Share (0–1) of deliveries sent a second time.
    pub duplicate_rate: f64,
    /// Share (0–1) of deliveries held back and sent after the next one.
    pub reorder_rate: f64,
}

/// The endless, seeded stream of deliveries for a fleet: vehicle after vehicle, round after round.
/// A vehicle with a situation alternates `ERROR` and `RESOLVED`; the others report their state.
pub struct Deliveries<'a> {
    fleet: &'a Fleet,
    step: u64,
    start_ms: i64,
    disorder: Disorder,
    dice: Dice,
    ready: VecDeque<Outgoing>,
    held: Option<Outgoing>,
}

impl<'a> Deliveries<'a> {
    pub fn new(fleet: &'a Fleet, seed: u64, start_ms: i64, disorder: Disorder) -> Deliveries<'a> {
        Deliveries {
            fleet,
            step: 0,
            start_ms,
            disorder,
            dice: Dice::new(seed ^ 0x7765_6268_6f6f_6b73),
            ready: VecDeque::new(),
            held: None,
        }
    }

    fn fresh(&mut self) -> Option<Outgoing> {
        let n = self.fleet.vehicles.len() as u64;
        let v = self.fleet.vehicles.get((self.step % n.max(1)) as usize)?;
        let round = self.step / n.max(1);
        let at_ms = self
            .start_ms
            .saturating_add(i64::try_from(self.step).unwrap_or(i64::MAX));
        let event_id = format!("sim-{}-{}", self.fleet.seed(), self.step);
        self.step += 1;
        let state = if round.is_multiple_of(2) {
            "ERROR"
        } else {
            "RESOLVED"
        };
        let body = vehicle_error_body(v, &event_id, state, at_ms)
            .unwrap_or_else(|| vehicle_state_body(v, &event_id, at_ms));
        Some(Outgoing { event_id, body })
    }
}

impl Iterator for Deliveries<'_> {
    type Item = Outgoing;

    fn next(&mut self) -> Option<Outgoing> {
        if let Some(next) = self.ready.pop_front() {
            return Some(next);
        }
        let mut out = self.fresh()?;
        if self.dice.unit() < self.disorder.reorder_rate && self.held.is_none() {
            // Held back: the next fresh delivery goes first.
            self.held = Some(out);
            out = self.fresh()?;
        } else if let Some(late) = self.held.take() {
            self.ready.push_back(late);
        }
        if self.dice.unit() < self.disorder.duplicate_rate {
            self.ready.push_back(out.clone());
        }
        Some(out)
    }
}

/// Where and how fast to send.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub url: String,
    pub amt: String,
    pub per_second: f64,
    pub disorder: Disorder,
    pub seed: u64,
    /// Stop after this many deliveries (`None`: until stopped).
    pub limit: Option<u64>,
}

/// Posts VERIFY, then the stream, until `limit` or until the task is dropped. A delivery answered
/// other than 2xx is tried again later, up to five times, as Smartcar retries.
pub async fn send(config: SenderConfig, fleet: &Fleet) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vtriage sim: webhooks not sent: {e}");
            return;
        }
    };
    let challenge = verify_challenge(config.seed);
    let expected = sign(&config.amt, challenge.as_bytes());
    let verified = client
        .post(&config.url)
        .header("content-type", "application/json")
        .body(verify_body(&challenge))
        .send()
        .await
        .ok()
        .filter(|r| r.status().is_success());
    let answer = match verified {
        Some(r) => r.json::<Value>().await.ok(),
        None => None,
    };
    if answer
        .as_ref()
        .and_then(|a| a.get("challenge"))
        .and_then(Value::as_str)
        == Some(expected.as_str())
    {
        println!("  webhooks: {} verified the challenge", config.url);
    } else {
        eprintln!(
            "vtriage sim: {} did not answer the VERIFY challenge with the AMT's HMAC; sending anyway",
            config.url
        );
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let stream = Deliveries::new(fleet, config.seed, now_ms, config.disorder);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(
        1.0 / config.per_second.clamp(0.001, 100_000.0),
    ));
    let mut retries: VecDeque<(Outgoing, u32)> = VecDeque::new();
    let mut sent: u64 = 0;
    let mut stream = stream.take(config.limit.map_or(usize::MAX, |l| l as usize));
    loop {
        tick.tick().await;
        let (next, tries) = match retries.pop_front() {
            Some(r) => r,
            None => match stream.next() {
                Some(o) => (o, 0),
                None if retries.is_empty() => break,
                None => continue,
            },
        };
        let status = client
            .post(&config.url)
            .header("content-type", "application/json")
            .header("SC-Signature", sign(&config.amt, next.body.as_bytes()))
            .body(next.body.clone())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        sent += 1;
        if !(200..300).contains(&status) && tries < 5 {
            retries.push_back((next, tries + 1));
        }
    }
    println!("  webhooks: {sent} deliveries posted to {}", config.url);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calm() -> Disorder {
        Disorder {
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
        }
    }

    #[test]
    fn the_verify_challenge_has_the_shape_a_desk_answers() {
        for seed in [0, 7, u64::MAX] {
            let challenge = verify_challenge(seed);
            assert!(
                crate::desk::webhook::is_challenge(&challenge),
                "{challenge}"
            );
            assert!(matches!(
                crate::desk::webhook::parse(verify_body(&challenge).as_bytes()),
                Ok(crate::desk::webhook::Delivery::Verify { .. })
            ));
        }
    }

    #[test]
    fn each_vehicle_with_a_situation_errors_then_resolves() {
        let fleet = Fleet::generate(50, 7);
        let n = fleet.vehicles.len();
        let all: Vec<Outgoing> = Deliveries::new(&fleet, 7, 0, calm()).take(2 * n).collect();
        let with_error = fleet
            .vehicles
            .iter()
            .position(|v| situation_error(v.situation).is_some())
            .expect("a vehicle with a situation");
        assert!(all[with_error].body.contains("\"state\":\"ERROR\""));
        assert!(all[n + with_error].body.contains("\"state\":\"RESOLVED\""));
        let healthy = fleet
            .vehicles
            .iter()
            .position(|v| v.situation == Situation::Healthy)
            .expect("a healthy vehicle");
        assert!(all[healthy].body.contains("VEHICLE_STATE"));
    }

    #[test]
    fn duplicates_and_late_deliveries_appear_at_their_rates() {
        let fleet = Fleet::generate(100, 3);
        let disorder = Disorder {
            duplicate_rate: 0.1,
            reorder_rate: 0.1,
        };
        let all: Vec<Outgoing> = Deliveries::new(&fleet, 3, 0, disorder)
            .take(5_000)
            .collect();
        let mut seen = std::collections::HashSet::new();
        let dups = all
            .iter()
            .filter(|o| !seen.insert(o.event_id.clone()))
            .count();
        assert!((300..=700).contains(&dups), "{dups} duplicates");
        let step = |o: &Outgoing| -> u64 {
            o.event_id
                .rsplit('-')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("step")
        };
        let late = all.windows(2).filter(|w| step(&w[1]) < step(&w[0])).count();
        assert!(late > 100, "{late} out of order");
    }

    #[test]
    fn the_signature_verifies_with_the_desk() {
        let body = verify_body("x");
        let sig = sign("amt-secret", body.as_bytes());
        assert!(crate::desk::webhook::verify_signature(
            b"amt-secret",
            body.as_bytes(),
            &sig
        ));
    }
}
