//! Tempora's query layer: the DataFusion session with hypertable providers and
//! TimescaleDB's functions.
// Errors carry PostgreSQL's fields (detail, hint, position, context): a
// large Err is the price of one error type across layers, paid only on failure.
#![allow(clippy::result_large_err)]

pub mod aggregates;
pub mod at_time_zone;
pub mod bytea_functions;
pub mod caggs;
mod calendar;
pub mod checked_arithmetic;
pub mod chunks;
pub mod compression;
pub mod date_part;
pub mod date_trunc;
pub mod expr_names;
pub mod extension_functions;
pub mod from_char;
pub mod information;
pub mod information_schema;
pub mod interval_compare;
pub mod interval_functions;
pub mod intervals;
pub mod json;
pub mod jsonb;
pub mod last_point;
pub mod late_scan;
pub mod markers;
pub mod newest_buckets;
pub mod newest_series;
pub mod operand_types;
pub mod pg_avg;
pub mod pg_casts;
pub mod pg_functions;
pub mod pg_literals;
pub mod pg_math;
pub mod pg_relations;
pub mod pg_strings;
pub mod pg_sum;
pub mod pg_text;
pub mod pg_types;
pub mod provider;
pub mod sequences;
pub mod series_runs;
pub mod session;
pub mod set_comparisons;
pub mod sleep;
pub mod small_scans;
pub mod time_bucket;
pub mod to_char;
pub mod unknown_literals;
pub mod variables;
pub mod zone_casts;

pub use session::{new_session_context, session_context_with, DATABASE, PUBLIC};

/// The TimescaleDB version whose SQL surface Tempora follows.
pub const TIMESCALEDB_VERSION: &str = "2.28.3";

pub use tempora_catalog::DEFAULT_LOCALE;

/// Splits `schema.name` (unquoted, or with double quotes) into its parts,
/// defaulting the schema to `public` and folding unquoted names to lower case.
pub fn split_qualified(rel: &str) -> (String, String) {
    fn ident(s: &str) -> String {
        let s = s.trim();
        match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(q) => q.replace("\"\"", "\""),
            None => s.to_lowercase(),
        }
    }
    match rel.split_once('.') {
        Some((schema, name)) if !rel.starts_with('"') || schema.ends_with('"') => {
            (ident(schema), ident(name))
        }
        _ => (PUBLIC.to_string(), ident(rel)),
    }
}

/// The hypertable named by `rel` (`'t'`, `'s.t'`) and its time column's
/// type, with TimescaleDB's errors: 42P01 when no such relation, TS001 when
/// it is not a hypertable.
pub fn hypertable_named<'a>(
    state: &'a tempora_catalog::CatalogState,
    rel: &str,
) -> tempora_common::Result<(&'a tempora_catalog::TableDef, tempora_catalog::PgType)> {
    use tempora_common::{SqlState, TemporaError};
    let (schema, name) = split_qualified(rel);
    // A continuous aggregate stands for its materialization.
    let table = match state.table(&schema, &name) {
        Some(t) => t,
        None => state
            .view(&schema, &name)
            .and_then(|v| v.continuous.as_ref())
            .and_then(|c| state.table_by_oid(c.mat_oid))
            .ok_or_else(|| TemporaError::undefined_table(rel))?,
    };
    let h = table.hypertable.as_ref().ok_or_else(|| {
        TemporaError::new(
            SqlState::TS_HYPERTABLE_NOT_EXIST,
            format!(
                "\"{}\" is not a hypertable or a continuous aggregate",
                table.name
            ),
        )
    })?;
    let time_type = table
        .column(&h.time_column)
        .map(|c| c.ty.clone())
        .ok_or_else(|| TemporaError::undefined_column(&h.time_column))?;
    Ok((table, time_type))
}
