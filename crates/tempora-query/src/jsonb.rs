//! The `json` and `jsonb` types in queries: their input functions (what
//! `x::jsonb` becomes, see tempora-sql's `pg_compat::json_casts`), the
//! operators (`->`, `->>`, `#>`, `#>>`, `@>`, `<@`, `?`, `?|`, `?&`, `||`,
//! `-`) and the functions users call on them.
//!
//! Values are text (tempora-copy's `json` module); a field whose text is
//! json carries [`PG_TYPE_KEY`] metadata, which functions pass on to their
//! results and the wire turns into the type's oid.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use tempora_catalog::PG_TYPE_KEY;
use tempora_common::{SqlState, TemporaError};
use tempora_copy::json::{self as js, JsonKind, Node, Value};

/// The json type a field's values have, if any. Only a text field holds
/// json: a cast of a json value to another type may keep the metadata.
pub fn json_kind(field: &Field) -> Option<JsonKind> {
    if !is_text(field.data_type()) {
        return None;
    }
    match field.metadata().get(PG_TYPE_KEY).map(String::as_str) {
        Some("json") => Some(JsonKind::Json),
        Some("jsonb") => Some(JsonKind::Jsonb),
        _ => None,
    }
}

/// The PostgreSQL type a text field's values have when it is not `text`
/// (`json`, `jsonb`, `uuid`), from its [`PG_TYPE_KEY`] marker.
pub fn text_type(field: &Field) -> Option<&str> {
    if !is_text(field.data_type()) {
        return None;
    }
    field.metadata().get(PG_TYPE_KEY).map(String::as_str)
}

/// Whether a field holds uuids (as their canonical text).
pub fn is_uuid(field: &Field) -> bool {
    text_type(field) == Some("uuid")
}

/// A text field holding uuids.
pub fn uuid_field(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([(
        PG_TYPE_KEY.to_string(),
        "uuid".to_string(),
    )]))
}

/// A text field holding values of `kind`.
pub fn json_field(name: &str, kind: JsonKind) -> Field {
    Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([(
        PG_TYPE_KEY.to_string(),
        kind.name().to_string(),
    )]))
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn df(e: TemporaError) -> datafusion::error::DataFusionError {
    e.into_datafusion()
}

/// What a function of this module computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// `jsonb(x)` / `json(x)`: the input function.
    Input(JsonKind),
    /// `->` (false) and `->>` (true).
    Get {
        text: bool,
    },
    /// `#>` (false) and `#>>` (true), and `jsonb_extract_path[_text]`.
    Path {
        text: bool,
        variadic: bool,
    },
    Contains,
    ContainedBy,
    Exists,
    ExistsAny,
    ExistsAll,
    Concat,
    DeleteKey,
    Typeof,
    ArrayLength,
    StripNulls,
    Pretty,
    /// jsonb `=` (false) and `<>` (true): numbers compare by value.
    Equal {
        negated: bool,
    },
    /// `jsonb_set(target, path, new [, create_missing])`.
    Set,
    /// The value of a cast from jsonb to a SQL type, as text the ordinary
    /// cast then reads (see [`JsonCasts`]); the argument names the type.
    Scalar,
    /// A cast to text: the same text, no longer json.
    Text,
    /// `uuid(x)`: uuid_in, what `x::uuid` becomes.
    UuidIn,
    /// `json_agg` / `jsonb_agg`: the array of the JSON texts of the group's
    /// values (tempora-sql makes `jsonb_agg(x)` this of `array_agg(to_json(x))`).
    AggFinish(JsonKind),
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFn {
    name: &'static str,
    op: Op,
    signature: Signature,
}

/// A document argument: its text as the type it has (a literal of no
/// json type reads as jsonb), parsed.
struct Doc {
    text: String,
    node: Node,
}

fn doc(v: &ScalarValue, kind: Option<JsonKind>) -> Result<Option<Doc>> {
    let Some(s) = text_value(v) else {
        return Ok(None);
    };
    let text = match kind {
        Some(_) => s.to_string(),
        None => js::jsonb_text(s).map_err(df)?,
    };
    let node = js::parse(&text).map_err(df)?;
    Ok(Some(Doc { text, node }))
}

