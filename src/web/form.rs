//! Forms: a posted `application/x-www-form-urlencoded` body, made into the JSON the domain's
//! forms read, and a record made back into a form's values.
//!
//! An input's name is the path the domain's field errors name (`legal_representative.email`,
//! `phones[1]`, `contacts[0].full_name`), so an error lands next to its input with no table
//! between them; a name ending in `[]` (checkboxes) collects every value into a list.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// A posted form's fields, in order.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// Decodes a urlencoded body, its first [`MAX_FIELDS`] fields (the body is bounded by
    /// [`super::MAX_FORM_BYTES`] before this runs).
    pub fn parse(body: &[u8]) -> Fields {
        Fields(
            form_urlencoded::parse(body)
                .take(MAX_FIELDS)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, or `""`.
    pub fn get(&self, name: &str) -> &str {
        (self.0.iter())
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        (self.0.iter())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The fields as the JSON object the domain's forms read, `skip` (the CSRF token, the
    /// submit button) left out. Scalars stay strings (empty ones too: an empty second e-mail
    /// clears it); elements of a list that were left empty at its end are dropped, so the
    /// three phone inputs of a form give the phones typed.
    pub fn to_json(&self, skip: &[&str]) -> Value {
        let mut root = Value::Object(Map::new());
        for (name, value) in &self.0 {
            if skip.contains(&name.as_str()) || name.len() > 128 {
                continue;
            }
            if let Some(list) = name.strip_suffix("[]") {
                if let Value::Object(map) = &mut root {
                    let entry = map
                        .entry(list.to_owned())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(items) = entry {
                        if !value.is_empty() {
                            items.push(Value::String(value.clone()));
                        }
                    }
                }
                continue;
            }
            if let Some(path) = parse_path(name) {
                set(&mut root, &path, Value::String(value.clone()));
            }
        }
        if let Value::Object(map) = &mut root {
            map.values_mut().for_each(trim_lists);
        }
        root
    }
}

/// One step of a field's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Most steps in a field's path: the deepest input of any form is `contacts[2].full_name`
/// (three). A name past it is ignored: a path sets up nested lists, and unbounded paths let one
/// post of a few hundred KiB build gigabytes (issue #21's review).
pub const MAX_PATH_STEPS: usize = 4;
/// Largest list index in a path: the form has three phones and three contacts.
pub const MAX_INDEX: usize = 3;
/// Most fields read from one form; the organisation form, the largest, has 36.
pub const MAX_FIELDS: usize = 128;

/// `a.b[2].c` as steps; `None` for a name that is not a path, longer than
/// [`MAX_PATH_STEPS`] or with an index past [`MAX_INDEX`].
fn parse_path(name: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for part in name.split('.') {
        let (key, rest) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        steps.push(Step::Key(key.to_owned()));
        let mut rest = rest;
        while let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            let index: usize = inner[..end].parse().ok().filter(|&i| i <= MAX_INDEX)?;
            steps.push(Step::Index(index));
            rest = &inner[end + 1..];
        }
        if !rest.is_empty() || steps.len() > MAX_PATH_STEPS {
            return None;
        }
    }
    Some(steps)
}

fn set(node: &mut Value, path: &[Step], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return;
    };
    let child = match first {
        Step::Key(key) => {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            let Value::Object(map) = node else { return };
            map.entry(key.clone()).or_insert(Value::Null)
        }
        Step::Index(index) => {
            if !node.is_array() {
                *node = Value::Array(Vec::new());
            }
            let Value::Array(items) = node else { return };
            if items.len() <= *index {
                items.resize(index + 1, Value::Null);
            }
            &mut items[*index]
        }
    };
    set(child, rest, value);
}

/// Whether a value holds nothing typed: null, `""`, or an object or list of such.
fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(map) => map.values().all(is_blank),
        Value::Array(items) => items.iter().all(is_blank),
        _ => false,
    }
}

/// Drops the empty ends of lists, and nested sections left wholly blank (an activation's
/// proof when none is needed).
fn trim_lists(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !(v.is_object() && is_blank(v)));
            map.values_mut().for_each(trim_lists);
        }
        Value::Array(items) => {
            while items.last().is_some_and(is_blank) {
                items.pop();
            }
            for item in items.iter_mut() {
                if item.is_null() {
                    *item = Value::String(String::new());
                }
                trim_lists(item);
            }
        }
        _ => {}
    }
}

