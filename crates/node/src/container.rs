//! From a container spec to a local process: which program an image stands for, its argv with
//! `$(VAR)` expanded and mount paths rewritten to the pod's folders, its environment, and the
//! spawn itself (own process group, dies with the emulator, stdout+stderr to the log file).
//!
//! With `--real-vllm MODEL_DIR`, a vLLM image runs a real `vllm serve MODEL_DIR` with the
//! container's own flags ([`real_vllm`]): the model the pod asked for becomes the served model
//! name, so requests naming it match.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Stdio,
};

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret};
use kube::Api;

use crate::NoVllm;

/// Why a container cannot start (a waiting state's reason and message).
#[derive(Debug, Clone)]
pub struct Waiting {
    /// `ErrImagePull`, `CreateContainerConfigError`, ….
    pub reason: &'static str,
    /// Said to the user.
    pub message: String,
}

/// The pod's mounts: container path → host folder.
pub type Mounts = Vec<(String, PathBuf)>;

/// What a container runs, resolved.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment (the container's, plus PATH and HOME so tools are found).
    pub env: BTreeMap<String, String>,
    /// Mount paths, for exec commands and probes.
    pub mounts: Mounts,
}

/// What the emulator runs for which image.
#[derive(Debug, Clone, Copy)]
pub struct Programs<'a> {
    /// Image names (repository, or its last component) run as `binary`.
    pub ours: &'a [String],
    /// The inferbench program.
    pub binary: &'a Path,
    /// `--real-vllm MODEL_DIR`: vLLM images run a real `vllm serve` of this local model folder.
    pub real_vllm: Option<&'a Path>,
}

/// Environment variable naming the `vllm` program (else `vllm` on PATH).
pub const VLLM_ENV: &str = "INFERBENCH_VLLM";

/// Environment a real vLLM needs on this machine, unless the pod or the emulator's own
/// environment sets it: a CPU KV cache of 1 GiB, and no hub access (nothing can be downloaded;
/// the model is a local folder).
const REAL_VLLM_ENV: &[(&str, &str)] = &[
    ("VLLM_CPU_KVCACHE_SPACE", "1"),
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("VLLM_NO_USAGE_STATS", "1"),
    ("DO_NOT_TRACK", "1"),
];

/// Model servers the emulator stands in for with the simulator, by image repository.
const SIMULATED: &[(&str, &str)] = &[
    ("vllm/vllm-openai", "vllm"),
    ("vllm-openai", "vllm"),
    ("lmsysorg/sglang", "sglang"),
    ("huggingface/text-generation-inference", "tgi"),
];

/// The repository part of an image reference: no registry host, tag or digest.
pub fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    let no_tag = match no_digest[last_slash..].find(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    };
    // A first component with a '.' or ':' (or "localhost") is a registry host.
    match no_tag.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => rest,
        _ => no_tag,
    }
}

