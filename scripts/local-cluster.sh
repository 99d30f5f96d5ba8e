#!/usr/bin/env bash
# A real Kubernetes 1.20 control plane on this machine, with no containers and no Docker: etcd,
# kube-apiserver, kube-controller-manager and kube-scheduler as plain processes, every one on
# 127.0.0.1 only. For the kube platform's tests and for trying `--platform kube` without a cluster.
# There is no kubelet: pods are scheduled nowhere until a node emulator plays the node.
# (Facts behind the choices below: shared/design/local-cluster.md.)
#
#   scripts/local-cluster.sh up       install what is missing, build the control plane once, start
#                                     it, wait until it is ready; prints the `env` lines on stdout
#   scripts/local-cluster.sh env      `export KUBECONFIG=…` lines: eval "$(scripts/local-cluster.sh env)"
#   scripts/local-cluster.sh status   what runs (exit 0 when all four run, 1 otherwise)
#   scripts/local-cluster.sh down     stop what `up` started and drop etcd's data (next `up` is clean)
#
# Settings (environment):
#   LOCAL_CLUSTER_DIR        state: data, certs, tokens, logs, pids, `kubeconfig`, `cluster.env`
#                            (default <repo>/.cache/local-cluster; .cache/ is gitignored). Clusters in
#                            different state dirs run side by side: every port is picked free at `up`.
#   INFERBENCH_CACHE         where the built binaries are kept across checkouts
#                            (default ~/.cache/inferbench; binaries under k8s-1.20.2/bin/)
#   LOCAL_CLUSTER_TIMEOUT    seconds `up` waits for the control plane to be ready (default 60)
#
# The binaries are built from Debian's `kubernetes` source package (Debian ships only kubectl built),
# the only way to a control plane here from a package registry alone. Built once, about 5 minutes on
# 2 cores; later `up`s take seconds.
set -euo pipefail

K8S_VERSION=1.20.2
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Absolute: the state dir's path on a process's command line is how running_pid knows it as ours.
dir="$(realpath -m "${LOCAL_CLUSTER_DIR:-$root/.cache/local-cluster}")"
cache="${INFERBENCH_CACHE:-$HOME/.cache/inferbench}"
# r2: built with reflect2 1.0.2 (see ensure_binaries); r1 binaries crash under load.
k8s_cache="$cache/k8s-$K8S_VERSION-r2"
bin_dir="$k8s_cache/bin"
timeout_s="${LOCAL_CLUSTER_TIMEOUT:-60}"
stop_timeout_s=10 # per group of components in `down`, before KILL
components=(etcd apiserver controller-manager scheduler) # start order
kube_binaries=(kube-apiserver kube-controller-manager kube-scheduler)
reflect2_src=/usr/share/gocode/src/github.com/modern-go/reflect2

say() { echo "local-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  echo "usage: scripts/local-cluster.sh up | down | env | status" >&2
  exit 2
}

# Root runs apt directly; anyone else goes through sudo (the apt steps only happen when something
# is missing, so a machine set up once never asks).
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- Processes ------------------------------------------------------------------------------

pid_file() { echo "$dir/pids/$1.pid"; }

# A pid file holds "PID EXE": the pid and the real path of the program started. A component counts
# as running only if that pid is alive, still runs that program, and has this state dir on its
# command line: a pid reused by an unrelated process, or a cluster of another state dir, is never
# taken for ours (and so never killed by `down`). Prints the pid.
running_pid() {
  local file pid exe actual cmdline
  file="$(pid_file "$1")"
  [[ -f "$file" ]] || return 1
  read -r pid exe <"$file" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # readlink fails for a process that is gone or a zombie (no reaper may collect it here).
  actual="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  [[ "${actual% (deleted)}" == "$exe" ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$dir/"* ]] || return 1
  echo "$pid"
}

# Alive in the kernel's sense (a zombie has exited: it only waits to be reaped).
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

work=""    # the build's scratch folder while a build runs
started=() # components this `up` started, stopped again if it fails

