//! Session statements: SET, SHOW, RESET, BEGIN, COMMIT, ROLLBACK.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{
    Expr, Set, SetSessionAuthorizationParamKind, Statement, Value, ValueWithSpan,
};
use tempora_common::{Result, SqlState, TemporaError};

use crate::{Notice, Outcome, SqlSession};
use tempora_copy::zone::PgTimeZone;

/// Transaction status of a session, as ReadyForQuery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    Idle,
    InBlock,
    Failed,
}

/// Run-time parameters of a session, by PostgreSQL's names.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, (String, String)>,
    /// Where queries read them (`current_setting`).
    published: Arc<tempora_query::variables::SessionVariables>,
    /// Counts changes: a plan made under other settings is not reused.
    generation: u64,
}

/// (name as PostgreSQL spells it, default)
const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("DateStyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("IntervalStyle", "postgres"),
    ("is_superuser", "on"),
    ("password_encryption", "scram-sha-256"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", "15.6"),
    ("server_version_num", "150006"),
    ("session_authorization", "postgres"),
    // What a TimescaleDB server preloads; scripts read it before
    // `CREATE EXTENSION timescaledb`.
    ("shared_preload_libraries", "timescaledb"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("synchronous_commit", "on"),
    ("TimeZone", "UTC"),
    ("timescaledb.enable_chunk_append", "on"),
    ("timescaledb.license", "timescale"),
    ("timescaledb.telemetry_level", "off"),
    ("transaction_isolation", "read committed"),
];

/// Parameters clients may not change.
const READ_ONLY: &[&str] = &[
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
    "is_superuser",
    "session_authorization",
    "shared_preload_libraries",
    "timescaledb.license",
];

impl Default for Settings {
    fn default() -> Self {
        Self::published_to(Default::default())
    }
}

impl Settings {
    /// The defaults, published to `published` and kept in step with it.
    pub fn published_to(published: Arc<tempora_query::variables::SessionVariables>) -> Self {
        let values: BTreeMap<String, (String, String)> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_lowercase(), (k.to_string(), v.to_string())))
            .collect();
        for (k, v) in values.values() {
            published.declare(k, v);
        }
        Self {
            values,
            published,
            generation: 0,
        }
    }

    /// How many times a setting was changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// The parameters reported to the client at startup (ParameterStatus).
    pub fn reported(&self) -> Vec<(String, String)> {
        [
            "application_name",
            "client_encoding",
            "DateStyle",
            "integer_datetimes",
            "IntervalStyle",
            "is_superuser",
            "server_encoding",
            "server_version",
            "session_authorization",
            "standard_conforming_strings",
            "TimeZone",
        ]
        .iter()
        .filter_map(|k| Some((k.to_string(), self.get(k)?.to_string())))
        .collect()
    }

    /// A copy publishing nowhere: to validate a value without applying it.
    fn clone_detached(&self) -> Self {
        Self {
            values: self.values.clone(),
            published: Default::default(),
            generation: self.generation,
        }
    }

    /// A parameter's name as PostgreSQL spells it (`timezone` → `TimeZone`);
    /// a custom dotted name as given.
    pub fn canonical_name(&self, name: &str) -> String {
        self.values
            .get(&name.to_lowercase())
            .map_or_else(|| name.to_string(), |(canonical, _)| canonical.clone())
    }

    /// Sets a parameter, validating the values Tempora interprets.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let key = name.to_lowercase();
        // A dotted name outside TimescaleDB's prefix is a custom parameter,
        // as PostgreSQL takes any (`SET myapp.tenant = '42'`).
        if !self.values.contains_key(&key) && key.contains('.') && !key.starts_with("timescaledb.")
        {
            self.published.publish(&key, value);
            self.generation += 1;
            self.values.insert(key.clone(), (key, value.to_string()));
            return Ok(());
        }
        let Some((canonical, _)) = self.values.get(&key).cloned() else {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            ));
        };
        if READ_ONLY.contains(&key.as_str()) {
            // A server start parameter, as PostgreSQL words it.
            let when = if key == "shared_preload_libraries" {
                " without restarting the server"
            } else {
                ""
            };
            return Err(TemporaError::new(
                SqlState("55P02"),
                format!("parameter \"{key}\" cannot be changed{when}"),
            ));
        }
        let invalid = || {
            TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"{canonical}\": \"{value}\""),
            )
        };
        let value = match key.as_str() {
            // Shown by its canonical name (`Europe/Berlin`, `<-08>+08`).
            "timezone" => PgTimeZone::parse_setting(value)?.1,
            "datestyle" => {
                let v = value.to_uppercase();
                if !(v.contains("ISO")
                    || v.contains("MDY")
                    || v.contains("DMY")
                    || v.contains("YMD"))
                {
                    return Err(invalid());
                }
                // Only ISO output is produced; keep the order part as given.
                if v.contains("ISO") {
                    value.to_string()
                } else {
                    return Err(TemporaError::not_supported(format!(
                        "DateStyle \"{value}\""
                    )));
                }
            }
            "extra_float_digits" => {
                let n: i32 = value.parse().map_err(|_| invalid())?;
                if !(-15..=3).contains(&n) {
                    return Err(invalid());
                }
                value.to_string()
            }
            "synchronous_commit" => {
                // On one node every level but off waits for the local WAL sync.
                match value.to_lowercase().as_str() {
                    "on" | "true" | "yes" | "1" => "on".to_string(),
                    "off" | "false" | "no" | "0" => "off".to_string(),
                    v @ ("local" | "remote_write" | "remote_apply") => v.to_string(),
                    _ => {
                        return Err(invalid().with_hint(
                            "Available values: local, remote_write, remote_apply, on, off.",
                        ))
                    }
                }
            }
            "password_encryption" => match value.to_lowercase().as_str() {
                v @ ("md5" | "scram-sha-256") => v.to_string(),
                _ => return Err(invalid().with_hint("Available values: md5, scram-sha-256.")),
            },
            "timescaledb.enable_chunk_append" => match value.to_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => "on".to_string(),
                "off" | "false" | "no" | "0" => "off".to_string(),
                _ => return Err(invalid()),
            },
            "statement_timeout" => duration_ms(value)
                .ok_or_else(|| {
                    invalid().with_hint(
                        "Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\".",
                    )
                })
                .map(show_ms)?,
            "client_encoding" => {
                let v = value.to_uppercase().replace('-', "");
                if v != "UTF8" && v != "UNICODE" {
                    return Err(TemporaError::not_supported(format!(
                        "client_encoding \"{value}\""
                    )));
                }
                "UTF8".to_string()
            }
            _ => value.to_string(),
        };
        self.published.publish(&key, &value);
        self.generation += 1;
        self.values.insert(key, (canonical, value));
        Ok(())
    }

    /// Sets a parameter clients may not change (who the session is).
    pub(crate) fn set_fixed(&mut self, name: &str, value: &str) {
        let key = name.to_lowercase();
        if let Some((canonical, _)) = self.values.get(&key).cloned() {
            self.published.publish(&key, value);
            self.generation += 1;
            self.values.insert(key, (canonical, value.to_string()));
        }
    }

    pub fn reset(&mut self, name: &str) -> Result<()> {
        let key = name.to_lowercase();
        if key.contains('.') && !key.starts_with("timescaledb.") {
            // A custom parameter goes back to empty.
            return self.set(name, "");
        }
        match DEFAULTS.iter().find(|(k, _)| k.to_lowercase() == key) {
            Some((_, v)) => self.set(name, v),
            None => Err(TemporaError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            )),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.values().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

pub(crate) fn is_session_statement(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Reset(_)
            | Statement::Discard { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
    )
}

pub(crate) fn ends_transaction(stmt: &Statement) -> bool {
    matches!(stmt, Statement::Commit { .. } | Statement::Rollback { .. })
}

pub(crate) fn result_schema(stmt: &Statement) -> Option<SchemaRef> {
    match stmt {
        Statement::ShowVariable { variable } => {
            let name = show_name(variable);
            if name == "all" {
                return Some(show_all_schema());
            }
            // PostgreSQL names the column as it spells the parameter.
            let column = DEFAULTS
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                .map_or_else(|| name.to_lowercase(), |(k, _)| k.to_string());
            Some(Arc::new(Schema::new(vec![Field::new(
                column,
                DataType::Utf8,
                true,
            )])))
        }
        _ => None,
    }
}

fn show_all_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
    ]))
}