fn text_value(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

/// A `text[]` argument: an array, or PostgreSQL's array text (`'{a,b}'`).
fn text_list(v: &ScalarValue) -> Result<Option<Vec<Option<String>>>> {
    if let Some(s) = text_value(v) {
        let inner = s
            .trim()
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| {
                df(TemporaError::new(
                    SqlState::INVALID_TEXT_REPRESENTATION,
                    format!("malformed array literal: \"{s}\""),
                ))
            })?;
        if inner.trim().is_empty() {
            return Ok(Some(vec![]));
        }
        return Ok(Some(
            inner
                .split(',')
                .map(|p| {
                    let p = p.trim();
                    match p {
                        "NULL" => None,
                        _ => Some(p.trim_matches('"').to_string()),
                    }
                })
                .collect(),
        ));
    }
    match v {
        ScalarValue::List(a) if datafusion::arrow::array::Array::is_null(a.as_ref(), 0) => Ok(None),
        ScalarValue::List(a) => {
            let values = a.value(0);
            let values = datafusion::arrow::compute::cast(&values, &DataType::Utf8)?;
            let strings = values
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .ok_or_else(|| df(TemporaError::internal("text[] argument")))?;
            Ok(Some(
                strings.iter().map(|s| s.map(str::to_string)).collect(),
            ))
        }
        v if v.is_null() => Ok(None),
        other => Err(df(TemporaError::new(
            SqlState::UNDEFINED_FUNCTION,
            format!("a text[] argument was expected, not {}", other.data_type()),
        ))),
    }
}

fn utf8(s: Option<String>) -> ScalarValue {
    ScalarValue::Utf8(s)
}

impl JsonFn {
    /// The json type of the document argument.
    fn doc_kind(fields: &[FieldRef]) -> Option<JsonKind> {
        fields.first().and_then(|f| json_kind(f))
    }

    /// The type of a result that is a json value: the document's (json
    /// stays json), jsonb for anything else.
    fn result_kind(&self, fields: &[FieldRef]) -> JsonKind {
        match self.op {
            Op::Input(kind) | Op::AggFinish(kind) => kind,
            _ => Self::doc_kind(fields).unwrap_or(JsonKind::Jsonb),
        }
    }

    fn returns_json(&self) -> bool {
        matches!(
            self.op,
            Op::Input(_)
                | Op::AggFinish(_)
                | Op::Get { text: false }
                | Op::Path { text: false, .. }
                | Op::Concat
                | Op::DeleteKey
                | Op::StripNulls
                | Op::Set
        )
    }

