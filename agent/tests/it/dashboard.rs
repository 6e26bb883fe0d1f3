//! The dashboard over HTTP, on the sample logs: the login (right and wrong tokens, the limit on
//! failures, a post from another site), the session cookie's attributes, the page's headers,
//! its bars equal to the stat API's numbers, the stylesheet's caching, logout and an expired
//! session, and the explicit anonymous mode.

use std::net::SocketAddr;

use crate::support::*;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

fn login(addr: SocketAddr, token: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![FORM];
    headers.extend_from_slice(extra);
    request(
        addr,
        "POST",
        "/dashboard/login",
        &headers,
        &format!("token={token}"),
    )
}

/// The session cookie (`name=value`) a login set.
fn session(response: &Response) -> String {
    let cookie = response.header("set-cookie").expect("a cookie");
    cookie.split(';').next().unwrap().to_owned()
}

fn page(addr: SocketAddr, target: &str, cookie: &str) -> Response {
    request(addr, "GET", target, &[("cookie", cookie)], "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_page_and_logout() {
    let fixture = Fixture::new("");
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    tokio::task::spawn_blocking(move || {
        // Without a session: to the login form, which has the strict headers too.
        let r = get(addr, "/dashboard", None);
        assert_eq!(r.status, 303);
        assert_eq!(r.header("location"), Some("/dashboard/login"));
        let form = get(addr, "/dashboard/login", None);
        assert_eq!(form.status, 200);
        assert!(
            form.body
                .contains("<form method=\"post\" action=\"/dashboard/login\">")
        );
        assert_eq!(
            form.header("content-security-policy"),
            Some(
                "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; \
                 form-action 'self'; frame-ancestors 'none'"
            )
        );
        // A bearer token in the Authorization header is not a login for the page.
        let r = get(addr, "/dashboard", Some(TOKEN));
        assert_eq!(r.status, 303);

        // A wrong token: 401 with the reason, no cookie.
        let wrong = login(addr, "not-the-token", &[]);
        assert_eq!(wrong.status, 401, "{}", wrong.body);
        assert!(
            wrong.body.contains("Not accepted: invalid token."),
            "{}",
            wrong.body
        );
        assert!(wrong.header("set-cookie").is_none());
        // A login posted from another site is refused, even with the right token.
        let forged = login(addr, TOKEN, &[("origin", "https://evil.example")]);
        assert_eq!(forged.status, 403);
        assert!(forged.header("set-cookie").is_none());

        // The right token: a session cookie, HttpOnly and SameSite=Strict; Secure over HTTPS.
        let ok = login(addr, TOKEN, &[("origin", "http://test")]);
        assert_eq!(ok.status, 303, "{}", ok.body);
        assert_eq!(ok.header("location"), Some("/dashboard"));
        let cookie_header = ok.header("set-cookie").unwrap().to_owned();
        for attribute in [
            "Path=/dashboard",
            "Max-Age=3600",
            "HttpOnly",
            "SameSite=Strict",
        ] {
            assert!(cookie_header.contains(attribute), "{cookie_header}");
        }
        assert!(!cookie_header.contains("Secure"), "{cookie_header}");
        assert!(
            !cookie_header.contains(TOKEN),
            "the token is never in the cookie"
        );
        let proxied = login(addr, TOKEN, &[("x-forwarded-proto", "https")]);
        assert!(proxied.header("set-cookie").unwrap().contains("; Secure"));
        let cookie = session(&ok);

        // The page: its headers, and bars with the stat API's numbers.
        let r = page(addr, "/dashboard?from=202401&to=202402", &cookie);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let stat = get(
            addr,
            "/jans-auth/restv1/internal/stat?start-month=202401&end-month=202402&format=jsonmonth",
            Some(TOKEN),
        )
        .json();
        for month in ["202401", "202402"] {
            let mau = &stat["response"][month]["monthly_active_users"];
            assert!(
                r.body
                    .contains(&format!("<title>{month} · active users: {mau}</title>")),
                "{month}: MAU {mau} not on the page"
            );
            let tokens = stat["response"][month]["token_count_per_granttype"]
                .as_object()
                .unwrap();
            for (grant, types) in tokens {
                let total: u64 = types
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_u64().unwrap())
                    .sum();
                assert!(
                    r.body
                        .contains(&format!("<title>{month} · {grant}: {total}</title>")),
                    "{month} {grant}: {total} not on the page"
                );
            }
        }
        assert!(r.body.contains("<svg class=\"chart\" role=\"img\""));
        assert!(
            r.body
                .contains("<details><summary>Data: Monthly active users per month</summary>")
        );
        assert!(!r.body.contains("<script"), "no script");
        assert!(!r.body.contains("style=\""), "no inline style");
        assert!(r.body.contains("example-node"), "the node is listed");

        // One node, and a node that does not exist.
        let one = page(
            addr,
            "/dashboard?from=202402&to=202402&node=example-node",
            &cookie,
        );
        assert_eq!(one.status, 200);
        assert!(
            one.body
                .contains("authstat <small>node example-node</small>")
        );
        let none = page(addr, "/dashboard?node=nobody", &cookie);
        assert_eq!(none.status, 404);
        let bad = page(addr, "/dashboard?from=2024-01", &cookie);
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("from:"), "{}", bad.body);

        // The stylesheet is cached under its hash; the icon is there (no console error).
        let css_link = r
            .body
            .split("href=\"/dashboard/style.css?v=")
            .nth(1)
            .unwrap();
        let version = &css_link[..css_link.find('"').unwrap()];
        let css = get(addr, &format!("/dashboard/style.css?v={version}"), None);
        assert_eq!(css.status, 200);
        assert_eq!(
            css.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        let etag = css.header("etag").unwrap().to_owned();
        assert_eq!(etag, format!("\"{version}\""));
        let again = request(
            addr,
            "GET",
            "/dashboard/style.css",
            &[("if-none-match", &etag)],
            "",
        );
        assert_eq!(again.status, 304);
        for icon in ["/dashboard/favicon.svg", "/favicon.ico"] {
            let r = get(addr, icon, None);
            assert_eq!(r.status, 200, "{icon}");
            assert_eq!(r.header("content-type"), Some("image/svg+xml"));
        }

        // Logging out ends the session on the server: the old cookie no longer works.
        let out = request(
            addr,
            "POST",
            "/dashboard/logout",
            &[("cookie", &cookie)],
            "",
        );
        assert_eq!(out.status, 303);
        assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
        assert_eq!(page(addr, "/dashboard", &cookie).status, 303);

        // Failed logins are limited per client.
        for _ in 0..4 {
            login(addr, "still-wrong", &[]);
        }
        let limited = login(addr, TOKEN, &[]);
        assert_eq!(limited.status, 429, "{}", limited.body);
    })
    .await
    .unwrap();
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire() {
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("api:\n", "api:\n  dashboard:\n    session_ttl_secs: 1\n");
    std::fs::write(&path, text).unwrap();
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    tokio::task::spawn_blocking(move || {
        let cookie = session(&login(addr, TOKEN, &[]));
        assert_eq!(page(addr, "/dashboard", &cookie).status, 200);
        wait_until("the session to expire", || {
            page(addr, "/dashboard", &cookie).status == 303
        });
    })
    .await
    .unwrap();
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_only_when_configured() {
    let fixture = Fixture::new("");
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("api:\n", "api:\n  dashboard:\n    anonymous: true\n");
    std::fs::write(&path, text).unwrap();
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    let r =
        tokio::task::spawn_blocking(move || get(addr, "/dashboard?from=202402&to=202402", None))
            .await
            .unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("Log out"), "no session to end");
    assert!(r.body.contains("<title>202402 · active users: 2</title>"));
    agent.shutdown().await;
}

/// This month's active users against last month's up to the same day, as the agents recorded
/// it then; the agent records today's figure itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_month_is_compared_with_the_same_day_of_last_month() {
    let mut fixture = Fixture::new("");
    fixture.add_current_month_users(&["now-a", "now-b", "now-c"]);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let current = authstat_core::Month::from_epoch_millis(now_ms).unwrap();
    let last = current.pred().unwrap();
    let today = authstat_core::month::day_of_month(now_ms);
    let backend = authstat_backends::options::SqliteConfig::backend(
        &serde_yaml::from_str(&format!(
            "path: {}",
            fixture.dir.path().join("data/authstat.db").display()
        ))
        .unwrap(),
    );
    let store = authstat_backends::build(&backend).await.unwrap();
    // Recorded a month ago: 2 users by today's day; a later day must not be used.
    store.record_daily_users(last, today, 2).await.unwrap();
    if today < 31 {
        store.record_daily_users(last, today + 1, 50).await.unwrap();
    }
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    let tile = tokio::task::spawn_blocking(move || {
        let cookie = session(&login(addr, TOKEN, &[]));
        let mut tile = String::new();
        wait_until("this month's users on the page", || {
            let page = page(addr, "/dashboard", &cookie).body;
            let start = page.find("id=\"tile-mau\"").unwrap();
            tile = page[start..start + page[start..].find("</section>").unwrap()].to_owned();
            tile.contains("<p class=\"value\">3</p>")
        });
        // The three users' records name one client.
        let page = page(addr, "/dashboard", &cookie).body;
        let start = page.find("id=\"tile-clients\"").unwrap();
        let clients = &page[start..start + page[start..].find("</section>").unwrap()];
        assert!(clients.contains("<p class=\"value\">1</p>"), "{clients}");
        tile
    })
    .await
    .unwrap();
    assert!(
        tile.contains(&format!("+1 (+50.0%) against 2 on day {today} of {last}")),
        "{tile}"
    );
    // The agent recorded today's figure for the months to come.
    let recorded = store.daily_users(current).await.unwrap();
    assert!(
        recorded.get(&today).is_some_and(|&users| users <= 3),
        "{recorded:?}"
    );
    agent.shutdown().await;
}

