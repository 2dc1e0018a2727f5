//! The command line, as clap definitions only. The `///` comments are the
//! `--help` text and, through clap_mangen, the man pages.

use std::{ffi::OsString, fmt, path::PathBuf, time::Duration};

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use zeroize::Zeroizing;

/// A local, offline secrets vault: named sets of environment variables in one
/// age-encrypted file, handed to the commands that need them.
#[derive(Debug, Parser)]
#[command(
    name = "vault",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = EX_VAULT
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The directory that holds identity.age, vault.age and vault.lock
    /// [default: ~/.config/vault]
    #[arg(long, global = true, env = "VAULT_DIR", value_name = "DIR")]
    pub(crate) vault_dir: Option<PathBuf>,

    /// A vault file elsewhere (a team vault in a repository, say); its lock is FILE.lock
    #[arg(long, global = true, env = "VAULT_FILE", value_name = "FILE")]
    pub(crate) vault: Option<PathBuf>,

    /// An age identity file that opens the vault, instead of identity.age and a passphrase
    #[arg(long, global = true, env = "VAULT_IDENTITY", value_name = "FILE")]
    pub(crate) identity: Option<PathBuf>,

    /// Read the passphrase from the first line of FILE (mode 0600 or stricter)
    #[arg(
        long,
        global = true,
        env = "VAULT_PASSPHRASE_FILE",
        value_name = "FILE"
    )]
    pub(crate) passphrase_file: Option<PathBuf>,

    /// The environment to work in [default: the project's `env`, else main]
    #[arg(
        short = 'e',
        long = "env",
        global = true,
        env = "VAULT_ENV",
        value_name = "ENV"
    )]
    pub(crate) env: Option<String>,

    /// Ignore vault.toml: none of its sources, vault or environment
    #[arg(long, global = true)]
    pub(crate) no_project: bool,

    /// Write even though the vault is older than the newest seen and lists
    /// members a newer file removed (they become members again)
    #[arg(long, global = true)]
    pub(crate) allow_older: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the vault directory, a new identity and an empty vault
    #[command(after_long_help = EX_INIT)]
    Init,

    /// Create, list, show, change and delete secrets
    #[command(subcommand)]
    #[command(after_long_help = EX_SECRET)]
    Secret(Lazy<SecretCommand>),

    /// Turn a project's .env file into a secret (or many secrets from JSON)
    ///
    /// PATH defaults to the nearest .env from the current directory upward; a
    /// directory starts the search there. NAME defaults to the name of the folder
    /// that holds the file (`.env.production` gives NAME-production).
    #[command(after_long_help = EX_IMPORT)]
    Import(Lazy<ImportArgs>),

    /// Start an agent that holds your identity for a while, so commands stop asking
    ///
    /// The agent unwraps vault files for processes of your own user and never
    /// hands the identity out, like ssh-agent. Unlocking again replaces it.
    #[command(after_long_help = EX_UNLOCK)]
    Unlock {
        /// How long the agent lives: 90s, 15m, 2h, 1h30m; at most 7d
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },

    /// Stop the agent, forgetting the identity
    #[command(after_long_help = EX_LOCK)]
    Lock,

    /// Show the vault's path, whether it is unlocked, and for how long
    #[command(after_long_help = EX_STATUS)]
    Status {
        /// Print {vault, exists, unlocked, seconds_left, agent_pid, socket, secrets}
        #[arg(long)]
        json: bool,
    },

    /// Change the passphrase of identity.age (the vault file is not touched)
    #[command(after_long_help = EX_PASSWD)]
    Passwd {
        /// Read the new passphrase from the first line of FILE (mode 0600)
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },

    /// Check permissions, the lock, the agent, integrity, schema, secrets to
    /// rotate and stray files
    #[command(after_long_help = EX_DOCTOR)]
    Doctor,

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_long_help = EX_COMPLETIONS)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the names of secrets for shell completion, if that needs no prompt
    #[command(name = "__complete-secrets", hide = true)]
    CompleteSecrets {
        /// Only the names that start with PREFIX (the word being completed)
        #[arg(allow_hyphen_values = true)]
        prefix: Option<String>,
    },

    /// `run --redact` with files: becomes the command, first pointing each
    /// key of VAULT_EXEC_FILES at its descriptor through its own pid
    #[command(name = "__exec-files", hide = true)]
    ExecFiles {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },

    /// The agent process itself (started by `vault unlock`)
    #[command(name = "__agent", hide = true)]
    Agent {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        seconds: u64,
    },

    /// Share the vault: list, add or remove the recipients it is encrypted to
    #[command(subcommand)]
    #[command(after_long_help = EX_RECIPIENTS)]
    Recipients(Lazy<RecipientsCommand>),

    /// Print your own public recipient (age1…), for a teammate to add
    #[command(after_long_help = EX_RECIPIENT)]
    Recipient,

    /// Show who signed the vault and who its members are, and trust them
    /// (for a vault that was rebuilt, re-keyed or replaced on purpose)
    #[command(after_long_help = EX_TRUST)]
    Trust {
        /// Trust without asking (required without a terminal)
        #[arg(long)]
        yes: bool,
    },

    /// Print secrets, merged in order (later names win), as dotenv, JSON, shell, or for CI
    #[command(after_long_help = EX_EXPORT)]
    Export {
        /// Secrets to merge (NAME or ENV/NAME), after the project's; a later one's keys win
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// dotenv (read back by `vault import`), json (an object), shell
        /// (`export KEY='value'` lines, safe to eval in sh, bash and zsh),
        /// docker (KEY=VALUE lines as `docker run --env-file` reads them,
        /// unquoted), k8s (a v1 Secret manifest), or github (appends to
        /// $GITHUB_ENV in a GitHub Actions step and prints ::add-mask:: lines)
        #[arg(long, value_enum, default_value_t = ExportFormat::Dotenv)]
        format: ExportFormat,
        /// With --format k8s: the Secret's name [default: the first NAME,
        /// made a valid Kubernetes name]
        #[arg(long, value_name = "NAME")]
        k8s_name: Option<String>,
    },

    /// Run a command with secrets in its environment
    ///
    /// Sources are applied in the order they appear on the command line, later
    /// ones overriding earlier keys, all of them overriding the inherited
    /// environment. The command follows `--`, is run by exec (vault is
    /// replaced, so exit status and signals are the command's own; with
    /// --redact vault stays as its parent and passes them on) with its
    /// arguments exactly as given, never through a shell.
    #[command(visible_alias = "exec")]
    #[command(after_long_help = EX_RUN)]
    Run(Lazy<RunArgs>),

    /// Start your shell ($SHELL, else /bin/sh) with secrets in its environment
    #[command(after_long_help = EX_SHELL)]
    Shell(Lazy<ShellArgs>),

    /// Copy stdin to stdout with every secret value masked as ********
    ///
    /// The values are those the sources set, as for `run` (inherited variables
    /// are not masked), and each line of a multi-line value; values and lines
    /// shorter than 4 bytes are left alone. A value split across reads is
    /// still masked.
    #[command(after_long_help = EX_REDACT)]
    Redact(Lazy<RedactArgs>),

    /// Print a template with values filled in from secrets and the environment
    ///
    /// Sources are those of `run`, in command-line order. An unknown name is
    /// an error; nothing is printed then.
    #[command(after_long_help = EX_RENDER)]
    Render(Lazy<RenderArgs>),

    /// List environments (every secret belongs to one; `main` by default)
    #[command(subcommand)]
    #[command(after_long_help = EX_ENV)]
    Env(Lazy<EnvCommand>),

    /// Write a vault.toml for the project in this folder
    ///
    /// vault.toml is meant to be committed: it holds names, never values. It
    /// may set `vault` (a vault file, relative to it), `env` (the default
    /// environment), `secrets` (applied first, in order: NAME or ENV/NAME),
    /// `dotenv` (then these files, relative to it), `require` (keys checked
    /// before anything runs), `files`, and `[env.NAME]` tables that replace
    /// the last four for one environment. `vault run`, `shell` and `export`
    /// find it from the current directory upward (stopping at the top of a
    /// git repository, at $HOME, and before folders other users may write
    /// to), and use it only once `vault allow` has recorded it.
    #[command(subcommand)]
    #[command(after_long_help = EX_PROJECT)]
    Project(Lazy<ProjectCommand>),

    /// Trust a project's vault.toml (new or changed files run nothing until allowed)
    ///
    /// Records the file's absolute path and SHA-256 in VAULT_DIR/allowed.json.
    /// PATH defaults to the vault.toml found from the current directory upward.
    #[command(after_long_help = EX_ALLOW)]
    Allow {
        /// A vault.toml, or a folder to search upward from
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },

    /// Forget that a project's vault.toml was allowed
    #[command(after_long_help = EX_DENY)]
    Deny {
        /// A vault.toml, or a folder to search upward from
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },

    /// Keep a team vault in git: a diff that names what changed, and a merge driver
    ///
    /// `vault git setup` tells the repository to use them; `git diff` and
    /// `git log -p` then show the vault's keys with fingerprints of their
    /// values (never the values).
    #[command(subcommand)]
    #[command(after_long_help = EX_GIT)]
    Git(Lazy<GitCommand>),

    /// List and resolve the conflicts `vault git merge` left in the vault
    #[command(subcommand)]
    #[command(after_long_help = EX_CONFLICTS)]
    Conflicts(Lazy<ConflictsCommand>),

    /// Check that every source, required key and files key of the project resolves (the CI gate)
    ///
    /// Runs nothing; exits 1 naming every missing secret, file and key.
    #[command(after_long_help = EX_CHECK)]
    Check {
        /// The default environment and every [env.NAME] table of vault.toml
        #[arg(long)]
        all_envs: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum GitCommand {
    /// Set up the git repository that holds the vault (--vault FILE, or vault.toml's)
    ///
    /// Adds `/FILE merge=vault diff=vault` to the repository's .gitattributes
    /// and `/FILE.lock` to its .gitignore (FILE relative to the top of the
    /// repository; commit both), and sets merge.vault.name,
    /// merge.vault.driver (`vault git merge %O %A %B %P`) and
    /// diff.vault.textconv (`vault git show`) in the repository's own
    /// config (.git/config, which is not shared: each clone runs this
    /// once). Prints what it changed; a second run changes nothing.
    #[command(after_long_help = EX_GIT_SETUP)]
    Setup,

    /// Print a vault file as stable text for git: ids, signer, recipients, keys and fingerprints
    ///
    /// git's textconv for the vault (`git diff`, `git log -p`, `git show`).
    /// One line per `ENV/NAME KEY  FINGERPRINT`, sorted; the fingerprint is
    /// the first 12 hex digits of HMAC-SHA256 of the value under the
    /// vault's diff key, the same for every member and meaningless to
    /// anyone else. Values are never shown unless --reveal. It never asks
    /// for a passphrase: the identity comes from --identity, VAULT_AGE_KEY,
    /// the agent (`vault unlock`) or a passphrase file; without one it
    /// prints what the file's header shows and says it cannot decrypt, and
    /// exits 0. It reads trusted.json but never changes it.
    #[command(after_long_help = EX_GIT_SHOW)]
    Show {
        /// The vault file [default: --vault FILE, or vault.toml's vault]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Print each value too, JSON-quoted (for a terminal; never as textconv)
        #[arg(long)]
        reveal: bool,
    },

    /// git's merge driver: merge two branches' versions of a vault, key by key
    ///
    /// git runs it as `vault git merge %O %A %B %P` for a file with
    /// `merge=vault` in .gitattributes. All three versions must open with
    /// your identity, without a prompt (an identity file, VAULT_AGE_KEY, the
    /// agent, or a passphrase file), and pass the same trust checks as a
    /// read. The result replaces OURS, signed by you. Different changes of
    /// one key (or a secret deleted on one branch and changed on the other)
    /// are conflicts: OURS's value stays, each is recorded in the vault
    /// (`vault conflicts list`), named on stderr, and the exit status is 1,
    /// so that git stops.
    #[command(after_long_help = EX_GIT_MERGE)]
    Merge {
        /// The common ancestor's version (git's %O)
        #[arg(value_name = "BASE")]
        base: PathBuf,
        /// Your branch's version, replaced by the result (git's %A)
        #[arg(value_name = "OURS")]
        ours: PathBuf,
        /// The other branch's version (git's %B)
        #[arg(value_name = "THEIRS")]
        theirs: PathBuf,
        /// The vault's path in the work tree (git's %P), for messages and trust;
        /// without it, messages name each file given (with its role)
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConflictsCommand {
    /// The keys and secrets a merge left in conflict (never their values)
    #[command(visible_alias = "ls")]
    #[command(after_long_help = EX_CONFLICTS_LIST)]
    List {
        /// Print a JSON array of {env, secret, key, base, ours, theirs}, each
        /// side "set" or "absent" (key null: the whole secret)
        #[arg(long)]
        json: bool,
    },
    /// Settle a conflict by taking one side: the key (or the whole secret)
    /// becomes exactly as that side has it, absent included
    #[command(after_long_help = EX_CONFLICTS_RESOLVE)]
    Resolve {
        /// The secret (NAME or ENV/NAME)
        #[arg(value_name = "ENV/NAME", required_unless_present = "all")]
        secret: Option<String>,
        /// One key of it [default: every conflict of the secret]
        #[arg(value_name = "KEY")]
        key: Option<String>,
        /// Every conflict in the vault (with --take ours or theirs)
        #[arg(long, conflicts_with_all = ["secret", "key"])]
        all: bool,
        /// The side to take
        #[arg(long, value_enum, value_name = "SIDE")]
        take: TakeSide,
    },
}

/// A side of a merge conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TakeSide {
    Ours,
    Theirs,
    Base,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCommand {
    /// Environments with the number of secrets in each
    #[command(visible_alias = "ls")]
    #[command(after_long_help = EX_ENV_LIST)]
    List {
        /// Print a JSON array of {env, secrets, current}
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCommand {
    /// Write a commented vault.toml here and allow it
    ///
    /// The global --vault FILE and -e ENV given here are written into the
    /// file (`vault` and `env`) instead of being used.
    #[command(after_long_help = EX_PROJECT)]
    Init {
        /// A secret the project's commands get (NAME or ENV/NAME); repeatable
        #[arg(short = 's', long = "secret", value_name = "NAME")]
        secrets: Vec<String>,
        /// A dotenv file, relative to the project folder; repeatable
        #[arg(long, value_name = "PATH")]
        dotenv: Vec<String>,
        /// A key the command must get; repeatable
        #[arg(long, value_name = "KEY")]
        require: Vec<String>,
        /// Replace an existing vault.toml
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RecipientsCommand {
    /// List who the vault is encrypted to
    ///
    /// ADDED BY names the member who added each one: `you`, their recipient
    /// shortened, or `unknown` for members added before vault recorded it.
    #[command(visible_alias = "ls")]
    #[command(after_long_help = EX_RCP_LIST)]
    List {
        /// Print a JSON array of {recipient, added_at, added_by, you, signer}
        #[arg(long)]
        json: bool,
    },
    /// Encrypt the vault to more recipients (age1…, ssh-ed25519 …, ssh-rsa …)
    #[command(after_long_help = EX_RCP_ADD)]
    Add {
        #[arg(value_name = "RECIPIENT", required_unless_present = "recipients_file")]
        recipients: Vec<String>,
        /// Read recipients from FILE, one per line, as `age -R` does
        #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
        recipients_file: Vec<PathBuf>,
    },
    /// Stop encrypting the vault to recipients (rotate what they could read!)
    ///
    /// Re-encrypts the vault without them, marks every secret of every
    /// environment for rotation, and renews the diff key that `vault git
    /// show` fingerprints values with, so they cannot test guesses against
    /// later diffs.
    #[command(visible_alias = "rm")]
    #[command(after_long_help = EX_RCP_REMOVE)]
    Remove {
        #[arg(value_name = "RECIPIENT", required_unless_present = "recipients_file")]
        recipients: Vec<String>,
        /// Read recipients from FILE, one per line, as `age -R` does
        #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
        recipients_file: Vec<PathBuf>,
        /// Allow removing your own last key, which locks you out
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// A dotenv file (`-` for stdin, with --name), or a directory to search upward from
    #[arg(value_name = "PATH", conflicts_with = "from_json")]
    pub(crate) path: Option<PathBuf>,
    /// The secret's name [default: the folder's name]
    #[arg(long, conflicts_with = "from_json")]
    pub(crate) name: Option<String>,
    /// Replace secrets that already exist
    #[arg(long)]
    pub(crate) force: bool,
    /// Import every .env and .env.SUFFIX of the folder (not examples or templates)
    #[arg(long, conflicts_with = "from_json")]
    pub(crate) all: bool,
    /// Keep every value literal: no ${VAR} expansion
    #[arg(long, conflicts_with = "from_json")]
    pub(crate) no_expand: bool,
    /// Skip lines that are not KEY=VALUE (with a warning) instead of failing
    #[arg(long, conflicts_with = "from_json")]
    pub(crate) skip_invalid: bool,
    /// Show what would be imported, values masked; change nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// With --dry-run, print JSON: [{file, name, keys: {KEY: "********"}}]
    #[arg(long, requires = "dry_run")]
    pub(crate) json: bool,
    /// Import many secrets at once from {"name": {"KEY": "value"}, …}, in one transaction
    #[arg(long, value_name = "FILE")]
    pub(crate) from_json: Option<PathBuf>,
}

/// The characters `secret generate` draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Chars {
    Alnum,
    Hex,
    Url,
    Ascii,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    Dotenv,
    Json,
    Shell,
    Docker,
    K8s,
    Github,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) env: EnvArgs,

    /// Mask secret values in the command's output: vault stays as its parent
    /// and copies its stdout and stderr, replacing every value a source set
    /// (and each line of a multi-line one) of 4 bytes or more by ********;
    /// signals are passed on and the exit status is the command's. When
    /// stdout and stderr are both terminals it execs as usual, unless
    /// --redact=always
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "auto"
    )]
    pub(crate) redact: Option<RedactWhen>,

    /// Give the command KEY's value as a file: KEY becomes the path of a
    /// sealed, read-only in-memory file (/proc/PID/fd/N) holding the value;
    /// nothing touches the disk. Repeatable; Linux only
    #[arg(long = "as-file", value_name = "KEY")]
    pub(crate) as_file: Vec<String>,

    /// Render the file TEMPLATE ({{ NAME }} and {{ vault://SECRET/KEY }}
    /// replaced by values) into a sealed in-memory file whose path becomes
    /// KEY. Repeatable; Linux only
    #[arg(long = "render", value_name = "TEMPLATE=KEY")]
    pub(crate) render: Vec<String>,

    /// The command and its arguments, after `--`
    #[arg(
        last = true,
        required_unless_present = "explain",
        value_name = "COMMAND"
    )]
    pub(crate) command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// The template: any text file; `{{ NAME }}` becomes the value NAME has
    /// in the merged environment, `{{ vault://SECRET/KEY }}` a stored value
    #[arg(value_name = "TEMPLATE")]
    pub(crate) template: PathBuf,

    #[command(flatten)]
    pub(crate) env: EnvArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ShellArgs {
    #[command(flatten)]
    pub(crate) env: EnvArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RedactArgs {
    #[command(flatten)]
    pub(crate) env: EnvArgs,
}

/// When `run --redact` masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RedactWhen {
    /// Unless stdout and stderr are both terminals
    Auto,
    /// Also on a terminal
    Always,
}

const SOURCES: &str = "Sources (applied in command-line order, later ones win)";

/// The sources and checks `run` and `shell` share.
#[derive(Debug, Args)]
pub(crate) struct EnvArgs {
    /// A stored secret
    #[arg(short = 's', long = "secret", value_name = "NAME", help_heading = SOURCES)]
    pub(crate) secret: Vec<String>,

    /// The nearest file named NAME from the current directory upward (like a bare --dotenv)
    #[arg(long = "dotenv-name", value_name = "NAME", help_heading = SOURCES)]
    pub(crate) dotenv_name: Vec<String>,

    /// A dotenv file; without PATH the nearest .env from the current directory
    /// upward, and a directory PATH starts that search there
    // A bare `--dotenv` must still show up in `indices_of`, which needs a
    // default_missing_value; `.` means "search from here".
    #[arg(
        long,
        value_name = "PATH",
        num_args = 0..=1,
        default_missing_value = ".",
        help_heading = SOURCES
    )]
    pub(crate) dotenv: Vec<PathBuf>,

    /// One literal KEY=VALUE pair (the value is visible in `ps`; prefer a secret)
    #[arg(long = "set", value_name = "KEY=VALUE", help_heading = SOURCES)]
    pub(crate) set: Vec<SetArg>,

    /// KEY with the value it has in vault's own environment
    #[arg(long = "local-env", value_name = "KEY", help_heading = SOURCES)]
    pub(crate) local_env: Vec<String>,

    /// The sources above, in command-line order (filled from the matches).
    #[arg(skip)]
    pub(crate) sources: Vec<Source>,

    /// Fail before running anything unless KEY is set; repeatable
    #[arg(long, value_name = "KEY")]
    pub(crate) require: Vec<String>,

    /// Start from only PATH HOME USER LOGNAME SHELL TERM LANG LC_* TZ TMPDIR
    /// instead of the whole inherited environment
    #[arg(long)]
    pub(crate) clean_env: bool,

    /// Let inherited variables win over the sources
    #[arg(long)]
    pub(crate) no_override: bool,

    /// What to do when two sources give one key different values
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Conflicts::Override)]
    pub(crate) conflicts: Conflicts,

    /// Print which source sets each key and what it overrides (values
    /// masked), and run nothing
    #[arg(long)]
    pub(crate) explain: bool,

    /// With --explain: a JSON array of {key, source, overridden}
    #[arg(long, requires = "explain")]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Conflicts {
    /// The later source wins
    Override,
    /// Fail before running
    Error,
}

