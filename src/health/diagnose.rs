//! Turns one vehicle's probe report into findings and a status, under the OEM rules in force. Pure and cheap:
//! it runs for every probe result of a fleet.

use crate::smartcar::{
    Answer, ApiError, DataKind, ErrorCode, Observation, Probe, ProbeReport, SmartcarError,
};

mod classify;

use super::countdown::{Countdown, Phase};
use super::policy::{Coverage, Policies, Rule, RuleRemedyKind};
use super::remedy::{self, RemedyTarget};
use super::types::{
    Diagnosis, Evidence, Finding, FindingId, FindingKind, Needs, Remedy, Severity, Status,
};

/// A vehicle a run did not reach (deadline, interrupt): UNKNOWN, "not checked", and why.
pub fn not_checked(reason: &str, last_checked: Option<jiff::Timestamp>) -> Diagnosis {
    Diagnosis {
        status: Status::Unknown,
        findings: vec![Finding {
            id: FindingId::NotChecked.as_str().into(),
            severity: Severity::Info,
            title: format!("Not checked: {reason}"),
            rule: None,
            since: None,
            evidence: Vec::new(),
            remedy: remedy::nothing(
                "Check it again: `vtriage vehicle ID`, or `vtriage check` with a longer --timeout",
                "We are checking your car's connection and will get back to you shortly.",
                None,
            ),
        }],
        checked_at: last_checked,
    }
}

/// Diagnoses one vehicle at `now`. Findings come worst first, so `main_finding()` explains the status.
pub fn diagnose(
    report: &ProbeReport,
    policies: &Policies,
    needs: &Needs,
    now: jiff::Timestamp,
) -> Diagnosis {
    let checked_at = report.observations.iter().map(|o| o.at).max();
    if !report.has_token {
        let finding = Finding {
            id: FindingId::NoAccessToken.as_str().into(),
            severity: Severity::Info,
            title: "No access token for this user: the vehicle cannot be checked".into(),
            rule: None,
            since: None,
            evidence: Vec::new(),
            remedy: remedy::provide_access_token(),
        };
        return Diagnosis {
            status: Status::Unknown,
            findings: vec![finding],
            checked_at,
        };
    }
    if report.observations.is_empty() {
        return Diagnosis::unknown();
    }
    let vehicle = Vehicle::of(report);
    let cx = Cx {
        report,
        policies,
        needs,
        now,
        target: RemedyTarget {
            needs,
            vehicle_id: &report.vehicle_id,
            is_tesla: vehicle.is_tesla,
        },
        vehicle,
    };
    let mut d = Drafts::default();

    // Without a valid token every other answer is the same 401: the token comes first and alone.
    let mut auth = report.observations.iter().filter(|o| is_token_failure(o));
    if let Some(first) = auth.next() {
        let draft = if first.probe == Probe::Signals {
            // API v3 carries the app's token, proven good before a 401 reaches diagnosis: the
            // vehicle's connection itself no longer authorizes the app.
            d.add(
                FindingId::ConnectionRevoked,
                Severity::Blocked,
                first,
                || {
                    (
                        "Smartcar refused this vehicle's connection while the app's token works \
                     (AUTHENTICATION): the owner must reconnect the car"
                            .into(),
                        remedy::reauthenticate(cx.target, smartcar_error(first), &[]),
                    )
                },
            )
        } else {
            d.add(FindingId::AccessTokenExpired, Severity::Blocked, first, || {
                (
                    "Access token expired or invalid (AUTHENTICATION): nothing else can be checked until the \
                     backend refreshes it"
                        .into(),
                    remedy::refresh_access_token(smartcar_error(first)),
                )
            })
        };
        for o in auth {
            draft.push_evidence(o);
        }
        return d.finish(checked_at);
    }

    let mut missing: Vec<&'static str> = Vec::new();
    for o in &report.observations {
        if let Some(err) = o.error() {
            d.cap = cx.is_auxiliary(o).then_some(Severity::Warning);
            cx.classify(o, err, &mut d, &mut missing);
            d.cap = None;
        }
    }
    cx.rule_states(&mut d);
    cx.connectivity(&mut d);
    cx.granted_permissions(&mut d, &mut missing);
    if !missing.is_empty()
        && let Some(draft) = d.get_mut(FindingId::PermissionMissing)
    {
        draft.title = format!(
            "Permission not granted: {}; those requests fail",
            missing.join(", ")
        );
        draft.remedy = remedy::reauthenticate(cx.target, None, &missing);
    }
    cx.stale_data(&mut d);
    d.finish(checked_at)
}

