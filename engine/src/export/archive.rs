//! An export as one tar archive written to any `Write` (`POST /api/export` streams it): the
//! same files [`super::export`] writes into a directory, at the same relative paths.

use std::io::Write;

use super::ExportSink;
use crate::error::{Error, Result};

/// Writes each exported file as a regular tar entry. Call [`TarSink::finish`] at the end:
/// only that writes the end-of-archive blocks and flushes the writer.
pub struct TarSink<W: Write> {
    tar: tar::Builder<W>,
    /// Modification time of every entry (the export's start), so extracted files carry when
    /// they were exported rather than 1970.
    mtime: u64,
}

fn tar_error(e: std::io::Error) -> Error {
    Error::io("cannot write the export archive", e)
}

impl<W: Write> TarSink<W> {
    pub fn new(writer: W) -> Self {
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        TarSink {
            tar: tar::Builder::new(writer),
            mtime,
        }
    }

    /// Ends the archive and flushes the writer, which it gives back.
    pub fn finish(self) -> Result<W> {
        let mut w = self.tar.into_inner().map_err(tar_error)?;
        w.flush().map_err(tar_error)?;
        Ok(w)
    }
}

impl<W: Write> ExportSink for TarSink<W> {
    fn file(&mut self, rel: &str, content: &str) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        // `append_data` writes a GNU long-name entry first when the path needs one.
        self.tar
            .append_data(&mut header, rel, content.as_bytes())
            .map_err(tar_error)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_file_is_an_entry_at_its_path_with_its_content_and_long_paths_survive() {
        let long = format!("how_to/{}-abc.md", "a".repeat(150));
        let mut sink = TarSink::new(Vec::new());
        sink.file("index.md", "# Export\n").unwrap();
        sink.file(&long, "body").unwrap();
        let bytes = sink.finish().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = vec![];
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            assert_eq!(entry.header().mode().unwrap(), 0o644);
            seen.push((path, text));
        }
        assert_eq!(
            seen,
            vec![
                ("index.md".to_string(), "# Export\n".to_string()),
                (long, "body".to_string())
            ]
        );
    }
}
