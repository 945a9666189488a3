//! JSON (what a jq mapping produces) to an Avro value of a given schema.
//!
//! Guided by the schema, so mappings can write what is natural in JSON: a nullable field as
//! `null` or a value, a timestamp as epoch milliseconds or an RFC 3339 string, a date as
//! `YYYY-MM-DD`, money as a decimal string (`"19.99"`) or number. Errors name the field path
//! (`lines[2].quantity: expected long, got "two"`), because they end up in a DLQ header or
//! in a refusal to start that a person reads.

use apache_avro::Schema;
use apache_avro::schema::{DecimalSchema, RecordSchema, UnionSchema};
use apache_avro::types::Value;
use serde_json::Value as Json;

/// Converts `json` into a value of `schema`.
pub fn to_avro(schema: &Schema, json: &Json) -> Result<Value, String> {
    convert(schema, json, "")
}

/// Converts `json` into a value of `schema`, naming `path` in errors.
pub fn to_avro_at(schema: &Schema, json: &Json, path: &str) -> Result<Value, String> {
    convert(schema, json, path)
}

fn convert(schema: &Schema, json: &Json, path: &str) -> Result<Value, String> {
    let wrong = |expected: &str| {
        let shown = json.to_string();
        let shown: String = shown.chars().take(60).collect();
        Err(format!("{}expected {expected}, got {shown}", at(path)))
    };
    match (schema, json) {
        (Schema::Null, Json::Null) => Ok(Value::Null),
        (Schema::Boolean, Json::Bool(b)) => Ok(Value::Boolean(*b)),
        (Schema::Int, Json::Number(n)) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Value::Int)
            .map_or_else(|| wrong("int"), Ok),
        (Schema::Long, Json::Number(n)) => n
            .as_i64()
            .map(Value::Long)
            .map_or_else(|| wrong("long"), Ok),
        (Schema::Float, Json::Number(n)) => n
            .as_f64()
            .map(|f| Value::Float(f as f32))
            .map_or_else(|| wrong("float"), Ok),
        (Schema::Double, Json::Number(n)) => n
            .as_f64()
            .map(Value::Double)
            .map_or_else(|| wrong("double"), Ok),
        (Schema::String, Json::String(s)) => Ok(Value::String(s.clone())),
        // Native IDs are often numbers in the source; a string field takes them verbatim.
        (Schema::String, Json::Number(n)) => Ok(Value::String(n.to_string())),
        (Schema::Enum(e), Json::String(s)) => match e.symbols.iter().position(|x| x == s) {
            Some(i) => Ok(Value::Enum(i as u32, s.clone())),
            None => wrong(&format!("one of {:?}", e.symbols)),
        },
        (Schema::TimestampMillis, Json::Number(n)) => n
            .as_i64()
            .map(Value::TimestampMillis)
            .map_or_else(|| wrong("epoch milliseconds"), Ok),
        (Schema::TimestampMillis, Json::String(s)) if odata_millis(s).is_some() => {
            Ok(Value::TimestampMillis(odata_millis(s).unwrap_or_default()))
        }
        (Schema::Date, Json::String(s)) if odata_millis(s).is_some() => Ok(Value::Date(
            odata_millis(s).unwrap_or_default().div_euclid(86_400_000) as i32,
        )),
        (Schema::TimestampMillis, Json::String(s)) => {
            match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                Ok(t) => Ok(Value::TimestampMillis(
                    (t.unix_timestamp_nanos() / 1_000_000) as i64,
                )),
                Err(_) => wrong("an RFC 3339 time"),
            }
        }
        (Schema::Date, Json::String(s)) => match days_since_epoch(s) {
            Some(days) => Ok(Value::Date(days)),
            None => wrong("a date YYYY-MM-DD"),
        },
        (Schema::Decimal(d), Json::String(s)) => {
            decimal(d, s).map_or_else(|| wrong("a decimal"), Ok)
        }
        (Schema::Decimal(d), Json::Number(n)) => {
            decimal(d, &n.to_string()).map_or_else(|| wrong("a decimal"), Ok)
        }
        (Schema::Array(items), Json::Array(values)) => values
            .iter()
            .enumerate()
            .map(|(i, v)| convert(&items.items, v, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        (Schema::Record(record), Json::Object(_)) => convert_record(record, json, path),
        (Schema::Union(union), _) => convert_union(union, json, path),
        (other, _) => wrong(&kind(other)),
    }
}

fn convert_record(record: &RecordSchema, json: &Json, path: &str) -> Result<Value, String> {
    let object = json
        .as_object()
        .ok_or_else(|| format!("{}expected an object", at(path)))?;
    if let Some(unknown) = object
        .keys()
        .find(|k| !record.fields.iter().any(|f| &f.name == *k))
    {
        return Err(format!(
            "{}field `{unknown}` is not in {}",
            at(path),
            record.name.fullname(None)
        ));
    }
    let mut fields = Vec::with_capacity(record.fields.len());
    for field in &record.fields {
        let field_path = if path.is_empty() {
            field.name.clone()
        } else {
            format!("{path}.{}", field.name)
        };
        let value = match (object.get(&field.name), &field.default) {
            (Some(v), _) => convert(&field.schema, v, &field_path)?,
            (None, Some(default)) => convert(&field.schema, default, &field_path)?,
            (None, None) => return Err(format!("{field_path}: required field is missing")),
        };
        fields.push((field.name.clone(), value));
    }
    Ok(Value::Record(fields))
}

