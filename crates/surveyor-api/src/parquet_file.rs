//! The flat export as Apache Parquet: the CSV export's columns, typed (integers, booleans,
//! UTC timestamps, strings), Snappy-compressed, written one row group at a time so that the
//! response streams in constant memory like the text formats. DuckDB, pandas and pyarrow read
//! the file as it is.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Rows per row group: large enough for readers to skip and compress well, small enough that
/// the buffered columns stay a few megabytes.
pub(crate) const ROW_GROUP: usize = 10_000;

/// How one column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int64,
    Bool,
    /// Microseconds since the epoch, UTC; the value arrives as RFC 3339 text.
    Timestamp,
    Text,
}

/// The type of a column of the flat export (`export.rs`'s `COLUMNS`); any other column is
/// text, numbers and booleans written as their JSON text.
fn kind(column: &str) -> Kind {
    match column {
        "scan" | "port" | "days_behind_cu" | "asn" => Kind::Int64,
        "esu_patched" => Kind::Bool,
        "observed_at" | "cert_not_after" => Kind::Timestamp,
        _ => Kind::Text,
    }
}

/// The column's values of the rows buffered so far; `levels` says which are present (1) or
/// null (0), as Parquet's definition levels of an optional column do.
enum Values {
    Int64(Vec<i64>),
    Bool(Vec<bool>),
    Text(Vec<ByteArray>),
}

struct ColumnBuffer {
    kind: Kind,
    values: Values,
    levels: Vec<i16>,
}

impl ColumnBuffer {
    fn new(kind: Kind) -> ColumnBuffer {
        let values = match kind {
            Kind::Int64 | Kind::Timestamp => Values::Int64(Vec::new()),
            Kind::Bool => Values::Bool(Vec::new()),
            Kind::Text => Values::Text(Vec::new()),
        };
        ColumnBuffer {
            kind,
            values,
            levels: Vec::new(),
        }
    }

    fn push(&mut self, value: &Value) {
        let present = match (&mut self.values, self.kind) {
            (Values::Int64(v), Kind::Timestamp) => push_some(
                v,
                value
                    .as_str()
                    .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
                    .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).ok()),
            ),
            (Values::Int64(v), _) => push_some(v, value.as_i64()),
            (Values::Bool(v), _) => push_some(v, value.as_bool()),
            (Values::Text(v), _) => push_some(
                v,
                match value {
                    Value::Null => None,
                    Value::String(s) => Some(ByteArray::from(s.as_str())),
                    other => Some(ByteArray::from(other.to_string().as_str())),
                },
            ),
        };
        self.levels.push(i16::from(present));
    }
}

/// Appends the value if there is one; whether there was.
fn push_some<T>(values: &mut Vec<T>, value: Option<T>) -> bool {
    let present = value.is_some();
    values.extend(value);
    present
}

/// The bytes the file writer produced, taken out after each row group.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A Parquet file being written: rows go in, finished bytes come out a row group at a time.
pub(crate) struct ParquetWriter {
    file: SerializedFileWriter<Shared>,
    out: Shared,
    columns: Vec<ColumnBuffer>,
    rows: usize,
}

impl ParquetWriter {
    /// A file with these columns (names as the flat export's), every one optional.
    pub(crate) fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> parquet::errors::Result<ParquetWriter> {
        let mut message = String::from("message surveyor_export {\n");
        let mut columns = Vec::new();
        for name in names {
            let kind = kind(name);
            let field = match kind {
                Kind::Int64 => format!("optional int64 {name};"),
                Kind::Bool => format!("optional boolean {name};"),
                Kind::Timestamp => format!("optional int64 {name} (TIMESTAMP(MICROS,true));"),
                Kind::Text => format!("optional binary {name} (STRING);"),
            };
            message.push_str(&field);
            message.push('\n');
            columns.push(ColumnBuffer::new(kind));
        }
        message.push('}');
        let schema = Arc::new(parse_message_type(&message)?);
        let props = WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_created_by(format!("surveyor {}", env!("CARGO_PKG_VERSION")))
            .build();
        let out = Shared::default();
        let file = SerializedFileWriter::new(out.clone(), schema, Arc::new(props))?;
        Ok(ParquetWriter {
            file,
            out,
            columns,
            rows: 0,
        })
    }

