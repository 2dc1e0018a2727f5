//! CI and output (issue 19; DESIGN.md "v2: CI and output"): `VAULT_AGE_KEY`,
//! `export --format docker|k8s|github` read back by readers that behave as
//! docker's, Kubernetes' and GitHub's, and `run --redact` / `vault redact`:
//! masking across read boundaries, signals passed on (and a terminal's not
//! sent twice), exit status and death by signal reproduced, and a plain
//! exec on a terminal.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    fs::{self, File, OpenOptions},
    io::{BufRead, BufReader, Read, Write},
    os::unix::{
        ffi::OsStrExt,
        fs::OpenOptionsExt,
        process::{CommandExt, ExitStatusExt},
    },
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use base64::Engine;

use crate::support::*;

/// Creates `name` from a JSON object: values never pass through argv.
fn create_json(env: &Env, name: &str, pairs: &[(&str, &str)]) {
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let path = env.write(
        &format!("{name}.json"),
        serde_json::to_vec(&object).unwrap(),
    );
    env.vault(["secret", "create", name, "--force", "--from-json"])
        .arg_path(&path)
        .run()
        .success();
}

/// The text of this user's identity file.
fn key_text(env: &Env) -> String {
    fs::read_to_string(env.identity.as_ref().unwrap()).unwrap()
}

// ---------------------------------------------------------------- VAULT_AGE_KEY

