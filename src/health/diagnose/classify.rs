//! Sorts one failed request into a finding: a table from the kind of failure to one small function
//! per situation, each giving the finding's title and remedy.

use crate::smartcar::{
    ApiError, BodyProblem, ErrorCode, ErrorType, Observation, Probe, SmartcarError,
};

use super::{Cx, Drafts, is_tesla_probe, probe_permission, request_ids, vehicle_state_words};
use crate::health::remedy;
use crate::health::types::{FindingId, Severity};

impl<'a> Cx<'a> {
    /// Sorts one failed observation into a finding. A rule that explains the error comes first; an
    /// error type or code this build does not know is shown verbatim.
    pub(super) fn classify(
        &self,
        o: &Observation,
        err: &ApiError,
        d: &mut Drafts<'a>,
        missing: &mut Vec<&'static str>,
    ) {
        let e = match err {
            ApiError::Smartcar(e) => e.as_ref(),
            ApiError::Body {
                status,
                problem: BodyProblem::Html,
                ..
            } => return upstream_html(o, *status, d),
            ApiError::Body {
                status, problem, ..
            } => return unreadable_response(o, *status, problem, d),
            ApiError::Redirect { location, .. } => return redirected(o, location.as_deref(), d),
            ApiError::Unsendable { message } => return request_not_sent(o, message, d),
            ApiError::Transport { message, .. } => return no_response(o, message, d),
            ApiError::TokenUnsettled { reason, .. } => return token_unsettled(o, reason, d),
        };
        if let Some(rule) = self.rule_for_error(o, e) {
            return self.rule_finding(rule, o, Some(e), d);
        }
        if matches!(e.code, Some(ErrorCode::Other(_))) {
            return unknown_error(o, e, d);
        }
        use ErrorCode as C;
        use ErrorType as T;
        match (&e.error_type, e.code.as_ref()) {
            (T::ConnectedServicesAccount, Some(C::VirtualKeyRequired)) => {
                self.virtual_key_missing(o, e, d)
            }
            (T::ConnectedServicesAccount, Some(C::AuthenticationFailed)) => {
                self.oem_authentication_failed(o, e, d)
            }
            (T::ConnectedServicesAccount, Some(C::Permission)) => {
                self.owner_revoked_access(o, e, d)
            }
            (T::ConnectedServicesAccount, Some(C::Subscription)) => self.oem_subscription(o, e, d),
            (T::ConnectedServicesAccount, _) => self.oem_account_issue(o, e, d),
            (T::Permission, _) => self.permission_missing(o, e, d, missing),
            (T::VehicleState, code) => vehicle_state(o, e, code, d),
            (T::RateLimit, code) => rate_limited(o, e, code, d),
            (T::Billing, Some(C::VehicleRequestLimit)) => billing_request_limit(o, e, d),
            (T::Billing, _) => billing_plan(o, e, d),
            (T::Compatibility, Some(C::PlatformNotCapable)) if is_tesla_probe(o.probe) => {
                self.tesla_legacy_integration(o, e, d)
            }
            // Non-Teslas answer Tesla endpoints with MAKE_NOT_COMPATIBLE: expected, not a problem.
            (T::Compatibility, _) if is_tesla_probe(o.probe) => {}
            (T::Compatibility, _) => not_capable(o, e, d),
            (T::Server | T::Upstream, code) => upstream_error(o, e, code, d),
            // The listing has this connection, so a 404 on its signals is not a missing car.
            (T::ResourceNotFound, _)
                if o.probe == Probe::Signals && self.report.get(Probe::Permissions).is_some() =>
            {
                self.signals_unavailable(o, e, d)
            }
            (T::Validation | T::ResourceNotFound, _) => request_rejected(o, e, d),
            // A rejected token never gets here: it stops the diagnosis before any error is sorted.
            (T::Authentication | T::Other(_), _) => unknown_error(o, e, d),
        }
    }

    fn signals_unavailable(&self, o: &Observation, e: &SmartcarError, d: &mut Drafts<'a>) {
        d.add(FindingId::SignalsUnavailable, Severity::Blocked, o, || {
            (
                format!(
                    "Smartcar returned no signals for this connected vehicle ({} on GET /v3/vehicles/…/signals): \
                     most likely it is not subscribed to one of the app's webhooks",
                    e.type_code()
                ),
                remedy::subscribe_vehicle(self.target.vehicle_id),
            )
        });
    }

