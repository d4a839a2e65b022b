//! TSBS "cpu-only" data as CSV in the flat layout (tags denormalised into
//! every row).
//!
//! One row per (host, tick), time-major: every host of tick 0, then every
//! host of tick 1, and so on. Each host's ten tags are drawn once; each of
//! its ten metrics is a random walk that starts uniformly in [0, 100], moves
//! by a standard-normal step per tick (the first tick shows the starting
//! value) and is clamped to [0, 100]. Values are printed truncated to
//! integers, as current TSBS does.
//!
//! Two independent ChaCha8 streams derived from the seed drive the tags and
//! the walks, so the output is byte-identical for the same arguments.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Column names in table order.
pub const TAGS: [&str; 10] = [
    "hostname",
    "region",
    "datacenter",
    "rack",
    "os",
    "arch",
    "team",
    "service",
    "service_version",
    "service_environment",
];
pub const METRICS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];

/// AWS regions and their availability zones, as TSBS assigns them.
const REGIONS: [(&str, &[&str]); 9] = [
    (
        "us-east-1",
        &["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"],
    ),
    ("us-west-1", &["us-west-1a", "us-west-1b"]),
    ("us-west-2", &["us-west-2a", "us-west-2b", "us-west-2c"]),
    ("eu-west-1", &["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    ("eu-central-1", &["eu-central-1a", "eu-central-1b"]),
    ("ap-southeast-1", &["ap-southeast-1a", "ap-southeast-1b"]),
    ("ap-southeast-2", &["ap-southeast-2a", "ap-southeast-2b"]),
    ("ap-northeast-1", &["ap-northeast-1a", "ap-northeast-1c"]),
    ("sa-east-1", &["sa-east-1a", "sa-east-1b", "sa-east-1c"]),
];
const OSES: [&str; 3] = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
const ARCHES: [&str; 2] = ["x64", "x86"];
const TEAMS: [&str; 4] = ["SF", "NYC", "LON", "CHI"];
const ENVIRONMENTS: [&str; 3] = ["production", "staging", "test"];
const RACKS: u32 = 100;
const SERVICES: u32 = 20;
const SERVICE_VERSIONS: u32 = 2;

const WALK_MIN: f64 = 0.0;
const WALK_MAX: f64 = 100.0;

/// ChaCha stream numbers: tags and walks never share random numbers.
const TAG_STREAM: u64 = 1;
const WALK_STREAM: u64 = 2;

/// Bytes buffered before a write to the output.
const OUT_BUFFER: usize = 1 << 20;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub scale: u32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Tick length in microseconds.
    pub interval_us: i64,
    pub seed: u64,
}

impl Spec {
    /// Ticks in [start, end): floor((end - start) / interval).
    pub fn ticks(&self) -> u64 {
        let span = (self.end - self.start).num_microseconds().unwrap_or(0);
        if span <= 0 {
            0
        } else {
            (span / self.interval_us) as u64
        }
    }

    pub fn rows(&self) -> u64 {
        self.ticks() * u64::from(self.scale)
    }
}

/// Parses "10s", "500ms", "1m", "2h", "1d", "250us" (a bare number is seconds)
/// into microseconds.
pub fn parse_interval(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid interval {text:?}: expected e.g. 10s, 500ms, 1m"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1e6,
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "m" | "min" | "mins" | "minute" | "minutes" => 60e6,
        "h" | "hour" | "hours" => 3600e6,
        "d" | "day" | "days" => 86_400e6,
        other => return Err(format!("invalid interval unit {other:?} in {text:?}")),
    };
    let us = (value * scale).round();
    if !(1.0..9.0e18).contains(&us) {
        return Err(format!("interval {text:?} must be at least 1 microsecond"));
    }
    Ok(us as i64)
}

/// Parses an RFC 3339 instant ("2016-01-01T00:00:00Z").
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("invalid timestamp {text:?} (expected e.g. 2016-01-01T00:00:00Z): {e}")
        })
}

