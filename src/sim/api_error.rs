//! The Smartcar v2.0 error bodies the simulator answers with, every field present, texts from the docs.

use serde_json::{Value, json};

/// Resolution link for a missing Tesla virtual key (Smartcar's default domain).
pub const VIRTUAL_KEY_URL: &str = "https://www.tesla.com/_ak/smartcar.com";

/// An error the simulator can answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Authentication,
    Validation(String),
    Permission,
    PathNotFound,
    VersionNotFound,
    VehicleAsleep,
    VehicleUnreachable,
    AppRateLimit { retry_after_s: u64 },
    VehicleRateLimit { retry_after_s: u64 },
    VehicleRequestLimit,
    VirtualKeyRequired,
    OemAuthenticationFailed { reauth_url: String },
    Subscription,
    MakeNotCompatible,
    VehicleNotCapable,
    ServerInternal,
    UpstreamUnknown,
}

struct Text {
    status: u16,
    error_type: &'static str,
    code: Option<&'static str>,
    page: &'static str,
    description: &'static str,
    resolution: Option<&'static str>,
    user_message: &'static str,
}

impl Failure {
    fn text(&self) -> Text {
        let t = |status, error_type, code, page, description, resolution, user_message| Text {
            status,
            error_type,
            code,
            page,
            description,
            resolution,
            user_message,
        };
        match self {
            Failure::Authentication => t(
                401,
                "AUTHENTICATION",
                None,
                "authentication-errors",
                "The authorization header is missing or malformed, or it contains invalid or expired authentication credentials (e.g. access token, client ID, client secret). Please check for missing parameters, spelling and casing mistakes, and other syntax issues.",
                None,
                "Your car's connection has expired. Please reconnect your car to continue.",
            ),
            Failure::Validation(_) => t(
                400,
                "VALIDATION",
                Some("PARAMETER"),
                "validation-errors",
                "",
                None,
                "Something went wrong with this request. Please try again later.",
            ),
            Failure::Permission => t(
                403,
                "PERMISSION",
                None,
                "permission-errors",
                "Your application has insufficient permissions to access the requested resource. Please prompt the user to re-authenticate using Smartcar Connect.",
                Some("REAUTHENTICATE"),
                "Your car's permissions have changed. Please reconnect your car and grant the requested access.",
            ),
            Failure::PathNotFound => t(
                404,
                "RESOURCE_NOT_FOUND",
                Some("PATH"),
                "resource-not-found-errors",
                "The requested resource does not exist. Please check the URL and try again.",
                None,
                "Something went wrong with this request. Please try again later.",
            ),
            Failure::VersionNotFound => t(
                404,
                "RESOURCE_NOT_FOUND",
                Some("VERSION"),
                "resource-not-found-errors",
                "The requested version of the API does not exist or is not supported. Please use version 2.0.",
                None,
                "Something went wrong with this request. Please try again later.",
            ),
            Failure::VehicleAsleep => t(
                409,
                "VEHICLE_STATE",
                Some("ASLEEP"),
                "vehicle-state-errors",
                "The vehicle is in a sleep state and temporarily unable to perform your request. Either the vehicle has been inactive for a certain period of time (time periods vary between makes), or the user has manually put the vehicle in sleep state.",
                None,
                "Your car is asleep. Please wake it up, for example by opening the manufacturer's app, and try again.",
            ),
            Failure::VehicleUnreachable => t(
                409,
                "VEHICLE_STATE",
                Some("UNREACHABLE"),
                "vehicle-state-errors",
                "The vehicle was unable to perform your request because it is currently unreachable.",
                None,
                "Your car is unreachable. Please make sure it is in an area with cellular reception and try again.",
            ),
            Failure::AppRateLimit { .. } => t(
                429,
                "RATE_LIMIT",
                Some("SMARTCAR_API"),
                "rate-limit-errors",
                "You have reached the throttling rate limit for this application. Please see the retry-after header for when to retry the request and implement exponential backoff.",
                Some("RETRY_LATER"),
                "Your car is temporarily unable to connect. Please try again later.",
            ),
            Failure::VehicleRateLimit { .. } => t(
                429,
                "RATE_LIMIT",
                Some("VEHICLE"),
                "rate-limit-errors",
                "You have reached the rate limit for this vehicle. Please see the retry-after header for when to retry the request.",
                Some("RETRY_LATER"),
                "Your car is temporarily unable to connect. Please try again later.",
            ),
            Failure::VehicleRequestLimit => t(
                430,
                "BILLING",
                Some("VEHICLE_REQUEST_LIMIT"),
                "billing-errors",
                "You have exceeded the number of API calls allowed for this vehicle this month. Please contact us to upgrade your plan.",
                Some("CONTACT_SUPPORT"),
                "Your car is temporarily unable to connect. Please try again later.",
            ),
            Failure::VirtualKeyRequired => t(
                400,
                "CONNECTED_SERVICES_ACCOUNT",
                Some("VIRTUAL_KEY_REQUIRED"),
                "connected-services-account-errors",
                "The vehicle owner needs to grant additional access to Smartcar in order to perform this request.",
                Some("ACTION_REQUIRED"),
                "In order to perform this request you'll need to add a Third-Party Virtual key to your vehicle. Please open this link on the phone with your Tesla App to complete this step.",
            ),
            Failure::OemAuthenticationFailed { .. } => t(
                400,
                "CONNECTED_SERVICES_ACCOUNT",
                Some("AUTHENTICATION_FAILED"),
                "connected-services-account-errors",
                "Smartcar was unable to authenticate with the user's connected services account. This error usually occurs when the user has updated their connected services account credentials and not yet re-authenticated in Smartcar Connect. Please prompt the user to re-authenticate using Smartcar Connect.",
                Some("REAUTHENTICATE"),
                "Your car got disconnected. Please use this link to reconnect your car.",
            ),
            Failure::Subscription => t(
                400,
                "CONNECTED_SERVICES_ACCOUNT",
                Some("SUBSCRIPTION"),
                "connected-services-account-errors",
                "The vehicle's connected services subscription is inactive or does not support the requested functionality.",
                None,
                "Your car's connected services subscription has expired or does not include this feature. Please renew it with your car's manufacturer.",
            ),
            Failure::MakeNotCompatible => t(
                501,
                "COMPATIBILITY",
                Some("MAKE_NOT_COMPATIBLE"),
                "compatibility-errors",
                "The requested endpoint is not compatible with the make of this vehicle.",
                None,
                "Your car does not support this feature.",
            ),
            Failure::VehicleNotCapable => t(
                501,
                "COMPATIBILITY",
                Some("VEHICLE_NOT_CAPABLE"),
                "compatibility-errors",
                "The vehicle is incapable of performing your request.",
                None,
                "Your car does not support this feature.",
            ),
            Failure::ServerInternal => t(
                500,
                "SERVER",
                Some("INTERNAL"),
                "server-errors",
                "An internal server error has occurred. Please try again later.",
                Some("RETRY_LATER"),
                "Something went wrong on our side. Please try again later.",
            ),
            Failure::UpstreamUnknown => t(
                502,
                "UPSTREAM",
                Some("UNKNOWN_ISSUE"),
                "upstream-errors",
                "An unknown issue occurred with the vehicle's manufacturer. Please try again later.",
                Some("RETRY_LATER"),
                "Your car's manufacturer is having trouble. Please try again later.",
            ),
        }
    }

