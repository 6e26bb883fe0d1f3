//! The events authstat reads: Janssen audit records and issued-token events.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Month};

macro_rules! audit_actions {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// The `action` of a Janssen audit record. Values this version does not know are kept
        /// as [`AuditAction::Other`], never rejected: Janssen adds actions over time.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum AuditAction {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
            /// An action this version of authstat does not know, as written in the log.
            Other(String),
        }

        impl AuditAction {
            /// Every action Janssen is known to write.
            pub const KNOWN: &'static [AuditAction] = &[$(AuditAction::$variant),*];

            /// The name as Janssen writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(AuditAction::$variant => $name,)*
                    AuditAction::Other(name) => name,
                }
            }

            /// The action named `name` (unknown names become [`AuditAction::Other`]).
            pub fn parse(name: &str) -> Self {
                match name {
                    $($name => AuditAction::$variant,)*
                    other => AuditAction::Other(other.to_owned()),
                }
            }
        }
    };
}

audit_actions! {
    ClientRegistration => "CLIENT_REGISTRATION",
    ClientUpdate => "CLIENT_UPDATE",
    ClientRead => "CLIENT_READ",
    ClientDelete => "CLIENT_DELETE",
    UserAuthorization => "USER_AUTHORIZATION",
    BackchannelAuthentication => "BACKCHANNEL_AUTHENTICATION",
    BackchannelDeviceRegistration => "BACKCHANNEL_DEVICE_REGISTRATION",
    UserInfo => "USER_INFO",
    TokenRequest => "TOKEN_REQUEST",
    TokenValidate => "TOKEN_VALIDATE",
    TokenRevocation => "TOKEN_REVOCATION",
    SessionUnauthenticated => "SESSION_UNAUTHENTICATED",
    SessionAuthenticated => "SESSION_AUTHENTICATED",
    SessionDestroyed => "SESSION_DESTROYED",
    DeviceCodeAuthorization => "DEVICE_CODE_AUTHORIZATION",
    SsaCreate => "SSA_CREATE",
    SsaRead => "SSA_READ",
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(AuditAction::parse(&name))
    }
}

/// One record of Janssen's `jans-auth_audit.log` (the JSON body; the log4j header is not kept).
///
/// Field names follow the JSON Janssen writes (`macAddress`, `clientId`, …); JSON `null`s are
/// `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Client IP address.
    pub ip: Option<String>,
    /// What happened.
    pub action: AuditAction,
    /// Event time in milliseconds since the Unix epoch (UTC); decides the month.
    pub timestamp: i64,
    /// MAC address of the auth-server node.
    pub mac_address: Option<String>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// The user (`uid`), when there is one.
    pub username: Option<String>,
    /// Requested or granted scopes, space-separated.
    pub scope: Option<String>,
    /// Whether the action succeeded (Java's `isSuccess`).
    pub success: bool,
}

impl AuditEvent {
    /// The month (UTC) of the event's own timestamp.
    pub fn month(&self) -> Result<Month, Error> {
        Month::from_epoch_millis(self.timestamp)
    }
}

/// One issued token, as the token-event stream carries it (the audit log has no grant type).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEvent {
    /// Issue time in milliseconds since the Unix epoch (UTC); decides the month.
    pub timestamp: i64,
    /// The grant type of the original grant (`authorization_code`, `client_credentials`, …).
    pub grant_type: String,
    /// The token type (`access_token`, `id_token`, `refresh_token`, `uma_token`, …).
    pub token_type: String,
    /// OAuth client id.
    pub client_id: String,
    /// The user, absent for grants without one (client credentials).
    #[serde(default)]
    pub username: Option<String>,
}

impl TokenEvent {
    /// The month (UTC) of the event's own timestamp.
    pub fn month(&self) -> Result<Month, Error> {
        Month::from_epoch_millis(self.timestamp)
    }
}

/// Anything a parser produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An audit-log record.
    Audit(AuditEvent),
    /// An issued token.
    Token(TokenEvent),
}

impl Event {
    /// The event's own time, in milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        match self {
            Event::Audit(e) => e.timestamp,
            Event::Token(e) => e.timestamp,
        }
    }

    /// The month (UTC) of the event's own timestamp.
    pub fn month(&self) -> Result<Month, Error> {
        match self {
            Event::Audit(e) => e.month(),
            Event::Token(e) => e.month(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_actions_round_trip() {
        for action in AuditAction::KNOWN {
            assert_eq!(&AuditAction::parse(action.as_str()), action);
        }
        let future = AuditAction::parse("PAR_CREATE");
        assert_eq!(future, AuditAction::Other("PAR_CREATE".into()));
        assert_eq!(future.as_str(), "PAR_CREATE");
        assert_eq!(AuditAction::KNOWN.len(), 17);
    }

    #[test]
    fn audit_event_reads_janssen_json() {
        let json = r#"{
          "ip" : "10.0.0.5",
          "action" : "USER_AUTHORIZATION",
          "timestamp" : 1706745603590,
          "macAddress" : "02-42-AC-11-00-02",
          "clientId" : "2000.7810d591-69d3-458c-9309-4268085fe71c",
          "username" : "admin",
          "scope" : "openid profile email",
          "success" : true
        }"#;
        let e: AuditEvent = serde_json::from_str(json).unwrap();
        assert_eq!(e.action, AuditAction::UserAuthorization);
        assert_eq!(e.username.as_deref(), Some("admin"));
        assert_eq!(e.mac_address.as_deref(), Some("02-42-AC-11-00-02"));
        assert!(e.success);
        assert_eq!(e.month().unwrap().to_string(), "202402");
        let back: AuditEvent = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
