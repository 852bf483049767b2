//! Starts a simulator over loopback and talks to it with plain reqwest and JSON values.
#![allow(dead_code)]

use reqwest::header::HeaderMap;
use serde_json::Value;
use vtriage::sim::{self, SimConfig, SimHandle, SimVehicle, Situation};

pub struct Sim {
    pub handle: SimHandle,
    pub http: reqwest::Client,
}

/// One answer, read completely.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a full v2.0 error body of this status, type and code; returns the body.
    pub fn expect_error(&self, status: u16, error_type: &str, code: Option<&str>) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
        );
        let body = self.json();
        assert_eq!(body["type"], error_type, "{body}");
        assert_eq!(
            body["code"],
            code.map_or(Value::Null, |c| Value::String(c.into())),
            "{body}"
        );
        assert_eq!(body["statusCode"], u64::from(status), "{body}");
        for key in [
            "description",
            "docURL",
            "requestId",
            "resolution",
            "suggestedUserMessage",
        ] {
            assert!(body.get(key).is_some(), "{key} missing in {body}");
        }
        assert!(body["resolution"].is_object(), "{body}");
        assert_eq!(
            Some(body["requestId"].as_str().unwrap_or_default()),
            self.header("sc-request-id")
        );
        body
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("reqwest client")
}

pub async fn start(config: SimConfig) -> Sim {
    let handle = sim::spawn(config, "127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("simulator starts");
    Sim {
        handle,
        http: client(),
    }
}

/// A simulator without limits, latency or faults, so tests see only situations.
pub fn quiet(vehicles: usize, seed: u64) -> SimConfig {
    SimConfig {
        vehicles,
        seed,
        vehicle_calls_per_hour: 0,
        ..SimConfig::default()
    }
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.handle.origin(), path)
    }

    async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Answer {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.http.get(self.url(path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        Self::read(request.send().await.expect("request sent")).await
    }

    pub async fn get_with(&self, path: &str, token: &str, header: (&str, &str)) -> Answer {
        let request = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .header(header.0, header.1);
        Self::read(request.send().await.expect("request sent")).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        Self::read(request.send().await.expect("request sent")).await
    }

    pub async fn management(&self, query: &str, user: &str, password: &str) -> Answer {
        let request = self
            .http
            .get(self.url(&format!("/v2.0/management/connections{query}")))
            .basic_auth(user, Some(password));
        Self::read(request.send().await.expect("request sent")).await
    }

    pub fn vehicle(&self, situation: Situation) -> &SimVehicle {
        self.vehicle_where(|v| v.situation == situation)
    }

    pub fn vehicle_where(&self, pred: impl Fn(&SimVehicle) -> bool) -> &SimVehicle {
        self.handle
            .fleet()
            .vehicles
            .iter()
            .find(|v| pred(v))
            .expect("the fleet has such a vehicle")
    }

    pub fn token_of(&self, v: &SimVehicle) -> String {
        self.handle
            .fleet()
            .user(&v.user_id)
            .expect("owner")
            .access_token
            .clone()
    }
}
