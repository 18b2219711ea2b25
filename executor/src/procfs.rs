//! Facts about a process of this machine, read from `/proc` (Linux; proc(5)): its state, its
//! start time and its command line. A process that is gone, or whose files cannot be read,
//! answers `None` (or, for [`is_zombie`], "acts no more").

/// The fields of `/proc/PID/stat` from field 3 (state) on. The command name (field 2) may hold
/// spaces and parentheses, so they are counted from the last `)`.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

/// When process `pid` started: `/proc/PID/stat` field 22, in clock ticks since boot. With the pid
/// it names one process for good (a pid is reused, a pid with its start time is not).
pub fn start_ticks(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` has exited and only waits to be reaped (state `Z` or `X`), or is gone: it acts
/// no more (a zombie whose parent does not reap it, as some container inits do not, never goes).
pub fn is_zombie(pid: i32) -> bool {
    stat_fields(pid)
        .and_then(|f| f.first().map(|s| s.starts_with(['Z', 'X'])))
        .unwrap_or(true)
}

/// Process `pid`'s command line, its arguments joined by spaces (empty when unknown).
pub fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}
