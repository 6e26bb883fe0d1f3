use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use authstat_test_support::certs::{Ca, Key, Leaf};

use super::*;

fn check(dir: &Path, name: &str, usage: Usage) -> Result<CertInfo, String> {
    check_identity_files(
        &dir.join(format!("{name}.pem")),
        &dir.join(format!("{name}.key")),
        usage,
    )
}

/// The subject as openssl writes it (an implementation other than ours).
fn openssl_subject(pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(pem)
        .output()
        .expect("openssl");
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().trim_start_matches("subject=").to_owned()
}

#[test]
fn ecdsa_ed25519_and_rsa_pairs_are_read_with_their_subject_serial_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    for (name, key) in [("ec", Key::Ecdsa), ("ed", Key::Ed25519), ("rsa", Key::Rsa)] {
        let issued = ca.issue(&Leaf {
            key,
            ..Leaf::server()
        });
        let (pem, _) = issued.write(dir.path(), name);
        let info = check(dir.path(), name, Usage::Server).unwrap();
        assert_eq!(info.subject, openssl_subject(&pem), "{name}");
        assert_eq!(info.serial, issued.serial, "{name}");
        let left = info.not_after.duration_since(SystemTime::now()).unwrap();
        assert!(
            (29 * 86_400..=30 * 86_400).contains(&left.as_secs()),
            "{name}: {left:?}"
        );
    }
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (pem, _) = ca.issue(&Leaf::server()).write(dir.path(), "one");
    let (_, other_key) = ca.issue(&Leaf::server()).write(dir.path(), "two");
    let e = check_identity_files(&pem, &other_key, Usage::Server).unwrap_err();
    assert!(
        e.contains("two.key is not the key of the certificate in"),
        "{e}"
    );
    assert!(e.contains("one.pem"), "{e}");
}

#[test]
fn expired_not_yet_valid_half_written_and_empty_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let expired = Leaf {
        from_days_ago: 30,
        days_left: -1,
        ..Leaf::server()
    };
    ca.issue(&expired).write(dir.path(), "expired");
    let e = check(dir.path(), "expired", Usage::Server).unwrap_err();
    assert!(e.contains("expired on"), "{e}");
    let early = Leaf {
        from_days_ago: -2,
        ..Leaf::server()
    };
    ca.issue(&early).write(dir.path(), "early");
    let e = check(dir.path(), "early", Usage::Server).unwrap_err();
    assert!(e.contains("not valid yet"), "{e}");
    let issued = ca.issue(&Leaf::server());
    let (pem, _) = issued.write(dir.path(), "half");
    std::fs::write(&pem, &issued.cert_pem[..issued.cert_pem.len() / 2]).unwrap();
    let e = check(dir.path(), "half", Usage::Server).unwrap_err();
    assert!(e.contains("half.pem"), "{e}");
    std::fs::write(&pem, "").unwrap();
    let e = check(dir.path(), "half", Usage::Server).unwrap_err();
    assert!(e.contains("no certificate in it"), "{e}");
    let e = check(dir.path(), "missing", Usage::Server).unwrap_err();
    assert!(
        e.starts_with("cannot read") && e.contains("missing.pem"),
        "{e}"
    );
}

#[test]
fn a_full_chain_is_checked_link_by_link() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new("root CA");
    let intermediate = root.intermediate("intermediate CA");
    intermediate
        .issue(&Leaf::server())
        .write(dir.path(), "chain");
    check(dir.path(), "chain", Usage::Server).unwrap();
    // A client certificate is not a server's.
    intermediate
        .issue(&Leaf::client("agent"))
        .write(dir.path(), "client");
    check(dir.path(), "client", Usage::Client).unwrap();
    assert!(check(dir.path(), "client", Usage::Server).is_err());
    // The leaf followed by a CA that did not sign it.
    let other = Ca::new("other CA").intermediate("other intermediate");
    let mut issued = intermediate.issue(&Leaf::server());
    let leaf_end = issued.cert_pem.find("-----END CERTIFICATE-----").unwrap() + 26;
    issued.cert_pem = format!("{}{}", &issued.cert_pem[..leaf_end], other.pem);
    issued.write(dir.path(), "broken");
    let e = check(dir.path(), "broken", Usage::Server).unwrap_err();
    assert!(e.contains("the chain does not hold together"), "{e}");
}

#[test]
fn ca_files_are_read_and_an_expired_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    let (a, b) = (Ca::new("A"), Ca::new("B"));
    std::fs::write(&path, format!("{}{}", a.pem, b.pem)).unwrap();
    assert_eq!(check_ca_file(&path), Ok(2));
    std::fs::write(&path, "not PEM").unwrap();
    assert!(check_ca_file(&path).unwrap_err().contains("no certificate"));
}

