//! What one probe asks of a vehicle, in at most two rounds: the v2.0 plan and the v3 plan (one
//! signals request) behind one trait. Pure: decides requests, sends none.

use crate::smartcar::vin::DecodedVin;
use crate::smartcar::{
    Answer, ApiError, DataKind, ErrorCode, ErrorType, Observation, Probe, VehicleAttributes,
};

/// World manufacturer identifiers (the VIN's first three characters) Tesla builds under.
pub const TESLA_WMIS: [&str; 5] = ["5YJ", "7SA", "7G2", "LRW", "XP7"];

/// `Some(true)` for a Tesla VIN, `Some(false)` for a well-formed VIN of another maker, `None` when
/// the text is not a VIN.
pub fn is_tesla_vin(vin: &str) -> Option<bool> {
    let vin = vin.trim();
    let well_formed = vin.len() == 17
        && vin.bytes().all(|b| {
            b.is_ascii_alphanumeric() && !matches!(b.to_ascii_uppercase(), b'I' | b'O' | b'Q')
        });
    if !well_formed {
        return None;
    }
    let wmi = vin.get(..3)?.to_ascii_uppercase();
    Some(TESLA_WMIS.contains(&wmi.as_str()))
}

/// How near a vehicle is to a VIN being looked up, nearest first: what its listing or an earlier
/// answer says of make and year against what the VIN itself says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VinFit {
    /// Make and model year both fit.
    MakeAndYear,
    /// The make fits; the year is not known (or the VIN carries none).
    MakeOnly,
    /// The make is not known (or the VIN's manufacturer code is not in the table), and the year
    /// fits or is unknown.
    Unknown,
}

/// Where a vehicle stands for a VIN lookup; `None` when what is known of it rules it out (a
/// different make or year, or a different VIN already read). A vehicle whose VIN is this one
/// fits best.
pub fn vin_fit(vin: &DecodedVin, known: &KnownVehicle) -> Option<VinFit> {
    if let Some(read) = &known.vin {
        return read
            .trim()
            .eq_ignore_ascii_case(&vin.vin)
            .then_some(VinFit::MakeAndYear);
    }
    let make = known
        .attributes
        .as_ref()
        .filter(|a| !a.make.trim().is_empty())
        .and_then(|a| vin.fits_make(&a.make));
    // Year 0 is how a listing without a year reads.
    let year = known
        .attributes
        .as_ref()
        .filter(|a| a.year != 0)
        .and_then(|a| vin.fits_year(a.year));
    match (make, year) {
        (Some(false), _) | (_, Some(false)) => None,
        (Some(true), Some(true)) => Some(VinFit::MakeAndYear),
        (Some(true), None) => Some(VinFit::MakeOnly),
        (None, _) => Some(VinFit::Unknown),
    }
}

/// Where a candidate of a VIN lookup is read: model mismatches last (positions 4–8 named
/// another model), then by [`VinFit`], then model matches before models not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VinRank {
    other_model: bool,
    fit: VinFit,
    model_unknown: bool,
}

/// The rank of a vehicle for a VIN lookup; `None` when what is known rules it out (see
/// [`vin_fit`]). Sorting candidates by it reads the likeliest first.
pub fn vin_rank(vin: &DecodedVin, known: &KnownVehicle) -> Option<VinRank> {
    let fit = vin_fit(vin, known)?;
    let model = known
        .attributes
        .as_ref()
        .and_then(|a| vin.fits_model(&a.model));
    Some(VinRank {
        other_model: model == Some(false),
        fit,
        model_unknown: model.is_none(),
    })
}

/// What is known about a vehicle before (or after) a round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownVehicle {
    pub attributes: Option<VehicleAttributes>,
    pub vin: Option<String>,
}

impl KnownVehicle {
    /// The make, from attributes, else from the VIN's manufacturer code.
    pub fn is_tesla(&self) -> Option<bool> {
        self.attributes
            .as_ref()
            .map(VehicleAttributes::is_tesla)
            .or_else(|| self.vin.as_deref().and_then(is_tesla_vin))
    }

    /// Adds what a round observed: attributes, a VIN read as data.
    pub fn learn(&mut self, observations: &[Observation]) {
        for o in observations {
            match o.answer() {
                Some(Answer::Attributes(a)) => self.attributes = Some(a.clone()),
                Some(Answer::Data { body }) if o.probe == Probe::Data(DataKind::Vin) => {
                    if let Some(vin) = body.get("vin").and_then(|v| v.as_str()) {
                        self.vin = Some(vin.to_string());
                    }
                }
                _ => {}
            }
        }
    }
}

/// One HTTP request of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Get(Probe),
    /// `POST /vehicles/{id}/batch`: one request for the app budget, one call per item for the vehicle.
    Batch(Vec<DataKind>),
    /// API v3 `GET /vehicles/{id}/signals` with `sc-user-id`: every signal in one request, one call
    /// for the vehicle.
    Signals,
}

