//! Shared helpers: locating and loading the shipped scenarios.

use sovereign_sim::Scenario;
use std::path::PathBuf;

/// The repository's `scenarios/` directory.
pub fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Load a shipped scenario by name (`baseline`, `storm`, ...).
pub fn load(name: &str) -> Scenario {
    let path = scenarios_dir().join(format!("{name}.toml"));
    sovereign_sim::scenario::parse_file(&path)
        .unwrap_or_else(|e| panic!("shipped scenario {name} must parse: {e}"))
}

/// The names of every shipped scenario, sorted.
pub fn shipped() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/ exists")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            if p.extension()? != "toml" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}