# start NAME BINARY ARGS…: run detached (own session, so a Ctrl-C or a closed terminal of the
# caller does not reach it), output to its log. The lock fds are closed for the child: an inherited
# flock would otherwise stay held for the daemon's whole life and block the next `up`/`down`.
start() {
  local name="$1" bin="$2" exe log pid i
  shift 2
  exe="$(realpath "$bin")"
  log="$dir/logs/$name.log"
  : >"$log"
  setsid "$exe" "$@" </dev/null >>"$log" 2>&1 7>&- 8>&- 9>&- &
  pid=$!
  echo "$pid $exe" >"$(pid_file "$name")"
  started+=("$name")
  # setsid execs in the same pid (a background job of a script is no group leader, so it need not
  # fork); wait for the exec so that running_pid sees the program itself.
  for ((i = 0; i < 50; i++)); do
    running_pid "$name" >/dev/null && return 0
    alive "$pid" || break
    sleep 0.1
  done
  fail "$name"
}

# Stop what this `up` started, show the failing component's log, exit non-zero.
fail() {
  say "$1 failed to start; last lines of $dir/logs/$1.log:"
  tail -n 30 "$dir/logs/$1.log" >&2 || true
  stop_all
  exit 1
}

# Stop the recorded components: the three Kubernetes servers together (about 3 s), then etcd.
# etcd goes last because the apiserver's shutdown removes its lease from etcd and, with etcd gone,
# hangs retrying past any sensible wait. Only pids that pass running_pid are touched.
stop_all() {
  stop_group scheduler controller-manager apiserver
  stop_group etcd
  rm -f "$dir"/pids/*.pid
  started=()
}

# stop_group NAME…: TERM, wait (bounded), then KILL what is left (re-checked first: a pid may
# have been reused meanwhile) and wait for it to be gone.
stop_group() {
  local name pid i left
  local -a pids=()
  for name in "$@"; do
    if pid="$(running_pid "$name")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  ((${#pids[@]})) || return 0
  for ((i = 0; i < stop_timeout_s * 10; i++)); do
    left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  for name in "$@"; do
    if pid="$(running_pid "$name")"; then
      say "$name (pid $pid) still runs ${stop_timeout_s} s after TERM: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    fi
  done
}

# --- Ports ----------------------------------------------------------------------------------

picked=()

# A free TCP port below the kernel's ephemeral range (so that no outgoing connection and no
# "port 0" listener of another program can take it meanwhile), not listening on any address, and
# not already picked by this `up`. The caller holds the machine-wide port lock until its processes
# listen, so two `up`s at once never pick the same ports. free_port VAR sets VAR (not printed: a
# $(…) subshell would lose the record of picked ports).
free_port() {
  local low p tries
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  ((low > 11000)) || low=32768
  for ((tries = 0; tries < 200; tries++)); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % (low - 10000)))
    [[ " ${picked[*]} " == *" $p "* ]] && continue
    [[ -z "$(ss -Htln "sport = :$p")" ]] || continue
    picked+=("$p")
    printf -v "$1" '%s' "$p"
    return 0
  done
  die "no free port found"
}

# --- Install and build ----------------------------------------------------------------------

have_binaries() {
  local b
  for b in "${kube_binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || return 1; done
}

# apt-get update once per `up`, and only when something is to be installed.
apt_updated=0
apt_install() {
  apt_update
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
    >>"$apt_log" 2>&1 || { tail -n 20 "$apt_log" >&2; die "apt-get install failed (log: $apt_log)"; }
}

# apt's and dpkg's chatter goes to a log, shown when they fail.
apt_log="$cache/apt.log"
apt_update() {
  ((apt_updated)) && return 0
  mkdir -p "$cache"
  say "apt-get update"
  as_root apt-get update -q >>"$apt_log" 2>&1 ||
    { tail -n 20 "$apt_log" >&2; die "apt-get update failed (log: $apt_log)"; }
  apt_updated=1
}

# Tools every `up` needs (etcd, certificates, health checks, port picking).
ensure_runtime_tools() {
  local -a pkgs=()
  command -v etcd >/dev/null || pkgs+=(etcd-server)
  command -v openssl >/dev/null || pkgs+=(openssl)
  command -v curl >/dev/null || pkgs+=(curl ca-certificates)
  command -v ss >/dev/null || pkgs+=(iproute2)
  if ! command -v setsid >/dev/null || ! command -v flock >/dev/null; then pkgs+=(util-linux); fi
  ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
}

has_kubernetes_src() {
  local out
  out="$(apt-cache showsrc kubernetes 2>/dev/null)" || return 1
  [[ "$out" == *"Package: kubernetes"* ]]
}

# Prints the files that exist among its arguments (an unmatched glob or a missing sources.list
# is no error).
cat_existing() {
  local f
  for f in "$@"; do [[ -f "$f" ]] && cat "$f"; done
  return 0
}

# A deb-src entry for this release's own suite, copied from the apt source that already serves it
# (same archive, same key), so that `apt-get source` finds Debian's kubernetes tree.
ensure_deb_src() {
  local codename file
  has_kubernetes_src && return 0
  # shellcheck disable=SC1091
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  [[ -n "$codename" ]] || die "cannot tell the Debian release from /etc/os-release"
  file=/etc/apt/sources.list.d/inferbench-deb-src
  local deb822 oneline
  # deb822 stanzas (*.sources) whose Types has deb and Suites has the release itself.
  deb822="$(cat_existing /etc/apt/sources.list.d/*.sources | awk -v suite="$codename" '
    function flush() {
      if (deb && has && uris != "") {
        print "Types: deb-src"; print "URIs: " uris; print "Suites: " suite
        print "Components: " comps; if (signed != "") print "Signed-By: " signed; print ""
      }
      deb = 0; has = 0; uris = ""; comps = "main"; signed = ""
    }
    BEGIN { comps = "main" }
    /^[[:space:]]*$/ { flush(); next }
    /^#/ { next }
    { key = tolower($1) }
    key == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
    key == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has = 1 }
    key == "uris:" { uris = $2 }
    key == "components:" { comps = $2; for (i = 3; i <= NF; i++) comps = comps " " $i }
    key == "signed-by:" && NF == 2 { signed = $2 }
    key == "enabled:" && tolower($2) == "no" { deb = 0 }
    END { flush() }')"
  # One-line entries (sources.list, *.list): "deb [opts] URI SUITE COMPONENTS".
  oneline="$(cat_existing /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk -v suite="$codename" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == suite) { sub(/^deb/, "deb-src"); print; break } }')"
  if [[ -n "$deb822" ]]; then
    say "adding a deb-src entry for $codename: $file.sources"
    printf '%s\n' "$deb822" | as_root tee "$file.sources" >/dev/null
  elif [[ -n "$oneline" ]]; then
    say "adding a deb-src entry for $codename: $file.list"
    printf '%s\n' "$oneline" | as_root tee "$file.list" >/dev/null
  else
    die "no apt source serves '$codename': cannot add its deb-src entry"
  fi
  apt_updated=0 # the new entry's index is needed
  apt_update
  has_kubernetes_src ||
    die "apt knows no source package 'kubernetes' even with a deb-src entry"
}

# Build kube-apiserver, kube-controller-manager and kube-scheduler once; later calls find them.
# A flock serialises concurrent first `up`s: the second waits, then finds the binaries.
ensure_binaries() {
  have_binaries && return 0
  mkdir -p "$k8s_cache"
  exec 9>"$k8s_cache/build.lock"
  flock -n 9 || { say "another up is building the binaries: waiting for it"; flock 9; }
  if have_binaries; then exec 9>&-; return 0; fi

  local t0 src tarball log
  t0="$(now)"
  local -a pkgs=()
  # Debian's Go (1.19 on bookworm) is the one used, whatever else is on PATH: 1.20's tree is known
  # to build with it. Without rsync the code generators fail; jq is on the design notes' list of
  # what the build needs; make runs it.
  [[ -x /usr/lib/go/bin/go ]] || pkgs+=(golang-go)
  command -v rsync >/dev/null || pkgs+=(rsync)
  command -v jq >/dev/null || pkgs+=(jq)
  command -v make >/dev/null || pkgs+=(make)
  [[ -d "$reflect2_src" ]] || pkgs+=(golang-github-modern-go-reflect2-dev)
  ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
  ensure_deb_src

  work="$(mktemp -d "$k8s_cache/build.XXXXXX")"
  # The tree, its _output/ and the Go caches (2-3 GB) are dropped whatever happens.
  trap 'rm -rf "$work"' EXIT
  say "downloading Debian's kubernetes source package"
  # As root, apt's download sandbox user cannot write into this private folder: download as root
  # outright rather than have apt warn and fall back to it.
  (cd "$work" && apt-get source --download-only -qq -o APT::Sandbox::User=root kubernetes >&2)
  tarball="$(find "$work" -maxdepth 1 -name 'kubernetes_*.orig.tar.*' | head -n 1)"
  [[ -n "$tarball" ]] || die "apt-get source brought no kubernetes_*.orig.tar.* (got: $(ls "$work"))"
  mkdir "$work/src"
  tar -xf "$tarball" -C "$work/src"
  src="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  [[ -f "$src/Makefile" ]] || die "no Kubernetes tree in $tarball"
  # The cache is named after the version: never file another one under it.
  [[ "${src##*/}" == "kubernetes-$K8S_VERSION" ]] ||
    die "Debian's kubernetes source is ${src##*/}, not kubernetes-$K8S_VERSION: update K8S_VERSION"

  # Kubernetes 1.20 vendors github.com/modern-go/reflect2 1.0.1, whose unsafe map iteration
  # relies on Go runtime internals that changed in Go 1.18: built with Debian's Go 1.19, the
  # apiserver dies with "fatal error: fault" (SIGSEGV in mapiterinit, from json-iterator)
  # under load. 1.0.2 is the fix Kubernetes itself took; Debian packages it. Same API, so the
  # vendored copy is replaced file for file.
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -r "$reflect2_src" "$src/vendor/github.com/modern-go/reflect2"
  find "$src/vendor/github.com/modern-go/reflect2" -name '*_test.go' -delete

  # No .git in a source tarball: give the build its version, else the servers report v0.0.0.
  cat >"$work/version.env" <<EOF
