//! What the desk knows about one vehicle (webhook errors and signals, the last probe), how a new
//! delivery merges in whatever order it arrives, and the probe report diagnosis reads: the newest
//! evidence of each question wins, whichever path brought it. Pure: no I/O, no clock (the caller
//! says when a delivery arrived).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::smartcar::v3::Signal;
use crate::smartcar::{
    Answer, ApiError, DataKind, ErrorCode, Meta, Observation, Probe, ProbeReport, SmartcarError,
    TeslaUserAccess, VehicleAttributes, WebhookMeta,
};

use super::webhook::{ErrorState, VehicleEvent};
use crate::health::{Diagnosis, Evidence, Finding, FindingId, Severity, Status};

/// How far ahead of the desk's clock a time from outside may be and still be believed: a sender's
/// clock a little fast keeps the order of its events. A time further ahead (a delivery dated 2100)
/// says nothing about when the event happened; the arrival time stands in for it, so it can never
/// outrank what comes after it.
pub const CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// `claimed` (a time from outside) when it is no further than [`CLOCK_SKEW`] ahead of `now`, else
/// `now`.
pub fn believed(claimed: jiff::Timestamp, now: jiff::Timestamp) -> jiff::Timestamp {
    let limit = now
        .checked_add(jiff::SignedDuration::try_from(CLOCK_SKEW).unwrap_or_default())
        .unwrap_or(jiff::Timestamp::MAX);
    if claimed > limit { now } else { claimed }
}

fn believe_option(t: &mut Option<jiff::Timestamp>, now: jiff::Timestamp) -> bool {
    match t {
        Some(claimed) if believed(*claimed, now) != *claimed => {
            *t = Some(now);
            true
        }
        _ => false,
    }
}

/// The newest state of one reported error (keyed by `TYPE:CODE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFact {
    pub state: ErrorState,
    pub at: jiff::Timestamp,
    pub error: SmartcarError,
    pub signals: Vec<String>,
    /// The delivery that said it: what an escalation to Smartcar quotes.
    #[serde(default)]
    pub delivery: Option<DeliveryFact>,
}

/// Which delivery brought a fact: its `eventId` and when it was delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryFact {
    pub event_id: String,
    pub delivered_at: jiff::Timestamp,
}

impl DeliveryFact {
    fn of(event: &VehicleEvent, received: jiff::Timestamp) -> DeliveryFact {
        DeliveryFact {
            event_id: event.event_id.clone(),
            delivered_at: event
                .delivered_at
                .map_or(received, |t| believed(t, received)),
        }
    }

    fn meta(delivery: Option<&DeliveryFact>, event_type: &str) -> WebhookMeta {
        WebhookMeta {
            event_type: event_type.to_string(),
            event_id: delivery.map(|d| d.event_id.clone()),
            delivered_at: delivery.map(|d| d.delivered_at),
        }
    }
}

/// The newest value of one signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalFact {
    pub at: jiff::Timestamp,
    pub signal: Signal,
    #[serde(default)]
    pub delivery: Option<DeliveryFact>,
}

/// Everything the desk holds about one vehicle, stored as one JSON document with its row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VehicleFacts {
    #[serde(default)]
    pub errors: BTreeMap<String, ErrorFact>,
    #[serde(default)]
    pub signals: BTreeMap<String, SignalFact>,
    /// The desk's own last probe of the vehicle.
    #[serde(default)]
    pub probe: Option<ProbeReport>,
}

