//! The crate docs are the guide on docs.rs and the README is the guide on
//! the repository: their tables must say the same. (The files are read at
//! test time; an `include_str!` of the README, outside the crate, would
//! break `cargo package`.)

use std::collections::BTreeSet;
use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every Markdown table in `text`: runs of lines starting with `|`.
fn tables(text: &str) -> Vec<String> {
    let mut tables = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().chain([""]) {
        if line.trim_start().starts_with('|') {
            current.push(line.trim());
        } else if !current.is_empty() {
            tables.push(current.join("\n"));
            current.clear();
        }
    }
    tables
}

fn header(table: &str) -> &str {
    table.lines().next().unwrap_or_default()
}

/// The crate-level docs, as Markdown: the `//!` lines of `lib.rs` and
/// the `docs/*.md` files it includes, in order.
fn guide() -> String {
    read("src/lib.rs")
        .lines()
        .filter_map(|line| {
            if let Some(doc) = line.strip_prefix("//!") {
                return Some(doc.strip_prefix(' ').unwrap_or(doc).to_owned());
            }
            let included = line
                .strip_prefix("#![doc = include_str!(\"../")?
                .strip_suffix("\")]")?;
            Some(read(included))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_and_the_crate_docs_show_the_same_tables() {
    let readme = tables(&read("../README.md"));
    let guide = tables(&guide());
    // Attributes, runtime API, endpoints, configuration, exit codes, flags.
    assert!(guide.len() >= 6, "the guide lost its tables: {guide:#?}");
    for table in &guide {
        assert!(
            readme.contains(table),
            "this table of lifecycle-runtime's crate docs is not in README.md as is:\n{table}\n\nREADME tables with the same header:\n{:#?}",
            readme.iter().filter(|t| header(t) == header(table)).collect::<Vec<_>>()
        );
    }
    for table in &readme {
        for twin in guide.iter().filter(|t| header(t) == header(table)) {
            assert_eq!(
                table, twin,
                "README.md has a table like the crate docs' that says otherwise"
            );
        }
    }
}

#[test]
fn tables_are_read_whole() {
    let text = "intro\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n| c |\n| --- |\ntext";
    assert_eq!(
        tables(text),
        ["| a | b |\n| --- | --- |\n| 1 | 2 |", "| c |\n| --- |"]
    );
}

/// Each attribute macro's arguments, as its own docs list them (what
/// docs.rs shows on the re-exports): the `- `name …` bullets of its
/// `# Arguments` section.
fn documented_arguments() -> Vec<(String, BTreeSet<String>)> {
    let source = read("../lifecycle-macros/src/lib.rs");
    let mut macros = Vec::new();
    let mut docs: Vec<&str> = Vec::new();
    for line in source.lines() {
        if let Some(doc) = line.strip_prefix("///") {
            docs.push(doc.strip_prefix(' ').unwrap_or(doc));
        } else if let Some(rest) = line.strip_prefix("pub fn ") {
            let name = rest.split('(').next().unwrap().to_owned();
            let arguments = docs
                .iter()
                .skip_while(|line| **line != "# Arguments")
                .filter_map(|line| line.strip_prefix("- `"))
                .map(|bullet| {
                    bullet
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            macros.push((name, arguments));
            docs.clear();
        } else if !line.starts_with("#[") {
            docs.clear();
        }
    }
    macros
}

/// The arguments each macro's parser accepts: the string lists it checks
/// them against, in `register.rs` (by kind) and `service_main.rs`.
fn accepted_arguments(name: &str) -> BTreeSet<String> {
    let list = |text: &str| -> BTreeSet<String> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    if name == "service_main" {
        let source = read("../lifecycle-macros/src/service_main.rs");
        let start = source.find("const VALID_ARGS").expect("VALID_ARGS");
        let end = start + source[start..].find("];").unwrap();
        return list(&source[start..end]);
    }
    let source = read("../lifecycle-macros/src/register.rs");
    let valid = source
        .find("fn valid_args")
        .expect("fn valid_args in register.rs");
    let source = &source[valid..];
    let kind = match name {
        "liveness" => "Kind::Liveness =>",
        "readiness" | "startup" => "Kind::Readiness | Kind::Startup =>",
        "preflight" => "Kind::Preflight =>",
        _ => "Kind::OnStartup | Kind::OnShutdown =>",
    };
    let start = source
        .find(kind)
        .unwrap_or_else(|| panic!("{kind} in register.rs"));
    let end = start + source[start..].find(']').unwrap();
    list(&source[start..end])
}

/// The arguments the guide's (and so the README's) attribute table gives
/// each attribute, `crate` added (a sentence says every one takes it).
fn tabled_arguments() -> Vec<(String, BTreeSet<String>)> {
    let guide = guide();
    let table = tables(&guide)
        .into_iter()
        .find(|t| header(t).starts_with("| attribute |"))
        .expect("the guide's attribute table");
    let mut rows: Vec<(String, BTreeSet<String>)> = Vec::new();
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let name = cells[0]
            .trim_start_matches("| `#[")
            .trim_end_matches("]`")
            .to_owned();
        let named = |cell: &str| -> BTreeSet<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .filter(|word| !word.starts_with("#["))
                .map(str::to_owned)
                .collect()
        };
        let cell = cells[1];
        let mut arguments = if cell.starts_with("same as `#[") {
            let other = cell.split("#[").nth(1).unwrap().split(']').next().unwrap();
            rows.iter().find(|(n, _)| n == other).unwrap().1.clone()
        } else if let Some(plus) = cell.strip_prefix("same, plus ") {
            let mut above = rows.last().unwrap().1.clone();
            above.extend(named(plus));
            above
        } else {
            named(cell)
        };
        arguments.insert("crate".to_owned());
        rows.push((name, arguments));
    }
    rows
}

#[test]
fn every_attributes_arguments_agree_in_its_docs_its_parser_and_the_guides() {
    assert!(guide().contains("Every attribute also takes `crate = \"path\"`"));
    let documented = documented_arguments();
    let tabled = tabled_arguments();
    assert_eq!(documented.len(), 7, "{documented:?}");
    for (name, arguments) in &documented {
        assert_eq!(
            arguments,
            &accepted_arguments(name),
            "#[{name}]'s docs (lifecycle-macros/src/lib.rs, `# Arguments`) and the arguments its parser accepts"
        );
        let row = tabled.iter().find(|(n, _)| n == name);
        assert_eq!(
            Some(arguments),
            row.map(|(_, a)| a),
            "#[{name}]'s docs and the attribute table of the crate guide and README"
        );
    }
}
