//! COPY: `FROM STDIN` into a table and `TO STDOUT` from a table or query.
//!
//! ```text
//! COPY t FROM STDIN ─► CopyIn (per connection, while CopyData arrives)
//!   data ─► CopyDecoder ─► Arrow batches in the table's layout (DEFAULTs filled)
//!     small COPY:  buffered ─► at CopyDone one WAL record (Engine::write)
//!     large COPY:  past SPILL_BYTES, rows go straight to Parquet files per chunk,
//!                  not yet listed ─► at CopyDone one catalog commit lists them all
//!   any error ─► nothing of the COPY is visible; spilled files are removed
//! COPY ... TO STDOUT ─► DataFusion stream ─► CopyEncoder ─► one CopyData per row
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget, Statement};
use tempora_catalog::{FileDef, TableDef};
use tempora_common::{Result, SqlState, TemporaError};
use tempora_copy::{CopyDecoder, CopyEncoder, CopyFormat, CopyOptions};

use crate::SqlSession;

/// Rows decoded per batch.
const BATCH_ROWS: usize = 64 * 1024;
/// A COPY holding more than this in memory writes its rows to files directly.
const SPILL_BYTES: usize = 64 << 20;

/// A planned `COPY ... FROM STDIN`.
#[derive(Debug, Clone)]
pub struct CopyInPlan {
    oid: u32,
    table_name: String,
    /// Index in the table of each column the data holds, in data order.
    targets: Vec<usize>,
    options: CopyOptions,
}

/// A planned `COPY ... TO STDOUT`.
#[derive(Debug, Clone)]
pub struct CopyOutPlan {
    pub plan: LogicalPlan,
    pub options: CopyOptions,
    pub columns: Vec<String>,
}

/// What a COPY statement is.
#[derive(Debug, Clone)]
pub enum CopyPlan {
    In(Box<CopyInPlan>),
    Out(Box<CopyOutPlan>),
}

fn server_file_error(to: bool) -> TemporaError {
    let (dir, hint) = if to {
        ("to", "COPY ... TO STDOUT (psql's \\copy ... to 'file')")
    } else {
        (
            "from",
            "COPY ... FROM STDIN (psql's \\copy ... from 'file')",
        )
    };
    TemporaError::not_supported(format!("COPY {dir} a file or program on the server")).with_hint(
        format!("Use {hint}, which reads or writes the file on the client."),
    )
}

impl CopyPlan {
    /// `pg_options` are the statement's parenthesized options when they were
    /// read from its text (see `copy_options`); else the parser's are used.
    pub async fn plan(
        session: &SqlSession,
        stmt: &Statement,
        pg_options: Option<&[(String, tempora_copy::CopyOptionArg)]>,
    ) -> Result<Self> {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } = stmt
        else {
            return Err(TemporaError::internal("not a COPY"));
        };
        let options = match pg_options {
            Some(list) => CopyOptions::from_pg_options(list, !to)?,
            None => CopyOptions::from_sql(options, legacy_options, !to)?,
        };
        match (to, target) {
            (false, CopyTarget::Stdin) | (true, CopyTarget::Stdout) => {}
            _ => return Err(server_file_error(*to)),
        }
        if !to {
            let CopySource::Table {
                table_name,
                columns,
            } = source
            else {
                return Err(TemporaError::syntax("syntax error at or near \"(\""));
            };
            let table = copy_table(session, table_name, &options, "copy to")?;
            let targets = if columns.is_empty() {
                (0..table.columns.len()).collect()
            } else {
                let mut targets = Vec::with_capacity(columns.len());
                for c in columns {
                    let col = crate::ddl::ident_name(c);
                    let idx = column_of(&table, &col)?;
                    if targets.contains(&idx) {
                        return Err(TemporaError::new(
                            SqlState::DUPLICATE_COLUMN,
                            format!("column \"{col}\" specified more than once"),
                        ));
                    }
                    targets.push(idx);
                }
                targets
            };
            return Ok(CopyPlan::In(Box::new(CopyInPlan {
                oid: table.oid,
                table_name: table.name,
                targets,
                options,
            })));
        }
        let sql = match source {
            CopySource::Query(q) => q.to_string(),
            CopySource::Table {
                table_name,
                columns,
            } => {
                let table = copy_table(session, table_name, &options, "copy from")?;
                let cols = if columns.is_empty() {
                    table
                        .columns
                        .iter()
                        .map(|c| crate::ddl::quote_ident(&c.name))
                        .collect::<Vec<_>>()
                } else {
                    let mut cols = Vec::new();
                    for c in columns {
                        let col = crate::ddl::ident_name(c);
                        column_of(&table, &col)?;
                        cols.push(crate::ddl::quote_ident(&col));
                    }
                    cols
                };
                format!(
                    "SELECT {} FROM {}",
                    cols.join(", "),
                    crate::ddl::quoted_table(&table)
                )
            }
        };
        let stmt = crate::parse(&sql)?.remove(0);
        let mut stmt = crate::pg_compat::rewrite(stmt);
        crate::naming::apply(&mut stmt);
        crate::pg_compat::after_naming(&mut stmt);
        let plan = session.plan(stmt).await?;
        let columns = plan
            .schema()
            .fields()
            .iter()
            .map(|f| crate::naming::output_name(f.name()).to_string())
            .collect();
        Ok(CopyPlan::Out(Box::new(CopyOutPlan {
            plan,
            options,
            columns,
        })))
    }
}

