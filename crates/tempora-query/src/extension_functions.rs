//! TimescaleDB's functions that Tempora implements, as `pg_proc` lists them
//! once `CREATE EXTENSION timescaledb` has run: in the `public` schema, with
//! TimescaleDB's argument names, types and defaults, so that psql's `\df`,
//! `\df time_bucket` and the function browsers of BI tools show them as
//! they show TimescaleDB's.
//!
//! Each overload is written once as a signature
//! (`name(arg type [= default], ...) result`); `pg_get_function_arguments`
//! and `pg_get_function_result` print it back as PostgreSQL prints a
//! function's arguments (`older_than "any" DEFAULT NULL::unknown`).
//! Functions Tempora refuses (`add_job`, tablespaces, reorder policies and
//! merging) are not listed.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    new_null_array, ArrayRef, BooleanArray, Float32Array, Int16Array, Int32Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result as DfResult;

/// `pg_proc.prokind`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Function,
    Aggregate,
    Procedure,
}

/// One overload: `(kind, signature)`.
const SIGNATURES: &[(Kind, &str)] = {
    use Kind::{Aggregate as A, Function as F, Procedure as P};
    &[
        // Hypertables and dimensions.
        (F, "create_hypertable(relation regclass, time_column_name name, partitioning_column name = NULL, number_partitions integer = NULL, associated_schema_name name = NULL, associated_table_prefix name = NULL, chunk_time_interval anyelement = NULL::bigint, create_default_indexes boolean = true, if_not_exists boolean = false, partitioning_func regproc = NULL, migrate_data boolean = false, time_partitioning_func regproc = NULL) TABLE(hypertable_id integer, schema_name name, table_name name, created boolean)"),
        (F, "create_hypertable(relation regclass, dimension _timescaledb_internal.dimension_info, create_default_indexes boolean = true, if_not_exists boolean = false, migrate_data boolean = false) TABLE(hypertable_id integer, created boolean)"),
        (F, "by_range(column_name name, partition_interval anyelement = NULL::bigint, partition_func regproc = NULL) _timescaledb_internal.dimension_info"),
        (F, "by_hash(column_name name, number_partitions integer, partition_func regproc = NULL) _timescaledb_internal.dimension_info"),
        (F, "add_dimension(hypertable regclass, column_name name, number_partitions integer = NULL, chunk_time_interval anyelement = NULL::bigint, partitioning_func regproc = NULL, if_not_exists boolean = false) TABLE(dimension_id integer, schema_name name, table_name name, column_name name, created boolean)"),
        (F, "add_dimension(hypertable regclass, dimension _timescaledb_internal.dimension_info, if_not_exists boolean = false) TABLE(dimension_id integer, created boolean)"),
        (F, "set_chunk_time_interval(hypertable regclass, chunk_time_interval anyelement, dimension_name name = NULL) void"),
        (F, "set_number_partitions(hypertable regclass, number_partitions integer, dimension_name name = NULL) void"),
        // Chunks.
        (F, "show_chunks(relation regclass, older_than \"any\" = NULL, newer_than \"any\" = NULL, created_before \"any\" = NULL, created_after \"any\" = NULL) SETOF regclass"),
        (F, "drop_chunks(relation regclass, older_than \"any\" = NULL, newer_than \"any\" = NULL, verbose boolean = false, created_before \"any\" = NULL, created_after \"any\" = NULL) SETOF text"),
        (F, "compress_chunk(uncompressed_chunk regclass, if_not_compressed boolean = true, recompress boolean = false) regclass"),
        (F, "decompress_chunk(uncompressed_chunk regclass, if_compressed boolean = true) regclass"),
        (F, "reorder_chunk(chunk regclass, index regclass = NULL, verbose boolean = false) void"),
        (P, "convert_to_columnstore(chunk regclass, if_not_columnstore boolean = true, recompress boolean = false)"),
        (P, "convert_to_rowstore(chunk regclass, if_columnstore boolean = true)"),
        // Sizes and statistics.
        (F, "hypertable_size(hypertable regclass) bigint"),
        (F, "hypertable_detailed_size(hypertable regclass) TABLE(table_bytes bigint, index_bytes bigint, toast_bytes bigint, total_bytes bigint, node_name name)"),
        (F, "chunks_detailed_size(hypertable regclass) TABLE(chunk_schema name, chunk_name name, table_bytes bigint, index_bytes bigint, toast_bytes bigint, total_bytes bigint, node_name name)"),
        (F, "approximate_row_count(relation regclass) bigint"),
        (F, "hypertable_compression_stats(hypertable regclass) TABLE(total_chunks bigint, number_compressed_chunks bigint, before_compression_table_bytes bigint, before_compression_index_bytes bigint, before_compression_toast_bytes bigint, before_compression_total_bytes bigint, after_compression_table_bytes bigint, after_compression_index_bytes bigint, after_compression_toast_bytes bigint, after_compression_total_bytes bigint, node_name name)"),
        (F, "hypertable_columnstore_stats(hypertable regclass) TABLE(total_chunks bigint, number_compressed_chunks bigint, before_compression_table_bytes bigint, before_compression_index_bytes bigint, before_compression_toast_bytes bigint, before_compression_total_bytes bigint, after_compression_table_bytes bigint, after_compression_index_bytes bigint, after_compression_toast_bytes bigint, after_compression_total_bytes bigint, node_name name)"),
        (F, "chunk_compression_stats(hypertable regclass) TABLE(chunk_schema name, chunk_name name, compression_status text, before_compression_table_bytes bigint, before_compression_index_bytes bigint, before_compression_toast_bytes bigint, before_compression_total_bytes bigint, after_compression_table_bytes bigint, after_compression_index_bytes bigint, after_compression_toast_bytes bigint, after_compression_total_bytes bigint, node_name name)"),
        (F, "chunk_columnstore_stats(hypertable regclass) TABLE(chunk_schema name, chunk_name name, compression_status text, before_compression_table_bytes bigint, before_compression_index_bytes bigint, before_compression_toast_bytes bigint, before_compression_total_bytes bigint, after_compression_table_bytes bigint, after_compression_index_bytes bigint, after_compression_toast_bytes bigint, after_compression_total_bytes bigint, node_name name)"),
        // Policies and jobs.
        (F, "add_compression_policy(hypertable regclass, compress_after \"any\" = NULL, if_not_exists boolean = false, schedule_interval interval = NULL, initial_start timestamptz = NULL, timezone text = NULL, compress_created_before interval = NULL) integer"),
        (F, "remove_compression_policy(hypertable regclass, if_exists boolean = false) boolean"),
        (P, "add_columnstore_policy(hypertable regclass, after \"any\" = NULL, if_not_exists boolean = false, schedule_interval interval = NULL, initial_start timestamptz = NULL, timezone text = NULL, created_before interval = NULL)"),
        (P, "remove_columnstore_policy(hypertable regclass, if_exists boolean = false)"),
        (F, "add_retention_policy(relation regclass, drop_after \"any\" = NULL, if_not_exists boolean = false, schedule_interval interval = NULL, initial_start timestamptz = NULL, timezone text = NULL, drop_created_before interval = NULL) integer"),
        (F, "remove_retention_policy(relation regclass, if_exists boolean = false) void"),
        (F, "add_continuous_aggregate_policy(continuous_aggregate regclass, start_offset \"any\", end_offset \"any\", schedule_interval interval, if_not_exists boolean = false, initial_start timestamptz = NULL, timezone text = NULL, include_tiered_data boolean = NULL, buckets_per_batch integer = NULL, max_batches_per_execution integer = NULL, refresh_newest_first boolean = NULL) integer"),
        (F, "remove_continuous_aggregate_policy(continuous_aggregate regclass, if_not_exists boolean = false, if_exists boolean = NULL) void"),
        (P, "refresh_continuous_aggregate(continuous_aggregate regclass, window_start \"any\", window_end \"any\", force boolean = false, options jsonb = NULL)"),
        (F, "alter_job(job_id integer, schedule_interval interval = NULL, max_runtime interval = NULL, max_retries integer = NULL, retry_period interval = NULL, scheduled boolean = NULL, config jsonb = NULL, next_start timestamptz = NULL, if_exists boolean = false, check_config regproc = NULL, fixed_schedule boolean = NULL, initial_start timestamptz = NULL, timezone text = NULL, job_name text = NULL, config_merge jsonb = NULL) TABLE(job_id integer, schedule_interval interval, max_runtime interval, max_retries integer, retry_period interval, scheduled boolean, config jsonb, next_start timestamptz, check_config text, fixed_schedule boolean, initial_start timestamptz, timezone text, application_name name)"),
        (F, "delete_job(job_id integer) void"),
        (P, "run_job(job_id integer)"),
        // time_bucket and gapfill.
        (F, "time_bucket(bucket_width interval, ts timestamp) timestamp"),
        (F, "time_bucket(bucket_width interval, ts timestamptz) timestamptz"),
        (F, "time_bucket(bucket_width interval, ts date) date"),
        (F, "time_bucket(bucket_width interval, ts timestamp, origin timestamp) timestamp"),
        (F, "time_bucket(bucket_width interval, ts timestamptz, origin timestamptz) timestamptz"),
        (F, "time_bucket(bucket_width interval, ts date, origin date) date"),
        (F, "time_bucket(bucket_width interval, ts timestamp, \"offset\" interval) timestamp"),
        (F, "time_bucket(bucket_width interval, ts timestamptz, \"offset\" interval) timestamptz"),
        (F, "time_bucket(bucket_width interval, ts date, \"offset\" interval) date"),
        (F, "time_bucket(bucket_width interval, ts timestamptz, timezone text, origin timestamptz = NULL, \"offset\" interval = NULL) timestamptz"),
        (F, "time_bucket(bucket_width smallint, ts smallint) smallint"),
        (F, "time_bucket(bucket_width integer, ts integer) integer"),
        (F, "time_bucket(bucket_width bigint, ts bigint) bigint"),
        (F, "time_bucket(bucket_width smallint, ts smallint, \"offset\" smallint) smallint"),
        (F, "time_bucket(bucket_width integer, ts integer, \"offset\" integer) integer"),
        (F, "time_bucket(bucket_width bigint, ts bigint, \"offset\" bigint) bigint"),
        (F, "time_bucket_gapfill(bucket_width smallint, ts smallint, start smallint = NULL, finish smallint = NULL) smallint"),
        (F, "time_bucket_gapfill(bucket_width integer, ts integer, start integer = NULL, finish integer = NULL) integer"),
        (F, "time_bucket_gapfill(bucket_width bigint, ts bigint, start bigint = NULL, finish bigint = NULL) bigint"),
        (F, "time_bucket_gapfill(bucket_width interval, ts date, start date = NULL, finish date = NULL) date"),
        (F, "time_bucket_gapfill(bucket_width interval, ts timestamp, start timestamp = NULL, finish timestamp = NULL) timestamp"),
        (F, "time_bucket_gapfill(bucket_width interval, ts timestamptz, start timestamptz = NULL, finish timestamptz = NULL) timestamptz"),
        (F, "time_bucket_gapfill(bucket_width interval, ts timestamptz, timezone text, start timestamptz = NULL, finish timestamptz = NULL) timestamptz"),
        (F, "locf(value anyelement, prev anyelement = NULL, treat_null_as_missing boolean = false) anyelement"),
        (F, "interpolate(value smallint, prev record = NULL, next record = NULL) smallint"),
        (F, "interpolate(value integer, prev record = NULL, next record = NULL) integer"),
        (F, "interpolate(value bigint, prev record = NULL, next record = NULL) bigint"),
        (F, "interpolate(value real, prev record = NULL, next record = NULL) real"),
        (F, "interpolate(value double precision, prev record = NULL, next record = NULL) double precision"),
        // Aggregates.
        (A, "first(anyelement, \"any\") anyelement"),
        (A, "last(anyelement, \"any\") anyelement"),
        (A, "histogram(double precision, double precision, double precision, integer) integer[]"),
        // New ones go last: a function's oid is its position.
        (F, "hypertable_index_size(index_name regclass) bigint"),
    ]
};

