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
        None => Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "integer dimensions require an explicit interval",
        )),
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
                        return Err(TemporaError::not_supported(
                            "create_hypertable with a by_hash dimension",
                        ));
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
                "number_partitions" => {
                    cmd.number_partitions = match v {
                        ScalarValue::Int16(Some(n)) => Some(n as i64),
                        ScalarValue::Int32(Some(n)) => Some(n as i64),
                        ScalarValue::Int64(Some(n)) => Some(n),
                        _ => None,
                    }
                }
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
        if self.partitioning_column.is_some() {
            return Err(TemporaError::not_supported(
                "space partitioning (partitioning_column)",
            ));
        }
        if table
            .unique_keys
            .iter()
            .any(|k| !k.columns.contains(&time_column))
        {
            return Err(unique_without_time(&time_column));
        }
        let chunk_interval = chunk_interval_of(self.interval.as_ref(), &col.ty)?;
        let migrate = engine.has_rows(&table);
        if migrate && !self.migrate_data {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!("table \"{}\" is not empty", table.name),
            )
            .with_hint("You can migrate data by specifying 'migrate_data => true' when calling this function."));
        }
        if matches!(col.ty, PgType::Timestamp) {
            notices.push(Notice {
                severity: "WARNING",
                code: SqlState::WARNING,
                message: format!(
                    "column type \"timestamp without time zone\" used for \"{time_column}\" does not follow best practices"
                ),
            });
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
                space_dimensions: vec![],
            };
            let mut ops = vec![CatalogOp::MakeHypertable {
                oid,
                def: hypertable.clone(),
            }];
            if self.default_indexes {
                if let Some(index) = crate::index::default_time_index(state, t, &time_column) {
                    // The table as MakeHypertable leaves it, plus the index.
                    let mut def = t.definition_only();
                    def.hypertable = Some(hypertable);
                    if let Some(c) = def.columns.iter_mut().find(|c| c.name == time_column) {
                        c.not_null = true;
                    }
                    def.indexes.push(index);
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
