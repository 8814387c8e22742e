//! YAML as JSON values, built from yaml-rust2's parser events with bounds
//! that hostile input cannot pass: a nesting depth, and a budget for what
//! aliases expand to. yaml-rust2's own loader copies an anchored node at
//! every alias without a limit (a "billion laughs" file of a few hundred
//! bytes asks for gigabytes), and builds and drops its tree recursively
//! (a few hundred kilobytes of `[[[[` overflow the stack). Here every
//! limit ends in an error, which the audit reports with exit 2.

use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;
use yaml_rust2::Yaml;

/// Deeper than any manifest: a CronJob's container's probe's handler is
/// about 12 levels down.
pub(crate) const MAX_DEPTH: usize = 128;
/// How many nodes and bytes of text aliases may add in all: far beyond
/// what a manifest's anchors (Helm's, kustomize's) repeat, and a few tens
/// of megabytes at most.
pub(crate) const ALIAS_BUDGET: usize = 1_000_000;

/// YAML as JSON values, one per document: YAML 1.2, which takes JSON as it
/// is; aliases expanded, each a copy. How `--lifecycle-check-manifest`
/// reads the user's manifests, and how the generator's tests read the one
/// it writes. yaml-rust2 is the runtime's YAML reader, chosen with both
/// uses in mind: pure Rust, and a third of the build time of the libyaml
/// translation the alternatives bring.
pub(crate) fn read_yaml(text: &str) -> Result<Vec<Value>, String> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    loop {
        let (event, mark) = parser.next_token().map_err(|error| error.to_string())?;
        if event == Event::StreamEnd {
            return Ok(builder.documents);
        }
        builder.on_event(event).map_err(|error| {
            format!("{error} at line {} column {}", mark.line(), mark.col() + 1)
        })?;
    }
}

/// A collection being built, with the anchor it will be known by.
enum Open {
    Sequence(Vec<Value>, usize),
    /// The map so far and, between a key and its value, the key.
    Mapping(Map<String, Value>, Option<String>, usize),
}

#[derive(Default)]
struct Builder {
    documents: Vec<Value>,
    /// How many documents there were when the current one started.
    document_start: usize,
    open: Vec<Open>,
    /// Anchored nodes with their size (see [`size`]), at their id: the
    /// parser numbers anchors 1, 2, 3… as it meets them, so a vector
    /// indexed by id holds them without a hash map's code.
    anchors: Vec<Option<(Value, usize)>>,
    /// What aliases have added so far.
    aliased: usize,
}

impl Builder {
    fn on_event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart => self.document_start = self.documents.len(),
            Event::DocumentEnd => {
                // A document that ended with nothing built is empty.
                if self.documents.len() == self.document_start {
                    self.documents.push(Value::Null);
                }
            }
            Event::SequenceStart(anchor, _) => self.open(Open::Sequence(Vec::new(), anchor))?,
            Event::MappingStart(anchor, _) => {
                self.open(Open::Mapping(Map::new(), None, anchor))?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.open.pop() {
                    Some(Open::Sequence(items, anchor)) => (Value::Array(items), anchor),
                    Some(Open::Mapping(fields, _, anchor)) => (Value::Object(fields), anchor),
                    None => return Err("a collection's end without its start".to_owned()),
                };
                self.insert(value, anchor)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.as_ref())?;
                self.insert(value, anchor)?;
            }
            Event::Alias(id) => {
                let Some((value, cost)) = self.anchors.get(id).and_then(Option::as_ref) else {
                    return Err(format!("an alias to no anchor (id {id})"));
                };
                self.aliased = self.aliased.saturating_add(*cost);
                if self.aliased > ALIAS_BUDGET {
                    return Err(format!(
                        "aliases expand to more than {ALIAS_BUDGET} nodes and bytes of text"
                    ));
                }
                let value = value.clone();
                self.insert(value, 0)?;
            }
        }
        Ok(())
    }

    fn open(&mut self, collection: Open) -> Result<(), String> {
        if self.open.len() >= MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        self.open.push(collection);
        Ok(())
    }

    /// A finished node: the next item of the collection it is in, a key,
    /// a key's value, or a document.
    fn insert(&mut self, value: Value, anchor: usize) -> Result<(), String> {
        if anchor > 0 {
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, None);
            }
            self.anchors[anchor] = Some((value.clone(), size(&value)));
        }
        match self.open.last_mut() {
            None => self.documents.push(value),
            Some(Open::Sequence(items, _)) => items.push(value),
            Some(Open::Mapping(fields, key, _)) => match key.take() {
                Some(key) => {
                    fields.insert(key, value);
                }
                None => *key = Some(json_key(value)?),
            },
        }
        Ok(())
    }
}

