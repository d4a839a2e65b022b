//! COPY FROM STDIN: CopyData payloads in, Arrow batches out.
//!
//! Text and CSV rows are found with memchr; a row without escapes or quotes
//! is split on the delimiter and every field is read straight from the input
//! bytes into the column builders. Rows with backslashes, quotes or unusual
//! line endings go through a byte-by-byte scanner that follows PostgreSQL's
//! rules exactly. UTF-8 is validated once per payload, not per field.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use tempora_catalog::PgType;
use tempora_common::{SqlState, TemporaError};

use crate::options::{CopyFormat, CopyOptions, Header};
use crate::values::{invalid_utf8, verify_utf8, Col};
use crate::zone::PgTimeZone;

/// Default limit on one row's size (PostgreSQL's is 1 GB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 << 20;

/// The PGCOPY binary signature.
pub const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// PostgreSQL shows at most this many bytes of a line or value in CONTEXT.
const MAX_COPY_DATA_DISPLAY: usize = 100;

/// Text for a CONTEXT line: at most 100 bytes, cut at a character boundary,
/// followed by `...` when cut.
pub(crate) fn limit_printout(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    if s.len() <= MAX_COPY_DATA_DISPLAY {
        return s.into_owned();
    }
    let mut cut = MAX_COPY_DATA_DISPLAY;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Unknown,
    Nl,
    Cr,
    CrNl,
}

/// Where the scan of an incomplete row stopped, to resume it when more
/// data arrives.
#[derive(Debug, Clone, Copy, Default)]
struct ScanState {
    /// Bytes of the row already scanned.
    pos: usize,
    /// The fast scan (only looking for `\n`) is in progress.
    fast: bool,
    in_quote: bool,
    last_was_esc: bool,
    /// Newlines inside quoted CSV fields so far (PostgreSQL counts them as lines).
    extra_lines: u64,
}

enum Found {
    Row {
        /// End of the row's content (absolute).
        end: usize,
        /// Start of the next row (absolute).
        next: usize,
        extra_lines: u64,
        /// The end-of-data marker `\.` ended this row.
        marker: bool,
        /// Known to hold no backslash (text) or quote (CSV).
        plain: bool,
    },
    Incomplete(ScanState),
}

#[derive(Debug, Clone, Copy)]
struct FieldRef {
    start: usize,
    end: usize,
    null: bool,
}

/// The columns being filled and the finished batches.
struct Sink {
    table: String,
    names: Vec<String>,
    schema: SchemaRef,
    types: Vec<PgType>,
    cols: Vec<Col>,
    tz: PgTimeZone,
    csv: bool,
    null: Vec<u8>,
    force_not_null: Vec<bool>,
    force_null: Vec<bool>,
    batch_rows: usize,
    rows_in_batch: usize,
    ready: Vec<RecordBatch>,
    rows: u64,
    scratch: Vec<u8>,
    /// NOT NULL columns of the table in table order, see [`NotNull`].
    not_null: Vec<NotNull>,
    /// Whether each value of the row being read is NULL.
    row_null: Vec<bool>,
}

/// A NOT NULL column of the target table, checked for every row as
/// PostgreSQL does after the row's values are read (so the error carries the
/// row's line).
#[derive(Debug, Clone)]
pub struct NotNull {
    pub column: String,
    /// Its position in the data; None when the data does not hold it and it
    /// takes NULL (no DEFAULT), which fails every row.
    pub data_index: Option<usize>,
    /// A hypertable's time column: checked before the others, with
    /// TimescaleDB's message (it routes the row by its time first).
    pub partitioning: bool,
}

impl Sink {
    /// The first NOT NULL column the row just read leaves NULL, as
    /// PostgreSQL's error.
    fn not_null_violation(&self) -> Option<TemporaError> {
        let null = |c: &&NotNull| {
            c.data_index
                .is_none_or(|i| self.row_null.get(i).copied().unwrap_or(true))
        };
        if let Some(c) = self.not_null.iter().filter(|c| c.partitioning).find(null) {
            return Some(
                TemporaError::new(
                    SqlState::NOT_NULL_VIOLATION,
                    format!(
                        "NULL value in column \"{}\" violates not-null constraint",
                        c.column
                    ),
                )
                .with_hint("Columns used for time partitioning cannot be NULL."),
            );
        }
        let c = self.not_null.iter().find(null)?;
        Some(TemporaError::new(
            SqlState::NOT_NULL_VIOLATION,
            format!(
                "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                c.column, self.table
            ),
        ))
    }

    fn line_ctx(&self, line_no: u64, line: &[u8]) -> String {
        format!(
            "COPY {}, line {}: \"{}\"",
            self.table,
            line_no,
            limit_printout(line)
        )
    }

    /// Converts one row's fields (`src` holds their bytes) into the builders,
    /// with PostgreSQL's order of checks: extra data first, then each value
    /// in turn, then missing data.
    #[inline]
    fn convert_row(
        &mut self,
        fields: &[FieldRef],
        src: &[u8],
        line: &[u8],
        line_no: u64,
    ) -> Result<(), TemporaError> {
        let ncols = self.cols.len();
        if fields.len() > ncols {
            return Err(TemporaError::new(
                SqlState::BAD_COPY_FILE_FORMAT,
                "extra data after last expected column",
            )
            .with_context(self.line_ctx(line_no, line)));
        }
        for i in 0..ncols {
            let Some(f) = fields.get(i) else {
                return Err(TemporaError::new(
                    SqlState::BAD_COPY_FILE_FORMAT,
                    format!("missing data for column \"{}\"", self.names[i]),
                )
                .with_context(self.line_ctx(line_no, line)));
            };
            let mut value = &src[f.start..f.end];
            let mut null = f.null;
            if self.csv {
                if null && self.force_not_null[i] {
                    value = &self.null;
                    null = false;
                } else if !null && self.force_null[i] && value == self.null.as_slice() {
                    null = true;
                }
            }
            if !self.not_null.is_empty() {
                self.row_null[i] = null;
            }
            if null {
                self.cols[i].append_null();
            } else if let Err(e) = self.cols[i].append_text(value, &self.tz, &mut self.scratch) {
                return Err(e.with_context(format!(
                    "COPY {}, line {}, column {}: \"{}\"",
                    self.table,
                    line_no,
                    self.names[i],
                    limit_printout(value)
                )));
            }
        }
        if let Some(e) = self.not_null_violation() {
            return Err(e.with_context(self.line_ctx(line_no, line)));
        }
        self.end_row();
        Ok(())
    }