/// The page's "This agent" table shows what the metric registry's snapshot says (the same
/// figures `/metrics` serves): records skipped by reason, backend errors, failed flushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_health_is_the_registrys() {
    let mut fixture = Fixture::new("");
    let log = fixture.dir.path().join("logs/jans-auth_audit.log");
    let good = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, format!("not an audit record at all\n{good}")).unwrap();
    let tokens = fixture.dir.path().join("logs/token-events.jsonl");
    let mut bytes = std::fs::read(&tokens).unwrap();
    bytes.extend_from_slice(b"\xff\xfe not utf-8\n");
    std::fs::write(&tokens, bytes).unwrap();
    fixture.records += 2;
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    tokio::task::spawn_blocking(move || {
        let metrics = get(addr, "/metrics", None).body;
        let skipped = crate::metrics::sample_value(
            &metrics,
            "authstat_records_skipped_total{reason=\"garbage\"}",
        );
        assert_eq!(skipped, Some(1.0), "{metrics}");
        let cookie = session(&login(addr, TOKEN, &[]));
        let r = page(addr, "/dashboard", &cookie);
        assert_eq!(r.status, 200, "{}", r.body);
        for row in [
            "<th scope=\"row\">skipped records: garbage</th><td>1</td>",
            "<th scope=\"row\">skipped records: invalid_utf8</th><td>1</td>",
            "<th scope=\"row\">backend errors</th><td>0</td>",
            "<th scope=\"row\">failed flushes</th><td>0</td>",
        ] {
            assert!(r.body.contains(row), "{row} not in {}", r.body);
        }
    })
    .await
    .unwrap();
}
