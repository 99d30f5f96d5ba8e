//! Snapshots: immutable once written, reused and verified on resume, tampering detected, and a
//! write that fails half-way leaves no half snapshot.

use std::{
    fs, io,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
};

use inferbench::snapshot::{self, Content, Outcome, SnapshotError, verify};

fn content(tag: &str) -> Content {
    Content {
        benchmark_pbtxt: format!("name: \"b\"\n# {tag}\n"),
        base_pbtxt: None,
        manifests: vec![("00-a.yaml".into(), format!("a: {tag}\n")), ("10-b.yaml".into(), "b: 2\n".into())],
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Entries of a folder, hidden ones included.
fn entries(p: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn a_written_snapshot_is_read_only_checksummed_and_checkable_with_sha256sum() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run1/b-run1");
    assert_eq!(snapshot::write(&dir, &content("x"), false).unwrap(), Outcome::Created);
    assert_eq!(entries(&dir), ["benchmark.pbtxt", "manifests"]);
    assert_eq!(entries(&dir.join("manifests")), ["00-a.yaml", "10-b.yaml", "SHA256SUMS"]);
    assert_eq!(mode(&dir.join("manifests")), 0o555);
    for f in ["benchmark.pbtxt", "manifests/00-a.yaml", "manifests/SHA256SUMS"] {
        assert_eq!(mode(&dir.join(f)), 0o444, "{f}");
    }
    assert_eq!(snapshot::read_content(&dir).unwrap(), content("x"));
    let sums = fs::read_to_string(dir.join("manifests/SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 3);
    assert!(sums.ends_with("  ../benchmark.pbtxt\n"));
    // The coreutils tool agrees, where it exists.
    if let Ok(out) =
        std::process::Command::new("sha256sum").arg("-c").arg("SHA256SUMS").current_dir(dir.join("manifests")).output()
    {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    // Nothing else is left next to it.
    assert_eq!(entries(&out.path().join("run1")), ["b-run1"]);
}

#[test]
fn the_base_config_is_kept_checksummed_beside_the_benchmark() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b-r");
    let with_base = Content { base_pbtxt: Some("name: \"a\"\n".into()), ..content("x") };
    snapshot::write(&dir, &with_base, false).unwrap();
    assert_eq!(entries(&dir), ["base.pbtxt", "benchmark.pbtxt", "manifests"]);
    assert_eq!(mode(&dir.join("base.pbtxt")), 0o444);
    assert_eq!(snapshot::read_content(&dir).unwrap(), with_base);
    let sums = fs::read_to_string(dir.join("manifests/SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums.lines().map(|l| &l[66..]).collect();
    assert_eq!(listed, ["00-a.yaml", "10-b.yaml", "../benchmark.pbtxt", "../base.pbtxt"]);
    fs::set_permissions(dir.join("base.pbtxt"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(dir.join("base.pbtxt"), "name: \"edited\"\n").unwrap();
    assert!(verify(&dir).unwrap_err().to_string().contains("base.pbtxt does not match"));

    // A snapshot taken before bases were kept is reused as it is, and does not "differ" for that.
    let old = out.path().join("c-r");
    snapshot::write(&old, &content("x"), false).unwrap();
    assert_eq!(snapshot::write(&old, &with_base, false).unwrap(), Outcome::Reused { differs: false });
    assert!(!old.join("base.pbtxt").exists());
}

#[test]
fn an_existing_snapshot_is_verified_and_reused_never_overwritten() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b-r");
    snapshot::write(&dir, &content("x"), false).unwrap();
    assert_eq!(snapshot::write(&dir, &content("x"), false).unwrap(), Outcome::Reused { differs: false });
    // The catalog changed since: the snapshot wins and says so.
    assert_eq!(snapshot::write(&dir, &content("y"), false).unwrap(), Outcome::Reused { differs: true });
    assert_eq!(snapshot::read_content(&dir).unwrap(), content("x"));
    // Unless asked to replace it.
    assert_eq!(snapshot::write(&dir, &content("y"), true).unwrap(), Outcome::Replaced);
    assert_eq!(snapshot::read_content(&dir).unwrap(), content("y"));
    verify(&dir).unwrap();
    assert_eq!(entries(out.path()), ["b-r"], "the old snapshot is gone, nothing half-written remains");
}

#[test]
fn a_snapshot_with_results_is_never_replaced() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b-r");
    snapshot::write(&dir, &content("x"), false).unwrap();
    fs::create_dir(dir.join("results")).unwrap();
    let e = snapshot::write(&dir, &content("y"), true).unwrap_err();
    assert!(matches!(e, SnapshotError::HasResults { .. }), "{e}");
    assert_eq!(snapshot::read_content(&dir).unwrap(), content("x"));
}

fn writable(p: &Path) {
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn tampering_is_detected_and_names_the_file() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b-r");
    let m = dir.join("manifests");

    snapshot::write(&dir, &content("x"), false).unwrap();
    fs::set_permissions(m.join("00-a.yaml"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(m.join("00-a.yaml"), "a: changed\n").unwrap();
    let e = snapshot::write(&dir, &content("x"), false).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("snapshot was modified: {} does not match its checksum", m.join("00-a.yaml").display())),
        "{e}"
    );

    // An edited benchmark.pbtxt is caught too.
    fs::write(m.join("00-a.yaml"), "a: x\n").unwrap();
    verify(&dir).unwrap();
    fs::set_permissions(dir.join("benchmark.pbtxt"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(dir.join("benchmark.pbtxt"), "name: \"other\"\n").unwrap();
    assert!(verify(&dir).unwrap_err().to_string().contains("benchmark.pbtxt does not match"));
    fs::write(dir.join("benchmark.pbtxt"), content("x").benchmark_pbtxt).unwrap();

    // A manifest added or removed.
    writable(&m);
    fs::write(m.join("99-extra.yaml"), "x: 1\n").unwrap();
    let e = verify(&dir).unwrap_err().to_string();
    assert!(e.contains("99-extra.yaml is not listed in manifests/SHA256SUMS"), "{e}");
    fs::remove_file(m.join("99-extra.yaml")).unwrap();
    fs::remove_file(m.join("10-b.yaml")).unwrap();
    let e = verify(&dir).unwrap_err().to_string();
    assert!(e.starts_with("snapshot is incomplete: ") && e.contains("10-b.yaml"), "{e}");

    // --overwrite-snapshot repairs it.
    assert_eq!(snapshot::write(&dir, &content("x"), true).unwrap(), Outcome::Replaced);
    verify(&dir).unwrap();
}

#[test]
fn a_write_failing_half_way_leaves_no_snapshot_and_no_debris() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b-r");
    let n = AtomicUsize::new(0);
    let fail_third = |_: &Path| {
        if n.fetch_add(1, Ordering::SeqCst) == 2 { Err(io::Error::other("disk full (injected)")) } else { Ok(()) }
    };
    let e = snapshot::write_with(&dir, &content("x"), false, &fail_third).unwrap_err().to_string();
    assert!(e.contains("disk full (injected)"), "{e}");
    assert!(!dir.exists(), "no half snapshot");
    assert_eq!(entries(out.path()), Vec::<String>::new(), "temporary folder removed");

    // A failed replace keeps the old snapshot intact.
    snapshot::write(&dir, &content("x"), false).unwrap();
    let fail_first = |_: &Path| Err(io::Error::other("injected"));
    snapshot::write_with(&dir, &content("y"), true, &fail_first).unwrap_err();
    assert_eq!(snapshot::read_content(&dir).unwrap(), content("x"));
    verify(&dir).unwrap();
    assert_eq!(entries(out.path()), ["b-r"]);
}

#[test]
fn debris_of_a_crashed_writer_is_cleaned_up_by_the_next_write() {
    let out = tempfile::tempdir().unwrap();
    // A temp folder of a process that no longer exists (pid 4194304 is above Linux's pid_max).
    let stale = out.path().join(".b-r.tmp.4194304.0000abcd");
    fs::create_dir_all(stale.join("manifests")).unwrap();
    fs::write(stale.join("manifests/00-a.yaml"), "half").unwrap();
    fs::set_permissions(stale.join("manifests"), fs::Permissions::from_mode(0o555)).unwrap();
    snapshot::write(&out.path().join("b-r"), &content("x"), false).unwrap();
    assert_eq!(entries(out.path()), ["b-r"]);
}

#[test]
fn many_snapshots_at_once_one_failing_leaves_the_others_whole() {
    let out = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..20).map(|i| out.path().join(format!("b{i}-r"))).collect();
    let contents: Vec<_> = (0..20).map(|i| content(&i.to_string())).collect();
    let bad = dirs[7].clone();
    let hook = |p: &Path| {
        if p.parent()
            .and_then(Path::parent)
            .is_some_and(|d| d.starts_with(out.path()) && d.to_string_lossy().contains(".b7-r.tmp."))
        {
            Err(io::Error::other("injected"))
        } else {
            Ok(())
        }
    };
    let results = snapshot::write_all(dirs.iter().map(|d| d.as_path()).zip(&contents), false, &hook);
    assert_eq!(results.len(), 20);
    for (i, r) in results.iter().enumerate() {
        if dirs[i] == bad {
            assert!(r.as_ref().unwrap_err().to_string().contains("injected"));
            assert!(!bad.exists());
        } else {
            assert_eq!(*r.as_ref().unwrap(), Outcome::Created);
            assert_eq!(snapshot::read_content(&dirs[i]).unwrap(), contents[i]);
        }
    }
    assert_eq!(entries(out.path()).len(), 19, "no temporary folder left");
}

#[test]
fn results_appearing_during_an_overwrite_are_kept_with_their_snapshot() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b-r");
    snapshot::write(&dir, &content("x"), false).unwrap();
    // A run on the same run id finishes while the new snapshot is being staged.
    let results = dir.join("results");
    let finish_run = |_: &Path| {
        let _ = fs::create_dir_all(&results);
        fs::write(results.join("summary.json"), "{}")
    };
    let e = snapshot::write_with(&dir, &content("y"), true, &finish_run).unwrap_err();
    assert!(matches!(e, SnapshotError::HasResults { .. }), "{e}");
    assert_eq!(fs::read_to_string(dir.join("results/summary.json")).unwrap(), "{}");
    assert_eq!(snapshot::read_content(&dir).unwrap(), content("x"));
    assert_eq!(entries(out.path()), ["b-r"]);
}