#[test]
fn age_key_unlocks_and_never_reaches_the_child() {
    let env = Env::new().init();
    env.create("s", &["X=from-vault"]);
    let key = key_text(&env);
    let probe = [
        "--",
        "sh",
        "-c",
        "printf '%s %s' \"$X\" \"${VAULT_AGE_KEY-absent}\"",
    ];
    for redact in [None, Some("--redact=always")] {
        let out = env
            .vault(["run", "-s", "s"])
            .args(redact)
            .args(probe)
            .env_remove("VAULT_IDENTITY")
            .env("VAULT_AGE_KEY", &key)
            .run()
            .success();
        let want = match redact {
            Some(_) => "******** absent",
            None => "from-vault absent",
        };
        assert_eq!(out.stdout, want);
    }
    // Nor through a source.
    env.vault(["run", "--local-env", "VAULT_AGE_KEY", "--", "true"])
        .env("VAULT_AGE_KEY", &key)
        .run()
        .fails(1)
        .stderr_has("`VAULT_AGE_KEY` is never passed to a command")
        .lacks("AGE-SECRET-KEY-1");
    env.vault(["run", "--set", "VAULT_AGE_KEY=x", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("a source sets `VAULT_AGE_KEY`");
}

#[test]
fn age_key_comes_right_after_identity() {
    let env = Env::new().init();
    env.create("s", &["X=1"]);
    let key = key_text(&env);
    let other = env.home.join("other.txt");
    write_identity(&other);
    let other_key = fs::read_to_string(&other).unwrap();
    // --identity / VAULT_IDENTITY first: a wrong file is not rescued.
    env.vault(["secret", "list"])
        .env("VAULT_IDENTITY", &other)
        .env("VAULT_AGE_KEY", &key)
        .run()
        .fails(1);
    env.vault(["secret", "list"])
        .env("VAULT_IDENTITY", env.identity.as_ref().unwrap())
        .env("VAULT_AGE_KEY", &other_key)
        .run()
        .success();
    // Then VAULT_AGE_KEY, before any passphrase source.
    let pass = Env::with_passphrase("pw").init();
    pass.create("p", &["Y=2"]);
    pass.vault(["secret", "list"])
        .env("VAULT_AGE_KEY", &other_key)
        .run()
        .fails(1)
        .lacks("AGE-SECRET-KEY-1");
    // An empty one is unset (a CI secret that was not defined).
    pass.vault(["secret", "list"])
        .env("VAULT_AGE_KEY", "")
        .run()
        .success()
        .stdout_has("p");
}

#[test]
fn init_with_an_age_key_needs_no_identity_age() {
    let env = Env::bare_for_tests();
    let key_file = env.home.join("k.txt");
    write_identity(&key_file);
    let key = fs::read_to_string(&key_file).unwrap();
    env.vault(["init"])
        .env("VAULT_AGE_KEY", &key)
        .run()
        .success();
    assert!(!env.dir.join("identity.age").exists());
    env.vault(["secret", "create", "s", "A=1"])
        .env("VAULT_AGE_KEY", &key)
        .run()
        .success();
    // The file opens with the same key from a file.
    env.vault(["secret", "list"])
        .env("VAULT_IDENTITY", &key_file)
        .run()
        .success()
        .stdout_has("s");
}

#[test]
fn malformed_age_key_is_named_never_shown() {
    let env = Env::new().init();
    let cases: &[&[u8]] = &[
        b"AGE-SECRET-KEY-1SEKRITSEKRITSEKRIT",
        b"hunter2-not-a-key",
        b"# a comment\nAGE-SECRET-KEY-1QQQQQQQQQQQQQSEKRIT\n",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nU0VLUklUU0VLUklU\n-----END OPENSSH PRIVATE KEY-----\n",
        b"key.txt",
        b"\xff\xfeSEKRIT",
    ];
    for text in cases {
        let out = env
            .vault(["secret", "list"])
            .env_remove("VAULT_IDENTITY")
            .env("VAULT_AGE_KEY", OsStr::from_bytes(text))
            .run()
            .fails(1)
            .stderr_has("VAULT_AGE_KEY");
        for needle in ["SEKRIT", "U0VLUklU", "hunter2", "key.txt\n", "QQQQ"] {
            assert!(!out.stderr.contains(needle), "{needle:?} shown: {out:#?}");
        }
    }
}

/// A CI secret that is not defined expands to "": an empty VAULT_AGE_KEY
/// counts as unset, and the error that follows says it was empty.
#[test]
fn an_empty_age_key_is_named_in_the_hint() {
    let env = Env::new().init();
    fs::remove_file(env.dir.join("identity.age")).ok();
    env.vault(["secret", "list"])
        .env_remove("VAULT_IDENTITY")
        .env("VAULT_AGE_KEY", "")
        .run()
        .fails(1)
        .stderr_has("VAULT_AGE_KEY is set but empty");
}

// ---------------------------------------------------------------- export

/// Values that trip quoting readers: quotes, `$`, `#`, `=`, backslashes,
/// spaces at either end, non-ASCII, empty.
const TRICKY: &[(&str, &str)] = &[
    ("DQ", "\"quoted\""),
    ("SQ", "'single'"),
    ("MIXED", "a \"b\" 'c' d"),
    ("DOLLAR", "$HOME ${X:-y} $(id) `id`"),
    ("HASH", "a # not a comment"),
    ("HASH_START", "#start"),
    ("EQ", "=a=b="),
    ("BS", "C:\\path\\n\\"),
    ("SPACES", "  both ends  "),
    ("TAB", "\tx\t"),
    ("UNICODE", "päss wörd ✓ 密码"),
    ("EMPTY", ""),
    ("PERCENT", "100%25%"),
];

/// docker's env-file reader (docker/cli `pkg/kvfile`), written again:
/// lines split at LF with a CR before it dropped (Go's `bufio.ScanLines`),
/// at most 64 KiB; a BOM on the first line and leading whitespace removed;
/// blank lines and `#` lines skipped; the rest split at the first `=`;
/// no quote or escape processing at all.
fn docker_reads(text: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(text).expect("docker wants UTF-8");
    let mut out = vec![];
    for (n, line) in text.split_terminator('\n').enumerate() {
        assert!(line.len() < 64 * 1024, "token too long at line {}", n + 1);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = if n == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').expect("a value");
        assert!(!key.is_empty() && !key.contains([' ', '\t']), "bad key");
        out.push((key.to_string(), value.to_string()));
    }
    out
}

fn sorted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.into_iter().collect()
}

#[test]
fn docker_format_reads_back_byte_for_byte() {
    let env = Env::new().init();
    create_json(&env, "app", TRICKY);
    let out = env
        .vault(["export", "app", "--format", "docker"])
        .run()
        .success();
    assert_eq!(docker_reads(&out.raw_stdout), sorted(TRICKY));
    assert!(out.stdout.contains("DQ=\"quoted\"\n"), "no quoting added");
}

#[test]
fn docker_format_refuses_line_breaks_naming_the_key() {
    let env = Env::new().init();
    for (key, value) in [("LF", "two\nlines-sekrit"), ("CR", "one\rsekrit")] {
        create_json(&env, "bad", &[("OK", "fine"), (key, value)]);
        env.vault(["export", "bad", "--format", "docker"])
            .run()
            .fails(1)
            .stderr_has(&format!("`{key}`"))
            .lacks("sekrit")
            .lacks("OK=fine");
    }
}

#[test]
fn k8s_manifest_parses_and_decodes_to_the_values() {
    let env = Env::new().init();
    let mut pairs = TRICKY.to_vec();
    pairs.extend([
        ("MULTI", "line 1\nline 2\r\n"),
        ("ON", "yes"),
        ("NULL", "~"),
    ]);
    create_json(&env, "My_App.prod", &pairs);
    let out = env
        .vault(["export", "My_App.prod", "--format", "k8s"])
        .run()
        .success();
    let check = |yaml: &str, name: &str| {
        let doc: serde_norway::Value = serde_norway::from_str(yaml).unwrap();
        assert_eq!(doc["apiVersion"].as_str(), Some("v1"));
        assert_eq!(doc["kind"].as_str(), Some("Secret"));
        assert_eq!(doc["type"].as_str(), Some("Opaque"));
        assert_eq!(doc["metadata"]["name"].as_str(), Some(name));
        let data = doc["data"].as_mapping().unwrap();
        let decoded: Vec<(String, String)> = data
            .iter()
            .map(|(k, v)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap())
                    .unwrap();
                (
                    k.as_str().unwrap().to_string(),
                    String::from_utf8(bytes).unwrap(),
                )
            })
            .collect();
        assert_eq!(decoded, sorted(&pairs));
    };
    check(&out.stdout, "my-app.prod");
    // A YAML 1.1 reader (PyYAML) where there is one: `ON` stays a string.
    let pyyaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .status()
        .is_ok_and(|s| s.success());
    if pyyaml {
        let script = "import sys, yaml, json; d = yaml.safe_load(sys.stdin); print(json.dumps(sorted(d['data'])))";
        let mut py = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        py.stdin
            .take()
            .unwrap()
            .write_all(out.raw_stdout.as_slice())
            .unwrap();
        let keys = py.wait_with_output().unwrap();
        let keys: Vec<String> = serde_json::from_slice(&keys.stdout).unwrap();
        assert!(keys.contains(&"ON".to_string()) && keys.contains(&"NULL".to_string()));
    }

    let out = env
        .vault([
            "export",
            "My_App.prod",
            "--format",
            "k8s",
            "--k8s-name",
            "db-creds",
        ])
        .run()
        .success();
    check(&out.stdout, "db-creds");
    env.vault([
        "export",
        "My_App.prod",
        "--format",
        "k8s",
        "--k8s-name",
        "Not_Valid",
    ])
    .run()
    .fails(1)
    .stderr_has("not a valid Kubernetes name");
    env.vault(["export", "My_App.prod", "--k8s-name", "x"])
        .run()
        .fails(2);
}

