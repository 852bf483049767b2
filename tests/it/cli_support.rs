//! Running the real binary from tests: a home folder of its own, a tokens file, a clean environment
//! of Smartcar variables (the management token passed as a person is told to, through the
//! environment), and what each simulated situation must be diagnosed as.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// Every Smartcar variable a developer's environment may hold: each run starts without them.
const SMARTCAR_VARS: [&str; 9] = [
    "SMARTCAR_API_ORIGIN",
    "SMARTCAR_MANAGEMENT_API_ORIGIN",
    "SMARTCAR_CONNECT_ORIGIN",
    "SMARTCAR_MANAGEMENT_TOKEN",
    "SMARTCAR_CLIENT_ID",
    "SMARTCAR_CLIENT_SECRET",
    "SMARTCAR_IAM_ORIGIN",
    "SMARTCAR_API_V3_ORIGIN",
    "SMARTCAR_VEHICLE_API_V3_ORIGIN",
];

/// A fresh, empty folder for one test: `vtriage-<area>-<name>-<pid>` in the temp folder.
pub fn temp_home(area: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vtriage-{area}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp folder");
    dir
}

/// A tokens file (`user_id,access_token`, mode 0600) in `home`.
pub fn write_tokens(rows: &[(String, String)], home: &Path) -> PathBuf {
    let path = home.join("tokens.csv");
    let mut text = String::from("user_id,access_token\n");
    for (u, t) in rows {
        text.push_str(&format!("{u},{t}\n"));
    }
    std::fs::write(&path, text).expect("tokens file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("tokens file mode");
    }
    path
}

/// The command line as given, but the management token moved from `--amt` to the environment, as a
/// person is told to pass it (a flag is visible to every user in `ps`).
fn amt_through_env(args: &[&str]) -> (Vec<String>, Option<String>) {
    let mut out = Vec::with_capacity(args.len());
    let mut amt = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--amt" {
            amt = it.next().map(|v| v.to_string());
        } else {
            out.push(a.to_string());
        }
    }
    (out, amt)
}

/// The binary with `args` and `env`, in `home`, without the developer's Smartcar variables.
pub fn command(home: &Path, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let (args, amt) = amt_through_env(args);
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vtriage"));
    for var in SMARTCAR_VARS {
        cmd.env_remove(var);
    }
    if let Some(amt) = amt {
        cmd.env("SMARTCAR_MANAGEMENT_TOKEN", amt);
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .env("VTRIAGE_HOME", home)
        .kill_on_drop(true);
    cmd
}

/// Runs the binary to its end (two minutes at most).
pub async fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::time::timeout(Duration::from_secs(120), command(home, args, env).output())
        .await
        .expect("vtriage finishes")
        .expect("the binary runs")
}

/// [`expected`] on API v3, where a refused connection is proven the vehicle's, not a user token's.
pub fn expected_v3(situation: &str) -> (&'static str, Option<&'static str>) {
    match situation {
        "token-expired" => ("BLOCKED", Some("connection-revoked")),
        "signals-not-subscribed" => ("BLOCKED", Some("signals-unavailable")),
        other => expected(other),
    }
}

/// What diagnosis must conclude for each simulated situation on API v2.0: status and main finding.
pub fn expected(situation: &str) -> (&'static str, Option<&'static str>) {
    match situation {
        // v2.0 has no webhook subscriptions to miss.
        "healthy" | "signals-not-subscribed" => ("HEALTHY", None),
        "virtual-key-missing" => ("BLOCKED", Some("virtual-key-missing")),
        "virtual-key-exempt" => ("HEALTHY", Some("virtual-key-exempt")),
        "location-permission-missing" => ("DEGRADED", Some("tesla-location-permission-missing")),
        "scope-missing" => ("DEGRADED", Some("permission-missing")),
        "token-expired" => ("BLOCKED", Some("access-token-expired")),
        "oem-authentication-failed" => ("BLOCKED", Some("oem-authentication-failed")),
        "subscription-lapsed" => ("BLOCKED", Some("oem-subscription")),
        "vehicle-asleep" | "vehicle-unreachable" => ("DEGRADED", Some("vehicle-state")),
        "stale-data" => ("WARNING", Some("stale-data")),
        "rate-limited" => ("WARNING", Some("rate-limited")),
        "quota-exhausted" => ("BLOCKED", Some("billing-request-limit")),
        other => panic!("a situation the test does not know: {other}"),
    }
}
