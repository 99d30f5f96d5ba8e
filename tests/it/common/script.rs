//! The project's scripts that install or find a server the tests need (as CI runs them).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// Runs `scripts/{script} {arg}` and returns the binary path it prints last; fails saying which
/// script could not provide it.
pub fn binary(script: &str, arg: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(script);
    let out = Command::new(&path)
        .arg(arg)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", path.display()));
    assert!(out.status.success(), "{} {arg} failed: the server it provides is not installed", path.display());
    let text = String::from_utf8(out.stdout).unwrap();
    let bin = PathBuf::from(text.lines().last().expect("the script prints the binary's path").trim());
    assert!(bin.is_file(), "{} {arg} printed {}, which is not a file", path.display(), bin.display());
    bin
}
