//! `vault export`: the project's sources (when run inside one), then the
//! named secrets, merged in order (later ones win), rendered as dotenv (by
//! `dotenv`, which reads it back), JSON (escaped by serde_json) or POSIX
//! shell, so that every format reads back to identical values.

use std::ffi::OsString;

use zeroize::Zeroizing;

use super::run::merge;
use crate::{
    cli::{ExportFormat, Source},
    context::Context,
    dotenv,
    env::ChildEnv,
    error::{Error, Result},
};

pub(crate) fn run(
    ctx: &Context,
    names: &[String],
    format: ExportFormat,
    k8s_name: Option<&str>,
) -> Result<()> {
    if k8s_name.is_some() && format != ExportFormat::K8s {
        return Err(Error::usage("--k8s-name goes with --format k8s")
            .hint("add --format k8s, or drop --k8s-name"));
    }
    if names.is_empty() && ctx.scope.project.is_none() {
        return Err(Error::new("nothing to export: no secret named, and no vault.toml here").hint(
            "name the secrets (`vault export NAME…`), or run it in a project (`vault project init`)",
        ));
    }
    let given: Vec<Source> = names.iter().cloned().map(Source::Secret).collect();
    // The invoking environment is only what `$NAME` in a dotenv source
    // resolves against, as it would for `run`; it is not exported.
    let invoking: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mut env = ChildEnv::new(invoking.clone(), false, false);
    merge(ctx, &given, &invoking, &mut env, false)?;
    super::run::missing_keys(&env, &super::run::required_keys(ctx, &ctx.scope.env, &[])?)?;
    let pairs: Vec<(&str, &str)> = env
        .sourced()
        .into_iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    if format == ExportFormat::Shell {
        refuse_shell_special(pairs.iter().map(|(k, _)| *k))?;
    }
    let text = Zeroizing::new(match format {
        ExportFormat::Dotenv => dotenv::render_dotenv(&pairs),
        ExportFormat::Json => render_json(&pairs),
        ExportFormat::Shell => render_shell(&pairs),
        ExportFormat::Docker => super::export_ci::docker(&pairs)?,
        ExportFormat::K8s => super::export_ci::k8s(&pairs, k8s_name, &k8s_default(ctx, names))?,
        ExportFormat::Github => return super::export_ci::github(&pairs),
    });
    crate::output::print(&text)
}

/// The Secret's name without --k8s-name: from the first secret named (its
/// name, not its environment), else from the project's folder.
fn k8s_default(ctx: &Context, names: &[String]) -> String {
    let base = match names.first() {
        Some(n) => n.rsplit('/').next().unwrap_or(n).to_string(),
        None => ctx
            .scope
            .project
            .as_ref()
            .and_then(|p| p.path.parent()?.file_name())
            .map_or_else(
                || "secrets".to_string(),
                |f| f.to_string_lossy().into_owned(),
            ),
    };
    super::export_ci::k8s_name_from(&base)
}

/// Renders `export KEY='value'` lines for `eval` in any POSIX shell.
pub(crate) fn render_shell(entries: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        out.push_str("export ");
        out.push_str(key);
        out.push_str("='");
        // Inside single quotes the shell interprets nothing but `'` itself.
        out.push_str(&value.replace('\'', r"'\''"));
        out.push_str("'\n");
    }
    out
}

/// Renders a pretty-printed JSON object, keys in the given order, as
/// serde_json's pretty printer lays it out. Each string is escaped by
/// serde_json; the layout is assembled here so that no copy of a value is
/// left unwiped (a `serde_json::Value` would hold one).
pub fn render_json(entries: &[(&str, &str)]) -> String {
    if entries.is_empty() {
        return "{}\n".to_owned();
    }
    let quoted = |s: &str| Zeroizing::new(serde_json::to_string(s).unwrap_or_default());
    let mut out = String::from("{\n");
    for (i, (key, value)) in entries.iter().enumerate() {
        out.push_str("  ");
        out.push_str(&quoted(key));
        out.push_str(": ");
        out.push_str(&quoted(value));
        out.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
    }
    out.push_str("}\n");
    out
}

