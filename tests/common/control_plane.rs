//! Real control planes of a test binary's own: etcd + kube-apiserver (+ kube-controller-manager)
//! started by `scripts/control-plane.sh start target/<name>`, for tests that pause, kill or
//! restart its processes, or that need several clusters (a fleet), without disturbing the tests
//! that share the suite's control plane.
//!
//! [`ControlPlane::shared`] starts each named control plane once per test binary and hands out
//! the same one to every test that asks for it; a small `sh` watchdog stops it (resuming paused
//! processes first) as soon as the test binary is gone, however it ended. When the binaries are
//! not at hand (`scripts/control-plane.sh find` fails), it says why, and the test reports itself
//! skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The processes of a control plane, by the name of their pid file in its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Etcd,
    ApiServer,
    ControllerManager,
}

impl Process {
    fn pid_file(self) -> &'static str {
        match self {
            Process::Etcd => "etcd.pid",
            Process::ApiServer => "kube-apiserver.pid",
            Process::ControllerManager => "kube-controller-manager.pid",
        }
    }
}

#[derive(Debug)]
pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    root().join("scripts/control-plane.sh")
}

impl ControlPlane {
    /// This test binary's control plane `name` (in `target/<name>`), started on first use and
    /// stopped when the test binary exits; `Err(why)` when it cannot be started here.
    pub fn shared(name: &str) -> Result<&'static ControlPlane, String> {
        static PLANES: OnceLock<Mutex<HashMap<String, Result<&'static ControlPlane, String>>>> = OnceLock::new();
        let mut planes = PLANES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        planes
            .entry(name.to_string())
            .or_insert_with(|| {
                ControlPlane::start(&root().join("target").join(name)).map(|cp| &*Box::leak(Box::new(cp)))
            })
            .clone()
    }

    /// Starts (or reuses) the control plane kept in `dir`, with a watchdog that stops it once
    /// this process is gone.
    pub fn start(dir: &Path) -> Result<ControlPlane, String> {
        let found = Command::new(script())
            .arg("find")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
        if !found.status.success() {
            return Err(format!(
                "no control-plane binaries: {}",
                String::from_utf8_lossy(&found.stdout).trim()
            ));
        }
        let cp = ControlPlane {
            dir: dir.to_path_buf(),
            kubeconfig: dir.join("kubeconfig"),
        };
        cp.run_script("start")?;
        // Resumes whatever a test left paused, then stops it all, once this binary is gone.
        let watchdog = r#"
            while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
            for f in "$3"/*.pid; do [ -s "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null; done
            "$2" stop "$3" > /dev/null 2>&1
        "#;
        let mut cmd = if Path::new("/usr/bin/setsid").exists() {
            let mut c = Command::new("/usr/bin/setsid");
            c.arg("sh");
            c
        } else {
            Command::new("sh")
        };
        cmd.arg("-c")
            .arg(watchdog)
            .arg("control-plane-watchdog")
            .arg(std::process::id().to_string())
            .arg(script())
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the control plane's watchdog: {e}"))?;
        Ok(cp)
    }

    fn run_script(&self, verb: &str) -> Result<(), String> {
        let out = Command::new(script())
            .arg(verb)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "control-plane.sh {verb} {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The pid of one of its processes, if it runs.
    pub fn pid(&self, p: Process) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.join(p.pid_file()))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    fn signal(&self, p: Process, signal: &str) {
        let pid = self
            .pid(p)
            .unwrap_or_else(|| panic!("{p:?} of {} is not running", self.dir.display()));
        let ok = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {p:?} ({pid})");
    }

    /// SIGSTOP: the process holds its sockets and answers nothing.
    pub fn pause(&self, p: Process) {
        self.signal(p, "-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self, p: Process) {
        self.signal(p, "-CONT");
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill(&self, p: Process) {
        let pid = self.pid(p);
        self.signal(p, "-KILL");
        while pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}/status")).exists() && !is_zombie(pid)) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Resumes every paused process and starts whatever is not running (the apiserver after a
    /// kill), waiting until the apiserver is ready again.
    pub fn heal(&self) -> Result<(), String> {
        for p in [Process::Etcd, Process::ApiServer, Process::ControllerManager] {
            if let Some(pid) = self.pid(p) {
                let _ = Command::new("kill").args(["-CONT", &pid.to_string()]).status();
            }
        }
        self.run_script("start")
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
        .unwrap_or(true)
}
