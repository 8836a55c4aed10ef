//! Where the lab's servers run: the [`Backend`] trait, the `processes` backend
//! [`Processes`] (child processes of the `sovereign` executable, each in its own process
//! group) and the choice of backend ([`BackendKind`]; the `containers` backend is in
//! `containers.rs`).
//!
//! Every child is recorded in a state file (`STATE_DIR/run-<harness pid>.json`) as it is
//! started, so that [`down`] can kill what a harness that crashed (or was SIGKILLed) left
//! behind. [`Processes`] kills every child's process group when it is shut down or
//! dropped, and removes its state file.
//!
//! Ports: [`free_port`] hands out reserved ones, [`release_ports`] gives them back.
//!
//! Not covered: what the children are.

use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable every child carries: the run directory's name, unique per
/// run (`sovereign-lab-<harness pid>-<µs>`), so that what a run left can be found.
pub const RUN_ENV: &str = "SOVEREIGN_LAB_RUN";

/// A signal the lab sends to a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    /// SIGKILL: a crash (kill -9).
    Kill,
    /// SIGTERM: a clean stop.
    Term,
    /// SIGSTOP: freeze (a pause).
    Stop,
    /// SIGCONT: thaw.
    Cont,
    /// SIGINT: PostgreSQL's fast shutdown (sessions ended, every commit kept).
    Int,
}

/// Which backend a lab run uses (`--backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// Child processes (nothing to install).
    #[default]
    Processes,
    /// Docker containers through the engine's API.
    Containers,
}

impl BackendKind {
    /// Every kind with its name.
    pub const ALL: [(BackendKind, &'static str); 2] = [
        (BackendKind::Processes, "processes"),
        (BackendKind::Containers, "containers"),
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        BackendKind::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("processes", |(_, n)| n)
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Result<BackendKind> {
        BackendKind::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(k, _)| *k)
            .ok_or_else(|| anyhow!("unknown backend {name:?}: expected processes or containers"))
    }

    /// A backend of this kind running `exe`, with its logs under `run_dir` and its
    /// state file in `state_dir`.
    pub fn open(self, exe: &Path, run_dir: &Path, state_dir: &Path) -> Result<Box<dyn Backend>> {
        Ok(match self {
            BackendKind::Processes => {
                Box::new(Processes::new(exe.to_path_buf(), run_dir, state_dir)?)
            }
            BackendKind::Containers => {
                Box::new(crate::containers::Containers::new(exe, run_dir, state_dir)?)
            }
        })
    }
}

/// Runs the lab's servers.
pub trait Backend {
    /// `processes` or `containers`.
    fn kind(&self) -> &'static str;
    /// Start server `name` with `args` (the `sovereign` command line after the program).
    fn start(&mut self, name: &str, args: Vec<String>) -> Result<()>;
    /// Start server `name`: a PostgreSQL server of the host's programs
    /// ([`crate::database`]) listening on 127.0.0.1:`port`, its data created on the first
    /// start. [`Backend::restart`] starts it again on the same data.
    fn start_postgres(&mut self, name: &str, port: u16) -> Result<()>;
    /// Start `name` again with the arguments it was last started with.
    fn restart(&mut self, name: &str) -> Result<()>;
    /// Send `sig` to `name` (its whole process group).
    fn signal(&mut self, name: &str, sig: Sig) -> Result<()>;
    /// Wait up to `timeout` for `name` to exit; whether it did.
    fn wait_exit(&mut self, name: &str, timeout: Duration) -> Result<bool>;
    /// Where `name`'s log (stderr) goes.
    fn log_path(&self, name: &str) -> PathBuf;
    /// Kill everything started (SIGKILL to each group, reaped); remove the state file.
    fn shutdown(&mut self);
}

/// Ports the lab hands its servers: below Linux's ephemeral range (32768–60999), so that
/// neither another process's port-0 bind nor an outgoing connection (the devices open
/// many) takes one between the lab choosing it and the server binding it. Found when two
/// lab runs at once failed with `Address already in use`.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Ports handed out by this process (each is tried once per process).
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Where runs reserve ports: one file per port, holding the reserving process's id.
fn port_dir() -> PathBuf {
    std::env::temp_dir().join("sovereign-lab-ports")
}

/// A free loopback port for a server of this run, from [`PORTS`], reserved against every
/// other lab run on this machine by a file created exclusively in `$TMPDIR/sovereign-lab-
/// ports` (a reservation whose process is gone is taken over; [`release_ports`] removes
/// this process's). Nothing else listens on it when it is handed out (checked by binding
/// it).
pub fn free_port() -> Result<u16> {
    let dir = port_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let me = std::process::id();
    let span = u32::from(PORTS.end - PORTS.start);
    // Each process starts at its own place in the range: runs started together spread.
    let start = me.wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let k = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = PORTS.start + ((start + k) % span) as u16;
        let file = dir.join(port.to_string());
        let reserved = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
        {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(me.to_string().as_bytes())?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let gone = reservation_gone(&file);
                if gone {
                    // Taken over: rewrite it as ours (a race with another run taking it
                    // over too ends in one of them finding it bound below).
                    std::fs::write(&file, me.to_string())?;
                }
                gone
            }
            Err(e) => return Err(e).with_context(|| format!("reserving {}", file.display())),
        };
        if reserved && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!(
        "no free port in {PORTS:?} (reservations in {})",
        dir.display()
    )
}