/// Columns named by FORCE_QUOTE / FORCE_NOT_NULL / FORCE_NULL must exist
/// (checked before whether the COPY's column list holds them, as PostgreSQL does).
fn check_force_columns(options: &CopyOptions, table: &TableDef) -> Result<()> {
    let quoted = match &options.force_quote {
        tempora_copy::ForceQuote::Columns(c) => c.as_slice(),
        _ => &[],
    };
    for col in quoted
        .iter()
        .chain(&options.force_not_null)
        .chain(&options.force_null)
    {
        column_of(table, col)?;
    }
    Ok(())
}

/// The table a COPY names, with its FORCE_* columns checked.
fn copy_table(
    session: &SqlSession,
    table_name: &datafusion::sql::sqlparser::ast::ObjectName,
    options: &CopyOptions,
    verb: &str,
) -> Result<TableDef> {
    let (schema_name, name) = crate::ddl::object_name(table_name)?;
    let state = session.engine().catalog().snapshot();
    let table = crate::ddl::written_table(&state, &schema_name, &name, verb)?;
    check_force_columns(options, table)?;
    Ok(table.clone())
}

/// The position of a column the COPY names, or PostgreSQL's 42703.
fn column_of(table: &TableDef, col: &str) -> Result<usize> {
    table.column_index(col).ok_or_else(|| {
        TemporaError::new(
            SqlState::UNDEFINED_COLUMN,
            format!(
                "column \"{col}\" of relation \"{}\" does not exist",
                table.name
            ),
        )
    })
}

/// The overall format code of CopyIn/CopyOutResponse: 1 binary, 0 text or CSV.
fn wire_code(options: &CopyOptions) -> i8 {
    i8::from(options.format == CopyFormat::Binary)
}

impl CopyInPlan {
    /// Wire format of the data (0 text/CSV, 1 binary) and its column count.
    pub fn wire_format(&self) -> (i8, usize) {
        (wire_code(&self.options), self.targets.len())
    }

    /// Starts receiving data.
    pub async fn start(&self, session: &SqlSession) -> Result<CopyIn> {
        let state = session.engine().catalog().snapshot();
        let table = state
            .table_by_oid(self.oid)
            .ok_or_else(|| TemporaError::undefined_table(&self.table_name))?
            .clone();
        let columns = self
            .targets
            .iter()
            .map(|i| {
                let c = &table.columns[*i];
                (c.name.clone(), c.ty.clone())
            })
            .collect();
        let tz = session
            .settings
            .get("TimeZone")
            .unwrap_or("UTC")
            .to_string();
        let mut decoder = CopyDecoder::new(
            &self.table_name,
            columns,
            self.options.clone(),
            &tz,
            BATCH_ROWS,
        )?;
        // Columns the data does not hold get their DEFAULT (or NULL), evaluated
        // once per COPY, or for every row when it is volatile (a sequence's).
        let mut fill: Vec<Option<Fill>> = (0..table.columns.len()).map(|_| None).collect();
        for (i, c) in table.columns.iter().enumerate() {
            if self.targets.contains(&i) {
                continue;
            }
            let value = match &c.default {
                Some(sql) if crate::ddl::is_volatile(sql) => {
                    fill[i] = Some(Fill::PerRow(format!("CAST({sql} AS {})", c.ty.sql_name())));
                    continue;
                }
                Some(sql) => {
                    let v = session.eval_sql(sql).await?;
                    let arr = v
                        .to_array_of_size(1)
                        .map_err(TemporaError::from_datafusion)?;
                    datafusion::arrow::compute::cast(&arr, &c.ty.arrow_type())
                        .map_err(|e| TemporaError::from_datafusion(e.into()))?
                }
                None => new_null_array(&c.ty.arrow_type(), 1),
            };
            fill[i] = Some(Fill::Value(value));
        }
        // NOT NULL is checked per row by the decoder, so the error names the line.
        let not_null = table
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                c.not_null
                    && match &fill[*i] {
                        None => true,
                        Some(Fill::Value(v)) => v.null_count() > 0,
                        Some(Fill::PerRow(_)) => false,
                    }
            })
            .map(|(i, c)| tempora_copy::NotNull {
                column: c.name.clone(),
                data_index: self.targets.iter().position(|t| *t == i),
                partitioning: table
                    .hypertable
                    .as_ref()
                    .is_some_and(|h| h.time_column == c.name),
            })
            .collect();
        decoder.set_not_null(not_null);
        Ok(CopyIn {
            engine: session.engine().clone(),
            table,
            schema: self.schema(session)?,
            targets: self.targets.clone(),
            fill,
            decoder,
            buffered: Vec::new(),
            buffered_bytes: 0,
            spilled: Vec::new(),
            pending: None,
            rows: 0,
        })
    }

    fn schema(&self, session: &SqlSession) -> Result<SchemaRef> {
        let state = session.engine().catalog().snapshot();
        let table = state
            .table_by_oid(self.oid)
            .ok_or_else(|| TemporaError::undefined_table(&self.table_name))?;
        Ok(Arc::new(table.arrow_schema()))
    }
}