KUBE_GIT_VERSION='v$K8S_VERSION'
KUBE_GIT_MAJOR='${K8S_VERSION%%.*}'
KUBE_GIT_MINOR='$(echo "$K8S_VERSION" | cut -d. -f2)'
KUBE_GIT_TREE_STATE='archive'
EOF

  log="$k8s_cache/build.log"
  say "building the control plane (once; about 5 min on 2 cores; log: $log)"
  local -a make_cmd=(env -u GOFLAGS -u GOROOT -u GOPATH -u GOBIN
    HOME="$work/home" PATH="/usr/lib/go/bin:$PATH" CGO_ENABLED=0
    KUBE_GIT_VERSION_FILE="$work/version.env"
    make -C "$src" WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler")
  mkdir -p "$work/home"
  : >"$log"
  if ! "${make_cmd[@]}" >>"$log" 2>&1; then
    # A failed first try can leave an empty _output/bin/prerelease-lifecycle-gen that every later
    # try trusts and fails on: start the output over, once.
    say "make failed; removing _output/ and trying once more"
    rm -rf "$src/_output"
    echo "=== retry after removing _output/ ===" >>"$log"
    "${make_cmd[@]}" >>"$log" 2>&1 || { tail -n 40 "$log" >&2; die "the build failed (log: $log)"; }
  fi

  # Into place as a whole: a directory renamed at once is never seen half-filled.
  rm -rf "$bin_dir.new"
  mkdir -p "$bin_dir.new"
  local b
  for b in "${kube_binaries[@]}"; do install -m 0755 "$src/_output/bin/$b" "$bin_dir.new/$b"; done
  rm -rf "$bin_dir"
  mv "$bin_dir.new" "$bin_dir"
  rm -rf "$work"
  trap - EXIT
  exec 9>&-
  say "built in $(since "$t0") s: $bin_dir"
}

