//! A webhook receiver that verifies every delivery's signature (docs/webhooks.md), with
//! `grantflow_webhooks::Secret` (the same check the Standard Webhooks libraries make).
//!
//! ```sh
//! cargo run --example webhook_receiver -- --addr 127.0.0.1:9000 --secret whsec_...
//! grantflow webhook add --url http://127.0.0.1:9000/      # prints the secret to give above
//! ```
//!
//! For each request it checks `webhook-signature` against `webhook-id`, `webhook-timestamp`
//! (at most five minutes from now) and the raw body, answers 204 and prints
//! `position P type T (webhook-id ID)` when it holds, and answers 401 (printing why) when it
//! does not. A real receiver would also remember the `webhook-id`s it processed: a delivery
//! may come again (at least once).
//!
//! Without arguments it checks itself and exits: it listens on a free port, sends itself a
//! delivery signed with its secret (taken) and one signed with another secret (refused), and
//! prints `webhook_receiver: ok`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

use grantflow_webhooks::{message_id, Secret, TIMESTAMP_TOLERANCE_SECS};

/// A request as the receiver reads it.
struct Request {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (headers, then `Content-Length` bytes of body).
fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|length| length.parse::<usize>().ok())
        .unwrap_or(0);
    if length > 8 * 1024 * 1024 {
        return Err(std::io::Error::other("a body over 8 MiB"));
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(Request { headers, body })
}

/// Checks one delivery: `Ok(line to print)` or `Err(why it is refused)`.
fn check(secret: &Secret, request: &Request) -> Result<String, String> {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .map(String::as_str)
            .ok_or(format!("no {name} header"))
    };
    let msg_id = header("webhook-id")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|error| error.to_string())?
        .as_secs() as i64;
    secret
        .verify(
            msg_id,
            header("webhook-timestamp")?,
            header("webhook-signature")?,
            &request.body,
            now,
            TIMESTAMP_TOLERANCE_SECS,
        )
        .map_err(|error| error.to_string())?;
    // Only now is the body trusted enough to parse.
    let event: serde_json::Value =
        serde_json::from_slice(&request.body).map_err(|error| format!("not JSON: {error}"))?;
    Ok(format!(
        "position {} type {} (webhook-id {msg_id})",
        event["id"].as_str().unwrap_or("?"),
        event["type"].as_str().unwrap_or("?")
    ))
}

/// Answers one connection; returns the status it answered.
fn handle(secret: &Secret, mut stream: TcpStream) -> u16 {
    let status = match read_request(&stream) {
        Ok(request) => match check(secret, &request) {
            Ok(line) => {
                println!("{line}");
                204
            }
            Err(why) => {
                eprintln!("refused a delivery: {why}");
                401
            }
        },
        Err(error) => {
            eprintln!("unreadable request: {error}");
            400
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        if status == 204 {
            "No Content"
        } else {
            "Refused"
        }
    );
    status
}

/// Sends one signed delivery to `addr`; the status answered.
fn send(addr: std::net::SocketAddr, signer: &Secret, body: &str) -> std::io::Result<u16> {
    let msg_id = message_id("0a1b2c3d", 7);
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(std::io::Error::other)?
        .as_secs() as i64;
    let signature = signer.sign(&msg_id, timestamp, body.as_bytes());
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/cloudevents+json\r\n\
         webhook-id: {msg_id}\r\nwebhook-timestamp: {timestamp}\r\n\
         webhook-signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {answer:?}")))
}

/// The check run without arguments.
fn self_check() -> Result<(), String> {
    let (secret, _) = Secret::generate().map_err(|error| error.to_string())?;
    let (other, _) = Secret::generate().map_err(|error| error.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
    let addr = listener.local_addr().map_err(|error| error.to_string())?;
    let receiver_secret = secret.clone();
    let receiver = std::thread::spawn(move || {
        listener
            .incoming()
            .take(2)
            .flatten()
            .map(|stream| handle(&receiver_secret, stream))
            .collect::<Vec<u16>>()
    });
    let body = r#"{"specversion":"1.0","id":"7","type":"grant.approved"}"#;
    let signed = send(addr, &secret, body).map_err(|error| error.to_string())?;
    let forged = send(addr, &other, body).map_err(|error| error.to_string())?;
    let answered = receiver.join().map_err(|_| "the receiver panicked")?;
    if (signed, forged) != (204, 401) || answered != [204, 401] {
        return Err(format!(
            "signed delivery answered {signed}, one signed with another secret {forged}"
        ));
    }
    println!("signed with the secret: taken ({signed}); with another secret: refused ({forged})");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return match self_check() {
            Ok(()) => {
                println!("webhook_receiver: ok");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("webhook_receiver: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let value = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|at| args.get(at + 1))
            .cloned()
    };
    let (Some(addr), Some(secret)) = (
        value("--addr"),
        value("--secret").or_else(|| std::env::var("WEBHOOK_SECRET").ok()),
    ) else {
        eprintln!(
            "usage: webhook_receiver --addr HOST:PORT --secret whsec_... (or WEBHOOK_SECRET)"
        );
        return ExitCode::from(2);
    };
    let secret = match Secret::parse(&secret) {
        Ok(secret) => secret,
        Err(error) => {
            eprintln!("--secret: {error}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&addr) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {addr}: {error}");
            return ExitCode::from(2);
        }
    };
    eprintln!("receiving webhooks on http://{addr}/");
    for stream in listener.incoming().flatten() {
        handle(&secret, stream);
    }
    ExitCode::SUCCESS
}
