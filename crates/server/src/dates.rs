//! Salesforce's date-time format, `2026-11-25T21:48:20.000+0000`, in UTC.

use tessera_core::time::civil_from_days;

pub fn salesforce_datetime(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}+0000",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