/// One source of variables for `run`/`shell`, as given.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Secret(String),
    Dotenv(PathBuf),
    /// `--dotenv-name NAME`: the nearest file so named, upward.
    DotenvName(String),
    /// A `dotenv` file of the project (never from the command line): it
    /// must exist as named, no search.
    ProjectDotenv(PathBuf),
    Set(SetArg),
    LocalEnv(String),
}

/// A `KEY=VALUE` argument (`--set`, and the pairs of `secret create`/`set`):
/// the value is wiped on drop and never shown by `Debug`. Checked by the
/// command (an invalid key is a vault error, exit 1).
#[derive(Clone)]
pub(crate) struct SetArg(Zeroizing<String>);

impl SetArg {
    /// The argument as given.
    pub(crate) fn text(&self) -> &str {
        &self.0
    }

    /// The key and value; `None` without a `=`.
    pub(crate) fn split(&self) -> Option<(&str, &str)> {
        self.0.split_once('=')
    }

    /// The text before the `=`, which names a key. Without a `=` there is
    /// no key to show: the whole argument may be a value given by mistake.
    pub(crate) fn key_part(&self) -> Option<&str> {
        self.split().map(|(k, _)| k)
    }
}

impl From<String> for SetArg {
    fn from(s: String) -> Self {
        SetArg(Zeroizing::new(s))
    }
}

