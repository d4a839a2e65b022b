//! COPY TO STDOUT: Arrow batches to PostgreSQL's text, CSV or binary rows.

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, Date32Array,
    Decimal128Array, DurationMicrosecondArray, FixedSizeBinaryArray, Float16Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, IntervalDayTimeArray,
    IntervalMonthDayNanoArray, IntervalYearMonthArray, LargeBinaryArray, LargeStringArray,
    StringArray, StringViewArray, Time64MicrosecondArray, TimestampMicrosecondArray, UInt16Array,
    UInt32Array, UInt64Array, UInt8Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DurationMicrosecondType, Float16Type, Float32Type,
    Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, IntervalDayTimeType,
    IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType, Time64MicrosecondType, TimeUnit,
    TimestampMicrosecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tempora_common::{SqlState, TemporaError};

use crate::datetime::{PG_EPOCH_DAYS, PG_EPOCH_USECS};
use crate::decode::BINARY_SIGNATURE;
use crate::numeric::{encode_binary, format_decimal};
use crate::options::{CopyFormat, CopyOptions, ForceQuote, Header};
use crate::text::{
    write_array_element, write_bytea, write_date, write_float4, write_float8, write_interval,
    write_time, write_timestamp,
};
use crate::zone::PgTimeZone;

/// Encodes result batches for COPY TO STDOUT.
pub struct CopyEncoder {
    names: Vec<String>,
    opts: CopyOptions,
    tz: PgTimeZone,
    force_quote: Vec<bool>,
    text: String,
}

fn arrow_err(e: datafusion::arrow::error::ArrowError) -> TemporaError {
    TemporaError::internal(format!("COPY TO: {e}"))
}

impl CopyEncoder {
    /// A session time zone that cannot be resolved prints timestamptz in UTC;
    /// FORCE_QUOTE names that are not among the columns are ignored (see
    /// [`CopyEncoder::try_new`] for the checked form).
    pub fn new(column_names: Vec<String>, options: CopyOptions, session_tz: &str) -> Self {
        let tz = PgTimeZone::of_setting(session_tz);
        let force_quote = match &options.force_quote {
            ForceQuote::None => vec![false; column_names.len()],
            ForceQuote::All => vec![true; column_names.len()],
            ForceQuote::Columns(cols) => column_names.iter().map(|n| cols.contains(n)).collect(),
        };
        Self {
            names: column_names,
            opts: options,
            tz,
            force_quote,
            text: String::new(),
        }
    }

