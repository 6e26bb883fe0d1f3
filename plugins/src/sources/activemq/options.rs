//! The options of `type: activemq`, decoded from the source's keys as written.

use serde::{Deserialize, Serialize};

use crate::options::{OptionError, decode, positive};

/// The `type` name of this source kind.
pub const ACTIVEMQ: &str = "activemq";

/// The options of `type: activemq`: the records Janssen sends to its audit queue
/// (`jmsBrokerURISet`), consumed over STOMP; each message is acknowledged only once what it
/// counted is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivemqConfig {
    /// The brokers' STOMP endpoints, `host:port` or `stomp://host:port`, or
    /// `stomp+ssl://host:port` (also spelt `ssl://`) for TLS, tried in turn (failover).
    #[serde(default)]
    pub brokers: Vec<String>,
    /// The queue (Janssen's is `oauth2.audit.logging`).
    #[serde(default = "default_queue")]
    pub queue: String,
    /// The login, if the broker wants one (`${VAR}` takes it from the environment).
    #[serde(default)]
    pub username: Option<String>,
    /// The passcode (`${VAR}`); never logged.
    #[serde(default)]
    pub password: Option<String>,
    /// Messages the broker sends before they are acknowledged. Acknowledgements follow each
    /// flush, so at most this many messages are read per flush interval.
    #[serde(default = "default_prefetch")]
    pub prefetch: u32,
    /// How often a lost connection is tried again at most (it backs off to 30 s), and the
    /// pace of the source's checks, in milliseconds.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// TLS to `stomp+ssl://` brokers: whom to trust and the client certificate to present.
    #[serde(default)]
    pub tls: Option<StompTls>,
}

/// `tls:` of an `activemq` source (relative paths are relative to the configuration file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StompTls {
    /// The CAs that sign the brokers' certificates (PEM); without it, the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// This agent's client certificate (PEM, leaf first), for a broker that requires one
    /// (ActiveMQ's `needClientAuth=true`); with `key_file`.
    #[serde(default)]
    pub cert_file: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key_file: Option<std::path::PathBuf>,
}

fn default_queue() -> String {
    "oauth2.audit.logging".into()
}

fn default_prefetch() -> u32 {
    5000
}

fn default_poll_interval_ms() -> u64 {
    1000
}

impl ActivemqConfig {
    /// Decodes and checks the options of an `activemq` source; brokers are written one way
    /// (`host:port`, or `stomp+ssl://host:port` for TLS).
    pub fn decode(options: &serde_yaml::Mapping) -> Result<Self, OptionError> {
        let mut o: Self = decode(options)?;
        if o.brokers.is_empty() {
            return Err(OptionError::new(
                "brokers",
                "source type activemq needs `brokers` (at least one host:port)",
            ));
        }
        for (i, b) in o.brokers.iter_mut().enumerate() {
            // TLS brokers keep their scheme, one spelling of it.
            let (tls, rest) = match ["stomp+ssl://", "ssl://"]
                .iter()
                .find_map(|scheme| b.strip_prefix(scheme))
            {
                Some(rest) => (true, rest),
                None => (false, b.strip_prefix("stomp://").unwrap_or(b)),
            };
            let rest = rest.trim_end_matches('/');
            if rest
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(OptionError::new(
                    format!("brokers[{i}]"),
                    format!(
                        "'{b}' is not host:port (or stomp://host:port, or \
                         stomp+ssl://host:port for TLS)"
                    ),
                ));
            }
            *b = if tls {
                format!("stomp+ssl://{rest}")
            } else {
                rest.to_owned()
            };
        }
        if let Some(tls) = &o.tls
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            return Err(OptionError::new(
                "tls.cert_file",
                "a client certificate and its key go together (cert_file and key_file)",
            ));
        }
        o.username = o.username.filter(|u| !u.is_empty());
        positive("prefetch", u64::from(o.prefetch))?;
        positive("poll_interval_ms", o.poll_interval_ms)?;
        Ok(o)
    }
}

/// `check-config`'s lines of the source's `tls` files (see `SourceKind::certificates`).
pub(in crate::sources) fn certificates(
    options: &serde_yaml::Mapping,
    base: &std::path::Path,
) -> Vec<Result<String, String>> {
    let Some(tls) = ActivemqConfig::decode(options).ok().and_then(|c| c.tls) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(ca) = &tls.ca_file {
        out.push(authstat_tls::ca_line("tls.ca_file", &base.join(ca)));
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let (cert, key) = (base.join(cert), base.join(key));
        let usage = authstat_tls::Usage::Client;
        out.push(authstat_tls::pair_line("tls.cert_file", &cert, &key, usage));
    }
    out
}

/// Checks the options of an `activemq` source.
pub(in crate::sources) fn check(options: &serde_yaml::Mapping) -> Result<(), OptionError> {
    ActivemqConfig::decode(options).map(|_| ())
}

#[cfg(test)]
mod tests {
    use authstat_test_support::certs::{Ca, Leaf};

    use super::*;

    /// `check-config`'s lines of a queue's TLS files, relative to the configuration's directory,
    /// and the option named with its problem.
    #[test]
    fn the_tls_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("broker CA");
        ca.write(&dir.path().join("ca.pem"));
        ca.issue(&Leaf::client("agent")).write(dir.path(), "client");
        let options = |key: &str| -> serde_yaml::Mapping {
            serde_yaml::from_str(&format!(
                "brokers: [stomp+ssl://mq:61614]\ntls: {{ca_file: ca.pem, cert_file: client.pem, key_file: {key}}}\n"
            ))
            .unwrap()
        };
        let lines = certificates(&options("client.key"), dir.path());
        assert!(
            lines[0].as_ref().unwrap().starts_with("tls.ca_file: "),
            "{lines:?}"
        );
        let pair = lines[1].as_ref().unwrap();
        assert!(
            pair.starts_with("tls.cert_file: O=authstat tests,CN=agent (serial"),
            "{pair}"
        );
        let bad = certificates(&options("missing.key"), dir.path());
        let problem = bad[1].as_ref().unwrap_err();
        assert!(
            problem.starts_with("tls.cert_file: cannot read") && problem.contains("missing.key"),
            "{problem}"
        );
        assert!(
            certificates(
                &serde_yaml::from_str("brokers: [mq:61613]").unwrap(),
                dir.path()
            )
            .is_empty()
        );
    }
}