/// A timestamp as PostgreSQL prints a timestamptz in UTC:
/// `2016-01-01 00:00:10+00`, with a fraction only when there is one.
fn format_timestamp(t: DateTime<Utc>) -> String {
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = t.timestamp_subsec_micros();
    if micros != 0 {
        let frac = format!(".{micros:06}");
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str("+00");
    s
}

/// A host's tags, already joined as the CSV text that follows the timestamp.
fn host_prefixes(scale: u32, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(TAG_STREAM);
    (0..scale)
        .map(|i| {
            let (region, zones) = REGIONS[rng.random_range(0..REGIONS.len())];
            let datacenter = zones[rng.random_range(0..zones.len())];
            let rack = rng.random_range(0..RACKS);
            let os = OSES[rng.random_range(0..OSES.len())];
            let arch = ARCHES[rng.random_range(0..ARCHES.len())];
            let team = TEAMS[rng.random_range(0..TEAMS.len())];
            let service = rng.random_range(0..SERVICES);
            let version = rng.random_range(0..SERVICE_VERSIONS);
            let env = ENVIRONMENTS[rng.random_range(0..ENVIRONMENTS.len())];
            format!(
                ",host_{i},{region},{datacenter},{rack},{os},{arch},{team},{service},{version},{env}"
            )
            .into_bytes()
        })
        .collect()
}

/// Standard-normal draws by Marsaglia's polar method, two at a time.
struct Normals {
    rng: ChaCha8Rng,
    spare: Option<f64>,
}

impl Normals {
    fn next(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        loop {
            let u = 2.0 * self.rng.random::<f64>() - 1.0;
            let v = 2.0 * self.rng.random::<f64>() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * f);
                return u * f;
            }
        }
    }
}

