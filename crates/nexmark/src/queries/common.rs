//! What the queries q11–q22 share besides the registry's input helpers
//! ([`super::events`], [`super::bids`]): the watermark delay that sets their grace, and
//! the UTC calendar that Flink's `DATE_FORMAT` and `HOUR` apply to a `TIMESTAMP(3)`.
//!
//! The calendar is plain integer arithmetic (days since 1970-01-01 to a proleptic
//! Gregorian date), so the queries need no date library and never depend on the host's
//! time zone: Nexmark's `dateTime` is a `TIMESTAMP(3)` without zone, made from the
//! event's epoch milliseconds in UTC.

/// One day of event time in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// How far out of order events may arrive, in ms of event time: Flink's Nexmark DDL
/// declares `WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND`, so the windowed
/// queries here keep their windows open this long after they end (their grace) and
/// treat a record later than that as late, as Flink drops records behind its watermark.
pub const WATERMARK_DELAY_MS: i64 = 4_000;

/// The day (days since 1970-01-01, UTC) that the instant `ms` falls in.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The hour of the day (0–23, UTC) of the instant `ms`: Flink's `HOUR(ts)`.
pub fn hour_of(ms: i64) -> u32 {
    (ms.rem_euclid(DAY_MS) / 3_600_000) as u32
}

/// The minute of the day (0–1439, UTC) of the instant `ms`.
pub fn minute_of_day(ms: i64) -> u32 {
    (ms.rem_euclid(DAY_MS) / 60_000) as u32
}

/// `DATE_FORMAT(ts, 'yyyy-MM-dd')` of an instant in day `day` (see [`day_of`]).
pub fn format_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `DATE_FORMAT(ts, 'HH:mm')` of the minute of the day `minute` (see [`minute_of_day`]).
pub fn format_minute(minute: u32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// The proleptic Gregorian date (year, month 1–12, day 1–31) of `days` since
/// 1970-01-01: Howard Hinnant's `civil_from_days`, which counts in 400-year eras of
/// 146,097 days starting on March 1st so that the leap day ends each year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_format_as_flink_formats_them_in_utc() {
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(format_day(-1), "1969-12-31");
        // 2024-01-01T00:00:00Z, the generators' epoch, and the leap day after it.
        assert_eq!(format_day(day_of(1_704_067_200_000)), "2024-01-01");
        assert_eq!(format_day(day_of(1_704_067_200_000 - 1)), "2023-12-31");
        assert_eq!(format_day(19_782), "2024-02-29");
        assert_eq!(format_day(19_783), "2024-03-01");
        assert_eq!(format_day(11_016), "2000-02-29");
        assert_eq!(format_day(47_540), "2100-02-28");
        assert_eq!(format_day(47_541), "2100-03-01"); // 2100 is no leap year
        assert_eq!(format_day(2_932_896), "9999-12-31");
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_one_before() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days_in = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut date = civil_from_days(-146_097);
        assert_eq!(date, (1570, 1, 1));
        for day in -146_096..146_097 {
            let (y, m, d) = date;
            let next = if d < days_in(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            date = civil_from_days(day);
            assert_eq!(date, next, "day {day}");
        }
    }

    #[test]
    fn hours_and_minutes_are_utc() {
        let t = 1_704_067_200_000 + 19 * 3_600_000 + 59 * 60_000 + 59_999;
        assert_eq!(hour_of(t), 19);
        assert_eq!(format_minute(minute_of_day(t)), "19:59");
        assert_eq!(hour_of(-1), 23);
        assert_eq!(format_minute(minute_of_day(0)), "00:00");
    }
}
