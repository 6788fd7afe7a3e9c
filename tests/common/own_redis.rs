//! A redis-server of a test's own (tests that stop, hang or restart Redis under the code):
//! tests/redis_sessions.rs and tests/broadcast_redis.rs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server of the test's own, on a free port with nothing on disk, stopped (by its PID,
/// SIGKILL, which also ends a stopped process) when dropped, also when the test fails
/// half-way.
pub struct OwnRedis {
    child: Child,
    pub port: u16,
    pub url: String,
    dir: tempfile::TempDir,
}

impl OwnRedis {
    /// Starts one and waits until it answers.
    pub async fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, dir.path());
        let own = OwnRedis {
            child,
            port,
            url: format!("redis://127.0.0.1:{port}"),
            dir,
        };
        own.wait_up().await;
        own
    }

    fn spawn(port: u16, dir: &std::path::Path) -> Child {
        let bin = std::env::var("CHIRP_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (make test installs it)")
    }

    pub async fn wait_up(&self) {
        let start = Instant::now();
        while redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "Redis did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new process on the same port (and no data: nothing was on disk).
    pub async fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.port, self.dir.path());
        self.wait_up().await;
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