# --- Credentials ----------------------------------------------------------------------------

# A minimal openssl config, so that no distribution default adds or clashes with extensions.
ssl_conf() {
  printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n[ext]\n%s\n' "$1"
}

# openssl, quiet unless it fails (key generation prints progress dots).
ssl() {
  local err
  err="$(openssl "$@" 2>&1 >/dev/null)" || { echo "$err" >&2; die "openssl $1 failed"; }
}

# issue_cert NAME CN SANS: a serving certificate signed by the cluster CA.
issue_cert() {
  local c="$dir/certs"
  ssl req -new -nodes -newkey rsa:2048 -keyout "$c/$1.key" -out "$c/$1.csr" \
    -subj "/CN=$2" -config <(ssl_conf "")
  ssl x509 -req -in "$c/$1.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -days 3650 \
    -set_serial "0x$(openssl rand -hex 16)" -out "$c/$1.crt" -extensions ext \
    -extfile <(ssl_conf "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $3
authorityKeyIdentifier = keyid")
  rm -f "$c/$1.csr"
}

# Made once per state dir and kept by `down`: nothing gains from new ones, and whoever trusts the
# CA (a node emulator, a test's client) keeps trusting it across `down`/`up`.
ensure_credentials() {
  local c="$dir/certs"
  [[ -f "$c/done" && -f "$dir/tokens.csv" ]] && return 0
  say "making certificates, service-account keys and tokens in $dir"
  rm -rf "$c"
  mkdir -p "$c"
  ssl req -x509 -new -nodes -newkey rsa:2048 -keyout "$c/ca.key" -out "$c/ca.crt" -days 3650 \
    -subj "/CN=inferbench-local-cluster-ca" -extensions ext \
    -config <(ssl_conf "basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash")
  # 127.1.0.1 is the `kubernetes` Service's ClusterIP (first address of the service range): a
  # loopback service proxy that maps it to the apiserver keeps TLS verifiable.
  issue_cert apiserver kube-apiserver "IP:127.0.0.1, IP:127.1.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local"
  issue_cert controller-manager kube-controller-manager "IP:127.0.0.1, DNS:localhost"
  issue_cert scheduler kube-scheduler "IP:127.0.0.1, DNS:localhost"
  ssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$c/sa.key"
  ssl pkey -in "$c/sa.key" -pubout -out "$c/sa.pub"
  # Static tokens: token,user,uid,"groups". The controller-manager and scheduler get the users
  # that Kubernetes' bootstrap RBAC roles are bound to, not admin.
  {
    echo "$(openssl rand -hex 32),admin,admin,\"system:masters\""
    echo "$(openssl rand -hex 32),system:kube-controller-manager,system:kube-controller-manager"
    echo "$(openssl rand -hex 32),system:kube-scheduler,system:kube-scheduler"
  } >"$dir/tokens.csv"
  touch "$c/done"
}