/// The first oid of the listed functions: above the built-in catalog's
/// and the extensions' (13500...), below the first user object's (16384).
const FIRST_OID: i32 = 14_000;

/// A type as signatures write it: its oid and its name as `format_type`
/// prints it.
fn sql_type(name: &'static str) -> (i32, &'static str) {
    match name {
        "boolean" => (16, "boolean"),
        "name" => (19, "name"),
        "bigint" => (20, "bigint"),
        "smallint" => (21, "smallint"),
        "integer" => (23, "integer"),
        "regproc" => (24, "regproc"),
        "text" => (25, "text"),
        "real" => (700, "real"),
        "double precision" => (701, "double precision"),
        "date" => (1082, "date"),
        "timestamp" => (1114, "timestamp without time zone"),
        "timestamptz" => (1184, "timestamp with time zone"),
        "interval" => (1186, "interval"),
        "integer[]" => (1007, "integer[]"),
        "regclass" => (2205, "regclass"),
        "record" => (2249, "record"),
        "\"any\"" => (2276, "\"any\""),
        "void" => (2278, "void"),
        "anyelement" => (2283, "anyelement"),
        "jsonb" => (3802, "jsonb"),
        // A composite type of the extension's internal schema, which
        // Tempora's pg_type does not list.
        "_timescaledb_internal.dimension_info" => (0, "_timescaledb_internal.dimension_info"),
        // Not reached: the unit tests check every signature's types.
        other => (0, other),
    }
}

