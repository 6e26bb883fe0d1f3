//! Framing and parsing of both formats: the sample log, every kind of bad input, and records
//! cut at every byte.

use authstat_core::event::{AuditAction, Event};
use authstat_core::ingest::{Frame, ParseErrorKind, Parser};
use authstat_plugins::parse::{JanssenAuditParser, TokenEventsParser};
use proptest::prelude::*;

pub fn sample_log() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/logs/jans-auth_audit.log"
    ))
    .unwrap()
}

/// Frames all of `buf`: the records (parsed or not) and skipped stretches, in order.
pub fn frame_all<'a>(
    parser: &dyn Parser,
    buf: &'a [u8],
) -> (Vec<Result<Event<'a>, ParseErrorKind>>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match parser.frame(&buf[at..]) {
            Frame::Record { len } => {
                out.push(parser.parse(&buf[at..at + len]).map_err(|e| e.kind));
                at += len;
            }
            Frame::Skip { len, kind } => {
                out.push(Err(kind));
                at += len;
            }
            Frame::Blank { len } => at += len,
            Frame::Incomplete => return (out, at),
        }
        assert!(at <= buf.len());
    }
}

/// Where each record or skipped stretch of `buf` ends (framing all of it).
fn item_ends(buf: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    loop {
        match JanssenAuditParser.frame(&buf[at..]) {
            Frame::Record { len } | Frame::Skip { len, .. } => {
                at += len;
                ends.push(at);
            }
            Frame::Blank { len } => at += len,
            Frame::Incomplete => return ends,
        }
    }
}

/// An audit record's event (it names an audited action).
fn audit<'e, 'a>(e: &'e Result<Event<'a>, ParseErrorKind>) -> &'e Event<'a> {
    match e {
        Ok(a) if a.action.is_some() => a,
        other => panic!("expected an audit event, got {other:?}"),
    }
}

#[test]
fn the_sample_log_gives_its_nine_records() {
    let log = sample_log();
    let (records, consumed) = frame_all(&JanssenAuditParser, &log);
    assert_eq!(consumed, log.len());
    assert_eq!(records.len(), 9);
    let first = audit(&records[0]);
    assert_eq!(first.action, Some(AuditAction::UserAuthorization));
    assert_eq!(first.timestamp, 1706745598101);
    assert_eq!(first.user, None);
    assert!(!first.success);
    let third = audit(&records[2]);
    assert_eq!(third.user.as_deref(), Some("admin"));
    assert_eq!(
        third.client.as_deref(),
        Some("2000.7810d591-69d3-458c-9309-4268085fe71c")
    );
    assert!(third.success);
}

#[test]
fn crlf_line_ends_and_compact_records_are_read() {
    let crlf: Vec<u8> = String::from_utf8(sample_log())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    let (records, consumed) = frame_all(&JanssenAuditParser, &crlf);
    assert_eq!((records.len(), consumed), (9, crlf.len()));
    assert!(records.iter().all(Result::is_ok));

    let compact = concat!(
        r#"{"ip":"1.2.3.4","action":"TOKEN_REQUEST","timestamp":1706745604011,"macAddress":null,"clientId":"c","username":"u","scope":"openid","success":true}"#,
        "\n",
        r#"2024-02-01 00:00:04,020 INFO  [x] [t]  [c] (A.java:1) - {"ip":null,"action":"USER_INFO","timestamp":1706745604011,"macAddress":null,"clientId":"c","username":null,"scope":null,"success":true}"#,
        "\n",
    );
    let (records, _) = frame_all(&JanssenAuditParser, compact.as_bytes());
    assert_eq!(audit(&records[0]).action, Some(AuditAction::TokenRequest));
    assert_eq!(audit(&records[1]).action, Some(AuditAction::UserInfo));
}

use authstat_test_support::janssen::with_header as record;

const GOOD_BODY: &str = "  \"ip\" : \"10.0.0.5\",\n  \"action\" : \"USER_AUTHORIZATION\",\n  \"timestamp\" : 1706745603590,\n  \"macAddress\" : null,\n  \"clientId\" : \"c\",\n  \"username\" : \"admin\",\n  \"scope\" : null,\n  \"success\" : true";

