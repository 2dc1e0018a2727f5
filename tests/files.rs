//! DESIGN v2 "Files, editing, generating": `run --as-file`, `run --render`,
//! `vault render`, `secret edit`, `secret generate`, `secret describe`.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use crate::support::*;

const SERVICE_ACCOUNT: &str = "{\n  \"type\": \"service_account\",\n  \"project_id\": \"demo\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIE...\\n-----END PRIVATE KEY-----\\n\"\n}";

/// A vault with the gcp template's secret, its JSON read from stdin.
fn gcp() -> Env {
    let env = Env::new().init();
    env.vault([
        "secret",
        "create",
        "gcp",
        "--template",
        "gcp",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ])
    .stdin(format!("{SERVICE_ACCOUNT}\n"))
    .run()
    .success();
    env
}

const AS_FILE: &[&str] = &[
    "run",
    "-s",
    "gcp",
    "--as-file",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "--",
];

fn run_as_file(env: &Env, command: &[&str]) -> Out {
    let mut args = AS_FILE.to_vec();
    args.extend(command);
    env.vault(args).run()
}

#[test]
fn the_command_reads_the_value_through_a_proc_fd_path_of_its_own_pid() {
    let env = gcp();
    let out = run_as_file(
        &env,
        &[
            "sh",
            "-c",
            "echo \"$$ $GOOGLE_APPLICATION_CREDENTIALS\"; cat \"$GOOGLE_APPLICATION_CREDENTIALS\"",
        ],
    )
    .success();
    let (first, content) = out.stdout.split_once('\n').unwrap();
    let (pid, path) = first.split_once(' ').unwrap();
    assert!(
        path.starts_with(&format!("/proc/{pid}/fd/")),
        "the path uses the pid exec kept: {first}"
    );
    assert!(
        path["/proc/".len() + pid.len() + "/fd/".len()..]
            .parse::<u32>()
            .is_ok()
    );
    assert_eq!(content, SERVICE_ACCOUNT, "the stored JSON, byte for byte");
    // The value itself is not in the command's environment.
    let env_out = run_as_file(&env, &["env"]).success();
    assert!(!env_out.stdout.contains("service_account"));
}

#[test]
fn a_grandchild_that_closed_every_descriptor_reads_it_too() {
    if !have("python3") {
        return;
    }
    let grandchild = r#"
import os, sys
path = os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
fd = int(path.rsplit("/", 1)[1])
assert not os.path.exists(f"/proc/self/fd/{fd}"), "close_fds left the descriptor open"
sys.stdout.write(open(path).read())
"#;
    let child = format!(
        "import subprocess, sys\n\
         r = subprocess.run([sys.executable, '-c', {grandchild:?}], close_fds=True)\n\
         sys.exit(r.returncode)\n"
    );
    let out = run_as_file(&gcp(), &["python3", "-c", &child]).success();
    assert_eq!(out.stdout, SERVICE_ACCOUNT);
}

/// Under `--redact` the command is vault's child, with a pid of its own:
/// its path names that pid all the same (the grandchild that closed every
/// descriptor reads it), the value it reads is masked in its output, the
/// path is not, and the table that set it up is not in its environment.
#[test]
fn under_redact_the_path_names_the_commands_own_pid() {
    if !have("python3") {
        return;
    }
    let env = gcp();
    let mut args = AS_FILE.to_vec();
    args.insert(1, "--redact");
    let script = [
        "import os, subprocess, sys",
        "path = os.environ['GOOGLE_APPLICATION_CREDENTIALS']",
        "print(os.getpid(), path, 'VAULT_EXEC_FILES' in os.environ)",
        "sys.stdout.flush()",
        "g = \"import os; print(open(os.environ['GOOGLE_APPLICATION_CREDENTIALS']).read())\"",
        "subprocess.run([sys.executable, '-c', g], close_fds=True, check=True)",
    ]
    .join("\n");
    args.extend(["python3", "-c", &script]);
    let out = env.vault(&args).run().success();
    let (first, rest) = out.stdout.split_once('\n').unwrap();
    let parts: Vec<&str> = first.split(' ').collect();
    assert!(
        parts[1].starts_with(&format!("/proc/{}/fd/", parts[0])),
        "{first}"
    );
    assert_eq!(parts[2], "False", "{first}");
    assert_eq!(rest, "********\n", "{}", out.stdout);
    // --render too.
    let tmpl = env.write("creds.tmpl", "key: {{ GOOGLE_APPLICATION_CREDENTIALS }}\n");
    let out = env
        .vault(["run", "--redact", "-s", "gcp", "--render"])
        .arg(format!("{}=CFG", tmpl.display()))
        .args(["--", "sh", "-c", "cat \"$CFG\""])
        .run()
        .success();
    assert_eq!(out.stdout, "key: ********\n");
}

