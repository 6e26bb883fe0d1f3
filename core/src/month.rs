//! Calendar months in UTC, written `yyyyMM` as Janssen does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A calendar month from 0000-01 to 9999-12, the unit every statistic is kept per.
///
/// Parsing is strict: exactly six ASCII digits, the month 01 to 12.
///
/// ```
/// use authstat_core::Month;
///
/// let m: Month = "202402".parse().unwrap();
/// assert_eq!(m.to_string(), "202402");
/// assert_eq!(Month::from_epoch_millis(1706745603590).unwrap(), m); // 2024-02-01T00:00:03.590Z
/// assert!("202413".parse::<Month>().unwrap_err().to_string().contains("202413"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// `year * 12 + (month - 1)`: ordering, ranges and successors are plain integer arithmetic.
    index: u32,
}

const MAX_INDEX: u32 = 9999 * 12 + 11;
const MILLIS_PER_DAY: i64 = 86_400_000;

impl Month {
    /// The month `month` (1–12) of `year` (0–9999).
    pub fn new(year: u32, month: u32) -> Result<Self, Error> {
        if year > 9999 {
            return Err(invalid(
                format!("{year:04}{month:02}"),
                "year is above 9999",
            ));
        }
        if !(1..=12).contains(&month) {
            return Err(invalid(
                format!("{year:04}{month:02}"),
                "month must be 01 to 12",
            ));
        }
        Ok(Self {
            index: year * 12 + month - 1,
        })
    }

    /// The month (UTC) an instant given in milliseconds since the Unix epoch falls in.
    ///
    /// The last month found (per thread) is remembered with its bounds: records come in time
    /// order, so nearly every call is two comparisons.
    pub fn from_epoch_millis(millis: i64) -> Result<Self, Error> {
        thread_local! {
            static LAST: std::cell::Cell<(i64, i64, Month)> =
                const { std::cell::Cell::new((0, 0, Month { index: 0 })) };
        }
        let (start, end, month) = LAST.with(std::cell::Cell::get);
        if (start..end).contains(&millis) {
            return Ok(month);
        }
        let month = Self::compute_from_epoch_millis(millis)?;
        let end = month.succ().map_or_else(
            || days_from_civil(10_000, 1, 1) * MILLIS_PER_DAY,
            Month::start_epoch_millis,
        );
        LAST.with(|last| last.set((month.start_epoch_millis(), end, month)));
        Ok(month)
    }

    fn compute_from_epoch_millis(millis: i64) -> Result<Self, Error> {
        let days = millis.div_euclid(MILLIS_PER_DAY);
        let (year, month, _) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return Err(invalid(
                millis.to_string(),
                "timestamp is outside years 0000 to 9999",
            ));
        }
        Self::new(year as u32, month)
    }

    /// The year.
    pub fn year(self) -> u32 {
        self.index / 12
    }

    /// The month of the year, 1 to 12.
    pub fn month(self) -> u32 {
        self.index % 12 + 1
    }

    /// The month as the integer `yyyyMM` (`202402`), the form SQL backends store.
    pub fn yyyymm(self) -> u32 {
        self.year() * 100 + self.month()
    }

    /// The month of the integer `yyyyMM`.
    pub fn from_yyyymm(value: u32) -> Result<Self, Error> {
        if value > 999_912 {
            return Err(invalid(value.to_string(), "expected six digits yyyyMM"));
        }
        Month::new(value / 100, value % 100)
            .map_err(|_| invalid(format!("{value:06}"), "month must be 01 to 12"))
    }

    /// The next month, if there is one before 10000-01.
    pub fn succ(self) -> Option<Self> {
        (self.index < MAX_INDEX).then_some(Self {
            index: self.index + 1,
        })
    }

    /// The previous month, if there is one after 0000-01.
    pub fn pred(self) -> Option<Self> {
        self.index.checked_sub(1).map(|index| Self { index })
    }

    /// Milliseconds since the Unix epoch at the first instant of this month (UTC).
    pub fn start_epoch_millis(self) -> i64 {
        days_from_civil(i64::from(self.year()), self.month(), 1) * MILLIS_PER_DAY
    }

    /// The inclusive range from `self` to `end`.
    pub fn to(self, end: Month) -> Result<MonthRange, Error> {
        MonthRange::new(self, end)
    }
}