    /// Buffers one row (values in column order).
    pub(crate) fn push_row(&mut self, values: impl IntoIterator<Item = Value>) {
        for (column, value) in self.columns.iter_mut().zip(values) {
            column.push(&value);
        }
        self.rows += 1;
    }

    /// Rows buffered since the last row group.
    pub(crate) fn buffered(&self) -> usize {
        self.rows
    }

    /// Writes the buffered rows as one row group; the bytes finished so far.
    pub(crate) fn flush_row_group(&mut self) -> parquet::errors::Result<Vec<u8>> {
        if self.rows > 0 {
            let mut group = self.file.next_row_group()?;
            for column in &mut self.columns {
                let Some(mut writer) = group.next_column()? else {
                    return Err(parquet::errors::ParquetError::General(
                        "the schema has fewer columns than the export".into(),
                    ));
                };
                let levels = Some(column.levels.as_slice());
                match &column.values {
                    Values::Int64(v) => writer.typed::<Int64Type>().write_batch(v, levels, None)?,
                    Values::Bool(v) => writer.typed::<BoolType>().write_batch(v, levels, None)?,
                    Values::Text(v) => writer
                        .typed::<ByteArrayType>()
                        .write_batch(v, levels, None)?,
                };
                writer.close()?;
                *column = ColumnBuffer::new(column.kind);
            }
            group.close()?;
            self.rows = 0;
        }
        self.file.flush()?;
        Ok(self.out.take())
    }

    /// Writes what is buffered and the footer; the last bytes of the file. Nothing can be
    /// written after it.
    pub(crate) fn finish(&mut self) -> parquet::errors::Result<Vec<u8>> {
        let mut last = self.flush_row_group()?;
        self.file.finish()?;
        last.extend(self.out.take());
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    use serde_json::json;

    use super::*;

    #[test]
    fn typed_columns_nulls_and_row_groups_read_back() {
        let mut w =
            ParquetWriter::new(["scan", "ip", "observed_at", "esu_patched", "asn"]).unwrap();
        let mut file = Vec::new();
        for i in 0..25 {
            w.push_row([
                json!(7),
                json!(format!("192.0.2.{i}")),
                json!("2026-11-23T06:00:00.000001Z"),
                if i % 2 == 0 { json!(true) } else { Value::Null },
                if i % 5 == 0 {
                    Value::Null
                } else {
                    json!(64500 + i)
                },
            ]);
            if w.buffered() == 10 {
                file.extend(w.flush_row_group().unwrap());
            }
        }
        file.extend(w.finish().unwrap());
        assert_eq!(&file[..4], b"PAR1");

        let reader = SerializedFileReader::new(bytes::Bytes::from(file)).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().num_rows(), 25);
        assert_eq!(meta.num_row_groups(), 3);
        let rows: Vec<_> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let fields: Vec<(&String, &Field)> = rows[3].get_column_iter().collect();
        assert_eq!(fields[0], (&"scan".to_string(), &Field::Long(7)));
        assert_eq!(fields[1].1, &Field::Str("192.0.2.3".into()));
        assert_eq!(fields[2].1, &Field::TimestampMicros(1_795_413_600_000_001));
        assert_eq!(fields[3].1, &Field::Null);
        assert_eq!(fields[4].1, &Field::Long(64503));
        assert_eq!(rows[5].get_column_iter().nth(4).unwrap().1, &Field::Null);
    }

    #[test]
    fn an_empty_export_is_a_valid_file() {
        let mut w = ParquetWriter::new(["scan", "ip"]).unwrap();
        let file = w.finish().unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(file)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
        let schema = reader.metadata().file_metadata().schema_descr();
        assert_eq!(schema.column(1).name(), "ip");
    }
}
