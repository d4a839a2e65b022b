//! The 15 TSBS devops "cpu-only" query types, as SQL for the flat `cpu`
//! table that `gen` writes (tags in every row, a `hostname` column), in the
//! TimescaleDB dialect (`time_bucket`).
//!
//! Semantics follow TSBS's query generator for TimescaleDB: windows and bucket
//! widths are those of its code (1-minute buckets for single-groupby, 8-hour
//! windows for cpu-max-all, 12-hour windows for double-groupby and high-cpu).
//!
//! - A random window of width W starts uniformly in `[start, end - W)` at
//!   microsecond resolution and ends at `start + W`. If the data set is not
//!   longer than W, the window starts at the data set's start (and a warning
//!   says so).
//! - Random hosts are distinct, drawn uniformly from `host_0 .. host_{scale-1}`.
//! - Time literals are written as TSBS writes them:
//!   `'2016-01-01 05:17:33.123456 +0000'`.
//!
//! Every query type draws from its own ChaCha8 stream (seed, type name), so the
//! statements of one type depend only on the seed, the data set's span and the
//! scale, not on how many statements or which other types are generated.

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gen::METRICS;

const MINUTE_US: i64 = 60_000_000;
const HOUR_US: i64 = 60 * MINUTE_US;
const MAX_ALL_HOURS: i64 = 8;
const DOUBLE_GROUPBY_HOURS: i64 = 12;
const HIGH_CPU_HOURS: i64 = 12;

/// What a query type computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// max() of the first `metrics` metrics of `hosts` random hosts per
    /// minute over a random `hours`-hour window.
    SingleGroupby {
        metrics: usize,
        hosts: usize,
        hours: i64,
    },
    /// max() of all ten metrics of `hosts` random hosts per hour over a random
    /// 8-hour window.
    CpuMaxAll { hosts: usize },
    /// avg() of the first `metrics` metrics per (hour, host) for every host
    /// over a random 12-hour window.
    DoubleGroupby { metrics: usize },
    /// Every row with usage_user > 90 in a random 12-hour window, of one
    /// random host or (`hosts == None`) of all of them.
    HighCpu { hosts: Option<usize> },
    /// The newest row of every host.
    Lastpoint,
    /// max(usage_user) of the five newest minutes before the end of a random
    /// 1-hour window.
    GroupbyOrderbyLimit,
}

/// One of the TSBS query types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryType {
    pub name: &'static str,
    pub kind: Kind,
}

const fn of(name: &'static str, kind: Kind) -> QueryType {
    QueryType { name, kind }
}

const fn single(name: &'static str, metrics: usize, hosts: usize, hours: i64) -> QueryType {
    of(
        name,
        Kind::SingleGroupby {
            metrics,
            hosts,
            hours,
        },
    )
}

/// The query types in TSBS's order.
pub const QUERY_TYPES: [QueryType; 15] = [
    single("single-groupby-1-1-1", 1, 1, 1),
    single("single-groupby-1-1-12", 1, 1, 12),
    single("single-groupby-1-8-1", 1, 8, 1),
    single("single-groupby-5-1-1", 5, 1, 1),
    single("single-groupby-5-1-12", 5, 1, 12),
    single("single-groupby-5-8-1", 5, 8, 1),
    of("cpu-max-all-1", Kind::CpuMaxAll { hosts: 1 }),
    of("cpu-max-all-8", Kind::CpuMaxAll { hosts: 8 }),
    of("double-groupby-1", Kind::DoubleGroupby { metrics: 1 }),
    of("double-groupby-5", Kind::DoubleGroupby { metrics: 5 }),
    of("double-groupby-all", Kind::DoubleGroupby { metrics: 10 }),
    of("high-cpu-1", Kind::HighCpu { hosts: Some(1) }),
    of("high-cpu-all", Kind::HighCpu { hosts: None }),
    of("lastpoint", Kind::Lastpoint),
    of("groupby-orderby-limit", Kind::GroupbyOrderbyLimit),
];

