//! What the HTTP scenarios drive: a running `grantflow serve` and its tokens, a minimal
//! keep-alive HTTP/1.1 client, and the commands sent (distinct contributions over 64 funds).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use grantflow_bench::workload::{cents, date, SplitMix64};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Funds the HTTP commands are spread over.
pub(crate) const FUNDS: usize = 64;
/// The actor of the finance token (and of the in-process baseline's commands).
pub(crate) const FINANCE: &str = "finance.k.sato";

pub(crate) fn fund(i: usize) -> String {
    format!("HTTP-F{:02}", i % FUNDS)
}

/// The `i`-th contribution: distinct in fund, donor, amount and date (no actor, no id).
pub(crate) fn contribution(i: usize, rng: &mut SplitMix64) -> Value {
    const DONORS: &[&str] = &["JP-GOV", "TH-GOV", "SI-GOV", "MX-GOV", "GR-GOV", "KR-GOV"];
    json!({
        "command": "record-contribution",
        "fund": fund(i),
        "donor": DONORS[rng.below(DONORS.len())],
        "amount": cents(rng.range(1_000_000, 90_000_000) as i64),
        "received_on": date(15_706 + (i / FUNDS) as i64 % 4_000),
    })
}

/// A running `grantflow serve`.
pub(crate) struct Server {
    pub(crate) child: tokio::process::Child,
    pub(crate) addr: String,
}

impl Server {
    /// `grantflow --data DATA serve` on a free port of loopback.
    pub(crate) async fn grantflow(binary: &Path, data: &Path) -> anyhow::Result<Server> {
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("--data")
            .arg(data)
            .args(["serve", "--addr", "127.0.0.1:0"]);
        Server::start(command, "serve").await
    }

    /// The floor: this binary's `child --task http-floor` (see [`floor_server`]).
    pub(crate) async fn floor(root: &Path) -> anyhow::Result<Server> {
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .args(["child", "--task", "http-floor", "--path"])
            .arg(root);
        Server::start(command, "the floor server").await
    }

    /// Starts a server that prints `listening on http://ADDR` first.
    pub(crate) async fn start(
        mut command: tokio::process::Command,
        what: &str,
    ) -> anyhow::Result<Server> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let stdout = child.stdout.take().context("serve's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .with_context(|| format!("{what} printed nothing within 30 s"))??
            .with_context(|| format!("{what} exited before listening"))?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .with_context(|| format!("{what} said {line:?}"))?
            .to_string();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, addr })
    }

    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(status.success(), "the server exited with {status}");
            }
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("the server did not stop within 30 s of SIGTERM");
            }
        }
        Ok(())
    }
}

pub(crate) fn add_token(
    binary: &Path,
    data: &Path,
    actor: &str,
    roles: &str,
) -> anyhow::Result<String> {
    let output = std::process::Command::new(binary)
        .arg("--data")
        .arg(data)
        .args(["--actor", actor, "token", "add", "--role", roles])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "token add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .map(|l| l.trim().to_string())
        .filter(|t| !t.is_empty())
        .context("token add printed no token")
}

/// A keep-alive HTTP/1.1 connection (just enough for JSON requests).
pub(crate) struct Conn {
    addr: String,
    io: BufReader<TcpStream>,
}

impl Conn {
    pub(crate) async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr: addr.to_string(),
            io: BufReader::new(stream),
        })
    }

    /// A JSON request with the bearer `token`: the status and the body as JSON (`Null` when
    /// it is not JSON).
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let headers = [
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".to_string()),
        ];
        let answer = self
            .exchange(method, path, &headers, body.unwrap_or(""))
            .await?;
        let value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Ok((answer.status, value))
    }

    /// One request with these headers (besides `Host` and `Content-Length`) and body; the
    /// whole answer.
    pub(crate) async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> anyhow::Result<Answer> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let stream = self.io.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut line = String::new();
        self.io.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let (mut length, mut chunked) = (None, false);
        let mut headers = Vec::new();
        loop {
            line.clear();
            anyhow::ensure!(self.io.read_line(&mut line).await? > 0, "connection closed");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                if name == "content-length" {
                    length = value.parse::<usize>().ok();
                } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
                headers.push((name, value.to_string()));
            }
        }
        let mut bytes = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.io.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                let mut chunk = vec![0u8; size + 2];
                self.io.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                bytes.extend_from_slice(&chunk[..size]);
            }
        } else {
            bytes.resize(length.unwrap_or(0), 0);
            self.io.read_exact(&mut bytes).await?;
        }
        Ok(Answer {
            status,
            headers,
            body: bytes,
        })
    }
}

/// An HTTP answer as [`Conn::exchange`] read it.
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Names in lower case, in the order received.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The first header of this (lower-case) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The log's head, read over HTTP.
pub(crate) async fn head(addr: &str, token: &str) -> anyhow::Result<u64> {
    let mut conn = Conn::open(addr).await?;
    let (status, value) = conn
        .request("GET", "/v1/events?from=1&limit=1", token, None)
        .await?;
    anyhow::ensure!(status == 200, "GET /v1/events answered {status}: {value}");
    value["head"].as_u64().context("no head in /v1/events")
}
