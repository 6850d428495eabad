//! The layering of `lib.rs`, checked: a test reads every `crate::` path in `src/` and fails
//! when a module names one of a layer above its own, or a module no layer lists. The rule
//! then cannot rot: a newcomer who adds an upward import, or a new module without placing it,
//! learns it from `cargo test` rather than from a cycle found a year later.

/// Each top-level module of the library and its layer: a module may use only modules of a
/// lower layer (and its own). Leaves that know nothing of the registry are layer 0.
pub const LAYERS: &[(&str, u8)] = &[
    ("imei", 0),
    ("imsi", 0),
    ("timefmt", 0),
    ("identity", 0),
    ("fields", 0),
    ("hex", 0),
    ("net", 0),
    ("metrics", 0),
    ("layering", 0),
    ("roles", 1),
    ("store", 1),
    ("audit", 2),
    ("accounts", 3),
    ("registry", 4),
    ("diameter", 5),
    ("replication", 5),
    ("config", 6),
    ("api", 7),
    ("web", 8),
    ("server", 9),
];

/// The layer of top-level module `name`.
pub fn layer(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|&(_, l)| l)
}

/// The top-level modules a file of Rust names through `crate::` (`crate::a::b`,
/// `crate::{a, b::{c, d}}`, a group over several lines as rustfmt wraps it), comments aside:
/// each with the index of the line where its `crate::` stands.
pub fn crate_paths(text: &str) -> Vec<(usize, String)> {
    // the code without its line comments, same length, so offsets stay the same
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => format!("{}{}\n", &line[..at], " ".repeat(line.len() - at)),
            None => format!("{line}\n"),
        })
        .collect();
    let line_of = |at: usize| code[..at].matches('\n').count();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(found_at) = code[from..].find("crate::") {
        let at = from + found_at;
        from = at + "crate::".len();
        let preceded = code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        if preceded {
            continue; // `$crate::`, `imeidb_crate::`
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // the group's items at its own depth, nested groups skipped over
            let (mut depth, mut item_start) = (0usize, 0usize);
            for (i, c) in group.char_indices() {
                let item_ends = match c {
                    '{' => {
                        depth += 1;
                        false
                    }
                    '}' if depth == 0 => true,
                    '}' => {
                        depth -= 1;
                        false
                    }
                    ',' => depth == 0,
                    _ => false,
                };
                if item_ends {
                    let item = &group[item_start..i];
                    let name = item.split("::").next().unwrap_or("").trim();
                    if !name.is_empty() && name != "self" {
                        let starts = item_start + (item.len() - item.trim_start().len());
                        found.push((line_of(from + 1 + starts), name.to_owned()));
                    }
                    item_start = i + 1;
                    if c == '}' {
                        break;
                    }
                }
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end > 0 {
                found.push((line_of(at), rest[..end].to_owned()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_module_uses_a_module_of_a_higher_layer() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut wrong = Vec::new();
        let mut checked = 0;
        for file in &files {
            let relative = file.strip_prefix(&src).unwrap();
            let top = relative.components().next().unwrap().as_os_str();
            let top = top.to_str().unwrap().trim_end_matches(".rs");
            if matches!(top, "lib" | "bin" | "layering") {
                // the root declares the modules, the binary sits above them all, and this
                // file's paths are test data
                continue;
            }
            let Some(own) = layer(top) else {
                wrong.push(format!(
                    "src/{}: module `{top}` is in no layer of src/layering.rs",
                    relative.display()
                ));
                continue;
            };
            let text = std::fs::read_to_string(file).unwrap();
            for (n, used) in crate_paths(&text) {
                let used = used.as_str();
                checked += 1;
                match layer(used) {
                    _ if used == top => {}
                    Some(theirs) if theirs < own => {}
                    Some(theirs) => wrong.push(format!(
                        "src/{}:{}: `{top}` (layer {own}) uses `crate::{used}` (layer {theirs}): \
                         a module uses only lower layers",
                        relative.display(),
                        n + 1
                    )),
                    None => wrong.push(format!(
                        "src/{}:{}: `crate::{used}` is in no layer of src/layering.rs",
                        relative.display(),
                        n + 1
                    )),
                }
            }
        }
        assert!(
            checked > 100,
            "only {checked} crate paths found: is the scan broken?"
        );
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    #[test]
    fn every_module_of_lib_rs_has_a_layer() {
        let lib = include_str!("lib.rs");
        let declared: Vec<&str> = lib
            .lines()
            .filter_map(|l| l.strip_prefix("pub mod "))
            .map(|l| l.trim_end_matches(';'))
            .collect();
        assert!(declared.len() > 10);
        for module in &declared {
            assert!(layer(module).is_some(), "`{module}` has no layer");
        }
        for (module, _) in LAYERS {
            assert!(
                declared.contains(module),
                "`{module}` is not a module of lib.rs"
            );
        }
    }

    #[test]
    fn reads_every_form_of_a_crate_path() {
        let names = |text: &str| -> Vec<String> {
            crate_paths(text)
                .into_iter()
                .map(|(line, name)| format!("{line}:{name}"))
                .collect()
        };
        assert_eq!(names("use crate::store::{List, Store};"), ["0:store"]);
        assert_eq!(
            names("use crate::{audit::Event, roles, self};"),
            ["0:audit", "0:roles"]
        );
        assert_eq!(
            names("let x = crate::timefmt::now_unix() + crate::imei::X;"),
            ["0:timefmt", "0:imei"]
        );
        assert!(names("// see crate::api").is_empty());
        assert!(names("$crate::x").is_empty());
        // a group nested, and a group wrapped over lines as rustfmt writes a long one
        assert_eq!(
            names("use crate::{a::{X, Y}, api::Z, b};"),
            ["0:a", "0:api", "0:b"]
        );
        assert_eq!(
            names(
                "use std::fmt;\nuse crate::{\n    audit::Event,\n    // not crate::web\n    api::{self, Reply},\n};\n"
            ),
            ["2:audit", "4:api"]
        );
    }
}
