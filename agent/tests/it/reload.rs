//! SIGHUP reloads what is safe to reload and refuses the rest, on the real binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::support::*;

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn sighup_reloads_tokens_and_refuses_a_new_listen_address() {
    let fixture = Fixture::new("");
    let mut child = Command::new(env!("CARGO_BIN_EXE_authstat"))
        .args(["run", "--config"])
        .arg(fixture.config_path())
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let mut addr: Option<SocketAddr> = None;
    wait_until("the agent to listen", || {
        addr = log.lock().unwrap().iter().find_map(|l| {
            let rest = &l[l.find("listening addr=")? + "listening addr=".len()..];
            rest.split_whitespace().next()?.parse().ok()
        });
        addr.is_some()
    });
    let addr = addr.unwrap();
    let target = "/jans-auth/restv1/internal/stat?month=202402";
    assert_eq!(get(addr, target, Some("second-token")).status, 401);

    // A new token: accepted after SIGHUP (a change of the file may reload it even earlier).
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "        scopes: [jans_stat]",
        &format!("        scopes: [jans_stat]\n      - name: second\n        sha256: {}\n        scopes: [jans_stat]", sha256_hex("second-token")),
    );
    std::fs::write(&path, &text).unwrap();
    let pid = child.id().to_string();
    let hup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    hup();
    wait_until("the new token to be accepted", || {
        get(addr, target, Some("second-token")).status == 200
    });

    // A new listen address cannot be applied while running: refused, the old one keeps serving.
    std::fs::write(
        &path,
        text.replace("listen_addr: 127.0.0.1:0", "listen_addr: 127.0.0.1:1"),
    )
    .unwrap();
    hup();
    wait_until("the refusal in the log", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("configuration not reloaded") && l.contains("listen_addr"))
    });
    assert_eq!(get(addr, target, Some("second-token")).status, 200);

    // A broken file is not applied either.
    std::fs::write(&path, "sources: [").unwrap();
    hup();
    wait_until("the parse error in the log", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("configuration not reloaded") && l.contains("authstat.yaml:"))
    });
    assert_eq!(get(addr, "/livez", None).status, 200);

    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
