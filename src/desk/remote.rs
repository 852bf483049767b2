//! The agent's side of the desk: reads `/api/v1/` and turns it into the same `fetch::Command` /
//! `fetch::Event` channels a local scheduler gives, so the dashboard and the headless commands run
//! unchanged against a desk. It keeps the last state when the server goes away and connects again
//! by itself with backoff; probe requests made meanwhile are sent once it is back.

use crate::smartcar::ApiError;
use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::fetch::{Command, ConnectionInfo, Event, Priority};
use crate::smartcar::{Connection, Secret, VehicleAttributes};
use crate::untrusted::text::{is_unsafe, one_line};

use super::wire::{
    API_PREFIX, FleetPage, ProbeAnswer, RulesDoc, SseReader, StreamEvent, VehicleItem, VinAnswer,
};

/// Why the desk could not be read.
/// The largest answer read from a desk: a fleet page of 5,000 vehicles with their reports fits
/// well inside; anything bigger is refused rather than read into memory.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    #[error("--server `{0}`: give the desk's http(s) URL without a user name or password")]
    Url(String),
    #[error(
        "--server {server}: plain http:// off this machine would send the agent token unencrypted; use https:// (or --allow-insecure-origin)"
    )]
    Insecure { server: String },
    #[error("cannot reach the desk at {} ({server}): {reason}", crate::smartcar::origin::place_of(.server))]
    Unreachable { server: String, reason: String },
    #[error(
        "the desk refused the agent token (unknown or revoked); ask for a new one (`vtriage agent add`)"
    )]
    Refused,
    #[error("the desk answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error("`{0}` cannot be sent as one URL path segment")]
    Unsendable(String),
    #[error("the desk's answer could not be read: {0}")]
    Unreadable(String),
}

/// Where the link to the desk stands, for the dashboard's header.
/// An HTTP client's error with every cause, innermost last: the reason is at the end.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Reading the live stream; the agents whose probe requests wait now.
    Connected { agents_probing: Vec<String> },
    /// The desk went away; the last state stays on screen and it is tried again.
    Reconnecting { attempt: u32, reason: String },
    /// The desk refused the token: nothing more is read.
    Refused,
}

/// The desk's API, with one agent's token.
#[derive(Clone)]
pub struct DeskClient {
    http: reqwest::Client,
    server: String,
    token: Secret,
}

/// The longest the stream may stay silent (it sends a keep-alive every 10 s) before the link is
/// taken for lost.
const STREAM_SILENCE: Duration = Duration::from_secs(30);
/// Reconnection waits double from this up to [`BACKOFF_MAX`].
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How long the `attempt`-th reconnection waits (the first at once, then doubling, capped).
pub fn backoff(attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    BACKOFF_BASE
        .saturating_mul(1u32 << (attempt - 1).min(16))
        .min(BACKOFF_MAX)
}

