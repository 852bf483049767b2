//! Nothing acknowledged is ever lost: `serve` killed with SIGKILL mid-load, and the database cut
//! away under load (a loopback proxy between `serve` and PostgreSQL).

use crate::desk_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use desk_support::{Schema, Serve, database_url, http, post_signed, vehicle_error};
use serde_json::json;
use tokio::sync::Mutex;

fn delivery(i: usize) -> (String, String) {
    let id = format!("evt-{i:06}");
    let body = vehicle_error(
        &id,
        &format!("veh-{:04}", i % 300),
        if i.is_multiple_of(2) {
            "AUTHENTICATION"
        } else {
            "VEHICLE_STATE"
        },
        if i.is_multiple_of(2) {
            None
        } else {
            Some("ASLEEP")
        },
        if i.is_multiple_of(5) {
            "RESOLVED"
        } else {
            "ERROR"
        },
        1_760_000_000_000 + i as i64,
        json!([]),
    );
    (id, body)
}

/// Posts deliveries `0..n` from `workers` concurrent senders; returns the ids answered 2xx.
/// `after_each` sees the count of acknowledged deliveries so far.
async fn send_all(
    url: &str,
    ids: Vec<usize>,
    workers: usize,
    after_each: impl Fn(usize) + Send + Sync + 'static,
) -> HashSet<String> {
    let queue = Arc::new(Mutex::new(ids));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let after_each = Arc::new(after_each);
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (queue, acked, count, after_each) = (
            queue.clone(),
            acked.clone(),
            count.clone(),
            after_each.clone(),
        );
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let client = http();
            loop {
                let Some(i) = queue.lock().await.pop() else {
                    return;
                };
                let (id, body) = delivery(i);
                let status = post_signed(&client, &url, &body).await;
                if (200..300).contains(&status) {
                    acked.lock().await.insert(id);
                    after_each(count.fetch_add(1, Ordering::SeqCst) + 1);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    Arc::try_unwrap(acked)
        .map(Mutex::into_inner)
        .unwrap_or_default()
}

async fn stored_ids(schema: &Schema) -> Vec<String> {
    schema
        .client
        .query("SELECT event_id FROM webhook_events", &[])
        .await
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_mid_load_loses_no_acknowledged_delivery_and_stores_none_twice() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    const N: usize = 1_500;
    let mut first = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let pid = first.child.id();
    let killed = Arc::new(AtomicBool::new(false));
    let kill_once = killed.clone();
    let acked_before = send_all(
        &first.webhook_url(),
        (0..N).rev().collect(),
        16,
        move |acked| {
            if acked >= 300 && !kill_once.swap(true, Ordering::SeqCst) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        },
    )
    .await;
    assert!(killed.load(Ordering::SeqCst), "serve was killed under load");
    first.kill9();
    assert!(acked_before.len() < N, "the kill interrupted the load");

    // Every delivery acknowledged before the kill is committed.
    let stored: HashSet<String> = stored_ids(&schema).await.into_iter().collect();
    let lost: Vec<&String> = acked_before.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");

    // Smartcar retries what was not acknowledged (and may repeat some that were).
    let second = Serve::start(&database_url(), &schema.name, &["--demo", "--no-prober"]);
    let acked_after = send_all(&second.webhook_url(), (0..N).collect(), 16, |_| {}).await;
    assert_eq!(acked_after.len(), N, "every retry is acknowledged");
    let ids = stored_ids(&schema).await;
    assert_eq!(ids.len(), N, "each delivery stored exactly once");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), N);
}

/// A loopback TCP proxy in front of PostgreSQL whose line can be cut and restored.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (cut2, links2) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound); // refused: closed at once
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().expect("links").push(link);
            }
        });
        Proxy { addr, cut, links }
    }

    /// Closes every open connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_while_the_database_is_cut_get_5xx_and_none_acknowledged_is_lost() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let mut url = url::Url::parse(&database_url()).expect("database url");
    let target = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(target).await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.addr.port())).expect("port");
    let serve = Serve::start(
        url.as_str(),
        &schema.name,
        &["--demo", "--no-prober", "--db-timeout", "1s"],
    );
    let webhook = serve.webhook_url();

    let before = send_all(&webhook, (0..200).collect(), 8, |_| {}).await;
    assert_eq!(before.len(), 200, "all stored while the database answers");

    proxy.cut();
    let client = http();
    let mut statuses = Vec::new();
    for i in 200..300 {
        let (_, body) = delivery(i);
        statuses.push(post_signed(&client, &webhook, &body).await);
    }
    assert!(
        statuses.iter().all(|s| (500..600).contains(s)),
        "every delivery during the outage is refused with 5xx: {statuses:?}"
    );
    let health = client
        .get(format!("{}/healthz", serve.origin))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 503, "not ready without the database");

    proxy.restore();
    // Smartcar retries; the pool reconnects on its own.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut retried = HashSet::new();
    while retried.len() < 100 && tokio::time::Instant::now() < deadline {
        for i in 200..300 {
            let (id, body) = delivery(i);
            if !retried.contains(&id) && post_signed(&client, &webhook, &body).await == 200 {
                retried.insert(id);
            }
        }
    }
    assert_eq!(
        retried.len(),
        100,
        "every retry stored once the database is back"
    );
    let stored: HashSet<String> = stored_ids(&schema).await.into_iter().collect();
    assert_eq!(stored.len(), 300);
    assert!(before.is_subset(&stored) && retried.is_subset(&stored));
    assert!(
        serve
            .metric("vtriage_webhook_events_received_total")
            .await
            .is_some_and(|n| n >= 400.0)
    );
}
