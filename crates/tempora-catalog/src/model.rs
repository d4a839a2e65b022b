//! The catalog's data model: tables, their columns, hypertables and chunks.
//!
//! Everything here is plain data (serde) so that the state can be written as
//! log records and snapshots. The state only changes by applying a
//! [`CatalogOp`], which keeps replay after a restart identical to the live path.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};
use tempora_common::{Result, SqlState, TemporaError};

/// Object ids of user tables start here, as in PostgreSQL.
pub const FIRST_USER_OID: u32 = 16384;
/// The time zone Arrow timestamps of `timestamptz` columns carry.
pub const UTC: &str = "UTC";

/// A column type, as PostgreSQL names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// numeric(precision, scale); stored as Decimal128.
    Numeric {
        precision: u8,
        scale: i8,
    },
    Text,
    Varchar(Option<u32>),
    Timestamptz,
    Timestamp,
    Date,
    Bytea,
    /// Stored as its text ([`PG_TYPE_KEY`] marks the Arrow field).
    Json,
    /// Stored as the text PostgreSQL prints for it (tempora-copy's `json`).
    Jsonb,
    /// Stored as its canonical text (lowercase, 8-4-4-4-12), whose order is
    /// the values' order.
    Uuid,
}

/// Arrow field metadata naming the PostgreSQL type of a text column that is
/// not `text`: `json`, `jsonb` or `uuid`. Results carry it to the wire.
pub const PG_TYPE_KEY: &str = "tempora.pg_type";

impl PgType {
    /// The Arrow type a column of this type is stored as.
    pub fn arrow_type(&self) -> DataType {
        match self {
            PgType::Bool => DataType::Boolean,
            PgType::Int2 => DataType::Int16,
            PgType::Int4 => DataType::Int32,
            PgType::Int8 => DataType::Int64,
            PgType::Float4 => DataType::Float32,
            PgType::Float8 => DataType::Float64,
            PgType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            PgType::Text | PgType::Varchar(_) => DataType::Utf8,
            PgType::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            PgType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgType::Date => DataType::Date32,
            PgType::Bytea => DataType::Binary,
            PgType::Json | PgType::Jsonb | PgType::Uuid => DataType::Utf8,
        }
    }

    /// The Arrow field of a column of this type: [`PgType::arrow_type`],
    /// marked with [`PG_TYPE_KEY`] where that is text standing for another
    /// type.
    pub fn arrow_field(&self, name: &str) -> Field {
        let field = Field::new(name, self.arrow_type(), true);
        match self {
            PgType::Json | PgType::Jsonb | PgType::Uuid => field.with_metadata(
                [(PG_TYPE_KEY.to_string(), self.sql_name())]
                    .into_iter()
                    .collect(),
            ),
            _ => field,
        }
    }

    /// PostgreSQL's name for the type, as `format_type` prints it.
    pub fn sql_name(&self) -> String {
        match self {
            PgType::Bool => "boolean".into(),
            PgType::Int2 => "smallint".into(),
            PgType::Int4 => "integer".into(),
            PgType::Int8 => "bigint".into(),
            PgType::Float4 => "real".into(),
            PgType::Float8 => "double precision".into(),
            PgType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            PgType::Text => "text".into(),
            PgType::Varchar(None) => "character varying".into(),
            PgType::Varchar(Some(n)) => format!("character varying({n})"),
            PgType::Timestamptz => "timestamp with time zone".into(),
            PgType::Timestamp => "timestamp without time zone".into(),
            PgType::Date => "date".into(),
            PgType::Bytea => "bytea".into(),
            PgType::Json => "json".into(),
            PgType::Jsonb => "jsonb".into(),
            PgType::Uuid => "uuid".into(),
        }
    }

    /// PostgreSQL's type oid (`pg_type.oid`).
    pub fn oid(&self) -> u32 {
        match self {
            PgType::Bool => 16,
            PgType::Int2 => 21,
            PgType::Int4 => 23,
            PgType::Int8 => 20,
            PgType::Float4 => 700,
            PgType::Float8 => 701,
            PgType::Numeric { .. } => 1700,
            PgType::Text => 25,
            PgType::Varchar(_) => 1043,
            PgType::Timestamptz => 1184,
            PgType::Timestamp => 1114,
            PgType::Date => 1082,
            PgType::Bytea => 17,
            PgType::Json => 114,
            PgType::Jsonb => 3802,
            PgType::Uuid => 2950,
        }
    }

    /// The type modifier PostgreSQL records (`pg_attribute.atttypmod`):
    /// -1 where the type takes none.
    pub fn typmod(&self) -> i32 {
        match self {
            PgType::Numeric { precision, scale } => {
                ((i32::from(*precision) << 16) | (i32::from(*scale) & 0xffff)) + 4
            }
            PgType::Varchar(Some(n)) => i32::try_from(*n).map_or(-1, |n| n.saturating_add(4)),
            _ => -1,
        }
    }

    /// Bytes of a value (`pg_type.typlen`): -1 for variable-length types.
    pub fn length(&self) -> i16 {
        match self {
            PgType::Bool => 1,
            PgType::Int2 => 2,
            PgType::Int4 | PgType::Float4 | PgType::Date => 4,
            PgType::Int8 | PgType::Float8 | PgType::Timestamptz | PgType::Timestamp => 8,
            PgType::Uuid => 16,
            PgType::Numeric { .. }
            | PgType::Text
            | PgType::Varchar(_)
            | PgType::Bytea
            | PgType::Json
            | PgType::Jsonb => -1,
        }
    }

    /// Whether a hypertable may be partitioned on a column of this type.
    pub fn is_time_dimension_type(&self) -> bool {
        matches!(
            self,
            PgType::Timestamptz
                | PgType::Timestamp
                | PgType::Date
                | PgType::Int2
                | PgType::Int4
                | PgType::Int8
        )
    }

    /// Whether values of this type are timestamps/dates (intervals count in
    /// microseconds) rather than plain integers.
    pub fn is_temporal(&self) -> bool {
        matches!(self, PgType::Timestamptz | PgType::Timestamp | PgType::Date)
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Stable id: survives renames, so files can be matched to columns. It
    /// is written into every file (the Parquet field id, [`FIELD_ID`]) and
    /// never reused within a table.
    pub id: u32,
    pub name: String,
    pub ty: PgType,
    pub not_null: bool,
    /// The DEFAULT expression as SQL text, evaluated at insert time.
    pub default: Option<String>,
    /// What rows stored before the column was added read as (PostgreSQL's
    /// `attmissingval`): the ADD COLUMN's default, evaluated once, as one
    /// value in Arrow IPC stream form, hex. None reads as NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// `COMMENT ON COLUMN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl ColumnDef {
    /// A nullable column without a default.
    pub fn new(id: u32, name: impl Into<String>, ty: PgType) -> Self {
        ColumnDef {
            id,
            name: name.into(),
            ty,
            not_null: false,
            default: None,
            missing: None,
            comment: None,
        }
    }
}

/// Arrow field metadata holding a column's id ([`ColumnDef::id`]); the
/// Parquet writer stores it as the field id.
pub const FIELD_ID: &str = "PARQUET:field_id";

/// What makes a table a hypertable: its time dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HypertableDef {
    /// TimescaleDB's hypertable id (1, 2, ...), used in chunk names.
    pub id: u32,
    pub time_column: String,
    /// Chunk width: microseconds for temporal columns, plain units for integer ones.
    pub chunk_interval: i64,
    /// Space (hash) dimensions, in the order they were added: column name
    /// and number of partitions (`create_hypertable(..., partitioning_column,
    /// number_partitions)`, `add_dimension`). A chunk holds one hash slice of
    /// each ([`ChunkDef::hash_ranges`]); see [`crate::partition`].
    pub space_dimensions: Vec<(String, u16)>,
    /// TimescaleDB's dimension ids: the time dimension's, then each space
    /// dimension's. Numbered when the op making the dimension is applied
    /// ([`CatalogState::next_dimension_id`]); empty in catalogs written
    /// before they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimension_ids: Vec<u32>,
    /// The function (schema, name) that tells the current time of an
    /// integer time column (`set_integer_now_func`), which policies need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer_now_func: Option<(String, String)>,
}

/// A Parquet file holding some of a table's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDef {
    /// Path inside the object store.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Smallest and largest time value in the file (hypertables only).
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Written in the columnstore layout of a compressed chunk (sorted by
    /// the table's segmentby and orderby columns).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compressed: bool,
    /// The distinct values of the table's series column in the file, when
    /// they are few ([`FileSeries::MAX_VALUES`]): "newest row per series"
    /// queries skip chunks whose series all have rows in newer chunks.
    /// Exact, as the file's rows are: a file is never changed once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<FileSeries>,
}

/// The distinct values of a file's series column ([`TableDef::series_column`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSeries {
    /// The column's [`ColumnDef::id`].
    pub column: u32,
    /// Sorted, NULL (None) first when present. Shared: every commit copies
    /// the catalog state, and a file's values never change.
    #[serde(with = "shared_vec")]
    pub values: std::sync::Arc<Vec<Option<String>>>,
    /// For each of `values`, the greatest time of its rows in the file, in
    /// the time column's units ([`ChunkDef::range_start`]'s). Empty in
    /// entries written before it was recorded.
    #[serde(default, with = "shared_vec")]
    pub newest: std::sync::Arc<Vec<i64>>,
    /// For each of `values`, how many rows hold it, when the file holds
    /// each value's rows together and in `values`' order (a file sorted by
    /// this column: a table's ingest and merged files with a series index):
    /// value `i`'s rows are then the file's rows from the sum of the counts
    /// before it on ([`FileSeries::runs_of`]). Empty otherwise, and in
    /// entries written before it was recorded.
    #[serde(default, with = "shared_vec", skip_serializing_if = "no_counts")]
    pub counts: std::sync::Arc<Vec<u64>>,
}