/// Whether the port reservation `file` belongs to a process that is gone.
fn reservation_gone(file: &Path) -> bool {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists())
}

/// Remove this process's port reservations (at the end of a run).
pub fn release_ports() {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir(port_dir()) else {
        return;
    };
    for e in entries.flatten() {
        if std::fs::read_to_string(e.path()).is_ok_and(|t| t.trim() == me) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The default directory of state files: `$TMPDIR/sovereign-lab`.
pub fn default_state_dir() -> PathBuf {
    std::env::temp_dir().join("sovereign-lab")
}

struct Proc {
    child: Child,
    launch: Launch,
    /// Exited and reaped.
    reaped: bool,
}

/// What a child runs: the program, its arguments, and the user it runs as (`None`: the
/// lab's).
#[derive(Clone)]
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    user: Option<(u32, u32)>,
}

/// The `processes` backend.
pub struct Processes {
    exe: PathBuf,
    files: RunFiles,
    procs: BTreeMap<String, Proc>,
}

/// Where a backend keeps a run's logs and its state file.
pub(crate) struct RunFiles {
    /// The run's directory (data and logs), removed by [`down`] for a crashed run.
    pub(crate) run_dir: PathBuf,
    logs: PathBuf,
    state_file: PathBuf,
}

impl RunFiles {
    /// `run_dir/logs` created, `state_dir` private, the state file named for this harness.
    pub(crate) fn new(run_dir: &Path, state_dir: &Path) -> Result<RunFiles> {
        let logs = run_dir.join("logs");
        std::fs::create_dir_all(&logs)
            .with_context(|| format!("cannot create {}", logs.display()))?;
        private_dir(state_dir)?;
        Ok(RunFiles {
            run_dir: run_dir.to_path_buf(),
            logs,
            state_file: state_dir.join(format!("run-{}.json", std::process::id())),
        })
    }

    /// The run directory's name (`sovereign-lab-<pid>-<µs>`): the run's marker.
    pub(crate) fn run_name(&self) -> String {
        self.run_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    }

    /// Server `name`'s log file.
    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Record what runs now: process groups and containers by server name.
    pub(crate) fn save(
        &self,
        children: Vec<(String, u32)>,
        containers: Vec<(String, String)>,
    ) -> Result<()> {
        StateFile {
            harness_pid: std::process::id(),
            run_dir: self.run_dir.clone(),
            children,
            containers,
        }
        .write(&self.state_file)
    }

    /// The run ended cleanly: nothing for `lab down` to do.
    pub(crate) fn remove_state(&self) {
        let _ = std::fs::remove_file(&self.state_file);
    }
}

/// Ask `exited` every 50 ms until it says yes or `timeout` has passed; whether it did.
pub(crate) fn poll_exit(
    timeout: Duration,
    mut exited: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if exited()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A run's state file: what [`down`] removes if the harness dies.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StateFile {
    pub(crate) harness_pid: u32,
    pub(crate) run_dir: PathBuf,
    /// The `processes` backend's children: (name, process group).
    pub(crate) children: Vec<(String, u32)>,
    /// The `containers` backend's containers: (name, container id).
    #[serde(default)]
    pub(crate) containers: Vec<(String, String)>,
}

impl StateFile {
    /// Write it atomically (a temporary file renamed).
    pub(crate) fn write(&self, file: &Path) -> Result<()> {
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, file).with_context(|| format!("cannot write {}", file.display()))?;
        Ok(())
    }
}

