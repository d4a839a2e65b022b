//! Tempora's PostgreSQL wire layer: one session per connection, simple and
//! extended query protocols, Arrow results encoded as PostgreSQL text/binary.
//!
//! ```text
//! TcpListener ─► accept ─► Connection { SqlSession }  (one per client)
//!    Query(sql)            ─► SqlSession::prepare_all + execute ─► RowDescription/DataRow/CommandComplete
//!    Parse/Bind/Execute    ─► Prepared kept in the portal store  ─► rows in the portal's formats
//!    CancelRequest         ─► ConnectionManager ─► the running query is dropped (57014)
//! ```
//! This crate only encodes: what a statement means is decided in `tempora-sql`,
//! and every error arrives with its SQLSTATE, mapped here once ([`error_info`]).
// Errors carry PostgreSQL's fields (detail, hint, position, context): a
// large Err is the price of one error type across layers, paid only on failure.
#![allow(clippy::result_large_err)]

mod auth;
mod rows;

pub use auth::{AuthMethod, Security};

use tempora_copy::text;
use tempora_copy::zone::PgTimeZone;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use futures::{stream, Sink, SinkExt};
use pgwire::api::auth::{ServerParameterProvider, StartupHandler};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::DataRow;
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use tempora_common::{SqlState, TemporaError};
use tempora_copy::json::JsonKind;
use tempora_sql::{CopyEncoder, CopyIn, Notice, Outcome, Prepared, SqlSession, TxState};
use tempora_storage::Cluster;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// Maps a Tempora error to the wire's ErrorResponse fields.
pub fn error_info(e: &TemporaError) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".into(), e.code.code().into(), e.message.clone());
    info.detail = e.detail.clone();
    info.hint = e.hint.clone();
    info.position = e.position.map(|p| p.to_string());
    info.where_context = e.context.clone();
    info
}

fn wire_error(e: TemporaError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e)))
}

/// A `COPY ... FROM STDIN` in progress on a connection.
struct CopyInState {
    copy: Box<CopyIn>,
    /// The first error; the rest of the data is read and dropped, and the
    /// error is reported at CopyDone.
    error: Option<TemporaError>,
}

/// The handlers of one client connection.
pub struct Connection {
    session: Arc<Mutex<SqlSession>>,
    copy: Arc<Mutex<Option<CopyInState>>>,
    parser: Arc<StatementParser>,
    manager: Arc<ConnectionManager>,
    cancel: Arc<DefaultCancelHandler>,
    /// The server's databases; the first one's catalog holds the roles.
    cluster: Arc<Cluster>,
    security: Arc<Security>,
    login: Arc<Mutex<auth::Login>>,
    /// The session's transaction block catalog changes: the connection runs
    /// in their scope, so its statements see them.
    tx_catalog: Arc<tempora_catalog::TxCatalog>,
}

/// Parses and plans statements of the extended protocol (Parse).
pub struct StatementParser {
    session: Arc<Mutex<SqlSession>>,
    /// Set once the client logged in. pgwire goes on reading a connection
    /// after a FATAL login error (in the ready-for-query state), so every
    /// statement checks it: without it nothing runs.
    logged_in: AtomicBool,
}

impl StatementParser {
    /// The session, for a client that logged in.
    async fn session(&self) -> PgWireResult<tokio::sync::MutexGuard<'_, SqlSession>> {
        if !self.logged_in.load(Ordering::Acquire) {
            return Err(auth::fatal(
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                "the connection has not logged in",
            ));
        }
        Ok(self.session.lock().await)
    }
}

type Statement = Arc<Prepared>;

fn pg_types(types: &[Option<DataType>]) -> PgWireResult<Vec<Type>> {
    types
        .iter()
        .map(|t| match t {
            Some(t) => into_pg_type(t),
            None => Ok(Type::UNKNOWN),
        })
        .collect()
}

fn format_options(session: &SqlSession) -> Arc<FormatOptions> {
    let s = &session.settings;
    let get = |k: &str, d: &str| s.get(k).unwrap_or(d).to_string();
    let mut o = FormatOptions::default();
    o.date_style = get("DateStyle", "ISO, MDY");
    o.interval_style = get("IntervalStyle", "postgres");
    o.time_zone = get("TimeZone", "UTC");
    o.extra_float_digits = get("extra_float_digits", "1").parse().unwrap_or(1);
    Arc::new(o)
}

/// The row description of `schema`'s fields: the generic mapping, with text
/// fields that hold json, jsonb or uuid values (tempora-query's `jsonb`)
/// announced as those types, so that drivers decode them as such.
fn pg_fields(
    schema: &Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    let mut fields = arrow_schema_to_pg_fields(schema, format, options)?;
    for (info, field) in fields.iter_mut().zip(schema.fields()) {
        let datatype = match tempora_query::jsonb::text_type(field) {
            Some("json") => Type::JSON,
            Some("jsonb") => Type::JSONB,
            Some("uuid") => Type::UUID,
            _ => continue,
        };
        *info = FieldInfo::new(
            info.name().to_string(),
            info.table_id(),
            info.column_id(),
            datatype,
            info.format(),
        )
        .with_format_options(info.format_options().clone())
        .with_type_size(-1);
    }
    Ok(fields)
}

/// The binary form of a text column whose values are another type's
/// (`binary` writes one value), passed through as bytes: jsonb is a format
/// version (1), then the text; a uuid is its 16 bytes.
fn binary_of_text(
    col: &ArrayRef,
    binary: impl Fn(&str) -> Result<Vec<u8>, TemporaError>,
) -> PgWireResult<ArrayRef> {
    let text = datafusion::arrow::compute::cast(col, &DataType::Utf8)
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let values = text
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(&binary).transpose())
        .collect::<Result<Vec<Option<Vec<u8>>>, _>>()
        .map_err(wire_error)?;
    Ok(Arc::new(datafusion::arrow::array::BinaryArray::from_iter(
        values,
    )))
}

