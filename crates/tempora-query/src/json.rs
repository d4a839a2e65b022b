//! `json_build_object` and `json_build_array` (which ORMs' catalog queries
//! use: SQLAlchemy reflects identity columns with one), their jsonb
//! versions, and `to_json` / `to_jsonb`. `json` values are text, formatted
//! as PostgreSQL prints them (`{"a" : 1, "b" : null}`); jsonb values are
//! normalized (tempora-copy's `json`). Arguments that are json or jsonb are
//! written as the JSON they hold, not as strings.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

use tempora_common::{SqlState, TemporaError};
use tempora_copy::json::JsonKind;
use tempora_copy::zone::PgTimeZone;

use crate::variables::{SessionHandle, SessionVariables};

/// What a [`JsonBuild`] makes of its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Build {
    Object,
    Array,
    /// `to_json(v)`: the one argument as a JSON value.
    Value,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuild {
    name: &'static str,
    build: Build,
    /// Its result is jsonb (normalized), not json.
    jsonb: bool,
    signature: Signature,
    /// Where the session's time zone is read (timestamptz values).
    variables: SessionHandle,
}

impl ScalarUDFImpl for JsonBuild {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(
        &self,
        _args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<datafusion::arrow::datatypes::FieldRef> {
        let kind = if self.jsonb {
            JsonKind::Jsonb
        } else {
            JsonKind::Json
        };
        Ok(Arc::new(crate::jsonb::json_field(self.name, kind)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let raw: Vec<bool> = args
            .arg_fields
            .iter()
            .map(|f| crate::jsonb::json_kind(f).is_some())
            .collect();
        let object = self.build == Build::Object;
        if object && !args.args.len().is_multiple_of(2) {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "argument list must have even number of elements",
            )
            .with_hint(format!(
                "The arguments of {}() must consist of alternating keys and values.",
                self.name
            ))
            .into_datafusion());
        }
        let zone = self.variables.time_zone();
        crate::pg_types::map_rows(&args, &DataType::Utf8, |values| {
            let write_value = |v: &ScalarValue, i: usize, out: &mut String| match v {
                ScalarValue::Utf8(Some(s)) if raw.get(i) == Some(&true) => out.push_str(s),
                _ => write_value(v, &zone, out),
            };
            let mut out = String::new();
            if self.build == Build::Value {
                if values[0].is_null() {
                    return Ok(ScalarValue::Utf8(None));
                }
                write_value(&values[0], 0, &mut out);
            } else if object {
                out.push('{');
                for (i, pair) in values.chunks(2).enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if pair[0].is_null() {
                        return Err(TemporaError::new(
                            SqlState::INVALID_PARAMETER_VALUE,
                            format!("argument {} cannot be null", 2 * i + 1),
                        )
                        .with_hint("Object keys should be text.")
                        .into_datafusion());
                    }
                    write_string(&key_text(&pair[0]), &mut out);
                    out.push_str(" : ");
                    write_value(&pair[1], 2 * i + 1, &mut out);
                }
                out.push('}');
            } else {
                out.push('[');
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_value(v, i, &mut out);
                }
                out.push(']');
            }
            if self.jsonb {
                out =
                    tempora_copy::json::jsonb_text(&out).map_err(TemporaError::into_datafusion)?;
            }
            Ok(ScalarValue::Utf8(Some(out)))
        })
    }
}

/// A key as text: strings as they are, other values as printed.
fn key_text(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

/// One value as JSON: numbers and booleans bare, NULL as null, text and
/// everything else as a string (timestamps in ISO 8601, as PostgreSQL's json).
fn write_value(v: &ScalarValue, zone: &PgTimeZone, out: &mut String) {
    if v.is_null() {
        out.push_str("null");
        return;
    }
    match v {
        ScalarValue::Boolean(Some(b)) => out.push_str(if *b { "true" } else { "false" }),
        ScalarValue::Int8(Some(x)) => out.push_str(&x.to_string()),
        ScalarValue::Int16(Some(x)) => out.push_str(&x.to_string()),
        ScalarValue::Int32(Some(x)) => out.push_str(&x.to_string()),
        ScalarValue::Int64(Some(x)) => out.push_str(&x.to_string()),
        ScalarValue::UInt32(Some(x)) => out.push_str(&x.to_string()),
        ScalarValue::UInt64(Some(x)) => out.push_str(&x.to_string()),
        ScalarValue::Float64(Some(x)) if x.is_finite() => tempora_copy::text::write_float8(*x, out),
        ScalarValue::Float32(Some(x)) if x.is_finite() => tempora_copy::text::write_float4(*x, out),
        ScalarValue::Decimal128(Some(_), _, _) => out.push_str(&v.to_string()),
        ScalarValue::TimestampMicrosecond(Some(t), tz) => {
            let text = tempora_copy::text::format_timestamp(*t, tz.as_ref().map(|_| zone));
            let mut iso = text.replacen(' ', "T", 1);
            // JSON offsets always have minutes (`+01:00`).
            if let Some(sign) = iso.rfind(['+', '-']).filter(|&i| tz.is_some() && i >= 19) {
                if !iso[sign..].contains(':') {
                    iso.push_str(":00");
                }
            }
            write_string(&iso, out)
        }
        other => write_string(&key_text(other), out),
    }
}

fn write_string(s: &str, out: &mut String) {
    tempora_copy::json::write_string(out, s)
}

/// `json[b]_build_object(k, v, ...)`, `json[b]_build_array(v, ...)` and
/// `to_json[b](v)`.
pub fn json_functions(variables: Arc<SessionVariables>) -> Vec<ScalarUDF> {
    [
        ("json_build_object", Build::Object, false),
        ("json_build_array", Build::Array, false),
        ("jsonb_build_object", Build::Object, true),
        ("jsonb_build_array", Build::Array, true),
        ("to_json", Build::Value, false),
        ("to_jsonb", Build::Value, true),
    ]
    .into_iter()
    .map(|(name, build, jsonb)| {
        let signature = match build {
            Build::Value => Signature::any(1, Volatility::Stable),
            _ => Signature::variadic_any(Volatility::Stable),
        };
        ScalarUDF::new_from_impl(JsonBuild {
            name,
            build,
            jsonb,
            signature,
            variables: SessionHandle(variables.clone()),
        })
    })
    .collect()
}
