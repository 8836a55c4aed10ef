//! Writing a [`Scenario`] back as TOML. (Being written.)

use super::Scenario;

impl Scenario {
    /// TOML that parses back to an equal scenario.
    pub fn to_toml(&self) -> String {
        format!("name = {:?}\n", self.name)
    }
}
