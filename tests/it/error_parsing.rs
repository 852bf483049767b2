//! Every shape of error body Smartcar (or something in front of it) can send parses to a typed error.

use proptest::prelude::*;
use serde_json::json;
use vtriage::smartcar::error::{error_from_json, parse_error_body};
use vtriage::smartcar::{ApiError, BodyProblem, ErrorCode, ErrorType};

fn parse(status: u16, content_type: Option<&str>, body: &str) -> ApiError {
    parse_error_body(
        status,
        content_type,
        Some("hdr-req-id"),
        None,
        body.as_bytes(),
    )
}

#[test]
fn v2_virtual_key_body_keeps_every_field() {
    let body = json!({
        "type": "CONNECTED_SERVICES_ACCOUNT", "code": "VIRTUAL_KEY_REQUIRED",
        "description": "The vehicle owner needs to grant additional access.",
        "docURL": "https://smartcar.com/docs/errors/api-errors/connected-services-account-errors#virtual-key-required",
        "statusCode": 400, "requestId": "5dea93a1",
        "resolution": {"type": "ACTION_REQUIRED", "url": "https://www.tesla.com/_ak/smartcar.com"},
        "suggestedUserMessage": "Add the virtual key."
    });
    let err = parse(
        400,
        Some("application/json; charset=utf-8"),
        &body.to_string(),
    );
    let e = err.smartcar().expect("a Smartcar error");
    assert_eq!(e.error_type, ErrorType::ConnectedServicesAccount);
    assert_eq!(e.code, Some(ErrorCode::VirtualKeyRequired));
    assert_eq!(
        e.request_id.as_deref(),
        Some("5dea93a1"),
        "body requestId wins over the header"
    );
    let r = e.resolution.as_ref().unwrap();
    assert_eq!(r.kind.as_deref(), Some("ACTION_REQUIRED"));
    assert_eq!(
        r.url.as_deref(),
        Some("https://www.tesla.com/_ak/smartcar.com")
    );
    assert_eq!(
        e.suggested_user_message.as_deref(),
        Some("Add the virtual key.")
    );
    assert_eq!(
        e.type_code(),
        "CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED"
    );
    assert!(!err.is_retryable());
}

#[test]
fn v2_null_code_and_string_resolution_are_accepted() {
    let body = r#"{"type":"PERMISSION","code":null,"description":"d","docURL":null,"statusCode":403,"requestId":"r","resolution":"REAUTHENTICATE"}"#;
    let e = parse(403, Some("application/json"), body);
    let e = e.smartcar().unwrap();
    assert_eq!(e.code, None);
    assert_eq!(e.type_code(), "PERMISSION");
    assert_eq!(
        e.resolution.as_ref().unwrap().kind.as_deref(),
        Some("REAUTHENTICATE")
    );
}

#[test]
fn unknown_type_and_code_are_kept_verbatim() {
    let body = r#"{"type":"TELEPORT","code":"OUT_OF_RANGE","description":"x","statusCode":418,"requestId":"r","resolution":{"type":null}}"#;
    let e = parse(418, Some("application/json"), body);
    let e = e.smartcar().unwrap();
    assert_eq!(e.error_type, ErrorType::Other("TELEPORT".into()));
    assert_eq!(e.code, Some(ErrorCode::Other("OUT_OF_RANGE".into())));
    assert_eq!(e.type_code(), "TELEPORT:OUT_OF_RANGE");
}

#[test]
fn v1_and_oauth_bodies_parse() {
    let v1 = parse(
        400,
        Some("application/json"),
        r#"{"error":"validation_error","message":"bad","code":"VAL_1"}"#,
    );
    assert_eq!(v1.smartcar().unwrap().description, "bad");
    assert_eq!(
        v1.request_id(),
        Some("hdr-req-id"),
        "header request id when the body has none"
    );
    let oauth = parse(
        400,
        Some("application/json"),
        r#"{"error":"invalid_grant","error_description":"expired"}"#,
    );
    let o = oauth.smartcar().unwrap();
    assert_eq!(o.error_type.as_str(), "invalid_grant");
    assert_eq!(o.description, "expired");
}