fn no_counts(counts: &std::sync::Arc<Vec<u64>>) -> bool {
    counts.is_empty()
}

impl FileSeries {
    /// Files with more distinct values record none.
    pub const MAX_VALUES: usize = 4096;

    /// Each of the `wanted` values the file holds, as its position in
    /// `values` and its rows, in the file's order; None when the file does
    /// not record where its values are.
    pub fn runs_of<'a>(
        &self,
        wanted: impl IntoIterator<Item = &'a str>,
    ) -> Option<Vec<(usize, std::ops::Range<u64>)>> {
        if self.counts.len() != self.values.len() {
            return None;
        }
        let mut found: Vec<usize> = wanted
            .into_iter()
            .filter_map(|w| {
                self.values
                    .binary_search_by(|v| v.as_deref().cmp(&Some(w)))
                    .ok()
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        let mut runs = Vec::with_capacity(found.len());
        let (mut start, mut next) = (0u64, 0usize);
        for i in found {
            start += self.counts[next..i].iter().sum::<u64>();
            let end = start + self.counts[i];
            runs.push((i, start..end));
            (start, next) = (end, i + 1);
        }
        Some(runs)
    }
}

/// [`FileSeries`]' shared vectors as plain JSON arrays.
mod shared_vec {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Arc<Vec<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Arc<Vec<T>>, D::Error> {
        Vec::deserialize(d).map(Arc::new)
    }
}

/// A chunk: one time range of a hypertable and, when it has space
/// dimensions, one range of partition hashes in each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkDef {
    pub id: u32,
    /// Inclusive start and exclusive end, in the time column's units
    /// (microseconds since the Unix epoch for temporal columns).
    pub range_start: i64,
    pub range_end: i64,
    /// Per space dimension (in [`HypertableDef::space_dimensions`]' order),
    /// the [start, end) of the partition hashes the chunk holds. A chunk
    /// with fewer entries than the table has dimensions holds every hash in
    /// the dimensions it lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_ranges: Vec<(i64, i64)>,
    pub files: Vec<FileDef>,
    /// When the chunk was created, in microseconds since the Unix epoch
    /// (unknown for chunks of catalogs written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// Set while the chunk is compressed (`compress_chunk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<ChunkCompression>,
}

/// What compressing a chunk did, for `chunk_compression_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCompression {
    /// Bytes of the chunk's files before they were compressed.
    pub before_bytes: u64,
    /// Bytes of the compressed files when they were written.
    pub after_bytes: u64,
}

/// A hypertable's compression settings (`ALTER TABLE t SET (timescaledb.compress, ...)`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionSettings {
    /// Columns whose rows are stored together, in this order.
    pub segmentby: Vec<String>,
    /// Order of the rows within a segment.
    pub orderby: Vec<OrderByColumn>,
    /// Whether `orderby` is the default order because none was set: the
    /// hypertable's settings then show no orderby, its chunks the default,
    /// as TimescaleDB's do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orderby_default: bool,
}

/// One `compress_orderby` column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderByColumn {
    pub column: String,
    pub asc: bool,
    pub nulls_first: bool,
}

impl ChunkDef {
    /// TimescaleDB's name for the chunk table.
    pub fn name(&self, hypertable_id: u32) -> String {
        format!("_hyper_{}_{}_chunk", hypertable_id, self.id)
    }

    /// The chunk's hash range in space dimension `dim` (every hash when it
    /// has none).
    pub fn hash_range(&self, dim: usize) -> (i64, i64) {
        self.hash_ranges
            .get(dim)
            .copied()
            .unwrap_or((crate::partition::SLICE_MIN, crate::partition::SLICE_MAX))
    }

    /// Whether the chunk holds the rows of this point: time `t` and these
    /// partition hashes, one per space dimension.
    pub fn contains(&self, t: i64, hashes: &[i64]) -> bool {
        self.range_start <= t
            && t < self.range_end
            && hashes.iter().enumerate().all(|(d, h)| {
                let (s, e) = self.hash_range(d);
                s <= *h && *h < e
            })
    }
}

/// PostgreSQL 15's keywords that are not unreserved (reserved, column-name
/// and type/function-name keywords, `pg_get_keywords()` with catcode R, C
/// or T), sorted: an identifier spelled like one of them must be quoted.
const QUOTED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// An identifier as PostgreSQL's quote_identifier prints it: bare when it
/// is lower case letters, digits and underscores not starting with a digit,
/// and not a keyword that needs quoting; otherwise double-quoted.
pub fn quote_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && QUOTED_KEYWORDS.binary_search(&name).is_err() {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Schema in which TimescaleDB places chunk tables.
pub const CHUNK_SCHEMA: &str = "_timescaledb_internal";

/// A table: plain or hyper.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    pub hypertable: Option<HypertableDef>,
    /// Chunks of a hypertable, by chunk id.
    pub chunks: BTreeMap<u32, ChunkDef>,
    /// Files of a plain table (a hypertable keeps its files in chunks).
    pub files: Vec<FileDef>,
    /// PRIMARY KEY and UNIQUE constraints, enforced on every write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_keys: Vec<UniqueKey>,
    /// Compression settings of a hypertable with compression enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionSettings>,
    /// Indexes made by `CREATE INDEX` (and a hypertable's default time
    /// index); PRIMARY KEY and UNIQUE constraints are in `unique_keys`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexDef>,
    /// Set once a column was dropped: the id after the highest ever given
    /// (see [`TableDef::next_column_id`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_column_id: u32,
    /// `COMMENT ON TABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// FOREIGN KEY constraints of this table (it references others).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A PRIMARY KEY or UNIQUE constraint, or the key of a unique index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueKey {
    /// The constraint's name (`t_pkey`, `t_a_b_key`, or as given), which is
    /// also its index's; for a unique index, the index's name.
    pub name: String,
    pub columns: Vec<String>,
    pub primary: bool,
    /// Enforces a `CREATE UNIQUE INDEX` (dropped with `DROP INDEX`), not a
    /// constraint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub index: bool,
}

/// A FOREIGN KEY constraint: every row whose key columns are all non-null
/// (MATCH SIMPLE) holds a key of the referenced table's PRIMARY KEY or
/// UNIQUE constraint on `ref_columns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_oid: u32,
    pub ref_columns: Vec<String>,
    pub on_delete: RefAction,
    pub on_update: RefAction,
}

/// What a foreign key does when a referenced row goes or changes key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl RefAction {
    /// `pg_constraint.confdeltype` / `confupdtype`.
    pub fn code(self) -> char {
        match self {
            RefAction::NoAction => 'a',
            RefAction::Restrict => 'r',
            RefAction::Cascade => 'c',
            RefAction::SetNull => 'n',
            RefAction::SetDefault => 'd',
        }
    }

    /// As `pg_get_constraintdef` and information_schema spell it.
    pub fn sql(self) -> &'static str {
        match self {
            RefAction::NoAction => "NO ACTION",
            RefAction::Restrict => "RESTRICT",
            RefAction::Cascade => "CASCADE",
            RefAction::SetNull => "SET NULL",
            RefAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// An index made by `CREATE INDEX`. Tempora keeps no B-trees: an index
/// names the columns queries filter on, which new files of the table keep
/// statistics for; a UNIQUE index is enforced through its [`UniqueKey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    /// Key columns, or expressions as SQL text.
    pub columns: Vec<IndexColumn>,
    pub unique: bool,
    /// `USING method` as given (`btree` by default).
    #[serde(default = "btree")]
    pub method: String,
    /// `INCLUDE (...)` columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// The `WHERE` of a partial index, as SQL text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
}

impl IndexDef {
    /// `CREATE INDEX ... ON t (...) USING ... ` as `pg_indexes.indexdef` prints it.
    pub fn definition(&self, table: &TableDef) -> String {
        let index = self;
        let keys: Vec<String> = index
            .columns
            .iter()
            .map(|c| {
                // A function call prints bare, other expressions in parentheses.
                let call = c.column.ends_with(')')
                    && c.column.split_once('(').is_some_and(|(f, _)| {
                        !f.is_empty() && f.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                    });
                let mut k = if c.expression && call {
                    c.column.clone()
                } else if c.expression {
                    format!("({})", c.column)
                } else {
                    quote_identifier(&c.column)
                };
                if c.desc {
                    k.push_str(" DESC");
                }
                match (c.nulls_first, c.desc) {
                    (Some(true), false) => k.push_str(" NULLS FIRST"),
                    (Some(false), true) => k.push_str(" NULLS LAST"),
                    _ => {}
                }
                k
            })
            .collect();
        let mut def = format!(
            "CREATE {}INDEX {} ON {}.{} USING {} ({})",
            if index.unique { "UNIQUE " } else { "" },
            quote_identifier(&index.name),
            quote_identifier(&table.schema),
            quote_identifier(&table.name),
            index.method,
            keys.join(", ")
        );
        if !index.include.is_empty() {
            let cols: Vec<String> = index.include.iter().map(|c| quote_identifier(c)).collect();
            def.push_str(&format!(" INCLUDE ({})", cols.join(", ")));
        }
        if let Some(p) = &index.predicate {
            def.push_str(&format!(" WHERE ({p})"));
        }
        def
    }
}