/// `batch` with the columns whose text or binary form the generic encoder
/// would get wrong replaced by that form; with `leave_to_rows`, the columns
/// [`rows::text_rows`] writes itself are left as they are.
fn render_text_columns(
    batch: RecordBatch,
    format: &Format,
    tz: &str,
    leave_to_rows: bool,
) -> PgWireResult<RecordBatch> {
    let mut fields: Vec<Field> = Vec::with_capacity(batch.num_columns());
    let mut cols = Vec::with_capacity(batch.num_columns());
    let mut changed = false;
    for (i, (col, field)) in batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .enumerate()
    {
        // Text: PostgreSQL's formatting of floats, timestamps, intervals.
        // Binary: pre-encoded values (passed through as bytes) where the
        // generic encoder would be wrong.
        let binary = format.format_for(i) != FieldFormat::Text;
        let rendered = if binary && tempora_query::jsonb::json_kind(field) == Some(JsonKind::Jsonb)
        {
            Some(binary_of_text(
                col,
                |s| Ok([&[1u8], s.as_bytes()].concat()),
            )?)
        } else if binary && tempora_query::jsonb::is_uuid(field) {
            Some(binary_of_text(col, |s| {
                tempora_copy::values::uuid_bytes(s).map(Vec::from)
            })?)
        } else if leave_to_rows && rows::writes(col.data_type()) {
            None
        } else if !binary {
            text::render(col, tz).map_err(|e| PgWireError::ApiError(Box::new(e)))?
        } else {
            tempora_copy::binary_values(col).map_err(|e| PgWireError::ApiError(Box::new(e)))?
        };
        match rendered {
            Some(r) => {
                changed = true;
                fields.push(Field::new(field.name(), r.data_type().clone(), true));
                cols.push(r);
            }
            None => {
                fields.push(field.as_ref().clone());
                cols.push(col.clone());
            }
        }
    }
    if !changed {
        return Ok(batch);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// Rows from which a result is printed on more than one core.
const PARALLEL_ROWS: usize = 64 * 1024;

/// The cores results are printed on. Asked once: the standard library reads
/// the cgroup's CPU quota from files on every call.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `batches` cut into consecutive runs of about equal rows, one per core,
/// when there are enough rows to be worth it (else one run).
fn row_runs(batches: &[RecordBatch]) -> Vec<&[RecordBatch]> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if total < 2 * PARALLEL_ROWS || batches.len() < 2 {
        return vec![batches];
    }
    let n = cores().min(batches.len()).min(total / PARALLEL_ROWS).max(1);
    let mut runs = Vec::with_capacity(n);
    let (mut start, mut rows) = (0, 0);
    for (i, b) in batches.iter().enumerate() {
        rows += b.num_rows();
        let last = i + 1 == batches.len();
        if !last && runs.len() + 1 < n && rows * n >= total * (runs.len() + 1) {
            runs.push(&batches[start..=i]);
            start = i + 1;
        }
    }
    runs.push(&batches[start..]);
    runs
}

/// Prints a result's batches as DataRows in the session's output formats.
struct RowPrinter<'a> {
    schema: SchemaRef,
    fields: Arc<Vec<FieldInfo>>,
    format: &'a Format,
    tz: String,
    /// The session's TimeZone, in which timestamptz values print.
    zone: PgTimeZone,
    all_text: bool,
}

impl<'a> RowPrinter<'a> {
    fn new(session: &SqlSession, schema: SchemaRef, format: &'a Format) -> PgWireResult<Self> {
        let tz = session
            .settings
            .get("TimeZone")
            .unwrap_or("UTC")
            .to_string();
        let fields = Arc::new(pg_fields(&schema, format, Some(format_options(session)))?);
        let all_text =
            (0..schema.fields().len()).all(|i| format.format_for(i) == FieldFormat::Text);
        Ok(Self {
            schema,
            fields,
            format,
            zone: PgTimeZone::of_setting(&tz),
            tz,
            all_text,
        })
    }

    /// `batches`' rows; text rows are written into `buffer`
    /// ([`rows::text_rows`]).
    fn print(
        &self,
        batches: &[RecordBatch],
        buffer: &mut bytes::BytesMut,
    ) -> PgWireResult<Vec<PgWireResult<DataRow>>> {
        let (format, tz, all_text) = (self.format, &self.tz, self.all_text);
        let mut rows = Vec::new();
        for batch in batches {
            // Plans may give a column another Arrow type than its declared one.
            let batch = tempora_sql::conform(batch.columns(), &self.schema).map_err(wire_error)?;
            // Text output prints timestamptz in the session's TimeZone (text.rs);
            // binary output carries the instant, which no zone changes.
            let batch = render_text_columns(batch, format, tz, all_text)?;
            if all_text {
                if let Some(text) = rows::text_rows(&batch, &self.zone, buffer) {
                    rows.extend(text.into_iter().map(Ok));
                    continue;
                }
            }
            // A column text_rows does not write: the columns it would have
            // written become text too.
            let batch = if all_text {
                render_text_columns(batch, format, tz, false)?
            } else {
                batch
            };
            // At most one row per row of the batch: the generic encoder yields
            // an error for a value it cannot encode without moving past it.
            let n = batch.num_rows();
            rows.extend(encode_recordbatch(self.fields.clone(), batch).take(n));
        }
        Ok(rows)
    }
}

