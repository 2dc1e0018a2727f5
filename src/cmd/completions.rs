//! `vault completions SHELL`: clap_complete's script, plus for bash the
//! completion of secret names, which clap's static scripts cannot know.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::{agent, cli::Cli, context::Context, error::Result, store, unlock, vault::Vault};

/// Completes secret names after `-s`/`--secret` and for the `secret`
/// subcommands and `export`, by asking `vault __complete-secrets`, which
/// answers only when it needs no prompt (identity file or agent).
const BASH_SECRETS: &str = r#"
_vault_with_secrets() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local names=0
    case "$prev" in
        -s|--secret) names=1 ;;
    esac
    if [[ $COMP_CWORD -ge 3 && "${COMP_WORDS[1]}" == secret ]]; then
        case "${COMP_WORDS[2]}" in
            show|set|unset|rename|delete|rm) [[ $COMP_CWORD -eq 3 || "${COMP_WORDS[2]}" == delete || "${COMP_WORDS[2]}" == rm ]] && names=1 ;;
        esac
    fi
    if [[ $COMP_CWORD -ge 2 && "${COMP_WORDS[1]}" == export && "$cur" != -* ]]; then
        names=1
    fi
    if [[ $names -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$(vault __complete-secrets 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _vault "$@"
}
complete -F _vault_with_secrets -o bashdefault -o default vault
"#;

pub(crate) fn run(shell: Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "vault", &mut script);
    if shell == Shell::Bash {
        script.extend_from_slice(BASH_SECRETS.as_bytes());
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&script);
    Ok(())
}

/// Secret names, one per line, only when they can be read without asking.
pub(crate) fn secret_names(ctx: &Context) -> Result<()> {
    if !unlock::identity_given(ctx) && agent::status(&ctx.paths.dir).ok().flatten().is_none() {
        return Ok(());
    }
    let Ok(keys) = unlock::unlock(ctx) else {
        return Ok(());
    };
    let Ok(v) = Vault::open(&ctx.paths, &keys) else {
        return Ok(());
    };
    let mut out = std::io::stdout().lock();
    for name in store::names(v.conn())? {
        let _ = writeln!(out, "{name}");
    }
    Ok(())
}
