//! `loadgen`: command-line front end of [`cutover_loadgen`].
//!
//! Exit status: 0 when the run completed (failed requests are data in the
//! summary, not an error), 2 for invalid arguments (including a target that
//! is not loopback), 1 when an output file could not be written.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cutover_loadgen::{Config, run, target};

/// Load generator for zero-downtime release tests.
///
/// Sends GETs and POSTs over a fixed pool of keep-alive connections at a
/// fixed rate until --duration elapses, SIGTERM/SIGINT arrives, or the
/// --stop-file exists; then writes a JSON summary. Only loopback targets
/// (127.0.0.0/8, ::1, localhost) are allowed.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    /// Base URL of the service, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,

    /// Total requests per second, over all connections
    #[arg(long, value_parser = parse_rate)]
    rate: f64,

    /// Stop after this long (e.g. 30s, 500ms, 2m); default: until a signal or the stop file
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Stop once this file exists (checked every 50 ms); must not exist at start
    #[arg(long)]
    stop_file: Option<PathBuf>,

    /// Number of keep-alive connections
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,

    /// Fraction of requests that are writes (POST), 0 to 1
    #[arg(long, default_value_t = 0.2, value_parser = parse_ratio)]
    write_ratio: f64,

    /// Path (and query) of reads
    #[arg(long, default_value = "/users?limit=5", value_parser = parse_path)]
    read_path: String,

    /// Path of writes
    #[arg(long, default_value = "/users", value_parser = parse_path)]
    write_path: String,

    /// Limit on one request including its retry (e.g. 5s)
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,

    /// Write the summary JSON here instead of stdout
    #[arg(long)]
    out: Option<PathBuf>,

    /// Write one CSV line per request here: unix_ms,method,outcome,status,version,latency_us
    #[arg(long)]
    timeline: Option<PathBuf>,

    /// Create this file once the first request succeeded
    #[arg(long)]
    ready_file: Option<PathBuf>,

    /// Print a line of live figures to stderr every second: requests, failures by class, and
    /// the last second's responses by version
    #[arg(long)]
    progress: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // exits 2 on invalid arguments
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> ExitCode {
    let usage_error = |msg: String| {
        eprintln!("loadgen: error: {msg}");
        ExitCode::from(2)
    };
    let target = match target::resolve(&cli.url).await {
        Ok(t) => t,
        Err(e) => return usage_error(format!("--url: {e}")),
    };
    if let Some(stop) = &cli.stop_file
        && stop.exists()
    {
        return usage_error(format!(
            "--stop-file {} already exists; remove it first, or the run would stop at once",
            stop.display()
        ));
    }

    let config = Config {
        target,
        rate: cli.rate,
        connections: cli.connections.into(),
        duration: cli.duration,
        stop_file: cli.stop_file,
        write_ratio: cli.write_ratio,
        read_path: cli.read_path,
        write_path: cli.write_path,
        timeout: cli.timeout,
        timeline: cli.timeline,
        ready_file: cli.ready_file,
        progress: cli.progress,
    };
    let summary = match run(config, shutdown_signal()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: error: writing the timeline: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    json.push('\n');
    let written = match &cli.out {
        Some(path) => std::fs::write(path, json),
        None => {
            print!("{json}");
            Ok(())
        }
    };
    if let Err(e) = written {
        eprintln!("loadgen: error: writing the summary: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                eprintln!("loadgen: warning: cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1_000_000.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate between 0 (exclusive) and 1000000"
        )),
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a number from 0 to 1")),
    }
}

fn parse_path(s: &str) -> Result<String, String> {
    if s.starts_with('/')
        && !s
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} must start with / and contain no spaces"))
    }
}

/// `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds; fractions allowed.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    match number.parse::<f64>() {
        Ok(n) if n > 0.0 && (n * scale).is_finite() && n * scale < 1e9 => {
            Ok(Duration::from_secs_f64(n * scale))
        }
        _ => Err(format!(
            "{s:?} is not a positive duration like 30s or 500ms"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "0s", "-1s", "3 s", "5d", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