/// One argument: name (empty for an aggregate's), type, default.
struct Argument {
    name: &'static str,
    ty: &'static str,
    default: Option<&'static str>,
}

/// One listed function.
pub(crate) struct ExtensionFunction {
    oid: i32,
    name: &'static str,
    kind: Kind,
    arguments: Vec<Argument>,
    /// `SETOF x`, `TABLE(...)`, a type, or empty for a procedure.
    result: &'static str,
}

/// Splits `a, b(c, d), e` at the commas outside parentheses.
fn split_top_level(text: &'static str) -> Vec<&'static str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() {
        parts.push(last);
    }
    parts
}

/// Reads one signature of [`SIGNATURES`].
fn parse(oid: i32, kind: Kind, signature: &'static str) -> ExtensionFunction {
    let open = signature.find('(').expect("signature has arguments");
    let name = &signature[..open];
    // The argument list closes at the parenthesis matching `open`.
    let mut depth = 0usize;
    let close = signature[open..]
        .char_indices()
        .find_map(|(i, c)| {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(open + i);
                    }
                }
                _ => {}
            }
            None
        })
        .expect("signature's argument list closes");
    let arguments = split_top_level(&signature[open + 1..close])
        .into_iter()
        .map(|arg| {
            let (decl, default) = match arg.split_once(" = ") {
                Some((d, v)) => (d.trim(), Some(v.trim())),
                None => (arg, None),
            };
            // An aggregate's arguments are types alone.
            if kind == Kind::Aggregate {
                return Argument {
                    name: "",
                    ty: decl,
                    default,
                };
            }
            let (name, ty) = decl
                .split_once(' ')
                .expect("argument has a name and a type");
            Argument { name, ty, default }
        })
        .collect();
    ExtensionFunction {
        oid,
        name,
        kind,
        arguments,
        result: signature[close + 1..].trim(),
    }
}