impl Processes {
    /// A backend running `exe` (the `sovereign` binary), logs under `run_dir/logs`,
    /// recording children in `state_dir`.
    pub fn new(exe: PathBuf, run_dir: &Path, state_dir: &Path) -> Result<Processes> {
        let p = Processes {
            exe,
            files: RunFiles::new(run_dir, state_dir)?,
            procs: BTreeMap::new(),
        };
        p.save()?;
        Ok(p)
    }

    fn save(&self) -> Result<()> {
        let children = self
            .procs
            .iter()
            .filter(|(_, p)| !p.reaped)
            .map(|(n, p)| (n.clone(), p.child.id()))
            .collect();
        self.files.save(children, Vec::new())
    }

    /// Open (append) server `name`'s log for a child's output.
    fn log_file(&self, name: &str) -> Result<std::fs::File> {
        let log = self.log_path(name);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))
    }

    fn spawn(&mut self, name: &str, launch: Launch) -> Result<()> {
        let out = self.log_file(name)?;
        let mut cmd = Command::new(&launch.program);
        if let Some((uid, gid)) = launch.user {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .args(&launch.args)
            .env("SOVEREIGN_LOG", "info")
            // Marks the run's processes (tests find leftovers by it).
            .env(RUN_ENV, self.files.run_name())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            // Its own process group: signals reach the server and anything it starts,
            // and a Ctrl-C at the terminal reaches only the harness, which cleans up.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {} {name}", launch.program.display()))?;
        self.procs.insert(
            name.to_string(),
            Proc {
                child,
                launch,
                reaped: false,
            },
        );
        self.save()
    }
}

/// The processes descended from `pid` (children first found, then theirs), read from
/// `/proc`. PostgreSQL's backends each lead a process group of their own (so that the
/// postmaster can signal them), so a signal to the postmaster's group misses them.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // `pid (comm) state ppid ...`: the fields after the last ')'.
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(q) = frontier.pop() {
        for (p, pp) in &parent_of {
            if *pp == q && !out.contains(p) {
                out.push(*p);
                frontier.push(*p);
            }
        }
    }
    out
}

/// Signal the process group led by `pid` and, for a kill, stop or thaw, every process
/// descended from it (a kill freezes them all first, so that none reacts to another's
/// death: PostgreSQL would start its crash recovery).
fn send_tree(pid: u32, sig: Sig) -> std::io::Result<()> {
    let tree = |sig: Sig| {
        for p in descendants(pid) {
            let _ = send_pid(p, sig);
        }
    };
    match sig {
        // The leader first, so that it forks nothing the tree's signal then misses.
        Sig::Stop => {
            send(pid, Sig::Stop)?;
            tree(Sig::Stop);
            Ok(())
        }
        Sig::Kill => {
            let _ = send(pid, Sig::Stop);
            tree(Sig::Stop);
            tree(Sig::Kill);
            send(pid, Sig::Kill)
        }
        Sig::Cont => {
            tree(Sig::Cont);
            send(pid, Sig::Cont)
        }
        Sig::Term | Sig::Int => send(pid, sig),
    }
}

/// `pid` and `sig` as rustix takes them.
fn pid_signal(
    pid: u32,
    sig: Sig,
) -> std::io::Result<(rustix::process::Pid, rustix::process::Signal)> {
    use rustix::process::{Pid, Signal};
    let p = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("bad pid {pid}")))?;
    let s = match sig {
        Sig::Kill => Signal::KILL,
        Sig::Term => Signal::TERM,
        Sig::Stop => Signal::STOP,
        Sig::Cont => Signal::CONT,
        Sig::Int => Signal::INT,
    };
    Ok((p, s))
}