impl DeskClient {
    /// Checks the URL (http(s), no credentials, no plain http off loopback unless allowed).
    pub fn new(
        server: &str,
        token: Secret,
        allow_insecure: bool,
    ) -> Result<DeskClient, RemoteError> {
        let server = server.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&server)
            .map_err(|_| RemoteError::Url(one_line(&server).into_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https")
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err(RemoteError::Url(one_line(&server).into_owned()));
        }
        if crate::smartcar::check_origin(&server, allow_insecure).is_err() {
            return Err(RemoteError::Insecure {
                server: one_line(&server).into_owned(),
            });
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("vtriage/", env!("CARGO_PKG_VERSION")))
            // The token must not follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RemoteError::Unreachable {
                server: server.clone(),
                reason: e.to_string(),
            })?;
        Ok(DeskClient {
            http,
            server,
            token,
        })
    }

    /// The desk's URL as given (shown in the header).
    pub fn server(&self) -> &str {
        &self.server
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{API_PREFIX}{path}", self.server))
            .bearer_auth(self.token.expose())
    }

    /// `{server}/api/v1/` and `segments`, each percent-encoded as one path segment, so an id from
    /// the desk or the agent can never reach another route.
    fn api_url(&self, segments: &[&str]) -> Result<url::Url, RemoteError> {
        let bad = || RemoteError::Url(one_line(&self.server).into_owned());
        // `.` and `..` would be resolved as path steps, not sent as a name.
        if let Some(step) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
            return Err(RemoteError::Unsendable((*step).to_string()));
        }
        let mut url =
            url::Url::parse(&format!("{}{API_PREFIX}/", self.server)).map_err(|_| bad())?;
        url.path_segments_mut()
            .map_err(|()| bad())?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn unreachable(&self, e: &reqwest::Error) -> RemoteError {
        RemoteError::Unreachable {
            server: one_line(&self.server).into_owned(),
            reason: crate::smartcar::origin::transport_cause(&error_chain(e)),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, T), RemoteError> {
        // The same reading as a Smartcar answer: a bounded body, redirects as answers.
        let exchanged =
            crate::smartcar::client::exchange(request, Duration::from_secs(60), MAX_ANSWER_BYTES)
                .await;
        let ex = match exchanged {
            Ok(ex) => ex,
            Err(ApiError::Transport { message, .. }) => {
                return Err(RemoteError::Unreachable {
                    server: one_line(&self.server).into_owned(),
                    reason: crate::smartcar::origin::transport_cause(&message),
                });
            }
            Err(other) => {
                return Err(RemoteError::Unreadable(
                    one_line(&other.to_string()).into_owned(),
                ));
            }
        };
        let status = ex.meta.status;
        if status == 401 {
            return Err(RemoteError::Refused);
        }
        let body = ex.body;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or_else(|| "no reason given".into());
            return Err(RemoteError::Server {
                status,
                message: one_line(&message).into_owned(),
            });
        }
        serde_json::from_slice(&body)
            .map(|v| (status, v))
            .map_err(|e| RemoteError::Unreadable(e.to_string()))
    }

    /// The desk's rules, needs and countdowns.
    pub async fn rules(&self) -> Result<RulesDoc, RemoteError> {
        Ok(self.json(self.get("/rules")).await?.1)
    }

    /// The whole fleet, page by page.
    pub async fn fleet(&self) -> Result<Vec<VehicleItem>, RemoteError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = self.get("/fleet").query(&[("limit", "5000")]);
            if let Some(a) = &after {
                request = request.query(&[("after", a.as_str())]);
            }
            let (_, page): (u16, FleetPage) = self.json(request).await?;
            let last = page.vehicles.last().map(|v| v.vehicle_id.clone());
            all.extend(page.vehicles.into_iter().filter_map(vetted));
            match page.next {
                // A next page must move forward, or a broken server would page forever.
                Some(next) if Some(&next) == last.as_ref() && after.as_ref() != Some(&next) => {
                    after = Some(next)
                }
                _ => return Ok(all),
            }
        }
    }

    /// Asks the desk to probe a vehicle at Focus priority; answers when the probe lands (or the
    /// desk's wait ends first). `force` asks for a new answer even when the desk's last one is fresh.
    pub async fn request_probe(
        &self,
        vehicle_id: &str,
        force: bool,
    ) -> Result<ProbeAnswer, RemoteError> {
        let mut url = self.api_url(&["vehicles", vehicle_id, "probe"])?;
        if force {
            url.set_query(Some("force=true"));
        }
        let request = self.http.post(url).bearer_auth(self.token.expose());
        let (_, mut answer): (u16, ProbeAnswer) = self.json(request).await?;
        answer.vehicle = answer.vehicle.and_then(vetted);
        Ok(answer)
    }

    /// Asks the desk for the vehicle with this VIN; answers when its lookup ends or the desk's wait
    /// does (then `done` is false: ask again).
    pub async fn find_vin(&self, vin: &str) -> Result<VinAnswer, RemoteError> {
        let mut url = self.api_url(&["vins", vin])?;
        // This client has said a check digit that does not fit and had the agent confirm.
        url.query_pairs_mut().append_pair("anyway", "true");
        let request = self.http.post(url).bearer_auth(self.token.expose());
        let (_, mut answer): (u16, VinAnswer) = self.json(request).await?;
        // Only the VIN asked for, and an id that is one line.
        answer.vin = vin.to_string();
        answer.vehicle_id = answer
            .vehicle_id
            .filter(|id| !id.is_empty() && !id.chars().any(is_unsafe));
        Ok(answer)
    }

    async fn open_stream(&self) -> Result<reqwest::Response, RemoteError> {
        let response = self
            .get("/stream")
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        match response.status().as_u16() {
            200 => Ok(response),
            401 => Err(RemoteError::Refused),
            status => Err(RemoteError::Server {
                status,
                message: "the live stream did not open".into(),
            }),
        }
    }
}

