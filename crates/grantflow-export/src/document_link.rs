//! IATI `document-link`s: a document filed on a fund or a grant (docs/domain.md, "Documents"),
//! as the 2.03 schema's `documentLinkBase` wants it: `@url` and `@format` required, then
//! `title`, `description`, `category`, `document-date` in that order.

use std::io::Write;

use grantflow_domain::DocumentState;

use crate::iati::visible_or;
use crate::xml::XmlWriter;

/// The media type written when a document's address names no known file type: any bytes.
pub(crate) const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";

/// File extensions (lowercase) and the IANA media type of each.
const MEDIA_TYPES: &[(&str, &str)] = &[
    ("pdf", "application/pdf"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("xml", "application/xml"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
];

/// Writes one `document-link` per document that has a url, in attachment order; returns how
/// many were written.
///
/// IATI requires `@url` (the link *is* the published document), so a document filed
/// without a url is left out of the XML: it stays in the log and in the fund's or grant's
/// figures, and is published once it is attached again with an address. `@format` is the
/// media type the address's file extension names, else [`DEFAULT_MEDIA_TYPE`]; the
/// description gives the file's SHA-256, so that a reader can check the copy they fetch.
pub(crate) fn write_document_links<W: Write>(
    xml: &mut XmlWriter<W>,
    documents: &[DocumentState],
) -> std::io::Result<u64> {
    let mut written = 0;
    for document in documents {
        let Some(url) = &document.url else {
            continue;
        };
        let url = uri_for_xml(url);
        xml.start(
            "document-link",
            &[("url", &url), ("format", media_type(&url))],
        )?;
        xml.narrative_in(
            "title",
            &[],
            visible_or(&document.title, &document.document),
        )?;
        xml.narrative_in(
            "description",
            &[],
            &format!("SHA-256 of the file: {}", document.sha256),
        )?;
        xml.empty("category", &[("code", &document.category)])?;
        if let Some(issued_on) = document.issued_on {
            xml.empty("document-date", &[("iso-date", &issued_on.to_string())])?;
        }
        xml.end()?;
        written += 1;
    }
    Ok(written)
}

/// The media type that the last path segment's extension names (the query and fragment
/// left aside; case ignored), or [`DEFAULT_MEDIA_TYPE`].
pub(crate) fn media_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let after_scheme = path.split_once("://").map_or(path, |(_, rest)| rest);
    // The authority is not a file name: `https://example.org` has no extension.
    let Some((_, file_path)) = after_scheme.split_once('/') else {
        return DEFAULT_MEDIA_TYPE;
    };
    let file = file_path.rsplit('/').next().unwrap_or_default();
    let Some((_, extension)) = file.rsplit_once('.') else {
        return DEFAULT_MEDIA_TYPE;
    };
    MEDIA_TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(extension))
        .map_or(DEFAULT_MEDIA_TYPE, |(_, media_type)| media_type)
}

/// The address as an RFC 3986 URI that `xsd:anyURI` (and every URI parser) accepts: the
/// same address, with each character a URI cannot hold percent-encoded (as UTF-8 bytes):
/// non-ASCII characters, `"<>\^`{|}`, a `%` not followed by two hex digits, every `#` after
/// the first (the fragment holds none), and `[`/`]` outside the authority (where an IPv6
/// literal may use them). An address that needs none of this is returned unchanged.
pub(crate) fn uri_for_xml(url: &str) -> String {
    let authority_start = url.find("://").map_or(0, |at| at + 3);
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |at| authority_start + at);
    let bytes = url.as_bytes();
    let mut out = String::with_capacity(url.len());
    let mut in_fragment = false;
    for (at, c) in url.char_indices() {
        let in_authority = (authority_start..authority_end).contains(&at);
        let keep = match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' => true,
            '-' | '.' | '_' | '~' | ':' | '/' | '?' | '@' => true,
            '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '=' => true,
            '%' => bytes
                .get(at + 1..at + 3)
                .is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit)),
            '#' => !in_fragment,
            '[' | ']' => in_authority,
            _ => false,
        };
        if c == '#' {
            in_fragment = true;
        }
        if keep {
            out.push(c);
        } else {
            let mut buffer = [0u8; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_names_the_media_type() {
        assert_eq!(
            media_type("https://example.org/mou/MEX-2012.PDF?v=2#page=3"),
            "application/pdf"
        );
        assert_eq!(media_type("https://example.org/a.html"), "text/html");
        assert_eq!(media_type("https://example.org/report"), DEFAULT_MEDIA_TYPE);
        assert_eq!(media_type("https://example.org"), DEFAULT_MEDIA_TYPE);
        assert_eq!(media_type("https://example.pdf"), DEFAULT_MEDIA_TYPE);
        assert_eq!(media_type("https://example.org/a.b/"), DEFAULT_MEDIA_TYPE);
        assert_eq!(media_type("https://example.org/a.zip"), DEFAULT_MEDIA_TYPE);
    }

    #[test]
    fn an_address_becomes_a_uri_without_changing_what_it_names() {
        let plain = "https://example.org/docs/a_b-c.pdf?x=1&y=%20#frag";
        assert_eq!(uri_for_xml(plain), plain);
        assert_eq!(
            uri_for_xml("https://[::1]:8080/a%zz/é[1]\"x\"#a#b"),
            "https://[::1]:8080/a%25zz/%C3%A9%5B1%5D%22x%22#a%23b"
        );
        assert_eq!(uri_for_xml("http://h/%4"), "http://h/%254");
    }
}