/// A record's values by the input names a form gives them: the inverse of
/// [`Fields::to_json`] for strings (and numbers, shown as text).
pub fn flatten(value: &Value) -> HashMap<String, String> {
    fn walk(value: &Value, path: String, out: &mut HashMap<String, String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(value, path, out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{path}[{i}]"), out);
                }
            }
            Value::String(s) => {
                out.insert(path, s.clone());
            }
            Value::Number(n) => {
                out.insert(path, n.to_string());
            }
            Value::Bool(b) => {
                out.insert(path, b.to_string());
            }
            Value::Null => {}
        }
    }
    let mut out = HashMap::new();
    walk(value, String::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_build_the_json_the_domain_reads_and_empty_list_ends_are_dropped() {
        let body = b"csrf=x&nit=900123456-7&email_2=&phones%5B0%5D=6011234567&phones%5B1%5D=&phones%5B2%5D=&legal_representative.full_name=Ana&contacts%5B0%5D.email=a%40b.co&contacts%5B1%5D.email=&roles%5B%5D=operator&roles%5B%5D=auditor";
        let json = Fields::parse(body).to_json(&["csrf"]);
        assert_eq!(
            json,
            json!({
                "nit": "900123456-7",
                "email_2": "",
                "phones": ["6011234567"],
                "legal_representative": { "full_name": "Ana" },
                "contacts": [{ "email": "a@b.co" }],
                "roles": ["operator", "auditor"],
            })
        );
    }

    #[test]
    fn a_gap_in_a_list_stays_so_the_error_names_the_input_the_person_left_empty() {
        let json = Fields::parse(b"phones%5B0%5D=&phones%5B1%5D=601").to_json(&[]);
        assert_eq!(json, json!({ "phones": ["", "601"] }));
    }

    #[test]
    fn names_that_are_not_paths_are_ignored() {
        let json = Fields::parse(b"a%5B99%5D=1&b..c=2&%5B0%5D=3&d%5Bx%5D=4&e=5").to_json(&[]);
        assert_eq!(json, json!({ "e": "5" }));
    }

    #[test]
    fn a_post_cannot_build_more_than_a_form_holds() {
        // deep paths of large indexes: each ignored, whatever the body
        let deep = "a[0][0][1][2][3][3][3][3][3]=x&".repeat(4000);
        let fields = Fields::parse(deep.as_bytes());
        assert_eq!(fields.0.len(), MAX_FIELDS);
        assert_eq!(fields.to_json(&[]), json!({}));
        // the deepest a form goes is read; one step more is not
        let json =
            Fields::parse(b"contacts%5B3%5D.full_name=x&a.b.c.d.e=y&phones%5B4%5D=z").to_json(&[]);
        assert_eq!(
            json,
            json!({ "contacts": ["", "", "", { "full_name": "x" }] })
        );
        // at most MAX_FIELDS * (MAX_INDEX + 1)^MAX_PATH_STEPS slots, in practice a few
        let wide: String = (0..MAX_FIELDS).map(|i| format!("k{i}[3][3]=v&")).collect();
        let json = Fields::parse(wide.as_bytes()).to_json(&[]);
        assert_eq!(flatten(&json).len(), MAX_FIELDS * 7);
    }

    proptest! {
        #[test]
        fn flatten_then_parse_is_the_identity_on_string_records(
            record in proptest::collection::btree_map("[a-z_]{1,8}", "[a-zA-Z0-9 @.]{1,12}", 0..6),
            list in proptest::collection::vec("[a-z0-9]{1,6}", 0..4),
        ) {
            let mut value = serde_json::to_value(&record).unwrap();
            value["list_field"] = json!(list);
            value["nested"] = json!({ "inner": "x" });
            let fields: Vec<(String, String)> = flatten(&value).into_iter().collect();
            let back = Fields(fields).to_json(&[]);
            let mut expected = value.clone();
            if list.is_empty() {
                expected.as_object_mut().unwrap().remove("list_field");
            }
            prop_assert_eq!(back, expected);
        }

        #[test]
        fn any_body_parses_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Fields::parse(&body).to_json(&["csrf"]);
        }
    }
}