    /// Converts a block of rows (`fields` row after row, one per column,
    /// pointing into `src`) a column at a time: each column's values go
    /// through one loop of one type instead of a dispatch per value.
    fn convert_block(
        &mut self,
        fields: &[FieldRef],
        rows: &[BlockRow],
        src: &[u8],
    ) -> Result<(), TemporaError> {
        let ncols = self.cols.len();
        let column = |i: usize| fields[i..].iter().step_by(ncols);
        let nulls_ok = self
            .not_null
            .iter()
            .all(|c| c.data_index.is_some_and(|i| !column(i).any(|f| f.null)));
        if nulls_ok {
            let mut failed = false;
            for (i, col) in self.cols.iter_mut().enumerate() {
                let values = column(i).map(|f| (!f.null).then(|| &src[f.start..f.end]));
                if col
                    .append_texts(values, &self.tz, &mut self.scratch)
                    .is_err()
                {
                    failed = true;
                    break;
                }
            }
            if !failed {
                self.rows += rows.len() as u64;
                self.rows_in_batch += rows.len();
                if self.rows_in_batch >= self.batch_rows {
                    self.flush();
                }
                return Ok(());
            }
        }
        Err(self.first_error(fields, rows, src))
    }

    /// PostgreSQL's error for a block that failed: its rows converted one
    /// at a time, in order, into builders of their own (the COPY fails, so
    /// what the block appended before failing is dropped with it).
    #[cold]
    fn first_error(&mut self, fields: &[FieldRef], rows: &[BlockRow], src: &[u8]) -> TemporaError {
        let ncols = self.cols.len();
        let probe = self
            .types
            .iter()
            .map(|t| Col::new(t, rows.len(), 0))
            .collect();
        let cols = std::mem::replace(&mut self.cols, probe);
        let counts = (self.rows, self.rows_in_batch, self.batch_rows);
        self.batch_rows = usize::MAX;
        let found = rows.iter().enumerate().try_for_each(|(r, row)| {
            let line = &src[row.start..row.end];
            self.convert_row(&fields[r * ncols..(r + 1) * ncols], src, line, row.line_no)
        });
        self.cols = cols;
        (self.rows, self.rows_in_batch, self.batch_rows) = counts;
        match found {
            Err(e) => e,
            Ok(()) => TemporaError::internal("COPY rows failed in a block but not one at a time"),
        }
    }

    #[inline]
    fn end_row(&mut self) {
        self.rows += 1;
        self.rows_in_batch += 1;
        if self.rows_in_batch >= self.batch_rows {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.rows_in_batch == 0 {
            return;
        }
        // Arrow builders give their buffers away on finish; start the next
        // batch with room for as much as this one took.
        let cap = self.batch_rows.min(1 << 16);
        let arrays = self
            .cols
            .iter_mut()
            .zip(&self.types)
            .map(|(c, t)| {
                let bytes = c.data_len();
                let a = c.finish();
                *c = Col::new(t, cap, bytes + bytes / 8 + 64);
                a
            })
            .collect();
        let opts = RecordBatchOptions::new().with_row_count(Some(self.rows_in_batch));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &opts)
            .expect("builders match the schema");
        self.ready.push(batch);
        self.rows_in_batch = 0;
    }
}

/// Decodes COPY FROM STDIN data (text, CSV or binary) into Arrow batches.
pub struct CopyDecoder {
    sink: Sink,
    format: CopyFormat,
    delim: u8,
    quote: u8,
    escape: u8,
    header: Header,
    header_done: bool,
    /// Whether the memchr fast path may find rows (not with odd quote bytes).
    fast_ok: bool,
    max_line_bytes: usize,
    /// Unconsumed input: the start of a row (or binary tuple) not complete yet.
    buf: Vec<u8>,
    /// Bytes at the start of `buf` already checked as UTF-8.
    validated: usize,
    scan: Option<ScanState>,
    eol: Eol,
    /// Lines (text, CSV) or tuples (binary) read so far.
    lineno: u64,
    /// The end-of-data marker (or binary trailer) was seen.
    ended: bool,
    binary_header_done: bool,
    finished: bool,
    failed: Option<TemporaError>,
    fields: Vec<FieldRef>,
    field_buf: Vec<u8>,
    /// Whether plain rows may be converted a block at a time (see
    /// [`Sink::convert_block`]).
    block_ok: bool,
    /// Fields of the rows in the block, row after row, as offsets into the
    /// input being consumed.
    block_fields: Vec<FieldRef>,
    block_rows: Vec<BlockRow>,
}

/// A row of the block being gathered.
struct BlockRow {
    start: usize,
    end: usize,
    line_no: u64,
}

/// Rows converted a column at a time.
const BLOCK_ROWS: usize = 256;

