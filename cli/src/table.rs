//! Plain aligned columns, kubectl style: a header line, one line per row,
//! columns separated by spaces, no box characters, so `awk`, `cut` and `grep`
//! work on the output.
//!
//! On a terminal the table is fitted to its width: columns that may shrink
//! are cut with `…`, and when that is not enough the least useful columns are
//! left out. Columns that must stay whole (ids) are never cut, so an id can
//! always be copied from one line. When stdout is not a terminal nothing is
//! cut: every value is written whole.

use std::io::{self, Write};

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Spaces between two columns.
const GAP: usize = 2;
/// The shortest a shrinking column gets before columns are left out.
const MIN_SHRUNK: usize = 8;

/// How a column behaves when the table is wider than the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Always whole and always shown (ids).
    Keep,
    /// Always shown; cut with `…` down to a few characters when space is short.
    Shrink,
    /// Whole while shown; left out when space is short, lowest `drop` first.
    Optional { drop: u8 },
    /// Cut with `…` when space is short; left out, lowest `drop` first, when cutting is not enough.
    ShrinkOrDrop { drop: u8 },
}

/// One column: its header and how it fits.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub fit: Fit,
}

impl Column {
    pub const fn new(header: &'static str, fit: Fit) -> Column {
        Column { header, fit }
    }

    fn shrinks(&self) -> bool {
        matches!(self.fit, Fit::Shrink | Fit::ShrinkOrDrop { .. })
    }

    fn drop_rank(&self) -> Option<u8> {
        match self.fit {
            Fit::Optional { drop } | Fit::ShrinkOrDrop { drop } => Some(drop),
            Fit::Keep | Fit::Shrink => None,
        }
    }
}

/// A table being built.
#[derive(Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row; an empty cell is written as `-` so every line has the same fields.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        let cells = cells
            .into_iter()
            .map(|c| {
                // One line per row, whatever a value holds.
                let c = c.replace(['\n', '\r', '\t'], " ");
                if c.trim().is_empty() { "-".into() } else { c }
            })
            .collect();
        self.rows.push(cells);
    }

    /// Writes the table. `width` is the terminal's width, or `None` when
    /// stdout is not a terminal (nothing is cut then).
    pub fn write(&self, out: &mut dyn Write, width: Option<usize>) -> io::Result<()> {
        let natural: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].width())
                    .chain([self.columns[i].header.width()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let widths = match width {
            Some(w) => fit(&self.columns, &natural, w),
            None => natural.into_iter().map(Some).collect(),
        };
        let header: Vec<String> = self.columns.iter().map(|c| c.header.to_string()).collect();
        write_line(out, &header, &widths)?;
        for row in &self.rows {
            write_line(out, row, &widths)?;
        }
        Ok(())
    }
}

/// The width of each column, `None` for a column left out.
fn fit(columns: &[Column], natural: &[usize], width: usize) -> Vec<Option<usize>> {
    let mut shown: Vec<bool> = vec![true; columns.len()];
    loop {
        let mut widths: Vec<usize> = natural.to_vec();
        let total = |widths: &[usize], shown: &[bool]| -> usize {
            let n = shown.iter().filter(|s| **s).count();
            widths
                .iter()
                .zip(shown)
                .filter(|(_, s)| **s)
                .map(|(w, _)| *w)
                .sum::<usize>()
                + GAP * n.saturating_sub(1)
        };
        // Shrink the widest shrinking column, one character at a time.
        while total(&widths, &shown) > width {
            let widest = (0..columns.len())
                .filter(|&i| shown[i] && columns[i].shrinks())
                .filter(|&i| widths[i] > MIN_SHRUNK.max(columns[i].header.width()))
                .max_by_key(|&i| (widths[i], std::cmp::Reverse(i)));
            match widest {
                Some(i) => widths[i] -= 1,
                None => break,
            }
        }
        if total(&widths, &shown) <= width {
            return widths
                .into_iter()
                .zip(&shown)
                .map(|(w, s)| s.then_some(w))
                .collect();
        }
        // Still too wide: leave out the least useful column still shown, and start over.
        let next = (0..columns.len())
            .filter(|&i| shown[i])
            .filter_map(|i| columns[i].drop_rank().map(|rank| (rank, i)))
            .min();
        match next {
            Some((_, i)) => shown[i] = false,
            // Only columns that must stay remain: write them, lines will wrap.
            None => {
                return widths
                    .into_iter()
                    .zip(&shown)
                    .map(|(w, s)| s.then_some(w))
                    .collect();
            }
        }
    }
}

fn write_line(out: &mut dyn Write, cells: &[String], widths: &[Option<usize>]) -> io::Result<()> {
    let shown: Vec<(&String, usize)> = cells
        .iter()
        .zip(widths)
        .filter_map(|(c, w)| w.map(|w| (c, w)))
        .collect();
    let mut line = String::new();
    for (i, (cell, width)) in shown.iter().enumerate() {
        let text = cut(cell, *width);
        line.push_str(&text);
        if i + 1 < shown.len() {
            let pad = width - text.width() + GAP;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

/// `text` cut to `width` display columns, ending in `…` when cut.
pub fn cut(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(ch);
        used += w;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(table: &Table, width: Option<usize>) -> String {
        let mut out = Vec::new();
        table.write(&mut out, width).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn sample() -> Table {
        let mut t = Table::new(vec![
            Column::new("ID", Fit::Keep),
            Column::new("NAME", Fit::Shrink),
            Column::new("NOTES", Fit::ShrinkOrDrop { drop: 2 }),
            Column::new("WHEN", Fit::Optional { drop: 1 }),
        ]);
        t.row(vec![
            "tok_0123456789abcdefghij".into(),
            "a rather long display name for a token".into(),
            "something to say about it".into(),
            "3d ago".into(),
        ]);
        t.row(vec![
            "tok_2".into(),
            "short".into(),
            "".into(),
            "never".into(),
        ]);
        t
    }

    #[test]
    fn piped_tables_are_whole_and_aligned() {
        let text = render(&sample(), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("a rather long display name for a token"));
        assert_eq!(lines[0].find("NAME"), lines[2].find("short"));
        assert!(lines[2].contains(" - "), "empty cells read as -: {text}");
        assert!(!text.contains('…'));
    }

    #[test]
    fn fitted_tables_cut_names_and_never_ids() {
        for width in [80, 60, 40, 20] {
            let text = render(&sample(), Some(width));
            for line in text.lines() {
                if width >= 40 {
                    assert!(line.width() <= width, "{width}: {line:?}");
                }
            }
            assert!(text.contains("tok_0123456789abcdefghij"), "{width}: {text}");
        }
        let narrow = render(&sample(), Some(40));
        assert!(narrow.contains('…'), "{narrow}");
        assert!(
            !narrow.contains("WHEN"),
            "the optional column goes first: {narrow}"
        );
    }

    #[test]
    fn cut_counts_display_columns() {
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("日本語のテキスト", 5), "日本…");
    }
}
