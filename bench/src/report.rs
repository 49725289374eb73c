//! One workload's result: a readable table and one JSON line with the same figures.

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// Figures of one run, in the order they are shown.
#[derive(Debug)]
pub struct Report {
    workload: &'static str,
    proto: &'static str,
    params: Vec<(&'static str, Value)>,
    results: Vec<(&'static str, Value, &'static str)>,
}

impl Report {
    /// An empty report of `workload` over `proto`.
    pub fn new(workload: &'static str, proto: &'static str) -> Self {
        Self {
            workload,
            proto,
            params: Vec::new(),
            results: Vec::new(),
        }
    }

    /// Records a setting of the run.
    pub fn param(&mut self, name: &'static str, value: impl Into<Value>) -> &mut Self {
        self.params.push((name, value.into()));
        self
    }

    /// Records a figure with its unit (shown in the table only; the JSON key carries it).
    pub fn result(
        &mut self,
        name: &'static str,
        value: impl Into<Value>,
        unit: &'static str,
    ) -> &mut Self {
        self.results.push((name, value.into(), unit));
        self
    }

    /// Records a figure that may be unknown (no `--server-pid`): `null` in JSON, `-` in the table.
    pub fn maybe(
        &mut self,
        name: &'static str,
        value: Option<impl Into<Value>>,
        unit: &'static str,
    ) -> &mut Self {
        self.result(name, value.map_or(Value::Null, Into::into), unit)
    }

    /// Records p50, p99 and max of `hist` (microseconds) as milliseconds named `<prefix>_p50_ms`…
    pub fn latency(&mut self, names: [&'static str; 3], hist: &Histogram<u64>) -> &mut Self {
        let ms = |us: u64| round3(us as f64 / 1000.0);
        if hist.is_empty() {
            for name in names {
                self.result(name, Value::Null, "ms");
            }
            return self;
        }
        self.result(names[0], ms(hist.value_at_quantile(0.50)), "ms");
        self.result(names[1], ms(hist.value_at_quantile(0.99)), "ms");
        self.result(names[2], ms(hist.max()), "ms")
    }

    /// The JSON line: `{"workload","proto","params":{..},"results":{..}}`.
    pub fn to_json(&self) -> String {
        let params: Map<String, Value> = self
            .params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let results: Map<String, Value> = self
            .results
            .iter()
            .map(|(k, v, _)| ((*k).to_owned(), v.clone()))
            .collect();
        json!({
            "workload": self.workload,
            "proto": self.proto,
            "params": params,
            "results": results,
        })
        .to_string()
    }

    /// The readable table.
    pub fn to_table(&self) -> String {
        let settings: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect();
        let mut out = format!(
            "{} over {}: {}\n",
            self.workload,
            self.proto,
            settings.join(" ")
        );
        let width = self
            .results
            .iter()
            .map(|(k, _, _)| k.len())
            .max()
            .unwrap_or(0);
        for (name, value, unit) in &self.results {
            out.push_str(&format!("  {name:<width$}  {:>14} {unit}\n", plain(value)));
        }
        out
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rounds to three decimals, for readable JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `part / whole` rounded to three decimals, or `None` when either is unknown or `whole` is 0.
pub fn ratio(part: Option<u64>, whole: u64) -> Option<f64> {
    match part {
        Some(part) if whole > 0 => Some(round3(part as f64 / whole as f64)),
        _ => None,
    }
}

/// A histogram of microseconds, from 1 µs to 10 minutes at 3 significant figures.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds 1..600e6 at 3 figures are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_table_carry_the_same_figures() {
        let mut hist = latency_histogram();
        for us in [1000, 2000, 3000] {
            hist.record(us).expect("in range");
        }
        let mut report = Report::new("group", "native");
        report
            .param("receivers", 2)
            .result("lost", 0, "")
            .maybe("server_rss_mib", None::<f64>, "MiB")
            .latency(
                ["latency_p50_ms", "latency_p99_ms", "latency_max_ms"],
                &hist,
            );
        let line: Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        assert_eq!(line["workload"], "group");
        assert_eq!(line["params"]["receivers"], 2);
        assert_eq!(line["results"]["lost"], 0);
        assert_eq!(line["results"]["server_rss_mib"], Value::Null);
        let max = line["results"]["latency_max_ms"]
            .as_f64()
            .expect("a number");
        assert!((max - 3.0).abs() < 0.01, "{max}");
        let table = report.to_table();
        assert!(table.starts_with("group over native: receivers=2\n"));
        assert!(table.contains("lost"));
        assert!(!report.to_json().contains('\n'));
    }

    #[test]
    fn ratios_need_a_known_part_and_a_whole() {
        assert_eq!(ratio(Some(1), 3), Some(0.333));
        assert_eq!(ratio(None, 3), None);
        assert_eq!(ratio(Some(1), 0), None);
    }
}