impl CopyDecoder {
    /// `table` is the relation name used in error context lines; `columns`
    /// are the COPY's target columns in the order the data has them;
    /// `session_tz` is the session TimeZone, used for timestamptz values
    /// without an explicit offset; `batch_rows` is how many rows a finished
    /// batch holds.
    pub fn new(
        table: &str,
        columns: Vec<(String, PgType)>,
        options: CopyOptions,
        session_tz: &str,
        batch_rows: usize,
    ) -> Result<Self, TemporaError> {
        let tz = PgTimeZone::parse_setting(session_tz)?.0;
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        let flags = |list: &[String], what: &str| -> Result<Vec<bool>, TemporaError> {
            let mut f = vec![false; names.len()];
            let mut seen: Vec<&str> = Vec::new();
            for name in list {
                if seen.contains(&name.as_str()) {
                    return Err(TemporaError::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!("column \"{name}\" specified more than once"),
                    ));
                }
                seen.push(name);
                match names.iter().position(|n| n == name) {
                    Some(i) => f[i] = true,
                    None => {
                        return Err(TemporaError::new(
                            SqlState::INVALID_COLUMN_REFERENCE,
                            format!("{what} column \"{name}\" not referenced by COPY"),
                        ))
                    }
                }
            }
            Ok(f)
        };
        let force_not_null = flags(&options.force_not_null, "FORCE_NOT_NULL")?;
        let force_null = flags(&options.force_null, "FORCE_NULL")?;
        let block_ok = options.format != CopyFormat::Binary
            && !columns.is_empty()
            && !force_not_null.contains(&true)
            && !force_null.contains(&true);
        let batch_rows = batch_rows.max(1);
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, t)| Field::new(n, t.arrow_type(), true))
                .collect::<Vec<_>>(),
        ));
        let cap = batch_rows.min(1 << 16);
        let cols = columns
            .iter()
            .map(|(_, t)| Col::new(t, cap, cap * 8))
            .collect();
        let types = columns.iter().map(|(_, t)| t.clone()).collect();
        let csv = options.format == CopyFormat::Csv;
        let special = |b: u8| b == b'\n' || b == b'\r';
        Ok(Self {
            sink: Sink {
                table: table.to_string(),
                names,
                schema,
                types,
                cols,
                tz,
                csv,
                null: options.null.as_bytes().to_vec(),
                force_not_null,
                force_null,
                batch_rows,
                rows_in_batch: 0,
                ready: Vec::new(),
                rows: 0,
                scratch: Vec::new(),
                not_null: Vec::new(),
                row_null: Vec::new(),
            },
            format: options.format,
            delim: options.delimiter,
            quote: options.quote,
            escape: options.escape,
            header: options.header,
            header_done: options.header == Header::No,
            fast_ok: !(csv && (special(options.quote) || special(options.escape))),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            buf: Vec::new(),
            validated: 0,
            scan: None,
            eol: Eol::Unknown,
            lineno: 0,
            ended: false,
            binary_header_done: false,
            finished: false,
            failed: None,
            fields: Vec::new(),
            field_buf: Vec::new(),
            block_ok,
            block_fields: Vec::new(),
            block_rows: Vec::new(),
        })
    }

    /// The table's NOT NULL columns in table order: each row is checked
    /// after its values are read, and the first one left NULL fails the COPY
    /// with 23502 and the row's line as CONTEXT.
    pub fn set_not_null(&mut self, columns: Vec<NotNull>) {
        self.sink.row_null = vec![false; self.sink.cols.len()];
        // A column the data does not hold fails every row: one at a time.
        self.block_ok &= columns.iter().all(|c| c.data_index.is_some());
        self.sink.not_null = columns;
    }

    /// Sets the largest row (or binary field) accepted, in bytes.
    pub fn set_max_line_bytes(&mut self, bytes: usize) {
        self.max_line_bytes = bytes;
    }

    /// The schema of the batches: the target columns, each nullable.
    pub fn schema(&self) -> SchemaRef {
        self.sink.schema.clone()
    }

    /// Feeds one CopyData payload (any byte boundaries: a row may span payloads).
    pub fn push(&mut self, data: &[u8]) -> Result<(), TemporaError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.finished {
            return Err(TemporaError::new(
                SqlState::PROTOCOL_VIOLATION,
                "COPY data received after the end of the COPY",
            ));
        }
        let r = self.push_inner(data);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn push_inner(&mut self, data: &[u8]) -> Result<(), TemporaError> {
        if self.ended && self.format != CopyFormat::Binary {
            // Everything after the end-of-data marker is ignored.
            return Ok(());
        }
        let carried = self.buf.len();
        let mut data = data;
        if !self.buf.is_empty() && self.format != CopyFormat::Binary {
            // Complete the carried row first, copying only up to its likely
            // end (the next newline), then read the rest in place.
            let cut = memchr::memchr(b'\n', data).map_or(data.len(), |i| i + 1);
            self.buf.extend_from_slice(&data[..cut]);
            data = &data[cut..];
            self.consume_buf()?;
            if !self.buf.is_empty() || self.ended {
                self.buf.extend_from_slice(data);
                data = &[];
                if !self.ended {
                    self.consume_buf()?;
                }
            }
        }
        if self.buf.is_empty() {
            if !data.is_empty() {
                let n = self.consume(data, false, true)?;
                self.buf.extend_from_slice(&data[n..]);
                self.validated = self.validated.saturating_sub(n);
            }
        } else if !data.is_empty() {
            self.buf.extend_from_slice(data);
            self.consume_buf()?;
        }
        if self.ended && self.format != CopyFormat::Binary {
            self.buf.clear();
        }
        if self.format != CopyFormat::Binary && !self.ended && self.buf.len() > self.max_line_bytes
        {
            let before = carried.min(self.buf.len());
            return Err(self.too_long(before, self.buf.len() - before));
        }
        Ok(())
    }

    /// Consumes complete rows from `buf`, keeping the rest.
    fn consume_buf(&mut self) -> Result<(), TemporaError> {
        let buf = std::mem::take(&mut self.buf);
        let res = self.consume(&buf, false, false);
        self.buf = buf;
        let n = res?;
        self.buf.drain(..n);
        self.validated = self.validated.saturating_sub(n);
        Ok(())
    }

    fn too_long(&self, have: usize, more: usize) -> TemporaError {
        TemporaError::new(SqlState::PROGRAM_LIMIT_EXCEEDED, "out of memory")
            .with_detail(format!(
                "Cannot enlarge string buffer containing {have} bytes by {more} more bytes."
            ))
            .with_context(format!(
                "COPY {}, line {}",
                self.sink.table,
                self.lineno + 1
            ))
    }

    /// Full batches ready so far.
    pub fn take_batches(&mut self) -> Vec<RecordBatch> {
        std::mem::take(&mut self.sink.ready)
    }

    /// End of data (CopyDone): reads a final line without newline, and
    /// returns the remaining batches.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>, TemporaError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if !self.finished {
            self.finished = true;
            let r = self.finish_inner();
            if let Err(e) = r {
                self.failed = Some(e.clone());
                return Err(e);
            }
        }
        Ok(self.take_batches())
    }

    fn finish_inner(&mut self) -> Result<(), TemporaError> {
        if !(self.ended && self.format != CopyFormat::Binary) {
            let buf = std::mem::take(&mut self.buf);
            self.consume(&buf, true, false)?;
        }
        if !self.header_done && !self.ended && self.header == Header::Match {
            // No data at all: PostgreSQL still checks an (empty) header line.
            self.lineno += 1;
            self.handle_line(b"", false)?;
        }
        self.sink.flush();
        Ok(())
    }

    /// Rows decoded so far.
    pub fn rows(&self) -> u64 {
        self.sink.rows
    }

    /// Lines (tuples in binary) read so far, header included.
    pub fn lines(&self) -> u64 {
        self.lineno
    }

    /// Consumes complete rows of `input`; returns how many bytes were used.
    fn consume(&mut self, input: &[u8], eof: bool, fresh: bool) -> Result<usize, TemporaError> {
        if fresh {
            self.validated = 0;
        }
        match self.format {
            CopyFormat::Binary => self.consume_binary(input, eof),
            _ => self.consume_text(input, eof),
        }
    }

    fn ctx_line(&self, line_no: u64) -> String {
        format!("COPY {}, line {}", self.sink.table, line_no)
    }

    // ---- text and CSV ----

    /// Returns the first position of invalid UTF-8 (or NUL) not yet checked,
    /// and how far the input is known good.
    fn validate(&self, input: &[u8], eof: bool) -> (Option<usize>, usize) {
        let from = self.validated.min(input.len());
        let region = &input[from..];
        match simdutf8::compat::from_utf8(region) {
            Ok(_) => (memchr::memchr(0, region).map(|p| from + p), input.len()),
            Err(e) => {
                let upto = from + e.valid_up_to();
                if let Some(p) = memchr::memchr(0, &input[from..upto]) {
                    return (Some(from + p), from + p);
                }
                if e.error_len().is_none() && !eof {
                    (None, upto)
                } else {
                    (Some(upto), upto)
                }
            }
        }
    }

    fn consume_text(&mut self, input: &[u8], eof: bool) -> Result<usize, TemporaError> {
        let (poison, valid_to) = self.validate(input, eof);
        let scanned = self.scan_rows(input, eof, poison);
        // The rows gathered before whatever ended the scan come first, and
        // so do their errors.
        self.convert_block(input)?;
        let pos = scanned?;
        self.validated = valid_to;
        Ok(pos)
    }

    /// Reads the complete rows of `input`; returns how far it got.
    fn scan_rows(
        &mut self,
        input: &[u8],
        eof: bool,
        poison: Option<usize>,
    ) -> Result<usize, TemporaError> {
        let mut pos = 0;
        let result: Result<(), TemporaError> = loop {
            if self.ended || pos >= input.len() {
                break Ok(());
            }
            let line_no = self.lineno + 1;
            let found = self.find_row(input, pos, eof, poison, line_no)?;
            match found {
                Found::Incomplete(st) => {
                    if let Some(p) = poison {
                        if p >= pos {
                            return Err(invalid_utf8(&input[p..])
                                .with_context(self.ctx_line(line_no + st.extra_lines)));
                        }
                    }
                    self.scan = Some(st);
                    break Ok(());
                }
                Found::Row {
                    end,
                    next,
                    extra_lines,
                    marker,
                    plain,
                } => {
                    self.scan = None;
                    self.lineno = line_no + extra_lines;
                    if let Some(p) = poison {
                        if p < next.max(end) {
                            return Err(
                                invalid_utf8(&input[p..]).with_context(self.ctx_line(self.lineno))
                            );
                        }
                    }
                    if end - pos > self.max_line_bytes {
                        return Err(self.too_long(0, end - pos));
                    }
                    if !marker && self.gather(input, pos, end, plain)? {
                        pos = next;
                        continue;
                    }
                    self.convert_block(input)?;
                    let line = &input[pos..end];
                    if marker {
                        self.ended = true;
                        if !line.is_empty() {
                            self.handle_line(line, false)?;
                        }
                        pos = input.len();
                        break Ok(());
                    }
                    self.handle_line(line, plain)?;
                    pos = next;
                }
            }
        };
        result.map(|()| pos)
    }

    /// Adds the row `input[start..end]` to the block when it can be
    /// converted with it: a data row without quotes or escapes that has one
    /// field per column.
    fn gather(
        &mut self,
        input: &[u8],
        start: usize,
        end: usize,
        plain: bool,
    ) -> Result<bool, TemporaError> {
        if !self.block_ok || !self.header_done {
            return Ok(false);
        }
        let line = &input[start..end];
        if !self.plain_row(line, plain) {
            return Ok(false);
        }
        let before = self.block_fields.len();
        split_plain(
            line,
            start,
            self.delim,
            &self.sink.null,
            &mut self.block_fields,
        );
        if self.block_fields.len() - before != self.sink.cols.len() {
            self.block_fields.truncate(before);
            return Ok(false);
        }
        self.block_rows.push(BlockRow {
            start,
            end,
            line_no: self.lineno,
        });
        let room = self.sink.batch_rows - self.sink.rows_in_batch;
        if self.block_rows.len() >= BLOCK_ROWS.min(room) {
            self.convert_block(input)?;
        }
        Ok(true)
    }

    /// Whether `line` holds no quote (CSV) or backslash (text), so that its
    /// fields are the pieces between delimiters; `known` is what the row
    /// scan already found.
    fn plain_row(&self, line: &[u8], known: bool) -> bool {
        let special = if self.format == CopyFormat::Csv {
            self.quote
        } else {
            b'\\'
        };
        known || memchr::memchr(special, line).is_none()
    }

    /// Converts the gathered block (whose fields point into `input`).
    fn convert_block(&mut self, input: &[u8]) -> Result<(), TemporaError> {
        if self.block_rows.is_empty() {
            return Ok(());
        }
        let r = self
            .sink
            .convert_block(&self.block_fields, &self.block_rows, input);
        self.block_fields.clear();
        self.block_rows.clear();
        r
    }

    /// Finds the row starting at `pos`.
    #[inline]
    fn find_row(
        &mut self,
        input: &[u8],
        pos: usize,
        eof: bool,
        poison: Option<usize>,
        line_no: u64,
    ) -> Result<Found, TemporaError> {
        let st = self.scan.take().unwrap_or(ScanState {
            fast: true,
            ..Default::default()
        });
        if st.fast && self.fast_ok && matches!(self.eol, Eol::Unknown | Eol::Nl | Eol::CrNl) {
            let from = pos + st.pos;
            match memchr::memchr(b'\n', &input[from..]) {
                Some(i) => {
                    let nl = from + i;
                    let line = &input[pos..nl];
                    let csv = self.format == CopyFormat::Csv;
                    let (special1, special2) = if csv {
                        (self.quote, b'\r')
                    } else {
                        (b'\\', b'\r')
                    };
                    let starts_bs = csv && line.first() == Some(&b'\\');
                    if !starts_bs {
                        let body_end = if self.eol != Eol::Nl && line.last() == Some(&b'\r') {
                            line.len() - 1
                        } else {
                            line.len()
                        };
                        if memchr::memchr2(special1, special2, &line[..body_end]).is_none() {
                            let crnl = body_end < line.len();
                            if crnl {
                                self.eol = Eol::CrNl;
                                return Ok(Found::Row {
                                    end: nl - 1,
                                    next: nl + 1,
                                    extra_lines: 0,
                                    marker: false,
                                    plain: true,
                                });
                            }
                            if self.eol != Eol::CrNl {
                                self.eol = Eol::Nl;
                                return Ok(Found::Row {
                                    end: nl,
                                    next: nl + 1,
                                    extra_lines: 0,
                                    marker: false,
                                    plain: true,
                                });
                            }
                        }
                    }
                }
                None => {
                    if !eof && memchr::memchr(b'\r', &input[from..]).is_none() {
                        return Ok(Found::Incomplete(ScanState {
                            pos: input.len() - pos,
                            fast: true,
                            ..Default::default()
                        }));
                    }
                }
            }
            // Fall back to the exact scanner from the row's start.
            return self.scan_slow(input, pos, ScanState::default(), eof, poison, line_no);
        }
        let st = if st.fast { ScanState::default() } else { st };
        self.scan_slow(input, pos, st, eof, poison, line_no)
    }

    fn cr_error(&self, line_no: u64) -> TemporaError {
        let csv = self.format == CopyFormat::Csv;
        TemporaError::new(
            SqlState::BAD_COPY_FILE_FORMAT,
            if csv {
                "unquoted carriage return found in data"
            } else {
                "literal carriage return found in data"
            },
        )
        .with_hint(if csv {
            "Use quoted CSV field to represent carriage return."
        } else {
            "Use \"\\r\" to represent carriage return."
        })
        .with_context(self.ctx_line(line_no))
    }

    fn nl_error(&self, line_no: u64) -> TemporaError {
        let csv = self.format == CopyFormat::Csv;
        TemporaError::new(
            SqlState::BAD_COPY_FILE_FORMAT,
            if csv {
                "unquoted newline found in data"
            } else {
                "literal newline found in data"
            },
        )
        .with_hint(if csv {
            "Use quoted CSV field to represent newline."
        } else {
            "Use \"\\n\" to represent newline."
        })
        .with_context(self.ctx_line(line_no))
    }

    fn marker_error(&self, msg: &str, line_no: u64) -> TemporaError {
        TemporaError::new(SqlState::BAD_COPY_FILE_FORMAT, msg).with_context(self.ctx_line(line_no))
    }

    /// PostgreSQL's line reader, byte by byte: newline style detection,
    /// backslash escapes (text), quotes (CSV) and the `\.` marker.
    fn scan_slow(
        &mut self,
        input: &[u8],
        row_start: usize,
        mut st: ScanState,
        eof: bool,
        poison: Option<usize>,
        line_no: u64,
    ) -> Result<Found, TemporaError> {
        let csv = self.format == CopyFormat::Csv;
        let quote = self.quote;
        // When the escape is the quote itself, the quote alone toggles.
        let esc = if self.escape == self.quote {
            None
        } else {
            Some(self.escape)
        };
        let n = input.len();
        let lim = poison.unwrap_or(usize::MAX);
        st.fast = false;
        let mut i = row_start + st.pos;
        let row = |end: usize, next: usize, st: &ScanState, marker: bool| Found::Row {
            end,
            next,
            extra_lines: st.extra_lines,
            marker,
            plain: false,
        };
        loop {
            let save = ScanState {
                pos: i - row_start,
                ..st
            };
            if i >= lim && i < n {
                return Err(
                    invalid_utf8(&input[i..]).with_context(self.ctx_line(line_no + st.extra_lines))
                );
            }
            if i >= n {
                if eof {
                    return Ok(row(n, n, &st, false));
                }
                return Ok(Found::Incomplete(save));
            }
            let c = input[i];
            i += 1;
            if csv {
                if st.in_quote && Some(c) == esc {
                    st.last_was_esc = !st.last_was_esc;
                }
                if c == quote && !st.last_was_esc {
                    st.in_quote = !st.in_quote;
                }
                if Some(c) != esc {
                    st.last_was_esc = false;
                }
                let counted = if self.eol == Eol::Nl { b'\n' } else { b'\r' };
                if st.in_quote && c == counted {
                    st.extra_lines += 1;
                }
            }
            if c == b'\r' && (!csv || !st.in_quote) {
                match self.eol {
                    Eol::Unknown | Eol::CrNl => {
                        let next = if i < n {
                            input[i]
                        } else if eof {
                            0
                        } else {
                            return Ok(Found::Incomplete(save));
                        };
                        if next == b'\n' {
                            self.eol = Eol::CrNl;
                            return Ok(row(i - 1, i + 1, &st, false));
                        }
                        if self.eol == Eol::CrNl {
                            return Err(self.cr_error(line_no + st.extra_lines));
                        }
                        self.eol = Eol::Cr;
                        return Ok(row(i - 1, i, &st, false));
                    }
                    Eol::Nl => return Err(self.cr_error(line_no + st.extra_lines)),
                    Eol::Cr => return Ok(row(i - 1, i, &st, false)),
                }
            }
            if c == b'\n' && (!csv || !st.in_quote) {
                if matches!(self.eol, Eol::Cr | Eol::CrNl) {
                    return Err(self.nl_error(line_no + st.extra_lines));
                }
                self.eol = Eol::Nl;
                return Ok(row(i - 1, i, &st, false));
            }
            if c == b'\\' && (!csv || i - 1 == row_start) {
                let c2 = if i < n {
                    input[i]
                } else if eof {
                    0
                } else {
                    return Ok(Found::Incomplete(save));
                };
                if c2 == b'.' {
                    let ln = line_no + st.extra_lines;
                    let mut j = i + 1;
                    // The byte at j, or 0 past the end of data.
                    macro_rules! get {
                        () => {{
                            if j < n {
                                let b = input[j];
                                j += 1;
                                b
                            } else if eof {
                                j += 1;
                                0
                            } else {
                                return Ok(Found::Incomplete(save));
                            }
                        }};
                    }
                    let mut not_end = false;
                    if self.eol == Eol::CrNl {
                        let c3 = get!();
                        if c3 == b'\n' {
                            if !csv {
                                return Err(self.marker_error(
                                    "end-of-copy marker does not match previous newline style",
                                    ln,
                                ));
                            }
                            not_end = true;
                        } else if c3 != b'\r' {
                            if !csv {
                                return Err(self.marker_error("end-of-copy marker corrupt", ln));
                            }
                            not_end = true;
                        }
                    }
                    if !not_end {
                        let c4 = get!();
                        let _ = j;
                        if c4 != b'\r' && c4 != b'\n' {
                            if !csv {
                                return Err(self.marker_error("end-of-copy marker corrupt", ln));
                            }
                            not_end = true;
                        } else {
                            let mismatch = match self.eol {
                                Eol::Nl | Eol::CrNl => c4 != b'\n',
                                Eol::Cr => c4 != b'\r',
                                Eol::Unknown => false,
                            };
                            if mismatch {
                                return Err(self.marker_error(
                                    "end-of-copy marker does not match previous newline style",
                                    ln,
                                ));
                            }
                            return Ok(row(i - 1, n, &st, true));
                        }
                    }
                    let _ = not_end;
                } else if !csv {
                    // Anything after a backslash is data, even a newline.
                    i = (i + 1).min(n);
                }
            }
        }
    }

    /// One complete line: the header, or a row.
    fn handle_line(&mut self, line: &[u8], plain: bool) -> Result<(), TemporaError> {
        let line_no = self.lineno;
        if !self.header_done {
            self.header_done = true;
            if self.header == Header::Match {
                return self.check_header(line, line_no);
            }
            return Ok(());
        }
        if self.sink.cols.is_empty() {
            if !line.is_empty() {
                return Err(TemporaError::new(
                    SqlState::BAD_COPY_FILE_FORMAT,
                    "extra data after last expected column",
                )
                .with_context(self.sink.line_ctx(line_no, line)));
            }
            if let Some(e) = self.sink.not_null_violation() {
                return Err(e.with_context(self.sink.line_ctx(line_no, line)));
            }
            self.sink.end_row();
            return Ok(());
        }
        if self.plain_row(line, plain) {
            // Plain row: fields are the pieces between delimiters.
            self.fields.clear();
            split_plain(line, 0, self.delim, &self.sink.null, &mut self.fields);
            return self.sink.convert_row(&self.fields, line, line, line_no);
        }
        self.split_fields(line, line_no)?;
        let buf = std::mem::take(&mut self.field_buf);
        let r = self.sink.convert_row(&self.fields, &buf, line, line_no);
        self.field_buf = buf;
        r
    }

    /// Splits a line with escapes (text) or quotes (CSV) into `field_buf`.
    fn split_fields(&mut self, line: &[u8], line_no: u64) -> Result<(), TemporaError> {
        let r = if self.format == CopyFormat::Csv {
            split_csv(
                line,
                self.delim,
                self.quote,
                self.escape,
                &self.sink.null,
                &mut self.field_buf,
                &mut self.fields,
            )
        } else {
            split_text(
                line,
                self.delim,
                &self.sink.null,
                &mut self.field_buf,
                &mut self.fields,
            )
        };
        r.map_err(|e| e.with_context(self.sink.line_ctx(line_no, line)))
    }

    fn check_header(&mut self, line: &[u8], line_no: u64) -> Result<(), TemporaError> {
        self.split_fields(line, line_no)?;
        let ctx = self.sink.line_ctx(line_no, line);
        let ncols = self.sink.names.len();
        if self.fields.len() != ncols {
            return Err(TemporaError::new(
                SqlState::BAD_COPY_FILE_FORMAT,
                format!(
                    "wrong number of fields in header line: got {}, expected {}",
                    self.fields.len(),
                    ncols
                ),
            )
            .with_context(ctx));
        }
        for (i, f) in self.fields.iter().enumerate() {
            let expected = &self.sink.names[i];
            if f.null {
                return Err(TemporaError::new(
                    SqlState::BAD_COPY_FILE_FORMAT,
                    format!(
                        "column name mismatch in header line field {}: got null value (\"{}\"), expected \"{}\"",
                        i + 1,
                        String::from_utf8_lossy(&self.sink.null),
                        expected
                    ),
                )
                .with_context(ctx));
            }
            let got = &self.field_buf[f.start..f.end];
            if got != expected.as_bytes() {
                return Err(TemporaError::new(
                    SqlState::BAD_COPY_FILE_FORMAT,
                    format!(
                        "column name mismatch in header line field {}: got \"{}\", expected \"{}\"",
                        i + 1,
                        String::from_utf8_lossy(got),
                        expected
                    ),
                )
                .with_context(ctx));
            }
        }
        Ok(())
    }

    // ---- binary ----

    fn consume_binary(&mut self, input: &[u8], eof: bool) -> Result<usize, TemporaError> {
        let mut pos = 0;
        if !self.binary_header_done {
            match binary_header(input, eof)? {
                None => return Ok(0),
                Some(len) => {
                    pos = len;
                    self.binary_header_done = true;
                }
            }
        }
        let ncols = self.sink.cols.len();
        loop {
            if self.ended {
                if pos < input.len() {
                    return Err(TemporaError::new(
                        SqlState::BAD_COPY_FILE_FORMAT,
                        "received copy data after EOF marker",
                    )
                    .with_context(self.ctx_line(self.lineno)));
                }
                return Ok(pos);
            }
            let rem = &input[pos..];
            if rem.len() < 2 {
                // End of data without the trailer is accepted, as in PostgreSQL.
                return Ok(if eof { input.len() } else { pos });
            }
            let line_no = self.lineno + 1;
            let count = i16::from_be_bytes([rem[0], rem[1]]);
            if count == -1 {
                self.lineno = line_no;
                self.ended = true;
                pos += 2;
                continue;
            }
            if count as i64 != ncols as i64 {
                return Err(TemporaError::new(
                    SqlState::BAD_COPY_FILE_FORMAT,
                    format!("row field count is {count}, expected {ncols}"),
                )
                .with_context(self.ctx_line(line_no)));
            }
            let mut off = 2;
            self.fields.clear();
            let mut fail: Option<TemporaError> = None;
            for _ in 0..ncols {
                if rem.len() < off + 4 {
                    if !eof {
                        return Ok(pos);
                    }
                    fail = Some(TemporaError::new(
                        SqlState::BAD_COPY_FILE_FORMAT,
                        "unexpected EOF in COPY data",
                    ));
                    break;
                }
                let len = i32::from_be_bytes([rem[off], rem[off + 1], rem[off + 2], rem[off + 3]]);
                off += 4;
                if len == -1 {
                    self.fields.push(FieldRef {
                        start: 0,
                        end: 0,
                        null: true,
                    });
                    continue;
                }
                if len < 0 {
                    fail = Some(TemporaError::new(
                        SqlState::BAD_COPY_FILE_FORMAT,
                        "invalid field size",
                    ));
                    break;
                }
                let len = len as usize;
                if len > self.max_line_bytes {
                    fail = Some(
                        TemporaError::new(SqlState::PROGRAM_LIMIT_EXCEEDED, "out of memory")
                            .with_detail(format!(
                            "Cannot enlarge string buffer containing 0 bytes by {len} more bytes."
                        )),
                    );
                    break;
                }
                if rem.len() < off + len {
                    if !eof {
                        return Ok(pos);
                    }
                    fail = Some(TemporaError::new(
                        SqlState::BAD_COPY_FILE_FORMAT,
                        "unexpected EOF in COPY data",
                    ));
                    break;
                }
                self.fields.push(FieldRef {
                    start: pos + off,
                    end: pos + off + len,
                    null: false,
                });
                off += len;
            }
            self.lineno = line_no;
            for (i, f) in self.fields.iter().enumerate() {
                if let Some(n) = self.sink.row_null.get_mut(i) {
                    *n = f.null;
                }
                if f.null {
                    self.sink.cols[i].append_null();
                } else if let Err(e) =
                    self.sink.cols[i].append_binary(&input[f.start..f.end], &mut self.sink.scratch)
                {
                    return Err(e.with_context(format!(
                        "COPY {}, line {}, column {}",
                        self.sink.table, line_no, self.sink.names[i]
                    )));
                }
            }
            if let Some(e) = fail {
                let col = &self.sink.names[self.fields.len()];
                return Err(e.with_context(format!(
                    "COPY {}, line {}, column {}",
                    self.sink.table, line_no, col
                )));
            }
            if let Some(e) = self.sink.not_null_violation() {
                return Err(e.with_context(format!("COPY {}, line {}", self.sink.table, line_no)));
            }
            self.sink.end_row();
            pos += off;
        }
    }
}