    fn check_doc(&self, fields: &[FieldRef]) -> Result<()> {
        let Some(first) = fields.first() else {
            return Ok(());
        };
        if let Op::Input(kind) = self.op {
            if json_kind(first).is_none()
                && !is_text(first.data_type())
                && !first.data_type().is_null()
            {
                return Err(df(TemporaError::new(
                    SqlState::CANNOT_COERCE,
                    format!(
                        "cannot cast type {} to {}",
                        crate::pg_types::pg_type_name(first.data_type()),
                        kind.name()
                    ),
                )));
            }
            return Ok(());
        }
        if matches!(self.op, Op::AggFinish(_)) {
            return Ok(());
        }
        if !is_text(first.data_type()) && !first.data_type().is_null() {
            return Err(df(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                format!(
                    "function {}({}) does not exist",
                    self.name,
                    crate::pg_types::pg_type_name(first.data_type())
                ),
            )
            .with_hint(
                "No function matches the given name and argument types. You might need to add explicit type casts.",
            )));
        }
        Ok(())
    }

    fn apply(&self, kinds: &[Option<JsonKind>], values: &[ScalarValue]) -> Result<ScalarValue> {
        let doc_kind = kinds.first().copied().flatten();
        let first = values.first().cloned().unwrap_or(ScalarValue::Null);
        if let Op::Input(kind) = self.op {
            return Ok(match text_value(&first) {
                Some(s) => utf8(Some(kind.input(s).map_err(df)?)),
                None => utf8(None),
            });
        }
        if self.op == Op::Text {
            return Ok(utf8(text_value(&first).map(str::to_string)));
        }
        if self.op == Op::UuidIn {
            return Ok(match text_value(&first) {
                Some(s) => utf8(Some(tempora_copy::values::uuid_in(s).map_err(df)?)),
                None => utf8(None),
            });
        }
        if let Op::AggFinish(kind) = self.op {
            let Some(items) = text_list(&first)? else {
                return Ok(utf8(None));
            };
            let items: Vec<&str> = items
                .iter()
                .map(|i| i.as_deref().unwrap_or("null"))
                .collect();
            let text = format!("[{}]", items.join(", "));
            return Ok(utf8(Some(match kind {
                JsonKind::Json => text,
                JsonKind::Jsonb => js::jsonb_text(&text).map_err(df)?,
            })));
        }
        let Some(d) = doc(&first, doc_kind)? else {
            return Ok(null_of(self.op));
        };
        let arg = values.get(1).cloned().unwrap_or(ScalarValue::Null);
        Ok(match self.op {
            Op::Input(_) | Op::AggFinish(_) | Op::UuidIn | Op::Text => {
                unreachable!("handled above")
            }
            Op::Get { text } => {
                let found = match &arg {
                    v if v.is_null() => None,
                    ScalarValue::Int8(Some(i)) => d.node.element(i64::from(*i)),
                    ScalarValue::Int16(Some(i)) => d.node.element(i64::from(*i)),
                    ScalarValue::Int32(Some(i)) => d.node.element(i64::from(*i)),
                    ScalarValue::Int64(Some(i)) => d.node.element(*i),
                    v => text_value(v).and_then(|k| d.node.field(k)),
                };
                utf8(found.and_then(|n| extracted(n, &d.text, text)))
            }
            Op::Path { text, variadic } => {
                let path: Option<Vec<Option<String>>> = if variadic {
                    Some(
                        values[1..]
                            .iter()
                            .map(|v| text_value(v).map(str::to_string))
                            .collect(),
                    )
                } else {
                    text_list(&arg)?
                };
                let Some(path) = path else {
                    return Ok(utf8(None));
                };
                let steps: Vec<Option<&str>> = path.iter().map(|p| p.as_deref()).collect();
                utf8(
                    d.node
                        .path(&steps)
                        .and_then(|n| extracted(n, &d.text, text)),
                )
            }
            Op::Contains | Op::ContainedBy => {
                let Some(other) = doc(&arg, kinds.get(1).copied().flatten())? else {
                    return Ok(ScalarValue::Boolean(None));
                };
                let (a, b) = match self.op {
                    Op::Contains => (&d.node, &other.node),
                    _ => (&other.node, &d.node),
                };
                ScalarValue::Boolean(Some(a.contains(b)))
            }
            Op::Exists => match text_value(&arg) {
                Some(k) => ScalarValue::Boolean(Some(d.node.has_key(k))),
                None => ScalarValue::Boolean(None),
            },
            Op::ExistsAny | Op::ExistsAll => {
                let Some(keys) = text_list(&arg)? else {
                    return Ok(ScalarValue::Boolean(None));
                };
                let mut hits = keys.iter().flatten().map(|k| d.node.has_key(k));
                ScalarValue::Boolean(Some(match self.op {
                    Op::ExistsAny => hits.any(|h| h),
                    _ => hits.all(|h| h),
                }))
            }
            Op::Concat => {
                let Some(other) = doc(&arg, kinds.get(1).copied().flatten())? else {
                    return Ok(utf8(None));
                };
                utf8(Some(concat(&d, &other)?))
            }
            Op::DeleteKey => {
                let Value::Object(members) = &d.node.value else {
                    return Ok(utf8(Some(d.text.clone())));
                };
                let Some(key) = text_value(&arg) else {
                    return Ok(utf8(None));
                };
                let mut out = String::from("{");
                for (k, v) in members.iter().filter(|(k, _)| k != key) {
                    if out.len() > 1 {
                        out.push_str(", ");
                    }
                    js::write_string(&mut out, k);
                    out.push_str(": ");
                    out.push_str(v.text(&d.text));
                }
                out.push('}');
                utf8(Some(out))
            }
            Op::Typeof => utf8(Some(d.node.type_name().to_string())),
            Op::ArrayLength => match &d.node.value {
                Value::Array(items) => ScalarValue::Int32(Some(items.len() as i32)),
                Value::Object(_) => return Err(not_array("a non-array")),
                _ => return Err(not_array("a scalar")),
            },
            Op::StripNulls => {
                let mut out = String::new();
                strip_nulls(&mut out, &d.node, &d.text);
                utf8(Some(js::jsonb_text(&out).map_err(df)?))
            }
            Op::Pretty => utf8(Some(js::jsonb_pretty(&d.text).map_err(df)?)),
            Op::Equal { negated } => {
                let Some(other) = doc(&arg, kinds.get(1).copied().flatten())? else {
                    return Ok(ScalarValue::Boolean(None));
                };
                ScalarValue::Boolean(Some(d.node.equals(&other.node) != negated))
            }
            Op::Set => {
                let (Some(path), Some(new)) = (
                    text_list(&arg)?,
                    doc(&values[2], kinds.get(2).copied().flatten())?,
                ) else {
                    return Ok(utf8(None));
                };
                let create = !matches!(values.get(3), Some(ScalarValue::Boolean(Some(false))));
                let path: Vec<String> = path.into_iter().flatten().collect();
                let mut out = String::new();
                set_path(&mut out, &d.node, &d.text, &path, &new.text, create);
                utf8(Some(js::jsonb_text(&out).map_err(df)?))
            }
            Op::Scalar => {
                let target = text_value(&arg).unwrap_or("numeric");
                utf8(cast_value(&d.node, target)?)
            }
        })
    }
}

