//! `instant-db export`: the arguments and the printed summary.

use std::path::PathBuf;

use clap::Args;

use super::Format;
use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::{Error, Result};
use crate::export::{ExportFormat, ExportOptions};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// File format of the documents (and of the index).
    #[arg(
        long = "as",
        value_enum,
        default_value = "markdown",
        alias = "export-format"
    )]
    pub export_format: ExportFormat,
    /// Output directory: created, or empty (nothing is overwritten).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Largest file in MB (decimals allowed): a larger document is split into parts at
    /// paragraph boundaries.
    #[arg(long)]
    pub max_size: Option<f64>,
    /// One subdirectory per document type.
    #[arg(long)]
    pub split_by_type: bool,
    /// Leave out source, type, dates and metadata.
    #[arg(long)]
    pub no_metadata: bool,
    /// Only the documents matching, as for search: `field<op>value` (repeatable) or JSON.
    #[arg(long)]
    pub filter: Vec<String>,
}

pub fn run(args: ExportArgs, config: Config, fmt: Format) -> Result<i32> {
    let max_bytes = crate::export::max_bytes_from_mb(args.max_size, "--max-size")?;
    let filter = match super::parse_filter(&args.filter)? {
        Some(f) => f.conditions()?,
        None => Vec::new(),
    };
    let opts = ExportOptions {
        format: args.export_format,
        max_bytes,
        split_by_type: args.split_by_type,
        metadata: !args.no_metadata,
        filter,
    };
    let engine = Engine::open(config, ModelLoading::Skip)?;
    let report = crate::export::export(&engine, &args.output, &opts)?;
    let value = serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?;
    match fmt {
        Format::Json => super::output::json_or_text(fmt, &value),
        Format::Text => println!(
            "exported {} documents into {} files ({} split by --max-size), {} bytes, in {}; index: {}",
            report.documents,
            report.files,
            report.split_documents,
            report.bytes,
            report.dir,
            report.index
        ),
    }
    Ok(0)
}