/// Reads the binary header; None when more data is needed.
fn binary_header(input: &[u8], eof: bool) -> Result<Option<usize>, TemporaError> {
    let bad = |m: &str| TemporaError::new(SqlState::BAD_COPY_FILE_FORMAT, m);
    let sig_len = input.len().min(11);
    if input[..sig_len] != BINARY_SIGNATURE[..sig_len] || (input.len() < 11 && eof) {
        return Err(bad("COPY file signature not recognized"));
    }
    if input.len() < 11 {
        return Ok(None);
    }
    if input.len() < 15 {
        return if eof {
            Err(bad("invalid COPY file header (missing flags)"))
        } else {
            Ok(None)
        };
    }
    let mut flags = i32::from_be_bytes([input[11], input[12], input[13], input[14]]);
    if flags & (1 << 16) != 0 {
        return Err(bad("invalid COPY file header (WITH OIDS)"));
    }
    flags &= !(1 << 16);
    if (flags >> 16) != 0 {
        return Err(bad("unrecognized critical flags in COPY file header"));
    }
    if input.len() < 19 {
        return if eof {
            Err(bad("invalid COPY file header (missing length)"))
        } else {
            Ok(None)
        };
    }
    let ext = i32::from_be_bytes([input[15], input[16], input[17], input[18]]);
    if ext < 0 {
        return Err(bad("invalid COPY file header (missing length)"));
    }
    let total = 19 + ext as usize;
    if input.len() < total {
        return if eof {
            Err(bad("invalid COPY file header (wrong length)"))
        } else {
            Ok(None)
        };
    }
    Ok(Some(total))
}

