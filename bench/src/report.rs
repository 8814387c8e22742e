//! The figures of a run and BENCHMARKS.md made from them.

use std::fmt::Write as _;

use crate::stats::{max, median, min};

/// One contender's line in a figure: a value per column per round.
pub struct Row {
    pub name: String,
    /// Per column, the value of each round.
    pub values: Vec<Vec<f64>>,
    /// Its first column's median as a ratio to its baselines', spelled out.
    pub ratios: String,
    pub note: String,
}

impl Row {
    pub fn new(name: impl Into<String>, columns: usize) -> Row {
        Row {
            name: name.into(),
            values: vec![Vec::new(); columns],
            ratios: String::new(),
            note: String::new(),
        }
    }

    /// The median over rounds of column `column`.
    pub fn median(&self, column: usize) -> f64 {
        median(&self.values[column])
    }

    /// Adds "R× NAME" to the ratios: this row's first column over `base`'s.
    pub fn ratio_to(&mut self, base: &Row, label: &str) {
        if self.name == base.name {
            return;
        }
        let ratio = self.median(0) / base.median(0);
        if !self.ratios.is_empty() {
            self.ratios.push_str(", ");
        }
        let _ = write!(self.ratios, "{ratio:.2}× {label}");
    }
}

/// A goal of the issue, judged on the medians of this run.
pub struct Goal {
    pub text: String,
    pub result: String,
    pub met: bool,
}

pub struct Figure {
    pub title: String,
    pub how: String,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    pub goals: Vec<Goal>,
    pub notes: Vec<String>,
}

impl Figure {
    pub fn new(title: &str, how: &str, columns: &[&str]) -> Figure {
        Figure {
            title: title.into(),
            how: how.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            goals: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&self, name: &str) -> &Row {
        self.rows
            .iter()
            .find(|row| row.name == name)
            .unwrap_or_else(|| panic!("no row {name}"))
    }

    pub fn goal(&mut self, text: &str, met: bool, result: String) {
        self.goals.push(Goal {
            text: text.into(),
            result,
            met,
        });
    }

    /// A goal `value ≥ factor × base` (`Bound::AtLeast`) or `≤`, spelled
    /// out as the ratio and both values in `unit`.
    pub fn goal_ratio(
        &mut self,
        text: &str,
        (value, base): (f64, f64),
        bound: Bound,
        factor: f64,
        unit: &str,
    ) {
        let met = match bound {
            Bound::AtLeast => value >= factor * base,
            Bound::AtMost => value <= factor * base,
        };
        let result = format!(
            "{:.2}× ({}{unit} against {}{unit})",
            value / base,
            number(value),
            number(base)
        );
        self.goal(text, met, result);
    }

    /// A goal `value ≤ base + slack`, spelled out as the difference and
    /// both values in `unit`.
    pub fn goal_plus(&mut self, text: &str, (value, base): (f64, f64), slack: f64, unit: &str) {
        let result = format!(
            "+{}{unit} ({}{unit} against {}{unit})",
            number(value - base),
            number(value),
            number(base)
        );
        self.goal(text, value <= base + slack, result);
    }
}

/// Which side of its bound a goal's value must be.
pub enum Bound {
    AtLeast,
    AtMost,
}

/// A value with three significant digits or so.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        "–".into()
    } else if value.abs() >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.abs().to_string();
        let mut grouped = String::new();
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(' ');
            }
            grouped.push(digit);
        }
        if rounded < 0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn cell(values: &[f64]) -> String {
    match values.len() {
        0 => "–".into(),
        1 => number(values[0]),
        _ => format!(
            "{} ({}–{})",
            number(median(values)),
            number(min(values)),
            number(max(values))
        ),
    }
}

/// What the document says about the run.
pub struct Context {
    pub command: String,
    pub machine: Vec<(String, String)>,
    pub rounds: usize,
    pub started: String,
    /// `commit abc1234`, and whether the tree had uncommitted changes.
    pub commit: String,
    pub minutes: f64,
}

pub fn markdown(context: &Context, figures: &[Figure], findings: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Figures of the probe path against what users would pick instead, and against the machine's floor, \
         all measured in one run of `{}` (started {}, {}, {:.1} minutes). Each figure is the median of {} \
         round(s), with the smallest and largest round in brackets; within a round every contender ran \
         side by side on the same machine. Goals are judged on medians. Regenerate with the command \
         above; nothing here is edited by hand but the section *What the profiles showed*.\n",
        context.command,
        context.started,
        context.commit,
        context.minutes,
        context.rounds
    );
    let _ = writeln!(out, "## Machine\n");
    for (key, value) in &context.machine {
        let _ = writeln!(out, "- {key}: {value}");
    }
    let _ = writeln!(out, "\n## Goals\n");
    let _ = writeln!(out, "| figure | goal | this run | met |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for figure in figures {
        for goal in &figure.goals {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                figure.title,
                goal.text,
                goal.result,
                if goal.met { "yes" } else { "**no**" }
            );
        }
    }
    for figure in figures {
        let _ = writeln!(out, "\n## {}\n\n{}\n", figure.title, figure.how);
        let _ = write!(out, "| contender |");
        for column in &figure.columns {
            let _ = write!(out, " {column} |");
        }
        let ratios = figure.rows.iter().any(|row| !row.ratios.is_empty());
        let notes = figure.rows.iter().any(|row| !row.note.is_empty());
        if ratios {
            let _ = write!(out, " ratio |");
        }
        if notes {
            let _ = write!(out, " note |");
        }
        let _ = write!(out, "\n| --- |");
        for _ in 0..figure.columns.len() + usize::from(ratios) + usize::from(notes) {
            let _ = write!(out, " --- |");
        }
        let _ = writeln!(out);
        for row in &figure.rows {
            let _ = write!(out, "| {} |", row.name);
            for values in &row.values {
                let _ = write!(out, " {} |", cell(values));
            }
            if ratios {
                let _ = write!(out, " {} |", row.ratios);
            }
            if notes {
                let _ = write!(out, " {} |", row.note);
            }
            let _ = writeln!(out);
        }
        for note in &figure.notes {
            let _ = writeln!(out, "\n{note}");
        }
    }
    let _ = writeln!(out, "\n## What the profiles showed\n\n{}", findings.trim());
    out
}
