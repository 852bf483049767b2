//! The simulator's Smartcar endpoints over loopback: shapes, headers, paging, auth.

use crate::sim_support;

use serde_json::{Value, json};
use sim_support::{quiet, start};
use vtriage::sim::{Fleet, Situation, vin};

#[tokio::test]
async fn user_endpoint_names_the_token_owner() {
    let sim = start(quiet(50, 7)).await;
    let (user, token) = sim
        .handle
        .tokens()
        .iter()
        .find(|(u, _)| !sim.handle.fleet().user(u).unwrap().token_expired)
        .unwrap()
        .clone();
    let a = sim.get("/v2.0/user", Some(&token)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!({"id": user}));
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(a.header("sc-request-id").is_some_and(|id| id.len() == 36));
}

#[tokio::test]
async fn vehicles_list_pages_by_offset_over_three_pages() {
    let sim = start(quiet(300, 7)).await;
    let user = sim
        .handle
        .fleet()
        .users
        .iter()
        .find(|u| u.vehicles.len() == 3 && !u.token_expired)
        .expect("a user with 3 vehicles");
    let mut seen = Vec::new();
    for offset in 0..3 {
        let a = sim
            .get(
                &format!("/v2.0/vehicles?limit=1&offset={offset}"),
                Some(&user.access_token),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let body = a.json();
        assert_eq!(body["paging"], json!({"count": 3, "offset": offset}));
        let ids = body["vehicles"].as_array().unwrap();
        assert_eq!(ids.len(), 1);
        seen.push(ids[0].as_str().unwrap().to_string());
    }
    let expected: Vec<String> = user
        .vehicles
        .iter()
        .map(|i| sim.handle.fleet().vehicles[*i].id.clone())
        .collect();
    assert_eq!(seen, expected);
    let past_end = sim
        .get("/v2.0/vehicles?limit=1&offset=3", Some(&user.access_token))
        .await
        .json();
    assert_eq!(past_end["vehicles"], json!([]));
    let all = sim
        .get("/v2.0/vehicles", Some(&user.access_token))
        .await
        .json();
    assert_eq!(all["vehicles"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn vehicles_list_limit_above_fifty_is_a_validation_error() {
    let sim = start(quiet(20, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    let a = sim
        .get("/v2.0/vehicles?limit=51", Some(&sim.token_of(v)))
        .await;
    a.expect_error(400, "VALIDATION", Some("PARAMETER"));
}

#[tokio::test]
async fn attributes_answer_id_make_model_year() {
    let sim = start(quiet(50, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    let a = sim
        .get(&format!("/v2.0/vehicles/{}", v.id), Some(&sim.token_of(v)))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json(),
        json!({"id": v.id, "make": v.make, "model": v.model, "year": v.year})
    );
    // The Python SDK asks with a trailing slash.
    let slash = sim
        .get(&format!("/v2.0/vehicles/{}/", v.id), Some(&sim.token_of(v)))
        .await;
    assert_eq!(slash.json(), a.json());
}

#[tokio::test]
async fn vin_endpoint_answers_the_fleet_vin() {
    let sim = start(quiet(50, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    let a = sim
        .get(
            &format!("/v2.0/vehicles/{}/vin", v.id),
            Some(&sim.token_of(v)),
        )
        .await;
    assert_eq!(a.json(), json!({"vin": v.vin}));
    assert!(vin::is_valid(&v.vin));
}

#[tokio::test]
async fn permissions_page_by_offset_with_a_default_limit_of_25() {
    let sim = start(quiet(50, 7)).await;
    let v = sim.vehicle_where(|v| v.situation == Situation::Healthy && v.is_tesla());
    let token = sim.token_of(v);
    let all = sim
        .get(
            &format!("/v2.0/vehicles/{}/permissions", v.id),
            Some(&token),
        )
        .await
        .json();
    let count = all["paging"]["count"].as_u64().unwrap() as usize;
    let perms: Vec<Value> = all["permissions"].as_array().unwrap().clone();
    assert_eq!(perms.len(), count.min(25));
    assert!(perms.contains(&json!("read_odometer")) && perms.contains(&json!("read_location")));
    assert_eq!(all["paging"]["offset"], 0);
    let mut paged = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    while offset < count {
        let page = sim
            .get(
                &format!(
                    "/v2.0/vehicles/{}/permissions?limit=5&offset={offset}",
                    v.id
                ),
                Some(&token),
            )
            .await
            .json();
        assert_eq!(page["paging"]["offset"], offset);
        paged.extend(page["permissions"].as_array().unwrap().iter().cloned());
        offset += 5;
        pages += 1;
    }
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(paged, perms);
}

#[tokio::test]
async fn healthy_data_endpoints_answer_realistic_values_with_data_headers() {
    let sim = start(quiet(200, 7)).await;
    let ev = sim.vehicle_where(|v| v.situation == Situation::Healthy && !v.powertrain.has_engine());
    let token = sim.token_of(ev);
    let base = format!("/v2.0/vehicles/{}", ev.id);

    let location = sim.get(&format!("{base}/location"), Some(&token)).await;
    assert_eq!(location.status, 200);
    let body = location.json();
    let (lat, lon) = (
        body["latitude"].as_f64().unwrap(),
        body["longitude"].as_f64().unwrap(),
    );
    assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
    assert_eq!(lat, ev.latitude);
    for h in ["sc-data-age", "sc-fetched-at"] {
        let value = location.header(h).unwrap_or_else(|| panic!("{h} missing"));
        let when: jiff::Timestamp = value.parse().unwrap_or_else(|e| panic!("{h} {value}: {e}"));
        assert!(when <= jiff::Timestamp::now());
    }
    let age = jiff::Timestamp::now()
        .duration_since(location.header("sc-data-age").unwrap().parse().unwrap());
    assert!(
        age.as_secs() < 3_600,
        "healthy data is minutes old, got {age:?}"
    );
    assert_eq!(location.header("sc-unit-system"), Some("metric"));

    let odometer = sim
        .get(&format!("{base}/odometer"), Some(&token))
        .await
        .json();
    let km = odometer["distance"].as_f64().unwrap();
    assert!((100.0..1_000_000.0).contains(&km), "{km}");

    let battery = sim
        .get(&format!("{base}/battery"), Some(&token))
        .await
        .json();
    let pct = battery["percentRemaining"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&pct) && battery["range"].as_f64().unwrap() >= 0.0);

    let charge = sim
        .get(&format!("{base}/charge"), Some(&token))
        .await
        .json();
    assert!(
        ["CHARGING", "FULLY_CHARGED", "NOT_CHARGING"].contains(&charge["state"].as_str().unwrap())
    );
    assert!(charge["isPluggedIn"].is_boolean());

    let tires = sim
        .get(&format!("{base}/tires/pressure"), Some(&token))
        .await
        .json();
    for wheel in ["frontLeft", "frontRight", "backLeft", "backRight"] {
        assert!(
            (150.0..350.0).contains(&tires[wheel].as_f64().unwrap()),
            "{tires}"
        );
    }

    // An electric car has no fuel tank or engine oil.
    sim.get(&format!("{base}/fuel"), Some(&token))
        .await
        .expect_error(501, "COMPATIBILITY", Some("VEHICLE_NOT_CAPABLE"));
    sim.get(&format!("{base}/engine/oil"), Some(&token))
        .await
        .expect_error(501, "COMPATIBILITY", Some("VEHICLE_NOT_CAPABLE"));

    let ice =
        sim.vehicle_where(|v| v.situation == Situation::Healthy && !v.powertrain.has_battery());
    let token = sim.token_of(ice);
    let fuel = sim
        .get(&format!("/v2.0/vehicles/{}/fuel", ice.id), Some(&token))
        .await
        .json();
    assert!((0.0..=1.0).contains(&fuel["percentRemaining"].as_f64().unwrap()));
    assert!(fuel["amountRemaining"].as_f64().unwrap() >= 0.0);
    let oil = sim
        .get(
            &format!("/v2.0/vehicles/{}/engine/oil", ice.id),
            Some(&token),
        )
        .await
        .json();
    assert!((0.0..=1.0).contains(&oil["lifeRemaining"].as_f64().unwrap()));
}

#[tokio::test]
async fn imperial_unit_system_answers_miles() {
    let sim = start(quiet(50, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    let token = sim.token_of(v);
    let path = format!("/v2.0/vehicles/{}/odometer", v.id);
    let km = sim.get(&path, Some(&token)).await.json()["distance"]
        .as_f64()
        .unwrap();
    let imperial = sim
        .get_with(&path, &token, ("sc-unit-system", "imperial"))
        .await;
    assert_eq!(imperial.header("sc-unit-system"), Some("imperial"));
    let miles = imperial.json()["distance"].as_f64().unwrap();
    assert!(
        (miles * 1.609_344 - km).abs() < 1.0,
        "{miles} mi vs {km} km"
    );
}

#[tokio::test]
async fn batch_answers_each_path_with_code_body_and_headers() {
    let sim = start(quiet(50, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    let a = sim
        .post(
            &format!("/v2.0/vehicles/{}/batch", v.id),
            Some(&sim.token_of(v)),
            &json!({"requests": [{"path": "/odometer"}, {"path": "/location"}, {"path": "/nowhere"}, {"path": "/"}]}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.header("sc-request-id").is_some());
    let body = a.json();
    let items = body["responses"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["path"], "/odometer");
    assert_eq!(items[0]["code"], 200);
    assert!(items[0]["body"]["distance"].as_f64().unwrap() > 0.0);
    assert!(items[0]["headers"]["sc-data-age"].is_string());
    assert_eq!(items[0]["headers"]["sc-unit-system"], "metric");
    assert_eq!(items[1]["body"]["latitude"], json!(v.latitude));
    assert_eq!(items[2]["code"], 404);
    assert_eq!(items[2]["body"]["type"], "RESOURCE_NOT_FOUND");
    assert_eq!(items[2]["body"]["statusCode"], 404);
    assert_eq!(items[3]["code"], 200);
    assert_eq!(
        items[3]["body"],
        json!({"id": v.id, "make": v.make, "model": v.model, "year": v.year})
    );
}

#[tokio::test]
async fn batch_over_twenty_requests_or_the_byte_cap_is_a_validation_error() {
    let sim = start(quiet(50, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    let path = format!("/v2.0/vehicles/{}/batch", v.id);
    let many: Vec<_> = (0..21).map(|_| json!({"path": "/odometer"})).collect();
    let a = sim
        .post(&path, Some(&sim.token_of(v)), &json!({ "requests": many }))
        .await;
    a.expect_error(400, "VALIDATION", Some("PARAMETER"));
    let huge = json!({"requests": [{"path": "/odometer", "pad": "x".repeat(100 * 1024)}]});
    let a = sim.post(&path, Some(&sim.token_of(v)), &huge).await;
    a.expect_error(400, "VALIDATION", Some("PARAMETER"));
    let twenty: Vec<_> = (0..20).map(|_| json!({"path": "/odometer"})).collect();
    let a = sim
        .post(
            &path,
            Some(&sim.token_of(v)),
            &json!({ "requests": twenty }),
        )
        .await;
    assert_eq!(a.json()["responses"].as_array().map(Vec::len), Some(20));
}

#[tokio::test]
async fn batch_without_requests_is_a_validation_error() {
    let sim = start(quiet(50, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    let a = sim
        .post(
            &format!("/v2.0/vehicles/{}/batch", v.id),
            Some(&sim.token_of(v)),
            &json!({"paths": []}),
        )
        .await;
    a.expect_error(400, "VALIDATION", Some("PARAMETER"));
}

#[tokio::test]
async fn every_path_takes_a_trailing_slash_and_flags() {
    let sim = start(quiet(50, 7)).await;
    let v = sim.vehicle_where(|v| v.situation == Situation::Healthy && v.is_tesla());
    let token = sim.token_of(v);
    for path in [
        "/v2.0/user/".to_string(),
        "/v2.0/vehicles/?limit=10&offset=0".to_string(),
        format!("/v2.0/vehicles/{}/", v.id),
        format!("/v2.0/vehicles/{}/vin/", v.id),
        format!("/v2.0/vehicles/{}/permissions/?limit=5&offset=0", v.id),
        format!(
            "/v2.0/vehicles/{}/odometer/?flags=foo:true%20bar:false",
            v.id
        ),
        format!("/v2.0/vehicles/{}/odometer?flags=foo:true+bar:false", v.id),
        format!("/v2.0/vehicles/{}/tires/pressure/", v.id),
        format!("/v2.0/vehicles/{}/tesla/virtual_key/", v.id),
        format!("/v2.0/vehicles/{}/tesla/user/access/", v.id),
        format!("/v2.0/vehicles/{}/tesla/attributes/", v.id),
    ] {
        let a = sim.get(&path, Some(&token)).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
    }
    let batch = sim
        .post(
            &format!("/v2.0/vehicles/{}/batch/", v.id),
            Some(&token),
            &json!({"requests": [{"path": "/odometer/"}]}),
        )
        .await;
    assert_eq!(batch.json()["responses"][0]["code"], 200);
    let mgmt = sim
        .management("/?limit=2", "default", sim.handle.amt())
        .await;
    assert_eq!(mgmt.status, 200);
}

#[tokio::test]
async fn unknown_token_is_an_authentication_error() {
    let sim = start(quiet(20, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    sim.get(
        &format!("/v2.0/vehicles/{}/odometer", v.id),
        Some("not-a-token"),
    )
    .await
    .expect_error(401, "AUTHENTICATION", None);
    sim.get("/v2.0/user", None)
        .await
        .expect_error(401, "AUTHENTICATION", None);
}

#[tokio::test]
async fn vehicle_of_another_user_is_not_found() {
    let sim = start(quiet(50, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    let other =
        sim.vehicle_where(|o| o.user_id != v.user_id && o.situation != Situation::TokenExpired);
    sim.get(
        &format!("/v2.0/vehicles/{}/odometer", v.id),
        Some(&sim.token_of(other)),
    )
    .await
    .expect_error(404, "RESOURCE_NOT_FOUND", Some("PATH"));
    sim.get("/v2.0/vehicles/no-such-vehicle", Some(&sim.token_of(v)))
        .await
        .expect_error(404, "RESOURCE_NOT_FOUND", Some("PATH"));
}

#[tokio::test]
async fn unknown_paths_and_versions_are_resource_not_found() {
    let sim = start(quiet(20, 7)).await;
    sim.get("/v2.0/nothing/here", None)
        .await
        .expect_error(404, "RESOURCE_NOT_FOUND", Some("PATH"));
    sim.get("/v1.0/vehicles", None)
        .await
        .expect_error(404, "RESOURCE_NOT_FOUND", Some("VERSION"));
}

#[tokio::test]
async fn tesla_endpoints_on_another_make_are_not_compatible() {
    let sim = start(quiet(100, 7)).await;
    let v = sim.vehicle_where(|v| v.situation == Situation::Healthy && !v.is_tesla());
    let token = sim.token_of(v);
    for tail in ["tesla/virtual_key", "tesla/user/access", "tesla/attributes"] {
        sim.get(&format!("/v2.0/vehicles/{}/{tail}", v.id), Some(&token))
            .await
            .expect_error(501, "COMPATIBILITY", Some("MAKE_NOT_COMPATIBLE"));
    }
}

#[tokio::test]
async fn make_in_upper_case_in_a_tesla_path_is_a_permission_error() {
    let sim = start(quiet(100, 7)).await;
    let v = sim.vehicle_where(|v| v.situation == Situation::Healthy && v.is_tesla());
    let token = sim.token_of(v);
    sim.get(
        &format!("/v2.0/vehicles/{}/TESLA/virtual_key", v.id),
        Some(&token),
    )
    .await
    .expect_error(403, "PERMISSION", None);
    sim.get(
        &format!("/v2.0/vehicles/{}/tesla/nothing", v.id),
        Some(&token),
    )
    .await
    .expect_error(404, "RESOURCE_NOT_FOUND", Some("PATH"));
}

#[tokio::test]
async fn healthy_tesla_is_paired_with_location_scope_and_at_home_field() {
    let sim = start(quiet(100, 7)).await;
    let v = sim.vehicle_where(|v| v.situation == Situation::Healthy && v.is_tesla());
    let token = sim.token_of(v);
    let key = sim
        .get(
            &format!("/v2.0/vehicles/{}/tesla/virtual_key", v.id),
            Some(&token),
        )
        .await;
    assert_eq!(key.json(), json!({"isPaired": true}));
    let access = sim
        .get(
            &format!("/v2.0/vehicles/{}/tesla/user/access", v.id),
            Some(&token),
        )
        .await
        .json();
    assert_eq!(access["accessType"], "OWNER");
    assert!(
        access["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("vehicle_location"))
    );
    let attrs = sim
        .get(
            &format!("/v2.0/vehicles/{}/tesla/attributes", v.id),
            Some(&token),
        )
        .await
        .json();
    assert_eq!(attrs["id"], json!(v.id));
    assert_eq!(attrs["atHome"], json!(v.at_home));
    assert!(attrs["sentryMode"]["available"].is_boolean());
}

#[tokio::test]
async fn reauthentication_link_opens_a_simulated_connect_page() {
    let sim = start(quiet(20, 7)).await;
    let a = sim
        .get(
            "/oauth/reauthenticate?response_type=vehicle_id&client_id=c&vehicle_id=%3Cv1%3E",
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("text/html"));
    assert!(
        a.text.contains("re-authenticate") && a.text.contains("&lt;v1&gt;"),
        "{}",
        a.text
    );
    let authorize = sim
        .get(
            "/oauth/authorize?response_type=code&scope=required%3Aread_location+read_odometer",
            None,
        )
        .await;
    assert!(
        authorize
            .text
            .contains("required:read_location read_odometer"),
        "{}",
        authorize.text
    );
}

// ---- Management API ----

#[tokio::test]
async fn management_lists_connections_newest_first_over_three_pages() {
    let sim = start(quiet(25, 7)).await;
    let mut cursor: Option<String> = None;
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=10&cursor={c}"),
            None => "?limit=10".to_string(),
        };
        let a = sim.management(&query, "default", sim.handle.amt()).await;
        assert_eq!(a.status, 200, "{}", a.text);
        let body = a.json();
        rows.extend(body["connections"].as_array().unwrap().iter().cloned());
        pages += 1;
        match &body["paging"]["cursor"] {
            Value::Null => break,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("cursor must be a string or null, got {other}"),
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    assert_eq!(rows.len(), 25);
    let dates: Vec<&str> = rows
        .iter()
        .map(|r| r["connectedAt"].as_str().unwrap())
        .collect();
    assert!(
        dates.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {dates:?}"
    );
    for r in &rows {
        assert_eq!(r["mode"], "live");
        let v = sim
            .handle
            .fleet()
            .vehicle(r["vehicleId"].as_str().unwrap())
            .expect("known vehicle");
        assert_eq!(r["userId"], json!(v.user_id));
        assert_eq!(r["connectedAt"], json!(v.connected_at_text()));
        assert!(v.connected_at < jiff::Timestamp::now());
    }
    let mut ids: Vec<&str> = rows
        .iter()
        .map(|r| r["vehicleId"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25);
}

#[tokio::test]
async fn management_limit_defaults_to_ten_and_caps_at_one_hundred() {
    let sim = start(quiet(150, 7)).await;
    let default = sim.management("", "default", sim.handle.amt()).await.json();
    assert_eq!(default["connections"].as_array().unwrap().len(), 10);
    let max = sim
        .management("?limit=100", "default", sim.handle.amt())
        .await
        .json();
    assert_eq!(max["connections"].as_array().unwrap().len(), 100);
    assert!(max["paging"]["cursor"].is_string());
    sim.management("?limit=101", "default", sim.handle.amt())
        .await
        .expect_error(400, "VALIDATION", Some("PARAMETER"));
    sim.management("?cursor=garbage", "default", sim.handle.amt())
        .await
        .expect_error(400, "VALIDATION", Some("PARAMETER"));
}

#[tokio::test]
async fn management_filters_by_user_and_by_vehicle() {
    let sim = start(quiet(200, 7)).await;
    let user = sim
        .handle
        .fleet()
        .users
        .iter()
        .find(|u| u.vehicles.len() >= 2)
        .unwrap();
    let body = sim
        .management(
            &format!("?user_id={}", user.id),
            "default",
            sim.handle.amt(),
        )
        .await
        .json();
    let rows = body["connections"].as_array().unwrap();
    assert_eq!(rows.len(), user.vehicles.len());
    assert!(rows.iter().all(|r| r["userId"] == json!(user.id)));
    assert_eq!(body["paging"]["cursor"], Value::Null);

    let v = &sim.handle.fleet().vehicles[user.vehicles[0]];
    let one = sim
        .management(
            &format!("/?vehicle_id={}&limit=10", v.id),
            "default",
            sim.handle.amt(),
        )
        .await
        .json();
    assert_eq!(
        one["connections"],
        json!([{"userId": v.user_id, "vehicleId": v.id, "connectedAt": v.connected_at_text(), "mode": "live"}])
    );
    let none = sim
        .management("?vehicle_id=unknown", "default", sim.handle.amt())
        .await
        .json();
    assert_eq!(none["connections"], json!([]));
}

#[tokio::test]
async fn management_rejects_wrong_basic_auth() {
    let sim = start(quiet(20, 7)).await;
    sim.management("", "default", "wrong-amt")
        .await
        .expect_error(401, "AUTHENTICATION", None);
    sim.management("", "admin", sim.handle.amt())
        .await
        .expect_error(401, "AUTHENTICATION", None);
    let bearer = sim
        .get("/v2.0/management/connections", Some(sim.handle.amt()))
        .await;
    bearer.expect_error(401, "AUTHENTICATION", None);
    // The exact header the SDKs send for AMT "sim-amt".
    let a = sim
        .http
        .get(sim.url("/v2.0/management/connections"))
        .header("Authorization", "Basic ZGVmYXVsdDpzaW0tYW10")
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
}

// ---- ground truth, stats, determinism ----

#[tokio::test]
async fn sim_fleet_endpoint_is_the_ground_truth() {
    let sim = start(quiet(30, 7)).await;
    let a = sim.get("/_sim/fleet", None).await;
    assert_eq!(a.status, 200);
    let rows = a.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 30);
    for (row, v) in rows.iter().zip(&sim.handle.fleet().vehicles) {
        assert_eq!(row["vehicleId"], json!(v.id));
        assert_eq!(row["userId"], json!(v.user_id));
        assert_eq!(row["vin"], json!(v.vin));
        assert_eq!(row["year"], json!(v.year));
        assert_eq!(row["situation"], json!(v.situation.name()));
        assert_eq!(
            Situation::from_name(row["situation"].as_str().unwrap()),
            Some(v.situation)
        );
    }
}

#[tokio::test]
async fn stats_count_requests_by_kind_and_reset() {
    let sim = start(quiet(30, 7)).await;
    let v = sim.vehicle(Situation::Healthy);
    let token = sim.token_of(v);
    sim.get(&format!("/v2.0/vehicles/{}", v.id), Some(&token))
        .await;
    sim.get(&format!("/v2.0/vehicles/{}/odometer", v.id), Some(&token))
        .await;
    sim.post(
        &format!("/v2.0/vehicles/{}/batch", v.id),
        Some(&token),
        &json!({"requests": [{"path": "/odometer"}, {"path": "/location"}]}),
    )
    .await;
    sim.management("", "default", sim.handle.amt()).await;
    let stats = sim.get("/_sim/stats", None).await.json();
    assert_eq!(stats["requestsTotal"], 4);
    assert_eq!(stats["byEndpoint"]["attributes"], 1);
    assert_eq!(stats["byEndpoint"]["data"], 1);
    assert_eq!(stats["byEndpoint"]["batch"], 1);
    assert_eq!(stats["byEndpoint"]["management"], 1);
    assert_eq!(stats["rateLimitedApp"], 0);
    let one = sim
        .get(&format!("/_sim/stats?vehicle_id={}", v.id), None)
        .await
        .json();
    assert_eq!(one["requests"], 3);
    assert_eq!(one["dataCalls"], 3);
    assert_eq!(sim.handle.vehicle_requests(&v.id), Some(3));
    assert_eq!(sim.handle.stats().requests_total, 4);

    let reset = sim.post("/_sim/stats/reset", None, &json!({})).await;
    assert_eq!(reset.status, 200);
    assert_eq!(
        sim.get("/_sim/stats", None).await.json()["requestsTotal"],
        0
    );
    assert_eq!(sim.handle.vehicle_requests(&v.id), Some(0));
}

#[test]
fn same_seed_gives_the_same_fleet_and_another_seed_another() {
    let a = Fleet::generate(500, 42);
    let b = Fleet::generate(500, 42);
    let c = Fleet::generate(500, 43);
    assert_eq!(a, b);
    assert_ne!(a.vehicles, c.vehicles);
    assert_ne!(a.vehicles[0].id, c.vehicles[0].id);
}

#[test]
fn fleet_vins_have_valid_check_digits_and_match_their_make() {
    let fleet = Fleet::generate(5_000, 7);
    let wmi_of_make = |make: &str| -> &'static [&'static str] {
        match make {
            "TESLA" => &["5YJ", "7SA", "LRW", "XP7", "7G2"],
            "FORD" => &["1FA", "1FM", "1FT", "3FM"],
            "BMW" => &["WBA", "5UX", "WBY", "WB5"],
            _ => &[],
        }
    };
    for v in &fleet.vehicles {
        assert_eq!(v.vin.len(), 17, "{}", v.vin);
        assert!(vin::is_valid(&v.vin), "{} has a wrong check digit", v.vin);
        assert!(!v.vin.contains(['I', 'O', 'Q']), "{}", v.vin);
        assert_eq!(
            v.vin.chars().nth(9),
            vin::model_year_code(v.year),
            "{} year {}",
            v.vin,
            v.year
        );
        let allowed = wmi_of_make(&v.make);
        if !allowed.is_empty() {
            assert!(allowed.contains(&&v.vin[..3]), "{} for {}", v.vin, v.make);
        }
    }
}

#[test]
fn fleet_shares_look_like_a_real_app() {
    let fleet = Fleet::generate(10_000, 7);
    let share =
        |s: Situation| fleet.vehicles.iter().filter(|v| v.situation == s).count() as f64 / 10_000.0;
    assert!(
        (0.4..0.6).contains(&share(Situation::Healthy)),
        "healthy {}",
        share(Situation::Healthy)
    );
    for s in Situation::ALL {
        assert!(share(s) > 0.0, "{s} never occurs");
    }
    let teslas: Vec<_> = fleet.vehicles.iter().filter(|v| v.is_tesla()).collect();
    assert!(
        teslas
            .iter()
            .any(|v| matches!(v.model.as_str(), "Model S" | "Model X") && v.year <= 2020)
    );
    assert!(teslas.iter().any(|v| v.model == "Cybertruck"));
    let makes: std::collections::BTreeSet<&str> =
        fleet.vehicles.iter().map(|v| v.make.as_str()).collect();
    for make in [
        "TESLA",
        "FORD",
        "BMW",
        "HYUNDAI",
        "KIA",
        "VOLKSWAGEN",
        "RIVIAN",
        "TOYOTA",
    ] {
        assert!(makes.contains(make), "{make} missing");
    }
    let owned: Vec<usize> = fleet.users.iter().map(|u| u.vehicles.len()).collect();
    assert!(owned.iter().all(|n| (1..=3).contains(n)) && owned.contains(&3));
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = start(vtriage::sim::SimConfig {
        header_read_timeout: std::time::Duration::from_millis(300),
        ..quiet(3, 7)
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(sim.handle.addr())
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let request = b"GET /v2.0/vehicles HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut_off = false;
    for byte in request {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    if !cut_off {
        // The server answers (408) or closes once the headers took too long.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut rest),
        )
        .await;
        assert!(read.is_ok(), "the connection was closed by the server");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "cut off after the header timeout, not held"
    );
}