impl QueryType {
    /// The query type called `name`.
    pub fn by_name(name: &str) -> Result<QueryType, String> {
        QUERY_TYPES
            .iter()
            .find(|t| t.name == name)
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = QUERY_TYPES.iter().map(|t| t.name).collect();
                format!("unknown query type {name:?} (known: {})", known.join(", "))
            })
    }

    /// Whether the statement's ORDER BY fixes the order of every result row;
    /// otherwise results are compared as sets of rows.
    pub fn ordered(&self) -> bool {
        !matches!(self.kind, Kind::HighCpu { .. })
    }

    /// Width of the random window, if the type has one.
    fn window_us(&self) -> Option<i64> {
        match self.kind {
            Kind::SingleGroupby { hours, .. } => Some(hours * HOUR_US),
            Kind::CpuMaxAll { .. } => Some(MAX_ALL_HOURS * HOUR_US),
            Kind::DoubleGroupby { .. } => Some(DOUBLE_GROUPBY_HOURS * HOUR_US),
            Kind::HighCpu { .. } => Some(HIGH_CPU_HOURS * HOUR_US),
            Kind::Lastpoint => None,
            Kind::GroupbyOrderbyLimit => Some(HOUR_US),
        }
    }

    /// Hosts the type picks at random.
    fn hosts(&self) -> usize {
        match self.kind {
            Kind::SingleGroupby { hosts, .. } | Kind::CpuMaxAll { hosts } => hosts,
            Kind::HighCpu { hosts } => hosts.unwrap_or(0),
            _ => 0,
        }
    }
}

/// The data set the queries are asked of.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    /// Number of hosts.
    pub scale: u32,
    pub start: DateTime<Utc>,
    /// End of the data, exclusive.
    pub end: DateTime<Utc>,
    pub seed: u64,
}

impl QuerySpec {
    fn start_us(&self) -> i64 {
        self.start.timestamp_micros()
    }

    fn end_us(&self) -> i64 {
        self.end.timestamp_micros()
    }

    /// Checks that `types` can be generated for this data set; returns the
    /// warnings to print (windows clamped to a data set shorter than them).
    pub fn check(&self, types: &[QueryType]) -> Result<Vec<String>, String> {
        if self.end <= self.start {
            return Err("the end must be after the start".into());
        }
        let span = self.end_us() - self.start_us();
        let mut warnings = Vec::new();
        for t in types {
            if t.hosts() > self.scale as usize {
                return Err(format!(
                    "{} needs {} hosts, the scale is {}",
                    t.name,
                    t.hosts(),
                    self.scale
                ));
            }
            if let Some(w) = t.window_us() {
                if w >= span {
                    warnings.push(format!(
                        "{}: its {} h window is not shorter than the data ({} h); it starts at the data's start",
                        t.name,
                        w / HOUR_US,
                        span as f64 / HOUR_US as f64
                    ));
                }
            }
        }
        Ok(warnings)
    }

    /// The first `count` statements of query type `t`, in order.
    pub fn generate(&self, t: &QueryType, count: usize) -> Vec<String> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream_of(t.name));
        (0..count).map(|_| self.one(t, &mut rng)).collect()
    }

    fn one(&self, t: &QueryType, rng: &mut ChaCha8Rng) -> String {
        match t.kind {
            Kind::SingleGroupby {
                metrics,
                hosts,
                hours,
            } => {
                let (from, to) = self.window(rng, hours * HOUR_US);
                let hosts = self.random_hosts(rng, hosts);
                single_groupby_sql(metrics, &hosts, from, to)
            }
            Kind::CpuMaxAll { hosts } => {
                let (from, to) = self.window(rng, MAX_ALL_HOURS * HOUR_US);
                let hosts = self.random_hosts(rng, hosts);
                cpu_max_all_sql(&hosts, from, to)
            }
            Kind::DoubleGroupby { metrics } => {
                let (from, to) = self.window(rng, DOUBLE_GROUPBY_HOURS * HOUR_US);
                double_groupby_sql(metrics, from, to)
            }
            Kind::HighCpu { hosts } => {
                let (from, to) = self.window(rng, HIGH_CPU_HOURS * HOUR_US);
                let hosts = hosts.map(|n| self.random_hosts(rng, n));
                high_cpu_sql(hosts.as_deref(), from, to)
            }
            Kind::Lastpoint => lastpoint_sql(),
            Kind::GroupbyOrderbyLimit => {
                let (_, to) = self.window(rng, HOUR_US);
                groupby_orderby_limit_sql(to)
            }
        }
    }

    /// A window of `width` µs starting uniformly in `[start, end - width)`.
    fn window(&self, rng: &mut ChaCha8Rng, width: i64) -> (i64, i64) {
        let (lower, upper) = (self.start_us(), self.end_us() - width);
        let from = if upper <= lower {
            lower
        } else {
            lower + rng.random_range(0..upper - lower)
        };
        (from, from + width)
    }

    /// `n` distinct host names drawn uniformly.
    fn random_hosts(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<String> {
        // A partial Fisher-Yates shuffle: the first n places end up holding a
        // uniform sample without repetition.
        let mut ids: Vec<u32> = (0..self.scale).collect();
        let n = n.min(ids.len());
        for i in 0..n {
            let j = rng.random_range(i..ids.len());
            ids.swap(i, j);
        }
        ids[..n].iter().map(|i| format!("host_{i}")).collect()
    }
}