fn btree() -> String {
    "btree".into()
}

/// One key of an index: a column (or expression) and its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexColumn {
    /// A column name, or an expression's SQL text when `expression`.
    pub column: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expression: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub desc: bool,
    /// NULLS FIRST / LAST when given against the default for the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nulls_first: Option<bool>,
}

impl TableDef {
    /// The table's definition without its chunks and files: what a
    /// [`CatalogOp::AlterTable`] carries (the op keeps those).
    pub fn definition_only(&self) -> TableDef {
        TableDef {
            chunks: Default::default(),
            files: vec![],
            ..self.clone()
        }
    }
}

impl TableDef {
    /// Every index of the table: those of its PRIMARY KEY and UNIQUE
    /// constraints first, then those `CREATE INDEX` made.
    pub fn all_indexes(&self) -> Vec<IndexDef> {
        let constraints = self
            .unique_keys
            .iter()
            .filter(|k| !k.index)
            .map(|k| IndexDef {
                name: k.name.clone(),
                columns: k
                    .columns
                    .iter()
                    .map(|c| IndexColumn {
                        column: c.clone(),
                        expression: false,
                        desc: false,
                        nulls_first: None,
                    })
                    .collect(),
                unique: true,
                method: btree(),
                include: vec![],
                predicate: None,
            });
        constraints.chain(self.indexes.iter().cloned()).collect()
    }

    /// The columns a hypertable's files are clustered by within each file
    /// (then by time): the leading plain columns, up to the time column, of
    /// its [`TableDef::cluster_index`]. `CREATE INDEX ON cpu (hostname,
    /// time DESC)` gives `[hostname]`. Empty for plain tables and when no
    /// index qualifies.
    ///
    /// Tempora keeps no B-tree: such an index is served by keeping each
    /// series' rows together, so that row group and page statistics find
    /// them, as TimescaleDB's `reorder_chunk` clusters a chunk by it.
    pub fn cluster_key(&self) -> Vec<String> {
        self.cluster_index()
            .map(|i| self.leading_series_columns(&i))
            .unwrap_or_default()
    }

    /// The index a hypertable's files are clustered by: the first index
    /// `CREATE INDEX` made whose first key is a plain column other than
    /// time (and that has no WHERE), else such a PRIMARY KEY or UNIQUE
    /// constraint's.
    pub fn cluster_index(&self) -> Option<IndexDef> {
        self.hypertable.as_ref()?;
        let explicit = self
            .indexes
            .iter()
            .filter(|i| i.predicate.is_none())
            .cloned();
        explicit
            .chain(self.all_indexes())
            .find(|i| !self.leading_series_columns(i).is_empty())
    }

    /// An index's leading plain columns up to the time column.
    pub fn leading_series_columns(&self, index: &IndexDef) -> Vec<String> {
        let time = self.hypertable.as_ref().map(|h| h.time_column.as_str());
        index
            .columns
            .iter()
            .take_while(|c| !c.expression && Some(c.column.as_str()) != time)
            .map(|c| c.column.clone())
            .collect()
    }

    /// Whether an index or a constraint's index of the table has this name.
    pub fn has_index(&self, name: &str) -> bool {
        self.indexes.iter().any(|i| i.name == name)
            || self.unique_keys.iter().any(|k| k.name == name)
    }

    /// The column whose distinct values files record ([`FileDef::series`]):
    /// a hypertable's first cluster key column (what its files are sorted
    /// by first), else its first compression segmentby column, when it is
    /// text.
    pub fn series_column(&self) -> Option<&ColumnDef> {
        let name = self.cluster_key().into_iter().next().or_else(|| {
            self.compression
                .as_ref()
                .and_then(|c| c.segmentby.first().cloned())
        })?;
        self.column(&name)
            .filter(|c| matches!(c.ty, PgType::Text | PgType::Varchar(_)))
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The Arrow schema of the table's rows. Every field is nullable: NOT NULL
    /// is enforced by the write path with PostgreSQL's error.
    pub fn arrow_schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .map(|c| {
                    let field = c.ty.arrow_field(&c.name);
                    let mut metadata = field.metadata().clone();
                    metadata.insert(FIELD_ID.to_string(), c.id.to_string());
                    field.with_metadata(metadata)
                })
                .collect::<Vec<_>>(),
        )
    }

    /// The id the next added column gets: ids are never reused, so that a
    /// dropped column's values in old files are never read as a new one's.
    pub fn next_column_id(&self) -> u32 {
        let max = self.columns.iter().map(|c| c.id).max().unwrap_or(0);
        self.next_column_id.max(max + 1)
    }

    /// Every file of the table, across chunks.
    pub fn all_files(&self) -> impl Iterator<Item = &FileDef> {
        self.files
            .iter()
            .chain(self.chunks.values().flat_map(|c| c.files.iter()))
    }

    pub fn is_hypertable(&self) -> bool {
        self.hypertable.is_some()
    }

    /// The chunk holding the rows of time `t` and these partition hashes
    /// (one per space dimension, none for a hypertable without any), if it
    /// exists.
    pub fn chunk_for(&self, t: i64, hashes: &[i64]) -> Option<&ChunkDef> {
        self.chunks.values().find(|c| c.contains(t, hashes))
    }

    /// A lookup of the chunk of many rows, for per-row work (routing a batch
    /// to its chunks): [`TableDef::chunk_for`] scans every chunk.
    pub fn chunk_index(&self) -> ChunkIndex<'_> {
        let mut ranges: Vec<&ChunkDef> = self.chunks.values().collect();
        ranges.sort_by_key(|c| (c.range_start, c.id));
        // Chunks of one time slice (one per hash partition) share its
        // range; distinct ranges must not overlap.
        let disjoint = ranges.windows(2).all(|w| {
            w[0].range_end <= w[1].range_start
                || (w[0].range_start == w[1].range_start && w[0].range_end == w[1].range_end)
        });
        ChunkIndex {
            table: self,
            ranges,
            disjoint,
            last: std::cell::Cell::new(0),
        }
    }

    /// Where a new chunk for the point (`t`, `hashes`), in no chunk yet,
    /// goes: see [`new_chunk_cube`].
    pub fn new_chunk_cube(&self, t: i64, hashes: &[i64]) -> Option<ChunkCube> {
        let h = self.hypertable.as_ref()?;
        Some(new_chunk_cube(self.chunks.values(), h, t, hashes))
    }
}

/// The place of a chunk: its time range and its hash range in each space
/// dimension.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkCube {
    pub range_start: i64,
    pub range_end: i64,
    pub hash_ranges: Vec<(i64, i64)>,
}

impl ChunkCube {
    /// The cube TimescaleDB gives a point when nothing is in the way: the
    /// time range aligned to the chunk interval, the hash slice of each
    /// space dimension's current number of partitions.
    pub fn aligned(h: &HypertableDef, t: i64, hashes: &[i64]) -> ChunkCube {
        let (range_start, range_end) = chunk_range(t, h.chunk_interval);
        ChunkCube {
            range_start,
            range_end,
            hash_ranges: h
                .space_dimensions
                .iter()
                .zip(hashes)
                .map(|((_, n), hash)| crate::partition::hash_slice(*hash, *n))
                .collect(),
        }
    }

    /// A new chunk of this place.
    pub fn chunk(&self, id: u32, created_at: Option<i64>) -> ChunkDef {
        ChunkDef {
            id,
            range_start: self.range_start,
            range_end: self.range_end,
            hash_ranges: self.hash_ranges.clone(),
            files: vec![],
            created_at,
            compression: None,
        }
    }

    /// Range of dimension `d`: 0 is time, 1.. the space dimensions.
    fn range(&self, d: usize) -> (i64, i64) {
        if d == 0 {
            (self.range_start, self.range_end)
        } else {
            self.hash_ranges[d - 1]
        }
    }

    fn set_range(&mut self, d: usize, r: (i64, i64)) {
        if d == 0 {
            (self.range_start, self.range_end) = r;
        } else {
            self.hash_ranges[d - 1] = r;
        }
    }

    /// Whether the cube and the chunk overlap in every dimension.
    fn collides(&self, c: &ChunkDef) -> bool {
        let overlap = |(s1, e1): (i64, i64), (s2, e2): (i64, i64)| s1 < e2 && s2 < e1;
        overlap(self.range(0), (c.range_start, c.range_end))
            && (0..self.hash_ranges.len()).all(|d| overlap(self.hash_ranges[d], c.hash_range(d)))
    }
}