/// The argv a container runs as, before `$(VAR)` expansion and path rewriting.
pub fn program(c: &Container, programs: Programs<'_>, pod_ip: Ipv4Addr) -> Result<Vec<String>, Waiting> {
    let Programs { ours, binary, real_vllm: real } = programs;
    let image = c.image.clone().unwrap_or_default();
    // What a kubelet's reference parser refuses: empty, white space, upper case in the name.
    let name_part = image.split(['@', ':']).next().unwrap_or_default();
    if image.is_empty()
        || image.contains(char::is_whitespace)
        || name_part.rsplit('/').next().is_some_and(|n| n.chars().any(|ch| ch.is_ascii_uppercase()))
    {
        return Err(Waiting {
            reason: "InvalidImageName",
            message: format!(
                "Failed to apply default image tag {image:?}: couldn't parse image reference {image:?}: invalid reference format"
            ),
        });
    }
    let repo = repository(&image);
    let short = repo.rsplit('/').next().unwrap_or(repo);
    let args = c.args.clone().unwrap_or_default();
    let bin = binary.to_string_lossy().into_owned();
    if ours.iter().any(|o| o == repo || o == short) {
        let mut argv = vec![bin];
        // Only the inferbench program runs: a command naming another one (`sh -c …`) would run
        // it on the host, not in an image.
        if let Some([first, rest @ ..]) = c.command.as_deref() {
            if !first.ends_with("inferbench") {
                return Err(Waiting {
                    reason: "CreateContainerError",
                    message: format!(
                        "command {first:?}: the node emulator runs only the inferbench program of the inferbench image"
                    ),
                });
            }
            argv.extend(rest.iter().cloned());
        }
        argv.extend(args);
        // The simulator, and the load engine's live metrics, listen on the pod's own address, as
        // they would on the pod's interface (0.0.0.0 here is every pod's: a second load pod's
        // metrics port would be taken).
        match argv.get(1).map(String::as_str) {
            Some("sim") => set_flag(&mut argv, "--host", &pod_ip.to_string()),
            Some("load") if argv.iter().any(|a| a == "--metrics-address" || a.starts_with("--metrics-address=")) => {
                set_flag(&mut argv, "--metrics-address", &pod_ip.to_string());
            }
            _ => {}
        }
        return Ok(argv);
    }
    if let Some((_, kind)) = SIMULATED.iter().find(|(r, _)| repo.ends_with(r)) {
        if *kind == "vllm"
            && let Some(dir) = real
        {
            let not_here = |why: String| Waiting {
                reason: "ErrImagePull",
                message: format!(
                    "image {image}: the node emulator runs vLLM images as a real `vllm serve` (--real-vllm): {why}"
                ),
            };
            let vllm = vllm_program().map_err(|e| not_here(e.0))?;
            if !dir.join("config.json").is_file() {
                return Err(not_here(format!("{}: not a model folder (no config.json)", dir.display())));
            }
            return Ok(real_vllm(&args, &vllm, dir, pod_ip));
        }
        return Ok(simulated(kind, &args, &bin, pod_ip));
    }
    Err(Waiting {
        reason: "ErrImagePull",
        message: format!(
            "image {image} cannot run on the inferbench node emulator: it runs the inferbench image ({}) and simulates vLLM, SGLang and TGI images",
            ours.join(", ")
        ),
    })
}

/// The `vllm` program: `$INFERBENCH_VLLM`, else `vllm` on PATH.
pub fn vllm_program() -> Result<PathBuf, NoVllm> {
    if let Some(p) = std::env::var_os(VLLM_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(NoVllm(format!("{VLLM_ENV}={}: no such program", p.display()))) };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("vllm"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            NoVllm(format!("no vllm program: set {VLLM_ENV} or put vllm on PATH (scripts/real-vllm install)"))
        })
}

/// `vllm serve MODEL_DIR` with the container's flags, changed only where this machine needs it:
/// the model (`--model X` or a leading positional `X`) becomes the local folder, served as `X`
/// (unless `--served-model-name` says otherwise); `--host` is the pod's address; tensor, pipeline
/// and data parallelism are dropped (one CPU process); `--max-model-len` is capped at the
/// folder's `max_position_embeddings`; `--dtype bfloat16` and `--enforce-eager` (no graph
/// capture on a CPU) are added when not given. Every other flag is passed as written.
pub fn real_vllm(args: &[String], vllm: &Path, dir: &Path, pod_ip: Ipv4Addr) -> Vec<String> {
    const DROPPED: &[&str] =
        &["--tensor-parallel-size", "-tp", "--pipeline-parallel-size", "-pp", "--data-parallel-size", "-dp"];
    let limit: Option<u64> = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|c| c.get("max_position_embeddings")?.as_u64());
    let mut it = args.iter().map(String::as_str).peekable();
    // `vllm serve MODEL …` written as args (the image's entrypoint being `vllm`, or `vllm serve`).
    if it.peek() == Some(&"serve") {
        it.next();
    }
    let mut model = it.next_if(|a| !a.starts_with('-')).map(str::to_owned);
    let mut kept: Vec<String> = vec![];
    let (mut served, mut dtype, mut eager) = (false, false, false);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_owned())),
            _ => (a, None),
        };
        let rewritten = flag == "--model" || flag == "--host" || flag == "--max-model-len" || DROPPED.contains(&flag);
        if !rewritten {
            served |= flag == "--served-model-name";
            dtype |= flag == "--dtype";
            eager |= flag == "--enforce-eager";
            kept.push(a.to_owned());
            continue;
        }
        let value = inline.or_else(|| it.next_if(|n| !n.starts_with("--")).map(str::to_owned));
        match flag {
            "--model" => model = value.or(model),
            "--max-model-len" => {
                let asked = value.as_deref().and_then(|v| v.parse::<u64>().ok());
                let len = match (asked, limit) {
                    (Some(a), Some(l)) => Some(a.min(l).to_string()),
                    (Some(a), None) => Some(a.to_string()),
                    (None, _) => value,
                };
                if let Some(len) = len {
                    kept.extend(["--max-model-len".to_owned(), len]);
                }
            }
            _ => {} // --host (set below) and parallelism
        }
    }
    let mut argv = vec![vllm.to_string_lossy().into_owned(), "serve".into(), dir.to_string_lossy().into_owned()];
    argv.extend(kept);
    argv.extend(["--host".to_owned(), pod_ip.to_string()]);
    if let Some(m) = model.filter(|_| !served) {
        argv.extend(["--served-model-name".to_owned(), m]);
    }
    if !dtype {
        argv.extend(["--dtype".to_owned(), "bfloat16".to_owned()]);
    }
    if !eager {
        argv.push("--enforce-eager".into());
    }
    argv
}