impl fmt::Debug for SetArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key_part() {
            Some(key) => write!(f, "SetArg({key}={})", crate::names::MASK),
            None => write!(f, "SetArg({})", crate::names::MASK),
        }
    }
}

/// A subcommand's arguments (or its own subcommands), built only when the
/// command line names that subcommand (`Command::defer`): every command
/// builds the root and one path down the tree, not the whole of it, which
/// took a tenth of a `vault run` (BENCHMARKS.md). Completions and man
/// pages build the whole tree at once (`full_command`): clap copies the
/// tree for `vault help …` before deferred parts exist.
#[derive(Debug)]
pub(crate) struct Lazy<T>(pub(crate) T);

thread_local! {
    /// Whether `Lazy` builds at once: only inside `full_command`.
    static EAGER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The whole command tree, nothing deferred, the same as clap's derive
/// builds it: for completions and man pages.
pub fn full_command() -> clap::Command {
    EAGER.set(true);
    let cmd = Cli::command();
    EAGER.set(false);
    cmd
}

/// Whether `name` is one of vault's internal subcommands (`__agent`,
/// `__exec-files`, `__complete-secrets`): hidden, run by vault itself,
/// never offered to a user in help, completions or suggestions.
pub(crate) fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

/// `full_command` without the internal subcommands, for completion
/// scripts: clap_complete offers hidden subcommands as candidates (and
/// under `help`), so they are left out of the tree it is given. clap has
/// no way to remove a subcommand, so the root is built again from the
/// same parts.
pub(crate) fn completion_command() -> clap::Command {
    let full = full_command();
    let mut cmd = clap::Command::new("vault")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(full.is_propagate_version_set())
        .args(full.get_arguments().cloned())
        .subcommands(
            full.get_subcommands()
                .filter(|s| !is_internal(s.get_name()))
                .cloned(),
        );
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    if let Some(about) = full.get_long_about() {
        cmd = cmd.long_about(about.clone());
    }
    if let Some(after) = full.get_after_long_help() {
        cmd = cmd.after_long_help(after.clone());
    }
    cmd
}

/// `augment(cmd)` now if `full_command` asked for the whole tree, else
/// `deferred` (the same, keeping the texts) when clap reaches it.
fn lazily(
    cmd: clap::Command,
    augment: fn(clap::Command) -> clap::Command,
    deferred: fn(clap::Command) -> clap::Command,
) -> clap::Command {
    if EAGER.get() {
        augment(cmd)
    } else {
        cmd.defer(deferred)
    }
}

impl<T: FromArgMatches> FromArgMatches for Lazy<T> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Lazy)
    }

    fn from_arg_matches_mut(m: &mut ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(m).map(Lazy)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }

    fn update_from_arg_matches_mut(&mut self, m: &mut ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(m)
    }
}