/// Splits a row without escapes or quotes on the delimiter, 16 bytes at a
/// time with SSE2 where available.
#[inline]
/// Appends the fields of `line` (offsets from `base`, where the line starts
/// in the bytes the fields will be read from).
fn split_plain(line: &[u8], base: usize, delim: u8, null: &[u8], fields: &mut Vec<FieldRef>) {
    let mut start = 0;
    let mut push = |d: usize, fields: &mut Vec<FieldRef>| {
        fields.push(FieldRef {
            start: base + start,
            end: base + d,
            null: &line[start..d] == null,
        });
        start = d + 1;
    };
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of the x86_64 baseline; loads stay within `line`.
        unsafe {
            let dv = _mm_set1_epi8(delim as i8);
            while i + 16 <= line.len() {
                let v = _mm_loadu_si128(line.as_ptr().add(i) as *const __m128i);
                let mut m = _mm_movemask_epi8(_mm_cmpeq_epi8(v, dv)) as u32;
                while m != 0 {
                    push(i + m.trailing_zeros() as usize, fields);
                    m &= m - 1;
                }
                i += 16;
            }
        }
    }
    while i < line.len() {
        if line[i] == delim {
            push(i, fields);
        }
        i += 1;
    }
    fields.push(FieldRef {
        start: base + start,
        end: base + line.len(),
        null: &line[start..] == null,
    });
}

