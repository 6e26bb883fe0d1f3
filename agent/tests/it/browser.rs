//! The dashboard in a real browser: Debian's Chromium, driven through WebDriver by
//! `/usr/bin/chromedriver` (the W3C protocol spoken with the agent's own HTTP client; both are
//! killed, with their process group, on every exit path). From the DOM: the bars' values equal
//! the stat API's numbers, no Content-Security-Policy violation and no console error on any page,
//! login with a wrong and a right token, logout, an expired session, the dark colour scheme.
//! The run saves a screenshot (`docs/dashboard.png` when `AUTHSTAT_UPDATE_SCREENSHOT` is set).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// chromedriver and its browser, in a process group of their own.
struct Driver {
    child: std::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver's group, and the browser (which makes a group of its own), found by its
        // profile directory, unique to this driver.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(format!("user-data-dir={}", self._profile.path().display()))
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    async fn start() -> Driver {
        use std::os::unix::process::CommandExt as _;
        // reqwest is built without a crypto provider of its own (plain HTTP here).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let child = std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("/usr/bin/chromedriver (scripts/install-deps installs chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        let mut driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                .ok();
            if let Some(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created = driver
            .send(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1200,1800",
                                 format!("--user-data-dir={}", driver._profile.path().display())]
                    },
                    "goog:loggingPrefs": {"browser": "ALL"}
                }}}),
            )
            .await;
        driver.session = created["sessionId"].as_str().unwrap().to_owned();
        driver
    }

    /// A command's whole answer (`{"value": …}`, an error included).
    async fn answer(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            request = request.json(&body);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// A command's value; an error fails the test.
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let answer = self.answer(method, path, body).await;
        assert!(
            answer["value"]["error"].is_null(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    async fn session(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.send(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn goto(&self, url: &str) {
        self.session(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.session(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn path(&self) -> String {
        self.js("return location.pathname;")
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .session(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.session(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.session(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    /// The browser's log since the last call: console messages and CSP violations.
    async fn log(&self) -> Vec<Value> {
        self.session(reqwest::Method::POST, "/se/log", json!({"type": "browser"}))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Logs in and waits until the form's answer is shown: the page, or the form with an error.
    async fn login(&self, addr: SocketAddr, token: &str) {
        self.goto(&format!("http://{addr}/dashboard/login")).await;
        self.type_into("#token", token).await;
        self.click("form button[type=submit]").await;
        self.wait_for(
            "the login's answer",
            "return document.readyState === 'complete' && \
             (location.pathname !== '/dashboard/login' || !!document.querySelector('#login-error'));",
        )
        .await;
    }

    /// Waits until `script` returns true (a navigation a click started may still be running).
    async fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A script may fail while the old page is being replaced: ask again.
            let answer = self
                .answer(
                    reqwest::Method::POST,
                    &format!("/session/{}/execute/sync", self.session),
                    json!({"script": script, "args": []}),
                )
                .await;
            if answer["value"] == true {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn color_scheme(&self, scheme: &str) {
        self.session(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setEmulatedMedia",
                   "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]}}),
        )
        .await;
    }
}

/// Nothing in the browser's log: no CSP violation, no console message of any level.
async fn assert_clean_log(driver: &Driver, page: &str) {
    let log = driver.log().await;
    assert!(log.is_empty(), "{page}: {log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser() {
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("api:\n", "api:\n  dashboard:\n    session_ttl_secs: 5\n");
    std::fs::write(&path, text).unwrap();
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    let driver = Driver::start().await;

    // Not logged in: the login form.
    driver.goto(&format!("http://{addr}/dashboard")).await;
    assert_eq!(driver.path().await, "/dashboard/login");
    assert_clean_log(&driver, "login form").await;

    // A wrong token: the form again, saying why.
    driver.login(addr, "not-the-token").await;
    assert_eq!(driver.path().await, "/dashboard/login");
    let body = driver.js("return document.body.innerHTML;").await;
    assert!(body.as_str().unwrap().contains("login-error"), "{body}");
    let error = driver
        .js("return document.querySelector('#login-error').textContent;")
        .await;
    assert_eq!(error, "Not accepted: invalid token.");
    // The failed login's 401 is the page's own status, not a console error.
    let log = driver.log().await;
    assert!(
        log.iter()
            .all(|l| l["message"].as_str().unwrap_or("").contains("401")),
        "{log:#?}"
    );

    // The right token: the page, with the stat API's numbers on its bars.
    driver.login(addr, TOKEN).await;
    assert_eq!(driver.path().await, "/dashboard");
    driver
        .goto(&format!("http://{addr}/dashboard?from=202401&to=202402"))
        .await;
    assert_clean_log(&driver, "dashboard").await;
    let bars = driver
        .js(
            "return Array.from(document.querySelectorAll('rect.bar')).map(r => \
             [r.closest('svg').id || r.closest('svg').getAttribute('aria-labelledby'), \
              r.dataset.series, r.dataset.month, Number(r.dataset.value), \
              r.querySelector('title').textContent]);",
        )
        .await;
    let bars = bars.as_array().unwrap();
    let stat: Value = reqwest::Client::new()
        .get(format!(
            "http://{addr}/jans-auth/restv1/internal/stat?start-month=202401&end-month=202402&format=jsonmonth"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bar = |chart: &str, series: &str, month: &str| -> Option<(i64, String)> {
        bars.iter()
            .find(|b| b[0].as_str().unwrap().starts_with(chart) && b[1] == series && b[2] == month)
            .map(|b| (b[3].as_i64().unwrap(), b[4].as_str().unwrap().to_owned()))
    };
    let mut compared = 0;
    for month in ["202401", "202402"] {
        let answer = &stat["response"][month];
        let mau = answer["monthly_active_users"].as_i64().unwrap();
        assert_eq!(
            bar("mau", "active users", month),
            Some((mau, format!("{month} · active users: {mau}")))
        );
        compared += 1;
        for (grant, types) in answer["token_count_per_granttype"].as_object().unwrap() {
            let total: i64 = types
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_i64().unwrap())
                .sum();
            assert_eq!(
                bar("grant", grant, month).map(|b| b.0),
                Some(total),
                "{month} {grant}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 5, "{compared} bars compared");
    let charts = driver
        .js(
            "return Array.from(document.querySelectorAll('svg[role=img]')).map(s => \
             s.querySelector('title').textContent + '|' + s.querySelector('desc').textContent);",
        )
        .await;
    // Monthly users, authentications, tokens by grant and by type, and daily users.
    assert_eq!(charts.as_array().unwrap().len(), 5, "{charts}");
    assert!(
        charts.as_array().unwrap()[4]
            .as_str()
            .unwrap()
            .starts_with("Daily active users|"),
        "{charts}"
    );
    let tables = driver
        .js("return document.querySelectorAll('details table').length;")
        .await;
    assert_eq!(tables, 5);

    // The colour schemes come from the system's preference.
    let background = "return getComputedStyle(document.body).backgroundColor;";
    assert_eq!(driver.js(background).await, "rgb(255, 255, 255)");
    driver.color_scheme("dark").await;
    assert_eq!(driver.js(background).await, "rgb(18, 21, 27)");
    driver.color_scheme("light").await;

    // A screenshot for the README.
    let png = driver
        .session(reqwest::Method::GET, "/screenshot", Value::Null)
        .await;
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let shot = match std::env::var_os("AUTHSTAT_UPDATE_SCREENSHOT") {
        Some(_) => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png"),
        None => std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"),
    };
    std::fs::write(shot, png).unwrap();

    // Logging out: the login form, and the page is gone.
    driver.click("header form button[type=submit]").await;
    driver
        .wait_for(
            "the login form",
            "return document.readyState === 'complete' && location.pathname === '/dashboard/login';",
        )
        .await;
    driver.goto(&format!("http://{addr}/dashboard")).await;
    assert_eq!(driver.path().await, "/dashboard/login");
    assert_clean_log(&driver, "after logout").await;

    // An expired session (session_ttl_secs: 5) leads back to the login form.
    driver.login(addr, TOKEN).await;
    let body = driver.js("return document.body.innerText;").await;
    assert_eq!(driver.path().await, "/dashboard", "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        driver.goto(&format!("http://{addr}/dashboard")).await;
        if driver.path().await == "/dashboard/login" {
            break;
        }
        assert!(Instant::now() < deadline, "the session never expired");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_clean_log(&driver, "expired session").await;
    drop(driver);
    agent.shutdown().await;
}