/// Keys that sh, bash or zsh treat as special or read-only: assigning one
/// aborts an `eval` (`UID` under `bash --posix`, `status` in zsh), is
/// ignored, or changes the shell itself (`path` is zsh's `PATH`,
/// `SHELLOPTS` turns on options). `--format shell` refuses them.
pub(crate) fn is_shell_special(key: &str) -> bool {
    const EXACT: &[&str] = &[
        // bash (and ksh, dash for some)
        "UID",
        "EUID",
        "PPID",
        "SHELLOPTS",
        "BASHOPTS",
        "BASHPID",
        "GROUPS",
        "FUNCNAME",
        "DIRSTACK",
        "HISTCMD",
        "LINENO",
        "RANDOM",
        "SRANDOM",
        "SECONDS",
        "EPOCHSECONDS",
        "EPOCHREALTIME",
        "OPTIND",
        "OPTARG",
        "PIPESTATUS",
        "IFS",
        "COMP_WORDBREAKS",
        "_",
        // zsh: read-only or special parameters, and arrays tied to scalars
        "GID",
        "EGID",
        "USERNAME",
        "ARGC",
        "ERRNO",
        "TTYIDLE",
        "status",
        "pipestatus",
        "argv",
        "path",
        "fpath",
        "cdpath",
        "manpath",
        "mailpath",
        "module_path",
        "psvar",
        "fignore",
        "watch",
        "options",
        "parameters",
        "commands",
        "functions",
        "aliases",
        "galiases",
        "saliases",
        "builtins",
        "modules",
        "jobdirs",
        "jobstates",
        "jobtexts",
        "nameddirs",
        "userdirs",
        "history",
        "historywords",
        "dirstack",
        "funcstack",
        "functrace",
        "funcfiletrace",
        "funcsourcetrace",
        "widgets",
        "keymaps",
        "reswords",
        "mapfile",
        "sysparams",
        "signals",
        "termcap",
        "terminfo",
        "zsh_eval_context",
        // zsh, the rest of what `export K='x y'` aborts on (read-only, an
        // integer, an array or a hash; with its modules loaded, zsh 5.9),
        // listed by zsh itself: a unit test below asks it again.
        "COLUMNS",
        "FUNCNEST",
        "HISTSIZE",
        "LINES",
        "SAVEHIST",
        "SHLVL",
        "TRY_BLOCK_ERROR",
        "TRY_BLOCK_INTERRUPT",
        "ZCURSES_COLORS",
        "ZCURSES_COLOR_PAIRS",
        "dis_aliases",
        "dis_builtins",
        "dis_functions",
        "dis_functions_source",
        "dis_galiases",
        "dis_patchars",
        "dis_reswords",
        "dis_saliases",
        "epochtime",
        "errnos",
        "functions_source",
        "langinfo",
        "patchars",
        "usergroups",
        "zcurses_attrs",
        "zcurses_colors",
        "zcurses_keycodes",
        "zcurses_windows",
        "zsh_scheduled_events",
    ];
    EXACT.contains(&key) || key.starts_with("BASH_") || key.starts_with("ZSH_")
}

