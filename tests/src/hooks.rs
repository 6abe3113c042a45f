//! A receiver for web hooks (FHIR rest-hook notifications) in end-to-end tests: listens on
//! `127.0.0.1`, answers every POST `200 OK`, and hands each request's head and body to the test.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};

/// One delivered request: its head (request line and headers, lower-cased) and JSON body.
pub struct Delivery {
    pub head: String,
    pub body: Value,
}

/// A running receiver; stops when dropped.
pub struct HookReceiver {
    pub url: String,
    rx: Mutex<mpsc::UnboundedReceiver<Delivery>>,
    task: tokio::task::JoinHandle<()>,
}

impl HookReceiver {
    /// Listens on a free port; deliveries go to [`HookReceiver::next`].
    pub async fn start() -> anyhow::Result<HookReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://127.0.0.1:{}/notify", listener.local_addr()?.port());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    // Read the head, then as much body as content-length says.
                    let (head, body) = loop {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            while buf.len() < i + 4 + len {
                                let Ok(n) = conn.read(&mut chunk).await else {
                                    return;
                                };
                                if n == 0 {
                                    break;
                                }
                                buf.extend_from_slice(&chunk[..n]);
                            }
                            let end = (i + 4 + len).min(buf.len());
                            break (head, buf[i + 4..end].to_vec());
                        }
                    };
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let _ = tx.send(Delivery { head, body });
                });
            }
        });
        Ok(HookReceiver {
            url,
            rx: Mutex::new(rx),
            task,
        })
    }

    /// The next delivery, or `None` after `wait`.
    pub async fn next(&self, wait: Duration) -> Option<Delivery> {
        tokio::time::timeout(wait, self.rx.lock().await.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