/// A vehicle from the network, or `None` when its id could not be shown or typed back safely.
/// The free text is made one line; the report's text is shown through the same filters as a
/// local probe's.
fn vetted(mut v: VehicleItem) -> Option<VehicleItem> {
    if matches!(v.vehicle_id.as_str(), "" | "." | "..")
        || v.vehicle_id.len() > 256
        || v.vehicle_id.chars().any(is_unsafe)
    {
        return None;
    }
    if v.report
        .as_ref()
        .is_some_and(|r| r.vehicle_id != v.vehicle_id)
    {
        v.report = None;
        v.diagnosis = None;
    }
    let clean = |s: &mut Option<String>| {
        if let Some(t) = s.as_mut() {
            *t = one_line(t).into_owned();
        }
    };
    clean(&mut v.user_id);
    clean(&mut v.connected_at);
    // A VIN is 17 letters and digits; anything else is not one.
    if v.vin
        .as_ref()
        .is_some_and(|vin| vin.len() != 17 || !vin.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        v.vin = None;
    }
    clean(&mut v.make);
    clean(&mut v.model);
    Some(v)
}

/// The desk's verdict on a vehicle, as the event a store keeps as given; `None` while the desk
/// knows nothing of it. The desk is the one diagnoser: nothing here diagnoses its reports again.
pub fn verdict_event(v: &VehicleItem) -> Option<Event> {
    match (&v.report, &v.diagnosis) {
        (Some(report), Some(diagnosis)) => Some(Event::Diagnosed {
            report: report.clone(),
            diagnosis: Box::new(diagnosis.clone()),
            cause: v.cause.clone(),
        }),
        _ => None,
    }
}

/// The events that put `items` into a store: each vehicle's verdict, then the listing (a verdict
/// first, so a probe asked for after the listing is never answered by an older one).
pub fn fleet_events(items: &[VehicleItem]) -> Vec<Event> {
    let mut events: Vec<Event> = items.iter().filter_map(verdict_event).collect();
    events.push(Event::ConnectionsListed {
        connections: items.iter().map(connection).collect(),
    });
    // After the listing: a VIN is learned for a vehicle the store holds.
    let vins: Vec<(String, String)> = items
        .iter()
        .filter_map(|v| Some((v.vehicle_id.clone(), v.vin.clone()?)))
        .collect();
    if !vins.is_empty() {
        events.push(Event::VinsLearned { vins });
    }
    events
}

fn connection(v: &VehicleItem) -> ConnectionInfo {
    ConnectionInfo {
        connection: Connection {
            user_id: v.user_id.clone().unwrap_or_default(),
            vehicle_id: v.vehicle_id.clone(),
            connected_at: v.connected_at.clone(),
            mode: None,
        },
        // The desk holds the credentials; from here every vehicle can be asked for.
        has_token: true,
        other_users: Vec::new(),
        attributes: match (&v.make, &v.model, v.year) {
            (Some(make), Some(model), Some(year)) => Some(VehicleAttributes {
                id: v.vehicle_id.clone(),
                make: make.clone(),
                model: model.clone(),
                year,
            }),
            _ => None,
        },
    }
}

