//! A small SMTP server on loopback for the tests: a test peer, not product code.
//!
//! It greets, answers EHLO without offering STARTTLS, takes MAIL, RCPT and DATA, and keeps
//! every message it accepted, raw. RCPT replies can be set per address (a 4xx or 5xx on
//! demand), and the reply to the end of DATA can be delayed (for every message, or for those to
//! one address), so a test can stop a sender while a message is in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub recipients: Vec<String>,
    /// The message as sent, dot-stuffing undone.
    pub data: String,
}

#[derive(Default)]
struct State {
    rcpt_replies: HashMap<String, String>,
    data_delay: Duration,
    slow_recipients: HashMap<String, Duration>,
    received: Vec<Received>,
    refused: Vec<String>,
}

/// A running server; it stops with the test's runtime.
#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let port = listener.local_addr().expect("an address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, Arc::clone(&shared)));
            }
        });
        SmtpServer { port, state }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers RCPT for `address` with `reply` (for example `451 4.3.0 try later`).
    pub fn reply_to_rcpt(&self, address: &str, reply: &str) {
        self.state()
            .rcpt_replies
            .insert(address.to_lowercase(), reply.to_owned());
    }

    /// Takes RCPT for `address` again, as a relay does once it is fixed.
    pub fn accept_rcpt(&self, address: &str) {
        self.state().rcpt_replies.remove(&address.to_lowercase());
    }

    /// Waits this long before accepting each message's data.
    pub fn delay_data(&self, delay: Duration) {
        self.state().data_delay = delay;
    }

    /// Waits this long before accepting the data of a message to `address`.
    pub fn delay_data_to(&self, address: &str, delay: Duration) {
        self.state()
            .slow_recipients
            .insert(address.to_lowercase(), delay);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    /// Recipients whose RCPT got a reply that was not 250.
    pub fn refused(&self) -> Vec<String> {
        self.state().refused.clone()
    }

    /// Settings that send to this server in plain text.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TOUCHPOINT__MAIL__BACKEND", "smtp".into()),
            ("TOUCHPOINT__MAIL__SMTP__HOST", "127.0.0.1".into()),
            ("TOUCHPOINT__MAIL__SMTP__PORT", self.port.to_string()),
            ("TOUCHPOINT__MAIL__SMTP__TLS", "none".into()),
            ("TOUCHPOINT__MAIL__SMTP__ALLOW_PLAINTEXT", "true".into()),
            ("TOUCHPOINT__MAIL__SMTP__TIMEOUT_SECS", "5".into()),
        ]
    }
}

async fn session(stream: TcpStream, state: Arc<Mutex<State>>) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let mut recipients = Vec::new();
    if writer
        .write_all(b"220 localhost test SMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            "250-localhost\r\n250 8BITMIME".to_owned()
        } else if upper.starts_with("HELO") || upper.starts_with("MAIL FROM") {
            recipients.clear();
            "250 2.1.0 ok".to_owned()
        } else if upper.starts_with("RCPT TO") {
            let address = line[8..]
                .trim()
                .trim_matches(|c| c == '<' || c == '>')
                .to_lowercase();
            let configured = lock().rcpt_replies.get(&address).cloned();
            match configured {
                Some(reply) => {
                    lock().refused.push(address);
                    reply
                }
                None => {
                    recipients.push(address);
                    "250 2.1.5 ok".to_owned()
                }
            }
        } else if upper == "DATA" {
            if writer.write_all(b"354 end with .\r\n").await.is_err() {
                return;
            }
            let data = read_data(&mut lines).await;
            let delay = {
                let state = lock();
                let slowest = recipients
                    .iter()
                    .filter_map(|r| state.slow_recipients.get(r).copied())
                    .max();
                slowest.map_or(state.data_delay, |d| d.max(state.data_delay))
            };
            tokio::time::sleep(delay).await;
            lock().received.push(Received {
                recipients: std::mem::take(&mut recipients),
                data,
            });
            "250 2.0.0 queued".to_owned()
        } else if upper == "QUIT" {
            let _ = writer.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            recipients.clear();
            "250 2.0.0 ok".to_owned()
        } else {
            "502 5.5.2 not implemented".to_owned()
        };
        if writer
            .write_all(format!("{reply}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn read_data(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
) -> String {
    let mut data = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if line == "." {
            break;
        }
        let line = line.strip_prefix('.').unwrap_or(&line);
        data.push_str(line);
        data.push_str("\r\n");
    }
    data
}