#[test]
fn the_file_cannot_be_written_grown_or_shrunk() {
    if !have("python3") {
        return;
    }
    // Run as root here, so the 0400 mode stops nothing: the seals do.
    let probe = r#"
import errno, os
path = os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
size = os.stat(path).st_size
results = []
for name, attempt in [
    ("write", lambda: os.write(os.open(path, os.O_WRONLY), b"x")),
    ("append", lambda: os.write(os.open(path, os.O_WRONLY | os.O_APPEND), b"x")),
    ("grow", lambda: os.truncate(path, size + 4096)),
    ("shrink", lambda: os.truncate(path, 0)),
]:
    try:
        attempt()
        results.append(f"{name}:allowed")
    except OSError as e:
        results.append(f"{name}:{errno.errorcode[e.errno]}")
mode = oct(os.stat(path).st_mode & 0o777)
print(" ".join(results), mode, os.stat(path).st_size == size)
"#;
    let out = run_as_file(&gcp(), &["python3", "-c", probe]).success();
    assert_eq!(
        out.stdout.trim(),
        "write:EPERM append:EPERM grow:EPERM shrink:EPERM 0o400 True"
    );
}

/// Every path `strace` saw opened for writing or created, with the call.
fn written_paths(trace: &Path) -> Vec<String> {
    let text = fs::read_to_string(trace).unwrap();
    text.lines()
        .filter(|l| {
            let open = l.contains("open(") || l.contains("openat(") || l.contains("creat(");
            let writing = ["O_WRONLY", "O_RDWR", "O_CREAT"]
                .iter()
                .any(|f| l.contains(f));
            (open && writing) || l.contains("mkdir") || l.contains("rename")
        })
        .filter(|l| !l.contains("= -1 "))
        .map(str::to_string)
        .collect()
}

#[test]
fn nothing_reaches_a_disk_only_the_memfd_is_written() {
    if !have("strace") {
        return;
    }
    let env = gcp();
    let template = env.write("conf.tmpl", "creds: {{ GOOGLE_APPLICATION_CREDENTIALS }}\n");
    let trace = env.path("trace.txt");
    let mut args: Vec<String> = ["-f", "-qq", "-e", "trace=%file,memfd_create", "-o"]
        .map(String::from)
        .to_vec();
    args.push(trace.display().to_string());
    args.push(BIN.to_string());
    args.extend(
        [
            "run",
            "-s",
            "gcp",
            "--as-file",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "--render",
        ]
        .map(String::from),
    );
    args.push(format!("{}=CONF", template.display()));
    args.extend(
        [
            "--",
            "sh",
            "-c",
            "cat \"$GOOGLE_APPLICATION_CREDENTIALS\" \"$CONF\"",
        ]
        .map(String::from),
    );
    let mut cmd = env.vault(std::iter::empty::<&str>());
    cmd.cmd = {
        let mut c = Command::new("strace");
        c.args(&args);
        for (k, v) in env.vault(std::iter::empty::<&str>()).cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.current_dir(env.tmp.path());
        c
    };
    let out = cmd.run().success();
    assert!(out.stdout.starts_with(SERVICE_ACCOUNT), "{out:?}");
    assert!(out.stdout.contains("creds: /proc/"), "{out:?}");
    // The first read of a file version records it in the verification
    // cache (issue 20): public data, its own lock, nothing else.
    let cache = format!("\"{}/cache", env.dir.display());
    let written: Vec<_> = written_paths(&trace)
        .into_iter()
        .filter(|l| !l.contains(&cache))
        .collect();
    assert!(written.is_empty(), "files opened for writing: {written:#?}");
    let text = fs::read_to_string(&trace).unwrap();
    let memfds = text
        .lines()
        .filter(|l| l.contains("memfd_create(\"vault:"))
        .count();
    assert_eq!(memfds, 2, "{text}");
}

