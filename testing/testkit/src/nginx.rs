//! A real nginx for tests and benchmarks: Debian's binary, run in the
//! foreground with its own prefix, configuration, pid file, logs and temp
//! paths in a temporary directory, on loopback ports the OS picked.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; stopped when dropped.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// `nginx`, or `None` after a printed skip (a failure under `CI=true`).
    pub fn available() -> bool {
        crate::require_tool("nginx")
    }

    /// Starts nginx serving `http_conf` (blocks of the `http` context, such as
    /// a file meant for `/etc/nginx/conf.d/`) and waits until every port in
    /// `ports` accepts connections. Panics with nginx's own error log when it
    /// cannot start.
    pub fn start(http_conf: &str, ports: &[u16]) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for sub in ["conf", "logs", "temp"] {
            std::fs::create_dir_all(root.join(sub)).expect("nginx dirs");
        }
        std::fs::write(root.join("conf/site.conf"), http_conf).expect("write site.conf");
        let temp = root.join("temp");
        let main = format!(
            "worker_processes 1;\n\
             daemon off;\n\
             pid {pid};\n\
             error_log {log} warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {t}/body;\n\
             \x20   proxy_temp_path {t}/proxy;\n\
             \x20   fastcgi_temp_path {t}/fastcgi;\n\
             \x20   uwsgi_temp_path {t}/uwsgi;\n\
             \x20   scgi_temp_path {t}/scgi;\n\
             \x20   include {site};\n\
             }}\n",
            pid = root.join("nginx.pid").display(),
            log = root.join("logs/error.log").display(),
            t = temp.display(),
            site = root.join("conf/site.conf").display(),
        );
        let conf = root.join("conf/nginx.conf");
        std::fs::write(&conf, main).expect("write nginx.conf");
        let check = Command::new("nginx")
            .args(["-t", "-q", "-p"])
            .arg(root)
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run nginx -t");
        assert!(
            check.status.success(),
            "nginx rejects the configuration:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("nginx")
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { child, dir };
        nginx.wait_for(ports);
        nginx
    }

    fn wait_for(&mut self, ports: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in ports {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("nginx exited ({status}):\n{}", self.error_log());
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx does not listen on {port}:\n{}",
                    self.error_log()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// What nginx logged (warnings and errors).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// The directory holding the configuration and logs.
    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: the master stops its workers and exits.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGQUIT,
        );
        let _ = self.child.wait();
    }
}

/// An example configuration file of this repository (`examples/…`).
pub fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// `template` with each `from` replaced by `to`; panics if one is missing, so
/// that an edited example cannot silently leave a test on the wrong port.
pub fn render(template: &str, replacements: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (from, to) in replacements {
        assert!(out.contains(from), "the template has no {from}");
        out = out.replace(from, to);
    }
    out
}
