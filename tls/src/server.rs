//! The API's TLS: a rustls server configuration made of PEM files and made again when they
//! change. A change that does not make a valid configuration (a half-written file, a key that
//! is not the certificate's, an expired certificate) leaves the one in use, and says why.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::files::{CertInfo, Usage, identity, read_file, roots};

/// The files of the API's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// The certificate chain (leaf first), PEM.
    pub cert_file: PathBuf,
    /// Its private key, PEM.
    pub key_file: PathBuf,
    /// Clients must present a certificate signed by a CA of this file.
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: a client without a certificate may still connect (whether its
    /// request is served is the HTTP layer's to decide); one with an untrusted one may not.
    pub client_cert_optional: bool,
}

/// What the files held when last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Option<Vec<u8>>,
}

#[derive(Debug)]
struct State {
    config: Arc<ServerConfig>,
    leaf: CertInfo,
    /// The contents in use.
    applied: Contents,
    /// Contents that were refused: the same are not tried twice.
    refused: Option<Contents>,
    /// Why the files as they are now are not in use.
    problem: Option<String>,
}

/// The outcome of [`ServerTls::reload_if_changed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files are as last read.
    Unchanged,
    /// New handshakes use this certificate now.
    Applied(CertInfo),
    /// The files changed but make no valid configuration: the one in use stays.
    Refused(String),
}

/// The API's TLS configuration, current with its files.
#[derive(Debug)]
pub struct ServerTls {
    files: ServerFiles,
    state: RwLock<State>,
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn read(files: &ServerFiles) -> Result<Contents, String> {
    Ok(Contents {
        cert: read_file(&files.cert_file)?,
        key: read_file(&files.key_file)?,
        ca: files.client_ca_file.as_deref().map(read_file).transpose()?,
    })
}

fn build(
    files: &ServerFiles,
    contents: &Contents,
) -> Result<(Arc<ServerConfig>, CertInfo), String> {
    let now = SystemTime::now();
    let identity = identity(
        (&files.cert_file, &contents.cert),
        (&files.key_file, &contents.key),
        Usage::Server,
        now,
    )?;
    let provider = crate::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match (&files.client_ca_file, &contents.ca) {
        (Some(path), Some(pem)) => {
            let roots = Arc::new(roots(path, pem, now)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if files.client_cert_optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            )
        }
        _ => builder.with_no_client_auth(),
    };
    let certified = identity.certified_key()?;
    let mut config = builder.with_cert_resolver(Arc::new(Fixed(certified)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), identity.leaf))
}

impl ServerTls {
    /// Reads and checks the files: an error says which file and what is wrong with it.
    pub fn load(files: ServerFiles) -> Result<Self, String> {
        let contents = read(&files)?;
        let (config, leaf) = build(&files, &contents)?;
        Ok(ServerTls {
            files,
            state: RwLock::new(State {
                config,
                leaf,
                applied: contents,
                refused: None,
                problem: None,
            }),
        })
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.state.read().expect("lock").config.clone()
    }

    /// The certificate in use.
    pub fn leaf(&self) -> CertInfo {
        self.state.read().expect("lock").leaf.clone()
    }

    /// Why the files as they are now are not in use, if they are not.
    pub fn problem(&self) -> Option<String> {
        self.state.read().expect("lock").problem.clone()
    }

    /// The files.
    pub fn files(&self) -> &ServerFiles {
        &self.files
    }

    /// Reads the files; when they changed since last read, makes and applies a configuration
    /// of them, or keeps the one in use and says why.
    pub fn reload_if_changed(&self) -> Reload {
        let contents = match read(&self.files) {
            Ok(contents) => contents,
            Err(why) => return self.refuse(why),
        };
        {
            let mut state = self.state.write().expect("lock");
            if state.applied == contents {
                // Back to the files in use (a swap undone, a file readable again).
                return match state.problem.take() {
                    Some(_) => Reload::Applied(state.leaf.clone()),
                    None => Reload::Unchanged,
                };
            }
            if state.refused.as_ref() == Some(&contents) {
                return Reload::Unchanged;
            }
        }
        match build(&self.files, &contents) {
            Ok((config, leaf)) => {
                let mut state = self.state.write().expect("lock");
                *state = State {
                    config,
                    leaf: leaf.clone(),
                    applied: contents,
                    refused: None,
                    problem: None,
                };
                Reload::Applied(leaf)
            }
            Err(why) => {
                self.state.write().expect("lock").refused = Some(contents);
                self.refuse(why)
            }
        }
    }

    /// Records why the files are not in use: `Refused` the first time, `Unchanged` after.
    fn refuse(&self, why: String) -> Reload {
        let mut state = self.state.write().expect("lock");
        if state.problem.as_ref() == Some(&why) {
            return Reload::Unchanged;
        }
        state.problem = Some(why.clone());
        Reload::Refused(why)
    }
}