fn not_array(what: &str) -> datafusion::error::DataFusionError {
    df(TemporaError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!("cannot get array length of {what}"),
    ))
}

fn null_of(op: Op) -> ScalarValue {
    match op {
        Op::Contains
        | Op::ContainedBy
        | Op::Exists
        | Op::ExistsAny
        | Op::ExistsAll
        | Op::Equal { .. } => ScalarValue::Boolean(None),
        Op::ArrayLength => ScalarValue::Int32(None),
        _ => ScalarValue::Utf8(None),
    }
}

/// A member found by `->`/`#>` (its text) or `->>`/`#>>` (as text).
fn extracted(n: &Node, doc: &str, text: bool) -> Option<String> {
    match text {
        true => n.as_text(doc),
        false => Some(n.text(doc).to_string()),
    }
}

/// jsonb's `||`: objects merge (the right side's keys win), arrays and
/// other values concatenate as arrays.
fn concat(a: &Doc, b: &Doc) -> Result<String> {
    let mut out = String::new();
    match (&a.node.value, &b.node.value) {
        (Value::Object(am), Value::Object(bm)) => {
            out.push('{');
            for (i, (k, v)) in am.iter().chain(bm).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                js::write_string(&mut out, k);
                out.push(':');
                let text = if i < am.len() { &a.text } else { &b.text };
                out.push_str(v.text(text));
            }
            out.push('}');
        }
        _ => {
            let items = |d: &Doc| -> Vec<String> {
                match &d.node.value {
                    Value::Array(items) => {
                        items.iter().map(|n| n.text(&d.text).to_string()).collect()
                    }
                    _ => vec![d.text.clone()],
                }
            };
            out.push('[');
            out.push_str(&[items(a), items(b)].concat().join(","));
            out.push(']');
        }
    }
    js::jsonb_text(&out).map_err(df)
}

fn strip_nulls(out: &mut String, n: &Node, doc: &str) {
    match &n.value {
        Value::Object(members) => {
            out.push('{');
            let mut first = true;
            for (k, v) in members.iter().filter(|(_, v)| v.value != Value::Null) {
                if !first {
                    out.push(',');
                }
                first = false;
                js::write_string(out, k);
                out.push(':');
                strip_nulls(out, v, doc);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                strip_nulls(out, v, doc);
            }
            out.push(']');
        }
        _ => out.push_str(n.text(doc)),
    }
}

/// `jsonb_set`: `node` with the value at `path` replaced by `new`, or
/// added where its parent exists and `create` is set.
fn set_path(out: &mut String, node: &Node, doc: &str, path: &[String], new: &str, create: bool) {
    let Some((step, rest)) = path.split_first() else {
        out.push_str(new);
        return;
    };
    match &node.value {
        Value::Object(members) => {
            out.push('{');
            let mut found = false;
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                js::write_string(out, k);
                out.push(':');
                if k == step {
                    found = true;
                    set_path(out, v, doc, rest, new, create);
                } else {
                    out.push_str(v.text(doc));
                }
            }
            if !found && create && rest.is_empty() {
                if !members.is_empty() {
                    out.push(',');
                }
                js::write_string(out, step);
                out.push(':');
                out.push_str(new);
            }
            out.push('}');
        }
        Value::Array(items) => {
            let len = items.len() as i64;
            let index = step
                .trim()
                .parse::<i64>()
                .ok()
                .map(|i| if i < 0 { len + i } else { i });
            let texts: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut t = String::new();
                    if index == Some(i as i64) {
                        set_path(&mut t, v, doc, rest, new, create);
                    } else {
                        t.push_str(v.text(doc));
                    }
                    t
                })
                .collect();
            let mut all = texts;
            if create && rest.is_empty() {
                match index {
                    Some(i) if i >= len => all.push(new.to_string()),
                    Some(i) if i < 0 => all.insert(0, new.to_string()),
                    _ => {}
                }
            }
            out.push('[');
            out.push_str(&all.join(","));
            out.push(']');
        }
        _ => out.push_str(node.text(doc)),
    }
}

/// A jsonb value cast to the SQL type `target` names, as the text that
/// type's ordinary cast reads: numbers to numeric and the number types
/// (integers rounded half away from zero, as numeric's cast does),
/// booleans to boolean; anything else is PostgreSQL's 22023.
fn cast_value(node: &Node, target: &str) -> Result<Option<String>> {
    let wrong = |what: &str| {
        df(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("cannot cast jsonb {what} to type {target}"),
        ))
    };
    let what = match &node.value {
        Value::Null => return Ok(None),
        Value::Number(n) if target != "boolean" => {
            let text = js::numeric_text(n).map_err(df)?;
            let integer = matches!(target, "smallint" | "integer" | "bigint");
            return Ok(Some(if integer {
                round_half_away(&text)
            } else {
                text
            }));
        }
        Value::Bool(b) if target == "boolean" => return Ok(Some(b.to_string())),
        Value::Number(_) => "numeric",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    Err(wrong(what))
}