/// `n` values of a volatile DEFAULT: one query whose every row evaluates it
/// (a sequence hands out the `n` values in one call).
async fn per_row(
    session: &SqlSession,
    sql: &str,
    n: usize,
    ty: &datafusion::arrow::datatypes::DataType,
) -> Result<ArrayRef> {
    if n == 0 {
        return Ok(new_null_array(ty, 0));
    }
    let batches = session
        .query_sql(&format!("SELECT {sql} AS v FROM generate_series(1, {n})"))
        .await?;
    let arrays: Vec<&dyn datafusion::arrow::array::Array> =
        batches.iter().map(|b| b.column(0).as_ref()).collect();
    let all = datafusion::arrow::compute::concat(&arrays)
        .map_err(|e| TemporaError::internal(e.to_string()))?;
    if all.len() != n {
        return Err(TemporaError::internal(format!(
            "DEFAULT gave {} values for {n} rows",
            all.len()
        )));
    }
    datafusion::arrow::compute::cast(&all, ty).map_err(|e| TemporaError::internal(e.to_string()))
}

/// Files a background spill wrote, and the error that stopped it.
type SpillTask = tokio::task::JoinHandle<(Vec<(Option<u32>, FileDef)>, Option<TemporaError>)>;

/// The values of a column a COPY's data does not hold.
enum Fill {
    /// One value (the DEFAULT evaluated once, or NULL) for every row.
    Value(ArrayRef),
    /// A volatile DEFAULT (SQL, cast to the column's type), evaluated for
    /// every row.
    PerRow(String),
}

/// A `COPY ... FROM STDIN` receiving data.
pub struct CopyIn {
    engine: Arc<tempora_storage::Engine>,
    table: TableDef,
    schema: SchemaRef,
    targets: Vec<usize>,
    fill: Vec<Option<Fill>>,
    decoder: CopyDecoder,
    buffered: Vec<RecordBatch>,
    buffered_bytes: usize,
    /// Files written for this COPY, listed by the catalog only at the end.
    spilled: Vec<(Option<u32>, FileDef)>,
    /// The file write running in the background, see [`CopyIn::spill`].
    pending: Option<SpillTask>,
    rows: u64,
}

impl CopyIn {
    /// Takes one CopyData message.
    pub async fn data(&mut self, session: &SqlSession, data: &[u8]) -> Result<()> {
        self.decoder.push(data)?;
        let batches = self.decoder.take_batches();
        self.accept(session, batches).await
    }

    /// CopyDone: writes what is left and makes the whole COPY visible at once.
    /// Returns the number of rows.
    pub async fn finish(&mut self, session: &SqlSession) -> Result<u64> {
        let batches = self.decoder.finish()?;
        self.accept(session, batches).await?;
        let engine = session.engine();
        if self.spilled.is_empty() && self.pending.is_none() {
            let batches = std::mem::take(&mut self.buffered);
            session.write_rows(self.table.oid, batches).await?;
            return Ok(self.rows);
        }
        self.spill(session).await?;
        self.settle_spill().await?;
        let files = std::mem::take(&mut self.spilled);
        if let Err(e) = engine.commit_new_files(self.table.oid, files.clone()).await {
            self.spilled = files;
            return Err(e);
        }
        Ok(self.rows)
    }

    /// PostgreSQL's CONTEXT for a COPY that stops here (CopyFail).
    pub fn context(&self) -> String {
        format!(
            "COPY {}, line {}",
            self.table.name,
            self.decoder.lines() + 1
        )
    }

