//! The man pages in `man/` are generated from the clap definitions; this
//! test fails when a checked-in page differs from what the code generates.
//!
//! Regenerate them with:
//!
//!     VAULT_UPDATE_MAN=1 cargo test --test integration man_pages

use std::{fs, io::Write, path::Path, process::Command};

use clap_mangen::Man;

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "VAULT_DIR",
        "The directory that holds identity.age, vault.age and vault.lock (like --vault-dir). Default: ~/.config/vault.",
    ),
    (
        "VAULT_FILE",
        "A vault file elsewhere, such as a team vault in a repository (like --vault); its lock is FILE.lock.",
    ),
    (
        "VAULT_IDENTITY",
        "An age identity file or ssh private key that opens the vault (like --identity); no passphrase is asked.",
    ),
    (
        "VAULT_PASSPHRASE_FILE",
        "A file whose first line is the passphrase (like --passphrase-file); refused if group or others may read, write or execute it.",
    ),
    (
        "VAULT_ENV",
        "The environment to work in (like -e/--env); else the project's env, else main. This and the variables above count as unset when set to the empty string.",
    ),
    (
        "VAULT_PASSPHRASE",
        "The passphrase itself, for scripts (UTF-8: other bytes are an error). Never passed to the command that vault run starts.",
    ),
    (
        "VAULT_SCRYPT_WORK_FACTOR",
        "Debug builds only, for tests: the scrypt work factor for a new identity.age. Release builds ignore it.",
    ),
    (
        "XDG_RUNTIME_DIR",
        "Where the agent's socket lives (vault/HASH.sock); when unset or not an existing directory, inside VAULT_DIR.",
    ),
    ("SHELL", "The shell that vault shell starts (else /bin/sh)."),
    (
        "NO_COLOR",
        "When set and not empty, no colour in messages. Colour is only used on a terminal anyway.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "~/.config/vault/identity.age",
        "Your age X25519 identity, encrypted with your passphrase (scrypt). Mode 0600.",
    ),
    (
        "~/.config/vault/vault.age",
        "The vault: a SQLite database, serialized and encrypted with age to the recipients listed inside it. Mode 0600.",
    ),
    (
        "~/.config/vault/vault.lock",
        "Empty; writers hold an exclusive lock on it. A vault given with --vault FILE uses FILE.lock.",
    ),
    (
        "$XDG_RUNTIME_DIR/vault/HASH.sock",
        "The agent's socket (mode 0600, directory 0700), while vault unlock's agent runs.",
    ),
];

const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "1",
        "Any vault error: bad input, a missing secret, a locked or damaged vault. The vault file is left unchanged.",
    ),
    (
        "2",
        "A usage error: an unknown option or subcommand, a missing argument.",
    ),
    (
        "126",
        "vault run: the command was found but could not be executed.",
    ),
    ("127", "vault run: the command was not found."),
    (
        "other",
        "vault run and vault shell exit with the status of the command they start, which replaces vault.",
    ),
];

/// Text made safe for roff: backslashes, hyphens, and control characters at
/// the start of a line.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn tagged(out: &mut Vec<u8>, heading: &str, items: &[(&str, &str)]) {
    writeln!(out, ".SH \"{heading}\"").unwrap();
    for (tag, text) in items {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(tag), roff(text)).unwrap();
    }
}

fn render(cmd: &clap::Command) -> Vec<u8> {
    let man = Man::new(cmd.clone());
    let mut out = vec![];
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).unwrap();
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out).unwrap();
    }
    if let Some(examples) = cmd.get_after_long_help() {
        writeln!(out, ".SH EXAMPLES\n.nf").unwrap();
        for line in examples.to_string().lines().skip(1) {
            writeln!(out, "{}", roff(line.trim_start())).unwrap();
        }
        writeln!(out, ".fi").unwrap();
    }
    tagged(&mut out, "ENVIRONMENT", ENVIRONMENT);
    tagged(&mut out, "FILES", FILES);
    tagged(&mut out, "EXIT STATUS", EXIT_STATUS);
    writeln!(out, ".SH \"SEE ALSO\"\nage(1), age\\-keygen(1), sqlite3(1)").unwrap();
    out
}

/// Every page: `vault.1`, then one per visible subcommand (`vault-run.1`,
/// `vault-secret-create.1`, …).
fn pages() -> Vec<(String, Vec<u8>)> {
    let mut cmd = vault::testing::full_command().disable_help_subcommand(true);
    cmd.build();
    let mut out = vec![];
    walk(&cmd, &mut out);
    out
}

fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    out.push((format!("{name}.1"), render(cmd)));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        walk(sub, out);
    }
}

