//! Bearer tokens as JWTs: claims, forgeries, key rotation, an unreachable JWKS.

use super::*;

/// An auth server publishing an EC key `ec-1` and an RSA key `rsa-1`, and an agent checking
/// JWTs against it.
struct JwtSetup {
    ec: TestKey,
    rsa: TestKey,
    server: Arc<AuthServer>,
    agent: authstat::RunningAgent,
    _dir: tempfile::TempDir,
}

async fn jwt_setup() -> JwtSetup {
    let ec = TestKey::ec("ec-1");
    let rsa = TestKey::rsa("rsa-1");
    let server = Arc::new(AuthServer::default());
    // Besides the two keys: an Ed25519 key, keys for encryption only (`use: enc`, `key_ops`
    // without `verify`), a symmetric key, and a key the library cannot read, none of which may
    // hide the others.
    let mut enc = TestKey::ec("enc-1").jwk();
    enc["use"] = json!("enc");
    let mut wrap = TestKey::ec("wrap-1").jwk();
    wrap["key_ops"] = json!(["wrapKey"]);
    let keys = json!([
        ec.jwk(),
        rsa.jwk(),
        TestKey::ed25519("ed-1").jwk(),
        enc,
        wrap,
        {"kty": "oct", "kid": "oct-1", "k": b64(b"a shared secret")},
        {"kty": "XYZ", "kid": "odd-1"},
    ]);
    *server.jwks.lock().unwrap() = json!({ "keys": keys });
    let auth_addr = serve_auth(server.clone()).await;
    let (agent, _dir) = agent_with_auth(&format!(
        "    type: jwt\n    jwks_uri: http://{auth_addr}/jwks\n    issuer: {ISSUER}\n    audience: authstat\n    leeway_secs: 5\n    jwks_refresh_min_secs: 0\n"
    ))
    .await;
    JwtSetup {
        ec,
        rsa,
        server,
        agent,
        _dir,
    }
}