/// A decimal number's text rounded to a whole number, halves away from zero.
fn round_half_away(text: &str) -> String {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut int: Vec<u8> = int.bytes().collect();
    if frac.as_bytes().first().is_some_and(|&d| d >= b'5') {
        let mut i = int.len();
        loop {
            if i == 0 {
                int.insert(0, b'1');
                break;
            }
            i -= 1;
            if int[i] == b'9' {
                int[i] = b'0';
            } else {
                int[i] += 1;
                break;
            }
        }
    }
    let int = String::from_utf8(int).unwrap_or_default();
    match neg && int.bytes().any(|d| d != b'0') {
        true => format!("-{int}"),
        false => int,
    }
}

impl ScalarUDFImpl for JsonFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            Op::Contains
            | Op::ContainedBy
            | Op::Exists
            | Op::ExistsAny
            | Op::ExistsAll
            | Op::Equal { .. } => DataType::Boolean,
            Op::ArrayLength => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if self.op == Op::UuidIn {
            if let Some(f) = args.arg_fields.first() {
                if !is_text(f.data_type()) && !f.data_type().is_null() {
                    return Err(df(TemporaError::new(
                        SqlState::CANNOT_COERCE,
                        format!(
                            "cannot cast type {} to uuid",
                            crate::pg_types::pg_type_name(f.data_type())
                        ),
                    )));
                }
            }
            return Ok(Arc::new(uuid_field(self.name)));
        }
        self.check_doc(args.arg_fields)?;
        let t = self.return_type(&[])?;
        Ok(Arc::new(match self.returns_json() {
            true => json_field(self.name, self.result_kind(args.arg_fields)),
            false => Field::new(self.name, t, true),
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let kinds: Vec<Option<JsonKind>> = args.arg_fields.iter().map(|f| json_kind(f)).collect();
        let returns = self.return_type(&[])?;
        crate::pg_types::map_rows(&args, &returns, |values| self.apply(&kinds, values))
    }
}

fn udf(name: &'static str, op: Op, signature: Signature) -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonFn {
        name,
        op,
        signature,
    })
}

/// The functions of this module, by the names queries call them.
pub fn json_udfs() -> Vec<ScalarUDF> {
    let any = |n| Signature::any(n, Volatility::Immutable);
    let variadic = || Signature::variadic_any(Volatility::Immutable);
    vec![
        udf("json", Op::Input(JsonKind::Json), any(1)),
        udf("jsonb", Op::Input(JsonKind::Jsonb), any(1)),
        udf("json_get", Op::Get { text: false }, any(2)),
        udf("json_get_text", Op::Get { text: true }, any(2)),
        udf(
            "json_get_path",
            Op::Path {
                text: false,
                variadic: false,
            },
            any(2),
        ),
        udf(
            "json_get_path_text",
            Op::Path {
                text: true,
                variadic: false,
            },
            any(2),
        ),
        udf(
            "jsonb_extract_path",
            Op::Path {
                text: false,
                variadic: true,
            },
            variadic(),
        ),
        udf(
            "jsonb_extract_path_text",
            Op::Path {
                text: true,
                variadic: true,
            },
            variadic(),
        ),
        udf(
            "json_extract_path",
            Op::Path {
                text: false,
                variadic: true,
            },
            variadic(),
        ),
        udf(
            "json_extract_path_text",
            Op::Path {
                text: true,
                variadic: true,
            },
            variadic(),
        ),
        udf("jsonb_contains", Op::Contains, any(2)),
        udf("jsonb_contained", Op::ContainedBy, any(2)),
        udf("jsonb_exists", Op::Exists, any(2)),
        udf("jsonb_exists_any", Op::ExistsAny, any(2)),
        udf("jsonb_exists_all", Op::ExistsAll, any(2)),
        udf("jsonb_concat", Op::Concat, any(2)),
        udf("jsonb_delete", Op::DeleteKey, any(2)),
        udf("jsonb_typeof", Op::Typeof, any(1)),
        udf("json_typeof", Op::Typeof, any(1)),
        udf("jsonb_array_length", Op::ArrayLength, any(1)),
        udf("json_array_length", Op::ArrayLength, any(1)),
        udf("jsonb_strip_nulls", Op::StripNulls, any(1)),
        udf("jsonb_pretty", Op::Pretty, any(1)),
        udf("jsonb_eq", Op::Equal { negated: false }, any(2)),
        udf("jsonb_ne", Op::Equal { negated: true }, any(2)),
        udf(
            "jsonb_set",
            Op::Set,
            Signature::variadic_any(Volatility::Immutable),
        ),
        udf("jsonb_cast_value", Op::Scalar, any(2)),
        udf("json_as_text", Op::Text, any(1)),
        udf("uuid", Op::UuidIn, any(1)),
        udf("json_agg_finish", Op::AggFinish(JsonKind::Json), any(1)),
        udf("jsonb_agg_finish", Op::AggFinish(JsonKind::Jsonb), any(1)),
    ]
}

