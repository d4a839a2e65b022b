//! `create_hypertable`, in TimescaleDB's legacy form
//! `create_hypertable(relation, time_column_name, ..., chunk_time_interval => ...)`
//! and its 2.13+ form `create_hypertable(relation, by_range(column, interval))`,
//! with TimescaleDB's results, notices and errors.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;
use tempora_catalog::{CatalogOp, HypertableDef, PgType};
use tempora_common::{Result, SqlState, TemporaError};

use crate::{CommandCall, Notice, Outcome, SqlSession};

/// Default chunk width: 7 days, in microseconds.
const DEFAULT_CHUNK_INTERVAL: i64 = 7 * 86_400_000_000;

/// TimescaleDB's default chunk widths of integer time columns.
const DEFAULT_SMALLINT_INTERVAL: i64 = 10_000;
const DEFAULT_INT_INTERVAL: i64 = 100_000;
const DEFAULT_BIGINT_INTERVAL: i64 = 1_000_000;

/// The most partitions a space dimension may have (its count is a smallint).
const MAX_PARTITIONS: i64 = i16::MAX as i64;

/// A chunk interval as given: an interval, or a plain integer.
#[derive(Debug, Clone, PartialEq)]
enum IntervalArg {
    /// months, days, microseconds
    Interval(i32, i32, i64),
    Integer(i64),
    /// Any other type, named for the error.
    Other,
}

/// TimescaleDB's error for a unique key of a hypertable without its time column.
pub(crate) fn unique_without_time(time_column: &str) -> TemporaError {
    TemporaError::new(
        SqlState::TS_BAD_UNIQUE_INDEX,
        format!(
            "cannot create a unique index without the column \"{time_column}\" (used in partitioning)"
        ),
    )
    .with_hint(
        "If you're creating a hypertable on a table with a primary key, ensure the partitioning column is part of the primary or composite key.",
    )
}

/// TimescaleDB's check that a unique key (PRIMARY KEY, UNIQUE constraint
/// or index) of a hypertable holds every partitioning column: time, then
/// each space dimension's. `has` says whether the key holds a column.
pub(crate) fn check_unique_columns(h: &HypertableDef, has: impl Fn(&str) -> bool) -> Result<()> {
    std::iter::once(h.time_column.as_str())
        .chain(h.space_dimensions.iter().map(|(c, _)| c.as_str()))
        .find(|c| !has(c))
        .map_or(Ok(()), |c| Err(unique_without_time(c)))
}

/// TimescaleDB's error for a space dimension's number of partitions
/// missing or out of range.
fn invalid_partitions(column: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!("invalid number of partitions for dimension \"{column}\""),
    )
    .with_hint(format!(
        "A closed (space) dimension must specify between 1 and {MAX_PARTITIONS} partitions."
    ))
}

/// A space dimension on `column` of `table` with `partitions` partitions
/// (None: not given), checked as TimescaleDB checks it.
fn space_dimension(
    table: &tempora_catalog::TableDef,
    column: &str,
    partitions: Option<i64>,
) -> Result<(String, u16)> {
    let col = table
        .column(column)
        .ok_or_else(|| TemporaError::undefined_column(column))?;
    let n = partitions
        .filter(|n| (1..=MAX_PARTITIONS).contains(n))
        .ok_or_else(|| invalid_partitions(column))?;
    if !tempora_catalog::partition::hashable(&col.ty) {
        return Err(TemporaError::not_supported(format!(
            "space partitioning on a column of type {}",
            col.ty.sql_name()
        )));
    }
    Ok((column.to_string(), n as u16))
}

/// An integer argument (NULL or another type: None).
fn as_integer(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int8(Some(n)) => Some(*n as i64),
        ScalarValue::Int16(Some(n)) => Some(*n as i64),
        ScalarValue::Int32(Some(n)) => Some(*n as i64),
        ScalarValue::Int64(Some(n)) => Some(*n),
        _ => None,
    }
}

/// TimescaleDB's refusal of `by_hash` as the first dimension.
fn closed_primary_dimension() -> TemporaError {
    TemporaError::new(
        SqlState::WRONG_OBJECT_TYPE,
        "cannot partition using a closed dimension on primary column",
    )
    .with_hint("Use range partitioning on the primary column.")
}

