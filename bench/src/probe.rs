//! What the server processes cost, read from `/proc/<pid>`: CPU time (`stat`: utime + stime,
//! all threads, and each thread's in `task/<tid>/stat`), context switches (each thread's
//! `task/<tid>/status`) and resident memory (`status`: VmRSS, VmHWM). With several processes
//! (the nodes of a cluster), each figure is their sum.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Clock ticks per second of `/proc/<pid>/stat` times. Linux fixes USER_HZ at 100 for every
/// architecture's userspace ABI, so this needs no `sysconf`.
const TICKS_PER_SEC: u64 = 100;

/// Reads the CPU and memory of the server processes; every reading is `None` when no pid was
/// given or one of the processes is gone.
#[derive(Debug, Clone)]
pub struct Probe {
    dirs: Vec<PathBuf>,
}

impl Probe {
    /// A probe of processes `pids` (summed), or one that reads nothing when empty.
    pub fn new(pids: &[u32]) -> Self {
        Self {
            dirs: pids
                .iter()
                .map(|pid| PathBuf::from(format!("/proc/{pid}")))
                .collect(),
        }
    }

    /// User plus system CPU time of the whole processes so far, in microseconds (10 ms steps).
    pub fn cpu_micros(&self) -> Option<u64> {
        self.sum(|dir| {
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            parse_cpu_ticks(&stat).map(|ticks| ticks * (1_000_000 / TICKS_PER_SEC))
        })
    }

    /// CPU time of the processes' threads so far, in microseconds, summed by thread name (a
    /// runtime's workers share one); `None` when there is no process or one is gone. A thread
    /// that has ended is not counted.
    pub fn thread_cpu_micros(&self) -> Option<BTreeMap<String, u64>> {
        let mut by_name = BTreeMap::new();
        self.each_thread("stat", |stat| {
            if let (Some(name), Some(ticks)) = (parse_name(stat), parse_cpu_ticks(stat)) {
                *by_name.entry(name.to_owned()).or_default() += ticks * (1_000_000 / TICKS_PER_SEC);
            }
        })?;
        Some(by_name)
    }

    /// Context switches of the processes' threads so far, voluntary (a thread waited: for a
    /// wake-up, a lock, the socket) and not (the scheduler took the core away). A thread that
    /// has ended is not counted.
    pub fn context_switches(&self) -> Option<u64> {
        let mut switches = 0;
        self.each_thread("status", |status| {
            switches += ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"]
                .iter()
                .filter_map(|key| parse_status_number(status, key))
                .sum::<u64>();
        })?;
        Some(switches)
    }

    /// Calls `each` with the text of `task/<tid>/<file>` of every thread of the processes;
    /// `None` when there is no process or one is gone.
    fn each_thread(&self, file: &str, mut each: impl FnMut(&str)) -> Option<()> {
        if self.dirs.is_empty() {
            return None;
        }
        for dir in &self.dirs {
            for task in std::fs::read_dir(dir.join("task")).ok()?.flatten() {
                // A thread may end between the listing and the read.
                if let Ok(text) = std::fs::read_to_string(task.path().join(file)) {
                    each(&text);
                }
            }
        }
        Some(())
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// Peak resident memory so far, in KiB (the sum of each process's peak).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, key: &str) -> Option<u64> {
        self.sum(|dir| {
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            parse_status_number(&status, key)
        })
    }

    /// `read` of every process added up; `None` when there is none or one reading fails.
    fn sum(&self, read: impl Fn(&PathBuf) -> Option<u64>) -> Option<u64> {
        if self.dirs.is_empty() {
            return None;
        }
        self.dirs.iter().map(read).sum()
    }
}

/// utime + stime in clock ticks from the text of `/proc/<pid>/stat`. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name come field 3 (state) onwards; utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The command (thread) name from the text of a `stat` file: between the first `(` and the
/// last `)`.
fn parse_name(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

/// The number after `key` in the text of `/proc/<pid>/status` (memory in KiB, counts as they are).
fn parse_status_number(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The open-files soft limit of this process, raised to the hard limit first. Idle runs hold
/// one descriptor per connection.
pub fn raise_open_files_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_odd_command_names() {
        let stat = "4242 (chat server) (x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    731 269 0 0 20 0 3 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(1000));
        assert_eq!(parse_name(stat), Some("chat server) (x"));
    }

    #[test]
    fn status_fields_are_read_as_numbers() {
        let status = "Name:\tchat-server\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_number(status, "VmRSS:"), Some(10240));
        assert_eq!(parse_status_number(status, "VmHWM:"), Some(20480));
        assert_eq!(parse_status_number(status, "VmSwap:"), None);
        let status = "voluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(
            parse_status_number(status, "voluntary_ctxt_switches:"),
            Some(12)
        );
        assert_eq!(
            parse_status_number(status, "nonvoluntary_ctxt_switches:"),
            Some(3)
        );
    }

    #[test]
    fn this_process_can_be_probed_and_processes_add_up() {
        let probe = Probe::new(&[std::process::id()]);
        assert!(probe.cpu_micros().is_some());
        // The test runner's threads include this one, named after the test.
        let threads = probe.thread_cpu_micros().expect("this process's threads");
        let me = std::thread::current()
            .name()
            .map(|n| n.chars().take(15).collect::<String>());
        assert!(
            me.is_some_and(|me| threads.contains_key(&me)),
            "{threads:?}"
        );
        assert_eq!(Probe::new(&[]).thread_cpu_micros(), None);
        // Waiting gives the core away: a context switch.
        let switches = probe.context_switches().expect("this process's switches");
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(probe.context_switches().is_some_and(|now| now > switches));
        assert_eq!(Probe::new(&[]).context_switches(), None);
        let rss = probe.rss_kib().expect("this process's memory");
        assert!(rss > 0);
        assert_eq!(Probe::new(&[]).rss_kib(), None);
        // Two processes add up (here, the same one twice).
        let twice = Probe::new(&[std::process::id(); 2]).peak_rss_kib();
        assert!(
            twice.is_some_and(|kib| kib >= 2 * rss),
            "{twice:?} vs {rss}"
        );
    }
}