impl<T: Args> Args for Lazy<T> {
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }

    fn augment_args(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_args, |cmd| {
            keeping_texts(cmd, T::augment_args)
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_args_for_update, |cmd| {
            keeping_texts(cmd, T::augment_args_for_update)
        })
    }
}

impl<T: Subcommand> Subcommand for Lazy<T> {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_subcommands, |cmd| {
            keeping_texts(cmd, T::augment_subcommands)
        })
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_subcommands_for_update, |cmd| {
            keeping_texts(cmd, T::augment_subcommands_for_update)
        })
    }

    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}

/// `augment(cmd)` with `cmd`'s help texts as they were. Built eagerly, a
/// variant's own texts (its doc comment, `after_long_help`) are set after
/// its type's and win; deferred, the type's come last, so they are put back.
fn keeping_texts(cmd: clap::Command, augment: fn(clap::Command) -> clap::Command) -> clap::Command {
    use clap::builder::{Resettable, StyledStr};
    let text = |t: Option<&StyledStr>| t.cloned().map_or(Resettable::Reset, Resettable::Value);
    let about = text(cmd.get_about());
    let long_about = text(cmd.get_long_about());
    let before = text(cmd.get_before_help());
    let before_long = text(cmd.get_before_long_help());
    let after = text(cmd.get_after_help());
    let after_long = text(cmd.get_after_long_help());
    augment(cmd)
        .about(about)
        .long_about(long_about)
        .before_help(before)
        .before_long_help(before_long)
        .after_help(after)
        .after_long_help(after_long)
}

