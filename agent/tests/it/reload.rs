//! SIGHUP reloads what is safe to reload and refuses the rest, on the real binary.

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
    let mut agent = spawn_agent(&fixture.config_path(), fixture.dir.path(), &[]);
    let addr = agent.addr;
    let target = "/jans-auth/restv1/internal/stat?month=202402";
    assert_eq!(get(addr, target, Some("second-token")).status, 401);

    // A new token: accepted after SIGHUP (a change of the file may reload it even earlier).
    let path = fixture.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "        scopes: [jans_stat]",
        &format!("        scopes: [jans_stat]\n      - name: second\n        sha256: {}\n        scopes: [jans_stat]", sha256_hex("second-token")),
    );
    std::fs::write(&path, &text).unwrap();
    let hup = || agent.signal("HUP");
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
        agent.logged(&["configuration not reloaded", "listen_addr"])
    });
    assert_eq!(get(addr, target, Some("second-token")).status, 200);

    // A broken file is not applied either.
    std::fs::write(&path, "sources: [").unwrap();
    hup();
    wait_until("the parse error in the log", || {
        agent.logged(&["configuration not reloaded", "authstat.yaml:"])
    });
    assert_eq!(get(addr, "/livez", None).status, 200);

    // A stop signal that arrives while a reload is being handled (the file just changed, so the
    // agent is in its debounce pause) is not lost.
    std::fs::write(&path, &text).unwrap();
    hup();
    agent.signal("TERM");
    assert_eq!(agent.wait_exit().code(), Some(0));
}