    /// As [`CopyEncoder::new`], refusing an unknown time zone and FORCE_QUOTE
    /// columns that are not among the COPY's columns, as PostgreSQL does.
    pub fn try_new(
        column_names: Vec<String>,
        options: CopyOptions,
        session_tz: &str,
    ) -> Result<Self, TemporaError> {
        PgTimeZone::parse_setting(session_tz)?;
        if let ForceQuote::Columns(cols) = &options.force_quote {
            let mut seen: Vec<&String> = Vec::new();
            for c in cols {
                if seen.contains(&c) {
                    return Err(TemporaError::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!("column \"{c}\" specified more than once"),
                    ));
                }
                seen.push(c);
                if !column_names.contains(c) {
                    return Err(TemporaError::new(
                        SqlState::INVALID_COLUMN_REFERENCE,
                        format!("FORCE_QUOTE column \"{c}\" not referenced by COPY"),
                    ));
                }
            }
        }
        Ok(Self::new(column_names, options, session_tz))
    }

    /// Header (CSV or text HEADER line, or the binary signature + flags +
    /// extension); empty for text or CSV without header.
    pub fn header(&mut self) -> Bytes {
        match self.opts.format {
            CopyFormat::Binary => {
                let mut v = Vec::with_capacity(19);
                v.extend_from_slice(BINARY_SIGNATURE);
                v.extend_from_slice(&0i32.to_be_bytes());
                v.extend_from_slice(&0i32.to_be_bytes());
                Bytes::from(v)
            }
            _ if self.opts.header == Header::No => Bytes::new(),
            format => {
                let mut out = Vec::new();
                let single = self.names.len() == 1;
                for (i, n) in self.names.iter().enumerate() {
                    if i > 0 {
                        out.push(self.opts.delimiter);
                    }
                    if format == CopyFormat::Csv {
                        self.csv_value(n.as_bytes(), false, single, &mut out);
                    } else {
                        escape_text(n.as_bytes(), self.opts.delimiter, &mut out);
                    }
                }
                out.push(b'\n');
                Bytes::from(out)
            }
        }
    }

    /// Binary trailer (-1 as int16) or nothing.
    pub fn trailer(&mut self) -> Bytes {
        if self.opts.format == CopyFormat::Binary {
            Bytes::from_static(&[0xff, 0xff])
        } else {
            Bytes::new()
        }
    }

    /// Encodes every row of a batch; one Bytes per row (one CopyData each).
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, TemporaError> {
        let arrays = batch
            .columns()
            .iter()
            .map(normalize)
            .collect::<Result<Vec<_>, _>>()?;
        let cols = arrays.iter().map(Col::new).collect::<Result<Vec<_>, _>>()?;
        let rows = batch.num_rows();
        let mut out: Vec<u8> = Vec::with_capacity(rows * (cols.len() * 8 + 2));
        let mut ends = Vec::with_capacity(rows);
        let single = cols.len() == 1;
        let tz = self.tz.clone();
        let mut text = std::mem::take(&mut self.text);
        for row in 0..rows {
            match self.opts.format {
                CopyFormat::Binary => {
                    out.extend_from_slice(&(cols.len() as i16).to_be_bytes());
                    for c in &cols {
                        if c.is_null(row) {
                            out.extend_from_slice(&(-1i32).to_be_bytes());
                        } else {
                            let at = out.len();
                            out.extend_from_slice(&[0, 0, 0, 0]);
                            c.binary(row, &mut out)?;
                            let len = (out.len() - at - 4) as i32;
                            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
                        }
                    }
                }
                format => {
                    for (j, c) in cols.iter().enumerate() {
                        if j > 0 {
                            out.push(self.opts.delimiter);
                        }
                        if c.is_null(row) {
                            out.extend_from_slice(self.opts.null.as_bytes());
                            continue;
                        }
                        text.clear();
                        c.text(row, &tz, &mut text);
                        if format == CopyFormat::Csv {
                            let force = self.force_quote.get(j).copied().unwrap_or(false);
                            self.csv_value(text.as_bytes(), force, single, &mut out);
                        } else {
                            escape_text(text.as_bytes(), self.opts.delimiter, &mut out);
                        }
                    }
                    out.push(b'\n');
                }
            }
            ends.push(out.len());
        }
        self.text = text;
        let all = Bytes::from(out);
        let mut start = 0;
        Ok(ends
            .into_iter()
            .map(|end| {
                let b = all.slice(start..end);
                start = end;
                b
            })
            .collect())
    }

    /// PostgreSQL's CopyAttributeOutCSV.
    fn csv_value(&self, v: &[u8], force: bool, single: bool, out: &mut Vec<u8>) {
        let (delim, quote, esc) = (self.opts.delimiter, self.opts.quote, self.opts.escape);
        let use_quote = force
            || v == self.opts.null.as_bytes()
            || (single && v == b"\\.")
            || v.iter()
                .any(|&c| c == delim || c == quote || c == b'\n' || c == b'\r');
        if !use_quote {
            out.extend_from_slice(v);
            return;
        }
        out.push(quote);
        for &c in v {
            if c == quote || c == esc {
                out.push(esc);
            }
            out.push(c);
        }
        out.push(quote);
    }
}

