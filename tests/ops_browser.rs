//! The console in a real browser: Debian's `chromium`, headless, loads the dashboard of a
//! console process (the real binary) running against a flow with traffic, finds a row per
//! connection with a fresh "last successful sync", opens a record trace and sees every
//! stage (raw, canonical, target). Screenshots are saved under the test's temp directory
//! (printed). The console's own log is scanned for secrets afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_sandbox::{PipedriveConfig, ShopifyWebhooks, StatusCode};
use switchboard_tests::*;

const ADMIN: &str = "browser-admin-secret-93e2";

fn chromium(dir: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
            &format!("--user-data-dir={}", dir.join("profile").display()),
        ])
        .args(args)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("chromium is installed (.ci/run installs Debian's package)");
    assert!(out.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn customer(id: u64, email: &str) -> Vec<u8> {
    let payload = ShopifyWebhooks::customer_payload(
        id,
        email,
        "Alan",
        "Turing",
        time::OffsetDateTime::now_utc(),
    );
    serde_json::to_vec(&payload).unwrap()
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The text of the dashboard row of `connection`.
fn row<'a>(dom: &'a str, connection: &str) -> Option<&'a str> {
    let start = dom.find(&format!("data-connection=\"{connection}\""))?;
    let end = dom[start..].find("</tr>")? + start;
    Some(&dom[start..end])
}

/// Whether a row says its last successful sync was under five minutes ago.
fn fresh(row: &str) -> bool {
    let Some(at) = row.find("last successful sync: ") else {
        return false;
    };
    let text = &row[at + "last successful sync: ".len()..];
    let n: u64 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    text.contains("seconds ago") || (text.contains("minutes ago") && n < 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_and_trace_in_headless_chromium() {
    let world = World::new("console-browser", PipedriveConfig::new(CRM_TOKEN)).await;
    let shop = world.start_ingest().await;
    world.start_transformer().await;
    world.start_sink().await;
    for i in 0..5u64 {
        let status = shop
            .send(
                "customers/create",
                &customer(9100 + i, &format!("alan{i}@example.com")),
                &format!("wh-{i}"),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert!(
        eventually(Duration::from_secs(120), || world
            .pipedrive
            .person_by_email("alan4@example.com")
            .is_some())
        .await
    );

    let dir: PathBuf = std::env::temp_dir().join(format!("switchboard-{}", world.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let yaml = format!(
        "{}console:\n  listen: \"127.0.0.1:{port}\"\n  admin_token: \"{}\"\n",
        world.yaml,
        secret_ref(&dir, "admin", ADMIN)
    );
    let config_path = dir.join("config.yaml");
    std::fs::write(&config_path, &yaml).unwrap();
    let log_path = dir.join("console.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let binary = service_binary("switchboard-console", "switchboard-console");
    let _console = Killed(
        Command::new(binary)
            .current_dir(workspace_root())
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(format!("127.0.0.1:{port}").parse().unwrap()).await;

    // The dashboard, as the browser renders it, until both rows show a fresh sync (the
    // overview is gathered every 5 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dom = String::new();
    while Instant::now() < deadline {
        dom = chromium(&dir, &["--dump-dom"], &format!("{base}/"));
        if ["shop", "crm"]
            .iter()
            .all(|c| row(&dom, c).is_some_and(fresh))
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for c in ["shop", "crm"] {
        let r = row(&dom, c).unwrap_or_else(|| panic!("a row for {c}: {dom}"));
        assert!(fresh(r), "{c}: {r}");
        assert!(r.contains("state ok"), "{c}: {r}");
    }
    assert_eq!(dom.matches("class=\"connection\"").count(), 2);
    chromium(
        &dir,
        &[&format!(
            "--screenshot={}",
            dir.join("dashboard.png").display()
        )],
        &format!("{base}/"),
    );

    // The record trace of a customer: raw event, canonical record, target delivery.
    let trace_url = format!("{base}/trace?id=9102");
    let trace = chromium(&dir, &["--dump-dom"], &trace_url);
    for stage in ["stage-raw", "stage-canonical", "stage-target"] {
        assert!(trace.contains(stage), "{stage} on the trace page: {trace}");
    }
    assert!(
        trace.contains("alan2@example.com"),
        "the raw payload is shown"
    );
    chromium(
        &dir,
        &[&format!("--screenshot={}", dir.join("trace.png").display())],
        &trace_url,
    );
    for shot in ["dashboard.png", "trace.png"] {
        let size = std::fs::metadata(dir.join(shot)).map_or(0, |m| m.len());
        assert!(size > 10_000, "{shot} is a real screenshot ({size} bytes)");
    }
    println!("screenshots in {}", dir.display());

    // The console's log holds no secret.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("console listening"), "{log}");
    for secret in [ADMIN, SHOP_SECRET, CRM_TOKEN] {
        assert!(!log.contains(secret), "a secret in the console log");
    }
}