fn show_name(variable: &[datafusion::sql::sqlparser::ast::Ident]) -> String {
    let words: Vec<String> = variable.iter().map(|i| i.value.clone()).collect();
    // SQL's spellings of two parameters; other names are dotted
    // (`timescaledb.license`), which the parser gives in parts.
    match words.join(" ").to_lowercase().as_str() {
        "transaction isolation level" => "transaction_isolation".into(),
        "time zone" => "TimeZone".into(),
        _ => words.join("."),
    }
}

/// The text of a SET value as PostgreSQL takes it.
fn value_text(e: &Expr) -> String {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s) | Value::DoubleQuotedString(s),
            ..
        }) => s.clone(),
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

/// `SET TIME ZONE INTERVAL '...' [qualifier]` as the setting PostgreSQL makes
/// of it, `INTERVAL '<the interval as printed>'`: a bare number counts in
/// the qualifier's last unit (`INTERVAL '8' HOUR`), and the qualifier's last
/// unit truncates what is finer (`HOUR TO MINUTE` drops seconds).
fn time_zone_interval(iv: &datafusion::sql::sqlparser::ast::Interval) -> Result<String> {
    use datafusion::sql::sqlparser::ast::DateTimeField as F;
    let text = match iv.value.as_ref() {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s),
            ..
        }) => s.clone(),
        other => {
            return Err(TemporaError::syntax(format!(
                "syntax error at or near \"{other}\""
            )))
        }
    };
    let unit = iv.last_field.as_ref().or(iv.leading_field.as_ref());
    let mut v = tempora_copy::interval::parse_interval(&text)?;
    if let (Some(unit), Ok(n)) = (unit, text.trim().parse::<f64>()) {
        v = tempora_copy::interval::PgInterval {
            months: 0,
            days: 0,
            micros: 0,
        };
        match unit {
            F::Year | F::Years => v.months = (n * 12.0) as i32,
            F::Month | F::Months => v.months = n as i32,
            F::Day | F::Days => v.days = n as i32,
            F::Hour | F::Hours => v.micros = (n * 3_600_000_000.0) as i64,
            F::Minute | F::Minutes => v.micros = (n * 60_000_000.0) as i64,
            _ => v.micros = (n * 1_000_000.0) as i64,
        }
    }
    let step = match unit {
        Some(F::Hour | F::Hours) => 3_600_000_000,
        Some(F::Minute | F::Minutes) => 60_000_000,
        _ => 1,
    };
    v.micros = v.micros / step * step;
    let mut out = String::from("INTERVAL '");
    tempora_copy::text::write_interval(v.months, v.days, v.micros, &mut out);
    out.push('\'');
    Ok(out)
}