#[test]
fn man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = pages();
    if std::env::var_os("VAULT_UPDATE_MAN").is_some() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            fs::remove_file(e.path()).unwrap();
        }
        for (name, text) in &pages {
            fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut stale = vec![];
    for (name, text) in &pages {
        if fs::read(dir.join(name)).ok().as_deref() != Some(&text[..]) {
            stale.push(name.clone());
        }
    }
    let mut on_disk: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut wanted: Vec<String> = pages.iter().map(|(n, _)| n.clone()).collect();
    wanted.sort();
    assert_eq!(on_disk, wanted, "man/ holds other pages than the CLI has");
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}: run `VAULT_UPDATE_MAN=1 cargo test --test integration man_pages`"
    );
}

#[test]
fn man_pages_have_every_section_and_render_cleanly() {
    let pages = pages();
    for want in [
        "vault.1",
        "vault-run.1",
        "vault-secret-create.1",
        "vault-import.1",
        "vault-recipients-add.1",
    ] {
        assert!(pages.iter().any(|(n, _)| n == want), "{want}");
    }
    for (name, text) in &pages {
        let text = String::from_utf8_lossy(text);
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "EXAMPLES",
            "ENVIRONMENT",
            "FILES",
            "EXIT STATUS",
        ] {
            assert!(
                text.contains(&format!(".SH {section}"))
                    || text.contains(&format!(".SH \"{section}\"")),
                "{name} lacks {section}"
            );
        }
        for var in [
            "VAULT_DIR",
            "VAULT_FILE",
            "VAULT_IDENTITY",
            "VAULT_PASSPHRASE_FILE",
            "VAULT_PASSPHRASE",
        ] {
            assert!(text.contains(var), "{name} lacks {var}");
        }
    }
    if !crate::support::have("groff") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for (name, _) in &pages {
        // -k: UTF-8 input, as man(1) feeds it; -ww: all warnings. A clean page prints none.
        let out = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if crate::support::have("man") {
        let out = Command::new("man")
            .arg("-l")
            .arg(dir.join("vault.1"))
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(
            text.contains("EXIT STATUS") && text.contains("vault run -s db -- psql"),
            "{text}"
        );
    }
}

#[test]
fn completions_for_every_shell() {
    let env = crate::support::Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = env.vault(["completions", shell]).run().success();
        assert!(out.stdout.contains("vault"), "{shell}");
    }
    let bash = env.vault(["completions", "bash"]).run().success().stdout;
    let script = env.write("vault.bash", &bash);
    let st = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(st.success(), "bash -n");
    env.vault(["completions", "tcsh"]).run().fails(2);
}

/// No completion script offers an internal subcommand (`__agent`,
/// `__exec-files`, `__complete-secrets`), at the top or under `help`:
/// clap_complete lists hidden subcommands too. bash's script may only
/// *call* `vault __complete-secrets`, to complete secret names.
#[test]
fn completions_offer_no_internal_subcommand() {
    let env = crate::support::Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = env.vault(["completions", shell]).run().success().stdout;
        for line in script.lines() {
            let offered = ["__agent", "__exec-files", "__exec__", "__complete"]
                .iter()
                .any(|name| line.contains(name));
            let the_call = line.contains("vault __complete-secrets -- \"$cur\"");
            assert!(!offered || the_call, "{shell}: {line}");
        }
        // Still the visible ones, `help` included.
        assert!(script.contains("completions") && script.contains("recipients"));
    }
}

/// Secret names complete dynamically in bash, without ever prompting.
#[test]
fn bash_completes_secret_names() {
    let env = crate::support::Env::new().init();
    env.create("db-prod", &["K=v"]);
    env.create("db-staging", &["K=v"]);
    env.vault(["__complete-secrets"])
        .run()
        .success()
        .stdout_has("db-prod\ndb-staging\n");
    // No identity file and no agent: nothing, and no prompt.
    let locked = crate::support::Env::with_passphrase("pw").init();
    locked.create("x", &["K=v"]);
    let out = locked
        .vault(["__complete-secrets"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .success();
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    // Drive bash's completion function with the vault under test on PATH.
    let bash = env.vault(["completions", "bash"]).run().success().stdout;
    let script = env.write("vault.bash", &bash);
    let bin_dir = Path::new(crate::support::BIN).parent().unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(vault run -s db-s); COMP_CWORD=3; _vault_with_secrets; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(probe)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("VAULT_DIR", &env.dir)
        .env("VAULT_IDENTITY", env.identity.as_ref().unwrap())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "db-staging\n",
        "{out:?}"
    );
}