impl Cx<'_> {
    /// A signal's own error (the request answered 200) on a question diagnosis asks only on the
    /// side: the car's online state, or the VIN when the app does not read it. It may warn, never
    /// block: the data the app needs answered, or failed on its own.
    fn is_auxiliary(&self, o: &Observation) -> bool {
        o.meta.status == 200
            && match o.probe {
                Probe::Connectivity => true,
                Probe::Data(DataKind::Vin) => !self.needs.data.contains(&DataKind::Vin),
                _ => false,
            }
    }
}

/// What is known about the car itself.
struct Vehicle<'a> {
    make: &'a str,
    model: &'a str,
    year: Option<u16>,
    is_tesla: bool,
}

impl<'a> Vehicle<'a> {
    fn of(report: &'a ProbeReport) -> Vehicle<'a> {
        match &report.attributes {
            Some(a) => Vehicle {
                make: &a.make,
                model: &a.model,
                year: Some(a.year),
                is_tesla: a.is_tesla(),
            },
            None => {
                let tesla = report
                    .observations
                    .iter()
                    .any(|o| is_tesla_probe(o.probe) && o.answer().is_some());
                Vehicle {
                    make: if tesla { "TESLA" } else { "" },
                    model: "",
                    year: None,
                    is_tesla: tesla,
                }
            }
        }
    }

    /// How a rule sees this vehicle; with unknown attributes a rule is assumed to apply.
    fn coverage<'r>(&self, rule: &'r Rule) -> Coverage<'r> {
        if self.make.is_empty() {
            Coverage::Covered
        } else {
            rule.coverage(self.make, self.model, self.year)
        }
    }

    /// "Tesla", "Ford": how the carmaker is named in titles.
    fn oem(&self) -> String {
        let mut chars = self.make.chars();
        match chars.next() {
            Some(first) => first
                .to_uppercase()
                .chain(chars.flat_map(char::to_lowercase))
                .collect(),
            None => "carmaker".into(),
        }
    }

    fn describe(&self) -> String {
        match self.year {
            Some(y) => format!("{} {} {y}", self.oem(), self.model),
            None => self.oem(),
        }
    }
}

/// A finding being assembled; evidence from several observations merges into one.
struct Draft<'a> {
    id: &'a str,
    severity: Severity,
    title: String,
    rule: Option<&'a str>,
    since: Option<String>,
    first_at: jiff::Timestamp,
    evidence: Vec<Evidence>,
    remedy: Remedy,
}

impl Draft<'_> {
    fn push_evidence(&mut self, o: &Observation) {
        self.first_at = self.first_at.min(o.at);
        self.evidence.push(Evidence::from_observation(o));
    }
}

#[derive(Default)]
struct Drafts<'a> {
    list: Vec<Draft<'a>>,
    /// The most a finding may weigh while the evidence being sorted is a signal diagnosis does
    /// not need (see [`Cx::is_auxiliary`]).
    cap: Option<Severity>,
}

impl<'a> Drafts<'a> {
    /// The built-in finding `id`; a rule's finding of the same slug is not it.
    fn get_mut(&mut self, id: FindingId) -> Option<&mut Draft<'a>> {
        self.list
            .iter_mut()
            .find(|d| d.rule.is_none() && d.id == id.as_str())
    }

    /// Adds evidence to the built-in finding `id`, creating it (title and remedy from `make`) the first time.
    fn add(
        &mut self,
        id: FindingId,
        severity: Severity,
        o: &Observation,
        make: impl FnOnce() -> (String, Remedy),
    ) -> &mut Draft<'a> {
        self.add_slug(id.as_str(), severity, o, make)
    }

    /// Adds evidence to the finding of slug `id` (a rule's, or a built-in one), creating it the first
    /// time. Findings of one slug merge, so a rule and the error alone report one finding.
    fn add_slug(
        &mut self,
        id: &'a str,
        severity: Severity,
        o: &Observation,
        make: impl FnOnce() -> (String, Remedy),
    ) -> &mut Draft<'a> {
        let severity = self.cap.map_or(severity, |cap| severity.min(cap));
        let i = match self.list.iter().position(|d| d.id == id) {
            Some(i) => i,
            None => {
                let (title, remedy) = make();
                self.list.push(Draft {
                    id,
                    severity,
                    title,
                    rule: None,
                    since: None,
                    first_at: o.at,
                    evidence: Vec::with_capacity(2),
                    remedy,
                });
                self.list.len() - 1
            }
        };
        let d = &mut self.list[i];
        d.push_evidence(o);
        d.severity = d.severity.max(severity);
        d
    }

    fn finish(self, checked_at: Option<jiff::Timestamp>) -> Diagnosis {
        let mut findings: Vec<Finding> = self
            .list
            .into_iter()
            .map(|d| Finding {
                id: d.id.to_string(),
                severity: d.severity,
                title: d.title,
                since: d.since.or_else(|| Some(format_time(d.first_at))),
                rule: d.rule.map(str::to_string),
                evidence: d.evidence,
                remedy: d.remedy,
            })
            .collect();
        // Stable: equal severities keep the order they were found in.
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let status = match findings.first() {
            // Nothing worse was found, but some question got no answer at all: not healthy, unknown.
            Some(f)
                if f.severity == Severity::Info
                    && findings.iter().any(|f| {
                        matches!(
                            f.kind(),
                            FindingKind::Builtin(
                                FindingId::Redirected
                                    | FindingId::RequestNotSent
                                    | FindingId::AppTokenUnsettled
                            )
                        )
                    }) =>
            {
                Status::Unknown
            }
            first => first.map_or(Status::Healthy, |f| Status::from_severity(f.severity)),
        };
        Diagnosis {
            status,
            findings,
            checked_at,
        }
    }
}