fn query_response(
    session: &SqlSession,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    tag: String,
    format: &Format,
) -> PgWireResult<Response> {
    let printer = RowPrinter::new(session, schema, format)?;
    // A large result is printed on every core, a run of batches each (the
    // first on this thread); a small one is one run, printed here.
    let runs = row_runs(&batches);
    let rows = if let [first, rest @ ..] = runs.as_slice() {
        let printed: Vec<PgWireResult<Vec<_>>> = std::thread::scope(|scope| {
            let others: Vec<_> = rest
                .iter()
                .map(|run| scope.spawn(|| printer.print(run, &mut bytes::BytesMut::new())))
                .collect();
            let mut printed = vec![printer.print(first, &mut bytes::BytesMut::new())];
            for handle in others {
                printed.push(handle.join().unwrap_or_else(|_| {
                    Err(wire_error(TemporaError::internal("printing rows failed")))
                }));
            }
            printed
        });
        let mut rows = Vec::new();
        for run in printed {
            rows.extend(run?);
        }
        rows
    } else {
        Vec::new()
    };
    let mut resp = QueryResponse::new(printer.fields.clone(), stream::iter(rows));
    resp.command_tag = tag;
    Ok(Response::Query(resp))
}

/// How a statement's rows reach the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// A simple Query: RowDescription, DataRows, CommandComplete.
    Simple,
    /// An Execute of a portal: DataRows (the client asked Describe for
    /// their description), at most `max_rows` of them (0: all).
    Portal { max_rows: usize },
}

/// The next batch of a streamed query, or its statement timeout.
async fn next_batch(
    stream: &mut datafusion::execution::SendableRecordBatchStream,
    deadline: Option<tokio::time::Instant>,
) -> Option<PgWireResult<RecordBatch>> {
    use futures::StreamExt;
    let next = match deadline {
        Some(at) => tokio::time::timeout_at(at, stream.next())
            .await
            .unwrap_or_else(|_| {
                Some(Err(tempora_sql::statement_timeout_error().into_datafusion()))
            }),
        None => stream.next().await,
    };
    next.map(|b| b.map_err(|e| wire_error(TemporaError::from_datafusion(e))))
}

/// All the batches of a streamed query.
async fn collect_stream(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    deadline: Option<tokio::time::Instant>,
) -> PgWireResult<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    while let Some(batch) = next_batch(&mut stream, deadline).await {
        batches.push(batch?);
    }
    Ok(batches)
}

/// Sends a streamed query's rows as its plan computes them, so that the
/// server holds a batch at a time and the client reads the first rows
/// while the last are computed. Returns the completion tag to send.
async fn send_streamed_rows<C>(
    client: &mut C,
    session: &SqlSession,
    schema: SchemaRef,
    mut stream: datafusion::execution::SendableRecordBatchStream,
    deadline: Option<tokio::time::Instant>,
    format: &Format,
    delivery: Delivery,
) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let printer = RowPrinter::new(session, schema, format)?;
    if delivery == Delivery::Simple {
        let description = pgwire::messages::data::RowDescription::new(
            printer.fields.iter().map(Into::into).collect(),
        );
        client
            .feed(PgWireBackendMessage::RowDescription(description))
            .await?;
    }
    let mut rows = 0usize;
    // Each batch's rows are sent (and dropped) before the next is printed
    // into the same buffer.
    let mut buffer = bytes::BytesMut::new();
    // An error ends the statement; the rows sent stand, as in PostgreSQL.
    while let Some(batch) = next_batch(&mut stream, deadline).await {
        for row in printer.print(std::slice::from_ref(&batch?), &mut buffer)? {
            client.feed(PgWireBackendMessage::DataRow(row?)).await?;
            rows += 1;
        }
    }
    Ok(Response::Execution(Tag::new("SELECT").with_rows(rows)))
}

fn into_response(
    session: &SqlSession,
    outcome: Outcome,
    format: &Format,
) -> PgWireResult<Response> {
    Ok(match outcome {
        Outcome::Rows {
            schema,
            batches,
            tag,
        } => query_response(session, schema, batches, tag, format)?,
        Outcome::Command(tag) => Response::Execution(Tag::new(&tag)),
        Outcome::Transaction { tag, state } => match state {
            TxState::Idle => Response::TransactionEnd(Tag::new(&tag)),
            _ => Response::TransactionStart(Tag::new(&tag)),
        },
        Outcome::Empty => Response::EmptyQuery,
        Outcome::CopyIn { .. } | Outcome::CopyOut { .. } | Outcome::Stream { .. } => {
            return Err(wire_error(TemporaError::internal(
                "COPY or streamed outcome reached the plain response path",
            )))
        }
    })
}

/// Sends a COPY's rows as CopyOutResponse, one CopyData per row, CopyDone;
/// returns the command tag with the row count.
async fn send_copy_out<C>(
    client: &mut C,
    mut stream: datafusion::execution::SendableRecordBatchStream,
    mut encoder: Box<CopyEncoder>,
    format: i8,
    columns: usize,
) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    use futures::StreamExt;
    use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
    client
        .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            format,
            columns as i16,
            vec![format as i16; columns],
        )))
        .await?;
    // As PostgreSQL does: a text/CSV header line is a message of its own; the
    // binary signature travels in front of the first row (or the trailer).
    let header = encoder.header();
    let mut pending = bytes::BytesMut::new();
    if format == 1 {
        pending.extend_from_slice(&header);
    } else if !header.is_empty() {
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(header)))
            .await?;
    }
    let mut rows = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| wire_error(TemporaError::from_datafusion(e)))?;
        for row in encoder.encode(&batch).map_err(wire_error)? {
            let row = if pending.is_empty() {
                row
            } else {
                pending.extend_from_slice(&row);
                pending.split().freeze()
            };
            client
                .feed(PgWireBackendMessage::CopyData(CopyData::new(row)))
                .await?;
            rows += 1;
        }
        client.flush().await?;
    }
    let trailer = encoder.trailer();
    if !trailer.is_empty() || !pending.is_empty() {
        pending.extend_from_slice(&trailer);
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(
                pending.freeze(),
            )))
            .await?;
    }
    client
        .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(Response::Execution(Tag::new("COPY").with_rows(rows)))
}