/// `inferbench sim` with a model server's flags mapped (unknown flags are dropped with their
/// values: the simulator models the server, not its tuning knobs).
fn simulated(kind: &str, args: &[String], bin: &str, pod_ip: Ipv4Addr) -> Vec<String> {
    let (model_flags, port_flags, tp_flags): (&[&str], &[&str], &[&str]) = match kind {
        "sglang" => (&["--model-path", "--model"], &["--port"], &["--tp", "--tp-size", "--tensor-parallel-size"]),
        "tgi" => (&["--model-id"], &["--port"], &["--num-shard"]),
        _ => (&["--model"], &["--port"], &["--tensor-parallel-size", "-tp"]),
    };
    let mut argv = vec![bin.to_owned(), "sim".into(), "--host".into(), pod_ip.to_string()];
    let mut it = args.iter().peekable();
    let default_port = if kind == "tgi" { "80" } else { "8000" };
    let mut port = default_port.to_owned();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let takes_value = inline.is_none() && it.peek().is_some_and(|n| !n.starts_with("--"));
        let value = inline.or_else(|| if takes_value { it.next().cloned() } else { None });
        let Some(value) = value else { continue };
        if model_flags.contains(&flag) {
            argv.extend(["--model".into(), value]);
        } else if port_flags.contains(&flag) {
            port = value;
        } else if tp_flags.contains(&flag) {
            argv.extend(["--tensor-parallelism".into(), value]);
        } else if flag == "--served-model-name" {
            argv.extend(["--served-model-name".into(), value]);
        } else if flag == "--max-num-seqs" {
            argv.extend(["--max-num-seqs".into(), value]);
        }
    }
    argv.extend(["--port".into(), port]);
    argv
}

fn set_flag(argv: &mut Vec<String>, flag: &str, value: &str) {
    if let Some(i) = argv.iter().position(|a| a == flag) {
        if i + 1 < argv.len() {
            argv[i + 1] = value.to_owned();
        }
    } else if let Some(i) = argv.iter().position(|a| a.starts_with(&format!("{flag}="))) {
        argv[i] = format!("{flag}={value}");
    } else {
        argv.extend([flag.to_owned(), value.to_owned()]);
    }
}

/// Replaces `$(NAME)` with the variable's value (unknown names stay as written, as a kubelet does;
/// `$$` escapes a `$`).
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[i..i + 3 + end]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Rewrites an argument that names a mounted path (`/results/x`, `--out=/results`) to the host folder.
pub fn rewrite_path(arg: &str, mounts: &Mounts) -> String {
    let (prefix, path) = match arg.split_once('=') {
        Some((f, v)) if f.starts_with('-') => (format!("{f}="), v),
        _ => (String::new(), arg),
    };
    for (mount, host) in mounts {
        let mount = mount.trim_end_matches('/');
        if path == mount {
            return format!("{prefix}{}", host.display());
        }
        if let Some(rest) = path.strip_prefix(mount).and_then(|r| r.strip_prefix('/')) {
            return format!("{prefix}{}", host.join(rest).display());
        }
    }
    arg.to_owned()
}