    fn virtual_key_missing(&self, o: &Observation, e: &SmartcarError, d: &mut Drafts<'a>) {
        d.add(FindingId::VirtualKeyMissing, Severity::Blocked, o, || {
            (
                "Tesla virtual key not paired: no data flows".into(),
                remedy::add_virtual_key(self.target, Some(e)),
            )
        });
    }

    fn oem_authentication_failed(&self, o: &Observation, e: &SmartcarError, d: &mut Drafts<'a>) {
        d.add(
            FindingId::OemAuthenticationFailed,
            Severity::Blocked,
            o,
            || {
                (
                    format!(
                        "The owner's {} account login no longer works (CONNECTED_SERVICES_ACCOUNT:\
                         AUTHENTICATION_FAILED): the owner must reconnect",
                        self.vehicle.oem()
                    ),
                    remedy::reauthenticate(self.target, Some(e), &[]),
                )
            },
        );
    }

    fn owner_revoked_access(&self, o: &Observation, e: &SmartcarError, d: &mut Drafts<'a>) {
        d.add(FindingId::OwnerRevokedAccess, Severity::Blocked, o, || {
            (
                format!(
                    "The owner revoked Smartcar's access in the {} account (CONNECTED_SERVICES_ACCOUNT:PERMISSION)",
                    self.vehicle.oem()
                ),
                remedy::reauthenticate(self.target, Some(e), &[]),
            )
        });
    }

    fn oem_subscription(&self, o: &Observation, e: &SmartcarError, d: &mut Drafts<'a>) {
        d.add(FindingId::OemSubscription, Severity::Blocked, o, || {
            (
                format!(
                    "The {} connected-services subscription is inactive (CONNECTED_SERVICES_ACCOUNT:SUBSCRIPTION)",
                    self.vehicle.oem()
                ),
                remedy::owner_action_at_oem(
                    Some(e),
                    "Ask the owner to renew or activate the carmaker's connected-services subscription",
                    "Your car's connected-services subscription with the manufacturer appears to be \
                     inactive. Please renew it in the manufacturer's app; data will flow again afterwards.",
                ),
            )
        });
    }

    fn oem_account_issue(&self, o: &Observation, e: &SmartcarError, d: &mut Drafts<'a>) {
        d.add(FindingId::OemAccountIssue, Severity::Blocked, o, || {
            (
                format!(
                    "Problem with the owner's {} account ({}): {}",
                    self.vehicle.oem(),
                    e.type_code(),
                    e.description
                ),
                remedy::owner_action_at_oem(
                    Some(e),
                    "Ask the owner to sign in to the carmaker's app and resolve the account issue shown there",
                    "There is an issue with your account at your car's manufacturer. Please sign in to the \
                     manufacturer's app and follow the steps it shows.",
                ),
            )
        });
    }

    /// A permission the request needs was refused; a probe without a documented permission is an
    /// error vtriage does not know.
    fn permission_missing(
        &self,
        o: &Observation,
        e: &SmartcarError,
        d: &mut Drafts<'a>,
        missing: &mut Vec<&'static str>,
    ) {
        let Some(p) = probe_permission(o.probe) else {
            return unknown_error(o, e, d);
        };
        if !missing.contains(&p) {
            missing.push(p);
        }
        let severity = if matches!(o.probe, Probe::Data(_) | Probe::Attributes) {
            Severity::Degraded
        } else {
            Severity::Warning
        };
        // Title and remedy are completed once every missing permission is known.
        d.add(FindingId::PermissionMissing, severity, o, || {
            (
                String::new(),
                remedy::reauthenticate(self.target, None, &[]),
            )
        });
    }

    fn tesla_legacy_integration(&self, o: &Observation, e: &SmartcarError, d: &mut Drafts<'a>) {
        d.add(FindingId::TeslaLegacyIntegration, Severity::Warning, o, || {
            (
                "Tesla connected through the legacy integration (COMPATIBILITY:PLATFORM_NOT_CAPABLE): \
                 virtual-key status unknown"
                    .into(),
                remedy::reauthenticate(self.target, Some(e), &[]),
            )
        });
    }
}