impl VehicleFacts {
    /// Merges one event that arrived at `received`, dated by its own times as far as they are
    /// [`believed`]. Each error and each signal keeps whichever report is newest, so a delayed
    /// delivery never overwrites a later one; on a tie the earlier arrival stays, so a retried
    /// delivery changes nothing. Returns whether anything changed.
    pub fn merge(&mut self, event: &VehicleEvent, received: jiff::Timestamp) -> bool {
        let at = event.at.map_or(received, |t| believed(t, received));
        let mut changed = false;
        for reported in &event.errors {
            let key = reported.error.type_code();
            let newer = self.errors.get(&key).is_none_or(|old| at > old.at);
            if newer {
                self.errors.insert(
                    key,
                    ErrorFact {
                        state: reported.state.clone(),
                        at,
                        error: reported.error.clone(),
                        signals: reported.signals.clone(),
                        delivery: Some(DeliveryFact::of(event, received)),
                    },
                );
                changed = true;
            }
        }
        for signal in &event.signals {
            let mut signal = signal.clone();
            believe_option(&mut signal.oem_updated_at, received);
            believe_option(&mut signal.retrieved_at, received);
            let signal_at = signal.oem_updated_at.unwrap_or(at);
            let newer = self
                .signals
                .get(&signal.code)
                .is_none_or(|old| signal_at > old.at);
            if newer {
                self.signals.insert(
                    signal.code.clone(),
                    SignalFact {
                        at: signal_at,
                        signal,
                        delivery: Some(DeliveryFact::of(event, received)),
                    },
                );
                changed = true;
            }
        }
        changed
    }

    /// Takes the desk's own probe of the vehicle, its server-given times believed as of `now`.
    pub fn probed(&mut self, report: &ProbeReport, now: jiff::Timestamp) {
        let mut report = report.clone();
        for o in &mut report.observations {
            o.at = believed(o.at, now);
            believe_option(&mut o.meta.data_age, now);
            believe_option(&mut o.meta.fetched_at, now);
        }
        self.probe = Some(report);
    }

    /// Brings every stored time back to at most [`CLOCK_SKEW`] ahead of `now` (facts stored before
    /// times were checked on arrival); returns whether any moved.
    pub fn believe_times(&mut self, now: jiff::Timestamp) -> bool {
        let mut moved = false;
        let mut bring = |t: &mut jiff::Timestamp| {
            let b = believed(*t, now);
            moved |= b != *t;
            *t = b;
        };
        self.errors.values_mut().for_each(|f| bring(&mut f.at));
        for fact in self.signals.values_mut() {
            bring(&mut fact.at);
            if let Some(t) = &mut fact.signal.oem_updated_at {
                bring(t);
            }
            if let Some(t) = &mut fact.signal.retrieved_at {
                bring(t);
            }
        }
        if let Some(probe) = &mut self.probe {
            for o in &mut probe.observations {
                bring(&mut o.at);
                for t in [&mut o.meta.data_age, &mut o.meta.fetched_at]
                    .into_iter()
                    .flatten()
                {
                    bring(t);
                }
            }
        }
        moved
    }

    /// Errors still failing.
    pub fn active_errors(&self) -> impl Iterator<Item = (&String, &ErrorFact)> {
        self.errors.iter().filter(|(_, f)| !f.state.is_resolved())
    }

    /// The report diagnosis reads: for each question, the newest of the last probe's observation
    /// and the webhooks' account of it, the probe winning a tie (the desk's own look is at least as
    /// new as anything dated the same). A resolved error clears every older observation of that
    /// error, the probe's included, so a car whose customer fixed it leaves BLOCKED when Smartcar
    /// says so, without waiting for a probe.
    pub fn report(
        &self,
        vehicle_id: &str,
        user_id: Option<&str>,
        attributes: Option<VehicleAttributes>,
    ) -> ProbeReport {
        let mut by_probe: BTreeMap<String, Observation> = BTreeMap::new();
        let key = |p: Probe| serde_json::to_string(&p).unwrap_or_default();
        let mut put = |o: Observation| {
            let k = key(o.probe);
            if by_probe.get(&k).is_none_or(|old| o.at >= old.at) {
                by_probe.insert(k, o);
            }
        };
        for fact in self.signals.values() {
            if let Some(o) = signal_observation(vehicle_id, fact) {
                put(o);
            }
        }
        for fact in self.active_errors().map(|(_, f)| f) {
            let probe = fact
                .signals
                .iter()
                .find_map(|code| probe_of(code))
                .unwrap_or_else(|| default_probe(&fact.error));
            put(Observation {
                probe,
                endpoint: "webhook VEHICLE_ERROR".to_string(),
                at: fact.at,
                meta: Meta {
                    status: fact.error.status,
                    webhook: Some(DeliveryFact::meta(fact.delivery.as_ref(), "VEHICLE_ERROR")),
                    ..Meta::default()
                },
                outcome: Err(ApiError::Smartcar(Box::new(fact.error.clone()))),
            });
        }
        let mut attributes = attributes;
        if let Some(probe) = &self.probe {
            if attributes.is_none() {
                attributes = probe.attributes.clone();
            }
            for o in &probe.observations {
                put(o.clone());
            }
        }
        for resolved in self.errors.values().filter(|f| f.state.is_resolved()) {
            by_probe.retain(|_, o| !(o.at < resolved.at && resolves(resolved, o)));
        }
        ProbeReport {
            vehicle_id: vehicle_id.to_string(),
            user_id: user_id.map(str::to_string),
            // Webhooks arrive for connected vehicles; whether the desk can probe them is the prober's matter.
            has_token: true,
            attributes,
            vin: self.probe.as_ref().and_then(|p| p.vin.clone()),
            observations: by_probe.into_values().collect(),
        }
    }
}

