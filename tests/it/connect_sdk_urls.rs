//! Connect URLs compared byte for byte with what the Python SDK 6.19.1 produced (smartcar-api.md §4).

use vtriage::smartcar::connect::{
    ConnectMode, ConnectOptions, FlagValue, SingleSelect, virtual_key_link,
};

fn base() -> ConnectOptions {
    ConnectOptions {
        client_id: Some("my-client-id".into()),
        redirect_uri: Some("https://example.com/callback".into()),
        mode: ConnectMode::Test,
        ..ConnectOptions::default()
    }
}

#[test]
fn authorize_url_with_required_scope_matches_python_sdk() {
    let opts = ConnectOptions {
        scope: vec![
            "read_vehicle_info".into(),
            "read_location".into(),
            "required:read_odometer".into(),
        ],
        ..base()
    };
    assert_eq!(
        opts.authorize_url("https://connect.smartcar.com"),
        "https://connect.smartcar.com/oauth/authorize?response_type=code&client_id=my-client-id&approval_prompt=auto&mode=test&redirect_uri=https%3A%2F%2Fexample.com%2Fcallback&scope=read_vehicle_info+read_location+required%3Aread_odometer"
    );
}

#[test]
fn authorize_url_with_every_option_matches_python_sdk() {
    let opts = ConnectOptions {
        scope: vec!["read_vehicle_info".into(), "read_location".into()],
        force_prompt: true,
        state: Some("abc 123".into()),
        make: Some("TESLA".into()),
        single_select: Some(SingleSelect::Vin("5YJ3E1EA7KF000000".into())),
        flags: vec![
            ("country".into(), FlagValue::Text("DE".into())),
            ("tesla_auth".into(), FlagValue::Bool(true)),
        ],
        user: Some("user-42".into()),
        ..base()
    };
    assert_eq!(
        opts.authorize_url("https://connect.smartcar.com"),
        "https://connect.smartcar.com/oauth/authorize?response_type=code&client_id=my-client-id&approval_prompt=force&mode=test&redirect_uri=https%3A%2F%2Fexample.com%2Fcallback&scope=read_vehicle_info+read_location&state=abc+123&make=TESLA&single_select_vin=5YJ3E1EA7KF000000&single_select=true&flags=country%3ADE+tesla_auth%3Atrue&user=user-42"
    );
}

#[test]
fn single_select_disabled_is_written_false() {
    let opts = ConnectOptions {
        single_select: Some(SingleSelect::Enabled(false)),
        mode: ConnectMode::Live,
        ..base()
    };
    let url = opts.authorize_url("https://connect.smartcar.com/");
    assert!(
        url.ends_with(
            "&mode=live&redirect_uri=https%3A%2F%2Fexample.com%2Fcallback&single_select=false"
        ),
        "{url}"
    );
}

#[test]
fn reauthenticate_url_asks_for_the_missing_permission_for_a_tesla() {
    let opts = ConnectOptions {
        client_id: Some("cid".into()),
        scope: vec!["required:read_location".into()],
        make: Some("TESLA".into()),
        ..ConnectOptions::default()
    };
    assert_eq!(
        opts.reauthenticate_url("http://127.0.0.1:4000", "veh-1"),
        "http://127.0.0.1:4000/oauth/reauthenticate?response_type=vehicle_id&client_id=cid&vehicle_id=veh-1&scope=required%3Aread_location&make=TESLA"
    );
}

#[test]
fn missing_client_id_shows_a_visible_placeholder() {
    let url = ConnectOptions::default().reauthenticate_url("https://connect.smartcar.com", "v 1");
    assert_eq!(
        url,
        "https://connect.smartcar.com/oauth/reauthenticate?response_type=vehicle_id&client_id=<your-client-id>&vehicle_id=v+1"
    );
}

#[test]
fn unicode_and_reserved_characters_are_percent_encoded_like_urlencode() {
    let opts = ConnectOptions {
        state: Some("é/~*&=".into()),
        ..base()
    };
    let url = opts.authorize_url("https://connect.smartcar.com");
    assert!(url.ends_with("&state=%C3%A9%2F~%2A%26%3D"), "{url}");
}

#[test]
fn virtual_key_link_uses_the_domain() {
    assert_eq!(
        virtual_key_link("smartcar.com"),
        "https://www.tesla.com/_ak/smartcar.com"
    );
}

#[test]
fn command_line_flags_read_booleans_lower_case() {
    use vtriage::smartcar::connect::parse_flag;
    assert_eq!(
        parse_flag("tesla_auth:True"),
        Ok(("tesla_auth".into(), FlagValue::Bool(true)))
    );
    assert_eq!(
        parse_flag("country:DE"),
        Ok(("country".into(), FlagValue::Text("DE".into())))
    );
    assert!(parse_flag("no-colon").is_err());
    assert!(parse_flag(":x").is_err());
    let opts = ConnectOptions {
        flags: vec![parse_flag("tesla_auth:TRUE").expect("flag")],
        ..base()
    };
    assert!(
        opts.authorize_url("https://c")
            .ends_with("&flags=tesla_auth%3Atrue")
    );
}
