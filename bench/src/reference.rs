//! `reference-server`: the least a server of the seed endpoints has to do, to measure what this
//! machine and the WebSocket stack allow before any chat feature costs anything.
//!
//! It speaks only the seed protocol: `/my_ws/<name>` forwards each JSON message to the page
//! named by its `to_user`, and `/my_ws` relays each text to every other group page. A page is
//! registered before the handshake's answer goes out, so a client may send as soon as it is
//! connected. There is no store, no login, no limit and no back-pressure: each connection has
//! an unbounded queue, written in batches (every queued frame, then one flush). It listens on
//! 127.0.0.1 only and stops after `--max-secs`.

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// Settings of the reference server.
#[derive(Debug, clap::Args)]
pub struct ReferenceArgs {
    /// Port on 127.0.0.1; 0 takes a free one. The address is printed once listening.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seconds after which the server stops by itself.
    #[arg(long, default_value_t = 600)]
    pub max_secs: u64,
}

type Outbox = mpsc::UnboundedSender<Message>;

/// Every connected page: single-chat pages by name, group pages by connection number.
#[derive(Default)]
struct Pages {
    single: HashMap<String, Outbox>,
    group: HashMap<u64, Outbox>,
}

type Shared = Arc<Mutex<Pages>>;

fn lock(pages: &Shared) -> std::sync::MutexGuard<'_, Pages> {
    pages.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves until `--max-secs` have passed.
pub async fn run(args: &ReferenceArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let pages = Shared::default();
    let stop = tokio::time::sleep(Duration::from_secs(args.max_secs));
    tokio::pin!(stop);
    for id in 0.. {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    eprintln!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        tokio::spawn(serve(stream, id, pages.clone()));
    }
    Ok(())
}

/// Which page a connection is.
enum Page {
    Single(String),
    Group(u64),
}

async fn serve(stream: TcpStream, id: u64, pages: Shared) {
    let _ = stream.set_nodelay(true);
    let (outbox, mut queued) = mpsc::unbounded_channel();
    let mut page = None;
    // The error type is tungstenite's `Callback` signature, not ours.
    #[allow(clippy::result_large_err)]
    let register = |request: &Request, response: Response| {
        let path = request.uri().path();
        let mut all = lock(&pages);
        page = Some(match path.strip_prefix("/my_ws/") {
            Some(name) => {
                all.single.insert(name.to_owned(), outbox.clone());
                Page::Single(name.to_owned())
            }
            None => {
                all.group.insert(id, outbox.clone());
                Page::Group(id)
            }
        });
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, register).await else {
        return;
    };
    let Some(page) = page else { return };
    let (mut sink, mut received) = ws.split();
    loop {
        tokio::select! {
            frame = received.next() => match frame {
                Some(Ok(Message::Text(text))) => route(&pages, &page, Message::Text(text)),
                Some(Ok(_)) => {}
                _ => break,
            },
            Some(first) = queued.recv() => {
                let mut batch = Ok(());
                let mut next = Some(first);
                while let (Some(frame), Ok(())) = (next.take(), &batch) {
                    batch = sink.feed(frame).await;
                    next = queued.try_recv().ok();
                }
                if batch.is_err() || sink.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    let mut all = lock(&pages);
    match page {
        Page::Single(name) => {
            // A newer page of the same name may have taken the slot.
            if all
                .single
                .get(&name)
                .is_some_and(|o| o.same_channel(&outbox))
            {
                all.single.remove(&name);
            }
        }
        Page::Group(id) => {
            all.group.remove(&id);
        }
    }
}

/// A single-chat message goes to its `to_user`; a group text to every other group page.
fn route(pages: &Shared, from: &Page, frame: Message) {
    let all = lock(pages);
    match from {
        Page::Single(_) => {
            let Message::Text(text) = &frame else { return };
            let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
                return;
            };
            let to = value.get("to_user").and_then(|to| to.as_str());
            if let Some(outbox) = to.and_then(|to| all.single.get(to)) {
                let _ = outbox.send(frame);
            }
        }
        Page::Group(me) => {
            for (_, outbox) in all.group.iter().filter(|(id, _)| *id != me) {
                let _ = outbox.send(frame.clone());
            }
        }
    }
}
