//! A small element tree over `quick-xml` for the XML parts of office packages (OOXML, ODF,
//! EPUB). Those parts are read whole and queried by structure (a paragraph's style, a slide's
//! placeholders), which a tree makes plain; the parts are small enough to hold in memory.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ParseError;

/// One element: its local name (prefix stripped), attributes by qualified name, children.
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
}

fn start(e: &BytesStart<'_>) -> Element {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let attrs = e
        .attributes()
        .flatten()
        .map(|a| {
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let value = a
                .unescape_value()
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned());
            (key, value)
        })
        .collect();
    Element {
        name,
        attrs,
        children: Vec::new(),
    }
}

/// Parses `xml` into its root element. Broken XML in a package part is a `Corrupt` file.
pub(crate) fn parse(format: &'static str, part: &str, xml: &str) -> Result<Element, ParseError> {
    let corrupt = |m: String| ParseError::Corrupt {
        format,
        message: format!("part {part}: {m}"),
    };
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| corrupt(format!("invalid XML: {e}")))?;
        match ev {
            Event::Start(e) => stack.push(start(&e)),
            Event::Empty(e) => {
                let el = start(&e);
                if let Some(top) = stack.last_mut() {
                    top.children.push(Node::Element(el));
                }
            }
            Event::End(_) => {
                if stack.len() < 2 {
                    return Err(corrupt("unbalanced end tag".into()));
                }
                if let Some(el) = stack.pop()
                    && let Some(top) = stack.last_mut()
                {
                    top.children.push(Node::Element(el));
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| corrupt(e.to_string()))?;
                push_text(&mut stack, &s);
            }
            Event::CData(t) => push_text(&mut stack, &String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().ok().flatten().map(String::from)
                } else {
                    let name = String::from_utf8_lossy(&r).into_owned();
                    quick_xml::escape::resolve_xml_entity(&name).map(str::to_string)
                };
                if let Some(s) = resolved {
                    push_text(&mut stack, &s);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if stack.len() != 1 {
        return Err(corrupt("unexpected end of document".into()));
    }
    stack
        .pop()
        .and_then(|doc| doc.children.into_iter().find_map(Node::into_element))
        .ok_or_else(|| corrupt("no root element".into()))
}

fn push_text(stack: &mut [Element], s: &str) {
    if let Some(top) = stack.last_mut() {
        match top.children.last_mut() {
            Some(Node::Text(t)) => t.push_str(s),
            _ => top.children.push(Node::Text(s.to_string())),
        }
    }
}

impl Node {
    fn into_element(self) -> Option<Element> {
        match self {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        }
    }
}

impl Element {
    /// The attribute with qualified name `qname` (e.g. `w:val`, `r:id`).
    pub(crate) fn attr(&self, qname: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == qname)
            .map(|(_, v)| v.as_str())
    }

    /// Child elements.
    pub(crate) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// Every descendant element named `name`, in document order (not below a match).
    pub(crate) fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for e in self.elements() {
            if e.name == name {
                out.push(e);
            } else {
                e.find_all(name, out);
            }
        }
    }

    /// The first descendant element named `name`.
    pub(crate) fn find(&self, name: &str) -> Option<&Element> {
        let mut v = Vec::new();
        self.find_all(name, &mut v);
        v.into_iter().next()
    }

    /// All text below this element, with `map` deciding what an element contributes: `Some`
    /// replaces the element (a tab, a line break), `None` descends into it.
    pub(crate) fn text_with(&self, map: &dyn Fn(&Element) -> Option<String>) -> String {
        let mut out = String::new();
        self.collect_text(map, &mut out);
        out
    }

    fn collect_text(&self, map: &dyn Fn(&Element) -> Option<String>, out: &mut String) {
        for n in &self.children {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => match map(e) {
                    Some(s) => out.push_str(&s),
                    None => e.collect_text(map, out),
                },
            }
        }
    }

    /// All text below this element.
    pub(crate) fn text(&self) -> String {
        self.text_with(&|_| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_keeps_local_names_qualified_attributes_and_text_in_order() {
        let root = parse(
            "TEST",
            "p.xml",
            r#"<?xml version="1.0"?><w:doc xmlns:w="u"><w:p w:val="H1">a &amp; <w:t>b</w:t><w:br/>c</w:p></w:doc>"#,
        )
        .unwrap_or_default();
        assert_eq!(root.name, "doc");
        let p = root.find("p").map(|p| p.attr("w:val"));
        assert_eq!(p, Some(Some("H1")));
        let text = root.text_with(&|e| (e.name == "br").then(|| "\n".to_string()));
        assert_eq!(text, "a & b\nc");
        assert!(matches!(
            parse("TEST", "p.xml", "<a><b></a>"),
            Err(ParseError::Corrupt { .. })
        ));
    }
}