/// Writes the whole data set to `out`; returns the number of rows.
pub fn generate(spec: &Spec, out: &mut dyn Write) -> std::io::Result<u64> {
    let hosts = host_prefixes(spec.scale, spec.seed);
    let mut walks = Normals {
        rng: {
            let mut r = ChaCha8Rng::seed_from_u64(spec.seed);
            r.set_stream(WALK_STREAM);
            r
        },
        spare: None,
    };
    let n_metrics = METRICS.len();
    let mut state: Vec<f64> = (0..hosts.len() * n_metrics)
        .map(|_| walks.rng.random::<f64>() * (WALK_MAX - WALK_MIN) + WALK_MIN)
        .collect();
    // ",0" .. ",100": every value a truncated walk can take.
    let values: Vec<Vec<u8>> = (0..=100).map(|v| format!(",{v}").into_bytes()).collect();

    let mut buf: Vec<u8> = Vec::with_capacity(OUT_BUFFER + 4096);
    let mut rows = 0u64;
    for tick in 0..spec.ticks() {
        let offset = chrono::Duration::microseconds(spec.interval_us * tick as i64);
        let ts = format_timestamp(spec.start + offset);
        for (h, prefix) in hosts.iter().enumerate() {
            buf.extend_from_slice(ts.as_bytes());
            buf.extend_from_slice(prefix);
            for s in &mut state[h * n_metrics..(h + 1) * n_metrics] {
                if tick > 0 {
                    *s = (*s + walks.next()).clamp(WALK_MIN, WALK_MAX);
                }
                buf.extend_from_slice(&values[*s as usize]);
            }
            buf.push(b'\n');
            rows += 1;
            if buf.len() >= OUT_BUFFER {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(rows)
}

/// Runs `gen`: to `out` (written as `<out>.partial`, renamed when complete)
/// or to stdout.
pub fn run(spec: &Spec, out: Option<PathBuf>) -> Result<(), String> {
    let started = std::time::Instant::now();
    let rows = match &out {
        Some(path) => {
            let mut partial = path.clone().into_os_string();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let mut file = std::fs::File::create(&partial)
                .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
            let rows = generate(spec, &mut file)
                .map_err(|e| format!("writing {}: {e}", partial.display()))?;
            file.sync_all()
                .map_err(|e| format!("syncing {}: {e}", partial.display()))?;
            drop(file);
            std::fs::rename(&partial, path)
                .map_err(|e| format!("renaming to {}: {e}", path.display()))?;
            rows
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match generate(spec, &mut lock) {
                Ok(rows) => rows,
                // `gen | head` is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(format!("writing to stdout: {e}")),
            }
        }
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {rows} rows ({} hosts x {} ticks) in {secs:.2} s ({:.0} rows/s)",
        spec.scale,
        spec.ticks(),
        rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// The DDL the loader runs.
pub fn create_table_sql() -> String {
    let mut cols = vec!["time timestamptz NOT NULL".to_string()];
    cols.extend(TAGS.iter().map(|t| format!("{t} text")));
    cols.extend(METRICS.iter().map(|m| format!("{m} double precision")));
    format!("CREATE TABLE cpu ({})", cols.join(", "))
}

/// TSBS's series index, which its TimescaleDB loader creates with the
/// table: on Tempora it makes files clustered by host within each time slice.
pub const CREATE_INDEX_SQL: &str =
    "CREATE INDEX cpu_hostname_time_idx ON cpu (hostname, time DESC)";

pub const CREATE_HYPERTABLE_SQL: &str =
    "SELECT create_hypertable('cpu', 'time', chunk_time_interval => INTERVAL '12 hours')";

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(scale: u32, end: &str) -> Spec {
        Spec {
            scale,
            start: parse_instant("2016-01-01T00:00:00Z").unwrap(),
            end: parse_instant(end).unwrap(),
            interval_us: parse_interval("10s").unwrap(),
            seed: 123,
        }
    }

    fn csv(spec: &Spec) -> String {
        let mut out = Vec::new();
        let rows = generate(spec, &mut out).unwrap();
        assert_eq!(rows, spec.rows());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("10s").unwrap(), 10_000_000);
        assert_eq!(parse_interval("500ms").unwrap(), 500_000);
        assert_eq!(parse_interval("1m").unwrap(), 60_000_000);
        assert_eq!(parse_interval("2h").unwrap(), 7_200_000_000);
        assert_eq!(parse_interval("7").unwrap(), 7_000_000);
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("10 parsecs").is_err());
    }

    #[test]
    fn row_count_and_shape() {
        let s = spec(3, "2016-01-01T00:01:05Z"); // 6 whole ticks
        assert_eq!(s.ticks(), 6);
        let text = csv(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 18);
        assert!(lines[0].starts_with("2016-01-01 00:00:00+00,host_0,"));
        assert!(lines[2].starts_with("2016-01-01 00:00:00+00,host_2,"));
        assert!(lines[3].starts_with("2016-01-01 00:00:10+00,host_0,"));
        for line in &lines {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 1 + TAGS.len() + METRICS.len());
            for v in &fields[11..] {
                let v: i64 = v.parse().unwrap();
                assert!((0..=100).contains(&v));
            }
        }
        // Tags are fixed per host.
        assert_eq!(
            lines[0].split(',').skip(1).take(10).collect::<Vec<_>>(),
            lines[15].split(',').skip(1).take(10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = spec(5, "2016-01-01T00:10:00Z");
        assert_eq!(csv(&a), csv(&a));
        let mut b = a.clone();
        b.seed = 124;
        assert_ne!(csv(&a), csv(&b));
    }

    #[test]
    fn walks_move_by_small_steps() {
        let text = csv(&spec(1, "2016-01-01T01:00:00Z"));
        let rows: Vec<Vec<i64>> = text
            .lines()
            .map(|l| l.split(',').skip(11).map(|v| v.parse().unwrap()).collect())
            .collect();
        for pair in rows.windows(2) {
            for (x, y) in pair[0].iter().zip(&pair[1]) {
                // |N(0,1)| above 6 is practically impossible; truncation adds 1.
                assert!((x - y).abs() <= 7, "{x} -> {y}");
            }
        }
    }

    #[test]
    fn fractional_timestamps() {
        let t = parse_instant("2016-01-01T00:00:00.25Z").unwrap();
        assert_eq!(format_timestamp(t), "2016-01-01 00:00:00.25+00");
    }

    #[test]
    fn ddl() {
        let sql = create_table_sql();
        assert!(sql.starts_with("CREATE TABLE cpu (time timestamptz NOT NULL, hostname text,"));
        assert!(sql.ends_with("usage_guest_nice double precision)"));
    }
}