/// Plans the json operators on json and jsonb operands; DataFusion's own
/// meaning of `@>`, `<@`, `||`, ... is kept for everything else.
#[derive(Debug)]
pub struct JsonOperators;

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let field = |e: &Expr| e.to_field(schema).ok().map(|(_, f)| f);
        let (left_field, right_field) = (field(&expr.left), field(&expr.right));
        let uuid = |f: &Option<FieldRef>| f.as_ref().is_some_and(|f| is_uuid(f));
        if uuid(&left_field) || uuid(&right_field) {
            return uuid_operator(expr, schema, uuid(&left_field), uuid(&right_field));
        }
        let left = left_field.as_ref().and_then(|f| json_kind(f));
        let right = right_field.as_ref().and_then(|f| json_kind(f));
        let name = match (&expr.op, left) {
            (BinaryOperator::Arrow, Some(_)) => "json_get",
            (BinaryOperator::LongArrow, Some(_)) => "json_get_text",
            (BinaryOperator::HashArrow, Some(_)) => "json_get_path",
            (BinaryOperator::HashLongArrow, Some(_)) => "json_get_path_text",
            (BinaryOperator::AtArrow, Some(JsonKind::Jsonb)) => "jsonb_contains",
            (BinaryOperator::ArrowAt, Some(JsonKind::Jsonb)) => "jsonb_contained",
            (BinaryOperator::Question, Some(JsonKind::Jsonb)) => "jsonb_exists",
            (BinaryOperator::QuestionPipe, Some(JsonKind::Jsonb)) => "jsonb_exists_any",
            (BinaryOperator::QuestionAnd, Some(JsonKind::Jsonb)) => "jsonb_exists_all",
            (BinaryOperator::StringConcat, Some(JsonKind::Jsonb)) => "jsonb_concat",
            (BinaryOperator::Minus, Some(JsonKind::Jsonb))
                if expr.right.get_type(schema).is_ok_and(|t| is_text(&t)) =>
            {
                "jsonb_delete"
            }
            (BinaryOperator::StringConcat, Some(JsonKind::Json)) => {
                // json has no `||`: text's, as PostgreSQL resolves it.
                return Ok(PlannerResult::Original(expr));
            }
            (op, l) if l.is_some() || right.is_some() => {
                let comparison = is_comparison(op);
                // jsonb compares with jsonb (or an untyped literal, which
                // reads as jsonb); json has no comparison operators.
                let jsonb_side = |e: &Expr, k: Option<JsonKind>| match k {
                    Some(k) => k == JsonKind::Jsonb,
                    None => e.get_type(schema).is_ok_and(|t| is_text(&t) || t.is_null()),
                };
                if comparison && jsonb_side(&expr.left, l) && jsonb_side(&expr.right, right) {
                    if matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) {
                        let f = if matches!(op, BinaryOperator::Eq) {
                            "jsonb_eq"
                        } else {
                            "jsonb_ne"
                        };
                        return call(f, vec![expr.left, expr.right]).map(PlannerResult::Planned);
                    }
                    return Err(df(TemporaError::not_supported(
                        "ordering comparisons (<, <=, >, >=) of jsonb values",
                    )));
                }
                return Err(no_operator(
                    &expr,
                    schema,
                    [l.map(JsonKind::name), right.map(JsonKind::name)],
                ));
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        call(name, vec![expr.left, expr.right]).map(PlannerResult::Planned)
    }
}

/// Whether `op` compares its operands.
pub(crate) fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// PostgreSQL's 42883 for `left op right`, each operand named by `typed`
/// (its json or uuid type) or else by its Arrow type.
fn no_operator(
    expr: &RawBinaryExpr,
    schema: &DFSchema,
    typed: [Option<&str>; 2],
) -> datafusion::error::DataFusionError {
    let name_of = |e: &Expr, typed: Option<&str>| match typed {
        Some(t) => t.to_string(),
        None => e
            .get_type(schema)
            .map(|t| crate::pg_types::pg_type_name(&t).to_string())
            .unwrap_or_else(|_| "unknown".into()),
    };
    df(TemporaError::new(
        SqlState::UNDEFINED_FUNCTION,
        format!(
            "operator does not exist: {} {} {}",
            name_of(&expr.left, typed[0]),
            expr.op,
            name_of(&expr.right, typed[1])
        ),
    )
    .with_hint(
        "No operator matches the given name and argument types. You might need to add explicit type casts.",
    ))
}