/// A running link to the desk: send commands, read events, watch the link.
pub struct RemoteSession {
    pub commands: mpsc::UnboundedSender<Command>,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub link: watch::Receiver<Link>,
    pub rules: RulesDoc,
}

/// Reads the desk's rules (failing at once when the desk is unreachable or refuses the token),
/// then runs the link on a task of its own.
pub async fn start(client: DeskClient) -> Result<RemoteSession, RemoteError> {
    let rules = client.rules().await?;
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (link_tx, link_rx) = watch::channel(Link::Reconnecting {
        attempt: 0,
        reason: "connecting".into(),
    });
    tokio::spawn(run(client, command_rx, event_tx, link_tx));
    Ok(RemoteSession {
        commands: command_tx,
        events: event_rx,
        link: link_rx,
        rules,
    })
}

/// What the link's loop keeps between connections.
struct State {
    client: DeskClient,
    events: mpsc::UnboundedSender<Event>,
    link: watch::Sender<Link>,
    /// Vehicles whose probe request has not reached the desk yet, and whether any asked to force.
    queued: BTreeMap<String, bool>,
    /// Probe requests that failed on the way come back here.
    retry_tx: mpsc::UnboundedSender<(String, bool)>,
    agents_probing: Vec<String>,
    /// The last connection got as far as the live stream.
    reached: bool,
}

/// Why one connection ended.
enum Ended {
    Lost(String),
    Refused,
    Shutdown,
}

async fn run(
    client: DeskClient,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    link: watch::Sender<Link>,
) {
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel();
    let mut st = State {
        client,
        events,
        link,
        queued: BTreeMap::new(),
        retry_tx,
        agents_probing: Vec::new(),
        reached: false,
    };
    let mut attempt: u32 = 0;
    loop {
        let ended = connected(&mut st, &mut commands, &mut retry_rx).await;
        let reason = match ended {
            Ended::Shutdown => return,
            Ended::Refused => {
                let _ = st.link.send(Link::Refused);
                let _ = st.events.send(Event::SourceError {
                    message: RemoteError::Refused.to_string(),
                });
                // Nothing more is read; commands are taken until the caller is done.
                while let Some(command) = commands.recv().await {
                    if command == Command::Shutdown {
                        return;
                    }
                }
                return;
            }
            Ended::Lost(reason) => reason,
        };
        // A link that was up starts counting again: the first retry goes almost at once.
        attempt = if std::mem::take(&mut st.reached) {
            1
        } else {
            attempt.saturating_add(1)
        };
        tracing::info!(attempt, reason = %one_line(&reason), "the desk link is down; reconnecting");
        let _ = st.link.send(Link::Reconnecting {
            attempt,
            reason: one_line(&reason).into_owned(),
        });
        // Waits, still taking commands: what the agent asks for meanwhile is queued.
        let wait = tokio::time::sleep(backoff(attempt));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                command = commands.recv() => match command {
                    None | Some(Command::Shutdown) => return,
                    Some(c) => queue(&mut st, c),
                },
                Some((id, force)) = retry_rx.recv() => { enqueue(&mut st.queued, id, force); }
            }
        }
    }
}

/// Probe requests while no connection is up: kept for later.
fn queue(st: &mut State, command: Command) {
    if let Command::Probe {
        vehicle_ids,
        priority,
        force,
    } = command
        && (priority == Priority::Focus || force)
    {
        for id in vehicle_ids {
            enqueue(&mut st.queued, id, force);
        }
    }
}

/// Keeps one request per vehicle; a forced one stays forced.
fn enqueue(queued: &mut BTreeMap<String, bool>, vehicle_id: String, force: bool) {
    *queued.entry(vehicle_id).or_default() |= force;
}