#[test]
fn v3_errors_array_parses() {
    let body = r#"{"errors":[{"status":"502","type":"UPSTREAM","code":"INVALID_DATA","title":"Bad Gateway","detail":"oem sent junk","links":{"about":"https://d"},"resolution":{"type":"RETRY_LATER"},"suggestedUserMessage":"later"}]}"#;
    let e = parse(502, Some("application/vnd.api+json"), body);
    let s = e.smartcar().unwrap();
    assert_eq!(s.type_code(), "UPSTREAM:INVALID_DATA");
    assert_eq!(s.doc_url.as_deref(), Some("https://d"));
    assert!(e.is_retryable());
}

#[test]
fn html_from_a_proxy_is_upstream_html() {
    let e = parse(
        502,
        Some("text/html"),
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
    );
    assert!(matches!(
        e,
        ApiError::Body {
            problem: BodyProblem::Html,
            status: 502,
            ..
        }
    ));
    assert_eq!(e.label(), "HTML");
    assert!(e.is_retryable());
}

#[test]
fn html_without_content_type_is_still_html() {
    let e = parse(503, None, "  <!DOCTYPE html><html></html>");
    assert!(matches!(
        e,
        ApiError::Body {
            problem: BodyProblem::Html,
            ..
        }
    ));
}

#[test]
fn empty_and_truncated_bodies_are_typed() {
    assert!(matches!(
        parse(500, Some("application/json"), ""),
        ApiError::Body {
            problem: BodyProblem::Empty,
            ..
        }
    ));
    let cut = parse(
        500,
        Some("application/json"),
        r#"{"type":"SERVER","code":"INTER"#,
    );
    assert!(matches!(
        cut,
        ApiError::Body {
            problem: BodyProblem::InvalidJson,
            ..
        }
    ));
    let shape = parse(500, Some("application/json"), r#"[1,2,3]"#);
    assert!(matches!(
        shape,
        ApiError::Body {
            problem: BodyProblem::UnexpectedShape,
            ..
        }
    ));
}

#[test]
fn rate_limit_keeps_retry_after() {
    let body = r#"{"type":"RATE_LIMIT","code":"VEHICLE","description":"slow down","statusCode":429,"requestId":"r","resolution":{"type":"RETRY_LATER"}}"#;
    let e = parse_error_body(
        429,
        Some("application/json"),
        None,
        Some(1800),
        body.as_bytes(),
    );
    assert_eq!(e.retry_after_s(), Some(1800));
    assert!(e.is_retryable());
}

#[test]
fn batch_item_error_parses_without_headers() {
    let v = json!({"type":"VEHICLE_STATE","code":"ASLEEP","description":"zzz","statusCode":409,"requestId":"r2","resolution":{"type":null}});
    let e = error_from_json(409, &v, None, None).unwrap();
    assert_eq!(e.type_code(), "VEHICLE_STATE:ASLEEP");
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("type"),
            Just("code"),
            Just("errors"),
            Just("resolution"),
            Just("error")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type".to_string()),
                        Just("code".to_string()),
                        Just("errors".to_string()),
                        Just("resolution".to_string()),
                        Just("error".to_string()),
                        Just("requestId".to_string()),
                        ".{0,6}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(status in 100u16..600, bytes in prop::collection::vec(any::<u8>(), 0..512), html in any::<bool>()) {
        let ct = if html { Some("text/html") } else { Some("application/json") };
        let e = parse_error_body(status, ct, None, None, &bytes);
        prop_assert_eq!(e.status(), Some(status));
    }

    #[test]
    fn arbitrary_json_never_panics(status in 100u16..600, v in arb_json()) {
        let text = v.to_string();
        let e = parse_error_body(status, Some("application/json"), Some("h"), None, text.as_bytes());
        prop_assert_eq!(e.status(), Some(status));
        let _ = error_from_json(status, &v, None, None);
        let _ = vtriage::smartcar::client::answer_from_body(vtriage::smartcar::Probe::TeslaUserAccess, &v);
        let _ = vtriage::smartcar::client::answer_from_body(vtriage::smartcar::Probe::Attributes, &v);
    }
}
