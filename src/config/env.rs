//! `IMEIDB_*` environment overrides. Their names are derived from the keys of the default
//! file (`[store] block_cache_mb` is `IMEIDB_STORE_BLOCK_CACHE_MB`), so the two cannot drift
//! apart, and a misspelt variable is an error rather than silently ignored.

use toml::{Table, Value};

use super::raw::RawConfig;
use super::{CONFIG_ENV, ConfigError};

/// Every leaf key of the default config with its default value, as (`["store","data_dir"]`,
/// value): the source of truth for environment variable names and types.
pub(super) fn leaf_keys() -> Vec<(Vec<String>, Value)> {
    fn walk(prefix: &mut Vec<String>, table: &Table, out: &mut Vec<(Vec<String>, Value)>) {
        for (key, value) in table {
            prefix.push(key.clone());
            match value {
                Value::Table(t) => walk(prefix, t, out),
                leaf => out.push((prefix.clone(), leaf.clone())),
            }
            prefix.pop();
        }
    }
    let defaults = Table::try_from(RawConfig::default()).expect("the default config serialises");
    let mut out = Vec::new();
    walk(&mut Vec::new(), &defaults, &mut out);
    out
}

pub(super) fn env_name(path: &[String]) -> String {
    format!("IMEIDB_{}", path.join("_").to_ascii_uppercase())
}

pub(super) fn apply_env(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let keys = leaf_keys();
    for (name, raw) in env {
        if !name.starts_with("IMEIDB_") || name == CONFIG_ENV {
            continue;
        }
        let Some((path, default)) = keys.iter().find(|(path, _)| env_name(path) == name) else {
            let known: Vec<String> = keys.iter().map(|(p, _)| env_name(p)).collect();
            return Err(ConfigError::Env {
                name,
                problem: format!("no such setting; known: {}, {CONFIG_ENV}", known.join(", ")),
            });
        };
        let env_err = |problem: String| ConfigError::Env {
            name: name.clone(),
            problem,
        };
        let value = match default {
            Value::String(_) => Value::String(raw),
            Value::Integer(_) => Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|_| env_err(format!("{raw:?} is not a whole number")))?,
            ),
            Value::Float(_) => Value::Float(
                raw.trim()
                    .parse()
                    .map_err(|_| env_err(format!("{raw:?} is not a number")))?,
            ),
            Value::Boolean(_) => Value::Boolean(
                raw.trim()
                    .parse()
                    .map_err(|_| env_err(format!("{raw:?} is not true or false")))?,
            ),
            Value::Array(_) if path.last().is_some_and(|k| k == "peers") => {
                return Err(env_err(
                    "the peer table cannot be set from the environment; write it in the config file".into(),
                ));
            }
            Value::Array(_) => Value::Array(
                raw.split(',')
                    .map(|s| Value::String(s.trim().to_owned()))
                    .collect(),
            ),
            Value::Datetime(_) | Value::Table(_) => {
                return Err(env_err("cannot be set from the environment".into()));
            }
        };
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        set(table, &path, value);
    }
    Ok(())
}

/// Sets `path` in `table`, creating intermediate tables.
pub(super) fn set(table: &mut Table, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut current = table;
    for key in parents {
        let entry = current
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        current = entry.as_table_mut().expect("just made a table");
    }
    current.insert((*last).to_owned(), value);
}