/// Sends one probe request on a task of its own; its answer comes back as an event.
fn send_probe(st: &State, vehicle_id: String, force: bool) {
    let (client, events, retry) = (st.client.clone(), st.events.clone(), st.retry_tx.clone());
    tokio::spawn(async move {
        match client.request_probe(&vehicle_id, force).await {
            Ok(answer) => {
                if let Some(event) = answer.vehicle.as_ref().and_then(verdict_event) {
                    let _ = events.send(event);
                }
            }
            Err(RemoteError::Unreachable { .. }) => {
                let _ = retry.send((vehicle_id, force));
            }
            Err(e) => {
                tracing::warn!(vehicle = %one_line(&vehicle_id), error = %one_line(&e.to_string()), "probe request refused");
            }
        }
    });
}

/// Looks a VIN up through the desk on a task of its own, asking again while the desk's lookup
/// goes on; the outcome comes back as the events a local lookup sends.
fn find_vin(st: &State, vin: String) {
    let (client, events) = (st.client.clone(), st.events.clone());
    tokio::spawn(async move {
        // Neither a car found nor every candidate read: said as not known, never as "no vehicle".
        let unknown = |why: String| Event::VinLookupDone {
            vin: vin.clone(),
            vehicle_id: None,
            requests: 0,
            unreadable: 0,
            gaps: crate::fetch::VinLookupGaps {
                unknown: Some(why),
                ..Default::default()
            },
        };
        // Each ask waits up to the desk's limit (30 s); a lookup longer than this is given up here.
        for _ in 0..20 {
            match client.find_vin(&vin).await {
                Ok(answer) if answer.done => {
                    if let Some(id) = &answer.vehicle_id {
                        let vins = vec![(id.clone(), vin.clone())];
                        let _ = events.send(Event::VinsLearned { vins });
                    }
                    let gaps = crate::fetch::VinLookupGaps {
                        // The desk's own line, from the network: one line, no controls.
                        unknown: answer.gaps.map(|g| format!("the desk {}", one_line(&g))),
                        ..Default::default()
                    };
                    let _ = events.send(Event::VinLookupDone {
                        vin: vin.clone(),
                        vehicle_id: answer.vehicle_id,
                        requests: answer.requests,
                        unreadable: 0,
                        gaps,
                    });
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(vin = %one_line(&vin), error = %one_line(&e.to_string()), "VIN lookup refused");
                    let why = format!(
                        "the desk did not look it up ({}); whether a car has it is not known",
                        one_line(&e.to_string())
                    );
                    let _ = events.send(unknown(why));
                    return;
                }
            }
        }
        let _ = events.send(unknown(
            "the desk's lookup did not end within 10 minutes; whether a car has it is not known (ask again)"
                .into(),
        ));
    });
}