/// The container's environment: `value` (with `$(VAR)` of earlier ones), `fieldRef`, ConfigMap
/// and Secret keys (a missing required one is a `CreateContainerConfigError`, retried).
pub async fn environment(
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
    pod_ip: Ipv4Addr,
    node: &str,
) -> Result<BTreeMap<String, String>, Waiting> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = BTreeMap::new();
    for var in c.env.iter().flatten() {
        if let Some(v) = env_value(client, pod, &ns, var, pod_ip, node, &env).await? {
            env.insert(var.name.clone(), v);
        }
    }
    Ok(env)
}

async fn env_value(
    client: &kube::Client,
    pod: &Pod,
    ns: &str,
    var: &EnvVar,
    pod_ip: Ipv4Addr,
    node: &str,
    env: &BTreeMap<String, String>,
) -> Result<Option<String>, Waiting> {
    let config_error =
        |message: String| Waiting { reason: "CreateContainerConfigError", message: format!("{}: {message}", var.name) };
    let Some(from) = &var.value_from else {
        return Ok(Some(expand(var.value.as_deref().unwrap_or_default(), env)));
    };
    if let Some(f) = &from.field_ref {
        let m = &pod.metadata;
        return Ok(Some(match f.field_path.as_str() {
            "metadata.name" => m.name.clone().unwrap_or_default(),
            "metadata.namespace" => ns.to_owned(),
            "metadata.uid" => m.uid.clone().unwrap_or_default(),
            "status.podIP" => pod_ip.to_string(),
            "status.hostIP" => "127.0.0.1".into(),
            "spec.nodeName" => node.to_owned(),
            "spec.serviceAccountName" => {
                pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_default()
            }
            other => return Err(config_error(format!("fieldRef {other} is not supported by the node emulator"))),
        }));
    }
    if let Some(r) = &from.config_map_key_ref {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let cm = api.get_opt(&r.name).await.map_err(|e| config_error(e.to_string()))?;
        let value = cm.and_then(|cm| cm.data).and_then(|d| d.get(&r.key).cloned());
        return match value {
            Some(v) => Ok(Some(v)),
            None if r.optional == Some(true) => Ok(None),
            None => Err(config_error(format!("configmap {:?} key {:?} not found", r.name, r.key))),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let s = api.get_opt(&r.name).await.map_err(|e| config_error(e.to_string()))?;
        let value =
            s.and_then(|s| s.data).and_then(|d| d.get(&r.key).map(|b| String::from_utf8_lossy(&b.0).into_owned()));
        return match value {
            Some(v) => Ok(Some(v)),
            None if r.optional == Some(true) => Ok(None),
            None => Err(config_error(format!("secret {:?} key {:?} not found", r.name, r.key))),
        };
    }
    Err(config_error("resourceFieldRef is not supported by the node emulator".into()))
}

/// Builds the container's launch: argv, environment, mounts.
pub async fn launch(
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    programs: Programs<'_>,
    pod_ip: Ipv4Addr,
    node: &str,
) -> Result<Launch, Waiting> {
    let argv = program(c, programs, pod_ip)?;
    let real_vllm = programs.real_vllm.is_some() && argv.get(1).is_some_and(|a| a == "serve");
    let mut env = environment(client, pod, c, pod_ip, node).await?;
    let mut mounts: Mounts = vec![];
    for m in c.volume_mounts.iter().flatten() {
        let Some(host) = volumes.get(&m.name) else {
            return Err(Waiting {
                reason: "CreateContainerConfigError",
                message: format!("volume {:?} is mounted but not defined", m.name),
            });
        };
        let host = match &m.sub_path {
            Some(p) if !p.is_empty() => host.join(p),
            _ => host.clone(),
        };
        mounts.push((m.mount_path.clone(), host));
    }
    // Longest mount path first, so /etc/a/b wins over /etc/a.
    mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    let argv = argv.iter().map(|a| rewrite_path(&expand(a, &env), &mounts)).collect();
    // What tools need from the host (PATH, HOME, hub caches, vLLM settings), never a token: a
    // pod's token comes from its own Secrets, as on a real node (a host's would hide a missing one).
    let host = |k: &str| {
        (k == "PATH" || k == "HOME" || k.starts_with("HF_") || k.starts_with("VLLM_"))
            && k != "HF_TOKEN"
            && k != "HUGGING_FACE_HUB_TOKEN"
    };
    for (k, v) in std::env::vars().filter(|(k, _)| host(k)) {
        env.entry(k).or_insert(v);
    }
    if real_vllm {
        for (k, v) in REAL_VLLM_ENV {
            env.entry((*k).to_owned()).or_insert_with(|| (*v).to_owned());
        }
    }
    Ok(Launch { argv, env, mounts })
}

/// Starts a process: its own process group (so the whole tree is stopped), killed if the
/// emulator dies, stdout and stderr appended to `log`.
pub fn spawn(l: &Launch, cwd: &Path, log: &Path) -> std::io::Result<tokio::process::Child> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let mut cmd = tokio::process::Command::new(&l.argv[0]);
    cmd.args(&l.argv[1..])
        .env_clear()
        .envs(&l.env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Signals a process group.
pub fn signal_group(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the group; no memory is touched.
    unsafe {
        libc::kill(-(pid as i32), sig);
    }
}

/// Whether a process of group `pgid` is still alive (not a zombie), from /proc.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    dir.flatten().any(|e| {
        if !e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            return false;
        }
        // "pid (comm) state ppid pgrp …": the fields after the command's last ')'.
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { return false };
        let Some((_, rest)) = stat.rsplit_once(") ") else { return false };
        let mut f = rest.split(' ');
        let (state, _ppid, pgrp) = (f.next(), f.next(), f.next());
        state != Some("Z") && state != Some("X") && pgrp.and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
    })
}

