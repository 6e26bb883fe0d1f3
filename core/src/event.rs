//! The events authstat reads: Janssen audit records and issued-token events.

use std::borrow::Cow;
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
        /// Reads the name in place: a known action allocates nothing.
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = AuditAction;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an action name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<AuditAction, E> {
                Ok(AuditAction::parse(name))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// Text of an event: borrowed from the record's bytes when the JSON string has no escapes
/// (nearly always), owned otherwise. Parsing a record allocates nothing for its strings.
pub type Text<'a> = Cow<'a, str>;

/// A JSON string as [`Text`], borrowed when it can be.
fn text<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Text<'a>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowing<'a>(#[serde(borrow)] Cow<'a, str>);
    Borrowing::deserialize(d).map(|b| b.0)
}

/// A JSON string or `null` as [`Text`], borrowed when it can be.
fn optional_text<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Text<'a>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowing<'a>(#[serde(borrow)] Cow<'a, str>);
    Option::<Borrowing<'a>>::deserialize(d).map(|b| b.map(|b| b.0))
}

fn owned(text: Option<Text<'_>>) -> Option<Text<'static>> {
    text.map(|t| Cow::Owned(t.into_owned()))
}

/// One record of Janssen's `jans-auth_audit.log` (the JSON body; the log4j header is not kept).
///
/// Field names follow the JSON Janssen writes (`macAddress`, `clientId`, …); JSON `null`s are
/// `None`. The text fields borrow from the record (see [`Text`]); [`AuditEvent::into_owned`]
/// makes an event that outlives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent<'a> {
    /// Client IP address.
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub ip: Option<Text<'a>>,
    /// What happened.
    pub action: AuditAction,
    /// Event time in milliseconds since the Unix epoch (UTC); decides the month.
    pub timestamp: i64,
    /// MAC address of the auth-server node.
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub mac_address: Option<Text<'a>>,
    /// OAuth client id.
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub client_id: Option<Text<'a>>,
    /// The user (`uid`), when there is one.
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub username: Option<Text<'a>>,
    /// Requested or granted scopes, space-separated.
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub scope: Option<Text<'a>>,
    /// Whether the action succeeded (Java's `isSuccess`).
    pub success: bool,
}

impl AuditEvent<'_> {
    /// The month (UTC) of the event's own timestamp.
    pub fn month(&self) -> Result<Month, Error> {
        Month::from_epoch_millis(self.timestamp)
    }

    /// The same event, owning its text.
    pub fn into_owned(self) -> AuditEvent<'static> {
        AuditEvent {
            ip: owned(self.ip),
            action: self.action,
            timestamp: self.timestamp,
            mac_address: owned(self.mac_address),
            client_id: owned(self.client_id),
            username: owned(self.username),
            scope: owned(self.scope),
            success: self.success,
        }
    }
}

/// One issued token, as the token-event stream carries it (the audit log has no grant type).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEvent<'a> {
    /// Issue time in milliseconds since the Unix epoch (UTC); decides the month.
    pub timestamp: i64,
    /// The grant type of the original grant (`authorization_code`, `client_credentials`, …).
    #[serde(borrow, deserialize_with = "text")]
    pub grant_type: Text<'a>,
    /// The token type (`access_token`, `id_token`, `refresh_token`, `uma_token`, …).
    #[serde(borrow, deserialize_with = "text")]
    pub token_type: Text<'a>,
    /// OAuth client id.
    #[serde(borrow, deserialize_with = "text")]
    pub client_id: Text<'a>,
    /// The user, absent for grants without one (client credentials).
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub username: Option<Text<'a>>,
}

impl TokenEvent<'_> {
    /// The month (UTC) of the event's own timestamp.
    pub fn month(&self) -> Result<Month, Error> {
        Month::from_epoch_millis(self.timestamp)
    }

    /// The same event, owning its text.
    pub fn into_owned(self) -> TokenEvent<'static> {
        TokenEvent {
            timestamp: self.timestamp,
            grant_type: Cow::Owned(self.grant_type.into_owned()),
            token_type: Cow::Owned(self.token_type.into_owned()),
            client_id: Cow::Owned(self.client_id.into_owned()),
            username: owned(self.username),
        }
    }
}