/// An operator with a uuid operand: comparisons read the other side as a
/// uuid (`id = 'A0EEBC99-...'` matches the stored lowercase text); uuids
/// have no other operators.
fn uuid_operator(
    mut expr: RawBinaryExpr,
    schema: &DFSchema,
    left: bool,
    right: bool,
) -> Result<PlannerResult<RawBinaryExpr>> {
    let comparison = is_comparison(&expr.op);
    let textual = |e: &Expr| e.get_type(schema).is_ok_and(|t| is_text(&t) || t.is_null());
    if comparison && (left || textual(&expr.left)) && (right || textual(&expr.right)) {
        if !left {
            expr.left = call("uuid", vec![expr.left])?;
        }
        if !right {
            expr.right = call("uuid", vec![expr.right])?;
        }
        return Ok(PlannerResult::Original(expr));
    }
    let uuid = |is: bool| is.then_some("uuid");
    Err(no_operator(&expr, schema, [uuid(left), uuid(right)]))
}

/// `tempora_plain(x)`: `x` without the marker of a type kept as text. The
/// rows of a VALUES list must agree on their columns' metadata, and a
/// `'{}'::jsonb` beside a NULL or a parameter would not.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PlainValue {
    signature: Signature,
}

impl ScalarUDFImpl for PlainValue {
    fn name(&self) -> &str {
        "tempora_plain"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Null))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let (t, nullable) = args.arg_fields.first().map_or((DataType::Null, true), |f| {
            (f.data_type().clone(), f.is_nullable())
        });
        Ok(Arc::new(Field::new(self.name(), t, nullable)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        args.args
            .into_iter()
            .next()
            .ok_or_else(|| df(TemporaError::internal("tempora_plain takes a value")))
    }
}

/// The `tempora_plain` function.
pub fn plain_value_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PlainValue {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// `gen_random_uuid()`: a random (version 4) uuid.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GenRandomUuid {
    signature: Signature,
}

impl ScalarUDFImpl for GenRandomUuid {
    fn name(&self) -> &str {
        "gen_random_uuid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(uuid_field(self.name())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values: datafusion::arrow::array::StringArray = (0..args.number_rows.max(1))
            .map(|_| Some(uuid::Uuid::new_v4().hyphenated().to_string()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(values)))
    }
}

/// The `gen_random_uuid` function.
pub fn gen_random_uuid_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(GenRandomUuid {
        signature: Signature::nullary(Volatility::Volatile),
    })
}

/// A call of this module's function `name`.
fn call(name: &str, args: Vec<Expr>) -> Result<Expr> {
    let f = json_udfs()
        .into_iter()
        .find(|f| f.name() == name)
        .ok_or_else(|| df(TemporaError::internal(format!("json function {name}"))))?;
    Ok(Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(f),
        args,
    )))
}

/// Casts of json and jsonb values: to text, the same text no longer typed
/// json; to numbers and boolean, the value a jsonb number or boolean holds
/// (PostgreSQL's casts of jsonb), through [`cast_value`]. Sorting by a
/// json value is refused: PostgreSQL orders jsonb by its own rules (objects
/// after arrays after booleans after numbers ...), not as text.
#[derive(Debug)]
pub struct JsonCasts;