/// PostgreSQL's CopyAttributeOutText: backslash escapes for control
/// characters, backslash and the delimiter.
fn escape_text(v: &[u8], delim: u8, out: &mut Vec<u8>) {
    if !v.iter().any(|&c| c < 0x20 || c == b'\\' || c == delim) {
        out.extend_from_slice(v);
        return;
    }
    for &c in v {
        if c < 0x20 {
            let e = match c {
                0x08 => b'b',
                0x0c => b'f',
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0x0b => b'v',
                _ => {
                    if c == delim {
                        out.push(b'\\');
                    }
                    out.push(c);
                    continue;
                }
            };
            out.push(b'\\');
            out.push(e);
        } else if c == b'\\' || c == delim {
            out.push(b'\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
}

/// Every value of a column as PostgreSQL's output function prints it (what
/// COPY's text format and a query's text results hold), NULL kept:
/// `concat` and `format` print their arguments this way.
pub fn output_text(
    col: &ArrayRef,
    session_tz: &str,
) -> Result<datafusion::arrow::array::StringArray, TemporaError> {
    let normalized = normalize(col)?;
    let c = Col::new(&normalized)?;
    let tz = PgTimeZone::of_setting(session_tz);
    let mut text = String::new();
    Ok((0..normalized.len())
        .map(|row| {
            (!c.is_null(row)).then(|| {
                text.clear();
                c.text(row, &tz, &mut text);
                text.clone()
            })
        })
        .collect())
}

/// Brings a column to the representation the writers handle.
fn normalize(a: &ArrayRef) -> Result<ArrayRef, TemporaError> {
    let target = match a.data_type() {
        DataType::Dictionary(_, v) => Some(v.as_ref().clone()),
        DataType::Timestamp(u, tz) if *u != TimeUnit::Microsecond => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))
        }
        DataType::Date64 => Some(DataType::Date32),
        DataType::Time32(_) | DataType::Time64(TimeUnit::Nanosecond) => {
            Some(DataType::Time64(TimeUnit::Microsecond))
        }
        DataType::Duration(u) if *u != TimeUnit::Microsecond => {
            Some(DataType::Duration(TimeUnit::Microsecond))
        }
        _ => None,
    };
    match target {
        Some(t) => {
            let c = cast(a, &t).map_err(arrow_err)?;
            if matches!(c.data_type(), DataType::Dictionary(..)) {
                Ok(c)
            } else {
                normalize(&c)
            }
        }
        None => Ok(a.clone()),
    }
}

