//! A progress bar that appears only once a phase has run for a few seconds, on stderr (and only
//! when stderr is a terminal), fed from a counter.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How long a phase runs before its bar is drawn.
const SHOW_AFTER: Duration = Duration::from_secs(2);

/// A running bar. Dropping it without [`finish`](Self::finish) leaves the ticker running until
/// the runtime ends, so every phase calls `finish`.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

impl Bar {
    /// Starts a bar of `total` steps that follows `counter`; `enabled = false` draws nothing.
    pub fn start(
        label: &str,
        total: u64,
        position: impl Fn() -> u64 + Send + 'static,
        enabled: bool,
    ) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_owned());
        let started = Instant::now();
        let shown = bar.clone();
        // Ends when `finish` aborts it.
        let ticker = tokio::spawn(async move {
            let mut visible = false;
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                shown.set_position(position());
                if enabled && !visible && started.elapsed() >= SHOW_AFTER {
                    shown.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
                    visible = true;
                }
            }
        });
        Self { bar, ticker }
    }

    /// Stops the bar and clears it from the terminal.
    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
