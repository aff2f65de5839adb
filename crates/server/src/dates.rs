//! Salesforce's date-time format, `2026-11-25T21:48:20.000+0000`, in UTC.

use std::fmt;

use tessera_core::time::{utc_fields, UtcFields};

pub fn salesforce_datetime(millis: i64) -> String {
    SalesforceDateTime(millis).to_string()
}

/// An instant (milliseconds since the epoch) in Salesforce's format, written without building a
/// `String` first: a record's date in the body of the most frequent API call.
#[derive(Debug, Clone, Copy)]
pub struct SalesforceDateTime(pub i64);

/// `2026-11-25T21:48:20.000+0000`.
const TEXT_LEN: usize = 28;

impl SalesforceDateTime {
    /// The text, by hand, for the years of four digits; `None` for the others, which
    /// [`Self::write_general`] writes.
    fn text(self) -> Option<[u8; TEXT_LEN]> {
        let fields = utc_fields(self.0);
        if !(0..=9999).contains(&fields.year) {
            return None;
        }
        let mut text = *b"0000-00-00T00:00:00.000+0000";
        let mut put = |at: usize, width: usize, mut value: i64| {
            for slot in text.iter_mut().skip(at).take(width).rev() {
                *slot = b'0' + u8::try_from(value % 10).unwrap_or(0);
                value /= 10;
            }
        };
        put(0, 4, fields.year);
        put(5, 2, i64::from(fields.month));
        put(8, 2, i64::from(fields.day));
        put(11, 2, fields.hour);
        put(14, 2, fields.minute);
        put(17, 2, fields.second);
        put(20, 3, fields.millisecond);
        Some(text)
    }

    /// The text through the formatter, for any year.
    fn write_general(self, f: &mut impl fmt::Write) -> fmt::Result {
        let UtcFields {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millisecond,
        } = utc_fields(self.0);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millisecond:03}+0000"
        )
    }
}

impl fmt::Display for SalesforceDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text() {
            Some(text) => f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?),
            None => self.write_general(f),
        }
    }
}

impl serde::Serialize for SalesforceDateTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_text_is_the_general_one() {
        let general = |millis: i64| {
            let mut text = String::new();
            SalesforceDateTime(millis).write_general(&mut text).unwrap();
            text
        };
        // Each field's carries, leap days, and both ends of the four-digit years.
        let instants = [
            0,
            -1,
            999,
            59_999,
            3_599_999,
            86_399_999,
            951_868_799_999,
            1_278_448_101_416,
            1_798_761_599_999,
            -62_167_219_200_000,
            253_402_300_799_999,
        ];
        for millis in instants
            .into_iter()
            .chain((0..2000).map(|i| i * 126_000_000_007))
        {
            let fast = SalesforceDateTime(millis)
                .text()
                .map(|t| String::from_utf8(t.to_vec()).unwrap());
            assert_eq!(fast.as_deref(), Some(general(millis).as_str()), "{millis}");
        }
        // Beyond year 9999 and before year 0: the general path.
        for millis in [253_402_300_800_000, -62_167_219_200_001] {
            assert_eq!(SalesforceDateTime(millis).text(), None);
            assert_eq!(salesforce_datetime(millis), general(millis));
        }
        assert_eq!(
            serde_json::to_string(&SalesforceDateTime(1_278_448_101_416)).unwrap(),
            "\"2010-07-06T20:28:21.416+0000\""
        );
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(salesforce_datetime(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            salesforce_datetime(1_278_448_101_416),
            "2010-07-06T20:28:21.416+0000"
        );
        assert_eq!(
            salesforce_datetime(951_782_400_000),
            "2000-02-29T00:00:00.000+0000"
        );
    }
}