/// `2026-11-27 19:20 UTC`.
fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// A 401 (whatever its body) or an `AUTHENTICATION` error: the access token was refused.
fn is_token_failure(o: &Observation) -> bool {
    o.is_token_rejected()
}

fn smartcar_error(o: &Observation) -> Option<&SmartcarError> {
    o.error().and_then(ApiError::smartcar)
}

fn is_tesla_probe(p: Probe) -> bool {
    matches!(
        p,
        Probe::VirtualKey | Probe::TeslaUserAccess | Probe::TeslaAttributes
    )
}

/// The Smartcar permission a probe needs, when one is documented.
fn probe_permission(p: Probe) -> Option<&'static str> {
    match p {
        Probe::Data(k) => Some(k.permission()),
        Probe::Attributes | Probe::VirtualKey | Probe::Connectivity => Some("read_vehicle_info"),
        Probe::TeslaAttributes => Some("read_extended_vehicle_info"),
        Probe::Permissions | Probe::TeslaUserAccess | Probe::Signals => None,
    }
}

fn request_ids<'e>(e: &'e SmartcarError, o: &'e Observation) -> Vec<&'e str> {
    e.request_id
        .as_deref()
        .or(o.meta.request_id.as_deref())
        .into_iter()
        .collect()
}

fn vehicle_state_words(code: Option<&ErrorCode>) -> &'static str {
    match code {
        Some(ErrorCode::Asleep) => "is asleep",
        Some(ErrorCode::Unreachable) => "is unreachable (no mobile connection)",
        Some(ErrorCode::RemoteAccessDisabled) => "has remote access disabled",
        Some(ErrorCode::VehicleOfflineForService) => "is offline for service",
        Some(ErrorCode::LowBattery) => "has a low 12 V battery",
        Some(ErrorCode::InMotion) => "is in motion",
        Some(ErrorCode::IgnitionOn) => "has its ignition on",
        _ => "is in a state that refuses requests",
    }
}

fn rule_severity(rule: &Rule) -> Severity {
    match rule.remedy.kind {
        RuleRemedyKind::AddVirtualKey => Severity::Blocked,
        RuleRemedyKind::Reauthenticate => Severity::Degraded,
    }
}

/// Everything one diagnosis reads.
struct Cx<'a> {
    report: &'a ProbeReport,
    policies: &'a Policies,
    needs: &'a Needs,
    now: jiff::Timestamp,
    target: RemedyTarget<'a>,
    vehicle: Vehicle<'a>,
}