/// GitHub's env-file heredoc format read back by bash, as a workflow step
/// would: `NAME=VALUE` lines, or `NAME<<DELIM`, lines, `DELIM`. Prints
/// NUL-separated names and values.
const BASH_GITHUB_READER: &str = r#"
while IFS= read -r line || [ -n "$line" ]; do
  [ -z "$line" ] && continue
  name=${line%%<<*}
  if [ "$name" != "$line" ] && [ "${name%%=*}" = "$name" ]; then
    delim=${line#*<<}
    value=
    first=1
    while IFS= read -r l; do
      [ "$l" = "$delim" ] && break
      if [ $first = 1 ]; then value=$l; first=0; else value+=$'\n'$l; fi
    done
    printf '%s\0%s\0' "$name" "$value"
  else
    printf '%s\0%s\0' "${line%%=*}" "${line#*=}"
  fi
done < "$1"
"#;

#[test]
fn github_format_appends_what_a_heredoc_reader_reads_back() {
    let env = Env::new().init();
    let mut pairs = TRICKY.to_vec();
    pairs.extend([
        ("MULTI", "first line\n\nthird %0A line\n"),
        ("CRLF", "a-line\r\nb-line"),
        ("LOOKS_LIKE_EOF", "EOF\nghadelimiter_0\n"),
        ("NEWLINE", "\n"),
    ]);
    create_json(&env, "app", &pairs);
    let github_env = env.write("github_env", "EARLIER=kept\n");
    let out = env
        .vault(["export", "app", "--format", "github"])
        .env("GITHUB_ENV", &github_env)
        .run()
        .success();

    let read = Command::new("bash")
        .args(["-c", BASH_GITHUB_READER, "reader"])
        .arg(&github_env)
        .output()
        .unwrap();
    assert!(read.status.success());
    let fields: Vec<String> = read
        .stdout
        .split(|b| *b == 0)
        .map(|f| String::from_utf8(f.to_vec()).unwrap())
        .collect();
    let got: Vec<(String, String)> = fields
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    let mut want = vec![("EARLIER".to_string(), "kept".to_string())];
    want.extend(sorted(&pairs));
    assert_eq!(got, want);

    // One mask per non-blank line of every value, escaped for the runner.
    let mut masks = vec![];
    for (_, v) in sorted(&pairs) {
        for line in v.split(['\n', '\r']) {
            if !line.trim().is_empty() {
                let escaped = line
                    .replace('%', "%25")
                    .replace('\r', "%0D")
                    .replace('\n', "%0A");
                masks.push(format!("::add-mask::{escaped}"));
            }
        }
    }
    let printed: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(printed, masks);
    assert!(out.stdout.contains("::add-mask::100%2525%25\n"));
    assert!(out.stdout.contains("::add-mask::third %250A line\n"));

    // An append cut short (the file-size limit, a stand-in for a full
    // disk) leaves GITHUB_ENV as it was: no half block, no half value.
    let before = fs::read(&github_env).unwrap();
    let limit = before.len() as u64 + 100;
    let out = env
        .vault(["export", "app", "--format", "github"])
        .env("GITHUB_ENV", &github_env)
        .file_size_limit(limit)
        .run();
    assert_eq!(out.signal, None, "{out:?}");
    out.fails(1)
        .stderr_has("it holds what it held before")
        .lacks("vault file");
    assert_eq!(fs::read(&github_env).unwrap(), before);

    // Without GITHUB_ENV: an error, nothing printed, nothing written.
    let before = fs::read(&github_env).unwrap();
    env.vault(["export", "app", "--format", "github"])
        .run()
        .fails(1)
        .stderr_has("GITHUB_ENV is not set");
    assert_eq!(fs::read(&github_env).unwrap(), before);

    // A GITHUB_ENV that cannot be opened (a directory, a missing one):
    // refused before any mask is printed, so stdout shows nothing of the
    // values either.
    let missing = env.path("no-such-dir/env");
    for target in [env.path(""), missing.clone()] {
        let out = env
            .vault(["export", "app", "--format", "github"])
            .env("GITHUB_ENV", &target)
            .run()
            .fails(1);
        assert!(out.stdout.is_empty(), "{target:?}: {out:?}");
        assert!(out.stderr.contains("cannot open"), "{target:?}: {out:?}");
    }
    assert!(!missing.exists());
}

// ---------------------------------------------------------------- redact

/// The child (sh) writes `$S` one byte per write, with a pause between.
const ONE_BYTE_PER_WRITE: &str = r#"s=$S; while [ -n "$s" ]; do rest=${s#?}; printf %s "${s%"$rest"}"; s=$rest; sleep 0.005; done; echo"#;

#[test]
fn a_value_written_one_byte_at_a_time_is_masked() {
    let env = Env::new().init();
    env.create("s", &["S=one-byte-secret"]);
    let out = env
        .vault(["run", "--redact", "-s", "s", "--", "sh", "-c"])
        .arg(format!("echo before; {ONE_BYTE_PER_WRITE}; echo after"))
        .run()
        .success();
    assert_eq!(out.stdout, "before\n********\nafter\n");

    // `vault redact`, fed one byte per write by the test itself.
    let mut child = env.vault(["redact", "-s", "s"]).cmd;
    child.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = child.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for b in b"x one-byte-secret y one-byte-secre".iter() {
        stdin.write_all(&[*b]).unwrap();
        stdin.flush().unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"x ******** y one-byte-secre");
}

#[test]
fn masks_source_values_and_lines_but_not_short_or_inherited_ones() {
    let env = Env::new().init();
    create_json(
        &env,
        "s",
        &[
            ("LONG", "long-secret-value"),
            ("SHORT", "abc"),
            (
                "PEM",
                "-----BEGIN KEY-----\nAAAABBBBCCCC\nxy\n-----END KEY-----\n",
            ),
        ],
    );
    let dotenv = env.write("d.env", "FROM_DOTENV=dotenv-secret\n");
    let script = r#"echo "$LONG $SHORT $FROM_DOTENV $FROM_SET $FROM_LOCAL $INHERITED"; printf '%s|\n' "$PEM"; echo AAAABBBBCCCC alone; echo xy; echo "$LONG" >&2"#;
    let out = env
        .vault(["run", "--redact", "-s", "s"])
        .arg(format!("--dotenv={}", dotenv.display()))
        .args(["--set", "FROM_SET=set-secret", "--local-env", "FROM_LOCAL"])
        .env("FROM_LOCAL", "local-secret")
        .env("INHERITED", "inherited-value")
        .args(["--", "sh", "-c", script])
        .run()
        .success();
    assert_eq!(
        out.stdout,
        "******** abc ******** ******** ******** inherited-value\n********|\n******** alone\nxy\n"
    );
    assert_eq!(out.stderr, "********\n");
}

/// Two values that overlap in the output (`user-7f3a9c` and
/// `7f3a9c-TOPSECRET-TAIL` in `user-7f3a9c-TOPSECRET-TAIL`) are masked as
/// one span: taking the leftmost match alone printed `-TOPSECRET-TAIL`.
#[test]
fn overlapping_values_are_masked_together() {
    let env = Env::new();
    for (a, b) in [("A", "B"), ("B", "A")] {
        let out = env
            .vault(["run", "--redact"])
            .args(["--set", &format!("{a}=user-7f3a9c")])
            .args(["--set", &format!("{b}=7f3a9c-TOPSECRET-TAIL")])
            .args(["--", "echo", "token: user-7f3a9c-TOPSECRET-TAIL"])
            .run()
            .success();
        assert_eq!(out.stdout, "token: ********\n");
    }
}

/// Output that cannot be written (a full disk: `/dev/full`) is vault's
/// error, exit 1, whatever the command made of the pipe vault then closed
/// (exit 0 or SIGPIPE, at random); a command that failed by itself keeps
/// its own status.
#[test]
fn a_full_disk_under_redact_is_an_error() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let env = Env::new();
    for (script, code) in [("echo x; echo y", 1), ("echo x; exit 3", 3)] {
        let mut c = env.vault([
            "run",
            "--redact",
            "--set",
            "K=some-secret",
            "--",
            "sh",
            "-c",
            script,
        ]);
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        // SAFETY: dup2 is async-signal-safe and allocates nothing.
        unsafe {
            c.cmd.pre_exec(move || {
                rustix::stdio::dup2_stdout(&full)?;
                Ok(())
            });
        }
        let out = c.run();
        assert_eq!(out.code, Some(code), "{script}: {out:?}");
        assert!(
            out.stderr
                .contains("cannot write the command's stdout: no space left on device"),
            "{out:?}"
        );
    }
}