fn server_files(dir: &Path) -> ServerFiles {
    ServerFiles {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: None,
        client_cert_optional: false,
    }
}

#[test]
fn a_reload_applies_a_valid_pair_keeps_the_old_one_otherwise_and_says_why_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let first = ca.issue(&Leaf::server());
    first.write(dir.path(), "server");
    let tls = ServerTls::load(server_files(dir.path())).unwrap();
    assert_eq!(tls.leaf().serial, first.serial);
    assert_eq!(tls.reload_if_changed(), Reload::Unchanged);

    // Half of a rotation: the new certificate, the old key.
    let second = ca.issue(&Leaf::server());
    std::fs::write(dir.path().join("server.pem"), &second.cert_pem).unwrap();
    let Reload::Refused(why) = tls.reload_if_changed() else {
        panic!("a mismatched pair was not refused")
    };
    assert!(why.contains("is not the key of the certificate"), "{why}");
    assert_eq!(tls.reload_if_changed(), Reload::Unchanged, "said once");
    assert_eq!(tls.problem(), Some(why));
    assert_eq!(tls.leaf().serial, first.serial, "the old pair stays in use");

    // The other half.
    second.write(dir.path(), "server");
    let Reload::Applied(leaf) = tls.reload_if_changed() else {
        panic!("a valid pair was not applied")
    };
    assert_eq!(leaf.serial, second.serial);
    assert_eq!(tls.problem(), None);

    // Gone for a moment (a symlink swapped), then back as it was.
    std::fs::remove_file(dir.path().join("server.key")).unwrap();
    assert!(matches!(tls.reload_if_changed(), Reload::Refused(why) if why.contains("cannot read")));
    second.write(dir.path(), "server");
    assert!(matches!(tls.reload_if_changed(), Reload::Applied(l) if l.serial == second.serial));
    assert_eq!(tls.problem(), None);
}

#[test]
fn the_first_load_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let e = ServerTls::load(server_files(dir.path())).unwrap_err();
    assert!(e.contains("server.pem"), "{e}");
    let ca = Ca::new("test CA");
    ca.issue(&Leaf::server()).write(dir.path(), "server");
    let mut files = server_files(dir.path());
    files.client_ca_file = Some(dir.path().join("clients.pem"));
    let e = ServerTls::load(files.clone()).unwrap_err();
    assert!(e.contains("clients.pem"), "{e}");
    ca.write(&dir.path().join("clients.pem"));
    ServerTls::load(files).unwrap();
}

/// A Kubernetes Secret mounted as a directory: the files are symlinks through `..data`, which
/// the kubelet points at a new directory in one rename.
#[test]
fn a_secret_swapped_as_a_directory_symlink_is_applied() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (first, second) = (ca.issue(&Leaf::server()), ca.issue(&Leaf::server()));
    for (name, issued) in [("..2026_12_01", &first), ("..2026_12_02", &second)] {
        let version = dir.path().join(name);
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("tls.crt"), &issued.cert_pem).unwrap();
        std::fs::write(version.join("tls.key"), &issued.key_pem).unwrap();
    }
    symlink("..2026_12_01", dir.path().join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        symlink(format!("..data/{file}"), dir.path().join(file)).unwrap();
    }
    let tls = ServerTls::load(ServerFiles {
        cert_file: dir.path().join("tls.crt"),
        key_file: dir.path().join("tls.key"),
        client_ca_file: None,
        client_cert_optional: false,
    })
    .unwrap();
    assert_eq!(tls.leaf().serial, first.serial);
    symlink("..2026_12_02", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    assert!(matches!(tls.reload_if_changed(), Reload::Applied(l) if l.serial == second.serial));
}

#[test]
fn a_file_that_never_ends_is_refused_not_read_forever() {
    let e = read_file(Path::new("/dev/zero")).unwrap_err();
    assert!(e.contains("larger than 4 MiB"), "{e}");
}

/// `openssl x509 -req` without extensions makes a v1 certificate, which rustls refuses as a
/// peer's: said when the files are read, not at the first handshake.
#[test]
fn a_v1_certificate_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    run(&format!(
        "openssl req -x509 {ec} -subj /CN=ca -keyout ca.key -out ca.pem -days 2"
    ));
    run(&format!(
        "openssl req {ec} -subj /CN=leaf -keyout v1.key -out v1.csr"
    ));
    run(
        "openssl x509 -req -in v1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out v1.pem",
    );
    let e = check(dir.path(), "v1", Usage::Client).unwrap_err();
    assert!(e.contains("an X.509 v1 certificate"), "{e}");
}