/// A planned `create_hypertable` call.
#[derive(Debug, Clone)]
pub struct CreateHypertable {
    relation: Option<String>,
    time_column: Option<String>,
    interval: Option<IntervalArg>,
    partitioning_column: Option<String>,
    number_partitions: Option<i64>,
    if_not_exists: bool,
    migrate_data: bool,
    /// `create_default_indexes` (true unless given false).
    default_indexes: bool,
    /// 2.13+ form: the result is `(hypertable_id, created)`.
    new_form: bool,
    expand: bool,
    select: Option<datafusion::sql::sqlparser::ast::Statement>,
}

fn as_text(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => s.clone(),
        _ => None,
    }
}

fn as_bool(v: &ScalarValue) -> Result<bool> {
    match v {
        ScalarValue::Boolean(Some(b)) => Ok(*b),
        ScalarValue::Boolean(None) | ScalarValue::Null => Ok(false),
        other => Err(TemporaError::new(
            SqlState::DATATYPE_MISMATCH,
            format!("argument of type {} must be boolean", other.data_type()),
        )),
    }
}

fn as_interval(v: &ScalarValue) -> Option<IntervalArg> {
    Some(match v {
        ScalarValue::Null => return None,
        ScalarValue::IntervalMonthDayNano(Some(i)) => {
            IntervalArg::Interval(i.months, i.days, i.nanoseconds / 1000)
        }
        ScalarValue::IntervalDayTime(Some(i)) => {
            IntervalArg::Interval(0, i.days, i.milliseconds as i64 * 1000)
        }
        ScalarValue::IntervalYearMonth(Some(m)) => IntervalArg::Interval(*m, 0, 0),
        ScalarValue::Int16(Some(v)) => IntervalArg::Integer(*v as i64),
        ScalarValue::Int32(Some(v)) => IntervalArg::Integer(*v as i64),
        ScalarValue::Int64(Some(v)) => IntervalArg::Integer(*v),
        _ => IntervalArg::Other,
    })
}

/// A chunk interval argument in the time column's units: microseconds for
/// temporal columns (default 7 days), the value itself for integer ones.
fn chunk_interval_of(arg: Option<&IntervalArg>, ty: &PgType) -> Result<i64> {
    let type_name = ty.sql_name();
    let invalid = || {
        TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("invalid interval for {type_name} dimension"),
        )
    };
    match arg {
        None if ty.is_temporal() => Ok(DEFAULT_CHUNK_INTERVAL),
        None => match ty {
            PgType::Int2 => Ok(DEFAULT_SMALLINT_INTERVAL),
            PgType::Int4 => Ok(DEFAULT_INT_INTERVAL),
            PgType::Int8 => Ok(DEFAULT_BIGINT_INTERVAL),
            _ => Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "integer dimensions require an explicit interval",
            )),
        },
        Some(IntervalArg::Interval(months, days, micros)) if ty.is_temporal() => {
            if *months != 0 {
                return Err(TemporaError::not_supported("chunk intervals with months"));
            }
            let total = *days as i64 * 86_400_000_000 + micros;
            if total <= 0 {
                return Err(invalid());
            }
            Ok(total)
        }
        Some(IntervalArg::Integer(n)) if *n > 0 => Ok(*n),
        Some(IntervalArg::Integer(_)) => Err(invalid()),
        Some(_) => Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("invalid interval type for {type_name} dimension"),
        )),
    }
}

/// `set_chunk_time_interval(hypertable, chunk_time_interval)`: chunks
/// created from now on have the new width; existing ones keep theirs.
#[derive(Debug, Clone)]
pub struct SetChunkTimeInterval {
    args: Vec<(Option<String>, SqlExpr)>,
}

impl SetChunkTimeInterval {
    pub(crate) fn from_call(call: CommandCall) -> Self {
        Self { args: call.args }
    }

