//! Parsing `scenarios/*.toml`. (Being written.)

use super::Scenario;
use std::path::Path;

/// A scenario file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// The field path, e.g. `fault[2].target`.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

/// Parse a scenario file.
pub fn parse_file(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.display().to_string(),
        line: 0,
        field: String::new(),
        message: e.to_string(),
    })?;
    parse_str(&path.display().to_string(), &text)
}

/// Parse scenario text; `file` names it in errors.
pub fn parse_str(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let _ = text;
    Err(ScenarioError {
        file: file.to_string(),
        line: 0,
        field: String::new(),
        message: "parser not written yet".into(),
    })
}