/// Signal the process group led by `pid`.
fn send(pid: u32, sig: Sig) -> std::io::Result<()> {
    let (p, s) = pid_signal(pid, sig)?;
    rustix::process::kill_process_group(p, s).map_err(std::io::Error::from)
}

impl Backend for Processes {
    fn kind(&self) -> &'static str {
        "processes"
    }

    fn start(&mut self, name: &str, args: Vec<String>) -> Result<()> {
        if self.procs.get(name).is_some_and(|p| !p.reaped) {
            bail!("{name} is already running");
        }
        let launch = Launch {
            program: self.exe.clone(),
            args,
            user: None,
        };
        self.spawn(name, launch)
    }

    fn start_postgres(&mut self, name: &str, port: u16) -> Result<()> {
        if self.procs.get(name).is_some_and(|p| !p.reaped) {
            bail!("{name} is already running");
        }
        let bin = crate::database::bindir()?;
        let user = crate::database::run_as()?;
        let data = self.files.run_dir.join(name);
        std::fs::create_dir_all(&data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        if let Some((uid, gid)) = user {
            // The postgres user must reach its directory: the run directory becomes
            // traversable (not listable) by others; the data directory is its own (0700).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.files.run_dir, std::fs::Permissions::from_mode(0o711))?;
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))
                .with_context(|| format!("cannot give {} to the postgres user", data.display()))?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let status = initdb
            .args(crate::database::initdb_args(&data))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(self.log_file(name)?)
            .stderr(self.log_file(name)?)
            .status()
            .with_context(|| format!("cannot run {}", bin.join("initdb").display()))?;
        if !status.success() {
            bail!(
                "initdb of {name} failed ({status}); its log ({}):\n{}",
                self.log_path(name).display(),
                std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
            );
        }
        let launch = Launch {
            program: bin.join("postgres"),
            args: crate::database::server_args(&data, port),
            user,
        };
        self.spawn(name, launch)
    }

    fn restart(&mut self, name: &str) -> Result<()> {
        let p = self
            .procs
            .get(name)
            .ok_or_else(|| anyhow!("no server {name}"))?;
        if !p.reaped {
            bail!("{name} is still running");
        }
        let launch = p.launch.clone();
        self.spawn(name, launch)
    }

    fn signal(&mut self, name: &str, sig: Sig) -> Result<()> {
        let p = self
            .procs
            .get_mut(name)
            .ok_or_else(|| anyhow!("no server {name}"))?;
        if p.reaped {
            bail!("{name} is not running");
        }
        send_tree(p.child.id(), sig).with_context(|| format!("signal {sig:?} to {name}"))?;
        if sig == Sig::Kill {
            let _ = p.child.wait();
            p.reaped = true;
            self.save()?;
        }
        Ok(())
    }

    fn wait_exit(&mut self, name: &str, timeout: Duration) -> Result<bool> {
        poll_exit(timeout, || {
            let p = self
                .procs
                .get_mut(name)
                .ok_or_else(|| anyhow!("no server {name}"))?;
            if p.reaped || p.child.try_wait()?.is_some() {
                p.reaped = true;
                self.save()?;
                return Ok(true);
            }
            Ok(false)
        })
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.files.log(name)
    }

    fn shutdown(&mut self) {
        for (name, p) in &mut self.procs {
            if p.reaped {
                continue;
            }
            // A stopped group is killed too (SIGKILL needs no SIGCONT).
            if let Err(e) = send_tree(p.child.id(), Sig::Kill) {
                if p.child.try_wait().ok().flatten().is_none() {
                    eprintln!("lab: could not kill {name}: {e}");
                }
            }
            let _ = p.child.wait();
            p.reaped = true;
        }
        self.files.remove_state();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Create `dir` (mode 0700) if it is missing, and refuse one that another user owns or
/// others may write: state files say which processes `lab down` kills and which
/// directory it removes, so nobody else may plant one.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let m =
        std::fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let me = rustix::process::getuid().as_raw();
    if !m.is_dir() || m.uid() != me || m.permissions().mode() & 0o022 != 0 {
        bail!(
            "{}: not a private directory of this user (owner uid {}, mode {:o}); refusing to keep lab state there",
            dir.display(),
            m.uid(),
            m.permissions().mode() & 0o7777
        );
    }
    Ok(())
}