/// Where a new chunk for the point (`t`, `hashes`), which no chunk holds,
/// goes, as TimescaleDB places it: the aligned cube
/// ([`ChunkCube::aligned`]); its time range cut where another chunk's time
/// range overlaps it (chunks made before the interval changed); then, for
/// each chunk it still overlaps in every dimension (made before the number
/// of partitions changed), cut in the first dimension where their ranges
/// differ, on the side away from the point, until they no longer overlap.
pub fn new_chunk_cube<'a>(
    chunks: impl Iterator<Item = &'a ChunkDef> + Clone,
    h: &HypertableDef,
    t: i64,
    hashes: &[i64],
) -> ChunkCube {
    let mut cube = ChunkCube::aligned(h, t, hashes);
    for c in chunks.clone() {
        if c.range_end <= t {
            cube.range_start = cube.range_start.max(c.range_end);
        } else if c.range_start > t {
            cube.range_end = cube.range_end.min(c.range_start);
        }
    }
    let point = |d: usize| if d == 0 { t } else { hashes[d - 1] };
    for c in chunks {
        if !cube.collides(c) {
            continue;
        }
        for d in 0..=cube.hash_ranges.len() {
            let mine = cube.range(d);
            let theirs = if d == 0 {
                (c.range_start, c.range_end)
            } else {
                c.hash_range(d - 1)
            };
            if mine == theirs || !(mine.0 < theirs.1 && theirs.0 < mine.1) {
                continue;
            }
            let p = point(d);
            if theirs.1 <= p && theirs.1 > mine.0 {
                cube.set_range(d, (theirs.1, mine.1));
            } else if theirs.0 > p && theirs.0 < mine.1 {
                cube.set_range(d, (mine.0, theirs.0));
            }
            if !cube.collides(c) {
                break;
            }
        }
    }
    cube
}

/// See [`TableDef::chunk_index`]: chunk ranges sorted by start and binary
/// searched, the last hit tried first (rows mostly come in time order).
pub struct ChunkIndex<'a> {
    table: &'a TableDef,
    ranges: Vec<&'a ChunkDef>,
    /// No two distinct time ranges overlap (always, unless the chunk
    /// interval changed).
    disjoint: bool,
    last: std::cell::Cell<usize>,
}

impl<'a> ChunkIndex<'a> {
    /// The chunk holding the point (`t`, `hashes`), as
    /// [`TableDef::chunk_for`] finds it.
    pub fn find(&self, t: i64, hashes: &[i64]) -> Option<&'a ChunkDef> {
        if !self.disjoint {
            return self.table.chunk_for(t, hashes);
        }
        if let Some(c) = self.ranges.get(self.last.get()) {
            if c.contains(t, hashes) {
                return Some(c);
            }
        }
        // The chunks of the last time range starting at or before `t`.
        let end = self.ranges.partition_point(|c| c.range_start <= t);
        let start = self.ranges.get(end.checked_sub(1)?)?.range_start;
        for i in (0..end).rev() {
            let c = self.ranges[i];
            if c.range_start != start {
                break;
            }
            if c.contains(t, hashes) {
                self.last.set(i);
                return Some(c);
            }
        }
        None
    }
}

/// Aligned chunk range containing `t` for a given interval, as TimescaleDB
/// computes it (ranges aligned to multiples of the interval from the epoch).
pub fn chunk_range(t: i64, interval: i64) -> (i64, i64) {
    let start = t.div_euclid(interval).saturating_mul(interval);
    (start, start.saturating_add(interval))
}

/// First id of user jobs, as in TimescaleDB.
pub const FIRST_JOB_ID: u32 = 1000;

/// What a background job does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobKind {
    /// `add_retention_policy`: drop the hypertable's chunks that end more
    /// than `drop_after` before now (`by_creation`: that were created more
    /// than that before now, `drop_created_before`).
    Retention {
        drop_after: JobSpan,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        by_creation: bool,
    },
    /// `add_compression_policy`: compress the hypertable's chunks that end
    /// more than `compress_after` before now (`by_creation`: created more
    /// than that before now, `compress_created_before`).
    Compression {
        compress_after: JobSpan,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        by_creation: bool,
    },
    /// `add_continuous_aggregate_policy`: refresh the continuous aggregate
    /// materialized in the job's table over `[now - start_offset, now -
    /// end_offset)` (None: unbounded).
    Refresh {
        start_offset: Option<JobSpan>,
        end_offset: Option<JobSpan>,
    },
}

/// A span of a hypertable's time: a policy's offset or a continuous
/// aggregate's bucket width. An interval (months, days, microseconds) or an
/// integer in the time column's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobSpan {
    Interval { months: i32, days: i32, micros: i64 },
    Integer(i64),
}

impl JobSpan {
    /// The length in the time column's units, a month counted as 30 days
    /// (as TimescaleDB compares refresh windows and bucket widths).
    pub fn approx_length(&self) -> i64 {
        const DAY: i64 = 86_400_000_000;
        match self {
            JobSpan::Interval {
                months,
                days,
                micros,
            } => (*months as i64 * 30 + *days as i64) * DAY + micros,
            JobSpan::Integer(v) => *v,
        }
    }
}

/// Run statistics of a job (`timescaledb_information.job_stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStats {
    pub last_run_started_at: Option<i64>,
    pub last_successful_finish: Option<i64>,
    /// "Success" or "Failed".
    pub last_run_status: Option<String>,
    pub last_run_duration_us: Option<i64>,
    pub total_runs: i64,
    pub total_successes: i64,
    pub total_failures: i64,
    /// Failures since the last success: how far the retry backs off.
    pub consecutive_failures: i64,
}

/// A background job (`timescaledb_information.jobs`). Times are
/// microseconds since the Unix epoch, durations microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDef {
    pub id: u32,
    pub kind: JobKind,
    /// The hypertable the job works on.
    pub oid: u32,
    pub schedule_interval: i64,
    pub max_runtime: i64,
    pub max_retries: i32,
    pub retry_period: i64,
    pub scheduled: bool,
    pub fixed_schedule: bool,
    pub initial_start: Option<i64>,
    pub next_start: i64,
    pub timezone: Option<String>,
    #[serde(default)]
    pub stats: JobStats,
}

/// A failed run (`timescaledb_information.job_errors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    pub job_id: u32,
    pub start_time: i64,
    pub finish_time: i64,
    pub sqlerrcode: String,
    pub message: String,
}

/// Errors kept for `job_errors` (the oldest go first).
pub const MAX_JOB_ERRORS: usize = 1000;

/// One atomic change to the catalog. A commit is a list of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogOp {
    CreateTable(TableDef),
    DropTable {
        oid: u32,
    },
    MakeHypertable {
        oid: u32,
        def: HypertableDef,
    },
    CreateChunk {
        oid: u32,
        chunk: ChunkDef,
    },
    /// Files written by a flush; `chunk` is None for a plain table.
    AddFiles {
        oid: u32,
        chunk: Option<u32>,
        files: Vec<FileDef>,
    },
    /// Files no longer part of the table (rewritten or moved elsewhere).
    RemoveFiles {
        oid: u32,
        chunk: Option<u32>,
        paths: Vec<String>,
    },
    /// Every WAL record up to this sequence number is in files the catalog lists.
    SetFlushedWalSeq(u64),
    CreateExtension {
        name: String,
    },
    /// The width of chunks created from now on (`set_chunk_time_interval`).
    SetChunkInterval {
        oid: u32,
        chunk_interval: i64,
    },
    /// A job added, altered, or having run (its stats and next start).
    PutJob(JobDef),
    DeleteJob {
        id: u32,
    },
    /// A failed run, for `job_errors`.
    AddJobError(JobError),
    /// Whole chunks dropped (`drop_chunks`, retention). WAL records up to
    /// `through_wal_seq` may still hold rows of their ranges: replay skips
    /// those rows, as the live memtables dropped them with the chunks.
    DropChunks {
        oid: u32,
        chunks: Vec<u32>,
        through_wal_seq: u64,
    },
    /// Compression enabled with these settings, or disabled (None).
    SetCompression {
        oid: u32,
        settings: Option<CompressionSettings>,
    },
    /// The table's definition changed (columns, keys, indexes, name,
    /// comments): everything but its chunks and files, which stay. `def`
    /// carries none (they would make the record as large as the table).
    AlterTable(Box<TableDef>),
    CreateSchema {
        name: String,
    },
    /// A schema dropped (its relations are dropped by ops before this one).
    DropSchema {
        name: String,
    },
    /// A sequence created, or its state changed.
    PutSequence(SequenceDef),
    DropSequence {
        oid: u32,
    },
    /// A function created, or replaced (same oid).
    PutFunction(FunctionDef),
    DropFunction {
        oid: u32,
    },
    /// The hypertable's integer_now function (`set_integer_now_func`).
    SetIntegerNowFunc {
        oid: u32,
        func: Option<(String, String)>,
    },
    /// A view created, or replaced (same oid).
    PutView(ViewDef),
    DropView {
        oid: u32,
    },
    /// Rows of table `oid` in `[start, end)` changed: each continuous
    /// aggregate reading it logs the part below its threshold.
    Invalidate {
        oid: u32,
        start: i64,
        end: i64,
    },
    /// A chunk compressed (Some) or decompressed (None); its files change by
    /// `RemoveFiles` / `AddFiles` in the same commit.
    SetChunkCompression {
        oid: u32,
        chunk: u32,
        compression: Option<ChunkCompression>,
    },
    /// A role created, or changed (same oid; a rename keeps it).
    PutRole(RoleDef),
    DropRole {
        oid: u32,
    },
    /// A database created (`CREATE DATABASE`), or changed (same oid).
    PutDatabase(DatabaseDef),
    DropDatabase {
        oid: u32,
    },
}

impl CatalogOp {
    /// Whether the op changes what SQL text refers to (tables and their
    /// columns, views, functions, schemas), rather than rows, chunks, jobs
    /// or statistics.
    pub fn changes_definitions(&self) -> bool {
        matches!(
            self,
            CatalogOp::CreateTable(_)
                | CatalogOp::DropTable { .. }
                | CatalogOp::MakeHypertable { .. }
                | CatalogOp::AlterTable(_)
                | CatalogOp::CreateSchema { .. }
                | CatalogOp::DropSchema { .. }
                | CatalogOp::PutFunction(_)
                | CatalogOp::DropFunction { .. }
                | CatalogOp::PutView(_)
                | CatalogOp::DropView { .. }
        )
    }
}