impl VehicleFacts {
    /// `diagnosis` of this vehicle's [`VehicleFacts::report`], told with what Smartcar resolved:
    /// when a webhook's RESOLVED cleared every failing observation and nothing else is known, the
    /// car reads "resolved at 14:05 (webhook)" rather than UNKNOWN without findings.
    pub fn with_resolution(&self, diagnosis: Diagnosis) -> Diagnosis {
        if diagnosis.status != Status::Unknown || !diagnosis.findings.is_empty() {
            return diagnosis;
        }
        let Some(resolved) = self
            .errors
            .values()
            .filter(|f| f.state.is_resolved())
            .max_by_key(|f| f.at)
        else {
            return diagnosis;
        };
        let at = resolved
            .delivery
            .as_ref()
            .map_or(resolved.at, |d| d.delivered_at);
        let mut evidence = Evidence {
            endpoint: "webhook VEHICLE_ERROR RESOLVED".into(),
            type_code: Some(resolved.error.type_code()),
            at: resolved.at,
            event_type: Some("VEHICLE_ERROR".into()),
            ..Evidence::default()
        };
        if let Some(d) = &resolved.delivery {
            evidence.event_id = Some(d.event_id.clone());
            evidence.delivered_at = Some(d.delivered_at);
        }
        let title = format!(
            "resolved at {} (webhook): Smartcar reports {} no longer occurs",
            at.strftime("%H:%M"),
            crate::untrusted::text::one_line(&resolved.error.type_code())
        );
        Diagnosis {
            status: Status::Healthy,
            findings: vec![Finding {
                id: FindingId::ErrorResolved.as_str().into(),
                severity: Severity::Info,
                title,
                rule: None,
                since: Some(crate::report::format_instant(at)),
                evidence: vec![evidence],
                remedy: crate::health::remedy::nothing(
                    "Nothing to do: the next probe or webhook confirms the car's data",
                    "",
                    None,
                ),
            }],
            checked_at: Some(at),
        }
    }
}

/// Whether the resolution `fact` clears observation `o`: one that shows its error. An error that
/// names a code is the same problem wherever it shows (a missing virtual key fails every data
/// signal); one without (`PERMISSION`, code `null`) is about the signals it names only.
fn resolves(fact: &ErrorFact, o: &Observation) -> bool {
    shows(o, &fact.error)
        && (fact.error.code.is_some()
            || fact.signals.is_empty()
            || fact
                .signals
                .iter()
                .any(|code| probe_of(code) == Some(o.probe)))
}

/// Whether observation `o` shows `error`: the same type and, when the error names one, the same
/// code (a webhook's `PERMISSION` comes with code `null`); or, for `VIRTUAL_KEY_REQUIRED`, the
/// key found not paired.
fn shows(o: &Observation, error: &SmartcarError) -> bool {
    if error.code == Some(ErrorCode::VirtualKeyRequired)
        && matches!(o.answer(), Some(Answer::VirtualKey { is_paired: false }))
    {
        return true;
    }
    match o.error() {
        Some(ApiError::Smartcar(seen)) => {
            seen.error_type == error.error_type && (error.code.is_none() || seen.code == error.code)
        }
        _ => false,
    }
}

