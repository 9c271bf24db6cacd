//! Zip packages (OOXML, ODF, EPUB): opening them, reading their parts with a size cap, and
//! telling an encrypted or damaged package from a readable one.

use std::io::{Cursor, Read};

use zip::ZipArchive;
use zip::result::ZipError;

use super::ParseError;

/// The most one part of a package may decompress to. A zip can declare a small size and inflate
/// to gigabytes (a zip bomb); real document parts stay far below this.
pub(crate) const MAX_PART_BYTES: u64 = 64 * 1024 * 1024;

/// Magic bytes of an OLE compound file: legacy Office binaries, and the wrapper Office puts
/// around a password-protected OOXML package (streams `EncryptionInfo` + `EncryptedPackage`).
const OLE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// `EncryptedPackage` as UTF-16LE, the way a compound file's directory names its stream.
fn encrypted_package_name() -> Vec<u8> {
    "EncryptedPackage"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Whether `bytes` is an OLE compound file.
pub(crate) fn is_ole(bytes: &[u8]) -> bool {
    bytes.starts_with(&OLE_MAGIC)
}

/// Whether `bytes` is a password-protected OOXML file (an OLE file with an `EncryptedPackage`).
pub(crate) fn is_encrypted_ooxml(bytes: &[u8]) -> bool {
    let name = encrypted_package_name();
    is_ole(bytes) && bytes.windows(name.len()).any(|w| w == name.as_slice())
}

/// An open zip package of one format.
pub(crate) struct Package<'a> {
    format: &'static str,
    zip: ZipArchive<Cursor<&'a [u8]>>,
}

fn corrupt(format: &'static str, e: impl std::fmt::Display) -> ParseError {
    ParseError::Corrupt {
        format,
        message: e.to_string(),
    }
}

impl<'a> Package<'a> {
    /// Opens an OOXML/ODF/EPUB package. A password-protected Office file is `Encrypted`; anything
    /// that is not a readable zip is `Corrupt`.
    pub(crate) fn open(format: &'static str, bytes: &'a [u8]) -> Result<Self, ParseError> {
        if is_encrypted_ooxml(bytes) {
            return Err(ParseError::Encrypted {
                format,
                message: "the package is wrapped in Office password protection".into(),
            });
        }
        if is_ole(bytes) {
            return Err(corrupt(
                format,
                "this is a legacy binary Office file (OLE), not a zip package; save it in the current format",
            ));
        }
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(format, e))?;
        Ok(Self { format, zip })
    }

    pub(crate) fn format(&self) -> &'static str {
        self.format
    }

    /// The bytes of part `name`; `None` when there is no such part. An encrypted entry is
    /// `Encrypted`, an unreadable one `Corrupt`.
    pub(crate) fn bytes(&mut self, name: &str) -> Result<Option<Vec<u8>>, ParseError> {
        let format = self.format;
        let file = match self.zip.by_name(name) {
            Ok(f) => f,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(ZipError::UnsupportedArchive(m)) if m == ZipError::PASSWORD_REQUIRED => {
                return Err(ParseError::Encrypted {
                    format,
                    message: format!("part {name} is password-protected"),
                });
            }
            Err(e) => return Err(corrupt(format, format!("part {name}: {e}"))),
        };
        let mut out = Vec::new();
        file.take(MAX_PART_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| corrupt(format, format!("part {name}: {e}")))?;
        if out.len() as u64 > MAX_PART_BYTES {
            return Err(corrupt(
                format,
                format!("part {name} inflates past {MAX_PART_BYTES} bytes"),
            ));
        }
        Ok(Some(out))
    }

    /// Part `name` as text (lossy UTF-8); `None` when there is no such part.
    pub(crate) fn text(&mut self, name: &str) -> Result<Option<String>, ParseError> {
        Ok(self.bytes(name)?.map(|b| super::decode(&b)))
    }

    /// Part `name` as text; a missing part is `Corrupt` (the format requires it).
    pub(crate) fn required_text(&mut self, name: &str) -> Result<String, ParseError> {
        self.text(name)?
            .ok_or_else(|| corrupt(self.format, format!("the required part {name} is missing")))
    }
}

/// Resolves `target` (a relationship target or manifest href) against the folder of `base`
/// (a part name), handling `..` and a leading `/`.
pub(crate) fn resolve(base: &str, target: &str) -> String {
    if let Some(abs) = target.strip_prefix('/') {
        return abs.to_string();
    }
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop(); // the base part's own file name
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_against_the_folder_of_their_base_part() {
        assert_eq!(
            resolve("ppt/presentation.xml", "slides/slide1.xml"),
            "ppt/slides/slide1.xml"
        );
        assert_eq!(
            resolve("ppt/slides/slide1.xml", "../notesSlides/n1.xml"),
            "ppt/notesSlides/n1.xml"
        );
        assert_eq!(resolve("OEBPS/content.opf", "/x/y.xhtml"), "x/y.xhtml");
        assert_eq!(resolve("content.opf", "ch1.xhtml"), "ch1.xhtml");
    }

    #[test]
    fn a_non_zip_is_corrupt_and_an_ole_wrapper_with_an_encrypted_package_is_encrypted() {
        assert!(matches!(
            Package::open("DOCX", b"not a zip at all"),
            Err(ParseError::Corrupt { .. })
        ));
        let mut ole = OLE_MAGIC.to_vec();
        ole.extend_from_slice(&[0; 100]);
        assert!(matches!(
            Package::open("DOCX", &ole),
            Err(ParseError::Corrupt { .. })
        ));
        ole.extend(encrypted_package_name());
        assert!(matches!(
            Package::open("DOCX", &ole),
            Err(ParseError::Encrypted { .. })
        ));
    }
}