/// One connection: open the stream, read the fleet, send what was queued, then follow the stream
/// and the commands until something ends it.
async fn connected(
    st: &mut State,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    retry_rx: &mut mpsc::UnboundedReceiver<(String, bool)>,
) -> Ended {
    // The stream first, so no change between the fleet's read and the stream's start is missed.
    let mut response = match st.client.open_stream().await {
        Ok(r) => r,
        Err(RemoteError::Refused) => return Ended::Refused,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    if let Err(e) = resync(st).await {
        return match e {
            RemoteError::Refused => Ended::Refused,
            e => Ended::Lost(e.to_string()),
        };
    }
    st.reached = true;
    let _ = st.link.send(Link::Connected {
        agents_probing: st.agents_probing.clone(),
    });
    for (id, force) in std::mem::take(&mut st.queued) {
        send_probe(st, id, force);
    }
    let mut reader = SseReader::default();
    loop {
        tokio::select! {
            chunk = tokio::time::timeout(STREAM_SILENCE, response.chunk()) => {
                let chunk = match chunk {
                    Ok(Ok(Some(chunk))) => chunk,
                    Ok(Ok(None)) => return Ended::Lost("the desk closed the stream".into()),
                    Ok(Err(e)) => return Ended::Lost(e.to_string()),
                    Err(_) => return Ended::Lost("the stream went silent".into()),
                };
                for (name, data) in reader.push(&chunk) {
                    let Some(event) = StreamEvent::decode(&name, &data) else {
                        continue;
                    };
                    match event {
                        StreamEvent::Vehicle(item) => {
                            if let Some(v) = vetted(*item) {
                                if let Some(vin) = &v.vin {
                                    let vins = vec![(v.vehicle_id.clone(), vin.clone())];
                                    let _ = st.events.send(Event::VinsLearned { vins });
                                }
                                if let Some(event) = verdict_event(&v) {
                                    let _ = st.events.send(event);
                                }
                            }
                        }
                        StreamEvent::Probing { vehicle_id } => {
                            let _ = st.events.send(Event::ProbeStarted {
                                vehicle_id,
                                priority: Priority::Focus,
                            });
                        }
                        StreamEvent::Progress(desk) => {
                            let agents: Vec<String> = desk
                                .agents_probing
                                .iter()
                                .map(|a| one_line(a).into_owned())
                                .collect();
                            if agents != st.agents_probing {
                                st.agents_probing = agents;
                                let _ = st.link.send(Link::Connected {
                                    agents_probing: st.agents_probing.clone(),
                                });
                            }
                            let _ = st.events.send(Event::Progress(desk.progress));
                        }
                        StreamEvent::Revoked => return Ended::Refused,
                        StreamEvent::Resync => {
                            if let Err(e) = resync(st).await {
                                return Ended::Lost(e.to_string());
                            }
                        }
                    }
                }
            }
            command = commands.recv() => match command {
                None | Some(Command::Shutdown) => return Ended::Shutdown,
                Some(Command::Probe { vehicle_ids, priority, force }) => {
                    // Rows scrolling by and sweeps are the desk's to decide: only what an agent
                    // asks for by name becomes a request.
                    if priority == Priority::Focus || force {
                        for id in vehicle_ids {
                            send_probe(st, id, force);
                        }
                    }
                }
                Some(Command::FindVin { vin }) => find_vin(st, vin.vin),
                Some(Command::RefreshConnections) => {
                    if let Err(e) = resync(st).await {
                        return Ended::Lost(e.to_string());
                    }
                }
                // The desk's budget and sweeps are its own: an agent cannot change them.
                Some(_) => {}
            },
            Some((id, force)) = retry_rx.recv() => { enqueue(&mut st.queued, id, force); }
        }
    }
}

/// Reads the whole fleet and hands it on as events.
async fn resync(st: &State) -> Result<(), RemoteError> {
    let items = st.client.fleet().await?;
    for event in fleet_events(&items) {
        let _ = st.events.send(event);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, with_report: bool) -> VehicleItem {
        VehicleItem {
            vehicle_id: id.into(),
            cause: None,
            user_id: Some("user\u{1b}[31m".into()),
            make: Some("TESLA".into()),
            model: None,
            year: Some(2022),
            status: "BLOCKED".into(),
            finding: None,
            badges: vec![],
            checked_at: None,
            changed_at: None,
            connected_at: None,
            vin: None,
            report: with_report.then(|| crate::smartcar::ProbeReport {
                vehicle_id: id.into(),
                ..Default::default()
            }),
            diagnosis: with_report.then(|| crate::health::Diagnosis {
                status: crate::health::Status::Blocked,
                ..crate::health::Diagnosis::unknown()
            }),
        }
    }

    #[test]
    fn reconnection_waits_start_at_once_double_and_stop_at_five_seconds() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(6), Duration::from_secs(5));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn the_fleet_becomes_the_desks_verdicts_first_then_one_listing_of_every_vehicle() {
        let events = fleet_events(&[item("a", true), item("b", false)]);
        assert!(matches!(
            &events[0],
            Event::Diagnosed { report, diagnosis, .. }
                if report.vehicle_id == "a" && diagnosis.status == crate::health::Status::Blocked
        ));
        match &events[1] {
            Event::ConnectionsListed { connections } => {
                let ids: Vec<&str> = connections
                    .iter()
                    .map(|c| c.connection.vehicle_id.as_str())
                    .collect();
                assert_eq!(ids, ["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn a_vehicle_whose_id_carries_control_characters_is_dropped_and_free_text_made_safe() {
        assert_eq!(vetted(item("bad\u{1b}]8;;x", false)), None);
        assert_eq!(vetted(item("", false)), None);
        let ok = vetted(item("fine", false)).unwrap();
        assert!(!ok.user_id.unwrap().contains('\u{1b}'));
    }

    #[test]
    fn a_vin_that_is_not_one_is_dropped_and_a_connected_time_made_one_line() {
        for bad in ["5YJ3E1EA7KF00000\u{1b}", "5YJ3", "5YJ3E1EA7KF000001/../x"] {
            let mut v = item("a", false);
            v.vin = Some(bad.into());
            assert_eq!(vetted(v).unwrap().vin, None, "{bad:?}");
        }
        let mut v = item("a", false);
        v.vin = Some("5YJ3E1EA7KF000001".into());
        v.connected_at = Some("2025-01-01\u{1b}]8;;https://evil\u{7}".into());
        let v = vetted(v).unwrap();
        assert_eq!(v.vin.as_deref(), Some("5YJ3E1EA7KF000001"));
        assert!(!v.connected_at.unwrap().chars().any(is_unsafe));
    }

    #[test]
    fn an_id_or_vin_in_a_desk_url_stays_one_path_segment() {
        let client = DeskClient::new("http://127.0.0.1:8787/", Secret::new("t"), false).unwrap();
        for step in ["..", ".", ""] {
            assert!(
                client.api_url(&["vehicles", step, "probe"]).is_err(),
                "{step:?}"
            );
            assert_eq!(vetted(item(step, false)), None, "{step:?}");
        }
        for hostile in ["../rules", "a/b?force=true#x", "%2e%2e"] {
            let url = client.api_url(&["vehicles", hostile, "probe"]).unwrap();
            let path = url.path();
            assert!(path.starts_with("/api/v1/vehicles/"), "{hostile:?} → {url}");
            assert!(path.ends_with("/probe"), "{hostile:?} → {url}");
            assert_eq!(url.query(), None, "{hostile:?} → {url}");
            assert_eq!(path.matches('/').count(), 5, "{hostile:?} → {url}");
        }
    }

    #[test]
    fn a_report_for_another_vehicle_is_not_taken_as_this_ones() {
        let mut v = item("a", true);
        if let Some(r) = v.report.as_mut() {
            r.vehicle_id = "other".into();
        }
        let v = vetted(v).unwrap();
        assert_eq!(v.report, None);
        assert_eq!(v.diagnosis, None, "nor the verdict read from it");
    }

    #[test]
    fn a_server_url_with_credentials_or_plain_http_off_this_machine_is_refused() {
        let token = || Secret::new("t");
        assert!(matches!(
            DeskClient::new("https://u:p@desk.example", token(), false),
            Err(RemoteError::Url(_))
        ));
        assert!(matches!(
            DeskClient::new("ftp://desk.example", token(), false),
            Err(RemoteError::Url(_))
        ));
        assert!(matches!(
            DeskClient::new("http://desk.example", token(), false),
            Err(RemoteError::Insecure { .. })
        ));
        assert!(DeskClient::new("http://127.0.0.1:8787/", token(), false).is_ok());
        assert!(DeskClient::new("https://desk.example", token(), false).is_ok());
    }
}