/// The time range of a dropped chunk whose rows older WAL records may still
/// hold; forgotten once the flushed WAL sequence passes `through_wal_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedRange {
    pub oid: u32,
    pub range_start: i64,
    pub range_end: i64,
    /// The chunk's hash ranges ([`ChunkDef::hash_ranges`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_ranges: Vec<(i64, i64)>,
    pub through_wal_seq: u64,
}

/// The whole catalog at one version. Immutable once published: a commit makes
/// a new state and swaps it in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogState {
    /// Number of commits applied.
    pub version: u64,
    pub next_oid: u32,
    pub next_hypertable_id: u32,
    pub next_chunk_id: u32,
    /// TimescaleDB numbers the dimensions of all hypertables of a database
    /// from 1 (`add_dimension` answers the new one's number). 0 in
    /// catalogs written before it was counted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_dimension_id: u32,
    pub tables: BTreeMap<u32, TableDef>,
    pub flushed_wal_seq: u64,
    pub extensions: Vec<String>,
    /// How many `DropChunks` ops were applied: a writer that mapped rows to
    /// chunks before a drop notices it and maps them again.
    #[serde(default)]
    pub chunk_drops: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_ranges: Vec<DroppedRange>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jobs: BTreeMap<u32, JobDef>,
    #[serde(default = "first_job_id", skip_serializing_if = "is_first_job_id")]
    pub next_job_id: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_errors: Vec<JobError>,
    /// Views (`CREATE VIEW`), by oid.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub views: BTreeMap<u32, ViewDef>,
    /// SQL functions (`CREATE FUNCTION ... LANGUAGE sql`), by oid.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub functions: BTreeMap<u32, FunctionDef>,
    /// Sequences (of `serial` and identity columns), by oid.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sequences: BTreeMap<u32, SequenceDef>,
    /// Schemas made by `CREATE SCHEMA` (`public` always exists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// Roles (`CREATE ROLE`, and the superuser made when the data
    /// directory is first opened), by oid.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<u32, RoleDef>,
    /// Databases made by `CREATE DATABASE`, by oid (the first database,
    /// `postgres`, is implicit). Like roles they belong to the whole server:
    /// the first database's catalog holds them and every other database's
    /// catalog keeps a copy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub databases: BTreeMap<u32, DatabaseDef>,
}

/// The name of the database every server has, made with its data directory.
pub const FIRST_DATABASE: &str = "postgres";

/// `pg_database.oid` of [`FIRST_DATABASE`], as PostgreSQL numbers it.
pub const FIRST_DATABASE_OID: u32 = 5;

/// A database made by `CREATE DATABASE`: its own catalog, WAL and files
/// live under `databases/<oid>/` of the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseDef {
    pub oid: u32,
    pub name: String,
    /// The owning role's oid.
    pub owner: u32,
    /// -1: no limit.
    pub connection_limit: i32,
    pub allow_connections: bool,
    /// The locale names given at creation (`LC_COLLATE`, `LC_CTYPE`);
    /// text compares byte-wise whatever they say.
    pub collate: String,
    pub ctype: String,
    /// Session parameter defaults (`ALTER DATABASE ... SET`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// The locale a database made without one reports.
pub const DEFAULT_LOCALE: &str = "en_US.UTF-8";

impl DatabaseDef {
    /// [`FIRST_DATABASE`] until an ALTER DATABASE records it.
    pub fn first() -> Self {
        Self {
            oid: FIRST_DATABASE_OID,
            name: FIRST_DATABASE.into(),
            owner: BOOTSTRAP_SUPERUSER_OID,
            connection_limit: -1,
            allow_connections: true,
            collate: DEFAULT_LOCALE.into(),
            ctype: DEFAULT_LOCALE.into(),
            settings: BTreeMap::new(),
        }
    }
}

/// The schema every database starts with.
pub const PUBLIC_SCHEMA: &str = "public";

/// The oid of the superuser made with the data directory, as PostgreSQL's
/// bootstrap superuser.
pub const BOOTSTRAP_SUPERUSER_OID: u32 = 10;

/// A role: who may log in, with what password, and with which attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub oid: u32,
    pub name: String,
    pub superuser: bool,
    pub login: bool,
    pub create_db: bool,
    pub create_role: bool,
    pub inherit: bool,
    pub replication: bool,
    pub bypass_rls: bool,
    /// -1: no limit.
    pub connection_limit: i32,
    /// The secret as PostgreSQL keeps it: a SCRAM-SHA-256 verifier
    /// (`SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`) or an MD5 hash
    /// (`md5` + hex); never the password itself. None: no password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The password stops working at this time (microseconds since the
    /// Unix epoch); None: it never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
}

impl RoleDef {
    /// A role with PostgreSQL's defaults for `CREATE ROLE name`.
    pub fn new(oid: u32, name: impl Into<String>) -> Self {
        Self {
            oid,
            name: name.into(),
            superuser: false,
            login: false,
            create_db: false,
            create_role: false,
            inherit: true,
            replication: false,
            bypass_rls: false,
            connection_limit: -1,
            password: None,
            valid_until: None,
        }
    }

    /// The bootstrap superuser, with every attribute.
    pub fn bootstrap(name: impl Into<String>) -> Self {
        Self {
            superuser: true,
            login: true,
            create_db: true,
            create_role: true,
            replication: true,
            bypass_rls: true,
            ..Self::new(BOOTSTRAP_SUPERUSER_OID, name)
        }
    }
}

/// A sequence: the values of a `serial` or identity column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceDef {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub start: i64,
    pub increment: i64,
    pub max: i64,
    /// Values up to this one may have been handed out: the engine logs
    /// ahead (as PostgreSQL logs 32 values at a time), so after a restart
    /// numbering goes on past it. None while no value was handed out.
    pub reserved: Option<i64>,
    /// The table and column whose default it feeds; dropped with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<(u32, String)>,
    /// The lowest value (`MINVALUE`).
    #[serde(default = "one")]
    pub min: i64,
    /// Whether it starts again at the other end past a bound (`CYCLE`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cycle: bool,
    /// `reserved` is the next value to hand out rather than one that may
    /// have been handed out (after `setval(s, v, false)` or `RESTART`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// `AS smallint | integer | bigint`; None: derived from `max`, as for
    /// the sequences of `serial` columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_oid: Option<u32>,
    /// `CACHE`, shown by `pg_sequences`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub cache: i64,
    /// `COMMENT ON SEQUENCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

fn one() -> i64 {
    1
}

fn is_one(v: &i64) -> bool {
    *v == 1
}

impl SequenceDef {
    /// An ascending bigint sequence from 1, as `CREATE SEQUENCE` makes it
    /// without options.
    pub fn new(oid: u32, schema: &str, name: &str) -> Self {
        SequenceDef {
            oid,
            schema: schema.to_string(),
            name: name.to_string(),
            start: 1,
            increment: 1,
            max: i64::MAX,
            reserved: None,
            owned_by: None,
            min: 1,
            cycle: false,
            pending: false,
            type_oid: None,
            cache: 1,
            comment: None,
        }
    }

    /// The value after `value`, wrapping round when the sequence cycles;
    /// None past a bound of a sequence that does not.
    pub fn step(&self, value: i64) -> Option<i64> {
        match value.checked_add(self.increment) {
            Some(next) if (self.min..=self.max).contains(&next) => Some(next),
            _ if !self.cycle => None,
            _ if self.increment > 0 => Some(self.min),
            _ => Some(self.max),
        }
    }

    /// The type of its values: `AS` or derived from `max`.
    pub fn value_type_oid(&self) -> u32 {
        self.type_oid.unwrap_or(match self.max {
            m if m == i64::from(i16::MAX) => 21,
            m if m == i64::from(i32::MAX) => 23,
            _ => 20,
        })
    }
}

/// A view: a stored query, planned again wherever it is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// The query as Tempora plans it (after its PostgreSQL rewrites), with
    /// the view's column names applied.
    pub sql: String,
    /// The query as given, for `pg_views.definition`.
    pub definition: String,
    /// Tables and views the query reads (by oid), which cannot be dropped
    /// while the view exists unless it goes with them (CASCADE).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<u32>,
    /// Set for a continuous aggregate: the view reads its materialization
    /// (and, real-time, the raw rows past its watermark) instead of `sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous: Option<ContinuousAgg>,
    /// Set for a PostgreSQL materialized view (`CREATE MATERIALIZED VIEW`
    /// without `timescaledb.continuous`): its rows as of the last refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materialized: Option<MaterializedView>,
    /// `COMMENT ON VIEW` / `MATERIALIZED VIEW`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A function made by `CREATE FUNCTION ... LANGUAGE sql`: a query of one
/// value, which calls inline (PostgreSQL inlines such functions too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionDef {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub args: Vec<FunctionArgDef>,
    /// The declared result type, as written (`bigint`).
    pub returns: String,
    /// `pg_type.oid` of the result type.
    pub return_oid: u32,
    /// The query giving the value: `SELECT expr [FROM ...]`, with the
    /// arguments referenced by name or as `$n`.
    pub body: String,
    /// The body as the user wrote it (`pg_proc.prosrc`).
    pub source: String,
    /// `pg_proc.provolatile`: 'i' immutable, 's' stable, 'v' volatile.
    pub volatility: char,
    /// STRICT: a NULL argument makes the result NULL without evaluating it.
    pub strict: bool,
}