#[inline]
fn is_octal(b: u8) -> bool {
    (b'0'..=b'7').contains(&b)
}

fn hex_digit(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => (b - b'0') as u32,
        b'a'..=b'f' => (b - b'a' + 10) as u32,
        _ => (b - b'A' + 10) as u32,
    }
}

/// PostgreSQL's text-format field splitter: backslash escapes, NULL
/// matched on the raw field.
fn split_text(
    line: &[u8],
    delim: u8,
    null: &[u8],
    out: &mut Vec<u8>,
    fields: &mut Vec<FieldRef>,
) -> Result<(), TemporaError> {
    out.clear();
    fields.clear();
    let n = line.len();
    let mut i = 0;
    loop {
        let raw_start = i;
        let out_start = out.len();
        let mut found_delim = false;
        let mut saw_non_ascii = false;
        let mut raw_end;
        loop {
            raw_end = i;
            if i >= n {
                break;
            }
            let mut c = line[i];
            i += 1;
            if c == delim {
                found_delim = true;
                break;
            }
            if c == b'\\' {
                if i >= n {
                    break;
                }
                c = line[i];
                i += 1;
                match c {
                    b'0'..=b'7' => {
                        let mut val = (c - b'0') as u32;
                        if i < n && is_octal(line[i]) {
                            val = (val << 3) + (line[i] - b'0') as u32;
                            i += 1;
                            if i < n && is_octal(line[i]) {
                                val = (val << 3) + (line[i] - b'0') as u32;
                                i += 1;
                            }
                        }
                        c = (val & 0o377) as u8;
                        if c == 0 || c >= 0x80 {
                            saw_non_ascii = true;
                        }
                    }
                    b'x' if i < n && line[i].is_ascii_hexdigit() => {
                        let mut val = hex_digit(line[i]);
                        i += 1;
                        if i < n && line[i].is_ascii_hexdigit() {
                            val = (val << 4) + hex_digit(line[i]);
                            i += 1;
                        }
                        c = (val & 0xff) as u8;
                        if c == 0 || c >= 0x80 {
                            saw_non_ascii = true;
                        }
                    }
                    b'b' => c = 0x08,
                    b'f' => c = 0x0c,
                    b'n' => c = b'\n',
                    b'r' => c = b'\r',
                    b't' => c = b'\t',
                    b'v' => c = 0x0b,
                    _ => {}
                }
            }
            out.push(c);
        }
        let is_null = &line[raw_start..raw_end] == null;
        if !is_null && saw_non_ascii {
            verify_utf8(&out[out_start..])?;
        }
        fields.push(FieldRef {
            start: out_start,
            end: out.len(),
            null: is_null,
        });
        if !found_delim {
            return Ok(());
        }
    }
}