/// `eval` of `export UID=…` aborts under `bash --posix` (and `status=…` in
/// zsh), leaving the keys after it unset: refuse before printing anything.
fn refuse_shell_special<'a>(keys: impl Iterator<Item = &'a str>) -> Result<()> {
    let special: Vec<String> = keys
        .filter(|k| is_shell_special(k))
        .map(|k| format!("`{k}`"))
        .collect();
    if special.is_empty() {
        return Ok(());
    }
    Err(crate::error::Error::new(format!(
        "--format shell cannot set {}: sh, bash or zsh treat {} as special or read-only",
        special.join(", "),
        if special.len() == 1 { "it" } else { "them" }
    ))
    .hint("use --format dotenv or json, or move the value to another key (`vault secret set NAME NEW_KEY`, then `vault secret unset NAME OLD_KEY`)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The value strategies of the dotenv renderer's round trips.
    use crate::dotenv::tests::{any_entries, any_value, borrowed};

    proptest! {
        #[test]
        fn render_json_round_trips(entries in any_entries()) {
            let text = render_json(&borrowed(&entries));
            let closed = text.ends_with("}\n");
            prop_assert!(closed);
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            let object = doc.as_object().unwrap();
            prop_assert_eq!(object.len(), entries.len());
            for (k, v) in &entries {
                prop_assert_eq!(object[k].as_str(), Some(v.as_str()));
            }
            // Byte for byte what serde_json's pretty printer writes, plus the newline.
            let mut map = serde_json::Map::new();
            for (k, v) in &entries {
                map.insert(k.clone(), serde_json::Value::String(v.clone()));
            }
            let pretty = serde_json::to_string_pretty(&serde_json::Value::Object(map)).unwrap();
            prop_assert_eq!(text.trim_end(), pretty);
        }
    }

    #[test]
    fn shell_special_keys() {
        for k in [
            "UID",
            "EUID",
            "PPID",
            "SHELLOPTS",
            "BASHOPTS",
            "BASH_ENV",
            "BASH_VERSINFO",
            "status",
            "path",
            "argv",
            "ZSH_SUBSHELL",
            "_",
        ] {
            assert!(is_shell_special(k), "{k}");
        }
        for k in ["PATH", "HOME", "PGHOST", "Status", "STATUS", "UID_X", "_A"] {
            assert!(!is_shell_special(k), "{k}");
        }
    }

    /// Every parameter that zsh (with its modules loaded), bash, `bash
    /// --posix` or dash refuses `export K='x y'` for, asked of the shells
    /// themselves, is refused by `--format shell` (an `eval` stops at it).
    #[test]
    fn every_key_a_shell_refuses_is_special() {
        use std::process::Command;
        const MODULES: &str = "for m in zsh/parameter zsh/mapfile zsh/terminfo zsh/termcap zsh/system zsh/langinfo zsh/zleparameter zsh/datetime zsh/curses zsh/random zsh/sched zsh/zpty zsh/net/tcp zsh/zftp zsh/zprof zsh/files zsh/watch zsh/mathfunc zsh/zutil zsh/zle; do zmodload $m 2>/dev/null; done";
        let run = |shell: &[&str], script: &str| {
            Command::new(shell[0])
                .args(&shell[1..])
                .arg(script)
                .env_clear()
                .output()
                .ok()
        };
        let names = |shell: &[&str], script: &str| -> Vec<String> {
            run(shell, script)
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .lines()
                .filter(|k| crate::names::is_env_key(k))
                .map(str::to_string)
                .collect()
        };
        let zsh_list = format!(
            "{MODULES}; for k in ${{(k)parameters}}; do [[ ${{parameters[$k]}} == *special* ]] && print -r -- $k; done"
        );
        let cases: [(&[&str], String, &str); 4] = [
            (&["zsh", "-c"], zsh_list, MODULES),
            (&["bash", "-c"], "compgen -v".into(), ""),
            (&["bash", "--posix", "-c"], "compgen -v".into(), ""),
            (&["dash", "-c"], "set | cut -d= -f1".into(), ""),
        ];
        for (shell, list, prelude) in cases {
            let keys = names(shell, &list);
            if keys.is_empty() {
                println!("{} is not installed: not asked", shell[0]);
                continue;
            }
            for k in keys {
                let script = format!("{prelude}\nexport {k}='x y'; echo OK");
                let ok = run(shell, &script)
                    .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains("OK"));
                if !ok {
                    assert!(is_shell_special(&k), "{shell:?} refuses `{k}`");
                }
            }
        }
    }

    #[test]
    fn render_examples() {
        assert_eq!(render_shell(&[("D", "it's\n")]), "export D='it'\\''s\n'\n");
        assert_eq!(render_json(&[]), "{}\n");
        assert_eq!(
            render_json(&[("A", "plain-1.2/x@y:z"), ("B", "")]),
            "{\n  \"A\": \"plain-1.2/x@y:z\",\n  \"B\": \"\"\n}\n"
        );
        assert_eq!(
            render_json(&[("\u{1}", "\t")]),
            "{\n  \"\\u0001\": \"\\t\"\n}\n"
        );
    }

    fn shells() -> Vec<&'static str> {
        let found: Vec<&str> = ["bash", "dash", "zsh"]
            .into_iter()
            .filter(|sh| {
                std::process::Command::new(sh)
                    .args(["-c", "true"])
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .collect();
        for missing in ["bash", "dash"].iter().filter(|sh| !found.contains(sh)) {
            println!("{missing} is not installed; render_shell is not checked against it");
        }
        found
    }

    /// Evaluates `script` in `shell` and prints the named variable.
    fn shell_value(shell: &str, script: &str, key: &str) -> Vec<u8> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(shell)
            .args(["-c", &format!("eval \"$(cat)\"; printf %s \"${key}\"")])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{shell} failed on {script:?}");
        out.stdout
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn render_shell_round_trips_through_eval(entries in any_entries(), value in any_value()) {
            let mut entries = entries;
            entries.push(("LAST".to_owned(), value.clone()));
            let script = render_shell(&borrowed(&entries));
            for shell in shells() {
                prop_assert_eq!(shell_value(shell, &script, "LAST"), value.as_bytes(), "{} {:?}", shell, script);
            }
        }
    }
}