/// Every listed function, read once.
pub(crate) fn extension_functions() -> &'static [ExtensionFunction] {
    static FUNCTIONS: LazyLock<Vec<ExtensionFunction>> = LazyLock::new(|| {
        SIGNATURES
            .iter()
            .enumerate()
            .map(|(i, (kind, sig))| parse(FIRST_OID + i as i32, *kind, sig))
            .collect()
    });
    &FUNCTIONS
}

/// The listed function with this oid.
pub(crate) fn by_oid(oid: i64) -> Option<&'static ExtensionFunction> {
    let index = usize::try_from(oid - i64::from(FIRST_OID)).ok()?;
    extension_functions().get(index)
}

impl ExtensionFunction {
    /// `pg_get_function_arguments`: `bucket_width interval, ts timestamp
    /// with time zone, "offset" interval DEFAULT NULL::interval`;
    /// procedures' arguments carry their mode (`IN job_id integer`).
    pub(crate) fn arguments_text(&self) -> String {
        self.arguments
            .iter()
            .map(|a| {
                let ty = sql_type(a.ty).1;
                let mut out = String::new();
                if self.kind == Kind::Procedure {
                    out.push_str("IN ");
                }
                if !a.name.is_empty() {
                    out.push_str(a.name);
                    out.push(' ');
                }
                out.push_str(ty);
                match a.default {
                    // PostgreSQL keeps a bare NULL as a NULL of the
                    // argument's type, `unknown` for the polymorphic ones.
                    Some("NULL") => {
                        let cast = match a.ty {
                            "\"any\"" | "anyelement" => "unknown",
                            _ => ty,
                        };
                        out.push_str(&format!(" DEFAULT NULL::{cast}"));
                    }
                    Some(v) => out.push_str(&format!(" DEFAULT {v}")),
                    None => {}
                }
                out
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `pg_get_function_result`: NULL for a procedure.
    pub(crate) fn result_text(&self) -> Option<String> {
        if self.kind == Kind::Procedure {
            return None;
        }
        let columns = self.table_columns();
        if !columns.is_empty() {
            let columns: Vec<String> = columns
                .iter()
                .map(|(name, ty)| format!("{name} {}", sql_type(ty).1))
                .collect();
            return Some(format!("TABLE({})", columns.join(", ")));
        }
        Some(match self.result.strip_prefix("SETOF ") {
            Some(ty) => format!("SETOF {}", sql_type(ty).1),
            None => sql_type(self.result).1.to_string(),
        })
    }

    fn returns_set(&self) -> bool {
        self.result.starts_with("SETOF ") || self.result.starts_with("TABLE(")
    }

    fn return_type(&self) -> i32 {
        match self.kind {
            Kind::Procedure => 0,
            _ if self.result.starts_with("TABLE(") => sql_type("record").0,
            _ => sql_type(self.result.trim_start_matches("SETOF ")).0,
        }
    }

    /// `proargtypes`: the input arguments' type oids, space-separated.
    fn argument_types(&self) -> String {
        self.arguments
            .iter()
            .map(|a| sql_type(a.ty).0.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `proargnames` as the emulation writes it (`['a', 'b']`), with the
    /// result columns of a `TABLE(...)` function after the arguments.
    fn argument_names(&self) -> Option<String> {
        if self.kind == Kind::Aggregate {
            return None;
        }
        let mut names: Vec<String> = self.arguments.iter().map(|a| a.name.to_string()).collect();
        names.extend(self.table_columns().into_iter().map(|(n, _)| n.to_string()));
        Some(format!(
            "[{}]",
            names
                .iter()
                .map(|n| format!("'{}'", n.trim_matches('"')))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    fn table_columns(&self) -> Vec<(&'static str, &'static str)> {
        self.result
            .strip_prefix("TABLE(")
            .and_then(|r| r.strip_suffix(')'))
            .map(|cols| {
                split_top_level(cols)
                    .into_iter()
                    .filter_map(|c| c.split_once(' '))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `proallargtypes` and `proargmodes`, for functions returning a table.
    fn all_arguments(&self) -> Option<(String, String)> {
        let columns = self.table_columns();
        if columns.is_empty() {
            return None;
        }
        let types: Vec<String> = self
            .arguments
            .iter()
            .map(|a| sql_type(a.ty).0)
            .chain(columns.iter().map(|(_, ty)| sql_type(ty).0))
            .map(|o| o.to_string())
            .collect();
        let modes: Vec<&str> = self
            .arguments
            .iter()
            .map(|_| "'i'")
            .chain(columns.iter().map(|_| "'t'"))
            .collect();
        Some((
            format!("[{}]", types.join(", ")),
            format!("[{}]", modes.join(", ")),
        ))
    }
}

/// One row of `pg_proc`, whoever made the function.
struct ProcRow {
    oid: i32,
    name: String,
    namespace: u32,
    /// `prolang`: 13 C, 14 SQL.
    language: i32,
    kind: &'static str,
    strict: bool,
    returns_set: bool,
    volatility: String,
    parallel: &'static str,
    nargs: i16,
    nargdefaults: i16,
    return_type: i32,
    argument_types: String,
    all_arguments: Option<(String, String)>,
    argument_names: Option<String>,
    source: String,
    binary: Option<String>,
}

impl ProcRow {
    fn of_extension(f: &ExtensionFunction) -> Self {
        let immutable = matches!(
            f.name,
            "time_bucket" | "time_bucket_gapfill" | "locf" | "interpolate"
        ) || f.kind == Kind::Aggregate;
        let parallel_safe =
            matches!(f.name, "time_bucket" | "time_bucket_gapfill") || f.kind == Kind::Aggregate;
        let all = f.all_arguments();
        Self {
            oid: f.oid,
            name: f.name.to_string(),
            namespace: crate::pg_relations::PUBLIC_NAMESPACE,
            language: 13,
            kind: match f.kind {
                Kind::Function => "f",
                Kind::Aggregate => "a",
                Kind::Procedure => "p",
            },
            strict: f.name == "time_bucket",
            returns_set: f.returns_set(),
            volatility: if immutable { "i" } else { "v" }.into(),
            parallel: if parallel_safe { "s" } else { "u" },
            nargs: f.arguments.len() as i16,
            nargdefaults: f.arguments.iter().filter(|a| a.default.is_some()).count() as i16,
            return_type: f.return_type(),
            argument_types: f.argument_types(),
            all_arguments: all,
            argument_names: f.argument_names(),
            source: f.name.to_string(),
            binary: Some("$libdir/timescaledb".into()),
        }
    }

    fn of_sql(f: &tempora_catalog::FunctionDef) -> Self {
        let named = f.args.iter().any(|a| a.name.is_some());
        Self {
            oid: f.oid as i32,
            name: f.name.clone(),
            namespace: crate::pg_relations::namespace_oid(&f.schema),
            language: 14,
            kind: "f",
            strict: f.strict,
            returns_set: false,
            volatility: f.volatility.to_string(),
            parallel: "u",
            nargs: f.args.len() as i16,
            nargdefaults: f.args.iter().filter(|a| a.default.is_some()).count() as i16,
            return_type: f.return_oid as i32,
            argument_types: f
                .args
                .iter()
                .map(|a| a.type_oid.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            all_arguments: None,
            argument_names: named.then(|| {
                let names: Vec<String> = f
                    .args
                    .iter()
                    .map(|a| format!("'{}'", a.name.as_deref().unwrap_or("")))
                    .collect();
                format!("[{}]", names.join(", "))
            }),
            source: f.source.clone(),
            binary: None,
        }
    }
}

/// The listed functions as rows of `pg_proc` (whose columns the built-in
/// emulation defines: `schema`), in the `public` schema.
pub(crate) fn pg_proc_rows(schema: &SchemaRef) -> DfResult<RecordBatch> {
    let rows: Vec<ProcRow> = extension_functions()
        .iter()
        .map(ProcRow::of_extension)
        .collect();
    proc_rows(schema, &rows)
}

/// The SQL functions of the catalog (`CREATE FUNCTION`) as rows of `pg_proc`.
pub(crate) fn sql_function_rows(
    schema: &SchemaRef,
    state: &tempora_catalog::CatalogState,
) -> DfResult<RecordBatch> {
    let rows: Vec<ProcRow> = state.functions.values().map(ProcRow::of_sql).collect();
    proc_rows(schema, &rows)
}

fn proc_rows(schema: &SchemaRef, rows: &[ProcRow]) -> DfResult<RecordBatch> {
    let n = rows.len();
    let int = |f: &dyn Fn(&ProcRow) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(rows.iter().map(f)))
    };
    let small = |f: &dyn Fn(&ProcRow) -> i16| -> ArrayRef {
        Arc::new(Int16Array::from_iter_values(rows.iter().map(f)))
    };
    let text = |f: &dyn Fn(&ProcRow) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(f)))
    };
    let flag = |f: &dyn Fn(&ProcRow) -> bool| -> ArrayRef {
        Arc::new(BooleanArray::from_iter(rows.iter().map(|x| Some(f(x)))))
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column: ArrayRef = match field.name().as_str() {
                "oid" => int(&|r| r.oid),
                "proname" => text(&|r| Some(r.name.clone())),
                "pronamespace" => int(&|r| r.namespace as i32),
                "proowner" => int(&|_| 10),
                "prolang" => int(&|r| r.language),
                "procost" => Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| {
                    if r.language == 14 {
                        100.0
                    } else {
                        1.0
                    }
                }))),
                "prorows" => Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| {
                    if r.returns_set {
                        1000.0
                    } else {
                        0.0
                    }
                }))),
                "provariadic" => int(&|_| 0),
                "prosupport" => text(&|_| Some("-".into())),
                "prokind" => text(&|r| Some(r.kind.into())),
                "prosecdef" | "proleakproof" => flag(&|_| false),
                "proisstrict" => flag(&|r| r.strict),
                "proretset" => flag(&|r| r.returns_set),
                "provolatile" => text(&|r| Some(r.volatility.clone())),
                "proparallel" => text(&|r| Some(r.parallel.into())),
                "pronargs" => small(&|r| r.nargs),
                "pronargdefaults" => small(&|r| r.nargdefaults),
                "prorettype" => int(&|r| r.return_type),
                "proargtypes" => text(&|r| Some(r.argument_types.clone())),
                "proallargtypes" => text(&|r| r.all_arguments.as_ref().map(|(t, _)| t.clone())),
                "proargmodes" => text(&|r| r.all_arguments.as_ref().map(|(_, m)| m.clone())),
                "proargnames" => text(&|r| r.argument_names.clone()),
                "prosrc" => text(&|r| Some(r.source.clone())),
                "probin" => text(&|r| r.binary.clone()),
                _ => new_null_array(field.data_type(), n),
            };
            // Keep the emulation's column types where they differ.
            if column.data_type() != field.data_type() {
                return Ok(datafusion::arrow::compute::cast(
                    &column,
                    field.data_type(),
                )?);
            }
            Ok(column)
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signature_reads() {
        for f in extension_functions() {
            let types = f.arguments.iter().map(|a| a.ty);
            let columns = f.table_columns().into_iter().map(|(_, ty)| ty);
            let result = (!f.result.is_empty() && !f.result.starts_with("TABLE("))
                .then(|| f.result.trim_start_matches("SETOF "));
            for ty in types.chain(columns).chain(result) {
                assert!(
                    sql_type(ty).0 != 0 || ty == "_timescaledb_internal.dimension_info",
                    "{}: unknown type {ty}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn prints_as_postgresql_does() {
        let tz = extension_functions()
            .iter()
            .find(|f| f.name == "time_bucket" && f.arguments.len() == 5)
            .unwrap();
        assert_eq!(
            tz.arguments_text(),
            "bucket_width interval, ts timestamp with time zone, timezone text, \
             origin timestamp with time zone DEFAULT NULL::timestamp with time zone, \
             \"offset\" interval DEFAULT NULL::interval"
        );
        assert_eq!(tz.result_text().unwrap(), "timestamp with time zone");
        let show = extension_functions()
            .iter()
            .find(|f| f.name == "show_chunks")
            .unwrap();
        assert_eq!(
            show.arguments_text(),
            "relation regclass, older_than \"any\" DEFAULT NULL::unknown, \
             newer_than \"any\" DEFAULT NULL::unknown, created_before \"any\" DEFAULT NULL::unknown, \
             created_after \"any\" DEFAULT NULL::unknown"
        );
        assert_eq!(show.result_text().unwrap(), "SETOF regclass");
        let run = extension_functions()
            .iter()
            .find(|f| f.name == "run_job")
            .unwrap();
        assert_eq!(run.arguments_text(), "IN job_id integer");
        assert_eq!(run.result_text(), None);
        let hist = extension_functions()
            .iter()
            .find(|f| f.name == "histogram")
            .unwrap();
        assert_eq!(
            hist.arguments_text(),
            "double precision, double precision, double precision, integer"
        );
        assert_eq!(hist.result_text().unwrap(), "integer[]");
    }
}