async fn send_notices<C>(client: &mut C, notices: Vec<Notice>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for n in notices {
        let mut info = ErrorInfo::new(n.severity.into(), n.code.code().into(), n.message);
        info.detail = n.detail;
        client
            .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                info,
            )))
            .await?;
    }
    Ok(())
}

/// The values of a Bind message's parameters, read as the client declared
/// them or else as the statement's plan types them. A parameter typed by
/// neither is read as text, as PostgreSQL reads an unknown; a NULL one is
/// an untyped NULL, which takes the type its context needs (`coalesce($1, 0)`).
fn parameter_values(
    portal: &Portal<Statement>,
    inferred: &[Option<&DataType>],
) -> PgWireResult<ParamValues> {
    let declared = |i: usize| {
        portal
            .statement
            .parameter_types
            .get(i)
            .cloned()
            .flatten()
            .filter(|t| *t != Type::UNKNOWN)
    };
    let untyped: Vec<bool> = (0..portal.parameter_len())
        .map(|i| declared(i).is_none() && inferred.get(i).copied().flatten().is_none())
        .collect();
    let text: Vec<Option<&Type>> = untyped.iter().map(|&u| u.then_some(&Type::TEXT)).collect();
    let values =
        arrow_pg::datatypes::df::deserialize_parameters_with_server_types(portal, inferred, &text)?;
    let ParamValues::List(mut values) = values else {
        return Ok(values);
    };
    for (value, untyped) in values.iter_mut().zip(untyped) {
        if untyped && value.value().is_null() {
            *value = ScalarValue::Null.into();
        }
    }
    Ok(ParamValues::List(values))
}

/// `portal` with its json, jsonb and uuid parameters as the text they hold
/// (the column or function they reach checks it): jsonb's binary form is a
/// version byte, 1, then the text; a uuid's is its 16 bytes. None for a
/// portal without any.
fn typed_text_parameters(
    portal: &Portal<Statement>,
) -> Result<Option<Portal<Statement>>, TemporaError> {
    let types = &portal.statement.parameter_types;
    let kept_as_text = |t: &Option<Type>| matches!(t, Some(t) if *t == Type::JSON || *t == Type::JSONB || *t == Type::UUID);
    if !types.iter().any(kept_as_text) {
        return Ok(None);
    }
    let mut parameters = portal.parameters.clone();
    let mut parameter_types = types.clone();
    for (i, t) in parameter_types.iter_mut().enumerate() {
        if !kept_as_text(t) {
            continue;
        }
        let binary = portal.parameter_format.format_for(i) == FieldFormat::Binary;
        if binary && *t == Some(Type::UUID) {
            if let Some(Some(bytes)) = parameters.get_mut(i) {
                let raw: [u8; 16] = bytes.as_ref().try_into().map_err(|_| {
                    TemporaError::new(
                        SqlState::INVALID_BINARY_REPRESENTATION,
                        "insufficient data left in message",
                    )
                })?;
                *bytes = bytes::Bytes::from(tempora_copy::values::uuid_text(&raw));
            }
        }
        if binary && *t == Some(Type::JSONB) {
            if let Some(Some(bytes)) = parameters.get_mut(i) {
                match bytes.first() {
                    Some(1) => *bytes = bytes.slice(1..),
                    _ => {
                        return Err(TemporaError::new(
                            SqlState::INVALID_BINARY_REPRESENTATION,
                            "unsupported jsonb version number",
                        ))
                    }
                }
            }
        }
        *t = Some(Type::TEXT);
    }
    let statement = pgwire::api::stmt::StoredStatement::new(
        portal.statement.id.clone(),
        portal.statement.statement.clone(),
        parameter_types,
    );
    let mut changed = Portal::new_cursor(portal.name.clone(), Arc::new(statement));
    changed.parameter_format = portal.parameter_format.clone();
    changed.parameters = parameters;
    changed.result_column_format = portal.result_column_format.clone();
    Ok(Some(changed))
}

/// Plans the statement of a Parse message. PostgreSQL takes the parameter
/// types a client declares as given: psycopg declares a timezone-aware
/// datetime as timestamptz and a small int as int2, pgjdbc `setInt` as int4.
/// Where Tempora would infer another type for such a parameter (or none), the
/// statement is planned again with the declared types.
async fn prepare_parsed(
    session: &SqlSession,
    sql: &str,
    stmt: tempora_sql::ParsedStatement,
    types: &[Option<Type>],
) -> Result<Prepared, TemporaError> {
    let declared: Vec<Option<&str>> = types
        .iter()
        .map(|t| t.as_ref().and_then(declared_type_name))
        .collect();
    if declared.iter().all(Option::is_none) {
        return session.prepare_statement(sql, stmt).await;
    }
    let plain = session.prepare_statement(sql, stmt.clone()).await;
    let inferred = |i: usize| match &plain {
        Ok(p) => p
            .param_types
            .get(i)
            .cloned()
            .flatten()
            .and_then(|t| into_pg_type(&t).ok()),
        Err(_) => None,
    };
    let differing: Vec<Option<&str>> = declared
        .iter()
        .enumerate()
        .map(|(i, name)| name.filter(|_| inferred(i).as_ref() != types[i].as_ref()))
        .collect();
    if plain.is_ok() && differing.iter().all(Option::is_none) {
        return plain;
    }
    session.prepare_declared(sql, stmt, &differing).await
}

