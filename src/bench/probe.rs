//! What a server costs, read from /proc: CPU time and proportional memory (PSS) of the server
//! process and every process it forked (vsftpd runs two per session; Ferry runs one in all).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::time::{Duration, Instant};

/// A server's process tree, named by its root process id.
#[derive(Debug, Clone, Copy)]
pub struct ProcessTree {
    pub root: u32,
}

/// How often [`ProcessTree::settle`] looks again.
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// One process as /proc/PID/stat shows it.
struct ProcessStat {
    /// Exited but not yet reaped: its children's CPU time is not in any counter until then.
    zombie: bool,
    parent: u32,
    /// utime + stime + cutime + cstime, in clock ticks: the process's own CPU time and that of
    /// the children it has reaped (vsftpd's listener reaps every finished session).
    ticks: u64,
}

/// CPU seconds this process (the load generator) has spent so far, to the microsecond
/// (the /proc ticks that [`ProcessTree::cpu_seconds`] reads are 10 ms).
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

impl ProcessTree {
    /// CPU seconds spent so far by the root and its live descendants (each including the
    /// children it reaped). Differences of two readings give a scenario's cost.
    pub fn cpu_seconds(&self) -> io::Result<f64> {
        let stats = all_processes();
        let ticks: u64 = self
            .members(&stats)?
            .iter()
            .filter_map(|pid| stats.get(pid))
            .map(|stat| stat.ticks)
            .sum();
        // SAFETY: sysconf has no preconditions.
        let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        Ok(ticks as f64 / ticks_per_second as f64)
    }

    /// Proportional set size of the tree in KiB: shared pages count once in total, split
    /// between the processes that share them, so forked servers are not counted many times.
    pub fn pss_kib(&self) -> io::Result<u64> {
        let stats = all_processes();
        let mut total = 0;
        for pid in self.members(&stats)? {
            // A process that exited since the scan has no memory left to count.
            if let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
                total += rollup
                    .lines()
                    .find_map(|line| line.strip_prefix("Pss:"))
                    .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
                    .unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// Processes in the tree now (1 for a server that does not fork).
    pub fn size(&self) -> io::Result<usize> {
        Ok(self.members(&all_processes())?.len())
    }

    /// Waits (at most `limit`) until the tree is back to at most `size` processes and none is
    /// a zombie. A forking server's session processes exit after the client's last reply, and
    /// their CPU time reaches the root's counters only once they are reaped; reading before
    /// that would bill one scenario's work to the next.
    pub async fn settle(&self, size: usize, limit: Duration) -> io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let stats = all_processes();
            let members = self.members(&stats)?;
            let has_zombie = members
                .iter()
                .any(|pid| stats.get(pid).is_some_and(|stat| stat.zombie));
            if (members.len() <= size && !has_zombie) || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// The root and all its descendants.
    fn members(&self, stats: &HashMap<u32, ProcessStat>) -> io::Result<Vec<u32>> {
        if !stats.contains_key(&self.root) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no process {}", self.root),
            ));
        }
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, stat) in stats {
            children.entry(stat.parent).or_default().push(*pid);
        }
        let mut members = vec![self.root];
        let mut next = 0;
        while next < members.len() {
            if let Some(kids) = children.get(&members[next]) {
                members.extend(kids);
            }
            next += 1;
        }
        Ok(members)
    }
}

/// Every process on the machine; those that vanish while scanning are skipped.
fn all_processes() -> HashMap<u32, ProcessStat> {
    let mut stats = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return stats;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
        {
            stats.insert(pid, stat);
        }
    }
    stats
}

/// Parses /proc/PID/stat. The command name (field 2) may contain spaces and parentheses, so
/// fields are counted from the last `)`: field 3 (state) is the first after it.
fn parse_stat(text: &str) -> Option<ProcessStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
    Some(ProcessStat {
        zombie: fields.first() == Some(&"Z"),
        parent: u32::try_from(field(4)?).ok()?,
        ticks: field(14)? + field(15)? + field(16)? + field(17)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "42 (vs ftpd) (x) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0";
        let stat = parse_stat(text).expect("parses");
        assert_eq!(stat.parent, 7);
        assert!(!stat.zombie);
        assert_eq!(stat.ticks, 11 + 22 + 33 + 44);
    }

    #[test]
    fn own_process_has_cpu_time_and_memory() {
        let tree = ProcessTree {
            root: std::process::id(),
        };
        assert!(tree.cpu_seconds().expect("cpu") >= 0.0);
        assert!(tree.pss_kib().expect("pss") > 0);
    }
}
