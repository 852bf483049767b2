//! The Tesla virtual key's state for one vehicle, from the pairing answer, the findings and the rules'
//! exemptions: the views show it, diagnosis owns what it means. Pure.

use crate::smartcar::VehicleAttributes;

use super::policy::{Coverage, Policies, RuleRemedyKind};
use super::types::{FindingId, FindingKind};

/// The Tesla virtual key, as far as is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtualKey {
    Paired,
    Missing,
    /// Model S/X of model year 2020 and earlier: no key needed.
    Exempt,
    NotTesla,
    Unknown,
}

/// The key's state. `paired` is the pairing answer (v2.0 `/tesla/virtual_key` or v3
/// `connectivitystatus-isdigitalkeypaired`); `has_finding` tells whether the diagnosis holds a
/// finding. Rule finding ids are read from the rules themselves, so a policies file that renames
/// them still gives the right state, and one that names a rule's finding like a built-in one is
/// not mistaken for it.
pub fn virtual_key(
    attributes: Option<&VehicleAttributes>,
    paired: Option<bool>,
    has_finding: impl Fn(FindingKind<'_>) -> bool,
    policies: &Policies,
) -> VirtualKey {
    let key_rules = || {
        policies
            .rules
            .iter()
            .filter(|rule| rule.symptom.virtual_key_paired.is_some())
    };
    let exempt_by_rule = attributes.is_some_and(|a| {
        key_rules().any(|rule| {
            matches!(
                rule.coverage(&a.make, &a.model, Some(a.year)),
                Coverage::Exempt(_)
            )
        })
    });
    let exempt_found = key_rules()
        .filter_map(|rule| rule.exempt_finding.as_deref())
        .any(|id| has_finding(FindingKind::Rule(id)));
    if exempt_by_rule || exempt_found {
        return VirtualKey::Exempt;
    }
    if attributes.map(VehicleAttributes::is_tesla) == Some(false) {
        return VirtualKey::NotTesla;
    }
    let missing_found = policies
        .rules
        .iter()
        .filter(|rule| rule.remedy.kind == RuleRemedyKind::AddVirtualKey)
        .map(|rule| FindingKind::Rule(&rule.finding))
        // The finding diagnosis reports from the error alone, when no rule explains it.
        .chain([FindingKind::Builtin(FindingId::VirtualKeyMissing)])
        .any(&has_finding);
    match paired {
        Some(true) => VirtualKey::Paired,
        Some(false) => VirtualKey::Missing,
        None if missing_found => VirtualKey::Missing,
        None => VirtualKey::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn model_3() -> VehicleAttributes {
        VehicleAttributes {
            id: "v1".into(),
            make: "TESLA".into(),
            model: "Model 3".into(),
            year: 2022,
        }
    }

    #[test]
    fn a_renamed_key_finding_in_a_policies_override_still_reads_as_a_missing_key() {
        let text = super::super::policy::BUILTIN_POLICIES.replace(
            "finding = \"virtual-key-missing\"",
            "finding = \"no-key-paired\"",
        );
        let policies = Policies::parse(&text, Path::new("p.toml")).expect("parses");
        let state = virtual_key(
            Some(&model_3()),
            None,
            |kind| kind == FindingKind::Rule("no-key-paired"),
            &policies,
        );
        assert_eq!(state, VirtualKey::Missing);
    }

    #[test]
    fn a_pairing_answer_wins_and_an_old_model_s_is_exempt_by_rule() {
        let p = Policies::builtin();
        assert_eq!(
            virtual_key(Some(&model_3()), Some(true), |_| false, &p),
            VirtualKey::Paired
        );
        let old_s = VehicleAttributes {
            model: "Model S".into(),
            year: 2019,
            ..model_3()
        };
        assert_eq!(
            virtual_key(Some(&old_s), Some(false), |_| false, &p),
            VirtualKey::Exempt
        );
        let ford = VehicleAttributes {
            make: "FORD".into(),
            ..model_3()
        };
        assert_eq!(
            virtual_key(Some(&ford), None, |_| false, &p),
            VirtualKey::NotTesla
        );
        assert_eq!(virtual_key(None, None, |_| false, &p), VirtualKey::Unknown);
    }
}
