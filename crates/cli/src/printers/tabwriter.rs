//! Elastic tabstops with the exact semantics of Go's `text/tabwriter`, which kubectl
//! (tables) and oc (describe) print through. Pure string functions.
//!
//! Written here rather than taken from the `tabwriter` crate because oc's describe
//! pads with tab characters (Go's `padchar '\t'`), which that crate does not offer, and
//! output must match oc's byte for byte.

/// How columns are padded; mirrors Go's `tabwriter.Writer.Init` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TabWriter {
    /// Minimal width of a cell, padding included.
    pub minwidth: usize,
    /// Width of a tab character, for tab padding.
    pub tabwidth: usize,
    /// Padding added to the widest cell of a column.
    pub padding: usize,
    /// `' '` pads with spaces; `'\t'` pads with tabs (cells are then tab-aligned).
    pub padchar: char,
}

impl TabWriter {
    /// kubectl's table writer: `tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)`.
    pub const KUBECTL_TABLE: TabWriter = TabWriter {
        minwidth: 6,
        tabwidth: 4,
        padding: 3,
        padchar: ' ',
    };

    /// oc's describe writer: `tabwriter.Init(out, 0, 8, 1, '\t', 0)`.
    pub const OC_DESCRIBE: TabWriter = TabWriter {
        minwidth: 0,
        tabwidth: 8,
        padding: 1,
        padchar: '\t',
    };

    /// Aligns `text`: each `\t` ends a cell, and cells of consecutive lines that share a
    /// column are padded to the same width. The last cell of a line is not aligned.
    pub fn format(&self, text: &str) -> String {
        let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.format_block(&mut out, &lines, &mut widths, 0, lines.len());
        out
    }

    /// Go's `format`: finds the blocks of lines that have a cell in the next column,
    /// fixes that column's width per block, and recurses to the right.
    fn format_block(
        &self,
        out: &mut String,
        lines: &[Vec<&str>],
        widths: &mut Vec<usize>,
        mut line0: usize,
        line1: usize,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // A block starts here: print the lines before it.
            self.write_lines(out, lines, widths, line0, this);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(text_width(lines[this][column]) + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format_block(out, lines, widths, line0, this);
            widths.pop();
            line0 = this;
        }
        self.write_lines(out, lines, widths, line0, line1);
    }

    fn write_lines(
        &self,
        out: &mut String,
        lines: &[Vec<&str>],
        widths: &[usize],
        line0: usize,
        line1: usize,
    ) {
        for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
            for (j, cell) in line.iter().enumerate() {
                out.push_str(cell);
                // The last cell of a line is never padded.
                if let Some(&w) = widths.get(j)
                    && j + 1 < line.len()
                {
                    self.pad(out, text_width(cell), w);
                }
            }
            if i + 1 < lines.len() {
                out.push('\n');
            }
        }
    }

    fn pad(&self, out: &mut String, textw: usize, cellw: usize) {
        if self.padchar == '\t' {
            if self.tabwidth == 0 {
                return;
            }
            let cellw = cellw.div_ceil(self.tabwidth) * self.tabwidth;
            let n = cellw.saturating_sub(textw);
            out.extend(std::iter::repeat_n('\t', n.div_ceil(self.tabwidth)));
        } else {
            out.extend(std::iter::repeat_n(
                self.padchar,
                cellw.saturating_sub(textw),
            ));
        }
    }
}

/// Width of a cell as Go counts it: in runes.
fn text_width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_tables_pad_with_three_spaces() {
        let t = TabWriter::KUBECTL_TABLE
            .format("NAME\tIMAGE REPOSITORY\tTAGS\na\tr/x/a\t1\nlonger\tr\t\n");
        assert_eq!(
            t,
            "NAME     IMAGE REPOSITORY   TAGS\n\
             a        r/x/a              1\n\
             longer   r                  \n"
        );
    }

    #[test]
    fn minwidth_applies() {
        let t = TabWriter::KUBECTL_TABLE.format("A\tB\nx\ty\n");
        assert_eq!(t, "A     B\nx     y\n");
    }

    #[test]
    fn oc_describe_pads_with_tabs() {
        let t = TabWriter::OC_DESCRIBE
            .format("Name:\tkeycloak\nImage Repository:\tr/default/keycloak\n\nfoo\n");
        // The widest label is 17 + 1 padding = 18, rounded to 24: three tabs after
        // "Name:" (5 chars) and one after "Image Repository:" (17 chars).
        assert_eq!(
            t,
            "Name:\t\t\tkeycloak\nImage Repository:\tr/default/keycloak\n\nfoo\n"
        );
    }

    #[test]
    fn blocks_break_on_lines_without_tabs() {
        let t = TabWriter::KUBECTL_TABLE.format("a\tb\nbreak\nlonger cell\tc\n");
        assert_eq!(t, "a     b\nbreak\nlonger cell   c\n");
    }

    #[test]
    fn nested_columns() {
        let t = TabWriter::KUBECTL_TABLE.format("a\tb\tc\nlong one\tb\n");
        assert_eq!(t, "a          b     c\nlong one   b\n");
    }

    #[test]
    fn multibyte_cells_count_runes() {
        let t = TabWriter::KUBECTL_TABLE.format("ÄÄÄÄÄÄÄ\tx\nb\ty\n");
        assert_eq!(t, "ÄÄÄÄÄÄÄ   x\nb         y\n");
    }
}
