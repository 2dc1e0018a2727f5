//! Projects (DESIGN v2 "Projects"): a committed `vault.toml` names the
//! secrets a project's commands get, runs nothing until `vault allow`,
//! and `vault check` is the CI gate. Also `vault://` references in dotenv
//! sources and `--dotenv-name`.

use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf, process::Command};

use crate::support::{Env, have};

/// A user with secrets in `main` and `prod`, and a project folder under
/// HOME (where the upward search looks).
fn world() -> (Env, PathBuf) {
    let env = Env::new().init();
    env.create("db", &["PGPASSWORD=main-pw", "PGUSER=app"]);
    env.vault(["-e", "prod", "secret", "create", "db", "PGPASSWORD=prod-pw"])
        .run()
        .success();
    env.vault([
        "-e",
        "prod",
        "secret",
        "create",
        "aws-prod",
        "AWS_SECRET_ACCESS_KEY=hunter2-aws",
    ])
    .run()
    .success();
    let proj = env.home.join("proj");
    fs::create_dir_all(proj.join("src/deep")).unwrap();
    (env, proj)
}

fn script(path: &std::path::Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

const PRINT: &str = "printf '%s|%s|%s' \"$PGPASSWORD\" \"$PGUSER\" \"$AWS_SECRET_ACCESS_KEY\"";

#[test]
fn a_cloned_hostile_project_runs_nothing_until_allowed() {
    if !have("git") {
        return;
    }
    let (env, _) = world();
    // Someone else's repository: its vault.toml asks for your aws-prod.
    let upstream = env.path("upstream");
    fs::create_dir_all(&upstream).unwrap();
    fs::write(
        upstream.join("vault.toml"),
        "secrets = [\"prod/aws-prod\"]\n",
    )
    .unwrap();
    script(
        &upstream.join("script"),
        "printf 'LEAKED:%s' \"$AWS_SECRET_ACCESS_KEY\"",
    );
    let git = |dir: &std::path::Path, args: &[&str]| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "x")
            .env("GIT_AUTHOR_EMAIL", "x@example.com")
            .env("GIT_COMMITTER_NAME", "x")
            .env("GIT_COMMITTER_EMAIL", "x@example.com")
            .env("HOME", &env.home)
            .output()
            .unwrap();
        assert!(ok.status.success(), "git {args:?}: {ok:?}");
    };
    git(&upstream, &["init", "-q"]);
    git(&upstream, &["add", "."]);
    git(&upstream, &["commit", "-qm", "innocent"]);
    let clone = env.home.join("clone");
    git(
        &env.home,
        &[
            "clone",
            "-q",
            upstream.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let toml = clone.join("vault.toml");

    let refused = |out: crate::support::Out| {
        out.fails(1)
            .stderr_has(&format!(
                "vault: error: vault.toml at {} is not allowed (new or changed)",
                toml.display()
            ))
            .stderr_has("hint: review it (and the dotenv files it names that hold vault:// references), then run `vault allow`")
            .lacks("LEAKED")
            .lacks("hunter2-aws");
    };
    refused(
        env.vault(["run", "--", "./script"])
            .current_dir(&clone)
            .run(),
    );
    refused(env.vault(["shell"]).current_dir(&clone).run());
    refused(env.vault(["export"]).current_dir(&clone).run());
    refused(env.vault(["check"]).current_dir(&clone).run());
    refused(
        env.vault(["run", "--explain"])
            .current_dir(clone.join(".git"))
            .run(),
    );
    // --no-project ignores it, and so gets nothing from it
    let out = env
        .vault(["run", "--no-project", "--", "./script"])
        .current_dir(&clone)
        .run()
        .success();
    assert_eq!(out.stdout, "LEAKED:");

    // You read it and allow it: now it runs, with what it names.
    env.vault(["allow"])
        .current_dir(&clone)
        .run()
        .success()
        .stderr_has(&format!("Allowed {}", toml.display()));
    let out = env
        .vault(["run", "--", "./script"])
        .current_dir(&clone)
        .run()
        .success();
    assert_eq!(out.stdout, "LEAKED:hunter2-aws");

    // A pulled change is a new file: refused again until allowed again.
    fs::write(&toml, "secrets = [\"prod/aws-prod\", \"db\"]\n").unwrap();
    refused(
        env.vault(["run", "--", "./script"])
            .current_dir(&clone)
            .run(),
    );
    env.vault(["allow", toml.to_str().unwrap()]).run().success();
    env.vault(["run", "--", "./script"])
        .current_dir(&clone)
        .run()
        .success();
    // deny forgets it
    env.vault(["deny"])
        .current_dir(&clone)
        .run()
        .success()
        .stderr_has("Denied");
    refused(
        env.vault(["run", "--", "./script"])
            .current_dir(&clone)
            .run(),
    );
    let allowed = fs::metadata(env.dir.join("allowed.json")).unwrap();
    assert_eq!(allowed.permissions().mode() & 0o777, 0o600);
}

#[test]
fn run_uses_the_project_sources_first_then_the_command_line() {
    let (env, proj) = world();
    fs::write(proj.join(".env.local"), "PGUSER=from-dotenv\nEXTRA=1\n").unwrap();
    fs::write(
        proj.join("vault.toml"),
        "secrets = [\"db\"]\ndotenv = [\".env.local\"]\nrequire = [\"PGPASSWORD\"]\n",
    )
    .unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    let deep = proj.join("src/deep");
    let out = env
        .vault(["run", "--", "sh", "-c", PRINT])
        .current_dir(&deep)
        .run()
        .success();
    assert_eq!(out.stdout, "main-pw|from-dotenv|");
    // command-line sources come after, so they win
    let out = env
        .vault(["run", "--set", "PGUSER=cli", "--", "sh", "-c", PRINT])
        .current_dir(&deep)
        .run()
        .success();
    assert_eq!(out.stdout, "main-pw|cli|");
    // --explain names the project file as the origin
    let toml = proj.join("vault.toml");
    let out = env
        .vault(["run", "--set", "PGUSER=cli", "--explain"])
        .current_dir(&deep)
        .run()
        .success();
    // All of the answer on stdout (`--explain 2>/dev/null` keeps it).
    assert!(
        out.stdout
            .starts_with(&format!("Project {} (environment main)", toml.display())),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .contains(&format!("secret:db ({})", toml.display())),
        "{out:#?}"
    );
    let pguser = out
        .stdout
        .lines()
        .find(|l| l.starts_with("PGUSER"))
        .unwrap();
    let cols: Vec<&str> = pguser.split("  ").filter(|c| !c.is_empty()).collect();
    assert_eq!(cols[2].trim(), "set", "{out:#?}");
    assert!(
        cols[3].contains(&format!(
            "dotenv:{} ({})",
            proj.join(".env.local").display(),
            toml.display()
        )),
        "{out:#?}"
    );
    // --no-project: nothing from it
    let out = env
        .vault(["run", "--no-project", "--", "sh", "-c", PRINT])
        .current_dir(&deep)
        .run()
        .success();
    assert_eq!(out.stdout, "||");
    // its `require` is checked like --require
    fs::write(
        &toml,
        "dotenv = [\".env.local\"]\nrequire = [\"PGPASSWORD\"]\n",
    )
    .unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    env.vault(["run", "--", "true"])
        .current_dir(&deep)
        .run()
        .fails(1)
        .stderr_has("missing required key: `PGPASSWORD`");
    // shell and export use it too
    let shell = proj.join("printer");
    script(&shell, "printf 'shell:%s' \"$EXTRA\"");
    let out = env
        .vault(["shell"])
        .env("SHELL", &shell)
        .env("PGPASSWORD", "inherited")
        .current_dir(&deep)
        .run()
        .success();
    assert_eq!(out.stdout, "shell:1");
    fs::write(&toml, "secrets = [\"db\"]\ndotenv = [\".env.local\"]\n").unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    let out = env
        .vault(["export", "--format", "shell"])
        .current_dir(&deep)
        .run()
        .success();
    assert_eq!(
        out.stdout,
        "export EXTRA='1'\nexport PGPASSWORD='main-pw'\nexport PGUSER='from-dotenv'\n"
    );
}

#[test]
fn env_tables_replace_the_keys_they_set() {
    let (env, proj) = world();
    fs::write(
        proj.join("vault.toml"),
        "env = \"prod\"\nsecrets = [\"db\"]\n[env.main]\nsecrets = [\"db\", \"prod/aws-prod\"]\n",
    )
    .unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["run", "--", "sh", "-c", PRINT]);
        env.vault(all).current_dir(&proj).run().success().stdout
    };
    // the project's default environment
    assert_eq!(run(&[]), "prod-pw||");
    // -e picks the [env.main] table
    assert_eq!(run(&["-e", "main"]), "main-pw|app|hunter2-aws");
    // and the project's env applies to secret commands too
    let out = env
        .vault(["secret", "list"])
        .current_dir(&proj)
        .run()
        .success();
    assert!(out.stdout.contains("aws-prod"), "{out:#?}");
}