/// Parses the command line like `Cli::try_parse`, and also records the order
/// of `run`'s and `shell`'s sources, which only the raw matches know.
pub(crate) fn parse() -> Result<Cli, clap::Error> {
    parse_from(std::env::args_os().collect())
}

fn parse_from(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    match narrowed(&args) {
        Some((matches, cli)) => Ok(with_sources(cli, &matches)),
        None => whole(&args),
    }
}

/// `parse_from` with the whole command tree.
fn whole(args: &[OsString]) -> Result<Cli, clap::Error> {
    let matches = empty_env_unset(Cli::command()).try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut Cli::command()))?;
    Ok(with_sources(cli, &matches))
}

/// `cli` with the order of its sources, from the `matches` it was read from.
fn with_sources(mut cli: Cli, matches: &ArgMatches) -> Cli {
    if let Some((_, sub)) = matches.subcommand() {
        match &mut cli.command {
            Command::Run(Lazy(RunArgs { env, .. }))
            | Command::Shell(Lazy(ShellArgs { env }))
            | Command::Redact(Lazy(RedactArgs { env }))
            | Command::Render(Lazy(RenderArgs { env, .. })) => {
                env.sources = ordered_sources(sub);
            }
            _ => {}
        }
    }
    cli
}

/// The command line parsed by a root that holds only the subcommand it
/// names, when that parse succeeds. Before parsing, clap copies every
/// global option into every subcommand of the root (20 subcommands, 8
/// options, and `--version`): half of clap's part of a `vault run`, 5% of
/// its instructions (BENCHMARKS.md, "Issue 20, follow-up 7").
///
/// A parse that succeeds here parses the same with the whole tree: the
/// root's options are the same, and the word where the subcommand goes
/// names the one subcommand kept. Anything else (help, `--version`, a
/// mistake, an option's value taken for the subcommand's name) is `None`,
/// and the whole tree parses it again, so that every message and every
/// suggestion is the whole tree's.
fn narrowed(args: &[OsString]) -> Option<(ArgMatches, Cli)> {
    let root = empty_env_unset(Global::augment_args(clap::Command::new("vault")));
    let name = subcommand_name(&root, args)?;
    let all = Command::augment_subcommands(clap::Command::new("vault"));
    let sub = all.find_subcommand(name)?.clone();
    let root = root.subcommand_required(true).subcommand(sub);
    let matches = root.try_get_matches_from(args).ok()?;
    let cli = Cli::from_arg_matches(&matches).ok()?;
    Some((matches, cli))
}

/// `cmd` without the environment variable of each option whose variable
/// is set but empty: `VAULT_FILE= vault run …` means "no VAULT_FILE", as
/// an unset variable does (for clap it was a `--vault` with no value, a
/// usage error naming an option the user never typed).
fn empty_env_unset(mut cmd: clap::Command) -> clap::Command {
    let empty: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| {
            a.get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| v.is_empty())
        })
        .map(|a| a.get_id().clone())
        .collect();
    for id in empty {
        cmd = cmd.mut_arg(id, |a| a.env(None));
    }
    cmd
}

/// The first word of `args` (after the program's name) that is neither an
/// option of `root` nor an option's value: where the subcommand's name
/// goes. Only a guess, which `narrowed` checks by parsing.
fn subcommand_name<'a>(root: &clap::Command, args: &'a [OsString]) -> Option<&'a OsString> {
    let takes_value = |arg: &clap::Arg| arg.get_action().takes_values();
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        let bytes = word.as_encoded_bytes();
        let option = if let Some(long) = bytes.strip_prefix(b"--") {
            if long.is_empty() || long.contains(&b'=') {
                continue;
            }
            root.get_arguments()
                .find(|a| a.get_long().is_some_and(|l| l.as_bytes() == long))
        } else if let Some(shorts) = bytes.strip_prefix(b"-") {
            // `-e ENV`; `-eENV` carries its value.
            match shorts {
                [] => return Some(word),
                [c] => root
                    .get_arguments()
                    .find(|a| a.get_short() == Some(char::from(*c))),
                _ => continue,
            }
        } else {
            return Some(word);
        };
        if option.is_some_and(takes_value) {
            words.next();
        }
    }
    None
}

