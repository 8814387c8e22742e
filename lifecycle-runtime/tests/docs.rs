//! The crate docs are the guide on docs.rs and the README is the guide on
//! the repository: their tables must say the same. (The files are read at
//! test time; an `include_str!` of the README, outside the crate, would
//! break `cargo package`.)

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

/// The crate-level docs of `lib.rs`, as Markdown.
fn guide() -> String {
    read("src/lib.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
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
