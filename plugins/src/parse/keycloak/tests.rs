//! The Keycloak parser on the event log's lines.

use super::*;

const OLD: &str = "08:12:20,561 WARN  [org.keycloak.events] (default task-3) type=LOGIN_ERROR, realmId=7512f194-451e-44b0-9f58-36c9f36738c4, clientId=null, userId=null, ipAddress=172.20.0.1, error=expired_code, restart_after_timeout=true\n";
const NEW: &str = "2024-10-17 10:43:38,199 WARN  [org.keycloak.events] (executor-thread-26) type=\"LOGIN_ERROR\", realmId=\"15b3a838-647e-4f17-9a00-7116f39e0b62\", realmName=\"test\", clientId=\"account-console\", userId=\"4e2fbbbc-289d-435e-9fe7-4f1719226bb0\", ipAddress=\"192.168.65.1\", error=\"invalid_user_credentials\", auth_method=\"openid-connect\", auth_type=\"code\", redirect_uri=\"http://localhost:8080/realms/test/account\"\n";

fn keycloak(line: &str) -> KeycloakEvent<'_> {
    let p = KeycloakEventsParser;
    assert_eq!(
        p.frame(line.as_bytes()),
        Frame::Record { len: line.len() },
        "{line}"
    );
    // The neutral event it becomes is checked by the derivation tests.
    assert!(p.parse(line.as_bytes()).is_ok(), "{line}");
    keycloak_event(line.as_bytes()).unwrap()
}

#[test]
fn the_newer_form_with_quoted_values() {
    let e = keycloak(NEW);
    assert_eq!(e.timestamp, 1_729_161_818_199);
    assert_eq!((e.kind.as_ref(), e.success), ("LOGIN", false));
    assert_eq!(e.realm.as_deref(), Some("test"));
    assert_eq!(
        e.realm_id.as_deref(),
        Some("15b3a838-647e-4f17-9a00-7116f39e0b62")
    );
    assert_eq!(e.client_id.as_deref(), Some("account-console"));
    assert_eq!(
        e.user_id.as_deref(),
        Some("4e2fbbbc-289d-435e-9fe7-4f1719226bb0")
    );
    assert_eq!(e.ip.as_deref(), Some("192.168.65.1"));
    assert_eq!(e.grant_type, None);
}

#[test]
fn the_older_form_without_a_date() {
    let e = keycloak(OLD);
    assert_eq!((e.kind.as_ref(), e.success), ("LOGIN", false));
    assert_eq!((e.client_id, e.user_id), (None, None), "null is no value");
    assert_eq!(
        e.realm.as_deref(),
        Some("7512f194-451e-44b0-9f58-36c9f36738c4")
    );
    assert_eq!(
        e.timestamp.rem_euclid(DAY_MS),
        (8 * 3600 + 12 * 60 + 20) * 1000 + 561
    );
    assert!(e.timestamp <= now_ms() + 60_000);
    assert!(e.timestamp > now_ms() - DAY_MS - 60_000);
    // Single-quoted values with spaces, and token events.
    let e = keycloak(
        "09:00:00,000 INFO  [org.keycloak.events] (default task-1) type=CODE_TO_TOKEN, realmId=r, clientId=web, userId=u1, ipAddress=10.0.0.1, token_id=t, grant_type=authorization_code, reason='a value, with spaces'\n",
    );
    assert_eq!((e.kind.as_ref(), e.success), ("CODE_TO_TOKEN", true));
    assert_eq!(e.grant_type.as_deref(), Some("authorization_code"));
}

#[test]
fn dateless_times_take_the_day_they_are_read() {
    let noon = days_from_civil(2024, 3, 1) * DAY_MS + 12 * 3_600_000;
    assert_eq!(dated_today(11 * 3_600_000, noon), noon - 3_600_000);
    // 23:59 read just after midnight: yesterday.
    let just_after_midnight = days_from_civil(2024, 3, 1) * DAY_MS + 5_000;
    assert_eq!(
        dated_today(DAY_MS - 60_000, just_after_midnight),
        just_after_midnight - 5_000 - 60_000
    );
}

#[test]
fn grant_types_come_from_the_detail_or_the_type() {
    for (line, grant) in [
        (
            "type=\"CLIENT_LOGIN\", realmId=\"r\", clientId=\"svc\", userId=\"sa\", ipAddress=\"1.2.3.4\", grant_type=\"client_credentials\"",
            Some("client_credentials"),
        ),
        (
            "type=\"REFRESH_TOKEN\", realmId=\"r\", clientId=\"web\", userId=\"u\"",
            Some("refresh_token"),
        ),
        (
            "type=\"TOKEN_EXCHANGE\", realmId=\"r\"",
            Some("urn:ietf:params:oauth:grant-type:token-exchange"),
        ),
        (
            "type=\"LOGIN\", realmId=\"r\", userId=\"u\", grant_type=\"password\"",
            Some("password"),
        ),
        (
            "type=\"LOGIN\", realmId=\"r\", userId=\"u\", auth_method=\"openid-connect\"",
            None,
        ),
        ("type=\"LOGOUT\", realmId=\"r\", userId=\"u\"", None),
    ] {
        let text = format!("2024-10-17 10:43:38,199 INFO  [org.keycloak.events] (t) {line}\n");
        assert_eq!(keycloak(&text).grant_type.as_deref(), grant, "{line}");
    }
}