token_of() { awk -F, -v u="$1" '$2 == u { print $1 }' "$dir/tokens.csv"; }

# write_kubeconfig FILE USER: the CA inline, so the file works when copied anywhere on this machine.
write_kubeconfig() {
  cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: inferbench-local
  cluster:
    server: $apiserver_url
    certificate-authority-data: $(base64 -w0 "$dir/certs/ca.crt")
users:
- name: $2
  user:
    token: $(token_of "$2")
contexts:
- name: inferbench-local
  context:
    cluster: inferbench-local
    user: $2
current-context: inferbench-local
EOF
  mv "$1.tmp" "$1"
}

# --- Readiness ------------------------------------------------------------------------------

probe() { # URL: true once it answers 200
  curl -fsS --noproxy '*' --max-time 2 --cacert "$dir/certs/ca.crt" "$1" >/dev/null 2>&1
}

# wait_ready DEADLINE NAME URL…: poll until every URL answers; fail with the log of a component
# that died, or of NAME on time-out.
wait_ready() {
  local deadline="$1" name="$2" url c ok
  shift 2
  while :; do
    for c in "${started[@]}"; do running_pid "$c" >/dev/null || fail "$c"; done
    ok=1
    for url in "$@"; do probe "$url" || { ok=0; break; }; done
    ((ok)) && return 0
    if awk -v d="$deadline" -v n="$(now)" 'BEGIN { exit !(n > d) }'; then
      say "$name not ready within ${timeout_s} s"
      fail "$name"
    fi
    sleep 0.2
  done
}

# --- Commands -------------------------------------------------------------------------------

all_running() {
  local c
  for c in "${components[@]}"; do running_pid "$c" >/dev/null || return 1; done
}

print_env() {
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
  printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
  printf 'export LOCAL_CLUSTER_DIR=%q\n' "$dir"
  printf 'export LOCAL_CLUSTER_APISERVER=%q\n' "$LOCAL_CLUSTER_APISERVER"
}