    async fn accept(&mut self, session: &SqlSession, batches: Vec<RecordBatch>) -> Result<()> {
        for b in batches {
            let full = self.to_table_layout(session, b).await?;
            session.engine().check_rows(&self.table, &full)?;
            self.rows += full.num_rows() as u64;
            self.buffered_bytes += full.get_array_memory_size();
            self.buffered.push(full);
        }
        // Rows of a table with unique keys go through the engine's key check.
        let may_spill = session.tx == crate::TxState::Idle && self.table.unique_keys.is_empty();
        if self.buffered_bytes >= SPILL_BYTES && may_spill {
            self.spill(session).await?;
        }
        Ok(())
    }

    /// The decoded columns placed in the table's column order, the rest filled.
    async fn to_table_layout(
        &self,
        session: &SqlSession,
        batch: RecordBatch,
    ) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.table.columns.len());
        for (i, fill) in self.fill.iter().enumerate() {
            match self.targets.iter().position(|t| *t == i) {
                Some(p) => cols.push(batch.column(p).clone()),
                None => match fill {
                    Some(Fill::Value(one)) => {
                        let indices = datafusion::arrow::array::UInt32Array::from(vec![0u32; n]);
                        cols.push(
                            datafusion::arrow::compute::take(one.as_ref(), &indices, None)
                                .map_err(|e| TemporaError::internal(e.to_string()))?,
                        );
                    }
                    Some(Fill::PerRow(sql)) => {
                        let ty = self.table.columns[i].ty.arrow_type();
                        cols.push(per_row(session, sql, n, &ty).await?);
                    }
                    None => return Err(TemporaError::internal("COPY column without a value")),
                },
            }
        }
        RecordBatch::try_new(self.schema.clone(), cols)
            .map_err(|e| TemporaError::internal(e.to_string()))
    }

    /// Starts writing the buffered rows as files of their chunks (not yet
    /// listed). The files are encoded in the background while more data is
    /// decoded; at most one such write is in flight, which bounds memory.
    async fn spill(&mut self, session: &SqlSession) -> Result<()> {
        self.settle_spill().await?;
        if self.buffered.is_empty() {
            return Ok(());
        }
        let engine = session.engine().clone();
        let batches = std::mem::take(&mut self.buffered);
        self.buffered_bytes = 0;
        let mut by_chunk: std::collections::BTreeMap<Option<u32>, Vec<RecordBatch>> =
            std::collections::BTreeMap::new();
        for batch in batches {
            let state = engine.ensure_chunks(&self.table, &batch).await?;
            self.table = state
                .table_by_oid(self.table.oid)
                .ok_or_else(|| TemporaError::undefined_table(&self.table.name))?
                .clone();
            for (chunk, part) in tempora_storage::split_by_chunk(&self.table, batch)? {
                by_chunk.entry(chunk).or_default().push(part);
            }
        }
        let table = self.table.clone();
        let copied = self.rows;
        self.pending = Some(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut files = Vec::with_capacity(by_chunk.len());
            let mut rows = 0usize;
            let mut failed = None;
            for (chunk, parts) in by_chunk {
                rows += parts.iter().map(RecordBatch::num_rows).sum::<usize>();
                match engine
                    .write_table_file(
                        &table,
                        chunk,
                        &parts,
                        "copy",
                        tempora_storage::Layout::Ingest,
                    )
                    .await
                {
                    Ok(f) => files.push((chunk, f)),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            tracing::info!(
                table = %table.name,
                rows,
                copied,
                files = files.len(),
                ms = started.elapsed().as_millis() as u64,
                "COPY wrote rows to chunk files"
            );
            (files, failed)
        }));
        Ok(())
    }

    /// Waits for the background file write, if any, and keeps its files.
    async fn settle_spill(&mut self) -> Result<()> {
        let Some(task) = self.pending.take() else {
            return Ok(());
        };
        let (files, failed) = task
            .await
            .map_err(|e| TemporaError::internal(format!("COPY file write: {e}")))?;
        self.spilled.extend(files);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for CopyIn {
    /// A COPY that failed, was cancelled or lost its client: files written
    /// for it are removed (a finished COPY has none left here).
    fn drop(&mut self) {
        if let Some(task) = self.pending.take() {
            // A write still running: its files are removed once it ends.
            let engine = self.engine.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Ok((files, _)) = task.await {
                        engine
                            .gc()
                            .retire(0, files.into_iter().map(|(_, f)| f.path));
                    }
                });
            }
        }
        let files = std::mem::take(&mut self.spilled);
        if !files.is_empty() {
            self.engine
                .gc()
                .retire(0, files.into_iter().map(|(_, f)| f.path));
        }
    }
}

impl CopyOutPlan {
    /// An encoder for the rows of this COPY.
    pub fn encoder(&self, session: &SqlSession) -> CopyEncoder {
        let tz = session.settings.get("TimeZone").unwrap_or("UTC");
        CopyEncoder::new(self.columns.clone(), self.options.clone(), tz)
    }

    pub fn wire_format(&self) -> (i8, usize) {
        (wire_code(&self.options), self.columns.len())
    }
}