/// A valid token's claims, HMAC-SHA256 signed with `secret`, naming key `kid`.
fn hs256(kid: &str, secret: &[u8]) -> String {
    let header = b64(json!({"alg": "HS256", "kid": kid, "typ": "JWT"})
        .to_string()
        .as_bytes());
    let body = b64(claims(json!({})).to_string().as_bytes());
    let message = format!("{header}.{body}");
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        message.as_bytes(),
    );
    format!("{message}.{}", b64(mac.as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_are_verified_against_the_jwks() {
    let JwtSetup {
        ec,
        rsa,
        agent,
        _dir,
        ..
    } = jwt_setup().await;
    let addr = agent.addr;

    assert_eq!(
        status(addr, &ec.sign(&claims(json!({})))).await.0,
        200,
        "ES256"
    );
    assert_eq!(
        status(addr, &rsa.sign(&claims(json!({})))).await.0,
        200,
        "RS256"
    );
    // The dashboard's login verifies JWTs the same way.
    assert_eq!(
        dashboard_login(addr, &ec.sign(&claims(json!({})))).await,
        (303, true)
    );
    assert_eq!(
        dashboard_login(addr, &ec.sign(&claims(json!({"scope": "openid"})))).await,
        (401, false),
        "without the scope"
    );
    assert_eq!(
        status(
            addr,
            &ec.sign(&claims(json!({"scope": null, "scp": ["jans_stat"]})))
        )
        .await
        .0,
        200,
        "scp array"
    );

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            ec.sign(&claims(json!({"exp": now() - 60}))),
            "expired",
        ),
        (
            "not yet valid",
            ec.sign(&claims(json!({"nbf": now() + 600}))),
            "not valid yet",
        ),
        (
            "no exp",
            ec.sign(&claims(json!({"exp": null}))),
            "well-formed",
        ),
        (
            "wrong issuer",
            ec.sign(&claims(json!({"iss": "https://evil.test"}))),
            "another issuer",
        ),
        (
            "wrong audience",
            ec.sign(&claims(json!({"aud": "someone-else"}))),
            "audience",
        ),
        (
            "scope substring",
            ec.sign(&claims(json!({"scope": "my_jans_stat_x"}))),
            "scope jans_stat",
        ),
        ("garbage", "not.a.jwt".to_owned(), "well-formed"),
    ];
    for (what, token, needle) in cases {
        let (code, description) = status(addr, &token).await;
        assert_eq!(code, 401, "{what}");
        assert!(description.contains(needle), "{what}: {description}");
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_jwts_are_refused() {
    let JwtSetup {
        ec,
        rsa,
        agent,
        _dir,
        ..
    } = jwt_setup().await;
    let addr = agent.addr;
    // A tampered payload breaks the signature.
    let good = ec.sign(&claims(json!({})));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = b64(claims(json!({"scope": "jans_stat admin"}))
        .to_string()
        .as_bytes());
    let (code, description) = status(addr, &parts.join(".")).await;
    assert_eq!(
        (code, description.contains("signature")),
        (401, true),
        "{description}"
    );
    // alg none.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(json!({})).to_string().as_bytes())
    );
    assert_eq!(status(addr, &none).await.0, 401, "alg none");
    // HMAC with the public key as secret (the classic confusion attack).
    let public = rsa.jwk().to_string();
    assert_eq!(
        status(addr, &hs256("rsa-1", public.as_bytes())).await.0,
        401,
        "HS256 with the public key"
    );
    // An EC signature presented as RS256 with the EC key's kid: wrong key family.
    let confused = ec.sign_with(&json!({"alg": "RS256", "kid": "ec-1"}), &claims(json!({})));
    assert_eq!(
        status(addr, &confused).await.0,
        401,
        "algorithm / key family mismatch"
    );

    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_id_fetches_the_jwks_again() {
    let JwtSetup {
        server,
        agent,
        _dir,
        ..
    } = jwt_setup().await;
    let addr = agent.addr;
    let rotated = TestKey::ec("ec-2");
    server.jwks.lock().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(rotated.jwk());
    let before = server.jwks_requests.load(Ordering::SeqCst);
    assert_eq!(
        status(addr, &rotated.sign(&claims(json!({})))).await.0,
        200,
        "rotated key"
    );
    assert!(server.jwks_requests.load(Ordering::SeqCst) > before);
    // A kid nobody knows: 401 after the refresh.
    let stranger = TestKey::ec("unknown");
    assert_eq!(
        status(addr, &stranger.sign(&claims(json!({})))).await.0,
        401
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_gives_503() {
    let (agent, _dir) =
        agent_with_auth(&format!("    type: jwt\n    jwks_uri: http://127.0.0.1:1/jwks\n    issuer: {ISSUER}\n    timeout_secs: 1\n")).await;
    let token = TestKey::ec("k").sign(&claims(json!({})));
    let addr = agent.addr;
    let r = tokio::task::spawn_blocking(move || get(addr, STAT, Some(&token)))
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    agent.shutdown().await;
}

/// What the library makes possible: EdDSA, `crit` refused, keys for other uses ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_crit_and_keys_for_other_uses() {
    let JwtSetup {
        ec, agent, _dir, ..
    } = jwt_setup().await;
    let addr = agent.addr;
    // The JWKS's Ed25519 key is a fresh one each setup: sign with a key of the same kid that
    // the server does not publish, then with one it does.
    let stranger = TestKey::ed25519("ed-1");
    assert_eq!(
        status(addr, &stranger.sign(&claims(json!({})))).await.0,
        401
    );

    // `crit`: an extension authstat does not understand, so the token is refused even though
    // its signature is good.
    let crit = ec.sign_with(
        &json!({"alg": "ES256", "kid": "ec-1", "crit": ["exp"], "exp": 1}),
        &claims(json!({})),
    );
    let (code, description) = status(addr, &crit).await;
    assert_eq!(
        (code, description.as_str()),
        (401, "the token is not a well-formed JWT")
    );

    // A key published for encryption (or only for wrapping keys) verifies nothing.
    for kid in ["enc-1", "wrap-1"] {
        let signer = TestKey::ec(kid);
        let token = signer.sign(&claims(json!({})));
        assert_eq!(status(addr, &token).await.0, 401, "{kid}");
    }
    // The symmetric key is never used as an HMAC secret.
    assert_eq!(
        status(addr, &hs256("oct-1", b"a shared secret")).await.0,
        401,
        "HS256 with the JWKS's oct key"
    );
    agent.shutdown().await;
}

/// An Ed25519 key the auth server publishes verifies EdDSA tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_tokens_verify() {
    let ed = TestKey::ed25519("ed-only");
    let server = Arc::new(AuthServer::default());
    *server.jwks.lock().unwrap() = json!({"keys": [ed.jwk()]});
    let auth_addr = serve_auth(server.clone()).await;
    let (agent, _dir) = agent_with_auth(&format!(
        "    type: jwt\n    jwks_uri: http://{auth_addr}/jwks\n    issuer: {ISSUER}\n    audience: authstat\n"
    ))
    .await;
    assert_eq!(
        status(agent.addr, &ed.sign(&claims(json!({})))).await.0,
        200
    );
    let (code, description) =
        status(agent.addr, &ed.sign(&claims(json!({"exp": now() - 600})))).await;
    assert_eq!((code, description.as_str()), (401, "the token has expired"));
    agent.shutdown().await;
}