/// The ChaCha stream of a query type: FNV-1a of its name.
fn stream_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A timestamp literal as TSBS writes it: `2016-01-01 05:17:33.123456 +0000`,
/// trailing zeros of the fraction dropped.
pub fn time_literal(us: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default();
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = us.rem_euclid(1_000_000);
    if micros != 0 {
        let frac = format!(".{micros:06}");
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000");
    s
}

fn bucket(seconds: i64) -> String {
    format!("time_bucket('{seconds} seconds', time)")
}

fn host_list(hosts: &[String]) -> String {
    let quoted: Vec<String> = hosts.iter().map(|h| format!("'{h}'")).collect();
    format!("hostname IN ({})", quoted.join(","))
}

fn single_groupby_sql(metrics: usize, hosts: &[String], from: i64, to: i64) -> String {
    let select: Vec<String> = METRICS[..metrics]
        .iter()
        .map(|m| format!("max({m}) as max_{m}"))
        .collect();
    format!(
        "SELECT {} AS minute, {} FROM cpu WHERE {} AND time >= '{}' AND time < '{}' \
         GROUP BY minute ORDER BY minute ASC",
        bucket(60),
        select.join(", "),
        host_list(hosts),
        time_literal(from),
        time_literal(to)
    )
}

fn cpu_max_all_sql(hosts: &[String], from: i64, to: i64) -> String {
    let select: Vec<String> = METRICS
        .iter()
        .map(|m| format!("max({m}) as max_{m}"))
        .collect();
    format!(
        "SELECT {} AS hour, {} FROM cpu WHERE {} AND time >= '{}' AND time < '{}' \
         GROUP BY hour ORDER BY hour",
        bucket(3600),
        select.join(", "),
        host_list(hosts),
        time_literal(from),
        time_literal(to)
    )
}

fn double_groupby_sql(metrics: usize, from: i64, to: i64) -> String {
    let metrics = &METRICS[..metrics];
    let select: Vec<String> = metrics
        .iter()
        .map(|m| format!("avg({m}) as mean_{m}"))
        .collect();
    let means: Vec<String> = metrics.iter().map(|m| format!("mean_{m}")).collect();
    format!(
        "WITH cpu_avg AS (SELECT {} as hour, hostname, {} FROM cpu \
         WHERE time >= '{}' AND time < '{}' GROUP BY 1, 2) \
         SELECT hour, hostname, {} FROM cpu_avg ORDER BY hour, hostname",
        bucket(3600),
        select.join(", "),
        time_literal(from),
        time_literal(to),
        means.join(", ")
    )
}

fn high_cpu_sql(hosts: Option<&[String]>, from: i64, to: i64) -> String {
    let hosts = hosts
        .map(|h| format!(" AND {}", host_list(h)))
        .unwrap_or_default();
    format!(
        "SELECT * FROM cpu WHERE usage_user > 90.0 and time >= '{}' AND time < '{}'{hosts}",
        time_literal(from),
        time_literal(to)
    )
}

fn lastpoint_sql() -> String {
    "SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC".into()
}

fn groupby_orderby_limit_sql(to: i64) -> String {
    format!(
        "SELECT {} AS minute, max(usage_user) FROM cpu WHERE time < '{}' \
         GROUP BY minute ORDER BY minute DESC LIMIT 5",
        bucket(60),
        time_literal(to)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::parse_instant;

    fn spec(end: &str) -> QuerySpec {
        QuerySpec {
            scale: 100,
            start: parse_instant("2016-01-01T00:00:00Z").unwrap(),
            end: parse_instant(end).unwrap(),
            seed: 123,
        }
    }

    const T0: i64 = 1_451_606_400_000_000; // 2016-01-01 00:00:00 UTC

    #[test]
    fn literals_as_tsbs_writes_them() {
        assert_eq!(time_literal(T0), "2016-01-01 00:00:00 +0000");
        assert_eq!(
            time_literal(T0 + 5 * HOUR_US + 17 * MINUTE_US + 33_123_456),
            "2016-01-01 05:17:33.123456 +0000"
        );
        assert_eq!(time_literal(T0 + 500_000), "2016-01-01 00:00:00.5 +0000");
    }

    #[test]
    fn statement_shapes() {
        let hosts = vec!["host_3".to_string(), "host_17".to_string()];
        assert_eq!(
            single_groupby_sql(2, &hosts, T0, T0 + HOUR_US),
            "SELECT time_bucket('60 seconds', time) AS minute, max(usage_user) as max_usage_user, \
             max(usage_system) as max_usage_system FROM cpu WHERE hostname IN ('host_3','host_17') \
             AND time >= '2016-01-01 00:00:00 +0000' AND time < '2016-01-01 01:00:00 +0000' \
             GROUP BY minute ORDER BY minute ASC"
        );
        let all_max = cpu_max_all_sql(&hosts[..1], T0, T0 + 8 * HOUR_US);
        assert!(all_max.starts_with(
            "SELECT time_bucket('3600 seconds', time) AS hour, max(usage_user) as max_usage_user, "
        ));
        assert!(all_max.ends_with(
            "max(usage_guest_nice) as max_usage_guest_nice FROM cpu WHERE hostname IN ('host_3') \
             AND time >= '2016-01-01 00:00:00 +0000' AND time < '2016-01-01 08:00:00 +0000' \
             GROUP BY hour ORDER BY hour"
        ));
        assert_eq!(
            double_groupby_sql(1, T0, T0 + 12 * HOUR_US),
            "WITH cpu_avg AS (SELECT time_bucket('3600 seconds', time) as hour, hostname, \
             avg(usage_user) as mean_usage_user FROM cpu WHERE time >= '2016-01-01 00:00:00 +0000' \
             AND time < '2016-01-01 12:00:00 +0000' GROUP BY 1, 2) \
             SELECT hour, hostname, mean_usage_user FROM cpu_avg ORDER BY hour, hostname"
        );
        assert_eq!(
            high_cpu_sql(Some(&hosts[1..]), T0, T0 + 12 * HOUR_US),
            "SELECT * FROM cpu WHERE usage_user > 90.0 and time >= '2016-01-01 00:00:00 +0000' \
             AND time < '2016-01-01 12:00:00 +0000' AND hostname IN ('host_17')"
        );
        assert_eq!(
            high_cpu_sql(None, T0, T0 + 12 * HOUR_US),
            "SELECT * FROM cpu WHERE usage_user > 90.0 and time >= '2016-01-01 00:00:00 +0000' \
             AND time < '2016-01-01 12:00:00 +0000'"
        );
        assert_eq!(
            groupby_orderby_limit_sql(T0 + HOUR_US),
            "SELECT time_bucket('60 seconds', time) AS minute, max(usage_user) FROM cpu \
             WHERE time < '2016-01-01 01:00:00 +0000' GROUP BY minute ORDER BY minute DESC LIMIT 5"
        );
    }

    #[test]
    fn deterministic_and_independent_of_count() {
        let s = spec("2016-01-02T00:00:00Z");
        for t in &QUERY_TYPES {
            let five = s.generate(t, 5);
            assert_eq!(five, s.generate(t, 5));
            assert_eq!(five[..2], s.generate(t, 2)[..]);
        }
        // Different seeds, different windows.
        let other = QuerySpec {
            seed: 124,
            ..s.clone()
        };
        let t = QueryType::by_name("high-cpu-all").unwrap();
        assert_ne!(s.generate(&t, 3), other.generate(&t, 3));
    }

    #[test]
    fn windows_and_hosts_stay_in_range() {
        let s = spec("2016-01-02T00:00:00Z");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for width in [HOUR_US, 12 * HOUR_US] {
            for _ in 0..1000 {
                let (from, to) = s.window(&mut rng, width);
                assert!(from >= s.start_us() && to <= s.end_us() && to - from == width);
            }
        }
        for _ in 0..200 {
            let mut hosts = s.random_hosts(&mut rng, 8);
            assert_eq!(hosts.len(), 8);
            assert!(hosts.iter().all(|h| {
                let n: u32 = h["host_".len()..].parse().unwrap();
                n < 100
            }));
            hosts.sort();
            hosts.dedup();
            assert_eq!(hosts.len(), 8);
        }
    }

    #[test]
    fn short_data_sets_are_clamped_with_a_warning() {
        let s = spec("2016-01-01T06:00:00Z");
        let warnings = s.check(&QUERY_TYPES).unwrap();
        // single-groupby-*-12, cpu-max-all (8 h), double-groupby and high-cpu (12 h).
        assert_eq!(warnings.len(), 2 + 2 + 3 + 2);
        let t = QueryType::by_name("double-groupby-1").unwrap();
        assert!(s.generate(&t, 1)[0].contains(
            "time >= '2016-01-01 00:00:00 +0000' AND time < '2016-01-01 12:00:00 +0000'"
        ));
        let tiny = QuerySpec { scale: 4, ..s };
        assert!(tiny.check(&QUERY_TYPES).is_err());
    }

    #[test]
    fn only_high_cpu_is_unordered() {
        let unordered: Vec<&str> = QUERY_TYPES
            .iter()
            .filter(|t| !t.ordered())
            .map(|t| t.name)
            .collect();
        assert_eq!(unordered, ["high-cpu-1", "high-cpu-all"]);
    }
}