/// The question a v3 signal answers, in the v2 vocabulary diagnosis speaks.
pub fn probe_of(code: &str) -> Option<Probe> {
    Some(match code {
        "connectivitystatus-isdigitalkeypaired" => Probe::VirtualKey,
        "vehicleuseraccount-permissions" | "vehicleuseraccount-role" => Probe::TeslaUserAccess,
        "location-isathome" => Probe::TeslaAttributes,
        c if c.starts_with("location-") => Probe::Data(DataKind::Location),
        c if c.starts_with("odometer-") => Probe::Data(DataKind::Odometer),
        c if c.starts_with("tractionbattery-") => Probe::Data(DataKind::Battery),
        c if c.starts_with("charge-") => Probe::Data(DataKind::Charge),
        c if c.starts_with("fuel-") || c.starts_with("internalcombustionengine-fuel") => {
            Probe::Data(DataKind::Fuel)
        }
        c if c.starts_with("wheel-") || c.starts_with("tires-") => {
            Probe::Data(DataKind::TirePressure)
        }
        "vehicleidentification-vin" => Probe::Data(DataKind::Vin),
        _ => return None,
    })
}

/// An error that names no signal is about the vehicle's data as a whole.
fn default_probe(_error: &SmartcarError) -> Probe {
    Probe::Data(DataKind::Odometer)
}