/// One Keycloak event (a line of the `org.keycloak.events` logger): `type=LOGIN_ERROR,
/// realmId=…, clientId=…, userId=…, ipAddress=…, error=…, <details>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeycloakEvent<'a> {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The event type without its `_ERROR` suffix (`LOGIN` for `LOGIN` and `LOGIN_ERROR`).
    pub kind: Text<'a>,
    /// False for an `…_ERROR` event.
    pub success: bool,
    /// `realmName` if logged (newer Keycloak), else `realmId`.
    pub realm: Option<Text<'a>>,
    /// `realmId`, when `realm` is the name.
    pub realm_id: Option<Text<'a>>,
    /// `clientId` (absent or `null`: `None`).
    pub client_id: Option<Text<'a>>,
    /// `userId` (absent or `null`: `None`).
    pub user_id: Option<Text<'a>>,
    /// `ipAddress`.
    pub ip: Option<Text<'a>>,
    /// For an event that issued tokens: its grant type (the `grant_type` detail, or what the
    /// event type implies: `CODE_TO_TOKEN` → `authorization_code`, …).
    pub grant_type: Option<Text<'a>>,
}

impl KeycloakEvent<'_> {
    /// The event's month (UTC).
    pub fn month(&self) -> Result<Month, Error> {
        Month::from_epoch_millis(self.timestamp)
    }

    /// The same event, owning its text.
    pub fn into_owned(self) -> KeycloakEvent<'static> {
        KeycloakEvent {
            timestamp: self.timestamp,
            kind: Cow::Owned(self.kind.into_owned()),
            success: self.success,
            realm: owned(self.realm),
            realm_id: owned(self.realm_id),
            client_id: owned(self.client_id),
            user_id: owned(self.user_id),
            ip: owned(self.ip),
            grant_type: owned(self.grant_type),
        }
    }
}

/// Whose the tenants are: servers with realms (Keycloak) name one; others have none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tenant<'a> {
    /// The server has no tenants (Janssen): every event is counted.
    None,
    /// The event's tenant, by name and by id, as far as the record says (a tenant filter,
    /// `derive.keycloak_realms`, keeps events naming one of its tenants).
    Named {
        /// Its name (`realmName`), else what the record calls it.
        name: Option<Text<'a>>,
        /// Its id (`realmId`), when `name` is the name.
        id: Option<Text<'a>>,
    },
}

/// When the event's user counts as an active user of its month (if the event succeeded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserActivity {
    /// When its action is one of `derive.active_user_actions` (Janssen's audit records).
    ByAction,
    /// Always (a Keycloak event of a person).
    Always,
    /// Never (a service account's own login, a token event).
    Never,
}

/// Tokens an event issued: counted under (grant type, token type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens<'a> {
    /// The grant type (`authorization_code`, `client_credentials`, …).
    pub grant_type: Text<'a>,
    /// The token type (`access_token`, `id_token`, …).
    pub token_type: Text<'a>,
}

/// What happened, in terms every auth server shares: the neutral record every parser emits and
/// derivation reads (`docs/metrics.md`), borrowing from the record it was parsed from. A
/// parser maps its server's record onto it (`From` the vendor records below); derivation knows
/// no vendor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// The event's own time, in milliseconds since the Unix epoch (UTC); decides the month.
    pub timestamp: i64,
    /// The audited action (counted under (action, outcome)); none for a record that is not an
    /// audit of an action (a token event).
    pub action: Option<AuditAction>,
    /// Whether it succeeded.
    pub success: bool,
    /// Whether it is a user's authentication (counted as one, success or failure).
    pub authentication: bool,
    /// The user it names, if any.
    pub user: Option<Text<'a>>,
    /// When that user counts as active.
    pub user_activity: UserActivity,
    /// The OAuth client it names, if any.
    pub client: Option<Text<'a>>,
    /// Its tenant (realm).
    pub tenant: Tenant<'a>,
    /// The tokens it issued, if it issued any.
    pub tokens: Option<Tokens<'a>>,
    /// The client's address, if the record has it.
    pub ip: Option<Text<'a>>,
}