    pub fn result_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "set_chunk_time_interval",
            DataType::Utf8,
            true,
        )]))
    }

    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        let mut relation = None;
        let mut interval = None;
        for (i, (name, expr)) in self.args.iter().enumerate() {
            let key = name.as_deref().unwrap_or(match i {
                0 => "hypertable",
                1 => "chunk_time_interval",
                _ => "dimension_name",
            });
            let v = session.eval_constant(expr).await?;
            match key {
                "hypertable" => relation = as_text(&v),
                "chunk_time_interval" => {
                    if as_text(&v).is_some() {
                        return Err(TemporaError::new(
                            SqlState::DATATYPE_MISMATCH,
                            "could not determine polymorphic type because input has type unknown",
                        ));
                    }
                    interval = as_interval(&v)
                }
                "dimension_name" if v.is_null() => {}
                other => {
                    return Err(TemporaError::not_supported(format!(
                        "set_chunk_time_interval argument \"{other}\""
                    )))
                }
            }
        }
        let rel = relation.ok_or_else(|| {
            TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, "invalid hypertable")
        })?;
        let engine = session.engine();
        let state = engine.catalog().snapshot();
        let (table, ty) = tempora_query::hypertable_named(&state, &rel)?;
        let interval = interval.ok_or_else(|| {
            TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "invalid interval: must be non-NULL",
            )
        })?;
        let chunk_interval = chunk_interval_of(Some(&interval), &ty)?;
        let oid = table.oid;
        engine
            .catalog()
            .commit(|_| {
                Ok(vec![CatalogOp::SetChunkInterval {
                    oid,
                    chunk_interval,
                }])
            })
            .await?;
        let batch = RecordBatch::try_new(
            Self::result_schema(),
            vec![Arc::new(StringArray::from(vec![Some("")]))],
        )
        .map_err(|e| TemporaError::internal(e.to_string()))?;
        Ok((
            Outcome::Rows {
                schema: Self::result_schema(),
                batches: vec![batch],
                tag: "SELECT".into(),
            },
            vec![],
        ))
    }
}

