//! The JWT and introspection authenticators against a JWKS and an introspection endpoint served
//! by the test on loopback, with keys generated here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::routing::{get as route_get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use crate::support::*;

mod jwt;

const STAT: &str = "/jans-auth/restv1/internal/stat?month=202402";
const ISSUER: &str = "https://auth.example.test";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key and its public JWK.
enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct TestKey {
    kid: String,
    signer: Signer,
}

impl TestKey {
    fn ec(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        Self {
            kid: kid.into(),
            signer: Signer::Ec(pair),
        }
    }

    fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self {
            kid: kid.into(),
            signer: Signer::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
        }
    }

    /// RSA 2048 from `openssl` (ring cannot generate RSA keys), as a PKCS#1 DER key.
    fn rsa(kid: &str) -> Self {
        let out = std::process::Command::new("sh")
            .args(["-c", "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 | openssl pkey -traditional -outform DER"])
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            kid: kid.into(),
            signer: Signer::Rsa(RsaKeyPair::from_der(&out.stdout).unwrap()),
        }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Ec(_) => "ES256",
            Signer::Rsa(_) => "RS256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Signer::Rsa(pair) => {
                let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
                json!({"kty": "RSA", "kid": self.kid, "alg": "RS256", "n": b64(&public.n), "e": b64(&public.e)})
            }
            Signer::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "x": b64(pair.public_key().as_ref())})
            }
        }
    }

    fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Ec(pair) => pair
                .sign(&rng, message.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    message.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            Signer::Ed(pair) => pair.sign(message.as_bytes()).as_ref().to_vec(),
        };
        format!("{message}.{}", b64(&sig))
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with(
            &json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }
}

fn claims(extra: Value) -> Value {
    let mut c =
        json!({"iss": ISSUER, "aud": "authstat", "exp": now() + 600, "scope": "openid jans_stat"});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

#[derive(Default)]
struct AuthServer {
    jwks: Mutex<Value>,
    jwks_requests: AtomicU64,
    /// token → introspection answer
    answers: Mutex<HashMap<String, Value>>,
    introspections: AtomicU64,
}

async fn serve_auth(server: Arc<AuthServer>) -> SocketAddr {
    async fn jwks(State(s): State<Arc<AuthServer>>) -> axum::Json<Value> {
        s.jwks_requests.fetch_add(1, Ordering::SeqCst);
        axum::Json(s.jwks.lock().unwrap().clone())
    }
    async fn introspect(
        State(s): State<Arc<AuthServer>>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> axum::Json<Value> {
        s.introspections.fetch_add(1, Ordering::SeqCst);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("authstat:s3cret")
        );
        assert_eq!(
            headers.get("authorization").unwrap().to_str().unwrap(),
            expected,
            "client credentials"
        );
        let token = form.get("token").cloned().unwrap_or_default();
        axum::Json(
            s.answers
                .lock()
                .unwrap()
                .get(&token)
                .cloned()
                .unwrap_or(json!({"active": false})),
        )
    }
    let app = axum::Router::new()
        .route("/jwks", route_get(jwks))
        .route("/introspect", post(introspect))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An agent whose `api.auth` section is `auth` (YAML, indented under `api:`).
async fn agent_with_auth(auth: &str) -> (authstat::RunningAgent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authstat.yaml");
    std::fs::write(
        &path,
        format!("node_id: auth-test\nlisten_addr: 127.0.0.1:0\nsources:\n  - {{name: a, type: file, format: janssen_audit, paths: [none.log]}}\nbackend: {{type: memory}}\napi:\n  auth:\n{auth}"),
    )
    .unwrap();
    let config = authstat_config::load(&path, &HashMap::new()).unwrap();
    let agent = authstat::start(
        authstat::resolve::resolve(&path, config).unwrap(),
        Default::default(),
    )
    .await
    .unwrap();
    (agent, dir)
}

/// A dashboard login with `token`: its status, and whether it set a session cookie.
async fn dashboard_login(addr: SocketAddr, token: &str) -> (u16, bool) {
    let body = format!("token={token}");
    let r = tokio::task::spawn_blocking(move || {
        request(
            addr,
            "POST",
            "/dashboard/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            &body,
        )
    })
    .await
    .unwrap();
    (r.status, r.header("set-cookie").is_some())
}

async fn status(addr: SocketAddr, token: &str) -> (u16, String) {
    let token = token.to_owned();
    let r = tokio::task::spawn_blocking(move || get(addr, STAT, Some(&token)))
        .await
        .unwrap();
    let description = serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|v| v["error_description"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (r.status, description)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_checks_active_and_scope_and_caches() {
    let server = Arc::new(AuthServer::default());
    {
        let mut answers = server.answers.lock().unwrap();
        answers.insert(
            "good".into(),
            json!({"active": true, "scope": "openid jans_stat", "exp": now() + 600}),
        );
        answers.insert(
            "other-scope".into(),
            json!({"active": true, "scope": "openid", "exp": now() + 600}),
        );
        answers.insert("revoked".into(), json!({"active": false}));
    }
    let auth_addr = serve_auth(server.clone()).await;
    let (agent, _dir) = agent_with_auth(&format!(
        "    type: introspection\n    endpoint: http://{auth_addr}/introspect\n    client_id: authstat\n    client_secret: s3cret\n"
    ))
    .await;
    let addr = agent.addr;
    assert_eq!(status(addr, "good").await.0, 200);
    let calls = server.introspections.load(Ordering::SeqCst);
    assert_eq!(status(addr, "good").await.0, 200);
    assert_eq!(
        server.introspections.load(Ordering::SeqCst),
        calls,
        "the second answer came from the cache"
    );
    let (code, description) = status(addr, "revoked").await;
    assert_eq!(
        (code, description.as_str()),
        (401, "the token is not active")
    );
    assert_eq!(status(addr, "other-scope").await.0, 401);
    assert_eq!(status(addr, "unknown").await.0, 401);
    // The dashboard's login asks the same introspection.
    assert_eq!(dashboard_login(addr, "good").await, (303, true));
    assert_eq!(dashboard_login(addr, "revoked").await, (401, false));
    assert_eq!(dashboard_login(addr, "other-scope").await, (401, false));
    agent.shutdown().await;

    let (agent, _dir) = agent_with_auth(
        "    type: introspection\n    endpoint: http://127.0.0.1:1/introspect\n    client_id: authstat\n    client_secret: s3cret\n    timeout_secs: 1\n",
    )
    .await;
    assert_eq!(
        status(agent.addr, "good").await.0,
        503,
        "introspection endpoint down"
    );
    assert_eq!(
        dashboard_login(agent.addr, "good").await,
        (503, false),
        "the login form says the authorization server cannot be reached"
    );
    agent.shutdown().await;
}