/// PostgreSQL's CSV field splitter: quotes, escapes inside quotes, NULL only
/// for an unquoted field equal to the NULL string.
fn split_csv(
    line: &[u8],
    delim: u8,
    quote: u8,
    esc: u8,
    null: &[u8],
    out: &mut Vec<u8>,
    fields: &mut Vec<FieldRef>,
) -> Result<(), TemporaError> {
    out.clear();
    fields.clear();
    let n = line.len();
    let mut i = 0;
    loop {
        let raw_start = i;
        let out_start = out.len();
        let mut found_delim = false;
        let mut saw_quote = false;
        let mut raw_end;
        'field: loop {
            loop {
                raw_end = i;
                if i >= n {
                    break 'field;
                }
                let c = line[i];
                i += 1;
                if c == delim {
                    found_delim = true;
                    break 'field;
                }
                if c == quote {
                    saw_quote = true;
                    break;
                }
                out.push(c);
            }
            loop {
                if i >= n {
                    return Err(TemporaError::new(
                        SqlState::BAD_COPY_FILE_FORMAT,
                        "unterminated CSV quoted field",
                    ));
                }
                let c = line[i];
                i += 1;
                if c == esc && i < n && (line[i] == esc || line[i] == quote) {
                    out.push(line[i]);
                    i += 1;
                    continue;
                }
                if c == quote {
                    break;
                }
                out.push(c);
            }
        }
        let is_null = !saw_quote && &line[raw_start..raw_end] == null;
        fields.push(FieldRef {
            start: out_start,
            end: out.len(),
            null: is_null,
        });
        if !found_delim {
            return Ok(());
        }
    }
}