impl Event<'_> {
    /// The event's own time, in milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The month (UTC) of the event's own timestamp.
    pub fn month(&self) -> Result<Month, Error> {
        Month::from_epoch_millis(self.timestamp)
    }

    /// The same event, owning its text (to keep it past the record's buffer).
    pub fn into_owned(self) -> Event<'static> {
        Event {
            timestamp: self.timestamp,
            action: self.action,
            success: self.success,
            authentication: self.authentication,
            user: owned(self.user),
            user_activity: self.user_activity,
            client: owned(self.client),
            tenant: match self.tenant {
                Tenant::None => Tenant::None,
                Tenant::Named { name, id } => Tenant::Named {
                    name: owned(name),
                    id: owned(id),
                },
            },
            tokens: self.tokens.map(|t| Tokens {
                grant_type: Cow::Owned(t.grant_type.into_owned()),
                token_type: Cow::Owned(t.token_type.into_owned()),
            }),
            ip: owned(self.ip),
        }
    }
}

/// A Janssen audit record: its action counted, `USER_AUTHORIZATION` an authentication, its user
/// active by `derive.active_user_actions`.
impl<'a> From<AuditEvent<'a>> for Event<'a> {
    fn from(e: AuditEvent<'a>) -> Self {
        Event {
            timestamp: e.timestamp,
            authentication: e.action == AuditAction::UserAuthorization,
            action: Some(e.action),
            success: e.success,
            user: e.username,
            user_activity: UserActivity::ByAction,
            client: e.client_id,
            tenant: Tenant::None,
            tokens: None,
            ip: e.ip,
        }
    }
}

/// An issued token: its (grant type, token type) counted, nothing else.
impl<'a> From<TokenEvent<'a>> for Event<'a> {
    fn from(e: TokenEvent<'a>) -> Self {
        Event {
            timestamp: e.timestamp,
            action: None,
            success: true,
            authentication: false,
            user: e.username,
            user_activity: UserActivity::Never,
            client: Some(e.client_id),
            tenant: Tenant::None,
            tokens: Some(Tokens {
                grant_type: e.grant_type,
                token_type: e.token_type,
            }),
            ip: None,
        }
    }
}

/// A Keycloak event: its type counted as the action, `LOGIN` an authentication, its user active
/// unless it is a client's own login (`CLIENT_LOGIN`: a service account), one access token
/// under its grant type when it succeeded and issued tokens.
impl<'a> From<KeycloakEvent<'a>> for Event<'a> {
    fn from(k: KeycloakEvent<'a>) -> Self {
        let tokens = k.grant_type.filter(|_| k.success).map(|grant_type| Tokens {
            grant_type,
            token_type: Cow::Borrowed("access_token"),
        });
        Event {
            timestamp: k.timestamp,
            authentication: k.kind == "LOGIN",
            user_activity: if k.kind == "CLIENT_LOGIN" {
                UserActivity::Never
            } else {
                UserActivity::Always
            },
            action: Some(AuditAction::parse(&k.kind)),
            success: k.success,
            user: k.user_id,
            client: k.client_id,
            tenant: Tenant::Named {
                name: k.realm,
                id: k.realm_id,
            },
            tokens,
            ip: k.ip,
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
        let e: AuditEvent<'_> = serde_json::from_str(json).unwrap();
        assert!(
            matches!(e.username, Some(Cow::Borrowed("admin"))),
            "text without escapes is borrowed"
        );
        let escaped: AuditEvent<'_> = serde_json::from_str(
            r#"{"action":"USER_INFO","timestamp":1,"username":"a\"b","success":true}"#,
        )
        .unwrap();
        assert_eq!(escaped.username.as_deref(), Some("a\"b"));
        assert_eq!(e.action, AuditAction::UserAuthorization);
        assert_eq!(e.username.as_deref(), Some("admin"));
        assert_eq!(e.mac_address.as_deref(), Some("02-42-AC-11-00-02"));
        assert!(e.success);
        assert_eq!(e.month().unwrap().to_string(), "202402");
        let json = serde_json::to_string(&e).unwrap();
        let back: AuditEvent<'_> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.clone().into_owned(), e);
    }
}