#[test]
fn json_logs() {
    let line = r#"{"timestamp":"2024-10-17T12:43:38.199+02:00","sequence":8543,"loggerClassName":"org.jboss.logging.Logger","loggerName":"org.keycloak.events","level":"INFO","message":"type=\"LOGIN\", realmId=\"15b3\", realmName=\"test\", clientId=\"account-console\", userId=\"4e2f\", ipAddress=\"192.168.65.1\", auth_method=\"openid-connect\", username=\"a \\\"quoted\\\" name\"","threadName":"executor-thread-1","threadId":33,"mdc":{},"ndc":"","hostName":"kc","processName":"QuarkusEntryPoint","processId":1}
"#;
    let e = keycloak(line);
    assert_eq!(e.timestamp, 1_729_161_818_199);
    assert_eq!((e.kind.as_ref(), e.success), ("LOGIN", true));
    assert_eq!(e.user_id.as_deref(), Some("4e2f"));
    assert_eq!(e.realm.as_deref(), Some("test"));
}

#[test]
fn other_lines_are_skipped_quietly() {
    let p = KeycloakEventsParser;
    for line in [
        "2024-10-17 10:43:38,199 INFO  [org.keycloak.services] (main) KC-SERVICES0050: Initializing master realm\n",
        "\tat org.keycloak.services.resources.LoginActionsService.authenticate(LoginActionsService.java:300)\n",
        "Caused by: java.lang.IllegalStateException: type=LOGIN, realmId=x, userId=y\n",
        // `type=` and even the events logger's name inside another logger's message.
        "2024-10-17 10:43:38,199 ERROR [org.keycloak.services.error] (t-1) failed: [org.keycloak.events] type=LOGIN, userId=evil\n",
        r#"{"timestamp":"2024-10-17T10:43:38.199Z","loggerName":"org.keycloak.services","message":"see org.keycloak.events type=\"LOGIN\""}
"#,
        // Admin events share the logger.
        "2024-10-17 10:43:38,199 INFO  [org.keycloak.events] (t) operationType=\"CREATE\", realmId=\"r\", clientId=\"c\", userId=\"u\", ipAddress=\"1.2.3.4\", resourceType=\"USER\", resourcePath=\"users/x\"\n",
        r#"{"timestamp":"2024-10-17T10:43:38.199Z","loggerName":"org.keycloak.events","message":"operationType=\"DELETE\", realmId=\"r\""}
"#,
        "\n",
    ] {
        assert_eq!(
            p.frame(line.as_bytes()),
            Frame::Blank { len: line.len() },
            "{line}"
        );
    }
    assert_eq!(p.frame(b"no newline yet"), Frame::Incomplete);
}

#[test]
fn broken_event_lines_are_counted() {
    let p = KeycloakEventsParser;
    for (line, kind) in [
        (
            "2024-10-17 10:43:38,199 INFO  [org.keycloak.events] (t) realmId=\"r\", userId=\"u\"\n",
            ParseErrorKind::MissingField,
        ),
        (
            "2024-10-17 10:43:38,199 INFO  [org.keycloak.events] (t) type=\"LOGIN, userId=\"u\n",
            ParseErrorKind::Garbage,
        ),
        (
            "2024-10-17 10:43:38,199 INFO  [org.keycloak.events] (t) type=\"login now\"\n",
            ParseErrorKind::WrongType,
        ),
        (
            "{\"timestamp\":\"yesterday\",\"loggerName\":\"org.keycloak.events\",\"message\":\"type=LOGIN\"}\n",
            ParseErrorKind::BadTimestamp,
        ),
        (
            "{\"timestamp\":\"2024-10-17T10:43:38Z\",\"loggerName\":\"org.keycloak.events\",\"message\":\n",
            ParseErrorKind::MalformedJson,
        ),
    ] {
        assert_eq!(
            p.frame(line.as_bytes()),
            Frame::Record { len: line.len() },
            "{line}"
        );
        assert_eq!(p.parse(line.as_bytes()).unwrap_err().kind, kind, "{line}");
    }
}

#[test]
fn iso_times() {
    assert_eq!(iso_millis("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(iso_millis("1970-01-01T01:00:00.5+01:00"), Some(500));
    assert_eq!(
        iso_millis("2024-02-29T23:59:59.999-0130"),
        Some(1_709_251_199_999 + 5_400_000)
    );
    assert_eq!(iso_millis("2024-10-17 10:43:38"), Some(1_729_161_818_000));
    assert_eq!(iso_millis("2024-13-01T00:00:00Z"), None);
    assert_eq!(iso_millis("2024-10-17T10:43:38+2"), None);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
}