fn upstream_html(o: &Observation, status: u16, d: &mut Drafts<'_>) {
    d.add(FindingId::UpstreamHtml, Severity::Degraded, o, || {
        (
            format!(
                "Upstream returned HTML (HTTP {status}) instead of JSON: a proxy or gateway answered"
            ),
            remedy::retry_later(
                None,
                None,
                "a proxy in front of the API answered, not Smartcar",
            ),
        )
    });
}

fn unreadable_response(o: &Observation, status: u16, problem: &BodyProblem, d: &mut Drafts<'_>) {
    d.add(FindingId::UnreadableResponse, Severity::Degraded, o, || {
        (
            format!("Unreadable answer (HTTP {status}): {}", problem.describe()),
            remedy::retry_later(None, None, "the answer was cut short or malformed"),
        )
    });
}

fn redirected(o: &Observation, location: Option<&str>, d: &mut Drafts<'_>) {
    d.add(FindingId::Redirected, Severity::Info, o, || {
        (
            format!(
                "The API answered with a redirect to {}; vtriage does not follow redirects",
                location.unwrap_or("nowhere (no Location header)")
            ),
            remedy::contact_smartcar(None, "the API origin redirects elsewhere", &[]),
        )
    });
}

fn request_not_sent(o: &Observation, message: &str, d: &mut Drafts<'_>) {
    d.add(FindingId::RequestNotSent, Severity::Info, o, || {
        (
            format!("The request was not sent: {message}"),
            remedy::contact_smartcar(None, "a request vtriage cannot address", &[]),
        )
    });
}

/// A v3 401 whose cause could not be told: the verdict is unknown, never the vehicle's fault.
fn token_unsettled(o: &Observation, reason: &str, d: &mut Drafts<'_>) {
    d.add(FindingId::AppTokenUnsettled, Severity::Info, o, || {
        (
            format!(
                "Smartcar refused the request (401) and it could not be told whether the app's token or \
                 this vehicle's connection was refused: {reason}"
            ),
            remedy::check_app_credential(None),
        )
    });
}

fn no_response(o: &Observation, message: &str, d: &mut Drafts<'_>) {
    d.add(FindingId::NoResponse, Severity::Degraded, o, || {
        (
            format!("No answer from the API: {message}"),
            remedy::retry_later(None, None, "no response arrived"),
        )
    });
}

/// Asleep, unreachable, remote access off: the owner acts only when the car refuses on purpose.
fn vehicle_state(o: &Observation, e: &SmartcarError, code: Option<&ErrorCode>, d: &mut Drafts<'_>) {
    let owner = matches!(
        code,
        Some(ErrorCode::RemoteAccessDisabled | ErrorCode::VehicleOfflineForService)
    );
    d.add(FindingId::VehicleState, Severity::Degraded, o, || {
        let remedy = if owner {
            remedy::owner_action_at_oem(
                Some(e),
                "Ask the owner to enable remote access in the car and the carmaker's app",
                "Your car is not accepting remote requests right now. Please check that remote access is \
                 enabled in your car and the manufacturer's app.",
            )
        } else {
            remedy::retry_later(
                Some(e),
                e.retry_after_s.or(o.meta.retry_after_s),
                "the car is not answering now; it usually recovers once driven or woken in the OEM app",
            )
        };
        (
            format!(
                "The vehicle {} ({}): data requests fail",
                vehicle_state_words(code),
                e.type_code()
            ),
            remedy,
        )
    });
}

