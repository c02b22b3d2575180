//! The report: one line `scenario NAME: key=value ...` per scenario as it ends, and the JSON
//! document (with the machine and the settings) at the end; the rounding of figures.

use serde_json::{json, Map, Value};

use crate::config::Config;

/// The scenario lines and the JSON document.
pub(crate) struct Report {
    json: bool,
    rows: Vec<(String, Map<String, Value>)>,
}

impl Report {
    pub fn new(json: bool) -> Report {
        Report {
            json,
            rows: Vec::new(),
        }
    }

    /// Prints and keeps one scenario's figures.
    pub fn line(&mut self, name: &str, fields: Map<String, Value>) {
        let text: Vec<String> = fields
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if n.is_f64() => format!("{k}={}", fmt_num(f)),
                    _ => format!("{k}={n}"),
                },
                other => format!("{k}={other}"),
            })
            .collect();
        let line = format!("scenario {name}: {}", text.join(" "));
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        self.rows.push((name.to_string(), fields));
    }

    /// The line of a group of scenarios that could not run: `scenario NAME: skipped=WHY`.
    pub fn skipped(&mut self, name: &str, why: &str) {
        let mut f = Map::new();
        f.insert("skipped".into(), Value::String(why.to_string()));
        self.line(name, f);
    }

    pub fn get(&self, name: &str, key: &str) -> Option<f64> {
        self.rows
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, f)| f.get(key))
            .and_then(Value::as_f64)
    }

    pub fn to_json(&self, config: &Config) -> Value {
        let scenarios: Vec<Value> = self
            .rows
            .iter()
            .map(|(name, fields)| {
                let mut object = Map::new();
                object.insert("scenario".into(), Value::String(name.clone()));
                object.extend(fields.clone());
                Value::Object(object)
            })
            .collect();
        json!({
            "machine": machine(),
            "config": {
                "smoke": config.smoke, "events": config.events, "commands": config.commands,
                "seed": config.seed, "lanes": config.lanes, "max_seconds": config.max_seconds,
                "repeat": config.repeat, "scenarios": config.scenarios,
                "postgres": config.postgres.is_some(), "pg_events": config.pg_events,
                "http_commands": config.http_commands, "http_clients": config.http_clients, "http_rate": config.http_rate,
                "exec_rate": config.exec_rate,
                "sse_subscribers": config.sse_subscribers, "sse_commands": config.sse_commands,
            },
            "scenarios": scenarios,
        })
    }
}

/// A figure rounded for reading: 3 significant digits below 1000, whole numbers above.
pub(crate) fn fmt_num(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else if value.abs() >= 0.1 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    }
}

/// Rounds to 4 significant decimals for the JSON.
pub(crate) fn round(value: f64) -> Value {
    let rounded = if value.abs() >= 100.0 {
        (value * 10.0).round() / 10.0
    } else {
        (value * 10_000.0).round() / 10_000.0
    };
    json!(rounded)
}

fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let mem_kib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "mem_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
    })
}