impl Step {
    /// Calls the vehicle's own limit counts (Smartcar counts each batch item).
    pub fn vehicle_calls(&self) -> u32 {
        match self {
            Step::Get(_) | Step::Signals => 1,
            Step::Batch(kinds) => kinds.len().try_into().unwrap_or(u32::MAX),
        }
    }
}

/// Requests and vehicle calls some steps cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCost {
    pub requests: u32,
    pub vehicle_calls: u32,
}

impl StepCost {
    pub fn of(steps: &[Step]) -> StepCost {
        StepCost {
            requests: steps.len().try_into().unwrap_or(u32::MAX),
            vehicle_calls: steps.iter().map(Step::vehicle_calls).sum(),
        }
    }

    fn plus(self, other: StepCost) -> StepCost {
        StepCost {
            requests: self.requests + other.requests,
            vehicle_calls: self.vehicle_calls + other.vehicle_calls,
        }
    }
}

/// The questions a probe asks, in at most two sequential rounds; the steps of a round go in parallel.
pub trait ProbePlan: Send + Sync {
    /// Round 1, from what is known before the probe.
    fn first_round(&self, known: &KnownVehicle) -> Vec<Step>;

    /// Round 2: what round 1 revealed makes worth asking (`before` is what was known before round 1,
    /// `after` includes what round 1 taught). Empty when there is nothing more to ask.
    fn second_round(
        &self,
        before: &KnownVehicle,
        after: &KnownVehicle,
        first: &[Observation],
    ) -> Vec<Step>;

    /// What a signals step reads (data kinds, `atHome`); `None` for a plan without one.
    fn signal_questions(&self) -> Option<(&[DataKind], bool)> {
        None
    }

    /// The most a probe can cost, for per-vehicle limits and sweep estimates.
    fn worst_case(&self, known: &KnownVehicle) -> StepCost {
        let first = StepCost::of(&self.first_round(known));
        if known.is_tesla().is_some() {
            return first;
        }
        let second = [true, false]
            .into_iter()
            .map(|tesla| {
                let mut after = known.clone();
                after.vin = Some(
                    if tesla {
                        "5YJ00000000000000"
                    } else {
                        "1FT00000000000000"
                    }
                    .into(),
                );
                StepCost::of(&self.second_round(known, &after, &[]))
            })
            .max_by_key(|c| (c.requests, c.vehicle_calls))
            .unwrap_or_default();
        first.plus(second)
    }
}

/// The v2.0 REST plan: attributes once, permissions, one data batch, and the Tesla endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Plan {
    /// What the data batch reads.
    pub data: Vec<DataKind>,
    /// Also read `/tesla/attributes` (for `atHome`).
    pub tesla_at_home: bool,
}

impl V2Plan {
    fn tesla_steps(&self) -> Vec<Step> {
        let mut steps = vec![
            Step::Get(Probe::VirtualKey),
            Step::Get(Probe::TeslaUserAccess),
        ];
        if self.tesla_at_home {
            steps.push(Step::Get(Probe::TeslaAttributes));
        }
        steps
    }
}

/// Whether an observation says the token itself was rejected.
pub fn token_rejected(o: &Observation) -> bool {
    o.error()
        .and_then(ApiError::smartcar)
        .is_some_and(|e| e.status == 401 || e.error_type == ErrorType::Authentication)
}

/// Whether an observation says the vehicle must not be called for a while.
pub fn vehicle_rate_limited(o: &Observation) -> bool {
    o.error()
        .and_then(ApiError::smartcar)
        .is_some_and(|e| e.is(&ErrorType::RateLimit, Some(&ErrorCode::Vehicle)))
}

impl ProbePlan for V2Plan {
    fn first_round(&self, known: &KnownVehicle) -> Vec<Step> {
        let mut steps = Vec::new();
        if known.attributes.is_none() {
            steps.push(Step::Get(Probe::Attributes));
        }
        steps.push(Step::Get(Probe::Permissions));
        // The VIN rides along in the batch once (no extra request): agents search by it, and its
        // manufacturer code tells the make on later probes.
        let mut data = self.data.clone();
        if known.vin.is_none() && !data.contains(&DataKind::Vin) {
            data.push(DataKind::Vin);
        }
        steps.push(Step::Batch(data));
        if known.is_tesla() == Some(true) {
            steps.extend(self.tesla_steps());
        }
        steps
    }