/// The longest wait any rate-limited request was told wins, so a retry then is not refused again.
fn rate_limited(o: &Observation, e: &SmartcarError, code: Option<&ErrorCode>, d: &mut Drafts<'_>) {
    let retry = e.retry_after_s.or(o.meta.retry_after_s);
    let why = match code {
        Some(ErrorCode::SmartcarApi) => "the app's Smartcar request budget is used up",
        _ => "too many requests to this car",
    };
    let draft = d.add(FindingId::RateLimited, Severity::Warning, o, || {
        let wait = retry.map_or("later".to_string(), |s| {
            format!("in {}", remedy::human_seconds(s))
        });
        (
            format!(
                "Rate limited ({}): {why}; retry {wait}. Not the car's fault",
                e.type_code()
            ),
            remedy::retry_later(Some(e), retry, why),
        )
    });
    if let Some(r) = retry
        && draft.remedy.retry_after_s.is_none_or(|old| r > old)
    {
        draft.remedy.retry_after_s = Some(r);
    }
}

fn billing_request_limit(o: &Observation, e: &SmartcarError, d: &mut Drafts<'_>) {
    ask_smartcar(
        (FindingId::BillingRequestLimit, Severity::Blocked),
        o,
        e,
        d,
        "raise the plan's per-vehicle request limit",
        || {
            "Monthly request limit for this vehicle reached (BILLING:VEHICLE_REQUEST_LIMIT): a plan \
             problem, not the customer's"
                .into()
        },
    );
}

fn billing_plan(o: &Observation, e: &SmartcarError, d: &mut Drafts<'_>) {
    ask_smartcar(
        (FindingId::BillingPlan, Severity::Blocked),
        o,
        e,
        d,
        "billing or plan issue",
        || {
            format!(
                "Smartcar plan problem ({}): {}",
                e.type_code(),
                e.description
            )
        },
    );
}

/// A signal the car cannot give: a fact about the car, never a broken connection.
fn not_capable(o: &Observation, e: &SmartcarError, d: &mut Drafts<'_>) {
    d.add(FindingId::NotCapable, Severity::Info, o, || {
        (
            format!(
                "Not available for this car: {} ({})",
                o.probe.path(),
                e.type_code()
            ),
            remedy::nothing(
                "Nothing to fix: the car or carmaker does not offer this data",
                "Unfortunately your car does not share this information with third-party apps.",
                e.doc_url.clone(),
            ),
        )
    });
}

/// A missing or doubled record is Smartcar's to fix; anything else at Smartcar or the carmaker passes.
fn upstream_error(
    o: &Observation,
    e: &SmartcarError,
    code: Option<&ErrorCode>,
    d: &mut Drafts<'_>,
) {
    let contact = matches!(
        code,
        Some(ErrorCode::RecordNotFound | ErrorCode::MultipleRecordsFound)
    );
    d.add(FindingId::UpstreamError, Severity::Degraded, o, || {
        let remedy = if contact {
            remedy::contact_smartcar(
                Some(e),
                "a Smartcar-side record problem",
                &request_ids(e, o),
            )
        } else {
            remedy::retry_later(
                Some(e),
                e.retry_after_s,
                "a transient error at Smartcar or the carmaker",
            )
        };
        (
            format!(
                "Smartcar or the carmaker failed ({}, HTTP {})",
                e.type_code(),
                e.status
            ),
            remedy,
        )
    });
}

fn request_rejected(o: &Observation, e: &SmartcarError, d: &mut Drafts<'_>) {
    ask_smartcar(
        (FindingId::RequestRejected, Severity::Degraded),
        o,
        e,
        d,
        "a request the API does not accept",
        || {
            format!(
                "The API rejected the request ({}): {}",
                e.type_code(),
                e.description
            )
        },
    );
}

fn unknown_error(o: &Observation, e: &SmartcarError, d: &mut Drafts<'_>) {
    ask_smartcar(
        (FindingId::UnknownError, Severity::Degraded),
        o,
        e,
        d,
        "an error vtriage does not know",
        || {
            format!(
                "Unknown error {} (HTTP {}): {}",
                e.type_code(),
                e.status,
                e.description
            )
        },
    );
}

/// A finding only Smartcar or the plan's owner can fix: the remedy carries the request ids to send.
fn ask_smartcar(
    (id, severity): (FindingId, Severity),
    o: &Observation,
    e: &SmartcarError,
    d: &mut Drafts<'_>,
    why: &str,
    title: impl FnOnce() -> String,
) {
    d.add(id, severity, o, || {
        (
            title(),
            remedy::contact_smartcar(Some(e), why, &request_ids(e, o)),
        )
    });
}
