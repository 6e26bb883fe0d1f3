//! `format: token_events`: one issued token per line (see `docs/token-events.md`).
//!
//! ```json
//! {"timestamp":1706745604011,"grant_type":"authorization_code","token_type":"access_token","client_id":"2000.7810…","username":"admin"}
//! ```

use authstat_core::event::{Event, TokenEvent};
use authstat_core::ingest::{Frame, ParseError, ParseErrorKind, Parser};

use super::{MAX_KEY_LEN, error, first_line, is_blank, json_error, require_month, require_utf8};

/// The JSON-lines token-event format.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenEventsParser;

impl Parser for TokenEventsParser {
    fn format(&self) -> &'static str {
        "token_events"
    }

    fn frame(&self, buf: &[u8]) -> Frame {
        match first_line(buf) {
            None => Frame::Incomplete,
            Some((line, len)) if is_blank(line) => Frame::Blank { len },
            Some((_, len)) => Frame::Record { len },
        }
    }

    fn parse<'a>(&self, record: &'a [u8]) -> Result<Event<'a>, ParseError> {
        let text = require_utf8(record)?;
        let event: TokenEvent<'_> = serde_json::from_str(text).map_err(json_error)?;
        for (name, value) in [
            ("grant_type", &event.grant_type),
            ("token_type", &event.token_type),
        ] {
            if value.is_empty() || value.len() > MAX_KEY_LEN {
                return Err(error(
                    ParseErrorKind::WrongType,
                    format!("{name} must be 1 to {MAX_KEY_LEN} bytes"),
                ));
            }
        }
        let event = Event::from(event);
        require_month(&event)?;
        Ok(event)
    }

    fn oversized_record_end(&self, buf: &[u8]) -> Option<usize> {
        memchr::memchr(b'\n', buf).map(|nl| nl + 1)
    }
}