impl datafusion::optimizer::AnalyzerRule for JsonCasts {
    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        use datafusion::common::tree_node::Transformed;
        use datafusion::logical_expr::{Cast, LogicalPlan};
        let kind_of =
            |e: &Expr, schema: &DFSchema| e.to_field(schema).ok().and_then(|(_, f)| json_kind(&f));
        let typed_text = |e: &Expr, schema: &DFSchema| {
            e.to_field(schema)
                .ok()
                .is_some_and(|(_, f)| text_type(&f).is_some())
        };
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::Aggregate(agg) = node {
                for e in &agg.aggr_expr {
                    let mut found = None;
                    datafusion::common::tree_node::TreeNode::apply(e, |e| {
                        if let Expr::AggregateFunction(f) = e {
                            let name = f.func.name();
                            if matches!(name, "min" | "max") {
                                if let Some(k) = f.params.args.first().and_then(|a| kind_of(a, agg.input.schema())) {
                                    found = Some((name.to_string(), k));
                                }
                            }
                        }
                        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                    })?;
                    if let Some((name, k)) = found {
                        return Err(df(TemporaError::new(
                            SqlState::UNDEFINED_FUNCTION,
                            format!("function {name}({}) does not exist", k.name()),
                        )
                        .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.")));
                    }
                }
            }
            if let LogicalPlan::Sort(sort) = node {
                let schema = sort.input.schema();
                if sort.expr.iter().any(|s| kind_of(&s.expr, schema).is_some()) {
                    return Err(df(TemporaError::not_supported(
                        "ORDER BY a json or jsonb value (cast it to text to sort by its text)",
                    )));
                }
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })?;
        // Most plans cast no json value: look before rewriting every node.
        let mut json_casts = false;
        plan.apply_with_subqueries(|node| {
            let mut schema: Option<DFSchema> = None;
            node.apply_expressions(|e| {
                datafusion::common::tree_node::TreeNode::apply(e, |e| {
                    let candidate = match e {
                        Expr::Cast(Cast { expr, .. }) => Some(expr.as_ref()),
                        Expr::InList(list) => Some(list.expr.as_ref()),
                        _ => None,
                    };
                    if let Some(expr) = candidate {
                        let schema = schema.get_or_insert_with(|| {
                            let mut merged = DFSchema::empty();
                            let inputs = node.inputs();
                            if inputs.is_empty() {
                                merged = node.schema().as_ref().clone();
                            }
                            for input in inputs {
                                merged.merge(input.schema());
                            }
                            merged
                        });
                        json_casts |= typed_text(expr, schema);
                    }
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })
            })?;
            Ok(match json_casts {
                true => datafusion::common::tree_node::TreeNodeRecursion::Stop,
                false => datafusion::common::tree_node::TreeNodeRecursion::Continue,
            })
        })?;
        if !json_casts {
            return Ok(plan);
        }
        let changed = std::cell::Cell::new(false);
        let plan = crate::pg_casts::rewrite_plan_exprs(plan, |e, schema| {
            if let Expr::InList(list) = &e {
                // `id IN ('A0EE...', ...)` reads the list as uuids.
                let uuid = list
                    .expr
                    .to_field(schema)
                    .ok()
                    .is_some_and(|(_, f)| is_uuid(&f));
                if !uuid {
                    return Ok(Transformed::no(e));
                }
                let mut list = list.clone();
                list.list = list
                    .list
                    .into_iter()
                    .map(|item| call("uuid", vec![item]))
                    .collect::<Result<_>>()?;
                changed.set(true);
                return Ok(Transformed::yes(Expr::InList(list)));
            }
            let Expr::Cast(Cast { expr, field }) = &e else {
                return Ok(Transformed::no(e));
            };
            if !typed_text(expr, schema) {
                return Ok(Transformed::no(e));
            }
            let Some(kind) = kind_of(expr, schema) else {
                // A uuid cast to text is text.
                if is_text(field.data_type()) && text_type(field).is_none() {
                    changed.set(true);
                    return Ok(Transformed::yes(call(
                        "json_as_text",
                        vec![expr.as_ref().clone()],
                    )?));
                }
                return Ok(Transformed::no(e));
            };
            let target = field.data_type();
            if is_text(target) {
                if text_type(field).is_some() {
                    return Ok(Transformed::no(e));
                }
                changed.set(true);
                return Ok(Transformed::yes(call(
                    "json_as_text",
                    vec![expr.as_ref().clone()],
                )?));
            }
            // The types PostgreSQL casts jsonb to (besides text).
            let name = crate::pg_types::pg_type_name(target);
            if !matches!(
                name,
                "boolean"
                    | "smallint"
                    | "integer"
                    | "bigint"
                    | "real"
                    | "double precision"
                    | "numeric"
            ) {
                return Ok(Transformed::no(e));
            }
            if kind == JsonKind::Json {
                return Err(df(TemporaError::new(
                    SqlState::CANNOT_COERCE,
                    format!("cannot cast type json to {name}"),
                )));
            }
            let value = call(
                "jsonb_cast_value",
                vec![
                    expr.as_ref().clone(),
                    Expr::Literal(ScalarValue::Utf8(Some(name.into())), None),
                ],
            )?;
            changed.set(true);
            Ok(Transformed::yes(Expr::Cast(Cast {
                expr: Box::new(value),
                field: field.clone(),
            })))
        })?;
        if !changed.get() {
            return Ok(plan);
        }
        // The nodes' schemas name the new expressions' fields (text, not json).
        plan.transform_up_with_subqueries(|p| p.recompute_schema().map(Transformed::yes))
            .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "json_casts"
    }
}
