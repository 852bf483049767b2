//! The plain-text fleet table: one line per vehicle, sized for a 120-column terminal or log.

use std::io::{self, Write};

use crate::untrusted::text;

use super::VehicleSummary;

/// Width the fixed columns and a virtual-key link fit in.
pub const TABLE_WIDTH: usize = 120;

/// Column widths before the fix link: status, vehicle, VIN, user, main finding.
const WIDTHS: [usize; 5] = [8, 19, 17, 8, 25];

/// Writes a header and one line per vehicle: status, make model year, VIN, user, main finding, fix link.
/// Every column but the last is cut to its width with `…`; the fix link is printed whole so it stays
/// copyable (a virtual-key link fits in 120 columns, a long Connect URL runs past them).
pub fn write_table<'a, W: Write>(
    out: &mut W,
    vehicles: impl IntoIterator<Item = &'a VehicleSummary<'a>>,
) -> io::Result<()> {
    let mut line = String::with_capacity(TABLE_WIDTH * 2);
    push_row(
        &mut line,
        ["STATUS", "VEHICLE", "VIN", "USER", "MAIN FINDING"],
        "FIX",
    );
    writeln!(out, "{line}")?;
    for v in vehicles {
        line.clear();
        let finding = v.main_finding().map_or("-", |f| f.id.as_str());
        let vehicle = v.vehicle_label();
        let fix = match v.fix_link() {
            Some(link) if crate::untrusted::link::is_local(link) => {
                format!("{link} {}", crate::untrusted::link::LOCAL_NOTE)
            }
            Some(link) => link.to_string(),
            None => "-".to_string(),
        };
        push_row(
            &mut line,
            [
                v.diagnosis.status.label(),
                &vehicle,
                v.vin.unwrap_or("-"),
                v.user_id.unwrap_or("-"),
                finding,
            ],
            &fix,
        );
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn push_row(line: &mut String, cells: [&str; 5], last: &str) {
    for (cell, width) in cells.iter().zip(WIDTHS) {
        push_cell(line, cell, width);
        line.push(' ');
    }
    push_clean(line, last);
}

/// Pads or cuts `cell` to exactly `width` characters.
fn push_cell(line: &mut String, cell: &str, width: usize) {
    // Cleaned first, so a collapsed line break cannot make the cut miscount the width.
    let cell = text::one_line(cell);
    let count = cell.chars().count();
    if count <= width {
        line.push_str(&cell);
        line.extend(std::iter::repeat_n(' ', width - count));
    } else {
        line.extend(cell.chars().take(width.saturating_sub(1)));
        line.push('…');
    }
}

/// Untrusted text would break the line or drive the terminal: it goes through the one-line sanitizer.
fn push_clean(line: &mut String, cell: &str) {
    line.push_str(&text::one_line(cell));
}
