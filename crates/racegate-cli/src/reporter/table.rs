//! A small text table printed aligned for terminals or as Markdown, shared by `compare` and
//! `demo`. Cells may hold several lines (crash signatures); Markdown joins them with `<br>`.

use std::io::Write;

/// Rows of cells under a header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Column titles.
    pub header: Vec<String>,
    /// Rows; each as long as the header.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row (missing cells are blank, extra cells dropped).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// Aligned columns, two spaces apart; the first column left-aligned, the rest too (values
    /// are mixed words and numbers), each line prefixed by `indent`.
    pub fn write_text<W: Write>(&self, mut w: W, indent: &str) -> std::io::Result<()> {
        let cols = self.header.len();
        let mut width = vec![0usize; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                for line in cell.lines() {
                    width[i] = width[i].max(line.chars().count());
                }
            }
        }
        let mut emit = |row: &Vec<String>| -> std::io::Result<()> {
            let lines: Vec<Vec<&str>> = row.iter().map(|c| c.lines().collect()).collect();
            let height = lines.iter().map(Vec::len).max().unwrap_or(0).max(1);
            for l in 0..height {
                let mut out = String::from(indent);
                for (i, cell) in lines.iter().enumerate() {
                    let text = cell.get(l).copied().unwrap_or("");
                    if i + 1 == cols {
                        out.push_str(text);
                    } else {
                        out.push_str(text);
                        let pad = width[i] - text.chars().count() + 2;
                        out.extend(std::iter::repeat(' ').take(pad));
                    }
                }
                writeln!(w, "{}", out.trim_end())?;
            }
            Ok(())
        };
        emit(&self.header)?;
        for row in &self.rows {
            emit(row)?;
        }
        Ok(())
    }

    /// A GitHub-flavored Markdown table.
    pub fn write_markdown<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        let cell = |c: &str| {
            c.lines()
                .map(|l| l.replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let line = |row: &Vec<String>| {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            format!("| {} |", cells.join(" | "))
        };
        writeln!(w, "{}", line(&self.header))?;
        writeln!(w, "|{}", "---|".repeat(self.header.len()))?;
        for row in &self.rows {
            writeln!(w, "{}", line(row))?;
        }
        Ok(())
    }
}

impl Table {
    /// An HTML table; `escape` makes a cell's text safe for HTML. Numbers (and the dash of a
    /// missing one) are right-aligned; lines of a cell are joined with `<br>`.
    pub fn write_html<W: Write>(
        &self,
        mut w: W,
        escape: fn(&str) -> String,
    ) -> std::io::Result<()> {
        let cell = |tag: &str, c: &str| {
            let numeric = c == "-" || c.parse::<f64>().is_ok();
            let text = c.lines().map(escape).collect::<Vec<_>>().join("<br>");
            if numeric && tag == "td" {
                format!("<td class=\"num\">{text}</td>")
            } else {
                format!("<{tag}>{text}</{tag}>")
            }
        };
        writeln!(w, "<table>")?;
        let header: String = self.header.iter().map(|c| cell("th", c)).collect();
        writeln!(w, "<tr>{header}</tr>")?;
        for row in &self.rows {
            let cells: String = row.iter().map(|c| cell("td", c)).collect();
            writeln!(w, "<tr>{cells}</tr>")?;
        }
        writeln!(w, "</table>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_multi_line_cells() {
        let mut t = Table::new(["mode", "verdict", "crashes"]);
        t.row(["shared", "FAIL", "2x a\n1x b"]);
        t.row(["gated", "PASS"]);
        let mut out = Vec::new();
        t.write_text(&mut out, "  ").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "  mode    verdict  crashes\n  shared  FAIL     2x a\n                   1x b\n  gated   PASS\n"
        );
        let mut md = Vec::new();
        t.write_markdown(&mut md).unwrap();
        assert_eq!(
            String::from_utf8(md).unwrap(),
            "| mode | verdict | crashes |\n|---|---|---|\n| shared | FAIL | 2x a<br>1x b |\n| gated | PASS |  |\n"
        );
        let mut html = Vec::new();
        t.row(["<x>", "12.5"]);
        t.write_html(&mut html, |s| s.replace('<', "&lt;").replace('>', "&gt;"))
            .unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(html.contains("<td>2x a<br>1x b</td>"), "{html}");
        assert!(
            html.contains("<td>&lt;x&gt;</td><td class=\"num\">12.5</td>"),
            "{html}"
        );
    }
}