fn one_column(schema: SchemaRef, values: Vec<String>, tag: &str) -> Result<Outcome> {
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(values))])
        .map_err(|e| TemporaError::internal(e.to_string()))?;
    Ok(Outcome::Rows {
        schema,
        batches: vec![batch],
        tag: tag.into(),
    })
}

impl SqlSession {
    /// Applies a parameter and keeps DataFusion in step where it interprets it.
    pub fn set_parameter(&mut self, name: &str, value: &str) -> Result<()> {
        self.settings.set(name, value)?;
        if name.eq_ignore_ascii_case("timezone") {
            // DataFusion's `timestamptz` types and `now()` carry the zone in
            // Arrow's terms (`-03:00` for PostgreSQL's `+03:00`).
            let tz = self.time_zone().arrow_name();
            let state = self.context().state_ref();
            state.write().config_mut().options_mut().execution.time_zone = Some(tz);
            self.forget_df_state();
        }
        Ok(())
    }

    /// The session's time zone, from its `TimeZone` setting.
    pub fn time_zone(&self) -> PgTimeZone {
        PgTimeZone::of_setting(self.settings.get("TimeZone").unwrap_or("UTC"))
    }
}

/// `SELECT set_config(name, value, is_local)`: SET as a function, answering
/// with the value set. A local setting outside a transaction block ends
/// with the statement, as in PostgreSQL; inside one it stays, as SET LOCAL
/// does in Tempora.
pub(crate) async fn set_config(
    session: &mut SqlSession,
    args: &[Expr],
) -> Result<(Outcome, Vec<Notice>)> {
    use datafusion::common::ScalarValue;
    let mut values = Vec::with_capacity(3);
    for a in args {
        values.push(session.eval_constant(a).await?);
    }
    let text = |v: &ScalarValue| match v.cast_to(&DataType::Utf8) {
        Ok(ScalarValue::Utf8(s)) => s,
        _ => None,
    };
    let name = text(&values[0]).ok_or_else(|| {
        TemporaError::new(
            SqlState::NULL_VALUE_NOT_ALLOWED,
            "SET requires parameter name",
        )
    })?;
    let value = text(&values[1]).unwrap_or_default();
    let local = matches!(
        values[2].cast_to(&DataType::Boolean),
        Ok(ScalarValue::Boolean(Some(true)))
    );
    let shown = if local && session.tx == TxState::Idle {
        // Validated, then gone with the statement's own transaction.
        let mut scratch = session.settings.clone_detached();
        scratch.set(&name, &value)?;
        scratch.get(&name).unwrap_or_default().to_string()
    } else {
        session.set_parameter(&name, &value)?;
        session.settings.get(&name).unwrap_or_default().to_string()
    };
    Ok((
        one_column(set_config_schema(), vec![shown], "SELECT")?,
        vec![],
    ))
}