cmd_up() {
  local t0
  t0="$(now)"
  mkdir -p "$dir"
  umask 077 # keys, tokens and the kubeconfig are credentials
  exec 8>"$dir/.lock"
  flock 8
  if all_running && [[ -f "$dir/cluster.env" && -f "$dir/kubeconfig" ]]; then
    say "already up"
    print_env
    return 0
  fi
  # A half-running cluster (a component died, or an `up` was cut short): start over cleanly.
  local comp
  for comp in "${components[@]}"; do
    if running_pid "$comp" >/dev/null; then say "partly running: stopping it to start afresh"; break; fi
  done
  stop_all
  rm -rf "$dir/data" "$dir/cluster.env" "$dir/kubeconfig"

  ensure_runtime_tools
  ensure_binaries
  ensure_credentials
  mkdir -p "$dir/data" "$dir/logs" "$dir/pids" "$dir/kubeconfigs"

  # Stop what this `up` started if it ends any other way than ready (an error, Ctrl-C).
  trap 'stop_all' EXIT

  mkdir -p "$cache"
  exec 7>"$cache/local-cluster-ports.lock"
  flock 7
  local etcd_port etcd_peer_port api_port cm_port sched_port
  free_port etcd_port
  free_port etcd_peer_port
  free_port api_port
  free_port cm_port
  free_port sched_port
  apiserver_url="https://127.0.0.1:$api_port"
  local c="$dir/certs" deadline
  deadline="$(awk -v n="$(now)" -v t="$timeout_s" 'BEGIN { printf "%.3f", n + t }')"

  # etcd: client and peer both on loopback (the peer port is opened even for one member).
  start etcd "$(command -v etcd)" \
    --name local --data-dir "$dir/data/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer_port"
  wait_ready "$deadline" etcd "http://127.0.0.1:$etcd_port/health"

  # The apiserver binds *:PORT unless told; 127.1.0.0/16 makes Service ClusterIPs loopback
  # addresses a test proxy can bind. Client certificates signed by the cluster CA authenticate
  # (e.g. ones the CSR signer issues). Privileged pods are allowed: nothing really runs them.
  start apiserver "$bin_dir/kube-apiserver" \
    --bind-address=127.0.0.1 --secure-port="$api_port" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --tls-cert-file="$c/apiserver.crt" --tls-private-key-file="$c/apiserver.key" \
    --token-auth-file="$dir/tokens.csv" --authorization-mode=RBAC \
    --client-ca-file="$c/ca.crt" \
    --service-account-key-file="$c/sa.pub" \
    --service-account-signing-key-file="$c/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=127.1.0.0/16 \
    --kubelet-preferred-address-types=InternalIP \
    --allow-privileged=true
  wait_ready "$deadline" apiserver "$apiserver_url/readyz"

  write_kubeconfig "$dir/kubeconfigs/controller-manager.kubeconfig" system:kube-controller-manager
  write_kubeconfig "$dir/kubeconfigs/scheduler.kubeconfig" system:kube-scheduler
  local cmk="$dir/kubeconfigs/controller-manager.kubeconfig" sk="$dir/kubeconfigs/scheduler.kubeconfig"
  # Started after the apiserver is ready: the controller-manager gives up (exits) when the
  # apiserver is not healthy within 10 s. --port=0: no plain-HTTP port (else *:10252 / *:10251).
  # No node lifecycle controller: there is no kubelet to keep a node's lease. Each controller uses
  # its own service account, as kubeadm sets it up, so RBAC is exercised as in a real cluster.
  # Both get the client CA as a file and skip looking up kube-system/extension-apiserver-
  # authentication: with no front proxy configured, that ConfigMap lacks the request-header CA
  # and they would log an error about it every few seconds. The CSR signer uses the cluster CA. The flexvolume folder is kept in the state dir: by default
  # the controller-manager creates /usr/libexec/kubernetes/kubelet-plugins/volume/exec/.
  start controller-manager "$bin_dir/kube-controller-manager" \
    --bind-address=127.0.0.1 --secure-port="$cm_port" --port=0 \
    --tls-cert-file="$c/controller-manager.crt" --tls-private-key-file="$c/controller-manager.key" \
    --kubeconfig="$cmk" --authentication-kubeconfig="$cmk" --authorization-kubeconfig="$cmk" \
    --client-ca-file="$c/ca.crt" --authentication-skip-lookup=true \
    --leader-elect=false --controllers='*,-nodelifecycle' --use-service-account-credentials=true \
    --service-account-private-key-file="$c/sa.key" --root-ca-file="$c/ca.crt" \
    --cluster-signing-cert-file="$c/ca.crt" --cluster-signing-key-file="$c/ca.key" \
    --flex-volume-plugin-dir="$dir/data/flexvolume"
  start scheduler "$bin_dir/kube-scheduler" \
    --bind-address=127.0.0.1 --secure-port="$sched_port" --port=0 \
    --tls-cert-file="$c/scheduler.crt" --tls-private-key-file="$c/scheduler.key" \
    --kubeconfig="$sk" --authentication-kubeconfig="$sk" --authorization-kubeconfig="$sk" \
    --client-ca-file="$c/ca.crt" --authentication-skip-lookup=true \
    --leader-elect=false
  wait_ready "$deadline" controller-manager "https://127.0.0.1:$cm_port/healthz"
  wait_ready "$deadline" scheduler "https://127.0.0.1:$sched_port/healthz"
  exec 7>&- # every port listens now

  write_kubeconfig "$dir/kubeconfig" admin
  # The ports and the URL, for tests and tools (KEY=VALUE lines, shell-sourceable).
  cat >"$dir/cluster.env.tmp" <<EOF
LOCAL_CLUSTER_APISERVER=$apiserver_url
LOCAL_CLUSTER_APISERVER_PORT=$api_port
LOCAL_CLUSTER_ETCD_PORT=$etcd_port
LOCAL_CLUSTER_ETCD_PEER_PORT=$etcd_peer_port
LOCAL_CLUSTER_CONTROLLER_MANAGER_PORT=$cm_port
LOCAL_CLUSTER_SCHEDULER_PORT=$sched_port
KUBECONFIG=$dir/kubeconfig
EOF
  mv "$dir/cluster.env.tmp" "$dir/cluster.env"
  trap - EXIT
  say "up in $(since "$t0") s: $apiserver_url; kubeconfig: $dir/kubeconfig"
  print_env
}