enum Col<'a> {
    Null,
    Bool(&'a BooleanArray),
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    U8(&'a UInt8Array),
    U16(&'a UInt16Array),
    U32(&'a UInt32Array),
    U64(&'a UInt64Array),
    F16(&'a Float16Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Dec(&'a Decimal128Array, i8),
    Str(&'a StringArray),
    LStr(&'a LargeStringArray),
    VStr(&'a StringViewArray),
    Bin(&'a BinaryArray),
    LBin(&'a LargeBinaryArray),
    VBin(&'a BinaryViewArray),
    FBin(&'a FixedSizeBinaryArray),
    Date(&'a Date32Array),
    Ts(&'a TimestampMicrosecondArray, bool),
    Time(&'a Time64MicrosecondArray),
    IvMdn(&'a IntervalMonthDayNanoArray),
    IvDt(&'a IntervalDayTimeArray),
    IvYm(&'a IntervalYearMonthArray),
    Dur(&'a DurationMicrosecondArray),
    List(&'a ArrayRef),
    Other(&'a ArrayRef, ArrayFormatter<'a>),
}

impl<'a> Col<'a> {
    fn new(a: &'a ArrayRef) -> Result<Col<'a>, TemporaError> {
        Ok(match a.data_type() {
            DataType::Null => Col::Null,
            DataType::Boolean => Col::Bool(a.as_boolean()),
            DataType::Int8 => Col::I8(a.as_primitive::<Int8Type>()),
            DataType::Int16 => Col::I16(a.as_primitive::<Int16Type>()),
            DataType::Int32 => Col::I32(a.as_primitive::<Int32Type>()),
            DataType::Int64 => Col::I64(a.as_primitive::<Int64Type>()),
            DataType::UInt8 => Col::U8(a.as_primitive::<UInt8Type>()),
            DataType::UInt16 => Col::U16(a.as_primitive::<UInt16Type>()),
            DataType::UInt32 => Col::U32(a.as_primitive::<UInt32Type>()),
            DataType::UInt64 => Col::U64(a.as_primitive::<UInt64Type>()),
            DataType::Float16 => Col::F16(a.as_primitive::<Float16Type>()),
            DataType::Float32 => Col::F32(a.as_primitive::<Float32Type>()),
            DataType::Float64 => Col::F64(a.as_primitive::<Float64Type>()),
            DataType::Decimal128(_, s) => Col::Dec(a.as_primitive::<Decimal128Type>(), *s),
            DataType::Utf8 => Col::Str(a.as_string::<i32>()),
            DataType::LargeUtf8 => Col::LStr(a.as_string::<i64>()),
            DataType::Utf8View => Col::VStr(a.as_string_view()),
            DataType::Binary => Col::Bin(a.as_binary::<i32>()),
            DataType::LargeBinary => Col::LBin(a.as_binary::<i64>()),
            DataType::BinaryView => Col::VBin(a.as_binary_view()),
            DataType::FixedSizeBinary(_) => Col::FBin(a.as_fixed_size_binary()),
            DataType::Date32 => Col::Date(a.as_primitive::<Date32Type>()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Col::Ts(a.as_primitive::<TimestampMicrosecondType>(), tz.is_some())
            }
            DataType::Time64(TimeUnit::Microsecond) => {
                Col::Time(a.as_primitive::<Time64MicrosecondType>())
            }
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                Col::IvMdn(a.as_primitive::<IntervalMonthDayNanoType>())
            }
            DataType::Interval(IntervalUnit::DayTime) => {
                Col::IvDt(a.as_primitive::<IntervalDayTimeType>())
            }
            DataType::Interval(IntervalUnit::YearMonth) => {
                Col::IvYm(a.as_primitive::<IntervalYearMonthType>())
            }
            DataType::Duration(TimeUnit::Microsecond) => {
                Col::Dur(a.as_primitive::<DurationMicrosecondType>())
            }
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                Col::List(a)
            }
            _ => Col::Other(
                a,
                ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())
                    .map_err(arrow_err)?,
            ),
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Col::Null => true,
            Col::Bool(a) => a.is_null(row),
            Col::I8(a) => a.is_null(row),
            Col::I16(a) => a.is_null(row),
            Col::I32(a) => a.is_null(row),
            Col::I64(a) => a.is_null(row),
            Col::U8(a) => a.is_null(row),
            Col::U16(a) => a.is_null(row),
            Col::U32(a) => a.is_null(row),
            Col::U64(a) => a.is_null(row),
            Col::F16(a) => a.is_null(row),
            Col::F32(a) => a.is_null(row),
            Col::F64(a) => a.is_null(row),
            Col::Dec(a, _) => a.is_null(row),
            Col::Str(a) => a.is_null(row),
            Col::LStr(a) => a.is_null(row),
            Col::VStr(a) => a.is_null(row),
            Col::Bin(a) => a.is_null(row),
            Col::LBin(a) => a.is_null(row),
            Col::VBin(a) => a.is_null(row),
            Col::FBin(a) => a.is_null(row),
            Col::Date(a) => a.is_null(row),
            Col::Ts(a, _) => a.is_null(row),
            Col::Time(a) => a.is_null(row),
            Col::IvMdn(a) => a.is_null(row),
            Col::IvDt(a) => a.is_null(row),
            Col::IvYm(a) => a.is_null(row),
            Col::Dur(a) => a.is_null(row),
            Col::List(a) => a.is_null(row),
            Col::Other(a, _) => a.is_null(row),
        }
    }

    /// The value's PostgreSQL text output.
    fn text(&self, row: usize, tz: &PgTimeZone, out: &mut String) {
        use std::fmt::Write;
        let mut ib = itoa::Buffer::new();
        match self {
            Col::Null => {}
            Col::Bool(a) => out.push(if a.value(row) { 't' } else { 'f' }),
            Col::I8(a) => out.push_str(ib.format(a.value(row))),
            Col::I16(a) => out.push_str(ib.format(a.value(row))),
            Col::I32(a) => out.push_str(ib.format(a.value(row))),
            Col::I64(a) => out.push_str(ib.format(a.value(row))),
            Col::U8(a) => out.push_str(ib.format(a.value(row))),
            Col::U16(a) => out.push_str(ib.format(a.value(row))),
            Col::U32(a) => out.push_str(ib.format(a.value(row))),
            Col::U64(a) => out.push_str(ib.format(a.value(row))),
            Col::F16(a) => write_float4(a.value(row).to_f32(), out),
            Col::F32(a) => write_float4(a.value(row), out),
            Col::F64(a) => write_float8(a.value(row), out),
            Col::Dec(a, s) => format_decimal(a.value(row), *s, out),
            Col::Str(a) => out.push_str(a.value(row)),
            Col::LStr(a) => out.push_str(a.value(row)),
            Col::VStr(a) => out.push_str(a.value(row)),
            Col::Bin(a) => write_bytea(a.value(row), out),
            Col::LBin(a) => write_bytea(a.value(row), out),
            Col::VBin(a) => write_bytea(a.value(row), out),
            Col::FBin(a) => write_bytea(a.value(row), out),
            Col::Date(a) => write_date(a.value(row) as i64, out),
            Col::Ts(a, with_tz) => {
                write_timestamp(a.value(row), if *with_tz { Some(tz) } else { None }, out)
            }
            Col::Time(a) => write_time(a.value(row), out),
            Col::IvMdn(a) => {
                let v = a.value(row);
                write_interval(v.months, v.days, v.nanoseconds / 1000, out)
            }
            Col::IvDt(a) => {
                let v = a.value(row);
                write_interval(0, v.days, v.milliseconds as i64 * 1000, out)
            }
            Col::IvYm(a) => write_interval(a.value(row), 0, 0, out),
            Col::Dur(a) => write_interval(0, 0, a.value(row), out),
            Col::List(a) => {
                let child = match a.data_type() {
                    DataType::List(_) => a.as_list::<i32>().value(row),
                    DataType::LargeList(_) => a.as_list::<i64>().value(row),
                    _ => a.as_fixed_size_list().value(row),
                };
                write_array(&child, tz, out);
            }
            Col::Other(_, f) => {
                let _ = write!(out, "{}", f.value(row));
            }
        }
    }

    /// The value's PostgreSQL binary (send) format, without the length.
    fn binary(&self, row: usize, out: &mut Vec<u8>) -> Result<(), TemporaError> {
        match self {
            Col::Null => {}
            Col::Bool(a) => out.push(a.value(row) as u8),
            Col::I8(a) => out.extend_from_slice(&(a.value(row) as i16).to_be_bytes()),
            Col::I16(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            Col::I32(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            Col::I64(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            Col::U8(a) => out.extend_from_slice(&(a.value(row) as i16).to_be_bytes()),
            Col::U16(a) => out.extend_from_slice(&(a.value(row) as i32).to_be_bytes()),
            Col::U32(a) => out.extend_from_slice(&(a.value(row) as i64).to_be_bytes()),
            Col::U64(a) => encode_binary(a.value(row) as i128, 0, out),
            Col::F16(a) => out.extend_from_slice(&a.value(row).to_f32().to_be_bytes()),
            Col::F32(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            Col::F64(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            Col::Dec(a, s) => encode_binary(a.value(row), *s, out),
            Col::Str(a) => out.extend_from_slice(a.value(row).as_bytes()),
            Col::LStr(a) => out.extend_from_slice(a.value(row).as_bytes()),
            Col::VStr(a) => out.extend_from_slice(a.value(row).as_bytes()),
            Col::Bin(a) => out.extend_from_slice(a.value(row)),
            Col::LBin(a) => out.extend_from_slice(a.value(row)),
            Col::VBin(a) => out.extend_from_slice(a.value(row)),
            Col::FBin(a) => out.extend_from_slice(a.value(row)),
            Col::Date(a) => {
                out.extend_from_slice(&(a.value(row) - PG_EPOCH_DAYS as i32).to_be_bytes())
            }
            Col::Ts(a, _) => {
                // PostgreSQL sends the infinities as the extreme values.
                let v = match a.value(row) {
                    v @ (i64::MAX | i64::MIN) => v,
                    v => v - PG_EPOCH_USECS,
                };
                out.extend_from_slice(&v.to_be_bytes())
            }
            Col::Time(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            Col::IvMdn(a) => {
                let v = a.value(row);
                interval_binary(v.nanoseconds / 1000, v.days, v.months, out)
            }
            Col::IvDt(a) => {
                let v = a.value(row);
                interval_binary(v.milliseconds as i64 * 1000, v.days, 0, out)
            }
            Col::IvYm(a) => interval_binary(0, 0, a.value(row), out),
            Col::Dur(a) => {
                let (days, rem) = crate::text::split_days(a.value(row));
                interval_binary(rem, days, 0, out)
            }
            Col::List(a) | Col::Other(a, _) => {
                return Err(TemporaError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    format!(
                        "COPY BINARY output of type {} is not supported",
                        a.data_type()
                    ),
                ))
            }
        }
        Ok(())
    }
}

/// A column in PostgreSQL's binary format, one value per row (nulls kept),
/// for the values the generic query encoder gets wrong (intervals, and
/// the infinities of timestamps); None for the others.
pub fn binary_values(col: &ArrayRef) -> Result<Option<ArrayRef>, TemporaError> {
    let micros;
    let col = match col.data_type() {
        DataType::Interval(_) | DataType::Duration(_) | DataType::Decimal128(..) => col,
        DataType::Timestamp(..) => match crate::text::timestamps_with_infinities(col)
            .map_err(|e| TemporaError::internal(e.to_string()))?
        {
            Some(m) => {
                micros = m;
                &micros
            }
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let c = Col::new(col)?;
    let mut out = datafusion::arrow::array::BinaryBuilder::new();
    let mut value = Vec::with_capacity(16);
    for row in 0..col.len() {
        if c.is_null(row) {
            out.append_null();
        } else {
            value.clear();
            c.binary(row, &mut value)?;
            out.append_value(&value);
        }
    }
    Ok(Some(std::sync::Arc::new(out.finish())))
}

fn interval_binary(micros: i64, days: i32, months: i32, out: &mut Vec<u8>) {
    out.extend_from_slice(&micros.to_be_bytes());
    out.extend_from_slice(&days.to_be_bytes());
    out.extend_from_slice(&months.to_be_bytes());
}

/// PostgreSQL's array text: `{1,2,NULL}`, nested lists as nested braces.
fn write_array(child: &ArrayRef, tz: &PgTimeZone, out: &mut String) {
    let norm = normalize(child).unwrap_or_else(|_| child.clone());
    out.push('{');
    if let Ok(col) = Col::new(&norm) {
        let mut elem = String::new();
        for i in 0..norm.len() {
            if i > 0 {
                out.push(',');
            }
            if col.is_null(i) {
                out.push_str("NULL");
                continue;
            }
            elem.clear();
            col.text(i, tz, &mut elem);
            if matches!(col, Col::List(_)) {
                out.push_str(&elem);
            } else {
                write_array_element(&elem, out);
            }
        }
    }
    out.push('}');
}
