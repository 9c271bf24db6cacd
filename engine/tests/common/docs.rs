//! Small documents of every supported binary format, made here from their parts (zip + XML
//! strings, `lopdf` for PDF, MIME text for mail) so each test shows exactly what it feeds in.

use std::io::{Cursor, Write};

use base64::Engine as _;
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

/// A zip of `(name, content)` parts, deflated like real packages.
pub fn zip_of(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in parts {
        // ODF wants `mimetype` stored (uncompressed); for the others it does not matter.
        let method = if *name == "mimetype" {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        w.write_all(content.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
const PKG_REL: &str = "http://schemas.openxmlformats.org/package/2006/relationships";

fn core_xml(title: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{}</dc:title><dc:creator>Ada Lovelace</dc:creator></cp:coreProperties>"#,
        esc(title)
    )
}

/// A DOCX: `(style, text)` paragraphs (`Some("Heading1")`, `Some("ListParagraph")`, `None`),
/// and a table of `rows`.
pub fn docx(title: &str, paras: &[(Option<&str>, &str)], rows: &[&[&str]]) -> Vec<u8> {
    let mut body = String::new();
    for (style, text) in paras {
        body.push_str("<w:p>");
        if let Some(s) = style {
            body.push_str(&format!(r#"<w:pPr><w:pStyle w:val="{s}"/></w:pPr>"#));
        }
        body.push_str(&format!(
            r#"<w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">{}</w:t></w:r></w:p>"#,
            esc(text)
        ));
    }
    if !rows.is_empty() {
        body.push_str("<w:tbl>");
        for r in rows {
            body.push_str("<w:tr>");
            for c in *r {
                body.push_str(&format!(
                    "<w:tc><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:tc>",
                    esc(c)
                ));
            }
            body.push_str("</w:tr>");
        }
        body.push_str("</w:tbl>");
    }
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W}"><w:body>{body}<w:sectPr/></w:body></w:document>"#
    );
    zip_of(&[
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            &format!(
                r#"<?xml version="1.0"?><Relationships xmlns="{PKG_REL}"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="word/document.xml"/></Relationships>"#
            ),
        ),
        ("word/document.xml", &doc),
        ("docProps/core.xml", &core_xml(title)),
    ])
}

/// A PPTX of `(title, body, notes)` slides. The slide files are numbered in reverse so the
/// order must come from `presentation.xml`, not from the file names.
pub fn pptx(slides: &[(&str, &str, Option<&str>)]) -> Vec<u8> {
    const P: &str = "http://schemas.openxmlformats.org/presentationml/2006/main";
    const A: &str = "http://schemas.openxmlformats.org/drawingml/2006/main";
    let shape = |ph: &str, text: &str| {
        format!(
            r#"<p:sp><p:nvSpPr><p:cNvPr id="2" name="x"/><p:cNvSpPr/><p:nvPr><p:ph type="{ph}"/></p:nvPr></p:nvSpPr><p:txBody><a:bodyPr/><a:p><a:r><a:rPr lang="en-US"/><a:t>{}</a:t></a:r></a:p></p:txBody></p:sp>"#,
            esc(text)
        )
    };
    let n = slides.len();
    let mut parts: Vec<(String, String)> = vec![];
    let mut ids = String::new();
    let mut pres_rels = String::new();
    for (i, (title, body, notes)) in slides.iter().enumerate() {
        let file = n - i; // reverse numbering
        ids.push_str(&format!(
            r#"<p:sldId id="{}" r:id="rId{}"/>"#,
            256 + i,
            i + 10
        ));
        pres_rels.push_str(&format!(
            r#"<Relationship Id="rId{}" Type="{REL}/slide" Target="slides/slide{file}.xml"/>"#,
            i + 10
        ));
        parts.push((
            format!("ppt/slides/slide{file}.xml"),
            format!(
                r#"<?xml version="1.0"?><p:sld xmlns:p="{P}" xmlns:a="{A}" xmlns:r="{REL}"><p:cSld><p:spTree>{}{}{}</p:spTree></p:cSld></p:sld>"#,
                shape("title", title),
                shape("body", body),
                shape("sldNum", &format!("{}", i + 1)),
            ),
        ));
        if let Some(notes) = notes {
            parts.push((
                format!("ppt/slides/_rels/slide{file}.xml.rels"),
                format!(
                    r#"<?xml version="1.0"?><Relationships xmlns="{PKG_REL}"><Relationship Id="rId2" Type="{REL}/notesSlide" Target="../notesSlides/notesSlide{file}.xml"/></Relationships>"#
                ),
            ));
            parts.push((
                format!("ppt/notesSlides/notesSlide{file}.xml"),
                format!(
                    r#"<?xml version="1.0"?><p:notes xmlns:p="{P}" xmlns:a="{A}"><p:cSld><p:spTree>{}{}</p:spTree></p:cSld></p:notes>"#,
                    shape("sldImg", ""),
                    shape("body", notes)
                ),
            ));
        }
    }
    parts.push((
        "ppt/presentation.xml".into(),
        format!(
            r#"<?xml version="1.0"?><p:presentation xmlns:p="{P}" xmlns:r="{REL}"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"#
        ),
    ));
    parts.push((
        "ppt/_rels/presentation.xml.rels".into(),
        format!(
            r#"<?xml version="1.0"?><Relationships xmlns="{PKG_REL}">{pres_rels}</Relationships>"#
        ),
    ));
    parts.push(("docProps/core.xml".into(), core_xml("Quarterly review")));
    let refs: Vec<(&str, &str)> = parts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    zip_of(&refs)
}

fn col(i: usize) -> char {
    (b'A' + i as u8) as char
}

/// An XLSX of `(sheet name, rows)`; cells that parse as numbers are numbers, the rest inline
/// strings.
pub fn xlsx(sheets: &[(&str, &[&[&str]])]) -> Vec<u8> {
    const S: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    let mut parts: Vec<(String, String)> = vec![];
    let mut list = String::new();
    let mut rels = String::new();
    for (i, (name, rows)) in sheets.iter().enumerate() {
        list.push_str(&format!(
            r#"<sheet name="{}" sheetId="{}" r:id="rId{}"/>"#,
            esc(name),
            i + 1,
            i + 1
        ));
        rels.push_str(&format!(
            r#"<Relationship Id="rId{}" Type="{REL}/worksheet" Target="worksheets/sheet{}.xml"/>"#,
            i + 1,
            i + 1
        ));
        let mut data = String::new();
        for (r, row) in rows.iter().enumerate() {
            data.push_str(&format!(r#"<row r="{}">"#, r + 1));
            for (c, v) in row.iter().enumerate() {
                let at = format!("{}{}", col(c), r + 1);
                if v.parse::<f64>().is_ok() {
                    data.push_str(&format!(r#"<c r="{at}"><v>{v}</v></c>"#));
                } else {
                    data.push_str(&format!(
                        r#"<c r="{at}" t="inlineStr"><is><t>{}</t></is></c>"#,
                        esc(v)
                    ));
                }
            }
            data.push_str("</row>");
        }
        parts.push((
            format!("xl/worksheets/sheet{}.xml", i + 1),
            format!(
                r#"<?xml version="1.0"?><worksheet xmlns="{S}"><sheetData>{data}</sheetData></worksheet>"#
            ),
        ));
    }
    parts.push((
        "[Content_Types].xml".into(),
        r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#.into(),
    ));
    parts.push((
        "_rels/.rels".into(),
        format!(r#"<?xml version="1.0"?><Relationships xmlns="{PKG_REL}"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#),
    ));
    parts.push((
        "xl/workbook.xml".into(),
        format!(r#"<?xml version="1.0"?><workbook xmlns="{S}" xmlns:r="{REL}"><sheets>{list}</sheets></workbook>"#),
    ));
    parts.push((
        "xl/_rels/workbook.xml.rels".into(),
        format!(r#"<?xml version="1.0"?><Relationships xmlns="{PKG_REL}">{rels}</Relationships>"#),
    ));
    let refs: Vec<(&str, &str)> = parts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    zip_of(&refs)
}

const ODF_NS: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" office:version="1.3""#;

fn odf(mime: &str, body: &str, manifest_extra: &str) -> Vec<u8> {
    zip_of(&[
        ("mimetype", mime),
        (
            "META-INF/manifest.xml",
            &format!(
                r#"<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">{manifest_extra}</manifest:file-entry></manifest:manifest>"#
            ),
        ),
        (
            "content.xml",
            &format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS}><office:body>{body}</office:body></office:document-content>"#
            ),
        ),
        (
            "meta.xml",
            &format!(
                r#"<?xml version="1.0"?><office:document-meta {ODF_NS}><office:meta><dc:title>Field guide</dc:title><meta:initial-creator>Grace Hopper</meta:initial-creator></office:meta></office:document-meta>"#
            ),
        ),
    ])
}

/// An ODT: `(outline level, text)`; level 0 is a body paragraph.
pub fn odt(paras: &[(u8, &str)], encrypted: bool) -> Vec<u8> {
    let mut body = String::from("<office:text>");
    for (level, text) in paras {
        if *level == 0 {
            body.push_str(&format!("<text:p>{}</text:p>", esc(text)));
        } else {
            body.push_str(&format!(
                r#"<text:h text:outline-level="{level}">{}</text:h>"#,
                esc(text)
            ));
        }
    }
    body.push_str(r#"<text:list><text:list-item><text:p>first<text:s text:c="2"/>item</text:p></text:list-item></text:list></office:text>"#);
    let extra = if encrypted {
        r#"<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x"><manifest:algorithm manifest:algorithm-name="Blowfish CFB" manifest:initialisation-vector="x"/></manifest:encryption-data>"#
    } else {
        ""
    };
    odf("application/vnd.oasis.opendocument.text", &body, extra)
}

/// An ODP of `(title, body, notes)` pages.
pub fn odp(pages: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut body = String::from("<office:presentation>");
    for (i, (title, text, notes)) in pages.iter().enumerate() {
        body.push_str(&format!(
            r#"<draw:page draw:name="page{}"><draw:frame presentation:class="title"><draw:text-box><text:p>{}</text:p></draw:text-box></draw:frame><draw:frame presentation:class="outline"><draw:text-box><text:p>{}</text:p></draw:text-box></draw:frame><presentation:notes><draw:page-thumbnail presentation:class="page"/><draw:frame presentation:class="notes"><draw:text-box><text:p>{}</text:p></draw:text-box></draw:frame></presentation:notes></draw:page>"#,
            i + 1,
            esc(title),
            esc(text),
            esc(notes)
        ));
    }
    body.push_str("</office:presentation>");
    odf("application/vnd.oasis.opendocument.presentation", &body, "")
}

/// An ODS of `(sheet name, rows)` (every cell a string).
pub fn ods(sheets: &[(&str, &[&[&str]])]) -> Vec<u8> {
    let mut body = String::from("<office:spreadsheet>");
    for (name, rows) in sheets {
        body.push_str(&format!(r#"<table:table table:name="{}">"#, esc(name)));
        for r in *rows {
            body.push_str("<table:table-row>");
            for c in *r {
                body.push_str(&format!(
                    r#"<table:table-cell office:value-type="string"><text:p>{}</text:p></table:table-cell>"#,
                    esc(c)
                ));
            }
            body.push_str("</table:table-row>");
        }
        body.push_str("</table:table>");
    }
    body.push_str("</office:spreadsheet>");
    odf("application/vnd.oasis.opendocument.spreadsheet", &body, "")
}

/// A PDF with one page per string (Helvetica text, one `Tj` per line), and an info title.
pub fn pdf(title: &str, pages: &[&[&str]]) -> Vec<u8> {
    let mut doc = pdf_doc(title, pages);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// The same PDF, encrypted (RC4, 128 bits) with a user password.
pub fn encrypted_pdf() -> Vec<u8> {
    let mut doc = pdf_doc("Secret", &[&["classified text"]]);
    let version = lopdf::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner",
        user_password: "user-secret",
        key_length: 128,
        permissions: lopdf::Permissions::all(),
    };
    let state = lopdf::EncryptionState::try_from(version).unwrap();
    doc.encrypt(&state).unwrap();
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn pdf_doc(title: &str, pages: &[&[&str]]) -> Document {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids = vec![];
    for lines in pages {
        let mut ops = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 720.into()]),
        ];
        for l in *lines {
            ops.push(Operation::new("Tj", vec![Object::string_literal(*l)]));
            ops.push(Operation::new("Td", vec![0.into(), (-16).into()]));
        }
        ops.push(Operation::new("ET", vec![]));
        let content = Content { operations: ops };
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    let info_id = doc.add_object(dictionary! { "Title" => Object::string_literal(title) });
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set("Info", info_id);
    // Encryption keys are derived from the file identifier.
    let id = Object::String(
        b"0123456789abcdef".to_vec(),
        lopdf::StringFormat::Hexadecimal,
    );
    doc.trailer.set("ID", vec![id.clone(), id]);
    doc
}

/// An EPUB 3 of `(chapter title, paragraph)` chapters; the spine lists them in the given order
/// while the manifest lists them reversed.
pub fn epub(title: &str, chapters: &[(&str, &str)]) -> Vec<u8> {
    let mut parts: Vec<(String, String)> = vec![
        ("mimetype".into(), "application/epub+zip".into()),
        (
            "META-INF/container.xml".into(),
            r#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#.into(),
        ),
    ];
    let mut manifest = String::new();
    let mut spine = String::new();
    for (i, (t, p)) in chapters.iter().enumerate() {
        spine.push_str(&format!(r#"<itemref idref="c{i}"/>"#));
        parts.push((
            format!("OEBPS/text/ch{i}.xhtml"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{}</title></head><body><h1>{}</h1><p>{}</p></body></html>"#,
                esc(t),
                esc(t),
                esc(p)
            ),
        ));
    }
    for i in (0..chapters.len()).rev() {
        manifest.push_str(&format!(
            r#"<item id="c{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>"#
        ));
    }
    parts.push((
        "OEBPS/content.opf".into(),
        format!(
            r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{}</dc:title><dc:creator>Mary Shelley</dc:creator></metadata><manifest>{manifest}</manifest><spine>{spine}</spine></package>"#,
            esc(title)
        ),
    ));
    let refs: Vec<(&str, &str)> = parts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    zip_of(&refs)
}

/// A MIME message with a plain-text body and base64 attachments `(name, content type, bytes)`.
pub fn eml(subject: &str, body: &str, attachments: &[(&str, &str, &[u8])]) -> String {
    let mut m = format!(
        "From: Alice Example <alice@example.com>\r\nTo: Bob <bob@example.com>, carol@example.com\r\nSubject: {subject}\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\nMIME-Version: 1.0\r\n"
    );
    if attachments.is_empty() {
        m.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        ));
        return m;
    }
    m.push_str("Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n");
    m.push_str(&format!(
        "--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ));
    for (name, ctype, bytes) in attachments {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let wrapped: Vec<String> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        m.push_str(&format!(
            "--XYZ\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            wrapped.join("\r\n")
        ));
    }
    m.push_str("--XYZ--\r\n");
    m
}

/// A Jupyter notebook (nbformat 4) with a markdown heading, a code cell and its output.
pub fn notebook(heading: &str, code: &str, output: &str) -> String {
    serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"language_info": {"name": "python"}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": [format!("# {heading}\n"), "\n", "Some prose about the analysis.\n"]},
            {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": code,
             "outputs": [{"output_type": "stream", "name": "stdout", "text": [output]}]}
        ]
    })
    .to_string()
}