#[test]
fn bad_input_is_classified_and_reading_goes_on() {
    let cases: Vec<(String, ParseErrorKind)> = vec![
        (
            record("  \"ip\" : \"10.0.0.5\",\n  \"action\" : "),
            ParseErrorKind::MalformedJson,
        ),
        (
            record("  \"ip\" : null,\n  \"timestamp\" : 1,\n  \"success\" : true"),
            ParseErrorKind::MissingField,
        ),
        (
            record(&GOOD_BODY.replace("1706745603590", "\"yesterday\"")),
            ParseErrorKind::WrongType,
        ),
        (
            record(&GOOD_BODY.replace("true", "\"yes\"")),
            ParseErrorKind::WrongType,
        ),
        (
            record(&GOOD_BODY.replace("1706745603590", "999999999999999999")),
            ParseErrorKind::BadTimestamp,
        ),
        (
            "this is not a record\n".to_string(),
            ParseErrorKind::Garbage,
        ),
    ];
    for (bad, kind) in cases {
        let mut log = bad.clone().into_bytes();
        log.extend(record(GOOD_BODY).as_bytes());
        let (records, consumed) = frame_all(&JanssenAuditParser, &log);
        assert_eq!(consumed, log.len(), "{bad}");
        assert_eq!(records.len(), 2, "{bad}");
        assert_eq!(records[0].as_ref().unwrap_err(), &kind, "{bad}");
        assert_eq!(
            audit(&records[1]).user.as_deref(),
            Some("admin"),
            "the next record is read"
        );
    }

    // Invalid UTF-8 inside a body.
    let mut log = record(&GOOD_BODY.replace("admin", "ad\u{1}min")).into_bytes();
    let at = log.iter().position(|&b| b == 1).unwrap();
    log[at] = 0xff;
    let (records, _) = frame_all(&JanssenAuditParser, &log);
    assert_eq!(
        records[0].as_ref().unwrap_err(),
        &ParseErrorKind::InvalidUtf8
    );

    // A header whose body never came: the next header starts a new record.
    let cut = record(GOOD_BODY);
    let cut_at = cut.find("\"action\"").unwrap();
    let mut log = cut[..cut_at].to_string().into_bytes();
    log.extend(record(GOOD_BODY).as_bytes());
    let (records, consumed) = frame_all(&JanssenAuditParser, &log);
    assert_eq!(consumed, log.len());
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0].as_ref().unwrap_err(),
        &ParseErrorKind::HeaderWithoutBody
    );
    assert!(records[1].is_ok());
}

#[test]
fn unknown_actions_are_kept_as_data() {
    let log = record(&GOOD_BODY.replace("USER_AUTHORIZATION", "PAR_CREATE"));
    let (records, _) = frame_all(&JanssenAuditParser, log.as_bytes());
    assert_eq!(
        audit(&records[0]).action,
        Some(AuditAction::Other("PAR_CREATE".into()))
    );
}

#[test]
fn oversized_multi_line_records_end_at_their_closing_line() {
    let log = format!("{}{}", record(GOOD_BODY), record(GOOD_BODY));
    let first_len = record(GOOD_BODY).len();
    // From somewhere inside the first body, the end of that record is found.
    let body_start = record(GOOD_BODY).find('\n').unwrap() + 1;
    for start in [body_start + 5, body_start + 50, first_len - 3] {
        assert_eq!(
            JanssenAuditParser.oversized_record_end(&log.as_bytes()[start..]),
            Some(first_len - start)
        );
    }
    assert_eq!(
        JanssenAuditParser.oversized_record_end(b"  \"ip\" : \"1"),
        None
    );
}

