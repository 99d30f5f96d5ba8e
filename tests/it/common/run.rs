//! One `inferbench run` of a catalog written to a temporary folder, and what it leaves under its
//! `--output`: the local-platform and Kubernetes tests drive the command the same way.

use std::{
    ffi::OsString,
    io::BufReader,
    path::PathBuf,
    process::{Child, ChildStdout, Command, Output, Stdio},
};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_inferbench");

/// A catalog (`t.pbtxt`) in a temporary folder, run into `output/` beside it.
pub struct Run {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, OsString)>,
}

impl Run {
    /// Writes `catalog`.
    pub fn new(catalog: &str) -> Run {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.pbtxt"), catalog).unwrap();
        Run { dir, args: vec![], env: vec![] }
    }

    /// Every command gets `args` (e.g. `--platform kube`) and the variable `key=value`.
    pub fn with(mut self, args: &[&str], env: &[(&str, OsString)]) -> Run {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self.env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        self
    }

    /// `inferbench run t.pbtxt --output OUT ARGS`, from the repository (for `catalog/`), without
    /// the run-id, dry-run and bucket variables a developer's shell may have set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("run")
            .arg(self.dir.path().join("t.pbtxt"))
            .args(["--output", self.out().to_str().unwrap()])
            .args(&self.args)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for v in ["INFERBENCH_RUN_ID", "run_id", "INFERBENCH_DRY_RUN", "dry_run", "INFERBENCH_GCS_BUCKET", "gcs_bucket"]
        {
            c.env_remove(v);
        }
        c
    }

    /// Runs to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Starts it, its stdout read line by line.
    pub fn spawn(&self, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
        let mut child = self.cmd(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        (child, out)
    }

    /// The temporary folder (the catalog, `output/`, anything a test puts beside them).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The `--output` folder.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    /// The only run folder (beside it: the history, `history.db`).
    pub fn run_dir(&self) -> PathBuf {
        let runs: Vec<PathBuf> =
            std::fs::read_dir(self.out()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs[0].clone()
    }

    /// Its run id.
    pub fn run_id(&self) -> String {
        self.run_dir().file_name().unwrap().to_str().unwrap().to_owned()
    }

    /// The folder of benchmark `name`.
    pub fn bench_dir(&self, name: &str) -> PathBuf {
        self.run_dir().join(format!("{name}-{}", self.run_id()))
    }

    /// `run.json`.
    pub fn run_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.run_dir().join("run.json")).unwrap()).unwrap()
    }
}

/// stdout then stderr.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