/// An argument of a [`FunctionDef`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionArgDef {
    pub name: Option<String>,
    /// The type as written (`double precision`).
    pub type_name: String,
    /// `pg_type.oid` of the type.
    pub type_oid: u32,
    /// The DEFAULT expression's SQL.
    pub default: Option<String>,
}

impl FunctionDef {
    /// `name(type, ...)`, as PostgreSQL names a function in messages.
    pub fn signature(&self) -> String {
        let types: Vec<&str> = self.args.iter().map(|a| a.type_name.as_str()).collect();
        format!("{}({})", self.name, types.join(", "))
    }

    /// Whether a call with `n` arguments can be this function's (the
    /// missing ones taking their defaults).
    pub fn takes(&self, n: usize) -> bool {
        let required = self.args.iter().filter(|a| a.default.is_none()).count();
        (required..=self.args.len()).contains(&n)
    }
}

/// Where a materialized view keeps its rows: a plain table of its own,
/// rewritten whole by `REFRESH MATERIALIZED VIEW`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterializedView {
    pub table_oid: u32,
    /// False after `WITH NO DATA`: reading it is an error until a refresh.
    pub populated: bool,
}

impl ViewDef {
    /// The oid of the table holding a materialized view's or continuous
    /// aggregate's rows.
    pub fn storage_oid(&self) -> Option<u32> {
        self.materialized
            .as_ref()
            .map(|m| m.table_oid)
            .or(self.continuous.as_ref().map(|c| c.mat_oid))
    }

    /// Whether `DROP MATERIALIZED VIEW` is how it goes.
    pub fn is_materialized(&self) -> bool {
        self.materialized.is_some() || self.continuous.is_some()
    }
}

/// A continuous aggregate (`CREATE MATERIALIZED VIEW ... WITH
/// (timescaledb.continuous)`): its query's buckets, materialized into a
/// hypertable of their own and refreshed where rows changed.
///
/// Times are in the raw time column's units (microseconds since the epoch
/// for temporal columns, days for `date`... as [`ChunkDef`] ranges are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuousAgg {
    /// The materialization hypertable (`_timescaledb_internal._materialized_hypertable_N`).
    pub mat_oid: u32,
    /// The hypertable the query reads: the raw hypertable, or for an
    /// aggregate on an aggregate, the parent's materialization.
    pub raw_oid: u32,
    /// The view oid of the aggregate this one is defined on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// The query computing the buckets, reading `raw_oid` by its qualified
    /// name; its output columns are the view's and the materialization's.
    pub query: String,
    /// The time column of `raw_oid` the buckets are taken of.
    pub time_column: String,
    /// What the query calls `raw_oid` when it joins other tables (their
    /// columns may share the time column's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_relation: Option<String>,
    /// The output column holding the bucket (the materialization's time).
    pub bucket_column: String,
    /// The `time_bucket(...)` call of the query, over `time_column`.
    pub bucket_expr: String,
    pub bucket_width: JobSpan,
    /// `timescaledb.materialized_only`: reads see only materialized buckets;
    /// otherwise rows past the watermark are aggregated as the view is read.
    pub materialized_only: bool,
    /// Below it, changed rows are logged in `invalidations`; at and above
    /// it nothing was ever materialized. None: nothing yet (-infinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i64>,
    /// The end of the last materialized bucket. None: nothing yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<i64>,
    /// Ranges `[start, end)` below the threshold whose rows changed since
    /// they were materialized, in the order they were logged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalidations: Vec<(i64, i64)>,
}

impl CatalogState {
    /// The continuous aggregates reading table `oid`.
    pub fn caggs_reading(&self, oid: u32) -> impl Iterator<Item = &ViewDef> {
        self.views
            .values()
            .filter(move |v| v.continuous.as_ref().is_some_and(|c| c.raw_oid == oid))
    }

    /// The continuous aggregate materialized in table `oid`.
    pub fn cagg_of_materialization(&self, oid: u32) -> Option<&ViewDef> {
        self.views
            .values()
            .find(|v| v.continuous.as_ref().is_some_and(|c| c.mat_oid == oid))
    }

    /// An [`CatalogOp::Invalidate`] for rows of `oid` changed over
    /// `[start, end]` (inclusive: file statistics), when an aggregate reads it.
    pub fn invalidation(&self, oid: u32, start: i64, end: i64) -> Option<CatalogOp> {
        self.caggs_reading(oid).next()?;
        Some(CatalogOp::Invalidate {
            oid,
            start,
            end: end.saturating_add(1),
        })
    }
}

fn first_job_id() -> u32 {
    FIRST_JOB_ID
}

fn is_first_job_id(id: &u32) -> bool {
    *id == FIRST_JOB_ID
}

impl Default for CatalogState {
    fn default() -> Self {
        Self {
            version: 0,
            next_oid: FIRST_USER_OID,
            next_hypertable_id: 1,
            next_chunk_id: 1,
            next_dimension_id: 1,
            tables: BTreeMap::new(),
            flushed_wal_seq: 0,
            extensions: vec!["plpgsql".into()],
            chunk_drops: 0,
            dropped_ranges: Vec::new(),
            jobs: BTreeMap::new(),
            next_job_id: FIRST_JOB_ID,
            job_errors: Vec::new(),
            views: BTreeMap::new(),
            functions: BTreeMap::new(),
            sequences: BTreeMap::new(),
            schemas: Vec::new(),
            roles: BTreeMap::new(),
            databases: BTreeMap::new(),
        }
    }
}

impl CatalogState {
    /// Gives the dimensions of `h` that have no id yet the next ones.
    fn number_dimensions(&mut self, h: &mut HypertableDef) {
        let dimensions = 1 + h.space_dimensions.len();
        h.dimension_ids.truncate(dimensions);
        while h.dimension_ids.len() < dimensions {
            let id = self.next_dimension_id.max(1);
            h.dimension_ids.push(id);
            self.next_dimension_id = id + 1;
        }
    }

    /// Looks a role up by name.
    pub fn role(&self, name: &str) -> Option<&RoleDef> {
        self.roles.values().find(|r| r.name == name)
    }

    /// Looks a database made by `CREATE DATABASE` up by name (the first
    /// database only once ALTER DATABASE recorded it: see
    /// [`CatalogState::database_or_first`]).
    pub fn database(&self, name: &str) -> Option<&DatabaseDef> {
        self.databases.values().find(|d| d.name == name)
    }

    /// Looks any database up by name, the first one included.
    pub fn database_or_first(&self, name: &str) -> Option<DatabaseDef> {
        self.database(name)
            .cloned()
            .or_else(|| (name == FIRST_DATABASE).then(DatabaseDef::first))
    }

    /// Every database, the first one first.
    pub fn all_databases(&self) -> Vec<DatabaseDef> {
        let mut all: Vec<DatabaseDef> = self.databases.values().cloned().collect();
        if !self.databases.contains_key(&FIRST_DATABASE_OID) {
            all.insert(0, DatabaseDef::first());
        }
        all
    }

    /// Looks a table up by schema and name.
    pub fn table(&self, schema: &str, name: &str) -> Option<&TableDef> {
        self.tables
            .values()
            .find(|t| t.name == name && t.schema == schema)
    }

    /// Looks a view up by schema and name.
    pub fn view(&self, schema: &str, name: &str) -> Option<&ViewDef> {
        self.views
            .values()
            .find(|v| v.name == name && v.schema == schema)
    }

    /// Whether tables can be made in this schema (`public`, or made by
    /// `CREATE SCHEMA`).
    pub fn schema_exists(&self, name: &str) -> bool {
        name == PUBLIC_SCHEMA || self.schemas.iter().any(|s| s == name)
    }