/// The result of `SELECT set_config(...)`.
pub(crate) fn set_config_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "set_config",
        DataType::Utf8,
        true,
    )]))
}

/// A time parameter's value in milliseconds: a bare number is
/// milliseconds, or a number with a unit (`500ms`, `2s`, `1min`, `1h`, `1d`).
pub(crate) fn duration_ms(value: &str) -> Option<u64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = (number * factor).round();
    (ms >= 0.0 && ms <= i32::MAX as f64).then_some(ms as u64)
}

/// A time in milliseconds as PostgreSQL shows it: in the largest unit that
/// divides it (`100ms`, `2s`, `1min`), `0` for none.
fn show_ms(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1000, "s"),
    ];
    for (size, unit) in units {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// RESET ALL: every setting a session may change back to its default.
fn reset_all(session: &mut SqlSession) -> Result<()> {
    let names: Vec<String> = DEFAULTS
        .iter()
        .filter(|(k, _)| !READ_ONLY.contains(&k.to_lowercase().as_str()))
        .map(|(k, _)| k.to_string())
        .collect();
    for n in names {
        session.settings.reset(&n)?;
    }
    let tz = session
        .settings
        .get("TimeZone")
        .unwrap_or("UTC")
        .to_string();
    session.set_parameter("TimeZone", &tz)
}

pub(crate) async fn execute(
    session: &mut SqlSession,
    stmt: &Statement,
) -> Result<(Outcome, Vec<Notice>)> {
    let command = |tag: &str| Ok((Outcome::Command(tag.into()), vec![]));
    match stmt {
        Statement::Discard { object_type } => {
            use datafusion::sql::sqlparser::ast::DiscardObject;
            match object_type {
                // What connection poolers send between clients: settings
                // back to their defaults, PREPAREd statements gone.
                DiscardObject::ALL => {
                    if session.tx != crate::TxState::Idle {
                        return Err(TemporaError::new(
                            SqlState::ACTIVE_SQL_TRANSACTION,
                            "DISCARD ALL cannot run inside a transaction block",
                        ));
                    }
                    reset_all(session)?;
                    session.sql_prepared.remove(None)?;
                    session.publish_prepared();
                    session.cursors.clear();
                    command("DISCARD ALL")
                }
                // No plan cache, sequences or temporary tables to drop.
                DiscardObject::PLANS => command("DISCARD PLANS"),
                DiscardObject::SEQUENCES => command("DISCARD SEQUENCES"),
                DiscardObject::TEMP => command("DISCARD TEMP"),
            }
        }
        Statement::Set(set) => {
            match set {
                Set::SingleAssignment {
                    variable, values, ..
                } => {
                    let name = variable.to_string();
                    let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
                    if value.eq_ignore_ascii_case("default") {
                        session.settings.reset(&name)?;
                        let v = session.settings.get(&name).unwrap_or_default().to_string();
                        session.set_parameter(&name, &v)?;
                    } else {
                        session.set_parameter(&name, &value)?;
                    }
                }
                Set::SetTimeZone { value, .. } => match value {
                    Expr::Interval(iv) => {
                        session.set_parameter("TimeZone", &time_zone_interval(iv)?)?;
                    }
                    // `INTERVAL '...'` without a qualifier, as calls.rs
                    // writes it.
                    Expr::Cast {
                        expr,
                        data_type: datafusion::sql::sqlparser::ast::DataType::Interval { .. },
                        ..
                    } => {
                        let iv = datafusion::sql::sqlparser::ast::Interval {
                            value: expr.clone(),
                            leading_field: None,
                            leading_precision: None,
                            last_field: None,
                            fractional_seconds_precision: None,
                        };
                        session.set_parameter("TimeZone", &time_zone_interval(&iv)?)?;
                    }
                    // LOCAL and DEFAULT: the default zone.
                    Expr::Identifier(i)
                        if i.quote_style.is_none()
                            && (i.value.eq_ignore_ascii_case("local")
                                || i.value.eq_ignore_ascii_case("default")) =>
                    {
                        session.settings.reset("TimeZone")?;
                        let v = session
                            .settings
                            .get("TimeZone")
                            .unwrap_or("UTC")
                            .to_string();
                        session.set_parameter("TimeZone", &v)?;
                    }
                    other => session.set_parameter("TimeZone", &value_text(other))?,
                },
                Set::SetNames { charset_name, .. } => {
                    session.set_parameter("client_encoding", &charset_name.value)?;
                }
                // The session acts as the role it logged in as: switching to
                // that role (or back to it) changes nothing; to another, not yet.
                Set::SetRole { role_name, .. } => {
                    if let Some(role) = role_name.as_ref().map(crate::ddl::ident_name) {
                        if role != session.user() {
                            return Err(TemporaError::not_supported(format!(
                                "SET ROLE to a role other than the session's ({role})"
                            )));
                        }
                    }
                }
                Set::SetSessionAuthorization(param) => {
                    if let SetSessionAuthorizationParamKind::User(user) = &param.kind {
                        let user = crate::ddl::ident_name(user);
                        if user != session.user() {
                            return Err(TemporaError::not_supported(format!(
                                "SET SESSION AUTHORIZATION to another role ({user})"
                            )));
                        }
                    }
                }
                other => return Err(TemporaError::not_supported(format!("{other}"))),
            }
            command("SET")
        }
        Statement::Reset(r) => {
            let text = r.to_string();
            let name = text.trim_start_matches("RESET").trim();
            if name.eq_ignore_ascii_case("ROLE") {
                // Back to the session's own role, which it never left.
            } else if name.eq_ignore_ascii_case("ALL") {
                reset_all(session)?;
            } else {
                session.settings.reset(name)?;
                let v = session.settings.get(name).unwrap_or_default().to_string();
                session.set_parameter(name, &v)?;
            }
            command("RESET")
        }
        Statement::ShowVariable { variable } => {
            let name = show_name(variable);
            if name.eq_ignore_ascii_case("all") {
                let (mut names, mut values, mut descs) = (vec![], vec![], vec![]);
                for (k, v) in session.settings.all() {
                    names.push(k.to_string());
                    values.push(v.to_string());
                    descs.push(String::new());
                }
                let schema = show_all_schema();
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(names)),
                        Arc::new(StringArray::from(values)),
                        Arc::new(StringArray::from(descs)),
                    ],
                )
                .map_err(|e| TemporaError::internal(e.to_string()))?;
                return Ok((
                    Outcome::Rows {
                        schema,
                        batches: vec![batch],
                        tag: "SHOW".into(),
                    },
                    vec![],
                ));
            }
            let value = session.settings.get(&name).ok_or_else(|| {
                TemporaError::new(
                    SqlState::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{name}\""),
                )
            })?;
            let schema =
                result_schema(stmt).ok_or_else(|| TemporaError::internal("SHOW schema"))?;
            Ok((one_column(schema, vec![value.to_string()], "SHOW")?, vec![]))
        }
        Statement::StartTransaction { .. } => {
            let mut notices = vec![];
            if session.tx != crate::TxState::Idle {
                notices.push(Notice::warning(
                    SqlState::ACTIVE_SQL_TRANSACTION,
                    "there is already a transaction in progress",
                ));
            } else {
                session.tx = TxState::InBlock;
            }
            Ok((
                Outcome::Transaction {
                    tag: "BEGIN".into(),
                    state: session.tx,
                },
                notices,
            ))
        }
        Statement::Savepoint { name } | Statement::ReleaseSavepoint { name } => {
            let release = matches!(stmt, Statement::ReleaseSavepoint { .. });
            let name = crate::ddl::ident_name(name);
            if session.tx == TxState::Idle {
                let what = if release {
                    "RELEASE SAVEPOINT"
                } else {
                    "SAVEPOINT"
                };
                return Err(TemporaError::new(
                    SqlState::NO_ACTIVE_SQL_TRANSACTION,
                    format!("{what} can only be used in transaction blocks"),
                ));
            }
            let tag = if release {
                session.release_savepoint(&name)?;
                "RELEASE"
            } else {
                session.savepoint(&name);
                "SAVEPOINT"
            };
            Ok((
                Outcome::Transaction {
                    tag: tag.into(),
                    state: session.tx,
                },
                vec![],
            ))
        }
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => {
            if session.tx == TxState::Idle {
                return Err(TemporaError::new(
                    SqlState::NO_ACTIVE_SQL_TRANSACTION,
                    "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
                ));
            }
            session.rollback_to_savepoint(&crate::ddl::ident_name(name))?;
            session.tx = TxState::InBlock;
            Ok((
                Outcome::Transaction {
                    tag: "ROLLBACK".into(),
                    state: session.tx,
                },
                vec![],
            ))
        }
        Statement::Commit { .. } | Statement::Rollback { .. } => {
            let is_commit = matches!(stmt, Statement::Commit { .. });
            let mut notices = vec![];
            let tag = if session.tx == TxState::Idle {
                notices.push(Notice::warning(
                    SqlState::NO_ACTIVE_SQL_TRANSACTION,
                    "there is no transaction in progress",
                ));
                if is_commit {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                }
            } else if session.tx == TxState::Failed || !is_commit {
                session.discard_writes();
                session.end_block_cursors(false);
                "ROLLBACK"
            } else {
                session.tx = TxState::Idle;
                session.savepoints.clear();
                session.end_block_cursors(true);
                session.commit_writes().await?;
                "COMMIT"
            };
            session.tx = TxState::Idle;
            Ok((
                Outcome::Transaction {
                    tag: tag.into(),
                    state: TxState::Idle,
                },
                notices,
            ))
        }
        other => Err(crate::unsupported_statement(other)),
    }
}
