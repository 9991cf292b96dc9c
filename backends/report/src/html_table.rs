//! The page's table and paragraph builders, shared by `html` and
//! `html_compare`.

use crate::fmt::esc;
use std::fmt::Write;

/// An HTML table built row by row.
pub(crate) struct Table {
    html: String,
}

impl Table {
    pub(crate) fn new(class: &str, head: &[&str]) -> Table {
        let mut html = if class.is_empty() {
            "<table><tr>".to_string()
        } else {
            format!("<table class=\"{class}\"><tr>")
        };
        for h in head {
            let _ = write!(html, "<th>{}</th>", esc(h));
        }
        html.push_str("</tr>\n");
        Table { html }
    }
    /// A row; cells starting with `#` are numbers (right-aligned, `#`
    /// dropped). Cells are escaped.
    pub(crate) fn row(&mut self, cells: &[String]) {
        self.row_class("", cells);
    }
    pub(crate) fn row_class(&mut self, class: &str, cells: &[String]) {
        if class.is_empty() {
            self.html.push_str("<tr>");
        } else {
            let _ = write!(self.html, "<tr class=\"{class}\">");
        }
        for c in cells {
            match c.strip_prefix('#') {
                Some(num) => {
                    let _ = write!(self.html, "<td class=\"n\">{}</td>", esc(num));
                }
                None => {
                    let _ = write!(self.html, "<td>{}</td>", esc(c));
                }
            }
        }
        self.html.push_str("</tr>\n");
    }
    pub(crate) fn end(mut self) -> String {
        self.html.push_str("</table>\n");
        self.html
    }
}

/// A number cell for [`Table::row`].
pub(crate) fn num(s: String) -> String {
    format!("#{s}")
}

/// A paragraph of escaped text, with an optional class.
pub(crate) fn p(out: &mut String, class: &str, text: &str) {
    if class.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", esc(text));
    } else {
        let _ = writeln!(out, "<p class=\"{class}\">{}</p>", esc(text));
    }
}
