//! The message store on its own: stores direct messages the way the store writer does (in
//! batches, with their ids), then times a few searches, and prints the CPU time per message.
//!
//! ```sh
//! cargo run --release -p server --example store-bench -- --messages 200000 --batch 10
//! cargo run --release -p server --example store-bench -- --dir /tmp/store   # on disk
//! ```
//!
//! The texts are pseudo-random words of a 5,000-word vocabulary, about 64 bytes each (what
//! the full-text index costs depends on how many different trigrams they hold; `chat-bench`'s
//! padded texts hold few). The same seed gives the same texts, so instruction counts
//! (`valgrind --tool=callgrind`) compare exactly between two builds.

use clap::Parser;
use protocol::{MsgId, Nick, Target};
use server::store::{Location, NewMessage, Store};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Messages to store.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Messages per transaction (the store writer takes whatever is queued: a handful in a
    /// conversation, hundreds under load).
    #[arg(long, default_value_t = 10)]
    batch: u64,
    /// People, talking in pairs.
    #[arg(long, default_value_t = 200)]
    people: usize,
    /// A directory for the store (a fresh one: it should be empty); in memory without it.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // Linux reports these in clock ticks of 10 ms.
    Duration::from_millis(ticks * 10)
}

/// About 64 bytes of words, the same for the same seed.
fn words(seed: u64) -> String {
    let step = |x: u64| {
        x.wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
    };
    let mut x = step(seed);
    let mut text = String::new();
    while text.len() < 60 {
        x = step(x);
        let word = (x >> 33) % 5_000;
        let mut letters = word.wrapping_mul(2_654_435_761) ^ 0x9e37;
        for _ in 0..3 + word % 6 {
            text.push(char::from(b'a' + (letters % 26) as u8));
            letters = (letters / 26).wrapping_mul(31).wrapping_add(word);
        }
        text.push(' ');
    }
    text
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let location = match &args.dir {
        Some(dir) => Location::Dir(dir.clone()),
        None => Location::Memory,
    };
    let mut store = Store::open(&location)?;
    let people: Vec<Nick> = (0..args.people.max(2))
        .map(|i| Nick::parse(&format!("user{i}")))
        .collect::<Result<_, _>>()?;
    let first: MsgId = store.max_id()? + 1;
    let batch = args.batch.max(1);

    let (wall, cpu) = (Instant::now(), thread_cpu());
    let mut id = first;
    while id < first + args.messages {
        let messages: Vec<(MsgId, NewMessage)> = (id..(id + batch).min(first + args.messages))
            .map(|id| {
                // Each pair takes turns: one round one way, the next the other.
                let n = (id - first) as usize;
                let pair = n % people.len() / 2 * 2;
                let (from, to) = if (n / people.len()).is_multiple_of(2) {
                    (pair, pair + 1)
                } else {
                    (pair + 1, pair)
                };
                let to = to.min(people.len() - 1);
                let message = NewMessage {
                    from: people[from].clone(),
                    target: Target::User(people[to].clone()),
                    text: words(id),
                    client_id: Some(format!("c-{id}")),
                    reply_to: None,
                    ts: 1_764_000_000_000 + id as i64,
                    delivered_to: Some(people[to].clone()),
                };
                (id, message)
            })
            .collect();
        id += messages.len() as u64;
        store.insert_at(messages.iter().map(|(id, m)| (*id, m)))?;
        // As the store writer does after each batch's acks.
        store.index_if_due();
    }
    let (wall, cpu) = (wall.elapsed(), thread_cpu() - cpu);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / args.messages.max(1) as f64;
    println!(
        "stored {} messages in batches of {batch}: {:.2} µs of CPU per message ({:.2} µs wall)",
        args.messages,
        per(cpu),
        per(wall)
    );

    let common = words(7).split(' ').next().unwrap_or("a").to_owned();
    for text in [common.as_str(), "qzxjv"] {
        let started = Instant::now();
        let mut found = 0;
        for _ in 0..20 {
            found = store
                .search(&people[0], &[], text, 50, None)?
                .messages
                .len();
        }
        println!(
            "search {text:?} in user0's direct chats: {found} found, {:.2} ms each",
            started.elapsed().as_secs_f64() * 1e3 / 20.0
        );
    }
    Ok(())
}
