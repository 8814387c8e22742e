//! The generator's YAML writer.

/// `document` in YAML's block style: keys in the order of the JSON object,
/// a sequence's dashes at its key's indentation, a string plain only where
/// every YAML reader takes it for that string. Written here rather than
/// by a YAML library: the layout and the quoting are the README's, and
/// the emitters at hand leave some strings plain that Kubernetes' YAML 1.1
/// reads as numbers or booleans (`0b101`, `on`).
pub(super) fn to_yaml(document: &serde_json::Value) -> String {
    let mut yaml = String::new();
    write_block(&mut yaml, document, 0, false);
    yaml
}

/// `value` where a node starts: a non-empty map or sequence as a block of
/// lines `indent` columns in, its first line going on the current one
/// when `inline` (after a sequence's dash); anything else on the current
/// line.
fn write_block(yaml: &mut String, value: &serde_json::Value, indent: usize, inline: bool) {
    use serde_json::Value;
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 || !inline {
                    push_indent(yaml, indent);
                }
                write_string(yaml, key);
                yaml.push(':');
                match value {
                    Value::Object(fields) if !fields.is_empty() => {
                        yaml.push('\n');
                        write_block(yaml, value, indent + 2, false);
                    }
                    // Dashes at the key's indentation, as kubectl writes
                    // them.
                    Value::Array(items) if !items.is_empty() => {
                        yaml.push('\n');
                        write_block(yaml, value, indent, false);
                    }
                    _ => {
                        yaml.push(' ');
                        write_block(yaml, value, indent, true);
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 || !inline {
                    push_indent(yaml, indent);
                }
                yaml.push_str("- ");
                write_block(yaml, item, indent + 2, true);
            }
        }
        scalar => {
            match scalar {
                Value::Null => yaml.push_str("null"),
                Value::Bool(value) => yaml.push_str(if *value { "true" } else { "false" }),
                // JSON's digits, exponent and all, are YAML's too.
                Value::Number(number) => yaml.push_str(&number.to_string()),
                Value::String(text) => write_string(yaml, text),
                Value::Array(_) => yaml.push_str("[]"),
                Value::Object(_) => yaml.push_str("{}"),
            }
            yaml.push('\n');
        }
    }
}

fn push_indent(yaml: &mut String, indent: usize) {
    yaml.extend(std::iter::repeat_n(' ', indent));
}

/// A string as a key or a value. Plain when it is a letter or `/` and then
/// letters, digits, `.`, `_`, `/` and `-` only (`/livez`,
/// `prometheus.io/port`), unless it is one of YAML 1.1's booleans or null
/// in any case (`yes`, `On`, `n`, `NULL`): nothing else a reader could take
/// for a number, a boolean, a comment, a key or a tag. Otherwise
/// single-quoted (`'8081'`, `'True'`), and double-quoted with escapes when
/// it holds a character a single-quoted string cannot carry as it is (a
/// line break, a tab, a control character).
fn write_string(yaml: &mut String, text: &str) {
    const YAML_1_1_WORDS: [&str; 9] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !YAML_1_1_WORDS
            .iter()
            .any(|word| word.eq_ignore_ascii_case(text));
    if plain {
        yaml.push_str(text);
    } else if text.chars().all(single_quotable) {
        yaml.push('\'');
        yaml.push_str(&text.replace('\'', "''"));
        yaml.push('\'');
    } else {
        yaml.push('"');
        for c in text.chars() {
            match c {
                '"' => yaml.push_str("\\\""),
                '\\' => yaml.push_str("\\\\"),
                '\n' => yaml.push_str("\\n"),
                '\t' => yaml.push_str("\\t"),
                '\r' => yaml.push_str("\\r"),
                c if single_quotable(c) => yaml.push(c),
                c if u32::from(c) <= 0xff => yaml.push_str(&format!("\\x{:02x}", u32::from(c))),
                c if u32::from(c) <= 0xffff => yaml.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => yaml.push_str(&format!("\\U{:08x}", u32::from(c))),
            }
        }
        yaml.push('"');
    }
}

/// YAML's printable characters less its line breaks (YAML 1.1 counts
/// U+0085, U+2028 and U+2029 among them) and tab, and less the byte order
/// mark: what a single-quoted string carries as it is.
fn single_quotable(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::manifest::tests::from_yaml;

    /// Strings a YAML reader would take for something else if they went
    /// unquoted (a number, a boolean or null in YAML 1.2 or in Kubernetes'
    /// YAML 1.1, a comment, a key, a tag, an alias), or that plain YAML
    /// cannot carry, as a binary's name (the container's) could be.
    const AWKWARD: [&str; 52] = [
        "8081",
        "1e3",
        "0x1F",
        "0o17",
        "0b101",
        "017",
        "1_000",
        "+1",
        "-1",
        ".5",
        ".inf",
        "1:20",
        "2001-12-14",
        "true",
        "True",
        "yes",
        "on",
        "y",
        "No",
        "OFF",
        "null",
        "NULL",
        "~",
        "",
        " svc",
        "svc ",
        "a: b",
        "svc:",
        "#svc",
        "svc #1",
        "-svc",
        "- svc",
        "!svc",
        "&svc",
        "*svc",
        "?svc",
        "|",
        ">",
        "%svc",
        "@svc",
        "'svc'",
        "\"svc\"",
        "svc\\d",
        "line\nbreak",
        "tab\there",
        "line\n'single' \"double\" \\back",
        "nul\0",
        "\u{7f}\u{85}\u{2028}",
        "\u{feff}svc",
        "ünï-cödé",
        "[svc]",
        "{svc,2}",
    ];

    #[test]
    fn every_value_reads_back_as_written() {
        let document = json!({
            "names": &AWKWARD[..],
            "keyed": AWKWARD
                .iter()
                .map(|name| (name.to_string(), json!(name)))
                .collect::<serde_json::Map<_, _>>(),
            "plain": ["svc", "svc-2.0", "my_service", "/livez", "prometheus.io/port", "e1", "nan"],
            "numbers": [0, 1, 8081, i64::MAX, i64::MIN, 0.5, -1.5e300],
            "flags": [true, false],
            "nothing": null,
            "empty": { "list": [], "map": {} },
            "nested": [[1, [2, []]], [{ "a": [{ "b": "c", "d": [] }] }], { "e": {} }],
        });
        let yaml = to_yaml(&document);
        assert_eq!(from_yaml(&yaml), document, "{yaml}");
    }

    #[test]
    fn only_what_every_yaml_reader_takes_as_text_goes_unquoted() {
        let yaml = to_yaml(&json!({ "names": &AWKWARD[..] }));
        // YAML 1.2 reads these as strings, Kubernetes' YAML 1.1 as numbers,
        // booleans or a date: quoted all the same.
        for hazard in [
            "0b101",
            "1_000",
            "1:20",
            "2001-12-14",
            "y",
            "yes",
            "on",
            "No",
            "OFF",
        ] {
            assert!(
                yaml.contains(&format!("- '{hazard}'\n")),
                "{hazard}: {yaml}"
            );
        }
        for line in yaml.lines().skip(1) {
            let value = line.strip_prefix("- ").unwrap();
            assert!(value.starts_with(['\'', '"']), "unquoted: {line}");
        }
        let yaml = to_yaml(&json!({ "app.kubernetes.io/name": "svc", "path": "/livez" }));
        assert_eq!(yaml, "app.kubernetes.io/name: svc\npath: /livez\n");
    }
}
