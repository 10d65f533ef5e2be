//! Scenario results: a human-readable table, then one JSON line to paste into notes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::stats::{Dist, fmt_ms};

/// Everything a scenario measured, printed the same way for every scenario.
#[derive(Debug, Default)]
pub struct Report {
    /// Scenario name (`switch`, `get`, ...), the JSON `scenario` field.
    pub scenario: String,
    /// The parameters the run used, in the order added.
    pub params: Vec<(String, Value)>,
    /// Scalar results (counts, rates, memory), in the order added.
    pub results: Vec<(String, Value)>,
    /// Latency-like distributions in nanoseconds, in the order added.
    pub dists: Vec<(String, Option<Dist>)>,
    /// Error counts by kind (HTTP status code or `io`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &str) -> Self {
        Report {
            scenario: scenario.to_string(),
            ..Report::default()
        }
    }

    /// Records a run parameter.
    pub fn param(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.params.push((key.to_string(), value.into()));
        self
    }

    /// Records a scalar result.
    pub fn result(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.results.push((key.to_string(), value.into()));
        self
    }

    /// Records a distribution (nanoseconds); `None` prints as "no samples".
    pub fn dist(&mut self, key: &str, dist: Option<Dist>) -> &mut Self {
        self.dists.push((key.to_string(), dist));
        self
    }

    /// Adds error counts (merging with what is there).
    pub fn add_errors(&mut self, errors: &BTreeMap<String, u64>) -> &mut Self {
        for (k, v) in errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== {}", self.scenario);
        let width = self
            .params
            .iter()
            .chain(&self.results)
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(0)
            .max(6);
        for (k, v) in &self.params {
            let _ = writeln!(out, "  {k:<width$}  {}", plain(v));
        }
        if !self.results.is_empty() {
            let _ = writeln!(out, "  --");
        }
        for (k, v) in &self.results {
            let _ = writeln!(out, "  {k:<width$}  {}", plain(v));
        }
        if !self.dists.is_empty() {
            let name_w = self.dists.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            let _ = writeln!(
                out,
                "  {:<name_w$}  {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   (ms)",
                "", "count", "p50", "p90", "p99", "p99.9", "max", "mean"
            );
            for (k, d) in &self.dists {
                match d {
                    Some(d) => {
                        let _ = writeln!(
                            out,
                            "  {k:<name_w$}  {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.3}",
                            d.count,
                            fmt_ms(d.p50),
                            fmt_ms(d.p90),
                            fmt_ms(d.p99),
                            fmt_ms(d.p999),
                            fmt_ms(d.max),
                            d.mean / 1e6
                        );
                    }
                    None => {
                        let _ = writeln!(out, "  {k:<name_w$}  no samples");
                    }
                }
            }
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "  errors: none");
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(out, "  errors: {}", list.join(" "));
        }
        out
    }

    /// The one-line JSON summary: `{"scenario": ..., params..., results..., dists..., "errors": {...}}`,
    /// keys in that order (so `grep '^{"scenario"'` finds it), later duplicates dropped.
    pub fn json_line(&self) -> String {
        let mut seen = std::collections::HashSet::new();
        let mut fields: Vec<(String, Value)> = vec![("scenario".into(), json!(self.scenario))];
        fields.extend(self.params.iter().chain(&self.results).cloned());
        fields.extend(
            self.dists
                .iter()
                .map(|(k, d)| (k.clone(), d.map_or(Value::Null, Dist::to_json_us))),
        );
        fields.push(("errors".into(), json!(self.errors)));
        let body: Vec<String> = fields
            .into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .map(|(k, v)| format!("{}:{v}", Value::String(k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// A JSON value as a table cell (strings without quotes).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_one_parseable_line_with_everything() {
        let mut r = Report::new("switch");
        r.param("concurrency", 64)
            .result("rps", 31234.5)
            .dist("latency", Dist::from_samples(vec![1_000, 2_000, 3_000]))
            .dist("empty", None);
        let mut e = BTreeMap::new();
        e.insert("409".to_string(), 2);
        r.add_errors(&e).add_errors(&e);
        let line = r.json_line();
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with(r#"{"scenario":"switch","concurrency":64,"rps":"#),
            "{line}"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["scenario"], "switch");
        assert_eq!(v["concurrency"], 64);
        assert_eq!(v["rps"], 31234.5);
        assert_eq!(v["latency"]["p50_us"], 2.0);
        assert_eq!(v["empty"], Value::Null);
        assert_eq!(v["errors"]["409"], 4);
    }

    #[test]
    fn table_shows_params_results_and_percentiles() {
        let mut r = Report::new("get");
        r.param("url", "http://127.0.0.1:1")
            .result("requests", 3)
            .dist("latency", Dist::from_samples(vec![1_500_000]));
        let t = r.table();
        assert!(t.starts_with("== get\n"));
        assert!(t.contains("http://127.0.0.1:1"), "{t}");
        assert!(
            !t.contains("\"http"),
            "strings are printed without quotes: {t}"
        );
        assert!(t.contains("1.500"), "{t}");
        assert!(t.contains("errors: none"), "{t}");
    }
}
