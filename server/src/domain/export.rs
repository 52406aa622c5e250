//! Export of a template's records to XLSX (rust_xlsxwriter) and CSV, with Vietnamese headers
//! and values as a person reads them (choice labels, not codes).

use diaban_core::Form;
use diaban_core::template::FieldType;
use rust_xlsxwriter::{Format, Workbook};

use crate::store::RecordRow;

/// A table: headers and rows of text or numbers.
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

pub enum Cell {
    Text(String),
    Number(f64),
}

/// One row per record: unit, state, author, date, then each top-level answer and calculation
/// of the template (labels of its latest version).
pub fn table(
    form: &Form,
    records: &[RecordRow],
    state_label: impl Fn(&str) -> String,
    date: impl Fn(i64) -> String,
) -> Table {
    let fields: Vec<_> = form
        .template()
        .fields
        .iter()
        .filter(|f| !matches!(f.field_type, FieldType::Note | FieldType::Repeat))
        .collect();
    let mut headers: Vec<String> =
        ["Mã đơn vị", "Đơn vị", "Trạng thái", "Người lập", "Ngày lập"].iter().map(|h| (*h).to_owned()).collect();
    headers.extend(fields.iter().map(|f| f.label.vi.clone()));
    let rows = records
        .iter()
        .map(|r| {
            let mut row = vec![
                Cell::Text(r.unit_code.clone()),
                Cell::Text(r.unit_name.clone()),
                Cell::Text(state_label(&r.state)),
                Cell::Text(r.created_by.clone()),
                Cell::Text(date(r.created_at)),
            ];
            for f in &fields {
                let value = r.values.get(&f.name).filter(|v| !v.is_null());
                let numeric = matches!(f.field_type, FieldType::Integer | FieldType::Decimal | FieldType::Counter)
                    || (f.field_type == FieldType::Calculated
                        && matches!(f.result_type, Some(FieldType::Integer | FieldType::Decimal)));
                row.push(match value {
                    Some(v) if numeric && v.is_number() => Cell::Number(v.as_f64().unwrap_or_default()),
                    Some(v) => Cell::Text(form.display(f, v, "vi")),
                    None => Cell::Text(String::new()),
                });
            }
            row
        })
        .collect();
    Table { headers, rows }
}

/// A text cell that no spreadsheet will run as a formula (the OWASP rule for CSV injection):
/// one that begins with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`.
/// Numbers are written as numbers and need none.
pub fn inert(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

pub fn csv(table: &Table) -> Result<Vec<u8>, csv::Error> {
    // A UTF-8 byte order mark, so that Excel reads the Vietnamese headers right.
    let mut out = vec![0xEF, 0xBB, 0xBF];
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(table.headers.iter().map(|h| inert(h)))?;
        for row in &table.rows {
            w.write_record(row.iter().map(|c| match c {
                Cell::Text(t) => inert(t),
                Cell::Number(n) => n.to_string(),
            }))?;
        }
        w.flush()?;
    }
    Ok(out)
}

pub fn xlsx(table: &Table, sheet: &str) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let ws = workbook.add_worksheet();
    // Sheet names are at most 31 characters.
    ws.set_name(sheet.chars().take(31).collect::<String>())?;
    for (c, h) in table.headers.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, h, &bold)?;
    }
    for (r, row) in table.rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            match cell {
                Cell::Text(t) => ws.write_string(r, c, t)?,
                Cell::Number(n) => ws.write_number(r, c, *n)?,
            };
        }
    }
    ws.autofit();
    workbook.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_that_would_start_a_formula_is_made_inert() {
        for (text, expected) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+84 912", "'+84 912"),
            ("-1+1", "'-1+1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("\rcmd", "'\rcmd"),
            ("Nhà văn hóa", "Nhà văn hóa"),
            ("", ""),
        ] {
            assert_eq!(inert(text), expected);
        }
        let table = Table {
            headers: vec!["Ghi chú".into(), "Số".into()],
            rows: vec![vec![Cell::Text("=1+1".into()), Cell::Number(-3.0)]],
        };
        let text = String::from_utf8(csv(&table).unwrap()).unwrap();
        assert!(text.contains("'=1+1") && text.contains(",-3"), "{text}");
    }
}