impl<'a> Cx<'a> {
    fn granted(&self) -> Option<&'a [String]> {
        match self.report.get(Probe::Permissions)?.answer()? {
            Answer::Permissions { permissions } => Some(permissions),
            _ => None,
        }
    }

    fn at_home(&self) -> Option<bool> {
        match self.report.get(Probe::TeslaAttributes)?.answer()? {
            Answer::TeslaAttributes { at_home } => *at_home,
            _ => None,
        }
    }

    fn needs_location(&self) -> bool {
        self.needs.at_home_only || self.needs.data.contains(&DataKind::Location)
    }

    /// Adds the finding of `rule` for a vehicle it caught, with the remedy the rule calls for.
    /// `err` is the API error that shows it, `None` when only a state probe does.
    fn rule_finding(
        &self,
        rule: &'a Rule,
        o: &Observation,
        err: Option<&SmartcarError>,
        d: &mut Drafts<'a>,
    ) {
        let countdown = Countdown::of(rule, self.now);
        let upcoming = err.is_none() && countdown.phase != Phase::InForce;
        let at_home_only = rule.remedy.at_home_alternative && self.needs.at_home_only;
        let severity = if at_home_only {
            Severity::Info
        } else if upcoming {
            Severity::Warning
        } else {
            rule_severity(rule)
        };
        let draft = d.add_slug(&rule.finding, severity, o, || {
            if at_home_only {
                let value = self.at_home().map_or("unknown".to_string(), |v| v.to_string());
                let remedy = remedy::nothing(
                    &format!("No re-authentication needed: this app reads atHome instead (atHome = {value})"),
                    "Nothing is needed from you: we only check whether your car is at home.",
                    rule.docs.clone(),
                );
                (format!("{}: not granted, but this app only needs atHome (atHome = {value})", rule.name), remedy)
            } else {
                let remedy = match rule.remedy.kind {
                    RuleRemedyKind::AddVirtualKey => remedy::add_virtual_key(self.target, err),
                    RuleRemedyKind::Reauthenticate => {
                        let p = rule.remedy.permission.as_deref().unwrap_or_default();
                        let missing: &[&str] = if p.is_empty() { &[] } else { &[p] };
                        remedy::reauthenticate(self.target, err, missing)
                    }
                };
                let what = match (rule.remedy.kind, rule.remedy.permission.as_deref()) {
                    (RuleRemedyKind::AddVirtualKey, _) => "virtual key not paired, no data flows".to_string(),
                    (RuleRemedyKind::Reauthenticate, Some(p)) => match rule.symptom.tesla_permission.as_deref() {
                        Some(tp) => format!("{tp} not granted on the {} side, {p} fails", self.vehicle.oem()),
                        None => format!("{p} not granted on the {} side", self.vehicle.oem()),
                    },
                    (RuleRemedyKind::Reauthenticate, None) => "not granted on the OEM side".to_string(),
                };
                let (sep, when) = if upcoming { ("; ", countdown.sentence()) } else { (" (", countdown.sentence() + ")") };
                (format!("{}: {what}{sep}{when}", rule.name), remedy)
            }
        });
        if draft.rule.is_none() {
            draft.rule = Some(&rule.id);
            draft.since = Some(rule.in_force.label());
        }
        // A data error is the rule biting now, even when a state probe alone made it look upcoming.
        if err.is_some() && !at_home_only {
            draft.severity = draft.severity.max(rule_severity(rule));
        }
    }

    /// The rule whose error symptom an error on a data path is, if the vehicle is subject to it.
    fn rule_for_error(&self, o: &Observation, e: &SmartcarError) -> Option<&'a Rule> {
        let Probe::Data(kind) = o.probe else {
            return None;
        };
        let mut label = None;
        self.policies.rules.iter().find(|rule| {
            if rule.symptom.error.is_none() || !rule.matches_data(kind) {
                return false;
            }
            let label = label.get_or_insert_with(|| e.type_code());
            if !rule.matches_error(label) || self.vehicle.coverage(rule) == Coverage::NotCovered {
                return false;
            }
            // A Smartcar-side permission that was never granted is the simpler explanation.
            match (rule.remedy.permission.as_deref(), self.granted()) {
                (Some(p), Some(granted)) => granted.iter().any(|g| g == p),
                _ => true,
            }
        })
    }

    /// Rules seen in state probes: the virtual key not paired, a Tesla scope missing, exempt vehicles.
    fn rule_states(&self, d: &mut Drafts<'a>) {
        let paired = match self.report.get(Probe::VirtualKey).map(|o| (o, o.answer())) {
            Some((o, Some(Answer::VirtualKey { is_paired }))) => Some((o, *is_paired)),
            _ => None,
        };
        let access = match self
            .report
            .get(Probe::TeslaUserAccess)
            .map(|o| (o, o.answer()))
        {
            Some((o, Some(Answer::TeslaUserAccess(a)))) => Some((o, a)),
            _ => None,
        };
        for rule in &self.policies.rules {
            let s = &rule.symptom;
            let coverage = self.vehicle.coverage(rule);
            if coverage == Coverage::NotCovered {
                continue;
            }
            if let Coverage::Exempt(exemption) = coverage {
                let Some(id) = rule.exempt_finding.as_deref() else {
                    continue;
                };
                let shown_by = match (s.virtual_key_paired, paired) {
                    (Some(want), Some((o, is))) if want == is => Some(o),
                    _ => None,
                };
                if let Some(o) = shown_by {
                    let draft = d.add_slug(id, Severity::Info, o, || {
                        (
                            format!(
                                "{} is exempt from \"{}\" ({}): not required here, but data may lag",
                                self.vehicle.describe(),
                                rule.name,
                                exemption.describe()
                            ),
                            remedy::nothing(
                                "Nothing to fix; if the customer reports old data, check the data age",
                                "Your car is not affected by this change. Its data may take a few minutes to update.",
                                rule.docs.clone(),
                            ),
                        )
                    });
                    draft.rule = Some(&rule.id);
                    draft.since = Some(rule.in_force.label());
                }
                continue;
            }
            if let (Some(want), Some((o, is))) = (s.virtual_key_paired, paired)
                && want == is
            {
                self.rule_finding(rule, o, None, d);
            }
            if let (Some(scope), Some((o, a))) = (s.tesla_permission.as_deref(), access)
                && self.needs_location_scope(scope)
                // `permissions: null` says nothing either way.
                && a.permissions.as_deref().is_some_and(|p| !p.iter().any(|g| g == scope))
            {
                self.rule_finding(rule, o, None, d);
            }
        }
    }

    /// The vehicle says it is asleep or offline and no data could be read: that is why, even when
    /// the data errors do not say so themselves.
    fn connectivity(&self, d: &mut Drafts<'a>) {
        let Some(o) = self.report.get(Probe::Connectivity) else {
            return;
        };
        let Some(Answer::Connectivity { online, asleep }) = o.answer() else {
            return;
        };
        let words = match (online, asleep) {
            (Some(false), _) => "is offline (no mobile connection)",
            (_, Some(true)) => "is asleep",
            _ => return,
        };
        let data_read = self
            .report
            .observations
            .iter()
            .any(|o| matches!(o.probe, Probe::Data(_)) && o.answer().is_some());
        if data_read || d.get_mut(FindingId::VehicleState).is_some() {
            return;
        }
        d.add(FindingId::VehicleState, Severity::Degraded, o, || {
            (
                format!("The vehicle {words}, as it reports itself: data requests fail"),
                remedy::retry_later(
                    None,
                    None,
                    "the car is not answering now; it usually recovers once driven or woken in the OEM app",
                ),
            )
        });
    }

    /// Only the location scope is tied to this app's needs; other Tesla scopes always matter.
    fn needs_location_scope(&self, scope: &str) -> bool {
        scope != "vehicle_location" || self.needs_location()
    }

    /// Needed data whose permission `/permissions` does not list, when its data was not read fine anyway.
    fn granted_permissions(&self, d: &mut Drafts<'a>, missing: &mut Vec<&'static str>) {
        let Some(granted) = self.granted() else {
            return;
        };
        let Some(o) = self.report.get(Probe::Permissions) else {
            return;
        };
        for kind in self.needs.data_to_probe() {
            let p = kind.permission();
            let data_ok = self
                .report
                .get(Probe::Data(kind))
                .is_some_and(|o| o.answer().is_some());
            if data_ok || granted.iter().any(|g| g == p) || missing.contains(&p) {
                continue;
            }
            missing.push(p);
            d.add(FindingId::PermissionMissing, Severity::Degraded, o, || {
                (
                    String::new(),
                    remedy::reauthenticate(self.target, None, &[]),
                )
            });
        }
    }

    /// The newest data the car reported is older than the app tolerates.
    fn stale_data(&self, d: &mut Drafts<'a>) {
        let newest = self
            .report
            .observations
            .iter()
            .filter(|o| matches!(o.probe, Probe::Data(_)) && o.answer().is_some())
            .filter_map(|o| o.meta.data_age.map(|age| (age, o)))
            .max_by_key(|(age, _)| *age);
        let Some((age, o)) = newest else { return };
        let age_s = self.now.as_second().saturating_sub(age.as_second());
        if age_s <= i64::try_from(self.needs.stale_after_s).unwrap_or(i64::MAX) {
            return;
        }
        let draft = d.add(FindingId::StaleData, Severity::Warning, o, || {
            (
                format!(
                    "Newest data is {} old (sc-data-age {}): the car has not reported since",
                    human_age(age_s),
                    format_time(age)
                ),
                remedy::owner_action_at_oem(
                    None,
                    "Ask the owner to open the carmaker's app or drive the car so it reports again",
                    "Your car has not sent fresh data for a while. Opening the manufacturer's app or driving the car \
                     usually wakes it up; we will pick up the new data automatically.",
                ),
            )
        });
        draft.since = Some(format_time(age));
    }
}

/// `3d 4h`, `5h 10m`, `12m`.
fn human_age(s: i64) -> String {
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    }
}
