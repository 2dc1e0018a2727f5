//! What `vault` does on a terminal, driven through a pseudo-terminal
//! (`expect`): hidden passphrase and value prompts, and colour only on a
//! terminal and never with NO_COLOR. (Template prompts: tests/templates.rs.)

use std::process::Command;

use crate::support::*;

const CANARY: &str = "CANARY-c4f7e1-do-not-leak";

/// Runs an `expect` script (a 30 s timeout first) in a clean environment
/// for `env`'s bare vault directory, with a cheap scrypt and `vars`.
fn expect_script(
    env: &Env,
    vars: &[(&str, &std::ffi::OsStr)],
    script: &str,
) -> std::process::Output {
    let mut c = Command::new("expect");
    c.arg("-c")
        .arg(format!("set timeout 30\n{script}"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", &env.home)
        .env("VAULT_DIR", &env.dir)
        .env("VAULT_SCRYPT_WORK_FACTOR", "10");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The passphrase prompts, driven through a pseudo-terminal.
#[test]
fn passphrase_prompt_on_a_terminal() {
    if !have("expect") {
        return;
    }
    let env = Env::bare_for_tests();
    let bin = BIN;
    let run = |script: String| expect_script(&env, &[], &script);
    // Two different passphrases: refused, nothing created.
    let o = run(format!(
        "spawn {bin} init\nexpect \"New passphrase\"\nsleep 0.3\nsend \"one\\r\"\nexpect \"Repeat\"\nsleep 0.3\nsend \"two\\r\"\nexpect \"differ\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
    ));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(!env.dir.join("identity.age").exists());
    // The same one twice: created. Input is not echoed.
    let o = run(format!(
        "spawn {bin} init\nexpect \"New passphrase\"\nsleep 0.3\nsend \"typed secret\\r\"\nexpect \"Repeat\"\nsleep 0.3\nsend \"typed secret\\r\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
    ));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("typed secret\r\n"),
        "echoed: {o:?}"
    );
    // The passphrase is asked once, first (so that an existing name is
    // refused before a value is typed), then the bare KEY's value, hidden.
    let o = run(format!(
        "spawn {bin} secret create db PGPASSWORD\nexpect \"Passphrase for the vault\"\nsleep 0.3\nsend \"typed secret\\r\"\nexpect \"Value for PGPASSWORD\"\nsleep 0.3\nsend \"{CANARY}\\r\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
    ));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(CANARY),
        "value echoed: {o:?}"
    );
    let o = run(format!(
        "spawn {bin} secret show db --reveal\nexpect \"Passphrase for the vault\"\nsleep 0.3\nsend \"typed secret\\r\"\nexpect eof\n"
    ));
    assert!(String::from_utf8_lossy(&o.stdout).contains(CANARY), "{o:?}");
    let o = run(format!(
        "spawn {bin} secret list\nexpect \"Passphrase for the vault\"\nsleep 0.3\nsend \"wrong\\r\"\nexpect \"wrong passphrase\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
    ));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

/// Colour on a terminal only, and never with NO_COLOR.
/// A passphrase typed the instant its prompt shows is not echoed: echo is
/// off before the prompt is printed (rpassword alone prints it first and
/// turns echo off after, and `expect` answering at once saw the
/// passphrase echoed). No `sleep` before `send` here, on purpose.
#[test]
fn a_passphrase_typed_at_once_is_not_echoed() {
    if !have("expect") {
        return;
    }
    let env = Env::bare_for_tests();
    let bin = BIN;
    let run = |script: String| expect_script(&env, &[], &script);
    let o = run(format!(
        "spawn {bin} init\nexpect \"New passphrase\"\nsend \"{CANARY}\\r\"\nexpect \"Repeat\"\nsend \"{CANARY}\\r\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
    ));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(CANARY),
        "echoed: {o:?}"
    );
    for _ in 0..5 {
        let o = run(format!(
            "spawn {bin} secret list\nexpect \"Passphrase for the vault\"\nsend \"{CANARY}\\r\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
        ));
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(CANARY),
            "echoed: {o:?}"
        );
    }
}

/// `secret edit` with a passphrase asks for it once: the keys that read
/// the secret before the editor opened write it after (it asked again
/// after the editor closed, and ran scrypt twice).
#[test]
fn secret_edit_asks_the_passphrase_once() {
    if !have("expect") {
        return;
    }
    let env = Env::bare_for_tests();
    let bin = BIN;
    let editor = env.write("ed.sh", "#!/bin/sh\nsed -i 's/^K=.*/K=v2/' \"$1\"\n");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |script: String| expect_script(&env, &[("EDITOR", editor.as_os_str())], &script);
    let answer = "expect {\n\"Passphrase for the vault\" { send \"pw\\r\"; exp_continue }\n\"New passphrase\" { send \"pw\\r\"; exp_continue }\n\"Repeat\" { send \"pw\\r\"; exp_continue }\neof\n}\nlassign [wait] p s o code\nexit $code\n";
    let o = run(format!("spawn {bin} secret create db K=v1\n{answer}"));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = run(format!("spawn {bin} secret edit db\n{answer}"));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out.contains("Saved `db`"), "{out}");
    assert_eq!(out.matches("Passphrase for the vault").count(), 1, "{out}");
}

#[test]
fn colour_only_on_a_terminal_and_not_with_no_color() {
    if !have("expect") {
        return;
    }
    let env = Env::new().init();
    let screen = |no_color: Option<&str>| {
        let mut c = Command::new("expect");
        c.arg("-c")
            .arg(format!("spawn {BIN} secret show nope\nexpect eof\n"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("VAULT_DIR", &env.dir)
            .env("VAULT_IDENTITY", env.identity.as_ref().unwrap());
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    assert!(
        screen(None).contains("\x1b[1;31merror\x1b[0m"),
        "{:?}",
        screen(None)
    );
    assert!(!screen(Some("1")).contains('\x1b'));
    // Not a terminal: plain.
    env.vault(["secret", "show", "nope"])
        .run()
        .fails(1)
        .lacks("\x1b[");
}
