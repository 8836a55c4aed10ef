//! The Grafana dashboards of `dashboards/grafana/`, read for the tests that check them
//! (against a sim export, against a real Prometheus).
//!
//! Not covered: validating them (the tests do that).

use std::collections::BTreeMap;
use std::path::Path;

/// Every `*.json` dashboard in `dir`, by file name; panics (it is test support) when one
/// cannot be read or parsed, naming it.
pub fn load(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries {
        let p = e.expect("a directory entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let name = p.file_name().map(|n| n.to_string_lossy().to_string());
            out.insert(name.unwrap_or_default(), v);
        }
    }
    out
}