impl CreateHypertable {
    pub(crate) async fn from_call(session: &SqlSession, call: CommandCall) -> Result<Self> {
        let mut cmd = CreateHypertable {
            relation: None,
            time_column: None,
            interval: None,
            partitioning_column: None,
            number_partitions: None,
            if_not_exists: false,
            migrate_data: false,
            default_indexes: true,
            new_form: false,
            expand: call.expand,
            select: call.select,
        };
        // Legacy positional order.
        const LEGACY: [&str; 4] = [
            "relation",
            "time_column_name",
            "partitioning_column",
            "number_partitions",
        ];
        for (i, (name, expr)) in call.args.iter().enumerate() {
            // by_range(...) as the dimension argument selects the 2.13+ form.
            if let SqlExpr::Function(f) = expr {
                let fname = crate::function_name(&f.name);
                if fname == "by_range" || fname == "by_hash" {
                    if fname == "by_hash" {
                        return Err(closed_primary_dimension());
                    }
                    cmd.new_form = true;
                    let args = crate::call_args(&f.args);
                    for (j, (an, ae)) in args.iter().enumerate() {
                        let key = an.clone().unwrap_or_else(|| {
                            ["column_name", "partition_interval", "partition_func"]
                                .get(j)
                                .unwrap_or(&"")
                                .to_string()
                        });
                        let v = session.eval_constant(ae).await?;
                        match key.as_str() {
                            "column_name" => cmd.time_column = as_text(&v),
                            "partition_interval" => cmd.interval = as_interval(&v),
                            "partition_func" => {
                                return Err(TemporaError::not_supported("partition_func"))
                            }
                            other => {
                                return Err(TemporaError::new(
                                    SqlState::UNDEFINED_FUNCTION,
                                    format!("by_range has no argument named \"{other}\""),
                                ))
                            }
                        }
                    }
                    continue;
                }
            }
            let key = match name {
                Some(n) => n.clone(),
                None => LEGACY.get(i).map(|s| s.to_string()).ok_or_else(|| {
                    TemporaError::not_supported(
                        "create_hypertable positional argument beyond number_partitions",
                    )
                })?,
            };
            let v = session.eval_constant(expr).await?;
            match key.as_str() {
                "relation" => cmd.relation = as_text(&v),
                "time_column_name" => cmd.time_column = as_text(&v),
                "partitioning_column" => cmd.partitioning_column = as_text(&v),
                "number_partitions" => cmd.number_partitions = as_integer(&v),
                "chunk_time_interval" => cmd.interval = as_interval(&v),
                "if_not_exists" => cmd.if_not_exists = as_bool(&v)?,
                "migrate_data" => cmd.migrate_data = as_bool(&v)?,
                "create_default_indexes" => {
                    cmd.default_indexes = matches!(v, ScalarValue::Null) || as_bool(&v)?;
                }
                "dimension" => {
                    return Err(TemporaError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "dimension must be given as by_range(...)",
                    ))
                }
                other => {
                    return Err(TemporaError::not_supported(format!(
                        "create_hypertable argument \"{other}\""
                    )))
                }
            }
        }
        Ok(cmd)
    }

    /// Columns of the result, after the caller's projection.
    pub async fn result_schema(&self) -> Result<SchemaRef> {
        let empty = RecordBatch::new_empty(self.record_schema());
        Ok(self.project(empty).await?.0)
    }

    /// Runs the caller's `SELECT ... FROM create_hypertable(...)` over the record.
    async fn project(&self, batch: RecordBatch) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let Some(select) = &self.select else {
            return Ok((batch.schema(), vec![batch]));
        };
        crate::query_rows(
            "create_hypertable",
            batch.schema(),
            vec![batch],
            &select.to_string(),
        )
        .await
    }

    /// Columns of the record the call returns.
    fn record_schema(&self) -> SchemaRef {
        if !self.expand {
            return Arc::new(Schema::new(vec![Field::new(
                "create_hypertable",
                DataType::Utf8,
                true,
            )]));
        }
        let mut fields = vec![Field::new("hypertable_id", DataType::Int32, false)];
        if !self.new_form {
            fields.push(Field::new("schema_name", DataType::Utf8, false));
            fields.push(Field::new("table_name", DataType::Utf8, false));
        }
        fields.push(Field::new("created", DataType::Boolean, false));
        Arc::new(Schema::new(fields))
    }

    async fn result(&self, id: u32, schema: &str, table: &str, created: bool) -> Result<Outcome> {
        let out_schema = self.record_schema();
        let cols: Vec<ArrayRef> = if !self.expand {
            let t = if created { "t" } else { "f" };
            let text = if self.new_form {
                format!("({id},{t})")
            } else {
                format!("({id},{schema},{table},{t})")
            };
            vec![Arc::new(StringArray::from(vec![text]))]
        } else {
            let mut cols: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(vec![id as i32]))];
            if !self.new_form {
                cols.push(Arc::new(StringArray::from(vec![schema])));
                cols.push(Arc::new(StringArray::from(vec![table])));
            }
            cols.push(Arc::new(BooleanArray::from(vec![created])));
            cols
        };
        let batch = RecordBatch::try_new(out_schema, cols)
            .map_err(|e| TemporaError::internal(e.to_string()))?;
        let (schema, batches) = self.project(batch).await?;
        Ok(Outcome::Rows {
            schema,
            batches,
            tag: "SELECT".into(),
        })
    }

    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        let rel = self.relation.clone().ok_or_else(|| {
            TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, "relation cannot be NULL")
        })?;
        let (schema_name, table_name) = tempora_query::split_qualified(&rel);
        let engine = session.engine().clone();
        let state = engine.catalog().snapshot();
        let table = state
            .table(&schema_name, &table_name)
            .ok_or_else(|| TemporaError::undefined_table(&rel))?
            .clone();
        let mut notices = vec![];
        if let Some(h) = &table.hypertable {
            if self.if_not_exists {
                notices.push(Notice::info(
                    SqlState::TS_HYPERTABLE_EXISTS,
                    format!("table \"{}\" is already a hypertable, skipping", table.name),
                ));
                return Ok((
                    self.result(h.id, &table.schema, &table.name, false).await?,
                    notices,
                ));
            }
            return Err(TemporaError::new(
                SqlState::TS_HYPERTABLE_EXISTS,
                format!("table \"{}\" is already a hypertable", table.name),
            ));
        }
        let time_column = self.time_column.clone().ok_or_else(|| {
            TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "time column cannot be NULL",
            )
        })?;
        let col = table
            .column(&time_column)
            .ok_or_else(|| TemporaError::undefined_column(&time_column))?;
        if !col.ty.is_time_dimension_type() {
            return Err(TemporaError::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!("invalid type for dimension \"{time_column}\""),
            ));
        }
        let chunk_interval = chunk_interval_of(self.interval.as_ref(), &col.ty)?;
        let space_dimensions = match &self.partitioning_column {
            Some(column) => vec![space_dimension(&table, column, self.number_partitions)?],
            None => vec![],
        };
        let dims = HypertableDef {
            id: 0,
            time_column: time_column.clone(),
            chunk_interval,
            space_dimensions: space_dimensions.clone(),
            dimension_ids: vec![],
            integer_now_func: None,
        };
        for k in &table.unique_keys {
            check_unique_columns(&dims, |c| k.columns.iter().any(|k| k == c))?;
        }
        let migrate = engine.has_rows(&table);
        if migrate && !self.migrate_data {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!("table \"{}\" is not empty", table.name),
            )
            .with_hint("You can migrate data by specifying 'migrate_data => true' when calling this function."));
        }
        if matches!(col.ty, PgType::Timestamp) {
            notices.push(Notice::warning(
                SqlState::WARNING,
                format!(
                    "column type \"timestamp without time zone\" used for \"{time_column}\" does not follow best practices"
                ),
            ));
        }
        let oid = table.oid;
        let name = table.name.clone();
        let build = |state: &tempora_catalog::CatalogState| {
            let t = state
                .table_by_oid(oid)
                .ok_or_else(|| TemporaError::undefined_table(&name))?;
            if t.hypertable.is_some() {
                return Err(TemporaError::new(
                    SqlState::TS_HYPERTABLE_EXISTS,
                    format!("table \"{name}\" is already a hypertable"),
                ));
            }
            let hypertable = HypertableDef {
                id: state.next_hypertable_id,
                time_column: time_column.clone(),
                chunk_interval,
                space_dimensions: space_dimensions.clone(),
                dimension_ids: vec![],
                integer_now_func: None,
            };
            let mut ops = vec![CatalogOp::MakeHypertable {
                oid,
                def: hypertable.clone(),
            }];
            if self.default_indexes {
                let mut indexes = Vec::new();
                indexes.extend(crate::index::default_time_index(state, t, &time_column));
                if let Some((space, _)) = space_dimensions.first() {
                    indexes.extend(crate::index::default_space_index(
                        state,
                        t,
                        space,
                        &time_column,
                    ));
                }
                if !indexes.is_empty() {
                    // The table as MakeHypertable leaves it, plus the indexes.
                    let mut def = t.definition_only();
                    def.hypertable = Some(hypertable);
                    if let Some(c) = def.columns.iter_mut().find(|c| c.name == time_column) {
                        c.not_null = true;
                    }
                    def.indexes.extend(indexes);
                    ops.push(CatalogOp::AlterTable(Box::new(def)));
                }
            }
            Ok(ops)
        };
        if migrate && session.in_block() {
            return Err(TemporaError::not_supported(
                "create_hypertable with migrate_data inside a transaction block",
            ));
        }
        if migrate {
            notices.push(Notice::info(
                SqlState::SUCCESSFUL_COMPLETION,
                "migrating data to chunks",
            ));
            engine.migrate_to_hypertable(oid, build).await?;
        } else {
            engine.catalog().commit(build).await?;
        }
        let state = engine.catalog().snapshot();
        let id = state
            .table_by_oid(oid)
            .and_then(|t| t.hypertable.as_ref())
            .map(|h| h.id)
            .ok_or_else(|| TemporaError::internal("hypertable vanished after commit"))?;
        Ok((
            self.result(id, &table.schema, &table.name, true).await?,
            notices,
        ))
    }
}