#[test]
fn the_project_vault_and_env_apply_to_secret_commands() {
    let env = Env::new();
    let proj = env.home.join("team");
    fs::create_dir_all(&proj).unwrap();
    fs::write(
        proj.join("vault.toml"),
        "vault = \"secrets.vault\"\nenv = \"dev\"\nsecrets = [\"api\"]\n",
    )
    .unwrap();
    // not allowed yet: a secret command reaching its vault is refused
    env.vault(["secret", "create", "api", "TOKEN=t"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("is not allowed (new or changed)");
    env.vault(["allow"]).current_dir(&proj).run().success();
    // the project names a vault that does not exist yet
    env.vault(["run", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has(&format!(
            "no vault at {}, which {} names",
            proj.join("secrets.vault").display(),
            proj.join("vault.toml").display()
        ))
        .stderr_has("hint: create it with `vault init` in the project");
    env.vault(["init"]).current_dir(&proj).run().success();
    assert!(proj.join("secrets.vault").exists());
    env.vault(["secret", "create", "api", "TOKEN=dev-token"])
        .current_dir(&proj)
        .run()
        .success()
        .stderr_has("in environment `dev`");
    assert!(!env.file().exists(), "the default vault is untouched");
    let out = env
        .vault(["run", "--", "sh", "-c", "printf %s \"$TOKEN\""])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "dev-token");
    // --vault and -e win over the project's
    env.vault(["-e", "main", "secret", "list"])
        .current_dir(&proj)
        .run()
        .success()
        .lacks("api");
    env.vault(["--vault", env.file().to_str().unwrap(), "secret", "list"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("no vault at");
}

#[test]
fn a_project_that_does_not_parse_names_the_line() {
    let (env, proj) = world();
    let toml = proj.join("vault.toml");
    for (text, want) in [
        (
            "secrets = [\"db\"]\nsecretz = [\"x\"]\n",
            ", line 2: unknown field `secretz`",
        ),
        ("secrets = \"db\"\n", ", line 1: "),
        (
            "[env.prod]\nsecrets = [\"ok\"]\nbogus = 1\n",
            ", line 3: unknown field `bogus`",
        ),
        (
            "require = [\"1BAD\"]\n",
            ", line 1: `1BAD` in `require` is not a variable name",
        ),
    ] {
        fs::write(&toml, text).unwrap();
        env.vault(["run", "--", "true"])
            .current_dir(&proj)
            .run()
            .fails(1)
            .stderr_has(&format!("vault: error: {}{want}", toml.display()))
            .stderr_has("hint: vault.toml may set");
        // allow refuses to trust what it cannot read
        env.vault(["allow"]).current_dir(&proj).run().fails(1);
    }
    // --no-project gets past it
    env.vault(["run", "--no-project", "--", "true"])
        .current_dir(&proj)
        .run()
        .success();
    // a key of `files` that no source sets is refused before anything runs
    fs::write(&toml, "files = [\"CREDS\"]\n").unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    env.vault(["run", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("--as-file `CREDS`: no source sets it");
}

#[test]
fn a_project_key_in_files_reaches_the_command_as_a_file() {
    let (env, proj) = world();
    fs::write(
        proj.join("vault.toml"),
        "secrets = [\"db\"]\nfiles = [\"PGPASSWORD\"]\n\n[env.prod]\nsecrets = [\"db\", \"aws-prod\"]\nfiles = [\"AWS_SECRET_ACCESS_KEY\"]\n",
    )
    .unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    // The key holds a path, the file holds the value (as --as-file does).
    let out = env
        .vault([
            "run",
            "--",
            "sh",
            "-c",
            "case \"$PGPASSWORD\" in /proc/*) cat \"$PGPASSWORD\";; *) echo not-a-file;; esac",
        ])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "main-pw");
    // [env.prod] replaces `files` for that environment.
    let out = env
        .vault([
            "-e",
            "prod",
            "run",
            "--",
            "sh",
            "-c",
            "cat \"$AWS_SECRET_ACCESS_KEY\"; printf '|%s' \"$PGPASSWORD\"",
        ])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "hunter2-aws|prod-pw");
    // The project's keys and --as-file's add up; naming one twice is refused.
    env.vault([
        "run",
        "--as-file",
        "PGUSER",
        "--",
        "sh",
        "-c",
        "cat \"$PGUSER\" \"$PGPASSWORD\"",
    ])
    .current_dir(&proj)
    .run()
    .success()
    .stdout_has("appmain-pw");
    env.vault(["run", "--as-file", "PGPASSWORD", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("`PGPASSWORD` is named by more than one --as-file or --render");
    // `vault check` checks the keys `files` names, like `require`'s.
    env.vault(["check", "--all-envs"])
        .current_dir(&proj)
        .run()
        .success();
    fs::write(
        proj.join("vault.toml"),
        "secrets = [\"db\"]\nfiles = [\"PGPASSWORD\", \"TLS_KEY\"]\n",
    )
    .unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    env.vault(["check"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("[main] missing key `TLS_KEY`, which `files` hands over as a file")
        .lacks("PGPASSWORD`, which");
}

#[test]
fn a_project_s_sources_are_masked_under_redact() {
    let (env, proj) = world();
    fs::write(proj.join("vault.toml"), "secrets = [\"db\"]\n").unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    env.vault([
        "run",
        "--redact=always",
        "--",
        "sh",
        "-c",
        "echo \"pw=$PGPASSWORD\"",
    ])
    .current_dir(&proj)
    .run()
    .success()
    .stdout_has("pw=********");
}

#[test]
fn check_names_every_missing_secret_and_key() {
    let (env, proj) = world();
    fs::write(proj.join(".env"), "A=1\n").unwrap();
    fs::write(
        proj.join("vault.toml"),
        "secrets = [\"db\", \"stripe\"]\ndotenv = [\".env\", \".env.missing\"]\n\
         require = [\"PGPASSWORD\", \"STRIPE_KEY\", \"SENTRY_DSN\"]\n\
         [env.prod]\nsecrets = [\"db\", \"aws-prod\"]\ndotenv = [\".env\"]\nrequire = [\"PGPASSWORD\"]\n",
    )
    .unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    let out = env
        .vault(["check"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("no secret named `stripe`")
        .stderr_has(".env.missing")
        .stderr_has("missing required key `STRIPE_KEY`")
        .stderr_has("missing required key `SENTRY_DSN`")
        .lacks("main-pw");
    assert!(out.stderr.contains("fails 4 checks"), "{out:#?}");
    let out = env
        .vault(["check", "-e", "prod"])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "ok  prod: 3 sources, 1 required key\n");
    let out = env
        .vault(["check", "--all-envs"])
        .current_dir(&proj)
        .run()
        .fails(1);
    assert!(out.stdout.contains("ok  prod"), "{out:#?}");
    assert!(
        out.stderr.contains("[main] no secret named `stripe`"),
        "{out:#?}"
    );
    // The current environment first, and each once.
    let out = env
        .vault(["check", "--all-envs", "-e", "prod"])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout.matches("ok  prod").count(), 1, "{out:#?}");
    env.vault(["check", "-e", "prd"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("no environment named `prd`");
    // outside a project there is nothing to check
    env.vault(["check"])
        .current_dir(&env.home)
        .run()
        .fails(1)
        .stderr_has("no vault.toml in");
}

#[test]
fn vault_references_in_dotenv_files_resolve_to_stored_keys() {
    let (env, proj) = world();
    fs::write(
        proj.join(".env"),
        "PGPASSWORD=vault://db/PGPASSWORD\nPGUSER=literal\nAWS_SECRET_ACCESS_KEY='vault://prod/aws-prod/AWS_SECRET_ACCESS_KEY'\n",
    )
    .unwrap();
    // Outside an allowed project a reference resolves nothing: a cloned
    // repository's .env must not pull your secrets into its scripts.
    env.vault(["run", "--dotenv", "--", "sh", "-c", "echo RAN"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("references resolve only in an allowed project")
        .lacks("RAN")
        .lacks("hunter2-aws");
    fs::write(proj.join("vault.toml"), "# refs\n").unwrap();
    env.vault(["run", "--dotenv", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("is not allowed");
    env.vault(["allow"]).current_dir(&proj).run().success();
    let out = env
        .vault(["run", "--dotenv", "--", "sh", "-c", PRINT])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "main-pw|literal|hunter2-aws");
    // a dotenv file outside the project's folder is not the project's
    let outside = env.home.join("outside.env");
    fs::copy(proj.join(".env"), &outside).unwrap();
    env.vault(["run", "--dotenv", outside.to_str().unwrap(), "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("references resolve only in an allowed project");
    // in the project's dotenv files too, resolved in its environment
    fs::write(
        proj.join("vault.toml"),
        "env = \"prod\"\ndotenv = [\".env\"]\n",
    )
    .unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    let out = env
        .vault(["run", "--", "sh", "-c", PRINT])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "prod-pw|literal|hunter2-aws");
    fs::write(proj.join("vault.toml"), "# refs\n").unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();

    // a reference to a missing key or secret fails before anything runs
    fs::write(proj.join(".env"), "A=ok\nB=vault://db/PGPASWORD\n").unwrap();
    env.vault(["run", "--dotenv", "--", "sh", "-c", "echo RAN"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("line 2: `vault://db/PGPASWORD`: secret `db` has no key `PGPASWORD`")
        .stderr_has("did you mean `PGPASSWORD`?")
        .lacks("RAN");
    fs::write(proj.join(".env"), "B=vault://nope/K\n").unwrap();
    env.vault(["run", "--dotenv", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("line 1: no secret named `nope`");
    fs::write(proj.join(".env"), "B=vault://db\n").unwrap();
    env.vault(["run", "--dotenv", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("`B` starts with vault:// but is not a reference");

    // import keeps references literal, and says so
    fs::write(proj.join(".env"), "PGPASSWORD=vault://db/PGPASSWORD\n").unwrap();
    env.vault(["import", "--name", "refs"])
        .current_dir(&proj)
        .run()
        .success()
        .stderr_has("`PGPASSWORD` is a vault:// reference; imported as written");
    let out = env
        .vault(["secret", "show", "refs", "--reveal"])
        .run()
        .success();
    assert!(out.stdout.contains("vault://db/PGPASSWORD"), "{out:#?}");
}

#[test]
fn dotenv_name_searches_upward_for_that_name() {
    let (env, proj) = world();
    fs::write(proj.join(".env.local"), "X=local\n").unwrap();
    fs::write(proj.join(".env"), "X=plain\n").unwrap();
    let out = env
        .vault([
            "run",
            "--dotenv-name",
            ".env.local",
            "--",
            "sh",
            "-c",
            "printf %s \"$X\"",
        ])
        .current_dir(proj.join("src/deep"))
        .run()
        .success();
    assert_eq!(out.stdout, "local");
    // interleaved with other sources, in order
    let out = env
        .vault([
            "run",
            "--dotenv-name",
            ".env.local",
            "--dotenv",
            "--",
            "sh",
            "-c",
            "printf %s \"$X\"",
        ])
        .current_dir(proj.join("src/deep"))
        .run()
        .success();
    assert_eq!(out.stdout, "plain");
    env.vault(["run", "--dotenv-name", ".env.nope", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("no file named .env.nope in");
    env.vault(["run", "--dotenv-name", "../x", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("is not a file name");
}

#[test]
fn the_upward_search_stops_at_git_and_at_shared_folders() {
    let (env, proj) = world();
    fs::write(proj.join("vault.toml"), "secrets = [\"db\"]\n").unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    // a repository inside the project is a project of its own
    let repo = proj.join("vendor/lib");
    fs::create_dir_all(repo.join(".git")).unwrap();
    let out = env
        .vault(["run", "--", "sh", "-c", PRINT])
        .current_dir(&repo)
        .run()
        .success();
    assert_eq!(out.stdout, "||");
    // a folder others may write to stops the search before it
    let shared = proj.join("shared");
    let inner = shared.join("inner");
    fs::create_dir_all(&inner).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    let out = env
        .vault(["run", "--", "sh", "-c", PRINT])
        .current_dir(&inner)
        .run()
        .success();
    assert_eq!(out.stdout, "||");
    // and from the project itself it is found
    let out = env
        .vault(["run", "--", "sh", "-c", PRINT])
        .current_dir(proj.join("src"))
        .run()
        .success();
    assert_eq!(out.stdout, "main-pw|app|");
}

#[test]
fn project_init_writes_a_commented_file_and_allows_it() {
    let (env, proj) = world();
    env.vault([
        "project",
        "init",
        "-s",
        "db",
        "-s",
        "prod/aws-prod",
        "--require",
        "PGPASSWORD",
        "-e",
        "dev",
    ])
    .current_dir(&proj)
    .run()
    .success()
    .stderr_has("and allowed it");
    let text = fs::read_to_string(proj.join("vault.toml")).unwrap();
    assert!(text.starts_with("# vault.toml: "), "{text}");
    assert!(
        text.contains("env = \"dev\"")
            && text.contains("secrets = [\"db\", \"prod/aws-prod\"]")
            && text.contains("# vault = \"secrets.vault\"")
            && text.contains("# dotenv = [\".env\"]")
            && text.contains("require = [\"PGPASSWORD\"]"),
        "{text}"
    );
    // allowed at once, and it runs (env `dev` is the project's own)
    let out = env
        .vault(["run", "-e", "main", "--", "sh", "-c", PRINT])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "main-pw|app|hunter2-aws");
    env.vault(["project", "init"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("already exists");
    env.vault(["project", "init", "--force"])
        .current_dir(&proj)
        .run()
        .success();
    env.vault(["project", "init", "-s", "bad name", "--force"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("--secret: invalid secret name `bad name`");
}

/// `project init` wrote vault.toml and then failed to allow it: the file
/// stayed, not allowed (every command refused it) and in the way of a
/// second `project init`. What was there before is put back.
#[test]
fn project_init_that_cannot_allow_leaves_no_file() {
    let (env, proj) = world();
    let allowed = env.dir.join("allowed.json");
    let _ = fs::remove_file(&allowed);
    fs::create_dir(&allowed).unwrap();
    env.vault(["project", "init", "-s", "db"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("allowed.json is a directory");
    assert!(!proj.join("vault.toml").exists());
    // With --force over a file that is there: that file stays as it was.
    fs::write(proj.join("vault.toml"), "secrets = [\"db\"]\n").unwrap();
    env.vault(["project", "init", "-s", "other", "--force"])
        .current_dir(&proj)
        .run()
        .fails(1);
    assert_eq!(
        fs::read_to_string(proj.join("vault.toml")).unwrap(),
        "secrets = [\"db\"]\n"
    );
    fs::remove_dir(&allowed).unwrap();
    env.vault(["project", "init", "-s", "db"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("already exists");
}

#[test]
fn a_pulled_change_to_a_dotenv_file_of_references_needs_a_new_allow() {
    let (env, proj) = world();
    fs::write(proj.join(".env"), "PGPASSWORD=vault://db/PGPASSWORD\n").unwrap();
    fs::write(proj.join(".env.local"), "PGUSER=me\n").unwrap();
    fs::write(
        proj.join("vault.toml"),
        "dotenv = [\".env\", \".env.local\"]\n",
    )
    .unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    let out = env
        .vault(["run", "--", "sh", "-c", PRINT])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "main-pw|me|");
    // a file of plain values is yours to edit
    fs::write(proj.join(".env.local"), "PGUSER=me-again\n").unwrap();
    env.vault(["run", "--", "true"])
        .current_dir(&proj)
        .run()
        .success();
    // a file of references decides which secrets run gets: a change to it
    // (here, one that would pull aws-prod) is refused until allowed
    fs::write(
        proj.join(".env"),
        "PGPASSWORD=vault://db/PGPASSWORD\nAWS_SECRET_ACCESS_KEY=vault://prod/aws-prod/AWS_SECRET_ACCESS_KEY\n",
    )
    .unwrap();
    env.vault(["run", "--", "sh", "-c", PRINT])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("is not allowed (new or changed)")
        .lacks("hunter2-aws");
    // and so is a plain file that starts to hold one
    env.vault(["allow"]).current_dir(&proj).run().success();
    fs::write(proj.join(".env.local"), "PGUSER=vault://db/PGUSER\n").unwrap();
    env.vault(["run", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("is not allowed (new or changed)");
    env.vault(["allow"]).current_dir(&proj).run().success();
    let out = env
        .vault(["run", "--", "sh", "-c", PRINT])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "main-pw|app|hunter2-aws");
}

/// `vault.toml` is committed: a vault file given by an absolute path
/// inside the project (`VAULT_FILE=$PWD/secrets.vault`) is written
/// relative to it, so it holds in every checkout; one outside stays as
/// given.
#[test]
fn project_init_writes_a_vault_inside_the_project_relative() {
    let (env, proj) = world();
    let proj = fs::canonicalize(&proj).unwrap();
    env.vault(["project", "init", "--force"])
        .env("VAULT_FILE", proj.join("team/secrets.vault"))
        .current_dir(&proj)
        .run()
        .success();
    let text = fs::read_to_string(proj.join("vault.toml")).unwrap();
    assert!(text.contains("\nvault = \"team/secrets.vault\""), "{text}");
    let outside = env.path("elsewhere.vault");
    env.vault(["project", "init", "--force"])
        .env("VAULT_FILE", &outside)
        .current_dir(&proj)
        .run()
        .success();
    let text = fs::read_to_string(proj.join("vault.toml")).unwrap();
    assert!(
        text.contains(&format!("\nvault = \"{}\"", outside.display())),
        "{text}"
    );
}

/// The attack: a `git pull` changes an allowed project's plain `.env`
/// (not hashed: it holds no `vault://`) into one that assembles a
/// reference by expansion. Refused, nothing run, no value shown; so is a
/// reference expanded into a longer value, which would be passed on as
/// text. A reference written out in full still resolves.
#[test]
fn a_reference_assembled_by_expansion_is_refused() {
    let (env, proj) = world();
    fs::write(proj.join("vault.toml"), "dotenv = [\".env\"]\n").unwrap();
    fs::write(proj.join(".env"), "PLAIN=1\n").unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    for text in [
        "P=vault:\nSTOLEN=${P}//db/PGPASSWORD\n",
        "P=vault://db\nSTOLEN=$P/PGPASSWORD\n",
        "A=vault://db/PGPASSWORD\nURL=postgres://app:${A}@db\n",
        "A=vault://db/PGPASSWORD\nCOPY=${A}\n",
    ] {
        fs::write(proj.join(".env"), text).unwrap();
        if text.contains("vault://") {
            // Hashed with vault.toml: even allowed, it is refused.
            env.vault(["allow"]).current_dir(&proj).run().success();
        }
        env.vault(["run", "--", "sh", "-c", "echo RAN $STOLEN $URL $COPY"])
            .current_dir(&proj)
            .run()
            .fails(1)
            .stderr_has("holds vault:// only once `$` names are expanded")
            .lacks("RAN")
            .lacks("main-pw");
    }
    // Single quotes keep `$` literal: that is text as written.
    fs::write(
        proj.join(".env"),
        "A=vault://db/PGPASSWORD\nB='see ${A}'\nC=\"vault://db/PGUSER\"\n",
    )
    .unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    let out = env
        .vault([
            "run",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$A\" \"$B\" \"$C\"",
        ])
        .current_dir(&proj)
        .run()
        .success();
    assert_eq!(out.stdout, "main-pw|see ${A}|app");
}

/// Inside an allowed project, a dotenv file reached through `..` is not
/// in its folder: its references resolve nothing.
#[test]
fn a_dotenv_file_outside_the_project_by_dot_dot_is_not_the_projects() {
    let (env, proj) = world();
    fs::write(proj.join("vault.toml"), "# refs\n").unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    let other = env.home.join("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("refs.env"), "X=vault://db/PGPASSWORD\n").unwrap();
    env.vault(["run", "--dotenv", "../other/refs.env", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("references resolve only in an allowed project")
        .lacks("main-pw");
}

/// A project not allowed stops what would use it, and nothing else: the
/// list of templates is built into vault and reaches no vault.
#[test]
fn a_project_not_allowed_does_not_stop_what_reaches_no_vault() {
    let (env, proj) = world();
    fs::write(proj.join("vault.toml"), "secrets = [\"db\"]\n").unwrap();
    env.vault(["secret", "list"])
        .current_dir(&proj)
        .run()
        .success();
    env.vault(["run", "--", "true"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("is not allowed");
    env.vault(["secret", "templates"])
        .current_dir(&proj)
        .run()
        .success()
        .stdout_has("postgres");
}

/// `vault deny PATH` forgets a project deleted since it was allowed (its
/// entry in allowed.json would otherwise stay for ever), and outside a
/// project its hint names `deny`, not `allow`.
#[test]
fn deny_forgets_a_deleted_project_and_its_hint_names_deny() {
    let (env, proj) = world();
    let toml = proj.join("vault.toml");
    fs::write(&toml, "secrets = [\"db\"]\n").unwrap();
    env.vault(["allow"]).current_dir(&proj).run().success();
    let real = fs::canonicalize(&toml).unwrap();
    let listed = || fs::read_to_string(env.dir.join("allowed.json")).unwrap();
    assert!(listed().contains(real.to_str().unwrap()));
    fs::remove_file(&toml).unwrap();
    env.vault(["deny", toml.to_str().unwrap()])
        .run()
        .success()
        .stderr_has("Denied");
    assert!(!listed().contains(real.to_str().unwrap()), "{}", listed());
    env.vault(["deny"])
        .current_dir(&env.home)
        .run()
        .fails(1)
        .stderr_has("`vault deny path/to/vault.toml`");
}

/// `vault allow` on a full disk (a file-size limit stands in): its hint
/// said "the old vault file is unchanged", but it writes allowed.json;
/// it names that file now, and the list is as it was. `allowed.lock`
/// stays, as `trusted.lock` does (README "Files").
#[test]
fn allow_on_a_full_disk_names_allowed_json_in_its_hint() {
    let (env, proj) = world();
    fs::write(proj.join("vault.toml"), "secrets = [\"db\"]\n").unwrap();
    let allowed = env.dir.join("allowed.json");
    assert!(!allowed.exists());
    let out = env
        .vault(["allow"])
        .current_dir(&proj)
        .file_size_limit(16)
        .run();
    assert_eq!(out.signal, None, "killed by a signal: {out:?}");
    out.fails(1)
        .stderr_has(&format!("cannot write {}", allowed.display()))
        .stderr_has(&format!("{} is unchanged", allowed.display()))
        .lacks("vault file");
    assert!(!allowed.exists());
    assert!(vault::testing::stale_temps(&allowed).is_empty());
    env.vault(["allow"]).current_dir(&proj).run().success();
    assert!(allowed.exists());
}