/// Kills what is left of the container's process group and waits (at most `limit`) until none of
/// it is alive: a process killed with a large address space (a model server's) takes a moment to
/// go, and a kubelet reports a container stopped only once it is.
pub async fn kill_group(pgid: u32, limit: std::time::Duration) {
    signal_group(pgid, libc::SIGKILL);
    let deadline = tokio::time::Instant::now() + limit;
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_drops_registry_tag_and_digest() {
        assert_eq!(repository("inferbench:0.1.0"), "inferbench");
        assert_eq!(repository("ghcr.io/acme/inferbench:1"), "acme/inferbench");
        assert_eq!(repository("vllm/vllm-openai@sha256:abc"), "vllm/vllm-openai");
        assert_eq!(repository("localhost:5000/x/y:tag"), "x/y");
        assert_eq!(
            repository("ghcr.io/huggingface/text-generation-inference:latest"),
            "huggingface/text-generation-inference"
        );
    }

    #[tokio::test]
    async fn killing_a_group_waits_until_its_every_process_is_gone() {
        // A shell whose child outlives it, and ignores SIGTERM.
        let l = Launch {
            argv: ["sh", "-c", "trap '' TERM; sleep 30 & echo started; wait"].map(String::from).into(),
            env: std::env::vars().filter(|(k, _)| k == "PATH").collect(),
            mounts: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut child = spawn(&l, dir.path(), &log).unwrap();
        let pid = child.id().unwrap();
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("started") {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(group_alive(pid));
        signal_group(pid, libc::SIGTERM);
        kill_group(pid, std::time::Duration::from_secs(10)).await;
        assert!(!group_alive(pid), "the group is gone, the sleeping child too");
        let _ = child.wait().await;
    }

    #[test]
    fn expand_follows_kubelet_rules() {
        let env = BTreeMap::from([("POD_IP".to_owned(), "127.0.1.2".to_owned())]);
        assert_eq!(expand("$(POD_IP):9090", &env), "127.0.1.2:9090");
        assert_eq!(expand("$(NOPE)-$$(POD_IP)-$", &env), "$(NOPE)-$(POD_IP)-$");
    }

    #[test]
    fn paths_under_mounts_are_rewritten() {
        let mounts = vec![("/results".to_owned(), PathBuf::from("/tmp/p/results"))];
        assert_eq!(rewrite_path("/results", &mounts), "/tmp/p/results");
        assert_eq!(rewrite_path("--out=/results/a.json", &mounts), "--out=/tmp/p/results/a.json");
        assert_eq!(rewrite_path("/resultsx", &mounts), "/resultsx");
    }

    #[test]
    fn a_real_vllm_serves_the_local_folder_under_the_asked_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"max_position_embeddings": 2048}"#).unwrap();
        let args: Vec<String> = [
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--model",
            "meta-llama/Llama-2-7b-hf",
            "--tensor-parallel-size",
            "2",
            "--max-num-seqs",
            "2048",
            "--max-model-len=4096",
            "--enable-prefix-caching",
        ]
        .map(String::from)
        .into();
        let ip = Ipv4Addr::new(127, 0, 1, 7);
        let argv = real_vllm(&args, Path::new("/v/vllm"), dir.path(), ip);
        let d = dir.path().to_str().unwrap();
        assert_eq!(
            argv,
            [
                "/v/vllm",
                "serve",
                d,
                "--port",
                "8000",
                "--max-num-seqs",
                "2048",
                "--max-model-len",
                "2048",
                "--enable-prefix-caching",
                "--host",
                "127.0.1.7",
                "--served-model-name",
                "meta-llama/Llama-2-7b-hf",
                "--dtype",
                "bfloat16",
                "--enforce-eager"
            ]
        );
        // `vllm serve MODEL` as args, with the server's own name and settings kept.
        let args: Vec<String> =
            ["serve", "org/m", "--served-model-name", "x", "--dtype", "float32", "--max-model-len", "512"]
                .map(String::from)
                .into();
        let argv = real_vllm(&args, Path::new("/v/vllm"), dir.path(), ip);
        assert_eq!(
            argv[3..],
            [
                "--served-model-name",
                "x",
                "--dtype",
                "float32",
                "--max-model-len",
                "512",
                "--host",
                "127.0.1.7",
                "--enforce-eager"
            ]
        );
    }

    #[test]
    fn our_programs_listen_on_the_pods_own_address() {
        let c = |args: &[&str]| Container {
            image: Some("inferbench:dev".into()),
            args: Some(args.iter().map(|a| (*a).to_owned()).collect()),
            ..Default::default()
        };
        let programs = Programs { ours: &["inferbench".to_owned()], binary: Path::new("/bin/ib"), real_vllm: None };
        let ip = Ipv4Addr::new(127, 0, 1, 9);
        let load = program(&c(&["load", "--metrics-port", "9090", "--metrics-address", "0.0.0.0"]), programs, ip);
        assert_eq!(load.unwrap(), ["/bin/ib", "load", "--metrics-port", "9090", "--metrics-address", "127.0.1.9"]);
        let plain = program(&c(&["load", "--spec", "/s"]), programs, ip);
        assert_eq!(plain.unwrap(), ["/bin/ib", "load", "--spec", "/s"], "no metrics asked, none added");
        let sim = program(&c(&["sim", "--port", "8000"]), programs, ip);
        assert_eq!(sim.unwrap(), ["/bin/ib", "sim", "--port", "8000", "--host", "127.0.1.9"]);
    }

    #[test]
    fn vllm_flags_map_to_the_simulator() {
        let args: Vec<String> = [
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--model",
            "m/x",
            "--tensor-parallel-size=2",
            "--enable-prefix-caching",
            "--gpu-memory-utilization",
            "0.9",
        ]
        .map(String::from)
        .into();
        let argv = simulated("vllm", &args, "/bin/ib", Ipv4Addr::new(127, 0, 1, 5));
        assert_eq!(
            argv,
            ["/bin/ib", "sim", "--host", "127.0.1.5", "--model", "m/x", "--tensor-parallelism", "2", "--port", "8000"]
        );
    }
}