cmd_down() {
  [[ -d "$dir" ]] || { say "nothing to stop ($dir does not exist)"; return 0; }
  exec 8>"$dir/.lock"
  flock 8
  stop_all
  # etcd's data goes, so the next `up` starts empty; certificates, tokens and logs stay, and the
  # cached binaries are never touched.
  rm -rf "$dir/data" "$dir/cluster.env" "$dir/kubeconfig" "$dir/kubeconfigs"
  say "down"
}

cmd_env() {
  if ! all_running || [[ ! -f "$dir/cluster.env" ]]; then die "not running: scripts/local-cluster.sh up"; fi
  print_env
}

cmd_status() {
  local name pid n=0
  # shellcheck disable=SC1091
  [[ -f "$dir/cluster.env" ]] && source "$dir/cluster.env"
  local -A port=(
    [etcd]="${LOCAL_CLUSTER_ETCD_PORT:-}"
    [apiserver]="${LOCAL_CLUSTER_APISERVER_PORT:-}"
    [controller-manager]="${LOCAL_CLUSTER_CONTROLLER_MANAGER_PORT:-}"
    [scheduler]="${LOCAL_CLUSTER_SCHEDULER_PORT:-}"
  )
  echo "state dir: $dir"
  for name in "${components[@]}"; do
    if pid="$(running_pid "$name")"; then
      echo "$name: running (pid $pid, 127.0.0.1:${port[$name]:-?})"
      n=$((n + 1))
    else
      echo "$name: stopped"
    fi
  done
  if ((n == ${#components[@]})) && [[ -n "${LOCAL_CLUSTER_APISERVER:-}" ]]; then
    if probe "$LOCAL_CLUSTER_APISERVER/readyz"; then
      echo "apiserver $LOCAL_CLUSTER_APISERVER: ready; KUBECONFIG=$dir/kubeconfig"
    else
      echo "apiserver $LOCAL_CLUSTER_APISERVER: not ready"
      return 1
    fi
    return 0
  fi
  return 1
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) usage ;;
esac