/// The hypertable a dimension function names: 42P01 when no such table,
/// TS001 when it is not a hypertable.
fn hypertable_of(
    state: &tempora_catalog::CatalogState,
    relation: Option<&str>,
) -> Result<tempora_catalog::TableDef> {
    let rel = relation.ok_or_else(|| {
        TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "hypertable cannot be NULL",
        )
    })?;
    let (schema, name) = tempora_query::split_qualified(rel);
    let table = state
        .table(&schema, &name)
        .ok_or_else(|| TemporaError::undefined_table(rel))?;
    if table.hypertable.is_none() {
        return Err(TemporaError::new(
            SqlState::TS_HYPERTABLE_NOT_EXIST,
            format!("table \"{}\" is not a hypertable", table.name),
        ));
    }
    Ok(table.clone())
}

/// A function's arguments by name: positional ones take the names of
/// `order`, named ones their own.
fn named_args<'a>(
    args: &'a [(Option<String>, SqlExpr)],
    order: &[&str],
    function: &str,
) -> Result<Vec<(String, &'a SqlExpr)>> {
    args.iter()
        .enumerate()
        .map(|(i, (name, expr))| {
            let key = match name {
                Some(n) => n.clone(),
                None => order.get(i).map(|s| s.to_string()).ok_or_else(|| {
                    TemporaError::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!(
                            "function {function} takes at most {} arguments",
                            order.len()
                        ),
                    )
                })?,
            };
            Ok((key, expr))
        })
        .collect()
}

