//! The `containers` backend: each of the lab's servers (origin, towers, the proxy) is a
//! Docker container, driven through the Docker Engine API with `bollard`.
//!
//! - **Image.** Built locally, no registry: `FROM scratch` plus the `sovereign` binary
//!   and the shared libraries `ldd` names for it, plus an empty `/tmp` ([`ensure_image`]).
//!   Tagged `sovereign-lab:<first 12 hex of the binary's SHA-256>`, so a rebuilt binary
//!   gets a new image and an unchanged one is built once.
//! - **Network.** Host networking: the containers listen on the loopback ports the lab
//!   picked, exactly as the processes do, so the topology (every uplink through its own
//!   proxy, the devices through the Wi-Fi proxy) and every address are the same in both
//!   backends. What differs is the process model: namespaces, cgroups, and the engine
//!   between the lab and the server.
//! - **Data.** The run directory is bind-mounted at the same path; the servers run as the
//!   harness's uid:gid, so what they write belongs to the user who runs the lab.
//! - **Faults.** SIGKILL and SIGTERM go through the engine's kill call; a pause is
//!   `docker pause` (the cgroup freezer; a SIGSTOP of the whole container); a restart
//!   starts the same container again (same arguments, same data).
//! - **Logs.** A follower per start copies the container's output into
//!   `run_dir/logs/<name>.log`, as the processes backend's log files.
//!
//! Every container is recorded in the run's state file as it is created (and labelled
//! `sovereign.lab.run`), so [`crate::backend::down`] removes what a crashed harness left.
//!
//! Not covered: building the binary; bridge networks (the lab's proxies are the network
//! faults, not the engine's).

use crate::backend::{Backend, RUN_ENV, RunFiles, Sig, poll_exit};
use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, KillContainerOptions, ListImagesOptions,
    LogsOptions, RemoveContainerOptions, RemoveImageOptions,
};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long the lab waits for an engine call.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to the local Docker engine, on a small runtime of its own (the lab is
/// threaded; bollard is async).
pub struct Engine {
    rt: tokio::runtime::Runtime,
    docker: Docker,
}

impl Engine {
    /// Connect to the engine (`DOCKER_HOST` or `/var/run/docker.sock`) and agree on an
    /// API version with it (this machine kind's engine speaks 1.41; bollard's default is
    /// newer).
    pub fn connect() -> Result<Engine> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the runtime for the Docker engine's API")?;
        let docker = rt
            .block_on(async {
                let d = Docker::connect_with_local_defaults()?;
                let d = tokio::time::timeout(Duration::from_secs(10), d.negotiate_version())
                    .await
                    .map_err(|_| std::io::Error::other("no answer in 10 s"))??;
                d.ping().await?;
                Ok::<_, anyhow::Error>(d)
            })
            .context(
                "cannot reach a Docker engine (is dockerd running? see docs/LAB.md, \"The containers backend\")",
            )?;
        Ok(Engine { rt, docker })
    }

    fn call<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T> {
        self.rt
            .block_on(async { tokio::time::timeout(ENGINE_TIMEOUT, f).await })
            .map_err(|_| anyhow!("{what}: the Docker engine did not answer in {ENGINE_TIMEOUT:?}"))?
            .with_context(|| what.to_string())
    }

    /// Kill (if running) and remove container `id`; a container already gone is fine.
    pub fn remove(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.call(
            &format!("removing container {id}"),
            self.docker.remove_container(id, Some(opts)),
        ) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Send `signal` (`SIGKILL`, `SIGTERM`, …) to container `id`.
    pub fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let opts = KillContainerOptions {
            signal: signal.to_string(),
        };
        self.call(
            &format!("{signal} to container {id}"),
            self.docker.kill_container(id, Some(opts)),
        )
    }

    fn running(&self, id: &str) -> Result<bool> {
        let i = self.call(
            &format!("inspecting container {id}"),
            self.docker.inspect_container(id, None),
        )?;
        Ok(i.state.and_then(|s| s.running).unwrap_or(false))
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<bollard::errors::Error>(),
            Some(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        )
    })
}