/// `-s`, `--dotenv`, `--set` and `--local-env` values in the order they were
/// given, interleaved kinds included (`--set X=1 -s a --set X=2`).
fn ordered_sources(m: &ArgMatches) -> Vec<Source> {
    fn each<T: Clone + Send + Sync + 'static>(
        m: &ArgMatches,
        id: &str,
        make: impl Fn(T) -> Source,
        out: &mut Vec<(usize, Source)>,
    ) {
        if let (Some(idx), Some(vals)) = (m.indices_of(id), m.get_many::<T>(id)) {
            out.extend(idx.zip(vals.cloned().map(make)));
        }
    }
    let mut out = vec![];
    each(m, "secret", Source::Secret, &mut out);
    each(m, "dotenv", Source::Dotenv, &mut out);
    each(m, "dotenv_name", Source::DotenvName, &mut out);
    each(m, "set", Source::Set, &mut out);
    each(m, "local_env", Source::LocalEnv, &mut out);
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Create a secret from KEY=VALUE pairs, prompts, stdin or files
    ///
    /// A bare KEY takes its value from a hidden prompt, or from stdin when stdin
    /// is not a terminal (only one bare KEY may read stdin: its value is all of
    /// stdin less one trailing newline). KEY=VALUE arguments win over file imports.
    /// An existing NAME (without --force) or a bad KEY is refused before any
    /// value is prompted for or read from stdin.
    #[command(after_long_help = EX_CREATE)]
    Create {
        /// The secret's name: letters, digits, `.`, `_`, `-`, starting with a letter or digit; at most 64
        name: String,
        /// KEY=VALUE, or a bare KEY whose value is prompted for or read from stdin
        #[arg(value_name = "KEY[=VALUE]")]
        pairs: Vec<SetArg>,
        /// Take keys from a dotenv file
        #[arg(long, value_name = "PATH")]
        from_dotenv: Option<PathBuf>,
        /// Take keys from a JSON object of strings (`-` reads stdin)
        #[arg(long, value_name = "PATH")]
        from_json: Option<PathBuf>,
        /// Prompt for the keys of a known service (`vault secret templates` lists them)
        #[arg(long, short = 't', value_name = "TEMPLATE")]
        template: Option<String>,
        /// Replace an existing secret of the same name
        #[arg(long)]
        force: bool,
    },

    /// List the service templates for `secret create --template`
    #[command(after_long_help = EX_TEMPLATES)]
    Templates {
        /// Print a JSON array of {name, description, keys: [{name, secret, default}]}
        #[arg(long)]
        json: bool,
    },

    /// List secrets: name, number of keys, created, updated, and ROTATE for
    /// those a removed member could read
    #[command(visible_alias = "ls")]
    #[command(after_long_help = EX_LIST)]
    List {
        /// Print a JSON array of {name, keys, created_at, updated_at, rotate_since}
        #[arg(long)]
        json: bool,
        /// Secrets of every environment, with an ENV column (`env` in --json)
        #[arg(long)]
        all_envs: bool,
    },

    /// Copy a secret into another environment, under the same name
    #[command(after_long_help = EX_COPY)]
    Copy {
        name: String,
        /// The environment to copy it to
        #[arg(long, value_name = "ENV")]
        to_env: String,
        /// Replace a secret of that name there
        #[arg(long)]
        force: bool,
    },

    /// Show a secret's keys, values masked unless --reveal
    #[command(after_long_help = EX_SHOW)]
    Show {
        name: String,
        /// Print the values instead of ********
        #[arg(long)]
        reveal: bool,
        /// Show version N (`vault secret history NAME` lists them) instead of the current one
        #[arg(long, value_name = "N")]
        rev: Option<i64>,
        /// Print {name, created_at, updated_at, entries: {KEY: value}}
        #[arg(long)]
        json: bool,
    },

    /// Add or change keys of an existing secret
    #[command(after_long_help = EX_SET)]
    Set {
        name: String,
        /// KEY=VALUE, or a bare KEY whose value is prompted for or read from stdin
        #[arg(value_name = "KEY[=VALUE]", required = true)]
        pairs: Vec<SetArg>,
    },

    /// Remove keys from a secret
    #[command(after_long_help = EX_UNSET)]
    Unset {
        name: String,
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },

    /// Rename a secret
    #[command(after_long_help = EX_RENAME)]
    Rename { old: String, new: String },

    /// List a secret's versions: number, time, author, and which keys changed
    ///
    /// Every change of a secret (set, unset, create --force, rename, rollback,
    /// generate, edit, import over it) makes a new version; the ten before the
    /// current one are kept. Values are never shown: `show NAME --rev N` does.
    #[command(after_long_help = EX_HISTORY)]
    History {
        name: String,
        /// Print a JSON array of {version, current, changed_at, changed_by,
        /// you, name, added, changed, removed, renamed_from}
        #[arg(long)]
        json: bool,
    },

    /// Undo changes: make a new version whose keys equal an earlier one
    #[command(after_long_help = EX_ROLLBACK)]
    Rollback {
        name: String,
        /// The version to go back to [default: the one before the current]
        #[arg(long, value_name = "N")]
        to: Option<i64>,
    },

    /// Edit a secret as a dotenv file in $VISUAL or $EDITOR (else vi)
    ///
    /// The file lives in a private directory on a tmpfs (/dev/shm or
    /// $XDG_RUNTIME_DIR) and is overwritten and removed afterwards. The keys
    /// added, changed and removed are listed (names only) and saved as a new
    /// version; a file that does not parse can be edited again.
    #[command(after_long_help = EX_EDIT)]
    Edit { name: String },

    /// Set keys to fresh random values (a rotation); creates NAME if needed
    ///
    /// Values come from the operating system's CSPRNG and are never printed.
    #[command(after_long_help = EX_GENERATE)]
    Generate {
        name: String,
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
        /// Characters per value
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=4096))]
        length: u16,
        /// alnum (A-Z a-z 0-9), hex (0-9 a-f), url (alnum, `-`, `_`), or
        /// ascii (every printable character but space)
        #[arg(long, value_enum, default_value_t = Chars::Alnum)]
        chars: Chars,
    },

    /// Clear the rotation mark of secrets whose values need no change
    ///
    /// `vault recipients remove` marks every secret for rotation (ROTATE in
    /// `secret list`, listed by `doctor`): the removed member could read its
    /// values. A new value for any existing key (set, generate, edit, import
    /// over it, rollback) clears the mark by itself; this clears it by hand,
    /// for values that are not sensitive or were rotated where they are used.
    #[command(after_long_help = EX_ROTATED)]
    Rotated {
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },

    /// Describe a key (shown by `show`); an empty TEXT removes the description
    #[command(after_long_help = EX_DESCRIBE)]
    Describe {
        name: String,
        key: String,
        text: String,
    },

    /// Delete secrets (asks on a terminal unless --yes)
    #[command(visible_alias = "rm")]
    #[command(after_long_help = EX_DELETE)]
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
        /// Do not ask; required when there is no terminal
        #[arg(long, short = 'y')]
        yes: bool,
        /// Succeed even if a named secret does not exist
        #[arg(long)]
        allow_missing: bool,
    },
}

// Examples: shown by `--help` and in the man pages' EXAMPLES section.
const EX_INIT: &str = "Examples:\n  vault init\n  age-keygen -o key.txt && VAULT_IDENTITY=key.txt vault init\n  vault init --vault ./secrets.vault\n";
const EX_SECRET: &str = "Examples:\n  vault secret create db PGHOST=localhost PGUSER=app PGPASSWORD\n  vault secret list\n  vault secret show db --reveal\n";
const EX_IMPORT: &str = "Examples:\n  vault import\n  vault import --all --dry-run\n  vault import ../api/.env --name api --force\n  vault import --from-json secrets.json\n";
const EX_UNLOCK: &str = "Examples:\n  vault unlock --timeout 2h\n  vault status\n";
const EX_LOCK: &str = "Examples:\n  vault lock\n";
const EX_STATUS: &str = "Examples:\n  vault status\n  vault status --json\n";
const EX_PASSWD: &str =
    "Examples:\n  vault passwd\n  vault passwd --new-passphrase-file ~/.vault-pass\n";
