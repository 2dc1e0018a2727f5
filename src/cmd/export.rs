//! `vault export`: secrets merged in order (later names win), rendered by
//! `dotenv` so that every format reads back to identical values.

use std::collections::BTreeMap;

use crate::{
    Context,
    cli::ExportFormat,
    dotenv,
    error::Result,
    names::{EnvKey, SecretName, SecretValue},
    store,
    vault::Vault,
};

pub fn run(ctx: &Context, names: &[String], format: ExportFormat) -> Result<()> {
    let names = names
        .iter()
        .map(|n| SecretName::parse(n))
        .collect::<Result<Vec<_>>>()?;
    let v = Vault::open(ctx)?;
    let mut merged: BTreeMap<EnvKey, SecretValue> = BTreeMap::new();
    for name in &names {
        merged.extend(store::entries(v.conn(), name)?);
    }
    let pairs: Vec<(&str, &str)> = merged
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    let text = zeroize::Zeroizing::new(match format {
        ExportFormat::Dotenv => dotenv::render_dotenv(&pairs),
        ExportFormat::Json => dotenv::render_json(&pairs),
        ExportFormat::Shell => dotenv::render_shell(&pairs),
    });
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| {
            crate::Error::new(format!(
                "cannot write to stdout: {}",
                crate::error::describe_io(&e)
            ))
        })
}
