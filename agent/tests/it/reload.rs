//! SIGHUP reloads what is safe to reload and refuses the rest, on the real binary.

use crate::support::*;

use authstat_test_support::token::sha256_hex;

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

/// A Kubernetes ConfigMap volume: `authstat.yaml` → `..data/authstat.yaml`, `..data` → a
/// timestamped directory. An update writes a new directory and renames a new `..data` link over
/// the old one; no file named `authstat.yaml` changes. The agent reloads on that swap (no
/// SIGHUP here), and the new token works.
#[test]
fn a_configmap_symlink_swap_is_reloaded() {
    use std::os::unix::fs::symlink;
    let fixture = Fixture::new("");
    let volume = fixture.dir.path().join("config");
    let first = volume.join("..2026_12_02_10_00_00.000000001");
    std::fs::create_dir_all(&first).unwrap();
    let text = std::fs::read_to_string(fixture.config_path())
        .unwrap()
        .replace("logs/", &format!("{}/logs/", fixture.dir.path().display()))
        .replace("data/", &format!("{}/data/", fixture.dir.path().display()));
    std::fs::write(first.join("authstat.yaml"), &text).unwrap();
    symlink(first.file_name().unwrap(), volume.join("..data")).unwrap();
    symlink("..data/authstat.yaml", volume.join("authstat.yaml")).unwrap();
    let agent = spawn_agent(&volume.join("authstat.yaml"), fixture.dir.path(), &[]);
    let target = "/jans-auth/restv1/internal/stat?month=202402";
    assert_eq!(get(agent.addr, target, Some(TOKEN)).status, 200);
    assert_eq!(get(agent.addr, target, Some("second-token")).status, 401);

    // kubelet's update: a new directory, a new link renamed over `..data`, the old one removed.
    let second = volume.join("..2026_12_02_10_05_00.000000002");
    std::fs::create_dir(&second).unwrap();
    let updated = text.replace(
        "        scopes: [jans_stat]",
        &format!(
            "        scopes: [jans_stat]\n      - name: second\n        sha256: {}\n        scopes: [jans_stat]",
            sha256_hex("second-token")
        ),
    );
    assert_ne!(updated, text);
    std::fs::write(second.join("authstat.yaml"), &updated).unwrap();
    symlink(second.file_name().unwrap(), volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();

    wait_until("the swapped configuration to be applied", || {
        get(agent.addr, target, Some("second-token")).status == 200
    });
    assert!(agent.logged(&["configuration reloaded", "the configuration file changed"]));

    // A second swap works too (the watch does not hang on the first directory).
    let third = volume.join("..2026_12_02_10_10_00.000000003");
    std::fs::create_dir(&third).unwrap();
    std::fs::write(third.join("authstat.yaml"), &text).unwrap();
    symlink(third.file_name().unwrap(), volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    std::fs::remove_dir_all(&second).unwrap();
    wait_until("the second swap to be applied", || {
        get(agent.addr, target, Some("second-token")).status == 401
    });
}