/// What a copy of `value` costs: its nodes and the bytes of its text,
/// counted without recursion (the depth is bounded, but a copy's size is
/// what the budget is about).
fn size(value: &Value) -> usize {
    let mut total = 0usize;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        total = total.saturating_add(1);
        match value {
            Value::String(text) => total = total.saturating_add(text.len()),
            Value::Array(items) => pending.extend(items),
            Value::Object(fields) => {
                for (key, value) in fields {
                    total = total.saturating_add(key.len());
                    pending.push(value);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    total
}

/// A scalar as YAML 1.2's core schema reads it: quoted text is text; a
/// plain one may be a number, a boolean or null, or say so with a
/// `!!int`-like tag.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let core = tag
        .filter(|tag| tag.handle == "tag:yaml.org,2002:")
        .map(|tag| tag.suffix.as_str());
    let node = match (style, tag, core) {
        (TScalarStyle::Plain, None, _) => Yaml::from_str(&text),
        (TScalarStyle::Plain, Some(_), Some("bool")) => match text.as_str() {
            "true" | "True" | "TRUE" => Yaml::Boolean(true),
            "false" | "False" | "FALSE" => Yaml::Boolean(false),
            _ => return Err(format!("\"{text}\" is no !!bool")),
        },
        (TScalarStyle::Plain, Some(_), Some("int")) => match text.parse() {
            Ok(number) => Yaml::Integer(number),
            Err(_) => return Err(format!("\"{text}\" is no !!int")),
        },
        (TScalarStyle::Plain, Some(_), Some("float")) => Yaml::Real(text),
        (TScalarStyle::Plain, Some(_), Some("null")) => match text.as_str() {
            "~" | "null" => Yaml::Null,
            _ => return Err(format!("\"{text}\" is no !!null")),
        },
        _ => Yaml::String(text),
    };
    Ok(match node {
        Yaml::Null => Value::Null,
        Yaml::Boolean(value) => Value::Bool(value),
        Yaml::Integer(value) => Value::from(value),
        Yaml::Real(ref text) => node
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("the number {text} has no JSON form"))?,
        Yaml::String(text) => Value::String(text),
        other => return Err(format!("an unreadable node: {other:?}")),
    })
}

/// A map's key as JSON's string: a scalar as written (`8080: x` is the key
/// `"8080"`, as Kubernetes reads it).
fn json_key(key: Value) -> Result<String, String> {
    match key {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(value) => Ok(value.to_string()),
        Value::Null => Ok("null".to_owned()),
        Value::Array(_) | Value::Object(_) => Err("a map's key is not a scalar".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_as_yaml_1_2_s_core_schema() {
        let documents = read_yaml(
            "{ a: 1, b: '1', c: 1.5, d: true, e: ~, f: text, g: !!str 2, h: 0x10, 8080: x }\n---\n",
        )
        .unwrap();
        assert_eq!(
            documents,
            [
                serde_json::json!({
                    "a": 1, "b": "1", "c": 1.5, "d": true, "e": null, "f": "text",
                    "g": "2", "h": 16, "8080": "x",
                }),
                Value::Null,
            ]
        );
    }

    #[test]
    fn aliases_are_copies_of_their_anchors() {
        let documents = read_yaml("a: &probe { path: /livez }\nb: *probe\n").unwrap();
        assert_eq!(documents[0]["b"], serde_json::json!({ "path": "/livez" }));
    }

    #[test]
    fn nesting_deeper_than_the_cap_is_an_error_not_a_stack_overflow() {
        // Block sequences, two bytes a level (the scanner refuses flow
        // collections 256 deep on its own).
        let deep = |levels: usize| format!("{}x\n", "- ".repeat(levels));
        assert!(read_yaml(&deep(MAX_DEPTH)).is_ok());
        let error = read_yaml(&deep(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(
            error,
            format!(
                "nesting deeper than {MAX_DEPTH} levels at line 1 column {}",
                2 * MAX_DEPTH + 1
            )
        );
        // Far beyond what a recursive reader survives.
        assert!(read_yaml(&deep(1_000_000)).is_err());
    }

    #[test]
    fn aliases_that_expand_beyond_the_budget_are_an_error() {
        // A billion laughs: nine levels of ten aliases each.
        let mut yaml = "a0: &a0 [lol]\n".to_owned();
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            yaml.push_str(&format!(
                "a{level}: &a{level} [{}]\n",
                [previous.as_str(); 10].join(", ")
            ));
        }
        let error = read_yaml(&yaml).unwrap_err();
        assert!(
            error.starts_with(&format!(
                "aliases expand to more than {ALIAS_BUDGET} nodes and bytes of text at line "
            )),
            "{error}"
        );
        // A few levels of it are within the budget.
        let few: String = yaml
            .lines()
            .take(4)
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(read_yaml(&few).is_ok());
    }
}