    pub fn status(&self) -> u16 {
        self.text().status
    }

    /// Seconds for the `Retry-After` header, where the error carries one.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Failure::AppRateLimit { retry_after_s }
            | Failure::VehicleRateLimit { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }

    /// The full v2.0 body: `type, code, description, docURL, statusCode, requestId, resolution,
    /// suggestedUserMessage`, with `statusCode` equal to the HTTP status.
    pub fn body(&self, request_id: &str) -> Value {
        let text = self.text();
        let description = match self {
            Failure::Validation(detail) => {
                format!(
                    "Request invalid or malformed. Please check for missing parameters, spelling and casing mistakes, and other syntax issues. {detail}"
                )
            }
            _ => text.description.to_string(),
        };
        let doc_url = match text.code {
            Some(code) => {
                format!(
                    "https://smartcar.com/docs/errors/api-errors/{}#{}",
                    text.page,
                    code.to_ascii_lowercase().replace('_', "-")
                )
            }
            None => format!("https://smartcar.com/docs/errors/api-errors/{}", text.page),
        };
        let resolution = match self {
            Failure::VirtualKeyRequired => {
                json!({"type": "ACTION_REQUIRED", "url": VIRTUAL_KEY_URL})
            }
            Failure::OemAuthenticationFailed { reauth_url } => {
                json!({"type": "REAUTHENTICATE", "url": reauth_url})
            }
            _ => json!({"type": text.resolution}),
        };
        json!({
            "type": text.error_type,
            "code": text.code,
            "description": description,
            "docURL": doc_url,
            "statusCode": text.status,
            "requestId": request_id,
            "resolution": resolution,
            "suggestedUserMessage": text.user_message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_body_has_every_field_and_matching_status() {
        let all = [
            Failure::Authentication,
            Failure::Validation("limit".into()),
            Failure::Permission,
            Failure::PathNotFound,
            Failure::VersionNotFound,
            Failure::VehicleAsleep,
            Failure::VehicleUnreachable,
            Failure::AppRateLimit { retry_after_s: 3 },
            Failure::VehicleRateLimit {
                retry_after_s: 1800,
            },
            Failure::VehicleRequestLimit,
            Failure::VirtualKeyRequired,
            Failure::OemAuthenticationFailed {
                reauth_url: "http://x/oauth/reauthenticate".into(),
            },
            Failure::Subscription,
            Failure::MakeNotCompatible,
            Failure::VehicleNotCapable,
            Failure::ServerInternal,
            Failure::UpstreamUnknown,
        ];
        for f in all {
            let body = f.body("req-1");
            for key in [
                "type",
                "code",
                "description",
                "docURL",
                "statusCode",
                "requestId",
                "resolution",
                "suggestedUserMessage",
            ] {
                assert!(body.get(key).is_some(), "{f:?} lacks {key}");
            }
            assert_eq!(body["statusCode"], u64::from(f.status()));
            assert!(body["resolution"].is_object());
        }
    }
}