#[test]
fn nothing_to_mask_is_a_warning() {
    let env = Env::new();
    env.vault([
        "run", "--redact", "--set", "A=ab", "--", "sh", "-c", "echo $A",
    ])
    .run()
    .success()
    .stdout_has("ab\n")
    .stderr_has("nothing will be masked");
}

#[test]
fn stdout_and_stderr_that_are_one_file_stay_one_pipe() {
    let env = Env::new().init();
    env.create("s", &["X=merged-secret"]);
    let (reader, writer) = std::io::pipe().unwrap();
    let mut cmd = env
        .vault(["run", "--redact", "-s", "s", "--", "sh", "-c"])
        .cmd;
    cmd.arg(
        "[ /proc/self/fd/1 -ef /proc/self/fd/2 ] && echo one-pipe; for i in 1 2 3; do echo out$i $X; echo err$i $X >&2; done",
    );
    cmd.stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut text = String::new();
    BufReader::new(reader).read_to_string(&mut text).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        text,
        "one-pipe\nout1 ********\nerr1 ********\nout2 ********\nerr2 ********\nout3 ********\nerr3 ********\n"
    );
}

#[test]
fn exit_status_and_death_by_signal_are_reproduced() {
    let env = Env::new();
    let run = |script: &str| {
        env.vault([
            "run",
            "--redact",
            "--set",
            "K=some-secret",
            "--",
            "sh",
            "-c",
            script,
        ])
        .run()
    };
    assert_eq!(run("exit 42").code, Some(42));
    assert_eq!(run("exit 0").code, Some(0));
    let killed = run("kill -TERM $$");
    assert_eq!((killed.code, killed.signal), (None, Some(15)));
    assert_eq!(run("kill -KILL $$").signal, Some(9));

    // As a shell sees it: 143 and 42.
    let shell = |script: &str| {
        let line = format!(
            "\"$VAULT_BIN\" run --redact --set K=some-secret -- sh -c '{script}'; echo \"status $?\""
        );
        env.vault(["run", "--", "sh", "-c", &line])
            .env("VAULT_BIN", BIN)
            .run()
            .success()
            .stdout
    };
    assert_eq!(shell("kill -TERM $$"), "status 143\n");
    assert_eq!(shell("exit 42"), "status 42\n");

    // Another process kills the child: the caller still sees SIGTERM.
    let mut child = env
        .vault([
            "run",
            "--redact",
            "--set",
            "K=some-secret",
            "--",
            "sh",
            "-c",
        ])
        .arg("echo $$; exec sleep 5")
        .spawn();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line.trim().parse().unwrap();
    assert_ne!(pid as u32, child.id(), "the child is not vault");
    kill(pid, "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(15));
}

#[test]
fn not_found_and_not_executable_keep_their_codes() {
    let env = Env::new();
    env.vault([
        "run",
        "--redact",
        "--set",
        "K=v",
        "--",
        "no-such-command-xyz",
    ])
    .run()
    .fails(127)
    .stderr_has("command not found");
    let script = env.write("noexec.sh", "#!/bin/sh\necho hi\n");
    env.vault(["run", "--redact", "--set", "K=v", "--"])
        .arg_path(&script)
        .run()
        .fails(126);
}

fn kill(pid: i32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Each forwarded signal, sent by another process to vault (not to the
/// child), reaches the child, which reports it and exits with its own code.
#[test]
fn signals_from_other_processes_are_passed_on() {
    let env = Env::new();
    for sig in ["INT", "TERM", "HUP", "QUIT", "USR1", "USR2", "WINCH"] {
        let script = format!(
            "trap 'echo got-{sig}; exit 7' {sig}; echo ready; i=0; while [ $i -lt 200 ]; do sleep 0.02; i=$((i+1)); done; echo timeout"
        );
        let mut child = env
            .vault([
                "run",
                "--redact",
                "--set",
                "K=some-secret",
                "--",
                "bash",
                "-c",
            ])
            .arg(&script)
            .spawn();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "{sig}");
        kill(child.id() as i32, sig);
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(rest, format!("got-{sig}\n"), "{sig}");
        assert_eq!(status.code(), Some(7), "{sig}");
    }
}

/// A signal the child sends its parent (vault) is not bounced back to it.
#[test]
fn the_childs_own_signal_is_not_sent_back() {
    let env = Env::new();
    let out = env
        .vault(["run", "--redact", "--set", "K=some-secret", "--", "bash", "-c"])
        .arg("n=0; trap 'n=$((n+1))' USR1; kill -USR1 $PPID; for i in 1 2 3 4 5; do sleep 0.05; done; echo \"got $n\"")
        .run()
        .success();
    assert_eq!(out.stdout, "got 0\n");
}

/// SIGTERM to vault while the child ignores it: the child lives on, vault
/// waits and ends with the child's status.
#[test]
fn a_signal_the_child_ignores_does_not_end_vault() {
    let env = Env::new();
    let mut child = env
        .vault([
            "run",
            "--redact",
            "--set",
            "K=some-secret",
            "--",
            "sh",
            "-c",
        ])
        .arg("trap '' TERM; echo ready; sleep 0.3; echo survived; exit 3")
        .spawn();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    kill(child.id() as i32, "TERM");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "survived\n");
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

/// A closed stdout reaches the child as it would have: `yes` dies of
/// SIGPIPE, and so does vault.
#[test]
fn a_closed_output_closes_the_childs() {
    let env = Env::new();
    let mut child = env
        .vault([
            "run",
            "--redact",
            "--set",
            "K=y-secret",
            "--",
            "yes",
            "y-secret",
        ])
        .spawn();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "********\n");
    drop(out);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(13), "{status:?}");
}