/// The SQL name of a parameter type a client declared, for the types whose
/// declaration decides how Tempora reads the statement. Text types are left
/// to inference: pgjdbc declares every `setString` as varchar, and Tempora
/// reads such a string as the type its context needs (where PostgreSQL
/// needs the driver's `stringtype=unspecified`).
fn declared_type_name(t: &Type) -> Option<&'static str> {
    Some(match *t {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::NUMERIC => "numeric",
        Type::DATE => "date",
        Type::TIMESTAMP => "timestamp",
        Type::TIMESTAMPTZ => "timestamptz",
        Type::INTERVAL => "interval",
        Type::BYTEA => "bytea",
        _ => return None,
    })
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut session = self.session().await?;
        let oids: Vec<u32> = types
            .iter()
            .map(|t| t.as_ref().map_or(0, Type::oid))
            .collect();
        if let Some(p) = session.parsed_before(sql, &oids) {
            return Ok(Some(Arc::new(p)));
        }
        let stamp = session.plan_stamp();
        let parsed = match tempora_sql::parse_query(sql) {
            Ok(mut stmts) if stmts.len() == 1 => {
                let parsed = prepare_parsed(&session, sql, stmts.remove(0), types).await;
                if let Ok(p) = &parsed {
                    session.keep_parsed(sql, &oids, p, stamp);
                }
                parsed
            }
            Ok(stmts) if stmts.is_empty() => return Ok(None),
            Ok(_) => Err(TemporaError::syntax(
                "cannot insert multiple commands into a prepared statement",
            )),
            Err(e) => Err(e),
        };
        match parsed {
            Ok(p) => Ok(Some(Arc::new(p))),
            Err(e) => {
                session.statement_failed();
                Err(wire_error(e))
            }
        }
    }

    fn get_parameter_types(&self, stmt: &Statement) -> PgWireResult<Vec<Type>> {
        pg_types(&stmt.param_types)
    }

    fn get_result_schema(
        &self,
        stmt: &Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.result_schema {
            Some(schema) => pg_fields(schema, column_format.unwrap_or(&Format::UnifiedText), None),
            None => Ok(vec![]),
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.parser.session().await?;
        let stmts = match tempora_sql::parse_query(query) {
            Ok(s) => s,
            Err(e) => return Ok(vec![Response::Error(Box::new(error_info(&e)))]),
        };
        let mut responses = Vec::new();
        // A query of one statement sends its rows as they are computed.
        // Several statements' rows are held: pgwire sends every statement's
        // response after the last has run.
        let stream = stmts.len() == 1;
        for stmt in stmts {
            // A query of a shape the session sent before reuses its plan.
            let cached = match stream {
                true => session.prepare_cached(query, &stmt).await,
                false => None,
            };
            let result = match cached {
                Some(p) => session.execute_streaming(&p, None).await,
                None => match session.prepare_statement(query, stmt).await {
                    Ok(p) if stream => session.execute_streaming(&p, None).await,
                    Ok(p) => session.execute(&p, None).await,
                    Err(e) => {
                        session.statement_failed();
                        Err(e)
                    }
                },
            };
            match result {
                Ok((outcome, notices)) => {
                    send_notices(client, notices).await?;
                    let copy_in = matches!(outcome, Outcome::CopyIn { .. });
                    match self
                        .respond(
                            client,
                            &mut session,
                            outcome,
                            &Format::UnifiedText,
                            Delivery::Simple,
                        )
                        .await
                    {
                        Ok(r) => responses.push(r),
                        Err(PgWireError::UserError(info)) => {
                            responses.push(Response::Error(info));
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                    if copy_in {
                        // The data follows; statements after a COPY FROM STDIN
                        // in the same query string are not run.
                        break;
                    }
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Statement;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.parser.session().await?;
        let prepared = portal.statement.statement.clone();
        let inferred: Vec<Option<&DataType>> =
            prepared.param_types.iter().map(|t| t.as_ref()).collect();
        let params = if portal.parameters.is_empty() {
            None
        } else {
            let as_text = typed_text_parameters(portal).map_err(wire_error)?;
            let portal = as_text.as_ref().unwrap_or(portal);
            Some(parameter_values(portal, &inferred).map_err(|e| {
                wire_error(TemporaError::new(
                    SqlState::INVALID_TEXT_REPRESENTATION,
                    format!("invalid parameter: {e}"),
                ))
            })?)
        };
        let (outcome, notices) = session
            .execute_streaming(&prepared, params)
            .await
            .map_err(wire_error)?;
        send_notices(client, notices).await?;
        let streamed = matches!(outcome, Outcome::Stream { .. }) && max_rows == 0;
        let response = self
            .respond(
                client,
                &mut session,
                outcome,
                &portal.result_column_format,
                Delivery::Portal { max_rows },
            )
            .await?;
        if streamed {
            // Its rows are all sent: a later Execute of the same portal
            // finds none, as in PostgreSQL, instead of running it again.
            portal
                .start(QueryResponse::new(Arc::new(Vec::new()), stream::empty()))
                .await;
        }
        Ok(response)
    }
}

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.session.lock().await;
        let mut slot = self.copy.lock().await;
        let Some(state) = slot.as_mut() else {
            return Err(wire_error(TemporaError::new(
                SqlState::PROTOCOL_VIOLATION,
                "unexpected CopyData message: no COPY in progress",
            )));
        };
        if state.error.is_none() {
            if let Err(e) = state.copy.data(&session, &copy_data.data).await {
                state.error = Some(e);
            }
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let Some(mut state) = self.copy.lock().await.take() else {
            return Err(wire_error(TemporaError::new(
                SqlState::PROTOCOL_VIOLATION,
                "unexpected CopyDone message: no COPY in progress",
            )));
        };
        let result = match state.error.take() {
            Some(e) => Err(e),
            None => state.copy.finish(&session).await,
        };
        match result {
            Ok(rows) => {
                client
                    .send(PgWireBackendMessage::CommandComplete(
                        Tag::new("COPY").with_rows(rows as usize).into(),
                    ))
                    .await?;
                Ok(())
            }
            Err(e) => {
                session.statement_failed();
                Err(wire_error(e))
            }
        }
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let state = self.copy.lock().await.take();
        session.statement_failed();
        let mut err = TemporaError::new(
            SqlState::QUERY_CANCELED,
            format!("COPY from stdin failed: {}", fail.message),
        );
        if let Some(state) = state {
            err = err.with_context(state.copy.context());
        }
        wire_error(err)
    }
}

#[async_trait]
impl StartupHandler for Connection {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut login = self.login.lock().await;
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                pgwire::api::auth::protocol_negotiation(client, startup).await?;
                pgwire::api::auth::save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                let user = client
                    .metadata()
                    .get(pgwire::api::METADATA_USER)
                    .cloned()
                    .ok_or_else(|| {
                        auth::fatal(
                            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                            "no PostgreSQL user name specified in startup packet",
                        )
                    })?;
                let catalog = self.cluster.main().catalog().snapshot();
                let role = catalog.role(&user);
                if self.security.trust_loopback && client.socket_addr().ip().is_loopback() {
                    return self.accept(client, &user).await;
                }
                let challenge = match self.security.md5_secret(role) {
                    Some(secret) => {
                        let salt: [u8; 4] = rand::random();
                        *login = auth::Login::Md5 {
                            user,
                            expected: secret.map(|s| auth::md5_response(&s, &salt)),
                        };
                        Authentication::MD5Password(salt.to_vec())
                    }
                    None => {
                        *login = auth::Login::ScramStart {
                            secret: self.security.scram_secret(&user, role),
                            user,
                        };
                        Authentication::SASL(vec!["SCRAM-SHA-256".into()])
                    }
                };
                client
                    .send(PgWireBackendMessage::Authentication(challenge))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                match std::mem::take(&mut *login) {
                    auth::Login::Start => {
                        return Err(auth::fatal(
                            SqlState::PROTOCOL_VIOLATION,
                            "unexpected password message",
                        ))
                    }
                    auth::Login::Md5 { user, expected } => {
                        let sent = msg.into_password()?.password;
                        if !auth::md5_matches(expected.as_deref(), &sent) {
                            return Err(self.refuse(client, &user));
                        }
                        self.accept_password(client, &user).await?;
                    }
                    auth::Login::ScramStart { user, secret } => {
                        let first = msg.into_sasl_initial_response()?;
                        if first.auth_method != "SCRAM-SHA-256" {
                            return Err(auth::fatal(
                                SqlState::PROTOCOL_VIOLATION,
                                "client selected an invalid SASL authentication mechanism",
                            ));
                        }
                        let data = first.data.unwrap_or_default();
                        let exchange = auth::ScramExchange::start(secret, &data)?;
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(
                                    exchange.server_first().as_bytes().to_vec().into(),
                                ),
                            ))
                            .await?;
                        *login = auth::Login::ScramFinal {
                            user,
                            exchange: Box::new(exchange),
                        };
                    }
                    auth::Login::ScramFinal { user, exchange } => {
                        let last = msg.into_sasl_response()?;
                        let Some(server_final) = exchange.finish(&last.data)? else {
                            return Err(self.refuse(client, &user));
                        };
                        client
                            .feed(PgWireBackendMessage::Authentication(
                                Authentication::SASLFinal(server_final.into_bytes().into()),
                            ))
                            .await?;
                        self.accept_password(client, &user).await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Connection {
    /// A wrong password (or none to match): logged, and answered as
    /// PostgreSQL answers it.
    fn refuse<C: ClientInfo>(&self, client: &C, user: &str) -> PgWireError {
        tracing::info!(user, peer = %client.socket_addr(), "password authentication failed");
        auth::password_failed(user)
    }

    /// The password was right: the role may still not log in.
    async fn accept_password<C>(&self, client: &mut C, user: &str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let catalog = self.cluster.main().catalog().snapshot();
        let expired = catalog
            .role(user)
            .and_then(|r| r.valid_until)
            .is_some_and(|until| until < chrono::Utc::now().timestamp_micros());
        if expired {
            tracing::info!(user, "password expired");
            return Err(self.refuse(client, user));
        }
        self.accept(client, user).await
    }

    /// Logs the client in as `user`: checks the role, the database and the
    /// connection limit, applies the startup parameters, and reports the
    /// session's parameters.
    async fn accept<C>(&self, client: &mut C, user: &str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let catalog = self.cluster.main().catalog().snapshot();
        let Some(role) = catalog.role(user) else {
            return Err(auth::fatal(
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                format!("role \"{user}\" does not exist"),
            ));
        };
        if !role.login {
            return Err(auth::fatal(
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                format!("role \"{user}\" is not permitted to log in"),
            ));
        }
        let meta = client.metadata().clone();
        // As libpq, a client that names no database asks for the user's.
        let database = meta
            .get(pgwire::api::METADATA_DATABASE)
            .map_or(user, String::as_str);
        let connected = self
            .cluster
            .connect(database)
            .map_err(|e| refused_at_startup(&e))?;
        let slot = self.security.admit(role)?;
        client.session_extensions().insert(slot);
        let mut session = self.session.lock().await;
        if !Arc::ptr_eq(&connected.engine, session.engine()) {
            *session = SqlSession::with_tx_catalog(connected.engine, self.tx_catalog.clone())
                .map_err(wire_error)?;
        }
        session.join(self.cluster.clone(), connected.guard);
        session.log_in(role);
        // The database's defaults, then what the client asked for.
        for (name, value) in &connected.settings {
            if let Err(e) = session.set_parameter(name, value) {
                tracing::warn!(parameter = %name, error = %e, "database default ignored");
            }
        }
        for (k, v) in &meta {
            // Names are case-insensitive: libpq sends PGTZ as `timezone`.
            let name = match k.to_ascii_lowercase().as_str() {
                "application_name" | "client_encoding" | "datestyle" | "timezone"
                | "extra_float_digits" | "intervalstyle" | "search_path" => k.as_str(),
                _ => continue,
            };
            match session.set_parameter(name, v) {
                Ok(()) => {}
                // A value PostgreSQL refuses too (`PGTZ=Foo/Bar`): the
                // connection is refused, as PostgreSQL refuses it.
                Err(e) if e.code == SqlState::INVALID_PARAMETER_VALUE => {
                    return Err(refused_at_startup(&e))
                }
                // One PostgreSQL takes but Tempora does not follow (a
                // client encoding other than UTF8): the default stays.
                Err(e) => {
                    tracing::debug!(parameter = name, error = %e, "startup parameter ignored")
                }
            }
        }
        if let Some(options) = meta.get("options") {
            // -c name=value pairs, as libpq's PGOPTIONS sends them.
            for part in options.split_whitespace().collect::<Vec<_>>().windows(2) {
                if part[0] == "-c" {
                    if let Some((k, v)) = part[1].split_once('=') {
                        session
                            .set_parameter(k, v)
                            .map_err(|e| refused_at_startup(&e))?;
                    }
                }
            }
        }
        let (pid, secret_key) = RandomPidSecretKeyGenerator::default().generate(client);
        client.set_pid_and_secret_key(pid, secret_key.clone());
        let (handle, guard) = self.manager.register(pid, secret_key);
        client.session_extensions().insert(handle);
        client.session_extensions().insert(guard);
        let reported = ReportedParameters(session.settings.reported().into_iter().collect());
        drop(session);
        self.parser.logged_in.store(true, Ordering::Release);
        tracing::debug!(user, peer = %client.socket_addr(), "logged in");
        pgwire::api::auth::finish_authentication(client, &reported).await
    }
}

/// A setting the client asked for at startup that cannot be applied: the
/// connection ends, with PostgreSQL's FATAL.
fn refused_at_startup(e: &TemporaError) -> PgWireError {
    let mut info = error_info(e);
    info.severity = "FATAL".into();
    PgWireError::UserError(Box::new(info))
}

/// The parameters a session reports at startup (ParameterStatus).
struct ReportedParameters(HashMap<String, String>);

impl ServerParameterProvider for ReportedParameters {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        Some(self.0.clone())
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(self.clone_handle())
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(self.clone_handle())
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::new(self.clone_handle())
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::new(self.clone_handle())
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

impl Connection {
    /// The response to a statement's outcome; COPY outcomes start their
    /// protocol here (CopyIn waits for the client's data, CopyOut streams rows).
    async fn respond<C>(
        &self,
        client: &mut C,
        session: &mut SqlSession,
        outcome: Outcome,
        format: &Format,
        delivery: Delivery,
    ) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match outcome {
            Outcome::CopyIn {
                copy,
                format,
                columns,
            } => {
                *self.copy.lock().await = Some(CopyInState { copy, error: None });
                Ok(Response::CopyIn(CopyResponse::new(
                    format,
                    columns,
                    stream::empty(),
                )))
            }
            Outcome::CopyOut {
                stream,
                encoder,
                format,
                columns,
                pin,
            } => {
                let resp = send_copy_out(client, stream, encoder, format, columns).await;
                drop(pin);
                resp
            }
            Outcome::Stream {
                schema,
                stream,
                deadline,
                pin,
            } => {
                let resp = match delivery {
                    // A portal read a few rows at a time keeps them all
                    // (PortalSuspended between Executes).
                    Delivery::Portal { max_rows } if max_rows > 0 => {
                        collect_stream(stream, deadline).await.and_then(|batches| {
                            query_response(session, schema, batches, "SELECT".into(), format)
                        })
                    }
                    _ => {
                        send_streamed_rows(
                            client, session, schema, stream, deadline, format, delivery,
                        )
                        .await
                    }
                };
                drop(pin);
                if resp.is_err() {
                    session.statement_failed();
                }
                resp
            }
            other => into_response(session, other, format),
        }
    }

    pub fn new(
        cluster: Arc<Cluster>,
        manager: Arc<ConnectionManager>,
        security: Arc<Security>,
    ) -> Result<Self, TemporaError> {
        // Until the client logs in, a session of the first database.
        let session = SqlSession::new(cluster.main().clone())?;
        let tx_catalog = session.tx_catalog();
        let session = Arc::new(Mutex::new(session));
        Ok(Self {
            tx_catalog,
            parser: Arc::new(StatementParser {
                session: session.clone(),
                logged_in: AtomicBool::new(false),
            }),
            session,
            copy: Arc::new(Mutex::new(None)),
            cancel: Arc::new(DefaultCancelHandler::new(manager.clone())),
            manager,
            cluster,
            security,
            login: Default::default(),
        })
    }

    fn clone_handle(&self) -> Connection {
        Connection {
            session: self.session.clone(),
            copy: self.copy.clone(),
            parser: self.parser.clone(),
            manager: self.manager.clone(),
            cancel: self.cancel.clone(),
            cluster: self.cluster.clone(),
            security: self.security.clone(),
            login: self.login.clone(),
            tx_catalog: self.tx_catalog.clone(),
        }
    }
}

/// Accepts connections until `shutdown` turns true; one task per client.
pub async fn serve(
    listener: TcpListener,
    cluster: Arc<Cluster>,
    security: Arc<Security>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let manager = Arc::new(ConnectionManager::new());
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let _ = socket.set_nodelay(true);
        let cluster = cluster.clone();
        let manager = manager.clone();
        let security = security.clone();
        tokio::spawn(async move {
            let tls = security.tls.clone();
            let conn = match Connection::new(cluster, manager, security) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "could not set up a session");
                    return;
                }
            };
            tracing::debug!(%peer, "connection opened");
            let tx_catalog = conn.tx_catalog.clone();
            let run = serve_connection(socket, tls, conn);
            if let Err(e) = tx_catalog.scope(run).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            tracing::debug!(%peer, "connection closed");
        });
    }
}

/// How long a client has to finish startup and authentication, as
/// PostgreSQL's `authentication_timeout`.
const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How many bytes of messages a connection gathers before it writes them to
/// its socket. The codec's default, 8 KiB, cost a system call (and a wakeup
/// of the client) per 50 rows of a wide result: 39,000 of them for a result
/// of 1.7 million rows.
const WRITE_BOUNDARY: usize = 256 * 1024;

/// One client connection: TLS negotiation, then every message it sends,
/// each answered by `conn`'s handlers, until it terminates or goes away.
async fn serve_connection(
    mut socket: tokio::net::TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    conn: Connection,
) -> std::io::Result<()> {
    use futures::StreamExt;
    use pgwire::api::ErrorHandler;
    use pgwire::api::PgWireConnectionState::{
        AuthenticationInProgress, AwaitingStartup, CopyInProgress,
    };
    let startup = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup);
    let short = tokio::select! {
        _ = &mut startup => return Ok(()),
        short = short_startup_packet(&socket) => short?,
    };
    if short {
        tracing::debug!("invalid length of startup packet");
        // Read what was sent, so that closing is an orderly end of the
        // stream rather than a reset.
        let mut length = [0u8; 4];
        let _ = tokio::io::AsyncReadExt::read_exact(&mut socket, &mut length).await;
        return Ok(());
    }
    let negotiated = tokio::select! {
        _ = &mut startup => return Ok(()),
        socket = pgwire::tokio::server::negotiate_tls(socket, tls) => socket?,
    };
    // None: a direct TLS handshake to a server without TLS.
    let Some(mut socket) = negotiated else {
        return Ok(());
    };
    socket.set_backpressure_boundary(WRITE_BOUNDARY);
    let (authenticator, queries, extended, copies, cancels, errors) = (
        conn.startup_handler(),
        conn.simple_query_handler(),
        conn.extended_query_handler(),
        conn.copy_handler(),
        conn.cancel_handler(),
        conn.error_handler(),
    );
    // A malformed message can panic the protocol decoder (a Parse without
    // its NUL terminators, a Bind declaring more bytes than it sends, a
    // binary parameter of the wrong length): the client gets PostgreSQL's
    // 08P01 and the connection closes, instead of a silent drop.
    use futures::FutureExt;
    use std::panic::AssertUnwindSafe;
    loop {
        let message = match socket.state() {
            AwaitingStartup | AuthenticationInProgress => tokio::select! {
                _ = &mut startup => Ok(None),
                m = AssertUnwindSafe(socket.next()).catch_unwind() => m,
            },
            _ => AssertUnwindSafe(socket.next()).catch_unwind().await,
        };
        let message = match message {
            Ok(m) => m,
            Err(_) => return protocol_violation(&mut socket).await,
        };
        let Some(Ok(message)) = message else {
            return Ok(());
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        // An error in the extended protocol (or in a COPY it started) skips
        // the client's messages up to its Sync.
        let until_sync = match socket.state() {
            CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let handled = AssertUnwindSafe(pgwire::tokio::server::process_message(
            message,
            &mut socket,
            authenticator.clone(),
            queries.clone(),
            extended.clone(),
            copies.clone(),
            cancels.clone(),
        ))
        .catch_unwind()
        .await;
        let Ok(handled) = handled else {
            return protocol_violation(&mut socket).await;
        };
        if let Err(mut e) = handled {
            errors.on_error(&socket, &mut e);
            pgwire::tokio::server::process_error(&mut socket, e, until_sync).await?;
        }
    }
}

/// Whether the first message declares a length too short for any startup
/// message (8 bytes: the length and a protocol code). PostgreSQL closes
/// such a connection at once ("invalid length of startup packet"); the
/// protocol decoder would wait for the 8 bytes until the startup timeout.
async fn short_startup_packet(socket: &tokio::net::TcpStream) -> std::io::Result<bool> {
    let mut length = [0u8; 4];
    loop {
        match socket.peek(&mut length).await? {
            0 => return Ok(false),
            4.. => return Ok(u32::from_be_bytes(length) < 8),
            // Part of the length: peek answers at once until more comes.
            _ => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

/// Tells the client its last message could not be read (08P01), for a
/// connection about to close.
async fn protocol_violation<S>(socket: &mut S) -> std::io::Result<()>
where
    S: futures::Sink<PgWireBackendMessage> + Unpin,
{
    use futures::SinkExt;
    let info = ErrorInfo::new(
        "FATAL".into(),
        SqlState::PROTOCOL_VIOLATION.code().into(),
        "invalid frontend message".into(),
    );
    let _ = socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int32Array};

    fn batch(rows: usize) -> RecordBatch {
        let values = Arc::new(Int32Array::from(vec![0; rows])) as ArrayRef;
        RecordBatch::try_from_iter(vec![("i", values)]).unwrap()
    }

    #[test]
    fn large_results_are_cut_into_runs_of_whole_batches_in_order() {
        let small: Vec<_> = (0..10).map(|_| batch(1000)).collect();
        assert_eq!(row_runs(&small).len(), 1);
        let cores = cores();
        for sizes in [
            vec![8192; 40],
            vec![1, 300_000],
            vec![300_000, 1],
            vec![100_000, 100_000, 5],
        ] {
            let batches: Vec<_> = sizes.iter().map(|&n| batch(n)).collect();
            let runs = row_runs(&batches);
            assert!(runs.len() <= cores, "{sizes:?}");
            assert!(runs.iter().all(|r| !r.is_empty()), "{sizes:?}");
            let flat: Vec<usize> = runs
                .iter()
                .flat_map(|r| r.iter().map(RecordBatch::num_rows))
                .collect();
            assert_eq!(flat, sizes);
        }
        if cores > 1 {
            let even: Vec<_> = (0..40).map(|_| batch(8192)).collect();
            assert_eq!(row_runs(&even).len(), cores.min(5));
        }
    }
}