/// `add_dimension(hypertable, column_name, number_partitions => N)` and the
/// 2.13+ form `add_dimension(hypertable, by_hash(column_name, N))`: a space
/// dimension for a hypertable without chunks. Range (time) dimensions
/// beyond the first are refused (0A000).
#[derive(Debug, Clone)]
pub struct AddDimension {
    relation: Option<String>,
    column: Option<String>,
    partitions: Option<i64>,
    /// Whether number_partitions was given (even as NULL).
    partitions_given: bool,
    interval_given: bool,
    if_not_exists: bool,
    /// 2.13+ form: the result is `(dimension_id, created)`.
    general: bool,
    expand: bool,
    select: Option<datafusion::sql::sqlparser::ast::Statement>,
}

impl AddDimension {
    pub(crate) async fn from_call(session: &SqlSession, call: CommandCall) -> Result<Self> {
        let general = call.args.iter().enumerate().any(|(i, (name, expr))| {
            (name.as_deref() == Some("dimension") || (name.is_none() && i == 1))
                && matches!(expr, SqlExpr::Function(_))
        });
        let mut cmd = AddDimension {
            relation: None,
            column: None,
            partitions: None,
            partitions_given: false,
            interval_given: false,
            if_not_exists: false,
            general,
            expand: call.expand,
            select: call.select,
        };
        let order: &[&str] = if general {
            &["hypertable", "dimension", "if_not_exists"]
        } else {
            &[
                "hypertable",
                "column_name",
                "number_partitions",
                "chunk_time_interval",
                "partitioning_func",
                "if_not_exists",
            ]
        };
        for (key, expr) in named_args(&call.args, order, "add_dimension")? {
            if key == "dimension" {
                cmd.read_dimension(session, expr).await?;
                continue;
            }
            let v = session.eval_constant(expr).await?;
            match key.as_str() {
                "hypertable" => cmd.relation = as_text(&v),
                "column_name" if !general => cmd.column = as_text(&v),
                "number_partitions" if !general => {
                    cmd.partitions_given = !v.is_null();
                    cmd.partitions = as_integer(&v);
                }
                "chunk_time_interval" if !general => cmd.interval_given = !v.is_null(),
                "partitioning_func" if !general && v.is_null() => {}
                "partitioning_func" if !general => {
                    return Err(TemporaError::not_supported(
                        "add_dimension with a partitioning function",
                    ))
                }
                "if_not_exists" => cmd.if_not_exists = as_bool(&v)?,
                other => {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!("add_dimension has no argument named \"{other}\""),
                    ))
                }
            }
        }
        Ok(cmd)
    }

    /// The `by_hash(...)` / `by_range(...)` of the 2.13+ form.
    async fn read_dimension(&mut self, session: &SqlSession, expr: &SqlExpr) -> Result<()> {
        let SqlExpr::Function(f) = expr else {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "dimension must be given as by_hash(...) or by_range(...)",
            ));
        };
        let fname = crate::function_name(&f.name);
        if fname == "by_range" {
            return Err(TemporaError::not_supported(
                "add_dimension with a range dimension (a second time dimension)",
            ));
        }
        if fname != "by_hash" {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "dimension must be given as by_hash(...) or by_range(...)",
            ));
        }
        let args = crate::call_args(&f.args);
        let order = ["column_name", "number_partitions", "partition_func"];
        for (key, e) in named_args(&args, &order, "by_hash")? {
            let v = session.eval_constant(e).await?;
            match key.as_str() {
                "column_name" => self.column = as_text(&v),
                "number_partitions" => {
                    self.partitions_given = !v.is_null();
                    self.partitions = as_integer(&v);
                }
                "partition_func" if v.is_null() => {}
                "partition_func" => {
                    return Err(TemporaError::not_supported(
                        "by_hash with a partitioning function",
                    ))
                }
                other => {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!("by_hash has no argument named \"{other}\""),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Columns of the record the call returns.
    fn record_schema(&self) -> SchemaRef {
        if !self.expand {
            return Arc::new(Schema::new(vec![Field::new(
                "add_dimension",
                DataType::Utf8,
                true,
            )]));
        }
        let mut fields = vec![Field::new("dimension_id", DataType::Int32, false)];
        if !self.general {
            fields.push(Field::new("schema_name", DataType::Utf8, false));
            fields.push(Field::new("table_name", DataType::Utf8, false));
            fields.push(Field::new("column_name", DataType::Utf8, false));
        }
        fields.push(Field::new("created", DataType::Boolean, false));
        Arc::new(Schema::new(fields))
    }

    async fn project(&self, batch: RecordBatch) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let Some(select) = &self.select else {
            return Ok((batch.schema(), vec![batch]));
        };
        crate::query_rows(
            "add_dimension",
            batch.schema(),
            vec![batch],
            &select.to_string(),
        )
        .await
    }

    /// Columns of the result, after the caller's projection.
    pub async fn result_schema(&self) -> Result<SchemaRef> {
        let empty = RecordBatch::new_empty(self.record_schema());
        Ok(self.project(empty).await?.0)
    }

    async fn result(
        &self,
        id: u32,
        table: &tempora_catalog::TableDef,
        column: &str,
        created: bool,
    ) -> Result<Outcome> {
        let cols: Vec<ArrayRef> = if !self.expand {
            let t = if created { "t" } else { "f" };
            let text = if self.general {
                format!("({id},{t})")
            } else {
                format!("({id},{},{},{column},{t})", table.schema, table.name)
            };
            vec![Arc::new(StringArray::from(vec![text]))]
        } else {
            let mut cols: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(vec![id as i32]))];
            if !self.general {
                cols.push(Arc::new(StringArray::from(vec![table.schema.as_str()])));
                cols.push(Arc::new(StringArray::from(vec![table.name.as_str()])));
                cols.push(Arc::new(StringArray::from(vec![column])));
            }
            cols.push(Arc::new(BooleanArray::from(vec![created])));
            cols
        };
        let batch = RecordBatch::try_new(self.record_schema(), cols)
            .map_err(|e| TemporaError::internal(e.to_string()))?;
        let (schema, batches) = self.project(batch).await?;
        Ok(Outcome::Rows {
            schema,
            batches,
            tag: "SELECT".into(),
        })
    }

    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        if self.relation.is_none() {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "hypertable cannot be NULL",
            ));
        }
        if !self.partitions_given && !self.interval_given {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "must specify either the number of partitions or an interval",
            ));
        }
        let engine = session.engine().clone();
        let table = hypertable_of(&engine.catalog().snapshot(), self.relation.as_deref())?;
        if self.partitions_given && self.interval_given {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "cannot specify both the number of partitions and an interval",
            ));
        }
        let column = self.column.clone().ok_or_else(|| {
            TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, "invalid dimension info")
        })?;
        if table.column(&column).is_none() {
            return Err(TemporaError::undefined_column(&column));
        }
        let h = table
            .hypertable
            .clone()
            .ok_or_else(|| TemporaError::internal("hypertable without its dimensions"))?;
        // The dimension already there: its position among the table's.
        let existing = std::iter::once(h.time_column.as_str())
            .chain(h.space_dimensions.iter().map(|(c, _)| c.as_str()))
            .position(|c| c == column);
        if let Some(i) = existing {
            if !self.if_not_exists {
                return Err(TemporaError::new(
                    SqlState::TS_DIMENSION_EXISTS,
                    format!("column \"{column}\" is already a dimension"),
                ));
            }
            let id = h.dimension_ids.get(i).copied().unwrap_or(0);
            let notice = Notice::info(
                SqlState::SUCCESSFUL_COMPLETION,
                format!("column \"{column}\" is already a dimension, skipping"),
            );
            return Ok((self.result(id, &table, &column, false).await?, vec![notice]));
        }
        if self.interval_given {
            return Err(TemporaError::not_supported(
                "add_dimension with a range dimension (a second time dimension)",
            ));
        }
        let dimension = space_dimension(&table, &column, self.partitions)?;
        let oid = table.oid;
        let name = table.name.clone();
        let state = engine
            .catalog()
            .commit(|state| {
                let t = state
                    .table_by_oid(oid)
                    .ok_or_else(|| TemporaError::undefined_table(&name))?;
                // Chunks made before cover every hash of the new dimension
                // (they have no slice of it); new chunks are partitioned, as
                // in TimescaleDB since 2.8.
                let mut def = t.definition_only();
                let h = def
                    .hypertable
                    .as_mut()
                    .ok_or_else(|| TemporaError::internal("hypertable without its dimensions"))?;
                h.space_dimensions.push(dimension.clone());
                for k in &def.unique_keys {
                    check_unique_columns(h, |c| k.columns.iter().any(|k| k == c))?;
                }
                Ok(vec![CatalogOp::AlterTable(Box::new(def))])
            })
            .await?;
        let id = state
            .table_by_oid(oid)
            .and_then(|t| t.hypertable.as_ref())
            .and_then(|h| h.dimension_ids.last().copied())
            .unwrap_or(0);
        Ok((self.result(id, &table, &column, true).await?, vec![]))
    }
}