/// Whether `run_dir` is a lab run directory: `sovereign-lab-…` directly in the temp
/// directory (the only kind `down` removes).
fn is_run_dir(run_dir: &Path) -> bool {
    run_dir.parent() == Some(std::env::temp_dir().as_path())
        && run_dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("sovereign-lab-"))
}

/// Whether `pid` is a live process running a `sovereign` executable (so that a recycled
/// pid of some other program is never signalled).
fn is_sovereign(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or(&[]);
    Path::new(&*String::from_utf8_lossy(argv0))
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("sovereign"))
}

/// Whether `pid` is a live process that carries run `run`'s marker ([`RUN_ENV`] in its
/// environment): a lab child that is not a `sovereign` (PostgreSQL), never a recycled pid
/// of another program.
fn is_of_run(pid: u32, run: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let want = format!("{RUN_ENV}={run}");
    !run.is_empty() && env.split(|b| *b == 0).any(|v| v == want.as_bytes())
}

/// `sovereign lab down`: kill every server (process group) recorded in `state_dir`'s
/// state files, and the harness that recorded them if it still runs; remove each state
/// file and its run directory. The lines to print.
pub fn down(state_dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    // Port reservations of runs that are gone.
    if let Ok(entries) = std::fs::read_dir(port_dir()) {
        for e in entries.flatten() {
            if reservation_gone(&e.path()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let entries = match std::fs::read_dir(state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.push(format!(
                "nothing to do: {} does not exist",
                state_dir.display()
            ));
            return Ok(out);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", state_dir.display())),
    };
    private_dir(state_dir)?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
        let s: StateFile = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a lab state file", f.display()))?;
        if s.harness_pid != std::process::id() && is_sovereign(s.harness_pid) {
            // The harness first, so that it does not restart what is killed next.
            if send_pid(s.harness_pid, Sig::Kill).is_ok() {
                out.push(format!("killed the harness (pid {})", s.harness_pid));
            }
        }
        let run = s
            .run_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for (name, pid) in &s.children {
            if is_sovereign(*pid) || is_of_run(*pid, &run) {
                match send_tree(*pid, Sig::Kill) {
                    Ok(()) => out.push(format!("killed {name} (process group {pid})")),
                    Err(e) => out.push(format!("could not kill {name} (pid {pid}): {e}")),
                }
            } else {
                out.push(format!("{name} (pid {pid}) is not running"));
            }
        }
        if !s.containers.is_empty() {
            match crate::containers::Engine::connect() {
                Ok(engine) => {
                    for (name, id) in &s.containers {
                        match engine.remove(id) {
                            Ok(()) => out.push(format!("removed container {name} ({id:.12})")),
                            Err(e) => out.push(format!("could not remove container {name}: {e:#}")),
                        }
                    }
                }
                Err(e) => out.push(format!(
                    "could not remove {} containers: {e:#}",
                    s.containers.len()
                )),
            }
        }
        std::fs::remove_file(&f).with_context(|| format!("cannot remove {}", f.display()))?;
        if is_run_dir(&s.run_dir) && s.run_dir.exists() {
            let _ = std::fs::remove_dir_all(&s.run_dir);
            out.push(format!("removed {}", s.run_dir.display()));
        }
    }
    if out.is_empty() {
        out.push("nothing to do: no lab run is recorded".to_string());
    }
    Ok(out)
}

/// Signal the one process `pid`.
fn send_pid(pid: u32, sig: Sig) -> std::io::Result<()> {
    let (p, s) = pid_signal(pid, sig)?;
    rustix::process::kill_process(p, s).map_err(std::io::Error::from)
}