    fn second_round(
        &self,
        before: &KnownVehicle,
        after: &KnownVehicle,
        first: &[Observation],
    ) -> Vec<Step> {
        // Round 1 already asked the Tesla questions when the make was known.
        if before.is_tesla().is_some() {
            return Vec::new();
        }
        // A rejected token or a vehicle asking us to back off: more calls cannot help.
        if first
            .iter()
            .any(|o| token_rejected(o) || vehicle_rate_limited(o))
        {
            return Vec::new();
        }
        let tesla = after.is_tesla().or_else(|| {
            // Attributes failed, but a data answer only Teslas give says it all.
            first
                .iter()
                .filter_map(Observation::error)
                .filter_map(ApiError::smartcar)
                .any(|e| e.code == Some(ErrorCode::VirtualKeyRequired))
                .then_some(true)
        });
        if tesla == Some(true) {
            self.tesla_steps()
        } else {
            Vec::new()
        }
    }
}

/// The v3 plan: the listing already told make, model, year and the Smartcar-side permissions, so a
/// diagnosis is the signals list alone, one request in one round trip, for every make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Plan {
    /// Data signals the app depends on (what the v2.0 batch would read).
    pub data: Vec<DataKind>,
    /// Also read `location-isathome` (for `atHome`).
    pub tesla_at_home: bool,
}

impl ProbePlan for V3Plan {
    fn first_round(&self, _known: &KnownVehicle) -> Vec<Step> {
        vec![Step::Signals]
    }

    fn second_round(&self, _: &KnownVehicle, _: &KnownVehicle, _: &[Observation]) -> Vec<Step> {
        Vec::new()
    }

    fn worst_case(&self, known: &KnownVehicle) -> StepCost {
        StepCost::of(&self.first_round(known))
    }