/// The child of `run --redact` gets what the child of a plain `run` gets:
/// the environment, the caller's umask and core limit, the caller's signal
/// dispositions and mask.
#[test]
fn the_child_gets_what_exec_would_give_it() {
    let env = Env::new().init();
    env.create("s", &["X=env-secret"]);
    let probe = "{ umask; ulimit -c; env | grep -v ^OUT= | sort; grep -E '^Sig(Ign|Blk)' /proc/self/status; } > \"$OUT\"";
    let mut files = vec![];
    for (name, redact) in [("exec.txt", None), ("redact.txt", Some("--redact=always"))] {
        let path = env.path(name);
        let cmd = env
            .vault(["run", "-s", "s"])
            .args(redact)
            .args(["--", "sh", "-c", probe])
            .env("OUT", &path)
            .env("VAULT_AGE_KEY", "AGE-SECRET-KEY-1NOTUSED")
            .env("VAULT_PASSPHRASE", "not-passed");
        crate::run::as_caller(cmd).run().success();
        files.push(fs::read_to_string(&path).unwrap());
    }
    assert_eq!(files[0], files[1]);
    assert!(files[0].starts_with("0022\n"), "{}", files[0]);
    assert!(files[0].contains("X=env-secret\n"));
    assert!(!files[0].contains("VAULT_AGE_KEY") && !files[0].contains("VAULT_PASSPHRASE="));
}