/// The shared libraries `ldd` names for `exe` (none for a static binary).
fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd")
        .arg(exe)
        .output()
        .context("running ldd (the image needs the binary's shared libraries)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable")
            || String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux… (0x…)`
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// The image's tag for `exe`: `sovereign-lab:<12 hex of its SHA-256>`.
fn image_tag(exe: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    // Streamed: the binary is 140-400 MB and the build context reads it again.
    let mut f = std::fs::File::open(exe).with_context(|| format!("reading {}", exe.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", exe.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let d = h.finalize();
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Ok(format!("sovereign-lab:{hex}"))
}

/// The build context: a Dockerfile and `rootfs/` (the binary at `/sovereign`, its
/// shared libraries at their own paths, an empty `/tmp`), as a tar archive.
fn build_context(exe: &Path) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(true);
    // The engine's tar reader refuses GNU sparse entries (type S).
    tar.sparse(false);
    tar.mode(tar::HeaderMode::Deterministic);
    append_file(
        &mut tar,
        "Dockerfile",
        &format!(
            "FROM scratch\nLABEL {IMAGE_LABEL}=sovereign\nCOPY rootfs/ /\nENTRYPOINT [\"/sovereign\"]\n"
        ),
    )?;
    let mut t = tar::Header::new_gnu();
    t.set_entry_type(tar::EntryType::Directory);
    t.set_size(0);
    t.set_mode(0o1777);
    t.set_cksum();
    tar.append_data(&mut t, "rootfs/tmp/", std::io::empty())?;
    tar.append_path_with_name(exe, "rootfs/sovereign")
        .with_context(|| format!("adding {} to the image", exe.display()))?;
    for lib in shared_libraries(exe)? {
        let rel = lib.strip_prefix("/").unwrap_or(&lib);
        tar.append_path_with_name(&lib, Path::new("rootfs").join(rel))
            .with_context(|| format!("adding {} to the image", lib.display()))?;
    }
    Ok(tar.into_inner()?)
}

/// A file `path` holding `text` (mode 0644) in a build context.
fn append_file(tar: &mut tar::Builder<Vec<u8>>, path: &str, text: &str) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, path, text.as_bytes())
}

/// The image that runs `exe`, built now unless the engine has it already. After a build
/// the older `sovereign-lab` images beyond the newest [`IMAGES_KEPT`] are removed
/// ([`prune_images`]): every rebuilt binary makes a new one of a few hundred MB.
pub fn ensure_image(engine: &Engine, exe: &Path) -> Result<String> {
    let tag = image_tag(exe)?;
    if ensure(engine, &tag, || build_context(exe))? {
        prune_images(engine, "sovereign-lab:", "sovereign", &tag, PRUNE_MIN_AGE_S);
    }
    Ok(tag)
}

/// How many `sovereign-lab:<hash>` images a build keeps, the new one included: a debug
/// and a release binary used side by side are not rebuilt for each other.
pub const IMAGES_KEPT: usize = 2;

/// The label on the lab's own images (`LABEL sovereign.lab.image=…` in the Dockerfile):
/// an untagged image with it is one of ours that lost its tag — two runs built the same
/// binary's image at once, and the later build took the tag.
pub const IMAGE_LABEL: &str = "sovereign.lab.image";

/// Images younger than this (seconds) are never pruned: another run may have just built
/// one and not yet started its containers, and the engine commits a build's image before
/// it tags it (an image seen untagged for that moment is about to be someone's tag).
pub const PRUNE_MIN_AGE_S: i64 = 600;

/// Remove the images tagged `prefix…` other than `keep` and the newest others up to
/// [`IMAGES_KEPT`], and the untagged images labelled [`IMAGE_LABEL`]` = label`, all of them
/// at least `min_age_s` old; the tags (or ids) removed. Never forced: an image a
/// container still uses (another lab run's) is left, as is everything on any error
/// (pruning is housekeeping, not the run's business).
fn prune_images(
    engine: &Engine,
    prefix: &str,
    label: &str,
    keep: &str,
    min_age_s: i64,
) -> Vec<String> {
    let Ok(images) = engine
        .rt
        .block_on(engine.docker.list_images(None::<ListImagesOptions>))
    else {
        return Vec::new();
    };
    let mut ours: Vec<(i64, &str)> = images
        .iter()
        .flat_map(|i| i.repo_tags.iter().map(move |t| (i.created, t.as_str())))
        .filter(|(_, t)| t.starts_with(prefix) && *t != keep)
        .collect();
    ours.sort_by(|a, b| b.cmp(a));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let old_enough = |created: i64| created <= now - min_age_s;
    let untagged = images.iter().filter(|i| {
        i.labels.get(IMAGE_LABEL).is_some_and(|v| v == label)
            && i.repo_tags.iter().all(|t| t == "<none>:<none>")
            && old_enough(i.created)
    });
    let mut removed = Vec::new();
    let old = ours
        .into_iter()
        .skip(IMAGES_KEPT.saturating_sub(1))
        .filter(|(created, _)| old_enough(*created));
    for tag in old.map(|(_, t)| t).chain(untagged.map(|i| i.id.as_str())) {
        let removal = engine.rt.block_on(engine.docker.remove_image(
            tag,
            None::<RemoveImageOptions>,
            None,
        ));
        if removal.is_ok() {
            removed.push(tag.to_string());
        }
    }
    if !removed.is_empty() {
        crate::say(&format!(
            "lab: removed {} older lab image(s): {}",
            removed.len(),
            removed.join(", ")
        ));
    }
    removed
}

/// Image `tag` as the engine has it, or built now from the tar archive `context` makes;
/// `true` when it was built.
fn ensure(engine: &Engine, tag: &str, context: impl FnOnce() -> Result<Vec<u8>>) -> Result<bool> {
    if engine.rt.block_on(engine.docker.inspect_image(tag)).is_ok() {
        return Ok(false);
    }
    build(engine, tag, context()?)?;
    Ok(true)
}

/// Build image `tag` from the tar archive `context` (a Dockerfile at its root).
fn build(engine: &Engine, tag: &str, context: Vec<u8>) -> Result<()> {
    let opts = BuildImageOptions {
        dockerfile: "Dockerfile".to_string(),
        t: Some(tag.to_string()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let errors: Vec<String> = engine.rt.block_on(async {
        let mut s = engine
            .docker
            .build_image(opts, None, Some(bollard::body_full(context.into())));
        let mut errors = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(info) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        errors.push(e);
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        errors
    });
    if !errors.is_empty() {
        bail!("building image {tag}: {}", errors.join("; "));
    }
    Ok(())
}

/// The PostgreSQL image's user (uid:gid in the container; PostgreSQL refuses root).
pub const POSTGRES_USER: &str = "999:999";

/// The image PostgreSQL runs in: an empty root with the usual links into `/usr` (`/bin`,
/// `/lib`, `/lib64`, `/sbin`), a `postgres` user (uid 999), `/tmp` and
/// `/var/run/postgresql`. It holds no PostgreSQL: the host's `/usr` (Debian's PostgreSQL
/// packages, their libraries and a shell) is bind-mounted into it read-only when it
/// runs — no registry is reachable here (docs/LAB.md says how, and why not
/// debootstrap). Tagged `sovereign-lab-postgres:1`.
pub fn ensure_postgres_image(engine: &Engine) -> Result<String> {
    let tag = "sovereign-lab-postgres:1";
    ensure(engine, tag, postgres_context)?;
    Ok(tag.to_string())
}

/// The PostgreSQL image's build context ([`ensure_postgres_image`]).
fn postgres_context() -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    append_file(
        &mut tar,
        "Dockerfile",
        "FROM scratch\nCOPY rootfs/ /\nUSER 999:999\n",
    )?;
    append_file(
        &mut tar,
        "rootfs/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n",
    )?;
    append_file(&mut tar, "rootfs/etc/group", "root:x:0:\npostgres:x:999:\n")?;
    for dir in [
        "rootfs/tmp/",
        "rootfs/var/run/postgresql/",
        "rootfs/var/lib/postgresql/",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o1777);
        h.set_cksum();
        tar.append_data(&mut h, dir, std::io::empty())?;
    }
    for (link, target) in [
        ("rootfs/bin", "usr/bin"),
        ("rootfs/sbin", "usr/sbin"),
        ("rootfs/lib", "usr/lib"),
        ("rootfs/lib64", "usr/lib64"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        tar.append_link(&mut h, link, target)?;
    }
    Ok(tar.into_inner()?)
}

struct Ctr {
    id: String,
    /// Paused (`docker pause`).
    paused: bool,
    /// Exited (as far as the lab knows).
    exited: bool,
    /// Log lines already copied (a restart's follower skips them: the engine replays a
    /// container's whole log).
    frames: Arc<AtomicUsize>,
    follower: Option<tokio::task::JoinHandle<()>>,
}

/// The `containers` backend.
pub struct Containers {
    engine: Engine,
    image: String,
    files: RunFiles,
    ctrs: BTreeMap<String, Ctr>,
}

impl Containers {
    /// A backend running `exe`'s image (built if missing), logs under `run_dir/logs`,
    /// recording containers in `state_dir`.
    pub fn new(exe: &Path, run_dir: &Path, state_dir: &Path) -> Result<Containers> {
        let engine = Engine::connect()?;
        let image = ensure_image(&engine, exe)?;
        let c = Containers {
            engine,
            image,
            files: RunFiles::new(run_dir, state_dir)?,
            ctrs: BTreeMap::new(),
        };
        c.save()?;
        Ok(c)
    }

    fn save(&self) -> Result<()> {
        let containers = self
            .ctrs
            .iter()
            .map(|(n, c)| (n.clone(), c.id.clone()))
            .collect();
        self.files.save(Vec::new(), containers)
    }

    fn ctr(&mut self, name: &str) -> Result<&mut Ctr> {
        self.ctrs
            .get_mut(name)
            .ok_or_else(|| anyhow!("no server {name}"))
    }

    /// Start container `name` (created) and a follower copying its output to its log.
    fn launch(&mut self, name: &str) -> Result<()> {
        let log = self.log_path(name);
        let c = self
            .ctrs
            .get(name)
            .ok_or_else(|| anyhow!("no server {name}"))?;
        let id = c.id.clone();
        let frames = c.frames.clone();
        self.engine.call(
            &format!("starting container {name}"),
            self.engine.docker.start_container(&id, None),
        )?;
        let docker = self.engine.docker.clone();
        let follower = self.engine.rt.spawn(async move {
            let Ok(mut out) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
            else {
                return;
            };
            let opts = LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            };
            let skip = frames.load(Ordering::Relaxed);
            let mut seen = 0usize;
            let mut s = docker.logs(&id, Some(opts));
            while let Some(Ok(frame)) = s.next().await {
                seen += 1;
                if seen <= skip {
                    continue;
                }
                let _ = out.write_all(&frame.into_bytes());
                frames.store(seen, Ordering::Relaxed);
            }
        });
        let c = self.ctr(name)?;
        c.exited = false;
        c.paused = false;
        c.follower = Some(follower);
        Ok(())
    }

    /// Create container `name` of `image` running `cmd` as `user` with `binds`, on the
    /// host's network, labelled with the run, and start it.
    fn create(
        &mut self,
        name: &str,
        image: String,
        cmd: Vec<String>,
        user: String,
        binds: Vec<String>,
    ) -> Result<()> {
        if self.ctrs.get(name).is_some_and(|c| !c.exited) {
            bail!("{name} is already running");
        }
        if let Some(old) = self.ctrs.remove(name) {
            self.engine.remove(&old.id)?;
        }
        let run = self.files.run_name();
        #[allow(
            clippy::disallowed_types,
            reason = "bollard's API takes a HashMap; it is built here and never iterated"
        )]
        let labels: std::collections::HashMap<String, String> = [
            ("sovereign.lab.run".to_string(), run.clone()),
            (
                "sovereign.lab.harness".to_string(),
                std::process::id().to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let body = ContainerCreateBody {
            image: Some(image),
            cmd: Some(cmd),
            env: Some(vec![
                "SOVEREIGN_LOG=info".to_string(),
                format!("{RUN_ENV}={run}"),
            ]),
            user: Some(user),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("host".to_string()),
                binds: Some(binds),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(format!("{run}-{name}")),
            ..Default::default()
        };
        let created = self.engine.call(
            &format!("creating container {name}"),
            self.engine.docker.create_container(Some(opts), body),
        )?;
        self.ctrs.insert(
            name.to_string(),
            Ctr {
                id: created.id,
                paused: false,
                exited: true,
                frames: Arc::new(AtomicUsize::new(0)),
                follower: None,
            },
        );
        self.save()?;
        self.launch(name)
    }

    /// Let the log followers of stopped containers finish copying (bounded).
    fn drain_followers(&mut self) {
        let handles: Vec<_> = self
            .ctrs
            .values_mut()
            .filter_map(|c| c.follower.take())
            .collect();
        let _ = self.engine.rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(2),
                futures_util::future::join_all(handles),
            )
            .await
        });
    }
}

impl Backend for Containers {
    fn kind(&self) -> &'static str {
        "containers"
    }

    fn start(&mut self, name: &str, args: Vec<String>) -> Result<()> {
        let dir = self.files.run_dir.display().to_string();
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let image = self.image.clone();
        self.create(
            name,
            image,
            args,
            format!("{uid}:{gid}"),
            vec![format!("{dir}:{dir}")],
        )
    }

    fn start_postgres(&mut self, name: &str, port: u16) -> Result<()> {
        let bin = crate::database::bindir()?;
        let image = ensure_postgres_image(&self.engine)?;
        self.create(
            name,
            image,
            crate::database::container_command(&bin, port),
            POSTGRES_USER.to_string(),
            vec!["/usr:/usr:ro".to_string()],
        )
    }

    fn restart(&mut self, name: &str) -> Result<()> {
        let c = self.ctr(name)?;
        if !c.exited {
            bail!("{name} is still running");
        }
        self.launch(name)
    }

    fn signal(&mut self, name: &str, sig: Sig) -> Result<()> {
        let c = self.ctr(name)?;
        if c.exited {
            bail!("{name} is not running");
        }
        let id = c.id.clone();
        let paused = c.paused;
        let d = &self.engine.docker;
        let what = format!("{sig:?} to container {name}");
        match sig {
            Sig::Kill | Sig::Term | Sig::Int => {
                let signal = match sig {
                    Sig::Kill => "SIGKILL",
                    Sig::Term => "SIGTERM",
                    _ => "SIGINT",
                };
                let opts = KillContainerOptions {
                    signal: signal.to_string(),
                };
                self.engine.call(&what, d.kill_container(&id, Some(opts)))?;
                if sig == Sig::Kill && paused {
                    // A frozen process dies of SIGKILL as a stopped one does: thaw it.
                    let _ = self.engine.call(&what, d.unpause_container(&id));
                }
            }
            Sig::Stop => self.engine.call(&what, d.pause_container(&id))?,
            Sig::Cont => self.engine.call(&what, d.unpause_container(&id))?,
        }
        match sig {
            Sig::Stop => self.ctr(name)?.paused = true,
            Sig::Cont | Sig::Kill => self.ctr(name)?.paused = false,
            Sig::Term | Sig::Int => {}
        }
        if sig == Sig::Kill {
            // As with a process: the kill returns once it is dead.
            if !self.wait_exit(name, Duration::from_secs(10))? {
                bail!("container {name} still runs 10 s after SIGKILL");
            }
        }
        Ok(())
    }

    fn wait_exit(&mut self, name: &str, timeout: Duration) -> Result<bool> {
        poll_exit(timeout, || {
            let c = self.ctr(name)?;
            if c.exited {
                return Ok(true);
            }
            let id = c.id.clone();
            if !self.engine.running(&id)? {
                self.ctr(name)?.exited = true;
                return Ok(true);
            }
            Ok(false)
        })
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.files.log(name)
    }

    fn shutdown(&mut self) {
        for (name, c) in &mut self.ctrs {
            if c.exited {
                continue;
            }
            let opts = KillContainerOptions {
                signal: "SIGKILL".to_string(),
            };
            let what = format!("killing container {name}");
            let _ = self
                .engine
                .call(&what, self.engine.docker.kill_container(&c.id, Some(opts)));
            if c.paused {
                let _ = self
                    .engine
                    .call(&what, self.engine.docker.unpause_container(&c.id));
            }
            c.exited = true;
        }
        self.drain_followers();
        let ids: Vec<(String, String)> = std::mem::take(&mut self.ctrs)
            .into_iter()
            .map(|(n, c)| (n, c.id))
            .collect();
        for (name, id) in ids {
            if let Err(e) = self.engine.remove(&id) {
                eprintln!("lab: could not remove container {name}: {e:#}");
            }
        }
        self.files.remove_state();
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-file image context whose file says `text` (so each `text` is its own image).
    fn tiny_context(text: &str) -> Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        let dockerfile = format!("FROM scratch\nLABEL {IMAGE_LABEL}=test\nCOPY note /note\n");
        append_file(&mut tar, "Dockerfile", &dockerfile)?;
        append_file(&mut tar, "note", text)?;
        Ok(tar.into_inner()?)
    }

    #[test]
    fn a_build_prunes_all_but_the_newest_lab_images_and_never_one_in_use() {
        // Goal: of four images under one prefix, pruning for the newest keeps it and the
        // next newest (IMAGES_KEPT = 2), and removes the older ones — except one a
        // container still uses; images under other names are not touched.
        let engine = match Engine::connect() {
            Ok(e) => e,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!(
                    "SKIPPED: no Docker engine ({e:#}); apt-get install docker.io; dockerd &"
                );
                return;
            }
            Err(e) => panic!("CI is set and no Docker engine answers: {e:#}"),
        };
        let prefix = format!("sovereign-prune-test-{}:", std::process::id());
        let tags: Vec<String> = (0..4).map(|i| format!("{prefix}{i}")).collect();
        let other = format!("sovereign-prune-other-{}:0", std::process::id());
        for (i, tag) in tags.iter().enumerate() {
            // `created` has a resolution of one second: one build a second.
            if i > 0 {
                std::thread::sleep(Duration::from_millis(1100));
            }
            assert!(ensure(&engine, tag, || tiny_context(&format!("{tag}\n"))).unwrap());
        }
        assert!(ensure(&engine, &other, || tiny_context("other\n")).unwrap());
        // A build of tag 2 that lost its tag to a second build: untagged, labelled ours.
        let lost = format!("{prefix}lost");
        assert!(ensure(&engine, &lost, || tiny_context("lost\n")).unwrap());
        let lost_id = engine
            .rt
            .block_on(engine.docker.inspect_image(&lost))
            .expect("built")
            .id
            .expect("an id");
        build(&engine, &lost, tiny_context("lost again\n").unwrap()).expect("rebuilt");
        assert!(!ensure(&engine, &tags[3], || panic!("not rebuilt")).unwrap());
        // Image 0 is in use by a (created, never started) container.
        let body = ContainerCreateBody {
            image: Some(tags[0].clone()),
            cmd: Some(vec!["/note".to_string()]),
            ..Default::default()
        };
        let ctr = engine
            .rt
            .block_on(
                engine
                    .docker
                    .create_container(None::<CreateContainerOptions>, body),
            )
            .expect("create a container");
        // All of them were built seconds ago: under the minimum age nothing goes.
        let young = prune_images(&engine, &prefix, "test", &tags[3], PRUNE_MIN_AGE_S);
        let removed = prune_images(&engine, &prefix, "test", &tags[3], 0);
        let exists = |t: &str| engine.rt.block_on(engine.docker.inspect_image(t)).is_ok();
        let left: Vec<bool> = tags.iter().map(|t| exists(t)).collect();
        let other_left = exists(&other);
        let lost_left = exists(&lost_id);
        // Clean up before asserting.
        let _ = engine.rt.block_on(engine.docker.remove_container(
            &ctr.id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        ));
        for t in tags.iter().chain([&other, &lost, &lost_id]) {
            let _ = engine.rt.block_on(engine.docker.remove_image(
                t,
                None::<RemoveImageOptions>,
                None,
            ));
        }
        // The newest other tag is `lost` (kept); tag 2 and older are removed, tag 0 is
        // in use; the untagged build is removed by its id. (Untagged test images another
        // run left may be removed too.)
        for r in [&tags[2], &tags[1], &lost_id] {
            assert!(removed.contains(r), "{r} not removed: {removed:?}");
        }
        assert!(
            !removed.contains(&tags[0]) && !removed.contains(&tags[3]),
            "{removed:?}"
        );
        assert!(young.is_empty(), "{young:?}");
        assert_eq!(left, [true, false, false, true]);
        assert!(other_left && !lost_left);
    }
}
