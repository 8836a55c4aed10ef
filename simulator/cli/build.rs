//! Build script: records the git commit the binary was built from, for failure files and
//! `--version` (`SOVEREIGN_GIT_COMMIT`; "unknown" without git — the build never fails for
//! lack of it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Rebuild when `git_path` (as `git rev-parse --git-path` names it) changes, if it exists
/// (a missing file would make cargo rerun this script on every build).
fn watch(git_path: &str) {
    let Some(p) = git(&["rev-parse", "--git-path", git_path]) else {
        return;
    };
    let mut path = PathBuf::from(p);
    if path.is_relative() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        path = Path::new(&dir).join(path);
    }
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    watch("HEAD");
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&head_ref);
    }
    watch("packed-refs");
    println!("cargo:rustc-env=SOVEREIGN_GIT_COMMIT={commit}");
}