fn signal_observation(vehicle_id: &str, fact: &SignalFact) -> Option<Observation> {
    let s = &fact.signal;
    let probe = probe_of(&s.code)?;
    let outcome = if let Some(e) = &s.status.error {
        let mut error = SmartcarError::new(0, e.error_type.clone(), e.code.clone());
        error.description = format!("signal {} failed", s.code);
        Err(ApiError::Smartcar(Box::new(error)))
    } else if s.is_success() {
        Ok(match probe {
            Probe::VirtualKey => Answer::VirtualKey {
                is_paired: s.value().and_then(Value::as_bool)?,
            },
            Probe::TeslaAttributes => Answer::TeslaAttributes {
                at_home: s.value().and_then(Value::as_bool),
            },
            Probe::TeslaUserAccess if s.code == "vehicleuseraccount-permissions" => {
                Answer::TeslaUserAccess(TeslaUserAccess {
                    access_type: None,
                    permissions: s.body.get("values").and_then(Value::as_array).map(|v| {
                        v.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    }),
                })
            }
            Probe::TeslaUserAccess => return None,
            _ => Answer::Data {
                body: s.body.clone(),
            },
        })
    } else {
        return None;
    };
    Some(Observation {
        probe,
        endpoint: format!("webhook VEHICLE_STATE {} ({vehicle_id})", s.code),
        at: fact.at,
        meta: Meta {
            status: if outcome.is_ok() { 200 } else { 0 },
            data_age: s.oem_updated_at,
            fetched_at: s.retrieved_at,
            webhook: Some(DeliveryFact::meta(fact.delivery.as_ref(), "VEHICLE_STATE")),
            ..Meta::default()
        },
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::webhook::{Delivery, parse};

    fn event(body: serde_json::Value) -> VehicleEvent {
        match parse(body.to_string().as_bytes()) {
            Ok(Delivery::Vehicle(e)) => *e,
            other => panic!("not a vehicle event: {other:?}"),
        }
    }

    fn error_event(id: &str, state: &str, delivered_ms: i64) -> VehicleEvent {
        event(serde_json::json!({
            "eventId": id, "eventType": "VEHICLE_ERROR",
            "data": {"vehicle": {"id": "v1"}, "errors": [{"type": "CONNECTED_SERVICES_ACCOUNT",
                     "code": "VIRTUAL_KEY_REQUIRED", "state": state, "signals": ["Location.PreciseLocation"]}]},
            "meta": {"deliveredAt": delivered_ms}
        }))
    }

    fn at(e: &VehicleEvent) -> jiff::Timestamp {
        e.at.expect("time")
    }

    #[test]
    fn a_resolution_delivered_before_the_error_it_resolves_still_wins() {
        let error = error_event("e1", "ERROR", 1_000_000_000_000);
        let resolved = error_event("e2", "RESOLVED", 1_000_000_060_000);
        let mut facts = VehicleFacts::default();
        assert!(facts.merge(&resolved, at(&resolved)));
        assert!(!facts.merge(&error, at(&error)), "older error is ignored");
        assert_eq!(facts.active_errors().count(), 0);

        let mut in_order = VehicleFacts::default();
        in_order.merge(&error, at(&error));
        assert_eq!(in_order.active_errors().count(), 1);
        in_order.merge(&resolved, at(&resolved));
        assert_eq!(in_order, facts, "either order ends in the same state");
    }

    #[test]
    fn a_retried_delivery_changes_nothing() {
        let error = error_event("e1", "ERROR", 1_000_000_000_000);
        let mut facts = VehicleFacts::default();
        assert!(facts.merge(&error, at(&error)));
        assert!(!facts.merge(&error, at(&error)));
    }

    #[test]
    fn an_active_error_becomes_an_observation_of_the_signal_it_names() {
        let error = error_event("e1", "ERROR", 1_000_000_000_000);
        let mut facts = VehicleFacts::default();
        facts.merge(&error, at(&error));
        let report = facts.report("v1", Some("u1"), None);
        assert_eq!(report.observations.len(), 1);
        assert_eq!(
            report.observations[0].probe,
            Probe::Data(DataKind::Location)
        );
        assert!(report.observations[0].error().is_some());
    }

    #[test]
    fn state_signals_become_answers_diagnosis_understands() {
        let state = event(serde_json::json!({
            "eventId": "s1", "eventType": "VEHICLE_STATE",
            "data": {"vehicle": {"id": "v1"}, "signals": [
                {"code": "connectivitystatus-isdigitalkeypaired", "body": {"value": false}, "status": {"value": "SUCCESS"}},
                {"code": "location-isathome", "status": {"value": "ERROR", "error": {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}}},
                {"code": "unknown-signal", "body": {"value": 1}, "status": {"value": "SUCCESS"}}
            ]},
            "meta": {"deliveredAt": 1_000_000_000_000_i64}
        }));
        let mut facts = VehicleFacts::default();
        facts.merge(&state, at(&state));
        let report = facts.report("v1", None, None);
        assert_eq!(report.observations.len(), 2);
        assert_eq!(
            report.get(Probe::VirtualKey).and_then(|o| o.answer()),
            Some(&Answer::VirtualKey { is_paired: false })
        );
        assert!(
            report
                .get(Probe::TeslaAttributes)
                .is_some_and(|o| o.error().is_some())
        );
    }

    #[test]
    fn a_webhook_errors_evidence_names_its_event_and_delivery_and_no_http_status() {
        let error = error_event("evt-42", "ERROR", 1_000_000_000_000);
        let mut facts = VehicleFacts::default();
        facts.merge(&error, at(&error));
        let report = facts.report("v1", Some("u1"), None);
        let evidence = crate::health::Evidence::from_observation(&report.observations[0]);
        assert_eq!(evidence.http_status, None, "no request was answered 400");
        assert_eq!(evidence.event_type.as_deref(), Some("VEHICLE_ERROR"));
        assert_eq!(evidence.event_id.as_deref(), Some("evt-42"));
        assert_eq!(evidence.delivered_at, Some(ms(1_000_000_000_000)));
        assert_eq!(
            crate::report::evidence_line(&evidence),
            "webhook VEHICLE_ERROR CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED · event evt-42 \
             · delivered 2001-09-09 01:46 UTC"
        );
    }

    #[test]
    fn the_key_paired_signals_evidence_shows_its_value() {
        let state = event(serde_json::json!({
            "eventId": "s1", "eventType": "VEHICLE_STATE",
            "data": {"vehicle": {"id": "v1"}, "signals": [
                {"code": "connectivitystatus-isdigitalkeypaired", "body": {"value": false},
                 "status": {"value": "SUCCESS"}, "meta": {"oemUpdatedAt": 999_999_000_000_i64}}
            ]},
            "meta": {"deliveredAt": 1_000_000_000_000_i64}
        }));
        let mut facts = VehicleFacts::default();
        facts.merge(&state, ms(1_000_000_000_000));
        let report = facts.report("v1", None, None);
        let o = report.get(Probe::VirtualKey).expect("key observation");
        let line = crate::report::evidence_line(&crate::health::Evidence::from_observation(o));
        assert!(
            line.starts_with("webhook VEHICLE_STATE connectivitystatus-isdigitalkeypaired (v1) → false · event s1"),
            "{line}"
        );
        assert!(!line.contains("→ 200"), "{line}");
        assert!(
            line.ends_with("· delivered 2001-09-09 01:46 UTC · as of 2001-09-09 01:30 UTC"),
            "{line}"
        );
    }

    #[test]
    fn an_error_stored_before_deliveries_were_kept_still_reads() {
        let old = serde_json::json!({"errors": {"CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED": {
            "state": "Error", "at": "2026-01-01T00:00:00Z",
            "error": serde_json::to_value(SmartcarError::new(
                400,
                crate::smartcar::ErrorType::ConnectedServicesAccount,
                Some(ErrorCode::VirtualKeyRequired),
            )).expect("json"),
            "signals": []}}});
        let facts: VehicleFacts = serde_json::from_value(old).expect("old facts read");
        let report = facts.report("v1", None, None);
        let evidence = crate::health::Evidence::from_observation(&report.observations[0]);
        assert_eq!(evidence.http_status, None);
        assert_eq!(evidence.event_id, None);
        let stored: crate::health::Evidence = serde_json::from_value(serde_json::json!({
            "endpoint": "GET /x", "http_status": 409, "type_code": null, "request_id": null,
            "at": "2026-01-01T00:00:00Z", "data_age": null}))
        .expect("old evidence reads");
        assert_eq!(stored.value, None);
    }

    fn ms(t: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(t).expect("ts")
    }

    /// A probe at `at` that saw the key unpaired and the location refused for it.
    fn probe_without_key(at: jiff::Timestamp) -> ProbeReport {
        let mut refused = SmartcarError::new(
            409,
            crate::smartcar::ErrorType::ConnectedServicesAccount,
            Some(ErrorCode::VirtualKeyRequired),
        );
        refused.description = "virtual key required".into();
        ProbeReport {
            vehicle_id: "v1".into(),
            has_token: true,
            observations: vec![
                Observation {
                    probe: Probe::VirtualKey,
                    endpoint: "GET /v3/vehicles/v1/signals".into(),
                    at,
                    meta: Meta::default(),
                    outcome: Ok(Answer::VirtualKey { is_paired: false }),
                },
                Observation {
                    probe: Probe::Data(DataKind::Location),
                    endpoint: "GET /v3/vehicles/v1/signals".into(),
                    at,
                    meta: Meta::default(),
                    outcome: Err(ApiError::Smartcar(Box::new(refused))),
                },
            ],
            ..ProbeReport::default()
        }
    }

    #[test]
    fn a_delivery_dated_2100_counts_as_arrived_and_a_resolution_sent_after_it_clears_it() {
        let now = ms(1_800_000_000_000);
        let future = error_event("e1", "ERROR", 4_102_444_800_000);
        let mut facts = VehicleFacts::default();
        assert!(facts.merge(&future, now));
        assert_eq!(facts.errors.values().next().map(|f| f.at), Some(now));
        let resolved = error_event("e2", "RESOLVED", 1_800_000_001_000);
        assert!(facts.merge(&resolved, ms(1_800_000_001_000)));
        assert_eq!(facts.active_errors().count(), 0);
    }

    #[test]
    fn a_time_a_little_ahead_of_the_clock_is_believed() {
        let now = ms(1_800_000_000_000);
        assert_eq!(believed(ms(1_800_000_120_000), now), ms(1_800_000_120_000));
        assert_eq!(believed(ms(1_800_000_000_000 + 301_000), now), now);
        assert_eq!(believed(jiff::Timestamp::MAX, now), now);
    }

    #[test]
    fn a_signal_dated_in_the_future_is_kept_as_of_its_arrival() {
        let state = event(serde_json::json!({
            "eventId": "s1", "eventType": "VEHICLE_STATE",
            "data": {"vehicle": {"id": "v1"}, "signals": [
                {"code": "connectivitystatus-isdigitalkeypaired", "body": {"value": false}, "status": {"value": "SUCCESS"},
                 "meta": {"oemUpdatedAt": 4_102_444_800_000_i64, "retrievedAt": 4_102_444_800_000_i64}}
            ]},
            "meta": {"deliveredAt": 4_102_444_800_000_i64}
        }));
        let now = ms(1_800_000_000_000);
        let mut facts = VehicleFacts::default();
        facts.merge(&state, now);
        let fact = facts.signals.values().next().expect("kept");
        assert_eq!(fact.at, now);
        assert_eq!(fact.signal.oem_updated_at, Some(now));
        assert_eq!(fact.signal.retrieved_at, Some(now));
    }

    #[test]
    fn times_stored_far_ahead_are_brought_back_to_now() {
        let mut facts = VehicleFacts::default();
        let future = error_event("e1", "ERROR", 4_102_444_800_000);
        // As an older desk stored it: the claimed time as is.
        facts.merge(&future, ms(4_102_444_800_000));
        let now = ms(1_800_000_000_000);
        assert!(facts.believe_times(now));
        assert_eq!(facts.errors.values().next().map(|f| f.at), Some(now));
        assert!(!facts.believe_times(now), "nothing left to move");
    }

    #[test]
    fn a_probe_as_new_as_a_webhook_error_or_newer_wins_the_question() {
        let error = error_event("e1", "ERROR", 1_800_000_000_000);
        let mut facts = VehicleFacts::default();
        facts.merge(&error, ms(1_800_000_000_000));
        let mut fine = probe_without_key(ms(1_800_000_000_000));
        fine.observations[0].outcome = Ok(Answer::VirtualKey { is_paired: true });
        fine.observations[1].outcome = Ok(Answer::Data {
            body: serde_json::json!({"latitude": 1.0}),
        });
        facts.probed(&fine, ms(1_800_000_000_000));
        let report = facts.report("v1", None, None);
        assert!(
            report.observations.iter().all(|o| o.error().is_none()),
            "{:?}",
            report.observations
        );
    }

    #[test]
    fn a_resolution_after_a_probe_clears_the_error_the_probe_saw() {
        let mut facts = VehicleFacts::default();
        facts.probed(
            &probe_without_key(ms(1_800_000_000_000)),
            ms(1_800_000_000_000),
        );
        assert_eq!(facts.report("v1", None, None).observations.len(), 2);
        let resolved = error_event("r1", "RESOLVED", 1_800_000_060_000);
        assert!(facts.merge(&resolved, ms(1_800_000_060_000)));
        let report = facts.report("v1", None, None);
        assert!(
            report.observations.is_empty(),
            "the unpaired key and the refused location are both older than the resolution: {:?}",
            report.observations
        );
        // A permission granted again for the location says nothing of the odometer's.
        let permission = |probe: Probe, at: jiff::Timestamp| Observation {
            probe,
            endpoint: "GET /v3/vehicles/v1/signals".into(),
            at,
            meta: Meta::default(),
            outcome: Err(ApiError::Smartcar(Box::new(SmartcarError::new(
                403,
                crate::smartcar::ErrorType::Permission,
                None,
            )))),
        };
        let mut partial = VehicleFacts::default();
        let refused = ProbeReport {
            vehicle_id: "v1".into(),
            has_token: true,
            observations: vec![
                permission(Probe::Data(DataKind::Location), ms(1_800_000_000_000)),
                permission(Probe::Data(DataKind::Odometer), ms(1_800_000_000_000)),
            ],
            ..ProbeReport::default()
        };
        partial.probed(&refused, ms(1_800_000_000_000));
        partial.merge(
            &event(serde_json::json!({
                "eventId": "p1", "eventType": "VEHICLE_ERROR",
                "data": {"vehicle": {"id": "v1"}, "errors": [{"type": "PERMISSION", "code": null,
                         "state": "RESOLVED", "signals": ["Location.PreciseLocation"]}]},
                "meta": {"deliveredAt": 1_800_000_060_000_i64}
            })),
            ms(1_800_000_060_000),
        );
        let left: Vec<Probe> = partial
            .report("v1", None, None)
            .observations
            .iter()
            .map(|o| o.probe)
            .collect();
        assert_eq!(left, [Probe::Data(DataKind::Odometer)]);

        // A resolution older than the probe says nothing of what the probe saw after it.
        let mut later = VehicleFacts::default();
        later.merge(&resolved, ms(1_800_000_060_000));
        later.probed(
            &probe_without_key(ms(1_800_000_120_000)),
            ms(1_800_000_120_000),
        );
        assert_eq!(later.report("v1", None, None).observations.len(), 2);
    }
}