const EX_DOCTOR: &str = "Examples:\n  vault doctor\n";
const EX_RECIPIENTS: &str = "Examples:\n  vault recipients list\n  vault recipients add age1… --vault ./secrets.vault\n  vault recipients remove \"$(cat bob.pub)\"\n";
const EX_RECIPIENT: &str = "Examples:\n  vault recipient\n";
const EX_GIT_MERGE: &str = "Examples:\n  vault git setup --vault team.age    # once per clone: sets merge.vault.driver\n  VAULT_IDENTITY=key.txt git merge feature\n";
const EX_CONFLICTS: &str = "Examples:\n  vault conflicts list --vault team.age\n  vault conflicts resolve db PGPASSWORD --take theirs --vault team.age\n  vault conflicts resolve --all --take ours --vault team.age\n";
const EX_CONFLICTS_LIST: &str =
    "Examples:\n  vault conflicts list --vault team.age\n  vault conflicts list --json\n";
const EX_CONFLICTS_RESOLVE: &str = "Examples:\n  vault conflicts resolve db PGPASSWORD --take theirs\n  vault conflicts resolve prod/api --take base\n  vault conflicts resolve --all --take ours\n";
const EX_TRUST: &str = "Examples:\n  vault trust\n  vault trust --vault ./secrets.vault --yes\n";
const EX_EXPORT: &str = "Examples:\n  vault export\n  vault export db\n  vault export db stripe --format json\n  eval \"$(vault export db --format shell)\"\n  vault export db --format docker > db.env && docker run --env-file db.env IMAGE\n  vault export db --format k8s --k8s-name db-credentials | kubectl apply -f -\n  vault export db --format github    # in a GitHub Actions step\n";
const EX_RUN: &str = "Examples:\n  vault run -- npm start\n  vault run -s db -- psql\n  vault run -s prod/db --dotenv-name .env.local -- ./migrate\n  vault run --redact -s deploy -- ./deploy\n  vault run -s gcp --as-file GOOGLE_APPLICATION_CREDENTIALS -- gcloud auth list\n  vault run -s db --render config.tmpl=APP_CONFIG -- ./app\n  vault run -s db -s stripe --dotenv -- npm test\n  vault run -s db --require PGPASSWORD --clean-env -- ./migrate\n  vault run --set X=1 -s a --set X=2 --explain\n";
const EX_REDACT: &str = "Examples:\n  ./build.sh 2>&1 | vault redact -s deploy\n  vault redact -s db < app.log > app-redacted.log\n";
const EX_SHELL: &str = "Examples:\n  vault shell -s db\n";
const EX_RCP_LIST: &str = "Examples:\n  vault recipients list\n  vault recipients list --json\n";
const EX_RCP_ADD: &str = "Examples:\n  vault recipients add age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n  vault recipients add \"$(cat ~/.ssh/id_ed25519.pub)\"\n  vault recipients add -R team-keys.txt\n";
const EX_RCP_REMOVE: &str = "Examples:\n  vault recipients remove age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n";
const EX_CREATE: &str = "Examples:\n  vault secret create db PGHOST=localhost PGUSER=app PGPASSWORD\n  pass show db | vault secret create db PGPASSWORD\n  vault secret create api --from-dotenv .env --from-json extra.json\n  vault secret create pg --template postgres\n";
const EX_TEMPLATES: &str = "Examples:\n  vault secret templates\n";
const EX_LIST: &str =
    "Examples:\n  vault secret list\n  vault secret list --json\n  vault secret list --all-envs\n";
const EX_COPY: &str = "Examples:\n  vault secret copy db --to-env prod\n  vault -e prod secret copy db --to-env staging --force\n";
const EX_ENV: &str = "Examples:\n  vault env list\n  vault secret create -e prod db PGPASSWORD\n  vault run -e prod -- ./deploy\n";
const EX_ENV_LIST: &str = "Examples:\n  vault env list\n  vault env list --json\n";
const EX_PROJECT: &str = "Examples:\n  vault project init -s db --dotenv .env.local --require DATABASE_URL\n  vault project init --vault secrets.vault -e dev -s db\n";
const EX_ALLOW: &str = "Examples:\n  vault allow\n  vault allow ~/src/api/vault.toml\n";
const EX_DENY: &str = "Examples:\n  vault deny\n";
const EX_CHECK: &str =
    "Examples:\n  vault check\n  vault check -e prod\n  vault check --all-envs\n";
const EX_SHOW: &str = "Examples:\n  vault secret show db\n  vault secret show db --reveal --json\n  vault secret show db --rev 3 --reveal\n";
const EX_HISTORY: &str = "Examples:\n  vault secret history db\n  vault secret history db --json\n";
const EX_ROLLBACK: &str =
    "Examples:\n  vault secret rollback db\n  vault secret rollback db --to 3\n";
const EX_EDIT: &str = "Examples:\n  vault secret edit db\n  EDITOR=nano vault secret edit db\n";
const EX_GENERATE: &str = "Examples:\n  vault secret generate app SESSION_KEY\n  vault secret generate db PGPASSWORD --length 40 --chars url\n";
const EX_ROTATED: &str =
    "Examples:\n  vault secret rotated db\n  vault secret rotated -e prod db stripe\n";
const EX_GIT: &str = "Examples:\n  vault git setup --vault secrets.vault\n  git diff secrets.vault\n  git log -p -- secrets.vault\n  git merge feature    # runs `vault git merge`\n";
const EX_GIT_SETUP: &str = "Examples:\n  vault git setup --vault secrets.vault\n  vault git setup    # in a project whose vault.toml names the vault\n";
const EX_GIT_SHOW: &str = "Examples:\n  vault git show secrets.vault\n  git show HEAD~3:secrets.vault > old.vault && vault git show old.vault\n";
const EX_DESCRIBE: &str = "Examples:\n  vault secret describe db PGPASSWORD \"rotated by the DBA, ask #infra\"\n  vault secret describe db PGPASSWORD \"\"\n";
const EX_RENDER: &str = "Examples:\n  vault render config.yaml.tmpl -s db\n  vault render kubeconfig.tmpl -s k8s > /dev/null\n";
const EX_SET: &str = "Examples:\n  vault secret set db PGPORT=5433\n  vault secret set db PGPASSWORD < new-password.txt\n";
const EX_UNSET: &str = "Examples:\n  vault secret unset db PGPORT\n";
const EX_RENAME: &str = "Examples:\n  vault secret rename db db-staging\n";
const EX_DELETE: &str = "Examples:\n  vault secret delete db\n  vault secret delete old-1 old-2 --yes --allow-missing\n";
const EX_COMPLETIONS: &str = "Examples:\n  vault completions bash > ~/.local/share/bash-completion/completions/vault\n  vault completions zsh > ~/.zfunc/_vault\n  vault completions fish > ~/.config/fish/completions/vault.fish\n";
const EX_VAULT: &str = "Examples:\n  vault init\n  vault secret create db PGHOST=localhost PGUSER=app PGPASSWORD\n  vault run -s db -- psql\n  vault import --all\n  vault unlock --timeout 2h\n";