    /// The SQL functions of `schema` named `name` (overloads differ in
    /// their number of arguments), oldest first.
    pub fn functions_named<'a>(
        &'a self,
        schema: &str,
        name: &str,
    ) -> impl Iterator<Item = &'a FunctionDef> + 'a {
        let (schema, name) = (schema.to_string(), name.to_string());
        self.functions
            .values()
            .filter(move |f| f.name == name && f.schema == schema)
    }

    /// Looks a sequence up by schema and name.
    pub fn sequence(&self, schema: &str, name: &str) -> Option<&SequenceDef> {
        self.sequences
            .values()
            .find(|v| v.name == name && v.schema == schema)
    }

    /// Whether a relation of `schema` (table, index, view or sequence) has this name.
    pub fn relation_exists(&self, schema: &str, name: &str) -> bool {
        self.view(schema, name).is_some()
            || self.sequence(schema, name).is_some()
            || self
                .tables
                .values()
                .filter(|t| t.schema == schema)
                .any(|t| t.name == name || t.has_index(name))
    }

    pub fn table_by_oid(&self, oid: u32) -> Option<&TableDef> {
        self.tables.get(&oid)
    }

    pub fn hypertable_by_id(&self, id: u32) -> Option<&TableDef> {
        self.tables
            .values()
            .find(|t| t.hypertable.as_ref().is_some_and(|h| h.id == id))
    }

    /// Applies one op. Fails (without changing anything the caller keeps) when
    /// the op does not fit the state, which on replay means a corrupt log.
    /// [`CatalogState::apply`], and an error where `op` takes out files
    /// the state does not list (they were rewritten or dropped since `op`
    /// was made): a transaction block's ops, replayed on a newer state.
    pub fn apply_checked(&mut self, op: &CatalogOp) -> Result<()> {
        if let CatalogOp::RemoveFiles { oid, chunk, paths } = op {
            let listed = self.tables.get(oid).and_then(|t| match chunk {
                Some(id) => t.chunks.get(id).map(|c| &c.files),
                None => Some(&t.files),
            });
            let all_there = listed
                .is_some_and(|files| paths.iter().all(|p| files.iter().any(|f| &f.path == p)));
            if !all_there {
                return Err(TemporaError::new(
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    "files this transaction rewrites were changed by another",
                ));
            }
        }
        self.apply(op)
    }

    pub fn apply(&mut self, op: &CatalogOp) -> Result<()> {
        let missing = |oid: u32| {
            TemporaError::new(
                SqlState::INTERNAL_ERROR,
                format!("catalog has no table with oid {oid}"),
            )
        };
        match op {
            CatalogOp::CreateTable(def) => {
                self.next_oid = self.next_oid.max(def.oid + 1);
                self.tables.insert(def.oid, def.clone());
            }
            CatalogOp::DropTable { oid } => {
                self.tables.remove(oid).ok_or_else(|| missing(*oid))?;
                self.dropped_ranges.retain(|r| r.oid != *oid);
                // A table's policies and the sequences of its columns go with it.
                self.jobs.retain(|_, j| j.oid != *oid);
                self.sequences
                    .retain(|_, s| s.owned_by.as_ref().is_none_or(|(t, _)| t != oid));
            }
            CatalogOp::PutJob(job) => {
                self.next_job_id = self.next_job_id.max(job.id + 1);
                self.jobs.insert(job.id, job.clone());
            }
            CatalogOp::DeleteJob { id } => {
                self.jobs.remove(id);
                self.job_errors.retain(|e| e.job_id != *id);
            }
            CatalogOp::AddJobError(e) => {
                self.job_errors.push(e.clone());
                if self.job_errors.len() > MAX_JOB_ERRORS {
                    let excess = self.job_errors.len() - MAX_JOB_ERRORS;
                    self.job_errors.drain(..excess);
                }
            }
            CatalogOp::MakeHypertable { oid, def } => {
                self.next_hypertable_id = self.next_hypertable_id.max(def.id + 1);
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                if let Some(c) = t.columns.iter_mut().find(|c| c.name == def.time_column) {
                    c.not_null = true;
                }
                let mut def = HypertableDef {
                    dimension_ids: vec![],
                    ..def.clone()
                };
                self.number_dimensions(&mut def);
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                t.hypertable = Some(def);
            }
            CatalogOp::CreateChunk { oid, chunk } => {
                self.next_chunk_id = self.next_chunk_id.max(chunk.id + 1);
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                t.chunks.insert(chunk.id, chunk.clone());
            }
            CatalogOp::AddFiles { oid, chunk, files } => {
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                match chunk {
                    Some(id) => t
                        .chunks
                        .get_mut(id)
                        .ok_or_else(|| {
                            TemporaError::internal(format!("catalog has no chunk {id}"))
                        })?
                        .files
                        .extend(files.iter().cloned()),
                    None => t.files.extend(files.iter().cloned()),
                }
            }
            CatalogOp::RemoveFiles { oid, chunk, paths } => {
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                let files = match chunk {
                    Some(id) => match t.chunks.get_mut(id) {
                        Some(c) => &mut c.files,
                        None => {
                            return Err(TemporaError::internal(format!(
                                "catalog has no chunk {id}"
                            )))
                        }
                    },
                    None => &mut t.files,
                };
                files.retain(|f| !paths.contains(&f.path));
            }
            CatalogOp::SetFlushedWalSeq(seq) => {
                self.flushed_wal_seq = self.flushed_wal_seq.max(*seq);
                let flushed = self.flushed_wal_seq;
                self.dropped_ranges.retain(|r| r.through_wal_seq > flushed);
            }
            CatalogOp::SetChunkInterval {
                oid,
                chunk_interval,
            } => {
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                let h = t.hypertable.as_mut().ok_or_else(|| {
                    TemporaError::internal(format!("table {oid} is not a hypertable"))
                })?;
                h.chunk_interval = *chunk_interval;
            }
            CatalogOp::DropChunks {
                oid,
                chunks,
                through_wal_seq,
            } => {
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                for id in chunks {
                    let c = t.chunks.remove(id).ok_or_else(|| {
                        TemporaError::internal(format!("catalog has no chunk {id}"))
                    })?;
                    if *through_wal_seq > self.flushed_wal_seq {
                        self.dropped_ranges.push(DroppedRange {
                            oid: *oid,
                            range_start: c.range_start,
                            range_end: c.range_end,
                            hash_ranges: c.hash_ranges.clone(),
                            through_wal_seq: *through_wal_seq,
                        });
                    }
                }
                self.chunk_drops += 1;
            }
            CatalogOp::SetCompression { oid, settings } => {
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                if t.compression.is_none() && settings.is_some() {
                    // TimescaleDB keeps compressed data in an internal
                    // hypertable made when compression is enabled, which
                    // takes the next hypertable id: later hypertables (and
                    // their chunk names) get the ids they get there.
                    self.next_hypertable_id += 1;
                }
                t.compression = settings.clone();
            }
            CatalogOp::SetChunkCompression {
                oid,
                chunk,
                compression,
            } => {
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                let c = t.chunks.get_mut(chunk).ok_or_else(|| {
                    TemporaError::internal(format!("catalog has no chunk {chunk}"))
                })?;
                if c.compression.is_none() && compression.is_some() {
                    // Likewise the internal chunk holding a compressed
                    // chunk's data takes the next chunk id.
                    self.next_chunk_id += 1;
                }
                c.compression = compression.clone();
            }
            CatalogOp::AlterTable(def) => {
                let old = self
                    .tables
                    .get(&def.oid)
                    .ok_or_else(|| missing(def.oid))?
                    .hypertable
                    .as_ref()
                    .map(|h| h.dimension_ids.clone())
                    .unwrap_or_default();
                // The dimensions keep their ids (a definition made before
                // they were numbered lacks them); add_dimension numbers the
                // one it adds.
                let mut hypertable = def.hypertable.clone();
                if let Some(h) = hypertable.as_mut() {
                    if h.dimension_ids.len() < old.len() {
                        h.dimension_ids = old;
                    }
                    self.number_dimensions(h);
                }
                let t = self
                    .tables
                    .get_mut(&def.oid)
                    .ok_or_else(|| missing(def.oid))?;
                let chunks = std::mem::take(&mut t.chunks);
                let files = std::mem::take(&mut t.files);
                *t = TableDef {
                    chunks,
                    files,
                    hypertable,
                    ..(**def).clone()
                };
            }
            CatalogOp::CreateSchema { name } => {
                if !self.schemas.contains(name) {
                    self.schemas.push(name.clone());
                }
            }
            CatalogOp::DropSchema { name } => {
                self.schemas.retain(|s| s != name);
            }
            CatalogOp::PutSequence(seq) => {
                self.next_oid = self.next_oid.max(seq.oid + 1);
                self.sequences.insert(seq.oid, seq.clone());
            }
            CatalogOp::DropSequence { oid } => {
                self.sequences.remove(oid);
            }
            CatalogOp::PutView(view) => {
                self.next_oid = self.next_oid.max(view.oid + 1);
                self.views.insert(view.oid, view.clone());
            }
            CatalogOp::DropView { oid } => {
                self.views.remove(oid);
            }
            CatalogOp::PutFunction(f) => {
                self.next_oid = self.next_oid.max(f.oid + 1);
                self.functions.insert(f.oid, f.clone());
            }
            CatalogOp::DropFunction { oid } => {
                self.functions.remove(oid);
            }
            CatalogOp::SetIntegerNowFunc { oid, func } => {
                let t = self.tables.get_mut(oid).ok_or_else(|| missing(*oid))?;
                let h = t.hypertable.as_mut().ok_or_else(|| {
                    TemporaError::internal(format!("table {oid} is not a hypertable"))
                })?;
                h.integer_now_func = func.clone();
            }
            CatalogOp::Invalidate { oid, start, end } => {
                for v in self.views.values_mut() {
                    let Some(c) = v.continuous.as_mut().filter(|c| c.raw_oid == *oid) else {
                        continue;
                    };
                    let Some(threshold) = c.threshold else {
                        continue;
                    };
                    let end = (*end).min(threshold);
                    if *start < end {
                        c.invalidations.push((*start, end));
                    }
                }
            }
            CatalogOp::CreateExtension { name } => {
                if !self.extensions.contains(name) {
                    self.extensions.push(name.clone());
                }
            }
            CatalogOp::PutRole(role) => {
                self.next_oid = self.next_oid.max(role.oid + 1);
                self.roles.insert(role.oid, role.clone());
            }
            CatalogOp::DropRole { oid } => {
                self.roles.remove(oid);
            }
            CatalogOp::PutDatabase(db) => {
                self.next_oid = self.next_oid.max(db.oid + 1);
                self.databases.insert(db.oid, db.clone());
            }
            CatalogOp::DropDatabase { oid } => {
                self.databases.remove(oid);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_quoted_as_postgresql_quotes_them() {
        for (name, quoted) in [
            ("host", "host"),
            ("_x1", "_x1"),
            ("time", "\"time\""),
            ("int", "\"int\""),
            ("values", "\"values\""),
            ("select", "\"select\""),
            ("left", "\"left\""),
            ("date", "date"),
            ("name", "name"),
            ("Foo", "\"Foo\""),
            ("a b", "\"a b\""),
            ("a$", "\"a$\""),
            ("1a", "\"1a\""),
            ("q\"t", "\"q\"\"t\""),
        ] {
            assert_eq!(quote_identifier(name), quoted, "{name}");
        }
        assert!(QUOTED_KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    fn table_with(ranges: &[(u32, i64, i64)]) -> TableDef {
        TableDef {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            chunks: ranges
                .iter()
                .map(|&(id, range_start, range_end)| {
                    let chunk = ChunkDef {
                        id,
                        range_start,
                        range_end,
                        ..Default::default()
                    };
                    (id, chunk)
                })
                .collect(),
            ..Default::default()
        }
    }

    /// New chunks never overlap old ones of another width.
    #[test]
    fn new_chunk_ranges_are_cut_around_existing_chunks() {
        let mut t = table_with(&[(1, 0, 70), (2, 140, 210)]);
        t.hypertable = Some(HypertableDef {
            id: 1,
            time_column: "time".into(),
            chunk_interval: 100,
            space_dimensions: vec![],
            dimension_ids: vec![],
            integer_now_func: None,
        });
        let range = |t: &TableDef, x: i64| {
            let c = t.new_chunk_cube(x, &[]).unwrap();
            (c.range_start, c.range_end)
        };
        // Width 100: [0,100) would overlap chunk 1, [100,200) chunk 2.
        assert_eq!(range(&t, 80), (70, 100));
        assert_eq!(range(&t, 120), (100, 140));
        assert_eq!(range(&t, 250), (210, 300));
        assert_eq!(range(&t, -5), (-100, 0));
        t.chunks.clear();
        assert_eq!(range(&t, -5), (-100, 0));
    }

    /// A hypertable with a space dimension of `n` partitions, chunk width 100.
    fn spaced(n: u16) -> TableDef {
        let mut t = table_with(&[]);
        t.hypertable = Some(HypertableDef {
            id: 1,
            time_column: "time".into(),
            chunk_interval: 100,
            space_dimensions: vec![("device".into(), n)],
            dimension_ids: vec![],
            integer_now_func: None,
        });
        t
    }

    fn add(t: &mut TableDef, cube: ChunkCube) -> u32 {
        let id = t.chunks.len() as u32 + 1;
        t.chunks.insert(id, cube.chunk(id, None));
        id
    }

    /// One chunk per (time slice, partition); the index finds each.
    #[test]
    fn space_partitions_get_chunks_of_their_own() {
        use crate::partition::{SLICE_MAX, SLICE_MIN};
        let mut t = spaced(2);
        let half = i32::MAX as i64 / 2;
        let low = t.new_chunk_cube(5, &[10]).unwrap();
        assert_eq!(low.hash_ranges, vec![(SLICE_MIN, half)]);
        let a = add(&mut t, low);
        let high = t.new_chunk_cube(5, &[half + 1]).unwrap();
        assert_eq!((high.range_start, high.range_end), (0, 100));
        assert_eq!(high.hash_ranges, vec![(half, SLICE_MAX)]);
        let b = add(&mut t, high);
        let cube = t.new_chunk_cube(150, &[10]).unwrap();
        let c = add(&mut t, cube);
        let index = t.chunk_index();
        for _ in 0..2 {
            assert_eq!(index.find(99, &[0]).map(|c| c.id), Some(a));
            assert_eq!(index.find(0, &[i32::MAX as i64]).map(|c| c.id), Some(b));
            assert_eq!(index.find(150, &[half - 1]).map(|c| c.id), Some(c));
            assert_eq!(index.find(150, &[half]), None);
            assert_eq!(index.find(250, &[0]), None);
        }
    }

    /// After set_number_partitions, a new chunk in a time slice that has
    /// chunks of the old partitioning is cut around them, as TimescaleDB
    /// cuts it; other slices get the new partitioning whole.
    #[test]
    fn new_partitioning_is_cut_around_old_chunks() {
        use crate::partition::SLICE_MIN;
        let mut t = spaced(2);
        let half = i32::MAX as i64 / 2;
        let cube = t.new_chunk_cube(5, &[half + 10]).unwrap();
        add(&mut t, cube);
        if let Some(h) = t.hypertable.as_mut() {
            h.space_dimensions[0].1 = 4;
        }
        let quarter = i32::MAX as i64 / 4;
        // [0, quarter) does not meet [half, MAX): whole.
        let c = t.new_chunk_cube(5, &[1]).unwrap();
        assert_eq!(c.hash_ranges, vec![(SLICE_MIN, quarter)]);
        // [quarter, 2 quarter) does not either (2 quarter < half + 1).
        let c = t.new_chunk_cube(5, &[quarter + 1]).unwrap();
        assert_eq!(c.hash_ranges, vec![(quarter, 2 * quarter)]);
        // The old chunk holds every hash from half on, so no new chunk is
        // asked for there; a point just below it gets [2 quarter, half).
        let c = t.new_chunk_cube(5, &[2 * quarter]).unwrap();
        assert_eq!(c.hash_ranges, vec![(2 * quarter, half)]);
        // Another time slice: the new partitioning.
        let c = t.new_chunk_cube(105, &[half + 10]).unwrap();
        assert_eq!(c.hash_ranges, vec![(2 * quarter, 3 * quarter)]);
        assert_eq!((c.range_start, c.range_end), (100, 200));
    }

    /// The index answers exactly as the scan does, in and out of time order,
    /// across gaps, and with overlapping ranges.
    #[test]
    fn chunk_index_agrees_with_chunk_for() {
        let tables = [
            table_with(&[]),
            // Ids not in time order, a gap between 20 and 30.
            table_with(&[(3, 30, 40), (1, 0, 10), (2, 10, 20), (7, -10, 0)]),
            // Overlapping ranges (a changed chunk interval).
            table_with(&[(1, 0, 10), (2, 5, 25), (3, 25, 30)]),
        ];
        let times: Vec<i64> = (-15..45)
            .chain((-15..45).rev())
            .chain([i64::MIN, i64::MAX])
            .collect();
        for t in &tables {
            let index = t.chunk_index();
            for &x in &times {
                assert_eq!(
                    index.find(x, &[]).map(|c| c.id),
                    t.chunk_for(x, &[]).map(|c| c.id),
                    "time {x} in {:?}",
                    t.chunks.keys().collect::<Vec<_>>()
                );
            }
        }
    }
}

#[cfg(test)]
mod file_series_tests {
    use super::*;

    #[test]
    fn a_files_series_are_a_plain_array_and_optional() {
        let json = r#"{"path":"a","rows":2,"bytes":9,"min_time":1,"max_time":2}"#;
        let old: FileDef = serde_json::from_str(json).unwrap();
        assert_eq!(old.series, None);
        assert_eq!(serde_json::to_string(&old).unwrap(), json);
        let with = FileDef {
            series: Some(FileSeries {
                column: 3,
                values: std::sync::Arc::new(vec![None, Some("h1".into())]),
                newest: std::sync::Arc::new(vec![5, 7]),
                counts: Default::default(),
            }),
            ..old
        };
        let text = serde_json::to_string(&with).unwrap();
        assert!(
            text.ends_with(r#""series":{"column":3,"values":[null,"h1"],"newest":[5,7]}}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<FileDef>(&text).unwrap(), with);
        // Recorded values without their newest times.
        let values_only =
            r#"{"path":"a","rows":2,"bytes":9,"series":{"column":3,"values":["h1"]}}"#;
        let read: FileDef = serde_json::from_str(values_only).unwrap();
        assert!(read.series.unwrap().newest.is_empty());
    }

    fn series(values: &[Option<&str>], counts: &[u64]) -> FileSeries {
        FileSeries {
            column: 1,
            values: std::sync::Arc::new(values.iter().map(|v| v.map(String::from)).collect()),
            newest: std::sync::Arc::new(vec![0; values.len()]),
            counts: std::sync::Arc::new(counts.to_vec()),
        }
    }

    #[test]
    fn a_series_rows_are_found_from_the_counts() {
        let s = series(
            &[None, Some("a"), Some("b"), Some("c"), Some("d")],
            &[2, 3, 4, 5, 6],
        );
        assert_eq!(s.runs_of(["a"]), Some(vec![(1, 2..5)]));
        assert_eq!(s.runs_of(["d", "b"]), Some(vec![(2, 5..9), (4, 14..20)]));
        // Repeats and values the file lacks add nothing; neighbours stay
        // apart, each with its value's position.
        assert_eq!(
            s.runs_of(["c", "b", "zz", "b", "0"]),
            Some(vec![(2, 5..9), (3, 9..14)])
        );
        assert_eq!(s.runs_of(["x"]), Some(vec![]));
        assert_eq!(s.runs_of([]), Some(vec![]));
        // Not recorded: unknown.
        assert_eq!(series(&[Some("a")], &[]).runs_of(["a"]), None);
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.ends_with(r#""counts":[2,3,4,5,6]}"#), "{text}");
        assert_eq!(serde_json::from_str::<FileSeries>(&text).unwrap(), s);
    }
}
