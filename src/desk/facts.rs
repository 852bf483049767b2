//! What the desk knows about one vehicle (webhook errors and signals, the last probe), how a new
//! delivery merges in whatever order it arrives, and the probe report diagnosis reads. Pure: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::smartcar::v3::Signal;
use crate::smartcar::{
    Answer, ApiError, DataKind, Meta, Observation, Probe, ProbeReport, SmartcarError,
    TeslaUserAccess, VehicleAttributes,
};

use super::webhook::{ErrorState, VehicleEvent};

/// The newest state of one reported error (keyed by `TYPE:CODE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFact {
    pub state: ErrorState,
    pub at: jiff::Timestamp,
    pub error: SmartcarError,
    pub signals: Vec<String>,
}

/// The newest value of one signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalFact {
    pub at: jiff::Timestamp,
    pub signal: Signal,
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
    /// Merges one event observed at `at`. Each error and each signal keeps whichever report is
    /// newest, so a delayed delivery never overwrites a later one; on a tie the earlier arrival
    /// stays, so a retried delivery changes nothing. Returns whether anything changed.
    pub fn merge(&mut self, event: &VehicleEvent, at: jiff::Timestamp) -> bool {
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
                    },
                );
                changed = true;
            }
        }
        for signal in &event.signals {
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
                        signal: signal.clone(),
                    },
                );
                changed = true;
            }
        }
        changed
    }

    /// Errors still failing.
    pub fn active_errors(&self) -> impl Iterator<Item = (&String, &ErrorFact)> {
        self.errors.iter().filter(|(_, f)| !f.state.is_resolved())
    }

    /// The report diagnosis reads: the last probe's observations, each replaced by a webhook's
    /// account of the same question when that is newer. Resolved errors add nothing.
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
        let mut attributes = attributes;
        if let Some(probe) = &self.probe {
            if attributes.is_none() {
                attributes = probe.attributes.clone();
            }
            for o in &probe.observations {
                put(o.clone());
            }
        }
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
                endpoint: format!("webhook VEHICLE_ERROR {}", fact.error.type_code()),
                at: fact.at,
                meta: Meta {
                    status: fact.error.status,
                    ..Meta::default()
                },
                outcome: Err(ApiError::Smartcar(Box::new(fact.error.clone()))),
            });
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
}