/// `90s`, `15m`, `2h`, `1h30m`, `7d`; a bare number is seconds. At most
/// `agent::MAX_TIMEOUT` (7 days), in checked arithmetic.
pub(crate) fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (use 90s, 15m, 2h or 1h30m)");
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let total = match t.parse::<u64>() {
        Ok(n) => n,
        Err(_) => {
            let mut total = 0u64;
            let mut digits = String::new();
            for c in t.chars() {
                if c.is_ascii_digit() {
                    digits.push(c);
                    continue;
                }
                let n: u64 = digits.parse().map_err(|_| bad())?;
                digits.clear();
                let unit = match c {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86400,
                    _ => return Err(bad()),
                };
                total = n
                    .checked_mul(unit)
                    .and_then(|v| total.checked_add(v))
                    .ok_or_else(bad)?;
            }
            if !digits.is_empty() {
                return Err(bad());
            }
            total
        }
    };
    if total == 0 {
        return Err(bad());
    }
    if total > crate::agent::MAX_TIMEOUT.as_secs() {
        return Err(format!(
            "`{text}` is longer than 7 days, the longest an agent may live"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        full_command().debug_assert();
    }

    /// Every subcommand's `-h`, `--help` and a usage error, built lazily
    /// as the command line reaches it, read exactly as with the whole tree
    /// built at once: the deferred parts keep the variants' own texts.
    #[test]
    fn deferred_commands_read_as_eager_ones() {
        fn paths(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            out.push(path.clone());
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                path.push(sub.get_name().to_string());
                paths(sub, path, out);
                path.pop();
            }
        }
        fn shown(cmd: clap::Command, argv: &[String]) -> String {
            match cmd.try_get_matches_from(argv) {
                Err(e) => format!("{:?}: {}", e.kind(), e.render()),
                Ok(_) => "parsed".to_string(),
            }
        }
        let mut all = vec![];
        paths(&full_command(), &mut vec![], &mut all);
        assert!(all.len() > 40, "{} commands", all.len());
        for path in all {
            for last in ["-h", "--help", "--no-such-flag"] {
                let argv: Vec<String> = ["vault".to_string()]
                    .into_iter()
                    .chain(path.iter().cloned())
                    .chain([last.to_string()])
                    .collect();
                assert_eq!(shown(Cli::command(), &argv), shown(full_command(), &argv));
            }
        }
    }

    /// A command line parsed with only the subcommand it names reads
    /// exactly as with the whole tree, and one that does not parse there
    /// (help, version, mistakes, an option's value that looks like a
    /// subcommand) gets the whole tree's answer, message included.
    #[test]
    fn a_narrowed_parse_reads_as_the_whole_tree() {
        fn shown(parsed: Result<Cli, clap::Error>) -> String {
            match parsed {
                Ok(cli) => format!("{cli:?}"),
                Err(e) => format!("{:?}: {}", e.kind(), e.render()),
            }
        }
        let narrowed_lines = [
            "vault run -s db -- env",
            "vault exec -s db -- env",
            "vault --vault-dir /v run -s a --set K=1 -s b --dotenv .env -- cmd --flag",
            "vault run --vault-dir /v --identity k.txt -s a -- cmd",
            "vault --vault-dir run run -s a -- true",
            "vault --vault-dir secret run -s a -- true",
            "vault --identity run secret list",
            "vault --no-project --env=staging run -s a -- true",
            "vault -e staging run -s a -- true",
            "vault -estaging --vault-dir /v --identity k run -s a -- true",
            "vault secret list",
            "vault secret ls",
            "vault secret show db",
            "vault --vault /f.age export db --format json",
            "vault init",
            "vault env ls",
        ];
        let whole_lines = [
            "vault",
            "vault --version",
            "vault -V",
            "vault --help",
            "vault run --help",
            "vault run --version",
            "vault help run",
            "vault run",
            "vault run -s",
            "vault run --no-such-flag",
            "vault rnu -s db -- env",
            "vault --bogus run -s a -- true",
            "vault -- run -s a -- true",
            "vault secret",
            "vault secret lst",
        ];
        for (line, narrowed_wanted) in narrowed_lines
            .iter()
            .map(|l| (l, true))
            .chain(whole_lines.iter().map(|l| (l, false)))
        {
            let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
            assert_eq!(narrowed(&args).is_some(), narrowed_wanted, "{line}");
            assert_eq!(
                shown(parse_from(args.clone())),
                shown(whole(&args)),
                "{line}"
            );
        }
    }

    #[test]
    fn debug_of_the_parsed_command_line_shows_no_value() {
        const CANARY: &str = "canary-7f3a9";
        for argv in [
            vec![
                "vault",
                "secret",
                "create",
                "db",
                "PGPASSWORD=canary-7f3a9",
                "BARE",
            ],
            vec!["vault", "secret", "set", "db", "K=canary-7f3a9"],
            vec!["vault", "secret", "set", "db", "canary-7f3a9"],
            vec!["vault", "run", "--set", "K=canary-7f3a9", "--", "env"],
        ] {
            let cli = Cli::try_parse_from(&argv).unwrap();
            let shown = format!("{cli:?} {cli:#?}");
            assert!(!shown.contains(CANARY), "{argv:?} shows its value: {shown}");
            assert!(shown.contains("SetArg("), "{shown}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        for bad in ["", "0", "0s", "m", "15x", "-1m", "1.5h", "15m3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_stop_at_seven_days_without_overflow() {
        assert_eq!(parse_duration("7d").unwrap(), crate::agent::MAX_TIMEOUT);
        assert_eq!(parse_duration("604800").unwrap(), crate::agent::MAX_TIMEOUT);
        assert_eq!(
            parse_duration("6d23h59m60s").unwrap(),
            crate::agent::MAX_TIMEOUT
        );
        for long in [
            "8d",
            "604801",
            "7d1s",
            "18446744073709551615",
            "18446744073709551615d",
            "213503982334601d",
            "99999999999999999999999",
            "99999999999999999999999s",
        ] {
            assert!(parse_duration(long).is_err(), "{long}");
        }
        assert!(
            parse_duration("8d")
                .unwrap_err()
                .contains("longer than 7 days")
        );
    }
}