#[test]
fn token_events_are_json_lines() {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/logs/token-events.jsonl"
    ))
    .unwrap();
    let (records, consumed) = frame_all(&TokenEventsParser, &text);
    assert_eq!((records.len(), consumed), (6, text.len()));
    let Ok(Event {
        tokens: Some(t),
        user,
        ..
    }) = &records[3]
    else {
        panic!("{:?}", records[3])
    };
    assert_eq!(
        (&*t.grant_type, &*t.token_type),
        ("client_credentials", "access_token")
    );
    assert_eq!(*user, None);

    let bad = concat!(
        "{\"timestamp\":1,\"grant_type\":\"password\"}\n",
        "{\"timestamp\":1,\"grant_type\":\"\",\"token_type\":\"access_token\",\"client_id\":\"c\"}\n",
        "not json\n",
        "\n",
        "{\"timestamp\":1706745604011,\"grant_type\":\"password\",\"token_type\":\"access_token\",\"client_id\":\"c\",\"extra\":1}\n",
    );
    let (records, _) = frame_all(&TokenEventsParser, bad.as_bytes());
    let kinds: Vec<_> = records.iter().map(|r| r.as_ref().err().copied()).collect();
    assert_eq!(
        kinds,
        [
            Some(ParseErrorKind::MissingField),
            Some(ParseErrorKind::WrongType),
            Some(ParseErrorKind::MalformedJson),
            None
        ]
    );
    assert_eq!(
        TokenEventsParser.frame(b"{\"timestamp\":1"),
        Frame::Incomplete
    );
}

proptest! {
    /// A record still being written is never framed early: framing any prefix of the log gives
    /// the records of the whole log that fit in it, and stops at a record boundary.
    #[test]
    fn every_prefix_frames_consistently(cut in 0usize..4000) {
        let log = sample_log();
        let cut = cut.min(log.len());
        let (all, _) = frame_all(&JanssenAuditParser, &log);
        let (prefix, consumed) = frame_all(&JanssenAuditParser, &log[..cut]);
        // Every record that is complete within the cut is framed, none is held back.
        let complete = item_ends(&log).iter().filter(|&&end| end <= cut).count();
        prop_assert_eq!(prefix.len(), complete, "records complete within {} bytes", cut);
        prop_assert_eq!(&prefix[..], &all[..prefix.len()]);
        let (again, _) = frame_all(&JanssenAuditParser, &log[..consumed]);
        prop_assert_eq!(again.len(), prefix.len(), "the consumed part is whole records");
    }

    /// Arbitrary bytes never panic and are always consumed or waited on.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        for parser in [&JanssenAuditParser as &dyn Parser, &TokenEventsParser] {
            let (_, consumed) = frame_all(parser, &bytes);
            prop_assert!(consumed <= bytes.len());
            let _ = parser.oversized_record_end(&bytes);
        }
    }
}

/// Bytes glued to the front of a record (no newline between them) are counted as garbage, and
/// the record after them is read: random bytes, text, and a custom layout without a timestamp.
#[test]
fn garbage_before_a_header_is_counted_and_the_record_read() {
    let log = sample_log();
    let first_len = match JanssenAuditParser.frame(&log) {
        Frame::Record { len } => len,
        other => panic!("{other:?}"),
    };
    let record = &log[..first_len];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // No newline: the garbage and the header share one line.
            match (rng >> 24) as u8 {
                b'\n' => b'x',
                b => b,
            }
        })
        .collect();
    let text = b"half a line left by a crash, 17 of 2024-13-99".to_vec();
    for garbage in [random, text] {
        let mut buf = garbage.clone();
        buf.extend_from_slice(record);
        let (frames, consumed) = frame_all(&JanssenAuditParser, &buf);
        assert_eq!(consumed, buf.len());
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(frames[0], Err(ParseErrorKind::Garbage));
        assert_eq!(audit(&frames[1]).timestamp, 1706745598101);
        // The skipped stretch is exactly the garbage.
        assert_eq!(
            JanssenAuditParser.frame(&buf),
            Frame::Skip {
                len: garbage.len(),
                kind: ParseErrorKind::Garbage
            }
        );
    }
    // A layout without a timestamp: split after the last byte that is not text.
    let custom = b"\x00\x01\xff\xfeINFO audit - {\n  \"action\" : \"USER_INFO\",\n  \"timestamp\" : 1706745603590,\n  \"success\" : true\n}\n";
    let (frames, _) = frame_all(&JanssenAuditParser, custom);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0], Err(ParseErrorKind::Garbage));
    assert_eq!(audit(&frames[1]).action, Some(AuditAction::UserInfo));
}
