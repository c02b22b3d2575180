//! A small streaming XML writer: elements go straight to the output as they are opened, so a
//! document is never held in memory. Element and attribute names are `'static` (they come
//! from the IATI schema, never from data); every value and text is escaped here.

use std::io::{self, Write};

/// Spaces per nesting level.
const INDENT_SPACES: usize = 2;

/// Writes indented XML to `out`. Elements hold either child elements or text, never both,
/// so indentation never changes a value.
pub(crate) struct XmlWriter<W: Write> {
    out: W,
    open: Vec<&'static str>,
}

impl<W: Write> XmlWriter<W> {
    /// A writer that has written nothing yet.
    pub(crate) fn new(out: W) -> Self {
        XmlWriter {
            out,
            open: Vec::new(),
        }
    }

    /// The XML declaration.
    pub(crate) fn declaration(&mut self) -> io::Result<()> {
        self.out
            .write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
    }

    /// A comment; `text` must not come from data (a comment cannot be escaped).
    pub(crate) fn comment(&mut self, text: &str) -> io::Result<()> {
        debug_assert!(!text.contains("--"), "a comment cannot hold --");
        self.indent()?;
        writeln!(self.out, "<!-- {} -->", text.replace("--", "- -"))
    }

    /// Opens an element that will hold child elements.
    pub(crate) fn start(
        &mut self,
        name: &'static str,
        attributes: &[(&str, &str)],
    ) -> io::Result<()> {
        self.indent()?;
        self.tag_open(name, attributes)?;
        self.out.write_all(b">\n")?;
        self.open.push(name);
        Ok(())
    }

    /// Closes the innermost open element.
    pub(crate) fn end(&mut self) -> io::Result<()> {
        let Some(name) = self.open.pop() else {
            return Err(io::Error::other(
                "XML writer: end() without an open element",
            ));
        };
        self.indent()?;
        writeln!(self.out, "</{name}>")
    }

    /// An element without content: `<name a="v"/>`.
    pub(crate) fn empty(
        &mut self,
        name: &'static str,
        attributes: &[(&str, &str)],
    ) -> io::Result<()> {
        self.indent()?;
        self.tag_open(name, attributes)?;
        self.out.write_all(b"/>\n")
    }

    /// An element holding text: `<name a="v">text</name>`.
    pub(crate) fn text(
        &mut self,
        name: &'static str,
        attributes: &[(&str, &str)],
        text: &str,
    ) -> io::Result<()> {
        self.indent()?;
        self.tag_open(name, attributes)?;
        self.out.write_all(b">")?;
        self.out.write_all(escape_text(text).as_bytes())?;
        writeln!(self.out, "</{name}>")
    }

    /// `<name><narrative>text</narrative></name>`: IATI's text-holding shape.
    pub(crate) fn narrative_in(
        &mut self,
        name: &'static str,
        attributes: &[(&str, &str)],
        text: &str,
    ) -> io::Result<()> {
        self.start(name, attributes)?;
        self.text("narrative", &[], text)?;
        self.end()
    }

    /// Checks every element was closed and flushes; returns the output.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if let Some(name) = self.open.last() {
            return Err(io::Error::other(format!(
                "XML writer: <{name}> was never closed"
            )));
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn tag_open(&mut self, name: &'static str, attributes: &[(&str, &str)]) -> io::Result<()> {
        write!(self.out, "<{name}")?;
        for (key, value) in attributes {
            write!(self.out, " {key}=\"{}\"", escape_attribute(value))?;
        }
        Ok(())
    }

    fn indent(&mut self) -> io::Result<()> {
        let width = self.open.len() * INDENT_SPACES;
        write!(self.out, "{:width$}", "")
    }
}

/// Whether XML 1.0 allows the character at all (section 2.2, `Char`): tab, line feed,
/// carriage return and everything from U+0020 except U+FFFE and U+FFFF (Rust's `char` holds
/// no surrogates).
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= '\u{20}' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// Text content: `&`, `<` and `>` escaped, carriage returns kept as `&#13;` (a parser
/// would turn a raw one into a line feed), characters XML cannot hold dropped.
pub(crate) fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| is_xml_char(*c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            other => out.push(other),
        }
    }
    out
}

/// An attribute value in double quotes: as text, plus both quotes, and tab and line feed
/// as character references (attribute normalization would turn them into spaces).
pub(crate) fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| is_xml_char(*c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_what_xml_cannot_hold() {
        assert_eq!(
            escape_text("A & B <c> \"d\" 'e' \u{1}\u{FFFE}ñ\r"),
            "A &amp; B &lt;c&gt; \"d\" 'e' ñ&#13;"
        );
        assert_eq!(
            escape_attribute("a\"b'c&<>\t\n"),
            "a&quot;b&apos;c&amp;&lt;&gt;&#9;&#10;"
        );
    }

    #[test]
    fn writes_nested_elements_with_indentation() {
        let mut xml = XmlWriter::new(Vec::new());
        xml.start("a", &[("x", "1&2")]).unwrap();
        xml.narrative_in("title", &[], "T<>").unwrap();
        xml.empty("b", &[]).unwrap();
        xml.end().unwrap();
        let bytes = xml.finish().unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "<a x=\"1&amp;2\">\n  <title>\n    <narrative>T&lt;&gt;</narrative>\n  </title>\n  <b/>\n</a>\n"
        );
    }

    #[test]
    fn an_unclosed_element_is_an_error() {
        let mut xml = XmlWriter::new(Vec::new());
        xml.start("a", &[]).unwrap();
        assert!(xml.finish().is_err());
    }
}