#[test]
fn a_key_no_source_sets_fails_before_anything_runs() {
    let env = gcp();
    let marker = env.path("ran");
    let touch = format!("touch {}", marker.display());
    env.vault([
        "run",
        "-s",
        "gcp",
        "--as-file",
        "NOPE",
        "--",
        "sh",
        "-c",
        &touch,
    ])
    .run()
    .fails(1)
    .stderr_has("--as-file `NOPE`: no source sets it");
    // Inherited variables are not a source: their value is already text.
    env.vault(["run", "--as-file", "HOME", "--", "sh", "-c", &touch])
        .run()
        .fails(1)
        .stderr_has("--as-file `HOME`: no source sets it");
    env.vault([
        "run",
        "-s",
        "gcp",
        "--as-file",
        "BAD-KEY",
        "--",
        "sh",
        "-c",
        &touch,
    ])
    .run()
    .fails(1)
    .stderr_has("invalid key `BAD-KEY`");
    env.vault([
        "run",
        "-s",
        "gcp",
        "--as-file",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "--no-override",
        "--",
        "sh",
        "-c",
        &touch,
    ])
    .env("GOOGLE_APPLICATION_CREDENTIALS", "/etc/inherited.json")
    .run()
    .fails(1)
    .stderr_has("--no-override keeps the inherited value");
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn as_file_works_with_any_source_and_conflicts_check_the_values() {
    let env = Env::new();
    let out = env
        .vault([
            "run",
            "--set",
            "TLS_KEY=key material",
            "--as-file",
            "TLS_KEY",
            "--conflicts=error",
            "--",
            "sh",
            "-c",
            "cat \"$TLS_KEY\"",
        ])
        .run()
        .success();
    assert_eq!(out.stdout, "key material");
}

fn db() -> Env {
    let env = Env::new().init();
    env.create(
        "db",
        &["PGHOST=db.internal", "PGPASSWORD=s3cr$t \"quoted\""],
    );
    env.create("api", &["TOKEN=tok-123"]);
    env
}

const TEMPLATE: &str = "host: {{ PGHOST }}\npassword: {{PGPASSWORD}}\nhome: {{ HOME }}\ntoken: {{ vault://api/TOKEN }}\n";

#[test]
fn render_prints_the_template_filled_in() {
    let env = db();
    let t = env.write("config.tmpl", TEMPLATE);
    let out = env
        .vault(["render"])
        .arg_path(&t)
        .args(["-s", "db"])
        .run()
        .success();
    assert_eq!(
        out.stdout,
        format!(
            "host: db.internal\npassword: s3cr$t \"quoted\"\nhome: {}\ntoken: tok-123\n",
            env.home.display()
        )
    );
    // Later sources win, as for run.
    let out = env
        .vault(["render"])
        .arg_path(&t)
        .args(["-s", "db", "--set", "PGHOST=override"])
        .run()
        .success();
    assert!(out.stdout.starts_with("host: override\n"));
}

#[test]
fn run_render_gives_the_command_a_sealed_file() {
    let env = db();
    let t = env.write("config.tmpl", TEMPLATE);
    let out = env
        .vault(["run", "-s", "db", "--render"])
        .arg(format!("{}=APP_CONFIG", t.display()))
        .args(["--", "sh", "-c", "echo $APP_CONFIG; cat $APP_CONFIG"])
        .run()
        .success();
    let (path, content) = out.stdout.split_once('\n').unwrap();
    assert!(
        path.starts_with("/proc/") && path.contains("/fd/"),
        "{path}"
    );
    assert!(content.starts_with("host: db.internal\npassword: s3cr$t \"quoted\"\n"));
    assert!(content.ends_with("token: tok-123\n"));
}

#[test]
fn render_errors_name_the_line_and_print_nothing() {
    let env = db();
    let cases: &[(&str, &str)] = &[
        ("a\n{{ MISSING }}\n", "line 2: no value for `MISSING`"),
        ("{{ vault://nope/K }}", "line 1: no secret named `nope`"),
        (
            "{{ vault://api/NOKEY }}",
            "line 1: secret `api` has no key `NOKEY`",
        ),
        ("{{ .Values.pw }}", "line 1: a placeholder holds neither"),
        ("{{ PGHOST", "line 1: `{{` without a closing `}}`"),
    ];
    for (text, expected) in cases {
        let t = env.write("bad.tmpl", text);
        let out = env
            .vault(["render"])
            .arg_path(&t)
            .args(["-s", "db"])
            .run()
            .fails(1)
            .stderr_has(expected)
            .lacks("db.internal");
        assert_eq!(out.stdout, "", "{text}");
        let marker = env.path("ran");
        env.vault(["run", "-s", "db", "--render"])
            .arg(format!("{}=CONF", t.display()))
            .args(["--", "touch"])
            .arg_path(&marker)
            .run()
            .fails(1)
            .stderr_has(expected);
        assert!(!marker.exists());
    }
    env.vault(["render", "no-such.tmpl"]).run().fails(1);
    env.vault(["run", "--render", "x.tmpl", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("has no `=KEY`");
    // `=KEY` alone read "cannot read : no such file or directory".
    env.vault(["run", "--render", "=CONF", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("a --render argument has no TEMPLATE before `=`")
        .stderr_has("hint: give it as --render TEMPLATE=KEY");
}

// ---- secret edit -------------------------------------------------------

/// Runs `argv` on a fresh pseudo-terminal (python's `pty.fork`, which
/// makes it the controlling terminal), in `env`'s world plus `vars`;
/// whenever the output so far shows `answers[i].0`, types `answers[i].1`.
/// Returns the terminal's output (stdout and stderr together) and the
/// exit code.
fn in_pty(
    env: &Env,
    argv: &[String],
    vars: &[(&str, &Path)],
    answers: &[(&str, &str)],
) -> (String, i32) {
    const DRIVER: &str = r#"
import json, os, pty, select, sys
spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(spec["argv"][0], spec["argv"])
out, seen, answers = b"", 0, spec["answers"]
while True:
    r, _, _ = select.select([fd], [], [], 60)
    if not r:
        os.kill(pid, 9)
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if answers and answers[0][0].encode() in out[seen:]:
        seen = len(out)
        os.write(fd, answers.pop(0)[1].encode())
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let spec = serde_json::json!({"argv": argv, "answers": answers});
    let mut c = Command::new("python3");
    c.args(["-c", DRIVER, &spec.to_string()]);
    for (k, v) in env.vault(std::iter::empty::<&str>()).cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    for (k, v) in vars {
        c.env(k, v);
    }
    c.env("NO_COLOR", "1");
    c.current_dir(env.tmp.path());
    let o = c.output().unwrap();
    (
        String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n"),
        o.status.code().unwrap_or(-1),
    )
}

fn editor(env: &Env, name: &str, script: &str) -> PathBuf {
    let p = env.write(name, format!("#!/bin/sh\nset -e\n{script}\n"));
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn edit(env: &Env, editor: &Path, answers: &[(&str, &str)]) -> (String, i32) {
    let argv = [BIN, "secret", "edit", "db"].map(String::from);
    in_pty(
        env,
        &argv,
        &[("EDITOR", editor), ("VISUAL", Path::new(""))],
        answers,
    )
}

fn entries(env: &Env) -> Value {
    let out = env
        .vault(["secret", "show", "db", "--reveal", "--json"])
        .run()
        .success();
    serde_json::from_str::<Value>(&out.stdout).unwrap()["entries"].clone()
}

fn versions(env: &Env) -> usize {
    let out = env
        .vault(["secret", "history", "db", "--json"])
        .run()
        .success();
    serde_json::from_str::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

fn edit_env() -> Env {
    if !have("python3") {
        panic!("python3 is needed for the pseudo-terminal tests");
    }
    let env = Env::new().init();
    env.create(
        "db",
        &["PGHOST=localhost", "PGPASSWORD=old pass", "PGPORT=5432"],
    );
    env
}

#[test]
fn edit_applies_a_change_and_lists_keys_only() {
    let env = edit_env();
    // The editor sees the values as dotenv; it changes one, removes one,
    // adds one, and records what it was shown.
    let seen = env.path("seen.env");
    let ed = editor(
        &env,
        "change.sh",
        &format!(
            "cp \"$1\" {seen}\nsed -i -e 's/^PGHOST=.*/PGHOST=db.prod/' -e '/^PGPORT=/d' \"$1\"\necho 'NEW_KEY=\"a $b\"' >> \"$1\"",
            seen = seen.display()
        ),
    );
    let (out, code) = edit(&env, &ed, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Saved `db`: added NEW_KEY; changed PGHOST; removed PGPORT"),
        "{out}"
    );
    assert!(
        !out.contains("db.prod") && !out.contains("old pass"),
        "{out}"
    );
    let shown = fs::read_to_string(&seen).unwrap();
    assert!(shown.contains("PGPASSWORD='old pass'"), "{shown}");
    assert_eq!(
        entries(&env),
        serde_json::json!({"NEW_KEY": "a $b", "PGHOST": "db.prod", "PGPASSWORD": "old pass"})
    );
    assert_eq!(versions(&env), 2);
}

#[test]
fn edit_that_leaves_the_file_changes_nothing() {
    let env = edit_env();
    let before = fs::read(env.file()).unwrap();
    let (out, code) = edit(&env, &editor(&env, "leave.sh", "true"), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No changes to `db`"), "{out}");
    assert_eq!(
        fs::read(env.file()).unwrap(),
        before,
        "no write, no new version"
    );
}

#[test]
fn a_parse_error_says_where_and_offers_to_edit_again() {
    let env = edit_env();
    // First call breaks the file, the second fixes it.
    let count = env.path("count");
    let ed = editor(
        &env,
        "break.sh",
        &format!(
            "if [ -e {c} ]; then sed -i -e 's/^BROKEN=.*/FIXED=1/' \"$1\"; else touch {c}; echo 'BROKEN=\"unterminated' >> \"$1\"; fi",
            c = count.display()
        ),
    );
    let (out, code) = edit(&env, &ed, &[("Edit again? [Y/n]", "y\n")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("db.env, line 7: "), "{out}");
    assert!(out.contains("Saved `db`: added FIXED"), "{out}");
    assert_eq!(entries(&env)["FIXED"], "1");

    // Answered "no": nothing changes.
    fs::remove_file(&count).unwrap();
    let ed = editor(&env, "break2.sh", "echo 'NOT A LINE' >> \"$1\"");
    let before = fs::read(env.file()).unwrap();
    let (out, code) = edit(&env, &ed, &[("Edit again? [Y/n]", "n\n")]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("vault: error: nothing changed in `db`"),
        "{out}"
    );
    assert_eq!(fs::read(env.file()).unwrap(), before);
}

/// Ctrl-D at "Edit again?" is "no" (it asked again for ever), and the
/// error says why and how to start again.
#[test]
fn the_end_of_input_at_edit_again_stops() {
    let env = edit_env();
    let ed = editor(&env, "break3.sh", "echo 'NOT A LINE' >> \"$1\"");
    let before = fs::read(env.file()).unwrap();
    let (out, code) = edit(&env, &ed, &[("Edit again? [Y/n]", "\u{4}")]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches("Edit again?").count(), 1, "{out}");
    assert!(
        out.contains("nothing changed in `db`: db.env, line"),
        "{out}"
    );
    assert!(out.contains("`vault secret edit db` starts again"), "{out}");
    assert_eq!(fs::read(env.file()).unwrap(), before);
}

/// An editor that saves by writing a new file and renaming it over the
/// old (vim, `sed -i`) unlinks the file vault wrote, values and all: vault
/// still wipes it, through the descriptor it kept. A hard link the editor
/// made to it (here, to look at it afterwards) shows the wiped bytes.
#[test]
fn the_file_vault_wrote_is_wiped_even_when_the_editor_replaced_it() {
    let env = edit_env();
    let keep = PathBuf::from(format!(
        "/dev/shm/vault-test-keep-{}-{}",
        std::process::id(),
        env.tmp.path().file_name().unwrap().to_string_lossy()
    ));
    let ed = editor(
        &env,
        "rename.sh",
        &format!(
            "ln \"$1\" {k}\nsed -i 's/^PGHOST=.*/PGHOST=renamed/' \"$1\"",
            k = keep.display()
        ),
    );
    let (out, code) = edit(&env, &ed, &[]);
    let kept = fs::read(&keep);
    let _ = fs::remove_file(&keep);
    assert_eq!(code, 0, "{out}");
    assert_eq!(entries(&env)["PGHOST"], "renamed");
    let kept = kept.unwrap();
    assert!(
        !kept.is_empty() && kept.iter().all(|&b| b == 0),
        "{:?}",
        String::from_utf8_lossy(&kept)
    );
}

#[test]
fn a_failing_editor_or_no_terminal_changes_nothing() {
    let env = edit_env();
    let before = fs::read(env.file()).unwrap();
    let (out, code) = edit(
        &env,
        &editor(&env, "fail.sh", "echo 'X=1' >> \"$1\"; exit 3"),
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failed"), "{out}");
    env.vault(["secret", "edit", "db"])
        .env("EDITOR", "true")
        .run()
        .fails(1)
        .stderr_has("needs a terminal");
    let argv = [BIN, "secret", "edit", "nope"].map(String::from);
    let (out, code) = in_pty(&env, &argv, &[("EDITOR", Path::new("true"))], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no secret named `nope`"), "{out}");
    assert_eq!(fs::read(env.file()).unwrap(), before);
}

#[test]
fn the_edited_file_lives_only_on_a_tmpfs_and_is_gone_afterwards() {
    let env = edit_env();
    if !have("strace") {
        return;
    }
    let ed = editor(
        &env,
        "change.sh",
        "sed -i 's/^PGPORT=.*/PGPORT=6543/' \"$1\"",
    );
    let trace = env.path("trace.txt");
    let mut argv: Vec<String> = ["strace", "-f", "-qq", "-e", "trace=%file", "-o"]
        .map(String::from)
        .to_vec();
    argv.push(trace.display().to_string());
    argv.extend([BIN, "secret", "edit", "db"].map(String::from));
    let (out, code) = in_pty(
        &env,
        &argv,
        &[("EDITOR", &ed), ("VISUAL", Path::new(""))],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(entries(&env)["PGPORT"], "6543");

    let written = written_paths(&trace);
    let path_of = |line: &str| line.split('"').nth(1).unwrap_or("").to_string();
    let mut scratch = None;
    for line in &written {
        let p = path_of(line);
        if p.starts_with("/dev/shm/vault-edit-") {
            scratch.get_or_insert_with(|| p.split('/').take(4).collect::<Vec<_>>().join("/"));
        } else if p.starts_with(env.dir.to_str().unwrap()) {
            // The vault's own ciphertext (temporary file, rename, lock).
        } else if p == "/dev/tty" || p.starts_with("/dev/pts/") || p == "/dev/null" {
        } else {
            panic!("written outside the tmpfs: {line}\n{written:#?}");
        }
    }
    let scratch = scratch.unwrap_or_else(|| panic!("no file on /dev/shm: {written:#?}"));
    assert!(!Path::new(&scratch).exists(), "{scratch} left behind");
    // And the file was made 0600 in a directory made 0700.
    let text = fs::read_to_string(&trace).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(&scratch) && l.contains("mkdir") && l.contains("0700")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("{scratch}/db.env"))
                && l.contains("O_CREAT")
                && l.contains("0600")),
        "{text}"
    );
}

// ---- secret generate, describe ------------------------------------------

#[test]
fn generate_creates_and_rotates_without_printing_values() {
    let env = Env::new().init();
    let out = env
        .vault([
            "secret",
            "generate",
            "app",
            "SESSION_KEY",
            "CSRF",
            "--length",
            "40",
            "--chars",
            "hex",
        ])
        .run()
        .success()
        .stderr_has("Created `app` with 2 generated keys (40 hex characters each)");
    let first = revealed(&env, "app");
    for k in ["SESSION_KEY", "CSRF"] {
        let v = first[k].as_str().unwrap();
        assert_eq!(v.len(), 40);
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{v}"
        );
        assert!(!out.stdout.contains(v) && !out.stderr.contains(v));
    }
    assert_ne!(first["SESSION_KEY"], first["CSRF"]);

    env.vault(["secret", "set", "app", "KEEP=me"])
        .run()
        .success();
    env.vault(["secret", "generate", "app", "SESSION_KEY"])
        .run()
        .success()
        .stderr_has("Generated 1 key in `app` (32 alnum characters each)");
    let second = revealed(&env, "app");
    let v = second["SESSION_KEY"].as_str().unwrap();
    assert_eq!(v.len(), 32);
    assert!(v.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_ne!(second["SESSION_KEY"], first["SESSION_KEY"]);
    assert_eq!(
        (second["CSRF"].clone(), second["KEEP"].clone()),
        (first["CSRF"].clone(), "me".into())
    );

    for (chars, ok) in [
        (
            "url",
            &(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') as &dyn Fn(u8) -> bool,
        ),
        ("ascii", &|b: u8| (b'!'..=b'~').contains(&b)),
    ] {
        env.vault([
            "secret", "generate", "app", "X", "--length", "200", "--chars", chars,
        ])
        .run()
        .success();
        let v = revealed(&env, "app")["X"].as_str().unwrap().to_string();
        assert!(v.len() == 200 && v.bytes().all(ok), "{chars}: {v}");
    }
    env.vault(["secret", "generate", "app", "X", "--length", "0"])
        .run()
        .fails(2);
    env.vault(["secret", "generate", "app", "X", "--chars", "emoji"])
        .run()
        .fails(2);
    env.vault(["secret", "generate", "app", "bad-key"])
        .run()
        .fails(1)
        .stderr_has("invalid key");
}

fn revealed(env: &Env, name: &str) -> Value {
    let out = env
        .vault(["secret", "show", name, "--reveal", "--json"])
        .run()
        .success();
    serde_json::from_str::<Value>(&out.stdout).unwrap()["entries"].clone()
}

#[test]
fn describe_annotates_keys_shown_by_show() {
    let env = Env::new().init();
    env.create("db", &["PGHOST=h", "PGPASSWORD=p"]);
    let plain = env.vault(["secret", "show", "db"]).run().success();
    assert!(!plain.stdout.contains("DESCRIPTION"));
    env.vault([
        "secret",
        "describe",
        "db",
        "PGPASSWORD",
        "rotated monthly by #infra",
    ])
    .run()
    .success();
    let out = env.vault(["secret", "show", "db"]).run().success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].contains("DESCRIPTION"), "{out:?}");
    assert!(lines[2].starts_with("PGPASSWORD") && lines[2].ends_with("rotated monthly by #infra"));
    let json = env
        .vault(["secret", "show", "db", "--json"])
        .run()
        .success();
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v["descriptions"],
        serde_json::json!({"PGPASSWORD": "rotated monthly by #infra"})
    );
    // Notes are not versions, and a value change keeps them.
    env.vault(["secret", "set", "db", "PGPASSWORD=q"])
        .run()
        .success();
    let out = env
        .vault(["secret", "history", "db", "--json"])
        .run()
        .success();
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        env.vault(["secret", "show", "db"])
            .run()
            .success()
            .stdout
            .contains("rotated monthly")
    );

    env.vault(["secret", "describe", "db", "NOPE", "x"])
        .run()
        .fails(1)
        .stderr_has("secret `db` has no key `NOPE`");
    env.vault(["secret", "describe", "db", "PGHOST", "two\nlines"])
        .run()
        .fails(1)
        .stderr_has("one line");
    env.vault(["secret", "describe", "db", "PGPASSWORD", ""])
        .run()
        .success()
        .stderr_has("Removed the description");
    assert!(
        !env.vault(["secret", "show", "db"])
            .run()
            .success()
            .stdout
            .contains("DESCRIPTION")
    );
}

/// A private key pasted as a description was stored and printed by every
/// `show`: text that looks like key material is refused, named by its
/// position, never shown (DESIGN v2 "Hardening").
#[test]
fn describe_refuses_key_material_without_showing_it() {
    let env = Env::new().init();
    env.create("db", &["PGPASSWORD=p"]);
    let key = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSQ5WS7P";
    let before = std::fs::read(env.file()).unwrap();
    for text in [
        key,
        "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA",
    ] {
        let out = env
            .vault(["secret", "describe", "db", "PGPASSWORD", "--", text])
            .run()
            .fails(1)
            .stderr_has("TEXT (argument 3) looks like a private key");
        assert!(!out.stderr.contains("QYQSZQ"), "{out:#?}");
        assert!(!out.stderr.contains("b3BlbnNz"), "{out:#?}");
    }
    assert_eq!(std::fs::read(env.file()).unwrap(), before);
    let shown = env.vault(["secret", "show", "db"]).run().success();
    assert!(!shown.stdout.contains("DESCRIPTION"), "{shown:#?}");
}

/// With /dev/shm on a disk (a bind mount in a mount namespace of its own),
/// `edit` falls back to `$XDG_RUNTIME_DIR` only if that is a tmpfs, and
/// otherwise refuses before the editor starts.
#[test]
fn edit_refuses_when_no_tmpfs_is_available() {
    let env = edit_env();
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount --bind / /mnt"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: no mount namespaces here (needs root)");
        return;
    }
    let disk = env.path("disk-shm");
    let runtime = env.path("runtime");
    fs::create_dir_all(&disk).unwrap();
    fs::create_dir_all(&runtime).unwrap();
    let marker = env.path("editor-ran");
    let ed = editor(
        &env,
        "mark.sh",
        &format!(
            "touch {}; sed -i 's/^PGPORT=.*/PGPORT=1/' \"$1\"",
            marker.display()
        ),
    );
    let namespaced = |extra: &str| {
        let script = format!(
            "mount --bind {disk} /dev/shm && {extra} exec {BIN} secret edit db",
            disk = disk.display()
        );
        let argv = ["unshare", "-m", "sh", "-c", &script].map(String::from);
        in_pty(
            &env,
            &argv,
            &[
                ("EDITOR", &ed),
                ("VISUAL", Path::new("")),
                ("XDG_RUNTIME_DIR", &runtime),
            ],
            &[],
        )
    };
    let (out, code) = namespaced("");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("neither /dev/shm nor $XDG_RUNTIME_DIR is a tmpfs"),
        "{out}"
    );
    assert!(!marker.exists(), "the editor ran");
    assert_eq!(fs::read_dir(&disk).unwrap().count(), 0);

    let (out, code) = namespaced(&format!("mount -t tmpfs tmpfs {} &&", runtime.display()));
    assert_eq!(code, 0, "{out}");
    assert!(marker.exists() && out.contains("changed PGPORT"), "{out}");
    assert_eq!(fs::read_dir(&disk).unwrap().count(), 0);
}

/// A signal to `vault` while the editor runs (Ctrl-C reaches both; here a
/// SIGTERM from the editor itself): the editor finishes, and `vault` wipes
/// the file, saves nothing and says so.
#[test]
fn an_interrupted_edit_saves_nothing_and_leaves_no_file() {
    let env = edit_env();
    let seen = env.path("path-seen");
    let ed = editor(
        &env,
        "interrupt.sh",
        &format!(
            "echo \"$1\" > {seen}\nvault_pid=$(awk '{{print $4}}' /proc/$PPID/stat)\nkill -TERM \"$vault_pid\"\nsleep 0.2\necho 'NEW=1' >> \"$1\"",
            seen = seen.display()
        ),
    );
    let before = fs::read(env.file()).unwrap();
    let (out, code) = edit(&env, &ed, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("interrupted: nothing changed in `db`"),
        "{out}"
    );
    assert_eq!(fs::read(env.file()).unwrap(), before);
    let scratch = fs::read_to_string(&seen).unwrap();
    let scratch = Path::new(scratch.trim());
    assert!(scratch.starts_with("/dev/shm"), "{scratch:?}");
    assert!(!scratch.exists() && !scratch.parent().unwrap().exists());
}

/// Ended rather than interrupted (SIGTERM, as a closed terminal's
/// `script` or a session manager sends, and SIGKILL a moment later):
/// `vault` wipes the file at once instead of waiting for the editor, which
/// may never finish, so the SIGKILL finds nothing left to leak.
#[test]
fn an_edit_ended_by_sigterm_then_sigkill_leaves_no_file() {
    let env = edit_env();
    let seen = env.path("path-seen");
    let ed = editor(
        &env,
        "ended.sh",
        &format!(
            "echo \"$1\" > {seen}\nvault_pid=$(awk '{{print $4}}' /proc/$PPID/stat)\n( sleep 0.5; kill -KILL \"$vault_pid\" ) &\nkill -TERM \"$vault_pid\"\nsleep 2",
            seen = seen.display()
        ),
    );
    let before = fs::read(env.file()).unwrap();
    let (out, code) = edit(&env, &ed, &[]);
    assert_ne!(code, 0, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert_eq!(fs::read(env.file()).unwrap(), before);
    let scratch = fs::read_to_string(&seen).unwrap();
    let scratch = Path::new(scratch.trim());
    assert!(scratch.starts_with("/dev/shm"), "{scratch:?}");
    assert!(
        !scratch.exists() && !scratch.parent().unwrap().exists(),
        "{scratch:?} left behind: {out}"
    );
}

/// `secret delete` on a terminal says a name is not there before asking
/// whether to delete it.
#[test]
fn delete_names_a_missing_secret_before_asking() {
    let env = edit_env();
    let argv = [BIN, "secret", "delete", "db", "nosuch"].map(String::from);
    let (out, code) = in_pty(&env, &argv, &[], &[("[y/N]", "y\n")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no secret named `nosuch`"), "{out}");
    assert!(!out.contains("This cannot be undone"), "{out}");
    assert_eq!(versions(&env), 1, "db is still there");
}

/// With `--allow-missing` on a terminal the question names only the
/// secrets that are there, and with none there nothing is asked.
#[test]
fn delete_allow_missing_asks_only_about_secrets_that_are_there() {
    let env = edit_env();
    let argv = [BIN, "secret", "delete", "db", "nosuch", "--allow-missing"].map(String::from);
    let (out, code) = in_pty(&env, &argv, &[], &[("[y/N]", "y\n")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Delete `db`? This cannot be undone."), "{out}");
    assert!(out.contains("Not deleted: `nosuch` (not found)"), "{out}");
    let before = fs::read(env.file()).unwrap();
    let argv = [BIN, "secret", "delete", "x", "y", "--allow-missing"].map(String::from);
    let (out, code) = in_pty(&env, &argv, &[], &[("[y/N]", "y\n")]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("This cannot be undone"), "{out}");
    assert!(
        out.contains("No secret deleted: `x`, `y` do not exist"),
        "{out}"
    );
    assert_eq!(fs::read(env.file()).unwrap(), before, "nothing written");
}

/// More files than the open-file limit allows: the hint is about that
/// limit, not about the kernel's memfds.
#[test]
fn too_many_files_for_the_descriptor_limit_say_so() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let mut args: Vec<String> = vec!["run".into()];
    for i in 0..80 {
        args.extend([
            "--set".into(),
            format!("K{i}=v"),
            "--as-file".into(),
            format!("K{i}"),
        ]);
    }
    args.extend(["--".into(), "true".into()]);
    let mut c = env.vault(&args);
    unsafe {
        c.cmd.pre_exec(|| {
            rustix::process::setrlimit(
                rustix::process::Resource::Nofile,
                rustix::process::Rlimit {
                    current: Some(48),
                    maximum: Some(48),
                },
            )?;
            Ok(())
        });
    }
    c.run()
        .fails(1)
        .stderr_has("too many open files")
        .stderr_has("ulimit -n");
}
