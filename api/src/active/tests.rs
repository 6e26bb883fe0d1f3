//! The rules of ranges, dates and periods.

use super::*;

fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
    q.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn day(s: &str) -> i64 {
    parse_day("x", s).unwrap()
}

#[test]
fn dates_are_strict_and_must_exist() {
    assert_eq!(day("1970-01-01"), 0);
    assert_eq!(day("2024-02-29") - day("2024-02-28"), 1);
    for bad in ["2024-2-01", "2024/02/01", "20240201", "2024-02-01T00", ""] {
        assert!(
            parse_day("from", bad).unwrap_err().starts_with("from:"),
            "{bad}"
        );
    }
    for missing in [
        "2023-02-29",
        "2024-02-30",
        "2024-13-01",
        "2024-00-10",
        "2024-04-31",
    ] {
        assert!(
            parse_day("to", missing)
                .unwrap_err()
                .contains("does not exist"),
            "{missing}"
        );
    }
}

#[test]
fn ranges_are_checked_and_name_the_parameter() {
    let kept = day("2023-01-01");
    let err = |q: &[(&str, &str)]| requested_range(&pairs(q), kept, false).unwrap_err();
    assert!(err(&[("to", "2024-01-01")]).starts_with("from:"));
    assert!(err(&[("from", "2024-01-02"), ("to", "2024-01-01")]).starts_with("from:"));
    assert!(err(&[("from", "2023-01-01"), ("to", "2024-02-05")]).starts_with("to:"));
    assert!(err(&[("from", "2022-12-31"), ("to", "2023-01-05")]).starts_with("from:"));
    assert!(
        err(&[("from", "2024-01-01"), ("to", "2024-01-05"), ("by", "year")]).starts_with("by:")
    );
    let ok = requested_range(
        &pairs(&[
            ("from", "2023-01-01"),
            ("to", "2024-02-04"),
            ("by", "month"),
        ]),
        kept,
        false,
    )
    .unwrap();
    let range = [("from", "2024-01-01"), ("to", "2024-01-05")];
    let with = |extra: &[(&'static str, &'static str)], daily: bool| {
        let mut q = range.to_vec();
        q.extend_from_slice(extra);
        requested_range(&pairs(&q), kept, daily)
    };
    assert!(
        with(&[("group_by", "client")], false)
            .unwrap_err()
            .starts_with("group_by:")
    );
    assert_eq!(
        with(&[("group_by", "client")], true).unwrap().clients,
        Some(100)
    );
    assert_eq!(
        with(&[("group_by", "client"), ("top", "3")], true)
            .unwrap()
            .clients,
        Some(3)
    );
    assert!(
        with(&[("group_by", "realm")], true)
            .unwrap_err()
            .starts_with("group_by:")
    );
    assert!(with(&[("top", "3")], true).unwrap_err().starts_with("top:"));
    assert!(
        with(&[("group_by", "client"), ("top", "0")], true)
            .unwrap_err()
            .starts_with("top:")
    );
    assert_eq!(ok.to - ok.from + 1, 400, "400 days are allowed");
    assert_eq!(ok.months().len(), 14);
}

#[test]
fn weeks_start_on_monday_and_periods_are_cut_at_the_range() {
    // 2024-01-05 is a Friday; 2024-02-03 a Saturday.
    let range = Range {
        from: day("2024-01-05"),
        to: day("2024-02-03"),
        by: Some(By::Week),
        clients: None,
    };
    let weeks: Vec<(String, String)> = range
        .periods()
        .into_iter()
        .map(|(a, b)| (day_text(a), day_text(b)))
        .collect();
    assert_eq!(
        weeks.first().unwrap(),
        &("2024-01-05".into(), "2024-01-07".into())
    );
    assert_eq!(weeks[1], ("2024-01-08".into(), "2024-01-14".into()));
    assert_eq!(
        weeks.last().unwrap(),
        &("2024-01-29".into(), "2024-02-03".into())
    );
    let months = Range {
        by: Some(By::Month),
        ..range
    };
    assert_eq!(
        months.periods(),
        [
            (day("2024-01-05"), day("2024-01-31")),
            (day("2024-02-01"), day("2024-02-03"))
        ]
    );
    let days = Range {
        by: Some(By::Day),
        ..range
    };
    assert_eq!(days.periods().len(), 30);
}