// ---------------------------------------------------------------- terminals

/// A pseudo-terminal; the test reads what the program writes to it.
struct Pty {
    master: File,
    slave: File,
}

fn pty() -> Pty {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(OsStr::from_bytes(name.as_bytes()))
        .unwrap();
    Pty {
        master: File::from(master),
        slave,
    }
}

/// Starts `cmd` on the terminal, as the leader of a new session whose
/// controlling terminal it is (so the terminal's signals reach its
/// process group); a thread collects the output.
fn spawn_on(pty: Pty, cmd: Cmd) -> (Child, File, Arc<Mutex<Vec<u8>>>) {
    let mut cmd = cmd.cmd;
    cmd.stdin(pty.slave.try_clone().unwrap())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(pty.slave.try_clone().unwrap());
    // SAFETY: setsid and ioctl are async-signal-safe and allocate nothing.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(cmd);
    drop(pty.slave);
    let seen = Arc::new(Mutex::new(vec![]));
    let mut reader = pty.master.try_clone().unwrap();
    let sink = Arc::clone(&seen);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // EIO once every process has closed the terminal.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (child, pty.master, seen)
}

/// Waits until the terminal shows `needle`, or fails after 10 s.
fn wait_for(seen: &Mutex<Vec<u8>>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in {text:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn finished(mut child: Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vault did not end");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// On a terminal, `--redact` execs as usual: the command is the vault
/// process (same pid) and its output is not touched; `--redact=always`
/// stays the parent and masks.
#[test]
fn on_a_terminal_redact_execs_plainly_unless_always() {
    let env = Env::new().init();
    env.create("s", &["X=terminal-secret"]);
    let probe = [
        "--",
        "sh",
        "-c",
        "echo \"self=$$ parent=$PPID x=$X\"; echo end",
    ];
    let (child, _master, seen) =
        spawn_on(pty(), env.vault(["run", "--redact", "-s", "s"]).args(probe));
    let vault_pid = child.id();
    assert!(finished(child).success());
    let text = wait_for(&seen, "end");
    assert!(
        text.contains(&format!("self={vault_pid} ")),
        "exec keeps the pid: {text:?}"
    );
    assert!(text.contains("x=terminal-secret"), "{text:?}");

    let (child, _master, seen) = spawn_on(
        pty(),
        env.vault(["run", "--redact=always", "-s", "s"]).args(probe),
    );
    let vault_pid = child.id();
    assert!(finished(child).success());
    let text = wait_for(&seen, "end");
    assert!(text.contains(&format!("parent={vault_pid} ")), "{text:?}");
    assert!(!text.contains(&format!("self={vault_pid} ")), "{text:?}");
    assert!(text.contains("x=********"), "{text:?}");
}

/// A Ctrl-C typed on the terminal, and a resize of it, reach the whole
/// foreground process group: vault must not send them to the child again.
/// The child (Python) takes its signals with `sigtimedwait` and reports
/// each with its origin: the kernel's (`si_code` SI_KERNEL, 128), nothing
/// from vault. Run twice: with the child in vault's process group (it gets
/// the terminal's signals), and with the child in a group of its own, where
/// only a signal vault sent could reach it (so a second copy cannot hide by
/// merging into the pending first one).
#[test]
fn a_terminals_signals_are_not_sent_twice() {
    if !have("python3") {
        return;
    }
    let env = Env::new();
    let script = r#"
import os, signal, sys, time
if sys.argv[1] == "own-group":
    os.setpgid(0, 0)
sigs = {signal.SIGINT, signal.SIGWINCH}
signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
print("ready", flush=True)
seen = []
deadline = time.monotonic() + 1.0
while (left := deadline - time.monotonic()) > 0:
    info = signal.sigtimedwait(sigs, left)
    if info is None:
        break
    seen.append(f"{signal.Signals(info.si_signo).name}:{info.si_code}:{info.si_pid}")
print("seen", *seen, "end", flush=True)
"#;
    for (group, want) in [
        ("same-group", "seen SIGINT:128:0 SIGWINCH:128:0 end"),
        ("own-group", "seen end"),
    ] {
        let (child, master, seen) = spawn_on(
            pty(),
            env.vault(["run", "--redact=always", "--set", "K=some-secret", "--"])
                .args(["python3", "-c", script, group]),
        );
        wait_for(&seen, "ready");
        (&master).write_all(b"\x03").unwrap();
        thread::sleep(Duration::from_millis(100));
        rustix::termios::tcsetwinsize(
            &master,
            rustix::termios::Winsize {
                ws_row: 40,
                ws_col: 100,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
        let status = finished(child);
        let text = wait_for(&seen, " end");
        assert!(text.contains(want), "{group}: {text:?}");
        assert!(status.success(), "{group}: {status:?}");
    }
}