    fn signal_questions(&self) -> Option<(&[DataKind], bool)> {
        Some((&self.data, self.tesla_at_home))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smartcar::{Meta, SmartcarError};

    fn plan() -> V2Plan {
        V2Plan {
            data: vec![DataKind::Odometer, DataKind::Location],
            tesla_at_home: false,
        }
    }

    fn attrs(make: &str) -> VehicleAttributes {
        VehicleAttributes {
            id: "v1".into(),
            make: make.into(),
            model: "Model 3".into(),
            year: 2022,
        }
    }

    fn obs(probe: Probe, outcome: Result<Answer, ApiError>) -> Observation {
        Observation {
            probe,
            endpoint: String::new(),
            at: jiff::Timestamp::UNIX_EPOCH,
            meta: Meta::default(),
            outcome,
        }
    }

    fn error(status: u16, t: ErrorType, code: Option<ErrorCode>) -> ApiError {
        ApiError::Smartcar(Box::new(SmartcarError::new(status, t, code)))
    }

    #[test]
    fn tesla_vins_are_recognised_by_manufacturer_code() {
        assert_eq!(is_tesla_vin("5YJ3E1EA7KF317000"), Some(true));
        assert_eq!(is_tesla_vin("7SAYGDEE1PA000001"), Some(true));
        assert_eq!(is_tesla_vin("lrw3e7fa5mc000001"), Some(true));
        assert_eq!(is_tesla_vin("1FTFW1E50PFA00001"), Some(false));
        assert_eq!(is_tesla_vin("5YJ3"), None);
        assert_eq!(is_tesla_vin("5YJ3E1EA7KF31700O"), None);
    }

    #[test]
    fn vin_lookup_ranks_make_and_year_then_make_then_unknown_and_rules_out_the_rest() {
        let vin = crate::smartcar::vin::decode("5YJ3E1EA7KF317000", 2025).expect("a VIN");
        let with = |make: &str, year: u16| KnownVehicle {
            attributes: Some(VehicleAttributes {
                year,
                ..attrs(make)
            }),
            vin: None,
        };
        assert_eq!(
            vin_fit(&vin, &with("TESLA", 2019)),
            Some(VinFit::MakeAndYear)
        );
        assert_eq!(vin_fit(&vin, &with("Tesla", 0)), Some(VinFit::MakeOnly));
        assert_eq!(
            vin_fit(&vin, &KnownVehicle::default()),
            Some(VinFit::Unknown)
        );
        assert_eq!(vin_fit(&vin, &with("TESLA", 2022)), None);
        assert_eq!(vin_fit(&vin, &with("FORD", 2019)), None);
        let read = |v: &str| KnownVehicle {
            attributes: None,
            vin: Some(v.into()),
        };
        assert_eq!(
            vin_fit(&vin, &read("5yj3e1ea7kf317000")),
            Some(VinFit::MakeAndYear)
        );
        assert_eq!(vin_fit(&vin, &read("5YJ3E1EA7KF317001")), None);
    }

    #[test]
    fn unknown_make_asks_attributes_permissions_and_one_batch() {
        let steps = plan().first_round(&KnownVehicle::default());
        assert_eq!(
            steps,
            vec![
                Step::Get(Probe::Attributes),
                Step::Get(Probe::Permissions),
                Step::Batch(vec![DataKind::Odometer, DataKind::Location, DataKind::Vin]),
            ]
        );
        assert_eq!(
            StepCost::of(&steps),
            StepCost {
                requests: 3,
                vehicle_calls: 5
            }
        );
    }

    #[test]
    fn tesla_found_in_round_one_gets_the_tesla_endpoints_in_round_two() {
        let before = KnownVehicle::default();
        let first = vec![obs(
            Probe::Attributes,
            Ok(Answer::Attributes(attrs("TESLA"))),
        )];
        let mut after = before.clone();
        after.learn(&first);
        assert_eq!(
            plan().second_round(&before, &after, &first),
            vec![
                Step::Get(Probe::VirtualKey),
                Step::Get(Probe::TeslaUserAccess)
            ]
        );
    }

    #[test]
    fn non_tesla_needs_no_second_round() {
        let before = KnownVehicle::default();
        let first = vec![obs(
            Probe::Attributes,
            Ok(Answer::Attributes(attrs("FORD"))),
        )];
        let mut after = before.clone();
        after.learn(&first);
        assert!(plan().second_round(&before, &after, &first).is_empty());
    }

    #[test]
    fn known_tesla_asks_everything_in_one_round() {
        let known = KnownVehicle {
            attributes: Some(attrs("TESLA")),
            vin: None,
        };
        let p = V2Plan {
            tesla_at_home: true,
            ..plan()
        };
        let steps = p.first_round(&known);
        assert_eq!(steps.len(), 5);
        assert!(!steps.contains(&Step::Get(Probe::Attributes)));
        assert!(steps.contains(&Step::Get(Probe::TeslaAttributes)));
        assert!(p.second_round(&known, &known, &[]).is_empty());
    }

    #[test]
    fn tesla_vin_puts_tesla_endpoints_in_round_one_but_still_reads_attributes() {
        let known = KnownVehicle {
            attributes: None,
            vin: Some("5YJ3E1EA7KF317000".into()),
        };
        let steps = plan().first_round(&known);
        assert!(steps.contains(&Step::Get(Probe::Attributes)));
        assert!(steps.contains(&Step::Get(Probe::VirtualKey)));
        assert!(plan().second_round(&known, &known, &[]).is_empty());
    }

    #[test]
    fn rejected_token_skips_round_two() {
        let before = KnownVehicle::default();
        let first = vec![
            obs(
                Probe::Attributes,
                Err(error(401, ErrorType::Authentication, None)),
            ),
            obs(
                Probe::Data(DataKind::Odometer),
                Err(error(
                    400,
                    ErrorType::ConnectedServicesAccount,
                    Some(ErrorCode::VirtualKeyRequired),
                )),
            ),
        ];
        assert!(plan().second_round(&before, &before, &first).is_empty());
    }

    #[test]
    fn virtual_key_error_reveals_a_tesla_when_attributes_failed() {
        let before = KnownVehicle::default();
        let first = vec![
            obs(
                Probe::Attributes,
                Err(error(500, ErrorType::Server, Some(ErrorCode::Internal))),
            ),
            obs(
                Probe::Data(DataKind::Odometer),
                Err(error(
                    400,
                    ErrorType::ConnectedServicesAccount,
                    Some(ErrorCode::VirtualKeyRequired),
                )),
            ),
        ];
        assert_eq!(plan().second_round(&before, &before, &first).len(), 2);
    }

    #[test]
    fn worst_case_of_an_unknown_make_includes_the_tesla_round() {
        let p = V2Plan {
            tesla_at_home: true,
            ..plan()
        };
        assert_eq!(
            p.worst_case(&KnownVehicle::default()),
            StepCost {
                requests: 6,
                vehicle_calls: 8
            }
        );
        let ford = KnownVehicle {
            attributes: Some(attrs("FORD")),
            vin: None,
        };
        assert_eq!(
            p.worst_case(&ford),
            StepCost {
                requests: 2,
                vehicle_calls: 4
            }
        );
    }

    #[test]
    fn v3_asks_one_signals_request_in_one_round_for_every_make() {
        let p = V3Plan {
            data: vec![DataKind::Odometer, DataKind::Location],
            tesla_at_home: true,
        };
        for known in [
            KnownVehicle::default(),
            KnownVehicle {
                attributes: Some(attrs("TESLA")),
                vin: None,
            },
            KnownVehicle {
                attributes: Some(attrs("FORD")),
                vin: None,
            },
        ] {
            assert_eq!(p.first_round(&known), vec![Step::Signals]);
            assert!(p.second_round(&known, &known, &[]).is_empty());
            assert_eq!(
                p.worst_case(&known),
                StepCost {
                    requests: 1,
                    vehicle_calls: 1
                }
            );
        }
    }
}