fn convert_union(union: &UnionSchema, json: &Json, path: &str) -> Result<Value, String> {
    let mut last = None;
    for (i, variant) in union.variants().iter().enumerate() {
        if matches!(variant, Schema::Null) != json.is_null() {
            continue;
        }
        match convert(variant, json, path) {
            Ok(v) => return Ok(Value::Union(i as u32, Box::new(v))),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| format!("{}null is not allowed", at(path))))
}

/// A decimal string scaled to the schema's scale, as big-endian two's-complement bytes.
fn decimal(schema: &DecimalSchema, text: &str) -> Option<Value> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if fraction.len() > schema.scale
        || whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let padded = format!("{whole}{fraction:0<width$}", width = schema.scale);
    let mut unscaled: i128 = padded.parse().ok()?;
    if negative {
        unscaled = -unscaled;
    }
    if padded.trim_start_matches('0').len() > schema.precision {
        return None;
    }
    let bytes = unscaled.to_be_bytes();
    // Shortest two's-complement form, as Java's BigInteger.toByteArray writes it.
    let skip = bytes
        .windows(2)
        .take_while(|w| (w[0] == 0 && w[1] & 0x80 == 0) || (w[0] == 0xff && w[1] & 0x80 != 0))
        .count();
    Some(Value::Decimal(apache_avro::Decimal::from(
        bytes[skip..].to_vec(),
    )))
}

/// Milliseconds of an OData date, `/Date(1672531200000)/` (Exact Online writes these; an
/// offset suffix such as `+0100` is ignored, the number is what Exact means).
fn odata_millis(text: &str) -> Option<i64> {
    let inner = text.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let digits = inner
        .char_indices()
        .find(|(i, c)| *i > 0 && (*c == '+' || *c == '-'))
        .map_or(inner, |(i, _)| &inner[..i]);
    digits.parse().ok()
}

/// Days between 1970-01-01 and a `YYYY-MM-DD` date.
fn days_since_epoch(text: &str) -> Option<i32> {
    let mut parts = text.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let epoch = time::Date::from_calendar_date(1970, time::Month::January, 1).ok()?;
    i32::try_from((date - epoch).whole_days()).ok()
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn kind(schema: &Schema) -> String {
    format!("{:?}", apache_avro::schema::SchemaKind::from(schema)).to_lowercase()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        Schema::parse_str(
            r#"{"type":"record","name":"O","fields":[
              {"name":"id","type":"string"},
              {"name":"total","type":["null",{"type":"bytes","logicalType":"decimal","precision":18,"scale":4}],"default":null},
              {"name":"at","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
              {"name":"on","type":["null",{"type":"int","logicalType":"date"}],"default":null},
              {"name":"lines","type":{"type":"array","items":{"type":"record","name":"L","fields":[
                 {"name":"sku","type":"string"},{"name":"quantity","type":"long"}]}},"default":[]}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn natural_json_becomes_a_valid_record() {
        let s = schema();
        let v = to_avro(
            &s,
            &json!({"id": 42, "total": "19.9", "at": "2025-01-02T03:04:05Z", "on": "1970-01-11",
                    "lines": [{"sku": "A", "quantity": 2}]}),
        )
        .unwrap();
        let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(&s)
            .build()
            .unwrap()
            .write_value_to_vec(v)
            .unwrap();
        let back = apache_avro::reader::datum::GenericDatumReader::builder(&s)
            .build()
            .unwrap()
            .read_value(&mut &bytes[..])
            .unwrap();
        let Value::Record(fields) = back else {
            panic!()
        };
        assert_eq!(fields[0].1, Value::String("42".into()));
        let Value::Union(1, total) = &fields[1].1 else {
            panic!("{:?}", fields[1])
        };
        // 19.9 at scale 4 is 199000.
        assert_eq!(
            **total,
            Value::Decimal(apache_avro::Decimal::from(vec![0x03, 0x09, 0x58]))
        );
        assert_eq!(
            fields[2].1,
            Value::Union(1, Box::new(Value::TimestampMillis(1_735_787_045_000)))
        );
        assert_eq!(fields[3].1, Value::Union(1, Box::new(Value::Date(10))));
    }

    #[test]
    fn errors_name_the_path() {
        let err = to_avro(
            &schema(),
            &json!({"id": "1", "lines": [{"sku": "A", "quantity": "two"}]}),
        )
        .unwrap_err();
        assert_eq!(err, r#"lines[0].quantity: expected long, got "two""#);
        let err = to_avro(&schema(), &json!({"id": "1", "colour": "red"})).unwrap_err();
        assert_eq!(err, "field `colour` is not in O");
        let err = to_avro(&schema(), &json!({"total": "1"})).unwrap_err();
        assert_eq!(err, "id: required field is missing");
        assert!(to_avro(&schema(), &json!({"id": "1", "total": "1.23456"})).is_err());
    }

    #[test]
    fn odata_dates_are_read() {
        assert_eq!(
            odata_millis("/Date(1672531200000)/"),
            Some(1_672_531_200_000)
        );
        assert_eq!(
            odata_millis("/Date(1672531200000+0100)/"),
            Some(1_672_531_200_000)
        );
        assert_eq!(odata_millis("2025-01-01"), None);
        let s = Schema::parse_str(r#"{"type":"int","logicalType":"date"}"#).unwrap();
        assert_eq!(
            to_avro(&s, &json!("/Date(1735689600000)/")).unwrap(),
            Value::Date(20089)
        );
    }

    #[test]
    fn negative_decimals_use_twos_complement() {
        let d = DecimalSchema {
            precision: 10,
            scale: 2,
            inner: apache_avro::schema::InnerDecimalSchema::Bytes,
        };
        assert_eq!(
            decimal(&d, "-1.28"),
            Some(Value::Decimal(apache_avro::Decimal::from(vec![0xff, 0x80])))
        );
    }
}
