//! The `http-sse` scenario: delivery latency to many subscribers (raw TCP clients in this
//! process) of events appended over HTTP, from the command's answer to each subscriber's
//! reading of its `id:` line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use grantflow_bench::workload::SplitMix64;
use serde_json::{json, Map};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::http_target::{contribution, head, Conn};
use crate::measure::histogram;
use crate::measure::{cpu_ticks, ticks_seconds};
use crate::report::round;
use crate::report::Report;

/// Reads the event stream from `from` until `count` events arrived; each id with the time it
/// was read (µs since `base`). Says `ready` once the response headers arrived.
async fn subscriber(
    addr: String,
    token: String,
    from: u64,
    count: usize,
    base: Instant,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let mut io = BufReader::new(stream);
    let request = format!(
        "GET /v1/events/stream?from={from} HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    io.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    io.read_line(&mut line).await?;
    anyhow::ensure!(line.contains(" 200"), "event stream answered {line:?}");
    loop {
        line.clear();
        anyhow::ensure!(io.read_line(&mut line).await? > 0, "stream closed");
        if line.trim_end().is_empty() {
            break;
        }
    }
    let _ = ready.send(()).await;
    drop(ready);
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        line.clear();
        let read = tokio::time::timeout(Duration::from_secs(60), io.read_line(&mut line))
            .await
            .context("no event for 60 s")??;
        anyhow::ensure!(read > 0, "stream closed after {} events", seen.len());
        // Chunked framing puts size lines between events; the fields are whole lines.
        if let Some(id) = line.trim_end().strip_prefix("id:") {
            let at = base.elapsed().as_micros() as u64;
            if let Ok(id) = id.trim().parse::<u64>() {
                seen.push((id, at));
            }
        }
    }
    Ok(seen)
}

pub(crate) async fn sse(
    config: &Config,
    server_pid: Option<u32>,
    addr: &str,
    finance: &str,
    readers: &[String],
    report: &mut Report,
) -> anyhow::Result<()> {
    let m = config.sse_commands.max(1);
    let subscribers = config.sse_subscribers;
    let reader = readers.first().map(String::as_str).unwrap_or_default();
    let from = head(addr, reader).await? + 1;
    let base = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(subscribers);
    let mut tasks = Vec::new();
    for index in 0..subscribers {
        // Each token holds at most its share of streams (the server's per-token cap).
        let token = readers
            .get(index % readers.len().max(1))
            .map_or(reader, String::as_str);
        tasks.push(tokio::spawn(subscriber(
            addr.to_string(),
            token.to_string(),
            from,
            m,
            base,
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    let mut connected = 0;
    while connected < subscribers {
        match tokio::time::timeout(Duration::from_secs(30), ready_rx.recv()).await {
            Ok(Some(())) => connected += 1,
            _ => break,
        }
    }
    anyhow::ensure!(
        connected == subscribers,
        "only {connected} of {subscribers} subscribers connected"
    );
    // Let the streams finish their catch-up (nothing to catch up: they start at the head).
    tokio::time::sleep(Duration::from_millis(200)).await;

    // One command at a time; the time its 200 was read, by position.
    let stat = server_pid.map(|pid| format!("/proc/{pid}/stat"));
    let cpu_before = stat.as_deref().and_then(cpu_ticks);
    let mut conn = Conn::open(addr).await?;
    let mut acked: HashMap<u64, (u64, u64)> = HashMap::with_capacity(m);
    let mut rng = SplitMix64::new(config.seed ^ 0x0053_5345);
    let mut command_hist = histogram();
    for i in 0..m {
        let mut body = contribution(i, &mut rng);
        body["command_id"] = json!(format!("sse-{}-{i}", config.seed));
        let sent = Instant::now();
        let sent_at = base.elapsed().as_micros() as u64;
        let (status, answer) = conn
            .request("POST", "/v1/commands", finance, Some(&body.to_string()))
            .await?;
        let at = base.elapsed().as_micros() as u64;
        crate::measure::record(&mut command_hist, sent);
        anyhow::ensure!(status == 200, "command answered {status}: {answer}");
        let position = answer["events"][0]["position"]
            .as_u64()
            .with_context(|| format!("no position in {answer}"))?;
        acked.insert(position, (sent_at, at));
    }
    let mut hist = histogram();
    let mut from_send = histogram();
    let (mut deliveries, mut before_ack, mut failed) = (0u64, 0u64, 0usize);
    let mut seen_all = Vec::with_capacity(tasks.len());
    for task in tasks {
        seen_all.push(task.await?);
    }
    // The server's CPU from the first command to the last delivery: the commands' and the
    // fan-out's.
    let server_cpu = stat
        .as_deref()
        .and_then(cpu_ticks)
        .zip(cpu_before)
        .map(|(after, before)| ticks_seconds(after.0 - before.0));
    for seen in seen_all {
        match seen {
            Ok(seen) => {
                for (id, at) in seen {
                    if let Some(&(sent_at, ack)) = acked.get(&id) {
                        deliveries += 1;
                        from_send.saturating_record(at.saturating_sub(sent_at).max(1));
                        if at < ack {
                            before_ack += 1;
                        }
                        hist.saturating_record(at.saturating_sub(ack).max(1));
                    }
                }
            }
            Err(error) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("grantflow-bench: an SSE subscriber failed: {error:#}");
                }
            }
        }
    }
    let ms = |q: f64| round(hist.value_at_quantile(q) as f64 / 1000.0);
    let mut f = Map::new();
    f.insert("subscribers".into(), json!(subscribers));
    f.insert("commands".into(), json!(m));
    f.insert("deliveries".into(), json!(deliveries));
    f.insert("expected".into(), json!((m * subscribers) as u64));
    f.insert("subscribers_failed".into(), json!(failed));
    f.insert("before_ack".into(), json!(before_ack));
    f.insert("p50_ms".into(), ms(0.5));
    f.insert("p99_ms".into(), ms(0.99));
    f.insert("max_ms".into(), round(hist.max() as f64 / 1000.0));
    let sms = |q: f64| round(from_send.value_at_quantile(q) as f64 / 1000.0);
    f.insert("from_send_p50_ms".into(), sms(0.5));
    f.insert("from_send_p99_ms".into(), sms(0.99));
    f.insert(
        "from_send_max_ms".into(),
        round(from_send.max() as f64 / 1000.0),
    );
    f.insert(
        "command_p50_ms".into(),
        round(command_hist.value_at_quantile(0.5) as f64 / 1000.0),
    );
    if let Some(cpu) = server_cpu {
        f.insert("server_cpu_s".into(), round(cpu));
        f.insert(
            "server_cpu_us_per_delivery".into(),
            round(cpu * 1e6 / (deliveries.max(1) as f64)),
        );
    }
    report.line("http-sse", f);
    anyhow::ensure!(
        failed == 0 && deliveries == (m * subscribers) as u64,
        "SSE: {deliveries} of {} deliveries, {failed} subscribers failed",
        m * subscribers
    );
    Ok(())
}