/// `set_number_partitions(hypertable, number_partitions [, dimension_name])`:
/// chunks created from now on split the space dimension's hashes into this
/// many partitions; existing chunks keep theirs.
#[derive(Debug, Clone)]
pub struct SetNumberPartitions {
    args: Vec<(Option<String>, SqlExpr)>,
}

impl SetNumberPartitions {
    pub(crate) fn from_call(call: CommandCall) -> Self {
        Self { args: call.args }
    }

    pub fn result_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "set_number_partitions",
            DataType::Utf8,
            true,
        )]))
    }

    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        let order = ["hypertable", "number_partitions", "dimension_name"];
        let (mut relation, mut partitions, mut dimension) = (None, None, None);
        for (key, expr) in named_args(&self.args, &order, "set_number_partitions")? {
            let v = session.eval_constant(expr).await?;
            match key.as_str() {
                "hypertable" => relation = as_text(&v),
                "number_partitions" => partitions = as_integer(&v),
                "dimension_name" => dimension = as_text(&v),
                other => {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!("set_number_partitions has no argument named \"{other}\""),
                    ))
                }
            }
        }
        let engine = session.engine().clone();
        let table = hypertable_of(&engine.catalog().snapshot(), relation.as_deref())?;
        let n = partitions
            .filter(|n| (1..=MAX_PARTITIONS).contains(n))
            .ok_or_else(|| {
                TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("invalid number of partitions: must be between 1 and {MAX_PARTITIONS}"),
                )
            })? as u16;
        let oid = table.oid;
        let name = table.name.clone();
        engine
            .catalog()
            .commit(|state| {
                let t = state
                    .table_by_oid(oid)
                    .ok_or_else(|| TemporaError::undefined_table(&name))?;
                let mut def = t.definition_only();
                let h = def
                    .hypertable
                    .as_mut()
                    .ok_or_else(|| TemporaError::internal("hypertable without its dimensions"))?;
                if dimension.is_none() && h.space_dimensions.len() > 1 {
                    return Err(TemporaError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("hypertable \"{name}\" has multiple space dimensions"),
                    )
                    .with_hint("An explicit dimension name must be specified."));
                }
                let dim = h
                    .space_dimensions
                    .iter_mut()
                    .find(|(c, _)| dimension.as_ref().is_none_or(|d| d == c))
                    .ok_or_else(|| {
                        TemporaError::new(
                            SqlState::TS_DIMENSION_NOT_EXIST,
                            format!("hypertable \"{name}\" does not have a matching dimension"),
                        )
                    })?;
                dim.1 = n;
                Ok(vec![CatalogOp::AlterTable(Box::new(def))])
            })
            .await?;
        let batch = RecordBatch::try_new(
            Self::result_schema(),
            vec![Arc::new(StringArray::from(vec![Some("")]))],
        )
        .map_err(|e| TemporaError::internal(e.to_string()))?;
        Ok((
            Outcome::Rows {
                schema: Self::result_schema(),
                batches: vec![batch],
                tag: "SELECT".into(),
            },
            vec![],
        ))
    }
}
