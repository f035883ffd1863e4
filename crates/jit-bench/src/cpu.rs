//! CPU time of a process from the kernel's own accounting (`/proc/<pid>/stat`),
//! so that a slow IdP or load generator cannot hide or inflate jit's cost.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

/// Clock ticks per second when `getconf CLK_TCK` cannot tell (Linux's usual value).
const DEFAULT_TICKS_PER_SECOND: u64 = 100;

/// Reads the CPU time of processes, in the kernel's clock ticks.
#[derive(Clone, Copy, Debug)]
pub struct CpuClock {
    /// `sysconf(_SC_CLK_TCK)`.
    ticks_per_second: u64,
}

impl CpuClock {
    /// Asks `getconf CLK_TCK` once; falls back to 100.
    pub fn new() -> Self {
        let ticks_per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(DEFAULT_TICKS_PER_SECOND);
        Self { ticks_per_second }
    }

    /// Clock ticks per second.
    pub fn ticks_per_second(self) -> u64 {
        self.ticks_per_second
    }

    /// User + system CPU time so far of process `pid` (all its threads, dead ones included).
    pub fn process(self, pid: u32) -> Result<Duration> {
        self.read(&format!("/proc/{pid}/stat"))
    }

    /// User + system CPU time so far of this process.
    pub fn this_process(self) -> Result<Duration> {
        self.read("/proc/self/stat")
    }

    /// CPU time so far of every process whose command line contains `needle`, by pid: for
    /// instance the PostgreSQL backends serving one database, whose process titles name
    /// it (`postgres: 15/main: postgres <database> 127.0.0.1(…) idle`). Processes that
    /// cannot be read (gone, not ours) are left out; empty where `/proc` is missing.
    pub fn processes_with(self, needle: &str) -> HashMap<u32, Duration> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return HashMap::new() };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
            })
            .filter_map(|pid| Some((pid, self.process(pid).ok()?)))
            .collect()
    }

    fn read(self, path: &str) -> Result<Duration> {
        let stat = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        let ticks = cpu_ticks(&stat).with_context(|| format!("{path} has no utime/stime fields: {stat:?}"))?;
        Ok(ticks_to_duration(ticks, self.ticks_per_second))
    }
}

/// `utime + stime` (fields 14 and 15, in clock ticks) of a `/proc/<pid>/stat` line. The
/// command name (field 2) is in parentheses and may itself hold spaces and parentheses, so
/// the fields are counted from its last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the command come field 3 (state), 4, ... : utime (14) is the 12th, stime (15) the 13th.
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// CPU time spent between two snapshots of [`CpuClock::processes_with`]: a process that
/// appeared in between counts from zero; one that ended in between is lost.
pub fn spent_between(before: &HashMap<u32, Duration>, after: &HashMap<u32, Duration>) -> Duration {
    after.iter().map(|(pid, now)| now.saturating_sub(before.get(pid).copied().unwrap_or_default())).sum()
}

/// `ticks` clock ticks as a duration.
pub fn ticks_to_duration(ticks: u64, ticks_per_second: u64) -> Duration {
    let per_second = ticks_per_second.max(1);
    let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(per_second);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_the_command_name() {
        let stat = "4242 (jit) S 1 4242 4242 0 -1 4194560 1734 0 0 0 250 37 0 0 20 0 9 0 123456 1000 200 \
                    18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(cpu_ticks(stat), Some(287));
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat = "77 (tokio (runtime) worker 1)) R 1 77 77 0 -1 0 0 0 0 0 12 3 0 0 20 0 1 0 5 0 0\n";
        assert_eq!(cpu_ticks(stat), Some(15));
    }

    #[test]
    fn a_truncated_or_garbled_line_is_none() {
        assert_eq!(cpu_ticks("12 (x) S 1 2 3"), None);
        assert_eq!(cpu_ticks("no parentheses at all"), None);
        assert_eq!(cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 ten 3"), None);
    }

    #[test]
    fn ticks_become_durations() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        assert_eq!(ticks_to_duration(3, 1000), Duration::from_millis(3));
        assert_eq!(ticks_to_duration(1, 0), Duration::from_secs(1), "a zero rate counts as one tick a second");
    }

    #[test]
    fn spending_of_a_group_of_processes() {
        let ms = Duration::from_millis;
        let before = HashMap::from([(1, ms(100)), (2, ms(50)), (3, ms(70))]);
        let after = HashMap::from([(1, ms(130)), (2, ms(50)), (4, ms(20))]);
        assert_eq!(spent_between(&before, &after), ms(50), "30 by pid 1, 20 by the new pid 4, pid 3 lost");
        assert_eq!(spent_between(&HashMap::new(), &HashMap::new()), Duration::ZERO);
    }

    #[test]
    fn finds_processes_by_command_line() {
        let clock = CpuClock::new();
        let needle = std::env::args().next().unwrap();
        assert!(clock.processes_with(&needle).contains_key(&std::process::id()));
        assert!(clock.processes_with("no process has this in its command line \u{1}").is_empty());
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let clock = CpuClock::new();
        assert!(clock.ticks_per_second() > 0);
        let spent = clock.this_process().unwrap();
        assert!(spent < Duration::from_secs(3600));
        assert!(clock.process(std::process::id()).is_ok());
    }
}