fn invalid(value: String, reason: &'static str) -> Error {
    Error::InvalidMonth { value, reason }
}

/// Milliseconds since the Unix epoch now (0 for a clock before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The day of the month (UTC) of `ms` since the Unix epoch.
pub fn day_of_month(ms: i64) -> u32 {
    civil_from_days(ms.div_euclid(86_400_000)).2
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm). For parsers and pages that show dates (authstat keeps no time zone: UTC).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) → days since 1970-01-01, proleptic Gregorian (the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl FromStr for Month {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
            return Err(invalid(s.to_owned(), "expected six digits yyyyMM"));
        }
        let digits =
            |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        Month::new(digits(0..4), digits(4..6))
            .map_err(|_| invalid(s.to_owned(), "month must be 01 to 12"))
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}", self.year(), self.month())
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    /// From the string `"yyyyMM"`, or from the integer `yyyyMM` (YAML reads `202402` as one).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Month;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a month as yyyyMM")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Month, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Month, E> {
                self.visit_str(&format!("{v:06}"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Month, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The months of a [`MonthRange`], ascending (double-ended, exact size).
pub type MonthIter = std::iter::Map<std::ops::Range<u32>, fn(u32) -> Month>;

/// An inclusive range of months, `start..=end`, never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MonthRange {
    start: Month,
    end: Month,
}

impl MonthRange {
    /// `start..=end`; an error if `start` is after `end`. `start == end` is the one month.
    pub fn new(start: Month, end: Month) -> Result<Self, Error> {
        if start > end {
            return Err(Error::InvalidMonthRange {
                start: start.to_string(),
                end: end.to_string(),
            });
        }
        Ok(Self { start, end })
    }

    /// The first month.
    pub fn start(&self) -> Month {
        self.start
    }

    /// The last month (inclusive).
    pub fn end(&self) -> Month {
        self.end
    }

    /// How many months the range covers (at least 1).
    pub fn len(&self) -> usize {
        (self.end.index - self.start.index + 1) as usize
    }

    /// Always false: a range holds at least one month.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `month` lies in the range.
    pub fn contains(&self, month: Month) -> bool {
        self.start <= month && month <= self.end
    }

    /// The months in ascending order.
    pub fn iter(&self) -> MonthIter {
        (self.start.index..self.end.index + 1).map(|index| Month { index })
    }
}

impl IntoIterator for MonthRange {
    type Item = Month;
    type IntoIter = MonthIter;
    fn into_iter(self) -> MonthIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly() {
        assert_eq!(
            "202402".parse::<Month>().unwrap(),
            Month::new(2024, 2).unwrap()
        );
        for bad in [
            "20242",
            "2024022",
            "2024-2",
            "202400",
            "202413",
            "20240a",
            " 202402",
            "２０２４０２",
            "",
        ] {
            let err = bad.parse::<Month>().unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn epoch_millis_across_boundaries() {
        // The sample log's records on either side of midnight, 2024-01-31 / 2024-02-01 UTC.
        assert_eq!(
            Month::from_epoch_millis(1706745598101).unwrap().to_string(),
            "202401"
        );
        assert_eq!(
            Month::from_epoch_millis(1706745600000).unwrap().to_string(),
            "202402"
        );
        assert_eq!(
            Month::from_epoch_millis(1706745599999).unwrap().to_string(),
            "202401"
        );
        assert_eq!(Month::from_epoch_millis(0).unwrap().to_string(), "197001");
        assert_eq!(Month::from_epoch_millis(-1).unwrap().to_string(), "196912");
        // Leap day 2024-02-29T23:59:59.999Z and the next instant.
        assert_eq!(
            Month::from_epoch_millis(1709251199999).unwrap().to_string(),
            "202402"
        );
        assert_eq!(
            Month::from_epoch_millis(1709251200000).unwrap().to_string(),
            "202403"
        );
        assert!(Month::from_epoch_millis(i64::MAX).is_err());
        assert!(Month::from_epoch_millis(i64::MIN).is_err());
    }

    #[test]
    fn start_millis_inverts_from_millis() {
        for text in [
            "197001", "196912", "200002", "202402", "210012", "000001", "999912",
        ] {
            let m: Month = text.parse().unwrap();
            let start = m.start_epoch_millis();
            assert_eq!(Month::from_epoch_millis(start).unwrap(), m, "{text}");
            if let Some(prev) = m.pred() {
                assert_eq!(Month::from_epoch_millis(start - 1).unwrap(), prev, "{text}");
            }
        }
    }

    #[test]
    fn ranges_are_inclusive_and_ordered() {
        let r = Month::new(2023, 11)
            .unwrap()
            .to(Month::new(2024, 2).unwrap())
            .unwrap();
        let months: Vec<String> = r.iter().map(|m| m.to_string()).collect();
        assert_eq!(months, ["202311", "202312", "202401", "202402"]);
        assert_eq!(r.len(), 4);
        let one = Month::new(2024, 2).unwrap();
        assert_eq!(one.to(one).unwrap().len(), 1);
        let err = Month::new(2024, 3)
            .unwrap()
            .to(one)
            .unwrap_err()
            .to_string();
        assert!(err.contains("202403") && err.contains("202402"), "{err}");
    }

    #[test]
    fn integer_form_round_trips() {
        let m = Month::new(2024, 2).unwrap();
        assert_eq!(m.yyyymm(), 202402);
        assert_eq!(Month::from_yyyymm(202402).unwrap(), m);
        assert_eq!(Month::from_yyyymm(101).unwrap().to_string(), "000101");
        for bad in [202400, 202413, 1_000_001, 0] {
            let err = Month::from_yyyymm(bad).unwrap_err().to_string();
            assert!(err.contains("invalid month"), "{err}");
        }
    }

    #[test]
    fn the_remembered_month_agrees_with_the_computation() {
        let ends = [
            Month::new(0, 1).unwrap().start_epoch_millis(),
            Month::new(9999, 12).unwrap().start_epoch_millis(),
            days_from_civil(10_000, 1, 1) * MILLIS_PER_DAY,
        ];
        let mut values = vec![
            0,
            -1,
            1,
            i64::MIN,
            i64::MAX,
            1_706_745_599_999,
            1_706_745_600_000,
        ];
        for end in ends {
            values.extend([end - 1, end, end + 1]);
        }
        // Forwards, backwards, and a pseudo-random walk.
        let mut x: i64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x % 400_000_000_000_000);
        }
        let backwards: Vec<i64> = values.iter().rev().copied().collect();
        for v in values.iter().chain(&backwards) {
            let fresh = Month::compute_from_epoch_millis(*v).map_err(|e| e.to_string());
            let cached = Month::from_epoch_millis(*v).map_err(|e| e.to_string());
            assert_eq!(cached, fresh, "{v}");
        }
    }

    #[test]
    fn succ_and_pred_stop_at_the_ends() {
        assert!(Month::new(9999, 12).unwrap().succ().is_none());
        assert!(Month::new(0, 1).unwrap().pred().is_none());
        assert_eq!(
            Month::new(2023, 12).unwrap().succ().unwrap(),
            Month::new(2024, 1).unwrap()
        );
    }

    #[test]
    fn serde_as_string_and_from_integer() {
        let m = Month::new(2024, 2).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"202402\"");
        assert_eq!(serde_json::from_str::<Month>("\"202402\"").unwrap(), m);
        assert_eq!(serde_json::from_str::<Month>("202402").unwrap(), m);
        assert!(serde_json::from_str::<Month>("\"202413\"").is_err());
        assert!(serde_json::from_str::<Month>("-202402").is_err());
    }
}
